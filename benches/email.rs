//! Email kit benchmark, measured against mail-parser in the same run.
//!
//! * `email/parse_to_inbound` — `channels::email::parse` of a 10 KB customer reply (trace and
//!   DKIM headers, `multipart/alternative` with a quoted text part and an HTML part, threading
//!   headers, a tokenised recipient) into an `InboundMessage`: MIME parsing, auto-reply checks,
//!   text extraction, quote stripping, threading hints. Target: ≤ 20 µs median.
//! * the floor — `mail_parser::MessageParser::default().parse` of the same bytes (the MIME
//!   parsing the kit builds on), timed right after the kit in every routine call.
//!
//! Each routine call times the kit and then mail-parser over the same number of iterations, so
//! both see the same machine load and the ratio stays meaningful on a shared machine. The medians
//! and their ratio are printed to stderr after the group, in wall time and in the thread's **CPU
//! time** where Linux reports it (`/proc/thread-self/schedstat`; wall time on a shared machine
//! includes waiting for a core). A median is taken over the measured samples (the last
//! `sample_size` calls of a routine; criterion's warm-up calls come first), the statistic
//! criterion reports. The target is judged on CPU time when available.
//!
//! Instruction counts (stable on a loaded machine): with `BENCH_CALLS=N` set, the bench skips
//! criterion and calls the kit `N` times, then mail-parser `N` times, each in its own
//! never-inlined function, for a profiler:
//!
//! ```text
//! BENCH_CALLS=2000 valgrind --tool=callgrind --callgrind-out-file=email.cg target/release/deps/email-<hash>
//! callgrind_annotate --inclusive=yes email.cg | grep -E 'calls_(kit|floor)'
//! ```
//!
//! (inclusive instructions of `calls_kit` / `calls_floor`, divided by `N`).

use criterion::Criterion;
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Instant;
use touchpoint::channels::email::{EmailInbox, InboundEmail, SenderAuth, parse};
use touchpoint::model::{Content, EndpointId};

#[path = "support/mod.rs"]
mod support;
use support::{Samples, thread_cpu_ns};

const SAMPLES: usize = 50;

/// A customer's reply of about 10 KB, CRLF line endings.
fn ten_kb_email() -> Vec<u8> {
    let mut m = String::new();
    for hop in 0..4 {
        let _ = write!(
            m,
            "Received: from mx{hop}.mail.example.net (mx{hop}.mail.example.net [192.0.2.{hop}])\r\n\
             \tby mx.support.example.com (Postfix) with ESMTPS id 4Y0000000{hop}\r\n\
             \tfor <reply+6f1c2e4a9b7d4c3e8a210d5b7e9f1234@support.example.com>; Wed, 01 Jan 2025 10:00:0{hop} +0000\r\n"
        );
    }
    m.push_str(
        "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.net; s=s1; h=from:to:subject:date:message-id;\r\n\
         \tbh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=dGVzdHNpZ25hdHVyZWRhdGFkb2Vzbm90dmVyaWZ5dGhpc2lzYWJlbmNobWFyaw==\r\n\
         Authentication-Results: mx.support.example.com; dkim=pass header.d=example.net; dmarc=pass\r\n\
         From: Ada Example <ada@example.net>\r\n\
         To: \"Acme Support\" <reply+6f1c2e4a9b7d4c3e8a210d5b7e9f1234@support.example.com>\r\n\
         Subject: Re: [Ticket#100042] Parcel not arrived\r\n\
         Date: Wed, 01 Jan 2025 10:00:00 +0000\r\n\
         Message-ID: <CAFAKE0001.ada@mail.example.net>\r\n\
         In-Reply-To: <77.6f1c2e4a@support.example.com>\r\n\
         References: <CAFAKE0000.ada@mail.example.net> <76.6f1c2e4a@support.example.com>\r\n \
         <77.6f1c2e4a@support.example.com>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/alternative; boundary=\"000000000000b0b0b0b0b0b0b0b0\"\r\n\r\n\
         --000000000000b0b0b0b0b0b0b0b0\r\n\
         Content-Type: text/plain; charset=\"UTF-8\"\r\n\r\n",
    );
    let reply = "Still nothing today, can you check with the courier? The tracking page has said \
                 \"out for delivery\" since Monday and nobody rang the bell.";
    let _ = write!(
        m,
        "{reply}\r\n\r\nThanks,\r\nAda\r\n\r\nOn Tue, 31 Dec 2024 at 17:02, Acme Support <support@example.com> wrote:\r\n"
    );
    for i in 0..55 {
        let _ = write!(m, "> Earlier message line {i:02}: we are looking into your parcel with the courier today.\r\n");
    }
    m.push_str("\r\n--000000000000b0b0b0b0b0b0b0b0\r\nContent-Type: text/html; charset=\"UTF-8\"\r\n\r\n");
    let _ = write!(m, "<div dir=\"ltr\"><div>{reply}</div><div><br></div><div>Thanks,</div><div>Ada</div></div>");
    m.push_str("<div class=\"gmail_quote\"><div>On Tue, 31 Dec 2024 at 17:02, Acme Support wrote:</div><blockquote>");
    for i in 0..45 {
        let _ = write!(m, "<div>Earlier message line {i:02}: we are looking into your parcel today.</div>");
    }
    m.push_str("</blockquote></div>\r\n--000000000000b0b0b0b0b0b0b0b0--\r\n");
    m.into_bytes()
}

/// `n` calls of the kit (a profiler reads this function's inclusive cost).
#[inline(never)]
fn calls_kit(n: usize, raw: &[u8], inbox: &EmailInbox) {
    for _ in 0..n {
        black_box(parse(black_box(raw), inbox, SenderAuth::Authenticated).expect("parse"));
    }
}

/// `n` calls of mail-parser alone, the floor.
#[inline(never)]
fn calls_floor(n: usize, raw: &[u8], parser: &mail_parser::MessageParser) {
    for _ in 0..n {
        black_box(parser.parse(black_box(raw)).expect("mail-parser"));
    }
}

fn main() {
    let raw = ten_kb_email();
    let inbox = EmailInbox::new(EndpointId::new("support-inbox").expect("endpoint"), "reply@support.example.com")
        .expect("inbox");
    if let Some(n) = std::env::var("BENCH_CALLS").ok().and_then(|v| v.parse().ok()) {
        calls_kit(n, &raw, &inbox);
        calls_floor(n, &raw, &mail_parser::MessageParser::default());
        eprintln!("{n} calls each of calls_kit and calls_floor");
        return;
    }
    let mut c = Criterion::default().configure_from_args();

    // The benchmark measures the intended work: check the result once.
    let InboundEmail::Message(parsed) = parse(&raw, &inbox, SenderAuth::Authenticated).expect("parse") else {
        panic!("the benchmark email is a message")
    };
    assert!(matches!(&parsed.message.content, Content::Text { body } if body.starts_with("Still nothing today")));
    assert_eq!(parsed.message.thread.reply_token.as_deref(), Some("6f1c2e4a9b7d4c3e8a210d5b7e9f1234"));
    assert_eq!(parsed.message.thread.references.len(), 3);
    eprintln!("benchmark email: {} bytes", raw.len());

    let mut group = c.benchmark_group("email");
    group.sample_size(SAMPLES);
    let (mut subject, mut floor) = (Samples::default(), Samples::default());
    let (mut subject_cpu, mut floor_cpu) = (Samples::default(), Samples::default());
    let parser = mail_parser::MessageParser::default();
    group.bench_function("parse_to_inbound", |b| {
        b.iter_custom(|iters| {
            let cpu0 = thread_cpu_ns();
            let start = Instant::now();
            for _ in 0..iters {
                black_box(parse(black_box(&raw), &inbox, SenderAuth::Authenticated).expect("parse"));
            }
            let elapsed = start.elapsed();
            let cpu1 = thread_cpu_ns();
            let floor_start = Instant::now();
            for _ in 0..iters {
                black_box(parser.parse(black_box(&raw)).expect("mail-parser"));
            }
            floor.push(floor_start.elapsed(), iters);
            let cpu2 = thread_cpu_ns();
            subject.push(elapsed, iters);
            subject_cpu.push_cpu(cpu0, cpu1, iters);
            floor_cpu.push_cpu(cpu1, cpu2, iters);
            elapsed
        })
    });
    group.finish();
    c.final_summary();

    let (ours, base) = (subject.median(SAMPLES), floor.median(SAMPLES));
    let cpu = subject_cpu.median(SAMPLES).zip(floor_cpu.median(SAMPLES));
    let line = match (ours, base) {
        (Some(o), Some(b)) => {
            let judged = cpu.map_or(o, |(oc, _)| oc);
            let verdict = if judged <= 20_000.0 { "meets target <= 20 µs" } else { "MISSES target <= 20 µs" };
            let cpu_part = match cpu {
                Some((oc, bc)) => {
                    format!("; CPU time {:.2} µs vs {:.2} µs: ratio {:.2}x", oc / 1000.0, bc / 1000.0, oc / bc)
                }
                None => String::new(),
            };
            format!(
                "email/parse_to_inbound median wall {:.2} µs vs mail-parser parse {:.2} µs: ratio {:.2}x{cpu_part}; {verdict}",
                o / 1000.0,
                b / 1000.0,
                o / b
            )
        }
        _ => "email: no samples (run without --test / --list)".to_owned(),
    };
    eprintln!("\n>> {line}\n");
}
