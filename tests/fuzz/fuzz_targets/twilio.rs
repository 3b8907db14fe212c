//! Twilio webhook parsers (SMS/MMS and WhatsApp inbound, status callbacks, Voice requests): any
//! body gives a parse or a typed error, never a panic; every message handed out has the shape the
//! engine accepts, and the combined parser agrees with the specific ones.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;
use touchpoint::channels::twilio::{
    MessagingWebhook, VoiceRequest, message_status, parse_message, parse_messaging, parse_status,
};
use touchpoint::model::{ContentLimits, EndpointId, InboundMessage};

static ENDPOINT: LazyLock<EndpointId> = LazyLock::new(|| EndpointId::new("sms-fuzz").expect("a valid endpoint name"));

fn check(msg: &InboundMessage) {
    let unlimited = ContentLimits { max_text_bytes: usize::MAX, max_options: usize::MAX, max_parameters: usize::MAX };
    assert!(msg.content.validate(&unlimited).is_ok(), "{msg:?}");
    assert!(!msg.external_id.trim().is_empty(), "{msg:?}");
}

fuzz_target!(|data: &[u8]| {
    let message = parse_message(data, &ENDPOINT);
    if let Ok(parsed) = &message {
        assert!(!parsed.inbound.is_empty());
        assert_eq!(parsed.inbound[0].external_id, parsed.message_sid);
        parsed.inbound.iter().for_each(check);
    }
    let status = parse_status(data);
    if let Ok(receipt) = &status {
        assert!(!receipt.external_id.trim().is_empty());
    }
    match parse_messaging(data, &ENDPOINT) {
        Ok(MessagingWebhook::Message(m)) => assert_eq!(Some(&m), message.as_ref().ok()),
        Ok(MessagingWebhook::Status(r)) => assert_eq!(Some(&r), status.as_ref().ok()),
        Err(_) => {}
    }
    if let Ok(call) = VoiceRequest::parse(data) {
        let _ = call.ivr().map(|ivr| ivr.describe());
        if let Ok(msg) = call.to_inbound(&ENDPOINT) {
            check(&msg);
        }
        if let Ok(msg) = call.to_inbound_at_step(&ENDPOINT, "fuzz-step") {
            check(&msg);
        }
    }
    // The status vocabulary: any status and error code give a state or an error.
    if let Ok(text) = std::str::from_utf8(data) {
        let (status, code) = text.split_once('\n').unwrap_or((text, ""));
        let _ = message_status(status, (!code.is_empty()).then_some(code));
    }
});
