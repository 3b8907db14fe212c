//! `Engine::send` against its own recording step, in the same run.
//!
//! * `send/whatsapp_text` — `Engine::send` of a short text to a WhatsApp customer through a
//!   `StubChannel`: load the conversation, customer and identities, choose the channel, render,
//!   send, record (one commit).
//! * `send/floor_record_outbound` — `Engine::record_outbound` of the same text to the same
//!   conversation: the commit alone, which is what a host did before `send` existed.
//!
//! Both run on the in-memory store with a manual clock. Medians and the ratio are printed to
//! stderr at the end.

use criterion::Criterion;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use touchpoint::channel::{Capabilities, StubChannel};
use touchpoint::clock::ManualClock;
use touchpoint::model::*;
use touchpoint::store::InMemoryStore;
use touchpoint::{Engine, OutboundMessage, SendRequest};

const SAMPLES: usize = 30;

/// Nanoseconds per iteration, one entry per call of a timed routine.
#[derive(Debug, Default)]
struct Samples(Vec<f64>);

impl Samples {
    /// The median of the last `SAMPLES` entries (criterion's warm-up calls come first).
    fn median(&self) -> f64 {
        let mut tail = self.0[self.0.len().saturating_sub(SAMPLES)..].to_vec();
        if tail.is_empty() {
            return f64::NAN;
        }
        tail.sort_by(f64::total_cmp);
        let m = tail.len() / 2;
        if tail.len().is_multiple_of(2) { (tail[m - 1] + tail[m]) / 2.0 } else { tail[m] }
    }
}

fn timed<F: FnMut()>(samples: &Mutex<Samples>, iters: u64, mut f: F) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    let elapsed = start.elapsed();
    samples.lock().unwrap_or_else(|p| p.into_inner()).0.push(elapsed.as_nanos() as f64 / iters.max(1) as f64);
    elapsed
}

fn setup() -> (Engine, TenantId, ConversationId) {
    let start = chrono::DateTime::from_timestamp(1_767_600_000, 0).expect("a valid time");
    let endpoint = EndpointId::new("wa-main").expect("a valid endpoint");
    let engine = Engine::builder(Arc::new(InMemoryStore::new()))
        .clock(Arc::new(ManualClock::new(start)))
        .channel(Arc::new(StubChannel::new(endpoint.clone(), Capabilities::whatsapp())))
        .build();
    let tenant = TenantId::new("acme").expect("a valid tenant");
    let inbound = InboundMessage::new(
        ChannelKind::WhatsApp,
        endpoint,
        Address::phone("+447700900123"),
        "wamid.IN1",
        Content::text("Where is my parcel?"),
    );
    let conversation = futures::executor::block_on(engine.ingest(&tenant, inbound)).expect("ingest").conversation;
    (engine, tenant, conversation)
}

fn main() {
    let mut c = Criterion::default().sample_size(SAMPLES).configure_from_args();
    let agent = AgentId::new("ana").expect("a valid agent");
    let text = Content::text("Your parcel is out for delivery and arrives before 6 pm.");

    let sent = Mutex::new(Samples::default());
    let recorded = Mutex::new(Samples::default());
    {
        let mut g = c.benchmark_group("send");
        let (engine, tenant, conversation) = setup();
        g.bench_function("whatsapp_text", |b| {
            b.iter_custom(|iters| {
                timed(&sent, iters, || {
                    let request = SendRequest::agent(agent.clone(), text.clone());
                    let out = futures::executor::block_on(engine.send(&tenant, conversation, request));
                    black_box(out.expect("send"));
                })
            })
        });
        let (engine, tenant, conversation) = setup();
        g.bench_function("floor_record_outbound", |b| {
            b.iter_custom(|iters| {
                timed(&recorded, iters, || {
                    let out = OutboundMessage::agent(agent.clone(), text.clone());
                    let m = futures::executor::block_on(engine.record_outbound(&tenant, conversation, out));
                    black_box(m.expect("record"));
                })
            })
        });
        g.finish();
    }
    c.final_summary();

    let med = |s: &Mutex<Samples>| s.lock().unwrap_or_else(|p| p.into_inner()).median();
    let (sent, recorded) = (med(&sent), med(&recorded));
    eprintln!("\n== send benchmarks (medians) ==");
    eprintln!("send/whatsapp_text          {sent:>9.0} ns  ratio to floor {:.2}x", sent / recorded);
    eprintln!("send/floor_record_outbound  {recorded:>9.0} ns");
}
