//! The web chat kit through the public API: identity verification against an independently
//! computed HMAC vector, every fixture in tests/fixtures/webchat parsed into the exact expected
//! model, typed errors, and visitors flowing through the engine.

mod common;

use chrono::{TimeZone, Utc};
use common::{Harness, endpoint};
use proptest::prelude::*;
use touchpoint::Error;
use touchpoint::channels::webchat::*;
use touchpoint::identity::{LinkedBy, Resolution};
use touchpoint::model::*;

/// The widget secret of the fixtures.
const SECRET: &str = "test_widget_secret_0001";
/// `python3 -c 'import hmac,hashlib; print(hmac.new(b"test_widget_secret_0001", b"cust_5521",
/// hashlib.sha256).hexdigest())'`
const CUST_5521_HASH: &str = "017c996d5b1e00531db9b387d55c66fe8c465e152960b89177fd66c3b176b2fe";

fn widget() -> WebChatWidget {
    WebChatWidget::new(endpoint("site-widget"), SECRET).unwrap()
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/webchat/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn message(name: &str) -> WebChatMessage {
    match widget().parse(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}")) {
        WebChatEvent::Message(m) => m,
        other => panic!("{name}: expected a message, got {other:?}"),
    }
}

fn visitor(anon: &str) -> Address {
    Address::platform("site-widget", anon)
}

fn field_of(err: &Error) -> &'static str {
    match err {
        Error::InvalidInput { field, .. } => field,
        other => panic!("expected invalid input, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Identity verification
// ---------------------------------------------------------------------------------------------

#[test]
fn identity_hash_matches_an_independent_hmac_sha256() {
    assert_eq!(widget().identity_hash("cust_5521"), CUST_5521_HASH);
}

#[test]
fn verify_identity_accepts_only_the_right_hash_and_says_why_not() {
    let w = widget();
    let verified = IdentityCheck::Verified { user_id: "cust_5521".into() };
    assert_eq!(w.verify_identity("cust_5521", Some(CUST_5521_HASH)), verified);
    assert_eq!(w.verify_identity("cust_5521", Some(&CUST_5521_HASH.to_uppercase())), verified);
    assert_eq!(w.verify_identity(" cust_5521 ", Some(&format!(" {CUST_5521_HASH}\n"))), verified);
    let unverified = |user: &str, reason| IdentityCheck::Unverified { user_id: user.into(), reason };
    let mut flipped = CUST_5521_HASH.to_owned();
    flipped.replace_range(63..64, "f");
    let cases = [
        ("cust_5521", None, UnverifiedReason::MissingHash),
        ("cust_5521", Some(""), UnverifiedReason::MissingHash),
        ("cust_5521", Some("abc"), UnverifiedReason::MalformedHash),
        ("cust_5521", Some(&CUST_5521_HASH[..62]), UnverifiedReason::MalformedHash),
        (
            "cust_5521",
            Some("zz7c996d5b1e00531db9b387d55c66fe8c465e152960b89177fd66c3b176b2fe"),
            UnverifiedReason::MalformedHash,
        ),
        ("cust_5521", Some(flipped.as_str()), UnverifiedReason::HashMismatch),
        ("cust_5522", Some(CUST_5521_HASH), UnverifiedReason::HashMismatch),
        ("bad\u{0}id", Some(CUST_5521_HASH), UnverifiedReason::InvalidIdentifier),
    ];
    for (user, hash, reason) in cases {
        assert_eq!(w.verify_identity(user, hash), unverified(user, reason), "{user:?} {hash:?}");
    }
    let other_secret = WebChatWidget::new(endpoint("site-widget"), "another_widget_secret_01").unwrap();
    assert_eq!(
        other_secret.verify_identity("cust_5521", Some(CUST_5521_HASH)),
        unverified("cust_5521", UnverifiedReason::HashMismatch)
    );
    assert!(!UnverifiedReason::HashMismatch.describe().is_empty());
}

#[test]
fn widget_configuration_is_checked_and_the_secret_never_printed() {
    assert_eq!(field_of(&WebChatWidget::new(endpoint("site-widget"), "short").unwrap_err()), "secret");
    assert_eq!(field_of(&WebChatWidget::new(endpoint("site:widget"), SECRET).unwrap_err()), "endpoint");
    assert!(!format!("{:?}", widget()).contains(SECRET));
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

#[test]
fn verified_visitor_message_carries_a_verified_external_id_claim() {
    let got = message("message_verified.json");
    let expected_msg = InboundMessage::new(
        ChannelKind::WebChat,
        endpoint("site-widget"),
        visitor("v_3f9d2c1e"),
        "v_3f9d2c1e 6d0f2a10-1111-4222-8333-944444444444",
        Content::text("Hi, parcel missing"),
    )
    .with_verification(Verification::Verified)
    .with_claim(CustomerKey::ExternalId("cust_5521".into()), Verification::Verified)
    .with_claim(CustomerKey::Email("ada@example.net".into()), Verification::Unverified)
    .with_sender_name("Ada Example")
    .with_sent_at(Utc.with_ymd_and_hms(2025, 1, 1, 10, 0, 0).unwrap())
    .with_thread(ThreadHints { provider_thread_id: Some("c_8a7b6c5d".into()), ..ThreadHints::default() });
    assert_eq!(
        got,
        WebChatMessage {
            event_id: Some("evt_01J0000000000000000000TEST".into()),
            identity: IdentityCheck::Verified { user_id: "cust_5521".into() },
            conversation_id: Some("c_8a7b6c5d".into()),
            page_url: Some("https://shop.example.com/orders/5521".into()),
            inbound: vec![expected_msg],
        }
    );
}

#[test]
fn anonymous_visitor_message_is_unverified_without_claims() {
    let got = message("message_anonymous.json");
    let expected_msg = InboundMessage::new(
        ChannelKind::WebChat,
        endpoint("site-widget"),
        visitor("v_77aa01"),
        "v_77aa01 m-anon-1",
        Content::text("Do you ship to Norway?"),
    )
    .with_sent_at(Utc.with_ymd_and_hms(2025, 1, 1, 9, 5, 0).unwrap())
    .with_thread(ThreadHints { provider_thread_id: Some("c_1111".into()), ..ThreadHints::default() });
    assert_eq!(got.inbound, vec![expected_msg]);
    assert_eq!(got.identity, IdentityCheck::Anonymous);
    assert_eq!(got.inbound[0].verification, Verification::Unverified);
}

#[test]
fn a_wrong_hash_keeps_the_visitor_anonymous_and_says_why() {
    let got = message("message_bad_hash.json");
    assert_eq!(
        got.identity,
        IdentityCheck::Unverified { user_id: "cust_9999".into(), reason: UnverifiedReason::HashMismatch }
    );
    let expected_msg = InboundMessage::new(
        ChannelKind::WebChat,
        endpoint("site-widget"),
        visitor("v_3f9d2c1e"),
        "v_3f9d2c1e m-bad-1",
        Content::text("I am someone else"),
    );
    // No external-id claim; the malformed typed email is left out rather than failing the message.
    assert_eq!(got.inbound, vec![expected_msg]);
}

#[test]
fn attachments_become_media_messages_with_the_text_as_first_caption() {
    let got = message("message_attachments.json");
    let media = |id: &str, kind, url: &str, mime: &str, file: &str, caption: Option<&str>| {
        InboundMessage::new(
            ChannelKind::WebChat,
            endpoint("site-widget"),
            visitor("v_3f9d2c1e"),
            id,
            Content::Media {
                media: kind,
                url: url.into(),
                mime_type: Some(mime.into()),
                caption: caption.map(str::to_owned),
                filename: Some(file.into()),
            },
        )
        .with_verification(Verification::Verified)
        .with_claim(CustomerKey::ExternalId("cust_5521".into()), Verification::Verified)
        .with_claim(CustomerKey::Email("ada@example.net".into()), Verification::Unverified)
        .with_sender_name("Ada Example")
        .with_sent_at(Utc.with_ymd_and_hms(2025, 1, 1, 10, 1, 0).unwrap())
        .with_thread(ThreadHints { provider_thread_id: Some("c_8a7b6c5d".into()), ..ThreadHints::default() })
    };
    assert_eq!(
        got.inbound,
        vec![
            media(
                "v_3f9d2c1e m-att-1",
                MediaKind::Image,
                "https://files.example.com/u/box-1.jpg",
                "image/jpeg",
                "box-1.jpg",
                Some("Photos of the box")
            ),
            media(
                "v_3f9d2c1e m-att-1#1",
                MediaKind::Document,
                "https://files.example.com/u/label.pdf",
                "application/pdf",
                "label.pdf",
                None
            ),
        ]
    );
}

#[test]
fn typing_events_parse() {
    let started = widget().parse(&fixture("typing_started.json")).unwrap();
    assert_eq!(
        started,
        WebChatEvent::Typing(TypingEvent {
            visitor: visitor("v_3f9d2c1e"),
            identity: IdentityCheck::Anonymous,
            conversation_id: Some("c_8a7b6c5d".into()),
            typing: true,
            at: Some(Utc.with_ymd_and_hms(2025, 1, 1, 10, 0, 30).unwrap()),
        })
    );
    let stopped = widget().parse(&fixture("typing_stopped.json")).unwrap();
    assert_eq!(
        stopped,
        WebChatEvent::Typing(TypingEvent {
            visitor: visitor("v_3f9d2c1e"),
            identity: IdentityCheck::Anonymous,
            conversation_id: None,
            typing: false,
            at: None,
        })
    );
}

#[test]
fn malformed_events_are_typed_errors_naming_the_field() {
    let msg = |m: &str| format!(r#"{{"event":"message.created","visitor":{{"anon_id":"v1"}},"message":{m}}}"#);
    let too_many: Vec<String> =
        (0..=MAX_ATTACHMENTS).map(|i| format!(r#"{{"url":"https://x.example/{i}.png"}}"#)).collect();
    let cases: Vec<(String, &str)> = vec![
        ("".into(), "webchat"),
        ("not json".into(), "webchat"),
        ("[1,2]".into(), "webchat"),
        (r#"{"event":5,"visitor":{"anon_id":"v1"}}"#.into(), "webchat"),
        (r#"{"visitor":{"anon_id":"v1"}}"#.into(), "event"),
        (r#"{"event":"message.deleted","visitor":{"anon_id":"v1"}}"#.into(), "event"),
        (r#"{"event":"typing.started"}"#.into(), "visitor"),
        (r#"{"event":"typing.started","visitor":{}}"#.into(), "visitor.anon_id"),
        (r#"{"event":"typing.started","visitor":{"anon_id":"v 1"}}"#.into(), "visitor.anon_id"),
        (r#"{"event":"typing.started","visitor":{"anon_id":"v1"},"occurred_at":"yesterday"}"#.into(), "occurred_at"),
        (
            r#"{"event":"typing.started","visitor":{"anon_id":"v1"},"conversation":{"page_url":"javascript:alert(1)"}}"#
                .into(),
            "conversation.page_url",
        ),
        (r#"{"event":"message.created","visitor":{"anon_id":"v1"}}"#.into(), "message"),
        (msg(r#"{"text":"hi"}"#), "message.client_msg_id"),
        (msg(r#"{"client_msg_id":"m1"}"#), "message.text"),
        (msg(r#"{"client_msg_id":"m1","text":"   "}"#), "message.text"),
        (msg(&format!(r#"{{"client_msg_id":"m1","text":"{}"}}"#, "a".repeat(MAX_TEXT_CHARS + 1))), "message.text"),
        (msg(&format!(r#"{{"client_msg_id":"m1","attachments":[{}]}}"#, too_many.join(","))), "message.attachments"),
        (msg(r#"{"client_msg_id":"m1","attachments":[{"content_type":"image/png"}]}"#), "message.attachments.url"),
        (msg(r#"{"client_msg_id":"m1","attachments":[{"url":"file:///etc/passwd"}]}"#), "message.attachments.url"),
    ];
    for (body, field) in cases {
        let err = widget().parse(body.as_bytes()).unwrap_err();
        assert_eq!(field_of(&err), field, "{body}: {err}");
    }
    let huge = vec![b' '; MAX_EVENT_BYTES + 1];
    assert_eq!(field_of(&widget().parse(&huge).unwrap_err()), "webchat");
}

// ---------------------------------------------------------------------------------------------
// End to end
// ---------------------------------------------------------------------------------------------

fn chat(anon: &str, id: &str, text: &str, identifier: Option<(&str, &str)>) -> InboundMessage {
    let identity = identifier
        .map(|(user, hash)| format!(r#","identifier":"{user}","identifier_hash":"{hash}""#))
        .unwrap_or_default();
    let body = format!(
        r#"{{"event":"message.created","visitor":{{"anon_id":"{anon}"{identity}}},"message":{{"client_msg_id":"{id}","text":"{text}"}}}}"#
    );
    match widget().parse(body.as_bytes()).unwrap() {
        WebChatEvent::Message(m) => m.inbound.into_iter().next().unwrap(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_verified_visitor_joins_the_customer_known_from_another_channel() {
    let h = Harness::new();
    // The host's user cust_5521 wrote by email before (the host vouched for the id there).
    let earlier = h.ingest(
        InboundMessage::new(
            ChannelKind::Email,
            endpoint("support-inbox"),
            Address::email("ada@example.net"),
            "m0@example.net",
            Content::text("Where is my parcel?"),
        )
        .with_claim(CustomerKey::ExternalId("cust_5521".into()), Verification::Verified),
    );
    let parsed = message("message_verified.json");
    let outcome = h.ingest(parsed.inbound[0].clone());
    assert_eq!(outcome.customer, earlier.customer);
    assert_eq!(
        outcome.resolution,
        Resolution::Linked { key: LinkedBy::ExternalId, verification: Verification::Verified }
    );
    let view = h.context(outcome.customer);
    assert_eq!(view.timeline.len(), 2);
    assert_eq!(view.timeline[0].content, Content::text("Hi, parcel missing"));
    assert_eq!(view.timeline[0].channel, ChannelKind::WebChat);
}

#[test]
fn a_forged_identity_never_reaches_the_real_customers_history() {
    let h = Harness::new();
    let real = h.ingest(chat("v_real", "m1", "I am Ada", Some(("cust_5521", CUST_5521_HASH))));
    let forged_hash = "00".repeat(32);
    let forged = chat("v_mallory", "m2", "Show me my orders", Some(("cust_5521", &forged_hash)));
    assert_eq!(forged.claims, vec![]);
    let outcome = h.ingest(forged);
    assert_ne!(outcome.customer, real.customer);
    let view = h.context(outcome.customer);
    assert_eq!(view.timeline.len(), 1);
    assert_eq!(view.customer.external_id, None);
}

#[test]
fn an_anonymous_visitor_who_signs_in_keeps_their_conversation() {
    let h = Harness::new();
    let before = h.ingest(chat("v_42", "m1", "Hello?", None));
    assert_eq!(h.customer(before.customer).external_id, None);
    let after = h.ingest(chat("v_42", "m2", "Now signed in", Some(("cust_5521", CUST_5521_HASH))));
    assert_eq!(after.customer, before.customer);
    assert_eq!(after.conversation, before.conversation);
    assert_eq!(h.customer(after.customer).external_id.as_deref(), Some("cust_5521"));
}

#[test]
fn attachments_and_retries_through_the_engine() {
    let h = Harness::new();
    let parsed = message("message_attachments.json");
    let outcomes: Vec<_> = parsed.inbound.iter().cloned().map(|m| h.ingest(m)).collect();
    assert_eq!(outcomes[0].conversation, outcomes[1].conversation);
    let retried = message("message_attachments.json");
    assert!(retried.inbound.into_iter().all(|m| h.ingest(m).duplicate));
    assert_eq!(h.context(outcomes[0].customer).timeline.len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

fn json_like() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "\\PC{0,16}".prop_map(serde_json::Value::from),
        Just(serde_json::Value::from("message.created")),
        Just(serde_json::Value::from("typing.started")),
        Just(serde_json::Value::from("https://x.example/a.png")),
        Just(serde_json::Value::from(CUST_5521_HASH)),
    ];
    let keys = prop::sample::select(vec![
        "event",
        "visitor",
        "anon_id",
        "identifier",
        "identifier_hash",
        "email",
        "name",
        "message",
        "client_msg_id",
        "text",
        "attachments",
        "url",
        "content_type",
        "occurred_at",
        "conversation",
        "id",
        "page_url",
    ]);
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(keys.clone(), inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
    .prop_map(|v| v.to_string())
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = widget().parse(&body);
    }

    #[test]
    fn json_like_events_never_panic_and_messages_are_ingestible(body in json_like()) {
        if let Ok(WebChatEvent::Message(m)) = widget().parse(body.as_bytes()) {
            let h = Harness::new();
            for msg in m.inbound {
                prop_assert!(h.try_ingest(msg).is_ok());
            }
        }
    }

    #[test]
    fn every_message_the_kit_accepts_the_engine_accepts(
        anon in "\\PC{0,40}",
        id in "\\PC{0,40}",
        text in "\\PC{0,80}",
        name in "\\PC{0,300}",
        email in "\\PC{0,30}",
        conversation in "\\PC{0,30}",
        url in proptest::option::of("https://[a-z]{1,8}\\.example/\\PC{0,20}"),
    ) {
        let mut event = serde_json::json!({
            "event": "message.created",
            "visitor": {"anon_id": anon, "name": name, "email": email},
            "conversation": {"id": conversation},
            "message": {"client_msg_id": id, "text": text},
        });
        if let Some(url) = url {
            event["message"]["attachments"] = serde_json::json!([{"url": url}]);
        }
        if let Ok(WebChatEvent::Message(m)) = widget().parse(event.to_string().as_bytes()) {
            let h = Harness::new();
            for msg in m.inbound {
                let what = format!("{msg:?}");
                prop_assert!(h.try_ingest(msg).is_ok(), "{}", what);
            }
        }
    }

    #[test]
    fn only_the_hash_of_the_same_user_verifies(a in "\\PC{1,40}", b in "\\PC{1,40}", junk in "\\PC{0,70}") {
        let w = widget();
        let hash = w.identity_hash(a.trim());
        prop_assume!(!a.trim().is_empty());
        let same = w.verify_identity(&a, Some(&hash));
        prop_assert_eq!(same.verified_user(), Some(a.trim()));
        if a.trim() != b.trim() {
            let other = w.verify_identity(&b, Some(&hash));
            prop_assert_eq!(other.verified_user(), None);
        }
        let guessed = w.verify_identity(&a, Some(&junk));
        prop_assert_eq!(guessed.verified_user().is_some(), junk.trim() == hash);
    }
}

#[test]
fn kit_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<WebChatWidget>();
    check::<WebChatEvent>();
    check::<IdentityCheck>();
}

// ---------------------------------------------------------------------------------------------
// Idempotency keys are the visitor's own
// ---------------------------------------------------------------------------------------------

/// `client_msg_id` is chosen by the visitor's browser, yet it is the engine's tenant-wide
/// idempotency key as is: a second visitor whose widget picks the same id (a per-page counter,
/// or a visitor who does it on purpose) has their message silently dropped as a "retry" of
/// someone else's — and the outcome handed back for Bob is Alice's customer, conversation and
/// message.
#[test]
fn another_visitors_client_msg_id_does_not_swallow_a_message() {
    let h = Harness::new();
    let alice = h.ingest(chat("v_alice", "1", "Hello from Alice", None));
    let bob = h.ingest(chat("v_bob", "1", "My order never arrived", None));
    assert!(!bob.duplicate, "Bob's message was dropped as a duplicate of Alice's");
    assert_ne!(bob.customer, alice.customer, "Bob was handed Alice's customer");
    assert_ne!(bob.conversation, alice.conversation, "Bob was handed Alice's conversation");
    assert_eq!(h.context(bob.customer).timeline.len(), 1);
}

#[test]
fn a_client_msg_id_ending_in_hash_n_does_not_collide_with_another_messages_attachment() {
    let h = Harness::new();
    let parse = |body: &str| match widget().parse(body.as_bytes()).unwrap() {
        WebChatEvent::Message(m) => m.inbound,
        other => panic!("{other:?}"),
    };
    let photos = parse(
        r#"{"event":"message.created","visitor":{"anon_id":"v1"},"message":{"client_msg_id":"m1",
            "attachments":[{"url":"https://x.example/a.png"},{"url":"https://x.example/b.png"}]}}"#,
    );
    let later = parse(
        r#"{"event":"message.created","visitor":{"anon_id":"v1"},"message":{"client_msg_id":"m1#1","text":"Where is my refund?"}}"#,
    );
    for m in photos {
        h.ingest(m);
    }
    let outcome = h.ingest(later[0].clone());
    assert!(!outcome.duplicate, "a new message was dropped as a retry of another message's attachment");
}

#[test]
fn an_upper_case_https_attachment_url_is_accepted() {
    let body = br#"{"event":"message.created","visitor":{"anon_id":"v1"},"message":{"client_msg_id":"m1","attachments":[{"url":"HTTPS://files.example.com/a.png"}]}}"#;
    assert!(widget().parse(body).is_ok(), "{:?}", widget().parse(body));
}
