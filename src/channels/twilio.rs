//! Twilio kit: Programmable Messaging (SMS, MMS and WhatsApp through Twilio) and Programmable
//! Voice.
//!
//! Twilio posts its webhooks as `application/x-www-form-urlencoded` bodies (see [`form`]).
//! Check the `X-Twilio-Signature` over the same bytes first, then:
//!
//! * an incoming message → [`parse_message`] → one [`InboundMessage`] per item (text, each
//!   photo of an MMS, a WhatsApp location) for [`Engine::ingest`](crate::Engine::ingest);
//!   numbers written `whatsapp:+…` land on [`ChannelKind::WhatsApp`], others on
//!   [`ChannelKind::Sms`]; the sender's number is carrier-asserted;
//! * a status callback of a message we sent → [`parse_status`] → a [`DeliveryReceipt`];
//! * [`parse_messaging`] tells the two apart when both arrive at one URL;
//! * a Voice request (incoming call, `<Gather>` result, call status) → [`VoiceRequest::parse`]
//!   → [`VoiceRequest::to_inbound`]: the call becomes a conversation (its `CallSid` is the
//!   provider thread id) and the caller's keypresses and speech reach the agent as IVR input.
//!
//! Outbound: [`SmsSend`] builds the Messages API form; [`VoiceResponse`] builds TwiML for simple
//! voice answers (`<Say>`, `<Gather>`, `<Dial>`), [`messaging_reply`] the TwiML answer to an
//! incoming message.
//!
//! Twilio adds parameters without notice: unknown parameters are ignored, never rejected.
//!
//! [`form`]: super::form

use super::DeliveryReceipt;
use super::form::{self, Form};
use crate::identity::normalize::normalize_phone;
use crate::model::{
    Address, ChannelKind, Content, DeliveryState, EndpointId, InboundMessage, MediaKind, ThreadHints, Verification,
};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// Most media Twilio attaches to one message (and accepts on one outbound message).
pub const MAX_MEDIA: usize = 10;
/// Longest outbound message body Twilio accepts, in characters (error 21617 beyond).
pub const MAX_BODY_CHARS: usize = 1600;

fn phone(field: &'static str, raw: &str) -> Result<Address> {
    e164(field, raw)?;
    Ok(Address::phone(raw.trim()))
}

/// A number written with a leading `+`, in its E.164 form (`+44 7700 900-123` →
/// `+447700900123`): what goes out to Twilio, which asks for E.164.
fn e164(field: &'static str, raw: &str) -> Result<String> {
    let number = raw.trim();
    if !number.starts_with('+') {
        return Err(Error::InvalidAddress {
            kind: "phone",
            raw: number.chars().take(64).collect(),
            reason: format!("`{field}` must be an E.164 number starting with +"),
        });
    }
    normalize_phone(number, None)
}

/// A `To`/`From` value as it goes out, with its channel: `whatsapp:` and the number in E.164
/// for WhatsApp, the number in E.164 for SMS.
fn outbound_address(field: &'static str, raw: &str) -> Result<(ChannelKind, String)> {
    let (channel, number) = split_channel(field, raw)?;
    let number = e164(field, number)?;
    Ok(match channel {
        ChannelKind::WhatsApp => (channel, format!("whatsapp:{number}")),
        _ => (channel, number),
    })
}

/// The channel and customer address a Twilio `From`/`To` value names: `whatsapp:+…` is
/// WhatsApp, a bare `+…` number is SMS.
fn messaging_address(field: &'static str, raw: &str) -> Result<(ChannelKind, Address)> {
    let (channel, number) = split_channel(field, raw)?;
    Ok((channel, phone(field, number)?))
}

/// The channel a Twilio `From`/`To` value names and the number after its prefix.
fn split_channel<'a>(field: &'static str, raw: &'a str) -> Result<(ChannelKind, &'a str)> {
    let raw = raw.trim();
    if let Some(number) = raw.strip_prefix("whatsapp:") {
        return Ok((ChannelKind::WhatsApp, number));
    }
    if let Some((prefix, _)) = raw.split_once(':') {
        let prefix: String = prefix.chars().take(32).collect();
        return Err(Error::invalid(field, format!("the `{prefix}:` channel is not supported by this kit")));
    }
    Ok((ChannelKind::Sms, raw))
}

/// Whether a caller id is withheld: the words carriers and Twilio use, the placeholder
/// numbers Twilio passes instead (ANONYMOUS, RESTRICTED, BLOCKED, UNKNOWN, UNAVAILABLE spelled
/// on a keypad), or a SIP caller's anonymous URI (RFC 3261/3323:
/// `sip:anonymous@anonymous.invalid`).
fn withheld_caller_id(raw: &str) -> bool {
    const WORDS: [&str; 7] = ["anonymous", "restricted", "blocked", "unknown", "unavailable", "private", "withheld"];
    const PLACEHOLDERS: [&str; 5] = ["+266696687", "+7378742833", "+2562533", "+8656696", "+86282452253"];
    let anonymous_sip = || {
        let uri = raw.strip_prefix("sip:").and_then(|u| u.split([';', '?']).next()).unwrap_or("");
        let (user, host) = uri.trim().rsplit_once('@').unwrap_or(("", uri));
        user.eq_ignore_ascii_case("anonymous") || host.to_ascii_lowercase().ends_with(".invalid")
    };
    raw.is_empty()
        || WORDS.iter().any(|w| raw.eq_ignore_ascii_case(w))
        || PLACEHOLDERS.contains(&raw)
        || (raw.starts_with("sip:") && anonymous_sip())
}

/// A short code (3 to 8 digits) or an alphanumeric sender id (1 to 11 letters, digits and
/// spaces, at least one letter), which Twilio accepts as the `From` of an SMS.
fn sms_sender_id(from: &str) -> bool {
    let short_code = (3..=8).contains(&from.len()) && from.bytes().all(|b| b.is_ascii_digit());
    let alphanumeric = (1..=11).contains(&from.len())
        && from.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
        && from.bytes().any(|b| b.is_ascii_alphabetic());
    short_code || alphanumeric
}

fn check_sid(field: &'static str, value: &str, prefixes: &[&str]) -> Result<String> {
    let ok = value.len() == 34
        && prefixes.iter().any(|p| value.starts_with(p))
        && value.get(2..).is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_hexdigit()));
    if !ok {
        let shown: String = value.chars().take(40).collect();
        return Err(Error::invalid(
            field,
            format!("{shown:?} is not a Twilio id ({} followed by 32 hex digits)", prefixes.join(" or ")),
        ));
    }
    Ok(value.to_owned())
}

/// The `<Record>` result of a Voice request, if it carries one.
fn recording(form: &Form) -> Result<Option<CallRecording>> {
    let Some(sid) = optional_sid(form, "RecordingSid", &["RE"])? else { return Ok(None) };
    let url = form.require("RecordingUrl")?.trim();
    if !url.starts_with("https://") || url.len() > 2048 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::invalid("RecordingUrl", "must be an https URL of at most 2048 bytes"));
    }
    Ok(Some(CallRecording { sid, url: url.to_owned(), duration_secs: seconds(form, "RecordingDuration")? }))
}

/// A length in whole seconds, if the form has `field`.
fn seconds(form: &Form, field: &'static str) -> Result<Option<u32>> {
    form.get_nonempty(field)
        .map(|d| d.trim().parse().map_err(|_| Error::invalid(field, "is not a number of seconds")))
        .transpose()
}

fn optional_sid(form: &Form, field: &'static str, prefixes: &[&str]) -> Result<Option<String>> {
    form.get_nonempty(field).map(|v| check_sid(field, v.trim(), prefixes)).transpose()
}

/// A keyword-based opt-out Twilio detected in an incoming message (Advanced Opt-Out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptOutType {
    /// The sender opted out (`STOP` and its synonyms): record withdrawn consent.
    Stop,
    /// The sender opted back in (`START`).
    Start,
    /// The sender asked for help (`HELP`).
    Help,
}

/// An incoming message as Twilio reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct TwilioMessage {
    /// Twilio's id of the message (`SM…`/`MM…`).
    pub message_sid: String,
    /// The account it arrived on (`AC…`).
    pub account_sid: Option<String>,
    /// The Messaging Service it arrived through (`MG…`).
    pub messaging_service_sid: Option<String>,
    /// [`ChannelKind::Sms`] or [`ChannelKind::WhatsApp`].
    pub channel: ChannelKind,
    /// Our number it was sent to, as Twilio wrote it (`+15550001111`, `whatsapp:+15550001111`).
    pub to: String,
    /// How many SMS segments the carrier delivered it in.
    pub num_segments: Option<u32>,
    /// An opt-out keyword Twilio recognised.
    pub opt_out: Option<OptOutType>,
    /// One message per item, in order: a WhatsApp location, then each media item (the first
    /// carries the text as its caption), or the text alone. The first has the `MessageSid` as
    /// its external id, the n-th further item `{MessageSid}#{n}`, so a retried webhook is a
    /// duplicate as a whole.
    pub inbound: Vec<InboundMessage>,
}

/// Parses an incoming-message webhook (SMS, MMS or WhatsApp through Twilio) received on our
/// `endpoint`.
///
/// ```
/// use touchpoint::channels::twilio::parse_message;
/// use touchpoint::model::{Address, ChannelKind, Content, EndpointId, Verification};
/// let body = b"MessageSid=SM00000000000000000000000000000001&From=%2B447700900123\
///              &To=%2B15550001111&Body=Where+is+order+5521%3F&NumMedia=0";
/// let parsed = parse_message(body, &EndpointId::new("sms-uk").unwrap()).unwrap();
/// let msg = &parsed.inbound[0];
/// assert_eq!(msg.channel, ChannelKind::Sms);
/// assert_eq!(msg.sender, Address::phone("+447700900123"));
/// assert_eq!(msg.verification, Verification::CarrierAsserted);
/// assert_eq!(msg.content, Content::text("Where is order 5521?"));
/// ```
///
/// Errors: a malformed body, a missing `MessageSid` or `From`, a `From` that is not a phone
/// number, a `NumMedia` that is not 0–10 or names a missing `MediaUrl{N}`, a message with
/// neither text nor media.
pub fn parse_message(body: &[u8], endpoint: &EndpointId) -> Result<TwilioMessage> {
    let form = Form::parse(body)?;
    message_from_form(&form, endpoint)
}

fn message_from_form(form: &Form, endpoint: &EndpointId) -> Result<TwilioMessage> {
    let message_sid = check_sid("MessageSid", form.require("MessageSid")?.trim(), &["SM", "MM"])?;
    let (channel, sender) = messaging_address("From", form.require("From")?)?;
    let to = form.get("To").unwrap_or_default().trim().to_owned();
    let text = form.get("Body").unwrap_or_default();
    let text = (!text.trim().is_empty()).then(|| text.to_owned());

    let num_media: usize = match form.get_nonempty("NumMedia") {
        None => 0,
        Some(n) => n
            .trim()
            .parse()
            .ok()
            .filter(|n| *n <= MAX_MEDIA)
            .ok_or_else(|| Error::invalid("NumMedia", format!("{n:?} is not a count from 0 to {MAX_MEDIA}")))?,
    };
    let mut items = Vec::new();
    if let (Some(lat), Some(lon)) = (form.get_nonempty("Latitude"), form.get_nonempty("Longitude")) {
        // Degrees in range, as the engine requires of a location.
        let coordinate =
            |field: &'static str, v: &str, limit: f64| {
                v.trim().parse::<f64>().ok().filter(|f| f.abs() <= limit).ok_or_else(|| {
                    Error::invalid(field, format!("is not a number of degrees from -{limit} to {limit}"))
                })
            };
        items.push(Content::Location {
            latitude: coordinate("Latitude", lat, 90.0)?,
            longitude: coordinate("Longitude", lon, 180.0)?,
            name: form.get_nonempty("Label").map(str::to_owned),
            address: form.get_nonempty("Address").map(str::to_owned),
        });
    }
    let mut caption = text.clone();
    for i in 0..num_media {
        let url = form
            .get_nonempty(&format!("MediaUrl{i}"))
            .ok_or_else(|| Error::invalid("MediaUrl", format!("NumMedia is {num_media} but MediaUrl{i} is missing")))?;
        let mime_type = form.get_nonempty(&format!("MediaContentType{i}")).map(|m| m.trim().to_owned());
        items.push(Content::Media {
            media: super::media_kind(mime_type.as_deref().unwrap_or("")),
            url: url.trim().to_owned(),
            mime_type,
            caption: caption.take(),
            filename: None,
        });
    }
    if num_media == 0
        && let Some(text) = text
    {
        items.push(Content::Text { body: text });
    }
    if items.is_empty() {
        return Err(Error::invalid("Body", "the message has no text, media or location"));
    }
    let sender_name = form.get("ProfileName").and_then(|n| super::display_name(n, 256));
    let inbound = items
        .into_iter()
        .enumerate()
        .map(|(i, content)| {
            let id = if i == 0 { message_sid.clone() } else { format!("{message_sid}#{i}") };
            let msg = InboundMessage::new(channel.clone(), endpoint.clone(), sender.clone(), id, content)
                .with_verification(Verification::CarrierAsserted);
            match &sender_name {
                Some(name) => msg.with_sender_name(name.clone()),
                None => msg,
            }
        })
        .collect();
    let opt_out = match form.get_nonempty("OptOutType").map(|t| t.trim().to_ascii_uppercase()).as_deref() {
        Some("STOP") => Some(OptOutType::Stop),
        Some("START") => Some(OptOutType::Start),
        Some("HELP") => Some(OptOutType::Help),
        _ => None,
    };
    Ok(TwilioMessage {
        message_sid,
        account_sid: optional_sid(form, "AccountSid", &["AC"])?,
        messaging_service_sid: optional_sid(form, "MessagingServiceSid", &["MG"])?,
        channel,
        to,
        num_segments: form.get_nonempty("NumSegments").and_then(|n| n.trim().parse().ok()),
        opt_out,
        inbound,
    })
}

/// Words for the Twilio error codes seen most often in status callbacks. Twilio asks not to
/// branch on its error texts; these only make a failure readable.
fn error_words(code: &str) -> Option<&'static str> {
    Some(match code {
        "30001" => "queue overflow",
        "30002" => "account suspended",
        "30003" => "unreachable destination handset",
        "30004" => "message blocked",
        "30005" => "unknown destination handset",
        "30006" => "landline or unreachable carrier",
        "30007" => "message filtered by the carrier",
        "30008" => "unknown error",
        "30009" => "missing segment",
        "30010" => "message price exceeds max price",
        "21610" => "the recipient has opted out",
        _ => return None,
    })
}

/// Maps a Twilio `MessageStatus` to a delivery state: `accepted`, `scheduled`, `queued` and
/// `sending` are pending; `sent`, `delivered`, `read` as named; `failed`, `undelivered` and
/// `canceled` are failures carrying `error_code`.
///
/// ```
/// use touchpoint::channels::twilio::message_status;
/// use touchpoint::model::DeliveryState;
/// assert_eq!(message_status("delivered", None).unwrap(), DeliveryState::Delivered);
/// let failed = message_status("undelivered", Some("30003")).unwrap();
/// assert!(matches!(failed, DeliveryState::Failed { code: Some(c), .. } if c == "30003"));
/// assert!(message_status("received", None).is_err()); // an incoming message, not a receipt
/// ```
pub fn message_status(status: &str, error_code: Option<&str>) -> Result<DeliveryState> {
    let status = status.trim();
    let failed = |what: &str| {
        let code = error_code.map(str::trim).filter(|c| !c.is_empty() && *c != "0");
        let reason = match code {
            Some(c) => match error_words(c) {
                Some(words) => format!("{what} (Twilio error {c}: {words})"),
                None => format!("{what} (Twilio error {c})"),
            },
            None => what.to_owned(),
        };
        DeliveryState::Failed { code: code.map(str::to_owned), reason }
    };
    Ok(match status {
        "accepted" | "scheduled" | "queued" | "sending" => DeliveryState::Pending,
        "sent" => DeliveryState::Sent,
        // Some parts reached the handset, not all of them: not yet delivered as a whole.
        "partially_delivered" => DeliveryState::Sent,
        "delivered" => DeliveryState::Delivered,
        "read" => DeliveryState::Read,
        "failed" => failed("Twilio could not send the message"),
        "undelivered" => failed("the carrier could not deliver the message"),
        "canceled" => failed("the scheduled message was canceled"),
        "receiving" | "received" => {
            return Err(Error::invalid(
                "MessageStatus",
                format!("{status:?} is the status of a message we received, not a receipt for one we sent"),
            ));
        }
        other => {
            let shown: String = other.chars().take(32).collect();
            return Err(Error::invalid("MessageStatus", format!("unknown status {shown:?}")));
        }
    })
}

/// Parses a status callback for a message we sent into a receipt keyed by its `MessageSid`;
/// the recipient is the callback's `To`.
///
/// ```
/// use touchpoint::channels::twilio::parse_status;
/// use touchpoint::model::{Address, ChannelKind, DeliveryState};
/// let body = b"MessageSid=SM00000000000000000000000000000009&MessageStatus=undelivered\
///              &ErrorCode=30003&From=%2B15550001111&To=%2B15550002222";
/// let receipt = parse_status(body).unwrap();
/// assert_eq!(receipt.channel, ChannelKind::Sms);
/// assert_eq!(receipt.external_id, "SM00000000000000000000000000000009");
/// assert_eq!(receipt.recipient, Some(Address::phone("+15550002222")));
/// assert!(matches!(receipt.state, DeliveryState::Failed { code: Some(ref c), .. } if c == "30003"));
/// ```
pub fn parse_status(body: &[u8]) -> Result<DeliveryReceipt> {
    status_from_form(&Form::parse(body)?)
}

fn status_from_form(form: &Form) -> Result<DeliveryReceipt> {
    let sid = check_sid("MessageSid", form.require("MessageSid")?.trim(), &["SM", "MM"])?;
    let status = form.get_nonempty("MessageStatus").or_else(|| form.get_nonempty("SmsStatus"));
    let status = status.ok_or_else(|| Error::invalid("MessageStatus", "is missing or empty"))?;
    let state = message_status(status, form.get("ErrorCode"))?;
    let (channel, recipient) = match form.get_nonempty("To") {
        Some(to) => {
            let (channel, address) = messaging_address("To", to)?;
            (channel, Some(address))
        }
        None => (ChannelKind::Sms, None),
    };
    Ok(DeliveryReceipt { channel, external_id: sid, state, at: None, recipient, watermark: false })
}

/// A Programmable Messaging webhook: an incoming message or a status callback.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // parsed once per request, never stored
pub enum MessagingWebhook {
    /// A customer's message.
    Message(TwilioMessage),
    /// A receipt for a message we sent.
    Status(DeliveryReceipt),
}

/// Parses a webhook that may be either an incoming message or a status callback: a
/// `MessageStatus` other than `received`/`receiving` makes it a status callback.
///
/// ```
/// use touchpoint::channels::twilio::{parse_messaging, MessagingWebhook};
/// use touchpoint::model::EndpointId;
/// let endpoint = EndpointId::new("sms-us").unwrap();
/// let status = b"MessageSid=SM00000000000000000000000000000009&MessageStatus=sent&To=%2B15550002222";
/// assert!(matches!(parse_messaging(status, &endpoint).unwrap(), MessagingWebhook::Status(_)));
/// ```
pub fn parse_messaging(body: &[u8], endpoint: &EndpointId) -> Result<MessagingWebhook> {
    let form = Form::parse(body)?;
    match form.get_nonempty("MessageStatus").or_else(|| form.get_nonempty("SmsStatus")).map(str::trim) {
        Some(s) if s != "received" && s != "receiving" => Ok(MessagingWebhook::Status(status_from_form(&form)?)),
        _ => Ok(MessagingWebhook::Message(message_from_form(&form, endpoint)?)),
    }
}

// ---------------------------------------------------------------------------------------------
// Voice
// ---------------------------------------------------------------------------------------------

/// The state of a call, as Twilio's `CallStatus` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallStatus {
    /// Waiting to be placed.
    Queued,
    /// Being placed.
    Initiated,
    /// Ringing.
    Ringing,
    /// Answered and running.
    InProgress,
    /// Ended normally.
    Completed,
    /// The callee was busy.
    Busy,
    /// Nobody answered.
    NoAnswer,
    /// Hung up while queued or ringing.
    Canceled,
    /// Could not be placed.
    Failed,
}

impl CallStatus {
    /// Twilio's spelling (`in-progress`, `no-answer`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Queued => "queued",
            CallStatus::Initiated => "initiated",
            CallStatus::Ringing => "ringing",
            CallStatus::InProgress => "in-progress",
            CallStatus::Completed => "completed",
            CallStatus::Busy => "busy",
            CallStatus::NoAnswer => "no-answer",
            CallStatus::Canceled => "canceled",
            CallStatus::Failed => "failed",
        }
    }

    /// Whether the call is over.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            CallStatus::Completed | CallStatus::Busy | CallStatus::NoAnswer | CallStatus::Canceled | CallStatus::Failed
        )
    }

    fn parse(raw: &str) -> Result<CallStatus> {
        Ok(match raw.trim() {
            "queued" => CallStatus::Queued,
            "initiated" => CallStatus::Initiated,
            "ringing" => CallStatus::Ringing,
            "in-progress" => CallStatus::InProgress,
            "completed" => CallStatus::Completed,
            "busy" => CallStatus::Busy,
            "no-answer" => CallStatus::NoAnswer,
            "canceled" => CallStatus::Canceled,
            "failed" => CallStatus::Failed,
            other => {
                let shown: String = other.chars().take(32).collect();
                return Err(Error::invalid("CallStatus", format!("unknown call status {shown:?}")));
            }
        })
    }
}

/// Who placed a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallDirection {
    /// The customer called us.
    Inbound,
    /// We called through the REST API.
    OutboundApi,
    /// A `<Dial>` leg we placed from another call.
    OutboundDial,
}

/// What the caller entered at a `<Gather>`: keypresses, speech, or both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IvrInput {
    /// DTMF keys pressed (`Digits`).
    pub digits: Option<String>,
    /// Speech recognised (`SpeechResult`).
    pub speech: Option<String>,
    /// Twilio's confidence in the speech result, 0.0–1.0 (`Confidence`).
    pub confidence: Option<f32>,
}

impl IvrInput {
    /// The input in words for an agent's timeline:
    /// `pressed 2; said "I want a refund" (confidence 0.91)`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(d) = &self.digits {
            parts.push(format!("pressed {d}"));
        }
        if let Some(s) = &self.speech {
            match self.confidence {
                Some(c) => parts.push(format!("said {s:?} (confidence {c:.2})")),
                None => parts.push(format!("said {s:?}")),
            }
        }
        parts.join("; ")
    }
}

/// A Twilio Voice request: the incoming-call request to the Voice URL, a `<Gather>` action
/// request, or a call status callback.
///
/// ```
/// use touchpoint::channels::twilio::{CallStatus, VoiceRequest};
/// use touchpoint::model::{Content, EndpointId};
/// let body = b"CallSid=CA00000000000000000000000000000001&From=%2B447700900123&To=%2B15550001111\
///              &CallStatus=in-progress&Direction=inbound&Digits=2&SpeechResult=I+want+a+refund&Confidence=0.91";
/// let call = VoiceRequest::parse(body).unwrap();
/// assert_eq!(call.status, CallStatus::InProgress);
/// let ivr = call.ivr().unwrap();
/// assert_eq!(ivr.digits.as_deref(), Some("2"));
/// let msg = call.to_inbound(&EndpointId::new("voice-us").unwrap()).unwrap();
/// assert_eq!(msg.thread.provider_thread_id.as_deref(), Some("CA00000000000000000000000000000001"));
/// assert!(matches!(msg.content, Content::System { ref event, .. } if event == "ivr.input"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VoiceRequest {
    /// Twilio's id of the call (`CA…`).
    pub call_sid: String,
    /// The call this leg belongs to, for `<Dial>` legs.
    pub parent_call_sid: Option<String>,
    /// The account (`AC…`).
    pub account_sid: Option<String>,
    /// The caller (`+…`, or `client:<name>` for Voice SDK clients).
    pub from: String,
    /// The callee.
    pub to: String,
    /// The call's state.
    pub status: CallStatus,
    /// Who placed the call (`inbound` when Twilio did not say).
    pub direction: CallDirection,
    /// Caller name from CNAM lookup, when enabled.
    pub caller_name: Option<String>,
    /// Call length in seconds, on the final status callback.
    pub duration_secs: Option<u32>,
    /// Keys pressed at a `<Gather>`.
    pub digits: Option<String>,
    /// Speech recognised at a `<Gather>`.
    pub speech_result: Option<String>,
    /// Confidence of the speech result, 0.0–1.0.
    pub confidence: Option<f32>,
    /// The recording a `<Record>` (voicemail) made, on its action request.
    pub recording: Option<CallRecording>,
}

/// A recording of the caller (`RecordingSid`, `RecordingUrl`, `RecordingDuration` on a
/// `<Record>` action request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecording {
    /// `RE…`.
    pub sid: String,
    /// Where Twilio serves it (fetching it needs the account's credentials).
    pub url: String,
    /// Its length in seconds, when given.
    pub duration_secs: Option<u32>,
}

impl VoiceRequest {
    /// Parses a Voice request body.
    ///
    /// Errors: a malformed body; a missing or malformed `CallSid`; a missing `From`/`To` or
    /// `CallStatus`; an unknown `CallStatus` or `Direction`; a `Confidence` outside 0–1; `Digits`
    /// other than `0-9 * #`.
    pub fn parse(body: &[u8]) -> Result<VoiceRequest> {
        let form = Form::parse(body)?;
        let call_sid = check_sid("CallSid", form.require("CallSid")?.trim(), &["CA"])?;
        let direction = match form.get_nonempty("Direction").map(str::trim) {
            None | Some("inbound") => CallDirection::Inbound,
            Some("outbound-api") => CallDirection::OutboundApi,
            Some("outbound-dial") => CallDirection::OutboundDial,
            Some(other) => {
                let shown: String = other.chars().take(32).collect();
                return Err(Error::invalid("Direction", format!("unknown call direction {shown:?}")));
            }
        };
        // `hangup`: the caller hung up instead of pressing a key (a `<Record>` action).
        let digits = form.get_nonempty("Digits").map(str::trim).filter(|d| *d != "hangup").map(str::to_owned);
        if let Some(d) = &digits
            && (d.len() > 64 || !d.bytes().all(|b| b.is_ascii_digit() || b == b'*' || b == b'#'))
        {
            return Err(Error::invalid("Digits", "must be at most 64 keys from 0-9, * and #"));
        }
        let confidence = match form.get_nonempty("Confidence") {
            None => None,
            Some(c) => Some(
                c.trim()
                    .parse::<f32>()
                    .ok()
                    .filter(|c| (0.0..=1.0).contains(c))
                    .ok_or_else(|| Error::invalid("Confidence", "must be a number from 0 to 1"))?,
            ),
        };
        Ok(VoiceRequest {
            call_sid,
            parent_call_sid: optional_sid(&form, "ParentCallSid", &["CA"])?,
            account_sid: optional_sid(&form, "AccountSid", &["AC"])?,
            from: form.require("From")?.trim().to_owned(),
            to: form.require("To")?.trim().to_owned(),
            status: CallStatus::parse(form.require("CallStatus")?)?,
            direction,
            caller_name: form.get("CallerName").and_then(|n| super::display_name(n, 256)),
            duration_secs: seconds(&form, "CallDuration")?,
            digits,
            speech_result: form.get_nonempty("SpeechResult").map(|s| s.trim().to_owned()),
            confidence,
            recording: recording(&form)?,
        })
    }

    /// The caller's `<Gather>` input, if the request carries any.
    pub fn ivr(&self) -> Option<IvrInput> {
        (self.digits.is_some() || self.speech_result.is_some()).then(|| IvrInput {
            digits: self.digits.clone(),
            speech: self.speech_result.clone(),
            confidence: self.speech_result.as_ref().and(self.confidence),
        })
    }

    /// The customer's side of the call: `To` on calls we placed through the API, else `From`
    /// (on a `<Dial>` leg Twilio passes the original caller as `From` unless the `<Dial>` set a
    /// `callerId`). A phone number is an [`Address::Phone`]; a Voice SDK `client:<name>` is a
    /// platform id scoped `twilio-client`; a SIP caller (`sip:ana@pbx.example.com`) one scoped
    /// `sip`. A withheld number (`anonymous`, `restricted`, or one of the placeholder numbers
    /// Twilio passes for them, such as `+266696687`, "ANONYMOUS" on a keypad) or SIP's
    /// anonymous caller (`sip:anonymous@anonymous.invalid`) names nobody:
    /// the caller is a platform id scoped `twilio-call` with the call's `CallSid`, so each such
    /// call is its own customer and no two strangers share a history.
    pub fn customer(&self) -> Result<Address> {
        let (field, raw) = match self.direction {
            CallDirection::OutboundApi => ("To", self.to.as_str()),
            CallDirection::Inbound | CallDirection::OutboundDial => ("From", self.from.as_str()),
        };
        let raw = raw.trim();
        if withheld_caller_id(raw) {
            let call = self.parent_call_sid.as_deref().unwrap_or(&self.call_sid);
            return Ok(Address::platform("twilio-call", call));
        }
        if let Some(uri) = raw.strip_prefix("sip:") {
            let uri = uri.split([';', '?']).next().unwrap_or("").trim();
            if uri.is_empty() || uri.len() > 256 || uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(Error::invalid(field, "a `sip:` address needs a user and host"));
            }
            return Ok(Address::platform("sip", uri.to_ascii_lowercase()));
        }
        match raw.strip_prefix("client:") {
            Some(name) if !name.trim().is_empty() => Ok(Address::platform("twilio-client", name.trim())),
            Some(_) => Err(Error::invalid(field, "a `client:` address needs a name")),
            None => phone(field, raw),
        }
    }

    /// The request as an inbound message on [`ChannelKind::Voice`] through our `endpoint`,
    /// threaded on the call (`ParentCallSid` for a `<Dial>` leg, else `CallSid`).
    ///
    /// The content is a [`Content::System`] event, because a call step is something that
    /// happened rather than text the customer wrote: `ivr.input` with
    /// [`IvrInput::describe`] as detail when the caller pressed keys or spoke (the structured
    /// input is [`VoiceRequest::ivr`]; a speech transcript is a recogniser's guess, so it is not
    /// passed off as the customer's own words), otherwise `call.<status>` (`call.ringing`,
    /// `call.completed`, …).
    ///
    /// A `<Record>` action request (voicemail) is the recording: [`Content::Media`] audio with
    /// the recording's URL.
    ///
    /// The external id is `{CallSid}:{CallStatus}` for call events, `{CallSid}:recording:{RecordingSid}`
    /// for a recording and `{CallSid}:input:{fingerprint of the input}` for IVR input. Twilio's
    /// requests carry no step of the flow, so the same keys pressed twice in one call (`1` at
    /// the main menu, `1` again at the next) give one id and the second is taken for a retry:
    /// an IVR with several menus names each one with [`VoiceRequest::to_inbound_at_step`].
    pub fn to_inbound(&self, endpoint: &EndpointId) -> Result<InboundMessage> {
        let step = match self.ivr() {
            _ if let Some(r) = &self.recording => format!("recording:{}", r.sid),
            Some(input) => format!(
                "input:{}",
                super::fingerprint(&[input.digits.as_deref().unwrap_or(""), input.speech.as_deref().unwrap_or("")])
            ),
            None => self.status.as_str().to_owned(),
        };
        self.to_inbound_at_step(endpoint, &step)
    }

    /// Like [`VoiceRequest::to_inbound`] with the external id `{CallSid}:{step}`: name the step
    /// of your IVR flow (`menu`, `billing-confirm`) to make each answer its own message.
    pub fn to_inbound_at_step(&self, endpoint: &EndpointId, step: &str) -> Result<InboundMessage> {
        if step.trim().is_empty() || step.len() > 128 || step.chars().any(char::is_control) {
            return Err(Error::invalid("step", "must be 1 to 128 bytes without control characters"));
        }
        let customer = self.customer()?;
        let content = match self.ivr() {
            // A voicemail: the recording itself, for the agent to listen to.
            _ if let Some(r) = &self.recording => Content::Media {
                media: MediaKind::Audio,
                url: r.url.clone(),
                mime_type: None,
                caption: Some(match r.duration_secs {
                    Some(d) => format!("voicemail, {d} s"),
                    None => "voicemail".to_owned(),
                }),
                filename: None,
            },
            Some(input) => Content::System { event: "ivr.input".into(), detail: Some(input.describe()) },
            None => {
                let event = format!("call.{}", self.status.as_str().replace('-', "_"));
                let detail = match (self.direction, self.status, self.duration_secs) {
                    (_, s, Some(d)) if s.is_final() => format!("call {} after {d} s", self.status.as_str()),
                    (CallDirection::Inbound, _, _) => format!("call from {} to {}", self.from, self.to),
                    _ => format!("call to {} from {}", self.to, self.from),
                };
                Content::System { event, detail: Some(detail) }
            }
        };
        let thread = ThreadHints {
            provider_thread_id: Some(self.parent_call_sid.clone().unwrap_or_else(|| self.call_sid.clone())),
            ..ThreadHints::default()
        };
        let msg = InboundMessage::new(
            ChannelKind::Voice,
            endpoint.clone(),
            customer,
            format!("{}:{}", self.call_sid, step.trim()),
            content,
        )
        .with_thread(thread);
        Ok(match &self.caller_name {
            Some(name) if self.direction == CallDirection::Inbound => msg.with_sender_name(name.clone()),
            _ => msg,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Outbound: Messages API form
// ---------------------------------------------------------------------------------------------

/// Who an outbound message is sent from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum SmsFrom {
    /// One of our numbers (`+15550001111`, `whatsapp:+15550001111`).
    Number(String),
    /// A Messaging Service (`MG…`), which picks the number.
    MessagingService(String),
}

/// An outbound message for Twilio's Messages API
/// (`POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded).
///
/// ```
/// use touchpoint::channels::twilio::{SmsFrom, SmsSend};
/// let send = SmsSend::new("+447700900123", SmsFrom::Number("+15550001111".into()))
///     .body("Your parcel is on its way")
///     .status_callback("https://hooks.example.com/twilio/status");
/// assert_eq!(
///     send.form_body().unwrap(),
///     "To=%2B447700900123&From=%2B15550001111&Body=Your+parcel+is+on+its+way\
///      &StatusCallback=https%3A%2F%2Fhooks.example.com%2Ftwilio%2Fstatus"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsSend {
    /// The customer (`+…` or `whatsapp:+…`).
    pub to: String,
    /// Our sender.
    pub from: SmsFrom,
    /// The text (at most [`MAX_BODY_CHARS`] characters).
    pub body: Option<String>,
    /// Public URLs of media to attach (MMS, WhatsApp), at most [`MAX_MEDIA`].
    pub media_urls: Vec<String>,
    /// Where Twilio posts status callbacks.
    pub status_callback: Option<String>,
}

fn check_url(field: &'static str, url: &str) -> Result<()> {
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= 2048
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        return Err(Error::invalid(field, "must be an http(s) URL of at most 2048 bytes without spaces"));
    }
    Ok(())
}

impl SmsSend {
    /// A message to `to` from `from`; add a body or media.
    pub fn new(to: impl Into<String>, from: SmsFrom) -> Self {
        SmsSend { to: to.into(), from, body: None, media_urls: Vec::new(), status_callback: None }
    }

    /// Sets the text.
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Attaches a medium by public URL.
    pub fn media(mut self, url: impl Into<String>) -> Self {
        self.media_urls.push(url.into());
        self
    }

    /// Asks for status callbacks at `url`.
    pub fn status_callback(mut self, url: impl Into<String>) -> Self {
        self.status_callback = Some(url.into());
        self
    }

    /// The form parameters, in Twilio's names, after checking them.
    ///
    /// Errors: `to` not a `+` number (optionally `whatsapp:`-prefixed); a WhatsApp message from a
    /// non-WhatsApp number or the reverse; a malformed Messaging Service id; no body and no
    /// media; a body over [`MAX_BODY_CHARS`]; more than [`MAX_MEDIA`] media; a URL that is not
    /// http(s).
    pub fn form_params(&self) -> Result<Vec<(&'static str, String)>> {
        let (channel, to) = outbound_address("To", &self.to)?;
        let mut params = vec![("To", to)];
        match &self.from {
            // An SMS may come from a short code (`72345`) or an alphanumeric sender id
            // (`ACME`, one-way, where the country allows it) as well as from a number.
            SmsFrom::Number(n) if channel == ChannelKind::Sms && sms_sender_id(n.trim()) => {
                params.push(("From", n.trim().to_owned()));
            }
            SmsFrom::Number(n) => {
                let (from_channel, from) = outbound_address("From", n)?;
                if from_channel != channel {
                    return Err(Error::invalid(
                        "From",
                        format!("a {from_channel} number cannot send to a {channel} address"),
                    ));
                }
                params.push(("From", from));
            }
            SmsFrom::MessagingService(sid) => {
                params.push(("MessagingServiceSid", check_sid("MessagingServiceSid", sid.trim(), &["MG"])?));
            }
        }
        let body = self.body.as_deref().filter(|b| !b.trim().is_empty());
        if body.is_none() && self.media_urls.is_empty() {
            return Err(Error::invalid("Body", "a message needs a body or media"));
        }
        if let Some(body) = body {
            let chars = body.chars().count();
            if chars > MAX_BODY_CHARS {
                return Err(Error::invalid(
                    "Body",
                    format!("{chars} characters, Twilio accepts at most {MAX_BODY_CHARS}"),
                ));
            }
            params.push(("Body", body.to_owned()));
        }
        if self.media_urls.len() > MAX_MEDIA {
            return Err(Error::invalid(
                "MediaUrl",
                format!("{} media, Twilio accepts at most {MAX_MEDIA}", self.media_urls.len()),
            ));
        }
        if channel == ChannelKind::WhatsApp && self.media_urls.len() > 1 {
            return Err(Error::invalid("MediaUrl", "a WhatsApp message carries one medium; Twilio ignores the others"));
        }
        for url in &self.media_urls {
            check_url("MediaUrl", url)?;
            params.push(("MediaUrl", url.clone()));
        }
        if let Some(url) = &self.status_callback {
            check_url("StatusCallback", url)?;
            params.push(("StatusCallback", url.clone()));
        }
        Ok(params)
    }

    /// The form body to POST.
    pub fn form_body(&self) -> Result<String> {
        let params = self.form_params()?;
        Ok(form::encode(params.iter().map(|(n, v)| (*n, v.as_str()))))
    }
}

// ---------------------------------------------------------------------------------------------
// TwiML
// ---------------------------------------------------------------------------------------------

const XML_HEADER: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

/// Appends `text` escaped for XML text and attribute values; characters XML 1.0 cannot carry
/// (control characters other than tab, newline and carriage return) are an error.
fn escape_into(out: &mut String, field: &'static str, text: &str) -> Result<()> {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}' => {
                return Err(Error::invalid(field, format!("contains {c:?}, which XML cannot carry")));
            }
            c => out.push(c),
        }
    }
    Ok(())
}

fn attr(out: &mut String, field: &'static str, name: &str, value: Option<&str>) -> Result<()> {
    if let Some(v) = value {
        let _ = write!(out, " {name}=\"");
        escape_into(out, field, v)?;
        out.push('"');
    }
    Ok(())
}

/// Text spoken to the caller (`<Say>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Say {
    /// What to say.
    pub text: String,
    /// Voice (`alice`, `Polly.Amy`, …).
    pub voice: Option<String>,
    /// Language (`en-GB`).
    pub language: Option<String>,
}

impl Say {
    /// Says `text` in the account's default voice.
    pub fn new(text: impl Into<String>) -> Self {
        Say { text: text.into(), voice: None, language: None }
    }

    /// Sets the voice.
    pub fn voice(mut self, voice: impl Into<String>) -> Self {
        self.voice = Some(voice.into());
        self
    }

    /// Sets the language.
    pub fn language(mut self, language: impl Into<String>) -> Self {
        self.language = Some(language.into());
        self
    }

    fn write(&self, out: &mut String) -> Result<()> {
        if self.text.trim().is_empty() {
            return Err(Error::invalid("Say", "has nothing to say"));
        }
        // Twilio's limits (warning 13521): 4096 characters for basic voices, 3000 for Polly.
        let limit = if self.voice.as_deref().is_some_and(|v| v.trim().starts_with("Polly.")) { 3000 } else { 4096 };
        if self.text.chars().count() > limit {
            return Err(Error::invalid("Say", format!("more than {limit} characters, Twilio's limit for this voice")));
        }
        out.push_str("<Say");
        attr(out, "Say.voice", "voice", self.voice.as_deref())?;
        attr(out, "Say.language", "language", self.language.as_deref())?;
        out.push('>');
        escape_into(out, "Say", &self.text)?;
        out.push_str("</Say>");
        Ok(())
    }
}

/// What `<Gather>` listens for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GatherInput {
    /// Keypresses (Twilio's default).
    Dtmf,
    /// Speech.
    Speech,
    /// Either.
    DtmfSpeech,
}

/// Collects keypresses or speech, then requests `action` with `Digits` / `SpeechResult`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gather {
    /// What to listen for.
    pub input: GatherInput,
    /// Where Twilio sends the result (default: the current document).
    pub action: Option<String>,
    /// Seconds of silence before giving up (Twilio's default 5).
    pub timeout: Option<u32>,
    /// Stop after this many digits.
    pub num_digits: Option<u32>,
    /// Key that ends input (Twilio's default `#`; empty: none).
    pub finish_on_key: Option<String>,
    /// Speech language (`en-GB`).
    pub language: Option<String>,
    /// Prompts said while listening.
    pub prompts: Vec<Say>,
}

impl Gather {
    /// A gather of `input` with Twilio's defaults.
    pub fn new(input: GatherInput) -> Self {
        Gather {
            input,
            action: None,
            timeout: None,
            num_digits: None,
            finish_on_key: None,
            language: None,
            prompts: Vec::new(),
        }
    }

    /// Sets the action URL.
    pub fn action(mut self, url: impl Into<String>) -> Self {
        self.action = Some(url.into());
        self
    }

    /// Sets the timeout in seconds.
    pub fn timeout(mut self, secs: u32) -> Self {
        self.timeout = Some(secs);
        self
    }

    /// Stops after `n` digits.
    pub fn num_digits(mut self, n: u32) -> Self {
        self.num_digits = Some(n);
        self
    }

    /// Sets the key that ends input.
    pub fn finish_on_key(mut self, key: impl Into<String>) -> Self {
        self.finish_on_key = Some(key.into());
        self
    }

    /// Sets the speech language.
    pub fn language(mut self, language: impl Into<String>) -> Self {
        self.language = Some(language.into());
        self
    }

    /// Adds a prompt said while listening.
    pub fn say(mut self, say: Say) -> Self {
        self.prompts.push(say);
        self
    }

    fn write(&self, out: &mut String) -> Result<()> {
        if self.timeout.is_some_and(|t| t == 0 || t > 600) {
            return Err(Error::invalid("Gather.timeout", "must be 1 to 600 seconds"));
        }
        if self.num_digits == Some(0) {
            return Err(Error::invalid("Gather.numDigits", "must be at least 1"));
        }
        if let Some(k) = &self.finish_on_key
            && !(k.is_empty() || k.len() == 1 && k.bytes().all(|b| b.is_ascii_digit() || b == b'*' || b == b'#'))
        {
            return Err(Error::invalid("Gather.finishOnKey", "must be one of 0-9, * and #, or empty"));
        }
        if let Some(url) = &self.action
            && url.trim().is_empty()
        {
            return Err(Error::invalid("Gather.action", "must not be empty"));
        }
        let input = match self.input {
            GatherInput::Dtmf => "dtmf",
            GatherInput::Speech => "speech",
            GatherInput::DtmfSpeech => "dtmf speech",
        };
        out.push_str("<Gather");
        attr(out, "Gather.input", "input", Some(input))?;
        attr(out, "Gather.action", "action", self.action.as_deref())?;
        attr(out, "Gather.timeout", "timeout", self.timeout.map(|t| t.to_string()).as_deref())?;
        attr(out, "Gather.numDigits", "numDigits", self.num_digits.map(|n| n.to_string()).as_deref())?;
        attr(out, "Gather.finishOnKey", "finishOnKey", self.finish_on_key.as_deref())?;
        attr(out, "Gather.language", "language", self.language.as_deref())?;
        if self.prompts.is_empty() {
            out.push_str("/>");
            return Ok(());
        }
        out.push('>');
        for say in &self.prompts {
            say.write(out)?;
        }
        out.push_str("</Gather>");
        Ok(())
    }
}

/// Connects the caller to a number (`<Dial>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dial {
    /// The number to call (`+…`).
    pub number: String,
    /// The caller id shown to the callee (one of our numbers).
    pub caller_id: Option<String>,
    /// Seconds to ring before giving up.
    pub timeout: Option<u32>,
    /// Where Twilio reports the outcome of the dial.
    pub action: Option<String>,
}

impl Dial {
    /// Dials `number`.
    pub fn number(number: impl Into<String>) -> Self {
        Dial { number: number.into(), caller_id: None, timeout: None, action: None }
    }

    /// Sets the caller id.
    pub fn caller_id(mut self, caller_id: impl Into<String>) -> Self {
        self.caller_id = Some(caller_id.into());
        self
    }

    /// Sets the ring timeout in seconds.
    pub fn timeout(mut self, secs: u32) -> Self {
        self.timeout = Some(secs);
        self
    }

    /// Sets the action URL.
    pub fn action(mut self, url: impl Into<String>) -> Self {
        self.action = Some(url.into());
        self
    }

    fn write(&self, out: &mut String) -> Result<()> {
        let number = e164("Dial.number", &self.number)?;
        let caller_id = self.caller_id.as_deref().map(|id| e164("Dial.callerId", id)).transpose()?;
        if self.timeout.is_some_and(|t| t == 0 || t > 600) {
            return Err(Error::invalid("Dial.timeout", "must be 1 to 600 seconds"));
        }
        out.push_str("<Dial");
        attr(out, "Dial.callerId", "callerId", caller_id.as_deref())?;
        attr(out, "Dial.timeout", "timeout", self.timeout.map(|t| t.to_string()).as_deref())?;
        attr(out, "Dial.action", "action", self.action.as_deref())?;
        out.push_str("><Number>");
        escape_into(out, "Dial.number", &number)?;
        out.push_str("</Number></Dial>");
        Ok(())
    }
}

/// One TwiML voice verb.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verb", rename_all = "snake_case")]
pub enum Verb {
    /// `<Say>`.
    Say(Say),
    /// `<Gather>`.
    Gather(Gather),
    /// `<Dial>`.
    Dial(Dial),
    /// `<Pause length="…"/>`.
    Pause {
        /// Seconds (1–600).
        seconds: u32,
    },
    /// `<Hangup/>`.
    Hangup,
}

/// A TwiML `<Response>` for a Voice request.
///
/// ```
/// use touchpoint::channels::twilio::{Dial, Gather, GatherInput, Say, VoiceResponse};
/// let xml = VoiceResponse::new()
///     .say(Say::new("Thanks for calling Acme & Co."))
///     .gather(Gather::new(GatherInput::Dtmf).num_digits(1).action("/ivr/menu").say(Say::new("Press 1 for billing")))
///     .dial(Dial::number("+15550003333"))
///     .to_xml()
///     .unwrap();
/// assert_eq!(
///     xml,
///     "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Say>Thanks for calling Acme &amp; Co.</Say>\
///      <Gather input=\"dtmf\" action=\"/ivr/menu\" numDigits=\"1\"><Say>Press 1 for billing</Say></Gather>\
///      <Dial><Number>+15550003333</Number></Dial></Response>"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VoiceResponse {
    /// The verbs, in order.
    pub verbs: Vec<Verb>,
}

impl VoiceResponse {
    /// An empty response (Twilio hangs up when it reaches the end).
    pub fn new() -> Self {
        VoiceResponse::default()
    }

    /// Adds `<Say>`.
    pub fn say(mut self, say: Say) -> Self {
        self.verbs.push(Verb::Say(say));
        self
    }

    /// Adds `<Gather>`.
    pub fn gather(mut self, gather: Gather) -> Self {
        self.verbs.push(Verb::Gather(gather));
        self
    }

    /// Adds `<Dial>`.
    pub fn dial(mut self, dial: Dial) -> Self {
        self.verbs.push(Verb::Dial(dial));
        self
    }

    /// Adds `<Pause>`.
    pub fn pause(mut self, seconds: u32) -> Self {
        self.verbs.push(Verb::Pause { seconds });
        self
    }

    /// Adds `<Hangup/>`.
    pub fn hangup(mut self) -> Self {
        self.verbs.push(Verb::Hangup);
        self
    }

    /// The TwiML document, after checking every verb (non-empty `<Say>` text, `+` numbers to
    /// dial, timeouts of 1–600 s, characters XML can carry).
    pub fn to_xml(&self) -> Result<String> {
        let mut out = String::with_capacity(128);
        out.push_str(XML_HEADER);
        if self.verbs.is_empty() {
            out.push_str("<Response/>");
            return Ok(out);
        }
        out.push_str("<Response>");
        for verb in &self.verbs {
            match verb {
                Verb::Say(s) => s.write(&mut out)?,
                Verb::Gather(g) => g.write(&mut out)?,
                Verb::Dial(d) => d.write(&mut out)?,
                Verb::Pause { seconds } => {
                    if *seconds == 0 || *seconds > 600 {
                        return Err(Error::invalid("Pause.length", "must be 1 to 600 seconds"));
                    }
                    let _ = write!(out, "<Pause length=\"{seconds}\"/>");
                }
                Verb::Hangup => out.push_str("<Hangup/>"),
            }
        }
        out.push_str("</Response>");
        Ok(out)
    }
}

/// The TwiML answer to an incoming message: a reply `text`, or an empty `<Response/>` that
/// acknowledges without replying.
///
/// ```
/// use touchpoint::channels::twilio::messaging_reply;
/// assert_eq!(messaging_reply(None).unwrap(), "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>");
/// assert_eq!(
///     messaging_reply(Some("Got it <3")).unwrap(),
///     "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>Got it &lt;3</Message></Response>"
/// );
/// ```
pub fn messaging_reply(text: Option<&str>) -> Result<String> {
    let mut out = String::from(XML_HEADER);
    match text {
        None => out.push_str("<Response/>"),
        Some(text) => {
            if text.trim().is_empty() {
                return Err(Error::invalid("Message", "a reply needs text; pass None to acknowledge only"));
            }
            let chars = text.chars().count();
            if chars > MAX_BODY_CHARS {
                return Err(Error::invalid(
                    "Message",
                    format!("{chars} characters, Twilio accepts at most {MAX_BODY_CHARS}"),
                ));
            }
            out.push_str("<Response><Message>");
            escape_into(&mut out, "Message", text)?;
            out.push_str("</Message></Response>");
        }
    }
    Ok(out)
}
