/*
 * mqttc_reason_str against the specifications' tables: MQTT 5 table 2-6 (each code with the
 * packets that may carry it), MQTT 3.1.1 table 3.1 (CONNACK return codes) and section 3.9.3
 * (SUBACK return codes). Every code of every packet kind gets its name; every other code, and any
 * value that is not a packet kind, gets "unknown reason code", never NULL. No broker needed.
 * Prints "reason_str: ok (N names)"; exits non-zero on any wrong answer.
 */
#include "check.h"

#include <string.h>

/* The packet kinds, as bits, for the MQTT 5 table. */
enum {
    CONNACK = 1 << 0,
    PUBACK = 1 << 1,
    PUBREC = 1 << 2,
    PUBREL = 1 << 3,
    PUBCOMP = 1 << 4,
    SUBACK = 1 << 5,
    UNSUBACK = 1 << 6,
    DISCONNECT = 1 << 7,
    AUTH = 1 << 8,
};

static const struct {
    int bit;
    int kind;
} kinds[] = {
    {CONNACK, MQTTC_PACKET_CONNACK},   {PUBACK, MQTTC_PACKET_PUBACK},   {PUBREC, MQTTC_PACKET_PUBREC},
    {PUBREL, MQTTC_PACKET_PUBREL},     {PUBCOMP, MQTTC_PACKET_PUBCOMP}, {SUBACK, MQTTC_PACKET_SUBACK},
    {UNSUBACK, MQTTC_PACKET_UNSUBACK}, {DISCONNECT, MQTTC_PACKET_DISCONNECT}, {AUTH, MQTTC_PACKET_AUTH},
};
#define KINDS (sizeof kinds / sizeof kinds[0])

/* MQTT 5 table 2-6: code, name, packets. */
static const struct {
    unsigned code;
    const char *name;
    int packets;
} v5[] = {
    {0x00, "Success", CONNACK | PUBACK | PUBREC | PUBREL | PUBCOMP | UNSUBACK | AUTH},
    {0x00, "Normal disconnection", DISCONNECT},
    {0x00, "Granted QoS 0", SUBACK},
    {0x01, "Granted QoS 1", SUBACK},
    {0x02, "Granted QoS 2", SUBACK},
    {0x04, "Disconnect with Will Message", DISCONNECT},
    {0x10, "No matching subscribers", PUBACK | PUBREC},
    {0x11, "No subscription existed", UNSUBACK},
    {0x18, "Continue authentication", AUTH},
    {0x19, "Re-authenticate", AUTH},
    {0x80, "Unspecified error", CONNACK | PUBACK | PUBREC | SUBACK | UNSUBACK | DISCONNECT},
    {0x81, "Malformed Packet", CONNACK | DISCONNECT},
    {0x82, "Protocol Error", CONNACK | DISCONNECT},
    {0x83, "Implementation specific error", CONNACK | PUBACK | PUBREC | SUBACK | UNSUBACK | DISCONNECT},
    {0x84, "Unsupported Protocol Version", CONNACK},
    {0x85, "Client Identifier not valid", CONNACK},
    {0x86, "Bad User Name or Password", CONNACK},
    {0x87, "Not authorized", CONNACK | PUBACK | PUBREC | SUBACK | UNSUBACK | DISCONNECT},
    {0x88, "Server unavailable", CONNACK},
    {0x89, "Server busy", CONNACK | DISCONNECT},
    {0x8A, "Banned", CONNACK},
    {0x8B, "Server shutting down", DISCONNECT},
    {0x8C, "Bad authentication method", CONNACK | DISCONNECT},
    {0x8D, "Keep Alive timeout", DISCONNECT},
    {0x8E, "Session taken over", DISCONNECT},
    {0x8F, "Topic Filter invalid", SUBACK | UNSUBACK | DISCONNECT},
    {0x90, "Topic Name invalid", CONNACK | PUBACK | PUBREC | DISCONNECT},
    {0x91, "Packet Identifier in use", PUBACK | PUBREC | SUBACK | UNSUBACK},
    {0x92, "Packet Identifier not found", PUBREL | PUBCOMP},
    {0x93, "Receive Maximum exceeded", DISCONNECT},
    {0x94, "Topic Alias invalid", DISCONNECT},
    {0x95, "Packet too large", CONNACK | DISCONNECT},
    {0x96, "Message rate too high", DISCONNECT},
    {0x97, "Quota exceeded", CONNACK | PUBACK | PUBREC | SUBACK | DISCONNECT},
    {0x98, "Administrative action", DISCONNECT},
    {0x99, "Payload format invalid", CONNACK | PUBACK | PUBREC | DISCONNECT},
    {0x9A, "Retain not supported", CONNACK | DISCONNECT},
    {0x9B, "QoS not supported", CONNACK | DISCONNECT},
    {0x9C, "Use another server", CONNACK | DISCONNECT},
    {0x9D, "Server moved", CONNACK | DISCONNECT},
    {0x9E, "Shared Subscriptions not supported", SUBACK | DISCONNECT},
    {0x9F, "Connection rate exceeded", CONNACK | DISCONNECT},
    {0xA0, "Maximum connect time", DISCONNECT},
    {0xA1, "Subscription Identifiers not supported", SUBACK | DISCONNECT},
    {0xA2, "Wildcard Subscriptions not supported", SUBACK | DISCONNECT},
};

/* MQTT 3.1.1: CONNACK return codes (table 3.1) and SUBACK return codes (section 3.9.3). */
static const struct {
    unsigned code;
    const char *name;
    int kind;
} v311[] = {
    {0, "Connection Accepted", MQTTC_PACKET_CONNACK_V311},
    {1, "Connection Refused, unacceptable protocol version", MQTTC_PACKET_CONNACK_V311},
    {2, "Connection Refused, identifier rejected", MQTTC_PACKET_CONNACK_V311},
    {3, "Connection Refused, Server unavailable", MQTTC_PACKET_CONNACK_V311},
    {4, "Connection Refused, bad user name or password", MQTTC_PACKET_CONNACK_V311},
    {5, "Connection Refused, not authorized", MQTTC_PACKET_CONNACK_V311},
    {0x00, "Success - Maximum QoS 0", MQTTC_PACKET_SUBACK_V311},
    {0x01, "Success - Maximum QoS 1", MQTTC_PACKET_SUBACK_V311},
    {0x02, "Success - Maximum QoS 2", MQTTC_PACKET_SUBACK_V311},
    {0x80, "Failure", MQTTC_PACKET_SUBACK_V311},
};

static const char UNKNOWN[] = "unknown reason code";

/* The name the tables give `code` in `kind`, or UNKNOWN. */
static const char *expected(unsigned code, int kind) {
    for (size_t i = 0; i < sizeof v311 / sizeof v311[0]; i++)
        if (v311[i].kind == kind && v311[i].code == code)
            return v311[i].name;
    for (size_t k = 0; k < KINDS; k++)
        if (kinds[k].kind == kind)
            for (size_t i = 0; i < sizeof v5 / sizeof v5[0]; i++)
                if (v5[i].code == code && (v5[i].packets & kinds[k].bit))
                    return v5[i].name;
    return UNKNOWN;
}

int main(void) {
    int all_kinds[KINDS + 2];
    for (size_t k = 0; k < KINDS; k++)
        all_kinds[k] = kinds[k].kind;
    all_kinds[KINDS] = MQTTC_PACKET_CONNACK_V311;
    all_kinds[KINDS + 1] = MQTTC_PACKET_SUBACK_V311;
    int names = 0;
    for (size_t k = 0; k < KINDS + 2; k++) {
        const char *seen[256];
        int n = 0;
        for (unsigned code = 0; code < 256; code++) {
            const char *got = mqttc_reason_str((uint8_t)code, all_kinds[k]);
            const char *want = expected(code, all_kinds[k]);
            if (!got)
                FAIL("code 0x%02x kind 0x%x: NULL", code, all_kinds[k]);
            if (strcmp(got, want) != 0)
                FAIL("code 0x%02x kind 0x%x: \"%s\", want \"%s\"", code, all_kinds[k], got, want);
            if (want == UNKNOWN)
                continue;
            for (int i = 0; i < n; i++)
                if (strcmp(seen[i], got) == 0)
                    FAIL("kind 0x%x: \"%s\" names two codes", all_kinds[k], got);
            seen[n++] = got;
        }
        if (n == 0)
            FAIL("kind 0x%x: no code has a name", all_kinds[k]);
        names += n;
    }
    /* Values that are no packet kind: CONNECT, PUBLISH, SUBSCRIBE, out of range, 3.1.1 PUBACK. */
    static const int not_kinds[] = {-1, 0, 1, 3, 8, 10, 12, 13, 16, 0x400, 0x404, 0x40b, 0x7fffffff};
    for (size_t i = 0; i < sizeof not_kinds / sizeof not_kinds[0]; i++) {
        const char *got = mqttc_reason_str(0, not_kinds[i]);
        if (!got || strcmp(got, UNKNOWN) != 0)
            FAIL("kind %d: \"%s\", want \"%s\"", not_kinds[i], got ? got : "(null)", UNKNOWN);
    }
    printf("reason_str: ok (%d names)\n", names);
    return 0;
}
