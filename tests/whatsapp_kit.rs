//! The WhatsApp Cloud API kit through the public API: every documented message type and status
//! of `tests/fixtures/whatsapp/` parses into the exact model, malformed bodies fail with the JSON
//! path, and the outbound builder produces the documented send-message JSON.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use touchpoint::Error;
use touchpoint::channels::whatsapp::{SendOptions, WhatsAppKit, mark_read, media_id, send_message};
use touchpoint::channels::{DeliveryReceipt, KitEvent};
use touchpoint::model::*;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/whatsapp/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn parse(name: &str) -> Vec<KitEvent> {
    WhatsAppKit::new().parse_webhook(&fixture(name)).unwrap()
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).unwrap()
}

/// A message from Ada (+447700900123) to the business number 800000000000001.
fn from_ada(id: &str, secs: i64, content: Content) -> InboundMessage {
    InboundMessage::new(
        ChannelKind::WhatsApp,
        EndpointId::new("800000000000001").unwrap(),
        Address::phone("+447700900123"),
        id,
        content,
    )
    .with_sent_at(at(secs))
    .with_sender_name("Ada Example")
}

fn replying_to(msg: InboundMessage, wamid: &str) -> InboundMessage {
    msg.with_thread(ThreadHints { in_reply_to: Some(wamid.into()), ..ThreadHints::default() })
}

fn only_message(name: &str) -> InboundMessage {
    match parse(name).as_slice() {
        [KitEvent::Message(m)] => m.clone(),
        other => panic!("{name}: expected one message, got {other:?}"),
    }
}

fn media(kind: MediaKind, id: &str, mime: &str, caption: Option<&str>, filename: Option<&str>) -> Content {
    Content::Media {
        media: kind,
        url: format!("whatsapp-media:{id}"),
        mime_type: Some(mime.into()),
        caption: caption.map(Into::into),
        filename: filename.map(Into::into),
    }
}

fn system(event: &str, detail: Option<&str>) -> Content {
    Content::System { event: event.into(), detail: detail.map(Into::into) }
}

fn invalid_reason(result: Result<Vec<KitEvent>, Error>) -> String {
    match result {
        Err(Error::InvalidInput { field, reason }) => {
            assert_eq!(field, "whatsapp webhook");
            reason
        }
        other => panic!("expected invalid input, got {other:?}"),
    }
}

#[test]
fn text_message_keeps_sender_phone_name_time_and_endpoint() {
    let msg = only_message("text.json");
    assert_eq!(msg, from_ada("wamid.TEST0001", 1735689600, Content::text("Hi, my parcel has not arrived")));
    // WhatsApp numbers are asserted by the network: they may link the customer to other channels.
    assert_eq!(msg.verification, Verification::CarrierAsserted);
}

#[test]
fn a_message_received_in_a_group_names_the_group_as_its_thread() {
    let msg = only_message("group_text.json");
    let want = from_ada("wamid.GROUP0001", 1735689600, Content::text("Order 5521 for the whole team?")).with_thread(
        ThreadHints { provider_thread_id: Some("group:Y2FwaV9ncm91cDpHUk9VUDE".into()), ..ThreadHints::default() },
    );
    assert_eq!(msg, want);
    // The same participant's direct message names no thread: the two are told apart.
    assert_eq!(only_message("text.json").thread.provider_thread_id, None);
}

#[test]
fn list_reply_is_the_picked_row_and_points_at_our_list_message() {
    let expected = replying_to(
        from_ada(
            "wamid.TEST0002",
            1735689660,
            Content::Choices {
                body: "Refund".into(),
                options: vec![ChoiceOption {
                    id: "topic_refund".into(),
                    title: "Refund".into(),
                    description: Some("Money back for an order".into()),
                }],
                selected: Some("topic_refund".into()),
            },
        ),
        "wamid.OUT0007",
    );
    assert_eq!(only_message("list_reply.json"), expected);
}

#[test]
fn reply_button_and_template_quick_reply_are_picks() {
    let button = replying_to(
        from_ada(
            "wamid.TEST0010",
            1735689800,
            Content::Choices {
                body: "Yes, cancel".into(),
                options: vec![ChoiceOption { id: "yes_cancel".into(), title: "Yes, cancel".into(), description: None }],
                selected: Some("yes_cancel".into()),
            },
        ),
        "wamid.OUT0009",
    );
    assert_eq!(only_message("button_reply.json"), button);

    let template = replying_to(
        from_ada(
            "wamid.TEST0011",
            1735689810,
            Content::Choices {
                body: "Confirm".into(),
                options: vec![ChoiceOption {
                    id: "CONFIRM_DELIVERY_5521".into(),
                    title: "Confirm".into(),
                    description: None,
                }],
                selected: Some("CONFIRM_DELIVERY_5521".into()),
            },
        ),
        "wamid.OUT0010",
    );
    assert_eq!(only_message("template_button.json"), template);
}

#[test]
fn media_messages_carry_the_media_id_mime_caption_and_filename() {
    assert_eq!(
        only_message("image.json"),
        from_ada(
            "wamid.TEST0012",
            1735689820,
            media(MediaKind::Image, "1100000000000012", "image/jpeg", Some("The box was crushed"), None)
        )
    );
    assert_eq!(
        only_message("audio_voice.json"),
        from_ada(
            "wamid.TEST0013",
            1735689830,
            media(MediaKind::Audio, "1100000000000013", "audio/ogg; codecs=opus", None, None)
        )
    );
    assert_eq!(
        only_message("video.json"),
        from_ada("wamid.TEST0014", 1735689840, media(MediaKind::Video, "1100000000000014", "video/mp4", None, None))
    );
    assert_eq!(
        only_message("document.json"),
        from_ada(
            "wamid.TEST0015",
            1735689850,
            media(
                MediaKind::Document,
                "1100000000000015",
                "application/pdf",
                Some("My invoice"),
                Some("invoice-5521.pdf")
            )
        )
    );
    let sticker = only_message("sticker.json");
    assert_eq!(
        sticker,
        from_ada("wamid.TEST0016", 1735689860, media(MediaKind::Sticker, "1100000000000016", "image/webp", None, None))
    );
    let Content::Media { url, .. } = &sticker.content else { unreachable!() };
    assert_eq!(media_id(url), Some("1100000000000016"));
}

#[test]
fn location_keeps_coordinates_name_and_address() {
    assert_eq!(
        only_message("location.json"),
        from_ada(
            "wamid.TEST0017",
            1735689870,
            Content::Location {
                latitude: 51.5007,
                longitude: -0.1246,
                name: Some("Parcel locker 12".into()),
                address: Some("1 Example Street, London".into()),
            }
        )
    );
}

#[test]
fn each_shared_contact_becomes_its_own_message_with_a_stable_id() {
    let events = parse("contacts.json");
    let grace = from_ada(
        "wamid.TEST0018",
        1735689880,
        Content::Contact(ContactCard {
            name: "Grace Example".into(),
            phones: vec!["+44 7700 900456".into()],
            emails: vec!["grace@example.org".into()],
            organization: Some("Example Ltd".into()),
        }),
    );
    let alan = from_ada(
        "wamid.TEST0018#2",
        1735689880,
        Content::Contact(ContactCard {
            name: "Alan Example".into(),
            phones: vec!["+44 7700 900789".into()],
            emails: vec![],
            organization: None,
        }),
    );
    assert_eq!(events, vec![KitEvent::Message(grace), KitEvent::Message(alan)]);
}

#[test]
fn reactions_point_at_the_message_reacted_to_and_removal_has_no_emoji() {
    assert_eq!(
        only_message("reaction.json"),
        replying_to(from_ada("wamid.TEST0019", 1735689890, system("reaction", Some("👍"))), "wamid.OUT0011")
    );
    assert_eq!(
        only_message("reaction_removed.json"),
        replying_to(from_ada("wamid.TEST0003", 1735689700, system("reaction_removed", None)), "wamid.OUT0007")
    );
}

#[test]
fn order_system_flow_and_unsupported_messages_are_system_notes() {
    assert_eq!(
        only_message("order.json"),
        from_ada(
            "wamid.TEST0020",
            1735689900,
            system("order", Some("catalog CATALOG01: 2 × SKU-1 at 12.5 EUR; 1 × SKU-2 at 3.99 EUR — Gift wrap please"))
        )
    );
    // A number change comes from the new number, with the old one as a claim.
    let mut changed = from_ada(
        "wamid.TEST0021",
        1735689910,
        system("customer_changed_number", Some("User A changed from 447700900123 to 447700900999")),
    )
    .with_claim(CustomerKey::Phone("+447700900123".into()), Verification::CarrierAsserted);
    changed.sender = Address::phone("+447700900999");
    assert_eq!(only_message("system.json"), changed);
    assert_eq!(
        only_message("flow_reply.json"),
        replying_to(
            from_ada("wamid.TEST0023", 1735689930, system("flow_reply", Some(r#"{"flow_token":"FT1","rating":"5"}"#))),
            "wamid.OUT0012"
        )
    );
    assert_eq!(
        only_message("unsupported.json"),
        from_ada(
            "wamid.TEST0022",
            1735689920,
            system("unsupported", Some("error 131051: Message type unknown: Message type is currently not supported."))
        )
    );
}

#[test]
fn statuses_become_receipts_in_order() {
    let receipt = |state, secs| {
        KitEvent::Receipt(DeliveryReceipt {
            channel: ChannelKind::WhatsApp,
            external_id: "wamid.OUT0008".into(),
            state,
            at: Some(at(secs)),
            recipient: Some(Address::phone("+447700900123")),
            watermark: false,
        })
    };
    assert_eq!(
        parse("statuses.json"),
        vec![
            receipt(DeliveryState::Sent, 1735776000),
            receipt(DeliveryState::Delivered, 1735776010),
            receipt(DeliveryState::Read, 1735776020),
        ]
    );
    assert_eq!(
        parse("status_failed.json"),
        vec![receipt(
            DeliveryState::Failed { code: Some("131047".into()), reason: "Re-engagement message".into() },
            1735776100
        )]
    );
}

#[test]
fn business_scoped_user_ids_are_the_sender_and_the_phone_rides_along_as_a_claim() {
    let events = parse("bsuid.json");
    let endpoint = EndpointId::new("800000000000001").unwrap();
    let with_phone = InboundMessage::new(
        ChannelKind::WhatsApp,
        endpoint.clone(),
        Address::platform("900000000000001", "GB.11aa22bb33"),
        "wamid.TEST0030",
        Content::text("Hello with my new id"),
    )
    .with_sent_at(at(1735690000))
    .with_claim(CustomerKey::Phone("+447700900123".into()), Verification::CarrierAsserted)
    .with_sender_name("Ada Example");
    let without_phone = InboundMessage::new(
        ChannelKind::WhatsApp,
        endpoint,
        Address::platform("900000000000001", "US.99zz88yy77"),
        "wamid.TEST0031",
        Content::text("No phone number here"),
    )
    .with_sent_at(at(1735690001))
    .with_sender_name("Bo");
    assert_eq!(events, vec![KitEvent::Message(with_phone), KitEvent::Message(without_phone)]);

    // A configured portfolio scopes the ids instead of the account id.
    let scoped =
        WhatsAppKit::new().with_portfolio("portfolio-7").unwrap().parse_webhook(&fixture("bsuid.json")).unwrap();
    assert_eq!(scoped[0].message().unwrap().sender, Address::platform("portfolio-7", "GB.11aa22bb33"));
    assert!(WhatsAppKit::new().with_portfolio("port:folio").is_err());
}

#[test]
fn several_entries_and_numbers_in_one_post_keep_their_endpoints_and_unknown_fields_are_reported() {
    let kit = WhatsAppKit::new().with_endpoint("800000000000002", EndpointId::new("wa-second").unwrap());
    let events = kit.parse_webhook(&fixture("mixed.json")).unwrap();
    assert_eq!(events.len(), 4);
    assert_eq!(events[0], KitEvent::Skipped { kind: "whatsapp.account_update".into() });
    let first = events[1].message().unwrap();
    assert_eq!((first.endpoint.as_str(), first.external_id.as_str()), ("800000000000001", "wamid.TEST0040"));
    let second = events[2].message().unwrap();
    assert_eq!(second.endpoint.as_str(), "wa-second");
    assert_eq!(second.sender, Address::phone("+15550003333"));
    assert_eq!(second.sender_name.as_deref(), Some("Linus Example"));
    assert_eq!(events[3], KitEvent::Skipped { kind: "whatsapp.status.deleted".into() });
}

#[test]
fn malformed_bodies_name_the_json_path() {
    let kit = WhatsAppKit::new();
    let text = String::from_utf8(fixture("text.json")).unwrap();

    let reason = invalid_reason(kit.parse_webhook(text.replace(r#""id":"wamid.TEST0001","#, "").as_bytes()));
    assert!(
        reason.contains("entry[0].changes[0].value.messages[0]") && reason.contains("missing field `id`"),
        "{reason}"
    );

    let reason = invalid_reason(kit.parse_webhook(text.replace("\"1735689600\"", "\"yesterday\"").as_bytes()));
    assert!(reason.contains("entry[0].changes[0].value.messages[0].timestamp"), "{reason}");

    let reason = invalid_reason(kit.parse_webhook(text.replace(r#""type":"text","#, r#""type":"image","#).as_bytes()));
    assert!(reason.contains("entry[0].changes[0].value.messages[0].image") && reason.contains("missing"), "{reason}");

    let reason = invalid_reason(kit.parse_webhook(text.replace("Hi, my parcel has not arrived", "   ").as_bytes()));
    assert!(reason.contains("entry[0].changes[0].value.messages[0]") && reason.contains("content.body"), "{reason}");

    let reason = invalid_reason(kit.parse_webhook(text.replace("whatsapp_business_account", "page").as_bytes()));
    assert!(reason.contains("`object`"), "{reason}");

    let reason = invalid_reason(
        kit.parse_webhook(text.replace(r#""from":"447700900123""#, r#""from":"ada@example.net""#).as_bytes()),
    );
    assert!(reason.contains("messages[0].from"), "{reason}");

    let location = String::from_utf8(fixture("location.json")).unwrap();
    let reason = invalid_reason(kit.parse_webhook(location.replace("51.5007", "151.5007").as_bytes()));
    assert!(reason.contains("messages[0]") && reason.contains("latitude"), "{reason}");

    let reason = invalid_reason(kit.parse_webhook(&fixture("text.json")[..100]));
    assert!(reason.contains("EOF"), "{reason}");
    assert!(matches!(kit.parse_webhook(b"not json"), Err(Error::InvalidInput { .. })));
    assert!(matches!(
        kit.parse_webhook(b"{\"object\":\"whatsapp_business_account\"} x"),
        Err(Error::InvalidInput { .. })
    ));
}

/// One change with the given `contacts` and `messages` (text messages `(from, from_user_id, id)`).
fn batch(contacts: serde_json::Value, messages: &[(Option<&str>, Option<&str>, &str)]) -> Vec<InboundMessage> {
    let messages: Vec<_> = messages
        .iter()
        .enumerate()
        .map(|(n, (from, user, id))| {
            let mut m =
                json!({"id": id, "timestamp": (1735690100 + n).to_string(), "type": "text", "text": {"body": "hello"}});
            if let Some(from) = from {
                m["from"] = json!(from);
            }
            if let Some(user) = user {
                m["from_user_id"] = json!(user);
            }
            m
        })
        .collect();
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "900000000000001", "changes": [{
        "field": "messages",
        "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": "800000000000001"},
            "contacts": contacts,
            "messages": messages,
        },
    }]}]});
    let events = WhatsAppKit::new().parse_webhook(body.to_string().as_bytes()).unwrap();
    events.into_iter().map(|e| e.message().cloned().unwrap()).collect()
}

#[test]
fn a_lone_contact_names_only_its_own_sender_in_a_batch() {
    let ada = json!([{"profile": {"name": "Ada Example"}, "wa_id": "447700900123"}]);
    // Two senders, one contact: the contact is Ada's, so Linus's message has no name.
    let got = batch(ada.clone(), &[(Some("447700900123"), None, "wamid.B1"), (Some("15550003333"), None, "wamid.B2")]);
    assert_eq!(got[0].sender_name.as_deref(), Some("Ada Example"));
    assert_eq!(got[1].sender, Address::phone("+15550003333"));
    assert_eq!(got[1].sender_name, None);
    // Listed first or last, matching or not: never Ada's name on Linus's message.
    let got = batch(ada.clone(), &[(Some("15550003333"), None, "wamid.B3"), (Some("447700900123"), None, "wamid.B4")]);
    assert_eq!((got[0].sender_name.as_deref(), got[1].sender_name.as_deref()), (None, Some("Ada Example")));
    let got = batch(ada, &[(Some("15550003333"), None, "wamid.B5"), (Some("15550004444"), None, "wamid.B6")]);
    assert_eq!((got[0].sender_name.as_deref(), got[1].sender_name.as_deref()), (None, None));

    // A business-scoped sender without a phone number borrows neither Ada's name nor her number.
    let ada_scoped = json!([{"profile": {"name": "Ada Example"}, "wa_id": "447700900123", "user_id": "GB.11aa22bb33"}]);
    let got = batch(
        ada_scoped,
        &[(Some("447700900123"), Some("GB.11aa22bb33"), "wamid.B7"), (None, Some("US.99zz88yy77"), "wamid.B8")],
    );
    assert_eq!(got[0].sender_name.as_deref(), Some("Ada Example"));
    assert_eq!(got[0].claims.len(), 1);
    assert_eq!(got[1].sender, Address::platform("900000000000001", "US.99zz88yy77"));
    assert_eq!(got[1].sender_name, None);
    assert!(got[1].claims.is_empty(), "{:?}", got[1].claims);
}

#[test]
fn a_lone_contact_whose_id_differs_from_the_number_still_names_a_single_sender() {
    // Meta: a user's WhatsApp id and phone number may not always match.
    let contact = json!([{"profile": {"name": "Ana Ejemplo"}, "wa_id": "5215512345678"}]);
    let got = batch(contact.clone(), &[(Some("525512345678"), None, "wamid.C1")]);
    assert_eq!(got[0].sender, Address::phone("+525512345678"));
    assert_eq!(got[0].sender_name.as_deref(), Some("Ana Ejemplo"));
    let got = batch(contact, &[(Some("525512345678"), None, "wamid.C2"), (Some("525512345678"), None, "wamid.C3")]);
    assert_eq!(
        (got[0].sender_name.as_deref(), got[1].sender_name.as_deref()),
        (Some("Ana Ejemplo"), Some("Ana Ejemplo"))
    );
    // Several contacts: each message takes its own, whatever the order.
    let two = json!([
        {"profile": {"name": "Linus Example"}, "wa_id": "15550003333"},
        {"profile": {"name": "Ada Example"}, "wa_id": "447700900123"},
    ]);
    let got = batch(two, &[(Some("447700900123"), None, "wamid.C4"), (Some("15550003333"), None, "wamid.C5")]);
    assert_eq!(
        (got[0].sender_name.as_deref(), got[1].sender_name.as_deref()),
        (Some("Ada Example"), Some("Linus Example"))
    );
}

#[test]
fn control_characters_and_overlong_profile_names_are_cleaned_not_fatal() {
    let text = String::from_utf8(fixture("text.json")).unwrap();
    let long = format!("Ada\\n{}", "é".repeat(300));
    let events = WhatsAppKit::new().parse_webhook(text.replace("Ada Example", &long).as_bytes()).unwrap();
    let name = events[0].message().unwrap().sender_name.clone().unwrap();
    assert!(name.starts_with("Ada") && !name.contains('\n') && name.len() <= 256, "{name:?}");
}

// ----- outbound -----

fn ada() -> Address {
    Address::phone("+44 7700 900123")
}

fn option(id: &str, title: &str, description: Option<&str>) -> ChoiceOption {
    ChoiceOption { id: id.into(), title: title.into(), description: description.map(Into::into) }
}

#[test]
fn text_goes_out_as_a_text_message_with_optional_reply_context() {
    let options = SendOptions { reply_to: Some("wamid.TEST0001".into()), ..SendOptions::default() };
    assert_eq!(
        send_message(&ada(), &Content::text("We are on it"), &options).unwrap(),
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "447700900123",
            "context": { "message_id": "wamid.TEST0001" },
            "type": "text",
            "text": { "preview_url": false, "body": "We are on it" }
        })
    );
}

#[test]
fn business_scoped_ids_are_sent_as_recipient() {
    let json =
        send_message(&Address::platform("portfolio-7", "GB.11aa22bb33"), &Content::text("Hi"), &SendOptions::default())
            .unwrap();
    assert_eq!(json["recipient"], "GB.11aa22bb33");
    assert!(json.get("to").is_none());
}

#[test]
fn up_to_three_short_options_are_reply_buttons_otherwise_a_list() {
    let buttons = Content::Choices {
        body: "Cancel the order?".into(),
        options: vec![option("yes", "Yes", None), option("no", "No", None)],
        selected: None,
    };
    assert_eq!(
        send_message(&ada(), &buttons, &SendOptions::default()).unwrap()["interactive"],
        json!({
            "type": "button",
            "body": { "text": "Cancel the order?" },
            "action": { "buttons": [
                { "type": "reply", "reply": { "id": "yes", "title": "Yes" } },
                { "type": "reply", "reply": { "id": "no", "title": "No" } }
            ]}
        })
    );

    let list = Content::Choices {
        body: "What is it about?".into(),
        options: vec![
            option("track", "Track order", None),
            option("refund", "Refund", Some("Money back for an order")),
            option("other", "Something else", None),
            option("agent", "Talk to a person", None),
        ],
        selected: None,
    };
    let options = SendOptions { list_button: "Topics".into(), ..SendOptions::default() };
    assert_eq!(
        send_message(&ada(), &list, &options).unwrap()["interactive"],
        json!({
            "type": "list",
            "body": { "text": "What is it about?" },
            "action": { "button": "Topics", "sections": [{ "rows": [
                { "id": "track", "title": "Track order" },
                { "id": "refund", "title": "Refund", "description": "Money back for an order" },
                { "id": "other", "title": "Something else" },
                { "id": "agent", "title": "Talk to a person" }
            ]}]}
        })
    );

    let eleven = Content::Choices {
        body: "Pick".into(),
        options: (0..11).map(|i| option(&format!("o{i}"), &format!("Option {i}"), None)).collect(),
        selected: None,
    };
    assert!(matches!(
        send_message(&ada(), &eleven, &SendOptions::default()),
        Err(Error::InvalidInput { field: "content.options", .. })
    ));
}

#[test]
fn media_goes_by_link_or_by_media_id_with_caption_and_filename() {
    let doc = Content::Media {
        media: MediaKind::Document,
        url: "https://files.example.com/invoice-5521.pdf".into(),
        mime_type: Some("application/pdf".into()),
        caption: Some("Your invoice".into()),
        filename: Some("invoice-5521.pdf".into()),
    };
    let json = send_message(&ada(), &doc, &SendOptions::default()).unwrap();
    assert_eq!(json["type"], "document");
    assert_eq!(
        json["document"],
        json!({ "link": "https://files.example.com/invoice-5521.pdf", "caption": "Your invoice", "filename": "invoice-5521.pdf" })
    );

    let image = Content::Media {
        media: MediaKind::Image,
        url: "whatsapp-media:1100000000000012".into(),
        mime_type: None,
        caption: None,
        filename: None,
    };
    assert_eq!(
        send_message(&ada(), &image, &SendOptions::default()).unwrap()["image"],
        json!({ "id": "1100000000000012" })
    );

    let audio = Content::Media {
        media: MediaKind::Audio,
        url: "https://files.example.com/a.ogg".into(),
        mime_type: None,
        caption: Some("listen".into()),
        filename: None,
    };
    assert!(matches!(
        send_message(&ada(), &audio, &SendOptions::default()),
        Err(Error::InvalidInput { field: "content.caption", .. })
    ));
}

#[test]
fn location_template_and_contact_follow_the_cloud_api_shapes() {
    let location =
        Content::Location { latitude: 51.5007, longitude: -0.1246, name: Some("Locker 12".into()), address: None };
    let json = send_message(&ada(), &location, &SendOptions::default()).unwrap();
    assert_eq!(json["location"], json!({ "latitude": 51.5007, "longitude": -0.1246, "name": "Locker 12" }));

    let template = Content::Template {
        name: "order_update".into(),
        language: "en_GB".into(),
        parameters: vec!["Ada".into(), "5521".into()],
    };
    assert_eq!(
        send_message(&ada(), &template, &SendOptions::default()).unwrap()["template"],
        json!({
            "name": "order_update",
            "language": { "code": "en_GB" },
            "components": [{ "type": "body", "parameters": [
                { "type": "text", "text": "Ada" }, { "type": "text", "text": "5521" }
            ]}]
        })
    );
    let bare = Content::Template { name: "hello_world".into(), language: "en_US".into(), parameters: vec![] };
    assert_eq!(
        send_message(&ada(), &bare, &SendOptions::default()).unwrap()["template"],
        json!({ "name": "hello_world", "language": { "code": "en_US" } })
    );

    let card = Content::Contact(ContactCard {
        name: "Acme Support".into(),
        phones: vec!["+15550001111".into()],
        emails: vec!["help@example.com".into()],
        organization: Some("Acme".into()),
    });
    assert_eq!(
        send_message(&ada(), &card, &SendOptions::default()).unwrap()["contacts"],
        json!([{
            "name": { "formatted_name": "Acme Support", "first_name": "Acme Support" },
            "phones": [{ "phone": "+15550001111" }],
            "emails": [{ "email": "help@example.com" }],
            "org": { "company": "Acme" }
        }])
    );
}

#[test]
fn what_whatsapp_cannot_carry_is_refused() {
    let notice = Content::System { event: "handover".into(), detail: None };
    assert!(matches!(send_message(&ada(), &notice, &SendOptions::default()), Err(Error::InvalidInput { .. })));
    assert!(matches!(
        send_message(&Address::email("ada@example.net"), &Content::text("hi"), &SendOptions::default()),
        Err(Error::InvalidInput { field: "to", .. })
    ));
    assert!(matches!(
        send_message(&Address::phone("call me"), &Content::text("hi"), &SendOptions::default()),
        Err(Error::InvalidAddress { .. })
    ));
    let long = Content::text("a".repeat(4097));
    assert!(matches!(
        send_message(&ada(), &long, &SendOptions::default()),
        Err(Error::InvalidInput { field: "content.body", .. })
    ));
}

#[test]
fn what_whatsapp_refuses_as_empty_or_ambiguous_is_invalid_input() {
    let option = |id: &str, title: &str| ChoiceOption { id: id.into(), title: title.into(), description: None };
    let choices =
        |body: &str, options: Vec<ChoiceOption>| Content::Choices { body: body.into(), options, selected: None };
    let image = |url: &str| Content::Media {
        media: MediaKind::Image,
        url: url.into(),
        mime_type: None,
        caption: None,
        filename: None,
    };
    let template = |name: &str, language: &str| Content::Template {
        name: name.into(),
        language: language.into(),
        parameters: vec![],
    };
    for (content, field) in [
        (Content::text(""), "content.body"),
        (Content::text("   "), "content.body"),
        (image(""), "content.url"),
        (choices("Pick", vec![option("a", "Yes"), option("b", "Yes")]), "content.options.title"),
        (choices("Pick", vec![option("a", "")]), "content.options.title"),
        (choices("Pick", vec![option("", "Yes")]), "content.options.id"),
        (choices("", vec![option("a", "Yes")]), "content.body"),
        (template("", "en"), "content.name"),
        (template("order_update", ""), "content.language"),
    ] {
        match send_message(&ada(), &content, &SendOptions::default()) {
            Err(Error::InvalidInput { field: f, .. }) if f == field => {}
            other => panic!("{content:?}: expected invalid {field}, got {other:?}"),
        }
    }
    // Distinct titles are fine.
    assert!(
        send_message(&ada(), &choices("Pick", vec![option("a", "Yes"), option("b", "No")]), &SendOptions::default())
            .is_ok()
    );
}

#[test]
fn mark_read_builds_the_read_receipt_with_optional_typing() {
    assert_eq!(
        mark_read("wamid.TEST0001", false),
        json!({ "messaging_product": "whatsapp", "status": "read", "message_id": "wamid.TEST0001" })
    );
    assert_eq!(mark_read("wamid.TEST0001", true)["typing_indicator"], json!({ "type": "text" }));
}

/// A blank description is no description: two yes/no options stay reply buttons (no list the
/// customer has to open, no `"description": ""` row).
#[test]
fn a_blank_description_leaves_reply_buttons_buttons() {
    let option = |id: &str, title: &str, d: Option<&str>| ChoiceOption {
        id: id.into(),
        title: title.into(),
        description: d.map(Into::into),
    };
    let content = Content::Choices {
        body: "Cancel the order?".into(),
        options: vec![option("yes", "Yes", Some("")), option("no", "No", Some("  "))],
        selected: None,
    };
    let json = send_message(&Address::phone("+447700900123"), &content, &SendOptions::default()).unwrap();
    assert_eq!(json["interactive"]["type"], "button", "{json}");
    // In a list (four options), a blank description is left out of its row.
    let mut options = content_options(&content);
    options.push(option("later", "Later", None));
    options.push(option("call", "Call me", Some("")));
    let list = Content::Choices { body: "Cancel the order?".into(), options, selected: None };
    let json = send_message(&Address::phone("+447700900123"), &list, &SendOptions::default()).unwrap();
    assert_eq!(json["interactive"]["type"], "list", "{json}");
    for row in json["interactive"]["action"]["sections"][0]["rows"].as_array().unwrap() {
        assert!(row.get("description").is_none(), "{row}");
    }
}

fn content_options(content: &Content) -> Vec<ChoiceOption> {
    match content {
        Content::Choices { options, .. } => options.clone(),
        _ => Vec::new(),
    }
}

/// The UK's `+44 (0)…` spelling reaches the customer's number, not one with the trunk `0`.
#[test]
fn a_number_written_with_a_bracketed_trunk_zero_is_sent_to_the_right_number() {
    let json =
        send_message(&Address::phone("+44 (0) 7700 900123"), &Content::text("On its way"), &SendOptions::default())
            .unwrap();
    assert_eq!(json["to"], "447700900123");
}
