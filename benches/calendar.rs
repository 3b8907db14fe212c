//! Business-hours calendar benchmarks, each measured against a floor in the same run.
//!
//! The schedule: Mon–Fri 08:00–18:00, Sat 10:00–14:00, Christmas Eve to Boxing Day and nine
//! single-day holidays in 2026. The floor is the same year flattened ahead of time into a sorted
//! `Vec<(i64, i64)>` of open intervals (Unix seconds) and searched with `partition_point` — what
//! a host could precompute instead of asking the schedule. Both answer the same 4,096 instants
//! spread over 2026 (checked to agree before timing).
//!
//! * `calendar/is_open_berlin` — `Schedule::is_open` in `Europe/Berlin` (chrono-tz), against
//!   `calendar/vec_lookup_floor`.
//! * `calendar/is_open_fixed` — the same schedule at a fixed offset (`+01:00`).
//! * `calendar/next_change_berlin` — `Schedule::next_change`, against the next boundary in the
//!   flattened `Vec` (`calendar/vec_next_floor`).
//! * `calendar/cold_is_open_berlin` — building the schedule from its config and asking one
//!   `is_open` (which flattens that year on first use), against building it alone
//!   (`calendar/build_floor`): the difference is the one-off cost of a year.
//!
//! `is_open` is measured warm: its per-year intervals are built during warm-up.
//!
//! Medians and ratios are printed to stderr after each group and in a summary at the end.
//! Run: `cargo bench --features tz --bench calendar -- --warm-up-time 1 --measurement-time 3`.

use chrono::{DateTime, Duration as ChronoDuration, TimeZone, Utc};
use criterion::Criterion;
use std::hint::black_box;
use std::time::Instant;
use touchpoint::routing::calendar::{Schedule, ScheduleConfig, ScheduleOverride};

#[path = "support/mod.rs"]
mod support;
use support::{Rng, Samples, ratio_line};

const SAMPLES: usize = 50;
const INSTANTS: usize = 4_096;

fn schedule(zone: &str) -> Schedule {
    let mut config = ScheduleConfig::new("support", zone)
        .hours("Mon-Fri", "08:00", "18:00")
        .hours("Sat", "10:00", "14:00")
        .with_override(ScheduleOverride::holiday("2026-12-24").until("2026-12-26").named("Christmas"));
    for day in [
        "2026-01-01",
        "2026-04-03",
        "2026-04-06",
        "2026-05-01",
        "2026-05-14",
        "2026-05-25",
        "2026-10-03",
        "2026-12-31",
        "2026-06-04",
    ] {
        config = config.with_override(ScheduleOverride::holiday(day));
    }
    config.build().expect("valid schedule")
}

fn year_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

/// 2026's open intervals, from the schedule itself.
fn flatten(schedule: &Schedule) -> Vec<(i64, i64)> {
    let end = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
    let mut intervals = Vec::new();
    let mut t = year_start();
    let mut open_since = schedule.is_open(t).then_some(t);
    while let Some(change) = schedule.next_change(t).filter(|c| *c < end) {
        match open_since.take() {
            Some(since) => intervals.push((since.timestamp(), change.timestamp())),
            None => open_since = Some(change),
        }
        t = change;
    }
    if let Some(since) = open_since {
        intervals.push((since.timestamp(), end.timestamp()));
    }
    intervals
}

fn vec_is_open(intervals: &[(i64, i64)], t: i64) -> bool {
    let i = intervals.partition_point(|&(start, _)| start <= t);
    i > 0 && t < intervals[i - 1].1
}

fn vec_next(boundaries: &[i64], t: i64) -> Option<i64> {
    boundaries.get(boundaries.partition_point(|&b| b <= t)).copied()
}

fn instants() -> Vec<DateTime<Utc>> {
    let mut rng = Rng(7);
    let year = 365 * 86_400 - 86_400 * 10; // keep next_change inside the flattened year
    (0..INSTANTS).map(|_| year_start() + ChronoDuration::seconds((rng.next() % year) as i64)).collect()
}

fn bench_is_open(c: &mut Criterion, summary: &mut Vec<String>) {
    let berlin = schedule("Europe/Berlin");
    let fixed = schedule("+01:00");
    let at = instants();
    let flat = flatten(&berlin);
    let flat_fixed = flatten(&fixed);
    for t in &at {
        assert_eq!(berlin.is_open(*t), vec_is_open(&flat, t.timestamp()), "berlin disagrees at {t}");
        assert_eq!(fixed.is_open(*t), vec_is_open(&flat_fixed, t.timestamp()), "fixed disagrees at {t}");
    }
    let secs: Vec<i64> = at.iter().map(DateTime::timestamp).collect();

    let mut group = c.benchmark_group("calendar");
    group.sample_size(SAMPLES);
    let mut run = |name: &str, f: &mut dyn FnMut(usize) -> bool| {
        let mut samples = Samples::default();
        let mut cursor = 0;
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(f(cursor));
                    cursor = (cursor + 1) % INSTANTS;
                }
                let elapsed = start.elapsed();
                samples.push(elapsed, iters);
                elapsed
            })
        });
        samples.median(SAMPLES)
    };
    let berlin_ns = run("is_open_berlin", &mut |i| berlin.is_open(black_box(at[i])));
    let fixed_ns = run("is_open_fixed", &mut |i| fixed.is_open(black_box(at[i])));
    let floor_ns = run("vec_lookup_floor", &mut |i| vec_is_open(&flat, black_box(secs[i])));
    group.finish();
    for line in [
        ratio_line("calendar/is_open_berlin", berlin_ns, "Vec<(i64, i64)> lookup floor", floor_ns),
        ratio_line("calendar/is_open_fixed", fixed_ns, "Vec<(i64, i64)> lookup floor", floor_ns),
    ] {
        eprintln!("\n>> {line}\n");
        summary.push(line);
    }
}

fn bench_next_change(c: &mut Criterion, summary: &mut Vec<String>) {
    let berlin = schedule("Europe/Berlin");
    let at = instants();
    let flat = flatten(&berlin);
    let boundaries: Vec<i64> = flat.iter().flat_map(|&(s, e)| [s, e]).collect();
    for t in &at {
        assert_eq!(berlin.next_change(*t).map(|c| c.timestamp()), vec_next(&boundaries, t.timestamp()), "at {t}");
    }
    let secs: Vec<i64> = at.iter().map(DateTime::timestamp).collect();

    let mut group = c.benchmark_group("calendar");
    group.sample_size(SAMPLES);
    let mut subject = Samples::default();
    let mut cursor = 0;
    group.bench_function("next_change_berlin", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(berlin.next_change(black_box(at[cursor])));
                cursor = (cursor + 1) % INSTANTS;
            }
            let elapsed = start.elapsed();
            subject.push(elapsed, iters);
            elapsed
        })
    });
    let mut floor = Samples::default();
    let mut cursor = 0;
    group.bench_function("vec_next_floor", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(vec_next(&boundaries, black_box(secs[cursor])));
                cursor = (cursor + 1) % INSTANTS;
            }
            let elapsed = start.elapsed();
            floor.push(elapsed, iters);
            elapsed
        })
    });
    group.finish();
    let line = ratio_line(
        "calendar/next_change_berlin",
        subject.median(SAMPLES),
        "Vec<i64> next-boundary floor",
        floor.median(SAMPLES),
    );
    eprintln!("\n>> {line}\n");
    summary.push(line);
}

fn bench_cold(c: &mut Criterion, summary: &mut Vec<String>) {
    let config = schedule("Europe/Berlin").config().clone();
    let at = Utc.with_ymd_and_hms(2026, 6, 15, 12, 0, 0).unwrap();
    let mut group = c.benchmark_group("calendar");
    group.sample_size(SAMPLES);
    let mut subject = Samples::default();
    group.bench_function("cold_is_open_berlin", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let s = Schedule::new(black_box(config.clone())).unwrap();
                black_box(s.is_open(black_box(at)));
            }
            let elapsed = start.elapsed();
            subject.push(elapsed, iters);
            elapsed
        })
    });
    let mut floor = Samples::default();
    group.bench_function("build_floor", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(Schedule::new(black_box(config.clone())).unwrap());
            }
            let elapsed = start.elapsed();
            floor.push(elapsed, iters);
            elapsed
        })
    });
    group.finish();
    let (s, f) = (subject.median(SAMPLES), floor.median(SAMPLES));
    let mut line = ratio_line("calendar/cold_is_open_berlin", s, "build-only floor", f);
    if let (Some(s), Some(f)) = (s, f) {
        line.push_str(&format!("; flattening one year costs {:.1} us", (s - f) / 1000.0));
    }
    eprintln!("\n>> {line}\n");
    summary.push(line);
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let mut summary = Vec::new();
    bench_is_open(&mut c, &mut summary);
    bench_next_change(&mut c, &mut summary);
    bench_cold(&mut c, &mut summary);
    c.final_summary();
    eprintln!("\n== summary ==");
    for line in &summary {
        eprintln!("{line}");
    }
}
