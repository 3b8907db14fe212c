//! Email kit: raw RFC 5322 messages in, MIME messages out. No SMTP: the host's MTA or inbound
//! provider hands over the raw bytes and sends what [`EmailBuilder`] builds.
//!
//! Inbound, [`parse`] (through [`mail-parser`](mail_parser)) gives either
//!
//! * an [`EmailMessage`]: an [`InboundMessage`] for [`Engine::ingest`](crate::Engine::ingest)
//!   with the `From` address as sender (verified only when the host says DKIM/DMARC passed:
//!   [`SenderAuth`]), the Message-ID as external id, threading hints from `In-Reply-To` and
//!   `References`, our reply token from the recipient address (`reply+<token>@…`) or a subject
//!   tag, the text with quoted replies and signatures stripped ([`visible_text`]; text preferred
//!   over HTML), plus the signals that the message was sent automatically
//!   ([`AutoReplySignal`]) so the host can keep it quiet or drop it; or
//! * a [`Bounce`]: a delivery status notification (RFC 3464 `multipart/report`, or a
//!   `MAILER-DAEMON` message) with a [`DeliveryReceipt`] for the Message-ID of ours that bounced.
//!
//! Outbound, [`EmailBuilder`] writes a MIME message (text, optional HTML alternative) with our
//! Message-ID, the thread's `In-Reply-To`/`References`, the reply token in `Reply-To`, an
//! RFC 2047 encoded subject and CRLF line endings. Record it with
//! [`OutboundMessage::with_external_id`](crate::OutboundMessage::with_external_id)`(email.message_id)`
//! so the customer's reply threads back and bounces find it.
//!
//! Message-IDs are used without angle brackets everywhere in this kit (`abc@example.com`).
//!
//! ```
//! use touchpoint::channels::email::{parse, EmailInbox, InboundEmail, SenderAuth};
//! use touchpoint::model::{Content, EndpointId};
//! let inbox = EmailInbox::new(EndpointId::new("support").unwrap(), "reply@support.example.com").unwrap();
//! let raw = b"From: Ada <ada@example.net>\r\n\
//!             To: reply+6f1c2e4a@support.example.com\r\n\
//!             Subject: Re: Parcel\r\n\
//!             Message-ID: <m2@example.net>\r\n\
//!             In-Reply-To: <m1@support.example.com>\r\n\
//!             \r\n\
//!             Still nothing.\r\n\
//!             \r\n\
//!             On Tue, 31 Dec 2024 at 17:02, Acme <support@example.com> wrote:\r\n\
//!             > We are looking into it.\r\n";
//! let InboundEmail::Message(mail) = parse(raw, &inbox, SenderAuth::NotAuthenticated).unwrap() else { panic!() };
//! assert_eq!(mail.message.content, Content::text("Still nothing."));
//! assert_eq!(mail.message.external_id, "m2@example.net");
//! assert_eq!(mail.message.thread.reply_token.as_deref(), Some("6f1c2e4a"));
//! assert_eq!(mail.message.thread.in_reply_to.as_deref(), Some("m1@support.example.com"));
//! assert!(!mail.is_auto_reply());
//! ```

use super::DeliveryReceipt;
use crate::identity::normalize::normalize_email;
use crate::model::{
    Address, ChannelKind, Content, DeliveryState, EndpointId, InboundMessage, ThreadHints, Verification,
};
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use mail_parser::{HeaderName, HeaderValue, MessageParser, MimeHeaders, PartType};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::sync::OnceLock;

/// Largest raw message [`parse`] accepts.
pub const MAX_EMAIL_BYTES: usize = 64 * 1024 * 1024;
/// Longest reply token accepted from an address or subject.
pub const MAX_TOKEN_LEN: usize = 64;
/// Most references kept from a `References` header (the first and the most recent ones).
pub const MAX_REFERENCES: usize = 50;

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

fn address_error(raw: &str, reason: impl Into<String>) -> Error {
    Error::InvalidAddress { kind: "email", raw: raw.chars().take(254).collect(), reason: reason.into() }
}

/// Splits an address into local part and domain after checking it.
fn split_address(raw: &str) -> Result<(String, String)> {
    normalize_email(raw)?;
    let s = raw.trim();
    if !s.is_ascii() {
        return Err(address_error(raw, "only ASCII addresses are supported"));
    }
    match s.rsplit_once('@') {
        Some((local, domain)) => Ok((local.to_owned(), domain.to_ascii_lowercase())),
        None => Err(address_error(raw, "needs exactly one @")),
    }
}

fn valid_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= MAX_TOKEN_LEN
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// One inbox of ours: the endpoint mail arrives on and the address replies go to.
///
/// Reply tokens ride in the sub-address of the reply address: with `reply@support.example.com`,
/// a reply to conversation token `6f1c` is sent to `reply+6f1c@support.example.com`. A subject
/// tag (`[ref:6f1c]`) can carry it too, for clients that drop the sub-address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailInbox {
    endpoint: EndpointId,
    reply_local: String,
    reply_domain: String,
    subject_tag: Option<String>,
    max_text_bytes: usize,
}

impl EmailInbox {
    /// The inbox on `endpoint` whose replies go to `reply_address`.
    ///
    /// Errors: `reply_address` is not a plain ASCII address or already has a `+` sub-address.
    pub fn new(endpoint: EndpointId, reply_address: &str) -> Result<Self> {
        let (local, domain) = split_address(reply_address)?;
        if local.contains('+') {
            return Err(address_error(reply_address, "the reply address must not have a +sub-address of its own"));
        }
        Ok(EmailInbox {
            endpoint,
            reply_local: local,
            reply_domain: domain,
            subject_tag: None,
            max_text_bytes: 64 * 1024,
        })
    }

    /// Also looks for (and lets [`EmailInbox::tag_subject`] write) a subject tag
    /// `[<prefix><token>]`, e.g. prefix `ref:` → `[ref:6f1c]`.
    ///
    /// Errors: an empty prefix, or one with brackets, spaces or control characters.
    pub fn with_subject_tag(mut self, prefix: &str) -> Result<Self> {
        if prefix.is_empty()
            || prefix.len() > 32
            || prefix.chars().any(|c| c.is_whitespace() || c.is_control() || c == '[' || c == ']')
        {
            return Err(Error::invalid("subject_tag", "must be 1 to 32 characters without spaces or brackets"));
        }
        self.subject_tag = Some(prefix.to_owned());
        Ok(self)
    }

    /// Caps the visible text of parsed messages at `bytes` (default 64 KiB, the engine's default
    /// content limit); longer text is cut at a character boundary and ends with `…`. The full
    /// text stays in [`EmailMessage::full_text`].
    pub fn with_max_text_bytes(mut self, bytes: usize) -> Self {
        self.max_text_bytes = bytes.max(16);
        self
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &EndpointId {
        &self.endpoint
    }

    /// The reply address without a token.
    pub fn reply_address(&self) -> String {
        format!("{}@{}", self.reply_local, self.reply_domain)
    }

    /// The reply address carrying `token`: `reply+<token>@domain`.
    ///
    /// Errors: a token outside `A-Z a-z 0-9 - _` or longer than [`MAX_TOKEN_LEN`].
    pub fn reply_address_for(&self, token: &str) -> Result<String> {
        if !valid_token(token) {
            return Err(Error::invalid("reply_token", format!("must be 1 to {MAX_TOKEN_LEN} of A-Z a-z 0-9 - _")));
        }
        Ok(format!("{}+{token}@{}", self.reply_local, self.reply_domain))
    }

    /// `subject` with the subject tag for `token` appended, if the inbox has a tag prefix and
    /// the subject does not carry the tag yet.
    pub fn tag_subject(&self, subject: &str, token: &str) -> String {
        match &self.subject_tag {
            Some(prefix) if valid_token(token) => {
                let tag = format!("[{prefix}{token}]");
                if subject.contains(&tag) { subject.to_owned() } else { format!("{} {tag}", subject.trim_end()) }
            }
            _ => subject.to_owned(),
        }
    }

    /// The token in `address` if it is our reply address with a sub-address.
    fn token_in_address(&self, address: &str) -> Option<String> {
        let address = address.trim().trim_start_matches('<').trim_end_matches('>');
        let (local, domain) = address.rsplit_once('@')?;
        if !domain.eq_ignore_ascii_case(&self.reply_domain) {
            return None;
        }
        let (base, token) = local.split_once('+')?;
        (base.eq_ignore_ascii_case(&self.reply_local) && valid_token(token)).then(|| token.to_owned())
    }

    fn token_in_subject(&self, subject: &str) -> Option<String> {
        let prefix = self.subject_tag.as_deref()?;
        let mut rest = subject;
        while let Some(start) = rest.find('[') {
            let after = &rest[start + 1..];
            if let Some(candidate) = after.strip_prefix(prefix)
                && let Some(end) = candidate.find(']')
                && valid_token(&candidate[..end])
            {
                return Some(candidate[..end].to_owned());
            }
            rest = after;
        }
        None
    }
}

/// Whether the host's MTA or inbound provider authenticated the sender's domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SenderAuth {
    /// DMARC passed (or DKIM passed aligned with the `From` domain): the `From` address is
    /// [`Verification::Verified`] and may link the message to an existing customer.
    Authenticated,
    /// Not checked, or failed: the `From` address is [`Verification::Unverified`] (anyone can
    /// write any `From`).
    NotAuthenticated,
}

// ---------------------------------------------------------------------------------------------
// Parsed results
// ---------------------------------------------------------------------------------------------

/// A header, or the sender's address, that says a message was sent automatically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "signal", content = "value", rename_all = "snake_case")]
pub enum AutoReplySignal {
    /// `Auto-Submitted` other than `no` (RFC 3834: `auto-replied`, `auto-generated`, …).
    AutoSubmitted(String),
    /// `X-Autoreply` or `X-Autorespond` (vendor headers of autoresponders).
    XAutoreply(String),
    /// `Precedence: bulk`, `junk`, `list` or `auto_reply`.
    Precedence(String),
    /// `X-Auto-Response-Suppress` naming `All`, `OOF` or `AutoReply` (Exchange sets it on its
    /// own automatic replies).
    AutoResponseSuppress(String),
    /// `List-Id` or `List-Unsubscribe`: a mailing-list or newsletter message.
    MailingList,
    /// A read or disposition receipt (RFC 8098, `multipart/report;
    /// report-type=disposition-notification`): the customer's mail program, not the customer.
    ReadReceipt,
    /// `X-Loop` other than `no`/`false` (helpdesks and mail filters mark the mail they send
    /// automatically with it).
    XLoop(String),
    /// A sender address whose local part says nobody reads replies: it begins with `noreply` or
    /// `donotreply` once `-`, `_` and `.` are left out (`no-reply`, `do_not_reply`,
    /// `noreply-billing`), or is `bounce` or `bounces`; a `+tag` after it does not count. A
    /// convention of automatic senders, not a standard. The value is the local part.
    AutomatedSender(String),
}

/// A file attached to an email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAttachment {
    /// File name, if the sender gave one.
    pub filename: Option<String>,
    /// MIME type (`application/pdf`).
    pub content_type: String,
    /// `Content-ID`, for images the HTML refers to.
    pub content_id: Option<String>,
    /// The decoded bytes.
    pub data: Vec<u8>,
}

/// A message from a person (or an autoresponder: see [`EmailMessage::auto_reply`]).
#[derive(Debug, Clone, PartialEq)]
pub struct EmailMessage {
    /// The message for [`Engine::ingest`](crate::Engine::ingest): the visible text as content.
    pub message: InboundMessage,
    /// Signals that the message was sent automatically; empty for a person's message. Keep
    /// such a message without auto-acknowledging it (no loops), or drop it.
    pub auto_reply: Vec<AutoReplySignal>,
    /// The whole text before quote and signature stripping (store it: stripping is a
    /// heuristic).
    pub full_text: String,
    /// Attached files (the host stores them and may record them as media messages).
    pub attachments: Vec<EmailAttachment>,
}

impl EmailMessage {
    /// Whether any header, or the sender's address, says the message was sent automatically.
    pub fn is_auto_reply(&self) -> bool {
        !self.auto_reply.is_empty()
    }
}

/// What a delivery status notification says happened for one recipient (RFC 3464 `Action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DsnAction {
    /// Delivery failed.
    Failed,
    /// Delivery is delayed; the MTA keeps trying.
    Delayed,
    /// Delivered.
    Delivered,
    /// Relayed to a system that does not report delivery.
    Relayed,
    /// Delivered to a list and expanded to its members.
    Expanded,
}

/// One recipient of a delivery status notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DsnRecipient {
    /// `Final-Recipient` (without its `rfc822;` type).
    pub recipient: Option<String>,
    /// `Action`.
    pub action: DsnAction,
    /// `Status` (`5.1.1`: permanent, `4.x.x`: transient).
    pub status: Option<String>,
    /// `Diagnostic-Code` (without its `smtp;` type).
    pub diagnostic: Option<String>,
}

/// A bounce or other delivery status notification about one of our messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bounce {
    /// The Message-ID of ours it reports on (from the returned message or headers, else the
    /// DSN's `Original-Envelope-Id`), if it could be found.
    pub original_message_id: Option<String>,
    /// Whether it is a standard RFC 3464 report (else a message from `MAILER-DAEMON`, one from a
    /// `postmaster` returning a message, or one with `X-Failed-Recipients`).
    pub standard: bool,
    /// Per-recipient results of a standard report.
    pub recipients: Vec<DsnRecipient>,
    /// Receipts to apply with [`Engine::update_delivery`](crate::Engine::update_delivery): one
    /// per recipient that failed, was delivered or relayed (a `delayed` report changes nothing).
    /// Empty when the bounced Message-ID is unknown.
    pub receipts: Vec<DeliveryReceipt>,
}

/// What a raw email turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum InboundEmail {
    /// A message to ingest.
    Message(Box<EmailMessage>),
    /// A delivery report about one of ours.
    Bounce(Bounce),
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// Parses raw RFC 5322 bytes received on `inbox`.
///
/// Errors: input over [`MAX_EMAIL_BYTES`] or without any header; a message (not a bounce)
/// without a valid `From` address ([`Error::InvalidAddress`]); one with no text, subject or
/// attachment at all.
pub fn parse(raw: &[u8], inbox: &EmailInbox, auth: SenderAuth) -> Result<InboundEmail> {
    if raw.len() > MAX_EMAIL_BYTES {
        return Err(Error::invalid("email", format!("{} bytes, the limit is {MAX_EMAIL_BYTES}", raw.len())));
    }
    // mail-parser 0.11 trips a `debug_assert!` of its own on some malformed nestings of
    // multiparts (found by fuzzing; release builds carry on). A build with debug assertions
    // reports such a message as malformed instead of panicking in the host.
    // The part tree comes from the fast pass for the common shapes (the tree mail-parser would
    // build, see `email_mime`), else from mail-parser's full parse.
    let parsed = match super::email_mime::structure(raw, parser()) {
        Some(parsed) => Some(parsed),
        None => std::panic::catch_unwind(|| parser().parse(raw))
            .map_err(|_| Error::invalid("email", "the MIME structure is malformed (nested parts do not close)"))?,
    };
    let parsed = parsed
        .filter(|m| !m.headers().is_empty())
        .ok_or_else(|| Error::invalid("email", "no RFC 5322 headers found"))?;

    let from = parsed.from().and_then(|a| a.first());
    let from_address = from.and_then(|a| a.address()).map(str::trim).unwrap_or("");
    let is_report = parsed.root_part().content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("multipart")
            && ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case("report"))
            && ct.attribute("report-type").is_some_and(|t| t.eq_ignore_ascii_case("delivery-status"))
    });
    // MAILER-DAEMON only sends reports; a postmaster is sometimes a person, so a message from
    // one counts as a bounce only when it returns a message (or its headers).
    let local = from_address.split('@').next().unwrap_or("");
    let daemon = local.eq_ignore_ascii_case("mailer-daemon")
        || local.eq_ignore_ascii_case("postmaster") && returns_a_message(&parsed);
    if is_report || daemon || header_text(&parsed, "X-Failed-Recipients").is_some() {
        return Ok(InboundEmail::Bounce(bounce(&parsed, is_report)));
    }

    if from_address.is_empty() {
        return Err(Error::invalid("email.from", "the message has no From address"));
    }
    normalize_email(from_address)?;

    let mut auto_reply = auto_reply_signals(&parsed);
    if automated_sender(local) {
        auto_reply.push(AutoReplySignal::AutomatedSender(local.to_owned()));
    }
    let read_receipt = parsed.root_part().content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("multipart")
            && ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case("report"))
            && ct.attribute("report-type").is_some_and(|t| t.eq_ignore_ascii_case("disposition-notification"))
    });
    if read_receipt {
        auto_reply.push(AutoReplySignal::ReadReceipt);
    }
    let subject = parsed.subject().map(|s| truncate(clean_line(s).trim(), 998)).filter(|s| !s.is_empty());

    let mut full_text = String::new();
    let add = |full_text: &mut String, text: String| {
        if !full_text.is_empty() && !text.trim().is_empty() {
            full_text.push_str("\n\n");
        }
        full_text.push_str(&text);
    };
    // Text is preferred over HTML, but an alternative whose plain part is empty (or only white
    // space) carries the customer's words in its HTML part.
    let text_parts: Vec<&mail_parser::MessagePart<'_>> = parsed.text_bodies().collect();
    let only_blank = text_parts.iter().all(|p| matches!(&p.body, PartType::Text(t) if t.trim().is_empty()));
    let bodies: Vec<&mail_parser::MessagePart<'_>> =
        if only_blank && !text_parts.is_empty() { parsed.html_bodies().collect() } else { text_parts };
    for part in bodies {
        let text = match &part.body {
            _ if part.is_encoding_problem => match unfinished_text(part) {
                Some(text) => text,
                None => continue,
            },
            PartType::Text(t) => crlf_to_lf(t),
            PartType::Html(h) => html_to_text(h),
            _ => continue,
        };
        add(&mut full_text, text);
    }
    // A multipart cut off before its closing boundary (a relay's size limit, a client that
    // crashed) leaves its last part unfinished, and mail-parser files an unfinished HTML part
    // as an attachment. With no body found, such an unnamed part is the body: the agent reads
    // the customer's words, not "[Attachment] text/html".
    let mut as_body = Vec::new();
    if full_text.trim().is_empty() {
        for (i, part) in parsed.attachments().enumerate() {
            if part.is_encoding_problem
                && part.attachment_name().is_none()
                && !part.content_disposition().is_some_and(|d| d.is_attachment())
                && let Some(text) = unfinished_text(part)
            {
                add(&mut full_text, text);
                as_body.push(i);
            }
        }
    }
    let attachments: Vec<EmailAttachment> = parsed
        .attachments()
        .enumerate()
        .filter(|(i, _)| !as_body.contains(i))
        .map(|(_, part)| EmailAttachment {
            filename: part.attachment_name().map(str::to_owned),
            content_type: part
                .content_type()
                .map(|ct| match ct.subtype() {
                    Some(sub) => format!("{}/{sub}", ct.ctype()),
                    None => ct.ctype().to_owned(),
                })
                .unwrap_or_else(|| "application/octet-stream".to_owned()),
            content_id: part.content_id().map(str::to_owned),
            data: part.contents().to_vec(),
        })
        .collect();

    let mut body = visible_text(&full_text);
    if body.is_empty() {
        body = full_text.trim().to_owned();
    }
    if body.is_empty() && !attachments.is_empty() {
        let names: Vec<&str> =
            attachments.iter().map(|a| a.filename.as_deref().unwrap_or(a.content_type.as_str())).collect();
        body = format!("[Attachment] {}", names.join(", "));
    }
    if body.is_empty()
        && let Some(s) = &subject
    {
        body = s.clone();
    }
    if body.is_empty() {
        return Err(Error::invalid("email.body", "the message has no text, subject or attachment"));
    }
    let body = truncate_with_ellipsis(body, inbox.max_text_bytes);

    let message_id = parsed.message_id().map(str::trim).filter(|id| valid_external_id(id));
    let external_id = match message_id {
        Some(id) => id.to_owned(),
        None => content_hash(raw),
    };

    let mut thread = ThreadHints { subject: subject.clone(), ..ThreadHints::default() };
    let mut in_reply_to = ids_of(parsed.in_reply_to());
    if !in_reply_to.is_empty() {
        thread.in_reply_to = Some(in_reply_to.remove(0));
    }
    let mut references = ids_of(parsed.references());
    // A mail without `References` names its parent's parent in `In-Reply-To` alone: that id
    // starts its chain (RFC 5322 §3.6.4), so a reply built from these references keeps it.
    if references.is_empty() {
        references.extend(thread.in_reply_to.clone());
    }
    // Only the first and the latest ids are kept (below): capping before the merge keeps it
    // linear however many ids the headers list.
    cap_references(&mut references);
    in_reply_to.truncate(MAX_REFERENCES);
    let mut seen: std::collections::HashSet<String> = references.iter().cloned().collect();
    for extra in in_reply_to {
        if seen.insert(extra.clone()) {
            references.push(extra);
        }
    }
    cap_references(&mut references);
    thread.references = references;
    thread.reply_token =
        recipient_token(&parsed, inbox).or_else(|| subject.as_deref().and_then(|s| inbox.token_in_subject(s)));

    let verification = match auth {
        SenderAuth::Authenticated => Verification::Verified,
        SenderAuth::NotAuthenticated => Verification::Unverified,
    };
    let mut message = InboundMessage::new(
        ChannelKind::Email,
        inbox.endpoint.clone(),
        Address::email(from_address),
        external_id,
        Content::Text { body },
    )
    .with_verification(verification)
    .with_thread(thread);
    if let Some(name) =
        from.and_then(|a| a.name()).map(|n| truncate(clean_line(n).trim(), 256)).filter(|n| !n.is_empty())
    {
        message = message.with_sender_name(name);
    }
    if let Some(at) = parsed.date().and_then(|d| DateTime::from_timestamp(d.to_timestamp(), 0)) {
        message = message.with_sent_at(at);
    }
    Ok(InboundEmail::Message(Box::new(EmailMessage { message, auto_reply, full_text, attachments })))
}

/// Headers the kit reads as raw text: auto-reply signals, envelope recipients, failed recipients.
const RAW_HEADERS: [&str; 12] = [
    "Auto-Submitted",
    "X-Loop",
    "X-Autoreply",
    "X-Autorespond",
    "Precedence",
    "X-Auto-Response-Suppress",
    "List-Id",
    "List-Unsubscribe",
    "Delivered-To",
    "X-Original-To",
    "Envelope-To",
    "X-Failed-Recipients",
];

/// The parser, built once: only the headers the kit reads are parsed, into structure or as raw
/// text ([`RAW_HEADERS`]); the rest (`Received`, `DKIM-Signature`, …) are skipped, which saves
/// most of a full parse's header work.
fn parser() -> &'static MessageParser {
    static PARSER: OnceLock<MessageParser> = OnceLock::new();
    PARSER.get_or_init(|| {
        let parser = MessageParser::new()
            .with_mime_headers()
            .with_message_ids()
            .header_date(HeaderName::Date)
            .header_text(HeaderName::Subject)
            .header_address(HeaderName::From)
            .header_address(HeaderName::To)
            .header_address(HeaderName::Cc)
            .header_address(HeaderName::ReplyTo);
        RAW_HEADERS.into_iter().fold(parser, MessageParser::header_raw).default_header_ignore()
    })
}

fn valid_external_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 512 && !id.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// `sha256:<hex>` of the raw bytes: the idempotency key of a message without a usable
/// Message-ID.
fn content_hash(raw: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(raw);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest.iter() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Keeps the first and the most recent `MAX_REFERENCES - 1` ids of a long chain.
fn cap_references(references: &mut Vec<String>) {
    if references.len() > MAX_REFERENCES {
        let tail = references.split_off(references.len() - (MAX_REFERENCES - 1));
        references.truncate(1);
        references.extend(tail);
    }
}

/// The message ids of an id header, without brackets, dropping unusable ones. A value without
/// brackets (`a@x b@y`, which mail-parser hands over as one text) is split at whitespace: a
/// message id holds none.
fn ids_of(value: &HeaderValue<'_>) -> Vec<String> {
    let ids: Vec<&str> = match value {
        HeaderValue::Text(t) => vec![t.as_ref()],
        HeaderValue::TextList(list) => list.iter().map(|t| t.as_ref()).collect(),
        _ => Vec::new(),
    };
    ids.into_iter()
        .flat_map(str::split_whitespace)
        .map(|id| id.trim_start_matches('<').trim_end_matches('>'))
        .filter(|id| !id.is_empty() && id.len() <= 998 && !id.chars().any(char::is_control))
        .map(str::to_owned)
        .collect()
}

/// The first value of a header by name (case-insensitive), as raw text.
fn header_text<'a>(message: &'a mail_parser::Message<'_>, name: &str) -> Option<&'a str> {
    message
        .headers()
        .iter()
        .find(|h| h.name.as_str().eq_ignore_ascii_case(name))
        .and_then(|h| h.value.as_text())
        .map(str::trim)
}

fn recipient_token(message: &mail_parser::Message<'_>, inbox: &EmailInbox) -> Option<String> {
    let listed = message.to().into_iter().chain(message.cc()).flat_map(|a| a.iter()).filter_map(|a| a.address());
    for address in listed {
        if let Some(token) = inbox.token_in_address(address) {
            return Some(token);
        }
    }
    // The envelope recipient, as MTAs record it (covers Bcc).
    for name in ["Delivered-To", "X-Original-To", "Envelope-To"] {
        for h in message.headers().iter().filter(|h| h.name.as_str().eq_ignore_ascii_case(name)) {
            if let Some(token) = h.value.as_text().and_then(|v| inbox.token_in_address(v)) {
                return Some(token);
            }
        }
    }
    None
}

/// Whether a sender's local part is one of the conventional names of automatic senders.
fn automated_sender(local: &str) -> bool {
    let name: String = local
        .split('+')
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | '.'))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    name.starts_with("noreply") || name.starts_with("donotreply") || name == "bounce" || name == "bounces"
}

fn auto_reply_signals(message: &mail_parser::Message<'_>) -> Vec<AutoReplySignal> {
    let mut signals = Vec::new();
    let mut list = false;
    for h in message.headers() {
        let name = h.name.as_str();
        let signal =
            ["Auto-Submitted", "X-Autoreply", "X-Autorespond", "Precedence", "X-Auto-Response-Suppress", "X-Loop"]
                .iter()
                .any(|n| name.eq_ignore_ascii_case(n));
        let listed = name.eq_ignore_ascii_case("List-Id") || name.eq_ignore_ascii_case("List-Unsubscribe");
        if !signal && !listed {
            continue;
        }
        let value = match &h.value {
            HeaderValue::Text(t) => t.trim().to_owned(),
            HeaderValue::Empty => String::new(),
            _ => "(present)".to_owned(),
        };
        // The keyword, without a `(comment)` after it (`no (sent by a person)`).
        let first = value.split(';').next().unwrap_or("");
        let first = first.split('(').next().unwrap_or("").trim().to_ascii_lowercase();
        if name.eq_ignore_ascii_case("Auto-Submitted") {
            if !first.is_empty() && first != "no" {
                signals.push(AutoReplySignal::AutoSubmitted(value));
            }
        } else if name.eq_ignore_ascii_case("X-Autoreply") || name.eq_ignore_ascii_case("X-Autorespond") {
            if first != "no" {
                signals.push(AutoReplySignal::XAutoreply(value));
            }
        } else if name.eq_ignore_ascii_case("X-Loop") {
            if !first.is_empty() && first != "no" && first != "false" {
                signals.push(AutoReplySignal::XLoop(value));
            }
        } else if name.eq_ignore_ascii_case("Precedence") {
            if matches!(first.as_str(), "bulk" | "junk" | "list" | "auto_reply") {
                signals.push(AutoReplySignal::Precedence(value));
            }
        } else if name.eq_ignore_ascii_case("X-Auto-Response-Suppress") {
            let named = value.split(',').map(str::trim).any(|v| {
                v.eq_ignore_ascii_case("All") || v.eq_ignore_ascii_case("OOF") || v.eq_ignore_ascii_case("AutoReply")
            });
            if named {
                signals.push(AutoReplySignal::AutoResponseSuppress(value));
            }
        } else if listed && !list {
            list = true;
            signals.push(AutoReplySignal::MailingList);
        }
    }
    signals
}

/// The text of a part the parser could not finish (cut off before its closing boundary):
/// mail-parser keeps such a part's bytes as they came, still in their transfer encoding. They
/// are decoded here as far as they go (whole base64 groups; quoted-printable escapes, anything
/// else kept as written), then read in the part's charset. Only a `text/plain` or `text/html`
/// part (HTML made text) is the customer's words.
fn unfinished_text(part: &mail_parser::MessagePart<'_>) -> Option<String> {
    let (ctype, sub) =
        part.content_type().map_or(("text", "plain"), |ct| (ct.ctype(), ct.subtype().unwrap_or("plain")));
    let html = sub.eq_ignore_ascii_case("html");
    if !ctype.eq_ignore_ascii_case("text") || !html && !sub.eq_ignore_ascii_case("plain") {
        return None;
    }
    let raw = part.contents();
    let encoding = part.content_transfer_encoding().map(str::trim).unwrap_or("");
    let mut bytes: std::borrow::Cow<'_, [u8]> = if encoding.eq_ignore_ascii_case("base64") {
        base64_prefix(raw).into()
    } else if encoding.eq_ignore_ascii_case("quoted-printable") {
        quoted_printable_lenient(raw).into()
    } else {
        raw.into()
    };
    // Read as UTF-8, the cut may fall inside a character: end at the last whole one (not at
    // U+FFFD).
    if super::email_mime::charset_of(part.content_type()).is_none() {
        let whole = whole_utf8_chars(&bytes);
        if whole < bytes.len() {
            bytes.to_mut().truncate(whole);
        }
    }
    let text = super::email_mime::text_in_charset(bytes, part.content_type());
    Some(if html { html_to_text(&text) } else { crlf_to_lf(&text) })
}

/// How many bytes of `bytes` remain once a UTF-8 character cut off at the end is dropped (all
/// of them when the last character is whole, or is not UTF-8 at all).
fn whole_utf8_chars(bytes: &[u8]) -> usize {
    let n = bytes.len();
    // The last lead byte, at most three continuation bytes (10xxxxxx) from the end.
    for back in 1..=n.min(4) {
        let b = bytes[n - back];
        if b & 0xC0 == 0x80 {
            continue;
        }
        let len = match b {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        return if len > back { n - back } else { n };
    }
    n
}

/// The bytes of the whole base64 groups at the start of `raw` (line breaks skipped), up to the
/// first character that is not base64 or the padding.
fn base64_prefix(raw: &[u8]) -> Vec<u8> {
    let mut digits: Vec<u8> = raw
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
        .collect();
    digits.truncate(digits.len() / 4 * 4);
    mail_parser::decoders::base64::base64_decode(&digits).unwrap_or_default()
}

/// Quoted-printable decoded without giving up: `=XX` escapes and soft line breaks are decoded,
/// anything else (a lone `=`, a cut-off escape) is kept as written.
fn quoted_printable_lenient(raw: &[u8]) -> Vec<u8> {
    use mail_parser::decoders::quoted_printable::quoted_printable_decode_char;
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        if b == b'=' {
            match (raw.get(i + 1), raw.get(i + 2)) {
                (Some(b'\r'), Some(b'\n')) => {
                    i += 3;
                    continue;
                }
                (Some(b'\n'), _) => {
                    i += 2;
                    continue;
                }
                (Some(&h), Some(&l)) => {
                    if let Some(byte) = quoted_printable_decode_char(h, l) {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                }
                _ => {}
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

/// `text` with every CRLF line ending as LF (a byte scan for `\r`, cheaper than a substring
/// replace on long bodies).
fn crlf_to_lf(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('\r') {
        let after = &rest[at + 1..];
        if after.starts_with('\n') {
            out.push_str(&rest[..at]);
        } else {
            out.push_str(&rest[..=at]);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

fn clean_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// `s` cut to at most `max` bytes at a character boundary.
fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

fn truncate_with_ellipsis(s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut out = truncate(&s, max.saturating_sub('…'.len_utf8()));
    out.push('…');
    out
}

// ---------------------------------------------------------------------------------------------
// HTML to text
// ---------------------------------------------------------------------------------------------

fn decode_entity(entity: &str) -> Option<char> {
    Some(match entity {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" | "#39" => '\'',
        "nbsp" => ' ',
        // The named entities mail editors write most (typography, accents, currency).
        "rsquo" => '’',
        "lsquo" => '‘',
        "rdquo" => '”',
        "ldquo" => '“',
        "sbquo" => '‚',
        "bdquo" => '„',
        "ndash" => '–',
        "mdash" => '—',
        "hellip" => '…',
        "bull" => '•',
        "middot" => '·',
        "euro" => '€',
        "pound" => '£',
        "yen" => '¥',
        "cent" => '¢',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "deg" => '°',
        "times" => '×',
        "laquo" => '«',
        "raquo" => '»',
        "shy" => '\u{ad}',
        "zwnj" => '\u{200c}',
        "iexcl" => '¡',
        "iquest" => '¿',
        "szlig" => 'ß',
        _ if entity.len() > 4 && !entity.starts_with('#') => return accented(entity),
        _ => {
            let code = match entity.strip_prefix("#x").or_else(|| entity.strip_prefix("#X")) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => entity.strip_prefix('#')?.parse().ok()?,
            };
            char::from_u32(code).filter(|c| !c.is_control() || *c == '\n' || *c == '\t')?
        }
    })
}

/// A Latin-1 letter entity such as `eacute`, `Uuml`, `ccedil`, `ntilde`, `aring`, `oslash`.
fn accented(entity: &str) -> Option<char> {
    const MARKS: [(&str, &str, &str); 7] = [
        ("acute", "aeiouyAEIOUY", "áéíóúýÁÉÍÓÚÝ"),
        ("grave", "aeiouAEIOU", "àèìòùÀÈÌÒÙ"),
        ("circ", "aeiouAEIOU", "âêîôûÂÊÎÔÛ"),
        ("uml", "aeiouyAEIOU", "äëïöüÿÄËÏÖÜ"),
        ("tilde", "anoANO", "ãñõÃÑÕ"),
        ("cedil", "cC", "çÇ"),
        ("ring", "aA", "åÅ"),
    ];
    let mut chars = entity.chars();
    let base = chars.next()?;
    let mark = chars.as_str();
    if mark == "slash" {
        return match base {
            'o' => Some('ø'),
            'O' => Some('Ø'),
            _ => None,
        };
    }
    let (_, bases, accented) = MARKS.iter().find(|(m, ..)| *m == mark)?;
    let at = bases.chars().position(|b| b == base)?;
    accented.chars().nth(at)
}

/// Where the closing tag `</name` starts in `html`, matching the name case-insensitively.
fn closing_tag(html: &str, name: &str) -> Option<usize> {
    html.match_indices("</")
        .map(|(at, _)| at)
        .find(|at| html.get(at + 2..at + 2 + name.len()).is_some_and(|candidate| candidate.eq_ignore_ascii_case(name)))
}

/// Deepest quoting shown as `> ` prefixes: deeper levels (a hostile body nesting thousands of
/// `<blockquote>`) share the prefix of this one, so the text stays proportional to the HTML.
const MAX_QUOTE_DEPTH: usize = 8;

struct TextWriter {
    out: String,
    quote_depth: usize,
    line_start: bool,
    blank_lines: usize,
}

impl TextWriter {
    fn text(&mut self, c: char) {
        if c.is_whitespace() {
            if self.line_start || self.out.ends_with(' ') {
                return;
            }
            self.out.push(' ');
            return;
        }
        if self.line_start {
            for _ in 0..self.quote_depth.min(MAX_QUOTE_DEPTH) {
                self.out.push_str("> ");
            }
            self.line_start = false;
            self.blank_lines = 0;
        }
        self.out.push(c);
    }

    /// Ends the current line, if anything is on it.
    fn end_line(&mut self) {
        if !self.line_start {
            self.newline();
        }
    }

    fn newline(&mut self) {
        let trimmed = self.out.trim_end_matches(' ').len();
        self.out.truncate(trimmed);
        if self.line_start {
            if self.blank_lines >= 1 || self.out.is_empty() {
                return;
            }
            self.blank_lines += 1;
        }
        self.out.push('\n');
        self.line_start = true;
    }
}

/// A plain-text rendering of an HTML body, kept simple: `script`, `style` and `head` dropped,
/// block elements and `<br>` as line breaks, `<blockquote>` lines prefixed with `> ` (so quoted
/// replies strip like plain-text ones), whitespace collapsed, common entities decoded.
///
/// ```
/// use touchpoint::channels::email::html_to_text;
/// let html = "<p>Thanks &amp; see you <b>soon</b>!</p><blockquote>Old text</blockquote>";
/// assert_eq!(html_to_text(html), "Thanks & see you soon!\n\n> Old text");
/// ```
pub fn html_to_text(html: &str) -> String {
    let mut w =
        TextWriter { out: String::with_capacity(html.len() / 2), quote_depth: 0, line_start: true, blank_lines: 0 };
    let mut rest = html;
    while let Some(c) = rest.chars().next() {
        match c {
            '<' => {
                // A `<` starts a tag only before a letter, `/`, `!` or `?` (as HTML's tokenizer
                // reads it); otherwise it is text, as in "3 < 5 items".
                if !rest[1..].starts_with(|c: char| c.is_ascii_alphabetic() || "/!?".contains(c)) {
                    w.text('<');
                    rest = &rest[1..];
                    continue;
                }
                if let Some(comment) = rest.strip_prefix("<!--") {
                    rest = comment.find("-->").map_or("", |end| &comment[end + 3..]);
                    continue;
                }
                let Some(end) = rest.find('>') else { break };
                let tag = &rest[1..end];
                rest = &rest[end + 1..];
                let closing = tag.starts_with('/');
                let name: String = tag
                    .trim_start_matches('/')
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .map(|c| c.to_ascii_lowercase())
                    .collect();
                match name.as_str() {
                    "script" | "style" | "head" | "title" if !closing && !tag.ends_with('/') => {
                        rest = match closing_tag(rest, &name) {
                            Some(at) => rest[at..].find('>').map_or("", |e| &rest[at + e + 1..]),
                            // HTML lets `</head>` be left out: the body follows.
                            None if name == "head" => rest,
                            None => "",
                        };
                    }
                    "br" => w.newline(),
                    "blockquote" => {
                        w.newline();
                        w.quote_depth = if closing { w.quote_depth.saturating_sub(1) } else { w.quote_depth + 1 };
                    }
                    "p" => {
                        w.newline();
                        if closing {
                            w.newline();
                        }
                    }
                    "div" | "li" | "tr" | "table" | "ul" | "ol" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "hr"
                    | "pre" => w.end_line(),
                    // Cells of a row are words apart.
                    "td" | "th" if closing => w.text(' '),
                    _ => {}
                }
            }
            '&' => {
                // Entities are short: look for the `;` in the next 11 bytes only, so a long run of `&`
                // stays linear.
                let entity = rest.as_bytes()[1..].iter().take(11).position(|b| *b == b';').map(|n| &rest[1..1 + n]);
                match entity.and_then(decode_entity) {
                    Some(decoded) => {
                        w.text(decoded);
                        rest = &rest[entity.map_or(0, str::len) + 2..];
                    }
                    None => {
                        w.text('&');
                        rest = &rest[1..];
                    }
                }
            }
            c => {
                w.text(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    w.out.trim_end().to_owned()
}

// ---------------------------------------------------------------------------------------------
// Quoted replies and signatures
// ---------------------------------------------------------------------------------------------

fn is_quote_header(line: &str, next: Option<&str>) -> bool {
    let l = line.trim();
    if l.starts_with("On ") {
        if l.ends_with("wrote:") {
            return true;
        }
        // Gmail wraps a long attribution over two lines.
        if let Some(n) = next
            && n.trim().ends_with("wrote:")
            && !n.trim_start().starts_with('>')
        {
            return true;
        }
    }
    false
}

/// Whether `s` starts with `prefix`, ignoring ASCII case.
fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.as_bytes().get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

fn is_outlook_block(line: &str, next: Option<&str>) -> bool {
    let l = line.trim();
    if starts_with_ignore_case(l, "-----original message-----")
        || starts_with_ignore_case(l, "----- original message -----")
    {
        return true;
    }
    if l.len() >= 10 && l.bytes().all(|c| c == b'_') {
        return next.is_some_and(|n| starts_with_ignore_case(n.trim_start(), "from:"));
    }
    if starts_with_ignore_case(l, "from:") {
        let n = next.map_or("", str::trim_start);
        return starts_with_ignore_case(n, "sent:") || starts_with_ignore_case(n, "date:");
    }
    false
}

fn is_signature_start(line: &str) -> bool {
    let l = line.trim_end_matches('\r');
    l == "-- " || l == "--" || l.trim_start().starts_with("Sent from my ")
}

/// The part of a reply its author wrote: everything before the first quote attribution
/// (`On … wrote:`, also wrapped over two lines), Outlook's `-----Original Message-----` or
/// `From:`/`Sent:` header block, or signature (`-- `, `Sent from my …`), with `>`-quoted lines
/// removed and surrounding blank lines trimmed.
///
/// A heuristic, English-only for attributions: keep the full text too.
///
/// ```
/// use touchpoint::channels::email::visible_text;
/// let text = "Thanks, that works.\n\n-----Original Message-----\nFrom: Acme\nSent: Monday\n\nHello";
/// assert_eq!(visible_text(text), "Thanks, that works.");
/// assert_eq!(visible_text("Yes\n> Did it arrive?\nNo, wait\n-- \nAda"), "Yes\nNo, wait");
/// ```
pub fn visible_text(text: &str) -> String {
    let mut lines = text.lines().peekable();
    let mut kept: Vec<&str> = Vec::new();
    while let Some(line) = lines.next() {
        let next = lines.peek().copied();
        if is_quote_header(line, next) || is_outlook_block(line, next) || is_signature_start(line) {
            break;
        }
        if line.trim_start().starts_with('>') {
            continue;
        }
        kept.push(line.trim_end());
    }
    while kept.last().is_some_and(|l| l.trim().is_empty()) {
        kept.pop();
    }
    let start = kept.iter().position(|l| !l.trim().is_empty()).unwrap_or(kept.len());
    kept[start..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// Bounces
// ---------------------------------------------------------------------------------------------

/// The fields of a `message/delivery-status` body: per-message fields, then one group per
/// recipient; names lowercased, folded lines joined.
fn dsn_groups(body: &str) -> Vec<Vec<(String, String)>> {
    let mut groups = Vec::new();
    let mut current: Vec<(String, String)> = Vec::new();
    for line in body.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                groups.push(std::mem::take(&mut current));
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = current.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            current.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

fn field<'a>(group: &'a [(String, String)], name: &str) -> Option<&'a str> {
    group.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

/// `rfc822; a@b` → `a@b`.
fn strip_type(value: &str) -> &str {
    value.split_once(';').map_or(value, |(_, v)| v).trim().trim_start_matches('<').trim_end_matches('>').trim()
}

fn rfc2822_date(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(value.trim()).ok().map(|d| d.with_timezone(&Utc))
}

fn find_message_id_line(text: &str) -> Option<String> {
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some((name, value)) = line.split_once(':') else { continue };
        if !name.trim().eq_ignore_ascii_case("message-id") {
            continue;
        }
        // A folded header goes on in the lines that start with white space.
        let mut value = value.trim().to_owned();
        while let Some(next) = lines.next_if(|l| l.starts_with([' ', '\t'])) {
            value.push_str(next.trim());
        }
        let id = value.trim_start_matches('<').trim_end_matches('>').trim();
        if valid_external_id(id) {
            return Some(id.to_owned());
        }
    }
    None
}

/// Whether a part of the message is a returned message or its headers.
fn returns_a_message(message: &mail_parser::Message<'_>) -> bool {
    message.parts.iter().skip(1).any(|part| {
        matches!(part.body, PartType::Message(_))
            || part.content_type().is_some_and(|ct| {
                ct.ctype().eq_ignore_ascii_case("text")
                    && ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case("rfc822-headers"))
            })
    })
}

fn bounce(message: &mail_parser::Message<'_>, standard_report: bool) -> Bounce {
    let mut status_text: Option<String> = None;
    let mut original: Option<String> = None;
    for part in &message.parts {
        let (ctype, subtype) = part
            .content_type()
            .map(|ct| (ct.ctype().to_ascii_lowercase(), ct.subtype().unwrap_or("").to_ascii_lowercase()))
            .unwrap_or_default();
        match (&part.body, ctype.as_str(), subtype.as_str()) {
            (_, "message", "delivery-status" | "global-delivery-status") if status_text.is_none() => {
                status_text = Some(String::from_utf8_lossy(part.contents()).into_owned());
            }
            (PartType::Message(inner), _, _) if original.is_none() => {
                original = inner.message_id().map(str::trim).filter(|id| valid_external_id(id)).map(str::to_owned);
            }
            (_, "text", "rfc822-headers") if original.is_none() => {
                original = find_message_id_line(&String::from_utf8_lossy(part.contents()));
            }
            _ => {}
        }
    }
    let groups = status_text.as_deref().map(dsn_groups).unwrap_or_default();
    let per_message = groups.first().filter(|g| field(g, "action").is_none() && field(g, "final-recipient").is_none());
    if original.is_none() {
        original = per_message
            .and_then(|g| field(g, "original-envelope-id"))
            .map(|v| v.trim_start_matches('<').trim_end_matches('>').to_owned())
            .filter(|id| valid_external_id(id));
    }
    if original.is_none() {
        // A non-standard bounce quoting the original headers in its text.
        original =
            (0..message.text_body_count()).find_map(|i| message.body_text(i).and_then(|t| find_message_id_line(&t)));
    }
    let fallback_at = per_message
        .and_then(|g| field(g, "arrival-date"))
        .and_then(rfc2822_date)
        .or_else(|| message.date().and_then(|d| DateTime::from_timestamp(d.to_timestamp(), 0)));

    let mut recipients = Vec::new();
    let mut receipts = Vec::new();
    let email_address = |raw: &str| normalize_email(raw).ok().map(|_| Address::email(raw));
    for group in &groups {
        let Some(action) = field(group, "action") else { continue };
        let action = match action.split_whitespace().next().unwrap_or("").to_ascii_lowercase().as_str() {
            "failed" => DsnAction::Failed,
            "delayed" => DsnAction::Delayed,
            "delivered" => DsnAction::Delivered,
            "relayed" => DsnAction::Relayed,
            "expanded" => DsnAction::Expanded,
            _ => continue,
        };
        let recipient = field(group, "final-recipient").or_else(|| field(group, "original-recipient")).map(strip_type);
        let status = field(group, "status").map(|s| s.split_whitespace().next().unwrap_or(s).to_owned());
        let diagnostic = field(group, "diagnostic-code").map(|d| strip_type(d).to_owned());
        let state = match action {
            DsnAction::Failed => {
                let permanence = match status.as_deref().and_then(|s| s.chars().next()) {
                    Some('5') => "permanently",
                    Some('4') => "after retrying",
                    _ => "",
                };
                let mut reason = format!("delivery failed {permanence}").trim_end().to_owned();
                if let Some(d) = &diagnostic {
                    let _ = write!(reason, ": {d}");
                } else if let Some(s) = &status {
                    let _ = write!(reason, " (status {s})");
                }
                Some(DeliveryState::Failed { code: status.clone(), reason })
            }
            DsnAction::Delivered => Some(DeliveryState::Delivered),
            DsnAction::Relayed | DsnAction::Expanded => Some(DeliveryState::Sent),
            DsnAction::Delayed => None,
        };
        if let (Some(state), Some(id)) = (state, &original) {
            receipts.push(DeliveryReceipt {
                channel: ChannelKind::Email,
                external_id: id.clone(),
                state,
                at: field(group, "last-attempt-date").and_then(rfc2822_date).or(fallback_at),
                recipient: recipient.and_then(email_address),
                watermark: false,
            });
        }
        recipients.push(DsnRecipient { recipient: recipient.map(str::to_owned), action, status, diagnostic });
    }
    if recipients.is_empty()
        && let Some(id) = &original
    {
        // A non-standard bounce: the failed recipients if the MTA named them (Exim), else one
        // receipt for the message.
        let failed: Vec<&str> = header_text(message, "X-Failed-Recipients")
            .map(|v| v.split(',').map(str::trim).filter(|r| !r.is_empty()).collect())
            .unwrap_or_default();
        let reason = "the message bounced".to_owned();
        let receipt = |recipient: Option<Address>| DeliveryReceipt {
            channel: ChannelKind::Email,
            external_id: id.clone(),
            state: DeliveryState::Failed { code: None, reason: reason.clone() },
            at: fallback_at,
            recipient,
            watermark: false,
        };
        if failed.is_empty() {
            receipts.push(receipt(None));
        } else {
            receipts.extend(failed.into_iter().map(|r| receipt(email_address(r))));
        }
    }
    Bounce { original_message_id: original, standard: standard_report, recipients, receipts }
}

// ---------------------------------------------------------------------------------------------
// Outbound: MIME builder
// ---------------------------------------------------------------------------------------------

/// A name and address for a header (`"Acme Support" <support@example.com>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mailbox {
    /// Display name.
    pub name: Option<String>,
    /// The ASCII address.
    pub address: String,
}

impl Mailbox {
    /// An address without a name.
    pub fn new(address: impl Into<String>) -> Self {
        Mailbox { name: None, address: address.into() }
    }

    /// An address with a display name.
    pub fn named(name: impl Into<String>, address: impl Into<String>) -> Self {
        Mailbox { name: Some(name.into()), address: address.into() }
    }

    fn check(&self, field: &'static str) -> Result<()> {
        split_address(&self.address)?;
        if self.name.as_deref().is_some_and(|n| n.len() > 256 || n.chars().any(|c| c == '\r' || c == '\n')) {
            return Err(Error::invalid(field, "a display name must be at most 256 bytes without line breaks"));
        }
        Ok(())
    }

    /// The mailbox as header words: the display name (one word, or one per encoded word) and
    /// the bracketed address; a header folds between them.
    fn render(&self) -> Vec<String> {
        let address = self.address.trim();
        match self.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
            None => vec![address.to_owned()],
            Some(name) => {
                let mut words = phrase(name);
                words.push(format!("<{address}>"));
                words
            }
        }
    }
}

/// A display name as an RFC 5322 phrase: atoms as they are, a quoted string when it has
/// specials, RFC 2047 encoded words when it is not printable ASCII.
fn phrase(name: &str) -> Vec<String> {
    let printable = name.chars().all(|c| c.is_ascii() && !c.is_ascii_control());
    if !printable || name.contains("=?") {
        return encoded_words(name);
    }
    let atext = |c: char| c.is_ascii_alphanumeric() || " !#$%&'*+-/=?^_`{|}~".contains(c);
    if name.chars().all(atext) {
        return vec![name.to_owned()];
    }
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    vec![out]
}

fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// RFC 2047 `B` encoded words of at most 39 bytes of UTF-8 each (split at character
/// boundaries), so a folded line stays under 78 characters.
fn encoded_words(text: &str) -> Vec<String> {
    const CHUNK: usize = 39;
    let mut words = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + CHUNK).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        if end == start {
            // A single character longer than CHUNK bytes cannot exist in UTF-8 (at most 4).
            break;
        }
        words.push(format!("=?UTF-8?B?{}?=", base64(&text.as_bytes()[start..end])));
        start = end;
    }
    words
}

/// The words of a list of mailboxes, a comma ending each mailbox but the last.
fn mailbox_words(mailboxes: &[Mailbox]) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for (i, m) in mailboxes.iter().enumerate() {
        if i > 0
            && let Some(last) = words.last_mut()
        {
            last.push(',');
        }
        words.extend(m.render());
    }
    words
}

/// Writes `Name: item item …` with `sep` between items, folding onto a new line (CRLF and a
/// space) before an item that would pass 78 characters.
fn folded_header(out: &mut String, name: &str, items: &[String], sep: &str) {
    out.push_str(name);
    out.push(':');
    let mut col = name.len() + 1;
    for (i, item) in items.iter().enumerate() {
        let lead = if i == 0 { " " } else { sep };
        if i > 0 && col + lead.len() + item.len() > 78 {
            out.push_str(lead.trim_end());
            out.push_str("\r\n ");
            col = 1;
        } else {
            out.push_str(lead);
            col += lead.len();
        }
        out.push_str(item);
        col += item.len();
    }
    out.push_str("\r\n");
}

fn subject_words(subject: &str) -> Vec<String> {
    let plain = subject.chars().all(|c| c.is_ascii() && !c.is_ascii_control())
        && !subject.contains("=?")
        && subject.split(' ').all(|w| w.len() <= 70)
        && !subject.contains("  ")
        && subject.trim() == subject;
    if plain { subject.split(' ').map(str::to_owned).collect() } else { encoded_words(subject) }
}

/// Quoted-printable body with CRLF line breaks and lines of at most 76 characters.
fn quoted_printable(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        let line = line.strip_suffix('\r').unwrap_or(line);
        let bytes = line.as_bytes();
        let mut col = 0;
        for (j, &b) in bytes.iter().enumerate() {
            let last = j + 1 == bytes.len();
            let literal = (b == b' ' || b == b'\t') && !last || (33..=126).contains(&b) && b != b'=';
            let width = if literal { 1 } else { 3 };
            if col + width > 75 {
                out.push_str("=\r\n");
                col = 0;
            }
            if literal {
                out.push(char::from(b));
            } else {
                out.push('=');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0x0f)]));
            }
            col += width;
        }
    }
    out
}

fn check_message_id(field: &'static str, id: &str) -> Result<String> {
    let id = id.trim().trim_start_matches('<').trim_end_matches('>');
    let ok = id.len() <= 250
        && id.is_ascii()
        && !id.chars().any(|c| c.is_ascii_control() || c.is_whitespace() || "<>\"\\,;".contains(c))
        && id.split_once('@').is_some_and(|(l, r)| !l.is_empty() && !r.is_empty() && !r.contains('@'));
    if !ok {
        return Err(Error::invalid(field, "must be an ASCII id `left@right` without spaces or brackets"));
    }
    Ok(id.to_owned())
}

/// A built message: the bytes to hand to the MTA and the Message-ID to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEmail {
    /// Our Message-ID, without angle brackets: record it as the message's external id.
    pub message_id: String,
    /// The RFC 5322 message, CRLF line endings.
    pub bytes: Vec<u8>,
}

/// Builds an outbound email: a text body with an optional HTML alternative.
///
/// ```
/// use touchpoint::channels::email::{EmailBuilder, EmailInbox, Mailbox};
/// use touchpoint::model::EndpointId;
/// use chrono::{TimeZone, Utc};
/// let inbox = EmailInbox::new(EndpointId::new("support").unwrap(), "reply@support.example.com").unwrap();
/// let email = EmailBuilder::new(
///     Mailbox::named("Acme Support", "support@example.com"),
///     Mailbox::named("Ada Example", "ada@example.net"),
///     "Re: Your parcel – update",
///     "It ships today.",
/// )
/// .replying_to("CAFAKE0001.ada@mail.example.net", &["CAFAKE0000.ada@mail.example.net".to_owned()])
/// .reply_token(&inbox, "6f1c2e4a")
/// .unwrap()
/// .message_id("77.6f1c2e4a@support.example.com")
/// .build(Utc.with_ymd_and_hms(2025, 1, 1, 10, 0, 0).unwrap())
/// .unwrap();
/// let text = String::from_utf8(email.bytes).unwrap();
/// assert_eq!(email.message_id, "77.6f1c2e4a@support.example.com");
/// assert!(text.contains("\r\nIn-Reply-To: <CAFAKE0001.ada@mail.example.net>\r\n"));
/// assert!(text.contains("\r\nReply-To: Acme Support <reply+6f1c2e4a@support.example.com>\r\n"));
/// assert!(text.contains("\r\nSubject: =?UTF-8?B?"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailBuilder {
    from: Mailbox,
    to: Vec<Mailbox>,
    cc: Vec<Mailbox>,
    reply_to: Option<Mailbox>,
    subject: String,
    text: String,
    html: Option<String>,
    message_id: Option<String>,
    in_reply_to: Option<String>,
    references: Vec<String>,
    auto_submitted: bool,
}

impl EmailBuilder {
    /// A message from `from` to `to`.
    pub fn new(from: Mailbox, to: Mailbox, subject: impl Into<String>, text: impl Into<String>) -> Self {
        EmailBuilder {
            from,
            to: vec![to],
            cc: Vec::new(),
            reply_to: None,
            subject: subject.into(),
            text: text.into(),
            html: None,
            message_id: None,
            in_reply_to: None,
            references: Vec::new(),
            auto_submitted: false,
        }
    }

    /// Adds a `To` recipient.
    pub fn to(mut self, to: Mailbox) -> Self {
        self.to.push(to);
        self
    }

    /// Adds a `Cc` recipient.
    pub fn cc(mut self, cc: Mailbox) -> Self {
        self.cc.push(cc);
        self
    }

    /// Adds an HTML alternative to the text.
    pub fn html(mut self, html: impl Into<String>) -> Self {
        self.html = Some(html.into());
        self
    }

    /// Sets our Message-ID (default: a random UUID at the `From` domain).
    pub fn message_id(mut self, id: impl Into<String>) -> Self {
        self.message_id = Some(id.into());
        self
    }

    /// Sets `In-Reply-To` and `References` for a reply to the message `parent_id` whose own
    /// `References` were `parent_references` (RFC 5322 §3.6.4: the parent's references, then
    /// the parent). Long chains keep the first and the most recent [`MAX_REFERENCES`] − 1.
    pub fn replying_to(mut self, parent_id: &str, parent_references: &[String]) -> Self {
        let parent = parent_id.trim().trim_start_matches('<').trim_end_matches('>').to_owned();
        // A mail without a Message-ID is known by its content hash (`sha256:<hex>`, see
        // `parse`): there is no id to refer to, only its own references.
        let parent = Some(parent).filter(|p| !p.starts_with("sha256:") || p.contains('@'));
        let mut refs: Vec<String> = parent_references
            .iter()
            .map(|r| r.trim().trim_start_matches('<').trim_end_matches('>').to_owned())
            .filter(|r| !r.is_empty() && Some(r) != parent.as_ref())
            .collect();
        refs.extend(parent.clone());
        if refs.len() > MAX_REFERENCES {
            let tail = refs.split_off(refs.len() - (MAX_REFERENCES - 1));
            refs.truncate(1);
            refs.extend(tail);
        }
        self.in_reply_to = parent;
        self.references = refs;
        self
    }

    /// Sets `Reply-To` to the inbox's reply address carrying `token` (the conversation's reply
    /// token), named like the sender.
    pub fn reply_token(mut self, inbox: &EmailInbox, token: &str) -> Result<Self> {
        let address = inbox.reply_address_for(token)?;
        self.reply_to = Some(Mailbox { name: self.from.name.clone(), address });
        Ok(self)
    }

    /// Marks the message `Auto-Submitted: auto-replied` (automatic acknowledgements), so other
    /// systems' autoresponders do not answer it.
    pub fn auto_submitted(mut self) -> Self {
        self.auto_submitted = true;
        self
    }

    /// The message, dated `date` (the engine clock's now).
    ///
    /// Errors: a malformed address or Message-ID, a subject with line breaks, an empty text
    /// body.
    pub fn build(&self, date: DateTime<Utc>) -> Result<OutgoingEmail> {
        self.from.check("from")?;
        for m in &self.to {
            m.check("to")?;
        }
        for m in &self.cc {
            m.check("cc")?;
        }
        if let Some(m) = &self.reply_to {
            m.check("reply_to")?;
        }
        if self.subject.contains(['\r', '\n']) {
            return Err(Error::invalid("subject", "must not contain line breaks"));
        }
        if self.text.trim().is_empty() {
            return Err(Error::invalid("text", "the text body must not be empty"));
        }
        let message_id = match &self.message_id {
            Some(id) => check_message_id("message_id", id)?,
            None => {
                let (_, domain) = split_address(&self.from.address)?;
                format!("{}@{domain}", uuid::Uuid::new_v4().simple())
            }
        };
        let in_reply_to = self.in_reply_to.as_deref().map(|id| check_message_id("in_reply_to", id)).transpose()?;
        let references =
            self.references.iter().map(|id| check_message_id("references", id)).collect::<Result<Vec<_>>>()?;

        let mut out = String::with_capacity(self.text.len() * 2 + 1024);
        let _ = write!(out, "Date: {}\r\n", date.format("%a, %d %b %Y %H:%M:%S +0000"));
        folded_header(&mut out, "From", &mailbox_words(std::slice::from_ref(&self.from)), " ");
        folded_header(&mut out, "To", &mailbox_words(&self.to), " ");
        if !self.cc.is_empty() {
            folded_header(&mut out, "Cc", &mailbox_words(&self.cc), " ");
        }
        if let Some(reply_to) = &self.reply_to {
            folded_header(&mut out, "Reply-To", &mailbox_words(std::slice::from_ref(reply_to)), " ");
        }
        if !self.subject.trim().is_empty() {
            folded_header(&mut out, "Subject", &subject_words(&self.subject), " ");
        }
        let _ = write!(out, "Message-ID: <{message_id}>\r\n");
        if let Some(parent) = &in_reply_to {
            let _ = write!(out, "In-Reply-To: <{parent}>\r\n");
        }
        if !references.is_empty() {
            let ids: Vec<String> = references.iter().map(|r| format!("<{r}>")).collect();
            folded_header(&mut out, "References", &ids, " ");
        }
        if self.auto_submitted {
            out.push_str("Auto-Submitted: auto-replied\r\n");
        }
        out.push_str("MIME-Version: 1.0\r\n");
        match &self.html {
            None => write_text_part(&mut out, "plain", &self.text),
            Some(html) => {
                let boundary = format!("=_tp_{}", uuid::Uuid::new_v4().simple());
                let _ = write!(out, "Content-Type: multipart/alternative;\r\n boundary=\"{boundary}\"\r\n\r\n");
                let _ = write!(out, "--{boundary}\r\n");
                write_text_part(&mut out, "plain", &self.text);
                let _ = write!(out, "--{boundary}\r\n");
                write_text_part(&mut out, "html", html);
                let _ = write!(out, "--{boundary}--\r\n");
            }
        }
        Ok(OutgoingEmail { message_id, bytes: out.into_bytes() })
    }
}

/// Writes the part headers and body: 7bit when the text is short-lined ASCII, else
/// quoted-printable. Quoted-printable output can never contain the `=_` of our boundary.
fn write_text_part(out: &mut String, subtype: &str, text: &str) {
    let seven_bit = text.is_ascii()
        && text.lines().all(|l| l.len() <= 76 && !l.ends_with([' ', '\t']) && !l.starts_with("--=_tp_"))
        && !text.chars().any(|c| c.is_ascii_control() && c != '\n' && c != '\r')
        && !text.contains('\r');
    let _ = write!(out, "Content-Type: text/{subtype}; charset=utf-8\r\n");
    if seven_bit {
        out.push_str("Content-Transfer-Encoding: 7bit\r\n\r\n");
        out.push_str(&text.replace('\n', "\r\n"));
    } else {
        out.push_str("Content-Transfer-Encoding: quoted-printable\r\n\r\n");
        out.push_str(&quoted_printable(text));
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::whole_utf8_chars;

    #[test]
    fn a_character_cut_off_at_the_end_is_dropped_and_nothing_else() {
        let emoji = "ok 😀".as_bytes(); // the emoji is 4 bytes
        for cut in 0..=emoji.len() {
            let kept = whole_utf8_chars(&emoji[..cut]);
            let want = if cut > 3 && cut < emoji.len() { 3 } else { cut };
            assert_eq!(kept, want, "cut after {cut} bytes");
        }
        assert_eq!(whole_utf8_chars("já".as_bytes()), 3);
        // Not UTF-8 at all: left as it is, for the charset decoder to judge.
        assert_eq!(whole_utf8_chars(&[0x80, 0x80, 0x80, 0x80, 0x80]), 5);
        assert_eq!(whole_utf8_chars(&[b'a', 0xFF]), 2);
    }
}
