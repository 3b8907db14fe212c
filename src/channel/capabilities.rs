//! What an endpoint can show and do, per channel, from the channel reference
//! (`channel-facts.md`: §1.6 WhatsApp, §2 SMS, §3 email, §4 Messenger and Instagram, §5 Telegram,
//! §6 web chat, §7 voice, §9 capability matrix).

use super::sms;
use crate::model::{ChannelKind, MediaKind};
use crate::{Error, Result};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// What a length limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LengthUnit {
    /// Unicode scalar values (what `str::chars` yields).
    Characters,
    /// UTF-16 code units (a character outside the Basic Multilingual Plane counts two).
    Utf16Units,
    /// UTF-8 bytes.
    Bytes,
    /// SMS parts (see [`sms`](super::sms)).
    SmsSegments,
}

/// A maximum length in some unit.
///
/// ```
/// use touchpoint::channel::Limit;
/// let emoji = "😀😀";
/// assert_eq!(Limit::characters(10).measure(emoji), 2);
/// assert_eq!(Limit::utf16_units(10).measure(emoji), 4);
/// assert_eq!(Limit::bytes(10).measure(emoji), 8);
/// assert_eq!(Limit::sms_segments(1).measure(emoji), 1);
/// assert!(!Limit::bytes(7).fits(emoji));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Limit {
    /// The largest allowed length.
    pub max: usize,
    /// What the length counts.
    pub unit: LengthUnit,
}

impl Limit {
    /// At most `max` characters.
    pub const fn characters(max: usize) -> Self {
        Limit { max, unit: LengthUnit::Characters }
    }
    /// At most `max` UTF-16 code units.
    pub const fn utf16_units(max: usize) -> Self {
        Limit { max, unit: LengthUnit::Utf16Units }
    }
    /// At most `max` UTF-8 bytes.
    pub const fn bytes(max: usize) -> Self {
        Limit { max, unit: LengthUnit::Bytes }
    }
    /// At most `max` SMS parts.
    pub const fn sms_segments(max: usize) -> Self {
        Limit { max, unit: LengthUnit::SmsSegments }
    }

    /// The length of `text` in this limit's unit.
    pub fn measure(&self, text: &str) -> usize {
        match self.unit {
            LengthUnit::Characters => text.chars().count(),
            LengthUnit::Utf16Units => text.encode_utf16().count(),
            LengthUnit::Bytes => text.len(),
            LengthUnit::SmsSegments => sms::count_segments(text),
        }
    }

    /// Whether `text` is within the limit.
    pub fn fits(&self, text: &str) -> bool {
        match self.unit {
            LengthUnit::Bytes => text.len() <= self.max,
            // Stop counting as soon as the limit is passed.
            LengthUnit::Characters => text.chars().nth(self.max).is_none(),
            _ => self.measure(text) <= self.max,
        }
    }

    pub(crate) fn check(&self, field: &'static str, text: &str) -> Result<()> {
        if self.fits(text) {
            return Ok(());
        }
        Err(Error::invalid(field, format!("is {} long, the limit is {}", self.describe(self.measure(text)), self.max)))
    }

    pub(crate) fn describe(&self, n: usize) -> String {
        let unit = match self.unit {
            LengthUnit::Characters => "characters",
            LengthUnit::Utf16Units => "UTF-16 units",
            LengthUnit::Bytes => "bytes",
            LengthUnit::SmsSegments => "SMS segments",
        };
        format!("{n} {unit}")
    }
}

/// One kind of media an endpoint can send, and how large it may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaSupport {
    /// The kind of media.
    pub kind: MediaKind,
    /// The largest file the provider accepts, in bytes (`None`: no documented limit).
    pub max_bytes: Option<u64>,
    /// Whether media of this kind carries a caption, where the channel has captions at all
    /// ([`Capabilities::media_captions`]); where not, a caption follows as text. WhatsApp
    /// captions images, videos and documents, not audio or stickers.
    #[serde(default = "captioned")]
    pub caption: bool,
}

fn captioned() -> bool {
    true
}

/// Limits of one interactive form of a choice: reply buttons, a list picker or quick replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChoiceLimits {
    /// Most options (buttons, rows, quick replies) in one message.
    pub max_options: usize,
    /// Limit of an option's title (`None`: no limit).
    pub title: Option<Limit>,
    /// Limit of an option's id (the postback payload).
    pub id: Option<Limit>,
    /// Whether an option's description is shown.
    pub descriptions: bool,
    /// Limit of an option's description, when shown.
    pub description: Option<Limit>,
    /// Limit of the question text (`None`: the channel's text limit applies).
    pub body: Option<Limit>,
    /// Limit of the label of the button that opens the choice (list pickers).
    pub label: Option<Limit>,
    /// Whether titles must differ from each other.
    pub unique_titles: bool,
}

impl ChoiceLimits {
    /// At most `max_options` options, titles of at most `title_chars` characters, nothing else
    /// limited.
    pub const fn new(max_options: usize, title_chars: usize) -> Self {
        ChoiceLimits {
            max_options,
            title: Some(Limit::characters(title_chars)),
            id: None,
            descriptions: false,
            description: None,
            body: None,
            label: None,
            unique_titles: false,
        }
    }
}

/// How long after the customer's last message free-form replies are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyWindowRule {
    /// The standard window (WhatsApp, Messenger, Instagram: 24 hours).
    #[serde(with = "secs")]
    pub window: Duration,
    /// A longer window for replies written by a human agent (Messenger and Instagram
    /// `HUMAN_AGENT` tag: 7 days), if the channel has one.
    #[serde(with = "opt_secs")]
    pub human_agent_extension: Option<Duration>,
}

/// Where a reply stands against a [`ReplyWindowRule`] at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum WindowStatus {
    /// The channel has no reply window (or one too long to ever close): free-form messages are
    /// always allowed.
    NoWindow,
    /// Free-form replies are allowed until `closes_at`.
    Open {
        /// When the window closes.
        closes_at: DateTime<Utc>,
    },
    /// Only a human agent may reply (with the channel's human-agent tag) until `closes_at`.
    HumanAgentOnly {
        /// When the extension closes.
        closes_at: DateTime<Utc>,
    },
    /// Only a template (or another channel) can reach the customer.
    Closed {
        /// When the last window closed (`None`: the customer never wrote on this endpoint).
        closed_at: Option<DateTime<Utc>>,
    },
}

impl ReplyWindowRule {
    /// A window of `window` without human-agent extension.
    pub const fn new(window: Duration) -> Self {
        ReplyWindowRule { window, human_agent_extension: None }
    }

    /// The status at `now` when the customer last wrote at `last_inbound_at`. A window includes
    /// its last instant (a reply exactly 24 h after the customer's message is still allowed),
    /// as the engine's own check does.
    ///
    /// ```
    /// use chrono::{Duration, TimeZone, Utc};
    /// use touchpoint::channel::{Capabilities, WindowStatus};
    /// let last = Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap();
    /// let rule = Capabilities::messenger().reply_window.unwrap();
    /// assert!(matches!(rule.status(Some(last), last + Duration::hours(23)), WindowStatus::Open { .. }));
    /// assert!(matches!(rule.status(Some(last), last + Duration::days(3)), WindowStatus::HumanAgentOnly { .. }));
    /// assert!(matches!(rule.status(Some(last), last + Duration::days(8)), WindowStatus::Closed { .. }));
    /// assert_eq!(rule.status(None, last), WindowStatus::Closed { closed_at: None });
    /// ```
    ///
    /// A window too long to end within the dates `chrono` can represent never closes: the
    /// status is then [`WindowStatus::NoWindow`] (or, for such a human-agent extension,
    /// [`WindowStatus::HumanAgentOnly`] until [`DateTime::<Utc>::MAX_UTC`]).
    pub fn status(&self, last_inbound_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> WindowStatus {
        let Some(last) = last_inbound_at else {
            return WindowStatus::Closed { closed_at: None };
        };
        let Some(closes_at) = last.checked_add_signed(self.window) else {
            return WindowStatus::NoWindow;
        };
        if now <= closes_at {
            return WindowStatus::Open { closes_at };
        }
        match self.human_agent_extension.map(|ext| last.checked_add_signed(ext)) {
            Some(Some(end)) if now > end => WindowStatus::Closed { closed_at: Some(end.max(closes_at)) },
            Some(end) => WindowStatus::HumanAgentOnly { closes_at: end.unwrap_or(DateTime::<Utc>::MAX_UTC) },
            None => WindowStatus::Closed { closed_at: Some(closes_at) },
        }
    }

    /// Whether a free-form reply is allowed at `now` by anyone (not only by a human agent).
    pub(crate) fn open(&self, last_inbound_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
        matches!(self.status(last_inbound_at, now), WindowStatus::NoWindow | WindowStatus::Open { .. })
    }
}

/// What one endpoint can show and do. Rendering ([`render`](super::render)) reads it to pick the
/// richest form of a message the endpoint supports; [`check`](Capabilities::check) verifies a
/// rendered part against it.
///
/// The constructors ([`whatsapp`](Capabilities::whatsapp), [`sms`](Capabilities::sms), …)
/// describe the real channels from the channel reference; adjust fields for your account
/// (`Capabilities` is `#[non_exhaustive]`: start from a constructor and change fields).
///
/// ```
/// use touchpoint::channel::{Capabilities, Limit};
/// let mut caps = Capabilities::sms();
/// assert_eq!(caps.text, Some(Limit::utf16_units(1600)));
/// caps.text = Some(Limit::sms_segments(3)); // cap the cost of one message
/// assert!(caps.buttons.is_none() && caps.reply_window.is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Capabilities {
    /// The channel.
    pub channel: ChannelKind,
    /// Longest text of one message (`None`: no limit). Longer text is split into several.
    pub text: Option<Limit>,
    /// The media kinds the endpoint sends, with size limits. Other kinds are sent as a link.
    pub media: Vec<MediaSupport>,
    /// Whether media can carry a caption (otherwise the caption follows as text).
    pub media_captions: bool,
    /// Limit of a caption (`None`: the text limit applies).
    pub caption: Option<Limit>,
    /// Reply buttons (WhatsApp: up to 3).
    pub buttons: Option<ChoiceLimits>,
    /// A list picker (WhatsApp: up to 10 rows).
    pub list: Option<ChoiceLimits>,
    /// Quick replies (Messenger, Instagram: up to 13).
    pub quick_replies: Option<ChoiceLimits>,
    /// Whether a location can be sent as a native pin.
    pub location: bool,
    /// Whether a contact card can be sent natively.
    pub contact_cards: bool,
    /// Whether pre-approved templates can be sent.
    pub templates: bool,
    /// Whether a typing indicator can be shown.
    pub typing: bool,
    /// Whether the channel reports that the customer read our messages.
    pub read_receipts: bool,
    /// Whether we can mark the customer's messages as read.
    pub mark_read: bool,
    /// Whether a sent message can be edited afterwards.
    pub edits: bool,
    /// Whether a sent message can be deleted afterwards.
    pub deletes: bool,
    /// The reply window, if the channel has one.
    pub reply_window: Option<ReplyWindowRule>,
}

const KB: u64 = 1024;
const MB: u64 = 1024 * 1024;

fn media(list: &[(MediaKind, Option<u64>)]) -> Vec<MediaSupport> {
    list.iter().map(|&(kind, max_bytes)| MediaSupport { kind, max_bytes, caption: true }).collect()
}

impl Capabilities {
    /// A channel that shows plain text of any length and nothing else: the starting point for a
    /// channel of your own.
    pub fn text_only(channel: ChannelKind) -> Self {
        Capabilities {
            channel,
            text: None,
            media: Vec::new(),
            media_captions: false,
            caption: None,
            buttons: None,
            list: None,
            quick_replies: None,
            location: false,
            contact_cards: false,
            templates: false,
            typing: false,
            read_receipts: false,
            mark_read: false,
            edits: false,
            deletes: false,
            reply_window: None,
        }
    }

    /// WhatsApp Cloud API (§1.6): text ≤ 4096 characters; up to 3 reply buttons (title ≤ 20,
    /// id ≤ 256, body ≤ 1024, unique titles); a list of up to 10 rows (row title ≤ 24,
    /// description ≤ 72, id ≤ 200, button label ≤ 20, body ≤ 1024 — the safe cap); image 5 MB,
    /// audio and video 16 MB, document 100 MB, sticker 500 KB (animated; static stickers are
    /// limited to 100 KB); captions ≤ 1024 characters (Meta's media caption limit, not in the
    /// reference — unverified); native location and contact cards;
    /// templates; typing indicator, read receipts and mark-as-read; a 24-hour reply window.
    pub fn whatsapp() -> Self {
        Capabilities {
            text: Some(Limit::characters(4096)),
            media: media(&[
                (MediaKind::Image, Some(5 * MB)),
                (MediaKind::Audio, Some(16 * MB)),
                (MediaKind::Video, Some(16 * MB)),
                (MediaKind::Document, Some(100 * MB)),
                (MediaKind::Sticker, Some(500 * KB)),
            ])
            .into_iter()
            .map(|m| MediaSupport { caption: !matches!(m.kind, MediaKind::Audio | MediaKind::Sticker), ..m })
            .collect(),
            media_captions: true,
            caption: Some(Limit::characters(1024)),
            buttons: Some(ChoiceLimits {
                id: Some(Limit::characters(256)),
                body: Some(Limit::characters(1024)),
                unique_titles: true,
                ..ChoiceLimits::new(3, 20)
            }),
            list: Some(ChoiceLimits {
                id: Some(Limit::characters(200)),
                descriptions: true,
                description: Some(Limit::characters(72)),
                body: Some(Limit::characters(1024)),
                label: Some(Limit::characters(20)),
                unique_titles: false,
                ..ChoiceLimits::new(10, 24)
            }),
            location: true,
            contact_cards: true,
            templates: true,
            typing: true,
            read_receipts: true,
            mark_read: true,
            reply_window: Some(ReplyWindowRule::new(Duration::hours(24))),
            ..Capabilities::text_only(ChannelKind::WhatsApp)
        }
    }

    /// Facebook Messenger (§4): text ≤ 2000 characters (widely cited, unverified); up to 13
    /// quick replies (title ≤ 20, payload ≤ 1000); image, video, audio and file attachments
    /// (attachments carry no caption); typing, read receipts (`message_reads` watermarks) and
    /// `mark_seen`; a 24-hour window extended to 7 days for human agents (`HUMAN_AGENT` tag).
    pub fn messenger() -> Self {
        Capabilities {
            text: Some(Limit::characters(2000)),
            media: media(&[
                (MediaKind::Image, None),
                (MediaKind::Video, None),
                (MediaKind::Audio, None),
                (MediaKind::Document, None),
            ]),
            quick_replies: Some(ChoiceLimits { id: Some(Limit::characters(1000)), ..ChoiceLimits::new(13, 20) }),
            typing: true,
            read_receipts: true,
            mark_read: true,
            reply_window: Some(ReplyWindowRule {
                window: Duration::hours(24),
                human_agent_extension: Some(Duration::days(7)),
            }),
            ..Capabilities::text_only(ChannelKind::Messenger)
        }
    }

    /// Instagram messaging (§4.4): text ≤ 1000 UTF-8 bytes; up to 13 quick replies (title ≤ 20,
    /// payload ≤ 1000); image 8 MB, audio, video and file 25 MB (no captions); typing, seen
    /// receipts and `mark_seen`; a 24-hour window extended to 7 days for human agents.
    pub fn instagram() -> Self {
        Capabilities {
            text: Some(Limit::bytes(1000)),
            media: media(&[
                (MediaKind::Image, Some(8 * MB)),
                (MediaKind::Video, Some(25 * MB)),
                (MediaKind::Audio, Some(25 * MB)),
                (MediaKind::Document, Some(25 * MB)),
            ]),
            quick_replies: Some(ChoiceLimits { id: Some(Limit::characters(1000)), ..ChoiceLimits::new(13, 20) }),
            typing: true,
            read_receipts: true,
            mark_read: true,
            reply_window: Some(ReplyWindowRule {
                window: Duration::hours(24),
                human_agent_extension: Some(Duration::days(7)),
            }),
            ..Capabilities::text_only(ChannelKind::Instagram)
        }
    }

    /// Telegram Bot API (§5.3): text ≤ 4096 UTF-16 units; captions ≤ 1024; an inline keyboard
    /// as buttons (`callback_data` ≤ 64 bytes; at most 100 buttons — the commonly cited Bot API
    /// cap, unverified; no documented title limit); photos, video, audio, documents and
    /// stickers (size limits not in the reference); native location; typing
    /// (`sendChatAction`); edits and deletes of our own messages; no read receipts; no reply
    /// window. Contact cards are sent as text (`sendContact` carries a single phone number).
    pub fn telegram() -> Self {
        Capabilities {
            text: Some(Limit::utf16_units(4096)),
            media: media(&[
                (MediaKind::Image, None),
                (MediaKind::Video, None),
                (MediaKind::Audio, None),
                (MediaKind::Document, None),
                (MediaKind::Sticker, None),
            ])
            .into_iter()
            // `sendSticker` takes no caption: it follows as text.
            .map(|m| MediaSupport { caption: m.kind != MediaKind::Sticker, ..m })
            .collect(),
            media_captions: true,
            caption: Some(Limit::utf16_units(1024)),
            buttons: Some(ChoiceLimits {
                max_options: 100,
                title: None,
                id: Some(Limit::bytes(64)),
                descriptions: false,
                description: None,
                body: None,
                label: None,
                unique_titles: false,
            }),
            location: true,
            typing: true,
            edits: true,
            deletes: true,
            ..Capabilities::text_only(ChannelKind::Telegram)
        }
    }

    /// SMS through Twilio (§2): text ≤ 1600 UTF-16 units, so an emoji counts twice, as in UCS-2
    /// (sent as up to 24 UCS-2 parts, 25 for emoji alone, which no part boundary splits; or 11
    /// GSM-7 parts, 22 if every character is from the
    /// GSM extension table like `€` — set [`text`](Capabilities::text) to
    /// [`Limit::sms_segments`] to cap the cost); no media (see [`mms`](Capabilities::mms)),
    /// buttons, typing or read receipts; no reply window.
    pub fn sms() -> Self {
        Capabilities { text: Some(Limit::utf16_units(1600)), ..Capabilities::text_only(ChannelKind::Sms) }
    }

    /// SMS with MMS media (US and Canada, §2.4): as [`sms`](Capabilities::sms) plus images up to
    /// 5 MB and other media up to 500 KB; the caption travels as the message body.
    pub fn mms() -> Self {
        Capabilities {
            media: media(&[
                (MediaKind::Image, Some(5 * MB)),
                (MediaKind::Video, Some(500 * KB)),
                (MediaKind::Audio, Some(500 * KB)),
                (MediaKind::Document, Some(500 * KB)),
            ]),
            media_captions: true,
            ..Capabilities::sms()
        }
    }

    /// Email (§3.6): no text limit; attachments of any kind with the caption as body (provider
    /// size caps unverified); no buttons, typing, read receipts, edits or window.
    pub fn email() -> Self {
        Capabilities {
            media: media(&[
                (MediaKind::Image, None),
                (MediaKind::Video, None),
                (MediaKind::Audio, None),
                (MediaKind::Document, None),
            ]),
            media_captions: true,
            ..Capabilities::text_only(ChannelKind::Email)
        }
    }

    /// The web-chat widget (§6; limits are the widget's own — these are touchpoint's defaults):
    /// text ≤ 10 000 characters; up to 5 buttons (title ≤ 40); a list of up to 25 rows
    /// (title ≤ 72, description ≤ 200); up to 10 quick replies (title ≤ 40); every media kind
    /// with captions; typing, last-seen receipts, mark-read, edits and deletes; no window.
    pub fn webchat() -> Self {
        Capabilities {
            text: Some(Limit::characters(10_000)),
            media: media(&[
                (MediaKind::Image, None),
                (MediaKind::Video, None),
                (MediaKind::Audio, None),
                (MediaKind::Document, None),
                (MediaKind::Sticker, None),
            ]),
            media_captions: true,
            buttons: Some(ChoiceLimits::new(5, 40)),
            list: Some(ChoiceLimits {
                descriptions: true,
                description: Some(Limit::characters(200)),
                ..ChoiceLimits::new(25, 72)
            }),
            quick_replies: Some(ChoiceLimits::new(10, 40)),
            typing: true,
            read_receipts: true,
            mark_read: true,
            edits: true,
            deletes: true,
            ..Capabilities::text_only(ChannelKind::WebChat)
        }
    }

    /// Voice (§7): text is spoken (no limit), audio is played; everything else is spoken as
    /// text — a choice becomes a numbered menu.
    pub fn voice() -> Self {
        Capabilities { media: media(&[(MediaKind::Audio, None)]), ..Capabilities::text_only(ChannelKind::Voice) }
    }

    /// The capabilities of a known channel (`None` for `InApp`, `Social` and custom channels).
    pub fn for_channel(channel: &ChannelKind) -> Option<Self> {
        Some(match channel {
            ChannelKind::WhatsApp => Self::whatsapp(),
            ChannelKind::Messenger => Self::messenger(),
            ChannelKind::Instagram => Self::instagram(),
            ChannelKind::Telegram => Self::telegram(),
            ChannelKind::Sms => Self::sms(),
            ChannelKind::Email => Self::email(),
            ChannelKind::WebChat => Self::webchat(),
            ChannelKind::Voice => Self::voice(),
            _ => return None,
        })
    }

    /// How `kind` media is supported, if at all.
    pub fn media_support(&self, kind: MediaKind) -> Option<&MediaSupport> {
        self.media.iter().find(|m| m.kind == kind)
    }

    /// Checks that a file of `size` bytes of `kind` can be sent.
    ///
    /// ```
    /// use touchpoint::channel::Capabilities;
    /// use touchpoint::model::MediaKind;
    /// let wa = Capabilities::whatsapp();
    /// assert!(wa.check_media_size(MediaKind::Image, 4 * 1024 * 1024).is_ok());
    /// let err = wa.check_media_size(MediaKind::Image, 6 * 1024 * 1024).unwrap_err();
    /// assert!(err.to_string().contains("5242880"));
    /// ```
    pub fn check_media_size(&self, kind: MediaKind, size: u64) -> Result<()> {
        let Some(support) = self.media_support(kind) else {
            return Err(Error::invalid("media", format!("{} does not send {kind:?} media", self.channel)));
        };
        match support.max_bytes {
            Some(max) if size > max => Err(Error::invalid(
                "media",
                format!("{kind:?} of {size} bytes is larger than the {} limit of {max} bytes", self.channel),
            )),
            _ => Ok(()),
        }
    }

    /// The window status at `now` for a customer who last wrote at `last_inbound_at`
    /// ([`WindowStatus::NoWindow`] for channels without a window).
    pub fn window_status(&self, last_inbound_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> WindowStatus {
        match &self.reply_window {
            Some(rule) => rule.status(last_inbound_at, now),
            None => WindowStatus::NoWindow,
        }
    }
}

mod secs {
    use chrono::Duration;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(d.num_seconds())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = i64::deserialize(d)?;
        Duration::try_seconds(secs).ok_or_else(|| serde::de::Error::custom("duration out of range"))
    }
}

mod opt_secs {
    use chrono::Duration;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.num_seconds()),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<i64>::deserialize(d)? {
            Some(secs) => {
                Duration::try_seconds(secs).map(Some).ok_or_else(|| serde::de::Error::custom("duration out of range"))
            }
            None => Ok(None),
        }
    }
}
