//! Errors of the expression language: where in the source, what kind, and a message a person can act on.

use std::fmt;

/// A place in an expression's source text.
///
/// `offset` is the byte offset into the source; `line` and `column` count from 1 (the column
/// counts characters, not bytes), as editors show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Position {
    /// Byte offset from the start of the source.
    pub offset: usize,
    /// Line number, from 1.
    pub line: usize,
    /// Column number in characters, from 1.
    pub column: usize,
}

impl Position {
    /// The position of byte `offset` in `source` (clamped to the source's end and to a character boundary).
    pub fn locate(source: &str, offset: usize) -> Position {
        let mut offset = offset.min(source.len());
        while !source.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = source.get(..offset).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.get(line_start..).unwrap_or("").chars().count() + 1;
        Position { offset, line, column }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// What went wrong with an expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExprErrorKind {
    /// The text is not a well-formed expression (unexpected character, missing `)`, bad escape, …).
    Syntax,
    /// The expression names a path the [`Schema`](super::Schema) does not declare.
    UnknownPath,
    /// The expression calls a function the schema does not register (or with the wrong arity).
    UnknownFunction,
    /// The operand types do not fit the operator (a string compared with a number, `and` of an
    /// integer, …), or the whole expression is not a condition.
    Type,
    /// A documented limit was exceeded: source length, nesting depth, node count or list length.
    Limit,
    /// Evaluation used up its step budget.
    Budget,
    /// The [`Bindings`](super::Bindings) returned a value of another type than the schema declares.
    Binding,
    /// A registered function reported a failure.
    Function,
}

/// An error of the expression language.
///
/// Parse and compile errors on source text carry the [`Position`] they refer to; errors on a
/// tree built in code or read with serde carry none (their message quotes the offending part
/// instead). `Display` prints the message followed by `at line:column` when there is one,
/// for example `expected ')' at 1:27`.
#[derive(Clone, PartialEq, Eq)]
pub struct ExprError(Box<Inner>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Inner {
    kind: ExprErrorKind,
    position: Option<Position>,
    message: String,
}

impl ExprError {
    pub(crate) fn new(kind: ExprErrorKind, message: impl Into<String>) -> Self {
        ExprError(Box::new(Inner { kind, position: None, message: message.into() }))
    }

    pub(crate) fn at(kind: ExprErrorKind, position: Position, message: impl Into<String>) -> Self {
        ExprError(Box::new(Inner { kind, position: Some(position), message: message.into() }))
    }

    pub(crate) fn with_position(mut self, position: Option<Position>) -> Self {
        if self.0.position.is_none() {
            self.0.position = position;
        }
        self
    }

    /// The same error with another message (kind and position kept).
    pub(crate) fn with_message(mut self, message: String) -> Self {
        self.0.message = message;
        self
    }

    /// What kind of error this is.
    pub fn kind(&self) -> ExprErrorKind {
        self.0.kind
    }

    /// Where in the source text the error is, when the expression came from text.
    pub fn position(&self) -> Option<Position> {
        self.0.position
    }

    /// The message without the position.
    pub fn message(&self) -> &str {
        &self.0.message
    }
}

impl fmt::Debug for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExprError")
            .field("kind", &self.0.kind)
            .field("position", &self.0.position)
            .field("message", &self.0.message)
            .finish()
    }
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.position {
            Some(p) => write!(f, "{} at {p}", self.0.message),
            None => f.write_str(&self.0.message),
        }
    }
}

impl std::error::Error for ExprError {}

impl From<ExprError> for crate::Error {
    fn from(e: ExprError) -> Self {
        crate::Error::Expression(e)
    }
}
