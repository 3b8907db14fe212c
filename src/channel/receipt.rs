//! Delivery receipts: per-message statuses and Messenger-style watermarks, applied in batches
//! that tolerate duplicates and reordering.

use crate::Engine;
use crate::model::{
    ChannelKind, Conversation, ConversationId, DeliveryState, Direction, EndpointId, IdentityId, Message, MessageId,
    TenantId,
};
use crate::store::{MessageQuery, MessageScope};
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};

/// "Everything we sent through `endpoint` to `identity` up to `up_to` has reached this state" —
/// Messenger `message_deliveries` / `message_reads` and Instagram `messaging_seen`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    /// Our endpoint (the Page or Instagram account).
    pub endpoint: EndpointId,
    /// The customer's identity (resolve the PSID/IGSID with
    /// [`Store::identity_by_address`](crate::store::Store::identity_by_address)).
    pub identity: IdentityId,
    /// Messages sent at or before this instant are covered.
    pub up_to: DateTime<Utc>,
}

/// A delivery receipt from a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The channel the message went out on.
    pub channel: ChannelKind,
    /// The provider's id of our message (WhatsApp `statuses[].id`, Twilio `MessageSid`), if
    /// the receipt names one.
    pub provider_message_id: Option<String>,
    /// The state the provider reports (sent, delivered, read or failed).
    pub state: DeliveryState,
    /// When the provider says it happened (receipts are applied in this order).
    pub at: DateTime<Utc>,
    /// A watermark covering earlier messages too.
    pub watermark: Option<Watermark>,
}

impl Receipt {
    /// A receipt for one message.
    pub fn new(
        channel: ChannelKind,
        provider_message_id: impl Into<String>,
        state: DeliveryState,
        at: DateTime<Utc>,
    ) -> Self {
        Receipt { channel, provider_message_id: Some(provider_message_id.into()), state, at, watermark: None }
    }

    /// A watermark receipt: everything sent through `endpoint` to `identity` up to `up_to` has
    /// reached `state`.
    pub fn watermark(
        channel: ChannelKind,
        endpoint: EndpointId,
        identity: IdentityId,
        up_to: DateTime<Utc>,
        state: DeliveryState,
    ) -> Self {
        Receipt {
            channel,
            provider_message_id: None,
            state,
            at: up_to,
            watermark: Some(Watermark { endpoint, identity, up_to }),
        }
    }

    /// Checks that the receipt names a message or carries a watermark. A `Pending` receipt
    /// (Twilio's `queued` and `sending` callbacks) is valid and changes nothing: states only
    /// move forward.
    pub fn validate(&self) -> Result<()> {
        match (&self.provider_message_id, &self.watermark) {
            (None, None) => Err(Error::invalid("receipt", "names no message and carries no watermark")),
            (Some(id), _) if id.trim().is_empty() || id.len() > 512 => {
                Err(Error::invalid("receipt.provider_message_id", "must be 1 to 512 bytes"))
            }
            _ => Ok(()),
        }
    }
}

/// A change of one message's delivery state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryUpdate {
    /// The message.
    pub message: MessageId,
    /// Its provider id, if it has one.
    pub provider_message_id: Option<String>,
    /// The state before.
    pub from: DeliveryState,
    /// The state after.
    pub to: DeliveryState,
}

/// What a batch of receipts does to a set of messages ([`plan_receipts`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptPlan {
    /// One update per message whose state moves, with its final state after the whole batch, in
    /// the order of the messages given.
    pub updates: Vec<DeliveryUpdate>,
    /// Receipts that matched no outbound message (the provider may report before the host has
    /// recorded the provider id: keep them and apply them again later).
    pub unmatched: Vec<Receipt>,
    /// Receipts that matched but changed nothing (duplicates, late or backward receipts).
    pub unchanged: usize,
}

/// Works out what `receipts` do to `messages`, without changing anything.
///
/// Receipts are applied in the order of their `at` (ties keep batch order) through
/// [`DeliveryState::advance`], so duplicates and late receipts never move a message back, and a
/// batch gives the same result however the provider ordered it. A per-message receipt matches
/// the outbound message with that provider id on that channel. A watermark covers every
/// outbound message on its channel and endpoint sent at or before `up_to` in the conversations
/// whose sessions include `(endpoint, identity)` — pass those conversations in `conversations`
/// (other conversations are ignored).
///
/// Fails with [`Error::InvalidInput`] if any receipt is malformed ([`Receipt::validate`]).
///
/// ```
/// use chrono::{Duration, TimeZone, Utc};
/// use touchpoint::channel::{plan_receipts, Receipt};
/// use touchpoint::model::*;
/// # let t0 = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
/// # let message = Message {
/// #     id: MessageId::from_uuid(uuid::Uuid::from_u128(7)),
/// #     tenant: TenantId::new("acme").unwrap(),
/// #     conversation: ConversationId::from_uuid(uuid::Uuid::from_u128(1)),
/// #     direction: Direction::Outbound,
/// #     author: Author::System,
/// #     channel: ChannelKind::WhatsApp,
/// #     endpoint: EndpointId::new("wa-main").unwrap(),
/// #     external_id: Some("wamid.OUT1".into()),
/// #     recipient: None,
/// #     content: Content::text("Your parcel is out for delivery"),
/// #     delivery: DeliveryState::Sent,
/// #     sent_at: t0,
/// #     recorded_at: t0,
/// #     version: 1,
/// # };
/// // `read` arrives before `delivered`, and `delivered` twice.
/// let receipts = [
///     Receipt::new(ChannelKind::WhatsApp, "wamid.OUT1", DeliveryState::Read, t0 + Duration::seconds(9)),
///     Receipt::new(ChannelKind::WhatsApp, "wamid.OUT1", DeliveryState::Delivered, t0 + Duration::seconds(5)),
///     Receipt::new(ChannelKind::WhatsApp, "wamid.OUT1", DeliveryState::Delivered, t0 + Duration::seconds(5)),
/// ];
/// let plan = plan_receipts(&receipts, &[message], &[]).unwrap();
/// assert_eq!(plan.updates.len(), 1);
/// assert_eq!((plan.updates[0].from.clone(), plan.updates[0].to.clone()), (DeliveryState::Sent, DeliveryState::Read));
/// assert_eq!(plan.unchanged, 1); // the duplicate
/// ```
pub fn plan_receipts(
    receipts: &[Receipt],
    messages: &[Message],
    conversations: &[Conversation],
) -> Result<ReceiptPlan> {
    receipts.iter().try_for_each(Receipt::validate)?;
    let mut order: Vec<&Receipt> = receipts.iter().collect();
    order.sort_by_key(|r| r.at);

    let outbound: Vec<&Message> = {
        let mut seen = BTreeSet::new();
        messages.iter().filter(|m| m.direction == Direction::Outbound && seen.insert(m.id)).collect()
    };
    let by_provider_id: HashMap<(&ChannelKind, &str), usize> = outbound
        .iter()
        .enumerate()
        // Both sides spelled alike: an email Message-ID with or without its angle brackets.
        .filter_map(|(i, m)| {
            m.external_id.as_deref().map(|x| ((&m.channel, crate::engine::provider_id(&m.channel, x)), i))
        })
        .collect();
    let mut state: Vec<DeliveryState> = outbound.iter().map(|m| m.delivery.clone()).collect();
    let mut plan = ReceiptPlan::default();

    for receipt in order {
        let mut matched = false;
        let mut changed = false;
        let mut apply = |i: usize, state: &mut Vec<DeliveryState>| {
            matched = true;
            if let Some(current) = state.get_mut(i) {
                let next = current.advance(receipt.state.clone());
                if next != *current {
                    *current = next;
                    changed = true;
                }
            }
        };
        if let Some(id) = &receipt.provider_message_id
            && let Some(&i) = by_provider_id.get(&(&receipt.channel, crate::engine::provider_id(&receipt.channel, id)))
        {
            apply(i, &mut state);
        }
        if let Some(w) = &receipt.watermark {
            let sessions: BTreeSet<ConversationId> = conversations
                .iter()
                .filter(|c| c.sessions.iter().any(|(e, i)| *e == w.endpoint && *i == w.identity))
                .map(|c| c.id)
                .collect();
            for (i, m) in outbound.iter().enumerate() {
                if m.channel == receipt.channel
                    && m.endpoint == w.endpoint
                    && m.sent_at <= w.up_to
                    && sessions.contains(&m.conversation)
                    // A conversation may hold two identities on one page (after a merge): only
                    // what went to the watermark's identity.
                    && m.recipient.is_none_or(|r| r == w.identity)
                {
                    apply(i, &mut state);
                }
            }
        }
        match (matched, changed) {
            (false, _) => plan.unmatched.push(receipt.clone()),
            (true, false) => plan.unchanged += 1,
            (true, true) => {}
        }
    }

    plan.updates = outbound
        .iter()
        .zip(state)
        .filter(|(m, s)| m.delivery != *s)
        .map(|(m, s)| DeliveryUpdate {
            message: m.id,
            provider_message_id: m.external_id.clone(),
            from: m.delivery.clone(),
            to: s,
        })
        .collect();
    Ok(plan)
}

/// What [`apply_receipts`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptReport {
    /// Messages whose state moved, with the state now stored, in the order they were recorded.
    pub updated: Vec<DeliveryUpdate>,
    /// Receipts that changed nothing (duplicates, late or backward receipts).
    pub unchanged: usize,
    /// Receipts that matched no recorded outbound message; apply them again later.
    pub unmatched: Vec<Receipt>,
    /// Messages a watermark covers that were recorded without a provider id: the engine updates
    /// delivery by provider id only, so their state is left as it was.
    pub without_provider_id: Vec<MessageId>,
    /// Kit watermark receipts whose recipient is no known identity
    /// ([`Engine::apply_receipts`] only): nothing was sent to them.
    pub unknown_recipients: Vec<crate::channels::DeliveryReceipt>,
}

const PAGE: usize = 200;

/// Applies a batch of receipts to the messages `engine` has recorded for `tenant`, through
/// [`Engine::update_delivery`]: same ordering and tolerance as [`plan_receipts`].
///
/// Malformed receipts fail the whole batch before anything is written. Each message update is
/// its own atomic write, so a storage failure part-way leaves earlier updates applied; since
/// receipts only move states forward, applying the same batch again is harmless.
///
/// Watermarks read the conversations of the identity's customer whose sessions include
/// `(endpoint, identity)` and page through their messages.
pub async fn apply_receipts(engine: &Engine, tenant: &TenantId, receipts: &[Receipt]) -> Result<ReceiptReport> {
    receipts.iter().try_for_each(Receipt::validate)?;
    let store = engine.store();
    let mut messages: Vec<Message> = Vec::new();
    let mut conversations: Vec<Conversation> = Vec::new();
    let mut scanned: BTreeSet<ConversationId> = BTreeSet::new();
    for receipt in receipts {
        // Stored as the engine stores it (an email Message-ID without its angle brackets).
        if let Some(id) = &receipt.provider_message_id
            && let Some(m) = store
                .message_by_external_id(tenant, &receipt.channel, crate::engine::provider_id(&receipt.channel, id))
                .await?
        {
            messages.push(m);
        }
        let Some(w) = &receipt.watermark else { continue };
        let Some(identity) = store.identity(tenant, w.identity).await? else { continue };
        for c in store.conversations_of(tenant, identity.customer).await? {
            if scanned.contains(&c.id) || !c.sessions.iter().any(|(e, i)| *e == w.endpoint && *i == w.identity) {
                continue;
            }
            scanned.insert(c.id);
            let mut before = None;
            loop {
                let page = store
                    .messages(tenant, &MessageQuery { scope: MessageScope::Conversation(c.id), before, limit: PAGE })
                    .await?;
                before = page.last().map(|m| m.id);
                let done = page.len() < PAGE;
                messages.extend(page.into_iter().filter(|m| m.direction == Direction::Outbound));
                if done || before.is_none() {
                    break;
                }
            }
            conversations.push(c);
        }
    }

    messages.sort_by_key(|m| m.id);
    let plan = plan_receipts(receipts, &messages, &conversations)?;
    let mut report = ReceiptReport { unchanged: plan.unchanged, unmatched: plan.unmatched, ..ReceiptReport::default() };
    for update in plan.updates {
        let Some(provider_id) = &update.provider_message_id else {
            report.without_provider_id.push(update.message);
            continue;
        };
        let channel = messages.iter().find(|m| m.id == update.message).map(|m| m.channel.clone());
        let Some(channel) = channel else { continue };
        let stored = engine.update_delivery(tenant, &channel, provider_id, update.to.clone()).await?;
        if stored.delivery != update.from {
            report.updated.push(DeliveryUpdate { to: stored.delivery, ..update });
        } else {
            report.unchanged += 1;
        }
    }
    Ok(report)
}
