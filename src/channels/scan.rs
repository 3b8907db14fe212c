//! A small JSON reader for the hot path of webhook parsing: it walks a UTF-8 body once, hands
//! out strings borrowed from it (decoding escapes only where there are some), and skips values
//! the caller does not read with a validating skip that allocates nothing.
//!
//! It decides only what it is sure of. Whenever a body is not valid JSON, or is valid JSON
//! outside what the reader handles the way serde_json would (a struct written as an array, a
//! duplicate field, a string where a lone surrogate is decoded, nesting deeper than
//! [`MAX_DEPTH`], a number serde_json would read as a float), it answers [`Unsure`] and the kit
//! parses the body with serde_json instead, which decides and names the error. So the reader
//! accepts a subset of what serde_json accepts, and for that subset gives what serde_json gives:
//!
//! * whitespace is `' '`, `\n`, `\r`, `\t`; no trailing characters after the value;
//! * strings: no raw control characters; escapes `\" \\ \/ \b \f \n \r \t \uXXXX`; a string the
//!   caller reads must not hold a lone surrogate (serde_json rejects it), a skipped string may
//!   (serde_json ignores it unchecked);
//! * numbers: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`;
//! * literals `true`, `false`, `null`.

use std::borrow::Cow;

/// The reader cannot vouch for the input: let serde_json decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unsure;

/// A value the reader is sure of, or [`Unsure`].
pub(crate) type Scanned<T> = std::result::Result<T, Unsure>;

/// Objects and arrays nested deeper than this are left to serde_json (whose own limit is 128).
pub(crate) const MAX_DEPTH: u32 = 100;

/// A cursor over one JSON text.
pub(crate) struct Scanner<'a> {
    text: &'a str,
    pos: usize,
    depth: u32,
}

/// Whether the byte ends a run of plain string characters.
#[inline]
fn special(b: u8) -> bool {
    b == b'"' || b == b'\\' || b < 0x20
}

fn hex(b: u8) -> Option<u32> {
    match b {
        b'0'..=b'9' => Some(u32::from(b - b'0')),
        b'a'..=b'f' => Some(u32::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u32::from(b - b'A' + 10)),
        _ => None,
    }
}

impl<'a> Scanner<'a> {
    /// A reader at the start of `text`.
    pub(crate) fn new(text: &'a str) -> Self {
        Scanner { text, pos: 0, depth: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// Skips whitespace and returns the next byte (`None` at the end).
    #[inline]
    fn peek(&mut self) -> Option<u8> {
        let bytes = self.bytes();
        while let Some(&b) = bytes.get(self.pos) {
            match b {
                b' ' | b'\n' | b'\r' | b'\t' => self.pos += 1,
                _ => return Some(b),
            }
        }
        None
    }

    #[inline]
    fn eat(&mut self, want: u8) -> Scanned<()> {
        if self.peek() == Some(want) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Unsure)
        }
    }

    fn enter(&mut self) -> Scanned<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH { Err(Unsure) } else { Ok(()) }
    }

    /// Only whitespace is left.
    pub(crate) fn end(&mut self) -> Scanned<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(Unsure),
        }
    }

    /// Opens an object; read its keys with [`Scanner::key`].
    pub(crate) fn object(&mut self) -> Scanned<()> {
        self.eat(b'{')?;
        self.enter()
    }

    /// The next key of the open object, as bytes to match field names against (the reader then
    /// stands at its value), or `None` after the closing brace. `first` starts `true` for each
    /// object.
    #[inline]
    pub(crate) fn key(&mut self, first: &mut bool) -> Scanned<Option<Cow<'a, [u8]>>> {
        let mut b = self.peek().ok_or(Unsure)?;
        if b == b'}' {
            self.pos += 1;
            self.depth -= 1;
            return Ok(None);
        }
        if !std::mem::replace(first, false) {
            if b != b',' {
                return Err(Unsure);
            }
            self.pos += 1;
            b = self.peek().ok_or(Unsure)?;
        }
        if b != b'"' {
            return Err(Unsure);
        }
        self.pos += 1;
        let start = self.pos;
        let end = self.plain_run(start);
        let key = match self.bytes().get(end) {
            Some(b'"') => {
                self.pos = end + 1;
                Cow::Borrowed(self.bytes().get(start..end).ok_or(Unsure)?)
            }
            Some(b'\\') => Cow::Owned(self.escaped(start, end)?.into_bytes()),
            _ => return Err(Unsure),
        };
        self.eat(b':')?;
        Ok(Some(key))
    }

    /// Opens an array; read its elements with [`Scanner::element`].
    pub(crate) fn array(&mut self) -> Scanned<()> {
        self.eat(b'[')?;
        self.enter()
    }

    /// Whether another element of the open array follows (the reader then stands at it), or
    /// `false` after the closing bracket. `first` starts `true` for each array.
    #[inline]
    pub(crate) fn element(&mut self, first: &mut bool) -> Scanned<bool> {
        let b = self.peek().ok_or(Unsure)?;
        if b == b']' {
            self.pos += 1;
            self.depth -= 1;
            return Ok(false);
        }
        if !std::mem::replace(first, false) {
            if b != b',' {
                return Err(Unsure);
            }
            self.pos += 1;
        }
        Ok(true)
    }

    /// Reads `null` if it is next.
    #[inline]
    pub(crate) fn null(&mut self) -> Scanned<bool> {
        if self.peek() != Some(b'n') {
            return Ok(false);
        }
        self.literal(b"null")?;
        Ok(true)
    }

    fn literal(&mut self, word: &[u8]) -> Scanned<()> {
        let end = self.pos + word.len();
        if self.bytes().get(self.pos..end) != Some(word) {
            return Err(Unsure);
        }
        self.pos = end;
        Ok(())
    }

    /// The index of the first quote, backslash or control byte at or after `from`, or the
    /// length of the text.
    #[inline(always)]
    fn plain_run(&self, from: usize) -> usize {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        let bytes = self.bytes();
        let mut i = from;
        // Eight bytes at a time: the classic "has a zero byte" and "has a byte below n" tests
        // flag the first matching byte exactly (a borrow can only flag bytes above a match).
        while let Some(chunk) = bytes.get(i..i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let w = u64::from_le_bytes(word);
            let quote = w ^ (ONES * u64::from(b'"'));
            let backslash = w ^ (ONES * u64::from(b'\\'));
            let found = (quote.wrapping_sub(ONES) & !quote
                | backslash.wrapping_sub(ONES) & !backslash
                | w.wrapping_sub(ONES * 0x20) & !w)
                & HIGH;
            if found != 0 {
                return i + (found.trailing_zeros() / 8) as usize;
            }
            i += 8;
        }
        while let Some(&b) = bytes.get(i) {
            if special(b) {
                return i;
            }
            i += 1;
        }
        i
    }

    /// Reads a string, decoding escapes (borrowed from the text when it has none). A lone
    /// surrogate is [`Unsure`] (serde_json rejects it in a string it reads).
    pub(crate) fn string(&mut self) -> Scanned<Cow<'a, str>> {
        self.eat(b'"')?;
        self.string_body()
    }

    /// Reads the rest of a string whose opening quote was just read.
    #[inline(always)]
    fn string_body(&mut self) -> Scanned<Cow<'a, str>> {
        let start = self.pos;
        let end = self.plain_run(start);
        match self.bytes().get(end) {
            Some(b'"') => {
                self.pos = end + 1;
                self.text.get(start..end).map(Cow::Borrowed).ok_or(Unsure)
            }
            Some(b'\\') => self.escaped(start, end).map(Cow::Owned),
            _ => Err(Unsure),
        }
    }

    /// Decodes a string from `start` whose first escape is at `at`.
    #[cold]
    #[inline(never)]
    fn escaped(&mut self, start: usize, mut at: usize) -> Scanned<String> {
        let bytes = self.bytes();
        let mut out = String::with_capacity(at - start + 16);
        out.push_str(self.text.get(start..at).ok_or(Unsure)?);
        loop {
            // `at` is at a backslash.
            let code = *bytes.get(at + 1).ok_or(Unsure)?;
            at += 2;
            let c = match code {
                b'"' => '"',
                b'\\' => '\\',
                b'/' => '/',
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                b'u' => {
                    let unit = self.hex4(at)?;
                    at += 4;
                    let scalar = match unit {
                        0xD800..=0xDBFF => {
                            if bytes.get(at..at + 2) != Some(b"\\u") {
                                return Err(Unsure);
                            }
                            let low = self.hex4(at + 2)?;
                            if !(0xDC00..=0xDFFF).contains(&low) {
                                return Err(Unsure);
                            }
                            at += 6;
                            0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                        }
                        0xDC00..=0xDFFF => return Err(Unsure),
                        other => other,
                    };
                    char::from_u32(scalar).ok_or(Unsure)?
                }
                _ => return Err(Unsure),
            };
            out.push(c);
            let end = self.plain_run(at);
            out.push_str(self.text.get(at..end).ok_or(Unsure)?);
            match bytes.get(end) {
                Some(b'"') => {
                    self.pos = end + 1;
                    return Ok(out);
                }
                Some(b'\\') => at = end,
                _ => return Err(Unsure),
            }
        }
    }

    fn hex4(&self, at: usize) -> Scanned<u32> {
        let digits = self.bytes().get(at..at + 4).ok_or(Unsure)?;
        digits.iter().try_fold(0, |n, &d| hex(d).map(|v| n << 4 | v)).ok_or(Unsure)
    }

    /// Reads a string or `null`.
    #[inline]
    pub(crate) fn opt_string(&mut self) -> Scanned<Option<Cow<'a, str>>> {
        if self.null()? { Ok(None) } else { self.string().map(Some) }
    }

    /// Skips a string without decoding it (escapes are checked, surrogates are not: serde_json
    /// ignores a string the same way).
    fn skip_string(&mut self) -> Scanned<()> {
        self.eat(b'"')?;
        let bytes = self.bytes();
        let mut at = self.pos;
        loop {
            at = self.plain_run(at);
            match bytes.get(at) {
                Some(b'"') => {
                    self.pos = at + 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    at += match bytes.get(at + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => 2,
                        Some(b'u') => {
                            self.hex4(at + 2)?;
                            6
                        }
                        _ => return Err(Unsure),
                    }
                }
                _ => return Err(Unsure),
            }
        }
    }

    /// Reads a number's text; whether it is an integer (no fraction, no exponent).
    fn number(&mut self) -> Scanned<(&'a str, bool)> {
        let bytes = self.bytes();
        let start = self.pos;
        let mut at = start;
        if bytes.get(at) == Some(&b'-') {
            at += 1;
        }
        let digits = |at: &mut usize| {
            let from = *at;
            while bytes.get(*at).is_some_and(u8::is_ascii_digit) {
                *at += 1;
            }
            *at - from
        };
        match bytes.get(at) {
            Some(b'0') => {
                at += 1;
                if bytes.get(at).is_some_and(u8::is_ascii_digit) {
                    return Err(Unsure);
                }
            }
            Some(b'1'..=b'9') => {
                digits(&mut at);
            }
            _ => return Err(Unsure),
        }
        let mut integer = true;
        if bytes.get(at) == Some(&b'.') {
            at += 1;
            integer = false;
            if digits(&mut at) == 0 {
                return Err(Unsure);
            }
        }
        if let Some(b'e' | b'E') = bytes.get(at) {
            at += 1;
            integer = false;
            if let Some(b'+' | b'-') = bytes.get(at) {
                at += 1;
            }
            if digits(&mut at) == 0 {
                return Err(Unsure);
            }
        }
        self.pos = at;
        Ok((self.text.get(start..at).ok_or(Unsure)?, integer))
    }

    /// Reads an integer that fits an `i64` (serde_json hands anything else to a visitor as
    /// `u64` beyond `i64::MAX` or as a float, `-0` too, which the callers reject).
    pub(crate) fn integer(&mut self) -> Scanned<i64> {
        match self.peek() {
            Some(b'-' | b'0'..=b'9') => {}
            _ => return Err(Unsure),
        }
        match self.number()? {
            (text, true) => match text.parse() {
                Ok(0) if text.starts_with('-') => Err(Unsure),
                Ok(n) => Ok(n),
                Err(_) => Err(Unsure),
            },
            (_, false) => Err(Unsure),
        }
    }

    /// Whether a string is next.
    pub(crate) fn at_string(&mut self) -> bool {
        self.peek() == Some(b'"')
    }

    /// Skips one value of any kind, checking its grammar.
    pub(crate) fn skip(&mut self) -> Scanned<()> {
        match self.peek().ok_or(Unsure)? {
            b'"' => self.skip_string(),
            b'{' => {
                self.object()?;
                let mut first = true;
                loop {
                    let b = self.peek().ok_or(Unsure)?;
                    if b == b'}' {
                        self.pos += 1;
                        self.depth -= 1;
                        return Ok(());
                    }
                    if !std::mem::replace(&mut first, false) {
                        if b != b',' {
                            return Err(Unsure);
                        }
                        self.pos += 1;
                    }
                    self.skip_string()?;
                    self.eat(b':')?;
                    self.skip()?;
                }
            }
            b'[' => {
                self.array()?;
                let mut first = true;
                while self.element(&mut first)? {
                    self.skip()?;
                }
                Ok(())
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number().map(drop),
            _ => Err(Unsure),
        }
    }

    /// Skips one value and returns its text, for a full parser to read.
    pub(crate) fn raw(&mut self) -> Scanned<&'a str> {
        self.peek();
        let start = self.pos;
        self.skip()?;
        self.text.get(start..self.pos).ok_or(Unsure)
    }
}
