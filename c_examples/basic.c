/*
 * The MQTTClient.jl basic example, step for step in C:
 * make a client, connect, publish a retained "Hello World!" to jlExample, subscribe to it with an
 * on_msg callback, wait (with a timeout) until the retained message arrives, unsubscribe, disconnect.
 *
 * Usage: basic [host] [port]      (default: localhost 1883)
 */
#include <mqttclient.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TIMEOUT_MS 10000

/* The callback signals main through this once the retained message has arrived. */
struct arrival {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int received;
};

/* Define the callback for receiving messages. It runs on the client's callback thread; the
 * message is borrowed until it returns. */
static void on_msg(mqttc_client *client, const mqttc_message *msg, void *userdata) {
    struct arrival *a = userdata;
    (void)client;
    printf("Received message topic: [%s] payload: [%.*s]\n", msg->topic, (int)msg->payload_len,
           (const char *)msg->payload);
    fflush(stdout);
    pthread_mutex_lock(&a->lock);
    a->received = 1;
    pthread_cond_signal(&a->cond);
    pthread_mutex_unlock(&a->lock);
}

/* Fails loudly: the status name plus the library's detail for the last error. */
static int check(mqttc_status st, const char *what) {
    if (st != MQTTC_OK) {
        fprintf(stderr, "%s failed: %s (%s)\n", what, mqttc_status_str(st), mqttc_last_error());
        return 0;
    }
    return 1;
}

/* Queue an operation, then wait for its token: the blocking form of MQTTClient.jl's calls. */
#define RUN(client, call, what)                                                                    \
    do {                                                                                           \
        mqttc_token tok_;                                                                          \
        if (!check((call), what) || !check(mqttc_token_wait((client), tok_, TIMEOUT_MS), what)) { \
            mqttc_client_free(client);                                                             \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

int main(int argc, char **argv) {
    const char *broker = argc > 1 ? argv[1] : "localhost";
    int port = argc > 2 ? atoi(argv[2]) : 1883;
    if (port <= 0 || port > 65535) {
        fprintf(stderr, "usage: %s [host] [port]\n", argv[0]);
        return 2;
    }
    struct arrival arrival = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};

    /* Instantiate a client and connection. */
    mqttc_client *client = NULL;
    if (!check(mqttc_client_new(broker, (uint16_t)port, NULL, &client), "mqttc_client_new"))
        return 1;
    RUN(client, mqttc_connect(client, &tok_), "connect");

    /* Set retain to true so we can receive a message from the broker once we subscribe to this
     * topic. */
    const char *hello = "Hello World!";
    RUN(client, mqttc_publish(client, "jlExample", hello, strlen(hello), 0, true, &tok_), "publish");

    /* Subscribe to the topic we sent a retained message to. */
    RUN(client, mqttc_subscribe(client, "jlExample", 1, on_msg, &arrival, &tok_), "subscribe");

    /* Wait (at most TIMEOUT_MS) until the retained message has arrived. */
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += TIMEOUT_MS / 1000;
    pthread_mutex_lock(&arrival.lock);
    while (!arrival.received &&
           pthread_cond_timedwait(&arrival.cond, &arrival.lock, &deadline) == 0) {
    }
    int received = arrival.received;
    pthread_mutex_unlock(&arrival.lock);
    if (!received) {
        fprintf(stderr, "the retained message did not arrive within %d ms\n", TIMEOUT_MS);
        mqttc_client_free(client);
        return 1;
    }

    /* Unsubscribe from the topic. */
    RUN(client, mqttc_unsubscribe(client, "jlExample", &tok_), "unsubscribe");

    /* Disconnect from the broker. Not strictly needed as the broker will also disconnect us if
     * the socket is closed. But this is considered good form and needed if you want to resume
     * this session later. */
    RUN(client, mqttc_disconnect(client, &tok_), "disconnect");
    mqttc_client_free(client);
    return 0;
}
