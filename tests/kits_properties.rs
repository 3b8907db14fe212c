//! Properties of the kits and signature checks over generated input: arbitrary bytes, arbitrary
//! JSON and mutated fixtures never panic; whatever a kit accepts, the engine can ingest (its only
//! possible objection is a phone number it cannot normalise); signatures verify exactly the bytes
//! they were made for.

use proptest::prelude::*;
use serde_json::Value;
use std::sync::Arc;
use touchpoint::channels::KitEvent;
use touchpoint::channels::messenger::MessengerKit;
use touchpoint::channels::signature::{MetaSignature, SlackSignature, TwilioSignature};
use touchpoint::channels::telegram::TelegramKit;
use touchpoint::channels::whatsapp::WhatsAppKit;
use touchpoint::model::{EndpointId, TenantId};
use touchpoint::store::InMemoryStore;
use touchpoint::{Engine, Error};

fn fixtures(kit: &str) -> Vec<Value> {
    let dir = format!("{}/tests/fixtures/{kit}", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    names.iter().map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()).collect()
}

/// Keys the kits look for, so generated objects reach deep into the parsers.
const KEYS: &[&str] = &[
    "object",
    "entry",
    "id",
    "changes",
    "field",
    "value",
    "metadata",
    "phone_number_id",
    "contacts",
    "profile",
    "name",
    "wa_id",
    "user_id",
    "messages",
    "statuses",
    "from",
    "from_user_id",
    "timestamp",
    "type",
    "text",
    "body",
    "image",
    "caption",
    "location",
    "latitude",
    "longitude",
    "interactive",
    "button_reply",
    "list_reply",
    "title",
    "reaction",
    "message_id",
    "emoji",
    "errors",
    "code",
    "status",
    "recipient_id",
    "context",
    "messaging",
    "sender",
    "recipient",
    "message",
    "mid",
    "attachments",
    "payload",
    "url",
    "quick_reply",
    "postback",
    "delivery",
    "mids",
    "watermark",
    "read",
    "is_echo",
    "update_id",
    "message_id",
    "chat",
    "date",
    "photo",
    "file_id",
    "callback_query",
    "data",
    "contact",
    "phone_number",
    "edited_message",
    "reply_markup",
    "inline_keyboard",
    "callback_data",
];

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        "[0-9]{0,20}".prop_map(Value::from),
        prop::sample::select(KEYS).prop_map(Value::from),
        "\\PC{0,16}".prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 96, 8, |inner| {
        let key = prop_oneof![prop::sample::select(KEYS).prop_map(String::from), "[a-z_]{1,10}"];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..8).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every JSON pointer in `v`.
fn pointers(v: &Value, here: String, out: &mut Vec<String>) {
    out.push(here.clone());
    match v {
        Value::Array(items) => items.iter().enumerate().for_each(|(i, x)| pointers(x, format!("{here}/{i}"), out)),
        Value::Object(map) => map
            .iter()
            .for_each(|(k, x)| pointers(x, format!("{here}/{}", k.replace('~', "~0").replace('/', "~1")), out)),
        _ => {}
    }
}

/// A fixture with the value at one of its pointers replaced (or removed).
fn mutated(all: Vec<Value>) -> impl Strategy<Value = Vec<u8>> {
    (prop::sample::select(all), any::<prop::sample::Index>(), arb_json(), any::<bool>()).prop_map(
        |(mut doc, at, replacement, remove)| {
            let mut ptrs = Vec::new();
            pointers(&doc, String::new(), &mut ptrs);
            let ptr = at.get(&ptrs).clone();
            if remove && let Some((parent, key)) = ptr.rsplit_once('/') {
                match doc.pointer_mut(parent) {
                    Some(Value::Object(m)) => {
                        m.remove(&key.replace("~1", "/").replace("~0", "~"));
                    }
                    Some(Value::Array(a)) => {
                        if let Ok(i) = key.parse::<usize>() {
                            a.remove(i);
                        }
                    }
                    _ => {}
                }
            } else if let Some(slot) = doc.pointer_mut(&ptr) {
                *slot = replacement;
            }
            serde_json::to_vec(&doc).unwrap()
        },
    )
}

fn kits() -> (WhatsAppKit, MessengerKit, TelegramKit) {
    (WhatsAppKit::new(), MessengerKit::new(), TelegramKit::new(EndpointId::new("tg-bot").unwrap()).unwrap())
}

fn parse_all(body: &[u8]) -> [Result<Vec<KitEvent>, Error>; 3] {
    let (wa, fb, tg) = kits();
    [wa.parse_webhook(body), fb.parse_webhook(body), tg.parse_update(body)]
}

/// Whatever a kit accepted, the engine ingests — except phone numbers it cannot normalise,
/// which it refuses with a typed address error.
fn ingestible(events: Vec<KitEvent>) -> Result<(), TestCaseError> {
    let engine = Engine::builder(Arc::new(InMemoryStore::new())).build();
    let tenant = TenantId::new("t").unwrap();
    for event in events {
        if let Some(msg) = event.into_message() {
            let what = format!("{msg:?}");
            match futures::executor::block_on(engine.ingest(&tenant, msg)) {
                Ok(_) | Err(Error::InvalidAddress { kind: "phone", .. }) => {}
                Err(e) => return Err(TestCaseError::fail(format!("kit output refused by ingest: {e}\n{what}"))),
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        for result in parse_all(&body) {
            if let Err(e) = result {
                prop_assert!(matches!(e, Error::InvalidInput { .. }), "{e:?}");
            }
        }
    }

    #[test]
    fn arbitrary_json_never_panics(doc in arb_json()) {
        let body = serde_json::to_vec(&doc).unwrap();
        for result in parse_all(&body) {
            match result {
                Ok(events) => ingestible(events)?,
                Err(e) => prop_assert!(matches!(e, Error::InvalidInput { .. }), "{e:?}"),
            }
        }
    }

    #[test]
    fn mutated_whatsapp_fixtures_never_panic_and_what_passes_ingests(body in mutated(fixtures("whatsapp"))) {
        match WhatsAppKit::new().parse_webhook(&body) {
            Ok(events) => ingestible(events)?,
            Err(e) => prop_assert!(matches!(e, Error::InvalidInput { .. }), "{e:?}"),
        }
    }

    #[test]
    fn mutated_messenger_fixtures_never_panic_and_what_passes_ingests(body in mutated(fixtures("messenger"))) {
        match MessengerKit::new().parse_webhook(&body) {
            Ok(events) => ingestible(events)?,
            Err(e) => prop_assert!(matches!(e, Error::InvalidInput { .. }), "{e:?}"),
        }
    }

    #[test]
    fn mutated_telegram_fixtures_never_panic_and_what_passes_ingests(body in mutated(fixtures("telegram"))) {
        match kits().2.parse_update(&body) {
            Ok(events) => ingestible(events)?,
            Err(e) => prop_assert!(matches!(e, Error::InvalidInput { .. }), "{e:?}"),
        }
    }

    #[test]
    fn signatures_verify_exactly_the_signed_bytes(
        secret in prop::collection::vec(any::<u8>(), 0..80),
        body in prop::collection::vec(any::<u8>(), 0..300),
        flip in any::<prop::sample::Index>(),
        ts in 0i64..4_000_000_000,
    ) {
        let meta = MetaSignature::new(&secret);
        let header = meta.sign(&body);
        // A secret of nothing but white space (an unset variable) verifies nothing at all.
        if secret.iter().all(u8::is_ascii_whitespace) {
            let refused = matches!(
                meta.verify(Some(&header), &body),
                Err(touchpoint::Error::Unauthenticated { failure: touchpoint::SignatureFailure::NoSecret, .. })
            );
            prop_assert!(refused, "an empty secret verified a signature");
            let twilio = TwilioSignature::new(&secret);
            let url = "https://hooks.example.com/t";
            prop_assert!(twilio.verify::<&str, &str>(Some(&twilio.sign::<&str, &str>(url, &[])), url, &[]).is_err());
            return Ok(());
        }
        prop_assert!(meta.verify(Some(&header), &body).is_ok());
        let slack = SlackSignature::new(&secret);
        let slack_header = slack.sign(ts, &body);
        let now = chrono::DateTime::from_timestamp(ts, 0).unwrap();
        prop_assert!(slack.verify(Some(&slack_header), Some(&ts.to_string()), &body, now).is_ok());
        let twilio = TwilioSignature::new(&secret);
        let url = format!("https://hooks.example.com/t?b={}", body.len());
        let params = [("Body", String::from_utf8_lossy(&body).into_owned())];
        let twilio_header = twilio.sign(&url, &params);
        prop_assert!(twilio.verify(Some(&twilio_header), &url, &params).is_ok());
        if !body.is_empty() {
            let mut changed = body.clone();
            let i = flip.index(changed.len());
            changed[i] ^= 0x01;
            prop_assert!(meta.verify(Some(&header), &changed).is_err());
            prop_assert!(slack.verify(Some(&slack_header), Some(&ts.to_string()), &changed, now).is_err());
            let changed_params = [("Body", String::from_utf8_lossy(&changed).into_owned())];
            if changed_params[0].1 != params[0].1 {
                prop_assert!(twilio.verify(Some(&twilio_header), &url, &changed_params).is_err());
            }
        }
    }
}
