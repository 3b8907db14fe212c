//! Per-call overhead of ingest through the C ABI (`examples/c_abi/`), against the same ingest in
//! Rust, in one run.
//!
//! The bench links the extern "C" functions by compiling the example's source into this bench
//! as a module (`#[path = "../examples/c_abi/lib.rs"] mod ffi;`): the very functions the cdylib
//! exports, called the way C calls them (NUL-terminated JSON in, a `char*` out that is freed with
//! `tp_string_free`), without dynamic loading.
//!
//! * `ingest/c_abi` (what criterion reports) — `tp_ingest` on JSON text, then `tp_string_free`
//!   on the outcome.
//! * rust (baseline, timed in the same routine call) — `Engine::ingest` with a prepared
//!   `InboundMessage`.
//! * rust_json (baseline, same routine call) — the same plus what JSON costs a Rust host: parse
//!   the inbound JSON into an `InboundMessage`, serialise the outcome to a `String`.
//!
//! Each timed batch runs all three on the same number of messages, in rotating order, so they see
//! the same machine load (the build machines are shared); each on a fresh engine. Traffic
//! (identical for all three, generated outside the timed sections): 600 senders, a third each on
//! SMS, email and web chat, so most messages continue an open conversation; every message has a
//! fresh provider id (no dedupe shortcut).
//!
//! The medians and ratios are printed to stderr after the group: medians over the measured
//! batches (criterion's warm-up calls come first), and the median of the per-batch ratio.

#[allow(dead_code)]
#[path = "../examples/c_abi/lib.rs"]
mod ffi;

use criterion::Criterion;
use futures::executor::block_on;
use std::ffi::{CString, c_char};
use std::hint::black_box;
use std::ptr::null_mut;
use std::time::{Duration, Instant};
use touchpoint::model::{Address, ChannelKind, Content, EndpointId, InboundMessage, TenantId, ThreadHints};
use touchpoint::thread::ThreadingPolicy;
use touchpoint::{Engine, IngestOutcome};

#[path = "support/mod.rs"]
mod support;
use support::{Samples, fmt_ns};

const SAMPLES: usize = 30;
const SENDERS: u64 = 600;

fn endpoint(name: &str) -> EndpointId {
    EndpointId::new(name).expect("valid endpoint")
}

/// Message `n`: sender `n % SENDERS`, a fresh provider id.
fn message(n: u64) -> InboundMessage {
    let who = n % SENDERS;
    let text = Content::text(format!("Message {n}: my order #{who} has not arrived yet, can you check?"));
    match who % 3 {
        0 => InboundMessage::new(
            ChannelKind::Sms,
            endpoint("sms-main"),
            Address::phone(format!("+4479{who:08}")),
            format!("SM{n}"),
            text,
        ),
        1 => InboundMessage::new(
            ChannelKind::Email,
            endpoint("support-inbox"),
            Address::email(format!("Customer.{who}@Example.com")),
            format!("<m{n}@mail.example.com>"),
            text,
        )
        .with_thread(ThreadHints { subject: Some(format!("Order {who}")), ..ThreadHints::default() }),
        _ => InboundMessage::new(
            ChannelKind::WebChat,
            endpoint("site-widget"),
            Address::platform("site-widget", format!("visitor-{who}")),
            format!("chat-{n}"),
            text,
        )
        .with_sender_name(format!("Visitor {who}")),
    }
}

/// The JSON a C host would send for `msg` (the example accepts `InboundMessage`'s own fields).
fn json_of(msg: &InboundMessage) -> String {
    serde_json::to_string(msg).expect("serialisable")
}

const CONFIG: &str = r#"{"tenant": "acme"}"#;

fn rust_engine() -> (Engine, TenantId) {
    // Same defaults as the C ABI's engine for CONFIG.
    let engine = Engine::builder(std::sync::Arc::new(touchpoint::store::InMemoryStore::new()))
        .threading(ThreadingPolicy::default())
        .build();
    (engine, TenantId::new("acme").expect("tenant"))
}

struct CEngine(*mut ffi::TpEngine);

impl CEngine {
    fn new() -> CEngine {
        let config = CString::new(CONFIG).expect("no NUL");
        let mut engine = null_mut();
        // SAFETY: valid string and out pointer.
        let status = unsafe { ffi::tp_engine_new(config.as_ptr(), &mut engine) };
        assert_eq!(status, ffi::TpStatus::Ok);
        CEngine(engine)
    }
}

impl Drop for CEngine {
    fn drop(&mut self) {
        assert_eq!(ffi::tp_engine_free(self.0), ffi::TpStatus::Ok);
    }
}

/// Checks, outside any measurement, that the three paths do the same thing.
fn check_paths_agree() {
    let (engine, tenant) = rust_engine();
    let c = CEngine::new();
    for n in 0..(3 * SENDERS) {
        let msg = message(n);
        let json = CString::new(json_of(&msg)).expect("no NUL");
        let rust = block_on(engine.ingest(&tenant, msg)).expect("rust ingest");
        let mut out: *mut c_char = null_mut();
        // SAFETY: valid pointers; the result is a live string of the library, freed once.
        let status = unsafe { ffi::tp_ingest(c.0, json.as_ptr(), &mut out) };
        assert_eq!(status, ffi::TpStatus::Ok);
        // SAFETY: on success `out` is a NUL-terminated string.
        let text = unsafe { std::ffi::CStr::from_ptr(out) }.to_str().expect("UTF-8").to_owned();
        // SAFETY: freed once.
        assert_eq!(unsafe { ffi::tp_string_free(out) }, ffi::TpStatus::Ok);
        let through_c: IngestOutcome = serde_json::from_str(&text).expect("outcome JSON");
        assert_eq!(
            (through_c.resolution, through_c.thread, through_c.duplicate),
            (rust.resolution, rust.thread, rust.duplicate),
            "message {n}"
        );
    }
    eprintln!("check: {} messages gave the same resolution and threading through Rust and the C ABI", 3 * SENDERS);
}

/// Times `iters` ingests of Rust messages on a fresh engine.
fn time_rust(iters: u64) -> Duration {
    let (engine, tenant) = rust_engine();
    let messages: Vec<InboundMessage> = (0..iters).map(message).collect();
    let start = Instant::now();
    for msg in messages {
        black_box(block_on(engine.ingest(&tenant, msg)).expect("ingest"));
    }
    start.elapsed()
}

/// Times `iters` ingests from JSON text to outcome JSON in Rust, on a fresh engine.
fn time_rust_json(iters: u64) -> Duration {
    let (engine, tenant) = rust_engine();
    let texts: Vec<String> = (0..iters).map(|n| json_of(&message(n))).collect();
    let start = Instant::now();
    for text in &texts {
        let msg: InboundMessage = serde_json::from_str(black_box(text)).expect("inbound JSON");
        let outcome = block_on(engine.ingest(&tenant, msg)).expect("ingest");
        black_box(serde_json::to_string(&outcome).expect("outcome JSON"));
    }
    start.elapsed()
}

/// Times `iters` calls of `tp_ingest` + `tp_string_free` on a fresh engine.
fn time_c_abi(iters: u64) -> Duration {
    let engine = CEngine::new();
    let texts: Vec<CString> = (0..iters).map(|n| CString::new(json_of(&message(n))).expect("no NUL")).collect();
    let start = Instant::now();
    for text in &texts {
        let mut out: *mut c_char = null_mut();
        // SAFETY: valid pointers; the result is freed once.
        unsafe {
            let status = ffi::tp_ingest(engine.0, black_box(text.as_ptr()), &mut out);
            assert_eq!(status, ffi::TpStatus::Ok);
            assert_eq!(ffi::tp_string_free(black_box(out)), ffi::TpStatus::Ok);
        }
    }
    start.elapsed()
}

fn main() {
    check_paths_agree();
    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("ingest");
    group.sample_size(SAMPLES).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));

    // One criterion function; each of its timed batches also runs the two Rust baselines on the
    // same number of messages, in rotating order, so all three see the same machine load.
    let (mut rust, mut rust_json, mut c_abi) = (Samples::default(), Samples::default(), Samples::default());
    let mut ratios = Samples::default();
    let mut round = 0usize;
    group.bench_function("c_abi", |b| {
        b.iter_custom(|iters| {
            let mut times = [Duration::ZERO; 3];
            for k in 0..3 {
                let which = (round + k) % 3;
                times[which] = match which {
                    0 => time_rust(iters),
                    1 => time_rust_json(iters),
                    _ => time_c_abi(iters),
                };
            }
            round += 1;
            rust.push(times[0], iters);
            rust_json.push(times[1], iters);
            c_abi.push(times[2], iters);
            ratios.0.push(times[2].as_secs_f64() / times[0].as_secs_f64().max(f64::MIN_POSITIVE));
            times[2]
        })
    });
    group.finish();

    match (rust.median(SAMPLES), rust_json.median(SAMPLES), c_abi.median(SAMPLES), ratios.median(SAMPLES)) {
        (Some(r), Some(j), Some(c), Some(paired)) => {
            eprintln!("\n== C ABI ingest overhead (medians per call over {SAMPLES} interleaved batches) ==");
            eprintln!(
                "c_abi/ingest: {} vs rust/ingest {} -> ratio {:.2}x, paired per batch {paired:.2}x ({} per call for the boundary and JSON)",
                fmt_ns(c),
                fmt_ns(r),
                c / r,
                fmt_ns(c - r)
            );
            eprintln!(
                "c_abi/ingest: {} vs rust_json/ingest {} -> ratio {:.2}x ({} per call for the boundary alone)",
                fmt_ns(c),
                fmt_ns(j),
                c / j,
                fmt_ns(c - j)
            );
        }
        _ => eprintln!("\n(c_abi bench: filtered out; no ratio)"),
    }
    c.final_summary();
}
