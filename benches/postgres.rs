//! Durable ingest into PostgreSQL through the `Engine` on loopback: a pool of four connections
//! against one connection, in the same run.
//!
//! * `postgres_ingest/4_connections` — `Engine::ingest` over a `PostgresStore` with
//!   `pool_size = 4`, `IN_FLIGHT` ingests in flight at any time (a `FuturesUnordered` window on
//!   `futures::executor::block_on`), the traffic spread over `TENANTS` tenants.
//! * `postgres_ingest/1_connection` — the baseline: the same with `pool_size = 1`.
//! * `postgres_ingest/4_connections_one_tenant` — four connections, every message in one tenant:
//!   commits of a tenant are serialised (its counter row is locked for the whole transaction),
//!   so this shows what one busy tenant gets.
//!
//! Traffic: 70 % follow-ups of preloaded customers, 30 % first contacts (SMS and email), every
//! message with a fresh provider id, generated outside the timed section. Each store works in a
//! fresh schema, dropped at the end. Needs `TOUCHPOINT_PG_URL`; without it the bench says so and
//! measures nothing. The medians (messages/s) and the ratio are printed at the end.

use criterion::{Criterion, SamplingMode, Throughput};
use futures::StreamExt;
use futures::executor::block_on;
use futures::stream::FuturesUnordered;
use std::sync::Arc;
use std::time::{Duration, Instant};
use touchpoint::Engine;
use touchpoint::model::{Address, ChannelKind, Content, EndpointId, InboundMessage, TenantId};
use touchpoint::store::PostgresStore;
use touchpoint::store::postgres::PostgresConfig;

#[path = "support/mod.rs"]
mod support;
use support::{Rng, Samples};

/// Customers per tenant before anything is measured.
const PRELOAD: u64 = 200;
/// Ingests in flight at any time.
const IN_FLIGHT: usize = 16;
const TENANTS: u64 = 4;
const SAMPLES: usize = 10;

fn message(who: u64, n: u64) -> InboundMessage {
    let text = Content::text("Hi, my order #48213 has not arrived yet, can you check?");
    if who.is_multiple_of(2) {
        let endpoint = EndpointId::new("sms-main").expect("endpoint");
        InboundMessage::new(ChannelKind::Sms, endpoint, Address::phone(format!("+447{who:09}")), format!("SM{n}"), text)
    } else {
        let endpoint = EndpointId::new("support-inbox").expect("endpoint");
        let from = Address::email(format!("customer.{who}@example.com"));
        InboundMessage::new(ChannelKind::Email, endpoint, from, format!("<{n}.{who}@mail.example.com>"), text)
    }
}

/// (tenant index, message): 70 % follow-ups of preloaded senders, 30 % new senders.
struct Traffic {
    rng: Rng,
    tenants: u64,
    next_sender: u64,
    next_message: u64,
}

impl Traffic {
    fn new(tenants: u64) -> Self {
        Traffic { rng: Rng(1), tenants, next_sender: PRELOAD, next_message: 1_000_000 }
    }

    fn batch(&mut self, n: u64) -> Vec<(usize, InboundMessage)> {
        (0..n)
            .map(|_| {
                self.next_message += 1;
                let who = if self.rng.below(10) < 7 {
                    self.rng.below(PRELOAD)
                } else {
                    self.next_sender += 1;
                    self.next_sender
                };
                ((self.next_message % self.tenants) as usize, message(who, self.next_message))
            })
            .collect()
    }
}

fn ingest_all(engine: &Engine, tenants: &[TenantId], messages: Vec<(usize, InboundMessage)>) {
    let mut messages = messages.into_iter();
    block_on(async {
        let mut in_flight = FuturesUnordered::new();
        loop {
            while in_flight.len() < IN_FLIGHT {
                let Some((t, m)) = messages.next() else { break };
                in_flight.push(engine.ingest(&tenants[t], m));
            }
            let Some(outcome) = in_flight.next().await else { break };
            assert!(!outcome.expect("ingest").duplicate);
        }
    });
}

fn bench_store(c: &mut Criterion, url: &str, name: &str, pool_size: usize, tenants: u64) -> Option<f64> {
    let config = PostgresConfig::new(url)
        .with_schema(format!("tp_bench_{}", uuid::Uuid::new_v4().simple()))
        .with_pool_size(pool_size);
    let store = block_on(PostgresStore::connect_with(config)).expect("connect");
    let engine = Engine::builder(Arc::new(store.clone())).build();
    let tenant_ids: Vec<TenantId> =
        (0..tenants).map(|t| TenantId::new(format!("bench-{t}")).expect("tenant")).collect();
    let start = Instant::now();
    let preload: Vec<_> =
        (0..tenants as usize).flat_map(|t| (0..PRELOAD).map(move |who| (t, message(who, who)))).collect();
    ingest_all(&engine, &tenant_ids, preload);
    eprintln!("{name}: preloaded {} customers in {:.1} s", PRELOAD * tenants, start.elapsed().as_secs_f64());
    let mut traffic = Traffic::new(tenants);
    let mut samples = Samples::default();
    let mut group = c.benchmark_group("postgres_ingest");
    group.sample_size(SAMPLES).sampling_mode(SamplingMode::Flat).throughput(Throughput::Elements(1));
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let messages = traffic.batch(iters);
            let start = Instant::now();
            ingest_all(&engine, &tenant_ids, messages);
            let elapsed = start.elapsed();
            samples.push(elapsed, iters);
            elapsed
        })
    });
    group.finish();
    drop(engine);
    if let Err(e) = block_on(store.drop_schema()) {
        eprintln!("could not drop the bench schema: {e}");
    }
    samples.median(SAMPLES).map(|ns| 1e9 / ns)
}

fn rate(r: Option<f64>) -> String {
    r.map_or_else(|| "not run".into(), |r| format!("{r:.0} messages/s"))
}

fn main() {
    let Some(url) = std::env::var("TOUCHPOINT_PG_URL").ok().filter(|u| !u.trim().is_empty()) else {
        eprintln!(
            "postgres bench did NOT run: TOUCHPOINT_PG_URL is not set (e.g. \
             TOUCHPOINT_PG_URL=postgres://touchpoint:touchpoint@127.0.0.1:5432/touchpoint; `bash .ci/run` sets one up)"
        );
        return;
    };
    let mut c = Criterion::default().warm_up_time(Duration::from_secs(1)).configure_from_args();
    let four = bench_store(&mut c, &url, "4_connections", 4, TENANTS);
    let one = bench_store(&mut c, &url, "1_connection", 1, TENANTS);
    let one_tenant = bench_store(&mut c, &url, "4_connections_one_tenant", 4, 1);
    c.final_summary();
    eprintln!("\n== summary ({IN_FLIGHT} ingests in flight, loopback, synchronous_commit as the server sets it) ==");
    eprintln!("4 connections, {TENANTS} tenants : {}", rate(four));
    eprintln!("1 connection,  {TENANTS} tenants : {}", rate(one));
    eprintln!("4 connections, 1 tenant  : {}", rate(one_tenant));
    if let (Some(f), Some(o)) = (four, one) {
        eprintln!("4 connections / 1 connection : {:.2}x", f / o);
    }
    if let (Some(f), Some(o)) = (one_tenant, four) {
        eprintln!("1 tenant / {TENANTS} tenants (4 connections) : {:.2}x", f / o);
    }
}
