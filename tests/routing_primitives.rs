//! Every routing primitive, through the public API, on explicit `now` values.

mod routing_common;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use routing_common::*;
use std::sync::Arc;
use touchpoint::Error;
use touchpoint::model::{Attributes, ChannelKind, LanguageTag};
use touchpoint::routing::*;

fn lang(s: &str) -> LanguageTag {
    s.parse().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Eligibility

#[test]
fn required_skills_need_the_minimum_level() {
    let r = router(&["s"]);
    r.upsert_agent(chat_agent("junior", "s", 1).with_skill("billing", 2), t0()).unwrap();
    r.upsert_agent(chat_agent("senior", "s", 1).with_skill("billing", 4), t0()).unwrap();
    let d = r.submit(chat(1, "s", t0()).with_skill("billing", 3), t0()).unwrap();
    assert_eq!(assigned_to(&d).as_deref(), Some("senior"));
    // The senior is now full; a level-3 item waits rather than going to the junior.
    let d = r.submit(chat(2, "s", t0()).with_skill("billing", 3), t0()).unwrap();
    assert_eq!(d.outcome, Outcome::Queued(qid("s")));
}

#[test]
fn language_matches_on_the_primary_subtag() {
    let r = router(&["s"]);
    r.upsert_agent(chat_agent("en", "s", 1).with_language(lang("en")), t0()).unwrap();
    r.upsert_agent(chat_agent("es", "s", 1).with_language(lang("es")), t0()).unwrap();
    let d = r.submit(chat(1, "s", t0()).with_language(lang("es-MX")), t0()).unwrap();
    assert_eq!(assigned_to(&d).as_deref(), Some("es"));
    let d = r.submit(chat(2, "s", t0()).with_language(lang("pt-BR")), t0()).unwrap();
    assert!(matches!(d.outcome, Outcome::Queued(_)));
}

#[test]
fn structured_terms_combine_and_or_not_and_attributes() {
    let r = router(&["s"]);
    r.upsert_agent(
        chat_agent("gold-eu", "s", 1)
            .with_attribute("tier", "gold")
            .with_attribute("regions", serde_json::json!(["eu"])),
        t0(),
    )
    .unwrap();
    r.upsert_agent(
        chat_agent("silver-us", "s", 1)
            .with_attribute("tier", "silver")
            .with_attribute("regions", serde_json::json!(["us"])),
        t0(),
    )
    .unwrap();
    r.upsert_agent(Agent::bot(aid("bot")).with_queue(qid("s")), t0()).unwrap();
    let step = Step::new(Pool::queues([qid("s")])).eligible(Term::and([
        Term::not(Term::Bot(true)),
        Term::or([
            Term::agent_attr_equals("tier", "platinum"),
            Term::SameAttr { agent: "regions".into(), item: "region".into() },
        ]),
    ]));
    r.set_plan(Plan::new([Rule::new("all", [step])]), t0()).unwrap();
    let d = r.submit(chat(1, "s", t0()).with_attribute("region", "us"), t0()).unwrap();
    assert_eq!(assigned_to(&d).as_deref(), Some("silver-us"));
    let d = r.submit(chat(2, "s", t0()).with_attribute("region", "apac"), t0()).unwrap();
    assert!(matches!(d.outcome, Outcome::Queued(_)), "the bot and gold-eu are excluded: {d:?}");
}

#[test]
fn closure_eligibility_plugs_into_a_step() {
    let r = router(&["s"]);
    r.upsert_agent(chat_agent("a", "s", 1).with_attribute("vip", true), t0()).unwrap();
    r.upsert_agent(chat_agent("b", "s", 1), t0()).unwrap();
    let vip = eligible_fn("vip desk", |p: &AgentProfile, item: &WorkItem| {
        !item.attributes.contains_key("vip") || p.attributes.get("vip") == Some(&serde_json::json!(true))
    });
    r.set_plan(Plan::new([Rule::new("r", [Step::new(Pool::default()).eligible_by(vip)])]), t0()).unwrap();
    // b registered second: longest idle ties go to the first registered, so use a VIP item.
    let d = r.submit(chat(1, "s", t0()).with_attribute("vip", true), t0()).unwrap();
    assert_eq!(assigned_to(&d).as_deref(), Some("a"));
    let d = r.submit(chat(2, "s", t0()).with_attribute("vip", true), t0()).unwrap();
    assert!(matches!(d.outcome, Outcome::Queued(_)));
    let why = r.explain(wid(2), t0()).unwrap();
    assert!(
        why.groups
            .iter()
            .any(|g| g.agents.contains(&aid("b")) && g.reason == Exclusion::Ineligible { term: "vip desk".into() }),
        "{why:#?}"
    );
}

#[test]
fn item_only_terms_classify_rules_first_match() {
    let r = router(&["billing", "general"]);
    r.upsert_agent(chat_agent("bill", "billing", 1), t0()).unwrap();
    r.upsert_agent(chat_agent("gen", "general", 1), t0()).unwrap();
    let plan = Plan::new([
        Rule::new("billing", [Step::new(Pool::queues([qid("billing")]))])
            .when(Term::item_attr_equals("topic", "billing")),
        Rule::new("rest", [Step::new(Pool::queues([qid("general")]))]),
    ]);
    r.set_plan(plan, t0()).unwrap();
    let d = r.submit(chat(1, "general", t0()).with_attribute("topic", "billing"), t0()).unwrap();
    assert_eq!((assigned_to(&d).as_deref(), d.rule.as_deref()), (Some("bill"), Some("billing")));
    let d = r.submit(chat(2, "general", t0()).with_attribute("topic", "shipping"), t0()).unwrap();
    assert_eq!((assigned_to(&d).as_deref(), d.rule.as_deref()), (Some("gen"), Some("rest")));
}

#[test]
fn longest_idle_order_holds_while_agents_come_and_go() {
    let r = router(&["s"]);
    let name = |k: i64| format!("a{k:03}");
    for k in 0..100 {
        r.upsert_agent(chat_agent(&name(k), "s", 1), at(k)).unwrap();
    }
    // Agents 10..90 step away, then come back one by one in reverse order: each is idle since
    // its return, so they now come last, the last back last.
    for k in 10..90 {
        r.set_presence(&aid(&name(k)), "away", at(200)).unwrap();
    }
    for k in (10..90).rev() {
        r.set_presence(&aid(&name(k)), "online", at(300 + 90 - k)).unwrap();
    }
    let expected: Vec<String> = (0..10).chain(90..100).chain((10..90).rev()).map(name).collect();
    for (n, want) in expected.iter().enumerate() {
        let d = r.submit(chat(n as u128 + 1, "s", at(500)), at(500)).unwrap();
        assert_eq!(assigned_to(&d).as_deref(), Some(want.as_str()), "decision {n}");
    }
    // Everyone is busy; completing frees them in that order, and they are taken again in it.
    for n in 0..expected.len() {
        r.complete(wid(n as u128 + 1), at(600 + n as i64)).unwrap();
    }
    for (n, want) in expected.iter().enumerate() {
        let d = r.submit(chat(1000 + n as u128, "s", at(800)), at(800)).unwrap();
        assert_eq!(assigned_to(&d).as_deref(), Some(want.as_str()), "second round, decision {n}");
    }
}

#[test]
fn a_decision_says_why_in_words_and_serializes_rule_and_reason_as_strings() {
    let r = router(&["s"]);
    r.upsert_agent(chat_agent("ana", "s", 1), t0()).unwrap();
    let plan = Plan::new([Rule::new("chats", [Step::new(Pool::queues([qid("s")])).named("first line")])]);
    r.set_plan(plan, t0()).unwrap();
    let d = r.submit(chat(1, "s", t0()), t0()).unwrap();
    assert_eq!(d.reason.to_string(), "assigned to ana at rule \"chats\" step 0 (first line)");
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["rule"], "chats");
    assert_eq!(json["reason"], "assigned to ana at rule \"chats\" step 0 (first line)");
    let back: RoutingDecision = serde_json::from_value(json).unwrap();
    assert_eq!(back, d);
    // Nobody left: the reason says so.
    let d = r.submit(chat(2, "s", t0()), t0()).unwrap();
    assert!(d.reason.to_string().starts_with("no eligible agent can take it now"), "{}", d.reason);
}

// ---------------------------------------------------------------------------------------------
// Capacity

#[test]
fn per_channel_limits_hold_and_a_freed_agent_takes_the_next_item() {
    let r = router(&["s"]);
    r.upsert_agent(chat_agent("a", "s", 2), t0()).unwrap();
    assert!(assigned_to(&r.submit(chat(1, "s", t0()), t0()).unwrap()).is_some());
    assert!(assigned_to(&r.submit(chat(2, "s", t0()), at(1)).unwrap()).is_some());
    assert_eq!(r.submit(chat(3, "s", at(2)), at(2)).unwrap().outcome, Outcome::Queued(qid("s")));
    assert_eq!(r.agent(&aid("a")).unwrap().load, 2);
    let ev = r.complete(wid(1), at(10)).unwrap();
    assert_eq!(assignments(&ev), vec![(wid(3), "a".to_string())]);
    assert_eq!(r.agent(&aid("a")).unwrap().load, 2);
}

#[test]
fn a_changed_capacity_applies_at_once_also_on_channels_first_seen_later() {
    let r = router(&["s"]);
    let sms = |n: u128, t| WorkItem::new(wid(n), ChannelKind::Sms, t).in_queue(qid("s"));
    let agent = |cap| Agent::new(aid("a")).with_queue(qid("s")).with_capacity(cap).with_status("online");
    r.upsert_agent(agent(Capacity::each_channel(1)), t0()).unwrap();
    // SMS is a channel the router first sees now: the agent's limit there is 1.
    assert!(assigned_to(&r.submit(sms(1, t0()), t0()).unwrap()).is_some());
    assert_eq!(r.submit(sms(2, t0()), t0()).unwrap().outcome, Outcome::Queued(qid("s")));
    // Raised to 2 on SMS (within a budget): the waiting one goes on the next sweep.
    let cap = Capacity::each_channel(1).with_limit(ChannelKind::Sms, 2).with_cost(ChannelKind::Sms, 5);
    r.upsert_agent(agent(Capacity { total: Some(10), ..cap }), at(1)).unwrap();
    r.sweep(at(1));
    assert_eq!(r.item(wid(2)).unwrap().state, ItemState::Assigned(aid("a")));
    assert_eq!(r.agent(&aid("a")).unwrap().channel_load.get(&ChannelKind::Sms), Some(&2));
    // Lowered to 1: nothing more is taken until both are done.
    r.upsert_agent(agent(Capacity::each_channel(1)), at(2)).unwrap();
    assert_eq!(r.submit(sms(3, at(2)), at(2)).unwrap().outcome, Outcome::Queued(qid("s")));
    r.complete(wid(1), at(3)).unwrap();
    assert_eq!(r.item(wid(3)).unwrap().state, ItemState::Waiting);
    let ev = r.complete(wid(2), at(4)).unwrap();
    assert_eq!(assignments(&ev), vec![(wid(3), "a".to_string())]);
}

#[test]
fn shared_budget_with_costs_mixes_channels() {
    let r = router(&["s"]);
    let cap = Capacity::budget(100).with_cost(ChannelKind::Voice, 100).with_cost(ChannelKind::WebChat, 20);
    r.upsert_agent(Agent::new(aid("a")).with_queue(qid("s")).with_capacity(cap).with_status("online"), t0()).unwrap();
    for n in 1..=5 {
        assert!(assigned_to(&r.submit(chat(n, "s", t0()), t0()).unwrap()).is_some(), "chat {n}");
    }
    assert!(matches!(r.submit(chat(6, "s", t0()), t0()).unwrap().outcome, Outcome::Queued(_)));
    let call = WorkItem::new(wid(7), ChannelKind::Voice, t0()).in_queue(qid("s"));
    assert!(matches!(r.submit(call, t0()).unwrap().outcome, Outcome::Queued(_)));
    assert_eq!(r.agent(&aid("a")).unwrap().budget_used, 100);
    let why = r.explain(wid(7), t0()).unwrap();
    assert!(why.groups.iter().any(|g| g.reason == Exclusion::NoBudget), "{why:#?}");
}

#[test]
fn interruption_rules_block_chat_while_on_a_call() {
    let r = router(&["s"]);
    let cap = Capacity::per_channel([(ChannelKind::Voice, 1), (ChannelKind::WebChat, 3)])
        .with_interruption(ChannelKind::Voice, ChannelSet::only([ChannelKind::WebChat]));
    r.upsert_agent(Agent::new(aid("a")).with_queue(qid("s")).with_capacity(cap).with_status("online"), t0()).unwrap();
    let call = WorkItem::new(wid(1), ChannelKind::Voice, t0()).in_queue(qid("s"));
    assert!(assigned_to(&r.submit(call, t0()).unwrap()).is_some());
    assert!(matches!(r.submit(chat(2, "s", t0()), t0()).unwrap().outcome, Outcome::Queued(_)));
    let why = r.explain(wid(2), t0()).unwrap();
    assert!(why.groups.iter().any(|g| g.reason == Exclusion::Interrupted { holding: ChannelKind::Voice }));
    let ev = r.complete(wid(1), at(60)).unwrap();
    assert_eq!(assignments(&ev), vec![(wid(2), "a".into())]);
}

// ---------------------------------------------------------------------------------------------
// Presence

#[test]
fn custom_statuses_map_to_channels_and_going_online_drains_the_queue() {
    let r = router(&["s"]);
    let agent = Agent::new(aid("a"))
        .with_queue(qid("s"))
        .with_capacity(Capacity::each_channel(1))
        .with_custom_status("chat-only", PresenceStatus::available(ChannelSet::only([ChannelKind::WebChat])))
        .with_status("offline");
    r.upsert_agent(agent, t0()).unwrap();
    assert!(matches!(r.submit(chat(1, "s", t0()), t0()).unwrap().outcome, Outcome::Queued(_)));
    let why = r.explain(wid(1), t0()).unwrap();
    assert!(why.groups.iter().any(|g| g.reason == Exclusion::Presence { status: "offline".into() }));
    let call = WorkItem::new(wid(2), ChannelKind::Voice, at(1)).in_queue(qid("s"));
    r.submit(call, at(1)).unwrap();
    let ev = r.set_presence(&aid("a"), "chat-only", at(5)).unwrap();
    assert_eq!(assignments(&ev), vec![(wid(1), "a".into())]);
    assert!(matches!(r.item(wid(2)).unwrap().state, ItemState::Waiting));
    assert!(matches!(r.set_presence(&aid("a"), "lunch", at(6)), Err(Error::InvalidInput { .. })));
}

// ---------------------------------------------------------------------------------------------
// Rankers

fn ranked_router(ranker: Ranker, agents: Vec<Agent>) -> Router {
    let r = router(&["s"]);
    for a in agents {
        r.upsert_agent(a, t0()).unwrap();
    }
    r.set_plan(Plan::new([Rule::new("r", [Step::new(Pool::queues([qid("s")])).ranked(ranker)])]), t0()).unwrap();
    r
}

#[test]
fn longest_idle_prefers_the_agent_free_the_longest() {
    let r = ranked_router(Ranker::default(), vec![chat_agent("a", "s", 1), chat_agent("b", "s", 1)]);
    // a took and finished work at t=10: b has been idle longer.
    assert_eq!(assigned_to(&r.submit(chat(1, "s", at(1)), at(1)).unwrap()).as_deref(), Some("a"));
    r.complete(wid(1), at(10)).unwrap();
    assert_eq!(assigned_to(&r.submit(chat(2, "s", at(20)), at(20)).unwrap()).as_deref(), Some("b"));
    assert_eq!(assigned_to(&r.submit(chat(3, "s", at(21)), at(21)).unwrap()).as_deref(), Some("a"));
}

#[test]
fn least_load_and_most_spare_capacity() {
    let agents = vec![chat_agent("a", "s", 3), chat_agent("b", "s", 5)];
    let r = ranked_router(Ranker::new([RankKey::LeastLoad]), agents.clone());
    let picks: Vec<_> = (1..=4).map(|n| assigned_to(&r.submit(chat(n, "s", t0()), t0()).unwrap()).unwrap()).collect();
    assert_eq!(picks, ["a", "b", "a", "b"]);
    let r = ranked_router(Ranker::new([RankKey::MostSpareCapacity]), agents);
    let picks: Vec<_> = (1..=4).map(|n| assigned_to(&r.submit(chat(n, "s", t0()), t0()).unwrap()).unwrap()).collect();
    assert_eq!(picks, ["b", "b", "a", "b"]); // spare 5/3 → 4/3 → 3/3 (tie: a registered first) → 3/2
}

#[test]
fn round_robin_rotates_by_last_assignment() {
    let agents = vec![chat_agent("a", "s", 9), chat_agent("b", "s", 9), chat_agent("c", "s", 9)];
    let r = ranked_router(Ranker::new([RankKey::RoundRobin]), agents);
    let picks: Vec<_> = (1..=6).map(|n| assigned_to(&r.submit(chat(n, "s", t0()), t0()).unwrap()).unwrap()).collect();
    assert_eq!(picks, ["a", "b", "c", "a", "b", "c"]);
}

#[test]
fn proficiency_and_attribute_keys_rank_by_profile() {
    let agents = vec![
        chat_agent("l2", "s", 1).with_skill("billing", 2).with_attribute("seniority", 9),
        chat_agent("l5", "s", 1).with_skill("billing", 5).with_attribute("seniority", 1),
        chat_agent("l5b", "s", 1).with_skill("billing", 5).with_attribute("seniority", 4),
    ];
    let r = ranked_router(
        Ranker::new([
            RankKey::Proficiency("billing".into()),
            RankKey::Attribute { key: "seniority".into(), order: SortOrder::Desc },
        ]),
        agents,
    );
    let picks: Vec<_> = (1..=3).map(|n| assigned_to(&r.submit(chat(n, "s", t0()), t0()).unwrap()).unwrap()).collect();
    assert_eq!(picks, ["l5b", "l5", "l2"]);
}

#[test]
fn affinity_prefers_preferred_then_last_agent_while_it_holds() {
    let agents = vec![chat_agent("a", "s", 5), chat_agent("b", "s", 5), chat_agent("c", "s", 5)];
    let r = ranked_router(Ranker::new([RankKey::Affinity, RankKey::LongestIdle]), agents);
    let d = r.submit(chat(1, "s", t0()).with_preferred_agent(aid("c")).with_preferred_agent(aid("b")), t0()).unwrap();
    assert_eq!(assigned_to(&d).as_deref(), Some("c"));
    let d = r.submit(chat(2, "s", t0()).with_last_agent(aid("b"), at(60)), t0()).unwrap();
    assert_eq!(assigned_to(&d).as_deref(), Some("b"));
    // An expired last-agent preference is ignored: longest idle decides (a never worked).
    let d = r.submit(chat(3, "s", at(120)).with_last_agent(aid("b"), at(60)), at(120)).unwrap();
    assert_eq!(assigned_to(&d).as_deref(), Some("a"));
}

#[test]
fn custom_scores_rank_and_ties_go_to_the_first_registered() {
    let key = score_fn("fewest letters", |a: &AgentView<'_>, _| a.id.as_str().len() as i64);
    let agents = vec![chat_agent("bbb", "s", 1), chat_agent("aa", "s", 1), chat_agent("cc", "s", 1)];
    let r = ranked_router(Ranker::new([key]), agents);
    let picks: Vec<_> = (1..=3).map(|n| assigned_to(&r.submit(chat(n, "s", t0()), t0()).unwrap()).unwrap()).collect();
    assert_eq!(picks, ["aa", "cc", "bbb"]);
}

// ---------------------------------------------------------------------------------------------
// Queue disciplines

/// Submits items to a queue with no agent, then adds one agent taking one at a time and
/// returns the order it receives them.
fn drain_order(discipline: Discipline, items: Vec<WorkItem>) -> Vec<WorkItemId> {
    let r = router(&[]);
    r.upsert_queue(Queue::new(qid("s")).with_discipline(discipline)).unwrap();
    for it in items {
        let now = it.eligible_since;
        r.submit(it, now).unwrap();
    }
    let mut order = Vec::new();
    let mut ev = r.upsert_agent(chat_agent("a", "s", 1), at(100)).unwrap();
    for k in 0..10 {
        let Some((item, _)) = assignments(&ev).first().cloned() else { break };
        order.push(item);
        ev = r.complete(item, at(101 + k)).unwrap();
    }
    order
}

#[test]
fn priority_then_age_with_age_adjustment() {
    let order = drain_order(
        Discipline::PriorityThenAge,
        vec![
            chat(1, "s", at(0)),
            chat(2, "s", at(5)).with_priority(2),
            chat(3, "s", at(10)).with_age_adjustment(TimeDelta::seconds(30)),
            chat(4, "s", at(1)),
        ],
    );
    assert_eq!(order, [wid(2), wid(3), wid(1), wid(4)]);
}

#[test]
fn due_time_lifo_scored_and_buckets() {
    let due = drain_order(
        Discipline::DueTime,
        vec![chat(1, "s", at(0)), chat(2, "s", at(1)).with_due(at(50)), chat(3, "s", at(2)).with_due(at(40))],
    );
    assert_eq!(due, [wid(3), wid(2), wid(1)]);
    let lifo = drain_order(
        Discipline::Lifo,
        vec![chat(1, "s", at(0)), chat(2, "s", at(1)), chat(3, "s", at(2)).with_priority(-1)],
    );
    assert_eq!(lifo, [wid(2), wid(1), wid(3)]);
    // One priority point = 60 s of waiting: priority 1 at t=50 beats priority 0 at t=0.
    let scored = drain_order(
        Discipline::Scored { seconds_per_priority: 60 },
        vec![chat(1, "s", at(0)), chat(2, "s", at(50)).with_priority(1), chat(3, "s", at(70)).with_priority(1)],
    );
    assert_eq!(scored, [wid(2), wid(1), wid(3)]);
    let buckets = drain_order(
        Discipline::Buckets(vec![Term::item_attr_equals("tier", "vip"), Term::Channel(ChannelSet::All)]),
        vec![chat(1, "s", at(0)), chat(2, "s", at(1)).with_attribute("tier", "vip")],
    );
    assert_eq!(buckets, [wid(2), wid(1)]);
}

#[test]
fn freed_agents_serve_queues_by_membership_priority_and_delay() {
    let r = router(&["high", "low", "delayed"]);
    r.submit(chat(1, "low", at(0)), at(0)).unwrap();
    r.submit(chat(2, "high", at(5)), at(5)).unwrap();
    r.submit(chat(3, "delayed", at(6)), at(6)).unwrap();
    let agent = Agent::new(aid("a"))
        .with_membership(QueueMembership { queue: qid("low"), priority: 2, delay: TimeDelta::zero() })
        .with_membership(QueueMembership { queue: qid("high"), priority: 1, delay: TimeDelta::zero() })
        .with_membership(QueueMembership { queue: qid("delayed"), priority: 0, delay: TimeDelta::seconds(60) })
        .with_capacity(Capacity::per_channel([(ChannelKind::WebChat, 1)]))
        .with_status("online");
    let ev = r.upsert_agent(agent, at(10)).unwrap();
    assert_eq!(assignments(&ev), vec![(wid(2), "a".into())], "priority 1 beats the older priority-2 item");
    let why = r.explain(wid(3), at(10)).unwrap();
    assert!(
        why.groups.iter().any(|g| matches!(g.reason, Exclusion::QueueDelay { until } if until == at(66))),
        "{why:#?}"
    );
    let ev = r.complete(wid(2), at(20)).unwrap();
    assert_eq!(assignments(&ev), vec![(wid(1), "a".into())], "the delayed item is not yet eligible");
    r.complete(wid(1), at(30)).unwrap();
    // The delay elapses at t=66: the retry timer routes it.
    assert!(r.tick(at(65)).is_empty());
    assert_eq!(assignments(&r.tick(at(66))), vec![(wid(3), "a".into())]);
}

#[test]
fn a_freed_agent_picks_the_same_item_whatever_order_the_queues_classes_were_made_in() {
    // q1 holds two classes (plain chats and chats needing skill x), q2 one. Q1's head by its
    // discipline is the priority-5 item (t=3); q2's head waited longer (t=2), and the agent is
    // in both queues at the same membership priority: q2's head is the one to take, whichever
    // class the router saw first.
    let plain = |t: i64| chat(1, "q1", at(t));
    let other = |t: i64| chat(2, "q2", at(t));
    let urgent = |t: i64| chat(3, "q1", at(t)).with_skill("x", 1).with_priority(5);
    for order in [[0, 1, 2], [2, 0, 1], [1, 2, 0]] {
        let r = router(&["q1", "q2"]);
        // An offline agent of q1 without skill x: plain chats and chats needing x have
        // different pools, so they are kept in different classes.
        r.upsert_agent(chat_agent("away", "q1", 1).with_status("offline"), at(0)).unwrap();
        // Arrival times stay the same; only the order of submission (class creation) changes.
        let mut items = [(1, plain(1)), (2, other(2)), (3, urgent(3))];
        items.sort_by_key(|(k, _)| order.iter().position(|o| *o == k - 1).unwrap());
        for (_, item) in items {
            r.submit(item, at(4)).unwrap();
        }
        let agent = Agent::new(aid("a"))
            .with_membership(QueueMembership { queue: qid("q1"), priority: 1, delay: TimeDelta::zero() })
            .with_membership(QueueMembership { queue: qid("q2"), priority: 1, delay: TimeDelta::zero() })
            .with_skill("x", 1)
            .with_capacity(Capacity::per_channel([(ChannelKind::WebChat, 1)]))
            .with_status("online");
        let ev = r.upsert_agent(agent, at(10)).unwrap();
        assert_eq!(assignments(&ev), vec![(wid(2), "a".into())], "submission order {order:?}");
        // Then q1's head by priority, then the rest.
        assert_eq!(assignments(&r.complete(wid(2), at(11)).unwrap()), vec![(wid(3), "a".into())]);
        assert_eq!(assignments(&r.complete(wid(3), at(12)).unwrap()), vec![(wid(1), "a".into())]);
    }
}

// ---------------------------------------------------------------------------------------------
// Offers

fn offer_router(parallel: u32) -> Router {
    let r = Router::new(RouterConfig::default());
    let mut policy = OfferPolicy::offers(parallel, TimeDelta::seconds(20));
    policy.max_declines = 3;
    policy.on_max_declines = TimeoutAction::Callback;
    policy.on_expiry_status = Some("away".into());
    r.upsert_queue(Queue::new(qid("s")).with_offers(policy)).unwrap();
    for n in ["a", "b", "c", "d"] {
        r.upsert_agent(chat_agent(n, "s", 1), t0()).unwrap();
    }
    r
}

#[test]
fn parallel_offers_first_accept_wins_and_others_are_rescinded() {
    let r = offer_router(2);
    let d = r.submit(chat(1, "s", t0()), t0()).unwrap();
    assert_eq!(d.outcome, Outcome::Offered(vec![aid("a"), aid("b")]));
    // Offers reserve capacity.
    assert_eq!(r.agent(&aid("a")).unwrap().load, 1);
    let ev = r.accept(wid(1), &aid("b"), at(3)).unwrap();
    assert!(ev.contains(&RoutingEvent::OfferRescinded { item: wid(1), agent: aid("a") }));
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Assigned(aid("b")));
    assert_eq!(r.agent(&aid("a")).unwrap().load, 0);
    assert!(matches!(r.accept(wid(1), &aid("a"), at(4)), Err(Error::Refused(_))));
}

#[test]
fn declined_agents_are_never_offered_the_item_again() {
    let r = offer_router(1);
    assert_eq!(r.submit(chat(1, "s", t0()), t0()).unwrap().outcome, Outcome::Offered(vec![aid("a")]));
    let ev = r.decline(wid(1), &aid("a"), at(1)).unwrap();
    assert!(ev.iter().any(|e| matches!(e, RoutingEvent::Offered { agents, .. } if agents == &vec![aid("b")])));
    r.decline(wid(1), &aid("b"), at(2)).unwrap();
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Offered(vec![aid("c")]));
    // Third decline reaches max_declines = 3: the item leaves routing with the queue's action.
    let ev = r.decline(wid(1), &aid("c"), at(3)).unwrap();
    assert!(ev.iter().any(|e| matches!(e, RoutingEvent::TimedOut { action: TimeoutAction::Callback, .. })));
    assert!(r.item(wid(1)).is_none());
}

#[test]
fn expired_offers_count_as_declines_and_set_the_expiry_status() {
    let r = offer_router(1);
    r.submit(chat(1, "s", t0()), t0()).unwrap();
    assert_eq!(r.next_timer(), Some(at(20)));
    assert!(r.tick(at(19)).is_empty());
    let ev = r.tick(at(20));
    assert!(ev.contains(&RoutingEvent::OfferExpired { item: wid(1), agent: aid("a") }));
    assert!(ev.contains(&RoutingEvent::PresenceChanged { agent: aid("a"), status: "away".into() }));
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Offered(vec![aid("b")]));
    assert_eq!(r.item(wid(1)).unwrap().declines, 1);
    // Back online, a is still never offered item 1 again.
    r.set_presence(&aid("a"), "online", at(21)).unwrap();
    r.decline(wid(1), &aid("b"), at(22)).unwrap();
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Offered(vec![aid("c")]));
}

// ---------------------------------------------------------------------------------------------
// Plans and timers

#[test]
fn dwell_relaxes_to_the_next_step_replace_mode() {
    let r = router(&["experts", "all"]);
    r.upsert_agent(chat_agent("generalist", "all", 1), t0()).unwrap();
    let plan = Plan::new([Rule::new(
        "r",
        [
            Step::new(Pool::queues([qid("experts")])).dwell(TimeDelta::seconds(30)),
            Step::new(Pool::queues([qid("all")])),
        ],
    )]);
    r.set_plan(plan, t0()).unwrap();
    let d = r.submit(chat(1, "all", t0()), t0()).unwrap();
    assert_eq!((d.outcome.clone(), d.step), (Outcome::Queued(qid("experts")), Some(0)));
    assert!(r.tick(at(29)).is_empty());
    let ev = r.tick(at(30));
    assert!(ev.contains(&RoutingEvent::StepEntered { item: wid(1), rule: "r".into(), step: 1 }));
    assert_eq!(assignments(&ev), vec![(wid(1), "generalist".into())]);
}

#[test]
fn step_timers_keep_millisecond_precision_across_midnight() {
    // Entered 1.5 ms after a whole second, five seconds before midnight: the dwell ends on
    // the next day, 10 s later, and its timer is due at the next whole millisecond (never early).
    let r = router(&["s"]);
    let plan = Plan::new([Rule::new(
        "r",
        [Step::new(Pool::default()).dwell(TimeDelta::seconds(10)), Step::new(Pool::default())],
    )]);
    r.set_plan(plan, t0()).unwrap();
    let late = Utc.with_ymd_and_hms(2026, 3, 2, 23, 59, 55).unwrap() + TimeDelta::microseconds(1_500);
    r.submit(chat(1, "s", late), late).unwrap();
    let due = Utc.with_ymd_and_hms(2026, 3, 3, 0, 0, 5).unwrap() + TimeDelta::milliseconds(2);
    assert_eq!(r.next_timer(), Some(due));
    assert!(r.tick(due - TimeDelta::milliseconds(1)).is_empty());
    let ev = r.tick(due);
    assert!(ev.contains(&RoutingEvent::StepEntered { item: wid(1), rule: "r".into(), step: 1 }));
}

#[test]
fn a_crowd_relaxing_at_once_keeps_priority_then_age_order() {
    // 300 items wait at step 0 with nobody to take them and all move to step 1 in one tick
    // (their old queue class empties completely); agents then take them in discipline order.
    let r = router(&["s"]);
    let plan = Plan::new([Rule::new(
        "r",
        [
            Step::new(Pool::default()).eligible(Term::ItemSkills).dwell(TimeDelta::seconds(10)),
            Step::new(Pool::default()),
        ],
    )]);
    r.set_plan(plan, t0()).unwrap();
    // An agent away (and without the skill) makes the two steps' pools differ.
    r.upsert_agent(chat_agent("resting", "s", 1).with_status("away"), t0()).unwrap();
    let n = 300u128;
    for k in 1..=n {
        let item =
            chat(k, "s", t0() + TimeDelta::milliseconds(k as i64)).with_skill("x", 1).with_priority((k % 3) as i32);
        r.submit(item, t0() + TimeDelta::milliseconds(k as i64)).unwrap();
    }
    let moved = r.tick(at(11));
    let entered = moved.iter().filter(|e| matches!(e, RoutingEvent::StepEntered { step: 1, .. })).count();
    assert_eq!(entered, n as usize);
    let mut expected: Vec<u128> = (1..=n).collect();
    expected.sort_by_key(|k| (-((k % 3) as i64), *k));
    let mut got = Vec::new();
    for (a, _) in expected.iter().enumerate() {
        let ev = r.upsert_agent(chat_agent(&format!("a{a}"), "s", 1), at(12)).unwrap();
        got.extend(assignments(&ev).into_iter().map(|(item, _)| item));
    }
    assert_eq!(got, expected.iter().map(|k| wid(*k)).collect::<Vec<_>>());
}

#[test]
fn widen_keeps_inner_candidates_preferred() {
    let r = router(&["s"]);
    // The outer agent has been idle longer, but the inner ring wins while both are eligible.
    r.upsert_agent(chat_agent("outer", "s", 5).with_skill("billing", 1), t0()).unwrap();
    r.upsert_agent(chat_agent("inner", "s", 5).with_skill("billing", 5), at(1)).unwrap();
    let plan = Plan::new([Rule::new(
        "bullseye",
        [
            Step::new(Pool::queues([qid("s")])).eligible(Term::skill("billing", 5)).dwell(TimeDelta::seconds(10)),
            Step::new(Pool::queues([qid("s")])).eligible(Term::skill("billing", 1)).widen(),
        ],
    )]);
    r.set_plan(plan, at(1)).unwrap();
    r.set_presence(&aid("inner"), "away", at(1)).unwrap();
    r.submit(chat(1, "s", at(2)), at(2)).unwrap();
    r.submit(chat(2, "s", at(3)), at(3)).unwrap();
    r.set_presence(&aid("inner"), "online", at(4)).unwrap(); // takes both: ring 1 only so far
    assert_eq!(r.agent(&aid("inner")).unwrap().load, 2);
    r.set_presence(&aid("inner"), "away", at(5)).unwrap();
    r.submit(chat(3, "s", at(5)), at(5)).unwrap();
    // Widened at t=15: the outer agent qualifies.
    let ev = r.tick(at(15));
    assert_eq!(assignments(&ev), vec![(wid(3), "outer".into())]);
    // With both available, an item at the widened step goes to the inner agent first.
    r.set_presence(&aid("inner"), "online", at(16)).unwrap();
    r.set_presence(&aid("outer"), "away", at(16)).unwrap();
    r.submit(chat(4, "s", at(16)), at(16)).unwrap();
    r.set_presence(&aid("outer"), "online", at(17)).unwrap();
    r.tick(at(27));
    assert_eq!(r.item(wid(4)).unwrap().state, ItemState::Assigned(aid("inner")));
}

#[test]
fn timer_basis_item_age_counts_from_eligibility() {
    let r = router(&["a", "b"]);
    r.upsert_agent(chat_agent("x", "b", 1), t0()).unwrap();
    let plan = Plan::new([Rule::new(
        "r",
        [
            Step::new(Pool::queues([qid("a")])).dwell(TimeDelta::seconds(30)).timed_from_item_age(),
            Step::new(Pool::queues([qid("b")])),
        ],
    )]);
    r.set_plan(plan, t0()).unwrap();
    // Created 20 s ago: moves on 10 s after submission.
    let mut item = chat(1, "a", t0());
    item.eligible_since = at(-20);
    item.created_at = at(-20);
    r.submit(item, t0()).unwrap();
    assert!(r.tick(at(9)).is_empty());
    assert_eq!(assignments(&r.tick(at(10))), vec![(wid(1), "x".into())]);
}

#[test]
fn skip_if_no_available_agents_moves_on_at_once() {
    let r = router(&["first", "second"]);
    r.upsert_agent(chat_agent("f", "first", 1).with_status("away"), t0()).unwrap();
    r.upsert_agent(chat_agent("s", "second", 1), t0()).unwrap();
    let plan = Plan::new([Rule::new(
        "r",
        [
            Step::new(Pool::queues([qid("first")])).dwell(TimeDelta::minutes(5)).skip_if(SkipIf::NoAvailableAgents),
            Step::new(Pool::queues([qid("second")])),
        ],
    )]);
    r.set_plan(plan, t0()).unwrap();
    let d = r.submit(chat(1, "first", t0()), t0()).unwrap();
    assert_eq!((assigned_to(&d).as_deref(), d.step), (Some("s"), Some(1)));
    assert!(d.events.contains(&RoutingEvent::StepSkipped { item: wid(1), rule: "r".into(), step: 0 }));
}

#[test]
fn priority_change_on_step_entry() {
    let r = router(&["s"]);
    let plan = Plan::new([Rule::new(
        "r",
        [
            Step::new(Pool::default()).dwell(TimeDelta::seconds(10)),
            Step::new(Pool::default()).with_priority(PriorityChange::Raise(5)),
        ],
    )]);
    r.set_plan(plan, t0()).unwrap();
    r.submit(chat(1, "s", t0()).with_priority(1), t0()).unwrap();
    assert_eq!(r.item(wid(1)).unwrap().priority, 1);
    r.tick(at(10));
    assert_eq!(r.item(wid(1)).unwrap().priority, 6);
}

#[test]
fn max_wait_overflows_then_calls_back() {
    let r = router(&[]);
    r.upsert_queue(Queue::new(qid("overflow")).with_max_wait(TimeDelta::seconds(60), TimeoutAction::Callback)).unwrap();
    r.upsert_queue(
        Queue::new(qid("s")).with_max_wait(TimeDelta::seconds(30), TimeoutAction::Overflow(qid("overflow"))),
    )
    .unwrap();
    r.submit(chat(1, "s", t0()), t0()).unwrap();
    let ev = r.tick(at(30));
    assert!(ev.contains(&RoutingEvent::Overflowed { item: wid(1), from: qid("s"), to: qid("overflow") }));
    assert_eq!(r.item(wid(1)).unwrap().queue, qid("overflow"));
    let ev = r.tick(at(90));
    assert!(called_back(&ev, 1), "{ev:?}");
    assert!(r.item(wid(1)).is_none());
}

#[test]
fn queues_overflowing_into_each_other_need_a_wait_somewhere_in_the_ring() {
    let r = router(&["a"]);
    let now = |q: &str, to: &str| Queue::new(qid(q)).with_max_wait(TimeDelta::zero(), TimeoutAction::Overflow(qid(to)));
    r.upsert_queue(now("b", "a")).unwrap();
    r.upsert_queue(now("c", "b")).unwrap();
    // a → c → b → a with no wait anywhere: an item would go round on every tick.
    let err = r.upsert_queue(now("a", "c")).expect_err("a ring of zero waits");
    assert!(matches!(err, touchpoint::Error::InvalidInput { field: "queue.max_wait", .. }), "{err:?}");
    // A wait on one queue of the ring makes it a legitimate rotation; the refused update changed
    // nothing, so `a` still keeps its items.
    r.upsert_queue(Queue::new(qid("a")).with_max_wait(TimeDelta::seconds(30), TimeoutAction::Overflow(qid("c"))))
        .unwrap();
    r.submit(chat(1, "a", t0()), t0()).unwrap();
    let ev = r.tick(at(30));
    let hops = ev.iter().filter(|e| matches!(e, RoutingEvent::Overflowed { .. })).count();
    assert_eq!(hops, 3, "a → c → b → a, once: {ev:?}");
    assert_eq!(r.item(wid(1)).unwrap().queue, qid("a"));
}

#[test]
fn no_reply_reassigns_and_a_reply_stops_the_timer() {
    let r = router(&[]);
    r.upsert_queue(Queue::new(qid("s")).with_no_reply(TimeDelta::seconds(120))).unwrap();
    r.upsert_agent(chat_agent("slow", "s", 1), t0()).unwrap();
    r.upsert_agent(chat_agent("quick", "s", 1), t0()).unwrap();
    assert_eq!(assigned_to(&r.submit(chat(1, "s", t0()), t0()).unwrap()).as_deref(), Some("slow"));
    let ev = r.tick(at(120));
    assert!(ev.contains(&RoutingEvent::Requeued { item: wid(1), agent: aid("slow"), reason: RequeueReason::NoReply }));
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Assigned(aid("quick")));
    // Only the agent who has it replies for it: the one it was taken from cannot.
    assert!(matches!(r.note_agent_reply(wid(1), &aid("slow"), at(125)), Err(touchpoint::Error::Refused(_))));
    r.note_agent_reply(wid(1), &aid("quick"), at(130)).unwrap();
    assert!(r.tick(at(1000)).is_empty());
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Assigned(aid("quick")));
}

#[test]
fn agent_offline_requeues_assigned_work_after_the_grace() {
    let config = RouterConfig {
        offline: OfflinePolicy { grace: TimeDelta::seconds(60), assigned: OfflineAction::Requeue },
        ..RouterConfig::default()
    };
    let r = Router::new(config);
    r.upsert_queue(Queue::new(qid("s"))).unwrap();
    r.upsert_agent(chat_agent("a", "s", 1), t0()).unwrap();
    r.upsert_agent(chat_agent("b", "s", 1), t0()).unwrap();
    r.submit(chat(1, "s", t0()), t0()).unwrap();
    r.submit(chat(2, "s", t0()), t0()).unwrap();
    r.complete(wid(2), at(1)).unwrap(); // b is free
    r.set_presence(&aid("a"), "offline", at(10)).unwrap();
    assert!(r.tick(at(69)).is_empty());
    let ev = r.tick(at(70));
    assert!(ev.contains(&RoutingEvent::Requeued {
        item: wid(1),
        agent: aid("a"),
        reason: RequeueReason::AgentOffline
    }));
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Assigned(aid("b")));
    // Back within the grace: nothing happens.
    r.set_presence(&aid("b"), "offline", at(80)).unwrap();
    r.set_presence(&aid("b"), "online", at(100)).unwrap();
    assert!(!r.tick(at(200)).iter().any(|e| matches!(e, RoutingEvent::Requeued { .. })));
}

#[test]
fn fallback_any_queue_member_drops_eligibility() {
    let r = router(&["s"]);
    r.upsert_agent(chat_agent("a", "s", 1), t0()).unwrap();
    let plan = Plan::new([Rule::new(
        "r",
        [Step::new(Pool::queues([qid("s")])).eligible(Term::skill("rare", 1)).dwell(TimeDelta::seconds(20))],
    )
    .fallback(Fallback::AnyQueueMember)]);
    r.set_plan(plan, t0()).unwrap();
    r.submit(chat(1, "s", t0()), t0()).unwrap();
    assert_eq!(assignments(&r.tick(at(20))), vec![(wid(1), "a".into())]);
}

// ---------------------------------------------------------------------------------------------
// Explain and estimated wait

#[test]
fn explain_names_the_step_and_groups_agents_by_reason() {
    let r = router(&["s", "other"]);
    r.upsert_agent(chat_agent("busy", "s", 1), t0()).unwrap();
    r.upsert_agent(chat_agent("away", "s", 1).with_status("away"), t0()).unwrap();
    r.upsert_agent(chat_agent("elsewhere", "other", 1), t0()).unwrap();
    r.upsert_agent(chat_agent("nobilling", "s", 1).with_skill("billing", 1), t0()).unwrap();
    r.set_plan(
        Plan::new([Rule::new("r", [Step::new(Pool::queues([qid("s")])).named("desk").eligible(Term::ItemSkills)])]),
        t0(),
    )
    .unwrap();
    r.submit(chat(1, "s", t0()), t0()).unwrap(); // to "busy"
    r.submit(chat(2, "s", t0()).with_skill("billing", 0), t0()).unwrap();
    let d = r.submit(chat(3, "s", t0()).with_skill("billing", 2), t0()).unwrap();
    assert!(d.reason.to_string().contains("desk"), "{}", d.reason);
    let why = r.explain(wid(3), t0()).unwrap();
    assert_eq!(why.step, "rule \"r\" step 0 (desk)");
    let reason_of = |a: &str| why.groups.iter().find(|g| g.agents.contains(&aid(a))).map(|g| g.reason.clone());
    assert_eq!(reason_of("busy"), Some(Exclusion::Ineligible { term: "skill billing >= 2".into() }));
    assert_eq!(reason_of("elsewhere"), Some(Exclusion::NotInPool));
    assert_eq!(reason_of("nobilling"), Some(Exclusion::Ineligible { term: "skill billing >= 2".into() }));
    let why = r.explain(wid(2), t0()).unwrap();
    let reason_of = |a: &str| why.groups.iter().find(|g| g.agents.contains(&aid(a))).map(|g| g.reason.clone());
    assert_eq!(reason_of("away"), Some(Exclusion::Ineligible { term: "skill billing >= 0".into() }));
    assert_eq!(reason_of("nobilling"), Some(Exclusion::Holding));
}

#[test]
fn estimated_wait_is_the_mean_of_recent_waits() {
    let r = router(&[]);
    r.upsert_queue(Queue { ewt_samples: 2, ..Queue::new(qid("s")) }).unwrap();
    assert_eq!(r.queue_stats(&qid("s")).unwrap().estimated_wait, None);
    r.submit(chat(1, "s", t0()), t0()).unwrap();
    r.submit(chat(2, "s", t0()), t0()).unwrap();
    r.submit(chat(3, "s", t0()), t0()).unwrap();
    assert_eq!(r.queue_stats(&qid("s")).unwrap().waiting, 3);
    r.upsert_agent(chat_agent("a", "s", 1), at(10)).unwrap(); // item 1 waited 10 s
    r.complete(wid(1), at(30)).unwrap(); // item 2 waited 30 s
    assert_eq!(r.queue_stats(&qid("s")).unwrap().estimated_wait, Some(TimeDelta::seconds(20)));
    r.complete(wid(2), at(60)).unwrap(); // item 3 waited 60 s; only the last 2 count
    assert_eq!(r.queue_stats(&qid("s")).unwrap().estimated_wait, Some(TimeDelta::seconds(45)));
}

// ---------------------------------------------------------------------------------------------
// Bots and handoff

#[test]
fn bot_hands_off_with_findings_and_pass_releases_the_bot() {
    let r = router(&["s"]);
    r.upsert_agent(Agent::bot(aid("bot")).with_queue(qid("s")), t0()).unwrap();
    r.upsert_agent(chat_agent("human", "s", 1).with_status("away"), t0()).unwrap();
    let plan = Plan::new([
        Rule::new("escalated", [Step::new(Pool::queues([qid("s")])).eligible(Term::Bot(false))])
            .when(Term::ItemAttr { key: "intent".into(), test: AttrTest::Exists }),
        Rule::new("bot-first", [Step::new(Pool::queues([qid("s")])).eligible(Term::Bot(true))]),
    ]);
    r.set_plan(plan, t0()).unwrap();
    let d = r.submit(chat(1, "s", t0()), t0()).unwrap();
    assert_eq!(assigned_to(&d).as_deref(), Some("bot"));
    assert_eq!(r.item(wid(1)).unwrap().control, ItemControl::Bot(aid("bot")));
    let findings = serde_json::json!({"intent": "refund"}).as_object().unwrap().clone().into_iter().collect();
    let d = r.handoff(wid(1), findings, HandoffMode::Pass, at(30)).unwrap();
    assert_eq!((d.outcome.clone(), d.rule.as_deref()), (Outcome::Queued(qid("s")), Some("escalated")));
    assert_eq!(r.item(wid(1)).unwrap().item.attributes["intent"], "refund");
    assert_eq!(r.agent(&aid("bot")).unwrap().load, 0);
    assert_eq!(r.item(wid(1)).unwrap().control, ItemControl::Routing);
    let ev = r.set_presence(&aid("human"), "online", at(40)).unwrap();
    assert_eq!(assignments(&ev), vec![(wid(1), "human".into())]);
    assert!(matches!(r.handoff(wid(1), Default::default(), HandoffMode::Pass, at(50)), Err(Error::Refused(_))));
}

#[test]
fn bot_offer_mode_keeps_the_bot_until_a_human_takes_over() {
    let r = router(&["s"]);
    r.upsert_agent(Agent::bot(aid("bot")).with_queue(qid("s")), t0()).unwrap();
    r.upsert_agent(chat_agent("human", "s", 1).with_status("away"), t0()).unwrap();
    r.set_plan(Plan::new([Rule::new("r", [Step::new(Pool::default()).eligible(Term::Any)])]), t0()).unwrap();
    assert_eq!(assigned_to(&r.submit(chat(1, "s", t0()), t0()).unwrap()).as_deref(), Some("bot"));
    r.handoff(wid(1), Default::default(), HandoffMode::Offer, at(5)).unwrap();
    assert_eq!(r.item(wid(1)).unwrap().control, ItemControl::BotOffering(aid("bot")));
    assert_eq!(r.agent(&aid("bot")).unwrap().load, 1);
    r.set_presence(&aid("human"), "online", at(9)).unwrap();
    assert_eq!(r.item(wid(1)).unwrap().control, ItemControl::Human(aid("human")));
    assert_eq!(r.agent(&aid("bot")).unwrap().load, 0);
}

fn notes(v: serde_json::Value) -> Attributes {
    v.as_object().unwrap().clone().into_iter().collect()
}

#[test]
fn a_human_returns_the_item_to_a_bot_and_takes_the_next_waiting_one() {
    let r = router(&["s"]);
    r.upsert_agent(Agent::bot(aid("survey")).with_status("offline"), t0()).unwrap();
    r.upsert_agent(chat_agent("human", "s", 1), t0()).unwrap();
    assert_eq!(assigned_to(&r.submit(chat(1, "s", t0()), t0()).unwrap()).as_deref(), Some("human"));
    assert_eq!(r.submit(chat(2, "s", at(1)), at(1)).unwrap().outcome, Outcome::Queued(qid("s")));
    // The bot is offline: refused, and nothing changed.
    let refused = r.return_to_bot(wid(1), &aid("survey"), notes(serde_json::json!({"x": 1})), at(10));
    assert!(matches!(refused, Err(Error::Refused(ref m)) if m.contains("survey")), "{refused:?}");
    assert_eq!(r.item(wid(1)).unwrap().control, ItemControl::Human(aid("human")));
    assert!(!r.item(wid(1)).unwrap().item.attributes.contains_key("x"));

    r.set_presence(&aid("survey"), "online", at(20)).unwrap();
    let ev = r.return_to_bot(wid(1), &aid("survey"), notes(serde_json::json!({"resolved": true})), at(30)).unwrap();
    assert_eq!(ev[0], RoutingEvent::ReturnedToBot { item: wid(1), agent: aid("human"), bot: aid("survey") });
    // The bot has the item; the human's freed chat goes to the waiting item.
    assert_eq!(assignments(&ev), vec![(wid(1), "survey".into()), (wid(2), "human".into())]);
    let status = r.item(wid(1)).unwrap();
    assert_eq!(status.control, ItemControl::Bot(aid("survey")));
    assert_eq!(status.item.attributes["resolved"], true);
    assert_eq!(r.agent(&aid("human")).unwrap().load, 1);
    assert_eq!(r.agent(&aid("survey")).unwrap().load, 1);
    // Completing it frees the bot.
    r.complete(wid(1), at(40)).unwrap();
    assert_eq!(r.agent(&aid("survey")).unwrap().load, 0);
}

#[test]
fn return_to_bot_refuses_what_it_cannot_do_and_changes_nothing() {
    let r = router(&["s"]);
    r.upsert_agent(Agent::bot(aid("bot")).with_queue(qid("s")), t0()).unwrap();
    r.upsert_agent(chat_agent("human", "s", 1), t0()).unwrap();
    r.upsert_agent(chat_agent("other", "s", 1).with_status("away"), t0()).unwrap();
    let plan = Plan::new([Rule::new("humans", [Step::new(Pool::queues([qid("s")])).eligible(Term::Bot(false))])]);
    r.set_plan(plan, t0()).unwrap();
    assert_eq!(assigned_to(&r.submit(chat(1, "s", t0()), t0()).unwrap()).as_deref(), Some("human"));
    assert_eq!(r.submit(chat(2, "s", t0()), t0()).unwrap().outcome, Outcome::Queued(qid("s")));
    let none = Attributes::default();
    // A human named as the bot.
    assert!(matches!(r.return_to_bot(wid(1), &aid("other"), none.clone(), at(1)), Err(Error::InvalidInput { .. })));
    // Unknown names.
    assert!(matches!(r.return_to_bot(wid(1), &aid("ghost"), none.clone(), at(1)), Err(Error::NotFound { .. })));
    assert!(matches!(r.return_to_bot(wid(9), &aid("bot"), none.clone(), at(1)), Err(Error::NotFound { .. })));
    // A waiting item has no human to let go of it.
    assert!(matches!(r.return_to_bot(wid(2), &aid("bot"), none.clone(), at(1)), Err(Error::Refused(_))));
    assert_eq!(r.item(wid(1)).unwrap().control, ItemControl::Human(aid("human")));
    assert_eq!(r.item(wid(2)).unwrap().state, ItemState::Waiting);
    assert_eq!(r.agent(&aid("bot")).unwrap().load, 0);
    // Once with the bot, the bot hands off with `handoff`, not `return_to_bot`.
    r.return_to_bot(wid(1), &aid("bot"), none.clone(), at(2)).unwrap();
    assert!(matches!(r.return_to_bot(wid(1), &aid("bot"), none, at(3)), Err(Error::Refused(_))));
}

#[test]
fn a_bot_that_handed_off_can_take_the_item_back_and_hand_it_off_again() {
    let r = router(&["s"]);
    r.upsert_agent(Agent::bot(aid("bot")).with_queue(qid("s")), t0()).unwrap();
    r.upsert_agent(chat_agent("human", "s", 1), t0()).unwrap();
    let plan = Plan::new([
        Rule::new("escalated", [Step::new(Pool::queues([qid("s")])).eligible(Term::Bot(false))])
            .when(Term::ItemAttr { key: "intent".into(), test: AttrTest::Exists }),
        Rule::new("bot-first", [Step::new(Pool::queues([qid("s")])).eligible(Term::Bot(true))]),
    ]);
    r.set_plan(plan, t0()).unwrap();
    assert_eq!(assigned_to(&r.submit(chat(1, "s", t0()), t0()).unwrap()).as_deref(), Some("bot"));
    let d = r.handoff(wid(1), notes(serde_json::json!({"intent": "refund"})), HandoffMode::Pass, at(10)).unwrap();
    assert_eq!(assigned_to(&d).as_deref(), Some("human"));
    r.return_to_bot(wid(1), &aid("bot"), notes(serde_json::json!({"refunded": true})), at(20)).unwrap();
    assert_eq!(r.item(wid(1)).unwrap().control, ItemControl::Bot(aid("bot")));
    assert_eq!(r.agent(&aid("human")).unwrap().load, 0);
    // The customer asks for a human again: the bot hands off and the human gets it.
    let d = r.handoff(wid(1), Attributes::default(), HandoffMode::Pass, at(30)).unwrap();
    assert_eq!(assigned_to(&d).as_deref(), Some("human"));
    assert_eq!(r.agent(&aid("bot")).unwrap().load, 0);
}

// ---------------------------------------------------------------------------------------------
// Custom policy

#[derive(Debug)]
struct Cheapest;

impl RoutingPolicy for Cheapest {
    fn route(&self, item: &WorkItem, available: &[AgentView<'_>]) -> PolicyChoice {
        if item.attributes.contains_key("use_plan") {
            return PolicyChoice::UsePlan;
        }
        let mut v: Vec<_> = available.iter().collect();
        v.sort_by_key(|a| a.profile.attributes.get("cost").and_then(|c| c.as_i64()).unwrap_or(i64::MAX));
        match v.first() {
            Some(a) => PolicyChoice::Agents(vec![a.id.clone()]),
            None => PolicyChoice::Wait,
        }
    }
}

#[test]
fn a_routing_policy_decides_and_the_router_still_enforces_capacity() {
    let r = router(&["s"]);
    r.upsert_agent(chat_agent("dear", "s", 1).with_attribute("cost", 9), t0()).unwrap();
    r.upsert_agent(chat_agent("cheap", "s", 1).with_attribute("cost", 1), t0()).unwrap();
    r.set_policy(Some(Arc::new(Cheapest)));
    assert_eq!(assigned_to(&r.submit(chat(1, "s", t0()), t0()).unwrap()).as_deref(), Some("cheap"));
    assert_eq!(assigned_to(&r.submit(chat(2, "s", t0()), t0()).unwrap()).as_deref(), Some("dear"));
    assert!(matches!(r.submit(chat(3, "s", t0()), t0()).unwrap().outcome, Outcome::Queued(_)));
    r.complete(wid(1), at(5)).unwrap();
    // Items waiting on a policy are retried by sweep.
    assert_eq!(assignments(&r.sweep(at(6))), vec![(wid(3), "cheap".into())]);
}

// ---------------------------------------------------------------------------------------------
// Bad input

#[test]
fn bad_input_is_refused_without_changing_state() {
    let r = router(&["s"]);
    r.upsert_agent(chat_agent("a", "s", 1), t0()).unwrap();
    assert!(matches!(r.submit(chat(1, "nope", t0()), t0()), Err(Error::NotFound { .. })));
    r.submit(chat(1, "s", t0()), t0()).unwrap();
    assert!(matches!(r.submit(chat(1, "s", t0()), t0()), Err(Error::Conflict(_))));
    assert!(matches!(r.complete(wid(9), t0()), Err(Error::NotFound { .. })));
    assert!(matches!(r.accept(wid(1), &aid("a"), t0()), Err(Error::Refused(_))));
    assert!(matches!(r.upsert_agent(chat_agent("b", "nope", 1), t0()), Err(Error::NotFound { .. })));
    assert!(matches!(r.upsert_agent(chat_agent("b", "s", 1).with_status("??"), t0()), Err(Error::InvalidInput { .. })));
    let mut bad = chat(2, "s", t0());
    bad.eligible_since = at(-5);
    assert!(matches!(r.submit(bad, t0()), Err(Error::InvalidInput { .. })));
    let q = Queue { offer: OfferPolicy { parallel: 0, ..OfferPolicy::default() }, ..Queue::new(qid("x")) };
    assert!(matches!(r.upsert_queue(q), Err(Error::InvalidInput { .. })));
    let plan = Plan::new([Rule::new("r", [Step::new(Pool::queues([qid("missing")]))])]);
    let err = r.set_plan(plan, t0()).unwrap_err();
    assert!(err.to_string().contains("rules[0].steps[0].pool.queues[0]"), "{err}");
    assert_eq!(r.agent(&aid("a")).unwrap().assigned, vec![wid(1)]);
    assert!(r.agent(&aid("b")).is_none());
}

#[test]
fn item_queue_orders_like_the_router() {
    let mut q = ItemQueue::new(Discipline::PriorityThenAge);
    for n in 0..100u128 {
        q.push(&chat(n, "s", at(n as i64)).with_priority((n % 3) as i32));
    }
    let mut last: Option<(i32, i64)> = None;
    while let Some(id) = q.pop() {
        let n = id.0.as_u128();
        let key = (-((n % 3) as i32), n as i64);
        assert!(last.is_none_or(|l| l < key));
        last = Some(key);
    }
    assert!(q.is_empty());
}

#[test]
fn shared_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Router>();
    check::<Plan>();
    check::<Step>();
    check::<Ranker>();
    check::<Agent>();
    check::<Queue>();
    check::<WorkItem>();
    check::<RoutingDecision>();
    check::<RoutingEvent>();
    check::<Explanation>();
    check::<ItemQueue>();
    check::<Arc<dyn Eligibility>>();
    check::<Arc<dyn RoutingPolicy>>();
    check::<Arc<dyn AgentScore>>();
}

#[test]
fn replacing_the_plan_reclassifies_items_in_flight() {
    let r = Router::new(RouterConfig::default());
    r.upsert_queue(Queue::new(qid("s")).with_offers(OfferPolicy::offers(1, TimeDelta::seconds(30)))).unwrap();
    r.upsert_agent(chat_agent("a", "s", 1), t0()).unwrap();
    r.upsert_agent(chat_agent("b", "s", 1).with_skill("x", 1), t0()).unwrap();
    let two_steps = Plan::new([Rule::new(
        "old",
        [Step::new(Pool::default()).dwell(TimeDelta::seconds(5)), Step::new(Pool::default())],
    )]);
    r.set_plan(two_steps, t0()).unwrap();
    assert_eq!(r.submit(chat(1, "s", t0()), t0()).unwrap().outcome, Outcome::Offered(vec![aid("a")]));
    r.set_plan(Plan::new([Rule::new("new", [Step::new(Pool::default()).eligible(Term::skill("x", 1))])]), at(1))
        .unwrap();
    assert!(r.explain(wid(1), at(2)).is_ok());
    r.decline(wid(1), &aid("a"), at(3)).unwrap();
    let st = r.item(wid(1)).unwrap();
    assert_eq!((st.rule.as_deref(), st.state), (Some("new"), ItemState::Offered(vec![aid("b")])));
}

#[test]
fn a_max_wait_that_falls_due_while_an_agent_holds_the_item_applies_once_it_waits_again() {
    // Offered at 0, the max wait (20 s) falls due at 20 while the offer is open; the offer
    // expires at 30 and nobody else can take it: the item is called back then.
    let r = router(&[]);
    r.upsert_queue(
        Queue::new(qid("s"))
            .with_max_wait(TimeDelta::seconds(20), TimeoutAction::Callback)
            .with_offers(OfferPolicy::offers(1, TimeDelta::seconds(30))),
    )
    .unwrap();
    r.upsert_agent(chat_agent("ana", "s", 1), t0()).unwrap();
    r.submit(chat(1, "s", t0()), t0()).unwrap();
    let ev = r.tick(at(30));
    assert!(called_back(&ev, 1), "{ev:?}");
    assert!(r.item(wid(1)).is_none());

    // Assigned at 0, requeued at 40 with nobody free: the same.
    let r = router(&[]);
    r.upsert_queue(Queue::new(qid("s")).with_max_wait(TimeDelta::seconds(20), TimeoutAction::Callback)).unwrap();
    r.upsert_agent(chat_agent("ana", "s", 1), t0()).unwrap();
    r.submit(chat(1, "s", t0()), t0()).unwrap();
    r.tick(at(30));
    let ev = r.requeue(wid(1), true, at(40)).unwrap();
    assert!(called_back(&ev, 1), "{ev:?}");
    assert!(r.item(wid(1)).is_none());

    // Requeued after the max wait with another agent free: that agent takes it.
    let r = router(&[]);
    r.upsert_queue(Queue::new(qid("s")).with_max_wait(TimeDelta::seconds(20), TimeoutAction::Callback)).unwrap();
    r.upsert_agent(chat_agent("ana", "s", 1), t0()).unwrap();
    r.submit(chat(1, "s", t0()), t0()).unwrap();
    r.upsert_agent(chat_agent("bo", "s", 1), at(1)).unwrap();
    let ev = r.requeue(wid(1), true, at(40)).unwrap();
    assert_eq!(assignments(&ev), vec![(wid(1), "bo".to_string())]);
}

#[test]
fn an_item_requeued_after_its_step_ended_enters_the_next_steps_queue_when_it_comes_back() {
    // Step 0 (q0, 10 s) then step 1 in q2 whose max wait is 30 s. The item is with ana from 0
    // to 100: its 30 s in q2 start at 100, not at the step's due time (10).
    let r = router(&["q0"]);
    r.upsert_queue(Queue::new(qid("q2")).with_max_wait(TimeDelta::seconds(30), TimeoutAction::Callback)).unwrap();
    r.upsert_agent(chat_agent("ana", "q0", 1), t0()).unwrap();
    let steps =
        [Step::new(Pool::queues([qid("q0")])).dwell(TimeDelta::seconds(10)), Step::new(Pool::queues([qid("q2")]))];
    r.set_plan(Plan::new([Rule::new("r", steps)]), t0()).unwrap();
    r.submit(chat(1, "q0", t0()), t0()).unwrap();
    let ev = r.requeue(wid(1), true, at(100)).unwrap();
    assert!(!ev.iter().any(|e| matches!(e, RoutingEvent::TimedOut { .. })), "{ev:?}");
    assert_eq!(r.next_timer(), Some(at(130)));
    let ev = r.tick(at(129));
    assert!(ev.is_empty(), "{ev:?}");
    assert_eq!(r.item(wid(1)).unwrap().queue, qid("q2"));
    let ev = r.tick(at(130));
    assert!(ev.iter().any(|e| matches!(e, RoutingEvent::TimedOut { item, .. } if *item == wid(1))), "{ev:?}");
}

#[test]
fn events_of_timers_fired_by_a_refused_call_come_out_once_in_order_at_the_next_tick() {
    let r = router(&[]);
    r.upsert_queue(Queue::new(qid("s")).with_offers(OfferPolicy::offers(1, TimeDelta::seconds(10)))).unwrap();
    r.upsert_queue(Queue::new(qid("m")).with_max_wait(TimeDelta::seconds(25), TimeoutAction::Callback)).unwrap();
    r.upsert_agent(chat_agent("ana", "s", 1), t0()).unwrap();
    r.submit(chat(1, "s", t0()), t0()).unwrap(); // offered to ana until 10
    r.submit(chat(2, "m", t0()), t0()).unwrap(); // nobody in m: times out at 25
    // Refused at 20, after firing the offer's expiry at 10.
    assert!(r.accept(wid(99), &aid("ana"), at(20)).is_err());
    let ev = r.tick(at(30));
    let expired = ev.iter().position(|e| matches!(e, RoutingEvent::OfferExpired { item, .. } if *item == wid(1)));
    let timed_out = ev.iter().position(|e| matches!(e, RoutingEvent::TimedOut { item, .. } if *item == wid(2)));
    assert!(expired.is_some() && expired < timed_out, "{ev:?}");
    // Once: neither the next tick nor another call repeats them.
    assert!(r.tick(at(31)).is_empty());
    assert!(r.sweep(at(32)).is_empty());
    // Into a buffer the caller keeps: after what it holds.
    r.submit(chat(3, "m", at(30)), at(30)).unwrap(); // times out at 55
    assert!(r.complete(wid(99), at(60)).is_err());
    let mut buffer = vec![RoutingEvent::Withdrawn { item: wid(7) }];
    r.tick_into(at(61), &mut buffer);
    assert_eq!(buffer.len(), 2, "{buffer:?}");
    assert!(matches!(buffer[1], RoutingEvent::TimedOut { item, .. } if item == wid(3)), "{buffer:?}");
}

#[test]
fn a_freed_agent_keeps_its_queue_delay_for_items_that_name_it() {
    let r = router(&["s"]);
    let member = QueueMembership { queue: qid("s"), priority: 1, delay: TimeDelta::seconds(60) };
    let ana = Agent::new(aid("ana")).with_membership(member).with_status("busy");
    r.upsert_agent(ana, t0()).unwrap();
    r.set_plan(Plan::new([Rule::new("named", [Step::new(Pool::agents([aid("ana")]))])]), t0()).unwrap();
    r.submit(chat(1, "s", t0()), t0()).unwrap();
    let ev = r.set_presence(&aid("ana"), "online", at(10)).unwrap();
    assert!(assignments(&ev).is_empty(), "assigned at 10 s, before ana's 60 s delay: {ev:?}");
    let ev = r.tick(at(60));
    assert_eq!(assignments(&ev), vec![(wid(1), "ana".to_string())]);
}

#[test]
fn a_late_tick_does_not_stretch_a_chain_of_overflows() {
    let r = router(&[]);
    r.upsert_queue(Queue::new(qid("c")).with_max_wait(TimeDelta::seconds(10), TimeoutAction::Callback)).unwrap();
    r.upsert_queue(Queue::new(qid("b")).with_max_wait(TimeDelta::seconds(10), TimeoutAction::Overflow(qid("c"))))
        .unwrap();
    r.upsert_queue(Queue::new(qid("a")).with_max_wait(TimeDelta::seconds(10), TimeoutAction::Overflow(qid("b"))))
        .unwrap();
    r.submit(chat(1, "a", t0()), t0()).unwrap();
    // Due at 10 (a → b) and 20 (b → c), both handled by one tick at 25: in c since 20.
    let ev = r.tick(at(25));
    let hops = ev.iter().filter(|e| matches!(e, RoutingEvent::Overflowed { .. })).count();
    assert_eq!(hops, 2, "{ev:?}");
    assert_eq!(r.item(wid(1)).unwrap().queue, qid("c"));
    assert_eq!(r.next_timer(), Some(at(30)));
    let ev = r.tick(at(30));
    assert!(ev.iter().any(|e| matches!(e, RoutingEvent::TimedOut { item, .. } if *item == wid(1))), "{ev:?}");
}

#[test]
fn a_last_agent_is_preferred_only_until_the_preference_ends_even_at_the_same_step() {
    let r = router(&["s"]);
    r.upsert_agent(chat_agent("ana", "s", 1).with_status("busy"), t0()).unwrap();
    let steps = [Step::new(Pool::last_agent()).dwell(TimeDelta::seconds(600)), Step::new(Pool::queues([qid("s")]))];
    r.set_plan(Plan::new([Rule::new("affinity", steps)]), t0()).unwrap();
    r.submit(chat(1, "s", t0()).with_last_agent(aid("ana"), at(60)), t0()).unwrap();
    // The preference ended at 60: at 120 ana is no longer in the step's pool.
    let explanation = r.explain(wid(1), at(120)).unwrap();
    let ana = explanation.groups.iter().find(|g| g.agents.contains(&aid("ana"))).unwrap();
    assert_eq!(ana.reason, Exclusion::NotInPool);
    assert!(!explanation.reason.contains("named"), "{}", explanation.reason);
    let ev = r.set_presence(&aid("ana"), "online", at(120)).unwrap();
    assert!(assignments(&ev).is_empty(), "given to the last agent after the preference ended: {ev:?}");
    // The next step (the queue) gives it to her.
    let ev = r.tick(at(600));
    assert_eq!(assignments(&ev), vec![(wid(1), "ana".to_string())]);
}

#[test]
fn a_free_agent_gets_an_item_when_its_queue_delay_ends_even_behind_an_item_it_declined() {
    let r = router(&[]);
    r.upsert_queue(Queue::new(qid("s")).with_offers(OfferPolicy::offers(1, TimeDelta::seconds(5)))).unwrap();
    r.upsert_agent(chat_agent("ana", "s", 1), t0()).unwrap();
    r.submit(chat(1, "s", t0()), t0()).unwrap(); // offered to ana
    r.decline(wid(1), &aid("ana"), at(1)).unwrap(); // waits; never ana's again
    r.set_presence(&aid("ana"), "busy", at(1)).unwrap();
    r.submit(chat(2, "s", at(2)), at(2)).unwrap(); // waits
    // Free again at 3, with a 10 s delay in s: item 2 is hers from 12.
    let member = QueueMembership { queue: qid("s"), priority: 1, delay: TimeDelta::seconds(10) };
    let ana = Agent::new(aid("ana"))
        .with_membership(member)
        .with_capacity(Capacity::per_channel([(ChannelKind::WebChat, 1)]))
        .with_status("online");
    let ev = r.upsert_agent(ana, at(3)).unwrap();
    assert!(!ev.iter().any(|e| matches!(e, RoutingEvent::Offered { .. })), "{ev:?}");
    let mut events = Vec::new();
    while let Some(t) = r.next_timer().filter(|t| *t <= at(60)) {
        events.extend(r.tick(t));
    }
    let offered = events.iter().find_map(|e| match e {
        RoutingEvent::Offered { item, agents, .. } if *item == wid(2) => Some(agents.clone()),
        _ => None,
    });
    assert_eq!(offered, Some(vec![aid("ana")]), "{events:?}");
}

#[test]
fn the_estimated_wait_does_not_count_time_an_agent_held_a_requeued_item() {
    let r = router(&["s"]);
    r.upsert_agent(chat_agent("ana", "s", 1), t0()).unwrap();
    r.upsert_agent(chat_agent("bo", "s", 1).with_status("busy"), t0()).unwrap();
    r.submit(chat(1, "s", t0()), t0()).unwrap(); // ana at once
    r.set_presence(&aid("bo"), "online", at(599)).unwrap();
    let ev = r.requeue(wid(1), true, at(600)).unwrap(); // bo at once, after 10 minutes with ana
    assert_eq!(assignments(&ev), vec![(wid(1), "bo".to_string())]);
    assert_eq!(r.queue_stats(&qid("s")).unwrap().estimated_wait, Some(TimeDelta::zero()));
}

#[test]
fn an_item_held_across_a_plan_change_reports_the_rule_it_was_routed_by_until_routed_again() {
    let r = router(&["s"]);
    r.upsert_agent(chat_agent("ana", "s", 1), t0()).unwrap();
    r.upsert_agent(chat_agent("bo", "s", 1).with_status("busy"), t0()).unwrap();
    r.set_plan(Plan::new([Rule::new("old", [Step::new(Pool::default())])]), t0()).unwrap();
    r.submit(chat(1, "s", t0()), t0()).unwrap(); // ana
    r.set_plan(Plan::new([Rule::new("new", [Step::new(Pool::default())])]), at(1)).unwrap();
    assert_eq!(r.item(wid(1)).unwrap().rule.as_deref(), Some("old"));
    let explanation = r.explain(wid(1), at(1)).unwrap();
    assert_eq!(explanation.step, r#"rule "old" step 0"#);
    assert!(explanation.reason.contains(r#"rule "old""#), "{}", explanation.reason);
    // Requeued, it is classified by the new plan.
    r.set_presence(&aid("bo"), "online", at(2)).unwrap();
    r.requeue(wid(1), true, at(3)).unwrap();
    assert_eq!(r.item(wid(1)).unwrap().rule.as_deref(), Some("new"));
    assert_eq!(r.explain(wid(1), at(3)).unwrap().step, r#"rule "new" step 0"#);
}

#[test]
fn a_late_tick_enters_the_fallback_overflow_queue_as_of_the_last_steps_end() {
    let r = router(&["a"]);
    r.upsert_queue(Queue::new(qid("b")).with_max_wait(TimeDelta::seconds(10), TimeoutAction::Callback)).unwrap();
    let plan = Plan::new([Rule::new(
        "r",
        [Step::new(Pool::queues([qid("a")])).eligible(Term::skill("rare", 1)).dwell(TimeDelta::seconds(10))],
    )
    .fallback(Fallback::Overflow(qid("b")))]);
    r.set_plan(plan, t0()).unwrap();
    r.submit(chat(1, "a", t0()), t0()).unwrap();
    // The last step ends at 10 (into b), b's max wait at 20: one tick at 25 does both.
    let ev = r.tick(at(25));
    assert!(ev.iter().any(|e| matches!(e, RoutingEvent::Overflowed { to, .. } if *to == qid("b"))), "{ev:?}");
    assert!(ev.iter().any(|e| matches!(e, RoutingEvent::TimedOut { item, .. } if *item == wid(1))), "{ev:?}");
}

#[test]
fn a_late_tick_enters_the_decision_fallback_queue_as_of_the_deadline() {
    let r = router(&["sales"]);
    r.upsert_agent(chat_agent("ana", "sales", 1), t0()).unwrap();
    r.upsert_queue(Queue::new(qid("b")).with_max_wait(TimeDelta::seconds(10), TimeoutAction::Callback)).unwrap();
    let step = Step::new(Pool::queues([qid("sales")]))
        .decided_by_host(DecisionHook::new(TimeDelta::seconds(5)).or_else(DecisionFallback::Queue(qid("b"))));
    r.set_plan(Plan::new([Rule::new("ask", [step])]), t0()).unwrap();
    r.submit(chat(1, "sales", t0()), t0()).unwrap();
    // The host never answers: in b from the deadline (5), timed out at 15, all by a tick at 17.
    let ev = r.tick(at(17));
    assert!(ev.iter().any(|e| matches!(e, RoutingEvent::DecisionExpired { .. })), "{ev:?}");
    assert!(ev.iter().any(|e| matches!(e, RoutingEvent::TimedOut { item, .. } if *item == wid(1))), "{ev:?}");
}

#[test]
fn a_last_agent_whose_preference_ended_does_not_keep_a_step_from_being_skipped() {
    // Entered late (a tick at 100 for a step due at 50, while the preference held until 60),
    // the last-agent step is judged as of now: ana no longer counts, signed in or not.
    for skip in [SkipIf::NoAgentsSignedIn, SkipIf::expr("pool.signed_in == 0")] {
        let r = router(&["s", "x"]);
        r.upsert_agent(chat_agent("ana", "s", 1).with_status("busy"), t0()).unwrap();
        let steps = [
            Step::new(Pool::queues([qid("x")])).dwell(TimeDelta::seconds(50)),
            Step::new(Pool::last_agent()).skip_if(skip.clone()).dwell(TimeDelta::seconds(600)),
            Step::new(Pool::queues([qid("s")])),
        ];
        r.set_plan(Plan::new([Rule::new("affinity", steps)]), t0()).unwrap();
        r.submit(chat(1, "s", t0()).with_last_agent(aid("ana"), at(60)), t0()).unwrap();
        r.upsert_agent(chat_agent("bo", "s", 1), t0()).unwrap();
        let ev = r.tick(at(100));
        assert_eq!(assignments(&ev), vec![(wid(1), "bo".to_string())], "{skip:?}: {ev:?}");
    }
}

#[test]
fn an_agent_both_named_and_in_the_pools_queue_counts_once() {
    let r = router(&["s", "x"]);
    r.upsert_agent(chat_agent("ana", "s", 1), t0()).unwrap();
    let both = Pool { queues: vec![qid("s")], agents: vec![aid("ana")], ..Pool::default() };
    let steps = [
        Step::new(both)
            .skip_if(SkipIf::expr("pool.available >= 2 or pool.signed_in >= 2"))
            .dwell(TimeDelta::seconds(60)),
        Step::new(Pool::queues([qid("x")])),
    ];
    r.set_plan(Plan::new([Rule::new("r", steps)]), t0()).unwrap();
    // One agent: the step is not skipped, and she takes it.
    let d = r.submit(chat(1, "s", t0()), t0()).unwrap();
    assert_eq!(assigned_to(&d).as_deref(), Some("ana"), "{d:?}");
}

/// Whether `ev` says item `n` timed out to a callback.
fn called_back(ev: &[RoutingEvent], n: u128) -> bool {
    ev.iter()
        .any(|e| matches!(e, RoutingEvent::TimedOut { item, action: TimeoutAction::Callback, .. } if *item == wid(n)))
}

/// A last agent whose preference ended is an ordinary member of the pool: when she frees, she
/// takes the queue's oldest item, as the item direction (and `explain`) would have it, not the
/// item that once named her.
#[test]
fn a_freed_agent_does_not_favour_an_item_whose_last_agent_preference_ended() {
    let r = router(&["s"]);
    r.upsert_agent(chat_agent("ana", "s", 1).with_status("busy"), t0()).unwrap();
    let pool = Pool { queues: vec![qid("s")], last_agent: true, ..Pool::default() };
    r.set_plan(Plan::new([Rule::new("r", [Step::new(pool)])]), t0()).unwrap();
    r.submit(chat(1, "s", at(10)), at(10)).unwrap(); // waits (ana busy)
    r.submit(chat(2, "s", at(20)).with_last_agent(aid("ana"), at(30)), at(20)).unwrap(); // waits
    // At 60 the preference of item 2 has ended: ana is just a member of s; item 1 waited longest.
    let ev = r.set_presence(&aid("ana"), "online", at(60)).unwrap();
    assert_eq!(assignments(&ev), vec![(wid(1), "ana".to_string())]);
}

/// An item given back after its queue's max wait, to a step that asks the host, keeps the open
/// request: it is not overflowed in the same call, and the host's answer is taken.
#[test]
fn an_item_back_after_its_max_wait_is_not_asked_about_and_overflowed_in_one_call() {
    let r = Router::new(RouterConfig::default());
    r.upsert_queue(Queue::new(qid("o"))).unwrap();
    let s = Queue::new(qid("s")).with_max_wait(TimeDelta::seconds(10), TimeoutAction::Overflow(qid("o")));
    r.upsert_queue(s).unwrap();
    r.upsert_agent(chat_agent("ana", "s", 1), t0()).unwrap();
    let steps = [
        Step::new(Pool::queues([qid("s")])).dwell(TimeDelta::seconds(5)),
        Step::new(Pool::queues([qid("s")])).decided_by_host(DecisionHook::new(TimeDelta::seconds(60))),
    ];
    r.set_plan(Plan::new([Rule::new("r", steps)]), t0()).unwrap();
    let d = r.submit(chat(1, "s", t0()), t0()).unwrap();
    assert_eq!(assigned_to(&d).as_deref(), Some("ana"));
    // Ana gives it back at 20 (the step ended at 5, the max wait at 10): the next step asks the host.
    let ev = r.requeue(wid(1), false, at(20)).unwrap();
    let request = ev
        .iter()
        .find_map(|e| match e {
            RoutingEvent::DecisionRequested { request, .. } => Some(*request),
            _ => None,
        })
        .unwrap_or_else(|| panic!("the step asks the host: {ev:?}"));
    assert!(!ev.iter().any(|e| matches!(e, RoutingEvent::Overflowed { .. })), "{ev:?}");
    let choice = PolicyChoice::Agents(vec![aid("ana")]);
    let answer = r.resolve_decision(wid(1), request, choice, at(21));
    assert!(answer.is_ok(), "DecisionRequested in {ev:?}, but answering it: {answer:?}");
}

// ---------------------------------------------------------------------------------------------
// Review (offers and timers): findings

/// An item whose last allowed decline sends it to an overflow queue must be routed there like
/// any other overflow: the agent of the overflow queue gets it, and it is never left in limbo.
#[test]
fn max_declines_overflow_routes_the_item_in_the_overflow_queue() {
    let r = router(&["b"]);
    let mut policy = OfferPolicy::offers(1, TimeDelta::seconds(30));
    policy.max_declines = 1;
    policy.on_max_declines = TimeoutAction::Overflow(qid("b"));
    r.upsert_queue(Queue::new(qid("a")).with_offers(policy)).unwrap();
    r.upsert_agent(chat_agent("ana", "a", 1), t0()).unwrap();
    r.upsert_agent(chat_agent("bob", "b", 1), t0()).unwrap();
    let d = r.submit(chat(1, "a", t0()), t0()).unwrap();
    assert_eq!(d.outcome, Outcome::Offered(vec![aid("ana")]));
    let ev = r.decline(wid(1), &aid("ana"), at(1)).unwrap();
    assert!(ev.contains(&RoutingEvent::Overflowed { item: wid(1), from: qid("a"), to: qid("b") }), "{ev:?}");
    // Bob in the overflow queue is free: the item goes to him now, or at the latest on a sweep.
    let mut all = ev.clone();
    all.extend(r.sweep(at(2)));
    all.extend(r.tick(at(3600)));
    assert_eq!(assignments(&all), vec![(wid(1), "bob".to_owned())], "{all:?}; item {:?}", r.item(wid(1)));
}

/// One late tick fires every timer due by then, however many fall due one after another: after
/// it no timer is due in the past, and the item has overflowed through the whole chain.
#[test]
fn a_late_tick_fires_every_due_timer_of_a_long_overflow_chain() {
    let r = router(&["q79"]);
    for n in (0..79).rev() {
        let q = Queue::new(qid(&format!("q{n}")))
            .with_max_wait(TimeDelta::seconds(1), TimeoutAction::Overflow(qid(&format!("q{}", n + 1))));
        r.upsert_queue(q).unwrap();
    }
    r.submit(chat(1, "q0", t0()), t0()).unwrap();
    let now = at(1000);
    let ev = r.tick(now);
    let hops = ev.iter().filter(|e| matches!(e, RoutingEvent::Overflowed { .. })).count();
    let next = r.next_timer();
    assert!(next.is_none_or(|t| t > now), "next_timer {next:?} is before the tick at {now} ({hops} hops)");
    assert_eq!((hops, r.item(wid(1)).unwrap().queue), (79, qid("q79")));
}

/// A router that has offered item 1 to ana at `submitted` (30 s to accept), and the offer's
/// announced `expires_at`.
fn offered_to_ana(submitted: DateTime<Utc>) -> (Router, DateTime<Utc>) {
    let r = router(&[]);
    r.upsert_queue(Queue::new(qid("s")).with_offers(OfferPolicy::offers(1, TimeDelta::seconds(30)))).unwrap();
    r.upsert_agent(chat_agent("ana", "s", 1), t0()).unwrap();
    let d = r.submit(chat(1, "s", submitted), submitted).unwrap();
    let expires_at = d
        .events
        .iter()
        .find_map(|e| match e {
            RoutingEvent::Offered { expires_at, .. } => Some(*expires_at),
            _ => None,
        })
        .expect("offered");
    (r, expires_at)
}

/// An offer is open until the `expires_at` its event announced: an accept before that instant
/// wins, also when the instants carry sub-millisecond parts.
#[test]
fn an_accept_before_the_announced_expiry_is_not_refused() {
    let (r, expires_at) = offered_to_ana(t0() + TimeDelta::microseconds(400));
    let before = expires_at - TimeDelta::microseconds(200);
    assert!(before < expires_at);
    let ev = r.accept(wid(1), &aid("ana"), before);
    assert!(ev.is_ok(), "accept at {before}, offer announced open until {expires_at}: {ev:?}");
}

/// ...and not after it: with `now` to the microsecond (as from `Utc::now()`), an accept just
/// after the announced `expires_at` is refused.
#[test]
fn an_offer_cannot_be_accepted_after_its_announced_expiry() {
    let now = t0() + TimeDelta::microseconds(500);
    let (r, expires_at) = offered_to_ana(now);
    assert!(expires_at >= now + TimeDelta::seconds(30), "{expires_at}");
    let res = r.accept(wid(1), &aid("ana"), expires_at + TimeDelta::microseconds(300));
    assert!(res.is_err(), "accept after expires_at {expires_at}: {res:?}");
}

/// A queue that lets nobody wait (max wait zero) applies its action in the submitting call:
/// the answer is the callback or the overflow, not a wait that ends at the next call.
#[test]
fn a_zero_max_wait_acts_in_the_same_call() {
    let r = router(&["overflow"]);
    r.upsert_queue(Queue::new(qid("now")).with_max_wait(TimeDelta::zero(), TimeoutAction::Callback)).unwrap();
    r.upsert_queue(Queue::new(qid("spill")).with_max_wait(TimeDelta::zero(), TimeoutAction::Overflow(qid("overflow"))))
        .unwrap();

    let d = r.submit(chat(1, "now", t0()), t0()).unwrap();
    assert_eq!(d.outcome, Outcome::TimedOut(TimeoutAction::Callback), "{d:?}");
    assert!(r.item(wid(1)).is_none());

    let d = r.submit(chat(2, "spill", t0()), t0()).unwrap();
    assert_eq!(d.outcome, Outcome::Queued(qid("overflow")), "{d:?}");
    assert!(d.events.contains(&RoutingEvent::Overflowed { item: wid(2), from: qid("spill"), to: qid("overflow") }));
    assert!(r.next_timer().is_none_or(|t| t > t0()), "nothing left due: {:?}", r.next_timer());
}

// ---------------------------------------------------------------------------------------------
// Found in review: idle time, affinity scope and queue order for a freed agent

/// Longest idle counts time available: an agent back from a status that takes no work is idle
/// from then, whether the host used `set_presence` or re-sent the agent's record.
#[test]
fn an_agent_back_through_an_upsert_is_idle_from_then_like_set_presence() {
    for by_upsert in [false, true] {
        let r = router(&["s"]);
        r.upsert_agent(chat_agent("a", "s", 1), t0()).unwrap();
        r.upsert_agent(chat_agent("b", "s", 1), at(5)).unwrap();
        if by_upsert {
            r.upsert_agent(chat_agent("a", "s", 1).with_status("away"), at(10)).unwrap();
            r.upsert_agent(chat_agent("a", "s", 1), at(100)).unwrap();
        } else {
            r.set_presence(&aid("a"), "away", at(10)).unwrap();
            r.set_presence(&aid("a"), "online", at(100)).unwrap();
        }
        // b has been available since t=5, a only since t=100: b is the longest idle.
        let d = r.submit(chat(1, "s", at(200)), at(200)).unwrap();
        assert_eq!(assigned_to(&d).as_deref(), Some("b"), "back by upsert: {by_upsert}");
    }
}

/// Preferred agents are a ranker of a step (`Pool::preferred`): an item whose own step does
/// not rank by affinity waits in its queue's order, even when another rule's step does.
#[test]
fn a_preference_counts_only_where_the_items_own_step_ranks_by_it() {
    let r = router(&["s"]);
    r.upsert_agent(chat_agent("ana", "s", 1), t0()).unwrap();
    let plan = Plan::new([
        Rule::new("vip", [Step::new(Pool::preferred())]).when(Term::item_attr_equals("vip", true)),
        Rule::new("rest", [Step::new(Pool::queues([qid("s")]))]),
    ]);
    r.set_plan(plan, t0()).unwrap();
    assert_eq!(assigned_to(&r.submit(chat(1, "s", t0()), t0()).unwrap()).as_deref(), Some("ana"));
    r.submit(chat(2, "s", at(1)).with_priority(5), at(1)).unwrap();
    r.submit(chat(3, "s", at(2)).with_preferred_agent(aid("ana")), at(2)).unwrap();
    let ev = r.complete(wid(1), at(10)).unwrap();
    // Priority 5 first (the default discipline); item 3's preference means nothing in its step.
    assert_eq!(assignments(&ev), vec![(wid(2), "ana".into())]);
}

/// A freed agent takes the items that prefer it in their queue's discipline, here due time.
#[test]
fn a_freed_agent_takes_the_items_that_prefer_it_in_the_queues_order() {
    let r = Router::new(RouterConfig::default());
    r.upsert_queue(Queue::new(qid("s")).with_discipline(Discipline::DueTime)).unwrap();
    r.upsert_agent(chat_agent("ana", "s", 1), t0()).unwrap();
    r.set_plan(Plan::new([Rule::new("r", [Step::new(Pool::preferred())])]), t0()).unwrap();
    let d = r.submit(chat(1, "s", t0()).with_preferred_agent(aid("ana")), t0()).unwrap();
    assert_eq!(assigned_to(&d).as_deref(), Some("ana"));
    r.submit(chat(2, "s", at(1)).with_preferred_agent(aid("ana")).with_due(at(600)), at(1)).unwrap();
    r.submit(chat(3, "s", at(2)).with_preferred_agent(aid("ana")).with_due(at(60)), at(2)).unwrap();
    let ev = r.complete(wid(1), at(10)).unwrap();
    // Earliest due first: item 3 (due at 60 s) before item 2 (due at 600 s).
    assert_eq!(assignments(&ev), vec![(wid(3), "ana".into())]);
}

/// The attribute ranker orders by the attribute's value, however small the difference or
/// large the number (error rates of 0.0001, points in the trillions, negative scores).
#[test]
fn the_attribute_ranker_orders_by_exact_value() {
    let cases: [(&str, [f64; 2], SortOrder, &str); 4] = [
        ("error_rate", [0.0009, 0.0001], SortOrder::Asc, "b"),
        ("points", [1e13, 2e13], SortOrder::Desc, "b"),
        ("score", [-3.4, -3.5], SortOrder::Asc, "b"),
        ("score", [-0.0, 1e-300], SortOrder::Desc, "b"),
    ];
    for (key, [va, vb], order, want) in cases {
        let r = router(&["support"]);
        r.upsert_agent(chat_agent("a", "support", 1).with_attribute(key, va), t0()).unwrap();
        r.upsert_agent(chat_agent("b", "support", 1).with_attribute(key, vb), t0()).unwrap();
        let ranker = Ranker::new([RankKey::Attribute { key: key.into(), order }]);
        r.set_plan(Plan::new([Rule::new("r", [Step::new(Pool::queues([qid("support")])).ranked(ranker)])]), t0())
            .unwrap();
        let d = r.submit(chat(1, "support", t0()), t0()).unwrap();
        assert_eq!(assigned_to(&d).as_deref(), Some(want), "{key} {va} vs {vb}, {order:?}");
    }
}
