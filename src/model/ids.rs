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

/// A validated host key: up to [`Key::INLINE`] bytes kept in place (a clone copies 24 bytes and
/// touches no other memory, which matters where a decision names an agent out of cache), longer
/// ones shared behind an `Arc`. Keys are ASCII (checked before one is made), so equality, order
/// and hashing work on the bytes and agree with `str`'s.
#[derive(Clone)]
enum Key {
    Inline { len: u8, bytes: [u8; Key::INLINE] },
    Shared(Arc<str>),
}

impl Key {
    /// The longest key kept in place.
    const INLINE: usize = 22;

    fn new(value: &str) -> Key {
        if value.len() <= Key::INLINE {
            let mut bytes = [0u8; Key::INLINE];
            bytes[..value.len()].copy_from_slice(value.as_bytes());
            Key::Inline { len: value.len() as u8, bytes }
        } else {
            Key::Shared(Arc::from(value))
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Key::Shared(s) => s.as_bytes(),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // Only ASCII keys are made (`validate_key`), so this never falls back.
            Key::Inline { len, bytes } => std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default(),
            Key::Shared(s) => s,
        }
    }
}

impl PartialEq for Key {
    #[inline]
    fn eq(&self, other: &Key) -> bool {
        match (self, other) {
            // Two loads a side, no `memcmp` call: bytes 0..16 and 14..22 (overlapping).
            (Key::Inline { len: a, bytes: x }, Key::Inline { len: b, bytes: y }) => {
                a == b && inline_words(x) == inline_words(y)
            }
            (Key::Shared(x), Key::Shared(y)) if Arc::ptr_eq(x, y) => true,
            _ => self.as_bytes() == other.as_bytes(),
        }
    }
}

impl Eq for Key {}

/// A key kept in place as two words (its bytes 0..16 and 14..22), for comparing.
#[inline]
fn inline_words(bytes: &[u8; Key::INLINE]) -> (u128, u64) {
    let mut head = [0u8; 16];
    let mut tail = [0u8; 8];
    head.copy_from_slice(&bytes[..16]);
    tail.copy_from_slice(&bytes[Key::INLINE - 8..]);
    (u128::from_ne_bytes(head), u64::from_ne_bytes(tail))
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Key) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As `str` hashes itself, so a key and its text hash alike.
        state.write(self.as_bytes());
        state.write_u8(0xff);
    }
}

macro_rules! key_id {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:literal) => {
        $(#[$doc])*
        ///
        /// Cloning is cheap: a short key (up to 22 bytes) is copied in place, a longer one is
        /// shared.
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(Key);

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.0.as_str())
            }
        }

        impl $name {
            /// Validates and wraps a host-chosen key: 1 to
            #[doc = concat!(stringify!($max))]
            /// bytes of ASCII letters, digits and `-_.:@+/`.
            ///
            /// Takes anything that reads as a `&str` (`&str`, `String`, …) and copies it
            /// once.
            pub fn new(value: impl AsRef<str>) -> crate::Result<Self> {
                let value = value.as_ref();
                validate_key(value, $field, $max)?;
                Ok(Self(Key::new(value)))
            }
            /// The key as a string.
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.as_str())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
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
                value.as_str().to_owned()
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
                self.as_str()
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;
    use std::hash::{Hash, Hasher};

    fn hash_of<T: Hash + ?Sized>(value: &T) -> u64 {
        let mut h = DefaultHasher::new();
        value.hash(&mut h);
        h.finish()
    }

    #[test]
    fn keys_in_place_and_shared_behave_as_their_text() {
        // 21, 22 (the longest kept in place), 23 and 128 bytes.
        let texts: Vec<String> = [21usize, 22, 23, 128, 1]
            .iter()
            .flat_map(|n| ["a", "b", "a/"].map(|p| format!("{p}{}", "x".repeat(n - 1))))
            .map(|t| t.chars().take(128).collect())
            .collect();
        for a in &texts {
            let id = AgentId::new(a).unwrap();
            assert_eq!(id.as_str(), a);
            assert_eq!(id.to_string(), *a);
            assert_eq!(format!("{id:?}"), format!("AgentId({a:?})"));
            assert_eq!(hash_of(&id), hash_of(a.as_str()), "{a}");
            assert_eq!(id.clone(), id);
            let json = serde_json::to_string(&id).unwrap();
            assert_eq!(serde_json::from_str::<AgentId>(&json).unwrap(), id);
            for b in &texts {
                let other = AgentId::new(b).unwrap();
                assert_eq!(id.cmp(&other), a.cmp(b), "{a} vs {b}");
                assert_eq!(id == other, a == b);
            }
        }
        assert_eq!(std::mem::size_of::<AgentId>(), 24);
    }
}
