//! The WhatsApp kit on what changes under a customer or beside a message: a user who changed
//! their phone number (the `system` message), statuses of messages sent to a group, and
//! `errors` arrays on statuses and on the whole change (webhook-level errors).

use chrono::{TimeZone, Utc};
use serde_json::{Value, json};
use std::sync::Arc;
use touchpoint::channel::{Capabilities, StubChannel};
use touchpoint::channels::whatsapp::WhatsAppKit;
use touchpoint::channels::{DeliveryReceipt, KitEvent};
use touchpoint::clock::ManualClock;
use touchpoint::identity::{LinkedBy, Resolution};
use touchpoint::model::*;
use touchpoint::store::InMemoryStore;
use touchpoint::{Engine, Error, SendRequest};

const OLD: &str = "447700900123";
const NEW: &str = "447700900999";
const BUSINESS: &str = "800000000000001";
const T: i64 = 1735689600;

/// A webhook with one `messages` change whose value is `value` (metadata added).
fn webhook(mut value: Value) -> Vec<u8> {
    value["messaging_product"] = json!("whatsapp");
    value["metadata"] = json!({ "display_phone_number": "15550001111", "phone_number_id": BUSINESS });
    json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "900000000000001", "changes": [{ "field": "messages", "value": value }] }]
    })
    .to_string()
    .into_bytes()
}

fn parse(body: &[u8]) -> Vec<KitEvent> {
    WhatsAppKit::new().parse_webhook(body).unwrap()
}

fn invalid_reason(body: &[u8]) -> String {
    match WhatsAppKit::new().parse_webhook(body) {
        Err(Error::InvalidInput { field, reason }) => {
            assert_eq!(field, "whatsapp webhook");
            reason
        }
        other => panic!("expected invalid input, got {other:?}"),
    }
}

fn only_message(body: &[u8]) -> InboundMessage {
    match parse(body).as_slice() {
        [KitEvent::Message(m)] => m.clone(),
        other => panic!("expected one message, got {other:?}"),
    }
}

fn endpoint() -> EndpointId {
    EndpointId::new(BUSINESS).unwrap()
}

fn phone_claim(digits: &str) -> Claim {
    Claim { key: CustomerKey::Phone(format!("+{digits}")), verification: Verification::CarrierAsserted }
}

/// Meta's current `user_changed_number` notice: `from` is the old number, `system.wa_id` the
/// new one, and no `contacts` array.
fn changed_number(id: &str, secs: i64) -> Value {
    json!({
        "from": OLD,
        "id": id,
        "timestamp": secs.to_string(),
        "type": "system",
        "system": {
            "body": format!("User Ada Example changed from {OLD} to {NEW}"),
            "wa_id": NEW,
            "type": "user_changed_number"
        }
    })
}

fn text_from(from: &str, id: &str, secs: i64, body: &str) -> Value {
    json!({ "from": from, "id": id, "timestamp": secs.to_string(), "type": "text", "text": { "body": body } })
}

// ----- 1. a user who changed their phone number -----

/// The notice is the customer's last word from the old number and first from the new one. The
/// engine keeps one customer when a message carries, beside its sender, a carrier-asserted
/// phone claim held by a known customer (the same rule that links a business-scoped user id to
/// the customer known by its phone number): so the notice comes from the new number, with the
/// old number as that claim.
#[test]
fn a_changed_number_comes_from_the_new_number_with_the_old_one_as_a_claim() {
    let msg = only_message(&webhook(json!({ "messages": [changed_number("wamid.SYS1", T)] })));
    assert_eq!(msg.sender, Address::phone(format!("+{NEW}")));
    assert_eq!(msg.verification, Verification::CarrierAsserted);
    assert_eq!(msg.claims, vec![phone_claim(OLD)]);
    assert_eq!(msg.external_id, "wamid.SYS1");
    assert_eq!(msg.endpoint, endpoint());
    assert_eq!(
        msg.content,
        Content::System {
            event: "user_changed_number".into(),
            detail: Some(format!("User Ada Example changed from {OLD} to {NEW}")),
        }
    );
}

/// Webhooks before v12 (and the On-Premises API) spell it `customer_changed_number` with the
/// new number in `new_wa_id`, sometimes as a JSON number.
#[test]
fn older_number_change_notices_name_the_new_number_in_new_wa_id() {
    for new_wa_id in [json!(NEW), json!(NEW.parse::<u64>().unwrap())] {
        let notice = json!({
            "from": OLD, "id": "wamid.SYS2", "timestamp": T.to_string(), "type": "system",
            "system": { "body": "changed", "new_wa_id": new_wa_id, "type": "customer_changed_number" }
        });
        let msg = only_message(&webhook(json!({ "messages": [notice] })));
        assert_eq!(msg.sender, Address::phone(format!("+{NEW}")), "new_wa_id = {new_wa_id}");
        assert_eq!(msg.claims, vec![phone_claim(OLD)]);
        assert_eq!(
            msg.content,
            Content::System { event: "customer_changed_number".into(), detail: Some("changed".into()) }
        );
    }
}

/// Ingesting the notice links the new number to the customer who wrote from the old one; the
/// customer's next message from the new number is theirs, and the engine's reply goes to the
/// new number, not to the number they gave up.
#[test]
fn the_engine_keeps_one_customer_across_a_number_change_and_replies_to_the_new_number() {
    futures::executor::block_on(async {
        let clock = Arc::new(ManualClock::new(Utc.timestamp_opt(T + 600, 0).unwrap()));
        let wa = Arc::new(StubChannel::new(endpoint(), Capabilities::whatsapp()));
        let engine = Engine::builder(Arc::new(InMemoryStore::new())).clock(clock).channel(wa.clone()).build();
        let tenant = TenantId::new("shop").unwrap();
        let kit = WhatsAppKit::new();
        let ingest = |value: Value| {
            let engine = &engine;
            let tenant = &tenant;
            let events = kit.parse_webhook(&webhook(value)).unwrap();
            async move {
                let msg = events.into_iter().find_map(KitEvent::into_message).unwrap();
                engine.ingest(tenant, msg).await.unwrap()
            }
        };
        let before = ingest(json!({
            "contacts": [{ "profile": { "name": "Ada Example" }, "wa_id": OLD }],
            "messages": [text_from(OLD, "wamid.IN1", T, "Where is my parcel?")]
        }))
        .await;
        let change = ingest(json!({ "messages": [changed_number("wamid.SYS1", T + 60)] })).await;
        assert_eq!(change.customer, before.customer, "the number change made a new customer");
        assert_eq!(
            change.resolution,
            Resolution::Linked { key: LinkedBy::Phone, verification: Verification::CarrierAsserted }
        );
        let after = ingest(json!({
            "contacts": [{ "profile": { "name": "Ada Example" }, "wa_id": NEW }],
            "messages": [text_from(NEW, "wamid.IN2", T + 120, "Any news?")]
        }))
        .await;
        assert_eq!(after.customer, before.customer);
        assert_eq!(after.resolution, Resolution::KnownIdentity);
        assert_eq!(after.identity, change.identity);

        engine
            .send_to_customer(&tenant, before.customer, SendRequest::system(Content::text("It ships today")))
            .await
            .unwrap();
        let sent = wa.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].message.recipient.value, format!("+{NEW}"), "the reply went to the old number");
    });
}

/// With business-scoped user ids the notice carries the user's new id in `system.user_id`
/// (a number change regenerates it): the sender is that id, and both numbers ride along.
#[test]
fn a_number_change_with_a_new_business_scoped_id_comes_from_that_id() {
    let mut notice = changed_number("wamid.SYS3", T);
    notice["system"]["user_id"] = json!("GB.NEW0001");
    notice["system"]["previous_user_id"] = json!("GB.OLD0001");
    let msg = only_message(&webhook(json!({ "messages": [notice] })));
    assert_eq!(msg.sender, Address::platform("900000000000001", "GB.NEW0001"));
    assert_eq!(msg.claims, vec![phone_claim(NEW), phone_claim(OLD)]);
}

/// A notice that does not really change the number (the same number twice) claims nothing.
#[test]
fn a_number_change_to_the_same_number_claims_nothing() {
    let mut notice = changed_number("wamid.SYS4", T);
    notice["system"]["wa_id"] = json!(OLD);
    let msg = only_message(&webhook(json!({ "messages": [notice] })));
    assert_eq!(msg.sender, Address::phone(format!("+{OLD}")));
    assert!(msg.claims.is_empty(), "{:?}", msg.claims);
}

/// `customer_identity_changed` (older payloads: `customer`, `identity`) says the user's
/// security key changed (a reinstall, a new device), not their address: it stays a note from
/// the same number and links nothing.
#[test]
fn an_identity_change_is_a_note_from_the_same_number_and_links_nothing() {
    let notice = json!({
        "from": OLD, "id": "wamid.SYS5", "timestamp": T.to_string(), "type": "system",
        "system": {
            "body": "User's identity changed", "customer": OLD, "identity": "aGFzaA==",
            "type": "customer_identity_changed"
        }
    });
    let msg = only_message(&webhook(json!({ "messages": [notice] })));
    assert_eq!(msg.sender, Address::phone(format!("+{OLD}")));
    assert!(msg.claims.is_empty());
    assert_eq!(
        msg.content,
        Content::System { event: "customer_identity_changed".into(), detail: Some("User's identity changed".into()) }
    );
}

/// A number-change notice without a usable new number is refused with the JSON path, and the
/// rest of the webhook is not returned half-parsed.
#[test]
fn a_number_change_without_a_usable_new_number_is_invalid_input() {
    let ok = text_from(OLD, "wamid.IN1", T, "hello");
    let mut bad = changed_number("wamid.SYS6", T);
    bad["system"]["wa_id"] = json!("+44 7700 900999 (new)");
    let reason = invalid_reason(&webhook(json!({ "messages": [ok.clone(), bad] })));
    assert!(reason.contains("entry[0].changes[0].value.messages[1].system.wa_id"), "{reason}");
    assert!(reason.contains("not a WhatsApp phone number"), "{reason}");

    let mut missing = changed_number("wamid.SYS7", T);
    missing["system"].as_object_mut().unwrap().remove("wa_id");
    let reason = invalid_reason(&webhook(json!({ "messages": [ok.clone(), missing] })));
    assert!(reason.contains("messages[1].system.wa_id"), "{reason}");
    assert!(reason.contains("missing"), "{reason}");

    let mut odd = changed_number("wamid.SYS8", T);
    odd["system"]["wa_id"] = json!({ "number": NEW });
    let reason = invalid_reason(&webhook(json!({ "messages": [ok, odd] })));
    assert!(reason.contains("messages[1].system.wa_id"), "{reason}");
}

// ----- 2. statuses of messages sent to a group -----

const GROUP: &str = "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD";

fn receipt(id: &str, state: DeliveryState, secs: i64, recipient: Option<Address>) -> KitEvent {
    KitEvent::Receipt(DeliveryReceipt {
        channel: ChannelKind::WhatsApp,
        external_id: id.into(),
        state,
        at: Some(Utc.timestamp_opt(secs, 0).unwrap()),
        recipient,
        watermark: false,
    })
}

/// A message sent to a group gets a `sent` status for the group (`recipient_id` is the group id,
/// `recipient_type` is `group`) and `delivered`/`read` statuses per participant
/// (`recipient_participant_id`, or `recipient_participant_user_id` for a business-scoped id).
/// They are receipts for our message, keyed by its wamid; the recipient is the participant
/// when one is named, never the group id read as a phone number. The individual status in the
/// same batch is not lost.
#[test]
fn group_statuses_are_receipts_for_the_message_naming_the_participant() {
    let body = webhook(json!({ "statuses": [
        { "id": "wamid.G1", "status": "sent", "timestamp": T.to_string(),
          "recipient_id": GROUP, "recipient_type": "group" },
        { "id": "wamid.G1", "status": "delivered", "timestamp": (T + 1).to_string(),
          "recipient_id": GROUP, "recipient_type": "group", "recipient_participant_id": OLD },
        { "id": "wamid.G1", "status": "read", "timestamp": (T + 2).to_string(),
          "recipient_id": GROUP, "recipient_type": "group", "recipient_participant_id": NEW,
          "recipient_participant_user_id": "GB.P0002" },
        { "id": "wamid.OUT1", "status": "delivered", "timestamp": (T + 3).to_string(), "recipient_id": OLD }
    ]}));
    assert_eq!(
        parse(&body),
        vec![
            receipt("wamid.G1", DeliveryState::Sent, T, None),
            receipt("wamid.G1", DeliveryState::Delivered, T + 1, Some(Address::phone(format!("+{OLD}")))),
            receipt("wamid.G1", DeliveryState::Read, T + 2, Some(Address::platform("900000000000001", "GB.P0002"))),
            receipt("wamid.OUT1", DeliveryState::Delivered, T + 3, Some(Address::phone(format!("+{OLD}")))),
        ]
    );
}

/// A participant named without `recipient_type` still makes it a group status.
#[test]
fn a_participant_without_a_recipient_type_is_a_group_status() {
    let body = webhook(json!({ "statuses": [
        { "id": "wamid.G2", "status": "delivered", "timestamp": T.to_string(),
          "recipient_id": GROUP, "recipient_participant_id": OLD }
    ]}));
    assert_eq!(
        parse(&body),
        vec![receipt("wamid.G2", DeliveryState::Delivered, T, Some(Address::phone(format!("+{OLD}"))))]
    );
}

/// The group's own `failed` status fails the message. One participant's failure does not: the
/// message may have reached everyone else, and a failure would override their `delivered`; it
/// is reported (skipped) rather than applied.
#[test]
fn a_group_failure_fails_the_message_but_a_participants_failure_does_not() {
    let body = webhook(json!({ "statuses": [
        { "id": "wamid.G3", "status": "failed", "timestamp": T.to_string(),
          "recipient_id": GROUP, "recipient_type": "group",
          "errors": [{ "code": 131000, "title": "Something went wrong", "message": "Something went wrong",
                       "error_data": { "details": "Group is suspended" },
                       "href": "/documentation/business-messaging/whatsapp/support/error-codes" }] },
        { "id": "wamid.G4", "status": "failed", "timestamp": T.to_string(),
          "recipient_id": GROUP, "recipient_type": "group", "recipient_participant_id": OLD,
          "errors": [{ "code": 131026, "title": "Message undeliverable" }] }
    ]}));
    let events = parse(&body);
    assert_eq!(
        events[0],
        receipt(
            "wamid.G3",
            DeliveryState::Failed {
                code: Some("131000".into()),
                reason: "Something went wrong: Group is suspended".into()
            },
            T,
            None
        )
    );
    assert_eq!(events[1], KitEvent::Skipped { kind: "whatsapp.status.failed.group_participant".into() });
    assert_eq!(events.len(), 2);
}

/// An individual status whose `recipient_id` is not a phone number is still refused, with a
/// message that says what a group status looks like.
#[test]
fn a_recipient_id_that_is_no_number_on_an_individual_status_is_invalid_input() {
    for extra in [json!({}), json!({ "recipient_type": "individual" })] {
        let mut status =
            json!({ "id": "wamid.G5", "status": "sent", "timestamp": T.to_string(), "recipient_id": GROUP });
        status.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let reason = invalid_reason(&webhook(json!({ "statuses": [status] })));
        assert!(reason.contains("statuses[0].recipient_id"), "{reason}");
        assert!(reason.contains("recipient_type"), "{reason}");
    }
}

/// A group participant id that is not a phone number is refused with its path.
#[test]
fn a_participant_id_that_is_no_number_is_invalid_input() {
    let body = webhook(json!({ "statuses": [
        { "id": "wamid.G6", "status": "read", "timestamp": T.to_string(),
          "recipient_id": GROUP, "recipient_type": "group", "recipient_participant_id": "someone" }
    ]}));
    let reason = invalid_reason(&body);
    assert!(reason.contains("statuses[0].recipient_participant_id"), "{reason}");
}

/// A recipient type this kit does not know still gives the receipt for our message, without a
/// recipient it would have to guess.
#[test]
fn an_unknown_recipient_type_keeps_the_receipt_without_a_recipient() {
    let body = webhook(json!({ "statuses": [
        { "id": "wamid.G7", "status": "delivered", "timestamp": T.to_string(),
          "recipient_id": "community-7", "recipient_type": "community" }
    ]}));
    assert_eq!(parse(&body), vec![receipt("wamid.G7", DeliveryState::Delivered, T, None)]);
}

// ----- 3. errors arrays -----

fn rate_limit() -> Value {
    json!({
        "code": 130429,
        "title": "Rate limit hit",
        "message": "(#130429) Rate limit hit",
        "error_data": { "details": "Cloud API message throughput has been reached." },
        "href": "/docs/whatsapp/cloud-api/support/error-codes/"
    })
}

/// Webhook-level `errors` (an app- or account-level problem, Meta's "errors messages webhook")
/// are reported, as a typed event, not dropped; the endpoint is the business number.
#[test]
fn an_errors_only_change_is_reported_not_dropped() {
    let events = parse(&webhook(json!({ "errors": [rate_limit()] })));
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        serde_json::to_value(&events[0]).unwrap(),
        json!({
            "event": "provider_error",
            "channel": "whatsapp",
            "endpoint": BUSINESS,
            "code": "130429",
            "reason": "Rate limit hit: (#130429) Rate limit hit: Cloud API message throughput has been reached."
        })
    );
}

/// The error names the endpoint as messages do (mapped, or the `phone_number_id`), and none
/// when the change has no metadata.
#[test]
fn webhook_level_errors_name_the_endpoint_as_messages_do() {
    let main = EndpointId::new("wa-main").unwrap();
    let kit = WhatsAppKit::new().with_endpoint(BUSINESS, main.clone());
    let events =
        kit.parse_webhook(&webhook(json!({ "errors": [{ "code": 131000, "title": "Something went wrong" }] })));
    assert_eq!(
        events.unwrap(),
        vec![KitEvent::ProviderError {
            channel: ChannelKind::WhatsApp,
            endpoint: Some(main),
            code: Some("131000".into()),
            reason: "Something went wrong".into(),
        }]
    );
    let bare = json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "900000000000001", "changes": [{ "field": "messages", "value": { "errors": [{ "code": 131000 }] } }] }]
    });
    let events = parse(bare.to_string().as_bytes());
    let [KitEvent::ProviderError { endpoint: None, code: Some(code), reason, .. }] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(code, "131000");
    assert_eq!(reason, "WhatsApp reported an error without a title");
}

/// Webhook-level errors beside messages and statuses of the same change lose neither.
#[test]
fn webhook_level_errors_are_reported_beside_the_messages_and_statuses_of_the_change() {
    let body = webhook(json!({
        "errors": [rate_limit(), { "code": "131000", "title": "Something went wrong" }],
        "messages": [text_from(OLD, "wamid.IN1", T, "hello")],
        "statuses": [{ "id": "wamid.OUT1", "status": "read", "timestamp": T.to_string(), "recipient_id": OLD }]
    }));
    let events = parse(&body);
    let kinds: Vec<String> =
        events.iter().map(|e| serde_json::to_value(e).unwrap()["event"].as_str().unwrap().to_owned()).collect();
    assert_eq!(kinds, ["provider_error", "provider_error", "message", "receipt"]);
    assert_eq!(serde_json::to_value(&events[1]).unwrap()["code"], "131000");
    assert_eq!(events[2].message().unwrap().content, Content::text("hello"));
    assert_eq!(events[3].receipt().unwrap().state, DeliveryState::Read);
}

/// A failed status keeps every error it carries (the code of the first; the words of all), and
/// the statuses after it in the batch are not lost.
#[test]
fn a_failed_status_keeps_every_error_and_the_rest_of_the_batch() {
    let body = webhook(json!({ "statuses": [
        { "id": "wamid.OUT2", "status": "failed", "timestamp": T.to_string(), "recipient_id": OLD,
          "errors": [
              { "code": "131047", "title": "Re-engagement message" },
              { "code": 131026, "title": "Message undeliverable", "error_data": { "details": "Receiver is incapable" } }
          ] },
        { "id": "wamid.OUT3", "status": "failed", "timestamp": T.to_string(), "recipient_id": OLD, "errors": [] },
        { "id": "wamid.OUT4", "status": "delivered", "timestamp": T.to_string(), "recipient_id": OLD }
    ]}));
    let ada = Some(Address::phone(format!("+{OLD}")));
    assert_eq!(
        parse(&body),
        vec![
            receipt(
                "wamid.OUT2",
                DeliveryState::Failed {
                    code: Some("131047".into()),
                    reason: "Re-engagement message; error 131026: Message undeliverable: Receiver is incapable".into()
                },
                T,
                ada.clone()
            ),
            receipt(
                "wamid.OUT3",
                DeliveryState::Failed { code: None, reason: "WhatsApp reported the message as failed".into() },
                T,
                ada.clone()
            ),
            receipt("wamid.OUT4", DeliveryState::Delivered, T, ada),
        ]
    );
}

/// `errors` that are not an array of error objects are malformed: refused with the JSON path.
#[test]
fn malformed_errors_are_invalid_input_naming_the_path() {
    let reason = invalid_reason(&webhook(json!({ "errors": "rate limited" })));
    assert!(reason.contains("entry[0].changes[0].value.errors"), "{reason}");
    let reason = invalid_reason(&webhook(json!({ "statuses": [
        { "id": "wamid.OUT2", "status": "failed", "timestamp": T.to_string(), "recipient_id": OLD, "errors": [42] }
    ]})));
    assert!(reason.contains("statuses[0].errors[0]"), "{reason}");
}

// ----- no panics -----

/// Every prefix of these bodies, and every body with one byte replaced, parses or fails with
/// an error; nothing panics.
#[test]
fn cut_or_damaged_bodies_of_these_shapes_never_panic() {
    let bodies = [
        webhook(json!({ "messages": [changed_number("wamid.SYS1", T)] })),
        webhook(json!({ "statuses": [
            { "id": "wamid.G1", "status": "read", "timestamp": T.to_string(), "recipient_id": GROUP,
              "recipient_type": "group", "recipient_participant_id": OLD,
              "recipient_participant_user_id": "GB.P0002" }
        ]})),
        webhook(json!({ "errors": [rate_limit()], "statuses": [
            { "id": "wamid.OUT2", "status": "failed", "timestamp": T.to_string(), "recipient_id": OLD,
              "errors": [{ "code": 131026, "title": "Message undeliverable" }] }
        ]})),
    ];
    let kit = WhatsAppKit::new();
    for body in &bodies {
        for end in 0..body.len() {
            let _ = kit.parse_webhook(&body[..end]);
        }
        for at in 0..body.len() {
            for byte in [b'"', b'0', b'}', b'[', b'\\', 0xff] {
                let mut damaged = body.clone();
                damaged[at] = byte;
                let _ = kit.parse_webhook(&damaged);
            }
        }
    }
}
