/*
 * mqttc_pub: publishes one message (or one per line of standard input) like mosquitto_pub, with
 * the same common options, output and exit codes.
 *
 * Usage: mqttc_pub [-h host] [-p port | --unix path] -t topic {-m message | -n | -f file | -l | -s}
 *                  [-q qos] [-r] [-i id] [-k keepalive] [-c] [-u username [-P password]] [-d]
 *                  [--will-topic topic [--will-payload payload] [--will-qos qos] [--will-retain]]
 *        mqttc_pub --help
 */
#include "cli_payload.h"

#include <time.h>

/* Publishes from -l wait for their tokens once this many are outstanding. */
#define PUB_WINDOW 256

static void print_usage(void) {
    printf("mqttc_pub is a simple mqtt client that will publish a message on a single topic and exit.\n");
    printf("mqttc_pub running on libmqttclient %s.\n\n", mqttc_version());
    printf("Usage: mqttc_pub {[-h host] [--unix path] [-p port] [-u username] [-P password] -t topic | -L URL}\n");
    printf("                 {-f file | -l | -n | -s | -m message}\n");
    printf("                 [-c] [-k keepalive] [-q qos] [-r] [--repeat N] [--repeat-delay time] [-x session-expiry]\n");
    printf("                 [-A bind_address] [--nodelay]\n");
    printf("                 [-i id] [-I id_prefix]\n");
    printf("                 [-d] [--quiet] [-V mqttv311|mqttv5]\n");
    printf("                 [-M max_inflight]\n");
    printf("                 [--will-topic [--will-payload payload] [--will-qos qos] [--will-retain]]\n");
    printf("                 [[--cafile file] [--tls-use-os-certs] [--cert file --key file] [--insecure]\n");
    printf("                  [--tls-alpn protocol]] [--ws-path path] [--store dir]\n");
    printf("                 [-D command identifier value]\n");
    printf("       mqttc_pub --help\n\n");
    printf(" -f : send the contents of a file as the message.\n");
    printf(" -l : read messages from stdin, sending a separate message for each line.\n");
    printf(" -m : message payload to send.\n");
    printf(" -n : send a null (zero length) message.\n");
    printf(" -q : quality of service level to use for all messages. Defaults to 0.\n");
    printf(" -r : message should be retained.\n");
    printf(" -s : read message from stdin, sending the entire input as a message.\n");
    printf(" -t : mqtt topic to publish to.\n");
    printf(" -V : specify the version of the MQTT protocol to use: mqttv311 (default) or mqttv5 (also 311, 5).\n");
    printf(" --repeat : if publish mode is -f, -m, -n or -s, then repeat the publish N times.\n");
    printf(" --repeat-delay : if using --repeat, wait time seconds between publishes. Defaults to 0.\n");
    cli_usage_connection_options();
}

/* Tokens of publishes not yet waited for, oldest first (a ring). */
struct pending {
    mqttc_token tokens[PUB_WINDOW];
    size_t head, count;
    const mqttc_properties *props; /* -D publish, or NULL */
};

static bool wait_oldest(mqttc_client *client, struct pending *p) {
    mqttc_token tok = p->tokens[p->head];
    p->head = (p->head + 1) % PUB_WINDOW;
    p->count--;
    return cli_check(mqttc_token_wait(client, tok, CLI_OP_TIMEOUT_MS), "publish");
}

/* Queues one publish; waits for the oldest outstanding one first when the window is full. */
static bool publish(mqttc_client *client, const struct cli_config *cfg, struct pending *p, const void *payload,
                    size_t len) {
    if (p->count == PUB_WINDOW && !wait_oldest(client, p))
        return false;
    mqttc_token tok;
    const char *topic = cfg->topics.items[cfg->topics.count - 1];
    if (!cli_check(mqttc_publish_v5(client, topic, payload, len, cfg->qos, cfg->retain, p->props, &tok), "publish"))
        return false;
    p->tokens[(p->head + p->count) % PUB_WINDOW] = tok;
    p->count++;
    return true;
}

static bool wait_all(mqttc_client *client, struct pending *p) {
    while (p->count > 0) {
        if (!wait_oldest(client, p))
            return false;
    }
    return true;
}

/* -l: one message per line of stdin, without its '\n' (a '\r' stays, as with mosquitto_pub); a
 * last line without '\n' is sent too. */
static bool publish_lines(mqttc_client *client, const struct cli_config *cfg, struct pending *p) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    bool ok = true;
    while (ok && (n = getline(&line, &cap, stdin)) >= 0) {
        size_t len = (size_t)n;
        if (len > 0 && line[len - 1] == '\n')
            len--;
        ok = publish(client, cfg, p, line, len);
    }
    if (ok && ferror(stdin)) {
        cli_err("Error: reading stdin failed.\n");
        ok = false;
    }
    free(line);
    return ok;
}

/* --repeat-delay: waits `seconds`. */
static void pause_for(double seconds) {
    struct timespec t = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&t, &t) != 0)
        ;
}

/* One message, --repeat times: each after the one before was sent (QoS 0) or acknowledged, and
 * --repeat-delay seconds, as mosquitto_pub repeats. */
static bool publish_repeated(mqttc_client *client, const struct cli_config *cfg, struct pending *p,
                             const void *payload, size_t len) {
    bool ok = true;
    for (long n = 0; ok && n < cfg->repeat_count; n++) {
        if (n > 0) {
            ok = wait_all(client, p);
            pause_for(cfg->repeat_delay);
        }
        ok = ok && publish(client, cfg, p, payload, len);
    }
    return ok;
}

/* Exactly one topic and one message source, like mosquitto_pub; prints the usage otherwise. */
static bool validate(const struct cli_config *cfg) {
    if (cfg->topics.count == 0 || cfg->msg_mode == CLI_MSG_NONE) {
        fprintf(stderr, "Error: Both topic and message must be supplied.\n");
        print_usage();
        return false;
    }
    return true;
}

static int run(const struct cli_config *cfg) {
    if (!validate(cfg))
        return CLI_EXIT_ERROR;
    struct cli_payload payload;
    if (!cli_payload_load(cfg, &payload))
        return CLI_EXIT_ERROR;

    mqttc_client *client = cli_client_start(cfg);
    mqttc_token conn_tok;
    int code = client ? cli_connect_start(client, &conn_tok) : CLI_EXIT_ERROR;
    if (code == CLI_EXIT_OK)
        code = cli_connect_finish(cfg, client, conn_tok);
    if (code != CLI_EXIT_OK) {
        cli_payload_free(&payload);
        return code;
    }
    mqttc_properties *props = NULL;
    bool ok = cli_check(cli_props_list(&cfg->props, CLI_CMD_PUBLISH, &props), "-D publish");
    struct pending pending = {.head = 0, .count = 0, .props = props};
    switch (ok ? cfg->msg_mode : CLI_MSG_NONE) {
    case CLI_MSG_NONE:
        break;
    case CLI_MSG_LINES:
        ok = publish_lines(client, cfg, &pending);
        break;
    default: /* -m, -n, -f, -s */
        ok = publish_repeated(client, cfg, &pending, payload.data, payload.len);
        break;
    }
    ok = wait_all(client, &pending) && ok;
    mqttc_properties_free(props);
    cli_payload_free(&payload);
    return cli_disconnect(cfg, client, CLI_DISCONNECT_NORMAL, ok ? CLI_EXIT_OK : CLI_EXIT_ERROR);
}

int main(int argc, char **argv) {
    return cli_main(CLI_PUB, argc, argv, print_usage, run);
}
