/*
 * Failure reporting shared by the C test programs: print what failed with the library's last
 * error detail, and exit non-zero so the Rust test that runs the program fails.
 */
#ifndef MQTTC_TEST_CHECK_H
#define MQTTC_TEST_CHECK_H

#include <mqttclient.h>

#include <stdio.h>
#include <stdlib.h>

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        printf("FAIL: " __VA_ARGS__);                                                              \
        printf(" (%s)\n", mqttc_last_error());                                                     \
        exit(1);                                                                                   \
    } while (0)

/* A condition that must hold. */
#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond))                                                                               \
            FAIL(__VA_ARGS__);                                                                     \
    } while (0)

/* A call that must return MQTTC_OK. */
#define CHECK(call)                                                                                \
    do {                                                                                           \
        mqttc_status st_ = (call);                                                                 \
        if (st_ != MQTTC_OK)                                                                       \
            FAIL("%s -> %s", #call, mqttc_status_str(st_));                                        \
    } while (0)

#endif
