//! Plans from JSON: round trips, path-precise errors for malformed plans, and no panic on any
//! input.

mod routing_common;

use chrono::TimeDelta;
use proptest::prelude::*;
use routing_common::*;
use touchpoint::Error;
use touchpoint::routing::*;

fn reason(e: Error) -> String {
    match e {
        Error::InvalidInput { field: "plan", reason } => reason,
        other => panic!("expected an invalid plan, got {other:?}"),
    }
}

#[test]
fn a_plan_round_trips_through_json() {
    let plan = Plan::new([Rule::new(
        "vip",
        [
            Step::new(Pool::preferred()).dwell(TimeDelta::seconds(15)).named("owner"),
            Step::new(Pool::queues([qid("vip")]))
                .eligible(Term::and([Term::ItemSkills, Term::not(Term::Bot(true))]))
                .ranked(Ranker::new([RankKey::Proficiency("billing".into()), RankKey::LeastLoad]))
                .with_priority(PriorityChange::Raise(10))
                .dwell(TimeDelta::milliseconds(2500))
                .timed_from_item_age()
                .skip_if(SkipIf::QueueLongerThan(50)),
            Step::new(Pool::any()).widen(),
        ],
    )
    .when(Term::item_attr_equals("tier", "vip"))
    .fallback(Fallback::Overflow(qid("general")))]);
    let json = serde_json::to_string_pretty(&plan).unwrap();
    let back = Plan::from_json(&json).unwrap();
    assert_eq!(back, plan);
}

#[test]
fn malformed_plans_give_typed_errors_with_a_location() {
    let cases: &[(&str, &str)] = &[
        ("{", "EOF while parsing"),
        (r#"{"rules": 3}"#, "line 1 column"),
        (r#"{"rules": [{"steps": []}]}"#, "missing field `name`"),
        (r#"{"rules": [{"name": "a", "steps": []}]}"#, "rules[0].steps: a rule needs at least one step"),
        (
            r#"{"rules": [{"name": "a", "steps": [{}]}, {"name": "a", "steps": [{}]}]}"#,
            "rules[1].name: rule name \"a\" is used twice",
        ),
        (r#"{"rules": [{"name": "a", "steps": [{}, {}]}]}"#, "rules[0].steps[0].dwell: only the last step may stay"),
        (r#"{"rules": [{"name": "a", "steps": [{"dwell": -3}]}]}"#, "non-negative number of seconds"),
        (r#"{"rules": [{"name": "a", "steps": [{"dwell": 1e12}]}]}"#, "longer than the limit"),
        (r#"{"rules": [{"name": "a", "steps": [{"mode": "sideways"}]}]}"#, "unknown variant `sideways`"),
        (
            r#"{"rules": [{"name": "a", "when": "item_skills", "steps": [{}]}]}"#,
            "rules[0].when: `item skills` reads the agent",
        ),
        (
            r#"{"rules": [{"name": "a", "steps": [{"ranker": ["least_load", "round_robin", "longest_idle", "most_spare_capacity"]}]}]}"#,
            "rules[0].steps[0].ranker: at most 3 live-state keys",
        ),
        (
            r#"{"rules": [{"name": "a", "steps": [{"ranker": [{"proficiency": ""}]}]}]}"#,
            "rules[0].steps[0].ranker: a skill",
        ),
        (r#"{"rules": [{"name": "", "steps": [{}]}]}"#, "rules[0].name: a rule name is 1 to 128 characters"),
        (r#"{"rules": [{"name": "a", "steps": [{"pool": {"queues": "x"}}]}]}"#, "invalid type"),
        (r#"{"rules": [{"name": "a", "steps": [{"pool": {"queues": ["bad key"]}}]}]}"#, "contains ' '"),
        // A misspelt key is refused, not ignored (it would silently make everyone eligible).
        (r#"{"rules": [{"name": "a", "steps": [{"eligibilty": "any"}]}]}"#, "unknown field `eligibilty`"),
        (r#"{"rules": [{"name": "a", "stpes": [{}]}]}"#, "unknown field `stpes`"),
        (r#"{"rules": [{"name": "a", "steps": [{"pool": {"queue": ["q"]}}]}]}"#, "unknown field `queue`"),
        // Inside terms, rankers, timeouts and expression trees too.
        (
            r#"{"rules": [{"name": "a", "steps": [{"eligibility": {"skill": {"name": "s", "min": 3, "max": 5}}}]}]}"#,
            "unknown field `max`, expected `name` or `min` at line 1 column 90",
        ),
        (
            r#"{"rules": [{"name": "a", "when": {"item_attr": {"key": "vip", "equal": true}}, "steps": [{}]}]}"#,
            "unknown field `equal`",
        ),
        (
            r#"{"rules": [{"name": "a", "steps": [{"eligibility": {"agent_attr": {"key": "t", "equals": 1, "in": [2]}}}]}]}"#,
            "exactly one test",
        ),
        (r#"{"rules": [{"name": "a", "steps": [{"eligibility": {"agent_attr": {"key": "t"}}}]}]}"#, "exactly one test"),
        (
            r#"{"rules": [{"name": "a", "steps": [{"eligibility": {"same_attr": {"agent": "x", "item": "y", "z": 1}}}]}]}"#,
            "unknown field `z`",
        ),
        (
            r#"{"rules": [{"name": "a", "steps": [{"eligibility": {"expr": {"call": {"name": "f", "args": [], "arg": 1}}}}]}]}"#,
            "unknown field `arg`",
        ),
    ];
    for (json, want) in cases {
        let got = reason(Plan::from_json(json).unwrap_err());
        assert!(got.contains(want), "{json}\n  gave: {got}\n  want: {want}");
    }
}

#[test]
fn attribute_terms_read_back_what_they_write_and_exists_is_written_in_toml_as_true() {
    for t in [
        Term::AgentAttr { key: "tier".into(), test: AttrTest::Equals(serde_json::json!("gold")) },
        Term::ItemAttr { key: "tags".into(), test: AttrTest::In(vec![serde_json::json!(1), serde_json::json!("a")]) },
        Term::AgentAttr { key: "tier".into(), test: AttrTest::Exists },
    ] {
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Term>(&json).unwrap(), t, "{json}");
    }
    let toml = r#"
[[rules]]
name = "vip"
when = { item_attr = { key = "vip", exists = true } }
[[rules.steps]]
eligibility = { agent_attr = { key = "tier", equals = "gold" } }
"#;
    let plan: Plan = toml::from_str(toml).unwrap();
    plan.validate().unwrap();
    assert_eq!(plan.rules[0].when, Term::ItemAttr { key: "vip".into(), test: AttrTest::Exists });
    assert!(
        reason(
            Plan::from_json(
                r#"{"rules": [{"name": "a", "when": {"item_attr": {"key": "v", "exists": false}}, "steps": [{}]}]}"#
            )
            .unwrap_err()
        )
        .contains("`exists` takes `null` or `true`")
    );
}

#[test]
fn deep_and_huge_terms_are_refused() {
    let mut t = Term::Any;
    for _ in 0..40 {
        t = Term::not(t);
    }
    let plan = Plan::new([Rule::new("deep", [Step::new(Pool::default()).eligible(t)])]);
    assert!(reason(plan.validate().unwrap_err()).contains("rules[0].steps[0].eligibility: nested deeper than 32"));
    let wide = Term::or((0..2000).map(|n| Term::skill(format!("s{n}"), 1)));
    let plan = Plan::new([Rule::new("wide", [Step::new(Pool::default()).eligible(wide)])]);
    assert!(reason(plan.validate().unwrap_err()).contains("more than 1024 terms"));
    // The router refuses them too, and keeps its old plan.
    let r = router(&["s"]);
    r.upsert_agent(chat_agent("a", "s", 1), t0()).unwrap();
    assert!(r.set_plan(plan, t0()).is_err());
    assert_eq!(assigned_to(&r.submit(chat(1, "s", t0()), t0()).unwrap()).as_deref(), Some("a"));
}

#[test]
fn a_plan_naming_an_unknown_queue_is_refused_by_the_router() {
    let r = router(&["s"]);
    let plan =
        Plan::from_json(r#"{"rules": [{"name": "a", "steps": [{}], "fallback": {"overflow": "nowhere"}}]}"#).unwrap();
    let err = reason(r.set_plan(plan, t0()).unwrap_err());
    assert!(err.contains("rules[0].fallback: unknown queue"), "{err}");
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        any::<f64>().prop_map(|n| serde_json::json!(n)),
        prop::sample::select(vec![
            "item_skills",
            "widen",
            "replace",
            "item_age",
            "any",
            "a",
            "",
            "stay_queued",
            "least_load",
            "rules",
        ])
        .prop_map(|s| serde_json::json!(s)),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        let keys = prop::sample::select(vec![
            "rules",
            "name",
            "steps",
            "when",
            "pool",
            "queues",
            "agents",
            "eligibility",
            "ranker",
            "dwell",
            "mode",
            "timer",
            "skip_if",
            "priority",
            "fallback",
            "and",
            "or",
            "not",
            "skill",
            "min",
            "item_attr",
            "key",
            "equals",
            "set",
            "raise",
            "proficiency",
            "overflow",
        ]);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(keys, inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(s in ".{0,200}") {
        let _ = Plan::from_json(&s);
    }

    #[test]
    fn arbitrary_json_plans_never_panic_and_valid_ones_route(v in json_value()) {
        let text = v.to_string();
        if let Ok(plan) = Plan::from_json(&text) {
            let r = router(&["s"]);
            r.upsert_agent(chat_agent("a", "s", 1), t0()).unwrap();
            if r.set_plan(plan, t0()).is_ok() {
                r.submit(chat(1, "s", t0()), t0()).unwrap();
                r.tick(at(3600));
                r.sweep(at(3601));
                prop_assert!(r.agent(&aid("a")).unwrap().load <= 1);
            }
        }
    }
}

#[test]
fn misspelt_keys_in_agents_and_queues_are_refused_with_their_position() {
    let agent = r#"{"id": "ana", "skils": {"billing": 3}}"#;
    let err = serde_json::from_str::<Agent>(agent).unwrap_err().to_string();
    assert!(err.contains("unknown field `skils`") && err.contains("column"), "{err}");
    let queue = r#"{"id": "support", "disipline": "priority"}"#;
    let err = serde_json::from_str::<Queue>(queue).unwrap_err().to_string();
    assert!(err.contains("unknown field `disipline`"), "{err}");
    // Correctly spelt, the same records load.
    let ana: Agent = serde_json::from_str(r#"{"id": "ana", "skills": {"billing": 3}}"#).unwrap();
    assert_eq!(ana.skills["billing"], 3);
    serde_json::from_str::<Queue>(r#"{"id": "support"}"#).unwrap();
}
