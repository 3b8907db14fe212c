//! Text form → tree form: a lexer and a recursive-descent parser with hard limits.

use chrono::TimeDelta;

use super::ast::{Call, Expr, KEYWORDS, Literal, Path, duration_from_nanos, duration_unit, is_ident};
use super::error::{ExprError, ExprErrorKind, Position};

/// Bounds on what an expression may cost. Every limit is checked before the work it bounds, so
/// hostile input gives an [`ExprErrorKind::Limit`] (or [`ExprErrorKind::Budget`]) error, never a
/// stack overflow or a runaway evaluation.
///
/// ```
/// use touchpoint::routing::expr::{Expr, Limits};
/// let mut limits = Limits::default();
/// limits.max_depth = 4;
/// assert!(Expr::parse_with_limits("((((((true))))))", &limits).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Longest source text, in bytes. Default 16 KiB.
    pub max_source_len: usize,
    /// Deepest nesting of parentheses, `not`s, calls and operators. Default 64.
    pub max_depth: usize,
    /// Most nodes in one expression (each literal, path, operator, list element). Default 4,096.
    pub max_nodes: usize,
    /// Most elements in one list literal. Default 1,024.
    pub max_list_len: usize,
    /// Evaluation budget in steps: every node visited costs one step, every list element examined
    /// one, and a function call what it was registered with. Default 10,000.
    pub eval_budget: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_source_len: 16 * 1024, max_depth: 64, max_nodes: 4096, max_list_len: 1024, eval_budget: 10_000 }
    }
}

/// Where a node sits in the source: its extent and, for operators, the operator itself.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span {
    pub start: usize,
    pub op: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok<'a> {
    Ident(&'a str),
    Str(String),
    Int(i64),
    Float(f64),
    Duration(TimeDelta),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Eof,
}

fn describe(t: &Tok<'_>) -> String {
    match t {
        Tok::Ident(s) if KEYWORDS.contains(s) => format!("`{s}`"),
        Tok::Ident(s) => format!("name `{s}`"),
        Tok::Str(_) => "a string".into(),
        Tok::Int(_) | Tok::Float(_) => "a number".into(),
        Tok::Duration(_) => "a duration".into(),
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::LBracket => "'['".into(),
        Tok::RBracket => "']'".into(),
        Tok::Comma => "','".into(),
        Tok::Dot => "'.'".into(),
        Tok::Eq => "'=='".into(),
        Tok::Ne => "'!='".into(),
        Tok::Lt => "'<'".into(),
        Tok::Le => "'<='".into(),
        Tok::Gt => "'>'".into(),
        Tok::Ge => "'>='".into(),
        Tok::Eof => "the end of the expression".into(),
    }
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn err(&self, at: usize, msg: impl Into<String>) -> ExprError {
        ExprError::at(ExprErrorKind::Syntax, Position::locate(self.src, at), msg)
    }

    /// `src[a..b]`, or "" if that is not a valid range (it always is: positions are kept on
    /// character boundaries).
    fn slice(&self, a: usize, b: usize) -> &'a str {
        self.src.get(a..b).unwrap_or("")
    }

    fn peek_char(&self) -> Option<char> {
        self.src.get(self.pos..).and_then(|s| s.chars().next())
    }

    fn peek_byte_at(&self, at: usize) -> Option<u8> {
        self.src.as_bytes().get(at).copied()
    }

    fn next(&mut self) -> Result<(Tok<'a>, usize), ExprError> {
        while let Some(c) = self.peek_char() {
            if c.is_whitespace() {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
        let start = self.pos;
        let Some(c) = self.peek_char() else { return Ok((Tok::Eof, start)) };
        let two = |l: &mut Self, t: Tok<'a>| {
            l.pos += 2;
            Ok((t, start))
        };
        let one = |l: &mut Self, t: Tok<'a>| {
            l.pos += 1;
            Ok((t, start))
        };
        let next_is = |l: &Self, b: u8| l.peek_byte_at(start + 1) == Some(b);
        match c {
            '(' => one(self, Tok::LParen),
            ')' => one(self, Tok::RParen),
            '[' => one(self, Tok::LBracket),
            ']' => one(self, Tok::RBracket),
            ',' => one(self, Tok::Comma),
            '.' => one(self, Tok::Dot),
            '=' if next_is(self, b'=') => two(self, Tok::Eq),
            '=' => Err(self.err(start, "expected '==' (a single '=' is not an operator)")),
            '!' if next_is(self, b'=') => two(self, Tok::Ne),
            '!' => Err(self.err(start, "unexpected '!' (write `not`)")),
            '<' if next_is(self, b'=') => two(self, Tok::Le),
            '<' => one(self, Tok::Lt),
            '>' if next_is(self, b'=') => two(self, Tok::Ge),
            '>' => one(self, Tok::Gt),
            '&' => Err(self.err(start, "unexpected '&' (write `and`)")),
            '|' => Err(self.err(start, "unexpected '|' (write `or`)")),
            '"' | '\'' => self.string(c),
            '-' | '0'..='9' => self.number(),
            c if c.is_ascii_alphabetic() || c == '_' => {
                let len = self
                    .slice(start, self.src.len())
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(self.src.len() - start);
                self.pos += len;
                Ok((Tok::Ident(self.slice(start, start + len)), start))
            }
            c => Err(self.err(start, format!("unexpected character {c:?}"))),
        }
    }

    fn string(&mut self, quote: char) -> Result<(Tok<'a>, usize), ExprError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek_char() else {
                return Err(self.err(start, "unterminated string"));
            };
            let at = self.pos;
            self.pos += c.len_utf8();
            match c {
                c if c == quote => return Ok((Tok::Str(out), start)),
                '\\' => {
                    let Some(e) = self.peek_char() else {
                        return Err(self.err(start, "unterminated string"));
                    };
                    self.pos += e.len_utf8();
                    match e {
                        '"' | '\'' | '\\' => out.push(e),
                        'n' => out.push('\n'),
                        'r' => out.push('\r'),
                        't' => out.push('\t'),
                        '0' => out.push('\0'),
                        'u' => out.push(self.unicode_escape(at)?),
                        other => return Err(self.err(at, format!("unknown escape '\\{other}'"))),
                    }
                }
                c => out.push(c),
            }
        }
    }

    fn unicode_escape(&mut self, at: usize) -> Result<char, ExprError> {
        let bad = |l: &Self| l.err(at, "expected a unicode escape like '\\u{1F600}'");
        if self.peek_char() != Some('{') {
            return Err(bad(self));
        }
        self.pos += 1;
        let rest = self.src.get(self.pos..).unwrap_or("");
        let Some(close) = rest.find('}') else { return Err(bad(self)) };
        let hex = rest.get(..close).unwrap_or("");
        if hex.is_empty() || hex.len() > 6 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad(self));
        }
        self.pos += close + 1;
        u32::from_str_radix(hex, 16)
            .ok()
            .and_then(char::from_u32)
            .ok_or_else(|| self.err(at, format!("'\\u{{{hex}}}' is not a unicode scalar value")))
    }

    fn digits(&mut self) -> usize {
        let rest = self.src.get(self.pos..).unwrap_or("");
        let n = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        self.pos += n;
        n
    }

    fn number(&mut self) -> Result<(Tok<'a>, usize), ExprError> {
        let start = self.pos;
        let negative = self.peek_char() == Some('-');
        if negative {
            self.pos += 1;
        }
        if self.digits() == 0 {
            return Err(self.err(start, "unexpected '-' (negative numbers are written -3, -2.5)"));
        }
        let mut float = false;
        if self.peek_char() == Some('.') && self.peek_byte_at(self.pos + 1).is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
            self.digits();
            float = true;
        }
        if matches!(self.peek_char(), Some('e' | 'E')) {
            let mut at = self.pos + 1;
            if matches!(self.peek_byte_at(at), Some(b'+' | b'-')) {
                at += 1;
            }
            if self.peek_byte_at(at).is_some_and(|b| b.is_ascii_digit()) {
                self.pos = at;
                self.digits();
                float = true;
            }
        }
        let text = self.slice(start, self.pos);
        if self.peek_char().is_some_and(|c| c.is_ascii_alphabetic()) {
            if float {
                return Err(self.err(start, "a duration is written with whole numbers, like 1h30m or 90s"));
            }
            return self.duration(start, negative);
        }
        if float {
            let x: f64 = text.parse().map_err(|_| self.err(start, format!("malformed number {text}")))?;
            if !x.is_finite() {
                return Err(self.err(start, format!("number {text} is out of range")));
            }
            Ok((Tok::Float(x), start))
        } else {
            let i: i64 = text.parse().map_err(|_| self.err(start, format!("integer {text} is out of range")))?;
            Ok((Tok::Int(i), start))
        }
    }

    /// Reads `(<digits><unit>)+` starting at `start` (after an optional `-`).
    fn duration(&mut self, start: usize, negative: bool) -> Result<(Tok<'a>, usize), ExprError> {
        self.pos = start + usize::from(negative);
        let mut total: i128 = 0;
        loop {
            let num_start = self.pos;
            if self.digits() == 0 {
                break;
            }
            let n: i128 =
                self.slice(num_start, self.pos).parse().map_err(|_| self.err(start, "duration is out of range"))?;
            let unit_start = self.pos;
            let rest = self.src.get(self.pos..).unwrap_or("");
            let len = rest.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(rest.len());
            self.pos += len;
            let unit = self.slice(unit_start, self.pos);
            if unit.is_empty() {
                return Err(self.err(num_start, "a duration needs a unit on every number, like 1h30m"));
            }
            let size = duration_unit(unit).ok_or_else(|| {
                self.err(unit_start, format!("unknown duration unit `{unit}` (use d, h, m, s, ms, us or ns)"))
            })?;
            total = n
                .checked_mul(size)
                .and_then(|x| total.checked_add(x))
                .ok_or_else(|| self.err(start, "duration is out of range"))?;
        }
        let total = if negative { -total } else { total };
        let d = duration_from_nanos(total).ok_or_else(|| self.err(start, "duration is out of range"))?;
        if self.peek_char().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
            return Err(self.err(self.pos, "unexpected character after a duration"));
        }
        Ok((Tok::Duration(d), start))
    }
}

pub(crate) struct Parser<'a> {
    lex: Lexer<'a>,
    tok: Tok<'a>,
    at: usize,
    limits: &'a Limits,
    /// Spans of the nodes, in post-order (children before their parent).
    pub spans: Vec<Span>,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str, limits: &'a Limits) -> Result<Self, ExprError> {
        if src.len() > limits.max_source_len {
            return Err(ExprError::at(
                ExprErrorKind::Limit,
                Position::locate(src, limits.max_source_len),
                format!("expression is {} bytes long; the limit is {}", src.len(), limits.max_source_len),
            ));
        }
        let mut lex = Lexer { src, pos: 0 };
        let (tok, at) = lex.next()?;
        Ok(Parser { lex, tok, at, limits, spans: Vec::new() })
    }

    fn pos(&self, at: usize) -> Position {
        Position::locate(self.lex.src, at)
    }

    fn err(&self, at: usize, msg: impl Into<String>) -> ExprError {
        ExprError::at(ExprErrorKind::Syntax, self.pos(at), msg)
    }

    fn bump(&mut self) -> Result<(Tok<'a>, usize), ExprError> {
        let (next, at) = self.lex.next()?;
        let tok = std::mem::replace(&mut self.tok, next);
        let was = std::mem::replace(&mut self.at, at);
        Ok((tok, was))
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.tok, Tok::Ident(s) if s == w)
    }

    fn expect(&mut self, t: Tok<'a>, what: &str) -> Result<usize, ExprError> {
        if self.tok == t { Ok(self.bump()?.1) } else { Err(self.err(self.at, format!("expected {what}"))) }
    }

    fn node(&mut self, start: usize, op: usize) -> Result<(), ExprError> {
        if self.spans.len() >= self.limits.max_nodes {
            return Err(ExprError::at(
                ExprErrorKind::Limit,
                self.pos(op),
                format!("expression has more than {} nodes", self.limits.max_nodes),
            ));
        }
        self.spans.push(Span { start, op });
        Ok(())
    }

    fn enter(&self, depth: usize) -> Result<usize, ExprError> {
        if depth >= self.limits.max_depth {
            return Err(ExprError::at(
                ExprErrorKind::Limit,
                self.pos(self.at),
                format!("expression is nested more than {} levels deep", self.limits.max_depth),
            ));
        }
        Ok(depth + 1)
    }

    fn expr(&mut self, depth: usize) -> Result<Expr, ExprError> {
        let depth = self.enter(depth)?;
        let start = self.at;
        let first = self.and(depth)?;
        if !self.is_word("or") {
            return Ok(first);
        }
        let mut items = vec![first];
        let mut op = self.at;
        while self.is_word("or") {
            op = self.bump()?.1;
            items.push(self.and(depth)?);
        }
        self.node(start, op)?;
        Ok(Expr::Or(items))
    }

    fn and(&mut self, depth: usize) -> Result<Expr, ExprError> {
        let start = self.at;
        let first = self.not(depth)?;
        if !self.is_word("and") {
            return Ok(first);
        }
        let mut items = vec![first];
        let mut op = self.at;
        while self.is_word("and") {
            op = self.bump()?.1;
            items.push(self.not(depth)?);
        }
        self.node(start, op)?;
        Ok(Expr::And(items))
    }

    fn not(&mut self, depth: usize) -> Result<Expr, ExprError> {
        if self.is_word("not") {
            let depth = self.enter(depth)?;
            let at = self.bump()?.1;
            let inner = self.not(depth)?;
            self.node(at, at)?;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.comparison(depth)
    }

    fn comparison(&mut self, depth: usize) -> Result<Expr, ExprError> {
        use super::ast::CmpOp;
        let start = self.at;
        let left = self.primary(depth)?;
        let mut negate = false;
        let op_at = self.at;
        let op = match &self.tok {
            Tok::Eq => CmpOp::Eq,
            Tok::Ne => CmpOp::Ne,
            Tok::Lt => CmpOp::Lt,
            Tok::Le => CmpOp::Le,
            Tok::Gt => CmpOp::Gt,
            Tok::Ge => CmpOp::Ge,
            Tok::Ident("in") => CmpOp::In,
            Tok::Ident("contains") => CmpOp::Contains,
            Tok::Ident("not") => {
                self.bump()?;
                if !self.is_word("in") {
                    return Err(self.err(op_at, "expected `in` after `not` here (write `not x` before the operand)"));
                }
                negate = true;
                CmpOp::In
            }
            _ => return Ok(left),
        };
        self.bump()?;
        let right = self.primary(depth)?;
        self.node(start, op_at)?;
        let cmp = Expr::compare(op, left, right);
        let result = if negate {
            self.node(start, op_at)?;
            Expr::Not(Box::new(cmp))
        } else {
            cmp
        };
        if matches!(self.tok, Tok::Eq | Tok::Ne | Tok::Lt | Tok::Le | Tok::Gt | Tok::Ge)
            || self.is_word("in")
            || self.is_word("contains")
        {
            return Err(self.err(self.at, "comparisons do not chain; join them with `and` or use parentheses"));
        }
        Ok(result)
    }

    fn literal(&mut self) -> Result<Option<Literal>, ExprError> {
        let lit = match &self.tok {
            Tok::Ident("true") => Literal::Bool(true),
            Tok::Ident("false") => Literal::Bool(false),
            Tok::Int(i) => Literal::Int(*i),
            Tok::Float(x) => Literal::Float(*x),
            Tok::Duration(d) => Literal::Duration(*d),
            Tok::Str(s) => Literal::Str(s.clone()),
            _ => return Ok(None),
        };
        self.bump()?;
        Ok(Some(lit))
    }

    fn primary(&mut self, depth: usize) -> Result<Expr, ExprError> {
        let start = self.at;
        if let Some(lit) = self.literal()? {
            self.node(start, start)?;
            return Ok(match lit {
                Literal::Bool(b) => Expr::Bool(b),
                Literal::Int(i) => Expr::Int(i),
                Literal::Float(x) => Expr::Float(x),
                Literal::Str(s) => Expr::Str(s),
                Literal::Duration(d) => Expr::Duration(d),
            });
        }
        match self.tok.clone() {
            Tok::LParen => {
                self.bump()?;
                let inner = self.expr(depth)?;
                self.expect(Tok::RParen, "')'")?;
                Ok(inner)
            }
            Tok::LBracket => self.list(start),
            Tok::Ident(word) if KEYWORDS.contains(&word) => {
                Err(self.err(start, format!("expected a value, found `{word}`")))
            }
            Tok::Ident(name) => {
                self.bump()?;
                if self.tok == Tok::LParen {
                    self.call(name, start, depth)
                } else {
                    let path = self.path_rest(name)?;
                    self.node(start, start)?;
                    Ok(Expr::Path(path))
                }
            }
            Tok::Eof => Err(self.err(start, "expected a value, found the end of the expression")),
            other => Err(self.err(start, format!("expected a value, found {}", describe(&other)))),
        }
    }

    fn list(&mut self, start: usize) -> Result<Expr, ExprError> {
        self.bump()?;
        let mut items = Vec::new();
        while self.tok != Tok::RBracket {
            let at = self.at;
            match self.literal()? {
                Some(l) => items.push(l),
                None => {
                    return Err(self.err(
                        at,
                        format!(
                            "expected a literal (string, number, bool, duration) or ']', found {}",
                            describe(&self.tok)
                        ),
                    ));
                }
            }
            if items.len() > self.limits.max_list_len {
                return Err(ExprError::at(
                    ExprErrorKind::Limit,
                    self.pos(at),
                    format!("list has more than {} elements", self.limits.max_list_len),
                ));
            }
            self.node(at, at)?;
            if self.tok == Tok::Comma {
                self.bump()?;
            } else if self.tok != Tok::RBracket {
                return Err(self.err(self.at, "expected ',' or ']'"));
            }
        }
        self.bump()?;
        self.node(start, start)?;
        Ok(Expr::List(items))
    }

    fn call(&mut self, name: &str, start: usize, depth: usize) -> Result<Expr, ExprError> {
        self.bump()?; // '('
        if name == "has" {
            let at = self.at;
            let Tok::Ident(root) = self.tok else {
                return Err(self.err(at, "has() takes a path, like has(agent.skills.spanish)"));
            };
            if KEYWORDS.contains(&root) {
                return Err(self.err(at, "has() takes a path, like has(agent.skills.spanish)"));
            }
            self.bump()?;
            let path = self.path_rest(root)?;
            self.expect(Tok::RParen, "')' (has() takes a single path)")?;
            self.node(start, start)?;
            return Ok(Expr::Has(path));
        }
        let mut args = Vec::new();
        while self.tok != Tok::RParen {
            args.push(self.expr(depth)?);
            if self.tok == Tok::Comma {
                self.bump()?;
            } else if self.tok != Tok::RParen {
                return Err(self.err(self.at, "expected ',' or ')'"));
            }
        }
        self.bump()?;
        let member = if self.tok == Tok::Dot {
            self.bump()?;
            match self.bump()? {
                (Tok::Ident(m), _) => Some(m.to_owned()),
                (_, at) => return Err(self.err(at, "expected a member name after '.'")),
            }
        } else {
            None
        };
        self.node(start, start)?;
        Ok(Expr::Call(Call { name: name.to_owned(), args, member }))
    }

    /// The rest of a path after its root: `.name` and `["key"]` segments.
    fn path_rest(&mut self, root: &str) -> Result<Path, ExprError> {
        let start = self.at;
        let mut segments = vec![root.to_owned()];
        loop {
            match self.tok {
                Tok::Dot => {
                    self.bump()?;
                    match self.bump()? {
                        (Tok::Ident(s), _) => segments.push(s.to_owned()),
                        (_, at) => return Err(self.err(at, "expected a name after '.'")),
                    }
                }
                Tok::LBracket => {
                    let at = self.bump()?.1;
                    match self.bump()? {
                        (Tok::Str(s), _) if !s.is_empty() => segments.push(s),
                        _ => return Err(self.err(at, r#"expected a non-empty string key in brackets, like ["es-MX"]"#)),
                    }
                    self.expect(Tok::RBracket, "']'")?;
                }
                _ => break,
            }
        }
        Path::check(segments).map_err(|(_, reason)| self.err(start, reason))
    }

    fn finish(&mut self) -> Result<(), ExprError> {
        if self.tok != Tok::Eof {
            let msg = match &self.tok {
                Tok::RParen => "unexpected ')' (no matching '(')".to_owned(),
                t => format!("expected `and`, `or` or the end of the expression, found {}", describe(t)),
            };
            return Err(self.err(self.at, msg));
        }
        Ok(())
    }
}

/// Parses `src` into a tree and the spans of its nodes in post-order.
pub(crate) fn parse(src: &str, limits: &Limits) -> Result<(Expr, Vec<Span>), ExprError> {
    let mut p = Parser::new(src, limits)?;
    let e = p.expr(0)?;
    p.finish()?;
    check_depth(&e, limits.max_depth, &mut 0, 1).map_err(|leaf| {
        let at = p.spans.get(leaf).map_or(0, |s| s.start);
        ExprError::at(
            ExprErrorKind::Limit,
            Position::locate(src, at),
            format!("expression is nested more than {} levels deep", limits.max_depth),
        )
    })?;
    Ok((e, p.spans))
}

/// Parses a path's text form.
pub(crate) fn parse_path(src: &str) -> Result<Path, ExprError> {
    let limits = Limits::default();
    let mut p = Parser::new(src, &limits)?;
    let path = match p.tok {
        Tok::Ident(root) if !KEYWORDS.contains(&root) => {
            p.bump()?;
            p.path_rest(root)?
        }
        Tok::Ident(word) => return Err(p.err(p.at, format!("`{word}` is a keyword and cannot start a path"))),
        _ => return Err(p.err(p.at, "expected a path, like agent.skills.billing")),
    };
    p.finish()?;
    Ok(path)
}

/// Parses a duration's text form (`90s`, `-1h30m`).
pub(crate) fn parse_duration(src: &str) -> Result<TimeDelta, ExprError> {
    let mut lex = Lexer { src, pos: 0 };
    match lex.next()? {
        (Tok::Duration(d), _) if lex.next()?.0 == Tok::Eof => Ok(d),
        _ => Err(lex.err(0, format!("expected a duration like 90s or 1h30m, found {src:?}"))),
    }
}

/// Whether `name` can be a function or member name.
pub(crate) fn is_name(name: &str) -> bool {
    is_ident(name) && !KEYWORDS.contains(&name)
}

/// Checks that no node of `e` is deeper than `max` (the root has depth 1), without recursing past
/// `max`. `next` counts nodes in post-order; on failure returns the post-order index of the first
/// leaf below the node that is too deep.
pub(crate) fn check_depth(e: &Expr, max: usize, next: &mut usize, depth: usize) -> Result<(), usize> {
    if depth > max {
        return Err(*next);
    }
    match e {
        Expr::List(items) => *next += items.len(),
        _ => {
            for c in e.children() {
                check_depth(c, max, next, depth + 1)?;
            }
        }
    }
    *next += 1;
    Ok(())
}
