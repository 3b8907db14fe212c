//! The engine's side of routing: conversations that need a handler become work items of the
//! configured [`Router`], and what the router decides is written back to the conversations.

use super::Engine;
use crate::Result;
use crate::events::{Event, RoutingChange};
use crate::model::{Author, ConversationId, Handler, Message, Priority, TenantId};
use crate::routing::{ItemControl, ItemUpdate, LastAgent, Router, RoutingDecision, RoutingEvent, WorkItem, WorkItemId};
use crate::{ConversationPatch, Error};
use chrono::Duration;
use std::collections::HashMap;
use std::sync::Arc;

/// How long a conversation prefers the agent who last handled it (affinity), unless the
/// router's plan says otherwise.
const LAST_AGENT_AFFINITY: i64 = 30;

/// Whether the bot a conversation's handler names goes on serving the customer although a
/// router event puts the conversation in a queue, going by the router's `control` of it now:
/// under offer control ([`HandoffMode::Offer`](crate::routing::HandoffMode::Offer)) the bot
/// serves until a human has it, and an item already assigned again has left that queue (an
/// `Assigned` later in the same events names its new handler).
fn bot_serves_on(control: &ItemControl, bot: &crate::model::AgentId) -> bool {
    match control {
        ItemControl::BotOffering(b) => b == bot,
        ItemControl::Routing => false,
        ItemControl::Bot(_) | ItemControl::Human(_) => true,
    }
}

impl Engine {
    /// The router this engine hands conversations to, if one was configured with
    /// [`EngineBuilder::router`](super::EngineBuilder::router).
    pub fn router(&self) -> Option<&Arc<Router>> {
        self.inner.router.as_ref()
    }

    /// The work item for a conversation: its channel (the latest inbound one), priority, the
    /// customer's language and the last agent as a preference for 30 minutes. Hosts that route
    /// by hand can start from this, add skills or a queue, and submit it themselves.
    pub async fn work_item(&self, tenant: &TenantId, conversation: ConversationId) -> Result<WorkItem> {
        let c = self.conversation(tenant, conversation).await?;
        self.work_item_of(tenant, &c).await
    }

    /// [`Engine::work_item`] of a conversation already read.
    async fn work_item_of(&self, tenant: &TenantId, c: &crate::model::Conversation) -> Result<WorkItem> {
        let customer = self.customer(tenant, c.customer).await?;
        let now = self.now();
        // The channel the customer last wrote on (an agent's answer on another channel does not
        // move the work there); without an inbound message, the latest used.
        let inbound = match &c.last_inbound_via {
            Some((_, identity)) => self.store().identity(tenant, *identity).await?.map(|i| i.channel),
            None => None,
        };
        let channel = inbound.unwrap_or_else(|| {
            c.channels.iter().max_by_key(|u| u.last_at).map_or_else(|| c.origin.clone(), |u| u.channel.clone())
        });
        let mut item = WorkItem::new(WorkItemId::from(c.id), channel, now).with_conversation_priority(c.priority);
        item.created_at = c.created_at;
        item.eligible_since = c.waiting_since.unwrap_or(now);
        if let Some(language) = customer.language {
            item = item.with_language(language);
        }
        if let Some(agent) = c.last_agent.clone() {
            item.last_agent = Some(LastAgent { agent, until: now + Duration::minutes(LAST_AGENT_AFFINITY) });
        }
        Ok(item)
    }

    /// Hands a conversation to the router and records the outcome on the conversation (its
    /// handler becomes the assigned agent or bot, or the queue it waits in). A conversation the
    /// router already holds is not submitted twice: its current decision is returned.
    ///
    /// Only an open conversation (open, pending, snoozed) is routed: a resolved or closed one
    /// is [`Error::Refused`]. One resolved, closed or erased while it was being routed leaves
    /// routing again at once (its work item is completed or withdrawn).
    pub async fn route_conversation(&self, tenant: &TenantId, conversation: ConversationId) -> Result<RoutingDecision> {
        let router = self.router().ok_or_else(|| Error::Refused("no router is configured for this engine".into()))?;
        // Read under the caller's tenant first: one router serves every tenant, and its
        // decision about another tenant's conversation is not the caller's to see.
        let c = self.conversation(tenant, conversation).await?;
        if let Some(current) = router.decision(WorkItemId::from(conversation), self.now()) {
            return Ok(current);
        }
        if !c.status.is_open() {
            return Err(Error::Refused(format!(
                "conversation {conversation} is {}: reopen it to route it",
                c.status.name()
            )));
        }
        let item = self.work_item_of(tenant, &c).await?;
        self.routed().insert(conversation, tenant.clone());
        let decision = match router.submit(item, self.now()) {
            Ok(decision) => decision,
            Err(e) => {
                // Submitted by a concurrent call since the check above: its decision stands.
                if let Some(current) = router.decision(WorkItemId::from(conversation), self.now()) {
                    return Ok(current);
                }
                self.routed().remove(&conversation);
                return Err(e);
            }
        };
        // One router serves every tenant: timers of other tenants' items may have fallen due in
        // this call, and their events go to the tenants they belong to.
        let applied = self.apply_events(tenant, &decision.events, true).await;
        // Resolved, closed or erased since it was read: that change found no work item to take
        // out of routing (it was not submitted yet), so it leaves now. A failed read says
        // nothing either way: the item stays.
        let gone = match self.conversation(tenant, conversation).await {
            Ok(c) => !c.status.is_open(),
            Err(e) => matches!(e, Error::NotFound { .. } | Error::Erased(_)),
        };
        if gone {
            self.leave_routing(tenant, conversation).await;
        }
        applied?;
        Ok(decision)
    }

    fn routed(&self) -> std::sync::MutexGuard<'_, HashMap<ConversationId, TenantId>> {
        self.inner.routed.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes what the router did back to the conversations and into the tenant's event log.
    ///
    /// Every event about a conversation of this tenant is appended to the outbox as an
    /// [`Event::Routing`](crate::events::Event::Routing) (offered, assigned — which is also how an
    /// accepted offer shows —, declined, offer expired or rescinded, requeued, escalated to an
    /// overflow queue, transferred, handed off by a bot, timed out, completed, withdrawn), in
    /// the order given, so subscribers of [`Engine::subscribe`] see routing next to the
    /// messages. The handler is updated in the same commit: `Assigned` sets it to the agent (or
    /// bot), `Queued`, `Requeued`, `Overflowed` and `Transferred` to the queue, `Completed`,
    /// `Withdrawn` and `TimedOut` clear it (a `ConversationAssigned` event says so).
    ///
    /// Call it with the events of every router call the host makes itself (`accept`, `decline`,
    /// `transfer`, `tick`, `sweep`, `handoff`, …); [`Engine::ingest`] and
    /// [`Engine::route_conversation`] apply theirs themselves (including events about other
    /// tenants' items whose timers fell due in that call, each to the tenant it belongs to). One
    /// router serves every tenant, so a host that ticks it once passes the events to each tenant
    /// in turn: only events about conversations of `tenant` are applied, so each is recorded
    /// once. Events of items that are not conversations of that tenant, plan steps and presence
    /// changes are skipped. Applying the same events twice to one tenant records them twice.
    /// Without a configured router, assignments are taken to be to human agents and requeues
    /// leave the handler as it is.
    pub async fn apply_routing_events(&self, tenant: &TenantId, events: &[RoutingEvent]) -> Result<()> {
        self.apply_events(tenant, events, false).await
    }

    /// [`Engine::apply_routing_events`]; with `every_tenant`, the events of conversations this
    /// engine routed for another tenant are applied to that tenant too.
    async fn apply_events(&self, tenant: &TenantId, events: &[RoutingEvent], every_tenant: bool) -> Result<()> {
        let router = self.router();
        for event in events {
            let Some((id, change)) = RoutingChange::from_routing_event(event) else { continue };
            let handler = match event {
                RoutingEvent::Assigned { agent, .. } => {
                    let bot = router.and_then(|r| r.agent(agent)).is_some_and(|a| a.is_bot);
                    Some(Some(if bot { Handler::Bot(agent.clone()) } else { Handler::Agent(agent.clone()) }))
                }
                RoutingEvent::Queued { queue, .. }
                | RoutingEvent::Overflowed { to: queue, .. }
                | RoutingEvent::Transferred { to: queue, .. } => Some(Some(Handler::Queue(queue.clone()))),
                // Back in routing (a bot's handoff passes it on; an `Assigned` follows when a
                // human takes it at once): the queue it waits in, as the router has it now.
                RoutingEvent::Requeued { item, .. } | RoutingEvent::HandedOff { item, .. } => {
                    router.and_then(|r| r.item(*item)).map(|status| Some(Handler::Queue(status.queue)))
                }
                RoutingEvent::Completed { .. } | RoutingEvent::Withdrawn { .. } | RoutingEvent::TimedOut { .. } => {
                    Some(None)
                }
                _ => None,
            };
            let owner = self.routed().get(&id).cloned();
            let owner = match &owner {
                Some(other) if other != tenant && !every_tenant => continue,
                Some(owner) => owner,
                None => tenant,
            };
            let done = matches!(
                event,
                RoutingEvent::Completed { .. } | RoutingEvent::Withdrawn { .. } | RoutingEvent::TimedOut { .. }
            );
            let Ok(current) = self.conversation(owner, id).await else { continue };
            // A bot handler gives way to a queue only when nobody serves the customer any more.
            let bot_serves_on = match (&handler, &current.handler) {
                (Some(Some(Handler::Queue(_))), Some(Handler::Bot(bot))) => {
                    router.and_then(|r| r.item(WorkItemId::from(id))).is_some_and(|s| bot_serves_on(&s.control, bot))
                }
                _ => false,
            };
            let handler = handler.filter(|h| !bot_serves_on && *h != current.handler);
            let patch = ConversationPatch { handler, ..ConversationPatch::default() };
            match self.patch_conversation(owner, id, &patch, &[Event::Routing { conversation: id, change }]).await {
                // Erased since it was read: nothing left to record this event on, but the
                // events of the other conversations still are.
                Err(Error::NotFound { .. } | Error::Erased(_)) => {
                    self.routed().remove(&id);
                    continue;
                }
                other => other?,
            };
            if done {
                self.routed().remove(&id);
            }
        }
        Ok(())
    }

    /// A message recorded on a conversation the router has assigned to its author (an agent or
    /// a bot) is their reply: it stops the queue's no-reply timer
    /// ([`Router::note_agent_reply`]), and what timers fell due first is applied like any
    /// router call. Best effort: the message is stored whatever happens here.
    pub(crate) async fn note_reply(&self, tenant: &TenantId, message: &Message) {
        let Some(router) = self.router() else { return };
        let (Author::Agent(agent) | Author::Bot(agent)) = &message.author else { return };
        // The router refuses a message by anyone but the agent the conversation is assigned to.
        if let Ok(events) = router.note_agent_reply(WorkItemId::from(message.conversation), agent, self.now()) {
            // Timers of other tenants' items may have fallen due first: each goes to its own.
            let _ = self.apply_events(tenant, &events, true).await;
        }
    }

    /// A conversation resolved or closed leaves routing: its work item is completed when it is
    /// assigned (the agent's capacity frees for the next waiting item) and withdrawn otherwise
    /// (waiting, offered), and the router's events are applied like any router call. Best
    /// effort: the status change is stored whatever happens here.
    pub(crate) async fn leave_routing(&self, tenant: &TenantId, conversation: ConversationId) {
        let Some(router) = self.router() else { return };
        let (item, now) = (WorkItemId::from(conversation), self.now());
        // Completing is refused for work nobody has yet; that is withdrawn. An item the router
        // does not hold is refused by both.
        if let Ok(events) = router.complete(item, now).or_else(|_| router.withdraw(item, now)) {
            // The freed capacity may go to another tenant's conversation: each event goes to
            // the tenant it belongs to.
            let _ = self.apply_events(tenant, &events, true).await;
        }
    }

    /// A conversation's new priority reaches its work item: a waiting conversation takes its
    /// new place in the queue at once ([`Router::update_item`]; an unchanged priority is left
    /// alone), and what the router did is applied like any router call. Best effort: the change
    /// is stored whatever happens here.
    pub(crate) async fn reprioritize(&self, tenant: &TenantId, conversation: ConversationId, priority: Priority) {
        let Some(router) = self.router() else { return };
        let (item, priority) = (WorkItemId::from(conversation), crate::routing::conversation_priority(priority));
        if let Ok(events) = router.update_item(item, ItemUpdate::new().priority(priority), self.now()) {
            let _ = self.apply_events(tenant, &events, true).await;
        }
    }

    /// Takes erased conversations out of routing: the router withdraws their work items, and
    /// what it did with the capacity that freed (another conversation assigned, say) is
    /// recorded like the events of any router call.
    pub(crate) async fn withdraw_erased(&self, tenant: &TenantId, conversations: &[ConversationId]) -> Result<()> {
        let Some(router) = self.router() else { return Ok(()) };
        let now = self.now();
        let mut events = Vec::new();
        for c in conversations {
            // An item the router does not hold (never routed, or done) has nothing to withdraw.
            if let Ok(withdrawn) = router.withdraw(WorkItemId::from(*c), now) {
                events.extend(withdrawn);
            }
            self.routed().remove(c);
        }
        self.apply_events(tenant, &events, true).await
    }
}
