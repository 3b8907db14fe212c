//! Form-body decoding and Twilio signature checking: any body and header give a verdict, never a
//! panic; a body signed over its own decoded parameters always verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use touchpoint::channels::signature::{TwilioSignature, decode_form};

fuzz_target!(|data: &[u8]| {
    let twilio = TwilioSignature::new("fuzz-token");
    let url = "https://hooks.example.com/twilio/sms";
    let header = std::str::from_utf8(data.get(..28).unwrap_or(data)).ok();
    let _ = twilio.verify_form(header, url, data);
    if let Ok(params) = decode_form(data) {
        let signature = twilio.sign(url, &params);
        assert!(twilio.verify_form(Some(&signature), url, data).is_ok());
    }
});
