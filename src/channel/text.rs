//! Splitting long text into messages that fit a channel's limit.

use super::capabilities::{LengthUnit, Limit};
use super::sms::SmsMeter;
use crate::{Error, Result};

/// Measures a growing prefix one character at a time, in a limit's unit.
enum Meter {
    Count(usize, LengthUnit),
    Sms(SmsMeter),
}

impl Meter {
    fn new(unit: LengthUnit) -> Self {
        match unit {
            LengthUnit::SmsSegments => Meter::Sms(SmsMeter::new()),
            other => Meter::Count(0, other),
        }
    }

    #[inline]
    fn push(&mut self, c: char) {
        match self {
            Meter::Count(n, LengthUnit::Characters) => *n += 1,
            Meter::Count(n, LengthUnit::Utf16Units) => *n += c.len_utf16(),
            Meter::Count(n, _) => *n += c.len_utf8(),
            Meter::Sms(m) => m.push(c),
        }
    }

    fn value(&self) -> usize {
        match self {
            Meter::Count(n, _) => *n,
            Meter::Sms(m) => m.segments(),
        }
    }
}

/// Marks that belong to the character before them: combining marks, variation selectors,
/// zero-width joiners, emoji skin-tone modifiers and tag characters. A cut never goes before one.
fn is_extender(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}'
        | '\u{0483}'..='\u{0489}'
        | '\u{0591}'..='\u{05BD}'
        | '\u{064B}'..='\u{065F}'
        | '\u{0900}'..='\u{0903}'
        | '\u{093A}'..='\u{094F}'
        | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}'
        | '\u{200C}'..='\u{200D}'
        | '\u{20D0}'..='\u{20FF}'
        | '\u{3099}'..='\u{309A}'
        | '\u{FE00}'..='\u{FE0F}'
        | '\u{FE20}'..='\u{FE2F}'
        | '\u{1F3FB}'..='\u{1F3FF}'
        | '\u{E0020}'..='\u{E007F}'
        | '\u{E0100}'..='\u{E01EF}')
}

fn is_regional_indicator(c: char) -> bool {
    ('\u{1F1E6}'..='\u{1F1FF}').contains(&c)
}

/// Whether cutting `text` at byte `at` keeps grapheme-ish clusters whole: not before an
/// extender, not after a zero-width joiner, not between the two halves of a flag.
fn is_clean_cut(text: &str, at: usize) -> bool {
    let (before, after) = text.split_at(at);
    let (Some(next), Some(prev)) = (after.chars().next(), before.chars().next_back()) else {
        return true;
    };
    if is_extender(next) || prev == '\u{200D}' {
        return false;
    }
    if is_regional_indicator(next) && is_regional_indicator(prev) {
        let run = before.chars().rev().take_while(|c| is_regional_indicator(*c)).count();
        return run % 2 == 0;
    }
    true
}

/// Characters after which a following space ends a sentence.
fn ends_sentence(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…' | '。' | '！' | '？' | '‼' | '⁉')
}

/// Characters that may close a sentence after its terminator (`"Stop." He left`).
fn closes(c: char) -> bool {
    matches!(c, '"' | '\'' | '”' | '’' | ')' | ']' | '»' | '」' | '』')
}

/// Full-width terminators end a sentence even without a following space (CJK text).
fn ends_sentence_tightly(c: char) -> bool {
    matches!(c, '。' | '！' | '？')
}

/// Splits `text` into pieces that each fit `limit`, cutting at a sentence boundary when one
/// keeps at least half of what would fit, else at the last space, else (a single overlong word)
/// between two characters — never inside a UTF-8 character or a UTF-16 surrogate pair, and never
/// between a character and the combining marks, variation selectors, joiners or skin-tone
/// modifiers that follow it. Whitespace around cuts is dropped; text that fits is returned
/// unchanged as one piece. `None` means no limit.
///
/// Fails with [`Error::InvalidInput`] when a single character does not fit the limit (a limit
/// of 0, or of fewer bytes than one character has).
///
/// ```
/// use touchpoint::channel::{split_text, Limit};
/// let text = "Your parcel left the depot. It arrives tomorrow between 9 and 12.";
/// assert_eq!(
///     split_text(text, Some(Limit::characters(40))).unwrap(),
///     ["Your parcel left the depot.", "It arrives tomorrow between 9 and 12."]
/// );
/// assert_eq!(split_text("one two three", Some(Limit::characters(8))).unwrap(), ["one two", "three"]);
/// assert_eq!(split_text("😀😀😀", Some(Limit::utf16_units(5))).unwrap(), ["😀😀", "😀"]);
/// ```
pub fn split_text(text: &str, limit: Option<Limit>) -> Result<Vec<String>> {
    let Some(limit) = limit else {
        return Ok(vec![text.to_owned()]);
    };
    if limit.fits(text) {
        return Ok(vec![text.to_owned()]);
    }
    let mut pieces = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let mut meter = Meter::new(limit.unit);
        let mut overflow = None;
        let mut sentence = None;
        let mut word = None;
        let mut after_terminator = false;
        for (i, c) in rest.char_indices() {
            meter.push(c);
            if meter.value() > limit.max {
                overflow = Some(i);
                break;
            }
            if c.is_whitespace() {
                if i > 0 {
                    word = Some(i);
                    if after_terminator || c == '\n' {
                        sentence = Some(i);
                    }
                }
                after_terminator = false;
            } else if ends_sentence_tightly(c) {
                sentence = Some(i + c.len_utf8());
                after_terminator = true;
            } else if ends_sentence(c) {
                after_terminator = true;
            } else if !(after_terminator && closes(c)) {
                after_terminator = false;
            }
        }
        let Some(overflow) = overflow else {
            pieces.push(rest.trim_end().to_owned());
            break;
        };
        if overflow == 0 {
            return Err(Error::invalid(
                "text",
                format!(
                    "the character {:?} alone is longer than the limit of {}",
                    rest.chars().next().unwrap_or_default(),
                    limit.describe(limit.max)
                ),
            ));
        }
        let cut = match (sentence, word) {
            (Some(s), _) if s * 2 >= overflow => s,
            (_, Some(w)) => w,
            _ => {
                let mut cut = overflow;
                while cut > 0 && !is_clean_cut(rest, cut) {
                    cut = rest[..cut].char_indices().next_back().map_or(0, |(i, _)| i);
                }
                if cut == 0 { overflow } else { cut }
            }
        };
        let (piece, tail) = rest.split_at(cut);
        let piece = piece.trim_end();
        if !piece.is_empty() {
            pieces.push(piece.to_owned());
        }
        rest = tail.trim_start();
    }
    Ok(pieces)
}
