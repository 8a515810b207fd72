/*
 * Event mode through the C API: the descriptor is readable exactly while events wait; the wakeup
 * hook runs on a library thread; one event names every matching subscription's userdata; an event
 * stays valid after its client is freed; event calls on a callback-mode client fail clearly; a
 * message carries the packet id the broker gave it (0 at QoS 0), and so does its copy.
 * Usage: events <port of a running broker>
 */
#include "check.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_int wakeups, wakeups_on_main, drops;
static pthread_t main_thread;

static void on_wakeup(void *arg) {
    atomic_fetch_add((atomic_int *)arg, 1);
    if (pthread_equal(pthread_self(), main_thread))
        atomic_fetch_add(&wakeups_on_main, 1);
}

static void on_drop(void *userdata) {
    (void)userdata;
    atomic_fetch_add(&drops, 1);
}

static int readable(int fd, int timeout_ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
    return poll(&p, 1, timeout_ms) == 1;
}

/* Waits on the descriptor (up to 10 s) and returns the next event, which the caller frees. */
static mqttc_event *next_event(mqttc_client *c, int fd) {
    for (int i = 0; i < 100; i++) {
        mqttc_event *e = NULL;
        CHECK(mqttc_event_next(c, &e));
        if (e)
            return e;
        readable(fd, 100);
    }
    FAIL("no event within 10 s");
}

/* Checks the next event is `t`'s successful completion carrying `codes` (n of them). */
static void expect_completion(mqttc_client *c, int fd, mqttc_token t, const char *what,
                              const uint8_t *codes, size_t n) {
    mqttc_event *e = next_event(c, fd);
    EXPECT(e->kind == MQTTC_EVENT_COMPLETE, "%s: kind %d, not COMPLETE", what, e->kind);
    EXPECT(e->token == t, "%s: token %llu, not %llu", what, (unsigned long long)e->token,
           (unsigned long long)t);
    EXPECT(e->status == MQTTC_OK, "%s: %s", what, mqttc_status_str(e->status));
    EXPECT(e->message.topic == NULL && e->subscriptions == NULL && e->connection.server == NULL &&
               e->detail == NULL,
           "%s: fields of other kinds are NULL", what);
    EXPECT(e->code_count == n && (n == 0 || memcmp(e->codes, codes, n) == 0), "%s: its codes",
           what);
    mqttc_event_free(e);
    printf("ok %s completed as an event\n", what);
}

static void callback_mode_refuses_event_calls(int port) {
    mqttc_client *c = NULL;
    CHECK(mqttc_client_new("127.0.0.1", (uint16_t)port, NULL, &c));
    int fd = -1;
    size_t n = 0;
    mqttc_event *e = NULL;
    EXPECT(mqttc_event_fd(c, &fd) == MQTTC_ERR_EVENT_MODE_OFF, "events_fd on a callback client");
    EXPECT(strstr(mqttc_last_error(), "event mode") != NULL, "a clear message");
    EXPECT(mqttc_event_pending(c, &n) == MQTTC_ERR_EVENT_MODE_OFF, "events_pending");
    EXPECT(mqttc_event_next(c, &e) == MQTTC_ERR_EVENT_MODE_OFF, "event_next");
    EXPECT(mqttc_event_set_wakeup(c, on_wakeup, &wakeups) == MQTTC_ERR_EVENT_MODE_OFF,
           "set_wakeup");
    EXPECT(mqttc_subscribe(c, "x", 0, NULL, NULL, NULL) == MQTTC_ERR_NULL,
           "a NULL callback outside event mode");
    mqttc_event_free(NULL);
    mqttc_client_free(c);
    printf("ok callback-mode client refuses event calls\n");
}

/* A failed operation's event says why, as mqttc_last_error would. */
static void failure_carries_its_detail(void) {
    mqttc_options o;
    mqttc_options_init(&o);
    o.event_mode = true;
    o.connect_timeout_ms = 5000;
    mqttc_client *c = NULL;
    CHECK(mqttc_client_new("127.0.0.1", 1, &o, &c)); /* nothing listens on port 1 */
    int fd = -1;
    CHECK(mqttc_event_fd(c, &fd));
    mqttc_token t = 0;
    CHECK(mqttc_connect(c, &t));
    mqttc_event *e = next_event(c, fd);
    EXPECT(e->kind == MQTTC_EVENT_COMPLETE && e->token == t, "the connect's completion");
    EXPECT(e->status == MQTTC_ERR_IO, "refused: %s", mqttc_status_str(e->status));
    EXPECT(e->detail && strlen(e->detail) > 0, "a detail");
    printf("ok failed connect as an event: %s\n", e->detail);
    mqttc_event_free(e);
    mqttc_client_free(c);
}

/* Messages at QoS 0, 1 and 2 to an event-mode subscriber: packet_id is 0 at QoS 0 and the
 * broker's id (1 to 65535, one per message in flight) at QoS 1 and 2; a copy keeps it. */
static void packet_ids(int port) {
    mqttc_options o;
    mqttc_options_init(&o);
    o.event_mode = true;
    mqttc_client *c = NULL;
    CHECK(mqttc_client_new("127.0.0.1", (uint16_t)port, &o, &c));
    int fd = -1;
    CHECK(mqttc_event_fd(c, &fd));
    mqttc_token t = 0;
    CHECK(mqttc_connect(c, &t));
    CHECK(mqttc_subscribe(c, "ev/ids", 2, NULL, NULL, &t));
    for (int qos = 0; qos <= 2; qos++)
        CHECK(mqttc_publish(c, "ev/ids", "m", 1, qos, false, &t));
    uint16_t ids[3] = {0};
    int got = 0;
    while (got < 3) {
        mqttc_event *e = next_event(c, fd);
        if (e->kind == MQTTC_EVENT_MESSAGE) {
            EXPECT(e->message.qos == got, "message %d arrived at QoS %d", got, e->message.qos);
            ids[got++] = e->message.packet_id;
            mqttc_message *copy = NULL;
            CHECK(mqttc_message_copy(&e->message, &copy));
            EXPECT(copy->packet_id == e->message.packet_id, "the copy keeps the packet id");
            mqttc_message_free(copy);
        } else {
            EXPECT(e->kind != MQTTC_EVENT_COMPLETE || e->status == MQTTC_OK, "%s", mqttc_status_str(e->status));
        }
        mqttc_event_free(e);
    }
    EXPECT(ids[0] == 0, "QoS 0 has no packet id, got %u", ids[0]);
    EXPECT(ids[1] != 0 && ids[2] != 0 && ids[1] != ids[2], "QoS 1 and 2 have their own ids, got %u and %u", ids[1],
           ids[2]);
    mqttc_client_free(c);
    printf("ok packet ids: QoS 0 has 0, QoS 1 has %u, QoS 2 has %u\n", ids[1], ids[2]);
}

int main(int argc, char **argv) {
    if (argc != 2)
        FAIL("usage: events <port>");
    int port = atoi(argv[1]);
    main_thread = pthread_self();
    callback_mode_refuses_event_calls(port);
    failure_carries_its_detail();
    packet_ids(port);

    mqttc_options o;
    mqttc_options_init(&o);
    o.event_mode = true;
    o.client_id = "c-events";
    mqttc_client *c = NULL;
    CHECK(mqttc_client_new("127.0.0.1", (uint16_t)port, &o, &c));
    int fd = -1;
    CHECK(mqttc_event_fd(c, &fd));
    EXPECT(fd >= 0 && !readable(fd, 0), "a quiet descriptor before anything happened");
    EXPECT(mqttc_event_next(c, NULL) == MQTTC_ERR_NULL, "NULL out");
    CHECK(mqttc_event_set_wakeup(c, on_wakeup, &wakeups));

    mqttc_token t = 0;
    CHECK(mqttc_connect(c, &t));
    mqttc_event *e = next_event(c, fd);
    EXPECT(e->kind == MQTTC_EVENT_CONNECTION && e->connection.change == MQTTC_CONNECTION_UP,
           "UP first");
    EXPECT(e->connection.server && strstr(e->connection.server, "127.0.0.1") != NULL, "server");
    mqttc_event_free(e);
    static const uint8_t no_session[] = {0};
    expect_completion(c, fd, t, "connect", no_session, 1);
    EXPECT(atomic_load(&wakeups) >= 1 && atomic_load(&wakeups_on_main) == 0,
           "the hook ran on a library thread (%d calls, %d on main)", atomic_load(&wakeups),
           atomic_load(&wakeups_on_main));

    int key_hash = 1, key_plus = 2;
    mqttc_subscription subs[2] = {
        MQTTC_SUBSCRIPTION_INIT(.filter = "ev/#", .qos = 1, .on_message = NULL, .userdata = &key_hash,
                                .drop_userdata = on_drop),
        MQTTC_SUBSCRIPTION_INIT(.filter = "ev/+", .qos = 2, .on_message = NULL, .userdata = &key_plus,
                                .drop_userdata = on_drop),
    };
    CHECK(mqttc_subscribe_many(c, subs, 2, &t));
    static const uint8_t granted[] = {1, 2};
    expect_completion(c, fd, t, "subscribe", granted, 2);
    static const char payload[] = {'a', '\0', 'b'};
    CHECK(mqttc_publish(c, "ev/x", payload, sizeof payload, 1, false, &t));
    mqttc_event *message = NULL;
    for (int got = 0; got < 2; got++) {
        e = next_event(c, fd);
        if (e->kind == MQTTC_EVENT_MESSAGE) {
            message = e; /* kept past the client's free */
        } else {
            EXPECT(e->kind == MQTTC_EVENT_COMPLETE && e->token == t, "the publish's completion");
            mqttc_event_free(e);
        }
    }
    EXPECT(message != NULL, "the message arrived");
    EXPECT(message->subscription_count == 2, "both overlapping subscriptions are named");
    int seen = 0;
    for (size_t i = 0; i < message->subscription_count; i++)
        seen |= *(int *)message->subscriptions[i];
    EXPECT(seen == (key_hash | key_plus), "their userdata, once each");
    EXPECT(!readable(fd, 0), "drained: the descriptor is quiet again");
    size_t pending = 1;
    CHECK(mqttc_event_pending(c, &pending));
    EXPECT(pending == 0, "nothing pending");

    mqttc_client_free(c);
    EXPECT(atomic_load(&drops) == 0, "the userdata the held event names outlives the client, got %d drops",
           atomic_load(&drops));
    EXPECT(strcmp(message->message.topic, "ev/x") == 0 && message->message.topic_len == 4,
           "the topic outlives the client");
    EXPECT(message->message.payload_len == 3 &&
               memcmp(message->message.payload, payload, sizeof payload) == 0,
           "the payload outlives the client");
    EXPECT(message->message.qos == 1, "delivered at QoS 1");
    mqttc_event_free(message);
    EXPECT(atomic_load(&drops) == 2, "each subscription's userdata dropped once with the event, got %d",
           atomic_load(&drops));
    printf("ok message event with two subscriptions, valid after free\n");
    printf("events: ok\n");
    return 0;
}
