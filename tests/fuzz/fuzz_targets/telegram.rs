//! Telegram Bot API update parser: any bytes give events or a typed error, never a panic, and
//! every message handed out has the shape the engine accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;
use touchpoint::channels::telegram::TelegramKit;
use touchpoint::model::{ContentLimits, EndpointId};

static KIT: LazyLock<TelegramKit> = LazyLock::new(|| {
    let endpoint = EndpointId::new("tg-bot").expect("a valid endpoint name");
    TelegramKit::new(endpoint).expect("a valid scope")
});

fuzz_target!(|data: &[u8]| {
    if let Ok(events) = KIT.parse_update(data) {
        let unlimited =
            ContentLimits { max_text_bytes: usize::MAX, max_options: usize::MAX, max_parameters: usize::MAX };
        for event in events {
            if let Some(msg) = event.message() {
                assert!(msg.content.validate(&unlimited).is_ok(), "{msg:?}");
                assert!(!msg.external_id.trim().is_empty());
            }
        }
    }
});
