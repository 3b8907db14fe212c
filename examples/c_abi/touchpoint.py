#!/usr/bin/env python3
"""touchpoint from Python, through its C ABI (ctypes, standard library only).

The cross-channel story of examples/quickstart.rs: a customer starts on web chat, the shop links
her WhatsApp number and email, she continues on WhatsApp, then writes an email. One customer,
one conversation history, one context. And who handles her: the engine routes the conversation
to the "support" queue, which offers it to an agent; Carla declines, Bruno comes online, is
offered it and accepts, and the context shows him as the handler on every channel. Then the
shop sets support's business hours and the idle rule. Bots and humans: on Telegram the FAQ bot
answers first, hands the chat to Bruno on the returns desk with what it found, and gets it
back from him to ask for a rating; then the shop resolves the chat, which leaves routing.
Last, GDPR: Ana's data is exported, then she is erased.

Run from the repository root:

    cargo build --example c_abi
    python3 examples/c_abi/touchpoint.py [path/to/libc_abi.so]

Without an argument the library is looked up in $TOUCHPOINT_LIB, then in
target/debug/examples/. The `Library` and `Engine` classes are the reusable part: copy them.
"""

import ctypes
import json
import os
import sys
from pathlib import Path

TP_STATUS_OK = 0


class TouchpointError(Exception):
    """A failed call: the status name (TP_STATUS_NOT_FOUND, ...) and the library's message."""

    def __init__(self, status, name, message):
        super().__init__(f"{name}: {message}")
        self.status = status
        self.name = name
        self.message = message


class Library:
    """The loaded shared library with its function signatures declared."""

    def __init__(self, path):
        lib = ctypes.CDLL(str(path))
        out = ctypes.POINTER(ctypes.c_void_p)  # char** / TpEngine** out-parameters
        status = ctypes.c_int32
        signatures = {
            "tp_version": ([], ctypes.c_char_p),
            "tp_last_error": ([], ctypes.c_char_p),
            "tp_status_name": ([ctypes.c_int32], ctypes.c_char_p),
            "tp_engine_new": ([ctypes.c_char_p, out], status),
            "tp_engine_free": ([ctypes.c_void_p], status),
            "tp_string_free": ([ctypes.c_void_p], status),
            "tp_ingest": ([ctypes.c_void_p, ctypes.c_char_p, out], status),
            "tp_link_identity": ([ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, out], status),
            "tp_record_outbound": ([ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, out], status),
            "tp_customer_context": ([ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, out], status),
            "tp_conversation_context": ([ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, out], status),
            "tp_events_after": ([ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32, out], status),
            "tp_agent_upsert": ([ctypes.c_void_p, ctypes.c_char_p, out], status),
            "tp_agent_presence": ([ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, out], status),
            "tp_offer_accept": ([ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, out], status),
            "tp_offer_decline": ([ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, out], status),
            "tp_work_complete": ([ctypes.c_void_p, ctypes.c_char_p, out], status),
            "tp_routing_tick": ([ctypes.c_void_p, out], status),
            "tp_calendars_set": ([ctypes.c_void_p, ctypes.c_char_p, out], status),
            "tp_queue_upsert": ([ctypes.c_void_p, ctypes.c_char_p, out], status),
            "tp_idle_policy_set": ([ctypes.c_void_p, ctypes.c_char_p, out], status),
            "tp_agent_activity": ([ctypes.c_void_p, ctypes.c_char_p, out], status),
            "tp_handoff": ([ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, out], status),
            "tp_return_to_bot": ([ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, out], status),
            "tp_conversation_update": ([ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, out], status),
            "tp_customer_export": ([ctypes.c_void_p, ctypes.c_char_p, out], status),
            "tp_customer_erase": ([ctypes.c_void_p, ctypes.c_char_p, out], status),
            "tp_customers_merge": (
                [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, out],
                status,
            ),
            "tp_work_requeue": ([ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32, out], status),
            "tp_work_withdraw": ([ctypes.c_void_p, ctypes.c_char_p, out], status),
            "tp_work_update": ([ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, out], status),
            "tp_work_transfer": ([ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, out], status),
            "tp_work_transfer_to_agent": ([ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, out], status),
            "tp_agent_remove": ([ctypes.c_void_p, ctypes.c_char_p, out], status),
            "tp_routing_explain": ([ctypes.c_void_p, ctypes.c_char_p, out], status),
            "tp_queue_stats": ([ctypes.c_void_p, ctypes.c_char_p, out], status),
        }
        for name, (argtypes, restype) in signatures.items():
            function = getattr(lib, name)
            function.argtypes = argtypes
            function.restype = restype
        self.lib = lib

    def version(self):
        return self.lib.tp_version().decode()

    def status_name(self, status):
        return self.lib.tp_status_name(status).decode()

    def check(self, status):
        """Raises TouchpointError for a failed call (reads the thread's last error right away)."""
        if status != TP_STATUS_OK:
            message = self.lib.tp_last_error().decode("utf-8", "replace")
            raise TouchpointError(status, self.status_name(status), message)

    def call_json(self, function, *args):
        """Calls a function whose last parameter is a char** result; returns the parsed JSON and
        frees the library's string."""
        result = ctypes.c_void_p()
        self.check(function(*args, ctypes.byref(result)))
        try:
            return json.loads(ctypes.string_at(result.value).decode())
        finally:
            self.check(self.lib.tp_string_free(result))


def _text(value):
    """A text argument as NUL-terminated UTF-8. C would see a string with a NUL in it cut short
    there (another value), so one is refused, as Python's own APIs do."""
    data = value.encode() if isinstance(value, str) else value
    if data is not None and b"\0" in data:
        raise ValueError("embedded null character")
    return data


def _unsigned(value, bits, name):
    """An integer argument in the C type's range; ctypes would wrap anything else silently."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << bits:
        raise ValueError(f"{name} must be an integer from 0 to {(1 << bits) - 1}, not {value!r}")
    return value


def _json(value):
    return None if value is None else json.dumps(value).encode()


def _flag(value, name):
    """A yes/no argument as the 0 or 1 the library takes; anything but a bool is refused."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, not {value!r}")
    return int(value)


class Engine:
    """One tenant's engine. Use it as a context manager, or call close()."""

    def __init__(self, library, config):
        self._library = library
        self._lib = library.lib
        handle = ctypes.c_void_p()
        library.check(self._lib.tp_engine_new(_json(config), ctypes.byref(handle)))
        self._handle = handle

    def ingest(self, inbound):
        return self._library.call_json(self._lib.tp_ingest, self._handle, _json(inbound))

    def link_identity(self, customer_id, identity):
        return self._library.call_json(self._lib.tp_link_identity, self._handle, _text(customer_id), _json(identity))

    def record_outbound(self, conversation_id, outbound):
        return self._library.call_json(
            self._lib.tp_record_outbound, self._handle, _text(conversation_id), _json(outbound)
        )

    def customer_context(self, customer_id, page=None):
        return self._library.call_json(
            self._lib.tp_customer_context, self._handle, _text(customer_id), _json(page)
        )

    def conversation_context(self, conversation_id, page=None):
        return self._library.call_json(
            self._lib.tp_conversation_context, self._handle, _text(conversation_id), _json(page)
        )

    def events_after(self, after=0, limit=100):
        return self._library.call_json(
            self._lib.tp_events_after, self._handle, _unsigned(after, 64, "after"), _unsigned(limit, 32, "limit")
        )

    def conversation_update(self, conversation_id, patch):
        """Changes a conversation: {"status": "resolved"}, "priority", "handler" and "subject"
        (None clears them), "add_tags", "remove_tags". Resolving or closing a routed conversation takes it out
        of routing (its agent's capacity frees). Returns the conversation, with "next_timer"."""
        return self._library.call_json(
            self._lib.tp_conversation_update, self._handle, _text(conversation_id), _json(patch)
        )

    def customer_export(self, customer_id):
        """Everything stored about a customer (GDPR access and portability)."""
        return self._library.call_json(self._lib.tp_customer_export, self._handle, _text(customer_id))

    def customer_erase(self, customer_id):
        """Erases a customer (GDPR erasure); returns what was erased, with "next_timer"."""
        return self._library.call_json(self._lib.tp_customer_erase, self._handle, _text(customer_id))

    def customers_merge(self, customer_id, other_customer_id, survivor="first"):
        """Merges two customers; `survivor` is "first", "oldest" or "has_external_id"."""
        return self._library.call_json(
            self._lib.tp_customers_merge,
            self._handle,
            _text(customer_id),
            _text(other_customer_id),
            _text(survivor),
        )

    # Routing (the engine's configuration needs a "routing" key). Each call returns the router's
    # events, {"events": [...], "next_timer": "..." or None}; call routing_tick() at next_timer.

    def agent_upsert(self, agent):
        return self._library.call_json(self._lib.tp_agent_upsert, self._handle, _json(agent))

    def agent_presence(self, agent_id, status):
        return self._library.call_json(self._lib.tp_agent_presence, self._handle, _text(agent_id), _text(status))

    def offer_accept(self, item_id, agent_id):
        return self._library.call_json(self._lib.tp_offer_accept, self._handle, _text(item_id), _text(agent_id))

    def offer_decline(self, item_id, agent_id):
        return self._library.call_json(self._lib.tp_offer_decline, self._handle, _text(item_id), _text(agent_id))

    def work_complete(self, item_id):
        return self._library.call_json(self._lib.tp_work_complete, self._handle, _text(item_id))

    def work_requeue(self, item_id, exclude_agent=False):
        """Takes assigned work back from its agent and routes it again (with exclude_agent, never
        to them)."""
        return self._library.call_json(
            self._lib.tp_work_requeue, self._handle, _text(item_id), _flag(exclude_agent, "exclude_agent")
        )

    def work_transfer(self, item_id, queue_id):
        """Moves work to another queue: its holder lets go (an assigned agent is not offered it
        again), and it waits there for any member, routed at once."""
        return self._library.call_json(self._lib.tp_work_transfer, self._handle, _text(item_id), _text(queue_id))

    def work_transfer_to_agent(self, item_id, agent_id):
        """Gives work to one agent (offered or assigned), whatever their queues and skills."""
        return self._library.call_json(
            self._lib.tp_work_transfer_to_agent, self._handle, _text(item_id), _text(agent_id)
        )

    def work_withdraw(self, item_id):
        return self._library.call_json(self._lib.tp_work_withdraw, self._handle, _text(item_id))

    def work_update(self, item_id, update):
        """Changes held work (a dict: priority, age_adjustment, due, language, skills,
        optional_skills, attributes); waiting work moves in its queue at once."""
        return self._library.call_json(self._lib.tp_work_update, self._handle, _text(item_id), _json(update))

    def agent_remove(self, agent_id):
        return self._library.call_json(self._lib.tp_agent_remove, self._handle, _text(agent_id))

    def routing_explain(self, item_id):
        """Why a work item is where it is (read-only): its status, step, reason and the agents
        grouped by what keeps them from taking it."""
        return self._library.call_json(self._lib.tp_routing_explain, self._handle, _text(item_id))

    def queue_stats(self, queue_id):
        """{"waiting": n, "estimated_wait": seconds or None} (read-only)."""
        return self._library.call_json(self._lib.tp_queue_stats, self._handle, _text(queue_id))

    def handoff(self, item_id, findings=None, mode="pass"):
        """A bot hands its conversation to humans. `findings` is a dict of attributes (None for
        none); `mode` is "pass" or "offer". Returns the decision (as an ingest outcome's
        "routing", with "next_timer")."""
        return self._library.call_json(
            self._lib.tp_handoff, self._handle, _text(item_id), _json(findings), _text(mode)
        )

    def return_to_bot(self, item_id, bot_id, findings=None):
        """A human hands their conversation back to a bot. `findings` is a dict of attributes
        (None for none)."""
        return self._library.call_json(
            self._lib.tp_return_to_bot, self._handle, _text(item_id), _text(bot_id), _json(findings)
        )

    def routing_tick(self):
        return self._library.call_json(self._lib.tp_routing_tick, self._handle)

    def calendars_set(self, schedules):
        """Replaces the business-hours schedules (a list; [] removes them all)."""
        return self._library.call_json(self._lib.tp_calendars_set, self._handle, _json(schedules))

    def queue_upsert(self, queue):
        return self._library.call_json(self._lib.tp_queue_upsert, self._handle, _json(queue))

    def idle_policy_set(self, policy):
        """Installs the idle rule ({"after": seconds, "status": "away"}); None removes it."""
        return self._library.call_json(self._lib.tp_idle_policy_set, self._handle, json.dumps(policy).encode())

    def agent_activity(self, agent_id):
        return self._library.call_json(self._lib.tp_agent_activity, self._handle, _text(agent_id))

    def close(self):
        if self._handle is not None:
            self._library.check(self._lib.tp_engine_free(self._handle))
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def find_library():
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    if os.environ.get("TOUCHPOINT_LIB"):
        return Path(os.environ["TOUCHPOINT_LIB"])
    name = {"darwin": "libc_abi.dylib", "win32": "c_abi.dll"}.get(sys.platform, "libc_abi.so")
    return Path(__file__).resolve().parents[2] / "target" / "debug" / "examples" / name


def print_events(label, events):
    """Prints routing events, each as its name with the agent it concerns."""
    words = []
    for event in events:
        agent = event.get("agent") or next(iter(event.get("agents") or []), None)
        words.append(f"{event['event']}({agent})" if agent else event["event"])
    print(f"{label:9} -> {' '.join(words) or '(none)'}")


def print_outcome(label, outcome):
    print(
        f"{label:9} -> customer {outcome['customer']}, conversation {outcome['conversation']} "
        f"(resolution {outcome['resolution']['kind']}, thread {outcome['thread']['decision']})"
    )
    # What the router did with a conversation that needed a handler (None: nothing routed).
    if outcome["routing"] is not None:
        print_events("routing", outcome["routing"]["events"])


# Bruno and Carla serve the support queue (Bruno the returns queue too) on web chat, WhatsApp,
# email and Telegram.
def agent(agent_id, status, queues=("support",)):
    return {
        "id": agent_id,
        "queues": [{"queue": queue} for queue in queues],
        "capacity": {"channels": {"webchat": 2, "whatsapp": 2, "email": 5, "telegram": 2}},
        "presence": {"status": status},
    }


def log_end(engine, after=0):
    """The sequence number of the latest event in the log (pass it as `after` to see what
    comes next)."""
    while True:
        page = engine.events_after(after, 1000)
        if not page["events"]:
            return after
        after = page["next_after"]


def print_routing_log(engine, label, after):
    """Prints the routing changes recorded in the event log after `after`, each as its name
    with the agent it concerns."""
    changes = [
        e["event"]["change"] for e in engine.events_after(after, 1000)["events"] if e["event"]["type"] == "routing"
    ]
    words = [f"{c['routing']}({c['agent']})" if c.get("agent") else c["routing"] for c in changes]
    print(f"{label:9} -> {' '.join(words) or '(none)'}")


def print_handler(engine, label, conversation_id):
    """Prints the handler of a conversation, as its context shows it."""
    handler = engine.conversation_context(conversation_id, {"limit": 1})["focus"]["handler"]
    handler = handler or {"kind": "none", "id": ""}
    print(f"{label:9} -> {handler['kind']} {handler['id']}")


def main():
    library = Library(find_library())
    print(f"touchpoint {library.version()}")

    # One engine per tenant; continue open conversations across channels for up to 3 days.
    # Route conversations to the "support" queue, which offers each one to an agent for two
    # minutes; Carla serves it and is online. Telegram chats go to the FAQ bot first (the "bots"
    # queue), and work a bot found to be a return to the "returns" queue.
    config = {
        "tenant": "acme-shop",
        "cross_channel_window_hours": 72,
        "routing": {
            "queues": [
                {"id": "support", "offer": {"offer": True, "expires_after": 120}},
                {"id": "returns"},
                {"id": "bots"},
            ],
            "plan": {
                "rules": [
                    {
                        "name": "returns",
                        "when": {"item_attr": {"key": "intent", "equals": "return"}},
                        "steps": [{"pool": {"queues": ["returns"]}}],
                    },
                    {
                        "name": "bot first",
                        "when": {"channel": {"only": ["telegram"]}},
                        "steps": [{"pool": {"queues": ["bots"]}}],
                    },
                    {"name": "everything", "steps": [{"pool": {"queues": ["support"]}}]},
                ]
            },
            "agents": [
                agent("agent.carla", "online"),
                {
                    "id": "bot.faq",
                    "is_bot": True,
                    "queues": [{"queue": "bots"}],
                    "capacity": {"channels": {"telegram": 10}},
                    "presence": {"status": "online"},
                },
            ],
        },
    }
    with Engine(library, config) as engine:
        # Bruno joins support and returns too, but is away for now.
        print_events("upsert", engine.agent_upsert(agent("agent.bruno", "away", ("support", "returns")))["events"])

        # 1. Web chat: Ana is signed in on the shop, so the host vouches for her user id.
        chat = {
            "channel": "webchat",
            "endpoint": "shop-widget",
            "sender": {"kind": "platform", "scope": "shop-widget", "id": "visitor-7f3a"},
            "external_id": "chat-0001",
            "content": {"type": "text", "body": "Hi! My order #1042 arrived with a broken lamp."},
            "sender_name": "Ana Souza",
            "claims": [{"key": {"kind": "external_id", "value": "shop-user-1042"}, "verification": "verified"}],
        }
        first = engine.ingest(chat)
        print_outcome("web chat", first)

        # A retried webhook changes nothing.
        again = engine.ingest(chat)
        print(f"retry     -> duplicate {str(again['duplicate']).lower()}, customer {again['customer']}")

        # The conversation (its id is the work item's) was offered to Carla. A typo in an
        # agent's name is an error, not a crash.
        item = first["routing"]["item"]
        try:
            engine.offer_accept(item, "agent.nobody")
            print("no agent  -> none?")
        except TouchpointError as error:
            print(f"no agent  -> {error.name}: {error.message} (result NULL)")

        # Carla declines: nobody else is available, so it waits in the queue.
        print_events("decline", engine.offer_decline(item, "agent.carla")["events"])

        # Bruno comes online: it is offered to him at once, and he accepts.
        print_events("presence", engine.agent_presence("agent.bruno", "online")["events"])
        print_events("accept", engine.offer_accept(item, "agent.bruno")["events"])

        # The shop knows her phone and email from her account and links them as verified.
        for channel, address in [
            ("whatsapp", {"kind": "phone", "number": "+55 11 98765-4321"}),
            ("email", {"kind": "email", "address": "ana.souza@example.com"}),
        ]:
            identity = engine.link_identity(
                first["customer"], {"channel": channel, "address": address, "verification": "verified"}
            )
            print(f"linked    -> {identity['channel']} {identity['address']['value']}")

        # An agent answers in the conversation (on web chat, where she last wrote).
        reply = engine.record_outbound(
            first["conversation"],
            {
                "author": {"kind": "agent", "id": "agent.bruno"},
                "content": {"type": "text", "body": "Sorry about that, Ana! Can you send a photo?"},
            },
        )
        print(f"reply     -> message {reply['id']} on {reply['channel']}")

        # 2. WhatsApp: the same number, spelled the way WhatsApp spells it.
        second = engine.ingest(
            {
                "channel": "whatsapp",
                "endpoint": "wa-+551130000000",
                "sender": {"kind": "phone", "number": "5511987654321"},
                "external_id": "wamid.HBgNNTUxMTk4NzY1NDMyMRUCABIYFjNFQjA",
                "content": {
                    "type": "media",
                    "media": "image",
                    "url": "https://media.example/lamp.jpg",
                    "mime_type": "image/jpeg",
                    "caption": "Here is the lamp",
                },
            }
        )
        print_outcome("whatsapp", second)

        # 3. Email, from the address on her account (spelled differently).
        third = engine.ingest(
            {
                "channel": "email",
                "endpoint": "support@acme-shop.example",
                "sender": {"kind": "email", "address": "Ana.Souza@Example.com"},
                "external_id": "<CAF=ana-1@mail.example.com>",
                "content": {"type": "text", "body": "Attaching the receipt as well. Refund or replacement is fine."},
                "thread": {"subject": "Broken lamp, order #1042"},
            }
        )
        print_outcome("email", third)

        same = (
            first["customer"] == second["customer"] == third["customer"]
            and first["conversation"] == third["conversation"]
        )
        print(f"one story -> {'yes' if same else 'NO'}")

        # What the next agent sees, whatever channel they answer on, and who handles it.
        view = engine.conversation_context(third["conversation"])
        counts = view["counts"]
        print(
            f"context   -> {counts['inbound']} in / {counts['outbound']} out "
            f"over {counts['conversations']} conversation(s)"
        )
        handler = view["focus"]["handler"] or {"kind": "none", "id": ""}
        print(f"handler   -> {handler['kind']} {handler['id']}")
        print(f"context json: {json.dumps(view, separators=(',', ':'))}")
        for message in view["timeline"]:
            author = message["author"]
            who = "customer" if author["kind"] == "customer" else author.get("id", author["kind"])
            content = message["content"]
            text = content.get("body") or content.get("caption") or content["type"]
            print(f"  [{message['channel']:8}] {who:12} {text}")

        # Bruno is done: the work leaves routing.
        print_events("complete", engine.work_complete(item)["events"])

        # Business hours (Sao Paulo time): work that nobody takes while support is closed becomes
        # a call back. The idle rule puts agents "away" after 15 minutes without activity; the
        # host reports activity the router does not see (typing, a heartbeat).
        office = {
            "name": "office",
            "time_zone": "-03:00",
            "weekly": [
                {"days": ["Mon-Fri"], "start": "08:00", "end": "18:00"},
                {"days": ["Sat"], "start": "09:00", "end": "13:00"},
            ],
        }
        print_events("calendars", engine.calendars_set([office])["events"])
        support = config["routing"]["queues"][0]
        hours = {"schedule": "office", "action": "callback"}
        print_events("hours", engine.queue_upsert({**support, "hours": hours})["events"])
        print_events("idle", engine.idle_policy_set({"after": 900, "status": "away"})["events"])
        print_events("activity", engine.agent_activity("agent.bruno")["events"])

        # Timers (offer expiry, queue hours closing, idle agents, ...) fire on routing_tick().
        print_events("tick", engine.routing_tick()["events"])

        # Poll the event outbox, five at a time.
        after, names = 0, []
        while True:
            page = engine.events_after(after, 5)
            if not page["events"]:
                break
            names += [e["event"]["type"] for e in page["events"]]
            after = page["next_after"]
        print(f"events    -> {' '.join(names)}")
        print(f"events    -> {len(names)} in total")

        # Bots and humans: a new customer on Telegram gets the FAQ bot first.
        telegram = engine.ingest(
            {
                "channel": "telegram",
                "endpoint": "tg-acme-bot",
                "sender": {"kind": "platform", "scope": "tg-acme-bot", "id": "518804"},
                "external_id": "tg-518804-1",
                "content": {"type": "text", "body": "I want to send back order #1077"},
            }
        )
        print_outcome("telegram", telegram)

        # The bot finds out it is a return and passes the chat on with what it learned: the
        # "returns" rule reads the finding, and Bruno (back from his break) gets it.
        chat_id = telegram["conversation"]
        decision = engine.handoff(chat_id, {"intent": "return", "order": "1077"}, "pass")
        print_events("handoff", decision["events"])
        print_handler(engine, "human", chat_id)

        # Bruno arranges the return and hands the chat back to the bot, which asks for a rating.
        print_events("returned", engine.return_to_bot(chat_id, "bot.faq", {"resolved": True})["events"])
        print_handler(engine, "bot", chat_id)

        # The bot has its rating: the host resolves the chat. A resolved conversation leaves
        # routing: the bot's work completes (its capacity frees for the next chat) and the
        # conversation has no handler; the router's events are in the event log.
        cursor = log_end(engine, after)
        resolved = engine.conversation_update(chat_id, {"status": "resolved", "add_tags": ["return"]})
        handler = resolved["handler"] or {"kind": "none"}
        print(f"resolved  -> {resolved['status']['status']}, handler {handler['kind']}")
        print_routing_log(engine, "left", cursor)
        print(f"stats     -> support: {engine.queue_stats('support')['waiting']} waiting")

        # GDPR: Ana asks for everything the shop holds about her, then to be forgotten. The
        # export is what the erasure removes; afterwards every call naming her says so.
        export = engine.customer_export(first["customer"])
        print(
            f"export    -> {len(export['identities'])} identities, {len(export['conversations'])} conversation(s), "
            f"{len(export['messages'])} messages"
        )
        report = engine.customer_erase(first["customer"])
        print(
            f"erased    -> {report['identities']} identities, {report['conversations']} conversation(s), "
            f"{report['messages']} messages"
        )
        try:
            engine.customer_context(first["customer"])
            print("forgotten -> no?")
        except TouchpointError as error:
            print(f"forgotten -> {error.name}: {error.message} (result NULL)")

        # Errors are exceptions carrying the status and the library's explanation.
        try:
            engine.record_outbound(
                "00000000-0000-7000-8000-000000000000",
                {"author": {"kind": "agent", "id": "agent.bruno"}, "content": {"type": "text", "body": "Hello?"}},
            )
            print("error     -> none?")
        except TouchpointError as error:
            print(f"error     -> {error.name}: {error.message} (result NULL)")

    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
