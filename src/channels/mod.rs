//! Channel kits: turn a provider's webhook or raw message into the crate's model, and the model
//! into what the provider expects back.
//!
//! Every kit sits behind its own cargo feature and does no I/O: the host owns the HTTP endpoint,
//! checks the request with `signature` (feature `signatures`), hands the kit the **raw body
//! bytes**, and gets back customer messages ready for [`Engine::ingest`](crate::Engine::ingest),
//! [`DeliveryReceipt`]s for [`Engine::update_delivery`](crate::Engine::update_delivery), and the
//! rest reported rather than dropped silently ([`KitEvent`]). Outbound, a kit builds the body of
//! the provider's send call; posting it is the host's job.
//!
//! | module | feature | parses | builds |
//! |---|---|---|---|
//! | `signature` | `signatures` | Meta, Twilio, Telegram and Slack webhook authenticity checks | signatures for tests |
//! | `whatsapp` | `whatsapp` | WhatsApp Cloud API webhooks | Cloud API send-message JSON |
//! | `messenger` | `messenger` | Messenger and Instagram webhooks | Send API JSON, sender actions |
//! | `telegram` | `telegram` | Bot API `Update`s | `sendMessage`, `sendPhoto`, … JSON |
//! | `twilio` (+ `form`) | `twilio` | SMS, MMS, WhatsApp-through-Twilio and Voice webhooks, status callbacks | Messages API form, TwiML |
//! | `email` | `email` | raw RFC 5322 (threading hints, reply tokens, auto-replies, bounces, quote stripping) | MIME with our Message-ID |
//! | `webchat` | `webchat` | a documented widget JSON format with HMAC identity verification | — |
//!
//! Malformed input fails with [`Error::InvalidInput`](crate::Error::InvalidInput) (or
//! `InvalidAddress`) naming the offending field or JSON path; parsing never panics and never
//! half-succeeds.

use crate::model::{Address, ChannelKind, Content, DeliveryState, EndpointId, InboundMessage};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[cfg(feature = "email")]
pub mod email;
#[cfg(feature = "email")]
mod email_mime;
#[cfg(feature = "twilio")]
pub mod form;
#[cfg(any(feature = "whatsapp", feature = "messenger", feature = "telegram"))]
mod json;
#[cfg(feature = "messenger")]
pub mod messenger;
#[cfg(feature = "whatsapp")]
mod scan;
#[cfg(feature = "signatures")]
pub mod signature;
#[cfg(feature = "telegram")]
pub mod telegram;
#[cfg(feature = "twilio")]
pub mod twilio;
#[cfg(feature = "webchat")]
pub mod webchat;
#[cfg(feature = "whatsapp")]
pub mod whatsapp;

/// What a provider reported about a message we sent. Messenger and Instagram report
/// watermarks (`watermark == true`): every message sent to `recipient` up to `at` reached
/// `state`, and `external_id` is empty. Otherwise apply it with
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

#[cfg(any(feature = "whatsapp", feature = "telegram", feature = "twilio", feature = "webchat"))]
/// Removes control characters and cuts to at most `max` bytes on a character boundary: display
/// names are shown, not trusted, and must not fail a whole webhook.
pub(crate) fn display_name(raw: &str, max: usize) -> Option<String> {
    // A name that starts and ends with a visible ASCII character has nothing to trim.
    let trimmed = match raw.as_bytes() {
        [first, .., last] if first.is_ascii_graphic() && last.is_ascii_graphic() => raw,
        _ => raw.trim(),
    };
    // The common case, a short name without control characters, is the trimmed name itself
    // (bytes 0xC2 may start a C1 control character: those take the careful path).
    if trimmed.len() <= max && trimmed.bytes().all(|b| b >= 0x20 && b != 0x7f && b != 0xc2) {
        return (!trimmed.is_empty()).then(|| trimmed.to_owned());
    }
    let mut out = String::with_capacity(raw.len().min(max));
    for c in raw.trim().chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    let out = out.trim_end().to_owned();
    (!out.is_empty()).then_some(out)
}

/// Whether `url` is an `http://` or `https://` link (any case), the only kind of URL a platform
/// can fetch media from: not another kit's file id (`whatsapp-media:`, `telegram-file:`), a
/// `cid:` reference or a local path.
#[cfg(any(feature = "whatsapp", feature = "messenger", feature = "telegram"))]
pub(crate) fn http_link(url: &str) -> bool {
    url.get(..8).is_some_and(|p| p.eq_ignore_ascii_case("https://"))
        || url.get(..7).is_some_and(|p| p.eq_ignore_ascii_case("http://"))
}

/// Refuses coordinates off the globe (a latitude outside -90..=90, a longitude outside
/// -180..=180, or not a number), which the platforms refuse.
#[cfg(any(feature = "whatsapp", feature = "telegram"))]
pub(crate) fn check_coordinates(latitude: f64, longitude: f64) -> crate::Result<()> {
    if !(-90.0..=90.0).contains(&latitude) || !(-180.0..=180.0).contains(&longitude) {
        return Err(crate::Error::invalid(
            "content.latitude",
            "coordinates must be a latitude of -90 to 90 and a longitude of -180 to 180",
        ));
    }
    Ok(())
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

/// A message our own side sent, reported back by the provider (Messenger `message_echoes`,
/// Instagram echoes). It is not a customer message: hosts that send through another tool can
/// record it with [`Engine::record_outbound`](crate::Engine::record_outbound); others ignore it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Echo {
    /// The channel.
    pub channel: ChannelKind,
    /// Our endpoint that sent it.
    pub endpoint: EndpointId,
    /// The customer it went to.
    pub recipient: Address,
    /// The provider's message id.
    pub external_id: String,
    /// What was sent, when the kit understands it.
    pub content: Option<Content>,
    /// The app that sent it (to tell our own sends from another inbox's).
    pub app_id: Option<String>,
    /// The `metadata` string attached at send time, if any.
    pub metadata: Option<String>,
    /// When it was sent.
    pub at: Option<DateTime<Utc>>,
}

/// One thing a webhook said, in the crate's words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum KitEvent {
    /// A customer's message, ready for [`Engine::ingest`](crate::Engine::ingest).
    Message(InboundMessage),
    /// The customer edited a message they sent before (Telegram `edited_message`, Messenger
    /// `message_edits`). `message` carries the new content under its own unique external id, so
    /// ingesting it records the edit next to the original.
    Edited {
        /// The provider id of the message that was edited (as the original's `external_id`).
        original: String,
        /// The edited message.
        message: InboundMessage,
    },
    /// The customer pressed an inline button (Telegram `callback_query`). Ingest `message` (the
    /// pick, as [`Content::Choices`]) and answer `query_id` with `answerCallbackQuery`, or the
    /// customer's app keeps showing a spinner.
    ButtonPressed {
        /// The callback query id to answer.
        query_id: String,
        /// The customer's pick.
        message: InboundMessage,
    },
    /// A delivery or read receipt for a message we sent.
    Receipt(DeliveryReceipt),
    /// A copy of a message our side sent.
    Echo(Echo),
    /// The provider reported a problem that is about no single message (WhatsApp's
    /// webhook-level `errors`: a rate limit, an app or account problem). Nothing to ingest:
    /// log it or alert on it; the code is the provider's, for its error table.
    ProviderError {
        /// The channel.
        channel: ChannelKind,
        /// Our endpoint the problem is about, when the provider names it.
        endpoint: Option<EndpointId>,
        /// The provider's error code, if any.
        code: Option<String>,
        /// The provider's words for it.
        reason: String,
    },
    /// Something the provider sent that carries no customer message and no receipt (account
    /// updates, Telegram polls, Messenger handovers, …), named so it can be logged.
    Skipped {
        /// What it was, as `channel.kind` (`whatsapp.account_update`, `telegram.poll`, …).
        kind: String,
    },
}

impl KitEvent {
    /// The customer message this event carries, if any (`Message`, `Edited`, `ButtonPressed`).
    pub fn message(&self) -> Option<&InboundMessage> {
        match self {
            KitEvent::Message(m) | KitEvent::Edited { message: m, .. } | KitEvent::ButtonPressed { message: m, .. } => {
                Some(m)
            }
            _ => None,
        }
    }

    /// Takes the customer message out of this event, if it carries one.
    pub fn into_message(self) -> Option<InboundMessage> {
        match self {
            KitEvent::Message(m) | KitEvent::Edited { message: m, .. } | KitEvent::ButtonPressed { message: m, .. } => {
                Some(m)
            }
            _ => None,
        }
    }

    /// The receipt this event carries, if any.
    pub fn receipt(&self) -> Option<&DeliveryReceipt> {
        match self {
            KitEvent::Receipt(r) => Some(r),
            _ => None,
        }
    }
}
