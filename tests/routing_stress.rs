//! Concurrency stress: 8 threads, 10,000 agents, 200,000 items with random accept, decline,
//! offer expiry, completion, transfers to queues and agents, and agents going offline and back.
//! Checked throughout and at the end: no agent is ever over a limit or offered a chat during a
//! call (an interruption rule), no item is ever assigned twice, and every item ends completed
//! (after an assignment) or timed out by policy.

mod routing_common;

use chrono::TimeDelta;
use routing_common::*;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use touchpoint::model::ChannelKind;
use touchpoint::routing::*;

mod rng;
use rng::Rng;

const THREADS: usize = 8;
const AGENTS: usize = 10_000;
const ITEMS: usize = 200_000;
const QUEUES: [&str; 4] = ["sales", "support", "billing", "vip"];

fn agent(n: usize) -> Agent {
    let mut a = Agent::new(aid(&format!("agent-{n}")))
        .with_queue(qid(QUEUES[n % 4]))
        .with_queue(qid(QUEUES[(n / 4) % 4]).clone())
        .with_skill("product", (n % 5) as u32 + 1)
        .with_status("online");
    a.queues.dedup_by(|x, y| x.queue == y.queue);
    a.capacity = match n % 3 {
        0 => Capacity::per_channel([(ChannelKind::WebChat, 3), (ChannelKind::Voice, 1)])
            .with_interruption(ChannelKind::Voice, ChannelSet::only([ChannelKind::WebChat])),
        1 => Capacity::budget(100).with_cost(ChannelKind::Voice, 100).with_cost(ChannelKind::WebChat, 40),
        _ => Capacity::per_channel([(ChannelKind::WebChat, 2)]),
    };
    a
}

/// Item `n` (its id is `n + 1`) is a call one time in four, a chat otherwise.
fn channel_of(n: u64) -> ChannelKind {
    if n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 62 == 0 { ChannelKind::Voice } else { ChannelKind::WebChat }
}

/// Limits an agent's snapshot must respect.
fn within_limits(n: usize, s: &AgentStatus) -> Result<(), String> {
    let chat = s.channel_load.get(&ChannelKind::WebChat).copied().unwrap_or(0);
    let voice = s.channel_load.get(&ChannelKind::Voice).copied().unwrap_or(0);
    // "No chat during a call": an agent holding a call (offered or assigned) has no chat
    // offered; chats assigned before the call stay.
    let chat_offers = s.offered.iter().filter(|i| channel_of(i.0.as_u128() as u64 - 1) == ChannelKind::WebChat).count();
    if n.is_multiple_of(3) && voice > 0 && chat_offers > 0 {
        return Err(format!("agent-{n} has a chat offered during a call: {s:?}"));
    }
    let ok = match n % 3 {
        0 => chat <= 3 && voice <= 1,
        1 => s.budget_used <= 100 && s.budget_used == voice * 100 + chat * 40,
        _ => chat <= 2 && voice == 0,
    };
    if ok && s.load == chat + voice { Ok(()) } else { Err(format!("agent-{n} over its limits: {s:?}")) }
}

#[derive(Default)]
struct Tally {
    assigned: u32,
    requeued: u32,
    /// Transfers that took the item from the agent it was assigned to.
    transferred: u32,
    completed: u32,
    timed_out: u32,
}

fn record(log: &Mutex<HashMap<WorkItemId, Tally>>, events: &[RoutingEvent], offers: &Mutex<Vec<(WorkItemId, String)>>) {
    let mut log = log.lock().unwrap();
    let mut new_offers = Vec::new();
    for e in events {
        match e {
            RoutingEvent::Assigned { item, .. } => log.entry(*item).or_default().assigned += 1,
            RoutingEvent::Requeued { item, .. } => log.entry(*item).or_default().requeued += 1,
            RoutingEvent::Transferred { item, agent: Some(_), .. } => log.entry(*item).or_default().transferred += 1,
            RoutingEvent::Completed { item, .. } => log.entry(*item).or_default().completed += 1,
            RoutingEvent::TimedOut { item, .. } => log.entry(*item).or_default().timed_out += 1,
            RoutingEvent::Offered { item, agents, .. } => {
                for a in agents {
                    new_offers.push((*item, a.to_string()));
                }
            }
            _ => {}
        }
    }
    drop(log);
    offers.lock().unwrap().extend(new_offers);
}

#[test]
fn eight_threads_never_break_capacity_or_assign_twice_and_every_item_ends() {
    let started = std::time::Instant::now();
    let config = RouterConfig {
        offline: OfflinePolicy { grace: TimeDelta::seconds(5), assigned: OfflineAction::Requeue },
        ..RouterConfig::default()
    };
    let router = Arc::new(Router::new(config));
    let mut offers = OfferPolicy::offers(2, TimeDelta::seconds(10));
    offers.max_declines = 4;
    offers.on_max_declines = TimeoutAction::Close;
    for (k, q) in QUEUES.iter().enumerate() {
        let mut queue = Queue::new(qid(q)).with_max_wait(TimeDelta::seconds(600), TimeoutAction::Callback);
        if k % 2 == 0 {
            queue = queue.with_offers(offers.clone());
        }
        router.upsert_queue(queue).unwrap();
    }
    router
        .set_plan(
            Plan::new([Rule::new(
                "skills",
                [
                    Step::new(Pool::default()).eligible(Term::ItemSkills).dwell(TimeDelta::seconds(30)),
                    Step::new(Pool::default()),
                ],
            )]),
            t0(),
        )
        .unwrap();
    for n in 0..AGENTS {
        router.upsert_agent(agent(n), t0()).unwrap();
    }

    let clock = Arc::new(AtomicI64::new(0)); // milliseconds after t0
    let next_item = Arc::new(AtomicU64::new(0));
    let log: Arc<Mutex<HashMap<WorkItemId, Tally>>> = Arc::default();
    let open_offers: Arc<Mutex<Vec<(WorkItemId, String)>>> = Arc::default();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (router, clock, next_item, log, open_offers) =
                (router.clone(), clock.clone(), next_item.clone(), log.clone(), open_offers.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(t as u64 + 1);
                let mut mine: Vec<WorkItemId> = Vec::new();
                loop {
                    let now = t0() + TimeDelta::milliseconds(clock.fetch_add(7, Ordering::SeqCst));
                    let roll = rng.below(100);
                    let events = if roll < 40 {
                        let n = next_item.fetch_add(1, Ordering::SeqCst);
                        if n as usize >= ITEMS {
                            break;
                        }
                        let item = WorkItem::new(wid(u128::from(n) + 1), channel_of(n), now)
                            .in_queue(qid(QUEUES[rng.below(4) as usize]))
                            .with_skill("product", rng.below(6) as u32)
                            .with_priority(rng.below(3) as i32);
                        mine.push(item.id);
                        router.submit(item, now).unwrap().events
                    } else if roll < 70 {
                        let offer = {
                            let mut o = open_offers.lock().unwrap();
                            if o.is_empty() {
                                None
                            } else {
                                let k = rng.below(o.len() as u64) as usize;
                                Some(o.swap_remove(k))
                            }
                        };
                        match offer {
                            Some((item, agent)) if rng.below(4) == 0 => {
                                router.decline(item, &aid(&agent), now).unwrap_or_default()
                            }
                            Some((item, agent)) if rng.below(5) > 0 => {
                                router.accept(item, &aid(&agent), now).unwrap_or_default()
                            }
                            _ => Vec::new(), // left to expire
                        }
                    } else if roll < 88 {
                        if mine.is_empty() {
                            Vec::new()
                        } else {
                            let id = mine.swap_remove(rng.below(mine.len() as u64) as usize);
                            match router.complete(id, now) {
                                Ok(ev) => ev,
                                Err(_) => {
                                    if router.item(id).is_some() {
                                        mine.push(id); // not assigned yet: try later
                                    }
                                    Vec::new()
                                }
                            }
                        }
                    } else if roll < 92 {
                        // Transfers of any of this thread's items, in whatever state: to a queue,
                        // or to one agent (refused when they cannot take it).
                        match mine.get(rng.below(mine.len().max(1) as u64) as usize) {
                            Some(&id) if rng.below(2) == 0 => {
                                router.transfer(id, &qid(QUEUES[rng.below(4) as usize]), now).unwrap_or_default()
                            }
                            Some(&id) => {
                                let n = rng.below(AGENTS as u64) as usize;
                                let ev =
                                    router.transfer_to_agent(id, &aid(&format!("agent-{n}")), now).unwrap_or_default();
                                within_limits(n, &router.agent(&aid(&format!("agent-{n}"))).unwrap()).unwrap();
                                ev
                            }
                            None => Vec::new(),
                        }
                    } else if roll < 96 {
                        let n = rng.below(AGENTS as u64) as usize;
                        let status = ["offline", "online", "away", "online"][rng.below(4) as usize];
                        let ev = router.set_presence(&aid(&format!("agent-{n}")), status, now).unwrap();
                        let snap = router.agent(&aid(&format!("agent-{n}"))).unwrap();
                        within_limits(n, &snap).unwrap();
                        ev
                    } else {
                        let n = rng.below(AGENTS as u64) as usize;
                        within_limits(n, &router.agent(&aid(&format!("agent-{n}"))).unwrap()).unwrap();
                        router.tick(now)
                    };
                    record(&log, &events, &open_offers);
                }
                mine
            })
        })
        .collect();
    let mut leftover = Vec::new();
    for h in handles {
        leftover.extend(h.join().unwrap());
    }

    eprintln!("stress: threads done in {:?}", started.elapsed());
    // Quiesce: everyone online, accept whatever is offered, complete whatever is assigned, and
    // let time run past every max wait.
    let mut now = t0() + TimeDelta::milliseconds(clock.load(Ordering::SeqCst));
    for n in 0..AGENTS {
        within_limits(n, &router.agent(&aid(&format!("agent-{n}"))).unwrap()).unwrap();
        let ev = router.set_presence(&aid(&format!("agent-{n}")), "online", now).unwrap();
        record(&log, &ev, &open_offers);
    }
    for _round in 0..200 {
        now += TimeDelta::seconds(30);
        let ev = router.sweep(now);
        record(&log, &ev, &open_offers);
        let offers: Vec<_> = std::mem::take(&mut *open_offers.lock().unwrap());
        for (item, agent) in offers {
            let ev = router.accept(item, &aid(&agent), now).unwrap_or_default();
            record(&log, &ev, &open_offers);
        }
        let ids: Vec<WorkItemId> = {
            let log = log.lock().unwrap();
            (1..=ITEMS as u128)
                .map(wid)
                .filter(|id| log.get(id).is_none_or(|t| t.completed + t.timed_out == 0))
                .collect()
        };
        if ids.is_empty() {
            break;
        }
        for id in ids {
            if let Ok(ev) = router.complete(id, now) {
                record(&log, &ev, &open_offers);
            }
        }
    }
    drop(leftover);

    let log = log.lock().unwrap();
    let mut seen = HashSet::new();
    for n in 1..=ITEMS as u128 {
        let id = wid(n);
        assert!(router.item(id).is_none(), "item {n} never finished: {:?}", router.explain(id, now));
        let t = log.get(&id).unwrap_or_else(|| panic!("item {n} has no events"));
        assert_eq!(t.completed + t.timed_out, 1, "item {n} must end exactly once");
        assert_eq!(
            t.assigned,
            t.requeued + t.transferred + t.completed,
            "item {n} was assigned twice (or lost an assignment)"
        );
        seen.insert(id);
    }
    assert_eq!(seen.len(), ITEMS);
    for n in 0..AGENTS {
        let s = router.agent(&aid(&format!("agent-{n}"))).unwrap();
        assert_eq!(s.load, 0, "agent-{n} still holds work: {s:?}");
    }
    let completed = log.values().filter(|t| t.completed == 1).count();
    let transferred = log.values().filter(|t| t.transferred > 0).count();
    eprintln!(
        "stress: {ITEMS} items, {completed} completed, {} timed out, {transferred} taken from an agent by a transfer, in {:?}",
        ITEMS - completed,
        started.elapsed()
    );
    assert!(transferred > 0, "the mix transfers assigned work");
    assert!(completed > 0 && completed < ITEMS, "the mix serves some items and times out others");
}
