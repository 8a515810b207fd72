/*
 * Credentials and the will changed on a live client (mqttc_client_set_credentials,
 * mqttc_client_set_will, mqttc_client_clear_will), against a mosquitto with a password file
 * (users alice and bob) and an ACL that lets each user talk only on users/<its name>/#, so a
 * message there comes back only when the broker knows the client by that name:
 *  1. connected as alice, the client is given bob's credentials and reconnects: it is bob now;
 *  2. a wrong password is refused on the reconnect that sends it; the right one, set while the
 *     client retries by itself, is what the next automatic reconnect gets in with;
 *  3. the broker changes bob's password (mosquitto_passwd, SIGHUP) and drops the client, whose
 *     connection callback sets the new password on LOST, as a client renewing an expiring token
 *     does: the automatic reconnect gets in with it;
 *  4. a will set later is the one the broker publishes when the connection dies without a
 *     DISCONNECT (the connection made before keeps its own), with its MQTT 5 properties, and a
 *     cleared will is not published.
 * Usage: credentials <port> <password file> <broker pid>
 */
#include "check.h"
#include "clock.h"
#include "inbox.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

static uint16_t port;

/* The payload of message `i`, NUL-terminated into `buf`. */
static const char *payload_of(inbox *b, int i, char *buf, size_t size) {
    pthread_mutex_lock(&b->lock);
    size_t n = b->msgs[i]->payload_len < size - 1 ? b->msgs[i]->payload_len : size - 1;
    memcpy(buf, b->msgs[i]->payload, n);
    buf[n] = 0;
    pthread_mutex_unlock(&b->lock);
    return buf;
}

/* The connection changes of the client under test, and what it does on LOST. */
static pthread_mutex_t conn_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t conn_cond = PTHREAD_COND_INITIALIZER;
static int ups, losts;
static const char *renewed_password; /* set on LOST when not NULL */
static mqttc_status renew_status = MQTTC_OK;

static void on_connection(mqttc_client *c, const mqttc_connection_event *e, void *userdata) {
    (void)userdata;
    pthread_mutex_lock(&conn_lock);
    const char *renew = renewed_password;
    pthread_mutex_unlock(&conn_lock);
    if (e->change == MQTTC_CONNECTION_LOST && renew) {
        /* Inside the callback, on the client's callback thread: the next attempt uses it. */
        mqttc_status st = mqttc_client_set_credentials(c, "bob", (const uint8_t *)renew, strlen(renew));
        pthread_mutex_lock(&conn_lock);
        renew_status = st;
        pthread_mutex_unlock(&conn_lock);
    }
    pthread_mutex_lock(&conn_lock);
    if (e->change == MQTTC_CONNECTION_UP)
        ups++;
    else if (e->change == MQTTC_CONNECTION_LOST)
        losts++;
    pthread_cond_broadcast(&conn_cond);
    pthread_mutex_unlock(&conn_lock);
}

/* Waits up to 10 s until the client has been up `n` times in all. */
static void wait_ups(int n) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&conn_lock);
    while (ups < n && pthread_cond_timedwait(&conn_cond, &conn_lock, &until) == 0) {
    }
    int got = ups;
    pthread_mutex_unlock(&conn_lock);
    EXPECT(got >= n, "the client came up %d time(s), not %d (lost %d times)", got, n, losts);
}

static mqttc_client *make(const char *id, const char *user, const char *password, int version,
                          const char *will_topic, const char *will_payload) {
    mqttc_options o;
    mqttc_options_init(&o);
    o.client_id = id;
    o.username = user;
    o.password = (const uint8_t *)password;
    o.password_len = password ? strlen(password) : 0;
    o.protocol_version = (uint8_t)version;
    o.reconnect_min_ms = 100;
    o.reconnect_max_ms = 200;
    o.will_topic = will_topic;
    o.will_payload = (const uint8_t *)will_payload;
    o.will_payload_len = will_payload ? strlen(will_payload) : 0;
    o.will_qos = 1;
    mqttc_client *c = NULL;
    CHECK(mqttc_client_new("127.0.0.1", port, &o, &c));
    return c;
}

static mqttc_status connect_wait(mqttc_client *c) {
    mqttc_token t = 0;
    CHECK(mqttc_connect(c, &t));
    return mqttc_token_wait(c, t, 10000);
}

/* The broker knows `c` as `user`: what it publishes on users/<user>/echo comes back to it. */
static void is_known_as(mqttc_client *c, const char *user, inbox *echo) {
    char topic[64], payload[64], got[64];
    snprintf(topic, sizeof topic, "users/%s/echo", user);
    snprintf(payload, sizeof payload, "%s at %ld", user, now_ms());
    mqttc_token t = 0;
    inbox_clear(echo);
    CHECK(mqttc_subscribe(c, topic, 1, on_message, echo, &t));
    CHECK(mqttc_token_wait(c, t, 10000));
    CHECK(mqttc_publish(c, topic, payload, strlen(payload), 1, false, &t));
    CHECK(mqttc_token_wait(c, t, 10000));
    EXPECT(inbox_wait(echo, 1) == 1, "nothing came back on %s: the broker does not know the client as %s", topic,
           user);
    EXPECT(strcmp(payload_of(echo, 0, got, sizeof got), payload) == 0, "%s brought \"%s\"", topic, got);
    CHECK(mqttc_unsubscribe(c, topic, &t));
    CHECK(mqttc_token_wait(c, t, 10000));
}

static void reconnect_wait(mqttc_client *c, mqttc_status want) {
    mqttc_token t = 0;
    CHECK(mqttc_reconnect(c, &t));
    mqttc_status st = mqttc_token_wait(c, t, 10000);
    EXPECT(st == want, "reconnect: %s, want %s", mqttc_status_str(st), mqttc_status_str(want));
}

/* Changes bob's password in the broker's password file and has mosquitto read it again; returns
 * once a client with the old password is refused. */
static void rotate_broker_password(const char *file, pid_t broker, const char *old, const char *new_password) {
    char cmd[512];
    /* mosquitto reads the file as its own user after dropping root. */
    snprintf(cmd, sizeof cmd, "mosquitto_passwd -b '%s' bob '%s' && chmod 644 '%s'", file, new_password, file);
    EXPECT(system(cmd) == 0, "%s failed", cmd);
    EXPECT(kill(broker, SIGHUP) == 0, "SIGHUP to the broker");
    long until = now_ms() + 10000;
    for (;;) {
        mqttc_client *probe = make("credentials-probe", "bob", old, 4, NULL, NULL);
        mqttc_status st = connect_wait(probe);
        mqttc_client_free(probe);
        if (st != MQTTC_OK)
            break;
        EXPECT(now_ms() < until, "the broker still takes bob's old password 10 s after SIGHUP");
        sleep_ms(100);
    }
}

static void credentials(const char *passwd_file, pid_t broker) {
    static inbox echo;
    inbox_init(&echo);
    mqttc_client *c = make("credentials-client", "alice", "pw-a", 4, NULL, NULL);
    CHECK(mqttc_client_set_on_connection(c, on_connection, NULL));
    CHECK(connect_wait(c));
    is_known_as(c, "alice", &echo);
    printf("ok connected as alice\n");

    CHECK(mqttc_client_set_credentials(c, "bob", (const uint8_t *)"pw-b", 4));
    reconnect_wait(c, MQTTC_OK);
    is_known_as(c, "bob", &echo);
    printf("ok given bob's credentials, the reconnect is bob\n");

    CHECK(mqttc_client_set_credentials(c, "bob", (const uint8_t *)"wrong", 5));
    /* mosquitto answers a wrong password with 3.1.1's "not authorized" (5), not 4. */
    reconnect_wait(c, MQTTC_ERR_REFUSED_NOT_AUTHORIZED);
    pthread_mutex_lock(&conn_lock);
    int up = ups;
    pthread_mutex_unlock(&conn_lock);
    sleep_ms(300); /* an automatic retry or two, refused as well */
    CHECK(mqttc_client_set_credentials(c, "bob", (const uint8_t *)"pw-b", 4));
    wait_ups(up + 1);
    is_known_as(c, "bob", &echo);
    printf("ok a wrong password is refused; the right one set meanwhile gets the retry in\n");

    pthread_mutex_lock(&conn_lock);
    renewed_password = "pw-b-2";
    up = ups;
    int lost = losts;
    pthread_mutex_unlock(&conn_lock);
    /* mosquitto drops the clients whose password no longer matches when it rereads the file. */
    rotate_broker_password(passwd_file, broker, "pw-b", "pw-b-2");
    wait_ups(up + 1);
    pthread_mutex_lock(&conn_lock);
    EXPECT(losts > lost, "no LOST before the client came back");
    EXPECT(renew_status == MQTTC_OK, "set_credentials in the callback: %s", mqttc_status_str(renew_status));
    pthread_mutex_unlock(&conn_lock);
    is_known_as(c, "bob", &echo);
    printf("ok the password set in the LOST callback is the one the reconnect got in with\n");
    mqttc_client_free(c);
}

static void wills(void) {
    static inbox w_wills, x_wills, sync;
    inbox_init(&w_wills);
    inbox_init(&x_wills);
    inbox_init(&sync);
    mqttc_client *observer = make("credentials-observer", "alice", "pw-a", 5, NULL, NULL);
    CHECK(connect_wait(observer));
    mqttc_token t = 0;
    CHECK(mqttc_subscribe(observer, "will/w", 1, on_message, &w_wills, &t));
    CHECK(mqttc_token_wait(observer, t, 10000));
    CHECK(mqttc_subscribe(observer, "will/x", 1, on_message, &x_wills, &t));
    CHECK(mqttc_token_wait(observer, t, 10000));
    CHECK(mqttc_subscribe(observer, "will/sync", 1, on_message, &sync, &t));
    CHECK(mqttc_token_wait(observer, t, 10000));

    mqttc_client *w = make("credentials-w", "alice", "pw-a", 5, "will/w", "from the options");
    CHECK(connect_wait(w));
    mqttc_properties *props = NULL;
    CHECK(mqttc_properties_new(&props));
    CHECK(mqttc_properties_set_string(props, MQTTC_PROP_CONTENT_TYPE, "text/plain"));
    CHECK(mqttc_client_set_will(w, "will/w", (const uint8_t *)"set later", 9, 1, false, props));
    mqttc_properties_free(props);
    /* The connection the reconnect drops dies with the will it was made with. */
    reconnect_wait(w, MQTTC_OK);
    char got[64];
    EXPECT(inbox_wait(&w_wills, 1) == 1, "no will when the reconnect dropped the first connection");
    EXPECT(strcmp(payload_of(&w_wills, 0, got, sizeof got), "from the options") == 0,
           "the dropped connection's will is \"%s\"", got);

    mqttc_client *x = make("credentials-x", "alice", "pw-a", 4, "will/x", "x from the options");
    CHECK(connect_wait(x));
    CHECK(mqttc_client_clear_will(x));
    reconnect_wait(x, MQTTC_OK);
    EXPECT(inbox_wait(&x_wills, 1) == 1, "no will when the reconnect dropped x's first connection");

    /* Both die without a DISCONNECT: w's will is the one set later, x has none. */
    mqttc_client_free(x);
    mqttc_client_free(w);
    EXPECT(inbox_wait(&w_wills, 2) == 2, "no will when w's connection died");
    EXPECT(strcmp(payload_of(&w_wills, 1, got, sizeof got), "set later") == 0, "w's will is \"%s\"", got);
    const char *type = NULL;
    pthread_mutex_lock(&w_wills.lock);
    mqttc_status st = mqttc_properties_get_string(w_wills.msgs[1]->properties, MQTTC_PROP_CONTENT_TYPE, &type);
    int typed = st == MQTTC_OK && strcmp(type, "text/plain") == 0;
    pthread_mutex_unlock(&w_wills.lock);
    EXPECT(typed, "w's will lacks its content type: %s", mqttc_status_str(st));
    /* A round trip after both, and a while more: a will of x's would have come by now. */
    CHECK(mqttc_publish(observer, "will/sync", "s", 1, 1, false, &t));
    EXPECT(inbox_wait(&sync, 1) == 1, "the observer's own message did not come back");
    sleep_ms(300);
    pthread_mutex_lock(&x_wills.lock);
    int x_count = x_wills.count;
    pthread_mutex_unlock(&x_wills.lock);
    EXPECT(x_count == 1, "x's cleared will was published (%d wills)", x_count);
    printf("ok a will set later is published, a cleared one is not\n");
    mqttc_client_free(observer);
}

int main(int argc, char **argv) {
    if (argc < 4)
        return 2;
    port = (uint16_t)atoi(argv[1]);
    credentials(argv[2], (pid_t)atol(argv[3]));
    wills();
    inbox_clear_all();
    printf("credentials: ok\n");
    return 0;
}
