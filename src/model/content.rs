//! Channel-neutral message content.

use serde::{Deserialize, Serialize};

/// What a message says, independent of the channel that carries it.
///
/// Channels render it to the richest form they support; the model keeps the neutral form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Content {
    /// Plain text.
    Text {
        /// The text.
        body: String,
    },
    /// An image, video, audio clip, document or sticker.
    Media {
        /// What kind of media.
        media: MediaKind,
        /// Where to fetch it.
        url: String,
        /// Its MIME type, if known.
        mime_type: Option<String>,
        /// Caption shown with it.
        caption: Option<String>,
        /// File name, for documents.
        filename: Option<String>,
    },
    /// A place.
    Location {
        /// Latitude in degrees (−90..=90).
        latitude: f64,
        /// Longitude in degrees (−180..=180).
        longitude: f64,
        /// Name of the place.
        name: Option<String>,
        /// Street address.
        address: Option<String>,
    },
    /// A question with options to pick from (quick replies, buttons, lists), or the customer's
    /// pick when `selected` is set.
    Choices {
        /// The question.
        body: String,
        /// The options.
        options: Vec<ChoiceOption>,
        /// The id of the option the customer picked (for inbound replies).
        selected: Option<String>,
    },
    /// A pre-approved template (required outside reply windows on WhatsApp).
    Template {
        /// Template name as registered with the provider.
        name: String,
        /// Template language (BCP 47).
        language: String,
        /// Positional parameters.
        parameters: Vec<String>,
    },
    /// A contact card.
    Contact(ContactCard),
    /// Something that happened rather than something said (call started, bot handed over, …).
    System {
        /// Machine-readable event name.
        event: String,
        /// Human-readable detail.
        detail: Option<String>,
    },
}

/// Kinds of media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    /// A picture.
    Image,
    /// A video.
    Video,
    /// A sound recording or voice note.
    Audio,
    /// A document or other file.
    Document,
    /// A sticker.
    Sticker,
}

/// One option of a [`Content::Choices`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChoiceOption {
    /// Machine id (postback payload).
    pub id: String,
    /// Text shown.
    pub title: String,
    /// Secondary text, where the channel shows it.
    pub description: Option<String>,
}

/// A shared contact.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ContactCard {
    /// Full name.
    pub name: String,
    /// Phone numbers.
    pub phones: Vec<String>,
    /// Email addresses.
    pub emails: Vec<String>,
    /// Company.
    pub organization: Option<String>,
}

/// Size limits content is checked against before anything is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentLimits {
    /// Longest text field in bytes.
    pub max_text_bytes: usize,
    /// Most options in a choice.
    pub max_options: usize,
    /// Most template parameters.
    pub max_parameters: usize,
}

impl Default for ContentLimits {
    fn default() -> Self {
        ContentLimits { max_text_bytes: 64 * 1024, max_options: 100, max_parameters: 100 }
    }
}

fn check_text(field: &'static str, value: &str, limits: &ContentLimits) -> crate::Result<()> {
    if value.len() > limits.max_text_bytes {
        return Err(crate::Error::invalid(
            field,
            format!("is {} bytes long, the limit is {}", value.len(), limits.max_text_bytes),
        ));
    }
    Ok(())
}

fn check_required(field: &'static str, value: &str, limits: &ContentLimits) -> crate::Result<()> {
    if value.trim().is_empty() {
        return Err(crate::Error::invalid(field, "must not be empty"));
    }
    check_text(field, value, limits)
}

impl Content {
    /// Plain text content.
    pub fn text(body: impl Into<String>) -> Self {
        Content::Text { body: body.into() }
    }

    /// Checks the content against `limits`: required text present, nothing oversize,
    /// coordinates in range.
    pub fn validate(&self, limits: &ContentLimits) -> crate::Result<()> {
        let opt = |field, v: &Option<String>| v.as_deref().map_or(Ok(()), |v| check_text(field, v, limits));
        match self {
            Content::Text { body } => check_required("content.body", body, limits),
            Content::Media { url, mime_type, caption, filename, .. } => {
                check_required("content.url", url, limits)?;
                opt("content.mime_type", mime_type)?;
                opt("content.caption", caption)?;
                opt("content.filename", filename)
            }
            Content::Location { latitude, longitude, name, address } => {
                if !(-90.0..=90.0).contains(latitude) {
                    return Err(crate::Error::invalid("content.latitude", format!("{latitude} is outside -90..=90")));
                }
                if !(-180.0..=180.0).contains(longitude) {
                    return Err(crate::Error::invalid(
                        "content.longitude",
                        format!("{longitude} is outside -180..=180"),
                    ));
                }
                opt("content.name", name)?;
                opt("content.address", address)
            }
            Content::Choices { body, options, selected } => {
                check_required("content.body", body, limits)?;
                if options.is_empty() {
                    return Err(crate::Error::invalid("content.options", "a choice needs at least one option"));
                }
                if options.len() > limits.max_options {
                    return Err(crate::Error::invalid(
                        "content.options",
                        format!("{} options, the limit is {}", options.len(), limits.max_options),
                    ));
                }
                for o in options {
                    check_required("content.options.id", &o.id, limits)?;
                    check_required("content.options.title", &o.title, limits)?;
                    opt("content.options.description", &o.description)?;
                }
                opt("content.selected", selected)
            }
            Content::Template { name, language, parameters } => {
                check_required("content.name", name, limits)?;
                check_required("content.language", language, limits)?;
                if parameters.len() > limits.max_parameters {
                    return Err(crate::Error::invalid(
                        "content.parameters",
                        format!("{} parameters, the limit is {}", parameters.len(), limits.max_parameters),
                    ));
                }
                parameters.iter().try_for_each(|p| check_text("content.parameters", p, limits))
            }
            Content::Contact(card) => {
                check_required("content.name", &card.name, limits)?;
                card.phones.iter().chain(&card.emails).try_for_each(|p| check_text("content.contact", p, limits))?;
                opt("content.organization", &card.organization)
            }
            Content::System { event, detail } => {
                check_required("content.event", event, limits)?;
                opt("content.detail", detail)
            }
        }
    }

    /// A one-line text rendering for timelines, notifications and channels that only show text.
    pub fn summary(&self) -> String {
        match self {
            Content::Text { body } => body.clone(),
            Content::Media { media, caption, filename, .. } => {
                let label = caption.as_deref().or(filename.as_deref()).unwrap_or("");
                format!("[{media:?}] {label}").trim_end().to_owned()
            }
            Content::Location { latitude, longitude, name, .. } => match name {
                Some(n) => format!("[Location] {n} ({latitude:.5}, {longitude:.5})"),
                None => format!("[Location] {latitude:.5}, {longitude:.5}"),
            },
            Content::Choices { body, options, selected } => match selected {
                Some(id) => {
                    let title = options.iter().find(|o| &o.id == id).map_or(id.as_str(), |o| &o.title);
                    format!("{body} → {title}")
                }
                None => {
                    let titles: Vec<&str> = options.iter().map(|o| o.title.as_str()).collect();
                    format!("{body} [{}]", titles.join(" | "))
                }
            },
            Content::Template { name, .. } => format!("[Template] {name}"),
            Content::Contact(card) => format!("[Contact] {}", card.name),
            Content::System { event, detail } => match detail {
                Some(d) => format!("[{event}] {d}"),
                None => format!("[{event}]"),
            },
        }
    }
}
