/*
 * ack_after_callback through the C API, against mosquitto: a persistent-session subscriber's QoS
 * 1/2 messages are acknowledged only once handled, in arrival order, so what a freed client had
 * not handled comes back to the next client with its id, and what it had handled does not.
 * Message 0 (QoS 1) is published and handled first; then messages 1..3 (QoS 2, 1, 2), which
 * mosquitto may forward in another order (a QoS 2 one after its PUBREL).
 * - Callback mode: the callback returns for "c0" at once, then holds the next message while the
 *   other two wait behind it, and the client is freed: c1..c3 come back, c0 does not.
 * - Event mode: the event of "e0" is freed at once; of the next three, the first is kept while the
 *   other two are freed (their acknowledgements wait for its own), then the client is freed, then
 *   the kept event: e1..e3 come back, e0 does not.
 * Usage: ack_after_callback <port of a running broker>
 */
#include "check.h"
#include "clock.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MESSAGES 4

static int port;

/* Payloads a callback received, as a bit per message number ("x<n>"), and how often. */
struct seen {
    atomic_int mask;
    atomic_int count;
};

static void note(struct seen *s, const mqttc_message *m) {
    if (m->payload_len == 2 && m->payload[1] >= '0' && m->payload[1] < '0' + MESSAGES)
        atomic_fetch_or(&s->mask, 1 << (m->payload[1] - '0'));
    atomic_fetch_add(&s->count, 1);
}

static int wait_mask(struct seen *s, int mask, long timeout_ms) {
    long deadline = now_ms() + timeout_ms;
    while ((atomic_load(&s->mask) & mask) != mask && now_ms() < deadline)
        sleep_ms(5);
    return (atomic_load(&s->mask) & mask) == mask;
}

static void wait_token(mqttc_client *c, mqttc_token t, const char *what) {
    mqttc_status st = mqttc_token_wait(c, t, 10000);
    EXPECT(st == MQTTC_OK, "%s: %s", what, mqttc_status_str(st));
}

/* A persistent-session client with `id` and ack_after_callback, subscribed to `topic` at QoS 2
 * with `cb` (NULL: event mode) and connected. The subscribe goes first, so the messages a session
 * delivers at once find the callback. */
static mqttc_client *subscriber(const char *id, const char *topic, mqttc_message_cb cb, void *userdata) {
    mqttc_options o;
    mqttc_options_init(&o);
    o.client_id = id;
    o.clean_session = false;
    o.event_mode = cb == NULL;
    o.ack_after_callback = true;
    mqttc_client *c = NULL;
    CHECK(mqttc_client_new("127.0.0.1", (uint16_t)port, &o, &c));
    mqttc_token sub = 0, conn = 0;
    CHECK(mqttc_subscribe(c, topic, 2, cb, userdata, &sub));
    CHECK(mqttc_connect(c, &conn));
    wait_token(c, conn, "connect");
    wait_token(c, sub, "subscribe");
    return c;
}

/* Publishes "<prefix><first>".."<prefix><last>" to `topic`, QoS 1 and 2 in turn (even numbers
 * QoS 1), each acknowledged by the broker. */
static void publish_range(const char *topic, char prefix, int first, int last) {
    mqttc_client *p = NULL;
    CHECK(mqttc_client_new("127.0.0.1", (uint16_t)port, NULL, &p));
    mqttc_token t = 0;
    CHECK(mqttc_connect(p, &t));
    wait_token(p, t, "publisher connect");
    mqttc_token tokens[MESSAGES];
    for (int i = first; i <= last; i++) {
        char payload[2] = {prefix, (char)('0' + i)};
        CHECK(mqttc_publish(p, topic, payload, sizeof payload, 1 + i % 2, false, &tokens[i]));
    }
    for (int i = first; i <= last; i++)
        wait_token(p, tokens[i], "publish");
    mqttc_client_free(p);
}

static void on_collect(mqttc_client *c, const mqttc_message *m, void *userdata) {
    (void)c;
    note(userdata, m);
}

/* A new client with `id` receives messages 1..3 again (at least once), and not message 0. */
static void next_client_gets_all_but_the_first(const char *id, const char *topic, const char *what) {
    static struct seen again;
    atomic_store(&again.mask, 0);
    atomic_store(&again.count, 0);
    mqttc_client *c = subscriber(id, topic, on_collect, &again);
    EXPECT(wait_mask(&again, 0xe, 10000), "%s: messages 1..3 came back (got mask 0x%x)", what,
           atomic_load(&again.mask));
    sleep_ms(300);
    EXPECT((atomic_load(&again.mask) & 1) == 0, "%s: message 0, handled, did not come back", what);
    mqttc_client_free(c);
    printf("ok %s: the unhandled messages came back (%d deliveries), the handled one did not\n",
           what, atomic_load(&again.count));
}

/* Callback mode: every message but "c0" is held in the callback until `release` is set. */
static struct seen first;
static atomic_bool release;

static void on_hold(mqttc_client *c, const mqttc_message *m, void *userdata) {
    (void)c;
    (void)userdata;
    note(&first, m);
    if (m->payload_len == 2 && m->payload[1] != '0') {
        long deadline = now_ms() + 10000;
        while (!atomic_load(&release) && now_ms() < deadline)
            sleep_ms(5);
    }
}

static void *release_soon(void *arg) {
    (void)arg;
    sleep_ms(100);
    atomic_store(&release, true);
    return NULL;
}

static void callback_mode(void) {
    const char *id = "c-ack-cb", *topic = "ack/c/cb";
    mqttc_client *c = subscriber(id, topic, on_hold, NULL);
    publish_range(topic, 'c', 0, 0);
    EXPECT(wait_mask(&first, 0x1, 10000), "c0 handled");
    sleep_ms(300); /* c0's acknowledgement goes */
    publish_range(topic, 'c', 1, 3);
    long deadline = now_ms() + 10000;
    while (atomic_load(&first.count) < 2 && now_ms() < deadline)
        sleep_ms(5);
    sleep_ms(300); /* the other two reach the client */
    EXPECT(atomic_load(&first.count) == 2, "one message in the callback, two waiting behind it");
    /* The free waits for the callback, which returns while the free is under way. */
    pthread_t releaser;
    EXPECT(pthread_create(&releaser, NULL, release_soon, NULL) == 0, "pthread_create");
    mqttc_client_free(c);
    pthread_join(releaser, NULL);
    next_client_gets_all_but_the_first(id, topic, "callback mode");
}

/* Event mode: the next MESSAGE event (the caller frees it), freeing the others on the way. */
static mqttc_event *next_message(mqttc_client *c) {
    long deadline = now_ms() + 10000;
    while (now_ms() < deadline) {
        mqttc_event *e = NULL;
        CHECK(mqttc_event_next(c, &e));
        if (e && e->kind == MQTTC_EVENT_MESSAGE)
            return e;
        if (e)
            mqttc_event_free(e);
        else
            sleep_ms(5);
    }
    FAIL("no message event within 10 s");
}

static int number_of(const mqttc_event *e) {
    EXPECT(e->message.payload_len == 2, "a payload of two bytes");
    return e->message.payload[1] - '0';
}

static void event_mode(void) {
    const char *id = "c-ack-ev", *topic = "ack/c/ev";
    mqttc_client *c = subscriber(id, topic, NULL, NULL);
    publish_range(topic, 'e', 0, 0);
    mqttc_event *e0 = next_message(c);
    EXPECT(number_of(e0) == 0, "e0 first");
    mqttc_event_free(e0);
    sleep_ms(300); /* e0's acknowledgement goes */
    publish_range(topic, 'e', 1, 3);
    mqttc_event *events[3];
    int numbers = 0;
    for (int i = 0; i < 3; i++) {
        events[i] = next_message(c);
        numbers |= 1 << number_of(events[i]);
    }
    EXPECT(numbers == 0xe, "e1..e3 arrived, once each");
    mqttc_event_free(events[2]);
    mqttc_event_free(events[1]);
    sleep_ms(300); /* their acknowledgements wait for the first's */
    mqttc_client_free(c);
    mqttc_event_free(events[0]); /* after the free: its acknowledgement never goes */
    next_client_gets_all_but_the_first(id, topic, "event mode");
}

int main(int argc, char **argv) {
    if (argc != 2)
        FAIL("usage: ack_after_callback <port>");
    port = atoi(argv[1]);
    callback_mode();
    event_mode();
    printf("ack_after_callback: ok\n");
    return 0;
}
