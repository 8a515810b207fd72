/*
 * The options of mqttc_pub, mqttc_sub and mqttc_rr, read as mosquitto_pub, mosquitto_sub and
 * mosquitto_rr read theirs: the same names, the same checks in the same order, the same messages
 * and exit codes; and mosquitto's options that the library cannot honour, refused with the reason.
 */
#ifndef MQTTC_CLI_ARGS_H
#define MQTTC_CLI_ARGS_H

#include "cli_config.h"

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
    OPT_RESPONSE_TOPIC,
    OPT_RANDOM_FILTER,
    OPT_FORMAT,
    OPT_PRETTY,
    OPT_PROPERTY,
    OPT_SESSION_EXPIRY,
    OPT_BIND,
    OPT_MAX_INFLIGHT,
    OPT_NODELAY,
    OPT_QUIET,
    OPT_REPEAT,
    OPT_REPEAT_DELAY,
    OPT_PRINT_VERSION,
    OPT_URL,
    OPT_CAFILE,
    OPT_CAPATH,
    OPT_TLS_VERSION,
    OPT_CIPHERS,
    OPT_PROXY,
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
    unsigned tools;    /* the cli_tool bits of the tools that take it */
    const char *noun;  /* what its argument is called in "no ... specified", NULL for a flag */
};

static const struct cli_opt CLI_OPTS[] = {
    {"--help", NULL, OPT_HELP, CLI_ALL, NULL},
    {"-h", "--host", OPT_HOST, CLI_ALL, "host"},
    {"-p", "--port", OPT_PORT, CLI_ALL, "port"},
    {"--unix", NULL, OPT_UNIX, CLI_ALL, "socket path"},
    {"-i", "--id", OPT_ID, CLI_ALL, "id"},
    {"-I", "--id-prefix", OPT_ID_PREFIX, CLI_ALL, "id prefix"},
    {"-k", "--keepalive", OPT_KEEPALIVE, CLI_ALL, "keepalive"},
    {"-c", "--disable-clean-session", OPT_CLEAN_OFF, CLI_ALL, NULL},
    {"-u", "--username", OPT_USERNAME, CLI_ALL, "username"},
    {"-P", "--pw", OPT_PASSWORD, CLI_ALL, "password"},
    {"--will-topic", NULL, OPT_WILL_TOPIC, CLI_ALL, "will topic"},
    {"--will-payload", NULL, OPT_WILL_PAYLOAD, CLI_ALL, "will payload"},
    {"--will-qos", NULL, OPT_WILL_QOS, CLI_ALL, "will QoS"},
    {"--will-retain", NULL, OPT_WILL_RETAIN, CLI_ALL, NULL},
    {"-d", "--debug", OPT_DEBUG, CLI_ALL, NULL},
    {"-q", "--qos", OPT_QOS, CLI_ALL, "QoS"},
    {"-t", "--topic", OPT_TOPIC, CLI_ALL, "topic"},
    {"-V", "--protocol-version", OPT_VERSION, CLI_ALL, "version"},
    {"-m", "--message", OPT_MESSAGE, CLI_PUB | CLI_RR, "message"},
    {"-n", "--null-message", OPT_NULL, CLI_PUB | CLI_RR, NULL},
    {"-f", "--file", OPT_FILE, CLI_PUB | CLI_RR, "file"},
    {"-l", "--stdin-line", OPT_LINES, CLI_PUB, NULL},
    {"-s", "--stdin-file", OPT_STDIN, CLI_PUB | CLI_RR, NULL},
    {"-r", "--retain", OPT_RETAIN, CLI_PUB, NULL},
    {"-C", NULL, OPT_COUNT, CLI_SUB, "count"},
    {"-W", NULL, OPT_TIMEOUT, CLI_SUB | CLI_RR, "timeout"},
    {"-v", "--verbose", OPT_VERBOSE, CLI_SUB | CLI_RR, NULL},
    {"-N", NULL, OPT_NO_EOL, CLI_SUB | CLI_RR, NULL},
    {"-R", NULL, OPT_NO_RETAINED, CLI_SUB | CLI_RR, NULL},
    {"--retained-only", NULL, OPT_RETAINED_ONLY, CLI_SUB, NULL},
    {"--remove-retained", NULL, OPT_REMOVE_RETAINED, CLI_SUB, NULL},
    {"--retain-as-published", NULL, OPT_RETAIN_AS_PUBLISHED, CLI_SUB | CLI_RR, NULL},
    {"-T", "--filter-out", OPT_FILTER_OUT, CLI_SUB, "topic filter"},
    {"-U", "--unsubscribe", OPT_UNSUBSCRIBE, CLI_SUB, "unsubscribe topic"},
    {"-E", NULL, OPT_EXIT_AFTER_SUB, CLI_SUB, NULL},
    {"-e", NULL, OPT_RESPONSE_TOPIC, CLI_RR, "response topic"},
    {"--random-filter", NULL, OPT_RANDOM_FILTER, CLI_SUB, "chance"},
    {"-F", NULL, OPT_FORMAT, CLI_SUB | CLI_RR, "format"},
    {"--pretty", NULL, OPT_PRETTY, CLI_SUB | CLI_RR, NULL},
    {"-D", "--property", OPT_PROPERTY, CLI_ALL, NULL}, /* reads its own words */
    {"-x", NULL, OPT_SESSION_EXPIRY, CLI_ALL, "session expiry interval"},
    {"-A", NULL, OPT_BIND, CLI_ALL, "address"},
    {"-M", NULL, OPT_MAX_INFLIGHT, CLI_ALL, "max_inflight"},
    {"--nodelay", NULL, OPT_NODELAY, CLI_ALL, NULL},
    {"--quiet", NULL, OPT_QUIET, CLI_ALL, NULL},
    {"--repeat", NULL, OPT_REPEAT, CLI_PUB, "count"},
    {"--repeat-delay", NULL, OPT_REPEAT_DELAY, CLI_PUB, "time"},
    {"--version", NULL, OPT_PRINT_VERSION, CLI_ALL, NULL},
    {"-L", "--url", OPT_URL, CLI_ALL, "URL"},
    {"--cafile", NULL, OPT_CAFILE, CLI_ALL, "file"},
    {"--capath", NULL, OPT_CAPATH, CLI_ALL, "directory"},
    {"--tls-version", NULL, OPT_TLS_VERSION, CLI_ALL, "version"},
    {"--ciphers", NULL, OPT_CIPHERS, CLI_ALL, "ciphers"},
    {"--proxy", NULL, OPT_PROXY, CLI_ALL, "proxy url"},
    {"--cert", NULL, OPT_CERT, CLI_ALL, "file"},
    {"--key", NULL, OPT_KEY, CLI_ALL, "file"},
    {"--insecure", NULL, OPT_INSECURE, CLI_ALL, NULL},
    {"--tls-alpn", NULL, OPT_ALPN, CLI_ALL, "protocol"},
    {"--tls-use-os-certs", NULL, OPT_OS_CERTS, CLI_ALL, NULL},
    {"--ws-path", NULL, OPT_WS_PATH, CLI_ALL, "path"},
    {"--store", NULL, OPT_STORE, CLI_ALL, "directory"},
};

/* mosquitto's options that the library cannot honour: refused, with the reason, rather than
 * ignored. `arg` says whether one takes an argument. */
static const struct {
    const char *name;
    bool arg;
    const char *reason;
} CLI_REFUSED[] = {
    {"--psk", true, "the library has no TLS-PSK"},
    {"--psk-identity", true, "the library has no TLS-PSK"},
    {"--tls-engine", true, "the library has no OpenSSL engines"},
    {"--keyform", true, "the library reads keys from PEM files only"},
    {"--tls-engine-kpass-sha1", true, "the library has no OpenSSL engines"},
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
    cfg->prog = tool == CLI_PUB ? "mqttc_pub" : tool == CLI_SUB ? "mqttc_sub" : "mqttc_rr";
    cfg->host = "localhost";
    cfg->port = 1883;
    cfg->keepalive = 60;
    cfg->protocol_version = 4;
    cfg->clean_session = true;
    cfg->output.eol = true;
    cfg->output.random_filter = 10000;
    cfg->msg_mode = CLI_MSG_NONE;
    cfg->session_expiry = -1;
    if (tool == CLI_RR) {
        /* mosquitto_rr's defaults: request/response is MQTT 5's, and one response is awaited. */
        cfg->protocol_version = 5;
        cfg->msg_count = 1;
    }
    cfg->repeat_count = 1;
}

static void cli_config_free(struct cli_config *cfg) {
    struct cli_list *lists[] = {&cfg->topics, &cfg->filter_outs, &cfg->unsubscribes};
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        free(lists[i]->items);
        lists[i]->items = NULL;
        lists[i]->count = 0;
    }
    free(cfg->props.items);
    cfg->props.items = NULL;
    cfg->props.count = 0;
}

/* Room for what argv can give: a word per list entry, and a -D per word plus -x's. */
static bool cli_config_alloc(struct cli_config *cfg, int argc) {
    size_t n = (size_t)(argc > 0 ? argc : 0) + 1;
    struct cli_list *lists[] = {&cfg->topics, &cfg->filter_outs, &cfg->unsubscribes};
    bool ok = (cfg->props.items = calloc(n, sizeof *cfg->props.items)) != NULL;
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++)
        ok = (lists[i]->items = calloc(n, sizeof *lists[i]->items)) != NULL && ok;
    if (!ok) {
        fprintf(stderr, "Error: Out of memory.\n");
        cli_config_free(cfg);
    }
    return ok;
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
    if (cfg->tool != CLI_SUB && cli_topic_has_wildcard(val)) {
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

/* --will-topic and -e: a topic messages go to, without wildcards; `what` names it in the error. */
static bool cli_set_topic(const struct cli_config *cfg, const char *what, const char *val, const char **topic) {
    if (cli_topic_has_wildcard(val)) {
        cli_usage_error(cfg, "Invalid %s topic '%s', does it contain '+' or '#'?", what, val);
        return false;
    }
    *topic = val;
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

/* -x: seconds, -1 or "∞" for a session that never expires (MQTT 5 only, as with mosquitto's tools). */
static bool cli_apply_session_expiry(struct cli_config *cfg, const char *val) {
    if (strcmp(val, "\u221e") == 0) {
        cfg->session_expiry = UINT32_MAX;
        return true;
    }
    char *end;
    long long v = strtoll(val, &end, 0);
    if (end == val || *end != '\0') {
        cli_usage_error(cfg, "session-expiry-interval not a number.\n");
        return false;
    }
    if (v > UINT32_MAX || v < -1) {
        cli_usage_error(cfg, "session-expiry-interval out of range.\n");
        return false;
    }
    cfg->session_expiry = v == -1 ? UINT32_MAX : v;
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
        return cli_set_topic(cfg, "will", val, &cfg->will_topic);
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
        if (!cli_format_check(val, msg, sizeof msg)) {
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
    case OPT_RESPONSE_TOPIC:
        return cli_set_topic(cfg, "response", val, &cfg->response_topic);
    case OPT_RANDOM_FILTER:
        /* mosquitto_sub's reading: tenths of a percent. */
        cfg->output.random_filter = (int)(10.0 * atof(val));
        if (cfg->output.random_filter > 10000 || cfg->output.random_filter < 1) {
            cli_usage_error(cfg, "--random-filter chance must be between 0.1-100.0\n");
            return false;
        }
        return true;
    case OPT_EXIT_AFTER_SUB:
        cfg->exit_after_sub = true;
        return true;
    case OPT_CAFILE:
        cfg->cafile = val;
        cfg->tls = true;
        return true;
    case OPT_CAPATH:
        cfg->capath = val;
        cfg->tls = true;
        return true;
    case OPT_TLS_VERSION:
        /* mosquitto's version is the lowest allowed; the library's list is every one offered.
         * Others go to the library as they are, which says what it speaks. */
        cfg->tls_version = strcmp(val, "tlsv1.2") == 0 ? "tlsv1.2,tlsv1.3" : val;
        return true;
    case OPT_CIPHERS:
        cfg->ciphers = val;
        return true;
    case OPT_PROXY:
        /* mosquitto's tools take SOCKS5 with the name resolved by the proxy only; the library
         * checks the rest of the URL. */
        if (strncmp(val, "socks5h://", 10) != 0) {
            cli_usage_error(cfg, "Unsupported proxy protocol: %s", val);
            return false;
        }
        cfg->proxy = val;
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
    case OPT_PROPERTY: /* read by cli_parse */
    case OPT_PRINT_VERSION:
        return true;
    case OPT_SESSION_EXPIRY:
        return cli_apply_session_expiry(cfg, val);
    case OPT_BIND:
        cfg->bind_address = val;
        return true;
    case OPT_MAX_INFLIGHT:
        cfg->max_inflight = atol(val);
        if (cfg->max_inflight < 1) {
            cli_usage_error(cfg, "Maximum inflight messages must be greater than 0.\n");
            return false;
        }
        return true;
    case OPT_NODELAY: /* the library always turns Nagle's algorithm off */
        return true;
    case OPT_QUIET:
        cli_quiet = true;
        cfg->output.quiet = true;
        return true;
    case OPT_REPEAT:
        cfg->repeat_count = atol(val);
        if (cfg->repeat_count < 1) {
            cli_usage_error(cfg, "--repeat argument must be >0.\n");
            return false;
        }
        return true;
    case OPT_REPEAT_DELAY:
        cfg->repeat_delay = atof(val);
        if (!(cfg->repeat_delay >= 0)) {
            cli_usage_error(cfg, "--repeat-delay argument must be >=0.0.\n");
            return false;
        }
        return true;
    }
    return false;
}

/* The session, as mosquitto's tools decide it: with MQTT 5, -c without -x means a session that never
 * expires, which like -c with MQTT 3.1.1 needs a fixed client id (-i, not -I); a session expiry
 * becomes CONNECT's property, checked with the other -D properties. */
static bool cli_check_session(struct cli_config *cfg) {
    if (cfg->protocol_version == 5) {
        long long expiry = cfg->session_expiry;
        if (!cfg->clean_session && expiry == -1)
            expiry = UINT32_MAX;
        if (expiry > 0) {
            if (expiry == UINT32_MAX && (cfg->id_prefix || !cfg->id)) {
                cli_usage_error(cfg, "You must provide a client id if you are using an infinite session expiry "
                                     "interval.");
                return false;
            }
            cfg->props.items[cfg->props.count++] = (struct cli_prop){
                CLI_CMD_CONNECT, cli_prop_info_of(MQTTC_PROP_SESSION_EXPIRY_INTERVAL), NULL, NULL, (uint32_t)expiry};
        }
    } else if (!cfg->clean_session && (cfg->id_prefix || !cfg->id)) {
        cli_usage_error(cfg, "You must provide a client id if you are using the -c option.");
        return false;
    }
    static const struct {
        enum cli_cmd cmd;
        const char *name;
    } packets[] = {{CLI_CMD_CONNECT, "CONNECT"},         {CLI_CMD_PUBLISH, "PUBLISH"},
                   {CLI_CMD_SUBSCRIBE, "SUBSCRIBE"},     {CLI_CMD_UNSUBSCRIBE, "UNSUBSCRIBE"},
                   {CLI_CMD_DISCONNECT, "DISCONNECT"},   {CLI_CMD_WILL, "Will"}};
    for (size_t i = 0; i < sizeof packets / sizeof packets[0]; i++) {
        const char *problem = cli_props_check(&cfg->props, packets[i].cmd);
        if (problem) {
            char text[256];
            snprintf(text, sizeof text, "Error in %s properties: %s\n", packets[i].name, problem);
            cli_usage_text(cfg, text);
            return false;
        }
    }
    return true;
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
    if (!cli_check_session(cfg))
        return false;
    if (cfg->id_prefix && !cfg->id) {
        snprintf(cfg->id_buf, sizeof cfg->id_buf, "%s%ld", cfg->id_prefix, (long)getpid());
        cfg->id = cfg->id_buf;
    }
    if (cfg->store_dir && !cfg->id) {
        cli_usage_error(cfg, "You must provide a client id if you are using --store.");
        return false;
    }
    return true;
}

/* An option this tool does not take: one of CLI_REFUSED with its reason, or unknown. */
static void cli_refuse_or_unknown(const struct cli_config *cfg, const char *arg) {
    for (size_t k = 0; k < sizeof CLI_REFUSED / sizeof CLI_REFUSED[0]; k++) {
        if (strcmp(arg, CLI_REFUSED[k].name) == 0) {
            cli_usage_error(cfg, "%s is not supported: %s.", arg, CLI_REFUSED[k].reason);
            return;
        }
    }
    cli_usage_error(cfg, "Unknown option '%s'.", arg);
}

/* Parses argv like mosquitto_pub/mosquitto_sub: every option is a separate word and an option's
 * argument is the next word. Errors are reported on stderr. On CLI_PARSE_OK or CLI_PARSE_HELP the
 * caller releases `cfg` with cli_config_free. */
static enum cli_parse_result cli_parse(struct cli_config *cfg, enum cli_tool tool, int argc, char **argv) {
    cli_config_init(cfg, tool);
    if (!cli_config_alloc(cfg, argc))
        return CLI_PARSE_ERROR;
    for (int i = 1; i < argc; i++) {
        const struct cli_opt *o = cli_find_opt(argv[i], tool);
        if (!o) {
            cli_refuse_or_unknown(cfg, argv[i]);
            goto fail;
        }
        if (o->id == OPT_HELP)
            return CLI_PARSE_HELP;
        if (o->id == OPT_PRINT_VERSION)
            return CLI_PARSE_VERSION;
        if (o->id == OPT_PROPERTY) {
            char msg[512];
            i++;
            if (!cli_props_parse(&cfg->props, argc, argv, &i, msg, sizeof msg)) {
                cli_usage_text(cfg, msg);
                goto fail;
            }
            cfg->protocol_version = 5; /* as mosquitto's tools: properties are MQTT 5 */
            continue;
        }
        const char *val = NULL;
        if (o->noun) {
            if (i + 1 == argc) {
                /* mosquitto's tools end this one with an empty line. */
                if (o->id == OPT_MAX_INFLIGHT)
                    cli_usage_error(cfg, "-M argument given but max_inflight not specified.\n");
                else
                    cli_usage_error(cfg, "%s argument given but no %s specified.\n",
                                    o->id == OPT_VERSION ? "--protocol-version" : argv[i], o->noun);
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

#endif /* MQTTC_CLI_ARGS_H */
