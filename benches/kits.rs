//! Channel-kit parsing, each measured against a floor in the same run.
//!
//! * `kits/whatsapp_text` — `WhatsAppKit::parse_webhook` of the reference's text webhook
//!   (`tests/fixtures/whatsapp/text.json`, 450 bytes) into an `InboundMessage`, against
//!   `serde_json::from_slice::<serde_json::Value>` of the same bytes, timed right after the kit in
//!   every routine call. Target: ≤ 2 µs median.
//! * `kits/messenger_quick_reply` and `kits/telegram_start`, each against the `Value` parse of
//!   its own body, for comparison (no target).
//!
//! After each pair the medians and the ratio are printed to stderr, and repeated in a summary at
//! the end. A median is taken over the measured samples (the last `sample_size` calls of a
//! routine), the same statistic criterion reports. Besides wall time, the summary gives the
//! thread's **CPU time** per iteration where Linux reports it (`/proc/thread-self/schedstat`):
//! on a machine shared with other jobs, wall time includes the time the thread waited for a
//! core, CPU time does not.
//!
//! Instruction counts (stable on a loaded machine): with `BENCH_CALLS=N` set, the bench skips
//! criterion and calls each kit `N` times, then the `Value` parse of its body `N` times, each in
//! its own never-inlined function, for a profiler:
//!
//! ```text
//! BENCH_CALLS=2000 valgrind --tool=callgrind --callgrind-out-file=kits.cg target/release/deps/kits-<hash>
//! callgrind_annotate --inclusive=yes kits.cg | grep -E 'calls_'
//! ```
//!
//! (inclusive instructions of `calls_whatsapp`, `calls_messenger`, `calls_telegram` and
//! `calls_value`, the WhatsApp body's floor, divided by `N`).

use criterion::Criterion;
use std::hint::black_box;
use std::time::Instant;
use touchpoint::channels::messenger::MessengerKit;
use touchpoint::channels::telegram::TelegramKit;
use touchpoint::channels::whatsapp::WhatsAppKit;
use touchpoint::model::EndpointId;

#[path = "support/mod.rs"]
mod support;
use support::{Samples, thread_cpu_ns};

const SAMPLES: usize = 60;

const WHATSAPP: &[u8] = include_bytes!("../tests/fixtures/whatsapp/text.json");
const MESSENGER: &[u8] = include_bytes!("../tests/fixtures/messenger/quick_reply_and_delivery.json");
const TELEGRAM: &[u8] = include_bytes!("../tests/fixtures/telegram/start_command.json");

fn pair(
    c: &mut Criterion,
    name: &str,
    body: &'static [u8],
    parse: impl Fn(&[u8]) -> usize,
    target: Option<f64>,
    summary: &mut Vec<String>,
) {
    // The parse must succeed, or the bench would time the error path.
    assert!(parse(body) > 0, "{name}: the fixture did not parse into events");
    let mut kit = Samples::default();
    let mut floor = Samples::default();
    let mut kit_cpu = Samples::default();
    let mut floor_cpu = Samples::default();
    let mut group = c.benchmark_group("kits");
    group.sample_size(SAMPLES);
    // Each routine call times the kit and then the floor over the same number of iterations, so
    // both see the same machine load (the ratio stays meaningful on a shared machine).
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let cpu0 = thread_cpu_ns();
            let start = Instant::now();
            for _ in 0..iters {
                black_box(parse(black_box(body)));
            }
            let elapsed = start.elapsed();
            let cpu1 = thread_cpu_ns();
            let floor_start = Instant::now();
            for _ in 0..iters {
                black_box(serde_json::from_slice::<serde_json::Value>(black_box(body)).ok());
            }
            floor.push(floor_start.elapsed(), iters);
            let cpu2 = thread_cpu_ns();
            kit.push(elapsed, iters);
            kit_cpu.push_cpu(cpu0, cpu1, iters);
            floor_cpu.push_cpu(cpu1, cpu2, iters);
            elapsed
        })
    });
    group.finish();
    let (Some(k), Some(f)) = (kit.median(SAMPLES), floor.median(SAMPLES)) else { return };
    // The target is judged on CPU time when the platform reports it, else on wall time.
    let cpu = kit_cpu.median(SAMPLES).zip(floor_cpu.median(SAMPLES));
    let judged = cpu.map_or(k, |(kc, _)| kc);
    let verdict = match target {
        Some(t) if judged <= t => format!(" (target <= {:.1} µs: met)", t / 1000.0),
        Some(t) => format!(" (target <= {:.1} µs: MISSED)", t / 1000.0),
        None => String::new(),
    };
    let cpu_part = match cpu {
        Some((kc, fc)) => {
            format!("; CPU time kit {:.2} µs vs {:.2} µs — ratio {:.2}x", kc / 1000.0, fc / 1000.0, kc / fc)
        }
        None => String::new(),
    };
    let line = format!(
        "{name} ({} bytes): wall kit {:.2} µs vs serde_json::Value {:.2} µs — ratio {:.2}x{cpu_part}{verdict}",
        body.len(),
        k / 1000.0,
        f / 1000.0,
        k / f
    );
    eprintln!("\n>> {line}\n");
    summary.push(line);
}

/// `n` calls of each kit on its fixture (a profiler reads each function's inclusive cost).
#[inline(never)]
fn calls_whatsapp(n: usize, kit: &WhatsAppKit) {
    for _ in 0..n {
        black_box(kit.parse_webhook(black_box(WHATSAPP)).expect("whatsapp"));
    }
}

#[inline(never)]
fn calls_messenger(n: usize, kit: &MessengerKit) {
    for _ in 0..n {
        black_box(kit.parse_webhook(black_box(MESSENGER)).expect("messenger"));
    }
}

#[inline(never)]
fn calls_telegram(n: usize, kit: &TelegramKit) {
    for _ in 0..n {
        black_box(kit.parse_update(black_box(TELEGRAM)).expect("telegram"));
    }
}

/// The floor: `n` parses of `body` into a `serde_json::Value`.
#[inline(never)]
fn calls_value(n: usize, body: &[u8]) {
    for _ in 0..n {
        black_box(serde_json::from_slice::<serde_json::Value>(black_box(body)).expect("json"));
    }
}

fn main() {
    let whatsapp = WhatsAppKit::new();
    let messenger = MessengerKit::new();
    let telegram = TelegramKit::new(EndpointId::new("tg-bot").unwrap()).unwrap();
    if let Some(n) = std::env::var("BENCH_CALLS").ok().and_then(|v| v.parse().ok()) {
        calls_whatsapp(n, &whatsapp);
        calls_value(n, WHATSAPP);
        calls_messenger(n, &messenger);
        calls_telegram(n, &telegram);
        eprintln!(
            "{n} calls each of calls_whatsapp, calls_messenger, calls_telegram; calls_value: {n} of the WhatsApp body"
        );
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    let mut summary = Vec::new();
    pair(
        &mut c,
        "whatsapp_text",
        WHATSAPP,
        |b| whatsapp.parse_webhook(b).map_or(0, |e| e.len()),
        Some(2000.0),
        &mut summary,
    );
    pair(
        &mut c,
        "messenger_quick_reply",
        MESSENGER,
        |b| messenger.parse_webhook(b).map_or(0, |e| e.len()),
        None,
        &mut summary,
    );
    pair(&mut c, "telegram_start", TELEGRAM, |b| telegram.parse_update(b).map_or(0, |e| e.len()), None, &mut summary);
    c.final_summary();
    eprintln!("\n== summary ==");
    for line in &summary {
        eprintln!("{line}");
    }
}
