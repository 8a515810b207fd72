/*
 * What a process knows of itself on Linux, for the fleet measurements of mqttc_bench's clients
 * mode and tests/c/scale.c: a field of /proc/self/status, and the descriptor limit raised to its
 * hard maximum.
 */
#ifndef MQTTC_PROC_SELF_H
#define MQTTC_PROC_SELF_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* A field of /proc/self/status in its unit (Threads: a count; VmRSS, VmHWM: KiB); -1 if absent. */
static long proc_status(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long value = -1;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, field, n) && line[n] == ':') {
            value = atol(line + n + 1);
            break;
        }
    if (f)
        fclose(f);
    return value;
}

/* Each connection needs a descriptor (and one in the broker, which has its own limit): more than
 * the usual 1024 for a fleet. */
static void raise_fd_limit(void) {
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
    }
}

#endif
