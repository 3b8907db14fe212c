//! Durable ingest into SQLite through the `Engine`: group commit against one transaction per
//! message, in the same run.
//!
//! * `sqlite_ingest/group_commit` — `Engine::ingest` over a `SqliteStore` on a file in the temp
//!   dir with the default options (WAL, `synchronous = FULL`, up to 1024 change sets per
//!   transaction), with `IN_FLIGHT` ingests in flight at any time (a `FuturesUnordered` window
//!   on `futures::executor::block_on`).
//! * `sqlite_ingest/one_tx_per_message` — the baseline: the same, with `max_batch = 1` (every
//!   change set its own transaction and fsync).
//! * `sqlite_ingest/in_memory_store` — the same traffic on the `InMemoryStore`, for scale.
//! * `sqlite_ingest/sqlite_floor` — what SQLite alone needs for the same traffic on this machine:
//!   the rows the engine writes for each message (counted by ingesting one first contact and one
//!   follow-up per channel through a `SqliteStore`; record sizes the averages of the preloaded
//!   file), written straight through rusqlite on a preloaded file with the store's settings
//!   (WAL, `synchronous = FULL`, the same page cache and `secure_delete`), `IN_FLIGHT` messages
//!   a transaction, one thread. No reads, no checks, no JSON encoding, and no checkpoint inside
//!   the timing (the WAL is checkpointed between samples), so it is an upper bound of what any
//!   store writing these rows into SQLite could reach here.
//!
//! SQLite's memory statistics are turned off at the start (`disable_memory_statistics`, as the
//! store's docs advise a host that does not need them); `SQLITE_BENCH_MEMSTATUS=1` keeps them on.
//!
//! Traffic: 70 % follow-ups of preloaded customers (WhatsApp, SMS, email; same sender, same
//! endpoint), 30 % first contacts, every message with a fresh provider id, generated outside the
//! timed section. Each store is preloaded with `PRELOAD` customers (the SQLite files with group
//! commit, before the measured store is opened on them). Target: ≥ 20k messages/s
//! durable with group commit. The medians (messages/s) and ratios are printed at the end, with
//! the CPU time per message of the whole process (all threads; Linux only), which shows the cost
//! apart from how busy the machine is, and how it splits over the threads (`caller`: the
//! thread running the engine; `tp-sqlite-writer`, `tp-sqlite-read`, `tp-sqlite-ckpt`: the
//! store's writer, readers and checkpointer), and the bytes each kind of thread wrote per message
//! (Linux `/proc/self/task/*/io`; the writer writes the WAL, 4,120 bytes a frame, the
//! checkpointer copies pages back into the database file).

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use futures::StreamExt;
use futures::executor::block_on;
use futures::stream::FuturesUnordered;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use touchpoint::Engine;
use touchpoint::model::{Address, ChannelKind, Content, EndpointId, InboundMessage, TenantId, ThreadHints};
use touchpoint::store::sqlite::SqliteOptions;
use touchpoint::store::{InMemoryStore, SqliteStore, Store};

#[path = "sqlite/floor.rs"]
mod floor;

#[path = "support/mod.rs"]
mod support;
use support::{Rng, Samples};

/// Customers in each store before anything is measured.
const PRELOAD: u64 = 10_000;
/// Ingests in flight at any time.
const IN_FLIGHT: usize = 256;
const SAMPLES: usize = 10;

fn endpoint(name: &str) -> EndpointId {
    EndpointId::new(name).expect("valid endpoint")
}

const TEXTS: [&str; 4] = [
    "Hi, my order #48213 has not arrived yet, can you check?",
    "Thanks! Any news about the delivery?",
    "I was charged twice for the same order, please refund one of the payments.",
    "ok",
];

/// Sender `who`: a third each on WhatsApp, SMS and email.
fn message(who: u64, n: u64) -> InboundMessage {
    let text = Content::text(TEXTS[(n % 4) as usize]);
    match who % 3 {
        0 => InboundMessage::new(
            ChannelKind::WhatsApp,
            endpoint("wa-main"),
            Address::phone(format!("447{who:09}")),
            format!("wamid.{n}"),
            text,
        ),
        1 => InboundMessage::new(
            ChannelKind::Sms,
            endpoint("sms-main"),
            Address::phone(format!("+447{who:09}")),
            format!("SM{n}"),
            text,
        ),
        _ => InboundMessage::new(
            ChannelKind::Email,
            endpoint("support-inbox"),
            Address::email(format!("Customer.{who}@Example.com")),
            format!("<{n}.{who}@mail.example.com>"),
            text,
        )
        .with_thread(ThreadHints { subject: Some(format!("Order {who}")), ..ThreadHints::default() }),
    }
}

/// 70 % follow-ups of preloaded senders, 30 % new senders; provider ids never repeat.
struct Traffic {
    rng: Rng,
    next_sender: u64,
    next_message: u64,
}

impl Traffic {
    fn new() -> Self {
        Traffic { rng: Rng(1), next_sender: PRELOAD, next_message: 1_000_000 }
    }

    fn batch(&mut self, n: u64) -> Vec<InboundMessage> {
        (0..n)
            .map(|_| {
                let m = self.next_message;
                self.next_message += 1;
                let who = if self.rng.below(10) < 7 {
                    self.rng.below(PRELOAD)
                } else {
                    self.next_sender += 1;
                    self.next_sender - 1
                };
                message(who, m)
            })
            .collect()
    }
}

/// Ingests `messages` with up to `IN_FLIGHT` ingests in flight at any time.
fn ingest_all(engine: &Engine, tenant: &TenantId, messages: Vec<InboundMessage>) {
    let mut messages = messages.into_iter();
    block_on(async {
        let mut in_flight = FuturesUnordered::new();
        loop {
            while in_flight.len() < IN_FLIGHT {
                let Some(m) = messages.next() else { break };
                in_flight.push(engine.ingest(tenant, m));
            }
            let Some(outcome) = in_flight.next().await else { break };
            assert!(!outcome.expect("ingest").duplicate);
        }
    });
}

fn preload(engine: &Engine, tenant: &TenantId) {
    let start = Instant::now();
    ingest_all(engine, tenant, (0..PRELOAD).map(|who| message(who, who)).collect());
    eprintln!(
        "preload: {PRELOAD} customers in {:.2} s ({:.0} ingests/s)",
        start.elapsed().as_secs_f64(),
        PRELOAD as f64 / start.elapsed().as_secs_f64()
    );
}

/// A directory in the temp dir, removed at the end.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tenant() -> TenantId {
    TenantId::new("bench").expect("tenant")
}

/// A database file preloaded with `PRELOAD` customers (with group commit, so that the baseline
/// does not spend minutes on its preload).
fn preloaded_file(path: &Path) {
    let store = SqliteStore::open(path).expect("open");
    preload(&Engine::builder(Arc::new(store)).build(), &tenant());
}

/// CPU time used so far by the whole process (all threads), where the OS tells it cheaply
/// (Linux `/proc/self/stat`, in clock ticks of 10 ms).
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Sums `read(task, stat, fields)` over the process's threads by kind (`/proc/self/task`, Linux
/// only): the store's threads by name (`tp-sqlite-read0` and `tp-sqlite-read1` count as one),
/// every other thread as `caller`. `stat` is the thread's `stat` file; `fields` its fields after
/// the name.
fn per_thread_kind<T: Default + std::ops::AddAssign>(
    read: impl Fn(&Path, &[&str]) -> Option<T>,
) -> BTreeMap<String, T> {
    let mut out = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return out };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let name = stat.get(open + 1..close).unwrap_or("");
        let kind = match name.trim_end_matches(|c: char| c.is_ascii_digit()) {
            n if n.starts_with("tp-sqlite") => n.to_owned(),
            _ => "caller".to_owned(),
        };
        let fields: Vec<&str> = stat.get(close + 2..).unwrap_or("").split(' ').collect();
        if let Some(v) = read(&task.path(), &fields) {
            *out.entry(kind).or_default() += v;
        }
    }
    out
}

/// CPU time used so far by each kind of thread of the process (see [`per_thread_kind`]).
fn thread_cpu() -> BTreeMap<String, Duration> {
    per_thread_kind(|_, fields| {
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        Some(Duration::from_millis((ticks(11) + ticks(12)) * 10))
    })
}

/// Bytes written so far (`write` and `pwrite` calls, whether or not they reached the disk yet)
/// by each kind of thread of the process (see [`per_thread_kind`]).
fn thread_written() -> BTreeMap<String, u64> {
    per_thread_kind(|task, _| {
        let io = std::fs::read_to_string(task.join("io")).ok()?;
        io.lines().find_map(|l| l.strip_prefix("wchar: ")).and_then(|v| v.trim().parse::<u64>().ok())
    })
}

/// Messages per second (median of the samples) and CPU time per message over all samples, in
/// all and by kind of thread.
struct Measured {
    rate: Option<f64>,
    cpu_per_message: Option<Duration>,
    by_thread: BTreeMap<String, Duration>,
    /// Bytes written per message, by kind of thread (threads that wrote nothing left out).
    written_by_thread: BTreeMap<String, f64>,
}

/// The `sqlite_ingest` group, with the settings every case of it shares (one message an element).
fn ingest_group(c: &mut Criterion) -> BenchmarkGroup<'_, WallTime> {
    let mut group = c.benchmark_group("sqlite_ingest");
    group
        .sample_size(SAMPLES)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(1));
    group
}

fn bench_store(c: &mut Criterion, name: &str, store: Arc<dyn Store>) -> Measured {
    let engine = Engine::builder(store).build();
    let tenant = tenant();
    let mut traffic = Traffic::new();
    let mut samples = Samples::default();
    let (mut cpu, mut messages_done) = (Some(Duration::ZERO), 0u64);
    let mut by_thread = BTreeMap::new();
    let mut written = BTreeMap::new();
    let mut group = ingest_group(c);
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let messages = traffic.batch(iters);
            let threads_before = thread_cpu();
            let written_before = thread_written();
            let cpu_before = process_cpu();
            let start = Instant::now();
            ingest_all(&engine, &tenant, messages);
            let elapsed = start.elapsed();
            cpu = match (cpu, cpu_before, process_cpu()) {
                (Some(total), Some(before), Some(after)) => Some(total + after.saturating_sub(before)),
                _ => None,
            };
            for (kind, after) in thread_cpu() {
                let before = threads_before.get(&kind).copied().unwrap_or(Duration::ZERO);
                *by_thread.entry(kind).or_insert(Duration::ZERO) += after.saturating_sub(before);
            }
            for (kind, after) in thread_written() {
                let before = written_before.get(&kind).copied().unwrap_or(0);
                *written.entry(kind).or_insert(0u64) += after.saturating_sub(before);
            }
            messages_done += iters;
            samples.push(elapsed, iters);
            elapsed
        })
    });
    group.finish();
    Measured {
        rate: samples.median(SAMPLES).map(|ns| 1e9 / ns),
        cpu_per_message: cpu.filter(|_| messages_done > 0).map(|c| c / messages_done.max(1) as u32),
        by_thread: by_thread.into_iter().map(|(k, c)| (k, c / messages_done.max(1) as u32)).collect(),
        written_by_thread: written
            .into_iter()
            .filter(|(_, bytes)| *bytes > 0)
            .map(|(k, bytes)| (k, bytes as f64 / messages_done.max(1) as f64))
            .collect(),
    }
}

/// The bytes written per message by each kind of thread, in KiB.
fn written(m: &Measured) -> String {
    let threads: Vec<String> = m.written_by_thread.iter().map(|(k, b)| format!("{k} {:.1}", b / 1024.0)).collect();
    if threads.is_empty() { "not measured".into() } else { threads.join(", ") }
}

fn rate(m: &Measured) -> String {
    let rate = m.rate.map_or_else(|| "not run".into(), |r| format!("{r:.0} messages/s"));
    let threads: Vec<String> = m.by_thread.iter().map(|(k, c)| format!("{k} {:.0}", c.as_secs_f64() * 1e6)).collect();
    match m.cpu_per_message {
        Some(cpu) if !threads.is_empty() => {
            format!("{rate} ({:.0} µs CPU per message, all threads: {})", cpu.as_secs_f64() * 1e6, threads.join(", "))
        }
        Some(cpu) => format!("{rate} ({:.0} µs CPU per message, all threads)", cpu.as_secs_f64() * 1e6),
        None => rate,
    }
}

fn main() {
    // As the store's docs advise a host that does not need SQLite's memory statistics: off, at
    // the start of main. `SQLITE_BENCH_MEMSTATUS=1` keeps them on (SQLite's default).
    let memstatus = std::env::var_os("SQLITE_BENCH_MEMSTATUS").is_some_and(|v| v == "1");
    // SAFETY: nothing else has started yet, so no other thread uses SQLite.
    #[allow(unsafe_code)]
    let statistics_off = !memstatus && unsafe { touchpoint::store::sqlite::disable_memory_statistics() };
    let mut c = Criterion::default().configure_from_args();
    let dir = TempDir(std::env::temp_dir().join(format!("touchpoint-bench-{}", uuid::Uuid::new_v4().simple())));
    std::fs::create_dir_all(&dir.0).expect("temp dir");

    let (group_db, single_db) = (dir.0.join("group.db"), dir.0.join("single.db"));
    preloaded_file(&group_db);
    preloaded_file(&single_db);

    let grouped = SqliteStore::open(&group_db).expect("open");
    let group = bench_store(&mut c, "group_commit", Arc::new(grouped));
    let single = SqliteStore::open_with(&single_db, SqliteOptions::default().with_max_batch(1)).expect("open");
    let single = bench_store(&mut c, "one_tx_per_message", Arc::new(single));
    let memory = InMemoryStore::new();
    preload(&Engine::builder(Arc::new(memory.clone())).build(), &tenant());
    let memory = bench_store(&mut c, "in_memory_store", Arc::new(memory));
    let floor_db = dir.0.join("floor.db");
    preloaded_file(&floor_db);
    let floor = floor::bench(&mut c, &floor_db, &dir.0.join("probe.db"));
    c.final_summary();

    let statistics = if statistics_off { "off" } else { "on" };
    eprintln!(
        "\n== summary ({IN_FLIGHT} ingests in flight, WAL, synchronous = FULL, file in the temp dir, \
         SQLite memory statistics {statistics}) =="
    );
    eprintln!("group commit (max_batch 1024)     : {}", rate(&group));
    eprintln!("one transaction per message       : {}", rate(&single));
    eprintln!("in-memory store (no durability)   : {}", rate(&memory));
    eprintln!("KiB written per message, group commit : {}", written(&group));
    eprintln!("KiB written per message, one tx each  : {}", written(&single));
    if let (Some(g), Some(s)) = (group.rate, single.rate) {
        let verdict = if g >= 20_000.0 { "meets" } else { "MISSES" };
        eprintln!("group commit / one tx per message : {:.1}x; {verdict} target >= 20k messages/s", g / s);
    }
    match (group.rate, floor) {
        (Some(g), Some(f)) => eprintln!(
            "SQLite floor (the same rows, no reads or checks, one thread): {f:.0} messages/s; group commit reaches {:.0} % of it",
            100.0 * g / f
        ),
        (_, f) => eprintln!("SQLite floor: {}", f.map_or_else(|| "not run".into(), |f| format!("{f:.0} messages/s"))),
    }
    if let (Some(g), Some(m)) = (group.rate, memory.rate) {
        eprintln!("group commit / in-memory store    : {:.2}x", g / m);
    }
}
