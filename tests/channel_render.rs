//! Rendering matrix: every kind of content on every real channel, with the exact form sent.

use serde_json::json;
use touchpoint::Error;
use touchpoint::channel::{Capabilities, Limit, RenderOverrides, RenderedPart, Renderer, render, split_text};
use touchpoint::model::{ChannelKind, ChoiceOption, ContactCard, Content, MediaKind};

fn all_channels() -> Vec<Capabilities> {
    vec![
        Capabilities::whatsapp(),
        Capabilities::messenger(),
        Capabilities::instagram(),
        Capabilities::telegram(),
        Capabilities::sms(),
        Capabilities::email(),
        Capabilities::webchat(),
        Capabilities::voice(),
    ]
}

fn text(body: &str) -> RenderedPart {
    RenderedPart::Text { body: body.to_owned() }
}

fn option(id: &str, title: &str, description: Option<&str>) -> ChoiceOption {
    ChoiceOption { id: id.to_owned(), title: title.to_owned(), description: description.map(str::to_owned) }
}

fn titles_only(options: &[ChoiceOption]) -> Vec<ChoiceOption> {
    options.iter().map(|o| option(&o.id, &o.title, None)).collect()
}

fn choices(body: &str, options: Vec<ChoiceOption>) -> Content {
    Content::Choices { body: body.to_owned(), options, selected: None }
}

fn numbered(n: usize) -> Vec<ChoiceOption> {
    (1..=n).map(|i| option(&format!("o{i}"), &format!("Option {i}"), None)).collect()
}

fn numbered_text(body: &str, n: usize) -> String {
    let lines: Vec<String> = (1..=n).map(|i| format!("{i}. Option {i}")).collect();
    format!("{body}\n\n{}", lines.join("\n"))
}

/// Renders on every channel, checks every part against the channel's own limits, and compares
/// with the expected form per channel.
fn assert_matrix(content: &Content, expected: impl Fn(&ChannelKind) -> Vec<RenderedPart>) {
    for caps in all_channels() {
        let parts = render(content, &caps).unwrap_or_else(|e| panic!("{}: {e}", caps.channel));
        for p in &parts {
            caps.check(p).unwrap_or_else(|e| panic!("{}: rendered part fails its own check: {e}", caps.channel));
        }
        assert_eq!(parts, expected(&caps.channel), "on {}", caps.channel);
    }
}

#[test]
fn short_text_is_sent_as_is_everywhere() {
    let content = Content::text("Hi Ada, your parcel is on its way.");
    assert_matrix(&content, |_| vec![text("Hi Ada, your parcel is on its way.")]);
}

#[test]
fn image_with_caption_keeps_the_caption_where_media_can_carry_one() {
    let content = Content::Media {
        media: MediaKind::Image,
        url: "https://cdn.example.com/p/1.jpg".into(),
        mime_type: Some("image/jpeg".into()),
        caption: Some("Your parcel".into()),
        filename: None,
    };
    let media = |caption: Option<&str>| RenderedPart::Media {
        media: MediaKind::Image,
        url: "https://cdn.example.com/p/1.jpg".into(),
        mime_type: Some("image/jpeg".into()),
        caption: caption.map(str::to_owned),
        filename: None,
    };
    assert_matrix(&content, |channel| match channel {
        ChannelKind::WhatsApp | ChannelKind::Telegram | ChannelKind::Email | ChannelKind::WebChat => {
            vec![media(Some("Your parcel"))]
        }
        // Meta attachments carry no caption: it follows as text.
        ChannelKind::Messenger | ChannelKind::Instagram => vec![media(None), text("Your parcel")],
        // No images: caption and link.
        _ => vec![text("Your parcel\nhttps://cdn.example.com/p/1.jpg")],
    });
}

#[test]
fn sticker_is_a_link_where_stickers_are_not_supported() {
    let content = Content::Media {
        media: MediaKind::Sticker,
        url: "https://cdn.example.com/s.webp".into(),
        mime_type: None,
        caption: None,
        filename: None,
    };
    assert_matrix(&content, |channel| match channel {
        ChannelKind::WhatsApp | ChannelKind::Telegram | ChannelKind::WebChat => vec![RenderedPart::Media {
            media: MediaKind::Sticker,
            url: "https://cdn.example.com/s.webp".into(),
            mime_type: None,
            caption: None,
            filename: None,
        }],
        _ => vec![text("https://cdn.example.com/s.webp")],
    });
}

#[test]
fn document_without_caption_falls_back_to_file_name_and_link() {
    let content = Content::Media {
        media: MediaKind::Document,
        url: "https://cdn.example.com/invoice.pdf".into(),
        mime_type: Some("application/pdf".into()),
        caption: None,
        filename: Some("invoice.pdf".into()),
    };
    let parts = render(&content, &Capabilities::sms()).unwrap();
    assert_eq!(parts, [text("invoice.pdf\nhttps://cdn.example.com/invoice.pdf")]);
    let parts = render(&content, &Capabilities::voice()).unwrap();
    assert_eq!(parts, [text("invoice.pdf\nhttps://cdn.example.com/invoice.pdf")]);
}

#[test]
fn caption_longer_than_the_caption_limit_follows_as_text() {
    let caption = "c".repeat(1025);
    let content = Content::Media {
        media: MediaKind::Image,
        url: "https://cdn.example.com/p/1.jpg".into(),
        mime_type: None,
        caption: Some(caption.clone()),
        filename: None,
    };
    let parts = render(&content, &Capabilities::whatsapp()).unwrap();
    assert_eq!(
        parts,
        [
            RenderedPart::Media {
                media: MediaKind::Image,
                url: "https://cdn.example.com/p/1.jpg".into(),
                mime_type: None,
                caption: None,
                filename: None,
            },
            text(&caption),
        ]
    );
}

#[test]
fn location_is_a_pin_where_supported_else_text_with_a_map_link() {
    let content = Content::Location {
        latitude: 51.5007,
        longitude: -0.1246,
        name: Some("Big Ben".into()),
        address: Some("London SW1A 0AA".into()),
    };
    assert_matrix(&content, |channel| match channel {
        ChannelKind::WhatsApp | ChannelKind::Telegram => vec![RenderedPart::Location {
            latitude: 51.5007,
            longitude: -0.1246,
            name: Some("Big Ben".into()),
            address: Some("London SW1A 0AA".into()),
        }],
        _ => vec![text("Big Ben\nLondon SW1A 0AA\nhttps://maps.google.com/?q=51.5007,-0.1246")],
    });
}

#[test]
fn the_map_link_is_configurable() {
    let content = Content::Location { latitude: -23.5, longitude: 0.0, name: None, address: None };
    let renderer =
        Renderer { map_link: "https://www.openstreetmap.org/?mlat={lat}&mlon={lon}".into(), ..Renderer::default() };
    let parts = renderer.render(&content, &Capabilities::sms()).unwrap();
    assert_eq!(parts, [text("https://www.openstreetmap.org/?mlat=-23.5&mlon=0")]);
}

#[test]
fn contact_card_is_native_on_whatsapp_and_text_elsewhere() {
    let card = ContactCard {
        name: "Ana Lima".into(),
        phones: vec!["+5511987654321".into()],
        emails: vec!["ana@example.com".into()],
        organization: Some("Acme".into()),
    };
    let content = Content::Contact(card.clone());
    assert_matrix(&content, |channel| match channel {
        ChannelKind::WhatsApp => vec![RenderedPart::Contact(card.clone())],
        _ => vec![text("Ana Lima\nAcme\n+5511987654321\nana@example.com")],
    });
}

#[test]
fn template_is_sent_on_whatsapp_and_refused_where_there_are_no_templates() {
    let content =
        Content::Template { name: "order_update".into(), language: "en".into(), parameters: vec!["5521".into()] };
    for caps in all_channels() {
        let result = render(&content, &caps);
        if caps.channel == ChannelKind::WhatsApp {
            assert_eq!(
                result.unwrap(),
                [RenderedPart::Template {
                    name: "order_update".into(),
                    language: "en".into(),
                    parameters: vec!["5521".into()],
                }]
            );
        } else {
            let err = result.unwrap_err();
            assert!(matches!(err, Error::InvalidInput { field: "content", .. }), "{}: {err:?}", caps.channel);
            assert!(err.to_string().contains(&format!("the {} channel has no templates", caps.channel)), "{err}");
        }
    }
}

#[test]
fn three_choices_take_the_richest_form_of_each_channel() {
    let options = vec![
        option("track", "Track order", None),
        option("return", "Return item", Some("Within 30 days")),
        option("agent", "Talk to us", None),
    ];
    let content = choices("How can we help?", options.clone());
    let body = "How can we help?".to_owned();
    assert_matrix(&content, |channel| match channel {
        ChannelKind::WhatsApp | ChannelKind::Telegram | ChannelKind::WebChat => {
            vec![RenderedPart::Buttons { body: body.clone(), buttons: titles_only(&options) }]
        }
        ChannelKind::Messenger | ChannelKind::Instagram => {
            vec![RenderedPart::QuickReplies { body: body.clone(), replies: titles_only(&options) }]
        }
        _ => vec![text("How can we help?\n\n1. Track order\n2. Return item — Within 30 days\n3. Talk to us")],
    });
}

#[test]
fn seven_choices_become_a_list_where_buttons_run_out() {
    let options: Vec<ChoiceOption> =
        (1..=7).map(|i| option(&format!("o{i}"), &format!("Option {i}"), Some("More"))).collect();
    let content = choices("Pick a topic", options.clone());
    let list = RenderedPart::List { body: "Pick a topic".into(), button: "Choose".into(), rows: options.clone() };
    let lines: Vec<String> = (1..=7).map(|i| format!("{i}. Option {i} — More")).collect();
    let menu = format!("Pick a topic\n\n{}", lines.join("\n"));
    assert_matrix(&content, |channel| match channel {
        ChannelKind::WhatsApp | ChannelKind::WebChat => vec![list.clone()],
        ChannelKind::Telegram => {
            vec![RenderedPart::Buttons { body: "Pick a topic".into(), buttons: titles_only(&options) }]
        }
        ChannelKind::Messenger | ChannelKind::Instagram => {
            vec![RenderedPart::QuickReplies { body: "Pick a topic".into(), replies: titles_only(&options) }]
        }
        _ => vec![text(&menu)],
    });
}

#[test]
fn twelve_choices_are_numbered_text_on_whatsapp_and_quick_replies_on_messenger() {
    let options = numbered(12);
    let content = choices("Which store?", options.clone());
    assert_matrix(&content, |channel| match channel {
        ChannelKind::Telegram => vec![RenderedPart::Buttons { body: "Which store?".into(), buttons: options.clone() }],
        ChannelKind::WebChat => {
            vec![RenderedPart::List { body: "Which store?".into(), button: "Choose".into(), rows: options.clone() }]
        }
        ChannelKind::Messenger | ChannelKind::Instagram => {
            vec![RenderedPart::QuickReplies { body: "Which store?".into(), replies: options.clone() }]
        }
        _ => vec![text(&numbered_text("Which store?", 12))],
    });
}

#[test]
fn fourteen_choices_exceed_quick_replies() {
    let content = choices("Which store?", numbered(14));
    for caps in [Capabilities::messenger(), Capabilities::instagram(), Capabilities::whatsapp()] {
        assert_eq!(render(&content, &caps).unwrap(), [text(&numbered_text("Which store?", 14))], "{}", caps.channel);
    }
}

#[test]
fn a_title_too_long_for_a_button_moves_the_choice_to_the_list_and_never_truncates() {
    let wa = Capabilities::whatsapp();
    // 22 characters: over the 20-character button limit, within the 24-character row limit.
    let options = vec![option("a", "Change delivery addr.", None), option("b", "Cancel my whole order!", None)];
    let parts = render(&choices("What now?", options.clone()), &wa).unwrap();
    assert_eq!(parts, [RenderedPart::List { body: "What now?".into(), button: "Choose".into(), rows: options }]);

    // 25 characters: too long for a row too, so a numbered menu with the full title.
    let options = vec![option("a", "Change my delivery addres", None), option("b", "Cancel", None)];
    let parts = render(&choices("What now?", options), &wa).unwrap();
    assert_eq!(parts, [text("What now?\n\n1. Change my delivery addres\n2. Cancel")]);
}

#[test]
fn duplicate_titles_cannot_be_whatsapp_buttons() {
    let options = vec![option("a", "Yes", None), option("b", "Yes", None)];
    let parts = render(&choices("Sure?", options.clone()), &Capabilities::whatsapp()).unwrap();
    assert_eq!(parts, [RenderedPart::List { body: "Sure?".into(), button: "Choose".into(), rows: options }]);
}

#[test]
fn a_body_over_the_interactive_cap_degrades_to_text() {
    let body = "b".repeat(1025);
    let parts = render(&choices(&body, numbered(2)), &Capabilities::whatsapp()).unwrap();
    assert_eq!(parts, [text(&numbered_text(&body, 2))]);
}

#[test]
fn system_events_and_inbound_answers_are_not_sent() {
    let system = Content::System { event: "bot.handover".into(), detail: Some("to agent".into()) };
    let answer = Content::Choices { body: "Pick".into(), options: numbered(2), selected: Some("o1".into()) };
    for caps in all_channels() {
        assert!(matches!(render(&system, &caps), Err(Error::InvalidInput { field: "content", .. })));
        assert!(matches!(render(&answer, &caps), Err(Error::InvalidInput { field: "content.selected", .. })));
    }
}

#[test]
fn malformed_content_is_an_error_not_a_panic() {
    let cases = [
        Content::text("   "),
        Content::Choices { body: "Pick".into(), options: vec![], selected: None },
        Content::Location { latitude: 91.0, longitude: 0.0, name: None, address: None },
        Content::Media { media: MediaKind::Image, url: "".into(), mime_type: None, caption: None, filename: None },
    ];
    for content in &cases {
        for caps in all_channels() {
            assert!(
                matches!(render(content, &caps), Err(Error::InvalidInput { .. })),
                "{content:?} on {}",
                caps.channel
            );
        }
    }
}

#[test]
fn long_text_splits_at_sentences_within_instagrams_byte_limit() {
    let s1 = format!("{}.", "a".repeat(399));
    let s2 = format!("{}.", "b".repeat(399));
    let s3 = format!("{}.", "c".repeat(399));
    let content = Content::text(format!("{s1} {s2} {s3}"));
    let parts = render(&content, &Capabilities::instagram()).unwrap();
    assert_eq!(parts, [text(&format!("{s1} {s2}")), text(&s3)]);
}

#[test]
fn telegram_counts_utf16_units_and_never_splits_a_surrogate_pair() {
    let content = Content::text("😀".repeat(2100));
    let parts = render(&content, &Capabilities::telegram()).unwrap();
    assert_eq!(parts, [text(&"😀".repeat(2048)), text(&"😀".repeat(52))]);
}

#[test]
fn whatsapp_counts_characters() {
    let parts = render(&Content::text("ж".repeat(4100)), &Capabilities::whatsapp()).unwrap();
    assert_eq!(parts, [text(&"ж".repeat(4096)), text(&"ж".repeat(4))]);
}

#[test]
fn sms_limited_to_one_segment_splits_at_words() {
    let mut caps = Capabilities::sms();
    caps.text = Some(Limit::sms_segments(1));
    let words = vec!["ab"; 100].join(" "); // 299 GSM-7 septets
    let parts = render(&Content::text(words), &caps).unwrap();
    assert_eq!(parts, [text(&vec!["ab"; 53].join(" ")), text(&vec!["ab"; 47].join(" "))]);
}

#[test]
fn sms_within_1600_characters_is_one_message() {
    let body = "word ".repeat(320).trim_end().to_owned(); // 1599 characters, 11 segments
    assert_eq!(render(&Content::text(body.clone()), &Capabilities::sms()).unwrap(), [text(&body)]);
}

#[test]
fn hard_cuts_keep_flags_combining_marks_and_joined_emoji_whole() {
    assert_eq!(split_text("🇬🇧🇬🇧🇬🇧", Some(Limit::characters(5))).unwrap(), ["🇬🇧🇬🇧", "🇬🇧"]);
    assert_eq!(split_text("e\u{301}e\u{301}", Some(Limit::characters(3))).unwrap(), ["e\u{301}", "e\u{301}"]);
    let family = "👩\u{200D}👩\u{200D}👧"; // 5 characters
    assert_eq!(split_text(&format!("{family}{family}"), Some(Limit::characters(7))).unwrap(), [family, family]);
    assert_eq!(split_text("👍🏽👍🏽", Some(Limit::characters(3))).unwrap(), ["👍🏽", "👍🏽"]);
}

#[test]
fn a_short_sentence_does_not_leave_a_tiny_first_part() {
    let text = format!("Hi. {}", "word ".repeat(20).trim_end());
    let parts = split_text(&text, Some(Limit::characters(40))).unwrap();
    assert_eq!(parts[0], "Hi. word word word word word word word");
    assert!(parts.iter().all(|p| p.chars().count() <= 40));
}

#[test]
fn cjk_sentences_split_after_full_stops() {
    let text = "今日は晴れです。明日は雨です。";
    assert_eq!(split_text(text, Some(Limit::characters(10))).unwrap(), ["今日は晴れです。", "明日は雨です。"]);
}

#[test]
fn a_limit_smaller_than_one_character_is_an_error() {
    assert!(matches!(split_text("😀", Some(Limit::bytes(3))), Err(Error::InvalidInput { .. })));
    assert!(matches!(split_text("abc", Some(Limit::characters(0))), Err(Error::InvalidInput { .. })));
}

#[test]
fn overrides_win_on_their_channel_only_and_must_be_objects() {
    let content = choices("Pick", numbered(3));
    let mut overrides = RenderOverrides::new();
    overrides.insert(ChannelKind::Messenger, json!({"attachment": {"type": "template"}}));
    let renderer = Renderer::default();
    assert_eq!(
        renderer.render_with(&content, &Capabilities::messenger(), &overrides).unwrap(),
        [RenderedPart::Raw { payload: json!({"attachment": {"type": "template"}}) }]
    );
    assert!(matches!(
        &renderer.render_with(&content, &Capabilities::whatsapp(), &overrides).unwrap()[..],
        [RenderedPart::Buttons { .. }]
    ));
    overrides.insert(ChannelKind::WhatsApp, json!("not an object"));
    assert!(matches!(
        renderer.render_with(&content, &Capabilities::whatsapp(), &overrides),
        Err(Error::InvalidInput { field: "overrides", .. })
    ));
}

#[test]
fn rendered_parts_are_stored_as_tagged_json() {
    let parts =
        render(&choices("Pick", vec![option("y", "Yes", None), option("n", "No", None)]), &Capabilities::whatsapp())
            .unwrap();
    let stored = serde_json::to_value(&parts).unwrap();
    assert_eq!(
        stored,
        json!([{
            "type": "buttons",
            "body": "Pick",
            "buttons": [
                {"id": "y", "title": "Yes", "description": null},
                {"id": "n", "title": "No", "description": null}
            ]
        }])
    );
    let back: Vec<RenderedPart> = serde_json::from_value(stored).unwrap();
    assert_eq!(back, parts);
}

#[test]
fn check_rejects_what_the_provider_would_reject() {
    let wa = Capabilities::whatsapp();
    let four = RenderedPart::Buttons { body: "Pick".into(), buttons: numbered(4) };
    assert!(matches!(wa.check(&four), Err(Error::InvalidInput { .. })));
    assert!(Capabilities::sms().check(&RenderedPart::Buttons { body: "Pick".into(), buttons: numbered(2) }).is_err());
    assert!(Capabilities::sms().check(&text(&"a".repeat(1601))).is_err());
    assert!(Capabilities::sms().check(&text(&"a".repeat(1600))).is_ok());
    let with_caption = RenderedPart::Media {
        media: MediaKind::Image,
        url: "https://x".into(),
        mime_type: None,
        caption: Some("c".into()),
        filename: None,
    };
    assert!(Capabilities::messenger().check(&with_caption).is_err());
    assert!(wa.check(&with_caption).is_ok());
}

mod split_properties {
    use super::*;
    use proptest::prelude::*;
    use touchpoint::channel::LengthUnit;

    fn any_text() -> impl Strategy<Value = String> {
        let chars = prop::sample::select(vec![
            'a', 'b', ' ', ' ', '.', '\n', 'é', 'ж', '😀', '€', '\u{301}', '\u{200D}', '🇬', '。', '!',
        ]);
        prop::collection::vec(chars, 1..400).prop_map(|v| v.into_iter().collect())
    }

    fn unit() -> impl Strategy<Value = LengthUnit> {
        prop::sample::select(vec![
            LengthUnit::Characters,
            LengthUnit::Utf16Units,
            LengthUnit::Bytes,
            LengthUnit::SmsSegments,
        ])
    }

    proptest! {
        #[test]
        fn pieces_fit_are_trimmed_and_lose_only_whitespace(text in any_text(), unit in unit(), max in 4usize..120) {
            let max = if unit == LengthUnit::SmsSegments { max % 3 + 1 } else { max };
            let limit = Limit { max, unit };
            let pieces = split_text(&text, Some(limit)).unwrap();
            if limit.fits(&text) {
                prop_assert_eq!(pieces, vec![text.clone()]);
            } else {
                for p in &pieces {
                    prop_assert!(limit.fits(p), "{:?} does not fit {:?}", p, limit);
                    prop_assert!(!p.is_empty() && p.trim() == p);
                }
                let squeeze = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
                prop_assert_eq!(squeeze(&pieces.concat()), squeeze(&text));
            }
        }
    }
}

#[test]
fn whatsapp_audio_and_stickers_carry_no_caption_so_it_follows_as_text() {
    // WhatsApp Cloud API: `caption` describes image, document or video media only ("do not use
    // with audio or sticker media"). Like Messenger attachments, the caption must follow as text.
    for media in [MediaKind::Audio, MediaKind::Sticker] {
        let content = Content::Media {
            media,
            url: "https://cdn.example.com/f".into(),
            mime_type: None,
            caption: Some("Listen to this".into()),
            filename: None,
        };
        let parts = render(&content, &Capabilities::whatsapp()).unwrap();
        assert!(
            matches!(&parts[..], [RenderedPart::Media { caption: None, .. }, RenderedPart::Text { .. }]),
            "{media:?}: {parts:?}"
        );
    }
}
