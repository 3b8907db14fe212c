//! Compile-time guarantees hosts rely on: shared types are `Send + Sync`, and the engine's
//! futures are `Send`, so they can run on a multi-threaded executor or be spawned.

use std::future::Future;
use touchpoint::Engine;
use touchpoint::events::EventStream;
use touchpoint::model::*;
use touchpoint::store::{InMemoryStore, Store};

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>(_: &T) {}

fn is_send_future<F: Future + Send>(f: F) -> F {
    f
}

#[test]
fn shared_types_are_send_and_sync() {
    send_sync::<Engine>();
    send_sync::<InMemoryStore>();
    send_sync::<std::sync::Arc<dyn Store>>();
    send_sync::<touchpoint::Error>();
}

#[test]
fn engine_futures_are_send() {
    let engine = Engine::in_memory();
    let tenant = TenantId::new("acme").unwrap();
    let msg = InboundMessage::new(
        ChannelKind::Sms,
        EndpointId::new("sms").unwrap(),
        Address::phone("+14155550123"),
        "SM1",
        Content::text("hi"),
    );
    let ingest = is_send_future(engine.ingest(&tenant, msg));
    let outcome = futures::executor::block_on(ingest).unwrap();
    let context = is_send_future(engine.customer_context(&tenant, outcome.customer, Default::default()));
    assert_eq!(futures::executor::block_on(context).unwrap().customer.id, outcome.customer);
    let stream: EventStream = engine.subscribe(&tenant, 0);
    send(&stream);
}
