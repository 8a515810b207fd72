/*
 * The traffic half of the soak (scripts/soak.py runs it, and measures its memory from outside):
 * minutes of mixed traffic through the public C API while the script drops every connection and
 * restarts the broker now and then. At the end, an account of every message.
 *
 *   soak <host> <port> <seconds> <messages per second per publisher>
 *
 * Clients, all reconnecting by themselves:
 *   - 3 publishers (persistent sessions), one thread each, publishing to soak/data/<p>/<qos> with
 *     QoS cycling 0, 1, 2 and payload sizes from 16 bytes to 64 KiB; each token is polled until
 *     it completes, its status counted;
 *   - 2 subscribers (persistent sessions) to soak/data/#, at QoS 2, subscribed for the whole run,
 *     counting each message they get per (publisher, sequence);
 *   - 1 churner (clean session) that subscribes and unsubscribes soak/churn/<n> filters at random
 *     and publishes to them;
 *   - once a second, a short-lived client: create, connect, publish, disconnect, free.
 * When the time is up, publishing stops, every token is awaited, and the subscribers get up to
 * DRAIN_MS to receive what is still on its way. Then:
 *   - lost: a QoS 1 or 2 message whose token completed MQTTC_OK (the broker acknowledged it:
 *     promised) that a subscriber never received;
 *   - duplicated: a QoS 2 message a subscriber received more than once (except a re-send by a
 *     restarted broker, see RESTART_WINDOW_MS).
 * Exit 0 when both are zero, 1 otherwise. QoS 1 duplicates (allowed by MQTT after a reconnect),
 * QoS 0 messages lost with a connection, and publishes refused while offline (the offline queue's
 * bound) are counted and reported, not failures.
 *
 * The ledgers are allocated and touched before the traffic starts, so they do not show as growth
 * in the resident memory the script samples. Every wait is bounded.
 * Output: "progress ..." lines every 10 s, then "result ..." lines and "soak: ok" or FAIL.
 */
#include "check.h"
#include "clock.h"

#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PUBLISHERS 3
#define SUBSCRIBERS 2
#define CHURN_FILTERS 16
/* Tokens a publisher may have outstanding (when the ring is full, it waits for the oldest). */
#define RING 2048
/* Completed token results each client keeps (default 65,536): a bounded table that, at the soak's
 * rates, would take many minutes to fill and so would show as growth (measured with heaptrack:
 * the churner's table, growing until full, was the live heap's only rise). This small, the
 * publishers' (200 tokens/s) and the churner's (20/s) are full within the first 20 s. Above RING,
 * so no publish token expires before its publisher polls it.
 * One step remains, also traced with heaptrack: minutes in, each publisher's table (a hash map
 * holding 4,096 to 6,144 tokens) doubles its buckets once, when the deletions' tombstones use up
 * its room (about 0.35 MiB each, the live heap's 1 MiB step near 7 minutes). After that it
 * cleans them in place. */
#define PUBLISHER_TOKEN_HISTORY 4096
#define OTHER_TOKEN_HISTORY 256
/* A QoS 2 message received again with DUP set within this long after the script announced a
 * broker restart (SIGUSR1) is counted apart: mosquitto 2.0.11 restored from its database re-sends
 * some QoS 2 messages whose PUBREL it had sent before (mosquitto_sub receives them twice too). */
#define RESTART_WINDOW_MS 10000L
#define DRAIN_MS 60000L
#define TOKEN_WAIT_MS 120000L

/* xorshift: payload sizes and churn choices; per thread, so no locking. */
static uint32_t next_random(uint32_t *state) {
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

static uint16_t port;
static const char *host;
static long capacity; /* sequence numbers per publisher the ledgers hold */
static atomic_bool stop_publishing;

/* ---- ledgers ------------------------------------------------------------------------------ */

/* sent[p][seq]: the publish's final status + 100 (0 = not published / still pending). */
static uint8_t *sent[PUBLISHERS];
/* got[s][p][seq]: how many times subscriber s received it (saturating at 255). */
static uint8_t *got[SUBSCRIBERS][PUBLISHERS];
static atomic_long published[PUBLISHERS];
static atomic_long status_count[3][128]; /* [qos][-status] of completed publish tokens */
static atomic_long wrong_messages, reported_duplicates;
static atomic_long restart_duplicates[SUBSCRIBERS];
static long start_ms;
static atomic_long broker_restart_ms = -RESTART_WINDOW_MS; /* set by SIGUSR1 */

static void on_sigusr1(int sig) {
    (void)sig;
    atomic_store(&broker_restart_ms, now_ms()); /* clock_gettime is async-signal-safe */
}
static atomic_long connection_ups, connection_losses;
static atomic_long churn_received, churn_failures, short_lived_ok, short_lived_failed;

/* Bytes malloc has handed out and not had back, over all arenas: what the process really holds,
 * without the allocator's retained free memory that RSS includes. */
static size_t live_heap_kib(void) {
    struct mallinfo2 mi = mallinfo2();
    return (mi.uordblks + mi.hblkhd) / 1024;
}

static uint8_t *ledger(void) {
    uint8_t *l = malloc((size_t)capacity);
    if (!l)
        FAIL("out of memory for a ledger of %ld", capacity);
    memset(l, 0, (size_t)capacity); /* touched now, so it is resident from the start */
    return l;
}

static void on_connection(mqttc_client *c, const mqttc_connection_event *ev, void *u) {
    (void)c, (void)u;
    if (ev->change == MQTTC_CONNECTION_UP)
        atomic_fetch_add(&connection_ups, 1);
    else if (ev->change == MQTTC_CONNECTION_LOST)
        atomic_fetch_add(&connection_losses, 1);
}

static mqttc_client *new_client(const char *id, bool clean, uint32_t token_history) {
    mqttc_options o;
    mqttc_options_init(&o);
    o.client_id = id;
    o.clean_session = clean;
    o.keep_alive = 10;
    o.connect_timeout_ms = 5000;
    o.reconnect_min_ms = 100;
    o.reconnect_max_ms = 2000;
    o.disconnect_timeout_ms = 10000;
    o.token_history = token_history;
    mqttc_client *c = NULL;
    CHECK(mqttc_client_new(host, port, &o, &c));
    CHECK(mqttc_client_set_on_connection(c, on_connection, NULL));
    return c;
}

/* The first connect is not retried by the library: retry it here while the broker restarts. */
static void connect_first(mqttc_client *c, const char *what) {
    for (long deadline = now_ms() + 60000;;) {
        mqttc_token t;
        CHECK(mqttc_connect(c, &t));
        mqttc_status st = mqttc_token_wait(c, t, 10000);
        if (st == MQTTC_OK)
            return;
        if (now_ms() > deadline)
            FAIL("%s: no connection within 60 s: %s", what, mqttc_status_str(st));
        sleep_ms(200);
    }
}

static void wait_ok(mqttc_client *c, mqttc_token t, long ms, const char *what) {
    mqttc_status st = mqttc_token_wait(c, t, (uint32_t)ms);
    if (st != MQTTC_OK)
        FAIL("%s: %s", what, mqttc_status_str(st));
}

/* ---- publishers --------------------------------------------------------------------------- */

typedef struct {
    int index;
    long rate;
    mqttc_client *client;
} publisher;

typedef struct {
    mqttc_token token;
    long seq;
} pending;

/* Records a completed publish token. */
static void settle(const pending *p, int index, mqttc_status st) {
    int qos = (int)(p->seq % 3);
    atomic_fetch_add(&status_count[qos][-st & 127], 1);
    sent[index][p->seq] = (uint8_t)(st + 100);
}

static void *publish_loop(void *arg) {
    publisher *pub = arg;
    pending *ring = malloc(RING * sizeof *ring);
    char *payload = malloc(65536);
    if (!ring || !payload)
        FAIL("out of memory");
    long head = 0, tail = 0, seq = 0, t0 = now_ms();
    uint32_t rnd = 0x9e3779b9u * (uint32_t)(pub->index + 1);
    char topic[32];
    while (!atomic_load(&stop_publishing) && seq < capacity) {
        /* Paced: as many messages as the rate allows by now. */
        if (seq >= (now_ms() - t0) * pub->rate / 1000) {
            sleep_ms(2);
        } else {
            int qos = (int)(seq % 3);
            uint32_t r = next_random(&rnd) % 100;
            size_t size = r < 70 ? 16 + next_random(&rnd) % 241
                          : r < 95 ? 1024 + next_random(&rnd) % 7169
                                   : 32768 + next_random(&rnd) % 32769;
            int n = snprintf(payload, 32, "%d %ld ", pub->index, seq);
            memset(payload + n, 'a' + (int)(seq % 26), size - (size_t)n);
            snprintf(topic, sizeof topic, "soak/data/%d/%d", pub->index, qos);
            mqttc_token t;
            mqttc_status st = mqttc_publish(pub->client, topic, payload, size, qos, false, &t);
            if (st != MQTTC_OK)
                FAIL("publisher %d: publish refused: %s", pub->index, mqttc_status_str(st));
            ring[tail++ % RING] = (pending){t, seq++};
            atomic_store(&published[pub->index], seq);
        }
        /* Settle what completed, oldest first; wait for the oldest when the ring is full. */
        while (head < tail) {
            pending *p = &ring[head % RING];
            bool full = tail - head == RING;
            mqttc_status st = full ? mqttc_token_wait(pub->client, p->token, (uint32_t)TOKEN_WAIT_MS)
                                   : mqttc_token_poll(pub->client, p->token);
            if (full && st == MQTTC_ERR_TIMEOUT)
                FAIL("publisher %d: token of message %ld pending for %ld s", pub->index, p->seq,
                     TOKEN_WAIT_MS / 1000);
            if (st == MQTTC_PENDING)
                break;
            settle(p, pub->index, st);
            head++;
        }
    }
    for (; head < tail; head++) {
        pending *p = &ring[head % RING];
        mqttc_status st = mqttc_token_wait(pub->client, p->token, (uint32_t)TOKEN_WAIT_MS);
        if (st == MQTTC_ERR_TIMEOUT)
            FAIL("publisher %d: token of message %ld pending for %ld s at the end", pub->index, p->seq,
                 TOKEN_WAIT_MS / 1000);
        settle(p, pub->index, st);
    }
    free(payload);
    free(ring);
    return NULL;
}

/* ---- subscribers -------------------------------------------------------------------------- */

static void on_data(mqttc_client *c, const mqttc_message *m, void *userdata) {
    (void)c;
    int sub = (int)(intptr_t)userdata, p = -1;
    long seq = -1;
    char head[32];
    size_t n = m->payload_len < sizeof head - 1 ? m->payload_len : sizeof head - 1;
    memcpy(head, m->payload, n);
    head[n] = 0;
    if (sscanf(head, "%d %ld", &p, &seq) != 2 || p < 0 || p >= PUBLISHERS || seq < 0 || seq >= capacity ||
        m->qos != seq % 3) {
        atomic_fetch_add(&wrong_messages, 1);
        return;
    }
    uint8_t *count = &got[sub][p][seq];
    if (*count && m->qos == 2) {
        bool after_restart = m->dup && now_ms() - atomic_load(&broker_restart_ms) < RESTART_WINDOW_MS;
        if (after_restart) {
            atomic_fetch_add(&restart_duplicates[sub], 1);
            return; /* not counted as a duplicate */
        }
        if (atomic_fetch_add(&reported_duplicates, 1) < 20)
            printf("duplicate: subscriber %d got QoS 2 message %d/%ld again (DUP flag %d) at %ld ms\n", sub, p,
                   seq, m->dup, now_ms() - start_ms);
    }
    if (*count < 255)
        ++*count;
}

/* ---- churn and short-lived clients ---------------------------------------------------------- */

static void on_churn(mqttc_client *c, const mqttc_message *m, void *u) {
    (void)c, (void)m, (void)u;
    atomic_fetch_add(&churn_received, 1);
}

static void churn_step(mqttc_client *c, uint32_t *rnd) {
    char filter[32];
    mqttc_token t;
    snprintf(filter, sizeof filter, "soak/churn/%u", next_random(rnd) % CHURN_FILTERS);
    mqttc_status st;
    switch (next_random(rnd) % 3) {
    case 0:
        st = mqttc_subscribe(c, filter, (int)(next_random(rnd) % 3), on_churn, NULL, &t);
        break;
    case 1:
        st = mqttc_unsubscribe(c, filter, &t);
        break;
    default:
        st = mqttc_publish(c, filter, "churn", 5, (int)(next_random(rnd) % 3), false, &t);
    }
    if (st != MQTTC_OK)
        atomic_fetch_add(&churn_failures, 1);
}

static void short_lived(void) {
    mqttc_client *c = new_client(NULL, true, OTHER_TOKEN_HISTORY);
    mqttc_token t;
    bool ok = mqttc_connect(c, &t) == MQTTC_OK && mqttc_token_wait(c, t, 5000) == MQTTC_OK &&
              mqttc_publish(c, "soak/short", "hello", 5, 1, false, &t) == MQTTC_OK &&
              mqttc_token_wait(c, t, 5000) == MQTTC_OK && mqttc_disconnect(c, &t) == MQTTC_OK &&
              mqttc_token_wait(c, t, 5000) == MQTTC_OK;
    /* Fails while the broker restarts or a drop hits it: counted, not an error. */
    atomic_fetch_add(ok ? &short_lived_ok : &short_lived_failed, 1);
    mqttc_client_free(c);
}

/* ---- the account --------------------------------------------------------------------------- */

typedef struct {
    long promised, lost, dup1, dup2, qos0_sent, qos0_got;
} account;

static account tally(int sub) {
    account a = {0, 0, 0, 0, 0, 0};
    for (int p = 0; p < PUBLISHERS; p++)
        for (long seq = 0; seq < atomic_load(&published[p]); seq++) {
            int qos = (int)(seq % 3);
            bool ok = sent[p][seq] == 100;
            uint8_t n = got[sub][p][seq];
            if (qos == 0) {
                a.qos0_sent += ok;
                a.qos0_got += n > 0;
                continue;
            }
            a.promised += ok;
            a.lost += ok && n == 0;
            if (n > 1)
                *(qos == 1 ? &a.dup1 : &a.dup2) += 1;
        }
    return a;
}

/* While draining, this reads the subscribers' counters as their callback threads write them (one
 * writer each, bytes that only grow): a stale read only makes the drain wait another round. The
 * final account is taken after the subscribers are freed. */
static long missing(void) {
    long m = 0;
    for (int s = 0; s < SUBSCRIBERS; s++)
        m += tally(s).lost;
    return m;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc != 5) {
        fprintf(stderr, "usage: soak <host> <port> <seconds> <messages per second per publisher>\n");
        return 2;
    }
    host = argv[1];
    port = (uint16_t)atoi(argv[2]);
    long seconds = atol(argv[3]), rate = atol(argv[4]);
    if (seconds < 1 || rate < 1)
        FAIL("seconds and rate must be positive");
    capacity = seconds * rate + rate * 10; /* what the pacing allows, with room to spare */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigusr1;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    for (int p = 0; p < PUBLISHERS; p++) {
        sent[p] = ledger();
        for (int s = 0; s < SUBSCRIBERS; s++)
            got[s][p] = ledger();
    }
    size_t heap_before_clients = live_heap_kib();

    mqttc_client *subs[SUBSCRIBERS];
    for (int s = 0; s < SUBSCRIBERS; s++) {
        char id[32];
        snprintf(id, sizeof id, "soak-sub-%d", s);
        subs[s] = new_client(id, false, OTHER_TOKEN_HISTORY);
        connect_first(subs[s], id);
        mqttc_token t;
        CHECK(mqttc_subscribe(subs[s], "soak/data/#", 2, on_data, (void *)(intptr_t)s, &t));
        wait_ok(subs[s], t, 60000, "subscribe");
    }
    publisher pubs[PUBLISHERS];
    pthread_t threads[PUBLISHERS];
    for (int p = 0; p < PUBLISHERS; p++) {
        char id[32];
        snprintf(id, sizeof id, "soak-pub-%d", p);
        pubs[p] = (publisher){p, rate, new_client(id, false, PUBLISHER_TOKEN_HISTORY)};
        connect_first(pubs[p].client, id);
    }
    mqttc_client *churner = new_client("soak-churn", true, OTHER_TOKEN_HISTORY);
    connect_first(churner, "soak-churn");
    printf("started: %d publishers at %ld msg/s, %d subscribers, %ld s\n", PUBLISHERS, rate, SUBSCRIBERS, seconds);
    for (int p = 0; p < PUBLISHERS; p++)
        if (pthread_create(&threads[p], NULL, publish_loop, &pubs[p]) != 0)
            FAIL("start publisher %d", p);

    uint32_t rnd = 12345;
    start_ms = now_ms();
    long t0 = start_ms, end = t0 + seconds * 1000, next_short = t0 + 1000, next_progress = t0 + 10000;
    long next_heap = t0;
    while (now_ms() < end) {
        if (now_ms() >= next_heap) {
            printf("heap: %ld ms %zu KiB\n", now_ms() - t0, live_heap_kib());
            next_heap += 2000;
        }
        churn_step(churner, &rnd);
        if (now_ms() >= next_short) {
            short_lived();
            next_short += 1000;
        }
        if (now_ms() >= next_progress) {
            long total = 0;
            for (int p = 0; p < PUBLISHERS; p++)
                total += atomic_load(&published[p]);
            printf("progress: %ld s, %ld published, %ld connections up, %ld lost\n", (now_ms() - t0) / 1000, total,
                   atomic_load(&connection_ups), atomic_load(&connection_losses));
            next_progress += 10000;
        }
        sleep_ms(50);
    }
    atomic_store(&stop_publishing, true);
    for (int p = 0; p < PUBLISHERS; p++)
        pthread_join(threads[p], NULL);
    printf("traffic stopped after %ld s; draining\n", (now_ms() - t0) / 1000);
    long drain_start = now_ms();
    while (missing() > 0 && now_ms() - drain_start < DRAIN_MS)
        sleep_ms(500);
    printf("drained in %ld ms\n", now_ms() - drain_start);

    /* Counted before the clients go, while their callbacks can no longer run concurrently. */
    for (int p = 0; p < PUBLISHERS; p++) {
        mqttc_token t;
        CHECK(mqttc_disconnect(pubs[p].client, &t));
        wait_ok(pubs[p].client, t, 30000, "publisher disconnect");
        mqttc_client_free(pubs[p].client);
    }
    for (int s = 0; s < SUBSCRIBERS; s++) {
        mqttc_token t;
        CHECK(mqttc_disconnect(subs[s], &t));
        wait_ok(subs[s], t, 30000, "subscriber disconnect");
        mqttc_client_free(subs[s]);
    }
    mqttc_client_free(churner);
    printf("result: live heap %zu KiB before the first client, %zu KiB after freeing the last\n",
           heap_before_clients, live_heap_kib());

    long failed = 0;
    for (int p = 0; p < PUBLISHERS; p++)
        printf("result: publisher %d published %ld\n", p, atomic_load(&published[p]));
    for (int q = 0; q < 3; q++) {
        printf("result: qos %d tokens:", q);
        for (int s = 0; s < 128; s++)
            if (atomic_load(&status_count[q][s]))
                printf(" %s=%ld", mqttc_status_str(-s), atomic_load(&status_count[q][s]));
        printf("\n");
    }
    for (int s = 0; s < SUBSCRIBERS; s++) {
        account a = tally(s);
        printf("result: subscriber %d: promised(qos>=1)=%ld lost=%ld qos2_duplicates=%ld "
               "(and %ld re-sent by the broker after its restarts) qos1_duplicates=%ld qos0 %ld/%ld received\n",
               s, a.promised, a.lost, a.dup2, atomic_load(&restart_duplicates[s]), a.dup1, a.qos0_got,
               a.qos0_sent);
        failed += a.lost + a.dup2;
    }
    printf("result: connections up=%ld lost=%ld; short-lived clients ok=%ld failed=%ld; churn received=%ld "
           "refused=%ld; malformed=%ld\n",
           atomic_load(&connection_ups), atomic_load(&connection_losses), atomic_load(&short_lived_ok),
           atomic_load(&short_lived_failed), atomic_load(&churn_received), atomic_load(&churn_failures),
           atomic_load(&wrong_messages));
    failed += atomic_load(&wrong_messages);
    for (int p = 0; p < PUBLISHERS; p++) {
        free(sent[p]);
        for (int s = 0; s < SUBSCRIBERS; s++)
            free(got[s][p]);
    }
    if (failed) {
        /* Not FAIL: the library's last error has nothing to do with it. */
        printf("FAIL: %ld message(s) lost, duplicated at QoS 2 or malformed\n", failed);
        return 1;
    }
    printf("soak: ok\n");
    return 0;
}
