/*
 * TLS options through the C API, against a mosquitto TLS listener whose certificate `ca` signed
 * (names localhost, not 127.0.0.1): a host-and-port client with `tls`, an mqtts:// URI, and the
 * errors a C user meets — a bad CA file when the client is made, TLS fields without a TLS server,
 * an untrusted CA at connect time, a name override that fixes a name mismatch; a CA directory,
 * and a TLS version and cipher suite the broker shares.
 * Usage: tls <port> <ca.pem> <other-ca.pem>
 */
#include "check.h"

#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static const char *ca, *other_ca;
static char uri[128], uri_by_ip[128];
static int port;

static void on_message(mqttc_client *c, const mqttc_message *m, void *userdata) {
    (void)c;
    if (m->payload_len == 3 && memcmp(m->payload, "tls", 3) == 0)
        atomic_store((atomic_int *)userdata, 1);
}

/* Connects, subscribes, publishes at QoS 1 and waits for the message to come back; frees. */
static void round_trip(mqttc_client *c, const char *what) {
    atomic_int got = 0;
    mqttc_token t;
    CHECK(mqttc_connect(c, &t));
    CHECK(mqttc_token_wait(c, t, 10000));
    CHECK(mqttc_subscribe(c, "c/tls", 1, on_message, &got, &t));
    CHECK(mqttc_token_wait(c, t, 10000));
    CHECK(mqttc_publish(c, "c/tls", "tls", 3, 1, false, &t));
    CHECK(mqttc_token_wait(c, t, 10000));
    for (int i = 0; i < 1000 && !atomic_load(&got); i++)
        poll(NULL, 0, 10); /* a 10 ms sleep */
    EXPECT(atomic_load(&got), "%s: the message did not come back", what);
    mqttc_client_free(c);
    printf("ok %s\n", what);
}

static mqttc_status new_uri(const char *u, const mqttc_options *o, mqttc_client **c) {
    const char *uris[] = {u};
    return mqttc_client_new_uris(uris, 1, o, c);
}

/* A client of the server `u` with the options `o`, through a round trip. */
static void uri_round_trip(const char *u, const mqttc_options *o, const char *what) {
    mqttc_client *c = NULL;
    CHECK(new_uri(u, o, &c));
    round_trip(c, what);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: tls <port> <ca.pem> <other-ca.pem>\n");
        return 2;
    }
    port = atoi(argv[1]);
    ca = argv[2];
    other_ca = argv[3];
    snprintf(uri, sizeof uri, "mqtts://localhost:%d", port);
    snprintf(uri_by_ip, sizeof uri_by_ip, "mqtts://127.0.0.1:%d", port);
    mqttc_options o;
    mqttc_client *c = NULL;

    mqttc_options_init(&o);
    o.tls = true;
    o.tls_ca_file = ca;
    CHECK(mqttc_client_new("localhost", (uint16_t)port, &o, &c));
    round_trip(c, "host and port with tls = true");

    mqttc_options_init(&o);
    o.tls_ca_file = ca;
    uri_round_trip(uri, &o, "mqtts:// URI");

    mqttc_options_init(&o);
    o.tls_ca_file = other_ca;
    o.tls_server_name = "broker.test";
    CHECK(new_uri(uri_by_ip, &o, &c));
    mqttc_token t;
    CHECK(mqttc_connect(c, &t));
    mqttc_status st = mqttc_token_wait(c, t, 10000);
    EXPECT(st == MQTTC_ERR_TLS, "untrusted CA: %s", mqttc_status_str(st));
    EXPECT(strstr(mqttc_last_error(), "UnknownIssuer"), "untrusted CA: detail names the cause");
    mqttc_client_free(c);
    printf("ok untrusted CA fails the connect token with MQTTC_ERR_TLS\n");

    o.tls_ca_file = ca;
    uri_round_trip(uri_by_ip, &o, "tls_server_name verifies a broker reached by IP address");

    /* The directory the CA file is in: its certificates, the CA's among them, are trusted. */
    char ca_dir[512];
    snprintf(ca_dir, sizeof ca_dir, "%s", ca);
    *strrchr(ca_dir, '/') = '\0';
    mqttc_options_init(&o);
    o.tls_ca_path = ca_dir;
    uri_round_trip(uri, &o, "tls_ca_path trusts the CAs of a directory");

    mqttc_options_init(&o);
    o.tls_ca_file = ca;
    o.tls_version = "tlsv1.3";
    o.tls_ciphers = "TLS_CHACHA20_POLY1305_SHA256:ECDHE-ECDSA-AES128-GCM-SHA256";
    uri_round_trip(uri, &o, "tls_version and tls_ciphers the broker shares");

    mqttc_options_init(&o);
    o.tls_ca_file = "/nonexistent/ca.pem";
    c = NULL;
    st = new_uri(uri, &o, &c);
    EXPECT(st == MQTTC_ERR_TLS && c == NULL, "missing CA file: %s", mqttc_status_str(st));
    EXPECT(strstr(mqttc_last_error(), "/nonexistent/ca.pem"), "missing CA file: detail names it");
    printf("ok a missing CA file is refused when the client is made\n");

    mqttc_options_init(&o);
    o.tls_ca_file = ca;
    st = mqttc_client_new("localhost", (uint16_t)port, &o, &c);
    EXPECT(st == MQTTC_ERR_INVALID_ARGUMENT && c == NULL, "TLS fields without TLS: %s", mqttc_status_str(st));
    printf("ok TLS fields without a TLS server are refused\n");

    mqttc_options_init(&o);
    o.tls_server_name = "\xff\xfe";
    st = new_uri(uri, &o, &c);
    EXPECT(st == MQTTC_ERR_INVALID_UTF8 && c == NULL, "bad UTF-8 server name: %s", mqttc_status_str(st));
    printf("ok invalid UTF-8 in tls_server_name is refused\n");

    printf("tls: ok\n");
    return 0;
}
