//! Identities read back from the in-memory store through the engine's public API: what a later
//! message changes (display name, endpoints, versions) is what every read returns.

use futures::executor::block_on;
use std::sync::Arc;
use touchpoint::Engine;
use touchpoint::model::*;
use touchpoint::store::{InMemoryStore, Store};

fn sms(endpoint: &str, external: &str) -> InboundMessage {
    InboundMessage::new(
        ChannelKind::Sms,
        EndpointId::new(endpoint).unwrap(),
        Address::phone("+44 7700 900123"),
        external,
        Content::text("hello"),
    )
}

#[test]
fn a_later_message_updates_the_identity_every_read_returns() {
    let store: Arc<dyn Store> = Arc::new(InMemoryStore::new());
    let engine = Engine::builder(store.clone()).build();
    let tenant = TenantId::new("acme").unwrap();
    block_on(async {
        let first = engine.ingest(&tenant, sms("sms-main", "SM1")).await.unwrap();
        let before = store.identity(&tenant, first.identity).await.unwrap().unwrap();
        assert_eq!(before.display_name, None);
        assert_eq!(before.raw_address, "+44 7700 900123");

        // Same sender, now with a name, through a second endpoint of ours.
        let second = engine.ingest(&tenant, sms("sms-backup", "SM2").with_sender_name("Ana")).await.unwrap();
        assert_eq!(second.identity, first.identity);

        let by_id = store.identity(&tenant, first.identity).await.unwrap().unwrap();
        let by_address = store.identity_by_address(&tenant, &ChannelKind::Sms, &before.address).await.unwrap().unwrap();
        let of_customer = store.identities_of(&tenant, first.customer).await.unwrap();
        assert_eq!(by_id, by_address);
        assert_eq!(of_customer, vec![by_id.clone()]);
        assert_eq!(by_id.display_name.as_deref(), Some("Ana"));
        assert_eq!(by_id.raw_address, "+44 7700 900123", "the raw address is the first one reported");
        assert_eq!(by_id.address.value, "+447700900123");
        assert_eq!(by_id.version, before.version + 1);
        let endpoints: Vec<&str> = by_id.endpoints.iter().map(|e| e.endpoint.as_str()).collect();
        assert_eq!(endpoints, ["sms-main", "sms-backup"]);
        assert!(by_id.endpoints.iter().all(|e| e.last_inbound_at.is_some()));
    });
}

#[test]
fn an_unknown_address_or_tenant_finds_no_identity() {
    let store: Arc<dyn Store> = Arc::new(InMemoryStore::new());
    let engine = Engine::builder(store.clone()).build();
    let tenant = TenantId::new("acme").unwrap();
    block_on(async {
        let o = engine.ingest(&tenant, sms("sms-main", "SM1")).await.unwrap();
        let known = store.identity(&tenant, o.identity).await.unwrap().unwrap();
        let other = NormalizedAddress { kind: AddressKind::Phone, value: "+447700900124".into() };
        assert_eq!(store.identity_by_address(&tenant, &ChannelKind::Sms, &other).await.unwrap(), None);
        // Same address, other channel or kind, other tenant: not this identity.
        assert_eq!(store.identity_by_address(&tenant, &ChannelKind::WhatsApp, &known.address).await.unwrap(), None);
        let as_email = NormalizedAddress { kind: AddressKind::Email, value: known.address.value.clone() };
        assert_eq!(store.identity_by_address(&tenant, &ChannelKind::Sms, &as_email).await.unwrap(), None);
        let beta = TenantId::new("beta").unwrap();
        assert_eq!(store.identity_by_address(&beta, &ChannelKind::Sms, &known.address).await.unwrap(), None);
        assert_eq!(store.identity(&beta, o.identity).await.unwrap(), None);
    });
}

#[test]
fn key_ids_take_str_and_string_alike() {
    let from_str = EndpointId::new("wa-main").unwrap();
    let from_string = EndpointId::new(String::from("wa-main")).unwrap();
    assert_eq!(from_str, from_string);
    assert_eq!(from_str.as_str(), "wa-main");
    assert!(matches!(TenantId::new(""), Err(touchpoint::Error::InvalidInput { field: "tenant", .. })));
    assert!(matches!(EndpointId::new("wa main"), Err(touchpoint::Error::InvalidInput { field: "endpoint", .. })));
}
