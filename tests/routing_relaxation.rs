//! Many step timers falling due in one tick: every item moves exactly as it would alone —
//! its own rule, step, skills, channel, skip-if and timer basis — and anything that happens
//! between two of them inside the tick (an agent freed) counts for the later ones.

mod routing_common;

use chrono::TimeDelta;
use routing_common::*;
use touchpoint::model::ChannelKind;
use touchpoint::routing::*;

/// (item, rule, step) of every step event, in order, tagged entered/skipped.
fn steps(events: &[RoutingEvent]) -> Vec<(&'static str, WorkItemId, String, usize)> {
    events
        .iter()
        .filter_map(|e| match e {
            RoutingEvent::StepEntered { item, rule, step } => Some(("entered", *item, rule.to_string(), *step)),
            RoutingEvent::StepSkipped { item, rule, step } => Some(("skipped", *item, rule.to_string(), *step)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_mixed_crowd_moves_in_one_tick_each_by_its_own_rule_step_skills_and_skip() {
    let r = router(&["s"]);
    let ten = TimeDelta::seconds(10);
    let plan = Plan::new([
        // VIPs: skills first, then anyone; step 1 is skipped for priority ≥ 2.
        Rule::new(
            "vip",
            [
                Step::new(Pool::default()).eligible(Term::ItemSkills).dwell(ten),
                Step::new(Pool::default()).dwell(ten).skip_if(SkipIf::expr("item.priority >= 2")),
                Step::new(Pool::default()).eligible(Term::ItemSkills).widen(),
            ],
        )
        .when(Term::item_attr_equals("tier", "vip")),
        // Everyone else: dwell counted from the item's age (created at different times; the
        // oldest fall due with the VIPs).
        Rule::new(
            "rest",
            [
                Step::new(Pool::default())
                    .eligible(Term::ItemSkills)
                    .dwell(TimeDelta::seconds(25))
                    .timed_from_item_age(),
                Step::new(Pool::default()).eligible(Term::ItemSkills).dwell(ten),
                Step::new(Pool::default()),
            ],
        ),
    ]);
    r.set_plan(plan, t0()).unwrap();
    // Nobody has skill "z": nobody can take anything until the end.
    r.upsert_agent(chat_agent("resting", "s", 1).with_status("away"), t0()).unwrap();
    let n = 60u128;
    let skill = |k: u128| ["a", "b", "c"][(k % 3) as usize];
    for k in 1..=n {
        let created = at(-((k % 4) as i64) * 5); // ages 0, 5, 10 or 15 s at t0
        let channel = if k % 5 == 0 { ChannelKind::Email } else { ChannelKind::WebChat };
        let mut item = WorkItem::new(wid(k), channel, created)
            .in_queue(qid("s"))
            .with_skill(skill(k), 1)
            .with_skill("z", 1)
            .with_priority((k % 4) as i32);
        if k % 2 == 0 {
            item = item.with_attribute("tier", "vip");
        }
        r.submit(item, t0()).unwrap();
    }
    let moved = r.tick(at(10));
    // What each item does alone: VIPs enter step 1 (or skip it to step 2 at priority ≥ 2);
    // the others move only if their age reached 25 s (created 15 s before t0).
    let mut expected = Vec::new();
    for k in 1..=n {
        let prio = k % 4;
        if k % 2 == 0 {
            if prio >= 2 {
                expected.push(("skipped", wid(k), "vip".to_string(), 1));
                expected.push(("entered", wid(k), "vip".to_string(), 2));
            } else {
                expected.push(("entered", wid(k), "vip".to_string(), 1));
            }
        } else if (k % 4) * 5 >= 15 {
            expected.push(("entered", wid(k), "rest".to_string(), 1));
        }
    }
    assert_eq!(steps(&moved), expected);
    assert!(assignments(&moved).is_empty());
    for k in 1..=n {
        let st = r.item(wid(k)).unwrap();
        let want = expected.iter().rev().find(|e| e.1 == wid(k)).map_or(0, |e| e.3);
        assert_eq!(st.step, Some(want), "item {k}");
    }
    // Every item waits with its own step's pool: an agent with skill "z" and "a" on web chat
    // takes exactly the web-chat items it is eligible for, priority then age.
    let ev = r
        .upsert_agent(
            chat_agent("za", "s", 100).with_skill("z", 5).with_skill("a", 5).with_skill("b", 1).with_skill("c", 1),
            at(11),
        )
        .unwrap();
    let got: Vec<WorkItemId> = assignments(&ev).into_iter().map(|(i, _)| i).collect();
    let mut want: Vec<u128> = (1..=n).filter(|k| k % 5 != 0).collect();
    want.sort_by_key(|k| (-((k % 4) as i64), -((k % 4) as i64) * 5, *k));
    assert_eq!(got, want.iter().map(|k| wid(*k)).collect::<Vec<_>>());
}

#[test]
fn an_agent_freed_inside_the_tick_takes_a_later_item_of_the_same_step() {
    let r = Router::new(RouterConfig::default());
    r.upsert_queue(Queue::new(qid("s")).with_no_reply(TimeDelta::seconds(10))).unwrap();
    let ten = TimeDelta::seconds(10);
    r.set_plan(
        Plan::new([Rule::new(
            "r",
            [Step::new(Pool::default()).eligible(Term::ItemSkills).dwell(ten), Step::new(Pool::default()).dwell(ten)],
        )]),
        t0(),
    )
    .unwrap();
    // The agent takes queue items 30 s old or more.
    let g = Agent::new(aid("g"))
        .with_membership(QueueMembership { queue: qid("s"), priority: 1, delay: TimeDelta::seconds(30) })
        .with_capacity(Capacity::per_channel([(ChannelKind::WebChat, 1)]))
        .with_status("online");
    r.upsert_agent(g, t0()).unwrap();
    // Step timers of `young` and `old` fall due at t0+10 s, the no-reply timer of `busy`
    // between them.
    let young = chat(1, "s", t0()).with_skill("x", 1);
    r.submit(young, t0()).unwrap();
    let busy = chat(2, "s", at(-60));
    assert_eq!(assigned_to(&r.submit(busy, t0()).unwrap()).as_deref(), Some("g"));
    let old = chat(3, "s", at(-60)).with_skill("x", 1);
    r.submit(old, t0()).unwrap();
    let ev = r.tick(at(10));
    // `young` moves while g is busy; `busy` comes back (not to g again) and moves on too; g
    // is free but `young` is too young for g; `old` moves next and g takes it.
    assert_eq!(assignments(&ev), vec![(wid(3), "g".to_string())]);
    assert!(ev.iter().any(|e| matches!(e, RoutingEvent::Requeued { item, .. } if *item == wid(2))));
    assert_eq!(
        steps(&ev),
        vec![
            ("entered", wid(1), "r".to_string(), 1),
            ("entered", wid(2), "r".to_string(), 1),
            ("entered", wid(3), "r".to_string(), 1)
        ]
    );
    assert_eq!(r.item(wid(1)).unwrap().step, Some(1));
}

#[test]
fn items_withdrawn_or_replaced_before_the_tick_are_not_moved_by_stale_timers() {
    let r = router(&["s"]);
    let plan = Plan::new([Rule::new(
        "r",
        [
            Step::new(Pool::default()).eligible(Term::ItemSkills).dwell(TimeDelta::seconds(10)),
            Step::new(Pool::default()).dwell(TimeDelta::seconds(10)),
            Step::new(Pool::default()),
        ],
    )]);
    r.set_plan(plan, t0()).unwrap();
    for k in 1..=4 {
        r.submit(chat(k, "s", t0()).with_skill("x", 1), t0()).unwrap();
    }
    r.withdraw(wid(2), at(1)).unwrap();
    // Item 5 may take item 2's place inside the router; its own timer is due at 15 s.
    r.submit(chat(5, "s", at(5)).with_skill("x", 1), at(5)).unwrap();
    let ev = r.tick(at(10));
    let moved: Vec<WorkItemId> = steps(&ev).into_iter().map(|(_, i, _, _)| i).collect();
    assert_eq!(moved, vec![wid(1), wid(3), wid(4)]);
    assert_eq!(r.item(wid(5)).unwrap().step, Some(0));
    assert!(r.item(wid(2)).is_none());
    let ev = r.tick(at(15));
    assert_eq!(steps(&ev), vec![("entered", wid(5), "r".to_string(), 1)]);
    let ev = r.tick(at(20));
    let moved: Vec<(WorkItemId, usize)> = steps(&ev).into_iter().map(|(_, i, _, s)| (i, s)).collect();
    assert_eq!(moved, vec![(wid(1), 2), (wid(3), 2), (wid(4), 2)]);
}

/// A plan of three steps 10 s apart: anyone in the queue, then twice the item's skills.
fn set_skills_after_a_plain_step(r: &Router) {
    let ten = TimeDelta::seconds(10);
    let steps = [
        Step::new(Pool::default()).dwell(ten),
        Step::new(Pool::default()).eligible(Term::ItemSkills).dwell(ten),
        Step::new(Pool::default()).eligible(Term::ItemSkills),
    ];
    r.set_plan(Plan::new([Rule::new("r", steps)]), t0()).unwrap();
}

#[test]
fn items_moved_together_keep_their_own_skills_even_when_the_sets_differ_only_in_a_later_skill() {
    let r = router(&["s"]);
    set_skills_after_a_plain_step(&r);
    // Three skill sets with the same first skill: {a:1, b:5} (the oldest items), {a:1, b:1}
    // and {a:1}, interleaved; nobody is available while they move. The agent who will take
    // them is known (away) before they move: adding an agent of a new profile later would
    // recompute every waiting item's pool and hide how the moves grouped them.
    r.upsert_agent(chat_agent("g", "s", 100).with_skill("a", 5).with_skill("b", 3).with_status("away"), t0()).unwrap();
    for k in 0..60u128 {
        let item = chat(k + 1, "s", at(k as i64 - 100)).with_skill("a", 1);
        let item = match k % 3 {
            0 => item.with_skill("b", 5),
            1 => item.with_skill("b", 1),
            _ => item,
        };
        r.submit(item, t0()).unwrap();
    }
    for tick in [10, 20] {
        let moved = steps(&r.tick(at(tick)));
        assert_eq!(moved.len(), 60, "every item moves one step at {tick} s");
    }
    // An agent with b at level 3 takes exactly the items that do not need b at 5.
    let ev = r.set_presence(&aid("g"), "online", at(21)).unwrap();
    let mut taken: Vec<WorkItemId> = assignments(&ev).into_iter().map(|(i, _)| i).collect();
    taken.sort();
    let mut expected: Vec<WorkItemId> = (0..60u128).filter(|k| k % 3 != 0).map(|k| wid(k + 1)).collect();
    expected.sort();
    assert_eq!(taken, expected);
    for k in (0..60u128).filter(|k| k % 3 == 0) {
        let status = r.item(wid(k + 1)).unwrap();
        assert_eq!(status.step, Some(2), "item {k} waits at the last step");
    }
}

#[test]
fn past_the_skill_set_cap_items_moved_together_still_keep_their_own_skills() {
    // The batch path numbers each distinct skill set it moves (65,536 numbers for the
    // router's lifetime); the sets after those are compared by value. 65,536 items with a
    // skill of their own fill the numbers, then the items below fall due in the same tick,
    // interleaved: their sets differ in a later skill or level, or are new, or equal an
    // already numbered one ({f1:1}). Nobody is available while they move.
    const SKILL_SETS: u128 = 1 << 16;
    let r = router(&["s"]);
    set_skills_after_a_plain_step(&r);
    // The only agent with "u", and one with a at 5 and b at 3: both away while items move, and
    // known before (a new agent profile would recompute every waiting item's pool alone).
    r.upsert_agent(chat_agent("u", "s", 100).with_skill("u", 1).with_status("away"), t0()).unwrap();
    r.upsert_agent(chat_agent("ab", "s", 100).with_skill("a", 5).with_skill("b", 3).with_status("away"), t0()).unwrap();
    for k in 1..=SKILL_SETS {
        r.submit(chat(k, "s", t0()).with_skill(format!("f{k}"), 1), t0()).unwrap();
    }
    let late: [&[(&str, u32)]; 5] =
        [&[("a", 1), ("b", 5)], &[("a", 1), ("b", 1)], &[("a", 1)], &[("z", 1)], &[("f1", 1)]];
    let u = late.len();
    let mut kinds = Vec::new();
    for rep in 0..4 {
        for kind in 0..late.len() {
            kinds.push(kind);
            if rep == 2 && kind == 2 {
                // The one item with "u", between the others.
                kinds.push(u);
            }
        }
    }
    let id = |n: usize| wid(SKILL_SETS + 1 + n as u128);
    for (n, &kind) in kinds.iter().enumerate() {
        let skills: &[(&str, u32)] = late.get(kind).copied().unwrap_or(&[("u", 1)]);
        let item = skills.iter().fold(chat(SKILL_SETS + 1 + n as u128, "s", t0()), |it, (s, l)| it.with_skill(*s, *l));
        r.submit(item, t0()).unwrap();
    }
    let all: Vec<WorkItemId> = (1..=SKILL_SETS).map(wid).chain((0..kinds.len()).map(id)).collect();
    // Each item enters its next step once per tick.
    let entered = |events: &[RoutingEvent], step: usize| {
        let moved = steps(events);
        assert!(moved.iter().all(|(what, _, _, s)| *what == "entered" && *s == step), "only entries to step {step}");
        let mut ids: Vec<WorkItemId> = moved.into_iter().map(|(_, i, _, _)| i).collect();
        ids.sort();
        ids
    };
    assert_eq!(entered(&r.tick(at(10)), 1), all, "every item moves one step at 10 s");
    // At step 1, "ab" takes exactly the late items needing b at 3 or less.
    let ev = r.set_presence(&aid("ab"), "online", at(11)).unwrap();
    let mut taken = assignments(&ev);
    taken.sort();
    let by_ab: Vec<usize> = (0..kinds.len()).filter(|n| matches!(kinds[*n], 1 | 2)).collect();
    assert_eq!(taken, by_ab.iter().map(|n| (id(*n), "ab".to_string())).collect::<Vec<_>>());
    r.set_presence(&aid("ab"), "away", at(12)).unwrap();
    // The others move on together, and at step 2 "u" takes exactly the item with "u".
    let waiting: Vec<WorkItemId> = all.iter().copied().filter(|i| !by_ab.iter().any(|n| id(*n) == *i)).collect();
    assert_eq!(entered(&r.tick(at(20)), 2), waiting, "every waiting item moves one step at 20 s");
    let ev = r.set_presence(&aid("u"), "online", at(21)).unwrap();
    let u_item = id(kinds.iter().position(|k| *k == u).unwrap());
    assert_eq!(assignments(&ev), vec![(u_item, "u".to_string())]);
    // Items whose skills nobody has stay queued at the last step.
    for (n, &kind) in kinds.iter().enumerate() {
        if matches!(kind, 0 | 3 | 4) {
            let status = r.item(id(n)).unwrap();
            assert_eq!((status.state, status.step), (ItemState::Waiting, Some(2)), "late item {n}");
        }
    }
}

#[test]
fn tick_into_appends_to_the_callers_buffer_exactly_the_events_tick_returns() {
    let ten = TimeDelta::seconds(10);
    let world = || {
        let r = router(&["s"]);
        let plan = Plan::new([Rule::new(
            "r",
            [
                Step::new(Pool::default()).eligible(Term::ItemSkills).dwell(ten),
                Step::new(Pool::default()).dwell(ten),
                Step::new(Pool::any()),
            ],
        )]);
        r.set_plan(plan, t0()).unwrap();
        r.upsert_agent(chat_agent("late", "s", 1).with_status("away"), t0()).unwrap();
        for k in 1..=40u128 {
            r.submit(chat(k, "s", t0()).with_skill(["a", "b"][(k % 2) as usize], 1), t0()).unwrap();
        }
        r
    };
    let (by_tick, by_tick_into) = (world(), world());
    // One buffer across ticks, holding something of the caller's before the first.
    let marker = RoutingEvent::Withdrawn { item: wid(999) };
    let mut buffer = vec![marker.clone()];
    for k in 1..=2 {
        if k == 2 {
            // An agent comes online between the ticks (and takes an item at once).
            for r in [&by_tick, &by_tick_into] {
                assert_eq!(assignments(&r.set_presence(&aid("late"), "online", at(15)).unwrap()).len(), 1);
            }
        }
        let expected = by_tick.tick(at(10 * k));
        by_tick_into.tick_into(at(10 * k), &mut buffer);
        assert!(!expected.is_empty(), "tick {k} fires timers");
        let appended = if k == 1 {
            assert_eq!(buffer.first(), Some(&marker), "what the caller held stays first");
            &buffer[1..]
        } else {
            &buffer[..]
        };
        assert_eq!(appended, &expected[..], "tick {k}");
        buffer.clear();
    }
}
