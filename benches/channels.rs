//! Channel-layer benchmarks, each measured against a floor in the same run.
//!
//! * `sms/count_segments` — `sms::count_segments` over a corpus of GSM-7, GSM-7 with extension
//!   characters, and UCS-2 texts with emoji (about 3 000 characters), reported per character.
//!   `sms/segment` is the full split with part texts. Floor (`sms/floor_count_chars_utf16`):
//!   `s.chars().count() + s.encode_utf16().count()` on the same corpus. Target: ≤ 20 ns/char.
//! * `render/whatsapp_3_choices` — `render` of a 3-option `Content::Choices` for WhatsApp
//!   (reply buttons), against cloning the same `Content` (`render/floor_clone_content`).
//!
//! Medians (over the measured samples) and ratios are printed to stderr at the end.

use criterion::Criterion;
use std::hint::black_box;
use std::sync::Mutex;
use touchpoint::channel::{Capabilities, render, sms};
use touchpoint::model::{ChoiceOption, Content};

#[path = "support/mod.rs"]
mod support;
use support::{Samples, timed};

const SAMPLES: usize = 30;

fn corpus() -> Vec<String> {
    vec![
        "Your order 48213 has shipped. Track it with the link we sent you; delivery is expected on Friday. ".repeat(10),
        "Code {A7} costs 12€ [incl. VAT] ~ see https://ex.co/p?a=1|b=2 ^ thanks! ".repeat(8),
        "Ваш заказ отправлен 😀 спасибо за покупку! 🚚 Доставка в пятницу. ".repeat(12),
    ]
}

fn option(id: &str, title: &str) -> ChoiceOption {
    ChoiceOption { id: id.into(), title: title.into(), description: None }
}

fn main() {
    let mut c = Criterion::default().sample_size(SAMPLES).configure_from_args();
    let texts = corpus();
    let chars: usize = texts.iter().map(|t| t.chars().count()).sum();

    let count = Mutex::new(Samples::default());
    let split = Mutex::new(Samples::default());
    let floor = Mutex::new(Samples::default());
    {
        let mut g = c.benchmark_group("sms");
        g.bench_function("count_segments", |b| {
            b.iter_custom(|iters| {
                timed(&count, iters, || {
                    for t in &texts {
                        black_box(sms::count_segments(black_box(t)));
                    }
                })
            })
        });
        g.bench_function("segment", |b| {
            b.iter_custom(|iters| {
                timed(&split, iters, || {
                    for t in &texts {
                        black_box(sms::segment(black_box(t)));
                    }
                })
            })
        });
        g.bench_function("floor_count_chars_utf16", |b| {
            b.iter_custom(|iters| {
                timed(&floor, iters, || {
                    for t in &texts {
                        let t = black_box(t);
                        black_box(t.chars().count() + t.encode_utf16().count());
                    }
                })
            })
        });
        g.finish();
    }

    let content = Content::Choices {
        body: "How can we help?".into(),
        options: vec![option("track", "Track order"), option("return", "Return item"), option("agent", "Talk to us")],
        selected: None,
    };
    let wa = Capabilities::whatsapp();
    let rendered = Mutex::new(Samples::default());
    let cloned = Mutex::new(Samples::default());
    {
        let mut g = c.benchmark_group("render");
        g.bench_function("whatsapp_3_choices", |b| {
            b.iter_custom(|iters| {
                timed(&rendered, iters, || {
                    black_box(render(black_box(&content), black_box(&wa)).ok());
                })
            })
        });
        g.bench_function("floor_clone_content", |b| {
            b.iter_custom(|iters| {
                timed(&cloned, iters, || {
                    black_box(black_box(&content).clone());
                })
            })
        });
        g.finish();
    }
    c.final_summary();

    let med = |s: &Mutex<Samples>| s.lock().unwrap_or_else(|p| p.into_inner()).median(SAMPLES).unwrap_or(f64::NAN);
    let (count, split, floor) = (med(&count), med(&split), med(&floor));
    let per = |ns: f64| ns / chars as f64;
    eprintln!("\n== channel benchmarks (medians) ==");
    eprintln!("corpus: {} texts, {chars} characters", texts.len());
    eprintln!(
        "sms/count_segments       {:>9.0} ns  {:>6.2} ns/char  ratio to floor {:.2}x  (target <= 20 ns/char)",
        count,
        per(count),
        count / floor
    );
    eprintln!(
        "sms/segment              {:>9.0} ns  {:>6.2} ns/char  ratio to floor {:.2}x",
        split,
        per(split),
        split / floor
    );
    eprintln!("sms/floor chars+utf16    {:>9.0} ns  {:>6.2} ns/char", floor, per(floor));
    let (r, f) = (med(&rendered), med(&cloned));
    eprintln!("render/whatsapp_3_choices {:>8.0} ns  ratio to clone {:.2}x", r, r / f);
    eprintln!("render/floor_clone_content {:>7.0} ns", f);
}
