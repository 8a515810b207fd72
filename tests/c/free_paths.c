/*
 * mqttc_client_free in the states where a client's threads are busiest, so that the sanitizer run
 * (MQTTC_SANITIZE=address) can see that nothing leaks, nothing is freed twice and nothing is
 * touched after the free:
 *   1. right after mqttc_connect to a live broker, with delays from 0 to 10 ms, so the free lands
 *      in the TCP connect, after CONNECT went out, or around the CONNACK;
 *   2. while connecting: the kernel accepted the TCP connection, but no CONNACK ever comes;
 *   3. while offline: a one-shot fake broker answered CONNACK and then went away, so the client is
 *      reconnecting (and refused) with publishes in its offline queue;
 *   4. the same with auto_reconnect off: the session waits for mqttc_reconnect.
 * (Freeing from inside a callback is in callbacks.c.) Every subscription carries a malloc'd
 * userdata whose destructor frees it: a missing destructor call is a leak, a second one a double
 * free. Each free must also return promptly.
 * Usage: free_paths <port of a running broker>
 */
#include "check.h"
#include "listen_any.h"

#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int drops, losts;

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000L};
    nanosleep(&ts, NULL);
}

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void on_drop(void *userdata) {
    free(userdata);
    atomic_fetch_add(&drops, 1);
}

static void on_message(mqttc_client *c, const mqttc_message *m, void *u) {
    (void)c, (void)m, (void)u;
}

static void on_connection(mqttc_client *c, const mqttc_connection_event *ev, void *u) {
    (void)c, (void)u;
    if (ev->change == MQTTC_CONNECTION_LOST)
        atomic_fetch_add(&losts, 1);
}

/* Polls up to 10 s for *counter to reach want. */
static void await_count(atomic_int *counter, int want, const char *what) {
    for (int i = 0; i < 1000 && atomic_load(counter) < want; i++)
        sleep_us(10000);
    if (atomic_load(counter) != want)
        FAIL("%s: %d, want %d", what, atomic_load(counter), want);
}

/* A subscription whose userdata only its destructor frees. Before the first connect it waits for
 * the CONNACK; offline it waits for the next connection. */
static void subscribe_owned(mqttc_client *c, const char *filter) {
    mqttc_subscription s = MQTTC_SUBSCRIPTION_INIT(filter, 1, on_message, malloc(64), on_drop, 0);
    mqttc_token t;
    CHECK(mqttc_subscribe_many(c, &s, 1, &t));
}

static mqttc_client *new_client(uint16_t port, bool auto_reconnect) {
    mqttc_options o;
    mqttc_options_init(&o);
    o.connect_timeout_ms = 10000;
    o.auto_reconnect = auto_reconnect;
    o.reconnect_min_ms = 20;
    o.reconnect_max_ms = 100;
    o.queue_before_connect = true;
    mqttc_client *c = NULL;
    CHECK(mqttc_client_new("127.0.0.1", port, &o, &c));
    CHECK(mqttc_client_set_on_connection(c, on_connection, NULL));
    return c;
}

/* Frees `c`, which must take under a second, then waits for `subscriptions` more destructors. */
static void free_client(mqttc_client *c, int subscriptions, const char *what) {
    int before = atomic_load(&drops);
    long t0 = now_ms();
    mqttc_client_free(c);
    long took = now_ms() - t0;
    if (took > 1000)
        FAIL("%s: mqttc_client_free took %ld ms", what, took);
    await_count(&drops, before + subscriptions, what);
}

static void publish_some(mqttc_client *c, int n) {
    for (int i = 0; i < n; i++) {
        mqttc_token t;
        /* Queued (offline queue) or refused, depending on the state: either is fine here. */
        (void)mqttc_publish(c, "free/q", "queued", 6, 1, false, &t);
    }
}

static void free_right_after_connect(uint16_t broker) {
    for (int i = 0; i <= 20; i++) {
        mqttc_client *c = new_client(broker, true);
        subscribe_owned(c, "free/a");
        publish_some(c, 2);
        mqttc_token t;
        CHECK(mqttc_connect(c, &t));
        sleep_us(i * 500L);
        free_client(c, 1, "free right after connect");
    }
    printf("ok free right after connect, 21 times\n");
}

static void free_while_connecting(void) {
    uint16_t port;
    int listener = listen_any(&port);
    mqttc_client *c = new_client(port, true);
    subscribe_owned(c, "free/b");
    publish_some(c, 3);
    mqttc_token t;
    CHECK(mqttc_connect(c, &t));
    sleep_us(200000);
    int state = mqttc_client_state(c);
    if (state != MQTTC_STATE_CONNECTING)
        FAIL("state %d while the CONNACK is missing, want CONNECTING", state);
    if (mqttc_token_poll(c, t) != MQTTC_PENDING)
        FAIL("the connect completed without a CONNACK");
    free_client(c, 1, "free while connecting");
    close(listener);
    printf("ok free while connecting\n");
}

/* Reads one whole packet from fd (the client's CONNECT). */
static void read_packet(int fd) {
    unsigned char buf[512];
    size_t have = 0, need = 2;
    while (have < need) {
        ssize_t n = read(fd, buf + have, sizeof buf - have);
        if (n <= 0)
            FAIL("reading CONNECT");
        have += (size_t)n;
        size_t len = 0, i = 1;
        for (int shift = 0; i < have && i < 5; i++, shift += 7) {
            len |= (size_t)(buf[i] & 0x7F) << shift;
            if (!(buf[i] & 0x80))
                break;
        }
        if (i < have && i < 5)
            need = i + 1 + len;
    }
}

static void free_while_offline(bool auto_reconnect) {
    uint16_t port;
    int listener = listen_any(&port);
    mqttc_client *c = new_client(port, auto_reconnect);
    int lost_before = atomic_load(&losts);
    mqttc_token t;
    CHECK(mqttc_connect(c, &t));
    int conn = accept(listener, NULL, NULL);
    if (conn < 0)
        FAIL("accept");
    read_packet(conn);
    static const unsigned char connack[] = {0x20, 0x02, 0x00, 0x00};
    if (write(conn, connack, sizeof connack) != (ssize_t)sizeof connack)
        FAIL("write CONNACK");
    mqttc_status st = mqttc_token_wait(c, t, 10000);
    if (st != MQTTC_OK)
        FAIL("connect to the fake broker: %s", mqttc_status_str(st));
    /* The broker goes away for good: reconnects are refused from now on. */
    close(conn);
    close(listener);
    await_count(&losts, lost_before + 1, "LOST after the fake broker closed");
    subscribe_owned(c, "free/c");
    publish_some(c, 5);
    sleep_us(150000); /* a few refused reconnects, when they are on */
    free_client(c, 1, auto_reconnect ? "free while reconnecting" : "free while waiting for mqttc_reconnect");
    printf("ok free while offline (auto_reconnect %s)\n", auto_reconnect ? "on" : "off");
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    uint16_t broker = (uint16_t)atoi(argv[1]);
    free_right_after_connect(broker);
    free_while_connecting();
    free_while_offline(true);
    free_while_offline(false);
    printf("free_paths: ok (%d destructors)\n", atomic_load(&drops));
    return 0;
}
