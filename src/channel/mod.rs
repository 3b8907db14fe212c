//! The channel layer: what an endpoint can do, how content is rendered for it, how it is sent,
//! which channel a reply takes, and how delivery receipts come back.
//!
//! * [`Channel`] — the trait a channel kit implements for one of our endpoints (a WhatsApp
//!   number, an SMS sender, a Messenger page): its [`Capabilities`], `send`, and optional typing
//!   indicator and mark-as-read. [`StubChannel`] records sends for tests.
//! * [`Capabilities`] — limits and features per channel, with constructors for the real
//!   channels ([`Capabilities::whatsapp`], [`Capabilities::sms`], …).
//! * [`render`] — channel-neutral [`Content`](crate::model::Content) to [`RenderedPart`]s,
//!   degrading predictably (buttons → list → quick replies → numbered text, media → link, long
//!   text → several messages); [`RenderOverrides`] let a host send its own payload on a channel.
//! * [`sms`] — GSM-7 / UCS-2 segmentation, segment counts and cost estimates.
//! * [`ChannelPolicy`] — which endpoint and identity a reply goes out through, and why.
//! * [`Receipt`] — delivery receipts (per message or Messenger-style watermarks), applied in
//!   batches that tolerate duplicates and reordering.
//!
//! The whole outbound path, from content to the provider id:
//!
//! ```
//! use std::sync::Arc;
//! use touchpoint::channel::{render, send_all, Channel, OutgoingMessage, StubChannel, Capabilities};
//! use touchpoint::model::*;
//! # futures::executor::block_on(async {
//! let channel = StubChannel::new(EndpointId::new("wa-main").unwrap(), Capabilities::whatsapp());
//! let to = NormalizedAddress { kind: AddressKind::Phone, value: "+447700900123".into() };
//! let parts = render(&Content::text("Your refund is on its way."), channel.capabilities()).unwrap();
//! let messages: Vec<OutgoingMessage> = parts.into_iter().map(|p| OutgoingMessage::new(to.clone(), p)).collect();
//! let report = send_all(&channel, &messages).await;
//! assert_eq!(report.provider_message_ids, ["stub-wa-main-1"]);
//! assert!(report.failure.is_none());
//! assert_eq!(channel.sent().len(), 1);
//! # });
//! ```

mod capabilities;
mod choose;
mod receipt;
mod render;
pub mod sms;
mod stub;
mod text;

pub use capabilities::{Capabilities, ChoiceLimits, LengthUnit, Limit, MediaSupport, ReplyWindowRule, WindowStatus};
pub use choose::{ChannelChoice, ChannelPolicy, ChoiceReason, SkippedRoute};
pub use receipt::{DeliveryUpdate, Receipt, ReceiptPlan, ReceiptReport, Watermark, apply_receipts, plan_receipts};
pub use render::{RenderOverrides, RenderedPart, Renderer, render};
pub use stub::{SentMessage, StubChannel};
pub use text::split_text;

use crate::model::{ChannelKind, EndpointId, NormalizedAddress};
use crate::{Error, Result};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// The Messenger and Instagram message tag for replies written by a human agent outside the
/// 24-hour window (allowed for 7 days after the customer's last message).
pub const HUMAN_AGENT_TAG: &str = "HUMAN_AGENT";

/// One provider message to send: a rendered part, its recipient and how it is sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutgoingMessage {
    /// The customer's address on the channel (the identity's normalised address).
    pub recipient: NormalizedAddress,
    /// What to send.
    pub part: RenderedPart,
    /// The provider id of the message this one answers (WhatsApp `context.id`, Telegram
    /// `reply_to_message_id`), if any.
    pub reply_to: Option<String>,
    /// The provider's message tag (Messenger/Instagram [`HUMAN_AGENT_TAG`] outside the 24-hour
    /// window), if any.
    pub message_tag: Option<String>,
}

impl OutgoingMessage {
    /// `part` to `recipient`, not a reply, untagged.
    pub fn new(recipient: NormalizedAddress, part: RenderedPart) -> Self {
        OutgoingMessage { recipient, part, reply_to: None, message_tag: None }
    }

    /// Quotes the provider message `id`.
    pub fn reply_to(mut self, id: impl Into<String>) -> Self {
        self.reply_to = Some(id.into());
        self
    }

    /// Sends with a provider message tag.
    pub fn tagged(mut self, tag: impl Into<String>) -> Self {
        self.message_tag = Some(tag.into());
        self
    }
}

/// One of our endpoints on a channel, as a channel kit implements it.
///
/// Object-safe (`Arc<dyn Channel>`), `Send + Sync`. The trait does no I/O of its own: a kit
/// brings its HTTP client or SMTP transport and maps provider failures to
/// [`Error::Provider`] (with the provider's code and whether a retry may help) and content the
/// provider cannot take to [`Error::InvalidInput`].
#[async_trait]
pub trait Channel: Send + Sync + std::fmt::Debug {
    /// The endpoint this channel sends from.
    fn endpoint(&self) -> &EndpointId;

    /// What the endpoint can show and do.
    fn capabilities(&self) -> &Capabilities;

    /// The kind of channel (from the capabilities).
    fn kind(&self) -> &ChannelKind {
        &self.capabilities().channel
    }

    /// Sends one message; returns the provider's id for it (WhatsApp `wamid`, Twilio
    /// `MessageSid`, email `Message-ID`, Messenger `mid`), which delivery receipts and customer
    /// replies later refer to. Return it in the form the channel's kit uses for inbound ids and
    /// reply references — for Telegram `<endpoint>:<chat id>:<message id>` (the Telegram kit's
    /// `TelegramKit::message_id`) — so that a customer who quotes
    /// the message lands in its conversation ([`Engine::send`](crate::Engine::send) records it).
    async fn send(&self, message: &OutgoingMessage) -> Result<String>;

    /// Shows a typing indicator to `recipient`. The default does nothing and succeeds: a typing
    /// indicator is a courtesy, never a reason to fail a reply. Kits of channels whose
    /// [`Capabilities::typing`] is true override it.
    async fn typing(&self, recipient: &NormalizedAddress) -> Result<()> {
        let _ = recipient;
        Ok(())
    }

    /// Marks the customer's message `provider_message_id` as read. The default does nothing and
    /// succeeds (the channel has no such signal); kits of channels whose
    /// [`Capabilities::mark_read`] is true override it.
    async fn mark_read(&self, recipient: &NormalizedAddress, provider_message_id: &str) -> Result<()> {
        let _ = (recipient, provider_message_id);
        Ok(())
    }
}

/// What [`send_all`] achieved.
#[derive(Debug)]
pub struct SendReport {
    /// Provider ids of the messages sent, in order.
    pub provider_message_ids: Vec<String>,
    /// The first failure (index into the messages, and the error); later messages were not
    /// attempted.
    pub failure: Option<(usize, Error)>,
}

impl SendReport {
    /// Whether every message was sent.
    pub fn is_complete(&self) -> bool {
        self.failure.is_none()
    }
}

/// Sends `messages` in order through `channel`, stopping at the first failure so the customer
/// never sees part 3 without part 2. The report keeps the ids of what was sent either way, so
/// the host can record it and resend only the rest.
pub async fn send_all(channel: &dyn Channel, messages: &[OutgoingMessage]) -> SendReport {
    let mut provider_message_ids = Vec::with_capacity(messages.len());
    for (i, message) in messages.iter().enumerate() {
        match channel.send(message).await {
            Ok(id) => provider_message_ids.push(id),
            Err(e) => return SendReport { provider_message_ids, failure: Some((i, e)) },
        }
    }
    SendReport { provider_message_ids, failure: None }
}
