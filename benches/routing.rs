//! Routing hot paths, each measured against a baseline in the same run.
//!
//! * `routing/decide/{1k,10k,100k}` — `Router::submit` of an item that is assigned at once, with
//!   64 eligibility profiles (six skills at level 1 or 5 in every combination), 90 % of the
//!   agents busy (one chat each), every item requiring one random skill at level 5 (half the
//!   profiles eligible), default ranker (longest idle). Outside the timed call the item is
//!   completed again, so occupancy stays at 90 %. Baseline `routing/scan/*`: the same decision
//!   by a full scan over the same `Agent` records (skill lookup, load check, longest idle).
//!   Targets: ≤ 300 ns at 100k and ≥ 100× faster than the scan.
//! * `routing/queue_push_pop` — `ItemQueue` (priority then age) holding 100k items: one push
//!   and one pop, against `std::collections::BinaryHeap` of the same size and keys. Target ≤ 3×.
//! * relaxation — 1M items waiting (no agents) on a ten-step plan with 10 s dwells; each tick
//!   moves all of them one step (recomputing eligibility, requeueing, scheduling the next
//!   timer). Five ticks by `Router::tick_into` into one buffer kept across ticks (cleared
//!   between them, outside the timing), as a timer loop would run it; then five by
//!   `Router::tick`, which returns a fresh list each time (about 70 MB whose pages are touched
//!   for the first time). Reported as ns per item-step, each against popping and re-pushing 1M
//!   timers in a `BinaryHeap`. Target ≤ 200 ns per step.
//!
//! Medians over the measured samples are printed with the ratios, and repeated in a summary.
//! `ROUTING_BENCH_ONLY_RELAXATION=1` runs the relaxation case alone;
//! `ROUTING_BENCH_SKIP_RELAXATION=1` leaves it out.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use criterion::Criterion;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hint::black_box;
use std::time::{Duration, Instant};
use touchpoint::model::{AgentId, ChannelKind, QueueId};
use touchpoint::routing::*;

#[path = "support/mod.rs"]
mod support;
use support::{Rng, Samples};

const DECIDE_SAMPLES: usize = 30;
const QUEUE_SAMPLES: usize = 30;
const RELAX_ITEMS: usize = 1_000_000;
const RELAX_STEPS: usize = 5;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

fn queue() -> QueueId {
    QueueId::new("q").unwrap()
}

const SKILLS: [&str; 6] = ["s0", "s1", "s2", "s3", "s4", "s5"];

/// Agent `i` of profile `i % 64`: skill `s_j` at level 5 if bit j of the profile is set, else 1.
fn agent(i: usize) -> Agent {
    let p = i % 64;
    let mut a = Agent::new(AgentId::new(format!("agent-{i}")).unwrap())
        .with_queue(queue())
        .with_capacity(Capacity::per_channel([(ChannelKind::WebChat, 1)]))
        .with_status("online");
    for (j, s) in SKILLS.iter().enumerate() {
        a = a.with_skill(*s, if p >> j & 1 == 1 { 5 } else { 1 });
    }
    a
}

struct DecideWorld {
    router: Router,
    agents: Vec<Agent>,
    next_item: u128,
    now: DateTime<Utc>,
}

fn decide_world(n: usize) -> DecideWorld {
    let router = Router::new(RouterConfig::default());
    router.upsert_queue(Queue::new(queue())).unwrap();
    router
        .set_plan(Plan::new([Rule::new("skills", [Step::new(Pool::default()).eligible(Term::ItemSkills)])]), t0())
        .unwrap();
    let agents: Vec<Agent> = (0..n).map(agent).collect();
    for a in &agents {
        router.upsert_agent(a.clone(), t0()).unwrap();
    }
    // 90 % occupancy; the busy agents are spread over every profile.
    let mut rng = Rng(7);
    let mut busy = 0;
    let mut next_item = 1u128;
    while busy < n * 9 / 10 {
        let item = WorkItem::new(WorkItemId::from_u128(next_item), ChannelKind::WebChat, t0()).in_queue(queue());
        next_item += 1;
        let d = router.submit(item, t0()).unwrap();
        assert!(matches!(d.outcome, Outcome::Assigned(_)));
        busy += 1;
        let _ = rng.below(2);
    }
    DecideWorld { router, agents, next_item, now: t0() + TimeDelta::seconds(1) }
}

/// The naive decision: scan every agent.
fn scan_decide(agents: &[Agent], load: &[u32], idle_since: &[i64], skill: &str) -> Option<usize> {
    let mut best: Option<(i64, usize)> = None;
    for (i, a) in agents.iter().enumerate() {
        if a.presence.status != "online" || load[i] >= a.capacity.limit_of(&ChannelKind::WebChat).unwrap_or(0) {
            continue;
        }
        if a.skills.get(skill).is_none_or(|l| *l < 5) {
            continue;
        }
        if best.is_none_or(|(b, _)| idle_since[i] < b) {
            best = Some((idle_since[i], i));
        }
    }
    best.map(|(_, i)| i)
}

fn bench_decide(c: &mut Criterion, summary: &mut Vec<String>) {
    for (label, n) in [("1k", 1_000usize), ("10k", 10_000), ("100k", 100_000)] {
        let mut world = decide_world(n);
        let mut group = c.benchmark_group("routing");
        group.sample_size(DECIDE_SAMPLES).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
        let mut router_samples = Samples::default();
        let mut rng = Rng(11);
        group.bench_function(format!("decide/{label}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let skill = SKILLS[rng.below(6) as usize];
                    let id = WorkItemId::from_u128(world.next_item);
                    world.next_item += 1;
                    let item =
                        WorkItem::new(id, ChannelKind::WebChat, world.now).in_queue(queue()).with_skill(skill, 5);
                    world.now += TimeDelta::milliseconds(1);
                    let start = Instant::now();
                    let d = black_box(world.router.submit(item, world.now).unwrap());
                    total += start.elapsed();
                    assert!(matches!(d.outcome, Outcome::Assigned(_)), "{d:?}");
                    world.router.complete(id, world.now).unwrap();
                }
                router_samples.push(total, iters);
                total
            })
        });
        // Baseline: the same decisions by scanning, on the same population and occupancy.
        let mut load: Vec<u32> = (0..n).map(|i| u32::from(i < n * 9 / 10)).collect();
        let mut idle: Vec<i64> = (0..n as i64).collect();
        let mut clock = n as i64;
        let mut scan_samples = Samples::default();
        group.bench_function(format!("scan/{label}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let skill = SKILLS[rng.below(6) as usize];
                    let start = Instant::now();
                    let pick = black_box(scan_decide(&world.agents, &load, &idle, skill));
                    total += start.elapsed();
                    if let Some(i) = pick {
                        load[i] += 1;
                        load[i] -= 1;
                        clock += 1;
                        idle[i] = clock;
                    }
                }
                scan_samples.push(total, iters);
                total
            })
        });
        group.finish();
        let (r, s) = (
            router_samples.median(DECIDE_SAMPLES).unwrap_or(f64::NAN),
            scan_samples.median(DECIDE_SAMPLES).unwrap_or(f64::NAN),
        );
        let line = format!(
            "decide {label:>4} agents: router {r:>8.0} ns/decision, full scan {s:>10.0} ns, scan/router = {:.0}×",
            s / r
        );
        eprintln!("{line}");
        summary.push(line);
    }
}

fn bench_queue(c: &mut Criterion, summary: &mut Vec<String>) {
    const N: usize = 100_000;
    let mut rng = Rng(3);
    let items: Vec<WorkItem> = (0..N * 4)
        .map(|k| {
            WorkItem::new(
                WorkItemId::from_u128(k as u128),
                ChannelKind::WebChat,
                t0() + TimeDelta::milliseconds(rng.below(3_600_000) as i64),
            )
            .with_priority(rng.below(4) as i32)
        })
        .collect();
    let mut q = ItemQueue::new(Discipline::PriorityThenAge);
    let mut heap: BinaryHeap<Reverse<(i64, i64, u64)>> = BinaryHeap::new();
    for (k, it) in items.iter().take(N).enumerate() {
        q.push(it);
        heap.push(Reverse((-i64::from(it.priority), it.eligible_since.timestamp_millis(), k as u64)));
    }
    let mut group = c.benchmark_group("routing");
    group.sample_size(QUEUE_SAMPLES).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    let mut qs = Samples::default();
    let mut k = N;
    group.bench_function("queue_push_pop/item_queue", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                q.push(&items[k % items.len()]);
                k += 1;
                black_box(q.pop());
            }
            let e = start.elapsed();
            qs.push(e, iters);
            e
        })
    });
    let mut hs = Samples::default();
    let mut k = N;
    group.bench_function("queue_push_pop/binary_heap", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let it = &items[k % items.len()];
                heap.push(Reverse((-i64::from(it.priority), it.eligible_since.timestamp_millis(), k as u64)));
                k += 1;
                black_box(heap.pop());
            }
            let e = start.elapsed();
            hs.push(e, iters);
            e
        })
    });
    group.finish();
    let (r, h) = (qs.median(QUEUE_SAMPLES).unwrap_or(f64::NAN), hs.median(QUEUE_SAMPLES).unwrap_or(f64::NAN));
    let line =
        format!("queue 100k items: ItemQueue push+pop {r:.0} ns, BinaryHeap push+pop {h:.0} ns, ratio = {:.2}×", r / h);
    eprintln!("{line}");
    summary.push(line);
}

fn bench_relaxation(summary: &mut Vec<String>) {
    let router = Router::new(RouterConfig::default());
    router.upsert_queue(Queue::new(queue())).unwrap();
    let dwell = TimeDelta::seconds(10);
    let steps: Vec<Step> = (0..=2 * RELAX_STEPS)
        .map(|k| {
            let s = Step::new(Pool::default()).eligible(if k % 2 == 0 { Term::ItemSkills } else { Term::Any });
            if k < 2 * RELAX_STEPS { s.dwell(dwell) } else { s }
        })
        .collect();
    router.set_plan(Plan::new([Rule::new("relax", steps)]), t0()).unwrap();
    let mut rng = Rng(5);
    let start = Instant::now();
    for k in 0..RELAX_ITEMS {
        let item = WorkItem::new(WorkItemId::from_u128(k as u128 + 1), ChannelKind::WebChat, t0())
            .in_queue(queue())
            .with_skill(SKILLS[rng.below(6) as usize], 5)
            .with_priority(rng.below(3) as i32);
        router.submit(item, t0()).unwrap();
    }
    eprintln!("relaxation: {RELAX_ITEMS} items queued in {:?}", start.elapsed());
    let moved_all = |events: &[RoutingEvent]| {
        let moved = events.iter().filter(|e| matches!(e, RoutingEvent::StepEntered { .. })).count();
        assert_eq!(moved, RELAX_ITEMS, "every item moves one step per tick");
    };
    let (mut into_buffer, mut fresh) = (Samples::default(), Samples::default());
    let mut buffer = Vec::new();
    for k in 1..=2 * RELAX_STEPS {
        let now = t0() + dwell * k as i32;
        if k <= RELAX_STEPS {
            let start = Instant::now();
            router.tick_into(now, &mut buffer);
            into_buffer.push(start.elapsed(), RELAX_ITEMS as u64);
            eprintln!(
                "relaxation tick {k} (tick_into): {:.0} ns per item",
                into_buffer.0.last().copied().unwrap_or(f64::NAN)
            );
            moved_all(&buffer);
            buffer.clear();
        } else {
            let start = Instant::now();
            let events = router.tick(now);
            let e = start.elapsed();
            moved_all(&events);
            drop(black_box(events));
            fresh.push(e, RELAX_ITEMS as u64);
            eprintln!("relaxation tick {k} (tick): {:.0} ns per item", fresh.0.last().copied().unwrap_or(f64::NAN));
        }
    }
    // Baseline: pop and re-push 1M timers in a BinaryHeap (the least any timer wheel does).
    let mut heap: BinaryHeap<Reverse<(i64, u64)>> = (0..RELAX_ITEMS as u64).map(|k| Reverse((10_000, k))).collect();
    let mut base = Samples::default();
    for k in 1..=RELAX_STEPS as i64 {
        let start = Instant::now();
        for _ in 0..RELAX_ITEMS {
            if let Some(Reverse((due, id))) = heap.pop() {
                heap.push(Reverse((due + 10_000 * k, id)));
            }
        }
        base.push(start.elapsed(), RELAX_ITEMS as u64);
    }
    let b = base.median(RELAX_STEPS).unwrap_or(f64::NAN);
    let (r, f) = (into_buffer.median(RELAX_STEPS).unwrap_or(f64::NAN), fresh.median(RELAX_STEPS).unwrap_or(f64::NAN));
    let line = format!(
        "relaxation 1M items: tick_into (one buffer) {r:.0} ns per item-step, ratio = {:.1}×; \
         tick (fresh list) {f:.0} ns, ratio = {:.1}×; BinaryHeap timer pop+push {b:.0} ns",
        r / b,
        f / b
    );
    eprintln!("{line}");
    summary.push(line);
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let mut summary = Vec::new();
    // ROUTING_BENCH_ONLY_RELAXATION=1 runs the relaxation case alone (no decide/queue setup).
    if std::env::var_os("ROUTING_BENCH_ONLY_RELAXATION").is_none() {
        bench_decide(&mut c, &mut summary);
        bench_queue(&mut c, &mut summary);
    }
    // The relaxation run is timed by hand (one tick per step) and needs a minute of setup;
    // ROUTING_BENCH_SKIP_RELAXATION=1 skips it.
    if std::env::var_os("ROUTING_BENCH_SKIP_RELAXATION").is_none() {
        bench_relaxation(&mut summary);
    }
    c.final_summary();
    eprintln!("\n== summary ==");
    for line in &summary {
        eprintln!("{line}");
    }
}
