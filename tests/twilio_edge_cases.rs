//! Edge cases of the Twilio kit: short-code and alphanumeric senders, withheld and SIP caller
//! ids, `SmsStatus`-only and `queued` callbacks, voicemail recordings, and `read` against
//! failures in either order.

mod common;

use common::{Harness, endpoint, run};
use touchpoint::OutboundMessage;
use touchpoint::channels::twilio::*;
use touchpoint::model::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/twilio/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A host sending from one of its US short codes (`From=72345`) builds the Messages API form:
/// short codes are Twilio senders like long numbers, and `form_params` documents only `to` as
/// needing a `+` number.
#[test]
fn sms_send_from_a_short_code_is_accepted() {
    let send = SmsSend::new("+15550002222", SmsFrom::Number("72345".into())).body("Your code is 1234");
    let body = send.form_body();
    assert_eq!(body.unwrap(), "To=%2B15550002222&From=72345&Body=Your+code+is+1234");
}

/// A host sending SMS from an alphanumeric sender id (`From=ACME`, supported by Twilio in many
/// countries for one-way SMS) builds the Messages API form.
#[test]
fn sms_send_from_an_alphanumeric_sender_id_is_accepted() {
    let send = SmsSend::new("+447700900123", SmsFrom::Number("ACME".into())).body("Your parcel is on its way");
    assert_eq!(send.form_body().unwrap(), "To=%2B447700900123&From=ACME&Body=Your+parcel+is+on+its+way");
}

fn call(sid_tail: u8, from: &str) -> VoiceRequest {
    let body = format!(
        "CallSid=CA000000000000000000000000000000{sid_tail:02x}&From={}&To=%2B15550001111&CallStatus=ringing&Direction=inbound",
        from.replace('+', "%2B")
    );
    VoiceRequest::parse(body.as_bytes()).unwrap()
}

/// A caller who withholds their number (Twilio sends `From=anonymous`) still reaches the
/// agent: the incoming call becomes a voice conversation instead of an error the host cannot
/// act on.
#[test]
fn a_caller_with_a_withheld_number_still_opens_a_voice_conversation() {
    let msg = call(1, "anonymous").to_inbound(&endpoint("voice-us"));
    assert!(msg.is_ok(), "an anonymous call is refused: {:?}", msg.err());
}

/// Two different people calling with a withheld number (Twilio's placeholder `+266696687`,
/// "ANONYMOUS" on a keypad) are not one customer: the second caller must not see, nor be shown
/// to the agent with, the first caller's history.
#[test]
fn two_withheld_number_callers_are_not_merged_into_one_customer() {
    let h = Harness::new();
    let a = h.ingest(call(1, "+266696687").to_inbound(&endpoint("voice-us")).unwrap());
    let b = h.ingest(call(2, "+266696687").to_inbound(&endpoint("voice-us")).unwrap());
    assert_ne!(a.customer, b.customer, "two anonymous callers share one customer record");
}

/// `parse_messaging` tells a status callback from an incoming message the way `parse_status`
/// reads one: a callback whose status is in `SmsStatus` only (accepted by `parse_status`) is a
/// receipt, not a message missing its body.
#[test]
fn parse_messaging_reads_a_status_callback_carrying_only_sms_status() {
    let body = b"MessageSid=SM00000000000000000000000000000009&SmsStatus=delivered&AccountSid=AC00000000000000000000000000000001&From=%2B15550001111&To=%2B15550002222";
    let receipt = parse_status(body).unwrap();
    assert_eq!(receipt.state, DeliveryState::Delivered);
    let parsed = parse_messaging(body, &endpoint("twilio-us"));
    assert!(matches!(parsed, Ok(MessagingWebhook::Status(_))), "{parsed:?}");
}

/// Twilio posts `queued` and `sending` callbacks (both listed as callback-triggering). A host
/// that feeds every parsed callback to `Engine::apply_receipts` gets an unchanged message for
/// them, not an error that fails the batch (and makes Twilio retry the webhook forever).
#[test]
fn a_queued_status_callback_can_be_applied_without_failing_the_batch() {
    let h = Harness::new();
    let inbound = parse_message(&fixture("mms_inbound.txt"), &endpoint("twilio-us")).unwrap();
    let outcome = h.ingest(inbound.inbound[0].clone());
    h.outbound(
        outcome.conversation,
        OutboundMessage::agent(common::agent("ana"), Content::text("On its way"))
            .with_external_id("SM00000000000000000000000000000009"),
    )
    .unwrap();
    let queued = parse_status(&fixture("status_queued.txt")).unwrap();
    let sent = parse_status(&fixture("status_sent.txt")).unwrap();
    let report = run(h.engine.apply_receipts(&h.tenant, &[queued, sent]));
    let report = report.expect("a queued callback fails the whole batch");
    assert_eq!(report.updated.len(), 1);
}

/// A `<Record>` action request (voicemail: `RecordingUrl`, `RecordingDuration`, `Digits=hangup`)
/// turned into an inbound message carries the recording, so the agent can listen to what the
/// caller said; it is not reduced to a bare `call.completed` event.
#[test]
fn a_voicemail_recording_reaches_the_agent() {
    let body = b"CallSid=CA00000000000000000000000000000001&AccountSid=AC00000000000000000000000000000001\
&From=%2B447700900123&To=%2B15550001111&CallStatus=completed&Direction=inbound&Digits=hangup\
&RecordingUrl=https%3A%2F%2Fapi.twilio.com%2F2010-04-01%2FAccounts%2FAC00000000000000000000000000000001%2FRecordings%2FRE00000000000000000000000000000001\
&RecordingSid=RE00000000000000000000000000000001&RecordingDuration=17";
    let msg = VoiceRequest::parse(body).unwrap().to_inbound(&endpoint("voice-us")).unwrap();
    let json = serde_json::to_string(&msg.content).unwrap();
    assert!(json.contains("RE00000000000000000000000000000001"), "the recording is dropped: {json}");
}

/// The `<Record>` action request that ends a voicemail and the call's final status callback
/// (with its duration) are two events: ingesting the first does not make the second a duplicate.
#[test]
fn a_record_action_does_not_swallow_the_final_status_callback() {
    let h = Harness::new();
    let record = b"CallSid=CA00000000000000000000000000000001&From=%2B447700900123&To=%2B15550001111\
&CallStatus=completed&Direction=inbound&Digits=hangup&RecordingSid=RE00000000000000000000000000000001\
&RecordingUrl=https%3A%2F%2Fapi.twilio.com%2FRecordings%2FRE00000000000000000000000000000001&RecordingDuration=17";
    let first = h.ingest(VoiceRequest::parse(record).unwrap().to_inbound(&endpoint("voice-us")).unwrap());
    assert!(!first.duplicate);
    let status = VoiceRequest::parse(&fixture("voice_completed.txt")).unwrap();
    let second = h.ingest(status.to_inbound(&endpoint("voice-us")).unwrap());
    assert!(!second.duplicate, "the final status callback (call length 42 s) was dropped as a duplicate");
}

/// Twilio callbacks carry no time, so they are applied in arrival order. A WhatsApp `read`
/// proves delivery ("failures win over everything except Read"): the outcome must not depend
/// on whether `read` arrived before or after a `failed`/`undelivered` callback.
#[test]
fn read_wins_over_a_failure_whichever_arrives_first() {
    let failed = parse_status(&fixture("status_undelivered.txt")).unwrap().state;
    let read = parse_status(&fixture("status_read.txt")).unwrap().state;
    let read_then_failed = DeliveryState::Sent.advance(read.clone()).advance(failed.clone());
    let failed_then_read = DeliveryState::Sent.advance(failed).advance(read);
    assert_eq!(read_then_failed, DeliveryState::Read);
    assert_eq!(failed_then_read, DeliveryState::Read, "order-dependent outcome");
}

#[test]
fn whatsapp_send_with_several_media_is_refused() {
    let send = SmsSend::new("whatsapp:+447700900123", SmsFrom::Number("whatsapp:+15550001111".into()))
        .body("Your photos")
        .media("https://cdn.example.com/a.jpg")
        .media("https://cdn.example.com/b.jpg");
    let r = send.form_body();
    assert!(r.is_err(), "WhatsApp delivers one attachment, the second is silently dropped: {r:?}");
}

#[test]
fn say_over_twilios_limit_is_refused() {
    let xml = VoiceResponse::new().say(Say::new("a".repeat(5000))).to_xml();
    assert!(xml.is_err(), "a <Say> of 5000 characters (Twilio limit 4096) was accepted");
}

#[test]
fn two_anonymous_sip_callers_are_not_one_customer() {
    let call = |tail: u8| {
        let body = format!(
            "CallSid=CA000000000000000000000000000000{tail:02x}&From=sip%3Aanonymous%40anonymous.invalid&To=%2B15550001111&CallStatus=ringing&Direction=inbound"
        );
        VoiceRequest::parse(body.as_bytes()).unwrap().to_inbound(&endpoint("voice-us")).unwrap().sender
    };
    assert_ne!(call(1), call(2), "two anonymous SIP callers share one customer");
}
