//! Telegram Bot API kit: `Update`s in, `sendMessage` / `sendPhoto` / … JSON out.
//!
//! **Inbound.** [`TelegramKit::parse_update`] takes the raw body of one webhook POST (one
//! `Update`; check it first with
//! [`TelegramSecretToken`](super::signature::TelegramSecretToken)) and returns:
//!
//! | update | [`KitEvent`] |
//! |---|---|
//! | `message` with `text` | `Message` with [`Content::Text`] |
//! | `message` with `photo` (largest size), `video`, `video_note`, `animation`, `audio`, `voice`, `document`, `sticker` | `Message` with [`Content::Media`] whose `url` is `telegram-file:<file_id>` (see [`file_id`]; download with `getFile`), caption kept (a sticker's emoji as its caption) |
//! | `message` with `location` / `venue` | `Message` with [`Content::Location`] |
//! | `message` with `contact` | `Message` with [`Content::Contact`]; when the customer shares **their own** number (`contact.user_id == from.id`, the "share my phone" button) it is also a carrier-asserted [`CustomerKey::Phone`] claim |
//! | `message` with `poll`, `dice`, `game`, `story`, `invoice` | `Message` with [`Content::System`] `unsupported` |
//! | `edited_message` | `Edited`, sent at the `edit_date`, id `<endpoint>:<chat id>:<message id>:edit:<update_id>` (edits are dated to the second, so two edits in one second still differ) |
//! | `callback_query` (inline button pressed) | `ButtonPressed` with [`Content::Choices`] — the keyboard's buttons as options, the pressed `callback_data` as `selected` |
//! | `message_reaction` | `Message` with [`Content::System`] `reaction` / `reaction_removed` |
//! | service messages, bots, channel posts, posts on behalf of a chat (`sender_chat`, automatic forwards of a linked channel), polls, member updates, … | `Skipped` |
//!
//! The customer is `from.id`, scoped to the bot ([`Address::platform`]`(scope, id)`, scope = the
//! endpoint unless set with [`TelegramKit::with_user_scope`]); `from`'s first and last name
//! become `sender_name`. A message is identified as `<endpoint>:<chat id>:<message id>`
//! ([`TelegramKit::message_id`]: Telegram numbers messages per chat, and a private chat's id is
//! the user's id for every bot, so the endpoint tells two bots' messages apart); the chat (and
//! forum topic) is the provider thread, `<endpoint>:<chat id>[/<topic>]` for the same reason, and `reply_to_message` becomes `thread.in_reply_to` in
//! the same form.
//!
//! ```
//! use touchpoint::channels::{telegram::TelegramKit, KitEvent};
//! use touchpoint::model::{Address, Content, EndpointId};
//!
//! let body = br#"{"update_id":500000001,"message":{"message_id":42,"date":1735689600,
//!   "from":{"id":7000000001,"is_bot":false,"first_name":"Ada","username":"ada_example"},
//!   "chat":{"id":7000000001,"type":"private","first_name":"Ada"},"text":"/start order_5521"}}"#;
//! let kit = TelegramKit::new(EndpointId::new("tg-support-bot").unwrap()).unwrap();
//! let events = kit.parse_update(body).unwrap();
//! let KitEvent::Message(msg) = &events[0] else { panic!() };
//! assert_eq!(msg.sender, Address::platform("tg-support-bot", "7000000001"));
//! assert_eq!(msg.external_id, "tg-support-bot:7000000001:42");
//! assert_eq!(msg.content, Content::text("/start order_5521"));
//! ```
//!
//! **Outbound.** [`send_requests`] turns [`Content`] into Bot API calls ([`TelegramRequest`]:
//! method name and JSON body) with inline keyboards for choices; [`answer_callback_query`] and
//! [`typing`] build the small calls around them.

use super::KitEvent;
use super::json::{self, UnixSeconds};
use crate::model::{
    Address, ChannelKind, ChoiceOption, ContactCard, Content, CustomerKey, EndpointId, InboundMessage, MediaKind,
    ThreadHints, Verification,
};
use crate::{Error, Result};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

const FIELD: &str = "telegram update";

/// The prefix of [`Content::Media`] URLs that stand for a Telegram `file_id`.
pub const FILE_URL_PREFIX: &str = "telegram-file:";

/// The Telegram `file_id` inside a `telegram-file:<id>` URL, or `None` for any other URL.
///
/// ```
/// use touchpoint::channels::telegram::file_id;
/// assert_eq!(file_id("telegram-file:AgACAgQAAxkBAAM"), Some("AgACAgQAAxkBAAM"));
/// assert_eq!(file_id("https://cdn.example.net/a.jpg"), None);
/// ```
pub fn file_id(url: &str) -> Option<&str> {
    url.strip_prefix(FILE_URL_PREFIX).filter(|id| !id.is_empty())
}

/// Parses Telegram Bot API updates for one bot. Cheap to clone; `Send + Sync`.
#[derive(Debug, Clone)]
pub struct TelegramKit {
    endpoint: EndpointId,
    scope: String,
}

impl TelegramKit {
    /// A kit for the bot whose endpoint is `endpoint`; user ids are scoped to it. Fails if the
    /// endpoint name cannot be a scope (it contains `:`): name one with
    /// [`with_user_scope`](Self::with_user_scope) on a kit for another endpoint, or rename it.
    pub fn new(endpoint: EndpointId) -> Result<Self> {
        let scope = endpoint.as_str().to_owned();
        TelegramKit { endpoint, scope: String::new() }.with_user_scope(scope)
    }

    /// Scopes user ids to `scope` instead of the endpoint (Telegram user ids are the same for
    /// every bot: give several bots of one tenant the same scope to see one identity per person).
    /// A scope is 1–128 bytes without `:`, spaces or control characters.
    pub fn with_user_scope(mut self, scope: impl Into<String>) -> Result<Self> {
        let scope = scope.into();
        crate::identity::normalize::normalize_platform_id(Some(&scope), "1").map_err(|_| {
            Error::invalid("user_scope", "must be 1 to 128 bytes without `:`, spaces or control characters")
        })?;
        self.scope = scope;
        Ok(self)
    }

    /// The provider id of message `message_id` in chat `chat_id` of this kit's bot:
    /// `<endpoint>:<chat id>:<message id>`. Telegram numbers messages per chat, and a private
    /// chat's id is the user's id whichever bot they talk to, so the endpoint tells two bots'
    /// messages apart. A transport sending through this bot returns this for what it sent
    /// ([`Channel::send`](crate::channel::Channel::send)), so that replies quoting it find it.
    ///
    /// ```
    /// use touchpoint::channels::telegram::TelegramKit;
    /// use touchpoint::model::EndpointId;
    /// let kit = TelegramKit::new(EndpointId::new("tg-support-bot").unwrap()).unwrap();
    /// assert_eq!(kit.message_id(7000000001, 42), "tg-support-bot:7000000001:42");
    /// ```
    pub fn message_id(&self, chat_id: i64, message_id: i64) -> String {
        format!("{}:{chat_id}:{message_id}", self.endpoint)
    }

    /// The provider thread of a message: `<endpoint>:<chat id>`, or `<endpoint>:<chat id>/<topic>`
    /// in a forum topic. Scoped by the bot like message ids: two bots' private chats with one
    /// user share the user's id as chat id, yet are two threads.
    fn chat_thread(&self, chat_id: i64, topic: Option<i64>) -> String {
        match topic {
            Some(topic) => format!("{}:{chat_id}/{topic}", self.endpoint),
            None => format!("{}:{chat_id}", self.endpoint),
        }
    }

    /// Parses the raw body of one webhook POST (one `Update`). Malformed bodies fail with
    /// [`Error::InvalidInput`] naming the JSON path.
    pub fn parse_update(&self, body: &[u8]) -> Result<Vec<KitEvent>> {
        let update: Update = json::parse(FIELD, body)?;
        let event = if let Some(m) = update.message {
            self.message(m, &|r| format!("message{r}"), None)?
        } else if let Some(m) = update.edited_message {
            let original = self.message_id(m.chat.id, m.message_id);
            match self.message(m, &|r| format!("edited_message{r}"), Some(update.update_id))? {
                KitEvent::Message(message) => KitEvent::Edited { original, message },
                other => other,
            }
        } else if let Some(q) = update.callback_query {
            self.callback(q)?
        } else if let Some(r) = update.message_reaction {
            self.reaction(r, update.update_id)?
        } else {
            KitEvent::Skipped { kind: format!("telegram.{}", update.other_kind()) }
        };
        Ok(vec![event])
    }

    fn sender(&self, user: &User) -> Address {
        Address::platform(self.scope.as_str(), user.id.to_string())
    }

    fn inbound(&self, user: &User, id: String, content: Content, thread: ThreadHints) -> InboundMessage {
        let mut msg = InboundMessage::new(ChannelKind::Telegram, self.endpoint.clone(), self.sender(user), id, content)
            .with_thread(thread);
        let name = match &user.last_name {
            Some(last) => format!("{} {last}", user.first_name),
            None => user.first_name.clone(),
        };
        if let Some(name) = super::display_name(&name, 256) {
            msg = msg.with_sender_name(name);
        }
        msg
    }

    /// `edit`: the update id of an `edited_message`, which tells its edits apart.
    fn message(&self, m: Message, path: &dyn Fn(&str) -> String, edit: Option<i64>) -> Result<KitEvent> {
        let Some(from) = &m.from else {
            return Ok(KitEvent::Skipped { kind: "telegram.anonymous_message".into() });
        };
        if from.is_bot {
            return Ok(KitEvent::Skipped { kind: "telegram.bot_message".into() });
        }
        // Posts on behalf of a chat (a linked channel's post forwarded into its discussion
        // group comes "from" a placeholder user, 777000 "Telegram") are nobody's message to us.
        if m.is_automatic_forward || m.sender_chat.is_some() {
            return Ok(KitEvent::Skipped { kind: "telegram.chat_message".into() });
        }
        let Some(content) = content(&m, path)? else {
            return Ok(KitEvent::Skipped { kind: "telegram.service_message".into() });
        };
        json::check_content(FIELD, || path(""), &content)?;
        let id = match edit {
            Some(update) => format!("{}:edit:{update}", self.message_id(m.chat.id, m.message_id)),
            None => self.message_id(m.chat.id, m.message_id),
        };
        let thread = ThreadHints {
            provider_thread_id: Some(self.chat_thread(m.chat.id, topic(&m))),
            in_reply_to: m.reply_to_message.as_ref().map(|r| self.message_id(m.chat.id, r.message_id)),
            ..ThreadHints::default()
        };
        let sent_at = m.edit_date.filter(|_| edit.is_some()).map_or(m.date.0, |d| d.0);
        let mut msg = self.inbound(from, id, content, thread).with_sent_at(sent_at);
        if let Some(c) = &m.contact
            && c.user_id == Some(from.id)
            && let Some(phone) = plausible_phone(&c.phone_number)
        {
            msg = msg.with_claim(CustomerKey::Phone(phone), Verification::CarrierAsserted);
        }
        Ok(KitEvent::Message(msg))
    }

    fn callback(&self, q: CallbackQuery) -> Result<KitEvent> {
        let Some(data) = q.data.filter(|d| !d.is_empty()) else {
            return Ok(KitEvent::Skipped { kind: "telegram.callback_query.game".into() });
        };
        json::check_id(FIELD, || "callback_query.id".into(), &q.id)?;
        let mut options: Vec<ChoiceOption> = q
            .message
            .as_ref()
            .and_then(|m| m.reply_markup.as_ref())
            .map(|k| {
                k.inline_keyboard
                    .iter()
                    .flatten()
                    .filter_map(|b| {
                        let id = b.callback_data.clone().filter(|d| !d.is_empty())?;
                        let title = if b.text.trim().is_empty() { id.clone() } else { b.text.clone() };
                        Some(ChoiceOption { id, title, description: None })
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !options.iter().any(|o| o.id == data) {
            options.push(ChoiceOption { id: data.clone(), title: data.clone(), description: None });
        }
        let question = q.message.as_ref().and_then(|m| m.text.clone().or_else(|| m.caption.clone()));
        let body = match question.filter(|t| !t.trim().is_empty()) {
            Some(text) => text,
            None => options.iter().find(|o| o.id == data).map_or_else(|| data.clone(), |o| o.title.clone()),
        };
        let content = Content::Choices { body, options, selected: Some(data) };
        json::check_content(FIELD, || "callback_query".into(), &content)?;
        let thread = match &q.message {
            Some(m) => ThreadHints {
                provider_thread_id: Some(self.chat_thread(m.chat.id, topic(m))),
                in_reply_to: Some(self.message_id(m.chat.id, m.message_id)),
                ..ThreadHints::default()
            },
            None => ThreadHints::default(),
        };
        let message = self.inbound(&q.from, format!("callback:{}:{}", self.endpoint, q.id), content, thread);
        Ok(KitEvent::ButtonPressed { query_id: q.id, message })
    }

    fn reaction(&self, r: MessageReaction, update_id: i64) -> Result<KitEvent> {
        let Some(user) = &r.user else {
            return Ok(KitEvent::Skipped { kind: "telegram.message_reaction.anonymous".into() });
        };
        let emojis: Vec<&str> = r
            .new_reaction
            .iter()
            .map(|t| match (t.kind.as_str(), &t.emoji) {
                ("emoji", Some(e)) => e.as_str(),
                ("custom_emoji", _) => "custom emoji",
                ("paid", _) => "paid reaction",
                _ => "reaction",
            })
            .collect();
        let content = if emojis.is_empty() {
            Content::System { event: "reaction_removed".into(), detail: None }
        } else {
            Content::System { event: "reaction".into(), detail: Some(emojis.join(" ")) }
        };
        let target = self.message_id(r.chat.id, r.message_id);
        let thread = ThreadHints {
            provider_thread_id: Some(self.chat_thread(r.chat.id, None)),
            in_reply_to: Some(target.clone()),
            ..ThreadHints::default()
        };
        // Reactions are dated to the second: the update id tells two changes in one second apart.
        let id = format!("reaction:{target}:{}:{update_id}", user.id);
        Ok(KitEvent::Message(self.inbound(user, id, content, thread).with_sent_at(r.date.0)))
    }
}

/// The forum topic a message belongs to, if it was posted in one.
fn topic(m: &Message) -> Option<i64> {
    m.message_thread_id.filter(|_| m.is_topic_message)
}

fn plausible_phone(raw: &str) -> Option<String> {
    let digits = raw.strip_prefix('+').unwrap_or(raw);
    ((8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())).then(|| format!("+{digits}"))
}

fn nonempty(s: &Option<String>) -> Option<String> {
    s.clone().filter(|s| !s.is_empty())
}

fn file(kind: MediaKind, f: &File, caption: &Option<String>) -> Content {
    Content::Media {
        media: kind,
        url: format!("{FILE_URL_PREFIX}{}", f.file_id),
        mime_type: nonempty(&f.mime_type),
        caption: nonempty(caption),
        filename: nonempty(&f.file_name),
    }
}

fn content(m: &Message, path: &dyn Fn(&str) -> String) -> Result<Option<Content>> {
    let caption = &m.caption;
    let content = if let Some(text) = &m.text {
        Content::text(text.clone())
    } else if let Some(sizes) = &m.photo {
        let largest = sizes
            .iter()
            .max_by_key(|p| (p.width.saturating_mul(p.height), p.file_size.unwrap_or(0)))
            .ok_or_else(|| json::at(FIELD, &path(".photo"), "an empty list of photo sizes"))?;
        Content::Media {
            media: MediaKind::Image,
            url: format!("{FILE_URL_PREFIX}{}", largest.file_id),
            mime_type: None,
            caption: nonempty(caption),
            filename: None,
        }
    } else if let Some(f) = m.animation.as_ref().or(m.video.as_ref()).or(m.video_note.as_ref()) {
        file(MediaKind::Video, f, caption)
    } else if let Some(f) = m.voice.as_ref().or(m.audio.as_ref()) {
        file(MediaKind::Audio, f, caption)
    } else if let Some(f) = &m.document {
        file(MediaKind::Document, f, caption)
    } else if let Some(f) = &m.sticker {
        let mut sticker = file(MediaKind::Sticker, f, &None);
        if let (Content::Media { caption, .. }, Some(emoji)) = (&mut sticker, nonempty(&f.emoji)) {
            *caption = Some(emoji);
        }
        sticker
    } else if let Some(v) = &m.venue {
        Content::Location {
            latitude: v.location.latitude,
            longitude: v.location.longitude,
            name: nonempty(&v.title),
            address: nonempty(&v.address),
        }
    } else if let Some(l) = &m.location {
        Content::Location { latitude: l.latitude, longitude: l.longitude, name: None, address: None }
    } else if let Some(c) = &m.contact {
        let name = match &c.last_name {
            Some(last) if !last.is_empty() => format!("{} {last}", c.first_name),
            _ => c.first_name.clone(),
        };
        let name = if name.trim().is_empty() { c.phone_number.clone() } else { name };
        let phones = if c.phone_number.is_empty() { vec![] } else { vec![c.phone_number.clone()] };
        Content::Contact(ContactCard { name, phones, emails: vec![], organization: None })
    } else if let Some(kind) = m.unsupported_kind() {
        Content::System {
            event: "unsupported".into(),
            detail: Some(format!("a Telegram {kind} is not understood by this kit")),
        }
    } else {
        return Ok(None);
    };
    Ok(Some(content))
}

// ----- update schema (only what the kit reads; unknown fields are ignored) -----

#[derive(Deserialize)]
struct Update {
    /// Required by the Bot API; tells edits and reactions apart (see the module docs).
    update_id: i64,
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    edited_message: Option<Message>,
    #[serde(default)]
    callback_query: Option<CallbackQuery>,
    #[serde(default)]
    message_reaction: Option<MessageReaction>,
    #[serde(default)]
    channel_post: Option<IgnoredAny>,
    #[serde(default)]
    edited_channel_post: Option<IgnoredAny>,
    #[serde(default)]
    inline_query: Option<IgnoredAny>,
    #[serde(default)]
    chosen_inline_result: Option<IgnoredAny>,
    #[serde(default)]
    shipping_query: Option<IgnoredAny>,
    #[serde(default)]
    pre_checkout_query: Option<IgnoredAny>,
    #[serde(default)]
    poll: Option<IgnoredAny>,
    #[serde(default)]
    poll_answer: Option<IgnoredAny>,
    #[serde(default)]
    my_chat_member: Option<IgnoredAny>,
    #[serde(default)]
    chat_member: Option<IgnoredAny>,
    #[serde(default)]
    chat_join_request: Option<IgnoredAny>,
    #[serde(default)]
    message_reaction_count: Option<IgnoredAny>,
    #[serde(default)]
    business_message: Option<IgnoredAny>,
    #[serde(default)]
    edited_business_message: Option<IgnoredAny>,
}

impl Update {
    fn other_kind(&self) -> &'static str {
        [
            (self.channel_post.is_some(), "channel_post"),
            (self.edited_channel_post.is_some(), "edited_channel_post"),
            (self.inline_query.is_some(), "inline_query"),
            (self.chosen_inline_result.is_some(), "chosen_inline_result"),
            (self.shipping_query.is_some(), "shipping_query"),
            (self.pre_checkout_query.is_some(), "pre_checkout_query"),
            (self.poll.is_some(), "poll"),
            (self.poll_answer.is_some(), "poll_answer"),
            (self.my_chat_member.is_some(), "my_chat_member"),
            (self.chat_member.is_some(), "chat_member"),
            (self.chat_join_request.is_some(), "chat_join_request"),
            (self.message_reaction_count.is_some(), "message_reaction_count"),
            (self.business_message.is_some(), "business_message"),
            (self.edited_business_message.is_some(), "edited_business_message"),
        ]
        .into_iter()
        .find_map(|(present, name)| present.then_some(name))
        .unwrap_or("unknown_update")
    }
}

#[derive(Deserialize)]
struct User {
    id: i64,
    #[serde(default)]
    is_bot: bool,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: Option<String>,
}

#[derive(Deserialize)]
struct Chat {
    id: i64,
}

#[derive(Deserialize)]
struct Message {
    message_id: i64,
    #[serde(default)]
    from: Option<User>,
    /// Set when the message was sent on behalf of a chat (a channel's post, a linked channel's
    /// post forwarded into its discussion group): `from` is then a placeholder.
    #[serde(default)]
    sender_chat: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    is_automatic_forward: bool,
    chat: Chat,
    date: UnixSeconds,
    #[serde(default)]
    edit_date: Option<UnixSeconds>,
    #[serde(default)]
    message_thread_id: Option<i64>,
    #[serde(default)]
    is_topic_message: bool,
    #[serde(default)]
    reply_to_message: Option<MessageRef>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    caption: Option<String>,
    #[serde(default)]
    photo: Option<Vec<PhotoSize>>,
    #[serde(default)]
    animation: Option<File>,
    #[serde(default)]
    video: Option<File>,
    #[serde(default)]
    video_note: Option<File>,
    #[serde(default)]
    voice: Option<File>,
    #[serde(default)]
    audio: Option<File>,
    #[serde(default)]
    document: Option<File>,
    #[serde(default)]
    sticker: Option<File>,
    #[serde(default)]
    location: Option<Location>,
    #[serde(default)]
    venue: Option<Venue>,
    #[serde(default)]
    contact: Option<Contact>,
    #[serde(default)]
    poll: Option<IgnoredAny>,
    #[serde(default)]
    dice: Option<IgnoredAny>,
    #[serde(default)]
    game: Option<IgnoredAny>,
    #[serde(default)]
    story: Option<IgnoredAny>,
    #[serde(default)]
    invoice: Option<IgnoredAny>,
    #[serde(default)]
    reply_markup: Option<InlineKeyboardMarkup>,
}

impl Message {
    fn unsupported_kind(&self) -> Option<&'static str> {
        [
            (self.poll.is_some(), "poll"),
            (self.dice.is_some(), "dice"),
            (self.game.is_some(), "game"),
            (self.story.is_some(), "story"),
            (self.invoice.is_some(), "invoice"),
        ]
        .into_iter()
        .find_map(|(present, name)| present.then_some(name))
    }
}

#[derive(Deserialize)]
struct MessageRef {
    message_id: i64,
}

#[derive(Deserialize)]
struct PhotoSize {
    file_id: String,
    #[serde(default)]
    width: u32,
    #[serde(default)]
    height: u32,
    #[serde(default)]
    file_size: Option<u64>,
}

#[derive(Deserialize)]
struct File {
    file_id: String,
    #[serde(default)]
    file_name: Option<String>,
    #[serde(default)]
    mime_type: Option<String>,
    #[serde(default)]
    emoji: Option<String>,
}

#[derive(Deserialize)]
struct Location {
    latitude: f64,
    longitude: f64,
}

#[derive(Deserialize)]
struct Venue {
    location: Location,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    address: Option<String>,
}

#[derive(Deserialize)]
struct Contact {
    phone_number: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    user_id: Option<i64>,
}

#[derive(Deserialize)]
struct InlineKeyboardMarkup {
    #[serde(default)]
    inline_keyboard: Vec<Vec<InlineButton>>,
}

#[derive(Deserialize)]
struct InlineButton {
    #[serde(default)]
    text: String,
    #[serde(default)]
    callback_data: Option<String>,
}

#[derive(Deserialize)]
struct CallbackQuery {
    id: String,
    from: User,
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    data: Option<String>,
}

#[derive(Deserialize)]
struct MessageReaction {
    chat: Chat,
    message_id: i64,
    #[serde(default)]
    user: Option<User>,
    date: UnixSeconds,
    #[serde(default)]
    new_reaction: Vec<ReactionType>,
}

#[derive(Deserialize)]
struct ReactionType {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    emoji: Option<String>,
}

// ----- outbound -----

/// One Bot API call: POST `body` as JSON to `https://api.telegram.org/bot<token>/<method>`.
#[derive(Debug, Clone, PartialEq)]
pub struct TelegramRequest {
    /// The method name (`sendMessage`, `sendPhoto`, …).
    pub method: &'static str,
    /// The JSON parameters.
    pub body: Value,
}

/// Options for [`send_requests`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SendOptions {
    /// The message (in the same chat) this one replies to.
    pub reply_to_message_id: Option<i64>,
    /// The forum topic to post in.
    pub message_thread_id: Option<i64>,
    /// Deliver without a notification sound.
    pub disable_notification: bool,
}

/// The Telegram chat id of a customer address as the kit writes it
/// ([`Address::Platform`] with a numeric id; in private chats the chat id is the user id).
///
/// ```
/// use touchpoint::channels::telegram::chat_id;
/// use touchpoint::model::Address;
/// assert_eq!(chat_id(&Address::platform("tg-bot", "7000000001")).unwrap(), 7000000001);
/// assert!(chat_id(&Address::phone("+447700900123")).is_err());
/// ```
pub fn chat_id(address: &Address) -> Result<i64> {
    match address {
        Address::Platform { id, .. } => {
            id.parse().map_err(|_| Error::invalid("chat_id", format!("{id:?} is not a Telegram chat id")))
        }
        other => Err(Error::invalid("chat_id", format!("a Telegram chat is not a {:?} address", other.kind()))),
    }
}

fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

fn check_len(field: &'static str, value: &str, min: usize, max: usize) -> Result<()> {
    let n = utf16_len(value);
    if n < min || n > max || (min > 0 && value.trim().is_empty()) {
        return Err(Error::invalid(field, format!("is {n} characters; Telegram takes {min} to {max}")));
    }
    Ok(())
}

/// The Bot API calls that deliver `content` to `chat_id`, in order.
///
/// Text → `sendMessage` (1–4096 characters); choices → `sendMessage` with an inline keyboard,
/// one button per row, each option's id as `callback_data` (1–64 bytes); media → `sendPhoto`,
/// `sendVideo`, `sendAudio` (`sendVoice` for OGG voice notes), `sendDocument` or `sendSticker`
/// by URL (or by `file_id` for a `telegram-file:` URL) with caption (0–1024 characters); a
/// location → `sendVenue` when it has a name and an address, else `sendLocation`; a contact
/// card → `sendContact` (needs a phone number). Templates and system notices have no Telegram
/// form and fail with [`Error::InvalidInput`].
///
/// ```
/// use touchpoint::channels::telegram::{send_requests, SendOptions};
/// use touchpoint::model::{ChoiceOption, Content};
/// let content = Content::Choices {
///     body: "How did we do?".into(),
///     options: vec![
///         ChoiceOption { id: "csat:5".into(), title: "Great".into(), description: None },
///         ChoiceOption { id: "csat:1".into(), title: "Poor".into(), description: None },
///     ],
///     selected: None,
/// };
/// let calls = send_requests(7000000001, &content, &SendOptions::default()).unwrap();
/// assert_eq!(calls[0].method, "sendMessage");
/// assert_eq!(calls[0].body["reply_markup"]["inline_keyboard"][1][0]["callback_data"], "csat:1");
/// ```
pub fn send_requests(chat_id: i64, content: &Content, options: &SendOptions) -> Result<Vec<TelegramRequest>> {
    let mut body = serde_json::Map::new();
    body.insert("chat_id".into(), json!(chat_id));
    if let Some(topic) = options.message_thread_id {
        body.insert("message_thread_id".into(), json!(topic));
    }
    if let Some(reply) = options.reply_to_message_id {
        body.insert("reply_parameters".into(), json!({ "message_id": reply }));
    }
    if options.disable_notification {
        body.insert("disable_notification".into(), json!(true));
    }
    let method = match content {
        Content::Text { body: text } => {
            check_len("content.body", text, 1, 4096)?;
            body.insert("text".into(), json!(text));
            "sendMessage"
        }
        Content::Choices { body: text, options: choices, .. } => {
            check_len("content.body", text, 1, 4096)?;
            if choices.is_empty() {
                return Err(Error::invalid("content.options", "a choice needs at least one option"));
            }
            let rows: Vec<Value> = choices
                .iter()
                .map(|c| {
                    if c.id.is_empty() || c.id.len() > 64 {
                        return Err(Error::invalid(
                            "content.options.id",
                            format!("{:?} is {} bytes; callback_data takes 1 to 64", c.id, c.id.len()),
                        ));
                    }
                    check_len("content.options.title", &c.title, 1, 4096)?;
                    Ok(json!([{ "text": c.title, "callback_data": c.id }]))
                })
                .collect::<Result<_>>()?;
            body.insert("text".into(), json!(text));
            body.insert("reply_markup".into(), json!({ "inline_keyboard": rows }));
            "sendMessage"
        }
        Content::Media { media, url, mime_type, caption, .. } => {
            if url.trim().is_empty() {
                return Err(Error::invalid("content.url", "must not be empty"));
            }
            let voice = mime_type.as_deref().is_some_and(|m| m.starts_with("audio/ogg"));
            let (method, key) = match media {
                MediaKind::Image => ("sendPhoto", "photo"),
                MediaKind::Video => ("sendVideo", "video"),
                MediaKind::Audio if voice => ("sendVoice", "voice"),
                MediaKind::Audio => ("sendAudio", "audio"),
                MediaKind::Document => ("sendDocument", "document"),
                MediaKind::Sticker => ("sendSticker", "sticker"),
            };
            // A file id (bare, or in a `telegram-file:` URL) or an http(s) link: a URL of
            // another scheme (another kit's file id, `cid:`, `file:`) or a path is nothing
            // Telegram can fetch. File ids are base64url text.
            let file = match file_id(url) {
                Some(id) => id,
                None if super::http_link(url)
                    || url.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
                {
                    url
                }
                None => {
                    return Err(Error::invalid(
                        "content.url",
                        "Telegram sends media by an http(s) link or a file id (telegram-file:<id>)",
                    ));
                }
            };
            body.insert(key.into(), json!(file));
            if let Some(caption) = caption.as_deref().filter(|c| !c.is_empty()) {
                if *media == MediaKind::Sticker {
                    return Err(Error::invalid("content.caption", "Telegram shows no caption on stickers"));
                }
                check_len("content.caption", caption, 0, 1024)?;
                body.insert("caption".into(), json!(caption));
            }
            method
        }
        Content::Location { latitude, longitude, name, address } => {
            super::check_coordinates(*latitude, *longitude)?;
            body.insert("latitude".into(), json!(latitude));
            body.insert("longitude".into(), json!(longitude));
            match (name.as_deref().filter(|n| !n.is_empty()), address.as_deref().filter(|a| !a.is_empty())) {
                (Some(title), Some(address)) => {
                    body.insert("title".into(), json!(title));
                    body.insert("address".into(), json!(address));
                    "sendVenue"
                }
                _ => "sendLocation",
            }
        }
        Content::Contact(card) => {
            let phone = card
                .phones
                .first()
                .filter(|p| !p.trim().is_empty())
                .ok_or_else(|| Error::invalid("content.phones", "Telegram shares a contact by phone number"))?;
            if card.name.trim().is_empty() {
                return Err(Error::invalid("content.name", "Telegram shares a contact under a first name"));
            }
            body.insert("phone_number".into(), json!(phone));
            body.insert("first_name".into(), json!(card.name));
            "sendContact"
        }
        Content::Template { .. } | Content::System { .. } => {
            return Err(Error::invalid("content", "Telegram has no message for this content; render it as text first"));
        }
    };
    Ok(vec![TelegramRequest { method, body: Value::Object(body) }])
}

/// `answerCallbackQuery` for a pressed inline button (stops the customer's spinner), with an
/// optional notification text (0–200 characters).
///
/// ```
/// use touchpoint::channels::telegram::answer_callback_query;
/// let call = answer_callback_query("4300000000000000001", Some("Thanks!")).unwrap();
/// assert_eq!(call.method, "answerCallbackQuery");
/// assert_eq!(call.body["text"], "Thanks!");
/// ```
pub fn answer_callback_query(query_id: &str, text: Option<&str>) -> Result<TelegramRequest> {
    if query_id.is_empty() {
        return Err(Error::invalid("callback_query_id", "must not be empty"));
    }
    let mut body = json!({ "callback_query_id": query_id });
    if let Some(text) = text {
        check_len("text", text, 0, 200)?;
        body["text"] = json!(text);
    }
    Ok(TelegramRequest { method: "answerCallbackQuery", body })
}

/// `sendChatAction` with `typing` (shown for up to 5 s or until the bot's next message).
///
/// ```
/// use touchpoint::channels::telegram::typing;
/// assert_eq!(typing(7000000001).body["action"], "typing");
/// ```
pub fn typing(chat_id: i64) -> TelegramRequest {
    TelegramRequest { method: "sendChatAction", body: json!({ "chat_id": chat_id, "action": "typing" }) }
}
