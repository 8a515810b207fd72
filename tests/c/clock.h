/*
 * Monotonic time and sleeping, shared by the C test programs that pace or time what they do.
 */
#ifndef MQTTC_TEST_CLOCK_H
#define MQTTC_TEST_CLOCK_H

#include <time.h>

/* Milliseconds on the monotonic clock (async-signal-safe: clock_gettime is). */
static inline long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static inline void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

#endif
