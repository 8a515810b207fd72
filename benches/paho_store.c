/*
 * paho_store: Eclipse Paho C (MQTTAsync) publishing with and without its file persistence, the
 * peer of `mqttc_bench --mode pub --store DIR` in scripts/bench.py's store section.
 *
 * Usage: paho_store [--host H] [--port P] [--mode pub] [--qos 1|2] [--count N] [--size BYTES]
 *                   [--inflight W] [--store DIR]
 *        (defaults: 127.0.0.1 1883 pub 1 100000 64 100, no persistence)
 *
 * One client publishes N messages of BYTES bytes to bench/t, timed from the first publish until
 * every one is acknowledged (QoS 1: PUBACK, QoS 2: PUBCOMP), and prints the line mqttc_bench
 * prints in pub mode:
 *   {"lib":"paho-c","mode":"pub","qos":..,"size":..,"count":..,"secs":..,"msgs_per_s":..}
 *
 * --store DIR creates the client with MQTTCLIENT_PERSISTENCE_DEFAULT, Paho's file persistence,
 * in DIR; without it, with MQTTCLIENT_PERSISTENCE_NONE (in memory only). The file persistence
 * writes each queued publish to a file of its own, reads it back and deletes it when the publish
 * goes out, writes the sent message to another file until its acknowledgement (QoS 2: and the
 * PUBREL to a third), with fopen/fwrite/fclose and no fsync: what it writes survives the process
 * being killed, not a power loss (mqttclient's store with --store-sync none promises the same).
 *
 * At most W publishes are unacknowledged at once: Paho's maxInflight is set to W, and this
 * program keeps the window itself, handing Paho a publish only when the window has room. It does
 * not queue publishes beyond the window in Paho, as mqttc_bench does in mqttclient: Paho's
 * sending thread is not woken by an acknowledgement, so a publish held back by maxInflight waits
 * until the next publish call or Paho's one-second timer. Once the window is full, this program
 * sleeps until an acknowledgement frees a place in it. Waiting instead until a quarter of the
 * window is free, as mqttclient's own window does (mqttc_options.max_inflight), measured slower
 * for Paho: by 15% at QoS 1 and 40% at QoS 2, with runs at half the rate or less.
 *
 * QoS 1 and 2 only: persistence is about messages that wait for an acknowledgement.
 *
 * Exit status: 0 done, 1 Paho or the broker failed (on stderr), 2 bad command line.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <MQTTAsync.h>

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_args.h"

/* Connecting and disconnecting may take this long. */
#define SETUP_TIMEOUT_S 10.0
/* No acknowledgement for this long means a lost message or a stuck client: fail, do not hang. */
#define STALL_TIMEOUT_S 30.0

struct opts {
    const char *host;
    long port;
    long qos;
    long count;
    long size;
    long inflight;
    const char *store; /* --store DIR, or NULL */
};

/* What Paho's threads tell the main thread. `wake_at` is the count of completed operations the
 * main thread sleeps for (LONG_MAX while it does not): a callback takes the mutex to wake it only
 * when the count reaches it. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    atomic_long done; /* the connect, then each acknowledged publish, then the disconnect */
    atomic_long wake_at;
    atomic_int failure; /* Paho's first error code, or 1 for a lost connection; 0 if none */
    char failure_what[160];
} S = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake_at = LONG_MAX}; /* cond: set up in main */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static struct opts parse_opts(int argc, char **argv) {
    bench_name = "paho_store";
    bench_usage = "[--host H] [--port P] [--mode pub] [--qos 1|2] [--count N] [--size BYTES] "
                  "[--inflight W] [--store DIR]";
    struct opts o = {"127.0.0.1", 1883, 1, 100000, 64, 100, NULL};
    /* Each numeric option: where its value goes and its range. */
    const struct {
        const char *name;
        long *value;
        long min, max;
    } numeric[] = {
        {"--port", &o.port, 1, 65535},
        {"--qos", &o.qos, 1, 2},
        {"--count", &o.count, 1, LONG_MAX / 2},
        {"--size", &o.size, 0, 256L * 1024 * 1024},
        /* Paho's packet ids: a window wider than 65,535 would run out of them. */
        {"--inflight", &o.inflight, 1, 65535},
    };
    for (int i = 1; i < argc; i += 2) {
        const char *opt = argv[i];
        if (i + 1 >= argc)
            usage("%s needs a value", opt);
        const char *val = argv[i + 1];
        size_t k = 0;
        while (k < sizeof numeric / sizeof numeric[0] && strcmp(opt, numeric[k].name))
            k++;
        if (k < sizeof numeric / sizeof numeric[0])
            *numeric[k].value = parse_long(opt, val, numeric[k].min, numeric[k].max);
        else if (!strcmp(opt, "--host"))
            o.host = val;
        else if (!strcmp(opt, "--store"))
            o.store = val;
        else if (!strcmp(opt, "--mode")) {
            if (strcmp(val, "pub"))
                usage("--mode %s: only pub", val);
        } else
            usage("unknown argument %s", opt);
    }
    return o;
}

/* ---- callbacks, on Paho's threads ------------------------------------------------------------ */

static void wake(void) {
    pthread_mutex_lock(&S.lock);
    pthread_cond_signal(&S.cond);
    pthread_mutex_unlock(&S.lock);
}

static void fail(int code, const char *what) {
    int expected = 0;
    if (atomic_compare_exchange_strong(&S.failure, &expected, code))
        snprintf(S.failure_what, sizeof S.failure_what, "%s", what);
    wake();
}

/* The sequentially consistent increment here and store of `wake_at` in wait_done mean that either
 * the main thread sees the new count before it sleeps, or this sees its `wake_at` and wakes it
 * (under the mutex, so not before it sleeps). */
static void on_success(void *context, MQTTAsync_successData *data) {
    (void)context;
    (void)data;
    long n = atomic_fetch_add(&S.done, 1) + 1;
    if (n >= atomic_load(&S.wake_at))
        wake();
}

static void on_failure(void *context, MQTTAsync_failureData *data) {
    char what[160];
    snprintf(what, sizeof what, "%s failed: %s", (const char *)context,
             data && data->message ? data->message : MQTTAsync_strerror(data ? data->code : MQTTASYNC_FAILURE));
    fail(data && data->code ? data->code : MQTTASYNC_FAILURE, what);
}

static void on_connection_lost(void *context, char *cause) {
    (void)context;
    char what[160];
    snprintf(what, sizeof what, "connection lost: %s", cause ? cause : "(no cause given)");
    fail(1, what);
}

/* Paho requires one; nothing is subscribed, so nothing arrives. */
static int on_message(void *context, char *topic, int topic_len, MQTTAsync_message *msg) {
    (void)context;
    (void)topic_len;
    MQTTAsync_freeMessage(&msg);
    MQTTAsync_free(topic);
    return 1;
}

/* ---- the main thread --------------------------------------------------------------------------- */

/* Blocks until `target` operations have completed; exits on a failure, or when the count stops
 * moving for `stall_s`. */
static void wait_done(long target, double stall_s, const char *what) {
    if (atomic_load(&S.done) >= target)
        return;
    atomic_store(&S.wake_at, target);
    long seen = -1;
    double progress_at = 0;
    pthread_mutex_lock(&S.lock);
    for (;;) {
        long n = atomic_load(&S.done);
        if (n >= target)
            break;
        if (atomic_load(&S.failure)) {
            fprintf(stderr, "paho_store: %s: %s\n", what, S.failure_what);
            exit(1);
        }
        double now = now_s();
        if (n != seen) {
            seen = n;
            progress_at = now;
        } else if (now - progress_at > stall_s) {
            fprintf(stderr, "paho_store: %s: stuck at %ld of %ld for %.0f s\n", what, n, target, stall_s);
            exit(1);
        }
        /* The deadline only bounds how long a stall goes unnoticed; callbacks wake us earlier. */
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += 1;
        pthread_cond_timedwait(&S.cond, &S.lock, &deadline);
    }
    pthread_mutex_unlock(&S.lock);
    atomic_store(&S.wake_at, LONG_MAX);
}

static void check(int rc, const char *what) {
    if (rc != MQTTASYNC_SUCCESS) {
        fprintf(stderr, "paho_store: %s: %s\n", what, MQTTAsync_strerror(rc));
        exit(1);
    }
}

int main(int argc, char **argv) {
    struct opts o = parse_opts(argc, argv);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&S.cond, &ca);
    pthread_condattr_destroy(&ca);
    char *payload = malloc(o.size ? (size_t)o.size : 1);
    if (!payload) {
        fprintf(stderr, "paho_store: out of memory\n");
        return 1;
    }
    memset(payload, 'x', (size_t)o.size);

    char uri[300], id[64];
    snprintf(uri, sizeof uri, "tcp://%s:%ld", o.host, o.port);
    snprintf(id, sizeof id, "paho-store-%ld", (long)getpid());
    MQTTAsync c;
    check(MQTTAsync_create(&c, uri, id, o.store ? MQTTCLIENT_PERSISTENCE_DEFAULT : MQTTCLIENT_PERSISTENCE_NONE,
                           (void *)o.store),
          "MQTTAsync_create");
    check(MQTTAsync_setCallbacks(c, NULL, on_connection_lost, on_message, NULL), "MQTTAsync_setCallbacks");

    MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
    co.keepAliveInterval = 60;
    co.cleansession = 1;
    co.maxInflight = (int)o.inflight;
    co.MQTTVersion = MQTTVERSION_3_1_1; /* as mqttclient's default */
    co.onSuccess = on_success;
    co.onFailure = on_failure;
    co.context = "connect";
    check(MQTTAsync_connect(c, &co), "MQTTAsync_connect");
    wait_done(1, SETUP_TIMEOUT_S, "connect");

    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    ro.onSuccess = on_success;
    ro.onFailure = on_failure;
    ro.context = "publish";
    double t0 = now_s();
    for (long i = 0; i < o.count; i++) {
        /* `done` counts the connect too: i publishes made, done - 1 acknowledged, and this one
         * may go when at most W - 1 are unacknowledged. */
        wait_done(1 + i - (o.inflight - 1), STALL_TIMEOUT_S, "publish");
        check(MQTTAsync_send(c, "bench/t", (int)o.size, payload, (int)o.qos, 0, &ro), "MQTTAsync_send");
    }
    wait_done(1 + o.count, STALL_TIMEOUT_S, "publish");
    double secs = now_s() - t0;
    printf("{\"lib\":\"paho-c\",\"mode\":\"pub\",\"qos\":%ld,\"size\":%ld,\"count\":%ld,\"secs\":%.6f,"
           "\"msgs_per_s\":%.0f}\n",
           o.qos, o.size, o.count, secs, (double)o.count / secs);
    fflush(stdout);

    MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
    d.onSuccess = on_success;
    d.onFailure = on_failure;
    d.context = "disconnect";
    check(MQTTAsync_disconnect(c, &d), "MQTTAsync_disconnect");
    wait_done(2 + o.count, SETUP_TIMEOUT_S, "disconnect");
    MQTTAsync_destroy(&c);
    free(payload);
    return 0;
}
