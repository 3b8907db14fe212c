//! Rendering channel-neutral [`Content`] to the richest form an endpoint supports.

use super::capabilities::{Capabilities, ChoiceLimits, Limit};
use super::text::split_text;
use crate::model::{ChannelKind, ChoiceOption, ContactCard, Content, ContentLimits, MediaKind};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// One provider message, as it is (to be) sent: serde data, so the host can store exactly what
/// the customer was shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RenderedPart {
    /// Plain text.
    Text {
        /// The text.
        body: String,
    },
    /// A media file.
    Media {
        /// What kind of media.
        media: MediaKind,
        /// Where the provider fetches it.
        url: String,
        /// Its MIME type, if known.
        mime_type: Option<String>,
        /// Caption shown with it.
        caption: Option<String>,
        /// File name, for documents.
        filename: Option<String>,
    },
    /// A question with reply buttons.
    Buttons {
        /// The question.
        body: String,
        /// The buttons (descriptions are not shown).
        buttons: Vec<ChoiceOption>,
    },
    /// A question with a list picker behind a button.
    List {
        /// The question.
        body: String,
        /// The label of the button that opens the list.
        button: String,
        /// The rows.
        rows: Vec<ChoiceOption>,
    },
    /// A question with quick replies.
    QuickReplies {
        /// The question.
        body: String,
        /// The quick replies (descriptions are not shown).
        replies: Vec<ChoiceOption>,
    },
    /// A native location pin.
    Location {
        /// Latitude in degrees.
        latitude: f64,
        /// Longitude in degrees.
        longitude: f64,
        /// Name of the place.
        name: Option<String>,
        /// Street address.
        address: Option<String>,
    },
    /// A native contact card.
    Contact(ContactCard),
    /// A pre-approved template.
    Template {
        /// Template name.
        name: String,
        /// Template language.
        language: String,
        /// Positional parameters.
        parameters: Vec<String>,
    },
    /// A provider payload supplied by the host ([`RenderOverrides`]), sent as is.
    Raw {
        /// The payload.
        payload: serde_json::Value,
    },
}

/// Provider payloads that replace rendering on given channels: the host's escape hatch for a
/// channel feature touchpoint does not model (a WhatsApp product list, a Messenger generic
/// template). The payload must be a JSON object; the channel kit sends it as is.
///
/// ```
/// use serde_json::json;
/// use touchpoint::channel::{Capabilities, RenderOverrides, RenderedPart, Renderer};
/// use touchpoint::model::{ChannelKind, Content};
/// let mut overrides = RenderOverrides::new();
/// overrides.insert(ChannelKind::WhatsApp, json!({"type": "interactive", "interactive": {"type": "product"}}));
/// let content = Content::text("Our bestseller");
/// let wa = Renderer::default().render_with(&content, &Capabilities::whatsapp(), &overrides).unwrap();
/// assert!(matches!(&wa[..], [RenderedPart::Raw { .. }]));
/// let sms = Renderer::default().render_with(&content, &Capabilities::sms(), &overrides).unwrap();
/// assert_eq!(sms, [RenderedPart::Text { body: "Our bestseller".into() }]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RenderOverrides(BTreeMap<ChannelKind, serde_json::Value>);

impl RenderOverrides {
    /// No overrides.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends `payload` instead of the rendered content on `channel`.
    pub fn insert(&mut self, channel: ChannelKind, payload: serde_json::Value) -> &mut Self {
        self.0.insert(channel, payload);
        self
    }

    /// The payload for `channel`, if any.
    pub fn get(&self, channel: &ChannelKind) -> Option<&serde_json::Value> {
        self.0.get(channel)
    }

    /// Whether there are no overrides.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Renders content for an endpoint. The settings are the words touchpoint has to add itself.
///
/// Degradation is predictable, never silent truncation:
///
/// * **Text** longer than the text limit is split ([`split_text`](super::split_text)).
/// * **Choices** take the first form whose limits all hold (option count, title, id and
///   description lengths, body length, unique titles where required): reply buttons → list
///   picker → quick replies → a numbered text menu (`1. Title — description`). Titles are never
///   shortened: an option that does not fit moves the whole choice to the next form. Buttons and
///   quick replies show titles only.
/// * **Media** of a supported kind is sent as media; a caption the endpoint cannot attach (no
///   captions, or too long) follows as text. Unsupported kinds become text: caption (or file
///   name) and the link.
/// * **Location** is a native pin where supported, else text: name, address and a map link.
/// * **Contact cards** are native where supported, else text: name, organisation, phones, emails.
/// * **Templates** are sent where supported; elsewhere rendering fails with
///   [`Error::InvalidInput`] saying the channel has no templates.
/// * **System** content and inbound answers (choices with `selected`) are not sent:
///   [`Error::InvalidInput`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Renderer {
    /// Label of the button that opens a list picker (default `Choose`).
    pub list_button: String,
    /// Map link for locations sent as text; `{lat}` and `{lon}` are replaced with the
    /// coordinates (default `https://maps.google.com/?q={lat},{lon}`).
    pub map_link: String,
}

impl Default for Renderer {
    fn default() -> Self {
        Renderer { list_button: "Choose".to_owned(), map_link: "https://maps.google.com/?q={lat},{lon}".to_owned() }
    }
}

/// Renders `content` for an endpoint with `capabilities`, with the default [`Renderer`].
///
/// ```
/// use touchpoint::channel::{render, Capabilities, RenderedPart};
/// use touchpoint::model::{ChoiceOption, Content};
/// let option = |id: &str, title: &str| ChoiceOption { id: id.into(), title: title.into(), description: None };
/// let content = Content::Choices {
///     body: "How can we help?".into(),
///     options: vec![option("track", "Track order"), option("return", "Return item"), option("agent", "Talk to us")],
///     selected: None,
/// };
/// let wa = render(&content, &Capabilities::whatsapp()).unwrap();
/// assert!(matches!(&wa[..], [RenderedPart::Buttons { buttons, .. }] if buttons.len() == 3));
/// let sms = render(&content, &Capabilities::sms()).unwrap();
/// assert_eq!(sms, [RenderedPart::Text {
///     body: "How can we help?\n\n1. Track order\n2. Return item\n3. Talk to us".into()
/// }]);
/// ```
pub fn render(content: &Content, capabilities: &Capabilities) -> Result<Vec<RenderedPart>> {
    Renderer::default().render(content, capabilities)
}

/// Structure only: rendering checks what it needs, sizes are the caller's limits.
const STRUCTURE_ONLY: ContentLimits =
    ContentLimits { max_text_bytes: usize::MAX, max_options: usize::MAX, max_parameters: usize::MAX };

impl Renderer {
    /// Renders `content` for an endpoint with `capabilities`.
    pub fn render(&self, content: &Content, capabilities: &Capabilities) -> Result<Vec<RenderedPart>> {
        self.render_with(content, capabilities, &RenderOverrides::default())
    }

    /// Renders `content`, unless `overrides` holds a payload for the endpoint's channel: then
    /// that payload is the one part.
    pub fn render_with(
        &self,
        content: &Content,
        capabilities: &Capabilities,
        overrides: &RenderOverrides,
    ) -> Result<Vec<RenderedPart>> {
        if let Some(payload) = overrides.get(&capabilities.channel) {
            if !payload.is_object() {
                return Err(Error::invalid(
                    "overrides",
                    format!("the {} override must be a JSON object", capabilities.channel),
                ));
            }
            return Ok(vec![RenderedPart::Raw { payload: payload.clone() }]);
        }
        content.validate(&STRUCTURE_ONLY)?;
        let caps = capabilities;
        match content {
            Content::Text { body } => text_parts(body, caps),
            Content::Media { media, url, mime_type, caption, filename } => {
                if caps.media_support(*media).is_none() {
                    let label = caption.as_deref().or(filename.as_deref());
                    let text = match label {
                        Some(l) if !l.trim().is_empty() => format!("{}\n{url}", l.trim()),
                        _ => url.clone(),
                    };
                    return text_parts(&text, caps);
                }
                let caption = caption.as_deref().map(str::trim).filter(|c| !c.is_empty());
                let captioned = caps.media_captions && caps.media_support(*media).is_some_and(|m| m.caption);
                let attachable =
                    caption.is_some_and(|c| captioned && caps.caption.or(caps.text).is_none_or(|limit| limit.fits(c)));
                let mut parts = vec![RenderedPart::Media {
                    media: *media,
                    url: url.clone(),
                    mime_type: mime_type.clone(),
                    caption: if attachable { caption.map(str::to_owned) } else { None },
                    filename: filename.clone(),
                }];
                if let (Some(c), false) = (caption, attachable) {
                    parts.extend(text_parts(c, caps)?);
                }
                Ok(parts)
            }
            Content::Location { latitude, longitude, name, address } => {
                if caps.location {
                    return Ok(vec![RenderedPart::Location {
                        latitude: *latitude,
                        longitude: *longitude,
                        name: name.clone(),
                        address: address.clone(),
                    }]);
                }
                let link =
                    self.map_link.replace("{lat}", &coordinate(*latitude)).replace("{lon}", &coordinate(*longitude));
                let lines: Vec<&str> = [name.as_deref(), address.as_deref(), Some(link.as_str())]
                    .into_iter()
                    .flatten()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect();
                text_parts(&lines.join("\n"), caps)
            }
            Content::Contact(card) => {
                if caps.contact_cards {
                    return Ok(vec![RenderedPart::Contact(card.clone())]);
                }
                let lines: Vec<&str> = std::iter::once(card.name.as_str())
                    .chain(card.organization.as_deref())
                    .chain(card.phones.iter().map(String::as_str))
                    .chain(card.emails.iter().map(String::as_str))
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect();
                text_parts(&lines.join("\n"), caps)
            }
            Content::Template { name, language, parameters } => {
                if !caps.templates {
                    return Err(Error::invalid(
                        "content",
                        format!(
                            "the {} channel has no templates; send the text itself or use a channel with templates",
                            caps.channel
                        ),
                    ));
                }
                Ok(vec![RenderedPart::Template {
                    name: name.clone(),
                    language: language.clone(),
                    parameters: parameters.clone(),
                }])
            }
            Content::Choices { body, options, selected } => {
                if selected.is_some() {
                    return Err(Error::invalid(
                        "content.selected",
                        "is the customer's answer; a choice to send leaves it empty",
                    ));
                }
                self.render_choices(body, options, caps)
            }
            Content::System { event, .. } => Err(Error::invalid(
                "content",
                format!("system event {event:?} is a record of what happened, not a message to send"),
            )),
        }
    }

    fn render_choices(&self, body: &str, options: &[ChoiceOption], caps: &Capabilities) -> Result<Vec<RenderedPart>> {
        if let Some(limits) = &caps.buttons
            && check_choice(limits, caps.text, body, options, None).is_ok()
        {
            return Ok(vec![RenderedPart::Buttons { body: body.to_owned(), buttons: titles_only(options) }]);
        }
        if let Some(limits) = &caps.list
            && check_choice(limits, caps.text, body, options, Some(&self.list_button)).is_ok()
        {
            let rows = if limits.descriptions { options.to_vec() } else { titles_only(options) };
            return Ok(vec![RenderedPart::List { body: body.to_owned(), button: self.list_button.clone(), rows }]);
        }
        if let Some(limits) = &caps.quick_replies
            && check_choice(limits, caps.text, body, options, None).is_ok()
        {
            return Ok(vec![RenderedPart::QuickReplies { body: body.to_owned(), replies: titles_only(options) }]);
        }
        let mut text = body.trim_end().to_owned();
        text.push('\n');
        for (i, o) in options.iter().enumerate() {
            text.push('\n');
            text.push_str(&format!("{}. {}", i + 1, o.title.trim()));
            if let Some(d) = o.description.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
                text.push_str(" — ");
                text.push_str(d);
            }
        }
        text_parts(&text, caps)
    }
}

fn titles_only(options: &[ChoiceOption]) -> Vec<ChoiceOption> {
    options.iter().map(|o| ChoiceOption { id: o.id.clone(), title: o.title.clone(), description: None }).collect()
}

/// A coordinate with at most 6 decimals (≈ 0.1 m), trailing zeros removed.
fn coordinate(x: f64) -> String {
    let s = format!("{:.6}", if x == 0.0 { 0.0 } else { x });
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".to_owned() } else { s.to_owned() }
}

fn text_parts(text: &str, caps: &Capabilities) -> Result<Vec<RenderedPart>> {
    Ok(split_text(text, caps.text)?.into_iter().map(|body| RenderedPart::Text { body }).collect())
}

fn check_choice(
    limits: &ChoiceLimits,
    text_limit: Option<Limit>,
    body: &str,
    options: &[ChoiceOption],
    label: Option<&str>,
) -> Result<()> {
    if body.trim().is_empty() {
        return Err(Error::invalid("part.body", "must not be empty"));
    }
    if let Some(limit) = limits.body.or(text_limit) {
        limit.check("part.body", body)?;
    }
    if options.is_empty() || options.len() > limits.max_options {
        return Err(Error::invalid(
            "part.options",
            format!("{} options, the limit is 1 to {}", options.len(), limits.max_options),
        ));
    }
    if let (Some(limit), Some(label)) = (limits.label, label) {
        limit.check("part.button", label)?;
    }
    let mut seen = HashSet::new();
    for o in options {
        if o.title.trim().is_empty() || o.id.is_empty() {
            return Err(Error::invalid("part.options", "every option needs an id and a title"));
        }
        if let Some(limit) = limits.title {
            limit.check("part.options.title", &o.title)?;
        }
        if let Some(limit) = limits.id {
            limit.check("part.options.id", &o.id)?;
        }
        if let (true, Some(limit), Some(d)) = (limits.descriptions, limits.description, &o.description) {
            limit.check("part.options.description", d)?;
        }
        if limits.unique_titles && !seen.insert(o.title.as_str()) {
            return Err(Error::invalid(
                "part.options.title",
                format!("{:?} appears twice; titles must differ", o.title),
            ));
        }
    }
    Ok(())
}

impl Capabilities {
    /// Checks that `part` can be sent as is on this endpoint — the checks a strict provider
    /// would make. Everything [`render`](super::render) returns for these capabilities passes.
    ///
    /// ```
    /// use touchpoint::channel::{Capabilities, RenderedPart};
    /// let long = RenderedPart::Text { body: "x".repeat(1001) };
    /// assert!(Capabilities::messenger().check(&long).is_ok());
    /// assert!(Capabilities::instagram().check(&long).is_err()); // 1000 bytes
    /// ```
    pub fn check(&self, part: &RenderedPart) -> Result<()> {
        let unsupported = |what: &str| Err(Error::invalid("part", format!("{} cannot send {what}", self.channel)));
        match part {
            RenderedPart::Text { body } => {
                if body.trim().is_empty() {
                    return Err(Error::invalid("part.body", "must not be empty"));
                }
                self.text.map_or(Ok(()), |limit| limit.check("part.body", body))
            }
            RenderedPart::Media { media, url, caption, .. } => {
                let Some(support) = self.media_support(*media) else {
                    return unsupported(&format!("{media:?} media"));
                };
                if url.trim().is_empty() {
                    return Err(Error::invalid("part.url", "must not be empty"));
                }
                match caption {
                    Some(_) if !self.media_captions => unsupported("captions"),
                    Some(_) if !support.caption => unsupported(&format!("captions on {media:?} media")),
                    Some(c) => self.caption.or(self.text).map_or(Ok(()), |limit| limit.check("part.caption", c)),
                    None => Ok(()),
                }
            }
            RenderedPart::Buttons { body, buttons } => match &self.buttons {
                Some(limits) => check_choice(limits, self.text, body, buttons, None),
                None => unsupported("buttons"),
            },
            RenderedPart::List { body, button, rows } => match &self.list {
                Some(limits) => check_choice(limits, self.text, body, rows, Some(button)),
                None => unsupported("lists"),
            },
            RenderedPart::QuickReplies { body, replies } => match &self.quick_replies {
                Some(limits) => check_choice(limits, self.text, body, replies, None),
                None => unsupported("quick replies"),
            },
            RenderedPart::Location { .. } if !self.location => unsupported("locations"),
            RenderedPart::Contact(_) if !self.contact_cards => unsupported("contact cards"),
            RenderedPart::Template { .. } if !self.templates => unsupported("templates"),
            RenderedPart::Raw { payload } if !payload.is_object() => {
                Err(Error::invalid("part.payload", "must be a JSON object"))
            }
            RenderedPart::Location { .. }
            | RenderedPart::Contact(_)
            | RenderedPart::Template { .. }
            | RenderedPart::Raw { .. } => Ok(()),
        }
    }
}
