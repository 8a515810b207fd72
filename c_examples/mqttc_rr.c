/*
 * mqttc_rr: publishes a request and prints the response, like mosquitto_rr: MQTT 5 by default,
 * it subscribes to the response topic (-e), publishes the message (-m, -n, -f or -s) on -t with
 * that Response Topic (and whatever -D publish adds, a correlation-data say), and prints the
 * first message that comes on the response topic, as mqttc_sub would (-F, -v, -N), then exits.
 *
 * Usage: mqttc_rr [-h host] [-p port | --unix path] -t topic -e response-topic
 *                 {-m message | -n | -f file | -s} [-q qos] [-W seconds] [-F format] [-v] [-N]
 *        mqttc_rr --help
 */
#include "cli_payload.h"
#include "cli_wait.h"

/* mosquitto_rr takes no signal but -W's alarm: SIGINT ends it at once. */
static const volatile sig_atomic_t no_signal = 0;

/* Shared between the message callback (library thread) and main: done once the response is
 * printed. */
struct rr_state {
    const struct cli_config *cfg;
    struct cli_waiter wait;
};

static void print_usage(void) {
    printf("mqttc_rr is an mqtt client that can be used to publish a request message and wait for a response.\n");
    printf("         Defaults to MQTT v5, where the Request-Response feature will be used, but v3.1.1 can also be used\n");
    printf("         with v3.1.1 brokers.\n");
    printf("mqttc_rr running on libmqttclient %s.\n\n", mqttc_version());
    printf("Usage: mqttc_rr {[-h host] [--unix path] [-p port] [-u username] [-P password] -t topic | -L URL}\n");
    printf("                -e response-topic {-f file | -n | -s | -m message}\n");
    printf("                [-c] [-k keepalive] [-q qos] [-R] [--retain-as-published] [-x session-expiry-interval]\n");
    printf("                [-F format] [--pretty] [-W timeout_secs]\n");
    printf("                [-A bind_address] [--nodelay] [-M max_inflight]\n");
    printf("                [-i id] [-I id_prefix]\n");
    printf("                [-d] [-N] [--quiet] [-v] [-V mqttv311|mqttv5]\n");
    printf("                [--will-topic [--will-payload payload] [--will-qos qos] [--will-retain]]\n");
    printf("                [[--cafile file] [--tls-use-os-certs] [--cert file --key file] [--insecure]\n");
    printf("                 [--tls-alpn protocol]]\n");
    printf("                [-D command identifier value]\n");
    printf("       mqttc_rr --help\n\n");
    printf(" -e : Response topic. The client will subscribe to this topic to wait for a response.\n");
    printf(" -f : send the contents of a file as the request.\n");
    printf(" -F : output format, as mqttc_sub's (see man mqttc_rr).\n");
    printf(" -m : request payload to send.\n");
    printf(" -n : send a null (zero length) request.\n");
    printf(" -N : do not add an end of line character when printing the payload.\n");
    printf(" -q : quality of service level to use for communications. Defaults to 0.\n");
    printf(" -R : do not print stale messages (those with retain set).\n");
    printf(" -s : read the request from stdin, sending the entire input as a message.\n");
    printf(" -t : topic where the request message will be sent.\n");
    printf(" -v : print received messages verbosely.\n");
    printf(" -V : specify the version of the MQTT protocol to use: mqttv5 (default) or mqttv311 (also 5, 311).\n");
    printf(" -W : Specifies a timeout in seconds how long to wait for a response.\n");
    printf(" --pretty : print formatted output rather than minimised output when using the\n");
    printf("            JSON output format option.\n");
    printf(" --retain-as-published : MQTT 5: keep the retain flag of the response as it was published.\n");
    cli_usage_connection_options();
}

/* The first response (that -R does not skip) is printed; the run is then done. */
static void on_message(mqttc_client *client, const mqttc_message *msg, void *userdata) {
    struct rr_state *s = userdata;
    (void)client;
    pthread_mutex_lock(&s->wait.lock);
    if (!s->wait.done && !(msg->retain && s->cfg->no_retain)) {
        cli_print_message(stdout, &s->cfg->output, msg);
        cli_waiter_finish(&s->wait);
    }
    pthread_mutex_unlock(&s->wait.lock);
}

/* mosquitto_rr names the SUBACK code that refused the response topic (mosquitto_reason_string). */
static void refused(uint8_t code) {
    static const struct {
        uint8_t code;
        const char *name;
    } names[] = {
        {0x80, "Unspecified error"},
        {0x83, "Implementation specific error"},
        {0x87, "Not authorized"},
        {0x8F, "Topic Filter invalid"},
        {0x91, "Packet Identifier in use"},
        {0x97, "Quota exceeded"},
        {0x9E, "Shared Subscriptions not supported"},
        {0xA1, "Subscription identifiers not supported"},
        {0xA2, "Wildcard Subscriptions not supported"},
    };
    const char *name = "Unknown reason";
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (names[i].code == code)
            name = names[i].name;
    }
    cli_err("%s\n", name);
}

/* The request's properties: with MQTT 5, -D publish's and the Response Topic (with MQTT 3.1.1 the
 * responder must know the topic). NULL in `*out` when none; false (reported) on failure. */
static bool request_properties(const struct cli_config *cfg, mqttc_properties **out) {
    *out = NULL;
    /* As mosquitto_rr: MQTT 3.1.1 has no properties, -D's are dropped. */
    if (cfg->protocol_version != 5)
        return true;
    if (!cli_check(cli_props_list(&cfg->props, CLI_CMD_PUBLISH, out), "-D publish"))
        return false;
    if (!*out && !cli_check(mqttc_properties_new(out), "properties"))
        return false;
    if (cli_check(mqttc_properties_set_string(*out, MQTTC_PROP_RESPONSE_TOPIC, cfg->response_topic), "-e"))
        return true;
    mqttc_properties_free(*out);
    *out = NULL;
    return false;
}

/* Subscribes to the response topic (registered before connecting, sent after the CONNACK), then
 * publishes the request once the SUBACK came, and waits for the response. */
static int request(const struct cli_config *cfg, struct rr_state *s, const struct cli_payload *payload,
                   const mqttc_properties *props) {
    mqttc_client *client = cli_client_start(cfg);
    if (!client)
        return CLI_EXIT_ERROR;
    mqttc_subscription sub = MQTTC_SUBSCRIPTION_INIT(cfg->response_topic, cfg->qos, on_message, s, NULL,
                                                      cfg->protocol_version == 5 ? cfg->sub_options : 0);
    mqttc_properties *sub_props = NULL;
    mqttc_token conn_tok, sub_tok, pub_tok;
    mqttc_status sub_st = cli_props_list(&cfg->props, CLI_CMD_SUBSCRIBE, &sub_props);
    if (sub_st == MQTTC_OK)
        sub_st = mqttc_subscribe_v5(client, &sub, 1, sub_props, &sub_tok);
    mqttc_properties_free(sub_props);
    int code = cli_connect_start(client, &conn_tok);
    if (code == CLI_EXIT_OK)
        code = cli_connect_finish(cfg, client, conn_tok); /* both free the client on failure */
    if (code != CLI_EXIT_OK)
        return code;
    uint8_t granted;
    bool with_will = false;
    if (!cli_check(sub_st, "subscribe") || !cli_subscribe_finish(client, cfg, sub_tok, &granted, 1, refused) ||
        !cli_check(mqttc_publish_v5(client, cfg->topics.items[cfg->topics.count - 1], payload->data, payload->len,
                                    cfg->qos, false, props, &pub_tok),
                   "publish") ||
        !cli_check(mqttc_token_wait(client, pub_tok, CLI_OP_TIMEOUT_MS), "publish"))
        code = CLI_EXIT_ERROR;
    else
        code = cli_wait_for_end(client, &s->wait, cfg->timeout_s, &no_signal, &with_will);
    return cli_wait_end(cfg, client, code, with_will);
}

static int run(const struct cli_config *cfg) {
    if (cfg->topics.count == 0 || cfg->msg_mode == CLI_MSG_NONE || !cfg->response_topic) {
        cli_usage_error(cfg, "All of topic, message, and response topic must be supplied.");
        return CLI_EXIT_ERROR;
    }
    if (cli_props_has(&cfg->props, CLI_CMD_PUBLISH, MQTTC_PROP_RESPONSE_TOPIC)) {
        cli_err("Error in PUBLISH properties: Duplicate response topic.\n");
        return CLI_EXIT_ERROR;
    }
    struct rr_state s;
    struct cli_payload payload;
    mqttc_properties *props = NULL;
    s.cfg = cfg;
    if (!cli_waiter_init(&s.wait)) {
        cli_err("Error: no mutex or condition variable.\n");
        return CLI_EXIT_ERROR;
    }
    int code = CLI_EXIT_ERROR;
    if (cli_payload_load(cfg, &payload)) {
        if (request_properties(cfg, &props))
            code = request(cfg, &s, &payload, props);
        mqttc_properties_free(props);
        cli_payload_free(&payload);
    }
    /* The client is freed by now: no callback runs any more. */
    cli_waiter_destroy(&s.wait);
    return code;
}

int main(int argc, char **argv) {
    return cli_main(CLI_RR, argc, argv, print_usage, run);
}
