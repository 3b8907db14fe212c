//! Shared JSON plumbing for the kits: a fast typed parse, and on failure a second pass that
//! names the JSON path of the offending value.

use crate::{Error, Result};
use serde::Deserialize;

/// Parses `body` as `T`. Errors name the JSON path (`entry[0].changes[0].value.messages[0].id`).
pub(crate) fn parse<'a, T: Deserialize<'a>>(field: &'static str, body: &'a [u8]) -> Result<T> {
    // UTF-8 checked once over the whole body (word at a time) spares serde_json checking every
    // string and key again; a body that is not UTF-8 goes through the byte parser for its error.
    let fast = match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(body),
    };
    match fast {
        Ok(value) => Ok(value),
        // The fast pass does not track where it was; the slow pass runs only on bad input.
        Err(plain) => {
            let mut de = serde_json::Deserializer::from_slice(body);
            match serde_path_to_error::deserialize::<_, T>(&mut de) {
                Err(e) => Err(at(field, &e.path().to_string(), e.inner())),
                // Parsed this time: the first error was after the value (trailing characters).
                Ok(_) => Err(Error::invalid(field, plain.to_string())),
            }
        }
    }
}

/// An [`Error::InvalidInput`] for the value at `path` (`.` or empty: the whole body).
pub(crate) fn at(field: &'static str, path: &str, reason: impl std::fmt::Display) -> Error {
    if path.is_empty() || path == "." {
        Error::invalid(field, format!("{reason}"))
    } else {
        Error::invalid(field, format!("at `{path}`: {reason}"))
    }
}

/// Checks a provider id used as an idempotency key or thread hint: 1–512 bytes, no control
/// characters (what the engine accepts).
pub(crate) fn check_id(field: &'static str, path: impl FnOnce() -> String, id: &str) -> Result<()> {
    // Starting with a visible ASCII character and without control characters passes at once
    // (bytes 0xC2 may start a C1 control character and take the careful path).
    let plain = |b: u8| b > 0x20 && b != 0x7f && b != 0xc2;
    if id.len() <= 512
        && id.as_bytes().first().is_some_and(u8::is_ascii_graphic)
        && id.bytes().all(|b| b == b' ' || plain(b))
    {
        return Ok(());
    }
    if id.trim().is_empty() || id.len() > 512 || id.chars().any(char::is_control) {
        return Err(at(field, &path(), "must be 1 to 512 bytes without control characters"));
    }
    Ok(())
}

/// Checks content the way the engine will (without its size limits, which are the host's), so a
/// kit never hands over a message ingest would reject for its shape.
pub(crate) fn check_content(
    field: &'static str,
    path: impl FnOnce() -> String,
    content: &crate::model::Content,
) -> Result<()> {
    let unlimited =
        crate::model::ContentLimits { max_text_bytes: usize::MAX, max_options: usize::MAX, max_parameters: usize::MAX };
    content.validate(&unlimited).map_err(|e| at(field, &path(), e))
}

/// A unix time in seconds, sent as a number or as a string of digits (WhatsApp sends strings).
#[cfg_attr(not(any(feature = "whatsapp", feature = "telegram")), allow(dead_code))]
#[derive(Debug, Clone, Copy)]
pub(crate) struct UnixSeconds(pub chrono::DateTime<chrono::Utc>);

impl UnixSeconds {
    /// The time `n` seconds after the epoch, if chrono can represent it.
    pub(crate) fn at(n: i64) -> Option<Self> {
        chrono::DateTime::from_timestamp(n, 0).map(UnixSeconds)
    }
}

/// The number in a timestamp sent as a string: 1–19 ASCII digits that fit an `i64`.
pub(crate) fn timestamp_digits(v: &str) -> Option<i64> {
    if v.is_empty() || v.len() > 19 {
        return None;
    }
    v.bytes().try_fold(0i64, |n, b| {
        let digit = b.is_ascii_digit().then(|| i64::from(b - b'0'))?;
        n.checked_mul(10)?.checked_add(digit)
    })
}

/// A unix time in milliseconds (Messenger, Instagram).
#[cfg_attr(not(feature = "messenger"), allow(dead_code))]
#[derive(Debug, Clone, Copy)]
pub(crate) struct UnixMillis(pub chrono::DateTime<chrono::Utc>);

struct TimeVisitor {
    millis: bool,
}

impl TimeVisitor {
    fn at<E: serde::de::Error>(&self, n: i64) -> std::result::Result<chrono::DateTime<chrono::Utc>, E> {
        let t = if self.millis { chrono::DateTime::from_timestamp_millis(n) } else { UnixSeconds::at(n).map(|t| t.0) };
        t.ok_or_else(|| E::custom(format!("timestamp {n} is out of range")))
    }
}

impl serde::de::Visitor<'_> for TimeVisitor {
    type Value = chrono::DateTime<chrono::Utc>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.millis { "unix milliseconds" } else { "unix seconds" })
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<Self::Value, E> {
        self.at(v)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<Self::Value, E> {
        self.at(i64::try_from(v).map_err(|_| E::custom(format!("timestamp {v} is out of range")))?)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
        self.at(timestamp_digits(v).ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(v), &self))?)
    }
}

impl<'de> Deserialize<'de> for UnixSeconds {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(TimeVisitor { millis: false }).map(UnixSeconds)
    }
}

impl<'de> Deserialize<'de> for UnixMillis {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(TimeVisitor { millis: true }).map(UnixMillis)
    }
}

/// An id sent as a string or as a number (Meta sends strings; older payloads numbers).
#[cfg_attr(not(feature = "messenger"), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdString(pub String);

impl<'de> Deserialize<'de> for IdString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = String;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an id (string or integer)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<String, E> {
                Ok(v.to_owned())
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> std::result::Result<String, E> {
                Ok(v)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<String, E> {
                Ok(v.to_string())
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<String, E> {
                Ok(v.to_string())
            }
        }
        d.deserialize_any(V).map(IdString)
    }
}

#[cfg_attr(not(any(feature = "whatsapp", feature = "messenger")), allow(dead_code))]
/// Checks a platform address the way the engine will normalise it, so a bad id in a payload
/// fails here with its JSON path instead of at ingest.
pub(crate) fn check_platform(
    field: &'static str,
    path: impl FnOnce() -> String,
    address: &crate::model::Address,
) -> Result<()> {
    if let crate::model::Address::Platform { scope, id } = address {
        crate::identity::normalize::normalize_platform_id(scope.as_deref(), id).map_err(|e| at(field, &path(), e))?;
    }
    Ok(())
}

/// A JSON array that needs no heap allocation while it holds at most one element: a webhook
/// almost always carries one entry, one change, one message (a `Vec` would allocate for each).
#[cfg_attr(not(feature = "whatsapp"), allow(dead_code))]
#[derive(Default)]
pub(crate) enum Seq<T> {
    /// `[]` (or the field was absent).
    #[default]
    Empty,
    /// One element.
    One(T),
    /// Two or more elements.
    Many(Vec<T>),
}

#[cfg_attr(not(feature = "whatsapp"), allow(dead_code))]
impl<T> Seq<T> {
    /// Whether the array was empty.
    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, Seq::Empty)
    }

    /// The elements.
    pub(crate) fn as_slice(&self) -> &[T] {
        match self {
            Seq::Empty => &[],
            Seq::One(one) => std::slice::from_ref(one),
            Seq::Many(many) => many,
        }
    }
}

impl<T> IntoIterator for Seq<T> {
    type Item = T;
    type IntoIter = SeqIter<T>;

    fn into_iter(self) -> SeqIter<T> {
        match self {
            Seq::Empty => SeqIter::One(None),
            Seq::One(one) => SeqIter::One(Some(one)),
            Seq::Many(many) => SeqIter::Many(many.into_iter()),
        }
    }
}

/// The elements of a [`Seq`], by value.
pub(crate) enum SeqIter<T> {
    One(Option<T>),
    Many(std::vec::IntoIter<T>),
}

impl<T> Iterator for SeqIter<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        match self {
            SeqIter::One(one) => one.take(),
            SeqIter::Many(many) => many.next(),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Seq<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
            type Value = Seq<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Seq<T>, A::Error> {
                let Some(first) = seq.next_element()? else { return Ok(Seq::Empty) };
                let Some(second) = seq.next_element()? else { return Ok(Seq::One(first)) };
                let mut many = Vec::with_capacity(4);
                many.push(first);
                many.push(second);
                while let Some(next) = seq.next_element()? {
                    many.push(next);
                }
                Ok(Seq::Many(many))
            }
        }
        d.deserialize_seq(V(std::marker::PhantomData))
    }
}
