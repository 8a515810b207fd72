/*
 * Event mode keeps a subscription's userdata alive while MESSAGE events name it: drop_userdata
 * runs only once the last such event is freed, and exactly once, whether the subscription ends
 * by unsubscribe, by a new subscribe to its filter, or by freeing the client (events already
 * taken outlive the client; those still queued are discarded with it).
 * Usage: event_userdata <port of a running broker>
 */
#include "check.h"

#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MESSAGES = 8, USERDATA = 4, MAGIC = 0x5eed };

/* A subscription's userdata, freed by its drop_userdata, which first records that it ran: the
 * test looks at the record before it reads an event's userdata, so it never reads freed memory. */
struct userdata {
    int magic;
    int index;
};

static atomic_int dropped[USERDATA];

static void drop_userdata(void *p) {
    struct userdata *u = p;
    atomic_fetch_add(&dropped[u->index], 1);
    u->magic = 0;
    free(u);
}

static struct userdata *new_userdata(int index) {
    struct userdata *u = malloc(sizeof *u);
    EXPECT(u, "malloc");
    u->magic = MAGIC;
    u->index = index;
    return u;
}

/* The next event (waiting on the descriptor up to 10 s), which the caller frees. */
static mqttc_event *next_event(mqttc_client *c) {
    int fd = -1;
    CHECK(mqttc_event_fd(c, &fd));
    for (int i = 0; i < 100; i++) {
        mqttc_event *e = NULL;
        CHECK(mqttc_event_next(c, &e));
        if (e)
            return e;
        struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
        poll(&p, 1, 100);
    }
    FAIL("no event within 10 s");
}

/* Frees events until the completion of `t` (and, for a connect, the connection's UP) has come. */
static void await(mqttc_client *c, mqttc_token t, int connect) {
    int completed = 0, up = !connect;
    while (!completed || !up) {
        mqttc_event *e = next_event(c);
        EXPECT(e->kind != MQTTC_EVENT_MESSAGE, "a message before any was published");
        if (e->kind == MQTTC_EVENT_COMPLETE && e->token == t) {
            EXPECT(e->status == MQTTC_OK, "token %llu: %s", (unsigned long long)t, mqttc_status_str(e->status));
            completed = 1;
        }
        if (e->kind == MQTTC_EVENT_CONNECTION && e->connection.change == MQTTC_CONNECTION_UP)
            up = 1;
        mqttc_event_free(e);
    }
}

static mqttc_client *event_client(int port) {
    mqttc_options o;
    mqttc_options_init(&o);
    o.event_mode = true;
    mqttc_client *c = NULL;
    CHECK(mqttc_client_new("127.0.0.1", (uint16_t)port, &o, &c));
    mqttc_token t = 0;
    CHECK(mqttc_connect(c, &t));
    await(c, t, 1);
    return c;
}

/* Subscribes `c` to `filter` for events carrying `u`. With `drain`, the queue is empty again on
 * return; else the completion's event stays queued behind what waits. */
static void subscribe(mqttc_client *c, const char *filter, struct userdata *u, int drain) {
    mqttc_subscription s = MQTTC_SUBSCRIPTION_INIT(filter, 1, NULL, u, drop_userdata, 0);
    mqttc_token t = 0;
    CHECK(mqttc_subscribe_many(c, &s, 1, &t));
    if (drain)
        await(c, t, 0);
    else
        CHECK(mqttc_token_wait(c, t, 10000));
}

/* Publishes MESSAGES messages on `topic` from `pub`, and waits until all of them wait in `c`'s
 * queue, none of them taken. */
static void fill(mqttc_client *pub, mqttc_client *c, const char *topic) {
    for (int i = 0; i < MESSAGES; i++) {
        mqttc_token t = 0;
        CHECK(mqttc_publish(pub, topic, &i, sizeof i, 1, false, &t));
        CHECK(mqttc_token_wait(pub, t, 10000));
    }
    size_t n = 0;
    for (int i = 0; i < 1000 && n < MESSAGES; i++) {
        CHECK(mqttc_event_pending(c, &n));
        if (n < MESSAGES)
            poll(NULL, 0, 10);
    }
    EXPECT(n == MESSAGES, "%zu of %d messages queued", n, MESSAGES);
}

/* Takes the next message event, which must carry `u` (userdata number `index`, not yet dropped)
 * and `topic`. */
static mqttc_event *take_message(mqttc_client *c, struct userdata *u, int index, const char *topic) {
    for (;;) {
        mqttc_event *e = next_event(c);
        if (e->kind != MQTTC_EVENT_MESSAGE) {
            mqttc_event_free(e);
            continue;
        }
        EXPECT(e->subscription_count == 1 && e->subscriptions[0] == u, "the event names its userdata");
        EXPECT(atomic_load(&dropped[index]) == 0,
               "drop_userdata %d ran while a message event carrying its userdata was still queued", index);
        EXPECT(u->magic == MAGIC, "the userdata is intact");
        EXPECT(strcmp(e->message.topic, topic) == 0 && e->message.payload_len == sizeof(int), "the message");
        return e;
    }
}

/* Frees the held events: drop_userdata of `u` must not run before the last one is freed, and
 * must have run exactly once after. */
static void free_held(mqttc_event **held, int n, int index) {
    for (int i = 0; i < n; i++) {
        EXPECT(atomic_load(&dropped[index]) == 0, "drop_userdata %d ran while %d message event(s) carrying its "
               "userdata were still held", index, n - i);
        mqttc_event_free(held[i]);
    }
    EXPECT(atomic_load(&dropped[index]) == 1, "drop_userdata %d ran %d time(s) after its last event was freed, "
           "not once", index, atomic_load(&dropped[index]));
}

/* How a subscription ends while its messages wait. */
enum ending { UNSUBSCRIBE, REPLACE, FREE_CLIENT };

static void run(int port, mqttc_client *pub, enum ending how, const char *topic) {
    mqttc_client *c = event_client(port);
    int index = (int)how;
    struct userdata *u = new_userdata(index);
    subscribe(c, topic, u, 1);
    fill(pub, c, topic);
    /* One event taken and held; the rest still queued when the subscription ends. */
    mqttc_event *held[MESSAGES];
    int n = 0;
    held[n++] = take_message(c, u, index, topic);
    mqttc_token t = 0;
    switch (how) {
    case UNSUBSCRIBE:
        CHECK(mqttc_unsubscribe(c, topic, &t));
        CHECK(mqttc_token_wait(c, t, 10000));
        break;
    case REPLACE:
        subscribe(c, topic, new_userdata(USERDATA - 1), 0);
        break;
    case FREE_CLIENT:
        held[n++] = take_message(c, u, index, topic);
        mqttc_client_free(c);
        c = NULL;
        break;
    }
    EXPECT(atomic_load(&dropped[index]) == 0, "drop_userdata %d ran when the subscription ended, with message "
           "events carrying its userdata still queued or held", index);
    while (c && n < MESSAGES)
        held[n++] = take_message(c, u, index, topic);
    free_held(held, n, index);
    mqttc_client_free(c);
    EXPECT(atomic_load(&dropped[index]) == 1, "drop_userdata %d ran once in all", index);
    if (how == REPLACE)
        EXPECT(atomic_load(&dropped[USERDATA - 1]) == 1, "the replacement's userdata was dropped with the client");
    printf("ok %s: drop_userdata ran once, after the last of %d held message events was freed\n",
           how == UNSUBSCRIBE ? "unsubscribe" : how == REPLACE ? "replacement" : "client free", n);
}

int main(int argc, char **argv) {
    if (argc != 2)
        FAIL("usage: event_userdata <port>");
    int port = atoi(argv[1]);
    mqttc_client *pub = NULL;
    CHECK(mqttc_client_new("127.0.0.1", (uint16_t)port, NULL, &pub));
    mqttc_token t = 0;
    CHECK(mqttc_connect(pub, &t));
    CHECK(mqttc_token_wait(pub, t, 10000));
    run(port, pub, UNSUBSCRIBE, "userdata/unsubscribe");
    run(port, pub, REPLACE, "userdata/replace");
    run(port, pub, FREE_CLIENT, "userdata/free");
    CHECK(mqttc_disconnect(pub, &t));
    CHECK(mqttc_token_wait(pub, t, 10000));
    mqttc_client_free(pub);
    printf("event_userdata: ok\n");
    return 0;
}
