//! Engine behaviour through the public API: threading order, reopen policies, identity linking,
//! link/unlink/move, merges, outbound records and reply windows, delivery receipts, the event
//! stream, the context view, and bad input.

mod common;

use chrono::Duration;
use common::*;
use futures::StreamExt;
use std::collections::HashSet;
use touchpoint::context::TimelinePage;
use touchpoint::events::Event;
use touchpoint::identity::{LinkedBy, Resolution};
use touchpoint::model::*;
use touchpoint::store::LinkKey;
use touchpoint::thread::{ChannelThreading, OpenReason, ReopenPolicy, ThreadDecision, ThreadReason, ThreadingPolicy};
use touchpoint::{ConversationPatch, CustomerPatch, Error, OutboundMessage, SurvivorRule};

fn continued(reason: ThreadReason) -> ThreadDecision {
    ThreadDecision::Continued { reason }
}

fn reopened(reason: ThreadReason) -> ThreadDecision {
    ThreadDecision::Reopened { reason }
}

fn opened(reason: OpenReason, previous: Option<ConversationId>) -> ThreadDecision {
    ThreadDecision::Opened { reason, previous }
}

fn policy(reopen: ReopenPolicy) -> ThreadingPolicy {
    ThreadingPolicy { reopen, ..ThreadingPolicy::default() }
}

fn in_app(user: &str, id: &str, body: &str) -> InboundMessage {
    InboundMessage::new(
        ChannelKind::InApp,
        endpoint("mobile-app"),
        Address::platform("mobile-app", format!("device-of-{user}")),
        id,
        text(body),
    )
    .with_claim(CustomerKey::ExternalId(user.into()), Verification::Verified)
}

fn verified(key: LinkedBy) -> Resolution {
    Resolution::Linked { key, verification: Verification::Verified }
}

fn link(h: &Harness, customer: CustomerId, channel: ChannelKind, address: Address, v: Verification) -> Identity {
    run(h.engine.link_identity(&h.tenant, customer, channel, address, v)).unwrap()
}

// =============================================================================================
// Threading order
// =============================================================================================

#[test]
fn provider_thread_id_outranks_reply_token_and_nothing_matching_opens_new() {
    // In-app chat with several threads per user: no session threading on this channel.
    let h = Harness::with_threading(
        ThreadingPolicy::default()
            .with_channel(ChannelKind::InApp, ChannelThreading { session: false, reopen: ReopenPolicy::Reopen }),
    );
    let x = h.ingest(in_app("u1", "m1", "Order 1").with_thread(provider_thread_hint("thr-1")));
    let y = h.ingest(in_app("u1", "m2", "Order 2").with_thread(provider_thread_hint("thr-2")));
    assert_eq!(x.thread, opened(OpenReason::NoMatch, None));
    assert_eq!(y.thread, opened(OpenReason::NoMatch, None));
    assert_ne!(x.conversation, y.conversation);
    assert_eq!(y.customer, x.customer);

    let m3 = h.ingest(in_app("u1", "m3", "About order 1").with_thread(provider_thread_hint("thr-1")));
    assert_eq!((m3.conversation, m3.thread), (x.conversation, continued(ThreadReason::ProviderThread)));

    // Provider thread id beats our reply token.
    let y_token = h.conversation(y.conversation).reply_token;
    let m4 = h.ingest(in_app("u1", "m4", "Both").with_thread(ThreadHints {
        provider_thread_id: Some("thr-1".into()),
        reply_token: Some(y_token.clone()),
        ..ThreadHints::default()
    }));
    assert_eq!((m4.conversation, m4.thread), (x.conversation, continued(ThreadReason::ProviderThread)));

    // The token alone.
    let m5 = h.ingest(in_app("u1", "m5", "Token only").with_thread(reply_token_hint(&y_token)));
    assert_eq!((m5.conversation, m5.thread), (y.conversation, continued(ThreadReason::ReplyToken)));

    // An unknown provider thread id is a new conversation.
    let m6 = h.ingest(in_app("u1", "m6", "Order 3").with_thread(provider_thread_hint("thr-3")));
    assert_eq!(m6.thread, opened(OpenReason::NoMatch, None));
    assert!(![x.conversation, y.conversation].contains(&m6.conversation));

    // Provider thread ids are per channel: the same id on web chat is not that thread.
    let web = h.ingest(
        webchat("visitor-u1", "w1", "From the website")
            .with_claim(CustomerKey::ExternalId("u1".into()), Verification::Verified)
            .with_thread(provider_thread_hint("thr-1")),
    );
    assert_eq!(web.customer, x.customer);
    assert_ne!(web.conversation, x.conversation);
    assert_eq!(web.thread, opened(OpenReason::NoMatch, None));
}

#[test]
fn reply_token_outranks_email_references_and_references_are_searched_newest_first() {
    let h = Harness::new();
    let ana = "ana@example.com";
    let x = h.ingest(email(ana, "<x1@ana.example>", "First topic"));
    let y = h.ingest(email(ana, "<y1@ana.example>", "Second topic"));
    assert_eq!(y.customer, x.customer);
    assert_ne!(y.conversation, x.conversation, "email has no session: a new mail is a new conversation");
    assert_eq!(y.thread, opened(OpenReason::NoMatch, None));

    // Reply token beats In-Reply-To.
    let x_token = h.conversation(x.conversation).reply_token;
    let m = h.ingest(email(ana, "<m1@ana.example>", "via token").with_thread(ThreadHints {
        reply_token: Some(x_token),
        in_reply_to: Some("<y1@ana.example>".into()),
        ..ThreadHints::default()
    }));
    assert_eq!((m.conversation, m.thread), (x.conversation, continued(ThreadReason::ReplyToken)));

    // In-Reply-To beats References.
    let m = h.ingest(email_reply(ana, "<m2@ana.example>", "<x1@ana.example>", &["<y1@ana.example>"], "irt"));
    assert_eq!((m.conversation, m.thread), (x.conversation, continued(ThreadReason::EmailReference)));

    // An unknown In-Reply-To (a reply from Outlook) falls back to References, newest first.
    let m = h.ingest(email_reply(
        ana,
        "<m3@ana.example>",
        "<outlook-123@outlook.example>",
        &["<x1@ana.example>", "<y1@ana.example>"],
        "refs",
    ));
    assert_eq!((m.conversation, m.thread), (y.conversation, continued(ThreadReason::EmailReference)));

    // Our own outbound Message-ID threads the answer.
    h.outbound(
        x.conversation,
        OutboundMessage::agent(agent("maria"), text("Answer")).with_external_id("<out-1@support.example>"),
    )
    .unwrap();
    let m = h.ingest(email_reply(ana, "<m4@ana.example>", "<out-1@support.example>", &[], "thanks"));
    assert_eq!((m.conversation, m.thread), (x.conversation, continued(ThreadReason::EmailReference)));

    // The sender check: someone else's reply with the same references starts their own thread.
    let bob = h.ingest(
        email_reply("bob@example.com", "<b1@bob.example>", "<out-1@support.example>", &["<x1@ana.example>"], "me too")
            .with_thread(ThreadHints {
                reply_token: Some(h.conversation(x.conversation).reply_token),
                in_reply_to: Some("<out-1@support.example>".into()),
                references: vec!["<x1@ana.example>".into()],
                ..ThreadHints::default()
            }),
    );
    assert_ne!(bob.customer, x.customer);
    assert_eq!(bob.thread, opened(OpenReason::NoMatch, None));
    assert!(!bob.notes.is_empty());
    assert_eq!(h.conversation(x.conversation).message_count, 5);
}

#[test]
fn explicit_reference_outranks_the_session() {
    let h = Harness::new();
    let mail =
        h.ingest(email("ana@example.com", "<a1@ana.example>", "Topic A").with_verification(Verification::Verified));
    link(&h, mail.customer, ChannelKind::WhatsApp, Address::phone("+447700900123"), Verification::Verified);
    let wa = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "Topic B"));
    assert_eq!(wa.customer, mail.customer);
    assert_ne!(wa.conversation, mail.conversation);

    let by_session = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.2", "About B"));
    assert_eq!((by_session.conversation, by_session.thread), (wa.conversation, continued(ThreadReason::Session)));
    // The session points at the WhatsApp conversation, but our reply token wins.
    let token = h.conversation(mail.conversation).reply_token;
    let by_token =
        h.ingest(whatsapp("wa-main", "+447700900123", "wamid.3", "About A").with_thread(reply_token_hint(&token)));
    assert_eq!((by_token.conversation, by_token.thread), (mail.conversation, continued(ThreadReason::ReplyToken)));
}

#[test]
fn session_continues_single_thread_channels_only() {
    let h = Harness::new();
    let a = h.ingest(sms("sms-main", "+447700900123", "SM1", "one"));
    let b = h.ingest(sms("sms-main", "+447700900123", "SM2", "two"));
    assert_eq!((b.conversation, b.thread), (a.conversation, continued(ThreadReason::Session)));
    let c = h.ingest(email("ana@example.com", "<c1@ana.example>", "one"));
    let d = h.ingest(email("ana@example.com", "<d1@ana.example>", "two"));
    assert_ne!(c.conversation, d.conversation);
    assert_eq!(d.thread, opened(OpenReason::NoMatch, None));
}

#[test]
fn cross_channel_window_continues_the_open_conversation_only_when_enabled() {
    for window in [None, Some(Duration::days(3))] {
        let threading = ThreadingPolicy { cross_channel_window: window, ..ThreadingPolicy::default() };
        let h = Harness::with_threading(threading);
        let wa = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "Hi on WhatsApp"));
        link(&h, wa.customer, ChannelKind::Email, Address::email("ana@example.com"), Verification::Verified);
        h.advance(Duration::days(1));
        let mail = h.ingest(email("ana@example.com", "<m1@ana.example>", "Hi by email"));
        assert_eq!(mail.customer, wa.customer);
        match window {
            None => {
                assert_ne!(mail.conversation, wa.conversation);
                assert_eq!(mail.thread, opened(OpenReason::NoMatch, None));
            }
            Some(_) => {
                assert_eq!((mail.conversation, mail.thread), (wa.conversation, continued(ThreadReason::CrossChannel)));
                let c = h.conversation(wa.conversation);
                assert_eq!(c.channel_kinds().cloned().collect::<Vec<_>>(), [ChannelKind::WhatsApp, ChannelKind::Email]);
                assert!(
                    h.event_kinds()
                        .contains(&Event::ChannelAdded { conversation: wa.conversation, channel: ChannelKind::Email })
                );
                // Beyond the window: a new conversation.
                h.advance(Duration::days(3) + Duration::minutes(1));
                let late = h.ingest(email("ana@example.com", "<m2@ana.example>", "Much later"));
                assert_ne!(late.conversation, wa.conversation);
                assert_eq!(late.thread, opened(OpenReason::NoMatch, None));
                // A resolved conversation is not continued across channels.
                h.set_status(late.conversation, ConversationStatus::Resolved);
                h.set_status(wa.conversation, ConversationStatus::Resolved);
                let sms_msg = h.ingest(sms("sms-main", "+447700900123", "SM1", "By SMS"));
                assert!(![late.conversation, wa.conversation].contains(&sms_msg.conversation));
            }
        }
    }
}

#[test]
fn closed_session_gives_way_to_an_open_conversation_elsewhere_within_the_cross_channel_window() {
    let h = Harness::with_threading(ThreadingPolicy::default().with_cross_channel_window(Duration::days(3)));
    let wa = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "Hi"));
    link(&h, wa.customer, ChannelKind::Email, Address::email("ana@example.com"), Verification::Verified);
    h.set_status(wa.conversation, ConversationStatus::Closed);
    h.advance(Duration::hours(1));
    let mail = h.ingest(email("ana@example.com", "<m1@ana.example>", "By email"));
    assert_eq!(mail.thread, opened(OpenReason::NoMatch, None));
    h.advance(Duration::hours(1));
    let back = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.2", "Back on WhatsApp"));
    assert_eq!((back.conversation, back.thread), (mail.conversation, continued(ThreadReason::CrossChannel)));
}

#[test]
fn every_reply_to_a_closed_email_thread_joins_the_one_conversation_that_follows_it() {
    for (close, threading) in [
        (ConversationStatus::Closed, ThreadingPolicy::default()),
        (ConversationStatus::Resolved, policy(ReopenPolicy::AlwaysNew)),
        (ConversationStatus::Resolved, policy(ReopenPolicy::ReopenWithin(Duration::hours(1)))),
    ] {
        let h = Harness::with_threading(threading);
        let ana = "ana@example.com";
        let first = h.ingest(email(ana, "<m1@ana.example>", "Order 42 is late"));
        h.outbound(
            first.conversation,
            OutboundMessage::agent(agent("maria"), text("Sorted")).with_external_id("<out-1@support.example>"),
        )
        .unwrap();
        h.set_status(first.conversation, close.clone());
        h.advance(Duration::days(1));
        let refs = ["<m1@ana.example>", "<out-1@support.example>"];
        let second = h.ingest(email_reply(ana, "<m2@ana.example>", "<out-1@support.example>", &refs, "Not sorted"));
        assert_ne!(second.conversation, first.conversation, "{close:?}");
        assert!(
            matches!(second.thread, ThreadDecision::Opened { previous: Some(p), .. } if p == first.conversation),
            "{close:?}: {:?}",
            second.thread
        );
        h.advance(Duration::minutes(2));
        let third = h.ingest(email_reply(ana, "<m3@ana.example>", "<out-1@support.example>", &refs, "Hello?"));
        assert_eq!(
            (third.conversation, third.thread),
            (second.conversation, continued(ThreadReason::EmailReference)),
            "{close:?}"
        );
        // Our reply token of the old conversation leads there too.
        let token = h.conversation(first.conversation).reply_token;
        let fourth = h.ingest(
            email(ana, "<m4@ana.example>", "Via the token")
                .with_thread(ThreadHints { reply_token: Some(token), ..ThreadHints::default() }),
        );
        assert_eq!(
            (fourth.conversation, fourth.thread),
            (second.conversation, continued(ThreadReason::ReplyToken)),
            "{close:?}"
        );
        assert_eq!(h.conversations_of(first.customer).len(), 2, "{close:?}");
    }
}

#[test]
fn a_closed_session_keeps_its_link_to_the_new_conversation_with_a_cross_channel_window() {
    let h = Harness::with_threading(ThreadingPolicy::default().with_cross_channel_window(Duration::hours(1)));
    let first = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "Hi"));
    h.set_status(first.conversation, ConversationStatus::Closed);
    h.advance(Duration::minutes(5));
    let again = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.2", "Me again"));
    assert_eq!(again.thread, opened(OpenReason::PreviousClosed, Some(first.conversation)));
    assert_eq!(h.conversation(again.conversation).previous, Some(first.conversation));
}

// =============================================================================================
// Reopen policies
// =============================================================================================

#[test]
fn reopen_policy_reopen_reopens_however_old() {
    let h = Harness::with_threading(policy(ReopenPolicy::Reopen));
    let first = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "Hi"));
    h.set_status(first.conversation, ConversationStatus::Resolved);
    h.advance(Duration::days(90));
    let again = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.2", "Back again"));
    assert_eq!((again.conversation, again.thread), (first.conversation, reopened(ThreadReason::Session)));
    assert_eq!(h.conversation(first.conversation).status, ConversationStatus::Open);
    assert!(again.needs_handler);
    let events = h.event_kinds();
    assert!(events.contains(&Event::ConversationReopened { conversation: first.conversation }));
    assert!(events.contains(&Event::ConversationStatusChanged {
        conversation: first.conversation,
        from: "resolved".into(),
        to: "open".into()
    }));
}

#[test]
fn reopen_within_reopens_inside_the_window_and_opens_new_outside() {
    let h = Harness::with_threading(policy(ReopenPolicy::ReopenWithin(Duration::days(7))));
    let first = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "Hi"));
    h.set_status(first.conversation, ConversationStatus::Resolved);
    h.advance(Duration::days(7) - Duration::minutes(1));
    let inside = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.2", "Inside"));
    assert_eq!((inside.conversation, inside.thread), (first.conversation, reopened(ThreadReason::Session)));

    h.set_status(first.conversation, ConversationStatus::Resolved);
    h.advance(Duration::days(7) + Duration::minutes(1));
    let outside = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.3", "Outside"));
    assert_ne!(outside.conversation, first.conversation);
    assert_eq!(outside.thread, opened(OpenReason::ReopenWindowExpired, Some(first.conversation)));
    assert_eq!(h.conversation(outside.conversation).previous, Some(first.conversation));
    assert_eq!(h.conversation(first.conversation).status, ConversationStatus::Resolved);
}

#[test]
fn always_new_opens_a_conversation_pointing_back() {
    let h = Harness::with_threading(policy(ReopenPolicy::AlwaysNew));
    let first = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "Hi"));
    h.set_status(first.conversation, ConversationStatus::Resolved);
    h.advance(Duration::minutes(1));
    let next = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.2", "One more thing"));
    assert_ne!(next.conversation, first.conversation);
    assert_eq!(next.thread, opened(OpenReason::PolicyAlwaysNew, Some(first.conversation)));
    assert_eq!(h.conversation(next.conversation).previous, Some(first.conversation));
    assert!(h.event_kinds().contains(&Event::ConversationOpened {
        conversation: next.conversation,
        customer: first.customer,
        channel: ChannelKind::WhatsApp,
        previous: Some(first.conversation)
    }));
    // An open conversation is continued whatever the policy.
    let third = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.3", "And another"));
    assert_eq!((third.conversation, third.thread), (next.conversation, continued(ThreadReason::Session)));
}

#[test]
fn reject_refuses_the_message_and_stores_nothing() {
    let h = Harness::with_threading(
        ThreadingPolicy::default()
            .with_channel(ChannelKind::WebChat, ChannelThreading { session: true, reopen: ReopenPolicy::Reject }),
    );
    let first = h.ingest(webchat("visitor-1", "chat-1", "Hi"));
    h.set_status(first.conversation, ConversationStatus::Resolved);
    h.advance(Duration::minutes(5));
    let before = h.dump();
    let refused = h.try_ingest(webchat("visitor-1", "chat-2", "Hello again?"));
    assert!(matches!(refused, Err(Error::Refused(_))), "{refused:?}");
    assert_eq!(h.dump(), before);
    // Other channels keep their own rule (the default reopens within 7 days).
    let wa = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "Hi"));
    h.set_status(wa.conversation, ConversationStatus::Resolved);
    let wa2 = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.2", "Hi again"));
    assert_eq!(wa2.thread, reopened(ThreadReason::Session));
}

#[test]
fn snoozed_conversation_is_woken_by_the_customer() {
    let h = Harness::new();
    let first = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "Hi"));
    let until = h.now() + Duration::days(2);
    h.set_status(first.conversation, ConversationStatus::Snoozed { until });
    h.advance(Duration::hours(3));
    let again = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.2", "Any news?"));
    assert_eq!((again.conversation, again.thread), (first.conversation, reopened(ThreadReason::Session)));
    assert_eq!(h.conversation(first.conversation).status, ConversationStatus::Open);
    assert!(h.event_kinds().contains(&Event::ConversationStatusChanged {
        conversation: first.conversation,
        from: "snoozed".into(),
        to: "open".into()
    }));
}

// =============================================================================================
// Identity linking
// =============================================================================================

#[test]
fn verified_external_id_outranks_verified_email() {
    let h = Harness::new();
    let by_id = h.ingest(in_app("user-1", "m1", "Hi"));
    let by_email =
        h.ingest(email("ana@example.com", "<a1@ana.example>", "Hi").with_verification(Verification::Verified));
    assert_ne!(by_id.customer, by_email.customer);
    let both = h.ingest(
        webchat("visitor-9", "chat-1", "Who am I?")
            .with_claim(CustomerKey::Email("ana@example.com".into()), Verification::Verified)
            .with_claim(CustomerKey::ExternalId("user-1".into()), Verification::Verified),
    );
    assert_eq!(both.customer, by_id.customer);
    assert_eq!(both.resolution, verified(LinkedBy::ExternalId));
}

#[test]
fn verified_email_outranks_carrier_asserted_phone() {
    let h = Harness::new();
    let by_phone = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "Hi"));
    let by_email =
        h.ingest(email("ana@example.com", "<a1@ana.example>", "Hi").with_verification(Verification::Verified));
    assert_ne!(by_phone.customer, by_email.customer);
    let both = h.ingest(
        webchat("visitor-9", "chat-1", "Hello")
            .with_claim(CustomerKey::Phone("+447700900123".into()), Verification::CarrierAsserted)
            .with_claim(CustomerKey::Email("ana@example.com".into()), Verification::Verified),
    );
    assert_eq!(both.customer, by_email.customer);
    assert_eq!(both.resolution, verified(LinkedBy::Email));
    // The phone still belongs to its holder: no merge, no move.
    assert_eq!(h.identities_of(by_phone.customer).len(), 1);
    assert_eq!(h.count("customers"), 2);
}

#[test]
fn sms_from_a_phone_held_by_another_customer_links_by_verified_email_without_taking_the_phone() {
    // §3.1 step 4: the phone matches customer B, the verified email matches customer A: email
    // ranks higher, nobody is merged and B keeps the phone.
    let h = Harness::new();
    let b = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "Hi"));
    let a = h.ingest(email("ana@example.com", "<a1@ana.example>", "Hi").with_verification(Verification::Verified));
    let msg = sms("sms-main", "+447700900123", "SM1", "It's Ana, from my partner's phone")
        .with_claim(CustomerKey::Email("ana@example.com".into()), Verification::Verified);
    let outcome = h.try_ingest(msg);
    let outcome = outcome.expect("the message is accepted (a permanent rule, not a retryable conflict)");
    assert_eq!(outcome.customer, a.customer);
    assert_eq!(outcome.resolution, verified(LinkedBy::Email));
    let holders = run(h.engine.store().customers_by_address(
        &h.tenant,
        &LinkKey(NormalizedAddress { kind: AddressKind::Phone, value: "+447700900123".into() }),
    ))
    .unwrap();
    let linking: Vec<_> = holders.iter().filter(|(_, v)| v.can_link()).map(|(c, _)| *c).collect();
    assert_eq!(linking, [b.customer]);
}

#[test]
fn carrier_asserted_phone_links_across_channels() {
    let h = Harness::new();
    let wa = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "Hi"));
    let text_msg = h.ingest(sms("sms-main", "+44 7700 900123", "SM1", "Hi by SMS"));
    assert_eq!(text_msg.customer, wa.customer);
    assert_eq!(
        text_msg.resolution,
        Resolution::Linked { key: LinkedBy::Phone, verification: Verification::CarrierAsserted }
    );
    assert_ne!(text_msg.identity, wa.identity);
    assert_ne!(text_msg.conversation, wa.conversation);
}

#[test]
fn unverified_keys_never_link() {
    let h = Harness::new();
    let a = h.ingest(email("ana@example.com", "<a1@ana.example>", "Hi").with_verification(Verification::Verified));
    link(&h, a.customer, ChannelKind::WhatsApp, Address::phone("+447700900123"), Verification::Verified);

    let typed_email = h.ingest(
        webchat("v1", "c1", "Hi").with_claim(CustomerKey::Email("ana@example.com".into()), Verification::Unverified),
    );
    let typed_phone = h.ingest(
        webchat("v2", "c2", "Hi").with_claim(CustomerKey::Phone("+447700900123".into()), Verification::Unverified),
    );
    // An email address as the sender of an unverified channel (a contact form).
    let form = h.ingest(InboundMessage::new(
        ChannelKind::Custom("contact-form".into()),
        endpoint("site-form"),
        Address::email("ana@example.com"),
        "form-1",
        text("Call me"),
    ));
    // An email claim that is only carrier-asserted is not a verified email either.
    let weak = h.ingest(
        webchat("v3", "c3", "Hi")
            .with_claim(CustomerKey::Email("ana@example.com".into()), Verification::CarrierAsserted),
    );
    for o in [&typed_email, &typed_phone, &form, &weak] {
        assert_eq!(o.resolution, Resolution::Created);
        assert_ne!(o.customer, a.customer);
    }
    for o in [&typed_email, &typed_phone, &form] {
        assert_eq!(o.suspected_duplicates, vec![a.customer]);
    }
    // By now the contact-form sender holds the address (unverified) too: both are suspects.
    assert_eq!(weak.suspected_duplicates, vec![a.customer, form.customer]);
    assert_eq!(h.count("customers"), 5);
    assert_eq!(h.identities_of(a.customer).len(), 2);
}

#[test]
fn two_different_external_ids_are_never_joined() {
    let h = Harness::new();
    let a = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "Hi"));
    run(h.engine.update_customer(
        &h.tenant,
        a.customer,
        CustomerPatch { external_id: Some(Some("user-1".into())), ..Default::default() },
    ))
    .unwrap();

    let web = h.ingest(
        webchat("v1", "c1", "Hi")
            .with_claim(CustomerKey::ExternalId("user-2".into()), Verification::Verified)
            .with_claim(CustomerKey::Phone("+447700900123".into()), Verification::CarrierAsserted),
    );
    assert_ne!(web.customer, a.customer);
    assert_eq!(web.resolution, Resolution::Created);
    assert!(!web.notes.is_empty());
    assert_eq!(h.customer(web.customer).external_id.as_deref(), Some("user-2"));

    let by_sms = h.ingest(
        sms("sms-main", "+447700900123", "SM1", "Hi")
            .with_claim(CustomerKey::ExternalId("user-3".into()), Verification::Verified),
    );
    assert_ne!(by_sms.customer, a.customer);
    assert_ne!(by_sms.customer, web.customer);
    assert_eq!(by_sms.resolution, Resolution::Created);
    // The phone stays A's at a linking level.
    let holders = run(h.engine.store().customers_by_address(
        &h.tenant,
        &LinkKey(NormalizedAddress { kind: AddressKind::Phone, value: "+447700900123".into() }),
    ))
    .unwrap();
    let linking: Vec<_> = holders.iter().filter(|(_, v)| v.can_link()).map(|(c, _)| *c).collect();
    assert_eq!(linking, [a.customer]);

    let before = h.dump();
    let merge = run(h.engine.merge_customers(&h.tenant, a.customer, web.customer, SurvivorRule::First));
    assert!(matches!(merge, Err(Error::Refused(_))), "{merge:?}");
    let preview = run(h.engine.preview_merge(&h.tenant, a.customer, web.customer, SurvivorRule::First));
    assert!(matches!(preview, Err(Error::Refused(_))), "{preview:?}");
    let steal = run(h.engine.update_customer(
        &h.tenant,
        web.customer,
        CustomerPatch { external_id: Some(Some("user-1".into())), ..Default::default() },
    ));
    assert!(matches!(steal, Err(Error::Refused(_))), "{steal:?}");
    assert_eq!(h.dump(), before);
}

#[test]
fn anonymous_visitor_who_signs_in_becomes_that_user() {
    let h = Harness::new();
    let anon = h.ingest(webchat("visitor-1", "c1", "Hi"));
    assert_eq!(h.customer(anon.customer).external_id, None);
    let signed = h.ingest(
        webchat("visitor-1", "c2", "Now signed in")
            .with_claim(CustomerKey::ExternalId("user-7".into()), Verification::Verified),
    );
    assert_eq!(signed.customer, anon.customer);
    assert_eq!(signed.resolution, Resolution::KnownIdentity);
    assert_eq!(signed.conversation, anon.conversation);
    assert_eq!(h.customer(anon.customer).external_id.as_deref(), Some("user-7"));
}

// =============================================================================================
// Link, unlink, move
// =============================================================================================

#[test]
fn link_identity_attaches_an_address_once_and_refuses_another_customers() {
    let h = Harness::new();
    let ana = h.ingest(webchat("v-ana", "c1", "Hi"));
    let bob = h.ingest(webchat("v-bob", "c2", "Hi"));
    let linked = link(&h, ana.customer, ChannelKind::Email, Address::email("Ana@Example.com"), Verification::Verified);
    assert_eq!(linked.address.value, "ana@example.com");
    assert_eq!(linked.raw_address, "Ana@Example.com");
    assert_eq!(linked.customer, ana.customer);
    assert!(h.event_kinds().contains(&Event::IdentityLinked {
        customer: ana.customer,
        identity: linked.id,
        channel: ChannelKind::Email,
        verification: Verification::Verified
    }));

    let before = h.dump();
    let again = link(&h, ana.customer, ChannelKind::Email, Address::email("ana@example.com"), Verification::Verified);
    assert_eq!(again.id, linked.id);
    assert_eq!(h.dump(), before, "linking again changes nothing");

    let theft = run(h.engine.link_identity(
        &h.tenant,
        bob.customer,
        ChannelKind::Email,
        Address::email("ana@example.com"),
        Verification::Verified,
    ));
    assert!(matches!(theft, Err(Error::Refused(_))), "{theft:?}");
    let bad = run(h.engine.link_identity(
        &h.tenant,
        bob.customer,
        ChannelKind::Email,
        Address::email("not-an-email"),
        Verification::Verified,
    ));
    assert!(matches!(bad, Err(Error::InvalidAddress { kind: "email", .. })), "{bad:?}");
    let nobody = run(h.engine.link_identity(
        &h.tenant,
        unknown_customer(),
        ChannelKind::Email,
        Address::email("x@example.com"),
        Verification::Verified,
    ));
    assert!(matches!(nobody, Err(Error::NotFound { .. })), "{nobody:?}");
    assert_eq!(h.dump(), before);

    // The linked address now finds Ana.
    let mail = h.ingest(email("ana@example.com", "<a1@ana.example>", "Hi by mail"));
    assert_eq!((mail.customer, mail.identity), (ana.customer, linked.id));
    assert_eq!(mail.resolution, Resolution::KnownIdentity);
}

#[test]
fn link_identity_of_an_address_another_customer_holds_on_another_channel_is_refused() {
    let h = Harness::new();
    let holder = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "Hi"));
    let other = h.ingest(webchat("v-other", "c1", "Hi"));
    let before = h.dump();
    let result = run(h.engine.link_identity(
        &h.tenant,
        other.customer,
        ChannelKind::Sms,
        Address::phone("+447700900123"),
        Verification::Verified,
    ));
    assert!(matches!(result, Err(Error::Refused(_))), "{result:?}");
    assert_eq!(h.dump(), before);
    assert_eq!(h.identities_of(holder.customer).len(), 1);
}

#[test]
fn unlink_identity_keeps_history_and_frees_the_address() {
    let h = Harness::new();
    let ana = h.ingest(webchat("v-ana", "c1", "Hi"));
    let linked = link(&h, ana.customer, ChannelKind::Email, Address::email("ana@example.com"), Verification::Verified);
    let mail = h.ingest(email("ana@example.com", "<a1@ana.example>", "Hi by mail"));
    assert_eq!(mail.identity, linked.id);

    run(h.engine.unlink_identity(&h.tenant, linked.id)).unwrap();
    assert!(h.event_kinds().contains(&Event::IdentityUnlinked { customer: ana.customer, identity: linked.id }));
    assert_eq!(h.identities_of(ana.customer).len(), 1);
    assert_eq!(h.timeline(ana.customer).len(), 2, "past messages stay");

    // The address is free: an unverified mail from it no longer reaches Ana.
    let later = h.ingest(email("ana@example.com", "<a2@ana.example>", "Hi again"));
    assert_ne!(later.customer, ana.customer);
    assert_ne!(later.identity, linked.id);
    assert_eq!(later.resolution, Resolution::Created);
    let gone = run(h.engine.unlink_identity(&h.tenant, linked.id));
    assert!(matches!(gone, Err(Error::NotFound { .. })), "{gone:?}");
}

#[test]
fn move_identity_sends_future_messages_to_the_new_owner() {
    let h = Harness::new();
    let first = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "Hi, it's Ana"));
    let bruno = h.ingest(email("bruno@example.com", "<b1@bruno.example>", "Hi"));
    let moved = run(h.engine.move_identity(&h.tenant, first.identity, bruno.customer)).unwrap();
    assert_eq!(moved.customer, bruno.customer);
    assert!(h.event_kinds().contains(&Event::IdentityMoved {
        identity: first.identity,
        from: first.customer,
        to: bruno.customer
    }));

    let next = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.2", "Actually it's Bruno's phone"));
    assert_eq!(next.customer, bruno.customer);
    assert_eq!(next.identity, first.identity);
    assert_ne!(next.conversation, first.conversation, "Ana's conversation is not Bruno's");
    assert_eq!(h.conversation(first.conversation).customer, first.customer, "the past stays where it was");
    assert_eq!(bodies(&h.timeline(first.customer)), ["Hi, it's Ana"]);
    assert_eq!(h.timeline(bruno.customer).len(), 2);

    let before = h.dump();
    let same = run(h.engine.move_identity(&h.tenant, first.identity, bruno.customer)).unwrap();
    assert_eq!(same.customer, bruno.customer);
    assert_eq!(h.dump(), before, "moving to the owner changes nothing");
    let nowhere = run(h.engine.move_identity(&h.tenant, first.identity, unknown_customer()));
    assert!(matches!(nowhere, Err(Error::NotFound { .. })), "{nowhere:?}");
}

/// Ana holds her number through SMS and WhatsApp, both asserted by the network. Moving the
/// WhatsApp identity to Bruno would give two customers the same verified number: refused,
/// changing nothing (it used to end in a conflict that no retry could resolve).
#[test]
fn moving_an_identity_whose_address_the_owner_keeps_elsewhere_is_refused() {
    let h = Harness::new();
    let ana = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "Hi, it's Ana"));
    let by_sms = h.ingest(sms("sms-1", "+447700900123", "SM1", "Ana again, by SMS"));
    assert_eq!(by_sms.customer, ana.customer);
    let bruno = h.ingest(email("bruno@example.com", "<b1@bruno.example>", "Hi"));
    let before = h.dump();
    let refused = run(h.engine.move_identity(&h.tenant, ana.identity, bruno.customer));
    assert!(matches!(refused, Err(Error::Refused(_))), "{refused:?}");
    assert_eq!(h.dump(), before, "nothing changed");
    // Once the SMS identity is unlinked, the WhatsApp one may move.
    run(h.engine.unlink_identity(&h.tenant, by_sms.identity)).unwrap();
    let moved = run(h.engine.move_identity(&h.tenant, ana.identity, bruno.customer)).unwrap();
    assert_eq!(moved.customer, bruno.customer);
}

// =============================================================================================
// Merges
// =============================================================================================

#[test]
fn merge_preview_equals_merge_result() {
    let h = Harness::new();
    let a = h.ingest(webchat("v-a", "c1", "Hi").with_sender_name("Ana"));
    h.advance(Duration::minutes(1));
    let b = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "Hi"));
    run(h.engine.update_customer(
        &h.tenant,
        b.customer,
        CustomerPatch {
            external_id: Some(Some("user-b".into())),
            language: Some(Some(LanguageTag::parse("pt-BR").unwrap())),
            set_attributes: [("plan".to_owned(), "pro".into())].into(),
            ..Default::default()
        },
    ))
    .unwrap();

    let before = h.dump();
    let preview = run(h.engine.preview_merge(&h.tenant, a.customer, b.customer, SurvivorRule::First)).unwrap();
    assert_eq!(h.dump(), before, "a preview changes nothing");
    let plan = run(h.engine.merge_customers(&h.tenant, a.customer, b.customer, SurvivorRule::First)).unwrap();
    assert_eq!(preview, plan);
    assert_eq!(plan.identities_moved, vec![b.identity]);
    assert_eq!(plan.conversations_moved, vec![b.conversation]);
    assert_eq!(plan.result.name.as_deref(), Some("Ana"));
    assert_eq!(plan.result.external_id.as_deref(), Some("user-b"));
    assert_eq!(plan.result.language, Some(LanguageTag::parse("pt-BR").unwrap()));
    assert_eq!(plan.result.attributes["plan"], "pro");
    assert_eq!(h.customer(a.customer), plan.result);
    assert!(h.event_kinds().contains(&Event::CustomersMerged { survivor: a.customer, absorbed: b.customer }));
}

#[test]
fn the_first_customer_id_still_resolves_after_a_long_chain_of_merges() {
    let h = Harness::new();
    let first = h.ingest(email("c0@example.com", "<c0@example.com>", "Hi")).customer;
    let mut current = first;
    for i in 1..=40 {
        let next = h.ingest(email(&format!("c{i}@example.com"), &format!("<c{i}@example.com>"), "Hi")).customer;
        // The newer record survives each time, so the first id is ever more merges away.
        current = run(h.engine.merge_customers(&h.tenant, next, current, SurvivorRule::First)).unwrap().survivor;
        assert_eq!(current, next);
    }
    assert_eq!(h.customer(first).id, current);
    assert_eq!(h.identities_of(current).len(), 41);
}

#[test]
fn merge_is_refused_for_different_external_ids_and_changes_nothing() {
    let h = Harness::new();
    let a = h.ingest(in_app("user-a", "m1", "Hi"));
    let b = h.ingest(in_app("user-b", "m2", "Hi"));
    let before = h.dump();
    for rule in [SurvivorRule::First, SurvivorRule::Oldest, SurvivorRule::HasExternalId] {
        let r = run(h.engine.merge_customers(&h.tenant, a.customer, b.customer, rule));
        assert!(matches!(r, Err(Error::Refused(_))), "{r:?}");
    }
    let itself = run(h.engine.merge_customers(&h.tenant, a.customer, a.customer, SurvivorRule::First));
    assert!(matches!(itself, Err(Error::InvalidInput { .. })), "{itself:?}");
    let missing = run(h.engine.merge_customers(&h.tenant, a.customer, unknown_customer(), SurvivorRule::First));
    assert!(matches!(missing, Err(Error::NotFound { .. })), "{missing:?}");
    assert_eq!(h.dump(), before);
}

#[test]
fn survivor_rules_pick_first_oldest_or_the_one_with_the_external_id() {
    let h = Harness::new();
    let make = |n: usize| {
        h.advance(Duration::minutes(1));
        h.ingest(webchat(&format!("v{n}"), &format!("c{n}"), "Hi")).customer
    };
    // First: the first named, even if younger.
    let (older, younger) = (make(1), make(2));
    let older_created = h.customer(older).created_at;
    assert!(older_created < h.customer(younger).created_at);
    let plan = run(h.engine.merge_customers(&h.tenant, younger, older, SurvivorRule::First)).unwrap();
    assert_eq!((plan.survivor, plan.absorbed), (younger, older));
    assert_eq!(plan.result.created_at, older_created, "keeps the earliest creation time");

    // Oldest: whichever was created first.
    let (older, younger) = (make(3), make(4));
    let plan = run(h.engine.merge_customers(&h.tenant, younger, older, SurvivorRule::Oldest)).unwrap();
    assert_eq!((plan.survivor, plan.absorbed), (older, younger));

    // HasExternalId: the one the host knows.
    let (plain, known) = (make(5), make(6));
    run(h.engine.update_customer(
        &h.tenant,
        known,
        CustomerPatch { external_id: Some(Some("user-6".into())), ..Default::default() },
    ))
    .unwrap();
    let plan = run(h.engine.merge_customers(&h.tenant, plain, known, SurvivorRule::HasExternalId)).unwrap();
    assert_eq!((plan.survivor, plan.absorbed), (known, plain));
    // Without external ids on either side, the first named survives.
    let (c7, c8) = (make(7), make(8));
    let plan = run(h.engine.merge_customers(&h.tenant, c8, c7, SurvivorRule::HasExternalId)).unwrap();
    assert_eq!(plan.survivor, c8);
}

#[test]
fn absorbed_customer_resolves_to_the_survivor() {
    let h = Harness::new();
    let a = h.ingest(webchat("v-a", "c1", "Hi"));
    let b = h.ingest(webchat("v-b", "c2", "Hi"));
    let c = h.ingest(webchat("v-c", "c3", "Hi"));
    run(h.engine.merge_customers(&h.tenant, a.customer, b.customer, SurvivorRule::First)).unwrap();
    // A chain: a absorbs b, then c absorbs a; b resolves through a to c.
    run(h.engine.merge_customers(&h.tenant, c.customer, a.customer, SurvivorRule::First)).unwrap();
    for absorbed in [a.customer, b.customer] {
        assert_eq!(h.customer(absorbed).id, c.customer);
        assert_eq!(h.context(absorbed).customer.id, c.customer);
    }
    let view = h.context(b.customer);
    assert_eq!(view.timeline.len(), 3);
    assert_eq!(view.identities.len(), 3);
    let r = h.ingest(webchat("v-b", "c4", "Still me"));
    assert_eq!(r.customer, c.customer);
    assert_eq!(r.conversation, b.conversation);
}

// =============================================================================================
// Outbound
// =============================================================================================

#[test]
fn record_outbound_updates_response_bookkeeping() {
    let h = Harness::new();
    let start = h.now();
    let inbound = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "Hi"));
    let c = h.conversation(inbound.conversation);
    assert_eq!(c.waiting_since, Some(start));
    assert_eq!((c.first_response_at, c.last_agent.clone()), (None, None));
    assert!(inbound.needs_handler);

    h.advance(Duration::minutes(4));
    let first_reply = h.outbound(inbound.conversation, OutboundMessage::agent(agent("maria"), text("Hello!"))).unwrap();
    assert_eq!(first_reply.direction, Direction::Outbound);
    assert_eq!(first_reply.author, Author::Agent(agent("maria")));
    assert_eq!(first_reply.channel, ChannelKind::WhatsApp);
    assert_eq!(first_reply.endpoint, endpoint("wa-main"));
    assert_eq!(first_reply.delivery, DeliveryState::Pending);
    let c = h.conversation(inbound.conversation);
    assert_eq!(c.first_response_at, Some(start + Duration::minutes(4)));
    assert_eq!(c.waiting_since, None);
    assert_eq!(c.last_agent, Some(agent("maria")));
    assert_eq!(c.message_count, 2);
    assert_eq!(c.channels[0].outbound, 1);

    // The customer writes again: waiting again, first response unchanged.
    h.advance(Duration::minutes(10));
    h.ingest(whatsapp("wa-main", "+447700900123", "wamid.2", "Still there?"));
    let c = h.conversation(inbound.conversation);
    assert_eq!(c.waiting_since, Some(start + Duration::minutes(14)));
    h.advance(Duration::minutes(1));
    h.outbound(inbound.conversation, OutboundMessage::bot(agent("helper-bot"), text("Yes"))).unwrap();
    let c = h.conversation(inbound.conversation);
    assert_eq!(c.first_response_at, Some(start + Duration::minutes(4)));
    assert_eq!(c.waiting_since, None);
    assert_eq!(c.last_agent, Some(agent("helper-bot")));
    assert_eq!(h.context(inbound.customer).last_agent, Some(agent("helper-bot")));

    // A system notice is not a response.
    h.ingest(whatsapp("wa-main", "+447700900123", "wamid.3", "Hello?"));
    let notice = OutboundMessage {
        author: Author::System,
        content: Content::System { event: "queued".into(), detail: None },
        via: None,
        external_id: None,
        delivery: DeliveryState::Pending,
    };
    h.outbound(inbound.conversation, notice).unwrap();
    let c = h.conversation(inbound.conversation);
    assert!(c.waiting_since.is_some());
    assert_eq!(c.last_agent, Some(agent("helper-bot")));

    // The customer is never the author of an outbound message.
    let before = h.dump();
    let bad = OutboundMessage {
        author: Author::Customer(inbound.identity),
        content: text("spoof"),
        via: None,
        external_id: None,
        delivery: DeliveryState::Pending,
    };
    assert!(matches!(h.outbound(inbound.conversation, bad), Err(Error::InvalidInput { field: "author", .. })));
    assert_eq!(h.dump(), before);
}

#[test]
fn whatsapp_reply_window_is_24_hours_from_the_last_inbound() {
    let h = Harness::new();
    let start = h.now();
    let inbound = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "Hi"));
    let reply = || OutboundMessage::agent(agent("maria"), text("Hello"));

    h.clock.set(start + Duration::hours(23) + Duration::minutes(59));
    h.outbound(inbound.conversation, reply()).expect("inside the window");

    h.clock.set(start + Duration::hours(24) + Duration::minutes(1));
    let before = h.dump();
    let late = h.outbound(inbound.conversation, reply());
    assert!(matches!(late, Err(Error::ReplyWindowClosed { channel: ChannelKind::WhatsApp, .. })), "{late:?}");
    assert_eq!(h.dump(), before);
    let t = h.outbound(inbound.conversation, OutboundMessage::agent(agent("maria"), template("follow_up"))).unwrap();
    assert!(matches!(t.content, Content::Template { .. }));

    // Channels without a window (email) accept free text at any time.
    let mail = h.ingest(email("ana@example.com", "<a1@ana.example>", "Hi"));
    h.advance(Duration::days(30));
    h.outbound(mail.conversation, reply()).expect("email has no reply window");
}

#[test]
fn reply_window_is_per_endpoint_and_identity_not_per_conversation() {
    // Chatwoot measures the window per conversation; a new conversation or a merge must neither
    // reset nor lose it.
    let h = Harness::with_threading(policy(ReopenPolicy::AlwaysNew));
    let start = h.now();
    let wa = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "Hi"));
    let mail = h.ingest(email("ana@example.com", "<m1@ana.example>", "Hi").with_verification(Verification::Verified));
    run(h.engine.merge_customers(&h.tenant, mail.customer, wa.customer, SurvivorRule::First)).unwrap();

    // From the email conversation, through her WhatsApp identity: the window she opened elsewhere.
    h.clock.set(start + Duration::hours(23));
    let via_wa =
        || OutboundMessage::agent(agent("maria"), text("Replying on WhatsApp")).via(endpoint("wa-main"), wa.identity);
    let m = h.outbound(mail.conversation, via_wa()).unwrap();
    assert_eq!(m.channel, ChannelKind::WhatsApp);
    // An outbound message never extends the window.
    h.clock.set(start + Duration::hours(24) + Duration::minutes(1));
    let late = h.outbound(mail.conversation, via_wa());
    assert!(matches!(late, Err(Error::ReplyWindowClosed { .. })), "{late:?}");
    let late = h.outbound(wa.conversation, OutboundMessage::agent(agent("maria"), text("Hi")));
    assert!(matches!(late, Err(Error::ReplyWindowClosed { .. })), "{late:?}");
}

#[test]
fn opted_out_channel_is_refused() {
    let h = Harness::new();
    let inbound = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "STOP"));
    run(h.engine.update_customer(
        &h.tenant,
        inbound.customer,
        CustomerPatch {
            consent: vec![(
                ChannelKind::WhatsApp,
                Consent { state: ConsentState::OptedOut, at: h.now(), source: Some("keyword STOP".into()) },
            )],
            ..Default::default()
        },
    ))
    .unwrap();
    let before = h.dump();
    for content in [text("Sorry to see you go"), template("win_back")] {
        let r = h.outbound(inbound.conversation, OutboundMessage::agent(agent("maria"), content));
        assert!(matches!(r, Err(Error::Refused(_))), "{r:?}");
    }
    assert_eq!(h.dump(), before);

    // Another channel the customer did not opt out of still works.
    let mail_identity =
        link(&h, inbound.customer, ChannelKind::Email, Address::email("ana@example.com"), Verification::Verified);
    h.outbound(
        inbound.conversation,
        OutboundMessage::agent(agent("maria"), text("Confirming by email"))
            .via(endpoint("support-inbox"), mail_identity.id),
    )
    .expect("email is not opted out");
}

/// A consent is kept per channel name: a custom channel spelled like a built-in one (or blank)
/// is refused, as it is on ingest, and nothing changes. Stored in a database it would read back
/// as the built-in channel: an opt-out of `Custom("sms")` would become an SMS opt-out.
#[test]
fn a_consent_for_a_custom_channel_named_like_a_built_in_one_is_refused() {
    let h = Harness::new();
    let inbound = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "Hi"));
    let before = h.dump();
    for name in ["sms", "", "two words"] {
        let r = run(h.engine.update_customer(
            &h.tenant,
            inbound.customer,
            CustomerPatch {
                consent: vec![(
                    ChannelKind::Custom(name.into()),
                    Consent { state: ConsentState::OptedOut, at: h.now(), source: None },
                )],
                ..Default::default()
            },
        ));
        assert!(matches!(&r, Err(Error::InvalidInput { field, .. }) if *field == "channel"), "{name:?}: {r:?}");
    }
    assert_eq!(h.dump(), before);
    assert!(h.customer(inbound.customer).may_contact(&ChannelKind::Sms));
}

/// A consent's source is a short label, checked like every other profile string: a huge or
/// control-character source is refused and nothing changes.
#[test]
fn a_consent_source_is_a_short_label() {
    let h = Harness::new();
    let inbound = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "Hi"));
    let before = h.dump();
    let consent = |source: String| CustomerPatch {
        consent: vec![(ChannelKind::Sms, Consent { state: ConsentState::OptedIn, at: h.now(), source: Some(source) })],
        ..Default::default()
    };
    for source in ["\u{0}".repeat(1_000_000), "x".repeat(257), " ".into()] {
        let r = run(h.engine.update_customer(&h.tenant, inbound.customer, consent(source)));
        assert!(matches!(&r, Err(Error::InvalidInput { field, .. }) if *field == "consent.source"), "{r:?}");
    }
    assert_eq!(h.dump(), before);
    run(h.engine.update_customer(&h.tenant, inbound.customer, consent("checkout form".into()))).expect("a label");
}

/// Two customers each within the attribute limit merge into one within it: what would take
/// the survivor past it is handed back with the discarded attributes, and the survivor stays
/// editable.
#[test]
fn a_merge_keeps_the_survivor_within_the_attribute_limit() {
    let h = Harness::new();
    let a = h.ingest(whatsapp("wa-main", "+5511987654321", "wamid.1", "Hi"));
    let b = h.ingest(email("ana@example.com", "<a1@ana.example>", "Hi"));
    for (c, p) in [(a.customer, "a"), (b.customer, "b")] {
        let set_attributes: Attributes =
            (0..15).map(|i| (format!("{p}{i:02}"), serde_json::Value::String("x".repeat(900)))).collect();
        run(h.engine.update_customer(&h.tenant, c, CustomerPatch { set_attributes, ..Default::default() })).unwrap();
    }
    let plan = run(h.engine.merge_customers(&h.tenant, a.customer, b.customer, SurvivorRule::First)).unwrap();
    let kept = &plan.result.attributes;
    assert!(serde_json::to_vec(kept).unwrap().len() <= 16 * 1024);
    assert!((0..15).all(|i| kept.contains_key(&format!("a{i:02}"))), "the survivor's own attributes stay");
    // Every absorbed attribute is either kept or handed back, the last keys first.
    assert_eq!(kept.len() - 15 + plan.discarded_attributes.len(), 15);
    assert!(plan.discarded_attributes.contains_key("b14") && !plan.discarded_attributes.is_empty());
    let renamed = run(h.engine.update_customer(
        &h.tenant,
        a.customer,
        CustomerPatch { name: Some(Some("Ana".into())), ..Default::default() },
    ));
    assert!(renamed.is_ok(), "{renamed:?}");
}

#[test]
fn outbound_via_someone_elses_identity_is_not_found() {
    let h = Harness::new();
    let ana = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "Hi"));
    let bob = h.ingest(whatsapp("wa-main", "+447700900999", "wamid.2", "Hi"));
    let before = h.dump();
    let r = h.outbound(
        ana.conversation,
        OutboundMessage::agent(agent("maria"), text("Hi")).via(endpoint("wa-main"), bob.identity),
    );
    assert!(matches!(r, Err(Error::NotFound { .. })), "{r:?}");
    assert_eq!(h.dump(), before);
}

// =============================================================================================
// Delivery receipts
// =============================================================================================

#[test]
fn delivery_state_only_moves_forward() {
    let h = Harness::new();
    let inbound = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.in", "Hi"));
    let send = |id: &str| {
        h.outbound(inbound.conversation, OutboundMessage::agent(agent("maria"), text("Hello")).with_external_id(id))
            .unwrap()
    };
    let receipt = |id: &str, state: DeliveryState| {
        run(h.engine.update_delivery(&h.tenant, &ChannelKind::WhatsApp, id, state)).unwrap().delivery
    };
    let failed = || DeliveryState::Failed { code: Some("131047".into()), reason: "re-engagement required".into() };
    let delivery_events = || h.event_kinds().iter().filter(|e| matches!(e, Event::DeliveryUpdated { .. })).count();

    send("wamid.a");
    assert_eq!(receipt("wamid.a", DeliveryState::Sent), DeliveryState::Sent);
    assert_eq!(receipt("wamid.a", DeliveryState::Delivered), DeliveryState::Delivered);
    let events = delivery_events();
    let before = h.dump();
    assert_eq!(receipt("wamid.a", DeliveryState::Delivered), DeliveryState::Delivered, "duplicate");
    assert_eq!(receipt("wamid.a", DeliveryState::Sent), DeliveryState::Delivered, "out of order");
    assert_eq!(receipt("wamid.a", DeliveryState::Pending), DeliveryState::Delivered);
    assert_eq!(h.dump(), before, "ignored receipts change nothing");
    assert_eq!(delivery_events(), events);
    assert_eq!(receipt("wamid.a", DeliveryState::Read), DeliveryState::Read);
    let before = h.dump();
    assert_eq!(receipt("wamid.a", failed()), DeliveryState::Read, "nothing after read");
    assert_eq!(receipt("wamid.a", DeliveryState::Delivered), DeliveryState::Read);
    assert_eq!(h.dump(), before);

    // Failed after sent is accepted, and final but for a read (a read message was delivered,
    // whichever callback came first).
    send("wamid.b");
    assert_eq!(receipt("wamid.b", DeliveryState::Sent), DeliveryState::Sent);
    assert_eq!(receipt("wamid.b", failed()), failed());
    assert_eq!(receipt("wamid.b", DeliveryState::Delivered), failed());
    let other_failure = DeliveryState::Failed { code: None, reason: "later failure".into() };
    assert_eq!(receipt("wamid.b", other_failure), failed(), "the first failure is kept");
    assert_eq!(receipt("wamid.b", DeliveryState::Read), DeliveryState::Read);

    // Read straight after sent (the delivered receipt got lost).
    send("wamid.c");
    assert_eq!(receipt("wamid.c", DeliveryState::Sent), DeliveryState::Sent);
    assert_eq!(receipt("wamid.c", DeliveryState::Read), DeliveryState::Read);

    let unknown = run(h.engine.update_delivery(&h.tenant, &ChannelKind::WhatsApp, "wamid.nope", DeliveryState::Read));
    assert!(matches!(unknown, Err(Error::NotFound { .. })), "{unknown:?}");
    let wrong_channel = run(h.engine.update_delivery(&h.tenant, &ChannelKind::Sms, "wamid.a", DeliveryState::Read));
    assert!(matches!(wrong_channel, Err(Error::NotFound { .. })), "{wrong_channel:?}");

    // Receipts are about what we sent: one naming the customer's own message (a forged bounce
    // quoting its id, say) is not found and changes nothing.
    let before = h.dump();
    let failed_inbound = run(h.engine.update_delivery(&h.tenant, &ChannelKind::WhatsApp, "wamid.in", failed()));
    assert!(matches!(failed_inbound, Err(Error::NotFound { .. })), "{failed_inbound:?}");
    assert_eq!(h.dump(), before);
}

// =============================================================================================
// Events
// =============================================================================================

#[test]
fn event_stream_yields_commit_order_with_per_conversation_order() {
    let h = Harness::new();
    let a = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "A1"));
    let b = h.ingest(email("bob@example.com", "<b1@bob.example>", "B1"));
    h.outbound(a.conversation, OutboundMessage::agent(agent("maria"), text("A2")).with_external_id("wamid.o1"))
        .unwrap();
    h.ingest(email_reply("bob@example.com", "<b2@bob.example>", "<b1@bob.example>", &[], "B2"));
    h.ingest(whatsapp("wa-main", "+447700900123", "wamid.2", "A3"));
    run(h.engine.update_delivery(&h.tenant, &ChannelKind::WhatsApp, "wamid.o1", DeliveryState::Delivered)).unwrap();
    h.set_status(b.conversation, ConversationStatus::Resolved);

    let streamed = h.streamed_events();
    assert_eq!(streamed, h.events(), "the stream yields the outbox");
    let seqs: Vec<u64> = streamed.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=streamed.len() as u64).collect::<Vec<_>>());
    assert_eq!(streamed.iter().map(|e| e.id).collect::<HashSet<_>>().len(), streamed.len(), "unique event ids");

    for (conversation, expected) in [
        (a.conversation, vec!["opened", "received", "recorded", "received", "delivery"]),
        (b.conversation, vec!["opened", "received", "received", "status"]),
    ] {
        let kinds: Vec<&str> = streamed
            .iter()
            .filter(|e| e.event.conversation() == Some(conversation))
            .map(|e| match &e.event {
                Event::ConversationOpened { .. } => "opened",
                Event::MessageReceived { .. } => "received",
                Event::MessageRecorded { .. } => "recorded",
                Event::DeliveryUpdated { .. } => "delivery",
                Event::ConversationStatusChanged { .. } => "status",
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(kinds, expected);
        let message_ids: Vec<MessageId> = streamed
            .iter()
            .filter_map(|e| match &e.event {
                Event::MessageReceived { conversation: c, message, .. }
                | Event::MessageRecorded { conversation: c, message, .. }
                    if *c == conversation =>
                {
                    Some(*message)
                }
                _ => None,
            })
            .collect();
        let mut sorted = message_ids.clone();
        sorted.sort();
        assert_eq!(message_ids, sorted, "messages of one conversation in the order they happened");
    }
    // The customer exists before anything refers to it.
    assert_eq!(streamed[0].event, Event::CustomerCreated { customer: a.customer });

    // Resuming after a position yields exactly the rest.
    let rest: Vec<_> = run(h.engine.subscribe(&h.tenant, 5).take(streamed.len() - 5).map(|e| e.unwrap()).collect());
    assert_eq!(rest, streamed[5..].to_vec());
}

/// A subscriber that goes away (an SSE client disconnects) while its stream waits for a
/// commit leaves nothing behind: the engine no longer holds its task.
#[test]
fn dropped_subscriptions_release_their_tasks() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Wake, Waker};
    struct Task(AtomicUsize);
    impl Wake for Task {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let h = Harness::new();
    let tasks: Vec<Arc<Task>> = (0..100).map(|_| Arc::new(Task(AtomicUsize::new(0)))).collect();
    for task in &tasks {
        let waker = Waker::from(task.clone());
        let mut stream = h.engine.subscribe(&h.tenant, 0);
        assert!(stream.poll_next_unpin(&mut Context::from_waker(&waker)).is_pending());
        drop(stream);
    }
    let held = tasks.iter().filter(|t| Arc::strong_count(t) > 1).count();
    assert_eq!(held, 0, "the engine still holds the tasks of {held} dropped subscriptions");
    // A stream still waiting is woken by the next commit, once, with the waker it last gave.
    let live = Arc::new(Task(AtomicUsize::new(0)));
    let mut stream = h.engine.subscribe(&h.tenant, 0);
    for _ in 0..3 {
        assert!(stream.poll_next_unpin(&mut Context::from_waker(&Waker::from(live.clone()))).is_pending());
    }
    h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "Hi"));
    assert_eq!(live.0.load(Ordering::SeqCst), 1);
}

#[test]
fn event_stream_polled_before_a_commit_wakes_after_it() {
    let h = Harness::new();
    let mut stream = h.engine.subscribe(&h.tenant, 0);
    let (polled_tx, polled_rx) = std::sync::mpsc::channel::<()>();
    let (engine, tenant) = (h.engine.clone(), h.tenant.clone());
    let writer = std::thread::spawn(move || {
        polled_rx.recv().expect("the reader polled");
        run(engine.ingest(&tenant, whatsapp("wa-main", "+447700900123", "wamid.1", "Hi")))
    });

    // Poll until the stream has nothing and is waiting; only then let the writer commit.
    let mut signalled = false;
    let first = run(futures::future::poll_fn(|cx| {
        let poll = stream.poll_next_unpin(cx);
        if poll.is_pending() && !signalled {
            signalled = true;
            polled_tx.send(()).unwrap();
        }
        poll
    }))
    .expect("the stream never ends")
    .expect("no store error");
    assert!(signalled, "the stream was pending before the commit");
    let outcome = writer.join().unwrap().unwrap();
    assert_eq!(first.seq, 1);
    assert_eq!(first.event, Event::CustomerCreated { customer: outcome.customer });

    // The rest of that commit follows in order.
    let rest: Vec<Event> = run(stream.by_ref().take(3).map(|e| e.unwrap().event).collect());
    assert!(matches!(rest[0], Event::IdentityLinked { identity, .. } if identity == outcome.identity));
    assert!(matches!(rest[1], Event::ConversationOpened { conversation, .. } if conversation == outcome.conversation));
    assert!(matches!(rest[2], Event::MessageReceived { message, .. } if message == outcome.message));
    assert_eq!(stream.position(), 4);
}

#[test]
fn event_stream_is_per_tenant() {
    let h = Harness::new();
    let other = tenant("globex");
    run(h.engine.ingest(&other, whatsapp("wa-main", "+447700900123", "wamid.1", "Hi"))).unwrap();
    h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "Hi"));
    let events = h.streamed_events();
    assert_eq!(events.len(), 4);
    assert!(events.iter().all(|e| e.tenant == h.tenant));
    assert_eq!(events[0].seq, 1, "each tenant numbers its own outbox");
}

// =============================================================================================
// Context view
// =============================================================================================

#[test]
fn context_view_shows_identities_windows_open_work_channels_counts_and_last_agent() {
    let h = Harness::new();
    let start = h.now();
    let wa = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "WA 1"));
    let customer = wa.customer;
    let mail_identity =
        link(&h, customer, ChannelKind::Email, Address::email("ana@example.com"), Verification::Verified);
    h.advance(Duration::hours(1));
    h.outbound(wa.conversation, OutboundMessage::agent(agent("maria"), text("WA 2"))).unwrap();
    h.advance(Duration::hours(1));
    let mail = h.ingest(email("ana@example.com", "<m1@ana.example>", "Mail 1"));
    assert_eq!(mail.identity, mail_identity.id);
    h.advance(Duration::hours(1));
    h.outbound(mail.conversation, OutboundMessage::agent(agent("joao"), text("Mail 2"))).unwrap();
    h.advance(Duration::hours(1));
    let old = h.ingest(email("ana@example.com", "<m2@ana.example>", "Old topic"));
    h.set_status(old.conversation, ConversationStatus::Resolved);
    // Another customer's messages never show up.
    h.ingest(whatsapp("wa-main", "+447700900999", "wamid.x", "Someone else"));

    let view = h.context(customer);
    assert_eq!(view.customer.id, customer);
    assert_eq!(view.focus, None);

    // Identities with reply-window state.
    assert_eq!(view.identities.len(), 2);
    let wa_ctx = view.identities.iter().find(|i| i.identity.channel == ChannelKind::WhatsApp).unwrap();
    assert_eq!(wa_ctx.reply_windows.len(), 1);
    assert_eq!(wa_ctx.reply_windows[0].endpoint, endpoint("wa-main"));
    assert_eq!(wa_ctx.reply_windows[0].last_inbound_at, Some(start));
    assert_eq!(wa_ctx.reply_windows[0].closes_at, Some(start + Duration::hours(24)));
    assert!(wa_ctx.reply_windows[0].open);
    let mail_ctx = view.identities.iter().find(|i| i.identity.channel == ChannelKind::Email).unwrap();
    assert_eq!(mail_ctx.reply_windows[0].closes_at, None);
    assert!(mail_ctx.reply_windows[0].open);

    // Open work, most recently active first; the resolved one is past.
    assert_eq!(view.open_conversations.iter().map(|c| c.id).collect::<Vec<_>>(), [mail.conversation, wa.conversation]);
    assert_eq!(view.past_conversations.iter().map(|c| c.id).collect::<Vec<_>>(), [old.conversation]);

    // Timeline: newest first, across channels.
    assert_eq!(bodies(&view.timeline), ["Old topic", "Mail 2", "Mail 1", "WA 2", "WA 1"]);
    assert_eq!(view.next_page, None);
    assert_eq!(view.channels_used, [ChannelKind::Email, ChannelKind::WhatsApp]);
    assert_eq!(view.last_agent, Some(agent("joao")));
    assert_eq!(view.counts.conversations, 3);
    assert_eq!(view.counts.open_conversations, 2);
    assert_eq!(view.counts.inbound, 3);
    assert_eq!(view.counts.outbound, 2);
    assert_eq!(view.counts.per_channel[&ChannelKind::Email], 3);
    assert_eq!(view.counts.per_channel[&ChannelKind::WhatsApp], 2);

    // The window state moves with the clock.
    h.clock.set(start + Duration::hours(25));
    let later = h.context(customer);
    let wa_ctx = later.identities.iter().find(|i| i.identity.channel == ChannelKind::WhatsApp).unwrap();
    assert!(!wa_ctx.reply_windows[0].open);

    // A conversation's context is the same view with that conversation in focus.
    let focused = run(h.engine.conversation_context(&h.tenant, wa.conversation, TimelinePage::default())).unwrap();
    assert_eq!(focused.focus.as_ref().map(|c| c.id), Some(wa.conversation));
    assert_eq!(focused.customer.id, customer);
    assert_eq!(focused.timeline, later.timeline);

    for limit in [0, 501] {
        let r = run(h.engine.customer_context(&h.tenant, customer, TimelinePage { before: None, limit }));
        assert!(matches!(r, Err(Error::InvalidInput { .. })), "{limit}: {r:?}");
    }
}

#[test]
fn timeline_pages_return_every_message_exactly_once() {
    let h = Harness::new();
    let wa = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.0", "m0"));
    link(&h, wa.customer, ChannelKind::Email, Address::email("ana@example.com"), Verification::Verified);
    let mut expected = vec!["m0".to_owned()];
    for i in 1..23 {
        if i % 3 == 0 {
            h.ingest(email("ana@example.com", &format!("<m{i}@ana.example>"), &format!("m{i}")));
        } else if i % 3 == 1 {
            h.ingest(whatsapp("wa-main", "+447700900123", &format!("wamid.{i}"), &format!("m{i}")));
        } else {
            h.outbound(wa.conversation, OutboundMessage::agent(agent("maria"), text(&format!("m{i}")))).unwrap();
        }
        // Another customer interleaves.
        h.ingest(sms("sms-main", "+447700900999", &format!("SM{i}"), "noise"));
        expected.push(format!("m{i}"));
    }
    expected.reverse();

    for limit in [1, 4, 7, 23, 50] {
        let mut seen = Vec::new();
        let mut before = None;
        let mut pages = 0;
        loop {
            let view = run(h.engine.customer_context(&h.tenant, wa.customer, TimelinePage { before, limit })).unwrap();
            assert!(view.timeline.len() <= limit);
            pages += 1;
            seen.extend(view.timeline);
            match view.next_page {
                Some(cursor) => {
                    assert_eq!(Some(cursor), seen.last().map(|m| m.id));
                    before = Some(cursor);
                }
                None => break,
            }
            assert!(pages <= 23, "paging terminates");
        }
        assert_eq!(bodies(&seen), expected, "limit {limit}");
        let ids: Vec<MessageId> = seen.iter().map(|m| m.id).collect();
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
        assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first");
        assert_eq!(pages, 23usize.div_ceil(limit).max(1));
    }
}

// =============================================================================================
// Bad input
// =============================================================================================

/// Ingests `msg`, expecting an error that `check` accepts, and no change to the store.
fn rejected(h: &Harness, msg: InboundMessage, check: impl Fn(&Error) -> bool) {
    let before = h.dump();
    let what = format!("{msg:?}");
    match h.try_ingest(msg) {
        Ok(o) => panic!("accepted: {what} → {o:?}"),
        Err(e) => assert!(check(&e), "wrong error {e:?} for {what}"),
    }
    assert_eq!(h.dump(), before, "the store changed for {what}");
}

fn invalid_field(field: &'static str) -> impl Fn(&Error) -> bool {
    move |e| matches!(e, Error::InvalidInput { field: f, .. } if *f == field)
}

fn not_found<T>(r: touchpoint::Result<T>) -> bool {
    matches!(r, Err(Error::NotFound { .. }))
}

fn conversation_not_found<T>(r: touchpoint::Result<T>) -> bool {
    matches!(r, Err(Error::NotFound { entity: "conversation", .. }))
}

fn seeded() -> (Harness, touchpoint::IngestOutcome) {
    let h = Harness::new();
    let o = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.seed", "Hi"));
    (h, o)
}

#[test]
fn empty_body_is_invalid_input_and_changes_nothing() {
    let (h, _) = seeded();
    for body in ["", "   ", "\n\t"] {
        rejected(&h, whatsapp("wa-main", "+447700900123", "wamid.e", body), invalid_field("content.body"));
    }
    let empty_choice = Content::Choices { body: "Pick".into(), options: vec![], selected: None };
    let mut msg = whatsapp("wa-main", "+447700900123", "wamid.e", "x");
    msg.content = empty_choice;
    rejected(&h, msg, invalid_field("content.options"));
}

#[test]
fn oversize_body_is_invalid_input_and_changes_nothing() {
    let (h, seed) = seeded();
    rejected(
        &h,
        whatsapp("wa-main", "+447700900123", "wamid.big", &"x".repeat(64 * 1024 + 1)),
        invalid_field("content.body"),
    );
    // Multi-byte text is measured in bytes.
    rejected(
        &h,
        whatsapp("wa-main", "+447700900123", "wamid.big2", &"é".repeat(32 * 1024 + 1)),
        invalid_field("content.body"),
    );
    // Exactly at the limit is fine.
    let ok = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.max", &"x".repeat(64 * 1024)));
    assert_eq!(ok.conversation, seed.conversation);

    // Outbound is held to the same limit.
    let before = h.dump();
    let big = h.outbound(seed.conversation, OutboundMessage::agent(agent("maria"), text(&"y".repeat(64 * 1024 + 1))));
    assert!(matches!(big, Err(Error::InvalidInput { field: "content.body", .. })), "{big:?}");
    assert_eq!(h.dump(), before);
}

#[test]
fn bare_international_digits_keep_their_country_with_a_default_phone_region() {
    let h = Harness::with_config(touchpoint::EngineConfig {
        default_phone_region: Some("GB".into()),
        ..touchpoint::EngineConfig::default()
    });
    let by_sms = h.ingest(sms("sms-main", "+5511987654321", "SM1", "Oi"));
    // WhatsApp sends the same number as bare digits: it is the same customer and address.
    let by_wa = h.ingest(whatsapp("wa-main", "5511987654321", "wamid.1", "Oi de novo"));
    assert_eq!(by_wa.customer, by_sms.customer);
    let identity = h.identities_of(by_wa.customer).into_iter().find(|i| i.id == by_wa.identity).unwrap();
    assert_eq!(identity.address.value, "+5511987654321");
    let us = h.ingest(whatsapp("wa-main", "14155550123", "wamid.2", "Hi"));
    assert_eq!(h.identities_of(us.customer)[0].address.value, "+14155550123");
    // A valid national number still reads as one.
    let uk = h.ingest(sms("sms-main", "020 7946 0958", "SM2", "Hello"));
    assert_eq!(h.identities_of(uk.customer)[0].address.value, "+442079460958");
    // Valid in neither reading (a range newer than the metadata, say): kept as the national
    // reading, never read as another country's number.
    let typed = h.ingest(sms("sms-main", "7946 0958", "SM3", "Hi"));
    assert_eq!(h.identities_of(typed.customer)[0].address.value, "+4479460958");
}

#[test]
fn malformed_phone_and_email_are_invalid_address_and_change_nothing() {
    let (h, _) = seeded();
    let phone_error = |e: &Error| matches!(e, Error::InvalidAddress { kind: "phone", .. });
    let email_error = |e: &Error| matches!(e, Error::InvalidAddress { kind: "email", .. });
    for phone in ["", "call me", "+1", "+12345678901234567", "☎ 555 0123"] {
        rejected(&h, whatsapp("wa-main", phone, "wamid.bad", "Hi"), phone_error);
    }
    for address in ["", "ana", "ana@", "@example.com", "a@b@c", "Ana <ana@example.com>", "ana@exa mple.com"] {
        rejected(&h, email(address, "<bad@x>", "Hi"), email_error);
    }
    // In claims too.
    rejected(
        &h,
        webchat("v1", "c1", "Hi").with_claim(CustomerKey::Phone("not a phone".into()), Verification::CarrierAsserted),
        phone_error,
    );
    rejected(
        &h,
        webchat("v1", "c1", "Hi").with_claim(CustomerKey::Email("nope".into()), Verification::Verified),
        email_error,
    );
    // And a platform id.
    rejected(&h, webchat("  ", "c1", "Hi"), |e| matches!(e, Error::InvalidAddress { .. }));
}

#[test]
fn oversize_hints_and_names_are_invalid_input_and_change_nothing() {
    let (h, _) = seeded();
    let many: Vec<String> = (0..101).map(|i| format!("<r{i}@x.example>")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    rejected(&h, email_reply("ana@example.com", "<m@x>", "<r@x>", &refs, "Hi"), invalid_field("thread.references"));
    rejected(
        &h,
        email("ana@example.com", "<m@x>", "Hi")
            .with_thread(ThreadHints { subject: Some("s".repeat(999)), ..ThreadHints::default() }),
        invalid_field("thread"),
    );
    rejected(&h, webchat("v1", "c1", "Hi").with_sender_name("n".repeat(257)), invalid_field("sender_name"));
    let mut too_many_claims = webchat("v1", "c1", "Hi");
    for i in 0..17 {
        too_many_claims =
            too_many_claims.with_claim(CustomerKey::Email(format!("a{i}@x.example")), Verification::Unverified);
    }
    rejected(&h, too_many_claims, invalid_field("claims"));
}

#[test]
fn bad_external_id_is_invalid_input_and_changes_nothing() {
    let (h, seed) = seeded();
    for id in ["".to_owned(), "   ".to_owned(), "wamid\n1".to_owned(), "x".repeat(513)] {
        rejected(&h, whatsapp("wa-main", "+447700900123", &id, "Hi"), invalid_field("external_id"));
    }
    for claim in ["", "  ", "user\u{0}1"] {
        rejected(
            &h,
            webchat("v1", "c1", "Hi").with_claim(CustomerKey::ExternalId(claim.into()), Verification::Verified),
            invalid_field("external_id"),
        );
    }
    let before = h.dump();
    let r = run(h.engine.update_customer(
        &h.tenant,
        seed.customer,
        CustomerPatch { external_id: Some(Some(" ".into())), ..Default::default() },
    ));
    assert!(matches!(r, Err(Error::InvalidInput { field: "external_id", .. })), "{r:?}");
    let r =
        h.outbound(seed.conversation, OutboundMessage::agent(agent("maria"), text("Hi")).with_external_id("bad\nid"));
    assert!(matches!(r, Err(Error::InvalidInput { field: "external_id", .. })), "{r:?}");
    assert_eq!(h.dump(), before);
}

#[test]
fn an_email_message_id_of_only_angle_brackets_is_invalid_input() {
    let (h, _) = seeded();
    h.ingest(email("alice@example.com", "<a1@example.com>", "from alice"));
    // Without its brackets `<>` names no message: taken as a dedupe key it would make Bob's
    // mail a duplicate of another one and drop it.
    for id in ["<>", "<<>>", "< >", "<", ">"] {
        rejected(&h, email("bob@example.com", id, "from bob"), invalid_field("external_id"));
    }
}

#[test]
fn a_custom_channel_named_like_a_built_in_one_is_invalid_input() {
    let (h, seed) = seeded();
    for name in ["sms", "email", "whatsapp"] {
        let msg = InboundMessage::new(
            ChannelKind::Custom(name.into()),
            endpoint("app"),
            Address::platform("app", "u1"),
            "A1",
            text("one"),
        );
        rejected(&h, msg, invalid_field("channel"));
    }
    let before = h.dump();
    let r = run(h.engine.link_identity(
        &h.tenant,
        seed.customer,
        ChannelKind::Custom("sms".into()),
        Address::phone("+447700900555"),
        Verification::Verified,
    ));
    assert!(matches!(r, Err(Error::InvalidInput { field: "channel", .. })), "{r:?}");
    assert_eq!(h.dump(), before);
    // A name of the host's own is fine.
    let own = InboundMessage::new(
        ChannelKind::Custom("kiosk".into()),
        endpoint("app"),
        Address::platform("app", "u1"),
        "K1",
        text("one"),
    );
    h.ingest(own);
}

#[test]
fn an_inbound_id_taken_by_an_outbound_message_is_refused_not_retried() {
    let (h, seed) = seeded();
    h.outbound(seed.conversation, OutboundMessage::agent(agent("maria"), text("Hi")).with_external_id("wamid.out"))
        .unwrap();
    let before = h.dump();
    let r = h.try_ingest(whatsapp("wa-main", "+447700900123", "wamid.out", "Hi"));
    match r {
        Err(e @ Error::Refused(_)) => assert!(!e.is_temporary(), "retrying cannot help: {e:?}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(h.dump(), before);
}

#[test]
fn unknown_conversation_id_is_not_found_and_changes_nothing() {
    let (h, _) = seeded();
    let before = h.dump();
    let id = unknown_conversation();
    assert!(conversation_not_found(h.outbound(id, OutboundMessage::agent(agent("maria"), text("Hi")))));
    assert!(conversation_not_found(run(h.engine.update_conversation(
        &h.tenant,
        id,
        ConversationPatch { status: Some(ConversationStatus::Resolved), ..Default::default() }
    ))));
    assert!(conversation_not_found(run(h.engine.conversation_context(&h.tenant, id, TimelinePage::default()))));
    assert!(conversation_not_found(run(h.engine.conversation(&h.tenant, id))));
    let customer = run(h.engine.customer(&h.tenant, unknown_customer()));
    assert!(matches!(customer, Err(Error::NotFound { entity: "customer", .. })), "{customer:?}");
    assert_eq!(h.dump(), before);
}

#[test]
fn wrong_tenants_conversation_id_is_not_found_and_changes_nothing() {
    let (h, seed) = seeded();
    h.outbound(seed.conversation, OutboundMessage::agent(agent("maria"), text("Hi")).with_external_id("wamid.out"))
        .unwrap();
    let other = tenant("globex");
    run(h.engine.ingest(&other, whatsapp("wa-main", "+447700900999", "wamid.g", "Hi"))).unwrap();
    let before = h.dump();

    let c = seed.conversation;
    assert!(not_found(run(h.engine.record_outbound(
        &other,
        c,
        OutboundMessage::agent(agent("maria"), text("Hi")).via(endpoint("wa-main"), seed.identity)
    ))));
    assert!(not_found(run(h.engine.update_conversation(
        &other,
        c,
        ConversationPatch { status: Some(ConversationStatus::Closed), ..Default::default() }
    ))));
    assert!(not_found(run(h.engine.conversation_context(&other, c, TimelinePage::default()))));
    assert!(not_found(run(h.engine.conversation(&other, c))));
    assert!(not_found(run(h.engine.message(&other, seed.message))));
    assert!(not_found(run(h.engine.update_delivery(&other, &ChannelKind::WhatsApp, "wamid.out", DeliveryState::Read))));
    assert!(not_found(run(h.engine.update_customer(
        &other,
        seed.customer,
        CustomerPatch { blocked: Some(true), ..Default::default() }
    ))));
    assert!(not_found(run(h.engine.link_identity(
        &other,
        seed.customer,
        ChannelKind::Email,
        Address::email("x@example.com"),
        Verification::Verified
    ))));
    assert!(not_found(run(h.engine.move_identity(&other, seed.identity, seed.customer))));
    assert!(not_found(run(h.engine.unlink_identity(&other, seed.identity))));
    assert!(not_found(run(h.engine.erase_customer(&other, seed.customer))));
    assert_eq!(h.dump(), before);
}
