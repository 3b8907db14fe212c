//! The C ABI example (`examples/c_abi/`): the committed header matches a fresh cbindgen run, the
//! C and Python callers tell the cross-channel story through the built library, and every error
//! path of the extern functions (called directly, from several threads too) is a status code with
//! an explanation, never undefined behaviour.

#[allow(dead_code)]
#[path = "../examples/c_abi/lib.rs"]
mod ffi;

use chrono::{DateTime, Utc};
use ffi::{
    TpEngine, TpStatus, tp_agent_activity, tp_agent_presence, tp_agent_remove, tp_agent_upsert, tp_calendars_set,
    tp_conversation_context, tp_conversation_update, tp_customer_context, tp_customer_erase, tp_customer_export,
    tp_customers_merge, tp_engine_free, tp_engine_new, tp_events_after, tp_handoff, tp_idle_policy_set, tp_ingest,
    tp_last_error, tp_link_identity, tp_offer_accept, tp_offer_decline, tp_queue_stats, tp_queue_upsert,
    tp_record_outbound, tp_return_to_bot, tp_routing_explain, tp_routing_tick, tp_status_name, tp_string_free,
    tp_version, tp_work_complete, tp_work_requeue, tp_work_transfer, tp_work_transfer_to_agent, tp_work_update,
    tp_work_withdraw,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{CStr, CString, c_char};
use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::ptr::{null, null_mut};
use std::sync::{Arc, Barrier, OnceLock};

// ---------------------------------------------------------------------------------------------
// Helpers.

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join("c_abi")
}

fn cstring(s: &str) -> CString {
    CString::new(s).expect("test strings have no NUL")
}

fn last_error() -> String {
    // SAFETY: tp_last_error always returns a valid NUL-terminated string.
    unsafe { CStr::from_ptr(tp_last_error()) }.to_str().expect("UTF-8 message").to_owned()
}

fn status_name(status: i32) -> String {
    // SAFETY: tp_status_name always returns a valid static string.
    unsafe { CStr::from_ptr(tp_status_name(status)) }.to_str().expect("UTF-8 name").to_owned()
}

/// A failed call: its status and `tp_last_error()` right after it.
#[derive(Debug)]
struct Failed {
    status: TpStatus,
    message: String,
}

/// Calls an extern function with a `char**` result; on success parses and frees the string, on
/// failure checks that the result was left NULL.
fn call(f: impl FnOnce(*mut *mut c_char) -> TpStatus) -> Result<Value, Failed> {
    let mut out: *mut c_char = std::ptr::without_provenance_mut(0x1); // garbage: the library must overwrite it
    let status = f(&mut out);
    if status != TpStatus::Ok {
        let message = last_error();
        assert!(out.is_null(), "a failed call leaves its result NULL ({status:?}: {message})");
        return Err(Failed { status, message });
    }
    assert_eq!(last_error(), "", "a successful call clears the last error");
    // SAFETY: on success the library handed us a live NUL-terminated string.
    let text = unsafe { CStr::from_ptr(out) }.to_str().expect("results are UTF-8").to_owned();
    // SAFETY: a live string of the library, freed once.
    assert_eq!(unsafe { tp_string_free(out) }, TpStatus::Ok);
    Ok(serde_json::from_str(&text).expect("results are JSON"))
}

/// An engine freed when dropped (tests that free it themselves ignore the second free's status).
struct TestEngine(*mut TpEngine);

impl TestEngine {
    fn new(config: Value) -> TestEngine {
        let config = cstring(&config.to_string());
        let mut engine = null_mut();
        // SAFETY: valid string and out pointer.
        let status = unsafe { tp_engine_new(config.as_ptr(), &mut engine) };
        assert_eq!(status, TpStatus::Ok, "{}", last_error());
        assert!(!engine.is_null());
        TestEngine(engine)
    }

    fn acme() -> TestEngine {
        TestEngine::new(json!({"tenant": "acme", "cross_channel_window_hours": 72}))
    }

    fn ingest(&self, inbound: &Value) -> Result<Value, Failed> {
        let inbound = cstring(&inbound.to_string());
        // SAFETY: valid pointers.
        call(|out| unsafe { tp_ingest(self.0, inbound.as_ptr(), out) })
    }

    fn link(&self, customer: &str, identity: &Value) -> Result<Value, Failed> {
        let (customer, identity) = (cstring(customer), cstring(&identity.to_string()));
        // SAFETY: valid pointers.
        call(|out| unsafe { tp_link_identity(self.0, customer.as_ptr(), identity.as_ptr(), out) })
    }

    fn reply(&self, conversation: &str, outbound: &Value) -> Result<Value, Failed> {
        let (conversation, outbound) = (cstring(conversation), cstring(&outbound.to_string()));
        // SAFETY: valid pointers.
        call(|out| unsafe { tp_record_outbound(self.0, conversation.as_ptr(), outbound.as_ptr(), out) })
    }

    fn customer_context(&self, customer: &str) -> Result<Value, Failed> {
        let customer = cstring(customer);
        // SAFETY: valid pointers; NULL page is allowed.
        call(|out| unsafe { tp_customer_context(self.0, customer.as_ptr(), null(), out) })
    }

    fn events(&self, after: u64, limit: u32) -> Result<Value, Failed> {
        // SAFETY: valid out pointer.
        call(|out| unsafe { tp_events_after(self.0, after, limit, out) })
    }

    fn event_count(&self) -> usize {
        self.events(0, 1000).expect("events")["events"].as_array().expect("array").len()
    }

    /// An engine of tenant "acme" routing every conversation to the queue "support" (`queue`
    /// is its JSON, merged over `{"id": "support"}`), with these agents.
    fn routed(queue: Value, agents: &[Value]) -> TestEngine {
        let mut support = json!({"id": "support"});
        support.as_object_mut().expect("object").extend(queue.as_object().cloned().unwrap_or_default());
        TestEngine::new(json!({
            "tenant": "acme",
            "routing": {
                "queues": [support],
                "plan": {"rules": [{"name": "all", "steps": [{"pool": {"queues": ["support"]}}]}]},
                "agents": agents,
            }
        }))
    }

    fn upsert(&self, agent: &Value) -> Result<Value, Failed> {
        let agent = cstring(&agent.to_string());
        // SAFETY: valid pointers.
        call(|out| unsafe { tp_agent_upsert(self.0, agent.as_ptr(), out) })
    }

    fn presence(&self, agent: &str, status: &str) -> Result<Value, Failed> {
        let (agent, status) = (cstring(agent), cstring(status));
        // SAFETY: valid pointers.
        call(|out| unsafe { tp_agent_presence(self.0, agent.as_ptr(), status.as_ptr(), out) })
    }

    fn accept(&self, item: &str, agent: &str) -> Result<Value, Failed> {
        let (item, agent) = (cstring(item), cstring(agent));
        // SAFETY: valid pointers.
        call(|out| unsafe { tp_offer_accept(self.0, item.as_ptr(), agent.as_ptr(), out) })
    }

    fn decline(&self, item: &str, agent: &str) -> Result<Value, Failed> {
        let (item, agent) = (cstring(item), cstring(agent));
        // SAFETY: valid pointers.
        call(|out| unsafe { tp_offer_decline(self.0, item.as_ptr(), agent.as_ptr(), out) })
    }

    fn complete(&self, item: &str) -> Result<Value, Failed> {
        let item = cstring(item);
        // SAFETY: valid pointers.
        call(|out| unsafe { tp_work_complete(self.0, item.as_ptr(), out) })
    }

    fn tick(&self) -> Result<Value, Failed> {
        // SAFETY: valid out pointer.
        call(|out| unsafe { tp_routing_tick(self.0, out) })
    }

    fn calendars(&self, calendars: &Value) -> Result<Value, Failed> {
        let calendars = cstring(&calendars.to_string());
        // SAFETY: valid pointers.
        call(|out| unsafe { tp_calendars_set(self.0, calendars.as_ptr(), out) })
    }

    fn queue(&self, queue: &Value) -> Result<Value, Failed> {
        let queue = cstring(&queue.to_string());
        // SAFETY: valid pointers.
        call(|out| unsafe { tp_queue_upsert(self.0, queue.as_ptr(), out) })
    }

    fn idle(&self, idle: &Value) -> Result<Value, Failed> {
        let idle = cstring(&idle.to_string());
        // SAFETY: valid pointers.
        call(|out| unsafe { tp_idle_policy_set(self.0, idle.as_ptr(), out) })
    }

    fn activity(&self, agent: &str) -> Result<Value, Failed> {
        let agent = cstring(agent);
        // SAFETY: valid pointers.
        call(|out| unsafe { tp_agent_activity(self.0, agent.as_ptr(), out) })
    }

    /// `tp_handoff`: the findings as JSON text (`None`: NULL, no findings).
    fn handoff(&self, item: &str, findings: Option<&str>, mode: &str) -> Result<Value, Failed> {
        let (item, findings, mode) = (cstring(item), findings.map(cstring), cstring(mode));
        let findings = findings.as_ref().map_or(null(), |f| f.as_ptr());
        // SAFETY: valid pointers; NULL findings are allowed.
        call(|out| unsafe { tp_handoff(self.0, item.as_ptr(), findings, mode.as_ptr(), out) })
    }

    /// `tp_return_to_bot`: the findings as JSON text (`None`: NULL, no findings).
    fn return_to_bot(&self, item: &str, bot: &str, findings: Option<&str>) -> Result<Value, Failed> {
        let (item, bot, findings) = (cstring(item), cstring(bot), findings.map(cstring));
        let findings = findings.as_ref().map_or(null(), |f| f.as_ptr());
        // SAFETY: valid pointers; NULL findings are allowed.
        call(|out| unsafe { tp_return_to_bot(self.0, item.as_ptr(), bot.as_ptr(), findings, out) })
    }

    fn export(&self, customer: &str) -> Result<Value, Failed> {
        let customer = cstring(customer);
        // SAFETY: valid pointers.
        call(|out| unsafe { tp_customer_export(self.0, customer.as_ptr(), out) })
    }

    fn erase(&self, customer: &str) -> Result<Value, Failed> {
        let customer = cstring(customer);
        // SAFETY: valid pointers.
        call(|out| unsafe { tp_customer_erase(self.0, customer.as_ptr(), out) })
    }

    fn merge(&self, customer: &str, other: &str, survivor: &str) -> Result<Value, Failed> {
        let (customer, other, survivor) = (cstring(customer), cstring(other), cstring(survivor));
        // SAFETY: valid pointers.
        call(|out| unsafe { tp_customers_merge(self.0, customer.as_ptr(), other.as_ptr(), survivor.as_ptr(), out) })
    }

    /// `tp_conversation_update` with the patch as JSON text.
    fn update_text(&self, conversation: &str, patch: &str) -> Result<Value, Failed> {
        let (conversation, patch) = (cstring(conversation), cstring(patch));
        // SAFETY: valid pointers.
        call(|out| unsafe { tp_conversation_update(self.0, conversation.as_ptr(), patch.as_ptr(), out) })
    }

    fn update(&self, conversation: &str, patch: &Value) -> Result<Value, Failed> {
        self.update_text(conversation, &patch.to_string())
    }

    fn requeue(&self, item: &str, exclude_agent: i32) -> Result<Value, Failed> {
        let item = cstring(item);
        // SAFETY: valid pointers.
        call(|out| unsafe { tp_work_requeue(self.0, item.as_ptr(), exclude_agent, out) })
    }

    fn withdraw(&self, item: &str) -> Result<Value, Failed> {
        let item = cstring(item);
        // SAFETY: valid pointers.
        call(|out| unsafe { tp_work_withdraw(self.0, item.as_ptr(), out) })
    }

    fn transfer(&self, item: &str, queue: &str) -> Result<Value, Failed> {
        let (item, queue) = (cstring(item), cstring(queue));
        // SAFETY: valid pointers.
        call(|out| unsafe { tp_work_transfer(self.0, item.as_ptr(), queue.as_ptr(), out) })
    }

    fn transfer_to_agent(&self, item: &str, agent: &str) -> Result<Value, Failed> {
        let (item, agent) = (cstring(item), cstring(agent));
        // SAFETY: valid pointers.
        call(|out| unsafe { tp_work_transfer_to_agent(self.0, item.as_ptr(), agent.as_ptr(), out) })
    }

    fn update_item(&self, item: &str, update_json: &str) -> Result<Value, Failed> {
        let (item, update) = (cstring(item), cstring(update_json));
        // SAFETY: valid pointers.
        call(|out| unsafe { tp_work_update(self.0, item.as_ptr(), update.as_ptr(), out) })
    }

    fn remove_agent(&self, agent: &str) -> Result<Value, Failed> {
        let agent = cstring(agent);
        // SAFETY: valid pointers.
        call(|out| unsafe { tp_agent_remove(self.0, agent.as_ptr(), out) })
    }

    fn explain(&self, item: &str) -> Result<Value, Failed> {
        let item = cstring(item);
        // SAFETY: valid pointers.
        call(|out| unsafe { tp_routing_explain(self.0, item.as_ptr(), out) })
    }

    fn queue_stats(&self, queue: &str) -> Result<Value, Failed> {
        let queue = cstring(queue);
        // SAFETY: valid pointers.
        call(|out| unsafe { tp_queue_stats(self.0, queue.as_ptr(), out) })
    }

    /// The conversation as its context shows it (its "focus").
    fn conversation(&self, conversation: &str) -> Value {
        let conversation = cstring(conversation);
        // SAFETY: valid pointers; NULL page is allowed.
        let view = call(|out| unsafe { tp_conversation_context(self.0, conversation.as_ptr(), null(), out) })
            .expect("conversation context");
        view["focus"].clone()
    }

    /// The handler of a conversation, as its context shows it (`null` for none).
    fn handler(&self, conversation: &str) -> Value {
        let conversation = cstring(conversation);
        // SAFETY: valid pointers; NULL page is allowed.
        let view = call(|out| unsafe { tp_conversation_context(self.0, conversation.as_ptr(), null(), out) })
            .expect("conversation context");
        view["focus"]["handler"].clone()
    }
}

/// An agent serving "support" on web chat (`chats` at once), in `status`.
fn agent(id: &str, status: &str, chats: u32) -> Value {
    json!({"id": id, "queues": [{"queue": "support"}], "capacity": {"channels": {"webchat": chats}},
           "presence": {"status": status}})
}

/// A web-chat message from visitor `n`.
fn chat(n: usize) -> Value {
    json!({
        "channel": "webchat",
        "endpoint": "site",
        "sender": {"kind": "platform", "scope": "site", "id": format!("visitor-{n}")},
        "external_id": format!("chat-{n}"),
        "content": {"type": "text", "body": format!("Hello from visitor {n}")},
    })
}

/// Routing events as `name(agent)` words, the way the C and Python callers print them.
fn event_words(result: &Value) -> Vec<String> {
    result["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events in {result}"))
        .iter()
        .map(|e| {
            let name = str_field(e, "event");
            match e["agent"].as_str().or_else(|| e["agents"][0].as_str()) {
                Some(agent) => format!("{name}({agent})"),
                None => name.to_owned(),
            }
        })
        .collect()
}

fn handled_by(agent: &str) -> Value {
    json!({"kind": "agent", "id": agent})
}

impl Drop for TestEngine {
    fn drop(&mut self) {
        tp_engine_free(self.0);
    }
}

/// An SMS from sender `n` (a phone number of its own), with provider id `SM<n>`.
fn sms(n: usize, text: &str) -> Value {
    sms_from(n, &format!("SM{n}"), text)
}

fn sms_from(sender: usize, external_id: &str, text: &str) -> Value {
    json!({
        "channel": "sms",
        "endpoint": "sms-main",
        "sender": {"kind": "phone", "number": format!("+1415555{:04}", sender % 10_000)},
        "external_id": external_id,
        "content": {"type": "text", "body": text},
    })
}

fn agent_reply(text: &str) -> Value {
    json!({"author": {"kind": "agent", "id": "agent.bruno"}, "content": {"type": "text", "body": text}})
}

fn str_field<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field].as_str().unwrap_or_else(|| panic!("no string `{field}` in {value}"))
}

// ---------------------------------------------------------------------------------------------
// The header.

fn generated_header() -> String {
    let dir = example_dir();
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("examples/c_abi/cbindgen.toml parses");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("lib.rs"))
        .generate()
        .expect("cbindgen generates the header from examples/c_abi/lib.rs");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("the header is UTF-8")
}

#[test]
fn header_is_current() {
    let fresh = generated_header();
    let path = example_dir().join("touchpoint.h");
    if std::env::var_os("TP_BLESS").is_some() {
        std::fs::write(&path, &fresh).expect("write examples/c_abi/touchpoint.h");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != fresh {
        let first = committed.lines().zip(fresh.lines()).position(|(a, b)| a != b);
        let at = first.unwrap_or_else(|| committed.lines().count().min(fresh.lines().count()));
        panic!(
            "examples/c_abi/touchpoint.h differs from a fresh cbindgen run (first at line {}):\n  committed: {:?}\n  \
             generated: {:?}\nRegenerate it with `TP_BLESS=1 cargo test --test c_abi header_is_current` and commit it.",
            at + 1,
            committed.lines().nth(at).unwrap_or("<end of file>"),
            fresh.lines().nth(at).unwrap_or("<end of file>"),
        );
    }
}

#[test]
fn header_declares_every_exported_function_and_status() {
    let header = std::fs::read_to_string(example_dir().join("touchpoint.h")).expect("committed header");
    for function in [
        "const char *tp_version(void);",
        "const char *tp_last_error(void);",
        "const char *tp_status_name(int32_t status);",
        "TpStatus tp_engine_new(const char *config_json, struct TpEngine **out_engine);",
        "TpStatus tp_engine_free(struct TpEngine *engine);",
        "TpStatus tp_string_free(char *string);",
        "TpStatus tp_ingest(struct TpEngine *engine, const char *inbound_json, char **out_outcome_json);",
        "TpStatus tp_link_identity(",
        "TpStatus tp_record_outbound(",
        "TpStatus tp_customer_context(",
        "TpStatus tp_conversation_context(",
        "TpStatus tp_events_after(",
        "TpStatus tp_agent_upsert(struct TpEngine *engine, const char *agent_json, char **out_events_json);",
        "TpStatus tp_agent_presence(",
        "TpStatus tp_offer_accept(",
        "TpStatus tp_offer_decline(",
        "TpStatus tp_work_complete(",
        "TpStatus tp_handoff(",
        "TpStatus tp_return_to_bot(",
        "TpStatus tp_routing_tick(struct TpEngine *engine, char **out_events_json);",
        "TpStatus tp_calendars_set(struct TpEngine *engine, const char *calendars_json, char **out_events_json);",
        "TpStatus tp_queue_upsert(struct TpEngine *engine, const char *queue_json, char **out_events_json);",
        "TpStatus tp_idle_policy_set(struct TpEngine *engine, const char *idle_json, char **out_events_json);",
        "TpStatus tp_agent_activity(struct TpEngine *engine, const char *agent_id, char **out_events_json);",
        "TpStatus tp_conversation_update(",
        "TpStatus tp_customer_export(struct TpEngine *engine, const char *customer_id, char **out_export_json);",
        "TpStatus tp_customer_erase(struct TpEngine *engine, const char *customer_id, char **out_report_json);",
        "TpStatus tp_customers_merge(",
        "TpStatus tp_work_requeue(",
        "TpStatus tp_work_transfer(",
        "TpStatus tp_work_transfer_to_agent(",
        "TpStatus tp_work_withdraw(struct TpEngine *engine, const char *item_id, char **out_events_json);",
        "TpStatus tp_work_update(",
        "TpStatus tp_agent_remove(struct TpEngine *engine, const char *agent_id, char **out_events_json);",
        "TpStatus tp_routing_explain(",
        "TpStatus tp_queue_stats(struct TpEngine *engine, const char *queue_id, char **out_stats_json);",
        "typedef struct TpEngine TpEngine;",
    ] {
        assert!(header.contains(function), "touchpoint.h lacks `{function}`");
    }
    // Every status the library can return is in the header, under the name tp_status_name gives.
    for code in (0..=12).chain(19..=24) {
        let name = status_name(code);
        assert!(header.contains(&format!("{name} = {code},")), "touchpoint.h lacks `{name} = {code}`");
    }
}

// ---------------------------------------------------------------------------------------------
// Building the library and running the C and Python callers.

struct Built {
    examples: PathBuf,
    scratch: PathBuf,
}

/// Builds the example library once per test run, into the same target dir as the tests and
/// with the same features (so nothing is rebuilt when `cargo test` already built it).
fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let scratch = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("c_abi");
        let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("CARGO_TARGET_TMPDIR is <target>/tmp")
            .to_path_buf();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
        let mut features = Vec::new();
        macro_rules! feature {
            ($($name:literal),*) => { $( if cfg!(feature = $name) { features.push($name); } )* };
        }
        feature!(
            "phone",
            "testkit",
            "sqlite",
            "tz",
            "signatures",
            "whatsapp",
            "messenger",
            "telegram",
            "twilio",
            "email",
            "webchat",
            "rusqlite",
            "chrono-tz",
            "hmac",
            "sha2",
            "sha1",
            "mail-parser"
        );
        let output = Command::new(cargo)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["build", "--example", "c_abi", "--no-default-features", "--features", &features.join(",")])
            .arg("--target-dir")
            .arg(&target)
            .output()
            .expect("run cargo");
        assert!(
            output.status.success(),
            "cargo build --example c_abi failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::create_dir_all(&scratch).expect("scratch dir");
        Built { examples: target.join("debug").join("examples"), scratch }
    })
}

fn shared_library() -> PathBuf {
    let name = if cfg!(target_os = "macos") {
        "libc_abi.dylib"
    } else if cfg!(windows) {
        "c_abi.dll"
    } else {
        "libc_abi.so"
    };
    built().examples.join(name)
}

/// Compiles `examples/c_abi/main.c` against the static library with the system C compiler.
fn c_caller() -> PathBuf {
    let built = built();
    let binary = built.scratch.join("c_abi_main");
    let output = Command::new(std::env::var_os("CC").unwrap_or_else(|| "cc".into()))
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(example_dir())
        .arg("-o")
        .arg(&binary)
        .arg(example_dir().join("main.c"))
        .arg(built.examples.join("libc_abi.a"))
        .args(["-lpthread", "-ldl", "-lm"])
        .output()
        .expect("run the system C compiler `cc` (set CC to use another)");
    assert!(output.status.success(), "compiling main.c failed:\n{}", String::from_utf8_lossy(&output.stderr));
    binary
}

fn run(command: &mut Command, what: &str) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("could not run the {what}: {e}"));
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 output");
    assert!(
        output.status.success(),
        "the {what} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// What `customer X, conversation Y (resolution R, thread T)` says.
#[derive(Debug, PartialEq)]
struct Step {
    customer: String,
    conversation: String,
    resolution: String,
    thread: String,
}

fn line<'a>(stdout: &'a str, prefix: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{stdout}"))
}

fn step(stdout: &str, label: &str) -> Step {
    let rest = line(stdout, &format!("{label:9} -> customer "));
    let (customer, rest) = rest.split_once(", conversation ").expect("conversation");
    let (conversation, rest) = rest.split_once(" (resolution ").expect("resolution");
    let (resolution, rest) = rest.split_once(", thread ").expect("thread");
    let thread = rest.strip_suffix(')').expect("closing parenthesis");
    Step {
        customer: customer.into(),
        conversation: conversation.into(),
        resolution: resolution.into(),
        thread: thread.into(),
    }
}

/// The story's checks, the same for every caller.
fn check_story(stdout: &str) {
    assert_eq!(line(stdout, "touchpoint "), env!("CARGO_PKG_VERSION"));

    let chat = step(stdout, "web chat");
    let whatsapp = step(stdout, "whatsapp");
    let email = step(stdout, "email");
    assert_eq!((chat.resolution.as_str(), chat.thread.as_str()), ("created", "opened"));
    assert_eq!(chat.customer.len(), 36, "a UUID");
    for later in [&whatsapp, &email] {
        assert_eq!(later.customer, chat.customer, "one customer across channels:\n{stdout}");
        assert_eq!(later.conversation, chat.conversation, "one conversation history:\n{stdout}");
        assert_eq!(later.thread, "continued");
    }
    assert_eq!(line(stdout, "retry     -> "), format!("duplicate true, customer {}", chat.customer));
    assert_eq!(line(stdout, "one story -> "), "yes");

    // Routed to an agent: the web chat was offered to Carla, who declined; it waited in the
    // queue until Bruno came online, was offered to him, and he accepted through the C API.
    assert_eq!(line(stdout, "upsert    -> "), "(none)");
    assert_eq!(line(stdout, "routing   -> "), "step_entered offered(agent.carla)");
    let routed: Vec<&str> = stdout.lines().filter_map(|l| l.strip_prefix("routing   -> ")).collect();
    assert_eq!(
        routed,
        ["step_entered offered(agent.carla)", "step_entered assigned(bot.faq)"],
        "WhatsApp and email continue the routed conversation, not routed again; Telegram goes to the bot:\n{stdout}"
    );
    assert_eq!(line(stdout, "no agent  -> "), "TP_STATUS_NOT_FOUND: agent agent.nobody not found (result NULL)");
    assert_eq!(line(stdout, "decline   -> "), "declined(agent.carla) queued");
    assert_eq!(line(stdout, "presence  -> "), "presence_changed(agent.bruno) offered(agent.bruno)");
    assert_eq!(line(stdout, "accept    -> "), "assigned(agent.bruno)");
    assert_eq!(line(stdout, "handler   -> "), "agent agent.bruno", "the context names the agent as the handler");
    assert_eq!(line(stdout, "complete  -> "), "completed(agent.bruno)");
    // Business hours and the idle rule, set from the caller: no work waits and nobody has been
    // idle for 15 minutes, so none of them does anything yet (whatever the time of day).
    assert_eq!(line(stdout, "calendars -> "), "(none)");
    assert_eq!(line(stdout, "hours     -> "), "(none)");
    assert_eq!(line(stdout, "idle      -> "), "(none)");
    assert_eq!(line(stdout, "activity  -> "), "(none)");
    assert_eq!(line(stdout, "tick      -> "), "(none)");
    // Bots and humans: the Telegram chat of a new customer went to the FAQ bot; its handoff with
    // the finding `intent: return` reached the returns rule and Bruno, and he handed it back.
    let telegram = step(stdout, "telegram");
    assert_eq!((telegram.resolution.as_str(), telegram.thread.as_str()), ("created", "opened"));
    assert_ne!(telegram.customer, chat.customer, "a new customer");
    assert_eq!(line(stdout, "handoff   -> "), "handed_off step_entered assigned(agent.bruno)");
    assert_eq!(line(stdout, "human     -> "), "agent agent.bruno", "the handoff's events were applied");
    assert_eq!(line(stdout, "returned  -> "), "returned_to_bot(agent.bruno) assigned(bot.faq)");
    assert_eq!(line(stdout, "bot       -> "), "bot bot.faq", "the conversation is the bot's again");
    // The shop resolves the Telegram chat: it leaves routing (the bot's work completes, its
    // capacity frees), and the log has the router's event.
    assert_eq!(line(stdout, "resolved  -> "), "resolved, handler none");
    assert_eq!(line(stdout, "left      -> "), "completed(bot.faq)");
    assert_eq!(line(stdout, "stats     -> "), "support: 0 waiting");
    // GDPR: the export holds what the erasure removes (web chat, WhatsApp and email identities;
    // three messages in, one reply out), and then every call naming Ana says she is erased.
    assert_eq!(line(stdout, "export    -> "), "3 identities, 1 conversation(s), 4 messages");
    assert_eq!(line(stdout, "erased    -> "), "3 identities, 1 conversation(s), 4 messages");
    assert_eq!(
        line(stdout, "forgotten -> "),
        format!("TP_STATUS_ERASED: customer {} has been erased (result NULL)", chat.customer)
    );

    let linked: Vec<&str> = stdout.lines().filter_map(|l| l.strip_prefix("linked    -> ")).collect();
    assert_eq!(linked, ["whatsapp +5511987654321", "email ana.souza@example.com"], "normalised addresses");
    assert!(line(stdout, "reply     -> message ").ends_with(" on webchat"), "the reply goes where she last wrote");

    let view: Value = serde_json::from_str(line(stdout, "context json: ")).expect("the context line is JSON");
    assert_eq!(view["customer"]["id"], chat.customer.as_str());
    assert_eq!(view["customer"]["external_id"], "shop-user-1042");
    assert_eq!(view["focus"]["id"], chat.conversation.as_str());
    assert_eq!(view["focus"]["handler"], handled_by("agent.bruno"), "the handler of the conversation on every channel");
    let channels: BTreeSet<&str> =
        view["focus"]["channels"].as_array().expect("channels").iter().map(|u| str_field(u, "channel")).collect();
    assert_eq!(channels, BTreeSet::from(["email", "webchat", "whatsapp"]), "three channels, one conversation");
    let counts = &view["counts"];
    assert_eq!((counts["inbound"].as_u64(), counts["outbound"].as_u64()), (Some(3), Some(1)));
    assert_eq!(counts["conversations"], 1);
    assert_eq!(counts["per_channel"], json!({"email": 1, "whatsapp": 1, "webchat": 2}));
    assert_eq!(line(stdout, "context   -> "), "3 in / 1 out over 1 conversation(s)");
    let timeline: Vec<(&str, &str)> = view["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|m| (m["channel"].as_str().unwrap_or("?"), m["direction"].as_str().unwrap_or("?")))
        .collect();
    assert_eq!(
        timeline,
        [("email", "inbound"), ("whatsapp", "inbound"), ("webchat", "outbound"), ("webchat", "inbound")],
        "one timeline across channels, newest first"
    );
    let identities: BTreeSet<&str> = view["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .map(|i| str_field(&i["identity"], "channel"))
        .collect();
    assert_eq!(identities, BTreeSet::from(["email", "webchat", "whatsapp"]));
    assert_eq!(view["last_agent"], "agent.bruno");

    // All events were polled, page by page.
    let names: Vec<&str> = line(stdout, "events    -> ").split_whitespace().collect();
    let mut seen = BTreeMap::new();
    for name in &names {
        *seen.entry(*name).or_insert(0) += 1;
    }
    assert_eq!(seen.get("message_received"), Some(&3), "{names:?}");
    assert_eq!(seen.get("message_recorded"), Some(&1), "{names:?}");
    assert_eq!(seen.get("customer_created"), Some(&1), "{names:?}");
    assert_eq!(seen.get("conversation_opened"), Some(&1), "{names:?}");
    // The handler changed three times: the support queue (declined), Bruno (accepted), nobody
    // (completed).
    assert_eq!(seen.get("conversation_assigned"), Some(&3), "{names:?}");
    assert_eq!(names.first(), Some(&"customer_created"), "events come in commit order");
    let total = stdout.lines().filter_map(|l| l.strip_prefix("events    -> ")).nth(1).expect("events total line");
    assert_eq!(total, format!("{} in total", names.len()));

    assert_eq!(
        line(stdout, "error     -> "),
        "TP_STATUS_NOT_FOUND: conversation 00000000-0000-7000-8000-000000000000 not found (result NULL)"
    );
}

#[test]
fn c_caller_tells_the_cross_channel_story() {
    let binary = c_caller();
    let stdout = run(&mut Command::new(&binary), "C caller (examples/c_abi/main.c)");
    check_story(&stdout);
    assert_eq!(line(&stdout, "freed     -> again: "), "TP_STATUS_INVALID_HANDLE");
}

#[test]
fn python_caller_tells_the_cross_channel_story() {
    let library = shared_library();
    let stdout = run(
        Command::new("python3").arg(example_dir().join("touchpoint.py")).arg(&library),
        "Python caller (examples/c_abi/touchpoint.py; needs python3)",
    );
    check_story(&stdout);
    // The Python caller also prints the timeline it parsed.
    assert!(stdout.contains("] agent.bruno  Sorry about that, Ana! Can you send a photo?"), "{stdout}");
}

// ---------------------------------------------------------------------------------------------
// Error paths, calling the extern functions directly.

#[test]
fn version_is_the_crate_version() {
    // SAFETY: a static NUL-terminated string.
    let version = unsafe { CStr::from_ptr(tp_version()) };
    assert_eq!(version.to_str(), Ok(env!("CARGO_PKG_VERSION")));
}

#[test]
fn status_names_are_distinct_and_unknown_codes_are_named_unknown() {
    let codes: Vec<i32> = (0..=12).chain(19..=24).collect();
    let names: BTreeSet<String> = codes.iter().map(|c| status_name(*c)).collect();
    assert_eq!(names.len(), codes.len(), "one name per code: {names:?}");
    assert!(names.iter().all(|n| n.starts_with("TP_STATUS_") && n != "TP_STATUS_UNKNOWN"));
    for unknown in [-1, 13, 18, 25, i32::MAX, i32::MIN] {
        assert_eq!(status_name(unknown), "TP_STATUS_UNKNOWN");
    }
}

#[test]
fn every_engine_error_kind_has_its_own_status() {
    use touchpoint::Error;
    use touchpoint::model::{ChannelKind, TenantId};
    let kinds = [
        (Error::invalid("content.body", "must not be empty"), TpStatus::InvalidInput),
        (
            Error::InvalidAddress { kind: "phone", raw: "12".into(), reason: "too short".into() },
            TpStatus::InvalidAddress,
        ),
        (Error::not_found("customer", "c-1"), TpStatus::NotFound),
        (Error::Conflict("raced".into()), TpStatus::Conflict),
        (Error::Refused("closed".into()), TpStatus::Refused),
        (Error::Erased("c-1".into()), TpStatus::Erased),
        (
            Error::ReplyWindowClosed { channel: ChannelKind::WhatsApp, hint: "template".into() },
            TpStatus::ReplyWindowClosed,
        ),
        (
            Error::Provider {
                channel: ChannelKind::Sms,
                code: Some("30003".into()),
                message: "unreachable".into(),
                temporary: false,
            },
            TpStatus::Provider,
        ),
        (Error::WrongTenant(TenantId::new("other").expect("tenant")), TpStatus::WrongTenant),
        (touchpoint::routing::expr::Expr::parse("(((").expect_err("not an expression"), TpStatus::Expression),
        (Error::Backend { message: "disk full".into(), temporary: false, source: None }, TpStatus::Backend),
        (
            Error::Unauthenticated { header: "X-Hub-Signature-256", failure: touchpoint::SignatureFailure::Mismatch },
            TpStatus::Unauthenticated,
        ),
    ];
    let mut statuses = BTreeSet::new();
    for (error, expected) in kinds {
        let text = error.to_string();
        let failure = ffi::Failure::from(error);
        assert_eq!(failure.status, expected, "{text}");
        assert_eq!(failure.message, text, "the message is the error's own text");
        statuses.insert(failure.status as i32);
    }
    assert_eq!(statuses.len(), 12, "twelve kinds, twelve codes");
}

#[test]
fn null_pointers_are_an_error_code_naming_the_argument() {
    let engine = TestEngine::acme();
    let before = engine.event_count();
    let good = cstring(&sms(1, "hi").to_string());
    let id = cstring("01a23328-a7c7-7000-8002-2c1c4d22cc6e");
    // Garbage in the result slots: every failed call must leave them NULL.
    let mut out: *mut c_char = std::ptr::without_provenance_mut(0x1);
    let mut handle: *mut TpEngine = std::ptr::without_provenance_mut(0x1);
    let expect = |status: TpStatus, message: &str| {
        assert_eq!(status, TpStatus::NullPointer, "{message}");
        assert_eq!(last_error(), message);
    };
    // SAFETY (all calls below): every pointer is NULL or valid.
    unsafe {
        expect(tp_engine_new(null(), &mut handle), "`config_json` is NULL");
        expect(tp_engine_new(good.as_ptr(), null_mut()), "`out_engine` is NULL");
        expect(tp_ingest(null_mut(), good.as_ptr(), &mut out), "`engine` is NULL");
        expect(tp_ingest(engine.0, null(), &mut out), "`inbound_json` is NULL");
        expect(tp_ingest(engine.0, good.as_ptr(), null_mut()), "`out_outcome_json` is NULL");
        expect(tp_link_identity(engine.0, null(), good.as_ptr(), &mut out), "`customer_id` is NULL");
        expect(tp_link_identity(engine.0, id.as_ptr(), null(), &mut out), "`identity_json` is NULL");
        expect(tp_link_identity(engine.0, id.as_ptr(), good.as_ptr(), null_mut()), "`out_identity_json` is NULL");
        expect(tp_record_outbound(engine.0, null(), good.as_ptr(), &mut out), "`conversation_id` is NULL");
        expect(tp_record_outbound(engine.0, id.as_ptr(), null(), &mut out), "`outbound_json` is NULL");
        expect(tp_record_outbound(engine.0, id.as_ptr(), good.as_ptr(), null_mut()), "`out_message_json` is NULL");
        expect(tp_customer_context(engine.0, null(), null(), &mut out), "`customer_id` is NULL");
        expect(tp_customer_context(engine.0, id.as_ptr(), null(), null_mut()), "`out_context_json` is NULL");
        expect(tp_conversation_context(engine.0, null(), null(), &mut out), "`conversation_id` is NULL");
        expect(tp_conversation_context(null_mut(), id.as_ptr(), null(), &mut out), "`engine` is NULL");
        expect(tp_events_after(null_mut(), 0, 10, &mut out), "`engine` is NULL");
        expect(tp_events_after(engine.0, 0, 10, null_mut()), "`out_events_json` is NULL");
    }
    assert!(out.is_null() && handle.is_null(), "results stay NULL");
    // Freeing NULL is a no-op, like free(NULL).
    assert_eq!(tp_engine_free(null_mut()), TpStatus::Ok);
    // SAFETY: NULL.
    assert_eq!(unsafe { tp_string_free(null_mut()) }, TpStatus::Ok);
    assert_eq!(engine.event_count(), before, "nothing changed");
}

#[test]
fn invalid_utf8_is_an_error_code_with_the_offset() {
    let engine = TestEngine::acme();
    let bad = CString::new(b"{\"tenant\": \"acme\xff\"}".to_vec()).expect("no NUL");
    let mut handle = null_mut();
    // SAFETY: valid pointers.
    assert_eq!(unsafe { tp_engine_new(bad.as_ptr(), &mut handle) }, TpStatus::InvalidUtf8);
    assert_eq!(last_error(), "`config_json` is not valid UTF-8 (invalid byte at offset 16)");
    assert!(handle.is_null());

    let bad_id = CString::new(b"\xc3\x28".to_vec()).expect("no NUL");
    let failed = call(|out| unsafe { tp_customer_context(engine.0, bad_id.as_ptr(), null(), out) }).unwrap_err();
    assert_eq!(failed.status, TpStatus::InvalidUtf8);
    assert!(failed.message.contains("`customer_id`"), "{}", failed.message);
    let failed = call(|out| unsafe { tp_ingest(engine.0, bad.as_ptr(), out) }).unwrap_err();
    assert_eq!(failed.status, TpStatus::InvalidUtf8);
    assert_eq!(engine.event_count(), 0, "nothing changed");
}

#[test]
fn text_that_is_not_json_is_invalid_json_and_json_of_the_wrong_shape_is_invalid_input() {
    let engine = TestEngine::acme();
    // Truncated text is not JSON even where its start already has the wrong shape.
    for not_json in ["", "{", "{\"channel\": sms}", "{\"channel\": \"sms\"", "hello", "{\"nope\":1", "[[[[", "[1, 2"] {
        let text = cstring(not_json);
        let failed = call(|out| unsafe { tp_ingest(engine.0, text.as_ptr(), out) }).unwrap_err();
        assert_eq!(failed.status, TpStatus::InvalidJson, "{not_json:?}: {}", failed.message);
        assert!(failed.message.starts_with("`inbound_json` is not JSON: "), "{}", failed.message);
    }
    let wrong_shapes = [
        (json!({"channel": "sms"}), "missing field"),
        (json!([1, 2]), "invalid type"),
        (json!({"channel": 5, "endpoint": "e", "sender": {"kind": "phone", "number": "+14155550100"}}), "invalid type"),
        (json!({"colour": "red", "channel": "sms"}), "unknown field `colour`"),
        (
            json!({"channel": "sms", "endpoint": "has space", "sender": {"kind": "phone", "number": "+14155550100"},
                   "external_id": "SM1", "content": {"type": "text", "body": "hi"}}),
            "endpoint",
        ),
    ];
    for (shape, expected) in wrong_shapes {
        let failed = engine.ingest(&shape).unwrap_err();
        assert_eq!(failed.status, TpStatus::InvalidInput, "{shape}: {}", failed.message);
        assert!(failed.message.contains(expected), "{shape}: {}", failed.message);
    }
    // A message echoing a huge input is cut (at a character boundary) and says so.
    let mut huge = sms(1, "hi");
    huge[format!("é{}", "k".repeat(1 << 20))] = json!(1);
    let failed = engine.ingest(&huge).unwrap_err();
    assert_eq!(failed.status, TpStatus::InvalidInput);
    assert!(failed.message.len() <= ffi::MAX_ERROR_MESSAGE, "{} bytes", failed.message.len());
    assert!(
        failed.message.contains("unknown field `ék") && failed.message.ends_with("bytes in all)"),
        "{}",
        &failed.message[..200]
    );
    // The engine's own validation: empty text is invalid input, a malformed phone an invalid address.
    let failed = engine.ingest(&sms(1, "   ")).unwrap_err();
    assert_eq!(failed.status, TpStatus::InvalidInput, "{}", failed.message);
    let mut bad_phone = sms(1, "hi");
    bad_phone["sender"]["number"] = json!("12");
    let failed = engine.ingest(&bad_phone).unwrap_err();
    assert_eq!(failed.status, TpStatus::InvalidAddress, "{}", failed.message);
    assert_eq!(engine.event_count(), 0, "no failed call changed anything");

    // Configurations are checked the same way.
    let bad_configs = [
        (json!({}), TpStatus::InvalidInput),
        (json!({"tenant": "acme", "routing": {"colour": "red"}}), TpStatus::InvalidInput),
        (json!({"tenant": "no spaces please"}), TpStatus::InvalidInput),
        (json!({"tenant": "acme", "cross_channel_window_hours": 0}), TpStatus::InvalidInput),
        (json!({"tenant": "acme", "default_phone_region": "Brazil"}), TpStatus::InvalidInput),
        // The shape of a region code, but none ("UK" for "GB"): every national number and every
        // WhatsApp sender (bare digits) would be refused at ingest later.
        (json!({"tenant": "acme", "default_phone_region": "UK"}), TpStatus::InvalidInput),
    ];
    for (config, expected) in bad_configs {
        let text = cstring(&config.to_string());
        let mut handle = null_mut();
        // SAFETY: valid pointers.
        assert_eq!(unsafe { tp_engine_new(text.as_ptr(), &mut handle) }, expected, "{config}: {}", last_error());
        assert!(handle.is_null());
    }
}

#[test]
fn unknown_and_malformed_ids_are_not_found_and_invalid_input() {
    let engine = TestEngine::acme();
    let outcome = engine.ingest(&sms(7, "where is my parcel?")).expect("ingest");
    let unknown = "01a23328-a7c7-7000-8002-2c1c4d22cc6e";

    let failed = engine.customer_context(unknown).unwrap_err();
    assert_eq!(
        (failed.status, failed.message.as_str()),
        (TpStatus::NotFound, &*format!("customer {unknown} not found"))
    );
    let failed = engine.reply(unknown, &agent_reply("hello")).unwrap_err();
    assert_eq!(failed.status, TpStatus::NotFound);
    let phone = json!({"channel": "whatsapp", "address": {"kind": "phone", "number": "+14155550999"}, "verification": "verified"});
    assert_eq!(engine.link(unknown, &phone).unwrap_err().status, TpStatus::NotFound);
    let conversation = cstring(unknown);
    let failed =
        call(|out| unsafe { tp_conversation_context(engine.0, conversation.as_ptr(), null(), out) }).unwrap_err();
    assert_eq!(failed.status, TpStatus::NotFound);

    let failed = engine.customer_context("not-a-uuid").unwrap_err();
    assert_eq!(failed.status, TpStatus::InvalidInput, "{}", failed.message);
    // A known id of one engine is unknown to another (each engine has its own tenant and store).
    let other = TestEngine::new(json!({"tenant": "other"}));
    assert_eq!(other.customer_context(str_field(&outcome, "customer")).unwrap_err().status, TpStatus::NotFound);
    // Events: limit out of range.
    assert_eq!(engine.events(0, 0).unwrap_err().status, TpStatus::InvalidInput);
    assert_eq!(engine.events(0, 1001).unwrap_err().status, TpStatus::InvalidInput);
    // A page out of range.
    let customer = cstring(str_field(&outcome, "customer"));
    let page = cstring(r#"{"limit": 0}"#);
    let failed =
        call(|out| unsafe { tp_customer_context(engine.0, customer.as_ptr(), page.as_ptr(), out) }).unwrap_err();
    assert_eq!(failed.status, TpStatus::InvalidInput, "{}", failed.message);
    let page = cstring(r#"{"limit": 1}"#);
    let view =
        call(|out| unsafe { tp_customer_context(engine.0, customer.as_ptr(), page.as_ptr(), out) }).expect("page");
    assert_eq!(view["timeline"].as_array().map(Vec::len), Some(1));
}

#[test]
fn model_rules_come_back_as_their_own_codes() {
    let engine = TestEngine::acme();
    let ana = engine.ingest(&sms(1, "hi, this is Ana")).expect("ana");
    let bob = engine.ingest(&sms(2, "hi, this is Bob")).expect("bob");
    // Ana's verified WhatsApp number cannot be linked to Bob as well.
    let phone = json!({"channel": "whatsapp", "address": {"kind": "phone", "number": "+14155550777"}, "verification": "verified"});
    let identity = engine.link(str_field(&ana, "customer"), &phone).expect("link to ana");
    let failed = engine.link(str_field(&bob, "customer"), &phone).unwrap_err();
    assert_eq!(failed.status, TpStatus::Refused, "{}", failed.message);
    // Ana never wrote on WhatsApp: a free-form reply there is outside the reply window.
    let mut reply = agent_reply("Hi Ana, on WhatsApp now");
    reply["via"] = json!({"endpoint": "wa-main", "identity": identity["id"]});
    let failed = engine.reply(str_field(&ana, "conversation"), &reply).unwrap_err();
    assert_eq!(failed.status, TpStatus::ReplyWindowClosed, "{}", failed.message);
    assert!(failed.message.contains("template"), "{}", failed.message);
    // A template is allowed.
    reply["content"] = json!({"type": "template", "name": "order_update", "language": "en", "parameters": []});
    engine.reply(str_field(&ana, "conversation"), &reply).expect("a template passes the closed window");
}

#[test]
fn freed_and_forged_handles_are_invalid_handle_never_a_crash() {
    let engine = TestEngine::acme();
    let outcome = engine.ingest(&sms(1, "hello")).expect("ingest");
    let customer = cstring(str_field(&outcome, "customer"));
    let conversation = cstring(str_field(&outcome, "conversation"));
    let inbound = cstring(&sms(2, "again").to_string());
    let identity = cstring(
        r#"{"channel": "email", "address": {"kind": "email", "address": "a@example.com"}, "verification": "verified"}"#,
    );
    let reply = cstring(&agent_reply("hi").to_string());
    let (agent_json, agent_id, status) =
        (cstring(&agent("ana", "online", 1).to_string()), cstring("ana"), cstring("online"));
    let (calendars, queue, idle) = (cstring("[]"), cstring(r#"{"id": "support"}"#), cstring("null"));
    let mode = cstring("pass");
    let (patch, survivor, queue_id) = (cstring(r#"{"status": "resolved"}"#), cstring("first"), cstring("support"));
    let update = cstring(r#"{"priority": 2}"#);

    assert_eq!(tp_engine_free(engine.0), TpStatus::Ok);
    let forged = std::ptr::without_provenance_mut::<TpEngine>(0xdead_beef);
    for handle in [engine.0, forged] {
        // SAFETY (all calls): valid strings, any handle value.
        let results = unsafe {
            [
                call(|out| tp_ingest(handle, inbound.as_ptr(), out)),
                call(|out| tp_link_identity(handle, customer.as_ptr(), identity.as_ptr(), out)),
                call(|out| tp_record_outbound(handle, conversation.as_ptr(), reply.as_ptr(), out)),
                call(|out| tp_customer_context(handle, customer.as_ptr(), null(), out)),
                call(|out| tp_conversation_context(handle, conversation.as_ptr(), null(), out)),
                call(|out| tp_events_after(handle, 0, 10, out)),
                call(|out| tp_agent_upsert(handle, agent_json.as_ptr(), out)),
                call(|out| tp_agent_presence(handle, agent_id.as_ptr(), status.as_ptr(), out)),
                call(|out| tp_offer_accept(handle, conversation.as_ptr(), agent_id.as_ptr(), out)),
                call(|out| tp_offer_decline(handle, conversation.as_ptr(), agent_id.as_ptr(), out)),
                call(|out| tp_work_complete(handle, conversation.as_ptr(), out)),
                call(|out| tp_routing_tick(handle, out)),
                call(|out| tp_calendars_set(handle, calendars.as_ptr(), out)),
                call(|out| tp_queue_upsert(handle, queue.as_ptr(), out)),
                call(|out| tp_idle_policy_set(handle, idle.as_ptr(), out)),
                call(|out| tp_agent_activity(handle, agent_id.as_ptr(), out)),
                call(|out| tp_handoff(handle, conversation.as_ptr(), null(), mode.as_ptr(), out)),
                call(|out| tp_return_to_bot(handle, conversation.as_ptr(), agent_id.as_ptr(), null(), out)),
                call(|out| tp_conversation_update(handle, conversation.as_ptr(), patch.as_ptr(), out)),
                call(|out| tp_customer_export(handle, customer.as_ptr(), out)),
                call(|out| tp_customer_erase(handle, customer.as_ptr(), out)),
                call(|out| tp_customers_merge(handle, customer.as_ptr(), customer.as_ptr(), survivor.as_ptr(), out)),
                call(|out| tp_work_requeue(handle, conversation.as_ptr(), 0, out)),
                call(|out| tp_work_transfer(handle, conversation.as_ptr(), queue_id.as_ptr(), out)),
                call(|out| tp_work_transfer_to_agent(handle, conversation.as_ptr(), agent_id.as_ptr(), out)),
                call(|out| tp_work_withdraw(handle, conversation.as_ptr(), out)),
                call(|out| tp_work_update(handle, conversation.as_ptr(), update.as_ptr(), out)),
                call(|out| tp_agent_remove(handle, agent_id.as_ptr(), out)),
                call(|out| tp_routing_explain(handle, conversation.as_ptr(), out)),
                call(|out| tp_queue_stats(handle, queue_id.as_ptr(), out)),
            ]
        };
        for result in results {
            let failed = result.unwrap_err();
            assert_eq!(failed.status, TpStatus::InvalidHandle);
            assert!(failed.message.contains("not a live engine"), "{}", failed.message);
        }
        assert_eq!(tp_engine_free(handle), TpStatus::InvalidHandle, "double free is detected");
    }
    // A new engine never gets a freed engine's handle value.
    let next = TestEngine::acme();
    assert_ne!(next.0, engine.0);
}

#[test]
fn strings_are_freed_once_and_only_ours() {
    let engine = TestEngine::acme();
    let inbound = cstring(&sms(1, "hello").to_string());
    let mut out = null_mut();
    // SAFETY: valid pointers.
    assert_eq!(unsafe { tp_ingest(engine.0, inbound.as_ptr(), &mut out) }, TpStatus::Ok);
    // SAFETY: a live string of ours, then the same pointer again (detected), then a foreign one.
    unsafe {
        assert_eq!(tp_string_free(out), TpStatus::Ok);
        assert_eq!(tp_string_free(out), TpStatus::InvalidHandle);
        assert!(last_error().contains("already freed"), "{}", last_error());
        let foreign = CString::new("not ours").expect("no NUL").into_raw();
        assert_eq!(tp_string_free(foreign), TpStatus::InvalidHandle);
        drop(CString::from_raw(foreign)); // still ours to free: the library left it alone
    }
}

#[test]
fn a_failed_call_changes_nothing_and_the_last_error_is_cleared_by_a_success() {
    let engine = TestEngine::acme();
    let first = engine.ingest(&sms(1, "hello")).expect("ingest");
    let events = engine.event_count();
    assert_eq!(engine.ingest(&sms(2, "")).unwrap_err().status, TpStatus::InvalidInput);
    assert!(!last_error().is_empty());
    assert_eq!(engine.event_count(), events, "the failed ingest changed nothing");
    assert_eq!(last_error(), "", "the events call succeeded and cleared the last error");
    let again = engine.ingest(&sms(1, "hello")).expect("retry");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["message"], first["message"]);
    assert_eq!(engine.event_count(), events, "a duplicate changes nothing");
}

#[test]
fn a_panic_inside_a_call_is_a_status_code_and_the_library_stays_usable() {
    let status = ffi::guard(|| panic!("boom in a test"));
    assert_eq!(status, TpStatus::Panic);
    assert!(last_error().contains("boom in a test"), "{}", last_error());
    let engine = TestEngine::acme();
    engine.ingest(&sms(1, "still works")).expect("ingest after a panic");
}

#[test]
fn one_engine_serves_many_threads_and_each_thread_has_its_own_last_error() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 25;
    let engine = TestEngine::acme();
    // The main thread's own failure, to check that the workers' calls leave it alone.
    let mine = engine.events(0, 0).unwrap_err().message;
    let handle = engine.0.addr();
    let barrier = Arc::new(Barrier::new(THREADS));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                // Not dropped here: the engine is freed once, by the main thread.
                let me = ManuallyDrop::new(TestEngine(std::ptr::without_provenance_mut(handle)));
                barrier.wait();
                let mut customers = BTreeSet::new();
                for n in 0..PER_THREAD {
                    // Five senders per thread; every message is new.
                    let text = format!("thread {t} message {n}");
                    let outcome = me.ingest(&sms_from(t * 100 + n % 5, &format!("SM{t}-{n}"), &text)).expect("ingest");
                    customers.insert(str_field(&outcome, "customer").to_owned());
                    let view = me.customer_context(str_field(&outcome, "customer")).expect("context");
                    assert_eq!(view["timeline"][0]["content"]["body"], text.as_str(), "reads see this thread's write");
                    if n % 5 == 0 {
                        let failed = me.customer_context(&format!("bad-id-{t}")).unwrap_err();
                        assert_eq!(failed.status, TpStatus::InvalidInput);
                    }
                }
                customers
            })
        })
        .collect();
    let mut customers = BTreeSet::new();
    for worker in workers {
        customers.extend(worker.join().expect("no thread panicked"));
    }
    assert_eq!(last_error(), mine, "other threads' calls do not touch this thread's last error");
    assert_eq!(customers.len(), THREADS * 5, "five senders per thread, each one customer");
    let events = engine.events(0, 1000).expect("events");
    let received =
        events["events"].as_array().expect("array").iter().filter(|e| e["event"]["type"] == "message_received").count();
    assert_eq!(received, THREADS * PER_THREAD, "no message lost or stored twice");
}

#[test]
fn freeing_an_engine_while_other_threads_use_it_is_safe() {
    const THREADS: usize = 4;
    let engine = TestEngine::acme();
    let handle = engine.0.addr();
    let barrier = Arc::new(Barrier::new(THREADS + 1));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                // Not dropped here: the engine is freed once, by the main thread.
                let me = ManuallyDrop::new(TestEngine(std::ptr::without_provenance_mut(handle)));
                barrier.wait();
                let mut statuses = Vec::new();
                for n in 0..200 {
                    let status = match me.ingest(&sms(t * 1000 + n, "racing the free")) {
                        Ok(_) => TpStatus::Ok,
                        Err(failed) => failed.status,
                    };
                    statuses.push(status);
                }
                statuses
            })
        })
        .collect();
    barrier.wait();
    std::thread::sleep(std::time::Duration::from_millis(5));
    assert_eq!(tp_engine_free(engine.0), TpStatus::Ok);
    for worker in workers {
        let statuses = worker.join().expect("no thread panicked");
        // Every call either ran on the live engine or saw it freed; once freed, it stays freed.
        assert!(statuses.iter().all(|s| matches!(s, TpStatus::Ok | TpStatus::InvalidHandle)), "{statuses:?}");
        let first_invalid = statuses.iter().position(|s| *s == TpStatus::InvalidHandle).unwrap_or(statuses.len());
        assert!(statuses[first_invalid..].iter().all(|s| *s == TpStatus::InvalidHandle), "{statuses:?}");
    }
    assert_eq!(engine.events(0, 10).unwrap_err().status, TpStatus::InvalidHandle);
}

// ---------------------------------------------------------------------------------------------
// Routing through the C API.

#[test]
fn a_routing_config_builds_the_router_and_a_bad_one_is_refused_naming_the_problem() {
    // Every key of "routing" is optional: an empty one routes to the default queue, any agent.
    let engine = TestEngine::new(json!({"tenant": "acme", "routing": {}}));
    let events = engine.upsert(&json!({"id": "ana", "presence": {"status": "online"}})).expect("upsert");
    assert_eq!(events, json!({"events": [], "next_timer": null}));
    let outcome = engine.ingest(&chat(1)).expect("ingest");
    assert_eq!(outcome["routing"]["outcome"], json!({"assigned": "ana"}), "{outcome}");
    assert_eq!(engine.handler(str_field(&outcome, "conversation")), handled_by("ana"));

    // Router settings replace the defaults field by field; custom statuses add to the defaults.
    let engine = TestEngine::new(json!({"tenant": "acme", "routing": {
        "config": {"default_queue": "inbox", "statuses": {"chat-only": {"channels": {"only": ["webchat"]}}}},
        "agents": [{"id": "ana", "presence": {"status": "chat-only"}}, {"id": "bo", "presence": {"status": "away"}}],
    }}));
    let outcome = engine.ingest(&chat(1)).expect("ingest");
    assert_eq!(outcome["routing"]["outcome"], json!({"assigned": "ana"}), "{outcome}");
    engine.presence("bo", "online").expect("a default status is still there");

    let bad = [
        (json!({"colour": "red"}), TpStatus::InvalidInput, "unknown field `colour`"),
        (json!({"config": {"colour": "red"}}), TpStatus::InvalidInput, "unknown field `colour`"),
        (json!({"config": {"default_queue": "has space"}}), TpStatus::InvalidInput, "routing.config"),
        (json!({"queues": [{"id": "q", "offer": {"offer": true, "parallel": 0}}]}), TpStatus::InvalidInput, "parallel"),
        (json!({"queues": [{"id": "q", "max_wait": -5}]}), TpStatus::InvalidInput, "non-negative"),
        (
            json!({"queues": [{"id": "q", "max_wait": 60, "on_max_wait": {"overflow": "later"}}, {"id": "later"}]}),
            TpStatus::NotFound,
            "queue later not found",
        ),
        (json!({"plan": {"rules": [{"name": "x", "steps": []}]}}), TpStatus::InvalidInput, "at least one step"),
        (
            json!({"plan": {"rules": [{"name": "x", "steps": [{"pool": {"queues": ["nope"]}}]}]}}),
            TpStatus::InvalidInput,
            "unknown queue",
        ),
        (json!({"agents": [{"id": "ana", "queues": [{"queue": "nope"}]}]}), TpStatus::NotFound, "queue nope not found"),
        (json!({"agents": [{"id": "ana", "presence": {"status": "dancing"}}]}), TpStatus::InvalidInput, "dancing"),
        (json!({"agents": [{"presence": {"status": "online"}}]}), TpStatus::InvalidInput, "missing field `id`"),
    ];
    for (routing, expected, says) in bad {
        let config = cstring(&json!({"tenant": "acme", "routing": routing}).to_string());
        let mut handle: *mut TpEngine = std::ptr::without_provenance_mut(0x1);
        // SAFETY: valid pointers.
        let status = unsafe { tp_engine_new(config.as_ptr(), &mut handle) };
        assert_eq!(status, expected, "{routing}: {}", last_error());
        assert!(last_error().contains(says), "{routing}: {}", last_error());
        assert!(handle.is_null(), "no engine for a bad routing config");
    }
}

#[test]
fn without_a_routing_config_the_routing_calls_are_refused_and_ingest_routes_nothing() {
    let engine = TestEngine::acme();
    let outcome = engine.ingest(&chat(1)).expect("ingest");
    assert_eq!(outcome["routing"], Value::Null);
    assert_eq!(outcome["needs_handler"], true);
    let conversation = str_field(&outcome, "conversation");
    let events = engine.event_count();
    let refusals = [
        engine.upsert(&agent("ana", "online", 1)),
        engine.presence("ana", "online"),
        engine.accept(conversation, "ana"),
        engine.decline(conversation, "ana"),
        engine.complete(conversation),
        engine.tick(),
        engine.calendars(&json!([])),
        engine.queue(&json!({"id": "support"})),
        engine.idle(&json!({"after": 60, "status": "away"})),
        engine.idle(&Value::Null),
        engine.activity("ana"),
        engine.handoff(conversation, Some(r#"{"topic": "billing"}"#), "pass"),
        engine.return_to_bot(conversation, "bot.survey", None),
        engine.requeue(conversation, 0),
        engine.withdraw(conversation),
        engine.update_item(conversation, r#"{"priority": 2}"#),
        engine.remove_agent("ana"),
        engine.explain(conversation),
        engine.queue_stats("support"),
    ];
    for refused in refusals {
        let failed = refused.unwrap_err();
        assert_eq!(failed.status, TpStatus::Refused);
        assert!(failed.message.contains("add a \"routing\" key"), "{}", failed.message);
    }
    assert_eq!(engine.event_count(), events, "nothing changed");
}

#[test]
fn direct_assignment_sets_the_handler_and_completed_work_goes_to_the_next_customer() {
    // Ana takes one chat at a time; the queue assigns without offers.
    let engine = TestEngine::routed(json!({}), &[agent("ana", "online", 1)]);
    let first = engine.ingest(&chat(1)).expect("first");
    let first_conversation = str_field(&first, "conversation");
    assert_eq!(first["routing"]["item"], first["conversation"], "a conversation's work item has its id");
    assert_eq!(first["routing"]["outcome"], json!({"assigned": "ana"}));
    assert_eq!(event_words(&first["routing"]), ["step_entered", "assigned(ana)"]);
    assert_eq!(engine.handler(first_conversation), handled_by("ana"));

    // A follow-up in the same conversation is not routed again.
    let mut again = chat(1);
    again["external_id"] = json!("chat-1b");
    assert_eq!(engine.ingest(&again).expect("follow-up")["routing"], Value::Null);

    // Ana is busy: the second customer waits in the queue, which is the conversation's handler.
    let second = engine.ingest(&chat(2)).expect("second");
    let second_conversation = str_field(&second, "conversation");
    assert_eq!(second["routing"]["outcome"], json!({"queued": "support"}));
    assert_eq!(engine.handler(second_conversation), json!({"kind": "queue", "id": "support"}));

    // Ana completes the first: she gets the second at once; the first has no handler any more.
    let done = engine.complete(first_conversation).expect("complete");
    assert_eq!(event_words(&done), ["completed(ana)", "assigned(ana)"]);
    assert_eq!(done["events"][1]["item"], second["conversation"]);
    assert_eq!(engine.handler(first_conversation), Value::Null);
    assert_eq!(engine.handler(second_conversation), handled_by("ana"));

    // Completing it again: it is no longer routed.
    let failed = engine.complete(first_conversation).unwrap_err();
    assert_eq!(failed.status, TpStatus::NotFound, "{}", failed.message);
    assert_eq!(failed.message, format!("work item {first_conversation} not found"));
}

#[test]
fn offers_go_to_available_agents_and_only_the_agent_offered_can_accept_or_decline() {
    let engine = TestEngine::routed(
        json!({"offer": {"offer": true, "expires_after": 600}}),
        &[agent("ana", "online", 2), agent("bo", "away", 2)],
    );
    let outcome = engine.ingest(&chat(1)).expect("ingest");
    let item = str_field(&outcome["routing"], "item");
    assert_eq!(outcome["routing"]["outcome"], json!({"offered": ["ana"]}));
    let offered = &outcome["routing"]["events"][1];
    assert!(offered["expires_at"].is_string(), "{offered}");
    assert_eq!(engine.handler(item), Value::Null, "an offer is not a handler yet");

    // Bo was not offered it: neither his accept nor his decline counts, and nothing changes.
    let events = engine.event_count();
    for failed in [engine.accept(item, "bo").unwrap_err(), engine.decline(item, "bo").unwrap_err()] {
        assert_eq!(failed.status, TpStatus::Refused);
        assert_eq!(failed.message, format!("refused: work item {item} is not offered to bo"));
    }
    // Work that is offered, not assigned, cannot be completed.
    assert_eq!(engine.complete(item).unwrap_err().status, TpStatus::Refused);
    assert_eq!(engine.event_count(), events, "refused calls change nothing");

    // Ana declines; Bo comes online and is offered it; Ana cannot take it back.
    let declined = engine.decline(item, "ana").expect("decline");
    assert_eq!(event_words(&declined), ["declined(ana)", "queued"]);
    assert_eq!(engine.handler(item), json!({"kind": "queue", "id": "support"}));
    let online = engine.presence("bo", "online").expect("presence");
    assert_eq!(event_words(&online), ["presence_changed(bo)", "offered(bo)"]);
    assert!(online["next_timer"].is_string(), "the offer's expiry is the next timer: {online}");
    assert_eq!(engine.accept(item, "ana").unwrap_err().status, TpStatus::Refused);
    let accepted = engine.accept(item, "bo").expect("accept");
    assert_eq!(event_words(&accepted), ["assigned(bo)"]);
    assert_eq!(engine.handler(item), handled_by("bo"));
    // Accepting twice: the offer is gone.
    let failed = engine.accept(item, "bo").unwrap_err();
    assert_eq!(
        (failed.status, failed.message),
        (TpStatus::Refused, format!("refused: work item {item} has no open offer"))
    );

    // Upserting Bo with a new capacity keeps his work; going offline keeps it too (default policy).
    engine.upsert(&agent("bo", "online", 5)).expect("update bo");
    let offline = engine.presence("bo", "offline").expect("offline");
    assert_eq!(event_words(&offline), ["presence_changed(bo)"]);
    assert_eq!(engine.handler(item), handled_by("bo"));
}

#[test]
fn tick_fires_a_due_offer_expiry_on_the_engine_clock_and_applies_its_events() {
    // The C API's engine runs on the system clock: an offer of 50 ms is due after a short sleep.
    let engine =
        TestEngine::routed(json!({"offer": {"offer": true, "expires_after": 0.05}}), &[agent("ana", "online", 1)]);
    let outcome = engine.ingest(&chat(1)).expect("ingest");
    let item = str_field(&outcome["routing"], "item");
    assert_eq!(outcome["routing"]["outcome"], json!({"offered": ["ana"]}));
    std::thread::sleep(std::time::Duration::from_millis(120));
    let fired = engine.tick().expect("tick");
    // An expired offer counts as a decline: Ana is not offered it again, so it waits.
    assert_eq!(event_words(&fired), ["offer_expired(ana)", "queued"], "{fired}");
    assert_eq!(engine.handler(item), json!({"kind": "queue", "id": "support"}), "the tick's events were applied");
    assert_eq!(engine.accept(item, "ana").unwrap_err().status, TpStatus::Refused, "the offer expired");
    // What fired does not fire again.
    assert_eq!(engine.tick().expect("tick")["events"], json!([]));
}

#[test]
fn routing_arguments_are_checked_unknown_agents_and_items_are_not_found_and_nothing_changes() {
    let engine =
        TestEngine::routed(json!({"offer": {"offer": true, "expires_after": 600}}), &[agent("ana", "online", 1)]);
    let outcome = engine.ingest(&chat(1)).expect("ingest");
    let item = str_field(&outcome, "conversation");
    let unknown_item = "01a23328-a7c7-7000-8002-2c1c4d22cc6e";
    let events = engine.event_count();

    // Unknown agent, unknown item.
    let failed = engine.accept(item, "nobody").unwrap_err();
    assert_eq!((failed.status, failed.message.as_str()), (TpStatus::NotFound, "agent nobody not found"));
    assert_eq!(engine.decline(item, "nobody").unwrap_err().status, TpStatus::NotFound);
    assert_eq!(engine.presence("nobody", "online").unwrap_err().status, TpStatus::NotFound);
    for failed in [
        engine.accept(unknown_item, "ana").unwrap_err(),
        engine.decline(unknown_item, "ana").unwrap_err(),
        engine.complete(unknown_item).unwrap_err(),
    ] {
        assert_eq!(failed.status, TpStatus::NotFound);
        assert_eq!(failed.message, format!("work item {unknown_item} not found"));
    }
    // Malformed ids and names.
    let failed = engine.accept("not-a-uuid", "ana").unwrap_err();
    assert_eq!(failed.status, TpStatus::InvalidInput);
    assert!(failed.message.starts_with("invalid input in `item_id`: is not a work item id"), "{}", failed.message);
    let failed = engine.accept(item, "has space").unwrap_err();
    assert_eq!(failed.status, TpStatus::InvalidInput);
    assert!(failed.message.contains("agent"), "{}", failed.message);
    let failed = engine.presence("ana", "dancing").unwrap_err();
    assert_eq!(failed.status, TpStatus::InvalidInput);
    assert!(failed.message.contains("unknown presence status \"dancing\""), "{}", failed.message);

    // Agent JSON: not JSON, the wrong shape, a bad value, a queue that does not exist.
    for not_json in ["", "{\"id\": ", "agent"] {
        let text = cstring(not_json);
        // SAFETY: valid pointers.
        let failed = call(|out| unsafe { tp_agent_upsert(engine.0, text.as_ptr(), out) }).unwrap_err();
        assert_eq!(failed.status, TpStatus::InvalidJson, "{not_json:?}");
        assert!(failed.message.starts_with("`agent_json` is not JSON: "), "{}", failed.message);
    }
    for (shape, status, says) in [
        (json!({"presence": {"status": "online"}}), TpStatus::InvalidInput, "missing field `id`"),
        (json!({"id": "bo", "skills": ["billing"]}), TpStatus::InvalidInput, "invalid type"),
        (json!({"id": "bo", "presence": {"status": ""}}), TpStatus::InvalidInput, "status"),
        (json!({"id": "bo", "queues": [{"queue": "nope"}]}), TpStatus::NotFound, "queue nope not found"),
    ] {
        let failed = engine.upsert(&shape).unwrap_err();
        assert_eq!(failed.status, status, "{shape}: {}", failed.message);
        assert!(failed.message.contains(says), "{shape}: {}", failed.message);
    }
    assert_eq!(engine.presence("bo", "online").unwrap_err().status, TpStatus::NotFound, "bo was never added");

    // Invalid UTF-8.
    let bad = CString::new(b"an\xff".to_vec()).expect("no NUL");
    let item_c = cstring(item);
    // SAFETY (all calls below): every pointer is NULL or valid.
    let failed = call(|out| unsafe { tp_offer_accept(engine.0, item_c.as_ptr(), bad.as_ptr(), out) }).unwrap_err();
    assert_eq!(failed.status, TpStatus::InvalidUtf8);
    assert!(failed.message.contains("`agent_id`"), "{}", failed.message);
    let ana = cstring("ana");
    let failed = call(|out| unsafe { tp_agent_presence(engine.0, ana.as_ptr(), bad.as_ptr(), out) }).unwrap_err();
    assert!(failed.status == TpStatus::InvalidUtf8 && failed.message.contains("`status`"), "{failed:?}");

    // NULL pointers, each named.
    let good_agent = cstring(&agent("bo", "online", 1).to_string());
    let mut out: *mut c_char = std::ptr::without_provenance_mut(0x1);
    let expect = |status: TpStatus, message: &str| {
        assert_eq!(status, TpStatus::NullPointer, "{message}");
        assert_eq!(last_error(), message);
    };
    unsafe {
        expect(tp_agent_upsert(null_mut(), good_agent.as_ptr(), &mut out), "`engine` is NULL");
        expect(tp_agent_upsert(engine.0, null(), &mut out), "`agent_json` is NULL");
        expect(tp_agent_upsert(engine.0, good_agent.as_ptr(), null_mut()), "`out_events_json` is NULL");
        expect(tp_agent_presence(engine.0, null(), ana.as_ptr(), &mut out), "`agent_id` is NULL");
        expect(tp_agent_presence(engine.0, ana.as_ptr(), null(), &mut out), "`status` is NULL");
        expect(tp_offer_accept(engine.0, null(), ana.as_ptr(), &mut out), "`item_id` is NULL");
        expect(tp_offer_accept(engine.0, item_c.as_ptr(), null(), &mut out), "`agent_id` is NULL");
        expect(tp_offer_accept(engine.0, item_c.as_ptr(), ana.as_ptr(), null_mut()), "`out_events_json` is NULL");
        expect(tp_offer_decline(engine.0, null(), ana.as_ptr(), &mut out), "`item_id` is NULL");
        expect(tp_offer_decline(engine.0, item_c.as_ptr(), null(), &mut out), "`agent_id` is NULL");
        expect(tp_work_complete(engine.0, null(), &mut out), "`item_id` is NULL");
        expect(tp_work_complete(null_mut(), item_c.as_ptr(), &mut out), "`engine` is NULL");
        expect(tp_routing_tick(null_mut(), &mut out), "`engine` is NULL");
        expect(tp_routing_tick(engine.0, null_mut()), "`out_events_json` is NULL");
    }
    assert!(out.is_null(), "results stay NULL");

    // None of the failures changed anything: the offer is still Ana's to accept.
    assert_eq!(engine.event_count(), events, "no failed call changed anything");
    assert_eq!(event_words(&engine.accept(item, "ana").expect("accept")), ["assigned(ana)"]);
}

#[test]
fn agents_on_many_threads_race_to_accept_and_decline_and_each_offer_is_accepted_once() {
    const AGENTS: usize = 4;
    const ITEMS: usize = 30;
    // Every item is offered to all four agents at once; the first accept wins.
    let agents: Vec<Value> = (0..AGENTS).map(|a| agent(&format!("agent-{a}"), "online", 1000)).collect();
    let engine =
        TestEngine::routed(json!({"offer": {"offer": true, "parallel": AGENTS, "expires_after": 600}}), &agents);
    let items: Vec<String> = (0..ITEMS)
        .map(|n| {
            let outcome = engine.ingest(&chat(n)).expect("ingest");
            assert_eq!(outcome["routing"]["outcome"]["offered"].as_array().map(Vec::len), Some(AGENTS), "{outcome}");
            str_field(&outcome, "conversation").to_owned()
        })
        .collect();
    let items = Arc::new(items);
    let handle = engine.0.addr();
    let barrier = Arc::new(Barrier::new(AGENTS));
    let workers: Vec<_> = (0..AGENTS)
        .map(|a| {
            let (barrier, items) = (barrier.clone(), items.clone());
            std::thread::spawn(move || {
                // Not dropped here: the engine is freed once, by the main thread.
                let me = ManuallyDrop::new(TestEngine(std::ptr::without_provenance_mut(handle)));
                let name = format!("agent-{a}");
                barrier.wait();
                let mut won = Vec::new();
                for (k, item) in items.iter().enumerate() {
                    // One agent per item declines it; the other three race to accept it.
                    let declines = (k + a) % AGENTS == 0;
                    let result = if declines { me.decline(item, &name) } else { me.accept(item, &name) };
                    match result {
                        Ok(events) if !declines => {
                            // The offers to the others are withdrawn as the item is assigned.
                            let words = event_words(&events);
                            assert_eq!(words.last(), Some(&format!("assigned({name})")), "{events}");
                            assert!(
                                words[..words.len() - 1].iter().all(|w| w.starts_with("offer_rescinded(")),
                                "{events}"
                            );
                            won.push(item.clone());
                        }
                        Ok(events) => assert!(event_words(&events).contains(&format!("declined({name})")), "{events}"),
                        // Someone else accepted first: this agent's offer is gone.
                        Err(failed) => {
                            assert_eq!(failed.status, TpStatus::Refused, "{}", failed.message);
                            assert!(
                                failed.message == format!("refused: work item {item} has no open offer")
                                    || failed.message == format!("refused: work item {item} is not offered to {name}"),
                                "this thread's own error: {}",
                                failed.message
                            );
                        }
                    }
                    // Reads on other threads see a consistent handler: nobody yet, or one agent.
                    let handler = me.handler(item);
                    assert!(handler.is_null() || handler["kind"] == "agent", "{handler}");
                }
                (name, won)
            })
        })
        .collect();
    let mut winners = BTreeMap::new();
    for worker in workers {
        let (name, won) = worker.join().expect("no thread panicked");
        for item in won {
            assert!(winners.insert(item, name.clone()).is_none(), "an item was accepted twice");
        }
    }
    assert_eq!(winners.len(), ITEMS, "every item was accepted exactly once");
    for (item, name) in &winners {
        assert_eq!(engine.handler(item), handled_by(name), "the winner is the conversation's handler");
        assert_eq!(engine.complete(item).expect("complete")["events"][0]["agent"], name.as_str());
    }
}

// ---------------------------------------------------------------------------------------------
// Business hours (calendars, queue hours) and the idle rule through the C API.

// ---------------------------------------------------------------------------------------------
// Bots and humans: tp_handoff and tp_return_to_bot.

/// An engine whose plan sends work with the item attribute `topic: "billing"` (a bot's finding)
/// to the "billing" queue, where Ana (one chat at a time) works, and everything else to
/// "support", where the triage bot answers first. The survey bot serves no queue: it only gets
/// conversations returned to it. Bo is a human in no queue.
fn bot_desk() -> TestEngine {
    let bot = |id: &str, queues: Value| {
        json!({"id": id, "is_bot": true, "queues": queues, "capacity": {"channels": {"webchat": 5}},
               "presence": {"status": "online"}})
    };
    TestEngine::new(json!({
        "tenant": "acme",
        "routing": {
            "queues": [{"id": "support"}, {"id": "billing"}],
            "plan": {"rules": [
                {"name": "billing", "when": {"item_attr": {"key": "topic", "equals": "billing"}},
                 "steps": [{"pool": {"queues": ["billing"]}}]},
                {"name": "all", "steps": [{"pool": {"queues": ["support"]}}]},
            ]},
            "agents": [
                bot("bot.triage", json!([{"queue": "support"}])),
                bot("bot.survey", json!([])),
                {"id": "ana", "queues": [{"queue": "billing"}], "capacity": {"channels": {"webchat": 1}},
                 "presence": {"status": "online"}},
                {"id": "bo", "presence": {"status": "online"}},
            ],
        }
    }))
}

fn handled_by_bot(bot: &str) -> Value {
    json!({"kind": "bot", "id": bot})
}

/// The domain events of one conversation's routing changes, as `change` words, in order.
fn routing_changes(engine: &TestEngine, conversation: &str) -> Vec<String> {
    let page = engine.events(0, 1000).expect("events");
    page["events"]
        .as_array()
        .expect("array")
        .iter()
        .map(|e| &e["event"])
        .filter(|e| e["type"] == "routing" && e["conversation"] == conversation)
        .map(|e| str_field(&e["change"], "routing").to_owned())
        .collect()
}

#[test]
fn a_bot_hands_a_chat_to_a_human_with_its_findings_and_the_human_returns_it_to_a_bot() {
    let engine = bot_desk();
    // The triage bot answers the first chat.
    let first = engine.ingest(&chat(1)).expect("first");
    let item = str_field(&first, "conversation");
    assert_eq!(first["routing"]["outcome"], json!({"assigned": "bot.triage"}), "{first}");
    assert_eq!(engine.handler(item), handled_by_bot("bot.triage"));

    // It finds out the customer has a billing question and passes the chat on: the finding
    // sends it to the billing rule, and Ana takes it.
    let decision = engine.handoff(item, Some(r#"{"topic": "billing", "order": "1042"}"#), "pass").expect("handoff");
    assert_eq!(decision["item"], item);
    assert_eq!(decision["outcome"], json!({"assigned": "ana"}), "{decision}");
    assert_eq!(decision["rule"], "billing", "the findings reached the plan: {decision}");
    assert_eq!(event_words(&decision), ["handed_off", "step_entered", "assigned(ana)"], "{decision}");
    assert_eq!(
        decision["events"][0],
        json!({"event": "handed_off", "item": item, "bot": "bot.triage", "mode": "pass"})
    );
    assert_eq!(decision["next_timer"], Value::Null, "{decision}");
    assert_eq!(engine.handler(item), handled_by("ana"), "the decision's events were applied");

    // A second chat: the triage bot answers it too, finds a billing question, and hands it off
    // while Ana is busy with the first: it waits in the billing queue.
    let second = engine.ingest(&chat(2)).expect("second");
    let waiting = str_field(&second, "conversation");
    assert_eq!(second["routing"]["outcome"], json!({"assigned": "bot.triage"}), "{second}");
    let decision = engine.handoff(waiting, Some(r#"{"topic": "billing"}"#), "pass").expect("handoff");
    assert_eq!(decision["outcome"], json!({"queued": "billing"}), "{decision}");
    assert_eq!(engine.handler(waiting), json!({"kind": "queue", "id": "billing"}));

    // Ana solved the first: she returns it to the survey bot, with her notes. The bot takes it
    // at once, and Ana's freed capacity takes the waiting chat.
    let returned = engine.return_to_bot(item, "bot.survey", Some(r#"{"resolved": true}"#)).expect("return");
    assert_eq!(event_words(&returned), ["returned_to_bot(ana)", "assigned(bot.survey)", "assigned(ana)"], "{returned}");
    assert_eq!(
        returned["events"][0],
        json!({"event": "returned_to_bot", "item": item, "agent": "ana", "bot": "bot.survey"})
    );
    assert_eq!(returned["events"][1]["item"], item);
    assert_eq!(returned["events"][2]["item"], waiting);
    assert_eq!(returned["next_timer"], Value::Null, "{returned}");
    assert_eq!(engine.handler(item), handled_by_bot("bot.survey"), "the conversation's handler is the bot");
    assert_eq!(engine.handler(waiting), handled_by("ana"), "Ana took the waiting chat");

    // The survey done, the bot hands the chat to humans again (NULL findings: none). The
    // findings of the first handoff stay with it (billing again), and Ana is busy: it waits.
    let again = engine.handoff(item, None, "pass").expect("handoff again");
    assert_eq!((&again["outcome"], &again["rule"]), (&json!({"queued": "billing"}), &json!("billing")), "{again}");
    assert_eq!(again["events"][0]["bot"], "bot.survey");
    assert_eq!(engine.handler(item), json!({"kind": "queue", "id": "billing"}));

    // The event log has each step of the conversation's routing, in order.
    assert_eq!(
        routing_changes(&engine, item),
        ["assigned", "handed_off", "assigned", "returned_to_bot", "assigned", "handed_off", "queued"]
    );
}

#[test]
fn an_offer_handoff_keeps_the_bot_on_the_chat_until_a_human_takes_it() {
    let engine = bot_desk();
    // Ana is busy with a billing chat.
    let busy = engine.ingest(&chat(1)).expect("first");
    engine.handoff(str_field(&busy, "conversation"), Some(r#"{"topic": "billing"}"#), "pass").expect("to ana");
    // The triage bot offers the next billing chat to humans: nobody is free, so it waits in the
    // billing queue while the bot keeps it (and its capacity).
    let next = engine.ingest(&chat(2)).expect("second");
    let item = str_field(&next, "conversation");
    let decision = engine.handoff(item, Some(r#"{"topic": "billing"}"#), "offer").expect("offer handoff");
    assert_eq!(decision["outcome"], json!({"queued": "billing"}), "{decision}");
    assert_eq!(
        decision["events"][0],
        json!({"event": "handed_off", "item": item, "bot": "bot.triage", "mode": "offer"})
    );
    // The bot goes on serving the customer while the chat waits for a human: it stays the
    // conversation's handler.
    assert_eq!(engine.handler(item), handled_by_bot("bot.triage"));
    // The bot still holds it: down to one chat at a time, it has no room for a new one.
    let one_chat = json!({"id": "bot.triage", "is_bot": true, "queues": [{"queue": "support"}],
                          "capacity": {"channels": {"webchat": 1}}, "presence": {"status": "online"}});
    engine.upsert(&one_chat).expect("upsert");
    let third = engine.ingest(&chat(3)).expect("third");
    assert_eq!(third["routing"]["outcome"], json!({"queued": "support"}), "{third}");
    // Ana finishes her chat and takes this one: a human has it now, and the bot lets go of it
    // (it takes the waiting chat).
    let done = engine.complete(str_field(&busy, "conversation")).expect("complete");
    assert_eq!(event_words(&done), ["completed(ana)", "assigned(ana)", "assigned(bot.triage)"], "{done}");
    assert_eq!(done["events"][1]["item"], item);
    assert_eq!(done["events"][2]["item"], third["conversation"]);
    assert_eq!(engine.handler(item), handled_by("ana"));
    assert_eq!(routing_changes(&engine, item), ["assigned", "handed_off", "queued", "assigned"]);
}

#[test]
fn handoff_and_return_to_bot_refuse_bad_arguments_with_typed_codes_and_change_nothing() {
    let engine = bot_desk();
    let with_bot = engine.ingest(&chat(1)).expect("first");
    let item = str_field(&with_bot, "conversation").to_owned();
    let item = item.as_str();
    assert_eq!(engine.handler(item), handled_by_bot("bot.triage"));
    let unknown_item = "01a23328-a7c7-7000-8002-2c1c4d22cc6e";
    let events = engine.event_count();
    let unchanged = |handler: Value| {
        assert_eq!(engine.event_count(), events, "no failed call changed anything");
        assert_eq!(engine.handler(item), handler);
    };

    // tp_handoff. Findings that are not JSON, JSON that is not an object, too many findings.
    for not_json in ["", "{", "{\"topic\": billing}", "topic=billing"] {
        let failed = engine.handoff(item, Some(not_json), "pass").unwrap_err();
        assert_eq!(failed.status, TpStatus::InvalidJson, "{not_json:?}: {}", failed.message);
        assert!(failed.message.starts_with("`findings_json` is not JSON: "), "{}", failed.message);
    }
    for (not_object, kind) in [
        ("[\"billing\"]", "an array"),
        ("\"billing\"", "a string"),
        ("42", "a number"),
        ("true", "a boolean"),
        ("null", "null"),
    ] {
        let failed = engine.handoff(item, Some(not_object), "pass").unwrap_err();
        assert_eq!(failed.status, TpStatus::InvalidInput, "{not_object}: {}", failed.message);
        assert_eq!(
            failed.message,
            format!(
                "invalid input in `findings_json`: must be a JSON object of attributes (or NULL for none), not {kind}"
            )
        );
    }
    let too_many: serde_json::Map<String, Value> = (0..257).map(|n| (format!("k{n}"), json!(n))).collect();
    let failed = engine.handoff(item, Some(&Value::Object(too_many).to_string()), "pass").unwrap_err();
    assert_eq!(failed.status, TpStatus::InvalidInput, "{}", failed.message);
    assert!(failed.message.contains("at most 256"), "{}", failed.message);
    // Modes other than "pass" and "offer".
    for mode in ["", "Pass", "transfer", " pass"] {
        let failed = engine.handoff(item, None, mode).unwrap_err();
        assert_eq!(failed.status, TpStatus::InvalidInput, "{mode:?}: {}", failed.message);
        assert!(failed.message.starts_with("invalid input in `mode`: "), "{}", failed.message);
        assert!(failed.message.contains("\"pass\"") && failed.message.contains("\"offer\""), "{}", failed.message);
    }
    // Unknown and malformed items, an item that is not with a bot.
    let failed = engine.handoff(unknown_item, None, "pass").unwrap_err();
    assert_eq!((failed.status, failed.message), (TpStatus::NotFound, format!("work item {unknown_item} not found")));
    let failed = engine.handoff("not-a-uuid", None, "pass").unwrap_err();
    assert_eq!(failed.status, TpStatus::InvalidInput);
    assert!(failed.message.starts_with("invalid input in `item_id`"), "{}", failed.message);
    // Invalid UTF-8 and NULL pointers, each named.
    let (item_c, pass, bad) =
        (cstring(item), cstring("pass"), CString::new(b"{\"a\xff\": 1}".to_vec()).expect("no NUL"));
    // SAFETY (all calls below): every pointer is NULL or valid.
    let failed = call(|out| unsafe { tp_handoff(engine.0, item_c.as_ptr(), bad.as_ptr(), pass.as_ptr(), out) });
    let failed = failed.unwrap_err();
    assert!(failed.status == TpStatus::InvalidUtf8 && failed.message.contains("`findings_json`"), "{failed:?}");
    let mut out: *mut c_char = std::ptr::without_provenance_mut(0x1);
    let expect = |status: TpStatus, message: &str| {
        assert_eq!(status, TpStatus::NullPointer, "{message}");
        assert_eq!(last_error(), message);
    };
    unsafe {
        expect(tp_handoff(null_mut(), item_c.as_ptr(), null(), pass.as_ptr(), &mut out), "`engine` is NULL");
        expect(tp_handoff(engine.0, null(), null(), pass.as_ptr(), &mut out), "`item_id` is NULL");
        expect(tp_handoff(engine.0, item_c.as_ptr(), null(), null(), &mut out), "`mode` is NULL");
        expect(tp_handoff(engine.0, item_c.as_ptr(), null(), pass.as_ptr(), null_mut()), "`out_decision_json` is NULL");
    }
    assert!(out.is_null(), "results stay NULL");
    // tp_return_to_bot of an item that is with a bot already.
    let failed = engine.return_to_bot(item, "bot.survey", None).unwrap_err();
    assert_eq!(failed.status, TpStatus::Refused, "{}", failed.message);
    unchanged(handled_by_bot("bot.triage"));

    // The bot hands it to Ana (NULL findings are none; a finding the plan reads sends it to
    // her); now a human has it.
    let decision = engine.handoff(item, Some(r#"{"topic": "billing"}"#), "pass").expect("handoff");
    assert_eq!(decision["outcome"], json!({"assigned": "ana"}), "{decision}");
    let events = engine.event_count();
    let unchanged = |handler: Value| {
        assert_eq!(engine.event_count(), events, "no failed call changed anything");
        assert_eq!(engine.handler(item), handler);
    };
    // A human's item cannot be handed off (that is for bots).
    let failed = engine.handoff(item, None, "pass").unwrap_err();
    assert_eq!(failed.status, TpStatus::Refused, "{}", failed.message);
    assert!(failed.message.contains("assigned to a human"), "{}", failed.message);

    // tp_return_to_bot. A human named as the bot; unknown agents and items.
    for human in ["bo", "ana"] {
        let failed = engine.return_to_bot(item, human, None).unwrap_err();
        assert_eq!(failed.status, TpStatus::InvalidInput, "{human}: {}", failed.message);
        assert!(failed.message.contains(&format!("agent {human} is a human, not a bot")), "{}", failed.message);
    }
    let failed = engine.return_to_bot(item, "bot.nobody", None).unwrap_err();
    assert_eq!((failed.status, failed.message.as_str()), (TpStatus::NotFound, "agent bot.nobody not found"));
    let failed = engine.return_to_bot(unknown_item, "bot.survey", None).unwrap_err();
    assert_eq!((failed.status, failed.message), (TpStatus::NotFound, format!("work item {unknown_item} not found")));
    let failed = engine.return_to_bot(item, "has space", None).unwrap_err();
    assert_eq!(failed.status, TpStatus::InvalidInput, "{}", failed.message);
    // Findings as for tp_handoff.
    let failed = engine.return_to_bot(item, "bot.survey", Some("{\"resolved\": ")).unwrap_err();
    assert_eq!(failed.status, TpStatus::InvalidJson, "{}", failed.message);
    assert!(failed.message.starts_with("`findings_json` is not JSON: "), "{}", failed.message);
    let failed = engine.return_to_bot(item, "bot.survey", Some("[true]")).unwrap_err();
    assert_eq!(failed.status, TpStatus::InvalidInput, "{}", failed.message);
    assert!(
        failed.message.starts_with("invalid input in `findings_json`: must be a JSON object"),
        "{}",
        failed.message
    );
    // NULL pointers, each named.
    let survey = cstring("bot.survey");
    unsafe {
        expect(tp_return_to_bot(null_mut(), item_c.as_ptr(), survey.as_ptr(), null(), &mut out), "`engine` is NULL");
        expect(tp_return_to_bot(engine.0, null(), survey.as_ptr(), null(), &mut out), "`item_id` is NULL");
        expect(tp_return_to_bot(engine.0, item_c.as_ptr(), null(), null(), &mut out), "`bot_id` is NULL");
        expect(
            tp_return_to_bot(engine.0, item_c.as_ptr(), survey.as_ptr(), null(), null_mut()),
            "`out_events_json` is NULL",
        );
    }
    assert!(out.is_null(), "results stay NULL");
    // A bot that cannot take it now (offline) refuses; its presence change is the only change.
    let offline = engine.presence("bot.survey", "offline").expect("offline");
    assert_eq!(event_words(&offline), ["presence_changed(bot.survey)"]);
    let failed = engine.return_to_bot(item, "bot.survey", None).unwrap_err();
    assert_eq!(failed.status, TpStatus::Refused, "{}", failed.message);
    assert!(failed.message.contains("bot bot.survey cannot take work item"), "{}", failed.message);
    unchanged(handled_by("ana"));

    // None of the failures changed anything: Ana still has it, and returns it to the bot back
    // online.
    engine.presence("bot.survey", "online").expect("online");
    let returned = engine.return_to_bot(item, "bot.survey", None).expect("return");
    assert_eq!(event_words(&returned), ["returned_to_bot(ana)", "assigned(bot.survey)"], "{returned}");
    assert_eq!(engine.handler(item), handled_by_bot("bot.survey"));
}

/// The plan of `TestEngine::routed`: everything to "support".
fn support_plan() -> Value {
    json!({"rules": [{"name": "all", "steps": [{"pool": {"queues": ["support"]}}]}]})
}

/// A schedule "office" that is open from an hour ago until `closes` (an open override between
/// two instants, no weekly hours), and closed after.
fn office_until(closes: DateTime<Utc>) -> Value {
    let opened = closes - chrono::TimeDelta::hours(1);
    json!({"name": "office", "time_zone": "UTC", "overrides": [{
        "name": "late opening", "state": "open",
        "from": opened.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "to": closes.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }]})
}

/// A schedule "office" open all week, round the clock.
fn office_always_open() -> Value {
    json!({"name": "office", "time_zone": "UTC", "weekly": [{"days": ["Mon-Sun"], "start": "00:00", "end": "24:00"}]})
}

fn sleep_until(instant: DateTime<Utc>) {
    if let Ok(left) = (instant - Utc::now()).to_std() {
        std::thread::sleep(left);
    }
}

fn timestamp(value: &Value) -> DateTime<Utc> {
    value.as_str().and_then(|t| t.parse().ok()).unwrap_or_else(|| panic!("not a timestamp: {value}"))
}

#[test]
fn an_after_hours_action_fires_through_the_tick_and_the_conversation_leaves_routing() {
    // The office closes within two seconds; nobody is available, so a chat waits in support.
    let closes = DateTime::from_timestamp(Utc::now().timestamp() + 2, 0).expect("a valid instant");
    let engine = TestEngine::new(json!({"tenant": "acme", "routing": {
        "calendars": [office_until(closes)],
        "queues": [{"id": "support", "hours": {"schedule": "office", "action": "callback"}}],
        "plan": support_plan(),
        "agents": [agent("ana", "away", 1)],
    }}));
    let outcome = engine.ingest(&chat(1)).expect("ingest");
    let item = str_field(&outcome, "conversation");
    assert_eq!(outcome["routing"]["outcome"], json!({"queued": "support"}), "open: it waits ({outcome})");
    assert_eq!(engine.handler(item), json!({"kind": "queue", "id": "support"}));
    // Before the closing a tick fires nothing, and the closing is the next timer.
    let early = engine.tick().expect("tick");
    assert_eq!(early["events"], json!([]), "{early}");
    assert_eq!(timestamp(&early["next_timer"]), closes, "the queue's closing is the next timer: {early}");

    sleep_until(closes + chrono::TimeDelta::milliseconds(100));
    let fired = engine.tick().expect("tick");
    assert_eq!(event_words(&fired), ["timed_out"], "{fired}");
    let timed_out = &fired["events"][0];
    assert_eq!((timed_out["item"].as_str(), timed_out["action"].as_str()), (Some(item), Some("callback")), "{fired}");
    assert_eq!(engine.handler(item), Value::Null, "the tick's events were applied: the work left routing");
    assert_eq!(engine.tick().expect("tick")["events"], json!([]), "what fired does not fire again");

    // Closed: a new chat that no agent takes gets the action at once, in the ingest's outcome.
    let late = engine.ingest(&chat(2)).expect("ingest");
    assert_eq!(late["routing"]["outcome"], json!({"timed_out": "callback"}), "{late}");
    assert_eq!(engine.handler(str_field(&late, "conversation")), Value::Null);
}

/// The configuration's queues are `Queue`s in their serde form, so "hours" passes through
/// from JSON; the schedule it names must be in the calendars, which come first.
#[test]
fn queue_hours_in_the_configuration_need_the_calendars_key_and_name_a_schedule_it_holds() {
    let hours = json!({"id": "support", "hours": {"schedule": "office", "action": "voicemail"}});
    let refused = [
        (json!({"queues": [hours]}), TpStatus::NotFound, "schedule \"office\" not found"),
        (json!({"calendars": [], "queues": [hours]}), TpStatus::NotFound, "schedule \"office\" not found"),
        (
            json!({"calendars": [office_always_open()], "agents": [{"id": "ana", "schedule": "night"}]}),
            TpStatus::NotFound,
            "schedule \"night\" not found",
        ),
        (json!({"calendars": {"name": "office"}}), TpStatus::InvalidInput, "invalid type"),
        (
            json!({"calendars": [{"name": "office", "time_zone": "UTC", "weekly": [{"days": ["Mon"], "start": "09:00", "end": "25:00"}]}]}),
            TpStatus::InvalidInput,
            "weekly[0].end",
        ),
        (json!({"idle": {"after": 60, "status": "online"}}), TpStatus::InvalidInput, "takes new work"),
        (json!({"idle": {"after": 60}}), TpStatus::InvalidInput, "missing field `status`"),
    ];
    for (routing, expected, says) in refused {
        let config = cstring(&json!({"tenant": "acme", "routing": routing}).to_string());
        let mut handle: *mut TpEngine = std::ptr::without_provenance_mut(0x1);
        // SAFETY: valid pointers.
        let status = unsafe { tp_engine_new(config.as_ptr(), &mut handle) };
        assert_eq!(status, expected, "{routing}: {}", last_error());
        assert!(last_error().contains(says), "{routing}: {}", last_error());
        assert!(handle.is_null(), "no engine for a bad routing config");
    }

    // With the calendars, the hours apply: the office never opens, nobody takes the chat, so it
    // gets the queue's after-hours action at once.
    let engine = TestEngine::new(json!({"tenant": "acme", "routing": {
        "calendars": [{"name": "office", "time_zone": "UTC"}],
        "queues": [hours], "plan": support_plan(), "agents": [agent("ana", "away", 1)],
    }}));
    let outcome = engine.ingest(&chat(1)).expect("ingest");
    assert_eq!(outcome["routing"]["outcome"], json!({"timed_out": "voicemail"}), "{outcome}");
}

#[test]
fn calendars_and_queue_hours_set_at_run_time_apply_at_once() {
    let engine = TestEngine::routed(json!({}), &[agent("ana", "away", 1)]);
    let waiting = engine.ingest(&chat(1)).expect("ingest");
    let item = str_field(&waiting, "conversation");
    assert_eq!(waiting["routing"]["outcome"], json!({"queued": "support"}));

    // Hours naming a schedule the calendars do not hold are refused, and change nothing.
    let hours = json!({"id": "support", "hours": {"schedule": "office"}});
    let failed = engine.queue(&hours).unwrap_err();
    assert_eq!((failed.status, failed.message.as_str()), (TpStatus::NotFound, "schedule \"office\" not found"));

    // Open round the clock: the hours change nothing for the waiting chat.
    assert_eq!(engine.calendars(&json!([office_always_open()])).expect("calendars")["events"], json!([]));
    assert_eq!(engine.queue(&hours).expect("queue")["events"], json!([]));
    assert_eq!(engine.handler(item), json!({"kind": "queue", "id": "support"}));

    // The office closes for good: the chat waiting in the queue gets the after-hours action (by
    // default "close") in this call's own result, and leaves routing.
    let closed = engine.calendars(&json!([{"name": "office", "time_zone": "UTC"}])).expect("calendars");
    assert_eq!(event_words(&closed), ["timed_out"], "{closed}");
    assert_eq!(
        (closed["events"][0]["item"].as_str(), closed["events"][0]["action"].as_str()),
        (Some(item), Some("close"))
    );
    assert_eq!(engine.handler(item), Value::Null);

    // A queue upserted with closed hours acts at once on the work waiting in it.
    let second = engine.ingest(&chat(2)).expect("ingest");
    assert_eq!(second["routing"]["outcome"], json!({"timed_out": "close"}), "closed now: {second}");
    engine.calendars(&json!([office_always_open()])).expect("open again");
    let third = engine.ingest(&chat(3)).expect("ingest");
    assert_eq!(third["routing"]["outcome"], json!({"queued": "support"}));
    let closed =
        engine.queue(&json!({"id": "support", "hours": {"schedule": "office", "action": "callback"}})).expect("queue");
    assert_eq!(closed["events"], json!([]), "still open");
    engine.calendars(&json!([])).expect("no calendars");
    // Without the schedule the queue counts as closed: the calendars call fired the check.
    assert_eq!(engine.handler(str_field(&third, "conversation")), Value::Null);
}

#[test]
fn calendars_queues_and_the_idle_rule_refuse_bad_arguments_with_typed_codes_and_change_nothing() {
    let engine = TestEngine::routed(json!({}), &[agent("ana", "online", 1)]);

    // Text that is not JSON, for each JSON argument.
    type JsonCall = unsafe extern "C" fn(*mut TpEngine, *const c_char, *mut *mut c_char) -> TpStatus;
    let json_calls: [(JsonCall, &str); 3] =
        [(tp_calendars_set, "calendars_json"), (tp_queue_upsert, "queue_json"), (tp_idle_policy_set, "idle_json")];
    for (function, argument) in json_calls {
        for not_json in ["", "[", "{\"name\": ", "office", "nul"] {
            let text = cstring(not_json);
            // SAFETY: valid pointers.
            let failed = call(|out| unsafe { function(engine.0, text.as_ptr(), out) }).unwrap_err();
            assert_eq!(failed.status, TpStatus::InvalidJson, "{argument} {not_json:?}: {}", failed.message);
            assert!(failed.message.starts_with(&format!("`{argument}` is not JSON: ")), "{}", failed.message);
        }
    }

    // JSON of the wrong shape, values out of range, names of things that are not there.
    let calendars = [
        (json!(office_always_open()), TpStatus::InvalidInput, "invalid type"),
        (
            json!([{"name": "office", "time_zone": "UTC", "weekly": [{"days": ["Mon"], "start": "09:00", "end": "25:00"}]}]),
            TpStatus::InvalidInput,
            "weekly[0].end",
        ),
        (
            json!([{"name": "office", "time_zone": "UTC", "weekly": [{"days": ["Someday"], "start": "09:00", "end": "17:00"}]}]),
            TpStatus::InvalidInput,
            "weekly[0].days[0]",
        ),
        (json!([{"name": "office", "time_zone": "Mars/Olympus_Mons"}]), TpStatus::InvalidInput, "time_zone"),
        (json!([{"name": "", "time_zone": "UTC"}]), TpStatus::InvalidInput, "name"),
        (
            json!([{"name": "office", "time_zone": "UTC"}, {"name": "office", "time_zone": "UTC"}]),
            TpStatus::InvalidInput,
            "two schedules are named \"office\"",
        ),
        (
            json!([{"name": "office", "time_zone": "UTC", "colour": "red"}]),
            TpStatus::InvalidInput,
            "unknown field `colour`",
        ),
        (
            json!([{"name": "office", "time_zone": "UTC", "overrides": [{"from": "2026-13-01", "state": "closed"}]}]),
            TpStatus::InvalidInput,
            "overrides[0].from",
        ),
    ];
    for (shape, status, says) in calendars {
        let failed = engine.calendars(&shape).unwrap_err();
        assert_eq!(failed.status, status, "{shape}: {}", failed.message);
        assert!(failed.message.contains(says), "{shape}: {}", failed.message);
    }
    let queues = [
        (json!({"hours": {"schedule": "office"}}), TpStatus::InvalidInput, "missing field `id`"),
        (
            json!({"id": "support", "hours": {"schedule": "office", "action": "dance"}}),
            TpStatus::InvalidInput,
            "unknown variant `dance`",
        ),
        (json!({"id": "support", "hours": {"action": "close"}}), TpStatus::InvalidInput, "missing field `schedule`"),
        (json!({"id": "support", "hours": {"schedule": "nope"}}), TpStatus::NotFound, "schedule \"nope\" not found"),
        (
            json!({"id": "support", "hours": {"schedule": "office", "action": {"overflow": "nowhere"}}}),
            TpStatus::NotFound,
            "queue nowhere not found",
        ),
        (json!({"id": "support", "offer": {"offer": true, "parallel": 0}}), TpStatus::InvalidInput, "parallel"),
    ];
    for (shape, status, says) in queues {
        let failed = engine.queue(&shape).unwrap_err();
        assert_eq!(failed.status, status, "{shape}: {}", failed.message);
        assert!(failed.message.contains(says), "{shape}: {}", failed.message);
    }
    let idle_rules = [
        (json!({"after": 0, "status": "away"}), "idle.after"),
        (json!({"after": -1, "status": "away"}), "non-negative"),
        (json!({"after": 60, "status": "online"}), "takes new work"),
        (json!({"after": 60, "status": "offline"}), "is offline"),
        (json!({"after": 60, "status": "dancing"}), "unknown presence status \"dancing\""),
        (json!({"after": 60}), "missing field `status`"),
        (json!({"after": 60, "status": "away", "colour": "red"}), "unknown field `colour`"),
        (json!("away"), "invalid type"),
    ];
    for (shape, says) in idle_rules {
        let failed = engine.idle(&shape).unwrap_err();
        assert_eq!(failed.status, TpStatus::InvalidInput, "{shape}: {}", failed.message);
        assert!(failed.message.contains(says), "{shape}: {}", failed.message);
    }
    let failed = engine.activity("nobody").unwrap_err();
    assert_eq!((failed.status, failed.message.as_str()), (TpStatus::NotFound, "agent nobody not found"));
    assert_eq!(engine.activity("has space").unwrap_err().status, TpStatus::InvalidInput);

    // Invalid UTF-8, each argument named.
    let bad = CString::new(b"[\"\xff\"]".to_vec()).expect("no NUL");
    for (function, argument) in json_calls {
        // SAFETY: valid pointers.
        let failed = call(|out| unsafe { function(engine.0, bad.as_ptr(), out) }).unwrap_err();
        assert_eq!(failed.status, TpStatus::InvalidUtf8, "{argument}");
        assert_eq!(failed.message, format!("`{argument}` is not valid UTF-8 (invalid byte at offset 2)"));
    }
    // SAFETY: valid pointers.
    let failed = call(|out| unsafe { tp_agent_activity(engine.0, bad.as_ptr(), out) }).unwrap_err();
    assert!(failed.status == TpStatus::InvalidUtf8 && failed.message.contains("`agent_id`"), "{failed:?}");

    // NULL pointers, each named; the result stays NULL.
    let (empty, ana) = (cstring("[]"), cstring("ana"));
    let mut out: *mut c_char = std::ptr::without_provenance_mut(0x1);
    let expect = |status: TpStatus, message: &str| {
        assert_eq!(status, TpStatus::NullPointer, "{message}");
        assert_eq!(last_error(), message);
    };
    // SAFETY (all calls below): every pointer is NULL or valid.
    unsafe {
        for (function, argument) in json_calls {
            expect(function(null_mut(), empty.as_ptr(), &mut out), "`engine` is NULL");
            expect(function(engine.0, null(), &mut out), &format!("`{argument}` is NULL"));
            expect(function(engine.0, empty.as_ptr(), null_mut()), "`out_events_json` is NULL");
        }
        expect(tp_agent_activity(null_mut(), ana.as_ptr(), &mut out), "`engine` is NULL");
        expect(tp_agent_activity(engine.0, null(), &mut out), "`agent_id` is NULL");
        expect(tp_agent_activity(engine.0, ana.as_ptr(), null_mut()), "`out_events_json` is NULL");
    }
    assert!(out.is_null(), "results stay NULL");

    // Nothing changed: no calendars (hours naming "office" are still refused), no idle rule (no
    // timer), and the support queue still assigns directly.
    assert_eq!(
        engine.queue(&json!({"id": "support", "hours": {"schedule": "office"}})).unwrap_err().status,
        TpStatus::NotFound
    );
    assert_eq!(engine.tick().expect("tick"), json!({"events": [], "next_timer": null}));
    let outcome = engine.ingest(&chat(1)).expect("ingest");
    assert_eq!(outcome["routing"]["outcome"], json!({"assigned": "ana"}), "{outcome}");
}

#[test]
fn the_idle_rule_puts_a_silent_agent_away_through_the_tick() {
    // An idle rule of 50 ms from the configuration: after a short sleep Ana is idle.
    let engine = TestEngine::new(json!({"tenant": "acme", "routing": {
        "queues": [{"id": "support"}], "plan": support_plan(),
        "idle": {"after": 0.05, "status": "away"},
        "agents": [agent("ana", "online", 1)],
    }}));
    std::thread::sleep(std::time::Duration::from_millis(120));
    let fired = engine.tick().expect("tick");
    assert_eq!(fired["events"], json!([{"event": "presence_changed", "agent": "ana", "status": "away"}]), "{fired}");
    assert_eq!(engine.tick().expect("tick")["events"], json!([]), "what fired does not fire again");

    // Away: new work waits for her; her next activity does not set her back.
    let outcome = engine.ingest(&chat(1)).expect("ingest");
    assert_eq!(outcome["routing"]["outcome"], json!({"queued": "support"}), "{outcome}");
    assert_eq!(engine.activity("ana").expect("activity")["events"], json!([]));
    assert_eq!(engine.tick().expect("tick")["events"], json!([]));
    // She (or the host) does; then she takes the waiting chat.
    let back = engine.presence("ana", "online").expect("presence");
    assert_eq!(event_words(&back), ["presence_changed(ana)", "assigned(ana)"], "{back}");
}

#[test]
fn reported_activity_keeps_an_agent_from_going_idle_and_the_rule_can_be_removed_and_set_again() {
    let engine = TestEngine::routed(json!({}), &[agent("ana", "online", 1), agent("bo", "online", 1)]);
    // Both were last active no later than now. Every step below has a second or more of slack,
    // so a slow or busy machine does not change what the ticks find.
    let created = std::time::Instant::now();
    let at = |seconds: f64| {
        std::thread::sleep((created + std::time::Duration::from_secs_f64(seconds)) - std::time::Instant::now())
    };
    // Idle after three seconds without activity.
    let set = engine.idle(&json!({"after": 3, "status": "away"})).expect("idle");
    assert_eq!(set["events"], json!([]), "nobody idle yet: {set}");
    assert!(set["next_timer"].is_string(), "the idle checks are timers: {set}");

    // Ana is active at 1.5 s; at 3.2 s Bo (last active at 0) is idle, Ana (until 4.5 s) is not.
    at(1.5);
    assert_eq!(engine.activity("ana").expect("activity")["events"], json!([]));
    at(3.2);
    let fired = engine.tick().expect("tick");
    assert_eq!(event_words(&fired), ["presence_changed(bo)"], "{fired}");
    assert_eq!(fired["events"][0]["status"], "away");

    // Without the rule Ana never goes idle.
    assert_eq!(engine.idle(&Value::Null).expect("remove")["events"], json!([]));
    at(3.4);
    assert_eq!(engine.tick().expect("tick")["events"], json!([]), "no rule, no idle agent");

    // Idle time counts from the last activity, also before the rule: installed again, it finds
    // Ana idle (1.9 s since her activity) at once, in its own result.
    let again = engine.idle(&json!({"after": 1, "status": "busy"})).expect("idle");
    assert_eq!(again["events"], json!([{"event": "presence_changed", "agent": "ana", "status": "busy"}]), "{again}");
}

// ---------------------------------------------------------------------------------------------
// Stale frees, racing routing calls and the Python binding's argument checks.

/// The README: "a string freed twice, or not ours, is reported and left alone". The allocator
/// hands a freed block's address to later allocations, so a table of live addresses alone would
/// take a stale second free for a free of the newer result there and free that live string. A
/// freed string's memory is kept for the next 1,024 frees: no result reuses it meanwhile, and
/// a second free of it is refused, whatever was handed out since.
#[test]
fn a_string_freed_twice_is_refused_and_never_frees_a_newer_result() {
    let engine = TestEngine::acme();
    let (mut freed, mut live) = (Vec::new(), Vec::new());
    for n in 0..400 {
        let inbound = cstring(&sms(n % 7, &format!("message {n}")).to_string());
        let mut out = null_mut();
        // SAFETY: valid pointers.
        assert_eq!(unsafe { tp_ingest(engine.0, inbound.as_ptr(), &mut out) }, TpStatus::Ok);
        assert!(!freed.contains(&out), "result {n} sits at the address of a string freed before");
        if n % 2 == 0 {
            // SAFETY: a live string of ours, freed once.
            assert_eq!(unsafe { tp_string_free(out) }, TpStatus::Ok);
            freed.push(out);
        } else {
            live.push(out);
        }
    }
    for stale in freed {
        // SAFETY: the library recognises a string it freed lately and leaves it alone.
        assert_eq!(unsafe { tp_string_free(stale) }, TpStatus::InvalidHandle);
        assert!(last_error().contains("already freed"), "{}", last_error());
    }
    for string in live {
        // SAFETY: live strings of ours, freed once: the stale frees above touched none of them.
        assert_eq!(unsafe { tp_string_free(string) }, TpStatus::Ok);
    }
}

/// Each routing call runs the router, then writes the events to the conversations in a second
/// step that is not ordered with other threads' calls. An agent's accept racing the completion
/// of that same work (the host's "done" button, on another thread) can write `assigned` after
/// `completed`: the router no longer has the item, but the conversation keeps the agent as its
/// handler forever (README: "completed work has none").
#[test]
fn accept_racing_complete_on_another_thread_leaves_no_handler_on_completed_work() {
    const ROUNDS: usize = 1000;
    let mut stale = Vec::new();
    for round in 0..ROUNDS {
        let engine =
            TestEngine::routed(json!({"offer": {"offer": true, "expires_after": 600}}), &[agent("ana", "online", 1)]);
        let outcome = engine.ingest(&chat(round)).expect("ingest");
        let item = str_field(&outcome, "conversation").to_owned();
        let handle = engine.0.addr();
        let barrier = Arc::new(Barrier::new(2));
        let completer = {
            let (barrier, item) = (barrier.clone(), item.clone());
            std::thread::spawn(move || {
                let me = ManuallyDrop::new(TestEngine(std::ptr::without_provenance_mut(handle)));
                barrier.wait();
                // Completes the work as soon as the router has it assigned.
                loop {
                    match me.complete(&item) {
                        Ok(_) => break,
                        Err(failed) => assert_eq!(failed.status, TpStatus::Refused, "{}", failed.message),
                    }
                }
            })
        };
        barrier.wait();
        engine.accept(&item, "ana").expect("accept");
        completer.join().expect("no thread panicked");
        assert_eq!(engine.complete(&item).unwrap_err().status, TpStatus::NotFound, "the work is done");
        let handler = engine.handler(&item);
        if !handler.is_null() {
            stale.push((round, handler));
        }
    }
    assert!(
        stale.is_empty(),
        "{} of {ROUNDS} completed conversations still have a handler: {:?}",
        stale.len(),
        &stale[..stale.len().min(3)]
    );
}

/// A customer writes while the only agent goes online and away again and again on another
/// thread. Each routing call's events (the ingest's `queued`, a presence call's `assigned`) must
/// be written in the order the router produced them: written the other way round, the
/// conversation would wait in the queue while the router has it with Ana.
#[test]
fn ingest_racing_an_agent_coming_online_leaves_the_handler_the_router_holds() {
    const ROUNDS: usize = 300;
    let mut stale = Vec::new();
    for round in 0..ROUNDS {
        let engine = TestEngine::routed(json!({}), &[agent("ana", "away", 1)]);
        let handle = engine.0.addr();
        let barrier = Arc::new(Barrier::new(2));
        let ingested = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let presence = {
            let (barrier, ingested) = (barrier.clone(), ingested.clone());
            std::thread::spawn(move || {
                let me = ManuallyDrop::new(TestEngine(std::ptr::without_provenance_mut(handle)));
                barrier.wait();
                while !ingested.load(std::sync::atomic::Ordering::Acquire) {
                    me.presence("ana", "online").expect("online");
                    me.presence("ana", "away").expect("away");
                }
            })
        };
        barrier.wait();
        let outcome = engine.ingest(&chat(round)).expect("ingest");
        ingested.store(true, std::sync::atomic::Ordering::Release);
        presence.join().expect("no thread panicked");
        let item = str_field(&outcome, "conversation").to_owned();
        let state = engine.explain(&item).expect("explain")["status"]["state"].clone();
        let want = if state == json!({"assigned": "ana"}) {
            json!({"kind": "agent", "id": "ana"})
        } else {
            json!({"kind": "queue", "id": "support"})
        };
        let handler = engine.handler(&item);
        if handler != want {
            stale.push((round, state, handler));
        }
    }
    assert!(
        stale.is_empty(),
        "{} of {ROUNDS} conversations disagree with the router: {:?}",
        stale.len(),
        &stale[..stale.len().min(3)]
    );
}

/// The host resolves a conversation while its agent accepts the offer on another thread. Either
/// order is fine (resolved first: the offer is withdrawn and the accept finds no item; accepted
/// first: the resolve completes the work), but the router's events must be written in the
/// order the router produced them: an accept's `assigned` written after the resolve's
/// `completed` would leave the resolved conversation with Ana as its handler, and her capacity
/// held by nothing.
#[test]
fn resolve_racing_accept_on_another_thread_leaves_no_handler_and_frees_the_agent() {
    const ROUNDS: usize = 500;
    let mut stale = Vec::new();
    for round in 0..ROUNDS {
        let engine =
            TestEngine::routed(json!({"offer": {"offer": true, "expires_after": 600}}), &[agent("ana", "online", 1)]);
        let item = str_field(&engine.ingest(&chat(round)).expect("ingest"), "conversation").to_owned();
        let handle = engine.0.addr();
        let barrier = Arc::new(Barrier::new(2));
        let accepter = {
            let (barrier, item) = (barrier.clone(), item.clone());
            std::thread::spawn(move || {
                let me = ManuallyDrop::new(TestEngine(std::ptr::without_provenance_mut(handle)));
                barrier.wait();
                if let Err(failed) = me.accept(&item, "ana") {
                    assert_eq!(failed.status, TpStatus::NotFound, "resolved first: {}", failed.message);
                }
            })
        };
        barrier.wait();
        let resolved = engine.update(&item, &json!({"status": "resolved"})).expect("resolve");
        accepter.join().expect("no thread panicked");
        assert_eq!(resolved["status"], json!({"status": "resolved"}));
        assert_eq!(engine.explain(&item).unwrap_err().status, TpStatus::NotFound, "out of routing");
        let handler = engine.handler(&item);
        // Ana's capacity is free: the next customer is offered to her.
        let next = engine.ingest(&chat(ROUNDS + round)).expect("next");
        if !handler.is_null() || next["routing"]["outcome"] != json!({"offered": ["ana"]}) {
            stale.push((round, handler, next["routing"]["outcome"].clone()));
        }
    }
    assert!(
        stale.is_empty(),
        "{} of {ROUNDS} resolved conversations kept a handler or Ana's capacity: {:?}",
        stale.len(),
        &stale[..stale.len().min(3)]
    );
}

/// Runs a Python snippet with `touchpoint.py`'s `Library` and `Engine` bound to the built
/// shared library as `lib` and `tp`; returns stdout, or panics with stderr.
fn python_snippet(snippet: &str) -> String {
    let program = format!(
        "import sys\nsys.path.insert(0, {dir:?})\nimport touchpoint as tp\nlib = tp.Library({lib:?})\n{snippet}",
        dir = example_dir().display().to_string(),
        lib = shared_library().display().to_string(),
    );
    run(Command::new("python3").arg("-c").arg(program), "Python snippet over touchpoint.py")
}

/// `touchpoint.py` passes id and status arguments as `c_char_p`, which ctypes hands over up to
/// the first NUL without complaint: a Python str with an embedded NUL silently becomes a
/// different, shorter argument, and the call acts on it (here it puts agent.carla online).
/// Python's own APIs refuse embedded NULs (ValueError: embedded null byte).
#[test]
fn python_binding_refuses_an_embedded_nul_instead_of_truncating_the_argument() {
    let stdout = python_snippet(
        r#"
with tp.Engine(lib, {"tenant": "acme", "routing": {"agents": [{"id": "agent.carla", "presence": {"status": "away"}}]}}) as e:
    try:
        result = e.agent_presence("agent.carla\0.evil", "online")
        print("accepted", [ev["event"] + ":" + ev["agent"] + ":" + ev.get("status", "") for ev in result["events"]])
    except (ValueError, tp.TouchpointError) as error:
        print("refused", error)
"#,
    );
    assert!(stdout.starts_with("refused"), "an id with an embedded NUL was truncated and used: {stdout}");
}

/// `touchpoint.py` declares `after` as `c_uint64` and `limit` as `c_uint32`; ctypes wraps an
/// out-of-range Python int silently, so `events_after(2**64 + 3, 5)` polls from 3 (replaying the
/// outbox) and `limit=2**32 + 1` becomes 1, where the documented limits say 1 to 1000.
#[test]
fn python_binding_refuses_out_of_range_numbers_instead_of_wrapping_them() {
    let stdout = python_snippet(
        r#"
with tp.Engine(lib, {"tenant": "acme"}) as e:
    e.ingest({"channel": "sms", "endpoint": "e", "sender": {"kind": "phone", "number": "+14155550001"},
              "external_id": "SM1", "content": {"type": "text", "body": "hi"}})
    for after, limit in [(2**64 + 3, 5), (0, 2**32 + 1), (-1, 5)]:
        try:
            page = e.events_after(after, limit)
            print(f"after={after} limit={limit}: accepted, {len(page['events'])} events, next_after {page['next_after']}")
        except (ValueError, OverflowError, TypeError, tp.TouchpointError) as error:
            print(f"after={after} limit={limit}: refused")
"#,
    );
    assert!(stdout.lines().all(|l| l.ends_with("refused")), "out-of-range numbers were wrapped:\n{stdout}");
}

/// The Python binding's new calls: `idle_policy_set(None)` passes JSON `null` (removing the
/// rule), not a NULL pointer; a refusal is a `TouchpointError` with the status name.
#[test]
fn python_binding_sets_business_hours_and_removes_the_idle_rule_with_none() {
    let stdout = python_snippet(
        r#"
with tp.Engine(lib, {"tenant": "acme", "routing": {"agents": [{"id": "ana", "presence": {"status": "online"}}]}}) as e:
    print("calendars", e.calendars_set([{"name": "office", "time_zone": "UTC"}])["events"])
    print("queue", e.queue_upsert({"id": "default", "hours": {"schedule": "office", "action": "voicemail"}})["events"])
    print("idle", e.idle_policy_set({"after": 900, "status": "away"})["events"])
    print("removed", e.idle_policy_set(None)["events"])
    print("activity", e.agent_activity("ana")["events"])
    for bad in [lambda: e.idle_policy_set({"after": 900, "status": "online"}), lambda: e.agent_activity("nobody")]:
        try:
            bad()
            print("accepted")
        except tp.TouchpointError as error:
            print("refused", error.name)
"#,
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "calendars []",
            "queue []",
            "idle []",
            "removed []",
            "activity []",
            "refused TP_STATUS_INVALID_INPUT",
            "refused TP_STATUS_NOT_FOUND"
        ],
        "{stdout}"
    );
}

/// The Python binding's bot calls: `handoff(item)` passes no findings as a NULL pointer (not
/// JSON `null`, which is refused) and "pass" by default; `return_to_bot` takes a dict; a human
/// named as the bot is a `TouchpointError` with the status name.
#[test]
fn python_binding_hands_a_chat_off_without_findings_and_returns_it_to_a_bot() {
    let stdout = python_snippet(
        r#"
bot = {"id": "bot.faq", "is_bot": True, "presence": {"status": "online"}}
ana = {"id": "ana", "presence": {"status": "away"}}
with tp.Engine(lib, {"tenant": "acme", "routing": {"agents": [bot, ana]}}) as e:
    chat = e.ingest({"channel": "webchat", "endpoint": "site", "sender": {"kind": "platform", "scope": "site", "id": "v1"},
                     "external_id": "c1", "content": {"type": "text", "body": "hi"}})
    item = chat["conversation"]
    print("bot", chat["routing"]["outcome"])
    e.agent_presence("ana", "online")
    decision = e.handoff(item)
    print("handoff", decision["outcome"], decision["events"][0]["mode"])
    print("handler", e.conversation_context(item)["focus"]["handler"])
    try:
        e.return_to_bot(item, "ana", {"resolved": True})
        print("accepted")
    except tp.TouchpointError as error:
        print("refused", error.name)
    print("returned", [ev["event"] for ev in e.return_to_bot(item, "bot.faq", {"resolved": True})["events"]])
    print("handler", e.conversation_context(item)["focus"]["handler"])
"#,
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "bot {'assigned': 'bot.faq'}",
            "handoff {'assigned': 'ana'} pass",
            "handler {'kind': 'agent', 'id': 'ana'}",
            "refused TP_STATUS_INVALID_INPUT",
            "returned ['returned_to_bot', 'assigned']",
            "handler {'kind': 'bot', 'id': 'bot.faq'}",
        ],
        "{stdout}"
    );
}

// ---------------------------------------------------------------------------------------------
// Privacy (export, erase), merges and conversation updates.

/// The types of the domain events in the engine's log, in order.
fn event_types(engine: &TestEngine) -> Vec<String> {
    let page = engine.events(0, 1000).expect("events");
    page["events"].as_array().expect("array").iter().map(|e| str_field(&e["event"], "type").to_owned()).collect()
}

#[test]
fn a_customer_is_exported_whole_then_erased_and_nothing_personal_remains() {
    let engine = TestEngine::acme();
    let first = engine.ingest(&sms(1, "Hi, my parcel never came")).expect("ingest");
    let (customer, conversation) = (str_field(&first, "customer"), str_field(&first, "conversation"));
    let email = json!({"channel": "email", "address": {"kind": "email", "address": "lia@example.com"},
                       "verification": "verified"});
    engine.link(customer, &email).expect("link");
    engine.reply(conversation, &agent_reply("Sorry, Lia! Sending another one.")).expect("reply");

    let export = engine.export(customer).expect("export");
    assert_eq!(export["customer"]["id"], customer);
    assert!(export["exported_at"].is_string(), "{export}");
    let addresses: BTreeSet<&str> = export["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .map(|i| str_field(&i["address"], "value"))
        .collect();
    assert_eq!(addresses, BTreeSet::from(["+14155550001", "lia@example.com"]));
    assert_eq!(export["conversations"].as_array().map(Vec::len), Some(1));
    assert_eq!(export["conversations"][0]["id"], conversation);
    let bodies: Vec<&str> =
        export["messages"].as_array().expect("messages").iter().map(|m| str_field(&m["content"], "body")).collect();
    assert_eq!(bodies, ["Hi, my parcel never came", "Sorry, Lia! Sending another one."], "oldest first");
    let events = engine.event_count();
    engine.export(customer).expect("export again");
    assert_eq!(engine.event_count(), events, "an export changes nothing");

    let report = engine.erase(customer).expect("erase");
    assert_eq!(
        report,
        json!({"customer": customer, "identities": 2, "conversations": 1, "messages": 2, "next_timer": null})
    );
    // The customer is gone: every call naming it says so, and the conversation is deleted.
    for failed in [
        engine.export(customer).unwrap_err(),
        engine.erase(customer).unwrap_err(),
        engine.customer_context(customer).unwrap_err(),
        engine.link(customer, &email).unwrap_err(),
    ] {
        assert_eq!(failed.status, TpStatus::Erased, "{}", failed.message);
    }
    assert_eq!(engine.reply(conversation, &agent_reply("still there?")).unwrap_err().status, TpStatus::NotFound);
    // The event log names the erasure and holds ids only: no address, no name, no text.
    assert_eq!(event_types(&engine).last().map(String::as_str), Some("customer_erased"));
    let log = engine.events(0, 1000).expect("events").to_string();
    for personal in ["+14155550001", "lia@example.com", "parcel", "Sorry, Lia"] {
        assert!(!log.contains(personal), "the event log holds {personal:?}: {log}");
    }
    // The same number writing again starts afresh as a new customer.
    let again = engine.ingest(&sms_from(1, "SM1-again", "hello again")).expect("ingest after erasure");
    assert_ne!(again["customer"], first["customer"]);
    assert_eq!(again["resolution"]["kind"], "created");
    let view = engine.customer_context(str_field(&again, "customer")).expect("context");
    assert_eq!(view["counts"]["inbound"], 1, "none of the erased history: {view}");
}

#[test]
fn erasing_a_routed_customer_frees_the_agents_capacity_for_the_next_waiting_customer() {
    let engine = TestEngine::routed(json!({}), &[agent("ana", "online", 1)]);
    let first = engine.ingest(&chat(1)).expect("first");
    let second = engine.ingest(&chat(2)).expect("second");
    assert_eq!(first["routing"]["outcome"], json!({"assigned": "ana"}));
    assert_eq!(second["routing"]["outcome"], json!({"queued": "support"}));
    let second_conversation = str_field(&second, "conversation");

    let report = engine.erase(str_field(&first, "customer")).expect("erase");
    assert_eq!((report["conversations"].as_u64(), report["messages"].as_u64()), (Some(1), Some(1)));
    assert_eq!(report["next_timer"], Value::Null);
    assert!(report.get("notes").is_none(), "routing after the erasure worked: {report}");
    // Ana's capacity freed: she has the second customer now, and the log says so.
    assert_eq!(engine.handler(second_conversation), handled_by("ana"));
    assert_eq!(routing_changes(&engine, second_conversation), ["queued", "assigned"]);
    // The erased conversation is out of routing.
    assert_eq!(engine.explain(str_field(&first, "conversation")).unwrap_err().status, TpStatus::NotFound);
}

#[test]
fn export_erase_and_merge_refuse_bad_arguments_with_typed_codes_and_change_nothing() {
    let engine = TestEngine::acme();
    let ana = engine.ingest(&sms(1, "hi, this is Ana")).expect("ana");
    let bob = engine.ingest(&sms(2, "hi, this is Bob")).expect("bob");
    let (ana_id, bob_id) = (str_field(&ana, "customer"), str_field(&bob, "customer"));
    let unknown = "01a23328-a7c7-7000-8002-2c1c4d22cc6e";
    let events = engine.event_count();

    for failed in [engine.export(unknown), engine.erase(unknown), engine.merge(ana_id, unknown, "first")] {
        let failed = failed.unwrap_err();
        assert_eq!(
            (failed.status, failed.message.as_str()),
            (TpStatus::NotFound, &*format!("customer {unknown} not found"))
        );
    }
    for failed in [engine.export("not-a-uuid"), engine.erase("not-a-uuid"), engine.merge("not-a-uuid", bob_id, "first")]
    {
        assert_eq!(failed.unwrap_err().status, TpStatus::InvalidInput);
    }
    let failed = engine.merge(ana_id, ana_id, "first").unwrap_err();
    assert_eq!(failed.status, TpStatus::InvalidInput);
    assert!(failed.message.contains("cannot be merged with itself"), "{}", failed.message);
    let failed = engine.merge(ana_id, bob_id, "biggest").unwrap_err();
    assert_eq!(failed.status, TpStatus::InvalidInput);
    assert!(failed.message.contains("`survivor`") && failed.message.contains("\"biggest\""), "{}", failed.message);

    // Invalid UTF-8 and NULL pointers, each named.
    let bad = CString::new(b"\xc3\x28".to_vec()).expect("no NUL");
    let failed = call(|out| unsafe { tp_customer_erase(engine.0, bad.as_ptr(), out) }).unwrap_err();
    assert!(failed.status == TpStatus::InvalidUtf8 && failed.message.contains("`customer_id`"), "{failed:?}");
    let (a, b, first) = (cstring(ana_id), cstring(bob_id), cstring("first"));
    let mut out: *mut c_char = std::ptr::without_provenance_mut(0x1);
    let expect = |status: TpStatus, message: &str| {
        assert_eq!(status, TpStatus::NullPointer, "{message}");
        assert_eq!(last_error(), message);
    };
    // SAFETY (all calls below): every pointer is NULL or valid.
    unsafe {
        expect(tp_customer_export(null_mut(), a.as_ptr(), &mut out), "`engine` is NULL");
        expect(tp_customer_export(engine.0, null(), &mut out), "`customer_id` is NULL");
        expect(tp_customer_export(engine.0, a.as_ptr(), null_mut()), "`out_export_json` is NULL");
        expect(tp_customer_erase(null_mut(), a.as_ptr(), &mut out), "`engine` is NULL");
        expect(tp_customer_erase(engine.0, null(), &mut out), "`customer_id` is NULL");
        expect(tp_customer_erase(engine.0, a.as_ptr(), null_mut()), "`out_report_json` is NULL");
        expect(tp_customers_merge(engine.0, null(), b.as_ptr(), first.as_ptr(), &mut out), "`customer_id` is NULL");
        expect(
            tp_customers_merge(engine.0, a.as_ptr(), null(), first.as_ptr(), &mut out),
            "`other_customer_id` is NULL",
        );
        expect(tp_customers_merge(engine.0, a.as_ptr(), b.as_ptr(), null(), &mut out), "`survivor` is NULL");
        expect(
            tp_customers_merge(engine.0, a.as_ptr(), b.as_ptr(), first.as_ptr(), null_mut()),
            "`out_plan_json` is NULL",
        );
    }
    assert!(out.is_null(), "results stay NULL");
    assert_eq!(engine.event_count(), events, "no failed call changed anything");
    assert_eq!(engine.export(ana_id).expect("ana is whole")["messages"].as_array().map(Vec::len), Some(1));
    assert_eq!(engine.export(bob_id).expect("bob is whole")["messages"].as_array().map(Vec::len), Some(1));
}

#[test]
fn two_customers_found_to_be_one_are_merged_and_the_absorbed_id_names_the_survivor() {
    let engine = TestEngine::acme();
    let ana = engine.ingest(&sms(1, "hi from my old phone")).expect("ana");
    let lia = engine.ingest(&sms(2, "hi from my new phone")).expect("lia");
    let (ana_id, lia_id) = (str_field(&ana, "customer"), str_field(&lia, "customer"));

    let plan = engine.merge(ana_id, lia_id, "first").expect("merge");
    assert_eq!((plan["survivor"].as_str(), plan["absorbed"].as_str()), (Some(ana_id), Some(lia_id)));
    assert_eq!(plan["conversations_moved"], json!([lia["conversation"]]));
    assert_eq!(plan["identities_moved"], json!([lia["identity"]]));
    assert_eq!(plan["result"]["merged_from"], json!([lia_id]));
    assert!(event_types(&engine).contains(&"customers_merged".to_owned()));
    // One customer now: both conversations and numbers, reached by either id.
    for id in [ana_id, lia_id] {
        let view = engine.customer_context(id).expect("context");
        assert_eq!(view["customer"]["id"], ana_id);
        assert_eq!(view["counts"]["conversations"], 2, "{view}");
    }
    let export = engine.export(lia_id).expect("export through the alias");
    assert_eq!(export["identities"].as_array().map(Vec::len), Some(2));
    // Merging again: the absorbed id is the survivor now.
    assert_eq!(engine.merge(ana_id, lia_id, "oldest").unwrap_err().status, TpStatus::InvalidInput);
    // Different external ids are different people.
    let carl = engine
        .ingest(&json!({"channel": "webchat", "endpoint": "site",
        "sender": {"kind": "platform", "scope": "site", "id": "visitor-carl"}, "external_id": "carl-1",
        "content": {"type": "text", "body": "hi"},
        "claims": [{"key": {"kind": "external_id", "value": "user-carl"}, "verification": "verified"}]}))
        .expect("carl");
    let dina = engine
        .ingest(&json!({"channel": "webchat", "endpoint": "site",
        "sender": {"kind": "platform", "scope": "site", "id": "visitor-dina"}, "external_id": "dina-1",
        "content": {"type": "text", "body": "hi"},
        "claims": [{"key": {"kind": "external_id", "value": "user-dina"}, "verification": "verified"}]}))
        .expect("dina");
    let events = engine.event_count();
    let failed =
        engine.merge(str_field(&carl, "customer"), str_field(&dina, "customer"), "has_external_id").unwrap_err();
    assert_eq!(failed.status, TpStatus::Refused, "{}", failed.message);
    assert_eq!(engine.event_count(), events, "nothing changed");
    // An erased customer cannot be merged.
    engine.erase(str_field(&dina, "customer")).expect("erase dina");
    let failed = engine.merge(str_field(&carl, "customer"), str_field(&dina, "customer"), "first").unwrap_err();
    assert_eq!(failed.status, TpStatus::Erased, "{}", failed.message);
}

#[test]
fn resolving_a_routed_conversation_frees_the_agent_for_the_next_waiting_customer() {
    let engine = TestEngine::routed(json!({}), &[agent("ana", "online", 1)]);
    let first = engine.ingest(&chat(1)).expect("first");
    let second = engine.ingest(&chat(2)).expect("second");
    let (first_conversation, second_conversation) =
        (str_field(&first, "conversation"), str_field(&second, "conversation"));
    assert_eq!(engine.handler(first_conversation), handled_by("ana"));
    assert_eq!(engine.handler(second_conversation), json!({"kind": "queue", "id": "support"}));

    let resolved = engine.update(first_conversation, &json!({"status": "resolved"})).expect("resolve");
    assert_eq!(resolved["id"], first_conversation);
    assert_eq!(resolved["status"], json!({"status": "resolved"}));
    assert!(resolved["resolved_at"].is_string(), "{resolved}");
    assert_eq!(resolved["handler"], Value::Null, "out of routing: no handler");
    assert_eq!(resolved["next_timer"], Value::Null);
    // Ana took the waiting customer at once; both changes are in the event log.
    assert_eq!(engine.handler(second_conversation), handled_by("ana"));
    assert_eq!(routing_changes(&engine, first_conversation), ["assigned", "completed"]);
    assert_eq!(routing_changes(&engine, second_conversation), ["queued", "assigned"]);
    assert!(event_types(&engine).contains(&"conversation_status_changed".to_owned()));
    assert_eq!(engine.complete(first_conversation).unwrap_err().status, TpStatus::NotFound, "out of routing");

    // Closing the second frees Ana again; a closed conversation cannot be reopened.
    let closed = engine.update(second_conversation, &json!({"status": "closed"})).expect("close");
    assert_eq!(closed["status"], json!({"status": "closed"}));
    assert!(closed["closed_at"].is_string(), "{closed}");
    let third = engine.ingest(&chat(3)).expect("third");
    assert_eq!(third["routing"]["outcome"], json!({"assigned": "ana"}), "Ana has room again");
    let events = engine.event_count();
    let failed = engine.update(second_conversation, &json!({"status": "open"})).unwrap_err();
    assert_eq!(failed.status, TpStatus::Refused, "{}", failed.message);
    assert_eq!(engine.event_count(), events, "nothing changed");
    assert_eq!(engine.conversation(second_conversation)["status"], json!({"status": "closed"}));
}

#[test]
fn resolving_an_offered_conversation_withdraws_the_offer() {
    let engine =
        TestEngine::routed(json!({"offer": {"offer": true, "expires_after": 600}}), &[agent("ana", "online", 1)]);
    let outcome = engine.ingest(&chat(1)).expect("ingest");
    let conversation = str_field(&outcome, "conversation");
    assert_eq!(outcome["routing"]["outcome"], json!({"offered": ["ana"]}));
    let resolved = engine.update(conversation, &json!({"status": "resolved"})).expect("resolve");
    assert_eq!(resolved["status"], json!({"status": "resolved"}));
    assert_eq!(routing_changes(&engine, conversation), ["offered", "offer_rescinded", "withdrawn"]);
    assert_eq!(engine.accept(conversation, "ana").unwrap_err().status, TpStatus::NotFound, "the offer is gone");
}

#[test]
fn conversation_updates_set_priority_subject_tags_handler_and_snooze_without_a_router() {
    let engine = TestEngine::acme();
    let outcome = engine.ingest(&sms(1, "my lamp is broken")).expect("ingest");
    let conversation = str_field(&outcome, "conversation");
    let updated = engine
        .update(conversation, &json!({"priority": "high", "subject": "Broken lamp", "add_tags": ["refund", "vip"]}))
        .expect("update");
    assert_eq!(updated["priority"], "high");
    assert_eq!(updated["subject"], "Broken lamp");
    assert_eq!(updated["tags"], json!(["refund", "vip"]));
    assert_eq!(updated["status"], json!({"status": "open"}), "the status stays");
    assert_eq!(updated["next_timer"], Value::Null, "no router");
    // `null` clears the subject; absent fields stay.
    let updated = engine.update(conversation, &json!({"subject": null, "remove_tags": ["vip"]})).expect("update");
    assert_eq!(
        (&updated["subject"], &updated["tags"], &updated["priority"]),
        (&Value::Null, &json!(["refund"]), &json!("high"))
    );
    // Snoozed needs a time: the status's own form.
    let until = "2030-01-01T09:00:00Z";
    let snoozed =
        engine.update(conversation, &json!({"status": {"status": "snoozed", "until": until}})).expect("snooze");
    assert_eq!(snoozed["status"], json!({"status": "snoozed", "until": until}));
    let focus = engine.conversation(conversation);
    assert_eq!((&focus["status"], &focus["tags"]), (&snoozed["status"], &json!(["refund"])), "stored");
    // A host that routes by hand sets the handler itself, and clears it with `null`.
    let assigned = engine.update(conversation, &json!({"handler": handled_by("bruno")})).expect("assign");
    assert_eq!(assigned["handler"], handled_by("bruno"));
    assert_eq!(engine.handler(conversation), handled_by("bruno"));
    assert_eq!(event_types(&engine).last().map(String::as_str), Some("conversation_assigned"));
    assert_eq!(engine.update(conversation, &json!({"handler": null})).expect("unassign")["handler"], Value::Null);
    assert_eq!(engine.handler(conversation), Value::Null);
    // `{}` changes nothing.
    let events = engine.event_count();
    let same = engine.update(conversation, &json!({})).expect("empty patch");
    assert_eq!(same["status"], snoozed["status"]);
    assert_eq!(engine.event_count(), events);
}

#[test]
fn conversation_updates_refuse_bad_arguments_with_typed_codes_and_change_nothing() {
    let engine = TestEngine::routed(json!({}), &[agent("ana", "online", 1)]);
    let outcome = engine.ingest(&chat(1)).expect("ingest");
    let conversation = str_field(&outcome, "conversation");
    let unknown = "01a23328-a7c7-7000-8002-2c1c4d22cc6e";
    let events = engine.event_count();

    for not_json in ["", "{", "{\"status\": resolved}", "status=resolved"] {
        let failed = engine.update_text(conversation, not_json).unwrap_err();
        assert_eq!(failed.status, TpStatus::InvalidJson, "{not_json:?}");
        assert!(failed.message.starts_with("`patch_json` is not JSON: "), "{}", failed.message);
    }
    for (patch, says) in [
        (json!({"status": "dancing"}), "unknown variant `dancing`"),
        (json!({"status": "snoozed"}), "missing field `until`"),
        (json!({"status": 3}), "status"),
        (json!({"handler": {"kind": "person", "id": "ana"}}), "unknown variant `person`"),
        (json!({"handler": {"kind": "agent", "id": "has space"}}), "invalid input in `agent`"),
        (json!({"colour": "red"}), "unknown field `colour`"),
        (json!({"priority": "whenever"}), "unknown variant `whenever`"),
        (json!({"add_tags": [""]}), "tags"),
        (json!({"add_tags": ["x".repeat(65)]}), "tags"),
        (json!({"subject": "   "}), "subject"),
        (json!([]), "must be a JSON object"),
        (json!(["resolved"]), "must be a JSON object"),
    ] {
        let failed = engine.update(conversation, &patch).unwrap_err();
        assert_eq!(failed.status, TpStatus::InvalidInput, "{patch}: {}", failed.message);
        assert!(failed.message.contains(says), "{patch}: {}", failed.message);
    }
    let failed = engine.update(unknown, &json!({"status": "resolved"})).unwrap_err();
    assert_eq!((failed.status, failed.message), (TpStatus::NotFound, format!("conversation {unknown} not found")));
    // The router holds the conversation: its handler follows routing, not a hand-set one.
    let failed = engine.update(conversation, &json!({"handler": null, "status": "resolved"})).unwrap_err();
    assert_eq!(failed.status, TpStatus::Refused, "{}", failed.message);
    assert!(failed.message.contains("tp_work_withdraw"), "{}", failed.message);
    assert_eq!(engine.update("not-a-uuid", &json!({})).unwrap_err().status, TpStatus::InvalidInput);

    let (id, patch) = (cstring(conversation), cstring(r#"{"status": "resolved"}"#));
    let mut out: *mut c_char = std::ptr::without_provenance_mut(0x1);
    let expect = |status: TpStatus, message: &str| {
        assert_eq!(status, TpStatus::NullPointer, "{message}");
        assert_eq!(last_error(), message);
    };
    // SAFETY (all calls below): every pointer is NULL or valid.
    unsafe {
        expect(tp_conversation_update(null_mut(), id.as_ptr(), patch.as_ptr(), &mut out), "`engine` is NULL");
        expect(tp_conversation_update(engine.0, null(), patch.as_ptr(), &mut out), "`conversation_id` is NULL");
        expect(tp_conversation_update(engine.0, id.as_ptr(), null(), &mut out), "`patch_json` is NULL");
        expect(
            tp_conversation_update(engine.0, id.as_ptr(), patch.as_ptr(), null_mut()),
            "`out_conversation_json` is NULL",
        );
    }
    assert!(out.is_null(), "results stay NULL");
    // Nothing changed: still open, still Ana's.
    assert_eq!(engine.event_count(), events, "no failed call changed anything");
    let focus = engine.conversation(conversation);
    assert_eq!((&focus["status"], &focus["handler"]), (&json!({"status": "open"}), &handled_by("ana")));
    assert_eq!(event_words(&engine.complete(conversation).expect("still routed")), ["completed(ana)"]);
}

// ---------------------------------------------------------------------------------------------
// Requeue, withdraw, agent removal, explanations and queue statistics.

#[test]
fn requeued_work_goes_to_another_agent_and_a_removed_agents_work_goes_back_to_routing() {
    let engine = TestEngine::routed(json!({}), &[agent("ana", "online", 1), agent("bo", "away", 1)]);
    let outcome = engine.ingest(&chat(1)).expect("ingest");
    let item = str_field(&outcome, "conversation");
    assert_eq!(outcome["routing"]["outcome"], json!({"assigned": "ana"}));

    // Ana gives it back and is not offered it again: it waits, for nobody else is available.
    let requeued = engine.requeue(item, 1).expect("requeue");
    assert_eq!(event_words(&requeued), ["requeued(ana)", "queued"], "{requeued}");
    assert_eq!(engine.handler(item), json!({"kind": "queue", "id": "support"}));
    assert_eq!(engine.queue_stats("support").expect("stats")["waiting"], 1);
    // Bo comes online and gets it.
    assert_eq!(
        event_words(&engine.presence("bo", "online").expect("presence")),
        ["presence_changed(bo)", "assigned(bo)"]
    );
    assert_eq!(engine.handler(item), handled_by("bo"));

    // Bo is removed: his work goes back to routing and waits (Ana gave it back before).
    let removed = engine.remove_agent("bo").expect("remove");
    assert_eq!(event_words(&removed), ["requeued(bo)"], "{removed}");
    assert_eq!(engine.handler(item), json!({"kind": "queue", "id": "support"}));
    assert_eq!(engine.presence("bo", "online").unwrap_err().status, TpStatus::NotFound, "bo is gone");
    assert_eq!(engine.remove_agent("bo").unwrap_err().status, TpStatus::NotFound);

    // Withdrawn: out of routing, no handler; the conversation itself stays open.
    let withdrawn = engine.withdraw(item).expect("withdraw");
    assert_eq!(event_words(&withdrawn), ["withdrawn"]);
    assert_eq!(engine.handler(item), Value::Null);
    assert_eq!(engine.conversation(item)["status"], json!({"status": "open"}));
    assert_eq!(engine.queue_stats("support").expect("stats")["waiting"], 0);
    assert_eq!(engine.withdraw(item).unwrap_err().status, TpStatus::NotFound, "withdrawn already");
    // Out of routing, the host may hand it to someone itself.
    let assigned = engine.update(item, &json!({"handler": handled_by("ana")})).expect("assign by hand");
    assert_eq!(assigned["handler"], handled_by("ana"));
    assert_eq!(routing_changes(&engine, item), ["assigned", "requeued", "queued", "assigned", "requeued", "withdrawn"]);
}

/// A supervisor escalates the later of two waiting chats through `tp_work_update`: the agent
/// who comes online takes it first. Bad updates are refused with typed codes and change nothing.
#[test]
fn an_escalated_waiting_chat_is_taken_first_and_bad_updates_change_nothing() {
    let engine = TestEngine::routed(json!({}), &[agent("ana", "away", 1)]);
    let older = str_field(&engine.ingest(&chat(1)).expect("ingest"), "conversation").to_owned();
    let newer = str_field(&engine.ingest(&chat(2)).expect("ingest"), "conversation").to_owned();
    let events = engine.event_count();
    let unknown = "01a23328-a7c7-7000-8002-2c1c4d22cc6e";
    for (item, update, status) in [
        (newer.as_str(), "{\"priority\": ", TpStatus::InvalidJson),
        (newer.as_str(), "[5]", TpStatus::InvalidInput),
        (newer.as_str(), "{\"priorty\": 5}", TpStatus::InvalidInput),
        (newer.as_str(), "{\"priority\": \"high\"}", TpStatus::InvalidInput),
        (unknown, "{\"priority\": 5}", TpStatus::NotFound),
        ("nope", "{\"priority\": 5}", TpStatus::InvalidInput),
    ] {
        assert_eq!(engine.update_item(item, update).unwrap_err().status, status, "{update}");
    }
    assert_eq!(engine.event_count(), events, "refused updates record nothing");

    let escalated =
        engine.update_item(&newer, r#"{"priority": 5, "attributes": {"escalated": true}}"#).expect("update");
    assert_eq!(escalated["events"], json!([]), "nobody to take it yet: {escalated}");
    let online = engine.presence("ana", "online").expect("presence");
    assert_eq!(event_words(&online), ["presence_changed(ana)", "assigned(ana)"], "{online}");
    assert_eq!(engine.handler(&newer), handled_by("ana"), "the escalated chat first");
    assert_eq!(engine.handler(&older), json!({"kind": "queue", "id": "support"}));
}

#[test]
fn requeue_without_excluding_the_agent_may_give_the_work_back_to_them() {
    let engine = TestEngine::routed(json!({}), &[agent("ana", "online", 1)]);
    let item = str_field(&engine.ingest(&chat(1)).expect("ingest"), "conversation").to_owned();
    let requeued = engine.requeue(&item, 0).expect("requeue");
    assert_eq!(event_words(&requeued), ["requeued(ana)", "assigned(ana)"], "{requeued}");
    assert_eq!(engine.handler(&item), handled_by("ana"));
}

#[test]
fn explain_says_why_work_waits_and_queue_stats_count_it_with_the_estimated_wait() {
    let engine = TestEngine::routed(
        json!({"offer": {"offer": true, "expires_after": 600}}),
        &[agent("ana", "online", 1), agent("bo", "away", 1)],
    );
    let stats = engine.queue_stats("support").expect("stats");
    assert_eq!(stats, json!({"waiting": 0, "estimated_wait": null}), "no wait measured yet");
    let item = str_field(&engine.ingest(&chat(1)).expect("ingest"), "conversation").to_owned();
    engine.decline(&item, "ana").expect("decline");

    let events = engine.event_count();
    let explanation = engine.explain(&item).expect("explain");
    assert_eq!(explanation["status"]["state"], "waiting", "{explanation}");
    assert_eq!(explanation["status"]["queue"], "support");
    assert_eq!(explanation["status"]["declines"], 1);
    assert!(!str_field(&explanation, "reason").is_empty());
    let reasons: BTreeMap<&str, Vec<&str>> = explanation["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| {
            (
                str_field(&g["reason"], "kind"),
                g["agents"].as_array().expect("agents").iter().filter_map(Value::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(reasons.get("declined_before"), Some(&vec!["ana"]), "{explanation}");
    assert_eq!(reasons.get("presence"), Some(&vec!["bo"]), "{explanation}");
    assert_eq!(engine.queue_stats("support").expect("stats")["waiting"], 1);
    assert_eq!(engine.event_count(), events, "explanations and statistics change nothing");

    engine.presence("bo", "online").expect("presence");
    engine.accept(&item, "bo").expect("accept");
    let stats = engine.queue_stats("support").expect("stats");
    assert_eq!(stats["waiting"], 0);
    assert!(stats["estimated_wait"].as_f64().is_some_and(|w| w >= 0.0), "a wait was measured: {stats}");
    assert_eq!(engine.explain(&item).expect("explain")["status"]["state"], json!({"assigned": "bo"}));
}

#[test]
fn requeue_withdraw_remove_explain_and_stats_refuse_bad_arguments_with_typed_codes_and_change_nothing() {
    let engine =
        TestEngine::routed(json!({"offer": {"offer": true, "expires_after": 600}}), &[agent("ana", "online", 1)]);
    let item = str_field(&engine.ingest(&chat(1)).expect("ingest"), "conversation").to_owned();
    let unknown = "01a23328-a7c7-7000-8002-2c1c4d22cc6e";
    let events = engine.event_count();

    // Offered, not assigned: nothing to requeue.
    let failed = engine.requeue(&item, 0).unwrap_err();
    assert_eq!(
        (failed.status, failed.message.clone()),
        (TpStatus::Refused, format!("refused: work item {item} is not assigned"))
    );
    for exclude in [2, -1, i32::MAX] {
        let failed = engine.requeue(&item, exclude).unwrap_err();
        assert_eq!(failed.status, TpStatus::InvalidInput, "{exclude}");
        assert!(
            failed.message.contains("`exclude_agent`") && failed.message.contains("must be 0 or 1"),
            "{}",
            failed.message
        );
    }
    for failed in [engine.requeue(unknown, 0), engine.withdraw(unknown), engine.explain(unknown)] {
        let failed = failed.unwrap_err();
        assert_eq!((failed.status, failed.message), (TpStatus::NotFound, format!("work item {unknown} not found")));
    }
    for failed in [engine.requeue("nope", 0), engine.withdraw("nope"), engine.explain("nope")] {
        let failed = failed.unwrap_err();
        assert_eq!(failed.status, TpStatus::InvalidInput);
        assert!(failed.message.starts_with("invalid input in `item_id`"), "{}", failed.message);
    }
    let failed = engine.remove_agent("nobody").unwrap_err();
    assert_eq!((failed.status, failed.message.as_str()), (TpStatus::NotFound, "agent nobody not found"));
    assert_eq!(engine.remove_agent("has space").unwrap_err().status, TpStatus::InvalidInput);
    let failed = engine.queue_stats("nowhere").unwrap_err();
    assert_eq!((failed.status, failed.message.as_str()), (TpStatus::NotFound, "queue nowhere not found"));
    assert_eq!(engine.queue_stats("has space").unwrap_err().status, TpStatus::InvalidInput);
    let bad = CString::new(b"an\xff".to_vec()).expect("no NUL");
    let failed = call(|out| unsafe { tp_queue_stats(engine.0, bad.as_ptr(), out) }).unwrap_err();
    assert!(failed.status == TpStatus::InvalidUtf8 && failed.message.contains("`queue_id`"), "{failed:?}");

    let (id, ana, support) = (cstring(&item), cstring("ana"), cstring("support"));
    let mut out: *mut c_char = std::ptr::without_provenance_mut(0x1);
    let expect = |status: TpStatus, message: &str| {
        assert_eq!(status, TpStatus::NullPointer, "{message}");
        assert_eq!(last_error(), message);
    };
    // SAFETY (all calls below): every pointer is NULL or valid.
    unsafe {
        expect(tp_work_requeue(null_mut(), id.as_ptr(), 0, &mut out), "`engine` is NULL");
        expect(tp_work_requeue(engine.0, null(), 0, &mut out), "`item_id` is NULL");
        expect(tp_work_requeue(engine.0, id.as_ptr(), 0, null_mut()), "`out_events_json` is NULL");
        expect(tp_work_transfer(null_mut(), id.as_ptr(), support.as_ptr(), &mut out), "`engine` is NULL");
        expect(tp_work_transfer(engine.0, null(), support.as_ptr(), &mut out), "`item_id` is NULL");
        expect(tp_work_transfer(engine.0, id.as_ptr(), null(), &mut out), "`queue_id` is NULL");
        expect(tp_work_transfer(engine.0, id.as_ptr(), support.as_ptr(), null_mut()), "`out_events_json` is NULL");
        expect(tp_work_transfer_to_agent(null_mut(), id.as_ptr(), ana.as_ptr(), &mut out), "`engine` is NULL");
        expect(tp_work_transfer_to_agent(engine.0, null(), ana.as_ptr(), &mut out), "`item_id` is NULL");
        expect(tp_work_transfer_to_agent(engine.0, id.as_ptr(), null(), &mut out), "`agent_id` is NULL");
        expect(tp_work_transfer_to_agent(engine.0, id.as_ptr(), ana.as_ptr(), null_mut()), "`out_events_json` is NULL");
        expect(tp_work_withdraw(engine.0, null(), &mut out), "`item_id` is NULL");
        expect(tp_work_withdraw(engine.0, id.as_ptr(), null_mut()), "`out_events_json` is NULL");
        let update = cstring(r#"{"priority": 2}"#);
        expect(tp_work_update(null_mut(), id.as_ptr(), update.as_ptr(), &mut out), "`engine` is NULL");
        expect(tp_work_update(engine.0, null(), update.as_ptr(), &mut out), "`item_id` is NULL");
        expect(tp_work_update(engine.0, id.as_ptr(), null(), &mut out), "`update_json` is NULL");
        expect(tp_work_update(engine.0, id.as_ptr(), update.as_ptr(), null_mut()), "`out_events_json` is NULL");
        expect(tp_agent_remove(engine.0, null(), &mut out), "`agent_id` is NULL");
        expect(tp_agent_remove(engine.0, ana.as_ptr(), null_mut()), "`out_events_json` is NULL");
        expect(tp_routing_explain(engine.0, null(), &mut out), "`item_id` is NULL");
        expect(tp_routing_explain(engine.0, id.as_ptr(), null_mut()), "`out_explanation_json` is NULL");
        expect(tp_queue_stats(engine.0, null(), &mut out), "`queue_id` is NULL");
        expect(tp_queue_stats(null_mut(), support.as_ptr(), &mut out), "`engine` is NULL");
        expect(tp_queue_stats(engine.0, support.as_ptr(), null_mut()), "`out_stats_json` is NULL");
    }
    assert!(out.is_null(), "results stay NULL");
    // None of the failures changed anything: the offer is still Ana's to accept.
    assert_eq!(engine.event_count(), events, "no failed call changed anything");
    assert_eq!(event_words(&engine.accept(&item, "ana").expect("accept")), ["assigned(ana)"]);
}

/// Ana sends her chat to billing, where Bo takes it at once; the handler follows, Ana's capacity
/// takes the next support chat, and she is not given the transferred one back. Unknown or
/// malformed queues and unknown items are refused, changing nothing.
#[test]
fn transferred_work_goes_to_the_new_queue_and_its_agent_gets_the_capacity_back() {
    let engine = TestEngine::routed(json!({}), &[agent("ana", "online", 1)]);
    engine.queue(&json!({"id": "billing"})).expect("billing queue");
    let first = str_field(&engine.ingest(&chat(1)).expect("ingest"), "conversation").to_owned();
    let second = str_field(&engine.ingest(&chat(2)).expect("ingest"), "conversation").to_owned();
    assert_eq!(engine.handler(&first), handled_by("ana"));
    assert_eq!(engine.handler(&second), json!({"kind": "queue", "id": "support"}));
    let events = engine.event_count();

    let unknown = engine.transfer(&first, "nowhere").unwrap_err();
    assert_eq!((unknown.status, unknown.message.as_str()), (TpStatus::NotFound, "queue nowhere not found"));
    assert_eq!(engine.transfer(&first, "has space").unwrap_err().status, TpStatus::InvalidInput);
    let no_item = engine.transfer("00000000-0000-7000-8000-000000000009", "billing").unwrap_err();
    assert_eq!(no_item.status, TpStatus::NotFound);
    assert_eq!(engine.event_count(), events, "no refused transfer changed anything");
    assert_eq!(engine.handler(&first), handled_by("ana"));

    // Nobody is in billing yet: the chat waits there, and Ana takes the next support chat.
    let moved = engine.transfer(&first, "billing").expect("transfer");
    assert_eq!(event_words(&moved), ["transferred(ana)", "queued", "assigned(ana)"], "{moved}");
    assert_eq!(moved["events"][0]["from"], "support");
    assert_eq!(moved["events"][0]["to"], "billing");
    assert_eq!(moved["events"][1]["queue"], "billing");
    assert_eq!(moved["events"][2]["item"], second.as_str());
    assert_eq!(engine.handler(&first), json!({"kind": "queue", "id": "billing"}));
    assert_eq!(engine.handler(&second), handled_by("ana"));

    let bo = json!({"id": "bo", "queues": [{"queue": "billing"}], "capacity": {"channels": {"webchat": 1}},
                    "presence": {"status": "online"}});
    assert_eq!(event_words(&engine.upsert(&bo).expect("bo")), ["assigned(bo)"]);
    assert_eq!(engine.handler(&first), handled_by("bo"));

    // Bo hands the first chat to Cy by name (she is in no queue of it); a busy or unknown
    // target is refused.
    let cy =
        json!({"id": "cy", "queues": [], "capacity": {"channels": {"webchat": 1}}, "presence": {"status": "online"}});
    engine.upsert(&cy).expect("cy");
    let refused = engine.transfer_to_agent(&first, "ana").unwrap_err();
    assert_eq!(refused.status, TpStatus::Refused, "Ana is at capacity: {}", refused.message);
    assert_eq!(engine.transfer_to_agent(&first, "nobody").unwrap_err().status, TpStatus::NotFound);
    let handed = engine.transfer_to_agent(&first, "cy").expect("to cy");
    assert_eq!(event_words(&handed), ["transferred(bo)", "assigned(cy)"], "{handed}");
    assert_eq!(handed["events"][0]["target"], "cy");
    assert_eq!(engine.handler(&first), handled_by("cy"));
}

/// The Python binding's routing additions: `work_requeue` takes a bool (`exclude_agent=2` or a
/// string would reach the library as some other flag), `work_update`, `work_withdraw`, `agent_remove`,
/// `routing_explain` and `queue_stats` hand back the library's JSON, and refusals are
/// `TouchpointError`s with the status name.
#[test]
fn python_binding_requeues_withdraws_explains_and_refuses_a_flag_that_is_not_a_bool() {
    let stdout = python_snippet(
        r#"
config = {"tenant": "acme", "routing": {"queues": [{"id": "support"}],
          "plan": {"rules": [{"name": "all", "steps": [{"pool": {"queues": ["support"]}}]}]},
          "agents": [{"id": "ana", "queues": [{"queue": "support"}], "presence": {"status": "online"}}]}}
with tp.Engine(lib, config) as e:
    item = e.ingest({"channel": "webchat", "endpoint": "site", "sender": {"kind": "platform", "scope": "site", "id": "v1"},
                     "external_id": "c1", "content": {"type": "text", "body": "hi"}})["conversation"]
    for flag in [2, "yes", None]:
        try:
            e.work_requeue(item, flag)
            print("accepted", flag)
        except ValueError:
            print("refused", flag)
    print("requeue", [ev["event"] for ev in e.work_requeue(item, exclude_agent=True)["events"]])
    print("explain", e.routing_explain(item)["status"]["state"])
    print("update", e.work_update(item, {"priority": 4})["events"], e.routing_explain(item)["status"]["priority"])
    try:
        e.work_update(item, {"priorty": 1})
    except tp.TouchpointError as error:
        print("misspelt", error.name)
    print("stats", e.queue_stats("support")["waiting"])
    e.queue_upsert({"id": "billing"})
    print("transfer", [(ev["event"], ev.get("to", ev.get("queue"))) for ev in e.work_transfer(item, "billing")["events"]])
    print("withdraw", [ev["event"] for ev in e.work_withdraw(item)["events"]])
    print("remove", e.agent_remove("ana")["events"])
    try:
        e.routing_explain(item)
    except tp.TouchpointError as error:
        print("gone", error.name)
"#,
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "refused 2",
            "refused yes",
            "refused None",
            "requeue ['requeued', 'queued']",
            "explain waiting",
            "update [] 4",
            "misspelt TP_STATUS_INVALID_INPUT",
            "stats 1",
            "transfer [('transferred', 'billing'), ('queued', 'billing')]",
            "withdraw ['withdrawn']",
            "remove []",
            "gone TP_STATUS_NOT_FOUND",
        ]
    );
}
