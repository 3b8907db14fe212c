//! touchpoint from C (and anything that speaks the C ABI: Python's ctypes, Go's cgo, C#'s
//! P/Invoke, …): a small, complete C API over an in-memory [`touchpoint::Engine`].
//!
//! Built as `cdylib` and `staticlib` by `cargo build --example c_abi`; the header
//! `examples/c_abi/touchpoint.h` is generated from this file by cbindgen (see `cbindgen.toml`
//! and the `header_is_current` test in `tests/c_abi.rs`). The doc comments of the exported items
//! below are the header's comments, so they are written for C readers.
//!
//! Design, in short:
//! * JSON text crosses the boundary in both directions, in the crate's own serde shapes
//!   (outcomes, messages, identities, context views, events), so the C side needs no structs.
//! * An engine handle (`TpEngine*`) is an opaque token, not the address of Rust memory: every
//!   call looks it up in a table of live engines, so a freed, forged or NULL handle is an error
//!   code, never undefined behaviour; a handle value is never reused.
//! * Every fallible function returns a [`TpStatus`]; a thread-local message explains the last
//!   failure on the calling thread ([`tp_last_error`]). Every such function catches panics.
//! * Every string handed out is owned by the caller and freed with [`tp_string_free`], which also
//!   checks that it is a live string of ours.
//! * The tables of live engines and strings hold disguised addresses, so they do not hide the
//!   host's leaks: valgrind reports an engine or a string that was never freed as lost.

use chrono::{DateTime, Duration, Utc};
use futures::executor::block_on;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::ffi::{CStr, CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, RwLock};
use touchpoint::context::TimelinePage;
use touchpoint::events::StoredEvent;
use touchpoint::model::{
    Address, AgentId, Attributes, Author, ChannelKind, Claim, Content, ConversationId, ConversationStatus, CustomerId,
    DeliveryState, EndpointId, Handler, IdentityId, InboundMessage, MessageId, Priority, QueueId, TenantId,
    ThreadHints, Verification,
};
use touchpoint::routing::calendar::Calendars;
use touchpoint::routing::{
    Agent, HandoffMode, IdlePolicy, ItemUpdate, Plan, Queue, Router, RouterConfig, RoutingDecision, RoutingEvent,
    WorkItemId,
};
use touchpoint::store::InMemoryStore;
use touchpoint::thread::ThreadingPolicy;
use touchpoint::{ConversationPatch, Engine, EngineConfig, Error, OutboundMessage, SurvivorRule};

/// What a `tp_` call did. `TP_STATUS_OK` (0) is success; anything else is a failure, and
/// `tp_last_error()` on the same thread says why. Codes 1-19 are the engine's error kinds,
/// 20 and up are errors at the boundary (bad pointers, text or handles).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TpStatus {
    /// Success.
    Ok = 0,
    /// The request was well-formed JSON but not a valid request: a missing or unknown field,
    /// a wrong type, a value outside a documented limit (empty text, bad id, limit 0, ...).
    InvalidInput = 1,
    /// An address (phone number, email, platform id) could not be normalised.
    InvalidAddress = 2,
    /// The customer, conversation, identity or message does not exist in the engine's tenant.
    NotFound = 3,
    /// A concurrent writer changed the same record first (the engine already retried);
    /// calling again may succeed.
    Conflict = 4,
    /// A rule of the model refuses the operation (closed conversation, blocked customer,
    /// an address that belongs to another customer, ...).
    Refused = 5,
    /// The customer has been erased.
    Erased = 6,
    /// The channel's reply window is closed: send an approved template or use another channel.
    ReplyWindowClosed = 7,
    /// A channel's provider (WhatsApp Cloud API, Twilio, an SMTP relay, ...) did not accept a
    /// message or a request; the message has the provider's code when it gave one.
    Provider = 8,
    /// A record of another tenant was handed in.
    WrongTenant = 9,
    /// A routing expression did not parse, did not type-check, exceeded a limit or failed
    /// during evaluation; the message says where.
    Expression = 10,
    /// The storage backend failed.
    Backend = 11,
    /// A webhook failed its authenticity check (signature or secret token missing, malformed,
    /// wrong or stale).
    Unauthenticated = 12,
    /// An engine error of a kind newer than this header; the message says what it is.
    /// (Codes 13-18 are kept for new kinds.)
    Other = 19,
    /// A required pointer argument was NULL.
    NullPointer = 20,
    /// A string argument was not valid UTF-8.
    InvalidUtf8 = 21,
    /// A JSON argument was not JSON at all (a syntax error or truncated text).
    InvalidJson = 22,
    /// The engine handle is not live (already freed, or never returned by `tp_engine_new`),
    /// or a string passed to `tp_string_free` is not a live string returned by this library.
    InvalidHandle = 23,
    /// The library panicked (a bug in touchpoint: please report it); the message has the panic
    /// text. The panic was caught at the boundary and did not unwind into your code.
    Panic = 24,
}

impl TpStatus {
    fn from_code(code: i32) -> Option<TpStatus> {
        use TpStatus::*;
        [
            Ok,
            InvalidInput,
            InvalidAddress,
            NotFound,
            Conflict,
            Refused,
            Erased,
            ReplyWindowClosed,
            Provider,
            WrongTenant,
            Expression,
            Backend,
            Unauthenticated,
            Other,
            NullPointer,
            InvalidUtf8,
            InvalidJson,
            InvalidHandle,
            Panic,
        ]
        .into_iter()
        .find(|s| *s as i32 == code)
    }

    fn name(self) -> &'static CStr {
        match self {
            TpStatus::Ok => c"TP_STATUS_OK",
            TpStatus::InvalidInput => c"TP_STATUS_INVALID_INPUT",
            TpStatus::InvalidAddress => c"TP_STATUS_INVALID_ADDRESS",
            TpStatus::NotFound => c"TP_STATUS_NOT_FOUND",
            TpStatus::Conflict => c"TP_STATUS_CONFLICT",
            TpStatus::Refused => c"TP_STATUS_REFUSED",
            TpStatus::Erased => c"TP_STATUS_ERASED",
            TpStatus::ReplyWindowClosed => c"TP_STATUS_REPLY_WINDOW_CLOSED",
            TpStatus::Provider => c"TP_STATUS_PROVIDER",
            TpStatus::WrongTenant => c"TP_STATUS_WRONG_TENANT",
            TpStatus::Expression => c"TP_STATUS_EXPRESSION",
            TpStatus::Backend => c"TP_STATUS_BACKEND",
            TpStatus::Unauthenticated => c"TP_STATUS_UNAUTHENTICATED",
            TpStatus::Other => c"TP_STATUS_OTHER",
            TpStatus::NullPointer => c"TP_STATUS_NULL_POINTER",
            TpStatus::InvalidUtf8 => c"TP_STATUS_INVALID_UTF8",
            TpStatus::InvalidJson => c"TP_STATUS_INVALID_JSON",
            TpStatus::InvalidHandle => c"TP_STATUS_INVALID_HANDLE",
            TpStatus::Panic => c"TP_STATUS_PANIC",
        }
    }
}

/// An engine: one tenant's customers, conversations and events, in memory.
///
/// Opaque: only ever handle a `TpEngine*` returned by `tp_engine_new`, and never dereference it
/// (it is a token the library looks up in its table of live engines, not an address).
///
/// Thread safety: an engine may be used from any number of threads at once without locking on
/// your side (calls are internally synchronised). Calling `tp_engine_free` while other threads
/// are still inside calls on the same engine is safe: those calls finish normally, later ones
/// return TP_STATUS_INVALID_HANDLE.
pub struct TpEngine {
    _opaque: [u8; 0],
}

// ---------------------------------------------------------------------------------------------
// Failures, the last error and the panic guard.

/// A failed call: its status and the message `tp_last_error` will show.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: TpStatus,
    pub(crate) message: String,
}

impl Failure {
    fn new(status: TpStatus, message: impl Into<String>) -> Self {
        Failure { status, message: message.into() }
    }

    fn null(argument: &str) -> Self {
        Failure::new(TpStatus::NullPointer, format!("`{argument}` is NULL"))
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        let status = match &error {
            Error::InvalidInput { .. } => TpStatus::InvalidInput,
            Error::InvalidAddress { .. } => TpStatus::InvalidAddress,
            Error::NotFound { .. } => TpStatus::NotFound,
            Error::Conflict(_) => TpStatus::Conflict,
            Error::Refused(_) => TpStatus::Refused,
            Error::Erased(_) => TpStatus::Erased,
            Error::ReplyWindowClosed { .. } => TpStatus::ReplyWindowClosed,
            Error::Provider { .. } => TpStatus::Provider,
            Error::WrongTenant(_) => TpStatus::WrongTenant,
            Error::Expression(_) => TpStatus::Expression,
            Error::Backend { .. } => TpStatus::Backend,
            Error::Unauthenticated { .. } => TpStatus::Unauthenticated,
            _ => TpStatus::Other,
        };
        Failure::new(status, error.to_string())
    }
}

thread_local! {
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// Longest message `tp_last_error` shows, in bytes: a message that echoes a huge input (a
/// megabyte-long unknown key) is cut here, at a character boundary, and says so.
pub const MAX_ERROR_MESSAGE: usize = 4096;

fn set_last_error(message: Option<String>) {
    let message = message.map(|m| {
        let mut m = m.replace('\0', "\\0");
        if m.len() > MAX_ERROR_MESSAGE {
            let total = m.len();
            let mut cut = MAX_ERROR_MESSAGE - 64;
            while !m.is_char_boundary(cut) {
                cut -= 1;
            }
            m.truncate(cut);
            m.push_str(&format!("… (cut: {total} bytes in all)"));
        }
        CString::new(m).unwrap_or_default()
    });
    // `try_with`: during thread teardown the slot may be gone; there is nobody left to tell.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = message);
}

/// Runs the body of an entry point: catches a panic, records the outcome in the thread's last
/// error (cleared on success) and returns the status.
pub(crate) fn guard(body: impl FnOnce() -> Result<(), Failure>) -> TpStatus {
    let result = catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|panic| {
        let text = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_owned());
        Err(Failure::new(TpStatus::Panic, format!("touchpoint panicked (a bug; please report it): {text}")))
    });
    match result {
        Ok(()) => {
            set_last_error(None);
            TpStatus::Ok
        }
        Err(failure) => {
            set_last_error(Some(failure.message));
            failure.status
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Live engines and strings.

struct Live {
    engine: Engine,
    tenant: TenantId,
    /// Held across a routing call and the writing of its events (see [`route_and_hand_out`]).
    routing: Mutex<()>,
}

/// Live engines: handle value → the disguised address of the `Arc<Live>` the handle owns.
/// Handle values count up from 1 and are never reused, so a stale handle can never reach a
/// newer engine.
static ENGINES: RwLock<BTreeMap<usize, usize>> = RwLock::new(BTreeMap::new());
static NEXT_ENGINE: AtomicUsize = AtomicUsize::new(1);
/// Disguised addresses of the strings handed out and not yet freed.
static STRINGS: LazyLock<Mutex<HashSet<usize>>> = LazyLock::new(Default::default);
/// The strings freed most recently, still allocated (see [`Quarantine`]).
static FREED: LazyLock<Mutex<Quarantine>> = LazyLock::new(Default::default);

/// Freed strings kept allocated for a while, oldest first: the allocator cannot hand their
/// addresses to new results meanwhile, so a stale second free of one of them is recognised
/// (and refused) instead of freeing a live string that happens to sit at the same address.
/// The last `QUARANTINE_STRINGS` frees are kept, within `QUARANTINE_BYTES` (the newest always).
#[derive(Default)]
struct Quarantine {
    strings: std::collections::VecDeque<CString>,
    bytes: usize,
}

const QUARANTINE_STRINGS: usize = 1024;
const QUARANTINE_BYTES: usize = 8 << 20;

impl Quarantine {
    fn keep(&mut self, string: CString) {
        self.bytes += string.as_bytes().len();
        self.strings.push_back(string);
        while self.strings.len() > 1 && (self.strings.len() > QUARANTINE_STRINGS || self.bytes > QUARANTINE_BYTES) {
            if let Some(oldest) = self.strings.pop_front() {
                self.bytes -= oldest.as_bytes().len();
            }
        }
    }

    fn holds(&self, address: usize) -> bool {
        self.strings.iter().any(|s| s.as_ptr().addr() == address)
    }
}

/// The tables keep addresses XOR-ed with this (never a valid heap address on 64-bit targets),
/// so they do not keep what they track reachable: a leak checker (valgrind memcheck) still
/// reports an engine or a string the host never freed as lost.
const DISGUISE: usize = 0xA5A5_A5A5_A5A5_A5A5_u64 as usize;

fn disguise(address: usize) -> usize {
    address ^ DISGUISE
}

const NOT_LIVE: &str = "`engine` is not a live engine (already freed, or not returned by tp_engine_new)";

fn register(live: Live) -> Result<*mut TpEngine, Failure> {
    let id = NEXT_ENGINE
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_add(1))
        .map_err(|_| Failure::new(TpStatus::Other, "no engine handles left in this process"))?;
    // The table owns this strong count until `tp_engine_free` takes it back.
    let owned = Arc::into_raw(Arc::new(live)).expose_provenance();
    ENGINES.write().unwrap_or_else(PoisonError::into_inner).insert(id, disguise(owned));
    Ok(std::ptr::without_provenance_mut(id))
}

fn live(engine: *mut TpEngine) -> Result<Arc<Live>, Failure> {
    if engine.is_null() {
        return Err(Failure::null("engine"));
    }
    let engines = ENGINES.read().unwrap_or_else(PoisonError::into_inner);
    let owned = engines.get(&engine.addr()).ok_or_else(|| Failure::new(TpStatus::InvalidHandle, NOT_LIVE))?;
    let ptr = std::ptr::with_exposed_provenance::<Live>(disguise(*owned));
    // SAFETY: `ptr` came from `Arc::into_raw` in `register`, and the table's strong count stays
    // alive while the entry exists; the read lock keeps `tp_engine_free` from removing it until
    // this call holds a count of its own.
    unsafe {
        Arc::increment_strong_count(ptr);
        Ok(Arc::from_raw(ptr))
    }
}

/// Checks an out-parameter and sets `*out` to NULL, so it is NULL whenever the call fails.
///
/// # Safety
/// `out` is NULL or valid for writing a pointer.
unsafe fn out_slot<T>(out: *mut *mut T, argument: &str) -> Result<*mut *mut T, Failure> {
    if out.is_null() {
        return Err(Failure::null(argument));
    }
    // SAFETY: non-null, and the caller promises it is writable.
    unsafe { out.write(std::ptr::null_mut()) };
    Ok(out)
}

/// Serialises `value` into a new string of ours and stores it in `*out`.
///
/// # Safety
/// `out` came from [`out_slot`].
unsafe fn hand_out(out: *mut *mut c_char, value: &impl Serialize) -> Result<(), Failure> {
    let json = serde_json::to_string(value)
        .map_err(|e| Failure::new(TpStatus::Other, format!("could not serialise the result: {e}")))?;
    // serde_json escapes U+0000 inside strings, so the text has no interior NUL.
    let string = CString::new(json).map_err(|e| Failure::new(TpStatus::Other, e.to_string()))?;
    let ptr = string.into_raw();
    STRINGS.lock().unwrap_or_else(PoisonError::into_inner).insert(disguise(ptr.addr()));
    // SAFETY: checked by `out_slot`.
    unsafe { out.write(ptr) };
    Ok(())
}

/// Borrows a NUL-terminated UTF-8 argument.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that outlives the call.
unsafe fn text<'a>(ptr: *const c_char, argument: &str) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(Failure::null(argument));
    }
    // SAFETY: non-null and NUL-terminated by the caller's promise.
    let bytes = unsafe { CStr::from_ptr(ptr) };
    bytes.to_str().map_err(|e| {
        Failure::new(
            TpStatus::InvalidUtf8,
            format!("`{argument}` is not valid UTF-8 (invalid byte at offset {})", e.valid_up_to()),
        )
    })
}

/// Parses a JSON argument: text that is not JSON is `InvalidJson`, JSON of the wrong shape or
/// with a bad value is `InvalidInput`.
fn parse<T: DeserializeOwned>(json: &str, argument: &str) -> Result<T, Failure> {
    let not_json = |e: serde_json::Error| Failure::new(TpStatus::InvalidJson, format!("`{argument}` is not JSON: {e}"));
    serde_json::from_str(json).map_err(|e| match e.classify() {
        // A shape error can come before a syntax error further on (`{"nope":1` is both): the
        // text must be JSON as a whole before its shape is what is wrong.
        serde_json::error::Category::Data => match serde_json::from_str::<serde::de::IgnoredAny>(json) {
            Err(syntax) => not_json(syntax),
            Ok(_) => Failure::new(TpStatus::InvalidInput, format!("`{argument}`: {e}")),
        },
        _ => not_json(e),
    })
}

/// Parses a JSON argument that names fields to change: an object only (serde would read a
/// struct from an array too, by field order, and `["closed"]` must not close a conversation).
fn parse_fields<T: DeserializeOwned>(json: &str, argument: &'static str) -> Result<T, Failure> {
    let value: serde_json::Value = parse(json, argument)?;
    if !value.is_object() {
        return Err(Error::invalid(argument, "must be a JSON object of the fields to change (`{}` for none)").into());
    }
    serde_json::from_value(value).map_err(|e| Failure::new(TpStatus::InvalidInput, format!("`{argument}`: {e}")))
}

/// Parses an id argument (a UUID string).
///
/// # Safety
/// As for [`text`].
unsafe fn id<T: FromStr<Err = Error>>(ptr: *const c_char, argument: &str) -> Result<T, Failure> {
    // SAFETY: forwarded.
    let text = unsafe { text(ptr, argument) }?;
    text.trim().parse::<T>().map_err(Failure::from)
}

/// Parses a work item id argument (`item_id`): a UUID, the id of the routed conversation.
///
/// # Safety
/// As for [`text`].
unsafe fn work_item(ptr: *const c_char) -> Result<WorkItemId, Failure> {
    // SAFETY: forwarded.
    let text = unsafe { text(ptr, "item_id") }?;
    uuid::Uuid::parse_str(text.trim()).map(WorkItemId::from_uuid).map_err(|e| {
        Error::invalid("item_id", format!("is not a work item id (the UUID of a routed conversation): {e}")).into()
    })
}

/// Parses a bot's findings argument (`findings_json`): a JSON object of attributes, or NULL for
/// none. Text that is not JSON is `InvalidJson`; JSON that is not an object is `InvalidInput`.
///
/// # Safety
/// As for [`text`] (NULL allowed).
unsafe fn findings(ptr: *const c_char) -> Result<Attributes, Failure> {
    const ARGUMENT: &str = "findings_json";
    if ptr.is_null() {
        return Ok(Attributes::new());
    }
    // SAFETY: forwarded.
    let value: serde_json::Value = parse(unsafe { text(ptr, ARGUMENT) }?, ARGUMENT)?;
    let kind = match value {
        serde_json::Value::Object(attributes) => return Ok(attributes.into_iter().collect()),
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
    };
    Err(Error::invalid(ARGUMENT, format!("must be a JSON object of attributes (or NULL for none), not {kind}")).into())
}

/// Parses a handoff mode argument (`mode`): "pass" or "offer", the words of the `handed_off`
/// event's `"mode"`.
///
/// # Safety
/// As for [`text`].
unsafe fn handoff_mode(ptr: *const c_char) -> Result<HandoffMode, Failure> {
    // SAFETY: forwarded.
    match unsafe { text(ptr, "mode") }? {
        "pass" => Ok(HandoffMode::Pass),
        "offer" => Ok(HandoffMode::Offer),
        other => Err(Error::invalid(
            "mode",
            format!(
                "{other:?} is not a handoff mode: \"pass\" (the bot lets go at once) or \"offer\" (the bot \
                 keeps it until a human has it)"
            ),
        )
        .into()),
    }
}

/// Parses a survivor rule argument (`survivor`) of `tp_customers_merge`: "first", "oldest" or
/// "has_external_id", the words of `SurvivorRule`'s serde form.
///
/// # Safety
/// As for [`text`].
unsafe fn survivor_rule(ptr: *const c_char) -> Result<SurvivorRule, Failure> {
    // SAFETY: forwarded.
    match unsafe { text(ptr, "survivor") }? {
        "first" => Ok(SurvivorRule::First),
        "oldest" => Ok(SurvivorRule::Oldest),
        "has_external_id" => Ok(SurvivorRule::HasExternalId),
        other => Err(Error::invalid(
            "survivor",
            format!(
                "{other:?} is not a survivor rule: \"first\" (the first customer named), \"oldest\" (the one \
                 created first) or \"has_external_id\" (the one with the host's external id)"
            ),
        )
        .into()),
    }
}

/// Reads a C flag argument that must be 0 or 1 (a C `bool` or `int`); anything else is
/// `InvalidInput`, so a garbage value is never taken for "yes".
fn flag(value: i32, argument: &'static str) -> Result<bool, Failure> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(Error::invalid(argument, format!("must be 0 or 1, not {other}")).into()),
    }
}

// ---------------------------------------------------------------------------------------------
// The JSON the C side sends.

/// `tp_engine_new`'s configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigJson {
    tenant: TenantId,
    #[serde(default)]
    cross_channel_window_hours: Option<u32>,
    #[serde(default)]
    default_phone_region: Option<String>,
    #[serde(default)]
    routing: Option<RoutingJson>,
}

/// The configuration's `"routing"` key: the router the engine hands conversations to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutingJson {
    /// `RouterConfig`'s fields, each optional (the defaults fill the rest); `statuses` are added
    /// to the default ones.
    #[serde(default)]
    config: serde_json::Map<String, serde_json::Value>,
    /// The business-hours `Schedule`s (`Calendars`), installed first: queue hours, agents'
    /// shifts and the plan's `schedule("name")` read them.
    #[serde(default)]
    calendars: Option<Calendars>,
    /// `Queue`s, created in order (a queue's overflow target comes before it).
    #[serde(default)]
    queues: Vec<Queue>,
    /// The `Plan`, installed after the queues it names.
    #[serde(default)]
    plan: Option<Plan>,
    /// The idle rule (`IdlePolicy`), installed before the agents are added.
    #[serde(default)]
    idle: Option<IdlePolicy>,
    /// `Agent`s, added after the queues they join.
    #[serde(default)]
    agents: Vec<Agent>,
}

const MAX_WINDOW_HOURS: u32 = 24 * 365;

impl ConfigJson {
    fn build(self) -> Result<Live, Error> {
        let mut config = EngineConfig::default();
        if let Some(hours) = self.cross_channel_window_hours {
            if hours == 0 || hours > MAX_WINDOW_HOURS {
                return Err(Error::invalid(
                    "cross_channel_window_hours",
                    format!("must be 1 to {MAX_WINDOW_HOURS} hours (omit it to keep channels apart)"),
                ));
            }
            config.threading = ThreadingPolicy::default().with_cross_channel_window(Duration::hours(hours.into()));
        }
        if let Some(region) = self.default_phone_region {
            if region.len() != 2 || !region.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(Error::invalid("default_phone_region", "must be an ISO 3166 alpha-2 code such as \"BR\""));
            }
            // A code of the right shape that names no region with phone numbers ("UK" for "GB")
            // would refuse every national number and every WhatsApp sender (bare digits) later.
            #[cfg(feature = "phone")]
            if region.to_ascii_uppercase().parse::<phonenumber::country::Id>().is_err() {
                return Err(Error::invalid(
                    "default_phone_region",
                    format!(
                        "{region:?} is not a region with phone numbers (an ISO 3166 alpha-2 code such as \"BR\" or \"GB\")"
                    ),
                ));
            }
            config.default_phone_region = Some(region.to_ascii_uppercase());
        }
        let mut builder = Engine::builder(Arc::new(InMemoryStore::new())).config(config);
        let routing = match self.routing {
            Some(mut routing) => {
                let router = Arc::new(Router::new(router_config(std::mem::take(&mut routing.config))?));
                builder = builder.router(router.clone());
                Some((router, routing))
            }
            None => None,
        };
        let engine = builder.build();
        // The router is set up on the engine's clock; nothing is routed yet, so its events
        // (presence changes, shifts) concern no conversation.
        if let Some((router, routing)) = routing {
            if let Some(calendars) = routing.calendars {
                router.set_calendars(calendars);
            }
            for queue in routing.queues {
                router.upsert_queue(queue)?;
            }
            if let Some(plan) = routing.plan {
                router.set_plan(plan, engine.now())?;
            }
            if let Some(idle) = routing.idle {
                router.set_idle_policy(Some(idle))?;
            }
            for agent in routing.agents {
                router.upsert_agent(agent, engine.now())?;
            }
        }
        Ok(Live { engine, tenant: self.tenant, routing: Mutex::new(()) })
    }
}

/// `RouterConfig::default()` with the given fields replaced (`statuses` merged into the default
/// statuses); an unknown field is refused.
fn router_config(fields: serde_json::Map<String, serde_json::Value>) -> Result<RouterConfig, Error> {
    use serde_json::Value;
    let invalid = |reason: String| Error::invalid("routing.config", reason);
    let Value::Object(mut merged) =
        serde_json::to_value(RouterConfig::default()).map_err(|e| invalid(format!("defaults: {e}")))?
    else {
        return Err(invalid("the defaults are not a JSON object".into()));
    };
    let known = merged.keys().map(String::as_str).collect::<Vec<_>>().join("`, `");
    for (key, value) in fields {
        match (merged.get_mut(&key), value) {
            (None, _) => return Err(invalid(format!("unknown field `{key}`, expected one of `{known}`"))),
            (Some(Value::Object(defaults)), Value::Object(given)) if key == "statuses" => defaults.extend(given),
            (Some(slot), value) => *slot = value,
        }
    }
    serde_json::from_value(Value::Object(merged)).map_err(|e| invalid(e.to_string()))
}

/// `tp_ingest`'s inbound message: the fields of `touchpoint::model::InboundMessage`, with the
/// optional ones optional and the sender's trust defaulting as `InboundMessage::new` does.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InboundJson {
    channel: ChannelKind,
    endpoint: EndpointId,
    sender: Address,
    external_id: String,
    content: Content,
    #[serde(default)]
    verification: Option<Verification>,
    #[serde(default)]
    sender_name: Option<String>,
    #[serde(default)]
    claims: Vec<Claim>,
    #[serde(default)]
    thread: ThreadJson,
    #[serde(default)]
    sent_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThreadJson {
    #[serde(default)]
    provider_thread_id: Option<String>,
    #[serde(default)]
    reply_token: Option<String>,
    #[serde(default)]
    in_reply_to: Option<String>,
    #[serde(default)]
    references: Vec<String>,
    #[serde(default)]
    subject: Option<String>,
}

impl InboundJson {
    fn into_message(self) -> InboundMessage {
        let mut msg = InboundMessage::new(self.channel, self.endpoint, self.sender, self.external_id, self.content);
        if let Some(v) = self.verification {
            msg.verification = v;
        }
        msg.sender_name = self.sender_name;
        msg.claims = self.claims;
        msg.sent_at = self.sent_at;
        let t = self.thread;
        msg.thread = ThreadHints {
            provider_thread_id: t.provider_thread_id,
            reply_token: t.reply_token,
            in_reply_to: t.in_reply_to,
            references: t.references,
            subject: t.subject,
        };
        msg
    }
}

/// `tp_link_identity`'s address.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkJson {
    channel: ChannelKind,
    address: Address,
    verification: Verification,
}

/// `tp_record_outbound`'s message.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutboundJson {
    author: Author,
    content: Content,
    #[serde(default)]
    via: Option<ViaJson>,
    #[serde(default)]
    external_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ViaJson {
    endpoint: EndpointId,
    identity: IdentityId,
}

impl OutboundJson {
    fn into_message(self) -> OutboundMessage {
        OutboundMessage {
            author: self.author,
            content: self.content,
            via: self.via.map(|v| (v.endpoint, v.identity)),
            external_id: self.external_id,
            delivery: DeliveryState::Pending,
        }
    }
}

/// A context call's page (`NULL` page: the latest 50 messages).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageJson {
    #[serde(default)]
    before: Option<MessageId>,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    TimelinePage::default().limit
}

/// # Safety
/// As for [`text`] (NULL allowed).
unsafe fn page(ptr: *const c_char) -> Result<TimelinePage, Failure> {
    if ptr.is_null() {
        return Ok(TimelinePage::default());
    }
    // SAFETY: forwarded.
    let page: PageJson = parse(unsafe { text(ptr, "page_json") }?, "page_json")?;
    Ok(TimelinePage { before: page.before, limit: page.limit })
}

/// `tp_conversation_update`'s changes: `ConversationPatch`'s fields. Absent fields stay as they
/// are.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConversationPatchJson {
    /// A status name ("resolved"), or the status in its serde form (`{"status": "snoozed",
    /// "until": "..."}`, which "snoozed" needs).
    #[serde(default)]
    status: Option<serde_json::Value>,
    #[serde(default)]
    priority: Option<Priority>,
    /// `null` unassigns; absent leaves it (refused while the router holds the conversation).
    #[serde(default, deserialize_with = "present")]
    handler: Option<Option<Handler>>,
    /// `null` clears the subject; absent leaves it.
    #[serde(default, deserialize_with = "present")]
    subject: Option<Option<String>>,
    #[serde(default)]
    add_tags: Vec<String>,
    #[serde(default)]
    remove_tags: Vec<String>,
}

/// A field that is present, `null` included (`Some(None)`); an absent one stays `None` through
/// `#[serde(default)]`.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

impl ConversationPatchJson {
    /// Parses `patch_json` (an object, see [`parse_fields`]).
    fn parse(json: &str) -> Result<ConversationPatch, Failure> {
        parse_fields::<ConversationPatchJson>(json, "patch_json")?.into_patch()
    }

    fn into_patch(self) -> Result<ConversationPatch, Failure> {
        let status = match self.status {
            None => None,
            Some(value) => {
                let value = match value {
                    serde_json::Value::String(name) => serde_json::json!({ "status": name }),
                    other => other,
                };
                let status: ConversationStatus = serde_json::from_value(value).map_err(|e| {
                    Failure::from(Error::invalid(
                        "status",
                        format!(
                            "{e}: a status is \"open\", \"pending\", \"resolved\", \"closed\" or {{\"status\": \
                             \"snoozed\", \"until\": \"<time>\"}}"
                        ),
                    ))
                })?;
                Some(status)
            }
        };
        Ok(ConversationPatch {
            status,
            priority: self.priority,
            handler: self.handler,
            subject: self.subject,
            add_tags: self.add_tags,
            remove_tags: self.remove_tags,
        })
    }
}

/// What `tp_events_after` hands out.
#[derive(Serialize)]
struct EventsJson<'a> {
    events: &'a [StoredEvent],
    next_after: u64,
}

/// Most events one `tp_events_after` call returns.
const MAX_EVENTS: u32 = 1000;

/// What the routing calls hand out.
#[derive(Serialize)]
struct RoutingEventsJson<'a> {
    events: &'a [RoutingEvent],
    next_timer: Option<DateTime<Utc>>,
}

/// What `tp_handoff` hands out: the decision (as an ingest outcome's `"routing"`) and when the
/// router's next timer is due.
#[derive(Serialize)]
struct HandoffJson<'a> {
    #[serde(flatten)]
    decision: &'a RoutingDecision,
    next_timer: Option<DateTime<Utc>>,
}

/// What the calls that may take conversations out of routing without being routing calls
/// (`tp_conversation_update`, `tp_customer_erase`) hand out: their result, with when the
/// router's next timer is due (`null` without a router).
#[derive(Serialize)]
struct WithNextTimer<'a, T> {
    #[serde(flatten)]
    result: &'a T,
    next_timer: Option<DateTime<Utc>>,
}

/// The engine's router, or `Refused` when the engine was configured without one.
fn router(live: &Live) -> Result<&Arc<Router>, Failure> {
    live.engine.router().ok_or_else(|| {
        Failure::from(Error::Refused(
            "this engine has no router: add a \"routing\" key to the configuration of tp_engine_new".into(),
        ))
    })
}

/// Runs one router call, writes what it did back to the engine's conversations (their
/// handlers), then hands out the events and when the router's next timer is due.
///
/// One routing call of an engine at a time, its events applied before the next call starts:
/// applied out of order (an accept's `assigned` written after the completion's `completed` on
/// another thread), they would leave a conversation with the handler of an earlier state.
///
/// # Safety
/// `out` came from [`out_slot`].
unsafe fn route_and_hand_out(
    out: *mut *mut c_char,
    live: &Live,
    call: impl FnOnce(&Router) -> Result<Vec<RoutingEvent>, Error>,
) -> Result<(), Failure> {
    let (events, next_timer) = route(live, call, |events| events)?;
    // SAFETY: forwarded.
    unsafe { hand_out(out, &RoutingEventsJson { events: &events, next_timer }) }
}

/// A router call on one work item at a time (`Router::complete`, `Router::withdraw`).
type ItemCall = fn(&Router, WorkItemId, DateTime<Utc>) -> Result<Vec<RoutingEvent>, Error>;

/// A routing call on one work item (`item_id`) that returns the router's events into
/// `out_events_json`, as `tp_work_complete` and `tp_work_withdraw` are.
///
/// # Safety
/// As for those functions.
unsafe fn on_work_item(
    engine: *mut TpEngine,
    item_id: *const c_char,
    out_events_json: *mut *mut c_char,
    call: ItemCall,
) -> TpStatus {
    guard(|| {
        // SAFETY (this block and below): the caller's promises, forwarded.
        let out = unsafe { out_slot(out_events_json, "out_events_json") }?;
        let live = live(engine)?;
        let item = unsafe { work_item(item_id) }?;
        unsafe { route_and_hand_out(out, &live, |router| call(router, item, live.engine.now())) }
    })
}

/// Runs one router call whose result `T` carries the router's events (`events` finds them),
/// writes them back to the engine's conversations, and returns the result with when the
/// router's next timer is due; in order with the engine's other routing calls, as for
/// [`route_and_hand_out`].
fn route<T>(
    live: &Live,
    call: impl FnOnce(&Router) -> Result<T, Error>,
    events: impl FnOnce(&T) -> &[RoutingEvent],
) -> Result<(T, Option<DateTime<Utc>>), Failure> {
    let router = router(live)?;
    let _in_order = live.routing.lock().unwrap_or_else(PoisonError::into_inner);
    let result = call(router)?;
    block_on(live.engine.apply_routing_events(&live.tenant, events(&result)))?;
    Ok((result, router.next_timer()))
}

/// Runs an engine call that may route (an ingest, an agent's reply) in order with the engine's
/// routing calls when the engine has a router ([`in_routing_order`]); without one, calls of
/// other threads are not held up.
fn in_routing_order_if_routed<T>(
    live: &Live,
    call: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Failure> {
    match live.engine.router() {
        Some(_) => Ok(in_routing_order(live, call)?.0),
        None => Ok(block_on(call)?),
    }
}

/// Runs an engine call that takes conversations out of routing itself and applies the router's
/// events (a resolve or close completes or withdraws the work item, an erasure withdraws the
/// customer's), in order with the engine's routing calls as for [`route_and_hand_out`]; returns
/// its result with when the router's next timer is due (`None` without a router).
fn in_routing_order<T>(
    live: &Live,
    call: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<(T, Option<DateTime<Utc>>), Failure> {
    let _in_order = live.routing.lock().unwrap_or_else(PoisonError::into_inner);
    let result = block_on(call)?;
    Ok((result, live.engine.router().and_then(|router| router.next_timer())))
}

/// A configuration call: `json` (the argument `argument`) read as a `T` and given to the
/// router by `apply`; then the timers the change makes due fire at once (a queue found closed,
/// agents idle already), and the events are handed out as for any routing call.
///
/// # Safety
/// `json` is NULL or NUL-terminated; `out` is NULL or writable.
unsafe fn configure_router<T: DeserializeOwned>(
    engine: *mut TpEngine,
    json: *const c_char,
    argument: &str,
    out: *mut *mut c_char,
    apply: impl FnOnce(&Router, T) -> Result<(), Error>,
) -> TpStatus {
    guard(|| {
        // SAFETY (this block and below): the caller's promises, forwarded.
        let out = unsafe { out_slot(out, "out_events_json") }?;
        let live = live(engine)?;
        let value: T = parse(unsafe { text(json, argument) }?, argument)?;
        unsafe {
            route_and_hand_out(out, &live, |router| {
                apply(router, value)?;
                Ok(router.tick(live.engine.now()))
            })
        }
    })
}

// ---------------------------------------------------------------------------------------------
// The C API.

/// The library's version ("0.1.0"): a static string, never free it.
#[unsafe(no_mangle)]
pub extern "C" fn tp_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Why the last call that returned a `TpStatus` on this thread failed ("" after a success),
/// at most 4096 bytes (a longer message is cut and says so).
///
/// The string belongs to the library: do not free it. It stays valid until the next call on
/// this thread of a function that returns a `TpStatus`; copy it to keep it longer. Other threads
/// have their own last error.
#[unsafe(no_mangle)]
pub extern "C" fn tp_last_error() -> *const c_char {
    LAST_ERROR.try_with(|slot| slot.borrow().as_ref().map_or(c"".as_ptr(), |m| m.as_ptr())).unwrap_or(c"".as_ptr())
}

/// The name of a status code ("TP_STATUS_NOT_FOUND"), or "TP_STATUS_UNKNOWN" for a code this
/// library does not define. A static string: never free it.
#[unsafe(no_mangle)]
pub extern "C" fn tp_status_name(status: i32) -> *const c_char {
    TpStatus::from_code(status).map_or(c"TP_STATUS_UNKNOWN", TpStatus::name).as_ptr()
}

/// Creates an engine with its own in-memory store, from a JSON configuration:
///
///     {"tenant": "acme-shop",                  required: the tenant every call works in
///      "cross_channel_window_hours": 72,       optional: continue the customer's open
///                                              conversation across channels within this window
///      "default_phone_region": "BR",           optional: region for national phone numbers
///      "routing": {...}}                       optional: route conversations to agents
///
/// With "routing", every conversation that needs a handler is routed as it is ingested (the
/// outcome's "routing"), and the routing calls (tp_agent_*, tp_offer_*, tp_work_*,
/// tp_handoff, tp_return_to_bot, tp_routing_tick, tp_routing_explain, tp_calendars_set,
/// tp_queue_upsert, tp_queue_stats, tp_idle_policy_set) work. Every key of "routing" is optional:
///
///     {"calendars": [{"name": "office", "time_zone": "UTC",  business hours, as for
///                     "weekly": [...]}],                     tp_calendars_set
///      "queues": [{"id": "support",                          queues, in order (an overflow
///                  "offer": {"offer": true, "expires_after": 120},     target comes first);
///                  "hours": {"schedule": "office",           without "offer", work is assigned
///                            "action": "callback"}}],        directly; durations in seconds;
///                                                            "hours" as for tp_queue_upsert
///      "plan": {"rules": [{"name": "all", "steps": [{"pool": {"queues": ["support"]}}]}]},
///                                                            first-match rules of steps (without
///                                                            a plan: the router's default queue,
///                                                            every agent)
///      "idle": {"after": 900, "status": "away"},             the idle rule, as for
///                                                            tp_idle_policy_set
///      "agents": [{"id": "agent.bruno", ...}],               as for tp_agent_upsert
///      "config": {"default_queue": "default",                router settings, each optional:
///                 "statuses": {"chat-only": {"channels": {"only": ["webchat"]}}},
///                 "offline": {"grace": 60, "assigned": "requeue"}}}   statuses add to online,
///                                                            away, busy and offline
///
/// Calendars come first (queue hours and agents' "schedule" name them), then queues, the plan,
/// the idle rule and agents. Calendars, queues, plans, the idle rule and agents are
/// touchpoint's routing types (`Calendars`, `Queue`, `Plan`, `IdlePolicy`, `Agent`) in their
/// serde form; one that does not validate is TP_STATUS_INVALID_INPUT, a plan or agent naming a
/// missing queue TP_STATUS_INVALID_INPUT or TP_STATUS_NOT_FOUND, queue hours or an agent naming
/// a schedule the calendars do not hold TP_STATUS_NOT_FOUND.
///
/// On success `*out_engine` is the new engine: free it with `tp_engine_free`. On failure
/// `*out_engine` is NULL (when `out_engine` itself is not NULL).
///
/// # Safety
/// `config_json` is NULL or a NUL-terminated string; `out_engine` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tp_engine_new(config_json: *const c_char, out_engine: *mut *mut TpEngine) -> TpStatus {
    guard(|| {
        // SAFETY: the caller's promises, forwarded.
        let out = unsafe { out_slot(out_engine, "out_engine") }?;
        let config: ConfigJson = parse(unsafe { text(config_json, "config_json") }?, "config_json")?;
        let engine = register(config.build()?)?;
        // SAFETY: checked by `out_slot`.
        unsafe { out.write(engine) };
        Ok(())
    })
}

/// Frees an engine and everything it stores. `tp_engine_free(NULL)` does nothing and returns
/// TP_STATUS_OK (like `free(NULL)`); freeing an engine twice returns TP_STATUS_INVALID_HANDLE.
#[unsafe(no_mangle)]
pub extern "C" fn tp_engine_free(engine: *mut TpEngine) -> TpStatus {
    guard(|| {
        if engine.is_null() {
            return Ok(());
        }
        let removed = ENGINES.write().unwrap_or_else(PoisonError::into_inner).remove(&engine.addr());
        let owned = removed.ok_or_else(|| Failure::new(TpStatus::InvalidHandle, NOT_LIVE))?;
        // SAFETY: the table's strong count from `register`, taken back exactly once (the entry is
        // gone). The engine is dropped here, or by the last call still running on another thread.
        drop(unsafe { Arc::from_raw(std::ptr::with_exposed_provenance::<Live>(disguise(owned))) });
        Ok(())
    })
}

/// Frees a string returned by this library. `tp_string_free(NULL)` does nothing and returns
/// TP_STATUS_OK; a string freed twice, or not returned by this library, is left alone and
/// returns TP_STATUS_INVALID_HANDLE. A freed string's memory is kept for the next 1,024 frees
/// (within 8 MiB), so a second free within them is always recognised; later, its address may
/// belong to a new string, and a second free is then undefined, as with C's `free`.
///
/// # Safety
/// `string` is NULL or any pointer value; it is only touched when it is a live string of ours.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tp_string_free(string: *mut c_char) -> TpStatus {
    guard(|| {
        if string.is_null() {
            return Ok(());
        }
        // The quarantine is locked first, and across the check: a string being freed on another
        // thread is either still live or already in the quarantine.
        let mut freed = FREED.lock().unwrap_or_else(PoisonError::into_inner);
        if !STRINGS.lock().unwrap_or_else(PoisonError::into_inner).remove(&disguise(string.addr())) {
            let why = if freed.holds(string.addr()) {
                "`string` was already freed"
            } else {
                "`string` is not a live string of this library (freed long ago, or not returned by a tp_ call)"
            };
            return Err(Failure::new(TpStatus::InvalidHandle, why));
        }
        // SAFETY: it came from `CString::into_raw` in `hand_out` and was live until just now.
        freed.keep(unsafe { CString::from_raw(string) });
        Ok(())
    })
}

/// Ingests one inbound message (a webhook, a chat line, an email) into the engine's tenant:
/// deduplicates it, resolves the customer, threads it into a conversation and stores it.
///
/// `inbound_json`, required fields first:
///
///     {"channel": "whatsapp",                  email, sms, voice, whatsapp, messenger, instagram,
///                                              telegram, webchat, inapp, social, or your own name
///      "endpoint": "wa-main",                  our endpoint that received it
///      "sender": {"kind": "phone", "number": "+5511987654321"}
///                                              or {"kind": "email", "address": "..."}
///                                              or {"kind": "platform", "scope": "...", "id": "..."}
///      "external_id": "wamid.HBgN...",         the provider's message id (idempotency key)
///      "content": {"type": "text", "body": "Hi"}   or media, location, choices, ...
///      "verification": "carrier_asserted",     optional: unverified, carrier_asserted, verified
///                                              (default: carrier_asserted for phones on sms,
///                                              whatsapp and voice, else unverified)
///      "sender_name": "Ana",                   optional
///      "claims": [{"key": {"kind": "external_id", "value": "user-1"}, "verification": "verified"}],
///      "thread": {"subject": "...", "in_reply_to": "...", "references": [...],
///                 "provider_thread_id": "...", "reply_token": "..."},
///      "sent_at": "2026-03-02T09:00:00Z"}      optional
///
/// On success `*out_outcome_json` is the outcome (message, customer, identity, conversation,
/// duplicate, resolution, thread, needs_handler, notes, routing): free it with `tp_string_free`.
/// With a router, "routing" is what it did with a conversation that needed a handler:
/// `{"item": "<conversation id>", "outcome": {"offered": ["agent.bruno"]}` (or `{"assigned":
/// "agent.bruno"}`, `{"queued": "support"}`, `{"timed_out": "close"}`), "rule", "step", "reason",
/// "events"}`; it is null when nothing was routed (no router, a handler already, a duplicate). A
/// routing failure does not fail the ingest: it is in "notes".
/// Ingesting the same (channel, external_id) again changes nothing and returns the first
/// outcome with "duplicate": true. On failure `*out_outcome_json` is NULL and nothing changed.
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `out_outcome_json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tp_ingest(
    engine: *mut TpEngine,
    inbound_json: *const c_char,
    out_outcome_json: *mut *mut c_char,
) -> TpStatus {
    guard(|| {
        // SAFETY (this block and below): the caller's promises, forwarded.
        let out = unsafe { out_slot(out_outcome_json, "out_outcome_json") }?;
        let live = live(engine)?;
        let inbound: InboundJson = parse(unsafe { text(inbound_json, "inbound_json") }?, "inbound_json")?;
        // An ingest routes (and fires due timers) when there is a router.
        let outcome = in_routing_order_if_routed(&live, live.engine.ingest(&live.tenant, inbound.into_message()))?;
        unsafe { hand_out(out, &outcome) }
    })
}

/// Attaches an address the host knows to a customer (a phone number from the customer's
/// account, a confirmed email), so later messages from it reach the same customer.
///
/// `customer_id` is a customer id from an outcome; `identity_json`:
///
///     {"channel": "whatsapp", "address": {"kind": "phone", "number": "+55 11 98765-4321"},
///      "verification": "verified"}
///
/// On success `*out_identity_json` is the identity: free it with `tp_string_free`. Linking an
/// address the customer already has returns it unchanged; an address of another customer is
/// TP_STATUS_REFUSED.
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `out_identity_json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tp_link_identity(
    engine: *mut TpEngine,
    customer_id: *const c_char,
    identity_json: *const c_char,
    out_identity_json: *mut *mut c_char,
) -> TpStatus {
    guard(|| {
        // SAFETY (this block and below): the caller's promises, forwarded.
        let out = unsafe { out_slot(out_identity_json, "out_identity_json") }?;
        let live = live(engine)?;
        let customer: CustomerId = unsafe { id(customer_id, "customer_id") }?;
        let link: LinkJson = parse(unsafe { text(identity_json, "identity_json") }?, "identity_json")?;
        let identity =
            block_on(live.engine.link_identity(&live.tenant, customer, link.channel, link.address, link.verification))?;
        unsafe { hand_out(out, &identity) }
    })
}

/// Records a reply from us (an agent's or a bot's message) in a conversation. The host's
/// transport delivers it; this records it in the customer's history.
///
/// `conversation_id` is a conversation id from an outcome; `outbound_json`:
///
///     {"author": {"kind": "agent", "id": "agent.bruno"},    or {"kind": "bot", "id": "..."}
///      "content": {"type": "text", "body": "Sorry about that!"},
///      "via": {"endpoint": "wa-main", "identity": "<identity id>"},   optional; default: where
///                                                            the customer last wrote
///      "external_id": "wamid.out.1"}                         optional: the provider's id
///
/// On success `*out_message_json` is the stored message: free it with `tp_string_free`.
/// Refused before anything is stored when the conversation is closed, the customer is blocked
/// or opted out, or the channel's reply window is closed (TP_STATUS_REPLY_WINDOW_CLOSED).
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `out_message_json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tp_record_outbound(
    engine: *mut TpEngine,
    conversation_id: *const c_char,
    outbound_json: *const c_char,
    out_message_json: *mut *mut c_char,
) -> TpStatus {
    guard(|| {
        // SAFETY (this block and below): the caller's promises, forwarded.
        let out = unsafe { out_slot(out_message_json, "out_message_json") }?;
        let live = live(engine)?;
        let conversation: ConversationId = unsafe { id(conversation_id, "conversation_id") }?;
        let outbound: OutboundJson = parse(unsafe { text(outbound_json, "outbound_json") }?, "outbound_json")?;
        // An agent's reply is noted by the router (which fires due timers) when there is one.
        let record = live.engine.record_outbound(&live.tenant, conversation, outbound.into_message());
        let message = in_routing_order_if_routed(&live, record)?;
        unsafe { hand_out(out, &message) }
    })
}

/// The cross-channel context of a customer: profile, identities with reply windows, open and
/// past conversations, one timeline across channels (newest first), counts.
///
/// `page_json` may be NULL (the latest 50 messages) or `{"limit": 20, "before": "<message id>"}`
/// (limit 1 to 500; `before` is the `next_page` of a previous view).
///
/// On success `*out_context_json` is the view: free it with `tp_string_free`.
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `out_context_json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tp_customer_context(
    engine: *mut TpEngine,
    customer_id: *const c_char,
    page_json: *const c_char,
    out_context_json: *mut *mut c_char,
) -> TpStatus {
    guard(|| {
        // SAFETY (this block and below): the caller's promises, forwarded.
        let out = unsafe { out_slot(out_context_json, "out_context_json") }?;
        let live = live(engine)?;
        let customer: CustomerId = unsafe { id(customer_id, "customer_id") }?;
        let page = unsafe { page(page_json) }?;
        let view = block_on(live.engine.customer_context(&live.tenant, customer, page))?;
        unsafe { hand_out(out, &view) }
    })
}

/// The context of a conversation's customer, as `tp_customer_context`, with that conversation
/// in "focus".
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `out_context_json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tp_conversation_context(
    engine: *mut TpEngine,
    conversation_id: *const c_char,
    page_json: *const c_char,
    out_context_json: *mut *mut c_char,
) -> TpStatus {
    guard(|| {
        // SAFETY (this block and below): the caller's promises, forwarded.
        let out = unsafe { out_slot(out_context_json, "out_context_json") }?;
        let live = live(engine)?;
        let conversation: ConversationId = unsafe { id(conversation_id, "conversation_id") }?;
        let page = unsafe { page(page_json) }?;
        let view = block_on(live.engine.conversation_context(&live.tenant, conversation, page))?;
        unsafe { hand_out(out, &view) }
    })
}

/// Polls the tenant's domain events (customer created, identity linked, message received, ...)
/// with a sequence number greater than `after`, oldest first, at most `limit` (1 to 1000).
///
/// On success `*out_events_json` is `{"events": [{"seq": 1, "id": "...", "tenant": "...",
/// "at": "...", "event": {"type": "customer_created", ...}}, ...], "next_after": 12}`: pass
/// `next_after` as `after` in the next poll. Free it with `tp_string_free`.
///
/// # Safety
/// `out_events_json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tp_events_after(
    engine: *mut TpEngine,
    after: u64,
    limit: u32,
    out_events_json: *mut *mut c_char,
) -> TpStatus {
    guard(|| {
        // SAFETY (this block and below): the caller's promises, forwarded.
        let out = unsafe { out_slot(out_events_json, "out_events_json") }?;
        let live = live(engine)?;
        if limit == 0 || limit > MAX_EVENTS {
            return Err(Error::invalid("limit", format!("must be 1 to {MAX_EVENTS}")).into());
        }
        let events = block_on(live.engine.store().events_after(&live.tenant, after, limit as usize))?;
        let next_after = events.last().map_or(after, |e| e.seq);
        unsafe { hand_out(out, &EventsJson { events: &events, next_after }) }
    })
}

/// Changes a conversation: its status (resolve, close, reopen, snooze), priority, handler,
/// subject or tags.
///
/// `patch_json`, every field optional (an absent one stays as it is; `{}` changes nothing):
///
///     {"status": "resolved",                   open, pending, resolved, closed, or
///                                              {"status": "snoozed", "until": "2026-03-03T09:00:00Z"}
///      "priority": "high",                     low, normal, high, urgent
///      "handler": {"kind": "agent", "id": "agent.bruno"},   or "bot" or "queue"; null: none
///      "subject": "Broken lamp",               null clears it (1 to 998 bytes)
///      "add_tags": ["refund"], "remove_tags": ["new"]}   tags of 1 to 64 bytes, at most 100
///
/// The handler is for hosts that assign work themselves: while the engine's router holds the
/// conversation (routed and not completed, withdrawn or timed out), its handler follows the
/// router, and a "handler" here is TP_STATUS_REFUSED (tp_work_withdraw takes it out of routing).
/// With a router, a conversation resolved or closed leaves routing: its work item is completed
/// when an agent has it (the agent's capacity frees and takes the best waiting work at once;
/// the conversation no longer has a handler) and withdrawn otherwise (waiting or offered). The
/// router's events are applied and recorded like those of the routing calls: they are in the
/// event log (`tp_events_after`, `{"type": "routing", ...}`), not in this call's result.
///
/// On success `*out_conversation_json` is the conversation after the change, with when the
/// router's next timer is due (null without a router; call `tp_routing_tick` then):
/// `{"id": "...", "status": {"status": "resolved"}, "handler": null, ..., "next_timer": null}`.
/// Free it with `tp_string_free`.
///
/// An unknown conversation is TP_STATUS_NOT_FOUND; a closed conversation given any status but
/// "closed", and a handler for a conversation in routing, are TP_STATUS_REFUSED; an unknown
/// field, status, handler kind or agent, a tag or subject out of its limits are
/// TP_STATUS_INVALID_INPUT (text that is not JSON TP_STATUS_INVALID_JSON). Nothing changes then.
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `out_conversation_json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tp_conversation_update(
    engine: *mut TpEngine,
    conversation_id: *const c_char,
    patch_json: *const c_char,
    out_conversation_json: *mut *mut c_char,
) -> TpStatus {
    guard(|| {
        // SAFETY (this block and below): the caller's promises, forwarded.
        let out = unsafe { out_slot(out_conversation_json, "out_conversation_json") }?;
        let live = live(engine)?;
        let conversation: ConversationId = unsafe { id(conversation_id, "conversation_id") }?;
        let patch = ConversationPatchJson::parse(unsafe { text(patch_json, "patch_json") }?)?;
        let (updated, next_timer) = in_routing_order(&live, async {
            // Checked in routing order: no routing call of this library takes the item between
            // the check and the update.
            let routed = live.engine.router().is_some_and(|r| r.item(WorkItemId::from(conversation)).is_some());
            if patch.handler.is_some() && routed {
                return Err(Error::Refused(format!(
                    "conversation {conversation} is in routing, and its handler follows the router (tp_offer_accept, \
                     tp_work_requeue, ...): take it out with tp_work_withdraw first, or leave \"handler\" out"
                )));
            }
            live.engine.update_conversation(&live.tenant, conversation, patch).await
        })?;
        unsafe { hand_out(out, &WithNextTimer { result: &updated, next_timer }) }
    })
}

/// Everything stored about a customer (GDPR art. 15 and 20: the right of access and to data
/// portability), as one consistent snapshot, following merge aliases:
///
///     {"exported_at": "2026-03-02T09:00:00Z",
///      "customer": {...},                      the profile ("merged_from": the customers merged
///                                              into this one)
///      "identities": [...], "conversations": [...],
///      "messages": [...]}                      oldest first
///
/// On success `*out_export_json` is the export: free it with `tp_string_free`. An unknown
/// customer is TP_STATUS_NOT_FOUND, an erased one TP_STATUS_ERASED.
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `out_export_json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tp_customer_export(
    engine: *mut TpEngine,
    customer_id: *const c_char,
    out_export_json: *mut *mut c_char,
) -> TpStatus {
    guard(|| {
        // SAFETY (this block and below): the caller's promises, forwarded.
        let out = unsafe { out_slot(out_export_json, "out_export_json") }?;
        let live = live(engine)?;
        let customer: CustomerId = unsafe { id(customer_id, "customer_id") }?;
        let export = block_on(live.engine.export_customer(&live.tenant, customer))?;
        unsafe { hand_out(out, &export) }
    })
}

/// Erases a customer (GDPR art. 17, the right to erasure): identities, conversations, messages
/// and profile are deleted in one commit, leaving a tombstone with no personal data (its id and
/// times). Events carry ids only, so the event log holds no personal data either. A later
/// message from one of the customer's addresses starts afresh as a new customer.
///
/// With a router, the erased conversations leave routing: their work items are withdrawn, the
/// agents who had them get the capacity back (and the best waiting work at once), and those
/// events are applied and recorded as for the routing calls.
///
/// On success `*out_report_json` is what was erased, with when the router's next timer is due
/// (null without a router):
///
///     {"customer": "<customer id>", "identities": 2, "conversations": 1, "messages": 4,
///      "notes": ["..."],                      only when recording the routing afterwards failed
///                                             (the erasure stands)
///      "next_timer": null}
///
/// Free it with `tp_string_free`. An unknown customer is TP_STATUS_NOT_FOUND; erasing one
/// twice is TP_STATUS_ERASED (and so is every later call naming it).
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `out_report_json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tp_customer_erase(
    engine: *mut TpEngine,
    customer_id: *const c_char,
    out_report_json: *mut *mut c_char,
) -> TpStatus {
    guard(|| {
        // SAFETY (this block and below): the caller's promises, forwarded.
        let out = unsafe { out_slot(out_report_json, "out_report_json") }?;
        let live = live(engine)?;
        let customer: CustomerId = unsafe { id(customer_id, "customer_id") }?;
        let (report, next_timer) = in_routing_order(&live, live.engine.erase_customer(&live.tenant, customer))?;
        unsafe { hand_out(out, &WithNextTimer { result: &report, next_timer }) }
    })
}

/// Merges two customers found to be one person (the same person on two channels the engine
/// could not link by itself): the survivor keeps its values and fills its blanks from the
/// other; identities and conversations move to it; the other becomes an alias, so its id still
/// works in every call (it names the survivor).
///
/// `survivor` picks who survives: "first" (`customer_id`), "oldest" (created first) or
/// "has_external_id" (the one with the host's external id, else `customer_id`).
///
/// On success `*out_plan_json` is what the merge did:
///
///     {"survivor": "<customer id>", "absorbed": "<customer id>",
///      "result": {...},                        the survivor's profile after the merge
///      "identities_moved": [...], "conversations_moved": [...],
///      "discarded_attributes": {...}}          the absorbed customer's attributes that lost
///
/// Free it with `tp_string_free`. An unknown customer is TP_STATUS_NOT_FOUND, an erased one
/// TP_STATUS_ERASED; two customers with different external ids are TP_STATUS_REFUSED; a
/// customer merged with itself and an unknown survivor rule are TP_STATUS_INVALID_INPUT.
/// Nothing changes then.
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `out_plan_json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tp_customers_merge(
    engine: *mut TpEngine,
    customer_id: *const c_char,
    other_customer_id: *const c_char,
    survivor: *const c_char,
    out_plan_json: *mut *mut c_char,
) -> TpStatus {
    guard(|| {
        // SAFETY (this block and below): the caller's promises, forwarded.
        let out = unsafe { out_slot(out_plan_json, "out_plan_json") }?;
        let live = live(engine)?;
        let a: CustomerId = unsafe { id(customer_id, "customer_id") }?;
        let b: CustomerId = unsafe { id(other_customer_id, "other_customer_id") }?;
        let rule = unsafe { survivor_rule(survivor) }?;
        let plan = block_on(live.engine.merge_customers(&live.tenant, a, b, rule))?;
        unsafe { hand_out(out, &plan) }
    })
}

// ---------------------------------------------------------------------------------------------
// Routing.

/// Adds an agent (or a bot) to the engine's router, or updates one: skills, languages, queues,
/// capacity and presence. An agent who is available gets the best waiting work at once.
///
/// `agent_json`:
///
///     {"id": "agent.bruno",                                   required
///      "queues": [{"queue": "support"}],                      optional: queues the agent serves
///                                                             ("priority": 1, "delay": seconds)
///      "presence": {"status": "online"},                      optional (default "offline"):
///                                                             online, away, busy, offline, or a
///                                                             status of the routing config
///      "capacity": {"channels": {"webchat": 2, "email": 5}},  optional (default: 1 per channel)
///      "skills": {"billing": 3}, "languages": ["pt-BR"],      optional
///      "attributes": {"team": "returns"}, "is_bot": false}    optional
///
/// On success `*out_events_json` is the router's events: free it with `tp_string_free`. An
/// agent joining a queue the router does not have is TP_STATUS_NOT_FOUND.
///
/// All routing calls (tp_agent_upsert, tp_agent_presence, tp_agent_activity, tp_agent_remove,
/// tp_offer_accept, tp_offer_decline, tp_work_complete, tp_work_requeue, tp_work_transfer,
/// tp_work_transfer_to_agent, tp_work_withdraw, tp_work_update, tp_handoff, tp_return_to_bot, tp_routing_tick,
/// tp_calendars_set, tp_queue_upsert, tp_idle_policy_set, and the read-only tp_routing_explain
/// and tp_queue_stats) need an engine configured with a "routing" key (TP_STATUS_REFUSED
/// otherwise). Each but the read-only two applies what the router did to the engine's
/// conversations (the handler becomes the assigned agent or bot, or the queue the conversation
/// waits in; completed work has none) and hands out the router's events, in order, and when its
/// next timer is due (tp_handoff hands out its decision, which has the events):
///
///     {"events": [{"event": "offered", "item": "<conversation id>", "agents": ["agent.bruno"],
///                  "expires_at": "2026-03-02T09:02:00Z"},
///                 {"event": "assigned", "item": "...", "agent": "agent.bruno",
///                  "queue": "support", "wait": 12.5}, ...],
///      "next_timer": "2026-03-02T09:02:00Z"}   or null; call tp_routing_tick then
///
/// Event names: assigned, offered, queued, declined, offer_expired, offer_rescinded,
/// step_entered, step_skipped, requeued, overflowed, timed_out, completed, withdrawn,
/// presence_changed, shift_changed, handed_off, returned_to_bot. If the router acted but
/// recording a handler in the store failed (TP_STATUS_BACKEND, only with a failing store), the
/// router's change stays.
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `out_events_json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tp_agent_upsert(
    engine: *mut TpEngine,
    agent_json: *const c_char,
    out_events_json: *mut *mut c_char,
) -> TpStatus {
    guard(|| {
        // SAFETY (this block and below): the caller's promises, forwarded.
        let out = unsafe { out_slot(out_events_json, "out_events_json") }?;
        let live = live(engine)?;
        let agent: Agent = parse(unsafe { text(agent_json, "agent_json") }?, "agent_json")?;
        unsafe { route_and_hand_out(out, &live, |router| router.upsert_agent(agent, live.engine.now())) }
    })
}

/// Sets an agent's presence status by name ("online", "away", "busy", "offline", or one of
/// the routing config's or the agent's own statuses). Going available offers them waiting
/// work; going offline withdraws their open offers.
///
/// On success `*out_events_json` is the router's events: free it with `tp_string_free`. An
/// unknown agent is TP_STATUS_NOT_FOUND, an unknown status TP_STATUS_INVALID_INPUT.
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `out_events_json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tp_agent_presence(
    engine: *mut TpEngine,
    agent_id: *const c_char,
    status: *const c_char,
    out_events_json: *mut *mut c_char,
) -> TpStatus {
    guard(|| {
        // SAFETY (this block and below): the caller's promises, forwarded.
        let out = unsafe { out_slot(out_events_json, "out_events_json") }?;
        let live = live(engine)?;
        let agent: AgentId = unsafe { id(agent_id, "agent_id") }?;
        let status = unsafe { text(status, "status") }?;
        unsafe { route_and_hand_out(out, &live, |router| router.set_presence(&agent, status, live.engine.now())) }
    })
}

/// An agent accepts the offer of a work item: the item is assigned to them (the conversation's
/// handler becomes the agent) and the item's offers to other agents are withdrawn.
///
/// `item_id` is the work item: a routed conversation's id (the `"item"` of the outcome's
/// `"routing"` and of the events). On success `*out_events_json` is the router's events: free
/// it with `tp_string_free`. An unknown item or agent is TP_STATUS_NOT_FOUND; an item not
/// offered to this agent (any more) is TP_STATUS_REFUSED.
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `out_events_json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tp_offer_accept(
    engine: *mut TpEngine,
    item_id: *const c_char,
    agent_id: *const c_char,
    out_events_json: *mut *mut c_char,
) -> TpStatus {
    // SAFETY: the caller's promises, forwarded.
    unsafe { on_item_and_agent(engine, item_id, agent_id, out_events_json, Router::accept) }
}

/// An agent declines the offer of a work item: they are never offered it again, and it goes
/// on to another agent or waits in its queue (or leaves routing after the queue's
/// `max_declines`).
///
/// Arguments, result and errors as for `tp_offer_accept`.
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `out_events_json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tp_offer_decline(
    engine: *mut TpEngine,
    item_id: *const c_char,
    agent_id: *const c_char,
    out_events_json: *mut *mut c_char,
) -> TpStatus {
    // SAFETY: the caller's promises, forwarded.
    unsafe { on_item_and_agent(engine, item_id, agent_id, out_events_json, Router::decline) }
}

/// `Router::accept`, `Router::decline` or `Router::transfer_to_agent`.
type ItemAgentCall = fn(&Router, WorkItemId, &AgentId, DateTime<Utc>) -> touchpoint::Result<Vec<RoutingEvent>>;

/// A routing call on a work item and an agent (an answer to an offer, a transfer to the
/// agent), applied to the conversations and handed out as JSON.
///
/// # Safety
/// As for `tp_offer_accept`.
unsafe fn on_item_and_agent(
    engine: *mut TpEngine,
    item_id: *const c_char,
    agent_id: *const c_char,
    out_events_json: *mut *mut c_char,
    answer: ItemAgentCall,
) -> TpStatus {
    guard(|| {
        // SAFETY (this block and below): the caller's promises, forwarded.
        let out = unsafe { out_slot(out_events_json, "out_events_json") }?;
        let live = live(engine)?;
        let item = unsafe { work_item(item_id) }?;
        let agent: AgentId = unsafe { id(agent_id, "agent_id") }?;
        unsafe { route_and_hand_out(out, &live, |router| answer(router, item, &agent, live.engine.now())) }
    })
}

/// The agent finished an assigned work item: it leaves routing (the conversation no longer has
/// a handler until the customer writes again), and the agent's freed capacity takes the best
/// waiting item.
///
/// `item_id` as for `tp_offer_accept`. On success `*out_events_json` is the router's events:
/// free it with `tp_string_free`. An unknown item is TP_STATUS_NOT_FOUND; an item that is not
/// assigned is TP_STATUS_REFUSED.
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `out_events_json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tp_work_complete(
    engine: *mut TpEngine,
    item_id: *const c_char,
    out_events_json: *mut *mut c_char,
) -> TpStatus {
    // SAFETY: the caller's promises, forwarded.
    unsafe { on_work_item(engine, item_id, out_events_json, Router::complete) }
}

/// Takes an assigned work item back from its agent and routes it again (the agent is stuck,
/// leaves for the day, the customer needs someone else): the agent's capacity frees, and the
/// item keeps its original wait. With `exclude_agent` 1 the agent is never offered it again;
/// with 0 they may be.
///
/// `item_id` as for `tp_offer_accept`. On success `*out_events_json` is the router's events
/// (`{"event": "requeued", ...}`, then where the item went: `assigned`, `offered`, or nothing
/// more while it waits, and what the agent's freed capacity took); the conversation's handler
/// becomes the new agent, or the queue it waits in. Free it with `tp_string_free`.
///
/// An unknown item is TP_STATUS_NOT_FOUND; an item that is not assigned (waiting or offered) is
/// TP_STATUS_REFUSED; `exclude_agent` other than 0 or 1 is TP_STATUS_INVALID_INPUT. Nothing
/// changes then.
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `out_events_json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tp_work_requeue(
    engine: *mut TpEngine,
    item_id: *const c_char,
    exclude_agent: i32,
    out_events_json: *mut *mut c_char,
) -> TpStatus {
    guard(|| {
        // SAFETY (this block and below): the caller's promises, forwarded.
        let out = unsafe { out_slot(out_events_json, "out_events_json") }?;
        let live = live(engine)?;
        let item = unsafe { work_item(item_id) }?;
        let exclude = flag(exclude_agent, "exclude_agent")?;
        unsafe { route_and_hand_out(out, &live, |router| router.requeue(item, exclude, live.engine.now())) }
    })
}

/// Transfers a work item to another queue (`Router::transfer`): an agent sends the customer on
/// ("billing will take it from here"), a supervisor moves waiting work. Whoever holds it lets
/// go: offers are rescinded, and the agent it was assigned to gets the capacity back and is not
/// offered it again. It waits in `queue_id` for any member of that queue, by its original wait,
/// and is routed at once; its preferred and last agent are dropped.
///
/// `item_id` as for `tp_offer_accept`. On success `*out_events_json` is the router's events
/// (offers rescinded, `{"event": "transferred", "from", "to", "agent"}`, then where the item
/// went: `assigned`,
/// `offered`, or nothing more while it waits, and what freed capacity took); the
/// conversation's handler becomes the new agent, or `queue_id`. Free it with `tp_string_free`.
///
/// An unknown item or queue is TP_STATUS_NOT_FOUND, a malformed queue id
/// TP_STATUS_INVALID_INPUT; nothing changes then.
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `out_events_json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tp_work_transfer(
    engine: *mut TpEngine,
    item_id: *const c_char,
    queue_id: *const c_char,
    out_events_json: *mut *mut c_char,
) -> TpStatus {
    guard(|| {
        // SAFETY (this block and below): the caller's promises, forwarded.
        let out = unsafe { out_slot(out_events_json, "out_events_json") }?;
        let live = live(engine)?;
        let item = unsafe { work_item(item_id) }?;
        let queue: QueueId = unsafe { id(queue_id, "queue_id") }?;
        unsafe { route_and_hand_out(out, &live, |router| router.transfer(item, &queue, live.engine.now())) }
    })
}

/// Transfers a work item to one agent (`Router::transfer_to_agent`): a colleague an agent hands
/// the customer to, or a supervisor's direct assignment. Whoever holds it lets go (the agent it
/// was assigned to gets the capacity back and is not offered it again); the target is offered
/// it (when its queue offers work) or assigned it, whatever their queues and skills.
///
/// `item_id` as for `tp_offer_accept`. On success `*out_events_json` is the router's events
/// (offers rescinded, `{"event": "transferred", "from", "to", "agent", "target"}`, then the
/// offer or assignment to the target; a decline of that offer counts like any other); the conversation's handler becomes the target once assigned. Free it with
/// `tp_string_free`.
///
/// An unknown item or agent is TP_STATUS_NOT_FOUND; a target who cannot take it now (offline,
/// at capacity), who has it already or holds an offer of it is TP_STATUS_REFUSED; nothing
/// changes then.
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `out_events_json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tp_work_transfer_to_agent(
    engine: *mut TpEngine,
    item_id: *const c_char,
    agent_id: *const c_char,
    out_events_json: *mut *mut c_char,
) -> TpStatus {
    // SAFETY: the caller's promises, forwarded.
    unsafe { on_item_and_agent(engine, item_id, agent_id, out_events_json, Router::transfer_to_agent) }
}

/// Takes a work item out of routing in any state (waiting, offered or assigned): the customer
/// left, the host handles the conversation another way. Its offers are withdrawn, an agent who
/// had it gets the capacity back (and the best waiting work at once), and the conversation no
/// longer has a handler. The conversation itself stays as it is (resolving or closing it with
/// `tp_conversation_update` takes it out of routing too).
///
/// `item_id` as for `tp_offer_accept`. On success `*out_events_json` is the router's events
/// (`{"event": "withdrawn", ...}`, then what freed capacity took): free it with
/// `tp_string_free`. An unknown item (never routed, or out of routing already) is
/// TP_STATUS_NOT_FOUND, and nothing changes.
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `out_events_json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tp_work_withdraw(
    engine: *mut TpEngine,
    item_id: *const c_char,
    out_events_json: *mut *mut c_char,
) -> TpStatus {
    // SAFETY: the caller's promises, forwarded.
    unsafe { on_work_item(engine, item_id, out_events_json, Router::withdraw) }
}

/// Changes a work item the router holds (`Router::update_item`): a supervisor escalating a
/// waiting conversation, what a bot or the host learned later. `update_json` is an object of
/// the fields to change, each optional: `"priority"` (a number, higher is more urgent),
/// `"age_adjustment"` (seconds of extra age for ordering), `"due"` (RFC 3339), `"language"`,
/// `"skills"` and `"optional_skills"` (objects of skill → minimum level, replacing the item's),
/// `"attributes"` (an object merged into the item's). A waiting item moves in its queue at once
/// and is routed again (an agent who fits now gets it); offered and assigned items keep their
/// place, and the change counts when they are routed again.
///
/// `item_id` as for `tp_offer_accept`. On success `*out_events_json` is the router's events (an
/// `assigned` when an agent takes it now): free it with `tp_string_free`. An unknown item is
/// TP_STATUS_NOT_FOUND; `update_json` that is not JSON is TP_STATUS_INVALID_JSON, and one that is
/// not such an object (an unknown field, a bad value, too many attributes) TP_STATUS_INVALID_INPUT;
/// nothing changes.
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `out_events_json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tp_work_update(
    engine: *mut TpEngine,
    item_id: *const c_char,
    update_json: *const c_char,
    out_events_json: *mut *mut c_char,
) -> TpStatus {
    guard(|| {
        // SAFETY (this block and below): the caller's promises, forwarded.
        let out = unsafe { out_slot(out_events_json, "out_events_json") }?;
        let live = live(engine)?;
        let item = unsafe { work_item(item_id) }?;
        let update: ItemUpdate = parse_fields(unsafe { text(update_json, "update_json") }?, "update_json")?;
        unsafe { route_and_hand_out(out, &live, |router| router.update_item(item, update, live.engine.now())) }
    })
}

/// Removes an agent (or bot) from the router: their open offers are withdrawn and the work
/// assigned to them goes back to routing (a `requeued` event per item, then where it went; the
/// conversation's handler becomes the new agent or the queue it waits in). Add them again with
/// `tp_agent_upsert`.
///
/// On success `*out_events_json` is the router's events: free it with `tp_string_free`. An
/// unknown agent is TP_STATUS_NOT_FOUND, and nothing changes.
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `out_events_json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tp_agent_remove(
    engine: *mut TpEngine,
    agent_id: *const c_char,
    out_events_json: *mut *mut c_char,
) -> TpStatus {
    guard(|| {
        // SAFETY (this block and below): the caller's promises, forwarded.
        let out = unsafe { out_slot(out_events_json, "out_events_json") }?;
        let live = live(engine)?;
        let agent: AgentId = unsafe { id(agent_id, "agent_id") }?;
        unsafe { route_and_hand_out(out, &live, |router| router.remove_agent(&agent, live.engine.now())) }
    })
}

/// Why a work item is where it is, for a supervisor's screen: its snapshot, its rule and step,
/// the last decision in words, and every agent grouped by profile with what keeps them from
/// taking it (not in the step's pool, an eligibility term, presence, shift, capacity, an
/// interruption rule, an earlier decline, a queue delay). Changes nothing (no timer fires).
///
///     {"status": {"item": {...}, "state": "waiting",           or {"offered": ["agent.bruno"]},
///                 "control": "routing", "queue": "support",   {"assigned": "agent.bruno"}
///                 "rule": "all", "step": 0, "priority": 1, "declines": 1},
///      "step": "rule \"all\" step 0",
///      "reason": "no eligible agent can take it now at rule \"all\" step 0: ...",
///      "groups": [{"reason": {"kind": "declined_before"}, "agents": ["agent.carla"], "count": 1},
///                 {"reason": {"kind": "presence", "status": "away"}, "agents": [...], "count": 1}]}
///
/// `item_id` as for `tp_offer_accept`. On success `*out_explanation_json` is the explanation:
/// free it with `tp_string_free`. An unknown item (never routed, or out of routing already) is
/// TP_STATUS_NOT_FOUND.
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `out_explanation_json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tp_routing_explain(
    engine: *mut TpEngine,
    item_id: *const c_char,
    out_explanation_json: *mut *mut c_char,
) -> TpStatus {
    guard(|| {
        // SAFETY (this block and below): the caller's promises, forwarded.
        let out = unsafe { out_slot(out_explanation_json, "out_explanation_json") }?;
        let live = live(engine)?;
        let item = unsafe { work_item(item_id) }?;
        let explanation = router(&live)?.explain(item, live.engine.now())?;
        unsafe { hand_out(out, &explanation) }
    })
}

/// Live statistics of a queue, for a wallboard or to tell a customer how long they will wait:
/// `{"waiting": 3, "estimated_wait": 42.5}`, the work items waiting in it now and the estimated
/// wait in seconds (the mean of the latest waits; null before the first item was taken). Changes
/// nothing.
///
/// On success `*out_stats_json` is the statistics: free it with `tp_string_free`. An unknown
/// queue is TP_STATUS_NOT_FOUND; a queue id that is not a valid key is TP_STATUS_INVALID_INPUT.
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `out_stats_json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tp_queue_stats(
    engine: *mut TpEngine,
    queue_id: *const c_char,
    out_stats_json: *mut *mut c_char,
) -> TpStatus {
    guard(|| {
        // SAFETY (this block and below): the caller's promises, forwarded.
        let out = unsafe { out_slot(out_stats_json, "out_stats_json") }?;
        let live = live(engine)?;
        let queue: QueueId = unsafe { id(queue_id, "queue_id") }?;
        let stats = router(&live)?.queue_stats(&queue)?;
        unsafe { hand_out(out, &stats) }
    })
}

/// A bot hands its conversation to humans (bot to human): `findings_json`, what the bot learned
/// (intent, order number, language, ...), is merged into the work item's attributes, and the
/// item is routed again by the plan, whose rules and queue buckets see the findings. The bot is
/// never chosen for it again (until `tp_return_to_bot` gives it back). The time the bot served
/// the customer is no wait: the queue's max wait counts from the handoff.
///
/// `item_id` as for `tp_offer_accept`: a conversation assigned to a bot. `findings_json` is a
/// JSON object (`{"intent": "refund", "order": "1042"}`, at most 256 keys), or NULL for none.
/// `mode` is "pass" (the bot lets go at once and its capacity frees) or "offer" (the bot keeps
/// the conversation, and its capacity, until a human has it).
///
/// On success `*out_decision_json` is the decision, in the shape of an ingest outcome's
/// "routing", with the router's next timer (as the other routing calls have it):
///
///     {"item": "<conversation id>", "outcome": {"assigned": "agent.bruno"},   or "offered",
///      "rule": "billing", "step": 0, "reason": "...",                         "queued", ...
///      "events": [{"event": "handed_off", "item": "...", "bot": "bot.triage", "mode": "pass"},
///                 {"event": "step_entered", ...}, {"event": "assigned", ...}],
///      "next_timer": null}
///
/// Free it with `tp_string_free`. The events are applied to the conversation as for the other
/// routing calls: its handler becomes the human it is assigned to, or the queue it waits in;
/// in "offer" mode the bot stays the handler until a human has it.
///
/// An unknown item is TP_STATUS_NOT_FOUND; an item that is not assigned to a bot (offered,
/// waiting, or with a human) is TP_STATUS_REFUSED; findings that are not a JSON object (or
/// more than 256 of them) and a mode other than "pass" and "offer" are TP_STATUS_INVALID_INPUT,
/// and the message names the argument (findings that are not JSON at all are
/// TP_STATUS_INVALID_JSON). Nothing changes then.
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `out_decision_json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tp_handoff(
    engine: *mut TpEngine,
    item_id: *const c_char,
    findings_json: *const c_char,
    mode: *const c_char,
    out_decision_json: *mut *mut c_char,
) -> TpStatus {
    guard(|| {
        // SAFETY (this block and below): the caller's promises, forwarded.
        let out = unsafe { out_slot(out_decision_json, "out_decision_json") }?;
        let live = live(engine)?;
        let item = unsafe { work_item(item_id) }?;
        let findings = unsafe { findings(findings_json) }?;
        let mode = unsafe { handoff_mode(mode) }?;
        let (decision, next_timer) = route(
            &live,
            |router| router.handoff(item, findings, mode, live.engine.now()),
            |decision| &decision.events,
        )?;
        unsafe { hand_out(out, &HandoffJson { decision: &decision, next_timer }) }
    })
}

/// A human hands their conversation back to a bot (human to bot: the bot runs a satisfaction
/// survey, an automated flow, or waits for the customer's next step). `findings_json`, the
/// human's notes (`{"resolved": true}`), is merged into the work item's attributes; the human's
/// capacity frees (they get the best waiting work at once), and the bot gets the conversation
/// at once: its handler becomes the bot. A bot that handed the conversation off before may take
/// it back, and hand it off again later with `tp_handoff`.
///
/// `item_id` as for `tp_offer_accept`: a conversation assigned to a human. `bot_id` is an agent
/// added with `"is_bot": true`. `findings_json` is a JSON object (at most 256 keys), or NULL
/// for none.
///
/// On success `*out_events_json` is the router's events, as for the other routing calls:
/// `{"event": "returned_to_bot", "item": "...", "agent": "agent.bruno", "bot": "bot.survey"}`
/// (`agent` is the human who let go), then the bot's `assigned`, then whatever the human's freed
/// capacity took. Free it with `tp_string_free`.
///
/// An unknown item or agent is TP_STATUS_NOT_FOUND; an item that is not assigned to a human
/// (offered, waiting, or with a bot already), or a bot that cannot take it now (not available,
/// no capacity left on the channel, an interruption rule), is TP_STATUS_REFUSED; a `bot_id`
/// that names a human agent, and findings that are not a JSON object (or more than 256 of them),
/// are TP_STATUS_INVALID_INPUT (findings that are not JSON at all TP_STATUS_INVALID_JSON).
/// Nothing changes then.
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `out_events_json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tp_return_to_bot(
    engine: *mut TpEngine,
    item_id: *const c_char,
    bot_id: *const c_char,
    findings_json: *const c_char,
    out_events_json: *mut *mut c_char,
) -> TpStatus {
    guard(|| {
        // SAFETY (this block and below): the caller's promises, forwarded.
        let out = unsafe { out_slot(out_events_json, "out_events_json") }?;
        let live = live(engine)?;
        let item = unsafe { work_item(item_id) }?;
        let bot: AgentId = unsafe { id(bot_id, "bot_id") }?;
        let findings = unsafe { findings(findings_json) }?;
        unsafe {
            route_and_hand_out(out, &live, |router| router.return_to_bot(item, &bot, findings, live.engine.now()))
        }
    })
}

/// Fires the router's timers that are due by now on the engine's clock: offer expiry, plan
/// step dwell, queue max wait, no-reply reassignment, agent-offline handling, shift starts and
/// ends, queue hours closing (the after-hours action: `{"event": "timed_out", "action":
/// "callback", ...}` for work waiting in the queue), idle agents (`presence_changed` to the
/// idle rule's status). Call it when the `"next_timer"` of the last routing result is due
/// (calling it early or often is harmless).
///
/// On success `*out_events_json` is the router's events (often none): free it with
/// `tp_string_free`.
///
/// # Safety
/// `out_events_json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tp_routing_tick(engine: *mut TpEngine, out_events_json: *mut *mut c_char) -> TpStatus {
    guard(|| {
        // SAFETY (this block and below): the caller's promises, forwarded.
        let out = unsafe { out_slot(out_events_json, "out_events_json") }?;
        let live = live(engine)?;
        unsafe { route_and_hand_out(out, &live, |router| Ok(router.tick(live.engine.now()))) }
    })
}

/// Replaces the router's business-hours calendars: the schedules queue hours
/// (`tp_queue_upsert`'s "hours"), agents' shifts (an agent's "schedule") and the plan's
/// `schedule("name").open` read.
///
/// `calendars_json` is an array of schedules, each named once (`[]` removes them all):
///
///     [{"name": "office",                                    required: 1 to 128 characters
///       "time_zone": "-03:00",                               required: "UTC", a fixed offset,
///                                                            or an IANA name such as
///                                                            "Europe/Berlin" (feature "tz")
///       "weekly": [{"days": ["Mon-Fri"], "start": "09:00", "end": "18:00"},   optional: local
///                  {"days": ["Sat"], "start": "09:00", "end": "13:00"}],       opening hours
///       "overrides": [{"name": "Christmas", "from": "2026-12-24",           optional: dated
///                      "to": "2026-12-26", "state": "closed", "level": "holiday"}]}]  exceptions
///
/// Outside its weekly hours and open overrides a schedule is closed. The new hours apply at
/// once: this call fires the timers they make due (and any others due by now), so its result
/// has the events of shifts that start or end and of queues found closed, whose waiting work
/// gets the queue's after-hours action. A queue or agent whose schedule is no longer there
/// counts as closed (off shift).
///
/// On success `*out_events_json` is the router's events: free it with `tp_string_free`. A
/// schedule that does not validate (a time that is not HH:MM, an unknown time zone, two
/// schedules of one name, ...) is TP_STATUS_INVALID_INPUT, and the message names the field
/// (`weekly[0].end`); nothing changes then.
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `out_events_json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tp_calendars_set(
    engine: *mut TpEngine,
    calendars_json: *const c_char,
    out_events_json: *mut *mut c_char,
) -> TpStatus {
    // SAFETY: the caller's promises, forwarded.
    unsafe {
        configure_router(engine, calendars_json, "calendars_json", out_events_json, |router, calendars: Calendars| {
            router.set_calendars(calendars);
            Ok(())
        })
    }
}

/// Adds a queue to the engine's router, or replaces one (waiting work stays in it): its
/// order, max wait, offers, no-reply reassignment and business hours.
///
/// `queue_json`, `Queue` in its serde form (durations in seconds):
///
///     {"id": "support",                                       required
///      "hours": {"schedule": "office",                        optional: open while this
///                "action": "callback"},                       schedule of the calendars is;
///                                                             "action" is what happens to work
///                                                             nobody takes while it is closed:
///                                                             "close" (default), "callback",
///                                                             "voicemail" or
///                                                             {"overflow": "<queue id>"}
///      "offer": {"offer": true, "expires_after": 120},        optional: offer instead of assign
///      "max_wait": 600, "on_max_wait": "voicemail",           optional
///      "no_reply": {"after": 300}, "discipline": ...}         optional
///
/// With hours, work waiting in the queue when its schedule closes gets the action (a timer:
/// it fires on tp_routing_tick, or on any routing call, at the closing time), and work that
/// finds no agent while it is closed gets it at once (`{"timed_out": "callback"}` in an
/// outcome's "routing"). An agent still serving a closed queue gets its work as usual. A
/// "close", "callback" or "voicemail" action is a `{"event": "timed_out", "item": ...,
/// "action": "callback", "reason": ...}` event that ends the conversation's routing: it has no
/// handler any more, and the host does what the action says (close the conversation, schedule
/// the call back, offer voicemail); an overflow moves the work to the other queue (an
/// `overflowed` event; the conversation waits there). The new
/// settings apply at once: this call fires the timers they make due (the queue found closed,
/// say) and hands out their events.
///
/// On success `*out_events_json` is the router's events: free it with `tp_string_free`. A
/// queue that does not validate is TP_STATUS_INVALID_INPUT; hours naming a schedule the
/// calendars do not hold (see tp_calendars_set), or an overflow into a queue the router does
/// not have, is TP_STATUS_NOT_FOUND; nothing changes then.
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `out_events_json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tp_queue_upsert(
    engine: *mut TpEngine,
    queue_json: *const c_char,
    out_events_json: *mut *mut c_char,
) -> TpStatus {
    // SAFETY: the caller's promises, forwarded.
    unsafe {
        configure_router(engine, queue_json, "queue_json", out_events_json, |router, queue: Queue| {
            router.upsert_queue(queue)
        })
    }
}

/// Installs the idle rule, or removes it: an agent in a status that takes work who shows no
/// activity for `after` seconds is put in `status`, so new work stops going to someone who
/// left their desk. They keep the work they hold, and their next activity does not set the
/// status back (the agent, or the host with tp_agent_presence, does).
///
/// `idle_json` is `{"after": 900, "status": "away"}` (seconds, more than 0 and at most 400
/// days; a status of the routing config that takes no new work and is not offline), or `null`
/// to remove the rule.
///
/// Activity is every routing call made for the agent (tp_agent_upsert, tp_agent_presence,
/// tp_offer_accept, tp_offer_decline, tp_work_complete of their work); report anything else
/// the host sees (typing, opening a conversation, a heartbeat) with tp_agent_activity. Being
/// offered or assigned work is not activity; bots are never idle. Idle time counts from the
/// last activity, also activity before the rule was installed: this call fires the checks
/// that are due at once, and its result has the `presence_changed` events of agents idle
/// already. Later ones fire on tp_routing_tick (the result's `"next_timer"`).
///
/// On success `*out_events_json` is the router's events: free it with `tp_string_free`. A rule
/// out of these limits is TP_STATUS_INVALID_INPUT, and nothing changes.
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `out_events_json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tp_idle_policy_set(
    engine: *mut TpEngine,
    idle_json: *const c_char,
    out_events_json: *mut *mut c_char,
) -> TpStatus {
    // SAFETY: the caller's promises, forwarded.
    unsafe {
        configure_router(engine, idle_json, "idle_json", out_events_json, |router, idle: Option<IdlePolicy>| {
            router.set_idle_policy(idle)
        })
    }
}

/// Reports activity of an agent that the router does not see otherwise (typing, opening a
/// conversation, a heartbeat of the agent's desktop), for the idle rule (tp_idle_policy_set):
/// the agent's idle time starts again from now. It changes nothing else, and an agent already
/// put in the idle status stays there.
///
/// On success `*out_events_json` is the router's events (those of timers that fell due first;
/// often none): free it with `tp_string_free`. An unknown agent is TP_STATUS_NOT_FOUND.
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `out_events_json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tp_agent_activity(
    engine: *mut TpEngine,
    agent_id: *const c_char,
    out_events_json: *mut *mut c_char,
) -> TpStatus {
    guard(|| {
        // SAFETY (this block and below): the caller's promises, forwarded.
        let out = unsafe { out_slot(out_events_json, "out_events_json") }?;
        let live = live(engine)?;
        let agent: AgentId = unsafe { id(agent_id, "agent_id") }?;
        unsafe { route_and_hand_out(out, &live, |router| router.note_agent_activity(&agent, live.engine.now())) }
    })
}
