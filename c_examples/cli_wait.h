/*
 * What mqttc_sub and mqttc_rr share once subscribed: the SUBACK, and main waiting for the
 * library's callback thread to say the run is done (-C reached, the response printed), for -W to
 * run out, a signal, or a session the library gave up on; with mosquitto's messages and exit codes.
 */
#ifndef MQTTC_CLI_WAIT_H
#define MQTTC_CLI_WAIT_H

#include "cli_common.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>

/* How often main looks at the signal flag and the connection state. */
#define CLI_POLL_MS 100

/* Set by the message callback (under `lock`) when the run is done; main waits on `cond`. */
struct cli_waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
};

static bool cli_waiter_init(struct cli_waiter *w) {
    memset(w, 0, sizeof *w);
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0)
        return false;
    bool ok = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 && pthread_cond_init(&w->cond, &attr) == 0;
    pthread_condattr_destroy(&attr);
    if (ok && pthread_mutex_init(&w->lock, NULL) != 0) {
        pthread_cond_destroy(&w->cond);
        ok = false;
    }
    return ok;
}

static void cli_waiter_destroy(struct cli_waiter *w) {
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
}

/* With the lock held: the run is done; main disconnects. */
static void cli_waiter_finish(struct cli_waiter *w) {
    w->done = true;
    pthread_cond_signal(&w->cond);
}

static struct timespec cli_deadline_after_ms(long ms) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

static bool cli_passed(const struct timespec *deadline) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > deadline->tv_sec || (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

/* Waits until the run is done (0), `*stop` is set by a signal (0), -W's `timeout_s` runs out (27)
 * or the session ends (7). A lost connection is re-made by the library (as mosquitto's tools do),
 * so only a session the library gave up on ends the wait early. `*with_will` is set when a signal
 * or -W ended it: mosquitto's tools then disconnect with reason "with will" (MQTT 5), so that the
 * broker publishes the will. */
static int cli_wait_for_end(mqttc_client *client, struct cli_waiter *w, long timeout_s,
                            const volatile sig_atomic_t *stop, bool *with_will) {
    struct timespec end = cli_deadline_after_ms(timeout_s * 1000L);
    for (;;) {
        pthread_mutex_lock(&w->lock);
        if (!w->done) {
            struct timespec slice = cli_deadline_after_ms(CLI_POLL_MS);
            pthread_cond_timedwait(&w->cond, &w->lock, &slice);
        }
        bool done = w->done;
        pthread_mutex_unlock(&w->lock);
        *with_will = !done;
        if (done || *stop)
            return CLI_EXIT_OK;
        if (timeout_s > 0 && cli_passed(&end)) {
            cli_err("Timed out\n");
            return CLI_EXIT_TIMEOUT;
        }
        int state = mqttc_client_state(client);
        if (state < 0) {
            cli_check((mqttc_status)state, "mqttc_client_state");
            return CLI_EXIT_ERROR;
        }
        if (state == MQTTC_STATE_DISCONNECTED) {
            cli_err("Error: The connection was lost.\n");
            return CLI_EXIT_CONN_LOST;
        }
    }
}

/* Ends the run that cli_wait_for_end waited for, with its exit code: a session already lost is
 * freed, else disconnected (with the will when `with_will`). */
static int cli_wait_end(const struct cli_config *cfg, mqttc_client *client, int code, bool with_will) {
    if (code == CLI_EXIT_CONN_LOST) {
        mqttc_client_free(client);
        return code;
    }
    return cli_disconnect(cfg, client, with_will ? CLI_DISCONNECT_WITH_WILL : CLI_DISCONNECT_NORMAL, code);
}

/* Waits for the SUBACK of `n` filters and gives their codes in `codes` (room for `n`), printing
 * them with -d. False (reported) when the subscribe failed, or the broker refused every filter:
 * `refused` then says so, with the first code. */
static bool cli_subscribe_finish(mqttc_client *client, const struct cli_config *cfg, mqttc_token token,
                                 uint8_t *codes, size_t n, void (*refused)(uint8_t code)) {
    mqttc_status st = mqttc_token_wait(client, token, CLI_OP_TIMEOUT_MS);
    if (st != MQTTC_OK && st != MQTTC_ERR_SUBSCRIBE_REFUSED)
        return cli_check(st, "subscribe");
    size_t count = 0, denied = 0;
    if (!cli_check(mqttc_token_codes(client, token, codes, n, &count), "subscribe"))
        return false;
    for (size_t i = 0; i < count; i++)
        denied += codes[i] >= 0x80;
    if (cfg->debug) {
        printf("Subscribed (token: %" PRIu64 "):", (uint64_t)token);
        for (size_t i = 0; i < count; i++)
            printf("%s %d", i ? "," : "", codes[i]);
        printf("\n");
        fflush(stdout);
    }
    if (count > 0 && denied == count) {
        refused(codes[0]);
        return false;
    }
    return true;
}

#endif /* MQTTC_CLI_WAIT_H */
