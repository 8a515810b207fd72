/*
 * -D / --property, as mosquitto's tools take it: "-D command name value", or "-D command
 * user-property name value"; checked with the same words (libmosquitto's property names and the
 * packets each may go in), kept per packet, and handed to the library when the client is made
 * (CONNECT and will), and with each publish, subscribe, unsubscribe and disconnect.
 *
 * What the library decides itself is refused with a reason rather than ignored: subscription
 * identifiers (it gives each SUBSCRIBE its own, to route messages), topic aliases (it manages
 * them), and authentication (it has no enhanced authentication). Three CONNECT properties are
 * fields of mqttc_options: session-expiry-interval, maximum-packet-size, topic-alias-maximum.
 *
 * Static inline, like cli_format.h: each tool uses a part.
 */
#ifndef MQTTC_CLI_PROPS_H
#define MQTTC_CLI_PROPS_H

#include <mqttclient.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The packets -D names, in libmosquitto's order (its CMD_* values). */
enum cli_cmd {
    CLI_CMD_CONNECT,
    CLI_CMD_CONNACK,
    CLI_CMD_PUBLISH,
    CLI_CMD_PUBACK,
    CLI_CMD_PUBREC,
    CLI_CMD_PUBREL,
    CLI_CMD_PUBCOMP,
    CLI_CMD_SUBSCRIBE,
    CLI_CMD_UNSUBSCRIBE,
    CLI_CMD_DISCONNECT,
    CLI_CMD_AUTH,
    CLI_CMD_WILL,
    CLI_CMD_COUNT
};

static const char *const CLI_CMD_NAMES[CLI_CMD_COUNT] = {
    "connect", "connack", "publish", "puback", "pubrec", "pubrel",
    "pubcomp", "subscribe", "unsubscribe", "disconnect", "auth", "will",
};

/* libmosquitto's property types; their numbers appear in one of its messages. */
enum cli_prop_type {
    CLI_PT_BYTE = 1,
    CLI_PT_INT16 = 2,
    CLI_PT_INT32 = 3,
    CLI_PT_VARINT = 4,
    CLI_PT_BINARY = 5,
    CLI_PT_STRING = 6,
    CLI_PT_PAIR = 7,
};

#define CLI_IN(cmd) (1u << (cmd))
#define CLI_IN_MESSAGE (CLI_IN(CLI_CMD_PUBLISH) | CLI_IN(CLI_CMD_WILL))
#define CLI_IN_ALL ((1u << CLI_CMD_COUNT) - 1)
/* Reason strings: anywhere but CONNECT, PUBLISH, SUBSCRIBE and UNSUBSCRIBE. */
#define CLI_IN_REASON                                                                                  \
    (CLI_IN_ALL & ~(CLI_IN(CLI_CMD_CONNECT) | CLI_IN(CLI_CMD_PUBLISH) | CLI_IN(CLI_CMD_SUBSCRIBE) |     \
                    CLI_IN(CLI_CMD_UNSUBSCRIBE)))

/* A property: its name, identifier, type, and the packets it may go in (libmosquitto's
 * mosquitto_property_check_command); `flag` for the byte properties that are 0 or 1. */
struct cli_prop_info {
    const char *name;
    int id;
    enum cli_prop_type type;
    unsigned in;
    bool flag;
};

static const struct cli_prop_info CLI_PROPS[] = {
    {"payload-format-indicator", MQTTC_PROP_PAYLOAD_FORMAT_INDICATOR, CLI_PT_BYTE, CLI_IN_MESSAGE, false},
    {"message-expiry-interval", MQTTC_PROP_MESSAGE_EXPIRY_INTERVAL, CLI_PT_INT32, CLI_IN_MESSAGE, false},
    {"content-type", MQTTC_PROP_CONTENT_TYPE, CLI_PT_STRING, CLI_IN_MESSAGE, false},
    {"response-topic", MQTTC_PROP_RESPONSE_TOPIC, CLI_PT_STRING, CLI_IN_MESSAGE, false},
    {"correlation-data", MQTTC_PROP_CORRELATION_DATA, CLI_PT_BINARY, CLI_IN_MESSAGE, false},
    {"subscription-identifier", MQTTC_PROP_SUBSCRIPTION_IDENTIFIER, CLI_PT_VARINT,
     CLI_IN(CLI_CMD_PUBLISH) | CLI_IN(CLI_CMD_SUBSCRIBE), false},
    {"session-expiry-interval", MQTTC_PROP_SESSION_EXPIRY_INTERVAL, CLI_PT_INT32,
     CLI_IN(CLI_CMD_CONNECT) | CLI_IN(CLI_CMD_CONNACK) | CLI_IN(CLI_CMD_DISCONNECT), false},
    {"assigned-client-identifier", MQTTC_PROP_ASSIGNED_CLIENT_IDENTIFIER, CLI_PT_STRING, CLI_IN(CLI_CMD_CONNACK),
     false},
    {"server-keep-alive", MQTTC_PROP_SERVER_KEEP_ALIVE, CLI_PT_INT16, CLI_IN(CLI_CMD_CONNACK), false},
    {"authentication-method", MQTTC_PROP_AUTHENTICATION_METHOD, CLI_PT_STRING,
     CLI_IN(CLI_CMD_CONNECT) | CLI_IN(CLI_CMD_CONNACK) | CLI_IN(CLI_CMD_AUTH), false},
    {"authentication-data", MQTTC_PROP_AUTHENTICATION_DATA, CLI_PT_BINARY,
     CLI_IN(CLI_CMD_CONNECT) | CLI_IN(CLI_CMD_CONNACK) | CLI_IN(CLI_CMD_AUTH), false},
    {"request-problem-information", MQTTC_PROP_REQUEST_PROBLEM_INFORMATION, CLI_PT_BYTE, CLI_IN(CLI_CMD_CONNECT),
     true},
    {"will-delay-interval", MQTTC_PROP_WILL_DELAY_INTERVAL, CLI_PT_INT32, CLI_IN(CLI_CMD_WILL), false},
    {"request-response-information", MQTTC_PROP_REQUEST_RESPONSE_INFORMATION, CLI_PT_BYTE, CLI_IN(CLI_CMD_CONNECT),
     true},
    {"response-information", MQTTC_PROP_RESPONSE_INFORMATION, CLI_PT_STRING, CLI_IN(CLI_CMD_CONNACK), false},
    {"server-reference", MQTTC_PROP_SERVER_REFERENCE, CLI_PT_STRING,
     CLI_IN(CLI_CMD_CONNACK) | CLI_IN(CLI_CMD_DISCONNECT), false},
    {"reason-string", MQTTC_PROP_REASON_STRING, CLI_PT_STRING, CLI_IN_REASON, false},
    {"receive-maximum", MQTTC_PROP_RECEIVE_MAXIMUM, CLI_PT_INT16, CLI_IN(CLI_CMD_CONNECT) | CLI_IN(CLI_CMD_CONNACK),
     false},
    {"topic-alias-maximum", MQTTC_PROP_TOPIC_ALIAS_MAXIMUM, CLI_PT_INT16,
     CLI_IN(CLI_CMD_CONNECT) | CLI_IN(CLI_CMD_CONNACK), false},
    {"topic-alias", MQTTC_PROP_TOPIC_ALIAS, CLI_PT_INT16, CLI_IN(CLI_CMD_PUBLISH), false},
    {"maximum-qos", MQTTC_PROP_MAXIMUM_QOS, CLI_PT_BYTE, CLI_IN(CLI_CMD_CONNACK), true},
    {"retain-available", MQTTC_PROP_RETAIN_AVAILABLE, CLI_PT_BYTE, CLI_IN(CLI_CMD_CONNACK), true},
    {"user-property", MQTTC_PROP_USER_PROPERTY, CLI_PT_PAIR, CLI_IN_ALL, false},
    {"maximum-packet-size", MQTTC_PROP_MAXIMUM_PACKET_SIZE, CLI_PT_INT32,
     CLI_IN(CLI_CMD_CONNECT) | CLI_IN(CLI_CMD_CONNACK), false},
    {"wildcard-subscription-available", MQTTC_PROP_WILDCARD_SUBSCRIPTION_AVAILABLE, CLI_PT_BYTE,
     CLI_IN(CLI_CMD_CONNACK), true},
    {"subscription-identifier-available", MQTTC_PROP_SUBSCRIPTION_IDENTIFIER_AVAILABLE, CLI_PT_BYTE,
     CLI_IN(CLI_CMD_CONNACK), true},
    {"shared-subscription-available", MQTTC_PROP_SHARED_SUBSCRIPTION_AVAILABLE, CLI_PT_BYTE,
     CLI_IN(CLI_CMD_CONNACK), true},
};

static inline const struct cli_prop_info *cli_prop_info_of(int id) {
    for (size_t k = 0; k < sizeof CLI_PROPS / sizeof CLI_PROPS[0]; k++) {
        if (CLI_PROPS[k].id == id)
            return &CLI_PROPS[k];
    }
    return NULL;
}

/* One -D. `key` is a user property's name; `value` its value, or any other property's text. */
struct cli_prop {
    enum cli_cmd cmd;
    const struct cli_prop_info *info;
    const char *key;
    const char *value;
    uint32_t integer;
};

/* Every -D in order (borrowing argv), with room for one per word of argv and one more for -x. */
struct cli_props {
    struct cli_prop *items;
    size_t count;
};

/* Properties the library sets itself: refused, with the reason. */
static inline const char *cli_prop_refusal(enum cli_cmd cmd, int id) {
    if (id == MQTTC_PROP_SUBSCRIPTION_IDENTIFIER && cmd == CLI_CMD_SUBSCRIBE)
        return "the library gives each SUBSCRIBE its own, to route messages";
    if (id == MQTTC_PROP_TOPIC_ALIAS)
        return "the library manages topic aliases itself";
    if (id == MQTTC_PROP_AUTHENTICATION_METHOD || id == MQTTC_PROP_AUTHENTICATION_DATA)
        return "the library has no enhanced authentication";
    return NULL;
}

/* mosquitto's cfg_parse_property, for the words after -D (from argv[*idx]): false with its message
 * in `msg`, newlines included. On success `*idx` is the last word used. */
static inline bool cli_props_parse(struct cli_props *props, int argc, char **argv, int *idx, char *msg, size_t cap) {
    int i = *idx;
    if (i + 2 > argc - 1) {
        snprintf(msg, cap, "Error: --property argument given but not enough arguments specified.\n\n");
        return false;
    }
    const char *cmdname = argv[i], *propname = argv[i + 1];
    int cmd = 0;
    while (cmd < CLI_CMD_COUNT && strcasecmp(cmdname, CLI_CMD_NAMES[cmd]) != 0)
        cmd++;
    if (cmd == CLI_CMD_COUNT) {
        snprintf(msg, cap, "Error: Invalid command given in --property argument.\n\n");
        return false;
    }
    const struct cli_prop_info *info = NULL;
    for (size_t k = 0; k < sizeof CLI_PROPS / sizeof CLI_PROPS[0] && !info; k++) {
        if (strcasecmp(propname, CLI_PROPS[k].name) == 0)
            info = &CLI_PROPS[k];
    }
    if (!info) {
        snprintf(msg, cap, "Error: Invalid property name given in --property argument.\n\n");
        return false;
    }
    if (!(info->in & CLI_IN(cmd))) {
        snprintf(msg, cap, "Error: %s property not allowed for %s in --property argument.\n\n", propname, cmdname);
        return false;
    }
    struct cli_prop p = {(enum cli_cmd)cmd, info, NULL, NULL, 0};
    if (info->type == CLI_PT_PAIR) {
        if (i + 3 > argc - 1) {
            snprintf(msg, cap, "Error: --property argument given but not enough arguments specified.\n\n");
            return false;
        }
        p.key = argv[i + 2];
        p.value = argv[i + 3];
        *idx = i + 3;
    } else {
        p.value = argv[i + 2];
        *idx = i + 2;
    }
    bool unsupported = (cmd == CLI_CMD_PUBLISH && info->id == MQTTC_PROP_SUBSCRIPTION_IDENTIFIER) ||
                       cmd == CLI_CMD_AUTH || (cmd >= CLI_CMD_PUBACK && cmd <= CLI_CMD_PUBCOMP) ||
                       (cmd == CLI_CMD_SUBSCRIBE && info->id != MQTTC_PROP_SUBSCRIPTION_IDENTIFIER &&
                        info->id != MQTTC_PROP_USER_PROPERTY);
    const char *refusal = cli_prop_refusal(p.cmd, info->id);
    if (unsupported || refusal) {
        snprintf(msg, cap, "Error: %s property not supported for %s in --property argument%s%s.\n\n", propname, cmdname,
                 refusal ? ": " : "", refusal ? refusal : "");
        return false;
    }
    static const long max[] = {[CLI_PT_BYTE] = UINT8_MAX, [CLI_PT_INT16] = UINT16_MAX, [CLI_PT_INT32] = UINT32_MAX,
                               [CLI_PT_VARINT] = UINT32_MAX};
    if (info->type <= CLI_PT_VARINT) {
        long v = atol(p.value);
        if (v < 0 || v > max[info->type]) {
            snprintf(msg, cap, "Error: Property value (%ld) out of range for property %s.\n\n", v, propname);
            return false;
        }
        p.integer = (uint32_t)v;
    } else if (info->type == CLI_PT_BINARY && strlen(p.value) > UINT16_MAX) {
        snprintf(msg, cap, "Error: Property value too long for property %s.\n\n", propname);
        return false;
    }
    /* A string libmosquitto cannot add (no valid UTF-8), the library cannot take either: try it. */
    mqttc_properties *scratch = NULL;
    mqttc_status st = mqttc_properties_new(&scratch);
    if (st == MQTTC_OK && info->type == CLI_PT_PAIR)
        st = mqttc_properties_add_user(scratch, p.key, p.value);
    else if (st == MQTTC_OK && info->type == CLI_PT_STRING)
        st = mqttc_properties_set_string(scratch, info->id, p.value);
    mqttc_properties_free(scratch);
    if (st != MQTTC_OK) {
        snprintf(msg, cap, "Error adding property %s %d\n", propname, (int)info->type);
        return false;
    }
    props->items[props->count++] = p;
    return true;
}

/* libmosquitto's mosquitto_property_check_all for one packet's properties: NULL, or its words
 * (mosquitto_strerror) for what is wrong. */
static inline const char *cli_props_check(const struct cli_props *props, enum cli_cmd cmd) {
    static const char protocol[] = "A network protocol error occurred when communicating with the broker.";
    for (size_t i = 0; i < props->count; i++) {
        const struct cli_prop *p = &props->items[i];
        if (p->cmd != cmd)
            continue;
        int id = p->info->id;
        if ((p->info->flag && p->integer > 1) || (id == MQTTC_PROP_MAXIMUM_PACKET_SIZE && p->integer == 0) ||
            (id == MQTTC_PROP_RECEIVE_MAXIMUM && p->integer == 0))
            return protocol;
        for (size_t k = i + 1; k < props->count; k++) {
            if (props->items[k].cmd == cmd && props->items[k].info->id == id && id != MQTTC_PROP_USER_PROPERTY)
                return "Duplicate property in property list";
        }
    }
    return NULL;
}

/* Whether a -D of `cmd` gives property `id`. */
static inline bool cli_props_has(const struct cli_props *props, enum cli_cmd cmd, int id) {
    for (size_t i = 0; i < props->count; i++) {
        if (props->items[i].cmd == cmd && props->items[i].info->id == id)
            return true;
    }
    return false;
}

/* The integer value of a -D of `cmd`, if given. */
static inline bool cli_props_int(const struct cli_props *props, enum cli_cmd cmd, int id, uint32_t *value) {
    for (size_t i = 0; i < props->count; i++) {
        if (props->items[i].cmd == cmd && props->items[i].info->id == id) {
            *value = props->items[i].integer;
            return true;
        }
    }
    return false;
}

/* The library's list of `cmd`'s properties, for a *_v5 call or an mqttc_options field: `*out` is
 * NULL when there are none, else the caller frees it. CONNECT's session expiry, maximum packet
 * size and topic alias maximum are left out: they are fields of mqttc_options. */
static inline mqttc_status cli_props_list(const struct cli_props *props, enum cli_cmd cmd, mqttc_properties **out) {
    mqttc_properties *list = NULL;
    mqttc_status st = MQTTC_OK;
    *out = NULL;
    for (size_t i = 0; i < props->count && st == MQTTC_OK; i++) {
        const struct cli_prop *p = &props->items[i];
        int id = p->info->id;
        if (p->cmd != cmd || (cmd == CLI_CMD_CONNECT && (id == MQTTC_PROP_SESSION_EXPIRY_INTERVAL ||
                                                         id == MQTTC_PROP_MAXIMUM_PACKET_SIZE ||
                                                         id == MQTTC_PROP_TOPIC_ALIAS_MAXIMUM)))
            continue;
        if (!list && (st = mqttc_properties_new(&list)) != MQTTC_OK)
            break;
        switch (p->info->type) {
        case CLI_PT_PAIR:
            st = mqttc_properties_add_user(list, p->key, p->value);
            break;
        case CLI_PT_STRING:
            st = mqttc_properties_set_string(list, id, p->value);
            break;
        case CLI_PT_BINARY:
            st = mqttc_properties_set_binary(list, id, p->value, strlen(p->value));
            break;
        default:
            st = mqttc_properties_set_int(list, id, p->integer);
            break;
        }
    }
    if (st != MQTTC_OK)
        mqttc_properties_free(list);
    else
        *out = list;
    return st;
}

#endif /* MQTTC_CLI_PROPS_H */
