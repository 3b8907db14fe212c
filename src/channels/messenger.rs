//! Messenger and Instagram messaging kit (Meta Messenger Platform): webhooks in, Send API JSON
//! out.
//!
//! **Inbound.** [`MessengerKit::parse_webhook`] takes the raw body of a webhook POST with
//! `object` `page` (Messenger) or `instagram` (check it first with
//! [`MetaSignature`](super::signature::MetaSignature)) and returns, per `messaging[]` event:
//!
//! | event | [`KitEvent`] |
//! |---|---|
//! | `message` with `text` | `Message` with [`Content::Text`] |
//! | `message` with `quick_reply` | `Message` with [`Content::Choices`], `selected` = the payload |
//! | `message` with `attachments` | one `Message` per attachment (the 2nd, 3rd … under `<mid>#2`, …): image, video, audio, file as [`Content::Media`] with the CDN URL; shared posts, reels, story mentions and links as [`Content::System`] `shared_<type>` |
//! | `message` with `is_echo` | `Echo` (our page's own message; Instagram echoes arrive as messages) |
//! | `message` with `is_deleted` (Instagram unsend) | `Skipped` `instagram.message_deleted` |
//! | `postback` (button, Get Started, ice breaker) | `Message` with [`Content::Choices`], `selected` = the payload |
//! | `reaction` | `Message` with [`Content::System`] `reaction` / `reaction_removed`, replying to the reacted message |
//! | `message_edit` | `Edited` |
//! | `delivery` | one `Receipt` per listed `mid`, then a watermark `Receipt` ([`DeliveryState::Delivered`]) |
//! | `read` (Instagram `messaging_seen`) | a watermark (or per-`mid`) `Receipt` ([`DeliveryState::Read`]) |
//! | `referral`, `optin`, handovers, `standby`, `changes` … | `Skipped` |
//!
//! The customer is the page-scoped id (PSID) or Instagram-scoped id (IGSID), scoped to the page
//! or Instagram account: [`Address::platform`]`(page_id, psid)`. The endpoint is named after the
//! page / account id unless mapped with [`MessengerKit::with_endpoint`]. `reply_to.mid` becomes
//! `thread.in_reply_to`. Dedupe is on `mid`; events without one (reactions, old postbacks) get a
//! stable id built from the sender, the target and the timestamp.
//!
//! ```
//! use touchpoint::channels::{messenger::MessengerKit, KitEvent};
//! use touchpoint::model::{Address, ChannelKind, Content};
//!
//! let body = br#"{"object":"page","entry":[{"id":"700000000000001","time":1735689600500,"messaging":[
//!   {"sender":{"id":"6100000000000001"},"recipient":{"id":"700000000000001"},"timestamp":1735689600400,
//!    "message":{"mid":"m_TESTMID0001","text":"Where is my order?"}}]}]}"#;
//! let events = MessengerKit::new().parse_webhook(body).unwrap();
//! let KitEvent::Message(msg) = &events[0] else { panic!() };
//! assert_eq!(msg.channel, ChannelKind::Messenger);
//! assert_eq!(msg.sender, Address::platform("700000000000001", "6100000000000001"));
//! assert_eq!(msg.content, Content::text("Where is my order?"));
//! ```
//!
//! **Outbound.** [`send_requests`] turns [`Content`] into Send API bodies
//! (`POST /{page-id}/messages`), with `messaging_type` and the `HUMAN_AGENT` tag for replies
//! between 24 hours and 7 days after the customer's last message; [`sender_action`] builds
//! typing indicators and mark-seen.

use super::json::{self, IdString, UnixMillis};
use super::{DeliveryReceipt, Echo, KitEvent};
use crate::model::{
    Address, ChannelKind, ChoiceOption, Content, DeliveryState, EndpointId, InboundMessage, MediaKind, ThreadHints,
};
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};
use std::borrow::Cow;
use std::collections::HashMap;

const FIELD: &str = "messenger webhook";

/// Parses Messenger and Instagram webhooks. Cheap to clone; `Send + Sync`.
#[derive(Debug, Clone, Default)]
pub struct MessengerKit {
    endpoints: HashMap<String, EndpointId>,
}

impl MessengerKit {
    /// A kit that names each page's (or Instagram account's) endpoint after its id.
    pub fn new() -> Self {
        Self::default()
    }

    /// Names the endpoint of the page or Instagram professional account `id`.
    pub fn with_endpoint(mut self, id: impl Into<String>, endpoint: EndpointId) -> Self {
        self.endpoints.insert(id.into(), endpoint);
        self
    }

    /// Parses the raw body of one webhook POST into events, in payload order. Malformed bodies
    /// fail with [`Error::InvalidInput`] naming the JSON path; nothing is returned partially.
    pub fn parse_webhook(&self, body: &[u8]) -> Result<Vec<KitEvent>> {
        let hook: Webhook<'_> = json::parse(FIELD, body)?;
        let channel = match hook.object.as_ref() {
            "page" => ChannelKind::Messenger,
            "instagram" => ChannelKind::Instagram,
            other => {
                return Err(json::at(
                    FIELD,
                    "object",
                    format!("is {other:?}; a Messenger webhook has `page`, an Instagram one `instagram`"),
                ));
            }
        };
        let mut out = Vec::new();
        for (i, entry) in hook.entry.into_iter().enumerate() {
            let page = entry.id.0;
            let endpoint = match self.endpoints.get(&page) {
                Some(e) => e.clone(),
                None => EndpointId::new(page.as_str()).map_err(|e| json::at(FIELD, &format!("entry[{i}].id"), e))?,
            };
            let ctx = Ctx { channel: channel.clone(), page: &page, endpoint };
            for (k, event) in entry.messaging.into_iter().enumerate() {
                let path = |rest: &str| format!("entry[{i}].messaging[{k}]{rest}");
                ctx.event(event, &path, &mut out)?;
            }
            for _ in entry.standby {
                out.push(ctx.skipped("standby"));
            }
            for _ in entry.changes {
                out.push(ctx.skipped("changes"));
            }
        }
        Ok(out)
    }
}

struct Ctx<'p> {
    channel: ChannelKind,
    page: &'p str,
    endpoint: EndpointId,
}

impl Ctx<'_> {
    fn skipped(&self, what: &str) -> KitEvent {
        KitEvent::Skipped { kind: format!("{}.{what}", self.channel) }
    }

    fn customer(&self, party: &Option<Party>, path: &dyn Fn(&str) -> String, name: &str) -> Result<Address> {
        let id = party
            .as_ref()
            .and_then(|p| {
                p.id.as_ref().map(|i| i.0.clone()).or_else(|| p.user_ref.as_ref().map(|r| format!("user_ref:{r}")))
            })
            .filter(|id| !id.is_empty())
            .ok_or_else(|| json::at(FIELD, &path(&format!(".{name}.id")), "missing"))?;
        let address = Address::platform(self.page, id);
        json::check_platform(FIELD, || path(&format!(".{name}.id")), &address)?;
        Ok(address)
    }

    fn inbound(&self, sender: &Address, id: String, content: Content, at: Option<DateTime<Utc>>) -> InboundMessage {
        let msg = InboundMessage::new(self.channel.clone(), self.endpoint.clone(), sender.clone(), id, content);
        match at {
            Some(t) => msg.with_sent_at(t),
            None => msg,
        }
    }

    fn event(&self, e: Event, path: &dyn Fn(&str) -> String, out: &mut Vec<KitEvent>) -> Result<()> {
        let at = e.timestamp.map(|t| t.0);
        if let Some(m) = e.message {
            if m.is_echo {
                let recipient = self.customer(&e.recipient, path, "recipient")?;
                json::check_id(FIELD, || path(".message.mid"), &m.mid)?;
                let content = message_contents(&m, &|r| path(&format!(".message{r}")))?.into_iter().next();
                out.push(KitEvent::Echo(Echo {
                    channel: self.channel.clone(),
                    endpoint: self.endpoint.clone(),
                    recipient,
                    external_id: m.mid,
                    content,
                    app_id: m.app_id.map(|a| a.0),
                    metadata: m.metadata,
                    at,
                }));
                return Ok(());
            }
            if m.is_deleted {
                out.push(self.skipped("message_deleted"));
                return Ok(());
            }
            let sender = self.customer(&e.sender, path, "sender")?;
            json::check_id(FIELD, || path(".message.mid"), &m.mid)?;
            let mut thread = ThreadHints::default();
            if let Some(reply_to) = m.reply_to.as_ref().and_then(|r| r.mid.as_deref()).filter(|s| !s.is_empty()) {
                json::check_id(FIELD, || path(".message.reply_to.mid"), reply_to)?;
                thread.in_reply_to = Some(reply_to.to_owned());
            }
            let message_path = |r: &str| path(&format!(".message{r}"));
            for (n, content) in message_contents(&m, &message_path)?.into_iter().enumerate() {
                json::check_content(FIELD, || path(".message"), &content)?;
                let id = if n == 0 { m.mid.clone() } else { format!("{}#{}", m.mid, n + 1) };
                out.push(KitEvent::Message(self.inbound(&sender, id, content, at).with_thread(thread.clone())));
            }
        } else if let Some(p) = e.postback {
            let sender = self.customer(&e.sender, path, "sender")?;
            let payload = p
                .payload
                .filter(|s| !s.is_empty())
                .ok_or_else(|| json::at(FIELD, &path(".postback.payload"), "missing"))?;
            let title = p.title.filter(|t| !t.trim().is_empty()).unwrap_or_else(|| payload.clone());
            let id = match p.mid.filter(|m| !m.is_empty()) {
                Some(mid) => mid,
                None => format!("postback:{}:{}", sender.raw(), stamp(at)),
            };
            json::check_id(FIELD, || path(".postback.mid"), &id)?;
            let content = Content::Choices {
                body: title.clone(),
                options: vec![ChoiceOption { id: payload.clone(), title, description: None }],
                selected: Some(payload),
            };
            json::check_content(FIELD, || path(".postback"), &content)?;
            out.push(KitEvent::Message(self.inbound(&sender, id, content, at)));
        } else if let Some(r) = e.reaction {
            let sender = self.customer(&e.sender, path, "sender")?;
            json::check_id(FIELD, || path(".reaction.mid"), &r.mid)?;
            let removed = r.action.as_deref() == Some("unreact");
            let content = match (removed, r.emoji.or(r.reaction).filter(|s| !s.is_empty())) {
                (false, Some(emoji)) => Content::System { event: "reaction".into(), detail: Some(emoji) },
                (false, None) => Content::System { event: "reaction".into(), detail: None },
                (true, _) => Content::System { event: "reaction_removed".into(), detail: None },
            };
            let action = if removed { "unreact" } else { "react" };
            let id = format!("reaction:{}:{}:{action}:{}", r.mid, sender.raw(), stamp(at));
            let thread = ThreadHints { in_reply_to: Some(r.mid), ..ThreadHints::default() };
            out.push(KitEvent::Message(self.inbound(&sender, id, content, at).with_thread(thread)));
        } else if let Some(edit) = e.message_edit {
            let sender = self.customer(&e.sender, path, "sender")?;
            json::check_id(FIELD, || path(".message_edit.mid"), &edit.mid)?;
            let text = edit
                .text
                .filter(|t| !t.trim().is_empty())
                .ok_or_else(|| json::at(FIELD, &path(".message_edit.text"), "missing"))?;
            let id = match edit.num_edit {
                Some(n) => format!("{}#edit{n}", edit.mid),
                None => format!("{}#edit@{}", edit.mid, stamp(at)),
            };
            out.push(KitEvent::Edited {
                original: edit.mid,
                message: self.inbound(&sender, id, Content::text(text), at),
            });
        } else if let Some(d) = e.delivery {
            let recipient = self.customer(&e.sender, path, "sender")?;
            let watermark = d.watermark.map(|w| w.0).or(at);
            let watermark = watermark.ok_or_else(|| json::at(FIELD, &path(".delivery.watermark"), "missing"))?;
            for (n, mid) in d.mids.into_iter().enumerate() {
                json::check_id(FIELD, || path(&format!(".delivery.mids[{n}]")), &mid)?;
                out.push(self.receipt(mid, DeliveryState::Delivered, watermark, &recipient, false));
            }
            out.push(self.receipt(String::new(), DeliveryState::Delivered, watermark, &recipient, true));
        } else if let Some(r) = e.read {
            let recipient = self.customer(&e.sender, path, "sender")?;
            match (r.mid.filter(|m| !m.is_empty()), r.watermark.map(|w| w.0)) {
                (Some(mid), w) => {
                    json::check_id(FIELD, || path(".read.mid"), &mid)?;
                    let when = w.or(at).ok_or_else(|| json::at(FIELD, &path(".timestamp"), "missing"))?;
                    out.push(self.receipt(mid, DeliveryState::Read, when, &recipient, false));
                }
                (None, Some(w)) => out.push(self.receipt(String::new(), DeliveryState::Read, w, &recipient, true)),
                (None, None) => return Err(json::at(FIELD, &path(".read.watermark"), "missing")),
            }
        } else {
            let kind = e.other_kind().unwrap_or("unknown_event");
            out.push(self.skipped(kind));
        }
        Ok(())
    }

    fn receipt(
        &self,
        external_id: String,
        state: DeliveryState,
        at: DateTime<Utc>,
        recipient: &Address,
        watermark: bool,
    ) -> KitEvent {
        KitEvent::Receipt(DeliveryReceipt {
            channel: self.channel.clone(),
            external_id,
            state,
            at: Some(at),
            recipient: Some(recipient.clone()),
            watermark,
        })
    }
}

fn stamp(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(|| "0".to_owned(), |t| t.timestamp_millis().to_string())
}

fn message_contents(m: &Msg, path: &dyn Fn(&str) -> String) -> Result<Vec<Content>> {
    let mut contents = Vec::new();
    if let Some(text) = m.text.as_deref().filter(|t| !t.is_empty()) {
        contents.push(match m.quick_reply.as_ref().and_then(|q| q.payload.as_deref()).filter(|p| !p.is_empty()) {
            Some(payload) => Content::Choices {
                body: text.to_owned(),
                options: vec![ChoiceOption { id: payload.to_owned(), title: text.to_owned(), description: None }],
                selected: Some(payload.to_owned()),
            },
            None => Content::text(text),
        });
    }
    for (n, a) in m.attachments.iter().enumerate() {
        contents.push(attachment(a, &|r| path(&format!(".attachments[{n}]{r}")))?);
    }
    if contents.is_empty() {
        let detail = if m.is_unsupported {
            "the customer sent something this platform does not deliver to the API"
        } else {
            "a message without text or attachments"
        };
        contents.push(Content::System { event: "unsupported".into(), detail: Some(detail.into()) });
    }
    Ok(contents)
}

fn attachment(a: &Attachment, path: &dyn Fn(&str) -> String) -> Result<Content> {
    let payload = a.payload.as_ref();
    let url = payload.and_then(|p| p.url.clone()).or_else(|| a.url.clone()).filter(|u| !u.is_empty());
    let title = payload.and_then(|p| p.title.clone()).or_else(|| a.title.clone()).filter(|t| !t.is_empty());
    let media = |kind: MediaKind| -> Result<Content> {
        let url = url.clone().ok_or_else(|| json::at(FIELD, &path(".payload.url"), "missing"))?;
        Ok(Content::Media { media: kind, url, mime_type: None, caption: None, filename: None })
    };
    match a.kind.as_str() {
        "image" if payload.is_some_and(|p| p.sticker_id.is_some()) => media(MediaKind::Sticker),
        "image" | "animated_image" => media(MediaKind::Image),
        "video" => media(MediaKind::Video),
        "audio" => media(MediaKind::Audio),
        "file" => media(MediaKind::Document),
        "location" => {
            let c = payload
                .and_then(|p| p.coordinates.as_ref())
                .ok_or_else(|| json::at(FIELD, &path(".payload.coordinates"), "missing"))?;
            Ok(Content::Location { latitude: c.lat, longitude: c.long, name: title, address: None })
        }
        other => {
            let event = if other == "fallback" { "shared_link".to_owned() } else { format!("shared_{other}") };
            let detail = match (title, url) {
                (Some(t), Some(u)) => Some(format!("{t} {u}")),
                (t, u) => t.or(u),
            };
            Ok(Content::System { event, detail })
        }
    }
}

// ----- webhook schema (only what the kit reads; unknown fields are ignored) -----

#[derive(Deserialize)]
struct Webhook<'a> {
    #[serde(borrow)]
    object: Cow<'a, str>,
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    id: IdString,
    #[serde(default)]
    messaging: Vec<Event>,
    #[serde(default)]
    standby: Vec<IgnoredAny>,
    #[serde(default)]
    changes: Vec<IgnoredAny>,
}

#[derive(Deserialize)]
struct Event {
    #[serde(default)]
    sender: Option<Party>,
    #[serde(default)]
    recipient: Option<Party>,
    #[serde(default)]
    timestamp: Option<UnixMillis>,
    #[serde(default)]
    message: Option<Msg>,
    #[serde(default)]
    postback: Option<Postback>,
    #[serde(default)]
    reaction: Option<Reaction>,
    #[serde(default)]
    message_edit: Option<Edit>,
    #[serde(default)]
    delivery: Option<Delivery>,
    #[serde(default)]
    read: Option<Read>,
    #[serde(default)]
    referral: Option<IgnoredAny>,
    #[serde(default)]
    optin: Option<IgnoredAny>,
    #[serde(default)]
    account_linking: Option<IgnoredAny>,
    #[serde(default)]
    pass_thread_control: Option<IgnoredAny>,
    #[serde(default)]
    take_thread_control: Option<IgnoredAny>,
    #[serde(default)]
    request_thread_control: Option<IgnoredAny>,
    #[serde(default)]
    policy_enforcement: Option<IgnoredAny>,
}

impl Event {
    fn other_kind(&self) -> Option<&'static str> {
        [
            (self.referral.is_some(), "referral"),
            (self.optin.is_some(), "optin"),
            (self.account_linking.is_some(), "account_linking"),
            (self.pass_thread_control.is_some(), "pass_thread_control"),
            (self.take_thread_control.is_some(), "take_thread_control"),
            (self.request_thread_control.is_some(), "request_thread_control"),
            (self.policy_enforcement.is_some(), "policy_enforcement"),
        ]
        .into_iter()
        .find_map(|(present, name)| present.then_some(name))
    }
}

#[derive(Deserialize)]
struct Party {
    #[serde(default)]
    id: Option<IdString>,
    #[serde(default)]
    user_ref: Option<String>,
}

#[derive(Deserialize)]
struct Msg {
    mid: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    quick_reply: Option<QuickReply>,
    #[serde(default)]
    reply_to: Option<ReplyTo>,
    #[serde(default)]
    attachments: Vec<Attachment>,
    #[serde(default)]
    is_echo: bool,
    #[serde(default)]
    app_id: Option<IdString>,
    #[serde(default)]
    metadata: Option<String>,
    #[serde(default)]
    is_deleted: bool,
    #[serde(default)]
    is_unsupported: bool,
}

#[derive(Deserialize)]
struct QuickReply {
    #[serde(default)]
    payload: Option<String>,
}

#[derive(Deserialize)]
struct ReplyTo {
    #[serde(default)]
    mid: Option<String>,
}

#[derive(Deserialize)]
struct Attachment {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    payload: Option<AttachmentPayload>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

#[derive(Deserialize)]
struct AttachmentPayload {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    sticker_id: Option<IdString>,
    #[serde(default)]
    coordinates: Option<Coordinates>,
}

#[derive(Deserialize)]
struct Coordinates {
    lat: f64,
    long: f64,
}

#[derive(Deserialize)]
struct Postback {
    #[serde(default)]
    mid: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    payload: Option<String>,
}

#[derive(Deserialize)]
struct Reaction {
    mid: String,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    emoji: Option<String>,
    #[serde(default)]
    reaction: Option<String>,
}

#[derive(Deserialize)]
struct Edit {
    mid: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    num_edit: Option<u32>,
}

#[derive(Deserialize)]
struct Delivery {
    #[serde(default)]
    mids: Vec<String>,
    #[serde(default)]
    watermark: Option<UnixMillis>,
}

#[derive(Deserialize)]
struct Read {
    #[serde(default)]
    watermark: Option<UnixMillis>,
    #[serde(default)]
    mid: Option<String>,
}

// ----- outbound -----

/// A message tag: permission to send outside the 24-hour standard messaging window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessageTag {
    /// A human agent's reply within 7 days of the customer's last message (no automation).
    /// The only tag Instagram accepts.
    HumanAgent,
    /// Reminder or update for an event the customer registered for (Messenger only).
    ConfirmedEventUpdate,
    /// Update about a purchase (Messenger only).
    PostPurchaseUpdate,
    /// Non-recurring change to the customer's account (Messenger only).
    AccountUpdate,
}

impl MessageTag {
    /// The Send API spelling (`HUMAN_AGENT`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            MessageTag::HumanAgent => "HUMAN_AGENT",
            MessageTag::ConfirmedEventUpdate => "CONFIRMED_EVENT_UPDATE",
            MessageTag::PostPurchaseUpdate => "POST_PURCHASE_UPDATE",
            MessageTag::AccountUpdate => "ACCOUNT_UPDATE",
        }
    }
}

/// Why a message is sent (the Send API's `messaging_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum MessagingType {
    /// A reply within the 24-hour standard messaging window.
    #[default]
    Response,
    /// A proactive update within the window.
    Update,
    /// Outside the window, under a tag.
    Tagged(MessageTag),
}

/// Options for [`send_requests`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SendOptions {
    /// Why the message is sent; [`MessagingType::Tagged`] with [`MessageTag::HumanAgent`] for an
    /// agent's reply after the 24-hour window.
    pub messaging_type: MessagingType,
    /// A string (under 1000 characters) echoed back in the message's echo, to recognise it.
    pub metadata: Option<String>,
}

/// What a page can show the customer besides messages (`sender_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SenderAction {
    /// Show the typing bubble.
    TypingOn,
    /// Hide the typing bubble.
    TypingOff,
    /// Mark the customer's last message as seen.
    MarkSeen,
}

fn check_channel(channel: &ChannelKind) -> Result<()> {
    match channel {
        ChannelKind::Messenger | ChannelKind::Instagram => Ok(()),
        other => Err(Error::invalid("channel", format!("the Send API serves Messenger and Instagram, not {other}"))),
    }
}

fn recipient_json(recipient: &str) -> Result<Value> {
    if recipient.is_empty() || recipient.len() > 128 || recipient.chars().any(char::is_control) {
        return Err(Error::invalid("recipient", "must be the customer's page- or Instagram-scoped id"));
    }
    Ok(json!({ "id": recipient }))
}

/// The Send API bodies (`POST /{page-id}/messages`) that deliver `content` to the customer
/// `recipient` (a PSID on Messenger, an IGSID on Instagram), in order.
///
/// Text goes as `text` (Messenger: at most 2000 characters; Instagram: 1000 bytes); choices as
/// text with up to 13 `quick_replies` (titles of at most 20 characters; descriptions are not
/// shown on these platforms and are left out); media as an
/// `attachment` by http(s) URL, with a caption following as a second message. Templates, locations,
/// contact cards and system notices have no Send API message: they fail with
/// [`Error::InvalidInput`] (render them as text first). Instagram accepts only the
/// `HUMAN_AGENT` tag.
///
/// ```
/// use touchpoint::channels::messenger::{send_requests, MessageTag, MessagingType, SendOptions};
/// use touchpoint::model::{ChannelKind, Content};
/// let options = SendOptions { messaging_type: MessagingType::Tagged(MessageTag::HumanAgent), ..SendOptions::default() };
/// let bodies = send_requests(&ChannelKind::Messenger, "6100000000000001", &Content::text("Sorry for the wait"), &options).unwrap();
/// assert_eq!(bodies[0]["messaging_type"], "MESSAGE_TAG");
/// assert_eq!(bodies[0]["tag"], "HUMAN_AGENT");
/// assert_eq!(bodies[0]["message"]["text"], "Sorry for the wait");
/// ```
pub fn send_requests(
    channel: &ChannelKind,
    recipient: &str,
    content: &Content,
    options: &SendOptions,
) -> Result<Vec<Value>> {
    check_channel(channel)?;
    let instagram = *channel == ChannelKind::Instagram;
    let to = recipient_json(recipient)?;
    let (messaging_type, tag) = match options.messaging_type {
        MessagingType::Response => ("RESPONSE", None),
        MessagingType::Update => ("UPDATE", None),
        MessagingType::Tagged(tag) => {
            if instagram && tag != MessageTag::HumanAgent {
                return Err(Error::invalid(
                    "messaging_type",
                    format!("Instagram accepts only the HUMAN_AGENT tag, not {}", tag.as_str()),
                ));
            }
            ("MESSAGE_TAG", Some(tag.as_str()))
        }
    };
    if let Some(m) = &options.metadata
        && m.chars().count() >= 1000
    {
        return Err(Error::invalid("metadata", "must be under 1000 characters"));
    }
    let check_text = |field: &'static str, text: &str| -> Result<()> {
        if text.trim().is_empty() {
            return Err(Error::invalid(field, "must not be empty"));
        }
        if instagram && text.len() > 1000 {
            return Err(Error::invalid(field, format!("is {} bytes; Instagram allows 1000", text.len())));
        }
        let n = text.chars().count();
        if !instagram && n > 2000 {
            return Err(Error::invalid(field, format!("is {n} characters; Messenger allows 2000")));
        }
        Ok(())
    };
    let mut messages = Vec::new();
    match content {
        Content::Text { body } => {
            check_text("content.body", body)?;
            messages.push(json!({ "text": body }));
        }
        Content::Choices { body, options: choices, .. } => {
            check_text("content.body", body)?;
            if choices.is_empty() || choices.len() > 13 {
                return Err(Error::invalid(
                    "content.options",
                    format!("{} options; quick replies take 1 to 13", choices.len()),
                ));
            }
            let quick: Vec<Value> = choices
                .iter()
                .map(|c: &ChoiceOption| {
                    let n = c.title.chars().count();
                    if n == 0 || n > 20 {
                        return Err(Error::invalid(
                            "content.options.title",
                            format!("{:?} is {n} characters; quick replies take 1 to 20", c.title),
                        ));
                    }
                    if c.id.is_empty() || c.id.chars().count() > 1000 {
                        return Err(Error::invalid(
                            "content.options.id",
                            "a quick-reply payload is 1 to 1000 characters",
                        ));
                    }
                    Ok(json!({ "content_type": "text", "title": c.title, "payload": c.id }))
                })
                .collect::<Result<_>>()?;
            messages.push(json!({ "text": body, "quick_replies": quick }));
        }
        Content::Media { media, url, caption, .. } => {
            if url.trim().is_empty() {
                return Err(Error::invalid("content.url", "must not be empty"));
            }
            // Meta fetches the attachment from the URL: another kit's file id, a `cid:`
            // reference or a local path would be refused by the Send API.
            if !super::http_link(url) {
                return Err(Error::invalid("content.url", "the Send API fetches media by an http(s) link only"));
            }
            let kind = match media {
                MediaKind::Image | MediaKind::Sticker => "image",
                MediaKind::Video => "video",
                MediaKind::Audio => "audio",
                MediaKind::Document => "file",
            };
            messages.push(json!({ "attachment": { "type": kind, "payload": { "url": url, "is_reusable": true } } }));
            if let Some(caption) = caption.as_deref().filter(|c| !c.trim().is_empty()) {
                check_text("content.caption", caption)?;
                messages.push(json!({ "text": caption }));
            }
        }
        Content::Location { .. } | Content::Template { .. } | Content::Contact(_) | Content::System { .. } => {
            return Err(Error::invalid(
                "content",
                format!("{channel} has no Send API message for this content; render it as text first"),
            ));
        }
    }
    Ok(messages
        .into_iter()
        .map(|mut message| {
            if let Some(m) = &options.metadata {
                message["metadata"] = json!(m);
            }
            let mut body = json!({ "recipient": to, "messaging_type": messaging_type, "message": message });
            if let Some(tag) = tag {
                body["tag"] = json!(tag);
            }
            body
        })
        .collect())
}

/// The Send API body of a sender action (typing on/off, mark seen) for `recipient`.
///
/// ```
/// use touchpoint::channels::messenger::{sender_action, SenderAction};
/// use touchpoint::model::ChannelKind;
/// let json = sender_action(&ChannelKind::Instagram, "5300000000000001", SenderAction::TypingOn).unwrap();
/// assert_eq!(json, serde_json::json!({ "recipient": { "id": "5300000000000001" }, "sender_action": "typing_on" }));
/// ```
pub fn sender_action(channel: &ChannelKind, recipient: &str, action: SenderAction) -> Result<Value> {
    check_channel(channel)?;
    let action = match action {
        SenderAction::TypingOn => "typing_on",
        SenderAction::TypingOff => "typing_off",
        SenderAction::MarkSeen => "mark_seen",
    };
    Ok(json!({ "recipient": recipient_json(recipient)?, "sender_action": action }))
}
