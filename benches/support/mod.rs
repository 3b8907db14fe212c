//! What the benches share: samples with a median, a ratio line, a seeded PRNG.
//!
//! Included by each bench with `#[path = "support/mod.rs"] mod support;`; a bench uses only
//! part of it.
#![allow(dead_code)]

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Nanoseconds per iteration, one entry per call of a timed routine.
#[derive(Debug, Default)]
pub struct Samples(pub Vec<f64>);

impl Samples {
    /// Records one timed call of `iters` iterations.
    pub fn push(&mut self, elapsed: Duration, iters: u64) {
        self.0.push(elapsed.as_nanos() as f64 / iters.max(1) as f64);
    }

    /// Records the CPU time between two [`thread_cpu_ns`] readings, if both were had.
    pub fn push_cpu(&mut self, before: Option<u64>, after: Option<u64>, iters: u64) {
        if let (Some(b), Some(a)) = (before, after) {
            self.push(Duration::from_nanos(a.saturating_sub(b)), iters);
        }
    }

    /// The median of the last `measured` entries (criterion's warm-up calls come first).
    pub fn median(&self, measured: usize) -> Option<f64> {
        let mut tail = self.0[self.0.len().saturating_sub(measured)..].to_vec();
        if tail.is_empty() {
            return None;
        }
        tail.sort_by(f64::total_cmp);
        let m = tail.len() / 2;
        Some(if tail.len().is_multiple_of(2) { (tail[m - 1] + tail[m]) / 2.0 } else { tail[m] })
    }
}

/// Nanoseconds this thread has run on a CPU, if the platform says (Linux schedstat).
pub fn thread_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

/// `subject: median 12.3 ns vs floor 4.1 ns -> ratio 3.0x`, or says the subject did not run.
pub fn ratio_line(subject: &str, subject_ns: Option<f64>, floor: &str, floor_ns: Option<f64>) -> String {
    match (subject_ns, floor_ns) {
        (Some(s), Some(f)) => {
            format!("{subject}: median {} vs {floor} {} -> ratio {:.1}x", fmt_ns(s), fmt_ns(f), s / f)
        }
        _ => format!("{subject}: not run (filtered out?)"),
    }
}

/// Nanoseconds, or microseconds from 1,000 ns on.
pub fn fmt_ns(ns: f64) -> String {
    if ns >= 1_000.0 { format!("{:.2} µs", ns / 1_000.0) } else { format!("{ns:.1} ns") }
}

/// The tests' splitmix64, so every run sees the same data.
#[path = "../../tests/rng/mod.rs"]
mod rng;
#[allow(unused_imports)] // not every bench draws random data
pub use rng::Rng;

/// Runs `f` `iters` times, records the time per call in `samples` and returns the total (for
/// `Bencher::iter_custom`).
pub fn timed<F: FnMut()>(samples: &Mutex<Samples>, iters: u64, mut f: F) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    let elapsed = start.elapsed();
    samples.lock().unwrap_or_else(|p| p.into_inner()).push(elapsed, iters);
    elapsed
}
