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
use touchpoint::channel::{Capabilities, StubChannel};
use touchpoint::clock::ManualClock;
use touchpoint::model::*;
use touchpoint::store::InMemoryStore;
use touchpoint::{Engine, OutboundMessage, SendRequest};

#[path = "support/mod.rs"]
mod support;

use support::{Samples, ratio_line, timed};

const SAMPLES: usize = 30;

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

    let med = |s: &Mutex<Samples>| s.lock().unwrap_or_else(|p| p.into_inner()).median(SAMPLES);
    eprintln!("\n== send benchmarks (medians) ==");
    eprintln!("{}", ratio_line("send/whatsapp_text", med(&sent), "send/floor_record_outbound", med(&recorded)));
}
