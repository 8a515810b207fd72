/*
 * mqttc_sub: subscribes to one or more topic filters and prints the messages it receives, like
 * mosquitto_sub, with the same common options, output and exit codes.
 *
 * Usage: mqttc_sub [-h host] [-p port | --unix path] -t filter [-t filter ...] [-q qos] [-v] [-N]
 *                  [-R] [-C count] [-W seconds] [-i id] [-k keepalive] [-c] [-u user [-P pass]] [-d]
 *                  [--will-topic topic [--will-payload payload] [--will-qos qos] [--will-retain]]
 *        mqttc_sub --help
 *
 * Messages are printed by the library's callback thread; main waits (cli_wait.h) and disconnects
 * cleanly.
 */
#include "cli_wait.h"

/* Set by the SIGINT/SIGTERM handler; main polls it. */
static volatile sig_atomic_t stop_signal = 0;
/* Set once the broker accepted the connection. */
static volatile sig_atomic_t connected = 0;

/* As mosquitto_sub's: before the connection is up a signal ends the program at once, with
 * mosquitto_sub's exit(-1); after, main disconnects. */
static void on_signal(int sig) {
    (void)sig;
    if (!connected)
        _exit(255);
    stop_signal = 1;
}

struct sub_state;

/* The userdata of the subscription of one -t. */
struct sub_entry {
    struct sub_state *state;
    size_t index; /* in cfg->topics */
};

/* Shared between the message callback (library thread) and main. */
struct sub_state {
    const struct cli_config *cfg;
    /* Done at -C, at --retained-only's end, or when stdout failed: nothing more is printed. */
    struct cli_waiter wait;
    long printed;              /* messages printed so far (counted for -C) */
    struct sub_entry *entries; /* one per -t */
    bool *active;              /* per -t: its subscription is the library's (see first_match) */
};

static void print_usage(void) {
    printf("mqttc_sub is a simple mqtt client that will subscribe to a set of topics and print all messages it receives.\n");
    printf("mqttc_sub running on libmqttclient %s.\n\n", mqttc_version());
    printf("Usage: mqttc_sub {[-h host] [--unix path] [-p port] [-u username] [-P password] -t topic | -L URL [-t topic]}\n");
    printf("                 [-c] [-k keepalive] [-q qos] [-x session-expiry-interval]\n");
    printf("                 [-C msg_count] [-E] [-R] [--retained-only] [--remove-retained] [-T filter_out] [-U topic ...]\n");
    printf("                 [--retain-as-published]\n");
    printf("                 [-F format] [--pretty] [--random-filter chance]\n");
    printf("                 [-W timeout_secs]\n");
    printf("                 [-A bind_address] [--nodelay] [-M max_inflight]\n");
    printf("                 [-i id] [-I id_prefix]\n");
    printf("                 [-d] [-N] [--quiet] [-v] [-V mqttv311|mqttv5]\n");
    printf("                 [--will-topic [--will-payload payload] [--will-qos qos] [--will-retain]]\n");
    printf("                 [[--cafile file] [--tls-use-os-certs] [--cert file --key file] [--insecure]\n");
    printf("                  [--tls-alpn protocol]] [--ws-path path] [--store dir]\n");
    printf("                 [-D command identifier value]\n");
    printf("       mqttc_sub --help\n\n");
    printf(" -C : disconnect and exit after receiving the 'msg_count' messages.\n");
    printf(" -E : Exit once all subscriptions have been acknowledged by the broker.\n");
    printf(" -F : output format, as mosquitto_sub's (see man mqttc_sub).\n");
    printf(" -N : do not add an end of line character when printing the payload.\n");
    printf(" -q : quality of service level to use for the subscription. Defaults to 0.\n");
    printf(" -R : do not print stale messages (those with retain set).\n");
    printf(" -t : mqtt topic to subscribe to. May be repeated multiple times.\n");
    printf(" -T : topic string to filter out of results. May be repeated.\n");
    printf(" -U : unsubscribe from a topic. May be repeated.\n");
    printf(" -v : print published messages verbosely.\n");
    printf(" -V : specify the version of the MQTT protocol to use: mqttv311 (default) or mqttv5 (also 311, 5).\n");
    printf(" -W : Specifies a timeout in seconds how long to process incoming MQTT messages.\n");
    printf(" --pretty : print formatted output rather than minimised output when using the\n");
    printf("            JSON output format option.\n");
    printf(" --random-filter : only print a share of received messages, chosen at random: as\n");
    printf("                   mosquitto_sub 2.0 reads it, in tenths of a percent (1000 prints all,\n");
    printf("                   100 about one in ten).\n");
    printf(" --retained-only : only handle messages with the retained flag set, and exit when the\n");
    printf("                   first non-retained message is received.\n");
    printf(" --remove-retained : send a message to the server to clear any received retained messages\n");
    printf("                     Use -T to filter out messages you do not want to be cleared.\n");
    printf(" --retain-as-published : MQTT 5: keep the retain flag of messages as they were published.\n");
    cli_usage_connection_options();
}

/* Whether -T filters this topic out. */
static bool filtered_out(const struct cli_config *cfg, const char *topic) {
    for (size_t i = 0; i < cfg->filter_outs.count; i++) {
        bool match = false;
        if (mqttc_topic_matches(cfg->filter_outs.items[i], topic, &match) == MQTTC_OK && match)
            return true;
    }
    return false;
}

/* mosquitto_sub's message callback, in its order: --retained-only ends at the first message that
 * is not retained; -R and -T skip (uncounted); --remove-retained clears the retained message (an
 * empty retained QoS 1 message; disconnecting waits for its PUBACK); print; -C counts. */
static void handle_message(mqttc_client *client, struct sub_state *s, const mqttc_message *msg) {
    const struct cli_config *cfg = s->cfg;
    if (cfg->retained_only && !msg->retain) {
        cli_waiter_finish(&s->wait);
        return;
    }
    if ((msg->retain && cfg->no_retain) || filtered_out(cfg, msg->topic))
        return;
    if (cfg->remove_retained && msg->retain)
        cli_check(mqttc_publish(client, msg->topic, NULL, 0, 1, true, NULL), "--remove-retained");
    cli_print_message(stdout, &cfg->output, msg);
    if (ferror(stdout) || (cfg->msg_count > 0 && ++s->printed >= cfg->msg_count))
        cli_waiter_finish(&s->wait);
}

/* The library calls the callback of every subscription whose filter matches a message; the
 * broker sends the message once (MQTT 3.1.1) or once per matching filter (MQTT 5). To print what
 * mosquitto_sub prints, one line per message the broker sends, only the callback of the first -t
 * still subscribed that matches handles it: a later -t with the same filter replaced an earlier
 * one, and -U removed those it names. */
static bool first_match(const struct sub_state *s, size_t index, const char *topic) {
    for (size_t k = 0; k < index; k++) {
        bool match = false;
        if (s->active[k] && mqttc_topic_matches(s->cfg->topics.items[k], topic, &match) == MQTTC_OK && match)
            return false;
    }
    return true;
}

/* Runs on the library's callback thread, under the lock, so that nothing is printed once done. */
static void on_message(mqttc_client *client, const mqttc_message *msg, void *userdata) {
    const struct sub_entry *e = userdata;
    struct sub_state *s = e->state;
    pthread_mutex_lock(&s->wait.lock);
    if (!s->wait.done && first_match(s, e->index, msg->topic))
        handle_message(client, s, msg);
    pthread_mutex_unlock(&s->wait.lock);
}

static bool in_list(const struct cli_list *list, const char *word) {
    for (size_t i = 0; i < list->count; i++) {
        if (strcmp(list->items[i], word) == 0)
            return true;
    }
    return false;
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
    size_t n = cfg->topics.count;
    s->entries = calloc(n, sizeof *s->entries);
    s->active = calloc(n, sizeof *s->active);
    if (!s->entries || !s->active || !cli_waiter_init(&s->wait)) {
        free(s->entries);
        free(s->active);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        struct cli_list later = {cfg->topics.items + i + 1, n - i - 1};
        s->entries[i] = (struct sub_entry){s, i};
        s->active[i] = !in_list(&later, cfg->topics.items[i]) && !in_list(&cfg->unsubscribes, cfg->topics.items[i]);
    }
    return true;
}

static void state_destroy(struct sub_state *s) {
    cli_waiter_destroy(&s->wait);
    free(s->entries);
    free(s->active);
}

/* One entry per -t, all with the same callback: mqttc_subscribe_v5 sends them in one SUBSCRIBE,
 * as mosquitto_sub does. NULL (reported) when out of memory; the caller frees it. */
static mqttc_subscription *make_subscriptions(const struct cli_config *cfg, struct sub_state *s) {
    mqttc_subscription *subs = calloc(cfg->topics.count, sizeof *subs);
    if (!subs) {
        fprintf(stderr, "Error: Out of memory.\n");
        return NULL;
    }
    for (size_t i = 0; i < cfg->topics.count; i++) {
        subs[i].struct_size = sizeof subs[i];
        subs[i].filter = cfg->topics.items[i];
        subs[i].qos = cfg->qos;
        subs[i].on_message = on_message;
        subs[i].userdata = &s->entries[i];
        subs[i].drop_userdata = NULL;
        /* MQTT 3.1.1 has no subscription options: -R then only filters. */
        subs[i].options = cfg->protocol_version == 5 ? cfg->sub_options : 0;
    }
    return subs;
}

static void all_denied(uint8_t code) {
    (void)code;
    cli_err("All subscription requests were denied.\n");
}

/* Waits for the SUBACK. A filter the broker refuses is only reported (with -d, as "128"); if it
 * refuses all of them, that is an error. */
static bool subscribe_finish(mqttc_client *client, const struct cli_config *cfg, mqttc_token token) {
    uint8_t *codes = calloc(cfg->topics.count, 1);
    if (!codes) {
        cli_err("Error: Out of memory.\n");
        return false;
    }
    bool ok = cli_subscribe_finish(client, cfg, token, codes, cfg->topics.count, all_denied);
    free(codes);
    return ok;
}

/* -U: one UNSUBSCRIBE per filter, after the SUBSCRIBE, as mosquitto_sub sends them; waited for, so
 * that -E leaves only once the broker has them. */
static bool unsubscribe(mqttc_client *client, const struct cli_config *cfg) {
    mqttc_properties *props = NULL;
    bool ok = cli_check(cli_props_list(&cfg->props, CLI_CMD_UNSUBSCRIBE, &props), "-D unsubscribe");
    for (size_t i = 0; ok && i < cfg->unsubscribes.count; i++) {
        mqttc_token tok;
        ok = cli_check(mqttc_unsubscribe_v5(client, &cfg->unsubscribes.items[i], 1, props, &tok), "unsubscribe") &&
             cli_check(mqttc_token_wait(client, tok, CLI_OP_TIMEOUT_MS), "unsubscribe");
    }
    mqttc_properties_free(props);
    return ok;
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
    mqttc_properties *props = NULL;
    mqttc_status sub_st = cli_props_list(&cfg->props, CLI_CMD_SUBSCRIBE, &props);
    if (sub_st == MQTTC_OK)
        sub_st = mqttc_subscribe_v5(client, subs, cfg->topics.count, props, &sub_tok);
    mqttc_properties_free(props);
    if (!install_signal_handlers()) {
        mqttc_client_free(client);
        return CLI_EXIT_ERROR;
    }
    int code = cli_connect_start(client, &conn_tok);
    if (code != CLI_EXIT_OK)
        return code;
    code = cli_connect_finish(cfg, client, conn_tok); /* frees the client on failure */
    if (code != CLI_EXIT_OK)
        return code;
    connected = 1;
    bool with_will = false;
    if (!cli_check(sub_st, "subscribe") || !subscribe_finish(client, cfg, sub_tok) || !unsubscribe(client, cfg))
        code = CLI_EXIT_ERROR;
    else if (!cfg->exit_after_sub)
        code = cli_wait_for_end(client, &s->wait, cfg->timeout_s, &stop_signal, &with_will);
    return cli_wait_end(cfg, client, code, with_will);
}

static int run(const struct cli_config *cfg) {
    if (cfg->topics.count == 0) {
        cli_usage_error(cfg, "You must specify a topic to subscribe to.");
        return CLI_EXIT_ERROR;
    }
    if (cfg->no_retain && cfg->retained_only) {
        fprintf(stderr, "\nError: Combining '-R' and '--retained-only' makes no sense.\n");
        return CLI_EXIT_ERROR;
    }
    /* --random-filter's draws, seeded from the clock as mosquitto_sub seeds them. */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    srand((unsigned)now.tv_nsec);
    struct sub_state s;
    if (!state_init(&s, cfg)) {
        fprintf(stderr, "Error: Out of memory, or no mutex or condition variable.\n");
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
