//! `Router::update_item`: changing an item the router holds (escalation, later findings).

mod routing_common;

use chrono::TimeDelta;
use routing_common::*;
use touchpoint::Error;
use touchpoint::routing::*;

/// Two customers wait; the second is escalated. The next agent free takes the escalated one
/// first, although it came later.
#[test]
fn an_escalated_waiting_item_is_taken_before_older_ones() {
    let r = router(&["s"]);
    r.submit(chat(1, "s", t0()), t0()).unwrap();
    r.submit(chat(2, "s", at(1)), at(1)).unwrap();
    let ev = r.update_item(wid(2), ItemUpdate::new().priority(3), at(2)).unwrap();
    assert!(assignments(&ev).is_empty(), "nobody to take it yet: {ev:?}");
    assert_eq!(r.item(wid(2)).unwrap().priority, 3);

    let ev = r.upsert_agent(chat_agent("ana", "s", 1), at(3)).unwrap();
    assert_eq!(assignments(&ev), [(wid(2), "ana".to_owned())]);
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Waiting);
}

/// Escalating an item does not send it back to the start of its plan: it keeps its step and
/// the time it has spent there, so the widening its dwell promised comes on time.
#[test]
fn an_update_keeps_the_step_and_its_dwell() {
    let r = router(&["s"]);
    r.set_plan(
        Plan::new([Rule::new(
            "experts first",
            [
                Step::new(Pool::default()).eligible(Term::ItemSkills).dwell(TimeDelta::seconds(60)),
                Step::new(Pool::default()),
            ],
        )]),
        t0(),
    )
    .unwrap();
    // Bo is free but no billing expert: only the second step may give him the chat.
    r.upsert_agent(chat_agent("bo", "s", 1), t0()).unwrap();
    r.submit(chat(1, "s", t0()).with_skill("billing", 3), t0()).unwrap();
    assert_eq!(r.item(wid(1)).unwrap().step, Some(0));

    r.update_item(wid(1), ItemUpdate::new().priority(2), at(40)).unwrap();
    let status = r.item(wid(1)).unwrap();
    assert_eq!((status.step, status.state), (Some(0), ItemState::Waiting));
    // 60 s after it entered the first step (not after the update), it widens to Bo.
    assert!(assignments(&r.tick(at(59))).is_empty());
    assert_eq!(assignments(&r.tick(at(60))), [(wid(1), "bo".to_owned())]);
}

/// A later finding changes what the item needs: an agent who can take it now gets it in the
/// same call.
#[test]
fn a_skill_change_routes_the_item_to_an_agent_who_fits_now() {
    let r = router(&["s"]);
    r.set_plan(Plan::new([Rule::new("skills", [Step::new(Pool::default()).eligible(Term::ItemSkills)])]), t0())
        .unwrap();
    r.upsert_agent(chat_agent("ana", "s", 1).with_skill("english", 5), t0()).unwrap();
    r.submit(chat(1, "s", t0()).with_skill("french", 3), t0()).unwrap();
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Waiting);

    let ev = r.update_item(wid(1), ItemUpdate::new().skills([("english".to_owned(), 3)]), at(5)).unwrap();
    assert_eq!(assignments(&ev), [(wid(1), "ana".to_owned())]);
    assert_eq!(r.item(wid(1)).unwrap().item.skills.get("english"), Some(&3));
}

/// An attribute that makes another rule match first classifies the item again: it moves to
/// that rule's queue.
#[test]
fn an_attribute_that_matches_another_rule_classifies_the_item_again() {
    let r = router(&["general", "vip"]);
    r.set_plan(
        Plan::new([
            Rule::new("vip", [Step::new(Pool::queues([qid("vip")]))]).when(Term::item_attr_equals("tier", "gold")),
            Rule::new("everyone", [Step::new(Pool::queues([qid("general")]))]),
        ]),
        t0(),
    )
    .unwrap();
    r.submit(chat(1, "general", t0()), t0()).unwrap();
    let before = r.item(wid(1)).unwrap();
    assert_eq!((before.rule.as_deref(), before.queue.as_str()), (Some("everyone"), "general"));

    let ev = r.update_item(wid(1), ItemUpdate::new().attribute("tier", "gold"), at(10)).unwrap();
    let after = r.item(wid(1)).unwrap();
    assert_eq!((after.rule.as_deref(), after.queue.as_str()), (Some("vip"), "vip"), "{ev:?}");
    assert_eq!(r.queue_stats(&qid("general")).unwrap().waiting, 0);
    assert_eq!(r.queue_stats(&qid("vip")).unwrap().waiting, 1);
    assert!(ev.iter().any(|e| matches!(e, RoutingEvent::Queued { queue, .. } if queue.as_str() == "vip")), "{ev:?}");
}

/// An assigned item keeps its agent; the change is kept for when it is routed again.
#[test]
fn an_assigned_item_keeps_its_agent_and_the_change_counts_when_it_is_requeued() {
    let r = router(&["s"]);
    r.upsert_agent(chat_agent("ana", "s", 1), t0()).unwrap();
    r.submit(chat(1, "s", t0()), t0()).unwrap();
    let ev = r.update_item(wid(1), ItemUpdate::new().priority(4).attribute("topic", "refund"), at(1)).unwrap();
    assert!(ev.is_empty(), "{ev:?}");
    let status = r.item(wid(1)).unwrap();
    assert_eq!(status.state, ItemState::Assigned(aid("ana")));
    assert_eq!((status.item.priority, status.item.attributes.get("topic")), (4, Some(&"refund".into())));
}

/// Bad updates are refused and change nothing.
#[test]
fn a_bad_update_is_refused_and_changes_nothing() {
    let r = router(&["s"]);
    r.submit(chat(1, "s", t0()), t0()).unwrap();
    let before = r.item(wid(1)).unwrap();
    assert!(matches!(r.update_item(wid(9), ItemUpdate::new().priority(1), at(1)), Err(Error::NotFound { .. })));

    let mut crowded = ItemUpdate::new().priority(9);
    for k in 0..257 {
        crowded = crowded.attribute(format!("k{k}"), k);
    }
    let refused = r.update_item(wid(1), crowded, at(1));
    assert!(matches!(refused, Err(Error::InvalidInput { field: "item.attributes", .. })), "{refused:?}");
    let too_old = r.update_item(wid(1), ItemUpdate::new().age_adjustment(TimeDelta::days(401)), at(1));
    assert!(matches!(too_old, Err(Error::InvalidInput { field: "item.age_adjustment", .. })), "{too_old:?}");
    assert_eq!(r.item(wid(1)).unwrap(), before);
}

/// A step that raises the priority raises it once: classifying the item again (a new plan)
/// starts from the item's own priority, not from what the step made of it.
#[test]
fn classifying_again_does_not_raise_the_priority_twice() {
    let r = router(&["s"]);
    let plan = || Plan::new([Rule::new("raise", [Step::new(Pool::default()).with_priority(PriorityChange::Raise(2))])]);
    r.set_plan(plan(), t0()).unwrap();
    r.submit(chat(1, "s", t0()).with_priority(1), t0()).unwrap();
    assert_eq!(r.item(wid(1)).unwrap().priority, 3);
    r.set_plan(plan(), at(1)).unwrap();
    assert_eq!(r.item(wid(1)).unwrap().priority, 3, "raised once");
    // An update that sets the priority sets it, whatever the step did.
    r.update_item(wid(1), ItemUpdate::new().priority(7), at(2)).unwrap();
    assert_eq!(r.item(wid(1)).unwrap().priority, 7);
}

/// The update's JSON form, as hosts send it.
#[test]
fn an_update_reads_from_json() {
    let update: ItemUpdate =
        serde_json::from_str(r#"{"priority": 2, "age_adjustment": 30, "attributes": {"intent": "billing"}}"#).unwrap();
    assert_eq!(
        update,
        ItemUpdate::new().priority(2).age_adjustment(TimeDelta::seconds(30)).attribute("intent", "billing")
    );
    // A misspelt field is an error, not a change of nothing.
    assert!(serde_json::from_str::<ItemUpdate>(r#"{"priorty": 2}"#).is_err());
}
