/*
 * A listening socket on a free loopback port that nothing accepts on: a broker that takes the TCP
 * connection and then says nothing (or that a test answers by hand after accept).
 */
#ifndef MQTTC_TEST_LISTEN_ANY_H
#define MQTTC_TEST_LISTEN_ANY_H

#include "check.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

static inline int listen_any(uint16_t *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 8) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        FAIL("listening socket");
    *port = ntohs(a.sin_port);
    return fd;
}

#endif
