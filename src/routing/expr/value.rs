//! Types and values: what the schema declares, what bindings return, what functions produce.

use chrono::TimeDelta;
use std::collections::{BTreeSet, HashSet};
use std::fmt;

use crate::model::LanguageTag;

/// The type of a scalar: a list element, a map value, or a plain value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScalarType {
    /// `true` or `false`.
    Bool,
    /// A 64-bit signed integer (skill levels, counts, priorities).
    Int,
    /// A 64-bit float (ratios, proficiency 1.0–5.0, service levels). Integers compare with floats.
    Float,
    /// A UTF-8 string, compared byte for byte (case-sensitive).
    Str,
    /// A signed span of time ([`chrono::TimeDelta`]), written `90s`, `1h30m`, `250ms`.
    Duration,
}

impl ScalarType {
    fn name(self) -> &'static str {
        match self {
            ScalarType::Bool => "bool",
            ScalarType::Int => "int",
            ScalarType::Float => "float",
            ScalarType::Str => "string",
            ScalarType::Duration => "duration",
        }
    }

    pub(crate) fn is_numeric(self) -> bool {
        matches!(self, ScalarType::Int | ScalarType::Float)
    }

    /// Whether a value of type `other` may be used where `self` is expected (ints widen to floats).
    pub(crate) fn accepts(self, other: ScalarType) -> bool {
        self == other || (self == ScalarType::Float && other == ScalarType::Int)
    }

    /// Whether values of the two types can be compared with `==` (numbers with numbers, else same type).
    pub(crate) fn comparable(self, other: ScalarType) -> bool {
        self == other || (self.is_numeric() && other.is_numeric())
    }
}

impl fmt::Display for ScalarType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The type of a path in a [`Schema`](super::Schema), of a function parameter or of a function result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Type {
    /// A single value.
    Scalar(ScalarType),
    /// A list of values of one type (`agent.languages`, `item.tags`).
    List(ScalarType),
    /// A map from names to values, addressed as `path.<name>` or `path["name"]`
    /// (`agent.skills.billing` → the agent's billing level; absent = missing).
    /// Only a path can have a map type.
    Map(ScalarType),
}

impl Type {
    /// [`ScalarType::Bool`] as a [`Type`].
    pub const BOOL: Type = Type::Scalar(ScalarType::Bool);
    /// [`ScalarType::Int`] as a [`Type`].
    pub const INT: Type = Type::Scalar(ScalarType::Int);
    /// [`ScalarType::Float`] as a [`Type`].
    pub const FLOAT: Type = Type::Scalar(ScalarType::Float);
    /// [`ScalarType::Str`] as a [`Type`].
    pub const STR: Type = Type::Scalar(ScalarType::Str);
    /// [`ScalarType::Duration`] as a [`Type`].
    pub const DURATION: Type = Type::Scalar(ScalarType::Duration);

    /// Whether a value of type `other` may be used where `self` is expected (ints widen to floats).
    pub(crate) fn accepts(self, other: Type) -> bool {
        match (self, other) {
            (Type::Scalar(a), Type::Scalar(b)) | (Type::List(a), Type::List(b)) | (Type::Map(a), Type::Map(b)) => {
                a.accepts(b)
            }
            _ => false,
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Scalar(s) => f.write_str(s.name()),
            Type::List(s) => write!(f, "list of {s}"),
            Type::Map(s) => write!(f, "map of {s}"),
        }
    }
}

/// The outcome of a condition under three-valued (Kleene) logic.
///
/// A comparison with a missing value is [`Unknown`](Truth::Unknown); `not` keeps it unknown, so
/// `not (a < b)` always means the same as `a >= b`; `and` is false as soon as one side is false
/// and `or` true as soon as one side is true, whatever the other. Where a decision is taken
/// (a rule matches, an agent is eligible) unknown counts as *no*: see [`Truth::is_true`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Truth {
    /// The condition does not hold.
    False,
    /// The condition holds.
    True,
    /// The condition depends on a missing value.
    Unknown,
}

impl Truth {
    /// Whether the condition certainly holds (unknown is no).
    pub fn is_true(self) -> bool {
        self == Truth::True
    }

    /// Kleene negation: unknown stays unknown.
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Truth {
        match self {
            Truth::True => Truth::False,
            Truth::False => Truth::True,
            Truth::Unknown => Truth::Unknown,
        }
    }

    /// Kleene conjunction.
    pub fn and(self, other: Truth) -> Truth {
        match (self, other) {
            (Truth::False, _) | (_, Truth::False) => Truth::False,
            (Truth::True, Truth::True) => Truth::True,
            _ => Truth::Unknown,
        }
    }

    /// Kleene disjunction.
    pub fn or(self, other: Truth) -> Truth {
        match (self, other) {
            (Truth::True, _) | (_, Truth::True) => Truth::True,
            (Truth::False, Truth::False) => Truth::False,
            _ => Truth::Unknown,
        }
    }
}

impl From<bool> for Truth {
    fn from(b: bool) -> Self {
        if b { Truth::True } else { Truth::False }
    }
}

/// An owned value: a constant, a function's result, or what [`Values`](super::Values) stores.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// No value (an absent attribute, a skill the agent does not have).
    #[default]
    Missing,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A span of time.
    Duration(TimeDelta),
    /// A list of scalars.
    List(Vec<Value>),
}

impl Value {
    /// A borrowed view of this value.
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Missing => ValueRef::Missing,
            Value::Bool(b) => ValueRef::Bool(*b),
            Value::Int(i) => ValueRef::Int(*i),
            Value::Float(f) => ValueRef::Float(*f),
            Value::Str(s) => ValueRef::Str(s),
            Value::Duration(d) => ValueRef::Duration(*d),
            Value::List(l) => ValueRef::List(ListRef::Values(l)),
        }
    }

    /// The value's scalar type, if it is a scalar.
    pub(crate) fn scalar_type(&self) -> Option<ScalarType> {
        self.as_ref().scalar_type()
    }
}

macro_rules! value_from {
    ($($t:ty => $v:ident $(as $cast:ty)?),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from(x: $t) -> Self {
                Value::$v((x $(as $cast)?).into())
            }
        }
    )*};
}

value_from!(bool => Bool, i64 => Int, i32 => Int as i64, u32 => Int as i64, u16 => Int as i64, u8 => Int as i64,
    f64 => Float, f32 => Float as f64, String => Str, &str => Str, TimeDelta => Duration);

impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(v: Vec<T>) -> Self {
        Value::List(v.into_iter().map(Into::into).collect())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Missing, Into::into)
    }
}

/// A borrowed value, as [`Bindings`](super::Bindings) return it: strings and lists are borrowed
/// from the host's own structs, so evaluation allocates nothing.
#[derive(Clone, Copy)]
pub enum ValueRef<'a> {
    /// No value: the attribute is absent. Comparisons with it are [`Truth::Unknown`].
    Missing,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float (NaN behaves like a missing value).
    Float(f64),
    /// A borrowed string.
    Str(&'a str),
    /// A span of time.
    Duration(TimeDelta),
    /// A borrowed list.
    List(ListRef<'a>),
}

impl<'a> ValueRef<'a> {
    /// Whether this is [`ValueRef::Missing`] (a NaN float counts as missing too).
    pub fn is_missing(&self) -> bool {
        match self {
            ValueRef::Missing => true,
            ValueRef::Float(f) => f.is_nan(),
            _ => false,
        }
    }

    /// An owned copy.
    pub fn to_value(&self) -> Value {
        match *self {
            ValueRef::Missing => Value::Missing,
            ValueRef::Bool(b) => Value::Bool(b),
            ValueRef::Int(i) => Value::Int(i),
            ValueRef::Float(f) => Value::Float(f),
            ValueRef::Str(s) => Value::Str(s.to_owned()),
            ValueRef::Duration(d) => Value::Duration(d),
            ValueRef::List(l) => Value::List((0..l.len()).map(|i| l.get(i).to_value()).collect()),
        }
    }

    pub(crate) fn scalar_type(&self) -> Option<ScalarType> {
        Some(match self {
            ValueRef::Bool(_) => ScalarType::Bool,
            ValueRef::Int(_) => ScalarType::Int,
            ValueRef::Float(_) => ScalarType::Float,
            ValueRef::Str(_) => ScalarType::Str,
            ValueRef::Duration(_) => ScalarType::Duration,
            ValueRef::Missing | ValueRef::List(_) => return None,
        })
    }

    /// A short name of the value's kind, for messages.
    pub(crate) fn kind_name(&self) -> &'static str {
        match self {
            ValueRef::Missing => "missing",
            ValueRef::List(_) => "list",
            other => other.scalar_type().map_or("missing", ScalarType::name),
        }
    }
}

impl fmt::Debug for ValueRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueRef::Missing => f.write_str("Missing"),
            ValueRef::Bool(b) => write!(f, "Bool({b})"),
            ValueRef::Int(i) => write!(f, "Int({i})"),
            ValueRef::Float(x) => write!(f, "Float({x})"),
            ValueRef::Str(s) => write!(f, "Str({s:?})"),
            ValueRef::Duration(d) => write!(f, "Duration({d})"),
            ValueRef::List(l) => f.debug_list().entries((0..l.len()).map(|i| l.get(i))).finish(),
        }
    }
}

impl PartialEq for ValueRef<'_> {
    /// Structural equality (lists element by element); `Missing == Missing`.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (ValueRef::Missing, ValueRef::Missing) => true,
            (ValueRef::Bool(a), ValueRef::Bool(b)) => a == b,
            (ValueRef::Int(a), ValueRef::Int(b)) => a == b,
            (ValueRef::Float(a), ValueRef::Float(b)) => a == b,
            (ValueRef::Str(a), ValueRef::Str(b)) => a == b,
            (ValueRef::Duration(a), ValueRef::Duration(b)) => a == b,
            (ValueRef::List(a), ValueRef::List(b)) => a.len() == b.len() && (0..a.len()).all(|i| a.get(i) == b.get(i)),
            _ => false,
        }
    }
}

/// A borrowed list. The common shapes are borrowed directly; anything else (a set, a list of
/// newtypes) goes through [`ListValue`].
#[derive(Clone, Copy)]
pub enum ListRef<'a> {
    /// Owned strings, e.g. a `Vec<String>` field.
    Strs(&'a [String]),
    /// Borrowed strings.
    StrRefs(&'a [&'a str]),
    /// Integers.
    Ints(&'a [i64]),
    /// Floats.
    Floats(&'a [f64]),
    /// Owned values.
    Values(&'a [Value]),
    /// Any other collection, e.g. a `BTreeSet<String>` of tags or a `[LanguageTag]`.
    Custom(&'a (dyn ListValue + 'a)),
}

impl<'a> ListRef<'a> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            ListRef::Strs(s) => s.len(),
            ListRef::StrRefs(s) => s.len(),
            ListRef::Ints(s) => s.len(),
            ListRef::Floats(s) => s.len(),
            ListRef::Values(s) => s.len(),
            ListRef::Custom(c) => c.len(),
        }
    }

    /// Whether the list has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element at `index` ([`ValueRef::Missing`] past the end).
    pub fn get(&self, index: usize) -> ValueRef<'a> {
        match *self {
            ListRef::Strs(s) => s.get(index).map_or(ValueRef::Missing, |x| ValueRef::Str(x)),
            ListRef::StrRefs(s) => s.get(index).map_or(ValueRef::Missing, |x| ValueRef::Str(x)),
            ListRef::Ints(s) => s.get(index).map_or(ValueRef::Missing, |x| ValueRef::Int(*x)),
            ListRef::Floats(s) => s.get(index).map_or(ValueRef::Missing, |x| ValueRef::Float(*x)),
            ListRef::Values(s) => s.get(index).map_or(ValueRef::Missing, Value::as_ref),
            ListRef::Custom(c) => c.get(index),
        }
    }

    /// Whether an element equals `needle` (numbers compare across int and float; a missing or
    /// NaN needle is never found). Returns the answer and the number of elements examined.
    /// Whether an element equals `needle`, and how many elements were examined, examining at
    /// most `limit + 1` (one more than the evaluation budget has left, which then fails it).
    pub(crate) fn find(&self, needle: ValueRef<'_>, limit: usize) -> (bool, usize) {
        let cap = limit.saturating_add(1);
        match (*self, needle) {
            (ListRef::Strs(s), ValueRef::Str(n)) => position(s.iter().take(cap).map(|x| str_eq(x, n))),
            (ListRef::StrRefs(s), ValueRef::Str(n)) => position(s.iter().take(cap).map(|x| str_eq(x, n))),
            (ListRef::Ints(s), ValueRef::Int(n)) => position(s.iter().take(cap).map(|x| *x == n)),
            (ListRef::Custom(c), n) => c.contains_within(n, limit),
            (list, n) => position((0..list.len().min(cap)).map(|i| scalar_eq(list.get(i), n) == Some(true))),
        }
    }
}

/// String equality tuned for the short strings routing compares (channels, languages, tags):
/// lengths first, then at most two word loads, without a call into `memcmp`.
#[inline(always)]
pub(crate) fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    #[inline(always)]
    fn word8(s: &[u8], i: usize) -> u64 {
        s.get(i..i + 8).and_then(|w| w.try_into().ok()).map_or(0, u64::from_le_bytes)
    }
    #[inline(always)]
    fn word4(s: &[u8], i: usize) -> u32 {
        s.get(i..i + 4).and_then(|w| w.try_into().ok()).map_or(0, u32::from_le_bytes)
    }
    match n {
        0 => true,
        // First, middle and last byte cover every byte of a string of up to three.
        1..=3 => a.first() == b.first() && a.get(n / 2) == b.get(n / 2) && a.last() == b.last(),
        4..=7 => word4(a, 0) == word4(b, 0) && word4(a, n - 4) == word4(b, n - 4),
        8..=16 => word8(a, 0) == word8(b, 0) && word8(a, n - 8) == word8(b, n - 8),
        _ => a == b,
    }
}

/// Whether any of `hits` is true, and how many were looked at.
fn position(mut hits: impl Iterator<Item = bool>) -> (bool, usize) {
    let mut n = 0;
    let found = hits.any(|hit| {
        n += 1;
        hit
    });
    (found, n)
}

/// Equality of two scalars: `None` when either is missing (or NaN) or they cannot be compared.
pub(crate) fn scalar_eq(a: ValueRef<'_>, b: ValueRef<'_>) -> Option<bool> {
    match (a, b) {
        (ValueRef::Bool(x), ValueRef::Bool(y)) => Some(x == y),
        (ValueRef::Str(x), ValueRef::Str(y)) => Some(x == y),
        (ValueRef::Duration(x), ValueRef::Duration(y)) => Some(x == y),
        (ValueRef::Int(x), ValueRef::Int(y)) => Some(x == y),
        (x, y) => num_cmp(x, y).map(|o| o == std::cmp::Ordering::Equal),
    }
}

/// Ordering of two numbers (int with int exactly, otherwise as floats); `None` for NaN or non-numbers.
pub(crate) fn num_cmp(a: ValueRef<'_>, b: ValueRef<'_>) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (ValueRef::Int(x), ValueRef::Int(y)) => Some(x.cmp(&y)),
        (ValueRef::Int(x), ValueRef::Float(y)) => (x as f64).partial_cmp(&y),
        (ValueRef::Float(x), ValueRef::Int(y)) => x.partial_cmp(&(y as f64)),
        (ValueRef::Float(x), ValueRef::Float(y)) => x.partial_cmp(&y),
        _ => None,
    }
}

/// A collection a [`Bindings`](super::Bindings) can hand out as a list without copying it:
/// implement it for your own types, or use the implementations for sets of strings and
/// `[LanguageTag]`.
///
/// ```
/// use touchpoint::routing::expr::{ListValue, ValueRef};
/// struct Channels(Vec<&'static str>);
/// impl ListValue for Channels {
///     fn len(&self) -> usize { self.0.len() }
///     fn get(&self, index: usize) -> ValueRef<'_> {
///         self.0.get(index).map_or(ValueRef::Missing, |s| ValueRef::Str(s))
///     }
/// }
/// assert!(Channels(vec!["sms", "email"]).contains(ValueRef::Str("email")).0);
/// ```
pub trait ListValue: Send + Sync {
    /// Number of elements.
    fn len(&self) -> usize;

    /// Whether there are no elements.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element at `index` ([`ValueRef::Missing`] past the end).
    fn get(&self, index: usize) -> ValueRef<'_>;

    /// Whether an element equals `needle`, and how many elements were examined (counted against
    /// the evaluation budget). Override it when the collection has a faster lookup than a scan.
    fn contains(&self, needle: ValueRef<'_>) -> (bool, usize) {
        position((0..self.len()).map(|i| scalar_eq(self.get(i), needle) == Some(true)))
    }

    /// [`contains`](Self::contains) within the evaluation budget: `limit` is how many elements
    /// the budget has left. The default calls `contains` when the list is no longer than that,
    /// and otherwise scans at most `limit + 1` elements through [`get`](Self::get) (so the
    /// evaluation stops at the budget instead of after the whole list). Override it with
    /// `contains` when the collection looks elements up without a scan (a hash or tree set),
    /// so a long one is not scanned.
    fn contains_within(&self, needle: ValueRef<'_>, limit: usize) -> (bool, usize) {
        if self.len() <= limit {
            return self.contains(needle);
        }
        position((0..=limit).map(|i| scalar_eq(self.get(i), needle) == Some(true)))
    }
}

impl ListValue for BTreeSet<String> {
    fn len(&self) -> usize {
        BTreeSet::len(self)
    }
    fn get(&self, index: usize) -> ValueRef<'_> {
        self.iter().nth(index).map_or(ValueRef::Missing, |s| ValueRef::Str(s))
    }
    fn contains(&self, needle: ValueRef<'_>) -> (bool, usize) {
        match needle {
            ValueRef::Str(s) => (BTreeSet::contains(self, s), 1),
            _ => (false, 1),
        }
    }
    fn contains_within(&self, needle: ValueRef<'_>, _limit: usize) -> (bool, usize) {
        ListValue::contains(self, needle)
    }
}

impl<S: std::hash::BuildHasher + Send + Sync> ListValue for HashSet<String, S> {
    fn len(&self) -> usize {
        HashSet::len(self)
    }
    fn get(&self, index: usize) -> ValueRef<'_> {
        self.iter().nth(index).map_or(ValueRef::Missing, |s| ValueRef::Str(s))
    }
    fn contains(&self, needle: ValueRef<'_>) -> (bool, usize) {
        match needle {
            ValueRef::Str(s) => (HashSet::contains(self, s), 1),
            _ => (false, 1),
        }
    }
    fn contains_within(&self, needle: ValueRef<'_>, _limit: usize) -> (bool, usize) {
        ListValue::contains(self, needle)
    }
}

impl ListValue for BTreeSet<LanguageTag> {
    fn len(&self) -> usize {
        BTreeSet::len(self)
    }
    fn get(&self, index: usize) -> ValueRef<'_> {
        self.iter().nth(index).map_or(ValueRef::Missing, |t| ValueRef::Str(t.as_str()))
    }
    fn contains(&self, needle: ValueRef<'_>) -> (bool, usize) {
        match needle {
            ValueRef::Str(s) => (self.iter().any(|t| t.as_str() == s), self.len().max(1)),
            _ => (false, 1),
        }
    }
    fn contains_within(&self, needle: ValueRef<'_>, limit: usize) -> (bool, usize) {
        match needle {
            ValueRef::Str(s) => position(self.iter().take(limit.saturating_add(1)).map(|t| t.as_str() == s)),
            _ => (false, 1),
        }
    }
}

/// A JSON array (an attribute value): strings, numbers and booleans are its elements; other
/// JSON values (objects, nested arrays, null) read as missing.
impl ListValue for Vec<serde_json::Value> {
    fn len(&self) -> usize {
        Vec::len(self)
    }
    fn get(&self, index: usize) -> ValueRef<'_> {
        <[serde_json::Value]>::get(self, index).map_or(ValueRef::Missing, ValueRef::from_json)
    }
}

impl<'a> ValueRef<'a> {
    /// A JSON scalar as a value: a string, a boolean, an integer (when it fits `i64`) or a
    /// float; `null`, objects and arrays are [`ValueRef::Missing`] (arrays: see
    /// [`ListRef::Custom`] over `Vec<serde_json::Value>`).
    pub fn from_json(v: &'a serde_json::Value) -> ValueRef<'a> {
        match v {
            serde_json::Value::String(s) => ValueRef::Str(s),
            serde_json::Value::Bool(b) => ValueRef::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => ValueRef::Int(i),
                None => n.as_f64().map_or(ValueRef::Missing, ValueRef::Float),
            },
            _ => ValueRef::Missing,
        }
    }
}

impl ListValue for [LanguageTag] {
    fn len(&self) -> usize {
        <[LanguageTag]>::len(self)
    }
    fn get(&self, index: usize) -> ValueRef<'_> {
        <[LanguageTag]>::get(self, index).map_or(ValueRef::Missing, |t| ValueRef::Str(t.as_str()))
    }
}
