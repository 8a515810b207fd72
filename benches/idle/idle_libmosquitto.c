/*
 * idle_libmosquitto: the resident memory of one idle, connected libmosquitto client, for comparison
 * with benches/idle/idle_mqttclient.c (scripts/bench.py's "idle" section); the same steps and
 * output: connect, wait until connected (on_connect), stay idle for 2 s, print
 *   {"lib":"libmosquitto","rss_kb":N}
 * with N the process's VmRSS from /proc/self/status, disconnect.
 *
 * Usage: idle_libmosquitto [--host H] [--port P]    (defaults: 127.0.0.1 1883)
 * Exit status: 0 done, 1 the library or the broker failed (on stderr), 2 bad command line.
 * Build: gcc ... idle_libmosquitto.c -lmosquitto -lpthread (Debian: libmosquitto-dev).
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <mosquitto.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "idle_common.h"

#define TIMEOUT_S 10
#define KEEPALIVE_S 60

struct state {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    int rc; /* the CONNACK's return code */
};

static void on_connect(struct mosquitto *m, void *userdata, int rc) {
    struct state *s = userdata;
    (void)m;
    pthread_mutex_lock(&s->lock);
    s->done = true;
    s->rc = rc;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static void check(int rc, const char *what) {
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "idle_libmosquitto: %s: %s\n", what, mosquitto_strerror(rc));
        exit(1);
    }
}

int main(int argc, char **argv) {
    const char *host;
    long port;
    parse_args(argc, argv, "idle_libmosquitto", &host, &port);

    static struct state s = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0};
    check(mosquitto_lib_init(), "mosquitto_lib_init");
    struct mosquitto *m = mosquitto_new(NULL, true, &s);
    if (!m) {
        fprintf(stderr, "idle_libmosquitto: mosquitto_new failed\n");
        return 1;
    }
    mosquitto_connect_callback_set(m, on_connect);
    check(mosquitto_connect(m, host, (int)port, KEEPALIVE_S), "mosquitto_connect");
    check(mosquitto_loop_start(m), "mosquitto_loop_start");

    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += TIMEOUT_S;
    pthread_mutex_lock(&s.lock);
    while (!s.done && pthread_cond_timedwait(&s.cond, &s.lock, &deadline) == 0) {
    }
    bool done = s.done;
    int rc = s.rc;
    pthread_mutex_unlock(&s.lock);
    if (!done) {
        fprintf(stderr, "idle_libmosquitto: no CONNACK within %d s\n", TIMEOUT_S);
        return 1;
    }
    if (rc != 0) {
        fprintf(stderr, "idle_libmosquitto: connection refused: %s\n", mosquitto_connack_string(rc));
        return 1;
    }

    if (idle_then_report("idle_libmosquitto", "libmosquitto"))
        return 1;

    mosquitto_disconnect(m);
    mosquitto_loop_stop(m, false);
    mosquitto_destroy(m);
    mosquitto_lib_cleanup();
    return 0;
}
