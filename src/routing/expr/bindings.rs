//! How evaluation reads values: the [`Bindings`] trait, and [`Values`], a ready-made owned implementation.

use super::ast::Path;
use super::schema::{Function, Schema, Slot};
use super::value::{ScalarType, Type, Value, ValueRef};

/// Where a compiled expression reads its values from, by [`Slot`].
///
/// Implement it over your own structs (an agent, a work item, queue statistics): `get` returns
/// a borrowed [`ValueRef`], so evaluation builds no maps and allocates nothing. The trait is
/// object-safe; [`CompiledExpr::eval`](super::CompiledExpr::eval) takes `&dyn Bindings` as well
/// as a concrete type (which lets the compiler inline `get`).
///
/// Return [`ValueRef::Missing`] for an attribute that is absent. Returning a value of another
/// type than the schema declares makes evaluation fail with
/// [`ExprErrorKind::Binding`](super::ExprErrorKind::Binding) (ints are accepted for floats).
///
/// ```
/// use touchpoint::routing::expr::{Bindings, ListRef, Schema, ScalarType, Slot, Type, ValueRef};
/// use std::collections::HashMap;
///
/// struct Agent { languages: Vec<String>, skills: HashMap<String, i64> }
/// struct Item { language: String }
/// struct Pair<'a> { agent: &'a Agent, item: &'a Item }
///
/// let mut b = Schema::builder();
/// let item_language = b.declare("item.language", Type::STR).unwrap();
/// let agent_languages = b.declare("agent.languages", Type::List(ScalarType::Str)).unwrap();
/// let agent_skills = b.declare("agent.skills", Type::Map(ScalarType::Int)).unwrap();
/// let schema = b.build();
///
/// const ITEM_LANGUAGE: usize = 0;
/// const AGENT_LANGUAGES: usize = 1;
/// const AGENT_SKILLS: usize = 2;
/// assert_eq!(
///     [item_language.index(), agent_languages.index(), agent_skills.index()],
///     [ITEM_LANGUAGE, AGENT_LANGUAGES, AGENT_SKILLS]
/// );
///
/// impl Bindings for Pair<'_> {
///     fn get(&self, slot: Slot) -> ValueRef<'_> {
///         match slot.index() {
///             ITEM_LANGUAGE => ValueRef::Str(&self.item.language),
///             AGENT_LANGUAGES => ValueRef::List(ListRef::Strs(&self.agent.languages)),
///             _ => ValueRef::Missing,
///         }
///     }
///     fn get_key(&self, slot: Slot, key: &str) -> ValueRef<'_> {
///         match (slot.index(), self.agent.skills.get(key)) {
///             (AGENT_SKILLS, Some(level)) => ValueRef::Int(*level),
///             _ => ValueRef::Missing,
///         }
///     }
/// }
///
/// let rule = schema.compile("item.language in agent.languages and agent.skills.billing >= 3").unwrap();
/// let agent = Agent { languages: vec!["en".into(), "es".into()], skills: HashMap::from([("billing".into(), 4)]) };
/// let item = Item { language: "es".into() };
/// assert!(rule.matches(&Pair { agent: &agent, item: &item }).unwrap());
/// ```
pub trait Bindings {
    /// The value of a declared (non-map) path.
    fn get(&self, slot: Slot) -> ValueRef<'_>;

    /// The entry `key` of a path declared as a [`Type::Map`] (`agent.skills.billing` →
    /// `get_key(skills, "billing")`). The default has no entries.
    fn get_key(&self, slot: Slot, key: &str) -> ValueRef<'_> {
        let _ = (slot, key);
        ValueRef::Missing
    }

    /// Calls a registered [`Function`] with its evaluated arguments. The default runs the
    /// function's own implementation; override it to answer some functions from the state the
    /// bindings hold (a router answers `schedule("support").open` from its calendars and the
    /// `now` of the operation, so no function has to capture a clock) and delegate the others
    /// with [`Function::invoke`].
    fn call(&self, function: &Function, args: &[ValueRef<'_>]) -> Result<Value, String> {
        function.invoke(args)
    }
}

impl<T: Bindings + ?Sized> Bindings for &T {
    fn get(&self, slot: Slot) -> ValueRef<'_> {
        (**self).get(slot)
    }
    fn get_key(&self, slot: Slot, key: &str) -> ValueRef<'_> {
        (**self).get_key(slot, key)
    }
    fn call(&self, function: &Function, args: &[ValueRef<'_>]) -> Result<Value, String> {
        (**self).call(function, args)
    }
}

/// Owned values by path: the simplest [`Bindings`], for tests, tools and hosts that already
/// hold attributes as data. Setting checks the path and the type against the schema.
///
/// ```
/// use touchpoint::routing::expr::{Schema, ScalarType, Type, Values};
/// let mut b = Schema::builder();
/// b.declare("item.tags", Type::List(ScalarType::Str)).unwrap();
/// b.declare("agent.skills", Type::Map(ScalarType::Int)).unwrap();
/// let schema = b.build();
/// let mut v = Values::new(&schema);
/// v.set("item.tags", vec!["vip", "billing"]).unwrap();
/// v.set("agent.skills.spanish", 3).unwrap();
/// assert!(v.set("item.tags", 3).is_err()); // declared as a list of strings
/// assert!(schema.compile(r#""vip" in item.tags and has(agent.skills.spanish)"#).unwrap().matches(&v).unwrap());
/// ```
#[derive(Debug, Clone)]
pub struct Values {
    schema: Schema,
    values: Vec<Value>,
    entries: Vec<Vec<(String, Value)>>,
}

impl Values {
    /// All paths of `schema` missing.
    pub fn new(schema: &Schema) -> Self {
        Values {
            schema: schema.clone(),
            values: vec![Value::Missing; schema.len()],
            entries: vec![Vec::new(); schema.len()],
        }
    }

    /// Sets a declared path, or an entry of a map path (`agent.skills.billing`).
    /// [`Value::Missing`] clears it.
    pub fn set(&mut self, path: &str, value: impl Into<Value>) -> crate::Result<&mut Self> {
        let value = value.into();
        let parsed = Path::parse(path)?;
        let segs = parsed.segments();
        if let Some(slot) = self.schema.0.by_path.get(segs).copied()
            && let Some(ty) = self.schema.slot_type(slot)
        {
            if matches!(ty, Type::Map(_)) {
                return Err(crate::Error::invalid("values.path", format!("{path} is a map; set its entries")));
            }
            check(path, ty, &value)?;
            if let Some(v) = self.values.get_mut(slot.index()) {
                *v = value;
            }
            return Ok(self);
        }
        if let Some((key, prefix)) = segs.split_last()
            && let Some(slot) = self.schema.0.by_path.get(prefix).copied()
            && let Some(Type::Map(t)) = self.schema.slot_type(slot)
            && let Some(entries) = self.entries.get_mut(slot.index())
        {
            check(path, Type::Scalar(t), &value)?;
            entries.retain(|(k, _)| k != key);
            if value != Value::Missing {
                entries.push((key.clone(), value));
            }
            return Ok(self);
        }
        Err(crate::Error::invalid("values.path", format!("unknown path {path}")))
    }

    /// Sets a slot's value directly (checked against its declared type).
    pub fn set_slot(&mut self, slot: Slot, value: impl Into<Value>) -> crate::Result<&mut Self> {
        let value = value.into();
        let Some(ty) = self.schema.slot_type(slot) else {
            return Err(crate::Error::invalid("values.slot", format!("slot {} is not declared", slot.index())));
        };
        if matches!(ty, Type::Map(_)) {
            return Err(crate::Error::invalid("values.slot", "map slots are set entry by entry"));
        }
        check("slot", ty, &value)?;
        if let Some(v) = self.values.get_mut(slot.index()) {
            *v = value;
        }
        Ok(self)
    }
}

fn check(path: &str, ty: Type, value: &Value) -> crate::Result<()> {
    let fits = |want: ScalarType, v: &Value| v.scalar_type().is_some_and(|got| want.accepts(got));
    let ok = match (ty, value) {
        (_, Value::Missing) => true,
        (Type::Scalar(t), v) => fits(t, v),
        (Type::List(t), Value::List(items)) => items.iter().all(|i| fits(t, i)),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(crate::Error::invalid("values.value", format!("{path} is declared {ty}; got {:?}", value)))
    }
}

impl Bindings for Values {
    fn get(&self, slot: Slot) -> ValueRef<'_> {
        self.values.get(slot.index()).map_or(ValueRef::Missing, Value::as_ref)
    }

    fn get_key(&self, slot: Slot, key: &str) -> ValueRef<'_> {
        self.entries
            .get(slot.index())
            .and_then(|e| e.iter().find(|(k, _)| k == key))
            .map_or(ValueRef::Missing, |(_, v)| v.as_ref())
    }
}
