/*
 * The message mqttc_pub and mqttc_rr publish: -m's text, -n's nothing, or all of -f's file or of
 * standard input (-s), loaded before connecting as mosquitto_pub loads it, with its messages.
 */
#ifndef MQTTC_CLI_PAYLOAD_H
#define MQTTC_CLI_PAYLOAD_H

#include "cli_common.h"

/* The payload of -m, -n, -f or -s; `owned` is what was read (freed by cli_payload_free). */
struct cli_payload {
    const void *data;
    size_t len;
    char *owned;
};

/* Reads all of `f` into `*out` (`*len` bytes, malloc'd); false on a read error or out of memory. */
static bool cli_read_all(FILE *f, char **out, size_t *len) {
    size_t cap = 0;
    char *data = NULL;
    *len = 0;
    for (;;) {
        if (*len == cap) {
            size_t ncap = cap ? cap * 2 : 4096;
            char *p = realloc(data, ncap);
            if (!p) {
                free(data);
                return false;
            }
            data = p;
            cap = ncap;
        }
        size_t n = fread(data + *len, 1, cap - *len, f);
        *len += n;
        if (n == 0) {
            if (ferror(f)) {
                free(data);
                return false;
            }
            *out = data;
            return true;
        }
    }
}

/* The payload, loaded before connecting as mosquitto_pub does, with its messages on failure. */
static bool cli_payload_load(const struct cli_config *cfg, struct cli_payload *p) {
    memset(p, 0, sizeof *p);
    switch (cfg->msg_mode) {
    case CLI_MSG_ARG:
        p->data = cfg->message;
        p->len = strlen(cfg->message);
        return true;
    case CLI_MSG_FILE: {
        FILE *f = fopen(cfg->message, "rb");
        if (!f) {
            cli_err("Error: Unable to open file \"%s\".\n", cfg->message);
            cli_err("Error loading input file \"%s\".\n", cfg->message);
            return false;
        }
        bool ok = cli_read_all(f, &p->owned, &p->len);
        fclose(f);
        if (!ok)
            cli_err("Error loading input file \"%s\".\n", cfg->message);
        p->data = p->owned;
        return ok;
    }
    case CLI_MSG_STDIN:
        if (!cli_read_all(stdin, &p->owned, &p->len)) {
            cli_err("Error loading input from stdin.\n");
            return false;
        }
        p->data = p->owned;
        if (p->len == 0) {
            cli_err("Error: Zero length input.\nError loading input from stdin.\n");
            free(p->owned);
            return false;
        }
        return true;
    default: /* -n: nothing; -l reads its lines later */
        return true;
    }
}

static void cli_payload_free(struct cli_payload *p) {
    free(p->owned);
    p->owned = NULL;
}

#endif /* MQTTC_CLI_PAYLOAD_H */
