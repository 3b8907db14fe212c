//! Channels, addresses and how much an address can be trusted.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The kind of channel a contact arrives on or a reply leaves by.
///
/// Serialised as a lowercase string (`"whatsapp"`, `"email"`, …); any other string is a
/// [`ChannelKind::Custom`] channel of the host's own.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
#[non_exhaustive]
pub enum ChannelKind {
    /// Email (RFC 5322).
    Email,
    /// SMS and MMS.
    Sms,
    /// Phone calls and IVR.
    Voice,
    /// WhatsApp Business.
    WhatsApp,
    /// Facebook Messenger.
    Messenger,
    /// Instagram direct messages.
    Instagram,
    /// Telegram bots.
    Telegram,
    /// Website live chat.
    WebChat,
    /// Chat inside the host's own mobile or web app.
    InApp,
    /// Public social media (posts, comments, mentions).
    Social,
    /// A channel of the host's own, by name.
    Custom(String),
}

impl ChannelKind {
    /// The channel's canonical lowercase name.
    pub fn as_str(&self) -> &str {
        match self {
            ChannelKind::Email => "email",
            ChannelKind::Sms => "sms",
            ChannelKind::Voice => "voice",
            ChannelKind::WhatsApp => "whatsapp",
            ChannelKind::Messenger => "messenger",
            ChannelKind::Instagram => "instagram",
            ChannelKind::Telegram => "telegram",
            ChannelKind::WebChat => "webchat",
            ChannelKind::InApp => "inapp",
            ChannelKind::Social => "social",
            ChannelKind::Custom(name) => name,
        }
    }

    /// Whether the customer sees one continuous thread with us on this channel (messaging apps,
    /// SMS), as opposed to separate threads they start themselves (email).
    pub fn is_single_thread(&self) -> bool {
        !matches!(self, ChannelKind::Email | ChannelKind::Social)
    }
}

impl From<String> for ChannelKind {
    fn from(value: String) -> Self {
        match value.as_str() {
            "email" => ChannelKind::Email,
            "sms" => ChannelKind::Sms,
            "voice" => ChannelKind::Voice,
            "whatsapp" => ChannelKind::WhatsApp,
            "messenger" => ChannelKind::Messenger,
            "instagram" => ChannelKind::Instagram,
            "telegram" => ChannelKind::Telegram,
            "webchat" => ChannelKind::WebChat,
            "inapp" => ChannelKind::InApp,
            "social" => ChannelKind::Social,
            _ => ChannelKind::Custom(value),
        }
    }
}

impl From<&str> for ChannelKind {
    fn from(value: &str) -> Self {
        ChannelKind::from(value.to_owned())
    }
}

impl From<ChannelKind> for String {
    fn from(value: ChannelKind) -> Self {
        match value {
            ChannelKind::Custom(name) => name,
            other => other.as_str().to_owned(),
        }
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// A customer's address as a channel reports it, before normalisation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Address {
    /// A phone number in any common spelling (normalised to E.164).
    Phone {
        /// The number as received.
        number: String,
    },
    /// An email address (normalised to lowercase).
    Email {
        /// The address as received.
        address: String,
    },
    /// A platform user id, scoped where the platform scopes it: a Messenger page-scoped id
    /// (scope = page), a Telegram user id (scope = bot), a WhatsApp business-scoped user id
    /// (scope = portfolio), a web-chat visitor token (scope = widget).
    Platform {
        /// What the id is scoped to, if anything.
        scope: Option<String>,
        /// The id.
        id: String,
    },
}

impl Address {
    /// A phone address.
    pub fn phone(number: impl Into<String>) -> Self {
        Address::Phone { number: number.into() }
    }
    /// An email address.
    pub fn email(address: impl Into<String>) -> Self {
        Address::Email { address: address.into() }
    }
    /// A platform id with a scope.
    pub fn platform(scope: impl Into<String>, id: impl Into<String>) -> Self {
        Address::Platform { scope: Some(scope.into()), id: id.into() }
    }
    /// The raw text as received (for a scoped platform id: `scope:id`).
    pub fn raw(&self) -> String {
        match self {
            Address::Phone { number } => number.clone(),
            Address::Email { address } => address.clone(),
            Address::Platform { scope: Some(s), id } => format!("{s}:{id}"),
            Address::Platform { scope: None, id } => id.clone(),
        }
    }
    /// The kind of this address.
    pub fn kind(&self) -> AddressKind {
        match self {
            Address::Phone { .. } => AddressKind::Phone,
            Address::Email { .. } => AddressKind::Email,
            Address::Platform { .. } => AddressKind::Platform,
        }
    }
}

/// What kind of address a normalised value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressKind {
    /// E.164 phone number.
    Phone,
    /// Lowercased email address.
    Email,
    /// Scoped platform id.
    Platform,
}

/// A normalised address: the lookup key of an identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NormalizedAddress {
    /// The kind of address.
    pub kind: AddressKind,
    /// The normalised value (`+5511987654321`, `ana@example.com`, `page-1:psid-9`).
    pub value: String,
}

/// How far an address (or a claim about the customer) can be trusted.
///
/// Ordered from weakest to strongest. Only [`CarrierAsserted`](Verification::CarrierAsserted)
/// and [`Verified`](Verification::Verified) keys ever link a contact to an existing customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verification {
    /// Typed by someone and not checked (an email entered in a chat widget, an email `From`).
    Unverified,
    /// Asserted by the network: the sender number of an SMS or WhatsApp message.
    CarrierAsserted,
    /// Proven to the host: a signed-in user (HMAC/JWT), a confirmed email, an agent's check.
    Verified,
}

impl Verification {
    /// Whether a key of this strength may link a contact to an existing customer.
    pub fn can_link(self) -> bool {
        self >= Verification::CarrierAsserted
    }
}
