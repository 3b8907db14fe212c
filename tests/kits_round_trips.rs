//! Round trips through the Twilio, email and web chat parsers: what a generator writes in the
//! provider's own format (a form body as Twilio posts it, a MIME message as a mail client sends
//! it, a widget event) comes back out of the kit field for field.

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use serde_json::json;
use touchpoint::channels::email::{self, EmailBuilder, EmailInbox, InboundEmail, Mailbox, SenderAuth};
use touchpoint::channels::form;
use touchpoint::channels::twilio::{self, MessagingWebhook};
use touchpoint::channels::webchat::{WebChatEvent, WebChatWidget};
use touchpoint::model::{
    Address, ChannelKind, Content, CustomerKey, DeliveryState, EndpointId, MediaKind, Verification,
};

/// Numbers `normalize_phone` accepts with and without libphonenumber metadata.
const PHONES: &[&str] = &["+447700900123", "+15550001111", "+5511987654321", "+33612345678"];

fn endpoint(name: &str) -> EndpointId {
    EndpointId::new(name).unwrap()
}

fn sid(prefix: &'static str) -> impl Strategy<Value = String> {
    "[0-9a-f]{32}".prop_map(move |hex| format!("{prefix}{hex}"))
}

/// One line a person types: no quote marker, attribution, signature or Outlook header, no
/// space at either end (the kit trims line ends).
fn typed_line() -> impl Strategy<Value = String> {
    "[A-Za-z0-9éüß日本 ,.!?]{0,58}".prop_map(|l| format!("x{l}").trim_end().to_owned())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// An SMS or WhatsApp message with text and media, as Twilio posts it, parses back to the
    /// sender, text, media and ids that went in; the combined parser agrees.
    #[test]
    fn twilio_inbound_messages_round_trip(
        message_sid in sid("SM"),
        account_sid in sid("AC"),
        from in prop::sample::select(PHONES),
        whatsapp in any::<bool>(),
        text in proptest::option::of("\\PC{1,160}"),
        media in prop::collection::vec(("[a-z0-9]{1,20}", prop::sample::select(&["image/jpeg", "video/mp4", "audio/ogg", "application/pdf"][..])), 0..4),
        profile in proptest::option::of("[A-Za-z][A-Za-z ]{0,20}[A-Za-z]"),
    ) {
        let text = text.filter(|t| !t.trim().is_empty());
        prop_assume!(text.is_some() || !media.is_empty());
        let channel_prefix = if whatsapp { "whatsapp:" } else { "" };
        let sender = format!("{channel_prefix}{from}");
        let urls: Vec<String> =
            media.iter().map(|(name, _)| format!("https://api.twilio.com/2010-04-01/Media/{name}")).collect();
        let mut pairs: Vec<(String, String)> = vec![
            ("MessageSid".into(), message_sid.clone()),
            ("AccountSid".into(), account_sid.clone()),
            ("From".into(), sender),
            ("To".into(), format!("{channel_prefix}+15550009999")),
            ("Body".into(), text.clone().unwrap_or_default()),
            ("NumMedia".into(), media.len().to_string()),
        ];
        for (i, ((_, mime), url)) in media.iter().zip(&urls).enumerate() {
            pairs.push((format!("MediaUrl{i}"), url.clone()));
            pairs.push((format!("MediaContentType{i}"), (*mime).to_owned()));
        }
        if let Some(p) = &profile {
            pairs.push(("ProfileName".into(), p.clone()));
        }
        let body = form::encode(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())));

        let parsed = twilio::parse_message(body.as_bytes(), &endpoint("twilio")).unwrap();
        prop_assert_eq!(&parsed.message_sid, &message_sid);
        prop_assert_eq!(parsed.account_sid.as_deref(), Some(account_sid.as_str()));
        let channel = if whatsapp { ChannelKind::WhatsApp } else { ChannelKind::Sms };
        prop_assert_eq!(&parsed.channel, &channel);
        prop_assert_eq!(parsed.inbound.len(), media.len().max(1));
        for (i, msg) in parsed.inbound.iter().enumerate() {
            let id = if i == 0 { message_sid.clone() } else { format!("{message_sid}#{i}") };
            prop_assert_eq!(&msg.external_id, &id);
            prop_assert_eq!(&msg.sender, &Address::phone(from));
            prop_assert_eq!(&msg.verification, &Verification::CarrierAsserted);
            prop_assert_eq!(msg.sender_name.as_deref(), profile.as_deref());
        }
        if media.is_empty() {
            prop_assert_eq!(&parsed.inbound[0].content, &Content::Text { body: text.clone().unwrap() });
        } else {
            for (i, (msg, ((_, mime), url))) in parsed.inbound.iter().zip(media.iter().zip(&urls)).enumerate() {
                let kind = match mime.split('/').next() {
                    Some("image") => MediaKind::Image,
                    Some("video") => MediaKind::Video,
                    Some("audio") => MediaKind::Audio,
                    _ => MediaKind::Document,
                };
                let caption = if i == 0 { text.clone() } else { None };
                let want = Content::Media { media: kind, url: url.clone(), mime_type: Some((*mime).to_owned()), caption, filename: None };
                prop_assert_eq!(&msg.content, &want);
            }
        }
        prop_assert_eq!(
            twilio::parse_messaging(body.as_bytes(), &endpoint("twilio")).unwrap(),
            MessagingWebhook::Message(parsed)
        );
    }

    /// A status callback parses back to the message id and the state `message_status` names.
    #[test]
    fn twilio_status_callbacks_round_trip(
        message_sid in sid("SM"),
        status in prop::sample::select(&["sent", "delivered", "read", "failed", "undelivered", "canceled"][..]),
        code in proptest::option::of("3000[1-9]"),
        to in prop::sample::select(PHONES),
    ) {
        let mut pairs = vec![("MessageSid", message_sid.as_str()), ("MessageStatus", status), ("To", to)];
        if let Some(c) = &code {
            pairs.push(("ErrorCode", c.as_str()));
        }
        let body = form::encode(pairs);
        let receipt = twilio::parse_status(body.as_bytes()).unwrap();
        prop_assert_eq!(&receipt.external_id, &message_sid);
        prop_assert_eq!(&receipt.state, &twilio::message_status(status, code.as_deref()).unwrap());
        prop_assert_eq!(receipt.recipient, Some(Address::phone(to)));
        if let DeliveryState::Failed { code: got, .. } = &receipt.state {
            prop_assert_eq!(got, &code);
        }
    }

    /// A customer's reply written with the MIME builder (text, optional HTML alternative, a
    /// quoted earlier message) parses back to the text they wrote, their address and name, the
    /// Message-ID, the subject, the thread and our reply token.
    #[test]
    fn emails_round_trip_through_the_kit(
        lines in prop::collection::vec(typed_line(), 1..6),
        subject in "[A-Za-z0-9éü日本][A-Za-z0-9éü日本 ,.!?]{0,60}[A-Za-z0-9.!?]",
        name in proptest::option::of("[A-Z][a-z]{1,10} [A-Z][a-z]{1,10}"),
        token in "[A-Za-z0-9_-]{1,32}",
        quoted in prop::collection::vec(typed_line(), 0..4),
        html in any::<bool>(),
        parent in "[a-z0-9]{1,20}",
    ) {
        let inbox = EmailInbox::new(endpoint("support-inbox"), "reply@support.example.com").unwrap();
        let written = lines.join("\n");
        let mut text = written.clone();
        if !quoted.is_empty() {
            text.push_str("\n\nOn Tue, 31 Dec 2024 at 17:02, Acme Support <support@example.com> wrote:\n");
            text.push_str(&quoted.iter().map(|l| format!("> {l}")).collect::<Vec<_>>().join("\n"));
        }
        let from = match &name {
            Some(n) => Mailbox::named(n.clone(), "ada@example.net"),
            None => Mailbox::new("ada@example.net"),
        };
        let to = Mailbox::new(inbox.reply_address_for(&token).unwrap());
        let parent_id = format!("{parent}@support.example.com");
        let mut builder = EmailBuilder::new(from, to, subject.clone(), text.clone()).replying_to(&parent_id, &[]);
        if html {
            builder = builder.html(format!("<p>{}</p>", lines.join("<br>")));
        }
        let sent = builder.build(Utc.with_ymd_and_hms(2025, 1, 1, 10, 0, 0).unwrap()).unwrap();

        let InboundEmail::Message(mail) = email::parse(&sent.bytes, &inbox, SenderAuth::Authenticated).unwrap() else {
            panic!("a person's reply parsed as a bounce")
        };
        let msg = &mail.message;
        prop_assert_eq!(&msg.content, &Content::Text { body: written });
        prop_assert_eq!(mail.full_text.trim_end_matches('\n'), text.as_str());
        prop_assert_eq!(&msg.channel, &ChannelKind::Email);
        prop_assert_eq!(&msg.sender, &Address::email("ada@example.net"));
        prop_assert_eq!(&msg.verification, &Verification::Verified);
        prop_assert_eq!(msg.sender_name.as_deref(), name.as_deref());
        prop_assert_eq!(&msg.external_id, &sent.message_id);
        prop_assert_eq!(msg.thread.subject.as_deref(), Some(subject.as_str()));
        prop_assert_eq!(msg.thread.in_reply_to.as_deref(), Some(parent_id.as_str()));
        prop_assert_eq!(msg.thread.reply_token.as_deref(), Some(token.as_str()));
        prop_assert_eq!(msg.sent_at, Some(Utc.with_ymd_and_hms(2025, 1, 1, 10, 0, 0).unwrap()));
        prop_assert!(!mail.is_auto_reply());
        prop_assert!(mail.attachments.is_empty());
    }

    /// A widget event parses back to the visitor, the verified identity, the text, the
    /// attachments and the ids that went in.
    #[test]
    fn webchat_events_round_trip(
        anon_id in "v_[a-z0-9]{1,20}",
        user in proptest::option::of("cust_[0-9]{1,8}"),
        client_msg_id in "[a-f0-9-]{1,36}",
        text in proptest::option::of("\\PC{1,200}"),
        attachments in prop::collection::vec(("[a-z0-9]{1,12}", prop::sample::select(&["image/png", "video/mp4", "application/pdf"][..])), 0..3),
        conversation in proptest::option::of("c_[a-z0-9]{1,12}"),
        name in proptest::option::of("[A-Z][a-z]{1,10}"),
    ) {
        let text = text.filter(|t| !t.trim().is_empty());
        prop_assume!(text.is_some() || !attachments.is_empty());
        let widget = WebChatWidget::new(endpoint("site-widget"), "widget-secret-0123456789").unwrap();
        let files: Vec<_> = attachments
            .iter()
            .map(|(n, ct)| json!({"url": format!("https://files.example.com/{n}"), "content_type": ct, "filename": n}))
            .collect();
        let mut visitor = json!({"anon_id": anon_id});
        if let Some(u) = &user {
            visitor["identifier"] = json!(u);
            visitor["identifier_hash"] = json!(widget.identity_hash(u));
        }
        if let Some(n) = &name {
            visitor["name"] = json!(n);
        }
        let mut event = json!({
            "event": "message.created",
            "occurred_at": "2025-01-01T10:00:00Z",
            "visitor": visitor,
            "message": {"client_msg_id": client_msg_id, "text": text, "attachments": files},
        });
        if let Some(c) = &conversation {
            event["conversation"] = json!({"id": c});
        }
        let body = serde_json::to_vec(&event).unwrap();

        let WebChatEvent::Message(msg) = widget.parse(&body).unwrap() else { panic!("a message parsed as typing") };
        prop_assert_eq!(msg.identity.verified_user(), user.as_deref());
        prop_assert_eq!(&msg.conversation_id, &conversation);
        prop_assert_eq!(msg.inbound.len(), attachments.len().max(1));
        for (i, inbound) in msg.inbound.iter().enumerate() {
            let id = if i == 0 { format!("{anon_id} {client_msg_id}") } else { format!("{anon_id} {client_msg_id}#{i}") };
            prop_assert_eq!(&inbound.external_id, &id);
            prop_assert_eq!(&inbound.sender, &widget.visitor_address(&anon_id));
            prop_assert_eq!(inbound.sender_name.as_deref(), name.as_deref());
            prop_assert_eq!(inbound.sent_at, Some(Utc.with_ymd_and_hms(2025, 1, 1, 10, 0, 0).unwrap()));
            prop_assert_eq!(inbound.thread.provider_thread_id.as_deref(), conversation.as_deref());
            let verified = user.as_ref().map(|u| CustomerKey::ExternalId(u.clone()));
            prop_assert_eq!(inbound.claims.first().map(|c| c.key.clone()), verified);
        }
        if attachments.is_empty() {
            prop_assert_eq!(&msg.inbound[0].content, &Content::Text { body: text.clone().unwrap() });
        } else {
            for (i, (inbound, (n, ct))) in msg.inbound.iter().zip(&attachments).enumerate() {
                let kind = if ct.starts_with("image/") {
                    MediaKind::Image
                } else if ct.starts_with("video/") {
                    MediaKind::Video
                } else {
                    MediaKind::Document
                };
                let want = Content::Media {
                    media: kind,
                    url: format!("https://files.example.com/{n}"),
                    mime_type: Some((*ct).to_owned()),
                    caption: if i == 0 { text.clone() } else { None },
                    filename: Some(n.clone()),
                };
                prop_assert_eq!(&inbound.content, &want);
            }
        }
    }
}
