//! # touchpoint
//!
//! The channel-agnostic core of a multichannel customer-service system. Hand every inbound
//! contact — web chat, WhatsApp, email, SMS, Messenger, voice — to [`Engine::ingest`] and get back
//! one consistent model: who the customer is across all channels, which conversation the contact
//! belongs to, and the cross-channel [context](context::ContextView) an agent or bot needs.
//!
//! ```
//! use touchpoint::{Engine, context::TimelinePage, model::*};
//! # futures::executor::block_on(async {
//! let engine = Engine::in_memory();
//! let tenant = TenantId::new("acme").unwrap();
//! let chat = InboundMessage::new(
//!     ChannelKind::WebChat,
//!     EndpointId::new("site-widget").unwrap(),
//!     Address::platform("site-widget", "visitor-42"),
//!     "chat-1",
//!     Content::text("Hi, I was double charged"),
//! )
//! .with_claim(CustomerKey::ExternalId("user-42".into()), Verification::Verified);
//! let first = engine.ingest(&tenant, chat).await.unwrap();
//!
//! let mail = InboundMessage::new(
//!     ChannelKind::Email,
//!     EndpointId::new("support-inbox").unwrap(),
//!     Address::email("Ana@Example.com"),
//!     "<m1@example.com>",
//!     Content::text("Following up on the double charge"),
//! )
//! .with_claim(CustomerKey::ExternalId("user-42".into()), Verification::Verified);
//! let second = engine.ingest(&tenant, mail).await.unwrap();
//! assert_eq!(first.customer, second.customer); // one customer across channels
//!
//! let view = engine.customer_context(&tenant, first.customer, TimelinePage::default()).await.unwrap();
//! assert_eq!(view.timeline.len(), 2);
//! assert_eq!(view.identities.len(), 2);
//! # });
//! ```
//!
//! ## Map
//!
//! * [`model`] — plain serde data: customers, identities, conversations, messages, content.
//! * [`store`] — the [`Store`](store::Store) seam and the always-compiled
//!   [`InMemoryStore`](store::InMemoryStore); `testkit` (feature) is the conformance suite.
//! * [`identity`] — address normalisation and customer resolution rules.
//! * [`thread`] — which conversation a message belongs to; reopen policies.
//! * [`context`] — the cross-channel view of a customer.
//! * [`channel`] — the [`Channel`](channel::Channel) trait, per-channel capabilities, rendering
//!   with predictable degradation, SMS segmentation, outbound channel choice, delivery receipts.
//! * [`events`] — domain events as a `futures::Stream`.
//! * [`privacy`] — export and erasure.
//! * [`channels`] — channel kits behind features (`twilio`, `email`, `webchat`): raw webhook
//!   or message bytes → [`InboundMessage`](model::InboundMessage)s and
//!   [`DeliveryReceipt`](channels::DeliveryReceipt)s, and builders for what providers expect.
//! * [`routing`] — agents, queues, plans, capacity, offers and timers: who handles the work;
//!   [`routing::expr`] is its condition language, [`routing::calendar`] its business hours.
//! * [`Engine`] — the facade that composes them.
//!
//! The core picks no async runtime: time comes from an injected [`clock::Clock`], and every
//! future runs on any executor (the tests use `futures::executor`).

#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod channel;
pub mod channels;
pub mod clock;
pub mod context;
mod engine;
mod error;
pub mod events;
mod hash;
pub mod identity;
mod idgen;
pub mod model;
pub mod privacy;
pub mod routing;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod thread;

pub use engine::{
    ConversationPatch, CustomerPatch, Engine, EngineBuilder, EngineConfig, IngestOutcome, MergePlan, OutboundMessage,
    SendOutcome, SendRequest, SentPart, SurvivorRule,
};
pub use error::{Error, Result, SignatureFailure};

/// The README's code blocks, compiled and run as doctests.
#[cfg(all(doctest, feature = "testkit"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
