/*
 * The cross-channel story of examples/quickstart.rs, from C: a customer starts on web chat, the
 * shop links her WhatsApp number and email, she continues on WhatsApp, then writes an email.
 * One customer, one conversation history, one context.
 *
 * And who handles her: the engine routes the new conversation to the "support" queue, which
 * offers work to its agents. Carla declines the offer, Bruno comes online, is offered it and
 * accepts; the context shows him as the conversation's handler on every channel, and when he
 * completes the work the conversation leaves routing. Then the shop sets support's business
 * hours and the idle rule.
 *
 * Bots and humans: on Telegram the FAQ bot answers first. It finds out the customer wants to
 * return an order and hands the chat to the returns desk (Bruno), with what it found; Bruno
 * sorts it out and hands it back to the bot, which asks for a rating. Then the shop resolves the
 * chat, which takes it out of routing (the bot's capacity frees).
 *
 * GDPR: Ana asks for her data (an export of everything stored about her), then to be
 * forgotten (an erasure that leaves nothing personal behind).
 *
 * Build and run from the repository root (Linux; the static library needs the system
 * libraries Rust's standard library uses):
 *
 *   cargo build --example c_abi
 *   cc -std=c11 -Wall -Wextra -I examples/c_abi -o target/debug/examples/c_abi_main \
 *      examples/c_abi/main.c target/debug/examples/libc_abi.a -lpthread -ldl -lm
 *   ./target/debug/examples/c_abi_main
 *
 * or link the shared library instead:
 *
 *   cc ... examples/c_abi/main.c -L target/debug/examples -l:libc_abi.so \
 *      -Wl,-rpath,target/debug/examples
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "touchpoint.h"

/* Stops the program with the library's explanation when a call fails. */
static void check(TpStatus status, const char *what) {
    if (status != TP_STATUS_OK) {
        fprintf(stderr, "%s failed: %s: %s\n", what, tp_status_name(status), tp_last_error());
        exit(1);
    }
}

/*
 * Copies the string value that follows "key":" in `json` into `out` (at most `size` bytes with
 * the NUL). Enough for the compact JSON this library returns and the few fields this example
 * reads; a real program would use a JSON parser (cJSON, jansson, json-c). Returns 0 when the
 * field is missing or does not fit.
 */
static int json_string(const char *json, const char *key, char *out, size_t size) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\":\"", key);
    const char *start = strstr(json, pattern);
    if (start == NULL) {
        return 0;
    }
    start += strlen(pattern);
    const char *end = strchr(start, '"');
    if (end == NULL || (size_t)(end - start) >= size) {
        return 0;
    }
    memcpy(out, start, (size_t)(end - start));
    out[end - start] = '\0';
    return 1;
}

/* The number that follows "key": in `json`, or -1 when there is none. */
static long long json_number(const char *json, const char *key) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\":", key);
    const char *start = strstr(json, pattern);
    if (start == NULL) {
        return -1;
    }
    return strtoll(start + strlen(pattern), NULL, 10);
}

/*
 * Prints `label -> ` and the routing events in `json` (a tp_ routing result, or an outcome's
 * "routing"), each as its name with the agent it concerns: `declined(agent.carla) queued`.
 */
static void print_events(const char *label, const char *json) {
    static const char tag[] = "{\"event\":\"";
    printf("%-9s ->", label);
    int count = 0;
    const char *event = strstr(json, tag);
    while (event != NULL) {
        const char *next = strstr(event + 1, tag);
        char name[64] = "?", agent[160] = "";
        json_string(event, "event", name, sizeof name);
        /* The event's agent: "agent":"..." or the first of "agents":["...", within this event. */
        const char *one = strstr(event, "\"agent\":\"");
        const char *many = strstr(event, "\"agents\":[\"");
        if (one != NULL && (next == NULL || one < next)) {
            json_string(one, "agent", agent, sizeof agent);
        } else if (many != NULL && (next == NULL || many < next)) {
            const char *start = many + strlen("\"agents\":[\"");
            const char *end = strchr(start, '"');
            if (end != NULL && (size_t)(end - start) < sizeof agent) {
                memcpy(agent, start, (size_t)(end - start));
                agent[end - start] = '\0';
            }
        }
        printf(agent[0] != '\0' ? " %s(%s)" : " %s", name, agent);
        count++;
        event = next;
    }
    printf("%s\n", count == 0 ? " (none)" : "");
}

/*
 * Checks a routing call, prints its events and frees them. Takes the address of the result
 * (not its value): C leaves the order of evaluating arguments open, so the value may be read
 * before the call in the same argument list has set it.
 */
static void routing(const char *label, TpStatus status, char **events) {
    check(status, label);
    print_events(label, *events);
    check(tp_string_free(*events), "tp_string_free");
    *events = NULL;
}

/* Ids are UUIDs: 36 characters. */
typedef struct {
    char text[40];
} Id;

/* Ingests one message and prints what the engine made of it; returns the outcome's ids. */
static void ingest(TpEngine *engine, const char *label, const char *inbound_json, Id *customer,
                   Id *conversation) {
    char *outcome = NULL;
    check(tp_ingest(engine, inbound_json, &outcome), label);
    char resolution[40] = "?", thread[40] = "?";
    if (!json_string(outcome, "customer", customer->text, sizeof customer->text) ||
        !json_string(outcome, "conversation", conversation->text, sizeof conversation->text)) {
        fprintf(stderr, "%s: unexpected outcome %s\n", label, outcome);
        exit(1);
    }
    json_string(outcome, "kind", resolution, sizeof resolution);   /* "resolution":{"kind":... */
    json_string(outcome, "decision", thread, sizeof thread);       /* "thread":{"decision":... */
    printf("%-9s -> customer %s, conversation %s (resolution %s, thread %s)\n", label, customer->text,
           conversation->text, resolution, thread);
    /* What the router did with a conversation that needed a handler ("routing": null when
       nothing was routed). */
    const char *routed = strstr(outcome, "\"routing\":{");
    if (routed != NULL) {
        print_events("routing", routed);
    }
    check(tp_string_free(outcome), "tp_string_free");
}

static void link_identity(TpEngine *engine, const Id *customer, const char *identity_json) {
    char *identity = NULL;
    check(tp_link_identity(engine, customer->text, identity_json, &identity), "tp_link_identity");
    char channel[32] = "?", address[128] = "?";
    json_string(identity, "channel", channel, sizeof channel);
    json_string(identity, "value", address, sizeof address); /* the normalised address */
    printf("linked    -> %s %s\n", channel, address);
    check(tp_string_free(identity), "tp_string_free");
}

/* Prints `label -> ` and the handler of a conversation, as its context shows it. */
static void print_handler(TpEngine *engine, const char *label, const Id *conversation) {
    char *context = NULL;
    check(tp_conversation_context(engine, conversation->text, "{\"limit\": 1}", &context), "tp_conversation_context");
    char kind[16] = "none", id[160] = "";
    const char *handler = strstr(context, "\"handler\":{"); /* the focus conversation's handler */
    if (handler != NULL) {
        json_string(handler, "kind", kind, sizeof kind);
        json_string(handler, "id", id, sizeof id);
    }
    printf("%-9s -> %s %s\n", label, kind, id);
    check(tp_string_free(context), "tp_string_free");
}

/* How many times `needle` occurs in `haystack`. */
static int occurrences(const char *haystack, const char *needle) {
    int count = 0;
    for (const char *at = strstr(haystack, needle); at != NULL; at = strstr(at + 1, needle)) {
        count++;
    }
    return count;
}

/* The sequence number of the latest event in the log, at or after `after`: pass it as `after`
   to see what comes next. */
static uint64_t log_end(TpEngine *engine, uint64_t after) {
    for (;;) {
        char *page = NULL;
        check(tp_events_after(engine, after, 1000, &page), "tp_events_after");
        long long next = json_number(page, "next_after");
        check(tp_string_free(page), "tp_string_free");
        if (next < 0 || (uint64_t)next == after) {
            return after;
        }
        after = (uint64_t)next;
    }
}

/*
 * Prints `label -> ` and the routing changes recorded in the event log after `after` (the
 * "change" of each {"type": "routing"} event: {"routing": "completed", "agent": "bot.faq"}),
 * each as its name with the agent it concerns.
 */
static void print_routing_log(TpEngine *engine, const char *label, uint64_t after) {
    char *page = NULL;
    check(tp_events_after(engine, after, 1000, &page), "tp_events_after");
    printf("%-9s ->", label);
    int count = 0;
    for (const char *change = strstr(page, "\"routing\":\""); change != NULL;
         change = strstr(change + 1, "\"routing\":\"")) {
        char name[64] = "?", agent[160] = "";
        json_string(change, "routing", name, sizeof name);
        const char *end = strchr(change, '}'); /* the end of this change */
        const char *one = strstr(change, "\"agent\":\"");
        if (one != NULL && end != NULL && one < end) {
            json_string(one, "agent", agent, sizeof agent);
        }
        printf(agent[0] != '\0' ? " %s(%s)" : " %s", name, agent);
        count++;
    }
    printf("%s\n", count == 0 ? " (none)" : "");
    check(tp_string_free(page), "tp_string_free");
}

int main(void) {
    printf("touchpoint %s\n", tp_version());

    /*
     * One engine per tenant; continue open conversations across channels for up to 3 days.
     * Route conversations to the "support" queue, which offers each one to an agent for two
     * minutes; Carla serves it and is online. Telegram chats go to the FAQ bot first (the
     * "bots" queue), and work a bot found to be a return to the "returns" queue.
     */
    TpEngine *engine = NULL;
    check(tp_engine_new("{\"tenant\": \"acme-shop\", \"cross_channel_window_hours\": 72,"
                        " \"routing\": {"
                        "   \"queues\": [{\"id\": \"support\", \"offer\": {\"offer\": true, \"expires_after\": 120}},"
                        "                {\"id\": \"returns\"}, {\"id\": \"bots\"}],"
                        "   \"plan\": {\"rules\": ["
                        "     {\"name\": \"returns\", \"when\": {\"item_attr\": {\"key\": \"intent\", \"equals\": \"return\"}},"
                        "      \"steps\": [{\"pool\": {\"queues\": [\"returns\"]}}]},"
                        "     {\"name\": \"bot first\", \"when\": {\"channel\": {\"only\": [\"telegram\"]}},"
                        "      \"steps\": [{\"pool\": {\"queues\": [\"bots\"]}}]},"
                        "     {\"name\": \"everything\", \"steps\": [{\"pool\": {\"queues\": [\"support\"]}}]}]},"
                        "   \"agents\": [{\"id\": \"agent.carla\", \"queues\": [{\"queue\": \"support\"}],"
                        "                 \"capacity\": {\"channels\": {\"webchat\": 2, \"whatsapp\": 2, \"email\": 5,"
                        "                                               \"telegram\": 2}},"
                        "                 \"presence\": {\"status\": \"online\"}},"
                        "                {\"id\": \"bot.faq\", \"is_bot\": true, \"queues\": [{\"queue\": \"bots\"}],"
                        "                 \"capacity\": {\"channels\": {\"telegram\": 10}},"
                        "                 \"presence\": {\"status\": \"online\"}}]}}",
                        &engine),
          "tp_engine_new");

    /* Bruno joins support and returns too, but is away for now. */
    char *events = NULL;
    TpStatus status = tp_agent_upsert(engine,
                                      "{\"id\": \"agent.bruno\", \"queues\": [{\"queue\": \"support\"}, {\"queue\": \"returns\"}],"
                                      " \"capacity\": {\"channels\": {\"webchat\": 2, \"whatsapp\": 2, \"email\": 5,"
                                      "                               \"telegram\": 2}},"
                                      " \"presence\": {\"status\": \"away\"}}",
                                      &events);
    routing("upsert", status, &events);

    /* 1. Web chat: Ana is signed in on the shop, so the host vouches for her user id. */
    const char *chat =
        "{\"channel\": \"webchat\", \"endpoint\": \"shop-widget\","
        " \"sender\": {\"kind\": \"platform\", \"scope\": \"shop-widget\", \"id\": \"visitor-7f3a\"},"
        " \"external_id\": \"chat-0001\","
        " \"content\": {\"type\": \"text\", \"body\": \"Hi! My order #1042 arrived with a broken lamp.\"},"
        " \"sender_name\": \"Ana Souza\","
        " \"claims\": [{\"key\": {\"kind\": \"external_id\", \"value\": \"shop-user-1042\"},"
        "               \"verification\": \"verified\"}]}";
    Id customer, conversation;
    ingest(engine, "web chat", chat, &customer, &conversation);

    /* A retried webhook changes nothing. */
    char *again = NULL;
    check(tp_ingest(engine, chat, &again), "tp_ingest (retry)");
    Id again_customer = {"?"};
    json_string(again, "customer", again_customer.text, sizeof again_customer.text);
    printf("retry     -> duplicate %s, customer %s\n", strstr(again, "\"duplicate\":true") ? "true" : "false",
           again_customer.text);
    check(tp_string_free(again), "tp_string_free");

    /* The conversation (its id is the work item's) was offered to Carla. A typo in an agent's
       name is an error, not a crash. */
    status = tp_offer_accept(engine, conversation.text, "agent.nobody", &events);
    printf("no agent  -> %s: %s (result %s)\n", tp_status_name(status), tp_last_error(),
           events == NULL ? "NULL" : "set");
    if (events != NULL) {
        check(tp_string_free(events), "tp_string_free");
        events = NULL;
    }

    /* Carla declines: nobody else is available, so it waits in the queue. */
    routing("decline", tp_offer_decline(engine, conversation.text, "agent.carla", &events), &events);

    /* Bruno comes online: it is offered to him at once, and he accepts. */
    routing("presence", tp_agent_presence(engine, "agent.bruno", "online", &events), &events);
    routing("accept", tp_offer_accept(engine, conversation.text, "agent.bruno", &events), &events);

    /* The shop knows her phone and email from her account and links them as verified. */
    link_identity(engine, &customer,
                  "{\"channel\": \"whatsapp\", \"address\": {\"kind\": \"phone\", \"number\": \"+55 11 98765-4321\"},"
                  " \"verification\": \"verified\"}");
    link_identity(engine, &customer,
                  "{\"channel\": \"email\", \"address\": {\"kind\": \"email\", \"address\": \"ana.souza@example.com\"},"
                  " \"verification\": \"verified\"}");

    /* An agent answers in the conversation (on web chat, where she last wrote). */
    char *reply = NULL;
    check(tp_record_outbound(engine, conversation.text,
                             "{\"author\": {\"kind\": \"agent\", \"id\": \"agent.bruno\"},"
                             " \"content\": {\"type\": \"text\", \"body\": \"Sorry about that, Ana! Can you send a photo?\"}}",
                             &reply),
          "tp_record_outbound");
    Id reply_id = {"?"};
    char reply_channel[32] = "?";
    json_string(reply, "id", reply_id.text, sizeof reply_id.text);
    json_string(reply, "channel", reply_channel, sizeof reply_channel);
    printf("reply     -> message %s on %s\n", reply_id.text, reply_channel);
    check(tp_string_free(reply), "tp_string_free");

    /* 2. WhatsApp: the same number, spelled the way WhatsApp spells it. */
    Id wa_customer, wa_conversation;
    ingest(engine, "whatsapp",
           "{\"channel\": \"whatsapp\", \"endpoint\": \"wa-+551130000000\","
           " \"sender\": {\"kind\": \"phone\", \"number\": \"5511987654321\"},"
           " \"external_id\": \"wamid.HBgNNTUxMTk4NzY1NDMyMRUCABIYFjNFQjA\","
           " \"content\": {\"type\": \"media\", \"media\": \"image\", \"url\": \"https://media.example/lamp.jpg\","
           "               \"mime_type\": \"image/jpeg\", \"caption\": \"Here is the lamp\"}}",
           &wa_customer, &wa_conversation);

    /* 3. Email, from the address on her account (spelled differently). */
    Id mail_customer, mail_conversation;
    ingest(engine, "email",
           "{\"channel\": \"email\", \"endpoint\": \"support@acme-shop.example\","
           " \"sender\": {\"kind\": \"email\", \"address\": \"Ana.Souza@Example.com\"},"
           " \"external_id\": \"<CAF=ana-1@mail.example.com>\","
           " \"content\": {\"type\": \"text\", \"body\": \"Attaching the receipt as well. Refund or replacement is fine.\"},"
           " \"thread\": {\"subject\": \"Broken lamp, order #1042\"}}",
           &mail_customer, &mail_conversation);

    int same = strcmp(customer.text, wa_customer.text) == 0 && strcmp(customer.text, mail_customer.text) == 0 &&
               strcmp(conversation.text, mail_conversation.text) == 0;
    printf("one story -> %s\n", same ? "yes" : "NO");

    /* What the next agent sees, whatever channel they answer on, and who handles it. */
    char *context = NULL;
    check(tp_conversation_context(engine, mail_conversation.text, NULL, &context), "tp_conversation_context");
    const char *counts = strstr(context, "\"counts\":");
    printf("context   -> %lld in / %lld out over %lld conversation(s)\n", counts ? json_number(counts, "inbound") : -1,
           counts ? json_number(counts, "outbound") : -1, counts ? json_number(counts, "conversations") : -1);
    char handler_kind[16] = "none", handler_id[160] = "";
    const char *handler = strstr(context, "\"handler\":{"); /* the focus conversation's handler */
    if (handler != NULL) {
        json_string(handler, "kind", handler_kind, sizeof handler_kind);
        json_string(handler, "id", handler_id, sizeof handler_id);
    }
    printf("handler   -> %s %s\n", handler_kind, handler_id);
    printf("context json: %s\n", context);
    check(tp_string_free(context), "tp_string_free");

    /* Bruno is done: the work leaves routing. */
    routing("complete", tp_work_complete(engine, conversation.text, &events), &events);

    /* Business hours (Sao Paulo time): work that nobody takes while support is closed becomes a
       call back. The idle rule puts agents "away" after 15 minutes without activity; the host
       reports activity the router does not see (typing, a heartbeat). */
    routing("calendars",
            tp_calendars_set(engine,
                             "[{\"name\": \"office\", \"time_zone\": \"-03:00\","
                             "  \"weekly\": [{\"days\": [\"Mon-Fri\"], \"start\": \"08:00\", \"end\": \"18:00\"},"
                             "              {\"days\": [\"Sat\"], \"start\": \"09:00\", \"end\": \"13:00\"}]}]",
                             &events),
            &events);
    routing("hours",
            tp_queue_upsert(engine,
                            "{\"id\": \"support\", \"offer\": {\"offer\": true, \"expires_after\": 120},"
                            " \"hours\": {\"schedule\": \"office\", \"action\": \"callback\"}}",
                            &events),
            &events);
    routing("idle", tp_idle_policy_set(engine, "{\"after\": 900, \"status\": \"away\"}", &events), &events);
    routing("activity", tp_agent_activity(engine, "agent.bruno", &events), &events);

    /* Timers (offer expiry, queue hours closing, idle agents, ...) fire on tp_routing_tick. */
    routing("tick", tp_routing_tick(engine, &events), &events);

    /* Poll the event outbox, five at a time. */
    uint64_t after = 0;
    int total = 0;
    printf("events    ->");
    for (;;) {
        char *page = NULL;
        check(tp_events_after(engine, after, 5, &page), "tp_events_after");
        int in_page = 0;
        const char *cursor = page;
        char type[64];
        while ((cursor = strstr(cursor, "\"type\":\"")) != NULL) {
            if (json_string(cursor, "type", type, sizeof type)) {
                printf(" %s", type);
            }
            cursor += 8;
            in_page++;
        }
        long long next = json_number(page, "next_after");
        check(tp_string_free(page), "tp_string_free");
        if (in_page == 0 || next < 0) {
            break;
        }
        total += in_page;
        after = (uint64_t)next;
    }
    printf("\nevents    -> %d in total\n", total);

    /* Bots and humans: a new customer on Telegram gets the FAQ bot first. */
    Id tg_customer, tg_conversation;
    ingest(engine, "telegram",
           "{\"channel\": \"telegram\", \"endpoint\": \"tg-acme-bot\","
           " \"sender\": {\"kind\": \"platform\", \"scope\": \"tg-acme-bot\", \"id\": \"518804\"},"
           " \"external_id\": \"tg-518804-1\","
           " \"content\": {\"type\": \"text\", \"body\": \"I want to send back order #1077\"}}",
           &tg_customer, &tg_conversation);

    /* The bot finds out it is a return and passes the chat on with what it learned: the
       "returns" rule reads the finding, and Bruno (back from his break) gets it. */
    char *decision = NULL;
    routing("handoff",
            tp_handoff(engine, tg_conversation.text, "{\"intent\": \"return\", \"order\": \"1077\"}", "pass",
                       &decision),
            &decision);
    print_handler(engine, "human", &tg_conversation);

    /* Bruno arranges the return and hands the chat back to the bot, which asks for a rating. */
    routing("returned", tp_return_to_bot(engine, tg_conversation.text, "bot.faq", "{\"resolved\": true}", &events),
            &events);
    print_handler(engine, "bot", &tg_conversation);

    /* The bot has its rating: the host resolves the chat. A resolved conversation leaves
       routing: the bot's work completes (its capacity frees for the next chat) and the
       conversation has no handler; the router's events are in the event log. */
    uint64_t cursor = log_end(engine, after);
    char *resolved = NULL;
    check(tp_conversation_update(engine, tg_conversation.text, "{\"status\": \"resolved\", \"add_tags\": [\"return\"]}",
                                 &resolved),
          "tp_conversation_update");
    char resolved_status[32] = "?";
    json_string(resolved, "status", resolved_status, sizeof resolved_status); /* {"status":{"status":"resolved"}} */
    printf("resolved  -> %s, handler %s\n", resolved_status,
           strstr(resolved, "\"handler\":null") != NULL ? "none" : "set");
    check(tp_string_free(resolved), "tp_string_free");
    print_routing_log(engine, "left", cursor);
    char *stats = NULL;
    check(tp_queue_stats(engine, "support", &stats), "tp_queue_stats");
    printf("stats     -> support: %lld waiting\n", json_number(stats, "waiting"));
    check(tp_string_free(stats), "tp_string_free");

    /* GDPR: Ana asks for everything the shop holds about her, then to be forgotten. The export
       is what the erasure removes; afterwards every call naming her says so. */
    char *export = NULL;
    check(tp_customer_export(engine, customer.text, &export), "tp_customer_export");
    /* Each identity has a "raw_address", each conversation a "reply_token", each message a
       "direction". */
    printf("export    -> %d identities, %d conversation(s), %d messages\n", occurrences(export, "\"raw_address\":"),
           occurrences(export, "\"reply_token\":"), occurrences(export, "\"direction\":"));
    check(tp_string_free(export), "tp_string_free");
    char *report = NULL;
    check(tp_customer_erase(engine, customer.text, &report), "tp_customer_erase");
    printf("erased    -> %lld identities, %lld conversation(s), %lld messages\n", json_number(report, "identities"),
           json_number(report, "conversations"), json_number(report, "messages"));
    check(tp_string_free(report), "tp_string_free");
    char *gone = NULL;
    status = tp_customer_context(engine, customer.text, NULL, &gone);
    printf("forgotten -> %s: %s (result %s)\n", tp_status_name(status), tp_last_error(), gone == NULL ? "NULL" : "set");
    if (gone != NULL) {
        check(tp_string_free(gone), "tp_string_free");
    }

    /* Errors are status codes with an explanation, never crashes. */
    char *missing = NULL;
    status = tp_record_outbound(engine, "00000000-0000-7000-8000-000000000000",
                                "{\"author\": {\"kind\": \"agent\", \"id\": \"agent.bruno\"},"
                                " \"content\": {\"type\": \"text\", \"body\": \"Hello?\"}}",
                                &missing);
    printf("error     -> %s: %s (result %s)\n", tp_status_name(status), tp_last_error(),
           missing == NULL ? "NULL" : "set");
    if (missing != NULL) {
        check(tp_string_free(missing), "tp_string_free");
    }

    check(tp_engine_free(engine), "tp_engine_free");
    status = tp_engine_free(engine);
    printf("freed     -> again: %s\n", tp_status_name(status));
    return same ? 0 : 1;
}
