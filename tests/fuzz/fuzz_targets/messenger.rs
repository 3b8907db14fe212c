//! Messenger / Instagram webhook parser: any bytes give events or a typed error, never a panic,
//! and every message handed out has the shape the engine accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;
use touchpoint::channels::messenger::MessengerKit;
use touchpoint::model::ContentLimits;

static KIT: LazyLock<MessengerKit> = LazyLock::new(MessengerKit::new);

fuzz_target!(|data: &[u8]| {
    if let Ok(events) = KIT.parse_webhook(data) {
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
