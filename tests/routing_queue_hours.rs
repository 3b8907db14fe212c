//! Queue hours (`Queue::hours`): what happens to work nobody takes while a queue is closed —
//! the closing's sweep, work arriving while closed, after-hours overflows between queues
//! (follow-the-sun), late ticks, and the refusals of bad configurations.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use touchpoint::Error;
use touchpoint::routing::calendar::*;
use touchpoint::routing::*;

mod routing_common;
use routing_common::*;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

fn secs(t: DateTime<Utc>, s: i64) -> DateTime<Utc> {
    t + Duration::seconds(s)
}

/// Monday 2026-03-02.
fn monday(h: u32, mi: u32) -> DateTime<Utc> {
    utc(2026, 3, 2, h, mi)
}

/// `day`: Mon–Fri 09:00–17:00; `late`: Mon–Fri 08:00–20:00; `ten`: Mon–Fri 10:00–17:00;
/// `night`: Mon–Fri 17:00–23:00 (all UTC).
fn four_schedules_router() -> Router {
    let r = Router::new(RouterConfig::default());
    r.set_calendars(
        Calendars::from_schedules([
            ScheduleConfig::new("day", "UTC").hours("Mon-Fri", "09:00", "17:00").build().unwrap(),
            ScheduleConfig::new("late", "UTC").hours("Mon-Fri", "08:00", "20:00").build().unwrap(),
            ScheduleConfig::new("ten", "UTC").hours("Mon-Fri", "10:00", "17:00").build().unwrap(),
            ScheduleConfig::new("night", "UTC").hours("Mon-Fri", "17:00", "23:00").build().unwrap(),
        ])
        .unwrap(),
    );
    r
}

/// Items offered or assigned are not touched by a queue's closing (QueueHours doc), and the
/// closing applies the after-hours action once to each waiting item. Two chats wait in `a`;
/// Nina, of the overflow queue `b` (open until 20:00), signs in at 16:30. At 17:00 `a` closes:
/// both chats overflow to `b`, Nina takes them — and must keep them, not see them taken back
/// and turned into `b`'s callback.
#[test]
fn the_closing_moves_each_waiting_item_once_and_does_not_take_back_its_new_assignment() {
    let r = four_schedules_router();
    r.upsert_queue(Queue::new(qid("b")).with_hours("late", TimeoutAction::Callback)).unwrap();
    r.upsert_queue(Queue::new(qid("a")).with_hours("day", TimeoutAction::Overflow(qid("b")))).unwrap();
    r.submit(chat(1, "a", monday(16, 0)), monday(16, 0)).unwrap();
    r.submit(chat(2, "a", monday(16, 1)), monday(16, 1)).unwrap();
    r.upsert_agent(chat_agent("nina", "b", 5), monday(16, 30)).unwrap();
    let events = r.tick(monday(17, 0));
    assert!(timed_out(&events).is_empty(), "b is open: no callback: {events:#?}");
    assert_eq!(r.agent(&aid("nina")).unwrap().assigned, [wid(1), wid(2)], "{events:#?}");
}

/// Same trigger, no agent in `b`: an agent of an unrelated queue is added while two chats wait
/// in `a`. At 17:00 the chats overflow to `b` (open until 20:00) and must wait there, not get
/// `b`'s after-hours callback.
#[test]
fn the_closing_does_not_apply_the_target_queues_action_to_moved_items_while_it_is_open() {
    let r = four_schedules_router();
    r.upsert_queue(Queue::new(qid("sales"))).unwrap();
    r.upsert_queue(Queue::new(qid("b")).with_hours("late", TimeoutAction::Callback)).unwrap();
    r.upsert_queue(Queue::new(qid("a")).with_hours("day", TimeoutAction::Overflow(qid("b")))).unwrap();
    r.submit(chat(1, "a", monday(16, 0)), monday(16, 0)).unwrap();
    r.submit(chat(2, "a", monday(16, 1)), monday(16, 1)).unwrap();
    r.upsert_agent(chat_agent("sam", "sales", 1), monday(16, 30)).unwrap();
    let events = r.tick(monday(17, 0));
    assert!(timed_out(&events).is_empty(), "{events:#?}");
    assert_eq!(r.item(wid(1)).map(|s| s.queue), Some(qid("b")));
    assert_eq!(r.item(wid(2)).map(|s| s.queue), Some(qid("b")));
}

/// "An item that another queue's after-hours action moves into this queue while it is closed
/// too waits here for the opening." `a` (09:00–17:00) overflows to `b` (10:00–17:00) after
/// hours: at 17:00 both close, and the chat moved from `a` must wait in `b` — not get `b`'s
/// callback, whatever order the two queues' timers fire in.
#[test]
fn two_queues_closing_at_the_same_instant_the_moved_item_waits_for_the_opening() {
    let r = four_schedules_router();
    r.upsert_queue(Queue::new(qid("b")).with_hours("ten", TimeoutAction::Callback)).unwrap();
    r.upsert_queue(Queue::new(qid("a")).with_hours("day", TimeoutAction::Overflow(qid("b")))).unwrap();
    // The host ticks through the day.
    for h in [8, 9, 10, 11] {
        r.tick(monday(h, 0));
    }
    r.submit(chat(1, "a", monday(16, 0)), monday(16, 0)).unwrap();
    let events = r.tick(monday(17, 0));
    assert!(timed_out(&events).is_empty(), "{events:#?}");
    assert_eq!(r.item(wid(1)).map(|s| s.queue), Some(qid("b")), "{events:#?}");
}

/// Same instant, other cause of the order: hours added to the overflow target `b` after `a`
/// was set up. The moved chat must wait in `b` as when `b` had its hours first.
#[test]
fn hours_added_to_the_target_later_still_let_the_moved_item_wait_for_the_opening() {
    let r = four_schedules_router();
    r.upsert_queue(Queue::new(qid("b"))).unwrap();
    r.upsert_queue(Queue::new(qid("a")).with_hours("day", TimeoutAction::Overflow(qid("b")))).unwrap();
    r.upsert_queue(Queue::new(qid("b")).with_hours("day", TimeoutAction::Callback)).unwrap();
    r.submit(chat(1, "a", monday(16, 0)), monday(16, 0)).unwrap();
    let events = r.tick(monday(17, 0));
    assert!(timed_out(&events).is_empty(), "{events:#?}");
    assert_eq!(r.item(wid(1)).map(|s| s.queue), Some(qid("b")));
}

/// Same rule on a late tick ("the hours are judged at the call's `now`"): `a` closes at
/// 17:00 into `b`, which closes at 18:00. A tick that comes only at 18:30 finds both closed:
/// the chat moved from `a` must wait in `b` for the opening, not get `b`'s callback.
#[test]
fn a_late_tick_past_both_closings_lets_the_moved_item_wait_in_the_closed_target() {
    let r = Router::new(RouterConfig::default());
    r.set_calendars(
        Calendars::from_schedules([
            ScheduleConfig::new("day", "UTC").hours("Mon-Fri", "09:00", "17:00").build().unwrap(),
            ScheduleConfig::new("eighteen", "UTC").hours("Mon-Fri", "09:00", "18:00").build().unwrap(),
        ])
        .unwrap(),
    );
    r.upsert_queue(Queue::new(qid("b")).with_hours("eighteen", TimeoutAction::Callback)).unwrap();
    r.upsert_queue(Queue::new(qid("a")).with_hours("day", TimeoutAction::Overflow(qid("b")))).unwrap();
    r.submit(chat(1, "a", monday(16, 0)), monday(16, 0)).unwrap();
    let events = r.tick(monday(18, 30));
    assert!(timed_out(&events).is_empty(), "{events:#?}");
    assert_eq!(r.item(wid(1)).map(|s| s.queue), Some(qid("b")));
}

/// "Every item waiting in the queue at the instant the schedule closes (a timer, so at that
/// instant on a tick or any later call)". The night queue's chat waits in the (closed) day
/// queue from Monday 23:00; Tuesday the day queue opens at 09:00 and closes at 17:00 with the
/// chat still waiting. A call at 17:30 — later than that close — must give it the day queue's
/// action (overflow back to the now open night queue), not leave it in the closed day queue
/// until Wednesday.
#[test]
fn a_late_call_after_a_whole_open_period_still_applies_the_close() {
    let r = four_schedules_router();
    r.upsert_queue(Queue::new(qid("day"))).unwrap();
    r.upsert_queue(Queue::new(qid("night")).with_hours("night", TimeoutAction::Overflow(qid("day")))).unwrap();
    r.upsert_queue(Queue::new(qid("day")).with_hours("day", TimeoutAction::Overflow(qid("night")))).unwrap();
    r.submit(chat(1, "night", monday(22, 0)), monday(22, 0)).unwrap();
    r.tick(monday(23, 0));
    assert_eq!(r.item(wid(1)).unwrap().queue, qid("day"));
    // No call during Tuesday's opening hours; the next comes at 17:30.
    let events = r.tick(utc(2026, 3, 3, 17, 30));
    assert_eq!(r.item(wid(1)).unwrap().queue, qid("night"), "{events:#?}");
}

/// The D365 system test's promise: outside operating hours a new conversation "is transferred
/// to another queue before it queues". A host that tells the customer "you are queued in
/// support" on `RoutingEvent::Queued` must not get a `Queued` for the closed queue.
#[test]
fn a_chat_submitted_after_hours_is_not_announced_as_queued_in_the_closed_queue() {
    let r = four_schedules_router();
    r.upsert_queue(Queue::new(qid("night"))).unwrap();
    r.upsert_queue(Queue::new(qid("support")).with_hours("day", TimeoutAction::Overflow(qid("night")))).unwrap();
    let d = r.submit(chat(1, "support", monday(18, 0)), monday(18, 0)).unwrap();
    assert_eq!(d.outcome, Outcome::Queued(qid("night")));
    let queued_in_support =
        d.events.iter().any(|e| matches!(e, RoutingEvent::Queued { queue, .. } if *queue == qid("support")));
    assert!(!queued_in_support, "{:#?}", d.events);
}

/// `day`: Mon–Fri 09:00–17:00 UTC; `night`: Mon–Fri 17:00–23:00 UTC.
fn calendars() -> Calendars {
    Calendars::from_schedules([
        ScheduleConfig::new("day", "UTC").hours("Mon-Fri", "09:00", "17:00").build().unwrap(),
        ScheduleConfig::new("night", "UTC").hours("Mon-Fri", "17:00", "23:00").build().unwrap(),
    ])
    .unwrap()
}

fn hours_router() -> Router {
    let r = Router::new(RouterConfig::default());
    r.set_calendars(calendars());
    r
}

fn timed_out(events: &[RoutingEvent]) -> Vec<(WorkItemId, TimeoutAction, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            RoutingEvent::TimedOut { item, action, reason } => Some((*item, action.clone(), reason.clone())),
            _ => None,
        })
        .collect()
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

#[test]
fn items_waiting_when_the_queue_closes_get_the_action_and_assigned_work_stays() {
    let r = hours_router();
    r.upsert_queue(Queue::new(qid("support")).with_hours("day", TimeoutAction::Callback)).unwrap();
    r.upsert_agent(chat_agent("ana", "support", 1), monday(15, 0)).unwrap();
    let held = r.submit(chat(1, "support", monday(15, 0)), monday(15, 0)).unwrap();
    assert_eq!(assigned_to(&held).as_deref(), Some("ana"));
    r.submit(chat(3, "support", monday(16, 30)), monday(16, 30)).unwrap();
    r.submit(chat(2, "support", monday(16, 0)), monday(16, 30)).unwrap();
    assert!(r.tick(secs(monday(17, 0), -1)).is_empty(), "nothing happens before the close");
    let events = r.tick(monday(17, 0));
    let reason = "queue support is closed (schedule \"day\")".to_string();
    // Longest waiting first; Ana keeps her chat.
    assert_eq!(
        timed_out(&events),
        [(wid(2), TimeoutAction::Callback, reason.clone()), (wid(3), TimeoutAction::Callback, reason)]
    );
    assert!(r.item(wid(2)).is_none() && r.item(wid(3)).is_none());
    assert_eq!(r.agent(&aid("ana")).unwrap().assigned, [wid(1)]);
}

#[test]
fn while_closed_work_nobody_takes_gets_the_action_at_once_and_an_agent_still_there_takes_it() {
    let r = hours_router();
    r.upsert_queue(Queue::new(qid("support")).with_hours("day", TimeoutAction::Voicemail)).unwrap();
    let d = r.submit(chat(1, "support", monday(18, 0)), monday(18, 0)).unwrap();
    assert_eq!(d.outcome, Outcome::TimedOut(TimeoutAction::Voicemail));
    assert_eq!(d.reason.to_string(), "queue support is closed (schedule \"day\")");
    // Someone stayed late: the hours decide only about work that would wait.
    r.upsert_agent(chat_agent("bob", "support", 1), monday(18, 5)).unwrap();
    let d = r.submit(chat(2, "support", monday(18, 5)), monday(18, 5)).unwrap();
    assert_eq!(assigned_to(&d).as_deref(), Some("bob"));
    let d = r.submit(chat(3, "support", monday(18, 6)), monday(18, 6)).unwrap();
    assert_eq!(d.outcome, Outcome::TimedOut(TimeoutAction::Voicemail), "bob is full: nobody takes it");
    // Work that comes back while closed and finds nobody gets the action at once.
    let events = r.requeue(wid(2), true, monday(18, 7)).unwrap();
    assert_eq!(
        timed_out(&events).iter().map(|t| (t.0, t.1.clone())).collect::<Vec<_>>(),
        [(wid(2), TimeoutAction::Voicemail)]
    );
    assert!(r.item(wid(2)).is_none());
}

#[test]
fn after_hours_overflow_moves_waiting_work_to_the_night_queue_and_its_agent_takes_it() {
    let r = hours_router();
    r.upsert_queue(Queue::new(qid("night"))).unwrap();
    r.upsert_queue(Queue::new(qid("support")).with_hours("day", TimeoutAction::Overflow(qid("night")))).unwrap();
    r.submit(chat(1, "support", monday(16, 50)), monday(16, 50)).unwrap();
    r.upsert_agent(chat_agent("nina", "night", 1), monday(16, 55)).unwrap();
    let events = r.tick(monday(17, 0));
    assert_eq!(overflowed(&events), [(wid(1), "support".into(), "night".into())]);
    assert_eq!(assignments(&events), [(wid(1), "nina".to_string())]);
    // Submitted after the close: straight to the night queue.
    let d = r.submit(chat(2, "support", monday(18, 0)), monday(18, 0)).unwrap();
    assert_eq!(d.outcome, Outcome::Queued(qid("night")));
    assert_eq!(overflowed(&d.events), [(wid(2), "support".into(), "night".into())]);
}

/// Follow the sun: the day queue overflows to the night queue after hours and back. An item
/// moved into a queue that is closed too waits there for the opening instead of bouncing.
#[test]
fn two_queues_overflowing_into_each_other_after_hours_pass_an_item_once() {
    let r = hours_router();
    r.upsert_queue(Queue::new(qid("day"))).unwrap();
    r.upsert_queue(Queue::new(qid("night")).with_hours("night", TimeoutAction::Overflow(qid("day")))).unwrap();
    r.upsert_queue(Queue::new(qid("day")).with_hours("day", TimeoutAction::Overflow(qid("night")))).unwrap();
    // 23:30: both closed. The item goes to the night queue once and waits there.
    let d = r.submit(chat(1, "day", monday(23, 30)), monday(23, 30)).unwrap();
    assert_eq!(d.outcome, Outcome::Queued(qid("night")));
    assert_eq!(overflowed(&d.events), [(wid(1), "day".into(), "night".into())]);
    let why = r.explain(wid(1), monday(23, 31)).unwrap();
    assert!(why.reason.to_string().ends_with("; queue night is closed (schedule \"night\")"), "{}", why.reason);
    // The day queue opening (Tuesday 09:00) and closing (17:00) does not move it: it waits
    // in the night queue, open from 17:00, whose agent takes it.
    for t in [utc(2026, 3, 3, 9, 0), utc(2026, 3, 3, 17, 0)] {
        let events = r.tick(t);
        assert!(events.is_empty(), "{t}: {events:?}");
    }
    assert_eq!(r.item(wid(1)).unwrap().queue, qid("night"));
    let events = r.upsert_agent(chat_agent("nina", "night", 1), utc(2026, 3, 3, 17, 1)).unwrap();
    assert_eq!(assignments(&events), [(wid(1), "nina".to_string())]);
}

#[test]
fn a_ring_with_a_zero_wait_is_refused_and_bad_hours_are_typed_errors() {
    let r = hours_router();
    r.upsert_queue(Queue::new(qid("a"))).unwrap();
    r.upsert_queue(Queue::new(qid("b")).with_max_wait(Duration::zero(), TimeoutAction::Overflow(qid("a")))).unwrap();
    let ring = r.upsert_queue(Queue::new(qid("a")).with_hours("day", TimeoutAction::Overflow(qid("b"))));
    assert!(matches!(&ring, Err(Error::InvalidInput { field, .. }) if *field == "queue.max_wait"), "{ring:?}");
    // Nothing changed: `a` still has no hours, so work waits there at night.
    let d = r.submit(chat(1, "a", monday(20, 0)), monday(20, 0)).unwrap();
    assert_eq!(d.outcome, Outcome::Queued(qid("a")));

    let unknown = r.upsert_queue(Queue::new(qid("c")).with_hours("weekend", TimeoutAction::Close));
    assert!(matches!(&unknown, Err(Error::NotFound { entity, .. }) if *entity == "schedule"), "{unknown:?}");
    let nowhere = r.upsert_queue(Queue::new(qid("c")).with_hours("day", TimeoutAction::Overflow(qid("zz"))));
    assert!(matches!(&nowhere, Err(Error::NotFound { entity, .. }) if *entity == "queue"), "{nowhere:?}");
    let itself = r.upsert_queue(Queue::new(qid("c")).with_hours("day", TimeoutAction::Overflow(qid("c"))));
    assert!(matches!(&itself, Err(Error::InvalidInput { field, .. }) if *field == "queue.hours.action"), "{itself:?}");
    assert!(r.queue_stats(&qid("c")).is_err(), "no refused queue was created");
}

#[test]
fn hours_set_while_closed_apply_to_waiting_work_at_the_next_call_and_removing_them_stops_it() {
    let r = hours_router();
    r.upsert_queue(Queue::new(qid("support"))).unwrap();
    r.submit(chat(1, "support", monday(20, 0)), monday(20, 0)).unwrap();
    r.upsert_queue(Queue::new(qid("support")).with_hours("day", TimeoutAction::Close)).unwrap();
    let events = r.tick(monday(20, 1));
    assert_eq!(timed_out(&events).len(), 1);
    assert_eq!(timed_out(&events)[0].0, wid(1));
    r.upsert_queue(Queue::new(qid("support"))).unwrap();
    let d = r.submit(chat(2, "support", monday(20, 2)), monday(20, 2)).unwrap();
    assert_eq!(d.outcome, Outcome::Queued(qid("support")));
    assert!(r.tick(utc(2026, 3, 3, 17, 0)).is_empty(), "no hours, no close");
}

#[test]
fn a_schedule_dropped_from_the_calendars_counts_as_closed() {
    let r = hours_router();
    r.upsert_queue(Queue::new(qid("support")).with_hours("day", TimeoutAction::Callback)).unwrap();
    r.submit(chat(1, "support", monday(10, 0)), monday(10, 0)).unwrap();
    r.set_calendars(Calendars::from_schedules([]).unwrap());
    let events = r.tick(monday(10, 1));
    assert_eq!(timed_out(&events).len(), 1, "{events:?}");
}

#[test]
fn queue_hours_load_from_json() {
    let q: Queue = serde_json::from_value(json!({
        "id": "support",
        "hours": {"schedule": "day", "action": {"overflow": "night"}}
    }))
    .unwrap();
    assert_eq!(q, Queue::new(qid("support")).with_hours("day", TimeoutAction::Overflow(qid("night"))));
    let q: Queue = serde_json::from_value(json!({"id": "support", "hours": {"schedule": "day"}})).unwrap();
    assert_eq!(q.hours.unwrap().action, TimeoutAction::Close);
    let bad = serde_json::from_value::<Queue>(json!({"id": "support", "hours": {"schedul": "day"}}));
    assert!(bad.is_err());
}
