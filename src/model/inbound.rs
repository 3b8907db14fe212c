//! What a channel kit hands to the engine for every contact it receives.

use super::{Address, ChannelKind, Content, EndpointId, Verification};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One inbound message, channel-neutral, as parsed from a webhook or raw message.
///
/// ```
/// use touchpoint::model::{Address, ChannelKind, Content, EndpointId, InboundMessage};
/// let msg = InboundMessage::new(
///     ChannelKind::WhatsApp,
///     EndpointId::new("wa-main").unwrap(),
///     Address::phone("+5511987654321"),
///     "wamid.1",
///     Content::text("Hi, my order has not arrived"),
/// );
/// // Phone numbers on WhatsApp and SMS are asserted by the network.
/// assert_eq!(msg.verification, touchpoint::model::Verification::CarrierAsserted);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundMessage {
    /// The channel it came in on.
    pub channel: ChannelKind,
    /// Our endpoint that received it.
    pub endpoint: EndpointId,
    /// The sender's address on that channel.
    pub sender: Address,
    /// How far the sender address is trusted.
    pub verification: Verification,
    /// The provider's message id: the idempotency key (with tenant and channel).
    pub external_id: String,
    /// What the customer sent.
    pub content: Content,
    /// When the provider says it was sent (defaults to the time of ingest).
    pub sent_at: Option<DateTime<Utc>>,
    /// The sender's display name as the channel reports it.
    pub sender_name: Option<String>,
    /// Further keys for the same person that came with the message (a verified external id of
    /// a signed-in web-chat visitor, the phone number next to a WhatsApp user id, an email typed
    /// into a pre-chat form).
    pub claims: Vec<Claim>,
    /// References that tie the message to an existing conversation.
    pub thread: ThreadHints,
}

impl InboundMessage {
    /// A message with the default trust for its sender address: phone numbers on SMS, WhatsApp
    /// and voice are carrier-asserted, everything else unverified.
    pub fn new(
        channel: ChannelKind,
        endpoint: EndpointId,
        sender: Address,
        external_id: impl Into<String>,
        content: Content,
    ) -> Self {
        let verification = match (&sender, &channel) {
            (Address::Phone { .. }, ChannelKind::Sms | ChannelKind::WhatsApp | ChannelKind::Voice) => {
                Verification::CarrierAsserted
            }
            _ => Verification::Unverified,
        };
        InboundMessage {
            channel,
            endpoint,
            sender,
            verification,
            external_id: external_id.into(),
            content,
            sent_at: None,
            sender_name: None,
            claims: Vec::new(),
            thread: ThreadHints::default(),
        }
    }

    /// Sets how far the sender address is trusted.
    pub fn with_verification(mut self, verification: Verification) -> Self {
        self.verification = verification;
        self
    }

    /// Adds a claim about who the sender is.
    pub fn with_claim(mut self, key: CustomerKey, verification: Verification) -> Self {
        self.claims.push(Claim { key, verification });
        self
    }

    /// Sets the thread hints.
    pub fn with_thread(mut self, thread: ThreadHints) -> Self {
        self.thread = thread;
        self
    }

    /// Sets the sender's display name.
    pub fn with_sender_name(mut self, name: impl Into<String>) -> Self {
        self.sender_name = Some(name.into());
        self
    }

    /// Sets the provider's send time.
    pub fn with_sent_at(mut self, at: DateTime<Utc>) -> Self {
        self.sent_at = Some(at);
        self
    }
}

/// A key that identifies a person across channels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum CustomerKey {
    /// The host's own user id.
    ExternalId(String),
    /// An email address (normalised before lookup).
    Email(String),
    /// A phone number (normalised before lookup).
    Phone(String),
}

/// A key that came with a message, and how far it is trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The key.
    pub key: CustomerKey,
    /// Its trust. Only carrier-asserted and verified claims ever link to an existing customer.
    pub verification: Verification,
}

/// References in a message that point at an existing conversation.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ThreadHints {
    /// The provider's conversation or thread id.
    pub provider_thread_id: Option<String>,
    /// Our reply token, as found in the recipient address (`reply+<token>@…`).
    pub reply_token: Option<String>,
    /// Email `In-Reply-To`.
    pub in_reply_to: Option<String>,
    /// Email `References`, oldest first. A mail without the header starts the list with its
    /// `In-Reply-To` id, as RFC 5322 §3.6.4 builds the references of a reply to it.
    pub references: Vec<String>,
    /// Subject line (email), kept as the conversation's subject.
    pub subject: Option<String>,
}
