/*
 * MQTT 5 enhanced authentication through the C API, against the scripted broker of
 * tests/c_programs.rs, which plays the broker's side of each step below in the same order.
 * Usage: auth <port of the scripted broker> [loop]
 * With "loop" the clients run on an mqttc_loop that this thread runs (its token waits included),
 * so the authentication callback runs on this thread; otherwise on the client's callback thread.
 *
 * The callback answers each challenge with "re:" and the challenge's data, and ends the exchange
 * when the data is "fail-me". Prints one "ok ..." line per step, then "auth: ok".
 */
#define _GNU_SOURCE /* pthread_getname_np */
#include "check.h"
#include "clock.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#define METHOD "SCRAM-TEST"

static mqttc_loop *lp;
static atomic_int calls, connecting_calls, wrong_challenges, synced, losts;
static _Atomic mqttc_status lost_reason;
static char callback_thread[32];

static bool on_auth(mqttc_client *c, const mqttc_auth_challenge *ch, mqttc_properties *reply, void *u) {
    (void)c;
    (void)u;
    calls++;
    if (ch->connecting)
        connecting_calls++;
    pthread_getname_np(pthread_self(), callback_thread, sizeof callback_thread);
    /* The data is the one in the AUTH's properties too. */
    const uint8_t *data = NULL;
    size_t len = 0;
    mqttc_status got = mqttc_properties_get_binary(ch->properties, MQTTC_PROP_AUTHENTICATION_DATA, &data, &len);
    if (strcmp(ch->method, METHOD) != 0 || got != MQTTC_OK || len != ch->data_len || memcmp(data, ch->data, len) != 0)
        wrong_challenges++;
    if (ch->data_len == 7 && memcmp(ch->data, "fail-me", 7) == 0)
        return false;
    /* On the stack: the library copies the reply when it is set. */
    uint8_t answer[64] = "re:";
    if (ch->data_len > sizeof answer - 3)
        return false;
    memcpy(answer + 3, ch->data, ch->data_len);
    return mqttc_properties_set_binary(reply, MQTTC_PROP_AUTHENTICATION_DATA, answer, 3 + ch->data_len) == MQTTC_OK;
}

static void on_sync(mqttc_client *c, const mqttc_message *m, void *u) {
    (void)c;
    (void)m;
    (void)u;
    synced++;
}

static void on_connection(mqttc_client *c, const mqttc_connection_event *ev, void *u) {
    (void)c;
    (void)u;
    if (ev->change == MQTTC_CONNECTION_LOST) {
        lost_reason = ev->reason;
        losts++;
        printf("lost: %s\n", ev->detail);
    }
}

/* Waits up to 10 s for `*counter` to reach `want`, running the loop meanwhile if there is one. */
static void wait_for(atomic_int *counter, int want, const char *what) {
    long deadline = now_ms() + 10000;
    while (*counter < want) {
        if (now_ms() > deadline)
            FAIL("no %s within 10 s", what);
        if (lp)
            mqttc_loop_run(lp, 50);
        else
            sleep_ms(5);
    }
}

static mqttc_client *make_client(uint16_t port) {
    mqttc_properties *props = NULL;
    CHECK(mqttc_properties_new(&props));
    CHECK(mqttc_properties_set_string(props, MQTTC_PROP_AUTHENTICATION_METHOD, METHOD));
    CHECK(mqttc_properties_set_binary(props, MQTTC_PROP_AUTHENTICATION_DATA, (const uint8_t *)"client-first", 12));
    mqttc_options o;
    mqttc_options_init(&o);
    o.protocol_version = 5;
    o.client_id = "auth-test";
    o.connect_properties = props;
    o.keep_alive = 0; /* no PINGREQ in the script */
    o.auto_reconnect = false;
    o.run_loop = lp;
    mqttc_client *c = NULL;
    CHECK(mqttc_client_new("127.0.0.1", port, &o, &c));
    mqttc_properties_free(props);
    CHECK(mqttc_client_set_on_auth(c, on_auth, NULL));
    CHECK(mqttc_client_set_on_connection(c, on_connection, NULL));
    return c;
}

/* The Authentication Data in the properties of the acknowledgement that completed `t`. */
static void expect_final_data(mqttc_client *c, mqttc_token t, const char *want) {
    mqttc_properties *props = NULL;
    CHECK(mqttc_token_properties(c, t, &props));
    const uint8_t *data = NULL;
    size_t len = 0;
    CHECK(mqttc_properties_get_binary(props, MQTTC_PROP_AUTHENTICATION_DATA, &data, &len));
    if (len != strlen(want) || memcmp(data, want, len) != 0)
        FAIL("final authentication data %.*s, want %s", (int)len, (const char *)data, want);
    mqttc_properties_free(props);
}

/* A connect that must fail with `want`; its token in `*t`. */
static mqttc_client *refused(uint16_t port, mqttc_status want, mqttc_token *t) {
    mqttc_client *c = make_client(port);
    CHECK(mqttc_connect(c, t));
    mqttc_status got = mqttc_token_wait(c, *t, 10000);
    if (got != want)
        FAIL("connect -> %s, want %s", mqttc_status_str(got), mqttc_status_str(want));
    return c;
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    uint16_t port = (uint16_t)atoi(argv[1]);
    char main_thread[32];
    pthread_getname_np(pthread_self(), main_thread, sizeof main_thread);
    if (argc > 2 && strcmp(argv[2], "loop") == 0)
        CHECK(mqttc_loop_new(&lp));
    const char *want_thread = lp ? main_thread : "mqttc-callbacks";

    /* A connect in three steps: two challenges answered, then the CONNACK with the last word. */
    mqttc_client *c = make_client(port);
    mqttc_token t = 0;
    CHECK(mqttc_connect(c, &t));
    CHECK(mqttc_token_wait(c, t, 10000));
    if (calls != 2 || connecting_calls != 2 || wrong_challenges)
        FAIL("%d challenges (%d while connecting, %d wrong), want 2", calls, connecting_calls, wrong_challenges);
    if (strcmp(callback_thread, want_thread) != 0)
        FAIL("the callback ran on %s, want %s", callback_thread, want_thread);
    expect_final_data(c, t, "welcome");
    printf("ok connect after two challenges, answered on %s\n", callback_thread);

    /* The broker re-authenticates the live connection; a message behind its success says it ended. */
    CHECK(mqttc_subscribe(c, "sync/#", 0, on_sync, NULL, &t));
    CHECK(mqttc_token_wait(c, t, 10000));
    wait_for(&synced, 1, "message after the broker's re-authentication");
    if (calls != 3 || connecting_calls != 2 || wrong_challenges)
        FAIL("%d challenges (%d while connecting, %d wrong), want 3", calls, connecting_calls, wrong_challenges);
    printf("ok re-authentication the broker started\n");

    /* The client re-authenticates: AUTH 0x19 with new data, a challenge, the broker's success. */
    CHECK(mqttc_reauthenticate(c, (const uint8_t *)"token-2", 7, &t));
    CHECK(mqttc_token_wait(c, t, 10000));
    if (calls != 4 || wrong_challenges)
        FAIL("%d challenges (%d wrong), want 4", calls, wrong_challenges);
    expect_final_data(c, t, "renewed");
    printf("ok re-authentication the client started\n");

    /* An AUTH naming another method: a protocol error that ends the connection, not a crash. */
    wait_for(&losts, 1, "connection loss after an AUTH with another method");
    if (lost_reason != MQTTC_ERR_PROTOCOL)
        FAIL("lost with %s, want MQTTC_ERR_PROTOCOL", mqttc_status_str(lost_reason));
    mqttc_status got = mqttc_reauthenticate(c, NULL, 0, &t);
    if (got != MQTTC_ERR_NOT_CONNECTED)
        FAIL("reauthenticate without a connection -> %s", mqttc_status_str(got));
    mqttc_client_free(c);
    printf("ok AUTH with another method is a protocol error\n");

    /* The broker refuses: after a challenge with 0x87, at once with 0x8C. */
    mqttc_client_free(refused(port, MQTTC_ERR_REFUSED_NOT_AUTHORIZED, &t));
    c = refused(port, MQTTC_ERR_REFUSED, &t);
    uint8_t code = 0;
    size_t n = 0;
    CHECK(mqttc_token_codes(c, t, &code, 1, &n));
    if (n != 1 || code != 0x8C)
        FAIL("%zu codes, the first %#x, want 0x8c", n, code);
    mqttc_client_free(c);
    printf("ok refusals 0x87 and 0x8c\n");

    /* The callback ends the exchange. */
    mqttc_client_free(refused(port, MQTTC_ERR_AUTH_FAILED, &t));
    if (wrong_challenges)
        FAIL("%d wrong challenges", wrong_challenges);
    printf("ok the callback ends the exchange\n");

    if (lp)
        mqttc_loop_free(lp);
    printf("auth: ok\n");
    return 0;
}
