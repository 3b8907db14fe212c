//! Hot-path benchmarks, each measured against a floor in the same run.
//!
//! * `identity/lookup` — `Store::identity_by_address` through `Arc<dyn Store>` (as the engine
//!   calls it) on a store preloaded with 100k customers, against a plain `HashMap<String, u64>`
//!   lookup of the same normalised keys (`identity/hashmap_floor`). Target: ≤ 3×.
//! * `context/customer_view` — `Engine::customer_context` of a customer with 1,000 messages on 4
//!   channels (default page: latest 50), against cloning 50 of those `Message`s out of a `Vec`
//!   (`context/clone_50_messages_floor`). Target: ≤ 20 µs median.
//! * `ingest/full_pipeline` — `Engine::ingest` on the preloaded store, 70 % of messages continuing
//!   an open conversation (same sender, same endpoint) and 30 % from new senders, every message
//!   with a fresh provider id (no dedupe shortcut), generated outside the timed section. The same
//!   messages are inserted into a plain `HashMap` keyed by `(channel, external id)` in the same
//!   routine call, timed separately, as the floor. Target: ≥ 200k messages/s on one core.
//!
//! After each group the medians and ratios are printed to stderr, and repeated in a summary at
//! the end. A median is taken over the measured samples (the last `sample_size` calls of a
//! routine; criterion's warm-up calls come first), the same statistic criterion reports.

use criterion::{Criterion, SamplingMode, Throughput};
use futures::executor::block_on;
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use touchpoint::context::TimelinePage;
use touchpoint::identity::Resolution;
use touchpoint::model::{
    Address, ChannelKind, Content, CustomerId, CustomerKey, EndpointId, InboundMessage, Message, NormalizedAddress,
    TenantId, ThreadHints, Verification,
};
use touchpoint::store::{InMemoryStore, MessageQuery, MessageScope, Store};
use touchpoint::thread::{OpenReason, ThreadDecision, ThreadReason};
use touchpoint::{Engine, IngestOutcome};

#[path = "support/mod.rs"]
mod support;
use support::{Rng, Samples, ratio_line};

/// Customers in the store before anything is measured.
const PRELOAD: u64 = 100_000;
/// Messages of the customer whose context view is measured.
const VIEW_MESSAGES: usize = 1_000;

const IDENTITY_SAMPLES: usize = 50;
const CONTEXT_SAMPLES: usize = 50;
const INGEST_SAMPLES: usize = 10;

fn tenant() -> TenantId {
    TenantId::new("acme").expect("valid tenant")
}

fn endpoint(name: &str) -> EndpointId {
    EndpointId::new(name).expect("valid endpoint")
}

const TEXTS: [&str; 4] = [
    "Hi, my order #48213 has not arrived yet, can you check?",
    "Thanks! Any news about the delivery?",
    "I was charged twice for the same order, please refund one of the payments.",
    "ok",
];

/// Sender `who`: a third each on WhatsApp (bare international digits, as WhatsApp sends them),
/// SMS (E.164) and email (mixed case). Phone senders are carrier-asserted by default.
fn sender(who: u64) -> (ChannelKind, EndpointId, Address) {
    match who % 3 {
        0 => (ChannelKind::WhatsApp, endpoint("wa-main"), Address::phone(format!("447{who:09}"))),
        1 => (ChannelKind::Sms, endpoint("sms-main"), Address::phone(format!("+447{who:09}"))),
        _ => (ChannelKind::Email, endpoint("support-inbox"), Address::email(format!("Customer.{who}@Example.com"))),
    }
}

fn external_id(channel: &ChannelKind, tag: &str, n: u64, who: u64) -> String {
    match channel {
        ChannelKind::WhatsApp => format!("wamid.{tag}{n}"),
        ChannelKind::Sms => format!("SM{tag}{n}"),
        _ => format!("<{tag}{n}.{who}@mail.example.com>"),
    }
}

/// The first message of sender `who` (opens a conversation, creates the customer).
fn first_contact(who: u64, external: String, text: &str) -> InboundMessage {
    let (channel, ep, address) = sender(who);
    let email = channel == ChannelKind::Email;
    let msg = InboundMessage::new(channel, ep, address, external, Content::text(text));
    if email {
        msg.with_thread(ThreadHints { subject: Some(format!("Order {who}")), ..ThreadHints::default() })
    } else {
        msg.with_sender_name(format!("Customer {who}"))
    }
}

/// A later message of preloaded sender `who` into their open conversation: WhatsApp and SMS
/// continue by session, email by `In-Reply-To` to the first message.
fn follow_up(who: u64, n: u64) -> InboundMessage {
    let (channel, ep, address) = sender(who);
    let external = external_id(&channel, "m", n, who);
    let text = TEXTS[(n % 4) as usize];
    if channel == ChannelKind::Email {
        let thread = ThreadHints {
            in_reply_to: Some(external_id(&channel, "pre", who, who)),
            subject: Some(format!("Re: Order {who}")),
            ..ThreadHints::default()
        };
        InboundMessage::new(channel, ep, address, external, Content::text(text)).with_thread(thread)
    } else {
        InboundMessage::new(channel, ep, address, external, Content::text(text))
    }
}

/// The measured traffic: 70 % follow-ups of preloaded customers, 30 % new senders, every
/// message with a fresh provider id.
struct Traffic {
    rng: Rng,
    next_sender: u64,
    next_message: u64,
}

impl Traffic {
    fn new(seed: u64, first_sender: u64, first_message: u64) -> Self {
        Traffic { rng: Rng(seed), next_sender: first_sender, next_message: first_message }
    }

    /// The next message, and whether it comes from a new sender.
    fn next(&mut self) -> (InboundMessage, bool) {
        let n = self.next_message;
        self.next_message += 1;
        if self.rng.below(10) < 7 {
            (follow_up(self.rng.below(PRELOAD), n), false)
        } else {
            let who = self.next_sender;
            self.next_sender += 1;
            let (channel, ..) = sender(who);
            (first_contact(who, external_id(&channel, "m", n, who), TEXTS[(n % 4) as usize]), true)
        }
    }

    fn batch(&mut self, n: u64) -> Vec<InboundMessage> {
        (0..n).map(|_| self.next().0).collect()
    }
}

/// The engine over a store holding `PRELOAD` customers (one message each), the normalised
/// address of each, and the preload messages (to seed the `HashMap` floor).
struct World {
    engine: Engine,
    store: Arc<dyn Store>,
    tenant: TenantId,
    addresses: Vec<(ChannelKind, NormalizedAddress)>,
    preload: Vec<InboundMessage>,
    vip: CustomerId,
}

fn build_world() -> World {
    let store: Arc<dyn Store> = Arc::new(InMemoryStore::new());
    let engine = Engine::builder(store.clone()).build();
    let tenant = tenant();

    let preload: Vec<InboundMessage> = (0..PRELOAD)
        .map(|who| {
            let (channel, ..) = sender(who);
            first_contact(who, external_id(&channel, "pre", who, who), TEXTS[(who % 4) as usize])
        })
        .collect();
    let start = Instant::now();
    let outcomes: Vec<IngestOutcome> = block_on(async {
        let mut out = Vec::with_capacity(preload.len());
        for m in &preload {
            out.push(engine.ingest(&tenant, m.clone()).await.expect("preload ingest"));
        }
        out
    });
    let took = start.elapsed();
    eprintln!(
        "preload: {PRELOAD} new customers in {:.2} s ({:.0} ingests/s, first contacts incl. cold phone parsing)",
        took.as_secs_f64(),
        PRELOAD as f64 / took.as_secs_f64()
    );
    assert!(outcomes.iter().all(|o| o.resolution == Resolution::Created), "every preload sender is a new customer");

    let addresses = block_on(async {
        let mut out = Vec::with_capacity(outcomes.len());
        for o in &outcomes {
            let i = store.identity(&tenant, o.identity).await.unwrap().expect("preloaded identity");
            out.push((i.channel, i.address));
        }
        out
    });

    let vip = build_vip(&engine, &tenant);
    World { engine, store, tenant, addresses, preload, vip }
}

/// One customer with `VIEW_MESSAGES` inbound messages round-robin on web chat, WhatsApp, SMS
/// and email, one open conversation per channel.
fn build_vip(engine: &Engine, tenant: &TenantId) -> CustomerId {
    let claim = || CustomerKey::ExternalId("vip-1".into());
    let mut customer = None;
    block_on(async {
        for n in 0..VIEW_MESSAGES {
            let text = Content::text(TEXTS[n % 4]);
            let msg = match n % 4 {
                // Signed-in web chat visitor: the host's verified user id.
                0 => InboundMessage::new(
                    ChannelKind::WebChat,
                    endpoint("site-widget"),
                    Address::platform("site-widget", "visitor-vip"),
                    format!("chat-{n}"),
                    text,
                )
                .with_claim(claim(), Verification::Verified),
                1 => InboundMessage::new(
                    ChannelKind::WhatsApp,
                    endpoint("wa-main"),
                    Address::phone("447999000001"),
                    format!("wamid.vip{n}"),
                    text,
                )
                .with_claim(claim(), Verification::Verified)
                .with_sender_name("Ana"),
                // Linked by the carrier-asserted phone the WhatsApp identity holds.
                2 => InboundMessage::new(
                    ChannelKind::Sms,
                    endpoint("sms-main"),
                    Address::phone("+447999000001"),
                    format!("SMvip{n}"),
                    text,
                ),
                _ => {
                    let in_reply_to = (n > 3).then(|| format!("<vip{}@mail.example.com>", n - 4));
                    let thread =
                        ThreadHints { in_reply_to, subject: Some("Double charge".into()), ..Default::default() };
                    InboundMessage::new(
                        ChannelKind::Email,
                        endpoint("support-inbox"),
                        Address::email("Ana.Vip@Example.com"),
                        format!("<vip{n}@mail.example.com>"),
                        text,
                    )
                    .with_claim(claim(), Verification::Verified)
                    .with_thread(thread)
                }
            };
            let o = engine.ingest(tenant, msg).await.expect("vip ingest");
            assert_eq!(*customer.get_or_insert(o.customer), o.customer, "one customer across channels");
        }
    });
    customer.expect("vip customer")
}

/// Ingests a sample of the measured traffic (outside any measurement) and checks that it does
/// what it claims: follow-ups continue their open conversation, new senders open one.
fn check_traffic(world: &World) {
    let mut traffic = Traffic::new(7, 900_000_000, 900_000_000);
    let mut follow_ups = 0;
    block_on(async {
        for _ in 0..2_000 {
            let (msg, new) = traffic.next();
            let o = world.engine.ingest(&world.tenant, msg).await.expect("ingest");
            assert!(!o.duplicate);
            if new {
                assert_eq!(o.resolution, Resolution::Created);
                assert!(matches!(o.thread, ThreadDecision::Opened { reason: OpenReason::NoMatch, .. }), "{o:?}");
            } else {
                follow_ups += 1;
                assert_eq!(o.resolution, Resolution::KnownIdentity);
                assert!(
                    matches!(
                        o.thread,
                        ThreadDecision::Continued { reason: ThreadReason::Session | ThreadReason::EmailReference }
                    ),
                    "{o:?}"
                );
            }
        }
    });
    eprintln!("traffic check: {follow_ups}/2000 follow-ups continued their conversation, the rest opened new ones");
}

fn bench_identity(c: &mut Criterion, world: &World, summary: &mut Vec<String>) {
    // Same keys, same (shuffled) order, for the store and the floor.
    let mut order: Vec<usize> = (0..world.addresses.len()).collect();
    let mut rng = Rng(42);
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let keys: Vec<&(ChannelKind, NormalizedAddress)> = order.iter().map(|&i| &world.addresses[i]).collect();
    let floor_map: HashMap<String, u64> =
        world.addresses.iter().enumerate().map(|(i, (_, a))| (a.value.clone(), i as u64)).collect();
    let store = &world.store;
    let tenant = &world.tenant;

    let mut group = c.benchmark_group("identity");
    group.sample_size(IDENTITY_SAMPLES).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    let mut subject = Samples::default();
    let mut cursor = 0;
    group.bench_function("lookup", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let (channel, address) = keys[cursor];
                cursor = if cursor + 1 == keys.len() { 0 } else { cursor + 1 };
                let found = block_on(store.identity_by_address(tenant, channel, address)).unwrap();
                black_box(found.expect("preloaded identity"));
            }
            let elapsed = start.elapsed();
            subject.push(elapsed, iters);
            elapsed
        })
    });
    let mut floor = Samples::default();
    let mut cursor = 0;
    group.bench_function("hashmap_floor", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let (_, address) = keys[cursor];
                cursor = if cursor + 1 == keys.len() { 0 } else { cursor + 1 };
                black_box(*floor_map.get(black_box(address.value.as_str())).expect("key"));
            }
            let elapsed = start.elapsed();
            floor.push(elapsed, iters);
            elapsed
        })
    });
    group.finish();
    let line = ratio_line(
        "identity/lookup",
        subject.median(IDENTITY_SAMPLES),
        "HashMap<String, u64> floor",
        floor.median(IDENTITY_SAMPLES),
    );
    eprintln!("\n>> {line} (target <= 3x)\n");
    summary.push(format!("{line} (target <= 3x)"));
}

fn bench_context(c: &mut Criterion, world: &World, summary: &mut Vec<String>) {
    let engine = &world.engine;
    let tenant = &world.tenant;
    let view = block_on(engine.customer_context(tenant, world.vip, TimelinePage::default())).expect("context");
    assert_eq!(view.timeline.len(), 50);
    assert_eq!(view.identities.len(), 4);
    assert_eq!(view.open_conversations.len(), 4);
    assert_eq!(view.counts.inbound as usize, VIEW_MESSAGES);
    let all: Vec<Message> = block_on(world.store.messages(
        tenant,
        &MessageQuery { scope: MessageScope::Customer(world.vip), before: None, limit: VIEW_MESSAGES },
    ))
    .expect("messages");
    assert_eq!(all.len(), VIEW_MESSAGES);
    assert_eq!(all[..50], view.timeline[..]);

    let mut group = c.benchmark_group("context");
    group.sample_size(CONTEXT_SAMPLES).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    let mut subject = Samples::default();
    group.bench_function("customer_view", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let view = block_on(engine.customer_context(tenant, world.vip, TimelinePage::default())).unwrap();
                black_box(view);
            }
            let elapsed = start.elapsed();
            subject.push(elapsed, iters);
            elapsed
        })
    });
    let mut floor = Samples::default();
    group.bench_function("clone_50_messages_floor", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(black_box(&all)[..50].to_vec());
            }
            let elapsed = start.elapsed();
            floor.push(elapsed, iters);
            elapsed
        })
    });
    group.finish();
    let median = subject.median(CONTEXT_SAMPLES);
    let line = ratio_line("context/customer_view", median, "cloning 50 messages", floor.median(CONTEXT_SAMPLES));
    let verdict = match median {
        Some(m) if m <= 20_000.0 => "meets target <= 20 µs",
        Some(_) => "MISSES target <= 20 µs",
        None => "",
    };
    eprintln!("\n>> {line}; {verdict}\n");
    summary.push(format!("{line}; {verdict}"));
}

fn bench_ingest(c: &mut Criterion, world: World, summary: &mut Vec<String>) {
    let World { engine, tenant, preload, .. } = world;
    let mut floor_map: HashMap<(ChannelKind, String), InboundMessage> =
        preload.into_iter().map(|m| ((m.channel.clone(), m.external_id.clone()), m)).collect();
    let mut traffic = Traffic::new(1, 1_000_000, 0);

    let mut group = c.benchmark_group("ingest");
    group
        .sample_size(INGEST_SAMPLES)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(1));
    let mut subject = Samples::default();
    let mut floor = Samples::default();
    group.bench_function("full_pipeline", |b| {
        b.iter_custom(|iters| {
            // Generated (and copied for the floor) outside the timed sections.
            let messages = traffic.batch(iters);
            let copies = messages.clone();

            let start = Instant::now();
            for m in copies {
                black_box(floor_map.insert((m.channel.clone(), m.external_id.clone()), m));
            }
            floor.push(start.elapsed(), iters);

            let start = Instant::now();
            block_on(async {
                for m in messages {
                    black_box(engine.ingest(&tenant, m).await.expect("ingest"));
                }
            });
            let elapsed = start.elapsed();
            subject.push(elapsed, iters);
            elapsed
        })
    });
    group.finish();
    let median = subject.median(INGEST_SAMPLES);
    let line =
        ratio_line("ingest/full_pipeline", median, "HashMap insert of the same messages", floor.median(INGEST_SAMPLES));
    let rate = median.map(|m| 1e9 / m).unwrap_or(0.0);
    let verdict = if rate >= 200_000.0 { "meets target >= 200k/s" } else { "MISSES target >= 200k/s" };
    let line = format!("{line}; {rate:.0} messages/s on one core, {verdict}");
    eprintln!("\n>> {line}\n");
    summary.push(line);
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let world = build_world();
    check_traffic(&world);
    let mut summary = Vec::new();
    // The read-only benchmarks run first, on the store exactly as preloaded; ingest then grows it.
    bench_identity(&mut c, &world, &mut summary);
    bench_context(&mut c, &world, &mut summary);
    bench_ingest(&mut c, world, &mut summary);
    c.final_summary();
    eprintln!("\n== summary ==");
    for line in &summary {
        eprintln!("{line}");
    }
}
