/*
 * Command-line errors of the peer programs in benches/ (paho_store, fleet_mosquitto, fleet_paho):
 * a message and the usage line on standard error, exit status 2, as mqttc_bench does.
 */
#ifndef MQTTC_BENCH_ARGS_H
#define MQTTC_BENCH_ARGS_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* The program and its usage line after "usage: ", set by main before parsing. */
static const char *bench_name, *bench_usage;

static void usage(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", bench_name);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: %s %s\n", bench_name, bench_usage);
    exit(2);
}

/* `text` as a whole number in [min, max], or a usage error naming `opt`. */
static long parse_long(const char *opt, const char *text, long min, long max) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < min || v > max)
        usage("%s %s: expected a number from %ld to %ld", opt, text, min, max);
    return v;
}

#endif
