//! Shared test helpers (engine harness, ids, message builders, store inspection) for the test
//! binaries that `mod common;` them: an engine over an `InMemoryStore` with a `ManualClock`.

#![allow(dead_code)] // each test binary uses a different subset

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::StreamExt;
use std::sync::Arc;
use touchpoint::clock::ManualClock;
use touchpoint::context::{ContextView, TimelinePage};
use touchpoint::events::{Event, StoredEvent};
use touchpoint::model::*;
use touchpoint::store::InMemoryStore;
use touchpoint::thread::ThreadingPolicy;
use touchpoint::{Engine, EngineConfig, IngestOutcome, OutboundMessage};

/// Runs a future to completion on the current thread.
pub fn run<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

/// The time every test starts at.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

/// Sorts every array (by its JSON text) so that two dumps of the same data compare equal
/// whatever the iteration order of the store's hash maps.
pub fn canonical(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(canonical).collect();
            items.sort_by_cached_key(|i| i.to_string());
            Value::Array(items)
        }
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), canonical(v))).collect()),
        other => other.clone(),
    }
}

/// An engine with a manual clock over an in-memory store we can inspect.
pub struct Harness {
    pub engine: Engine,
    pub store: InMemoryStore,
    pub clock: Arc<ManualClock>,
    pub tenant: TenantId,
}

impl Harness {
    /// Default configuration.
    pub fn new() -> Self {
        Self::with_config(EngineConfig::default())
    }

    /// Default configuration with `threading`.
    pub fn with_threading(threading: ThreadingPolicy) -> Self {
        Self::with_config(EngineConfig { threading, ..EngineConfig::default() })
    }

    /// A given configuration.
    pub fn with_config(config: EngineConfig) -> Self {
        let store = InMemoryStore::new();
        let clock = Arc::new(ManualClock::new(t0()));
        let engine = Engine::builder(Arc::new(store.clone())).clock(clock.clone()).config(config).build();
        Harness { engine, store, clock, tenant: tenant("acme") }
    }

    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.engine.now()
    }

    /// Ingests into the default tenant, panicking on error.
    pub fn ingest(&self, msg: InboundMessage) -> IngestOutcome {
        let what = format!("{:?} from {:?}", msg.external_id, msg.sender);
        run(self.engine.ingest(&self.tenant, msg)).unwrap_or_else(|e| panic!("ingest of {what} failed: {e}"))
    }

    /// Ingests into the default tenant, returning the result.
    pub fn try_ingest(&self, msg: InboundMessage) -> touchpoint::Result<IngestOutcome> {
        run(self.engine.ingest(&self.tenant, msg))
    }

    pub fn customer(&self, id: CustomerId) -> Customer {
        run(self.engine.customer(&self.tenant, id)).expect("customer")
    }

    pub fn conversation(&self, id: ConversationId) -> Conversation {
        run(self.engine.conversation(&self.tenant, id)).expect("conversation")
    }

    pub fn message(&self, id: MessageId) -> Message {
        run(self.engine.message(&self.tenant, id)).expect("message")
    }

    pub fn identities_of(&self, customer: CustomerId) -> Vec<Identity> {
        run(self.engine.store().identities_of(&self.tenant, customer)).expect("identities")
    }

    pub fn conversations_of(&self, customer: CustomerId) -> Vec<Conversation> {
        run(self.engine.store().conversations_of(&self.tenant, customer)).expect("conversations")
    }

    pub fn context(&self, customer: CustomerId) -> ContextView {
        run(self.engine.customer_context(&self.tenant, customer, TimelinePage { before: None, limit: 500 }))
            .expect("context")
    }

    /// Every message of the customer's timeline (all pages).
    pub fn timeline(&self, customer: CustomerId) -> Vec<Message> {
        self.context(customer).timeline
    }

    pub fn outbound(&self, conversation: ConversationId, out: OutboundMessage) -> touchpoint::Result<Message> {
        run(self.engine.record_outbound(&self.tenant, conversation, out))
    }

    pub fn set_status(&self, conversation: ConversationId, status: ConversationStatus) -> Conversation {
        let patch = touchpoint::ConversationPatch { status: Some(status), ..Default::default() };
        run(self.engine.update_conversation(&self.tenant, conversation, patch)).expect("status change")
    }

    /// Everything stored (all tenants).
    pub fn dump(&self) -> serde_json::Value {
        self.store.dump()
    }

    /// The part of the dump for the default tenant.
    pub fn tenant_dump(&self) -> serde_json::Value {
        self.store.dump().get(self.tenant.as_str()).cloned().unwrap_or(serde_json::Value::Null)
    }

    /// How many records of `kind` (`customers`, `identities`, `conversations`, `messages`, …) the
    /// default tenant holds.
    pub fn count(&self, kind: &str) -> usize {
        self.tenant_dump().get(kind).and_then(|v| v.as_array()).map_or(0, Vec::len)
    }

    /// All events of the default tenant so far, in outbox order.
    pub fn events(&self) -> Vec<StoredEvent> {
        run(self.engine.store().events_after(&self.tenant, 0, 1_000_000)).expect("events")
    }

    /// The same, read through the public stream.
    pub fn streamed_events(&self) -> Vec<StoredEvent> {
        let n = self.events().len();
        run(self.engine.subscribe(&self.tenant, 0).take(n).map(|e| e.expect("stream item")).collect())
    }

    /// Just the event payloads.
    pub fn event_kinds(&self) -> Vec<Event> {
        self.events().into_iter().map(|e| e.event).collect()
    }
}

pub fn tenant(name: &str) -> TenantId {
    TenantId::new(name).unwrap()
}

pub fn endpoint(name: &str) -> EndpointId {
    EndpointId::new(name).unwrap()
}

pub fn agent(name: &str) -> AgentId {
    AgentId::new(name).unwrap()
}

pub fn text(body: &str) -> Content {
    Content::text(body)
}

pub fn template(name: &str) -> Content {
    Content::Template { name: name.into(), language: "en".into(), parameters: vec![] }
}

/// A WhatsApp message from a phone number to one of our numbers.
pub fn whatsapp(our_number: &str, phone: &str, wamid: &str, body: &str) -> InboundMessage {
    InboundMessage::new(ChannelKind::WhatsApp, endpoint(our_number), Address::phone(phone), wamid, text(body))
}

/// An SMS.
pub fn sms(our_number: &str, phone: &str, id: &str, body: &str) -> InboundMessage {
    InboundMessage::new(ChannelKind::Sms, endpoint(our_number), Address::phone(phone), id, text(body))
}

/// An email to `support-inbox`; `message_id` is the Message-ID header.
pub fn email(from: &str, message_id: &str, body: &str) -> InboundMessage {
    InboundMessage::new(ChannelKind::Email, endpoint("support-inbox"), Address::email(from), message_id, text(body))
}

/// An email answering `in_reply_to`, with `references`.
pub fn email_reply(from: &str, message_id: &str, in_reply_to: &str, references: &[&str], body: &str) -> InboundMessage {
    email(from, message_id, body).with_thread(ThreadHints {
        in_reply_to: Some(in_reply_to.into()),
        references: references.iter().map(|s| s.to_string()).collect(),
        ..ThreadHints::default()
    })
}

/// A web-chat message from a visitor token on the `site-widget` widget.
pub fn webchat(visitor: &str, id: &str, body: &str) -> InboundMessage {
    InboundMessage::new(
        ChannelKind::WebChat,
        endpoint("site-widget"),
        Address::platform("site-widget", visitor),
        id,
        text(body),
    )
}

/// Hints with just a reply token.
pub fn reply_token_hint(token: &str) -> ThreadHints {
    ThreadHints { reply_token: Some(token.into()), ..ThreadHints::default() }
}

/// Hints with just a provider thread id.
pub fn provider_thread_hint(id: &str) -> ThreadHints {
    ThreadHints { provider_thread_id: Some(id.into()), ..ThreadHints::default() }
}

/// The message bodies of a timeline, in timeline order.
pub fn bodies(messages: &[Message]) -> Vec<String> {
    messages.iter().map(|m| m.content.summary()).collect()
}

/// A conversation id nobody has.
pub fn unknown_conversation() -> ConversationId {
    "01900000-0000-7000-8000-00000000abcd".parse().unwrap()
}

/// A customer id nobody has.
pub fn unknown_customer() -> CustomerId {
    "01900000-0000-7000-8000-00000000dcba".parse().unwrap()
}

/// What a test does in place of a store's commit (to fail it, or to run something else in the
/// middle of it); [`HookedStore`] answers every read from its in-memory store.
#[async_trait::async_trait]
pub trait CommitHook: Send + Sync + std::fmt::Debug + 'static {
    /// Commits `changes` (usually through `inner`), or not.
    async fn commit(
        &self,
        inner: &InMemoryStore,
        tenant: &TenantId,
        changes: touchpoint::store::ChangeSet,
    ) -> touchpoint::Result<touchpoint::store::Committed>;
}

/// An in-memory store whose commits go through `hook`.
#[derive(Debug)]
pub struct HookedStore<H> {
    pub inner: InMemoryStore,
    pub hook: H,
}

#[async_trait::async_trait]
impl<H: CommitHook> touchpoint::store::Store for HookedStore<H> {
    async fn customer(&self, t: &TenantId, id: CustomerId) -> touchpoint::Result<Option<Customer>> {
        self.inner.customer(t, id).await
    }
    async fn customer_by_external_id(&self, t: &TenantId, x: &str) -> touchpoint::Result<Option<Customer>> {
        self.inner.customer_by_external_id(t, x).await
    }
    async fn identity(&self, t: &TenantId, id: IdentityId) -> touchpoint::Result<Option<Identity>> {
        self.inner.identity(t, id).await
    }
    async fn identity_by_address(
        &self,
        t: &TenantId,
        channel: &ChannelKind,
        address: &NormalizedAddress,
    ) -> touchpoint::Result<Option<Identity>> {
        self.inner.identity_by_address(t, channel, address).await
    }
    async fn identities_of(&self, t: &TenantId, c: CustomerId) -> touchpoint::Result<Vec<Identity>> {
        self.inner.identities_of(t, c).await
    }
    async fn customers_by_address(
        &self,
        t: &TenantId,
        key: &touchpoint::store::LinkKey,
    ) -> touchpoint::Result<Vec<(CustomerId, Verification)>> {
        self.inner.customers_by_address(t, key).await
    }
    async fn conversation(&self, t: &TenantId, id: ConversationId) -> touchpoint::Result<Option<Conversation>> {
        self.inner.conversation(t, id).await
    }
    async fn conversation_by_thread_key(
        &self,
        t: &TenantId,
        key: &touchpoint::store::ThreadKey,
    ) -> touchpoint::Result<Option<ConversationId>> {
        self.inner.conversation_by_thread_key(t, key).await
    }
    async fn conversations_of(&self, t: &TenantId, c: CustomerId) -> touchpoint::Result<Vec<Conversation>> {
        self.inner.conversations_of(t, c).await
    }
    async fn message(&self, t: &TenantId, id: MessageId) -> touchpoint::Result<Option<Message>> {
        self.inner.message(t, id).await
    }
    async fn message_by_external_id(
        &self,
        t: &TenantId,
        channel: &ChannelKind,
        x: &str,
    ) -> touchpoint::Result<Option<Message>> {
        self.inner.message_by_external_id(t, channel, x).await
    }
    async fn messages(&self, t: &TenantId, q: &touchpoint::store::MessageQuery) -> touchpoint::Result<Vec<Message>> {
        self.inner.messages(t, q).await
    }
    async fn commit(
        &self,
        t: &TenantId,
        changes: touchpoint::store::ChangeSet,
    ) -> touchpoint::Result<touchpoint::store::Committed> {
        self.hook.commit(&self.inner, t, changes).await
    }
    async fn events_after(&self, t: &TenantId, after: u64, limit: usize) -> touchpoint::Result<Vec<StoredEvent>> {
        self.inner.events_after(t, after, limit).await
    }
}
