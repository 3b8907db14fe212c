//! `Engine::apply_receipts`: kit delivery receipts — per message, duplicated, out of order,
//! Messenger-style watermarks — move the delivery state of what `Engine::send` recorded forward
//! only, with one `DeliveryUpdated` event per change.

mod common;
use chrono::{DateTime, Duration, Utc};
use common::{endpoint, run, t0};
use std::sync::Arc;
use touchpoint::channel::{Capabilities, StubChannel};
use touchpoint::channels::DeliveryReceipt;
use touchpoint::clock::ManualClock;
use touchpoint::events::Event;
use touchpoint::model::*;
use touchpoint::store::{InMemoryStore, Store};
use touchpoint::{Engine, Error, SendRequest};

struct Host {
    engine: Engine,
    store: InMemoryStore,
    clock: Arc<ManualClock>,
    tenant: TenantId,
}

fn host() -> Host {
    let store = InMemoryStore::new();
    let clock = Arc::new(ManualClock::new(t0()));
    let engine = Engine::builder(Arc::new(store.clone()))
        .clock(clock.clone())
        .channel(Arc::new(StubChannel::new(endpoint("wa-main"), Capabilities::whatsapp()).with_id_prefix("wamid.OUT")))
        .channel(Arc::new(StubChannel::new(endpoint("fb-page"), Capabilities::messenger()).with_id_prefix("m_OUT")))
        .build();
    Host { engine, store, clock, tenant: TenantId::new("acme").unwrap() }
}

impl Host {
    fn contact(&self, channel: ChannelKind, our_endpoint: &str, sender: Address, id: &str) -> ConversationId {
        let msg = InboundMessage::new(channel, endpoint(our_endpoint), sender, id, Content::text("Hello"));
        run(self.engine.ingest(&self.tenant, msg)).unwrap().conversation
    }

    fn send(&self, conversation: ConversationId, body: &str) -> MessageId {
        let request = SendRequest::system(Content::text(body));
        run(self.engine.send(&self.tenant, conversation, request)).unwrap().message
    }

    fn state(&self, id: MessageId) -> DeliveryState {
        run(self.engine.message(&self.tenant, id)).unwrap().delivery
    }

    /// `DeliveryUpdated` events in the outbox, as (message, status).
    fn delivery_events(&self) -> Vec<(MessageId, DeliveryStatus)> {
        run(self.store.events_after(&self.tenant, 0, 10_000))
            .unwrap()
            .into_iter()
            .filter_map(|e| match e.event {
                Event::DeliveryUpdated { message, status, .. } => Some((message, status)),
                _ => None,
            })
            .collect()
    }
}

fn receipt(channel: ChannelKind, id: &str, state: DeliveryState, at: DateTime<Utc>) -> DeliveryReceipt {
    DeliveryReceipt { at: Some(at), ..DeliveryReceipt::new(channel, id, state) }
}

fn watermark(recipient: Address, state: DeliveryState, at: DateTime<Utc>) -> DeliveryReceipt {
    DeliveryReceipt {
        channel: ChannelKind::Messenger,
        external_id: String::new(),
        state,
        at: Some(at),
        recipient: Some(recipient),
        watermark: true,
    }
}

#[test]
fn receipts_out_of_order_and_duplicated_end_at_the_latest_state_with_one_event() {
    let h = host();
    let c = h.contact(ChannelKind::WhatsApp, "wa-main", Address::phone("+447700900123"), "wamid.IN1");
    let sent = h.send(c, "Your parcel is out for delivery");
    assert_eq!(h.state(sent), DeliveryState::Sent);

    let wa = ChannelKind::WhatsApp;
    let batch = [
        receipt(wa.clone(), "wamid.OUT1", DeliveryState::Read, t0() + Duration::seconds(9)),
        receipt(wa.clone(), "wamid.OUT1", DeliveryState::Delivered, t0() + Duration::seconds(5)),
        receipt(wa.clone(), "wamid.OUT1", DeliveryState::Delivered, t0() + Duration::seconds(5)),
    ];
    let report = run(h.engine.apply_receipts(&h.tenant, &batch)).unwrap();
    assert_eq!(report.updated.len(), 1);
    assert_eq!(report.updated[0].to, DeliveryState::Read);
    assert_eq!(h.state(sent), DeliveryState::Read);
    assert_eq!(h.delivery_events(), [(sent, DeliveryStatus::Read)]);

    // The provider retries its webhook: nothing moves back, no event.
    let late = run(h.engine.apply_receipts(&h.tenant, &batch[1..])).unwrap();
    assert!(late.updated.is_empty());
    assert_eq!(late.unchanged, 2);
    assert_eq!(h.state(sent), DeliveryState::Read);
    assert_eq!(h.delivery_events().len(), 1);
}

#[test]
fn a_failure_after_delivery_is_recorded_but_not_after_read() {
    let h = host();
    let c = h.contact(ChannelKind::WhatsApp, "wa-main", Address::phone("+447700900123"), "wamid.IN1");
    let first = h.send(c, "One");
    let second = h.send(c, "Two");
    let failed = DeliveryState::Failed { code: Some("131047".into()), reason: "re-engagement required".into() };
    let wa = ChannelKind::WhatsApp;
    let batch = [
        receipt(wa.clone(), "wamid.OUT1", DeliveryState::Delivered, t0()),
        receipt(wa.clone(), "wamid.OUT1", failed.clone(), t0() + Duration::seconds(1)),
        receipt(wa.clone(), "wamid.OUT2", DeliveryState::Read, t0()),
        receipt(wa.clone(), "wamid.OUT2", failed.clone(), t0() + Duration::seconds(1)),
    ];
    run(h.engine.apply_receipts(&h.tenant, &batch)).unwrap();
    assert_eq!((h.state(first), h.state(second)), (failed, DeliveryState::Read));
}

#[test]
fn a_messenger_watermark_covers_every_message_sent_up_to_it_and_no_later_one() {
    let h = host();
    let psid = Address::platform("fb-page", "psid-1");
    let c = h.contact(ChannelKind::Messenger, "fb-page", psid.clone(), "m_IN1");
    let mut sent = Vec::new();
    for body in ["one", "two", "three"] {
        h.clock.advance(Duration::minutes(1));
        sent.push(h.send(c, body));
    }
    let up_to_second = t0() + Duration::minutes(2);

    let report =
        run(h.engine.apply_receipts(&h.tenant, &[watermark(psid.clone(), DeliveryState::Delivered, up_to_second)]))
            .unwrap();
    assert_eq!(report.updated.len(), 2);
    let states: Vec<DeliveryState> = sent.iter().map(|m| h.state(*m)).collect();
    assert_eq!(states, [DeliveryState::Delivered, DeliveryState::Delivered, DeliveryState::Sent]);

    // A later read watermark, then the delivery watermark again (late, duplicated).
    let batch = [
        watermark(psid.clone(), DeliveryState::Read, t0() + Duration::minutes(3)),
        watermark(psid, DeliveryState::Delivered, up_to_second),
    ];
    run(h.engine.apply_receipts(&h.tenant, &batch)).unwrap();
    assert!(sent.iter().all(|m| h.state(*m) == DeliveryState::Read));
    let events = h.delivery_events();
    assert_eq!(events.len(), 5, "{events:?}"); // 2 delivered, then 3 read: one per change
    for m in &sent {
        assert_eq!(events.iter().filter(|(id, s)| id == m && *s == DeliveryStatus::Read).count(), 1);
    }
}

#[test]
fn a_receipt_that_arrives_before_the_send_is_recorded_is_reported_and_applies_later() {
    let h = host();
    let c = h.contact(ChannelKind::WhatsApp, "wa-main", Address::phone("+447700900123"), "wamid.IN1");
    let early = [receipt(ChannelKind::WhatsApp, "wamid.OUT1", DeliveryState::Delivered, t0())];
    let report = run(h.engine.apply_receipts(&h.tenant, &early)).unwrap();
    assert_eq!(report.unmatched.len(), 1);
    assert!(report.updated.is_empty());

    let sent = h.send(c, "Hello");
    let again = run(h.engine.apply_receipts(&h.tenant, &early)).unwrap();
    assert_eq!(again.updated.len(), 1);
    assert_eq!(h.state(sent), DeliveryState::Delivered);
}

#[test]
fn watermarks_for_unknown_recipients_are_reported_and_malformed_batches_change_nothing() {
    let h = host();
    let psid = Address::platform("fb-page", "psid-1");
    let c = h.contact(ChannelKind::Messenger, "fb-page", psid.clone(), "m_IN1");
    let sent = h.send(c, "Hello");

    let stranger = watermark(Address::platform("fb-page", "psid-unknown"), DeliveryState::Read, t0());
    let report = run(h.engine.apply_receipts(&h.tenant, std::slice::from_ref(&stranger))).unwrap();
    assert_eq!(report.unknown_recipients, [stranger]);

    // A good receipt next to a malformed one: the batch fails as a whole.
    let good = watermark(psid, DeliveryState::Read, t0() + Duration::minutes(1));
    let no_recipient = DeliveryReceipt { recipient: None, ..good.clone() };
    let result = run(h.engine.apply_receipts(&h.tenant, &[good.clone(), no_recipient]));
    assert!(matches!(result, Err(Error::InvalidInput { .. })), "{result:?}");
    let blank = receipt(ChannelKind::Messenger, " ", DeliveryState::Delivered, t0());
    let result = run(h.engine.apply_receipts(&h.tenant, &[good, blank]));
    assert!(matches!(result, Err(Error::InvalidInput { .. })), "{result:?}");
    assert_eq!(h.state(sent), DeliveryState::Sent);
    assert!(h.delivery_events().is_empty());
}

#[test]
fn receipts_never_cross_tenants() {
    let h = host();
    let c = h.contact(ChannelKind::WhatsApp, "wa-main", Address::phone("+447700900123"), "wamid.IN1");
    let sent = h.send(c, "Hello");
    let other = TenantId::new("globex").unwrap();
    let batch = [receipt(ChannelKind::WhatsApp, "wamid.OUT1", DeliveryState::Read, t0())];
    let report = run(h.engine.apply_receipts(&other, &batch)).unwrap();
    assert_eq!(report.unmatched.len(), 1);
    assert_eq!(h.state(sent), DeliveryState::Sent);
}
