//! Channel kits: turn a provider's webhook into the crate's model, and the model into the
//! provider's send-API JSON.
//!
//! Every kit sits behind its own cargo feature and does no I/O: the host owns the HTTP endpoint,
//! hands the kit the **raw body bytes** (after checking the request with `signature`, feature `signatures`), and gets
//! back [`KitEvent`]s — customer messages ready for [`Engine::ingest`](crate::Engine::ingest),
//! delivery receipts for [`Engine::update_delivery`](crate::Engine::update_delivery), and the
//! rest reported rather than dropped silently. Outbound, a kit builds the JSON body of the
//! provider's send call from channel-neutral [`Content`]; posting it is the host's job.
//!
//! | module | feature | parses | builds |
//! |---|---|---|---|
//! | `signature` | `signatures` | Meta, Twilio, Telegram and Slack webhook authenticity checks | signatures for tests |
//! | `whatsapp` | `whatsapp` | WhatsApp Cloud API webhooks | Cloud API send-message JSON |
//! | `messenger` | `messenger` | Messenger and Instagram webhooks | Send API JSON, sender actions |
//! | `telegram` | `telegram` | Bot API `Update`s | `sendMessage`, `sendPhoto`, … JSON |
//!
//! Malformed payloads fail with [`Error::InvalidInput`](crate::Error::InvalidInput) whose reason
//! starts with the JSON path of the offending value (`entry[0].changes[0].value.messages[1].id`);
//! parsing never panics and never half-succeeds: either every event of the body is returned or
//! an error is.

use crate::model::{Address, ChannelKind, Content, DeliveryState, EndpointId, InboundMessage};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[cfg(any(feature = "whatsapp", feature = "messenger", feature = "telegram"))]
mod json;
#[cfg(feature = "messenger")]
pub mod messenger;
#[cfg(feature = "signatures")]
pub mod signature;
#[cfg(feature = "telegram")]
pub mod telegram;
#[cfg(feature = "whatsapp")]
pub mod whatsapp;

/// A provider's report on a message we sent: it was sent, delivered, read or failed.
///
/// Most providers report per message (`watermark == false`): apply it to the message whose
/// provider id is `external_id` with [`Engine::update_delivery`](crate::Engine::update_delivery).
/// Messenger and Instagram report **watermarks** (`watermark == true`): every message sent to
/// `recipient` up to `at` has reached `state`; `external_id` is then empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryReceipt {
    /// The channel of the message.
    pub channel: ChannelKind,
    /// The provider's id of our message (WhatsApp `wamid`, Messenger `mid`); empty for
    /// watermarks.
    pub external_id: String,
    /// The state the message reached.
    pub state: DeliveryState,
    /// When the provider says the state was reached (for a watermark: the watermark itself).
    pub at: DateTime<Utc>,
    /// The customer the message went to, when the provider says.
    pub recipient: Option<Address>,
    /// Whether this receipt covers every message to `recipient` up to `at` rather than one.
    pub watermark: bool,
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
