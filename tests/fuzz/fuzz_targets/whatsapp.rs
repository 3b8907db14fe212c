//! WhatsApp Cloud API webhook parser: any bytes give events or a typed error, never a panic, and
//! every message handed out has the shape the engine accepts.
//!
//! The kit reads bodies with its own JSON scanner and leaves what the scanner is unsure of to
//! serde_json. The target also checks the two readings against each other: the same body with
//! junk nested deeper than the scanner goes (under a new first key, which serde_json ignores)
//! is read by serde_json alone, and must give the same events, or an error exactly when the
//! plain body does. And whatever the kit accepts is JSON by serde_json's grammar.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;
use touchpoint::channels::whatsapp::WhatsAppKit;
use touchpoint::model::ContentLimits;

static KIT: LazyLock<WhatsAppKit> = LazyLock::new(WhatsAppKit::new);

/// Deeper than the kit's scanner follows (it hands such bodies to serde_json).
const DEEP: usize = 120;

/// `data` with `"zz_deep":[[…]]` as the first key of its top-level object, if it starts with
/// one (after JSON whitespace).
fn with_deep_junk(data: &[u8]) -> Option<Vec<u8>> {
    let open = data.iter().position(|b| !matches!(b, b' ' | b'\n' | b'\r' | b'\t'))?;
    if data[open] != b'{' {
        return None;
    }
    let mut out = data[..=open].to_vec();
    out.extend_from_slice(b"\"zz_deep\":");
    out.extend(std::iter::repeat_n(b'[', DEEP));
    out.extend(std::iter::repeat_n(b']', DEEP));
    // `{}` becomes `{"zz_deep":[…]}`, anything else gets a comma before its first key.
    let rest = &data[open + 1..];
    if rest.iter().find(|b| !matches!(b, b' ' | b'\n' | b'\r' | b'\t')) != Some(&b'}') {
        out.push(b',');
    }
    out.extend_from_slice(rest);
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let parsed = KIT.parse_webhook(data);
    if let Ok(events) = &parsed {
        assert!(serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok(), "accepted what is not JSON");
        let unlimited =
            ContentLimits { max_text_bytes: usize::MAX, max_options: usize::MAX, max_parameters: usize::MAX };
        for event in events {
            if let Some(msg) = event.message() {
                assert!(msg.content.validate(&unlimited).is_ok(), "{msg:?}");
                assert!(!msg.external_id.trim().is_empty());
            }
        }
    }
    if let Some(junk) = with_deep_junk(data) {
        match (&parsed, KIT.parse_webhook(&junk)) {
            (Ok(scanned), Ok(serde)) => assert_eq!(scanned, &serde, "the scanner and serde_json disagree"),
            (Err(_), Err(_)) => {}
            (scanned, serde) => panic!("the scanner and serde_json disagree: {scanned:?} vs {serde:?}"),
        }
    }
});
