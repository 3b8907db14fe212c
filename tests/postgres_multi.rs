//! Four OS processes share one PostgreSQL database: each connects at the same moment (racing
//! the migrations), ingests the same overlapping customers with duplicate deliveries in its
//! own order, and routes every conversation with its own in-memory Router to one shared agent
//! pool, claiming through the PostgreSQL ledger and accepting, declining or completing at
//! random. Afterwards: one customer per verified identity, no message stored twice, no agent
//! ever over capacity, no item ever assigned to two agents at once.
//! Needs `TOUCHPOINT_PG_URL` (see tests/postgres_common).

mod postgres_common;

use chrono::{TimeZone, Utc};
use postgres_common::{TestStore, fresh_schema, url};
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use touchpoint::Engine;
use touchpoint::clock::ManualClock;
use touchpoint::model::*;
use touchpoint::routing::{
    Agent, AssignmentLedger, Capacity, Claim, ClaimOutcome, Queue, Router, RouterConfig, RoutingEvent, WorkItem,
    WorkItemId,
};
use touchpoint::store::postgres::PostgresConfig;
use touchpoint::store::{LinkKey, MessageQuery, MessageScope, PostgresStore, Store};

mod rng;
use rng::Rng;

const WORKER_ENV: &str = "TOUCHPOINT_PG_MULTI_WORKER";
const WORKERS: usize = 4;
const CUSTOMERS: usize = 24;
const AGENTS: usize = 4;
const LIMIT: u32 = 2;

fn tenant() -> TenantId {
    TenantId::new("multi").expect("tenant")
}

fn agent_id(a: usize) -> AgentId {
    AgentId::new(format!("agent-{a}")).expect("agent")
}

/// Customer `k`'s three channels: (channel, endpoint, sender, provider message id, normalised
/// address of the identity it creates).
fn deliveries(k: usize) -> Vec<(ChannelKind, &'static str, Address, String)> {
    vec![
        (
            ChannelKind::WebChat,
            "site-widget",
            Address::platform("site-widget", format!("visitor-{k}")),
            format!("wc-{k}"),
        ),
        (ChannelKind::Sms, "sms-support", Address::phone(format!("+1415555{k:04}")), format!("SM{k:04}")),
        (
            ChannelKind::Email,
            "support-inbox",
            Address::email(format!("user{k}@example.com")),
            format!("<m{k}@example.com>"),
        ),
    ]
}

fn inbound(k: usize, d: usize) -> InboundMessage {
    let (channel, endpoint, from, external) = deliveries(k).swap_remove(d);
    InboundMessage::new(channel, EndpointId::new(endpoint).expect("endpoint"), from, external, Content::text("help"))
        .with_claim(CustomerKey::ExternalId(format!("user-{k}")), Verification::Verified)
}

fn now_ns() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_nanos()
}

/// One worker process: ingest everything (some twice), route what needs a handler.
#[test]
fn worker_process() {
    let Ok(spec) = std::env::var(WORKER_ENV) else { return };
    let mut parts = spec.splitn(4, '|');
    let (n, url, schema, log) = (
        parts.next().and_then(|n| n.parse::<u64>().ok()).expect("worker number"),
        parts.next().expect("url").to_owned(),
        parts.next().expect("schema").to_owned(),
        PathBuf::from(parts.next().expect("log path")),
    );
    let mut log = std::fs::File::create(log).expect("worker log");
    let mut rng = Rng(0x5eed ^ n.wrapping_mul(0x1234_5678_9abc));
    let t0 = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).single().expect("time");
    let store = futures::executor::block_on(PostgresStore::connect_with(
        PostgresConfig::new(url).with_schema(schema).with_pool_size(3),
    ))
    .expect("worker connects");
    let ledger = store.ledger();
    let clock = Arc::new(ManualClock::new(t0));
    let engine = Engine::builder(Arc::new(store)).clock(clock).build();
    let router = Router::new(RouterConfig::default());
    let queue = QueueId::new("support").expect("queue");
    router.upsert_queue(Queue::new(queue.clone())).expect("queue");
    for a in 0..AGENTS {
        let agent = Agent::new(agent_id(a))
            .with_queue(queue.clone())
            .with_capacity(Capacity::per_channel([(ChannelKind::WebChat, LIMIT)]))
            .with_status("online");
        router.upsert_agent(agent, t0).expect("agent");
    }
    // Every delivery in this worker's own order, and a few delivered twice.
    let mut plan: Vec<(usize, usize)> = (0..CUSTOMERS).flat_map(|k| (0..3).map(move |d| (k, d))).collect();
    for i in (1..plan.len()).rev() {
        plan.swap(i, rng.index(i + 1));
    }
    for _ in 0..CUSTOMERS / 2 {
        let again = plan[rng.index(plan.len())];
        plan.push(again);
    }
    let t = tenant();
    let started = std::time::Instant::now();
    futures::executor::block_on(async {
        for chunk in plan.chunks(4) {
            // Four ingests in flight at once within the process, too.
            let outcomes =
                futures::future::join_all(chunk.iter().map(|&(k, d)| engine.ingest(&t, inbound(k, d)))).await;
            for outcome in outcomes {
                let outcome = outcome.expect("ingest");
                writeln!(log, "MSG {} {}", outcome.message, outcome.customer).expect("log");
                let item = WorkItem::new(WorkItemId::from(outcome.conversation), ChannelKind::WebChat, t0)
                    .in_queue(queue.clone());
                // Already routed by this process (a second message of the conversation): skip.
                let Ok(decision) = router.submit(item, t0) else { continue };
                let mut events: VecDeque<RoutingEvent> = decision.events.into();
                while let Some(event) = events.pop_front() {
                    let RoutingEvent::Assigned { item, agent, .. } = event else { continue };
                    let claim = Claim::new(item, agent.clone(), ChannelKind::WebChat, 1, LIMIT);
                    match ledger.claim(&t, &claim).await.expect("claim") {
                        ClaimOutcome::Granted => {
                            writeln!(log, "GRANT {} {agent} {}", item.0, now_ns()).expect("log");
                            match rng.index(3) {
                                // The agent declines: back to this router's queue, not to them.
                                0 => {
                                    writeln!(log, "FREE {} {agent} {}", item.0, now_ns()).expect("log");
                                    ledger.release(&t, item, &agent).await.expect("release");
                                    events.extend(router.requeue(item, true, t0).expect("requeue"));
                                }
                                // The agent completes the work.
                                1 => {
                                    writeln!(log, "FREE {} {agent} {}", item.0, now_ns()).expect("log");
                                    ledger.release(&t, item, &agent).await.expect("release");
                                    events.extend(router.complete(item, t0).expect("complete"));
                                }
                                // The agent keeps it.
                                _ => {}
                            }
                        }
                        // Another process owns the item: this router lets it go.
                        ClaimOutcome::Refused(touchpoint::routing::Refusal::AlreadyAssigned { .. }) => {
                            events.extend(router.withdraw(item, t0).expect("withdraw"));
                        }
                        // The agent is full elsewhere: try another agent.
                        ClaimOutcome::Refused(_) => {
                            events.extend(router.requeue(item, true, t0).expect("requeue"));
                        }
                    }
                }
            }
        }
    });
    eprintln!("worker {n}: {} deliveries ingested and routed in {:?}", plan.len(), started.elapsed());
    writeln!(log, "DONE").expect("log");
}

#[derive(Debug)]
struct Hold {
    item: String,
    agent: String,
    from: u128,
    until: u128,
}

#[test]
fn four_processes_share_one_database() {
    let Some(url) = url("four_processes_share_one_database") else { return };
    let schema = fresh_schema();
    let dir = std::env::temp_dir().join(format!("touchpoint-pg-multi-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let exe = std::env::current_exe().expect("test binary");
    let logs: Vec<PathBuf> = (0..WORKERS).map(|n| dir.join(format!("worker-{n}.log"))).collect();
    // All four start together and race to create the schema.
    let children: Vec<_> = logs
        .iter()
        .enumerate()
        .map(|(n, log)| {
            Command::new(&exe)
                .args(["--exact", "worker_process", "--nocapture", "--test-threads=1"])
                .env(WORKER_ENV, format!("{n}|{url}|{schema}|{}", log.display()))
                .spawn()
                .expect("start worker")
        })
        .collect();
    // Whatever happens next, the schema is dropped at the end.
    let db = TestStore::connect_with(PostgresConfig::new(&url).with_schema(schema.clone()));
    for (n, child) in children.into_iter().enumerate() {
        let status = child.wait_with_output().expect("worker ran").status;
        assert!(status.success(), "worker {n} failed: {status}");
    }

    // The logs: every grant with the time it was held.
    let mut holds: Vec<Hold> = Vec::new();
    let mut open: HashMap<String, (String, u128)> = HashMap::new();
    let mut grants = 0;
    for log in &logs {
        let text = std::fs::read_to_string(log).expect("worker log");
        assert!(text.ends_with("DONE\n"), "a worker did not finish: {log:?}");
        for line in text.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            match f.as_slice() {
                ["GRANT", item, agent, at] => {
                    grants += 1;
                    let key = format!("{item}|{agent}|{log:?}");
                    open.insert(key, (agent.to_string(), at.parse().expect("time")));
                }
                ["FREE", item, agent, at] => {
                    let key = format!("{item}|{agent}|{log:?}");
                    let (agent, from) = open.remove(&key).expect("freed what it was granted");
                    holds.push(Hold { item: item.to_string(), agent, from, until: at.parse().expect("time") });
                }
                _ => {}
            }
        }
    }
    for (key, (agent, from)) in open {
        let item = key.split('|').next().expect("item").to_owned();
        holds.push(Hold { item, agent, from, until: u128::MAX });
    }
    assert!(grants >= CUSTOMERS / 2, "too few grants to mean anything: {grants}");

    // No item held by two grants at once; no agent holding more than its limit at any time.
    holds.sort_by_key(|h| h.from);
    for (i, a) in holds.iter().enumerate() {
        for b in &holds[i + 1..] {
            if b.from >= a.until {
                continue;
            }
            assert!(a.item != b.item, "item {} was assigned twice at once: {a:?} and {b:?}", a.item);
        }
        let concurrent = holds.iter().filter(|b| b.agent == a.agent && b.from <= a.from && a.from < b.until).count();
        assert!(concurrent as u32 <= LIMIT, "{} held {concurrent} items at once (limit {LIMIT})", a.agent);
    }

    futures::executor::block_on(async {
        let t = tenant();
        let store = &db.store;
        let ledger = store.ledger();
        // The ledger's loads are exactly what is still held, within the limit.
        let mut held: HashMap<String, u32> = HashMap::new();
        for h in holds.iter().filter(|h| h.until == u128::MAX) {
            let item = WorkItemId(h.item.parse().expect("uuid"));
            let a = ledger.assignment(&t, item).await.expect("assignment").expect("still held");
            assert_eq!(a.agent.as_str(), h.agent);
            *held.entry(h.agent.clone()).or_default() += 1;
        }
        for a in 0..AGENTS {
            let load = ledger.load(&t, &agent_id(a), &ChannelKind::WebChat).await.expect("load");
            assert_eq!(load, held.get(agent_id(a).as_str()).copied().unwrap_or(0));
            assert!(load <= LIMIT);
        }

        // One customer per verified identity, holding all of its addresses; each message once.
        let mut customers = HashSet::new();
        for k in 0..CUSTOMERS {
            let customer =
                store.customer_by_external_id(&t, &format!("user-{k}")).await.expect("lookup").expect("customer");
            customers.insert(customer.id);
            let identities = store.identities_of(&t, customer.id).await.expect("identities");
            assert_eq!(identities.len(), 3, "customer {k} has {} identities", identities.len());
            for identity in &identities {
                if let Some(key) = LinkKey::of(&identity.address) {
                    let holders = store.customers_by_address(&t, &key).await.expect("holders");
                    assert_eq!(holders.iter().map(|(c, _)| *c).collect::<Vec<_>>(), vec![customer.id]);
                }
            }
            let messages = store
                .messages(&t, &MessageQuery { scope: MessageScope::Customer(customer.id), before: None, limit: 100 })
                .await
                .expect("messages");
            let ids: HashSet<_> = messages.iter().map(|m| m.external_id.clone()).collect();
            assert_eq!(messages.len(), 3, "customer {k} has {} messages", messages.len());
            assert_eq!(ids.len(), 3, "a message of customer {k} is stored twice");
            for m in &messages {
                let external = m.external_id.as_deref().expect("inbound messages have provider ids");
                let found = store.message_by_external_id(&t, &m.channel, external).await.expect("lookup");
                assert_eq!(found.map(|f| f.id), Some(m.id), "the provider id finds the one stored message");
            }
        }
        assert_eq!(customers.len(), CUSTOMERS);
        // Events are numbered 1, 2, 3, … across all four processes.
        let events = store.events_after(&t, 0, 100_000).await.expect("events");
        assert!(!events.is_empty());
        assert!(events.iter().enumerate().all(|(i, e)| e.seq == i as u64 + 1), "event numbers have gaps");
        assert!(events.windows(2).all(|w| w[0].id.0 < w[1].id.0), "event ids do not increase in commit order");
    });
    let _ = std::fs::remove_dir_all(&dir);
}
