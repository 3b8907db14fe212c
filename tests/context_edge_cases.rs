//! Edge cases of the cross-channel context model: the last agent across conversations, reply
//! windows with a human-agent extension in the view, events for every conversation change, and
//! message ids from the future.

mod common;
use chrono::Duration;
use common::*;
use std::sync::Arc;
use touchpoint::channel::{Capabilities, StubChannel};
use touchpoint::clock::ManualClock;
use touchpoint::context::TimelinePage;
use touchpoint::model::*;
use touchpoint::store::InMemoryStore;
use touchpoint::{ConversationPatch, Engine, OutboundMessage, SendRequest};

/// `ContextView::last_agent` is "the agent who last wrote to the customer". A host shows it as
/// "last handled by" and uses it for sticky routing. It must be the author of the latest agent
/// message, not the last agent of whichever conversation the *customer* touched last.
#[test]
fn last_agent_is_the_agent_who_wrote_last_across_conversations() {
    let h = Harness::new();
    let wa = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "WA question"));
    run(h.engine.link_identity(
        &h.tenant,
        wa.customer,
        ChannelKind::Email,
        Address::email("ana@example.com"),
        Verification::Verified,
    ))
    .unwrap();
    h.advance(Duration::minutes(10));
    h.outbound(wa.conversation, OutboundMessage::agent(agent("maria"), text("WA answer"))).unwrap();
    h.advance(Duration::minutes(10));
    let mail = h.ingest(email("ana@example.com", "<m1@ana.example>", "Mail question"));
    assert_ne!(mail.conversation, wa.conversation);
    h.advance(Duration::minutes(10));
    // Joao is the last agent who wrote to Ana.
    h.outbound(mail.conversation, OutboundMessage::agent(agent("joao"), text("Mail answer"))).unwrap();
    h.advance(Duration::minutes(10));
    // Ana then says "thanks" on WhatsApp: that conversation is now the most recently active.
    h.ingest(whatsapp("wa-main", "+447700900123", "wamid.2", "thanks"));

    let view = h.context(wa.customer);
    assert_eq!(view.last_agent, Some(agent("joao")), "the agent who last wrote to the customer");
}

/// `ReplyWindowState` tells the agent UI whether and until when a reply is possible. On
/// Messenger a human agent may answer for 7 days (HUMAN_AGENT tag), and the engine accepts such
/// a reply; the context view must not report the window as having closed after 24 hours.
#[test]
fn messenger_reply_window_in_context_reports_the_human_agent_extension() {
    let h = Harness::new();
    let start = h.now();
    let fb = h.ingest(InboundMessage::new(
        ChannelKind::Messenger,
        endpoint("page-1"),
        Address::platform("page-1", "psid-9"),
        "mid.1",
        text("Hello"),
    ));
    h.advance(Duration::days(3));
    // The engine lets a human agent answer now…
    h.outbound(fb.conversation, OutboundMessage::agent(agent("maria"), text("Sorry for the wait")))
        .expect("a human agent may reply within 7 days on Messenger");
    // …but the context view says the window closed two days ago.
    let view = h.context(fb.customer);
    let w = &view.identities[0].reply_windows[0];
    assert_eq!(
        w.closes_at,
        Some(start + Duration::days(7)),
        "the view must show when the last reply possibility (human agent tag) ends: {w:?}"
    );
}

/// "Everything that changes state is an event" (context-model anchors §5.1): a host mirrors
/// conversations from the outbox. Raising a conversation to urgent, retitling or tagging it is
/// committed to the store but leaves no event, so the mirror never learns of it.
#[test]
fn priority_subject_and_tag_changes_emit_an_event() {
    let h = Harness::new();
    let wa = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "Help"));
    let before = h.events().len();
    let patch = ConversationPatch {
        priority: Some(Priority::Urgent),
        subject: Some(Some("Card charged twice".into())),
        add_tags: vec!["billing".into()],
        ..Default::default()
    };
    let updated = run(h.engine.update_conversation(&h.tenant, wa.conversation, patch)).unwrap();
    assert_eq!(updated.priority, Priority::Urgent, "the change was stored");
    let new: Vec<_> = h.events().into_iter().skip(before).collect();
    assert!(
        new.iter().any(|e| e.event.conversation() == Some(wa.conversation)),
        "a stored change of the conversation left no event in the outbox"
    );
}

fn send_host() -> (Engine, Arc<ManualClock>, TenantId) {
    let store = InMemoryStore::new();
    let clock = Arc::new(ManualClock::new(t0()));
    let wa = Arc::new(StubChannel::new(endpoint("wa-main"), Capabilities::whatsapp()).with_id_prefix("wamid.OUT"));
    let engine = Engine::builder(Arc::new(store)).clock(clock.clone()).channel(wa).build();
    (engine, clock, tenant("acme"))
}

/// A message id is host input (it comes from the agent's client). One whose UUID v7 time lies
/// decades ahead must be refused with a typed error; accepted, it sits on top of the customer's
/// timeline for ever, above every later message.
#[test]
fn a_message_id_from_the_far_future_is_refused() {
    let (engine, clock, t) = send_host();
    let c = run(engine.ingest(&t, whatsapp("wa-main", "+447700900123", "wamid.1", "Hi"))).unwrap();
    // A v7 id stamped in 2100.
    let ms: u64 = 4_102_444_800_000;
    let far = uuid::Uuid::from_u64_pair((ms << 16) | (0x7 << 12), (0b10 << 62) | 12345);
    assert_eq!(far.get_version_num(), 7);
    let r = run(engine.send(
        &t,
        c.conversation,
        SendRequest::agent(agent("maria"), text("from the future")).with_message_id(MessageId::from_uuid(far)),
    ));
    clock.advance(Duration::minutes(1));
    run(engine.ingest(&t, whatsapp("wa-main", "+447700900123", "wamid.2", "later"))).unwrap();
    let view = run(engine.customer_context(&t, c.customer, TimelinePage::default())).unwrap();
    assert!(
        r.is_err(),
        "accepted; the timeline now starts with {:?}",
        view.timeline.iter().map(|m| m.content.summary()).collect::<Vec<_>>()
    );
}
