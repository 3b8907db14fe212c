/*
 * The cross-channel story of examples/quickstart.rs, from C: a customer starts on web chat, the
 * shop links her WhatsApp number and email, she continues on WhatsApp, then writes an email.
 * One customer, one conversation history, one context.
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

int main(void) {
    printf("touchpoint %s\n", tp_version());

    /* One engine per tenant; continue open conversations across channels for up to 3 days. */
    TpEngine *engine = NULL;
    check(tp_engine_new("{\"tenant\": \"acme-shop\", \"cross_channel_window_hours\": 72}", &engine),
          "tp_engine_new");

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
    Id again_customer;
    json_string(again, "customer", again_customer.text, sizeof again_customer.text);
    printf("retry     -> duplicate %s, customer %s\n", strstr(again, "\"duplicate\":true") ? "true" : "false",
           again_customer.text);
    check(tp_string_free(again), "tp_string_free");

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
    Id reply_id;
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

    /* What the next agent sees, whatever channel they answer on. */
    char *context = NULL;
    check(tp_conversation_context(engine, mail_conversation.text, NULL, &context), "tp_conversation_context");
    const char *counts = strstr(context, "\"counts\":");
    printf("context   -> %lld in / %lld out over %lld conversation(s)\n", counts ? json_number(counts, "inbound") : -1,
           counts ? json_number(counts, "outbound") : -1, counts ? json_number(counts, "conversations") : -1);
    printf("context json: %s\n", context);
    check(tp_string_free(context), "tp_string_free");

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

    /* Errors are status codes with an explanation, never crashes. */
    char *missing = NULL;
    TpStatus status = tp_record_outbound(engine, "00000000-0000-7000-8000-000000000000",
                                         "{\"author\": {\"kind\": \"agent\", \"id\": \"agent.bruno\"},"
                                         " \"content\": {\"type\": \"text\", \"body\": \"Hello?\"}}",
                                         &missing);
    printf("error     -> %s: %s (result %s)\n", tp_status_name(status), tp_last_error(),
           missing == NULL ? "NULL" : "set");

    check(tp_engine_free(engine), "tp_engine_free");
    status = tp_engine_free(engine);
    printf("freed     -> again: %s\n", tp_status_name(status));
    return same ? 0 : 1;
}
