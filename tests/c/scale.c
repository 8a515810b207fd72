/*
 * Scale and churn through the public C API, against a real mosquitto (tests/scale.rs runs it).
 * One scenario per run:
 *
 *   scale <port> clients <n> <rounds>
 *       n clients in this process, each subscribed (QoS 1) to its own topic scale/c/<i>; client i
 *       publishes `rounds` QoS 1 messages to the topic of client (i+1)%n. Every client must get
 *       exactly `rounds` messages, on its own callback (client pointer and userdata checked), from
 *       its left neighbour, in round order. Then all disconnect and are freed, after which the
 *       process must be back to its thread and descriptor counts from before the first client.
 *
 *   scale <port> pool <n> <rounds> <threads>
 *       The same on one mqttc_pool of <threads> threads (0: one per core) that every client
 *       joins: the process then holds the pool's threads, not two per client. The pool is freed
 *       with the clients, after which the process is back to its counts as before.
 *
 *   scale <port> churn <cycles> <rss_growth_limit_kib>
 *       `cycles` times: create a client, connect, wait for the CONNACK, publish one QoS 1 message
 *       and wait for its PUBACK, then free it (every other cycle after a clean disconnect, the
 *       others straight away). Every connect and publish must succeed, a subscriber must receive
 *       every message, and threads and descriptors must be back at their baseline at each of ten
 *       checkpoints; resident memory must not grow by more than the limit from the first
 *       checkpoint to the last (0: not checked, for AddressSanitizer builds, whose quarantine of
 *       freed memory grows it by design; LeakSanitizer checks for leaks there instead).
 *
 *   scale <port> threads <threads> <per_thread>
 *       `threads` threads publish `per_thread` messages each on ONE client at once, cycling QoS
 *       0, 1, 2. Every token must complete with MQTTC_OK (waited on, and seen once each by the
 *       completion callback); a subscriber on another client must receive every message exactly
 *       once, at the QoS it was published with, and each thread's QoS 1 and QoS 2 messages in the
 *       order it published them. (MQTT orders messages per topic and QoS only: mosquitto
 *       forwards a QoS 2 message at PUBREL, so across QoS levels the order may differ.)
 *
 * Each prints measurements (times, threads, resident memory, descriptors) and a final
 * "<scenario>: ok" line; any failure prints FAIL and exits 1. Every wait is bounded.
 */
#include "check.h"
#include "clock.h"
#include "../../c_examples/proc_self.h"

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* Longest any single phase may take before the run counts as hung. */
#define PHASE_TIMEOUT_MS 60000L

/* Open descriptors of this process (not counting the one used to list them). */
static long fd_count(void) {
    DIR *d = opendir("/proc/self/fd");
    long n = 0;
    if (!d)
        FAIL("opendir /proc/self/fd");
    while (readdir(d))
        n++;
    closedir(d);
    return n - 3; /* ".", "..", and the directory's own descriptor */
}

typedef struct {
    long threads, rss_kib, fds;
} usage;

static usage measure(void) {
    return (usage){proc_status("Threads"), proc_status("VmRSS"), fd_count()};
}

/* Threads of freed clients have been joined, so they are gone at once; the short bounded wait
 * only covers the kernel's bookkeeping of an exiting thread. */
static usage await_baseline(usage base, const char *what) {
    usage u = measure();
    for (long deadline = now_ms() + 2000; (u.threads != base.threads || u.fds != base.fds) && now_ms() < deadline;
         u = measure())
        sleep_ms(10);
    if (u.threads != base.threads || u.fds != base.fds)
        FAIL("%s: %ld threads and %ld descriptors, baseline %ld and %ld", what, u.threads, u.fds, base.threads,
             base.fds);
    return u;
}

static mqttc_status wait_until(const mqttc_client *c, mqttc_token t, long deadline) {
    long left = deadline - now_ms();
    return mqttc_token_wait(c, t, left > 0 ? (uint32_t)left : 0);
}

/* Waits for tokens[i] of clients[i] (or of clients[0] when one client issued them all), all by
 * one deadline; each must complete with MQTTC_OK. */
static void wait_all(mqttc_client *const *clients, int nclients, const mqttc_token *tokens, int n, const char *what) {
    long deadline = now_ms() + PHASE_TIMEOUT_MS;
    for (int i = 0; i < n; i++) {
        mqttc_status st = wait_until(clients[nclients == 1 ? 0 : i], tokens[i], deadline);
        if (st != MQTTC_OK)
            FAIL("%s: token %d of %d: %s", what, i, n, mqttc_status_str(st));
    }
}

/* Waits for *counter to reach want, then a little longer: a message arriving twice must not slip
 * past just because the count was right for a moment. */
static void await_total(atomic_long *counter, long want, const char *what) {
    long deadline = now_ms() + PHASE_TIMEOUT_MS;
    while (atomic_load(counter) < want && now_ms() < deadline)
        sleep_ms(5);
    sleep_ms(200);
    if (atomic_load(counter) != want)
        FAIL("%s: %ld, want %ld", what, atomic_load(counter), want);
}

/* The pool new clients join, if any. */
static mqttc_pool *pool;

static mqttc_client *new_client(uint16_t port, const char *id) {
    mqttc_options o;
    mqttc_options_init(&o);
    o.client_id = id;
    o.pool = pool;
    o.connect_timeout_ms = 30000;
    /* Nothing here should reconnect: a lost link must fail the run, not be papered over. */
    o.auto_reconnect = false;
    mqttc_client *c = NULL;
    CHECK(mqttc_client_new("127.0.0.1", port, &o, &c));
    return c;
}

static void connect_now(mqttc_client *c) {
    mqttc_token t;
    CHECK(mqttc_connect(c, &t));
    wait_all(&c, 1, &t, 1, "connect");
}

static void subscribe_now(mqttc_client *c, const char *filter, int qos, mqttc_message_cb cb, void *userdata) {
    mqttc_token t;
    CHECK(mqttc_subscribe(c, filter, qos, cb, userdata, &t));
    wait_all(&c, 1, &t, 1, "subscribe");
}

static void disconnect_and_free(mqttc_client *c) {
    mqttc_token t;
    CHECK(mqttc_disconnect(c, &t));
    wait_all(&c, 1, &t, 1, "disconnect");
    mqttc_client_free(c);
}

/* The first failure seen on a callback thread; reported by the main thread. */
static atomic_long callback_errors;
static char first_error[256];
static pthread_mutex_t error_lock = PTHREAD_MUTEX_INITIALIZER;

static void record_callback_error(const char *text) {
    pthread_mutex_lock(&error_lock);
    if (atomic_fetch_add(&callback_errors, 1) == 0)
        snprintf(first_error, sizeof first_error, "%s", text);
    pthread_mutex_unlock(&error_lock);
}

/* A callback cannot FAIL (exit) from a library thread mid-delivery without racing the main
 * thread's report, so it records what went wrong and the main thread fails afterwards. */
#define CALLBACK_ERROR(...)                                                                        \
    do {                                                                                           \
        char text_[200];                                                                           \
        snprintf(text_, sizeof text_, __VA_ARGS__);                                                \
        record_callback_error(text_);                                                              \
    } while (0)

/* The payload as a NUL-terminated string (cut to the buffer), for sscanf. */
static const char *payload_text(const mqttc_message *m, char *buf, size_t size) {
    size_t n = m->payload_len < size - 1 ? m->payload_len : size - 1;
    memcpy(buf, m->payload, n);
    buf[n] = 0;
    return buf;
}

static void check_callback_errors(const char *what) {
    pthread_mutex_lock(&error_lock);
    if (atomic_load(&callback_errors) != 0)
        FAIL("%s: %ld wrong message(s), first: %s", what, atomic_load(&callback_errors), first_error);
    pthread_mutex_unlock(&error_lock);
}

static atomic_long received;

/* ---- clients ------------------------------------------------------------------------------- */

typedef struct {
    mqttc_client *client;
    int index;
    char topic[32];
    long next_round; /* touched only on this client's callback thread */
} peer;

static int peer_count;

static void on_peer_message(mqttc_client *c, const mqttc_message *m, void *userdata) {
    peer *p = userdata;
    int from = -1;
    long round = -1;
    char text[64];
    if (c != p->client)
        CALLBACK_ERROR("client %d's callback ran for another client", p->index);
    else if (strcmp(m->topic, p->topic) != 0)
        CALLBACK_ERROR("client %d got a message on %s", p->index, m->topic);
    else if (sscanf(payload_text(m, text, sizeof text), "from %d round %ld", &from, &round) != 2 ||
             from != (p->index + peer_count - 1) % peer_count || round != p->next_round)
        CALLBACK_ERROR("client %d: got from %d round %ld, want round %ld", p->index, from, round, p->next_round);
    p->next_round = round + 1;
    atomic_fetch_add(&received, 1);
}

/* pool_threads < 0: no pool, each client has its own threads. */
static void run_clients(uint16_t port, int n, int rounds, int pool_threads) {
    usage base = measure();
    if (pool_threads >= 0)
        CHECK(mqttc_pool_new((uint32_t)pool_threads, &pool));
    peer *peers = calloc((size_t)n, sizeof *peers);
    mqttc_client **clients = calloc((size_t)n, sizeof *clients);
    mqttc_token *tokens = calloc((size_t)n * (size_t)rounds, sizeof *tokens);
    if (!peers || !clients || !tokens)
        FAIL("out of memory");
    peer_count = n;

    long t0 = now_ms();
    for (int i = 0; i < n; i++) {
        char id[48];
        snprintf(id, sizeof id, "scale-c-%d", i);
        peers[i].index = i;
        snprintf(peers[i].topic, sizeof peers[i].topic, "scale/c/%d", i);
        clients[i] = peers[i].client = new_client(port, id);
    }
    long t_new = now_ms();
    for (int i = 0; i < n; i++)
        CHECK(mqttc_connect(clients[i], &tokens[i]));
    wait_all(clients, n, tokens, n, "connect");
    long t_connect = now_ms();
    for (int i = 0; i < n; i++)
        CHECK(mqttc_subscribe(clients[i], peers[i].topic, 1, on_peer_message, &peers[i], &tokens[i]));
    wait_all(clients, n, tokens, n, "subscribe");
    for (int i = 0; i < n; i++) {
        uint8_t granted = 0xff;
        size_t count = 0;
        CHECK(mqttc_token_codes(clients[i], tokens[i], &granted, 1, &count));
        if (count != 1 || granted != 1)
            FAIL("client %d: granted QoS %d (%zu codes)", i, granted, count);
    }
    long t_subscribe = now_ms();
    usage peak = measure();

    /* Round by round, so that each client's messages go out in round order on its one topic. */
    mqttc_client **senders = calloc((size_t)n * (size_t)rounds, sizeof *senders);
    if (!senders)
        FAIL("out of memory");
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < n; i++) {
            char payload[48];
            int len = snprintf(payload, sizeof payload, "from %d round %d", i, r);
            senders[r * n + i] = clients[i];
            CHECK(mqttc_publish(clients[i], peers[(i + 1) % n].topic, payload, (size_t)len, 1, false,
                                &tokens[r * n + i]));
        }
    wait_all(senders, n * rounds, tokens, n * rounds, "publish");
    await_total(&received, (long)n * rounds, "messages received");
    long t_traffic = now_ms();
    check_callback_errors("clients");
    for (int i = 0; i < n; i++)
        if (peers[i].next_round != rounds)
            FAIL("client %d got %ld rounds, want %d", i, peers[i].next_round, rounds);
    usage busy = measure();
    if (busy.threads > peak.threads)
        peak.threads = busy.threads;
    if (busy.rss_kib > peak.rss_kib)
        peak.rss_kib = busy.rss_kib;

    for (int i = 0; i < n; i++)
        CHECK(mqttc_disconnect(clients[i], &tokens[i]));
    wait_all(clients, n, tokens, n, "disconnect");
    for (int i = 0; i < n; i++)
        if (mqttc_client_state(clients[i]) != MQTTC_STATE_DISCONNECTED)
            FAIL("client %d in state %d after its disconnect", i, mqttc_client_state(clients[i]));
    long t_disconnect = now_ms();
    for (int i = 0; i < n; i++)
        mqttc_client_free(clients[i]);
    mqttc_pool_free(pool);
    pool = NULL;
    long t_free = now_ms();
    usage after = await_baseline(base, "after freeing every client");

    printf("clients: n=%d rounds=%d pool_threads=%d messages=%ld\n", n, rounds, pool_threads,
           atomic_load(&received));
    printf("clients: ms create=%ld connect=%ld subscribe=%ld traffic=%ld disconnect=%ld free=%ld\n", t_new - t0,
           t_connect - t_new, t_subscribe - t_connect, t_traffic - t_subscribe, t_disconnect - t_traffic,
           t_free - t_disconnect);
    printf("clients: threads baseline=%ld peak=%ld after=%ld\n", base.threads, peak.threads, after.threads);
    printf("clients: rss_kib baseline=%ld peak=%ld after=%ld\n", base.rss_kib, peak.rss_kib, after.rss_kib);
    printf("clients: fds baseline=%ld peak=%ld after=%ld\n", base.fds, peak.fds, after.fds);
    free(senders);
    free(tokens);
    free(clients);
    free(peers);
    printf("clients: ok\n");
}

/* ---- churn --------------------------------------------------------------------------------- */

static void on_count(mqttc_client *c, const mqttc_message *m, void *userdata) {
    (void)c, (void)m, (void)userdata;
    atomic_fetch_add(&received, 1);
}

static void run_churn(uint16_t port, int cycles, long rss_growth_limit_kib) {
    /* The subscriber is part of the baseline: it lives through all cycles. */
    mqttc_client *sub = new_client(port, "scale-churn-sub");
    connect_now(sub);
    subscribe_now(sub, "scale/churn", 1, on_count, NULL);
    usage base = measure(), first = base, last = base;
    bool have_first = false;
    long max_rss = base.rss_kib;
    int checkpoint = cycles >= 10 ? cycles / 10 : 1;

    long t0 = now_ms();
    for (int i = 1; i <= cycles; i++) {
        mqttc_client *c = new_client(port, NULL);
        connect_now(c);
        mqttc_token t;
        CHECK(mqttc_publish(c, "scale/churn", "cycle", 5, 1, false, &t));
        wait_all(&c, 1, &t, 1, "publish");
        if (i % 2)
            disconnect_and_free(c);
        else
            mqttc_client_free(c);
        if (i % checkpoint == 0) {
            last = await_baseline(base, "after a churn checkpoint");
            if (!have_first)
                first = last, have_first = true;
            if (last.rss_kib > max_rss)
                max_rss = last.rss_kib;
        }
    }
    long took = now_ms() - t0;
    await_total(&received, cycles, "messages received");
    disconnect_and_free(sub);

    printf("churn: cycles=%d ms=%ld per_cycle_us=%ld\n", cycles, took, took * 1000 / (cycles ? cycles : 1));
    printf("churn: threads baseline=%ld end=%ld\n", base.threads, last.threads);
    printf("churn: fds baseline=%ld end=%ld\n", base.fds, last.fds);
    printf("churn: rss_kib baseline=%ld first_checkpoint=%ld max=%ld end=%ld\n", base.rss_kib, first.rss_kib, max_rss,
           last.rss_kib);
    if (rss_growth_limit_kib > 0 && last.rss_kib - first.rss_kib > rss_growth_limit_kib)
        FAIL("resident memory grew by %ld KiB over the cycles (limit %ld)", last.rss_kib - first.rss_kib,
             rss_growth_limit_kib);
    printf("churn: ok\n");
}

/* ---- threads ------------------------------------------------------------------------------- */

#define MAX_THREADS 64

typedef struct {
    mqttc_client *client;
    int index, count;
    mqttc_token *tokens;
} publisher;

static int publishers, per_publisher;
static unsigned char *seen;                 /* seen[thread * per_publisher + seq]; callback thread only */
static long next_seq[MAX_THREADS][3];       /* per thread and QoS: the lowest sequence still to come */
static atomic_long completions_ok, completions_failed;

static void *publish_thread(void *arg) {
    publisher *p = arg;
    char topic[32], payload[64];
    snprintf(topic, sizeof topic, "scale/t/%d", p->index);
    for (int seq = 0; seq < p->count; seq++) {
        int qos = seq % 3;
        /* Sizes vary with the sequence. */
        int len = snprintf(payload, sizeof payload, "%d %d %d %.*s", p->index, qos, seq, seq % 24,
                           "........................");
        CHECK(mqttc_publish(p->client, topic, payload, (size_t)len, qos, false, &p->tokens[seq]));
    }
    mqttc_client *clients[1] = {p->client};
    wait_all(clients, 1, p->tokens, p->count, "publish");
    return NULL;
}

static void on_thread_message(mqttc_client *c, const mqttc_message *m, void *userdata) {
    (void)c, (void)userdata;
    int thread = -1, qos = -1;
    long seq = -1;
    char text[64];
    if (sscanf(payload_text(m, text, sizeof text), "%d %d %ld", &thread, &qos, &seq) != 3 || thread < 0 ||
        thread >= publishers || qos != seq % 3 || seq < 0 || seq >= per_publisher) {
        CALLBACK_ERROR("malformed message \"%s\"", text);
    } else if (m->qos != qos) {
        CALLBACK_ERROR("thread %d seq %ld arrived at QoS %d", thread, seq, m->qos);
    } else if (seen[(long)thread * per_publisher + seq]++) {
        CALLBACK_ERROR("thread %d seq %ld arrived twice", thread, seq);
    } else if (qos > 0 && seq < next_seq[thread][qos]) {
        CALLBACK_ERROR("thread %d: QoS %d message %ld after %ld", thread, qos, seq, next_seq[thread][qos] - 1);
    }
    if (thread >= 0 && thread < publishers && qos >= 0 && qos < 3 && seq >= next_seq[thread][qos])
        next_seq[thread][qos] = seq + 1;
    atomic_fetch_add(&received, 1);
}

static void on_complete(mqttc_client *c, mqttc_token t, mqttc_status st, void *userdata) {
    (void)c, (void)t, (void)userdata;
    atomic_fetch_add(st == MQTTC_OK ? &completions_ok : &completions_failed, 1);
}

static void run_threads(uint16_t port, int threads, int per_thread) {
    if (threads < 1 || threads > MAX_THREADS || per_thread < 1)
        FAIL("threads must be 1..%d and messages per thread at least 1", MAX_THREADS);
    publishers = threads;
    per_publisher = per_thread;
    long total = (long)threads * per_thread;
    seen = calloc((size_t)total, 1);
    if (!seen)
        FAIL("out of memory");

    mqttc_client *sub = new_client(port, "scale-threads-sub");
    connect_now(sub);
    subscribe_now(sub, "scale/t/+", 2, on_thread_message, NULL);
    mqttc_client *pub = new_client(port, "scale-threads-pub");
    CHECK(mqttc_client_set_on_complete(pub, on_complete, NULL));
    connect_now(pub);

    publisher ps[MAX_THREADS];
    pthread_t ids[MAX_THREADS];
    long t0 = now_ms();
    for (int i = 0; i < threads; i++) {
        ps[i] = (publisher){pub, i, per_thread, calloc((size_t)per_thread, sizeof(mqttc_token))};
        if (!ps[i].tokens || pthread_create(&ids[i], NULL, publish_thread, &ps[i]) != 0)
            FAIL("start publishing thread %d", i);
    }
    for (int i = 0; i < threads; i++)
        pthread_join(ids[i], NULL);
    long t_acked = now_ms();
    await_total(&received, total, "messages received");
    long t_received = now_ms();
    check_callback_errors("threads");
    /* The connect's completion counts too. */
    await_total(&completions_ok, total + 1, "completion callbacks with MQTTC_OK");
    if (atomic_load(&completions_failed) != 0)
        FAIL("%ld completion callbacks with an error", atomic_load(&completions_failed));
    usage u = measure();

    disconnect_and_free(pub);
    disconnect_and_free(sub);
    for (int i = 0; i < threads; i++)
        free(ps[i].tokens);
    free(seen);
    printf("threads: threads=%d per_thread=%d messages=%ld\n", threads, per_thread, total);
    printf("threads: ms all_tokens_ok=%ld all_received=%ld (%ld msg/s)\n", t_acked - t0, t_received - t0,
           total * 1000 / (t_received - t0 + 1));
    printf("threads: process threads=%ld rss_kib=%ld\n", u.threads, u.rss_kib);
    printf("threads: ok\n");
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 4) {
        fprintf(stderr, "usage: scale <port> clients <n> <rounds> | pool <n> <rounds> <threads> | churn <cycles> <rss_growth_limit_kib> | "
                        "threads <threads> <per_thread>\n");
        return 2;
    }
    raise_fd_limit();
    uint16_t port = (uint16_t)atoi(argv[1]);
    const char *mode = argv[2];
    int a = atoi(argv[3]), b = argc > 4 ? atoi(argv[4]) : 0;
    if (strcmp(mode, "clients") == 0 && a > 0 && b > 0)
        run_clients(port, a, b, -1);
    else if (strcmp(mode, "pool") == 0 && a > 0 && b > 0 && argc > 5)
        run_clients(port, a, b, atoi(argv[5]));
    else if (strcmp(mode, "churn") == 0 && a > 0 && argc > 4)
        run_churn(port, a, b);
    else if (strcmp(mode, "threads") == 0)
        run_threads(port, a, b);
    else {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    return 0;
}
