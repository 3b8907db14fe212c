//! The tree form: [`Expr`], its text form (`Display`) and its serde form.

use chrono::TimeDelta;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt::{self, Write as _};
use std::str::FromStr;

use super::error::ExprError;
use super::parse::{self, Limits};

/// Words that cannot start a path or name a function: `and or not in contains true false`.
pub const KEYWORDS: [&str; 7] = ["and", "or", "not", "in", "contains", "true", "false"];

/// An expression: the tree form of a routing condition.
///
/// Every node is plain serde data, so rules can live in JSON or TOML as well as in text. The text
/// form is what `Display` prints and [`Expr::parse`] reads:
///
/// ```
/// use touchpoint::routing::expr::Expr;
/// let e = Expr::parse(r#"item.channel == "whatsapp" and "vip" in item.tags"#).unwrap();
/// assert_eq!(e.to_string(), r#"item.channel == "whatsapp" and "vip" in item.tags"#);
/// let json = serde_json::to_string(&e).unwrap();
/// assert_eq!(
///     json,
///     r#"{"and":[{"eq":[{"path":"item.channel"},{"str":"whatsapp"}]},{"in":[{"str":"vip"},{"path":"item.tags"}]}]}"#
/// );
/// assert_eq!(serde_json::from_str::<Expr>(&json).unwrap(), e);
/// ```
///
/// Printing then parsing gives back the same tree for every tree the parser can produce
/// (`and`/`or` with at least two operands, finite floats, valid names), and a tree that means the
/// same for any other valid tree. Floats survive JSON exactly when `serde_json`'s
/// `float_roundtrip` feature is on (its default parser may move the last digit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Expr {
    /// `true` / `false`.
    Bool(bool),
    /// An integer literal: `3`, `-12`.
    Int(i64),
    /// A float literal: `2.5`, `1e-3`.
    Float(f64),
    /// A string literal: `"whatsapp"` (single quotes are read too).
    Str(String),
    /// A duration literal: `90s`, `1h30m`, `250ms`, `2d` (units `d h m s ms us ns`). Its serde
    /// form is the same text, e.g. `{"duration": "1m30s"}`.
    Duration(#[serde(with = "duration_serde")] TimeDelta),
    /// A list literal of scalars: `["sms", "whatsapp"]`, `[1, 2, 3]`.
    List(Vec<Literal>),
    /// A value looked up through the schema: `item.channel`, `agent.skills.billing`,
    /// `agent.skills["es-MX"]`.
    Path(Path),
    /// `has(path)`: whether the path has a value. Never unknown.
    Has(Path),
    /// A call of a function registered in the schema: `schedule("support").open`, `vip(item.customer)`.
    Call(Call),
    /// `not x`.
    Not(Box<Expr>),
    /// `a and b and …`.
    And(Vec<Expr>),
    /// `a or b or …`.
    Or(Vec<Expr>),
    /// `a == b`.
    Eq(Box<Expr>, Box<Expr>),
    /// `a != b`.
    Ne(Box<Expr>, Box<Expr>),
    /// `a < b`.
    Lt(Box<Expr>, Box<Expr>),
    /// `a <= b`.
    Le(Box<Expr>, Box<Expr>),
    /// `a > b`.
    Gt(Box<Expr>, Box<Expr>),
    /// `a >= b`.
    Ge(Box<Expr>, Box<Expr>),
    /// `a in b`: `a` is an element of list `b`, a substring of string `b`, or a key of map `b`.
    /// `a not in b` is read as `not (a in b)`.
    In(Box<Expr>, Box<Expr>),
    /// `a contains b`: the same as `b in a`.
    Contains(Box<Expr>, Box<Expr>),
}

/// A scalar literal inside a list literal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Literal {
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A duration (serde form: the text, e.g. `"90s"`).
    Duration(#[serde(with = "duration_serde")] TimeDelta),
}

/// A function call: `name(args…)` or `name(args…).member`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Call {
    /// The function's name.
    pub name: String,
    /// The arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Expr>,
    /// The member read from the result, as `open` in `schedule("support").open`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `in`
    In,
    /// `contains`
    Contains,
}

impl CmpOp {
    /// The operator as written in the text form.
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::In => "in",
            CmpOp::Contains => "contains",
        }
    }
}

impl Expr {
    /// Parses the text form with the default [`Limits`].
    ///
    /// ```
    /// use touchpoint::routing::expr::Expr;
    /// let err = Expr::parse("(item.priority > 2").unwrap_err();
    /// assert_eq!(err.to_string(), "expected ')' at 1:19");
    /// ```
    pub fn parse(source: &str) -> crate::Result<Expr> {
        Self::parse_with_limits(source, &Limits::default())
    }

    /// Parses the text form within `limits` (source length, nesting depth, node count, list length).
    pub fn parse_with_limits(source: &str, limits: &Limits) -> crate::Result<Expr> {
        Ok(parse::parse(source, limits)?.0)
    }

    /// A comparison node.
    pub fn compare(op: CmpOp, left: Expr, right: Expr) -> Expr {
        let (l, r) = (Box::new(left), Box::new(right));
        match op {
            CmpOp::Eq => Expr::Eq(l, r),
            CmpOp::Ne => Expr::Ne(l, r),
            CmpOp::Lt => Expr::Lt(l, r),
            CmpOp::Le => Expr::Le(l, r),
            CmpOp::Gt => Expr::Gt(l, r),
            CmpOp::Ge => Expr::Ge(l, r),
            CmpOp::In => Expr::In(l, r),
            CmpOp::Contains => Expr::Contains(l, r),
        }
    }

    /// The operator and operands, if this is a comparison.
    pub fn as_comparison(&self) -> Option<(CmpOp, &Expr, &Expr)> {
        Some(match self {
            Expr::Eq(l, r) => (CmpOp::Eq, &**l, &**r),
            Expr::Ne(l, r) => (CmpOp::Ne, l, r),
            Expr::Lt(l, r) => (CmpOp::Lt, l, r),
            Expr::Le(l, r) => (CmpOp::Le, l, r),
            Expr::Gt(l, r) => (CmpOp::Gt, l, r),
            Expr::Ge(l, r) => (CmpOp::Ge, l, r),
            Expr::In(l, r) => (CmpOp::In, l, r),
            Expr::Contains(l, r) => (CmpOp::Contains, l, r),
            _ => return None,
        })
    }

    /// The direct sub-expressions (operands, arguments), left to right.
    pub fn children(&self) -> Vec<&Expr> {
        match self {
            Expr::Not(e) => vec![e],
            Expr::And(v) | Expr::Or(v) => v.iter().collect(),
            Expr::Call(c) => c.args.iter().collect(),
            other => match other.as_comparison() {
                Some((_, l, r)) => vec![l, r],
                None => Vec::new(),
            },
        }
    }

    /// Binding strength in the text form: or 1, and 2, not 3, comparison 4, atom 5.
    fn precedence(&self) -> u8 {
        match self {
            Expr::Or(v) if v.len() >= 2 => 1,
            Expr::And(v) if v.len() >= 2 => 2,
            Expr::Or(v) | Expr::And(v) => v.first().map_or(5, Expr::precedence),
            Expr::Not(_) => 3,
            other if other.as_comparison().is_some() => 4,
            _ => 5,
        }
    }
}

impl FromStr for Expr {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Expr> {
        Expr::parse(s)
    }
}

fn child(f: &mut fmt::Formatter<'_>, e: &Expr, min: u8) -> fmt::Result {
    if e.precedence() < min { write!(f, "({e})") } else { write!(f, "{e}") }
}

fn chain(f: &mut fmt::Formatter<'_>, items: &[Expr], word: &str, min: u8, empty: &str) -> fmt::Result {
    match items {
        [] => f.write_str(empty),
        [only] => write!(f, "{only}"),
        _ => {
            for (i, e) in items.iter().enumerate() {
                if i > 0 {
                    write!(f, " {word} ")?;
                }
                child(f, e, min)?;
            }
            Ok(())
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Bool(b) => write!(f, "{b}"),
            Expr::Int(i) => write!(f, "{i}"),
            Expr::Float(x) => write_float(f, *x),
            Expr::Str(s) => write_str_lit(f, s),
            Expr::Duration(d) => write_duration(f, *d),
            Expr::List(items) => {
                f.write_char('[')?;
                for (i, l) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{l}")?;
                }
                f.write_char(']')
            }
            Expr::Path(p) => write!(f, "{p}"),
            Expr::Has(p) => write!(f, "has({p})"),
            Expr::Call(c) => {
                write!(f, "{}(", c.name)?;
                for (i, a) in c.args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_char(')')?;
                if let Some(m) = &c.member {
                    write!(f, ".{m}")?;
                }
                Ok(())
            }
            Expr::Not(e) => {
                f.write_str("not ")?;
                child(f, e, 3)
            }
            Expr::And(v) => chain(f, v, "and", 3, "true"),
            Expr::Or(v) => chain(f, v, "or", 2, "false"),
            other => match other.as_comparison() {
                Some((op, l, r)) => {
                    child(f, l, 5)?;
                    write!(f, " {} ", op.symbol())?;
                    child(f, r, 5)
                }
                None => f.write_str("?"),
            },
        }
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Int(i) => write!(f, "{i}"),
            Literal::Float(x) => write_float(f, *x),
            Literal::Str(s) => write_str_lit(f, s),
            Literal::Duration(d) => write_duration(f, *d),
        }
    }
}

/// Floats always show a `.` or an exponent, so they read back as floats.
fn write_float(f: &mut fmt::Formatter<'_>, x: f64) -> fmt::Result {
    let s = format!("{x:?}");
    if s.contains(['.', 'e', 'E', 'N', 'n']) { f.write_str(&s) } else { write!(f, "{s}.0") }
}

pub(crate) fn write_str_lit(f: &mut impl fmt::Write, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            '\0' => f.write_str("\\0")?,
            c if c.is_control() => write!(f, "\\u{{{:x}}}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

const UNITS: [(&str, i128); 7] = [
    ("d", 86_400_000_000_000),
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];

/// The nanoseconds of a duration (exact: a `TimeDelta` fits easily in an `i128`).
pub(crate) fn duration_nanos(d: TimeDelta) -> i128 {
    i128::from(d.num_seconds()) * 1_000_000_000 + i128::from(d.subsec_nanos())
}

/// The duration of `nanos` nanoseconds, if a `TimeDelta` can hold it.
pub(crate) fn duration_from_nanos(nanos: i128) -> Option<TimeDelta> {
    let secs = i64::try_from(nanos.div_euclid(1_000_000_000)).ok()?;
    let sub = u32::try_from(nanos.rem_euclid(1_000_000_000)).ok()?;
    TimeDelta::new(secs, sub)
}

/// The multiplier of a duration unit in nanoseconds.
pub(crate) fn duration_unit(unit: &str) -> Option<i128> {
    UNITS.iter().find(|(u, _)| *u == unit).map(|(_, n)| *n)
}

fn write_duration(f: &mut impl fmt::Write, d: TimeDelta) -> fmt::Result {
    let nanos = duration_nanos(d);
    if nanos == 0 {
        return f.write_str("0s");
    }
    if nanos < 0 {
        f.write_char('-')?;
    }
    let mut rest = nanos.unsigned_abs();
    for (unit, size) in UNITS {
        let size = size.unsigned_abs();
        let n = rest / size;
        if n > 0 {
            write!(f, "{n}{unit}")?;
            rest %= size;
        }
    }
    Ok(())
}

/// Formats a duration in the text form (`1h30m`, `250ms`, `0s`).
pub fn format_duration(d: TimeDelta) -> String {
    let mut s = String::new();
    let _ = write_duration(&mut s, d);
    s
}

mod duration_serde {
    use super::*;

    pub fn serialize<S: Serializer>(d: &TimeDelta, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TimeDelta, D::Error> {
        let text = String::deserialize(d)?;
        parse::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

/// A path through the schema: a root (`item`, `agent`, `queue`, …) and segments.
///
/// The first segment is an identifier (letters, digits, `_`; not starting with a digit; not a
/// keyword). Later segments may be any non-empty string; those that are not identifiers are
/// written in brackets: `agent.skills["es-MX"]`. The serde form is the text form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Path {
    segments: Vec<String>,
}

pub(crate) fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Path {
    /// Parses a path's text form, e.g. `agent.skills.billing` or `agent.skills["es-MX"]`.
    ///
    /// ```
    /// use touchpoint::routing::expr::Path;
    /// let p = Path::parse(r#"agent.skills["es-MX"]"#).unwrap();
    /// assert_eq!(p.segments(), ["agent", "skills", "es-MX"]);
    /// assert_eq!(p.root(), "agent");
    /// assert!(Path::parse("and.x").is_err());
    /// ```
    pub fn parse(text: &str) -> crate::Result<Path> {
        Ok(parse::parse_path(text)?)
    }

    /// A path from its segments, checked as [`Path::parse`] checks text.
    pub fn from_segments<I, S>(segments: I) -> crate::Result<Path>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let segments: Vec<String> = segments.into_iter().map(Into::into).collect();
        Path::check(segments).map_err(|(field, reason)| crate::Error::invalid(field, reason))
    }

    pub(crate) fn check(segments: Vec<String>) -> Result<Path, (&'static str, String)> {
        let Some(root) = segments.first() else {
            return Err(("path", "a path needs at least one segment".into()));
        };
        if !is_ident(root) {
            return Err(("path", format!("path root {root:?} is not an identifier")));
        }
        if KEYWORDS.contains(&root.as_str()) {
            return Err(("path", format!("`{root}` is a keyword and cannot start a path")));
        }
        if segments.iter().any(String::is_empty) {
            return Err(("path", "path segments cannot be empty".into()));
        }
        Ok(Path { segments })
    }

    /// The segments, root first.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The first segment (`item`, `agent`, `queue`, …).
    pub fn root(&self) -> &str {
        self.segments.first().map_or("", String::as_str)
    }

    /// Whether `prefix`'s segments start this path's segments.
    pub fn starts_with(&self, prefix: &Path) -> bool {
        self.segments.starts_with(&prefix.segments)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.segments.iter().enumerate() {
            if i == 0 {
                f.write_str(s)?;
            } else if is_ident(s) {
                write!(f, ".{s}")?;
            } else {
                f.write_char('[')?;
                write_str_lit(f, s)?;
                f.write_char(']')?;
            }
        }
        Ok(())
    }
}

impl FromStr for Path {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Path> {
        Path::parse(s)
    }
}

impl Serialize for Path {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Path {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Path, D::Error> {
        let text = String::deserialize(d)?;
        parse::parse_path(&text).map_err(|e: ExprError| serde::de::Error::custom(e))
    }
}
