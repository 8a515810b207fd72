/*
 * A directory store on a full disk, for tests/persistence.rs.
 *
 * Usage: store_full STORE_DIR LIMIT
 *
 * With files limited to LIMIT bytes (RLIMIT_FSIZE, SIGXFSZ ignored: a write past the limit fails
 * with EFBIG, as one on a full disk fails with ENOSPC), publishes QoS 1 and 2 messages "I:xxx..."
 * before any connect, printing "ok I" for each publish that returned MQTTC_OK, until one fails:
 * it must fail with MQTTC_ERR_STORE ("store error: DETAIL"), and so must the next. Then frees the
 * client, its messages still stored. tests/c/store_publisher.c (same client id) restores them.
 */
#include "check.h"

#include <signal.h>
#include <string.h>
#include <sys/resource.h>

#define MOST 100000

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s STORE_DIR LIMIT\n", argv[0]);
        return 2;
    }
    struct rlimit r;
    if (getrlimit(RLIMIT_FSIZE, &r) != 0)
        FAIL("getrlimit");
    r.rlim_cur = (rlim_t)atol(argv[2]);
    if (signal(SIGXFSZ, SIG_IGN) == SIG_ERR || setrlimit(RLIMIT_FSIZE, &r) != 0)
        FAIL("limiting the file size");

    mqttc_options o;
    mqttc_options_init(&o);
    o.client_id = "store-publisher";
    o.clean_session = false;
    o.store_dir = argv[1];
    /* No broker: every message stays stored, waiting for a connect. */
    o.queue_before_connect = true;
    mqttc_client *c = NULL;
    CHECK(mqttc_client_new("127.0.0.1", 1, &o, &c));
    char payload[256];
    int i = 0;
    mqttc_status st = MQTTC_OK;
    for (; i < MOST; i++) {
        /* Records of several sizes, so that the limit falls inside one. */
        int len = snprintf(payload, sizeof payload, "%d:", i);
        memset(payload + len, 'x', (size_t)(100 + i % 97));
        len += 100 + i % 97;
        st = mqttc_publish(c, "store/kill", payload, (size_t)len, 1 + i % 2, false, NULL);
        if (st != MQTTC_OK)
            break;
        printf("ok %d\n", i);
    }
    if (st != MQTTC_ERR_STORE)
        FAIL("publish %d: %s, not MQTTC_ERR_STORE", i, mqttc_status_str(st));
    printf("store error: %s\n", mqttc_last_error());
    st = mqttc_publish(c, "store/kill", "after", 5, 1, false, NULL);
    if (st != MQTTC_ERR_STORE)
        FAIL("a publish on the full disk: %s", mqttc_status_str(st));
    mqttc_client_free(c);
    printf("filled %d\n", i);
    return 0;
}
