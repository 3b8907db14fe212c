//! Review edges of the router: bot handoff, affinity, capacity, and queue hours under a new
//! plan. Each test states behaviour a host relies on.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use touchpoint::model::ChannelKind;
use touchpoint::routing::calendar::*;
use touchpoint::routing::*;

mod routing_common;
use routing_common::*;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

/// Monday 2026-03-02.
fn monday(h: u32, mi: u32) -> DateTime<Utc> {
    utc(2026, 3, 2, h, mi)
}

fn overflowed(events: &[RoutingEvent]) -> Vec<(WorkItemId, String, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            RoutingEvent::Overflowed { item, from, to } => Some((*item, from.to_string(), to.to_string())),
            _ => None,
        })
        .collect()
}

fn timed_out(events: &[RoutingEvent]) -> Vec<WorkItemId> {
    events
        .iter()
        .filter_map(|e| match e {
            RoutingEvent::TimedOut { item, .. } => Some(*item),
            _ => None,
        })
        .collect()
}

/// Bot first, humans after: the plan gives new work to bots and handed-off work to humans.
fn bot_first_plan() -> Plan {
    Plan::new([
        Rule::new("escalated", [Step::new(Pool::queues([qid("s")])).eligible(Term::Bot(false))])
            .when(Term::ItemAttr { key: "intent".into(), test: AttrTest::Exists }),
        Rule::new("bot-first", [Step::new(Pool::queues([qid("s")])).eligible(Term::Bot(true))]),
    ])
}

fn intent() -> touchpoint::model::Attributes {
    serde_json::json!({"intent": "refund"}).as_object().unwrap().clone().into_iter().collect()
}

// ---------------------------------------------------------------------------------------------
// Bots and handoff

/// A customer talks to the bot for five minutes, then asks for a human. The queue's max wait
/// is one minute: the time the bot served the customer is no wait, so the handed-off chat
/// waits for a human (not closed at once as if it had waited five minutes).
#[test]
fn a_handoff_after_a_bot_conversation_longer_than_the_max_wait_waits_for_a_human() {
    let r = router(&[]);
    r.upsert_queue(Queue::new(qid("s")).with_max_wait(TimeDelta::seconds(60), TimeoutAction::Callback)).unwrap();
    r.upsert_agent(Agent::bot(aid("bot")).with_queue(qid("s")), t0()).unwrap();
    r.set_plan(bot_first_plan(), t0()).unwrap();
    assert_eq!(assigned_to(&r.submit(chat(1, "s", t0()), t0()).unwrap()).as_deref(), Some("bot"));
    r.tick(at(120));
    let d = r.handoff(wid(1), intent(), HandoffMode::Pass, at(300)).unwrap();
    assert_eq!(d.outcome, Outcome::Queued(qid("s")), "{:#?}", d.events);
    assert!(timed_out(&d.events).is_empty(), "{:#?}", d.events);
    // The max wait counts from the handoff.
    assert!(timed_out(&r.tick(at(359))).is_empty());
    assert_eq!(timed_out(&r.tick(at(360))), [wid(1)]);
}

/// Offer control: the bot keeps the item (and its capacity) while it is offered to Ana. The
/// bot's status must not list Ana's offer as an offer to the bot (a host shows it as "offered
/// to bot"), and Ana's lists it.
#[test]
fn a_bots_status_does_not_list_the_humans_offer_of_an_item_it_hands_off() {
    let r = router(&[]);
    r.upsert_queue(Queue::new(qid("s")).with_offers(OfferPolicy::offers(1, TimeDelta::seconds(30)))).unwrap();
    r.upsert_agent(Agent::bot(aid("bot")).with_queue(qid("s")), t0()).unwrap();
    r.set_plan(bot_first_plan(), t0()).unwrap();
    r.submit(chat(1, "s", t0()), t0()).unwrap();
    r.accept(wid(1), &aid("bot"), t0()).unwrap();
    r.upsert_agent(chat_agent("ana", "s", 1), at(1)).unwrap();
    let d = r.handoff(wid(1), intent(), HandoffMode::Offer, at(10)).unwrap();
    assert_eq!(d.outcome, Outcome::Offered(vec![aid("ana")]), "{:#?}", d.events);
    let bot = r.agent(&aid("bot")).unwrap();
    assert!(bot.offered.is_empty(), "the offer is ana's, not the bot's: {bot:#?}");
    assert_eq!(bot.load, 1);
    let ana = r.agent(&aid("ana")).unwrap();
    assert_eq!(ana.offered, [wid(1)]);
}

// ---------------------------------------------------------------------------------------------
// Queue hours and set_plan

/// Follow the sun, both queues closed: the chat submitted to `day` at 23:30 was moved to the
/// (closed) night queue by `day`'s after-hours action and waits there for the opening. A new
/// plan must not move it back to `day` to get `day`'s action a second time (one more
/// `Overflowed`), nor restart the night queue's max wait, which counts from 23:30.
#[test]
fn a_new_plan_does_not_move_an_after_hours_item_back_nor_restart_its_max_wait() {
    let r = Router::new(RouterConfig::default());
    r.set_calendars(
        Calendars::from_schedules([
            ScheduleConfig::new("day", "UTC").hours("Mon-Fri", "09:00", "17:00").build().unwrap(),
            ScheduleConfig::new("night", "UTC").hours("Mon-Fri", "17:00", "23:00").build().unwrap(),
        ])
        .unwrap(),
    );
    r.upsert_queue(Queue::new(qid("day"))).unwrap();
    r.upsert_queue(
        Queue::new(qid("night"))
            .with_hours("night", TimeoutAction::Overflow(qid("day")))
            .with_max_wait(TimeDelta::hours(12), TimeoutAction::Callback),
    )
    .unwrap();
    r.upsert_queue(Queue::new(qid("day")).with_hours("day", TimeoutAction::Overflow(qid("night")))).unwrap();
    let d = r.submit(chat(1, "day", monday(23, 30)), monday(23, 30)).unwrap();
    assert_eq!(d.outcome, Outcome::Queued(qid("night")));
    let events = r.set_plan(Plan::new([Rule::new("all", [Step::new(Pool::default())])]), monday(23, 40)).unwrap();
    assert!(overflowed(&events).is_empty(), "{events:#?}");
    assert_eq!(r.item(wid(1)).unwrap().queue, qid("night"));
    // The night queue's max wait still counts from 23:30.
    let events = r.tick(utc(2026, 3, 3, 11, 30));
    assert_eq!(timed_out(&events), [wid(1)], "{events:#?}");
}

// ---------------------------------------------------------------------------------------------
// Capacity

/// Every exit of a parallel offer frees the capacity it reserved: one agent declines, the
/// other lets it expire.
#[test]
fn parallel_offers_free_both_agents_on_decline_and_expiry() {
    let r = router(&[]);
    r.upsert_queue(Queue::new(qid("s")).with_offers(OfferPolicy::offers(2, TimeDelta::seconds(30)))).unwrap();
    r.upsert_agent(chat_agent("ana", "s", 1), t0()).unwrap();
    r.upsert_agent(chat_agent("bo", "s", 1), t0()).unwrap();
    r.submit(chat(1, "s", t0()), t0()).unwrap();
    r.decline(wid(1), &aid("ana"), at(1)).unwrap();
    r.tick(at(30));
    assert_eq!(r.agent(&aid("ana")).unwrap().load, 0);
    assert_eq!(r.agent(&aid("bo")).unwrap().load, 0);
}

/// No agent over capacity: lowering Ana's chat limit from 2 to 1 while she has one chat and
/// one open offer withdraws the offer (not a decline), so accepting it cannot put her at two.
#[test]
fn lowering_capacity_below_the_load_withdraws_open_offers_that_no_longer_fit() {
    // "An agent whose new capacity is below its current load keeps its work and receives
    // nothing new": an open offer is not work yet, and accepting it would put Ana at two chats
    // with a limit of one.
    let r = router(&[]);
    r.upsert_queue(Queue::new(qid("s")).with_offers(OfferPolicy::offers(1, TimeDelta::seconds(30)))).unwrap();
    r.upsert_agent(chat_agent("ana", "s", 2), t0()).unwrap();
    r.submit(chat(1, "s", t0()), t0()).unwrap();
    r.accept(wid(1), &aid("ana"), t0()).unwrap();
    assert_eq!(r.submit(chat(2, "s", t0()), t0()).unwrap().outcome, Outcome::Offered(vec![aid("ana")]));
    let ev = r.upsert_agent(chat_agent("ana", "s", 1), at(1)).unwrap();
    assert!(
        ev.iter().any(
            |e| matches!(e, RoutingEvent::OfferRescinded { item, agent } if *item == wid(2) && *agent == aid("ana"))
        ),
        "{ev:#?}"
    );
    assert_eq!(r.item(wid(2)).unwrap().state, ItemState::Waiting);
    assert!(r.accept(wid(2), &aid("ana"), at(2)).is_err());
    let ana = r.agent(&aid("ana")).unwrap();
    assert_eq!((ana.load, ana.assigned.clone()), (1, vec![wid(1)]));
    // Not a decline: once she is under her limit again the chat is hers.
    let ev = r.complete(wid(1), at(3)).unwrap();
    assert!(ev.iter().any(|e| matches!(e, RoutingEvent::Offered { item, .. } if *item == wid(2))), "{ev:#?}");
}

/// An interruption rule added by an upsert withdraws the open offers it blocks: Ana holds a call
/// and has a chat offered; "no chat during a call" withdraws the chat offer (not a decline),
/// so accepting it cannot break the rule, and she gets the chat once the call ends. An offer
/// on the rule's own channel does not block itself.
#[test]
fn an_interruption_rule_added_by_an_upsert_withdraws_the_offers_it_blocks() {
    let r = router(&[]);
    r.upsert_queue(Queue::new(qid("s")).with_offers(OfferPolicy::offers(1, TimeDelta::seconds(30)))).unwrap();
    let cap = Capacity::per_channel([(ChannelKind::Voice, 1), (ChannelKind::WebChat, 3)]);
    let ana = |cap: Capacity| Agent::new(aid("ana")).with_queue(qid("s")).with_capacity(cap).with_status("online");
    r.upsert_agent(ana(cap.clone()), t0()).unwrap();
    let call = WorkItem::new(wid(1), ChannelKind::Voice, t0()).in_queue(qid("s"));
    assert_eq!(r.submit(call, t0()).unwrap().outcome, Outcome::Offered(vec![aid("ana")]));
    r.accept(wid(1), &aid("ana"), t0()).unwrap();
    assert_eq!(r.submit(chat(2, "s", t0()), t0()).unwrap().outcome, Outcome::Offered(vec![aid("ana")]));
    let ruled = cap
        .with_interruption(ChannelKind::Voice, ChannelSet::only([ChannelKind::WebChat]))
        .with_interruption(ChannelKind::Voice, ChannelSet::only([ChannelKind::Voice]));
    let ev = r.upsert_agent(ana(ruled.clone()), at(1)).unwrap();
    assert!(
        ev.iter().any(
            |e| matches!(e, RoutingEvent::OfferRescinded { item, agent } if *item == wid(2) && *agent == aid("ana"))
        ),
        "{ev:#?}"
    );
    assert_eq!(r.item(wid(2)).unwrap().state, ItemState::Waiting);
    assert!(r.accept(wid(2), &aid("ana"), at(2)).is_err());
    // Not a decline: the end of the call gives her the chat.
    let ev = r.complete(wid(1), at(3)).unwrap();
    assert!(ev.iter().any(|e| matches!(e, RoutingEvent::Offered { item, .. } if *item == wid(2))), "{ev:#?}");
    r.accept(wid(2), &aid("ana"), at(3)).unwrap();
    // A call offered while she has no other call is not withdrawn by the voice-on-voice rule
    // (nor by her chat: no rule blocks calls during chats).
    let call = WorkItem::new(wid(3), ChannelKind::Voice, at(4)).in_queue(qid("s"));
    assert_eq!(r.submit(call, at(4)).unwrap().outcome, Outcome::Offered(vec![aid("ana")]));
    let ev = r.upsert_agent(ana(ruled), at(5)).unwrap();
    assert!(!ev.iter().any(|e| matches!(e, RoutingEvent::OfferRescinded { .. })), "{ev:#?}");
    assert_eq!(r.item(wid(3)).unwrap().state, ItemState::Offered(vec![aid("ana")]));
}

/// Interruption in the freed-capacity direction: a chat waits while a call is offered to the
/// agent (no chat during a call); declining the call gives the agent the chat.
#[test]
fn a_declined_call_frees_the_agent_for_the_chat_it_blocked() {
    let r = router(&[]);
    r.upsert_queue(Queue::new(qid("s")).with_offers(OfferPolicy::offers(1, TimeDelta::seconds(30)))).unwrap();
    let cap = Capacity::per_channel([(ChannelKind::Voice, 1), (ChannelKind::WebChat, 3)])
        .with_interruption(ChannelKind::Voice, ChannelSet::only([ChannelKind::WebChat]));
    r.upsert_agent(Agent::new(aid("a")).with_queue(qid("s")).with_capacity(cap).with_status("online"), t0()).unwrap();
    let call = WorkItem::new(wid(1), ChannelKind::Voice, t0()).in_queue(qid("s"));
    assert_eq!(r.submit(call, t0()).unwrap().outcome, Outcome::Offered(vec![aid("a")]));
    // No chat is offered while a call is offered to the agent.
    assert_eq!(r.submit(chat(2, "s", t0()), t0()).unwrap().outcome, Outcome::Queued(qid("s")));
    let ev = r.decline(wid(1), &aid("a"), at(1)).unwrap();
    assert!(ev.iter().any(|e| matches!(e, RoutingEvent::Offered { item, .. } if *item == wid(2))), "{ev:#?}");
}

// ---------------------------------------------------------------------------------------------
// Affinity

fn affinity_plan() -> Plan {
    Plan::new([Rule::new(
        "owner-first",
        [Step::new(Pool::preferred()).dwell(TimeDelta::seconds(30)), Step::new(Pool::queues([qid("s")]))],
    )])
}

/// The preferred agent is full: the item waits for her for the step's 30 s, and at exactly
/// 30 s after entering the step (the timeout boundary) falls back to the queue.
#[test]
fn a_busy_preferred_agent_falls_back_to_the_queue_exactly_at_the_dwell() {
    let r = router(&["s"]);
    r.upsert_agent(chat_agent("ana", "s", 1), t0()).unwrap();
    r.upsert_agent(chat_agent("bo", "s", 1), t0()).unwrap();
    r.set_plan(affinity_plan(), t0()).unwrap();
    // ana busy with chat 9 (no preference: goes to longest idle => ana?)
    r.submit(chat(9, "s", t0()).with_preferred_agent(aid("ana")), t0()).unwrap();
    let d = r.submit(chat(1, "s", at(1)).with_preferred_agent(aid("ana")), at(1)).unwrap();
    assert_eq!(d.outcome, Outcome::Queued(qid("s")));
    assert!(assignments(&r.tick(at(30))).is_empty());
    let ev = r.tick(at(31));
    assert_eq!(assignments(&ev), [(wid(1), "bo".to_string())], "{ev:#?}");
}

/// A decline excludes the agent for the item in every direction: step timers, sweeps, and
/// the agent becoming available again.
#[test]
fn a_preferred_agent_who_declined_is_never_offered_the_item_again() {
    let r = router(&[]);
    r.upsert_queue(Queue::new(qid("s")).with_offers(OfferPolicy::offers(1, TimeDelta::seconds(10)))).unwrap();
    r.upsert_agent(chat_agent("ana", "s", 2), t0()).unwrap();
    r.set_plan(affinity_plan(), t0()).unwrap();
    let d = r.submit(chat(1, "s", t0()).with_preferred_agent(aid("ana")), t0()).unwrap();
    assert_eq!(d.outcome, Outcome::Offered(vec![aid("ana")]));
    let ev = r.decline(wid(1), &aid("ana"), at(1)).unwrap();
    assert!(!ev.iter().any(|e| matches!(e, RoutingEvent::Offered { .. })), "{ev:#?}");
    let ev = r.tick(at(40));
    assert!(!ev.iter().any(|e| matches!(e, RoutingEvent::Offered { .. })), "{ev:#?}");
    let ev = r.sweep(at(41));
    assert!(!ev.iter().any(|e| matches!(e, RoutingEvent::Offered { .. })), "{ev:#?}");
    let ev = r.set_presence(&aid("ana"), "online", at(42)).unwrap();
    assert!(!ev.iter().any(|e| matches!(e, RoutingEvent::Offered { .. })), "{ev:#?}");
}

/// The preferred agent is removed while the item waits for them: it falls back at the dwell.
#[test]
fn a_removed_preferred_agent_falls_back_to_the_queue() {
    let r = router(&["s"]);
    r.upsert_agent(chat_agent("ana", "s", 1).with_status("busy"), t0()).unwrap();
    r.set_plan(affinity_plan(), t0()).unwrap();
    r.submit(chat(1, "s", t0()).with_preferred_agent(aid("ana")), t0()).unwrap();
    r.remove_agent(&aid("ana"), at(5)).unwrap();
    r.upsert_agent(chat_agent("bo", "s", 1), at(6)).unwrap();
    let ev = r.tick(at(30));
    assert_eq!(assignments(&ev), [(wid(1), "bo".to_string())], "{ev:#?}");
}

/// Freed-agent direction: the preferred agent finishing a chat during the preferred step gets
/// the item, not a busy colleague later.
#[test]
fn a_preferred_agent_freed_during_the_step_gets_the_item() {
    let r = router(&["s"]);
    r.upsert_agent(chat_agent("ana", "s", 1), t0()).unwrap();
    r.set_plan(affinity_plan(), t0()).unwrap();
    r.submit(chat(9, "s", t0()).with_preferred_agent(aid("ana")), t0()).unwrap();
    r.upsert_agent(chat_agent("bo", "s", 1).with_status("busy"), t0()).unwrap();
    r.submit(chat(1, "s", at(1)).with_preferred_agent(aid("ana")), at(1)).unwrap();
    let ev = r.complete(wid(9), at(10)).unwrap();
    assert_eq!(assignments(&ev), [(wid(1), "ana".to_string())], "{ev:#?}");
}

/// `LastAgent::until` is exclusive: at exactly `until` the last agent is no longer preferred.
#[test]
fn a_last_agent_is_not_preferred_at_the_instant_the_preference_ends() {
    let r = router(&["s"]);
    r.upsert_agent(chat_agent("ana", "s", 1).with_status("busy"), t0()).unwrap();
    r.upsert_agent(chat_agent("bo", "s", 1).with_status("busy"), t0()).unwrap();
    let steps = [Step::new(Pool::last_agent()).dwell(TimeDelta::seconds(600)), Step::new(Pool::queues([qid("s")]))];
    r.set_plan(Plan::new([Rule::new("affinity", steps)]), t0()).unwrap();
    r.submit(chat(1, "s", t0()).with_last_agent(aid("ana"), at(60)), t0()).unwrap();
    let ev = r.set_presence(&aid("ana"), "online", at(60)).unwrap();
    assert!(assignments(&ev).is_empty(), "{ev:#?}");
}

/// Offer control: "the bot keeps the item (and its capacity) until a human is assigned". A max
/// wait that moves the item to the backup queue still finds no human: the bot must keep the
/// conversation rather than leave the customer with nobody.
#[test]
fn an_offering_bot_keeps_the_item_when_it_overflows_on_max_wait() {
    let r = router(&["backup"]);
    r.upsert_queue(Queue::new(qid("s")).with_max_wait(TimeDelta::seconds(60), TimeoutAction::Overflow(qid("backup"))))
        .unwrap();
    r.upsert_agent(Agent::bot(aid("bot")).with_queue(qid("s")), t0()).unwrap();
    r.set_plan(bot_first_plan(), t0()).unwrap();
    r.submit(chat(1, "s", t0()), t0()).unwrap();
    r.handoff(wid(1), intent(), HandoffMode::Offer, at(10)).unwrap();
    let ev = r.tick(at(200));
    assert_eq!(overflowed(&ev).len(), 1, "{ev:#?}");
    assert_eq!(r.item(wid(1)).unwrap().control, ItemControl::BotOffering(aid("bot")), "{ev:#?}");
}

/// Same known issue, other path: an item moved by `day`'s after-hours overflow is offered in
/// `night`; a new plan comes; the agent declines and the item comes back. It must stay in
/// `night`, not go back to the closed `day` queue for a second `Overflowed`.
#[test]
fn an_offer_declined_after_a_new_plan_does_not_reapply_the_after_hours_action() {
    let r = Router::new(RouterConfig::default());
    r.set_calendars(
        Calendars::from_schedules([ScheduleConfig::new("day", "UTC")
            .hours("Mon-Fri", "09:00", "17:00")
            .build()
            .unwrap()])
        .unwrap(),
    );
    r.upsert_queue(Queue::new(qid("night")).with_offers(OfferPolicy::offers(1, TimeDelta::seconds(600)))).unwrap();
    r.upsert_queue(Queue::new(qid("day")).with_hours("day", TimeoutAction::Overflow(qid("night")))).unwrap();
    r.upsert_agent(chat_agent("nina", "night", 1), monday(18, 0)).unwrap();
    let d = r.submit(chat(1, "day", monday(18, 0)), monday(18, 0)).unwrap();
    assert_eq!(d.outcome, Outcome::Offered(vec![aid("nina")]));
    r.set_plan(Plan::new([Rule::new("all", [Step::new(Pool::default())])]), monday(18, 1)).unwrap();
    let ev = r.decline(wid(1), &aid("nina"), monday(18, 2)).unwrap();
    assert!(overflowed(&ev).is_empty(), "{ev:#?}");
    assert_eq!(r.item(wid(1)).unwrap().queue, qid("night"));
}

/// The weighted budget too: a chat's cost raised while Ana holds one chat and has one open
/// offer would put her at 120 of 100; the offer is withdrawn and her budget stays within it.
#[test]
fn raising_an_items_cost_over_the_budget_withdraws_the_open_offer() {
    let r = router(&[]);
    r.upsert_queue(Queue::new(qid("s")).with_offers(OfferPolicy::offers(1, TimeDelta::seconds(30)))).unwrap();
    let ana = |cost| {
        Agent::new(aid("ana"))
            .with_queue(qid("s"))
            .with_capacity(Capacity::budget(100).with_cost(ChannelKind::WebChat, cost))
            .with_status("online")
    };
    r.upsert_agent(ana(40), t0()).unwrap();
    r.submit(chat(1, "s", t0()), t0()).unwrap();
    r.accept(wid(1), &aid("ana"), t0()).unwrap();
    assert_eq!(r.submit(chat(2, "s", t0()), t0()).unwrap().outcome, Outcome::Offered(vec![aid("ana")]));
    r.upsert_agent(ana(60), at(1)).unwrap();
    assert!(r.accept(wid(2), &aid("ana"), at(2)).is_err());
    assert_eq!(r.agent(&aid("ana")).unwrap().budget_used, 60);
    assert_eq!(r.item(wid(2)).unwrap().state, ItemState::Waiting);
}

/// Offer control, every other exit: the offering bot's capacity comes back when the item is
/// withdrawn, and when the handed-off item times out in its queue.
#[test]
fn an_offering_bot_is_released_when_the_item_is_withdrawn_or_times_out() {
    let r = router(&[]);
    r.upsert_queue(Queue::new(qid("s")).with_max_wait(TimeDelta::seconds(60), TimeoutAction::Callback)).unwrap();
    r.upsert_agent(Agent::bot(aid("bot")).with_queue(qid("s")), t0()).unwrap();
    r.set_plan(bot_first_plan(), t0()).unwrap();
    r.submit(chat(1, "s", t0()), t0()).unwrap();
    r.submit(chat(2, "s", t0()), t0()).unwrap();
    r.handoff(wid(1), intent(), HandoffMode::Offer, at(10)).unwrap();
    r.handoff(wid(2), intent(), HandoffMode::Offer, at(10)).unwrap();
    assert_eq!(r.agent(&aid("bot")).unwrap().load, 2);
    r.withdraw(wid(1), at(20)).unwrap();
    assert_eq!(r.agent(&aid("bot")).unwrap().load, 1);
    assert_eq!(timed_out(&r.tick(at(70))), [wid(2)]);
    assert_eq!(r.agent(&aid("bot")).unwrap().load, 0);
}

/// "An item that another queue's after-hours action moves into this queue while it is closed
/// too waits here for the opening." Both queues are closed at 18:00; Nina of `night` stayed
/// online, so the chat moved from `day` is offered to her. She declines: the chat must wait in
/// `night` for the opening, not get `night`'s callback as if it had been waiting there at the
/// closing.
#[test]
fn an_item_moved_after_hours_into_a_closed_queue_still_waits_for_the_opening_after_a_decline() {
    let r = Router::new(RouterConfig::default());
    r.set_calendars(
        Calendars::from_schedules([ScheduleConfig::new("day", "UTC")
            .hours("Mon-Fri", "09:00", "17:00")
            .build()
            .unwrap()])
        .unwrap(),
    );
    r.upsert_queue(
        Queue::new(qid("night"))
            .with_hours("day", TimeoutAction::Callback)
            .with_offers(OfferPolicy::offers(1, TimeDelta::seconds(600))),
    )
    .unwrap();
    r.upsert_queue(Queue::new(qid("day")).with_hours("day", TimeoutAction::Overflow(qid("night")))).unwrap();
    r.upsert_agent(chat_agent("nina", "night", 1), monday(18, 0)).unwrap();
    let d = r.submit(chat(1, "day", monday(18, 0)), monday(18, 0)).unwrap();
    assert_eq!(d.outcome, Outcome::Offered(vec![aid("nina")]), "{:#?}", d.events);
    let ev = r.decline(wid(1), &aid("nina"), monday(18, 1)).unwrap();
    assert!(timed_out(&ev).is_empty(), "{ev:#?}");
    assert_eq!(r.item(wid(1)).unwrap().queue, qid("night"));
    // Tuesday: the queues open at 09:00 and close at 17:00 with the chat still there; that
    // closing gives it night's action.
    assert!(timed_out(&r.tick(utc(2026, 3, 3, 16, 59))).is_empty());
    assert_eq!(timed_out(&r.tick(utc(2026, 3, 3, 17, 0))), [wid(1)]);
}

/// An offer made at the instant another one expires runs its full time. Ana and Bo are offered
/// a chat in parallel; at 30 s Ana's offer expires, which is the queue's last allowed decline:
/// the chat overflows to `backup`, where Bo is offered it afresh. That new offer must stay open
/// for backup's 30 s, not be expired at once by the old offer's timer.
#[test]
fn an_offer_made_when_another_expires_is_not_expired_by_the_old_timer() {
    let r = router(&[]);
    r.upsert_queue(Queue::new(qid("backup")).with_offers(OfferPolicy::offers(1, TimeDelta::seconds(30)))).unwrap();
    let mut policy = OfferPolicy::offers(2, TimeDelta::seconds(30));
    policy.max_declines = 1;
    policy.on_max_declines = TimeoutAction::Overflow(qid("backup"));
    r.upsert_queue(Queue::new(qid("s")).with_offers(policy)).unwrap();
    r.upsert_agent(chat_agent("ana", "s", 1), t0()).unwrap();
    r.upsert_agent(chat_agent("bo", "backup", 1), t0()).unwrap();
    r.upsert_agent(chat_agent("bo", "backup", 1).with_queue(qid("s")), t0()).unwrap();
    let d = r.submit(chat(1, "s", t0()), t0()).unwrap();
    assert!(matches!(&d.outcome, Outcome::Offered(v) if v.len() == 2), "{d:#?}");
    let ev = r.tick(at(30));
    assert_eq!(r.item(wid(1)).unwrap().queue, qid("backup"), "{ev:#?}");
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Offered(vec![aid("bo")]), "{ev:#?}");
    assert!(r.accept(wid(1), &aid("bo"), at(31)).is_ok());
}

/// Preferred agents are ordered, best first: in a preferred pool with the default ranker the
/// first preferred agent who can take the item gets it, even when a later one has been idle
/// longer; the next one gets it only while the first cannot take it.
#[test]
fn preferred_agents_are_tried_in_their_order_with_the_default_ranker() {
    let r = router(&["s"]);
    // bo signs in first, so bo has been idle longest.
    r.upsert_agent(chat_agent("bo", "s", 1), t0()).unwrap();
    r.upsert_agent(chat_agent("ana", "s", 1), at(1)).unwrap();
    r.set_plan(affinity_plan(), at(1)).unwrap();
    let d =
        r.submit(chat(1, "s", at(2)).with_preferred_agent(aid("ana")).with_preferred_agent(aid("bo")), at(2)).unwrap();
    assert_eq!(assigned_to(&d).as_deref(), Some("ana"), "{d:#?}");
    // ana is now full: the same preference order gives bo the next item.
    let d =
        r.submit(chat(2, "s", at(3)).with_preferred_agent(aid("ana")).with_preferred_agent(aid("bo")), at(3)).unwrap();
    assert_eq!(assigned_to(&d).as_deref(), Some("bo"), "{d:#?}");
}

/// A step that names its own ranker keeps it: preference order is then one key among others
/// only where the host put `RankKey::Affinity`.
#[test]
fn a_preferred_pool_with_its_own_ranker_ranks_by_it() {
    let r = router(&["s"]);
    r.upsert_agent(chat_agent("bo", "s", 1), t0()).unwrap();
    r.upsert_agent(chat_agent("ana", "s", 1), at(1)).unwrap();
    r.set_plan(
        Plan::new([Rule::new(
            "owner-first",
            [Step::new(Pool::preferred()).ranked(Ranker::new([RankKey::LongestIdle]))],
        )]),
        at(1),
    )
    .unwrap();
    let d =
        r.submit(chat(1, "s", at(2)).with_preferred_agent(aid("ana")).with_preferred_agent(aid("bo")), at(2)).unwrap();
    assert_eq!(assigned_to(&d).as_deref(), Some("bo"), "{d:#?}");
}

/// "No chat during a call" holds in the other order too: a chat is offered to Ana, then a call
/// reaches her (no rule keeps calls from chats). The chat offer is withdrawn when the call is
/// offered, so she can never end up holding both.
#[test]
fn a_call_reaching_an_agent_withdraws_the_chat_offers_its_rule_blocks() {
    let r = router(&[]);
    r.upsert_queue(Queue::new(qid("s")).with_offers(OfferPolicy::offers(1, TimeDelta::seconds(30)))).unwrap();
    let cap = Capacity::per_channel([(ChannelKind::Voice, 1), (ChannelKind::WebChat, 3)])
        .with_interruption(ChannelKind::Voice, ChannelSet::only([ChannelKind::WebChat]));
    r.upsert_agent(Agent::new(aid("ana")).with_queue(qid("s")).with_capacity(cap).with_status("online"), t0()).unwrap();
    assert_eq!(r.submit(chat(1, "s", t0()), t0()).unwrap().outcome, Outcome::Offered(vec![aid("ana")]));
    let call = WorkItem::new(wid(2), ChannelKind::Voice, at(1)).in_queue(qid("s"));
    let d = r.submit(call, at(1)).unwrap();
    assert_eq!(d.outcome, Outcome::Offered(vec![aid("ana")]));
    assert!(
        d.events.iter().any(
            |e| matches!(e, RoutingEvent::OfferRescinded { item, agent } if *item == wid(1) && *agent == aid("ana"))
        ),
        "{:#?}",
        d.events
    );
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Waiting);
    assert!(r.accept(wid(1), &aid("ana"), at(2)).is_err());
    r.accept(wid(2), &aid("ana"), at(2)).unwrap();
    // The call ends: the chat is offered to her again (not a decline).
    let ev = r.complete(wid(2), at(3)).unwrap();
    assert!(ev.iter().any(|e| matches!(e, RoutingEvent::Offered { item, .. } if *item == wid(1))), "{ev:#?}");
}

// ---------------------------------------------------------------------------------------------
// Review s19: interruption rules and return_to_bot

/// Two rules: no chat during a call, no email during a chat. Ana has a chat offered, so an
/// email waits. A call reaches her: the chat offer is withdrawn (first rule), and with no chat
/// left the second rule no longer keeps the email from her (and no rule keeps emails from
/// calls): she gets the email in the same call, not only at her next freed capacity.
#[test]
fn a_withdrawn_interrupted_offer_gives_the_agent_the_work_it_no_longer_blocks() {
    let r = router(&[]);
    r.upsert_queue(Queue::new(qid("s")).with_offers(OfferPolicy::offers(1, TimeDelta::seconds(30)))).unwrap();
    let cap = Capacity::each_channel(1)
        .with_interruption(ChannelKind::Voice, ChannelSet::only([ChannelKind::WebChat]))
        .with_interruption(ChannelKind::WebChat, ChannelSet::only([ChannelKind::Email]));
    r.upsert_agent(Agent::new(aid("ana")).with_queue(qid("s")).with_capacity(cap).with_status("online"), t0()).unwrap();
    assert_eq!(r.submit(chat(1, "s", t0()), t0()).unwrap().outcome, Outcome::Offered(vec![aid("ana")]));
    let email = WorkItem::new(wid(2), ChannelKind::Email, t0()).in_queue(qid("s"));
    assert_eq!(r.submit(email, t0()).unwrap().outcome, Outcome::Queued(qid("s")));
    let call = WorkItem::new(wid(3), ChannelKind::Voice, at(1)).in_queue(qid("s"));
    let d = r.submit(call, at(1)).unwrap();
    assert_eq!(d.outcome, Outcome::Offered(vec![aid("ana")]));
    assert!(
        d.events.iter().any(|e| matches!(e, RoutingEvent::OfferRescinded { item, .. } if *item == wid(1))),
        "{:#?}",
        d.events
    );
    assert_eq!(r.item(wid(2)).unwrap().state, ItemState::Offered(vec![aid("ana")]), "{:#?}", d.events);
}

/// The same with a budget: a chat (cost 3) offered to Ana (budget 4) leaves no room for an
/// email (cost 2); a call (cost 1) withdraws the chat offer (no chat during a call), which
/// frees room for the email.
#[test]
fn a_withdrawn_interrupted_offer_frees_budget_for_waiting_work() {
    let r = router(&[]);
    r.upsert_queue(Queue::new(qid("s")).with_offers(OfferPolicy::offers(1, TimeDelta::seconds(30)))).unwrap();
    let cap = Capacity::budget(4)
        .with_cost(ChannelKind::WebChat, 3)
        .with_cost(ChannelKind::Voice, 1)
        .with_cost(ChannelKind::Email, 2)
        .with_interruption(ChannelKind::Voice, ChannelSet::only([ChannelKind::WebChat]));
    r.upsert_agent(Agent::new(aid("ana")).with_queue(qid("s")).with_capacity(cap).with_status("online"), t0()).unwrap();
    assert_eq!(r.submit(chat(1, "s", t0()), t0()).unwrap().outcome, Outcome::Offered(vec![aid("ana")]));
    let email = WorkItem::new(wid(2), ChannelKind::Email, t0()).in_queue(qid("s"));
    assert_eq!(r.submit(email, t0()).unwrap().outcome, Outcome::Queued(qid("s")));
    let call = WorkItem::new(wid(3), ChannelKind::Voice, at(1)).in_queue(qid("s"));
    let d = r.submit(call, at(1)).unwrap();
    assert_eq!(d.outcome, Outcome::Offered(vec![aid("ana")]));
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Waiting, "{:#?}", d.events);
    assert_eq!(r.item(wid(2)).unwrap().state, ItemState::Offered(vec![aid("ana")]), "{:#?}", d.events);
    assert!(r.agent(&aid("ana")).unwrap().budget_used <= 4);
}

/// A human hands a chat back to a bot: the bot takes it at once, so the queue's estimated
/// wait gets no new sample of the time the item waited for the human earlier.
#[test]
fn returning_an_item_to_a_bot_does_not_count_its_earlier_wait_again() {
    let r = router(&[]);
    r.upsert_queue(Queue::new(qid("s"))).unwrap();
    r.upsert_agent(chat_agent("ana", "s", 1), t0()).unwrap();
    r.upsert_agent(Agent::bot(aid("survey")).with_status("offline"), t0()).unwrap();
    // Item 1 goes to Ana at once (wait 0); item 2 waits ten minutes for her.
    assert_eq!(assigned_to(&r.submit(chat(1, "s", t0()), t0()).unwrap()).as_deref(), Some("ana"));
    r.submit(chat(2, "s", t0()), t0()).unwrap();
    let ev = r.complete(wid(1), at(600)).unwrap();
    assert_eq!(assignments(&ev), [(wid(2), "ana".to_string())]);
    let before = r.queue_stats(&qid("s")).unwrap().estimated_wait.unwrap();
    assert_eq!(before, TimeDelta::seconds(300));
    r.set_presence(&aid("survey"), "online", at(900)).unwrap();
    r.return_to_bot(wid(2), &aid("survey"), Default::default(), at(900)).unwrap();
    let after = r.queue_stats(&qid("s")).unwrap().estimated_wait.unwrap();
    assert_eq!(after, before, "nobody waited for the bot: the estimate keeps its samples");
}

/// Findings merge into the item's attributes, and an item has at most 256 (as `submit`
/// allows): findings that would go past it are refused and change nothing, whether a bot
/// hands off or a human hands back; findings that replace keys the item has already fit.
#[test]
fn findings_that_would_take_an_item_past_256_attributes_are_refused() {
    let r = router(&["s"]);
    r.upsert_agent(Agent::bot(aid("bot")).with_queue(qid("s")), t0()).unwrap();
    let mut item = chat(1, "s", t0());
    for k in 0..200 {
        item = item.with_attribute(format!("a{k}"), k);
    }
    assert_eq!(assigned_to(&r.submit(item, t0()).unwrap()).as_deref(), Some("bot"));
    let findings = |from: usize, n: usize| (from..from + n).map(|k| (format!("a{k}"), serde_json::json!(k))).collect();
    let before = r.item(wid(1)).unwrap();
    let refused = r.handoff(wid(1), findings(200, 57), HandoffMode::Pass, at(1));
    assert!(matches!(refused, Err(touchpoint::Error::InvalidInput { field: "findings", .. })), "{refused:?}");
    assert_eq!(r.item(wid(1)).unwrap(), before, "nothing changed");

    // 56 new ones reach the limit; the human who takes it may then only replace keys.
    r.upsert_agent(chat_agent("ana", "s", 1), at(2)).unwrap();
    let d = r.handoff(wid(1), findings(200, 56), HandoffMode::Pass, at(3)).unwrap();
    assert_eq!(assigned_to(&d).as_deref(), Some("ana"));
    assert_eq!(r.item(wid(1)).unwrap().item.attributes.len(), 256);
    let refused = r.return_to_bot(wid(1), &aid("bot"), findings(256, 1), at(4));
    assert!(matches!(refused, Err(touchpoint::Error::InvalidInput { field: "findings", .. })), "{refused:?}");
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Assigned(aid("ana")));
    r.return_to_bot(wid(1), &aid("bot"), findings(0, 10), at(5)).unwrap();
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Assigned(aid("bot")));
}

// ---------------------------------------------------------------------------------------------
// A queue changed while items wait or are assigned in it.

fn requeued(events: &[RoutingEvent]) -> Vec<WorkItemId> {
    events
        .iter()
        .filter_map(|e| match e {
            RoutingEvent::Requeued { item, reason: RequeueReason::NoReply, .. } => Some(*item),
            _ => None,
        })
        .collect()
}

fn support(max_wait: Option<i64>) -> Queue {
    let q = Queue::new(qid("support"));
    match max_wait {
        Some(m) => q.with_max_wait(TimeDelta::minutes(m), TimeoutAction::Callback),
        None => q,
    }
}

/// A max wait lengthened or removed lets the items already waiting wait on; one added or
/// shortened ends their wait at their entry plus the new value.
#[test]
fn a_changed_max_wait_holds_for_the_items_already_waiting() {
    let r = router(&[]);
    r.upsert_queue(support(Some(1))).unwrap();
    r.submit(chat(1, "support", t0()), t0()).unwrap();
    r.upsert_queue(support(Some(60))).unwrap();
    assert!(timed_out(&r.tick(t0() + TimeDelta::minutes(1))).is_empty(), "lengthened: no time-out at the old end");
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Waiting);
    assert_eq!(timed_out(&r.tick(t0() + TimeDelta::minutes(60))), [wid(1)], "at the new end");

    r.submit(chat(2, "support", at(3_600)), at(3_600)).unwrap();
    r.upsert_queue(support(None)).unwrap();
    assert!(timed_out(&r.tick(at(3_600) + TimeDelta::minutes(61))).is_empty(), "removed: no time-out");
    assert_eq!(r.item(wid(2)).unwrap().state, ItemState::Waiting);

    // Added (and shortened) while item 2 waits: it times out at its entry plus the new value.
    let now = at(3_600) + TimeDelta::minutes(61);
    r.upsert_queue(support(Some(90))).unwrap();
    r.upsert_queue(support(Some(70))).unwrap();
    assert!(timed_out(&r.tick(at(3_600) + TimeDelta::minutes(69))).is_empty());
    assert_eq!(timed_out(&r.tick(at(3_600) + TimeDelta::minutes(70))), [wid(2)]);
    assert!(r.item(wid(2)).is_none());
    assert!(timed_out(&r.tick(now + TimeDelta::minutes(120))).is_empty(), "once only");
}

/// A no-reply rule removed or lengthened holds for work assigned before the change.
#[test]
fn a_removed_or_lengthened_no_reply_rule_holds_for_work_already_assigned() {
    let r = router(&[]);
    r.upsert_queue(support(None).with_no_reply(TimeDelta::minutes(5))).unwrap();
    r.upsert_agent(chat_agent("ana", "support", 2), t0()).unwrap();
    r.submit(chat(1, "support", t0()), t0()).unwrap();
    r.upsert_queue(support(None).with_no_reply(TimeDelta::minutes(30))).unwrap();
    assert!(requeued(&r.tick(t0() + TimeDelta::minutes(5))).is_empty(), "lengthened: not at the old end");
    assert_eq!(requeued(&r.tick(t0() + TimeDelta::minutes(30))), [wid(1)], "at the new end");

    r.submit(chat(2, "support", at(3_600)), at(3_600)).unwrap();
    assert_eq!(r.item(wid(2)).unwrap().state, ItemState::Assigned(aid("ana")));
    r.upsert_queue(support(None)).unwrap();
    assert!(requeued(&r.tick(at(3_600) + TimeDelta::minutes(31))).is_empty(), "removed: no requeue");
    assert_eq!(r.item(wid(2)).unwrap().state, ItemState::Assigned(aid("ana")));
}

/// An item a custom policy holds back is not given to an agent its plan names when that agent
/// frees up: the policy decides.
#[test]
fn a_policy_that_waits_is_not_bypassed_by_an_agent_the_plan_names() {
    #[derive(Debug)]
    struct Hold;
    impl RoutingPolicy for Hold {
        fn route(&self, _: &WorkItem, _: &[AgentView<'_>]) -> PolicyChoice {
            PolicyChoice::Wait
        }
    }
    let r = router(&["support"]);
    r.upsert_agent(chat_agent("ana", "support", 1), t0()).unwrap();
    r.set_plan(Plan::new([Rule::new("named", [Step::new(Pool::agents([aid("ana")]))])]), t0()).unwrap();
    r.set_policy(Some(std::sync::Arc::new(Hold)));
    let d = r.submit(chat(1, "support", t0()), t0()).unwrap();
    assert!(matches!(d.outcome, Outcome::Queued(_)), "{d:?}");
    // Ana is freed (a status change to the same status counts as one).
    let events = r.set_presence(&aid("ana"), "online", at(1)).unwrap();
    assert!(assignments(&events).is_empty(), "{events:?}");
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Waiting);
}

/// A policy that held an item back and then hands it to the plan (`UsePlan`) while the agent
/// the plan finds is busy: that agent takes it once free, whether the plan names them or
/// finds them among the queue's members.
#[test]
fn an_item_a_policy_hands_back_goes_to_the_plans_agent_once_free() {
    use std::sync::atomic::{AtomicBool, Ordering};
    #[derive(Debug)]
    struct Later(AtomicBool);
    impl RoutingPolicy for Later {
        fn route(&self, _: &WorkItem, _: &[AgentView<'_>]) -> PolicyChoice {
            if self.0.load(Ordering::SeqCst) { PolicyChoice::UsePlan } else { PolicyChoice::Wait }
        }
    }
    let named = Plan::new([Rule::new("named", [Step::new(Pool::agents([aid("ana")]))])]);
    let members = Plan::new([Rule::new("members", [Step::new(Pool::queues([qid("support")]))])]);
    for plan in [named, members] {
        let r = router(&["support"]);
        r.upsert_agent(chat_agent("ana", "support", 1), t0()).unwrap();
        r.set_plan(plan, t0()).unwrap();
        let busy = r.submit(chat(1, "support", t0()), t0()).unwrap();
        assert_eq!(assigned_to(&busy).as_deref(), Some("ana"));
        let policy = std::sync::Arc::new(Later(AtomicBool::new(false)));
        r.set_policy(Some(policy.clone()));
        r.submit(chat(2, "support", at(1)), at(1)).unwrap();
        policy.0.store(true, Ordering::SeqCst);
        r.sweep(at(2));
        assert_eq!(r.item(wid(2)).unwrap().state, ItemState::Waiting, "ana is busy");
        let events = r.complete(wid(1), at(3)).unwrap();
        assert_eq!(assignments(&events), [(wid(2), "ana".to_owned())]);
    }
}

/// A queue's max wait that runs out while the host is asked to decide closes the request
/// with `DecisionExpired` (a late answer is refused) before the item overflows.
#[test]
fn max_wait_while_the_host_decides_closes_the_request_with_an_event() {
    let r = router(&["overflow"]);
    r.upsert_queue(
        Queue::new(qid("support")).with_max_wait(TimeDelta::seconds(60), TimeoutAction::Overflow(qid("overflow"))),
    )
    .unwrap();
    r.upsert_agent(chat_agent("ana", "support", 1), t0()).unwrap();
    let hook = DecisionHook::new(TimeDelta::seconds(600));
    r.set_plan(Plan::new([Rule::new("ask", [Step::new(Pool::queues([qid("support")])).decided_by_host(hook)])]), t0())
        .unwrap();
    let d = r.submit(chat(1, "support", t0()), t0()).unwrap();
    let Outcome::AwaitingDecision { request, .. } = d.outcome else { panic!("{d:?}") };
    let events = r.tick(at(60));
    let expired =
        events.iter().position(|e| matches!(e, RoutingEvent::DecisionExpired { request: r, .. } if *r == request));
    let overflowed = events.iter().position(|e| matches!(e, RoutingEvent::Overflowed { .. }));
    assert!(expired.is_some() && expired < overflowed, "{events:#?}");
    let late = r.resolve_decision(wid(1), request, PolicyChoice::Agents(vec![aid("ana")]), at(61));
    assert!(matches!(late, Err(touchpoint::Error::Refused(_))), "{late:?}");
}

/// `decision` names the rule the item was routed by, also after a new plan was set.
#[test]
fn the_decision_names_the_rule_of_the_plan_the_item_was_routed_by() {
    let r = router(&["support"]);
    r.upsert_agent(chat_agent("ana", "support", 1), t0()).unwrap();
    r.set_plan(Plan::new([Rule::new("first", [Step::new(Pool::default())])]), t0()).unwrap();
    r.submit(chat(1, "support", t0()), t0()).unwrap();
    r.set_plan(
        Plan::new([
            Rule::new("vip", [Step::new(Pool::default())]).when(Term::PriorityAtLeast(5)),
            Rule::new("second", [Step::new(Pool::default())]),
        ]),
        at(1),
    )
    .unwrap();
    assert_eq!(r.item(wid(1)).unwrap().rule.as_deref(), Some("first"));
    assert_eq!(r.decision(wid(1), at(2)).unwrap().rule.as_deref(), Some("first"));
}

/// An agent updated without the schedule that kept them off shift is on shift now: a
/// `ShiftChanged` event says so, naming the schedule they no longer have.
#[test]
fn removing_an_off_shift_agents_schedule_is_a_shift_change() {
    let saturday = utc(2026, 3, 7, 10, 0);
    let r = router(&["support"]);
    r.set_calendars(
        Calendars::from_schedules([ScheduleConfig::new("week", "UTC")
            .hours("Mon-Fri", "09:00", "17:00")
            .build()
            .unwrap()])
        .unwrap(),
    );
    r.upsert_agent(chat_agent("ana", "support", 1).with_schedule("week"), saturday).unwrap();
    let events = r.upsert_agent(chat_agent("ana", "support", 1), saturday).unwrap();
    assert!(
        events.contains(&RoutingEvent::ShiftChanged { agent: aid("ana"), schedule: "week".into(), on_shift: true }),
        "{events:?}"
    );
    let d = r.submit(chat(1, "support", saturday), saturday).unwrap();
    assert_eq!(assigned_to(&d).as_deref(), Some("ana"));
}

/// A queue's bucket conditions have the size limits of plan conditions.
#[test]
fn an_oversized_bucket_condition_is_refused() {
    let r = router(&[]);
    let big = Term::ItemAttr { key: "k".into(), test: AttrTest::In((0..5_000).map(|n: i64| n.into()).collect()) };
    let q = Queue::new(qid("q")).with_discipline(Discipline::Buckets(vec![big]));
    let e = r.upsert_queue(q).unwrap_err();
    assert!(e.to_string().contains("buckets[0]"), "{e}");
    assert!(r.queue_stats(&qid("q")).is_err(), "nothing stored");
}

/// A plan is checked whole before anything happens: a `queue` term naming a queue the router
/// does not hold is refused with its path, and a refused plan fires no timers (the item due to
/// move on at that moment stays where it is until the next call).
#[test]
fn a_refused_plan_changes_nothing_and_names_an_unknown_queue_term() {
    let r = router(&["support"]);
    let two_steps = Plan::new([Rule::new(
        "r",
        [Step::new(Pool::default()).dwell(TimeDelta::seconds(10)), Step::new(Pool::default())],
    )]);
    r.set_plan(two_steps, t0()).unwrap();
    r.submit(chat(1, "support", t0()), t0()).unwrap();
    assert_eq!(r.item(wid(1)).unwrap().step, Some(0));
    let typo = Plan::new([Rule::new("r", [Step::new(Pool::default()).eligible(Term::Queue(qid("suport")))])]);
    let e = r.set_plan(typo, at(10)).unwrap_err();
    assert!(e.to_string().contains("rules[0].steps[0].eligibility: unknown queue"), "{e}");
    assert_eq!(r.item(wid(1)).unwrap().step, Some(0), "no timer fired");
    // The next call fires the due step.
    let events = r.tick(at(10));
    assert!(events.iter().any(|e| matches!(e, RoutingEvent::StepEntered { .. })), "{events:?}");
    assert_eq!(r.item(wid(1)).unwrap().step, Some(1));
}

/// Attribute terms compare numbers by value, as expressions do: `2` and `2.0` are equal
/// (attributes that went through JSON in another program often come back as floats).
#[test]
fn attribute_terms_compare_numbers_by_value() {
    let item = chat(1, "support", t0()).with_attribute("level", 2.0).with_attribute("tier", "gold");
    assert!(Term::item_attr_equals("level", 2).matches_item(&item));
    assert!(!Term::item_attr_equals("level", 3).matches_item(&item));
    let listed = Term::ItemAttr { key: "level".into(), test: AttrTest::In(vec![1.into(), 2.into()]) };
    assert!(listed.matches_item(&item));
    assert!(!Term::item_attr_equals("tier", "Gold").matches_item(&item), "strings stay exact");
    // Unsigned integers above i64::MAX (64-bit hashes, ids) are told apart exactly too.
    let hashed = chat(3, "support", t0()).with_attribute("account", u64::MAX);
    assert!(Term::item_attr_equals("account", u64::MAX).matches_item(&hashed));
    assert!(!Term::item_attr_equals("account", u64::MAX - 1).matches_item(&hashed), "distinct u64s judged equal");
    let near = Term::ItemAttr { key: "account".into(), test: AttrTest::In(vec![(u64::MAX - 1).into()]) };
    assert!(!near.matches_item(&hashed), "a distinct u64 found in the list");
    // The agent side, and an agent attribute matched against the item's.
    let r = router(&["support"]);
    r.upsert_agent(chat_agent("ana", "support", 2).with_attribute("level", 2), t0()).unwrap();
    r.set_plan(
        Plan::new([
            Rule::new(
                "same",
                [Step::new(Pool::default()).eligible(Term::SameAttr { agent: "level".into(), item: "level".into() })],
            )
            .when(Term::item_attr_equals("tier", "gold")),
            Rule::new("by value", [Step::new(Pool::default()).eligible(Term::agent_attr_equals("level", 2.0))]),
        ]),
        t0(),
    )
    .unwrap();
    assert_eq!(assigned_to(&r.submit(item, t0()).unwrap()).as_deref(), Some("ana"));
    assert_eq!(assigned_to(&r.submit(chat(2, "support", t0()), t0()).unwrap()).as_deref(), Some("ana"));
}

/// An overflow after too many declines is checked like the others: into an unknown queue it is
/// `NotFound`, into the queue itself `InvalidInput`, and nothing changes (an item used to be
/// closed at its last decline instead of moving on).
#[test]
fn an_overflow_on_max_declines_is_checked_like_the_other_overflows() {
    let r = router(&[]);
    let policy = |to: &str| {
        let mut p = OfferPolicy::offers(1, TimeDelta::seconds(30));
        p.max_declines = 1;
        p.on_max_declines = TimeoutAction::Overflow(qid(to));
        p
    };
    let unknown = r.upsert_queue(Queue::new(qid("s")).with_offers(policy("backup")));
    assert!(matches!(unknown, Err(touchpoint::Error::NotFound { .. })), "{unknown:?}");
    let itself = r.upsert_queue(Queue::new(qid("s")).with_offers(policy("s")));
    assert!(matches!(itself, Err(touchpoint::Error::InvalidInput { .. })), "{itself:?}");
    assert!(r.queue_stats(&qid("s")).is_err(), "nothing changed");
    // With the target there, the last decline moves the item on.
    r.upsert_queue(Queue::new(qid("backup"))).unwrap();
    r.upsert_queue(Queue::new(qid("s")).with_offers(policy("backup"))).unwrap();
    r.upsert_agent(chat_agent("ana", "s", 1), t0()).unwrap();
    r.submit(chat(1, "s", t0()), t0()).unwrap();
    let ev = r.decline(wid(1), &aid("ana"), at(1)).unwrap();
    assert!(ev.iter().any(|e| matches!(e, RoutingEvent::Overflowed { to, .. } if *to == qid("backup"))), "{ev:?}");
}

/// However many different member delays a queue has, each delay's end is a timer: the item
/// reaches the member whose delay ends seventeenth without a sweep.
#[test]
fn a_member_delay_ends_with_a_retry_however_many_delays_the_queue_has() {
    let member = |name: &str, delay: i64, status: &str| {
        Agent::new(aid(name))
            .with_membership(QueueMembership { queue: qid("s"), priority: 1, delay: TimeDelta::seconds(delay) })
            .with_capacity(Capacity::per_channel([(ChannelKind::WebChat, 1)]))
            .with_status(status)
    };
    let r = router(&["s"]);
    for k in 1..=16 {
        r.upsert_agent(member(&format!("off{k}"), k, "offline"), t0()).unwrap();
    }
    r.upsert_agent(member("ana", 17, "online"), t0()).unwrap();
    assert_eq!(r.submit(chat(1, "s", t0()), t0()).unwrap().outcome, Outcome::Queued(qid("s")));
    for s in 1..=16 {
        r.tick(at(s));
    }
    assert!(r.next_timer().is_some_and(|t| t <= at(17)), "next_timer {:?}", r.next_timer());
    r.tick(at(17));
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Assigned(aid("ana")));
}
