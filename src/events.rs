//! Domain events: one enum for every state transition, delivered in commit order.
//!
//! Events are written to the store's outbox in the same transaction as the change they
//! describe, numbered per tenant, and read back by [`EventStream`] (a `futures::Stream`). Because
//! the stream reads the outbox in sequence order, events of one conversation always arrive in the
//! order they happened. Events carry ids, never personal data, so the outbox stays clean after an
//! erasure.

use crate::model::{
    AgentId, ChannelKind, ConversationId, CustomerId, DeliveryStatus, EventId, Handler, IdentityId, MessageId, QueueId,
    TenantId, Verification,
};
use crate::routing::{HandoffMode, RequeueReason, RoutingEvent, TimeoutAction};
use crate::store::Store;
use chrono::{DateTime, Utc};
use futures::Stream;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// Something that happened to the data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A customer was created.
    CustomerCreated {
        /// The customer.
        customer: CustomerId,
    },
    /// A customer's profile changed.
    CustomerUpdated {
        /// The customer.
        customer: CustomerId,
    },
    /// Two customers were merged; `absorbed` is now an alias of `survivor`.
    CustomersMerged {
        /// The customer that remains.
        survivor: CustomerId,
        /// The customer that became an alias.
        absorbed: CustomerId,
    },
    /// A customer was erased; only a tombstone remains.
    CustomerErased {
        /// The customer.
        customer: CustomerId,
    },
    /// A contact looked like an existing customer on an unverified key; it was not linked.
    /// Raised once per pair of customers, by whichever claimed the other's address first: that
    /// customer keeps it in
    /// [`Customer::suspected_duplicates`](crate::model::Customer::suspected_duplicates).
    DuplicateSuspected {
        /// The customer the contact was resolved to.
        customer: CustomerId,
        /// The existing customer it resembles.
        resembles: CustomerId,
    },
    /// An identity was attached to a customer.
    IdentityLinked {
        /// The customer.
        customer: CustomerId,
        /// The identity.
        identity: IdentityId,
        /// Its channel.
        channel: ChannelKind,
        /// Its trust.
        verification: Verification,
    },
    /// An identity was removed from a customer.
    IdentityUnlinked {
        /// The former owner.
        customer: CustomerId,
        /// The identity.
        identity: IdentityId,
    },
    /// An identity moved from one customer to another.
    IdentityMoved {
        /// The identity.
        identity: IdentityId,
        /// Former owner.
        from: CustomerId,
        /// New owner.
        to: CustomerId,
    },
    /// A conversation started.
    ConversationOpened {
        /// The conversation.
        conversation: ConversationId,
        /// Its customer.
        customer: CustomerId,
        /// The channel it started on.
        channel: ChannelKind,
        /// The conversation it follows, if any.
        previous: Option<ConversationId>,
    },
    /// A resolved or snoozed conversation came back to open because the customer wrote (a
    /// pending one stays pending).
    ConversationReopened {
        /// The conversation.
        conversation: ConversationId,
    },
    /// A conversation changed status.
    ConversationStatusChanged {
        /// The conversation.
        conversation: ConversationId,
        /// Status before (`open`, `pending`, `snoozed`, `resolved`, `closed`).
        from: String,
        /// Status after.
        to: String,
    },
    /// A conversation was handed to an agent, bot or queue.
    ConversationAssigned {
        /// The conversation.
        conversation: ConversationId,
        /// The new handler (`None`: unassigned).
        handler: Option<Handler>,
    },
    /// A conversation's priority, subject or tags changed
    /// ([`Engine::update_conversation`](crate::Engine::update_conversation)).
    ConversationUpdated {
        /// The conversation.
        conversation: ConversationId,
        /// What changed, of `priority`, `subject` and `tags`.
        fields: Vec<String>,
    },
    /// A conversation moved to another customer (through a merge).
    ConversationMoved {
        /// The conversation.
        conversation: ConversationId,
        /// Former customer.
        from: CustomerId,
        /// New customer.
        to: CustomerId,
    },
    /// A conversation was continued on a channel it had not used before.
    ChannelAdded {
        /// The conversation.
        conversation: ConversationId,
        /// The new channel.
        channel: ChannelKind,
    },
    /// A customer's message was recorded.
    MessageReceived {
        /// The conversation.
        conversation: ConversationId,
        /// The message.
        message: MessageId,
        /// Its channel.
        channel: ChannelKind,
    },
    /// An outbound message was recorded.
    MessageRecorded {
        /// The conversation.
        conversation: ConversationId,
        /// The message.
        message: MessageId,
        /// Its channel.
        channel: ChannelKind,
        /// The agent or bot that wrote it, if any.
        agent: Option<AgentId>,
    },
    /// An outbound message's delivery state moved forward.
    DeliveryUpdated {
        /// The conversation.
        conversation: ConversationId,
        /// The message.
        message: MessageId,
        /// The new state (details such as a failure's reason stay on the message, which
        /// erasure removes).
        status: DeliveryStatus,
        /// The provider's error code of a failure.
        error_code: Option<String>,
    },
    /// The router did something with a conversation: offered it, assigned it, took it back,
    /// escalated it, … (written by [`Engine::apply_routing_events`](crate::Engine::apply_routing_events),
    /// which the engine's own routing on ingest goes through as well).
    Routing {
        /// The conversation (the work item).
        conversation: ConversationId,
        /// What happened.
        change: RoutingChange,
    },
}

/// What the router did with a conversation, as the outbox records it: ids and reasons, never
/// message text or the item's attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "routing", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RoutingChange {
    /// Offered to agents (capacity reserved) until `expires_at`.
    Offered {
        /// The agents it is offered to.
        agents: Vec<AgentId>,
        /// When the offers expire.
        expires_at: DateTime<Utc>,
    },
    /// Assigned to an agent or bot: directly, or because the agent accepted an offer.
    Assigned {
        /// The agent or bot.
        agent: AgentId,
        /// The queue it waited in.
        queue: QueueId,
        /// How long it waited, in whole seconds.
        waited_seconds: i64,
    },
    /// Waiting in a queue.
    Queued {
        /// The queue.
        queue: QueueId,
    },
    /// An agent declined the offer.
    Declined {
        /// The agent.
        agent: AgentId,
    },
    /// The offer to an agent expired unanswered.
    OfferExpired {
        /// The agent.
        agent: AgentId,
    },
    /// The offer to an agent was withdrawn (another agent accepted, or the agent left).
    OfferRescinded {
        /// The agent.
        agent: AgentId,
    },
    /// Taken back from the agent it was assigned to and routed again.
    Requeued {
        /// The agent it was taken from.
        agent: AgentId,
        /// Why.
        reason: RequeueReason,
    },
    /// Escalated to an overflow queue.
    Escalated {
        /// The queue it left.
        from: QueueId,
        /// The queue it moved to.
        to: QueueId,
    },
    /// The host moved it to another queue
    /// ([`Router::transfer`](crate::routing::Router::transfer)).
    Transferred {
        /// The queue it left.
        from: QueueId,
        /// The queue it waits in now.
        to: QueueId,
        /// The agent (or bot) it was assigned to, who let it go.
        agent: Option<AgentId>,
        /// The agent it was transferred to, for a transfer to one agent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<AgentId>,
    },
    /// A bot handed it to humans.
    HandedOff {
        /// The bot.
        bot: AgentId,
        /// Whether the bot keeps it until a human has it.
        mode: HandoffMode,
    },
    /// A human handed it back to a bot.
    ReturnedToBot {
        /// The human agent who let go of it.
        agent: AgentId,
        /// The bot that takes it.
        bot: AgentId,
    },
    /// Left routing by policy (max wait, declines, plan end); `action` is what the host should do.
    TimedOut {
        /// What the host should do.
        action: TimeoutAction,
    },
    /// Completed by the agent.
    Completed {
        /// The agent.
        agent: AgentId,
    },
    /// Withdrawn by the host.
    Withdrawn,
    /// The router asked the host to decide who takes it, by `deadline`.
    DecisionRequested {
        /// The agents it could go to now, best first.
        agents: Vec<AgentId>,
        /// When the step's fallback applies.
        deadline: DateTime<Utc>,
    },
    /// The host did not decide in time; the step's fallback applied.
    DecisionExpired,
}

impl RoutingChange {
    /// The conversation a router event is about and what it did to it, or `None` for events
    /// that are not about one work item (presence changes) or only trace the plan (steps
    /// entered or skipped: ask [`Router::explain`](crate::routing::Router::explain)).
    pub fn from_routing_event(event: &RoutingEvent) -> Option<(ConversationId, RoutingChange)> {
        let (item, change) = match event {
            RoutingEvent::Offered { item, agents, expires_at } => {
                (item, RoutingChange::Offered { agents: agents.clone(), expires_at: *expires_at })
            }
            RoutingEvent::Assigned { item, agent, queue, wait } => (
                item,
                RoutingChange::Assigned {
                    agent: agent.clone(),
                    queue: queue.clone(),
                    waited_seconds: wait.num_seconds(),
                },
            ),
            RoutingEvent::Queued { item, queue } => (item, RoutingChange::Queued { queue: queue.clone() }),
            RoutingEvent::Declined { item, agent } => (item, RoutingChange::Declined { agent: agent.clone() }),
            RoutingEvent::OfferExpired { item, agent } => (item, RoutingChange::OfferExpired { agent: agent.clone() }),
            RoutingEvent::OfferRescinded { item, agent } => {
                (item, RoutingChange::OfferRescinded { agent: agent.clone() })
            }
            RoutingEvent::Requeued { item, agent, reason } => {
                (item, RoutingChange::Requeued { agent: agent.clone(), reason: *reason })
            }
            RoutingEvent::Overflowed { item, from, to } => {
                (item, RoutingChange::Escalated { from: from.clone(), to: to.clone() })
            }
            RoutingEvent::Transferred { item, from, to, agent, target } => (
                item,
                RoutingChange::Transferred {
                    from: from.clone(),
                    to: to.clone(),
                    agent: agent.clone(),
                    target: target.clone(),
                },
            ),
            RoutingEvent::HandedOff { item, bot, mode } => {
                (item, RoutingChange::HandedOff { bot: bot.clone(), mode: *mode })
            }
            RoutingEvent::ReturnedToBot { item, agent, bot } => {
                (item, RoutingChange::ReturnedToBot { agent: agent.clone(), bot: bot.clone() })
            }
            RoutingEvent::TimedOut { item, action, .. } => (item, RoutingChange::TimedOut { action: action.clone() }),
            RoutingEvent::Completed { item, agent } => (item, RoutingChange::Completed { agent: agent.clone() }),
            RoutingEvent::Withdrawn { item } => (item, RoutingChange::Withdrawn),
            RoutingEvent::DecisionRequested { item, agents, deadline, .. } => {
                (item, RoutingChange::DecisionRequested { agents: agents.clone(), deadline: *deadline })
            }
            RoutingEvent::DecisionExpired { item, .. } => (item, RoutingChange::DecisionExpired),
            RoutingEvent::StepEntered { .. }
            | RoutingEvent::StepSkipped { .. }
            | RoutingEvent::PresenceChanged { .. }
            | RoutingEvent::ShiftChanged { .. } => {
                return None;
            }
        };
        Some((ConversationId(item.0), change))
    }
}

impl Event {
    /// The conversation the event is about, if it is about one.
    pub fn conversation(&self) -> Option<ConversationId> {
        match self {
            Event::ConversationOpened { conversation, .. }
            | Event::ConversationReopened { conversation }
            | Event::ConversationStatusChanged { conversation, .. }
            | Event::ConversationAssigned { conversation, .. }
            | Event::ConversationUpdated { conversation, .. }
            | Event::ConversationMoved { conversation, .. }
            | Event::ChannelAdded { conversation, .. }
            | Event::MessageReceived { conversation, .. }
            | Event::MessageRecorded { conversation, .. }
            | Event::DeliveryUpdated { conversation, .. }
            | Event::Routing { conversation, .. } => Some(*conversation),
            _ => None,
        }
    }
}

/// An event as stored in the outbox: numbered, timestamped, with a unique id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Position in the tenant's outbox (starts at 1, no gaps within one store).
    pub seq: u64,
    /// Unique id, for consumers that deduplicate.
    pub id: EventId,
    /// The tenant.
    pub tenant: TenantId,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened.
    pub event: Event,
}

/// Wakes event streams when the engine commits. Shared by an engine and its streams.
#[derive(Debug, Default)]
pub(crate) struct Notifier {
    generation: AtomicU64,
    /// The waker of each stream waiting for a commit, by the stream's number: a stream takes
    /// its own out when it is dropped, so a subscriber that goes away leaves nothing behind.
    wakers: Mutex<HashMap<u64, Waker>>,
    next_stream: AtomicU64,
}

impl Notifier {
    pub(crate) fn notify(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let wakers = std::mem::take(&mut *self.wakers.lock().unwrap_or_else(|p| p.into_inner()));
        for (_, w) in wakers {
            w.wake();
        }
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn stream_number(&self) -> u64 {
        self.next_stream.fetch_add(1, Ordering::Relaxed)
    }

    fn register(&self, stream: u64, waker: &Waker) {
        let mut wakers = self.wakers.lock().unwrap_or_else(|p| p.into_inner());
        match wakers.get_mut(&stream) {
            Some(w) => w.clone_from(waker),
            None => {
                wakers.insert(stream, waker.clone());
            }
        }
    }

    fn unregister(&self, stream: u64) {
        self.wakers.lock().unwrap_or_else(|p| p.into_inner()).remove(&stream);
    }
}

const BATCH: usize = 256;

/// A live stream of a tenant's events, in commit order; never ends on its own.
///
/// Created by [`Engine::subscribe`](crate::Engine::subscribe). Each item is the next stored event
/// or a store error (after which the stream carries on from the same position).
pub struct EventStream {
    store: Arc<dyn Store>,
    tenant: TenantId,
    notifier: Arc<Notifier>,
    number: u64,
    cursor: u64,
    seen_generation: u64,
    buffer: VecDeque<StoredEvent>,
    fetching: Option<BoxFuture<'static, crate::Result<Vec<StoredEvent>>>>,
}

impl EventStream {
    pub(crate) fn new(store: Arc<dyn Store>, tenant: TenantId, notifier: Arc<Notifier>, after: u64) -> Self {
        EventStream {
            store,
            tenant,
            number: notifier.stream_number(),
            notifier,
            cursor: after,
            seen_generation: 0,
            buffer: VecDeque::new(),
            fetching: None,
        }
    }

    /// The sequence number of the last event handed out (or the start position).
    pub fn position(&self) -> u64 {
        self.cursor
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.notifier.unregister(self.number);
    }
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").field("tenant", &self.tenant).field("cursor", &self.cursor).finish()
    }
}

impl Stream for EventStream {
    type Item = crate::Result<StoredEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(event) = this.buffer.pop_front() {
                this.cursor = event.seq;
                return Poll::Ready(Some(Ok(event)));
            }
            match this.fetching.as_mut() {
                None => {
                    this.seen_generation = this.notifier.generation();
                    let (store, tenant, after) = (this.store.clone(), this.tenant.clone(), this.cursor);
                    this.fetching = Some(Box::pin(async move { store.events_after(&tenant, after, BATCH).await }));
                }
                Some(fetch) => match fetch.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => {
                        this.fetching = None;
                        return Poll::Ready(Some(Err(e)));
                    }
                    Poll::Ready(Ok(events)) => {
                        this.fetching = None;
                        if events.is_empty() {
                            this.notifier.register(this.number, cx.waker());
                            if this.notifier.generation() == this.seen_generation {
                                return Poll::Pending;
                            }
                        } else {
                            this.buffer.extend(events.into_iter().filter(|e| e.seq > this.cursor));
                        }
                    }
                },
            }
        }
    }
}
