/*
 * The fleet measurement of mqttc_bench's clients mode and of its peers, benches/fleet_mosquitto.c
 * (libmosquitto) and benches/fleet_paho.c (Paho C): N clients in one process, each subscribed to
 * its own topic and publishing to its neighbour's every interval for the hold time, then
 * disconnected. One driver, fleet_run, does everything but the calls into the library (struct
 * fleet_ops), so that the three programs name, pace, time, count and report the same way.
 *
 * The library's callbacks report to the driver by counting: fleet_done (a connect or a subscribe
 * completed, well or not) and fleet_received (a message arrived). The main thread waits for the
 * counts by looking at them every FLEET_POLL_MS: a lag that small only shifts connect_s, and it
 * keeps the libraries' callbacks free of anything but an atomic increment.
 *
 * The JSON line: "clients", "connected", "connect_s" (from the first connect until every one has
 * completed), "threads_peak" (the process's threads, sampled when all are connected and after each
 * round of publishes), "rss_kb" (peak VmRSS) and "rss_kb_per_client" (that peak over the VmRSS of
 * the process before the library created anything, divided by the clients), "expected",
 * "delivered" and "p99_ms" (publish to the subscriber's callback; the payload is the publish time).
 */
#ifndef MQTTC_FLEET_H
#define MQTTC_FLEET_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proc_self.h"

/* A wait whose count stops moving for this long gives up and reports what it reached: a client
 * whose connection the library drops without telling (or a lost message) would otherwise hang. */
#define FLEET_STALL_S 30.0
/* How often the main thread looks at the counts it waits for. */
#define FLEET_POLL_MS 2
/* Publish-to-callback latencies in FLEET_LAT_STEP_US steps, the last bucket holding the rest. */
#define FLEET_LAT_STEP_US 100
#define FLEET_LAT_BUCKETS 300000

/* The command line of the clients mode (beyond --host, --port and --qos). */
struct fleet_args {
    long clients;
    long interval_ms;
    long hold_s;
    long sources; /* connections spread over the source addresses 127.0.0.1 .. 127.0.0.K */
};

#define FLEET_ARGS_DEFAULT {1000, 1000, 10, 1}
#define FLEET_USAGE "[--clients N] [--interval-ms I] [--hold-s S] [--sources K]"

/* Parses a number in [min, max] or exits with a usage error naming the option. */
typedef long (*fleet_number_fn)(const char *opt, const char *text, long min, long max);

/* Reads `opt` `val` into `a` if `opt` is one of the clients mode's options; false if it is not. */
static bool fleet_option(struct fleet_args *a, const char *opt, const char *val, fleet_number_fn number) {
    const struct {
        const char *name;
        long *value;
        long min, max;
    } options[] = {
        {"--clients", &a->clients, 1, 1000000},
        {"--interval-ms", &a->interval_ms, 1, 3600000},
        {"--hold-s", &a->hold_s, 0, 86400},
        {"--sources", &a->sources, 1, 254},
    };
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
        if (!strcmp(opt, options[i].name)) {
            *options[i].value = number(opt, val, options[i].min, options[i].max);
            return true;
        }
    return false;
}

struct fleet;

/* The calls into one library. Each may exit with a message on standard error when the library
 * refuses a call outright; what completes later is reported through fleet_done. */
struct fleet_ops {
    const char *lib; /* "lib" of the JSON line */
    /* Sets up what the clients share, after the baseline RSS is taken. */
    void (*open)(struct fleet *f);
    /* Starts connecting client i (ids and source addresses as fleet_run names them; `source` is
     * NULL with one source); fleet_done(f, ok) when its CONNACK or its failure arrives. */
    void (*connect)(struct fleet *f, long i, const char *id, const char *source);
    /* Called when not every client connected: says on standard error why, where the library
     * lets the program find out (may be NULL). */
    void (*shortfall)(struct fleet *f);
    /* Subscribes client i to `topic` at the run's QoS; fleet_done(f, ok) on its SUBACK. */
    void (*subscribe)(struct fleet *f, long i, const char *topic);
    /* Publishes `payload` from client i to `topic` at the run's QoS, no retain; false (after a
     * message on standard error) when the library refuses. */
    bool (*publish)(struct fleet *f, long i, const char *topic, const char *payload, size_t len);
    /* Disconnects and frees every client, and what open set up. */
    void (*close)(struct fleet *f);
};

struct fleet {
    const char *host;
    int port;
    int qos;
    struct fleet_args a;
    void *lib; /* the library's state, for its fleet_ops */
    atomic_long done;      /* connects, then subscribes, completed successfully */
    atomic_long failed;    /* ... completed with a failure */
    atomic_long delivered; /* messages that reached a subscriber's callback */
    atomic_long latency[FLEET_LAT_BUCKETS];
};

static double fleet_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* On a library's thread: a connect or a subscribe has completed. */
static void fleet_done(struct fleet *f, bool ok) {
    atomic_fetch_add(ok ? &f->done : &f->failed, 1);
}

/* On a library's thread: a message of the fleet arrived; its payload is its publish time in us. */
static void fleet_received(struct fleet *f, const void *payload, size_t len) {
    char text[32];
    size_t n = len < sizeof text - 1 ? len : sizeof text - 1;
    memcpy(text, payload, n);
    text[n] = 0;
    long us = (long)(fleet_now_s() * 1e6) - atol(text);
    long bucket = us < 0 ? 0 : us / FLEET_LAT_STEP_US;
    atomic_fetch_add(&f->latency[bucket < FLEET_LAT_BUCKETS ? bucket : FLEET_LAT_BUCKETS - 1], 1);
    atomic_fetch_add(&f->delivered, 1);
}

static double fleet_percentile_ms(struct fleet *f, long total, double fraction) {
    long want = (long)((double)total * fraction), seen = 0;
    for (long i = 0; i < FLEET_LAT_BUCKETS; i++) {
        seen += atomic_load(&f->latency[i]);
        if (seen > want)
            return (double)((i + 1) * FLEET_LAT_STEP_US) / 1000.0;
    }
    return 0;
}

/* Waits until `count` (plus `failed`, if not NULL: failures end a wait too) reaches `target`, or
 * stops moving for FLEET_STALL_S, saying so on standard error. Returns `count`. */
static long fleet_wait(atomic_long *count, atomic_long *failed, long target, const char *what) {
    long seen = -1;
    double progress_at = 0;
    for (;;) {
        long n = atomic_load(count), total = n + (failed ? atomic_load(failed) : 0);
        if (total >= target)
            return n;
        double now = fleet_now_s();
        if (total != seen) {
            seen = total;
            progress_at = now;
        } else if (now - progress_at > FLEET_STALL_S) {
            fprintf(stderr, "fleet: %s: stuck at %ld of %ld for %.0f s\n", what, total, target, FLEET_STALL_S);
            return n;
        }
        struct timespec pause = {0, FLEET_POLL_MS * 1000000L};
        nanosleep(&pause, NULL);
    }
}

static void fleet_sleep_until(double due) {
    double wait = due - fleet_now_s();
    if (wait > 0) {
        struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

/* Runs the measurement and prints its JSON line; returns the exit status (0: every client
 * connected and every message arrived, else 1). `f` is zeroed but for host, port, qos and a. */
static int fleet_run(struct fleet *f, const struct fleet_ops *ops) {
    const struct fleet_args *a = &f->a;
    long n = a->clients;
    raise_fd_limit();
    long rss_before = proc_status("VmRSS");
    char(*topics)[48] = calloc((size_t)n, sizeof *topics);
    if (!topics) {
        fprintf(stderr, "fleet: out of memory\n");
        exit(1);
    }
    ops->open(f);
    double t0 = fleet_now_s();
    for (long i = 0; i < n; i++) {
        char id[64], source[32];
        snprintf(id, sizeof id, "%s-fleet-%ld-%ld", ops->lib, (long)getpid(), i);
        snprintf(source, sizeof source, "127.0.0.%d", (int)(1 + i % a->sources));
        snprintf(topics[i], sizeof topics[i], "fleet/%ld/%ld", (long)getpid(), i);
        ops->connect(f, i, id, a->sources > 1 ? source : NULL);
    }
    long connected = fleet_wait(&f->done, &f->failed, n, "connect");
    double connect_s = fleet_now_s() - t0;
    long threads_peak = proc_status("Threads");
    long expected = 0;
    if (connected < n && ops->shortfall)
        ops->shortfall(f);
    if (connected == n) {
        atomic_store(&f->done, 0);
        for (long i = 0; i < n; i++)
            ops->subscribe(f, i, topics[i]);
        long subscribed = fleet_wait(&f->done, &f->failed, n, "subscribe");
        long rounds = a->hold_s * 1000 / a->interval_ms;
        double start = fleet_now_s();
        for (long r = 0; subscribed == n && r < (rounds > 0 ? rounds : 1); r++) {
            fleet_sleep_until(start + (double)r * (double)a->interval_ms / 1000.0);
            for (long i = 0; i < n; i++) {
                char payload[32];
                int len = snprintf(payload, sizeof payload, "%ld", (long)(fleet_now_s() * 1e6));
                expected++;
                if (!ops->publish(f, i, topics[(i + 1) % n], payload, (size_t)len))
                    r = rounds; /* the last round: wait for what was published */
            }
            long threads = proc_status("Threads");
            if (threads > threads_peak)
                threads_peak = threads;
        }
        fleet_wait(&f->delivered, NULL, expected, "messages of the fleet");
    }
    long rss_peak = proc_status("VmHWM");
    long delivered = atomic_load(&f->delivered);
    ops->close(f);
    printf("{\"lib\":\"%s\",\"mode\":\"clients\",\"qos\":%d,\"clients\":%ld,\"connected\":%ld,"
           "\"connect_s\":%.3f,\"threads_peak\":%ld,\"rss_kb\":%ld,\"rss_kb_per_client\":%.2f,"
           "\"expected\":%ld,\"delivered\":%ld,\"p99_ms\":%.1f}\n",
           ops->lib, f->qos, n, connected, connect_s, threads_peak, rss_peak,
           (double)(rss_peak - rss_before) / (double)n, expected, delivered,
           fleet_percentile_ms(f, delivered, 0.99));
    fflush(stdout);
    free(topics);
    return connected == n && expected > 0 && delivered == expected ? 0 : 1;
}

#endif
