/*
 * Automatic reconnect through the C API, driven by tests/c_resilience.rs.
 *
 * Usage: resilience <dead_port> <live_port>
 *
 * The client is made with two server URIs, the first of which nobody listens on, so connecting
 * must fall through to the second. It subscribes, publishes QoS 1 messages to itself, then prints
 * "kill me": the test SIGKILLs the broker. Once the connection-state callback reports the loss,
 * the program publishes more QoS 1 messages (they wait in the offline queue), prints "restart me",
 * and the test restarts the broker (without persistence, so the session is gone and the library
 * must subscribe again by itself). Every message must then arrive. Then an mqttc_reconnect, and a
 * last "kill me again": a disconnect while reconnecting must end the session at once and cancel
 * the publishes waiting offline. Events and results are printed one per line for the test to
 * check; any failure prints "FAIL: ..." and exits with 1.
 */
#include <mqttclient.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N_ONLINE 10
#define N_OFFLINE 10
#define N (N_ONLINE + N_OFFLINE)
#define TOPIC "cres/t"

static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;

/* Guarded by `lock`. */
static int counts[N];
static int received;
static int strays;
static int ups, losts, closeds;
static mqttc_status last_lost_reason = MQTTC_OK;

/* One line on stdout, flushed at once: the test reacts to lines as they come. */
static void say(const char *fmt, ...) {
    va_list ap;
    pthread_mutex_lock(&print_lock);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
    pthread_mutex_unlock(&print_lock);
}

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            say("FAIL: " __VA_ARGS__);                                                             \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static void on_connection(mqttc_client *client, const mqttc_connection_event *ev, void *userdata) {
    (void)client;
    (void)userdata;
    pthread_mutex_lock(&lock);
    switch (ev->change) {
    case MQTTC_CONNECTION_UP:
        ups++;
        break;
    case MQTTC_CONNECTION_LOST:
        losts++;
        last_lost_reason = ev->reason;
        break;
    case MQTTC_CONNECTION_CLOSED:
        closeds++;
        break;
    default:
        break;
    }
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
    switch (ev->change) {
    case MQTTC_CONNECTION_UP:
        say("event up server=%s session_present=%d", ev->server ? ev->server : "(null)", (int)ev->session_present);
        break;
    case MQTTC_CONNECTION_LOST:
        say("event lost server=%s reason=%s detail=%s", ev->server ? ev->server : "(null)",
            mqttc_status_str(ev->reason), ev->detail ? ev->detail : "(null)");
        break;
    case MQTTC_CONNECTION_CLOSED:
        say("event closed server=%s", ev->server ? "set" : "null");
        break;
    default:
        say("event unknown %d", ev->change);
    }
}

static void on_message(mqttc_client *client, const mqttc_message *m, void *userdata) {
    (void)client;
    (void)userdata;
    char buf[16] = {0};
    size_t len = m->payload_len < sizeof buf - 1 ? m->payload_len : sizeof buf - 1;
    memcpy(buf, m->payload, len);
    int i = -1;
    pthread_mutex_lock(&lock);
    if (sscanf(buf, "c%d", &i) == 1 && i >= 0 && i < N) {
        counts[i]++;
        received++;
    } else {
        strays++;
    }
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

/* Waits (bounded) until *counter >= target; returns whether it got there. */
static int wait_count(const int *counter, int target, int timeout_ms) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&lock);
    while (*counter < target) {
        if (pthread_cond_timedwait(&changed, &lock, &deadline) != 0) {
            break;
        }
    }
    int ok = *counter >= target;
    pthread_mutex_unlock(&lock);
    return ok;
}

static int get(const int *counter) {
    pthread_mutex_lock(&lock);
    int value = *counter;
    pthread_mutex_unlock(&lock);
    return value;
}

static mqttc_token publish(mqttc_client *c, int i) {
    char payload[16];
    int len = snprintf(payload, sizeof payload, "c%02d", i);
    mqttc_token t = 0;
    mqttc_status st = mqttc_publish(c, TOPIC, payload, (size_t)len, 1, false, &t);
    CHECK(st == MQTTC_OK, "publish %d: %s (%s)", i, mqttc_status_str(st), mqttc_last_error());
    return t;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s <dead_port> <live_port>\n", argv[0]);
        return 2;
    }
    char dead[64], live[64];
    snprintf(dead, sizeof dead, "tcp://127.0.0.1:%s", argv[1]);
    snprintf(live, sizeof live, "127.0.0.1:%s", argv[2]);
    const char *uris[] = {dead, live};

    mqttc_options opts;
    mqttc_options_init(&opts);
    opts.client_id = "c-resilience";
    opts.clean_session = false;
    opts.keep_alive = 5;
    opts.connect_timeout_ms = 2000;
    opts.auto_reconnect = true;
    opts.reconnect_min_ms = 50;
    opts.reconnect_max_ms = 500;

    mqttc_client *c = NULL;
    mqttc_status st = mqttc_client_new_uris(uris, 2, &opts, &c);
    CHECK(st == MQTTC_OK, "client_new_uris: %s (%s)", mqttc_status_str(st), mqttc_last_error());
    CHECK(mqttc_client_set_on_connection(c, on_connection, NULL) == MQTTC_OK, "set_on_connection");

    mqttc_token t = 0;
    CHECK(mqttc_connect(c, &t) == MQTTC_OK, "connect");
    st = mqttc_token_wait(c, t, 10000);
    CHECK(st == MQTTC_OK, "connect token: %s", mqttc_status_str(st));
    CHECK(wait_count(&ups, 1, 5000), "no UP event");
    CHECK(mqttc_subscribe(c, TOPIC, 1, on_message, NULL, &t) == MQTTC_OK, "subscribe");
    st = mqttc_token_wait(c, t, 10000);
    CHECK(st == MQTTC_OK, "subscribe token: %s", mqttc_status_str(st));
    say("subscribed");

    for (int i = 0; i < N_ONLINE; i++) {
        st = mqttc_token_wait(c, publish(c, i), 10000);
        CHECK(st == MQTTC_OK, "online publish %d: %s", i, mqttc_status_str(st));
    }
    CHECK(wait_count(&received, N_ONLINE, 10000), "only %d of %d online messages came back", get(&received),
          N_ONLINE);
    say("online received=%d", get(&received));

    say("kill me");
    CHECK(wait_count(&losts, 1, 10000), "no LOST event after the broker was killed");
    int state = mqttc_client_state(c);
    CHECK(state == MQTTC_STATE_RECONNECTING || state == MQTTC_STATE_CONNECTING, "state %d while the broker is down",
          state);
    mqttc_token offline[N_OFFLINE];
    for (int i = 0; i < N_OFFLINE; i++) {
        offline[i] = publish(c, N_ONLINE + i);
    }
    for (int i = 0; i < N_OFFLINE; i++) {
        st = mqttc_token_poll(c, offline[i]);
        CHECK(st == MQTTC_PENDING, "offline publish %d: %s before the broker is back", i, mqttc_status_str(st));
    }
    say("queued %d state=%d", N_OFFLINE, state);

    say("restart me");
    CHECK(wait_count(&ups, 2, 15000), "no second UP event after the broker restarted");
    for (int i = 0; i < N_OFFLINE; i++) {
        st = mqttc_token_wait(c, offline[i], 10000);
        CHECK(st == MQTTC_OK, "offline publish %d: %s", i, mqttc_status_str(st));
    }
    CHECK(wait_count(&received, N, 10000), "only %d of %d messages came back", get(&received), N);

    pthread_mutex_lock(&lock);
    int missing = 0, duplicates = 0;
    for (int i = 0; i < N; i++) {
        if (counts[i] == 0) {
            missing++;
        } else {
            duplicates += counts[i] - 1;
        }
    }
    int stray = strays, total = received;
    pthread_mutex_unlock(&lock);
    say("received total=%d missing=%d duplicates=%d strays=%d", total, missing, duplicates, stray);

    /* An application-requested reconnect: the broker kept the session this time. The connection
     * it drops is reported LOST (cancelled) before the new one is UP. */
    int losts_before_reconnect = get(&losts);
    CHECK(mqttc_reconnect(c, &t) == MQTTC_OK, "reconnect");
    st = mqttc_token_wait(c, t, 10000);
    CHECK(st == MQTTC_OK, "reconnect token: %s", mqttc_status_str(st));
    CHECK(wait_count(&ups, 3, 5000), "no UP event after mqttc_reconnect");
    pthread_mutex_lock(&lock);
    int reconnect_losts = losts - losts_before_reconnect;
    mqttc_status reconnect_reason = last_lost_reason;
    pthread_mutex_unlock(&lock);
    CHECK(reconnect_losts == 1 && reconnect_reason == MQTTC_ERR_CANCELLED,
          "mqttc_reconnect's dropped connection: %d LOST events, reason %s", reconnect_losts,
          mqttc_status_str(reconnect_reason));
    st = mqttc_token_wait(c, publish(c, 0), 10000);
    CHECK(st == MQTTC_OK, "publish after reconnect: %s", mqttc_status_str(st));
    CHECK(wait_count(&received, N + 1, 10000), "no message after mqttc_reconnect");
    say("reconnected");

    /* Broker down for good: disconnect while reconnecting ends the session at once. */
    int lost_before = get(&losts);
    say("kill me again");
    CHECK(wait_count(&losts, lost_before + 1, 10000), "no LOST event after the second kill");
    mqttc_token stranded[2];
    for (int i = 0; i < 2; i++) {
        stranded[i] = publish(c, i);
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK(mqttc_disconnect(c, &t) == MQTTC_OK, "disconnect");
    st = mqttc_token_wait(c, t, 10000);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000L + (t1.tv_nsec - t0.tv_nsec) / 1000000L;
    CHECK(st == MQTTC_OK, "disconnect token: %s", mqttc_status_str(st));
    CHECK(ms < 2000, "disconnect while reconnecting took %ld ms", ms);
    for (int i = 0; i < 2; i++) {
        st = mqttc_token_poll(c, stranded[i]);
        CHECK(st == MQTTC_ERR_CANCELLED, "stranded publish %d: %s", i, mqttc_status_str(st));
    }
    CHECK(wait_count(&closeds, 1, 5000), "no CLOSED event after disconnect");
    CHECK(mqttc_client_state(c) == MQTTC_STATE_DISCONNECTED, "state %d after disconnect", mqttc_client_state(c));
    say("disconnected in %ld ms, stranded publishes cancelled", ms);
    mqttc_client_free(c);
    say("done");
    return 0;
}
