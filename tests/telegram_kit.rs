//! The Telegram kit through the public API: every update kind of `tests/fixtures/telegram/`
//! parses into the exact model, malformed bodies fail with the JSON path, and the outbound
//! builders produce the documented Bot API calls.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use touchpoint::Error;
use touchpoint::channels::KitEvent;
use touchpoint::channels::telegram::{
    SendOptions, TelegramKit, TelegramRequest, answer_callback_query, chat_id, file_id, send_requests, typing,
};
use touchpoint::model::*;

const BOT: &str = "tg-support-bot";
const ADA: &str = "7000000001";

fn kit() -> TelegramKit {
    TelegramKit::new(EndpointId::new(BOT).unwrap()).unwrap()
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/telegram/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn parse(name: &str) -> Vec<KitEvent> {
    kit().parse_update(&fixture(name)).unwrap()
}

fn one(name: &str) -> KitEvent {
    let mut events = parse(name);
    assert_eq!(events.len(), 1, "{name}: {events:?}");
    events.remove(0)
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).unwrap()
}

/// Ada's message `message_id` in her private chat with the bot.
fn from_ada(message_id: i64, secs: i64, content: Content) -> InboundMessage {
    InboundMessage::new(
        ChannelKind::Telegram,
        EndpointId::new(BOT).unwrap(),
        Address::platform(BOT, ADA),
        format!("{BOT}:{ADA}:{message_id}"),
        content,
    )
    .with_sent_at(at(secs))
    .with_sender_name("Ada Example")
    .with_thread(ThreadHints { provider_thread_id: Some(format!("{BOT}:{ADA}")), ..ThreadHints::default() })
}

fn file(kind: MediaKind, id: &str, mime: Option<&str>, caption: Option<&str>, filename: Option<&str>) -> Content {
    Content::Media {
        media: kind,
        url: format!("telegram-file:{id}"),
        mime_type: mime.map(Into::into),
        caption: caption.map(Into::into),
        filename: filename.map(Into::into),
    }
}

fn system(event: &str, detail: Option<&str>) -> Content {
    Content::System { event: event.into(), detail: detail.map(Into::into) }
}

#[test]
fn start_command_is_a_text_message_in_the_private_chat() {
    let expected = from_ada(42, 1735689600, Content::text("/start order_5521")).with_sender_name("Ada");
    assert_eq!(one("start_command.json"), KitEvent::Message(expected));
}

#[test]
fn callback_query_is_a_button_press_with_the_whole_keyboard_as_options() {
    let message = InboundMessage::new(
        ChannelKind::Telegram,
        EndpointId::new(BOT).unwrap(),
        Address::platform(BOT, ADA),
        "callback:tg-support-bot:4300000000000000001",
        Content::Choices {
            body: "How did we do?".into(),
            options: vec![
                ChoiceOption { id: "csat:5".into(), title: "Great".into(), description: None },
                ChoiceOption { id: "csat:1".into(), title: "Poor".into(), description: None },
            ],
            selected: Some("csat:5".into()),
        },
    )
    .with_sender_name("Ada")
    .with_thread(ThreadHints {
        provider_thread_id: Some(format!("{BOT}:{ADA}")),
        in_reply_to: Some(format!("{BOT}:{ADA}:43")),
        ..ThreadHints::default()
    });
    assert_eq!(one("callback_query.json"), KitEvent::ButtonPressed { query_id: "4300000000000000001".into(), message });
}

#[test]
fn photo_takes_the_largest_size_keeps_the_caption_and_the_reply() {
    let mut expected =
        from_ada(44, 1735689700, file(MediaKind::Image, "AgAD-large", None, Some("This is how it arrived"), None));
    expected.thread.in_reply_to = Some(format!("{BOT}:{ADA}:43"));
    assert_eq!(one("photo_reply.json"), KitEvent::Message(expected));
    let KitEvent::Message(m) = one("photo_reply.json") else { unreachable!() };
    let Content::Media { url, .. } = m.content else { unreachable!() };
    assert_eq!(file_id(&url), Some("AgAD-large"));
}

#[test]
fn files_voice_video_animation_and_stickers_are_media() {
    let cases = [
        (
            "document.json",
            from_ada(
                45,
                1735689710,
                file(
                    MediaKind::Document,
                    "BQAD-doc",
                    Some("application/pdf"),
                    Some("Invoice"),
                    Some("invoice-5521.pdf"),
                ),
            ),
        ),
        ("voice.json", from_ada(46, 1735689720, file(MediaKind::Audio, "AwAD-voice", Some("audio/ogg"), None, None))),
        ("video.json", from_ada(47, 1735689730, file(MediaKind::Video, "BAAD-video", Some("video/mp4"), None, None))),
        (
            "animation.json",
            from_ada(48, 1735689740, file(MediaKind::Video, "CgAD-gif", Some("video/mp4"), None, Some("shrug.mp4"))),
        ),
        ("sticker.json", from_ada(49, 1735689750, file(MediaKind::Sticker, "CAAD-sticker", None, Some("😢"), None))),
    ];
    for (name, expected) in cases {
        assert_eq!(one(name), KitEvent::Message(expected), "{name}");
    }
}

#[test]
fn location_and_venue() {
    assert_eq!(
        one("location.json"),
        KitEvent::Message(from_ada(
            50,
            1735689760,
            Content::Location { latitude: 51.5007, longitude: -0.1246, name: None, address: None }
        ))
    );
    assert_eq!(
        one("venue.json"),
        KitEvent::Message(from_ada(
            51,
            1735689770,
            Content::Location {
                latitude: 51.5007,
                longitude: -0.1246,
                name: Some("Parcel locker 12".into()),
                address: Some("1 Example Street, London".into()),
            }
        ))
    );
}

#[test]
fn sharing_ones_own_number_is_a_trusted_phone_claim_a_third_partys_is_not() {
    let own = from_ada(
        52,
        1735689780,
        Content::Contact(ContactCard {
            name: "Ada Example".into(),
            phones: vec!["447700900123".into()],
            emails: vec![],
            organization: None,
        }),
    )
    .with_claim(CustomerKey::Phone("+447700900123".into()), Verification::CarrierAsserted);
    assert_eq!(one("contact_own.json"), KitEvent::Message(own));

    let other = from_ada(
        53,
        1735689790,
        Content::Contact(ContactCard {
            name: "Grace".into(),
            phones: vec!["+447700900456".into()],
            emails: vec![],
            organization: None,
        }),
    );
    assert_eq!(one("contact_other.json"), KitEvent::Message(other));
}

#[test]
fn an_edit_names_the_original_and_gets_its_own_id() {
    let mut message = from_ada(42, 1735689800, Content::text("/start order_5522"));
    message.external_id = format!("{BOT}:{ADA}:42:edit:500000013");
    assert_eq!(one("edited_message.json"), KitEvent::Edited { original: format!("{BOT}:{ADA}:42"), message });
}

/// Telegram dates edits and reactions to the second: two changes in the same second are two
/// updates, and neither may be dropped as the other's duplicate.
#[test]
fn two_edits_or_two_reactions_in_one_second_are_both_kept() {
    let again = |name: &str, update_id: u64, change: &dyn Fn(&mut serde_json::Value)| {
        let mut body: serde_json::Value = serde_json::from_slice(&fixture(name)).unwrap();
        body["update_id"] = json!(update_id);
        change(&mut body);
        let mut events = kit().parse_update(&serde_json::to_vec(&body).unwrap()).unwrap();
        match events.remove(0) {
            KitEvent::Edited { message, .. } | KitEvent::Message(message) => message,
            other => panic!("{other:?}"),
        }
    };
    let first_edit = again("edited_message.json", 600, &|_| {});
    let second_edit = again("edited_message.json", 601, &|b| b["edited_message"]["text"] = json!("order 5512"));
    let first_reaction = again("reaction.json", 700, &|_| {});
    let second_reaction = again("reaction.json", 701, &|b| {
        b["message_reaction"]["new_reaction"] = json!([{ "type": "emoji", "emoji": "👎" }])
    });
    assert_eq!(first_edit.sent_at, second_edit.sent_at);
    assert_eq!(first_reaction.sent_at, second_reaction.sent_at);

    let engine = touchpoint::Engine::builder(std::sync::Arc::new(touchpoint::store::InMemoryStore::new())).build();
    let tenant = TenantId::new("t").unwrap();
    for m in [first_edit, second_edit, first_reaction, second_reaction] {
        let outcome = futures::executor::block_on(engine.ingest(&tenant, m.clone())).unwrap();
        assert!(!outcome.duplicate, "{} was taken for a duplicate", m.external_id);
        // The same update delivered again is still one message.
        assert!(futures::executor::block_on(engine.ingest(&tenant, m)).unwrap().duplicate);
    }
}

#[test]
fn forum_topics_are_their_own_thread() {
    let msg = one("group_topic.json").into_message().unwrap();
    assert_eq!(msg.external_id, "tg-support-bot:-1001000000001:900");
    assert_eq!(msg.thread.provider_thread_id.as_deref(), Some(format!("{BOT}:-1001000000001/77").as_str()));
    assert_eq!(msg.sender, Address::platform(BOT, ADA));
}

#[test]
fn reactions_reply_to_the_reacted_message() {
    let reaction = |secs: i64, update: u64, content| {
        InboundMessage::new(
            ChannelKind::Telegram,
            EndpointId::new(BOT).unwrap(),
            Address::platform(BOT, ADA),
            format!("reaction:{BOT}:{ADA}:43:{ADA}:{update}"),
            content,
        )
        .with_sent_at(at(secs))
        .with_sender_name("Ada Example")
        .with_thread(ThreadHints {
            provider_thread_id: Some(format!("{BOT}:{ADA}")),
            in_reply_to: Some(format!("{BOT}:{ADA}:43")),
            ..ThreadHints::default()
        })
    };
    assert_eq!(
        one("reaction.json"),
        KitEvent::Message(reaction(1735689820, 500000015, system("reaction", Some("👍"))))
    );
    assert_eq!(
        one("reaction_removed.json"),
        KitEvent::Message(reaction(1735689830, 500000016, system("reaction_removed", None)))
    );
}

#[test]
fn unsupported_content_is_a_note_and_non_customer_updates_are_skipped() {
    assert_eq!(
        one("dice.json"),
        KitEvent::Message(from_ada(
            54,
            1735689840,
            system("unsupported", Some("a Telegram dice is not understood by this kit"))
        ))
    );
    let skipped = |kind: &str| KitEvent::Skipped { kind: kind.into() };
    assert_eq!(one("service_message.json"), skipped("telegram.service_message"));
    assert_eq!(one("bot_message.json"), skipped("telegram.bot_message"));
    assert_eq!(one("my_chat_member.json"), skipped("telegram.my_chat_member"));
    assert_eq!(one("channel_post.json"), skipped("telegram.channel_post"));
    assert_eq!(
        kit().parse_update(br#"{"update_id":1,"brand_new_kind":{}}"#).unwrap(),
        vec![skipped("telegram.unknown_update")]
    );
}

#[test]
fn user_scope_can_be_shared_between_bots() {
    let kit = TelegramKit::new(EndpointId::new("tg-sales-bot").unwrap()).unwrap().with_user_scope("telegram").unwrap();
    let events = kit.parse_update(&fixture("start_command.json")).unwrap();
    let msg = events[0].message().unwrap();
    assert_eq!(msg.sender, Address::platform("telegram", ADA));
    assert_eq!(msg.endpoint.as_str(), "tg-sales-bot");
    // A scope cannot contain `:` (it separates scope and id in the normalised address).
    assert!(TelegramKit::new(EndpointId::new("tg:bot").unwrap()).is_err());
    assert!(TelegramKit::new(EndpointId::new("tg-bot").unwrap()).unwrap().with_user_scope("a b").is_err());
}

#[test]
fn malformed_updates_name_the_json_path() {
    let reason = |body: &str| match kit().parse_update(body.as_bytes()) {
        Err(Error::InvalidInput { field: "telegram update", reason }) => reason,
        other => panic!("expected invalid input, got {other:?}"),
    };
    let r = reason(r#"{"message":{"message_id":1,"date":1,"chat":{"id":1},"text":"hi"}}"#);
    assert!(r.contains("missing field `update_id`"), "{r}");
    let r = reason(r#"{"update_id":1,"message":{"message_id":1,"date":1,"chat":{"id":"one"},"text":"hi"}}"#);
    assert!(r.contains("message.chat.id"), "{r}");
    let r = reason(r#"{"update_id":1,"message":{"message_id":1,"date":-99999999999999,"chat":{"id":1},"text":"hi"}}"#);
    assert!(r.contains("message.date"), "{r}");
    let r = reason(
        r#"{"update_id":1,"message":{"message_id":1,"date":1,"from":{"id":5,"first_name":"A"},"chat":{"id":1},"photo":[]}}"#,
    );
    assert!(r.contains("message.photo"), "{r}");
    let r = reason(
        r#"{"update_id":1,"message":{"message_id":1,"date":1,"from":{"id":5,"first_name":"A"},"chat":{"id":1},"text":" "}}"#,
    );
    assert!(r.contains("content.body"), "{r}");
    let r = reason(
        r#"{"update_id":1,"message":{"message_id":1,"date":1,"from":{"id":5,"first_name":"A"},"chat":{"id":1},"location":{"latitude":95,"longitude":0}}}"#,
    );
    assert!(r.contains("content.latitude"), "{r}");
}

// ----- outbound -----

fn call(method: &'static str, body: serde_json::Value) -> Vec<TelegramRequest> {
    vec![TelegramRequest { method, body }]
}

#[test]
fn text_with_reply_topic_and_silence() {
    let options =
        SendOptions { reply_to_message_id: Some(42), message_thread_id: Some(77), disable_notification: true };
    assert_eq!(
        send_requests(-1001000000001, &Content::text("Looking into it"), &options).unwrap(),
        call(
            "sendMessage",
            json!({
                "chat_id": -1001000000001i64,
                "message_thread_id": 77,
                "reply_parameters": { "message_id": 42 },
                "disable_notification": true,
                "text": "Looking into it"
            })
        )
    );
}

#[test]
fn choices_are_an_inline_keyboard_with_one_button_per_row() {
    let content = Content::Choices {
        body: "How did we do?".into(),
        options: vec![
            ChoiceOption { id: "csat:5".into(), title: "Great".into(), description: None },
            ChoiceOption { id: "csat:1".into(), title: "Poor".into(), description: None },
        ],
        selected: None,
    };
    assert_eq!(
        send_requests(7000000001, &content, &SendOptions::default()).unwrap(),
        call(
            "sendMessage",
            json!({
                "chat_id": 7000000001i64,
                "text": "How did we do?",
                "reply_markup": { "inline_keyboard": [
                    [{ "text": "Great", "callback_data": "csat:5" }],
                    [{ "text": "Poor", "callback_data": "csat:1" }]
                ]}
            })
        )
    );
    let long_id = Content::Choices {
        body: "Pick".into(),
        options: vec![ChoiceOption { id: "x".repeat(65), title: "X".into(), description: None }],
        selected: None,
    };
    assert!(matches!(
        send_requests(1, &long_id, &SendOptions::default()),
        Err(Error::InvalidInput { field: "content.options.id", .. })
    ));
}

#[test]
fn media_by_url_or_file_id_with_caption() {
    let photo = Content::Media {
        media: MediaKind::Image,
        url: "https://files.example.com/label.png".into(),
        mime_type: None,
        caption: Some("Your return label".into()),
        filename: None,
    };
    assert_eq!(
        send_requests(7000000001, &photo, &SendOptions::default()).unwrap(),
        call(
            "sendPhoto",
            json!({ "chat_id": 7000000001i64, "photo": "https://files.example.com/label.png", "caption": "Your return label" })
        )
    );
    let voice = Content::Media {
        media: MediaKind::Audio,
        url: "telegram-file:AwAD-voice".into(),
        mime_type: Some("audio/ogg".into()),
        caption: None,
        filename: None,
    };
    assert_eq!(
        send_requests(7000000001, &voice, &SendOptions::default()).unwrap(),
        call("sendVoice", json!({ "chat_id": 7000000001i64, "voice": "AwAD-voice" }))
    );
    let doc = Content::Media {
        media: MediaKind::Document,
        url: "https://files.example.com/a.pdf".into(),
        mime_type: None,
        caption: Some("c".repeat(1025)),
        filename: None,
    };
    assert!(matches!(
        send_requests(1, &doc, &SendOptions::default()),
        Err(Error::InvalidInput { field: "content.caption", .. })
    ));
}

#[test]
fn venue_location_and_contact() {
    let venue = Content::Location {
        latitude: 51.5007,
        longitude: -0.1246,
        name: Some("Parcel locker 12".into()),
        address: Some("1 Example Street".into()),
    };
    assert_eq!(
        send_requests(1, &venue, &SendOptions::default()).unwrap(),
        call(
            "sendVenue",
            json!({ "chat_id": 1, "latitude": 51.5007, "longitude": -0.1246, "title": "Parcel locker 12", "address": "1 Example Street" })
        )
    );
    let point = Content::Location { latitude: 1.5, longitude: 2.5, name: Some("Here".into()), address: None };
    assert_eq!(
        send_requests(1, &point, &SendOptions::default()).unwrap(),
        call("sendLocation", json!({ "chat_id": 1, "latitude": 1.5, "longitude": 2.5 }))
    );
    let card = Content::Contact(ContactCard {
        name: "Acme Support".into(),
        phones: vec!["+15550001111".into()],
        emails: vec![],
        organization: None,
    });
    assert_eq!(
        send_requests(1, &card, &SendOptions::default()).unwrap(),
        call("sendContact", json!({ "chat_id": 1, "phone_number": "+15550001111", "first_name": "Acme Support" }))
    );
    let no_phone = Content::Contact(ContactCard { name: "X".into(), ..ContactCard::default() });
    assert!(send_requests(1, &no_phone, &SendOptions::default()).is_err());
}

#[test]
fn what_telegram_cannot_carry_is_refused() {
    let template = Content::Template { name: "t".into(), language: "en".into(), parameters: vec![] };
    assert!(send_requests(1, &template, &SendOptions::default()).is_err());
    assert!(send_requests(1, &Content::text("a".repeat(4097)), &SendOptions::default()).is_err());
    // Telegram counts UTF-16 code units: 2049 emoji are 4098 of them.
    assert!(send_requests(1, &Content::text("😀".repeat(2049)), &SendOptions::default()).is_err());
    assert!(send_requests(1, &Content::text("😀".repeat(2048)), &SendOptions::default()).is_ok());
}

#[test]
fn small_calls_around_messages() {
    assert_eq!(
        answer_callback_query("4300000000000000001", None).unwrap(),
        TelegramRequest { method: "answerCallbackQuery", body: json!({ "callback_query_id": "4300000000000000001" }) }
    );
    assert!(answer_callback_query("", None).is_err());
    assert_eq!(
        typing(7000000001),
        TelegramRequest { method: "sendChatAction", body: json!({ "chat_id": 7000000001i64, "action": "typing" }) }
    );
    assert_eq!(chat_id(&Address::platform(BOT, ADA)).unwrap(), 7000000001);
    assert!(chat_id(&Address::platform(BOT, "ada")).is_err());
}

/// Telegram numbers messages per chat, and a private chat's id is the user's id for every bot:
/// the first message a user sends to each of two bots is message 1 of chat <user id> for both.
/// Ingested into one tenant, both are kept (neither is taken for a duplicate of the other).
#[test]
fn the_same_message_number_from_one_user_to_two_bots_is_two_messages() {
    let update = br#"{"update_id":1,"message":{"message_id":1,"date":1735689600,
        "from":{"id":7000000001,"is_bot":false,"first_name":"Ada"},
        "chat":{"id":7000000001,"type":"private","first_name":"Ada"},"text":"hello"}}"#;
    let engine = touchpoint::Engine::in_memory();
    let tenant = TenantId::new("acme").unwrap();
    let mut ids = Vec::new();
    for bot in ["tg-sales-bot", "tg-support-bot"] {
        let kit = TelegramKit::new(EndpointId::new(bot).unwrap()).unwrap();
        let events = kit.parse_update(update).unwrap();
        let [KitEvent::Message(msg)] = &events[..] else { panic!("{events:?}") };
        assert_eq!(msg.external_id, kit.message_id(7000000001, 1));
        let outcome = futures::executor::block_on(engine.ingest(&tenant, msg.clone())).unwrap();
        assert!(!outcome.duplicate, "{bot}'s message was taken for a duplicate of the other bot's");
        ids.push(outcome.message);
    }
    assert_ne!(ids[0], ids[1]);
}

/// A post of a linked channel is automatically forwarded into its discussion group with the fake
/// sender `Telegram` (id 777000, `is_bot: false`) and `sender_chat` = the channel. It is the
/// business's own broadcast, not a customer's message, and must not be ingested as one from a
/// customer "Telegram".
#[test]
fn an_automatic_channel_forward_in_a_discussion_group_is_not_a_customer_message() {
    let body = br#"{"update_id":500000100,"message":{"message_id":77,"date":1735689600,
        "from":{"id":777000,"is_bot":false,"first_name":"Telegram"},
        "sender_chat":{"id":-1001000000001,"type":"channel","title":"Shop news"},
        "chat":{"id":-1002000000002,"type":"supergroup","title":"Shop discussion"},
        "is_automatic_forward":true,
        "forward_origin":{"type":"channel","chat":{"id":-1001000000001,"type":"channel","title":"Shop news"},"message_id":12,"date":1735689599},
        "text":"New opening hours from Monday"}}"#;
    let events = kit().parse_update(body).unwrap();
    assert_eq!(events.len(), 1);
    assert!(events[0].message().is_none(), "ingested as a customer message: {:?}", events[0]);
}

/// What the Bot API would refuse is refused here, with the field: media by another kit's URL
/// scheme, coordinates off the globe, a contact without a phone number or a name.
#[test]
fn content_telegram_cannot_send_is_refused_with_the_field() {
    let refused = |content: Content, field: &str| {
        let r = send_requests(7000000001, &content, &SendOptions::default());
        assert!(matches!(&r, Err(Error::InvalidInput { field: f, .. }) if *f == field), "{content:?}: {r:?}");
    };
    let media = |url: &str| Content::Media {
        media: MediaKind::Document,
        url: url.into(),
        mime_type: None,
        caption: None,
        filename: None,
    };
    for url in ["whatsapp-media:123", "cid:logo@x", "file:///tmp/a.pdf", "/tmp/a.pdf", "photo.png"] {
        refused(media(url), "content.url");
    }
    // A file id, bare or as a `telegram-file:` URL, and an http(s) link go out.
    for (url, sent) in [
        ("telegram-file:BQACAgQ", "BQACAgQ"),
        ("BQACAgQ", "BQACAgQ"),
        ("https://files.example.com/a.pdf", "https://files.example.com/a.pdf"),
    ] {
        let r = send_requests(7000000001, &media(url), &SendOptions::default()).unwrap();
        assert_eq!(r[0].body["document"], sent);
    }
    for (latitude, longitude) in [(91.0, 0.0), (0.0, -180.5), (f64::NAN, 0.0)] {
        refused(Content::Location { latitude, longitude, name: None, address: None }, "content.latitude");
    }
    let card = |name: &str, phone: &str| {
        Content::Contact(ContactCard {
            name: name.into(),
            phones: vec![phone.into()],
            emails: vec![],
            organization: None,
        })
    };
    refused(card("Ana", " "), "content.phones");
    refused(card("", "+5511987654321"), "content.name");
    assert_eq!(
        send_requests(7000000001, &card("Ana", "+5511987654321"), &SendOptions::default()).unwrap()[0].method,
        "sendContact"
    );
}

/// A sticker the kit read (its emoji kept as caption), rendered for Telegram, is sendable by
/// the kit: `sendSticker` takes no caption, so the capabilities say so and the renderer sends
/// the caption as a text after the sticker.
#[test]
fn a_sticker_rendered_for_telegram_can_be_sent_back_by_the_kit() {
    use touchpoint::channel::{Capabilities, RenderedPart, render};
    let events = parse("sticker.json");
    let sticker = events[0].message().unwrap().content.clone();
    let parts = render(&sticker, &Capabilities::telegram()).unwrap();
    assert_eq!(parts.len(), 2, "the sticker, then its emoji as text: {parts:?}");
    for part in parts {
        let content = match part {
            RenderedPart::Media { media, url, mime_type, caption, filename } => {
                assert_eq!(caption, None);
                Content::Media { media, url, mime_type, caption, filename }
            }
            RenderedPart::Text { body } => {
                assert_eq!(body, "😢");
                Content::text(body)
            }
            other => panic!("unexpected part {other:?}"),
        };
        send_requests(7000000001, &content, &SendOptions::default()).unwrap();
    }
}
