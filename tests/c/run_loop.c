/*
 * Clients on an mqttc_loop, against a real broker: nothing moves between runs of the loop; token
 * waits run it; callbacks run inside mqttc_loop_run on the calling thread, where blocking calls
 * are refused; QoS 0/1/2 round trips through one thread; another thread may run the loop; the
 * loop handle may be freed before its clients; bad arguments get clear errors.
 * Usage: run_loop <port of a running broker>
 */
#define _GNU_SOURCE
#include "check.h"
#include "clock.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static mqttc_loop *lp;
static mqttc_client *sub, *pub;
static pthread_t main_thread;
static atomic_long received;
static atomic_int off_main, wait_status, run_status;
static char last_topic[64];

static void on_message(mqttc_client *client, const mqttc_message *msg, void *userdata) {
    (void)userdata;
    if (!pthread_equal(pthread_self(), main_thread))
        atomic_fetch_add(&off_main, 1);
    /* Blocking here would stall the loop this very call runs in. */
    atomic_store(&wait_status, mqttc_token_wait(client, 1, 1000));
    atomic_store(&run_status, mqttc_loop_run(lp, 0));
    size_t n = msg->topic_len < sizeof last_topic - 1 ? msg->topic_len : sizeof last_topic - 1;
    memcpy(last_topic, msg->topic, n);
    last_topic[n] = 0;
    atomic_fetch_add(&received, 1);
}

static mqttc_client *client_on_loop(int port, const char *id) {
    mqttc_options o;
    mqttc_options_init(&o);
    o.client_id = id;
    o.run_loop = lp;
    mqttc_client *c = NULL;
    CHECK(mqttc_client_new("127.0.0.1", (uint16_t)port, &o, &c));
    mqttc_token t;
    CHECK(mqttc_connect(c, &t));
    CHECK(mqttc_token_wait(c, t, 10000));
    return c;
}

/* Runs the loop on this thread until `n` messages have arrived (10 s at most). */
static void run_until_received(long n, const char *what) {
    long end = now_ms() + 10000;
    while (atomic_load(&received) < n && now_ms() < end)
        CHECK(mqttc_loop_run(lp, 100));
    EXPECT(atomic_load(&received) == n, "%s: %ld of %ld messages", what, atomic_load(&received), n);
}

static void setup(int port) {
    CHECK(mqttc_loop_new(&lp));
    sub = client_on_loop(port, "run-loop-sub");
    pub = client_on_loop(port, "run-loop-pub");
    mqttc_token t;
    CHECK(mqttc_subscribe(sub, "loop/#", 2, on_message, NULL, &t));
    CHECK(mqttc_token_wait(sub, t, 10000));
    printf("ok connected and subscribed by waiting on tokens, which runs the loop\n");
}

static void nothing_moves_between_runs(void) {
    mqttc_token t;
    CHECK(mqttc_publish(pub, "loop/still", "x", 1, 1, false, &t));
    sleep_ms(200);
    EXPECT(mqttc_token_poll(pub, t) == MQTTC_PENDING, "the QoS 1 publish completed with no loop run");
    EXPECT(atomic_load(&received) == 0, "a message arrived with no loop run");
    run_until_received(1, "after running the loop");
    EXPECT(!strcmp(last_topic, "loop/still"), "topic %s", last_topic);
    CHECK(mqttc_token_wait(pub, t, 10000));
    printf("ok nothing moves between runs of the loop\n");
}

static void callbacks_run_on_the_calling_thread(void) {
    EXPECT(atomic_load(&off_main) == 0, "a callback ran off the thread running the loop");
    EXPECT(atomic_load(&wait_status) == MQTTC_ERR_IN_CALLBACK, "mqttc_token_wait in a callback: %s",
           mqttc_status_str(atomic_load(&wait_status)));
    EXPECT(atomic_load(&run_status) == MQTTC_ERR_IN_CALLBACK, "mqttc_loop_run in a callback: %s",
           mqttc_status_str(atomic_load(&run_status)));
    printf("ok callbacks run inside mqttc_loop_run on its thread, where blocking calls are refused\n");
}

static void run_times_out_when_idle(void) {
    long t0 = now_ms();
    CHECK(mqttc_loop_run(lp, 150));
    long waited = now_ms() - t0;
    EXPECT(waited >= 149, "an idle run returned after %ld ms, before its 150 ms", waited);
    t0 = now_ms();
    CHECK(mqttc_loop_run(lp, 0));
    EXPECT(now_ms() - t0 < 100, "a run with timeout 0 waited %ld ms", now_ms() - t0);
    printf("ok an idle run waits out its timeout; timeout 0 does not wait\n");
}

static void round_trips_at_every_qos(void) {
    for (int qos = 0; qos <= 2; qos++) {
        long before = atomic_load(&received);
        for (int i = 0; i < 100; i++) {
            char topic[32];
            snprintf(topic, sizeof topic, "loop/q%d/%d", qos, i);
            CHECK(mqttc_publish(pub, topic, "ping", 4, qos, false, NULL));
            run_until_received(before + i + 1, "round trip");
            EXPECT(!strcmp(last_topic, topic), "got %s, sent %s", last_topic, topic);
        }
    }
    printf("ok 300 round trips at QoS 0, 1 and 2 on one thread, in order\n");
}

static atomic_int stop_runner;

static void *runner(void *arg) {
    (void)arg;
    while (!atomic_load(&stop_runner))
        if (mqttc_loop_run(lp, 50) != MQTTC_OK)
            return "mqttc_loop_run failed on the other thread";
    return NULL;
}

static void another_thread_runs_the_loop(void) {
    pthread_t th;
    EXPECT(pthread_create(&th, NULL, runner, NULL) == 0, "pthread_create");
    long before = atomic_load(&received);
    mqttc_token t;
    CHECK(mqttc_publish(pub, "loop/other", "x", 1, 1, false, &t));
    /* Polled, not waited on: a wait would run the loop on this thread too. */
    long end = now_ms() + 10000;
    while ((atomic_load(&received) == before || mqttc_token_poll(pub, t) == MQTTC_PENDING) && now_ms() < end)
        sleep_ms(1);
    CHECK(mqttc_token_poll(pub, t));
    atomic_store(&stop_runner, 1);
    void *err;
    pthread_join(th, &err);
    EXPECT(err == NULL, "%s", (const char *)err);
    EXPECT(atomic_load(&received) == before + 1, "the message did not arrive on the other thread");
    EXPECT(atomic_load(&off_main) == 1, "its callback ran on main, not on the thread running the loop");
    printf("ok another thread runs the loop while this one only polls\n");
}

static void the_loop_handle_may_go_first(void) {
    mqttc_loop_free(lp);
    lp = NULL;
    mqttc_token t;
    CHECK(mqttc_disconnect(pub, &t));
    CHECK(mqttc_token_wait(pub, t, 10000));
    CHECK(mqttc_disconnect(sub, &t));
    CHECK(mqttc_token_wait(sub, t, 10000));
    mqttc_client_free(pub);
    mqttc_client_free(sub);
    printf("ok the loop handle freed first, its clients still disconnect cleanly\n");
}

static void bad_arguments(int port) {
    EXPECT(mqttc_loop_new(NULL) == MQTTC_ERR_NULL, "loop_new(NULL)");
    EXPECT(mqttc_loop_run(NULL, 0) == MQTTC_ERR_NULL, "loop_run(NULL)");
    EXPECT(strstr(mqttc_last_error(), "run_loop") != NULL, "a message naming it: %s", mqttc_last_error());
    mqttc_loop_free(NULL);
    mqttc_loop *l = NULL;
    CHECK(mqttc_loop_new(&l));
    mqttc_options o;
    mqttc_options_init(&o);
    o.run_loop = l;
    o.event_mode = true;
    mqttc_client *c = NULL;
    EXPECT(mqttc_client_new("127.0.0.1", (uint16_t)port, &o, &c) == MQTTC_ERR_INVALID_ARGUMENT && c == NULL,
           "a loop with event_mode");
    EXPECT(strstr(mqttc_last_error(), "event_mode") != NULL, "a message naming it: %s", mqttc_last_error());
    mqttc_loop_free(l);
    printf("ok bad arguments get clear errors\n");
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    int port = atoi(argv[1]);
    main_thread = pthread_self();
    setup(port);
    nothing_moves_between_runs();
    callbacks_run_on_the_calling_thread();
    run_times_out_when_idle();
    round_trips_at_every_qos();
    another_thread_runs_the_loop();
    the_loop_handle_may_go_first();
    bad_arguments(port);
    printf("run_loop: ok\n");
    return 0;
}
