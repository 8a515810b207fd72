/*
 * A publisher with a message store, for the kill loop of tests/persistence.rs: killed with SIGKILL
 * at random moments and started again on the same store.
 *
 * Usage: store_publisher PORT STORE_DIR QOS LIFE FIRST LAST
 *
 * Publishes "LIFE:I" for I in [FIRST, LAST) on store/kill and prints "ok I" once each publish call
 * has returned MQTTC_OK (from then on the message must arrive, whatever happens to this process).
 * Messages restored from the store (earlier lives' unacknowledged ones) are printed as
 * "restored PAYLOAD". At the end it waits for every token, its own and the restored ones, prints
 * "done", disconnects and exits 0.
 */
#include "check.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static mqttc_token restored[65536];
static size_t restored_count;

static void on_restored(mqttc_client *client, mqttc_token token, const mqttc_message *m, void *userdata) {
    (void)client;
    (void)userdata;
    printf("restored %.*s\n", (int)m->payload_len, (const char *)m->payload);
    pthread_mutex_lock(&lock);
    if (restored_count < sizeof restored / sizeof restored[0])
        restored[restored_count++] = token;
    pthread_mutex_unlock(&lock);
}

/* Set by the first UP: restored messages are reported before it, on the same thread. */
static int up;

static void on_connection(mqttc_client *client, const mqttc_connection_event *e, void *userdata) {
    (void)client;
    (void)userdata;
    if (e->change == MQTTC_CONNECTION_UP) {
        pthread_mutex_lock(&lock);
        up = 1;
        pthread_mutex_unlock(&lock);
    }
}

static void pause_ms(long ms) {
    struct timespec t = {0, ms * 1000000L};
    nanosleep(&t, NULL);
}

static void wait_ok(mqttc_client *c, mqttc_token t, const char *what) {
    mqttc_status st = mqttc_token_wait(c, t, 30000);
    if (st != MQTTC_OK)
        FAIL("%s: token %llu -> %s", what, (unsigned long long)t, mqttc_status_str(st));
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s PORT STORE_DIR QOS LIFE FIRST LAST\n", argv[0]);
        return 2;
    }
    /* Every line is out before the next call: the test reads them up to the kill. */
    setvbuf(stdout, NULL, _IONBF, 0);
    int port = atoi(argv[1]), qos = atoi(argv[3]), life = atoi(argv[4]);
    int first = atoi(argv[5]), last = atoi(argv[6]);

    mqttc_options opts;
    mqttc_options_init(&opts);
    opts.client_id = "store-publisher";
    opts.clean_session = false;
    opts.store_dir = argv[2];
    mqttc_client *c = NULL;
    CHECK(mqttc_client_new("127.0.0.1", (uint16_t)port, &opts, &c));
    CHECK(mqttc_client_set_on_restored(c, on_restored, NULL));
    CHECK(mqttc_client_set_on_connection(c, on_connection, NULL));
    mqttc_token t;
    CHECK(mqttc_connect(c, &t));
    wait_ok(c, t, "connect");
    for (;;) {
        pthread_mutex_lock(&lock);
        int is_up = up;
        pthread_mutex_unlock(&lock);
        if (is_up)
            break;
        pause_ms(1);
    }

    size_t n = last > first ? (size_t)(last - first) : 0;
    mqttc_token *tokens = calloc(n + 1, sizeof *tokens);
    for (int i = first; i < last; i++) {
        char payload[32];
        int len = snprintf(payload, sizeof payload, "%d:%d", life, i);
        mqttc_status st;
        /* The outgoing budget may be spent while the broker catches up: wait for room. */
        while ((st = mqttc_publish(c, "store/kill", payload, (size_t)len, qos, false, &tokens[i - first])) ==
               MQTTC_ERR_QUEUE_FULL)
            pause_ms(1);
        if (st != MQTTC_OK)
            FAIL("publish %d -> %s", i, mqttc_status_str(st));
        printf("ok %d\n", i);
    }
    for (size_t i = 0; i < n; i++)
        wait_ok(c, tokens[i], "publish");
    pthread_mutex_lock(&lock);
    size_t r = restored_count;
    pthread_mutex_unlock(&lock);
    for (size_t i = 0; i < r; i++)
        wait_ok(c, restored[i], "restored publish");
    printf("done restored=%zu\n", r);
    CHECK(mqttc_disconnect(c, &t));
    wait_ok(c, t, "disconnect");
    mqttc_client_free(c);
    free(tokens);
    return 0;
}
