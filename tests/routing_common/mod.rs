//! Shared helpers for the routing tests.
#![allow(dead_code)]

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use touchpoint::model::{AgentId, ChannelKind, QueueId};
use touchpoint::routing::*;

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

pub fn at(secs: i64) -> DateTime<Utc> {
    t0() + TimeDelta::seconds(secs)
}

pub fn aid(s: &str) -> AgentId {
    AgentId::new(s).unwrap()
}

pub fn qid(s: &str) -> QueueId {
    QueueId::new(s).unwrap()
}

pub fn wid(n: u128) -> WorkItemId {
    WorkItemId::from_u128(n)
}

/// An online agent in `queue` taking `chats` web chats at once.
pub fn chat_agent(name: &str, queue: &str, chats: u32) -> Agent {
    Agent::new(aid(name))
        .with_queue(qid(queue))
        .with_capacity(Capacity::per_channel([(ChannelKind::WebChat, chats)]))
        .with_status("online")
}

pub fn chat(n: u128, queue: &str, now: DateTime<Utc>) -> WorkItem {
    WorkItem::new(wid(n), ChannelKind::WebChat, now).in_queue(qid(queue))
}

/// A router with the given queues.
pub fn router(queues: &[&str]) -> Router {
    let r = Router::new(RouterConfig::default());
    for q in queues {
        r.upsert_queue(Queue::new(qid(q))).unwrap();
    }
    r
}

pub fn assigned_to(d: &RoutingDecision) -> Option<String> {
    match &d.outcome {
        Outcome::Assigned(a) => Some(a.to_string()),
        _ => None,
    }
}

pub fn assignments(events: &[RoutingEvent]) -> Vec<(WorkItemId, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            RoutingEvent::Assigned { item, agent, .. } => Some((*item, agent.to_string())),
            _ => None,
        })
        .collect()
}
