//! The Messenger / Instagram kit through the public API: every event kind of
//! `tests/fixtures/messenger/` parses into the exact model, malformed bodies fail with the JSON
//! path, and the outbound builders produce the documented Send API JSON.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use touchpoint::Error;
use touchpoint::channels::messenger::{
    MessageTag, MessagingType, MessengerKit, SendOptions, SenderAction, send_requests, sender_action,
};
use touchpoint::channels::{DeliveryReceipt, Echo, KitEvent};
use touchpoint::model::*;

const PAGE: &str = "700000000000001";
const PSID: &str = "6100000000000001";
const IG: &str = "17800000000000001";
const IGSID: &str = "5300000000000001";

fn parse(name: &str) -> Vec<KitEvent> {
    let body = std::fs::read(format!("{}/tests/fixtures/messenger/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    MessengerKit::new().parse_webhook(&body).unwrap()
}

fn ms(millis: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(millis).unwrap()
}

fn from_psid(id: &str, millis: i64, content: Content) -> InboundMessage {
    InboundMessage::new(
        ChannelKind::Messenger,
        EndpointId::new(PAGE).unwrap(),
        Address::platform(PAGE, PSID),
        id,
        content,
    )
    .with_sent_at(ms(millis))
}

fn from_igsid(id: &str, millis: i64, content: Content) -> InboundMessage {
    InboundMessage::new(ChannelKind::Instagram, EndpointId::new(IG).unwrap(), Address::platform(IG, IGSID), id, content)
        .with_sent_at(ms(millis))
}

fn media(kind: MediaKind, url: &str) -> Content {
    Content::Media { media: kind, url: url.into(), mime_type: None, caption: None, filename: None }
}

fn system(event: &str, detail: Option<&str>) -> Content {
    Content::System { event: event.into(), detail: detail.map(Into::into) }
}

fn pick(body: &str, id: &str, title: &str) -> Content {
    Content::Choices {
        body: body.into(),
        options: vec![ChoiceOption { id: id.into(), title: title.into(), description: None }],
        selected: Some(id.into()),
    }
}

fn receipt(
    channel: ChannelKind,
    id: &str,
    state: DeliveryState,
    millis: i64,
    recipient: Address,
    watermark: bool,
) -> KitEvent {
    KitEvent::Receipt(DeliveryReceipt {
        channel,
        external_id: id.into(),
        state,
        at: Some(ms(millis)),
        recipient: Some(recipient),
        watermark,
    })
}

fn replying(msg: InboundMessage, mid: &str) -> InboundMessage {
    msg.with_thread(ThreadHints { in_reply_to: Some(mid.into()), ..ThreadHints::default() })
}

#[test]
fn quick_reply_and_delivery_in_one_post() {
    let psid = Address::platform(PAGE, PSID);
    assert_eq!(
        parse("quick_reply_and_delivery.json"),
        vec![
            KitEvent::Message(from_psid(
                "m_TESTMID0001",
                1735689600400,
                pick("Track my order", "TRACK_ORDER", "Track my order")
            )),
            receipt(
                ChannelKind::Messenger,
                "m_OUTMID0005",
                DeliveryState::Delivered,
                1735689599000,
                psid.clone(),
                false
            ),
            receipt(ChannelKind::Messenger, "", DeliveryState::Delivered, 1735689599000, psid, true),
        ]
    );
}

#[test]
fn instagram_image_is_a_message_and_our_echo_is_reported_as_such() {
    assert_eq!(
        parse("instagram_image_and_echo.json"),
        vec![
            KitEvent::Message(from_igsid(
                "aWdfTESTMID0002",
                1735689699000,
                media(MediaKind::Image, "https://cdn.example.net/ig/fake-image.jpg")
            )),
            KitEvent::Echo(Echo {
                channel: ChannelKind::Instagram,
                endpoint: EndpointId::new(IG).unwrap(),
                recipient: Address::platform(IG, IGSID),
                external_id: "aWdfTESTMID0003".into(),
                content: Some(Content::text("Thanks, an agent will look at the photo")),
                app_id: None,
                metadata: None,
                at: Some(ms(1735689701000)),
            }),
        ]
    );
}

#[test]
fn messenger_echo_keeps_app_id_and_metadata() {
    assert_eq!(
        parse("echo.json"),
        vec![KitEvent::Echo(Echo {
            channel: ChannelKind::Messenger,
            endpoint: EndpointId::new(PAGE).unwrap(),
            recipient: Address::platform(PAGE, PSID),
            external_id: "m_OUTMID0007".into(),
            content: Some(Content::text("We have reopened your case")),
            app_id: Some("1517776481860111".into()),
            metadata: Some("ticket-42".into()),
            at: Some(ms(1735689690000)),
        })]
    );
}

#[test]
fn quoted_reply_points_at_the_quoted_message() {
    assert_eq!(
        parse("text_reply.json"),
        vec![KitEvent::Message(replying(
            from_psid("m_TESTMID0010", 1735689610000, Content::text("It is still not here")),
            "m_OUTMID0006"
        ))]
    );
}

#[test]
fn every_attachment_is_its_own_message() {
    let expected: Vec<KitEvent> = [
        ("m_TESTMID0011", media(MediaKind::Image, "https://cdn.example.net/m/photo.jpg")),
        ("m_TESTMID0011#2", media(MediaKind::Video, "https://cdn.example.net/m/clip.mp4")),
        ("m_TESTMID0011#3", media(MediaKind::Audio, "https://cdn.example.net/m/voice.mp4")),
        ("m_TESTMID0011#4", media(MediaKind::Document, "https://cdn.example.net/m/receipt.pdf")),
        ("m_TESTMID0011#5", media(MediaKind::Sticker, "https://cdn.example.net/m/sticker.png")),
    ]
    .into_iter()
    .map(|(id, content)| KitEvent::Message(from_psid(id, 1735689620000, content)))
    .collect();
    assert_eq!(parse("attachments.json"), expected);
}

#[test]
fn location_and_shared_links_keep_what_the_agent_needs() {
    assert_eq!(
        parse("location.json"),
        vec![KitEvent::Message(from_psid(
            "m_TESTMID0012",
            1735689630000,
            Content::Location {
                latitude: 51.5007,
                longitude: -0.1246,
                name: Some("Ada's location".into()),
                address: None
            }
        ))]
    );
    assert_eq!(
        parse("fallback.json"),
        vec![KitEvent::Message(from_psid(
            "m_TESTMID0013",
            1735689640000,
            system("shared_link", Some("Order 5521 tracking https://track.example.net/5521"))
        ))]
    );
}

#[test]
fn instagram_shares_mentions_unsends_and_seen() {
    assert_eq!(
        parse("instagram_shares.json"),
        vec![
            KitEvent::Message(from_igsid("aWdfTESTMID0010", 1735689800000, Content::text("Look at this"))),
            KitEvent::Message(from_igsid(
                "aWdfTESTMID0010#2",
                1735689800000,
                system("shared_ig_reel", Some("Unboxing fail https://cdn.example.net/ig/reel.mp4"))
            )),
            KitEvent::Message(from_igsid(
                "aWdfTESTMID0011",
                1735689801000,
                system("shared_story_mention", Some("https://cdn.example.net/ig/story.jpg"))
            )),
            KitEvent::Skipped { kind: "instagram.message_deleted".into() },
            receipt(
                ChannelKind::Instagram,
                "aWdfOUTMID0004",
                DeliveryState::Read,
                1735689803000,
                Address::platform(IG, IGSID),
                false
            ),
        ]
    );
}

#[test]
fn postbacks_are_picks_with_a_stable_id_even_without_mid() {
    assert_eq!(
        parse("postback.json"),
        vec![
            KitEvent::Message(from_psid(
                "m_TESTMID0014",
                1735689650000,
                pick("Talk to an agent", "AGENT", "Talk to an agent")
            )),
            KitEvent::Message(from_psid(
                &format!("postback:{PAGE}:{PSID}:1735689651000"),
                1735689651000,
                pick("Get Started", "GET_STARTED", "Get Started")
            )),
        ]
    );
    // A retried webhook yields the same ids, so ingest deduplicates it.
    assert_eq!(parse("postback.json"), parse("postback.json"));
}

#[test]
fn reactions_and_their_removal_reply_to_the_reacted_message() {
    let key = format!("{PAGE}:{PSID}");
    assert_eq!(
        parse("reactions.json"),
        vec![
            KitEvent::Message(replying(
                from_psid(
                    &format!("reaction:m_OUTMID0006:{key}:react:1735689660000"),
                    1735689660000,
                    system("reaction", Some("❤️"))
                ),
                "m_OUTMID0006"
            )),
            KitEvent::Message(replying(
                from_psid(
                    &format!("reaction:m_OUTMID0006:{key}:unreact:1735689661000"),
                    1735689661000,
                    system("reaction_removed", None)
                ),
                "m_OUTMID0006"
            )),
        ]
    );
}

#[test]
fn edits_name_the_original_message() {
    assert_eq!(
        parse("edit.json"),
        vec![KitEvent::Edited {
            original: "m_TESTMID0010".into(),
            message: from_psid("m_TESTMID0010#edit1", 1735689670000, Content::text("It is still not here, order 5521")),
        }]
    );
}

#[test]
fn read_is_a_watermark_receipt() {
    assert_eq!(
        parse("read.json"),
        vec![receipt(
            ChannelKind::Messenger,
            "",
            DeliveryState::Read,
            1735689679000,
            Address::platform(PAGE, PSID),
            true
        )]
    );
}

#[test]
fn referrals_optins_and_standby_are_reported_as_skipped() {
    assert_eq!(
        parse("other.json"),
        vec![
            KitEvent::Skipped { kind: "messenger.referral".into() },
            KitEvent::Skipped { kind: "messenger.optin".into() },
            KitEvent::Skipped { kind: "messenger.standby".into() },
        ]
    );
}

#[test]
fn mapped_endpoints_replace_the_page_id() {
    let body =
        std::fs::read(format!("{}/tests/fixtures/messenger/text_reply.json", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let kit = MessengerKit::new().with_endpoint(PAGE, EndpointId::new("fb-acme").unwrap());
    let events = kit.parse_webhook(&body).unwrap();
    assert_eq!(events[0].message().unwrap().endpoint.as_str(), "fb-acme");
}

#[test]
fn malformed_bodies_name_the_json_path() {
    let kit = MessengerKit::new();
    let reason = |body: &str| match kit.parse_webhook(body.as_bytes()) {
        Err(Error::InvalidInput { field: "messenger webhook", reason }) => reason,
        other => panic!("expected invalid input, got {other:?}"),
    };
    let r =
        reason(r#"{"object":"page","entry":[{"id":"1","messaging":[{"sender":{"id":"2"},"message":{"text":"hi"}}]}]}"#);
    assert!(r.contains("entry[0].messaging[0].message") && r.contains("missing field `mid`"), "{r}");
    let r = reason(
        r#"{"object":"page","entry":[{"id":"1","messaging":[{"recipient":{"id":"1"},"message":{"mid":"m1","text":"hi"}}]}]}"#,
    );
    assert!(r.contains("entry[0].messaging[0].sender.id"), "{r}");
    let r = reason(
        r#"{"object":"page","entry":[{"id":"1","messaging":[{"sender":{"id":"2"},"timestamp":"soon","message":{"mid":"m1"}}]}]}"#,
    );
    assert!(r.contains("entry[0].messaging[0].timestamp"), "{r}");
    let r = reason(
        r#"{"object":"page","entry":[{"id":"1","messaging":[{"sender":{"id":"2"},"message":{"mid":"m1","attachments":[{"type":"image","payload":{}}]}}]}]}"#,
    );
    assert!(r.contains("entry[0].messaging[0].message.attachments[0].payload.url"), "{r}");
    let r = reason(r#"{"object":"whatsapp_business_account","entry":[]}"#);
    assert!(r.contains("`object`"), "{r}");
    let r =
        reason(r#"{"object":"page","entry":[{"id":"1","messaging":[{"sender":{"id":"2"},"delivery":{"mids":[]}}]}]}"#);
    assert!(r.contains("entry[0].messaging[0].delivery.watermark"), "{r}");
}

// ----- outbound -----

#[test]
fn text_goes_out_as_a_response_by_default() {
    assert_eq!(
        send_requests(&ChannelKind::Messenger, PSID, &Content::text("Hello Ada"), &SendOptions::default()).unwrap(),
        vec![json!({ "recipient": { "id": PSID }, "messaging_type": "RESPONSE", "message": { "text": "Hello Ada" } })]
    );
}

#[test]
fn human_agent_tag_and_metadata() {
    let options = SendOptions {
        messaging_type: MessagingType::Tagged(MessageTag::HumanAgent),
        metadata: Some("ticket-42".into()),
    };
    assert_eq!(
        send_requests(&ChannelKind::Instagram, IGSID, &Content::text("An agent here"), &options).unwrap(),
        vec![json!({
            "recipient": { "id": IGSID },
            "messaging_type": "MESSAGE_TAG",
            "tag": "HUMAN_AGENT",
            "message": { "text": "An agent here", "metadata": "ticket-42" }
        })]
    );
    // Instagram accepts no other tag.
    let other = SendOptions { messaging_type: MessagingType::Tagged(MessageTag::PostPurchaseUpdate), metadata: None };
    assert!(matches!(
        send_requests(&ChannelKind::Instagram, IGSID, &Content::text("x"), &other),
        Err(Error::InvalidInput { field: "messaging_type", .. })
    ));
    let update = SendOptions { messaging_type: MessagingType::Update, metadata: None };
    assert_eq!(
        send_requests(&ChannelKind::Messenger, PSID, &Content::text("x"), &update).unwrap()[0]["messaging_type"],
        "UPDATE"
    );
}

#[test]
fn choices_become_quick_replies() {
    let content = Content::Choices {
        body: "What is it about?".into(),
        options: vec![
            ChoiceOption { id: "TRACK".into(), title: "Track order".into(), description: None },
            ChoiceOption { id: "REFUND".into(), title: "Refund".into(), description: Some("ignored".into()) },
        ],
        selected: None,
    };
    assert_eq!(
        send_requests(&ChannelKind::Messenger, PSID, &content, &SendOptions::default()).unwrap()[0]["message"],
        json!({
            "text": "What is it about?",
            "quick_replies": [
                { "content_type": "text", "title": "Track order", "payload": "TRACK" },
                { "content_type": "text", "title": "Refund", "payload": "REFUND" }
            ]
        })
    );
    let too_many = Content::Choices {
        body: "Pick".into(),
        options: (0..14)
            .map(|i| ChoiceOption { id: format!("{i}"), title: format!("O{i}"), description: None })
            .collect(),
        selected: None,
    };
    assert!(send_requests(&ChannelKind::Messenger, PSID, &too_many, &SendOptions::default()).is_err());
}

#[test]
fn media_is_an_attachment_and_its_caption_follows() {
    let content = Content::Media {
        media: MediaKind::Document,
        url: "https://files.example.com/invoice.pdf".into(),
        mime_type: None,
        caption: Some("Your invoice".into()),
        filename: None,
    };
    let bodies = send_requests(&ChannelKind::Messenger, PSID, &content, &SendOptions::default()).unwrap();
    assert_eq!(
        bodies,
        vec![
            json!({ "recipient": { "id": PSID }, "messaging_type": "RESPONSE", "message": {
                "attachment": { "type": "file", "payload": { "url": "https://files.example.com/invoice.pdf", "is_reusable": true } }
            }}),
            json!({ "recipient": { "id": PSID }, "messaging_type": "RESPONSE", "message": { "text": "Your invoice" } }),
        ]
    );
}

#[test]
fn content_without_a_send_api_message_and_oversize_text_are_refused() {
    let location = Content::Location { latitude: 1.0, longitude: 2.0, name: None, address: None };
    assert!(send_requests(&ChannelKind::Messenger, PSID, &location, &SendOptions::default()).is_err());
    assert!(send_requests(&ChannelKind::WhatsApp, PSID, &Content::text("x"), &SendOptions::default()).is_err());
    assert!(send_requests(&ChannelKind::Messenger, "", &Content::text("x"), &SendOptions::default()).is_err());
    let ig_long = Content::text("é".repeat(501)); // 1002 bytes
    assert!(send_requests(&ChannelKind::Instagram, IGSID, &ig_long, &SendOptions::default()).is_err());
    assert!(send_requests(&ChannelKind::Messenger, PSID, &ig_long, &SendOptions::default()).is_ok());
}

#[test]
fn sender_actions() {
    assert_eq!(
        sender_action(&ChannelKind::Messenger, PSID, SenderAction::MarkSeen).unwrap(),
        json!({ "recipient": { "id": PSID }, "sender_action": "mark_seen" })
    );
    assert_eq!(
        sender_action(&ChannelKind::Messenger, PSID, SenderAction::TypingOff).unwrap()["sender_action"],
        "typing_off"
    );
}

/// Meta fetches an attachment from its URL: only an http(s) link goes out. Another kit's file
/// id (a `whatsapp-media:` or `telegram-file:` URL from an inbound message), a `cid:` reference
/// or a path is refused before the Send API would refuse it.
#[test]
fn media_goes_out_by_http_link_only() {
    let media = |url: &str| Content::Media {
        media: MediaKind::Image,
        url: url.into(),
        mime_type: None,
        caption: None,
        filename: None,
    };
    for url in ["https://cdn.example.com/a.png", "HTTP://cdn.example.com/a.png"] {
        let r = send_requests(&ChannelKind::Messenger, PSID, &media(url), &SendOptions::default()).unwrap();
        assert_eq!(r[0]["message"]["attachment"]["payload"]["url"], url);
    }
    for url in ["whatsapp-media:123", "telegram-file:AgAD", "cid:logo@x", "/tmp/a.png"] {
        let r = send_requests(&ChannelKind::Instagram, IGSID, &media(url), &SendOptions::default());
        assert!(matches!(&r, Err(Error::InvalidInput { field, .. }) if *field == "content.url"), "{url}: {r:?}");
    }
}
