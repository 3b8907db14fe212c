//! The cross-channel story on the in-memory default: a customer starts on web chat, continues on
//! WhatsApp, then writes an email, and the agent's answer goes out on the channel she last used.
//! One customer, one conversation history, one context.
//!
//! Run with `cargo run --example quickstart`.

use chrono::Duration;
use futures::executor::block_on;
use std::sync::Arc;
use touchpoint::channel::{Capabilities, StubChannel};
use touchpoint::context::TimelinePage;
use touchpoint::model::*;
use touchpoint::thread::ThreadingPolicy;
use touchpoint::{Engine, OutboundMessage, SendRequest};

fn main() -> touchpoint::Result<()> {
    block_on(run())
}

async fn run() -> touchpoint::Result<()> {
    // Continue the customer's open conversation across channels for up to 3 days. The support
    // inbox sends through a stub that records instead of sending (the host plugs in its SMTP
    // relay or provider API as a `Channel`).
    let inbox = Arc::new(StubChannel::new(EndpointId::new("support@acme-shop.example")?, Capabilities::email()));
    let engine = Engine::builder(Arc::new(touchpoint::store::InMemoryStore::new()))
        .threading(ThreadingPolicy::default().with_cross_channel_window(Duration::days(3)))
        .channel(inbox)
        .build();
    let tenant = TenantId::new("acme-shop")?;

    // 1. Web chat: Ana is signed in on the shop, so the host vouches for her user id (HMAC).
    let chat = InboundMessage::new(
        ChannelKind::WebChat,
        EndpointId::new("shop-widget")?,
        Address::platform("shop-widget", "visitor-7f3a"),
        "chat-0001",
        Content::text("Hi! My order #1042 arrived with a broken lamp."),
    )
    .with_sender_name("Ana Souza")
    .with_claim(CustomerKey::ExternalId("shop-user-1042".into()), Verification::Verified);
    let first = engine.ingest(&tenant, chat).await?;
    println!(
        "web chat  → customer {} ({:?}), conversation {} ({:?})",
        first.customer, first.resolution, first.conversation, first.thread
    );

    // The shop knows her phone and email from her account and links them as verified addresses.
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

    let agent = AgentId::new("agent.bruno")?;
    engine
        .record_outbound(
            &tenant,
            first.conversation,
            OutboundMessage::agent(agent.clone(), Content::text("Sorry about that, Ana! Can you send a photo?")),
        )
        .await?;

    // 2. WhatsApp: the same number, asserted by the network, spelled the way WhatsApp spells it.
    let whatsapp = InboundMessage::new(
        ChannelKind::WhatsApp,
        EndpointId::new("wa-+551130000000")?,
        Address::phone("5511987654321"),
        "wamid.HBgNNTUxMTk4NzY1NDMyMRUCABIYFjNFQjA",
        Content::Media {
            media: MediaKind::Image,
            url: "https://media.example/lamp.jpg".into(),
            mime_type: Some("image/jpeg".into()),
            caption: Some("Here is the lamp".into()),
            filename: None,
        },
    );
    let second = engine.ingest(&tenant, whatsapp).await?;
    println!(
        "whatsapp  → customer {} ({:?}), conversation {} ({:?})",
        second.customer, second.resolution, second.conversation, second.thread
    );

    // 3. Email, from the address on her account (spelled differently).
    let email = InboundMessage::new(
        ChannelKind::Email,
        EndpointId::new("support@acme-shop.example")?,
        Address::email("Ana.Souza@Example.com"),
        "<CAF=ana-1@mail.example.com>",
        Content::text("Attaching the receipt as well. Refund or replacement is fine."),
    )
    .with_thread(ThreadHints { subject: Some("Broken lamp, order #1042".into()), ..ThreadHints::default() });
    let third = engine.ingest(&tenant, email).await?;
    println!(
        "email     → customer {} ({:?}), conversation {} ({:?})",
        third.customer, third.resolution, third.conversation, third.thread
    );

    assert_eq!(first.customer, second.customer);
    assert_eq!(second.customer, third.customer);
    assert_eq!(first.conversation, third.conversation);

    // 4. Bruno answers. The engine picks the channel Ana last wrote on, renders for it, sends, and
    //    records the reply with the provider's id so delivery receipts find it.
    let reply = SendRequest::agent(agent, Content::text("A replacement lamp ships tomorrow, Ana."));
    let sent = engine.send(&tenant, third.conversation, reply).await?;
    println!("reply     → {} through {} (provider id {:?})", sent.channel, sent.endpoint, sent.provider_message_ids());

    // What the next agent sees, whatever channel they answer on.
    let view = engine.conversation_context(&tenant, third.conversation, TimelinePage::default()).await?;
    println!("\n== context for {} ==", view.customer.name.as_deref().unwrap_or("(no name)"));
    println!("external id : {}", view.customer.external_id.as_deref().unwrap_or("-"));
    println!("identities  :");
    for i in &view.identities {
        let windows: Vec<String> = i
            .reply_windows
            .iter()
            .map(|w| match w.closes_at {
                Some(at) => format!("{} window open={} until {}", w.endpoint, w.open, at.format("%Y-%m-%d %H:%M")),
                None => format!("{} (no reply window)", w.endpoint),
            })
            .collect();
        println!(
            "  {:9} {:28} {:?} {}",
            i.identity.channel.to_string(),
            i.identity.address.value,
            i.identity.verification,
            windows.join("; ")
        );
    }
    println!("channels    : {:?}", view.channels_used);
    println!(
        "open        : {} conversation(s); last agent {:?}",
        view.open_conversations.len(),
        view.last_agent.as_ref().map(|a| a.as_str())
    );
    println!(
        "counts      : {} in / {} out, per channel {:?}",
        view.counts.inbound, view.counts.outbound, view.counts.per_channel
    );
    println!("timeline (newest first):");
    for m in &view.timeline {
        let who = match &m.author {
            Author::Customer(_) => "customer".to_owned(),
            Author::Agent(a) => a.to_string(),
            Author::Bot(b) => format!("bot {b}"),
            Author::System => "system".to_owned(),
        };
        println!("  [{:8}] {:12} {}", m.channel.to_string(), who, m.content.summary());
    }
    Ok(())
}
