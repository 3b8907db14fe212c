//! The quickstart story on a durable SQLite database: a customer starts on web chat, continues
//! on WhatsApp, then writes an email — and everything is still there the next time the program
//! starts.
//!
//! Run it twice:
//!
//! ```text
//! cargo run --example sqlite --features sqlite               # a file in the temp dir
//! cargo run --example sqlite --features sqlite -- my.db      # or a file of your choice
//! ```
//!
//! The first run creates the database and Ana's customer record; every later run finds her,
//! adds the new contacts to the same conversation, and prints a longer timeline.

use chrono::Duration;
use futures::executor::block_on;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use touchpoint::context::TimelinePage;
use touchpoint::model::*;
use touchpoint::store::{MessageQuery, MessageScope, SqliteStore, Store};
use touchpoint::thread::ThreadingPolicy;
use touchpoint::{Engine, OutboundMessage};

fn main() -> touchpoint::Result<()> {
    let path = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("touchpoint-quickstart.db"));
    block_on(run(&path))
}

async fn run(path: &Path) -> touchpoint::Result<()> {
    let store = SqliteStore::open(path)?;
    println!("database    : {} (schema version {})", path.display(), store.schema_version().await?);
    let tenant = TenantId::new("acme-shop")?;

    // Did an earlier run leave Ana behind?
    match store.customer_by_external_id(&tenant, "shop-user-1042").await? {
        Some(ana) => {
            let query = MessageQuery { scope: MessageScope::Customer(ana.id), before: None, limit: 10_000 };
            let stored = store.messages(&tenant, &query).await?.len();
            println!("found       : customer {} from an earlier run, {stored} messages stored", ana.id);
        }
        None => println!("found       : nobody yet (first run on this database)"),
    }

    let engine = Engine::builder(Arc::new(store.clone()))
        .threading(ThreadingPolicy::default().with_cross_channel_window(Duration::days(3)))
        .build();
    // Provider ids are unique per delivery: this run's messages are new ones.
    let run = chrono::Utc::now().timestamp_millis();

    // 1. Web chat: Ana is signed in on the shop, so the host vouches for her user id.
    let chat = InboundMessage::new(
        ChannelKind::WebChat,
        EndpointId::new("shop-widget")?,
        Address::platform("shop-widget", "visitor-7f3a"),
        format!("chat-{run}"),
        Content::text("Hi! My order #1042 arrived with a broken lamp."),
    )
    .with_sender_name("Ana Souza")
    .with_claim(CustomerKey::ExternalId("shop-user-1042".into()), Verification::Verified);
    let first = engine.ingest(&tenant, chat).await?;
    println!("web chat    → {:?}, {:?}", first.resolution, first.thread);

    // The shop knows her phone and email from her account (linking again is a no-op).
    engine
        .link_identity(
            &tenant,
            first.customer,
            ChannelKind::WhatsApp,
            Address::phone("+55 11 98765-4321"),
            Verification::Verified,
        )
        .await?;
    engine
        .link_identity(
            &tenant,
            first.customer,
            ChannelKind::Email,
            Address::email("ana.souza@example.com"),
            Verification::Verified,
        )
        .await?;
    engine
        .record_outbound(
            &tenant,
            first.conversation,
            OutboundMessage::agent(AgentId::new("agent.bruno")?, Content::text("Sorry about that! A photo?")),
        )
        .await?;

    // 2. WhatsApp: the same number, spelled the way WhatsApp spells it.
    let whatsapp = InboundMessage::new(
        ChannelKind::WhatsApp,
        EndpointId::new("wa-+551130000000")?,
        Address::phone("5511987654321"),
        format!("wamid.{run}"),
        Content::Media {
            media: MediaKind::Image,
            url: "https://media.example/lamp.jpg".into(),
            mime_type: Some("image/jpeg".into()),
            caption: Some("Here is the lamp".into()),
            filename: None,
        },
    );
    let second = engine.ingest(&tenant, whatsapp).await?;
    println!("whatsapp    → {:?}, {:?}", second.resolution, second.thread);

    // 3. Email, from the address on her account.
    let email = InboundMessage::new(
        ChannelKind::Email,
        EndpointId::new("support@acme-shop.example")?,
        Address::email("Ana.Souza@Example.com"),
        format!("<{run}.ana@mail.example.com>"),
        Content::text("Attaching the receipt as well. Refund or replacement is fine."),
    )
    .with_thread(ThreadHints { subject: Some("Broken lamp, order #1042".into()), ..ThreadHints::default() });
    let third = engine.ingest(&tenant, email).await?;
    println!("email       → {:?}, {:?}", third.resolution, third.thread);
    assert!(first.customer == second.customer && second.customer == third.customer, "one customer");

    let view = engine.customer_context(&tenant, third.customer, TimelinePage { before: None, limit: 500 }).await?;
    println!("\n== {} ({}) ==", view.customer.name.as_deref().unwrap_or("(no name)"), view.customer.id);
    for i in &view.identities {
        println!("identity    : {:9} {}", i.identity.channel.to_string(), i.identity.address.value);
    }
    println!(
        "conversations: {} ({} open); {} in / {} out",
        view.counts.conversations, view.counts.open_conversations, view.counts.inbound, view.counts.outbound
    );
    println!("timeline ({} messages, newest first):", view.timeline.len());
    for m in &view.timeline {
        let who = match &m.author {
            Author::Customer(_) => "customer".to_owned(),
            Author::Agent(a) | Author::Bot(a) => a.to_string(),
            Author::System => "system".to_owned(),
        };
        println!(
            "  {} [{:8}] {:12} {}",
            m.recorded_at.format("%Y-%m-%d %H:%M:%S"),
            m.channel.to_string(),
            who,
            m.content.summary()
        );
    }
    println!("\nRun the example again: the timeline grows, the customer stays the same.");
    Ok(())
}
