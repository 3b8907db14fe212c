//! Webhook signature checks through the public API.
//!
//! Test vectors, and how each was produced:
//! * Meta, Twilio (form) and Slack "reference" vectors: `shared/reference/channel-facts.md` §0.1,
//!   recomputed independently with Python's `hmac` module (`hmac.new(secret, msg, sha256)
//!   .hexdigest()` / `base64.b64encode(hmac.new(token, url + sorted name+value, sha1).digest())`)
//!   before being pasted here — all three matched.
//! * Meta over the Messenger fixture: computed with Python's `hmac` for this test
//!   (`hmac.new(b"another_app_secret", open(fixture,"rb").read(), hashlib.sha256).hexdigest()`).
//! * Twilio `0/KCTR6DLpKmkAf8muzZqo1nDgQ=`: the worked example of Twilio's webhook-security guide
//!   (auth token `12345`), also reproduced with Python.
//! * Twilio JSON body: body hash `5ccde714…` is the one in Twilio's published JSON-body sample;
//!   the signature `hPXmLwIy3Fgqv1i9KPmH/HhQ6zo=` (token `12345`) was computed with Python's
//!   `hmac` over the URL including `bodySHA256`.
//! * Slack `a2114d57…`: the example of Slack's "Verifying requests from Slack" guide (signing
//!   secret `8f742231b10e8888abcd99yyyzzz85a5`, timestamp `1531420618`), reproduced with Python.

use chrono::{DateTime, TimeZone, Utc};
use touchpoint::channels::signature::{
    MetaSignature, SLACK_MAX_SKEW_SECONDS, SlackSignature, TelegramSecretToken, TwilioSignature, decode_form,
};
use touchpoint::{Error, SignatureFailure};

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn failure(result: Result<(), Error>) -> (&'static str, SignatureFailure) {
    match result {
        Err(Error::Unauthenticated { header, failure }) => (header, failure),
        other => panic!("expected an authentication failure, got {other:?}"),
    }
}

fn malformed(result: Result<(), Error>) -> bool {
    matches!(failure(result).1, SignatureFailure::Malformed(_))
}

// ----- Meta -----

const META_VECTOR: &str = "sha256=136088737a5b8a0f17850ddacbc9e7580bb3fad10d0eba905290ea7c8f870821";

#[test]
fn meta_reference_vector_verifies_and_signs() {
    let body = fixture("whatsapp/text.json");
    let meta = MetaSignature::new("test_app_secret_0001");
    assert!(meta.verify(Some(META_VECTOR), &body).is_ok());
    assert_eq!(meta.sign(&body), META_VECTOR);

    let other = MetaSignature::new(b"another_app_secret");
    let messenger = fixture("messenger/quick_reply_and_delivery.json");
    assert!(
        other
            .verify(Some("sha256=1cf00337aa4c15b5ea45e5066a80022ec47d67fa56126177929f1184847f4770"), &messenger)
            .is_ok()
    );
}

#[test]
fn meta_rejects_changed_bodies_wrong_secrets_and_bad_headers() {
    let body = fixture("whatsapp/text.json");
    let meta = MetaSignature::new("test_app_secret_0001");
    let mut changed = body.clone();
    changed[10] ^= 1;
    assert_eq!(failure(meta.verify(Some(META_VECTOR), &changed)), ("X-Hub-Signature-256", SignatureFailure::Mismatch));
    assert_eq!(failure(MetaSignature::new("wrong").verify(Some(META_VECTOR), &body)).1, SignatureFailure::Mismatch);
    assert_eq!(failure(meta.verify(None, &body)).1, SignatureFailure::MissingHeader);
    // Without the prefix, with a SHA-1 prefix, truncated, not hex.
    assert!(malformed(meta.verify(Some(&META_VECTOR[7..]), &body)));
    assert!(malformed(meta.verify(Some(&META_VECTOR.replace("sha256=", "sha1=")), &body)));
    assert!(malformed(meta.verify(Some(&META_VECTOR[..70]), &body)));
    assert!(malformed(meta.verify(Some(&format!("sha256={}", "zz".repeat(32))), &body)));
    assert!(malformed(meta.verify(Some(""), &body)));
}

#[test]
fn meta_subscription_handshake_echoes_the_challenge_only_for_the_right_token() {
    assert_eq!(MetaSignature::verify_subscription(Some("subscribe"), Some("tok"), Some("42"), "tok").unwrap(), "42");
    assert_eq!(
        failure(MetaSignature::verify_subscription(Some("subscribe"), Some("tok2"), Some("42"), "tok").map(|_| ())).1,
        SignatureFailure::Mismatch
    );
    assert_eq!(
        failure(MetaSignature::verify_subscription(Some("subscribe"), None, Some("42"), "tok").map(|_| ())).1,
        SignatureFailure::MissingHeader
    );
    assert!(matches!(
        MetaSignature::verify_subscription(Some("unsubscribe"), Some("tok"), Some("42"), "tok"),
        Err(Error::InvalidInput { field: "hub.mode", .. })
    ));
    assert!(MetaSignature::verify_subscription(Some("subscribe"), Some("tok"), None, "tok").is_err());
}

#[test]
fn secrets_never_show_in_debug_output() {
    let shown = format!(
        "{:?} {:?} {:?} {:?}",
        MetaSignature::new("meta-secret-value"),
        TwilioSignature::new("twilio-secret-value"),
        SlackSignature::new("slack-secret-value"),
        TelegramSecretToken::new("telegram-secret-value").unwrap()
    );
    assert!(!shown.contains("secret-value"), "{shown}");
}

// ----- Twilio -----

const TWILIO_URL: &str = "https://hooks.example.com/twilio/sms";
const TWILIO_FORM: &[u8] = b"AccountSid=AC00000000000000000000000000000001&Body=Where+is+order+5521%3F&From=%2B447700900123&MessageSid=SM00000000000000000000000000000001&NumMedia=0&NumSegments=1&SmsSid=SM00000000000000000000000000000001&To=%2B15550001111";

#[test]
fn twilio_reference_vector_verifies_from_the_raw_form_and_from_decoded_params() {
    let twilio = TwilioSignature::new("test_auth_token_0001");
    assert!(twilio.verify_form(Some("9a5IpTc/KEMPGA6DhuhnHxcAtEs="), TWILIO_URL, TWILIO_FORM).is_ok());
    let params = decode_form(TWILIO_FORM).unwrap();
    assert_eq!(twilio.sign(TWILIO_URL, &params), "9a5IpTc/KEMPGA6DhuhnHxcAtEs=");
    // Parameter order on the wire does not matter: Twilio signs them sorted.
    let mut reversed = params.clone();
    reversed.reverse();
    assert!(twilio.verify(Some("9a5IpTc/KEMPGA6DhuhnHxcAtEs="), TWILIO_URL, &reversed).is_ok());
}

#[test]
fn twilio_published_example_verifies() {
    let twilio = TwilioSignature::new("12345");
    let params = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+12349013030"),
        ("Digits", "1234"),
        ("From", "+12349013030"),
        ("To", "+18005551212"),
    ];
    let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    assert_eq!(twilio.sign(url, &params), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
    assert!(twilio.verify(Some("0/KCTR6DLpKmkAf8muzZqo1nDgQ="), url, &params).is_ok());
    // The same request seen behind a proxy that spells out the default port still verifies.
    assert!(
        twilio
            .verify(Some("0/KCTR6DLpKmkAf8muzZqo1nDgQ="), "https://mycompany.com:443/myapp.php?foo=1&bar=2", &params)
            .is_ok()
    );
    // But another scheme, host, path or query does not.
    for wrong in [
        "http://mycompany.com/myapp.php?foo=1&bar=2",
        "https://mycompany.com:8443/myapp.php?foo=1&bar=2",
        "https://mycompany.com/myapp.php?foo=1&bar=3",
        "https://evil.example/myapp.php?foo=1&bar=2",
    ] {
        assert_eq!(
            failure(twilio.verify(Some("0/KCTR6DLpKmkAf8muzZqo1nDgQ="), wrong, &params)).1,
            SignatureFailure::Mismatch,
            "{wrong}"
        );
    }
}

#[test]
fn twilio_rejects_added_or_changed_parameters_and_bad_headers() {
    let twilio = TwilioSignature::new("test_auth_token_0001");
    let mut params = decode_form(TWILIO_FORM).unwrap();
    params.push(("OptOutType".into(), "STOP".into()));
    let (header, why) = failure(twilio.verify(Some("9a5IpTc/KEMPGA6DhuhnHxcAtEs="), TWILIO_URL, &params));
    assert_eq!((header, why), ("X-Twilio-Signature", SignatureFailure::Mismatch));
    let changed = String::from_utf8(TWILIO_FORM.to_vec()).unwrap().replace("5521", "5522");
    assert_eq!(
        failure(twilio.verify_form(Some("9a5IpTc/KEMPGA6DhuhnHxcAtEs="), TWILIO_URL, changed.as_bytes())).1,
        SignatureFailure::Mismatch
    );
    assert_eq!(failure(twilio.verify_form(None, TWILIO_URL, TWILIO_FORM)).1, SignatureFailure::MissingHeader);
    for bad in ["", "not base64!", "9a5IpTc/KEMPGA6DhuhnHxcAtEs", "9a5IpTc/KEMPGA6DhuhnHxcA=Es=", "AAAA"] {
        assert!(malformed(twilio.verify_form(Some(bad), TWILIO_URL, TWILIO_FORM)), "{bad:?}");
    }
    assert!(matches!(twilio.verify_form(Some("x"), TWILIO_URL, b"Body=%G1"), Err(Error::InvalidInput { .. })));
}

/// A name sent more than once is signed as Twilio's helper libraries sign it (twilio-python
/// `RequestValidator.compute_signature`, twilio-node `toFormUrlEncodedParam`): names sorted, then
/// each distinct value of the name once, values sorted. The first vector is the one in Twilio's
/// own test suites; the others were computed independently (Python 3 `hmac`/`hashlib`/`base64`
/// over `urllib.parse.parse_qsl(body, keep_blank_values=True)`, following twilio-python).
#[test]
fn twilio_repeated_names_are_signed_once_per_distinct_value_in_sorted_order() {
    let twilio = TwilioSignature::new("12345");
    let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    let body = b"Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234&Digits=1234";
    assert_eq!(twilio.sign(url, &decode_form(body).unwrap()), "IK+Dwps556ElfBT0I3Rgjkr1wJU=");
    assert!(twilio.verify_form(Some("IK+Dwps556ElfBT0I3Rgjkr1wJU="), url, body).is_ok());
    // The order on the wire does not matter, nor does how often a pair repeats.
    let reordered = b"Digits=1234&SidAccount=AC123&Digits=1234&Sid=CA123&Digits=5678";
    assert!(twilio.verify_form(Some("IK+Dwps556ElfBT0I3Rgjkr1wJU="), url, reordered).is_ok());
    let once_each = b"Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234";
    assert!(twilio.verify_form(Some("IK+Dwps556ElfBT0I3Rgjkr1wJU="), url, once_each).is_ok());
    // But a value that was not signed, or a signed value missing, is still a mismatch.
    for forged in [
        &b"Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234&Digits=9999"[..],
        b"Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234&Digits=1234+",
        b"Sid=CA123&SidAccount=AC123&Digits=5678",
        b"Sid=CA123&SidAccount=AC123&Digits=1234&Digits=1234",
        b"Sid=CA123&SidAccount=AC123&Digits=5678&digits=1234",
    ] {
        assert_eq!(
            failure(twilio.verify_form(Some("IK+Dwps556ElfBT0I3Rgjkr1wJU="), url, forged)).1,
            SignatureFailure::Mismatch,
            "{}",
            String::from_utf8_lossy(forged)
        );
    }

    // (signature, body sent once per pair, the same body with repeated pairs)
    let token = TwilioSignature::new("test_auth_token_0001");
    let cases: [(&str, &[u8], &[u8]); 4] = [
        // An MMS whose media URL arrives twice.
        (
            "n5XfkquDUEHaLuMksnWypgqEt50=",
            b"MessageSid=MM00000000000000000000000000000002&From=%2B15550002222&To=%2B15550001111&NumMedia=1\
              &MediaUrl0=https%3A%2F%2Fapi.twilio.example%2FMedia%2FME02&MediaUrl0=https%3A%2F%2Fapi.twilio.example%2FMedia%2FME01",
            b"MessageSid=MM00000000000000000000000000000002&From=%2B15550002222&To=%2B15550001111&NumMedia=1\
              &MediaUrl0=https%3A%2F%2Fapi.twilio.example%2FMedia%2FME02&MediaUrl0=https%3A%2F%2Fapi.twilio.example%2FMedia%2FME01\
              &MediaUrl0=https%3A%2F%2Fapi.twilio.example%2FMedia%2FME02",
        ),
        // Names that differ only in case are different names, sorted byte-wise (upper case first).
        (
            "C2RGn6s9UxtytP5zANfnwbB9FlE=",
            b"body=lower&Body=Upper&BODY=caps",
            b"body=lower&Body=Upper&BODY=caps&Body=Upper",
        ),
        // Empty values are signed as the bare name; `Flag` without `=` is an empty value too.
        (
            "CVosfwarfZaEJmrHH129TN2j+FY=",
            b"Body=&NumMedia=0&Flag&To=%2B15550001111",
            b"Body=&NumMedia=0&Flag&To=%2B15550001111&Body=&Flag=",
        ),
        // Names and values are signed decoded: `+` and `%20` are a space, `%XX` runs are UTF-8,
        // so `a+b` and `a%20b` are one value.
        (
            "OnPxmxy69Y2x4MDBtn6Jqt7jgII=",
            b"Body=Caf%C3%A9+%E2%82%AC5+ok%21&ProfileName=J%C3%BCrgen%20M%C3%BCller&From=%2B15550002222\
              &Tag=a+b&Tag=%E2%82%AC&Tag=z",
            b"Body=Caf%C3%A9+%E2%82%AC5+ok%21&ProfileName=J%C3%BCrgen%20M%C3%BCller&From=%2B15550002222\
              &Tag=a+b&Tag=%E2%82%AC&Tag=z&Tag=a%20b",
        ),
    ];
    for (signature, once, repeated) in cases {
        for body in [once, repeated] {
            let shown = String::from_utf8_lossy(body);
            assert!(token.verify_form(Some(signature), TWILIO_URL, body).is_ok(), "{shown}");
            assert_eq!(token.sign(TWILIO_URL, &decode_form(body).unwrap()), signature, "{shown}");
        }
    }
}

#[test]
fn twilio_json_bodies_are_bound_through_body_sha256() {
    let twilio = TwilioSignature::new("12345");
    let body = br#"{"CallSid":"CA1234567890ABCDE","Caller":"+12349013030"}"#;
    let url = "https://example.com/myapp?bodySHA256=5ccde7145dfb8f56479710896586cb9d5911809d83afbe34627818790db0aec9";
    assert!(twilio.verify_json(Some("hPXmLwIy3Fgqv1i9KPmH/HhQ6zo="), url, body).is_ok());
    // A different body under the same signed URL is caught by the hash.
    let other = br#"{"CallSid":"CA1234567890ABCDE","Caller":"+19999999999"}"#;
    assert_eq!(
        failure(twilio.verify_json(Some("hPXmLwIy3Fgqv1i9KPmH/HhQ6zo="), url, other)).1,
        SignatureFailure::Mismatch
    );
    // A URL without the hash cannot bind a body.
    let unbound = "https://example.com/myapp";
    let signature = twilio.sign::<&str, &str>(unbound, &[]);
    assert!(malformed(twilio.verify_json(Some(&signature), unbound, body)));
}

// ----- Telegram -----

#[test]
fn telegram_secret_token_is_compared_exactly() {
    let telegram = TelegramSecretToken::new("s3cr3t_Token-1").unwrap();
    assert!(telegram.verify(Some("s3cr3t_Token-1")).is_ok());
    for wrong in ["s3cr3t_Token-2", "s3cr3t_Token-1 ", "S3CR3T_TOKEN-1", "", "s3cr3t_Token-10"] {
        assert_eq!(
            failure(telegram.verify(Some(wrong))),
            ("X-Telegram-Bot-Api-Secret-Token", SignatureFailure::Mismatch),
            "{wrong:?}"
        );
    }
    assert_eq!(failure(telegram.verify(None)).1, SignatureFailure::MissingHeader);
    assert!(TelegramSecretToken::new("").is_err());
    assert!(TelegramSecretToken::new(&"a".repeat(257)).is_err());
    assert!(TelegramSecretToken::new(&"a".repeat(256)).is_ok());
    assert!(TelegramSecretToken::new("with space").is_err());
}

// ----- Slack -----

const SLACK_BODY: &[u8] = br#"{"type":"event_callback","team_id":"T0000TEST","api_app_id":"A0000TEST","event_id":"Ev0000TEST01","event_time":1735689600,"event":{"type":"message","channel":"C0000TEST","user":"U0000TEST","text":"printer is on fire","ts":"1735689600.000100","client_msg_id":"11111111-2222-3333-4444-555555555555"}}"#;
const SLACK_VECTOR: &str = "v0=5b4326ad2ca25fbd3609d88424d37db8122d0970176151568af2017840267c0e";

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).unwrap()
}

#[test]
fn slack_reference_and_published_vectors_verify() {
    let slack = SlackSignature::new("test_signing_secret_0001");
    assert!(slack.verify(Some(SLACK_VECTOR), Some("1735689600"), SLACK_BODY, t(1735689600)).is_ok());
    assert_eq!(slack.sign(1735689600, SLACK_BODY), SLACK_VECTOR);

    let docs = SlackSignature::new("8f742231b10e8888abcd99yyyzzz85a5");
    let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    assert!(
        docs.verify(
            Some("v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"),
            Some("1531420618"),
            body,
            t(1531420618 + 60)
        )
        .is_ok()
    );
}

#[test]
fn slack_replay_window_is_five_minutes_either_way() {
    let slack = SlackSignature::new("test_signing_secret_0001");
    let verify = |now| slack.verify(Some(SLACK_VECTOR), Some("1735689600"), SLACK_BODY, now);
    assert!(verify(t(1735689600 + SLACK_MAX_SKEW_SECONDS)).is_ok());
    assert!(verify(t(1735689600 - SLACK_MAX_SKEW_SECONDS)).is_ok());
    assert_eq!(
        failure(verify(t(1735689600 + 301))),
        ("X-Slack-Request-Timestamp", SignatureFailure::StaleTimestamp { skew_seconds: 301, max_skew_seconds: 300 })
    );
    assert_eq!(
        failure(verify(t(1735689600 - 301))).1,
        SignatureFailure::StaleTimestamp { skew_seconds: -301, max_skew_seconds: 300 }
    );
}

#[test]
fn slack_rejects_tampering_and_bad_headers() {
    let slack = SlackSignature::new("test_signing_secret_0001");
    let now = t(1735689600);
    let mut body = SLACK_BODY.to_vec();
    body[20] ^= 1;
    assert_eq!(
        failure(slack.verify(Some(SLACK_VECTOR), Some("1735689600"), &body, now)),
        ("X-Slack-Signature", SignatureFailure::Mismatch)
    );
    // The timestamp is part of what is signed.
    assert_eq!(
        failure(slack.verify(Some(SLACK_VECTOR), Some("1735689601"), SLACK_BODY, now)).1,
        SignatureFailure::Mismatch
    );
    assert_eq!(failure(slack.verify(None, Some("1735689600"), SLACK_BODY, now)).1, SignatureFailure::MissingHeader);
    assert_eq!(failure(slack.verify(Some(SLACK_VECTOR), None, SLACK_BODY, now)).1, SignatureFailure::MissingHeader);
    assert!(malformed(slack.verify(Some(SLACK_VECTOR), Some("yesterday"), SLACK_BODY, now)));
    assert!(malformed(slack.verify(Some(SLACK_VECTOR), Some("-1735689600"), SLACK_BODY, now)));
    assert!(malformed(slack.verify(Some(SLACK_VECTOR), Some("99999999999999999999999"), SLACK_BODY, now)));
    assert!(malformed(slack.verify(Some(&SLACK_VECTOR[3..]), Some("1735689600"), SLACK_BODY, now)));
    assert!(malformed(slack.verify(Some("v1=00"), Some("1735689600"), SLACK_BODY, now)));
}

#[test]
fn form_decoding_handles_plus_escapes_and_empty_values() {
    assert_eq!(
        decode_form(b"a=1+2&b=&c&d=%E2%82%AC&&e=x%3Dy").unwrap(),
        vec![
            ("a".to_owned(), "1 2".to_owned()),
            ("b".to_owned(), String::new()),
            ("c".to_owned(), String::new()),
            ("d".to_owned(), "€".to_owned()),
            ("e".to_owned(), "x=y".to_owned()),
        ]
    );
    assert!(decode_form(b"a=%").is_err());
    assert!(decode_form(b"a=%4").is_err());
    assert!(decode_form(b"a=%FF").is_err());
}
