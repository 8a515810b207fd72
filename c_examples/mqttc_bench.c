/*
 * mqttc_bench: mqttclient's program for the side-by-side MQTT client benchmark
 * (shared/bench/compare.py), with the same command line and output as the peer programs there.
 *
 * Usage: mqttc_bench [--host H] [--port P] [--mode pub|e2e|latency|clients] [--qos 0|1|2]
 *                    [--count N] [--size BYTES] [--inflight W] [--callbacks network|thread|loop]
 *                    [--nocopy on|off] [--store DIR] [--store-sync batch|every|none]
 *                    [--clients N] [--threads T] [--interval-ms I] [--hold-s S] [--sources K]
 *        (defaults: 127.0.0.1 1883 pub 0 100000 64 100, callbacks by mode)
 *
 * Prints one JSON line on standard output:
 *   {"lib":"mqttclient","mode":..,"qos":..,"size":..,"count":..,"secs":..,"msgs_per_s":..}
 * or in latency mode "p50_us","p99_us","max_us" in place of "msgs_per_s".
 *
 *   pub      one client publishes N messages of BYTES bytes to bench/t, timed from the first publish
 *            until every one is acknowledged (QoS 1: PUBACK, QoS 2: PUBCOMP); at QoS 0, until a
 *            QoS 1 marker published to bench/end after them is acknowledged.
 *   e2e      a publisher and a subscriber (filter bench/#, same QoS), two clients in this process:
 *            timed from the first publish until the subscriber has received N.
 *   latency  publish one message to bench/ping and wait until the subscriber's callback has it,
 *            N times; each round trip is one sample ("secs" is the whole run).
 * At QoS 1/2 at most W publishes are unacknowledged at once (mqttc_options.max_inflight).
 * --callbacks picks where the callbacks run: on each client's network thread
 * (mqttc_options.inline_callbacks, libmosquitto's and Paho's model), on the library's own callback
 * thread (its default), or on this program's main thread, both clients on one mqttc_loop
 * (mqttc_options.run_loop: the library starts no thread). Without it, every mode uses the loop,
 * as libmosquitto's mosquitto_loop users do: in latency mode a round trip then wakes one thread,
 * not three; in e2e mode at QoS 2 it spends less CPU per message, and steadily, than the callback
 * thread; in pub mode at QoS 0 it keeps the rate at the raw-socket client's, where a network
 * thread busy beside this one on a 2-core machine can take the broker's core (BENCHMARKS.md).
 * Payloads of LEND_FROM bytes and more are lent with mqttc_publish_nocopy (the one buffer, valid
 * until the end, for every message), as an application sending large buffers would: the library
 * then makes no copy. --nocopy off publishes them with mqttc_publish, which copies each.
 *
 * --store keeps the publisher's QoS 1/2 messages in the library's message store under DIR
 * (mqttc_options.store_dir) with the sync policy --store-sync (default batch), as an application
 * that must not lose messages to a crash would; the store is left empty when the run ends.
 *
 *   clients  N clients on one mqttc_pool of T threads (0: one per core; --callbacks is not used),
 *            each subscribed to its own topic and publishing to its neighbour's every I ms for S
 *            seconds, then disconnected and freed. --sources K spreads their connections over the
 *            source addresses 127.0.0.1 .. 127.0.0.K (mqttc_options.bind_address), beyond the
 *            ephemeral ports of one address. The descriptor limit is raised to its maximum. The
 *            measurement and its JSON line ("clients", "connected", "connect_s", "threads_peak",
 *            "rss_kb", "rss_kb_per_client", "expected", "delivered", "p99_ms") are fleet.h's, the
 *            same for the peers benches/fleet_mosquitto.c and benches/fleet_paho.c; it exits
 *            with 1 after the line when a client did not connect or a message did not arrive.
 *
 * Exit status: 0 done, 1 the library or the broker failed (on stderr), 2 bad command line.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <mqttclient.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <unistd.h>

#include "fleet.h"

/* Setting up (connect, subscribe) and tearing down may take this long. */
#define SETUP_TIMEOUT_MS 10000u
/* A run that makes no progress for this long has lost messages: fail instead of hanging. */
#define STALL_TIMEOUT_S 30.0
/* QoS 1/2 publishes handed to the library beyond its in-flight window (see publish_all). */
#define AHEAD 1024
/* ... or fewer for large payloads, so that what waits in the library stays near this many bytes.
 * Small enough for the library's payload buffers to be reused as they are written: at 32 MiB,
 * most copies were made in fresh memory, and its page faults cost 64 KiB publishes 20-30%. */
#define AHEAD_BYTES (4L << 20)
/* Payloads at least this large are lent, not copied (--nocopy). */
#define LEND_FROM (16L * 1024)


enum mode { MODE_PUB, MODE_E2E, MODE_LATENCY, MODE_CLIENTS };

struct args {
    const char *host;
    int port;
    enum mode mode;
    const char *mode_name;
    int qos;
    long count;
    long size;
    long inflight;
    const char *callbacks; /* "network", "thread" or "loop" */
    bool nocopy;           /* lend payloads of LEND_FROM bytes and more */
    const char *store_dir; /* --store, or NULL */
    int store_sync;        /* --store-sync: an mqttc_store_sync value */
    long threads;          /* clients mode: the pool's threads, and the rest of its command line */
    struct fleet_args fleet;
};

/* A count kept by a callback thread. The main thread waits for it to reach a value by publishing
 * that value in `wake_at` first: the callback takes the mutex to wake it only then, so a run costs
 * a handful of wakeups (one per message only in latency mode, where main waits for each). */
struct counter {
    atomic_long n;
    atomic_long wake_at; /* LONG_MAX while nobody waits */
};

/* Shared by the main thread and the clients' callback threads. */
struct bench {
    struct args a;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct counter acked;    /* QoS 1/2: the publisher's acknowledged publishes (completion callback) */
    struct counter received; /* e2e, latency: messages that reached the subscriber */
    mqttc_loop *loop;        /* --callbacks loop: the loop both clients run on, else NULL */
    atomic_int failure;      /* the first error a callback saw (an mqttc_status), 0 if none */
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- command line ---------------------------------------------------------------------------- */

static void usage_error(const char *fmt, const char *what) {
    fprintf(stderr, "mqttc_bench: ");
    fprintf(stderr, fmt, what);
    fprintf(stderr,
            "\nusage: mqttc_bench [--host H] [--port P] [--mode pub|e2e|latency|clients] [--qos 0|1|2] "
            "[--count N] [--size BYTES] [--inflight W] [--callbacks network|thread|loop] "
            "[--nocopy on|off] [--store DIR] [--store-sync batch|every|none] [--clients N] "
            "[--threads T] [--interval-ms I] [--hold-s S] [--sources K]\n");
    exit(2);
}

/* A whole decimal number in [min, max], or a usage error naming `opt`. */
static long number(const char *opt, const char *text, long min, long max) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < min || v > max) {
        char buf[128];
        snprintf(buf, sizeof buf, "%s %s: expected a number from %ld to %ld", opt, text, min, max);
        usage_error("%s", buf);
    }
    return v;
}

static void parse_args(int argc, char **argv, struct args *a) {
    *a = (struct args){"127.0.0.1", 1883, MODE_PUB, "pub", 0, 100000, 64, 100, NULL, true, NULL,
                       MQTTC_STORE_SYNC_BATCH, 0, FLEET_ARGS_DEFAULT};
    for (int i = 1; i < argc; i += 2) {
        const char *opt = argv[i];
        if (i + 1 >= argc)
            usage_error("%s needs a value", opt);
        const char *val = argv[i + 1];
        if (fleet_option(&a->fleet, opt, val, number)) {
            continue;
        } else if (!strcmp(opt, "--host")) {
            a->host = val;
        } else if (!strcmp(opt, "--port")) {
            a->port = (int)number(opt, val, 1, 65535);
        } else if (!strcmp(opt, "--mode")) {
            if (!strcmp(val, "pub"))
                a->mode = MODE_PUB;
            else if (!strcmp(val, "e2e"))
                a->mode = MODE_E2E;
            else if (!strcmp(val, "latency"))
                a->mode = MODE_LATENCY;
            else if (!strcmp(val, "clients"))
                a->mode = MODE_CLIENTS;
            else
                usage_error("unknown mode %s", val);
            a->mode_name = val;
        } else if (!strcmp(opt, "--qos")) {
            a->qos = (int)number(opt, val, 0, 2);
        } else if (!strcmp(opt, "--count")) {
            a->count = number(opt, val, 1, LONG_MAX / 2);
        } else if (!strcmp(opt, "--size")) {
            a->size = number(opt, val, 0, 256L * 1024 * 1024);
        } else if (!strcmp(opt, "--inflight")) {
            a->inflight = number(opt, val, 1, 65535);
        } else if (!strcmp(opt, "--callbacks")) {
            if (strcmp(val, "network") && strcmp(val, "thread") && strcmp(val, "loop"))
                usage_error("--callbacks %s: expected network, thread or loop", val);
            a->callbacks = val;
        } else if (!strcmp(opt, "--nocopy")) {
            if (strcmp(val, "on") && strcmp(val, "off"))
                usage_error("--nocopy %s: expected on or off", val);
            a->nocopy = !strcmp(val, "on");
        } else if (!strcmp(opt, "--threads")) {
            a->threads = number(opt, val, 0, 1024);
        } else if (!strcmp(opt, "--store")) {
            a->store_dir = val;
        } else if (!strcmp(opt, "--store-sync")) {
            if (!strcmp(val, "batch"))
                a->store_sync = MQTTC_STORE_SYNC_BATCH;
            else if (!strcmp(val, "every"))
                a->store_sync = MQTTC_STORE_SYNC_EVERY;
            else if (!strcmp(val, "none"))
                a->store_sync = MQTTC_STORE_SYNC_NONE;
            else
                usage_error("--store-sync %s: expected batch, every or none", val);
        } else {
            usage_error("unknown argument %s", opt);
        }
    }
    if (!a->callbacks)
        a->callbacks = "loop";
}

/* ---- failures and waking the main thread ------------------------------------------------------ */

/* A failure reported by a token or a callback. */
static void die(const char *what, int status) {
    fprintf(stderr, "mqttc_bench: %s: %s\n", what, mqttc_status_str(status));
    exit(1);
}

/* A failed call: the library's detail too. */
static void check(mqttc_status st, const char *what) {
    if (st != MQTTC_OK) {
        fprintf(stderr, "mqttc_bench: %s: %s (%s)\n", what, mqttc_status_str(st), mqttc_last_error());
        exit(1);
    }
}

static void wake(struct bench *b) {
    pthread_mutex_lock(&b->lock);
    pthread_cond_signal(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

/* Called on a callback thread: records the first failure and wakes the main thread to report it. */
static void fail(struct bench *b, mqttc_status st) {
    int expected = 0;
    atomic_compare_exchange_strong(&b->failure, &expected, (int)st);
    wake(b);
}

/* On a callback thread: counts one and wakes the main thread if it waits for this count. The
 * sequentially consistent increment here and store of `wake_at` in wait_count mean that either
 * the main thread sees the new count before it sleeps, or this sees its `wake_at` and wakes it
 * (under the mutex, so not before it sleeps). */
static void count_one(struct bench *b, struct counter *c) {
    long n = atomic_fetch_add(&c->n, 1) + 1;
    if (n >= atomic_load(&c->wake_at))
        wake(b);
}

/* Blocks until `c` reaches `target`. Exits on a failure reported by a callback, or when the count
 * stops moving for STALL_TIMEOUT_S (a message the broker dropped would otherwise hang us). */
static void wait_count(struct bench *b, struct counter *c, long target, const char *what) {
    if (atomic_load(&c->n) >= target)
        return;
    atomic_store(&c->wake_at, target);
    long seen = -1;
    double progress_at = 0;
    pthread_mutex_lock(&b->lock);
    for (;;) {
        long n = atomic_load(&c->n);
        if (n >= target)
            break;
        int failure = atomic_load(&b->failure);
        if (failure) {
            pthread_mutex_unlock(&b->lock);
            die(what, failure);
        }
        double now = now_s();
        if (n != seen) {
            seen = n;
            progress_at = now;
        } else if (now - progress_at > STALL_TIMEOUT_S) {
            pthread_mutex_unlock(&b->lock);
            fprintf(stderr, "mqttc_bench: %s: stuck at %ld of %ld for %.0f s\n", what, n, target,
                    STALL_TIMEOUT_S);
            exit(1);
        }
        if (b->loop) {
            /* The callbacks run in here, on this thread: nothing to wait for but the loop. */
            pthread_mutex_unlock(&b->lock);
            check(mqttc_loop_run(b->loop, 1000), "mqttc_loop_run");
            pthread_mutex_lock(&b->lock);
            continue;
        }
        /* The deadline only bounds how long a stall goes unnoticed; callbacks wake us earlier. */
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += 1;
        pthread_cond_timedwait(&b->cond, &b->lock, &deadline);
    }
    pthread_mutex_unlock(&b->lock);
    atomic_store(&c->wake_at, LONG_MAX);
}

/* Waits for one token (setup, teardown and the QoS 0 marker), watching for failures reported by a
 * callback; exits unless it completed with MQTTC_OK. */
static void wait_token(struct bench *b, mqttc_client *c, mqttc_token t, double timeout_s, const char *what) {
    double deadline = now_s() + timeout_s;
    for (;;) {
        /* Returns as soon as the token completes; the 1 s slices only let us notice failures. */
        mqttc_status st = mqttc_token_wait(c, t, 1000);
        if (st == MQTTC_OK)
            return;
        if (st != MQTTC_ERR_TIMEOUT)
            die(what, st);
        int failure = atomic_load(&b->failure);
        if (failure)
            die(what, failure);
        if (now_s() > deadline)
            die(what, MQTTC_ERR_TIMEOUT);
    }
}

/* ---- callbacks (on each client's callback thread) -------------------------------------------- */

/* The publisher at QoS 1/2: each publish token completes here on its PUBACK / PUBCOMP (the
 * callback is set only after connecting and removed before disconnecting, so these are the only
 * tokens it sees). */
static void on_complete(mqttc_client *client, mqttc_token token, mqttc_status status, void *userdata) {
    struct bench *b = userdata;
    (void)client;
    (void)token;
    if (status != MQTTC_OK)
        fail(b, status);
    else
        count_one(b, &b->acked);
}

static void on_message(mqttc_client *client, const mqttc_message *msg, void *userdata) {
    struct bench *b = userdata;
    (void)client;
    (void)msg;
    count_one(b, &b->received);
}

/* Says on standard error that a connection was lost, and returns why as a failure status. */
static mqttc_status report_lost(const mqttc_connection_event *ev) {
    fprintf(stderr, "mqttc_bench: connection to %s lost: %s\n", ev->server ? ev->server : "?",
            ev->detail ? ev->detail : mqttc_status_str(ev->reason));
    return ev->reason == MQTTC_OK ? MQTTC_ERR_CONNECTION_CLOSED : ev->reason;
}

/* Automatic reconnect is off, so a lost connection ends the run rather than stalling it. */
static void on_connection(mqttc_client *client, const mqttc_connection_event *ev, void *userdata) {
    (void)client;
    if (ev->change == MQTTC_CONNECTION_LOST)
        fail(userdata, report_lost(ev));
}

/* ---- clients ----------------------------------------------------------------------------------- */

static mqttc_client *open_client(struct bench *b, const char *role) {
    char id[64];
    snprintf(id, sizeof id, "mqttc-bench-%s-%ld", role, (long)getpid());
    mqttc_options o;
    mqttc_options_init(&o);
    o.client_id = id;
    /* The --inflight window: the library sends at most this many QoS 1/2 publishes ahead of their
     * acknowledgements and keeps the rest in order, refilling the window as acknowledgements
     * arrive (on its network thread, or on the loop while this program waits in it), with no
     * round trip through this program. */
    o.max_inflight = (uint32_t)b->a.inflight;
    /* Results reach this program through callbacks, never by polling old tokens: keeping only a
     * few completed results keeps the token table small however many messages are sent. */
    o.token_history = 16;
    o.auto_reconnect = false;
    /* --callbacks: see the top of this file. */
    o.inline_callbacks = !strcmp(b->a.callbacks, "network");
    o.run_loop = b->loop;
    if (!strcmp(role, "pub")) {
        o.store_dir = b->a.store_dir;
        o.store_sync = b->a.store_sync;
    }
    mqttc_client *c;
    check(mqttc_client_new(b->a.host, (uint16_t)b->a.port, &o, &c), "mqttc_client_new");
    check(mqttc_client_set_on_connection(c, on_connection, b), "mqttc_client_set_on_connection");
    mqttc_token t;
    check(mqttc_connect(c, &t), "mqttc_connect");
    char what[128];
    snprintf(what, sizeof what, "connect to %s port %d", b->a.host, b->a.port);
    wait_token(b, c, t, SETUP_TIMEOUT_MS / 1000.0, what);
    return c;
}

/* After the measurement: a clean goodbye, whose outcome changes nothing any more. */
static void close_client(mqttc_client *c) {
    mqttc_client_set_on_complete(c, NULL, NULL);
    mqttc_token t;
    if (mqttc_disconnect(c, &t) == MQTTC_OK)
        mqttc_token_wait(c, t, SETUP_TIMEOUT_MS);
    mqttc_client_free(c);
}

/* The payload outlives every client, so a lent one needs no release. */
static void publish(const struct args *a, mqttc_client *c, const char *topic, const void *payload, size_t len,
                    int qos, mqttc_token *t) {
    if (a->nocopy && len >= LEND_FROM)
        check(mqttc_publish_nocopy(c, topic, payload, len, qos, false, NULL, NULL, NULL, t),
              "mqttc_publish_nocopy");
    else
        check(mqttc_publish(c, topic, payload, len, qos, false, t), "mqttc_publish");
}

/* ---- the modes --------------------------------------------------------------------------------- */

/* How many publishes this thread hands over beyond what is in flight (at least 16, even). */
static long ahead_for(const struct args *a) {
    long n = AHEAD_BYTES / (a->size > 0 ? a->size : 1);
    n = n < 16 ? 16 : n > AHEAD ? AHEAD : n;
    return n & ~1L;
}

/* Waits until QoS 0 publish `t` is written. */
static void wait_written(struct bench *b, mqttc_client *c, mqttc_token t) {
    for (;;) {
        mqttc_status st = mqttc_token_wait(c, t, 1000);
        if (st == MQTTC_OK || st == MQTTC_ERR_TOKEN_EXPIRED)
            return;
        if (st != MQTTC_ERR_TIMEOUT)
            die("publish", st);
        int failure = atomic_load(&b->failure);
        if (failure)
            die("publish", failure);
    }
}

/* Publishes the run's N messages to bench/t.
 *
 * QoS 1/2: the library keeps `max_inflight` (the --inflight window) in flight and the publishes
 * beyond it in order, refilling the window as each acknowledgement is read (on its network
 * thread, or on the loop while this thread waits in it), with no round trip through this
 * program. So this thread only has to stay ahead of the window: it hands over up to AHEAD
 * publishes beyond it (fewer for large payloads, see ahead_for), then waits until half of those
 * have gone out (one wait per AHEAD/2 acknowledgements). Measured against the alternatives:
 * publishing all N at once is no faster but holds every queued copy (~250 bytes each beyond the
 * payload: 25 MB at 100,000), and a window kept by this program alone (publish one per
 * acknowledgement) costs a wakeup of this thread per message and measured no faster.
 *
 * QoS 0: their tokens complete when written to the socket. Every AHEAD/2 publishes this thread
 * waits for the token of the publish AHEAD/2 before, so at most AHEAD wait in the library (one
 * wait per AHEAD/2 messages). Handing over all N at once measured no faster and holds every
 * queued copy: 190 MB at 1,000,000. A completed token may have left the small token history by
 * the time we wait on it; "expired" means it completed, and a failure shows up in b->failure. */
static void publish_all(struct bench *b, mqttc_client *c, const void *payload) {
    const struct args *a = &b->a;
    long ahead = ahead_for(a);
    long high = a->inflight + ahead, low = a->inflight + ahead / 2;
    mqttc_token checkpoint = 0;
    for (long i = 0; i < a->count; i++) {
        if (a->qos > 0 && i - atomic_load(&b->acked.n) >= high)
            wait_count(b, &b->acked, i - low, "publish");
        bool mark = a->qos == 0 && i % (ahead / 2) == 0;
        if (mark && checkpoint)
            wait_written(b, c, checkpoint);
        mqttc_token t;
        publish(a, c, "bench/t", payload, (size_t)a->size, a->qos, &t);
        if (mark)
            checkpoint = t;
    }
}

static double run_pub(struct bench *b, const void *payload) {
    const struct args *a = &b->a;
    mqttc_client *c = open_client(b, "pub");
    if (a->qos > 0)
        check(mqttc_client_set_on_complete(c, on_complete, b), "mqttc_client_set_on_complete");
    double t0 = now_s();
    publish_all(b, c, payload);
    if (a->qos == 0) {
        /* QoS 0 has nothing to acknowledge; the broker has read them all when it acknowledges a
         * QoS 1 message sent after them on the same connection. */
        mqttc_token marker;
        publish(a, c, "bench/end", "e", 1, 1, &marker);
        wait_token(b, c, marker, 1e9, "QoS 0 end marker");
    } else {
        wait_count(b, &b->acked, a->count, "publish");
    }
    double secs = now_s() - t0;
    close_client(c);
    return secs;
}

/* A subscriber to bench/#, subscribed (SUBACK received) when this returns. */
static mqttc_client *open_subscriber(struct bench *b) {
    mqttc_client *sub = open_client(b, "sub");
    mqttc_token t;
    check(mqttc_subscribe(sub, "bench/#", b->a.qos, on_message, b, &t), "mqttc_subscribe");
    wait_token(b, sub, t, SETUP_TIMEOUT_MS / 1000.0, "subscribe");
    return sub;
}

/* Publishes as run_pub does; the subscriber's callback counts. */
static double run_e2e(struct bench *b, const void *payload) {
    const struct args *a = &b->a;
    mqttc_client *sub = open_subscriber(b);
    mqttc_client *pub = open_client(b, "pub");
    if (a->qos > 0)
        check(mqttc_client_set_on_complete(pub, on_complete, b), "mqttc_client_set_on_complete");
    double t0 = now_s();
    publish_all(b, pub, payload);
    wait_count(b, &b->received, a->count, "receive");
    double secs = now_s() - t0;
    close_client(pub);
    close_client(sub);
    return secs;
}

/* One sample per message: from before mqttc_publish until the subscriber's callback has woken us. */
static double run_latency(struct bench *b, const void *payload, double *lat) {
    const struct args *a = &b->a;
    mqttc_client *sub = open_subscriber(b);
    mqttc_client *pub = open_client(b, "pub");
    double t0 = now_s();
    for (long i = 0; i < a->count; i++) {
        double s = now_s();
        publish(a, pub, "bench/ping", payload, (size_t)a->size, a->qos, NULL);
        wait_count(b, &b->received, i + 1, "ping");
        lat[i] = now_s() - s;
    }
    double secs = now_s() - t0;
    close_client(pub);
    close_client(sub);
    return secs;
}

/* ---- clients mode (the measurement itself is fleet.h's, shared with the peers) ---------------- */

/* What the clients mode's calls into the library share. */
struct fleet_ours {
    const struct args *a;
    mqttc_pool *pool;
    mqttc_client **clients;
};

static void on_fleet_message(mqttc_client *c, const mqttc_message *m, void *userdata) {
    (void)c;
    fleet_received(userdata, m->payload, m->payload_len);
}

/* A connection that comes up is a completed connect; a lost one is reported (the wait for the
 * messages then stalls and says so). */
static void on_fleet_connection(mqttc_client *c, const mqttc_connection_event *ev, void *userdata) {
    (void)c;
    if (ev->change == MQTTC_CONNECTION_UP)
        fleet_done(userdata, true);
    else if (ev->change == MQTTC_CONNECTION_LOST)
        report_lost(ev);
}

/* The subscribe token, the only one in flight when this is set: counted, then the callback is
 * removed, so that the publishes' completions do not reach the callback thread. */
static void on_fleet_subscribed(mqttc_client *c, mqttc_token t, mqttc_status st, void *userdata) {
    (void)t;
    mqttc_client_set_on_complete(c, NULL, NULL);
    fleet_done(userdata, st == MQTTC_OK);
}

static void fleet_open(struct fleet *f) {
    struct fleet_ours *o = f->lib;
    o->clients = calloc((size_t)f->a.clients, sizeof *o->clients);
    if (!o->clients) {
        fprintf(stderr, "mqttc_bench: out of memory\n");
        exit(1);
    }
    check(mqttc_pool_new((uint32_t)o->a->threads, &o->pool), "mqttc_pool_new");
}

static void fleet_connect(struct fleet *f, long i, const char *id, const char *source) {
    struct fleet_ours *o = f->lib;
    mqttc_options opt;
    mqttc_options_init(&opt);
    opt.client_id = id;
    opt.pool = o->pool;
    opt.bind_address = source;
    opt.auto_reconnect = false;
    opt.connect_timeout_ms = 60000;
    opt.token_history = 4;
    check(mqttc_client_new(f->host, (uint16_t)f->port, &opt, &o->clients[i]), "mqttc_client_new");
    check(mqttc_client_set_on_connection(o->clients[i], on_fleet_connection, f), "mqttc_client_set_on_connection");
    check(mqttc_connect(o->clients[i], NULL), "mqttc_connect");
}

static void fleet_subscribe(struct fleet *f, long i, const char *topic) {
    struct fleet_ours *o = f->lib;
    check(mqttc_client_set_on_complete(o->clients[i], on_fleet_subscribed, f), "mqttc_client_set_on_complete");
    check(mqttc_subscribe(o->clients[i], topic, f->qos, on_fleet_message, f, NULL), "mqttc_subscribe");
}

static bool fleet_publish(struct fleet *f, long i, const char *topic, const char *payload, size_t len) {
    struct fleet_ours *o = f->lib;
    check(mqttc_publish(o->clients[i], topic, payload, len, f->qos, false, NULL), "mqttc_publish");
    return true;
}

static void fleet_close(struct fleet *f) {
    struct fleet_ours *o = f->lib;
    long n = f->a.clients;
    mqttc_token *tokens = calloc((size_t)n, sizeof *tokens);
    for (long i = 0; i < n; i++)
        if (tokens && mqttc_disconnect(o->clients[i], &tokens[i]) == MQTTC_OK)
            mqttc_token_wait(o->clients[i], tokens[i], SETUP_TIMEOUT_MS);
    for (long i = 0; i < n; i++)
        mqttc_client_free(o->clients[i]);
    mqttc_pool_free(o->pool);
    free(tokens);
    free(o->clients);
}

static int run_clients(const struct args *a) {
    static struct fleet f; /* static: zero-initialised (its latency buckets are large) */
    static const struct fleet_ops ops = {"mqttclient", fleet_open, fleet_connect, NULL,
                                         fleet_subscribe, fleet_publish, fleet_close};
    struct fleet_ours o = {a, NULL, NULL};
    f.host = a->host;
    f.port = a->port;
    f.qos = a->qos;
    f.a = a->fleet;
    f.lib = &o;
    return fleet_run(&f, &ops);
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

int main(int argc, char **argv) {
    static struct bench b; /* static: zero-initialised, and alive while any library thread runs */
    parse_args(argc, argv, &b.a);
    const struct args *a = &b.a;
    if (a->mode == MODE_CLIENTS)
        return run_clients(a);
    pthread_mutex_init(&b.lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b.cond, &ca);
    pthread_condattr_destroy(&ca);

    char *payload = malloc(a->size ? (size_t)a->size : 1);
    double *lat = a->mode == MODE_LATENCY ? malloc(sizeof(double) * (size_t)a->count) : NULL;
    if (!payload || (a->mode == MODE_LATENCY && !lat)) {
        fprintf(stderr, "mqttc_bench: out of memory\n");
        return 1;
    }
    memset(payload, 'x', (size_t)a->size);
    atomic_init(&b.acked.wake_at, LONG_MAX);
    atomic_init(&b.received.wake_at, LONG_MAX);
    if (!strcmp(a->callbacks, "loop"))
        check(mqttc_loop_new(&b.loop), "mqttc_loop_new");

    if (a->mode == MODE_LATENCY) {
        double secs = run_latency(&b, payload, lat);
        long n = a->count;
        qsort(lat, (size_t)n, sizeof(double), cmp_double);
        printf("{\"lib\":\"mqttclient\",\"mode\":\"%s\",\"qos\":%d,\"size\":%ld,\"count\":%ld,\"secs\":%.6f,"
               "\"p50_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f}\n",
               a->mode_name, a->qos, a->size, n, secs, lat[n / 2] * 1e6, lat[(long)((double)n * 0.99)] * 1e6,
               lat[n - 1] * 1e6);
    } else {
        double secs = a->mode == MODE_PUB ? run_pub(&b, payload) : run_e2e(&b, payload);
        printf("{\"lib\":\"mqttclient\",\"mode\":\"%s\",\"qos\":%d,\"size\":%ld,\"count\":%ld,\"secs\":%.6f,"
               "\"msgs_per_s\":%.0f}\n",
               a->mode_name, a->qos, a->size, a->count, secs, (double)a->count / secs);
    }
    fflush(stdout);
    mqttc_loop_free(b.loop);
    free(lat);
    free(payload);
    return 0;
}
