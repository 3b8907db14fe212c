//! SMS segmentation: exact encodings, sizes and part boundaries (channel-facts.md §2.3).

use proptest::prelude::*;
use touchpoint::channel::sms::{self, SmsEncoding, count_segments, encoding_of, gsm7_septets, segment};

fn rep(s: &str, n: usize) -> String {
    s.repeat(n)
}

struct Row {
    name: &'static str,
    text: String,
    encoding: SmsEncoding,
    units: usize,
    parts: Vec<usize>,
}

fn row(name: &'static str, text: String, encoding: SmsEncoding, units: usize, parts: &[usize]) -> Row {
    Row { name, text, encoding, units, parts: parts.to_vec() }
}

fn table() -> Vec<Row> {
    use SmsEncoding::{Gsm7, Ucs2};
    vec![
        row("empty", String::new(), Gsm7, 0, &[]),
        row("160 a", rep("a", 160), Gsm7, 160, &[160]),
        row("161 a", rep("a", 161), Gsm7, 161, &[153, 8]),
        row("306 a", rep("a", 306), Gsm7, 306, &[153, 153]),
        row("307 a", rep("a", 307), Gsm7, 307, &[153, 153, 1]),
        row("80 euro", rep("€", 80), Gsm7, 160, &[160]),
        row("81 euro", rep("€", 81), Gsm7, 162, &[152, 10]),
        row("152 a + é (basic table)", rep("a", 152) + "é", Gsm7, 153, &[153]),
        row("152 a + ’ forces UCS-2", rep("a", 152) + "’", Ucs2, 153, &[67, 67, 19]),
        row("escape pair moved to part 2", rep("a", 152) + "[" + &rep("a", 10), Gsm7, 164, &[152, 12]),
        row("escape pair fills part 1 exactly", rep("a", 151) + "€" + &rep("a", 10), Gsm7, 163, &[153, 10]),
        row("escape pair at 160 boundary", rep("a", 158) + "|", Gsm7, 160, &[160]),
        row("escape pair just over 160", rep("a", 159) + "|", Gsm7, 161, &[153, 8]),
        row("form feed is an extension char", rep("a", 159) + "\u{c}", Gsm7, 161, &[153, 8]),
        row("70 zhe", rep("ж", 70), Ucs2, 70, &[70]),
        row("71 zhe", rep("ж", 71), Ucs2, 71, &[67, 4]),
        row("35 emoji", rep("😀", 35), Ucs2, 70, &[70]),
        row("36 emoji", rep("😀", 36), Ucs2, 72, &[66, 6]),
        row("surrogate pair not split", rep("ж", 66) + "😀" + &rep("ж", 5), Ucs2, 73, &[66, 7]),
        row("surrogate pair fills part exactly", rep("ж", 65) + "😀" + &rep("ж", 5), Ucs2, 72, &[67, 5]),
        row("mixed latin and emoji", "Hello 😀".to_owned(), Ucs2, 8, &[8]),
        row("backtick is not GSM-7", rep("a", 100) + "`", Ucs2, 101, &[67, 34]),
        row("1600 a", rep("a", 1600), Gsm7, 1600, &[153, 153, 153, 153, 153, 153, 153, 153, 153, 153, 70]),
        row(
            "1600 zhe",
            rep("ж", 1600),
            Ucs2,
            1600,
            &[67, 67, 67, 67, 67, 67, 67, 67, 67, 67, 67, 67, 67, 67, 67, 67, 67, 67, 67, 67, 67, 67, 67, 59],
        ),
    ]
}

#[test]
fn segmentation_table_gives_exact_encoding_units_and_parts() {
    for r in table() {
        let s = segment(&r.text);
        let sizes: Vec<usize> = s.segments.iter().map(|p| p.units).collect();
        assert_eq!(s.encoding, r.encoding, "{}: encoding", r.name);
        assert_eq!(s.units, r.units, "{}: units", r.name);
        assert_eq!(sizes, r.parts, "{}: part sizes", r.name);
        assert_eq!(s.count(), r.parts.len(), "{}: count", r.name);
        assert_eq!(count_segments(&r.text), r.parts.len(), "{}: count_segments", r.name);
        assert_eq!(encoding_of(&r.text), r.encoding, "{}: encoding_of", r.name);
        let joined: String = s.segments.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(joined, r.text, "{}: parts concatenate to the text", r.name);
    }
}

#[test]
fn the_moved_escape_pair_opens_the_second_part() {
    let s = segment(&(rep("a", 152) + "[" + &rep("a", 10)));
    assert_eq!(s.segments[0].text, rep("a", 152));
    assert_eq!(s.segments[1].text, "[".to_owned() + &rep("a", 10));
}

#[test]
fn the_emoji_at_a_border_opens_the_next_part_whole() {
    let s = segment(&(rep("ж", 66) + "😀" + &rep("ж", 5)));
    assert_eq!(s.segments[0].text, rep("ж", 66));
    assert!(s.segments[1].text.starts_with('😀'));
}

#[test]
fn gsm7_tables_match_gsm_03_38() {
    let basic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                 ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
    assert_eq!(basic.chars().count(), 127, "the basic table without ESC");
    for c in basic.chars() {
        assert_eq!(gsm7_septets(c), Some(1), "{c:?} is in the basic table");
    }
    for c in "^{}\\[~]|€\u{c}".chars() {
        assert_eq!(gsm7_septets(c), Some(2), "{c:?} is in the extension table");
    }
    for c in "`ç’“”…\tžж\u{301}😀\u{1b}".chars() {
        assert_eq!(gsm7_septets(c), None, "{c:?} is not GSM-7");
    }
    assert_eq!(segment(basic).units, 127);
}

#[test]
fn cost_is_segments_times_price_and_saturates() {
    assert_eq!(segment(&rep("a", 307)).estimated_cost(79), 237);
    assert_eq!(segment("").estimated_cost(79), 0);
    assert_eq!(segment(&rep("a", 161)).estimated_cost(u64::MAX), u64::MAX);
}

#[test]
fn more_than_255_parts_cannot_be_concatenated() {
    assert!(segment(&rep("a", 153 * 255)).is_concatenable());
    assert!(!segment(&rep("a", 153 * 255 + 1)).is_concatenable());
    assert_eq!(sms::MAX_CONCATENATED_SEGMENTS, 255);
}

fn sms_text() -> impl Strategy<Value = String> {
    let chars = prop::sample::select(vec!['a', ' ', '€', '[', 'é', 'ж', '😀', '\n', '’', '|']);
    prop::collection::vec(chars, 0..700).prop_map(|v| v.into_iter().collect())
}

proptest! {
    #[test]
    fn parts_reassemble_fit_their_capacity_and_agree_with_the_count(text in sms_text()) {
        let s = segment(&text);
        let joined: String = s.segments.iter().map(|p| p.text.as_str()).collect();
        prop_assert_eq!(&joined, &text);
        prop_assert_eq!(s.count(), count_segments(&text));
        prop_assert_eq!(s.units, s.segments.iter().map(|p| p.units).sum::<usize>());
        let capacity = if s.count() == 1 {
            s.encoding.single_segment_units()
        } else {
            s.encoding.multi_segment_units()
        };
        for p in &s.segments {
            prop_assert!(p.units <= capacity && p.units > 0);
        }
        // Greedy packing: no part could have taken the next part's first character.
        for w in s.segments.windows(2) {
            let first = w[1].text.chars().next().unwrap();
            let cost = match s.encoding {
                SmsEncoding::Gsm7 => usize::from(gsm7_septets(first).unwrap()),
                SmsEncoding::Ucs2 => first.len_utf16(),
            };
            prop_assert!(w[0].units + cost > capacity);
        }
    }
}

/// One SMS rendered under `Capabilities::sms()` costs about 24 parts at most: an emoji is two
/// UCS-2 units, so 1,600 of them are two provider messages, not one of 49 parts. (A part holds
/// 67 units and an emoji is never split, so a text of emoji alone takes 25.)
#[test]
fn the_sms_capabilities_keep_one_message_within_24_ucs2_parts() {
    use touchpoint::channel::{Capabilities, RenderedPart, render};
    use touchpoint::model::Content;
    for (text, most) in [("😀".repeat(1600), 25), ("ж".repeat(1600), 24), ("a".repeat(3000), 11)] {
        let parts = render(&Content::text(text.clone()), &Capabilities::sms()).unwrap();
        let mut joined = String::new();
        for p in &parts {
            let RenderedPart::Text { body } = p else { panic!("{p:?}") };
            assert!(count_segments(body) <= most, "one provider message costs {} SMS parts", count_segments(body));
            joined.push_str(body);
        }
        assert_eq!(joined.replace(char::is_whitespace, ""), text, "nothing lost");
    }
}
