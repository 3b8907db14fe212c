//! The one error type of the crate.
//!
//! Every public fallible function returns [`Result<T>`](crate::Result). The kinds are named after
//! what went wrong for the caller (bad input, not found, conflict, …), not after the module that
//! noticed it, so a host can map them onto HTTP statuses or retry decisions without string
//! matching. Whenever an operation returns an error it has changed nothing.

use crate::model::{ChannelKind, TenantId};

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `touchpoint`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input was malformed or outside a documented limit (empty body, oversize attribute,
    /// bad language tag, …). `field` names the offending input.
    #[error("invalid input in `{field}`: {reason}")]
    InvalidInput {
        /// Which input field was rejected (for example `content.body`).
        field: &'static str,
        /// Why it was rejected, in words a person can act on.
        reason: String,
    },
    /// An address (phone number, email, platform id) could not be normalised.
    #[error("malformed {kind} address {raw:?}: {reason}")]
    InvalidAddress {
        /// The kind of address that was expected (`phone`, `email`, …).
        kind: &'static str,
        /// The raw value as received.
        raw: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The referenced record does not exist in this tenant (records of other tenants are
    /// reported as not found as well, so their existence is never revealed).
    #[error("{entity} {id} not found")]
    NotFound {
        /// The kind of record (`customer`, `conversation`, …).
        entity: &'static str,
        /// The id that was looked up.
        id: String,
    },
    /// A concurrent writer changed the same record first; re-read and try again.
    /// The engine retries these itself; a store returns it when an expected version does not
    /// match or a unique key is already taken.
    #[error("conflicting concurrent update: {0}")]
    Conflict(String),
    /// The operation is not allowed by a rule of the model (for example merging two customers
    /// whose external ids differ, or a message to a conversation whose reopen policy rejects it).
    #[error("refused: {0}")]
    Refused(String),
    /// The customer has been erased; only a PII-free tombstone remains.
    #[error("customer {0} has been erased")]
    Erased(String),
    /// A channel's reply window is closed; only a template (or another channel) can reach the
    /// customer now.
    #[error("the {channel} reply window is closed: {hint}")]
    ReplyWindowClosed {
        /// The channel whose window is closed.
        channel: ChannelKind,
        /// What the caller can do instead.
        hint: String,
    },
    /// A channel's provider (WhatsApp Cloud API, Twilio, an SMTP relay, …) did not accept a
    /// message or a request. `code` is the provider's own error code when it gave one (WhatsApp
    /// `131047`, Twilio `30003`); `temporary` says whether sending again may succeed.
    #[error("the {channel} provider failed{}: {message}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Provider {
        /// The channel whose provider failed.
        channel: ChannelKind,
        /// The provider's error code, if any.
        code: Option<String>,
        /// What the provider reported.
        message: String,
        /// Whether the same call may succeed if retried.
        temporary: bool,
    },
    /// A record of one tenant was handed to an operation of another.
    #[error("record belongs to another tenant than {0}")]
    WrongTenant(TenantId),
    /// A routing expression did not parse, did not type-check against its schema, exceeded a
    /// limit, or failed during evaluation. The [`ExprError`](crate::routing::expr::ExprError)
    /// says which, and where in the source text.
    #[error(transparent)]
    Expression(crate::routing::expr::ExprError),
    /// A webhook failed its authenticity check: the signature or secret token is missing,
    /// malformed or wrong, or its timestamp is outside the replay window. Answer it with HTTP 401
    /// or 403 and do not process the body (see `channels::signature`, feature `signatures`).
    #[error("webhook authentication failed on `{header}`: {failure}")]
    Unauthenticated {
        /// The header that carries the proof (`X-Hub-Signature-256`, `X-Twilio-Signature`, …).
        header: &'static str,
        /// What was wrong with it.
        failure: SignatureFailure,
    },
    /// The storage backend failed. `temporary` says whether retrying may help.
    #[error("storage backend failed: {message}")]
    Backend {
        /// What the backend reported.
        message: String,
        /// Whether the same call may succeed if retried.
        temporary: bool,
        /// The backend's own error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

/// Why a webhook's signature or secret token was rejected ([`Error::Unauthenticated`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureFailure {
    /// The request carries no signature (or secret token) header at all.
    #[error("the header is missing")]
    MissingHeader,
    /// The header is there but not in the provider's format (no `sha256=` prefix, bad hex or
    /// base64, a timestamp that is not a number, …).
    #[error("malformed: {0}")]
    Malformed(String),
    /// The header is well formed but does not match the request: wrong secret, or the body (or
    /// URL) was changed on the way.
    #[error("the signature does not match the request")]
    Mismatch,
    /// The verifier was made with an empty secret (an unset configuration variable): an HMAC
    /// keyed with it is one anybody can compute, so every request is refused.
    #[error("no secret is configured to check it against (the secret given was empty)")]
    NoSecret,
    /// The signed timestamp is further from now than the replay window allows.
    #[error("the signed timestamp is {skew_seconds} s away from now; at most {max_skew_seconds} s are accepted")]
    StaleTimestamp {
        /// How far the timestamp is from now, in seconds (positive: in the past).
        skew_seconds: i64,
        /// The replay window, in seconds.
        max_skew_seconds: i64,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidInput { field, reason: reason.into() }
    }

    /// Shorthand for [`Error::NotFound`].
    pub fn not_found(entity: &'static str, id: impl std::fmt::Display) -> Self {
        Error::NotFound { entity, id: id.to_string() }
    }

    /// Whether retrying the same call may succeed (conflicts, temporary backend and provider
    /// failures).
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            Error::Conflict(_) | Error::Backend { temporary: true, .. } | Error::Provider { temporary: true, .. }
        )
    }
}
