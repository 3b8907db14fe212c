//! Web chat kit: events from a website chat widget in a small JSON format of our own, and
//! identity verification of signed-in visitors.
//!
//! # Identity
//!
//! Every visitor has an anonymous token the widget keeps in a cookie (`visitor.anon_id`): it is
//! the visitor's platform address, scoped to the widget's endpoint, and proves nothing. When the
//! host's own user is signed in, the host's server renders the widget with the user's id and
//! `HMAC-SHA256(widget secret, user id)` in hex ([`WebChatWidget::identity_hash`], the scheme of
//! Intercom's `user_hash` and Chatwoot's `identifier_hash`). The secret never reaches the
//! browser. When the hash verifies (constant-time comparison), the message carries a
//! [`Verified`](Verification::Verified) external-id claim and the engine attaches the visitor to
//! that customer; when it does not, the visitor stays anonymous and [`IdentityCheck`] says why.
//! An email the visitor typed is passed on as an unverified claim (when it is well-formed): it
//! never links customers.
//!
//! # Format
//!
//! One JSON object per event, UTF-8, at most [`MAX_EVENT_BYTES`]:
//!
//! ```json
//! {
//!   "event": "message.created",
//!   "event_id": "evt_01J0000000000000000000TEST",
//!   "occurred_at": "2025-01-01T10:00:00Z",
//!   "visitor": {
//!     "anon_id": "v_3f9d2c1e",
//!     "identifier": "cust_5521",
//!     "identifier_hash": "<hex HMAC-SHA256 of identifier>",
//!     "email": "ada@example.net",
//!     "name": "Ada Example"
//!   },
//!   "conversation": {"id": "c_8a7b6c5d", "page_url": "https://shop.example.com/orders/5521"},
//!   "message": {
//!     "client_msg_id": "6d0f2a10-1111-4222-8333-944444444444",
//!     "text": "Hi, parcel missing",
//!     "attachments": [{"url": "https://files.example.com/a.png", "content_type": "image/png", "filename": "a.png"}]
//!   }
//! }
//! ```
//!
//! * `event`: `message.created`, `typing.started` or `typing.stopped` (required).
//! * `event_id`, `occurred_at` (RFC 3339): optional.
//! * `visitor.anon_id` (required), `identifier` + `identifier_hash`, `email`, `name`: optional.
//! * `conversation.id`: the widget's conversation, used as the provider thread id; optional.
//! * `message` (required for `message.created`): `client_msg_id` (at most 240 bytes) is the
//!   idempotency key within the visitor's messages: the provider id is `{anon_id} {client_msg_id}`
//!   (the n-th attachment after the first gets `#{n}` appended; a `#` or `%` in the
//!   `client_msg_id` is written `%23` or `%25` there, so `m1#1` is not `m1`'s second
//!   attachment), so two visitors' widgets may number their messages alike; `text` at most
//!   [`MAX_TEXT_CHARS`] characters; at most [`MAX_ATTACHMENTS`] attachments with an http(s)
//!   `url`. Text, attachments or both.
//!
//! Unknown fields are ignored, so a newer widget can send more.

use crate::identity::normalize::normalize_email;
use crate::model::{Address, ChannelKind, Content, CustomerKey, EndpointId, InboundMessage, ThreadHints, Verification};
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::fmt::Write as _;

/// Largest event body [`WebChatWidget::parse`] accepts.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;
/// Longest message text, in characters.
pub const MAX_TEXT_CHARS: usize = 10_000;
/// Most attachments on one message.
pub const MAX_ATTACHMENTS: usize = 10;
/// Shortest widget secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;

type HmacSha256 = Hmac<Sha256>;

/// Why a visitor's claimed identity was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnverifiedReason {
    /// An `identifier` came without `identifier_hash`.
    MissingHash,
    /// The hash is not 64 hex digits.
    MalformedHash,
    /// The hash does not match: not signed with this widget's secret, or for another user.
    HashMismatch,
    /// The identifier is empty, longer than 256 bytes or has control characters.
    InvalidIdentifier,
}

impl UnverifiedReason {
    /// The reason in words.
    pub fn describe(self) -> &'static str {
        match self {
            UnverifiedReason::MissingHash => "the identifier came without an identifier_hash",
            UnverifiedReason::MalformedHash => "the identifier_hash is not 64 hex digits",
            UnverifiedReason::HashMismatch => "the identifier_hash does not match the identifier",
            UnverifiedReason::InvalidIdentifier => "the identifier must be 1 to 256 bytes without control characters",
        }
    }
}

/// The outcome of checking a visitor's claimed identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum IdentityCheck {
    /// No identity claimed: an anonymous visitor.
    Anonymous,
    /// The hash verifies: the visitor is the host's user `user_id`.
    Verified {
        /// The host's user id.
        user_id: String,
    },
    /// An identity was claimed but not proven; the visitor is treated as anonymous.
    Unverified {
        /// The claimed user id (never used to link).
        user_id: String,
        /// Why it was not accepted.
        reason: UnverifiedReason,
    },
}

impl IdentityCheck {
    /// The verified user id, if any.
    pub fn verified_user(&self) -> Option<&str> {
        match self {
            IdentityCheck::Verified { user_id } => Some(user_id),
            _ => None,
        }
    }
}

/// One chat widget of ours: its endpoint and identity-verification secret.
///
/// ```
/// use touchpoint::channels::webchat::{IdentityCheck, UnverifiedReason, WebChatWidget};
/// use touchpoint::model::EndpointId;
/// let widget = WebChatWidget::new(EndpointId::new("site-widget").unwrap(), "widget-secret-0123456789").unwrap();
/// // On the host's server, when rendering the page for a signed-in user:
/// let hash = widget.identity_hash("cust_5521");
/// assert_eq!(widget.verify_identity("cust_5521", Some(&hash)), IdentityCheck::Verified { user_id: "cust_5521".into() });
/// assert_eq!(
///     widget.verify_identity("cust_9999", Some(&hash)),
///     IdentityCheck::Unverified { user_id: "cust_9999".into(), reason: UnverifiedReason::HashMismatch }
/// );
/// ```
#[derive(Clone)]
pub struct WebChatWidget {
    endpoint: EndpointId,
    /// HMAC keyed with the widget secret, cloned for every computation.
    keyed: HmacSha256,
}

impl std::fmt::Debug for WebChatWidget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebChatWidget").field("endpoint", &self.endpoint).field("secret", &"<redacted>").finish()
    }
}

fn hex_decode(hex: &str) -> Option<Vec<u8>> {
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let bytes = hex.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes.chunks(2).map(|pair| Some(digit(*pair.first()?)? << 4 | digit(*pair.get(1)?)?)).collect()
}

fn bounded(field: &'static str, value: &str, max: usize) -> Result<String> {
    let v = value.trim();
    if v.is_empty() || v.len() > max || v.chars().any(char::is_control) {
        return Err(Error::invalid(field, format!("must be 1 to {max} bytes without control characters")));
    }
    Ok(v.to_owned())
}

fn optional(field: &'static str, value: Option<&str>, max: usize) -> Result<Option<String>> {
    value.filter(|v| !v.trim().is_empty()).map(|v| bounded(field, v, max)).transpose()
}

fn check_url(field: &'static str, url: &str) -> Result<String> {
    let url = url.trim();
    let scheme = |p: &str| url.get(..p.len()).is_some_and(|s| s.eq_ignore_ascii_case(p));
    let ok = (scheme("https://") || scheme("http://"))
        && url.len() <= 2048
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        return Err(Error::invalid(field, "must be an http(s) URL of at most 2048 bytes without spaces"));
    }
    Ok(url.to_owned())
}

#[derive(Deserialize)]
struct RawEvent {
    event: Option<String>,
    event_id: Option<String>,
    occurred_at: Option<String>,
    visitor: Option<RawVisitor>,
    conversation: Option<RawConversation>,
    message: Option<RawMessage>,
}

#[derive(Deserialize)]
struct RawVisitor {
    anon_id: Option<String>,
    identifier: Option<String>,
    identifier_hash: Option<String>,
    email: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct RawConversation {
    id: Option<String>,
    page_url: Option<String>,
}

#[derive(Deserialize)]
struct RawMessage {
    client_msg_id: Option<String>,
    text: Option<String>,
    #[serde(default)]
    attachments: Vec<RawAttachment>,
}

#[derive(Deserialize)]
struct RawAttachment {
    url: Option<String>,
    content_type: Option<String>,
    filename: Option<String>,
}

/// A visitor's message.
#[derive(Debug, Clone, PartialEq)]
pub struct WebChatMessage {
    /// The widget's event id.
    pub event_id: Option<String>,
    /// Whether the visitor proved who they are.
    pub identity: IdentityCheck,
    /// The widget's conversation id.
    pub conversation_id: Option<String>,
    /// The page the visitor wrote from.
    pub page_url: Option<String>,
    /// One message per item: the text, or each attachment (the first carries the text as
    /// caption).
    pub inbound: Vec<InboundMessage>,
}

/// The visitor started or stopped typing.
#[derive(Debug, Clone, PartialEq)]
pub struct TypingEvent {
    /// The visitor's address (as on their messages).
    pub visitor: Address,
    /// Whether the visitor proved who they are.
    pub identity: IdentityCheck,
    /// The widget's conversation id.
    pub conversation_id: Option<String>,
    /// `true` for `typing.started`, `false` for `typing.stopped`.
    pub typing: bool,
    /// When, as the widget reports.
    pub at: Option<DateTime<Utc>>,
}

/// A parsed widget event.
#[derive(Debug, Clone, PartialEq)]
pub enum WebChatEvent {
    /// `message.created`.
    Message(WebChatMessage),
    /// `typing.started` / `typing.stopped`.
    Typing(TypingEvent),
}

impl WebChatWidget {
    /// A widget on `endpoint` verifying identities with `secret`.
    ///
    /// Errors: a secret shorter than [`MIN_SECRET_BYTES`]; an endpoint id with `:` (it scopes
    /// the visitors' addresses).
    pub fn new(endpoint: EndpointId, secret: impl AsRef<[u8]>) -> Result<Self> {
        if endpoint.as_str().contains(':') {
            return Err(Error::invalid(
                "endpoint",
                "a web-chat endpoint id scopes visitor tokens and must not contain ':'",
            ));
        }
        let secret = secret.as_ref();
        if secret.len() < MIN_SECRET_BYTES {
            return Err(Error::invalid(
                "secret",
                format!("the widget secret must be at least {MIN_SECRET_BYTES} bytes"),
            ));
        }
        let keyed = <HmacSha256 as KeyInit>::new_from_slice(secret)
            .map_err(|_| Error::invalid("secret", "is not usable as an HMAC key"))?;
        Ok(WebChatWidget { endpoint, keyed })
    }

    /// The widget's endpoint.
    pub fn endpoint(&self) -> &EndpointId {
        &self.endpoint
    }

    /// The address of a visitor token on this widget (scoped to the endpoint).
    pub fn visitor_address(&self, anon_id: &str) -> Address {
        Address::platform(self.endpoint.as_str(), anon_id.trim())
    }

    /// The identity hash of `user_id`: lowercase hex of `HMAC-SHA256(secret, user_id)`.
    /// Compute it on the host's server and render it into the page with the user id.
    pub fn identity_hash(&self, user_id: &str) -> String {
        let mut mac = self.keyed.clone();
        mac.update(user_id.as_bytes());
        let mut out = String::with_capacity(64);
        for b in mac.finalize().into_bytes() {
            let _ = write!(out, "{b:02x}");
        }
        out
    }

    /// Checks a claimed `user_id` against its `hash` in constant time.
    pub fn verify_identity(&self, user_id: &str, hash: Option<&str>) -> IdentityCheck {
        let claimed = user_id.trim();
        let unverified = |reason| IdentityCheck::Unverified { user_id: claimed.chars().take(256).collect(), reason };
        if claimed.is_empty() || claimed.len() > 256 || claimed.chars().any(char::is_control) {
            return unverified(UnverifiedReason::InvalidIdentifier);
        }
        let Some(hash) = hash.map(str::trim).filter(|h| !h.is_empty()) else {
            return unverified(UnverifiedReason::MissingHash);
        };
        let Some(bytes) = hex_decode(hash).filter(|b| b.len() == 32) else {
            return unverified(UnverifiedReason::MalformedHash);
        };
        let mut mac = self.keyed.clone();
        mac.update(claimed.as_bytes());
        match mac.verify_slice(&bytes) {
            Ok(()) => IdentityCheck::Verified { user_id: claimed.to_owned() },
            Err(_) => unverified(UnverifiedReason::HashMismatch),
        }
    }

    /// Parses one widget event (see the [module docs](self) for the format).
    ///
    /// ```
    /// use touchpoint::channels::webchat::{WebChatEvent, WebChatWidget};
    /// use touchpoint::model::{Content, CustomerKey, EndpointId, Verification};
    /// let widget = WebChatWidget::new(EndpointId::new("site-widget").unwrap(), "widget-secret-0123456789").unwrap();
    /// let body = format!(
    ///     r#"{{"event":"message.created","visitor":{{"anon_id":"v_1","identifier":"cust_5521","identifier_hash":"{}"}},
    ///         "message":{{"client_msg_id":"m1","text":"Hi, parcel missing"}}}}"#,
    ///     widget.identity_hash("cust_5521")
    /// );
    /// let WebChatEvent::Message(msg) = widget.parse(body.as_bytes()).unwrap() else { panic!() };
    /// let inbound = &msg.inbound[0];
    /// assert_eq!(inbound.content, Content::text("Hi, parcel missing"));
    /// assert_eq!(inbound.claims[0].key, CustomerKey::ExternalId("cust_5521".into()));
    /// assert_eq!(inbound.claims[0].verification, Verification::Verified);
    /// ```
    ///
    /// Errors ([`Error::InvalidInput`] naming the field): a body over [`MAX_EVENT_BYTES`], not
    /// JSON or not an object of this shape, an unknown `event`, a missing `visitor.anon_id`, a
    /// malformed `occurred_at`; for messages a missing `client_msg_id`, no text and no
    /// attachment, text over [`MAX_TEXT_CHARS`] characters, more than [`MAX_ATTACHMENTS`]
    /// attachments or a non-http(s) attachment URL. A failed identity check is not an error.
    pub fn parse(&self, body: &[u8]) -> Result<WebChatEvent> {
        if body.len() > MAX_EVENT_BYTES {
            return Err(Error::invalid(
                "webchat",
                format!("the event is {} bytes, the limit is {MAX_EVENT_BYTES}", body.len()),
            ));
        }
        let raw: RawEvent =
            serde_json::from_slice(body).map_err(|e| Error::invalid("webchat", format!("not a widget event: {e}")))?;
        let event = raw.event.as_deref().map(str::trim).ok_or_else(|| Error::invalid("event", "is missing"))?;
        let visitor = raw.visitor.ok_or_else(|| Error::invalid("visitor", "is missing"))?;
        let anon_id = visitor
            .anon_id
            .as_deref()
            .filter(|a| !a.trim().is_empty())
            .ok_or_else(|| Error::invalid("visitor.anon_id", "is missing or empty"))?;
        let anon_id = bounded("visitor.anon_id", anon_id, 256)?;
        if anon_id.chars().any(char::is_whitespace) {
            return Err(Error::invalid("visitor.anon_id", "must not contain spaces"));
        }
        let address = self.visitor_address(&anon_id);
        let identity = match visitor.identifier.as_deref().filter(|i| !i.trim().is_empty()) {
            None => IdentityCheck::Anonymous,
            Some(id) => self.verify_identity(id, visitor.identifier_hash.as_deref()),
        };
        let at = match raw.occurred_at.as_deref() {
            None => None,
            Some(t) => Some(
                DateTime::parse_from_rfc3339(t.trim())
                    .map_err(|e| Error::invalid("occurred_at", format!("is not an RFC 3339 time: {e}")))?
                    .with_timezone(&Utc),
            ),
        };
        let (conversation_id, page_url) = match &raw.conversation {
            Some(c) => (
                optional("conversation.id", c.id.as_deref(), 256)?,
                c.page_url
                    .as_deref()
                    .filter(|u| !u.trim().is_empty())
                    .map(|u| check_url("conversation.page_url", u))
                    .transpose()?,
            ),
            None => (None, None),
        };
        match event {
            "typing.started" | "typing.stopped" => Ok(WebChatEvent::Typing(TypingEvent {
                visitor: address,
                identity,
                conversation_id,
                typing: event == "typing.started",
                at,
            })),
            "message.created" => {
                let message = raw.message.ok_or_else(|| Error::invalid("message", "is missing"))?;
                let client_msg_id = message
                    .client_msg_id
                    .as_deref()
                    .filter(|i| !i.trim().is_empty())
                    .ok_or_else(|| Error::invalid("message.client_msg_id", "is missing or empty"))?;
                let client_msg_id = bounded("message.client_msg_id", client_msg_id, 240)?;
                // `#` marks the attachment suffix: escape it (and `%`) so `m1#1` cannot be the
                // second attachment of `m1`. Ids without either character are unchanged.
                let client_msg_id = if client_msg_id.contains(['#', '%']) {
                    client_msg_id.replace('%', "%25").replace('#', "%23")
                } else {
                    client_msg_id
                };
                let text = message.text.as_deref().filter(|t| !t.trim().is_empty()).map(str::to_owned);
                if let Some(t) = &text {
                    let chars = t.chars().count();
                    if chars > MAX_TEXT_CHARS {
                        return Err(Error::invalid(
                            "message.text",
                            format!("{chars} characters, the limit is {MAX_TEXT_CHARS}"),
                        ));
                    }
                }
                if message.attachments.len() > MAX_ATTACHMENTS {
                    return Err(Error::invalid(
                        "message.attachments",
                        format!("{} attachments, the limit is {MAX_ATTACHMENTS}", message.attachments.len()),
                    ));
                }
                let mut caption = text.clone();
                let mut items = Vec::new();
                for a in &message.attachments {
                    let url =
                        a.url.as_deref().ok_or_else(|| Error::invalid("message.attachments.url", "is missing"))?;
                    let mime_type = optional("message.attachments.content_type", a.content_type.as_deref(), 255)?;
                    items.push(Content::Media {
                        media: super::media_kind(mime_type.as_deref().unwrap_or("")),
                        url: check_url("message.attachments.url", url)?,
                        mime_type,
                        caption: caption.take(),
                        filename: optional("message.attachments.filename", a.filename.as_deref(), 255)?,
                    });
                }
                if items.is_empty() {
                    match text {
                        Some(body) => items.push(Content::Text { body }),
                        None => return Err(Error::invalid("message.text", "a message needs text or an attachment")),
                    }
                }
                let name = visitor.name.as_deref().and_then(|n| super::display_name(n, 256));
                // A malformed typed email is left out rather than failing the visitor's message.
                let email = visitor.email.as_deref().map(str::trim).filter(|e| normalize_email(e).is_ok());
                let thread = ThreadHints { provider_thread_id: conversation_id.clone(), ..ThreadHints::default() };
                let inbound = items
                    .into_iter()
                    .enumerate()
                    .map(|(i, content)| {
                        // The browser picks `client_msg_id`: it is a key within the visitor's
                        // own messages only (an anon id has no spaces, so the join is unique).
                        let id = match i {
                            0 => format!("{anon_id} {client_msg_id}"),
                            _ => format!("{anon_id} {client_msg_id}#{i}"),
                        };
                        let mut msg = InboundMessage::new(
                            ChannelKind::WebChat,
                            self.endpoint.clone(),
                            address.clone(),
                            id,
                            content,
                        )
                        .with_thread(thread.clone());
                        if let Some(user) = identity.verified_user() {
                            msg = msg
                                .with_verification(Verification::Verified)
                                .with_claim(CustomerKey::ExternalId(user.to_owned()), Verification::Verified);
                        }
                        if let Some(email) = email {
                            msg = msg.with_claim(CustomerKey::Email(email.to_owned()), Verification::Unverified);
                        }
                        if let Some(name) = &name {
                            msg = msg.with_sender_name(name.clone());
                        }
                        if let Some(at) = at {
                            msg = msg.with_sent_at(at);
                        }
                        msg
                    })
                    .collect();
                Ok(WebChatEvent::Message(WebChatMessage {
                    event_id: optional("event_id", raw.event_id.as_deref(), 256)?,
                    identity,
                    conversation_id,
                    page_url,
                    inbound,
                }))
            }
            other => {
                let shown: String = other.chars().take(40).collect();
                Err(Error::invalid("event", format!("unknown event {shown:?}")))
            }
        }
    }
}
