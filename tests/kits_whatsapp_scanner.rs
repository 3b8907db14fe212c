//! The WhatsApp kit reads webhooks with its own JSON scanner and falls back to serde_json for
//! whatever the scanner is not sure of. These tests hold the two readings equal, through the
//! public API only:
//!
//! * **the serde reading** of a body is forced by nesting junk deeper than the scanner goes
//!   (120 arrays under an unknown top-level key): serde_json ignores it, the scanner leaves the
//!   whole body to serde. `serde_reading(body)` is therefore the kit as it was before the scanner;
//! * every fixture and thousands of generated variants of them (keys shuffled, unknown keys with
//!   nested junk, strings and keys escaped, unicode, whitespace) give the same events both ways,
//!   and the same events as the fixture itself;
//! * malformed bodies (every truncation of every fixture, bad escapes, lone surrogates, bad
//!   numbers and literals, trailing garbage, invalid UTF-8) are errors both ways, never panics,
//!   and serde_json rejects them too.

use serde_json::Value;
use touchpoint::Error;
use touchpoint::channels::KitEvent;
use touchpoint::channels::whatsapp::WhatsAppKit;

#[path = "rng/mod.rs"]
mod rng;
use rng::Rng;

/// Nesting the scanner does not follow (it hands such bodies to serde_json).
const DEEP: usize = 120;

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = format!("{}/tests/fixtures/whatsapp", env!("CARGO_MANIFEST_DIR"));
    let mut paths: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    let out: Vec<_> = paths
        .iter()
        .map(|p| {
            let body = std::fs::read(p).unwrap();
            let trimmed = body.trim_ascii().to_vec();
            (p.file_name().unwrap().to_string_lossy().into_owned(), trimmed)
        })
        .collect();
    assert!(out.len() >= 20, "the WhatsApp fixtures are missing");
    out
}

fn kit() -> WhatsAppKit {
    WhatsAppKit::new()
}

/// The body with deep junk under a new first key of the top-level object.
fn with_deep_junk(body: &[u8]) -> Vec<u8> {
    let open = body.iter().position(|&b| b == b'{').expect("a JSON object");
    let mut out = body[..=open].to_vec();
    out.extend_from_slice(b"\"zz_deep\":");
    out.extend(std::iter::repeat_n(b'[', DEEP));
    out.extend(std::iter::repeat_n(b']', DEEP));
    out.push(b',');
    out.extend_from_slice(&body[open + 1..]);
    out
}

/// What the kit's serde reading makes of a valid body.
fn serde_reading(body: &[u8]) -> Result<Vec<KitEvent>, Error> {
    kit().parse_webhook(&with_deep_junk(body))
}

fn messages(events: &[KitEvent]) -> usize {
    events.iter().filter(|e| e.message().is_some()).count()
}

#[test]
fn the_deep_junk_only_changes_the_reader_not_the_result() {
    // Serde ignores the junk, so the forced serde reading of a fixture has its events.
    let text = &fixtures().into_iter().find(|(n, _)| n == "text.json").unwrap().1;
    let junk = with_deep_junk(text);
    assert!(serde_json::from_slice::<Value>(&junk).is_ok());
    let events = serde_reading(text).unwrap();
    assert_eq!(messages(&events), 1);
    assert_eq!(events, kit().parse_webhook(text).unwrap());
}

#[test]
fn every_fixture_reads_the_same_with_the_scanner_and_with_serde() {
    for (name, body) in fixtures() {
        let scanned = kit().parse_webhook(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!scanned.is_empty(), "{name}");
        assert_eq!(scanned, serde_reading(&body).unwrap(), "{name}");
    }
}

// ----- generated variants -----

/// Writes `value` as JSON with random key order, escapes, whitespace and unknown keys.
struct Writer<'r> {
    rng: &'r mut Rng,
    out: String,
}

impl Writer<'_> {
    fn space(&mut self) {
        for _ in 0..self.rng.below(4).saturating_sub(1) {
            self.out.push([' ', '\n', '\t', '\r'][self.rng.index(4)]);
        }
    }

    fn string(&mut self, s: &str) {
        self.out.push('"');
        for c in s.chars() {
            let escape = self.rng.below(4) == 0;
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                '\n' if escape => self.out.push_str("\\u000a"),
                '\n' => self.out.push_str("\\n"),
                '\t' => self.out.push_str("\\t"),
                '\r' => self.out.push_str("\\r"),
                '\u{8}' => self.out.push_str("\\b"),
                '\u{c}' => self.out.push_str("\\f"),
                c if (c as u32) < 0x20 => self.out.push_str(&format!("\\u{:04x}", c as u32)),
                '/' if escape => self.out.push_str("\\/"),
                c if escape => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        // Upper or lower case hex digits, both valid.
                        if self.rng.below(2) == 0 {
                            self.out.push_str(&format!("\\u{unit:04x}"));
                        } else {
                            self.out.push_str(&format!("\\u{unit:04X}"));
                        }
                    }
                }
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }

    /// A value the kit never reads (under an unknown key): nested containers, every number
    /// form, escapes the kit must skip (including a lone surrogate, which serde_json ignores in
    /// a skipped string).
    fn junk(&mut self, depth: u32) {
        let pick = if depth > 3 { self.rng.below(6) } else { self.rng.below(8) };
        match pick {
            0 => self.out.push_str(
                ["0", "-0", "12", "-7.25", "1e3", "2E-2", "0.5e+10", "18446744073709551616"][self.rng.index(8)],
            ),
            1 => self.out.push_str(["true", "false", "null"][self.rng.index(3)]),
            2 => self.out.push_str(
                ["\"\"", "\"a\\\"b\"", "\"\\ud800 lone\"", "\"tab\\there\"", "\"ü\\u00fc😀\""][self.rng.index(5)],
            ),
            3 => self.string("junk \u{1F600} é / \\ \""),
            4 => self.out.push_str("{}"),
            5 => self.out.push_str("[]"),
            6 => {
                self.out.push('[');
                for i in 0..self.rng.below(4) {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.space();
                    self.junk(depth + 1);
                    self.space();
                }
                self.out.push(']');
            }
            _ => {
                self.out.push('{');
                for i in 0..self.rng.below(4) {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.space();
                    self.string(&format!("k{i}"));
                    self.space();
                    self.out.push(':');
                    self.space();
                    self.junk(depth + 1);
                }
                self.out.push('}');
            }
        }
    }

    fn value(&mut self, v: &Value) {
        match v {
            Value::Object(map) => {
                let mut entries: Vec<(String, Option<&Value>)> =
                    map.iter().map(|(k, v)| (k.clone(), Some(v))).collect();
                for n in 0..self.rng.below(3) {
                    entries.push((format!("x_unknown_{n}"), None));
                }
                // Shuffle (Fisher–Yates).
                for i in (1..entries.len()).rev() {
                    let j = self.rng.index(i + 1);
                    entries.swap(i, j);
                }
                self.out.push('{');
                self.space();
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                        self.space();
                    }
                    self.string(k);
                    self.space();
                    self.out.push(':');
                    self.space();
                    match v {
                        Some(v) => self.value(v),
                        None => self.junk(0),
                    }
                    self.space();
                }
                self.out.push('}');
            }
            Value::Array(items) => {
                self.out.push('[');
                self.space();
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                        self.space();
                    }
                    self.value(item);
                    self.space();
                }
                self.out.push(']');
            }
            Value::String(s) => self.string(s),
            other => self.out.push_str(&other.to_string()),
        }
    }
}

/// Gives some strings of the document non-ASCII text, so escapes cover surrogate pairs.
fn unicode(v: &mut Value, rng: &mut Rng) {
    match v {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if matches!(k.as_str(), "body" | "name" | "caption" | "title") && v.is_string() && rng.below(2) == 0 {
                    let s = v.as_str().unwrap();
                    *v = Value::String(format!("{s} — naïve 😀 ✓\n\tsecond\r\u{8}\u{c}\u{1} line"));
                } else {
                    unicode(v, rng);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| unicode(v, rng)),
        _ => {}
    }
}

#[test]
fn generated_variants_read_the_same_with_the_scanner_and_with_serde() {
    let mut rng = Rng(0x5ca9_0001);
    let mut checked = 0;
    let mut changed_text = 0;
    for (name, body) in fixtures() {
        let value: Value = serde_json::from_slice(&body).unwrap();
        let original = kit().parse_webhook(&body).unwrap();
        for round in 0..120 {
            let mut value = value.clone();
            let unicode_round = round % 3 == 0;
            if unicode_round {
                unicode(&mut value, &mut rng);
            }
            let mut w = Writer { rng: &mut rng, out: String::new() };
            w.value(&value);
            let variant = w.out;
            // The variant is JSON (its junk may hold a lone surrogate, which serde_json accepts
            // where it ignores a string but not in a `Value`).
            assert!(serde_json::from_str::<serde::de::IgnoredAny>(&variant).is_ok(), "{name}: {variant}");
            let scanned = kit().parse_webhook(variant.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}\n{variant}"));
            assert_eq!(scanned, serde_reading(variant.as_bytes()).unwrap(), "{name}: {variant}");
            if unicode_round {
                // The plain canonical form of the changed document reads the same.
                let canonical = serde_json::to_vec(&value).unwrap();
                assert_eq!(scanned, kit().parse_webhook(&canonical).unwrap(), "{name}: {variant}");
                changed_text += usize::from(scanned != original);
            } else {
                assert_eq!(scanned, original, "{name}: {variant}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 2000, "{checked} variants");
    assert!(changed_text > 100, "the unicode rounds changed only {changed_text} results");
}

// ----- edge cases: both readings agree -----

fn replace(body: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = std::str::from_utf8(body).unwrap();
    assert!(text.contains(from), "{from:?} not in the fixture");
    text.replacen(from, to, 1).into_bytes()
}

#[test]
fn odd_but_telling_shapes_read_the_same_both_ways() {
    let text = fixtures().into_iter().find(|(n, _)| n == "text.json").unwrap().1;
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        // (what, body, whether it parses)
        ("timestamp as a number", replace(&text, "\"1735689600\"", "1735689600"), true),
        ("timestamp as an escaped string", replace(&text, "\"1735689600\"", "\"\\u00317356896\\u00300\""), true),
        ("timestamp -0 (serde_json reads a float)", replace(&text, "\"1735689600\"", "-0"), false),
        ("timestamp as a float", replace(&text, "\"1735689600\"", "1735689600.0"), false),
        ("timestamp with an exponent", replace(&text, "\"1735689600\"", "1e9"), false),
        ("timestamp beyond i64", replace(&text, "\"1735689600\"", "9223372036854775808"), false),
        ("timestamp beyond u64", replace(&text, "\"1735689600\"", "99999999999999999999"), false),
        ("timestamp negative", replace(&text, "\"1735689600\"", "-5"), true),
        ("timestamp string with a sign", replace(&text, "\"1735689600\"", "\"+1735689600\""), false),
        ("escaped key", replace(&text, "\"type\"", "\"\\u0074ype\""), true),
        ("key with a lone surrogate", replace(&text, "\"type\"", "\"type\\ud800\""), false),
        ("duplicate known key", replace(&text, "\"type\":\"text\"", "\"type\":\"text\",\"type\":\"text\""), false),
        ("duplicate null optional key", replace(&text, "\"from\":", "\"from\":null,\"from\":"), false),
        ("duplicate unknown key", replace(&text, "\"messaging_product\":\"whatsapp\"", "\"u\":1,\"u\":2"), true),
        (
            "metadata as an array (serde's struct-as-sequence)",
            replace(
                &text,
                "{\"display_phone_number\":\"15550001111\",\"phone_number_id\":\"800000000000001\"}",
                "[\"800000000000001\"]",
            ),
            true,
        ),
        ("context null", replace(&text, "\"type\":\"text\"", "\"type\":\"text\",\"context\":null"), true),
        (
            "context id",
            replace(&text, "\"type\":\"text\"", "\"type\":\"text\",\"context\":{\"id\":\"wamid.PREV\",\"from\":\"x\"}"),
            true,
        ),
        ("entry null", replace(&text, "\"entry\":[", "\"entry\":null,\"e\":["), false),
        ("contacts null", replace(&text, "\"contacts\":[", "\"contacts\":null,\"c\":["), false),
        ("value null", replace(&text, "\"value\":{", "\"value\":null,\"v\":{"), false),
        ("text null", replace(&text, "\"text\":{", "\"text\":null,\"t\":{"), false),
        ("body null", replace(&text, "{\"body\":", "{\"body\":null,\"b\":"), false),
        ("from as a number", replace(&text, "\"from\":\"447700900123\"", "\"from\":447700900123"), false),
        (
            "image on a text message, ignored but read",
            replace(&text, "\"type\":\"text\"", "\"type\":\"text\",\"image\":{\"id\":\"1\"}"),
            true,
        ),
        (
            "image of the wrong type on a text message",
            replace(&text, "\"type\":\"text\"", "\"type\":\"text\",\"image\":5"),
            false,
        ),
        ("statuses null", replace(&text, "\"messages\":[", "\"statuses\":null,\"m\":["), false),
        ("object missing", replace(&text, "\"object\":", "\"obj\":"), false),
        (
            "whitespace everywhere",
            String::from_utf8(text.clone())
                .unwrap()
                .replace("\",\"", "\" ,\n\t\"")
                .replace("\":", "\"\r: ")
                .into_bytes(),
            true,
        ),
    ];
    for (what, body, parses) in cases {
        let scanned = kit().parse_webhook(&body);
        let serde = serde_reading(&body);
        assert_eq!(scanned.is_ok(), parses, "{what}: {scanned:?}");
        match (scanned, serde) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{what}"),
            (Err(Error::InvalidInput { field, .. }), Err(_)) => assert_eq!(field, "whatsapp webhook", "{what}"),
            (a, b) => panic!("{what}: the readings differ: {a:?} vs {b:?}"),
        }
    }
}

// ----- malformed input -----

fn rejected(what: &str, body: &[u8]) {
    match kit().parse_webhook(body) {
        Err(Error::InvalidInput { field: "whatsapp webhook", .. }) => {}
        other => panic!("{what}: {other:?}\n{}", String::from_utf8_lossy(body)),
    }
    assert!(serde_json::from_slice::<Value>(body).is_err(), "{what}: serde_json accepts it");
}

#[test]
fn every_truncation_of_every_fixture_is_an_error() {
    let mut n = 0;
    for (name, body) in fixtures() {
        for len in 0..body.len() {
            rejected(&format!("{name} cut at {len}"), &body[..len]);
            n += 1;
        }
    }
    assert!(n > 10_000, "{n}");
}

#[test]
fn bad_escapes_surrogates_numbers_literals_and_garbage_are_errors() {
    let text = fixtures().into_iter().find(|(n, _)| n == "text.json").unwrap().1;
    let body = "\"Hi, my parcel has not arrived\"";
    let unknown = "\"messaging_product\":\"whatsapp\"";
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("unknown escape", replace(&text, body, "\"Hi \\x\"")),
        ("short unicode escape", replace(&text, body, "\"Hi \\u12\"")),
        ("non-hex unicode escape", replace(&text, body, "\"Hi \\u12G4\"")),
        ("backslash at the end", replace(&text, body, "\"Hi \\")),
        ("lone high surrogate", replace(&text, body, "\"Hi \\ud800\"")),
        ("lone low surrogate", replace(&text, body, "\"Hi \\udc00 there\"")),
        ("high surrogate then a letter", replace(&text, body, "\"\\ud83d\\u0041\"")),
        ("high surrogate at the end", replace(&text, "\"447700900123\",\"id\"", "\"44770090\\ud83d\",\"id\"")),
        ("raw control character", replace(&text, body, "\"Hi\u{1}\"")),
        ("raw newline", replace(&text, body, "\"Hi\nthere\"")),
        ("bad escape in an unknown key's value", replace(&text, unknown, "\"u\":\"\\q\"")),
        ("bad escape in an unknown key", replace(&text, unknown, "\"u\\q\":1")),
        ("leading zero", replace(&text, unknown, "\"u\":01")),
        ("dot without digits", replace(&text, unknown, "\"u\":1.")),
        ("lone minus", replace(&text, unknown, "\"u\":-")),
        ("exponent without digits", replace(&text, unknown, "\"u\":1e")),
        ("leading dot", replace(&text, unknown, "\"u\":.5")),
        ("plus sign", replace(&text, unknown, "\"u\":+1")),
        ("hex number", replace(&text, unknown, "\"u\":0x10")),
        ("NaN", replace(&text, unknown, "\"u\":NaN")),
        ("bad literal", replace(&text, unknown, "\"u\":tru")),
        ("capitalised literal", replace(&text, unknown, "\"u\":True")),
        ("single quotes", replace(&text, unknown, "'u':1")),
        ("trailing comma in an object", replace(&text, unknown, "\"u\":1,")),
        ("trailing comma in an array", replace(&text, unknown, "\"u\":[1,]")),
        ("missing colon", replace(&text, unknown, "\"u\" 1")),
        ("missing comma", replace(&text, unknown, "\"u\":1 \"v\":2")),
        ("unclosed nested junk", replace(&text, unknown, "\"u\":[{\"a\":[1}]")),
        ("trailing garbage", [&text[..], b"x"].concat()),
        ("a second document", [&text[..], b" {}"].concat()),
        ("comment", [&text[..], b" // hi"].concat()),
        (
            "invalid UTF-8 in a string",
            replace(&text, "Hi,", "Hi\u{fffd},").iter().map(|&b| if b == 0xef { 0xff } else { b }).collect(),
        ),
        ("truncated UTF-8", [&text[..text.len() - 10], &[0xe2, 0x82]].concat()),
        ("empty", Vec::new()),
        ("whitespace only", b" \n".to_vec()),
    ];
    for (what, body) in cases {
        rejected(what, &body);
    }
}

#[test]
fn random_byte_damage_never_panics_and_both_readings_agree() {
    let mut rng = Rng(0x5ca9_0002);
    let bytes: &[u8] = b"{}[],:\"\\/u0123456789abcdefABCDEF-+.eE tnrfl\x00\x1f\x7f\xc3\xa9\xff";
    for (name, body) in fixtures() {
        for _ in 0..60 {
            let mut damaged = body.clone();
            for _ in 0..=rng.below(3) {
                let at = rng.index(damaged.len());
                match rng.below(3) {
                    0 => damaged[at] = bytes[rng.index(bytes.len())],
                    1 => {
                        damaged.remove(at);
                    }
                    _ => damaged.insert(at, bytes[rng.index(bytes.len())]),
                }
            }
            let scanned = kit().parse_webhook(&damaged);
            let serde = serde_reading(&damaged);
            match (&scanned, &serde) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{name}: {}", String::from_utf8_lossy(&damaged)),
                (Err(_), Err(_)) => {
                    // Whatever the kit rejects that serde_json rejects as JSON is not JSON at all.
                }
                _ => panic!("{name}: the readings differ on {}", String::from_utf8_lossy(&damaged)),
            }
            if scanned.is_ok() {
                assert!(
                    serde_json::from_slice::<serde::de::IgnoredAny>(&damaged).is_ok(),
                    "{name}: the kit accepted what is not JSON: {}",
                    String::from_utf8_lossy(&damaged)
                );
            }
        }
    }
}
