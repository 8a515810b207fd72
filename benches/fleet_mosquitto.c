/*
 * fleet_mosquitto: libmosquitto's side of the fleet measurement, the peer of
 * `mqttc_bench --mode clients` in scripts/bench.py's fleet section (c_examples/fleet.h measures
 * and prints the JSON line, with "lib":"libmosquitto").
 *
 * Usage: fleet_mosquitto [--host H] [--port P] [--mode clients] [--qos 0|1|2] [--clients N]
 *                        [--interval-ms I] [--hold-s S] [--sources K]
 *
 * Each client runs on a thread of its own, started by mosquitto_loop_start: how libmosquitto's
 * users run many clients without a loop of their own. --sources K binds the connections to
 * 127.0.0.1 .. 127.0.0.K (mosquitto_connect_bind_async).
 *
 * mosquitto_loop (libmosquitto 2.0, which that thread runs) waits with pselect, so it refuses a
 * client whose socket or wake-up pipe has a descriptor of FD_SETSIZE (1024) or more: it returns
 * MOSQ_ERR_INVAL at once, and the thread ends without a callback. Each client holds three
 * descriptors (its socket and a socket pair), so about 340 clients fit in one process, however
 * high the descriptor limit. Those beyond never connect: the run reports how many did, and says
 * on standard error how many clients were past the limit.
 *
 * Exit status: 0 every client connected and every message arrived, 1 not (after the JSON line)
 * or libmosquitto refused a call (on stderr), 2 bad command line.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <mosquitto.h>

#include <sys/select.h>

#include "fleet_peer.h"

static struct mosquitto **clients;

static void die(const char *what, int rc) {
    fprintf(stderr, "fleet_mosquitto: %s: %s\n", what, mosquitto_strerror(rc));
    exit(1);
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc) {
    (void)mosq;
    fleet_done(obj, rc == 0);
}

static void on_subscribe(struct mosquitto *mosq, void *obj, int mid, int count, const int *granted) {
    (void)mosq;
    (void)mid;
    fleet_done(obj, count == 1 && granted[0] <= 2);
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *m) {
    (void)mosq;
    fleet_received(obj, m->payload, (size_t)m->payloadlen);
}

/* The clean disconnect at the end is rc 0; anything else during the run is a lost connection. */
static void on_disconnect(struct mosquitto *mosq, void *obj, int rc) {
    (void)mosq;
    (void)obj;
    if (rc != 0)
        fprintf(stderr, "fleet_mosquitto: connection lost: %s\n", mosquitto_strerror(rc));
}

static void open_lib(struct fleet *f) {
    mosquitto_lib_init();
    clients = calloc((size_t)f->a.clients, sizeof *clients);
    if (!clients) {
        fprintf(stderr, "fleet_mosquitto: out of memory\n");
        exit(1);
    }
}

static void connect_one(struct fleet *f, long i, const char *id, const char *source) {
    struct mosquitto *m = mosquitto_new(id, true, f);
    if (!m)
        die("mosquitto_new", errno == ENOMEM ? MOSQ_ERR_NOMEM : MOSQ_ERR_ERRNO);
    clients[i] = m;
    mosquitto_connect_callback_set(m, on_connect);
    mosquitto_subscribe_callback_set(m, on_subscribe);
    mosquitto_message_callback_set(m, on_message);
    mosquitto_disconnect_callback_set(m, on_disconnect);
    int rc = mosquitto_connect_bind_async(m, f->host, f->port, 60, source);
    if (rc != MOSQ_ERR_SUCCESS)
        die("mosquitto_connect_bind_async", rc);
    rc = mosquitto_loop_start(m);
    if (rc != MOSQ_ERR_SUCCESS)
        die("mosquitto_loop_start", rc);
}

/* See the top of this file. */
static void shortfall(struct fleet *f) {
    long past = 0;
    for (long i = 0; i < f->a.clients; i++)
        past += mosquitto_socket(clients[i]) >= FD_SETSIZE;
    if (past)
        fprintf(stderr,
                "fleet_mosquitto: %ld clients have a socket at or above FD_SETSIZE (%d), which "
                "mosquitto_loop refuses\n",
                past, FD_SETSIZE);
}

static void subscribe_one(struct fleet *f, long i, const char *topic) {
    int rc = mosquitto_subscribe(clients[i], NULL, topic, f->qos);
    if (rc != MOSQ_ERR_SUCCESS)
        die("mosquitto_subscribe", rc);
}

static bool publish_one(struct fleet *f, long i, const char *topic, const char *payload, size_t len) {
    int rc = mosquitto_publish(clients[i], NULL, topic, (int)len, payload, f->qos, false);
    if (rc != MOSQ_ERR_SUCCESS)
        fprintf(stderr, "fleet_mosquitto: mosquitto_publish: %s\n", mosquitto_strerror(rc));
    return rc == MOSQ_ERR_SUCCESS;
}

/* A connected client's thread ends once its DISCONNECT is out; one that never connected (or whose
 * thread already ended) is stopped by cancelling its thread. */
static void close_lib(struct fleet *f) {
    long n = f->a.clients;
    for (long i = 0; i < n; i++) {
        bool clean = mosquitto_disconnect(clients[i]) == MOSQ_ERR_SUCCESS;
        mosquitto_loop_stop(clients[i], !clean);
        mosquitto_destroy(clients[i]);
    }
    free(clients);
    mosquitto_lib_cleanup();
}

int main(int argc, char **argv) {
    static struct fleet f; /* static: zero-initialised (its latency buckets are large) */
    static const struct fleet_ops ops = {"libmosquitto", open_lib, connect_one, shortfall,
                                         subscribe_one, publish_one, close_lib};
    fleet_peer_args(argc, argv, "fleet_mosquitto", &f);
    return fleet_run(&f, &ops);
}
