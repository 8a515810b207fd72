/*
 * Loops driven from the application's own poll loop: poll() on mqttc_loop_fd alone, for at most
 * mqttc_loop_timeout_ms, then mqttc_loop_run(loop, 0), which handles what is ready and never
 * waits. Against a real broker: connecting and subscribing, QoS 0 and 1 round trips, keep-alive
 * pings while nothing else happens (the broker drops a client that misses them), a publish made
 * on another thread waking a poll that has no timer to end it, a lost connection coming back
 * after its reconnect backoff; and no run of a loop waits.
 * Usage: loop_fd <port of a running broker>
 */
#include "check.h"
#include "clock.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint16_t port;

/* A loop and its descriptor, and what turning it has cost. */
typedef struct {
    mqttc_loop *lp;
    int fd;
    long turns;
    long longest_run_ms;
} app_loop;

/* One turn of the application's loop: waits on the descriptor for as long as the loop allows,
 * but at most `cap_ms`, then runs what is ready. Returns whether the descriptor was readable. */
static int turn(app_loop *a, int cap_ms) {
    int timeout = -2;
    CHECK(mqttc_loop_timeout_ms(a->lp, &timeout));
    EXPECT(timeout >= -1, "timeout %d", timeout);
    if (timeout < 0 || timeout > cap_ms)
        timeout = cap_ms;
    struct pollfd p = {.fd = a->fd, .events = POLLIN};
    int n = poll(&p, 1, timeout);
    EXPECT(n >= 0, "poll: %s", strerror(errno));
    long start = now_ms();
    CHECK(mqttc_loop_run(a->lp, 0));
    long took = now_ms() - start;
    if (took > a->longest_run_ms)
        a->longest_run_ms = took;
    a->turns++;
    return n > 0;
}

/* Turns the loop until `cond` holds, for 10 s at most. */
#define TURN_UNTIL(a, cond, ...)                                                                   \
    do {                                                                                           \
        long end_ = now_ms() + 10000;                                                              \
        while (!(cond)) {                                                                          \
            EXPECT(now_ms() < end_, __VA_ARGS__);                                                  \
            turn((a), 1000);                                                                       \
        }                                                                                          \
    } while (0)

/* Callbacks run inside mqttc_loop_run, on this thread; atomics for the publisher thread's sake. */
static atomic_int pings, received_qos0, received_qos1, received_cross;

/* One client's connection changes: the userdata of `on_connection`. */
typedef struct {
    atomic_int ups, losts;
    atomic_long up_at, lost_at;
} changes;

static void on_connection(mqttc_client *c, const mqttc_connection_event *e, void *userdata) {
    (void)c;
    changes *ch = userdata;
    if (e->change == MQTTC_CONNECTION_UP) {
        atomic_store(&ch->up_at, now_ms());
        atomic_fetch_add(&ch->ups, 1);
    } else if (e->change == MQTTC_CONNECTION_LOST) {
        atomic_store(&ch->lost_at, now_ms());
        atomic_fetch_add(&ch->losts, 1);
    }
}

static void on_log(mqttc_client *c, int level, const char *line, void *userdata) {
    (void)c, (void)level, (void)userdata;
    if (strstr(line, "sending PINGREQ"))
        atomic_fetch_add(&pings, 1);
}

static void on_message(mqttc_client *c, const mqttc_message *m, void *userdata) {
    (void)c, (void)userdata;
    if (m->topic_len == strlen("loopfd/cross") && !memcmp(m->topic, "loopfd/cross", m->topic_len)) {
        atomic_fetch_add(&received_cross, 1);
    } else {
        atomic_fetch_add(m->qos ? &received_qos1 : &received_qos0, 1);
    }
}

static mqttc_client *client(app_loop *a, const char *id, uint16_t keep_alive, changes *ch) {
    mqttc_options o;
    mqttc_options_init(&o);
    o.client_id = id;
    o.run_loop = a->lp;
    o.keep_alive = keep_alive;
    o.reconnect_min_ms = 400;
    o.reconnect_max_ms = 800;
    mqttc_client *c = NULL;
    CHECK(mqttc_client_new("127.0.0.1", port, &o, &c));
    CHECK(mqttc_client_set_on_connection(c, on_connection, ch));
    return c;
}

/* Connects and subscribes `filter` with nothing but turns of the loop. */
static void connect_and_subscribe(app_loop *a, mqttc_client *c, changes *ch, const char *filter) {
    CHECK(mqttc_connect(c, NULL));
    TURN_UNTIL(a, atomic_load(&ch->ups) == 1, "not connected");
    mqttc_token t = 0;
    CHECK(mqttc_subscribe(c, filter, 1, on_message, NULL, &t));
    TURN_UNTIL(a, mqttc_token_poll(c, t) != MQTTC_PENDING, "no SUBACK");
    CHECK(mqttc_token_poll(c, t));
}

static void new_loop(app_loop *a) {
    memset(a, 0, sizeof *a);
    CHECK(mqttc_loop_new(&a->lp));
    CHECK(mqttc_loop_fd(a->lp, &a->fd));
    int again = -1, timeout = 0;
    CHECK(mqttc_loop_fd(a->lp, &again));
    EXPECT(a->fd >= 0 && again == a->fd, "descriptors %d then %d", a->fd, again);
    CHECK(mqttc_loop_timeout_ms(a->lp, &timeout));
    EXPECT(timeout == -1, "a loop without clients has a timeout of %d ms, not -1", timeout);
}

static void round_trips(app_loop *a, mqttc_client *c) {
    enum { N = 50 };
    mqttc_token tokens[N];
    for (int i = 0; i < N; i++) {
        CHECK(mqttc_publish(c, "loopfd/x", "one", 3, 1, false, &tokens[i]));
        CHECK(mqttc_publish(c, "loopfd/x", "zero", 4, 0, false, NULL));
    }
    TURN_UNTIL(a, atomic_load(&received_qos1) == N && atomic_load(&received_qos0) == N,
               "%d QoS 1 and %d QoS 0 of %d each", atomic_load(&received_qos1), atomic_load(&received_qos0), N);
    for (int i = 0; i < N; i++)
        CHECK(mqttc_token_poll(c, tokens[i]));
    printf("ok %d QoS 1 and %d QoS 0 messages went round through poll()\n", N, N);
}

/* Nothing but the keep-alive for 3.5 s of a 1 s keep-alive: the loop's timer sends the pings. */
static void keep_alive(app_loop *a, changes *ch) {
    int before = atomic_load(&pings);
    long turns = a->turns, end = now_ms() + 3500;
    while (now_ms() < end)
        turn(a, 5000);
    int sent = atomic_load(&pings) - before;
    turns = a->turns - turns;
    EXPECT(sent >= 2, "%d PINGREQ in 3.5 s with a keep-alive of 1 s", sent);
    EXPECT(atomic_load(&ch->losts) == 0, "the broker dropped the client");
    EXPECT(turns < 100, "%ld turns in 3.5 s of keep-alive alone: the loop spins", turns);
    printf("ok the keep-alive timer fired on its own (%d pings, %ld turns in 3.5 s)\n", sent, turns);
}

static void *publish_later(void *c) {
    sleep_ms(200);
    CHECK(mqttc_publish(c, "loopfd/cross", "from another thread", 19, 1, false, NULL));
    return NULL;
}

/* A loop with no timer (keep-alive off) waits without end; a publish on another thread wakes
 * its poll through the descriptor. */
static void woken_from_another_thread(void) {
    app_loop b;
    new_loop(&b);
    static changes ch;
    mqttc_client *c = client(&b, "loop-fd-quiet", 0, &ch);
    connect_and_subscribe(&b, c, &ch, "loopfd/cross");
    /* Right after traffic a connection keeps one short timer, to let go of its read buffer once
     * it has been quiet for a moment; then it has none. */
    int timeout = 0;
    long settle = now_ms() + 1000;
    for (;;) {
        CHECK(mqttc_loop_timeout_ms(b.lp, &timeout));
        if (timeout == -1 || now_ms() > settle)
            break;
        turn(&b, timeout);
    }
    EXPECT(timeout == -1, "a connected client without keep-alive, quiet for a second, has a timeout of %d ms",
           timeout);
    pthread_t publisher;
    EXPECT(pthread_create(&publisher, NULL, publish_later, c) == 0, "pthread_create");
    long start = now_ms();
    int readable = turn(&b, 5000);
    TURN_UNTIL(&b, atomic_load(&received_cross) == 1, "the message from the other thread did not come");
    pthread_join(publisher, NULL);
    long woke = now_ms() - start;
    EXPECT(readable, "the first poll ran into its 5 s cap instead of being woken");
    EXPECT(woke < 3000, "the message came after %ld ms", woke);
    printf("ok a publish on another thread woke a poll with no timeout\n");
    mqttc_client_free(c);
    mqttc_loop_free(b.lp);
}

/* Another client takes the connection over: the client comes back after its backoff, which only
 * the loop's timer ends (there is no socket to wait on meanwhile). */
static void reconnect_backoff(app_loop *a, changes *ch) {
    mqttc_options o;
    mqttc_options_init(&o);
    o.client_id = "loop-fd-a";
    o.auto_reconnect = false;
    mqttc_client *intruder = NULL;
    CHECK(mqttc_client_new("127.0.0.1", port, &o, &intruder));
    mqttc_token t = 0;
    CHECK(mqttc_connect(intruder, &t));
    TURN_UNTIL(a, atomic_load(&ch->losts) == 1, "the client did not lose its connection");
    long turns = a->turns;
    TURN_UNTIL(a, atomic_load(&ch->ups) == 2, "the client did not come back");
    turns = a->turns - turns;
    long backoff = atomic_load(&ch->up_at) - atomic_load(&ch->lost_at);
    /* The first delay is drawn from [200, 400] ms (half the minimum to the minimum). */
    EXPECT(backoff >= 190 && backoff < 3000, "back %ld ms after the loss", backoff);
    EXPECT(turns < 50, "%ld turns to come back: the loop spins", turns);
    CHECK(mqttc_token_wait(intruder, t, 10000));
    mqttc_client_free(intruder);
    printf("ok the reconnect came %ld ms after the loss, on the backoff timer (%ld turns)\n", backoff, turns);
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    port = (uint16_t)atoi(argv[1]);
    app_loop a;
    new_loop(&a);
    printf("ok a loop gives a descriptor, and no timeout while it has no client\n");
    static changes ch;
    mqttc_client *c = client(&a, "loop-fd-a", 1, &ch);
    CHECK(mqttc_client_set_log(c, MQTTC_LOG_DEBUG, on_log, NULL));
    connect_and_subscribe(&a, c, &ch, "loopfd/x");
    printf("ok connected and subscribed through poll()\n");
    round_trips(&a, c);
    keep_alive(&a, &ch);
    woken_from_another_thread();
    reconnect_backoff(&a, &ch);
    EXPECT(a.longest_run_ms < 100, "mqttc_loop_run(loop, 0) took %ld ms", a.longest_run_ms);
    mqttc_client_free(c);
    mqttc_loop_free(a.lp);
    printf("loop_fd: ok (longest run %ld ms)\n", a.longest_run_ms);
    return 0;
}
