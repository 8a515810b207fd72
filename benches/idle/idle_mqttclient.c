/*
 * idle_mqttclient: the resident memory of one idle, connected mqttclient client (scripts/bench.py's
 * "idle" section; benches/idle/idle_libmosquitto.c is the same program with libmosquitto).
 *
 * Connects one client with the default options to the broker, waits until it is connected, stays
 * idle for 2 s (the library's threads settle), then prints one JSON line on standard output:
 *   {"lib":"mqttclient","rss_kb":N}
 * with N the process's VmRSS from /proc/self/status, and disconnects.
 *
 * Usage: idle_mqttclient [--host H] [--port P]      (defaults: 127.0.0.1 1883)
 * Exit status: 0 done, 1 the library or the broker failed (on stderr), 2 bad command line.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <mqttclient.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "idle_common.h"

#define TIMEOUT_MS 10000u

static void check(mqttc_status st, const char *what) {
    if (st != MQTTC_OK) {
        fprintf(stderr, "idle_mqttclient: %s: %s (%s)\n", what, mqttc_status_str(st), mqttc_last_error());
        exit(1);
    }
}

int main(int argc, char **argv) {
    const char *host;
    long port;
    parse_args(argc, argv, "idle_mqttclient", &host, &port);

    mqttc_options o;
    mqttc_options_init(&o);
    mqttc_client *c;
    check(mqttc_client_new(host, (uint16_t)port, &o, &c), "mqttc_client_new");
    mqttc_token t;
    check(mqttc_connect(c, &t), "mqttc_connect");
    check(mqttc_token_wait(c, t, TIMEOUT_MS), "connect");

    if (idle_then_report("idle_mqttclient", "mqttclient"))
        return 1;

    check(mqttc_disconnect(c, &t), "mqttc_disconnect");
    check(mqttc_token_wait(c, t, TIMEOUT_MS), "disconnect");
    mqttc_client_free(c);
    return 0;
}
