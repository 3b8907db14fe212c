//! Expressions inside routing plans: rule conditions, eligibility and guards written in the
//! expression language (text and tree form, JSON and Rust), `schedule(…)` from the router's
//! calendars at the operation's `now`, custom functions, typed errors with the path in the
//! plan, and the external decision hook with its deadline and fallback.

mod routing_common;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use proptest::prelude::*;
use routing_common::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use touchpoint::Error;
use touchpoint::model::{ChannelKind, LanguageTag};
use touchpoint::routing::calendar::{Calendars, ScheduleConfig};
use touchpoint::routing::expr::{ExprErrorKind, Function, ScalarType, Type, Value, ValueRef};
use touchpoint::routing::*;

fn lang(s: &str) -> LanguageTag {
    LanguageTag::parse(s).unwrap()
}

/// An online agent in `support` with a billing level, languages, and WhatsApp and web chat.
fn agent(name: &str, billing: u32, languages: &[&str]) -> Agent {
    let mut a = Agent::new(aid(name))
        .with_queue(qid("support"))
        .with_skill("billing", billing)
        .with_capacity(Capacity::per_channel([(ChannelKind::WhatsApp, 2), (ChannelKind::WebChat, 2)]))
        .with_status("online");
    for l in languages {
        a = a.with_language(lang(l));
    }
    a
}

fn item(n: u128, channel: ChannelKind, language: &str) -> WorkItem {
    WorkItem::new(wid(n), channel, t0()).in_queue(qid("support")).with_language(lang(language))
}

fn expression_error(e: Error) -> touchpoint::routing::expr::ExprError {
    match e {
        Error::Expression(x) => x,
        other => panic!("expected an expression error, got {other:?}"),
    }
}

const ISSUE_PLAN: &str = r#"{
  "rules": [{
    "name": "whatsapp billing",
    "when": {"expr": "item.channel == \"whatsapp\""},
    "steps": [{
      "pool": {"queues": ["support"]},
      "eligibility": {"expr": "item.channel == \"whatsapp\" and item.language in agent.languages and agent.skills.billing >= 3"}
    }]
  }]
}"#;

#[test]
fn the_issue_example_routes_as_written_from_a_json_plan() {
    let r = router(&["support"]);
    r.upsert_agent(agent("ana", 5, &["en"]), t0()).unwrap(); // no Spanish
    r.upsert_agent(agent("bo", 2, &["es"]), t0()).unwrap(); // billing too low
    r.upsert_agent(agent("cy", 3, &["es", "en"]), t0()).unwrap(); // fits
    r.set_plan(Plan::from_json(ISSUE_PLAN).unwrap(), t0()).unwrap();

    let d = r.submit(item(1, ChannelKind::WhatsApp, "es"), t0()).unwrap();
    assert_eq!(assigned_to(&d).as_deref(), Some("cy"), "{d:?}");
    assert_eq!(d.rule.as_deref(), Some("whatsapp billing"));

    // Only cy fits, and cy has room for one more WhatsApp conversation.
    assert_eq!(assigned_to(&r.submit(item(2, ChannelKind::WhatsApp, "es"), t0()).unwrap()).as_deref(), Some("cy"));
    let d = r.submit(item(3, ChannelKind::WhatsApp, "es"), t0()).unwrap();
    assert_eq!(d.outcome, Outcome::Queued(qid("support")), "ana and bo are not eligible: {d:?}");
    let why = r.explain(wid(3), t0()).unwrap();
    assert!(
        why.groups
            .iter()
            .any(|g| matches!(&g.reason, Exclusion::Ineligible { term } if term.contains("agent.skills.billing >= 3"))),
        "{why:?}"
    );

    // A web chat does not match the rule: the implicit step takes any support member.
    let d = r.submit(item(4, ChannelKind::WebChat, "es"), t0()).unwrap();
    assert!(assigned_to(&d).is_some(), "{d:?}");
    assert_eq!(d.rule, None);
}

#[test]
fn a_regional_item_reaches_an_agent_who_lists_the_bare_language_through_primary_language() {
    let plan = |expr: &str| Plan::new([Rule::new("lang", [Step::new(Pool::default()).eligible(Term::expr(expr))])]);
    let r = router(&["support"]);
    r.upsert_agent(agent("ana", 5, &["es"]), t0()).unwrap();
    // `in` compares whole tags: es-MX is not in ["es"].
    r.set_plan(plan("item.language in agent.languages"), t0()).unwrap();
    let d = r.submit(item(1, ChannelKind::WebChat, "es-MX"), t0()).unwrap();
    assert_eq!(d.outcome, Outcome::Queued(qid("support")), "{d:?}");
    // Its primary language is.
    r.set_plan(plan("item.primary_language in agent.languages"), t0()).unwrap();
    let d = r.submit(item(2, ChannelKind::WebChat, "es-MX"), t0()).unwrap();
    assert_eq!(assigned_to(&d).as_deref(), Some("ana"), "{d:?}");
    // An item without a language is unknown there, which is no.
    let d = r.submit(WorkItem::new(wid(3), ChannelKind::WebChat, t0()).in_queue(qid("support")), t0()).unwrap();
    assert_eq!(d.outcome, Outcome::Queued(qid("support")), "{d:?}");
}

#[test]
fn an_expression_under_a_terms_not_is_refused_with_the_spelling_that_keeps_unknown_as_no() {
    // Under a term's `not`, an agent without the skill (unknown, which counts as no) would have
    // been turned into a match; inside the expression it stays unknown.
    let r = router(&["support"]);
    r.upsert_agent(agent("ana", 5, &["en"]), t0()).unwrap();
    let json = r#"{"rules": [{"name": "r", "steps": [{"eligibility": {"and": [{"not": {"expr": "agent.skills.spanish >= 3"}}]}}]}]}"#;
    let plan: Plan = serde_json::from_str(json).unwrap();
    let err = r.set_plan(plan, t0()).unwrap_err().to_string();
    assert!(err.contains("rules[0].steps[0].eligibility.and[0].not: an expression under `not`"), "{err}");
    assert!(err.contains(r#"{"expr": "not (agent.skills.spanish >= 3)"}"#), "{err}");
    // As the message says: ana has no Spanish level, so she is not eligible either way round.
    let inside = Term::expr("not (agent.skills.spanish >= 3)");
    r.set_plan(Plan::new([Rule::new("r", [Step::new(Pool::default()).eligible(inside)])]), t0()).unwrap();
    let d = r.submit(item(1, ChannelKind::WebChat, "en"), t0()).unwrap();
    assert_eq!(d.outcome, Outcome::Queued(qid("support")), "{d:?}");
    // Structured terms under `not` are two-valued and stay allowed.
    let structured = Term::not(Term::skill("spanish", 3));
    r.set_plan(Plan::new([Rule::new("r", [Step::new(Pool::default()).eligible(structured)])]), t0()).unwrap();
    assert_eq!(assigned_to(&r.submit(item(2, ChannelKind::WebChat, "en"), t0()).unwrap()).as_deref(), Some("ana"));
}

#[test]
fn the_tree_form_and_rust_built_plans_route_the_same() {
    let tree = serde_json::json!({"and": [
        {"eq": [{"path": "item.channel"}, {"str": "whatsapp"}]},
        {"in": [{"path": "item.language"}, {"path": "agent.languages"}]},
        {"ge": [{"path": "agent.skills.billing"}, {"int": 3}]}
    ]});
    let json = serde_json::json!({"rules": [{"name": "wa", "steps": [{"eligibility": {"expr": tree}}]}]});
    let from_tree = Plan::from_json(&json.to_string()).unwrap();
    let rust = Plan::new([Rule::new(
        "wa",
        [Step::new(Pool::default()).eligible(Term::expr(
            r#"item.channel == "whatsapp" and item.language in agent.languages and agent.skills.billing >= 3"#,
        ))],
    )]);
    for plan in [from_tree, rust] {
        let r = router(&["support"]);
        r.upsert_agent(agent("ana", 5, &["en"]), t0()).unwrap();
        r.upsert_agent(agent("cy", 3, &["es"]), t0()).unwrap();
        r.set_plan(plan, t0()).unwrap();
        assert_eq!(assigned_to(&r.submit(item(1, ChannelKind::WhatsApp, "es"), t0()).unwrap()).as_deref(), Some("cy"));
        assert_eq!(
            r.submit(item(2, ChannelKind::WebChat, "es"), t0()).unwrap().outcome,
            Outcome::Queued(qid("support"))
        );
    }
}

#[test]
fn a_plan_with_expressions_round_trips_through_json() {
    let plan = Plan::new([Rule::new(
        "vip",
        [
            Step::new(Pool::queues([qid("support")]))
                .eligible(Term::and([Term::ItemSkills, Term::expr("agent.skills.billing >= 3")]))
                .skip_if(SkipIf::expr("pool.available == 0"))
                .dwell(TimeDelta::seconds(10))
                .decided_by_host(
                    DecisionHook::new(TimeDelta::seconds(2)).or_else(DecisionFallback::Queue(qid("overflow"))),
                ),
            Step::new(Pool::any()),
        ],
    )
    .when(Term::expr("item.priority >= 2"))]);
    let json = serde_json::to_string(&plan).unwrap();
    assert!(json.contains(r#""expr":"agent.skills.billing >= 3""#), "{json}");
    assert_eq!(Plan::from_json(&json).unwrap(), plan);
}

#[test]
fn declared_attributes_are_typed_and_read_from_json_attributes() {
    let r = router(&["support", "vip"]);
    r.declare_attribute("item.tier", Type::STR).unwrap();
    r.declare_attribute("item.order.total", Type::FLOAT).unwrap();
    r.declare_attribute("agent.regions", Type::List(ScalarType::Str)).unwrap();
    r.upsert_agent(chat_agent("eu", "vip", 5).with_attribute("regions", serde_json::json!(["eu", "uk"])), t0())
        .unwrap();
    r.upsert_agent(chat_agent("us", "vip", 5).with_attribute("regions", serde_json::json!(["us"])), t0()).unwrap();
    r.upsert_agent(chat_agent("gen", "support", 5), t0()).unwrap();
    let plan = Plan::from_json(
        r#"{"rules": [{
            "name": "vip",
            "when": {"expr": "item.tier == \"gold\" or item.order.total >= 500"},
            "steps": [{"pool": {"queues": ["vip"]}, "eligibility": {"expr": "\"uk\" in agent.regions"}}]
        }]}"#,
    )
    .unwrap();
    r.set_plan(plan, t0()).unwrap();
    let gold = chat(1, "support", t0()).with_attribute("tier", "gold");
    assert_eq!(assigned_to(&r.submit(gold, t0()).unwrap()).as_deref(), Some("eu"));
    let big = chat(2, "support", t0()).with_attribute("order", serde_json::json!({"total": 750.5}));
    assert_eq!(assigned_to(&r.submit(big, t0()).unwrap()).as_deref(), Some("eu"));
    // A tier of the wrong JSON type reads as missing: the rule does not match.
    let odd = chat(3, "support", t0()).with_attribute("tier", 7);
    assert_eq!(assigned_to(&r.submit(odd, t0()).unwrap()).as_deref(), Some("gen"));

    assert!(r.declare_attribute("item.tier", Type::INT).is_err(), "declared twice");
    assert!(r.declare_attribute("agent.id", Type::STR).is_err(), "per-agent state is not an attribute");
    assert!(r.declare_attribute("queue.x", Type::STR).is_err());
}

#[test]
fn custom_functions_from_rust_are_usable_in_plans() {
    let r = router(&["support"]);
    r.declare_attribute("item.customer", Type::STR).unwrap();
    r.register_function(Function::new("vip", [Type::STR], Type::BOOL, |args| match args {
        [ValueRef::Str(c)] => Ok(Value::Bool(c.starts_with("vip-"))),
        _ => Ok(Value::Missing),
    }))
    .unwrap();
    r.upsert_agent(chat_agent("senior", "support", 5).with_skill("seniority", 5), t0()).unwrap();
    r.upsert_agent(chat_agent("junior", "support", 5).with_skill("seniority", 1), t0()).unwrap();
    let plan =
        Plan::new([Rule::new("vip", [Step::new(Pool::default()).eligible(Term::expr("agent.skills.seniority >= 3"))])
            .when(Term::expr("vip(item.customer)"))]);
    r.set_plan(plan, t0()).unwrap();
    let d = r.submit(chat(1, "support", t0()).with_attribute("customer", "vip-42"), t0()).unwrap();
    assert_eq!((assigned_to(&d).as_deref(), d.rule.as_deref()), (Some("senior"), Some("vip")));
    let d = r.submit(chat(2, "support", t0()).with_attribute("customer", "c-7"), t0()).unwrap();
    assert_eq!(d.rule, None, "not a VIP: the implicit step");
}

#[test]
fn eligibility_is_evaluated_per_profile_not_per_agent() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let r = router(&["support"]);
    r.register_function(Function::new("senior", [Type::INT], Type::BOOL, move |args| {
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(match args {
            [ValueRef::Int(l)] => Value::Bool(*l >= 3),
            _ => Value::Missing,
        })
    }))
    .unwrap();
    for n in 0..500 {
        let level = if n % 2 == 0 { 4 } else { 1 };
        r.upsert_agent(chat_agent(&format!("a{n}"), "support", 1).with_skill("billing", level), t0()).unwrap();
    }
    let plan = Plan::new([Rule::new(
        "seniors",
        [Step::new(Pool::default()).eligible(Term::expr("senior(agent.skills.billing) and item.priority >= 0"))],
    )]);
    r.set_plan(plan, t0()).unwrap();
    calls.store(0, Ordering::Relaxed);
    let d = r.submit(chat(1, "support", t0()), t0()).unwrap();
    let agent = assigned_to(&d).unwrap();
    assert_eq!(r.agent(&aid(&agent)).unwrap().channel_load.len(), 1);
    let n: usize = agent[1..].parse().unwrap();
    assert_eq!(n % 2, 0, "only billing >= 3 is eligible: {agent}");
    // 500 agents, 2 profiles: the function ran once per profile, not once per agent.
    assert!(calls.load(Ordering::Relaxed) <= 2, "{} calls", calls.load(Ordering::Relaxed));
}

#[test]
fn skip_if_guards_read_the_pool_and_the_queue() {
    let r = router(&["support", "overflow"]);
    r.upsert_agent(chat_agent("o", "overflow", 5), t0()).unwrap();
    r.upsert_agent(chat_agent("s", "support", 1).with_status("away"), t0()).unwrap();
    let plan = Plan::from_json(
        r#"{"rules": [{"name": "r", "steps": [
            {"pool": {"queues": ["support"]}, "dwell": 60, "skip_if": {"expr": "pool.available == 0 and pool.signed_in >= 1"}},
            {"pool": {"queues": ["overflow"]}}
        ]}]}"#,
    )
    .unwrap();
    r.set_plan(plan, t0()).unwrap();
    let d = r.submit(chat(1, "support", t0()), t0()).unwrap();
    assert_eq!((assigned_to(&d).as_deref(), d.step), (Some("o"), Some(1)), "{d:?}");
    assert!(d.events.iter().any(|e| matches!(e, RoutingEvent::StepSkipped { step: 0, .. })));

    // Once s is back, the first step is not skipped.
    r.set_presence(&aid("s"), "online", t0()).unwrap();
    let d = r.submit(chat(2, "support", t0()), t0()).unwrap();
    assert_eq!((assigned_to(&d).as_deref(), d.step), (Some("s"), Some(0)), "{d:?}");
}

#[test]
fn queue_buckets_can_be_expressions() {
    let r = router(&[]);
    r.declare_attribute("item.tier", Type::STR).unwrap();
    let q = Queue::new(qid("support")).with_discipline(Discipline::Buckets(vec![Term::expr(r#"item.tier == "gold""#)]));
    r.upsert_queue(q).unwrap();
    r.submit(chat(1, "support", t0()), t0()).unwrap();
    r.submit(chat(2, "support", at(1)).with_attribute("tier", "gold"), at(1)).unwrap();
    let events = r.upsert_agent(chat_agent("a", "support", 1), at(2)).unwrap();
    assert_eq!(assignments(&events), vec![(wid(2), "a".to_owned())], "gold first despite arriving later");
}

// ---------------------------------------------------------------------------------------------
// Calendars

/// A plan sending items to `bots` whenever `support` is closed.
fn after_hours_plan() -> Plan {
    Plan::from_json(
        r#"{"rules": [
            {"name": "after hours", "when": {"expr": "not schedule(\"support\").open"},
             "steps": [{"pool": {"queues": ["bots"]}}]},
            {"name": "office", "steps": [{"pool": {"queues": ["support"]}}]}
        ]}"#,
    )
    .unwrap()
}

fn after_hours_router(time_zone: &str) -> Router {
    let r = router(&["support", "bots"]);
    r.upsert_agent(chat_agent("human", "support", 100), t0()).unwrap();
    r.upsert_agent(chat_agent("bot", "bots", 100), t0()).unwrap();
    let support = ScheduleConfig::new("support", time_zone).hours("Mon-Sun", "08:00", "18:00").build().unwrap();
    r.set_calendars(Calendars::from_schedules([support]).unwrap());
    r.set_plan(after_hours_plan(), t0()).unwrap();
    r
}

fn handler_at(r: &Router, n: u128, now: DateTime<Utc>) -> String {
    assigned_to(&r.submit(chat(n, "support", now), now).unwrap()).unwrap()
}

#[test]
fn after_hours_rules_read_the_schedule_at_the_operations_now() {
    let r = after_hours_router("+01:00");
    let utc = |d, h, m| Utc.with_ymd_and_hms(2026, 3, d, h, m, 0).unwrap();
    assert_eq!(handler_at(&r, 1, utc(2, 6, 59)), "bot"); // 07:59 local
    assert_eq!(handler_at(&r, 2, utc(2, 7, 0)), "human"); // 08:00 local
    assert_eq!(handler_at(&r, 3, utc(2, 16, 59)), "human");
    assert_eq!(handler_at(&r, 4, utc(2, 17, 0)), "bot"); // 18:00 local
    // Replacing the calendars changes the answer at once.
    let night = ScheduleConfig::new("support", "+01:00").hours("Mon-Sun", "20:00", "06:00").build().unwrap();
    r.set_calendars(Calendars::from_schedules([night]).unwrap());
    assert_eq!(handler_at(&r, 5, utc(2, 12, 0)), "bot");
    // An unknown schedule is unknown, not closed: `not schedule(…).open` does not hold either.
    r.set_calendars(Calendars::new());
    assert_eq!(handler_at(&r, 6, utc(2, 3, 0)), "human");
}

#[cfg(feature = "tz")]
#[test]
fn after_hours_follow_daylight_saving_time() {
    // Berlin springs forward on 2026-03-29: 08:00 local is 07:00 UTC the day before, 06:00 UTC that day.
    let r = after_hours_router("Europe/Berlin");
    let utc = |d, h, m| Utc.with_ymd_and_hms(2026, 3, d, h, m, 0).unwrap();
    assert_eq!(handler_at(&r, 1, utc(28, 6, 30)), "bot"); // 07:30 CET
    assert_eq!(handler_at(&r, 2, utc(28, 7, 30)), "human"); // 08:30 CET
    assert_eq!(handler_at(&r, 3, utc(29, 6, 30)), "human"); // 08:30 CEST (a fixed +01:00 would say 07:30)
    assert_eq!(handler_at(&r, 4, utc(29, 16, 30)), "bot"); // 18:30 CEST (a fixed +01:00 would say 17:30)
    assert_eq!(handler_at(&r, 5, utc(28, 16, 30)), "human"); // 17:30 CET
}

#[test]
fn guards_see_how_long_until_a_schedule_closes() {
    let r = router(&["support", "callbacks"]);
    r.upsert_agent(chat_agent("human", "support", 100), t0()).unwrap();
    r.upsert_agent(chat_agent("cb", "callbacks", 100), t0()).unwrap();
    let support = ScheduleConfig::new("support", "UTC").hours("Mon-Fri", "09:00", "17:00").build().unwrap();
    r.set_calendars(Calendars::from_schedules([support]).unwrap());
    let plan = Plan::new([Rule::new(
        "late",
        [
            Step::new(Pool::queues([qid("support")]))
                .skip_if(SkipIf::expr(r#"schedule("support").closes_in < 15m"#))
                .dwell(TimeDelta::seconds(30)),
            Step::new(Pool::queues([qid("callbacks")])),
        ],
    )]);
    r.set_plan(plan, t0()).unwrap();
    let mon = |h, m| Utc.with_ymd_and_hms(2026, 3, 2, h, m, 0).unwrap();
    assert_eq!(handler_at(&r, 1, mon(16, 44)), "human"); // closes in 16 min
    assert_eq!(handler_at(&r, 2, mon(16, 46)), "cb"); // closes in 14 min
    assert_eq!(handler_at(&r, 3, mon(18, 0)), "cb", "closed: closes_in is 0s");
}

// ---------------------------------------------------------------------------------------------
// Errors

#[test]
fn malformed_expressions_are_typed_errors_with_the_path_and_position() {
    let r = router(&["support"]);
    let cases: &[(&str, ExprErrorKind, &str)] = &[
        (
            r#"{"rules": [{"name": "a", "steps": [{}]}, {"name": "b", "steps": [{"eligibility": {"expr": "agent.skills.billing >= \"x\""}}]}]}"#,
            ExprErrorKind::Type,
            "rules[1].steps[0].eligibility: cannot compare agent.skills.billing (int) with \"x\" (string) at 1:22",
        ),
        (
            r#"{"rules": [{"name": "a", "when": {"expr": "item.channel == "}, "steps": [{}]}]}"#,
            ExprErrorKind::Syntax,
            "rules[0].when: ",
        ),
        (
            r#"{"rules": [{"name": "a", "steps": [{"eligibility": {"and": ["item_skills", {"expr": "agent.id == \"ana\""}]}}]}]}"#,
            ExprErrorKind::UnknownPath,
            "rules[0].steps[0].eligibility.and[1]: unknown path agent.id",
        ),
        (
            r#"{"rules": [{"name": "a", "when": {"expr": "agent.skills.billing > 1"}, "steps": [{}]}]}"#,
            ExprErrorKind::UnknownPath,
            "rules[0].when: unknown path agent.skills",
        ),
        (
            r#"{"rules": [{"name": "a", "steps": [{"eligibility": {"expr": "schedule(\"support\").open"}}]}]}"#,
            ExprErrorKind::UnknownFunction,
            "time-dependent conditions belong in a rule's when or a step's skip_if",
        ),
        (
            r#"{"rules": [{"name": "a", "steps": [{"skip_if": {"expr": "queue.waiting"}}]}]}"#,
            ExprErrorKind::Type,
            "rules[0].steps[0].skip_if: ",
        ),
    ];
    for (json, kind, want) in cases {
        let plan = Plan::from_json(json).unwrap();
        let err = expression_error(r.set_plan(plan, t0()).unwrap_err());
        assert_eq!(err.kind(), *kind, "{json}: {err}");
        assert!(err.to_string().contains(want), "{json}\n  gave: {err}\n  want: {want}");
    }
    let err = expression_error(
        r.set_plan(
            Plan::from_json(r#"{"rules": [{"name": "a", "steps": [{"eligibility": {"expr": "agent.skills.x >= 1 and\n  item.priority == true"}}]}]}"#)
                .unwrap(),
            t0(),
        )
        .unwrap_err(),
    );
    let pos = err.position().expect("a text expression has a position");
    assert_eq!((pos.line, pos.column), (2, 17), "{err}");
    assert!(err.message().starts_with("rules[0].steps[0].eligibility: cannot compare item.priority"), "{err}");

    // A per-agent field gets a hint about profiles.
    let err = expression_error(
        r.set_plan(Plan::new([Rule::new("a", [Step::new(Pool::any()).eligible(Term::expr("agent.load < 2"))])]), t0())
            .unwrap_err(),
    );
    assert!(err.to_string().contains("decided per agent profile"), "{err}");

    // The router kept its old (empty) plan: items route by the implicit step.
    r.upsert_agent(chat_agent("a", "support", 1), t0()).unwrap();
    assert_eq!(r.submit(chat(1, "support", t0()), t0()).unwrap().rule, None);
}

#[test]
fn an_expression_that_is_not_a_string_or_tree_is_a_plan_error() {
    let err = Plan::from_json(r#"{"rules": [{"name": "a", "when": {"expr": 5}, "steps": [{}]}]}"#).unwrap_err();
    assert!(matches!(&err, Error::InvalidInput { field: "plan", reason } if reason.contains("expression")), "{err:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any text in any expression slot of a JSON plan gives a plan, or an error naming that
    /// slot — never a panic — and a refused plan changes nothing.
    #[test]
    fn random_expressions_in_plan_json_never_panic(
        text in prop_oneof![
            "[ -~]{0,60}",
            proptest::collection::vec(
                prop_oneof![
                    Just("item.channel"), Just("agent.skills.billing"), Just("item.language"), Just("agent.languages"),
                    Just("=="), Just(">="), Just("in"), Just("and"), Just("or"), Just("not"), Just("("), Just(")"),
                    Just("\"whatsapp\""), Just("3"), Just("schedule(\"support\").open"), Just("pool.available"),
                    Just("queue.waiting"), Just("90s"), Just("["), Just("]"), Just(","), Just("has("), Just("item.age"),
                ],
                0..12,
            )
            .prop_map(|v| v.join(" ")),
        ],
        slot in 0usize..3,
    ) {
        let r = router(&["support"]);
        r.upsert_agent(chat_agent("a", "support", 1), t0()).unwrap();
        let expr = serde_json::json!({"expr": text});
        let (plan, path) = match slot {
            0 => (serde_json::json!({"rules": [{"name": "r", "when": expr, "steps": [{}]}]}), "rules[0].when"),
            1 => (serde_json::json!({"rules": [{"name": "r", "steps": [{"eligibility": expr}]}]}), "rules[0].steps[0].eligibility"),
            _ => (serde_json::json!({"rules": [{"name": "r", "steps": [{"skip_if": expr}]}]}), "rules[0].steps[0].skip_if"),
        };
        let plan = Plan::from_json(&plan.to_string()).unwrap();
        match r.set_plan(plan, t0()) {
            Ok(_) => {
                let d = r.submit(chat(1, "support", t0()), t0()).unwrap();
                prop_assert_eq!(d.item, wid(1));
            }
            Err(Error::Expression(e)) => {
                prop_assert!(e.message().starts_with(path), "{}", e);
                let d = r.submit(chat(1, "support", t0()), t0()).unwrap();
                prop_assert_eq!(d.rule, None, "the refused plan was not installed");
            }
            Err(other) => prop_assert!(false, "unexpected error {:?}", other),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The external decision hook

fn hook_router(fallback: DecisionFallback) -> Router {
    let r = router(&["sales", "overflow"]);
    for name in ["ana", "bo"] {
        r.upsert_agent(chat_agent(name, "sales", 1), t0()).unwrap();
    }
    r.upsert_agent(chat_agent("ov", "overflow", 1), t0()).unwrap();
    let step = Step::new(Pool::queues([qid("sales")]))
        .decided_by_host(DecisionHook::new(TimeDelta::seconds(5)).or_else(fallback));
    r.set_plan(Plan::new([Rule::new("ask", [step])]), t0()).unwrap();
    r
}

fn requested(d: &RoutingDecision) -> (u64, Vec<String>, DateTime<Utc>) {
    let Outcome::AwaitingDecision { request, deadline } = d.outcome else { panic!("not awaiting: {d:?}") };
    let agents = d
        .events
        .iter()
        .find_map(|e| match e {
            RoutingEvent::DecisionRequested { request: r, agents, deadline: dl, .. } if *r == request => {
                assert_eq!(*dl, deadline);
                Some(agents.iter().map(|a| a.to_string()).collect())
            }
            _ => None,
        })
        .expect("a DecisionRequested event");
    (request, agents, deadline)
}

#[test]
fn the_host_decides_and_stale_or_duplicate_answers_change_nothing() {
    let r = hook_router(DecisionFallback::Plan);
    let d = r.submit(chat(1, "sales", t0()), t0()).unwrap();
    let (request, mut agents, deadline) = requested(&d);
    agents.sort();
    assert_eq!(agents, ["ana", "bo"]);
    assert_eq!(deadline, at(5));
    assert!(matches!(r.item(wid(1)).unwrap().state, ItemState::AwaitingDecision { .. }));
    // Freed agents do not take an item that waits for the host.
    assert!(r.sweep(at(1)).is_empty());

    // A wrong request id is stale; Wait keeps the request open.
    let err = r.resolve_decision(wid(1), request + 1000, PolicyChoice::UsePlan, at(1)).unwrap_err();
    assert!(matches!(&err, Error::Refused(m) if m.contains("stale")), "{err:?}");
    assert!(r.resolve_decision(wid(1), request, PolicyChoice::Wait, at(1)).unwrap().is_empty());

    let events = r.resolve_decision(wid(1), request, PolicyChoice::Agents(vec![aid("bo")]), at(2)).unwrap();
    assert_eq!(assignments(&events), vec![(wid(1), "bo".to_owned())]);

    // The same answer again, and an answer after the deadline, are refused and change nothing.
    let err = r.resolve_decision(wid(1), request, PolicyChoice::Agents(vec![aid("ana")]), at(3)).unwrap_err();
    assert!(matches!(err, Error::Refused(_)), "{err:?}");
    assert!(r.tick(at(6)).is_empty(), "the answered request's deadline does nothing");
    assert_eq!(r.item(wid(1)).unwrap().state, ItemState::Assigned(aid("bo")));
    assert!(matches!(
        r.resolve_decision(wid(99), request, PolicyChoice::UsePlan, at(6)),
        Err(Error::NotFound { entity: "work item", .. })
    ));
}

#[test]
fn listed_agents_that_cannot_take_the_item_are_skipped() {
    let r = hook_router(DecisionFallback::Plan);
    r.upsert_agent(chat_agent("ana", "sales", 1).with_status("away"), t0()).unwrap();
    let (request, agents, _) = requested(&r.submit(chat(1, "sales", t0()), t0()).unwrap());
    assert_eq!(agents, ["bo"], "only agents who could take it are listed");
    let events = r
        .resolve_decision(wid(1), request, PolicyChoice::Agents(vec![aid("ana"), aid("nobody"), aid("bo")]), at(1))
        .unwrap();
    assert_eq!(assignments(&events), vec![(wid(1), "bo".to_owned())]);
}

#[test]
fn without_an_answer_the_fallback_applies_at_the_deadline() {
    // Fallback: the plan itself.
    let r = hook_router(DecisionFallback::Plan);
    let (_, _, deadline) = requested(&r.submit(chat(1, "sales", t0()), t0()).unwrap());
    assert_eq!(r.next_timer(), Some(deadline));
    assert!(r.tick(at(4)).is_empty(), "nothing before the deadline");
    let events = r.tick(deadline);
    assert!(matches!(events[0], RoutingEvent::DecisionExpired { .. }), "{events:?}");
    let got = assignments(&events);
    assert_eq!(got.len(), 1);
    assert!(["ana", "bo"].contains(&got[0].1.as_str()));

    // Fallback: another queue.
    let r = hook_router(DecisionFallback::Queue(qid("overflow")));
    let (request, _, _) = requested(&r.submit(chat(1, "sales", t0()), t0()).unwrap());
    let events = r.tick(at(7));
    assert!(events.iter().any(|e| matches!(e, RoutingEvent::Overflowed { to, .. } if *to == qid("overflow"))));
    assert_eq!(assignments(&events), vec![(wid(1), "ov".to_owned())]);
    let err = r.resolve_decision(wid(1), request, PolicyChoice::UsePlan, at(8)).unwrap_err();
    assert!(matches!(err, Error::Refused(_)), "a late answer is refused: {err:?}");

    // Fallback: named agents.
    let r = hook_router(DecisionFallback::Agents(vec![aid("bo")]));
    r.submit(chat(1, "sales", t0()), t0()).unwrap();
    assert_eq!(assignments(&r.tick(at(5))), vec![(wid(1), "bo".to_owned())]);
}

#[test]
fn a_withdrawn_item_leaves_no_open_request() {
    let r = hook_router(DecisionFallback::Plan);
    let (request, _, _) = requested(&r.submit(chat(1, "sales", t0()), t0()).unwrap());
    r.withdraw(wid(1), at(1)).unwrap();
    assert!(r.tick(at(10)).is_empty());
    assert!(matches!(r.resolve_decision(wid(1), request, PolicyChoice::UsePlan, at(10)), Err(Error::NotFound { .. })));
}

#[test]
fn a_decision_fallback_queue_must_exist() {
    let r = router(&["sales"]);
    let step = Step::new(Pool::queues([qid("sales")]))
        .decided_by_host(DecisionHook::new(TimeDelta::seconds(5)).or_else(DecisionFallback::Queue(qid("nope"))));
    let err = r.set_plan(Plan::new([Rule::new("ask", [step])]), t0()).unwrap_err();
    assert!(err.to_string().contains("rules[0].steps[0].decision.fallback: unknown queue"), "{err}");
    let zero = Step::new(Pool::any()).decided_by_host(DecisionHook::new(TimeDelta::zero()));
    let err = r.set_plan(Plan::new([Rule::new("z", [zero])]), t0()).unwrap_err();
    assert!(err.to_string().contains("decision.timeout: must be positive"), "{err}");
}

#[test]
fn a_toml_plan_takes_expressions_in_both_forms() {
    let toml_plan = r#"
        [[rules]]
        name = "whatsapp billing"
        when = { expr = 'item.channel == "whatsapp"' }

        [[rules.steps]]
        pool = { queues = ["support"] }
        eligibility = { expr = { ge = [{ path = "agent.skills.billing" }, { int = 3 }] } }
        skip_if = { expr = "queue.waiting > 100" }
    "#;
    let plan: Plan = toml::from_str(toml_plan).unwrap();
    plan.validate().unwrap();
    let r = router(&["support"]);
    r.upsert_agent(agent("low", 2, &["es"]), t0()).unwrap();
    r.upsert_agent(agent("high", 4, &["es"]), t0()).unwrap();
    r.set_plan(plan, t0()).unwrap();
    let d = r.submit(item(1, ChannelKind::WhatsApp, "es"), t0()).unwrap();
    assert_eq!((assigned_to(&d).as_deref(), d.rule.as_deref()), (Some("high"), Some("whatsapp billing")));
}

// ---------------------------------------------------------------------------------------------
// `pool.available` counts whom the item could go to now, as `no_available_agents` does

fn overflow_after(skip: &str, delayed_member: bool) -> Vec<(WorkItemId, String)> {
    use touchpoint::routing::{OfferPolicy, Outcome, QueueMembership};
    let r = Router::new(RouterConfig::default());
    r.upsert_queue(Queue::new(qid("support")).with_offers(OfferPolicy::offers(1, TimeDelta::seconds(60)))).unwrap();
    r.upsert_queue(Queue::new(qid("overflow"))).unwrap();
    let x = if delayed_member {
        // In the queue, but only for items that waited 5 minutes.
        Agent::new(aid("x"))
            .with_membership(QueueMembership { queue: qid("support"), priority: 1, delay: TimeDelta::minutes(5) })
            .with_capacity(Capacity::per_channel([(ChannelKind::WebChat, 1)]))
            .with_status("online")
    } else {
        chat_agent("x", "support", 1)
    };
    r.upsert_agent(x, t0()).unwrap();
    r.upsert_agent(chat_agent("o", "overflow", 1), t0()).unwrap();
    let plan = Plan::from_json(&format!(
        r#"{{"rules": [{{"name": "r", "steps": [
            {{"pool": {{"queues": ["support"]}}, "dwell": 10}},
            {{"pool": {{"queues": ["support"]}}, "dwell": 600, "skip_if": {skip}}},
            {{"pool": {{"queues": ["overflow"]}}}}]}}]}}"#
    ))
    .unwrap();
    r.set_plan(plan, t0()).unwrap();
    let d = r.submit(chat(1, "support", t0()), t0()).unwrap();
    if !delayed_member {
        // x declines: the item may not go to x again.
        assert!(matches!(d.outcome, Outcome::Offered(_)), "{d:?}");
        r.decline(wid(1), &aid("x"), at(1)).unwrap();
    }
    assignments(&r.tick(at(10)))
}

/// An agent who declined the item, or whose queue delay has not passed, is not available for
/// it: the expression and the built-in guard skip the step alike.
#[test]
fn pool_available_leaves_out_agents_the_item_cannot_go_to_now() {
    for delayed_member in [false, true] {
        for skip in [r#""no_available_agents""#, r#"{"expr": "pool.available == 0"}"#] {
            let got = overflow_after(skip, delayed_member);
            assert_eq!(got, vec![(wid(1), "o".to_owned())], "skip_if {skip}, delayed member: {delayed_member}");
        }
    }
}

/// An eligibility condition is split into its agent-only and item parts for speed; the parts
/// share the one evaluation budget of the whole, so a condition whose evaluation runs out of
/// budget counts as no in routing as it does evaluated whole.
#[test]
fn an_eligibility_condition_past_its_budget_counts_as_no_in_routing_too() {
    use touchpoint::routing::expr::{Schema, Values};
    let r = router(&["support"]);
    r.declare_attribute("agent.teams", Type::List(ScalarType::Str)).unwrap();
    r.declare_attribute("agent.codes", Type::List(ScalarType::Str)).unwrap();
    r.declare_attribute("item.code", Type::STR).unwrap();
    let teams: Vec<String> = (0..6000).map(|i| format!("t{i}")).collect();
    let codes: Vec<String> = (0..6000).map(|i| format!("c{i}")).collect();
    let agent =
        chat_agent("a", "support", 1).with_attribute("teams", teams.clone()).with_attribute("codes", codes.clone());
    r.upsert_agent(agent, t0()).unwrap();
    let cond = r#""t5999" in agent.teams and item.code in agent.codes"#;
    // Evaluated whole, each list scan takes ~6,000 of the 10,000 steps.
    let mut b = Schema::builder();
    b.declare("agent.teams", Type::List(ScalarType::Str)).unwrap();
    b.declare("agent.codes", Type::List(ScalarType::Str)).unwrap();
    b.declare("item.code", Type::STR).unwrap();
    let s = b.build();
    let mut v = Values::new(&s);
    v.set("agent.teams", teams).unwrap().set("agent.codes", codes).unwrap().set("item.code", "c5999").unwrap();
    let whole = s.compile(cond).unwrap().eval(&v);
    assert!(matches!(&whole, Err(Error::Expression(e)) if e.kind() == ExprErrorKind::Budget), "{whole:?}");
    let plan = Plan::new([Rule::new("r", [Step::new(Pool::queues([qid("support")])).eligible(Term::expr(cond))])]);
    r.set_plan(plan, t0()).unwrap();
    let d = r.submit(chat(1, "support", t0()).with_attribute("code", "c5999"), t0()).unwrap();
    assert_eq!(assigned_to(&d), None, "{d:?}");
    // Within budget, the same split condition routes.
    let d = r.submit(chat(2, "support", t0()).with_attribute("code", "c1"), t0()).unwrap();
    assert_eq!(assigned_to(&d).as_deref(), Some("a"), "{d:?}");
}
