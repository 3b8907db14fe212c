//! Edge cases of the email kit (`channels::email`, `normalize_email`, email threading) with
//! real-world and hostile mail: nested quotes, long id headers, unbracketed References, legacy
//! charsets, HTML entities and tables, read receipts, folded headers in bounces, IDN domains.

mod common;

use common::Harness;
use std::time::{Duration, Instant};
use touchpoint::channels::email::*;
use touchpoint::identity::normalize::normalize_email;
use touchpoint::model::*;
use touchpoint::thread::{ThreadDecision, ThreadReason};

fn inbox() -> EmailInbox {
    EmailInbox::new(EndpointId::new("support-inbox").unwrap(), "reply@support.example.com").unwrap()
}

fn parse_raw(raw: &[u8]) -> touchpoint::Result<InboundEmail> {
    parse(raw, &inbox(), SenderAuth::NotAuthenticated)
}

fn message(raw: &[u8]) -> EmailMessage {
    match parse_raw(raw) {
        Ok(InboundEmail::Message(m)) => *m,
        other => panic!("expected a message, got {other:?}"),
    }
}

fn bounce(raw: &[u8]) -> Bounce {
    match parse_raw(raw) {
        Ok(InboundEmail::Bounce(b)) => b,
        other => panic!("expected a bounce, got {other:?}"),
    }
}

fn text_of(m: &EmailMessage) -> String {
    match &m.message.content {
        Content::Text { body } => body.clone(),
        other => panic!("not text: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile input: unbounded work
// ---------------------------------------------------------------------------------------------

/// `parse` does work (and keeps text) proportional to its input: 2,000 unclosed `<blockquote>`
/// tags before 2,000 lines stay a small multiple of the HTML (quote prefixes stop at a depth).
#[test]
fn nested_blockquotes_do_not_multiply_the_text() {
    let n = 2000;
    let html = format!("{}{}", "<blockquote>".repeat(n), "x<br>".repeat(n));
    let text = html_to_text(&html);
    assert!(
        text.len() <= 4 * html.len(),
        "html_to_text: {} bytes of HTML became {} bytes of text",
        html.len(),
        text.len()
    );

    let raw = format!("From: ana@example.com\r\nContent-Type: text/html\r\n\r\n{html}");
    let mail = message(raw.as_bytes());
    assert!(
        mail.full_text.len() <= 4 * raw.len(),
        "parse: a {}-byte message kept {} bytes of full_text",
        raw.len(),
        mail.full_text.len()
    );
}

/// `parse` stays linear in the number of message ids: 20,000 ids in each of `In-Reply-To` and
/// `References` parse in well under two seconds.
#[test]
fn many_in_reply_to_and_references_ids_parse_in_linear_time() {
    let n = 20_000;
    let irt: Vec<String> = (0..n).map(|i| format!("<i{i}@x.example>")).collect();
    let refs: Vec<String> = (0..n).map(|i| format!("<r{i}@x.example>")).collect();
    let raw = format!(
        "From: ana@example.com\r\nMessage-ID: <m@x.example>\r\nIn-Reply-To: {}\r\nReferences: {}\r\n\r\nhi\r\n",
        irt.join(" "),
        refs.join(" ")
    );
    let started = Instant::now();
    let mail = message(raw.as_bytes());
    let took = started.elapsed();
    assert_eq!(mail.message.thread.references.len(), MAX_REFERENCES);
    assert!(took < Duration::from_secs(2), "{} bytes of id headers took {took:?}", raw.len());
}

// ---------------------------------------------------------------------------------------------
// Message-ID / References parsing and threading
// ---------------------------------------------------------------------------------------------

/// A `References` header whose ids lack angle brackets (older and broken clients write
/// `References: a@x b@y`) must give one reference per id, so the reply threads on any of them.
#[test]
fn unbracketed_references_are_split_into_ids_and_thread() {
    let h = Harness::new();
    let first = message(
        b"From: Ana <ana@example.com>\r\nTo: support@example.com\r\nMessage-ID: <first@mail.example.com>\r\n\r\nWhere is my parcel?\r\n",
    );
    let opened = h.ingest(first.message);

    let reply = message(
        b"From: Ana <ana@example.com>\r\nTo: support@example.com\r\nMessage-ID: <second@mail.example.com>\r\n\
          References: first@mail.example.com unrelated@elsewhere.example\r\n\r\nAny news?\r\n",
    );
    assert_eq!(
        reply.message.thread.references,
        vec!["first@mail.example.com".to_owned(), "unrelated@elsewhere.example".to_owned()]
    );
    let joined = h.ingest(reply.message);
    assert_eq!(joined.conversation, opened.conversation);
    assert_eq!(joined.thread, ThreadDecision::Continued { reason: ThreadReason::EmailReference });
}

// ---------------------------------------------------------------------------------------------
// Body extraction and charsets
// ---------------------------------------------------------------------------------------------

/// Mail in the legacy CJK charsets that Japanese, Chinese and Korean clients still send
/// (Shift_JIS, GB2312/GBK, EUC-KR, Big5) must be decoded like ISO-8859-1 and windows-1252 are.
#[test]
fn legacy_cjk_charsets_are_decoded() {
    for (charset, b64, want) in [
        ("shift_jis", "k/qWe4zq", "日本語"),
        ("gb2312", "1tDOxA==", "中文"),
        ("euc-kr", "vsiz58fPvLy/5A==", "안녕하세요"),
        ("big5", "wWPF6Q==", "繁體"),
    ] {
        let raw = format!(
            "From: ana@example.com\r\nMessage-ID: <{charset}@x.example>\r\nContent-Type: text/plain; charset={charset}\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{b64}\r\n"
        );
        assert_eq!(text_of(&message(raw.as_bytes())), want, "{charset}");
    }
    let raw = b"From: =?GB2312?B?1dTA2g==?= <zhao@example.cn>\r\nMessage-ID: <n@x.example>\r\n\r\nhi\r\n";
    assert_eq!(message(raw).message.sender_name.as_deref(), Some("赵磊"));
}

/// HTML-only mail reads as text with the named entities editors write decoded (`&rsquo;`,
/// `&eacute;`, `&ndash;`, `&euro;`, `&hellip;`, `&copy;`).
#[test]
fn common_named_html_entities_are_decoded() {
    assert_eq!(
        html_to_text("<p>I&rsquo;m at the caf&eacute; &ndash; &euro;5 &hellip; &copy;</p>"),
        "I’m at the café – €5 … ©"
    );
}

/// Table cells in HTML mail (order confirmations, forms pasted into a reply) must stay
/// separate words.
#[test]
fn html_table_cells_are_not_glued_together() {
    let text = html_to_text("<table><tr><th>Order</th><th>Total</th></tr><tr><td>1234</td><td>€5</td></tr></table>");
    assert!(!text.contains("OrderTotal") && !text.contains("1234€5"), "{text:?}");
}

// ---------------------------------------------------------------------------------------------
// Automatic mail and bounces
// ---------------------------------------------------------------------------------------------

/// A read receipt (RFC 8098 MDN, `multipart/report; report-type=disposition-notification`) is
/// sent by software, not written by the customer: it must come back as a report or at least
/// carry an [`AutoReplySignal`] so the host does not auto-acknowledge it or reopen a resolved
/// conversation.
#[test]
fn read_receipts_are_not_a_persons_message() {
    let raw = b"From: Ana <ana@example.com>\r\nTo: support@example.com\r\nMessage-ID: <mdn1@example.com>\r\n\
        Subject: Read: Your parcel\r\nContent-Type: multipart/report; report-type=disposition-notification; boundary=\"R\"\r\n\r\n\
        --R\r\nContent-Type: text/plain\r\n\r\nYour message was read.\r\n\
        --R\r\nContent-Type: message/disposition-notification\r\n\r\nReporting-UA: mail.example.com\r\n\
        Final-Recipient: rfc822;ana@example.com\r\nOriginal-Message-ID: <77@support.example.com>\r\n\
        Disposition: automatic-action/MDN-sent-automatically; displayed\r\n--R--\r\n";
    match parse_raw(raw).unwrap() {
        InboundEmail::Bounce(_) => {}
        InboundEmail::Message(m) => assert!(m.is_auto_reply(), "an MDN parsed as a person's message: {:?}", m.message),
    }
}

/// `Auto-Submitted: no` marks a person's message (RFC 3834); a structured header may carry a
/// comment (`no (sent by a person)`).
#[test]
fn auto_submitted_no_with_a_comment_is_a_persons_message() {
    let raw =
        b"From: ana@example.com\r\nMessage-ID: <c@x.example>\r\nAuto-Submitted: no (sent by a person)\r\n\r\nhi\r\n";
    let mail = message(raw);
    assert!(!mail.is_auto_reply(), "{:?}", mail.auto_reply);
}

/// A bounce must find our Message-ID in the returned headers however the MTA folded them
/// (`Message-ID:` on one line, the id on the next, as Exchange and others write long ids), and
/// give the failed receipt.
#[test]
fn a_folded_message_id_in_returned_headers_is_found() {
    let id = "conversation-6f1c2e4a-9b7d-4c3e-8a21-0d5b7e9f1234-messages-77@support.example.com";
    let dsn = format!(
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\nTo: support@example.com\r\n\
         Subject: Undelivered Mail\r\nMessage-ID: <dsn1@mx.example.org>\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"R\"\r\n\r\n\
         --R\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\
         --R\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n\
         Final-Recipient: rfc822; ana@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n\
         --R\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: support@example.com\r\nTo: ana@example.net\r\n\
         Message-ID:\r\n <{id}>\r\nSubject: Your parcel\r\n\r\n--R--\r\n"
    );
    let b = bounce(dsn.as_bytes());
    assert_eq!(b.original_message_id.as_deref(), Some(id));
    assert_eq!(b.receipts.len(), 1);

    let plain = format!(
        "From: MAILER-DAEMON@mx.example.org\r\nSubject: failure notice\r\n\r\nSorry, we were unable to deliver.\r\n\r\n\
         --- Below this line is a copy of the message.\r\n\r\nFrom: support@example.com\r\nMessage-ID:\r\n <{id}>\r\n\r\nhello\r\n"
    );
    let b = bounce(plain.as_bytes());
    assert_eq!(b.original_message_id.as_deref(), Some(id));
    assert_eq!(b.receipts.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Address normalisation
// ---------------------------------------------------------------------------------------------

/// Internationalised domains whose labels hold combining marks (a Devanagari virama, Thai tone
/// marks) take their punycode form (checked against Python's `idna` codec), and mail from them
/// parses.
#[test]
fn idn_labels_with_combining_marks_are_converted() {
    assert_eq!(normalize_email("kunde@हिन्दी.com").unwrap(), "kunde@xn--j2bd4cyah0f.com");
    assert_eq!(normalize_email("kunde@ตัวอย่าง.com").unwrap(), "kunde@xn--72c1a1bt4awk9o.com");
    let raw = "From: kunde@हिन्दी.com\r\nMessage-ID: <idn@x.example>\r\n\r\nनमस्ते\r\n";
    assert!(matches!(parse_raw(raw.as_bytes()), Ok(InboundEmail::Message(_))));
}

// ---------------------------------------------------------------------------------------------
// Truncated mail
// ---------------------------------------------------------------------------------------------

/// A multipart cut off before its closing boundary (a relay's size limit) still shows the
/// customer's words: an unfinished HTML or plain part becomes the body, not an attachment
/// named after its content type. A named attachment that was cut off stays an attachment.
#[test]
fn a_multipart_cut_off_before_its_closing_boundary_keeps_its_text() {
    let head = "From: ana@example.com\r\nTo: reply@support.example.com\r\nSubject: Order 1042\r\n";
    let cut = |id: &str, parts: &str| -> Vec<u8> {
        format!(
            "{head}Message-ID: <{id}@ana.example>\r\nContent-Type: multipart/alternative; boundary=\"B\"\r\n\r\n{parts}"
        )
        .into_bytes()
    };
    let html = message(&cut(
        "h",
        "--B\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>My order <b>1042</b> never arrived, can you",
    ));
    assert_eq!(text_of(&html), "My order 1042 never arrived, can you");
    assert!(html.attachments.is_empty(), "{:?}", html.attachments);

    let plain = message(&cut("p", "--B\r\nContent-Type: text/plain\r\n\r\nMy order 1042 never arrived"));
    assert_eq!(text_of(&plain), "My order 1042 never arrived");
    // A cut-off part still in its transfer encoding is decoded as far as it goes: whole base64
    // groups, quoted-printable escapes (a cut-off escape kept as written).
    let b64 = message(&cut(
        "b",
        "--B\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nTXkgb3JkZXIgMTA0MiBuZXZlciBhcnJp",
    ));
    assert_eq!(text_of(&b64), "My order 1042 never arri");
    // A cut inside a UTF-8 character ends the text at the last whole one: "Obrigada, já" whose
    // last base64 group holds "j" and the first byte of "á".
    let mid_char = message(&cut(
        "c",
        "--B\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nT2JyaWdhZGEsIGrD",
    ));
    assert_eq!(text_of(&mid_char), "Obrigada, j");
    let qp = message(&cut(
        "q",
        "--B\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
         <p>Meu pedido n=C3=A3o chegou, j=C3=A1 faz uma se=\r\nmana =C",
    ));
    assert_eq!(text_of(&qp), "Meu pedido não chegou, já faz uma semana =C");
    // In a mixed message, a cut-off unnamed HTML part is the body; a complete one would be an
    // attachment, and is not taken for the text.
    let mixed = message(
        format!(
            "{head}Message-ID: <m@ana.example>\r\nContent-Type: multipart/mixed; boundary=\"M\"\r\n\r\n\
             --M\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n\
             --M\r\nContent-Type: text/html\r\n\r\n<p>Photo of the box attached, it came"
        )
        .as_bytes(),
    );
    assert_eq!(text_of(&mixed), "Photo of the box attached, it came");
    assert_eq!(mixed.attachments.len(), 1);
    assert_eq!(mixed.attachments[0].content_type, "image/png");

    // A single part whose quoted-printable the parser gives up on (a stray `==`) keeps its words.
    let bad_qp = message(
        format!(
            "{head}Message-ID: <x@ana.example>\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n\r\nO pedido n=C3=A3o chegou == 2 dias\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(text_of(&bad_qp), "O pedido não chegou == 2 dias");

    // The text before a cut-off named attachment is the body; the attachment stays one.
    let raw = format!(
        "{head}Message-ID: <a@ana.example>\r\nContent-Type: multipart/mixed; boundary=\"M\"\r\n\r\n\
         --M\r\nContent-Type: text/plain\r\n\r\nThe receipt is attached\r\n\
         --M\r\nContent-Type: text/plain; name=\"receipt.txt\"\r\nContent-Disposition: attachment; filename=\"receipt.txt\"\r\n\r\nTotal: 42"
    );
    let with_file = message(raw.as_bytes());
    assert_eq!(text_of(&with_file), "The receipt is attached");
    assert_eq!(with_file.attachments.len(), 1);
    assert_eq!(with_file.attachments[0].filename.as_deref(), Some("receipt.txt"));

    // Only a named attachment, cut off: it is not taken for the customer's words.
    let raw = format!(
        "{head}Message-ID: <n@ana.example>\r\nContent-Type: multipart/mixed; boundary=\"M\"\r\n\r\n\
         --M\r\nContent-Type: text/plain; name=\"log.txt\"\r\nContent-Disposition: attachment; filename=\"log.txt\"\r\n\r\nline 1"
    );
    let only_file = message(raw.as_bytes());
    assert_eq!(text_of(&only_file), "[Attachment] log.txt");
    assert_eq!(only_file.attachments.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Review: defects found
// ---------------------------------------------------------------------------------------------

/// A `multipart/alternative` whose text/plain part is empty (or only white space) must fall
/// back to the HTML part: that is where the customer's words are.
#[test]
fn an_empty_plain_alternative_does_not_hide_the_html_body() {
    let alt = |id: &str, subject: &str| {
        format!(
            "From: Ana <ana@example.com>\r\nTo: support@example.com\r\n{subject}Message-ID: <{id}@example.com>\r\n\
             Content-Type: multipart/alternative; boundary=\"B\"\r\n\r\n\
             --B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\r\n\
             --B\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>My parcel never arrived.</p>\r\n--B--\r\n"
        )
    };
    let with_subject = parse_raw(alt("e1", "Subject: Order 1042\r\n").as_bytes());
    match with_subject {
        Ok(InboundEmail::Message(m)) => assert_eq!(text_of(&m), "My parcel never arrived."),
        other => panic!("{other:?}"),
    }
    let without_subject = parse_raw(alt("e2", "").as_bytes());
    assert!(
        matches!(&without_subject, Ok(InboundEmail::Message(m)) if text_of(m) == "My parcel never arrived."),
        "{without_subject:?}"
    );
}

/// RFC 2047 §2: a header line holding encoded words is at most 76 characters; the builder
/// promises 78. A sender name of a few dozen non-ASCII bytes must be folded between its
/// encoded words.
#[test]
fn long_non_ascii_display_names_are_folded() {
    let inbox = inbox();
    let email = EmailBuilder::new(
        Mailbox::named("Équipe Support Client — Boutique Exemple", "support@example.com"),
        Mailbox::named("José Müller-Lüdenscheidt", "jose@example.net"),
        "Re: Ihre Bestellung",
        "Hallo",
    )
    .reply_token(&inbox, "6f1c2e4a")
    .unwrap()
    .build(chrono::Utc::now())
    .unwrap();
    let long: Vec<String> = email
        .bytes
        .split(|b| *b == b'\n')
        .filter(|l| l.len() > 78 + 1)
        .map(|l| String::from_utf8_lossy(l).into())
        .collect();
    assert!(long.is_empty(), "lines over 78 characters: {long:?}");
    let parsed = mail_parser::MessageParser::default().parse(&email.bytes).unwrap();
    assert_eq!(parsed.from().unwrap().first().unwrap().name(), Some("Équipe Support Client — Boutique Exemple"));
}

/// A customer mail without a Message-ID is keyed by its content hash (`sha256:…`); answering it
/// the documented way (`replying_to(external_id, references)`) must still build a message.
#[test]
fn a_reply_to_a_mail_without_message_id_can_be_built() {
    let mail =
        message(b"From: ana@example.com\r\nTo: support@example.com\r\nSubject: hello\r\n\r\nWhere is my parcel?\r\n");
    assert!(mail.message.external_id.starts_with("sha256:"));
    let reply = EmailBuilder::new(
        Mailbox::named("Acme Support", "support@example.com"),
        Mailbox::new("ana@example.com"),
        "Re: hello",
        "It is on its way.",
    )
    .replying_to(&mail.message.external_id, &mail.message.thread.references)
    .build(chrono::Utc::now());
    assert!(reply.is_ok(), "{reply:?}");
}

/// HTML allows `</head>` to be left out; the body after it is the customer's message.
#[test]
fn html_without_a_closing_head_tag_keeps_its_body() {
    let raw =
        b"From: ana@example.com\r\nMessage-ID: <h1@example.com>\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
        <html><head><meta charset=utf-8><body><p>My parcel never arrived.</p></body></html>\r\n";
    let got = parse_raw(raw);
    assert!(matches!(&got, Ok(InboundEmail::Message(m)) if text_of(m) == "My parcel never arrived."), "{got:?}");
}

/// RFC 5322 §3.6.4: a reply to a mail that has `In-Reply-To` but no `References` refers to the
/// parent's `In-Reply-To` and then the parent. Answering the documented way must keep the
/// grandparent, or clients that thread by `References` split the conversation.
#[test]
fn a_reply_to_a_mail_without_references_keeps_its_in_reply_to() {
    let mail = message(
        b"From: ana@example.com\r\nTo: support@example.com\r\nSubject: Re: parcel\r\n\
        Message-ID: <c2@mail.example.com>\r\nIn-Reply-To: <s1@support.example.com>\r\n\r\nStill nothing.\r\n",
    );
    assert_eq!(mail.message.thread.in_reply_to.as_deref(), Some("s1@support.example.com"));
    assert_eq!(mail.message.thread.references, vec!["s1@support.example.com".to_owned()]);
    let reply = EmailBuilder::new(
        Mailbox::named("Acme Support", "support@example.com"),
        Mailbox::new("ana@example.com"),
        "Re: parcel",
        "It left the depot today.",
    )
    .replying_to(&mail.message.external_id, &mail.message.thread.references)
    .message_id("s3@support.example.com")
    .build(chrono::Utc::now())
    .unwrap();
    let text = String::from_utf8(reply.bytes).unwrap();
    assert!(text.contains("\r\nIn-Reply-To: <c2@mail.example.com>\r\n"), "{text}");
    assert!(text.contains("\r\nReferences: <s1@support.example.com> <c2@mail.example.com>\r\n"), "{text}");
}
