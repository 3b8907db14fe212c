//! The Twilio kit through the public API: every fixture in tests/fixtures/twilio parsed into the
//! exact expected model, typed errors for malformed input, outbound builders, and webhooks
//! flowing through `Engine::ingest` / `Engine::update_delivery` into the customer's context.

mod common;

use common::{Harness, endpoint, run};
use proptest::prelude::*;
use touchpoint::channels::DeliveryReceipt;
use touchpoint::channels::form::{self, Form};
use touchpoint::channels::twilio::*;
use touchpoint::model::*;
use touchpoint::{Error, OutboundMessage};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/twilio/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn sms_endpoint() -> EndpointId {
    endpoint("twilio-us")
}

fn field_of(err: &Error) -> &'static str {
    match err {
        Error::InvalidInput { field, .. } => field,
        Error::InvalidAddress { kind, .. } => kind,
        other => panic!("expected an input error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Form parser
// ---------------------------------------------------------------------------------------------

#[test]
fn form_decodes_plus_as_space_and_percent_escapes() {
    let form = Form::parse(b"Body=Hi+there%21+%C3%A9t%C3%A9&From=%2B447700900123&Empty=&Flag").unwrap();
    assert_eq!(form.get("Body"), Some("Hi there! été"));
    assert_eq!(form.get("From"), Some("+447700900123"));
    assert_eq!(form.get("Empty"), Some(""));
    assert_eq!(form.get("Flag"), Some(""));
    assert_eq!(form.get_nonempty("Empty"), None);
    assert_eq!(form.get("Missing"), None);
    assert_eq!(form.len(), 4);
}

#[test]
fn form_keeps_order_and_duplicates_and_skips_empty_segments() {
    let form = Form::parse(b"&MediaUrl=a&&MediaUrl=b&x=1&").unwrap();
    assert_eq!(form.get_all("MediaUrl").collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(form.get("MediaUrl"), Some("a"));
    assert_eq!(
        form.pairs(),
        &[("MediaUrl".into(), "a".into()), ("MediaUrl".into(), "b".into()), ("x".into(), "1".into())]
    );
    assert!(Form::parse(b"").unwrap().is_empty());
}

#[test]
fn form_rejects_malformed_escapes_and_non_utf8_with_typed_errors() {
    for bad in [&b"Body=100%"[..], b"Body=%4", b"Body=%zz", b"B%G1=x", b"Body=%FF%FE", b"Body=\xff"] {
        let err = Form::parse(bad).unwrap_err();
        assert_eq!(field_of(&err), "form", "{:?}", String::from_utf8_lossy(bad));
    }
    let err = Form::parse(b"a=1&Body=%zz").unwrap_err().to_string();
    assert!(err.contains("pair 2") && err.contains("Body") && err.contains("%zz"), "{err}");
}

#[test]
fn form_enforces_size_and_pair_limits() {
    let big = vec![b'a'; form::MAX_FORM_BYTES + 1];
    assert!(Form::parse(&big).unwrap_err().to_string().contains("limit"));
    let many = "a=1&".repeat(form::MAX_FORM_PAIRS + 1);
    assert!(Form::parse(many.as_bytes()).unwrap_err().to_string().contains("pairs"));
    let max = "a=1&".repeat(form::MAX_FORM_PAIRS);
    assert_eq!(Form::parse(max.as_bytes()).unwrap().len(), form::MAX_FORM_PAIRS);
}

#[test]
fn form_encoding_round_trips() {
    let pairs = [("Body", "a & b = c? 100% ✓\n"), ("To", "whatsapp:+1 555"), ("k*-._", "")];
    let encoded = form::encode(pairs);
    assert!(encoded.is_ascii() && !encoded.contains(' '));
    let back = Form::parse(encoded.as_bytes()).unwrap();
    let back: Vec<(&str, &str)> = back.pairs().iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    assert_eq!(back, pairs);
}

// ---------------------------------------------------------------------------------------------
// Incoming messages
// ---------------------------------------------------------------------------------------------

#[test]
fn sms_fixture_parses_to_the_exact_inbound_message() {
    let parsed = parse_message(&fixture("sms_inbound.txt"), &sms_endpoint()).unwrap();
    let expected = InboundMessage::new(
        ChannelKind::Sms,
        sms_endpoint(),
        Address::phone("+447700900123"),
        "SM00000000000000000000000000000001",
        Content::text("Where is order 5521?"),
    );
    assert_eq!(parsed.inbound, vec![expected]);
    assert_eq!(parsed.inbound[0].verification, Verification::CarrierAsserted);
    assert_eq!(parsed.message_sid, "SM00000000000000000000000000000001");
    assert_eq!(parsed.account_sid.as_deref(), Some("AC00000000000000000000000000000001"));
    assert_eq!(parsed.messaging_service_sid, None);
    assert_eq!(parsed.channel, ChannelKind::Sms);
    assert_eq!(parsed.to, "+15550001111");
    assert_eq!(parsed.num_segments, Some(1));
    assert_eq!(parsed.opt_out, None);
}

#[test]
fn mms_fixture_gives_one_message_per_photo_with_the_text_as_first_caption() {
    let parsed = parse_message(&fixture("mms_inbound.txt"), &sms_endpoint()).unwrap();
    let from = Address::phone("+15550002222");
    let photo = |id: &str, url: &str, mime: &str, caption: Option<&str>| {
        InboundMessage::new(
            ChannelKind::Sms,
            sms_endpoint(),
            from.clone(),
            id,
            Content::Media {
                media: MediaKind::Image,
                url: url.into(),
                mime_type: Some(mime.into()),
                caption: caption.map(str::to_owned),
                filename: None,
            },
        )
    };
    assert_eq!(
        parsed.inbound,
        vec![
            photo(
                "MM00000000000000000000000000000002",
                "https://api.twilio.example/Media/ME01",
                "image/jpeg",
                Some("Broken on arrival")
            ),
            photo("MM00000000000000000000000000000002#1", "https://api.twilio.example/Media/ME02", "image/png", None),
        ]
    );
}

#[test]
fn whatsapp_prefixed_numbers_map_to_the_whatsapp_channel() {
    let parsed = parse_message(&fixture("whatsapp_inbound.txt"), &endpoint("twilio-wa")).unwrap();
    let expected = InboundMessage::new(
        ChannelKind::WhatsApp,
        endpoint("twilio-wa"),
        Address::phone("+447700900123"),
        "SM00000000000000000000000000000003",
        Content::text("Hi 👋 any news?"),
    )
    .with_sender_name("Ada Example");
    assert_eq!(parsed.inbound, vec![expected]);
    assert_eq!(parsed.inbound[0].verification, Verification::CarrierAsserted);
    assert_eq!(parsed.channel, ChannelKind::WhatsApp);
    assert_eq!(parsed.to, "whatsapp:+15550001111");
    assert_eq!(parsed.messaging_service_sid.as_deref(), Some("MG00000000000000000000000000000001"));
}

#[test]
fn whatsapp_location_becomes_location_content() {
    let parsed = parse_message(&fixture("whatsapp_location.txt"), &endpoint("twilio-wa")).unwrap();
    let expected = InboundMessage::new(
        ChannelKind::WhatsApp,
        endpoint("twilio-wa"),
        Address::phone("+447700900123"),
        "SM00000000000000000000000000000004",
        Content::Location {
            latitude: 51.5033,
            longitude: -0.1196,
            name: Some("Drop-off point".into()),
            address: Some("Westminster Bridge Rd, London".into()),
        },
    )
    .with_sender_name("Ada Example");
    assert_eq!(parsed.inbound, vec![expected]);
}

// Found by the `twilio` fuzz target: an out-of-range coordinate was handed on as a location the
// engine rejects at ingest.
#[test]
fn location_coordinates_out_of_range_are_typed_errors() {
    let body = String::from_utf8(fixture("whatsapp_location.txt")).unwrap();
    for (from, to, field) in [
        ("Longitude=-0.1196", "Longitude=-196.1", "Longitude"),
        ("Longitude=-0.1196", "Longitude=-1.96e32", "Longitude"),
        ("Latitude=51.5033", "Latitude=90.5", "Latitude"),
        ("Latitude=51.5033", "Latitude=NaN", "Latitude"),
        ("Latitude=51.5033", "Latitude=inf", "Latitude"),
    ] {
        let bad = body.replace(from, to);
        let err = parse_message(bad.as_bytes(), &endpoint("twilio-wa")).unwrap_err();
        assert_eq!(field_of(&err), field, "{to}: {err}");
    }
    // The edges of the ranges are places.
    let edge = body.replace("Latitude=51.5033", "Latitude=-90").replace("Longitude=-0.1196", "Longitude=180");
    let parsed = parse_message(edge.as_bytes(), &endpoint("twilio-wa")).unwrap();
    assert!(matches!(parsed.inbound[0].content, Content::Location { latitude: -90.0, longitude: 180.0, .. }));
}

#[test]
fn opt_out_keyword_is_reported() {
    let parsed = parse_message(&fixture("sms_stop.txt"), &sms_endpoint()).unwrap();
    assert_eq!(parsed.opt_out, Some(OptOutType::Stop));
    assert_eq!(parsed.inbound[0].content, Content::text("STOP"));
}

#[test]
fn malformed_incoming_messages_are_typed_errors() {
    let sid = "MessageSid=SM00000000000000000000000000000001";
    let cases: Vec<(String, &str)> = vec![
        ("From=%2B447700900123&Body=hi".into(), "MessageSid"),
        (format!("{sid}&Body=hi"), "From"),
        (format!("{sid}&From=&Body=hi"), "From"),
        (format!("{sid}&From=%2B447700900123"), "Body"),
        (format!("{sid}&From=%2B447700900123&Body=+++"), "Body"),
        (format!("{sid}&From=447700900123&Body=hi"), "phone"),
        (format!("{sid}&From=%2Bnot-a-number&Body=hi"), "phone"),
        (format!("{sid}&From=messenger%3A123&Body=hi"), "From"),
        (format!("{sid}&From=%2B447700900123&Body=hi&NumMedia=two"), "NumMedia"),
        (format!("{sid}&From=%2B447700900123&Body=hi&NumMedia=11"), "NumMedia"),
        (format!("{sid}&From=%2B447700900123&Body=hi&NumMedia=1"), "MediaUrl"),
        (format!("{sid}&From=%2B447700900123&Latitude=north&Longitude=1"), "Latitude"),
        ("MessageSid=XX00000000000000000000000000000001&From=%2B447700900123&Body=hi".into(), "MessageSid"),
        ("MessageSid=SM1&From=%2B447700900123&Body=hi".into(), "MessageSid"),
        (format!("{sid}&From=%2B447700900123&Body=hi&AccountSid=nope"), "AccountSid"),
        (format!("{sid}&From=%2B447700900123&Body=%E2%82"), "form"),
    ];
    for (body, field) in cases {
        let err = parse_message(body.as_bytes(), &sms_endpoint()).unwrap_err();
        assert_eq!(field_of(&err), field, "{body}: {err}");
    }
}

/// A display name is shown, not trusted: a tab, a newline or too many bytes in it must not
/// make the engine refuse the customer's message.
#[test]
fn odd_display_names_are_cleaned_not_passed_on() {
    let long = "Ada".repeat(200);
    for (name, expected) in [
        ("Ada%09Lovelace", Some("AdaLovelace".to_owned())),
        ("%20%0A", None),
        (long.as_str(), Some(long[..256].to_owned())),
    ] {
        let body =
            format!("MessageSid=SM00000000000000000000000000000001&From=%2B447700900123&Body=hi&ProfileName={name}");
        let parsed = parse_message(body.as_bytes(), &sms_endpoint()).unwrap();
        let message = parsed.inbound[0].clone();
        assert_eq!(message.sender_name, expected, "{name}");
        let h = Harness::new();
        run(h.engine.ingest(&h.tenant, message)).unwrap();
    }
    let call = "CallSid=CA00000000000000000000000000000001&From=%2B447700900123&To=%2B442071838750\
                &CallStatus=ringing&Direction=inbound&CallerName=ADA%0ALOVELACE";
    let call = VoiceRequest::parse(call.as_bytes()).unwrap();
    assert_eq!(call.caller_name.as_deref(), Some("ADALOVELACE"));
    let h = Harness::new();
    run(h.engine.ingest(&h.tenant, call.to_inbound(&voice_endpoint()).unwrap())).unwrap();
}

#[test]
fn unknown_parameters_are_ignored() {
    let body = b"MessageSid=SM00000000000000000000000000000001&From=%2B447700900123&Body=hi&BrandNewParam=%F0%9F%A6%80";
    assert_eq!(parse_message(body, &sms_endpoint()).unwrap().inbound[0].content, Content::text("hi"));
}

// ---------------------------------------------------------------------------------------------
// Status callbacks
// ---------------------------------------------------------------------------------------------

fn receipt(state: DeliveryState) -> DeliveryReceipt {
    DeliveryReceipt {
        channel: ChannelKind::Sms,
        external_id: "SM00000000000000000000000000000009".into(),
        state,
        at: None,
        recipient: Some(Address::phone("+15550002222")),
        watermark: false,
    }
}

#[test]
fn every_status_fixture_parses_to_the_exact_receipt() {
    let cases = [
        ("status_queued.txt", DeliveryState::Pending),
        ("status_sending.txt", DeliveryState::Pending),
        ("status_sent.txt", DeliveryState::Sent),
        ("status_delivered.txt", DeliveryState::Delivered),
        ("status_read.txt", DeliveryState::Read),
        (
            "status_undelivered.txt",
            DeliveryState::Failed {
                code: Some("30003".into()),
                reason:
                    "the carrier could not deliver the message (Twilio error 30003: unreachable destination handset)"
                        .into(),
            },
        ),
        (
            "status_failed.txt",
            DeliveryState::Failed {
                code: Some("30008".into()),
                reason: "Twilio could not send the message (Twilio error 30008: unknown error)".into(),
            },
        ),
    ];
    for (file, state) in cases {
        assert_eq!(parse_status(&fixture(file)).unwrap(), receipt(state), "{file}");
    }
}

#[test]
fn whatsapp_read_receipt_is_on_the_whatsapp_channel() {
    let got = parse_status(&fixture("status_whatsapp_read.txt")).unwrap();
    assert_eq!(
        got,
        DeliveryReceipt {
            channel: ChannelKind::WhatsApp,
            external_id: "SM0000000000000000000000000000000a".into(),
            state: DeliveryState::Read,
            at: None,
            recipient: Some(Address::phone("+447700900123")),
            watermark: false,
        }
    );
}

#[test]
fn other_documented_statuses_map_as_documented() {
    assert_eq!(message_status("accepted", None).unwrap(), DeliveryState::Pending);
    assert_eq!(message_status("scheduled", None).unwrap(), DeliveryState::Pending);
    // Some parts reached the handset: sent on, not delivered as a whole (and not lost).
    assert_eq!(message_status("partially_delivered", None).unwrap(), DeliveryState::Sent);
    assert_eq!(
        message_status("canceled", None).unwrap(),
        DeliveryState::Failed { code: None, reason: "the scheduled message was canceled".into() }
    );
    // An unknown code is kept, without invented words; "0" means no error.
    assert_eq!(
        message_status("failed", Some("63016")).unwrap(),
        DeliveryState::Failed {
            code: Some("63016".into()),
            reason: "Twilio could not send the message (Twilio error 63016)".into()
        }
    );
    assert_eq!(
        message_status("undelivered", Some("0")).unwrap(),
        DeliveryState::Failed { code: None, reason: "the carrier could not deliver the message".into() }
    );
}

#[test]
fn malformed_status_callbacks_are_typed_errors() {
    let sid = "MessageSid=SM00000000000000000000000000000009";
    let cases: Vec<(String, &str)> = vec![
        ("MessageStatus=sent".into(), "MessageSid"),
        (sid.into(), "MessageStatus"),
        (format!("{sid}&MessageStatus=teleported"), "MessageStatus"),
        (format!("{sid}&MessageStatus=received"), "MessageStatus"),
        (format!("{sid}&MessageStatus=sent&To=nobody"), "phone"),
    ];
    for (body, field) in cases {
        let err = parse_status(body.as_bytes()).unwrap_err();
        assert_eq!(field_of(&err), field, "{body}: {err}");
    }
}

#[test]
fn parse_messaging_tells_messages_from_status_callbacks() {
    match parse_messaging(&fixture("whatsapp_inbound.txt"), &sms_endpoint()).unwrap() {
        MessagingWebhook::Message(m) => assert_eq!(m.message_sid, "SM00000000000000000000000000000003"),
        other => panic!("expected a message, got {other:?}"),
    }
    match parse_messaging(&fixture("status_delivered.txt"), &sms_endpoint()).unwrap() {
        MessagingWebhook::Status(r) => assert_eq!(r, receipt(DeliveryState::Delivered)),
        other => panic!("expected a status, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Voice
// ---------------------------------------------------------------------------------------------

fn voice_endpoint() -> EndpointId {
    endpoint("twilio-voice")
}

const CALL: &str = "CA00000000000000000000000000000001";

fn call_thread(sid: &str) -> ThreadHints {
    ThreadHints { provider_thread_id: Some(sid.into()), ..ThreadHints::default() }
}

#[test]
fn incoming_call_fixture_opens_a_voice_conversation_message() {
    let call = VoiceRequest::parse(&fixture("voice_incoming.txt")).unwrap();
    assert_eq!(
        call,
        VoiceRequest {
            call_sid: CALL.into(),
            parent_call_sid: None,
            account_sid: Some("AC00000000000000000000000000000001".into()),
            from: "+447700900123".into(),
            to: "+15550001111".into(),
            status: CallStatus::Ringing,
            direction: CallDirection::Inbound,
            caller_name: None,
            duration_secs: None,
            digits: None,
            speech_result: None,
            confidence: None,
            recording: None,
        }
    );
    assert_eq!(call.ivr(), None);
    let expected = InboundMessage::new(
        ChannelKind::Voice,
        voice_endpoint(),
        Address::phone("+447700900123"),
        format!("{CALL}:ringing"),
        Content::System {
            event: "call.ringing".into(),
            detail: Some("call from +447700900123 to +15550001111".into()),
        },
    )
    .with_thread(call_thread(CALL));
    assert_eq!(call.to_inbound(&voice_endpoint()).unwrap(), expected);
    assert_eq!(expected.verification, Verification::CarrierAsserted);
}

#[test]
fn gather_result_carries_digits_speech_and_confidence() {
    let call = VoiceRequest::parse(&fixture("voice_gather.txt")).unwrap();
    assert_eq!(call.status, CallStatus::InProgress);
    let ivr = call.ivr().unwrap();
    assert_eq!(
        ivr,
        IvrInput { digits: Some("2".into()), speech: Some("I want a refund".into()), confidence: Some(0.91) }
    );
    let msg = call.to_inbound(&voice_endpoint()).unwrap();
    assert_eq!(
        msg.content,
        Content::System {
            event: "ivr.input".into(),
            detail: Some("pressed 2; said \"I want a refund\" (confidence 0.91)".into())
        }
    );
    assert_eq!(msg.thread, call_thread(CALL));
    assert!(msg.external_id.starts_with(&format!("{CALL}:input:")));
    // The same input gives the same id (a retried webhook); different input a different one.
    assert_eq!(call.to_inbound(&voice_endpoint()).unwrap().external_id, msg.external_id);
    let other = VoiceRequest { digits: Some("3".into()), ..call.clone() };
    assert_ne!(other.to_inbound(&voice_endpoint()).unwrap().external_id, msg.external_id);
    // A named step gives the host control over the key.
    assert_eq!(call.to_inbound_at_step(&voice_endpoint(), "menu").unwrap().external_id, format!("{CALL}:menu"));
    assert!(call.to_inbound_at_step(&voice_endpoint(), " ").is_err());
    // `Digits=hangup`: the caller hung up at a `<Record>` instead of pressing a key.
    let hung_up = String::from_utf8(fixture("voice_gather.txt")).unwrap().replace("Digits=2", "Digits=hangup");
    let hung_up = VoiceRequest::parse(hung_up.as_bytes()).unwrap();
    assert_eq!(hung_up.digits, None);
}

#[test]
fn call_status_callbacks_become_call_events() {
    let done = VoiceRequest::parse(&fixture("voice_completed.txt")).unwrap();
    assert_eq!(done.duration_secs, Some(42));
    let msg = done.to_inbound(&voice_endpoint()).unwrap();
    assert_eq!(msg.external_id, format!("{CALL}:completed"));
    assert_eq!(
        msg.content,
        Content::System { event: "call.completed".into(), detail: Some("call completed after 42 s".into()) }
    );

    // A call we placed: the customer is `To`.
    let out = VoiceRequest::parse(&fixture("voice_outbound_no_answer.txt")).unwrap();
    assert_eq!(out.direction, CallDirection::OutboundApi);
    assert_eq!(out.customer().unwrap(), Address::phone("+447700900123"));
    let msg = out.to_inbound(&voice_endpoint()).unwrap();
    assert_eq!(msg.sender, Address::phone("+447700900123"));
    assert_eq!(
        msg.content,
        Content::System { event: "call.no_answer".into(), detail: Some("call no-answer after 0 s".into()) }
    );

    // A <Dial> leg threads on its parent call.
    let leg = VoiceRequest::parse(&fixture("voice_dial_leg.txt")).unwrap();
    let msg = leg.to_inbound(&voice_endpoint()).unwrap();
    assert_eq!(msg.thread, call_thread(CALL));
    assert_eq!(msg.sender, Address::phone("+447700900123"));
}

#[test]
fn voice_sdk_clients_are_platform_addresses() {
    let body = format!("CallSid={CALL}&From=client%3Aalice&To=%2B15550001111&CallStatus=ringing&Direction=inbound");
    let call = VoiceRequest::parse(body.as_bytes()).unwrap();
    let msg = call.to_inbound(&voice_endpoint()).unwrap();
    assert_eq!(msg.sender, Address::platform("twilio-client", "alice"));
    assert_eq!(msg.verification, Verification::Unverified);
}

#[test]
fn malformed_voice_requests_are_typed_errors() {
    let base = format!("CallSid={CALL}&From=%2B447700900123&To=%2B15550001111");
    let cases: Vec<(String, &str)> = vec![
        ("From=%2B447700900123&To=%2B15550001111&CallStatus=ringing".into(), "CallSid"),
        (base.clone(), "CallStatus"),
        (format!("{base}&CallStatus=exploded"), "CallStatus"),
        (format!("{base}&CallStatus=ringing&Direction=sideways"), "Direction"),
        (format!("{base}&CallStatus=in-progress&Confidence=1.5"), "Confidence"),
        (format!("{base}&CallStatus=in-progress&Confidence=high"), "Confidence"),
        (format!("{base}&CallStatus=in-progress&Digits=12a"), "Digits"),
        (format!("{base}&CallStatus=completed&CallDuration=-3"), "CallDuration"),
        (format!("CallSid={CALL}&To=%2B15550001111&CallStatus=ringing"), "From"),
        (format!("{base}&CallStatus=completed&RecordingSid=RE1"), "RecordingSid"),
        (format!("{base}&CallStatus=completed&RecordingSid=RE00000000000000000000000000000001"), "RecordingUrl"),
        (
            format!(
                "{base}&CallStatus=completed&RecordingSid=RE00000000000000000000000000000001&RecordingUrl=http%3A%2F%2Fx"
            ),
            "RecordingUrl",
        ),
    ];
    for (body, field) in cases {
        let err = VoiceRequest::parse(body.as_bytes()).unwrap_err();
        assert_eq!(field_of(&err), field, "{body}: {err}");
    }
    // A caller id that is neither a number nor a withheld one is refused when it names the customer.
    let garbage = format!("CallSid={CALL}&From=12ab&To=%2B15550001111&CallStatus=ringing");
    let call = VoiceRequest::parse(garbage.as_bytes()).unwrap();
    assert!(matches!(call.to_inbound(&voice_endpoint()), Err(Error::InvalidAddress { .. })));
    // A withheld one names the call: each such call is its own customer.
    let anonymous = format!("CallSid={CALL}&From=anonymous&To=%2B15550001111&CallStatus=ringing");
    let call = VoiceRequest::parse(anonymous.as_bytes()).unwrap();
    assert_eq!(call.customer().unwrap(), Address::platform("twilio-call", CALL));
    let sip = format!(
        "CallSid={CALL}&From=sip%3AAna%40pbx.example.com%3Btransport%3Dtls&To=%2B15550001111&CallStatus=ringing"
    );
    let call = VoiceRequest::parse(sip.as_bytes()).unwrap();
    assert_eq!(call.customer().unwrap(), Address::platform("sip", "ana@pbx.example.com"));
}

// ---------------------------------------------------------------------------------------------
// Outbound
// ---------------------------------------------------------------------------------------------

#[test]
fn sms_send_form_has_twilio_parameter_names() {
    let send = SmsSend::new("+447700900123", SmsFrom::Number("+15550001111".into()))
        .body("Here is your label & receipt")
        .media("https://files.example.com/label.pdf")
        .media("https://files.example.com/receipt.png");
    let body = send.form_body().unwrap();
    let form = Form::parse(body.as_bytes()).unwrap();
    let pairs: Vec<(&str, &str)> = form.pairs().iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    assert_eq!(
        pairs,
        [
            ("To", "+447700900123"),
            ("From", "+15550001111"),
            ("Body", "Here is your label & receipt"),
            ("MediaUrl", "https://files.example.com/label.pdf"),
            ("MediaUrl", "https://files.example.com/receipt.png"),
        ]
    );
    let via_service =
        SmsSend::new("+447700900123", SmsFrom::MessagingService("MG00000000000000000000000000000001".into()))
            .body("hi")
            .form_params()
            .unwrap();
    assert_eq!(via_service[1], ("MessagingServiceSid", "MG00000000000000000000000000000001".to_owned()));
}

#[test]
fn sms_send_rejects_what_twilio_would_reject() {
    let from = || SmsFrom::Number("+15550001111".into());
    let cases: Vec<(SmsSend, &str)> = vec![
        (SmsSend::new("+447700900123", from()), "Body"),
        (SmsSend::new("+447700900123", from()).body("  "), "Body"),
        (SmsSend::new("+447700900123", from()).body("a".repeat(MAX_BODY_CHARS + 1)), "Body"),
        (SmsSend::new("07700 900123", from()).body("hi"), "phone"),
        (SmsSend::new("whatsapp:+447700900123", from()).body("hi"), "From"),
        (SmsSend::new("+447700900123", SmsFrom::MessagingService("MGxyz".into())).body("hi"), "MessagingServiceSid"),
        (SmsSend::new("+447700900123", from()).media("ftp://files.example.com/a.png"), "MediaUrl"),
        (
            (0..=MAX_MEDIA)
                .fold(SmsSend::new("+447700900123", from()), |s, i| s.media(format!("https://x.example/{i}"))),
            "MediaUrl",
        ),
        (SmsSend::new("+447700900123", from()).body("hi").status_callback("not a url"), "StatusCallback"),
    ];
    for (send, field) in cases {
        let err = send.form_body().unwrap_err();
        assert_eq!(field_of(&err), field, "{send:?}: {err}");
    }
    // Exactly at the limit is fine, counted in characters, not bytes.
    assert!(SmsSend::new("+447700900123", from()).body("ж".repeat(MAX_BODY_CHARS)).form_body().is_ok());
}

#[test]
fn twiml_escapes_text_and_attributes() {
    let xml = VoiceResponse::new()
        .say(Say::new("Tom & Jerry's <shop> \"open\"").voice("Polly.Amy").language("en-GB"))
        .gather(
            Gather::new(GatherInput::DtmfSpeech)
                .action("/ivr?step=1&lang=en")
                .timeout(7)
                .num_digits(1)
                .finish_on_key("")
                .language("en-GB"),
        )
        .pause(2)
        .dial(Dial::number("+15550003333").caller_id("+15550001111").timeout(20).action("/dial-done"))
        .hangup()
        .to_xml()
        .unwrap();
    assert_eq!(
        xml,
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?><Response>"#,
            r#"<Say voice="Polly.Amy" language="en-GB">Tom &amp; Jerry&apos;s &lt;shop&gt; &quot;open&quot;</Say>"#,
            r#"<Gather input="dtmf speech" action="/ivr?step=1&amp;lang=en" timeout="7" numDigits="1" finishOnKey="" language="en-GB"/>"#,
            r#"<Pause length="2"/>"#,
            r#"<Dial callerId="+15550001111" timeout="20" action="/dial-done"><Number>+15550003333</Number></Dial>"#,
            r#"<Hangup/></Response>"#
        )
    );
    assert_eq!(VoiceResponse::new().to_xml().unwrap(), r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#);
}

#[test]
fn twiml_rejects_what_twilio_cannot_use() {
    let cases: Vec<(VoiceResponse, &str)> = vec![
        (VoiceResponse::new().say(Say::new(" ")), "Say"),
        (VoiceResponse::new().say(Say::new("bell \u{7}")), "Say"),
        (VoiceResponse::new().gather(Gather::new(GatherInput::Dtmf).num_digits(0)), "Gather.numDigits"),
        (VoiceResponse::new().gather(Gather::new(GatherInput::Dtmf).timeout(0)), "Gather.timeout"),
        (VoiceResponse::new().gather(Gather::new(GatherInput::Dtmf).finish_on_key("ab")), "Gather.finishOnKey"),
        (VoiceResponse::new().gather(Gather::new(GatherInput::Dtmf).say(Say::new(""))), "Say"),
        (VoiceResponse::new().dial(Dial::number("sales")), "phone"),
        (VoiceResponse::new().pause(0), "Pause.length"),
    ];
    for (response, field) in cases {
        let err = response.to_xml().unwrap_err();
        assert_eq!(field_of(&err), field, "{response:?}: {err}");
    }
    assert!(messaging_reply(Some("")).is_err());
}

// ---------------------------------------------------------------------------------------------
// End to end: webhook bytes → kit → engine → context
// ---------------------------------------------------------------------------------------------

#[test]
fn sms_webhook_lands_in_the_customers_context_and_retries_change_nothing() {
    let h = Harness::new();
    let parsed = parse_message(&fixture("sms_inbound.txt"), &sms_endpoint()).unwrap();
    let outcome = h.ingest(parsed.inbound[0].clone());
    let view = h.context(outcome.customer);
    assert_eq!(view.timeline.len(), 1);
    let stored = &view.timeline[0];
    assert_eq!(stored.conversation, outcome.conversation);
    assert_eq!(stored.channel, ChannelKind::Sms);
    assert_eq!(stored.external_id.as_deref(), Some("SM00000000000000000000000000000001"));
    assert_eq!(stored.content, Content::text("Where is order 5521?"));
    assert_eq!(view.identities[0].identity.verification, Verification::CarrierAsserted);

    let again = parse_message(&fixture("sms_inbound.txt"), &sms_endpoint()).unwrap();
    assert!(h.ingest(again.inbound[0].clone()).duplicate);
    assert_eq!(h.context(outcome.customer).timeline.len(), 1);
}

#[test]
fn mms_items_join_one_conversation() {
    let h = Harness::new();
    let parsed = parse_message(&fixture("mms_inbound.txt"), &sms_endpoint()).unwrap();
    let outcomes: Vec<_> = parsed.inbound.into_iter().map(|m| h.ingest(m)).collect();
    assert_eq!(outcomes[0].conversation, outcomes[1].conversation);
    let view = h.context(outcomes[0].customer);
    assert_eq!(view.timeline.len(), 2);
    assert!(view.timeline.iter().all(|m| matches!(m.content, Content::Media { media: MediaKind::Image, .. })));
}

#[test]
fn whatsapp_through_twilio_is_a_whatsapp_conversation() {
    let h = Harness::new();
    let parsed = parse_message(&fixture("whatsapp_inbound.txt"), &endpoint("twilio-wa")).unwrap();
    let outcome = h.ingest(parsed.inbound[0].clone());
    let view = h.context(outcome.customer);
    assert_eq!(view.channels_used, vec![ChannelKind::WhatsApp]);
    assert_eq!(view.open_conversations[0].origin, ChannelKind::WhatsApp);
}

#[test]
fn status_callbacks_move_our_message_forward_only() {
    let h = Harness::new();
    let inbound = parse_message(&fixture("mms_inbound.txt"), &sms_endpoint()).unwrap();
    let outcome = h.ingest(inbound.inbound[0].clone());
    let sent = h
        .outbound(
            outcome.conversation,
            OutboundMessage::agent(common::agent("ana"), Content::text("Sorry! A replacement is on its way"))
                .with_external_id("SM00000000000000000000000000000009"),
        )
        .unwrap();
    assert_eq!(sent.delivery, DeliveryState::Pending);

    let apply = |file: &str| {
        let r = parse_status(&fixture(file)).unwrap();
        run(h.engine.update_delivery(&h.tenant, &r.channel, &r.external_id, r.state)).unwrap().delivery
    };
    assert_eq!(apply("status_sent.txt"), DeliveryState::Sent);
    assert_eq!(apply("status_delivered.txt"), DeliveryState::Delivered);
    assert_eq!(apply("status_sent.txt"), DeliveryState::Delivered, "a late `sent` does not move it back");
    let view = h.context(outcome.customer);
    let ours = view.timeline.iter().find(|m| m.id == sent.id).unwrap();
    assert_eq!(ours.delivery, DeliveryState::Delivered);
}

#[test]
fn an_undelivered_callback_marks_our_message_failed_with_the_code() {
    let h = Harness::new();
    let inbound = parse_message(&fixture("mms_inbound.txt"), &sms_endpoint()).unwrap();
    let outcome = h.ingest(inbound.inbound[0].clone());
    h.outbound(
        outcome.conversation,
        OutboundMessage::agent(common::agent("ana"), Content::text("Replacement sent"))
            .with_external_id("SM00000000000000000000000000000009"),
    )
    .unwrap();
    let r = parse_status(&fixture("status_undelivered.txt")).unwrap();
    let updated = run(h.engine.update_delivery(&h.tenant, &r.channel, &r.external_id, r.state)).unwrap();
    assert!(matches!(updated.delivery, DeliveryState::Failed { code: Some(ref c), .. } if c == "30003"));
}

#[test]
fn a_call_and_its_ivr_input_form_one_voice_conversation() {
    let h = Harness::new();
    let steps = ["voice_incoming.txt", "voice_gather.txt", "voice_completed.txt"];
    let outcomes: Vec<_> = steps
        .iter()
        .map(|f| h.ingest(VoiceRequest::parse(&fixture(f)).unwrap().to_inbound(&voice_endpoint()).unwrap()))
        .collect();
    assert!(outcomes.iter().all(|o| o.conversation == outcomes[0].conversation && !o.duplicate));
    let view = h.context(outcomes[0].customer);
    assert_eq!(view.open_conversations.len(), 1);
    assert_eq!(view.open_conversations[0].origin, ChannelKind::Voice);
    let events: Vec<String> = view
        .timeline
        .iter()
        .rev()
        .map(|m| match &m.content {
            Content::System { event, .. } => event.clone(),
            other => panic!("unexpected content {other:?}"),
        })
        .collect();
    assert_eq!(events, ["call.ringing", "ivr.input", "call.completed"]);
    // The agent sees what the caller entered.
    let ivr =
        view.timeline.iter().find(|m| matches!(&m.content, Content::System { event, .. } if event == "ivr.input"));
    assert!(ivr.unwrap().content.summary().contains("I want a refund"));

    // Twilio retrying the gather request changes nothing.
    let retried = VoiceRequest::parse(&fixture("voice_gather.txt")).unwrap().to_inbound(&voice_endpoint()).unwrap();
    assert!(h.ingest(retried).duplicate);
}

#[test]
fn the_same_caller_on_sms_and_voice_is_one_customer() {
    let h = Harness::new();
    let sms = parse_message(&fixture("sms_inbound.txt"), &sms_endpoint()).unwrap();
    let a = h.ingest(sms.inbound[0].clone());
    let call = VoiceRequest::parse(&fixture("voice_incoming.txt")).unwrap();
    let b = h.ingest(call.to_inbound(&voice_endpoint()).unwrap());
    assert_eq!(a.customer, b.customer, "carrier-asserted numbers link across channels");
    assert_ne!(a.conversation, b.conversation);
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

fn form_like() -> impl Strategy<Value = Vec<u8>> {
    let names = prop::sample::select(vec![
        "MessageSid",
        "From",
        "To",
        "Body",
        "NumMedia",
        "MediaUrl0",
        "MediaContentType0",
        "MediaUrl1",
        "MessageStatus",
        "ErrorCode",
        "CallSid",
        "CallStatus",
        "Direction",
        "Digits",
        "SpeechResult",
        "Confidence",
        "Latitude",
        "Longitude",
        "CallDuration",
        "ParentCallSid",
    ]);
    let values = prop_oneof![
        Just("SM00000000000000000000000000000001".to_owned()),
        Just("CA00000000000000000000000000000001".to_owned()),
        Just("%2B447700900123".to_owned()),
        Just("whatsapp%3A%2B447700900123".to_owned()),
        Just("ringing".to_owned()),
        Just("delivered".to_owned()),
        "[0-9]{0,3}",
        "[ -~]{0,12}",
        "(%[0-9A-Fa-f]{0,2}){0,4}",
    ];
    prop::collection::vec((names, values), 0..12)
        .prop_map(|pairs| pairs.into_iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("&").into_bytes())
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Form::parse(&body);
        let _ = parse_message(&body, &sms_endpoint());
        let _ = parse_status(&body);
        let _ = parse_messaging(&body, &sms_endpoint());
        if let Ok(call) = VoiceRequest::parse(&body) {
            let _ = call.to_inbound(&voice_endpoint());
        }
    }

    #[test]
    fn form_like_bodies_never_panic_and_parsed_messages_are_ingestible(body in form_like()) {
        let _ = parse_status(&body);
        if let Ok(call) = VoiceRequest::parse(&body) {
            let _ = call.to_inbound(&voice_endpoint());
        }
        if let Ok(parsed) = parse_message(&body, &sms_endpoint()) {
            prop_assert!(!parsed.inbound.is_empty());
            let h = Harness::new();
            for msg in parsed.inbound {
                prop_assert!(h.try_ingest(msg).is_ok());
            }
        }
    }

    #[test]
    fn form_encoding_round_trips_any_text(pairs in prop::collection::vec(("\\PC{0,12}", "\\PC{0,24}"), 0..8)) {
        let pairs: Vec<(String, String)> = pairs.into_iter().filter(|(n, _)| !n.is_empty()).collect();
        let encoded = form::encode(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        let back = Form::parse(encoded.as_bytes()).unwrap();
        prop_assert_eq!(back.pairs(), &pairs[..]);
    }

    #[test]
    fn twiml_say_text_survives_escaping(text in "\\PC{1,40}") {
        prop_assume!(!text.trim().is_empty());
        let xml = VoiceResponse::new().say(Say::new(text.clone())).to_xml().unwrap();
        let inner = xml.split("<Say>").nth(1).and_then(|s| s.split("</Say>").next()).unwrap();
        prop_assert!(!inner.contains('<') && !inner.contains('>'));
        let unescaped = inner
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&");
        prop_assert_eq!(unescaped, text);
    }
}

#[test]
fn kit_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Form>();
    check::<TwilioMessage>();
    check::<MessagingWebhook>();
    check::<VoiceRequest>();
    check::<IvrInput>();
    check::<SmsSend>();
    check::<VoiceResponse>();
    check::<DeliveryReceipt>();
}

/// Twilio asks for numbers in E.164: a number written with spaces, dashes or brackets goes out
/// in its E.164 form, in an SMS or WhatsApp send and in a `<Dial>`.
#[test]
fn numbers_go_out_in_e164() {
    let sms = SmsSend::new(" +44 (7700) 900-123 ", SmsFrom::Number("+1 555 000 1111".into()))
        .body("hi")
        .form_params()
        .unwrap();
    assert_eq!(&sms[..2], [("To", "+447700900123".to_owned()), ("From", "+15550001111".to_owned())]);
    let wa = SmsSend::new("whatsapp:+44 7700 900123", SmsFrom::Number("whatsapp:+1-555-000-1111".into()))
        .body("hi")
        .form_params()
        .unwrap();
    assert_eq!(&wa[..2], [("To", "whatsapp:+447700900123".to_owned()), ("From", "whatsapp:+15550001111".to_owned())]);
    let xml =
        VoiceResponse::new().dial(Dial::number("+1 (555) 000-3333").caller_id("+1 555 000 1111")).to_xml().unwrap();
    assert!(xml.contains(r#"<Dial callerId="+15550001111"><Number>+15550003333</Number></Dial>"#), "{xml}");
}
