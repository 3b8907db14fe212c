//! Ingest hands conversations that need a handler to the engine's router; what the router
//! decides (now or later) becomes the conversation's handler.

use chrono::{TimeZone, Utc};
use std::sync::Arc;
use touchpoint::clock::ManualClock;
use touchpoint::events::{Event, RoutingChange};
use touchpoint::model::*;
use touchpoint::routing::{
    Agent, Capacity, OfferPolicy, Outcome, Queue, Router, RouterConfig, RoutingEvent, WorkItemId,
};
use touchpoint::store::InMemoryStore;
use touchpoint::{Engine, Error};

fn run<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

fn chat(visitor: &str, id: &str) -> InboundMessage {
    InboundMessage::new(
        ChannelKind::WebChat,
        EndpointId::new("site").unwrap(),
        Address::platform("site", visitor),
        id,
        Content::text("Hello, I need help"),
    )
}

fn setup() -> (Engine, Arc<Router>, TenantId) {
    let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
    let router = Arc::new(Router::new(RouterConfig::default()));
    let ana = Agent::new(AgentId::new("ana").unwrap())
        .with_capacity(Capacity::per_channel([(ChannelKind::WebChat, 1)]))
        .with_status("online");
    router.upsert_agent(ana, t0).unwrap();
    let engine = Engine::builder(Arc::new(InMemoryStore::new()))
        .clock(Arc::new(ManualClock::new(t0)))
        .router(router.clone())
        .build();
    (engine, router, TenantId::new("acme").unwrap())
}

fn handler(engine: &Engine, tenant: &TenantId, conversation: ConversationId) -> Option<Handler> {
    run(engine.conversation(tenant, conversation)).unwrap().handler
}

#[test]
fn a_new_conversation_is_routed_and_its_handler_recorded() {
    let (engine, router, tenant) = setup();
    let ana = AgentId::new("ana").unwrap();
    let first = run(engine.ingest(&tenant, chat("v1", "c1"))).unwrap();
    let decision = first.routing.as_ref().expect("routed during ingest");
    assert_eq!(decision.outcome, Outcome::Assigned(ana.clone()));
    assert_eq!(handler(&engine, &tenant, first.conversation), Some(Handler::Agent(ana.clone())));

    // A follow-up in the same conversation is not submitted again.
    let follow_up = run(engine.ingest(&tenant, chat("v1", "c2"))).unwrap();
    assert_eq!(follow_up.conversation, first.conversation);
    assert!(follow_up.routing.is_none());
    assert_eq!(router.agent(&ana).unwrap().load, 1);

    // Ana is at capacity: the next customer waits in the default queue.
    let second = run(engine.ingest(&tenant, chat("v2", "d1"))).unwrap();
    let queued = second.routing.as_ref().expect("routed during ingest");
    let Outcome::Queued(queue) = &queued.outcome else { panic!("{queued:?}") };
    assert_eq!(handler(&engine, &tenant, second.conversation), Some(Handler::Queue(queue.clone())));

    // Ana finishes the first chat: the router gives her the waiting one, and the engine
    // records it on the conversation.
    let events = router.complete(WorkItemId::from(first.conversation), engine.now()).unwrap();
    assert!(events.iter().any(|e| matches!(e, RoutingEvent::Assigned { agent, .. } if *agent == ana)));
    run(engine.apply_routing_events(&tenant, &events)).unwrap();
    assert_eq!(handler(&engine, &tenant, second.conversation), Some(Handler::Agent(ana)));
    assert_eq!(handler(&engine, &tenant, first.conversation), None);
}

#[test]
fn without_a_router_ingest_does_not_route_and_routing_on_demand_is_refused() {
    let engine = Engine::in_memory();
    let tenant = TenantId::new("acme").unwrap();
    let out = run(engine.ingest(&tenant, chat("v1", "c1"))).unwrap();
    assert!(out.needs_handler);
    assert!(out.routing.is_none());
    let refused = run(engine.route_conversation(&tenant, out.conversation));
    assert!(matches!(refused, Err(Error::Refused(_))), "{refused:?}");
}

#[test]
fn the_work_item_carries_the_conversation_channel_priority_and_language() {
    let (engine, _, tenant) = setup();
    let out = run(engine.ingest(&tenant, chat("v9", "x1"))).unwrap();
    let patch =
        touchpoint::CustomerPatch { language: Some(Some(LanguageTag::parse("pt-BR").unwrap())), ..Default::default() };
    run(engine.update_customer(&tenant, out.customer, patch)).unwrap();
    let item = run(engine.work_item(&tenant, out.conversation)).unwrap();
    assert_eq!(item.id, WorkItemId::from(out.conversation));
    assert_eq!(item.channel, ChannelKind::WebChat);
    assert_eq!(item.language.as_ref().map(|l| l.as_str()), Some("pt-BR"));
}

/// The routing part of a stored event, as (conversation, change).
fn routing_events(engine: &Engine, tenant: &TenantId) -> Vec<(ConversationId, RoutingChange)> {
    use futures::StreamExt;
    let all = run(engine.store().events_after(tenant, 0, 10_000)).unwrap();
    // Subscribers see the same events, in the same order, through the stream.
    let streamed: Vec<_> = run(engine.subscribe(tenant, 0).take(all.len()).collect::<Vec<_>>());
    assert_eq!(streamed.into_iter().map(Result::unwrap).collect::<Vec<_>>(), all);
    all.into_iter()
        .filter_map(|e| match e.event {
            Event::Routing { conversation, change } => Some((conversation, change)),
            _ => None,
        })
        .collect()
}

#[test]
fn routing_decisions_are_in_the_event_stream_next_to_the_messages() {
    let (engine, router, tenant) = setup();
    let ana = AgentId::new("ana").unwrap();
    let first = run(engine.ingest(&tenant, chat("v1", "c1"))).unwrap();
    let second = run(engine.ingest(&tenant, chat("v2", "d1"))).unwrap();
    let default = QueueId::new("default").unwrap();
    let events = routing_events(&engine, &tenant);
    assert_eq!(
        events.first(),
        Some(&(
            first.conversation,
            RoutingChange::Assigned { agent: ana.clone(), queue: default.clone(), waited_seconds: 0 }
        ))
    );
    assert!(events.contains(&(second.conversation, RoutingChange::Queued { queue: default.clone() })), "{events:?}");

    let done = router.complete(WorkItemId::from(first.conversation), engine.now()).unwrap();
    run(engine.apply_routing_events(&tenant, &done)).unwrap();
    let events = routing_events(&engine, &tenant);
    let n = events.len();
    assert_eq!(
        events[n - 2..],
        [
            (first.conversation, RoutingChange::Completed { agent: ana.clone() }),
            (second.conversation, RoutingChange::Assigned { agent: ana, queue: default, waited_seconds: 0 }),
        ]
    );

    // Routing events carry ids and reasons, never what the customer wrote.
    let outbox = serde_json::to_string(&run(engine.store().events_after(&tenant, 0, 10_000)).unwrap()).unwrap();
    assert!(!outbox.contains("I need help"));
}

#[test]
fn offers_declines_and_expiries_are_recorded_for_the_conversation() {
    let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
    let clock = Arc::new(ManualClock::new(t0));
    let router = Arc::new(Router::new(RouterConfig::default()));
    let offered_queue = Queue {
        offer: OfferPolicy { offer: true, ..OfferPolicy::default() },
        ..Queue::new(QueueId::new("default").unwrap())
    };
    router.upsert_queue(offered_queue).unwrap();
    for name in ["ana", "bob"] {
        let agent = Agent::new(AgentId::new(name).unwrap())
            .with_capacity(Capacity::per_channel([(ChannelKind::WebChat, 1)]))
            .with_status("online");
        router.upsert_agent(agent, t0).unwrap();
    }
    let engine = Engine::builder(Arc::new(InMemoryStore::new())).clock(clock.clone()).router(router.clone()).build();
    let tenant = TenantId::new("acme").unwrap();

    let c = run(engine.ingest(&tenant, chat("v1", "c1"))).unwrap().conversation;
    let item = WorkItemId::from(c);
    let Some((_, RoutingChange::Offered { agents, .. })) = routing_events(&engine, &tenant).pop() else {
        panic!("no offer")
    };
    let first = agents[0].clone();
    let declined = router.decline(item, &first, engine.now()).unwrap();
    run(engine.apply_routing_events(&tenant, &declined)).unwrap();
    let events = routing_events(&engine, &tenant);
    assert!(events.contains(&(c, RoutingChange::Declined { agent: first.clone() })), "{events:?}");
    let Some((_, RoutingChange::Offered { agents, expires_at })) = events.last().cloned() else {
        panic!("not offered to the other agent: {events:?}")
    };
    let second = agents[0].clone();
    assert_ne!(second, first);

    clock.set(expires_at + chrono::Duration::seconds(1));
    let expired = router.tick(engine.now());
    run(engine.apply_routing_events(&tenant, &expired)).unwrap();
    let events = routing_events(&engine, &tenant);
    assert!(events.contains(&(c, RoutingChange::OfferExpired { agent: second })), "{events:?}");
    // Nobody took it: the conversation still has no agent.
    assert!(!matches!(handler(&engine, &tenant, c), Some(Handler::Agent(_))));
}

/// Two tenants on one engine whose router's default queue times items out after 60 s (nobody
/// is signed in); the clock starts at 2026-12-01 09:00 UTC.
struct TwoTenants {
    engine: Engine,
    clock: Arc<ManualClock>,
    router: Arc<Router>,
    queue: QueueId,
    acme: TenantId,
    globex: TenantId,
}

fn two_tenants() -> TwoTenants {
    use touchpoint::routing::TimeoutAction;
    let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap()));
    let router = Arc::new(Router::new(RouterConfig::default()));
    let queue = QueueId::new("default").unwrap();
    router
        .upsert_queue(Queue::new(queue.clone()).with_max_wait(chrono::TimeDelta::seconds(60), TimeoutAction::Callback))
        .unwrap();
    let engine = Engine::builder(Arc::new(InMemoryStore::new())).clock(clock.clone()).router(router.clone()).build();
    TwoTenants {
        engine,
        clock,
        router,
        queue,
        acme: TenantId::new("acme").unwrap(),
        globex: TenantId::new("globex").unwrap(),
    }
}

/// One router serves every tenant: a timer of one tenant's item that falls due during another
/// tenant's call is recorded on the right tenant's conversation, which is routed again when its
/// customer writes next.
#[test]
fn a_timer_that_falls_due_in_another_tenants_call_reaches_its_own_tenant() {
    let TwoTenants { engine, clock, router, queue, acme, globex } = two_tenants();

    // Nobody is signed in: globex's customer waits, and the wait runs out before acme's
    // customer writes.
    let waiting = run(engine.ingest(&globex, chat("g1", "g-1"))).unwrap();
    assert_eq!(handler(&engine, &globex, waiting.conversation), Some(Handler::Queue(queue.clone())));
    clock.advance(chrono::Duration::seconds(120));
    run(engine.ingest(&acme, chat("a1", "a-1"))).unwrap();

    assert!(router.item(WorkItemId::from(waiting.conversation)).is_none(), "the router let the item go");
    assert_eq!(handler(&engine, &globex, waiting.conversation), None, "globex's conversation is told");
    assert!(
        routing_events(&engine, &globex)
            .iter()
            .any(|(c, change)| *c == waiting.conversation && matches!(change, RoutingChange::TimedOut { .. })),
        "the time-out is in globex's event log"
    );
    assert!(routing_events(&engine, &acme).iter().all(|(c, _)| *c != waiting.conversation));

    // The customer writes again: the conversation needs a handler and is routed again.
    let again = run(engine.ingest(&globex, chat("g1", "g-2"))).unwrap();
    assert_eq!(again.conversation, waiting.conversation);
    assert!(again.routing.is_some(), "routed again");
    assert_eq!(handler(&engine, &globex, waiting.conversation), Some(Handler::Queue(queue)));
}

/// A host that ticks the shared router itself and hands the events to each tenant in turn gets
/// each event recorded once, on its own tenant.
#[test]
fn a_shared_tick_handed_to_each_tenant_is_recorded_once_per_tenant() {
    let TwoTenants { engine, clock, router, acme, globex, .. } = two_tenants();
    let waiting = run(engine.ingest(&globex, chat("g1", "g-1"))).unwrap();
    clock.advance(chrono::Duration::seconds(120));
    let events = router.tick(engine.now());
    for tenant in [&acme, &globex] {
        run(engine.apply_routing_events(tenant, &events)).unwrap();
    }
    let timeouts = routing_events(&engine, &globex)
        .into_iter()
        .filter(|(c, change)| *c == waiting.conversation && matches!(change, RoutingChange::TimedOut { .. }))
        .count();
    assert_eq!(timeouts, 1, "the one time-out is recorded {timeouts} times");
    assert!(routing_events(&engine, &acme).iter().all(|(c, _)| *c != waiting.conversation));
}

/// One agent serves two tenants. Acme's customer has her; globex's waits. Acme resolving its
/// conversation frees her, and globex's conversation is hers: recorded on globex's
/// conversation and in globex's event log, although acme's call set it off.
#[test]
fn resolving_one_tenants_conversation_records_the_assignment_it_frees_on_the_other_tenant() {
    use touchpoint::ConversationPatch;
    let TwoTenants { engine, router, acme, globex, .. } = two_tenants();
    let ana = AgentId::new("ana").unwrap();
    let agent = Agent::new(ana.clone()).with_capacity(Capacity::per_channel([(ChannelKind::WebChat, 1)]));
    router.upsert_agent(agent.with_status("online"), engine.now()).unwrap();
    let mine = run(engine.ingest(&acme, chat("a1", "a-1"))).unwrap().conversation;
    let theirs = run(engine.ingest(&globex, chat("g1", "g-1"))).unwrap().conversation;
    assert_eq!(handler(&engine, &acme, mine), Some(Handler::Agent(ana.clone())));

    let resolved = ConversationPatch { status: Some(ConversationStatus::Resolved), ..ConversationPatch::default() };
    run(engine.update_conversation(&acme, mine, resolved)).unwrap();
    assert_eq!(handler(&engine, &globex, theirs), Some(Handler::Agent(ana.clone())), "globex's conversation is told");
    assert!(
        routing_events(&engine, &globex)
            .iter()
            .any(|(c, change)| *c == theirs && matches!(change, RoutingChange::Assigned { agent, .. } if *agent == ana)),
        "the assignment is in globex's event log: {:?}",
        routing_events(&engine, &globex)
    );
    assert!(routing_events(&engine, &acme).iter().all(|(c, _)| *c != theirs));
}

/// An agent's reply on one tenant's conversation lets the router fire what fell due first; a
/// time-out of another tenant's waiting conversation is recorded on that tenant.
#[test]
fn a_timer_that_falls_due_in_an_agents_reply_reaches_its_own_tenant() {
    use touchpoint::{OutboundMessage, model::Content};
    let TwoTenants { engine, clock, router, acme, globex, .. } = two_tenants();
    let ana = AgentId::new("ana").unwrap();
    let agent = Agent::new(ana.clone()).with_capacity(Capacity::per_channel([(ChannelKind::WebChat, 1)]));
    router.upsert_agent(agent.with_status("online"), engine.now()).unwrap();
    let mine = run(engine.ingest(&acme, chat("a1", "a-1"))).unwrap().conversation;
    let theirs = run(engine.ingest(&globex, chat("g1", "g-1"))).unwrap().conversation;
    // Globex's customer waits past the queue's max wait; nothing ticks in between.
    clock.advance(chrono::Duration::seconds(120));
    let reply = OutboundMessage::agent(ana.clone(), Content::text("Looking into it now."));
    run(engine.record_outbound(&acme, mine, reply)).unwrap();

    assert!(router.item(WorkItemId::from(theirs)).is_none(), "the router let globex's item go");
    assert_eq!(handler(&engine, &globex, theirs), None, "globex's conversation is told");
    assert!(
        routing_events(&engine, &globex)
            .iter()
            .any(|(c, change)| *c == theirs && matches!(change, RoutingChange::TimedOut { .. })),
        "the time-out is in globex's event log"
    );
}

/// A bot that passes a conversation to humans lets go of it: when no human can take it yet,
/// the conversation waits in the queue, and its handler says so (not the bot any more), as the
/// router's view says.
#[test]
fn a_bot_passing_a_conversation_back_to_its_queue_is_no_longer_its_handler() {
    use touchpoint::routing::{HandoffMode, ItemControl, ItemState};
    let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
    let router = Arc::new(Router::new(RouterConfig::default()));
    let bot = AgentId::new("bot").unwrap();
    router
        .upsert_agent(Agent::bot(bot.clone()).with_capacity(Capacity::per_channel([(ChannelKind::WebChat, 1)])), t0)
        .unwrap();
    let ana = Agent::new(AgentId::new("ana").unwrap())
        .with_capacity(Capacity::per_channel([(ChannelKind::WebChat, 1)]))
        .with_status("away");
    router.upsert_agent(ana, t0).unwrap();
    let engine = Engine::builder(Arc::new(InMemoryStore::new()))
        .clock(Arc::new(ManualClock::new(t0)))
        .router(router.clone())
        .build();
    let tenant = TenantId::new("acme").unwrap();

    let first = run(engine.ingest(&tenant, chat("v1", "c1"))).unwrap().conversation;
    let second = run(engine.ingest(&tenant, chat("v2", "d1"))).unwrap().conversation;
    let default = QueueId::new("default").unwrap();
    assert_eq!(handler(&engine, &tenant, first), Some(Handler::Bot(bot.clone())));
    assert_eq!(handler(&engine, &tenant, second), Some(Handler::Queue(default.clone())));
    // The bot finishes the first and takes the second.
    let done = router.complete(WorkItemId::from(first), engine.now()).unwrap();
    run(engine.apply_routing_events(&tenant, &done)).unwrap();
    assert_eq!(handler(&engine, &tenant, second), Some(Handler::Bot(bot.clone())));

    // The bot passes it on; ana is away, so it waits.
    let d = router.handoff(WorkItemId::from(second), Default::default(), HandoffMode::Pass, engine.now()).unwrap();
    run(engine.apply_routing_events(&tenant, &d.events)).unwrap();
    let status = router.item(WorkItemId::from(second)).unwrap();
    assert_eq!((status.state, status.control), (ItemState::Waiting, ItemControl::Routing));
    assert_eq!(
        handler(&engine, &tenant, second),
        Some(Handler::Queue(default)),
        "events of the handoff: {:?}",
        d.events
    );
}

/// Offer control: a bot that offers a conversation to humans goes on serving the customer, so
/// it stays the handler while the conversation waits; the human who takes it becomes the
/// handler.
#[test]
fn a_bot_offering_a_conversation_to_humans_stays_its_handler_until_a_human_has_it() {
    use touchpoint::routing::{HandoffMode, ItemControl};
    let (engine, router, tenant) = setup();
    let ana = AgentId::new("ana").unwrap();
    let bot = AgentId::new("bot").unwrap();
    router.set_presence(&ana, "away", engine.now()).unwrap();
    router.upsert_agent(Agent::bot(bot.clone()), engine.now()).unwrap();
    let c = run(engine.ingest(&tenant, chat("v1", "c1"))).unwrap().conversation;
    assert_eq!(handler(&engine, &tenant, c), Some(Handler::Bot(bot.clone())));
    let d = router.handoff(WorkItemId::from(c), Default::default(), HandoffMode::Offer, engine.now()).unwrap();
    run(engine.apply_routing_events(&tenant, &d.events)).unwrap();
    assert_eq!(router.item(WorkItemId::from(c)).unwrap().control, ItemControl::BotOffering(bot.clone()));
    assert_eq!(handler(&engine, &tenant, c), Some(Handler::Bot(bot)), "events: {:?}", d.events);
    let ev = router.set_presence(&ana, "online", engine.now()).unwrap();
    run(engine.apply_routing_events(&tenant, &ev)).unwrap();
    assert_eq!(handler(&engine, &tenant, c), Some(Handler::Agent(ana)));
}

/// An agent's reply recorded through the engine is their reply to the router: the queue's
/// no-reply timer stops for that conversation, while the conversation whose agent stays silent
/// is taken back when the time is up.
#[test]
fn an_agent_reply_recorded_through_the_engine_stops_the_no_reply_timer() {
    use touchpoint::routing::{Queue, RequeueReason};
    use touchpoint::{OutboundMessage, model::Content};
    let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
    let router = Arc::new(Router::new(RouterConfig::default()));
    let default = QueueId::new("default").unwrap();
    router.upsert_queue(Queue::new(default).with_no_reply(chrono::TimeDelta::seconds(60))).unwrap();
    let (ana, bo) = (AgentId::new("ana").unwrap(), AgentId::new("bo").unwrap());
    for a in [&ana, &bo] {
        let agent = Agent::new(a.clone()).with_capacity(Capacity::per_channel([(ChannelKind::WebChat, 1)]));
        router.upsert_agent(agent.with_status("online"), t0).unwrap();
    }
    let clock = Arc::new(ManualClock::new(t0));
    let engine = Engine::builder(Arc::new(InMemoryStore::new())).clock(clock.clone()).router(router.clone()).build();
    let tenant = TenantId::new("acme").unwrap();
    let first = run(engine.ingest(&tenant, chat("v1", "c1"))).unwrap().conversation;
    let second = run(engine.ingest(&tenant, chat("v2", "d1"))).unwrap().conversation;
    let holder = |c: ConversationId| match handler(&engine, &tenant, c) {
        Some(Handler::Agent(a)) => a,
        other => panic!("{other:?}"),
    };
    let (replier, silent) = (holder(first), holder(second));
    assert_ne!(replier, silent);
    clock.advance(chrono::Duration::seconds(30));
    let reply = OutboundMessage::agent(replier.clone(), Content::text("Looking into it now."));
    run(engine.record_outbound(&tenant, first, reply)).unwrap();
    clock.advance(chrono::Duration::seconds(40));
    let ev = router.tick(engine.now());
    let requeued: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            RoutingEvent::Requeued { item, agent, reason: RequeueReason::NoReply } => Some((*item, agent.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(requeued, [(WorkItemId::from(second), silent)], "{ev:?}");
    assert_eq!(router.item(WorkItemId::from(first)).unwrap().state, touchpoint::routing::ItemState::Assigned(replier));
}

/// Resolving a conversation through the engine finishes its work: the agent's capacity frees
/// and the next waiting conversation is hers; closing a waiting conversation takes it out of
/// the queue. Both are recorded like any routing change.
#[test]
fn resolving_or_closing_a_conversation_takes_it_out_of_routing() {
    use touchpoint::ConversationPatch;
    let (engine, router, tenant) = setup();
    let ana = AgentId::new("ana").unwrap();
    let default = QueueId::new("default").unwrap();
    let first = run(engine.ingest(&tenant, chat("v1", "c1"))).unwrap().conversation;
    let second = run(engine.ingest(&tenant, chat("v2", "d1"))).unwrap().conversation;
    let third = run(engine.ingest(&tenant, chat("v3", "e1"))).unwrap().conversation;
    assert_eq!(handler(&engine, &tenant, first), Some(Handler::Agent(ana.clone())));
    assert_eq!(router.queue_stats(&default).unwrap().waiting, 2);
    let status = |s: ConversationStatus| ConversationPatch { status: Some(s), ..ConversationPatch::default() };

    let resolved = run(engine.update_conversation(&tenant, first, status(ConversationStatus::Resolved))).unwrap();
    assert_eq!((resolved.status, resolved.handler), (ConversationStatus::Resolved, None));
    assert!(router.item(WorkItemId::from(first)).is_none());
    assert_eq!(handler(&engine, &tenant, second), Some(Handler::Agent(ana.clone())));
    let recorded = routing_events(&engine, &tenant);
    assert!(recorded.contains(&(first, RoutingChange::Completed { agent: ana })), "{recorded:?}");

    run(engine.update_conversation(&tenant, third, status(ConversationStatus::Closed))).unwrap();
    assert!(router.item(WorkItemId::from(third)).is_none());
    assert_eq!(router.queue_stats(&default).unwrap().waiting, 0);
    assert_eq!(routing_events(&engine, &tenant).last(), Some(&(third, RoutingChange::Withdrawn)));
    // Pending stays in routing.
    run(engine.update_conversation(&tenant, second, status(ConversationStatus::Pending))).unwrap();
    assert!(router.item(WorkItemId::from(second)).is_some());
}

/// A supervisor escalates a waiting conversation through the engine: it moves ahead of the
/// older one, and the agent who comes online takes it first.
#[test]
fn an_escalated_conversation_is_taken_before_older_waiting_ones() {
    use touchpoint::ConversationPatch;
    let (engine, router, tenant) = setup();
    let ana = AgentId::new("ana").unwrap();
    router.set_presence(&ana, "away", engine.now()).unwrap();
    let older = run(engine.ingest(&tenant, chat("v1", "c1"))).unwrap().conversation;
    let newer = run(engine.ingest(&tenant, chat("v2", "d1"))).unwrap().conversation;
    let urgent = ConversationPatch { priority: Some(Priority::Urgent), ..ConversationPatch::default() };
    let updated = run(engine.update_conversation(&tenant, newer, urgent)).unwrap();
    assert_eq!(updated.priority, Priority::Urgent);
    assert_eq!(router.item(WorkItemId::from(newer)).unwrap().priority, 3, "the work item has the new priority");

    let ev = router.set_presence(&ana, "online", engine.now()).unwrap();
    run(engine.apply_routing_events(&tenant, &ev)).unwrap();
    assert_eq!(handler(&engine, &tenant, newer), Some(Handler::Agent(ana)));
    assert_eq!(handler(&engine, &tenant, older), Some(Handler::Queue(QueueId::new("default").unwrap())));
}

/// A host that sends the conversation's priority unchanged (a form saved whole) leaves the work
/// item alone: the raise a plan step gave it stands.
#[test]
fn an_unchanged_priority_leaves_what_the_plan_made_of_it() {
    use touchpoint::ConversationPatch;
    use touchpoint::routing::{Plan, Pool, PriorityChange, Rule, Step};
    let (engine, router, tenant) = setup();
    let ana = AgentId::new("ana").unwrap();
    router.set_presence(&ana, "away", engine.now()).unwrap();
    let raise = Step::new(Pool::default()).with_priority(PriorityChange::Raise(2));
    router.set_plan(Plan::new([Rule::new("raise", [raise])]), engine.now()).unwrap();
    let c = run(engine.ingest(&tenant, chat("v1", "c1"))).unwrap().conversation;
    assert_eq!(router.item(WorkItemId::from(c)).unwrap().priority, 3, "normal (1), raised by 2");
    let same = ConversationPatch { priority: Some(Priority::Normal), ..ConversationPatch::default() };
    run(engine.update_conversation(&tenant, c, same)).unwrap();
    assert_eq!(router.item(WorkItemId::from(c)).unwrap().priority, 3);
    let high = ConversationPatch { priority: Some(Priority::High), ..ConversationPatch::default() };
    run(engine.update_conversation(&tenant, c, high)).unwrap();
    assert_eq!(router.item(WorkItemId::from(c)).unwrap().priority, 2, "a new priority (high, 2) is set as is");
}

/// A human hands the conversation back to a bot: the conversation's handler becomes the bot
/// and the outbox records the change.
#[test]
fn a_conversation_returned_to_a_bot_has_the_bot_as_its_handler() {
    let (engine, router, tenant) = setup();
    let ana = AgentId::new("ana").unwrap();
    let survey = AgentId::new("survey").unwrap();
    router.upsert_agent(Agent::bot(survey.clone()).with_status("online"), engine.now()).unwrap();
    let c = run(engine.ingest(&tenant, chat("v1", "c1"))).unwrap().conversation;
    assert_eq!(handler(&engine, &tenant, c), Some(Handler::Agent(ana.clone())));
    let events = router.return_to_bot(WorkItemId::from(c), &survey, Default::default(), engine.now()).unwrap();
    run(engine.apply_routing_events(&tenant, &events)).unwrap();
    assert_eq!(handler(&engine, &tenant, c), Some(Handler::Bot(survey.clone())));
    let recorded = routing_events(&engine, &tenant);
    assert!(recorded.contains(&(c, RoutingChange::ReturnedToBot { agent: ana, bot: survey.clone() })), "{recorded:?}");
    assert!(
        matches!(recorded.last(), Some((id, RoutingChange::Assigned { agent, .. })) if *id == c && *agent == survey)
    );
}

/// `route_conversation` on a conversation the router already holds returns its current
/// decision (as documented), rather than failing.
#[test]
fn routing_a_conversation_again_returns_its_current_decision() {
    let (engine, _router, tenant) = setup();
    let ana = AgentId::new("ana").unwrap();
    let c = run(engine.ingest(&tenant, chat("v1", "c1"))).unwrap().conversation;
    assert_eq!(handler(&engine, &tenant, c), Some(Handler::Agent(ana.clone())));
    let again = run(engine.route_conversation(&tenant, c));
    assert!(matches!(&again, Ok(d) if d.outcome == Outcome::Assigned(ana.clone())), "{again:?}");
}

/// The handlers the outbox recorded for a conversation, in order.
fn recorded_handlers(engine: &Engine, tenant: &TenantId, c: ConversationId) -> Vec<Option<Handler>> {
    run(engine.store().events_after(tenant, 0, 10_000))
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.event {
            Event::ConversationAssigned { conversation, handler } if conversation == c => Some(handler),
            _ => None,
        })
        .collect()
}

/// Offer control, a human free at once: the bot hands the conversation to Ana directly. The
/// bot keeps it until a human has it, so the handler goes from the bot to Ana, never to the
/// queue in between.
#[test]
fn a_bot_offering_a_conversation_to_a_free_human_hands_it_straight_to_her() {
    use touchpoint::routing::HandoffMode;
    let (engine, router, tenant) = setup();
    let ana = AgentId::new("ana").unwrap();
    let bot = AgentId::new("bot").unwrap();
    router.set_presence(&ana, "away", engine.now()).unwrap();
    router.upsert_agent(Agent::bot(bot.clone()), engine.now()).unwrap();
    let c = run(engine.ingest(&tenant, chat("v1", "c1"))).unwrap().conversation;
    assert_eq!(handler(&engine, &tenant, c), Some(Handler::Bot(bot.clone())));
    router.set_presence(&ana, "online", engine.now()).unwrap();
    let d = router.handoff(WorkItemId::from(c), Default::default(), HandoffMode::Offer, engine.now()).unwrap();
    assert_eq!(d.outcome, Outcome::Assigned(ana.clone()));
    run(engine.apply_routing_events(&tenant, &d.events)).unwrap();
    assert_eq!(handler(&engine, &tenant, c), Some(Handler::Agent(ana.clone())));
    assert_eq!(
        recorded_handlers(&engine, &tenant, c),
        [Some(Handler::Bot(bot)), Some(Handler::Agent(ana))],
        "events of the handoff: {:?}",
        d.events
    );
}

/// Offer control through an overflow: the conversation waits in the bot's queue, its max wait
/// moves it to the humans' queue, and Ana takes it in the same call. The bot served until
/// then, so the handler goes from the bot to Ana, never to a queue in between.
#[test]
fn an_offering_bot_hands_over_to_the_human_an_overflow_reaches_without_a_queue_between() {
    use touchpoint::routing::{HandoffMode, Queue, TimeoutAction};
    let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
    let (front, back) = (QueueId::new("front").unwrap(), QueueId::new("back").unwrap());
    let config = RouterConfig { default_queue: front.clone(), ..RouterConfig::default() };
    let router = Arc::new(Router::new(config));
    router.upsert_queue(Queue::new(back.clone())).unwrap();
    let overflow = TimeoutAction::Overflow(back.clone());
    router.upsert_queue(Queue::new(front).with_max_wait(chrono::TimeDelta::seconds(30), overflow)).unwrap();
    let (ana, bot) = (AgentId::new("ana").unwrap(), AgentId::new("bot").unwrap());
    router.upsert_agent(Agent::bot(bot.clone()), t0).unwrap();
    let human =
        Agent::new(ana.clone()).with_queue(back).with_capacity(Capacity::per_channel([(ChannelKind::WebChat, 1)]));
    router.upsert_agent(human.with_status("away"), t0).unwrap();
    let clock = Arc::new(ManualClock::new(t0));
    let engine = Engine::builder(Arc::new(InMemoryStore::new())).clock(clock.clone()).router(router.clone()).build();
    let tenant = TenantId::new("acme").unwrap();
    let c = run(engine.ingest(&tenant, chat("v1", "c1"))).unwrap().conversation;
    assert_eq!(handler(&engine, &tenant, c), Some(Handler::Bot(bot.clone())));
    let d = router.handoff(WorkItemId::from(c), Default::default(), HandoffMode::Offer, engine.now()).unwrap();
    run(engine.apply_routing_events(&tenant, &d.events)).unwrap();
    assert_eq!(handler(&engine, &tenant, c), Some(Handler::Bot(bot.clone())), "{:?}", d.events);
    // Past the max wait, Ana comes back: the call fires the overflow first, then gives her the
    // conversation.
    clock.advance(chrono::Duration::seconds(31));
    let ev = router.set_presence(&ana, "online", engine.now()).unwrap();
    assert!(ev.iter().any(|e| matches!(e, RoutingEvent::Overflowed { .. })), "{ev:?}");
    run(engine.apply_routing_events(&tenant, &ev)).unwrap();
    assert_eq!(recorded_handlers(&engine, &tenant, c), [Some(Handler::Bot(bot)), Some(Handler::Agent(ana))], "{ev:?}");
}

/// Offer control, and the bot is removed while the conversation waits for a human: nobody
/// serves the customer any more, so the conversation must not go on naming the removed bot as
/// its handler.
#[test]
fn a_conversation_whose_offering_bot_is_removed_no_longer_names_it_as_handler() {
    use touchpoint::routing::{HandoffMode, ItemControl};
    let (engine, router, tenant) = setup();
    let ana = AgentId::new("ana").unwrap();
    let bot = AgentId::new("bot").unwrap();
    router.set_presence(&ana, "away", engine.now()).unwrap();
    router.upsert_agent(Agent::bot(bot.clone()), engine.now()).unwrap();
    let c = run(engine.ingest(&tenant, chat("v1", "c1"))).unwrap().conversation;
    let d = router.handoff(WorkItemId::from(c), Default::default(), HandoffMode::Offer, engine.now()).unwrap();
    run(engine.apply_routing_events(&tenant, &d.events)).unwrap();
    assert_eq!(handler(&engine, &tenant, c), Some(Handler::Bot(bot.clone())));
    let ev = router.remove_agent(&bot, engine.now()).unwrap();
    run(engine.apply_routing_events(&tenant, &ev)).unwrap();
    assert_eq!(router.item(WorkItemId::from(c)).unwrap().control, ItemControl::Routing);
    assert_eq!(handler(&engine, &tenant, c), Some(Handler::Queue(QueueId::new("default").unwrap())), "{ev:?}");
}

/// Offer control, and the bot is removed while the conversation is offered to a human (the
/// queue offers before it assigns): the bot lets go (a pass), so the conversation names the
/// queue until the human accepts, and then the human.
#[test]
fn a_conversation_offered_to_a_human_when_its_offering_bot_is_removed_names_the_queue_then_the_human() {
    use touchpoint::routing::{HandoffMode, ItemControl, OfferPolicy, Queue};
    let (engine, router, tenant) = setup();
    let (ana, bot) = (AgentId::new("ana").unwrap(), AgentId::new("bot").unwrap());
    let default = QueueId::new("default").unwrap();
    router.set_presence(&ana, "away", engine.now()).unwrap();
    router.upsert_agent(Agent::bot(bot.clone()), engine.now()).unwrap();
    let c = run(engine.ingest(&tenant, chat("v1", "c1"))).unwrap().conversation;
    // The bot took the chat; from now on the queue offers before it assigns.
    router
        .upsert_queue(Queue::new(default.clone()).with_offers(OfferPolicy::offers(1, chrono::TimeDelta::seconds(60))))
        .unwrap();
    let item = WorkItemId::from(c);
    let d = router.handoff(item, Default::default(), HandoffMode::Offer, engine.now()).unwrap();
    run(engine.apply_routing_events(&tenant, &d.events)).unwrap();
    let offered = router.set_presence(&ana, "online", engine.now()).unwrap();
    assert!(offered.iter().any(|e| matches!(e, RoutingEvent::Offered { .. })), "{offered:?}");
    run(engine.apply_routing_events(&tenant, &offered)).unwrap();
    assert_eq!(handler(&engine, &tenant, c), Some(Handler::Bot(bot.clone())), "the bot serves until a human has it");

    let ev = router.remove_agent(&bot, engine.now()).unwrap();
    assert!(
        ev.contains(&RoutingEvent::HandedOff { item, bot: bot.clone(), mode: HandoffMode::Pass }),
        "the removed bot lets go: {ev:?}"
    );
    run(engine.apply_routing_events(&tenant, &ev)).unwrap();
    assert_eq!(router.item(item).unwrap().control, ItemControl::Routing);
    assert_eq!(handler(&engine, &tenant, c), Some(Handler::Queue(default.clone())), "{ev:?}");

    // The offer stands: Ana accepts, and the conversation is hers.
    let accepted = router.accept(item, &ana, engine.now()).unwrap();
    run(engine.apply_routing_events(&tenant, &accepted)).unwrap();
    assert_eq!(handler(&engine, &tenant, c), Some(Handler::Agent(ana.clone())));
    assert_eq!(
        recorded_handlers(&engine, &tenant, c),
        [Some(Handler::Bot(bot)), Some(Handler::Queue(default)), Some(Handler::Agent(ana))]
    );
}

/// Ana transfers her chat to billing, where nobody is free yet: the conversation names the
/// billing queue as its handler, the event log records the transfer, and when Bo comes online
/// he is the handler.
#[test]
fn a_transferred_conversation_names_its_new_queue_then_the_agent_who_takes_it() {
    let (engine, router, tenant) = setup();
    let (ana, bo, billing) =
        (AgentId::new("ana").unwrap(), AgentId::new("bo").unwrap(), QueueId::new("billing").unwrap());
    router.upsert_queue(Queue::new(billing.clone())).unwrap();
    let c = run(engine.ingest(&tenant, chat("v1", "c1"))).unwrap().conversation;
    assert_eq!(handler(&engine, &tenant, c), Some(Handler::Agent(ana.clone())));

    let ev = router.transfer(WorkItemId::from(c), &billing, engine.now()).unwrap();
    run(engine.apply_routing_events(&tenant, &ev)).unwrap();
    assert_eq!(handler(&engine, &tenant, c), Some(Handler::Queue(billing.clone())));
    let recorded = routing_events(&engine, &tenant);
    assert!(
        recorded.contains(&(
            c,
            RoutingChange::Transferred {
                from: QueueId::new("default").unwrap(),
                to: billing.clone(),
                agent: Some(ana.clone()),
                target: None
            }
        )),
        "{recorded:?}"
    );
    assert_eq!(router.agent(&ana).unwrap().load, 0);

    let bo_agent = Agent::new(bo.clone())
        .with_queue(billing)
        .with_capacity(Capacity::per_channel([(ChannelKind::WebChat, 1)]))
        .with_status("online");
    let ev = router.upsert_agent(bo_agent, engine.now()).unwrap();
    run(engine.apply_routing_events(&tenant, &ev)).unwrap();
    assert_eq!(handler(&engine, &tenant, c), Some(Handler::Agent(bo)));
}

fn status(s: ConversationStatus) -> touchpoint::ConversationPatch {
    touchpoint::ConversationPatch { status: Some(s), ..touchpoint::ConversationPatch::default() }
}

fn ana_load(router: &Router) -> u32 {
    router.agent(&AgentId::new("ana").unwrap()).unwrap().load
}

/// Only open conversations are routed: routing a resolved one by hand is refused and takes no
/// agent's capacity.
#[test]
fn a_resolved_conversation_is_not_routed() {
    let (engine, router, t) = setup();
    let c = run(engine.ingest(&t, chat("v1", "c1"))).unwrap().conversation;
    run(engine.update_conversation(&t, c, status(ConversationStatus::Resolved))).unwrap();
    assert_eq!(ana_load(&router), 0, "resolving freed ana");
    let r = run(engine.route_conversation(&t, c));
    assert!(matches!(&r, Err(Error::Refused(_))), "{r:?}");
    assert_eq!(ana_load(&router), 0);
    assert!(router.item(WorkItemId::from(c)).is_none());
    assert_eq!(handler(&engine, &t, c), None);
}

/// A conversation reopened by hand with nobody on it goes back to routing.
#[test]
fn a_conversation_reopened_by_hand_is_routed_again() {
    let (engine, router, t) = setup();
    let c = run(engine.ingest(&t, chat("v1", "c1"))).unwrap().conversation;
    run(engine.update_conversation(&t, c, status(ConversationStatus::Resolved))).unwrap();
    let reopened = run(engine.update_conversation(&t, c, status(ConversationStatus::Open))).unwrap();
    assert_eq!(reopened.handler, Some(Handler::Agent(AgentId::new("ana").unwrap())));
    assert!(router.item(WorkItemId::from(c)).is_some());
    assert_eq!(ana_load(&router), 1);
}

/// A patch that says `Open` of a conversation already open reopens nothing: a conversation the
/// host took out of routing on purpose (withdrawn to call the customer back) stays out.
#[test]
fn saying_open_of_an_open_conversation_does_not_route_it() {
    let (engine, router, t) = setup();
    let c = run(engine.ingest(&t, chat("v1", "c1"))).unwrap().conversation;
    let events = router.withdraw(WorkItemId::from(c), engine.now()).unwrap();
    run(engine.apply_routing_events(&t, &events)).unwrap();
    assert_eq!(handler(&engine, &t, c), None);
    run(engine.update_conversation(&t, c, status(ConversationStatus::Open))).unwrap();
    assert!(router.item(WorkItemId::from(c)).is_none());
    assert_eq!(ana_load(&router), 0);
}

/// The process stored a message and stopped before routing it (here: an engine without a
/// router). The provider's retry is a duplicate, and the conversation, open with nobody on
/// it, is routed then.
#[test]
fn a_retried_delivery_routes_a_conversation_whose_routing_was_lost() {
    let (_, router, t) = setup();
    let store = Arc::new(InMemoryStore::new());
    let crashed = Engine::builder(store.clone()).build();
    let first = run(crashed.ingest(&t, chat("v1", "c1"))).unwrap();
    let engine = Engine::builder(store).router(router.clone()).build();
    drop(crashed);
    let retry = run(engine.ingest(&t, chat("v1", "c1"))).unwrap();
    assert!(retry.duplicate);
    assert!(retry.routing.is_some(), "{retry:?}");
    assert!(router.item(WorkItemId::from(first.conversation)).is_some());
    assert_eq!(handler(&engine, &t, first.conversation), Some(Handler::Agent(AgentId::new("ana").unwrap())));
}

/// A blocked customer writing into a snoozed conversation is kept quiet: nobody is asked to
/// handle it, so no agent gets it.
#[test]
fn a_blocked_customers_message_kept_quiet_is_not_routed() {
    let (engine, router, t) = setup();
    let first = run(engine.ingest(&t, chat("v1", "c1"))).unwrap();
    let c = first.conversation;
    run(engine.update_conversation(&t, c, status(ConversationStatus::Resolved))).unwrap();
    let until = engine.now() + chrono::Duration::days(1);
    run(engine.update_conversation(&t, c, status(ConversationStatus::Snoozed { until }))).unwrap();
    assert!(router.item(WorkItemId::from(c)).is_none());
    let block = touchpoint::CustomerPatch { blocked: Some(true), ..Default::default() };
    run(engine.update_customer(&t, first.customer, block)).unwrap();
    let kept = run(engine.ingest(&t, chat("v1", "c2"))).unwrap();
    assert!(matches!(kept.thread, touchpoint::thread::ThreadDecision::KeptQuiet { .. }), "{:?}", kept.thread);
    assert!(!kept.needs_handler);
    assert!(kept.routing.is_none());
    assert_eq!(ana_load(&router), 0);
    // Nor does the provider's retry of that message.
    let retry = run(engine.ingest(&t, chat("v1", "c2"))).unwrap();
    assert!(retry.duplicate && !retry.needs_handler && retry.routing.is_none(), "{retry:?}");
    assert_eq!(ana_load(&router), 0);
}

/// A handler patch of a routed conversation is refused and changes nothing: the router decides
/// who handles it and counts it against that agent's capacity, and moving it through the
/// router keeps the two in step. A patch naming the handler it has is no change, and a
/// conversation the router does not hold takes any handler.
#[test]
fn a_handler_patch_of_a_routed_conversation_is_refused_and_the_router_moves_it() {
    let (engine, router, tenant) = setup();
    let ana = AgentId::new("ana").unwrap();
    let first = run(engine.ingest(&tenant, chat("v1", "c1"))).unwrap();
    let unassign = touchpoint::ConversationPatch { handler: Some(None), ..Default::default() };
    let refused = run(engine.update_conversation(&tenant, first.conversation, unassign.clone()));
    assert!(matches!(refused, Err(Error::Refused(_))), "{refused:?}");
    assert_eq!(handler(&engine, &tenant, first.conversation), Some(Handler::Agent(ana.clone())));
    assert_eq!(router.agent(&ana).unwrap().load, 1);
    let same = touchpoint::ConversationPatch { handler: Some(Some(Handler::Agent(ana.clone()))), ..Default::default() };
    run(engine.update_conversation(&tenant, first.conversation, same)).expect("no change");
    // Through the router: the agent lets go, and the record follows.
    let t = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
    let events = router.requeue(WorkItemId::from(first.conversation), true, t).unwrap();
    run(engine.apply_routing_events(&tenant, &events)).unwrap();
    assert_eq!(router.agent(&ana).unwrap().load, 0);
    assert!(matches!(handler(&engine, &tenant, first.conversation), Some(Handler::Queue(_))));
    // Resolved, it leaves routing; reopened by hand with a handler, the patch is the record.
    let resolve = touchpoint::ConversationPatch { status: Some(ConversationStatus::Resolved), ..Default::default() };
    run(engine.update_conversation(&tenant, first.conversation, resolve)).unwrap();
    assert!(router.item(WorkItemId::from(first.conversation)).is_none());
    let set = touchpoint::ConversationPatch { handler: Some(Some(Handler::Agent(ana.clone()))), ..Default::default() };
    let c = run(engine.update_conversation(&tenant, first.conversation, set)).unwrap();
    assert_eq!(c.handler, Some(Handler::Agent(ana)));
}

/// The work item is on the channel the customer last wrote on: an agent's answer by email to a
/// WhatsApp conversation does not make it email work (capacity and eligibility are per channel).
#[test]
fn the_work_item_is_on_the_channel_the_customer_last_wrote_on() {
    run(async {
        let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()));
        let engine = Engine::builder(Arc::new(InMemoryStore::new())).clock(clock.clone()).build();
        let t = TenantId::new("acme").unwrap();
        let wa = |id: &str| {
            InboundMessage::new(
                ChannelKind::WhatsApp,
                EndpointId::new("wa-main").unwrap(),
                Address::phone("+14155550101"),
                id,
                Content::text("hello"),
            )
        };
        let o = engine.ingest(&t, wa("wamid.1")).await.unwrap();
        let mail = engine
            .link_identity(
                &t,
                o.customer,
                ChannelKind::Email,
                Address::email("ana@example.com"),
                Verification::Verified,
            )
            .await
            .unwrap();
        clock.advance(chrono::Duration::minutes(1));
        let out = touchpoint::OutboundMessage::agent(AgentId::new("ana").unwrap(), Content::text("see my email"))
            .via(EndpointId::new("support-inbox").unwrap(), mail.id);
        engine.record_outbound(&t, o.conversation, out).await.unwrap();
        let item = engine.work_item(&t, o.conversation).await.unwrap();
        assert_eq!(item.channel, ChannelKind::WhatsApp);
        // The customer answers by email (to our reply address): now it is email work.
        clock.advance(chrono::Duration::minutes(1));
        let token = engine.conversation(&t, o.conversation).await.unwrap().reply_token;
        let reply = InboundMessage::new(
            ChannelKind::Email,
            EndpointId::new("support-inbox").unwrap(),
            Address::email("ana@example.com"),
            "<r1@example.com>",
            Content::text("got it"),
        )
        .with_thread(ThreadHints { reply_token: Some(token), ..ThreadHints::default() });
        let again = engine.ingest(&t, reply).await.unwrap();
        assert_eq!(again.conversation, o.conversation, "the customer's open conversation goes on");
        assert_eq!(engine.work_item(&t, o.conversation).await.unwrap().channel, ChannelKind::Email);
    });
}
