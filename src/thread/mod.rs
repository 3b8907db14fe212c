//! Threading: which conversation an inbound message belongs to.
//!
//! In order, first match wins: explicit references (on channels other than email, the provider
//! message the customer replied to or reacted to — WhatsApp `context.id`, Messenger
//! `reply_to.mid`, Telegram `reply_to_message`, which the kits put in `thread.in_reply_to`; the
//! provider thread id; our reply token; our or the customer's email Message-IDs in
//! `In-Reply-To`/`References`) — each only if the sender is the conversation's customer; the per-channel session of `(endpoint, identity)` on
//! single-thread channels; the customer's open conversation on any channel within the
//! cross-channel window, if one is configured; else a new conversation. A matched conversation
//! that is resolved goes through the [`ReopenPolicy`]; a closed one is never reopened: a new
//! conversation starts and points back at it, and later replies to the closed one (or to a
//! resolved one the policy does not reopen) continue that new conversation.

use crate::model::{
    ChannelKind, Conversation, ConversationId, CustomerId, EndpointId, IdentityId, InboundMessage, TenantId,
};
use crate::store::{Store, ThreadKey};
use crate::{Error, Result};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// How late a message may be delivered and still be judged by when the customer wrote it.
///
/// Reopen policies ([`ReopenPolicy::ReopenWithin`], [`ReopenPolicy::Reject`]) look at the
/// message's `sent_at`, so a webhook retried for hours still lands where the customer meant it.
/// A claim older than this (or older than the conversation) counts as written this long ago:
/// on web chat the date comes from the browser, and a forged one must not reopen what the
/// policy keeps shut.
pub const MAX_LATE_DELIVERY: Duration = Duration::hours(24);

/// What to do when the customer writes into a resolved conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "policy", content = "within", rename_all = "snake_case")]
pub enum ReopenPolicy {
    /// Always reopen it.
    Reopen,
    /// Reopen it if it was resolved at most this long ago; otherwise start a new conversation.
    #[serde(with = "duration_secs")]
    ReopenWithin(Duration),
    /// Never reopen: start a new conversation that points back at it.
    AlwaysNew,
    /// Never reopen and accept no new message through it: ingest fails with
    /// [`Error::Refused`] (a web widget that disallows messages after resolution). A message
    /// that only quotes or references such a conversation goes to the customer's current one
    /// (of the session, or within the cross-channel window) when there is one.
    Reject,
}

mod duration_secs {
    use chrono::Duration;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(d.num_seconds())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = i64::deserialize(d)?;
        Duration::try_seconds(secs).ok_or_else(|| serde::de::Error::custom("duration out of range"))
    }
}

/// Threading rules for one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelThreading {
    /// Whether the customer's latest conversation through the same `(endpoint, identity)`
    /// continues (single-thread channels such as WhatsApp, SMS, Messenger).
    pub session: bool,
    /// What happens when that conversation (or a referenced one) is resolved.
    pub reopen: ReopenPolicy,
}

/// Threading rules for all channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadingPolicy {
    /// Rules for channels without an override: session threading on single-thread channels,
    /// reopen within 7 days.
    pub per_channel: HashMap<ChannelKind, ChannelThreading>,
    /// Reopen policy for channels without an override.
    pub reopen: ReopenPolicy,
    /// If set, a message on any channel continues the customer's most recently active open
    /// conversation when that was active within this window (off by default: each channel has
    /// its own reply rules, and agents must see which channel a reply goes to).
    pub cross_channel_window: Option<Duration>,
}

impl Default for ThreadingPolicy {
    fn default() -> Self {
        ThreadingPolicy {
            per_channel: HashMap::new(),
            reopen: ReopenPolicy::ReopenWithin(Duration::days(7)),
            cross_channel_window: None,
        }
    }
}

impl ThreadingPolicy {
    /// The rules for `channel`.
    pub fn for_channel(&self, channel: &ChannelKind) -> ChannelThreading {
        self.per_channel
            .get(channel)
            .copied()
            .unwrap_or(ChannelThreading { session: channel.is_single_thread(), reopen: self.reopen })
    }

    /// Sets the rules for one channel.
    pub fn with_channel(mut self, channel: ChannelKind, rules: ChannelThreading) -> Self {
        self.per_channel.insert(channel, rules);
        self
    }

    /// Enables cross-channel continuation within `window`.
    pub fn with_cross_channel_window(mut self, window: Duration) -> Self {
        self.cross_channel_window = Some(window);
        self
    }
}

/// Why a message joined the conversation it joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThreadReason {
    /// The customer replied to (quoted, reacted to) a message of the conversation on a channel
    /// other than email (WhatsApp `context.id`, Messenger `reply_to.mid`, Telegram
    /// `reply_to_message`).
    ProviderReply,
    /// The provider's thread id.
    ProviderThread,
    /// Our reply token in the recipient address.
    ReplyToken,
    /// A Message-ID in `In-Reply-To` or `References`.
    EmailReference,
    /// The same `(endpoint, identity)` session on a single-thread channel.
    Session,
    /// The customer's open conversation on another channel, within the cross-channel window.
    CrossChannel,
}

/// Why a new conversation was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenReason {
    /// Nothing to continue.
    NoMatch,
    /// The matched conversation is closed.
    PreviousClosed,
    /// The matched conversation was resolved longer ago than the reopen window.
    ReopenWindowExpired,
    /// The reopen policy says always new.
    PolicyAlwaysNew,
}

/// Where an inbound message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum ThreadDecision {
    /// Joined an open conversation.
    Continued {
        /// Why.
        reason: ThreadReason,
    },
    /// Reopened a resolved (or woke a snoozed) conversation.
    Reopened {
        /// Why.
        reason: ThreadReason,
    },
    /// Kept in a resolved or snoozed conversation without reopening it, because the customer
    /// is blocked: the message is stored and nobody is asked to handle it.
    KeptQuiet {
        /// Why this conversation.
        reason: ThreadReason,
    },
    /// Started a new conversation.
    Opened {
        /// Why.
        reason: OpenReason,
        /// The conversation it follows, if any.
        previous: Option<ConversationId>,
    },
    /// The message had been ingested before.
    Duplicate,
}

/// The outcome of threading: an existing conversation to extend, or the parameters of a new one.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // built once per message, never stored
pub(crate) enum Placement {
    Existing { conversation: Conversation, decision: ThreadDecision },
    New { decision: ThreadDecision, previous: Option<ConversationId> },
}

pub(crate) struct ThreadInput<'a> {
    pub msg: &'a InboundMessage,
    pub customer: CustomerId,
    pub identity: IdentityId,
    pub endpoint: &'a EndpointId,
    pub blocked: bool,
    pub now: DateTime<Utc>,
}

impl ThreadInput<'_> {
    /// When the customer wrote, as the threading rules judge it: the provider's time when it
    /// says (a webhook retried for hours arrives late), never later than now and never earlier
    /// than [`MAX_LATE_DELIVERY`] ago.
    fn written(&self) -> DateTime<Utc> {
        self.msg.sent_at.map_or(self.now, |at| at.max(self.now - MAX_LATE_DELIVERY).min(self.now))
    }
}

/// The thread keys an inbound message refers to, strongest first.
pub(crate) fn referenced_keys(msg: &InboundMessage) -> Vec<(ThreadKey, ThreadReason)> {
    let mut keys = Vec::new();
    let t = &msg.thread;
    if let Some(id) = t.provider_thread_id.as_deref().filter(|s| !s.is_empty()) {
        keys.push((ThreadKey::ProviderThread(msg.channel.clone(), id.to_owned()), ThreadReason::ProviderThread));
    }
    if let Some(token) = t.reply_token.as_deref().filter(|s| !s.is_empty()) {
        keys.push((ThreadKey::ReplyToken(token.to_owned()), ThreadReason::ReplyToken));
    }
    for id in t.in_reply_to.iter().chain(t.references.iter().rev()) {
        let id = message_id(id);
        if !id.is_empty() {
            keys.push((ThreadKey::EmailMessageId(id.to_owned()), ThreadReason::EmailReference));
        }
    }
    keys
}

/// Whether a message to a conversation in `status` is stored without reopening it and without
/// asking anyone to handle it ([`ThreadDecision::KeptQuiet`]): the customer is blocked and the
/// conversation resolved or snoozed.
pub(crate) fn kept_quiet(status: &crate::model::ConversationStatus, blocked: bool) -> bool {
    use crate::model::ConversationStatus as S;
    blocked && matches!(status, S::Resolved | S::Snoozed { .. })
}
/// An email Message-ID without surrounding whitespace and angle brackets.
pub fn message_id(raw: &str) -> &str {
    raw.trim().trim_start_matches('<').trim_end_matches('>')
}

fn apply_reopen(
    conversation: Conversation,
    reason: ThreadReason,
    policy: ReopenPolicy,
    input: &ThreadInput<'_>,
) -> Result<Placement> {
    use crate::model::ConversationStatus as S;
    let previous = Some(conversation.id);
    let now = input.now;
    // Reopen policies judge when the customer wrote (a webhook retried for hours arrives late):
    // never later than now, and never earlier than [`MAX_LATE_DELIVERY`] ago or than the
    // conversation's start — a browser-set or forged date cannot slip past `Reject` or
    // `ReopenWithin`.
    let written = input.written().max(conversation.created_at).min(now);
    if kept_quiet(&conversation.status, input.blocked) {
        return Ok(Placement::Existing { conversation, decision: ThreadDecision::KeptQuiet { reason } });
    }
    match conversation.status {
        S::Open | S::Pending => {
            Ok(Placement::Existing { conversation, decision: ThreadDecision::Continued { reason } })
        }
        S::Snoozed { .. } => Ok(Placement::Existing { conversation, decision: ThreadDecision::Reopened { reason } }),
        S::Closed => Ok(Placement::New {
            decision: ThreadDecision::Opened { reason: OpenReason::PreviousClosed, previous },
            previous,
        }),
        S::Resolved => match policy {
            ReopenPolicy::Reopen => {
                Ok(Placement::Existing { conversation, decision: ThreadDecision::Reopened { reason } })
            }
            ReopenPolicy::ReopenWithin(window) => {
                let resolved_at = conversation.resolved_at.unwrap_or(conversation.last_activity_at);
                if written - resolved_at <= window {
                    Ok(Placement::Existing { conversation, decision: ThreadDecision::Reopened { reason } })
                } else {
                    Ok(Placement::New {
                        decision: ThreadDecision::Opened { reason: OpenReason::ReopenWindowExpired, previous },
                        previous,
                    })
                }
            }
            ReopenPolicy::AlwaysNew => Ok(Placement::New {
                decision: ThreadDecision::Opened { reason: OpenReason::PolicyAlwaysNew, previous },
                previous,
            }),
            // Written before the resolution, delivered late: the conversation was resolved
            // without it, so it reopens for it.
            ReopenPolicy::Reject if conversation.resolved_at.is_some_and(|at| written < at) => {
                Ok(Placement::Existing { conversation, decision: ThreadDecision::Reopened { reason } })
            }
            ReopenPolicy::Reject => Err(Error::Refused(format!(
                "conversation {} is resolved and this channel accepts no messages after resolution",
                conversation.id
            ))),
        },
    }
}

/// A reply into a conversation that may not take it (`placement` opens a new one after it)
/// continues the conversation that already follows it among the customer's `conversations`, if
/// any — so every later reply to the same old thread joins the conversation the first one
/// opened, instead of opening one more each time. Followed along the chain of successors (each
/// step reaches a different conversation of the customer, so at most as many steps as they have).
fn follow_successor(
    conversations: &[Conversation],
    mut placement: Placement,
    reason: ThreadReason,
    policy: ReopenPolicy,
    input: &ThreadInput<'_>,
) -> Result<Placement> {
    for _ in 0..conversations.len() {
        let Placement::New { previous: Some(previous), .. } = &placement else { break };
        let Some(next) = conversations.iter().find(|c| c.previous == Some(*previous)) else { break };
        placement = apply_reopen(next.clone(), reason, policy, input)?;
    }
    Ok(placement)
}

/// Decides where an inbound message goes. `notes` collects human-readable reasons for
/// references that were ignored.
pub(crate) async fn place(
    store: &dyn Store,
    tenant: &TenantId,
    policy: &ThreadingPolicy,
    input: &ThreadInput<'_>,
    notes: &mut Vec<String>,
) -> Result<Placement> {
    let rules = policy.for_channel(&input.msg.channel);
    // A reply to a message of a closed (or long-resolved) conversation opens a new one that
    // points back at it — unless the rules below find an open conversation to continue.
    let mut opens = None;
    // A reference into a conversation that refuses the message (`Reject`) refuses it only when
    // the rules below find no open conversation for it either.
    let mut refused: Option<Error> = None;
    // The customer's conversations, read once for whichever rule needs them first.
    let mut loaded: Option<Vec<Conversation>> = None;
    if let Some(quoted) = quoted_conversation(store, tenant, input.msg).await? {
        if quoted.customer != input.customer {
            notes.push(format!(
                "{:?} reference ignored: the sender is not that conversation's customer",
                ThreadReason::ProviderReply
            ));
        } else {
            // The quoted conversation itself continues; a successor it already has only when
            // the customer's session or the cross-channel window below finds nothing current
            // (a quote into an old thread never splits the customer's current conversation).
            match apply_reopen(quoted, ThreadReason::ProviderReply, rules.reopen, input) {
                Ok(existing @ Placement::Existing { .. }) => return Ok(existing),
                Ok(new @ Placement::New { .. }) => {
                    let all = store.conversations_of(tenant, input.customer).await?;
                    opens = Some(follow_successor(&all, new, ThreadReason::ProviderReply, rules.reopen, input)?);
                    loaded = Some(all);
                }
                Err(e @ Error::Refused(_)) => refused = Some(e),
                Err(e) => return Err(e),
            }
        }
    }
    for (key, reason) in referenced_keys(input.msg) {
        let Some(id) = store.conversation_by_thread_key(tenant, &key).await? else { continue };
        let Some(conversation) = store.conversation(tenant, id).await? else { continue };
        if conversation.customer != input.customer {
            notes.push(format!("{reason:?} reference ignored: the sender is not that conversation's customer"));
            continue;
        }
        let placement = match apply_reopen(conversation, reason, rules.reopen, input) {
            Ok(placement) => placement,
            Err(e @ Error::Refused(_)) => {
                refused.get_or_insert(e);
                break;
            }
            Err(e) => return Err(e),
        };
        if !matches!(placement, Placement::New { previous: Some(_), .. }) {
            return Ok(placement);
        }
        let all = match loaded {
            Some(all) => all,
            None => store.conversations_of(tenant, input.customer).await?,
        };
        return follow_successor(&all, placement, reason, rules.reopen, input);
    }
    let conversations = match loaded {
        Some(all) => all,
        None if rules.session || policy.cross_channel_window.is_some() => {
            store.conversations_of(tenant, input.customer).await?
        }
        None => Vec::new(),
    };
    if rules.session {
        // The session's open conversation if it has one (an agent's note in an older, resolved
        // one makes that the most recent without making it the customer's current one), else its
        // most recent.
        let in_session =
            |c: &&Conversation| c.sessions.iter().any(|(e, i)| e == input.endpoint && *i == input.identity);
        let session = conversations
            .iter()
            .filter(in_session)
            .find(|c| c.status.is_open())
            .or_else(|| conversations.iter().find(in_session));
        if let Some(c) = session {
            // A closed or expired session conversation still gives way to an open one elsewhere;
            // if there is none, the new conversation points back at it.
            match apply_reopen(c.clone(), ThreadReason::Session, rules.reopen, input)? {
                existing @ Placement::Existing { .. } => return Ok(existing),
                // A successor of the quoted thread still beats a new conversation.
                new @ Placement::New { .. } if !matches!(opens, Some(Placement::Existing { .. })) => opens = Some(new),
                Placement::New { .. } => {}
            }
        }
    }
    // Judged by when the customer wrote, as the reopen policies are: a webhook retried for an
    // hour still joins the conversation the customer was in.
    let written = input.written();
    if let Some(window) = policy.cross_channel_window
        && let Some(c) = conversations.iter().find(|c| c.status.is_open() && written - c.last_activity_at <= window)
    {
        return apply_reopen(c.clone(), ThreadReason::CrossChannel, rules.reopen, input);
    }
    if let Some(e) = refused {
        return Err(e);
    }
    Ok(opens.unwrap_or(Placement::New {
        decision: ThreadDecision::Opened { reason: OpenReason::NoMatch, previous: None },
        previous: None,
    }))
}

/// The conversation of the provider message an inbound message replies to, on channels other
/// than email (email replies are threaded by Message-ID references).
async fn quoted_conversation(
    store: &dyn Store,
    tenant: &TenantId,
    msg: &InboundMessage,
) -> Result<Option<Conversation>> {
    if msg.channel == ChannelKind::Email {
        return Ok(None);
    }
    let Some(id) = msg.thread.in_reply_to.as_deref().map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let Some(quoted) = store.message_by_external_id(tenant, &msg.channel, id).await? else { return Ok(None) };
    store.conversation(tenant, quoted.conversation).await
}
