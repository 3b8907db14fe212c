//! Conversations: one piece of work with a customer, on one or more channels.

use super::{AgentId, ChannelKind, ConversationId, CustomerId, EndpointId, IdentityId, QueueId, TenantId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Where a conversation is in its life.
///
/// `Open`, `Pending` and `Snoozed` are *open* states (work remains). `Resolved` can be reopened by
/// the customer's next message, according to the reopen policy. `Closed` is terminal: new
/// traffic starts a new conversation that points back at this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ConversationStatus {
    /// Needs or has a human's attention.
    Open,
    /// Waiting on something other than an agent (a bot, a queue, the customer's answer).
    Pending,
    /// Put aside until a time; the customer's next message wakes it.
    Snoozed {
        /// When it is due back. The library runs no timers: the host's scheduler sets it back
        /// to `Open` at this time (`Engine::update_conversation`) unless the customer's message
        /// woke it first.
        until: DateTime<Utc>,
    },
    /// Done, but the customer may still come back to it.
    Resolved,
    /// Finished for good.
    Closed,
}

impl ConversationStatus {
    /// Whether work remains (open, pending or snoozed).
    pub fn is_open(&self) -> bool {
        matches!(self, ConversationStatus::Open | ConversationStatus::Pending | ConversationStatus::Snoozed { .. })
    }

    /// The status name (`open`, `pending`, `snoozed`, `resolved`, `closed`).
    pub fn name(&self) -> &'static str {
        match self {
            ConversationStatus::Open => "open",
            ConversationStatus::Pending => "pending",
            ConversationStatus::Snoozed { .. } => "snoozed",
            ConversationStatus::Resolved => "resolved",
            ConversationStatus::Closed => "closed",
        }
    }

    /// Whether the lifecycle allows going from `self` to `to`. Every state may move to any other
    /// except out of `Closed`, which is terminal.
    pub fn can_become(&self, to: &ConversationStatus) -> bool {
        !matches!(self, ConversationStatus::Closed) || matches!(to, ConversationStatus::Closed)
    }
}

/// How urgent a conversation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Can wait.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Sooner than usual.
    High,
    /// Now.
    Urgent,
}

/// Who handles a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Handler {
    /// A human agent.
    Agent(AgentId),
    /// A bot (bots are agents too; they are named apart so views can tell).
    Bot(AgentId),
    /// Waiting in a queue.
    Queue(QueueId),
}

/// How much one channel was used in a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelUse {
    /// The channel.
    pub channel: ChannelKind,
    /// Messages from the customer on it.
    pub inbound: u32,
    /// Messages to the customer on it.
    pub outbound: u32,
    /// Latest message on it.
    pub last_at: DateTime<Utc>,
}

/// One piece of work with one customer, possibly spanning several channels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    /// Id of this conversation.
    pub id: ConversationId,
    /// The tenant.
    pub tenant: TenantId,
    /// The customer.
    pub customer: CustomerId,
    /// Lifecycle status.
    pub status: ConversationStatus,
    /// Urgency.
    pub priority: Priority,
    /// Subject (email subject, or set by an agent).
    pub subject: Option<String>,
    /// Labels.
    pub tags: BTreeSet<String>,
    /// The agent, bot or queue handling it.
    pub handler: Option<Handler>,
    /// The latest human or bot agent that wrote in it.
    pub last_agent: Option<AgentId>,
    /// When [`last_agent`](Self::last_agent) wrote (absent in records written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_agent_at: Option<DateTime<Utc>>,
    /// Channel the conversation started on.
    pub origin: ChannelKind,
    /// Per-channel usage, in order of first use.
    pub channels: Vec<ChannelUse>,
    /// The endpoint of ours and the customer's identity of the latest inbound message (where a
    /// reply goes by default).
    pub last_inbound_via: Option<(EndpointId, IdentityId)>,
    /// The `(endpoint, identity)` sessions the customer wrote through, in order of first use
    /// (single-thread channels continue the latest conversation of their session).
    pub sessions: Vec<(EndpointId, IdentityId)>,
    /// The conversation this one follows (after a close, or a reopen refused by policy).
    pub previous: Option<ConversationId>,
    /// Our unguessable reply token (put into reply-to addresses: `reply+<token>@…`).
    pub reply_token: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Latest message either way.
    pub last_activity_at: DateTime<Utc>,
    /// Latest inbound message.
    pub last_inbound_at: Option<DateTime<Utc>>,
    /// Since when the customer has been waiting for an answer (`None` when answered).
    pub waiting_since: Option<DateTime<Utc>>,
    /// First reply by an agent or bot.
    pub first_response_at: Option<DateTime<Utc>>,
    /// Latest move to resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Move to closed.
    pub closed_at: Option<DateTime<Utc>>,
    /// Total messages.
    pub message_count: u32,
    /// Optimistic-concurrency version.
    pub version: u64,
}

impl Conversation {
    /// Channels used, in order of first use.
    pub fn channel_kinds(&self) -> impl Iterator<Item = &ChannelKind> {
        self.channels.iter().map(|c| &c.channel)
    }

    /// Whether a message on `channel` continues this conversation on a channel it has not used
    /// before ([`Event::ChannelAdded`](crate::events::Event::ChannelAdded)): not the first
    /// message of a conversation on the channel it was opened on.
    pub(crate) fn adds_channel(&self, channel: &ChannelKind) -> bool {
        let used = self.channels.iter().any(|c| &c.channel == channel);
        let opened_on = self.channels.is_empty() && self.origin == *channel;
        !(used || opened_on)
    }

    /// Counts one message on `channel` at `at`.
    pub fn count_message(&mut self, channel: &ChannelKind, inbound: bool, at: DateTime<Utc>) {
        self.message_count = self.message_count.saturating_add(1);
        self.last_activity_at = self.last_activity_at.max(at);
        let entry = match self.channels.iter_mut().position(|c| &c.channel == channel) {
            Some(i) => &mut self.channels[i],
            None => {
                self.channels.push(ChannelUse { channel: channel.clone(), inbound: 0, outbound: 0, last_at: at });
                self.channels.last_mut().expect("just pushed")
            }
        };
        entry.last_at = entry.last_at.max(at);
        if inbound {
            entry.inbound = entry.inbound.saturating_add(1);
        } else {
            entry.outbound = entry.outbound.saturating_add(1);
        }
    }

    /// Moves to `to` at `now`, keeping the resolution timestamps right.
    pub fn set_status(&mut self, to: ConversationStatus, now: DateTime<Utc>) -> crate::Result<()> {
        if !self.status.can_become(&to) {
            return Err(crate::Error::Refused(format!(
                "conversation {} is closed; closed conversations cannot become {}",
                self.id,
                to.name()
            )));
        }
        match &to {
            ConversationStatus::Resolved => self.resolved_at = Some(now),
            ConversationStatus::Closed => {
                self.closed_at = Some(now);
                self.resolved_at.get_or_insert(now);
            }
            _ => {}
        }
        self.status = to;
        Ok(())
    }
}
