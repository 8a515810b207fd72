/*
 * Shared code of mqttc_pub and mqttc_sub: mosquitto_pub/mosquitto_sub-compatible option parsing,
 * and connecting / disconnecting a client the way those tools do, with the same messages and exit
 * codes where that is possible.
 *
 * Header-only (static functions) because CMake builds every .c file in c_examples as its own program.
 */
#ifndef MQTTC_CLI_COMMON_H
#define MQTTC_CLI_COMMON_H

#include "cli_format.h"

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

enum cli_tool { CLI_PUB = 1, CLI_SUB = 2 };

/* Where mqttc_pub's message comes from (-m, -n, -f, -l, -s). */
enum cli_msg_mode { CLI_MSG_NONE, CLI_MSG_ARG, CLI_MSG_NULL, CLI_MSG_FILE, CLI_MSG_LINES, CLI_MSG_STDIN };

enum cli_parse_result { CLI_PARSE_OK = 0, CLI_PARSE_ERROR = 1, CLI_PARSE_HELP = 2 };

/* Words of argv (borrowed) given to a repeatable option; the array, with room for every word of
 * argv, is owned. */
struct cli_list {
    const char **items;
    size_t count;
};

struct cli_config {
    enum cli_tool tool;
    const char *prog; /* "mqttc_pub" or "mqttc_sub", for messages */
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
    /* TLS: on with an mqtts:// or wss:// URL, --cafile, --cert or --tls-use-os-certs. */
    bool tls;
    bool websocket;      /* -L ws:// or wss:// */
    const char *ws_path; /* --ws-path, default "/mqtt" */
    const char *cafile;
    const char *certfile;
    const char *keyfile;
    const char *alpn;
    bool insecure;
    uint8_t protocol_version; /* 4 (MQTT 3.1.1) or 5 */
    const char *store_dir;    /* --store: the library's message store */
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
    /* mqttc_sub. */
    long msg_count; /* -C, 0 = unlimited */
    long timeout_s; /* -W, 0 = none */
    bool no_retain;             /* -R */
    bool retained_only;         /* --retained-only */
    bool remove_retained;       /* --remove-retained */
    bool exit_after_sub;        /* -E */
    int sub_options;            /* MQTT 5 subscription options: -R, --retain-as-published */
    struct cli_list filter_outs;  /* -T */
    struct cli_list unsubscribes; /* -U */
    bool format_needs_mid;    /* -F prints message ids (%m, %j, %J) */
    struct cli_output output; /* -F, -v, -N, --pretty */
};

/* ---- messages ---------------------------------------------------------------------------- */

/* "Error: ..." plus mosquitto's pointer to --help, on stderr. */
/* The long options both tools share, last in their usage text as in mosquitto's. */
static void cli_usage_long_options(void) {
    printf(" -L : specify user, password, hostname, port and topic as a URL in the form:\n");
    printf("      mqtt(s)://[username[:password]@]host[:port]/topic, or ws(s):// for MQTT over\n");
    printf("      WebSockets (see --ws-path).\n");
    printf(" --cafile : path to a file containing trusted CA certificates to enable encrypted\n");
    printf("            communication.\n");
    printf(" --cert : client certificate for authentication, if required by server.\n");
    printf(" --key : client private key for authentication, if required by server.\n");
    printf(" --insecure : do not check that the server certificate hostname matches the remote\n");
    printf("              hostname, nor that it is signed by a trusted CA. Using this option means\n");
    printf("              that you cannot be sure that the remote host is the server you wish to\n");
    printf("              connect to and so is insecure. Do not use this option in a production\n");
    printf("              environment.\n");
    printf(" --tls-alpn : TLS application layer protocol negotiation, e.g. mqtt.\n");
    printf(" --tls-use-os-certs : use the CA certificates of the operating system.\n");
    printf(" --ws-path : the HTTP path of a ws:// or wss:// URL's WebSocket endpoint. Defaults to /mqtt.\n");
    printf(" --help : display this message.\n");
    printf(" --unix : connect to a broker through a unix domain socket instead of a TCP socket,\n");
    printf("          e.g. /tmp/mosquitto.sock\n");
    printf(" --store : keep QoS 1 and 2 messages in this directory until the broker has them, so\n");
    printf("           that a crash loses none: they are sent again when the tool next runs with\n");
    printf("           the same client id (-i). Not in mosquitto's tools.\n");
    printf(" --will-payload : payload for the client Will, which is sent by the broker in case of\n");
    printf("                  unexpected disconnection. If not given and will-topic is set, a zero\n");
    printf("                  length message will be sent.\n");
    printf(" --will-qos : QoS level for the client Will.\n");
    printf(" --will-retain : if given, make the client Will retained.\n");
    printf(" --will-topic : the topic on which to publish the client Will.\n");
}

static void cli_usage_error(const struct cli_config *cfg, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("Error: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n\nUse '%s --help' to see usage.\n", cfg->prog);
}

/* Reports a failed library call: what failed, the status name and the library's detail. The
 * detail is copied first: it is only valid until the next library call on this thread. */
static void cli_report(const char *what, mqttc_status st) {
    char detail[512];
    snprintf(detail, sizeof detail, "%s", mqttc_last_error());
    if (detail[0])
        fprintf(stderr, "Error: %s: %s (%s)\n", what, mqttc_status_str(st), detail);
    else
        fprintf(stderr, "Error: %s: %s\n", what, mqttc_status_str(st));
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

/* ---- option parsing ---------------------------------------------------------------------- */

enum cli_opt_id {
    OPT_HELP,
    OPT_HOST,
    OPT_PORT,
    OPT_UNIX,
    OPT_ID,
    OPT_ID_PREFIX,
    OPT_KEEPALIVE,
    OPT_CLEAN_OFF,
    OPT_USERNAME,
    OPT_PASSWORD,
    OPT_WILL_TOPIC,
    OPT_WILL_PAYLOAD,
    OPT_WILL_QOS,
    OPT_WILL_RETAIN,
    OPT_DEBUG,
    OPT_QOS,
    OPT_TOPIC,
    OPT_VERSION,
    OPT_MESSAGE,
    OPT_NULL,
    OPT_FILE,
    OPT_LINES,
    OPT_STDIN,
    OPT_RETAIN,
    OPT_COUNT,
    OPT_TIMEOUT,
    OPT_VERBOSE,
    OPT_NO_EOL,
    OPT_NO_RETAINED,
    OPT_RETAINED_ONLY,
    OPT_REMOVE_RETAINED,
    OPT_RETAIN_AS_PUBLISHED,
    OPT_FILTER_OUT,
    OPT_UNSUBSCRIBE,
    OPT_EXIT_AFTER_SUB,
    OPT_FORMAT,
    OPT_PRETTY,
    OPT_URL,
    OPT_CAFILE,
    OPT_CERT,
    OPT_KEY,
    OPT_INSECURE,
    OPT_ALPN,
    OPT_OS_CERTS,
    OPT_WS_PATH,
    OPT_STORE,
};

struct cli_opt {
    const char *name;  /* "-t" */
    const char *alias; /* "--topic", or NULL */
    enum cli_opt_id id;
    unsigned tools;    /* CLI_PUB | CLI_SUB */
    const char *noun;  /* what its argument is called in "no ... specified", NULL for a flag */
};

static const struct cli_opt CLI_OPTS[] = {
    {"--help", NULL, OPT_HELP, CLI_PUB | CLI_SUB, NULL},
    {"-h", "--host", OPT_HOST, CLI_PUB | CLI_SUB, "host"},
    {"-p", "--port", OPT_PORT, CLI_PUB | CLI_SUB, "port"},
    {"--unix", NULL, OPT_UNIX, CLI_PUB | CLI_SUB, "socket path"},
    {"-i", "--id", OPT_ID, CLI_PUB | CLI_SUB, "id"},
    {"-I", "--id-prefix", OPT_ID_PREFIX, CLI_PUB | CLI_SUB, "id prefix"},
    {"-k", "--keepalive", OPT_KEEPALIVE, CLI_PUB | CLI_SUB, "keepalive"},
    {"-c", "--disable-clean-session", OPT_CLEAN_OFF, CLI_PUB | CLI_SUB, NULL},
    {"-u", "--username", OPT_USERNAME, CLI_PUB | CLI_SUB, "username"},
    {"-P", "--pw", OPT_PASSWORD, CLI_PUB | CLI_SUB, "password"},
    {"--will-topic", NULL, OPT_WILL_TOPIC, CLI_PUB | CLI_SUB, "will topic"},
    {"--will-payload", NULL, OPT_WILL_PAYLOAD, CLI_PUB | CLI_SUB, "will payload"},
    {"--will-qos", NULL, OPT_WILL_QOS, CLI_PUB | CLI_SUB, "will QoS"},
    {"--will-retain", NULL, OPT_WILL_RETAIN, CLI_PUB | CLI_SUB, NULL},
    {"-d", "--debug", OPT_DEBUG, CLI_PUB | CLI_SUB, NULL},
    {"-q", "--qos", OPT_QOS, CLI_PUB | CLI_SUB, "QoS"},
    {"-t", "--topic", OPT_TOPIC, CLI_PUB | CLI_SUB, "topic"},
    {"-V", "--protocol-version", OPT_VERSION, CLI_PUB | CLI_SUB, "version"},
    {"-m", "--message", OPT_MESSAGE, CLI_PUB, "message"},
    {"-n", "--null-message", OPT_NULL, CLI_PUB, NULL},
    {"-f", "--file", OPT_FILE, CLI_PUB, "file"},
    {"-l", "--stdin-line", OPT_LINES, CLI_PUB, NULL},
    {"-s", "--stdin-file", OPT_STDIN, CLI_PUB, NULL},
    {"-r", "--retain", OPT_RETAIN, CLI_PUB, NULL},
    {"-C", NULL, OPT_COUNT, CLI_SUB, "count"},
    {"-W", NULL, OPT_TIMEOUT, CLI_SUB, "timeout"},
    {"-v", "--verbose", OPT_VERBOSE, CLI_SUB, NULL},
    {"-N", NULL, OPT_NO_EOL, CLI_SUB, NULL},
    {"-R", NULL, OPT_NO_RETAINED, CLI_SUB, NULL},
    {"--retained-only", NULL, OPT_RETAINED_ONLY, CLI_SUB, NULL},
    {"--remove-retained", NULL, OPT_REMOVE_RETAINED, CLI_SUB, NULL},
    {"--retain-as-published", NULL, OPT_RETAIN_AS_PUBLISHED, CLI_SUB, NULL},
    {"-T", "--filter-out", OPT_FILTER_OUT, CLI_SUB, "topic filter"},
    {"-U", "--unsubscribe", OPT_UNSUBSCRIBE, CLI_SUB, "unsubscribe topic"},
    {"-E", NULL, OPT_EXIT_AFTER_SUB, CLI_SUB, NULL},
    {"-F", NULL, OPT_FORMAT, CLI_SUB, "format"},
    {"--pretty", NULL, OPT_PRETTY, CLI_SUB, NULL},
    {"-L", "--url", OPT_URL, CLI_PUB | CLI_SUB, "URL"},
    {"--cafile", NULL, OPT_CAFILE, CLI_PUB | CLI_SUB, "certificate"},
    {"--cert", NULL, OPT_CERT, CLI_PUB | CLI_SUB, "certificate"},
    {"--key", NULL, OPT_KEY, CLI_PUB | CLI_SUB, "key"},
    {"--insecure", NULL, OPT_INSECURE, CLI_PUB | CLI_SUB, NULL},
    {"--tls-alpn", NULL, OPT_ALPN, CLI_PUB | CLI_SUB, "protocol"},
    {"--tls-use-os-certs", NULL, OPT_OS_CERTS, CLI_PUB | CLI_SUB, NULL},
    {"--ws-path", NULL, OPT_WS_PATH, CLI_PUB | CLI_SUB, "path"},
    {"--store", NULL, OPT_STORE, CLI_PUB | CLI_SUB, "directory"},
};

static const struct cli_opt *cli_find_opt(const char *arg, enum cli_tool tool) {
    for (size_t i = 0; i < sizeof CLI_OPTS / sizeof CLI_OPTS[0]; i++) {
        const struct cli_opt *o = &CLI_OPTS[i];
        if ((o->tools & (unsigned)tool) &&
            (strcmp(arg, o->name) == 0 || (o->alias && strcmp(arg, o->alias) == 0)))
            return o;
    }
    return NULL;
}

/* Parses a whole decimal number in [min, max]; false if `s` is anything else. */
static bool cli_parse_long(const char *s, long min, long max, long *out) {
    char *end;
    if (!s[0])
        return false;
    long v = strtol(s, &end, 10);
    if (*end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static void cli_config_init(struct cli_config *cfg, enum cli_tool tool) {
    memset(cfg, 0, sizeof *cfg);
    cfg->tool = tool;
    cfg->prog = tool == CLI_PUB ? "mqttc_pub" : "mqttc_sub";
    cfg->host = "localhost";
    cfg->port = 1883;
    cfg->keepalive = 60;
    cfg->protocol_version = 4;
    cfg->clean_session = true;
    cfg->output.eol = true;
    cfg->msg_mode = CLI_MSG_NONE;
}

static void cli_config_free(struct cli_config *cfg) {
    struct cli_list *lists[] = {&cfg->topics, &cfg->filter_outs, &cfg->unsubscribes};
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        free(lists[i]->items);
        lists[i]->items = NULL;
        lists[i]->count = 0;
    }
}

static bool cli_set_msg_mode(struct cli_config *cfg, enum cli_msg_mode mode, const char *message) {
    if (cfg->msg_mode != CLI_MSG_NONE) {
        cli_usage_error(cfg, "Only one type of message can be sent at once.");
        return false;
    }
    cfg->msg_mode = mode;
    cfg->message = message;
    return true;
}

/* -t (and -L's topic): checked as a publish topic or a subscription filter, then kept. */
static bool cli_add_topic(struct cli_config *cfg, const char *val) {
    if (cfg->tool == CLI_PUB && cli_topic_has_wildcard(val)) {
        cli_usage_error(cfg, "Invalid publish topic '%s', does it contain '+' or '#'?", val);
        return false;
    }
    if (cfg->tool == CLI_SUB && !cli_filter_valid(val)) {
        cli_usage_error(cfg, "Invalid subscription topic '%s', are all '+' and '#' wildcards correct?",
                        val);
        return false;
    }
    cfg->topics.items[cfg->topics.count++] = val;
    return true;
}

/* -T and -U: a filter, checked as mosquitto_sub does, added to `list`; `what` names it in the error. */
static bool cli_add_filter(struct cli_config *cfg, struct cli_list *list, const char *what, const char *val) {
    if (!cli_filter_valid(val)) {
        cli_usage_error(cfg, "Invalid %s topic '%s', are all '+' and '#' wildcards correct?", what, val);
        return false;
    }
    list->items[list->count++] = val;
    return true;
}

/* Copies `len` bytes of `src` into `dst` (of `cap` bytes) as a string; false if it does not fit. */
static bool cli_copy(char *dst, size_t cap, const char *src, size_t len) {
    if (len >= cap)
        return false;
    memcpy(dst, src, len);
    dst[len] = '\0';
    return true;
}

/* -L mqtt(s)://[username[:password]@]host[:port]/topic, as mosquitto_pub and mosquitto_sub read
 * it: sets the host, port, credentials and one topic, and TLS for mqtts. ws:// and wss:// (our
 * addition) read the same way, the WebSocket endpoint's path coming from --ws-path. */
static bool cli_apply_url(struct cli_config *cfg, const char *url) {
    static const struct {
        const char *prefix;
        bool tls, websocket;
    } schemes[] = {
        {"mqtt://", false, false}, {"mqtts://", true, false}, {"ws://", false, true}, {"wss://", true, true}};
    const char *rest = NULL;
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0] && !rest; i++) {
        size_t n = strlen(schemes[i].prefix);
        if (strncmp(url, schemes[i].prefix, n) == 0) {
            rest = url + n;
            cfg->tls = cfg->tls || schemes[i].tls;
            cfg->websocket = schemes[i].websocket;
        }
    }
    if (!rest) {
        cli_usage_error(cfg, "Unsupported URL scheme.");
        return false;
    }
    const char *slash = strchr(rest, '/');
    if (!slash || !slash[1]) {
        cli_usage_error(cfg, "Invalid URL for -L argument specified - topic missing.");
        return false;
    }
    const char *host = rest;
    const char *at = memchr(rest, '@', (size_t)(slash - rest));
    if (at) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        const char *user_end = colon ? colon : at;
        if (!cli_copy(cfg->url_user, sizeof cfg->url_user, rest, (size_t)(user_end - rest)) ||
            (colon && !cli_copy(cfg->url_pass, sizeof cfg->url_pass, colon + 1, (size_t)(at - colon - 1)))) {
            cli_usage_error(cfg, "Username or password in the URL too long.");
            return false;
        }
        cfg->username = cfg->url_user;
        cfg->password = colon ? cfg->url_pass : NULL;
        host = at + 1;
    }
    /* The port follows the last ':' outside an IPv6 literal's brackets. */
    const char *host_end = slash;
    const char *bracket = memchr(host, ']', (size_t)(slash - host));
    const char *port = NULL;
    for (const char *p = bracket ? bracket : host; p < slash; p++)
        if (*p == ':')
            port = p;
    if (port) {
        char digits[8];
        long n;
        if (!cli_copy(digits, sizeof digits, port + 1, (size_t)(slash - port - 1)) ||
            !cli_parse_long(digits, 1, 65535, &n)) {
            cli_usage_error(cfg, "Invalid port given in the URL.");
            return false;
        }
        cfg->port = (int)n;
        cfg->port_set = true;
        host_end = port;
    }
    if (host[0] == '[' && bracket) {
        host++;
        host_end = bracket;
    }
    if (host_end == host || !cli_copy(cfg->url_host, sizeof cfg->url_host, host, (size_t)(host_end - host)) ||
        !cli_copy(cfg->url_topic, sizeof cfg->url_topic, slash + 1, strlen(slash + 1))) {
        cli_usage_error(cfg, "Invalid URL for -L argument specified.");
        return false;
    }
    cfg->host = cfg->url_host;
    return true;
}

/* Applies one option with its argument (`val`, NULL for flags). */
static bool cli_apply(struct cli_config *cfg, const struct cli_opt *o, const char *val) {
    long n;
    switch (o->id) {
    case OPT_HELP:
        return true; /* handled by the caller */
    case OPT_HOST:
        cfg->host = val;
        return true;
    case OPT_PORT:
        if (!cli_parse_long(val, 1, 65535, &n)) {
            cli_usage_error(cfg, "Invalid port given: %s", val);
            return false;
        }
        cfg->port = (int)n;
        cfg->port_set = true;
        return true;
    case OPT_UNIX:
        cfg->unix_path = val;
        return true;
    case OPT_ID:
        cfg->id = val;
        return true;
    case OPT_ID_PREFIX:
        cfg->id_prefix = val;
        return true;
    case OPT_KEEPALIVE:
        if (!cli_parse_long(val, 5, 65535, &n)) {
            cli_usage_error(cfg, "Invalid keepalive given, it must be between 5 and 65535 inclusive.");
            return false;
        }
        cfg->keepalive = (int)n;
        return true;
    case OPT_CLEAN_OFF:
        cfg->clean_session = false;
        return true;
    case OPT_USERNAME:
        cfg->username = val;
        return true;
    case OPT_PASSWORD:
        cfg->password = val;
        return true;
    case OPT_WILL_TOPIC:
        if (cli_topic_has_wildcard(val)) {
            cli_usage_error(cfg, "Invalid will topic '%s', does it contain '+' or '#'?", val);
            return false;
        }
        cfg->will_topic = val;
        return true;
    case OPT_WILL_PAYLOAD:
        cfg->will_payload = val;
        return true;
    case OPT_WILL_QOS:
        if (!cli_parse_long(val, 0, 2, &n)) {
            cli_usage_error(cfg, "Invalid will QoS %s.", val);
            return false;
        }
        cfg->will_qos = (int)n;
        return true;
    case OPT_WILL_RETAIN:
        cfg->will_retain = true;
        return true;
    case OPT_DEBUG:
        cfg->debug = true;
        return true;
    case OPT_QOS:
        if (!cli_parse_long(val, 0, 2, &n)) {
            cli_usage_error(cfg, "Invalid QoS given: %s", val);
            return false;
        }
        cfg->qos = (int)n;
        return true;
    case OPT_URL:
        /* The URL's path is a topic like -t's. */
        return cli_apply_url(cfg, val) && cli_add_topic(cfg, cfg->url_topic);
    case OPT_TOPIC:
        return cli_add_topic(cfg, val);
    case OPT_VERSION:
        /* mosquitto_pub's names; MQTT 3.1 (mqttv31) is not supported. */
        if (strcmp(val, "mqttv311") == 0 || strcmp(val, "311") == 0) {
            cfg->protocol_version = 4;
        } else if (strcmp(val, "mqttv5") == 0 || strcmp(val, "5") == 0) {
            cfg->protocol_version = 5;
        } else {
            cli_usage_error(cfg, "Unsupported protocol version '%s': use mqttv311 or mqttv5.", val);
            return false;
        }
        return true;
    case OPT_MESSAGE:
        return cli_set_msg_mode(cfg, CLI_MSG_ARG, val);
    case OPT_NULL:
        return cli_set_msg_mode(cfg, CLI_MSG_NULL, NULL);
    case OPT_FILE:
        return cli_set_msg_mode(cfg, CLI_MSG_FILE, val);
    case OPT_LINES:
        return cli_set_msg_mode(cfg, CLI_MSG_LINES, NULL);
    case OPT_STDIN:
        return cli_set_msg_mode(cfg, CLI_MSG_STDIN, NULL);
    case OPT_RETAIN:
        cfg->retain = true;
        return true;
    case OPT_COUNT:
        if (!cli_parse_long(val, 1, INT32_MAX, &n)) {
            cli_usage_error(cfg, "Invalid message count \"%s\".", val);
            return false;
        }
        cfg->msg_count = n;
        return true;
    case OPT_TIMEOUT:
        if (!cli_parse_long(val, 1, 3600L * 24 * 365, &n)) {
            cli_usage_error(cfg, "Invalid timeout \"%s\".", val);
            return false;
        }
        cfg->timeout_s = n;
        return true;
    case OPT_VERBOSE:
        cfg->output.verbose = true;
        return true;
    case OPT_NO_EOL:
        cfg->output.eol = false;
        return true;
    case OPT_FORMAT: {
        char msg[64];
        if (!cli_format_check(val, msg, sizeof msg, &cfg->format_needs_mid)) {
            cli_usage_error(cfg, "%s", msg);
            return false;
        }
        cfg->output.format = val;
        return true;
    }
    case OPT_PRETTY:
        cfg->output.pretty = true;
        return true;
    case OPT_NO_RETAINED:
        cfg->no_retain = true;
        cfg->sub_options |= MQTTC_SUB_RETAIN_NEVER;
        return true;
    case OPT_RETAINED_ONLY:
        cfg->retained_only = true;
        return true;
    case OPT_REMOVE_RETAINED:
        cfg->remove_retained = true;
        return true;
    case OPT_RETAIN_AS_PUBLISHED:
        cfg->sub_options |= MQTTC_SUB_RETAIN_AS_PUBLISHED;
        return true;
    case OPT_FILTER_OUT:
        return cli_add_filter(cfg, &cfg->filter_outs, "filter", val);
    case OPT_UNSUBSCRIBE:
        return cli_add_filter(cfg, &cfg->unsubscribes, "unsubscribe", val);
    case OPT_EXIT_AFTER_SUB:
        cfg->exit_after_sub = true;
        return true;
    case OPT_CAFILE:
        cfg->cafile = val;
        cfg->tls = true;
        return true;
    case OPT_CERT:
        cfg->certfile = val;
        cfg->tls = true;
        return true;
    case OPT_KEY:
        cfg->keyfile = val;
        return true;
    case OPT_INSECURE:
        cfg->insecure = true;
        return true;
    case OPT_ALPN:
        cfg->alpn = val;
        return true;
    case OPT_OS_CERTS:
        cfg->tls = true;
        return true;
    case OPT_WS_PATH:
        if (val[0] != '/') {
            cli_usage_error(cfg, "Invalid WebSocket path '%s': it must start with '/'.", val);
            return false;
        }
        cfg->ws_path = val;
        return true;
    case OPT_STORE:
        cfg->store_dir = val;
        return true;
    }
    return false;
}

/* Checks that concern several options, after all of them were read (common to both tools). */
static bool cli_check_combination(struct cli_config *cfg) {
    if (cfg->will_payload && !cfg->will_topic) {
        cli_usage_error(cfg, "Will payload given, but no will topic given.");
        return false;
    }
    if (cfg->will_retain && !cfg->will_topic) {
        cli_usage_error(cfg, "Will retain given, but no will topic given.");
        return false;
    }
    if (!cfg->certfile != !cfg->keyfile) {
        fprintf(stderr, "Error: Both certfile and keyfile must be provided if one of them is set.\n");
        return false;
    }
    if (cfg->password && !cfg->username) {
        fprintf(stderr, "Error: Problem setting username and/or password.\n");
        return false;
    }
    if (cfg->id_prefix && !cfg->id) {
        snprintf(cfg->id_buf, sizeof cfg->id_buf, "%s%ld", cfg->id_prefix, (long)getpid());
        cfg->id = cfg->id_buf;
    }
    if (!cfg->clean_session && !cfg->id) {
        cli_usage_error(cfg, "You must provide a client id if you are using the -c option.");
        return false;
    }
    if (cfg->store_dir && !cfg->id) {
        cli_usage_error(cfg, "You must provide a client id if you are using --store.");
        return false;
    }
    if (cfg->format_needs_mid && cfg->qos > 0) {
        cli_usage_error(cfg, "-F with %%m, %%j or %%J needs -q 0: the library does not give the message id of "
                             "QoS 1 and 2 messages.");
        return false;
    }
    return true;
}

/* Parses argv like mosquitto_pub/mosquitto_sub: every option is a separate word and an option's
 * argument is the next word. Errors are reported on stderr. On CLI_PARSE_OK or CLI_PARSE_HELP the
 * caller releases `cfg` with cli_config_free. */
static enum cli_parse_result cli_parse(struct cli_config *cfg, enum cli_tool tool, int argc, char **argv) {
    cli_config_init(cfg, tool);
    struct cli_list *lists[] = {&cfg->topics, &cfg->filter_outs, &cfg->unsubscribes};
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        lists[i]->items = calloc((size_t)(argc > 0 ? argc : 1), sizeof *lists[i]->items);
        if (!lists[i]->items) {
            fprintf(stderr, "Error: Out of memory.\n");
            cli_config_free(cfg);
            return CLI_PARSE_ERROR;
        }
    }
    for (int i = 1; i < argc; i++) {
        const struct cli_opt *o = cli_find_opt(argv[i], tool);
        if (!o) {
            cli_usage_error(cfg, "Unknown option '%s'.", argv[i]);
            goto fail;
        }
        if (o->id == OPT_HELP)
            return CLI_PARSE_HELP;
        const char *val = NULL;
        if (o->noun) {
            if (i + 1 == argc) {
                /* mosquitto's tools end this one with an empty line. */
                cli_usage_error(cfg, "%s argument given but no %s specified.\n", argv[i], o->noun);
                goto fail;
            }
            val = argv[++i];
        }
        if (!cli_apply(cfg, o, val))
            goto fail;
    }
    if (!cli_check_combination(cfg))
        goto fail;
    return CLI_PARSE_OK;
fail:
    cli_config_free(cfg);
    return CLI_PARSE_ERROR;
}

/* ---- connecting -------------------------------------------------------------------------- */

/* -d: the library's log lines, on stdout like mosquitto's debug output. */
static void cli_log_line(mqttc_client *client, int level, const char *line, void *userdata) {
    (void)client;
    (void)level;
    (void)userdata;
    printf("%s\n", line);
    fflush(stdout);
}

static mqttc_status cli_client_new(const struct cli_config *cfg, mqttc_client **out) {
    mqttc_options opts;
    mqttc_options_init(&opts);
    opts.keep_alive = (uint16_t)cfg->keepalive;
    opts.protocol_version = cfg->protocol_version;
    opts.clean_session = cfg->clean_session;
    /* MQTT 5 ends a session at disconnect unless CONNECT asks otherwise: with -c, mosquitto's tools
     * ask for one that never expires. */
    if (cfg->protocol_version == 5 && !cfg->clean_session)
        opts.session_expiry = UINT32_MAX;
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
    opts.tls_cert_file = cfg->certfile;
    opts.tls_key_file = cfg->keyfile;
    opts.tls_alpn = cfg->alpn;
    opts.tls_insecure = cfg->insecure;
    opts.store_dir = cfg->store_dir;
    if (cfg->unix_path)
        return mqttc_client_new_unix(cfg->unix_path, &opts, out);
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
        return mqttc_client_new_uris(uris, 1, &opts, out);
    }
    /* As mosquitto's tools: TLS without -p (or a URL port) means MQTT's TLS port. */
    int port = cfg->tls && !cfg->port_set ? 8883 : cfg->port;
    return mqttc_client_new(cfg->host, (uint16_t)port, &opts, out);
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
        fprintf(stderr, "Connection error: %s\n", refusal);
        if (cfg->tool == CLI_PUB)
            fprintf(stderr, "Error: The connection was refused.\n");
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
    mqttc_status st = cfg->protocol_version == 5 ? mqttc_disconnect_v5(client, reason, NULL, &tok)
                                                 : mqttc_disconnect(client, &tok);
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
    default:
        return CLI_EXIT_ERROR;
    }
    int code = run(&cfg);
    cli_config_free(&cfg);
    return code;
}

#endif /* MQTTC_CLI_COMMON_H */
