//! WhatsApp Business Platform (Cloud API) kit: webhooks in, send-message JSON out.
//!
//! **Inbound.** [`WhatsAppKit::parse_webhook`] takes the raw body of a webhook POST (check it
//! first with [`MetaSignature`](super::signature::MetaSignature)) and returns one
//! [`KitEvent`] per customer message and per status:
//!
//! | webhook | event |
//! |---|---|
//! | `text` | [`Content::Text`] |
//! | `image`, `video`, `audio` (voice notes too), `document`, `sticker` | [`Content::Media`] whose `url` is `whatsapp-media:<media id>` (see [`media_id`]): fetch it through the Graph API with your token within 7 days |
//! | `location` | [`Content::Location`] |
//! | `contacts` | one [`Content::Contact`] per card (the 2nd, 3rd … under `<wamid>#2`, `#3`, …) |
//! | `interactive` `button_reply` / `list_reply`, `button` (template quick reply) | [`Content::Choices`] with the pick in `selected` |
//! | `interactive` `nfm_reply` (Flows) | [`Content::System`] `flow_reply`, detail = the response JSON |
//! | `reaction` | [`Content::System`] `reaction` (detail = emoji) or `reaction_removed`; `thread.in_reply_to` = the message reacted to |
//! | `order` | [`Content::System`] `order` with a one-line summary |
//! | `system` | [`Content::System`] named after `system.type`, detail = `system.body`; a number change comes from the new number (see below) |
//! | `unsupported` and types this kit does not know | [`Content::System`] `unsupported` with the error code |
//! | `statuses[]` | [`KitEvent::Receipt`]: `sent`, `delivered`, `read`, `failed` (the first error's code; every error's words) |
//! | `statuses[]` of a message sent to a group | the same receipts for our message; `recipient` is the participant (`recipient_participant_user_id` / `recipient_participant_id`) or `None` for the group's own `sent` / `failed`; one participant's `failed` is [`KitEvent::Skipped`] `whatsapp.status.failed.group_participant` |
//! | a message received in a group (`messages[].group_id`) | as above, from the participant, with `thread.provider_thread_id` = `group:<group id>`: the host tells group messages apart by it. Conversations are one customer's, so threading places it as that participant's message |
//! | `errors[]` of the change (webhook-level: rate limits, app or account problems) | one [`KitEvent::ProviderError`] each (endpoint, code, words), before the change's messages and statuses |
//! | other change fields (`account_update`, template updates, …) | [`KitEvent::Skipped`] |
//!
//! Identity (reference §1.3): the sender is the phone number `wa_id` as `+<digits>`
//! ([`Address::Phone`], carrier-asserted). When Meta sends a business-scoped user id (`user_id`,
//! `from_user_id`), the sender is that id, scoped to the business portfolio
//! ([`Address::Platform`]), and the phone number — when still sent — rides along as a
//! carrier-asserted [`CustomerKey::Phone`] claim, so customers known by phone are linked to their
//! new id. The profile name becomes `sender_name`: the name of the `contacts` entry whose `wa_id`
//! is the message's `from` (or whose `user_id` is its `from_user_id`). A lone entry that matches
//! neither (Meta warns a user's id and phone number may differ) stands for the sender only when
//! every message of the change comes from one sender; otherwise the message has no name rather
//! than someone else's. `context.id` (the message replied to, or whose button was tapped) becomes
//! `thread.in_reply_to`.
//!
//! **Number changes.** When a user changes their phone number WhatsApp sends a `system` message
//! of type `user_changed_number` (`customer_changed_number` before webhooks v12) from the old
//! number (`from`) naming the new one (`system.wa_id`; `new_wa_id` before v12, sometimes a JSON
//! number). The kit makes it the first message of the new number: the sender is the new number
//! (or the new business-scoped id in `system.user_id`, with the new number as a claim), and the
//! old number is a carrier-asserted [`CustomerKey::Phone`] claim. Ingesting it links the new
//! number to the customer who had the old one ([`Resolution::Linked`] by phone), so the customer
//! stays one, and replies go to the number the customer uses now. The old number stays an
//! identity of the customer (WhatsApp may give it to someone else later: unlink it with
//! [`Engine::unlink_identity`] if that matters to you); and a new number that already is an
//! identity of another customer (a reused number) stays theirs: when the notice's outcome names
//! another customer than the old number's, move the identity with [`Engine::move_identity`]. A
//! change without a usable new number is [`Error::InvalidInput`]. `customer_identity_changed`
//! (the user's security key changed: a reinstall, a new device) changes no address and stays a
//! note from the same number.
//!
//! [`Resolution::Linked`]: crate::identity::Resolution::Linked
//! [`Engine::unlink_identity`]: crate::Engine::unlink_identity
//! [`Engine::move_identity`]: crate::Engine::move_identity
//!
//! ```
//! use touchpoint::channels::{whatsapp::WhatsAppKit, KitEvent};
//! use touchpoint::model::{Address, Content};
//!
//! let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"900000000000001","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001111","phone_number_id":"800000000000001"},"contacts":[{"profile":{"name":"Ada Example"},"wa_id":"447700900123"}],"messages":[{"from":"447700900123","id":"wamid.TEST0001","timestamp":"1735689600","type":"text","text":{"body":"Hi, my parcel has not arrived"}}]}}]}]}"#;
//! let kit = WhatsAppKit::new();
//! let events = kit.parse_webhook(body).unwrap();
//! let KitEvent::Message(msg) = &events[0] else { panic!() };
//! assert_eq!(msg.sender, Address::phone("+447700900123"));
//! assert_eq!(msg.external_id, "wamid.TEST0001");
//! assert_eq!(msg.endpoint.as_str(), "800000000000001"); // the phone_number_id, unless mapped
//! assert_eq!(msg.content, Content::text("Hi, my parcel has not arrived"));
//! ```
//!
//! Bodies are read by a small JSON scanner that borrows strings from the body and skips what
//! the kit does not read; the rare message objects (`location`, `interactive`, …), statuses, and
//! any body the scanner is not sure of go through serde_json, so the JSON accepted and the
//! errors reported are serde_json's.
//!
//! **Outbound.** [`send_message`] turns [`Content`] into the body of
//! `POST /{phone_number_id}/messages`; [`mark_read`] builds the read receipt (with an optional
//! typing indicator).

use super::json::{self, Seq, UnixSeconds};
use super::scan::{Scanned, Scanner, Unsure};
use super::{DeliveryReceipt, KitEvent};
use crate::model::{
    Address, ChannelKind, ChoiceOption, Claim, ContactCard, Content, CustomerKey, DeliveryState, EndpointId,
    InboundMessage, MediaKind, ThreadHints, Verification,
};
use crate::{Error, Result};
use serde::Deserialize;
use serde_json::{Value, json};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;

const FIELD: &str = "whatsapp webhook";

/// The prefix of [`Content::Media`] URLs that stand for a WhatsApp media id.
pub const MEDIA_URL_PREFIX: &str = "whatsapp-media:";

/// The WhatsApp media id inside a `whatsapp-media:<id>` URL (as the kit writes for inbound
/// media), or `None` for any other URL.
///
/// ```
/// use touchpoint::channels::whatsapp::media_id;
/// assert_eq!(media_id("whatsapp-media:1234567890"), Some("1234567890"));
/// assert_eq!(media_id("https://cdn.example.net/a.jpg"), None);
/// ```
pub fn media_id(url: &str) -> Option<&str> {
    url.strip_prefix(MEDIA_URL_PREFIX).filter(|id| !id.is_empty())
}

/// Parses WhatsApp Cloud API webhooks. Cheap to clone; `Send + Sync`.
#[derive(Debug, Default)]
pub struct WhatsAppKit {
    endpoints: HashMap<String, EndpointId>,
    portfolio: Option<String>,
    /// The endpoint named after the last unmapped `phone_number_id`, reused while the next
    /// webhook is for the same number (most are): spares building and checking it again.
    recent: Mutex<Option<EndpointId>>,
}

impl Clone for WhatsAppKit {
    fn clone(&self) -> Self {
        WhatsAppKit { endpoints: self.endpoints.clone(), portfolio: self.portfolio.clone(), recent: Mutex::new(None) }
    }
}

impl WhatsAppKit {
    /// A kit that names each business number's endpoint after its `phone_number_id` and scopes
    /// business-scoped user ids to the WhatsApp Business Account id of the webhook entry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Names the endpoint of the business number `phone_number_id` (one kit serves many
    /// numbers; route tenants on the endpoint).
    pub fn with_endpoint(mut self, phone_number_id: impl Into<String>, endpoint: EndpointId) -> Self {
        self.endpoints.insert(phone_number_id.into(), endpoint);
        self
    }

    /// Scopes business-scoped user ids to `portfolio` (the business portfolio id). Set it when
    /// one portfolio owns several WhatsApp Business Accounts, so a customer keeps one identity
    /// across them; without it the scope is the account id of the webhook entry.
    /// A scope is 1–128 bytes without `:`, spaces or control characters.
    pub fn with_portfolio(mut self, portfolio: impl Into<String>) -> Result<Self> {
        let portfolio = portfolio.into();
        let spaced = portfolio.trim() != portfolio;
        crate::identity::normalize::normalize_platform_id(Some(&portfolio), "1").ok().filter(|_| !spaced).ok_or_else(
            || Error::invalid("portfolio", "must be 1 to 128 bytes without `:`, spaces or control characters"),
        )?;
        self.portfolio = Some(portfolio);
        Ok(self)
    }

    /// Parses the raw body of one webhook POST into events, in payload order (within a change:
    /// its webhook-level errors, then its messages, then its statuses). Malformed bodies fail
    /// with [`Error::InvalidInput`] naming the JSON path; nothing is returned partially.
    pub fn parse_webhook(&self, body: &[u8]) -> Result<Vec<KitEvent>> {
        // The scanner reads the envelope; whatever it is not sure of (bad JSON, odd shapes),
        // serde_json parses again, and decides and names the error.
        let scanned = std::str::from_utf8(body).ok().and_then(|text| scan_webhook(text).ok());
        let hook: Webhook<'_> = match scanned {
            Some(hook) => hook,
            None => json::parse(FIELD, body)?,
        };
        if hook.object != "whatsapp_business_account" {
            return Err(json::at(
                FIELD,
                "object",
                format!("is {:?}; a WhatsApp webhook has `whatsapp_business_account`", hook.object),
            ));
        }
        // One event per webhook is the common case.
        let mut out = Vec::with_capacity(1);
        for (i, entry) in hook.entry.into_iter().enumerate() {
            for (j, change) in entry.changes.into_iter().enumerate() {
                let at = |rest: &str| format!("entry[{i}].changes[{j}].{rest}");
                if change.field != "messages" {
                    out.push(KitEvent::Skipped { kind: format!("whatsapp.{}", change.field) });
                    continue;
                }
                let mut value = change.value.ok_or_else(|| json::at(FIELD, &at("value"), "missing"))?;
                self.parse_value(&mut value, entry.id.as_deref(), &at, &mut out)?;
            }
        }
        Ok(out)
    }

    /// The endpoint named after `phone_number_id` (no mapping set for it).
    fn unmapped_endpoint(&self, phone_number_id: &str) -> Result<EndpointId> {
        // Never waits: a kit shared between threads builds the id when another holds the cache.
        if let Ok(mut recent) = self.recent.try_lock() {
            if let Some(endpoint) = recent.as_ref().filter(|e| e.as_str() == phone_number_id) {
                return Ok(endpoint.clone());
            }
            let endpoint = EndpointId::new(phone_number_id)?;
            *recent = Some(endpoint.clone());
            return Ok(endpoint);
        }
        EndpointId::new(phone_number_id)
    }

    /// The endpoint of the business number the change is for.
    fn endpoint(&self, metadata: &Metadata<'_>, at: &dyn Fn(&str) -> String) -> Result<EndpointId> {
        let id = metadata.phone_number_id.as_ref();
        match self.endpoints.get(id) {
            Some(e) => Ok(e.clone()),
            None => self.unmapped_endpoint(id).map_err(|e| json::at(FIELD, &at("value.metadata.phone_number_id"), e)),
        }
    }

    fn parse_value(
        &self,
        value: &mut ChangeValue<'_>,
        account: Option<&str>,
        at: &dyn Fn(&str) -> String,
        out: &mut Vec<KitEvent>,
    ) -> Result<()> {
        let scope = self.portfolio.as_deref().or(account);
        // Webhook-level errors (Meta's "errors messages webhook") are about no single message:
        // reported first, beside whatever else the change holds.
        if !value.errors.is_empty() {
            let endpoint = match &value.metadata {
                Some(metadata) => Some(self.endpoint(metadata, at)?),
                None => None,
            };
            for e in std::mem::take(&mut value.errors) {
                out.push(KitEvent::ProviderError {
                    channel: ChannelKind::WhatsApp,
                    endpoint: endpoint.clone(),
                    code: e.code(),
                    reason: e.reason(),
                });
            }
        }
        if !value.messages.is_empty() {
            let metadata = value.metadata.as_ref().ok_or_else(|| json::at(FIELD, &at("value.metadata"), "missing"))?;
            let endpoint = self.endpoint(metadata, at)?;
            // A lone contact that names no message's sender is taken as the sender's only when
            // every message of the change has one sender: Meta warns that `wa_id` and `from` may
            // differ, but in a batch the contact may be another sender's.
            let one_sender = match value.messages.as_slice().split_first() {
                Some((first, rest)) => rest.iter().all(|m| same_sender(first, m)),
                None => true,
            };
            let fallback = match value.contacts.as_slice() {
                [only] if one_sender => Some(only),
                _ => None,
            };
            let ctx = Ctx { scope, contacts: value.contacts.as_slice(), fallback };
            for (k, m) in std::mem::take(&mut value.messages).into_iter().enumerate() {
                let path = |rest: &str| at(&format!("value.messages[{k}]{rest}"));
                ctx.message(m, &endpoint, &path, out)?;
            }
        }
        for (k, s) in std::mem::take(&mut value.statuses).into_iter().enumerate() {
            let path = |rest: &str| at(&format!("value.statuses[{k}]{rest}"));
            if let Some(receipt) = receipt(s, scope, &path)? {
                out.push(receipt);
            }
        }
        Ok(())
    }
}

struct Ctx<'v, 'a> {
    scope: Option<&'v str>,
    contacts: &'v [WaContact<'a>],
    /// The contact to use for a message no contact names (see `parse_value`).
    fallback: Option<&'v WaContact<'a>>,
}

/// Whether two messages name the same sender (phone number and business-scoped user id).
fn same_sender(a: &WaMessage<'_>, b: &WaMessage<'_>) -> bool {
    nonempty(&a.from) == nonempty(&b.from) && nonempty(&a.from_user_id) == nonempty(&b.from_user_id)
}

fn digits(field_path: impl FnOnce() -> String, raw: &str) -> Result<String> {
    if raw.is_empty() || raw.len() > 20 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(json::at(FIELD, &field_path(), format!("{raw:?} is not a WhatsApp phone number (digits only)")));
    }
    let mut number = String::with_capacity(1 + raw.len());
    number.push('+');
    number.push_str(raw);
    Ok(number)
}

fn nonempty<S: AsRef<str>>(s: &Option<S>) -> Option<&str> {
    s.as_ref().map(AsRef::as_ref).filter(|s| !s.is_empty())
}

impl Ctx<'_, '_> {
    /// A business-scoped user id as the address it is in its scope.
    fn platform(&self, id: &str, path: impl Fn() -> String) -> Result<Address> {
        let scope = self.scope.ok_or_else(|| {
            json::at(FIELD, &path(), "a business-scoped user id needs a scope: the entry id or a portfolio")
        })?;
        let address = Address::platform(scope, id);
        json::check_platform(FIELD, path, &address)?;
        Ok(address)
    }

    fn message(
        &self,
        mut m: Box<WaMessage<'_>>,
        endpoint: &EndpointId,
        path: &dyn Fn(&str) -> String,
        out: &mut Vec<KitEvent>,
    ) -> Result<()> {
        json::check_id(FIELD, || path(".id"), &m.id)?;
        let contact = self
            .contacts
            .iter()
            .find(|c| {
                (m.from.is_some() && c.wa_id == m.from) || (m.from_user_id.is_some() && c.user_id == m.from_user_id)
            })
            .or(self.fallback);
        let phone = match nonempty(&m.from).or_else(|| contact.and_then(|c| nonempty(&c.wa_id))) {
            Some(p) => Some(digits(|| path(".from"), p)?),
            None => None,
        };
        let bsuid = nonempty(&m.from_user_id).or_else(|| contact.and_then(|c| nonempty(&c.user_id)));
        // A number change comes from the new number (or the new business-scoped id), with the
        // old number as a claim: ingest links it to the customer who had the old one. Its
        // `from_user_id`, if any, may be the id the change replaced: not the sender.
        let change = match (m.kind.as_ref(), m.system.as_deref()) {
            ("system", Some(system)) => number_change(system, path)?,
            _ => None,
        };
        let (sender, claims) = match (change, bsuid, phone) {
            (Some(change), _, phone) => {
                let old = match phone {
                    Some(p) => Some(p),
                    None => change.customer,
                };
                let mut claims = Vec::with_capacity(2);
                let sender = match change.user_id {
                    Some(id) => {
                        let address = self.platform(id, || path(".system.user_id"))?;
                        claims.push(change.phone.clone());
                        address
                    }
                    None => Address::phone(change.phone.clone()),
                };
                claims.extend(old.filter(|old| *old != change.phone));
                (sender, claims)
            }
            (None, Some(id), phone) => (self.platform(id, || path(".from_user_id"))?, phone.into_iter().collect()),
            (None, None, Some(phone)) => (Address::phone(phone), Vec::new()),
            (None, None, None) => return Err(json::at(FIELD, &path(".from"), "missing: the message names no sender")),
        };
        let name = contact.and_then(|c| c.profile.as_ref()).and_then(|p| p.name.as_deref());
        let name = name.and_then(|n| super::display_name(n, 256));
        let mut thread = ThreadHints::default();
        // A message received in a group (`group_id`) names the group as its provider thread,
        // which tells it apart from a direct message of the same participant.
        if let Some(group) = nonempty(&m.group_id) {
            json::check_id(FIELD, || path(".group_id"), group)?;
            thread.provider_thread_id = Some(format!("group:{group}"));
        }
        if let Some(reply_to) = m.context.as_ref().and_then(|c| nonempty(&c.id)) {
            json::check_id(FIELD, || path(".context.id"), reply_to)?;
            thread.in_reply_to = Some(reply_to.to_owned());
        }
        let (first, more) = contents(&mut m, path, &mut thread)?;
        let count = 1 + more.len();
        // The last message takes the shared values instead of cloning them.
        let mut id = std::mem::take(&mut m.id);
        let mut sender = Some(sender);
        let mut name = name;
        let mut thread = Some(thread);
        for (n, content) in std::iter::once(first).chain(more).enumerate() {
            let last = n + 1 == count;
            let external_id = match (n, last) {
                (0, true) => std::mem::take(&mut id),
                (0, false) => id.clone(),
                _ => format!("{id}#{}", n + 1),
            };
            if n > 0 {
                json::check_id(FIELD, || path(".id"), &external_id)?;
            }
            json::check_content(FIELD, || path(""), &content)?;
            let from = if last { sender.take() } else { sender.clone() };
            let Some(from) = from else { break };
            // Built in place in `out` (the builder methods would move the message at each step).
            let to = endpoint.clone();
            out.push(KitEvent::Message(InboundMessage::new(ChannelKind::WhatsApp, to, from, external_id, content)));
            let Some(KitEvent::Message(msg)) = out.last_mut() else { break };
            msg.sent_at = Some(m.timestamp.0);
            if let Some(hints) = if last { thread.take() } else { thread.clone() } {
                msg.thread = hints;
            }
            msg.claims.extend(claims.iter().map(|phone| Claim {
                key: CustomerKey::Phone(phone.clone()),
                verification: Verification::CarrierAsserted,
            }));
            msg.sender_name = if last { name.take() } else { name.clone() };
        }
        Ok(())
    }
}

/// What a `system` message that announces a new phone number says.
struct NumberChange<'s> {
    /// The new number, `+<digits>`.
    phone: String,
    /// The number before the change as older payloads name it (`customer`), `+<digits>`.
    customer: Option<String>,
    /// The user's new business-scoped user id (a number change regenerates it).
    user_id: Option<&'s str>,
}

/// The number change a `system` message announces (`user_changed_number`, and
/// `customer_changed_number` before webhooks v12), or `None` for other system messages
/// (`customer_identity_changed` says the user's security key changed, not their address).
fn number_change<'s>(system: &'s System, path: &dyn Fn(&str) -> String) -> Result<Option<NumberChange<'s>>> {
    if !matches!(nonempty(&system.kind), Some("user_changed_number" | "customer_changed_number")) {
        return Ok(None);
    }
    let (field, new) = match (&system.wa_id, &system.new_wa_id) {
        (Some(id), _) => ("wa_id", id),
        (None, Some(id)) => ("new_wa_id", id),
        (None, None) => {
            return Err(json::at(
                FIELD,
                &path(".system.wa_id"),
                "missing: a number change names the new number (`wa_id`; `new_wa_id` before webhooks v12)",
            ));
        }
    };
    let phone = wa_id(new, &|| path(&format!(".system.{field}")))?;
    let customer = match &system.customer {
        Some(old) => Some(wa_id(old, &|| path(".system.customer"))?),
        None => None,
    };
    Ok(Some(NumberChange { phone, customer, user_id: nonempty(&system.user_id) }))
}

/// A WhatsApp id in a `system` object as `+<digits>`: a string of digits, or (older payloads)
/// a JSON number.
fn wa_id(value: &Value, path: &dyn Fn() -> String) -> Result<String> {
    match value {
        Value::String(s) => digits(path, s),
        Value::Number(n) if n.is_u64() => digits(path, &n.to_string()),
        _ => Err(json::at(FIELD, &path(), "is not a WhatsApp phone number (a string of digits)")),
    }
}

fn missing(path: &dyn Fn(&str) -> String, object: &str, kind: &str) -> Error {
    json::at(FIELD, &path(&format!(".{object}")), format!("missing, but the message type is `{kind}`"))
}

fn media(kind: MediaKind, m: Option<&WaMedia>, name: &str, path: &dyn Fn(&str) -> String) -> Result<Content> {
    let media = m.ok_or_else(|| missing(path, name, name))?;
    let url = match (nonempty(&media.id), nonempty(&media.link)) {
        (Some(id), _) => format!("{MEDIA_URL_PREFIX}{id}"),
        (None, Some(link)) => link.to_owned(),
        (None, None) => return Err(json::at(FIELD, &path(&format!(".{name}.id")), "missing: no media id or link")),
    };
    Ok(Content::Media {
        media: kind,
        url,
        mime_type: media.mime_type.clone().filter(|s| !s.is_empty()),
        caption: media.caption.clone().filter(|s| !s.is_empty()),
        filename: media.filename.clone().filter(|s| !s.is_empty()),
    })
}

/// The message's content: usually one, several for a `contacts` message with several cards.
fn contents(
    m: &mut WaMessage<'_>,
    path: &dyn Fn(&str) -> String,
    thread: &mut ThreadHints,
) -> Result<(Content, Vec<Content>)> {
    let kind = m.kind.as_ref();
    let one = |c: Content| Ok((c, Vec::new()));
    match kind {
        "text" => {
            let text = m.text.as_mut().ok_or_else(|| missing(path, "text", kind))?;
            one(Content::text(std::mem::take(&mut text.body)))
        }
        "image" => one(media(MediaKind::Image, m.image.as_deref(), kind, path)?),
        "video" => one(media(MediaKind::Video, m.video.as_deref(), kind, path)?),
        "audio" | "voice" => {
            let source = if m.audio.is_some() { m.audio.as_deref() } else { m.voice.as_deref() };
            one(media(MediaKind::Audio, source, if m.audio.is_some() { "audio" } else { kind }, path)?)
        }
        "document" => one(media(MediaKind::Document, m.document.as_deref(), kind, path)?),
        "sticker" => one(media(MediaKind::Sticker, m.sticker.as_deref(), kind, path)?),
        "location" => {
            let l = m.location.as_ref().ok_or_else(|| missing(path, "location", kind))?;
            one(Content::Location {
                latitude: l.latitude,
                longitude: l.longitude,
                name: l.name.clone().filter(|s| !s.is_empty()),
                address: l.address.clone().filter(|s| !s.is_empty()),
            })
        }
        "contacts" => {
            let cards = m.contacts.as_ref().filter(|c| !c.is_empty()).ok_or_else(|| missing(path, "contacts", kind))?;
            let cards: Vec<Content> = cards
                .iter()
                .enumerate()
                .map(|(n, c)| contact_card(c, &|| path(&format!(".contacts[{n}]"))))
                .collect::<Result<_>>()?;
            let mut cards = cards.into_iter();
            let first = cards.next().ok_or_else(|| missing(path, "contacts", kind))?;
            Ok((first, cards.collect()))
        }
        "interactive" => {
            let i = m.interactive.as_ref().ok_or_else(|| missing(path, "interactive", kind))?;
            let pick = |r: &Option<Reply>, name: &str| -> Result<Content> {
                let r = r.as_ref().ok_or_else(|| missing(path, &format!("interactive.{name}"), name))?;
                Ok(picked(r.id.clone(), r.title.clone(), r.description.clone()))
            };
            match i.kind.as_ref() {
                "button_reply" => one(pick(&i.button_reply, "button_reply")?),
                "list_reply" => one(pick(&i.list_reply, "list_reply")?),
                "nfm_reply" => {
                    let r = i.nfm_reply.as_ref().ok_or_else(|| missing(path, "interactive.nfm_reply", "nfm_reply"))?;
                    let detail = r.response_json.clone().or_else(|| r.body.clone());
                    one(Content::System { event: "flow_reply".into(), detail })
                }
                other => one(unsupported(format!("interactive reply type `{other}` is not understood by this kit"))),
            }
        }
        "button" => {
            let b = m.button.as_ref().ok_or_else(|| missing(path, "button", kind))?;
            let id = b.payload.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| b.text.clone());
            one(picked(id, b.text.clone(), None))
        }
        "reaction" => {
            let r = m.reaction.as_ref().ok_or_else(|| missing(path, "reaction", kind))?;
            json::check_id(FIELD, || path(".reaction.message_id"), &r.message_id)?;
            thread.in_reply_to = Some(r.message_id.clone());
            one(match nonempty(&r.emoji) {
                Some(emoji) => Content::System { event: "reaction".into(), detail: Some(emoji.to_owned()) },
                None => Content::System { event: "reaction_removed".into(), detail: None },
            })
        }
        "order" => {
            let o = m.order.as_ref().ok_or_else(|| missing(path, "order", kind))?;
            one(Content::System { event: "order".into(), detail: Some(order_summary(o)) })
        }
        "system" => {
            let s = m.system.as_ref().ok_or_else(|| missing(path, "system", kind))?;
            let event = nonempty(&s.kind).unwrap_or("system").to_owned();
            one(Content::System { event, detail: s.body.clone().filter(|b| !b.is_empty()) })
        }
        "unsupported" | "unknown" => {
            let detail = match m.errors.first() {
                Some(e) => e.describe(),
                None => "the customer sent a message type WhatsApp does not deliver to the API".to_owned(),
            };
            one(unsupported(detail))
        }
        other => one(unsupported(format!("message type `{other}` is not understood by this kit"))),
    }
}

fn unsupported(detail: String) -> Content {
    Content::System { event: "unsupported".into(), detail: Some(detail) }
}

fn picked(id: String, title: String, description: Option<String>) -> Content {
    Content::Choices {
        body: title.clone(),
        options: vec![ChoiceOption { id: id.clone(), title, description: description.filter(|d| !d.is_empty()) }],
        selected: Some(id),
    }
}

fn contact_card(c: &SharedContact, path: &dyn Fn() -> String) -> Result<Content> {
    let phones: Vec<String> =
        c.phones.iter().filter_map(|p| nonempty(&p.phone).or(nonempty(&p.wa_id)).map(str::to_owned)).collect();
    let emails: Vec<String> = c.emails.iter().filter_map(|e| nonempty(&e.email).map(str::to_owned)).collect();
    let name = c.name.as_ref();
    let joined = name.map(|n| {
        [&n.first_name, &n.middle_name, &n.last_name].iter().filter_map(|p| nonempty(p)).collect::<Vec<_>>().join(" ")
    });
    let name = name
        .and_then(|n| nonempty(&n.formatted_name).map(str::to_owned))
        .or(joined.filter(|j| !j.is_empty()))
        .or_else(|| phones.first().cloned())
        .or_else(|| emails.first().cloned())
        .ok_or_else(|| json::at(FIELD, &format!("{}.name", path()), "a shared contact without name, phone or email"))?;
    let organization = c.org.as_ref().and_then(|o| nonempty(&o.company)).map(str::to_owned);
    Ok(Content::Contact(ContactCard { name, phones, emails, organization }))
}

fn order_summary(o: &Order) -> String {
    let items: Vec<String> = o
        .product_items
        .iter()
        .map(|i| {
            let mut s = format!("{} × {}", number(&i.quantity), i.product_retailer_id.as_deref().unwrap_or("?"));
            if let (Some(price), Some(currency)) = (&i.item_price, &i.currency) {
                s.push_str(&format!(" at {} {currency}", number(&Some(price.clone()))));
            }
            s
        })
        .collect();
    let mut summary = match &o.catalog_id {
        Some(c) => format!("catalog {c}: {}", items.join("; ")),
        None => items.join("; "),
    };
    if let Some(text) = nonempty(&o.text) {
        summary.push_str(&format!(" — {text}"));
    }
    summary
}

fn number(n: &Option<Value>) -> String {
    match n {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => "?".to_owned(),
    }
}

fn receipt(s: WaStatus<'_>, scope: Option<&str>, path: &dyn Fn(&str) -> String) -> Result<Option<KitEvent>> {
    json::check_id(FIELD, || path(".id"), &s.id)?;
    let state = match s.status.as_ref() {
        "sent" => DeliveryState::Sent,
        "delivered" => DeliveryState::Delivered,
        "read" | "played" => DeliveryState::Read,
        "failed" => {
            let mut errors = s.errors.iter();
            let first = errors.next();
            let mut reason =
                first.map_or_else(|| "WhatsApp reported the message as failed".to_owned(), WaError::reason);
            for e in errors {
                reason.push_str("; ");
                reason.push_str(&e.describe());
            }
            DeliveryState::Failed { code: first.and_then(WaError::code), reason }
        }
        other => return Ok(Some(KitEvent::Skipped { kind: format!("whatsapp.status.{other}") })),
    };
    let participant_phone = nonempty(&s.recipient_participant_id);
    let participant_user = nonempty(&s.recipient_participant_user_id);
    let participant = participant_phone.is_some() || participant_user.is_some();
    let recipient_type = nonempty(&s.recipient_type).unwrap_or("individual");
    let platform = |id: &str, field: &str| -> Result<Option<Address>> {
        let Some(scope) = scope else { return Ok(None) };
        let address = Address::platform(scope, id);
        json::check_platform(FIELD, || path(field), &address)?;
        Ok(Some(address))
    };
    let recipient = if recipient_type == "group" || participant {
        // A message sent to a group: `recipient_id` is the group, not a person. The group's
        // own statuses (`sent`, `failed`) name nobody; `delivered` and `read` name the
        // participant.
        match (participant_user, participant_phone) {
            (Some(id), _) if let Some(address) = platform(id, ".recipient_participant_user_id")? => Some(address),
            (_, Some(phone)) => Some(Address::phone(digits(|| path(".recipient_participant_id"), phone)?)),
            _ => None,
        }
    } else if recipient_type == "individual" {
        match (nonempty(&s.recipient_user_id), nonempty(&s.recipient_id)) {
            (Some(id), _) if let Some(address) = platform(id, ".recipient_user_id")? => Some(address),
            (_, Some(phone)) => Some(Address::phone(digits(|| path(".recipient_id"), phone).map_err(|_| {
                json::at(
                    FIELD,
                    &path(".recipient_id"),
                    format!(
                        "{phone:?} is not a WhatsApp phone number (digits only); a status for a group says \
                         `recipient_type: \"group\"`"
                    ),
                )
            })?)),
            _ => None,
        }
    } else {
        // A recipient type this kit does not know: the receipt is still about our message.
        None
    };
    // One participant's failure is not the message's: it may have reached everyone else, and a
    // failure would override their `delivered`.
    if participant && matches!(state, DeliveryState::Failed { .. }) {
        return Ok(Some(KitEvent::Skipped { kind: "whatsapp.status.failed.group_participant".into() }));
    }
    Ok(Some(KitEvent::Receipt(DeliveryReceipt {
        channel: ChannelKind::WhatsApp,
        external_id: s.id,
        state,
        at: Some(s.timestamp.0),
        recipient,
        watermark: false,
    })))
}

// ----- webhook schema (only what the kit reads; unknown fields are ignored) -----
//
// Two readers fill these structs: `scan_webhook` below (the fast path, for the envelope and the
// common message fields) and serde (the rare message objects, statuses, and every body the
// scanner is unsure of). The scanner follows the serde attributes here: a missing required
// field, a duplicate field, `null` where serde wants an array, a struct written as an array:
// all `Unsure`, so serde reads the body and reports the error as it always has.

/// Records that a field was read, once: a second time is a duplicate field (serde rejects it).
#[derive(Default)]
struct Seen(u32);

impl Seen {
    fn once(&mut self, bit: u32) -> Scanned<()> {
        if self.0 & (1 << bit) != 0 {
            return Err(Unsure);
        }
        self.0 |= 1 << bit;
        Ok(())
    }
}

/// Reads an object, calling `field` with each key (which must read or skip its value).
fn fields<'a>(
    s: &mut Scanner<'a>,
    mut field: impl FnMut(&mut Scanner<'a>, &mut Seen, &[u8]) -> Scanned<()>,
) -> Scanned<()> {
    s.object()?;
    let mut seen = Seen::default();
    let mut first = true;
    while let Some(key) = s.key(&mut first)? {
        field(s, &mut seen, &key)?;
    }
    Ok(())
}

/// Reads an array (not `null`: serde wants a sequence) into a [`Seq`].
fn seq<'a, T>(s: &mut Scanner<'a>, mut item: impl FnMut(&mut Scanner<'a>) -> Scanned<T>) -> Scanned<Seq<T>> {
    s.array()?;
    let mut first = true;
    if !s.element(&mut first)? {
        return Ok(Seq::Empty);
    }
    let one = item(s)?;
    if !s.element(&mut first)? {
        return Ok(Seq::One(one));
    }
    let mut many = vec![one, item(s)?];
    while s.element(&mut first)? {
        many.push(item(s)?);
    }
    Ok(Seq::Many(many))
}

/// `null` or what `read` reads.
fn opt<'a, T>(s: &mut Scanner<'a>, read: impl FnOnce(&mut Scanner<'a>) -> Scanned<T>) -> Scanned<Option<T>> {
    if s.null()? { Ok(None) } else { read(s).map(Some) }
}

/// A value serde reads from its text (the rare message objects).
fn serde_value<'a, T: Deserialize<'a>>(s: &mut Scanner<'a>) -> Scanned<T> {
    serde_json::from_str(s.raw()?).map_err(|_| Unsure)
}

/// A rare message object (`image`, `location`, `interactive`, …), read once by serde.
fn rare<'a, T: Deserialize<'a>>(s: &mut Scanner<'a>, seen: &mut Seen, bit: u32, slot: &mut T) -> Scanned<()> {
    seen.once(bit)?;
    *slot = serde_value(s)?;
    Ok(())
}

fn scan_webhook(text: &str) -> Scanned<Webhook<'_>> {
    let mut s = Scanner::new(text);
    let (mut object, mut entry) = (None, Seq::Empty);
    fields(&mut s, |s, seen, key| match key {
        b"object" => {
            seen.once(0)?;
            object = Some(s.string()?);
            Ok(())
        }
        b"entry" => {
            seen.once(1)?;
            entry = seq(s, scan_entry)?;
            Ok(())
        }
        _ => s.skip(),
    })?;
    s.end()?;
    Ok(Webhook { object: object.ok_or(Unsure)?, entry })
}

fn scan_entry<'a>(s: &mut Scanner<'a>) -> Scanned<Entry<'a>> {
    let mut entry = Entry { id: None, changes: Seq::Empty };
    fields(s, |s, seen, key| match key {
        b"id" => {
            seen.once(0)?;
            entry.id = s.opt_string()?;
            Ok(())
        }
        b"changes" => {
            seen.once(1)?;
            entry.changes = seq(s, scan_change)?;
            Ok(())
        }
        _ => s.skip(),
    })?;
    Ok(entry)
}

fn scan_change<'a>(s: &mut Scanner<'a>) -> Scanned<Change<'a>> {
    let (mut field, mut value) = (None, None);
    fields(s, |s, seen, key| match key {
        b"field" => {
            seen.once(0)?;
            field = Some(s.string()?);
            Ok(())
        }
        b"value" => {
            seen.once(1)?;
            value = opt(s, |s| scan_value(s).map(Box::new))?;
            Ok(())
        }
        _ => s.skip(),
    })?;
    Ok(Change { field: field.ok_or(Unsure)?, value })
}

fn scan_value<'a>(s: &mut Scanner<'a>) -> Scanned<ChangeValue<'a>> {
    let mut value = ChangeValue {
        metadata: None,
        contacts: Seq::Empty,
        messages: Seq::Empty,
        statuses: Vec::new(),
        errors: Vec::new(),
    };
    fields(s, |s, seen, key| match key {
        b"metadata" => {
            seen.once(0)?;
            value.metadata = opt(s, scan_metadata)?;
            Ok(())
        }
        b"contacts" => {
            seen.once(1)?;
            value.contacts = seq(s, scan_contact)?;
            Ok(())
        }
        b"messages" => {
            seen.once(2)?;
            value.messages = seq(s, scan_message)?;
            Ok(())
        }
        b"statuses" => {
            seen.once(3)?;
            value.statuses = serde_value(s)?;
            Ok(())
        }
        b"errors" => {
            seen.once(4)?;
            value.errors = serde_value(s)?;
            Ok(())
        }
        _ => s.skip(),
    })?;
    Ok(value)
}

fn scan_metadata<'a>(s: &mut Scanner<'a>) -> Scanned<Metadata<'a>> {
    let mut id = None;
    fields(s, |s, seen, key| match key {
        b"phone_number_id" => {
            seen.once(0)?;
            id = Some(s.string()?);
            Ok(())
        }
        _ => s.skip(),
    })?;
    Ok(Metadata { phone_number_id: id.ok_or(Unsure)? })
}

fn scan_contact<'a>(s: &mut Scanner<'a>) -> Scanned<WaContact<'a>> {
    let mut contact = WaContact { profile: None, wa_id: None, user_id: None };
    fields(s, |s, seen, key| match key {
        b"profile" => {
            seen.once(0)?;
            contact.profile = opt(s, |s| {
                let mut profile = Profile { name: None };
                fields(s, |s, seen, key| match key {
                    b"name" => {
                        seen.once(0)?;
                        profile.name = s.opt_string()?;
                        Ok(())
                    }
                    _ => s.skip(),
                })?;
                Ok(profile)
            })?;
            Ok(())
        }
        b"wa_id" => {
            seen.once(1)?;
            contact.wa_id = s.opt_string()?;
            Ok(())
        }
        b"user_id" => {
            seen.once(2)?;
            contact.user_id = s.opt_string()?;
            Ok(())
        }
        _ => s.skip(),
    })?;
    Ok(contact)
}

/// A unix time in seconds as serde reads [`UnixSeconds`]: an integer, or a string of digits.
fn scan_unix_seconds(s: &mut Scanner<'_>) -> Scanned<UnixSeconds> {
    let n = if s.at_string() { json::timestamp_digits(&s.string()?).ok_or(Unsure)? } else { s.integer()? };
    UnixSeconds::at(n).ok_or(Unsure)
}

fn scan_message<'a>(s: &mut Scanner<'a>) -> Scanned<Box<WaMessage<'a>>> {
    let (mut id, mut timestamp, mut kind) = (None, None, None);
    let mut m = Box::new(WaMessage {
        from: None,
        from_user_id: None,
        group_id: None,
        id: String::new(),
        timestamp: UnixSeconds(chrono::DateTime::UNIX_EPOCH),
        kind: Cow::Borrowed(""),
        context: None,
        text: None,
        image: None,
        video: None,
        audio: None,
        voice: None,
        document: None,
        sticker: None,
        location: None,
        contacts: None,
        interactive: None,
        button: None,
        reaction: None,
        order: None,
        system: None,
        errors: Vec::new(),
    });
    fields(s, |s, seen, key| {
        match key {
            b"from" => {
                seen.once(0)?;
                m.from = s.opt_string()?;
            }
            b"from_user_id" => {
                seen.once(1)?;
                m.from_user_id = s.opt_string()?;
            }
            b"id" => {
                seen.once(2)?;
                id = Some(s.string()?.into_owned());
            }
            b"timestamp" => {
                seen.once(3)?;
                timestamp = Some(scan_unix_seconds(s)?);
            }
            b"type" => {
                seen.once(4)?;
                kind = Some(s.string()?);
            }
            b"context" => {
                seen.once(5)?;
                m.context = opt(s, |s| {
                    let mut context = Context { id: None };
                    fields(s, |s, seen, key| match key {
                        b"id" => {
                            seen.once(0)?;
                            context.id = s.opt_string()?.map(Cow::into_owned);
                            Ok(())
                        }
                        _ => s.skip(),
                    })?;
                    Ok(context)
                })?;
            }
            b"text" => {
                seen.once(6)?;
                m.text = opt(s, |s| {
                    let mut body = None;
                    fields(s, |s, seen, key| match key {
                        b"body" => {
                            seen.once(0)?;
                            body = Some(s.string()?.into_owned());
                            Ok(())
                        }
                        _ => s.skip(),
                    })?;
                    Ok(Text { body: body.ok_or(Unsure)? })
                })?;
            }
            b"image" => rare(s, seen, 7, &mut m.image)?,
            b"video" => rare(s, seen, 8, &mut m.video)?,
            b"audio" => rare(s, seen, 9, &mut m.audio)?,
            b"voice" => rare(s, seen, 10, &mut m.voice)?,
            b"document" => rare(s, seen, 11, &mut m.document)?,
            b"sticker" => rare(s, seen, 12, &mut m.sticker)?,
            b"location" => rare(s, seen, 13, &mut m.location)?,
            b"contacts" => rare(s, seen, 14, &mut m.contacts)?,
            b"interactive" => rare(s, seen, 15, &mut m.interactive)?,
            b"button" => rare(s, seen, 16, &mut m.button)?,
            b"reaction" => rare(s, seen, 17, &mut m.reaction)?,
            b"order" => rare(s, seen, 18, &mut m.order)?,
            b"system" => rare(s, seen, 19, &mut m.system)?,
            b"errors" => rare(s, seen, 20, &mut m.errors)?,
            b"group_id" => {
                seen.once(21)?;
                m.group_id = s.opt_string()?;
            }
            _ => s.skip()?,
        }
        Ok(())
    })?;
    m.id = id.ok_or(Unsure)?;
    m.timestamp = timestamp.ok_or(Unsure)?;
    m.kind = kind.ok_or(Unsure)?;
    Ok(m)
}

#[derive(Deserialize)]
struct Webhook<'a> {
    #[serde(borrow)]
    object: Cow<'a, str>,
    #[serde(default, borrow)]
    entry: Seq<Entry<'a>>,
}

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    changes: Seq<Change<'a>>,
}

#[derive(Deserialize)]
struct Change<'a> {
    #[serde(borrow)]
    field: Cow<'a, str>,
    #[serde(default, borrow)]
    value: Option<Box<ChangeValue<'a>>>,
}

#[derive(Deserialize)]
struct ChangeValue<'a> {
    #[serde(default, borrow)]
    metadata: Option<Metadata<'a>>,
    #[serde(default, borrow)]
    contacts: Seq<WaContact<'a>>,
    #[serde(default, borrow)]
    messages: Seq<Box<WaMessage<'a>>>,
    #[serde(default, borrow)]
    statuses: Vec<WaStatus<'a>>,
    /// Webhook-level errors (about no single message).
    #[serde(default)]
    errors: Vec<WaError>,
}

#[derive(Deserialize)]
struct Metadata<'a> {
    #[serde(borrow)]
    phone_number_id: Cow<'a, str>,
}

#[derive(Deserialize)]
struct WaContact<'a> {
    #[serde(default, borrow)]
    profile: Option<Profile<'a>>,
    #[serde(default, borrow)]
    wa_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    user_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Profile<'a> {
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct WaMessage<'a> {
    #[serde(default, borrow)]
    from: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    from_user_id: Option<Cow<'a, str>>,
    /// The group a message was received in (WhatsApp groups).
    #[serde(default, borrow)]
    group_id: Option<Cow<'a, str>>,
    id: String,
    timestamp: UnixSeconds,
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    context: Option<Context>,
    #[serde(default)]
    text: Option<Text>,
    #[serde(default)]
    image: Option<Box<WaMedia>>,
    #[serde(default)]
    video: Option<Box<WaMedia>>,
    #[serde(default)]
    audio: Option<Box<WaMedia>>,
    #[serde(default)]
    voice: Option<Box<WaMedia>>,
    #[serde(default)]
    document: Option<Box<WaMedia>>,
    #[serde(default)]
    sticker: Option<Box<WaMedia>>,
    #[serde(default)]
    location: Option<Box<Location>>,
    #[serde(default)]
    contacts: Option<Vec<SharedContact>>,
    #[serde(default, borrow)]
    interactive: Option<Box<Interactive<'a>>>,
    #[serde(default)]
    button: Option<Box<Button>>,
    #[serde(default)]
    reaction: Option<Box<Reaction>>,
    #[serde(default)]
    order: Option<Box<Order>>,
    #[serde(default)]
    system: Option<Box<System>>,
    #[serde(default)]
    errors: Vec<WaError>,
}

#[derive(Deserialize)]
struct Context {
    #[serde(default)]
    id: Option<String>,
}

#[derive(Deserialize)]
struct Text {
    body: String,
}

#[derive(Deserialize)]
struct WaMedia {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    link: Option<String>,
    #[serde(default)]
    mime_type: Option<String>,
    #[serde(default)]
    caption: Option<String>,
    #[serde(default)]
    filename: Option<String>,
}

#[derive(Deserialize)]
struct Location {
    latitude: f64,
    longitude: f64,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    address: Option<String>,
}

#[derive(Deserialize)]
struct SharedContact {
    #[serde(default)]
    name: Option<ContactName>,
    #[serde(default)]
    phones: Vec<ContactPhone>,
    #[serde(default)]
    emails: Vec<ContactEmail>,
    #[serde(default)]
    org: Option<ContactOrg>,
}

#[derive(Deserialize)]
struct ContactName {
    #[serde(default)]
    formatted_name: Option<String>,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    middle_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
}

#[derive(Deserialize)]
struct ContactPhone {
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    wa_id: Option<String>,
}

#[derive(Deserialize)]
struct ContactEmail {
    #[serde(default)]
    email: Option<String>,
}

#[derive(Deserialize)]
struct ContactOrg {
    #[serde(default)]
    company: Option<String>,
}

#[derive(Deserialize)]
struct Interactive<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    button_reply: Option<Reply>,
    #[serde(default)]
    list_reply: Option<Reply>,
    #[serde(default)]
    nfm_reply: Option<FlowReply>,
}

#[derive(Deserialize)]
struct Reply {
    id: String,
    title: String,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
struct FlowReply {
    #[serde(default)]
    response_json: Option<String>,
    #[serde(default)]
    body: Option<String>,
}

#[derive(Deserialize)]
struct Button {
    #[serde(default)]
    payload: Option<String>,
    text: String,
}

#[derive(Deserialize)]
struct Reaction {
    message_id: String,
    #[serde(default)]
    emoji: Option<String>,
}

#[derive(Deserialize)]
struct Order {
    #[serde(default)]
    catalog_id: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    product_items: Vec<OrderItem>,
}

#[derive(Deserialize)]
struct OrderItem {
    #[serde(default)]
    product_retailer_id: Option<String>,
    #[serde(default)]
    quantity: Option<Value>,
    #[serde(default)]
    item_price: Option<Value>,
    #[serde(default)]
    currency: Option<String>,
}

#[derive(Deserialize)]
struct System {
    #[serde(default)]
    body: Option<String>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    /// The new number of a number change (webhooks v12 and later).
    #[serde(default)]
    wa_id: Option<Value>,
    /// The new number of a number change (webhooks v11 and earlier, On-Premises API).
    #[serde(default)]
    new_wa_id: Option<Value>,
    /// Older payloads: the user's number before the change.
    #[serde(default)]
    customer: Option<Value>,
    /// The user's new business-scoped user id.
    #[serde(default)]
    user_id: Option<String>,
}

#[derive(Deserialize)]
struct WaStatus<'a> {
    id: String,
    #[serde(borrow)]
    status: Cow<'a, str>,
    timestamp: UnixSeconds,
    #[serde(default)]
    recipient_id: Option<String>,
    #[serde(default)]
    recipient_user_id: Option<String>,
    /// `individual` (the default) or `group`.
    #[serde(default)]
    recipient_type: Option<String>,
    /// For a message sent to a group: the participant's phone number.
    #[serde(default)]
    recipient_participant_id: Option<String>,
    /// For a message sent to a group: the participant's business-scoped user id.
    #[serde(default)]
    recipient_participant_user_id: Option<String>,
    #[serde(default)]
    errors: Vec<WaError>,
}

#[derive(Deserialize)]
struct WaError {
    #[serde(default)]
    code: Option<Value>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    error_data: Option<ErrorData>,
    /// Older payloads put the details beside the code instead of in `error_data`.
    #[serde(default)]
    details: Option<String>,
}

#[derive(Deserialize)]
struct ErrorData {
    #[serde(default)]
    details: Option<String>,
}

impl WaError {
    /// The error code as text.
    fn code(&self) -> Option<String> {
        self.code.as_ref().map(|c| match c {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    fn reason(&self) -> String {
        let details = self.error_data.as_ref().and_then(|d| d.details.clone()).or_else(|| self.details.clone());
        let parts: Vec<&str> = [&self.title, &self.message, &details].into_iter().filter_map(nonempty).collect();
        let mut unique: Vec<&str> = Vec::new();
        for p in parts {
            if !unique.contains(&p) {
                unique.push(p);
            }
        }
        if unique.is_empty() { "WhatsApp reported an error without a title".to_owned() } else { unique.join(": ") }
    }

    fn describe(&self) -> String {
        match self.code() {
            Some(code) => format!("error {code}: {}", self.reason()),
            None => self.reason(),
        }
    }
}

// ----- outbound -----

/// Options for [`send_message`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendOptions {
    /// The `wamid` of the customer's message this one replies to (shown quoted).
    pub reply_to: Option<String>,
    /// Label of the button that opens a list message (1–20 characters; lists are used for
    /// choices with more than 3 options or with descriptions).
    pub list_button: String,
    /// Whether WhatsApp renders a preview of the first URL in a text message.
    pub preview_url: bool,
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions { reply_to: None, list_button: "Options".to_owned(), preview_url: false }
    }
}

fn too_long(field: &'static str, value: &str, max: usize) -> Result<()> {
    let n = value.chars().count();
    if n > max {
        return Err(Error::invalid(field, format!("is {n} characters long; WhatsApp allows {max}")));
    }
    Ok(())
}

/// `value` must hold something besides spaces, and at most `max` characters.
fn required(field: &'static str, value: &str, max: usize) -> Result<()> {
    if value.trim().is_empty() {
        return Err(Error::invalid(field, "must not be empty; WhatsApp refuses it"));
    }
    too_long(field, value, max)
}

/// The JSON body of `POST /{phone_number_id}/messages` that sends `content` to `to`.
///
/// `to` is the customer's phone number ([`Address::Phone`], any spelling with the country
/// code) or business-scoped user id ([`Address::Platform`], sent as `recipient`). Content
/// maps to `text`; `image`/`video`/`audio`/`document`/`sticker` by `link` (or by `id` for a
/// `whatsapp-media:` URL) with caption and filename where WhatsApp shows them; `location`;
/// interactive reply `button`s (up to 3 options of at most 20 characters, without
/// descriptions) or a `list` (up to 10 rows); `template` with body parameters; `contacts`.
/// Content WhatsApp cannot carry (a system notice, an 11th option, a caption on audio) fails
/// with [`Error::InvalidInput`] rather than being cut silently.
///
/// ```
/// use touchpoint::channels::whatsapp::{send_message, SendOptions};
/// use touchpoint::model::{Address, ChoiceOption, Content};
/// let content = Content::Choices {
///     body: "How can we help?".into(),
///     options: vec![
///         ChoiceOption { id: "track".into(), title: "Track order".into(), description: None },
///         ChoiceOption { id: "refund".into(), title: "Refund".into(), description: None },
///     ],
///     selected: None,
/// };
/// let json = send_message(&Address::phone("+44 7700 900123"), &content, &SendOptions::default()).unwrap();
/// assert_eq!(json["to"], "447700900123");
/// assert_eq!(json["interactive"]["type"], "button");
/// assert_eq!(json["interactive"]["action"]["buttons"][1]["reply"]["id"], "refund");
/// ```
pub fn send_message(to: &Address, content: &Content, options: &SendOptions) -> Result<Value> {
    let mut body = serde_json::Map::new();
    body.insert("messaging_product".into(), json!("whatsapp"));
    body.insert("recipient_type".into(), json!("individual"));
    match to {
        Address::Phone { number } => {
            // Any spelling the crate reads with its country code (`+44 7700…`, `0044…`), sent
            // as the digits of its international form.
            let e164 =
                crate::identity::normalize::normalize_phone(number, None).map_err(|_| Error::InvalidAddress {
                    kind: "phone",
                    raw: number.chars().take(64).collect(),
                    reason: "WhatsApp needs an international number with its country code".into(),
                })?;
            body.insert("to".into(), json!(e164.trim_start_matches('+')));
        }
        Address::Platform { id, .. } if !id.is_empty() => {
            body.insert("recipient".into(), json!(id));
        }
        other => return Err(Error::invalid("to", format!("WhatsApp cannot send to a {:?} address", other.kind()))),
    }
    if let Some(id) = &options.reply_to {
        body.insert("context".into(), json!({ "message_id": wamid(id) }));
    }
    let (kind, object) = match content {
        Content::Text { body: text } => {
            required("content.body", text, 4096)?;
            ("text", json!({ "preview_url": options.preview_url, "body": text }))
        }
        Content::Media { media, url, caption, filename, .. } => {
            let kind = match media {
                MediaKind::Image => "image",
                MediaKind::Video => "video",
                MediaKind::Audio => "audio",
                MediaKind::Document => "document",
                MediaKind::Sticker => "sticker",
            };
            required("content.url", url, 2048)?;
            let mut object = serde_json::Map::new();
            match media_id(url) {
                Some(id) => object.insert("id".into(), json!(id)),
                // WhatsApp fetches http(s) links only (not another kit's file ids, `cid:`
                // references or local paths).
                None if super::http_link(url) => object.insert("link".into(), json!(url)),
                None => {
                    return Err(Error::invalid(
                        "content.url",
                        "WhatsApp sends media by an http(s) link or an uploaded media id (whatsapp-media:<id>)",
                    ));
                }
            };
            if let Some(caption) = caption.as_deref().filter(|c| !c.is_empty()) {
                if matches!(media, MediaKind::Audio | MediaKind::Sticker) {
                    return Err(Error::invalid("content.caption", format!("WhatsApp shows no caption on {kind}")));
                }
                too_long("content.caption", caption, 1024)?;
                object.insert("caption".into(), json!(caption));
            }
            if let (MediaKind::Document, Some(name)) = (media, filename.as_deref().filter(|f| !f.is_empty())) {
                object.insert("filename".into(), json!(name));
            }
            (kind, Value::Object(object))
        }
        Content::Location { latitude, longitude, name, address } => {
            super::check_coordinates(*latitude, *longitude)?;
            let mut object = json!({ "latitude": latitude, "longitude": longitude });
            if let Some(n) = name {
                object["name"] = json!(n);
            }
            if let Some(a) = address {
                object["address"] = json!(a);
            }
            ("location", object)
        }
        Content::Choices { body: text, options: choices, .. } => ("interactive", interactive(text, choices, options)?),
        Content::Template { name, language, parameters } => {
            required("content.name", name, 512)?;
            required("content.language", language, 16)?;
            // WhatsApp refuses empty parameters and ones with new lines, tabs or more than four
            // spaces in a row.
            for p in parameters {
                if p.trim().is_empty() || p.contains(['\n', '\r', '\t']) || p.contains("     ") {
                    return Err(Error::invalid(
                        "content.parameters",
                        "a template parameter must not be empty nor hold new lines, tabs or more than four spaces in a row",
                    ));
                }
            }
            let mut template = json!({ "name": name, "language": { "code": language } });
            if !parameters.is_empty() {
                let params: Vec<Value> = parameters.iter().map(|p| json!({ "type": "text", "text": p })).collect();
                template["components"] = json!([{ "type": "body", "parameters": params }]);
            }
            ("template", template)
        }
        Content::Contact(card) => {
            required("content.name", &card.name, 512)?;
            let mut contact = json!({ "name": { "formatted_name": card.name, "first_name": card.name } });
            if !card.phones.is_empty() {
                contact["phones"] = card.phones.iter().map(|p| json!({ "phone": p })).collect();
            }
            if !card.emails.is_empty() {
                contact["emails"] = card.emails.iter().map(|e| json!({ "email": e })).collect();
            }
            if let Some(org) = &card.organization {
                contact["org"] = json!({ "company": org });
            }
            ("contacts", json!([contact]))
        }
        Content::System { .. } => {
            return Err(Error::invalid("content", "a system notice is not sent to the customer; render it as text"));
        }
    };
    body.insert("type".into(), json!(kind));
    body.insert(kind.into(), object);
    Ok(Value::Object(body))
}

/// The WhatsApp message id of one of our external ids: the kit names the 2nd, 3rd … contact
/// card of one message `<wamid>#2`, `#3`, which WhatsApp does not know.
fn wamid(external_id: &str) -> &str {
    match external_id.rsplit_once('#') {
        Some((wamid, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => wamid,
        _ => external_id,
    }
}

fn interactive(text: &str, choices: &[ChoiceOption], options: &SendOptions) -> Result<Value> {
    if choices.is_empty() {
        return Err(Error::invalid("content.options", "a choice needs at least one option"));
    }
    required("content.body", text, 1024)?;
    for (i, c) in choices.iter().enumerate() {
        required("content.options.id", &c.id, 256)?;
        required("content.options.title", &c.title, 24)?;
        // The customer's pick comes back as its id: two options with one id are ambiguous.
        if choices[..i].iter().any(|o| o.id == c.id) {
            return Err(Error::invalid("content.options.id", format!("option {i} repeats the id {:?}", c.id)));
        }
    }
    // A blank description is none (as a blank caption is).
    fn description(c: &ChoiceOption) -> Option<&str> {
        c.description.as_deref().filter(|d| !d.trim().is_empty())
    }
    let as_buttons =
        choices.len() <= 3 && choices.iter().all(|c| description(c).is_none() && c.title.chars().count() <= 20);
    if as_buttons {
        // WhatsApp tells reply buttons apart by their titles.
        if let Some((i, c)) = choices.iter().enumerate().find(|(i, c)| choices[..*i].iter().any(|o| o.title == c.title))
        {
            return Err(Error::invalid(
                "content.options.title",
                format!("option {i} repeats the title {:?}; WhatsApp reply buttons need different titles", c.title),
            ));
        }
        let buttons: Vec<Value> =
            choices.iter().map(|c| json!({ "type": "reply", "reply": { "id": c.id, "title": c.title } })).collect();
        return Ok(json!({ "type": "button", "body": { "text": text }, "action": { "buttons": buttons } }));
    }
    if choices.len() > 10 {
        return Err(Error::invalid(
            "content.options",
            format!("{} options; a WhatsApp list holds at most 10 rows", choices.len()),
        ));
    }
    if options.list_button.trim().is_empty() {
        return Err(Error::invalid("list_button", "must not be empty"));
    }
    too_long("list_button", &options.list_button, 20)?;
    let rows: Vec<Value> = choices
        .iter()
        .map(|c| {
            too_long("content.options.id", &c.id, 200)?;
            let mut row = json!({ "id": c.id, "title": c.title });
            if let Some(d) = description(c) {
                too_long("content.options.description", d, 72)?;
                row["description"] = json!(d);
            }
            Ok(row)
        })
        .collect::<Result<_>>()?;
    Ok(json!({
        "type": "list",
        "body": { "text": text },
        "action": { "button": options.list_button, "sections": [{ "rows": rows }] },
    }))
}

/// The JSON body that marks the customer's message `message_id` as read (blue ticks), and with
/// `typing` also shows a typing indicator (dismissed by your reply or after 25 s: only send it
/// when a reply is coming).
///
/// ```
/// use touchpoint::channels::whatsapp::mark_read;
/// let json = mark_read("wamid.TEST0001", true);
/// assert_eq!(json["status"], "read");
/// assert_eq!(json["typing_indicator"]["type"], "text");
/// ```
pub fn mark_read(message_id: &str, typing: bool) -> Value {
    let mut body = json!({ "messaging_product": "whatsapp", "status": "read", "message_id": wamid(message_id) });
    if typing {
        body["typing_indicator"] = json!({ "type": "text" });
    }
    body
}
