//! Agents changing while they hold work: removal, capacity costs, presence through upserts, and
//! the slots and timers of removed agents. Each test states an invariant a host relies on: work
//! is never left with an agent that is gone, and no agent goes over its capacity.

mod routing_common;

use chrono::{DateTime, TimeDelta, Utc};
use routing_common::*;
use std::collections::BTreeMap;
use touchpoint::model::{Attributes, ChannelKind, LanguageTag};
use touchpoint::routing::*;

fn offline_router(grace: TimeDelta) -> Router {
    let r = Router::new(RouterConfig {
        offline: OfflinePolicy { grace, assigned: OfflineAction::Requeue },
        ..RouterConfig::default()
    });
    r.upsert_queue(Queue::new(qid("q"))).unwrap();
    r
}

#[test]
fn removing_an_agent_never_gives_its_work_back_to_it() {
    let r = router(&["q"]);
    r.upsert_agent(chat_agent("ana", "q", 1), t0()).unwrap();
    assert_eq!(assigned_to(&r.submit(chat(1, "q", t0()), t0()).unwrap()).as_deref(), Some("ana"));

    let events = r.remove_agent(&aid("ana"), at(1)).unwrap();
    assert!(
        events.iter().any(|e| matches!(e, RoutingEvent::Requeued { agent, .. } if *agent == aid("ana"))),
        "{events:?}"
    );
    assert!(assignments(&events).is_empty(), "nobody else is there to take it: {events:?}");
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Waiting);

    // The next agent (who takes over the removed one's slot) gets it, really holding it.
    let events = r.upsert_agent(chat_agent("bo", "q", 1), at(2)).unwrap();
    assert_eq!(assignments(&events), vec![(wid(1), "bo".to_owned())]);
    let bo = r.agent(&aid("bo")).unwrap();
    assert_eq!((bo.load, bo.assigned.clone()), (1, vec![wid(1)]));
}

#[test]
fn removing_an_agent_with_an_open_offer_does_not_offer_it_again() {
    let r = Router::new(RouterConfig::default());
    r.upsert_queue(Queue::new(qid("q")).with_offers(OfferPolicy::offers(1, TimeDelta::seconds(20)))).unwrap();
    r.upsert_agent(chat_agent("ana", "q", 1), t0()).unwrap();
    let d = r.submit(chat(1, "q", t0()), t0()).unwrap();
    assert!(matches!(d.outcome, Outcome::Offered(_)), "{d:?}");

    let events = r.remove_agent(&aid("ana"), at(1)).unwrap();
    assert!(!events.iter().any(|e| matches!(e, RoutingEvent::Offered { .. })), "{events:?}");
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Waiting);
}

#[test]
fn a_cost_change_while_holding_work_keeps_the_budget_exact() {
    let r = router(&["q"]);
    let agent = |cost| {
        Agent::new(aid("ana"))
            .with_queue(qid("q"))
            .with_status("online")
            .with_capacity(Capacity::budget(6).with_cost(ChannelKind::WebChat, cost))
    };
    r.upsert_agent(agent(1), t0()).unwrap();
    for n in 1..=2 {
        assert!(assigned_to(&r.submit(chat(n, "q", t0()), t0()).unwrap()).is_some());
    }
    // Chats now cost 3: the two held ones count 6 of the 6, so nothing more fits.
    r.upsert_agent(agent(3), at(1)).unwrap();
    assert_eq!(r.agent(&aid("ana")).unwrap().budget_used, 6);
    r.complete(wid(1), at(2)).unwrap();
    for n in 3..=6 {
        r.submit(chat(n, "q", at(3)), at(3)).unwrap();
    }
    let ana = r.agent(&aid("ana")).unwrap();
    assert_eq!((ana.load, ana.budget_used), (2, 6), "one held and one new chat at cost 3 fill the budget of 6");

    // Cheaper again: the three waiting chats fit too, and each held chat counts 1.
    r.upsert_agent(agent(1), at(4)).unwrap();
    let ana = r.agent(&aid("ana")).unwrap();
    assert_eq!((ana.load, ana.budget_used), (5, 5), "{ana:?}");
    for item in ana.assigned {
        r.complete(item, at(5)).unwrap();
    }
    let ana = r.agent(&aid("ana")).unwrap();
    assert_eq!((ana.load, ana.budget_used), (0, 0), "nothing held, no budget used: {ana:?}");
}

#[test]
fn a_removed_agents_offline_timer_never_hits_the_agent_in_its_slot() {
    let r = offline_router(TimeDelta::minutes(10));
    r.upsert_agent(chat_agent("a", "q", 1), t0()).unwrap();
    r.set_presence(&aid("a"), "offline", t0()).unwrap();
    r.remove_agent(&aid("a"), t0()).unwrap();
    r.upsert_agent(chat_agent("b", "q", 1), t0()).unwrap();
    assert_eq!(assigned_to(&r.submit(chat(1, "q", t0()), t0()).unwrap()).as_deref(), Some("b"));

    r.set_presence(&aid("b"), "offline", t0() + TimeDelta::minutes(9)).unwrap();
    let events = r.tick(t0() + TimeDelta::minutes(11));
    assert!(!events.iter().any(|e| matches!(e, RoutingEvent::Requeued { .. })), "b has 8 minutes left: {events:?}");
    let events = r.tick(t0() + TimeDelta::minutes(19));
    assert!(events.iter().any(|e| matches!(e, RoutingEvent::Requeued { .. })), "b's own grace is over: {events:?}");
}

#[test]
fn an_upsert_into_an_offline_status_follows_the_offline_policy() {
    let r = offline_router(TimeDelta::zero());
    r.upsert_agent(chat_agent("a", "q", 1), t0()).unwrap();
    r.submit(chat(1, "q", t0()), t0()).unwrap();

    let events = r.upsert_agent(chat_agent("a", "q", 1).with_status("offline"), at(1)).unwrap();
    assert!(
        events.iter().any(|e| matches!(e, RoutingEvent::PresenceChanged { agent, status } if *agent == aid("a") && status == "offline")),
        "{events:?}"
    );
    assert!(events.iter().any(|e| matches!(e, RoutingEvent::Requeued { .. })), "{events:?}");
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Waiting);
}

#[test]
fn updating_an_offline_agent_keeps_its_grace_timer() {
    let r = offline_router(TimeDelta::minutes(10));
    r.upsert_agent(chat_agent("a", "q", 1), t0()).unwrap();
    r.submit(chat(1, "q", t0()), t0()).unwrap();
    r.set_presence(&aid("a"), "offline", t0()).unwrap();
    // A skill update while offline is not a presence change.
    r.upsert_agent(chat_agent("a", "q", 1).with_status("offline").with_skill("billing", 3), at(60)).unwrap();
    let events = r.tick(t0() + TimeDelta::minutes(10));
    assert!(events.iter().any(|e| matches!(e, RoutingEvent::Requeued { .. })), "{events:?}");
}

#[test]
fn the_estimated_wait_of_extreme_waits_does_not_overflow() {
    let r = Router::new(RouterConfig::default());
    let mut queue = Queue::new(qid("q"));
    queue.ewt_samples = 10_000;
    r.upsert_queue(queue).unwrap();
    r.upsert_agent(
        Agent::new(aid("ana")).with_queue(qid("q")).with_status("online").with_capacity(Capacity::unlimited()),
        t0(),
    )
    .unwrap();
    let (oldest, latest) = (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
    for n in 1..=600 {
        r.submit(chat(n, "q", oldest), latest).unwrap();
    }
    let stats = r.queue_stats(&qid("q")).unwrap();
    let wait = stats.estimated_wait.expect("600 waits recorded");
    assert!(wait > TimeDelta::days(365 * 100_000), "{wait:?}");
}

#[test]
fn an_item_naming_an_agent_goes_to_that_agent_when_it_is_added_or_added_again() {
    // Named in the pool before the agent exists.
    let r = router(&["s"]);
    r.set_plan(Plan::new([Rule::new("named", [Step::new(Pool::agents([aid("ana")]))])]), t0()).unwrap();
    r.submit(chat(1, "s", t0()), t0()).unwrap();
    let ev = r.upsert_agent(chat_agent("ana", "s", 1), at(5)).unwrap();
    assert_eq!(assignments(&ev), vec![(wid(1), "ana".to_string())]);

    // Preferred, the agent removed and added again.
    let r = router(&["s"]);
    r.upsert_agent(chat_agent("ana", "s", 1).with_status("busy"), t0()).unwrap();
    r.set_plan(Plan::new([Rule::new("named", [Step::new(Pool::preferred())])]), t0()).unwrap();
    r.submit(chat(1, "s", t0()).with_preferred_agent(aid("ana")), t0()).unwrap();
    r.remove_agent(&aid("ana"), at(1)).unwrap();
    let ev = r.upsert_agent(chat_agent("ana", "s", 1), at(5)).unwrap();
    assert_eq!(assignments(&ev), vec![(wid(1), "ana".to_string())]);
}

#[test]
fn setting_the_status_an_agent_already_has_changes_nothing() {
    let r = offline_router(TimeDelta::minutes(10));
    r.upsert_agent(chat_agent("a", "q", 1), t0()).unwrap();
    assert_eq!(r.set_presence(&aid("a"), "online", at(1)).unwrap(), vec![]);
    r.submit(chat(1, "q", t0()), at(2)).unwrap();
    r.set_presence(&aid("a"), "offline", at(3)).unwrap();
    // Offline again: no event, and the grace that began at 3 s still ends 10 min later.
    assert_eq!(r.set_presence(&aid("a"), "offline", at(60)).unwrap(), vec![]);
    let events = r.tick(at(3) + TimeDelta::minutes(10));
    assert!(events.iter().any(|e| matches!(e, RoutingEvent::Requeued { .. })), "{events:?}");
}

#[test]
fn an_agent_who_declined_or_a_bot_that_handed_off_is_not_given_the_item_again_after_being_added_again() {
    let r = router(&[]);
    r.upsert_queue(Queue::new(qid("s")).with_offers(OfferPolicy::offers(1, TimeDelta::seconds(30)))).unwrap();
    r.upsert_agent(chat_agent("ana", "s", 1), t0()).unwrap();
    r.submit(chat(1, "s", t0()), t0()).unwrap();
    r.decline(wid(1), &aid("ana"), at(1)).unwrap();
    r.remove_agent(&aid("ana"), at(2)).unwrap();
    let ev = r.upsert_agent(chat_agent("ana", "s", 1), at(3)).unwrap();
    assert!(!ev.iter().any(|e| matches!(e, RoutingEvent::Offered { .. })), "offered to the decliner again: {ev:?}");

    let r = router(&["s"]);
    r.upsert_agent(Agent::bot(aid("bot")).with_queue(qid("s")), t0()).unwrap();
    r.upsert_agent(chat_agent("ana", "s", 1).with_status("busy"), t0()).unwrap();
    let d = r.submit(chat(1, "s", t0()), t0()).unwrap();
    assert_eq!(assigned_to(&d).as_deref(), Some("bot"));
    r.handoff(wid(1), Default::default(), HandoffMode::Pass, at(1)).unwrap();
    r.remove_agent(&aid("bot"), at(2)).unwrap();
    let ev = r.upsert_agent(Agent::bot(aid("bot")).with_queue(qid("s")), at(3)).unwrap();
    assert!(assignments(&ev).is_empty(), "given back to the bot that handed it off: {ev:?}");
}

// ---------------------------------------------------------------------------------------------
// The idle rule (`Router::set_idle_policy`).
// ---------------------------------------------------------------------------------------------

fn idle_router() -> Router {
    let r = router(&["q"]);
    r.set_idle_policy(Some(IdlePolicy::new(TimeDelta::minutes(15), "away"))).unwrap();
    r
}

fn minutes(m: i64) -> DateTime<Utc> {
    t0() + TimeDelta::minutes(m)
}

fn went_away(events: &[RoutingEvent], name: &str) -> bool {
    events.contains(&RoutingEvent::PresenceChanged { agent: aid(name), status: "away".into() })
}

#[test]
fn an_agent_without_activity_goes_away_keeps_their_work_and_gets_nothing_new() {
    let r = idle_router();
    r.upsert_agent(chat_agent("ana", "q", 2), t0()).unwrap();
    // Being assigned work is not activity.
    assert_eq!(assigned_to(&r.submit(chat(1, "q", minutes(5)), minutes(5)).unwrap()).as_deref(), Some("ana"));
    assert!(r.tick(minutes(15) - TimeDelta::milliseconds(1)).is_empty());
    let events = r.tick(minutes(15));
    assert_eq!(events, [RoutingEvent::PresenceChanged { agent: aid("ana"), status: "away".into() }]);
    assert_eq!(r.agent(&aid("ana")).unwrap().assigned, [wid(1)]);
    let d = r.submit(chat(2, "q", minutes(16)), minutes(16)).unwrap();
    assert_eq!(d.outcome, Outcome::Queued(qid("q")));
    // Back at the desk: online again, she takes the waiting chat, and the clock restarts.
    let events = r.set_presence(&aid("ana"), "online", minutes(20)).unwrap();
    assert_eq!(assignments(&events), [(wid(2), "ana".to_string())]);
    assert!(r.tick(minutes(34)).is_empty());
    assert!(went_away(&r.tick(minutes(35)), "ana"));
}

#[test]
fn every_kind_of_activity_restarts_the_idle_time() {
    let r = idle_router();
    r.upsert_queue(Queue::new(qid("q")).with_offers(OfferPolicy::offers(1, TimeDelta::minutes(30)))).unwrap();
    r.upsert_agent(chat_agent("ana", "q", 3), t0()).unwrap();
    r.submit(chat(1, "q", minutes(1)), minutes(1)).unwrap();
    r.submit(chat(2, "q", minutes(1)), minutes(1)).unwrap();
    // Each call is 14 minutes after the one before: she never idles for 15.
    r.accept(wid(1), &aid("ana"), minutes(14)).unwrap();
    r.decline(wid(2), &aid("ana"), minutes(28)).unwrap();
    r.note_agent_reply(wid(1), &aid("ana"), minutes(42)).unwrap();
    r.note_agent_activity(&aid("ana"), minutes(56)).unwrap();
    r.complete(wid(1), minutes(70)).unwrap();
    r.upsert_agent(chat_agent("ana", "q", 3), minutes(84)).unwrap();
    let quiet: Vec<RoutingEvent> = (1..=98).flat_map(|m| r.tick(minutes(m))).collect();
    assert!(!went_away(&quiet, "ana"), "{quiet:?}");
    assert!(went_away(&r.tick(minutes(99)), "ana"));
}

#[test]
fn agents_already_unavailable_stay_as_they_are_and_removing_the_rule_stops_it() {
    let r = idle_router();
    r.upsert_agent(chat_agent("ana", "q", 1).with_status("busy"), t0()).unwrap();
    r.upsert_agent(chat_agent("bo", "q", 1), t0()).unwrap();
    r.upsert_agent(chat_agent("cy", "q", 1).with_status("offline"), t0()).unwrap();
    let events = r.tick(minutes(15));
    assert_eq!(events, [RoutingEvent::PresenceChanged { agent: aid("bo"), status: "away".into() }]);
    assert_eq!(r.agent(&aid("ana")).unwrap().status, "busy");
    assert_eq!(r.agent(&aid("cy")).unwrap().status, "offline");

    r.set_presence(&aid("bo"), "online", minutes(16)).unwrap();
    r.set_idle_policy(None).unwrap();
    assert!(r.tick(minutes(120)).is_empty());
    // Installing it again counts from the last activity: bo has been idle for over 15 minutes.
    r.set_idle_policy(Some(IdlePolicy::new(TimeDelta::minutes(15), "away"))).unwrap();
    assert!(went_away(&r.tick(minutes(121)), "bo"));
}

#[test]
fn a_bad_idle_rule_is_refused_and_changes_nothing() {
    let r = router(&["q"]);
    for (policy, field) in [
        (IdlePolicy::new(TimeDelta::zero(), "away"), "idle.after"),
        (IdlePolicy::new(TimeDelta::days(401), "away"), "idle.after"),
        (IdlePolicy::new(TimeDelta::minutes(5), "lunch"), "idle.status"),
        (IdlePolicy::new(TimeDelta::minutes(5), "online"), "idle.status"),
    ] {
        let err = r.set_idle_policy(Some(policy.clone())).unwrap_err();
        assert!(matches!(&err, touchpoint::Error::InvalidInput { field: f, .. } if *f == field), "{policy:?}: {err}");
    }
    r.upsert_agent(chat_agent("ana", "q", 1), t0()).unwrap();
    assert!(r.tick(minutes(600)).is_empty(), "no rule was installed");
    assert!(matches!(r.note_agent_activity(&aid("nobody"), t0()), Err(touchpoint::Error::NotFound { .. })));
}

#[test]
fn a_removed_agents_idle_check_does_not_touch_the_agent_taking_its_slot() {
    let r = idle_router();
    r.upsert_agent(chat_agent("ana", "q", 1), t0()).unwrap();
    r.remove_agent(&aid("ana"), minutes(10)).unwrap();
    r.upsert_agent(chat_agent("bo", "q", 1), minutes(10)).unwrap();
    assert!(r.tick(minutes(24)).is_empty(), "ana's check, due at 15, must not take bo away");
    assert!(went_away(&r.tick(minutes(25)), "bo"));
}

#[test]
fn idle_rules_load_from_json() {
    let p: IdlePolicy = serde_json::from_value(serde_json::json!({"after": 900, "status": "away"})).unwrap();
    assert_eq!(p, IdlePolicy::new(TimeDelta::minutes(15), "away"));
}

/// `IdlePolicy::status` is "one of the router's statuses that takes no new work", and the rule
/// exists "so new work stops going to someone who left their desk" (`set_idle_policy` refuses a
/// catalogue status that takes work). An agent that defines its own status of the same name
/// (`Agent::with_custom_status`, here an "away" that still takes e-mail) must not keep receiving
/// new work once the rule has declared it idle.
#[test]
fn an_idle_agent_whose_own_status_shadows_the_idle_status_takes_no_new_work() {
    let r = router(&["q"]);
    r.set_idle_policy(Some(IdlePolicy::new(TimeDelta::minutes(15), "away"))).unwrap();
    let ana = Agent::new(aid("ana"))
        .with_queue(qid("q"))
        .with_capacity(Capacity::per_channel([(ChannelKind::Email, 5)]))
        .with_custom_status("away", PresenceStatus::available(ChannelSet::only([ChannelKind::Email])))
        .with_status("online");
    r.upsert_agent(ana, t0()).unwrap();
    let events = r.tick(minutes(15));
    assert!(!events.is_empty(), "the idle rule did nothing: {events:?}");
    let mail = WorkItem::new(wid(1), ChannelKind::Email, minutes(16)).in_queue(qid("q"));
    let d = r.submit(mail, minutes(16)).unwrap();
    assert_eq!(d.outcome, Outcome::Queued(qid("q")), "idle ana was given new work: {events:?}");
}

/// An idle agent keeps the work they hold, so an offline idle status (whose offline policy
/// could requeue their work) is refused when the rule is installed.
#[test]
fn an_offline_idle_status_is_refused() {
    let r = Router::new(RouterConfig {
        offline: OfflinePolicy { grace: TimeDelta::zero(), assigned: OfflineAction::Requeue },
        ..RouterConfig::default()
    });
    let err = r.set_idle_policy(Some(IdlePolicy::new(TimeDelta::minutes(15), "offline"))).unwrap_err();
    assert!(err.to_string().contains("is offline"), "{err}");
}

/// A bot has no desk to leave; and a bot that works — hands every item it gets over to humans
/// with `Router::handoff`, a router call made for the bot's own work — shows activity ("Activity
/// is every router call made for the agent"). A busy bot must keep receiving new items.
#[test]
fn a_bot_that_keeps_handing_off_is_not_put_away_as_idle() {
    let r = router(&["bots", "humans"]);
    r.set_idle_policy(Some(IdlePolicy::new(TimeDelta::minutes(15), "away"))).unwrap();
    r.upsert_agent(Agent::bot(aid("bot")).with_queue(qid("bots")), t0()).unwrap();
    let mut log = Vec::new();
    for n in 1..=4u128 {
        let m = 5 * n as i64 - 4; // minutes 1, 6, 11, 16
        let d = r.submit(chat(n, "bots", minutes(m)), minutes(m)).unwrap();
        log.extend(d.events.clone());
        assert_eq!(assigned_to(&d).as_deref(), Some("bot"), "item {n} at minute {m} skipped the bot: {log:?}");
        let d = r.handoff(wid(n), Attributes::new(), HandoffMode::Pass, minutes(m)).unwrap();
        log.extend(d.events);
    }
}

/// `set_idle_policy` refuses only "a status … that takes new work". A catalogue status whose
/// channel set is empty (`ChannelSet::only([])`: no channel at all) takes no new work, so it
/// must be accepted as the idle status.
#[test]
fn an_idle_status_with_an_empty_channel_set_is_accepted() {
    let mut config = RouterConfig::default();
    let mut statuses = BTreeMap::new();
    statuses.insert("lunch".to_owned(), PresenceStatus::available(ChannelSet::only([])));
    config.statuses.extend(statuses);
    let r = Router::new(config);
    let got = r.set_idle_policy(Some(IdlePolicy::new(TimeDelta::minutes(15), "lunch")));
    assert!(got.is_ok(), "{got:?}");
}

/// Items with the same skills at the same step share the eligibility computed for earlier
/// ones; what that eligibility was computed from (the agents' profiles, the plan) can change
/// between them, and each later item must see the change.
#[test]
fn items_with_the_same_skills_see_agents_and_plans_that_came_after_the_first_of_them() {
    let r = router(&["q", "vip"]);
    let plan = |pool: Pool| Plan::new([Rule::new("skills", [Step::new(pool).eligible(Term::ItemSkills)])]);
    r.set_plan(plan(Pool::default()), t0()).unwrap();
    r.upsert_agent(chat_agent("ana", "q", 2).with_skill("billing", 5), t0()).unwrap();
    let item = |n: u128, secs: i64| chat(n, "q", at(secs)).with_skill("billing", 5);
    for n in [1, 2] {
        let d = r.submit(item(n, 0), at(0)).unwrap();
        assert_eq!(assigned_to(&d).as_deref(), Some("ana"));
    }
    // A new kind of agent (another profile) after them: the next item reaches her.
    let fr = LanguageTag::parse("fr").unwrap();
    r.upsert_agent(chat_agent("bo", "q", 1).with_skill("billing", 5).with_language(fr), at(1)).unwrap();
    let d = r.submit(item(3, 2), at(2)).unwrap();
    assert_eq!(assigned_to(&d).as_deref(), Some("bo"));
    // Agents of another queue, outside the step's pool: two more items wait (the queue's
    // agents are busy). A plan whose step pool is the other queue replaces the first: the
    // waiting items and the next one with the same skills are routed by the new step.
    r.upsert_agent(chat_agent("cy", "vip", 1).with_skill("billing", 5), at(3)).unwrap();
    r.upsert_agent(chat_agent("dee", "vip", 2).with_skill("billing", 5), at(3)).unwrap();
    for n in [4, 5] {
        let d = r.submit(item(n, 4), at(4)).unwrap();
        assert_eq!(assigned_to(&d), None);
    }
    r.set_plan(plan(Pool::queues([qid("vip")])), at(5)).unwrap();
    assert_eq!(r.item(wid(4)).unwrap().state, ItemState::Assigned(aid("cy")));
    assert_eq!(r.item(wid(5)).unwrap().state, ItemState::Assigned(aid("dee")));
    let d = r.submit(item(6, 6), at(6)).unwrap();
    assert_eq!(assigned_to(&d).as_deref(), Some("dee"));
    // Back to the item's own queue, where everybody is busy: two items wait. Then a plan whose
    // step takes any agent, in the same queue and with the same skills: the same again.
    r.set_plan(plan(Pool::default()), at(7)).unwrap();
    r.upsert_agent(chat_agent("eve", "vip", 3).with_skill("billing", 5), at(7)).unwrap();
    for n in [7, 8] {
        let d = r.submit(item(n, 8), at(8)).unwrap();
        assert_eq!(assigned_to(&d), None, "eve is not in the item's queue: {d:?}");
    }
    r.set_plan(plan(Pool::any()), at(9)).unwrap();
    assert_eq!(r.item(wid(7)).unwrap().state, ItemState::Assigned(aid("eve")));
    assert_eq!(r.item(wid(8)).unwrap().state, ItemState::Assigned(aid("eve")));
    let d = r.submit(item(9, 10), at(10)).unwrap();
    assert_eq!(assigned_to(&d).as_deref(), Some("eve"));
}

/// Items with the same skills in different queues, at a step whose pool is the item's own
/// queue, each reach their own queue's agents, however their arrivals interleave.
#[test]
fn items_with_the_same_skills_in_two_queues_reach_their_own_queues_agents() {
    let r = router(&["q", "vip"]);
    r.set_plan(Plan::new([Rule::new("skills", [Step::new(Pool::default()).eligible(Term::ItemSkills)])]), t0())
        .unwrap();
    r.upsert_agent(chat_agent("ana", "q", 10).with_skill("billing", 5), t0()).unwrap();
    r.upsert_agent(chat_agent("cy", "vip", 10).with_skill("billing", 5), t0()).unwrap();
    for n in 0..8u128 {
        let (queue, agent) = if n % 2 == 0 { ("q", "ana") } else { ("vip", "cy") };
        let d = r.submit(chat(n + 1, queue, at(n as i64)).with_skill("billing", 5), at(n as i64)).unwrap();
        assert_eq!(assigned_to(&d).as_deref(), Some(agent), "item {} in {queue}", n + 1);
    }
}
