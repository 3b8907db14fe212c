//! The store conformance suite on the in-memory store, directly and through `Arc<dyn Store>`.

use std::sync::Arc;
use touchpoint::store::{InMemoryStore, Store};

#[test]
fn in_memory_store_passes_the_conformance_suite() {
    futures::executor::block_on(touchpoint::testkit::run_all(&InMemoryStore::new()));
}

#[test]
fn in_memory_store_passes_through_arc_dyn_store() {
    let store: Arc<dyn Store> = Arc::new(InMemoryStore::new());
    futures::executor::block_on(touchpoint::testkit::run_all(&*store));
}

#[test]
fn one_store_serves_many_suite_runs() {
    // Every check uses its own tenant, so runs on one shared store do not interfere.
    let store = InMemoryStore::new();
    for _ in 0..3 {
        futures::executor::block_on(touchpoint::testkit::run_all(&store));
    }
}

// ---------------------------------------------------------------------------------------------
// The suite itself: it fails a backend that does not erase.

mod broken {
    use touchpoint::events::StoredEvent;
    use touchpoint::model::*;
    use touchpoint::store::{ChangeSet, Committed, InMemoryStore, LinkKey, MessageQuery, Store, ThreadKey};

    /// A backend that forgets to apply `identity_deletes` (everything else is the in-memory
    /// store): erasure through it leaves every address, raw address and display name behind.
    #[derive(Debug, Default)]
    pub struct KeepsDeletedIdentities(pub InMemoryStore);

    #[async_trait::async_trait]
    impl Store for KeepsDeletedIdentities {
        async fn customer(&self, t: &TenantId, id: CustomerId) -> touchpoint::Result<Option<Customer>> {
            self.0.customer(t, id).await
        }
        async fn customer_by_external_id(&self, t: &TenantId, x: &str) -> touchpoint::Result<Option<Customer>> {
            self.0.customer_by_external_id(t, x).await
        }
        async fn identity(&self, t: &TenantId, id: IdentityId) -> touchpoint::Result<Option<Identity>> {
            self.0.identity(t, id).await
        }
        async fn identity_by_address(
            &self,
            t: &TenantId,
            c: &ChannelKind,
            a: &NormalizedAddress,
        ) -> touchpoint::Result<Option<Identity>> {
            self.0.identity_by_address(t, c, a).await
        }
        async fn identities_of(&self, t: &TenantId, c: CustomerId) -> touchpoint::Result<Vec<Identity>> {
            self.0.identities_of(t, c).await
        }
        async fn customers_by_address(
            &self,
            t: &TenantId,
            k: &LinkKey,
        ) -> touchpoint::Result<Vec<(CustomerId, Verification)>> {
            self.0.customers_by_address(t, k).await
        }
        async fn conversation(&self, t: &TenantId, id: ConversationId) -> touchpoint::Result<Option<Conversation>> {
            self.0.conversation(t, id).await
        }
        async fn conversation_by_thread_key(
            &self,
            t: &TenantId,
            k: &ThreadKey,
        ) -> touchpoint::Result<Option<ConversationId>> {
            self.0.conversation_by_thread_key(t, k).await
        }
        async fn conversations_of(&self, t: &TenantId, c: CustomerId) -> touchpoint::Result<Vec<Conversation>> {
            self.0.conversations_of(t, c).await
        }
        async fn message(&self, t: &TenantId, id: MessageId) -> touchpoint::Result<Option<Message>> {
            self.0.message(t, id).await
        }
        async fn message_by_external_id(
            &self,
            t: &TenantId,
            c: &ChannelKind,
            x: &str,
        ) -> touchpoint::Result<Option<Message>> {
            self.0.message_by_external_id(t, c, x).await
        }
        async fn messages(&self, t: &TenantId, q: &MessageQuery) -> touchpoint::Result<Vec<Message>> {
            self.0.messages(t, q).await
        }
        async fn commit(&self, t: &TenantId, mut changes: ChangeSet) -> touchpoint::Result<Committed> {
            changes.identity_deletes.clear();
            self.0.commit(t, changes).await
        }
        async fn events_after(&self, t: &TenantId, a: u64, l: usize) -> touchpoint::Result<Vec<StoredEvent>> {
            self.0.events_after(t, a, l).await
        }
    }
}

/// Backend authors rely on the conformance suite to tell them their store can erase a
/// customer. A store that ignores `identity_deletes` keeps every erased customer's addresses,
/// yet the suite passes it: the suite must fail it.
#[test]
fn the_conformance_suite_fails_a_store_that_ignores_identity_deletes() {
    let store = broken::KeepsDeletedIdentities::default();
    // Precondition: the broken store really does leave an erased customer's address behind.
    let engine = touchpoint::Engine::builder(Arc::new(broken::KeepsDeletedIdentities(store.0.clone()))).build();
    let t = touchpoint::model::TenantId::new("shop").unwrap();
    futures::executor::block_on(async {
        use touchpoint::model::*;
        let msg = InboundMessage::new(
            ChannelKind::Sms,
            EndpointId::new("sms-main").unwrap(),
            Address::phone("+5511987654321"),
            "SM-1",
            Content::text("erase me"),
        );
        let out = engine.ingest(&t, msg).await.unwrap();
        engine.erase_customer(&t, out.customer).await.unwrap();
        assert!(engine.store().identity(&t, out.identity).await.unwrap().is_some(), "setup: the store is broken");
    });
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        futures::executor::block_on(touchpoint::testkit::run_all(&store))
    }));
    assert!(outcome.is_err(), "the conformance suite passes a store that keeps erased customers' identities");
}
