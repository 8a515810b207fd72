/*
 * MQTT 5 through the C API against a real mosquitto: properties round trip between two clients,
 * the request/response helper, CONNACK and UNSUBACK properties on tokens, subscription options,
 * subscription identifiers routing overlapping subscriptions, a shared subscription split across
 * two clients, a will sent by a DISCONNECT with reason 0x04 carrying its properties, and argument
 * checks.
 * Usage: mqtt5 <port of a running broker>
 */
#include "check.h"
#include "inbox.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint16_t port;

static void settle(void) {
    struct timespec t = {0, 300 * 1000 * 1000};
    nanosleep(&t, NULL);
}

static void wait_ok(mqttc_client *c, mqttc_token t, const char *what) {
    mqttc_status st = mqttc_token_wait(c, t, 10000);
    if (st != MQTTC_OK)
        FAIL("%s: %s", what, mqttc_status_str(st));
}

static mqttc_client *client_v5(const char *id, const mqttc_options *base, mqttc_token *connect) {
    mqttc_options o;
    if (base)
        o = *base;
    else
        mqttc_options_init(&o);
    o.protocol_version = 5;
    o.client_id = id;
    mqttc_client *c = NULL;
    CHECK(mqttc_client_new("127.0.0.1", port, &o, &c));
    mqttc_token t = 0;
    CHECK(mqttc_connect(c, &t));
    wait_ok(c, t, id);
    if (connect)
        *connect = t;
    return c;
}

static void subscribe(mqttc_client *c, const char *filter, int qos, int options, inbox *b) {
    mqttc_subscription s = MQTTC_SUBSCRIPTION_INIT(filter, qos, on_message, b, NULL, options);
    mqttc_token t = 0;
    CHECK(mqttc_subscribe_v5(c, &s, 1, NULL, &t));
    wait_ok(c, t, filter);
}

static void publish(mqttc_client *c, const char *topic, const char *payload, int qos, bool retain,
                    const mqttc_properties *p) {
    mqttc_token t = 0;
    CHECK(mqttc_publish_v5(c, topic, payload, strlen(payload), qos, retain, p, &t));
    wait_ok(c, t, topic);
}

static const char *get_string(const mqttc_properties *p, int id) {
    const char *s = NULL;
    mqttc_status st = mqttc_properties_get_string(p, id, &s);
    return st == MQTTC_OK ? s : NULL;
}

static void properties_round_trip(mqttc_client *a, mqttc_client *b) {
    static inbox in;
    inbox_init(&in);
    subscribe(a, "p5/rt", 1, 0, &in);
    mqttc_properties *p = NULL;
    CHECK(mqttc_properties_new(&p));
    CHECK(mqttc_properties_set_string(p, MQTTC_PROP_CONTENT_TYPE, "text/plain"));
    CHECK(mqttc_properties_set_int(p, MQTTC_PROP_PAYLOAD_FORMAT_INDICATOR, 1));
    CHECK(mqttc_properties_set_int(p, MQTTC_PROP_MESSAGE_EXPIRY_INTERVAL, 60));
    CHECK(mqttc_properties_set_string(p, MQTTC_PROP_RESPONSE_TOPIC, "p5/reply"));
    const uint8_t corr[] = {1, 2, 0, 3};
    CHECK(mqttc_properties_set_binary(p, MQTTC_PROP_CORRELATION_DATA, corr, sizeof corr));
    CHECK(mqttc_properties_add_user(p, "a", "1"));
    CHECK(mqttc_properties_add_user(p, "a", "2"));
    CHECK(mqttc_properties_add_user(p, "b", "x"));
    /* Setting again replaces: only the last content type goes out. */
    CHECK(mqttc_properties_set_string(p, MQTTC_PROP_CONTENT_TYPE, "application/json"));
    publish(b, "p5/rt", "{}", 1, false, p);
    mqttc_properties_free(p);

    EXPECT(inbox_wait(&in, 1) == 1, "round trip: no message");
    const mqttc_properties *got = in.msgs[0]->properties;
    EXPECT(got, "round trip: NULL properties");
    const char *ct = get_string(got, MQTTC_PROP_CONTENT_TYPE);
    EXPECT(ct && strcmp(ct, "application/json") == 0, "content type %s", ct ? ct : "(none)");
    const char *rt = get_string(got, MQTTC_PROP_RESPONSE_TOPIC);
    EXPECT(rt && strcmp(rt, "p5/reply") == 0, "response topic %s", rt ? rt : "(none)");
    uint32_t v = 0;
    CHECK(mqttc_properties_get_int(got, MQTTC_PROP_PAYLOAD_FORMAT_INDICATOR, &v));
    EXPECT(v == 1, "payload format %u", v);
    CHECK(mqttc_properties_get_int(got, MQTTC_PROP_MESSAGE_EXPIRY_INTERVAL, &v));
    /* The broker forwards what is left of the interval. */
    EXPECT(v >= 1 && v <= 60, "message expiry %u", v);
    const uint8_t *data = NULL;
    size_t len = 0;
    CHECK(mqttc_properties_get_binary(got, MQTTC_PROP_CORRELATION_DATA, &data, &len));
    EXPECT(len == sizeof corr && memcmp(data, corr, len) == 0, "correlation data of %zu bytes", len);
    /* User properties: repeated names kept, in order. */
    const char *users[3][2] = {{"a", "1"}, {"a", "2"}, {"b", "x"}};
    int seen = 0;
    size_t count = 0;
    CHECK(mqttc_properties_count(got, &count));
    for (size_t i = 0; i < count; i++) {
        mqttc_property e;
        e.struct_size = sizeof e;
        CHECK(mqttc_properties_at(got, i, &e));
        if (e.id != MQTTC_PROP_USER_PROPERTY)
            continue;
        EXPECT(seen < 3 && strcmp(e.name, users[seen][0]) == 0 && strcmp(e.string, users[seen][1]) == 0,
               "user property %d is %s=%s", seen, e.name, e.string);
        seen++;
    }
    EXPECT(seen == 3, "%d user properties", seen);
    mqttc_property past;
    past.struct_size = sizeof past;
    EXPECT(mqttc_properties_at(got, count, &past) == MQTTC_ERR_NOT_FOUND, "index past the end");
    past.struct_size = 0;
    EXPECT(mqttc_properties_at(got, 0, &past) == MQTTC_ERR_STRUCT_SIZE, "property struct_size 0");
    past.struct_size = sizeof past + 8;
    EXPECT(mqttc_properties_at(got, 0, &past) == MQTTC_ERR_STRUCT_SIZE, "property struct_size too large");
    const char *first_a = NULL;
    CHECK(mqttc_properties_get_user(got, "a", &first_a));
    EXPECT(strcmp(first_a, "1") == 0, "first a is %s", first_a);
    EXPECT(mqttc_properties_get_user(got, "zz", &first_a) == MQTTC_ERR_NOT_FOUND, "absent user property");
    EXPECT(mqttc_properties_get_string(got, MQTTC_PROP_REASON_STRING, &first_a) == MQTTC_ERR_NOT_FOUND,
           "absent string property");
    /* A copy outlives the message. */
    mqttc_properties *kept = NULL;
    CHECK(mqttc_properties_copy(got, &kept));
    inbox_clear(&in);
    const char *still = get_string(kept, MQTTC_PROP_CONTENT_TYPE);
    EXPECT(still && strcmp(still, "application/json") == 0, "copied list lost its content type");
    mqttc_properties_free(kept);
    printf("ok properties round trip: content type, payload format, expiry %u, correlation data, "
           "3 user properties\n",
           v);
}

/* The responder: answers every request with "pong" through the helper. */
static atomic_int respond_status = 1;

static void on_request(mqttc_client *c, const mqttc_message *m, void *userdata) {
    (void)userdata;
    atomic_store(&respond_status, mqttc_respond(c, m, "pong", 4, 1, NULL, NULL));
}

static void request_response(mqttc_client *a, mqttc_client *b) {
    mqttc_subscription s = MQTTC_SUBSCRIPTION_INIT("p5/req", 1, on_request, NULL, NULL, 0);
    mqttc_token t = 0;
    CHECK(mqttc_subscribe_v5(a, &s, 1, NULL, &t));
    wait_ok(a, t, "subscribe p5/req");
    static inbox replies;
    inbox_init(&replies);
    subscribe(b, "p5/reply/b", 1, 0, &replies);
    mqttc_properties *p = NULL;
    CHECK(mqttc_properties_new(&p));
    CHECK(mqttc_properties_set_string(p, MQTTC_PROP_RESPONSE_TOPIC, "p5/reply/b"));
    CHECK(mqttc_properties_set_binary(p, MQTTC_PROP_CORRELATION_DATA, "id-42", 5));
    publish(b, "p5/req", "ping", 1, false, p);
    mqttc_properties_free(p);
    EXPECT(inbox_wait(&replies, 1) == 1, "no reply (mqttc_respond returned %s)",
           mqttc_status_str(atomic_load(&respond_status)));
    mqttc_message *r = replies.msgs[0];
    EXPECT(r->payload_len == 4 && memcmp(r->payload, "pong", 4) == 0, "reply payload");
    const uint8_t *data = NULL;
    size_t len = 0;
    CHECK(mqttc_properties_get_binary(r->properties, MQTTC_PROP_CORRELATION_DATA, &data, &len));
    EXPECT(len == 5 && memcmp(data, "id-42", 5) == 0, "reply correlation data");
    EXPECT(atomic_load(&respond_status) == MQTTC_OK, "mqttc_respond");
    inbox_clear(&replies);
    printf("ok request/response: mqttc_respond answered on the response topic with the correlation "
           "data\n");
}

static void token_properties(void) {
    /* An empty client id: the broker assigns one and says so in CONNACK. */
    mqttc_token t = 0;
    mqttc_client *c = client_v5("", NULL, &t);
    mqttc_properties *p = NULL;
    CHECK(mqttc_token_properties(c, t, &p));
    const char *assigned = get_string(p, MQTTC_PROP_ASSIGNED_CLIENT_IDENTIFIER);
    EXPECT(assigned && *assigned, "no assigned client identifier in CONNACK");
    printf("ok CONNACK properties on the connect token: assigned client id %s\n", assigned);
    mqttc_properties_free(p);

    /* UNSUBACK for a filter never subscribed: code 0x11, the token still succeeds. */
    mqttc_properties *u = NULL;
    CHECK(mqttc_properties_new(&u));
    CHECK(mqttc_properties_add_user(u, "who", "test"));
    const char *filters[] = {"p5/never"};
    CHECK(mqttc_unsubscribe_v5(c, filters, 1, u, &t));
    mqttc_properties_free(u);
    wait_ok(c, t, "unsubscribe");
    uint8_t code = 0;
    size_t n = 0;
    CHECK(mqttc_token_codes(c, t, &code, 1, &n));
    EXPECT(n == 1 && code == 0x11, "UNSUBACK code %#x (%zu codes)", code, n);
    CHECK(mqttc_token_properties(c, t, &p));
    mqttc_properties_free(p);
    EXPECT(mqttc_token_properties(c, 987654, &p) == MQTTC_ERR_TOKEN_UNKNOWN, "unknown token");
    mqttc_client_free(c);
    printf("ok UNSUBACK reason code 0x11 and properties on the unsubscribe token\n");
}

static void subscription_options(mqttc_client *a, mqttc_client *b) {
    static inbox nl, never, rap_on, rap_off;
    inbox_init(&nl);
    inbox_init(&never);
    inbox_init(&rap_on);
    inbox_init(&rap_off);
    /* No Local: a's own message does not come back to it; b's does. */
    subscribe(a, "p5/nl", 1, MQTTC_SUB_NO_LOCAL, &nl);
    publish(a, "p5/nl", "own", 1, false, NULL);
    publish(b, "p5/nl", "other", 1, false, NULL);
    EXPECT(inbox_wait(&nl, 1) == 1, "no message under No Local");
    settle();
    int got = inbox_size(&nl);
    EXPECT(got == 1 && memcmp(nl.msgs[0]->payload, "other", 5) == 0, "No Local: %d messages", got);

    /* Retain handling "never": the retained message is not sent at subscribe time. */
    publish(b, "p5/ret", "old", 1, true, NULL);
    subscribe(a, "p5/ret", 1, MQTTC_SUB_RETAIN_NEVER, &never);
    publish(b, "p5/ret", "live", 1, false, NULL);
    EXPECT(inbox_wait(&never, 1) == 1, "no live message under retain handling 2");
    settle();
    got = inbox_size(&never);
    EXPECT(got == 1 && memcmp(never.msgs[0]->payload, "live", 4) == 0,
           "retain handling 2: %d messages, first %.*s", got, (int)never.msgs[0]->payload_len,
           (const char *)never.msgs[0]->payload);
    publish(b, "p5/ret", "", 1, true, NULL); /* clear the retained message */

    /* Retain As Published keeps the flag on a live retained publish; without it the broker clears it. */
    subscribe(a, "p5/rap/on", 1, MQTTC_SUB_RETAIN_AS_PUBLISHED, &rap_on);
    subscribe(a, "p5/rap/off", 1, 0, &rap_off);
    publish(b, "p5/rap/on", "r", 1, true, NULL);
    publish(b, "p5/rap/off", "r", 1, true, NULL);
    EXPECT(inbox_wait(&rap_on, 1) == 1 && inbox_wait(&rap_off, 1) == 1, "retain as published: no messages");
    EXPECT(rap_on.msgs[0]->retain && !rap_off.msgs[0]->retain, "retain flags %d (on) and %d (off)",
           rap_on.msgs[0]->retain, rap_off.msgs[0]->retain);
    publish(b, "p5/rap/on", "", 1, true, NULL);
    publish(b, "p5/rap/off", "", 1, true, NULL);
    printf("ok subscription options: No Local, retain handling 2, Retain As Published\n");
    inbox_clear(&nl);
    inbox_clear(&never);
    inbox_clear(&rap_on);
    inbox_clear(&rap_off);
}

static void subscription_identifiers(mqttc_client *a, mqttc_client *b) {
    static inbox all, one;
    inbox_init(&all);
    inbox_init(&one);
    subscribe(a, "p5/ov/#", 1, 0, &all);
    subscribe(a, "p5/ov/+", 1, 0, &one);
    publish(b, "p5/ov/x", "m", 1, false, NULL);
    EXPECT(inbox_wait(&all, 1) >= 1 && inbox_wait(&one, 1) >= 1, "overlapping: a subscription got nothing");
    settle();
    /* mosquitto sends a copy per subscription; each copy names its subscription, so each callback
     * runs once (matching the topic alone would call both callbacks for both copies). */
    int got_all = inbox_size(&all), got_one = inbox_size(&one);
    EXPECT(got_all == 1 && got_one == 1, "overlapping: %d and %d deliveries", got_all, got_one);
    uint32_t id_all = 0, id_one = 0;
    CHECK(mqttc_properties_get_int(all.msgs[0]->properties, MQTTC_PROP_SUBSCRIPTION_IDENTIFIER, &id_all));
    CHECK(mqttc_properties_get_int(one.msgs[0]->properties, MQTTC_PROP_SUBSCRIPTION_IDENTIFIER, &id_one));
    EXPECT(id_all != id_one, "both copies carry identifier %u", id_all);
    printf("ok subscription identifiers: overlapping filters each called once (identifiers %u and %u)\n",
           id_all, id_one);
    inbox_clear(&all);
    inbox_clear(&one);
}

static void shared_subscription(mqttc_client *a, mqttc_client *b) {
    mqttc_client *c = client_v5("p5-c", NULL, NULL);
    static inbox in_a, in_c;
    inbox_init(&in_a);
    inbox_init(&in_c);
    subscribe(a, "$share/grp/p5/sh", 1, 0, &in_a);
    subscribe(c, "$share/grp/p5/sh", 1, 0, &in_c);
    enum { N = 100 };
    mqttc_token last = 0;
    for (int i = 0; i < N; i++)
        CHECK(mqttc_publish(b, "p5/sh", "s", 1, 1, false, &last));
    wait_ok(b, last, "shared publishes");
    for (int i = 0; i < 100 && inbox_size(&in_a) + inbox_size(&in_c) < N; i++)
        settle();
    settle();
    int got_a = inbox_size(&in_a), got_c = inbox_size(&in_c);
    EXPECT(got_a + got_c == N, "shared: %d + %d messages for %d", got_a, got_c, N);
    EXPECT(got_a > 0 && got_c > 0, "shared: one member got all (%d, %d)", got_a, got_c);
    EXPECT(strcmp(in_a.msgs[0]->topic, "p5/sh") == 0, "shared message topic %s", in_a.msgs[0]->topic);
    const char *filter = "$share/grp/p5/sh";
    mqttc_token t = 0;
    CHECK(mqttc_unsubscribe(a, filter, &t));
    wait_ok(a, t, "unsubscribe shared");
    printf("ok shared subscription: %d messages split %d / %d between two clients\n", N, got_a, got_c);
    mqttc_client_free(c);
    inbox_clear(&in_a);
    inbox_clear(&in_c);
}

static void will_by_disconnect_reason(mqttc_client *a) {
    static inbox wills;
    inbox_init(&wills);
    subscribe(a, "p5/will", 1, 0, &wills);
    mqttc_options o;
    mqttc_options_init(&o);
    o.will_topic = "p5/will";
    o.will_payload = (const uint8_t *)"gone";
    o.will_payload_len = 4;
    o.will_qos = 1;
    mqttc_properties *wp = NULL;
    CHECK(mqttc_properties_new(&wp));
    CHECK(mqttc_properties_add_user(wp, "why", "test"));
    CHECK(mqttc_properties_set_string(wp, MQTTC_PROP_CONTENT_TYPE, "text/plain"));
    o.will_properties = wp;
    mqttc_properties *cp = NULL;
    CHECK(mqttc_properties_new(&cp));
    CHECK(mqttc_properties_add_user(cp, "client", "w"));
    o.connect_properties = cp;
    mqttc_client *w = client_v5("p5-w", &o, NULL);
    /* The options' lists were copied: freeing them now changes nothing. */
    mqttc_properties_free(wp);
    mqttc_properties_free(cp);
    mqttc_token t = 0;
    CHECK(mqttc_disconnect_v5(w, 0x04, NULL, &t));
    wait_ok(w, t, "disconnect with will");
    EXPECT(inbox_wait(&wills, 1) == 1, "no will after DISCONNECT 0x04");
    const char *why = NULL;
    CHECK(mqttc_properties_get_user(wills.msgs[0]->properties, "why", &why));
    EXPECT(strcmp(why, "test") == 0, "will user property %s", why);
    const char *ct = get_string(wills.msgs[0]->properties, MQTTC_PROP_CONTENT_TYPE);
    EXPECT(ct && strcmp(ct, "text/plain") == 0, "will content type");
    mqttc_client_free(w);
    inbox_clear(&wills);
    printf("ok DISCONNECT 0x04 published the will with its properties\n");
}

static void argument_checks(mqttc_client *a) {
    mqttc_properties *p = NULL;
    CHECK(mqttc_properties_new(&p));
    EXPECT(mqttc_properties_set_int(p, MQTTC_PROP_CONTENT_TYPE, 1) == MQTTC_ERR_INVALID_ARGUMENT,
           "an int for a string property");
    EXPECT(mqttc_properties_set_int(p, MQTTC_PROP_PAYLOAD_FORMAT_INDICATOR, 2) == MQTTC_ERR_INVALID_ARGUMENT,
           "payload format 2");
    EXPECT(mqttc_properties_set_int(p, 0x7f, 1) == MQTTC_ERR_INVALID_ARGUMENT, "unknown identifier");
    EXPECT(mqttc_properties_set_string(p, MQTTC_PROP_CONTENT_TYPE, "\xff") == MQTTC_ERR_INVALID_UTF8,
           "invalid UTF-8");
    EXPECT(mqttc_properties_add_user(NULL, "a", "b") == MQTTC_ERR_NULL, "NULL list");
    CHECK(mqttc_properties_set_int(p, MQTTC_PROP_TOPIC_ALIAS, 1));
    EXPECT(mqttc_publish_v5(a, "p5/x", "", 0, 0, false, p, NULL) == MQTTC_ERR_INVALID_ARGUMENT,
           "a topic alias is the library's");
    CHECK(mqttc_properties_remove(p, MQTTC_PROP_TOPIC_ALIAS));
    CHECK(mqttc_properties_set_int(p, MQTTC_PROP_RECEIVE_MAXIMUM, 5));
    EXPECT(mqttc_publish_v5(a, "p5/x", "", 0, 0, false, p, NULL) == MQTTC_ERR_INVALID_ARGUMENT,
           "Receive Maximum in PUBLISH");
    mqttc_subscription shared_nl = MQTTC_SUBSCRIPTION_INIT("$share/g/p5/x", 0, on_message, NULL, NULL, MQTTC_SUB_NO_LOCAL);
    EXPECT(mqttc_subscribe_v5(a, &shared_nl, 1, NULL, NULL) == MQTTC_ERR_INVALID_ARGUMENT,
           "No Local on a shared subscription");
    mqttc_subscription both = MQTTC_SUBSCRIPTION_INIT("p5/x", 0, on_message, NULL, NULL, MQTTC_SUB_RETAIN_IF_NEW | MQTTC_SUB_RETAIN_NEVER);
    EXPECT(mqttc_subscribe_v5(a, &both, 1, NULL, NULL) == MQTTC_ERR_INVALID_ARGUMENT, "two retain handlings");
    mqttc_subscription bad_share = MQTTC_SUBSCRIPTION_INIT("$share/+/p5/x", 0, on_message, NULL, NULL, 0);
    EXPECT(mqttc_subscribe_v5(a, &bad_share, 1, NULL, NULL) == MQTTC_ERR_INVALID_FILTER, "a wildcard share name");
    EXPECT(mqttc_disconnect_v5(a, 0x10, NULL, NULL) == MQTTC_ERR_INVALID_ARGUMENT, "0x10 is no DISCONNECT code");

    /* MQTT 3.1.1: no properties, options or reason codes. */
    mqttc_client *v3 = NULL;
    CHECK(mqttc_client_new("127.0.0.1", port, NULL, &v3));
    CHECK(mqttc_properties_remove(p, MQTTC_PROP_RECEIVE_MAXIMUM));
    CHECK(mqttc_properties_add_user(p, "k", "v"));
    EXPECT(mqttc_publish_v5(v3, "p5/x", "", 0, 0, false, p, NULL) == MQTTC_ERR_NOT_SUPPORTED, "3.1.1 properties");
    mqttc_subscription nl = MQTTC_SUBSCRIPTION_INIT("p5/x", 0, on_message, NULL, NULL, MQTTC_SUB_NO_LOCAL);
    EXPECT(mqttc_subscribe_v5(v3, &nl, 1, NULL, NULL) == MQTTC_ERR_NOT_SUPPORTED, "3.1.1 options");
    EXPECT(mqttc_disconnect_v5(v3, 0x04, NULL, NULL) == MQTTC_ERR_NOT_SUPPORTED, "3.1.1 reason code");
    mqttc_options o;
    mqttc_options_init(&o);
    o.connect_properties = p;
    mqttc_client *none = NULL;
    EXPECT(mqttc_client_new("127.0.0.1", port, &o, &none) == MQTTC_ERR_NOT_SUPPORTED && !none,
           "3.1.1 connect properties");
    mqttc_client_free(v3);
    mqttc_properties_free(p);
    printf("ok argument checks: property kinds and ranges, packets' own properties, 3.1.1 refusals\n");
}

int main(int argc, char **argv) {
    if (argc != 2)
        FAIL("usage: mqtt5 <port>");
    port = (uint16_t)atoi(argv[1]);
    mqttc_client *a = client_v5("p5-a", NULL, NULL);
    mqttc_client *b = client_v5("p5-b", NULL, NULL);
    properties_round_trip(a, b);
    request_response(a, b);
    token_properties();
    subscription_options(a, b);
    subscription_identifiers(a, b);
    shared_subscription(a, b);
    will_by_disconnect_reason(a);
    argument_checks(a);
    mqttc_client_free(a);
    mqttc_client_free(b);
    inbox_clear_all();
    printf("mqtt5: ok\n");
    return 0;
}
