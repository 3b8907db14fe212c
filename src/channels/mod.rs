//! Channel kits: parsers that turn a provider's raw webhook or message bytes into
//! [`InboundMessage`](crate::model::InboundMessage)s and [`DeliveryReceipt`]s, and builders for
//! what the provider expects back. Each kit sits behind its cargo feature:
//!
//! * [`twilio`] (`twilio`) — Programmable Messaging (SMS, MMS, WhatsApp through Twilio) and
//!   Voice webhooks, status callbacks, the Messages API form and TwiML for simple voice answers;
//!   [`form`] is its `application/x-www-form-urlencoded` parser.
//! * [`email`] (`email`) — raw RFC 5322 messages (through `mail-parser`): threading hints, reply
//!   tokens, auto-reply and bounce detection, quoted-reply stripping, and a MIME builder.
//! * [`webchat`] (`webchat`) — a small documented JSON format for a website chat widget, with
//!   HMAC identity verification of signed-in visitors.
//!
//! Every parser takes raw bytes and returns typed results: malformed input is an
//! [`Error::InvalidInput`](crate::Error::InvalidInput) (or `InvalidAddress`) that names the
//! offending field, never a panic. Webhook signature checks are a separate step the host runs
//! on the same bytes first.

use crate::model::{Address, ChannelKind, DeliveryState};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[cfg(feature = "email")]
pub mod email;
#[cfg(feature = "twilio")]
pub mod form;
#[cfg(feature = "twilio")]
pub mod twilio;
#[cfg(feature = "webchat")]
pub mod webchat;

/// What a provider reported about a message we sent: apply it with
/// [`Engine::update_delivery`](crate::Engine::update_delivery)`(tenant, &receipt.channel,
/// &receipt.external_id, receipt.state)`, which ignores receipts that would move the state
/// backwards.
///
/// ```
/// use touchpoint::channels::DeliveryReceipt;
/// use touchpoint::model::{ChannelKind, DeliveryState};
/// let receipt = DeliveryReceipt::new(ChannelKind::Sms, "SM123", DeliveryState::Delivered);
/// assert_eq!(receipt.at, None);
/// assert!(!receipt.watermark);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryReceipt {
    /// The channel the message went out on.
    pub channel: ChannelKind,
    /// The provider's id of our message (Twilio `MessageSid`, the email Message-ID without
    /// angle brackets); for a [watermark](DeliveryReceipt::watermark) receipt, the latest
    /// message it covers.
    pub external_id: String,
    /// The state the provider reports.
    pub state: DeliveryState,
    /// When the provider says it happened (`None`: the provider gave no time; use the time the
    /// receipt arrived).
    pub at: Option<DateTime<Utc>>,
    /// The recipient the receipt is about, when the provider names one (the phone number of an
    /// SMS, the `Final-Recipient` of a bounce).
    pub recipient: Option<Address>,
    /// Whether the receipt covers every earlier message too (Messenger-style read watermarks)
    /// rather than one message.
    pub watermark: bool,
}

impl DeliveryReceipt {
    /// A receipt for one message, without a time or recipient.
    pub fn new(channel: ChannelKind, external_id: impl Into<String>, state: DeliveryState) -> Self {
        DeliveryReceipt { channel, external_id: external_id.into(), state, at: None, recipient: None, watermark: false }
    }
}

/// The kind of media a MIME type names (`image/*`, `video/*`, `audio/*`; anything else is a
/// document).
#[cfg(any(feature = "twilio", feature = "webchat"))]
pub(crate) fn media_kind(mime_type: &str) -> crate::model::MediaKind {
    use crate::model::MediaKind;
    let top = mime_type.split('/').next().unwrap_or("").trim();
    if top.eq_ignore_ascii_case("image") {
        MediaKind::Image
    } else if top.eq_ignore_ascii_case("video") {
        MediaKind::Video
    } else if top.eq_ignore_ascii_case("audio") {
        MediaKind::Audio
    } else {
        MediaKind::Document
    }
}

/// The 64-bit FNV-1a hash of `parts` (separated by a zero byte), as 16 hex digits: a stable
/// fingerprint for idempotency keys of provider events that carry no id of their own.
#[cfg(feature = "twilio")]
pub(crate) fn fingerprint(parts: &[&str]) -> String {
    let separated = parts.iter().enumerate().flat_map(|(i, p)| (i > 0).then_some(0u8).into_iter().chain(p.bytes()));
    let hash = separated.fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3));
    format!("{hash:016x}")
}
