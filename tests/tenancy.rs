//! No read or write crosses a tenant: every engine call made under tenant A with tenant B's ids
//! is `NotFound` and leaves B's data exactly as it was; B's events never reach A's stream.

use futures::{FutureExt, StreamExt};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Arc;
use touchpoint::clock::ManualClock;
use touchpoint::context::TimelinePage;
use touchpoint::events::{EventStream, StoredEvent};
use touchpoint::model::*;
use touchpoint::store::InMemoryStore;
use touchpoint::{ConversationPatch, CustomerPatch, Engine, Error, IngestOutcome, OutboundMessage, SurvivorRule};

mod common;
use common::{canonical, run, t0};

struct World {
    engine: Engine,
    store: InMemoryStore,
    a: TenantId,
    b: TenantId,
    /// A's own customer (with a WhatsApp identity and a conversation).
    a_main: IngestOutcome,
    /// B's customer with WhatsApp, SMS and email identities, an outbound reply and a resolved
    /// conversation.
    b_main: IngestOutcome,
    b_email: IngestOutcome,
    b_outbound: Message,
    /// A second customer of B (for merges).
    b_other: IngestOutcome,
    /// An erased customer of B.
    b_erased: CustomerId,
}

fn wa(phone: &str, ext: &str, body: &str) -> InboundMessage {
    InboundMessage::new(
        ChannelKind::WhatsApp,
        EndpointId::new("wa-main").unwrap(),
        Address::phone(phone),
        ext,
        Content::text(body),
    )
}

fn email(address: &str, ext: &str, body: &str) -> InboundMessage {
    InboundMessage::new(
        ChannelKind::Email,
        EndpointId::new("support-inbox").unwrap(),
        Address::email(address),
        ext,
        Content::text(body),
    )
}

fn world() -> World {
    let store = InMemoryStore::new();
    let clock = Arc::new(ManualClock::new(t0()));
    let engine = Engine::builder(Arc::new(store.clone())).clock(clock).build();
    let a = TenantId::new("tenant-a").unwrap();
    let b = TenantId::new("tenant-b").unwrap();
    run(async {
        let a_main = engine.ingest(&a, wa("+447700900100", "a-wa-1", "hello from A")).await.unwrap();
        let b_main =
            engine.ingest(&b, wa("+447700900200", "b-wa-1", "hello from B").with_sender_name("Bea B")).await.unwrap();
        engine
            .update_customer(
                &b,
                b_main.customer,
                CustomerPatch {
                    external_id: Some(Some("b-user-1".into())),
                    set_attributes: [("plan".to_owned(), Value::from("gold"))].into_iter().collect(),
                    ..CustomerPatch::default()
                },
            )
            .await
            .unwrap();
        let sms = InboundMessage::new(
            ChannelKind::Sms,
            EndpointId::new("sms-main").unwrap(),
            Address::phone("+447700900200"),
            "b-sms-1",
            Content::text("SMS from B"),
        );
        let b_sms = engine.ingest(&b, sms).await.unwrap();
        assert_eq!(b_sms.customer, b_main.customer);
        let b_email = engine
            .ingest(
                &b,
                email("bea@example.com", "<b-mail-1@example.com>", "mail from B")
                    .with_claim(CustomerKey::ExternalId("b-user-1".into()), Verification::Verified),
            )
            .await
            .unwrap();
        assert_eq!(b_email.customer, b_main.customer);
        let b_outbound = engine
            .record_outbound(
                &b,
                b_main.conversation,
                OutboundMessage::agent(AgentId::new("agent-b").unwrap(), Content::text("reply in B"))
                    .with_external_id("b-out-1"),
            )
            .await
            .unwrap();
        engine
            .update_conversation(
                &b,
                b_email.conversation,
                ConversationPatch { status: Some(ConversationStatus::Resolved), ..ConversationPatch::default() },
            )
            .await
            .unwrap();
        let b_other = engine.ingest(&b, wa("+447700900201", "b-wa-2", "another B customer")).await.unwrap();
        let gone = engine.ingest(&b, wa("+447700900202", "b-wa-3", "soon erased")).await.unwrap();
        engine.erase_customer(&b, gone.customer).await.unwrap();
        World { engine, store, a, b, a_main, b_main, b_email, b_outbound, b_other, b_erased: gone.customer }
    })
}

fn tenant_dump(store: &InMemoryStore, tenant: &TenantId) -> Value {
    canonical(&store.dump()[tenant.as_str()])
}

fn assert_not_found<T: std::fmt::Debug>(what: &str, result: Result<T, Error>) {
    match result {
        Err(Error::NotFound { .. }) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

/// Runs `call` under tenant A with B's ids, then checks NotFound and that B is unchanged.
macro_rules! cross {
    ($w:expr, $what:expr, $call:expr) => {{
        let before = tenant_dump(&$w.store, &$w.b);
        let result = run($call);
        assert_not_found($what, result);
        assert_eq!(tenant_dump(&$w.store, &$w.b), before, "{}: tenant B's data changed", $what);
    }};
}

#[test]
fn reads_with_another_tenants_ids_are_not_found() {
    let w = world();
    let (e, a) = (&w.engine, &w.a);
    cross!(w, "customer", e.customer(a, w.b_main.customer));
    cross!(w, "customer (B's merged-away/erased id)", e.customer(a, w.b_erased));
    cross!(w, "conversation", e.conversation(a, w.b_main.conversation));
    cross!(w, "message", e.message(a, w.b_main.message));
    cross!(w, "outbound message", e.message(a, w.b_outbound.id));
    cross!(w, "customer_context", e.customer_context(a, w.b_main.customer, TimelinePage::default()));
    cross!(w, "conversation_context", e.conversation_context(a, w.b_main.conversation, TimelinePage::default()));
    cross!(
        w,
        "conversation_context (resolved)",
        e.conversation_context(a, w.b_email.conversation, TimelinePage::default())
    );
    cross!(w, "export_customer", e.export_customer(a, w.b_main.customer));
    cross!(w, "preview_merge (both B)", e.preview_merge(a, w.b_main.customer, w.b_other.customer, SurvivorRule::First));
    cross!(
        w,
        "preview_merge (A with B)",
        e.preview_merge(a, w.a_main.customer, w.b_main.customer, SurvivorRule::First)
    );
    cross!(
        w,
        "preview_merge (B with A)",
        e.preview_merge(a, w.b_main.customer, w.a_main.customer, SurvivorRule::Oldest)
    );

    // The store itself answers nothing of B under A.
    run(async {
        let s = e.store();
        assert!(s.customer(a, w.b_main.customer).await.unwrap().is_none());
        assert!(s.customer_by_external_id(a, "b-user-1").await.unwrap().is_none());
        assert!(s.identity(a, w.b_main.identity).await.unwrap().is_none());
        assert!(s.identities_of(a, w.b_main.customer).await.unwrap().is_empty());
        assert!(s.conversations_of(a, w.b_main.customer).await.unwrap().is_empty());
        assert!(s.message_by_external_id(a, &ChannelKind::WhatsApp, "b-wa-1").await.unwrap().is_none());
        assert!(s.message_by_external_id(a, &ChannelKind::WhatsApp, "b-out-1").await.unwrap().is_none());
        let address = NormalizedAddress { kind: AddressKind::Phone, value: "+447700900200".into() };
        assert!(s.identity_by_address(a, &ChannelKind::WhatsApp, &address).await.unwrap().is_none());
        let key = touchpoint::store::LinkKey(address);
        assert!(s.customers_by_address(a, &key).await.unwrap().is_empty());
        let query = touchpoint::store::MessageQuery {
            scope: touchpoint::store::MessageScope::Customer(w.b_main.customer),
            before: None,
            limit: 100,
        };
        assert!(s.messages(a, &query).await.unwrap().is_empty());
    });
}

#[test]
fn writes_with_another_tenants_ids_are_not_found_and_change_nothing() {
    let w = world();
    let (e, a) = (&w.engine, &w.a);
    let agent = AgentId::new("agent-a").unwrap();
    let a_before = tenant_dump(&w.store, a);

    cross!(w, "erase_customer", e.erase_customer(a, w.b_main.customer));
    cross!(w, "erase_customer (B's other)", e.erase_customer(a, w.b_other.customer));
    cross!(
        w,
        "update_customer",
        e.update_customer(
            a,
            w.b_main.customer,
            CustomerPatch { name: Some(Some("Mallory".into())), blocked: Some(true), ..CustomerPatch::default() }
        )
    );
    cross!(
        w,
        "update_conversation",
        e.update_conversation(
            a,
            w.b_main.conversation,
            ConversationPatch {
                status: Some(ConversationStatus::Closed),
                add_tags: vec!["pwned".into()],
                ..ConversationPatch::default()
            }
        )
    );
    cross!(
        w,
        "update_conversation (resolved)",
        e.update_conversation(
            a,
            w.b_email.conversation,
            ConversationPatch { status: Some(ConversationStatus::Open), ..ConversationPatch::default() }
        )
    );
    cross!(
        w,
        "record_outbound into B's conversation",
        e.record_outbound(a, w.b_main.conversation, OutboundMessage::agent(agent.clone(), Content::text("x")))
    );
    cross!(
        w,
        "record_outbound into A's conversation through B's identity",
        e.record_outbound(
            a,
            w.a_main.conversation,
            OutboundMessage::agent(agent.clone(), Content::text("x"))
                .via(EndpointId::new("wa-main").unwrap(), w.b_main.identity)
        )
    );
    cross!(
        w,
        "update_delivery of B's outbound",
        e.update_delivery(a, &ChannelKind::WhatsApp, "b-out-1", DeliveryState::Read)
    );
    cross!(
        w,
        "update_delivery of B's outbound as failed",
        e.update_delivery(
            a,
            &ChannelKind::WhatsApp,
            "b-out-1",
            DeliveryState::Failed { code: None, reason: "x".into() }
        )
    );
    cross!(
        w,
        "link_identity to B's customer",
        e.link_identity(
            a,
            w.b_main.customer,
            ChannelKind::Email,
            Address::email("mallory@example.com"),
            Verification::Verified
        )
    );
    cross!(w, "unlink_identity", e.unlink_identity(a, w.b_main.identity));
    cross!(w, "unlink_identity (email)", e.unlink_identity(a, w.b_email.identity));
    cross!(w, "move_identity B→A", e.move_identity(a, w.b_main.identity, w.a_main.customer));
    cross!(w, "move_identity B→B", e.move_identity(a, w.b_main.identity, w.b_other.customer));
    cross!(w, "move_identity A→B", e.move_identity(a, w.a_main.identity, w.b_main.customer));
    cross!(
        w,
        "merge_customers (both B)",
        e.merge_customers(a, w.b_main.customer, w.b_other.customer, SurvivorRule::First)
    );
    cross!(
        w,
        "merge_customers (A absorbs B)",
        e.merge_customers(a, w.a_main.customer, w.b_main.customer, SurvivorRule::First)
    );
    cross!(
        w,
        "merge_customers (B absorbs A)",
        e.merge_customers(a, w.b_main.customer, w.a_main.customer, SurvivorRule::First)
    );
    cross!(
        w,
        "merge_customers (erased B)",
        e.merge_customers(a, w.a_main.customer, w.b_erased, SurvivorRule::HasExternalId)
    );

    // None of those failed calls touched A either.
    assert_eq!(tenant_dump(&w.store, a), a_before, "a refused cross-tenant call changed tenant A");

    // A reusing B's provider id for its own outbound message works in A and leaves B alone.
    let b_before = tenant_dump(&w.store, &w.b);
    run(async {
        let mine = e
            .record_outbound(
                a,
                w.a_main.conversation,
                OutboundMessage::agent(agent.clone(), Content::text("A's reply")).with_external_id("b-out-1"),
            )
            .await
            .expect("B's provider id must not block A");
        let read = e.update_delivery(a, &ChannelKind::WhatsApp, "b-out-1", DeliveryState::Read).await.unwrap();
        assert_eq!(read.id, mine.id);
        assert_eq!(read.delivery, DeliveryState::Read);
    });
    assert_eq!(tenant_dump(&w.store, &w.b), b_before, "A's receipt changed B's message");
    // And B still works for B.
    run(async {
        assert_eq!(e.customer(&w.b, w.b_main.customer).await.unwrap().external_id.as_deref(), Some("b-user-1"));
        assert_eq!(e.message(&w.b, w.b_outbound.id).await.unwrap().delivery, DeliveryState::Pending);
    });
}

#[test]
fn inbound_references_to_another_tenants_data_do_not_cross() {
    let w = world();
    let (e, a) = (&w.engine, &w.a);
    run(async {
        let b_conv = e.conversation(&w.b, w.b_main.conversation).await.unwrap();
        let before = tenant_dump(&w.store, &w.b);
        // A message in A that carries B's reply token, B's email Message-ID, B's external id
        // and B's verified user id.
        let msg = email("bea@example.com", "<b-mail-1@example.com>", "sneaky")
            .with_claim(CustomerKey::ExternalId("b-user-1".into()), Verification::Verified)
            .with_thread(ThreadHints {
                reply_token: Some(b_conv.reply_token.clone()),
                in_reply_to: Some("<b-mail-1@example.com>".into()),
                ..ThreadHints::default()
            });
        let out = e.ingest(a, msg).await.unwrap();
        assert!(!out.duplicate, "B's idempotency key deduplicated a message of A");
        assert_ne!(out.customer, w.b_main.customer);
        assert_ne!(out.conversation, w.b_main.conversation);
        assert_ne!(out.conversation, w.b_email.conversation);
        assert!(out.suspected_duplicates.is_empty(), "A was told about B's customers: {:?}", out.suspected_duplicates);
        assert_eq!(e.conversation(a, out.conversation).await.unwrap().customer, out.customer);
        assert_eq!(tenant_dump(&w.store, &w.b), before, "an ingest in A changed B");
    });
}

#[test]
fn the_same_address_in_two_tenants_is_two_customers() {
    let store = InMemoryStore::new();
    let engine = Engine::builder(Arc::new(store.clone())).clock(Arc::new(ManualClock::new(t0()))).build();
    let a = TenantId::new("shop-a").unwrap();
    let b = TenantId::new("shop-b").unwrap();
    run(async {
        // Exactly the same message (same provider id) arrives for both tenants.
        let msg = wa("+5511987654321", "wamid.same", "same person, two shops");
        let in_a = engine.ingest(&a, msg.clone()).await.unwrap();
        let in_b = engine.ingest(&b, msg.clone()).await.unwrap();
        assert!(!in_a.duplicate && !in_b.duplicate);
        assert_ne!(in_a.customer, in_b.customer);
        assert_ne!(in_a.identity, in_b.identity);
        assert_ne!(in_a.conversation, in_b.conversation);
        assert_ne!(in_a.message, in_b.message);
        // Email with the same verified external id in both.
        let mail = email("same@example.com", "<same@example.com>", "hi")
            .with_claim(CustomerKey::ExternalId("user-1".into()), Verification::Verified);
        let ma = engine.ingest(&a, mail.clone()).await.unwrap();
        let mb = engine.ingest(&b, mail).await.unwrap();
        assert_ne!(ma.customer, mb.customer);
        assert!(!mb.duplicate);
        for (t, mine, theirs) in [(&a, &in_a, &in_b), (&b, &in_b, &in_a)] {
            assert_not_found("other tenant's customer", engine.customer(t, theirs.customer).await);
            assert_not_found("other tenant's conversation", engine.conversation(t, theirs.conversation).await);
            let view = engine.customer_context(t, mine.customer, TimelinePage::default()).await.unwrap();
            assert_eq!(view.identities.len(), 1);
            assert_eq!(view.timeline.len(), 1);
            assert!(view.timeline.iter().all(|m| &m.tenant == t));
            let export = engine.export_customer(t, mine.customer).await.unwrap();
            assert!(export.identities.iter().all(|i| &i.tenant == t));
            assert!(export.messages.iter().all(|m| &m.tenant == t));
        }
        // Erasing in A leaves B's identical customer whole.
        let b_before = tenant_dump(&store, &b);
        engine.erase_customer(&a, in_a.customer).await.unwrap();
        assert_eq!(tenant_dump(&store, &b), b_before);
        assert_eq!(engine.customer(&b, in_b.customer).await.unwrap().id, in_b.customer);
        assert!(store.dump()["shop-b"].to_string().contains("+5511987654321"));
        // The same address linked in both tenants by hand.
        let la = engine
            .link_identity(&a, ma.customer, ChannelKind::Sms, Address::phone("+447700900999"), Verification::Verified)
            .await
            .unwrap();
        let lb = engine
            .link_identity(&b, mb.customer, ChannelKind::Sms, Address::phone("+447700900999"), Verification::Verified)
            .await
            .unwrap();
        assert_ne!(la.id, lb.id);
        assert_eq!(la.customer, ma.customer);
        assert_eq!(lb.customer, mb.customer);
    });
}

/// Reads every event the stream has right now, without waiting.
fn drain(stream: &mut EventStream) -> Vec<StoredEvent> {
    let mut out = Vec::new();
    while let Some(item) = stream.next().now_or_never() {
        out.push(item.expect("stream ended").expect("store error"));
    }
    out
}

#[test]
fn a_tenants_event_stream_never_shows_another_tenants_events() {
    let w = world();
    let (e, a, b) = (&w.engine, &w.a, &w.b);
    let mut stream_a = e.subscribe(a, 0);
    let mut stream_b = e.subscribe(b, 0);
    let mut seen_a = drain(&mut stream_a);
    let mut seen_b = drain(&mut stream_b);
    assert!(!seen_a.is_empty() && !seen_b.is_empty());

    run(async {
        // Activity in B only: nothing new for A.
        e.ingest(b, wa("+447700900200", "b-wa-9", "more B")).await.unwrap();
        e.update_delivery(b, &ChannelKind::WhatsApp, "b-out-1", DeliveryState::Delivered).await.unwrap();
        e.merge_customers(b, w.b_main.customer, w.b_other.customer, SurvivorRule::First).await.unwrap();
    });
    assert!(drain(&mut stream_a).is_empty(), "B's activity showed up on A's stream");
    seen_b.extend(drain(&mut stream_b));

    run(async {
        e.ingest(a, wa("+447700900100", "a-wa-2", "more A")).await.unwrap();
        e.ingest(b, wa("+447700900200", "b-wa-10", "and B")).await.unwrap();
    });
    seen_a.extend(drain(&mut stream_a));
    seen_b.extend(drain(&mut stream_b));

    // Everything A's stream showed belongs to A and is exactly A's outbox.
    let outbox_a = run(e.store().events_after(a, 0, usize::MAX)).unwrap();
    let outbox_b = run(e.store().events_after(b, 0, usize::MAX)).unwrap();
    assert_eq!(seen_a, outbox_a);
    assert_eq!(seen_b, outbox_b);
    assert!(seen_a.iter().all(|ev| &ev.tenant == a));
    assert!(seen_b.iter().all(|ev| &ev.tenant == b));
    let ids_a: HashSet<EventId> = seen_a.iter().map(|ev| ev.id).collect();
    assert!(seen_b.iter().all(|ev| !ids_a.contains(&ev.id)));
    // No event of A mentions an id of B.
    let text_a = serde_json::to_string(&seen_a).unwrap();
    for id in [
        w.b_main.customer.to_string(),
        w.b_main.conversation.to_string(),
        w.b_main.message.to_string(),
        w.b_outbound.id.to_string(),
        w.b_other.customer.to_string(),
        w.b_erased.to_string(),
    ] {
        assert!(!text_a.contains(&id), "A's stream mentions B's id {id}");
    }
    // A stream of A started late still only sees A.
    let mut late = e.subscribe(a, outbox_a.len() as u64);
    run(e.ingest(b, wa("+447700900200", "b-wa-11", "B again"))).unwrap();
    assert!(drain(&mut late).is_empty());
}

/// One router serves every tenant: asking it about another tenant's conversation is
/// `NotFound`, not that conversation's routing decision (its agent, queue and rule).
#[test]
fn routing_another_tenants_conversation_is_not_found() {
    use touchpoint::routing::{Agent, Capacity, Router, RouterConfig};
    let router = Arc::new(Router::new(RouterConfig::default()));
    let agent = Agent::new(AgentId::new("agent-b").unwrap())
        .with_capacity(Capacity::per_channel([(ChannelKind::WhatsApp, 5)]))
        .with_status("online");
    router.upsert_agent(agent, t0()).unwrap();
    let engine =
        Engine::builder(Arc::new(InMemoryStore::new())).clock(Arc::new(ManualClock::new(t0()))).router(router).build();
    let a = TenantId::new("tenant-a").unwrap();
    let b = TenantId::new("tenant-b").unwrap();
    let b_main = run(engine.ingest(&b, wa("+447700900200", "b-wa-1", "hello from B"))).unwrap();
    assert!(b_main.routing.is_some(), "B's conversation was routed at ingest");
    assert!(run(engine.route_conversation(&b, b_main.conversation)).is_ok());
    assert_not_found("route_conversation", run(engine.route_conversation(&a, b_main.conversation)));
    assert_not_found("work_item", run(engine.work_item(&a, b_main.conversation)));
}
