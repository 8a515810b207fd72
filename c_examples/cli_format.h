/*
 * How mqttc_sub and mqttc_rr print a message, byte for byte as mosquitto_sub 2.0 does: the payload
 * alone, "topic payload" with -v, or the -F format language: %-directives with flags, field width
 * and precision, @-sequences passed to strftime(3), \-escapes, and the %j / %J JSON of a
 * mosquitto_sub built with cJSON (Debian's), with --pretty. The quirks of mosquitto_sub's printer
 * are kept on purpose (a width truncates %p and halves %x; "%-p" pads with as many blanks as the
 * payload has bytes), so that scripts see exactly what they saw.
 *
 * One thing differs by design: subscription identifiers, which the library sets on every MQTT 5
 * SUBSCRIBE for its own routing: %S and %j leave them out, as mosquitto_sub
 * prints a message of a subscription without one. The library resolves topic aliases and drops
 * the property, so %A is always blank (mosquitto brokers send clients none).
 *
 * Everything is static inline: cli_common.h includes this header to check -F while parsing, and
 * mqttc_pub, which prints no message, must not get unused-function warnings.
 */
#ifndef MQTTC_CLI_FORMAT_H
#define MQTTC_CLI_FORMAT_H

#include <mqttclient.h>

#include <float.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* What decides how a message is printed. */
struct cli_output {
    const char *format; /* -F, or NULL */
    bool verbose;       /* -v */
    bool eol;           /* a newline after each message: cleared by -N */
    bool pretty;        /* --pretty: %j and %J as cJSON_Print indents them */
    bool quiet;         /* --quiet: no error messages */
    int random_filter;  /* --random-filter: how many of 10000 messages are printed, at random */
};

/* ---- checking -F ------------------------------------------------------------------------- */

/* mosquitto_sub's check of a format string (client_shared.c, check_format): false with the
 * error's text in `msg` (without "Error: "), in the same order and words. */
static inline bool cli_format_check(const char *str, char *msg, size_t cap) {
    static const char directives[] = "%ACDEFIlmPpqRSrtjJUxX";
    size_t len = strlen(str);
    for (size_t i = 0; i < len; i++) {
        if (str[i] == '%') {
            /* Flags, width, '.' and precision; the directive must follow. */
            bool more = i < len - 1;
            if (more && (str[i + 1] == '0' || str[i + 1] == '-'))
                more = ++i < len - 1;
            while (more && str[i + 1] >= '0' && str[i + 1] <= '9')
                more = ++i < len - 1;
            if (more && str[i + 1] == '.') {
                more = ++i < len - 1;
                while (more && str[i + 1] >= '0' && str[i + 1] <= '9')
                    more = ++i < len - 1;
            }
            if (!more)
                goto incomplete;
            if (!strchr(directives, str[i + 1])) {
                snprintf(msg, cap, "Invalid format specifier '%c'.", str[i + 1]);
                return false;
            }
            i++;
        } else if (str[i] == '@') {
            if (i == len - 1)
                goto incomplete;
            i++;
        } else if (str[i] == '\\') {
            if (i == len - 1) {
                snprintf(msg, cap, "Incomplete escape specifier.");
                return false;
            }
            if (!strchr("\\0aenrtv", str[i + 1])) {
                snprintf(msg, cap, "Invalid escape specifier '%c'.", str[i + 1]);
                return false;
            }
            i++;
        }
    }
    return true;
incomplete:
    snprintf(msg, cap, "Incomplete format specifier.");
    return false;
}

/* ---- JSON as cJSON 1.7 writes it --------------------------------------------------------- */

/* Text being built; `failed` once memory ran out. `depth` and `pretty` are cJSON's print state. */
struct cli_json {
    char *buf;
    size_t len, cap;
    bool failed;
    bool pretty;
    size_t depth;
};

static inline void cli_json_put(struct cli_json *j, const void *bytes, size_t n) {
    if (j->failed)
        return;
    if (j->cap - j->len < n) {
        size_t cap = j->cap ? j->cap : 256;
        while (cap - j->len < n)
            cap *= 2;
        char *p = realloc(j->buf, cap);
        if (!p) {
            j->failed = true;
            return;
        }
        j->buf = p;
        j->cap = cap;
    }
    memcpy(j->buf + j->len, bytes, n);
    j->len += n;
}

static inline void cli_json_putc(struct cli_json *j, char c) {
    cli_json_put(j, &c, 1);
}

static inline void cli_json_tabs(struct cli_json *j, size_t n) {
    for (size_t i = 0; i < n; i++)
        cli_json_putc(j, '\t');
}

/* A string as cJSON holds it, a C string: the bytes up to the first NUL (or `len`), quoted, with
 * '"', '\\' and control characters escaped; other bytes, UTF-8 or not, as they are. */
static inline void cli_json_string(struct cli_json *j, const void *bytes, size_t len) {
    const unsigned char *s = bytes;
    cli_json_putc(j, '"');
    for (size_t i = 0; i < len && s[i]; i++) {
        static const char named[] = "\"\"\\\\\bb\ff\nn\rr\tt";
        const char *e = s[i] < 32 || s[i] == '"' || s[i] == '\\' ? memchr(named, s[i], sizeof named - 1) : NULL;
        if (e && (e - named) % 2 == 0) {
            char esc[2] = {'\\', e[1]};
            cli_json_put(j, esc, 2);
        } else if (s[i] < 32) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04x", s[i]);
            cli_json_put(j, esc, 6);
        } else {
            cli_json_putc(j, (char)s[i]);
        }
    }
    cli_json_putc(j, '"');
}

static inline void cli_json_cstring(struct cli_json *j, const char *s) {
    cli_json_string(j, s, strlen(s));
}

static inline double cli_json_abs(double d) {
    return d < 0 ? -d : d;
}

/* cJSON's print_number: 15 significant digits, or 17 when 15 do not give the number back. */
static inline void cli_json_number(struct cli_json *j, double d) {
    char b[32];
    if (!(d - d == 0)) { /* NaN or infinite */
        snprintf(b, sizeof b, "null");
    } else {
        double back;
        snprintf(b, sizeof b, "%1.15g", d);
        double a = cli_json_abs(d), c;
        if (sscanf(b, "%lg", &back) != 1 ||
            !(cli_json_abs(back - d) <= ((c = cli_json_abs(back)) > a ? c : a) * DBL_EPSILON))
            snprintf(b, sizeof b, "%1.17g", d);
    }
    cli_json_put(j, b, strlen(b));
}

/* Objects and arrays: open, then before the n-th member (0 first) cli_json_member or
 * cli_json_element, then close with the number of members. */
static inline void cli_json_open(struct cli_json *j, char bracket) {
    cli_json_putc(j, bracket);
    j->depth++;
    if (bracket == '{' && j->pretty)
        cli_json_putc(j, '\n');
}

static inline void cli_json_member(struct cli_json *j, size_t n, const char *key) {
    if (n > 0)
        cli_json_put(j, ",\n", j->pretty ? 2 : 1);
    if (j->pretty)
        cli_json_tabs(j, j->depth);
    cli_json_cstring(j, key);
    cli_json_put(j, ":\t", j->pretty ? 2 : 1);
}

static inline void cli_json_element(struct cli_json *j, size_t n) {
    if (n > 0)
        cli_json_put(j, ", ", j->pretty ? 2 : 1);
}

static inline void cli_json_close(struct cli_json *j, char bracket, size_t members) {
    if (bracket == '}' && j->pretty) {
        if (members > 0)
            cli_json_putc(j, '\n');
        cli_json_tabs(j, j->depth - 1);
    }
    cli_json_putc(j, bracket);
    j->depth--;
}

/* ---- a payload read as JSON and written again, as cJSON_ParseWithOpts + cJSON_Print(Unformatted)
 * do for %J: the same input is accepted (leading UTF-8 BOM, every byte up to 32 as white space,
 * strtod numbers, 1000 levels of nesting) and the same text comes out. */

#define CLI_JSON_NESTING_LIMIT 1000

struct cli_json_in {
    const unsigned char *content;
    size_t length, offset, depth;
};

static inline bool cli_jin_can(const struct cli_json_in *in, size_t index) {
    return in->offset + index < in->length;
}

static inline const unsigned char *cli_jin_at(const struct cli_json_in *in) {
    return in->content + in->offset;
}

static inline void cli_jin_skip_space(struct cli_json_in *in) {
    if (!cli_jin_can(in, 0))
        return;
    while (cli_jin_can(in, 0) && cli_jin_at(in)[0] <= 32)
        in->offset++;
    if (in->offset == in->length)
        in->offset--;
}

static inline unsigned cli_jin_hex4(const unsigned char *s) {
    unsigned h = 0;
    for (int i = 0; i < 4; i++) {
        if (s[i] >= '0' && s[i] <= '9')
            h += (unsigned)(s[i] - '0');
        else if (s[i] >= 'A' && s[i] <= 'F')
            h += 10u + (unsigned)(s[i] - 'A');
        else if (s[i] >= 'a' && s[i] <= 'f')
            h += 10u + (unsigned)(s[i] - 'a');
        else
            return 0; /* cJSON reads a bad digit as code point 0 */
        if (i < 3)
            h <<= 4;
    }
    return h;
}

/* A \uXXXX (or surrogate pair) at `p` as UTF-8 at `*out`; the input length it took, 0 if bad. */
static inline size_t cli_jin_utf16(const unsigned char *p, const unsigned char *end, unsigned char **out) {
    if (end - p < 6)
        return 0;
    unsigned long cp = cli_jin_hex4(p + 2);
    size_t taken = 6;
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return 0;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        const unsigned char *second = p + 6;
        if (end - second < 6 || second[0] != '\\' || second[1] != 'u')
            return 0;
        unsigned low = cli_jin_hex4(second + 2);
        if (low < 0xDC00 || low > 0xDFFF)
            return 0;
        cp = 0x10000 + (((cp & 0x3FF) << 10) | (low & 0x3FF));
        taken = 12;
    }
    int n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    static const unsigned char first_mark[] = {0, 0, 0xC0, 0xE0, 0xF0};
    for (int i = n - 1; i > 0; i--) {
        (*out)[i] = (unsigned char)((cp | 0x80) & 0xBF);
        cp >>= 6;
    }
    (*out)[0] = (unsigned char)(n > 1 ? (cp | first_mark[n]) & 0xFF : cp & 0x7F);
    *out += n;
    return taken;
}

/* A string at the input's offset, decoded into a new NUL-terminated buffer (which the caller
 * frees), or NULL when it is not a valid string (or memory ran out: then `*nomem`). */
static inline char *cli_jin_string(struct cli_json_in *in, bool *nomem) {
    const unsigned char *start = cli_jin_at(in);
    if (start[0] != '"')
        return NULL;
    const unsigned char *end = start + 1;
    size_t skipped = 0;
    while ((size_t)(end - in->content) < in->length && *end != '"') {
        if (end[0] == '\\') {
            if ((size_t)(end + 1 - in->content) >= in->length)
                return NULL;
            skipped++;
            end++;
        }
        end++;
    }
    if ((size_t)(end - in->content) >= in->length || *end != '"')
        return NULL;
    unsigned char *text = malloc((size_t)(end - start) - skipped + 1);
    if (!text) {
        *nomem = true;
        return NULL;
    }
    unsigned char *o = text;
    for (const unsigned char *p = start + 1; p < end;) {
        if (*p != '\\') {
            *o++ = *p++;
            continue;
        }
        static const char escapes[] = "b\bf\fn\nr\rt\t\"\"\\\\//";
        const char *e = memchr(escapes, p[1], sizeof escapes - 1);
        size_t taken = 2;
        if (e && (e - escapes) % 2 == 0)
            *o++ = (unsigned char)e[1];
        else if (p[1] != 'u' || (taken = cli_jin_utf16(p, end, &o)) == 0) {
            free(text);
            return NULL;
        }
        p += taken;
    }
    *o = '\0';
    in->offset = (size_t)(end - in->content) + 1;
    return (char *)text;
}

static inline bool cli_jin_number(struct cli_json_in *in, struct cli_json *out) {
    char digits[64];
    size_t i;
    for (i = 0; i < sizeof digits - 1 && cli_jin_can(in, i); i++) {
        unsigned char c = cli_jin_at(in)[i];
        if (!strchr("0123456789+-eE.", c) || c == '\0')
            break;
        digits[i] = (char)c;
    }
    digits[i] = '\0';
    char *after;
    double d = strtod(digits, &after);
    if (after == digits)
        return false;
    cli_json_number(out, d);
    in->offset += (size_t)(after - digits);
    return true;
}

static inline bool cli_jin_value(struct cli_json_in *in, struct cli_json *out, bool *nomem);

/* An array ('[') or an object ('{') and its members. */
static inline bool cli_jin_container(struct cli_json_in *in, struct cli_json *out, bool *nomem, char open) {
    char close = open == '[' ? ']' : '}';
    if (in->depth >= CLI_JSON_NESTING_LIMIT)
        return false;
    in->depth++;
    in->offset++;
    cli_jin_skip_space(in);
    cli_json_open(out, open);
    size_t n = 0;
    if (!(cli_jin_can(in, 0) && cli_jin_at(in)[0] == (unsigned char)close)) {
        if (!cli_jin_can(in, 0))
            return false;
        in->offset--;
        do {
            in->offset++;
            cli_jin_skip_space(in);
            if (open == '[') {
                cli_json_element(out, n);
            } else {
                char *key = cli_jin_string(in, nomem);
                if (!key)
                    return false;
                cli_json_member(out, n, key);
                free(key);
                cli_jin_skip_space(in);
                if (!cli_jin_can(in, 0) || cli_jin_at(in)[0] != ':')
                    return false;
                in->offset++;
                cli_jin_skip_space(in);
            }
            if (!cli_jin_value(in, out, nomem))
                return false;
            cli_jin_skip_space(in);
            n++;
        } while (cli_jin_can(in, 0) && cli_jin_at(in)[0] == ',');
        if (!cli_jin_can(in, 0) || cli_jin_at(in)[0] != (unsigned char)close)
            return false;
    }
    in->depth--;
    cli_json_close(out, close, n);
    in->offset++;
    return true;
}

static inline bool cli_jin_value(struct cli_json_in *in, struct cli_json *out, bool *nomem) {
    static const char *const literals[] = {"null", "false", "true"};
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(literals[i]);
        if (in->offset + n <= in->length && strncmp((const char *)cli_jin_at(in), literals[i], n) == 0) {
            cli_json_put(out, literals[i], n);
            in->offset += n;
            return true;
        }
    }
    if (!cli_jin_can(in, 0))
        return false;
    unsigned char c = cli_jin_at(in)[0];
    if (c == '"') {
        char *s = cli_jin_string(in, nomem);
        if (!s)
            return false;
        cli_json_cstring(out, s);
        free(s);
        return true;
    }
    if (c == '-' || (c >= '0' && c <= '9'))
        return cli_jin_number(in, out);
    if (c == '[' || c == '{')
        return cli_jin_container(in, out, nomem, (char)c);
    return false;
}

/* Writes the payload, which must be JSON, as cJSON would print it after parsing it with
 * cJSON_ParseWithOpts(payload, &end, true) and checking that `end` is its last byte: so a payload
 * with a NUL byte is refused too. False when it is not JSON (`*nomem` if memory ran out). */
static inline bool cli_json_reprint(struct cli_json *out, const uint8_t *payload, size_t len, bool *nomem) {
    char *text = malloc(len + 1);
    if (!text) {
        *nomem = true;
        return false;
    }
    memcpy(text, payload, len);
    text[len] = '\0';
    struct cli_json_in in = {(const unsigned char *)text, strlen(text) + 1, 0, 0};
    if (cli_jin_can(&in, 4) && strncmp(text, "\xEF\xBB\xBF", 3) == 0)
        in.offset += 3;
    cli_jin_skip_space(&in);
    bool ok = cli_jin_value(&in, out, nomem);
    if (ok) {
        cli_jin_skip_space(&in);
        ok = in.offset < in.length && cli_jin_at(&in)[0] == '\0' && in.offset == len;
    }
    free(text);
    return ok;
}

/* ---- the message ------------------------------------------------------------------------- */

/* The wall clock, local time and nanoseconds, read once per %-directive or -F line as
 * mosquitto_sub reads it. */
static inline bool cli_now(const struct cli_output *o, struct tm *tm, long *ns) {
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || !localtime_r(&ts.tv_sec, tm)) {
        if (!o->quiet)
            fputs("Error obtaining system time.\n", stderr);
        return false;
    }
    *ns = ts.tv_nsec;
    return true;
}

static inline bool cli_prop_int(const mqttc_message *msg, int id, uint32_t *v) {
    return mqttc_properties_get_int(msg->properties, id, v) == MQTTC_OK;
}

static inline bool cli_prop_string(const mqttc_message *msg, int id, const char **v) {
    return mqttc_properties_get_string(msg->properties, id, v) == MQTTC_OK;
}

/* The message's properties as the "properties" member of mosquitto_sub's JSON, there when the
 * message has any: in the order of the packet, the user properties gathered in one
 * "user-properties" object where the first one stood. Subscription identifiers are the library's
 * (see the top), and left out. */
static inline void cli_json_properties(struct cli_json *j, const mqttc_message *msg, size_t *members) {
    size_t count = 0, shown = 0;
    bool any = false, users_done = false;
    mqttc_property p;
    p.struct_size = sizeof p;
    mqttc_properties_count(msg->properties, &count);
    for (size_t i = 0; i < count && mqttc_properties_at(msg->properties, i, &p) == MQTTC_OK; i++)
        any = any || p.id != MQTTC_PROP_SUBSCRIPTION_IDENTIFIER;
    if (!any)
        return;
    cli_json_member(j, (*members)++, "properties");
    cli_json_open(j, '{');
    for (size_t i = 0; i < count && mqttc_properties_at(msg->properties, i, &p) == MQTTC_OK; i++) {
        switch (p.id) {
        case MQTTC_PROP_PAYLOAD_FORMAT_INDICATOR:
        case MQTTC_PROP_MESSAGE_EXPIRY_INTERVAL:
            cli_json_member(j, shown++,
                            p.id == MQTTC_PROP_PAYLOAD_FORMAT_INDICATOR ? "payload-format-indicator"
                                                                        : "message-expiry-interval");
            cli_json_number(j, p.integer);
            break;
        case MQTTC_PROP_CONTENT_TYPE:
        case MQTTC_PROP_RESPONSE_TOPIC:
            cli_json_member(j, shown++, p.id == MQTTC_PROP_CONTENT_TYPE ? "content-type" : "response-topic");
            cli_json_cstring(j, p.string);
            break;
        case MQTTC_PROP_CORRELATION_DATA:
            cli_json_member(j, shown++, "correlation-data");
            cli_json_string(j, p.binary, p.binary_len);
            break;
        case MQTTC_PROP_USER_PROPERTY: {
            if (users_done)
                break;
            cli_json_member(j, shown++, "user-properties");
            cli_json_open(j, '{');
            size_t users = 0;
            mqttc_property u;
            u.struct_size = sizeof u;
            for (size_t k = i; k < count && mqttc_properties_at(msg->properties, k, &u) == MQTTC_OK; k++) {
                if (u.id == MQTTC_PROP_USER_PROPERTY) {
                    cli_json_member(j, users++, u.name);
                    cli_json_cstring(j, u.string);
                }
            }
            cli_json_close(j, '}', users);
            users_done = true;
            break;
        }
        default: /* not in mosquitto_sub's JSON */
            break;
        }
    }
    cli_json_close(j, '}', shown);
}

/* %j (`raw` false: the payload as a JSON string) and %J (`raw`: the payload is JSON itself), as
 * mosquitto_sub's json_print with cJSON. */
static inline void cli_print_json(FILE *out, const struct cli_output *o, const mqttc_message *msg, bool raw) {
    struct tm tm;
    long ns;
    if (!cli_now(o, &tm, &ns))
        return;
    /* mosquitto_sub's own shape: "...T21:48:00.123456Z+0100". */
    char tst[100], us[24];
    strftime(tst, sizeof tst, "%Y-%m-%dT%H:%M:%S.000000Z%z", &tm);
    snprintf(us, sizeof us, "%06ld", ns / 1000);
    memcpy(&tst[20], us, 6);

    struct cli_json j = {NULL, 0, 0, false, o->pretty, 0};
    size_t n = 0;
    cli_json_open(&j, '{');
    cli_json_member(&j, n++, "tst");
    cli_json_cstring(&j, tst);
    cli_json_member(&j, n++, "topic");
    cli_json_cstring(&j, msg->topic);
    cli_json_member(&j, n++, "qos");
    cli_json_number(&j, msg->qos);
    cli_json_member(&j, n++, "retain");
    cli_json_number(&j, msg->retain);
    cli_json_member(&j, n++, "payloadlen");
    cli_json_number(&j, (double)msg->payload_len);
    if (msg->qos > 0) {
        cli_json_member(&j, n++, "mid");
        cli_json_number(&j, msg->packet_id);
    }
    cli_json_properties(&j, msg, &n);
    cli_json_member(&j, n++, "payload");
    bool nomem = false, ok = true;
    if (msg->payload_len == 0)
        cli_json_put(&j, "null", 4); /* libmosquitto gives no payload buffer for an empty one */
    else if (raw)
        ok = cli_json_reprint(&j, msg->payload, msg->payload_len, &nomem);
    else
        cli_json_string(&j, msg->payload, msg->payload_len);
    cli_json_close(&j, '}', n);
    if (j.failed || nomem) {
        if (!o->quiet)
            fputs("Error: Out of memory.\n", stderr);
    } else if (!ok) {
        if (!o->quiet)
            fprintf(stderr, "Error: Message payload is not valid JSON on topic %s.\n", msg->topic);
    } else {
        fwrite(j.buf, 1, j.len, out);
    }
    free(j.buf);
}

/* One directive's flags: '-' alignment, '0' or ' ' padding, field width, precision (-1: none). */
struct cli_spec {
    char align;
    char pad;
    int width;
    int precision;
};

static inline void cli_print_blank(FILE *out, char pad, int width) {
    for (int i = 0; i < width; i++)
        fputc(pad, out);
}

static inline void cli_print_int(FILE *out, const struct cli_spec *s, int value) {
    if (s->width == 0)
        fprintf(out, "%d", value);
    else if (s->align == '-')
        fprintf(out, "%-*d", s->width, value);
    else if (s->pad == '0')
        fprintf(out, "%0*d", s->width, value);
    else
        fprintf(out, "%*d", s->width, value);
}

static inline void cli_print_str(FILE *out, const struct cli_spec *s, const char *value) {
    int width = s->align == '-' ? -s->width : s->width;
    if (s->precision == -1)
        fprintf(out, "%*s", width, value);
    else
        fprintf(out, "%*.*s", width, s->precision, value);
}

/* mosquitto_sub's write_payload: `hex` 0 raw, 1 lower-case, 2 upper-case hexadecimal. */
static inline void cli_print_payload(FILE *out, const mqttc_message *msg, int hex, const struct cli_spec *s) {
    int len = (int)msg->payload_len, padlen;
    if (s->width > 0) {
        if (len > s->width)
            len = s->width;
        if (hex > 0) {
            len /= 2;
            padlen = s->width - len * 2;
        } else {
            padlen = s->width - len;
        }
    } else {
        padlen = s->width - len;
    }
    if (s->align != '-')
        cli_print_blank(out, s->pad, padlen);
    if (hex == 0)
        fwrite(msg->payload, 1, (size_t)len, out);
    for (int i = 0; hex > 0 && i < len; i++)
        fprintf(out, hex == 1 ? "%02x" : "%02X", msg->payload[i]);
    if (s->align == '-')
        fprintf(out, "%*s", padlen, "");
}

/* A %-directive and its time: mosquitto_sub reads the clock for each one that needs it. */
static inline void cli_print_time(FILE *out, const struct cli_output *o, char c, const struct cli_spec *s) {
    struct tm tm;
    long ns;
    char buf[100];
    if (!cli_now(o, &tm, &ns))
        return;
    if (c == 'U') {
        if (strftime(buf, sizeof buf, "%s", &tm) != 0)
            fprintf(out, "%s.%09ld", buf, ns);
    } else if (strftime(buf, sizeof buf, "%FT%T%z", &tm) != 0) {
        cli_print_str(out, s, buf);
    } else {
        cli_print_blank(out, ' ', s->width);
    }
}

static inline void cli_print_directive(FILE *out, const struct cli_output *o, const mqttc_message *msg, char c,
                                       const struct cli_spec *s) {
    uint32_t v;
    const char *str;
    const uint8_t *bytes;
    size_t n;
    switch (c) {
    case '%':
        fputc('%', out);
        break;
    case 'A':
    case 'E':
    case 'F':
        if (cli_prop_int(msg, c == 'A' ? MQTTC_PROP_TOPIC_ALIAS
                              : c == 'E' ? MQTTC_PROP_MESSAGE_EXPIRY_INTERVAL
                                         : MQTTC_PROP_PAYLOAD_FORMAT_INDICATOR, &v))
            cli_print_int(out, s, (int)v);
        else
            cli_print_blank(out, s->pad, s->width);
        break;
    case 'C':
        if (cli_prop_string(msg, MQTTC_PROP_CONTENT_TYPE, &str))
            cli_print_str(out, s, str);
        else
            cli_print_blank(out, ' ', s->width);
        break;
    case 'D':
        if (mqttc_properties_get_binary(msg->properties, MQTTC_PROP_CORRELATION_DATA, &bytes, &n) == MQTTC_OK)
            fwrite(bytes, 1, n, out);
        break;
    case 'I':
    case 'U':
        cli_print_time(out, o, c, s);
        break;
    case 'j':
    case 'J':
        cli_print_json(out, o, msg, c == 'J');
        break;
    case 'l':
        cli_print_int(out, s, (int)msg->payload_len);
        break;
    case 'm':
        cli_print_int(out, s, msg->packet_id);
        break;
    case 'P': {
        mqttc_property p;
        p.struct_size = sizeof p;
        bool first = true;
        for (size_t i = 0; mqttc_properties_at(msg->properties, i, &p) == MQTTC_OK; i++) {
            if (p.id == MQTTC_PROP_USER_PROPERTY) {
                fprintf(out, "%s%s:%s", first ? "" : " ", p.name, p.string);
                first = false;
            }
        }
        break;
    }
    case 'p':
    case 'x':
    case 'X':
        cli_print_payload(out, msg, c == 'p' ? 0 : c == 'x' ? 1 : 2, s);
        break;
    case 'q':
        fputc('0' + msg->qos, out);
        break;
    case 'R':
        if (cli_prop_string(msg, MQTTC_PROP_RESPONSE_TOPIC, &str))
            cli_print_str(out, s, str);
        break;
    case 'r':
        fputc(msg->retain ? '1' : '0', out);
        break;
    case 'S':
        cli_print_blank(out, s->pad, s->width); /* the identifiers are the library's */
        break;
    case 't':
        cli_print_str(out, s, msg->topic);
        break;
    default:
        break;
    }
}

/* mosquitto_sub's formatted_print, the same walk over the format (which cli_format_check passed). */
static inline void cli_print_formatted(FILE *out, const struct cli_output *o, const mqttc_message *msg) {
    const char *f = o->format;
    size_t len = strlen(f);
    struct tm tm;
    long ns = 0;
    bool have_time = false;
    for (size_t i = 0; i < len; i++) {
        if (f[i] == '%') {
            struct cli_spec s = {0, ' ', 0, -1};
            if (i == len - 1)
                continue;
            i++;
            if (f[i] == '-') {
                s.align = '-';
                if (i < len - 1)
                    i++;
            }
            if (f[i] == '0') {
                s.pad = '0';
                if (i < len - 1)
                    i++;
            }
            for (; i < len - 1 && f[i] >= '0' && f[i] <= '9'; i++)
                s.width = s.width < INT_MAX / 10 ? s.width * 10 + (f[i] - '0') : s.width;
            if (f[i] == '.' && i < len - 1) {
                i++;
                s.precision = 0;
                for (; i < len - 1 && f[i] >= '0' && f[i] <= '9'; i++)
                    s.precision = s.precision < INT_MAX / 10 ? s.precision * 10 + (f[i] - '0') : s.precision;
            }
            cli_print_directive(out, o, msg, f[i], &s);
        } else if (f[i] == '@') {
            if (i == len - 1)
                continue;
            i++;
            if (f[i] == '@') {
                fputc('@', out);
                continue;
            }
            if (!have_time && !(have_time = cli_now(o, &tm, &ns)))
                return;
            char strf[3] = {'%', f[i], '\0'}, buf[100];
            if (f[i] == 'N')
                fprintf(out, "%09ld", ns);
            else if (strftime(buf, sizeof buf, strf, &tm) != 0)
                fputs(buf, out);
        } else if (f[i] == '\\') {
            static const char escapes[] = "\\\\0\0a\ae\033n\nr\rt\tv\v";
            const char *e = i < len - 1 ? memchr(escapes, f[++i], sizeof escapes - 1) : NULL;
            if (e && (e - escapes) % 2 == 0)
                fputc(e[1], out);
        } else {
            fputc(f[i], out);
        }
    }
    if (o->eol)
        fputc('\n', out);
    fflush(out);
}

/* mosquitto_sub's print_message: --random-filter's draw, then -F, else -v's "topic payload"
 * ("topic (null)" for an empty payload, left out with -N), else the payload (nothing for an empty
 * one). */
static inline void cli_print_message(FILE *out, const struct cli_output *o, const mqttc_message *msg) {
    if (o->random_filter < 10000 && rand() % 10000 >= o->random_filter)
        return;
    if (o->format) {
        cli_print_formatted(out, o, msg);
        return;
    }
    if (msg->payload_len > 0) {
        if (o->verbose)
            fprintf(out, "%s ", msg->topic);
        fwrite(msg->payload, 1, msg->payload_len, out);
        if (o->eol)
            fputc('\n', out);
    } else if (o->verbose && o->eol) {
        fprintf(out, "%s (null)\n", msg->topic);
    }
    fflush(out);
}

#endif /* MQTTC_CLI_FORMAT_H */
