//! The engine: the facade that composes identity, threading, storage and events.

mod delivery;
mod ops;
mod routing;
mod send;

pub use ops::{ConversationPatch, CustomerPatch, MergePlan, OutboundMessage, SurvivorRule};
pub use send::{SendOutcome, SendRequest, SentPart};

use crate::channel::{Channel, ChannelPolicy, ReplyWindowRule};
use crate::clock::{Clock, SystemClock};
use crate::events::{Event, EventStream, Notifier};
use crate::identity::{self, NewIds, Normalizer, Resolution, Sender};
use crate::idgen::IdGen;
use crate::model::{
    Author, ChannelKind, ContentLimits, Conversation, ConversationId, ConversationStatus, CustomerId, DeliveryState,
    Direction, EndpointId, IdentityId, InboundMessage, Message, MessageId, Priority, TenantId,
};
use crate::store::{ChangeSet, Committed, DedupeKey, InMemoryStore, Store, ThreadKey, ThreadKeyClaim, Write};
use crate::thread::{self, Placement, ThreadDecision, ThreadInput, ThreadingPolicy};
use crate::{Error, Result};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// How the engine behaves. `Default` gives the conservative defaults of the context-model
/// anchors.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Threading rules.
    pub threading: ThreadingPolicy,
    /// Size limits for content.
    pub limits: ContentLimits,
    /// Reply windows per channel, measured from the customer's latest inbound message on the
    /// same endpoint (WhatsApp, Messenger and Instagram: 24 h).
    pub reply_windows: HashMap<ChannelKind, Duration>,
    /// Longer windows for replies written by a human agent (Messenger and Instagram: 7 days
    /// with the `HUMAN_AGENT` message tag, which the transport must set). Bots and system
    /// messages keep the standard window.
    pub human_agent_reply_windows: HashMap<ChannelKind, Duration>,
    /// Region (ISO 3166 alpha-2) for phone numbers written without a country code. A code
    /// the phone metadata does not know (`"UK"`; the United Kingdom is `"GB"`) makes every
    /// such number an [`Error::InvalidAddress`](crate::Error::InvalidAddress) at ingest.
    pub default_phone_region: Option<String>,
    /// How often a write that lost an optimistic-concurrency race is recomputed before the
    /// conflict is returned.
    pub max_commit_attempts: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        let reply_windows = [ChannelKind::WhatsApp, ChannelKind::Messenger, ChannelKind::Instagram]
            .into_iter()
            .map(|c| (c, Duration::hours(24)))
            .collect();
        EngineConfig {
            threading: ThreadingPolicy::default(),
            limits: ContentLimits::default(),
            reply_windows,
            human_agent_reply_windows: [ChannelKind::Messenger, ChannelKind::Instagram]
                .into_iter()
                .map(|c| (c, Duration::days(7)))
                .collect(),
            default_phone_region: None,
            max_commit_attempts: 16,
        }
    }
}

/// The multichannel customer-service engine: hand it every inbound contact, ask it for context.
///
/// Cheap to clone (all clones share state); `Send + Sync`.
///
/// ```
/// use touchpoint::Engine;
/// use touchpoint::model::*;
/// # futures::executor::block_on(async {
/// let engine = Engine::in_memory();
/// let tenant = TenantId::new("acme").unwrap();
/// let inbound = InboundMessage::new(
///     ChannelKind::Sms,
///     EndpointId::new("sms-support").unwrap(),
///     Address::phone("+14155550123"),
///     "SM1",
///     Content::text("Where is my parcel?"),
/// );
/// let outcome = engine.ingest(&tenant, inbound.clone()).await.unwrap();
/// assert!(!outcome.duplicate);
/// // A retried webhook changes nothing.
/// let again = engine.ingest(&tenant, inbound).await.unwrap();
/// assert!(again.duplicate);
/// assert_eq!(again.message, outcome.message);
/// # });
/// ```
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
    normalizer: Normalizer,
    ids: IdGen,
    notifier: Arc<Notifier>,
    router: Option<Arc<crate::routing::Router>>,
    channels: BTreeMap<EndpointId, Arc<dyn Channel>>,
    channel_policy: ChannelPolicy,
    /// `channel_policy` with default endpoints only where a channel is registered.
    reachable_policy: ChannelPolicy,
    /// Sends under way, by (tenant, message id), so a concurrent retry does not send twice.
    sending: Mutex<HashSet<(TenantId, MessageId)>>,
    /// The tenant of each conversation this engine handed to the router and the router still
    /// holds: one router serves every tenant, and a call for one tenant returns the events of
    /// timers that fell due for the others' items too.
    routed: Mutex<HashMap<ConversationId, TenantId>>,
    /// Lanes that ingests from one sender (tenant, channel, normalised address, every spelling of
    /// a phone number alike) and records of
    /// our messages to it take turns on: concurrent deliveries from one sender (a burst of
    /// photos arrives as simultaneous webhooks) and replies to it would otherwise all read the
    /// same identity and conversation, and all but one commit would conflict, again and again,
    /// until one ran out of attempts.
    ingest_lanes: Box<[futures::lock::Mutex<()>]>,
    /// Picks a sender's lane, with seeds of this engine's own (senders cannot be chosen to
    /// share one).
    lane_hash: crate::hash::KeyedState,
}

/// How many [`Inner::ingest_lanes`] an engine has: unrelated senders rarely share one. With 256
/// ingests in flight, about 6 % share their lane with another sender's (with 256 lanes about
/// 63 % did, and SQLite group commit batched fewer messages).
const INGEST_LANES: usize = 4096;

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("store", &self.inner.store).field("config", &self.inner.config).finish()
    }
}

/// Builds an [`Engine`].
#[derive(Debug)]
pub struct EngineBuilder {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
    router: Option<Arc<crate::routing::Router>>,
    channels: BTreeMap<EndpointId, Arc<dyn Channel>>,
    channel_policy: Option<ChannelPolicy>,
}

impl EngineBuilder {
    /// Uses `clock` for all timestamps and timers.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses `config`.
    pub fn config(mut self, config: EngineConfig) -> Self {
        self.config = config;
        self
    }

    /// Routes every conversation that needs a handler through `router` as part of
    /// [`Engine::ingest`] (see [`IngestOutcome::routing`]).
    pub fn router(mut self, router: Arc<crate::routing::Router>) -> Self {
        self.router = Some(router);
        self
    }

    /// Registers `channel` for sending through its endpoint with [`Engine::send`] (a later
    /// channel for the same endpoint replaces an earlier one).
    pub fn channel(mut self, channel: Arc<dyn Channel>) -> Self {
        self.channels.insert(channel.endpoint().clone(), channel);
        self
    }

    /// Uses `policy` to choose the channel of [`Engine::send`] (preference, fallbacks, default
    /// endpoints, opt-in). Its reply windows are replaced by those of the [`EngineConfig`], the
    /// one place reply windows are set. Default: [`ChannelPolicy::default`] with those windows.
    pub fn channel_policy(mut self, policy: ChannelPolicy) -> Self {
        self.channel_policy = Some(policy);
        self
    }

    /// Sets the threading policy.
    pub fn threading(mut self, threading: ThreadingPolicy) -> Self {
        self.config.threading = threading;
        self
    }

    /// The engine.
    pub fn build(self) -> Engine {
        let normalizer = Normalizer::new(self.config.default_phone_region.clone());
        let mut channel_policy = self.channel_policy.unwrap_or_default();
        channel_policy.reply_windows = reply_window_rules(&self.config);
        let mut reachable_policy = channel_policy.clone();
        reachable_policy.default_endpoints.retain(|_, e| self.channels.contains_key(e));
        Engine {
            inner: Arc::new(Inner {
                store: self.store,
                clock: self.clock,
                config: self.config,
                normalizer,
                ids: IdGen::new(),
                notifier: Arc::new(Notifier::default()),
                router: self.router,
                channels: self.channels,
                channel_policy,
                reachable_policy,
                sending: Mutex::new(HashSet::new()),
                routed: Mutex::new(HashMap::new()),
                ingest_lanes: (0..INGEST_LANES).map(|_| futures::lock::Mutex::new(())).collect(),
                lane_hash: crate::hash::KeyedState::default(),
            }),
        }
    }
}

/// What [`Engine::ingest`] did with a message, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestOutcome {
    /// The stored message (for a duplicate: the one stored the first time).
    pub message: MessageId,
    /// The customer it was attributed to.
    pub customer: CustomerId,
    /// The identity it came from.
    pub identity: IdentityId,
    /// The conversation it joined.
    pub conversation: ConversationId,
    /// Whether the message had been ingested before (nothing changed).
    pub duplicate: bool,
    /// How the sender was matched to the customer.
    pub resolution: Resolution,
    /// How the conversation was chosen.
    pub thread: ThreadDecision,
    /// Existing customers the contact resembles on unverified keys (not linked).
    pub suspected_duplicates: Vec<CustomerId>,
    /// Whether the conversation is open with nobody handling it (routing should pick it up); never
    /// for a blocked customer's message kept quietly ([`ThreadDecision::KeptQuiet`]).
    pub needs_handler: bool,
    /// Human-readable notes on decisions (ignored references, refused links).
    pub notes: Vec<String>,
    /// What the engine's router did with the conversation, when a router is configured and
    /// the conversation needed a handler the router did not already hold. A routing failure
    /// never fails the ingest (the message is stored): it is reported in `notes`.
    pub routing: Option<crate::routing::RoutingDecision>,
}

struct EngineIds<'a> {
    source: &'a IdGen,
    now: DateTime<Utc>,
}

impl NewIds for EngineIds<'_> {
    fn customer_id(&self) -> CustomerId {
        CustomerId(self.source.next(self.now))
    }
    fn identity_id(&self) -> IdentityId {
        IdentityId(self.source.next(self.now))
    }
}

impl Engine {
    /// A builder over `store`, with the system clock and default configuration.
    pub fn builder(store: Arc<dyn Store>) -> EngineBuilder {
        EngineBuilder {
            store,
            clock: Arc::new(SystemClock),
            config: EngineConfig::default(),
            router: None,
            channels: BTreeMap::new(),
            channel_policy: None,
        }
    }

    /// An engine over a fresh [`InMemoryStore`] with defaults.
    pub fn in_memory() -> Engine {
        Engine::builder(Arc::new(InMemoryStore::new())).build()
    }

    /// The store this engine writes to.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The current time on the engine's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    pub(crate) fn next_id(&self, now: DateTime<Utc>) -> uuid::Uuid {
        self.inner.ids.next(now)
    }

    pub(crate) fn normalizer(&self) -> &Normalizer {
        &self.inner.normalizer
    }

    /// Commits `changes`, then wakes event subscribers.
    pub(crate) async fn commit(&self, tenant: &TenantId, changes: ChangeSet) -> Result<Committed> {
        let has_events = !changes.events.is_empty();
        let committed = self.inner.store.commit(tenant, changes).await?;
        if has_events && matches!(committed, Committed::Applied { .. }) {
            self.inner.notifier.notify();
        }
        Ok(committed)
    }

    /// Runs `attempt` until it does not fail with a conflict, at most `max_commit_attempts` times.
    pub(crate) async fn retrying<T, F, Fut>(&self, attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.retrying_up_to(self.inner.config.max_commit_attempts, attempt).await
    }

    /// Runs `attempt` until it does not fail with a conflict, at most `max` times.
    pub(crate) async fn retrying_up_to<T, F, Fut>(&self, max: u32, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut tries = 0;
        loop {
            tries += 1;
            match attempt().await {
                Err(Error::Conflict(_)) if tries < max.max(1) => continue,
                other => return other,
            }
        }
    }

    /// The lane that ingests from, and records of messages to, the identities at `address` (on
    /// every channel) take turns on (see [`Inner::ingest_lanes`]).
    pub(crate) fn lane(
        &self,
        tenant: &TenantId,
        address: &crate::model::NormalizedAddress,
    ) -> &futures::lock::Mutex<()> {
        use std::hash::BuildHasher;
        // Every spelling of one phone (the Brazilian ninth digit and the like), on every channel,
        // takes the same lane: two first messages in the two spellings, or on WhatsApp and by
        // SMS, would each find no identity and make a customer apiece.
        let others = crate::identity::other_spellings(address);
        let spelling = others.iter().map(|a| a.value.as_str()).fold(address.value.as_str(), std::cmp::min);
        let h = self.inner.lane_hash.hash_one((tenant, address.kind, spelling));
        &self.inner.ingest_lanes[(h % INGEST_LANES as u64) as usize]
    }

    /// A stream of the tenant's events with a sequence number greater than `after`
    /// (0: from the beginning of the outbox), in commit order.
    pub fn subscribe(&self, tenant: &TenantId, after: u64) -> EventStream {
        EventStream::new(self.inner.store.clone(), tenant.clone(), self.inner.notifier.clone(), after)
    }

    /// Ingests one inbound message: dedupe, resolve the customer, thread, append, emit events —
    /// all in one atomic commit. Idempotent on `(tenant, channel, external_id)`.
    ///
    /// Bad input (empty or oversize content, malformed address or external id) fails with
    /// [`Error::InvalidInput`] or [`Error::InvalidAddress`] and changes nothing.
    ///
    /// Concurrent ingests of one sender through the same engine take turns (they would only
    /// conflict with each other); concurrent deliveries of the same message store it once and
    /// answer the others as duplicates. An ingest racing [`Engine::erase_customer`] of the
    /// sender's customer is never half applied: either it commits first and its message is
    /// erased with the customer (the outcome names the erased customer), or it commits after
    /// the erasure and the message starts afresh under a new customer.
    pub async fn ingest(&self, tenant: &TenantId, mut msg: InboundMessage) -> Result<IngestOutcome> {
        validate_inbound(&msg, &self.inner.config.limits)?;
        msg.external_id = provider_id(&msg.channel, &msg.external_id).to_owned();
        let address = self.inner.normalizer.address(&msg.sender)?;
        let claims = msg
            .claims
            .iter()
            .map(|c| Ok((self.inner.normalizer.key(&c.key)?, c.verification)))
            .collect::<Result<Vec<_>>>()?;
        let lane = self.lane(tenant, &address);
        let sender = Sender { msg: &msg, address, claims };
        let mut outcome = {
            let _turn = lane.lock().await;
            self.retrying(|| self.try_ingest(tenant, &sender)).await?
        };
        if let Some(router) = &self.inner.router
            && outcome.needs_handler
            && router.item(crate::routing::WorkItemId::from(outcome.conversation)).is_none()
        {
            match self.route_conversation(tenant, outcome.conversation).await {
                Ok(decision) => outcome.routing = Some(decision),
                Err(e) => outcome.notes.push(format!("routing failed: {e}")),
            }
        }
        Ok(outcome)
    }

    async fn try_ingest(&self, tenant: &TenantId, sender: &Sender<'_>) -> Result<IngestOutcome> {
        let store = &*self.inner.store;
        let msg = sender.msg;
        // No look-up of the provider id first: the commit checks the change set's dedupe key
        // atomically and answers `Duplicate` (changing nothing), so a new message — nearly every
        // message — costs one store round trip less.
        let now = self.inner.clock.now();
        let ids = EngineIds { source: &self.inner.ids, now };
        let resolved = identity::resolve(store, tenant, sender, now, &ids).await?;
        let mut notes = resolved.notes;
        let input = ThreadInput {
            msg,
            customer: resolved.customer.id,
            identity: resolved.identity.id,
            endpoint: &msg.endpoint,
            blocked: resolved.customer.blocked,
            now,
        };
        let placement = match thread::place(store, tenant, &self.inner.config.threading, &input, &mut notes).await {
            Ok(placement) => placement,
            // A retried webhook of a message stored before its conversation was resolved (a
            // `Reject` conversation refuses new messages) is a duplicate, and answered as one.
            Err(refusal @ Error::Refused(_)) => {
                return match store.message_by_external_id(tenant, &msg.channel, &msg.external_id).await? {
                    Some(existing) if existing.direction == crate::model::Direction::Inbound => {
                        self.duplicate_outcome(tenant, existing, resolved.identity.id, &sender.address, &msg.content)
                            .await
                    }
                    _ => Err(refusal),
                };
            }
            Err(e) => return Err(e),
        };

        let mut events = resolved.events;
        let (mut conversation, decision, expected) = match placement {
            Placement::Existing { conversation, decision } => {
                let expected = Some(conversation.version);
                (conversation, decision, expected)
            }
            Placement::New { decision, previous } => {
                let c = self.new_conversation(tenant, &resolved.customer, &msg.channel, previous, now);
                events.push(Event::ConversationOpened {
                    conversation: c.id,
                    customer: c.customer,
                    channel: msg.channel.clone(),
                    previous,
                });
                (c, decision, None)
            }
        };
        // Never before what the conversation already holds: an ingest that read the conversation
        // after a later message (a concurrent ingest or reply that took its time after `now` was
        // taken) was committed keeps the conversation's order — commit order, id order and time
        // order agree, and `last_inbound_at`, `waiting_since` and `last_activity_at` never move
        // back past the latest message.
        let now = now.max(conversation.last_activity_at);

        if let ThreadDecision::Reopened { .. } = decision {
            let from = conversation.status.name().to_owned();
            conversation.set_status(ConversationStatus::Open, now)?;
            events.push(Event::ConversationReopened { conversation: conversation.id });
            events.push(Event::ConversationStatusChanged { conversation: conversation.id, from, to: "open".into() });
        }
        if expected.is_some() && conversation.adds_channel(&msg.channel) {
            events.push(Event::ChannelAdded { conversation: conversation.id, channel: msg.channel.clone() });
        }
        let session = (msg.endpoint.clone(), resolved.identity.id);
        if !conversation.sessions.contains(&session) {
            conversation.sessions.push(session.clone());
        }
        conversation.count_message(&msg.channel, true, now);
        conversation.last_inbound_at = Some(now);
        conversation.last_inbound_via = Some(session);
        if conversation.status.is_open() {
            conversation.waiting_since.get_or_insert(now);
        }
        if conversation.subject.is_none() {
            conversation.subject.clone_from(&msg.thread.subject);
        }
        conversation.version = expected.map_or(0, |v| v + 1);

        let message = Message {
            id: MessageId(self.inner.ids.next(now)),
            tenant: tenant.clone(),
            conversation: conversation.id,
            direction: Direction::Inbound,
            author: Author::Customer(resolved.identity.id),
            channel: msg.channel.clone(),
            endpoint: msg.endpoint.clone(),
            external_id: Some(msg.external_id.clone()),
            recipient: None,
            content: msg.content.clone(),
            delivery: DeliveryState::Delivered,
            sent_at: msg.sent_at.unwrap_or(now),
            recorded_at: now,
            version: 0,
        };
        events.push(Event::MessageReceived {
            conversation: conversation.id,
            message: message.id,
            channel: msg.channel.clone(),
        });

        let mut thread_keys = Vec::new();
        if expected.is_none() {
            thread_keys
                .push(ThreadKeyClaim::new(ThreadKey::ReplyToken(conversation.reply_token.clone()), conversation.id));
        }
        if let Some(id) = msg.thread.provider_thread_id.as_deref().filter(|s| !s.is_empty()) {
            // A conversation opened after a closed (or long-resolved) one takes its provider
            // thread over, so later messages on that thread land here.
            thread_keys.push(ThreadKeyClaim {
                key: ThreadKey::ProviderThread(msg.channel.clone(), id.to_owned()),
                conversation: conversation.id,
                replaces: conversation.previous,
            });
        }
        if msg.channel == ChannelKind::Email {
            let id = thread::message_id(&msg.external_id);
            if !id.is_empty() {
                thread_keys.push(ThreadKeyClaim::new(ThreadKey::EmailMessageId(id.to_owned()), conversation.id));
            }
        }

        let needs_handler = needs_handler(&conversation, resolved.customer.blocked);
        let outcome = IngestOutcome {
            message: message.id,
            customer: resolved.customer.id,
            identity: resolved.identity.id,
            conversation: conversation.id,
            duplicate: false,
            resolution: resolved.resolution,
            thread: decision,
            suspected_duplicates: resolved.suspects,
            needs_handler,
            notes,
            routing: None,
        };
        // Whatever attaches an identity or conversation to a customer (a new one, or one moved
        // from another customer) also bumps the customer's version, so an erasure or merge
        // computed concurrently must re-read.
        let attaches = resolved.identity_write.expected.is_none()
            || matches!(outcome.resolution, Resolution::Moved { .. })
            || !resolved.claimed.is_empty()
            || expected.is_none();
        let customer_write = match resolved.customer_write {
            Some(w) => Some(w),
            None if attaches => Some(touch(&resolved.customer)),
            None => None,
        };
        let changes = ChangeSet {
            dedupe: Some(DedupeKey { channel: msg.channel.clone(), external_id: msg.external_id.clone() }),
            customers: customer_write.into_iter().collect(),
            identities: std::iter::once(resolved.identity_write).chain(resolved.claimed).collect(),
            conversations: vec![Write { record: conversation, expected }],
            messages: vec![Write::insert(message)],
            thread_keys,
            events,
            at: now,
            ..ChangeSet::default()
        };
        match self.commit(tenant, changes).await? {
            Committed::Applied { .. } => Ok(outcome),
            Committed::Duplicate { message } => match store.message(tenant, message).await? {
                Some(existing) => {
                    self.duplicate_outcome(tenant, existing, resolved.identity.id, &sender.address, &msg.content).await
                }
                None => Err(Error::Conflict("the duplicate's message vanished".into())),
            },
        }
    }

    pub(crate) fn new_conversation(
        &self,
        tenant: &TenantId,
        customer: &crate::model::Customer,
        origin: &ChannelKind,
        previous: Option<ConversationId>,
        now: DateTime<Utc>,
    ) -> Conversation {
        Conversation {
            id: ConversationId(self.inner.ids.next(now)),
            tenant: tenant.clone(),
            customer: customer.id,
            // A blocked customer's conversation is created resolved: nobody is notified.
            status: if customer.blocked { ConversationStatus::Resolved } else { ConversationStatus::Open },
            priority: Priority::Normal,
            subject: None,
            tags: Default::default(),
            handler: None,
            last_agent: None,
            last_agent_at: None,
            origin: origin.clone(),
            channels: Vec::new(),
            sessions: Vec::new(),
            last_inbound_via: None,
            previous,
            reply_token: uuid::Uuid::new_v4().simple().to_string(),
            created_at: now,
            last_activity_at: now,
            last_inbound_at: None,
            waiting_since: None,
            first_response_at: None,
            resolved_at: if customer.blocked { Some(now) } else { None },
            closed_at: None,
            message_count: 0,
            version: 0,
        }
    }

    /// The answer to a message whose provider id is stored already: the stored message's, when
    /// its sender resolved to the same identity (the address may be spelled otherwise: the
    /// resolver matches lookup variants) or has the same address (concurrent first deliveries
    /// of a new sender each resolve to an identity of their own, and one is stored). Another
    /// sender's message under the same id (an email Message-ID is visible to everyone on a
    /// thread) is refused, never answered with the first sender's customer and conversation.
    async fn duplicate_outcome(
        &self,
        tenant: &TenantId,
        existing: Message,
        identity: IdentityId,
        address: &crate::model::NormalizedAddress,
        content: &crate::model::Content,
    ) -> Result<IngestOutcome> {
        // Another sender's message under the same provider id is refused, never answered as
        // a duplicate (it would be acknowledged and stored nowhere). When the first sender's
        // identity is gone (unlinked), its address is unknown: only the same content passes
        // as a retry.
        let other_sender = match existing.author {
            Author::Customer(i) if i != identity => match self.inner.store.identity(tenant, i).await? {
                Some(first) => first.address != *address,
                None => existing.content != *content,
            },
            _ => false,
        };
        if other_sender {
            return Err(Error::invalid(
                "external_id",
                format!("{:?} is already the id of another sender's message", existing.external_id.unwrap_or_default()),
            ));
        }
        let conversation = self
            .inner
            .store
            .conversation(tenant, existing.conversation)
            .await?
            .ok_or_else(|| Error::not_found("conversation", existing.conversation))?;
        let identity = match existing.author {
            Author::Customer(i) => i,
            _ => return Err(Error::Refused("the provider id belongs to an outbound message".into())),
        };
        // As for the first delivery (a message kept quietly asks nobody, nor does its retry).
        let blocked = self.inner.store.customer(tenant, conversation.customer).await?.is_some_and(|c| c.blocked);
        let needs_handler = needs_handler(&conversation, blocked);
        Ok(IngestOutcome {
            message: existing.id,
            customer: conversation.customer,
            identity,
            conversation: conversation.id,
            duplicate: true,
            resolution: Resolution::Duplicate,
            thread: ThreadDecision::Duplicate,
            suspected_duplicates: Vec::new(),
            needs_handler,
            notes: vec!["already ingested; nothing changed".into()],
            routing: None,
        })
    }
}

/// Whether `conversation` is open with nobody handling it, so routing should pick it up — not
/// when the message was kept quietly ([`thread::kept_quiet`]: a blocked customer's message in a
/// snoozed conversation).
fn needs_handler(conversation: &Conversation, blocked: bool) -> bool {
    conversation.status.is_open()
        && conversation.handler.is_none()
        && !thread::kept_quiet(&conversation.status, blocked)
}

/// The provider message id as it is stored and looked up: an email Message-ID without its
/// angle brackets (kits and hosts spell it both ways), anything else as given.
pub(crate) fn provider_id<'a>(channel: &ChannelKind, raw: &'a str) -> &'a str {
    if *channel == ChannelKind::Email { thread::message_id(raw) } else { raw }
}

/// The reply windows of `config` as channel-policy rules (standard window, human-agent extension).
fn reply_window_rules(config: &EngineConfig) -> BTreeMap<ChannelKind, ReplyWindowRule> {
    config.reply_windows.keys().filter_map(|c| reply_window_rule(config, c).map(|r| (c.clone(), r))).collect()
}

/// The reply window of `channel` as configured, with its human-agent extension.
pub(crate) fn reply_window_rule(config: &EngineConfig, channel: &ChannelKind) -> Option<ReplyWindowRule> {
    let window = *config.reply_windows.get(channel)?;
    Some(ReplyWindowRule { window, human_agent_extension: config.human_agent_reply_windows.get(channel).copied() })
}

/// A versioned rewrite of `customer` that changes nothing but the version: it makes a
/// concurrent change computed from the old version conflict and re-read.
pub(crate) fn touch(customer: &crate::model::Customer) -> Write<crate::model::Customer> {
    let mut record = customer.clone();
    record.version += 1;
    Write { record, expected: Some(customer.version) }
}

/// A custom channel's name is 1 to 64 bytes without spaces or control characters, and not
/// the name of a built-in channel: stored, it would read back as that channel.
pub(crate) fn check_channel(channel: &ChannelKind) -> Result<()> {
    if let ChannelKind::Custom(name) = channel {
        if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(Error::invalid("channel", "a custom channel name is 1 to 64 bytes without spaces"));
        }
        if !matches!(ChannelKind::from(name.as_str()), ChannelKind::Custom(_)) {
            return Err(Error::invalid(
                "channel",
                format!("{name:?} names a built-in channel: use that channel, not a custom one of the same name"),
            ));
        }
    }
    Ok(())
}

fn validate_inbound(msg: &InboundMessage, limits: &ContentLimits) -> Result<()> {
    // Checked as it is stored: an email Message-ID without its angle brackets (`<>` names
    // nothing, and an empty id would make every such mail a duplicate of the first).
    let x = provider_id(&msg.channel, &msg.external_id);
    if x.trim().is_empty() || x.len() > 512 || x.chars().any(char::is_control) {
        return Err(Error::invalid("external_id", "must be 1 to 512 bytes without control characters"));
    }
    check_channel(&msg.channel)?;
    if msg.sender_name.as_ref().is_some_and(|n| n.len() > 256 || n.chars().any(char::is_control)) {
        return Err(Error::invalid("sender_name", "must be at most 256 bytes without control characters"));
    }
    if msg.claims.len() > 16 {
        return Err(Error::invalid("claims", "at most 16 claims per message"));
    }
    let t = &msg.thread;
    let refs = t.references.len() + usize::from(t.in_reply_to.is_some());
    if refs > 100 {
        return Err(Error::invalid("thread.references", "at most 100 references"));
    }
    let too_long = |s: &String| s.len() > 998;
    if t.references.iter().any(too_long)
        || t.in_reply_to.as_ref().is_some_and(too_long)
        || t.provider_thread_id.as_ref().is_some_and(too_long)
        || t.reply_token.as_ref().is_some_and(too_long)
        || t.subject.as_ref().is_some_and(too_long)
    {
        return Err(Error::invalid("thread", "a thread hint is longer than 998 bytes"));
    }
    msg.content.validate(limits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::normalize::normalize_phone;
    use crate::model::NormalizedAddress;

    /// Both spellings of a Brazilian mobile (with and without the ninth digit) take one lane;
    /// other numbers take their own as ever.
    #[test]
    fn every_spelling_of_a_phone_takes_one_lane() {
        let engine = Engine::builder(Arc::new(crate::store::InMemoryStore::new())).build();
        let tenant = TenantId::new("t").expect("tenant");
        let phone = |raw: &str| NormalizedAddress {
            kind: crate::model::AddressKind::Phone,
            value: normalize_phone(raw, None).expect("phone"),
        };
        let (with, without) = (phone("+5511987654321"), phone("+551187654321"));
        assert!(std::ptr::eq(engine.lane(&tenant, &with), engine.lane(&tenant, &without)));
        // Lanes are shared by hash, so "another lane" is checked over many numbers, not one.
        let others = (0..64)
            .filter(|i| {
                let other = phone(&format!("+55119876543{i:02}"));
                !std::ptr::eq(engine.lane(&tenant, &with), engine.lane(&tenant, &other))
            })
            .count();
        assert!(others > 32, "other numbers mostly take other lanes ({others} of 64)");
    }
}
