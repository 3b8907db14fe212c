//! SMS segmentation: how many SMS a text costs, in which encoding, and where it is cut.
//!
//! An SMS carries 140 octets. When every character of a message is in the GSM 03.38 basic or
//! extension table the message is sent in **GSM-7**: 160 septets in one SMS, 153 per part once
//! it needs several (a 6-octet User Data Header is added to each part). Extension characters
//! (`^ { } \ [ ~ ] |`, `€` and form feed) cost two septets (an escape plus the code) and an
//! escape pair is never split: a part may end one septet short. A single character outside
//! GSM-7 switches the **whole** message to **UCS-2**: 70 UTF-16 units in one SMS, 67 per part;
//! characters outside the Basic Multilingual Plane (most emoji) cost two units and a surrogate
//! pair is never split either.
//!
//! ```
//! use touchpoint::channel::sms::{self, SmsEncoding};
//! let s = sms::segment(&format!("{}[{}", "a".repeat(152), "a".repeat(10)));
//! assert_eq!(s.encoding, SmsEncoding::Gsm7);
//! assert_eq!(s.units, 164);
//! // The `[` (escape pair) does not fit in part 1 after 152 septets: it opens part 2.
//! let sizes: Vec<usize> = s.segments.iter().map(|p| p.units).collect();
//! assert_eq!(sizes, [152, 12]);
//! assert_eq!(s.estimated_cost(75), 150); // 2 parts at 75 (any minor unit) each
//!
//! // One curly apostrophe forces UCS-2 for the whole message.
//! assert_eq!(sms::count_segments(&format!("{}’", "a".repeat(152))), 3);
//! ```

use serde::{Deserialize, Serialize};

/// Concatenated SMS carry the part count in one octet: no message can have more parts.
pub const MAX_CONCATENATED_SEGMENTS: usize = 255;

/// The character encoding an SMS is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmsEncoding {
    /// The GSM 03.38 7-bit default alphabet (with its extension table).
    Gsm7,
    /// UCS-2 (UTF-16 code units on the wire).
    Ucs2,
}

impl SmsEncoding {
    /// Units (septets or UTF-16 units) that fit in a message sent as a single SMS: 160 or 70.
    pub const fn single_segment_units(self) -> usize {
        match self {
            SmsEncoding::Gsm7 => 160,
            SmsEncoding::Ucs2 => 70,
        }
    }

    /// Units per part of a concatenated (multi-part) message: 153 or 67.
    pub const fn multi_segment_units(self) -> usize {
        match self {
            SmsEncoding::Gsm7 => 153,
            SmsEncoding::Ucs2 => 67,
        }
    }
}

/// One SMS of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsSegment {
    /// The text this part carries.
    pub text: String,
    /// Its size in septets (GSM-7) or UTF-16 units (UCS-2).
    pub units: usize,
}

/// How a text is sent as SMS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsSegmentation {
    /// The encoding of every part.
    pub encoding: SmsEncoding,
    /// The size of the whole text in septets (GSM-7) or UTF-16 units (UCS-2).
    pub units: usize,
    /// The parts, in order (none for an empty text).
    pub segments: Vec<SmsSegment>,
}

impl SmsSegmentation {
    /// How many SMS the text costs.
    pub fn count(&self) -> usize {
        self.segments.len()
    }

    /// The price of sending the text once, given the price of one SMS in any integer minor unit
    /// (cents, micro-dollars). Saturates at `u64::MAX`.
    pub fn estimated_cost(&self, price_per_segment: u64) -> u64 {
        price_per_segment.saturating_mul(self.count() as u64)
    }

    /// Whether the parts can be concatenated into one message on the handset (at most
    /// [`MAX_CONCATENATED_SEGMENTS`] parts).
    pub fn is_concatenable(&self) -> bool {
        self.count() <= MAX_CONCATENATED_SEGMENTS
    }
}

/// Septet cost of ASCII characters: 0 = not in GSM-7, 1 = basic table, 2 = extension table.
const ASCII_SEPTETS: [u8; 128] = {
    let mut t = [0u8; 128];
    let mut c = 0x20;
    while c < 0x7f {
        t[c] = 1;
        c += 1;
    }
    t[b'`' as usize] = 0;
    t[b'\n' as usize] = 1;
    t[b'\r' as usize] = 1;
    t[0x0c] = 2; // form feed
    let ext = [b'^', b'{', b'}', b'\\', b'[', b'~', b']', b'|'];
    let mut i = 0;
    while i < ext.len() {
        t[ext[i] as usize] = 2;
        i += 1;
    }
    t
};

/// The GSM-7 cost of `c` in septets: `Some(1)` for the basic table, `Some(2)` for the extension
/// table (escape + code), `None` when `c` is not in GSM-7 (the message must go as UCS-2).
///
/// ```
/// use touchpoint::channel::sms::gsm7_septets;
/// assert_eq!(gsm7_septets('a'), Some(1));
/// assert_eq!(gsm7_septets('é'), Some(1));
/// assert_eq!(gsm7_septets('€'), Some(2));
/// assert_eq!(gsm7_septets('`'), None);
/// assert_eq!(gsm7_septets('ж'), None);
/// ```
#[inline]
pub fn gsm7_septets(c: char) -> Option<u8> {
    let cost = if c.is_ascii() {
        ASCII_SEPTETS[c as usize]
    } else {
        match c {
            '£' | '¥' | 'è' | 'é' | 'ù' | 'ì' | 'ò' | 'Ç' | 'Ø' | 'ø' | 'Å' | 'å' | 'Δ' | 'Φ' | 'Γ' | 'Λ' | 'Ω'
            | 'Π' | 'Ψ' | 'Σ' | 'Θ' | 'Ξ' | 'Æ' | 'æ' | 'ß' | 'É' | '¤' | '¡' | 'Ä' | 'Ö' | 'Ñ' | 'Ü' | '§' | '¿'
            | 'ä' | 'ö' | 'ñ' | 'ü' | 'à' => 1,
            '€' => 2,
            _ => 0,
        }
    };
    if cost == 0 { None } else { Some(cost) }
}

/// The encoding a text needs: GSM-7 when every character is in the GSM 03.38 tables, else UCS-2.
pub fn encoding_of(text: &str) -> SmsEncoding {
    if text.chars().all(|c| gsm7_septets(c).is_some()) { SmsEncoding::Gsm7 } else { SmsEncoding::Ucs2 }
}

/// Counts segments incrementally, one character at a time, in both encodings at once (a later
/// character may still switch the message to UCS-2).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SmsMeter {
    gsm: bool,
    septets: usize,
    gsm_parts: usize,
    gsm_fill: usize,
    units: usize,
    ucs_parts: usize,
    ucs_fill: usize,
}

impl SmsMeter {
    pub(crate) const fn new() -> Self {
        SmsMeter { gsm: true, septets: 0, gsm_parts: 0, gsm_fill: 0, units: 0, ucs_parts: 0, ucs_fill: 0 }
    }

    #[inline]
    pub(crate) fn push(&mut self, c: char) {
        if self.gsm {
            match gsm7_septets(c) {
                Some(cost) => {
                    let cost = cost as usize;
                    self.septets += cost;
                    if self.gsm_parts == 0 || self.gsm_fill + cost > SmsEncoding::Gsm7.multi_segment_units() {
                        self.gsm_parts += 1;
                        self.gsm_fill = cost;
                    } else {
                        self.gsm_fill += cost;
                    }
                }
                None => self.gsm = false,
            }
        }
        let cost = c.len_utf16();
        self.units += cost;
        if self.ucs_parts == 0 || self.ucs_fill + cost > SmsEncoding::Ucs2.multi_segment_units() {
            self.ucs_parts += 1;
            self.ucs_fill = cost;
        } else {
            self.ucs_fill += cost;
        }
    }

    pub(crate) fn segments(&self) -> usize {
        let (total, parts, encoding) = if self.gsm {
            (self.septets, self.gsm_parts, SmsEncoding::Gsm7)
        } else {
            (self.units, self.ucs_parts, SmsEncoding::Ucs2)
        };
        match total {
            0 => 0,
            t if t <= encoding.single_segment_units() => 1,
            _ => parts,
        }
    }
}

/// Greedy packing of `costs` into parts of `capacity`: (total units, parts).
#[inline]
fn pack(costs: impl Iterator<Item = usize>, capacity: usize) -> (usize, usize) {
    let (mut total, mut parts, mut fill) = (0, 0, capacity);
    for cost in costs {
        total += cost;
        if fill + cost > capacity {
            parts += 1;
            fill = cost;
        } else {
            fill += cost;
        }
    }
    (total, parts)
}

/// One pass in GSM-7; on the first character outside it, one pass in UCS-2.
/// Returns the encoding, the total units and the part count if sent as a multi-part message.
fn scan(text: &str) -> (SmsEncoding, usize, usize) {
    let capacity = SmsEncoding::Gsm7.multi_segment_units();
    let (mut total, mut parts, mut fill) = (0, 0, capacity);
    for c in text.chars() {
        let Some(cost) = gsm7_septets(c) else {
            let (units, parts) = pack(text.chars().map(char::len_utf16), SmsEncoding::Ucs2.multi_segment_units());
            return (SmsEncoding::Ucs2, units, parts);
        };
        let cost = usize::from(cost);
        total += cost;
        if fill + cost > capacity {
            parts += 1;
            fill = cost;
        } else {
            fill += cost;
        }
    }
    (SmsEncoding::Gsm7, total, parts)
}

fn parts_for(encoding: SmsEncoding, units: usize, multi: usize) -> usize {
    match units {
        0 => 0,
        u if u <= encoding.single_segment_units() => 1,
        _ => multi,
    }
}

/// How many SMS `text` costs (0 for an empty text), without allocating.
///
/// ```
/// use touchpoint::channel::sms::count_segments;
/// assert_eq!(count_segments(&"a".repeat(160)), 1);
/// assert_eq!(count_segments(&"a".repeat(161)), 2);
/// assert_eq!(count_segments(&"😀".repeat(36)), 2);
/// ```
pub fn count_segments(text: &str) -> usize {
    let (encoding, units, multi) = scan(text);
    parts_for(encoding, units, multi)
}

/// Splits `text` into SMS parts: the encoding, the size in septets or UTF-16 units, and the
/// text and size of every part. An empty text has no parts.
pub fn segment(text: &str) -> SmsSegmentation {
    let (encoding, units, multi) = scan(text);
    let cost = |c: char| match encoding {
        SmsEncoding::Gsm7 => gsm7_septets(c).map_or(1, usize::from),
        SmsEncoding::Ucs2 => c.len_utf16(),
    };
    let segments = match parts_for(encoding, units, multi) {
        0 => Vec::new(),
        1 => vec![SmsSegment { text: text.to_owned(), units }],
        n => {
            let capacity = encoding.multi_segment_units();
            let mut segments = Vec::with_capacity(n);
            let (mut start, mut fill) = (0, 0);
            for (i, c) in text.char_indices() {
                let c_cost = cost(c);
                if fill + c_cost > capacity {
                    segments.push(SmsSegment { text: text[start..i].to_owned(), units: fill });
                    start = i;
                    fill = 0;
                }
                fill += c_cost;
            }
            segments.push(SmsSegment { text: text[start..].to_owned(), units: fill });
            segments
        }
    };
    SmsSegmentation { encoding, units, segments }
}
