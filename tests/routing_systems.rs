//! Each surveyed system's default routing behaviour, encoded as router configuration.

mod routing_common;

use chrono::TimeDelta;
use routing_common::*;
use touchpoint::model::ChannelKind;
use touchpoint::routing::*;

/// Twilio TaskRouter: a workflow of filters (first match) with targets; target timeouts count
/// from the task's age; a known-worker target first; multi-reservation (first accept wins);
/// the default filter catches the rest.
#[test]
fn twilio_workflow_with_targets_and_timeouts() {
    let r = Router::new(RouterConfig::default());
    let offers = OfferPolicy::offers(2, TimeDelta::seconds(15));
    for q in ["sales", "support", "everyone"] {
        r.upsert_queue(Queue::new(qid(q)).with_offers(offers.clone())).unwrap();
    }
    for (n, q) in [("s1", "sales"), ("s2", "sales"), ("t1", "support"), ("t2", "support")] {
        r.upsert_agent(chat_agent(n, q, 1).with_queue(qid("everyone")), t0()).unwrap();
    }
    let workflow = Plan::from_json(
        r#"{"rules": [
          {"name": "sales", "when": {"item_attr": {"key": "type", "equals": "sales"}},
           "steps": [
             {"pool": {"last_agent": true}, "dwell": 10, "timer": "item_age"},
             {"pool": {"queues": ["sales"]}, "dwell": 30, "timer": "item_age", "priority": {"set": 5}},
             {"pool": {"queues": ["everyone"]}}
           ]},
          {"name": "default", "steps": [{"pool": {"queues": ["support"]}}]}
        ]}"#,
    )
    .unwrap();
    r.set_plan(workflow, t0()).unwrap();

    // Known worker first: only s2 is offered, for 10 s of task age.
    let d = r
        .submit(chat(1, "sales", t0()).with_attribute("type", "sales").with_last_agent(aid("s2"), at(3600)), t0())
        .unwrap();
    assert_eq!(d.outcome, Outcome::Offered(vec![aid("s2")]));
    // The reservation times out at 15 s; the 10 s target timeout (task age) has passed: sales queue,
    // two reservations at once, priority set to 5 by the target.
    let ev = r.tick(at(15));
    assert!(ev.contains(&RoutingEvent::OfferExpired { item: wid(1), agent: aid("s2") }));
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Offered(vec![aid("s1")]));
    assert_eq!(r.item(wid(1)).unwrap().priority, 5);
    r.accept(wid(1), &aid("s1"), at(16)).unwrap();

    // A non-sales task falls to the default filter: two support workers offered in parallel.
    let d = r.submit(chat(2, "support", at(20)), at(20)).unwrap();
    assert_eq!(d.outcome, Outcome::Offered(vec![aid("t1"), aid("t2")]));
    assert_eq!(d.rule.as_deref(), Some("default"));
    r.accept(wid(2), &aid("t2"), at(21)).unwrap();
    assert_eq!(r.agent(&aid("t1")).unwrap().load, 0);
}

/// Genesys bullseye: rings that drop skills and widen cumulatively; inner-ring agents keep
/// priority; conversation score (minutes waiting + priority) orders the queue.
#[test]
fn genesys_bullseye_rings_widen() {
    let r = router(&[]);
    r.upsert_queue(Queue::new(qid("q")).with_discipline(Discipline::Scored { seconds_per_priority: 60 })).unwrap();
    r.upsert_agent(chat_agent("ring1", "q", 1).with_skill("spanish", 1).with_skill("billing", 1), t0()).unwrap();
    r.upsert_agent(chat_agent("ring2", "q", 1).with_skill("spanish", 1), at(-100)).unwrap();
    r.upsert_agent(chat_agent("ring3", "q", 1), at(-200)).unwrap();
    let ring = |t: Term, dwell: Option<i64>| {
        let s = Step::new(Pool::queues([qid("q")])).eligible(t).widen();
        match dwell {
            Some(d) => s.dwell(TimeDelta::seconds(d)),
            None => s,
        }
    };
    let plan = Plan::new([Rule::new(
        "bullseye",
        [
            ring(Term::and([Term::ItemSkills, Term::ItemOptionalSkills]), Some(20)),
            ring(Term::ItemSkills, Some(20)),
            ring(Term::Any, None),
        ],
    )]);
    r.set_plan(plan, t0()).unwrap();
    for a in ["ring1", "ring2", "ring3"] {
        r.set_presence(&aid(a), "away", t0()).unwrap();
    }
    let item = |n| chat(n, "q", t0()).with_skill("spanish", 1).with_optional_skill("billing", 1);
    r.submit(item(1), t0()).unwrap();
    r.submit(item(2), t0()).unwrap();
    // Everyone comes back at 25 s: item 1 is in ring 2, both ring-1 and ring-2 agents qualify,
    // and ring 1 is preferred even though ring 2 has been idle longer.
    r.set_presence(&aid("ring3"), "online", at(21)).unwrap();
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Waiting, "ring 3 not reached yet");
    r.set_presence(&aid("ring2"), "online", at(25)).unwrap();
    let first = r.item(wid(1)).unwrap().state;
    assert_eq!(first, ItemState::Assigned(aid("ring2")), "the freed ring-2 agent takes the oldest item");
    r.submit(item(3), at(26)).unwrap();
    r.set_presence(&aid("ring1"), "online", at(27)).unwrap();
    assert_eq!(r.item(wid(2)).unwrap().state, ItemState::Assigned(aid("ring1")));
    // Item 3 reaches ring 3 at 66 s (two dwells after its entry at 26 s).
    assert!(assignments(&r.tick(at(65))).is_empty());
    assert_eq!(assignments(&r.tick(at(66))), vec![(wid(3), "ring3".into())]);
}

/// Amazon Connect: routing steps replace each other with expiry; after the last step any agent
/// of the queue; routing-profile queue priority and delay; longest available agent.
#[test]
fn amazon_connect_routing_steps_replace() {
    let r = router(&["q", "vip"]);
    r.upsert_agent(chat_agent("expert", "q", 1).with_skill("tech", 5), t0()).unwrap();
    r.upsert_agent(chat_agent("mid", "q", 1).with_skill("tech", 3), t0()).unwrap();
    r.upsert_agent(chat_agent("novice", "q", 1), t0()).unwrap();
    let plan = Plan::from_json(
        r#"{"rules": [{"name": "criteria",
            "steps": [
              {"pool": {"queues": ["q"]}, "eligibility": {"skill": {"name": "tech", "min": 5}}, "dwell": 30},
              {"pool": {"queues": ["q"]}, "eligibility": {"skill": {"name": "tech", "min": 3}}, "dwell": 30}
            ],
            "fallback": "any_queue_member"}]}"#,
    )
    .unwrap();
    r.set_plan(plan, t0()).unwrap();
    for a in ["expert", "mid", "novice"] {
        r.set_presence(&aid(a), "away", t0()).unwrap();
    }
    r.submit(chat(1, "q", t0()), t0()).unwrap();
    r.set_presence(&aid("mid"), "online", at(1)).unwrap();
    r.set_presence(&aid("novice"), "online", at(1)).unwrap();
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Waiting, "step 1 wants level 5");
    // Step 2 replaces step 1: level 3 is enough now.
    assert_eq!(assignments(&r.tick(at(30))), vec![(wid(1), "mid".into())]);
    // A second contact: after both steps expire, any queue agent.
    r.set_presence(&aid("novice"), "away", at(31)).unwrap();
    r.submit(chat(2, "q", at(31)), at(31)).unwrap();
    r.set_presence(&aid("novice"), "online", at(32)).unwrap();
    r.tick(at(61));
    assert_eq!(r.item(wid(2)).unwrap().state, ItemState::Waiting);
    assert_eq!(assignments(&r.tick(at(91))), vec![(wid(2), "novice".into())]);
}

#[test]
fn amazon_connect_routing_profile_priority_delay_and_age_adjustment() {
    let r = router(&["a", "b"]);
    r.submit(chat(1, "a", at(0)), at(0)).unwrap();
    r.submit(chat(2, "b", at(0)), at(0)).unwrap();
    r.submit(chat(3, "b", at(5)).with_age_adjustment(TimeDelta::seconds(60)), at(5)).unwrap();
    // Same priority for both queues, b delayed by 10 s for this agent.
    let agent = Agent::new(aid("x"))
        .with_membership(QueueMembership { queue: qid("a"), priority: 1, delay: TimeDelta::zero() })
        .with_membership(QueueMembership { queue: qid("b"), priority: 1, delay: TimeDelta::seconds(10) })
        .with_capacity(Capacity::per_channel([(ChannelKind::WebChat, 1)]))
        .with_status("online");
    let ev = r.upsert_agent(agent, at(6)).unwrap();
    assert_eq!(assignments(&ev), vec![(wid(1), "x".into())], "b's contacts are still within the delay");
    // Once past the delay, the age-adjusted contact 3 counts as oldest.
    let ev = r.complete(wid(1), at(20)).unwrap();
    assert_eq!(assignments(&ev), vec![(wid(3), "x".into())]);
}

/// Salesforce Omni-Channel: additional skills dropped after a timeout; a rep who declines is
/// never offered the item again and it keeps its age; most-available routing on weighted
/// capacity.
#[test]
fn salesforce_droppable_skills_and_decline_semantics() {
    let r = Router::new(RouterConfig::default());
    r.upsert_queue(Queue::new(qid("cases")).with_offers(OfferPolicy::offers(1, TimeDelta::seconds(30)))).unwrap();
    let cap = Capacity::budget(10).with_cost(ChannelKind::Email, 2).with_cost(ChannelKind::WebChat, 5);
    let rep = |n: &str| Agent::new(aid(n)).with_queue(qid("cases")).with_capacity(cap.clone()).with_status("online");
    r.upsert_agent(rep("fr").with_skill("product", 5).with_skill("french", 5), t0()).unwrap();
    r.upsert_agent(rep("en1").with_skill("product", 5), t0()).unwrap();
    r.upsert_agent(rep("en2").with_skill("product", 5), t0()).unwrap();
    let plan = Plan::new([Rule::new(
        "skills",
        [
            Step::new(Pool::default())
                .eligible(Term::and([Term::ItemSkills, Term::ItemOptionalSkills]))
                .ranked(Ranker::new([RankKey::MostSpareCapacity]))
                .dwell(TimeDelta::seconds(60)),
            Step::new(Pool::default()).eligible(Term::ItemSkills).ranked(Ranker::new([RankKey::MostSpareCapacity])),
        ],
    )]);
    r.set_plan(plan, t0()).unwrap();
    let case = |n: u128, at_| {
        touchpoint::routing::WorkItem::new(wid(n), ChannelKind::Email, at_)
            .in_queue(qid("cases"))
            .with_skill("product", 3)
            .with_optional_skill("french", 3)
    };
    assert_eq!(r.submit(case(1, t0()), t0()).unwrap().outcome, Outcome::Offered(vec![aid("fr")]));
    r.decline(wid(1), &aid("fr"), at(5)).unwrap();
    // The only French rep declined: the item waits for the additional skill to drop.
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Waiting);
    let ev = r.tick(at(60));
    assert!(ev.iter().any(
        |e| matches!(e, RoutingEvent::Offered { item, agents, .. } if *item == wid(1) && agents == &vec![aid("en1")])
    ));
    r.accept(wid(1), &aid("en1"), at(61)).unwrap();
    // Most available: en1 holds 2 of 10, so en2 (10 free) and fr (10 free; registered first) lead.
    assert_eq!(
        r.submit(case(2, at(62)).with_optional_skill("french", 0), at(62)).unwrap().outcome,
        Outcome::Offered(vec![aid("fr")])
    );
    let st = r.item(wid(1)).unwrap();
    assert_eq!(st.item.eligible_since, t0(), "a declined item keeps its original age");
}

/// Chatwoot: round robin among online inbox members, a per-inbox open-conversation cap
/// (capacity keyed by the inbox's channel), conversations left unassigned when everyone is at
/// the cap, and a periodic sweep that assigns them later.
#[test]
fn chatwoot_round_robin_with_per_inbox_caps() {
    let r = router(&["inbox-web"]);
    let web = ChannelKind::Custom("inbox-web".into());
    for n in ["a", "b"] {
        let agent = Agent::new(aid(n))
            .with_queue(qid("inbox-web"))
            .with_capacity(Capacity::per_channel([(web.clone(), 2)]))
            .with_status("online");
        r.upsert_agent(agent, t0()).unwrap();
    }
    r.set_plan(
        Plan::new([Rule::new(
            "auto-assign",
            [Step::new(Pool::queues([qid("inbox-web")])).ranked(Ranker::new([RankKey::RoundRobin]))],
        )]),
        t0(),
    )
    .unwrap();
    let conv =
        |n: u128| touchpoint::routing::WorkItem::new(wid(n), web.clone(), at(n as i64)).in_queue(qid("inbox-web"));
    let picks: Vec<_> = (1..=4).map(|n| assigned_to(&r.submit(conv(n), at(n as i64)).unwrap())).collect();
    assert_eq!(picks, [Some("a".into()), Some("b".into()), Some("a".into()), Some("b".into())]);
    assert_eq!(r.submit(conv(5), at(5)).unwrap().outcome, Outcome::Queued(qid("inbox-web")));
    assert!(assignments(&r.sweep(at(6))).is_empty(), "everyone is at the cap");
    r.complete(wid(2), at(7)).unwrap();
    assert_eq!(r.item(wid(5)).unwrap().state, ItemState::Assigned(aid("b")));
}

/// Rocket.Chat: load rotation (oldest routing time), max simultaneous chats, the fallback
/// department when nobody in the department is online, auto-transfer of unanswered chats, and
/// forward-on-offline.
#[test]
fn rocket_chat_load_rotation_fallback_and_offline_forwarding() {
    let config = RouterConfig {
        offline: OfflinePolicy { grace: TimeDelta::seconds(30), assigned: OfflineAction::Requeue },
        ..RouterConfig::default()
    };
    let r = Router::new(config);
    r.upsert_queue(Queue::new(qid("dept")).with_no_reply(TimeDelta::seconds(60))).unwrap();
    r.upsert_queue(Queue::new(qid("fallback"))).unwrap();
    for n in ["a", "b"] {
        r.upsert_agent(chat_agent(n, "dept", 2), t0()).unwrap();
    }
    r.upsert_agent(chat_agent("f", "fallback", 5), t0()).unwrap();
    let plan = Plan::new([Rule::new(
        "dept",
        [
            Step::new(Pool::queues([qid("dept")]))
                .ranked(Ranker::new([RankKey::RoundRobin]))
                .skip_if(SkipIf::NoAgentsSignedIn)
                .dwell(TimeDelta::days(1)),
            Step::new(Pool::queues([qid("fallback")])),
        ],
    )]);
    r.set_plan(plan, t0()).unwrap();
    let picks: Vec<_> =
        (1..=3).map(|n| assigned_to(&r.submit(chat(n, "dept", t0()), t0()).unwrap()).unwrap()).collect();
    assert_eq!(picks, ["a", "b", "a"]);
    // Unanswered by a within 60 s: auto-transferred to b (a is not offered it again).
    r.note_agent_reply(wid(2), &aid("b"), at(10)).unwrap();
    r.note_agent_reply(wid(3), &aid("a"), at(10)).unwrap();
    let ev = r.tick(at(60));
    assert!(ev.contains(&RoutingEvent::Requeued { item: wid(1), agent: aid("a"), reason: RequeueReason::NoReply }));
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Assigned(aid("b")));
    r.note_agent_reply(wid(1), &aid("b"), at(61)).unwrap();
    // b goes offline: after 30 s its chats are forwarded (a has one place left).
    r.set_presence(&aid("b"), "offline", at(100)).unwrap();
    let ev = r.tick(at(130));
    assert_eq!(
        ev.iter().filter(|e| matches!(e, RoutingEvent::Requeued { reason: RequeueReason::AgentOffline, .. })).count(),
        2
    );
    assert_eq!(r.agent(&aid("a")).unwrap().load, 2);
    // Nobody of the department signed in: a new chat goes straight to the fallback department.
    r.set_presence(&aid("a"), "offline", at(140)).unwrap();
    let d = r.submit(chat(9, "dept", at(141)), at(141)).unwrap();
    assert_eq!(assigned_to(&d).as_deref(), Some("f"));
}

/// Dynamics 365 overflow by operating hours: outside the queue's operating hours a new
/// conversation is transferred to another queue before it queues, and the conversations still
/// waiting when the hours end are transferred too (the in-queue overflow after a wait stays a
/// max wait). Amazon Connect's "Check hours of operation" out-of-hours branch to voicemail is
/// the same configuration with `TimeoutAction::Voicemail`.
#[test]
fn dynamics_365_overflow_outside_operating_hours() {
    use chrono::{TimeZone, Utc};
    use touchpoint::routing::calendar::{Calendars, ScheduleConfig};
    let r = router(&["after-hours"]);
    let hours = ScheduleConfig::new("operating-hours", "UTC").hours("Mon-Fri", "08:00", "18:00").build().unwrap();
    r.set_calendars(Calendars::from_schedules([hours]).unwrap());
    r.upsert_queue(
        Queue::new(qid("billing"))
            .with_max_wait(TimeDelta::minutes(30), TimeoutAction::Voicemail)
            .with_hours("operating-hours", TimeoutAction::Overflow(qid("after-hours"))),
    )
    .unwrap();
    let at = |h: u32, m: u32| Utc.with_ymd_and_hms(2026, 3, 2, h, m, 0).unwrap();
    // 17:50: nobody in billing; the conversation waits.
    let d = r.submit(chat(1, "billing", at(17, 50)), at(17, 50)).unwrap();
    assert_eq!(d.outcome, Outcome::Queued(qid("billing")));
    // 18:00: the hours end and it is transferred, before its max wait.
    let events = r.tick(at(18, 0));
    assert!(
        events.iter().any(
            |e| matches!(e, RoutingEvent::Overflowed { item, to, .. } if *item == wid(1) && *to == qid("after-hours"))
        ),
        "{events:?}"
    );
    // 19:00: transferred before it queues.
    let d = r.submit(chat(2, "billing", at(19, 0)), at(19, 0)).unwrap();
    assert_eq!(d.outcome, Outcome::Queued(qid("after-hours")));
    // The after-hours team picks up both, longest waiting first.
    let events = r.upsert_agent(chat_agent("night", "after-hours", 2), at(19, 5)).unwrap();
    assert_eq!(assignments(&events), [(wid(1), "night".to_string()), (wid(2), "night".to_string())]);
}
