/*
 * The configuration of mqttc_pub, mqttc_sub and mqttc_rr (what their options set), and their
 * messages: usage errors, errors after the options were read (silenced by --quiet), and mosquitto's
 * wording for a refused connection. Parsed by cli_args.h; used by cli_common.h and the tools.
 *
 * Header-only (static functions) because CMake builds every .c file in c_examples as its own program.
 */
#ifndef MQTTC_CLI_CONFIG_H
#define MQTTC_CLI_CONFIG_H

#include "cli_format.h"
#include "cli_props.h"

#include <mqttclient.h>

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Exit codes of mosquitto_pub/mosquitto_sub (libmosquitto's MOSQ_ERR_* values). */
#define CLI_EXIT_OK 0
#define CLI_EXIT_ERROR 1
#define CLI_EXIT_CONN_REFUSED 5 /* MOSQ_ERR_CONN_REFUSED: the broker refused the CONNECT */
#define CLI_EXIT_CONN_LOST 7    /* MOSQ_ERR_CONN_LOST */
#define CLI_EXIT_TIMEOUT 27     /* MOSQ_ERR_TIMEOUT: mosquitto_sub -W ran out */

/* Bounds on our own waits for the library (mosquitto's tools wait forever). */
#define CLI_OP_TIMEOUT_MS 30000u

enum cli_tool { CLI_PUB = 1, CLI_SUB = 2, CLI_RR = 4 };
#define CLI_ALL (CLI_PUB | CLI_SUB | CLI_RR)

/* Where mqttc_pub's message comes from (-m, -n, -f, -l, -s). */
enum cli_msg_mode { CLI_MSG_NONE, CLI_MSG_ARG, CLI_MSG_NULL, CLI_MSG_FILE, CLI_MSG_LINES, CLI_MSG_STDIN };

enum cli_parse_result { CLI_PARSE_OK = 0, CLI_PARSE_ERROR = 1, CLI_PARSE_HELP = 2, CLI_PARSE_VERSION = 3 };

/* Words of argv (borrowed) given to a repeatable option; the array, with room for every word of
 * argv, is owned. */
struct cli_list {
    const char **items;
    size_t count;
};

struct cli_config {
    enum cli_tool tool;
    const char *prog; /* "mqttc_pub", "mqttc_sub" or "mqttc_rr", for messages */
    /* Connection. */
    const char *host;
    int port;
    const char *unix_path;
    const char *id;        /* -i, or NULL: the library picks one */
    const char *id_prefix; /* -I */
    char id_buf[64];       /* id_prefix + pid */
    int keepalive;
    bool clean_session;
    const char *username;
    const char *password;
    const char *will_topic;
    const char *will_payload;
    int will_qos;
    bool will_retain;
    bool debug;
    bool port_set; /* -p given: TLS does not switch the default port to 8883 */
    /* TLS: on with an mqtts:// or wss:// URL, --cafile, --capath, --cert or --tls-use-os-certs. */
    bool tls;
    bool websocket;      /* -L ws:// or wss:// */
    const char *ws_path; /* --ws-path, default "/mqtt" */
    const char *cafile;
    const char *capath;
    const char *tls_version; /* the library's list of versions (see --tls-version) */
    const char *ciphers;
    const char *certfile;
    const char *keyfile;
    const char *alpn;
    bool insecure;
    uint8_t protocol_version; /* 4 (MQTT 3.1.1) or 5 */
    const char *store_dir;    /* --store: the library's message store */
    const char *bind_address; /* -A */
    const char *proxy;        /* --proxy socks5h://... */
    long max_inflight;        /* -M, 0: the library's default */
    long long session_expiry; /* -x, -1: not given */
    struct cli_props props;   /* -D */
    /* -L URL parts, which host, username, password and a topic point into. */
    char url_host[256];
    char url_user[256];
    char url_pass[256];
    char url_topic[1024];
    /* Both: QoS and topics (pub uses the last -t; sub subscribes to all of them). */
    int qos;
    struct cli_list topics;
    /* mqttc_pub. */
    enum cli_msg_mode msg_mode;
    const char *message; /* -m text or -f path */
    bool retain;
    long repeat_count;   /* --repeat */
    double repeat_delay; /* --repeat-delay, seconds */
    /* mqttc_sub. */
    long msg_count; /* -C, 0 = unlimited */
    long timeout_s; /* -W, 0 = none */
    bool no_retain;             /* -R */
    bool retained_only;         /* --retained-only */
    bool remove_retained;       /* --remove-retained */
    bool exit_after_sub;          /* -E */
    struct cli_list filter_outs;  /* -T */
    struct cli_list unsubscribes; /* -U */
    /* mqttc_rr. */
    const char *response_topic; /* -e */
    /* mqttc_sub and mqttc_rr. */
    int sub_options;          /* MQTT 5 subscription options: -R, --retain-as-published */
    struct cli_output output; /* -F, -v, -N, --pretty */
};

/* ---- messages ---------------------------------------------------------------------------- */

/* The options of all three tools, after each tool's own in its --help. */
static void cli_usage_connection_options(void) {
    printf(" -A : bind the outgoing socket to this host/ip address. Use to control which interface\n");
    printf("      the client communicates over.\n");
    printf(" -c : disable clean session/enable persistent client mode (requires -i).\n");
    printf("      With MQTT v5 the session never expires, unless -x says otherwise.\n");
    printf(" -d : enable debug messages (the library's log).\n");
    printf(" -D : define MQTT v5 properties: -D command name value, command one of connect, publish,\n");
    printf("      subscribe, unsubscribe, disconnect, will; -D command user-property name value.\n");
    printf(" -h : mqtt host to connect to. Defaults to localhost.\n");
    printf(" -i : id to use for this client. Defaults to a random id chosen by the library.\n");
    printf(" -I : define the client id as id_prefix appended with the process id.\n");
    printf(" -k : keep alive in seconds for this client. Defaults to 60.\n");
    printf(" -L : specify user, password, hostname, port and topic as a URL in the form:\n");
    printf("      mqtt(s)://[username[:password]@]host[:port]/topic, or ws(s):// for MQTT over\n");
    printf("      WebSockets (see --ws-path).\n");
    printf(" -M : the maximum number of QoS 1 and 2 messages in flight at once. Defaults to 20.\n");
    printf(" -p : network port to connect to. Defaults to 1883 for plain MQTT and 8883 for MQTT over TLS.\n");
    printf(" -P : provide a password\n");
    printf(" -u : provide a username\n");
    printf(" -x : set the session-expiry-interval property on the CONNECT packet (MQTT v5 only), in\n");
    printf("      seconds; -1, 4294967295 or \u221e for a session that does not expire. Defaults to -1\n");
    printf("      with -c, else 0.\n");
    printf(" --help : display this message.\n");
    printf(" --nodelay : disable Nagle's algorithm (the library always does).\n");
    printf(" --proxy : SOCKS5 proxy URL of the form:\n");
    printf("           socks5h://[username[:password]@]hostname[:port]\n");
    printf("           Only \"none\" and \"username\" authentication is supported.\n");
    printf(" --quiet : don't print error messages.\n");
    printf(" --store : keep QoS 1 and 2 messages in this directory until the broker has them, so\n");
    printf("           that a crash loses none: they are sent again when the tool next runs with\n");
    printf("           the same client id (-i). Not in mosquitto's tools.\n");
    printf(" --unix : connect to a broker through a unix domain socket instead of a TCP socket,\n");
    printf("          e.g. /tmp/mosquitto.sock\n");
    printf(" --version : print the version of the tool and of the library.\n");
    printf(" --will-payload : payload for the client Will, which is sent by the broker in case of\n");
    printf("                  unexpected disconnection. If not given and will-topic is set, a zero\n");
    printf("                  length message will be sent.\n");
    printf(" --will-qos : QoS level for the client Will.\n");
    printf(" --will-retain : if given, make the client Will retained.\n");
    printf(" --will-topic : the topic on which to publish the client Will.\n");
    printf(" --cafile : path to a file containing trusted CA certificates to enable encrypted\n");
    printf("            communication.\n");
    printf(" --capath : path to a directory containing trusted CA certificates to enable encrypted\n");
    printf("            communication (every PEM certificate of its files).\n");
    printf(" --cert : client certificate for authentication, if required by server.\n");
    printf(" --key : client private key for authentication, if required by server.\n");
    printf(" --insecure : do not check that the server certificate hostname matches the remote\n");
    printf("              hostname, nor that it is signed by a trusted CA. Using this option means\n");
    printf("              that you cannot be sure that the remote host is the server you wish to\n");
    printf("              connect to and so is insecure. Do not use this option in a production\n");
    printf("              environment.\n");
    printf(" --ciphers : the TLS cipher suites to offer, ':'-separated, by OpenSSL's names, e.g.\n");
    printf("             ECDHE-RSA-AES128-GCM-SHA256, or TLS 1.3's (TLS_AES_128_GCM_SHA256).\n");
    printf(" --tls-version : the lowest TLS version allowed: tlsv1.3 or tlsv1.2 (the default).\n");
    printf(" --tls-alpn : TLS application layer protocol negotiation, e.g. mqtt.\n");
    printf(" --tls-use-os-certs : use the CA certificates of the operating system.\n");
    printf(" --ws-path : the HTTP path of a ws:// or wss:// URL's WebSocket endpoint. Defaults to /mqtt.\n");
    printf("\nRefused, as the library cannot honour them: --psk, --psk-identity, --tls-engine, --keyform,\n");
    printf("--tls-engine-kpass-sha1.\n");
}

/* A usage error: `text` as it is (mosquitto's messages end in one or two newlines), then
 * mosquitto's pointer to --help, on stderr. */
static void cli_usage_text(const struct cli_config *cfg, const char *text) {
    fprintf(stderr, "%s\nUse '%s --help' to see usage.\n", text, cfg->prog);
}

/* A usage error "Error: <message>\n" (formatted), then the pointer to --help. */
static void cli_usage_error(const struct cli_config *cfg, const char *fmt, ...) {
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text - 1, fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof text - 1 ? (size_t)n : sizeof text - 2;
    memcpy(text + len, "\n", 2);
    fputs("Error: ", stderr);
    cli_usage_text(cfg, text);
}

/* --quiet: what goes wrong once the options are read is not reported (mosquitto's err_printf). */
static bool cli_quiet = false;

static void cli_err(const char *fmt, ...) {
    if (cli_quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

/* Reports a failed library call: what failed, the status name and the library's detail. The
 * detail is copied first: it is only valid until the next library call on this thread. */
static void cli_report(const char *what, mqttc_status st) {
    char detail[512];
    snprintf(detail, sizeof detail, "%s", mqttc_last_error());
    if (detail[0])
        cli_err("Error: %s: %s (%s)\n", what, mqttc_status_str(st), detail);
    else
        cli_err("Error: %s: %s\n", what, mqttc_status_str(st));
}

/* Returns true on MQTTC_OK, else reports and returns false. */
static bool cli_check(mqttc_status st, const char *what) {
    if (st == MQTTC_OK)
        return true;
    cli_report(what, st);
    return false;
}

/* mosquitto's wording for a refused CONNACK, or NULL when `st` is no refusal. */
static const char *cli_connack_string(mqttc_status st) {
    switch (st) {
    case MQTTC_ERR_REFUSED_PROTOCOL_VERSION:
        return "Connection Refused: unacceptable protocol version.";
    case MQTTC_ERR_REFUSED_IDENTIFIER:
        return "Connection Refused: identifier rejected.";
    case MQTTC_ERR_REFUSED_SERVER_UNAVAILABLE:
        return "Connection Refused: broker unavailable.";
    case MQTTC_ERR_REFUSED_BAD_CREDENTIALS:
        return "Connection Refused: bad user name or password.";
    case MQTTC_ERR_REFUSED_NOT_AUTHORIZED:
        return "Connection Refused: not authorised.";
    default:
        return NULL;
    }
}

/* ---- topic checks (mosquitto checks these before connecting) ----------------------------- */

static bool cli_topic_has_wildcard(const char *topic) {
    return strpbrk(topic, "+#") != NULL;
}

/* A valid subscription filter: '+' and '#' only as whole levels, '#' only last. */
static bool cli_filter_valid(const char *filter) {
    if (!filter[0])
        return false;
    for (const char *level = filter;;) {
        size_t len = strcspn(level, "/");
        bool last = level[len] == '\0';
        for (size_t i = 0; i < len; i++) {
            if ((level[i] == '+' || level[i] == '#') && len != 1)
                return false;
        }
        if (len == 1 && level[0] == '#' && !last)
            return false;
        if (last)
            return true;
        level += len + 1;
    }
}

#endif /* MQTTC_CLI_CONFIG_H */
