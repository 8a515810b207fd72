/*
 * A hostile broker seen through the C API: the scripted broker of tests/c_programs.rs answers the
 * connect, then breaks the connection. The connection-state callback must report LOST with the
 * expected status and a detail that names the problem; the client reconnects by itself (UP
 * again), and a QoS 1 publish then completes. Prints each event, then "hostile: ok".
 * Usage: hostile <port of the scripted broker> [huge]
 * - Without "huge" the broker sends a packet of the reserved type 0: MQTTC_ERR_PROTOCOL.
 * - With "huge" the client speaks MQTT 5 with a 1 s keep-alive in an address space limited to
 *   256 MiB, and the broker declares a PUBLISH of 256 MiB whose bytes then trickle in and stop:
 *   the client must hold only what arrived, and notice the stall by its keep-alive
 *   (MQTTC_ERR_KEEPALIVE_TIMEOUT), not abort on a reservation of the declared size. Then a
 *   publish whose payload the library cannot copy within the limit must fail with
 *   MQTTC_ERR_RESOURCE, not abort, and leave the client working.
 */
/* MAP_ANONYMOUS is not POSIX. */
#define _DEFAULT_SOURCE
#include "check.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

/* AddressSanitizer reserves terabytes of address space for its shadow memory, so under it the
 * address-space limit cannot be set: the program then only checks the error and the reconnect. */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int ups, losts;
static mqttc_status lost_reason;
static char lost_detail[256];

static void on_connection(mqttc_client *client, const mqttc_connection_event *ev, void *userdata) {
    (void)client;
    (void)userdata;
    pthread_mutex_lock(&lock);
    if (ev->change == MQTTC_CONNECTION_UP) {
        ups++;
    } else if (ev->change == MQTTC_CONNECTION_LOST) {
        losts++;
        lost_reason = ev->reason;
        snprintf(lost_detail, sizeof lost_detail, "%s", ev->detail ? ev->detail : "(null)");
    }
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
    printf("event change=%d reason=%s detail=%s\n", ev->change, mqttc_status_str(ev->reason),
           ev->detail ? ev->detail : "(null)");
    fflush(stdout);
}

/* Waits up to 10 s for `ups` UP and `losts` LOST events in all. */
static void wait_for(int want_ups, int want_losts) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    pthread_mutex_lock(&lock);
    while (ups < want_ups || losts < want_losts) {
        if (pthread_cond_timedwait(&changed, &lock, &deadline) != 0) {
            pthread_mutex_unlock(&lock);
            FAIL("%d up / %d lost events, wanted %d / %d", ups, losts, want_ups, want_losts);
        }
    }
    pthread_mutex_unlock(&lock);
}

#ifndef UNDER_ASAN
/* Maps the largest payload that fits the address space left, less some room for the library's
 * small allocations, so that the library's copy of it cannot fit. */
static void publish_what_cannot_be_copied(mqttc_client *c) {
    size_t mib = 1 << 20, size = 0;
    void *p = MAP_FAILED;
    for (size_t s = 256 * mib; s >= 32 * mib; s -= 8 * mib) {
        p = mmap(NULL, s, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p != MAP_FAILED) {
            size = s;
            break;
        }
    }
    if (p == MAP_FAILED)
        FAIL("no room for a 32 MiB payload under the limit");
    munmap(p, size);
    size -= 16 * mib;
    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        FAIL("mmap of %zu MiB", size / mib);
    mqttc_token t;
    mqttc_status st = mqttc_publish(c, "big/hostile", p, size, 1, false, &t);
    if (st != MQTTC_ERR_RESOURCE)
        FAIL("a %zu MiB payload that cannot be copied gave %s, not MQTTC_ERR_RESOURCE", size / mib,
             mqttc_status_str(st));
    printf("a %zu MiB payload it could not copy: MQTTC_ERR_RESOURCE (%s)\n", size / mib,
           mqttc_last_error());
    munmap(p, size);
}
#endif

int main(int argc, char **argv) {
    int huge = argc == 3 && strcmp(argv[2], "huge") == 0;
    if (argc != 2 && !huge) {
        fprintf(stderr, "usage: %s <port> [huge]\n", argv[0]);
        return 2;
    }
    mqttc_options opts;
    mqttc_options_init(&opts);
    opts.client_id = "c-hostile";
    opts.keep_alive = 0;
    mqttc_status want_reason = MQTTC_ERR_PROTOCOL;
    const char *want_detail = "packet type 0 is reserved";
    if (huge) {
#ifdef UNDER_ASAN
        printf("no address-space limit under AddressSanitizer\n");
#else
        struct rlimit limit = {256 << 20, 256 << 20};
        if (setrlimit(RLIMIT_AS, &limit) != 0)
            FAIL("setrlimit(RLIMIT_AS)");
        printf("address space limited to 256 MiB\n");
#endif
        opts.protocol_version = 5;
        opts.keep_alive = 1;
        want_reason = MQTTC_ERR_KEEPALIVE_TIMEOUT;
        want_detail = "no PINGRESP";
    }
    opts.reconnect_min_ms = 20;
    opts.reconnect_max_ms = 40;
    mqttc_client *c;
    CHECK(mqttc_client_new("127.0.0.1", (uint16_t)atoi(argv[1]), &opts, &c));
    CHECK(mqttc_client_set_on_connection(c, on_connection, NULL));
    mqttc_token t;
    CHECK(mqttc_connect(c, &t));
    CHECK(mqttc_token_wait(c, t, 10000));

    /* The broker breaks the connection; the client comes back by itself. */
    wait_for(2, 1);
    if (lost_reason != want_reason)
        FAIL("lost for %s, not %s", mqttc_status_str(lost_reason), mqttc_status_str(want_reason));
    if (!strstr(lost_detail, want_detail))
        FAIL("the detail does not name the problem: %s", lost_detail);
#ifndef UNDER_ASAN
    if (huge)
        publish_what_cannot_be_copied(c);
#endif

    CHECK(mqttc_publish(c, "after/hostile", "x", 1, 1, false, &t));
    CHECK(mqttc_token_wait(c, t, 10000));
    CHECK(mqttc_disconnect(c, &t));
    CHECK(mqttc_token_wait(c, t, 10000));
    mqttc_client_free(c);
    printf("hostile: ok\n");
    return 0;
}
