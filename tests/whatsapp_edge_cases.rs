//! Edge cases of the WhatsApp Cloud API kit: an empty app secret, outbound bodies WhatsApp
//! would refuse (template parameters, contact cards, repeated option ids, media links,
//! coordinates, number spellings), the ids of extra contact cards, and error details.

use serde_json::json;
use touchpoint::Error;
use touchpoint::channels::KitEvent;
use touchpoint::channels::signature::MetaSignature;
use touchpoint::channels::whatsapp::{SendOptions, WhatsAppKit, mark_read, send_message};
use touchpoint::model::*;

fn ada() -> Address {
    Address::phone("+447700900123")
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/whatsapp/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn invalid(content: &Content, field: &str) {
    match send_message(&ada(), content, &SendOptions::default()) {
        Err(Error::InvalidInput { field: f, .. }) if f == field => {}
        other => panic!("{content:?}: expected InvalidInput on {field}, got {other:?}"),
    }
}

fn template(parameters: &[&str]) -> Content {
    Content::Template {
        name: "order_update".into(),
        language: "en_GB".into(),
        parameters: parameters.iter().map(|p| (*p).to_owned()).collect(),
    }
}

fn option(id: &str, title: &str, description: Option<&str>) -> ChoiceOption {
    ChoiceOption { id: id.into(), title: title.into(), description: description.map(Into::into) }
}

/// A host that loads the app secret from configuration and gets an empty string (unset
/// variable) must not end up accepting webhooks anyone can sign: HMAC with an empty key is
/// public knowledge. `TelegramSecretToken::new` refuses an empty secret; `MetaSignature` should
/// refuse to verify with one instead of accepting a forged `sha256=` header.
#[test]
fn an_empty_app_secret_verifies_no_signature() {
    let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
    let forged = MetaSignature::new(b"").sign(body);
    let meta = MetaSignature::new(b"");
    assert!(meta.verify(Some(&forged), body).is_err(), "a forged signature passed with an empty app secret");
}

/// `send_message` promises that content WhatsApp cannot carry fails with `InvalidInput` rather
/// than at the API. Template body parameters may not hold new lines, tabs or more than four
/// consecutive spaces (Cloud API error 132018): a host passing a multi-line address as a
/// parameter must get `InvalidInput` on `content.parameters`, not a body Meta refuses.
#[test]
fn template_parameters_with_new_lines_tabs_or_long_space_runs_are_invalid_input() {
    for p in ["12 High St\nLondon", "a\tb", "a     b"] {
        invalid(&template(&["Ada", p]), "content.parameters");
    }
}

/// Empty template parameters are refused by WhatsApp (the placeholder needs text), like the
/// empty name or language the kit already refuses: `InvalidInput` on `content.parameters`.
#[test]
fn empty_template_parameters_are_invalid_input() {
    invalid(&template(&["Ada", ""]), "content.parameters");
    invalid(&template(&["   "]), "content.parameters");
}

/// A shared contact needs a name (`name.formatted_name` is required by the Cloud API); the kit
/// refuses every other empty required field with `InvalidInput` and should refuse this one
/// instead of sending `"formatted_name": ""`.
#[test]
fn a_contact_card_without_a_name_is_invalid_input() {
    let card = Content::Contact(ContactCard {
        name: "  ".into(),
        phones: vec!["+15550001111".into()],
        emails: vec![],
        organization: None,
    });
    invalid(&card, "content.name");
}

/// The pick comes back as `selected` = the option id: two options with one id make the
/// customer's answer ambiguous (and WhatsApp wants unique button / row ids). The kit refuses
/// ambiguous titles; it should refuse ambiguous ids too, for buttons and for lists.
#[test]
fn options_that_share_an_id_are_invalid_input() {
    let buttons = Content::Choices {
        body: "Refund or replace?".into(),
        options: vec![option("a", "Refund", None), option("a", "Replace", None)],
        selected: None,
    };
    invalid(&buttons, "content.options.id");
    let list = Content::Choices {
        body: "Pick a topic".into(),
        options: vec![option("t", "Refund", Some("Money back")), option("t", "Delivery", Some("Where is it"))],
        selected: None,
    };
    invalid(&list, "content.options.id");
}

/// `to` is documented as "the customer's phone number, any spelling with the country code",
/// and the crate's own normaliser reads `0044 …` as `+44 …`. The Cloud API wants the country
/// code without an international prefix, so `0044 7700 900123` must go out as
/// `447700900123`, not `00447700900123`; and a spelling the normaliser accepts (a no-break
/// space) must not be refused.
#[test]
fn numbers_in_spellings_the_crate_accepts_go_out_in_international_form() {
    let json = send_message(&Address::phone("0044 7700 900123"), &Content::text("hi"), &SendOptions::default())
        .expect("a 00-prefixed number is a spelling with the country code");
    assert_eq!(json["to"], "447700900123");
    let nbsp = Address::phone("+44\u{a0}7700\u{a0}900123");
    assert!(touchpoint::identity::normalize::normalize_phone("+44\u{a0}7700\u{a0}900123", None).is_ok());
    let json = send_message(&nbsp, &Content::text("hi"), &SendOptions::default()).unwrap();
    assert_eq!(json["to"], "447700900123");
}

/// WhatsApp fetches `link` media over HTTP(S) only. Media whose URL is another channel's
/// reference (the crate's own `telegram-file:` URLs, a `cid:` attachment, a local path) cannot
/// be carried and must fail with `InvalidInput` on `content.url`, not go out as a `link` that
/// fails at send time.
#[test]
fn media_urls_whatsapp_cannot_fetch_are_invalid_input() {
    for url in ["telegram-file:AgACAgQAAxkBAAM", "cid:part1.abc@example.net", "/tmp/photo.jpg", "whatsapp-media:"] {
        let image = Content::Media {
            media: MediaKind::Image,
            url: url.into(),
            mime_type: Some("image/jpeg".into()),
            caption: None,
            filename: None,
        };
        invalid(&image, "content.url");
    }
}

/// Coordinates outside the globe (or NaN, which serde_json writes as `null`) are content
/// WhatsApp cannot carry: `InvalidInput`, as `Content::validate` says, not a body with
/// `"latitude": null`.
#[test]
fn coordinates_whatsapp_cannot_carry_are_invalid_input() {
    let nan = Content::Location { latitude: f64::NAN, longitude: 0.0, name: None, address: None };
    match send_message(&ada(), &nan, &SendOptions::default()) {
        Err(Error::InvalidInput { .. }) => {}
        other => panic!("NaN latitude: {other:?}"),
    }
    let north = Content::Location { latitude: 91.0, longitude: 0.0, name: None, address: None };
    assert!(matches!(send_message(&ada(), &north, &SendOptions::default()), Err(Error::InvalidInput { .. })));
}

/// The kit gives the 2nd, 3rd … card of a contacts message the id `<wamid>#2`, `#3`. A host
/// that marks the customer's last message read, or replies quoting it, passes the
/// `external_id` it got from the kit: WhatsApp only knows the real `wamid`, so `mark_read` and
/// `reply_to` must send that, not `wamid.…#2`.
#[test]
fn ids_of_extra_contact_cards_resolve_to_the_real_wamid_when_sent_back() {
    let events = WhatsAppKit::new().parse_webhook(&fixture("contacts.json")).unwrap();
    let last = events.iter().filter_map(KitEvent::message).next_back().unwrap();
    assert_eq!(last.external_id, "wamid.TEST0018#2");
    assert_eq!(mark_read(&last.external_id, false)["message_id"], "wamid.TEST0018");
    let options = SendOptions { reply_to: Some(last.external_id.clone()), ..SendOptions::default() };
    let json = send_message(&ada(), &Content::text("Thanks"), &options).unwrap();
    assert_eq!(json["context"], json!({ "message_id": "wamid.TEST0018" }));
}

/// The kit checks every id it hands over against what `Engine::ingest` accepts (1–512 bytes), so
/// a webhook is refused with its JSON path rather than messages failing one by one at ingest.
/// The `#2` suffix of a second contact card is added after that check: a 511-byte wamid yields
/// a 513-byte `external_id` that ingest refuses.
#[test]
fn ids_made_for_extra_contact_cards_stay_within_what_ingest_accepts() {
    let wamid = format!("wamid.{}", "A".repeat(505));
    assert_eq!(wamid.len(), 511);
    let body = String::from_utf8(fixture("contacts.json")).unwrap().replace("wamid.TEST0018", &wamid);
    match WhatsAppKit::new().parse_webhook(body.as_bytes()) {
        Err(Error::InvalidInput { .. }) => {}
        Ok(events) => {
            for m in events.iter().filter_map(KitEvent::message) {
                assert!(m.external_id.len() <= 512, "external_id of {} bytes", m.external_id.len());
            }
        }
        Err(other) => panic!("{other:?}"),
    }
}

/// `with_portfolio` documents a scope as "1–128 bytes without `:`, spaces or control
/// characters" and returns an error for anything else; a scope with spaces is accepted and then
/// written into every sender address as is.
#[test]
fn a_portfolio_with_spaces_is_refused() {
    assert!(WhatsAppKit::new().with_portfolio(" 123456 ").is_err());
}

/// Older Cloud API versions put the explanation of an `unsupported` message in `errors[].details`
/// (`{"code":131051,"details":"Message type is not currently supported","title":"Unsupported
/// message type"}`); the kit documents the `unsupported` note as carrying the error, and an
/// agent needs the details to know what the customer tried to send.
#[test]
fn unsupported_error_details_at_the_top_level_reach_the_note() {
    let body = String::from_utf8(fixture("unsupported.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut v = v;
    v["entry"][0]["changes"][0]["value"]["messages"][0]["errors"] = json!([{
        "code": 131051,
        "details": "Message type is not currently supported",
        "title": "Unsupported message type"
    }]);
    let events = WhatsAppKit::new().parse_webhook(v.to_string().as_bytes()).unwrap();
    let m = events.iter().find_map(KitEvent::message).unwrap();
    let Content::System { detail: Some(detail), .. } = &m.content else { panic!("{:?}", m.content) };
    assert!(detail.contains("not currently supported"), "{detail}");
}
