//! Web chat kit: any event body gives an event or a typed error, never a panic; messages have the
//! shape the engine accepts; identity verification accepts exactly the hash the widget computes
//! and never a different one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;
use touchpoint::channels::webchat::{IdentityCheck, WebChatEvent, WebChatWidget};
use touchpoint::model::{ContentLimits, EndpointId};

static WIDGET: LazyLock<WebChatWidget> = LazyLock::new(|| {
    let endpoint = EndpointId::new("site-widget").expect("a valid endpoint name");
    WebChatWidget::new(endpoint, "widget-secret-0123456789").expect("a valid widget")
});

fuzz_target!(|data: &[u8]| {
    if let Ok(WebChatEvent::Message(msg)) = WIDGET.parse(data) {
        let unlimited =
            ContentLimits { max_text_bytes: usize::MAX, max_options: usize::MAX, max_parameters: usize::MAX };
        assert!(!msg.inbound.is_empty());
        for inbound in &msg.inbound {
            assert!(inbound.content.validate(&unlimited).is_ok(), "{inbound:?}");
            assert!(!inbound.external_id.trim().is_empty(), "{inbound:?}");
        }
    }
    // Identity path: the first line is the claimed user id, the rest a claimed hash.
    let text = String::from_utf8_lossy(data);
    let (user, hash) = text.split_once('\n').unwrap_or((&text, ""));
    let claimed = WIDGET.verify_identity(user, Some(hash));
    if let IdentityCheck::Verified { user_id } = &claimed {
        let genuine = WIDGET.identity_hash(user_id);
        assert!(hash.trim().eq_ignore_ascii_case(&genuine), "a hash the widget did not compute verified");
    }
    let genuine = WIDGET.identity_hash(user.trim());
    let check = WIDGET.verify_identity(user, Some(&genuine));
    let valid = !user.trim().is_empty() && user.trim().len() <= 256 && !user.trim().chars().any(char::is_control);
    assert_eq!(check.verified_user().is_some(), valid, "{check:?}");
});
