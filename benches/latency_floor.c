/* latency_floor: the least client CPU a latency-mode round trip can cost against this broker.
 *
 * An ideal client for compare.py's latency mode (ping-pong: publish one message to bench/ping,
 * wait until the subscriber has it, N times), with two raw MQTT 3.1.1 connections as every
 * client in the comparison has: it writes pre-encoded packets and reads exactly the bytes it
 * expects, with no library, no allocation, no timers and no wakeups between threads. Its CPU per
 * round trip is what the kernel charges for the round trip's packets and sleeps: no client can
 * spend less with the same packets, so the ratio of this floor to libmosquitto's CPU bounds the
 * ratio any library can reach.
 *
 * Usage: latency_floor --port P --mode latency --qos 0|1 --count N --size BYTES [--inflight W]
 *                      --wait block|epoll
 * (the broker is on 127.0.0.1, as compare.py's is)
 *   block  one blocking recv per packet: the fewest system calls (send, recv)
 *   epoll  the shape of an event loop (libmosquitto's, tokio's): non-blocking reads, one
 *          epoll_wait before the reads it reports, every ready socket read into its own buffer
 * Prints one JSON line as the compare.py clients do ("lib" is "floor-block" or "floor-epoll").
 *
 * QoS 0 and 1 only: at QoS 2 the broker forwards a message when the publisher's PUBREL arrives,
 * and a client's best order for the two connections' eight packets depends on timing, so no
 * fixed sequence is a floor there. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TOPIC "bench/ping"
#define MAX_PACKET 4096

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("latency_floor: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* One connection: its socket and the bytes read from it but not yet consumed. */
struct conn {
    int fd;
    size_t have;
    unsigned char buf[2 * MAX_PACKET];
};

static int epfd = -1; /* epoll mode: both sockets, level-triggered; -1 in block mode */
static struct conn *conns[2];

static void send_all(struct conn *c, const void *p, size_t n) {
    const unsigned char *b = p;
    while (n) {
        ssize_t k = send(c->fd, b, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            die("send: %s", k < 0 ? strerror(errno) : "connection closed");
        b += k;
        n -= (size_t)k;
    }
}

/* Reads what the socket has into the connection's buffer (in epoll mode without waiting: the
 * sockets stay blocking for send, and only these reads are not); false if it had nothing. */
static int fill(struct conn *c) {
    ssize_t k = recv(c->fd, c->buf + c->have, sizeof c->buf - c->have, epfd < 0 ? 0 : MSG_DONTWAIT);
    if (k < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (k <= 0)
        die("recv: %s", k < 0 ? strerror(errno) : "the broker closed the connection");
    c->have += (size_t)k;
    return 1;
}

/* Waits until `n` bytes from `c` are in, copies them to `out` and consumes them. */
static void expect(struct conn *c, unsigned char *out, size_t n) {
    while (c->have < n) {
        if (epfd < 0) {
            fill(c);
            continue;
        }
        struct epoll_event ev[2];
        int k = epoll_wait(epfd, ev, 2, 5000);
        if (k < 0 && errno != EINTR)
            die("epoll_wait: %s", strerror(errno));
        if (k == 0)
            die("nothing from the broker for 5 s");
        for (int i = 0; i < k; i++)
            fill(conns[ev[i].data.u32]);
    }
    memcpy(out, c->buf, n);
    c->have -= n;
    memmove(c->buf, c->buf + n, c->have);
}

/* MQTT's variable-length "remaining length"; returns the bytes written. */
static size_t put_length(unsigned char *p, size_t len) {
    size_t i = 0;
    do {
        unsigned char b = len % 128;
        len /= 128;
        p[i++] = b | (len ? 0x80 : 0);
    } while (len);
    return i;
}

static void put_string(unsigned char **p, const char *s) {
    size_t n = strlen(s);
    *(*p)++ = (unsigned char)(n >> 8);
    *(*p)++ = (unsigned char)n;
    memcpy(*p, s, n);
    *p += n;
}

static void connect_mqtt(struct conn *c, int port, const char *id) {
    c->have = 0;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        die("socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a))
        die("connect to 127.0.0.1:%d: %s", port, strerror(errno));
    int one = 1;
    if (setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one))
        die("TCP_NODELAY: %s", strerror(errno));
    unsigned char body[64], *p = body, pkt[80];
    put_string(&p, "MQTT");
    *p++ = 4;    /* protocol level 3.1.1 */
    *p++ = 0x02; /* clean session */
    *p++ = 0;
    *p++ = 60; /* keep alive, s */
    put_string(&p, id);
    size_t n = 0;
    pkt[n++] = 0x10;
    n += put_length(pkt + n, (size_t)(p - body));
    memcpy(pkt + n, body, (size_t)(p - body));
    send_all(c, pkt, n + (size_t)(p - body));
    unsigned char connack[4];
    expect(c, connack, 4);
    if (connack[0] != 0x20 || connack[3] != 0)
        die("%s: CONNACK refused (code %d)", id, connack[3]);
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

int main(int argc, char **argv) {
    int port = 1883, qos = 0;
    long count = 20000, size = 64;
    const char *wait = NULL, *mode = "latency";
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            die("%s: missing value", argv[i]);
        const char *opt = argv[i], *val = argv[++i];
        if (!strcmp(opt, "--port"))
            port = atoi(val);
        else if (!strcmp(opt, "--qos"))
            qos = atoi(val);
        else if (!strcmp(opt, "--count"))
            count = atol(val);
        else if (!strcmp(opt, "--size"))
            size = atol(val);
        else if (!strcmp(opt, "--mode"))
            mode = val;
        else if (!strcmp(opt, "--wait"))
            wait = val;
        else if (strcmp(opt, "--inflight")) /* accepted, as compare.py passes it; one message is in flight */
            die("unknown option %s", opt);
    }
    if (strcmp(mode, "latency"))
        die("--mode %s: only latency", mode);
    if (qos != 0 && qos != 1)
        die("--qos %d: 0 or 1 (see the top of benches/latency_floor.c)", qos);
    if (!wait || (strcmp(wait, "block") && strcmp(wait, "epoll")))
        die("--wait block|epoll is required");
    if (count < 1 || size < 0 || size > MAX_PACKET - 32 || port <= 0 || port > 65535)
        die("bad --count, --size (at most %d) or --port", MAX_PACKET - 32);

    static struct conn sub, pub;
    conns[0] = &sub;
    conns[1] = &pub;
    char id[64];
    snprintf(id, sizeof id, "floor-sub-%d", (int)getpid());
    connect_mqtt(&sub, port, id);
    snprintf(id, sizeof id, "floor-pub-%d", (int)getpid());
    connect_mqtt(&pub, port, id);

    unsigned char pkt[MAX_PACKET], in[MAX_PACKET];
    unsigned char subscribe[] = {0x82, 12, 0, 1, 0, 7, 'b', 'e', 'n', 'c', 'h', '/', '#', (unsigned char)qos};
    send_all(&sub, subscribe, sizeof subscribe);
    expect(&sub, in, 5);
    if (in[0] != 0x90 || in[4] != qos)
        die("SUBACK: granted 0x%02x, asked QoS %d", in[4], qos);

    /* The PUBLISH, encoded once; at QoS 1 its packet id is rewritten for every message. */
    size_t rl = 2 + strlen(TOPIC) + (qos ? 2 : 0) + (size_t)size, n = 0;
    pkt[n++] = (unsigned char)(0x30 | (qos << 1));
    n += put_length(pkt + n, rl);
    unsigned char *p = pkt + n;
    put_string(&p, TOPIC);
    size_t id_at = (size_t)(p - pkt);
    p += qos ? 2 : 0;
    memset(p, 'x', (size_t)size);
    size_t total = n + rl; /* the broker forwards it to the subscriber with the same length */

    if (!strcmp(wait, "epoll")) {
        epfd = epoll_create1(EPOLL_CLOEXEC);
        if (epfd < 0)
            die("epoll_create1: %s", strerror(errno));
        for (uint32_t i = 0; i < 2; i++) {
            struct epoll_event e = {.events = EPOLLIN, .data.u32 = i};
            if (epoll_ctl(epfd, EPOLL_CTL_ADD, conns[i]->fd, &e))
                die("epoll_ctl: %s", strerror(errno));
        }
    }

    double *lat = malloc(sizeof(double) * (size_t)count);
    if (!lat)
        die("out of memory");
    double t0 = now_s();
    for (long i = 0; i < count; i++) {
        double s = now_s();
        unsigned pid = (unsigned)(i % 65535) + 1;
        if (qos) {
            pkt[id_at] = (unsigned char)(pid >> 8);
            pkt[id_at + 1] = (unsigned char)pid;
        }
        send_all(&pub, pkt, total);
        expect(&sub, in, total);
        lat[i] = now_s() - s;
        if (in[total - 1] != 'x' && size > 0)
            die("message %ld arrived damaged", i);
        if (qos) {
            /* The subscriber's PUBACK, with the broker's packet id; then the publisher's. */
            unsigned char ack[4] = {0x40, 2, in[id_at], in[id_at + 1]};
            send_all(&sub, ack, 4);
            expect(&pub, in, 4);
            if (in[0] != 0x40 || in[2] != (unsigned char)(pid >> 8) || in[3] != (unsigned char)pid)
                die("message %ld: expected the PUBACK of packet %u", i, pid);
        }
    }
    double secs = now_s() - t0;
    unsigned char disconnect[2] = {0xe0, 0};
    send_all(&pub, disconnect, 2);
    send_all(&sub, disconnect, 2);
    qsort(lat, (size_t)count, sizeof(double), cmp_double);
    printf("{\"lib\":\"floor-%s\",\"mode\":\"latency\",\"qos\":%d,\"size\":%ld,\"count\":%ld,\"secs\":%.6f,"
           "\"p50_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f}\n",
           wait, qos, size, count, secs, lat[count / 2] * 1e6, lat[(long)((double)count * 0.99)] * 1e6,
           lat[count - 1] * 1e6);
    free(lat);
    return 0;
}
