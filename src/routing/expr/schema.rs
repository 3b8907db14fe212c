//! The schema: which paths exist, their types and slots, and the registered functions.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::ast::{Expr, Path};
use super::compile::{self, CompiledExpr};
use super::parse::{self, Limits, is_name};
use super::value::{Type, Value, ValueRef};

/// The index of a declared path. Slots are dense, from 0, in declaration order, so a
/// [`Bindings`](super::Bindings) implementation can `match slot.index()` or index a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot(pub(crate) u32);

impl Slot {
    /// The slot's index (0 for the first declared path, 1 for the next, …).
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// The signature a function implementation has: arguments in, a value (or a failure message) out.
pub type FunctionImpl = dyn for<'a> Fn(&[ValueRef<'a>]) -> Result<Value, String> + Send + Sync;

/// The most parameters a function may take.
pub const MAX_FUNCTION_PARAMS: usize = 8;

/// A function the expressions of a schema may call: a custom predicate (`vip(item.customer)`)
/// or a calendar lookup (`schedule("support").open`).
///
/// The implementation gets its arguments already evaluated (a missing argument arrives as
/// [`ValueRef::Missing`]) and returns a value of the declared type, or [`Value::Missing`] (the
/// caller then sees a missing value), or `Err(message)` (evaluation fails with
/// [`ExprErrorKind::Function`](super::ExprErrorKind::Function)). It should be quick and must not
/// block; state it needs (a clock, a calendar table) is captured when it is built. Each call
/// costs [`Function::cost`] steps of the evaluation budget.
///
/// ```
/// use touchpoint::routing::expr::{Function, Type, Value, ValueRef};
/// let open = Function::new("schedule", [Type::STR], Type::BOOL, |args| match args {
///     [ValueRef::Str(name)] => Ok(Value::Bool(*name == "support")),
///     _ => Ok(Value::Missing),
/// })
/// .member("open")
/// .cost(20);
/// assert_eq!(open.to_string(), "schedule(string).open -> bool");
/// ```
#[derive(Clone)]
pub struct Function {
    pub(crate) name: String,
    pub(crate) member: Option<String>,
    pub(crate) params: Vec<Type>,
    pub(crate) returns: Type,
    pub(crate) cost: u32,
    pub(crate) call: Arc<FunctionImpl>,
}

impl Function {
    /// A function `name(params…) -> returns` implemented by `f`, costing one step per call.
    pub fn new<F>(name: impl Into<String>, params: impl IntoIterator<Item = Type>, returns: Type, f: F) -> Self
    where
        F: for<'a> Fn(&[ValueRef<'a>]) -> Result<Value, String> + Send + Sync + 'static,
    {
        Function {
            name: name.into(),
            member: None,
            params: params.into_iter().collect(),
            returns,
            cost: 1,
            call: Arc::new(f),
        }
    }

    /// Makes this the member `name(…).member` (as `open` in `schedule("support").open`); one
    /// name can have several members, each its own registered function.
    pub fn member(mut self, member: impl Into<String>) -> Self {
        self.member = Some(member.into());
        self
    }

    /// Sets what one call costs in budget steps (at least 1).
    pub fn cost(mut self, steps: u32) -> Self {
        self.cost = steps.max(1);
        self
    }

    /// The function's name (`schedule` in `schedule("support").open`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The member, if the function is one (`open` in `schedule("support").open`).
    pub fn member_name(&self) -> Option<&str> {
        self.member.as_deref()
    }

    /// The declared parameter types.
    pub fn params(&self) -> &[Type] {
        &self.params
    }

    /// The declared result type.
    pub fn returns(&self) -> Type {
        self.returns
    }

    /// Runs the function's implementation on evaluated arguments (what
    /// [`Bindings::call`](super::Bindings::call) does unless a binding answers it itself).
    pub fn invoke(&self, args: &[ValueRef<'_>]) -> Result<Value, String> {
        (self.call)(args)
    }

    /// The name as called: `schedule` or `schedule(…).open`.
    pub(crate) fn key(&self) -> (String, Option<String>) {
        (self.name.clone(), self.member.clone())
    }
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(", self.name)?;
        for (i, p) in self.params.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{p}")?;
        }
        f.write_str(")")?;
        if let Some(m) = &self.member {
            write!(f, ".{m}")?;
        }
        write!(f, " -> {}", self.returns)
    }
}

impl fmt::Debug for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Function({self}, cost {})", self.cost)
    }
}

#[derive(Debug)]
pub(crate) struct SlotInfo {
    pub path: Path,
    pub ty: Type,
}

#[derive(Debug, Default)]
pub(crate) struct SchemaInner {
    pub slots: Vec<SlotInfo>,
    pub by_path: HashMap<Vec<String>, Slot>,
    pub functions: HashMap<(String, Option<String>), Function>,
    pub limits: Limits,
}

/// What expressions can refer to: declared paths with their types (each gets a [`Slot`]), the
/// registered [`Function`]s, and the [`Limits`]. Build one with [`Schema::builder`]; it is cheap
/// to clone and shared between threads.
///
/// A path declared with a [`Type::Map`] stands for a family: declaring `agent.skills` as a map
/// of ints makes `agent.skills.billing`, `agent.skills["es-MX"]`, `has(agent.skills.billing)` and
/// `"billing" in agent.skills` valid, looked up through [`Bindings::get_key`](super::Bindings::get_key).
///
/// ```
/// use touchpoint::routing::expr::{Schema, ScalarType, Type};
/// let mut b = Schema::builder();
/// let channel = b.declare("item.channel", Type::STR).unwrap();
/// let skills = b.declare("agent.skills", Type::Map(ScalarType::Int)).unwrap();
/// let schema = b.build();
/// assert_eq!(schema.slot("item.channel"), Some(channel));
/// assert_eq!(schema.slot_type(skills), Some(Type::Map(ScalarType::Int)));
///
/// let err = schema.compile(r#"item.channel == 3"#).unwrap_err();
/// assert_eq!(err.to_string(), "cannot compare item.channel (string) with 3 (int) at 1:14");
/// ```
#[derive(Clone, Debug)]
pub struct Schema(pub(crate) Arc<SchemaInner>);

/// Builds a [`Schema`].
#[derive(Debug, Default)]
pub struct SchemaBuilder {
    inner: SchemaInner,
}

impl SchemaBuilder {
    /// Declares `path` (text form, e.g. `item.channel`) with type `ty`, returning its slot.
    ///
    /// Fails if the path is malformed, already declared, or a prefix or extension of a declared
    /// path (`agent.skills` and `agent.skills.billing` cannot both be declared: declare the map).
    pub fn declare(&mut self, path: &str, ty: Type) -> crate::Result<Slot> {
        let path = Path::parse(path)?;
        self.declare_path(path, ty)
    }

    /// Declares an already parsed path.
    pub fn declare_path(&mut self, path: Path, ty: Type) -> crate::Result<Slot> {
        if let Some(other) = self.inner.slots.iter().find(|s| s.path.starts_with(&path) || path.starts_with(&s.path)) {
            let reason = if other.path == path {
                format!("path {path} is already declared")
            } else {
                format!("path {path} overlaps the declared path {} (declare a map instead)", other.path)
            };
            return Err(crate::Error::invalid("schema.path", reason));
        }
        let index = u32::try_from(self.inner.slots.len())
            .map_err(|_| crate::Error::invalid("schema.path", "too many paths"))?;
        let slot = Slot(index);
        self.inner.by_path.insert(path.segments().to_vec(), slot);
        self.inner.slots.push(SlotInfo { path, ty });
        Ok(slot)
    }

    /// Registers a function. Fails if the name (and member) is already registered, is not an
    /// identifier, is a keyword or `has`, takes more than [`MAX_FUNCTION_PARAMS`] parameters, or
    /// has a map type.
    pub fn function(&mut self, f: Function) -> crate::Result<()> {
        let field = "schema.function";
        if !is_name(&f.name) || f.name == "has" {
            return Err(crate::Error::invalid(field, format!("{:?} cannot name a function", f.name)));
        }
        if let Some(m) = &f.member
            && !super::ast::is_ident(m)
        {
            return Err(crate::Error::invalid(field, format!("{m:?} cannot name a member")));
        }
        if f.params.len() > MAX_FUNCTION_PARAMS {
            return Err(crate::Error::invalid(
                field,
                format!("{} takes {} parameters; at most {MAX_FUNCTION_PARAMS} are allowed", f.name, f.params.len()),
            ));
        }
        if matches!(f.returns, Type::Map(_)) || f.params.iter().any(|p| matches!(p, Type::Map(_))) {
            return Err(crate::Error::invalid(field, format!("{f}: functions cannot take or return maps")));
        }
        if self.inner.functions.contains_key(&f.key()) {
            return Err(crate::Error::invalid(field, format!("{f} is already registered")));
        }
        self.inner.functions.insert(f.key(), f);
        Ok(())
    }

    /// Sets the limits (the defaults otherwise).
    pub fn limits(&mut self, limits: Limits) -> &mut Self {
        self.inner.limits = limits;
        self
    }

    /// The finished schema.
    pub fn build(self) -> Schema {
        Schema(Arc::new(self.inner))
    }
}

impl Schema {
    /// An empty builder.
    pub fn builder() -> SchemaBuilder {
        SchemaBuilder::default()
    }

    /// The slot of a declared path (text form), or `None`.
    pub fn slot(&self, path: &str) -> Option<Slot> {
        let path = parse::parse_path(path).ok()?;
        self.0.by_path.get(path.segments()).copied()
    }

    /// The path declared for a slot.
    pub fn slot_path(&self, slot: Slot) -> Option<&Path> {
        self.0.slots.get(slot.index()).map(|s| &s.path)
    }

    /// The type declared for a slot.
    pub fn slot_type(&self, slot: Slot) -> Option<Type> {
        self.0.slots.get(slot.index()).map(|s| s.ty)
    }

    /// Every declared path with its slot and type, in slot order.
    pub fn slots(&self) -> impl Iterator<Item = (Slot, &Path, Type)> {
        self.0.slots.iter().enumerate().map(|(i, s)| (Slot(i as u32), &s.path, s.ty))
    }

    /// Number of declared paths.
    pub fn len(&self) -> usize {
        self.0.slots.len()
    }

    /// Whether no path is declared.
    pub fn is_empty(&self) -> bool {
        self.0.slots.is_empty()
    }

    /// The registered functions.
    pub fn functions(&self) -> impl Iterator<Item = &Function> {
        self.0.functions.values()
    }

    /// The limits expressions of this schema are held to.
    pub fn limits(&self) -> &Limits {
        &self.0.limits
    }

    /// Parses and compiles a condition (an expression of type bool). Errors carry the position
    /// in `source`.
    pub fn compile(&self, source: &str) -> crate::Result<CompiledExpr> {
        let (expr, spans) = parse::parse(source, &self.0.limits)?;
        Ok(compile::compile(self, expr, Some((source, &spans)))?)
    }

    /// Compiles a condition given as a tree (built in code or read with serde). Errors quote the
    /// offending part instead of a position.
    pub fn compile_expr(&self, expr: &Expr) -> crate::Result<CompiledExpr> {
        Ok(compile::compile(self, expr.clone(), None)?)
    }
}
