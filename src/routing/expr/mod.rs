//! The routing expression language: one small, typed, bounded condition language for rule
//! conditions (over the item), agent eligibility (agent against item) and step guards (queue
//! statistics, calendars, the clock).
//!
//! ```
//! use touchpoint::routing::expr::{Function, Schema, ScalarType, Type, Value, ValueRef, Values};
//!
//! // 1. Declare what rules may refer to. Each path gets a slot.
//! let mut b = Schema::builder();
//! b.declare("item.channel", Type::STR).unwrap();
//! b.declare("item.language", Type::STR).unwrap();
//! b.declare("item.priority", Type::INT).unwrap();
//! b.declare("item.age", Type::DURATION).unwrap();
//! b.declare("item.tags", Type::List(ScalarType::Str)).unwrap();
//! b.declare("agent.languages", Type::List(ScalarType::Str)).unwrap();
//! b.declare("agent.skills", Type::Map(ScalarType::Int)).unwrap();
//! b.declare("queue.waiting", Type::INT).unwrap();
//! b.function(
//!     Function::new("schedule", [Type::STR], Type::BOOL, |args| match args {
//!         [ValueRef::Str(name)] => Ok(Value::Bool(*name == "support")), // a real one asks a calendar
//!         _ => Ok(Value::Missing),
//!     })
//!     .member("open"),
//! )
//! .unwrap();
//! let schema = b.build();
//!
//! // 2. Compile once: paths resolve to slots, types are checked.
//! let rule = schema
//!     .compile(
//!         r#"item.channel == "whatsapp" and item.language in agent.languages
//!            and agent.skills.billing >= 3
//!            and (not (queue.waiting > 10) or item.priority >= 2)
//!            and ("vip" in item.tags or item.age > 90s) and schedule("support").open"#,
//!     )
//!     .unwrap();
//!
//! // 3. Evaluate against bindings (here the ready-made `Values`; a router implements
//! //    `Bindings` over its own structs).
//! let mut v = Values::new(&schema);
//! v.set("item.channel", "whatsapp").unwrap()
//!     .set("item.language", "es").unwrap()
//!     .set("item.priority", 1).unwrap()
//!     .set("item.age", chrono::TimeDelta::seconds(120)).unwrap()
//!     .set("agent.languages", vec!["en", "es"]).unwrap()
//!     .set("agent.skills.billing", 4).unwrap()
//!     .set("queue.waiting", 3).unwrap();
//! assert!(rule.matches(&v).unwrap());
//!
//! // Typing errors name the place.
//! let err = schema.compile(r#"item.priority == "high""#).unwrap_err();
//! assert_eq!(err.to_string(), r#"cannot compare item.priority (int) with "high" (string) at 1:15"#);
//! ```
//!
//! # The language
//!
//! | form | meaning |
//! |---|---|
//! | `"text"`, `'text'`, `3`, `-2`, `2.5`, `1e-3`, `true`, `false` | literals (strings escape `\" \\ \n \r \t \0 \u{…}`) |
//! | `90s`, `1h30m`, `250ms`, `2d` | durations (units `d h m s ms us ns`, whole numbers) |
//! | `["sms", "whatsapp"]` | a list of literals of one type (ints and floats mix) |
//! | `item.channel`, `agent.skills.billing`, `agent.skills["es-MX"]` | paths declared in the [`Schema`] |
//! | `has(agent.skills.spanish)` | whether a path has a value (never unknown) |
//! | `name(args…)`, `schedule("support").open` | functions registered in the schema |
//! | `==  !=  <  <=  >  >=` | comparisons of numbers, strings (byte order), durations; `==`/`!=` also of bools |
//! | `x in list`, `list contains x` | membership; `x not in list` = `not (x in list)` |
//! | `"sub" in text`, `text contains "sub"` | substring (case-sensitive) |
//! | `"billing" in agent.skills` | map key present (never unknown) |
//! | `not`, `and`, `or`, `( … )` | logic, binding in that order (`not` tightest) |
//!
//! Keywords are lowercase: `and or not in contains true false`. Comparisons do not chain
//! (`a < b < c` is an error). Whitespace, including newlines, is free.
//!
//! # Missing values: three-valued logic
//!
//! An absent attribute ([`ValueRef::Missing`], also a NaN float) makes a comparison or
//! membership test **unknown** ([`Truth::Unknown`]), never true. `not unknown` is unknown, so
//! `not (a < b)` always means `a >= b` and De Morgan's laws hold; `false and unknown` is false,
//! `true or unknown` is true, anything else with unknown is unknown. Where a decision is taken
//! ([`CompiledExpr::matches`]) unknown counts as **no**. So `not (agent.skills.spanish >= 3)`
//! does *not* match an agent without the skill; write `not has(agent.skills.spanish) or
//! agent.skills.spanish < 3` for that. `has(…)` and map key tests are never unknown.
//!
//! # Types and limits
//!
//! Compiling checks every operator against the schema's types: comparing a string with a
//! number, `and` of an integer, ordering bools, a list compared with `==` are errors with the
//! position of the operator ("line:column", plus the byte offset in [`ExprError::position`]).
//! A whole rule must be a condition (bool). Ints compare with floats (as floats beyond 2^53).
//!
//! Every parse and compile is bounded by [`Limits`] (source length, nesting depth, node count,
//! list length) and every evaluation by a step budget; exceeding one is an
//! [`ExprErrorKind::Limit`] or [`ExprErrorKind::Budget`] error, never a panic. (A tree nested
//! deeper than the machine's stack can hold, built in code rather than parsed, is the one
//! exception: building and dropping it is the caller's affair.)
//!
//! # The clock and calendars
//!
//! The language reads no clock of its own. Time enters two ways, both through the injected
//! [`Clock`](crate::clock::Clock): as declared paths the host binds per evaluation (`item.age`,
//! `now.hour`, `now.weekday`, …), or through a registered function that captures the clock and
//! a calendar, as `schedule("support").open` below. (A router that evaluates many agents at one
//! instant can also bind calendar states as plain paths, e.g. `calendar.support_open`.)
//!
//! ```
//! use chrono::{Duration, TimeZone, Timelike, Utc};
//! use std::sync::Arc;
//! use touchpoint::clock::{Clock, ManualClock};
//! use touchpoint::routing::expr::{Function, Schema, Type, Value, ValueRef, Values};
//!
//! let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 2, 8, 30, 0).unwrap()));
//! let now = clock.clone();
//! let mut b = Schema::builder();
//! b.function(
//!     Function::new("schedule", [Type::STR], Type::BOOL, move |args| match args {
//!         [ValueRef::Str("support")] => Ok(Value::Bool((9..17).contains(&now.now().hour()))),
//!         _ => Ok(Value::Missing), // no such calendar: unknown
//!     })
//!     .member("open")
//!     .cost(20),
//! )
//! .unwrap();
//! let schema = b.build();
//! let open = schema.compile(r#"schedule("support").open"#).unwrap();
//! let nothing = Values::new(&schema);
//! assert!(!open.matches(&nothing).unwrap()); // 08:30
//! clock.advance(Duration::hours(1));
//! assert!(open.matches(&nothing).unwrap()); // 09:30
//! ```
//!
//! # Tree form
//!
//! [`Expr`] is plain serde data (`{"ge": [{"path": "agent.skills.billing"}, {"int": 3}]}`) for
//! rules kept in JSON or TOML; `Display` prints the text form, which parses back to the same tree
//! (other control characters than `\0`, `\n`, `\r` and `\t` are printed as `\u{…}`, so a
//! string full of them prints longer than it was written and may pass the length limit).
//! [`Expr::referenced_paths`], [`Expr::clauses`] and [`Expr::split_by_roots`] tell a router what
//! a rule depends on, e.g. to group agents by the agent-only part of an eligibility rule.

mod analysis;
mod ast;
mod bindings;
mod compile;
mod error;
mod parse;
mod schema;
mod value;

pub use analysis::{Clause, Split};
pub use ast::{Call, CmpOp, Expr, KEYWORDS, Literal, Path, format_duration};
pub use bindings::{Bindings, Values};
pub use compile::CompiledExpr;
pub use error::{ExprError, ExprErrorKind, Position};
pub use parse::Limits;
pub use schema::{Function, FunctionImpl, MAX_FUNCTION_PARAMS, Schema, SchemaBuilder, Slot};
pub(crate) use value::scalar_eq;
pub use value::{ListRef, ListValue, ScalarType, Truth, Type, Value, ValueRef};
