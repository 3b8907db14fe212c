//! Tree form → compiled form: every path resolved to a slot, every operator checked for types,
//! constants prepared (lists sorted for binary search); then evaluation against [`Bindings`].

use chrono::TimeDelta;
use std::cmp::Ordering;
use std::fmt;

use super::ast::{CmpOp, Expr, Literal, Path};
use super::bindings::Bindings;
use super::error::{ExprError, ExprErrorKind, Position};
use super::parse::{Span, check_depth};
use super::schema::{Function, MAX_FUNCTION_PARAMS, Schema, Slot};
use super::value::{ScalarType, Truth, Type, Value, ValueRef, num_cmp, str_eq};

/// A compiled condition: type-checked against its [`Schema`], every path resolved to a [`Slot`].
/// Compile once, evaluate many times, from many threads.
///
/// ```
/// use touchpoint::routing::expr::{Schema, ScalarType, Type, Values};
/// let mut b = Schema::builder();
/// b.declare("item.channel", Type::STR).unwrap();
/// b.declare("agent.skills", Type::Map(ScalarType::Int)).unwrap();
/// let schema = b.build();
/// let rule = schema.compile(r#"item.channel == "email" and agent.skills.billing >= 3"#).unwrap();
///
/// let mut v = Values::new(&schema);
/// v.set("item.channel", "email").unwrap().set("agent.skills.billing", 4).unwrap();
/// assert!(rule.matches(&v).unwrap());
/// v.set("agent.skills.billing", 2).unwrap();
/// assert!(!rule.matches(&v).unwrap());
/// ```
#[derive(Clone)]
pub struct CompiledExpr {
    root: Cond,
    expr: Expr,
    schema: Schema,
    slots: Vec<Slot>,
}

impl fmt::Debug for CompiledExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CompiledExpr({})", self.expr)
    }
}

impl fmt::Display for CompiledExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.expr)
    }
}

#[derive(Clone)]
enum Val {
    Slot(Slot),
    Key(Slot, Box<str>),
    Const(Value),
    Call(Box<CallNode>),
    Cond(Box<Cond>),
}

impl Val {
    #[inline(always)]
    fn is_call(&self) -> bool {
        matches!(self, Val::Call(_))
    }
}

#[derive(Clone)]
struct CallNode {
    function: Function,
    args: Box<[Val]>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Num,
    Str,
    Bool,
    Dur,
}

#[derive(Clone)]
enum Cond {
    Lit(Truth),
    Val(Val),
    Not(Box<Cond>),
    And(Box<[Cond]>),
    Or(Box<[Cond]>),
    Cmp {
        op: CmpOp,
        kind: Kind,
        l: Val,
        r: Val,
    },
    /// `operand op constant` (the common shape: `item.priority >= 2`), constant pre-typed.
    CmpConst {
        op: CmpOp,
        l: Val,
        c: Scalar,
    },
    InSet {
        needle: Val,
        set: ConstSet,
    },
    InList {
        needle: Val,
        list: Val,
    },
    Substr {
        needle: Val,
        hay: Val,
    },
    KeyIn {
        key: Val,
        map: Slot,
    },
    Has(Val),
}

/// A scalar constant, unpacked for comparisons.
#[derive(Clone)]
enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Box<str>),
    Dur(TimeDelta),
}

impl Scalar {
    fn from_value(v: &Value) -> Option<Scalar> {
        Some(match v {
            Value::Bool(b) => Scalar::Bool(*b),
            Value::Int(i) => Scalar::Int(*i),
            Value::Float(x) => Scalar::Float(*x),
            Value::Str(s) => Scalar::Str(s.as_str().into()),
            Value::Duration(d) => Scalar::Dur(*d),
            Value::Missing | Value::List(_) => return None,
        })
    }

    fn kind(&self) -> ScalarType {
        match self {
            Scalar::Bool(_) => ScalarType::Bool,
            Scalar::Int(_) => ScalarType::Int,
            Scalar::Float(_) => ScalarType::Float,
            Scalar::Str(_) => ScalarType::Str,
            Scalar::Dur(_) => ScalarType::Duration,
        }
    }
}

/// The comparison with the operands swapped: `a op b` is `b op.flip() a`.
fn flip(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::Le => CmpOp::Ge,
        CmpOp::Gt => CmpOp::Lt,
        CmpOp::Ge => CmpOp::Le,
        other => other,
    }
}

/// A constant list, sorted for binary search.
#[derive(Clone)]
enum ConstSet {
    Empty,
    Strs(Box<[Box<str>]>),
    Ints(Box<[i64]>),
    Floats(Box<[f64]>),
    Durs(Box<[TimeDelta]>),
    Bools { any_true: bool, any_false: bool },
}

impl ConstSet {
    fn build(items: &[Literal]) -> ConstSet {
        let strs: Vec<Box<str>> =
            items.iter().filter_map(|l| if let Literal::Str(s) = l { Some(s.as_str().into()) } else { None }).collect();
        let first = match items.first() {
            None => return ConstSet::Empty,
            Some(l) => l,
        };
        match first {
            Literal::Str(_) => {
                let mut v = strs;
                v.sort();
                v.dedup();
                ConstSet::Strs(v.into())
            }
            Literal::Bool(_) => ConstSet::Bools {
                any_true: items.contains(&Literal::Bool(true)),
                any_false: items.contains(&Literal::Bool(false)),
            },
            Literal::Duration(_) => {
                let mut v: Vec<TimeDelta> =
                    items.iter().filter_map(|l| if let Literal::Duration(d) = l { Some(*d) } else { None }).collect();
                v.sort();
                ConstSet::Durs(v.into())
            }
            Literal::Int(_) | Literal::Float(_) => {
                if items.iter().all(|l| matches!(l, Literal::Int(_))) {
                    let mut v: Vec<i64> =
                        items.iter().filter_map(|l| if let Literal::Int(i) = l { Some(*i) } else { None }).collect();
                    v.sort_unstable();
                    ConstSet::Ints(v.into())
                } else {
                    let mut v: Vec<f64> = items
                        .iter()
                        .filter_map(|l| match l {
                            Literal::Int(i) => Some(*i as f64),
                            Literal::Float(x) => Some(*x),
                            _ => None,
                        })
                        .collect();
                    v.sort_by(f64::total_cmp);
                    ConstSet::Floats(v.into())
                }
            }
        }
    }

    /// Membership; `None` if the needle's type does not fit.
    fn contains(&self, needle: ValueRef<'_>) -> Option<bool> {
        Some(match (self, needle) {
            (ConstSet::Empty, _) => false,
            (ConstSet::Strs(v), ValueRef::Str(s)) if v.len() <= 8 => v.iter().any(|x| str_eq(x, s)),
            (ConstSet::Strs(v), ValueRef::Str(s)) => v.binary_search_by(|x| (**x).cmp(s)).is_ok(),
            (ConstSet::Ints(v), ValueRef::Int(i)) => v.binary_search(&i).is_ok(),
            // Ints meet floats as floats, as `==` compares them (`i as f64` keeps the order, so
            // the sorted ints stay sorted); -0.0 is 0.0.
            (ConstSet::Ints(v), ValueRef::Float(x)) => {
                let x = if x == 0.0 { 0.0 } else { x };
                !x.is_nan() && v.binary_search_by(|i| (*i as f64).total_cmp(&x)).is_ok()
            }
            (ConstSet::Floats(v), ValueRef::Int(i)) => {
                v.binary_search_by(|y| (if *y == 0.0 { 0.0 } else { *y }).total_cmp(&(i as f64))).is_ok()
            }
            (ConstSet::Floats(v), ValueRef::Float(x)) => {
                let x = if x == 0.0 { 0.0 } else { x }; // -0.0 == 0.0
                v.binary_search_by(|y| (if *y == 0.0 { 0.0 } else { *y }).total_cmp(&x)).is_ok()
            }
            (ConstSet::Durs(v), ValueRef::Duration(d)) => v.binary_search(&d).is_ok(),
            (ConstSet::Bools { any_true, any_false }, ValueRef::Bool(b)) => {
                if b {
                    *any_true
                } else {
                    *any_false
                }
            }
            _ => return None,
        })
    }
}

/// The type of a compiled sub-expression.
enum Typed {
    Cond(Cond),
    Val(Val, ScalarType),
    ConstList(Vec<Literal>, Option<ScalarType>),
    DynList(Val, ScalarType),
    Map(Slot, ScalarType),
}

impl Typed {
    fn describe(&self) -> String {
        match self {
            Typed::Cond(_) => "bool".into(),
            Typed::Val(_, t) => t.to_string(),
            Typed::ConstList(_, Some(t)) | Typed::DynList(_, t) => format!("list of {t}"),
            Typed::ConstList(_, None) => "empty list".into(),
            Typed::Map(_, t) => format!("map of {t}"),
        }
    }

    fn scalar(&self) -> Option<ScalarType> {
        match self {
            Typed::Cond(_) => Some(ScalarType::Bool),
            Typed::Val(_, t) => Some(*t),
            _ => None,
        }
    }

    fn into_val(self) -> Option<Val> {
        match self {
            Typed::Cond(c) => Some(match c {
                Cond::Val(v) => v,
                c => Val::Cond(Box::new(c)),
            }),
            Typed::Val(v, _) => Some(v),
            _ => None,
        }
    }
}

struct Compiler<'a> {
    schema: &'a Schema,
    source: Option<(&'a str, &'a [Span])>,
    /// Nodes finished (their post-order number: the index of their span).
    next: usize,
    /// Nodes entered, counted against the node limit as the parser counts them.
    entered: usize,
    slots: Vec<Slot>,
}

/// A short rendering of a sub-expression for messages.
fn quote(e: &Expr) -> String {
    let s = e.to_string();
    if s.chars().count() > 48 { format!("{}…", s.chars().take(47).collect::<String>()) } else { s }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let at = |v: &[usize], i: usize| v.get(i).copied().unwrap_or(usize::MAX - 1);
            let sub = at(&prev, j) + usize::from(ca != *cb);
            cur.push(sub.min(at(&prev, j + 1) + 1).min(at(&cur, j) + 1));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

impl<'a> Compiler<'a> {
    /// The position of the node with post-order index `idx` (its operator if `op`).
    fn position(&self, idx: usize, op: bool) -> Option<Position> {
        let (src, spans) = self.source?;
        let span = spans.get(idx)?;
        Some(Position::locate(src, if op { span.op } else { span.start }))
    }

    fn err(&self, idx: usize, op: bool, kind: ExprErrorKind, msg: impl Into<String>) -> ExprError {
        ExprError::new(kind, msg).with_position(self.position(idx, op))
    }

    fn node(&mut self, e: &Expr, depth: usize) -> Result<Typed, ExprError> {
        let limits = self.schema.limits();
        if depth > limits.max_depth {
            let at = self.position(self.next, false);
            return Err(ExprError::new(
                ExprErrorKind::Limit,
                format!("expression is nested more than {} levels deep", limits.max_depth),
            )
            .with_position(at));
        }
        self.entered += 1;
        if self.entered > limits.max_nodes {
            return Err(self.err(
                self.next,
                false,
                ExprErrorKind::Limit,
                format!("expression has more than {} nodes", limits.max_nodes),
            ));
        }
        let typed = match e {
            Expr::Bool(b) => Typed::Cond(Cond::Lit(Truth::from(*b))),
            Expr::Int(i) => Typed::Val(Val::Const(Value::Int(*i)), ScalarType::Int),
            Expr::Float(x) => {
                if !x.is_finite() {
                    return Err(self.err(self.next, false, ExprErrorKind::Type, "float literals must be finite"));
                }
                Typed::Val(Val::Const(Value::Float(*x)), ScalarType::Float)
            }
            Expr::Str(s) => Typed::Val(Val::Const(Value::Str(s.clone())), ScalarType::Str),
            Expr::Duration(d) => Typed::Val(Val::Const(Value::Duration(*d)), ScalarType::Duration),
            Expr::List(items) => return self.list(items),
            Expr::Path(p) => self.path(p)?,
            Expr::Has(p) => match self.path(p)? {
                Typed::Val(v @ (Val::Slot(_) | Val::Key(..)), _) | Typed::DynList(v @ Val::Slot(_), _) => {
                    Typed::Cond(Cond::Has(v))
                }
                _ => {
                    return Err(self.err(
                        self.next,
                        false,
                        ExprErrorKind::Type,
                        format!("has() needs a value or a map entry, like has({p}.<name>)"),
                    ));
                }
            },
            Expr::Call(call) => {
                let mut args = Vec::with_capacity(call.args.len());
                for a in &call.args {
                    args.push(self.node(a, depth + 1)?);
                }
                self.call(e, &call.name, call.member.as_deref(), args)?
            }
            Expr::Not(inner) => {
                let c = self.node(inner, depth + 1)?;
                let c = self.cond(c, inner, "not")?;
                Typed::Cond(Cond::Not(Box::new(c)))
            }
            Expr::And(items) | Expr::Or(items) => {
                let word = if matches!(e, Expr::And(_)) { "and" } else { "or" };
                let mut conds = Vec::with_capacity(items.len());
                for i in items {
                    let c = self.node(i, depth + 1)?;
                    conds.push(self.cond(c, i, word)?);
                }
                match (conds.len(), word) {
                    (0, _) => {
                        return Err(self.err(
                            self.next,
                            false,
                            ExprErrorKind::Syntax,
                            format!("`{word}` needs at least one operand"),
                        ));
                    }
                    (1, _) => Typed::Cond(conds.pop().unwrap_or(Cond::Lit(Truth::Unknown))),
                    (_, "and") => Typed::Cond(Cond::And(conds.into())),
                    _ => Typed::Cond(Cond::Or(conds.into())),
                }
            }
            other => {
                let Some((op, l, r)) = other.as_comparison() else {
                    return Err(self.err(self.next, false, ExprErrorKind::Syntax, "unsupported expression"));
                };
                let lt = self.node(l, depth + 1)?;
                let rt = self.node(r, depth + 1)?;
                self.comparison(op, l, lt, r, rt)?
            }
        };
        self.next += 1;
        Ok(typed)
    }

    fn cond(&self, t: Typed, e: &Expr, word: &str) -> Result<Cond, ExprError> {
        match t {
            Typed::Cond(c) => Ok(c),
            Typed::Val(v, ScalarType::Bool) => Ok(Cond::Val(v)),
            other => Err(ExprError::new(
                ExprErrorKind::Type,
                format!("`{word}` needs conditions, but {} is {}", quote(e), other.describe()),
            )
            .with_position(self.position(self.next - 1, false))),
        }
    }

    fn list(&mut self, items: &[Literal]) -> Result<Typed, ExprError> {
        let limits = self.schema.limits();
        if items.len() > limits.max_list_len {
            return Err(self.err(
                self.next,
                false,
                ExprErrorKind::Limit,
                format!("list has more than {} elements", limits.max_list_len),
            ));
        }
        // The elements are nodes too (the list itself was counted on entry).
        if self.entered + items.len() > limits.max_nodes {
            return Err(self.err(
                self.next,
                false,
                ExprErrorKind::Limit,
                format!("expression has more than {} nodes", limits.max_nodes),
            ));
        }
        self.entered += items.len();
        let mut elem: Option<ScalarType> = None;
        for (i, l) in items.iter().enumerate() {
            let t = match l {
                Literal::Bool(_) => ScalarType::Bool,
                Literal::Int(_) => ScalarType::Int,
                Literal::Float(x) if x.is_finite() => ScalarType::Float,
                Literal::Float(_) => {
                    return Err(self.err(self.next + i, false, ExprErrorKind::Type, "float literals must be finite"));
                }
                Literal::Str(_) => ScalarType::Str,
                Literal::Duration(_) => ScalarType::Duration,
            };
            elem = match elem {
                None => Some(t),
                Some(e) if e == t => Some(e),
                Some(e) if e.is_numeric() && t.is_numeric() => Some(ScalarType::Float),
                Some(e) => {
                    return Err(self.err(
                        self.next + i,
                        false,
                        ExprErrorKind::Type,
                        format!("list elements must have one type: {l} ({t}) in a list of {e}"),
                    ));
                }
            };
        }
        self.next += items.len() + 1;
        Ok(Typed::ConstList(items.to_vec(), elem))
    }

    fn path(&mut self, p: &Path) -> Result<Typed, ExprError> {
        let inner = &self.schema.0;
        let segs = p.segments();
        if let Some(&slot) = inner.by_path.get(segs)
            && let Some(ty) = self.schema.slot_type(slot)
        {
            self.slots.push(slot);
            return Ok(match ty {
                Type::Scalar(t) => Typed::Val(Val::Slot(slot), t),
                Type::List(t) => Typed::DynList(Val::Slot(slot), t),
                Type::Map(t) => Typed::Map(slot, t),
            });
        }
        if let Some((key, prefix)) = segs.split_last()
            && let Some(&slot) = inner.by_path.get(prefix)
            && let Some(Type::Map(t)) = self.schema.slot_type(slot)
        {
            self.slots.push(slot);
            return Ok(Typed::Val(Val::Key(slot, key.as_str().into()), t));
        }
        let text = p.to_string();
        let mut msg = format!("unknown path {text}");
        if let Some(decl) = inner.slots.iter().find(|s| s.path.starts_with(p)) {
            msg = format!("{text} is not a value; declared paths under it include {}", decl.path);
        } else if let Some(decl) = inner.slots.iter().find(|s| p.starts_with(&s.path)) {
            msg = match decl.ty {
                Type::Map(t) => format!("unknown path {text}: entries of {} are {t} and have no members", decl.path),
                ty => format!("unknown path {text}: {} is a {ty} and has no members", decl.path),
            };
        } else if let Some((d, best)) =
            inner.slots.iter().map(|s| (edit_distance(&text, &s.path.to_string()), &s.path)).min_by_key(|(d, _)| *d)
            && d <= 2.max(text.len() / 4)
        {
            msg = format!("unknown path {text} (did you mean {best}?)");
        }
        Err(self.err(self.next, false, ExprErrorKind::UnknownPath, msg))
    }

    fn call(&mut self, e: &Expr, name: &str, member: Option<&str>, args: Vec<Typed>) -> Result<Typed, ExprError> {
        let inner = &self.schema.0;
        let display = match member {
            Some(m) => format!("{name}(…).{m}"),
            None => format!("{name}(…)"),
        };
        let Some(f) = inner.functions.get(&(name.to_owned(), member.map(str::to_owned))) else {
            let mut others: Vec<String> =
                inner.functions.values().filter(|f| f.name == name).map(ToString::to_string).collect();
            others.sort();
            let msg = if others.is_empty() {
                format!("unknown function {name}")
            } else {
                format!("unknown function {display}; registered: {}", others.join(", "))
            };
            return Err(self.err(self.next, false, ExprErrorKind::UnknownFunction, msg));
        };
        if args.len() != f.params.len() {
            return Err(self.err(
                self.next,
                false,
                ExprErrorKind::UnknownFunction,
                format!("{f} takes {} argument(s), {} given", f.params.len(), args.len()),
            ));
        }
        let Expr::Call(call) = e else {
            return Err(self.err(self.next, false, ExprErrorKind::Syntax, "not a call"));
        };
        let mut vals = Vec::with_capacity(args.len());
        for (i, (arg, param)) in args.into_iter().zip(&f.params).enumerate() {
            let got = match &arg {
                Typed::Cond(_) => Some(Type::BOOL),
                Typed::Val(_, t) => Some(Type::Scalar(*t)),
                Typed::DynList(_, t) => Some(Type::List(*t)),
                Typed::ConstList(_, Some(t)) => Some(Type::List(*t)),
                Typed::ConstList(_, None) => matches!(param, Type::List(_)).then_some(*param),
                Typed::Map(..) => None,
            };
            if !got.is_some_and(|g| param.accepts(g)) {
                return Err(self.err(
                    self.next,
                    false,
                    ExprErrorKind::Type,
                    format!(
                        "argument {} of {f} must be {param}, but {} is {}",
                        i + 1,
                        call.args.get(i).map(quote).unwrap_or_default(),
                        arg.describe()
                    ),
                ));
            }
            vals.push(match arg {
                Typed::ConstList(items, _) => Val::Const(Value::List(items.iter().map(literal_value).collect())),
                Typed::DynList(v, _) => v,
                other => other.into_val().unwrap_or(Val::Const(Value::Missing)),
            });
        }
        debug_assert!(vals.len() <= MAX_FUNCTION_PARAMS);
        let node = Val::Call(Box::new(CallNode { function: f.clone(), args: vals.into() }));
        Ok(match f.returns {
            Type::Scalar(t) => Typed::Val(node, t),
            Type::List(t) => Typed::DynList(node, t),
            Type::Map(t) => Typed::DynList(node, t),
        })
    }

    fn comparison(&self, op: CmpOp, l: &Expr, lt: Typed, r: &Expr, rt: Typed) -> Result<Typed, ExprError> {
        let at = self.next;
        let type_err = |msg: String| self.err(at, true, ExprErrorKind::Type, msg);
        let (needle_e, needle, hay_e, hay) = match op {
            CmpOp::In => (l, lt, r, rt),
            CmpOp::Contains => (r, rt, l, lt),
            _ => {
                let (Some(a), Some(b)) = (lt.scalar(), rt.scalar()) else {
                    return Err(type_err(format!(
                        "cannot compare {} ({}) with {} ({}); lists and maps only work with `in` and `contains`",
                        quote(l),
                        lt.describe(),
                        quote(r),
                        rt.describe()
                    )));
                };
                if !a.comparable(b) {
                    return Err(type_err(format!("cannot compare {} ({a}) with {} ({b})", quote(l), quote(r))));
                }
                let kind = match a {
                    ScalarType::Int | ScalarType::Float => Kind::Num,
                    ScalarType::Str => Kind::Str,
                    ScalarType::Duration => Kind::Dur,
                    ScalarType::Bool => Kind::Bool,
                };
                if kind == Kind::Bool && !matches!(op, CmpOp::Eq | CmpOp::Ne) {
                    return Err(type_err(format!("cannot order bools: {} {} {}", quote(l), op.symbol(), quote(r))));
                }
                let (Some(lv), Some(rv)) = (lt.into_val(), rt.into_val()) else {
                    return Err(type_err("cannot compare these operands".into()));
                };
                let constant = |v: &Val| if let Val::Const(c) = v { Scalar::from_value(c) } else { None };
                return Ok(Typed::Cond(match (constant(&lv), constant(&rv)) {
                    (_, Some(c)) if constant(&lv).is_none() => Cond::CmpConst { op, l: lv, c },
                    (Some(c), None) => Cond::CmpConst { op: flip(op), l: rv, c },
                    _ => Cond::Cmp { op, kind, l: lv, r: rv },
                }));
            }
        };
        let mismatch = |needle: &Typed, hay: &Typed| {
            type_err(format!(
                "cannot look for {} ({}) in {} ({})",
                quote(needle_e),
                needle.describe(),
                quote(hay_e),
                hay.describe()
            ))
        };
        let Some(nt) = needle.scalar() else { return Err(mismatch(&needle, &hay)) };
        match hay {
            Typed::ConstList(items, elem) => {
                if elem.is_some_and(|e| !e.comparable(nt)) {
                    return Err(mismatch(&needle, &Typed::ConstList(items, elem)));
                }
                let set = ConstSet::build(&items);
                let needle = needle.into_val().unwrap_or(Val::Const(Value::Missing));
                Ok(Typed::Cond(Cond::InSet { needle, set }))
            }
            Typed::DynList(list, elem) if elem.comparable(nt) => {
                let needle = needle.into_val().unwrap_or(Val::Const(Value::Missing));
                Ok(Typed::Cond(Cond::InList { needle, list }))
            }
            Typed::Val(hay, ScalarType::Str) if nt == ScalarType::Str => {
                let needle = needle.into_val().unwrap_or(Val::Const(Value::Missing));
                Ok(Typed::Cond(Cond::Substr { needle, hay }))
            }
            Typed::Map(map, _) if nt == ScalarType::Str => {
                let key = needle.into_val().unwrap_or(Val::Const(Value::Missing));
                Ok(Typed::Cond(Cond::KeyIn { key, map }))
            }
            other => Err(mismatch(&needle, &other)),
        }
    }
}

fn literal_value(l: &Literal) -> Value {
    match l {
        Literal::Bool(b) => Value::Bool(*b),
        Literal::Int(i) => Value::Int(*i),
        Literal::Float(x) => Value::Float(*x),
        Literal::Str(s) => Value::Str(s.clone()),
        Literal::Duration(d) => Value::Duration(*d),
    }
}

pub(crate) fn compile(schema: &Schema, expr: Expr, source: Option<(&str, &[Span])>) -> Result<CompiledExpr, ExprError> {
    let limits = schema.limits();
    // Reject over-deep trees before any recursion that could exhaust the stack.
    if let Err(leaf) = check_depth(&expr, limits.max_depth, &mut 0, 1) {
        let at = source.and_then(|(src, spans)| spans.get(leaf).map(|s| Position::locate(src, s.start)));
        return Err(ExprError::new(
            ExprErrorKind::Limit,
            format!("expression is nested more than {} levels deep", limits.max_depth),
        )
        .with_position(at));
    }
    let mut c = Compiler { schema, source, next: 0, entered: 0, slots: Vec::new() };
    let typed = c.node(&expr, 1)?;
    let root = match typed {
        Typed::Cond(cond) => cond,
        Typed::Val(v, ScalarType::Bool) => Cond::Val(v),
        other => {
            return Err(ExprError::new(
                ExprErrorKind::Type,
                format!("a rule must be a condition (bool), but {} is {}", quote(&expr), other.describe()),
            )
            // The root is the last node (post-order).
            .with_position(source.map(|(src, spans)| Position::locate(src, spans.last().map_or(0, |s| s.start)))));
        }
    };
    let mut slots = c.slots;
    slots.sort_unstable();
    slots.dedup();
    Ok(CompiledExpr { root, expr, schema: schema.clone(), slots })
}

#[inline(always)]
fn ordered(op: CmpOp, o: Ordering) -> bool {
    match op {
        CmpOp::Eq => o == Ordering::Equal,
        CmpOp::Ne => o != Ordering::Equal,
        CmpOp::Lt => o == Ordering::Less,
        CmpOp::Le => o != Ordering::Greater,
        CmpOp::Gt => o == Ordering::Greater,
        CmpOp::Ge => o != Ordering::Less,
        CmpOp::In | CmpOp::Contains => false,
    }
}

impl CompiledExpr {
    /// Evaluates the condition under three-valued logic (see [`Truth`]) with the schema's budget.
    ///
    /// Operands are evaluated left to right and `and`/`or` stop as soon as the result is known,
    /// so errors in parts that were not needed do not surface. Fails with
    /// [`ExprErrorKind::Budget`](super::ExprErrorKind::Budget) when the budget runs out,
    /// [`Binding`](super::ExprErrorKind::Binding) when the bindings return a value of another
    /// type than declared, and [`Function`](super::ExprErrorKind::Function) when a function fails.
    pub fn eval<B: Bindings + ?Sized>(&self, bindings: &B) -> crate::Result<Truth> {
        self.eval_with_budget(bindings, self.schema.limits().eval_budget)
    }

    /// Evaluates with an explicit budget in steps (see [`Limits::eval_budget`](super::Limits::eval_budget)).
    pub fn eval_with_budget<B: Bindings + ?Sized>(&self, bindings: &B, budget: u64) -> crate::Result<Truth> {
        self.eval_counted(bindings, budget).0
    }

    /// [`eval_with_budget`](Self::eval_with_budget), and the steps it took (all of them when
    /// it failed): parts of one condition evaluated apart share one budget through this.
    pub(crate) fn eval_counted<B: Bindings + ?Sized>(&self, bindings: &B, budget: u64) -> (crate::Result<Truth>, u64) {
        let mut ev = Eval { x: self, b: bindings, left: budget, budget, error: None };
        let t = ev.cond(&self.root);
        let used = budget - ev.left;
        match ev.error {
            None => (Ok(t), used),
            Some(e) => (Err(e.into()), budget),
        }
    }

    /// Whether the condition certainly holds: [`eval`](Self::eval) is [`Truth::True`]
    /// (unknown counts as no).
    pub fn matches<B: Bindings + ?Sized>(&self, bindings: &B) -> crate::Result<bool> {
        Ok(self.eval(bindings)?.is_true())
    }

    /// The tree this was compiled from.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// The schema it was compiled against.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The slots the condition reads (sorted, without repeats): a router can tell from these
    /// which attributes an eligibility rule depends on.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// Fails if `got` is neither missing nor of type `want` (numbers accept ints and floats).
    fn check(&self, v: &Val, got: ValueRef<'_>, want: ScalarType) -> Result<(), ExprError> {
        match got.scalar_type() {
            None if matches!(got, ValueRef::Missing) => Ok(()),
            Some(t) if t == want || (t.is_numeric() && want.is_numeric()) => Ok(()),
            _ => Err(self.mismatch(v, got, want)),
        }
    }

    #[cold]
    fn mismatch(&self, v: &Val, got: ValueRef<'_>, want: ScalarType) -> ExprError {
        let what = match v {
            Val::Slot(s) | Val::Key(s, _) => {
                let path = self.schema.slot_path(*s).map(ToString::to_string).unwrap_or_default();
                match (v, self.schema.slot_type(*s)) {
                    (Val::Key(_, k), Some(Type::Map(t))) => {
                        format!("bindings returned {} for {path}[{k:?}], declared {t}", a_kind(got))
                    }
                    (_, Some(t)) => format!("bindings returned {} for {path}, declared {t}", a_kind(got)),
                    _ => format!("bindings returned {} for {path}, expected {want}", a_kind(got)),
                }
            }
            Val::Call(c) => {
                format!("function {} returned {}, declared {want}", describe_fn(&c.function), a_kind(got))
            }
            Val::Const(_) | Val::Cond(_) => format!("{} was found where a {want} was expected", a_kind(got)),
        };
        ExprError::new(ExprErrorKind::Binding, what)
    }
}

/// One evaluation: the bindings, the steps left, and the first error. After an error the budget
/// is zeroed, so the rest of the evaluation winds down at once; its result is then discarded.
/// Keeping errors out of the return values keeps the hot path to plain `ValueRef`s and `Truth`s.
struct Eval<'s, B: ?Sized> {
    x: &'s CompiledExpr,
    b: &'s B,
    left: u64,
    budget: u64,
    error: Option<ExprError>,
}

impl<'s, B: Bindings + ?Sized> Eval<'s, B> {
    #[inline(always)]
    fn tick(&mut self, n: u64) -> bool {
        if self.left >= n {
            self.left -= n;
            true
        } else {
            self.exhausted();
            false
        }
    }

    #[cold]
    #[inline(never)]
    fn exhausted(&mut self) {
        if self.error.is_none() {
            self.error = Some(ExprError::new(
                ExprErrorKind::Budget,
                format!("evaluation exceeded its budget of {} steps", self.budget),
            ));
        }
        self.left = 0;
    }

    #[cold]
    #[inline(never)]
    fn fail(&mut self, e: ExprError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
        self.left = 0;
    }

    /// A non-call operand: a path, a constant or a nested condition.
    #[inline(always)]
    fn get(&mut self, v: &'s Val) -> ValueRef<'s> {
        match v {
            Val::Slot(s) => self.b.get(*s),
            Val::Key(s, k) => self.b.get_key(*s, k),
            Val::Const(c) => c.as_ref(),
            Val::Cond(c) => match self.cond(c) {
                Truth::True => ValueRef::Bool(true),
                Truth::False => ValueRef::Bool(false),
                Truth::Unknown => ValueRef::Missing,
            },
            Val::Call(_) => ValueRef::Missing, // calls go through `owned`
        }
    }

    /// Any operand as an owned value: the slow path, taken only when a function is involved.
    #[inline(never)]
    fn owned(&mut self, v: &'s Val) -> Value {
        match v {
            Val::Call(c) => self.call(c),
            other => self.get(other).to_value(),
        }
    }

    /// Runs `f` on one operand that is (or may be) a function call: the slow path.
    #[inline(never)]
    fn with1<R>(&mut self, a: &'s Val, f: impl FnOnce(&mut Self, ValueRef<'_>) -> R) -> R {
        if let Val::Call(_) = a {
            let av = self.owned(a);
            f(self, av.as_ref())
        } else {
            let x = self.get(a);
            f(self, x)
        }
    }

    /// Runs `f` on two operands, evaluated left to right, when one is a function call: the slow path.
    #[inline(never)]
    fn with2<R>(&mut self, a: &'s Val, b: &'s Val, f: impl FnOnce(&mut Self, ValueRef<'_>, ValueRef<'_>) -> R) -> R {
        // Only a call's result is owned: a list beside it is read in place (not copied whole,
        // outside the budget).
        match (matches!(a, Val::Call(_)), matches!(b, Val::Call(_))) {
            (true, true) => {
                let av = self.owned(a);
                let bv = self.owned(b);
                f(self, av.as_ref(), bv.as_ref())
            }
            (true, false) => {
                let av = self.owned(a);
                let y = self.get(b);
                f(self, av.as_ref(), y)
            }
            (false, true) => {
                let x = self.get(a);
                let bv = self.owned(b);
                f(self, x, bv.as_ref())
            }
            (false, false) => {
                let x = self.get(a);
                let y = self.get(b);
                f(self, x, y)
            }
        }
    }

    /// Evaluates a condition; the operands of `and`, `or` and `not` that are comparisons are
    /// evaluated in place rather than through another call.
    fn cond(&mut self, c: &'s Cond) -> Truth {
        match c {
            Cond::Not(c) => {
                if !self.tick(1) {
                    return Truth::Unknown;
                }
                self.step(c).not()
            }
            Cond::And(cs) => {
                if !self.tick(1) {
                    return Truth::Unknown;
                }
                let mut acc = Truth::True;
                for c in cs.iter() {
                    match self.step(c) {
                        Truth::False => return Truth::False,
                        Truth::Unknown => acc = Truth::Unknown,
                        Truth::True => {}
                    }
                }
                acc
            }
            Cond::Or(cs) => {
                if !self.tick(1) {
                    return Truth::Unknown;
                }
                let mut acc = Truth::False;
                for c in cs.iter() {
                    match self.step(c) {
                        Truth::True => return Truth::True,
                        Truth::Unknown => acc = Truth::Unknown,
                        Truth::False => {}
                    }
                }
                acc
            }
            leaf => self.leaf(leaf),
        }
    }

    #[inline(always)]
    fn step(&mut self, c: &'s Cond) -> Truth {
        match c {
            Cond::Not(_) | Cond::And(_) | Cond::Or(_) => self.cond(c),
            leaf => self.leaf(leaf),
        }
    }

    #[inline(always)]
    fn leaf(&mut self, c: &'s Cond) -> Truth {
        match c {
            Cond::Not(_) | Cond::And(_) | Cond::Or(_) => self.cond(c),
            Cond::Lit(t) => {
                if !self.tick(1) {
                    return Truth::Unknown;
                }
                *t
            }
            Cond::Val(v) => {
                if !self.tick(2) {
                    return Truth::Unknown;
                }
                if v.is_call() {
                    return self.with1(v, |ev, x| ev.truth_of(v, x));
                }
                let x = self.get(v);
                self.truth_of(v, x)
            }
            Cond::Cmp { op, kind, l, r } => {
                if !self.tick(3) {
                    return Truth::Unknown;
                }
                if l.is_call() || r.is_call() {
                    let (op, kind) = (*op, *kind);
                    self.with2(l, r, |ev, x, y| ev.compare(op, kind, l, r, x, y))
                } else {
                    let x = self.get(l);
                    let y = self.get(r);
                    self.compare(*op, *kind, l, r, x, y)
                }
            }
            Cond::CmpConst { op, l, c } => {
                if !self.tick(3) {
                    return Truth::Unknown;
                }
                if l.is_call() {
                    let op = *op;
                    self.with1(l, |ev, x| ev.compare_const(op, l, x, c))
                } else {
                    let x = self.get(l);
                    self.compare_const(*op, l, x, c)
                }
            }
            Cond::InSet { needle, set } => {
                if !self.tick(3) {
                    return Truth::Unknown;
                }
                if needle.is_call() {
                    self.with1(needle, |ev, n| ev.in_set(needle, n, set))
                } else {
                    let n = self.get(needle);
                    self.in_set(needle, n, set)
                }
            }
            Cond::InList { needle, list } => {
                if !self.tick(3) {
                    return Truth::Unknown;
                }
                if list.is_call() || needle.is_call() {
                    self.with2(list, needle, |ev, l, n| ev.in_list(list, l, n))
                } else {
                    let l = self.get(list);
                    let n = self.get(needle);
                    self.in_list(list, l, n)
                }
            }
            Cond::Substr { needle, hay } => {
                if !self.tick(3) {
                    return Truth::Unknown;
                }
                if hay.is_call() || needle.is_call() {
                    return self.with2(hay, needle, |ev, h, n| ev.substr(needle, hay, n, h));
                }
                let h = self.get(hay);
                let n = self.get(needle);
                self.substr(needle, hay, n, h)
            }
            Cond::KeyIn { key, map } => {
                if !self.tick(3) {
                    return Truth::Unknown;
                }
                if key.is_call() {
                    return self.with1(key, |ev, k| ev.key_in(key, *map, k));
                }
                let k = self.get(key);
                self.key_in(key, *map, k)
            }
            Cond::Has(v) => {
                if !self.tick(2) {
                    return Truth::Unknown;
                }
                // `has` takes a path, never a call.
                Truth::from(!self.get(v).is_missing())
            }
        }
    }

    #[inline(always)]
    fn truth_of(&mut self, v: &Val, x: ValueRef<'_>) -> Truth {
        match x {
            ValueRef::Bool(b) => Truth::from(b),
            ValueRef::Missing => Truth::Unknown,
            other => {
                let e = self.x.mismatch(v, other, ScalarType::Bool);
                self.fail(e);
                Truth::Unknown
            }
        }
    }

    #[inline(always)]
    fn substr(&mut self, needle: &Val, hay: &Val, n: ValueRef<'_>, h: ValueRef<'_>) -> Truth {
        match (n, h) {
            (ValueRef::Str(n), ValueRef::Str(h)) => {
                if !self.tick(h.len() as u64 / 64) {
                    return Truth::Unknown;
                }
                Truth::from(h.contains(n))
            }
            (n, h) => {
                if let Err(e) = self.x.check(needle, n, ScalarType::Str).and(self.x.check(hay, h, ScalarType::Str)) {
                    self.fail(e);
                }
                Truth::Unknown
            }
        }
    }

    #[inline(always)]
    fn key_in(&mut self, key: &Val, map: Slot, k: ValueRef<'_>) -> Truth {
        match k {
            ValueRef::Str(k) => Truth::from(!self.b.get_key(map, k).is_missing()),
            ValueRef::Missing => Truth::Unknown,
            other => {
                let e = self.x.mismatch(key, other, ScalarType::Str);
                self.fail(e);
                Truth::Unknown
            }
        }
    }

    #[inline(always)]
    fn in_set(&mut self, needle: &Val, n: ValueRef<'_>, set: &ConstSet) -> Truth {
        if n.is_missing() {
            return Truth::Unknown;
        }
        match set.contains(n) {
            Some(found) => Truth::from(found),
            None => {
                let e = self.x.mismatch(needle, n, n.scalar_type().unwrap_or(ScalarType::Str));
                self.fail(e);
                Truth::Unknown
            }
        }
    }

    #[inline(always)]
    fn in_list(&mut self, list: &Val, l: ValueRef<'_>, n: ValueRef<'_>) -> Truth {
        let l = match l {
            ValueRef::List(l) => l,
            ValueRef::Missing => return Truth::Unknown,
            other => {
                let e = self.x.mismatch(list, other, ScalarType::Str);
                self.fail(e);
                return Truth::Unknown;
            }
        };
        if n.is_missing() {
            return Truth::Unknown;
        }
        let (found, examined) = l.find(n, usize::try_from(self.left).unwrap_or(usize::MAX));
        if !self.tick(examined as u64) {
            return Truth::Unknown;
        }
        Truth::from(found)
    }

    #[inline(always)]
    fn compare_const(&mut self, op: CmpOp, l: &Val, x: ValueRef<'_>, c: &Scalar) -> Truth {
        let ord = match (c, x) {
            (Scalar::Str(c), ValueRef::Str(s)) => match op {
                CmpOp::Eq => return Truth::from(str_eq(s, c)),
                CmpOp::Ne => return Truth::from(!str_eq(s, c)),
                _ => Some(s.cmp(c)),
            },
            (Scalar::Int(c), ValueRef::Int(i)) => Some(i.cmp(c)),
            (Scalar::Dur(c), ValueRef::Duration(d)) => Some(d.cmp(c)),
            (Scalar::Bool(c), ValueRef::Bool(b)) => Some(b.cmp(c)),
            (Scalar::Float(c), ValueRef::Float(f)) => f.partial_cmp(c),
            (Scalar::Float(c), ValueRef::Int(i)) => (i as f64).partial_cmp(c),
            (Scalar::Int(c), ValueRef::Float(f)) => f.partial_cmp(&(*c as f64)),
            (_, ValueRef::Missing) => None,
            (c, x) => {
                if let Err(e) = self.x.check(l, x, c.kind()) {
                    self.fail(e);
                }
                None
            }
        };
        match ord {
            Some(o) => Truth::from(ordered(op, o)),
            None => Truth::Unknown,
        }
    }

    #[inline(always)]
    fn compare(&mut self, op: CmpOp, kind: Kind, l: &Val, r: &Val, x: ValueRef<'_>, y: ValueRef<'_>) -> Truth {
        let ord = match (kind, x, y) {
            (Kind::Str, ValueRef::Str(a), ValueRef::Str(c)) => match op {
                CmpOp::Eq => return Truth::from(str_eq(a, c)),
                CmpOp::Ne => return Truth::from(!str_eq(a, c)),
                _ => Some(a.cmp(c)),
            },
            (Kind::Num, ValueRef::Int(a), ValueRef::Int(c)) => Some(a.cmp(&c)),
            (Kind::Dur, ValueRef::Duration(a), ValueRef::Duration(c)) => Some(a.cmp(&c)),
            (Kind::Bool, ValueRef::Bool(a), ValueRef::Bool(c)) => Some(a.cmp(&c)),
            (Kind::Num, ValueRef::Int(_) | ValueRef::Float(_), ValueRef::Int(_) | ValueRef::Float(_)) => num_cmp(x, y),
            _ => {
                self.odd_operands(kind, l, r, x, y);
                None
            }
        };
        match ord {
            Some(o) => Truth::from(ordered(op, o)),
            None => Truth::Unknown, // a missing operand, or NaN
        }
    }

    /// Operands that are not both of the comparison's kind: missing is fine (unknown), anything
    /// else is the bindings' or a function's mistake.
    #[cold]
    #[inline(never)]
    fn odd_operands(&mut self, kind: Kind, l: &Val, r: &Val, x: ValueRef<'_>, y: ValueRef<'_>) {
        let want = match kind {
            Kind::Num => ScalarType::Float,
            Kind::Str => ScalarType::Str,
            Kind::Bool => ScalarType::Bool,
            Kind::Dur => ScalarType::Duration,
        };
        if let Err(e) = self.x.check(l, x, want).and(self.x.check(r, y, want)) {
            self.fail(e);
        }
    }

    #[inline(never)]
    fn call(&mut self, call: &'s CallNode) -> Value {
        let f = &call.function;
        let n = call.args.len().min(MAX_FUNCTION_PARAMS);
        // Nested calls first (their results are owned), then the borrowed arguments.
        let mut owned: [Value; MAX_FUNCTION_PARAMS] = Default::default();
        for (dst, a) in owned.iter_mut().zip(call.args.iter()) {
            if let Val::Call(inner) = a {
                *dst = self.call(inner);
            }
        }
        let mut args = [ValueRef::Missing; MAX_FUNCTION_PARAMS];
        for (((dst, a), o), param) in args.iter_mut().zip(call.args.iter()).zip(owned.iter()).zip(f.params.iter()) {
            *dst = if let Val::Call(_) = a { o.as_ref() } else { self.get(a) };
            // A binding of another type than declared fails here as in a comparison, before
            // the function sees it.
            let checked = match (*param, *dst) {
                (_, ValueRef::Missing) | (Type::List(_), ValueRef::List(_)) => Ok(()),
                (Type::Scalar(t), got) => self.x.check(a, got, t),
                (_, got) => Err(ExprError::new(
                    ExprErrorKind::Binding,
                    format!(
                        "bindings returned {} for an argument of {}, declared {param}",
                        a_kind(got),
                        describe_fn(f)
                    ),
                )),
            };
            if let Err(e) = checked {
                self.fail(e);
                return Value::Missing;
            }
            // The compiler let an int stand for a float parameter: it arrives as a float.
            if let (ValueRef::Int(i), Type::Scalar(ScalarType::Float)) = (*dst, param) {
                *dst = ValueRef::Float(i as f64);
            }
        }
        if !self.tick(u64::from(f.cost)) {
            return Value::Missing;
        }
        let out = match self.b.call(f, &args[..n]) {
            Ok(v) => v,
            Err(msg) => {
                self.fail(ExprError::new(
                    ExprErrorKind::Function,
                    format!("function {} failed: {msg}", describe_fn(f)),
                ));
                return Value::Missing;
            }
        };
        let ok = match (&out, f.returns) {
            (Value::Missing, _) => true,
            (v, Type::Scalar(t)) => v.scalar_type().is_some_and(|got| t.accepts(got)),
            (Value::List(items), Type::List(t)) => {
                items.iter().all(|i| i.scalar_type().is_some_and(|got| t.comparable(got)))
            }
            _ => false,
        };
        if !ok {
            self.fail(ExprError::new(
                ExprErrorKind::Function,
                format!("function {} returned {}, not a {}", describe_fn(f), out.as_ref().kind_name(), f.returns),
            ));
            return Value::Missing;
        }
        out
    }
}

/// The value's kind with its article: "an int", "a string".
fn a_kind(v: ValueRef<'_>) -> String {
    let kind = v.kind_name();
    let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
    format!("{article} {kind}")
}

fn describe_fn(f: &Function) -> String {
    match &f.member {
        Some(m) => format!("{}(…).{m}", f.name),
        None => f.name.clone(),
    }
}

/// Compile-time check that the shared types are `Send + Sync`.
const _: () = {
    const fn is<T: Send + Sync>() {}
    is::<CompiledExpr>();
    is::<Schema>();
};
