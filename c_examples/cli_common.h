/*
 * Shared code of mqttc_pub, mqttc_sub and mqttc_rr: connecting / disconnecting a client the way
 * mosquitto's tools do, with the same messages and exit codes where that is possible, and the
 * tools' main. The options are read by cli_args.h into a cli_config (cli_config.h).
 *
 * Header-only (static functions) because CMake builds every .c file in c_examples as its own program.
 */
#ifndef MQTTC_CLI_COMMON_H
#define MQTTC_CLI_COMMON_H

#include "cli_args.h"

/* ---- connecting -------------------------------------------------------------------------- */

/* -d: the library's log lines, on stdout like mosquitto's debug output. */
static void cli_log_line(mqttc_client *client, int level, const char *line, void *userdata) {
    (void)client;
    (void)level;
    (void)userdata;
    printf("%s\n", line);
    fflush(stdout);
}

/* The options of -D connect that are fields of mqttc_options rather than properties (see
 * cli_props.h); the session expiry also comes from -x and -c (cli_check_session). */
static void cli_connect_fields(const struct cli_config *cfg, mqttc_options *opts) {
    uint32_t v;
    if (cli_props_int(&cfg->props, CLI_CMD_CONNECT, MQTTC_PROP_SESSION_EXPIRY_INTERVAL, &v))
        opts->session_expiry = v;
    if (cli_props_int(&cfg->props, CLI_CMD_CONNECT, MQTTC_PROP_MAXIMUM_PACKET_SIZE, &v))
        opts->max_packet_size = v;
    if (cli_props_int(&cfg->props, CLI_CMD_CONNECT, MQTTC_PROP_TOPIC_ALIAS_MAXIMUM, &v))
        opts->topic_alias_maximum = (uint16_t)v;
}

/* CONNECT's properties from -D; with MQTT 5 a Receive Maximum if -D gives none, as libmosquitto
 * sends one: 20 (its window), or -C's count when smaller, which mosquitto's tools ask for so as
 * not to be sent more than they print. `*out` as cli_props_list gives it. */
static mqttc_status cli_connect_properties(const struct cli_config *cfg, mqttc_properties **out) {
    mqttc_status st = cli_props_list(&cfg->props, CLI_CMD_CONNECT, out);
    if (st != MQTTC_OK || cfg->protocol_version != 5 ||
        cli_props_has(&cfg->props, CLI_CMD_CONNECT, MQTTC_PROP_RECEIVE_MAXIMUM))
        return st;
    if (!*out && (st = mqttc_properties_new(out)) != MQTTC_OK)
        return st;
    uint32_t window = cfg->msg_count > 0 && cfg->msg_count < 20 ? (uint32_t)cfg->msg_count : 20;
    return mqttc_properties_set_int(*out, MQTTC_PROP_RECEIVE_MAXIMUM, window);
}

/* Makes the client from `opts` (filled from `cfg`) and the transport the options chose. */
static mqttc_status cli_client_make(const struct cli_config *cfg, mqttc_options *opts, mqttc_client **out) {
    if (cfg->unix_path)
        return mqttc_client_new_unix(cfg->unix_path, opts, out);
    if (cfg->websocket) {
        /* Without a port the library uses WebSocket's own: 80, or 443 with TLS. */
        char uri[512], port[8] = "";
        bool v6 = strchr(cfg->host, ':') != NULL;
        if (cfg->port_set)
            snprintf(port, sizeof port, ":%d", cfg->port);
        int n = snprintf(uri, sizeof uri, "%s://%s%s%s%s%s", cfg->tls ? "wss" : "ws", v6 ? "[" : "", cfg->host,
                         v6 ? "]" : "", port, cfg->ws_path ? cfg->ws_path : "/mqtt");
        if (n < 0 || (size_t)n >= sizeof uri)
            return MQTTC_ERR_INVALID_ARGUMENT;
        const char *uris[] = {uri};
        return mqttc_client_new_uris(uris, 1, opts, out);
    }
    /* As mosquitto's tools: TLS without -p (or a URL port) means MQTT's TLS port. */
    int port = cfg->tls && !cfg->port_set ? 8883 : cfg->port;
    return mqttc_client_new(cfg->host, (uint16_t)port, opts, out);
}

static mqttc_status cli_client_new(const struct cli_config *cfg, mqttc_client **out) {
    mqttc_options opts;
    mqttc_options_init(&opts);
    opts.keep_alive = (uint16_t)cfg->keepalive;
    opts.protocol_version = cfg->protocol_version;
    opts.clean_session = cfg->clean_session;
    cli_connect_fields(cfg, &opts);
    opts.bind_address = cfg->bind_address;
    opts.proxy = cfg->proxy;
    if (cfg->max_inflight > 0)
        opts.max_inflight = (uint32_t)(cfg->max_inflight < UINT32_MAX ? cfg->max_inflight : UINT32_MAX);
    opts.client_id = cfg->id;
    opts.username = cfg->username;
    if (cfg->password) {
        opts.password = (const uint8_t *)cfg->password;
        opts.password_len = strlen(cfg->password);
    }
    if (cfg->will_topic) {
        opts.will_topic = cfg->will_topic;
        opts.will_payload = (const uint8_t *)cfg->will_payload;
        opts.will_payload_len = cfg->will_payload ? strlen(cfg->will_payload) : 0;
        opts.will_qos = cfg->will_qos;
        opts.will_retain = cfg->will_retain;
    }
    opts.tls = cfg->tls;
    opts.tls_ca_file = cfg->cafile;
    opts.tls_ca_path = cfg->capath;
    opts.tls_version = cfg->tls_version;
    opts.tls_ciphers = cfg->ciphers;
    opts.tls_cert_file = cfg->certfile;
    opts.tls_key_file = cfg->keyfile;
    opts.tls_alpn = cfg->alpn;
    opts.tls_insecure = cfg->insecure;
    opts.store_dir = cfg->store_dir;
    mqttc_properties *connect = NULL, *will = NULL;
    mqttc_status st = cli_connect_properties(cfg, &connect);
    /* Without --will-topic there is no will, and mosquitto's tools drop its properties. */
    if (st == MQTTC_OK && cfg->will_topic)
        st = cli_props_list(&cfg->props, CLI_CMD_WILL, &will);
    opts.connect_properties = connect;
    opts.will_properties = will;
    if (st == MQTTC_OK)
        st = cli_client_make(cfg, &opts, out);
    /* The library copied them. */
    mqttc_properties_free(connect);
    mqttc_properties_free(will);
    return st;
}

/* Makes the client (with -d logging). Returns NULL after reporting a failure on stderr. */
static mqttc_client *cli_client_start(const struct cli_config *cfg) {
    mqttc_client *client = NULL;
    if (!cli_check(cli_client_new(cfg, &client), "creating the client"))
        return NULL;
    if (cfg->debug && !cli_check(mqttc_client_set_log(client, MQTTC_LOG_DEBUG, cli_log_line, NULL), "mqttc_client_set_log")) {
        mqttc_client_free(client);
        return NULL;
    }
    return client;
}

/* Starts connecting `client` (from cli_client_start), setting `*token`. Returns CLI_EXIT_OK, or
 * frees the client and returns CLI_EXIT_ERROR. Finish with cli_connect_finish. */
static int cli_connect_start(mqttc_client *client, mqttc_token *token) {
    if (!cli_check(mqttc_connect(client, token), "connect")) {
        mqttc_client_free(client);
        return CLI_EXIT_ERROR;
    }
    return CLI_EXIT_OK;
}

/* Waits for the CONNACK of cli_connect_start's `token`. Returns CLI_EXIT_OK, or frees the client
 * and returns the exit code mosquitto's tools use for the failure (reported on stderr). */
static int cli_connect_finish(const struct cli_config *cfg, mqttc_client *client, mqttc_token token) {
    mqttc_status st = mqttc_token_wait(client, token, CLI_OP_TIMEOUT_MS + 5000u);
    if (st == MQTTC_OK)
        return CLI_EXIT_OK;
    const char *refusal = cli_connack_string(st);
    int code = CLI_EXIT_ERROR;
    if (refusal) {
        cli_err("Connection error: %s\n", refusal);
        if (cfg->tool == CLI_PUB)
            cli_err("Error: The connection was refused.\n");
        code = CLI_EXIT_CONN_REFUSED;
    } else {
        cli_report("connect", st);
    }
    mqttc_client_free(client);
    return code;
}

/* MQTT 5 DISCONNECT reason codes the tools send. */
#define CLI_DISCONNECT_NORMAL 0x00
#define CLI_DISCONNECT_WITH_WILL 0x04 /* the broker publishes the will all the same */

/* Disconnects cleanly (waiting for in-flight QoS 1/2 messages) and frees the client; with MQTT 5
 * the DISCONNECT carries `reason`. Returns `code`, or CLI_EXIT_ERROR if it was CLI_EXIT_OK and the
 * disconnect failed. */
static int cli_disconnect(const struct cli_config *cfg, mqttc_client *client, uint8_t reason, int code) {
    mqttc_token tok;
    mqttc_properties *props = NULL;
    mqttc_status st = cli_props_list(&cfg->props, CLI_CMD_DISCONNECT, &props);
    if (st == MQTTC_OK)
        st = cfg->protocol_version == 5 ? mqttc_disconnect_v5(client, reason, props, &tok)
                                        : mqttc_disconnect(client, &tok);
    mqttc_properties_free(props);
    bool ok = cli_check(st, "disconnect") && cli_check(mqttc_token_wait(client, tok, CLI_OP_TIMEOUT_MS), "disconnect");
    mqttc_client_free(client);
    return ok || code != CLI_EXIT_OK ? code : CLI_EXIT_ERROR;
}

/* The tools' main: parse, print usage for --help (both mosquitto tools exit 1 then), run. */
static int cli_main(enum cli_tool tool, int argc, char **argv, void (*usage)(void),
                    int (*run)(const struct cli_config *)) {
    struct cli_config cfg;
    switch (cli_parse(&cfg, tool, argc, argv)) {
    case CLI_PARSE_OK:
        break;
    case CLI_PARSE_HELP:
        usage();
        cli_config_free(&cfg);
        return CLI_EXIT_ERROR;
    case CLI_PARSE_VERSION:
        printf("%s version %s running on libmqttclient %s.\n", cfg.prog, MQTTC_VERSION_STRING, mqttc_version());
        cli_config_free(&cfg);
        return CLI_EXIT_ERROR;
    default:
        return CLI_EXIT_ERROR;
    }
    int code = run(&cfg);
    cli_config_free(&cfg);
    return code;
}

#endif /* MQTTC_CLI_COMMON_H */
