//! Messages, their authors and their delivery state.

use super::{AgentId, ChannelKind, Content, ConversationId, EndpointId, IdentityId, MessageId, TenantId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the customer to us.
    Inbound,
    /// From us to the customer.
    Outbound,
}

/// Who wrote a message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Author {
    /// The customer, through one of their identities.
    Customer(IdentityId),
    /// A human agent.
    Agent(AgentId),
    /// A bot.
    Bot(AgentId),
    /// The system (notices, automatic messages).
    System,
}

/// How far a message has got on its way to the customer.
///
/// States only move forward (`Pending → Sent → Delivered → Read`); `Failed` may arrive at any
/// time before `Read` (a provider can report a failure after accepting a message). Receipts
/// arriving late or twice never move a message back: use [`DeliveryState::advance`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DeliveryState {
    /// Recorded, not yet handed to the channel (also: received, for inbound messages).
    Pending,
    /// The channel's provider accepted it.
    Sent,
    /// Reached the customer's device.
    Delivered,
    /// The customer read it.
    Read,
    /// It will not arrive.
    Failed {
        /// The provider's error code, if any.
        code: Option<String>,
        /// Why, in words.
        reason: String,
    },
}

/// The name of a [`DeliveryState`] without its details (what events carry: a failure's
/// free-text reason can hold personal data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// See [`DeliveryState::Pending`].
    Pending,
    /// See [`DeliveryState::Sent`].
    Sent,
    /// See [`DeliveryState::Delivered`].
    Delivered,
    /// See [`DeliveryState::Read`].
    Read,
    /// See [`DeliveryState::Failed`].
    Failed,
}

impl DeliveryState {
    /// The state's name, without details.
    pub fn status(&self) -> DeliveryStatus {
        match self {
            DeliveryState::Pending => DeliveryStatus::Pending,
            DeliveryState::Sent => DeliveryStatus::Sent,
            DeliveryState::Delivered => DeliveryStatus::Delivered,
            DeliveryState::Read => DeliveryStatus::Read,
            DeliveryState::Failed { .. } => DeliveryStatus::Failed,
        }
    }

    fn rank(&self) -> u8 {
        match self {
            DeliveryState::Pending => 0,
            DeliveryState::Sent => 1,
            DeliveryState::Delivered => 2,
            DeliveryState::Read => 3,
            DeliveryState::Failed { .. } => 4,
        }
    }

    /// The state after a receipt saying `next`: `next` if it is a step forward, `self` otherwise.
    /// Failures win over everything except `Read` (a read message was evidently delivered, and
    /// a `Read` after a failure wins too); the first failure is kept.
    pub fn advance(&self, next: DeliveryState) -> DeliveryState {
        let forward = match (self, &next) {
            // A read message was evidently delivered, whichever report came first (providers
            // send callbacks without times, so they can arrive in either order).
            (DeliveryState::Failed { .. }, DeliveryState::Read) => true,
            (DeliveryState::Failed { .. }, _) => false,
            (DeliveryState::Read, DeliveryState::Failed { .. }) => false,
            _ => next.rank() > self.rank(),
        };
        if forward { next } else { self.clone() }
    }

    /// Whether no later receipt can change this state (only `Read`: a failure still gives way
    /// to a `Read` that arrives after it).
    pub fn is_final(&self) -> bool {
        matches!(self, DeliveryState::Read)
    }
}

/// One message in a conversation, in either direction, on any channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Id of this message (UUID v7: sorts by the time it was taken, which is when the message
    /// was recorded, or when a send reserved it with `Engine::new_message_id`).
    pub id: MessageId,
    /// The tenant.
    pub tenant: TenantId,
    /// The conversation it belongs to.
    pub conversation: ConversationId,
    /// Inbound or outbound.
    pub direction: Direction,
    /// Who wrote it.
    pub author: Author,
    /// The channel it travelled on.
    pub channel: ChannelKind,
    /// Our endpoint it travelled through.
    pub endpoint: EndpointId,
    /// The provider's id for it (WhatsApp `wamid`, email Message-ID, …).
    pub external_id: Option<String>,
    /// For an outbound message, the customer's identity it went to (an inbound message names
    /// its sender in [`Message::author`]); `None` when recorded without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<IdentityId>,
    /// What it says.
    pub content: Content,
    /// Delivery state (inbound messages are `Delivered` on arrival).
    pub delivery: DeliveryState,
    /// When the sender sent it, as the provider reports.
    pub sent_at: DateTime<Utc>,
    /// When touchpoint recorded it.
    pub recorded_at: DateTime<Utc>,
    /// Optimistic-concurrency version (delivery updates bump it).
    pub version: u64,
}
