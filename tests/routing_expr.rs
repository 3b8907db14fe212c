//! The routing expression language through its public API: text and tree forms, typing,
//! three-valued evaluation, limits, custom functions and the analysis helpers.

use chrono::TimeDelta;
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use touchpoint::Error;
use touchpoint::routing::expr::{
    Bindings, Call, Expr, ExprError, ExprErrorKind, Function, KEYWORDS, Limits, ListRef, Literal, Path, ScalarType,
    Schema, Slot, Truth, Type, Value, ValueRef, Values,
};

// ---------------------------------------------------------------------------------------------
// helpers

fn expr_error(e: Error) -> ExprError {
    match e {
        Error::Expression(x) => x,
        other => panic!("expected an expression error, got {other:?}"),
    }
}

/// The schema most tests use: item, agent and queue paths plus a calendar function.
fn schema() -> Schema {
    schema_with(Limits::default())
}

fn schema_with(limits: Limits) -> Schema {
    let mut b = Schema::builder();
    b.limits(limits);
    for (path, ty) in [
        ("item.channel", Type::STR),
        ("item.language", Type::STR),
        ("item.subject", Type::STR),
        ("item.priority", Type::INT),
        ("item.score", Type::FLOAT),
        ("item.age", Type::DURATION),
        ("item.vip", Type::BOOL),
        ("item.tags", Type::List(ScalarType::Str)),
        ("item.required_skill", Type::STR),
        ("agent.languages", Type::List(ScalarType::Str)),
        ("agent.skills", Type::Map(ScalarType::Int)),
        ("agent.team", Type::STR),
        ("agent.available", Type::BOOL),
        ("queue.waiting", Type::INT),
        ("queue.ewt", Type::DURATION),
        ("queue.service_level", Type::FLOAT),
    ] {
        b.declare(path, ty).unwrap();
    }
    b.function(
        Function::new("schedule", [Type::STR], Type::BOOL, |args| match args {
            [ValueRef::Str("support")] => Ok(Value::Bool(true)),
            [ValueRef::Str("night")] => Ok(Value::Bool(false)),
            [ValueRef::Str(_)] => Ok(Value::Missing),
            _ => Err("schedule takes a name".into()),
        })
        .member("open")
        .cost(10),
    )
    .unwrap();
    b.build()
}

fn compile(schema: &Schema, src: &str) -> touchpoint::routing::expr::CompiledExpr {
    schema.compile(src).unwrap_or_else(|e| panic!("{src}: {e}"))
}

fn compile_err(schema: &Schema, src: &str) -> ExprError {
    expr_error(schema.compile(src).expect_err(src))
}

fn eval(schema: &Schema, src: &str, v: &Values) -> Truth {
    compile(schema, src).eval(v).unwrap_or_else(|e| panic!("{src}: {e}"))
}

/// Bindings for a typical agent/item pair.
fn sample(schema: &Schema) -> Values {
    let mut v = Values::new(schema);
    v.set("item.channel", "whatsapp").unwrap();
    v.set("item.language", "es").unwrap();
    v.set("item.subject", "Refund for order 42").unwrap();
    v.set("item.priority", 2).unwrap();
    v.set("item.score", 0.75).unwrap();
    v.set("item.age", TimeDelta::seconds(120)).unwrap();
    v.set("item.vip", true).unwrap();
    v.set("item.tags", vec!["vip", "billing"]).unwrap();
    v.set("item.required_skill", "billing").unwrap();
    v.set("agent.languages", vec!["en", "es"]).unwrap();
    v.set("agent.skills.billing", 4).unwrap();
    v.set(r#"agent.skills["es-MX"]"#, 2).unwrap();
    v.set("agent.team", "tier2").unwrap();
    v.set("agent.available", true).unwrap();
    v.set("queue.waiting", 12).unwrap();
    v.set("queue.ewt", TimeDelta::minutes(3)).unwrap();
    v.set("queue.service_level", 0.8).unwrap();
    v
}

// ---------------------------------------------------------------------------------------------
// the text form

#[test]
fn the_brief_examples_parse_compile_and_decide() {
    let s = schema();
    let v = sample(&s);
    let cases = [
        (
            r#"item.channel == "whatsapp" and item.language in agent.languages and agent.skills.billing >= 3"#,
            Truth::True,
        ),
        ("not (queue.waiting > 10) or item.priority >= 2", Truth::True),
        ("not (queue.waiting > 10) or item.priority >= 3", Truth::False),
        (r#""vip" in item.tags"#, Truth::True),
        ("item.age > 90s", Truth::True),
        ("item.age > 2m1s", Truth::False),
        (r#"schedule("support").open"#, Truth::True),
        (r#"schedule("night").open"#, Truth::False),
        ("has(agent.skills.billing) and not has(agent.skills.spanish)", Truth::True),
        (r#"agent.skills["es-MX"] == 2"#, Truth::True),
        (r#"item.channel in ["sms", "whatsapp"]"#, Truth::True),
        (r#"agent.languages contains "en""#, Truth::True),
        (r#"item.subject contains "Refund""#, Truth::True),
        (r#""refund" in item.subject"#, Truth::False), // case-sensitive
        ("item.required_skill in agent.skills", Truth::True),
        (r#""spanish" in agent.skills"#, Truth::False),
        (r#"item.channel not in ["sms", "email"]"#, Truth::True),
        ("item.vip == true and agent.available", Truth::True),
        ("queue.ewt <= 3m and queue.service_level >= 0.8", Truth::True),
        ("item.score > 0 and item.score < 1", Truth::True),
    ];
    for (src, want) in cases {
        assert_eq!(eval(&s, src, &v), want, "{src}");
    }
}

#[test]
fn display_prints_text_that_parses_back_to_the_same_tree() {
    let cases = [
        r#"item.channel == "whatsapp" and item.language in agent.languages and agent.skills.billing >= 3"#,
        "not (queue.waiting > 10) or item.priority >= 2",
        "(a or b) and c",
        "(a and b) and c",
        "a and (b and c)",
        "not not a",
        "(not a) == b",
        "(a == b) != c",
        r#"x not in ["a", "b"]"#,
        r#"agent.skills["es-MX"] >= 2"#,
        r#"f(a or b, [1, 2.5], -3, 1h30m, "q\"uote\n").open"#,
        "has(agent.skills.spanish)",
        "x == -9223372036854775808",
        "x > 1e300 or x < -0.000001",
    ];
    for src in cases {
        let e = Expr::parse(src).unwrap();
        let printed = e.to_string();
        assert_eq!(Expr::parse(&printed).unwrap(), e, "{src} printed as {printed}");
    }
    // Canonical spelling is kept where it exists.
    assert_eq!(Expr::parse("not (x == 1)").unwrap().to_string(), "not x == 1");
    assert_eq!(Expr::parse("d == 90s").unwrap().to_string(), "d == 1m30s");
    assert_eq!(Expr::parse("n == 2.0").unwrap().to_string(), "n == 2.0");
    assert_eq!(Expr::parse("s == 'it''s'").map_err(expr_error).unwrap_err().kind(), ExprErrorKind::Syntax);
    assert_eq!(Expr::parse(r"s == 'it\'s'").unwrap().to_string(), r#"s == "it's""#);
}

#[test]
fn keywords_bind_not_tightest_then_and_then_or() {
    let e = Expr::parse("a or b and not c").unwrap();
    match e {
        Expr::Or(items) => {
            assert_eq!(items.len(), 2);
            assert!(matches!(&items[1], Expr::And(and) if matches!(and[1], Expr::Not(_))));
        }
        other => panic!("expected or, got {other:?}"),
    }
    // `not` applies to the whole comparison.
    assert!(matches!(Expr::parse("not a == 1").unwrap(), Expr::Not(inner) if matches!(*inner, Expr::Eq(..))));
}

#[test]
fn syntax_errors_say_what_was_expected_and_where() {
    let cases: [(&str, &str); 12] = [
        (r#"(item.channel == "sms" and item.priority > 2"#, "expected ')' at 1:45"),
        ("item.priority >", "expected a value, found the end of the expression at 1:16"),
        ("item.priority = 2", "expected '==' (a single '=' is not an operator) at 1:15"),
        ("a < b < c", "comparisons do not chain; join them with `and` or use parentheses at 1:7"),
        ("a && b", "unexpected '&' (write `and`) at 1:3"),
        ("!a", "unexpected '!' (write `not`) at 1:1"),
        (r#"x == "open"#, "unterminated string at 1:6"),
        ("x > 5parsecs", "unknown duration unit `parsecs` (use d, h, m, s, ms, us or ns) at 1:6"),
        ("x > 5 ss", "expected `and`, `or` or the end of the expression, found name `ss` at 1:7"),
        ("x > 1.5h", "a duration is written with whole numbers, like 1h30m or 90s at 1:5"),
        ("a)", "unexpected ')' (no matching '(') at 1:2"),
        ("has(1)", "has() takes a path, like has(agent.skills.spanish) at 1:5"),
    ];
    for (src, want) in cases {
        let err = expr_error(Expr::parse(src).expect_err(src));
        assert_eq!(err.kind(), ExprErrorKind::Syntax, "{src}");
        assert_eq!(err.to_string(), want, "{src}");
    }
    assert_eq!(
        expr_error(Expr::parse("x == 99999999999999999999").unwrap_err()).message(),
        "integer 99999999999999999999 is out of range"
    );
}

#[test]
fn positions_count_lines_and_characters_and_give_the_byte_offset() {
    let src = "item.channel == \"ñandú\"\n  and (item.priority >\n 2)";
    let ok = schema().compile(src);
    assert!(ok.is_ok(), "{ok:?}");
    let src = "item.channel == \"ñandú\"\n  and (item.priority > 2";
    let err = expr_error(Expr::parse(src).unwrap_err());
    let p = err.position().unwrap();
    assert_eq!((p.line, p.column), (2, 25));
    assert_eq!(p.offset, src.len());
    assert_eq!(err.to_string(), "expected ')' at 2:25");
    // Columns count characters: "ñ" and "ú" are two bytes each.
    let err = compile_err(&schema(), "item.channel == \"ñandú\" and item.channel == 3");
    let p = err.position().unwrap();
    assert_eq!((p.line, p.column, p.offset), (1, 42, 43));
}

// ---------------------------------------------------------------------------------------------
// typing

#[test]
fn type_errors_name_the_operands_and_point_at_the_operator() {
    let s = schema();
    let cases = [
        (r#"item.channel == 3"#, "cannot compare item.channel (string) with 3 (int) at 1:14", ExprErrorKind::Type),
        (
            r#"item.priority >= 1 and item.age > 90"#,
            "cannot compare item.age (duration) with 90 (int) at 1:33",
            ExprErrorKind::Type,
        ),
        ("item.vip < true", "cannot order bools: item.vip < true at 1:10", ExprErrorKind::Type),
        ("item.priority and item.vip", "`and` needs conditions, but item.priority is int at 1:1", ExprErrorKind::Type),
        ("not item.channel", "`not` needs conditions, but item.channel is string at 1:5", ExprErrorKind::Type),
        ("item.priority", "a rule must be a condition (bool), but item.priority is int at 1:1", ExprErrorKind::Type),
        ("  [1, 2]", "a rule must be a condition (bool), but [1, 2] is list of int at 1:3", ExprErrorKind::Type),
        (
            "3 in agent.languages",
            "cannot look for 3 (int) in agent.languages (list of string) at 1:3",
            ExprErrorKind::Type,
        ),
        (
            "item.tags == agent.languages",
            "cannot compare item.tags (list of string) with agent.languages (list of string); lists and maps only work with `in` and `contains` at 1:11",
            ExprErrorKind::Type,
        ),
        (
            r#"item.priority in [1, "a"]"#,
            r#"list elements must have one type: "a" (string) in a list of int at 1:22"#,
            ExprErrorKind::Type,
        ),
        (
            "item.chanel == 1",
            "unknown path item.chanel (did you mean item.channel?) at 1:1",
            ExprErrorKind::UnknownPath,
        ),
        (
            "agent.skills == 3",
            "cannot compare agent.skills (map of int) with 3 (int); lists and maps only work with `in` and `contains` at 1:14",
            ExprErrorKind::Type,
        ),
        (
            "agent == 3",
            "agent is not a value; declared paths under it include agent.languages at 1:1",
            ExprErrorKind::UnknownPath,
        ),
        (
            "item.channel.x == 3",
            "unknown path item.channel.x: item.channel is a string and has no members at 1:1",
            ExprErrorKind::UnknownPath,
        ),
        (
            "agent.skills.billing.x == 3",
            "unknown path agent.skills.billing.x: entries of agent.skills are int and have no members at 1:1",
            ExprErrorKind::UnknownPath,
        ),
        ("nothing(1)", "unknown function nothing at 1:1", ExprErrorKind::UnknownFunction),
        (
            r#"schedule("x").closed"#,
            "unknown function schedule(…).closed; registered: schedule(string).open -> bool at 1:1",
            ExprErrorKind::UnknownFunction,
        ),
        (
            r#"schedule("x", 1).open"#,
            "schedule(string).open -> bool takes 1 argument(s), 2 given at 1:1",
            ExprErrorKind::UnknownFunction,
        ),
        (
            "schedule(item.priority).open",
            "argument 1 of schedule(string).open -> bool must be string, but item.priority is int at 1:1",
            ExprErrorKind::Type,
        ),
        (
            "has(agent.skills)",
            "has() needs a value or a map entry, like has(agent.skills.<name>) at 1:1",
            ExprErrorKind::Type,
        ),
    ];
    for (src, want, kind) in cases {
        let err = compile_err(&s, src);
        assert_eq!(err.to_string(), want, "{src}");
        assert_eq!(err.kind(), kind, "{src}");
    }
}

#[test]
fn numbers_compare_across_int_and_float_but_not_with_other_types() {
    let s = schema();
    let v = sample(&s);
    assert_eq!(eval(&s, "item.priority == 2.0", &v), Truth::True);
    assert_eq!(eval(&s, "item.score < 1", &v), Truth::True);
    assert_eq!(eval(&s, "item.priority in [1.5, 2]", &v), Truth::True);
    assert_eq!(eval(&s, "item.score in [0.75, 3]", &v), Truth::True);
    assert_eq!(eval(&s, "item.priority in [1, 3]", &v), Truth::False);
    assert!(s.compile(r#"item.priority == "2""#).is_err());
    assert!(s.compile("item.score == true").is_err());
}

#[test]
fn trees_from_code_or_serde_get_messages_that_quote_the_offending_part() {
    let s = schema();
    let e: Expr = serde_json::from_str(r#"{"eq": [{"path": "item.channel"}, {"int": 3}]}"#).unwrap();
    let err = expr_error(s.compile_expr(&e).unwrap_err());
    assert_eq!(err.position(), None);
    assert_eq!(err.to_string(), "cannot compare item.channel (string) with 3 (int)");
    let empty: Expr = serde_json::from_str(r#"{"and": []}"#).unwrap();
    assert_eq!(expr_error(s.compile_expr(&empty).unwrap_err()).message(), "`and` needs at least one operand");
    let nan = Expr::Gt(Box::new(Expr::Path(Path::parse("item.score").unwrap())), Box::new(Expr::Float(f64::NAN)));
    assert_eq!(expr_error(s.compile_expr(&nan).unwrap_err()).message(), "float literals must be finite");
}

// ---------------------------------------------------------------------------------------------
// evaluation: every operator, with and without missing values

#[test]
fn every_operator_on_present_values() {
    let s = schema();
    let v = sample(&s);
    let table = [
        ("item.priority == 2", true),
        ("item.priority != 2", false),
        ("item.priority < 3", true),
        ("item.priority <= 2", true),
        ("item.priority > 2", false),
        ("item.priority >= 3", false),
        (r#"item.channel < "x""#, true), // byte order
        (r#"item.channel >= "whatsapp""#, true),
        ("item.age >= 2m", true),
        ("item.age < 2m", false),
        ("item.vip != false", true),
        ("item.vip == agent.available", true),
        (r#""es" in agent.languages"#, true),
        (r#""fr" in agent.languages"#, false),
        (r#"agent.languages contains item.language"#, true),
        (r#"item.tags contains "urgent""#, false),
        ("item.language in agent.languages and item.age in [2m, 5m]", true),
        (r#""order 42" in item.subject"#, true),
        ("not item.vip", false),
        ("item.vip and not agent.available", false),
        ("item.vip or not agent.available", true),
        ("[] contains item.channel", false),
        ("item.channel in []", false),
        ("true", true),
        ("false or (true and true)", true),
    ];
    for (src, want) in table {
        assert_eq!(eval(&s, src, &v), Truth::from(want), "{src}");
    }
}

#[test]
fn a_missing_value_makes_comparisons_unknown_and_unknown_is_not_a_match() {
    let s = schema();
    let v = Values::new(&s); // everything missing
    for src in [
        "item.priority == 2",
        "item.priority != 2",
        "item.priority < 2",
        "item.priority >= 2",
        r#"item.channel == "sms""#,
        "item.age > 1s",
        "item.vip",
        "item.vip == true",
        r#""vip" in item.tags"#,
        r#"item.channel in ["sms"]"#,
        r#"item.subject contains "x""#,
        "item.required_skill in agent.skills",
        "agent.skills.billing >= 3",
        // `not` keeps unknown unknown: `not (a < b)` means `a >= b`.
        "not (item.priority > 10)",
        "not item.vip",
        r#"item.channel not in ["sms"]"#,
        // unknown absorbs true in `and` and false in `or`.
        "true and item.vip",
        "false or item.vip",
    ] {
        let rule = compile(&s, src);
        assert_eq!(rule.eval(&v).unwrap(), Truth::Unknown, "{src}");
        assert!(!rule.matches(&v).unwrap(), "{src}");
    }
    // ... but a definite side decides.
    assert_eq!(eval(&s, "false and item.vip", &v), Truth::False);
    assert_eq!(eval(&s, "true or item.vip", &v), Truth::True);
    assert_eq!(eval(&s, "item.vip or true", &v), Truth::True);
    // Existence checks are never unknown.
    assert_eq!(eval(&s, "has(item.priority)", &v), Truth::False);
    assert_eq!(eval(&s, "not has(agent.skills.spanish)", &v), Truth::True);
    assert_eq!(eval(&s, r#""billing" in agent.skills"#, &v), Truth::False);
    assert_eq!(eval(&s, "not has(agent.skills.spanish) or agent.skills.spanish < 3", &v), Truth::True);
    // Empty lists are present: membership is false, not unknown.
    let mut v = Values::new(&s);
    v.set("item.tags", Vec::<String>::new()).unwrap();
    assert_eq!(eval(&s, r#""vip" in item.tags"#, &v), Truth::False);
}

#[test]
fn a_nan_float_counts_as_missing() {
    let s = schema();
    let mut v = Values::new(&s);
    v.set("item.score", f64::NAN).unwrap();
    assert_eq!(eval(&s, "item.score > 0.5", &v), Truth::Unknown);
    assert_eq!(eval(&s, "item.score != 0.5", &v), Truth::Unknown);
    assert_eq!(eval(&s, "has(item.score)", &v), Truth::False);
}

#[test]
fn functions_receive_arguments_and_their_results_are_typed() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let mut b = Schema::builder();
    b.declare("item.customer", Type::STR).unwrap();
    b.declare("item.priority", Type::INT).unwrap();
    b.function(Function::new("vip", [Type::STR], Type::BOOL, move |args| {
        seen.fetch_add(1, Ordering::SeqCst);
        match args {
            [ValueRef::Str(c)] => Ok(Value::Bool(c.starts_with("vip-"))),
            [ValueRef::Missing] => Ok(Value::Missing),
            _ => Err("bad argument".into()),
        }
    }))
    .unwrap();
    b.function(Function::new("tier", [Type::STR, Type::INT], Type::STR, |args| match args {
        [ValueRef::Str(c), ValueRef::Int(p)] => Ok(Value::Str(format!("{c}-{p}"))),
        _ => Ok(Value::Missing),
    }))
    .unwrap();
    b.function(Function::new("half", [Type::FLOAT], Type::BOOL, |args| match args {
        [ValueRef::Float(x)] => Ok(Value::Bool(*x > 0.5)),
        _ => Err("not a float".into()),
    }))
    .unwrap();
    b.function(Function::new("broken", [], Type::BOOL, |_| Err("calendar store unavailable".into()))).unwrap();
    b.function(Function::new("liar", [], Type::BOOL, |_| Ok(Value::Int(1)))).unwrap();
    b.function(Function::new("levels", [], Type::List(ScalarType::Int), |_| Ok(Value::from(vec![1, 2, 3])))).unwrap();
    let s = b.build();

    let mut v = Values::new(&s);
    v.set("item.customer", "vip-7").unwrap().set("item.priority", 3).unwrap();
    assert_eq!(eval(&s, "vip(item.customer)", &v), Truth::True);
    assert_eq!(eval(&s, "not vip(\"x\")", &v), Truth::True);
    assert_eq!(eval(&s, r#"tier(item.customer, item.priority) == "vip-7-3""#, &v), Truth::True);
    assert_eq!(eval(&s, "item.priority in levels()", &v), Truth::True);
    assert_eq!(eval(&s, "4 in levels()", &v), Truth::False);
    // An int given for a float parameter arrives as a float.
    assert_eq!(eval(&s, "half(1)", &v), Truth::True);
    assert_eq!(eval(&s, "half(item.priority)", &v), Truth::True);
    assert_eq!(eval(&s, "half(0.25)", &v), Truth::False);
    // `and` stops at the first false: the function is not called.
    let before = calls.load(Ordering::SeqCst);
    assert_eq!(eval(&s, "item.priority > 5 and vip(item.customer)", &v), Truth::False);
    assert_eq!(calls.load(Ordering::SeqCst), before);
    // A missing argument reaches the function; a missing result is unknown.
    let empty = Values::new(&s);
    assert_eq!(eval(&s, "vip(item.customer)", &empty), Truth::Unknown);

    let err = expr_error(compile(&s, "broken()").eval(&v).unwrap_err());
    assert_eq!(err.kind(), ExprErrorKind::Function);
    assert_eq!(err.to_string(), "function broken failed: calendar store unavailable");
    let err = expr_error(compile(&s, "liar()").eval(&v).unwrap_err());
    assert_eq!(err.kind(), ExprErrorKind::Function);
    assert_eq!(err.to_string(), "function liar returned int, not a bool");
}

#[test]
fn functions_are_checked_when_registered() {
    let mut b = Schema::builder();
    let f = || Function::new("ok", [Type::INT], Type::BOOL, |_| Ok(Value::Bool(true)));
    b.function(f()).unwrap();
    assert!(matches!(b.function(f()), Err(Error::InvalidInput { .. })), "duplicate");
    b.function(f().member("open")).unwrap();
    for bad in ["has", "and", "9lives", "with-dash", ""] {
        let r = b.function(Function::new(bad, [], Type::BOOL, |_| Ok(Value::Missing)));
        assert!(matches!(r, Err(Error::InvalidInput { field: "schema.function", .. })), "{bad}");
    }
    let many = Function::new("many", vec![Type::INT; 9], Type::BOOL, |_| Ok(Value::Missing));
    assert!(b.function(many).is_err());
    let map = Function::new("map", [], Type::Map(ScalarType::Int), |_| Ok(Value::Missing));
    assert!(b.function(map).is_err());
}

#[test]
fn schema_declarations_are_checked() {
    let mut b = Schema::builder();
    let first = b.declare("agent.skills", Type::Map(ScalarType::Int)).unwrap();
    assert_eq!(first.index(), 0);
    assert_eq!(b.declare("agent.team", Type::STR).unwrap().index(), 1);
    for (bad, why) in [
        ("agent.skills", "already declared"),
        ("agent.skills.billing", "overlaps"),
        ("agent", "overlaps"),
        ("and.x", "keyword"),
        ("item..x", "expected a name"),
        ("", "expected a path"),
    ] {
        let err = b.declare(bad, Type::INT).unwrap_err();
        assert!(err.to_string().contains(why), "{bad}: {err}");
    }
    let s = b.build();
    assert_eq!(s.slot("agent.team").map(Slot::index), Some(1));
    assert_eq!(s.slot("agent.nope"), None);
    assert_eq!(s.slots().count(), 2);
}

// ---------------------------------------------------------------------------------------------
// bindings

/// A host's own structs, bound without building maps.
struct Agent {
    languages: BTreeSet<String>,
    skills: Vec<(String, i64)>,
}

struct Item {
    language: String,
    priority: i64,
}

struct Pair<'a> {
    agent: &'a Agent,
    item: &'a Item,
    slots: &'a [Slot; 4],
}

impl Bindings for Pair<'_> {
    fn get(&self, slot: Slot) -> ValueRef<'_> {
        if slot == self.slots[0] {
            ValueRef::Str(&self.item.language)
        } else if slot == self.slots[1] {
            ValueRef::Int(self.item.priority)
        } else if slot == self.slots[2] {
            ValueRef::List(ListRef::Custom(&self.agent.languages))
        } else {
            ValueRef::Missing
        }
    }

    fn get_key(&self, slot: Slot, key: &str) -> ValueRef<'_> {
        if slot != self.slots[3] {
            return ValueRef::Missing;
        }
        self.agent.skills.iter().find(|(k, _)| k == key).map_or(ValueRef::Missing, |(_, l)| ValueRef::Int(*l))
    }
}

#[test]
fn host_structs_bind_through_the_trait_also_as_a_trait_object() {
    let mut b = Schema::builder();
    let slots = [
        b.declare("item.language", Type::STR).unwrap(),
        b.declare("item.priority", Type::INT).unwrap(),
        b.declare("agent.languages", Type::List(ScalarType::Str)).unwrap(),
        b.declare("agent.skills", Type::Map(ScalarType::Int)).unwrap(),
    ];
    let s = b.build();
    let rule = compile(&s, "item.language in agent.languages and agent.skills.billing >= item.priority");
    assert_eq!(rule.slots(), &slots[..]);
    let agent = Agent { languages: ["en", "es"].map(String::from).into(), skills: vec![("billing".into(), 3)] };
    let item = Item { language: "es".into(), priority: 3 };
    let pair = Pair { agent: &agent, item: &item, slots: &slots };
    assert!(rule.matches(&pair).unwrap());
    let dynamic: &dyn Bindings = &pair;
    assert!(rule.matches(dynamic).unwrap());
    let item = Item { language: "fr".into(), priority: 3 };
    assert!(!rule.matches(&Pair { agent: &agent, item: &item, slots: &slots }).unwrap());
}

struct Wrong;

impl Bindings for Wrong {
    fn get(&self, _slot: Slot) -> ValueRef<'_> {
        ValueRef::Str("oops")
    }
}

#[test]
fn bindings_that_return_another_type_than_declared_give_a_binding_error() {
    let s = schema();
    for src in ["item.priority > 1", "item.vip", r#""a" in item.tags"#, "item.age < 1s"] {
        let err = expr_error(compile(&s, src).eval(&Wrong).unwrap_err());
        assert_eq!(err.kind(), ExprErrorKind::Binding, "{src}");
    }
    let err = expr_error(compile(&s, "item.priority > 1").eval(&Wrong).unwrap_err());
    assert_eq!(err.to_string(), "bindings returned a string for item.priority, declared int");
    // Values refuses wrong types up front.
    let mut v = Values::new(&s);
    assert!(v.set("item.priority", "high").is_err());
    assert!(v.set("item.tags", vec![1, 2]).is_err());
    assert!(v.set("agent.skills", 3).is_err());
    assert!(v.set("nope.x", 3).is_err());
    assert!(v.set("item.score", 3).is_ok(), "ints are accepted for floats");
}

// ---------------------------------------------------------------------------------------------
// limits

#[test]
fn deep_nesting_is_a_limit_error_not_a_stack_overflow() {
    let s = schema();
    for src in [
        format!("{}true{}", "(".repeat(100_000), ")".repeat(100_000)),
        format!("{}item.vip", "not ".repeat(50_000)),
        format!("{}1{}", "schedule(".repeat(20_000), ")".repeat(20_000)),
    ] {
        let mut limits = Limits::default();
        limits.max_source_len = usize::MAX;
        let err = expr_error(Expr::parse_with_limits(&src, &limits).unwrap_err());
        assert_eq!(err.kind(), ExprErrorKind::Limit, "{}", &src[..20]);
        assert!(err.message().contains("nested more than 64 levels"), "{err}");
        let err = compile_err(&s, &src);
        assert_eq!(err.kind(), ExprErrorKind::Limit);
    }
    // Just inside the limit is fine.
    let ok = format!("{}item.vip", "not ".repeat(60));
    assert!(s.compile(&ok).is_ok());
    // A deep tree read with serde is caught by the compiler (serde_json stops at 128 levels).
    let mut json = String::from(r#"{"bool": true}"#);
    for _ in 0..100 {
        json = format!(r#"{{"not": {json}}}"#);
    }
    let deep: Expr = serde_json::from_str(&json).unwrap();
    let err = expr_error(s.compile_expr(&deep).unwrap_err());
    assert_eq!(err.kind(), ExprErrorKind::Limit);
}

#[test]
fn long_input_huge_lists_and_many_nodes_are_limit_errors() {
    let s = schema();
    let long = format!("item.channel == \"{}\"", "x".repeat(20_000));
    let err = compile_err(&s, &long);
    assert_eq!(err.kind(), ExprErrorKind::Limit);
    assert_eq!(err.message(), format!("expression is {} bytes long; the limit is 16384", long.len()));

    let mut limits = Limits::default();
    limits.max_list_len = 100;
    let s = schema_with(limits);
    let list = (0..101).map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
    let src = format!("item.priority in [{list}]");
    let err = compile_err(&s, &src);
    assert_eq!(err.kind(), ExprErrorKind::Limit);
    let at = src.rfind("100").unwrap();
    assert_eq!(err.to_string(), format!("list has more than 100 elements at 1:{}", at + 1));
    assert_eq!(err.position().unwrap().offset, at);
    let huge = Expr::In(
        Box::new(Expr::Path(Path::parse("item.priority").unwrap())),
        Box::new(Expr::List((0..5000).map(Literal::Int).collect())),
    );
    assert_eq!(expr_error(s.compile_expr(&huge).unwrap_err()).kind(), ExprErrorKind::Limit);

    let mut limits = Limits::default();
    limits.max_nodes = 50;
    let s = schema_with(limits);
    let many = vec!["item.priority > 1"; 20].join(" and ");
    let err = compile_err(&s, &many);
    assert_eq!(err.kind(), ExprErrorKind::Limit);
    assert_eq!(err.message(), "expression has more than 50 nodes");
    let tree = Expr::parse(&many).unwrap();
    assert_eq!(expr_error(s.compile_expr(&tree).unwrap_err()).kind(), ExprErrorKind::Limit);
    // A tree counts its nodes as the parser counts the text's: the parents too.
    limits.max_nodes = 4;
    let s = schema_with(limits);
    for (n, fits) in [(3, true), (4, false)] {
        let text = vec!["true"; n].join(" and ");
        assert_eq!(s.compile(&text).is_ok(), fits, "{text}");
        let tree = Expr::And(vec![Expr::Bool(true); n]);
        assert_eq!(s.compile_expr(&tree).is_ok(), fits, "{tree}");
    }
    // `in` over a list: the test, the path, the list and each element.
    limits.max_nodes = 5;
    let s = schema_with(limits);
    for (n, fits) in [(2, true), (3, false)] {
        let list = Expr::In(
            Box::new(Expr::Path(Path::parse("item.priority").unwrap())),
            Box::new(Expr::List((0..n).map(Literal::Int).collect())),
        );
        assert_eq!(s.compile(&list.to_string()).is_ok(), fits, "{list}");
        assert_eq!(s.compile_expr(&list).is_ok(), fits, "{list}");
    }
}

#[test]
fn a_large_list_within_limits_is_searched_correctly() {
    let s = schema();
    let list = (0..1000).map(|i| format!("\"tag{i}\"")).collect::<Vec<_>>().join(", ");
    let rule = compile(&s, &format!("item.channel in [{list}]"));
    let mut v = Values::new(&s);
    for (channel, want) in [("tag0", true), ("tag999", true), ("tag500", true), ("tag1000", false), ("", false)] {
        v.set("item.channel", channel).unwrap();
        assert_eq!(rule.matches(&v).unwrap(), want, "{channel}");
    }
}

#[test]
fn exceeding_the_evaluation_budget_is_an_error() {
    let s = schema();
    let v = sample(&s);
    // The calendar costs 10 steps a call.
    let rule = compile(&s, r#"schedule("support").open and schedule("support").open and schedule("support").open"#);
    assert_eq!(rule.eval_with_budget(&v, 1000).unwrap(), Truth::True);
    let err = expr_error(rule.eval_with_budget(&v, 25).unwrap_err());
    assert_eq!(err.kind(), ExprErrorKind::Budget);
    assert_eq!(err.to_string(), "evaluation exceeded its budget of 25 steps");
    // Scanning a long bound list costs a step per element examined.
    let mut limits = Limits::default();
    limits.eval_budget = 500;
    let s = schema_with(limits);
    let mut v = Values::new(&s);
    v.set("item.tags", (0..10_000).map(|i| format!("t{i}")).collect::<Vec<_>>()).unwrap();
    let rule = compile(&s, r#""t5" in item.tags"#);
    assert_eq!(rule.eval(&v).unwrap(), Truth::True);
    let err = expr_error(compile(&s, r#""nope" in item.tags"#).eval(&v).unwrap_err());
    assert_eq!(err.kind(), ExprErrorKind::Budget);
}

// ---------------------------------------------------------------------------------------------
// tree form

#[test]
fn the_tree_form_round_trips_through_serde_json() {
    let src = r#"item.channel in ["sms", "whatsapp"] and (agent.skills["es-MX"] >= 2 or not has(agent.skills.billing)) and item.age > 1h30m and schedule("support").open and item.score != 0.5"#;
    let e = Expr::parse(src).unwrap();
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(
        json["and"][0],
        serde_json::json!({"in": [{"path": "item.channel"}, {"list": [{"str": "sms"}, {"str": "whatsapp"}]}]})
    );
    assert_eq!(json["and"][1]["or"][0]["ge"][0], serde_json::json!({"path": "agent.skills[\"es-MX\"]"}));
    assert_eq!(json["and"][2]["gt"][1], serde_json::json!({"duration": "1h30m"}));
    assert_eq!(
        json["and"][3],
        serde_json::json!({"call": {"name": "schedule", "args": [{"str": "support"}], "member": "open"}})
    );
    let back: Expr = serde_json::from_value(json).unwrap();
    assert_eq!(back, e);
    // Compiling the tree and the text gives the same decisions.
    let s = schema();
    let v = sample(&s);
    assert_eq!(s.compile_expr(&back).unwrap().eval(&v).unwrap(), compile(&s, src).eval(&v).unwrap());
    // Malformed trees are serde errors, not panics.
    for bad in [r#"{"path": "and.x"}"#, r#"{"duration": "5 parsecs"}"#, r#"{"eq": [{"int": 1}]}"#, r#"{"nope": 1}"#] {
        assert!(serde_json::from_str::<Expr>(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_tree_built_in_code_compiles() {
    let e = Expr::And(vec![
        Expr::Ge(Box::new(Expr::Path(Path::parse("agent.skills.billing").unwrap())), Box::new(Expr::Int(3))),
        Expr::Call(Call {
            name: "schedule".into(),
            args: vec![Expr::Str("support".into())],
            member: Some("open".into()),
        }),
    ]);
    assert_eq!(e.to_string(), r#"agent.skills.billing >= 3 and schedule("support").open"#);
    let s = schema();
    assert!(s.compile_expr(&e).unwrap().matches(&sample(&s)).unwrap());
}

// ---------------------------------------------------------------------------------------------
// analysis

#[test]
fn eligibility_splits_into_an_agent_only_part_and_an_item_part() {
    let e = Expr::parse(
        r#"agent.skills.billing >= 3 and (agent.team == "tier2" and agent.available) and item.language in agent.languages and queue.waiting < 5 and schedule("support").open"#,
    )
    .unwrap();
    let clauses = e.clauses();
    assert_eq!(clauses.len(), 6);
    let roots: Vec<Vec<&str>> = clauses.iter().map(|c| c.roots.iter().copied().collect()).collect();
    assert_eq!(roots, [vec!["agent"], vec!["agent"], vec!["agent"], vec!["agent", "item"], vec!["queue"], vec![]]);
    let split = e.split_by_roots(&["agent"]);
    assert_eq!(
        split.selected.unwrap().to_string(),
        r#"agent.skills.billing >= 3 and agent.team == "tier2" and agent.available"#
    );
    assert_eq!(
        split.rest.unwrap().to_string(),
        r#"item.language in agent.languages and queue.waiting < 5 and schedule("support").open"#
    );
    let paths: Vec<String> = e.referenced_paths().iter().map(ToString::to_string).collect();
    assert_eq!(
        paths,
        ["agent.skills.billing", "agent.team", "agent.available", "item.language", "agent.languages", "queue.waiting"]
    );
    assert_eq!(e.functions().into_iter().collect::<Vec<_>>(), ["schedule.open"]);
    // A rule without agent-only clauses has nothing to select.
    let only_item = Expr::parse("item.priority > 1").unwrap().split_by_roots(&["agent"]);
    assert_eq!(only_item.selected, None);
    assert!(only_item.rest.is_some());
}

// ---------------------------------------------------------------------------------------------
// properties

fn ident() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_]{0,6}".prop_filter("not a keyword", |s| !KEYWORDS.contains(&s.as_str()))
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![4 => "[a-zA-Z_][a-zA-Z0-9_]{0,6}", 1 => "\\PC{1,6}", 1 => prop::sample::select(KEYWORDS.to_vec()).prop_map(String::from)]
}

fn path() -> impl Strategy<Value = Path> {
    (ident(), prop::collection::vec(segment(), 0..3)).prop_map(|(root, rest)| {
        Path::from_segments(std::iter::once(root).chain(rest)).expect("generated paths are valid")
    })
}

fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![
        prop::num::f64::NORMAL | prop::num::f64::SUBNORMAL | prop::num::f64::ZERO,
        (-1000i32..1000).prop_map(|i| f64::from(i) / 8.0),
    ]
}

fn duration() -> impl Strategy<Value = TimeDelta> {
    prop_oneof![
        (-9_000_000_000_000_000i64..9_000_000_000_000_000, 0u32..1_000_000_000)
            .prop_filter_map("in range", |(s, n)| TimeDelta::new(s / 1000, n)),
        (-100_000i64..100_000).prop_map(TimeDelta::seconds),
    ]
}

fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        any::<bool>().prop_map(Literal::Bool),
        any::<i64>().prop_map(Literal::Int),
        finite().prop_map(Literal::Float),
        any::<String>().prop_map(Literal::Str),
        duration().prop_map(Literal::Duration),
    ]
}

fn leaf() -> impl Strategy<Value = Expr> {
    prop_oneof![
        any::<bool>().prop_map(Expr::Bool),
        any::<i64>().prop_map(Expr::Int),
        finite().prop_map(Expr::Float),
        any::<String>().prop_map(Expr::Str),
        duration().prop_map(Expr::Duration),
        prop::collection::vec(literal(), 0..4).prop_map(Expr::List),
        path().prop_map(Expr::Path),
        path().prop_map(Expr::Has),
    ]
}

/// Trees the parser can produce: `and`/`or` with two or more operands, calls not named `has`.
fn tree() -> impl Strategy<Value = Expr> {
    leaf().prop_recursive(6, 64, 4, |inner| {
        let pair = (inner.clone(), inner.clone());
        prop_oneof![
            inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::Or),
            (0..8usize, pair).prop_map(|(op, (l, r))| {
                let ops = [
                    touchpoint::routing::expr::CmpOp::Eq,
                    touchpoint::routing::expr::CmpOp::Ne,
                    touchpoint::routing::expr::CmpOp::Lt,
                    touchpoint::routing::expr::CmpOp::Le,
                    touchpoint::routing::expr::CmpOp::Gt,
                    touchpoint::routing::expr::CmpOp::Ge,
                    touchpoint::routing::expr::CmpOp::In,
                    touchpoint::routing::expr::CmpOp::Contains,
                ];
                Expr::compare(ops[op], l, r)
            }),
            (
                ident().prop_filter("has is built in", |n| n != "has"),
                prop::collection::vec(inner, 0..3),
                prop::option::of(
                    segment().prop_filter("a name", |s| s
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                )
            )
                .prop_map(|(name, args, member)| Expr::Call(Call { name, args, member })),
        ]
    })
}

/// Well-typed conditions over a small schema, for checking semantics against a reference.
#[derive(Debug, Clone)]
enum Cond {
    Lit(bool),
    Int(&'static str, usize, i64),
    Str(&'static str, usize, &'static str),
    Flag,
    InTags(&'static str),
    Has(&'static str),
    Not(Box<Cond>),
    And(Vec<Cond>),
    Or(Vec<Cond>),
}

const OPS: [&str; 6] = ["==", "!=", "<", "<=", ">", ">="];
const INT_PATHS: [&str; 3] = ["p.a", "p.b", "p.m.x"];

fn cond() -> impl Strategy<Value = Cond> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Cond::Lit),
        (prop::sample::select(INT_PATHS.to_vec()), 0..6usize, -2i64..3).prop_map(|(p, o, n)| Cond::Int(p, o, n)),
        (Just("p.s"), 0..6usize, prop::sample::select(vec!["a", "b", "c"])).prop_map(|(p, o, s)| Cond::Str(p, o, s)),
        Just(Cond::Flag),
        prop::sample::select(vec!["a", "b", "z"]).prop_map(Cond::InTags),
        prop::sample::select(vec!["p.a", "p.m.x", "p.s"]).prop_map(Cond::Has),
    ];
    leaf.prop_recursive(4, 32, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|c| Cond::Not(Box::new(c))),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Cond::And),
            prop::collection::vec(inner, 2..4).prop_map(Cond::Or),
        ]
    })
}

impl Cond {
    fn text(&self) -> String {
        match self {
            Cond::Lit(b) => b.to_string(),
            Cond::Int(p, o, n) => format!("{p} {} {n}", OPS[*o]),
            Cond::Str(p, o, s) => format!("{p} {} \"{s}\"", OPS[*o]),
            Cond::Flag => "p.f".into(),
            Cond::InTags(t) => format!("\"{t}\" in p.t"),
            Cond::Has(p) => format!("has({p})"),
            Cond::Not(c) => format!("not ({})", c.text()),
            Cond::And(cs) => cs.iter().map(|c| format!("({})", c.text())).collect::<Vec<_>>().join(" and "),
            Cond::Or(cs) => cs.iter().map(|c| format!("({})", c.text())).collect::<Vec<_>>().join(" or "),
        }
    }

    /// The documented semantics, written independently of the library.
    fn reference(&self, env: &Env) -> Truth {
        fn cmp<T: PartialOrd>(o: usize, a: T, b: T) -> bool {
            match o {
                0 => a == b,
                1 => a != b,
                2 => a < b,
                3 => a <= b,
                4 => a > b,
                _ => a >= b,
            }
        }
        match self {
            Cond::Lit(b) => Truth::from(*b),
            Cond::Int(p, o, n) => env.int(p).map_or(Truth::Unknown, |v| Truth::from(cmp(*o, v, *n))),
            Cond::Str(_, o, s) => env.s.map_or(Truth::Unknown, |v| Truth::from(cmp(*o, v, *s))),
            Cond::Flag => env.f.map_or(Truth::Unknown, Truth::from),
            Cond::InTags(t) => env.t.as_ref().map_or(Truth::Unknown, |tags| Truth::from(tags.contains(t))),
            Cond::Has(p) => Truth::from(match *p {
                "p.s" => env.s.is_some(),
                p => env.int(p).is_some(),
            }),
            Cond::Not(c) => match c.reference(env) {
                Truth::True => Truth::False,
                Truth::False => Truth::True,
                Truth::Unknown => Truth::Unknown,
            },
            Cond::And(cs) => {
                let r: Vec<Truth> = cs.iter().map(|c| c.reference(env)).collect();
                if r.contains(&Truth::False) {
                    Truth::False
                } else if r.contains(&Truth::Unknown) {
                    Truth::Unknown
                } else {
                    Truth::True
                }
            }
            Cond::Or(cs) => {
                let r: Vec<Truth> = cs.iter().map(|c| c.reference(env)).collect();
                if r.contains(&Truth::True) {
                    Truth::True
                } else if r.contains(&Truth::Unknown) {
                    Truth::Unknown
                } else {
                    Truth::False
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Env {
    a: Option<i64>,
    b: Option<i64>,
    mx: Option<i64>,
    s: Option<&'static str>,
    f: Option<bool>,
    t: Option<Vec<&'static str>>,
}

impl Env {
    fn int(&self, p: &str) -> Option<i64> {
        match p {
            "p.a" => self.a,
            "p.b" => self.b,
            _ => self.mx,
        }
    }

    fn values(&self, schema: &Schema) -> Values {
        let mut v = Values::new(schema);
        v.set("p.a", self.a).unwrap();
        v.set("p.b", self.b.map(|b| b as f64)).unwrap(); // a float path holding whole numbers
        v.set("p.m.x", self.mx).unwrap();
        v.set("p.s", self.s).unwrap();
        v.set("p.f", self.f).unwrap();
        v.set("p.t", self.t.clone().map(Value::from).unwrap_or(Value::Missing)).unwrap();
        v
    }
}

fn env() -> impl Strategy<Value = Env> {
    let int = prop::option::of(-2i64..3);
    (
        int.clone(),
        int.clone(),
        int,
        prop::option::of(prop::sample::select(vec!["a", "b", "c"])),
        prop::option::of(any::<bool>()),
        prop::option::of(prop::sample::subsequence(vec!["a", "b", "c"], 0..3)),
    )
        .prop_map(|(a, b, mx, s, f, t)| Env { a, b, mx, s, f, t })
}

fn small_schema() -> Schema {
    let mut b = Schema::builder();
    b.declare("p.a", Type::INT).unwrap();
    b.declare("p.b", Type::FLOAT).unwrap();
    b.declare("p.m", Type::Map(ScalarType::Int)).unwrap();
    b.declare("p.s", Type::STR).unwrap();
    b.declare("p.f", Type::BOOL).unwrap();
    b.declare("p.t", Type::List(ScalarType::Str)).unwrap();
    b.build()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn printing_then_parsing_gives_back_the_tree(e in tree()) {
        let text = e.to_string();
        let back = Expr::parse(&text);
        prop_assert!(back.is_ok(), "{text}: {:?}", back.err());
        prop_assert_eq!(back.unwrap(), e.clone(), "{}", text);
        let json = serde_json::to_string(&e).unwrap();
        prop_assert_eq!(serde_json::from_str::<Expr>(&json).unwrap(), e);
    }

    #[test]
    fn arbitrary_text_never_panics(src in "\\PC{0,80}") {
        let s = schema();
        let v = sample(&s);
        if let Ok(rule) = s.compile(&src) {
            let _ = rule.eval(&v);
        }
        let _ = Expr::parse(&src);
        let _ = Path::parse(&src);
    }

    #[test]
    fn token_soup_never_panics(tokens in prop::collection::vec(prop::sample::select(vec![
        "item.priority", "item.channel", "agent.skills.billing", "agent.skills", "item.tags", "item.vip",
        "schedule", "has", "(", ")", "[", "]", ",", ".", "open", "\"sms\"", "'x'", "3", "-2", "2.5", "90s",
        "==", "!=", "<", "<=", ">", ">=", "in", "not", "contains", "and", "or", "true", "false", "\"", "\\",
        "1e999", "99999999999999999999", "-", "=", "!", "1h30", "\u{0}", "ñ",
    ]), 0..24), spaced in any::<bool>()) {
        let src = tokens.join(if spaced { " " } else { "" });
        let s = schema();
        let v = sample(&s);
        match s.compile(&src) {
            Ok(rule) => {
                let _ = rule.eval(&v);
                let _ = rule.eval(&Values::new(&s));
                // What compiles prints as text that compiles to the same decisions.
                let again = s.compile(&rule.expr().to_string());
                prop_assert!(again.is_ok(), "{src}");
                prop_assert_eq!(again.unwrap().eval(&v).ok(), rule.eval(&v).ok());
            }
            Err(Error::Expression(e)) => {
                // Text errors always say where.
                prop_assert!(e.position().is_some(), "{src}: {e}");
                prop_assert!(e.position().unwrap().offset <= src.len());
            }
            Err(other) => prop_assert!(false, "unexpected error kind: {other:?}"),
        }
    }

    #[test]
    fn evaluation_follows_the_documented_three_valued_semantics(c in cond(), env in env()) {
        let s = small_schema();
        let rule = s.compile(&c.text()).unwrap();
        let v = env.values(&s);
        let want = c.reference(&env);
        prop_assert_eq!(rule.eval(&v).unwrap(), want, "{}", c.text());
        prop_assert_eq!(rule.matches(&v).unwrap(), want == Truth::True);
        // `not` of any condition is its Kleene negation, and De Morgan holds.
        let negated = s.compile(&format!("not ({})", c.text())).unwrap();
        prop_assert_eq!(negated.eval(&v).unwrap(), want.not());
    }

    #[test]
    fn the_agent_only_split_decides_like_the_whole_rule(parts in prop::collection::vec(cond(), 1..5), env in env(), roots in prop::sample::subsequence(vec!["p"], 0..=1)) {
        let s = small_schema();
        let text = parts.iter().map(|c| format!("({})", c.text())).collect::<Vec<_>>().join(" and ");
        let whole = Expr::parse(&text).unwrap();
        let v = env.values(&s);
        let split = whole.split_by_roots(&roots);
        let part = |e: &Option<Expr>| e.as_ref().map_or(Ok(true), |e| s.compile_expr(e).unwrap().matches(&v));
        let want = s.compile_expr(&whole).unwrap().matches(&v).unwrap();
        prop_assert_eq!(part(&split.selected).unwrap() && part(&split.rest).unwrap(), want);
    }
}

#[test]
fn shared_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Schema>();
    send_sync::<touchpoint::routing::expr::CompiledExpr>();
    send_sync::<Function>();
    send_sync::<Expr>();
    send_sync::<Values>();
    send_sync::<ExprError>();
    send_sync::<ValueRef<'static>>();
    // Compiled once, evaluated from several threads.
    let s = schema();
    let rule = Arc::new(compile(&s, r#"item.channel == "whatsapp" and agent.skills.billing >= 3"#));
    let v = Arc::new(sample(&s));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (rule, v) = (rule.clone(), v.clone());
            std::thread::spawn(move || rule.matches(&*v).unwrap())
        })
        .collect();
    assert!(handles.into_iter().all(|h| h.join().unwrap()));
}

struct IntEverywhere;

impl Bindings for IntEverywhere {
    fn get(&self, _slot: Slot) -> ValueRef<'_> {
        ValueRef::Int(7)
    }
}

/// A binding of another type than declared is a `Binding` error when a function reads it too,
/// as in a comparison: the host's bug is not hidden behind a function's answer.
#[test]
fn bindings_of_another_type_passed_to_a_function_give_a_binding_error() {
    let mut b = Schema::builder();
    b.declare("item.customer", Type::STR).unwrap();
    b.declare("item.tags", Type::List(ScalarType::Str)).unwrap();
    b.function(Function::new("vip", [Type::STR], Type::BOOL, |args| match args {
        [ValueRef::Str(c)] => Ok(Value::Bool(c.starts_with("vip-"))),
        _ => Ok(Value::Missing),
    }))
    .unwrap();
    b.function(Function::new("tagged", [Type::List(ScalarType::Str)], Type::BOOL, |args| match args {
        [ValueRef::List(_)] => Ok(Value::Bool(true)),
        _ => Ok(Value::Missing),
    }))
    .unwrap();
    let s = b.build();
    for src in [r#"item.customer == "vip-1""#, "vip(item.customer)", "tagged(item.tags)", "not vip(item.customer)"] {
        let err = expr_error(compile(&s, src).eval(&IntEverywhere).unwrap_err());
        assert_eq!(err.kind(), ExprErrorKind::Binding, "{src}");
    }
    let err = expr_error(compile(&s, "vip(item.customer)").eval(&IntEverywhere).unwrap_err());
    assert_eq!(err.to_string(), "bindings returned an int for item.customer, declared string");
}
