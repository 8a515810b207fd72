/*
 * Messages a subscription received, copied (with their properties) for the main thread: the
 * userdata of `on_message`. Shared by the C test programs that check what a broker delivered.
 */
#ifndef MQTTC_TEST_INBOX_H
#define MQTTC_TEST_INBOX_H

#include <mqttclient.h>

#include <pthread.h>
#include <string.h>
#include <time.h>

/* Inboxes are static: a subscription stays registered after its step, and a late message for it
 * (the clean-up of a retained message, say) must find its inbox alive. */
typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    mqttc_message *msgs[256];
    int count;
} inbox;

/* Every inbox, to release what arrived late once the clients are freed. */
static inbox *inboxes[32];
static int inbox_count;

static inline void inbox_init(inbox *b) {
    memset(b, 0, sizeof *b);
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->cond, NULL);
    inboxes[inbox_count++] = b;
}

static inline void inbox_clear(inbox *b) {
    pthread_mutex_lock(&b->lock);
    for (int i = 0; i < b->count; i++)
        mqttc_message_free(b->msgs[i]);
    b->count = 0;
    pthread_mutex_unlock(&b->lock);
}

static inline void on_message(mqttc_client *c, const mqttc_message *m, void *userdata) {
    (void)c;
    inbox *b = userdata;
    mqttc_message *copy = NULL;
    if (mqttc_message_copy(m, &copy) != MQTTC_OK)
        return;
    pthread_mutex_lock(&b->lock);
    if (b->count < 256)
        b->msgs[b->count++] = copy;
    else
        mqttc_message_free(copy);
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

/* Waits up to 10 s until the inbox holds `n` messages; returns how many it holds. */
static inline int inbox_wait(inbox *b, int n) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&b->lock);
    while (b->count < n && pthread_cond_timedwait(&b->cond, &b->lock, &until) == 0) {
    }
    int got = b->count;
    pthread_mutex_unlock(&b->lock);
    return got;
}

/* How many messages the inbox holds now; callbacks add to it on another thread, so never read
 * `count` without the lock. */
static inline int inbox_size(inbox *b) {
    pthread_mutex_lock(&b->lock);
    int n = b->count;
    pthread_mutex_unlock(&b->lock);
    return n;
}

/* Releases what every inbox holds, once the clients are freed (no callback adds to them). */
static inline void inbox_clear_all(void) {
    for (int i = 0; i < inbox_count; i++)
        inbox_clear(inboxes[i]);
}

#endif
