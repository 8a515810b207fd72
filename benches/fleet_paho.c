/*
 * fleet_paho: Eclipse Paho C's side of the fleet measurement (MQTTAsync), the peer of
 * `mqttc_bench --mode clients` in scripts/bench.py's fleet section (c_examples/fleet.h measures
 * and prints the JSON line, with "lib":"paho-c").
 *
 * Usage: fleet_paho [--host H] [--port P] [--mode clients] [--qos 0|1|2] [--clients N]
 *                   [--interval-ms I] [--hold-s S] [--sources 1]
 *
 * MQTTAsync runs every client of the process on the same two threads (one sends, one receives
 * and runs the callbacks), started with the first connect. It has no option to bind a source
 * address, so --sources takes only 1.
 *
 * Exit status: 0 every client connected and every message arrived, 1 not (after the JSON line)
 * or Paho refused a call (on stderr), 2 bad command line.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <MQTTAsync.h>

#include "fleet_peer.h"

static MQTTAsync *clients;
static atomic_long closed; /* disconnects completed, well or not */

static void check(int rc, const char *what) {
    if (rc != MQTTASYNC_SUCCESS) {
        fprintf(stderr, "fleet_paho: %s: %s\n", what, MQTTAsync_strerror(rc));
        exit(1);
    }
}

static void on_connected(void *context, MQTTAsync_successData *data) {
    (void)data;
    fleet_done(context, true);
}

static void on_subscribed(void *context, MQTTAsync_successData *data) {
    fleet_done(context, data && data->alt.qos <= 2);
}

/* A failed connect or subscribe: counted, and said once per kind of failure is enough to see why. */
static void on_failed(void *context, MQTTAsync_failureData *data) {
    static atomic_int told;
    if (!atomic_exchange(&told, 1))
        fprintf(stderr, "fleet_paho: %s\n",
                data && data->message ? data->message : MQTTAsync_strerror(data ? data->code : MQTTASYNC_FAILURE));
    fleet_done(context, false);
}

static void on_connection_lost(void *context, char *cause) {
    (void)context;
    fprintf(stderr, "fleet_paho: connection lost: %s\n", cause ? cause : "(no cause given)");
}

static int on_message(void *context, char *topic, int topic_len, MQTTAsync_message *m) {
    (void)topic_len;
    fleet_received(context, m->payload, (size_t)m->payloadlen);
    MQTTAsync_freeMessage(&m);
    MQTTAsync_free(topic);
    return 1; /* taken */
}

static void on_closed(void *context, MQTTAsync_successData *data) {
    (void)context;
    (void)data;
    atomic_fetch_add(&closed, 1);
}

static void on_close_failed(void *context, MQTTAsync_failureData *data) {
    (void)data;
    on_closed(context, NULL);
}

static void open_lib(struct fleet *f) {
    clients = calloc((size_t)f->a.clients, sizeof *clients);
    if (!clients) {
        fprintf(stderr, "fleet_paho: out of memory\n");
        exit(1);
    }
}

static void connect_one(struct fleet *f, long i, const char *id, const char *source) {
    (void)source; /* always NULL: --sources is 1 */
    char uri[300];
    snprintf(uri, sizeof uri, "tcp://%s:%d", f->host, f->port);
    check(MQTTAsync_create(&clients[i], uri, id, MQTTCLIENT_PERSISTENCE_NONE, NULL), "MQTTAsync_create");
    check(MQTTAsync_setCallbacks(clients[i], f, on_connection_lost, on_message, NULL), "MQTTAsync_setCallbacks");
    MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
    co.keepAliveInterval = 60;
    co.cleansession = 1;
    co.connectTimeout = 60; /* as mqttc_bench's connect_timeout_ms */
    co.onSuccess = on_connected;
    co.onFailure = on_failed;
    co.context = f;
    check(MQTTAsync_connect(clients[i], &co), "MQTTAsync_connect");
}

static void subscribe_one(struct fleet *f, long i, const char *topic) {
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    ro.onSuccess = on_subscribed;
    ro.onFailure = on_failed;
    ro.context = f;
    check(MQTTAsync_subscribe(clients[i], topic, f->qos, &ro), "MQTTAsync_subscribe");
}

static bool publish_one(struct fleet *f, long i, const char *topic, const char *payload, size_t len) {
    int rc = MQTTAsync_send(clients[i], topic, (int)len, payload, f->qos, 0, NULL);
    if (rc != MQTTASYNC_SUCCESS)
        fprintf(stderr, "fleet_paho: MQTTAsync_send: %s\n", MQTTAsync_strerror(rc));
    return rc == MQTTASYNC_SUCCESS;
}

static void close_lib(struct fleet *f) {
    long n = f->a.clients, asked = 0;
    for (long i = 0; i < n; i++) {
        MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
        d.onSuccess = on_closed;
        d.onFailure = on_close_failed;
        asked += MQTTAsync_disconnect(clients[i], &d) == MQTTASYNC_SUCCESS;
    }
    fleet_wait(&closed, NULL, asked, "disconnect");
    for (long i = 0; i < n; i++)
        MQTTAsync_destroy(&clients[i]);
    free(clients);
}

int main(int argc, char **argv) {
    static struct fleet f; /* static: zero-initialised (its latency buckets are large) */
    static const struct fleet_ops ops = {"paho-c", open_lib, connect_one, NULL, subscribe_one, publish_one, close_lib};
    fleet_peer_args(argc, argv, "fleet_paho", &f);
    if (f.a.sources != 1)
        usage("--sources %ld: Paho C cannot bind a source address, only 1", f.a.sources);
    return fleet_run(&f, &ops);
}
