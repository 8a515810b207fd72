/*
 * mqttc_sub: subscribes to one or more topic filters and prints the messages it receives, like
 * mosquitto_sub, with the same common options, output and exit codes.
 *
 * Usage: mqttc_sub [-h host] [-p port | --unix path] -t filter [-t filter ...] [-q qos] [-v] [-N]
 *                  [-R] [-C count] [-W seconds] [-i id] [-k keepalive] [-c] [-u user [-P pass]] [-d]
 *                  [--will-topic topic [--will-payload payload] [--will-qos qos] [--will-retain]]
 *        mqttc_sub --help
 *
 * Messages are printed by the library's callback thread; main waits on a condition variable (with
 * a short timeout, to notice signals, -W and a lost connection) and disconnects cleanly.
 */
#include "cli_common.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>

/* How often main looks at the signal flag and the connection state. */
#define POLL_MS 100

/* Set by the SIGINT/SIGTERM handler; main polls it. */
static volatile sig_atomic_t stop_signal = 0;

static void on_signal(int sig) {
    (void)sig;
    stop_signal = 1;
}

/* Shared between the message callback (library thread) and main. */
struct sub_state {
    const struct cli_config *cfg;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    long printed; /* messages printed so far (counted for -C) */
    bool done;    /* -C reached: print nothing more */
};

static void print_usage(void) {
    printf("mqttc_sub is a simple mqtt client that will subscribe to a set of topics and print all messages it receives.\n");
    printf("mqttc_sub running on libmqttclient %s.\n\n", mqttc_version());
    printf("Usage: mqttc_sub {[-h host] [--unix path] [-p port] [-u username] [-P password] -t topic ...}\n");
    printf("                 | -L URL\n");
    printf("                 [-c] [-k keepalive] [-q qos]\n");
    printf("                 [-C msg_count] [-R] [-W timeout_secs]\n");
    printf("                 [-i id] [-I id_prefix]\n");
    printf("                 [-F format] [--pretty]\n");
    printf("                 [-d] [-N] [-v] [-V mqttv311|mqttv5]\n");
    printf("                 [--will-topic [--will-payload payload] [--will-qos qos] [--will-retain]]\n");
    printf("                 [[--cafile file] [--tls-use-os-certs] [--cert file --key file] [--insecure]\n");
    printf("                  [--tls-alpn protocol]]\n");
    printf("       mqttc_sub --help\n\n");
    printf(" -c : disable clean session/enable persistent client mode (requires -i or -I).\n");
    printf("      With -V mqttv5 the session never expires, as with mosquitto's tools.\n");
    printf(" -C : disconnect and exit after receiving the 'msg_count' messages.\n");
    printf(" -d : enable debug messages.\n");
    printf(" -F : output format, as mosquitto_sub's (see man mqttc_sub).\n");
    printf(" -h : mqtt host to connect to. Defaults to localhost.\n");
    printf(" -i : id to use for this client. Defaults to a random id chosen by the library.\n");
    printf(" -I : define the client id as id_prefix appended with the process id.\n");
    printf(" -k : keep alive in seconds for this client. Defaults to 60.\n");
    printf(" -N : do not add an end of line character when printing the payload.\n");
    printf(" -p : network port to connect to. Defaults to 1883.\n");
    printf(" -P : provide a password\n");
    printf(" -q : quality of service level to use for the subscription. Defaults to 0.\n");
    printf(" -R : do not print stale messages (those with retain set).\n");
    printf(" -t : mqtt topic to subscribe to. May be repeated multiple times.\n");
    printf(" -u : provide a username\n");
    printf(" -v : print published messages verbosely.\n");
    printf(" -V : specify the version of the MQTT protocol to use: mqttv311 (default) or mqttv5 (also 311, 5).\n");
    printf(" -W : Specifies a timeout in seconds how long to process incoming MQTT messages.\n");
    printf(" --pretty : print formatted output rather than minimised output when using the\n");
    printf("            JSON output format option.\n");
    cli_usage_long_options();
}

/* Runs on the library's callback thread: prints and counts under the lock, so that nothing is
 * printed once -C is reached. */
static void on_message(mqttc_client *client, const mqttc_message *msg, void *userdata) {
    struct sub_state *s = userdata;
    (void)client;
    pthread_mutex_lock(&s->lock);
    if (!s->done && !(msg->retain && s->cfg->no_retain)) {
        cli_print_message(stdout, &s->cfg->output, msg);
        s->printed++;
        if (s->cfg->msg_count > 0 && s->printed >= s->cfg->msg_count) {
            s->done = true;
            pthread_cond_signal(&s->cond);
        }
    }
    pthread_mutex_unlock(&s->lock);
}

static bool install_signal_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0) {
        perror("sigaction");
        return false;
    }
    return true;
}

static bool state_init(struct sub_state *s, const struct cli_config *cfg) {
    memset(s, 0, sizeof *s);
    s->cfg = cfg;
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0)
        return false;
    bool ok = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 && pthread_cond_init(&s->cond, &attr) == 0;
    pthread_condattr_destroy(&attr);
    if (ok && pthread_mutex_init(&s->lock, NULL) != 0) {
        pthread_cond_destroy(&s->cond);
        ok = false;
    }
    return ok;
}

static void state_destroy(struct sub_state *s) {
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
}

/* One entry per -t, all with the same callback: mqttc_subscribe_many sends them in one SUBSCRIBE,
 * as mosquitto_sub does. NULL (reported) when out of memory; the caller frees it. */
static mqttc_subscription *make_subscriptions(const struct cli_config *cfg, struct sub_state *s) {
    mqttc_subscription *subs = calloc(cfg->topic_count, sizeof *subs);
    if (!subs) {
        fprintf(stderr, "Error: Out of memory.\n");
        return NULL;
    }
    for (size_t i = 0; i < cfg->topic_count; i++) {
        subs[i].struct_size = sizeof subs[i];
        subs[i].filter = cfg->topics[i];
        subs[i].qos = cfg->qos;
        subs[i].on_message = on_message;
        subs[i].userdata = s;
        subs[i].drop_userdata = NULL;
    }
    return subs;
}

/* Waits for the SUBACK. A filter the broker refuses is only reported (with -d, as "128"); if it
 * refuses all of them, that is an error. */
static bool subscribe_finish(mqttc_client *client, const struct cli_config *cfg, mqttc_token token) {
    size_t n = cfg->topic_count;
    mqttc_status st = mqttc_token_wait(client, token, CLI_OP_TIMEOUT_MS);
    if (st != MQTTC_OK && st != MQTTC_ERR_SUBSCRIBE_REFUSED)
        return cli_check(st, "subscribe");
    uint8_t *codes = calloc(n, 1);
    size_t count = 0;
    if (!codes) {
        fprintf(stderr, "Error: Out of memory.\n");
        return false;
    }
    bool ok = cli_check(mqttc_token_codes(client, token, codes, n, &count), "subscribe");
    size_t refused = 0;
    for (size_t i = 0; ok && i < count; i++)
        refused += codes[i] == 0x80;
    if (ok && cfg->debug) {
        printf("Subscribed (token: %" PRIu64 "):", (uint64_t)token);
        for (size_t i = 0; i < count; i++)
            printf("%s %d", i ? "," : "", codes[i]);
        printf("\n");
        fflush(stdout);
    }
    if (ok && refused == n) {
        fprintf(stderr, "All subscription requests were denied.\n");
        ok = false;
    }
    free(codes);
    return ok;
}

static struct timespec deadline_after_ms(long ms) {
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

static bool passed(const struct timespec *deadline) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > deadline->tv_sec || (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

/* Waits until -C is reached (0), a signal (0), -W runs out (27) or the session ends (7). A lost
 * connection is re-made by the library (as mosquitto_sub does), so only a session the library gave
 * up on ends the wait early. */
static int wait_for_end(mqttc_client *client, struct sub_state *s) {
    const struct cli_config *cfg = s->cfg;
    struct timespec end = deadline_after_ms(cfg->timeout_s * 1000L);
    for (;;) {
        pthread_mutex_lock(&s->lock);
        if (!s->done) {
            struct timespec slice = deadline_after_ms(POLL_MS);
            pthread_cond_timedwait(&s->cond, &s->lock, &slice);
        }
        bool done = s->done;
        pthread_mutex_unlock(&s->lock);
        if (done || stop_signal)
            return CLI_EXIT_OK;
        if (cfg->timeout_s > 0 && passed(&end)) {
            fprintf(stderr, "Timed out\n");
            return CLI_EXIT_TIMEOUT;
        }
        int state = mqttc_client_state(client);
        if (state < 0) {
            cli_check((mqttc_status)state, "mqttc_client_state");
            return CLI_EXIT_ERROR;
        }
        if (state == MQTTC_STATE_DISCONNECTED) {
            fprintf(stderr, "Error: The connection was lost.\n");
            return CLI_EXIT_CONN_LOST;
        }
    }
}

/* Connects, subscribes and waits for the end; returns the exit code. */
static int connect_and_subscribe(const struct cli_config *cfg, struct sub_state *s,
                                 const mqttc_subscription *subs) {
    mqttc_token conn_tok, sub_tok;
    mqttc_client *client = cli_client_start(cfg);
    if (!client)
        return CLI_EXIT_ERROR;
    /* Subscribe before connecting, so that the callback is in place for the messages a persistent
     * session (-c) has queued: the broker sends them right after the CONNACK, and the library sends
     * our SUBSCRIBE then. The status is looked at once the connection is up (a failed connect is
     * reported first). */
    mqttc_status sub_st = mqttc_subscribe_many(client, subs, cfg->topic_count, &sub_tok);
    int code = cli_connect_start(client, &conn_tok);
    if (code != CLI_EXIT_OK)
        return code;
    code = cli_connect_finish(cfg, client, conn_tok); /* frees the client on failure */
    if (code != CLI_EXIT_OK)
        return code;
    /* Like mosquitto_sub, a signal before the connection is up just ends the program. */
    if (cli_check(sub_st, "subscribe") && install_signal_handlers() && subscribe_finish(client, cfg, sub_tok))
        code = wait_for_end(client, s);
    else
        code = CLI_EXIT_ERROR;
    if (code == CLI_EXIT_CONN_LOST) {
        mqttc_client_free(client);
        return code;
    }
    return cli_disconnect(client, code);
}

static int run(const struct cli_config *cfg) {
    if (cfg->topic_count == 0) {
        cli_usage_error(cfg, "You must specify a topic to subscribe to.");
        return CLI_EXIT_ERROR;
    }
    struct sub_state s;
    if (!state_init(&s, cfg)) {
        fprintf(stderr, "Error: could not initialise a mutex or condition variable.\n");
        return CLI_EXIT_ERROR;
    }
    int code = CLI_EXIT_ERROR;
    mqttc_subscription *subs = make_subscriptions(cfg, &s);
    if (subs)
        code = connect_and_subscribe(cfg, &s, subs);
    /* The client is freed by now: no callback runs any more. */
    free(subs);
    state_destroy(&s);
    return code;
}

int main(int argc, char **argv) {
    return cli_main(CLI_SUB, argc, argv, print_usage, run);
}
