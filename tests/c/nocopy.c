/*
 * mqttc_publish_nocopy: the library reads a lent payload where it is and calls its release
 * exactly once, whatever happens to the publish. Every payload here is malloc'd and its release
 * frees it, so the sanitizer run (MQTTC_SANITIZE=address) sees a missing release as a leak, a
 * second one as a double free, and a read after the release as a use after free.
 *   1. refused calls (NULL client, bad topic, bad QoS, NULL payload, not connected) return their
 *      error and have released the payload before they return;
 *   2. payloads small and large (copied into the write buffer / written from where they are) at
 *      QoS 0, 1 and 2 arrive intact, and each is released once, after its publish completed;
 *   3. a payload with a NULL release (static data) is published and acknowledged;
 *   4. publishes waiting in the offline queue are released by mqttc_client_free.
 * Usage: nocopy <port of a running broker>
 */
#include "check.h"

#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SMALL 100
#define LARGE (200 * 1024)
#define ROUNDS 10

static atomic_int released, received, corrupt;

static void on_release(void *payload) {
    free(payload);
    atomic_fetch_add(&released, 1);
}

/* Byte i of the payload of length len: a function of both, so a wrong or stale buffer shows. */
static unsigned char pattern(size_t len, size_t i) {
    return (unsigned char)(len * 31 + i * 7 + (i >> 9));
}

static void *lent_payload(size_t len) {
    unsigned char *p = malloc(len);
    if (!p)
        FAIL("malloc");
    for (size_t i = 0; i < len; i++)
        p[i] = pattern(len, i);
    return p;
}

static void on_message(mqttc_client *c, const mqttc_message *m, void *u) {
    (void)c, (void)u;
    for (size_t i = 0; i < m->payload_len; i++)
        if (m->payload[i] != pattern(m->payload_len, i)) {
            atomic_fetch_add(&corrupt, 1);
            break;
        }
    atomic_fetch_add(&received, 1);
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Polls up to 10 s for *counter to reach want; it must then be exactly want. */
static void await_count(atomic_int *counter, int want, const char *what) {
    for (int i = 0; i < 1000 && atomic_load(counter) < want; i++)
        sleep_ms(10);
    if (atomic_load(counter) != want)
        FAIL("%s: %d, want %d", what, atomic_load(counter), want);
}

static mqttc_client *new_client(int port, bool queue_before_connect) {
    mqttc_options o;
    mqttc_options_init(&o);
    o.queue_before_connect = queue_before_connect;
    mqttc_client *c = NULL;
    CHECK(mqttc_client_new("127.0.0.1", (uint16_t)port, &o, &c));
    return c;
}

static void connect_client(mqttc_client *c) {
    mqttc_token t;
    CHECK(mqttc_connect(c, &t));
    CHECK(mqttc_token_wait(c, t, 10000));
}

/* A refused call must have released its payload by the time it returns. */
static void expect_refused(mqttc_client *c, const char *topic, size_t len, bool null_payload, int qos,
                           mqttc_status want, const char *what) {
    int before = atomic_load(&released);
    void *p = lent_payload(len);
    mqttc_status st = mqttc_publish_nocopy(c, topic, null_payload ? NULL : p, len, qos, false, NULL,
                                           on_release, p, NULL);
    if (st != want)
        FAIL("%s: %s, want %s", what, mqttc_status_str(st), mqttc_status_str(want));
    if (atomic_load(&released) != before + 1)
        FAIL("%s: released %d time(s) by the return, want 1", what, atomic_load(&released) - before);
}

static void refused_calls(int port) {
    mqttc_client *c = new_client(port, false);
    expect_refused(NULL, "t", 8, false, 0, MQTTC_ERR_NULL, "NULL client");
    expect_refused(c, NULL, 8, false, 0, MQTTC_ERR_NULL, "NULL topic");
    expect_refused(c, "a/+", 8, false, 0, MQTTC_ERR_INVALID_TOPIC, "wildcard topic");
    expect_refused(c, "t", 8, false, 3, MQTTC_ERR_INVALID_QOS, "QoS 3");
    expect_refused(c, "t", 8, true, 0, MQTTC_ERR_NULL, "NULL payload of 8 bytes");
    expect_refused(c, "t", 8, false, 1, MQTTC_ERR_NOT_CONNECTED, "never connected");
    mqttc_client_free(c);
    printf("ok refused calls release their payload before they return\n");
}

static void delivered_and_released(int port) {
    mqttc_client *sub = new_client(port, false), *pub = new_client(port, false);
    connect_client(sub);
    connect_client(pub);
    mqttc_token t;
    CHECK(mqttc_subscribe(sub, "nocopy/#", 2, on_message, NULL, &t));
    CHECK(mqttc_token_wait(sub, t, 10000));
    int base = atomic_load(&released), n = 0;
    for (int qos = 0; qos <= 2; qos++)
        for (int i = 0; i < ROUNDS; i++, n++) {
            size_t len = i % 2 ? LARGE : SMALL;
            void *p = lent_payload(len);
            CHECK(mqttc_publish_nocopy(pub, "nocopy/t", p, len, qos, false, NULL, on_release, p, &t));
            mqttc_status st = mqttc_token_wait(pub, t, 10000);
            /* A direct QoS 0 write may complete its token before this wait looks it up. */
            if (st != MQTTC_OK && !(qos == 0 && st == MQTTC_ERR_TOKEN_EXPIRED))
                FAIL("publish %d at QoS %d: %s", i, qos, mqttc_status_str(st));
            /* Completed: the library needs the bytes no more (a release may trail the token by
             * the few instructions between the two, hence the short wait). */
            await_count(&released, base + n + 1, "released after completion");
        }
    await_count(&received, n, "received");
    if (atomic_load(&corrupt))
        FAIL("%d message(s) arrived with other bytes than were lent", atomic_load(&corrupt));
    mqttc_client_free(pub);
    mqttc_client_free(sub);
    if (atomic_load(&released) != base + n)
        FAIL("released %d time(s) in all, want %d", atomic_load(&released) - base, n);
    printf("ok %d lent payloads (QoS 0-2, %d and %d bytes) arrived intact, each released once\n", n, SMALL,
           LARGE);
}

static void static_payload(int port) {
    static const char text[] = "static bytes, never freed";
    mqttc_client *c = new_client(port, false);
    connect_client(c);
    mqttc_token t;
    int before = atomic_load(&released);
    CHECK(mqttc_publish_nocopy(c, "nocopy/static", text, sizeof text - 1, 1, false, NULL, NULL, NULL, &t));
    CHECK(mqttc_token_wait(c, t, 10000));
    mqttc_client_free(c);
    if (atomic_load(&released) != before)
        FAIL("a NULL release counted");
    printf("ok a payload with a NULL release is published\n");
}

static void freed_while_queued(void) {
    /* Port 1: nothing listens, so the publishes stay queued for a connection that never comes. */
    mqttc_client *c = new_client(1, true);
    int before = atomic_load(&released);
    for (int i = 0; i < 5; i++) {
        void *p = lent_payload(i % 2 ? LARGE : SMALL);
        CHECK(mqttc_publish_nocopy(c, "nocopy/q", p, i % 2 ? LARGE : SMALL, 1, false, NULL, on_release, p,
                                   NULL));
    }
    if (atomic_load(&released) != before)
        FAIL("released while still queued: %d", atomic_load(&released) - before);
    mqttc_client_free(c);
    if (atomic_load(&released) != before + 5)
        FAIL("mqttc_client_free released %d of 5 queued payloads", atomic_load(&released) - before);
    printf("ok mqttc_client_free released the 5 queued payloads\n");
}

int main(int argc, char **argv) {
    if (argc < 2)
        FAIL("usage: nocopy <broker port>");
    int port = atoi(argv[1]);
    refused_calls(port);
    delivered_and_released(port);
    static_payload(port);
    freed_while_queued();
    printf("nocopy: ok\n");
    return 0;
}
