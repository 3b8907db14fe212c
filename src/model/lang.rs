//! Validated language tags (BCP 47) and time-zone names (IANA).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A well-formed BCP 47 (RFC 5646) language tag in canonical case, such as `pt-BR`, `zh-Hant-TW`
/// or `sr-Latn-RS`. `_` is accepted as a separator (`en_US` → `en-US`).
///
/// ```
/// use touchpoint::model::LanguageTag;
/// assert_eq!(LanguageTag::parse("EN_us").unwrap().as_str(), "en-US");
/// assert_eq!(LanguageTag::parse("zh-hant-tw").unwrap().as_str(), "zh-Hant-TW");
/// assert!(LanguageTag::parse("english").is_ok()); // 5–8 letters is a registered-language form
/// assert!(LanguageTag::parse("en-").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LanguageTag(String);

/// The grandfathered tags of RFC 5646 §2.2.8, in their registered (canonical) case.
const GRANDFATHERED: &[&str] = &[
    "en-GB-oed",
    "i-ami",
    "i-bnn",
    "i-default",
    "i-enochian",
    "i-hak",
    "i-klingon",
    "i-lux",
    "i-mingo",
    "i-navajo",
    "i-pwn",
    "i-tao",
    "i-tay",
    "i-tsu",
    "sgn-BE-FR",
    "sgn-BE-NL",
    "sgn-CH-DE",
    "art-lojban",
    "cel-gaulish",
    "no-bok",
    "no-nyn",
    "zh-guoyu",
    "zh-hakka",
    "zh-min",
    "zh-min-nan",
    "zh-xiang",
];

fn alpha(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphabetic())
}
fn digit(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}
fn alnum(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl LanguageTag {
    /// Parses and canonicalises a tag.
    pub fn parse(raw: &str) -> crate::Result<Self> {
        let bad = |reason: String| crate::Error::invalid("language", reason);
        if raw.is_empty() || raw.len() > 64 {
            return Err(bad("a language tag is 1 to 64 characters".into()));
        }
        let lower = raw.replace('_', "-").to_ascii_lowercase();
        if !lower.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(bad(format!("{raw:?} contains characters other than letters, digits and '-'")));
        }
        if let Some(tag) = GRANDFATHERED.iter().find(|g| g.eq_ignore_ascii_case(&lower)) {
            return Ok(LanguageTag((*tag).to_owned()));
        }
        let subtags: Vec<&str> = lower.split('-').collect();
        if subtags.iter().any(|s| s.is_empty() || s.len() > 8) {
            return Err(bad(format!("{raw:?} has an empty or over-long subtag")));
        }
        let mut out: Vec<String> = Vec::with_capacity(subtags.len());
        let mut i = 0;
        // Private-use-only tag.
        if subtags[0] == "x" {
            return private_use(&subtags, raw).map(|()| LanguageTag(lower));
        }
        let lang = subtags[0];
        if !alpha(lang) || lang.len() == 1 {
            return Err(bad(format!("{lang:?} is not a language subtag")));
        }
        out.push(lang.to_owned());
        i += 1;
        if lang.len() <= 3 {
            let mut extlangs = 0;
            while i < subtags.len() && subtags[i].len() == 3 && alpha(subtags[i]) && extlangs < 3 {
                out.push(subtags[i].to_owned());
                extlangs += 1;
                i += 1;
            }
        }
        if i < subtags.len() && subtags[i].len() == 4 && alpha(subtags[i]) {
            let s = subtags[i];
            out.push(format!("{}{}", s[..1].to_ascii_uppercase(), &s[1..]));
            i += 1;
        }
        if i < subtags.len()
            && ((subtags[i].len() == 2 && alpha(subtags[i])) || (subtags[i].len() == 3 && digit(subtags[i])))
        {
            out.push(subtags[i].to_ascii_uppercase());
            i += 1;
        }
        let mut variants: Vec<&str> = Vec::new();
        while i < subtags.len() {
            let s = subtags[i];
            let is_variant =
                (s.len() >= 5 && alnum(s)) || (s.len() == 4 && s.as_bytes()[0].is_ascii_digit() && alnum(s));
            if !is_variant {
                break;
            }
            if variants.contains(&s) {
                return Err(bad(format!("variant {s:?} appears twice")));
            }
            variants.push(s);
            out.push(s.to_owned());
            i += 1;
        }
        let mut singletons: Vec<&str> = Vec::new();
        while i < subtags.len() {
            let s = subtags[i];
            if s == "x" {
                private_use(&subtags[i..], raw)?;
                out.extend(subtags[i..].iter().map(|s| (*s).to_owned()));
                i = subtags.len();
                break;
            }
            if s.len() != 1 || !alnum(s) {
                return Err(bad(format!("unexpected subtag {s:?}")));
            }
            if singletons.contains(&s) {
                return Err(bad(format!("extension {s:?} appears twice")));
            }
            singletons.push(s);
            out.push(s.to_owned());
            i += 1;
            let start = i;
            while i < subtags.len() && subtags[i].len() >= 2 && alnum(subtags[i]) {
                out.push(subtags[i].to_owned());
                i += 1;
            }
            if i == start {
                return Err(bad(format!("extension {s:?} has no subtags")));
            }
        }
        if i != subtags.len() {
            return Err(bad(format!("unexpected subtag {:?}", subtags[i])));
        }
        Ok(LanguageTag(out.join("-")))
    }

    /// The tag as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The primary language subtag (`pt` for `pt-BR`).
    pub fn primary_language(&self) -> &str {
        self.0.split('-').next().unwrap_or(&self.0)
    }
}

fn private_use(subtags: &[&str], raw: &str) -> crate::Result<()> {
    if subtags.len() < 2 || subtags[1..].iter().any(|s| s.is_empty() || s.len() > 8 || !alnum(s)) {
        return Err(crate::Error::invalid("language", format!("{raw:?} has a malformed private-use part")));
    }
    Ok(())
}

/// An IANA time-zone name such as `Europe/Lisbon`, `America/Argentina/Buenos_Aires` or `UTC`,
/// checked for shape (the zone database itself is not bundled in the core).
///
/// ```
/// use touchpoint::model::TimeZoneName;
/// assert!(TimeZoneName::parse("America/Sao_Paulo").is_ok());
/// assert!(TimeZoneName::parse("Etc/GMT+5").is_ok());
/// assert!(TimeZoneName::parse("../etc/passwd").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeZoneName(String);

impl TimeZoneName {
    /// Parses a name.
    pub fn parse(raw: &str) -> crate::Result<Self> {
        let bad = |reason: String| crate::Error::invalid("time_zone", reason);
        if raw.is_empty() || raw.len() > 64 {
            return Err(bad("a time-zone name is 1 to 64 characters".into()));
        }
        for part in raw.split('/') {
            if part.is_empty() || part.len() > 14 {
                return Err(bad(format!("{raw:?}: each part is 1 to 14 characters")));
            }
            if !part.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-+".contains(&b)) {
                return Err(bad(format!("{raw:?}: unexpected character in {part:?}")));
            }
        }
        if !raw.as_bytes()[0].is_ascii_alphabetic() {
            return Err(bad(format!("{raw:?} must start with a letter")));
        }
        Ok(TimeZoneName(raw.to_owned()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_impls {
    ($t:ident) => {
        impl FromStr for $t {
            type Err = crate::Error;
            fn from_str(s: &str) -> crate::Result<Self> {
                Self::parse(s)
            }
        }
        impl TryFrom<String> for $t {
            type Error = crate::Error;
            fn try_from(s: String) -> crate::Result<Self> {
                Self::parse(&s)
            }
        }
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}
string_impls!(LanguageTag);
string_impls!(TimeZoneName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_tags_from_rfc_5646_appendix_a() {
        for (raw, canonical) in [
            ("de", "de"),
            ("zh-Hant", "zh-Hant"),
            ("zh-cmn-Hans-CN", "zh-cmn-Hans-CN"),
            ("sr-Latn-RS", "sr-Latn-RS"),
            ("sl-rozaj-biske", "sl-rozaj-biske"),
            ("de-CH-1901", "de-CH-1901"),
            ("hy-Latn-IT-arevela", "hy-Latn-IT-arevela"),
            ("es-419", "es-419"),
            ("de-DE-u-co-phonebk", "de-DE-u-co-phonebk"),
            ("en-US-x-twain", "en-US-x-twain"),
            ("x-whatever", "x-whatever"),
            ("i-klingon", "i-klingon"),
            // Grandfathered tags keep their registered case (§2.1.1: "sgn-BE-FR").
            ("sgn-be-fr", "sgn-BE-FR"),
            ("SGN-CH-DE", "sgn-CH-DE"),
            ("en-gb-OED", "en-GB-oed"),
            ("ZH-min-NAN", "zh-min-nan"),
            ("EN_us", "en-US"),
            ("PT-br", "pt-BR"),
        ] {
            assert_eq!(LanguageTag::parse(raw).unwrap().as_str(), canonical, "{raw}");
        }
    }

    #[test]
    fn malformed_tags_are_refused() {
        for raw in [
            "",
            "a",
            "de-419-DE",
            "a-DE",
            "ar-a-aaa-b-bbb-a-ccc",
            "en--US",
            "en-",
            "de-1901-1901",
            "en-US-x",
            "1en",
            "en us",
            &"a".repeat(70),
        ] {
            assert!(LanguageTag::parse(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn serde_validates() {
        let t: LanguageTag = serde_json::from_str("\"pt_br\"").unwrap();
        assert_eq!(t.as_str(), "pt-BR");
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"pt-BR\"");
        assert!(serde_json::from_str::<LanguageTag>("\"not a tag\"").is_err());
        assert!(serde_json::from_str::<TimeZoneName>("\"Europe/Lisbon\"").is_ok());
        assert!(serde_json::from_str::<TimeZoneName>("\"/x\"").is_err());
    }
}
