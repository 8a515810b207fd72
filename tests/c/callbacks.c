/*
 * Callbacks may call the API: publish, subscribe and unsubscribe from inside a message callback;
 * a blocking wait there is refused with MQTTC_ERR_IN_CALLBACK instead of hanging; the client can
 * be freed from inside its own callback, after which no callback runs and every userdata
 * destructor has run exactly once. Also checks the completion and log callbacks, and which
 * library thread the message callbacks run on.
 * Usage: callbacks <port of a running broker> [inline|loop|pool]
 *   inline: the clients are made with inline_callbacks (callbacks on the network thread).
 *   loop: the clients run on an mqttc_loop, run by a thread of this program ("loop-runner") and
 *         by this thread's token waits.
 *   pool: the clients share an mqttc_pool of one thread (callbacks on its callback thread).
 */
#define _GNU_SOURCE /* pthread_getname_np */
#include "check.h"

#include <pthread.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


static atomic_int in_count, out_count, sub2_count, free_count, drops, completions, log_lines;
static atomic_int wait_in_callback_status = 1;
static bool inline_callbacks;
static mqttc_loop *run_loop;
static mqttc_pool *pool;
static atomic_int stop_runner;
/* The name of the thread the last message callback ran on. */
static char callback_thread[32];
static atomic_int publish_in_callback_status = 1;

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits (polling) up to 10 s for *counter to reach want. */
static void await_count(atomic_int *counter, int want, const char *what) {
    for (int i = 0; i < 1000 && atomic_load(counter) < want; i++)
        sleep_ms(10);
    if (atomic_load(counter) < want)
        FAIL("%s: %d of %d", what, atomic_load(counter), want);
}

static void wait_ok(mqttc_client *c, mqttc_token t, const char *what) {
    mqttc_status st = mqttc_token_wait(c, t, 10000);
    if (st != MQTTC_OK)
        FAIL("%s: %s", what, mqttc_status_str(st));
}

static void on_drop(void *userdata) {
    (void)userdata;
    atomic_fetch_add(&drops, 1);
}

static void on_sub2(mqttc_client *c, const mqttc_message *m, void *u) {
    (void)c, (void)m, (void)u;
    atomic_fetch_add(&sub2_count, 1);
}

static void on_out(mqttc_client *c, const mqttc_message *m, void *u) {
    (void)c, (void)u;
    if (m->payload_len == 5 && memcmp(m->payload, "reply", 5) == 0)
        atomic_fetch_add(&out_count, 1);
}

/* Calls the API from inside a callback. */
static void on_in(mqttc_client *c, const mqttc_message *m, void *u) {
    (void)m, (void)u;
    pthread_getname_np(pthread_self(), callback_thread, sizeof callback_thread);
    mqttc_token t = 0;
    atomic_store(&publish_in_callback_status, mqttc_publish(c, "cb/out", "reply", 5, 1, false, &t));
    atomic_store(&wait_in_callback_status, mqttc_token_wait(c, t, 5000));
    mqttc_subscription s = MQTTC_SUBSCRIPTION_INIT("cb/sub2", 1, on_sub2, NULL, on_drop, 0);
    mqttc_token st;
    if (mqttc_subscribe_many(c, &s, 1, &st) != MQTTC_OK)
        printf("FAIL: subscribe inside callback: %s\n", mqttc_last_error());
    if (mqttc_unsubscribe(c, "cb/never", NULL) != MQTTC_OK)
        printf("FAIL: unsubscribe inside callback: %s\n", mqttc_last_error());
    atomic_fetch_add(&in_count, 1);
}

/* Frees its own client. */
static void on_free(mqttc_client *c, const mqttc_message *m, void *u) {
    (void)m, (void)u;
    atomic_fetch_add(&free_count, 1);
    mqttc_client_free(c);
}

/* A slow callback, to be caught by a free from the main thread. */
static atomic_int slow_started, slow_finished;
static void on_slow(mqttc_client *c, const mqttc_message *m, void *u) {
    (void)c, (void)m, (void)u;
    atomic_store(&slow_started, 1);
    sleep_ms(200);
    atomic_store(&slow_finished, 1);
}

static void on_complete(mqttc_client *c, mqttc_token t, mqttc_status st, void *u) {
    (void)c, (void)t, (void)st, (void)u;
    atomic_fetch_add(&completions, 1);
}

static void on_log(mqttc_client *c, int level, const char *line, void *u) {
    (void)c, (void)u;
    if (level >= MQTTC_LOG_ERROR && level <= MQTTC_LOG_INFO && line && line[0])
        atomic_fetch_add(&log_lines, 1);
}

static mqttc_client *connected(uint16_t port) {
    mqttc_client *c = NULL;
    mqttc_token t;
    mqttc_options o;
    mqttc_options_init(&o);
    o.inline_callbacks = inline_callbacks;
    o.run_loop = run_loop;
    o.pool = pool;
    CHECK(mqttc_client_new("127.0.0.1", port, &o, &c));
    CHECK(mqttc_client_set_on_complete(c, on_complete, NULL));
    CHECK(mqttc_client_set_log(c, MQTTC_LOG_INFO, on_log, NULL));
    CHECK(mqttc_connect(c, &t));
    wait_ok(c, t, "connect");
    return c;
}

static void *runner(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "loop-runner");
    while (!atomic_load(&stop_runner))
        if (mqttc_loop_run(run_loop, 50) != MQTTC_OK)
            return "mqttc_loop_run failed";
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    uint16_t port = (uint16_t)atoi(argv[1]);
    inline_callbacks = argc > 2 && !strcmp(argv[2], "inline");
    pthread_t runner_thread;
    if (argc > 2 && !strcmp(argv[2], "loop")) {
        CHECK(mqttc_loop_new(&run_loop));
        if (pthread_create(&runner_thread, NULL, runner, NULL))
            FAIL("pthread_create");
    }
    if (argc > 2 && !strcmp(argv[2], "pool"))
        CHECK(mqttc_pool_new(1, &pool));
    char main_thread[32];
    pthread_getname_np(pthread_self(), main_thread, sizeof main_thread);
    mqttc_client *a = connected(port), *b = connected(port);
    mqttc_token t;

    mqttc_subscription subs[] = {
        MQTTC_SUBSCRIPTION_INIT("cb/in", 1, on_in, NULL, on_drop, 0),
        MQTTC_SUBSCRIPTION_INIT("cb/out", 1, on_out, NULL, on_drop, 0),
        MQTTC_SUBSCRIPTION_INIT("cb/free", 0, on_free, NULL, on_drop, 0),
    };
    CHECK(mqttc_subscribe_many(a, subs, 3, &t));
    wait_ok(a, t, "subscribe");
    size_t n = 0;
    uint8_t codes[3];
    CHECK(mqttc_token_codes(a, t, codes, 3, &n));
    if (n != 3 || codes[0] != 1 || codes[1] != 1 || codes[2] != 0)
        FAIL("granted QoS: n=%zu %d %d %d", n, codes[0], codes[1], codes[2]);

    CHECK(mqttc_publish(b, "cb/in", "go", 2, 1, false, &t));
    wait_ok(b, t, "publish cb/in");
    await_count(&in_count, 1, "callback on cb/in");
    await_count(&out_count, 1, "reply published from inside a callback");
    if (atomic_load(&publish_in_callback_status) != MQTTC_OK)
        FAIL("publish inside callback: %d", atomic_load(&publish_in_callback_status));
    if (atomic_load(&wait_in_callback_status) != MQTTC_ERR_IN_CALLBACK)
        FAIL("wait inside callback returned %d, want MQTTC_ERR_IN_CALLBACK", atomic_load(&wait_in_callback_status));
    /* With a loop: whichever thread runs it, the runner or this one waiting on a token. */
    const char *want_thread = inline_callbacks ? "mqttc-net"
                              : run_loop       ? "loop-runner"
                              : pool           ? "mqttc-pool-cb"
                                               : "mqttc-callbacks";
    if (strcmp(callback_thread, want_thread) && !(run_loop && !strcmp(callback_thread, main_thread)))
        FAIL("the message callback ran on thread \"%s\", want \"%s\"", callback_thread, want_thread);

    /* The subscription made inside the callback works (poll until its SUBACK has surely arrived). */
    for (int i = 0; i < 100 && atomic_load(&sub2_count) == 0; i++) {
        CHECK(mqttc_publish(b, "cb/sub2", "x", 1, 1, false, &t));
        wait_ok(b, t, "publish cb/sub2");
        sleep_ms(20);
    }
    await_count(&sub2_count, 1, "subscription made inside a callback");

    /* Free from inside a callback: two messages, but the callback runs once and then none. */
    CHECK(mqttc_publish(b, "cb/free", "1", 1, 0, false, NULL));
    CHECK(mqttc_publish(b, "cb/free", "2", 1, 0, false, NULL));
    await_count(&free_count, 1, "callback that frees its client");
    /* Four registrations with a destructor (cb/in, cb/out, cb/free, cb/sub2): each dropped once. */
    await_count(&drops, 4, "userdata destructors after free");
    sleep_ms(300);
    if (atomic_load(&free_count) != 1)
        FAIL("a callback ran after its client was freed (%d)", atomic_load(&free_count));
    if (atomic_load(&drops) != 4)
        FAIL("destructors ran %d times, want 4", atomic_load(&drops));
    if (atomic_load(&completions) < 4)
        FAIL("completion callback ran %d times", atomic_load(&completions));
    if (atomic_load(&log_lines) < 2)
        FAIL("log callback got %d lines", atomic_load(&log_lines));

    /* A free from another thread while a callback runs waits for it to return. */
    mqttc_client *slow = connected(port);
    mqttc_subscription s = MQTTC_SUBSCRIPTION_INIT("cb/slow", 0, on_slow, NULL, NULL, 0);
    CHECK(mqttc_subscribe_many(slow, &s, 1, &t));
    wait_ok(slow, t, "subscribe cb/slow");
    CHECK(mqttc_publish(b, "cb/slow", "z", 1, 0, false, NULL));
    await_count(&slow_started, 1, "slow callback");
    mqttc_client_free(slow);
    if (!atomic_load(&slow_finished))
        FAIL("mqttc_client_free returned while the client's callback was still running");

    mqttc_token d;
    CHECK(mqttc_disconnect(b, &d));
    wait_ok(b, d, "disconnect");
    mqttc_client_free(b);
    mqttc_pool_free(pool);
    if (run_loop) {
        atomic_store(&stop_runner, 1);
        void *err;
        pthread_join(runner_thread, &err);
        if (err)
            FAIL("%s", (const char *)err);
        mqttc_loop_free(run_loop);
    }
    printf("callbacks: ok (%s, completions %d, log lines %d)\n", callback_thread, atomic_load(&completions),
           atomic_load(&log_lines));
    return 0;
}
