//! `application/x-www-form-urlencoded` bodies, as Twilio posts its webhooks and expects API
//! requests: `name=value` pairs joined by `&`, `+` for a space, `%XX` for any other byte.
//!
//! Decoding is strict where the WHATWG algorithm is lenient: a `%` not followed by two hex
//! digits, or a value that does not decode to UTF-8, is an error naming the offending pair
//! rather than something silently repaired. Pairs keep their order and duplicates.
//!
//! ```
//! use touchpoint::channels::form::{Form, encode};
//! let form = Form::parse(b"Body=Where+is+order+5521%3F&From=%2B447700900123").unwrap();
//! assert_eq!(form.get("Body"), Some("Where is order 5521?"));
//! assert_eq!(form.get("From"), Some("+447700900123"));
//! assert_eq!(encode([("To", "+1 555"), ("Body", "a&b=c")]), "To=%2B1+555&Body=a%26b%3Dc");
//! assert!(Form::parse(b"Body=100%").is_err());
//! ```

use crate::{Error, Result};

/// Largest body [`Form::parse`] accepts (Twilio's webhooks are a few kilobytes).
pub const MAX_FORM_BYTES: usize = 1024 * 1024;
/// Most pairs [`Form::parse`] accepts.
pub const MAX_FORM_PAIRS: usize = 1000;

/// A decoded form body: `(name, value)` pairs in the order they came.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    /// Decodes a form body. Empty segments (`a=1&&b=2`) are skipped; a segment without `=` is
    /// a name with an empty value.
    ///
    /// Errors ([`Error::InvalidInput`] on field `form`): a body over [`MAX_FORM_BYTES`] or with
    /// more than [`MAX_FORM_PAIRS`] pairs, a malformed `%` escape, a name or value that is not
    /// UTF-8 once decoded.
    pub fn parse(body: &[u8]) -> Result<Form> {
        if body.len() > MAX_FORM_BYTES {
            return Err(Error::invalid(
                "form",
                format!("the body is {} bytes, the limit is {MAX_FORM_BYTES}", body.len()),
            ));
        }
        let mut pairs = Vec::new();
        for (index, segment) in body.split(|b| *b == b'&').enumerate() {
            if segment.is_empty() {
                continue;
            }
            if pairs.len() == MAX_FORM_PAIRS {
                return Err(Error::invalid("form", format!("more than {MAX_FORM_PAIRS} pairs")));
            }
            let (name, value) = match segment.iter().position(|b| *b == b'=') {
                Some(eq) => (&segment[..eq], &segment[eq + 1..]),
                None => (segment, &[][..]),
            };
            let name = decode(name).map_err(|why| Error::invalid("form", format!("pair {}: name {why}", index + 1)))?;
            let value = decode(value)
                .map_err(|why| Error::invalid("form", format!("pair {} ({name:?}): value {why}", index + 1)))?;
            pairs.push((name, value));
        }
        Ok(Form { pairs })
    }

    /// The first value of `name` (names are case-sensitive, as Twilio's are).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The first value of `name` if it is present and not blank.
    pub fn get_nonempty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.trim().is_empty())
    }

    /// The first non-blank value of `name`, or an [`Error::InvalidInput`] naming it.
    pub fn require(&self, name: &'static str) -> Result<&str> {
        self.get_nonempty(name).ok_or_else(|| Error::invalid(name, "is missing or empty"))
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs.iter().filter(move |(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// All pairs in the order they came.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether the form has no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn decode(raw: &[u8]) -> std::result::Result<String, String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = raw.get(i + 1).copied().and_then(hex_value);
                let lo = raw.get(i + 2).copied().and_then(hex_value);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => {
                        let shown = String::from_utf8_lossy(raw.get(i..(i + 3).min(raw.len())).unwrap_or_default());
                        return Err(format!("has a malformed escape {shown:?} at byte {i}"));
                    }
                }
                i += 2;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out)
        .map_err(|e| format!("is not UTF-8 after decoding (at byte {})", e.utf8_error().valid_up_to()))
}

/// Appends `value` form-encoded: `A–Z a–z 0–9 * - . _` as they are, space as `+`, every other
/// byte as `%XX`.
pub fn encode_into(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => out.push(char::from(b)),
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0x0f)]));
            }
        }
    }
}

/// Encodes `(name, value)` pairs as a form body.
pub fn encode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (i, (name, value)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode_into(&mut out, name);
        out.push('=');
        encode_into(&mut out, value);
    }
    out
}
