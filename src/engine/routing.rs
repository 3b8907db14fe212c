//! The engine's side of routing: conversations that need a handler become work items of the
//! configured [`Router`], and what the router decides is written back to the conversations.

use super::Engine;
use crate::Result;
use crate::model::{ConversationId, Handler, TenantId};
use crate::routing::{LastAgent, Router, RoutingDecision, RoutingEvent, WorkItem, WorkItemId};
use crate::{ConversationPatch, Error};
use chrono::Duration;
use std::sync::Arc;

/// How long a conversation prefers the agent who last handled it (affinity), unless the
/// router's plan says otherwise.
const LAST_AGENT_AFFINITY: i64 = 30;

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
        let customer = self.customer(tenant, c.customer).await?;
        let now = self.now();
        let channel =
            c.channels.iter().max_by_key(|u| u.last_at).map_or_else(|| c.origin.clone(), |u| u.channel.clone());
        let mut item = WorkItem::new(WorkItemId::from(c.id), channel, now).with_conversation_priority(c.priority);
        item.created_at = c.created_at;
        item.eligible_since = c.waiting_since.unwrap_or(now);
        if let Some(language) = customer.language {
            item = item.with_language(language);
        }
        if let Some(agent) = c.last_agent {
            item.last_agent = Some(LastAgent { agent, until: now + Duration::minutes(LAST_AGENT_AFFINITY) });
        }
        Ok(item)
    }

    /// Hands a conversation to the router and records the outcome on the conversation (its
    /// handler becomes the assigned agent or bot, or the queue it waits in). A conversation the
    /// router already holds is not submitted twice: its current decision is returned.
    pub async fn route_conversation(&self, tenant: &TenantId, conversation: ConversationId) -> Result<RoutingDecision> {
        let router = self.router().ok_or_else(|| Error::Refused("no router is configured for this engine".into()))?;
        let item = self.work_item(tenant, conversation).await?;
        let decision = router.submit(item, self.now())?;
        self.apply_routing_events(tenant, &decision.events).await?;
        Ok(decision)
    }

    /// Writes what the router did back to the conversations: `Assigned` sets the handler to the
    /// agent (or bot), `Queued`, `Requeued` and `Overflowed` to the queue, `Completed`,
    /// `Withdrawn` and `TimedOut` clear it. Call it with the events of every router call the host
    /// makes itself (`accept`, `decline`, `tick`, `sweep`, `handoff`, …). Events of items that are
    /// not conversations of this tenant are skipped.
    pub async fn apply_routing_events(&self, tenant: &TenantId, events: &[RoutingEvent]) -> Result<()> {
        let Some(router) = self.router() else { return Ok(()) };
        for event in events {
            let (item, handler) = match event {
                RoutingEvent::Assigned { item, agent, .. } => {
                    let bot = router.agent(agent).is_some_and(|a| a.is_bot);
                    (item, Some(if bot { Handler::Bot(agent.clone()) } else { Handler::Agent(agent.clone()) }))
                }
                RoutingEvent::Queued { item, queue } | RoutingEvent::Overflowed { item, to: queue, .. } => {
                    (item, Some(Handler::Queue(queue.clone())))
                }
                RoutingEvent::Requeued { item, .. } => match router.item(*item) {
                    Some(status) => (item, Some(Handler::Queue(status.queue))),
                    None => continue,
                },
                RoutingEvent::Completed { item, .. }
                | RoutingEvent::Withdrawn { item }
                | RoutingEvent::TimedOut { item, .. } => (item, None),
                _ => continue,
            };
            let id = ConversationId(item.0);
            let Ok(current) = self.conversation(tenant, id).await else { continue };
            if current.handler == handler {
                continue;
            }
            let patch = ConversationPatch { handler: Some(handler), ..ConversationPatch::default() };
            self.update_conversation(tenant, id, patch).await?;
        }
        Ok(())
    }
}
