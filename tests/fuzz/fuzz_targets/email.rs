//! Email kit: any raw bytes give a message, a bounce or a typed error, never a panic; a message
//! has the shape the engine accepts and its visible text is drawn from the full text; the text
//! helpers (HTML to text, quote stripping) never panic on any string.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;
use touchpoint::channels::email::{EmailInbox, InboundEmail, SenderAuth, html_to_text, parse, visible_text};
use touchpoint::model::{ContentLimits, EndpointId};

static INBOX: LazyLock<EmailInbox> = LazyLock::new(|| {
    let endpoint = EndpointId::new("support-inbox").expect("a valid endpoint name");
    EmailInbox::new(endpoint, "reply@support.example.com")
        .and_then(|inbox| inbox.with_subject_tag("ref:"))
        .expect("a valid inbox")
});

fuzz_target!(|data: &[u8]| {
    match parse(data, &INBOX, SenderAuth::NotAuthenticated) {
        Ok(InboundEmail::Message(mail)) => {
            let msg = &mail.message;
            let unlimited =
                ContentLimits { max_text_bytes: usize::MAX, max_options: usize::MAX, max_parameters: usize::MAX };
            assert!(msg.content.validate(&unlimited).is_ok(), "{msg:?}");
            assert!(!msg.external_id.trim().is_empty(), "{msg:?}");
            if let Some(token) = &msg.thread.reply_token {
                assert!(!token.is_empty() && token.len() <= 64, "{token:?}");
            }
        }
        Ok(InboundEmail::Bounce(bounce)) => {
            for receipt in &bounce.receipts {
                assert_eq!(Some(&receipt.external_id), bounce.original_message_id.as_ref());
            }
        }
        Err(_) => {}
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let plain = html_to_text(text);
        let visible = visible_text(text);
        assert!(visible.len() <= text.len());
        let _ = visible_text(&plain);
    }
});
