/*
 * A message store the application supplies through callbacks (mqttc_store_new), here a table in
 * memory. Usage: store_callbacks PORT (of a running mosquitto)
 *
 * 1. A client with the store publishes QoS 1 and 2 messages to a broker that accepts the
 *    connection and then never answers (a thread of this program): each message, and its packet
 *    id once sent, land in the table, synced before each publish call returns. A second client
 *    may not use the store meanwhile. A put that fails makes mqttc_publish return MQTTC_ERR_STORE
 *    with a detail naming it, and the table keeps what it held.
 * 2. The client is freed: its tokens are cancelled, their messages stay in the table.
 * 3. A new client with the same store connects to mosquitto: each message is restored, once, with
 *    a token that completes, and a subscriber gets every one. While puts of packet ids fail, a
 *    message accepted meanwhile waits in the client: it reaches the broker once they succeed again.
 *    Then the table is empty.
 * 4. drop runs exactly once, after both the store and its client are freed, in either order; a
 *    freed store is refused.
 * Prints "ok N ..." per step and "store_callbacks: ok" at the end.
 */
#include "check.h"
#include "listen_any.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MESSAGES 10
#define SLOTS 64
#define TOPIC "store/callbacks"

/* The application's table: what the callbacks keep, and what the test counts. */
typedef struct {
    pthread_mutex_t lock;
    struct {
        char key[32];
        uint8_t *value;
        size_t len;
        bool used;
    } e[SLOTS];
    const char *fail_prefix; /* puts of keys starting with it fail ("" for all) */
    int syncs, clears, drops;
} table;

static int find(table *t, const char *key) {
    for (int i = 0; i < SLOTS; i++)
        if (t->e[i].used && strcmp(t->e[i].key, key) == 0)
            return i;
    return -1;
}

static int t_put(void *u, const char *key, const uint8_t *value, size_t len) {
    table *t = u;
    int rc = 0;
    pthread_mutex_lock(&t->lock);
    int i = find(t, key);
    for (int j = 0; i < 0 && j < SLOTS; j++)
        if (!t->e[j].used)
            i = j;
    uint8_t *copy = malloc(len ? len : 1);
    bool failing = t->fail_prefix && strncmp(key, t->fail_prefix, strlen(t->fail_prefix)) == 0;
    if (failing || i < 0 || strlen(key) >= sizeof t->e[0].key || !copy) {
        free(copy);
        rc = -5;
    } else {
        memcpy(copy, value, len);
        free(t->e[i].value);
        strcpy(t->e[i].key, key);
        t->e[i].value = copy;
        t->e[i].len = len;
        t->e[i].used = true;
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}

static int t_get(void *u, const char *key, mqttc_store_value *out) {
    table *t = u;
    int rc = 0;
    pthread_mutex_lock(&t->lock);
    int i = find(t, key);
    if (i >= 0 && mqttc_store_value_set(out, t->e[i].value, t->e[i].len) != MQTTC_OK)
        rc = -1;
    pthread_mutex_unlock(&t->lock);
    return rc;
}

static void forget(table *t, int i) {
    free(t->e[i].value);
    t->e[i].value = NULL;
    t->e[i].used = false;
}

static int t_remove(void *u, const char *key) {
    table *t = u;
    pthread_mutex_lock(&t->lock);
    int i = find(t, key);
    if (i >= 0)
        forget(t, i);
    pthread_mutex_unlock(&t->lock);
    return 0;
}

static int t_list(void *u, mqttc_store_keys *out) {
    table *t = u;
    int rc = 0;
    pthread_mutex_lock(&t->lock);
    for (int i = 0; i < SLOTS && rc == 0; i++)
        if (t->e[i].used && mqttc_store_keys_add(out, t->e[i].key) != MQTTC_OK)
            rc = -1;
    pthread_mutex_unlock(&t->lock);
    return rc;
}

static int t_clear(void *u) {
    table *t = u;
    pthread_mutex_lock(&t->lock);
    for (int i = 0; i < SLOTS; i++)
        if (t->e[i].used)
            forget(t, i);
    t->clears++;
    pthread_mutex_unlock(&t->lock);
    return 0;
}

static int t_sync(void *u) {
    table *t = u;
    pthread_mutex_lock(&t->lock);
    t->syncs++;
    pthread_mutex_unlock(&t->lock);
    return 0;
}

/* Counts only: the tables are static, and the test checks how often it ran. */
static void t_drop(void *u) {
    table *t = u;
    pthread_mutex_lock(&t->lock);
    t->drops++;
    pthread_mutex_unlock(&t->lock);
}

/* How many keys begin with `prefix`. */
static int count(table *t, const char *prefix) {
    int n = 0;
    pthread_mutex_lock(&t->lock);
    for (int i = 0; i < SLOTS; i++)
        n += t->e[i].used && strncmp(t->e[i].key, prefix, strlen(prefix)) == 0;
    pthread_mutex_unlock(&t->lock);
    return n;
}

static int read_int(table *t, const int *field) {
    pthread_mutex_lock(&t->lock);
    int v = *field;
    pthread_mutex_unlock(&t->lock);
    return v;
}

static void set_fail_puts(table *t, const char *prefix) {
    pthread_mutex_lock(&t->lock);
    t->fail_prefix = prefix;
    pthread_mutex_unlock(&t->lock);
}

static void release(table *t) {
    for (int i = 0; i < SLOTS; i++)
        if (t->e[i].used)
            forget(t, i);
    pthread_mutex_destroy(&t->lock);
}

static mqttc_store *make_store(table *t) {
    pthread_mutex_init(&t->lock, NULL);
    mqttc_store_callbacks cb = MQTTC_STORE_CALLBACKS_INIT(.userdata = t, .put = t_put, .get = t_get,
                                                          .remove = t_remove, .list = t_list, .clear = t_clear,
                                                          .sync = t_sync, .drop = t_drop);
    mqttc_store *s = NULL;
    CHECK(mqttc_store_new(&cb, &s));
    return s;
}

static void pause_ms(long ms) {
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits up to 10 s for `count(t, prefix)` to be `n`. */
static void wait_count(table *t, const char *prefix, int n) {
    for (int i = 0; i < 10000 && count(t, prefix) != n; i++)
        pause_ms(1);
    if (count(t, prefix) != n)
        FAIL("%d key(s) %s*, expected %d", count(t, prefix), prefix, n);
}

/* A broker that accepts one connection, answers its CONNECT with a CONNACK (session not present)
 * and then reads and ignores everything until the client goes. */
static void *silent_broker(void *arg) {
    int fd = *(int *)arg;
    int conn = accept(fd, NULL, NULL);
    char buf[4096];
    if (conn < 0 || read(conn, buf, sizeof buf) <= 0)
        FAIL("silent broker: no CONNECT");
    static const unsigned char connack[] = {0x20, 0x02, 0x00, 0x00};
    if (write(conn, connack, sizeof connack) != (ssize_t)sizeof connack)
        FAIL("silent broker: CONNACK");
    while (read(conn, buf, sizeof buf) > 0) {
    }
    close(conn);
    return NULL;
}

static mqttc_options store_options(mqttc_store *s) {
    mqttc_options o;
    mqttc_options_init(&o);
    o.client_id = "store-callbacks";
    o.clean_session = false;
    o.store = s;
    o.store_sync = MQTTC_STORE_SYNC_EVERY;
    return o;
}

static void connect_ok(mqttc_client *c) {
    mqttc_token t;
    CHECK(mqttc_connect(c, &t));
    CHECK(mqttc_token_wait(c, t, 10000));
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* One more than MESSAGES: the last is the message that waits for the store. */
static int received[MESSAGES + 1];
static int restored[MESSAGES];
static mqttc_token restored_token[MESSAGES];

/* The message number in a payload "message N", or -1. */
static int number(const mqttc_message *m) {
    char text[32] = {0};
    int n = -1;
    if (m->payload_len < sizeof text)
        memcpy(text, m->payload, m->payload_len);
    if (sscanf(text, "message %d", &n) != 1 || n < 0 || n > MESSAGES)
        return -1;
    return n;
}

static void on_message(mqttc_client *c, const mqttc_message *m, void *u) {
    (void)c;
    (void)u;
    int n = number(m);
    pthread_mutex_lock(&lock);
    if (n >= 0)
        received[n]++;
    pthread_mutex_unlock(&lock);
}

/* How many times the subscriber got message `n`. */
static int got(int n) {
    pthread_mutex_lock(&lock);
    int times = received[n];
    pthread_mutex_unlock(&lock);
    return times;
}

static void on_restored(mqttc_client *c, mqttc_token token, const mqttc_message *m, void *u) {
    (void)c;
    (void)u;
    int n = number(m);
    pthread_mutex_lock(&lock);
    if (n >= 0 && n < MESSAGES) {
        restored[n]++;
        restored_token[n] = token;
    }
    pthread_mutex_unlock(&lock);
}

/* How many of `counts` are at least 1, and whether any is more than 1. */
static int seen(const int *counts, bool *twice) {
    int n = 0;
    *twice = false;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < MESSAGES; i++) {
        n += counts[i] > 0;
        *twice |= counts[i] > 1;
    }
    pthread_mutex_unlock(&lock);
    return n;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    uint16_t port = (uint16_t)atoi(argv[1]);
    static table t, t2;
    mqttc_store *store = make_store(&t);

    /* 1. Stored while a broker that never acknowledges holds them. */
    uint16_t silent_port;
    int listener = listen_any(&silent_port);
    pthread_t silent;
    pthread_create(&silent, NULL, silent_broker, &listener);
    mqttc_options o = store_options(store);
    mqttc_client *a = NULL, *other = NULL;
    CHECK(mqttc_client_new("127.0.0.1", silent_port, &o, &a));
    if (mqttc_client_new("127.0.0.1", port, &o, &other) != MQTTC_ERR_STORE)
        FAIL("a second client got the store in use");
    connect_ok(a);
    for (int i = 0; i < MESSAGES; i++) {
        char payload[32];
        int len = snprintf(payload, sizeof payload, "message %d", i);
        CHECK(mqttc_publish(a, TOPIC, payload, (size_t)len, 1 + i % 2, false, NULL));
    }
    wait_count(&t, "s.", MESSAGES);
    if (count(&t, "m.") != MESSAGES || read_int(&t, &t.syncs) < MESSAGES)
        FAIL("%d messages stored, %d syncs", count(&t, "m."), read_int(&t, &t.syncs));
    printf("ok 1 %d messages and their packet ids stored, %d syncs\n", MESSAGES, read_int(&t, &t.syncs));

    set_fail_puts(&t, "");
    mqttc_status st = mqttc_publish(a, TOPIC, "refused", 7, 1, false, NULL);
    const char *why = mqttc_last_error();
    if (st != MQTTC_ERR_STORE || !strstr(why, "put") || !strstr(why, "returned -5"))
        FAIL("a failing put: %s, detail \"%s\"", mqttc_status_str(st), why);
    set_fail_puts(&t, NULL);
    if (count(&t, "m.") != MESSAGES)
        FAIL("%d messages left after a failing put", count(&t, "m."));
    printf("ok 2 a failing put: %s (%s)\n", mqttc_status_str(st), why);

    /* 2. Freed with everything in flight: the messages stay. */
    mqttc_client_free(a);
    pthread_join(silent, NULL);
    close(listener);
    if (count(&t, "m.") != MESSAGES || read_int(&t, &t.drops) != 0)
        FAIL("after the free: %d messages, drop ran %d time(s)", count(&t, "m."), read_int(&t, &t.drops));
    printf("ok 3 the freed client's messages stay in the store\n");

    /* 3. Restored by a new client with the same store, and delivered. */
    mqttc_client *sub = NULL, *b = NULL;
    CHECK(mqttc_client_new("127.0.0.1", port, NULL, &sub));
    connect_ok(sub);
    mqttc_token st_sub;
    CHECK(mqttc_subscribe(sub, TOPIC, 2, on_message, NULL, &st_sub));
    CHECK(mqttc_token_wait(sub, st_sub, 10000));
    CHECK(mqttc_client_new("127.0.0.1", port, &o, &b));
    CHECK(mqttc_client_set_on_restored(b, on_restored, NULL));
    connect_ok(b);
    bool twice;
    for (int i = 0; i < 10000 && seen(restored, &twice) < MESSAGES; i++)
        pause_ms(1);
    if (seen(restored, &twice) != MESSAGES || twice)
        FAIL("%d of %d messages restored%s", seen(restored, &twice), MESSAGES, twice ? ", some twice" : "");
    for (int i = 0; i < MESSAGES; i++) {
        pthread_mutex_lock(&lock);
        mqttc_token token = restored_token[i];
        pthread_mutex_unlock(&lock);
        CHECK(mqttc_token_wait(b, token, 10000));
    }
    for (int i = 0; i < 10000 && seen(received, &twice) < MESSAGES; i++)
        pause_ms(1);
    if (seen(received, &twice) != MESSAGES)
        FAIL("the subscriber got %d of %d messages", seen(received, &twice), MESSAGES);
    printf("ok 4 %d messages restored once each, acknowledged, and received\n", MESSAGES);

    set_fail_puts(&t, "s.");
    char held[32];
    int held_len = snprintf(held, sizeof held, "message %d", MESSAGES);
    mqttc_token held_token;
    CHECK(mqttc_publish(b, TOPIC, held, (size_t)held_len, 2, false, &held_token));
    pause_ms(500);
    if (got(MESSAGES) != 0 || mqttc_token_poll(b, held_token) != 1)
        FAIL("a message went out while the store could not note its packet id");
    set_fail_puts(&t, NULL);
    CHECK(mqttc_token_wait(b, held_token, 10000));
    for (int i = 0; i < 10000 && got(MESSAGES) == 0; i++)
        pause_ms(1);
    pause_ms(100);
    if (got(MESSAGES) != 1)
        FAIL("the message that waited for the store arrived %d time(s)", got(MESSAGES));
    printf("ok 5 a message waits while the store cannot note its packet id, then goes once\n");

    mqttc_token d;
    CHECK(mqttc_disconnect(b, &d));
    CHECK(mqttc_token_wait(b, d, 10000));
    mqttc_client_free(b);
    if (count(&t, "") != 0)
        FAIL("%d key(s) left once every message was acknowledged", count(&t, ""));
    printf("ok 6 acknowledged messages leave the store\n");

    /* 4. drop: once, after the last of the frees; a freed store is refused. */
    if (read_int(&t, &t.drops) != 0)
        FAIL("drop ran before the store was freed");
    mqttc_store_free(store);
    if (read_int(&t, &t.drops) != 1)
        FAIL("drop ran %d time(s) after the store and its client were freed", read_int(&t, &t.drops));
    mqttc_store_free(store);
    if (read_int(&t, &t.drops) != 1 || !strstr(mqttc_last_error(), "freed"))
        FAIL("a second free: drop ran %d time(s)", read_int(&t, &t.drops));
    if (mqttc_client_new("127.0.0.1", port, &o, &other) != MQTTC_ERR_INVALID_HANDLE)
        FAIL("a client was made with a freed store");
    mqttc_store *s2 = make_store(&t2);
    o.store = s2;
    CHECK(mqttc_client_new("127.0.0.1", port, &o, &other));
    mqttc_store_free(s2);
    if (read_int(&t2, &t2.drops) != 0)
        FAIL("drop ran while a client still used the store");
    mqttc_client_free(other);
    if (read_int(&t2, &t2.drops) != 1)
        FAIL("drop ran %d time(s) after the client was freed", read_int(&t2, &t2.drops));
    printf("ok 7 drop runs once, after the last free, in either order\n");

    mqttc_client_free(sub);
    release(&t);
    release(&t2);
    printf("store_callbacks: ok\n");
    return 0;
}
