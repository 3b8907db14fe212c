//! Address normalisation: one canonical spelling per address, computed once per contact.
//!
//! * phones → E.164 (`+` and digits), through libphonenumber metadata with the default `phone`
//!   feature, or a strict syntactic fallback without it;
//! * email → trimmed and lowercased (no sub-address stripping);
//! * platform ids → `scope:id`.
//!
//! [`phone_lookup_variants`] gives the other spellings of a subscriber number that some
//! providers report (the Brazilian ninth digit, Mexico's `+521`, Argentina's `+549`); they are used
//! for lookups only, never stored.

use crate::{Error, Result};

const MAX_PHONE_INPUT: usize = 64;

/// Characters that show nothing (Unicode format characters: soft hyphen, zero-width space and
/// joiners, direction marks and embeddings, word joiner, invisible operators, byte order mark).
/// A byte order mark or a zero-width space arrives with a CSV import or a paste; kept, it
/// would make a second spelling of an address nobody can tell from the first.
fn invisible(c: char) -> bool {
    matches!(c, '\u{ad}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}')
}

/// `raw` without the white space and invisible characters around it.
fn trim_input(raw: &str) -> &str {
    raw.trim_matches(|c: char| c.is_whitespace() || invisible(c))
}

fn phone_error(raw: &str, reason: impl Into<String>) -> Error {
    let shown: String = raw.chars().take(MAX_PHONE_INPUT).collect();
    Error::InvalidAddress { kind: "phone", raw: shown, reason: reason.into() }
}

/// Normalises a phone number to E.164.
///
/// Accepts `+44 20 7946 0958`, `0044 20 7946 0958`, bare international digits as WhatsApp sends
/// them (`5511987654321`), and national spellings (`(415) 555-0123`) when `default_region`
/// (ISO 3166 alpha-2) is given. With a default region, a number is read as a national one when
/// that is valid; bare digits that are not are read as an international number when that is
/// valid (with the `phone` feature). Otherwise a national reading of plausible length is kept
/// (number ranges newer than the crate's metadata).
///
/// ```
/// use touchpoint::identity::normalize::normalize_phone;
/// assert_eq!(normalize_phone("+55 11 98765-4321", None).unwrap(), "+5511987654321");
/// assert_eq!(normalize_phone("5511987654321", None).unwrap(), "+5511987654321");
/// assert!(normalize_phone("call me", None).is_err());
/// // A national spelling needs the region it is national to.
/// assert!(normalize_phone("(415) 555-0123", None).is_err());
/// ```
pub fn normalize_phone(raw: &str, default_region: Option<&str>) -> Result<String> {
    if raw.len() > MAX_PHONE_INPUT {
        return Err(phone_error(raw, format!("longer than {MAX_PHONE_INPUT} bytes")));
    }
    let trimmed = trim_input(raw);
    if trimmed.is_empty() {
        return Err(phone_error(raw, "empty"));
    }
    if let Some(c) = trimmed.chars().find(|c| !(c.is_ascii_digit() || " +-.()/\u{a0}".contains(*c))) {
        return Err(phone_error(raw, format!("unexpected character {c:?}")));
    }
    // `+44 (0)20 7946 0958`: after a country code, a bracketed `0` is the trunk prefix that
    // is dialled at home only (UK, Germany, Switzerland write numbers so); kept, it would make
    // another number.
    let bare_trunk;
    let trimmed = if trimmed.contains("(0)") && (trimmed.starts_with('+') || trimmed.starts_with("00")) {
        bare_trunk = trimmed.replace("(0)", "");
        bare_trunk.as_str()
    } else {
        trimmed
    };
    let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    let international = if trimmed.starts_with('+') {
        Some(digits.clone())
    } else if let Some(rest) = digits.strip_prefix("00") {
        // `00` dials out of most countries, but not all: where the default region dials out
        // with a longer prefix that starts with it (`0011` in Australia, `001` in Thailand and
        // South Korea), the region's own reading comes first.
        if let Some(number) = dialled_out_of(&digits, default_region) {
            return Ok(number);
        }
        Some(rest.to_owned())
    } else if default_region.is_none() {
        // Without a region, digits are read as an international number without its `+`. A
        // spelling that can only be national (an area code in parentheses, a trunk `0`: no
        // country code starts with 0) would become another country's number: refused.
        if trimmed.contains('(') || digits.starts_with('0') {
            return Err(phone_error(raw, "a national spelling; set a default phone region to read it"));
        }
        Some(digits.clone())
    } else {
        None
    };
    let candidate = match &international {
        Some(d) => format!("+{d}"),
        None => digits.clone(),
    };
    checked(raw, &candidate, default_region)
}

#[cfg(feature = "phone")]
fn checked(raw: &str, candidate: &str, default_region: Option<&str>) -> Result<String> {
    let region = match default_region {
        Some(r) if !candidate.starts_with('+') => {
            Some(region_id(r).ok_or_else(|| phone_error(raw, format!("unknown default region {r:?}")))?)
        }
        _ => None,
    };
    let number = match region {
        // With a default region the number is read as a national one when that is valid. Bare
        // digits (nothing but digits, as WhatsApp sends ids) that are no valid national number
        // are read as an international number without its `+` when that is valid. Otherwise,
        // as without a region, a national parse of plausible length is accepted: frozen
        // metadata lags new number ranges, and a typed national spelling must never become
        // another country's number.
        Some(region) => match phonenumber::parse(Some(region), candidate) {
            Ok(national) if national.is_valid() => national,
            national => {
                let bare = raw.trim().bytes().all(|b| b.is_ascii_digit());
                let international = bare
                    .then(|| phonenumber::parse(None, format!("+{candidate}")).ok())
                    .flatten()
                    .filter(phonenumber::PhoneNumber::is_valid);
                match international {
                    Some(number) => number,
                    None => national.map_err(|e| phone_error(raw, e.to_string()))?,
                }
            }
        },
        // Frozen metadata lags new number ranges, so a parseable number of plausible length is
        // accepted even when `is_valid` does not know its range yet.
        None => phonenumber::parse(None, candidate).map_err(|e| phone_error(raw, e.to_string()))?,
    };
    let e164 = e164(&number);
    let len = e164.len().saturating_sub(1);
    if !(8..=15).contains(&len) {
        return Err(phone_error(raw, format!("{len} digits; E.164 numbers have 8 to 15")));
    }
    Ok(e164)
}

/// The phone metadata's region for an ISO 3166 alpha-2 code, in any case.
#[cfg(feature = "phone")]
fn region_id(code: &str) -> Option<phonenumber::country::Id> {
    code.to_ascii_uppercase().parse().ok()
}

/// `digits` read as dialled in `default_region` through its international prefix, when that
/// gives a valid number.
#[cfg(feature = "phone")]
fn dialled_out_of(digits: &str, default_region: Option<&str>) -> Option<String> {
    let region = region_id(default_region?)?;
    let number = phonenumber::parse(Some(region), digits).ok().filter(phonenumber::PhoneNumber::is_valid)?;
    (number.code().source() == phonenumber::country::Source::Idd).then(|| e164(&number))
}

#[cfg(not(feature = "phone"))]
fn dialled_out_of(_digits: &str, _default_region: Option<&str>) -> Option<String> {
    None
}

/// The E.164 form of a parsed number: `+`, the country code, the national number with its
/// leading zeros. The same text as phonenumber's `Mode::E164` formatter, which also matches the
/// country's national formats against the number first (regular expressions) only to ignore them.
#[cfg(feature = "phone")]
fn e164(number: &phonenumber::PhoneNumber) -> String {
    format!("+{}{}", number.code().value(), number.national())
}

#[cfg(not(feature = "phone"))]
fn checked(raw: &str, candidate: &str, _default_region: Option<&str>) -> Result<String> {
    let Some(digits) = candidate.strip_prefix('+') else {
        return Err(phone_error(raw, "national numbers need the `phone` feature; write it with its country code"));
    };
    if !(8..=15).contains(&digits.len()) {
        return Err(phone_error(raw, format!("{} digits; E.164 numbers have 8 to 15", digits.len())));
    }
    if digits.starts_with('0') {
        return Err(phone_error(raw, "a country calling code never starts with 0"));
    }
    Ok(candidate.to_owned())
}

/// Other spellings of the same mobile subscriber, for lookups only (the input is not included).
///
/// ```
/// use touchpoint::identity::normalize::phone_lookup_variants;
/// assert_eq!(phone_lookup_variants("+5511987654321"), vec!["+551187654321".to_owned()]);
/// assert_eq!(phone_lookup_variants("+551187654321"), vec!["+5511987654321".to_owned()]);
/// assert!(phone_lookup_variants("+551132654321").is_empty()); // a São Paulo landline
/// ```
pub fn phone_lookup_variants(e164: &str) -> Vec<String> {
    let Some(digits) = e164.strip_prefix('+') else { return Vec::new() };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Vec::new();
    }
    let mobile_start = |s: &str| s.as_bytes().first().is_some_and(|b| (b'6'..=b'9').contains(b));
    if let Some(rest) = digits.strip_prefix("55") {
        // Brazil: 2-digit area code + 9 + 8 digits (mobile) ↔ area code + 8 digits.
        if rest.len() == 11 && rest.as_bytes()[2] == b'9' && mobile_start(&rest[3..]) {
            return vec![format!("+55{}{}", &rest[..2], &rest[3..])];
        }
        if rest.len() == 10 && mobile_start(&rest[2..]) {
            return vec![format!("+55{}9{}", &rest[..2], &rest[2..])];
        }
    } else if let Some(rest) = digits.strip_prefix("52") {
        // Mexico: +521 + 10 digits ↔ +52 + 10 digits.
        if rest.len() == 11 && rest.starts_with('1') {
            return vec![format!("+52{}", &rest[1..])];
        }
        if rest.len() == 10 {
            return vec![format!("+521{rest}")];
        }
    } else if let Some(rest) = digits.strip_prefix("54") {
        // Argentina: +549 + 10 digits ↔ +54 + 10 digits.
        if rest.len() == 11 && rest.starts_with('9') {
            return vec![format!("+54{}", &rest[1..])];
        }
        if rest.len() == 10 {
            return vec![format!("+549{rest}")];
        }
    }
    Vec::new()
}

fn email_error(raw: &str, reason: impl Into<String>) -> Error {
    let shown: String = raw.chars().take(320).collect();
    Error::InvalidAddress { kind: "email", raw: shown, reason: reason.into() }
}

/// Normalises an email address: trimmed (of white space and of invisible characters such as a
/// byte order mark; one inside the address is refused) and lowercased, with an internationalised domain in its
/// ASCII form (`bücher.de` → `xn--bcher-kva.de`, RFC 3492 punycode of the lowercased label; the
/// full IDNA mapping of compatibility characters is not applied). Display-name forms
/// (`Ana <a@b>`) are refused: pass the bare address.
///
/// ```
/// use touchpoint::identity::normalize::normalize_email;
/// assert_eq!(normalize_email(" Ana.Souza@Example.COM ").unwrap(), "ana.souza@example.com");
/// assert_eq!(normalize_email("ana@Bücher.de").unwrap(), "ana@xn--bcher-kva.de");
/// assert!(normalize_email("Ana <ana@example.com>").is_err());
/// ```
pub fn normalize_email(raw: &str) -> Result<String> {
    let s = trim_input(raw);
    if s.is_empty() {
        return Err(email_error(raw, "empty"));
    }
    if s.len() > 254 {
        return Err(email_error(raw, "longer than 254 bytes"));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control() || "<>\"(),;[]\\".contains(c)) {
        return Err(email_error(raw, "contains spaces, control characters or a display name; pass the bare address"));
    }
    if s.chars().any(invisible) {
        return Err(email_error(raw, "contains an invisible character (zero-width, direction mark, byte order mark)"));
    }
    let mut parts = s.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(email_error(raw, "needs exactly one @"));
    };
    if local.is_empty() || local.len() > 64 {
        return Err(email_error(raw, "the part before @ must be 1 to 64 bytes"));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(email_error(raw, "misplaced dot before @"));
    }
    if domain.is_empty() {
        return Err(email_error(raw, "no domain after @"));
    }
    let mut ascii_domain = String::with_capacity(domain.len());
    for label in domain.split('.') {
        if label.is_empty() || label.starts_with('-') || label.ends_with('-') {
            return Err(email_error(raw, format!("bad domain label {label:?}")));
        }
        // ASCII letters, digits and `-`; beyond ASCII any printable character (scripts write
        // labels with combining marks: Devanagari viramas, Thai vowel signs), which punycode
        // carries as they are.
        let allowed = |c: char| {
            if c.is_ascii() { c.is_ascii_alphanumeric() || c == '-' } else { !c.is_whitespace() && !c.is_control() }
        };
        if !label.chars().all(allowed) {
            return Err(email_error(raw, format!("bad character in domain label {label:?}")));
        }
        let label = label.to_lowercase();
        let label = if label.is_ascii() {
            label
        } else {
            // An internationalised label is kept in its ASCII form (`xn--…`, RFC 3492), so the
            // Unicode and the punycode spelling of one domain are one address.
            match punycode(&label) {
                Some(encoded) => format!("xn--{encoded}"),
                None => return Err(email_error(raw, format!("bad domain label {label:?}"))),
            }
        };
        if label.len() > 63 {
            return Err(email_error(raw, format!("domain label {label:?} is longer than 63 bytes")));
        }
        if !ascii_domain.is_empty() {
            ascii_domain.push('.');
        }
        ascii_domain.push_str(&label);
    }
    let address = format!("{}@{ascii_domain}", local.to_lowercase());
    if address.len() > 254 {
        return Err(email_error(raw, "longer than 254 bytes"));
    }
    Ok(address)
}

/// The punycode (RFC 3492) encoding of a domain label, without the `xn--` prefix; `None` on
/// overflow (labels are at most a few dozen characters, far below it).
fn punycode(label: &str) -> Option<String> {
    const BASE: u32 = 36;
    const T_MIN: u32 = 1;
    const T_MAX: u32 = 26;
    fn adapt(delta: u32, points: u32, first: bool) -> u32 {
        let mut delta = if first { delta / 700 } else { delta / 2 };
        delta += delta / points;
        let mut k = 0;
        while delta > ((BASE - T_MIN) * T_MAX) / 2 {
            delta /= BASE - T_MIN;
            k += BASE;
        }
        k + (BASE - T_MIN + 1) * delta / (delta + 38)
    }
    fn digit(d: u32) -> char {
        char::from(if d < 26 { b'a' + d as u8 } else { b'0' + (d - 26) as u8 })
    }
    let points: Vec<u32> = label.chars().map(u32::from).collect();
    let mut out: String = label.chars().filter(char::is_ascii).collect();
    let basic = out.len() as u32;
    if basic > 0 {
        out.push('-');
    }
    let (mut n, mut delta, mut bias, mut handled) = (128u32, 0u32, 72u32, basic);
    while (handled as usize) < points.len() {
        let m = points.iter().copied().filter(|&c| c >= n).min()?;
        delta = delta.checked_add((m - n).checked_mul(handled + 1)?)?;
        n = m;
        for &c in &points {
            if c < n {
                delta = delta.checked_add(1)?;
            }
            if c == n {
                let mut q = delta;
                let mut k = BASE;
                loop {
                    let t = if k <= bias {
                        T_MIN
                    } else if k >= bias + T_MAX {
                        T_MAX
                    } else {
                        k - bias
                    };
                    if q < t {
                        break;
                    }
                    out.push(digit(t + (q - t) % (BASE - t)));
                    q = (q - t) / (BASE - t);
                    k += BASE;
                }
                out.push(digit(q));
                bias = adapt(delta, handled + 1, handled == basic);
                delta = 0;
                handled += 1;
            }
        }
        delta = delta.checked_add(1)?;
        n = n.checked_add(1)?;
    }
    Some(out)
}

/// Normalises a platform user id and its scope into `scope:id` (or `id`).
///
/// ```
/// use touchpoint::identity::normalize::normalize_platform_id;
/// assert_eq!(normalize_platform_id(Some(" page-1 "), "psid-9").unwrap(), "page-1:psid-9");
/// assert!(normalize_platform_id(Some("a:b"), "x").is_err());
/// ```
pub fn normalize_platform_id(scope: Option<&str>, id: &str) -> Result<String> {
    let err = |reason: &str| Error::InvalidAddress {
        kind: "platform id",
        raw: id.chars().take(256).collect(),
        reason: reason.to_owned(),
    };
    let id = trim_input(id);
    if id.is_empty() || id.len() > 256 {
        return Err(err("the id must be 1 to 256 bytes"));
    }
    if id.chars().any(|c| c.is_control() || c.is_whitespace() || invisible(c)) {
        return Err(err("the id contains spaces, control or invisible characters"));
    }
    match scope.map(trim_input) {
        None => Ok(id.to_owned()),
        Some(s) if s.is_empty() || s.len() > 128 => Err(err("the scope must be 1 to 128 bytes")),
        Some(s) if s.contains(':') || s.chars().any(|c| c.is_control() || c.is_whitespace() || invisible(c)) => {
            Err(err("the scope must not contain ':', spaces or control characters"))
        }
        Some(s) => Ok(format!("{s}:{id}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_in_common_spellings_normalise_to_e164() {
        for (raw, want) in [
            ("+44 20 7946 0958", "+442079460958"),
            ("0044 20 7946 0958", "+442079460958"),
            ("5511987654321", "+5511987654321"),
            ("+55 (11) 98765-4321", "+5511987654321"),
            ("+49 30 901820", "+4930901820"),
            ("+91 98765 43210", "+919876543210"),
        ] {
            assert_eq!(normalize_phone(raw, None).unwrap(), want, "{raw}");
        }
    }

    #[cfg(feature = "phone")]
    #[test]
    fn national_spellings_use_the_default_region() {
        assert_eq!(normalize_phone("(415) 555-0123", Some("US")).unwrap(), "+14155550123");
        assert_eq!(normalize_phone("020 7946 0958", Some("gb")).unwrap(), "+442079460958");
        assert!(normalize_phone("020 7946 0958", Some("XX")).is_err());
    }

    #[cfg(feature = "phone")]
    #[test]
    fn numbers_dialled_out_with_the_regions_own_prefix_keep_their_country() {
        for (raw, region) in [
            ("0011 44 20 7946 0958", "AU"), // Australia dials out with 0011
            ("001 44 20 7946 0958", "TH"),  // Thailand with 001
            ("001 44 20 7946 0958", "KR"),  // South Korea with 001
            ("0044 20 7946 0958", "GB"),    // 00 where it is the prefix
            ("0044 20 7946 0958", "US"),    // 00 where it is not (011): still read as dialled out
            ("011 44 20 7946 0958", "US"),
        ] {
            assert_eq!(normalize_phone(raw, Some(region)).unwrap(), "+442079460958", "{raw} in {region}");
        }
        // Dialled out to the region itself, and national numbers of the region.
        assert_eq!(normalize_phone("0011 61 2 9374 4000", Some("AU")).unwrap(), "+61293744000");
        assert_eq!(normalize_phone("02 9374 4000", Some("AU")).unwrap(), "+61293744000");
    }

    #[cfg(feature = "phone")]
    #[test]
    fn bare_international_digits_stay_international_with_a_default_region() {
        for (raw, want) in [("5511987654321", "+5511987654321"), ("14155550123", "+14155550123")] {
            assert_eq!(normalize_phone(raw, Some("GB")).unwrap(), want, "{raw}");
        }
        // Not bare digits, or valid in neither reading: the national reading, never another
        // country's number.
        assert_eq!(normalize_phone("1 55 1234 5678", Some("MX")).unwrap(), "+5215512345678");
        assert_eq!(normalize_phone("551187654321", Some("BR")).unwrap(), "+551187654321");
        assert_eq!(normalize_phone("5215512345678", Some("MX")).unwrap(), "+5215512345678");
    }

    #[cfg(feature = "phone")]
    #[test]
    fn e164_text_is_what_phonenumbers_formatter_writes() {
        let mut inputs: Vec<(String, Option<&str>)> = [
            "+39 06 4991 0000", // Italy: the national number keeps its leading zero
            "+39 335 123 4567",
            "+225 07 12 34 56 78", // Côte d'Ivoire: leading zero kept too
            "+44 20 7946 0958",
            "+1 415 555 0123",
            "+7 495 123 45 67",
            "+86 138 0013 8000",
            "+971 50 123 4567",
            "+376 312 345",   // Andorra: six digits
            "+800 1234 5678", // international freephone
        ]
        .iter()
        .map(|n| ((*n).to_owned(), None))
        .collect();
        inputs.extend(
            [("06 4991 0000", Some("IT")), ("(415) 555-0123", Some("US")), ("020 7946 0958", Some("GB"))]
                .map(|(n, r)| (n.to_owned(), r)),
        );
        // A sweep of generated numbers over many country codes and lengths.
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..400 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let digits = 7 + (x % 8) as usize;
            inputs.push((format!("+{}", &format!("{:020}", x)[20 - digits - 1..]), None));
        }
        let mut compared = 0;
        for (raw, region) in &inputs {
            let region_id = region.map(|r| r.parse::<phonenumber::country::Id>().unwrap());
            let Ok(number) = phonenumber::parse(region_id, raw) else { continue };
            let want = phonenumber::format(&number).mode(phonenumber::Mode::E164).to_string();
            assert_eq!(e164(&number), want, "{raw}");
            compared += 1;
        }
        assert!(compared > 200, "only {compared} inputs parsed");
    }

    #[test]
    fn bad_phones_are_typed_errors() {
        for raw in ["", "   ", "abc", "+1", "+12345678901234567", "☎ 555", &"9".repeat(100), "+44 20 7946 0958 ext. 2"]
        {
            assert!(matches!(normalize_phone(raw, None), Err(Error::InvalidAddress { kind: "phone", .. })), "{raw:?}");
        }
    }

    #[test]
    fn lookup_variants_go_both_ways_and_spare_landlines() {
        assert_eq!(phone_lookup_variants("+5511987654321"), vec!["+551187654321"]);
        assert_eq!(phone_lookup_variants("+551187654321"), vec!["+5511987654321"]);
        assert!(phone_lookup_variants("+551132654321").is_empty());
        assert_eq!(phone_lookup_variants("+5215512345678"), vec!["+525512345678"]);
        assert_eq!(phone_lookup_variants("+525512345678"), vec!["+5215512345678"]);
        assert_eq!(phone_lookup_variants("+5491123456789"), vec!["+541123456789"]);
        assert_eq!(phone_lookup_variants("+541123456789"), vec!["+5491123456789"]);
        assert!(phone_lookup_variants("+442079460958").is_empty());
        assert!(phone_lookup_variants("garbage").is_empty());
        assert!(phone_lookup_variants("+55é").is_empty());
    }

    /// RFC 3492 §7.1 samples and common domains, checked against Python's `punycode` codec.
    #[test]
    fn punycode_encodes_labels() {
        for (label, encoded) in [
            ("bücher", "bcher-kva"),
            ("münchen", "mnchen-3ya"),
            ("他们为什么不说中文", "ihqwcrb4cv8a8dqg056pqjye"),
            ("3年b組金八先生", "3b-ww4c5e180e575a65lsy2b"),
            ("правительство", "80aealotwbjpid2k"),
            ("ü", "tda"),
            ("a-ü-b", "a--b-1ra"),
            ("ñandú", "and-6ma2c"),
        ] {
            assert_eq!(punycode(label).as_deref(), Some(encoded), "{label}");
        }
    }

    #[test]
    fn unicode_and_punycode_spellings_of_a_domain_are_one_address() {
        assert_eq!(normalize_email("Ana@Bücher.DE").unwrap(), "ana@xn--bcher-kva.de");
        assert_eq!(normalize_email("ana@XN--BCHER-KVA.de").unwrap(), "ana@xn--bcher-kva.de");
        assert_eq!(normalize_email("иван@правительство.рф").unwrap(), "иван@xn--80aealotwbjpid2k.xn--p1ai");
        // The 63-byte label limit applies to the encoded label.
        assert!(normalize_email(&format!("ana@{}.de", "x".repeat(63))).is_ok());
        let err = normalize_email(&format!("ana@{}ü.de", "x".repeat(60))).unwrap_err().to_string();
        assert!(err.contains("longer than 63 bytes"), "{err}");
    }

    #[test]
    fn emails_are_lowercased_and_checked() {
        assert_eq!(normalize_email("  Ana@Example.com ").unwrap(), "ana@example.com");
        assert_eq!(normalize_email("ana+work@example.com").unwrap(), "ana+work@example.com");
        for raw in [
            "",
            "ana",
            "a@b@c",
            "@example.com",
            "ana@",
            "Ana <ana@example.com>",
            "a b@example.com",
            "ana@-x.com",
            "ana@x..com",
            ".ana@x.com",
        ] {
            assert!(matches!(normalize_email(raw), Err(Error::InvalidAddress { kind: "email", .. })), "{raw:?}");
        }
    }

    /// An international spelling with the trunk `0` in brackets is the number without it; a
    /// national one keeps it as its trunk prefix.
    #[test]
    fn a_bracketed_trunk_zero_after_the_country_code_is_not_dialled() {
        for raw in ["+44 (0) 7700 900123", "+44(0)7700900123", "0044 (0)7700 900123"] {
            assert_eq!(normalize_phone(raw, None).unwrap(), "+447700900123", "{raw}");
        }
        assert_eq!(normalize_phone("+49 (0)30 1234567", None).unwrap(), "+49301234567");
        if cfg!(feature = "phone") {
            assert_eq!(normalize_phone("(0) 7700 900123", Some("GB")).unwrap(), "+447700900123");
        }
    }

    /// A byte order mark or zero-width space around an address (a CSV import, a paste) is
    /// dropped; one inside it is refused. Kept, either would be a second spelling of the
    /// address that nobody can see.
    #[test]
    fn invisible_characters_make_no_second_spelling() {
        for raw in ["\u{feff}ana@example.com", "ana@example.com\u{2060}", "\u{200b} Ana@Example.com\u{200d}"] {
            assert_eq!(normalize_email(raw).unwrap(), "ana@example.com", "{raw:?}");
        }
        for raw in [
            "ana\u{200b}@example.com",
            "ana@exa\u{200b}mple.com",
            "an\u{ad}a@example.com",
            "ana@b\u{fc}cher\u{200e}.de",
        ] {
            assert!(matches!(normalize_email(raw), Err(Error::InvalidAddress { kind: "email", .. })), "{raw:?}");
        }
        assert_eq!(normalize_platform_id(Some("\u{feff}page-1"), "psid-9\u{200b}").unwrap(), "page-1:psid-9");
        assert!(normalize_platform_id(None, "psid\u{2060}9").is_err());
        assert!(normalize_platform_id(Some("pa\u{200b}ge"), "9").is_err());
        assert_eq!(normalize_phone("\u{feff}+44 20 7946 0958", None).unwrap(), "+442079460958");
    }

    #[test]
    fn platform_ids_are_scoped() {
        assert_eq!(normalize_platform_id(None, " 123 ").unwrap(), "123");
        assert_eq!(normalize_platform_id(Some("bot"), "42").unwrap(), "bot:42");
        assert!(normalize_platform_id(Some(""), "42").is_err());
        assert!(normalize_platform_id(None, "a b").is_err());
        assert!(normalize_platform_id(None, &"x".repeat(300)).is_err());
    }
}
