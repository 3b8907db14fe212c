//! The edge cases of the context-model anchors, §3.6, one test per case (some cases have a
//! companion test for a second consequence of the same case).
//!
//! Coverage of §3.6, and what does not apply to this crate:
//!
//! 1. Phone spellings (Brazil ninth digit, Mexico `+521`, Argentina `+549`, the landline
//!    regression): `brazil_number_with_and_without_ninth_digit_is_one_identity`,
//!    `mexico_number_with_and_without_the_mobile_1_is_one_identity`,
//!    `argentina_number_with_and_without_the_mobile_9_is_one_identity`,
//!    `brazil_landline_is_not_matched_to_a_mobile_with_an_inserted_nine`.
//! 2. `whatsapp_user_id_without_phone_then_phone_change` and
//!    `whatsapp_user_id_with_phone_claim_is_found_by_that_phone_later`.
//! 3. `same_person_on_two_of_our_whatsapp_numbers_gets_one_customer_two_threads`. The crate keys
//!    identities by `(channel, address)` and keeps activity per endpoint, so the two numbers give
//!    one identity with two endpoint activities (and two threads), not two identities.
//! 4. `agent_created_identity_then_inbound_in_other_format` and
//!    `agent_created_identity_then_inbound_continues_the_agents_conversation`. Provider "echo"
//!    webhooks of our own outbound messages are not modelled as inbound messages by this crate,
//!    so only the format drift (and its threading consequence) is tested.
//! 5. `unverified_widget_email_matching_existing_customer_is_not_merged_but_suspected`.
//! 6. `signed_in_user_change_on_shared_device_moves_identity`.
//! 7. `concurrent_first_messages_from_new_customer_make_one_customer_one_conversation` and
//!    `concurrent_first_messages_on_two_channels_make_one_customer`.
//! 8. `retried_webhook_is_stored_once`. (The Redis "under process" key of Chatwoot is an
//!    implementation detail; the store's dedupe key inside the commit replaces it.)
//! 9. `newsletter_replies_sharing_in_reply_to_split_per_sender`.
//! 10. `follow_up_after_customer_merge_lands_on_survivor`. The crate merges customers, not
//!     conversations, so Zammad's "follow-up to a merged *ticket*" has no counterpart; the follow-up
//!     to a conversation of a merged customer is tested.
//! 11. `inbound_after_merge_uses_alias`, `inbound_after_erasure_starts_a_new_customer`,
//!     `merged_alias_of_an_erased_customer_reports_erased`.
//! 12. `reply_window_expired_while_conversation_open_requires_template` (includes CSAT after 24 h).
//! 13. `closed_conversation_releases_its_session` and
//!     `closed_conversation_releases_its_provider_thread_key`. Twilio's error codes 50416/48031
//!     are provider specifics; the generic rule is tested.
//! 14. `blocked_customer_conversation_is_created_resolved` and
//!     `blocked_customer_follow_up_does_not_reopen_or_notify`.
//! 15. `same_email_in_two_tenants_is_two_customers`.
//! 16. `merge_with_overlapping_attributes_and_consent_deduplicates`. The crate has no mention or
//!     label join rows on customers; attributes, consent, identities and the address index are the
//!     join rows it has, and those are checked.
//! 17. `erasure_removes_everything_but_a_tombstone`. Does not apply in part: the crate offers full
//!     erasure only, no "redact but keep the conversation" mode and no legal hold, so only erasure
//!     is tested.

mod common;

use chrono::Duration;
use common::*;
use std::collections::HashSet;
use std::sync::{Arc, Barrier};
use touchpoint::identity::{LinkedBy, Resolution};
use touchpoint::model::*;
use touchpoint::store::LinkKey;
use touchpoint::thread::{OpenReason, ReopenPolicy, ThreadDecision, ThreadReason, ThreadingPolicy};
use touchpoint::{CustomerPatch, Error, IngestOutcome, OutboundMessage, SurvivorRule};

fn session() -> ThreadDecision {
    ThreadDecision::Continued { reason: ThreadReason::Session }
}

fn opened(reason: OpenReason, previous: Option<ConversationId>) -> ThreadDecision {
    ThreadDecision::Opened { reason, previous }
}

fn linked_by_phone() -> Resolution {
    Resolution::Linked { key: LinkedBy::Phone, verification: Verification::CarrierAsserted }
}

// ---------------------------------------------------------------------------------------------
// 1. One number, several spellings
// ---------------------------------------------------------------------------------------------

/// An internationalised mail domain arrives in its Unicode spelling from one client and in its
/// punycode spelling from another: one mailbox, one identity.
#[test]
fn unicode_and_punycode_spellings_of_a_mail_domain_are_one_identity() {
    let h = Harness::new();
    let first = h.ingest(email("Jörg@Bücher.de", "<m1@bücher.de>", "Wo bleibt meine Bestellung?"));
    let second = h.ingest(email("jörg@xn--bcher-kva.de", "<m2@xn--bcher-kva.de>", "Noch eine Frage"));
    assert_eq!(second.identity, first.identity);
    assert_eq!(second.customer, first.customer);
    let identities = h.identities_of(first.customer);
    assert_eq!(identities[0].address.value, "jörg@xn--bcher-kva.de");
    assert_eq!(identities[0].raw_address, "Jörg@Bücher.de", "what the channel reported is kept");
}

#[test]
fn brazil_number_with_and_without_ninth_digit_is_one_identity() {
    let h = Harness::new();
    let first = h.ingest(whatsapp("wa-main", "+55 11 98765-4321", "wamid.1", "Oi, meu pedido não chegou"));
    assert_eq!(first.resolution, Resolution::Created);

    // WhatsApp reports the same subscriber as bare digits without the ninth digit.
    let second = h.ingest(whatsapp("wa-main", "551187654321", "wamid.2", "Alguma novidade?"));
    assert_eq!(second.resolution, Resolution::KnownIdentity);
    assert_eq!(second.identity, first.identity);
    assert_eq!(second.customer, first.customer);
    assert_eq!(second.conversation, first.conversation);
    assert_eq!(second.thread, session());

    // The variant is used for the lookup only: what the channel first reported is stored.
    let identities = h.identities_of(first.customer);
    assert_eq!(identities.len(), 1);
    assert_eq!(identities[0].address.value, "+5511987654321");
    assert_eq!(identities[0].raw_address, "+55 11 98765-4321");

    // The other direction: first without the ninth digit, then with it.
    let old = h.ingest(whatsapp("wa-main", "+55 21 8877-6655", "wamid.3", "Olá"));
    let new = h.ingest(whatsapp("wa-main", "+55 21 98877-6655", "wamid.4", "Olá de novo"));
    assert_eq!(new.identity, old.identity);
    assert_eq!(new.customer, old.customer);
    assert_ne!(new.customer, first.customer);
    assert_eq!(h.identities_of(old.customer)[0].address.value, "+552188776655");
    // A retried webhook in the other spelling is the same message: a duplicate, not a message
    // from "another sender" reusing its id.
    let retry = h.try_ingest(whatsapp("wa-main", "+55 21 98877-6655", "wamid.4", "Olá de novo"));
    assert!(matches!(&retry, Ok(r) if r.duplicate && r.message == new.message), "{retry:?}");

    // An SMS from the other spelling links to the same customer through the carrier-asserted
    // phone (a new identity: identities are per channel).
    let text_msg = h.ingest(sms("sms-main", "+55 11 8765-4321", "SM1", "Mandei por SMS também"));
    assert_eq!(text_msg.customer, first.customer);
    assert_eq!(text_msg.resolution, linked_by_phone());

    assert_eq!(h.count("customers"), 2);
    assert_eq!(h.count("identities"), 3);
}

#[test]
fn mexico_number_with_and_without_the_mobile_1_is_one_identity() {
    let h = Harness::new();
    let first = h.ingest(whatsapp("wa-mx", "+52 1 55 1234 5678", "wamid.mx1", "Hola"));
    let second = h.ingest(whatsapp("wa-mx", "+52 55 1234 5678", "wamid.mx2", "¿Hay novedades?"));
    assert_eq!(second.identity, first.identity);
    assert_eq!(second.customer, first.customer);
    assert_eq!(second.resolution, Resolution::KnownIdentity);
    assert_eq!(second.conversation, first.conversation);
    assert_eq!(h.count("customers"), 1);
    assert_eq!(h.count("identities"), 1);
}

#[test]
fn argentina_number_with_and_without_the_mobile_9_is_one_identity() {
    let h = Harness::new();
    // WhatsApp spells Argentine mobiles with the 9; an SMS gateway or an agent often without it.
    let first = h.ingest(whatsapp("wa-ar", "5491123456789", "wamid.ar1", "Hola"));
    let second = h.ingest(whatsapp("wa-ar", "+54 11 2345-6789", "wamid.ar2", "¿Novedades?"));
    assert_eq!(second.identity, first.identity);
    assert_eq!(second.customer, first.customer);
    assert_eq!(second.resolution, Resolution::KnownIdentity);
    assert_eq!(h.count("customers"), 1);
    assert_eq!(h.count("identities"), 1);
}

#[test]
fn brazil_landline_is_not_matched_to_a_mobile_with_an_inserted_nine() {
    // Chatwoot PR #14657: a 12-digit landline must not become a mobile by inserting a 9.
    let h = Harness::new();
    let landline = h.ingest(whatsapp("wa-main", "+55 11 3265-4321", "wamid.l1", "Escritório aqui"));
    let mobile = h.ingest(whatsapp("wa-main", "+55 11 93265-4321", "wamid.m1", "Celular aqui"));
    assert_eq!(mobile.resolution, Resolution::Created);
    assert_ne!(mobile.identity, landline.identity);
    assert_ne!(mobile.customer, landline.customer);
    assert_ne!(mobile.conversation, landline.conversation);
    assert_eq!(h.count("customers"), 2);
}

// ---------------------------------------------------------------------------------------------
// 2. WhatsApp business-scoped user ids (BSUID)
// ---------------------------------------------------------------------------------------------

#[test]
fn whatsapp_user_id_without_phone_then_phone_change() {
    let h = Harness::new();
    let portfolio = "portfolio-77";
    let old_phone = "+5511987654321";
    let new_phone = "+5511912345678";

    // Before BSUIDs: the customer is known by phone.
    let legacy = h.ingest(whatsapp("wa-main", old_phone, "wamid.1", "Oi"));
    assert_eq!(legacy.resolution, Resolution::Created);

    // Meta starts sending the BSUID, with the phone next to it: linked through the phone.
    let with_phone = h.ingest(
        InboundMessage::new(
            ChannelKind::WhatsApp,
            endpoint("wa-main"),
            Address::platform(portfolio, "BR.11aa22bb"),
            "wamid.2",
            text("Meu pedido?"),
        )
        .with_claim(CustomerKey::Phone(old_phone.into()), Verification::CarrierAsserted),
    );
    assert_eq!(with_phone.customer, legacy.customer);
    assert_eq!(with_phone.resolution, linked_by_phone());
    assert_ne!(with_phone.identity, legacy.identity);

    // The customer adopts a username: the phone is withheld, the BSUID alone still finds them.
    let without_phone = h.ingest(InboundMessage::new(
        ChannelKind::WhatsApp,
        endpoint("wa-main"),
        Address::platform(portfolio, "BR.11aa22bb"),
        "wamid.3",
        text("Ainda esperando"),
    ));
    assert_eq!(without_phone.customer, legacy.customer);
    assert_eq!(without_phone.identity, with_phone.identity);
    assert_eq!(without_phone.resolution, Resolution::KnownIdentity);
    let bsuid = h.identities_of(legacy.customer).into_iter().find(|i| i.id == with_phone.identity).unwrap();
    assert_eq!(
        bsuid.address,
        NormalizedAddress { kind: AddressKind::Platform, value: "portfolio-77:BR.11aa22bb".into() }
    );

    // The same BSUID string under another portfolio is another identity (ids are scoped).
    let other_portfolio = h.ingest(InboundMessage::new(
        ChannelKind::WhatsApp,
        endpoint("wa-other-brand"),
        Address::platform("portfolio-99", "BR.11aa22bb"),
        "wamid.4",
        text("Olá"),
    ));
    assert_ne!(other_portfolio.identity, with_phone.identity);
    assert_ne!(other_portfolio.customer, legacy.customer);
    assert_eq!(other_portfolio.resolution, Resolution::Created);

    // She changes her number: a new BSUID arrives with the new phone. Nothing known matches it
    // until the agent records the new number (a verified address of hers) …
    let linked = run(h.engine.link_identity(
        &h.tenant,
        legacy.customer,
        ChannelKind::WhatsApp,
        Address::phone("+55 11 91234-5678"),
        Verification::Verified,
    ))
    .unwrap();
    assert_eq!(linked.address.value, new_phone);
    // … after which the new BSUID links to her through the phone that came with it.
    let after_change = h.ingest(
        InboundMessage::new(
            ChannelKind::WhatsApp,
            endpoint("wa-main"),
            Address::platform(portfolio, "BR.99zz88yy"),
            "wamid.5",
            text("Troquei de número"),
        )
        .with_claim(CustomerKey::Phone(new_phone.into()), Verification::CarrierAsserted),
    );
    assert_eq!(after_change.customer, legacy.customer);
    assert_eq!(after_change.resolution, linked_by_phone());
    assert_ne!(after_change.identity, with_phone.identity);

    // The old BSUID still resolves to her (late webhooks).
    let late = h.ingest(InboundMessage::new(
        ChannelKind::WhatsApp,
        endpoint("wa-main"),
        Address::platform(portfolio, "BR.11aa22bb"),
        "wamid.6",
        text("mensagem atrasada"),
    ));
    assert_eq!(late.customer, legacy.customer);

    // A new BSUID with an unknown phone is nobody we know: never guessed onto her.
    let stranger = h.ingest(
        InboundMessage::new(
            ChannelKind::WhatsApp,
            endpoint("wa-main"),
            Address::platform(portfolio, "BR.00xx00xx"),
            "wamid.7",
            text("Oi"),
        )
        .with_claim(CustomerKey::Phone("+5521998877665".into()), Verification::CarrierAsserted),
    );
    assert_eq!(stranger.resolution, Resolution::Created);
    assert_ne!(stranger.customer, legacy.customer);

    // Hers: the old phone, the old BSUID, the new phone, the new BSUID.
    assert_eq!(h.identities_of(legacy.customer).len(), 4);
}

#[test]
fn whatsapp_user_id_with_phone_claim_is_found_by_that_phone_later() {
    // First contact after the BSUID rollout: Meta sends the BSUID as the sender and asserts the
    // phone next to it. The phone is a key of this person from then on: an SMS from it (or a
    // phone-addressed WhatsApp webhook from a provider that still sends `wa_id`) is the same
    // customer, before and after the phone is withheld.
    let h = Harness::new();
    let phone = "+5511987654321";
    let first = h.ingest(
        InboundMessage::new(
            ChannelKind::WhatsApp,
            endpoint("wa-main"),
            Address::platform("portfolio-77", "BR.11aa22bb"),
            "wamid.1",
            text("Oi"),
        )
        .with_claim(CustomerKey::Phone(phone.into()), Verification::CarrierAsserted),
    );
    assert_eq!(first.resolution, Resolution::Created);

    let by_sms = h.ingest(sms("sms-main", phone, "SM1", "Mandei por SMS"));
    assert_eq!(by_sms.customer, first.customer, "resolution: {:?}", by_sms.resolution);
    assert_eq!(by_sms.resolution, linked_by_phone());
    let by_wa_id = h.ingest(whatsapp("wa-main", "551187654321", "wamid.2", "Pelo número"));
    assert_eq!(by_wa_id.customer, first.customer, "resolution: {:?}", by_wa_id.resolution);
    assert_eq!(h.count("customers"), 1);
}

// ---------------------------------------------------------------------------------------------
// 3. Two of our WhatsApp numbers
// ---------------------------------------------------------------------------------------------

#[test]
fn same_person_on_two_of_our_whatsapp_numbers_gets_one_customer_two_threads() {
    let h = Harness::new();
    let phone = "+447700900123";
    let sales = h.ingest(whatsapp("wa-sales", phone, "wamid.s1", "Do you ship to Porto?"));
    let support = h.ingest(whatsapp("wa-support", phone, "wamid.p1", "My last parcel arrived broken"));

    assert_eq!(support.customer, sales.customer);
    assert_eq!(support.identity, sales.identity);
    assert_eq!(support.resolution, Resolution::KnownIdentity);
    assert_ne!(support.conversation, sales.conversation);
    assert_eq!(support.thread, opened(OpenReason::NoMatch, None));

    // Each number continues its own thread.
    let s2 = h.ingest(whatsapp("wa-sales", phone, "wamid.s2", "And to Lisbon?"));
    let p2 = h.ingest(whatsapp("wa-support", phone, "wamid.p2", "Photo attached"));
    assert_eq!((s2.conversation, s2.thread), (sales.conversation, session()));
    assert_eq!((p2.conversation, p2.thread), (support.conversation, session()));

    assert_eq!(h.count("customers"), 1);
    assert_eq!(h.count("identities"), 1);
    assert_eq!(h.count("conversations"), 2);
    let identity = &h.identities_of(sales.customer)[0];
    let mut endpoints: Vec<&str> = identity.endpoints.iter().map(|e| e.endpoint.as_str()).collect();
    endpoints.sort();
    assert_eq!(endpoints, ["wa-sales", "wa-support"]);

    // Reply windows are per number: only the number she wrote to recently is open.
    h.advance(Duration::hours(20));
    h.ingest(whatsapp("wa-sales", phone, "wamid.s3", "Thanks"));
    h.advance(Duration::hours(5));
    let closed = h.outbound(support.conversation, OutboundMessage::agent(agent("maria"), text("Sorry about that!")));
    assert!(matches!(closed, Err(Error::ReplyWindowClosed { channel: ChannelKind::WhatsApp, .. })), "{closed:?}");
    let open = h.outbound(sales.conversation, OutboundMessage::agent(agent("joao"), text("You're welcome")));
    let open = open.unwrap();
    assert_eq!(open.endpoint, endpoint("wa-sales"));

    let view = h.context(sales.customer);
    assert_eq!(view.identities.len(), 1);
    let windows = &view.identities[0].reply_windows;
    let state = |e: &str| windows.iter().find(|w| w.endpoint.as_str() == e).unwrap().open;
    assert!(state("wa-sales"));
    assert!(!state("wa-support"));
    assert_eq!(view.open_conversations.len(), 2);
}

// ---------------------------------------------------------------------------------------------
// 4. Identity created by an agent before any inbound
// ---------------------------------------------------------------------------------------------

/// A customer known by email, whose WhatsApp number an agent records as she typed it, and to whom
/// the agent sends a template on WhatsApp before she ever wrote there.
fn agent_first_setup(h: &Harness) -> (IngestOutcome, Identity, Message) {
    let mail = h.ingest(
        email("ana@example.com", "<a1@mail.example.com>", "Please message me on WhatsApp: +55 (11) 98765-4321")
            .with_verification(Verification::Verified),
    );
    let linked = run(h.engine.link_identity(
        &h.tenant,
        mail.customer,
        ChannelKind::WhatsApp,
        Address::phone("+55 (11) 98765-4321"),
        Verification::Verified,
    ))
    .unwrap();
    let out = h
        .outbound(
            mail.conversation,
            OutboundMessage::agent(agent("maria"), template("order_update"))
                .via(endpoint("wa-main"), linked.id)
                .with_external_id("wamid.out1"),
        )
        .unwrap();
    (mail, linked, out)
}

#[test]
fn agent_created_identity_then_inbound_in_other_format() {
    let h = Harness::new();
    let (mail, linked, out) = agent_first_setup(&h);
    assert_eq!(linked.address.value, "+5511987654321");
    assert_eq!(linked.raw_address, "+55 (11) 98765-4321");
    assert_eq!(out.channel, ChannelKind::WhatsApp);

    // She answers; WhatsApp spells her number as bare digits without the ninth digit.
    h.advance(Duration::minutes(10));
    let reply = h.ingest(whatsapp("wa-main", "551187654321", "wamid.in1", "Oi, recebi a mensagem"));
    assert_eq!(reply.resolution, Resolution::KnownIdentity);
    assert_eq!(reply.identity, linked.id);
    assert_eq!(reply.customer, mail.customer);
    assert_eq!(h.count("customers"), 1);
    assert_eq!(h.count("identities"), 2);

    // Recording the number again in yet another spelling finds the same identity.
    let again = run(h.engine.link_identity(
        &h.tenant,
        mail.customer,
        ChannelKind::WhatsApp,
        Address::phone("5511987654321"),
        Verification::Verified,
    ))
    .unwrap();
    assert_eq!(again.id, linked.id);
    assert_eq!(h.count("identities"), 2);
}

#[test]
fn agent_created_identity_then_inbound_continues_the_agents_conversation() {
    // Chatwoot #13986: the agent's outbound and the customer's inbound must not end up in two
    // conversations. Her reply through the (endpoint, identity) the agent wrote through continues
    // the conversation the agent wrote in.
    let h = Harness::new();
    let (mail, linked, _) = agent_first_setup(&h);
    h.advance(Duration::minutes(10));
    let reply = h.ingest(whatsapp("wa-main", "551187654321", "wamid.in1", "Oi, recebi a mensagem"));
    assert_eq!(reply.identity, linked.id);
    assert_eq!(reply.conversation, mail.conversation, "thread decision: {:?}", reply.thread);
    assert_eq!(h.count("conversations"), 1);
}

// ---------------------------------------------------------------------------------------------
// 5. Unverified widget email
// ---------------------------------------------------------------------------------------------

#[test]
fn unverified_widget_email_matching_existing_customer_is_not_merged_but_suspected() {
    let h = Harness::new();
    // Ana: a verified email (DKIM-aligned mail) and WhatsApp, with a private history.
    let ana = h.ingest(
        email("ana@example.com", "<a1@mail.example.com>", "My card ending 4242 was charged twice")
            .with_verification(Verification::Verified),
    );
    run(h.engine.link_identity(
        &h.tenant,
        ana.customer,
        ChannelKind::WhatsApp,
        Address::phone("+5511987654321"),
        Verification::Verified,
    ))
    .unwrap();
    let ana_conversation = h.conversation(ana.conversation);

    // Someone types Ana's email into the web widget's pre-chat form and tries to thread into her
    // conversation with her Message-ID and her reply token.
    let visitor = h.ingest(
        webchat("visitor-9", "chat-1", "Hi, what did I buy last month?")
            .with_claim(CustomerKey::Email("ANA@Example.com".into()), Verification::Unverified)
            .with_thread(ThreadHints {
                reply_token: Some(ana_conversation.reply_token.clone()),
                in_reply_to: Some("<a1@mail.example.com>".into()),
                ..ThreadHints::default()
            }),
    );
    assert_eq!(visitor.resolution, Resolution::Created);
    assert_ne!(visitor.customer, ana.customer);
    assert_eq!(visitor.suspected_duplicates, vec![ana.customer]);
    assert_ne!(visitor.conversation, ana.conversation);
    assert_eq!(visitor.thread, opened(OpenReason::NoMatch, None));
    assert!(!visitor.notes.is_empty(), "ignored references are explained");
    assert!(h.event_kinds().contains(&touchpoint::events::Event::DuplicateSuspected {
        customer: visitor.customer,
        resembles: ana.customer
    }));

    // The visitor's context shows nothing of Ana's.
    for view in [
        h.context(visitor.customer),
        run(h.engine.conversation_context(&h.tenant, visitor.conversation, Default::default())).unwrap(),
    ] {
        assert_eq!(view.customer.id, visitor.customer);
        assert_eq!(bodies(&view.timeline), ["Hi, what did I buy last month?"]);
        assert!(view.timeline.iter().all(|m| m.conversation == visitor.conversation));
        assert_eq!(view.identities.len(), 1);
        assert_eq!(view.identities[0].identity.address.kind, AddressKind::Platform);
        assert_eq!(view.open_conversations.iter().map(|c| c.id).collect::<Vec<_>>(), [visitor.conversation]);
        assert!(view.past_conversations.is_empty());
        assert_eq!(view.counts.conversations, 1);
        assert_eq!(view.counts.inbound, 1);
    }

    // Ana is untouched.
    assert_eq!(h.identities_of(ana.customer).len(), 2);
    assert_eq!(h.conversation(ana.conversation).message_count, 1);
    assert_eq!(h.timeline(ana.customer).len(), 1);

    // Saying it again does not make it true.
    let again = h.ingest(
        webchat("visitor-9", "chat-2", "I am Ana, really")
            .with_claim(CustomerKey::Email("ana@example.com".into()), Verification::Unverified),
    );
    assert_eq!(again.customer, visitor.customer);
    assert_eq!(again.suspected_duplicates, vec![ana.customer]);
    assert_eq!(h.count("customers"), 2);
    // ...and is announced once, however often it is said: the visitor's record keeps it.
    let raised = |h: &Harness| {
        h.event_kinds().iter().filter(|e| matches!(e, touchpoint::events::Event::DuplicateSuspected { .. })).count()
    };
    assert_eq!(raised(&h), 1);
    assert_eq!(h.customer(visitor.customer).suspected_duplicates, [ana.customer]);
    assert!(h.customer(ana.customer).suspected_duplicates.is_empty());
}

#[test]
fn a_suspicion_is_raised_once_per_pair_and_a_merge_settles_it() {
    let h = Harness::new();
    let ana = h.ingest(email("ana@example.com", "<a1@ana.example>", "Hi").with_verification(Verification::Verified));
    let bia = h.ingest(email("bia@example.com", "<b1@bia.example>", "Hi").with_verification(Verification::Verified));
    let suspected = |h: &Harness| -> Vec<(CustomerId, CustomerId)> {
        h.event_kinds()
            .iter()
            .filter_map(|e| match e {
                touchpoint::events::Event::DuplicateSuspected { customer, resembles } => Some((*customer, *resembles)),
                _ => None,
            })
            .collect()
    };
    let claim = |id: &str, body: &str, email: &str| {
        webchat("visitor-7", id, body).with_claim(CustomerKey::Email(email.into()), Verification::Unverified)
    };
    let v = h.ingest(claim("chat-1", "Hi", "ana@example.com"));
    h.ingest(claim("chat-2", "Still me", "ana@example.com"));
    assert_eq!(suspected(&h), [(v.customer, ana.customer)]);
    // Another customer's address is a new suspicion, raised once as well.
    let third = h.ingest(claim("chat-3", "Or this one", "bia@example.com"));
    assert_eq!(third.suspected_duplicates, [bia.customer]);
    h.ingest(claim("chat-4", "Again", "bia@example.com"));
    assert_eq!(suspected(&h), [(v.customer, ana.customer), (v.customer, bia.customer)]);
    assert_eq!(h.customer(v.customer).suspected_duplicates, [ana.customer, bia.customer]);

    // The host decides the visitor is Ana: the merge settles that suspicion, the other stays.
    run(h.engine.merge_customers(&h.tenant, ana.customer, v.customer, SurvivorRule::First)).unwrap();
    let survivor = h.customer(ana.customer);
    assert_eq!(survivor.suspected_duplicates, [bia.customer]);
    // An erased customer's tombstone keeps no suspicion.
    run(h.engine.erase_customer(&h.tenant, ana.customer)).unwrap();
    let tombstone = run(h.engine.store().customer(&h.tenant, ana.customer)).unwrap().unwrap();
    assert!(tombstone.suspected_duplicates.is_empty());
}

#[test]
fn a_verified_claim_of_another_customers_address_from_a_known_visitor_is_a_suspicion() {
    let h = Harness::new();
    let ana = h.ingest(email("ana@example.com", "<a1@ana.example>", "Hi").with_verification(Verification::Verified));
    let visitor = h.ingest(webchat("visitor-3", "chat-1", "Hello"));
    assert_ne!(visitor.customer, ana.customer);
    // The host's pre-chat form verified Ana's address for this known visitor: the visitor's
    // identity keeps its customer (an exact match wins), and the address, Ana's, does not
    // move; the two customers now resemble each other, as with an unverified claim.
    let claimed = h.ingest(
        webchat("visitor-3", "chat-2", "It's Ana")
            .with_claim(CustomerKey::Email("ana@example.com".into()), Verification::Verified),
    );
    assert_eq!(claimed.resolution, Resolution::KnownIdentity);
    assert_eq!(claimed.customer, visitor.customer);
    assert_eq!(claimed.suspected_duplicates, [ana.customer]);
    assert_eq!(h.customer(visitor.customer).suspected_duplicates, [ana.customer]);
    assert!(h.event_kinds().contains(&touchpoint::events::Event::DuplicateSuspected {
        customer: visitor.customer,
        resembles: ana.customer
    }));
    assert_eq!(h.identities_of(visitor.customer).len(), 1, "Ana's address stays hers");
    assert_eq!(h.identities_of(ana.customer).len(), 1);
}

// ---------------------------------------------------------------------------------------------
// 6. Shared device, sign-in changes
// ---------------------------------------------------------------------------------------------

#[test]
fn signed_in_user_change_on_shared_device_moves_identity() {
    let h = Harness::new();
    let signed_in = |id: &str, user: &str, body: &str| {
        webchat("family-laptop", id, body).with_claim(CustomerKey::ExternalId(user.into()), Verification::Verified)
    };
    let ana = h.ingest(signed_in("c1", "user-ana", "Where is my order 1042?"));
    assert_eq!(ana.resolution, Resolution::Created);
    assert_eq!(h.customer(ana.customer).external_id.as_deref(), Some("user-ana"));

    // Bruno signs in on the same browser: same visitor token, another verified user.
    let bruno = h.ingest(signed_in("c2", "user-bruno", "I want to cancel my subscription"));
    assert_eq!(bruno.identity, ana.identity);
    assert_ne!(bruno.customer, ana.customer);
    assert_eq!(bruno.resolution, Resolution::Moved { from: ana.customer });
    assert_ne!(bruno.conversation, ana.conversation, "the session is reset");
    assert_eq!(bruno.thread, opened(OpenReason::NoMatch, None));
    assert_eq!(h.customer(bruno.customer).external_id.as_deref(), Some("user-bruno"));
    assert!(h.event_kinds().contains(&touchpoint::events::Event::IdentityMoved {
        identity: ana.identity,
        from: ana.customer,
        to: bruno.customer
    }));

    // Neither sees the other's history.
    assert_eq!(bodies(&h.timeline(bruno.customer)), ["I want to cancel my subscription"]);
    assert_eq!(bodies(&h.timeline(ana.customer)), ["Where is my order 1042?"]);
    assert!(h.identities_of(ana.customer).is_empty());
    assert_eq!(h.identities_of(bruno.customer).len(), 1);

    // Ana signs back in: the device moves back and she continues her own conversation.
    let ana_again = h.ingest(signed_in("c3", "user-ana", "Me again"));
    assert_eq!(ana_again.customer, ana.customer);
    assert_eq!(ana_again.resolution, Resolution::Moved { from: bruno.customer });
    assert_eq!(ana_again.conversation, ana.conversation);
    assert_eq!(bodies(&h.timeline(ana.customer)), ["Me again", "Where is my order 1042?"]);
    assert_eq!(h.timeline(bruno.customer).len(), 1);
    assert_eq!(h.count("customers"), 2);
}

// ---------------------------------------------------------------------------------------------
// 7. Concurrent first messages
// ---------------------------------------------------------------------------------------------

fn ingest_concurrently(h: &Harness, messages: Vec<InboundMessage>) -> Vec<IngestOutcome> {
    let barrier = Arc::new(Barrier::new(messages.len()));
    let handles: Vec<_> = messages
        .into_iter()
        .map(|msg| {
            let (engine, tenant, barrier) = (h.engine.clone(), h.tenant.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                run(engine.ingest(&tenant, msg))
            })
        })
        .collect();
    handles.into_iter().map(|t| t.join().expect("thread").expect("ingest")).collect()
}

#[test]
fn concurrent_first_messages_from_new_customer_make_one_customer_one_conversation() {
    let h = Harness::new();
    let n = 8;
    let messages =
        (0..n).map(|i| whatsapp("wa-main", "+447700900123", &format!("wamid.c{i}"), &format!("part {i}"))).collect();
    let outcomes = ingest_concurrently(&h, messages);

    let customers: HashSet<_> = outcomes.iter().map(|o| o.customer).collect();
    let identities: HashSet<_> = outcomes.iter().map(|o| o.identity).collect();
    let conversations: HashSet<_> = outcomes.iter().map(|o| o.conversation).collect();
    let messages: HashSet<_> = outcomes.iter().map(|o| o.message).collect();
    assert_eq!((customers.len(), identities.len(), conversations.len(), messages.len()), (1, 1, 1, n));
    assert_eq!(outcomes.iter().filter(|o| o.resolution == Resolution::Created).count(), 1);
    assert_eq!(outcomes.iter().filter(|o| matches!(o.thread, ThreadDecision::Opened { .. })).count(), 1);
    assert!(outcomes.iter().all(|o| !o.duplicate));

    assert_eq!(h.count("customers"), 1);
    assert_eq!(h.count("identities"), 1);
    assert_eq!(h.count("conversations"), 1);
    assert_eq!(h.count("messages"), n);
    let conversation = h.conversation(outcomes[0].conversation);
    assert_eq!(conversation.message_count as usize, n);
    assert_eq!(conversation.channels[0].inbound as usize, n);

    let events = h.event_kinds();
    let count = |f: fn(&touchpoint::events::Event) -> bool| events.iter().filter(|e| f(e)).count();
    assert_eq!(count(|e| matches!(e, touchpoint::events::Event::CustomerCreated { .. })), 1);
    assert_eq!(count(|e| matches!(e, touchpoint::events::Event::ConversationOpened { .. })), 1);
    assert_eq!(count(|e| matches!(e, touchpoint::events::Event::MessageReceived { .. })), n);
}

#[test]
fn concurrent_first_messages_on_two_channels_make_one_customer() {
    let h = Harness::new();
    let outcomes = ingest_concurrently(
        &h,
        vec![
            whatsapp("wa-main", "+447700900123", "wamid.x", "Hi on WhatsApp"),
            sms("sms-main", "+44 7700 900123", "SMx", "Hi by SMS"),
        ],
    );
    assert_eq!(outcomes[0].customer, outcomes[1].customer);
    assert_ne!(outcomes[0].identity, outcomes[1].identity);
    let mut resolutions: Vec<_> = outcomes.iter().map(|o| o.resolution.clone()).collect();
    resolutions.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(resolutions, [Resolution::Created, linked_by_phone()]);
    assert_eq!(h.count("customers"), 1);
    assert_eq!(h.count("identities"), 2);
    assert_eq!(h.count("conversations"), 2, "one session per channel");
}

// ---------------------------------------------------------------------------------------------
// 8. Retried webhooks
// ---------------------------------------------------------------------------------------------

#[test]
fn retried_webhook_is_stored_once() {
    let h = Harness::new();
    let msg = whatsapp("wa-main", "+447700900123", "wamid.HBgM1", "Where is my parcel?");
    let first = h.ingest(msg.clone());
    assert!(!first.duplicate);
    let before = h.dump();

    h.advance(Duration::minutes(3));
    let retry = h.ingest(msg.clone());
    assert!(retry.duplicate);
    assert_eq!(
        (retry.message, retry.customer, retry.identity, retry.conversation),
        (first.message, first.customer, first.identity, first.conversation)
    );
    assert_eq!(retry.resolution, Resolution::Duplicate);
    assert_eq!(retry.thread, ThreadDecision::Duplicate);
    assert_eq!(h.dump(), before, "a retry changes nothing, not even the outbox");

    // A retry whose payload was re-rendered is still the same message: the first copy stays.
    let mut rerendered = msg.clone();
    rerendered.content = text("Where is my parcel??");
    rerendered.sender_name = Some("Ana".into());
    let retry2 = h.ingest(rerendered);
    assert!(retry2.duplicate);
    assert_eq!(retry2.message, first.message);
    assert_eq!(h.message(first.message).content, text("Where is my parcel?"));
    assert_eq!(h.dump(), before);

    // Concurrent deliveries of one new webhook: exactly one is stored.
    let outcomes = ingest_concurrently(
        &h,
        (0..6).map(|_| whatsapp("wa-main", "+447700900123", "wamid.HBgM2", "Hello?")).collect(),
    );
    assert_eq!(outcomes.iter().filter(|o| !o.duplicate).count(), 1);
    assert_eq!(outcomes.iter().map(|o| o.message).collect::<HashSet<_>>().len(), 1);
    assert_eq!(h.count("messages"), 2);
    assert_eq!(h.conversation(first.conversation).message_count, 2);

    // The idempotency key is per channel: the same id on SMS is another message.
    let other_channel = h.ingest(sms("sms-main", "+447700900123", "wamid.HBgM1", "Hi by SMS"));
    assert!(!other_channel.duplicate);
    assert_eq!(h.count("messages"), 3);
}

// ---------------------------------------------------------------------------------------------
// 9. Newsletter replies
// ---------------------------------------------------------------------------------------------

#[test]
fn newsletter_replies_sharing_in_reply_to_split_per_sender() {
    let h = Harness::new();
    let newsletter = "<newsletter-42@shop.example>";
    let ana = h.ingest(email("ana@example.com", "<a1@ana.example>", "Subscribe me"));
    // The announcement goes out from Ana's conversation; its Message-ID is registered there.
    h.outbound(
        ana.conversation,
        OutboundMessage::agent(agent("maria"), text("Our spring sale starts today")).with_external_id(newsletter),
    )
    .unwrap();

    let bob = h.ingest(email_reply("bob@example.com", "<b1@bob.example>", newsletter, &[newsletter], "Unsubscribe"));
    let carol =
        h.ingest(email_reply("carol@example.com", "<c1@carol.example>", newsletter, &[newsletter], "Any discounts?"));
    let ana_reply = h.ingest(email_reply("ana@example.com", "<a2@ana.example>", newsletter, &[newsletter], "Nice!"));

    let customers: HashSet<_> = [ana.customer, bob.customer, carol.customer].into();
    let conversations: HashSet<_> = [ana.conversation, bob.conversation, carol.conversation].into();
    assert_eq!((customers.len(), conversations.len()), (3, 3));
    for other in [&bob, &carol] {
        assert_eq!(other.thread, opened(OpenReason::NoMatch, None));
        assert!(!other.notes.is_empty(), "the ignored reference is explained");
    }
    assert_eq!(ana_reply.conversation, ana.conversation);
    assert_eq!(ana_reply.thread, ThreadDecision::Continued { reason: ThreadReason::EmailReference });

    // Bob's follow-up threads on his own Message-ID.
    let bob2 = h.ingest(email_reply(
        "bob@example.com",
        "<b2@bob.example>",
        "<b1@bob.example>",
        &[newsletter, "<b1@bob.example>"],
        "Please confirm",
    ));
    assert_eq!(bob2.conversation, bob.conversation);
    assert_eq!(bob2.thread, ThreadDecision::Continued { reason: ThreadReason::EmailReference });

    assert_eq!(h.conversation(ana.conversation).message_count, 3);
    assert_eq!(h.conversation(bob.conversation).message_count, 2);
    assert_eq!(h.conversation(carol.conversation).message_count, 1);
    assert_eq!(bodies(&h.timeline(carol.customer)), ["Any discounts?"]);
}

// ---------------------------------------------------------------------------------------------
// 10 and 11. Merges and erasure
// ---------------------------------------------------------------------------------------------

#[test]
fn follow_up_after_customer_merge_lands_on_survivor() {
    let h = Harness::new();
    let mail = h.ingest(
        email("ana@example.com", "<a1@ana.example>", "Invoice question").with_verification(Verification::Verified),
    );
    let wa = h.ingest(whatsapp("wa-main", "+5511987654321", "wamid.1", "It's Ana, about the invoice"));
    assert_ne!(mail.customer, wa.customer);

    let plan = run(h.engine.merge_customers(&h.tenant, mail.customer, wa.customer, SurvivorRule::First)).unwrap();
    assert_eq!((plan.survivor, plan.absorbed), (mail.customer, wa.customer));
    assert_eq!(plan.conversations_moved, vec![wa.conversation]);
    assert_eq!(h.conversation(wa.conversation).customer, mail.customer);

    // A follow-up on WhatsApp continues the moved conversation, under the survivor.
    h.advance(Duration::minutes(5));
    let wa2 = h.ingest(whatsapp("wa-main", "+5511987654321", "wamid.2", "Any news?"));
    assert_eq!(wa2.customer, mail.customer);
    assert_eq!(wa2.identity, wa.identity);
    assert_eq!(wa2.resolution, Resolution::KnownIdentity);
    assert_eq!((wa2.conversation, wa2.thread), (wa.conversation, session()));

    // A follow-up by email threads on its reference, under the survivor.
    let mail2 = h.ingest(email_reply("ana@example.com", "<a2@ana.example>", "<a1@ana.example>", &[], "Hello?"));
    assert_eq!(mail2.customer, mail.customer);
    assert_eq!(mail2.conversation, mail.conversation);

    let view = h.context(wa.customer);
    assert_eq!(view.customer.id, mail.customer);
    assert_eq!(view.timeline.len(), 4);
    assert_eq!(view.counts.conversations, 2);
    assert_eq!(view.identities.len(), 2);
}

#[test]
fn inbound_after_merge_uses_alias() {
    let h = Harness::new();
    let ana = h.ingest(email("ana@example.com", "<a1@ana.example>", "Hello").with_verification(Verification::Verified));
    let chat_msg = webchat("visitor-1", "chat-1", "Hi, signed in")
        .with_claim(CustomerKey::ExternalId("user-ana".into()), Verification::Verified);
    let chat = h.ingest(chat_msg.clone());
    assert_ne!(chat.customer, ana.customer);

    let plan = run(h.engine.merge_customers(&h.tenant, ana.customer, chat.customer, SurvivorRule::First)).unwrap();
    assert_eq!(plan.survivor, ana.customer);
    assert_eq!(plan.result.external_id.as_deref(), Some("user-ana"), "blanks are filled from the absorbed");

    // The absorbed id is an alias of the survivor everywhere.
    assert_eq!(h.customer(chat.customer).id, ana.customer);
    assert_eq!(h.context(chat.customer).customer.id, ana.customer);
    assert_eq!(run(h.engine.export_customer(&h.tenant, chat.customer)).unwrap().customer.id, ana.customer);
    let renamed = run(h.engine.update_customer(
        &h.tenant,
        chat.customer,
        CustomerPatch { name: Some(Some("Ana Souza".into())), ..Default::default() },
    ))
    .unwrap();
    assert_eq!(renamed.id, ana.customer);
    assert_eq!(h.customer(ana.customer).name.as_deref(), Some("Ana Souza"));
    let alias = run(h.engine.store().customer(&h.tenant, chat.customer)).unwrap().unwrap();
    assert!(matches!(alias.state, CustomerState::Merged { into, .. } if into == ana.customer));

    // Late traffic for the absorbed customer lands on the survivor.
    let retry = h.ingest(chat_msg);
    assert!(retry.duplicate);
    assert_eq!(retry.customer, ana.customer);
    let same_device = h.ingest(webchat("visitor-1", "chat-2", "Still there?"));
    assert_eq!(same_device.customer, ana.customer);
    assert_eq!(same_device.conversation, chat.conversation);
    let new_device = h.ingest(
        webchat("visitor-2", "chat-3", "From my phone")
            .with_claim(CustomerKey::ExternalId("user-ana".into()), Verification::Verified),
    );
    assert_eq!(new_device.customer, ana.customer);
    assert_eq!(
        new_device.resolution,
        Resolution::Linked { key: LinkedBy::ExternalId, verification: Verification::Verified }
    );
    assert_eq!(h.count("customers"), 2, "the survivor and the alias");

    // Merging the alias with its survivor is merging a customer with itself.
    let again = run(h.engine.merge_customers(&h.tenant, ana.customer, chat.customer, SurvivorRule::First));
    assert!(matches!(again, Err(Error::InvalidInput { .. })), "{again:?}");
}

#[test]
fn inbound_after_erasure_starts_a_new_customer() {
    let h = Harness::new();
    let wa = h.ingest(whatsapp("wa-main", "+5511987654321", "wamid.1", "Please delete my data"));
    let mail = h.ingest(
        email("ana@example.com", "<a1@ana.example>", "Confirming by email").with_verification(Verification::Verified),
    );
    run(h.engine.merge_customers(&h.tenant, wa.customer, mail.customer, SurvivorRule::First)).unwrap();
    let report = run(h.engine.erase_customer(&h.tenant, wa.customer)).unwrap();
    assert_eq!((report.customer, report.identities, report.conversations, report.messages), (wa.customer, 2, 2, 2));

    h.advance(Duration::days(30));
    let back = h.ingest(whatsapp("wa-main", "+5511987654321", "wamid.2", "Hi, I'm back"));
    assert_eq!(back.resolution, Resolution::Created);
    assert_ne!(back.customer, wa.customer);
    assert_ne!(back.identity, wa.identity);
    assert_ne!(back.conversation, wa.conversation);
    assert_eq!(back.thread, opened(OpenReason::NoMatch, None));
    assert!(back.suspected_duplicates.is_empty());

    // A reply to the erased conversation's Message-ID finds nothing to continue.
    let mail_back = h.ingest(email_reply("ana@example.com", "<a2@ana.example>", "<a1@ana.example>", &[], "Hello?"));
    assert_eq!(mail_back.thread, opened(OpenReason::NoMatch, None));
    assert_ne!(mail_back.conversation, mail.conversation);
    assert_ne!(mail_back.customer, wa.customer);

    assert!(matches!(run(h.engine.customer(&h.tenant, wa.customer)), Err(Error::Erased(_))));
    let ctx = run(h.engine.customer_context(&h.tenant, wa.customer, Default::default()));
    assert!(matches!(ctx, Err(Error::Erased(_))), "{ctx:?}");
    assert!(matches!(
        h.outbound(wa.conversation, OutboundMessage::agent(agent("maria"), text("hi"))),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(bodies(&h.timeline(back.customer)), ["Hi, I'm back"]);
}

#[test]
fn a_survivor_names_every_customer_merged_into_it_through_chains() {
    let h = Harness::new();
    let a = h.ingest(whatsapp("wa-main", "+5511987654321", "wamid.1", "Hi"));
    let b = h.ingest(email("ana@example.com", "<a1@ana.example>", "Hi"));
    let c = h.ingest(whatsapp("wa-main", "+5511912345678", "wamid.2", "Hi again"));
    // b absorbs c, then a absorbs b: c resolves to a through b, and a names both.
    let first = run(h.engine.merge_customers(&h.tenant, b.customer, c.customer, SurvivorRule::First)).unwrap();
    assert_eq!(first.result.merged_from, [c.customer]);
    run(h.engine.merge_customers(&h.tenant, a.customer, b.customer, SurvivorRule::First)).unwrap();
    let survivor = run(h.engine.customer(&h.tenant, c.customer)).unwrap();
    assert_eq!(survivor.id, a.customer);
    assert_eq!(survivor.merged_from, [b.customer, c.customer]);
    // An erased survivor's tombstone names nobody.
    run(h.engine.erase_customer(&h.tenant, a.customer)).unwrap();
    let tombstone = run(h.engine.store().customer(&h.tenant, a.customer)).unwrap().unwrap();
    assert!(tombstone.merged_from.is_empty());
}

#[test]
fn merged_alias_of_an_erased_customer_reports_erased() {
    let h = Harness::new();
    let a = h.ingest(whatsapp("wa-main", "+5511987654321", "wamid.1", "Hi"));
    let b = h.ingest(email("ana@example.com", "<a1@ana.example>", "Hi"));
    run(h.engine.merge_customers(&h.tenant, a.customer, b.customer, SurvivorRule::First)).unwrap();
    run(h.engine.erase_customer(&h.tenant, a.customer)).unwrap();
    // The absorbed id leads to an erased person: that is `Erased`, not "never existed".
    let via_alias = run(h.engine.customer(&h.tenant, b.customer));
    assert!(matches!(via_alias, Err(Error::Erased(_))), "{via_alias:?}");
}

// ---------------------------------------------------------------------------------------------
// 12. Reply window expired in an open conversation
// ---------------------------------------------------------------------------------------------

#[test]
fn reply_window_expired_while_conversation_open_requires_template() {
    let h = Harness::new();
    let start = h.now();
    let inbound = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "My order is late"));
    h.advance(Duration::hours(1));
    h.outbound(inbound.conversation, OutboundMessage::agent(agent("maria"), text("Looking into it"))).unwrap();

    // A day later the conversation is still open, but the window has closed.
    h.clock.set(start + Duration::hours(24) + Duration::minutes(1));
    assert!(h.conversation(inbound.conversation).status.is_open());
    let before = h.dump();
    let free_text = h.outbound(inbound.conversation, OutboundMessage::agent(agent("maria"), text("Update: shipped")));
    assert!(matches!(free_text, Err(Error::ReplyWindowClosed { channel: ChannelKind::WhatsApp, .. })), "{free_text:?}");
    assert_eq!(h.dump(), before, "refused before anything is stored");

    let view = h.context(inbound.customer);
    let window = &view.identities[0].reply_windows[0];
    assert!(!window.open);
    assert_eq!(window.closes_at, Some(start + Duration::hours(24)));

    // The template path works: an agent's update, and a CSAT survey by a bot after 24 h.
    let update =
        h.outbound(inbound.conversation, OutboundMessage::agent(agent("maria"), template("order_shipped"))).unwrap();
    assert!(matches!(update.content, Content::Template { .. }));
    h.outbound(inbound.conversation, OutboundMessage::bot(agent("csat-bot"), template("csat_survey"))).unwrap();
    assert_eq!(h.conversation(inbound.conversation).message_count, 4);

    // When she answers, the window reopens for free text.
    h.ingest(whatsapp("wa-main", "+447700900123", "wamid.2", "Thanks, 5 stars"));
    h.outbound(inbound.conversation, OutboundMessage::agent(agent("maria"), text("Thank you!"))).unwrap();
}

// ---------------------------------------------------------------------------------------------
// 13. Closed conversations release their session
// ---------------------------------------------------------------------------------------------

#[test]
fn closed_conversation_releases_its_session() {
    // Even with the most permissive reopen policy, a closed conversation is never reopened.
    let h = Harness::with_threading(ThreadingPolicy { reopen: ReopenPolicy::Reopen, ..ThreadingPolicy::default() });
    let first = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "Hi"));
    h.set_status(first.conversation, ConversationStatus::Closed);

    h.advance(Duration::minutes(1));
    let next = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.2", "Another question"));
    assert_ne!(next.conversation, first.conversation);
    assert_eq!(next.thread, opened(OpenReason::PreviousClosed, Some(first.conversation)));
    let new = h.conversation(next.conversation);
    assert_eq!(new.previous, Some(first.conversation));
    assert_eq!(new.status, ConversationStatus::Open);
    let old = h.conversation(first.conversation);
    assert_eq!(old.status, ConversationStatus::Closed);
    assert_eq!(old.message_count, 1);

    // The session now belongs to the new conversation.
    h.advance(Duration::minutes(1));
    let third = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.3", "Still me"));
    assert_eq!((third.conversation, third.thread), (next.conversation, session()));

    // The closed conversation takes nothing more.
    let late = h.outbound(first.conversation, OutboundMessage::agent(agent("maria"), text("Reply to old thread")));
    assert!(matches!(late, Err(Error::Refused(_))), "{late:?}");
    let reopen = run(h.engine.update_conversation(
        &h.tenant,
        first.conversation,
        touchpoint::ConversationPatch { status: Some(ConversationStatus::Open), ..Default::default() },
    ));
    assert!(matches!(reopen, Err(Error::Refused(_))), "{reopen:?}");

    // The same holds for an explicit reference to a closed email conversation.
    let mail = h.ingest(email("bob@example.com", "<b1@bob.example>", "Question"));
    h.set_status(mail.conversation, ConversationStatus::Closed);
    let reply = h.ingest(email_reply("bob@example.com", "<b2@bob.example>", "<b1@bob.example>", &[], "Follow-up"));
    assert_eq!(reply.thread, opened(OpenReason::PreviousClosed, Some(mail.conversation)));
}

#[test]
fn closed_conversation_releases_its_provider_thread_key() {
    // A provider that keeps one thread id per customer (a Twilio Conversation SID, a Sunshine
    // conversationId, an in-app thread) keeps sending it after we closed our conversation. The
    // first message after the close opens a new conversation; that one must take over the
    // thread id, or every later message opens yet another conversation.
    let h = Harness::new();
    let msg = |id: &str, body: &str| {
        InboundMessage::new(
            ChannelKind::InApp,
            endpoint("mobile-app"),
            Address::platform("mobile-app", "device-1"),
            id,
            text(body),
        )
        .with_thread(provider_thread_hint("CH-thread-1"))
    };
    let first = h.ingest(msg("m1", "Hi"));
    h.set_status(first.conversation, ConversationStatus::Closed);
    h.advance(Duration::minutes(1));
    let second = h.ingest(msg("m2", "New question"));
    assert_eq!(second.thread, opened(OpenReason::PreviousClosed, Some(first.conversation)));
    h.advance(Duration::minutes(1));
    let third = h.ingest(msg("m3", "Follow-up to the new question"));
    assert_eq!(third.conversation, second.conversation, "thread decision: {:?}", third.thread);
    assert_eq!(third.thread, ThreadDecision::Continued { reason: ThreadReason::ProviderThread });
    assert_eq!(h.count("conversations"), 2);
}

// ---------------------------------------------------------------------------------------------
// 14. Blocked customers
// ---------------------------------------------------------------------------------------------

fn block(h: &Harness, customer: CustomerId) {
    run(h.engine.update_customer(&h.tenant, customer, CustomerPatch { blocked: Some(true), ..Default::default() }))
        .unwrap();
}

#[test]
fn blocked_customer_conversation_is_created_resolved() {
    let h = Harness::new();
    let first = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "spam"));
    h.set_status(first.conversation, ConversationStatus::Closed);
    block(&h, first.customer);

    h.advance(Duration::minutes(1));
    let next = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.2", "more spam"));
    assert_eq!(next.customer, first.customer);
    assert_ne!(next.conversation, first.conversation);
    assert!(!next.needs_handler, "nobody is notified");
    let c = h.conversation(next.conversation);
    assert_eq!(c.status, ConversationStatus::Resolved);
    assert_eq!(c.resolved_at, Some(h.now()));
    assert_eq!(c.message_count, 1, "the message is still kept");

    // On another channel too.
    let by_sms = h.ingest(sms("sms-main", "+447700900123", "SM1", "spam by SMS"));
    assert_eq!(by_sms.customer, first.customer);
    assert!(!by_sms.needs_handler);
    assert_eq!(h.conversation(by_sms.conversation).status, ConversationStatus::Resolved);

    // Nothing is sent to a blocked customer, not even a template.
    for content in [text("Hello"), template("promo")] {
        let out = h.outbound(next.conversation, OutboundMessage::agent(agent("maria"), content));
        assert!(matches!(out, Err(Error::Refused(_))), "{out:?}");
    }
    assert_eq!(h.conversation(next.conversation).message_count, 1);
}

#[test]
fn blocked_customer_follow_up_does_not_reopen_or_notify() {
    let h = Harness::new();
    let first = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "spam"));
    h.set_status(first.conversation, ConversationStatus::Closed);
    block(&h, first.customer);
    h.advance(Duration::minutes(1));
    let created = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.2", "more spam"));
    assert_eq!(h.conversation(created.conversation).status, ConversationStatus::Resolved);

    // The blocked customer keeps writing: the message is kept in the resolved conversation,
    // which stays resolved, and nobody is asked to handle it.
    h.advance(Duration::minutes(1));
    let follow_up = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.3", "even more spam"));
    assert_eq!(follow_up.conversation, created.conversation);
    assert!(!follow_up.needs_handler, "thread decision: {:?}", follow_up.thread);
    assert_eq!(h.conversation(created.conversation).status, ConversationStatus::Resolved);
}

// ---------------------------------------------------------------------------------------------
// 15. Tenants
// ---------------------------------------------------------------------------------------------

#[test]
fn same_email_in_two_tenants_is_two_customers() {
    let h = Harness::new();
    let acme = h.tenant.clone();
    let globex = tenant("globex");
    let mail = || email("ana@example.com", "<m1@example.com>", "Hello").with_verification(Verification::Verified);
    let signed_in = |id: &str| {
        webchat("visitor-1", id, "Hi").with_claim(CustomerKey::ExternalId("user-1".into()), Verification::Verified)
    };
    let a = run(h.engine.ingest(&acme, mail())).unwrap();
    let a2 = run(h.engine.ingest(&acme, signed_in("chat-a"))).unwrap();
    let acme_before = h.tenant_dump();

    let g = run(h.engine.ingest(&globex, mail())).unwrap();
    assert!(!g.duplicate, "the idempotency key is per tenant");
    assert_eq!(g.resolution, Resolution::Created);
    assert_ne!(g.customer, a.customer);
    assert_ne!(g.conversation, a.conversation);

    // The same verified external id too.
    let g2 = run(h.engine.ingest(&globex, signed_in("chat-g"))).unwrap();
    assert_eq!(g2.resolution, Resolution::Created);
    assert_ne!(g2.customer, a2.customer);

    // Nothing of acme is visible or reachable from globex.
    assert!(matches!(run(h.engine.customer(&globex, a.customer)), Err(Error::NotFound { .. })));
    assert!(matches!(run(h.engine.conversation(&globex, a.conversation)), Err(Error::NotFound { .. })));
    assert!(matches!(
        run(h.engine.customer_context(&globex, a.customer, Default::default())),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        run(h.engine.merge_customers(&globex, g.customer, a.customer, SurvivorRule::First)),
        Err(Error::NotFound { .. })
    ));
    let g_reply = run(h
        .engine
        .ingest(&globex, email_reply("ana@example.com", "<m2@example.com>", "<m1@example.com>", &[], "Follow-up")))
    .unwrap();
    assert_eq!(g_reply.conversation, g.conversation);
    assert_eq!(g_reply.customer, g.customer);

    let globex_view = run(h.engine.customer_context(&globex, g.customer, Default::default())).unwrap();
    assert_eq!(globex_view.timeline.len(), 2);
    assert!(globex_view.timeline.iter().all(|m| m.tenant == globex));
    let globex_events = run(h.engine.store().events_after(&globex, 0, 10_000)).unwrap();
    assert!(!globex_events.is_empty());
    assert!(globex_events.iter().all(|e| e.tenant == globex));

    // acme is exactly as it was.
    assert_eq!(h.tenant_dump(), acme_before);
    assert_eq!(h.count("customers"), 2);
}

// ---------------------------------------------------------------------------------------------
// 16. Merge with overlapping join rows
// ---------------------------------------------------------------------------------------------

#[test]
fn merge_with_overlapping_attributes_and_consent_deduplicates() {
    let h = Harness::new();
    let phone = "+5511987654321";
    let consent = |state, at| Consent { state, at, source: Some("test".into()) };
    let t = h.now();

    let a = h.ingest(email("ana@example.com", "<a1@ana.example>", "Hi").with_verification(Verification::Verified));
    // An agent noted her phone for SMS without verifying it.
    run(h.engine.link_identity(
        &h.tenant,
        a.customer,
        ChannelKind::Sms,
        Address::phone(phone),
        Verification::Unverified,
    ))
    .unwrap();
    run(h.engine.update_customer(
        &h.tenant,
        a.customer,
        CustomerPatch {
            set_attributes: [("plan".to_owned(), "pro".into()), ("city".to_owned(), "São Paulo".into())].into(),
            consent: vec![
                (ChannelKind::WhatsApp, consent(ConsentState::OptedOut, t + Duration::hours(1))),
                (ChannelKind::Email, consent(ConsentState::OptedIn, t + Duration::hours(1))),
            ],
            ..Default::default()
        },
    ))
    .unwrap();

    let b = h.ingest(whatsapp("wa-main", phone, "wamid.1", "Oi"));
    assert_ne!(b.customer, a.customer, "an unverified phone never links");
    run(h.engine.update_customer(
        &h.tenant,
        b.customer,
        CustomerPatch {
            set_attributes: [
                ("plan".to_owned(), "basic".into()),
                ("city".to_owned(), "São Paulo".into()),
                ("vip".to_owned(), true.into()),
            ]
            .into(),
            consent: vec![
                (ChannelKind::WhatsApp, consent(ConsentState::OptedIn, t)),
                (ChannelKind::Email, consent(ConsentState::OptedIn, t + Duration::hours(2))),
                (ChannelKind::Sms, consent(ConsentState::OptedIn, t)),
            ],
            ..Default::default()
        },
    ))
    .unwrap();

    let preview = run(h.engine.preview_merge(&h.tenant, a.customer, b.customer, SurvivorRule::First)).unwrap();
    let plan = run(h.engine.merge_customers(&h.tenant, a.customer, b.customer, SurvivorRule::First)).unwrap();
    assert_eq!(preview, plan);
    assert_eq!(plan.survivor, a.customer);

    // Attributes: one value per key, the survivor's winning; only real conflicts are discarded.
    let attrs = &plan.result.attributes;
    assert_eq!(attrs.len(), 3);
    assert_eq!(attrs["plan"], "pro");
    assert_eq!(attrs["city"], "São Paulo");
    assert_eq!(attrs["vip"], true);
    assert_eq!(plan.discarded_attributes.len(), 1);
    assert_eq!(plan.discarded_attributes["plan"], "basic");

    // Consent: one entry per channel, the latest statement winning.
    let consent = &plan.result.consent;
    assert_eq!(consent.len(), 3);
    assert_eq!(consent[&ChannelKind::WhatsApp].state, ConsentState::OptedOut);
    assert_eq!(consent[&ChannelKind::Email].at, t + Duration::hours(2));
    assert_eq!(consent[&ChannelKind::Sms].state, ConsentState::OptedIn);

    // What is stored is what was planned.
    assert_eq!(h.customer(a.customer), plan.result);

    // Identities and conversations: each once, all on the survivor.
    let identities = h.identities_of(a.customer);
    assert_eq!(identities.len(), 3);
    assert_eq!(identities.iter().map(|i| i.id).collect::<HashSet<_>>().len(), 3);
    let conversations = h.conversations_of(a.customer);
    assert_eq!(conversations.len(), 2);
    assert!(h.identities_of(b.customer).is_empty());
    assert!(h.conversations_of(b.customer).is_empty());

    // The phone (held unverified on SMS and carrier-asserted on WhatsApp) is one row of the
    // address index, with the strongest verification.
    let holders = run(h.engine.store().customers_by_address(
        &h.tenant,
        &LinkKey(NormalizedAddress { kind: AddressKind::Phone, value: phone.into() }),
    ))
    .unwrap();
    assert_eq!(holders, vec![(a.customer, Verification::CarrierAsserted)]);

    let view = h.context(b.customer);
    assert_eq!(view.counts.conversations, 2);
    assert_eq!(view.timeline.len(), 2);
}

// ---------------------------------------------------------------------------------------------
// 17. Erasure
// ---------------------------------------------------------------------------------------------

#[test]
fn erasure_removes_everything_but_a_tombstone() {
    let h = Harness::new();
    // Ana: signed-in web chat, WhatsApp, email, agent replies, delivery receipts, profile data,
    // and a duplicate customer merged into her.
    let chat = h.ingest(
        webchat("visitor-ana", "chat-1", "Hi, I am Ana Souza")
            .with_sender_name("Ana Souza")
            .with_claim(CustomerKey::ExternalId("user-ana-7".into()), Verification::Verified),
    );
    let ana = chat.customer;
    run(h.engine.link_identity(
        &h.tenant,
        ana,
        ChannelKind::WhatsApp,
        Address::phone("+5511987654321"),
        Verification::Verified,
    ))
    .unwrap();
    let wa = h.ingest(
        whatsapp("wa-main", "+5511987654321", "wamid.ana1", "Meu CPF é 123.456.789-00").with_sender_name("Ana S."),
    );
    assert_eq!(wa.customer, ana);
    h.outbound(
        wa.conversation,
        OutboundMessage::agent(agent("maria"), text("Obrigada, Ana")).with_external_id("wamid.out-ana"),
    )
    .unwrap();
    run(h.engine.update_delivery(&h.tenant, &ChannelKind::WhatsApp, "wamid.out-ana", DeliveryState::Read)).unwrap();
    let dup = h.ingest(
        email("ana.souza@example.com", "<ana-1@mail.example.com>", "Ana here, by email")
            .with_thread(ThreadHints { subject: Some("Ana's refund".into()), ..ThreadHints::default() }),
    );
    run(h.engine.merge_customers(&h.tenant, ana, dup.customer, SurvivorRule::First)).unwrap();
    h.outbound(
        dup.conversation,
        OutboundMessage::agent(agent("maria"), text("Refund issued, Ana"))
            .with_external_id("<out-ana@support.example>"),
    )
    .unwrap();
    run(h.engine.update_customer(
        &h.tenant,
        ana,
        CustomerPatch {
            name: Some(Some("Ana Souza".into())),
            set_attributes: [("cpf".to_owned(), "123.456.789-00".into())].into(),
            consent: vec![(
                ChannelKind::WhatsApp,
                Consent { state: ConsentState::OptedIn, at: h.now(), source: Some("Ana's web form".into()) },
            )],
            ..Default::default()
        },
    ))
    .unwrap();

    // Bruno, another customer, must be untouched.
    let bruno = h.ingest(email("bruno@example.com", "<b1@bruno.example>", "Unrelated question"));
    let bruno_view = h.context(bruno.customer);

    let report = run(h.engine.erase_customer(&h.tenant, ana)).unwrap();
    assert_eq!(report.customer, ana);
    assert_eq!(report.identities, 3);
    assert_eq!(report.conversations, 3);
    assert_eq!(report.messages, 5);

    // Only a tombstone (and the PII-free alias of the merged duplicate) remain of Ana.
    let dump = h.tenant_dump();
    let customers = dump["customers"].as_array().unwrap();
    assert_eq!(customers.len(), 3, "Ana's tombstone, the alias, Bruno");
    let tombstone = customers.iter().find(|c| c["id"] == serde_json::json!(ana)).unwrap();
    assert_eq!(tombstone["state"]["state"], "erased");
    assert!(tombstone["name"].is_null() && tombstone["external_id"].is_null());
    assert_eq!(tombstone["attributes"], serde_json::json!({}));
    assert_eq!(tombstone["consent"], serde_json::json!({}));
    assert_eq!(dump["identities"].as_array().unwrap().len(), 1, "Bruno's");
    assert_eq!(dump["conversations"].as_array().unwrap().len(), 1, "Bruno's");
    assert_eq!(dump["messages"].as_array().unwrap().len(), 1, "Bruno's");
    assert_eq!(dump["message_keys"].as_array().unwrap().len(), 1);
    assert_eq!(dump["thread_keys"].as_array().unwrap().len(), 2, "Bruno's reply token and Message-ID");
    assert_eq!(dump["identity_addresses"].as_array().unwrap().len(), 1);
    assert_eq!(dump["external_ids"], serde_json::json!({}));
    let text = dump.to_string();
    for pii in [
        "Ana",
        "ana.souza",
        "5511987654321",
        "user-ana-7",
        "visitor-ana",
        "CPF",
        "123.456.789-00",
        "wamid.ana1",
        "wamid.out-ana",
        "out-ana@support",
        "ana-1@mail",
        "refund",
        "Refund",
    ] {
        assert!(!text.contains(pii), "{pii:?} survived the erasure");
    }

    // The tombstone answers `Erased`, everywhere.
    assert!(matches!(run(h.engine.customer(&h.tenant, ana)), Err(Error::Erased(_))));
    assert!(matches!(run(h.engine.erase_customer(&h.tenant, ana)), Err(Error::Erased(_))));
    assert!(matches!(run(h.engine.export_customer(&h.tenant, ana)), Err(Error::Erased(_))));
    assert!(matches!(run(h.engine.customer_context(&h.tenant, ana, Default::default())), Err(Error::Erased(_))));
    assert!(h.event_kinds().contains(&touchpoint::events::Event::CustomerErased { customer: ana }));
    assert!(matches!(run(h.engine.message(&h.tenant, wa.message)), Err(Error::NotFound { .. })));

    // Bruno's view is exactly as before.
    assert_eq!(h.context(bruno.customer), bruno_view);
}

#[test]
fn host_keys_take_ascii_letters_digits_and_punctuation_and_name_what_they_refuse() {
    for ok in ["acme", "wa-main", "a_b.c:d@e+f/g", "Z9"] {
        assert_eq!(EndpointId::new(ok).unwrap().as_str(), ok);
    }
    let reason = |e: Error| e.to_string();
    assert!(reason(AgentId::new("ana smith").unwrap_err()).contains("contains ' '"));
    assert!(reason(QueueId::new("café").unwrap_err()).contains("contains 'é'"));
    assert!(reason(TenantId::new("a#b").unwrap_err()).contains("contains '#'"));
    assert!(reason(TenantId::new("").unwrap_err()).contains("must not be empty"));
    assert!(reason(TenantId::new("x".repeat(65)).unwrap_err()).contains("the limit is 64"));
    // A clone shares the key and compares equal.
    let a = AgentId::new("ana").unwrap();
    assert_eq!(a.clone(), a);
    assert_eq!(serde_json::to_string(&a).unwrap(), "\"ana\"");
    assert_eq!(serde_json::from_str::<AgentId>("\"ana\"").unwrap(), a);
    assert!(serde_json::from_str::<AgentId>("\"a n\"").is_err());
}

// ---------------------------------------------------------------------------------------------
// Duplicates, linking-level emails, and window boundaries
// ---------------------------------------------------------------------------------------------

mod duplicates_and_linking {
    use super::*;
    use touchpoint::thread::ChannelThreading;

    fn reject_on_webchat() -> Harness {
        Harness::with_threading(
            ThreadingPolicy::default()
                .with_channel(ChannelKind::WebChat, ChannelThreading { session: true, reopen: ReopenPolicy::Reject }),
        )
    }

    /// A provider retries a webhook the engine already stored (its first answer was lost).
    /// Meanwhile the agent resolved the conversation on a channel whose policy is `Reject`.
    /// The retry must answer "duplicate": the message *was* accepted and is stored. It must not
    /// answer `Refused`: the host would then tell the customer their message was refused.
    #[test]
    fn retried_webhook_after_resolution_under_reject_is_a_duplicate_not_refused() {
        let h = reject_on_webchat();
        let msg = webchat("visitor-1", "chat-1", "Hi, my order is late");
        let first = h.ingest(msg.clone());
        h.set_status(first.conversation, ConversationStatus::Resolved);
        h.advance(Duration::minutes(1));
        let before = h.dump();
        let retry = h.try_ingest(msg);
        assert!(
            matches!(&retry, Ok(o) if o.duplicate && o.message == first.message),
            "a retry of a stored message must answer duplicate: {retry:?}"
        );
        assert_eq!(h.dump(), before);
    }

    /// Reopen policies judge when the customer wrote, not when the webhook arrived: a message
    /// written before the resolution and delivered late (providers retry for hours) reopens the
    /// conversation under `Reject` instead of being refused on every retry and lost; one written
    /// after the resolution is still refused.
    #[test]
    fn a_late_webhook_written_before_the_resolution_reopens_under_reject() {
        let h = reject_on_webchat();
        let first = h.ingest(webchat("visitor-1", "chat-1", "Hi, my order is late"));
        let written = h.now() + Duration::minutes(5);
        h.advance(Duration::minutes(10));
        h.set_status(first.conversation, ConversationStatus::Resolved);
        h.advance(Duration::minutes(20));
        let late = h.ingest(webchat("visitor-1", "chat-2", "It was order 5521").with_sent_at(written));
        assert_eq!(late.conversation, first.conversation);
        assert!(matches!(late.thread, ThreadDecision::Reopened { .. }), "{:?}", late.thread);
        h.set_status(first.conversation, ConversationStatus::Resolved);
        let after = h.try_ingest(webchat("visitor-1", "chat-3", "Hello again").with_sent_at(h.now()));
        assert!(matches!(after, Err(Error::Refused(_))), "{after:?}");
    }

    /// `Reject` serves web widgets, whose kit takes the message date from the browser: a date
    /// from before the conversation existed, or days old, counts as at most a day late
    /// (`thread::MAX_LATE_DELIVERY`) and does not slip past the refusal.
    #[test]
    fn a_backdated_message_does_not_get_past_reject() {
        let h = reject_on_webchat();
        let created = h.now();
        let first = h.ingest(webchat("visitor-1", "chat-1", "Hi"));
        h.advance(Duration::minutes(10));
        h.set_status(first.conversation, ConversationStatus::Resolved);
        h.advance(Duration::days(3));
        let before = h.dump();
        let forged =
            h.try_ingest(webchat("visitor-1", "chat-2", "Let me in").with_sent_at(created - Duration::days(365)));
        assert!(matches!(forged, Err(Error::Refused(_))), "{forged:?}");
        let old =
            h.try_ingest(webchat("visitor-1", "chat-3", "Still there?").with_sent_at(created + Duration::minutes(5)));
        assert!(matches!(old, Err(Error::Refused(_))), "{old:?}");
        assert_eq!(h.dump(), before);
    }

    /// An email arrives from an address another customer holds as a verified address, with a
    /// linking-level verification the resolver does not link emails on (`CarrierAsserted`).
    /// The ingest must either link or keep the address unverified (as it does for a claim of the
    /// same strength); it fails instead with a `Conflict` after every retry.
    #[test]
    fn email_sender_asserted_but_held_verified_elsewhere_is_stored() {
        let h = Harness::new();
        let ana = h.ingest(webchat("visitor-a", "chat-a", "Hi"));
        run(h.engine.link_identity(
            &h.tenant,
            ana.customer,
            ChannelKind::WebChat,
            Address::email("ana@example.com"),
            Verification::Verified,
        ))
        .unwrap();
        let mail =
            email("ana@example.com", "<a1@ana.example>", "Hi by mail").with_verification(Verification::CarrierAsserted);
        let out = h.try_ingest(mail);
        assert!(out.is_ok(), "valid inbound email is not stored: {out:?}");
    }

    /// Message-IDs are visible to everybody on a thread (CCs, lists) and are not a reliable
    /// dedupe key (channel facts §3.1). A stranger's mail that reuses Ana's Message-ID must not
    /// be answered as "Ana's message, already stored": the answer names Ana's customer and
    /// conversation as the stranger's, and the stranger's mail is silently dropped.
    #[test]
    fn reused_message_id_from_another_sender_is_not_answered_as_the_first_senders_message() {
        let h = Harness::new();
        let ana = h.ingest(email("ana@example.com", "<CAFAKE0001.ana@mail.example.net>", "My invoice is wrong"));
        let mallory = h.try_ingest(email("mallory@evil.example", "<CAFAKE0001.ana@mail.example.net>", "Hello"));
        // Refused as bad input (the id names another sender's message), not answered with Ana's.
        assert!(matches!(&mallory, Err(Error::InvalidInput { field, .. }) if *field == "external_id"), "{mallory:?}");
        // A true retry of Ana's message is still a duplicate.
        let again = h.ingest(email("ana@example.com", "<CAFAKE0001.ana@mail.example.net>", "My invoice is wrong"));
        assert!(again.duplicate);
        assert_eq!((again.customer, again.conversation), (ana.customer, ana.conversation));
    }

    /// The same, once Ana's address was unlinked (her identity is gone, so her address cannot
    /// be compared): a stranger's mail under her Message-ID is still refused, never answered
    /// as stored, while a retry of Ana's own mail (the same content) is still a duplicate.
    #[test]
    fn reused_message_id_after_the_first_senders_identity_was_unlinked_is_not_dropped() {
        let h = Harness::new();
        let id = "<CAFAKE0002.ana@mail.example.net>";
        let ana = h.ingest(email("ana@example.com", id, "My invoice is wrong"));
        run(h.engine.unlink_identity(&h.tenant, ana.identity)).unwrap();
        let mallory = h.try_ingest(email("mallory@evil.example", id, "MALLORY-TEXT"));
        assert!(matches!(&mallory, Err(Error::InvalidInput { field, .. }) if *field == "external_id"), "{mallory:?}");
        let again = h.ingest(email("ana@example.com", id, "My invoice is wrong"));
        assert!(again.duplicate, "a retry of the stored mail is a duplicate");
        assert_eq!(again.message, ana.message);
    }
}

/// Without a default region, a number in national format is documented to need one; it must
/// not silently become another country's number (`(415) 555-0123` read as Swiss
/// `+41 55 550 123`, `07700 900123` as a number with a country code of 7).
#[test]
fn a_national_phone_spelling_without_a_region_is_refused_not_read_as_another_country() {
    use touchpoint::identity::normalize::normalize_phone;
    for national in ["(415) 555-0123", "07700 900123"] {
        let got = normalize_phone(national, None);
        assert!(matches!(got, Err(Error::InvalidAddress { .. })), "{national} became {got:?}");
    }
    // International spellings still need no region.
    assert_eq!(normalize_phone("+1 (415) 555-0123", None).unwrap(), "+14155550123");
    assert_eq!(normalize_phone("447700900123", None).unwrap(), "+447700900123");
    #[cfg(feature = "phone")]
    assert_eq!(normalize_phone("(415) 555-0123", Some("US")).unwrap(), "+14155550123");
}

mod window_boundaries {
    use super::*;

    #[test]
    fn reopen_within_reopens_at_its_exact_boundary_and_not_a_second_later() {
        let pol = |w| ThreadingPolicy { reopen: ReopenPolicy::ReopenWithin(w), ..ThreadingPolicy::default() };
        let h = Harness::with_threading(pol(Duration::days(7)));
        let first = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "Hi"));
        h.set_status(first.conversation, ConversationStatus::Resolved);
        h.advance(Duration::days(7));
        let at = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.2", "x"));
        assert_eq!(at.conversation, first.conversation);
        h.set_status(first.conversation, ConversationStatus::Resolved);
        h.advance(Duration::days(7) + Duration::seconds(1));
        let after = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.3", "y"));
        assert_ne!(after.conversation, first.conversation);
    }

    /// The session rule continues the session's open conversation: an agent's note in an
    /// older, resolved one (past its reopen window) makes that the most recent, but the
    /// customer's next message still joins the open one instead of opening a third.
    #[test]
    fn an_agents_note_in_an_older_resolved_conversation_does_not_split_the_open_one() {
        let h = Harness::with_threading(ThreadingPolicy {
            reopen: ReopenPolicy::ReopenWithin(Duration::days(1)),
            ..ThreadingPolicy::default()
        });
        let c1 = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "Hi"));
        h.set_status(c1.conversation, ConversationStatus::Resolved);
        h.advance(Duration::days(2));
        let c2 = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.2", "A new question"));
        assert_ne!(c2.conversation, c1.conversation, "setup: the reopen window is over");
        h.advance(Duration::minutes(5));
        h.outbound(c1.conversation, OutboundMessage::agent(agent("maria"), text("A note on the old case"))).unwrap();
        h.advance(Duration::minutes(5));
        let next = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.3", "Any news?"));
        assert_eq!(next.conversation, c2.conversation, "{:?}", next.thread);
    }

    #[test]
    fn cross_channel_window_boundary_is_inclusive() {
        let h = Harness::with_threading(ThreadingPolicy::default().with_cross_channel_window(Duration::hours(1)));
        let wa = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "Hi"));
        run(h.engine.link_identity(
            &h.tenant,
            wa.customer,
            ChannelKind::Email,
            Address::email("ana@example.com"),
            Verification::Verified,
        ))
        .unwrap();
        h.advance(Duration::hours(1));
        let m = h.ingest(email("ana@example.com", "<e1@x>", "same issue").with_verification(Verification::Verified));
        assert_eq!(m.conversation, wa.conversation);
        h.advance(Duration::hours(1) + Duration::seconds(1));
        let m2 = h.ingest(email("ana@example.com", "<e2@x>", "later").with_verification(Verification::Verified));
        assert_ne!(m2.conversation, wa.conversation);
    }

    /// The window is judged by when the customer wrote: an SMS written 50 minutes after the
    /// WhatsApp conversation's last message, delivered two hours late, still joins it.
    #[test]
    fn cross_channel_window_counts_from_when_the_customer_wrote() {
        for (minutes, joins) in [(50, true), (70, false)] {
            let h = Harness::with_threading(ThreadingPolicy::default().with_cross_channel_window(Duration::hours(1)));
            let wa = h.ingest(whatsapp("wa-main", "+447700900123", "wamid.1", "Hi"));
            let written = h.now() + Duration::minutes(minutes);
            h.advance(Duration::hours(2) + Duration::minutes(50));
            let late = h.ingest(sms("sms-1", "+447700900123", "SM1", "same issue").with_sent_at(written));
            assert_eq!(late.conversation == wa.conversation, joins, "written {minutes} minutes later");
        }
    }
}

/// The same Brazilian mobile writes on WhatsApp (with the ninth digit) and by SMS (without it)
/// at the same moment, both asserted by the network: one customer, not one per spelling.
#[test]
fn concurrent_first_messages_on_two_channels_in_both_spellings_make_one_customer() {
    for round in 0..40 {
        let h = Harness::new();
        let messages = (0..8)
            .map(|i| {
                if i % 2 == 0 {
                    whatsapp("wa-main", "+55 11 98765-4321", &format!("wamid.r{round}.{i}"), &format!("parte {i}"))
                } else {
                    sms("sms-1", "+551187654321", &format!("SM.r{round}.{i}"), &format!("parte {i}"))
                }
            })
            .collect();
        let outcomes = ingest_concurrently(&h, messages);
        let customers: HashSet<_> = outcomes.iter().map(|o| o.customer).collect();
        assert_eq!(customers.len(), 1, "round {round}");
    }
}

/// WhatsApp and another provider can report one Brazilian mobile with and without the ninth
/// digit at the same moment: the first messages still make one identity, not one per spelling.
#[test]
fn concurrent_first_messages_in_both_spellings_of_a_brazilian_mobile_make_one_identity() {
    for round in 0..40 {
        let h = Harness::new();
        let messages = (0..8)
            .map(|i| {
                let number = if i % 2 == 0 { "+55 11 98765-4321" } else { "551187654321" };
                whatsapp("wa-main", number, &format!("wamid.r{round}.{i}"), &format!("parte {i}"))
            })
            .collect();
        let outcomes = ingest_concurrently(&h, messages);
        let customers: HashSet<_> = outcomes.iter().map(|o| o.customer).collect();
        let identities: HashSet<_> = outcomes.iter().map(|o| o.identity).collect();
        let conversations: HashSet<_> = outcomes.iter().map(|o| o.conversation).collect();
        assert_eq!((customers.len(), identities.len(), conversations.len()), (1, 1, 1), "round {round}");
        assert_eq!(h.count("identities"), 1, "round {round}");
    }
}

/// Once per pair means once for the two customers, whichever of them claims the other's
/// address first: a suspicion the other one raised is not raised again the other way round.
#[test]
fn a_suspicion_is_raised_once_for_the_two_customers_whoever_claims_first() {
    let h = Harness::new();
    let wa = |id: &str| {
        InboundMessage::new(
            ChannelKind::WhatsApp,
            EndpointId::new("wa-main").unwrap(),
            Address::phone("+14155550100"),
            id,
            Content::text("hi"),
        )
    };
    let x = h.ingest(wa("wamid.1"));
    let y = h.ingest(
        email("y@example.com", "<y1@example.com>", "it's me")
            .with_claim(CustomerKey::Phone("+14155550100".into()), Verification::Unverified),
    );
    assert_eq!(y.suspected_duplicates, [x.customer]);
    let again =
        h.ingest(wa("wamid.2").with_claim(CustomerKey::Email("y@example.com".into()), Verification::Unverified));
    assert_eq!(again.customer, x.customer);
    // The outcome still names the suspect; the event and the record are the first's alone.
    assert_eq!(again.suspected_duplicates, [y.customer]);
    let raised: Vec<(CustomerId, CustomerId)> = h
        .event_kinds()
        .iter()
        .filter_map(|e| match e {
            touchpoint::events::Event::DuplicateSuspected { customer, resembles } => Some((*customer, *resembles)),
            _ => None,
        })
        .collect();
    assert_eq!(raised, [(y.customer, x.customer)]);
    assert!(h.customer(x.customer).suspected_duplicates.is_empty());
}
