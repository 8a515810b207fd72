/*
 * mqttc_client_free on one thread while three others are inside calls on the same client: one
 * blocked in mqttc_token_wait, one polling (mqttc_token_poll, mqttc_client_state), one publishing.
 * Each round frees after a different short delay, then checks that every thread got out with an
 * expected status, and that the freed handle stays refused after a new client was made (which may
 * take the same slot). Even rounds use the real broker; odd ones a socket that never answers, so
 * the waiter is still blocked when the free lands. Meant to run under AddressSanitizer and under
 * Valgrind's memcheck, which sees the library's own reads of freed memory.
 * Usage: free_race <port of a running broker> <rounds>
 */
#include "check.h"
#include "listen_any.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static mqttc_client *volatile shared_client;
static atomic_int in_calls, refused;

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000L};
    nanosleep(&ts, NULL);
}

/* What a call racing the free may return; anything else fails the test. Returns true once the
 * handle is refused, which ends the thread's loop. */
static bool done(mqttc_status st, const char *what) {
    switch (st) {
    case MQTTC_OK:
    case MQTTC_ERR_CANCELLED:
    case MQTTC_ERR_TIMEOUT:
    case MQTTC_ERR_NOT_CONNECTED:
    case MQTTC_ERR_QUEUE_FULL: /* the silent broker's rounds fill the offline queue */
    case MQTTC_ERR_DROPPED:
    case MQTTC_ERR_TOKEN_UNKNOWN:
    case MQTTC_ERR_TOKEN_EXPIRED:
    case MQTTC_PENDING:
        return false;
    case MQTTC_ERR_INVALID_HANDLE:
        atomic_fetch_add(&refused, 1);
        return true;
    default:
        FAIL("%s racing a free returned %s", what, mqttc_status_str(st));
    }
}

static void *waiter(void *arg) {
    (void)arg;
    mqttc_client *c = shared_client;
    atomic_fetch_add(&in_calls, 1);
    for (;;) {
        mqttc_token t;
        mqttc_status st = mqttc_publish(c, "race/wait", "w", 1, 1, false, &t);
        if (done(st, "mqttc_publish (waiter)"))
            return NULL;
        if (st == MQTTC_OK && done(mqttc_token_wait(c, t, 2000), "mqttc_token_wait"))
            return NULL;
    }
}

static void *poller(void *arg) {
    (void)arg;
    mqttc_client *c = shared_client;
    atomic_fetch_add(&in_calls, 1);
    for (;;) {
        if (done(mqttc_token_poll(c, 1), "mqttc_token_poll"))
            return NULL;
        int state = mqttc_client_state(c);
        if (state < 0 && done((mqttc_status)state, "mqttc_client_state"))
            return NULL;
    }
}

static void *publisher(void *arg) {
    (void)arg;
    mqttc_client *c = shared_client;
    atomic_fetch_add(&in_calls, 1);
    for (int i = 0;; i++) {
        if (done(mqttc_publish(c, "race/pub", "p", 1, i % 2, false, NULL), "mqttc_publish"))
            return NULL;
    }
}

static mqttc_client *new_client(uint16_t port) {
    mqttc_options o;
    mqttc_options_init(&o);
    o.queue_before_connect = true;
    mqttc_client *c = NULL;
    CHECK(mqttc_client_new("127.0.0.1", port, &o, &c));
    return c;
}

int main(int argc, char **argv) {
    if (argc < 3)
        return 2;
    uint16_t broker = (uint16_t)atoi(argv[1]);
    int rounds = atoi(argv[2]);
    uint16_t silent;
    int listener = listen_any(&silent);
    for (int round = 0; round < rounds; round++) {
        mqttc_client *c = new_client(round % 2 ? silent : broker);
        mqttc_token t;
        CHECK(mqttc_connect(c, &t));
        if (round % 2 == 0)
            CHECK(mqttc_token_wait(c, t, 10000));
        shared_client = c;
        atomic_store(&in_calls, 0);
        atomic_store(&refused, 0);
        pthread_t threads[3];
        void *(*bodies[3])(void *) = {waiter, poller, publisher};
        for (int i = 0; i < 3; i++)
            if (pthread_create(&threads[i], NULL, bodies[i], NULL) != 0)
                FAIL("pthread_create");
        while (atomic_load(&in_calls) < 3)
            sleep_us(100);
        sleep_us((round * 397L) % 3000); /* the free lands at a different point each round */
        mqttc_client_free(c);
        for (int i = 0; i < 3; i++)
            pthread_join(threads[i], NULL);
        if (atomic_load(&refused) != 3)
            FAIL("round %d: %d of 3 threads saw the handle refused", round, atomic_load(&refused));
        /* A new client may take the freed slot: the old handle must still be refused. */
        mqttc_client *next = new_client(broker);
        if (next == c)
            FAIL("round %d: a new client got the freed client's handle", round);
        if (mqttc_client_state(c) != MQTTC_ERR_INVALID_HANDLE)
            FAIL("round %d: the freed handle is not refused after a new client was made", round);
        if (mqttc_publish(c, "race/stale", "s", 1, 0, false, NULL) != MQTTC_ERR_INVALID_HANDLE)
            FAIL("round %d: a publish on the freed handle was not refused", round);
        mqttc_client_free(c); /* a second free is refused, nothing else */
        mqttc_client_free(next);
    }
    close(listener);
    printf("free_race: ok (%d rounds)\n", rounds);
    return 0;
}
