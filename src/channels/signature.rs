//! Webhook authenticity checks: prove a request came from the provider before parsing it.
//!
//! | provider | header | proof | type |
//! |---|---|---|---|
//! | Meta (WhatsApp Cloud API, Messenger, Instagram) | `X-Hub-Signature-256` | `sha256=` + hex HMAC-SHA256 of the raw body, keyed with the app secret | [`MetaSignature`] |
//! | Twilio | `X-Twilio-Signature` | base64 HMAC-SHA1 of the full URL + the POST parameters sorted by name, each name followed by its value (a repeated name: each distinct value once, sorted); JSON bodies are bound through the URL's `bodySHA256` parameter | [`TwilioSignature`] |
//! | Telegram Bot API | `X-Telegram-Bot-Api-Secret-Token` | the `secret_token` chosen at `setWebhook`, compared in constant time | [`TelegramSecretToken`] |
//! | Slack | `X-Slack-Signature` + `X-Slack-Request-Timestamp` | `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}`, timestamp within 5 minutes of now | [`SlackSignature`] |
//!
//! Every check compares in constant time and fails with
//! [`Error::Unauthenticated`], whose
//! [`SignatureFailure`] says whether the header was missing, malformed, wrong, or (Slack) too old.
//! Pass header values exactly as received (`None` when the header is absent) and the body as the
//! raw bytes — not re-serialised JSON, whose bytes differ.
//!
//! ```
//! use touchpoint::channels::signature::MetaSignature;
//! use touchpoint::{Error, SignatureFailure};
//!
//! let meta = MetaSignature::new(b"app-secret");
//! let body = br#"{"object":"page","entry":[]}"#;
//! let header = meta.sign(body); // what Meta sends: "sha256=…"
//! assert!(meta.verify(Some(&header), body).is_ok());
//!
//! let tampered = br#"{"object":"page","entry":[{}]}"#;
//! assert!(matches!(
//!     meta.verify(Some(&header), tampered),
//!     Err(Error::Unauthenticated { failure: SignatureFailure::Mismatch, .. })
//! ));
//! assert!(matches!(
//!     meta.verify(None, body),
//!     Err(Error::Unauthenticated { failure: SignatureFailure::MissingHeader, .. })
//! ));
//! ```

use crate::{Error, Result};
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::fmt;

pub use crate::error::SignatureFailure;

/// Meta's signature header (WhatsApp Cloud API, Messenger, Instagram).
pub const META_SIGNATURE_HEADER: &str = "X-Hub-Signature-256";
/// Twilio's signature header.
pub const TWILIO_SIGNATURE_HEADER: &str = "X-Twilio-Signature";
/// Telegram's secret-token header.
pub const TELEGRAM_SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";
/// Slack's signature header.
pub const SLACK_SIGNATURE_HEADER: &str = "X-Slack-Signature";
/// Slack's timestamp header.
pub const SLACK_TIMESTAMP_HEADER: &str = "X-Slack-Request-Timestamp";
/// Slack's replay window: requests signed further than this from now are rejected (the value
/// the official SDKs use).
pub const SLACK_MAX_SKEW_SECONDS: i64 = 300;

fn fail(header: &'static str, failure: SignatureFailure) -> Error {
    Error::Unauthenticated { header, failure }
}

/// Whether a secret is missing (empty or white space only, as an unset variable reads): an
/// HMAC keyed with it is one anybody can compute.
fn no_secret(secret: &[u8]) -> bool {
    secret.iter().all(u8::is_ascii_whitespace)
}

/// A verifier made without a secret refuses every request.
fn refuse_keyless(header: &'static str, keyless: bool) -> Result<()> {
    if keyless { Err(fail(header, SignatureFailure::NoSecret)) } else { Ok(()) }
}

fn malformed(header: &'static str, why: impl Into<String>) -> Error {
    fail(header, SignatureFailure::Malformed(why.into()))
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes.chunks_exact(2).map(|pair| Some((nibble(pair[0])? << 4) | nibble(pair[1])?)).collect()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(B64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    }
    let bytes = text.as_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let last = bytes.len() / 4 - 1;
    for (i, quad) in bytes.chunks_exact(4).enumerate() {
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && i != last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &quad[..4 - pad] {
            n = (n << 6) | sextet(c)?;
        }
        n <<= 6 * pad as u32;
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&decoded[..3 - pad]);
    }
    Some(out)
}

/// Verifies Meta's `X-Hub-Signature-256` header (WhatsApp Cloud API, Messenger, Instagram):
/// `sha256=` followed by the lowercase hex HMAC-SHA256 of the raw body, keyed with the app
/// secret.
///
/// Also answers the subscription handshake ([`MetaSignature::verify_subscription`]).
#[derive(Clone)]
pub struct MetaSignature {
    mac: Hmac<Sha256>,
    keyless: bool,
}

impl fmt::Debug for MetaSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MetaSignature { app_secret: <redacted> }")
    }
}

impl MetaSignature {
    /// A verifier keyed with the app secret (App Dashboard → Settings → Basic).
    /// An empty secret (an unset variable) gives a verifier that refuses every request
    /// ([`SignatureFailure::NoSecret`]).
    pub fn new(app_secret: impl AsRef<[u8]>) -> Self {
        // HMAC accepts keys of any length; the error branch cannot be taken.
        let mac = Hmac::<Sha256>::new_from_slice(app_secret.as_ref())
            .unwrap_or_else(|_| Hmac::<Sha256>::new(&Default::default()));
        MetaSignature { mac, keyless: no_secret(app_secret.as_ref()) }
    }

    /// The header value Meta sends for `body`: `sha256=<hex>`.
    pub fn sign(&self, body: &[u8]) -> String {
        let tag = self.mac.clone().chain_update(body).finalize().into_bytes();
        format!("sha256={}", hex_encode(&tag))
    }

    /// Checks `header` (the `X-Hub-Signature-256` value, `None` if absent) against `body`.
    pub fn verify(&self, header: Option<&str>, body: &[u8]) -> Result<()> {
        const H: &str = META_SIGNATURE_HEADER;
        refuse_keyless(H, self.keyless)?;
        let header = header.ok_or_else(|| fail(H, SignatureFailure::MissingHeader))?.trim();
        let hex = header
            .strip_prefix("sha256=")
            .ok_or_else(|| malformed(H, "expected `sha256=` followed by 64 hex digits"))?;
        let expected = hex_decode(hex)
            .filter(|b| b.len() == 32)
            .ok_or_else(|| malformed(H, "expected `sha256=` followed by 64 hex digits"))?;
        self.mac.clone().chain_update(body).verify_slice(&expected).map_err(|_| fail(H, SignatureFailure::Mismatch))
    }

    /// Answers Meta's subscription handshake (a GET with `hub.mode`, `hub.verify_token` and
    /// `hub.challenge`): returns the challenge to echo with HTTP 200 when the mode is
    /// `subscribe` and the token is the one configured in the App Dashboard.
    ///
    /// ```
    /// use touchpoint::channels::signature::MetaSignature;
    /// let challenge = MetaSignature::verify_subscription(
    ///     Some("subscribe"), Some("my-verify-token"), Some("1158201444"), "my-verify-token",
    /// ).unwrap();
    /// assert_eq!(challenge, "1158201444");
    /// assert!(MetaSignature::verify_subscription(Some("subscribe"), Some("guess"), Some("1"), "my-verify-token").is_err());
    /// ```
    pub fn verify_subscription<'a>(
        mode: Option<&str>,
        verify_token: Option<&str>,
        challenge: Option<&'a str>,
        expected_token: &str,
    ) -> Result<&'a str> {
        const H: &str = "hub.verify_token";
        if mode != Some("subscribe") {
            return Err(Error::invalid("hub.mode", "must be `subscribe`"));
        }
        let token = verify_token.ok_or_else(|| fail(H, SignatureFailure::MissingHeader))?;
        if !constant_time_eq(&Sha256::digest(token.as_bytes()), &Sha256::digest(expected_token.as_bytes())) {
            return Err(fail(H, SignatureFailure::Mismatch));
        }
        challenge.filter(|c| !c.is_empty()).ok_or_else(|| Error::invalid("hub.challenge", "missing"))
    }
}

/// Verifies Twilio's `X-Twilio-Signature` header: base64 HMAC-SHA1, keyed with the account's
/// auth token, over the full URL Twilio requested followed by every POST parameter's name and
/// value, sorted by name, without separators.
///
/// A name that arrives more than once (`Digits=5678&Digits=1234&Digits=1234`) is signed as
/// Twilio's helper libraries sign it: once per distinct value, values sorted
/// (`Digits1234Digits5678`). Names and values are compared byte-wise, so names differing only in
/// case are different names and upper case sorts first. Parameters are signed decoded (`+` and
/// `%20` are a space); an empty value is signed as the bare name.
///
/// The URL must be the public one Twilio called (scheme, host, port, path and query): behind a
/// TLS-terminating proxy, rebuild it from the configured webhook URL, not from the request line.
/// As Twilio's own libraries do, a URL with the scheme's default port (`:443`, `:80`) also
/// matches a signature computed without it, and the other way round.
///
/// ```
/// use touchpoint::channels::signature::TwilioSignature;
/// // The worked example of Twilio's webhook-security guide.
/// let twilio = TwilioSignature::new("12345");
/// let params = [
///     ("CallSid", "CA1234567890ABCDE"),
///     ("Caller", "+12349013030"),
///     ("Digits", "1234"),
///     ("From", "+12349013030"),
///     ("To", "+18005551212"),
/// ];
/// let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
/// assert!(twilio.verify(Some("0/KCTR6DLpKmkAf8muzZqo1nDgQ="), url, &params).is_ok());
/// ```
#[derive(Clone)]
pub struct TwilioSignature {
    mac: Hmac<Sha1>,
    keyless: bool,
}

impl fmt::Debug for TwilioSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TwilioSignature { auth_token: <redacted> }")
    }
}

impl TwilioSignature {
    /// A verifier keyed with the account's auth token.
    /// An empty secret (an unset variable) gives a verifier that refuses every request
    /// ([`SignatureFailure::NoSecret`]).
    pub fn new(auth_token: impl AsRef<[u8]>) -> Self {
        let mac = Hmac::<Sha1>::new_from_slice(auth_token.as_ref())
            .unwrap_or_else(|_| Hmac::<Sha1>::new(&Default::default()));
        TwilioSignature { mac, keyless: no_secret(auth_token.as_ref()) }
    }

    fn tag<K: AsRef<str>, V: AsRef<str>>(&self, url: &str, params: &[(K, V)]) -> Hmac<Sha1> {
        let mut sorted: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_ref(), v.as_ref())).collect();
        // By name, then by value (byte order: case-sensitive, code point order), each distinct
        // pair once: what Twilio's helper libraries sign when a name repeats.
        sorted.sort_unstable();
        sorted.dedup();
        let mut mac = self.mac.clone();
        mac.update(url.as_bytes());
        for (k, v) in sorted {
            mac.update(k.as_bytes());
            mac.update(v.as_bytes());
        }
        mac
    }

    /// The header value Twilio sends for a request to `url` with the (decoded) POST `params`.
    pub fn sign<K: AsRef<str>, V: AsRef<str>>(&self, url: &str, params: &[(K, V)]) -> String {
        base64_encode(&self.tag(url, params).finalize().into_bytes())
    }

    /// Checks `header` (the `X-Twilio-Signature` value, `None` if absent) against the request
    /// URL and its decoded POST parameters (empty for GET requests, whose parameters are in the
    /// URL). Sign over every parameter that arrived: Twilio adds new ones without notice.
    pub fn verify<K: AsRef<str>, V: AsRef<str>>(
        &self,
        header: Option<&str>,
        url: &str,
        params: &[(K, V)],
    ) -> Result<()> {
        const H: &str = TWILIO_SIGNATURE_HEADER;
        refuse_keyless(H, self.keyless)?;
        let header = header.ok_or_else(|| fail(H, SignatureFailure::MissingHeader))?.trim();
        let expected = base64_decode(header)
            .filter(|b| b.len() == 20)
            .ok_or_else(|| malformed(H, "expected the base64 of a 20-byte HMAC-SHA1"))?;
        let matches = |u: &str| self.tag(u, params).verify_slice(&expected).is_ok();
        if matches(url) || port_variant(url).is_some_and(|u| matches(&u)) {
            Ok(())
        } else {
            Err(fail(H, SignatureFailure::Mismatch))
        }
    }

    /// Checks a form-encoded (`application/x-www-form-urlencoded`) POST: decodes the raw body
    /// and verifies as [`verify`](Self::verify) does.
    ///
    /// ```
    /// use touchpoint::channels::signature::TwilioSignature;
    /// let twilio = TwilioSignature::new("12345");
    /// let body = b"To=%2B18005551212&CallSid=CA1234567890ABCDE&Digits=1234&From=%2B12349013030&Caller=%2B12349013030";
    /// let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    /// assert!(twilio.verify_form(Some("0/KCTR6DLpKmkAf8muzZqo1nDgQ="), url, body).is_ok());
    /// ```
    pub fn verify_form(&self, header: Option<&str>, url: &str, body: &[u8]) -> Result<()> {
        let params = decode_form(body)?;
        self.verify(header, url, &params)
    }

    /// Checks a request with a JSON (or any non-form) body: Twilio puts the hex SHA-256 of the
    /// raw body in the URL's `bodySHA256` query parameter and signs the URL alone. Both the
    /// signature and the body hash must match.
    pub fn verify_json(&self, header: Option<&str>, url: &str, body: &[u8]) -> Result<()> {
        const H: &str = TWILIO_SIGNATURE_HEADER;
        self.verify::<&str, &str>(header, url, &[])?;
        let query = url.split_once('?').map_or("", |(_, q)| q);
        let query = query.split_once('#').map_or(query, |(q, _)| q);
        let hash = query
            .split('&')
            .find_map(|pair| pair.strip_prefix("bodySHA256="))
            .ok_or_else(|| malformed(H, "the URL has no `bodySHA256` parameter to bind the body"))?;
        let expected = hex_decode(hash)
            .filter(|b| b.len() == 32)
            .ok_or_else(|| malformed(H, "`bodySHA256` is not 64 hex digits"))?;
        if constant_time_eq(&Sha256::digest(body), &expected) {
            Ok(())
        } else {
            Err(fail(H, SignatureFailure::Mismatch))
        }
    }
}

/// The same URL with the scheme's default port added (when absent) or removed (when present).
fn port_variant(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let default = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return None,
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    // The port follows the last colon, unless that colon is inside an IPv6 literal.
    let host_end = hostport.rfind(']').map_or(0, |i| i + 1);
    let new_hostport = match hostport[host_end..].rfind(':') {
        Some(i) if &hostport[host_end + i + 1..] == default => hostport[..host_end + i].to_owned(),
        Some(_) => return None,
        None => format!("{hostport}:{default}"),
    };
    let userinfo = userinfo.map_or(String::new(), |u| format!("{u}@"));
    Some(format!("{scheme}://{userinfo}{new_hostport}{tail}"))
}

/// Decodes an `application/x-www-form-urlencoded` body into name/value pairs, in order.
///
/// ```
/// use touchpoint::channels::signature::decode_form;
/// let pairs = decode_form(b"Body=Where+is+order+5521%3F&From=%2B447700900123").unwrap();
/// assert_eq!(pairs[0], ("Body".to_owned(), "Where is order 5521?".to_owned()));
/// assert_eq!(pairs[1], ("From".to_owned(), "+447700900123".to_owned()));
/// assert!(decode_form(b"Body=%ZZ").is_err());
/// ```
pub fn decode_form(body: &[u8]) -> Result<Vec<(String, String)>> {
    fn decode(part: &[u8]) -> Result<String> {
        let mut out = Vec::with_capacity(part.len());
        let mut i = 0;
        while let Some(&c) = part.get(i) {
            match c {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = part.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(hex_decode);
                    match hex.as_deref() {
                        Some([b]) => out.push(*b),
                        _ => return Err(Error::invalid("form body", format!("bad percent escape at byte {i}"))),
                    }
                    i += 2;
                }
                _ => out.push(c),
            }
            i += 1;
        }
        String::from_utf8(out).map_err(|_| Error::invalid("form body", "a parameter is not UTF-8 after decoding"))
    }
    body.split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &pair[pair.len()..]),
            };
            Ok((decode(name)?, decode(value)?))
        })
        .collect()
}

/// Verifies Telegram's `X-Telegram-Bot-Api-Secret-Token` header: the secret chosen when the
/// webhook was set (`setWebhook(secret_token=…)`), compared in constant time.
///
/// ```
/// use touchpoint::channels::signature::TelegramSecretToken;
/// let telegram = TelegramSecretToken::new("s3cr3t_Token-1").unwrap();
/// assert!(telegram.verify(Some("s3cr3t_Token-1")).is_ok());
/// assert!(telegram.verify(Some("s3cr3t_Token-2")).is_err());
/// assert!(telegram.verify(None).is_err());
/// // Telegram only accepts 1–256 characters of A-Z, a-z, 0-9, `_` and `-`.
/// assert!(TelegramSecretToken::new("not allowed!").is_err());
/// ```
#[derive(Clone)]
pub struct TelegramSecretToken {
    digest: [u8; 32],
}

impl fmt::Debug for TelegramSecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TelegramSecretToken { secret: <redacted> }")
    }
}

impl TelegramSecretToken {
    /// A verifier for `secret`, which must be what Telegram accepts: 1–256 characters of
    /// `A-Z`, `a-z`, `0-9`, `_` and `-`.
    pub fn new(secret: &str) -> Result<Self> {
        if secret.is_empty() || secret.len() > 256 {
            return Err(Error::invalid("secret_token", "must be 1 to 256 characters long"));
        }
        if !secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(Error::invalid("secret_token", "only A-Z, a-z, 0-9, `_` and `-` are allowed"));
        }
        Ok(TelegramSecretToken { digest: Sha256::digest(secret.as_bytes()).into() })
    }

    /// Checks `header` (the `X-Telegram-Bot-Api-Secret-Token` value, `None` if absent). The
    /// comparison runs over SHA-256 digests, so it leaks neither the content nor the length.
    pub fn verify(&self, header: Option<&str>) -> Result<()> {
        const H: &str = TELEGRAM_SECRET_HEADER;
        let header = header.ok_or_else(|| fail(H, SignatureFailure::MissingHeader))?;
        if constant_time_eq(&Sha256::digest(header.as_bytes()), &self.digest) {
            Ok(())
        } else {
            Err(fail(H, SignatureFailure::Mismatch))
        }
    }
}

/// Verifies Slack's request signature: `X-Slack-Signature` is `v0=` + hex HMAC-SHA256, keyed
/// with the signing secret, of `v0:{X-Slack-Request-Timestamp}:{raw body}`; the timestamp must be
/// within [`SLACK_MAX_SKEW_SECONDS`] of `now` (which comes from the host's clock) so a captured
/// request cannot be replayed later.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use touchpoint::channels::signature::SlackSignature;
/// use touchpoint::{Error, SignatureFailure};
///
/// let slack = SlackSignature::new("signing-secret");
/// let body = br#"{"type":"event_callback"}"#;
/// let header = slack.sign(1735689600, body);
/// let now = Utc.timestamp_opt(1735689660, 0).unwrap(); // one minute later
/// assert!(slack.verify(Some(&header), Some("1735689600"), body, now).is_ok());
///
/// let much_later = Utc.timestamp_opt(1735689600 + 301, 0).unwrap();
/// assert!(matches!(
///     slack.verify(Some(&header), Some("1735689600"), body, much_later),
///     Err(Error::Unauthenticated { failure: SignatureFailure::StaleTimestamp { .. }, .. })
/// ));
/// ```
#[derive(Clone)]
pub struct SlackSignature {
    mac: Hmac<Sha256>,
    keyless: bool,
}

impl fmt::Debug for SlackSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SlackSignature { signing_secret: <redacted> }")
    }
}

impl SlackSignature {
    /// A verifier keyed with the app's signing secret.
    /// An empty secret (an unset variable) gives a verifier that refuses every request
    /// ([`SignatureFailure::NoSecret`]).
    pub fn new(signing_secret: impl AsRef<[u8]>) -> Self {
        let mac = Hmac::<Sha256>::new_from_slice(signing_secret.as_ref())
            .unwrap_or_else(|_| Hmac::<Sha256>::new(&Default::default()));
        SlackSignature { mac, keyless: no_secret(signing_secret.as_ref()) }
    }

    fn tag(&self, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
        self.mac.clone().chain_update(b"v0:").chain_update(timestamp.as_bytes()).chain_update(b":").chain_update(body)
    }

    /// The `X-Slack-Signature` value Slack sends for `body` signed at `timestamp` (unix seconds).
    pub fn sign(&self, timestamp: i64, body: &[u8]) -> String {
        format!("v0={}", hex_encode(&self.tag(&timestamp.to_string(), body).finalize().into_bytes()))
    }

    /// Checks the two headers (`None` when absent) against `body` at time `now`. The timestamp
    /// is checked before the signature, so a stale request is reported as stale even if signed
    /// correctly.
    pub fn verify(
        &self,
        signature: Option<&str>,
        timestamp: Option<&str>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<()> {
        const S: &str = SLACK_SIGNATURE_HEADER;
        const T: &str = SLACK_TIMESTAMP_HEADER;
        refuse_keyless(S, self.keyless)?;
        let timestamp = timestamp.ok_or_else(|| fail(T, SignatureFailure::MissingHeader))?.trim();
        let signature = signature.ok_or_else(|| fail(S, SignatureFailure::MissingHeader))?.trim();
        if timestamp.is_empty() || timestamp.len() > 18 || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed(T, "expected unix seconds"));
        }
        let ts: i64 = timestamp.parse().map_err(|_| malformed(T, "expected unix seconds"))?;
        let skew = now.timestamp().saturating_sub(ts);
        if skew.unsigned_abs() > SLACK_MAX_SKEW_SECONDS.unsigned_abs() {
            return Err(fail(
                T,
                SignatureFailure::StaleTimestamp { skew_seconds: skew, max_skew_seconds: SLACK_MAX_SKEW_SECONDS },
            ));
        }
        let hex =
            signature.strip_prefix("v0=").ok_or_else(|| malformed(S, "expected `v0=` followed by 64 hex digits"))?;
        let expected = hex_decode(hex)
            .filter(|b| b.len() == 32)
            .ok_or_else(|| malformed(S, "expected `v0=` followed by 64 hex digits"))?;
        self.tag(timestamp, body).verify_slice(&expected).map_err(|_| fail(S, SignatureFailure::Mismatch))
    }
}
