/*
 * What the two idle programs (idle_mqttclient.c, idle_libmosquitto.c) share: the command line,
 * the idle period and the VmRSS reading, so that they differ only in the library they call.
 */
#ifndef IDLE_COMMON_H
#define IDLE_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define IDLE_S 2

/* VmRSS of this process in kB, or -1. */
static long vm_rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "VmRSS:", 6)) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

static void usage(const char *prog) {
    fprintf(stderr, "usage: %s [--host H] [--port P]\n", prog);
    exit(2);
}

/* --host H --port P, defaults 127.0.0.1 and 1883; exits 2 on anything else. */
static void parse_args(int argc, char **argv, const char *prog, const char **host, long *port) {
    *host = "127.0.0.1";
    *port = 1883;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc)
            usage(prog);
        if (!strcmp(argv[i], "--host")) {
            *host = argv[i + 1];
        } else if (!strcmp(argv[i], "--port")) {
            char *end;
            *port = strtol(argv[i + 1], &end, 10);
            if (*end || end == argv[i + 1] || *port < 1 || *port > 65535)
                usage(prog);
        } else {
            usage(prog);
        }
    }
}

/* Stays idle for IDLE_S seconds (the library's threads settle), then prints the JSON line. */
static int idle_then_report(const char *prog, const char *lib) {
    struct timespec idle = {IDLE_S, 0};
    while (nanosleep(&idle, &idle) != 0) {
    }
    long rss = vm_rss_kb();
    if (rss < 0) {
        fprintf(stderr, "%s: no VmRSS in /proc/self/status\n", prog);
        return 1;
    }
    printf("{\"lib\":\"%s\",\"rss_kb\":%ld}\n", lib, rss);
    fflush(stdout);
    return 0;
}

#endif
