//! Typed identifiers.
//!
//! Records the crate creates get UUID v7 ids (time-ordered, so they index well in SQL stores and
//! sort by creation time). Things the host names — tenants, our channel endpoints, agents and
//! queues — are validated string keys chosen by the host.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// Wraps an existing UUID (for example one read back from a database).
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }
            /// The UUID inside.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = crate::Error;
            fn from_str(s: &str) -> crate::Result<Self> {
                Uuid::parse_str(s)
                    .map(Self)
                    .map_err(|e| crate::Error::invalid(stringify!($name), e.to_string()))
            }
        }
    };
}

uuid_id!(
    /// Identifies a [`Customer`](crate::model::Customer): the person, across all channels.
    CustomerId
);
uuid_id!(
    /// Identifies an [`Identity`](crate::model::Identity): one address on one channel.
    IdentityId
);
uuid_id!(
    /// Identifies a [`Conversation`](crate::model::Conversation).
    ConversationId
);
uuid_id!(
    /// Identifies a [`Message`](crate::model::Message).
    MessageId
);
uuid_id!(
    /// Identifies a domain [`Event`](crate::events::Event), for consumers that deduplicate.
    EventId
);

macro_rules! key_id {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:literal) => {
        $(#[$doc])*
        ///
        /// The key is shared, not copied, when the id is cloned.
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(Arc<str>);

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl $name {
            /// Validates and wraps a host-chosen key: 1 to
            #[doc = concat!(stringify!($max))]
            /// bytes of ASCII letters, digits and `-_.:@+/`.
            ///
            /// Takes anything that reads as a `&str` (`&str`, `String`, …) and copies it
            /// once, into the shared key.
            pub fn new(value: impl AsRef<str>) -> crate::Result<Self> {
                let value = value.as_ref();
                validate_key(value, $field, $max)?;
                Ok(Self(Arc::from(value)))
            }
            /// The key as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = crate::Error;
            fn try_from(value: String) -> crate::Result<Self> {
                Self::new(value)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = crate::Error;
            fn try_from(value: &str) -> crate::Result<Self> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0.as_ref().to_owned()
            }
        }

        impl std::str::FromStr for $name {
            type Err = crate::Error;
            fn from_str(s: &str) -> crate::Result<Self> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

fn validate_key(value: &str, field: &'static str, max: usize) -> crate::Result<()> {
    if value.is_empty() {
        return Err(crate::Error::invalid(field, "must not be empty"));
    }
    if value.len() > max {
        return Err(crate::Error::invalid(field, format!("is {} bytes long, the limit is {max}", value.len())));
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'@' | b'+' | b'/');
    if let Some(c) = value.chars().find(|&c| !(c.is_ascii() && allowed(c as u8))) {
        return Err(crate::Error::invalid(
            field,
            format!("contains {c:?}; allowed are ASCII letters, digits and -_.:@+/"),
        ));
    }
    Ok(())
}

key_id!(
    /// The tenant (account, workspace) every stored record belongs to. No read or write ever
    /// crosses tenants.
    TenantId,
    "tenant",
    64
);
key_id!(
    /// One of *our* endpoints on a channel: a WhatsApp business number, an email inbox, a
    /// Messenger page, a web-chat widget. Reply windows and session threads are kept per endpoint.
    EndpointId,
    "endpoint",
    128
);
key_id!(
    /// A human agent or a bot, as the host names it.
    AgentId,
    "agent",
    128
);
key_id!(
    /// A queue (team, skill group) work can wait in.
    QueueId,
    "queue",
    128
);
