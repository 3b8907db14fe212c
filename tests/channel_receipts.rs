//! Delivery receipts: out of order, duplicated, watermarks; pure planning and applied through
//! the engine.

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::executor::block_on;
use std::sync::Arc;
use touchpoint::channel::{
    Capabilities, Channel, OutgoingMessage, Receipt, StubChannel, apply_receipts, plan_receipts, render,
};
use touchpoint::clock::ManualClock;
use touchpoint::model::*;
use touchpoint::store::InMemoryStore;
use touchpoint::{Engine, Error, OutboundMessage};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

fn secs(n: i64) -> DateTime<Utc> {
    t0() + Duration::seconds(n)
}

fn tenant() -> TenantId {
    TenantId::new("acme").unwrap()
}

fn ep(s: &str) -> EndpointId {
    EndpointId::new(s).unwrap()
}

fn conv(n: u128) -> ConversationId {
    ConversationId::from_uuid(uuid::Uuid::from_u128(n))
}

fn ident(n: u128) -> IdentityId {
    IdentityId::from_uuid(uuid::Uuid::from_u128(1000 + n))
}

fn outbound(
    n: u128,
    channel: ChannelKind,
    endpoint: &str,
    conversation: ConversationId,
    x: Option<&str>,
    at: DateTime<Utc>,
) -> Message {
    Message {
        id: MessageId::from_uuid(uuid::Uuid::from_u128(n)),
        tenant: tenant(),
        conversation,
        direction: Direction::Outbound,
        author: Author::System,
        channel,
        endpoint: ep(endpoint),
        external_id: x.map(str::to_owned),
        recipient: None,
        content: Content::text("hello"),
        delivery: DeliveryState::Sent,
        sent_at: at,
        recorded_at: at,
        version: 0,
    }
}

fn conversation(id: ConversationId, sessions: Vec<(EndpointId, IdentityId)>) -> Conversation {
    // Built through serde so the test does not depend on every field of the record.
    let mut c: Conversation = serde_json::from_value(serde_json::json!({
        "id": id, "tenant": "acme", "customer": uuid::Uuid::from_u128(1), "status": {"status": "open"},
        "priority": "normal", "subject": null, "tags": [], "handler": null, "last_agent": null,
        "origin": "messenger", "channels": [], "last_inbound_via": null, "sessions": [], "previous": null,
        "reply_token": "t", "created_at": t0(), "last_activity_at": t0(), "last_inbound_at": null,
        "waiting_since": null, "first_response_at": null, "resolved_at": null, "closed_at": null,
        "message_count": 0, "version": 0
    }))
    .expect("conversation json");
    c.sessions = sessions;
    c
}

fn failed(code: &str) -> DeliveryState {
    DeliveryState::Failed { code: Some(code.into()), reason: "undeliverable".into() }
}

#[test]
fn out_of_order_and_duplicate_receipts_end_in_the_latest_state() {
    let c = conv(1);
    let m1 = outbound(1, ChannelKind::WhatsApp, "wa-main", c, Some("wamid.1"), t0());
    let m2 = outbound(2, ChannelKind::WhatsApp, "wa-main", c, Some("wamid.2"), t0());
    let wa = ChannelKind::WhatsApp;
    let receipts = vec![
        Receipt::new(wa.clone(), "wamid.1", DeliveryState::Read, secs(30)),
        Receipt::new(wa.clone(), "wamid.1", DeliveryState::Delivered, secs(10)),
        Receipt::new(wa.clone(), "wamid.1", DeliveryState::Delivered, secs(10)),
        Receipt::new(wa.clone(), "wamid.2", DeliveryState::Delivered, secs(12)),
        Receipt::new(wa.clone(), "wamid.2", DeliveryState::Sent, secs(2)),
        Receipt::new(wa.clone(), "wamid.1", failed("131026"), secs(40)),
    ];
    let plan = plan_receipts(&receipts, &[m1.clone(), m2.clone()], &[]).unwrap();
    let finals: Vec<(MessageId, DeliveryState, DeliveryState)> =
        plan.updates.iter().map(|u| (u.message, u.from.clone(), u.to.clone())).collect();
    assert_eq!(
        finals,
        [(m1.id, DeliveryState::Sent, DeliveryState::Read), (m2.id, DeliveryState::Sent, DeliveryState::Delivered)]
    );
    // Duplicate delivered, late sent, failure after read.
    assert_eq!(plan.unchanged, 3);
    assert!(plan.unmatched.is_empty());

    // However the provider ordered them, the outcome is the same.
    for rotation in 0..receipts.len() {
        let mut shuffled = receipts.clone();
        shuffled.rotate_left(rotation);
        shuffled.reverse();
        let again = plan_receipts(&shuffled, &[m1.clone(), m2.clone()], &[]).unwrap();
        assert_eq!(again.updates, plan.updates, "rotation {rotation}");
    }
}

/// Twilio's `queued` and `sending` callbacks parse to `Pending`: such a receipt is valid and
/// changes nothing, so a batch holding one applies the rest.
#[test]
fn a_pending_receipt_changes_nothing() {
    let m = outbound(1, ChannelKind::Sms, "sms-1", conv(1), Some("SM1"), t0());
    let receipts = [
        Receipt::new(ChannelKind::Sms, "SM1", DeliveryState::Pending, secs(1)),
        Receipt::new(ChannelKind::Sms, "SM1", DeliveryState::Delivered, secs(2)),
    ];
    let plan = plan_receipts(&receipts, &[m], &[]).unwrap();
    assert_eq!(plan.updates.len(), 1);
    assert_eq!(plan.updates[0].to, DeliveryState::Delivered);
    assert_eq!(plan.unchanged, 1);
}

#[test]
fn a_failure_is_final_and_keeps_the_first_reason() {
    let m = outbound(1, ChannelKind::Sms, "sms-1", conv(1), Some("SM1"), t0());
    let receipts = [
        Receipt::new(ChannelKind::Sms, "SM1", failed("30003"), secs(5)),
        Receipt::new(ChannelKind::Sms, "SM1", DeliveryState::Delivered, secs(9)),
        Receipt::new(ChannelKind::Sms, "SM1", failed("30005"), secs(12)),
    ];
    let plan = plan_receipts(&receipts, &[m], &[]).unwrap();
    assert_eq!(plan.updates.len(), 1);
    assert_eq!(plan.updates[0].to, failed("30003"));
    assert_eq!(plan.unchanged, 2);
}

#[test]
fn receipts_for_unknown_ids_other_channels_or_inbound_messages_are_unmatched() {
    let c = conv(1);
    let mut inbound = outbound(1, ChannelKind::WhatsApp, "wa-main", c, Some("wamid.IN"), t0());
    inbound.direction = Direction::Inbound;
    let sms = outbound(2, ChannelKind::Sms, "sms-1", c, Some("X1"), t0());
    let receipts = [
        Receipt::new(ChannelKind::WhatsApp, "wamid.NOPE", DeliveryState::Delivered, secs(1)),
        Receipt::new(ChannelKind::WhatsApp, "wamid.IN", DeliveryState::Read, secs(2)),
        Receipt::new(ChannelKind::WhatsApp, "X1", DeliveryState::Read, secs(3)),
    ];
    let plan = plan_receipts(&receipts, &[inbound, sms], &[]).unwrap();
    assert!(plan.updates.is_empty());
    assert_eq!(plan.unmatched, receipts);
}

#[test]
fn a_watermark_covers_every_earlier_message_of_that_endpoint_and_identity_only() {
    let ours = conv(1);
    let someone_else = conv(2);
    let psid = ident(9);
    let conversations =
        [conversation(ours, vec![(ep("fb-page"), psid)]), conversation(someone_else, vec![(ep("fb-page"), ident(8))])];
    let fb = ChannelKind::Messenger;
    let m1 = outbound(1, fb.clone(), "fb-page", ours, Some("m_1"), secs(0));
    let m2 = outbound(2, fb.clone(), "fb-page", ours, None, secs(60));
    let m3 = outbound(3, fb.clone(), "fb-page", ours, Some("m_3"), secs(300));
    let other_customer = outbound(4, fb.clone(), "fb-page", someone_else, Some("m_4"), secs(10));
    let other_page = outbound(5, fb.clone(), "fb-other", ours, Some("m_5"), secs(10));
    let messages = [m1.clone(), m2.clone(), m3.clone(), other_customer, other_page];

    let delivered = Receipt::watermark(fb.clone(), ep("fb-page"), psid, secs(120), DeliveryState::Delivered);
    let plan = plan_receipts(std::slice::from_ref(&delivered), &messages, &conversations).unwrap();
    let moved: Vec<(MessageId, DeliveryState)> = plan.updates.iter().map(|u| (u.message, u.to.clone())).collect();
    assert_eq!(moved, [(m1.id, DeliveryState::Delivered), (m2.id, DeliveryState::Delivered)]);

    // A read watermark arriving before the (earlier) delivery watermark: applied in time order,
    // read wins for all.
    let read = Receipt::watermark(fb.clone(), ep("fb-page"), psid, secs(600), DeliveryState::Read);
    let plan = plan_receipts(&[read, delivered], &messages, &conversations).unwrap();
    let moved: Vec<(MessageId, DeliveryState)> = plan.updates.iter().map(|u| (u.message, u.to.clone())).collect();
    assert_eq!(moved, [(m1.id, DeliveryState::Read), (m2.id, DeliveryState::Read), (m3.id, DeliveryState::Read)]);
    assert!(plan.unmatched.is_empty());

    // A watermark for an identity with no conversation here matches nothing.
    let stranger = Receipt::watermark(fb, ep("fb-page"), ident(7), secs(600), DeliveryState::Read);
    let plan = plan_receipts(std::slice::from_ref(&stranger), &messages, &conversations).unwrap();
    assert!(plan.updates.is_empty());
    assert_eq!(plan.unmatched, [stranger]);
}

/// After a merge one conversation can hold two of the customer's identities on one page: a
/// watermark of one of them leaves what was sent to the other as it was.
#[test]
fn a_watermark_covers_only_what_went_to_its_identity_in_a_conversation_with_two() {
    let c = conv(1);
    let (first, second) = (ident(9), ident(8));
    let conversations = [conversation(c, vec![(ep("fb-page"), first), (ep("fb-page"), second)])];
    let fb = ChannelKind::Messenger;
    let mut to_first = outbound(1, fb.clone(), "fb-page", c, Some("m_1"), secs(0));
    to_first.recipient = Some(first);
    let mut to_second = outbound(2, fb.clone(), "fb-page", c, Some("m_2"), secs(10));
    to_second.recipient = Some(second);
    let read = Receipt::watermark(fb, ep("fb-page"), first, secs(600), DeliveryState::Read);
    let plan = plan_receipts(&[read], &[to_first.clone(), to_second], &conversations).unwrap();
    let moved: Vec<(MessageId, DeliveryState)> = plan.updates.iter().map(|u| (u.message, u.to.clone())).collect();
    assert_eq!(moved, [(to_first.id, DeliveryState::Read)]);
}

#[test]
fn malformed_receipts_are_rejected() {
    let m = outbound(1, ChannelKind::Sms, "sms-1", conv(1), Some("SM1"), t0());
    let nothing =
        Receipt { provider_message_id: None, ..Receipt::new(ChannelKind::Sms, "x", DeliveryState::Read, secs(1)) };
    let blank = Receipt::new(ChannelKind::Sms, " ", DeliveryState::Read, secs(1));
    for bad in [nothing, blank] {
        let ok = Receipt::new(ChannelKind::Sms, "SM1", DeliveryState::Read, secs(1));
        assert!(
            matches!(plan_receipts(&[ok, bad.clone()], std::slice::from_ref(&m), &[]), Err(Error::InvalidInput { .. })),
            "{bad:?}"
        );
    }
}

// --- through the engine ------------------------------------------------------------------

struct World {
    engine: Engine,
    clock: Arc<ManualClock>,
}

impl World {
    fn new() -> Self {
        let clock = Arc::new(ManualClock::new(t0()));
        let engine = Engine::builder(Arc::new(InMemoryStore::new())).clock(clock.clone()).build();
        World { engine, clock }
    }

    fn ingest(&self, channel: ChannelKind, endpoint: &str, from: Address, id: &str) -> touchpoint::IngestOutcome {
        let msg = InboundMessage::new(channel, ep(endpoint), from, id, Content::text("Where is my parcel?"));
        block_on(self.engine.ingest(&tenant(), msg)).unwrap()
    }

    /// Renders, sends through the stub and records the reply with the provider id it got.
    fn reply(
        &self,
        channel: &StubChannel,
        conversation: ConversationId,
        recipient: &NormalizedAddress,
        text: &str,
    ) -> Message {
        let parts = render(&Content::text(text), channel.capabilities()).unwrap();
        let [part] = &parts[..] else { panic!("one part expected") };
        let id = block_on(channel.send(&OutgoingMessage::new(recipient.clone(), part.clone()))).unwrap();
        let out = OutboundMessage::bot(AgentId::new("bot").unwrap(), Content::text(text)).with_external_id(id);
        block_on(self.engine.record_outbound(&tenant(), conversation, out)).unwrap()
    }

    fn state(&self, id: MessageId) -> DeliveryState {
        block_on(self.engine.message(&tenant(), id)).unwrap().delivery
    }
}

#[test]
fn a_batch_applied_through_the_engine_is_idempotent() {
    let w = World::new();
    let inbound = w.ingest(ChannelKind::WhatsApp, "wa-main", Address::phone("+447700900123"), "wamid.IN1");
    let stub = StubChannel::new(ep("wa-main"), Capabilities::whatsapp()).with_id_prefix("wamid.OUT");
    let to = NormalizedAddress { kind: AddressKind::Phone, value: "+447700900123".into() };
    let m1 = w.reply(&stub, inbound.conversation, &to, "First");
    let m2 = w.reply(&stub, inbound.conversation, &to, "Second");
    assert_eq!(m1.external_id.as_deref(), Some("wamid.OUT1"));

    let wa = ChannelKind::WhatsApp;
    let batch = vec![
        Receipt::new(wa.clone(), "wamid.OUT2", DeliveryState::Read, secs(50)),
        Receipt::new(wa.clone(), "wamid.OUT1", DeliveryState::Delivered, secs(20)),
        Receipt::new(wa.clone(), "wamid.OUT1", DeliveryState::Delivered, secs(20)),
        Receipt::new(wa.clone(), "wamid.OUT2", DeliveryState::Delivered, secs(30)),
        Receipt::new(wa.clone(), "wamid.LATER", DeliveryState::Delivered, secs(31)),
    ];
    let report = block_on(apply_receipts(&w.engine, &tenant(), &batch)).unwrap();
    assert_eq!((w.state(m1.id), w.state(m2.id)), (DeliveryState::Delivered, DeliveryState::Read));
    let updated: Vec<(MessageId, DeliveryState)> = report.updated.iter().map(|u| (u.message, u.to.clone())).collect();
    assert_eq!(updated, [(m1.id, DeliveryState::Delivered), (m2.id, DeliveryState::Read)]);
    assert_eq!(report.unmatched.len(), 1);
    assert_eq!(report.unmatched[0].provider_message_id.as_deref(), Some("wamid.LATER"));

    let again = block_on(apply_receipts(&w.engine, &tenant(), &batch)).unwrap();
    assert!(again.updated.is_empty());
    assert_eq!(again.unchanged, 4);
    assert_eq!((w.state(m1.id), w.state(m2.id)), (DeliveryState::Delivered, DeliveryState::Read));
}

#[test]
fn a_messenger_watermark_applied_through_the_engine_covers_earlier_messages() {
    let w = World::new();
    let inbound = w.ingest(ChannelKind::Messenger, "fb-page", Address::platform("fb-page", "psid-9"), "m_IN1");
    let stub = StubChannel::new(ep("fb-page"), Capabilities::messenger()).with_id_prefix("m_OUT");
    let to = NormalizedAddress { kind: AddressKind::Platform, value: "fb-page:psid-9".into() };
    w.clock.set(secs(60));
    let m1 = w.reply(&stub, inbound.conversation, &to, "One");
    w.clock.set(secs(180));
    let m2 = w.reply(&stub, inbound.conversation, &to, "Two");
    w.clock.set(secs(240));
    let unnamed = OutboundMessage::bot(AgentId::new("bot").unwrap(), Content::text("Three"));
    let m3 = block_on(w.engine.record_outbound(&tenant(), inbound.conversation, unnamed)).unwrap();
    w.clock.set(secs(600));
    let m4 = w.reply(&stub, inbound.conversation, &to, "Four");

    let watermark = Receipt::watermark(
        ChannelKind::Messenger,
        ep("fb-page"),
        inbound.identity,
        secs(300),
        DeliveryState::Delivered,
    );
    let report = block_on(apply_receipts(&w.engine, &tenant(), &[watermark])).unwrap();
    assert_eq!(w.state(m1.id), DeliveryState::Delivered);
    assert_eq!(w.state(m2.id), DeliveryState::Delivered);
    assert_eq!(w.state(m4.id), DeliveryState::Pending, "sent after the watermark");
    assert_eq!(report.without_provider_id, [m3.id], "no provider id: left for the host");
    assert_eq!(report.updated.len(), 2);
}

#[test]
fn a_malformed_batch_changes_nothing() {
    let w = World::new();
    let inbound = w.ingest(ChannelKind::WhatsApp, "wa-main", Address::phone("+447700900123"), "wamid.IN1");
    let stub = StubChannel::new(ep("wa-main"), Capabilities::whatsapp()).with_id_prefix("wamid.OUT");
    let to = NormalizedAddress { kind: AddressKind::Phone, value: "+447700900123".into() };
    let m1 = w.reply(&stub, inbound.conversation, &to, "First");
    let batch = [
        Receipt::new(ChannelKind::WhatsApp, "wamid.OUT1", DeliveryState::Read, secs(5)),
        Receipt::new(ChannelKind::WhatsApp, " ", DeliveryState::Delivered, secs(6)),
    ];
    let err = block_on(apply_receipts(&w.engine, &tenant(), &batch)).unwrap_err();
    assert!(matches!(err, Error::InvalidInput { field: "receipt.provider_message_id", .. }), "{err:?}");
    assert_eq!(w.state(m1.id), DeliveryState::Pending);
}

#[test]
fn an_email_receipt_finds_its_message_whether_or_not_the_message_id_has_angle_brackets() {
    // Engine::update_delivery and Engine::apply_receipts accept `<id>` and `id` alike (hosts and
    // kits spell Message-IDs both ways); the batch API must agree.
    let w = World::new();
    let inbound =
        w.ingest(ChannelKind::Email, "support-inbox", Address::email("ada@example.net"), "<in-1@example.net>");
    let out = OutboundMessage::bot(AgentId::new("bot").unwrap(), Content::text("We are on it"))
        .with_external_id("<out-1@acme.example>");
    let m = block_on(w.engine.record_outbound(&tenant(), inbound.conversation, out)).unwrap();
    let receipt = Receipt::new(ChannelKind::Email, "<out-1@acme.example>", DeliveryState::Delivered, secs(5));
    let report = block_on(apply_receipts(&w.engine, &tenant(), &[receipt])).unwrap();
    assert_eq!(w.state(m.id), DeliveryState::Delivered, "report: {report:?}");
}

/// A host that keeps an email Message-ID as sent (`<…>`) and passes its own records in: a
/// receipt naming that id, with or without the brackets, finds the message.
#[test]
fn plan_receipts_matches_email_ids_however_the_host_spelled_them() {
    let m = outbound(1, ChannelKind::Email, "support-inbox", conv(1), Some("<out-1@acme.example>"), t0());
    for id in ["<out-1@acme.example>", "out-1@acme.example"] {
        let receipt = Receipt::new(ChannelKind::Email, id, DeliveryState::Delivered, secs(5));
        let plan = plan_receipts(&[receipt], std::slice::from_ref(&m), &[]).unwrap();
        assert!(plan.unmatched.is_empty(), "{id}: {:?}", plan.unmatched);
        assert_eq!(plan.updates.len(), 1, "{id}");
        assert_eq!(plan.updates[0].to, DeliveryState::Delivered);
    }
}
