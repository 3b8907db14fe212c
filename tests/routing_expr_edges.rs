//! Edge cases of the routing expression language and plan loading (`routing::expr`,
//! `routing::condition`, `routing::plan`, `Router::set_plan`): printing and parsing back,
//! membership in constant lists agreeing with `==`, the evaluation budget over long lists,
//! error positions, registered functions, attribute types and name limits.

mod routing_common;

use routing_common::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use touchpoint::Error;
use touchpoint::routing::expr::{
    Bindings, Expr, ExprError, Function, ListRef, ListValue, ScalarType, Schema, Slot, Type, Value, ValueRef, Values,
};
use touchpoint::routing::*;

fn schema(decls: &[(&str, Type)]) -> Schema {
    let mut b = Schema::builder();
    for (p, t) in decls {
        b.declare(p, *t).unwrap();
    }
    b.build()
}

fn expr_error(e: Error) -> ExprError {
    match e {
        Error::Expression(x) => x,
        other => panic!("expected an expression error, got {other:?}"),
    }
}

/// A list that counts how many of its elements evaluation reads.
struct CountingList {
    len: usize,
    reads: AtomicUsize,
}

impl CountingList {
    fn new(len: usize) -> Self {
        CountingList { len, reads: AtomicUsize::new(0) }
    }
    fn reads(&self) -> usize {
        self.reads.load(Ordering::Relaxed)
    }
}

impl ListValue for CountingList {
    fn len(&self) -> usize {
        self.len
    }
    fn get(&self, index: usize) -> ValueRef<'_> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        match index {
            0 => ValueRef::Str("first"),
            i if i < self.len => ValueRef::Str("other"),
            _ => ValueRef::Missing,
        }
    }
}

/// Bindings where every slot is the counting list.
struct ListBindings<'a>(&'a CountingList);

impl Bindings for ListBindings<'_> {
    fn get(&self, _slot: Slot) -> ValueRef<'_> {
        ValueRef::List(ListRef::Custom(self.0))
    }
}

// ---------------------------------------------------------------------------------------------
// Display / parse round trip

/// `Display` prints the text form, which parses back to the same tree: the short escape `\0`
/// prints as itself, so an expression within the length limit prints within it too.
#[test]
fn display_of_a_parsed_expression_parses_back_when_its_escapes_grow() {
    let src = format!("item.s == \"{}\"", "\\0".repeat(4000)); // 8,012 bytes; limit 16,384
    let e = Expr::parse(&src).unwrap();
    let text = e.to_string();
    let back = Expr::parse(&text);
    assert!(back.is_ok(), "{} bytes of source printed as {} bytes: {:?}", src.len(), text.len(), back.err());
    assert_eq!(back.unwrap(), e);
}

// ---------------------------------------------------------------------------------------------
// membership in constant lists disagrees with `==`

/// `x in [c]` means `x == c`: with an int attribute equal to 0, `item.n in [-0.0]` is true like
/// `item.n == -0.0`.
#[test]
fn an_int_in_a_float_list_holding_negative_zero_matches_like_equals() {
    let s = schema(&[("item.n", Type::INT)]);
    let mut v = Values::new(&s);
    v.set("item.n", 0).unwrap();
    let eq = s.compile("item.n == -0.0").unwrap().eval(&v).unwrap();
    let member = s.compile("item.n in [-0.0]").unwrap().eval(&v).unwrap();
    let member_mixed = s.compile("item.n in [-0.0, 2.5]").unwrap().eval(&v).unwrap();
    assert_eq!((member, member_mixed), (eq, eq), "`==` says {eq:?}");
}

/// `x in [c]` means `x == c`, and a constant list answers like a list attribute with the same
/// elements: ints meet floats as floats (the docs: "as floats beyond 2^53").
#[test]
fn a_float_in_an_int_list_matches_like_equals() {
    let s = schema(&[("item.x", Type::FLOAT), ("item.list", Type::List(ScalarType::Int))]);
    let mut v = Values::new(&s);
    v.set("item.x", 9_007_199_254_740_992.0).unwrap();
    v.set("item.list", vec![9_007_199_254_740_993i64]).unwrap();
    let eq = s.compile("item.x == 9007199254740993").unwrap().eval(&v).unwrap();
    let dynamic = s.compile("item.x in item.list").unwrap().eval(&v).unwrap();
    let constant = s.compile("item.x in [9007199254740993]").unwrap().eval(&v).unwrap();
    assert_eq!(eq, dynamic);
    assert_eq!(constant, eq, "`==` and `in item.list` say {eq:?}");
}

// ---------------------------------------------------------------------------------------------
// the evaluation budget

/// "Every list element examined costs one step": `first() in item.tags` with the needle as the
/// list's first element reads one element; a list beside a function call is read in place, not
/// copied whole outside the budget.
#[test]
fn a_function_needle_does_not_copy_the_whole_list_outside_the_budget() {
    let mut b = Schema::builder();
    b.declare("item.tags", Type::List(ScalarType::Str)).unwrap();
    b.function(Function::new("first", [], Type::STR, |_| Ok(Value::Str("first".into())))).unwrap();
    let s = b.build();
    let rule = s.compile("first() in item.tags").unwrap();
    let list = CountingList::new(1_000_000);
    let result = rule.eval(&ListBindings(&list));
    assert_eq!(list.reads(), 1, "{result:?}");
    assert!(matches!(result, Ok(touchpoint::routing::expr::Truth::True)), "{result:?}");
}

/// A scan of a long list stops when the budget runs out: `"absent" in item.tags` over 1,000,000
/// elements with a budget of 10,000 steps reads at most one element more than the budget.
#[test]
fn a_list_scan_stops_when_the_budget_runs_out() {
    let s = schema(&[("item.tags", Type::List(ScalarType::Str))]);
    let rule = s.compile(r#""absent" in item.tags"#).unwrap();
    let list = CountingList::new(1_000_000);
    let result = rule.eval(&ListBindings(&list));
    let budget = s.limits().eval_budget as usize;
    assert!(list.reads() <= budget + 1, "{} elements read with a budget of {budget} steps: {result:?}", list.reads());
    assert!(result.is_err(), "the budget runs out: {result:?}");
}

// ---------------------------------------------------------------------------------------------
// error positions

/// "A rule must be a condition" points at the expression (3:3 in `"\n\n  item.p"`), not at 1:1.
#[test]
fn a_rule_that_is_not_a_condition_points_at_the_expression() {
    let s = schema(&[("item.p", Type::INT)]);
    let e = expr_error(s.compile("\n\n  item.p").unwrap_err());
    let p = e.position().unwrap();
    assert_eq!((p.line, p.column, p.offset), (3, 3, 4), "{e}");
}

// ---------------------------------------------------------------------------------------------
// plans and the router

/// A host's own function named `schedule` with a member the built-in does not have
/// (`schedule("x").staffed`) is called like any other registered function.
#[test]
fn a_registered_function_named_schedule_is_called() {
    let r = router(&["support"]);
    r.register_function(
        Function::new("schedule", [Type::STR], Type::BOOL, |_| Ok(Value::Bool(true))).member("staffed"),
    )
    .unwrap();
    let plan =
        Plan::new([Rule::new("staffed", [Step::new(Pool::queues([qid("support")]))])
            .when(Term::expr(r#"schedule("x").staffed"#))]);
    r.set_plan(plan, t0()).unwrap();
    let d = r.submit(chat(1, "support", t0()), t0()).unwrap();
    assert_eq!(d.rule.as_deref(), Some("staffed"), "the registered function always returns true");
}

/// Attributes are JSON, which has no durations: declaring a duration attribute (or a list of
/// them) is refused with a message that says to declare seconds as an int, and that works.
#[test]
fn a_duration_attribute_is_refused_as_json_has_no_durations() {
    let r = router(&["support"]);
    let err = r.declare_attribute("item.sla", Type::DURATION).unwrap_err();
    assert!(err.to_string().contains("declare seconds as an int"), "{err}");
    let err = r.declare_attribute("item.slas", Type::List(ScalarType::Duration)).unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    // Seconds as an int work.
    r.declare_attribute("item.sla_secs", Type::INT).unwrap();
    let plan = Plan::new([
        Rule::new("slow", [Step::new(Pool::queues([qid("support")]))]).when(Term::expr("item.sla_secs > 60"))
    ]);
    r.set_plan(plan, t0()).unwrap();
    let d = r.submit(chat(1, "support", t0()).with_attribute("sla_secs", 90), t0()).unwrap();
    assert_eq!(d.rule.as_deref(), Some("slow"));
}

/// Name limits count characters: a rule name of 100 `é` (200 bytes) is within "1 to 128
/// characters".
#[test]
fn a_rule_name_of_100_characters_is_accepted() {
    let name = "é".repeat(100);
    let json = format!(r#"{{"rules": [{{"name": "{name}", "steps": [{{"pool": {{"any_agent": true}}}}]}}]}}"#);
    if let Err(e) = Plan::from_json(&json) {
        panic!("{} characters refused: {e}", name.chars().count());
    }
}
