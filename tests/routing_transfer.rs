//! `Router::transfer`: an agent or supervisor moves work to another queue.

mod routing_common;

use chrono::TimeDelta;
use routing_common::*;
use touchpoint::Error;
use touchpoint::routing::*;

fn transferred(events: &[RoutingEvent]) -> Vec<(WorkItemId, String, String, Option<String>)> {
    events
        .iter()
        .filter_map(|e| match e {
            RoutingEvent::Transferred { item, from, to, agent, .. } => {
                Some((*item, from.to_string(), to.to_string(), agent.as_ref().map(|a| a.to_string())))
            }
            _ => None,
        })
        .collect()
}

/// Ana hands a billing question to the billing queue: Bo takes it in the same call, and the
/// capacity Ana gets back takes the next customer waiting for support.
#[test]
fn an_assigned_item_goes_to_the_new_queue_and_frees_its_agent() {
    let r = router(&["support", "billing"]);
    r.upsert_agent(chat_agent("ana", "support", 1), t0()).unwrap();
    r.upsert_agent(chat_agent("bo", "billing", 1), t0()).unwrap();
    r.submit(chat(1, "support", t0()), t0()).unwrap();
    r.submit(chat(2, "support", at(1)), at(1)).unwrap();
    assert_eq!(r.item(wid(2)).unwrap().state, ItemState::Waiting);

    let ev = r.transfer(wid(1), &qid("billing"), at(30)).unwrap();
    assert!(matches!(ev.first(), Some(RoutingEvent::Transferred { .. })), "{ev:?}");
    assert_eq!(transferred(&ev), [(wid(1), "support".to_owned(), "billing".to_owned(), Some("ana".to_owned()))]);
    let mut got = assignments(&ev);
    got.sort();
    assert_eq!(got, [(wid(1), "bo".to_owned()), (wid(2), "ana".to_owned())]);
    let status = r.item(wid(1)).unwrap();
    assert_eq!(status.queue, qid("billing"));
    assert_eq!(status.item.queue, Some(qid("billing")));
}

/// The agent who sends the customer on is not given them back, even as a member of the
/// queue they went to; the customer waits for a colleague instead.
#[test]
fn the_agent_who_transferred_is_not_offered_the_item_again() {
    let r = router(&["support", "billing"]);
    r.upsert_agent(chat_agent("ana", "support", 2).with_queue(qid("billing")), t0()).unwrap();
    r.submit(chat(1, "support", t0()), t0()).unwrap();
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Assigned(aid("ana")));

    let ev = r.transfer(wid(1), &qid("billing"), at(10)).unwrap();
    assert!(assignments(&ev).is_empty(), "{ev:?}");
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Waiting);
    assert_eq!(r.agent(&aid("ana")).unwrap().load, 0);

    let ev = r.upsert_agent(chat_agent("bo", "billing", 1), at(20)).unwrap();
    assert_eq!(assignments(&ev), [(wid(1), "bo".to_owned())]);
}

/// A waiting customer moved to another queue keeps the wait they already have: they are
/// served before customers who came to that queue after them.
#[test]
fn a_waiting_item_keeps_its_original_wait_in_the_new_queue() {
    let r = router(&["support", "billing"]);
    r.submit(chat(1, "support", t0()), t0()).unwrap();
    r.submit(chat(2, "billing", at(5)), at(5)).unwrap();

    let ev = r.transfer(wid(1), &qid("billing"), at(10)).unwrap();
    assert_eq!(transferred(&ev), [(wid(1), "support".to_owned(), "billing".to_owned(), None)]);
    assert_eq!(r.queue_stats(&qid("billing")).unwrap().waiting, 2);
    assert_eq!(r.queue_stats(&qid("support")).unwrap().waiting, 0);

    let ev = r.upsert_agent(chat_agent("bo", "billing", 1), at(20)).unwrap();
    assert_eq!(assignments(&ev), [(wid(1), "bo".to_owned())]);
}

/// Open offers are rescinded (each named in an event) and the agents get their capacity
/// back; the item is offered in its new queue.
#[test]
fn an_offered_item_has_its_offers_rescinded() {
    let r = Router::new(RouterConfig::default());
    r.upsert_queue(Queue::new(qid("support")).with_offers(OfferPolicy::offers(1, TimeDelta::seconds(30)))).unwrap();
    r.upsert_queue(Queue::new(qid("billing")).with_offers(OfferPolicy::offers(1, TimeDelta::seconds(30)))).unwrap();
    r.upsert_agent(chat_agent("ana", "support", 1), t0()).unwrap();
    r.upsert_agent(chat_agent("bo", "billing", 1), t0()).unwrap();
    r.submit(chat(1, "support", t0()), t0()).unwrap();
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Offered(vec![aid("ana")]));

    let ev = r.transfer(wid(1), &qid("billing"), at(5)).unwrap();
    assert!(ev.contains(&RoutingEvent::OfferRescinded { item: wid(1), agent: aid("ana") }), "{ev:?}");
    assert_eq!(transferred(&ev), [(wid(1), "support".to_owned(), "billing".to_owned(), None)]);
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Offered(vec![aid("bo")]));
    assert_eq!(r.agent(&aid("ana")).unwrap().load, 0);
}

/// Preferences chosen for the old queue's agents go: the item is not held back for them.
#[test]
fn preferred_and_last_agents_are_dropped() {
    let r = router(&["support", "billing"]);
    let item = chat(1, "support", t0()).with_preferred_agent(aid("ana")).with_last_agent(aid("ana"), at(3600));
    r.submit(item, t0()).unwrap();

    r.transfer(wid(1), &qid("billing"), at(10)).unwrap();
    let status = r.item(wid(1)).unwrap();
    assert!(status.item.preferred_agents.is_empty(), "{:?}", status.item.preferred_agents);
    assert!(status.item.last_agent.is_none());
}

/// The plan sent the item to `general`; once transferred it waits in `billing` for any of
/// its members, and a later update does not send it back.
#[test]
fn the_plan_does_not_take_a_transferred_item_back() {
    let r = router(&["general", "billing"]);
    r.set_plan(Plan::new([Rule::new("all", [Step::new(Pool::queues([qid("general")]))])]), t0()).unwrap();
    r.submit(chat(1, "general", t0()), t0()).unwrap();

    r.transfer(wid(1), &qid("billing"), at(10)).unwrap();
    r.update_item(wid(1), ItemUpdate::new().priority(2), at(20)).unwrap();
    assert_eq!(r.item(wid(1)).unwrap().queue, qid("billing"));
    let ev = r.upsert_agent(chat_agent("gil", "general", 1), at(30)).unwrap();
    assert!(assignments(&ev).is_empty(), "{ev:?}");
    let ev = r.upsert_agent(chat_agent("bo", "billing", 1), at(40)).unwrap();
    assert_eq!(assignments(&ev), [(wid(1), "bo".to_owned())]);
}

/// The new queue's max wait counts from the transfer, not from when the customer came.
#[test]
fn the_new_queues_max_wait_counts_from_the_transfer() {
    let r = router(&["support"]);
    r.upsert_queue(Queue::new(qid("billing")).with_max_wait(TimeDelta::seconds(60), TimeoutAction::Callback)).unwrap();
    r.submit(chat(1, "support", t0()), t0()).unwrap();

    r.transfer(wid(1), &qid("billing"), at(100)).unwrap();
    assert!(r.tick(at(159)).is_empty());
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Waiting);
    let ev = r.tick(at(160));
    assert!(
        ev.iter().any(
            |e| matches!(e, RoutingEvent::TimedOut { item, action: TimeoutAction::Callback, .. } if *item == wid(1))
        ),
        "{ev:?}"
    );
}

/// An unknown item or queue is refused and nothing changes.
#[test]
fn unknown_items_and_queues_are_refused_changing_nothing() {
    let r = router(&["support", "billing"]);
    r.upsert_agent(chat_agent("ana", "support", 1), t0()).unwrap();
    r.submit(chat(1, "support", t0()), t0()).unwrap();

    let e = r.transfer(wid(1), &qid("nowhere"), at(5)).unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
    let e = r.transfer(wid(9), &qid("billing"), at(5)).unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
    let status = r.item(wid(1)).unwrap();
    assert_eq!((status.state, status.queue), (ItemState::Assigned(aid("ana")), qid("support")));
    assert_eq!(r.agent(&aid("ana")).unwrap().load, 1);
}

/// Ana hands the customer to Cy, who is in no queue of the item and lacks the skill its plan
/// asks for: the host's choice stands, Cy has it, Ana is free and not given it back.
#[test]
fn an_item_goes_to_the_named_agent_whatever_the_queue_and_plan() {
    let r = router(&["support", "other"]);
    r.set_plan(Plan::new([Rule::new("skills", [Step::new(Pool::default()).eligible(Term::ItemSkills)])]), t0())
        .unwrap();
    r.upsert_agent(chat_agent("ana", "support", 1).with_skill("billing", 5), t0()).unwrap();
    r.upsert_agent(chat_agent("cy", "other", 1), t0()).unwrap();
    r.submit(chat(1, "support", t0()).with_skill("billing", 3), t0()).unwrap();
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Assigned(aid("ana")));

    let ev = r.transfer_to_agent(wid(1), &aid("cy"), at(10)).unwrap();
    assert_eq!(
        ev[0],
        RoutingEvent::Transferred {
            item: wid(1),
            from: qid("support"),
            to: qid("support"),
            agent: Some(aid("ana")),
            target: Some(aid("cy"))
        }
    );
    assert_eq!(assignments(&ev), [(wid(1), "cy".to_owned())]);
    assert_eq!(r.agent(&aid("ana")).unwrap().load, 0);
    // Cy gives it back to the queue: Ana, who let it go, does not get it again.
    let ev = r.requeue(wid(1), true, at(20)).unwrap();
    assert!(assignments(&ev).is_empty(), "{ev:?}");
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Waiting);
}

/// In a queue that offers work, the named agent gets an offer; declining it sends the item
/// back to routing in its queue, where the agent who transferred it is not given it again.
#[test]
fn in_an_offering_queue_the_named_agent_is_offered_the_item() {
    let r = Router::new(RouterConfig::default());
    r.upsert_queue(Queue::new(qid("support")).with_offers(OfferPolicy::offers(1, TimeDelta::seconds(30)))).unwrap();
    r.upsert_agent(chat_agent("ana", "support", 1), t0()).unwrap();
    r.submit(chat(1, "support", t0()), t0()).unwrap();
    r.accept(wid(1), &aid("ana"), at(1)).unwrap();
    r.upsert_agent(chat_agent("cy", "support", 1), at(2)).unwrap();

    let ev = r.transfer_to_agent(wid(1), &aid("cy"), at(5)).unwrap();
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Offered(vec![aid("cy")]), "{ev:?}");
    let ev = r.decline(wid(1), &aid("cy"), at(6)).unwrap();
    assert!(assignments(&ev).is_empty() && !ev.iter().any(|e| matches!(e, RoutingEvent::Offered { .. })), "{ev:?}");
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Waiting);
}

/// An earlier decline does not stop a supervisor from giving the item to that agent.
#[test]
fn a_transfer_overrides_an_earlier_decline() {
    let r = Router::new(RouterConfig::default());
    r.upsert_queue(Queue::new(qid("support")).with_offers(OfferPolicy::offers(1, TimeDelta::seconds(30)))).unwrap();
    r.upsert_agent(chat_agent("cy", "support", 1), t0()).unwrap();
    r.submit(chat(1, "support", t0()), t0()).unwrap();
    r.decline(wid(1), &aid("cy"), at(1)).unwrap();
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Waiting);

    r.transfer_to_agent(wid(1), &aid("cy"), at(5)).unwrap();
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Offered(vec![aid("cy")]));
    let ev = r.accept(wid(1), &aid("cy"), at(6)).unwrap();
    assert_eq!(assignments(&ev), [(wid(1), "cy".to_owned())]);
}

/// A target who cannot take the item now, who has it, or who is unknown is refused; nothing
/// changes.
#[test]
fn a_target_who_cannot_take_the_item_is_refused_changing_nothing() {
    let r = router(&["support"]);
    r.upsert_agent(chat_agent("ana", "support", 1), t0()).unwrap();
    r.upsert_agent(chat_agent("bo", "support", 1), t0()).unwrap();
    r.upsert_agent(chat_agent("cy", "support", 1).with_status("away"), t0()).unwrap();
    r.submit(chat(1, "support", t0()), t0()).unwrap();
    r.submit(chat(2, "support", t0()), t0()).unwrap();
    let holder = |n| match r.item(wid(n)).unwrap().state {
        ItemState::Assigned(a) => a,
        other => panic!("{other:?}"),
    };
    let (first, second) = (holder(1), holder(2));

    for (target, why) in [(&second, "at capacity"), (&aid("cy"), "away"), (&first, "has it")] {
        let e = r.transfer_to_agent(wid(1), target, at(5)).unwrap_err();
        assert!(matches!(e, Error::Refused(_)), "{why}: {e:?}");
    }
    let e = r.transfer_to_agent(wid(1), &aid("nobody"), at(5)).unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
    let e = r.transfer_to_agent(wid(9), &aid("cy"), at(5)).unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
    assert_eq!((holder(1), holder(2)), (first.clone(), second.clone()));
    assert_eq!(r.agent(&first).unwrap().load, 1);
}

/// Sent back to the queue it was in, a customer starts a new wait there: the queue's max wait
/// counts from the transfer, not from when they first queued.
#[test]
fn a_transfer_to_the_same_queue_restarts_its_max_wait() {
    let r = Router::new(RouterConfig::default());
    r.upsert_queue(Queue::new(qid("support")).with_max_wait(TimeDelta::seconds(60), TimeoutAction::Callback)).unwrap();
    r.submit(chat(1, "support", t0()), t0()).unwrap();

    r.transfer(wid(1), &qid("support"), at(50)).unwrap();
    assert!(r.tick(at(60)).is_empty(), "the first wait's max wait no longer applies");
    assert!(r.tick(at(109)).is_empty());
    let ev = r.tick(at(110));
    assert!(ev.iter().any(|e| matches!(e, RoutingEvent::TimedOut { item, .. } if *item == wid(1))), "{ev:?}");
}

/// A transfer supersedes the host's open decision about the item: the request is closed with
/// an event, and a late answer is refused.
#[test]
fn a_transfer_closes_an_open_decision_request() {
    let r = router(&["support", "billing"]);
    r.upsert_agent(chat_agent("ana", "support", 1), t0()).unwrap();
    let hook = DecisionHook::new(TimeDelta::seconds(30));
    r.set_plan(Plan::new([Rule::new("ask", [Step::new(Pool::queues([qid("support")])).decided_by_host(hook)])]), t0())
        .unwrap();
    let d = r.submit(chat(1, "support", t0()), t0()).unwrap();
    let Outcome::AwaitingDecision { request, .. } = d.outcome else { panic!("{d:?}") };

    let ev = r.transfer(wid(1), &qid("billing"), at(5)).unwrap();
    assert_eq!(ev[0], RoutingEvent::DecisionExpired { item: wid(1), request }, "{ev:?}");
    assert_eq!(r.item(wid(1)).unwrap().queue, qid("billing"));
    let late = r.resolve_decision(wid(1), request, PolicyChoice::Agents(vec![aid("ana")]), at(6));
    assert!(late.is_err(), "{late:?}");
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Waiting);
}
