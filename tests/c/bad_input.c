/*
 * Bad input through the C API: every call gets a clear status (and a detail from
 * mqttc_last_error), never a crash. Usage: bad_input <port of a running broker>
 * Prints one line per case; exits non-zero if any case got an unexpected status.
 *
 * Lengths and counts beyond MQTT's limits come with a pointer to a buffer that ends where an
 * unreadable page begins: a library that used such a length before checking it would read past
 * the buffer and crash this program (or, for lengths over PTRDIFF_MAX, abort on its own checks).
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include <mqttclient.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int failures;

static void expect(const char *name, mqttc_status got, mqttc_status want) {
    const char *detail = mqttc_last_error();
    int ok = got == want && (want == MQTTC_OK || (detail && detail[0]));
    printf("%-44s %-4s got %d (%s) want %d; detail: %s\n", name, ok ? "ok" : "FAIL", got,
           mqttc_status_str(got), want, detail ? detail : "(null)");
    if (!ok)
        failures++;
}

static void on_msg(mqttc_client *c, const mqttc_message *m, void *u) {
    (void)c;
    (void)m;
    (void)u;
}

static int drops;
static void count_drop(void *u) {
    (void)u;
    drops++;
}

static int releases;
static void count_release(void *u) {
    (void)u;
    releases++;
}

/* `n` bytes that end where an unreadable page begins: reading one byte past them faults. */
static void *before_guard_page(size_t n) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *p = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED || mprotect(p + page, page, PROT_NONE) != 0) {
        perror("guard page");
        exit(2);
    }
    return p + page - n;
}

/* Lengths no MQTT string or binary field can have (at most 65,535 bytes): the largest, the first
 * one a slice cannot have, and the first one over the limit. */
static const size_t huge_field[] = {SIZE_MAX, (size_t)PTRDIFF_MAX + 1, 65536};
#define HUGE_FIELDS (sizeof huge_field / sizeof huge_field[0])

/* Counts of filters no SUBSCRIBE (at least 4 bytes each) or UNSUBSCRIBE (3) can carry within
 * MQTT's 268,435,455 bytes of remaining length, the last one the first count over that. */
static const size_t huge_subscribe[] = {SIZE_MAX, (size_t)PTRDIFF_MAX + 1, 67108864};
static const size_t huge_unsubscribe[] = {SIZE_MAX, (size_t)PTRDIFF_MAX + 1, 89478485};

static void expect_n(const char *what, size_t n, mqttc_status got, mqttc_status want) {
    char name[96];
    snprintf(name, sizeof name, "%s %zu", what, n);
    expect(name, got, want);
}

/* Options with a password or a will payload of a length MQTT cannot carry. */
static void huge_option_lengths(uint16_t port) {
    mqttc_client *c = NULL;
    mqttc_options opts;
    uint8_t *pw = before_guard_page(2);
    memcpy(pw, "pw", 2);
    for (size_t i = 0; i < 2 * HUGE_FIELDS; i++) {
        int will = i % 2;
        size_t len = huge_field[i / 2];
        mqttc_options_init(&opts);
        if (will) {
            opts.will_topic = "w";
            opts.will_payload = pw;
            opts.will_payload_len = len;
        } else {
            opts.username = "u";
            opts.password = pw;
            opts.password_len = len;
        }
        expect_n(will ? "will_payload_len" : "password_len", len, mqttc_client_new("127.0.0.1", port, &opts, &c),
                 MQTTC_ERR_INVALID_ARGUMENT);
    }
    const char **uris = before_guard_page(sizeof *uris);
    uris[0] = "127.0.0.1";
    expect_n("client_new_uris count", SIZE_MAX, mqttc_client_new_uris(uris, SIZE_MAX, NULL, &c),
             MQTTC_ERR_INVALID_ARGUMENT);
}

/* A binary property, a message to copy, a publish, and (un)subscribes with lengths and counts
 * beyond MQTT's limits. */
static void huge_lengths_and_counts(mqttc_client *c) {
    mqttc_token t = 0;
    uint8_t *bytes = before_guard_page(1);
    bytes[0] = 'x';
    mqttc_properties *props = NULL;
    expect("properties_new", mqttc_properties_new(&props), MQTTC_OK);
    for (size_t i = 0; i < HUGE_FIELDS; i++)
        expect_n("properties_set_binary length", huge_field[i],
                 mqttc_properties_set_binary(props, MQTTC_PROP_CORRELATION_DATA, bytes, huge_field[i]),
                 MQTTC_ERR_INVALID_ARGUMENT);
    mqttc_properties_free(props);

    char *topic = before_guard_page(2);
    memcpy(topic, "t", 2);
    mqttc_message m = {.topic = topic, .topic_len = 1, .payload = bytes, .payload_len = 1};
    mqttc_message *copy = NULL;
    expect("message_copy of a made-up message", mqttc_message_copy(&m, &copy), MQTTC_OK);
    mqttc_message_free(copy);
    for (size_t i = 0; i < HUGE_FIELDS; i++) {
        m.topic_len = huge_field[i];
        expect_n("message_copy topic_len", huge_field[i], mqttc_message_copy(&m, &copy),
                 MQTTC_ERR_INVALID_ARGUMENT);
    }
    m.topic_len = 1;
    static const size_t huge_payload[] = {SIZE_MAX, (size_t)PTRDIFF_MAX + 1, 268435456};
    for (size_t i = 0; i < sizeof huge_payload / sizeof huge_payload[0]; i++) {
        m.payload_len = huge_payload[i];
        expect_n("message_copy payload_len", huge_payload[i], mqttc_message_copy(&m, &copy),
                 MQTTC_ERR_INVALID_ARGUMENT);
    }

    expect_n("publish len", SIZE_MAX, mqttc_publish(c, "t", bytes, SIZE_MAX, 0, false, &t),
             MQTTC_ERR_PAYLOAD_TOO_LARGE);
    expect_n("publish_nocopy len", SIZE_MAX,
             mqttc_publish_nocopy(c, "t", bytes, SIZE_MAX, 0, false, NULL, count_release, NULL, &t),
             MQTTC_ERR_PAYLOAD_TOO_LARGE);
    if (releases != 1) {
        printf("FAIL: a refused nocopy publish released its payload %d time(s), not once\n", releases);
        failures++;
    }

    mqttc_subscription *one = before_guard_page(sizeof *one);
    *one = (mqttc_subscription)MQTTC_SUBSCRIPTION_INIT("t", 0, on_msg, NULL, count_drop, 0);
    const char **filters = before_guard_page(sizeof *filters);
    filters[0] = "t";
    for (size_t i = 0; i < sizeof huge_subscribe / sizeof huge_subscribe[0]; i++) {
        expect_n("subscribe_many count", huge_subscribe[i], mqttc_subscribe_many(c, one, huge_subscribe[i], &t),
                 MQTTC_ERR_INVALID_ARGUMENT);
        expect_n("subscribe_v5 count", huge_subscribe[i], mqttc_subscribe_v5(c, one, huge_subscribe[i], NULL, &t),
                 MQTTC_ERR_INVALID_ARGUMENT);
        expect_n("unsubscribe_many count", huge_unsubscribe[i],
                 mqttc_unsubscribe_many(c, filters, huge_unsubscribe[i], &t), MQTTC_ERR_INVALID_ARGUMENT);
        expect_n("unsubscribe_v5 count", huge_unsubscribe[i],
                 mqttc_unsubscribe_v5(c, filters, huge_unsubscribe[i], NULL, &t), MQTTC_ERR_INVALID_ARGUMENT);
    }
}

/* Publishes beyond the outgoing budget are refused, whole: queued before the first connect, two
 * fit, the third gets MQTTC_ERR_QUEUE_FULL at once, or after outgoing_wait_ms. */
static void outgoing_budget(uint16_t port) {
    mqttc_options opts;
    mqttc_options_init(&opts);
    int defaults = opts.outgoing_max_messages == 65536 && opts.outgoing_max_bytes == 64u << 20 &&
                   opts.outgoing_wait_ms == 0;
    expect("outgoing budget defaults", defaults ? MQTTC_OK : MQTTC_ERR_INVALID_ARGUMENT, MQTTC_OK);
    opts.queue_before_connect = true;
    opts.outgoing_max_messages = 2;
    opts.outgoing_wait_ms = 50;
    mqttc_client *c = NULL;
    expect("client with an outgoing budget of 2", mqttc_client_new("127.0.0.1", port, &opts, &c), MQTTC_OK);
    for (int i = 0; i < 2; i++)
        expect("publish within the outgoing budget", mqttc_publish(c, "t", "x", 1, 1, false, NULL), MQTTC_OK);
    expect("publish beyond the outgoing budget", mqttc_publish(c, "t", "x", 1, 1, false, NULL),
           MQTTC_ERR_QUEUE_FULL);
    mqttc_client_free(c);
}

/* The message store's options: each mistake is refused with its own status, and a store one
 * client holds cannot be opened by another. */
static void store_options(uint16_t port) {
    mqttc_options opts;
    mqttc_client *c = NULL, *other = NULL;
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/mqttc-bad-input-store-%ld", (long)getpid());
    mqttc_options_init(&opts);
    opts.store_dir = dir;
    expect("store_dir without client_id", mqttc_client_new("127.0.0.1", port, &opts, &c),
           MQTTC_ERR_INVALID_ARGUMENT);
    opts.client_id = "store-client";
    opts.store_sync = 9;
    expect("store_sync 9", mqttc_client_new("127.0.0.1", port, &opts, &c), MQTTC_ERR_INVALID_ARGUMENT);
    opts.store_sync = MQTTC_STORE_SYNC_NONE;
    opts.store_dir = "";
    expect("empty store_dir", mqttc_client_new("127.0.0.1", port, &opts, &c), MQTTC_ERR_INVALID_ARGUMENT);
    opts.store_dir = "\xff\xfe";
    expect("store_dir not UTF-8", mqttc_client_new("127.0.0.1", port, &opts, &c), MQTTC_ERR_INVALID_UTF8);
    opts.store_dir = "/dev/null/store";
    expect("store_dir under a file", mqttc_client_new("127.0.0.1", port, &opts, &c), MQTTC_ERR_STORE);
    opts.store_dir = dir;
    expect("store_dir", mqttc_client_new("127.0.0.1", port, &opts, &c), MQTTC_OK);
    expect("the same store twice", mqttc_client_new("127.0.0.1", port, &opts, &other), MQTTC_ERR_STORE);
    mqttc_client_free(c);
    expect("the store after its client is freed", mqttc_client_new("127.0.0.1", port, &opts, &other), MQTTC_OK);
    mqttc_client_free(other);
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) {
        printf("FAIL: removing %s\n", dir);
        failures++;
    }
}

/* expect(), and the detail names `word`: the field at fault. */
static void expect_naming(const char *name, mqttc_status got, mqttc_status want, const char *word) {
    expect(name, got, want);
    const char *detail = mqttc_last_error();
    if (!detail || !strstr(detail, word)) {
        printf("%-44s FAIL: the detail does not name %s\n", name, word);
        failures++;
    }
}

/* The TLS CA directory, versions and cipher suites: bad values are refused when the client is
 * made, each with a detail naming its field; and like every TLS field, they need a TLS server. */
static void tls_options(uint16_t port) {
    static const char *const no_tls = "no server uses TLS";
    static const struct {
        const char *what;
        bool tls;
        const char *ca_path, *version, *ciphers;
        mqttc_status want;
        const char *named;
    } cases[] = {
        {"tls_ca_path missing", true, "/nonexistent/certs", NULL, NULL, MQTTC_ERR_TLS, "tls_ca_path"},
        {"tls_ca_path a file", true, "/etc/hostname", NULL, NULL, MQTTC_ERR_TLS, "tls_ca_path"},
        {"tls_ca_path not UTF-8", true, "\xff", NULL, NULL, MQTTC_ERR_INVALID_UTF8, "tls_ca_path"},
        {"tls_version tlsv1.1", true, NULL, "tlsv1.1", NULL, MQTTC_ERR_TLS, "tls_version"},
        {"tls_version empty", true, NULL, "", NULL, MQTTC_ERR_TLS, "tls_version"},
        {"tls_version unknown", true, NULL, "tlsv1.2,ssl", NULL, MQTTC_ERR_TLS, "tls_version"},
        {"tls_version not UTF-8", true, NULL, "\xfe", NULL, MQTTC_ERR_INVALID_UTF8, "tls_version"},
        {"tls_ciphers keyword", true, NULL, NULL, "HIGH:!aNULL", MQTTC_ERR_TLS, "tls_ciphers"},
        {"tls_ciphers unknown suite", true, NULL, NULL, "AES128-SHA", MQTTC_ERR_TLS, "tls_ciphers"},
        {"tls_ciphers empty", true, NULL, NULL, "::", MQTTC_ERR_TLS, "tls_ciphers"},
        {"tls_ciphers not UTF-8", true, NULL, NULL, "\xff", MQTTC_ERR_INVALID_UTF8, "tls_ciphers"},
        {"tls_ca_path without TLS", false, "/etc/ssl/certs", NULL, NULL, MQTTC_ERR_INVALID_ARGUMENT, no_tls},
        {"tls_version without TLS", false, NULL, "tlsv1.3", NULL, MQTTC_ERR_INVALID_ARGUMENT, no_tls},
        {"tls_ciphers without TLS", false, NULL, NULL, "ECDHE-RSA-AES128-GCM-SHA256", MQTTC_ERR_INVALID_ARGUMENT,
         no_tls},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mqttc_options opts;
        mqttc_options_init(&opts);
        opts.tls = cases[i].tls;
        /* No CA store needed where the CAs are not what is tested. */
        opts.tls_insecure = cases[i].tls && cases[i].ca_path == NULL;
        opts.tls_ca_path = cases[i].ca_path;
        opts.tls_version = cases[i].version;
        opts.tls_ciphers = cases[i].ciphers;
        mqttc_client *c = NULL;
        expect_naming(cases[i].what, mqttc_client_new("127.0.0.1", port, &opts, &c), cases[i].want, cases[i].named);
        if (c) {
            failures++;
            mqttc_client_free(c);
        }
    }
}

/* A proxy URL that is not socks5h://[username[:password]@]host[:port], and a proxy for a Unix
 * socket, are refused with a detail naming the proxy. */
static void proxy_options(uint16_t port) {
    static const struct {
        const char *what, *url;
        mqttc_status want;
    } cases[] = {
        {"proxy socks5://", "socks5://127.0.0.1:1080", MQTTC_ERR_INVALID_ARGUMENT},
        {"proxy no host", "socks5h://", MQTTC_ERR_INVALID_ARGUMENT},
        {"proxy port 0", "socks5h://127.0.0.1:0", MQTTC_ERR_INVALID_ARGUMENT},
        {"proxy port 65536", "socks5h://127.0.0.1:65536", MQTTC_ERR_INVALID_ARGUMENT},
        {"proxy empty username", "socks5h://:pw@127.0.0.1", MQTTC_ERR_INVALID_ARGUMENT},
        {"proxy not UTF-8", "socks5h://\xff", MQTTC_ERR_INVALID_UTF8},
    };
    mqttc_options opts;
    mqttc_client *c = NULL;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mqttc_options_init(&opts);
        opts.proxy = cases[i].url;
        expect_naming(cases[i].what, mqttc_client_new("127.0.0.1", port, &opts, &c), cases[i].want, "proxy");
    }
    mqttc_options_init(&opts);
    opts.proxy = "socks5h://127.0.0.1";
    expect_naming("proxy with a unix: server", mqttc_client_new_unix("/tmp/mqtt.sock", &opts, &c),
                  MQTTC_ERR_INVALID_ARGUMENT, "unix:");
    expect("proxy with a TCP server", mqttc_client_new("127.0.0.1", port, &opts, &c), MQTTC_OK);
    mqttc_client_free(c);
}

/* A pool's arguments, a pool in the options, and a bind address. */
static void pool_options(uint16_t port) {
    mqttc_options opts;
    mqttc_client *c = NULL;
    mqttc_pool *pool = NULL;
    mqttc_loop *lp = NULL;
    expect("pool_new NULL out", mqttc_pool_new(1, NULL), MQTTC_ERR_NULL);
    expect("pool_new 5000 threads", mqttc_pool_new(5000, &pool), MQTTC_ERR_INVALID_ARGUMENT);
    expect("pool_new", mqttc_pool_new(1, &pool), MQTTC_OK);
    expect("loop_new", mqttc_loop_new(&lp), MQTTC_OK);
    mqttc_options_init(&opts);
    opts.pool = pool;
    opts.run_loop = lp;
    expect("pool with a loop", mqttc_client_new("127.0.0.1", port, &opts, &c), MQTTC_ERR_INVALID_ARGUMENT);
    opts.run_loop = NULL;
    opts.inline_callbacks = true;
    expect("pool with inline_callbacks", mqttc_client_new("127.0.0.1", port, &opts, &c), MQTTC_ERR_INVALID_ARGUMENT);
    opts.inline_callbacks = false;
    opts.pool = (const mqttc_pool *)lp;
    expect("a loop given as the pool", mqttc_client_new("127.0.0.1", port, &opts, &c), MQTTC_ERR_INVALID_HANDLE);
    opts.pool = pool;
    expect("client on a pool", mqttc_client_new("127.0.0.1", port, &opts, &c), MQTTC_OK);
    mqttc_pool_free(pool);
    expect("a freed pool in the options", mqttc_client_new("127.0.0.1", port, &opts, &c), MQTTC_ERR_INVALID_HANDLE);
    mqttc_token t = 0;
    /* The client holds its pool: it still connects after the handle was freed. */
    expect("connect on a pool whose handle was freed", mqttc_connect(c, &t), MQTTC_OK);
    expect("its wait", mqttc_token_wait(c, t, 10000), MQTTC_OK);
    mqttc_client_free(c);
    mqttc_loop_free(lp);
    mqttc_options_init(&opts);
    opts.bind_address = "not an address";
    expect("bind_address not an address", mqttc_client_new("127.0.0.1", port, &opts, &c), MQTTC_ERR_INVALID_ARGUMENT);
    opts.bind_address = "\xff";
    expect("bind_address not UTF-8", mqttc_client_new("127.0.0.1", port, &opts, &c), MQTTC_ERR_INVALID_UTF8);
    opts.bind_address = "127.0.0.2";
    expect("bind_address 127.0.0.2", mqttc_client_new("127.0.0.1", port, &opts, &c), MQTTC_OK);
    expect("connect from 127.0.0.2", mqttc_connect(c, &t), MQTTC_OK);
    expect("its wait", mqttc_token_wait(c, t, 10000), MQTTC_OK);
    mqttc_client_free(c);
}

static int stub_put(void *u, const char *key, const uint8_t *value, size_t len) {
    (void)u, (void)key, (void)value, (void)len;
    return 0;
}
static int stub_get(void *u, const char *key, mqttc_store_value *out) {
    (void)u, (void)key, (void)out;
    return 0;
}
static int stub_key(void *u, const char *key) {
    (void)u, (void)key;
    return 0;
}
static int stub_list(void *u, mqttc_store_keys *out) {
    (void)u, (void)out;
    return 0;
}
static int stub_clear(void *u) {
    (void)u;
    return 0;
}
static int store_drops;
static void count_store_drop(void *u) {
    (void)u;
    store_drops++;
}

/* A store the application supplies (mqttc_store_new, mqttc_options.store): missing callbacks, a
 * wrong struct_size, NULL handles and both kinds of store at once are refused, each with its
 * status; drop is not called for a store never made. */
static void store_callbacks_options(uint16_t port) {
    mqttc_store *s = NULL;
    mqttc_store_callbacks cb =
        MQTTC_STORE_CALLBACKS_INIT(.put = stub_put, .get = stub_get, .remove = stub_key, .list = stub_list,
                                   .clear = stub_clear, .drop = count_store_drop);
    expect("store_new NULL callbacks", mqttc_store_new(NULL, &s), MQTTC_ERR_NULL);
    expect("store_new NULL out", mqttc_store_new(&cb, NULL), MQTTC_ERR_NULL);
    cb.struct_size = 8;
    expect("store_new struct_size 8", mqttc_store_new(&cb, &s), MQTTC_ERR_STRUCT_SIZE);
    cb.struct_size = sizeof cb;
    cb.put = NULL;
    expect("store_new NULL put", mqttc_store_new(&cb, &s), MQTTC_ERR_INVALID_ARGUMENT);
    cb.put = stub_put;
    cb.get = NULL;
    cb.clear = NULL;
    expect("store_new NULL get and clear", mqttc_store_new(&cb, &s), MQTTC_ERR_INVALID_ARGUMENT);
    if (!strstr(mqttc_last_error(), "get, clear")) {
        printf("FAIL: the detail does not name the missing callbacks: %s\n", mqttc_last_error());
        failures++;
    }
    cb.get = stub_get;
    cb.clear = stub_clear;
    cb.remove = NULL;
    expect("store_new NULL remove", mqttc_store_new(&cb, &s), MQTTC_ERR_INVALID_ARGUMENT);
    cb.remove = stub_key;
    cb.list = NULL;
    expect("store_new NULL list", mqttc_store_new(&cb, &s), MQTTC_ERR_INVALID_ARGUMENT);
    cb.list = stub_list;
    if (store_drops != 0) {
        printf("FAIL: drop ran for a store never made\n");
        failures++;
    }
    expect("store_new", mqttc_store_new(&cb, &s), MQTTC_OK);
    expect("store_value_set NULL out", mqttc_store_value_set(NULL, (const uint8_t *)"x", 1), MQTTC_ERR_NULL);
    expect("store_keys_add NULL out", mqttc_store_keys_add(NULL, "m.1"), MQTTC_ERR_NULL);

    mqttc_options opts;
    mqttc_client *c = NULL;
    mqttc_options_init(&opts);
    opts.client_id = "store-client";
    opts.store = s;
    opts.store_dir = "/tmp/mqttc-bad-input-never-made";
    expect("store and store_dir", mqttc_client_new("127.0.0.1", port, &opts, &c), MQTTC_ERR_INVALID_ARGUMENT);
    opts.store_dir = NULL;
    opts.store_sync = 9;
    expect("store with store_sync 9", mqttc_client_new("127.0.0.1", port, &opts, &c), MQTTC_ERR_INVALID_ARGUMENT);
    opts.store_sync = MQTTC_STORE_SYNC_BATCH;
    opts.store = (const mqttc_store *)(uintptr_t)0x1234;
    expect("store made up", mqttc_client_new("127.0.0.1", port, &opts, &c), MQTTC_ERR_INVALID_HANDLE);
    mqttc_store_free(s);
    opts.store = s;
    expect("store freed", mqttc_client_new("127.0.0.1", port, &opts, &c), MQTTC_ERR_INVALID_HANDLE);
    mqttc_store_free(NULL);
    if (store_drops != 1) {
        printf("FAIL: drop ran %d time(s) for one store\n", store_drops);
        failures++;
    }
}

static bool auth_stub(mqttc_client *c, const mqttc_auth_challenge *ch, mqttc_properties *reply, void *u) {
    (void)c, (void)ch, (void)reply, (void)u;
    return false;
}

/* Enhanced authentication: its options, mqttc_client_set_on_auth and mqttc_reauthenticate. */
static void auth_arguments(uint16_t port) {
    mqttc_client *c = NULL;
    mqttc_token t = 0;
    mqttc_options opts;
    mqttc_properties *method = NULL, *data_only = NULL;
    expect("properties_new", mqttc_properties_new(&method), MQTTC_OK);
    expect("properties_new", mqttc_properties_new(&data_only), MQTTC_OK);
    expect("set method", mqttc_properties_set_string(method, MQTTC_PROP_AUTHENTICATION_METHOD, "M"), MQTTC_OK);
    expect("set data", mqttc_properties_set_binary(data_only, MQTTC_PROP_AUTHENTICATION_DATA, (const uint8_t *)"d", 1),
           MQTTC_OK);
    expect("set_on_auth NULL client", mqttc_client_set_on_auth(NULL, auth_stub, NULL), MQTTC_ERR_NULL);
    expect("reauthenticate NULL client", mqttc_reauthenticate(NULL, NULL, 0, &t), MQTTC_ERR_NULL);

    mqttc_options_init(&opts);
    opts.protocol_version = 5;
    opts.connect_properties = data_only;
    expect("authentication data without a method", mqttc_client_new("127.0.0.1", port, &opts, &c),
           MQTTC_ERR_INVALID_ARGUMENT);
    opts.connect_properties = method;
    opts.event_mode = true;
    expect("authentication method with event_mode", mqttc_client_new("127.0.0.1", port, &opts, &c),
           MQTTC_ERR_INVALID_ARGUMENT);
    opts.connect_properties = NULL;
    expect("event-mode client", mqttc_client_new("127.0.0.1", port, &opts, &c), MQTTC_OK);
    expect("set_on_auth in event mode", mqttc_client_set_on_auth(c, auth_stub, NULL), MQTTC_ERR_INVALID_ARGUMENT);
    mqttc_client_free(c);

    expect("MQTT 3.1.1 client", mqttc_client_new("127.0.0.1", port, NULL, &c), MQTTC_OK);
    expect("set_on_auth with MQTT 3.1.1", mqttc_client_set_on_auth(c, auth_stub, NULL), MQTTC_ERR_NOT_SUPPORTED);
    expect("reauthenticate with MQTT 3.1.1", mqttc_reauthenticate(c, NULL, 0, &t), MQTTC_ERR_NOT_SUPPORTED);
    mqttc_client_free(c);
    expect("set_on_auth freed client", mqttc_client_set_on_auth(c, auth_stub, NULL), MQTTC_ERR_INVALID_HANDLE);
    expect("reauthenticate freed client", mqttc_reauthenticate(c, NULL, 0, &t), MQTTC_ERR_INVALID_HANDLE);

    mqttc_options_init(&opts);
    opts.protocol_version = 5;
    expect("MQTT 5 client without a method", mqttc_client_new("127.0.0.1", port, &opts, &c), MQTTC_OK);
    expect("reauthenticate without a method", mqttc_reauthenticate(c, (const uint8_t *)"d", 1, &t),
           MQTTC_ERR_INVALID_ARGUMENT);
    mqttc_client_free(c);

    opts.connect_properties = method;
    expect("MQTT 5 client with a method", mqttc_client_new("127.0.0.1", port, &opts, &c), MQTTC_OK);
    expect("set_on_auth", mqttc_client_set_on_auth(c, auth_stub, NULL), MQTTC_OK);
    expect("set_on_auth NULL callback", mqttc_client_set_on_auth(c, NULL, NULL), MQTTC_OK);
    expect("reauthenticate NULL data with a length", mqttc_reauthenticate(c, NULL, 5, &t), MQTTC_ERR_NULL);
    uint8_t *bytes = before_guard_page(1);
    bytes[0] = 'x';
    for (size_t i = 0; i < HUGE_FIELDS; i++)
        expect_n("reauthenticate len", huge_field[i], mqttc_reauthenticate(c, bytes, huge_field[i], &t),
                 MQTTC_ERR_INVALID_ARGUMENT);
    expect("reauthenticate before connect", mqttc_reauthenticate(c, bytes, 1, &t), MQTTC_ERR_NOT_CONNECTED);
    mqttc_client_free(c);
    mqttc_properties_free(method);
    mqttc_properties_free(data_only);
}

/* An option `set` sets that needs MQTT 5: refused with 3.1.1, taken with 5. */
static void needs_mqtt5(uint16_t port, const char *name, void (*set)(mqttc_options *)) {
    char what[96];
    mqttc_client *c = NULL;
    mqttc_options opts;
    mqttc_options_init(&opts);
    set(&opts);
    snprintf(what, sizeof what, "%s with MQTT 3.1.1", name);
    expect(what, mqttc_client_new("127.0.0.1", port, &opts, &c), MQTTC_ERR_INVALID_ARGUMENT);
    opts.protocol_version = 5;
    snprintf(what, sizeof what, "%s with MQTT 5", name);
    expect(what, mqttc_client_new("127.0.0.1", port, &opts, &c), MQTTC_OK);
    mqttc_client_free(c);
}

static void set_session_expiry(mqttc_options *o) {
    o->session_expiry = 60;
}

/* Outbound topic aliases: none by default. */
static void set_topic_alias_max_out(mqttc_options *o) {
    if (o->topic_alias_max_out != 0) {
        printf("FAIL: topic_alias_max_out defaults to %u, not 0\n", o->topic_alias_max_out);
        failures++;
    }
    o->topic_alias_max_out = 10;
}

/* A loop's descriptor and timeout: NULLs, a handle that is no loop, a freed loop. */
static void loop_descriptor(void) {
    mqttc_loop *lp = NULL;
    int fd = -1, ms = 0;
    expect("loop_new for loop_fd", mqttc_loop_new(&lp), MQTTC_OK);
    expect("loop_fd NULL loop", mqttc_loop_fd(NULL, &fd), MQTTC_ERR_NULL);
    expect("loop_fd NULL fd", mqttc_loop_fd(lp, NULL), MQTTC_ERR_NULL);
    expect("loop_fd made-up loop", mqttc_loop_fd((const mqttc_loop *)(uintptr_t)0x1234, &fd),
           MQTTC_ERR_INVALID_HANDLE);
    expect("loop_timeout_ms NULL loop", mqttc_loop_timeout_ms(NULL, &ms), MQTTC_ERR_NULL);
    expect("loop_timeout_ms NULL out", mqttc_loop_timeout_ms(lp, NULL), MQTTC_ERR_NULL);
    expect("loop_timeout_ms made-up loop", mqttc_loop_timeout_ms((const mqttc_loop *)(uintptr_t)0x1234, &ms),
           MQTTC_ERR_INVALID_HANDLE);
    expect("loop_fd", mqttc_loop_fd(lp, &fd), MQTTC_OK);
    expect("loop_timeout_ms", mqttc_loop_timeout_ms(lp, &ms), MQTTC_OK);
    if (fd < 0 || ms != -1) {
        printf("FAIL: a new loop gave descriptor %d and timeout %d\n", fd, ms);
        failures++;
    }
    mqttc_loop_free(lp);
    expect("loop_fd freed loop", mqttc_loop_fd(lp, &fd), MQTTC_ERR_INVALID_HANDLE);
    expect("loop_timeout_ms freed loop", mqttc_loop_timeout_ms(lp, &ms), MQTTC_ERR_INVALID_HANDLE);
}

/* Credentials and wills changed on a live client: NULLs, invalid UTF-8, wildcards, QoS, sizes,
 * properties a will cannot carry or a 3.1.1 client cannot send, a made-up and a freed handle. */
static void login_changes(uint16_t port) {
    static const char bad_utf8[] = {'u', (char)0xff, 0};
    mqttc_client *c = NULL, *c5 = NULL;
    mqttc_options opts;
    mqttc_options_init(&opts);
    expect("client for credentials", mqttc_client_new("127.0.0.1", port, &opts, &c), MQTTC_OK);
    opts.protocol_version = 5;
    expect("MQTT 5 client for wills", mqttc_client_new("127.0.0.1", port, &opts, &c5), MQTTC_OK);
    const uint8_t *pw = (const uint8_t *)"pw";
    expect("set_credentials NULL client", mqttc_client_set_credentials(NULL, "u", pw, 2), MQTTC_ERR_NULL);
    expect("set_credentials made-up client",
           mqttc_client_set_credentials((mqttc_client *)(uintptr_t)0x1234, "u", pw, 2), MQTTC_ERR_INVALID_HANDLE);
    expect("set_credentials username not UTF-8", mqttc_client_set_credentials(c, bad_utf8, pw, 2),
           MQTTC_ERR_INVALID_UTF8);
    expect("set_credentials NULL password with length", mqttc_client_set_credentials(c, "u", NULL, 2), MQTTC_ERR_NULL);
    expect("set_credentials password alone in 3.1.1", mqttc_client_set_credentials(c, NULL, pw, 2),
           MQTTC_ERR_INVALID_ARGUMENT);
    expect("set_credentials password alone in MQTT 5", mqttc_client_set_credentials(c5, NULL, pw, 2), MQTTC_OK);
    uint8_t *guarded = before_guard_page(2);
    memcpy(guarded, "pw", 2);
    for (size_t i = 0; i < HUGE_FIELDS; i++)
        expect_n("set_credentials password_len", huge_field[i],
                 mqttc_client_set_credentials(c, "u", guarded, huge_field[i]), MQTTC_ERR_INVALID_ARGUMENT);
    static char long_name[65537];
    memset(long_name, 'n', sizeof long_name - 1);
    expect("set_credentials username of 65536 bytes", mqttc_client_set_credentials(c, long_name, NULL, 0),
           MQTTC_ERR_INVALID_ARGUMENT);
    expect("set_credentials", mqttc_client_set_credentials(c, "u", pw, 2), MQTTC_OK);
    expect("set_credentials none", mqttc_client_set_credentials(c, NULL, NULL, 0), MQTTC_OK);

    const uint8_t *x = (const uint8_t *)"x";
    expect("set_will NULL client", mqttc_client_set_will(NULL, "w", x, 1, 0, false, NULL), MQTTC_ERR_NULL);
    expect("set_will NULL topic", mqttc_client_set_will(c, NULL, x, 1, 0, false, NULL), MQTTC_ERR_NULL);
    expect("set_will topic not UTF-8", mqttc_client_set_will(c, bad_utf8, x, 1, 0, false, NULL),
           MQTTC_ERR_INVALID_UTF8);
    expect("set_will topic with +", mqttc_client_set_will(c, "a/+", x, 1, 0, false, NULL), MQTTC_ERR_INVALID_TOPIC);
    expect("set_will topic with #", mqttc_client_set_will(c, "a/#", x, 1, 0, false, NULL), MQTTC_ERR_INVALID_TOPIC);
    expect("set_will empty topic", mqttc_client_set_will(c, "", x, 1, 0, false, NULL), MQTTC_ERR_INVALID_TOPIC);
    expect("set_will topic of 65536 bytes", mqttc_client_set_will(c, long_name, x, 1, 0, false, NULL),
           MQTTC_ERR_INVALID_TOPIC);
    expect("set_will qos 3", mqttc_client_set_will(c, "w", x, 1, 3, false, NULL), MQTTC_ERR_INVALID_QOS);
    expect("set_will qos -1", mqttc_client_set_will(c, "w", x, 1, -1, false, NULL), MQTTC_ERR_INVALID_QOS);
    expect("set_will NULL payload with length", mqttc_client_set_will(c, "w", NULL, 1, 0, false, NULL),
           MQTTC_ERR_NULL);
    for (size_t i = 0; i < HUGE_FIELDS; i++)
        expect_n("set_will len", huge_field[i], mqttc_client_set_will(c, "w", guarded, huge_field[i], 0, false, NULL),
                 MQTTC_ERR_INVALID_ARGUMENT);
    mqttc_properties *props = NULL;
    expect("will properties", mqttc_properties_new(&props), MQTTC_OK);
    expect("will delay", mqttc_properties_set_int(props, MQTTC_PROP_WILL_DELAY_INTERVAL, 5), MQTTC_OK);
    expect("set_will properties in 3.1.1", mqttc_client_set_will(c, "w", x, 1, 0, false, props),
           MQTTC_ERR_NOT_SUPPORTED);
    expect("set_will with a will delay", mqttc_client_set_will(c5, "w", x, 1, 1, true, props), MQTTC_OK);
    expect("session expiry", mqttc_properties_set_int(props, MQTTC_PROP_SESSION_EXPIRY_INTERVAL, 5), MQTTC_OK);
    expect("set_will with a session expiry", mqttc_client_set_will(c5, "w", x, 1, 0, false, props),
           MQTTC_ERR_INVALID_ARGUMENT);
    mqttc_properties_free(props);
    expect("set_will NULL payload length 0", mqttc_client_set_will(c, "w", NULL, 0, 2, false, NULL), MQTTC_OK);
    expect("clear_will NULL client", mqttc_client_clear_will(NULL), MQTTC_ERR_NULL);
    expect("clear_will", mqttc_client_clear_will(c), MQTTC_OK);

    mqttc_client_free(c);
    mqttc_client_free(c5);
    expect("set_credentials freed client", mqttc_client_set_credentials(c, "u", pw, 2), MQTTC_ERR_INVALID_HANDLE);
    expect("set_will freed client", mqttc_client_set_will(c, "w", x, 1, 0, false, NULL), MQTTC_ERR_INVALID_HANDLE);
    expect("clear_will freed client", mqttc_client_clear_will(c), MQTTC_ERR_INVALID_HANDLE);
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    uint16_t port = (uint16_t)atoi(argv[1]);
    mqttc_client *c = NULL;
    mqttc_token t = 0;
    static const char bad_utf8[] = {'a', (char)0xff, 'b', 0};
    static const char overlong_nul[] = {'a', (char)0xc0, (char)0x80, 0};
    mqttc_options opts;

    /* Construction. */
    expect("client_new NULL host", mqttc_client_new(NULL, port, NULL, &c), MQTTC_ERR_NULL);
    expect("client_new NULL out", mqttc_client_new("127.0.0.1", port, NULL, NULL), MQTTC_ERR_NULL);
    expect("client_new port 0", mqttc_client_new("127.0.0.1", 0, NULL, &c), MQTTC_ERR_INVALID_ARGUMENT);
    expect("client_new empty host", mqttc_client_new("", port, NULL, &c), MQTTC_ERR_INVALID_ARGUMENT);
    expect("client_new invalid UTF-8 host", mqttc_client_new(bad_utf8, port, NULL, &c), MQTTC_ERR_INVALID_UTF8);
    expect("client_new_unix NULL path", mqttc_client_new_unix(NULL, NULL, &c), MQTTC_ERR_NULL);
    mqttc_options_init(&opts);
    opts.struct_size = 2;
    expect("options struct_size too small", mqttc_client_new("127.0.0.1", port, &opts, &c), MQTTC_ERR_STRUCT_SIZE);
    opts.struct_size = 100000;
    expect("options struct_size too large", mqttc_client_new("127.0.0.1", port, &opts, &c), MQTTC_ERR_STRUCT_SIZE);
    mqttc_options_init(&opts);
    opts.will_topic = "a/+";
    expect("will topic with wildcard", mqttc_client_new("127.0.0.1", port, &opts, &c), MQTTC_ERR_INVALID_TOPIC);
    mqttc_options_init(&opts);
    opts.will_topic = "w";
    opts.will_qos = 3;
    expect("will qos 3", mqttc_client_new("127.0.0.1", port, &opts, &c), MQTTC_ERR_INVALID_QOS);
    mqttc_options_init(&opts);
    opts.client_id = bad_utf8;
    expect("client id invalid UTF-8", mqttc_client_new("127.0.0.1", port, &opts, &c), MQTTC_ERR_INVALID_UTF8);
    mqttc_options_init(&opts);
    opts.client_id = "";
    opts.clean_session = false;
    expect("empty client id without clean session", mqttc_client_new("127.0.0.1", port, &opts, &c),
           MQTTC_ERR_INVALID_ARGUMENT);
    mqttc_options_init(&opts);
    opts.password = (const uint8_t *)"pw";
    opts.password_len = 2;
    expect("password without username", mqttc_client_new("127.0.0.1", port, &opts, &c), MQTTC_ERR_INVALID_ARGUMENT);
    huge_option_lengths(port);
    mqttc_options_init(&opts);
    opts.offline_overflow = 7;
    expect("offline_overflow 7", mqttc_client_new("127.0.0.1", port, &opts, &c), MQTTC_ERR_INVALID_ARGUMENT);
    store_options(port);
    pool_options(port);
    tls_options(port);
    proxy_options(port);
    store_callbacks_options(port);
    auth_arguments(port);
    needs_mqtt5(port, "topic_alias_max_out", set_topic_alias_max_out);
    login_changes(port);
    loop_descriptor();
    mqttc_options_init(&opts);
    opts.outgoing_max_messages = 0;
    expect("outgoing_max_messages 0", mqttc_client_new("127.0.0.1", port, &opts, &c), MQTTC_ERR_INVALID_ARGUMENT);
    outgoing_budget(port);
    mqttc_options_init(&opts);
    opts.protocol_version = 3;
    expect("protocol_version 3", mqttc_client_new("127.0.0.1", port, &opts, &c), MQTTC_ERR_INVALID_ARGUMENT);
    needs_mqtt5(port, "session_expiry", set_session_expiry);
    mqttc_options_init(&opts);
    opts.event_mode = true;
    opts.inline_callbacks = true;
    expect("inline_callbacks with event_mode", mqttc_client_new("127.0.0.1", port, &opts, &c),
           MQTTC_ERR_INVALID_ARGUMENT);
    mqttc_options_init(&opts);
    opts.reconnect_min_ms = 0;
    expect("reconnect_min_ms 0", mqttc_client_new("127.0.0.1", port, &opts, &c), MQTTC_ERR_INVALID_ARGUMENT);
    mqttc_options_init(&opts);
    opts.reconnect_min_ms = 5000;
    opts.reconnect_max_ms = 100;
    expect("reconnect_max_ms below min", mqttc_client_new("127.0.0.1", port, &opts, &c), MQTTC_ERR_INVALID_ARGUMENT);
    const char *uris[3] = {"tcp://127.0.0.1:1883", "http://127.0.0.1:80", NULL};
    expect("client_new_uris NULL array", mqttc_client_new_uris(NULL, 1, NULL, &c), MQTTC_ERR_NULL);
    expect("client_new_uris count 0", mqttc_client_new_uris(uris, 0, NULL, &c), MQTTC_ERR_INVALID_ARGUMENT);
    expect("client_new_uris NULL out", mqttc_client_new_uris(uris, 1, NULL, NULL), MQTTC_ERR_NULL);
    expect("client_new_uris unknown scheme", mqttc_client_new_uris(uris, 2, NULL, &c), MQTTC_ERR_INVALID_ARGUMENT);
    uris[1] = "localhost";
    expect("client_new_uris NULL entry", mqttc_client_new_uris(uris, 3, NULL, &c), MQTTC_ERR_NULL);
    uris[1] = "127.0.0.1:99999";
    expect("client_new_uris bad port", mqttc_client_new_uris(uris, 2, NULL, &c), MQTTC_ERR_INVALID_ARGUMENT);
    uris[1] = bad_utf8;
    expect("client_new_uris invalid UTF-8", mqttc_client_new_uris(uris, 2, NULL, &c), MQTTC_ERR_INVALID_UTF8);

    /* NULL client everywhere. */
    expect("connect NULL client", mqttc_connect(NULL, &t), MQTTC_ERR_NULL);
    expect("publish NULL client", mqttc_publish(NULL, "t", "x", 1, 0, false, &t), MQTTC_ERR_NULL);
    expect("subscribe NULL client", mqttc_subscribe(NULL, "t", 0, on_msg, NULL, &t), MQTTC_ERR_NULL);
    expect("unsubscribe NULL client", mqttc_unsubscribe(NULL, "t", &t), MQTTC_ERR_NULL);
    expect("disconnect NULL client", mqttc_disconnect(NULL, &t), MQTTC_ERR_NULL);
    expect("token_poll NULL client", mqttc_token_poll(NULL, 1), MQTTC_ERR_NULL);
    expect("token_wait NULL client", mqttc_token_wait(NULL, 1, 10), MQTTC_ERR_NULL);
    expect("set_log NULL client", mqttc_client_set_log(NULL, 1, NULL, NULL), MQTTC_ERR_NULL);
    expect("reconnect NULL client", mqttc_reconnect(NULL, &t), MQTTC_ERR_NULL);
    expect("set_on_connection NULL client", mqttc_client_set_on_connection(NULL, NULL, NULL), MQTTC_ERR_NULL);
    mqttc_client_free(NULL); /* a no-op */

    /* A real client, before connecting. */
    expect("client_new ok", mqttc_client_new("127.0.0.1", port, NULL, &c), MQTTC_OK);
    expect("publish before connect", mqttc_publish(c, "t", "x", 1, 0, false, &t), MQTTC_ERR_NOT_CONNECTED);
    expect("disconnect before connect", mqttc_disconnect(c, &t), MQTTC_ERR_NOT_CONNECTED);
    mqttc_subscription one = MQTTC_SUBSCRIPTION_INIT("t", 0, on_msg, NULL, count_drop, 0);
    /* Accepted: registered now, sent after the CONNACK. */
    expect("subscribe before connect", mqttc_subscribe_many(c, &one, 1, &t), MQTTC_OK);
    expect("token_poll never issued", mqttc_token_poll(c, 424242), MQTTC_ERR_TOKEN_UNKNOWN);
    expect("token_poll zero", mqttc_token_poll(c, 0), MQTTC_ERR_TOKEN_UNKNOWN);
    expect("set_log bad level", mqttc_client_set_log(c, 9, NULL, NULL), MQTTC_ERR_INVALID_ARGUMENT);
    expect("connect", mqttc_connect(c, &t), MQTTC_OK);
    expect("connect wait", mqttc_token_wait(c, t, 10000), MQTTC_OK);
    expect("connect again", mqttc_connect(c, &t), MQTTC_ERR_ALREADY_CONNECTED);

    /* Publish arguments. */
    expect("publish NULL topic", mqttc_publish(c, NULL, "x", 1, 0, false, &t), MQTTC_ERR_NULL);
    expect("publish empty topic", mqttc_publish(c, "", "x", 1, 0, false, &t), MQTTC_ERR_INVALID_TOPIC);
    expect("publish topic with +", mqttc_publish(c, "a/+/b", "x", 1, 0, false, &t), MQTTC_ERR_INVALID_TOPIC);
    expect("publish topic with #", mqttc_publish(c, "a/#", "x", 1, 0, false, &t), MQTTC_ERR_INVALID_TOPIC);
    expect("publish topic invalid UTF-8", mqttc_publish(c, bad_utf8, "x", 1, 0, false, &t), MQTTC_ERR_INVALID_UTF8);
    expect("publish topic overlong NUL", mqttc_publish(c, overlong_nul, "x", 1, 0, false, &t),
           MQTTC_ERR_INVALID_UTF8);
    expect("publish qos 3", mqttc_publish(c, "t", "x", 1, 3, false, &t), MQTTC_ERR_INVALID_QOS);
    expect("publish qos -1", mqttc_publish(c, "t", "x", 1, -1, false, &t), MQTTC_ERR_INVALID_QOS);
    expect("publish NULL payload with length", mqttc_publish(c, "t", NULL, 5, 0, false, &t), MQTTC_ERR_NULL);
    expect("publish oversize payload", mqttc_publish(c, "t", "x", (size_t)1 << 40, 0, false, &t),
           MQTTC_ERR_PAYLOAD_TOO_LARGE);
    expect("publish NULL payload length 0", mqttc_publish(c, "t", NULL, 0, 0, false, &t), MQTTC_OK);
    expect("publish NULL token pointer", mqttc_publish(c, "t", "x", 1, 1, false, NULL), MQTTC_OK);

    /* Subscribe / unsubscribe arguments. */
    expect("subscribe NULL filter", mqttc_subscribe(c, NULL, 0, on_msg, NULL, &t), MQTTC_ERR_NULL);
    expect("subscribe NULL callback", mqttc_subscribe(c, "t", 0, NULL, NULL, &t), MQTTC_ERR_NULL);
    expect("subscribe filter a/#/b", mqttc_subscribe(c, "a/#/b", 0, on_msg, NULL, &t), MQTTC_ERR_INVALID_FILTER);
    expect("subscribe filter a+", mqttc_subscribe(c, "a+", 0, on_msg, NULL, &t), MQTTC_ERR_INVALID_FILTER);
    expect("subscribe empty filter", mqttc_subscribe(c, "", 0, on_msg, NULL, &t), MQTTC_ERR_INVALID_FILTER);
    expect("subscribe invalid UTF-8", mqttc_subscribe(c, bad_utf8, 0, on_msg, NULL, &t), MQTTC_ERR_INVALID_UTF8);
    expect("subscribe qos 7", mqttc_subscribe(c, "t", 7, on_msg, NULL, &t), MQTTC_ERR_INVALID_QOS);
    expect("subscribe_many NULL array", mqttc_subscribe_many(c, NULL, 1, &t), MQTTC_ERR_NULL);
    mqttc_subscription none[1];
    memset(none, 0, sizeof none);
    expect("subscribe_many count 0", mqttc_subscribe_many(c, none, 0, &t), MQTTC_ERR_INVALID_ARGUMENT);
    mqttc_subscription two[2] = {MQTTC_SUBSCRIPTION_INIT("fine", 0, on_msg, NULL, count_drop, 0),
                                 MQTTC_SUBSCRIPTION_INIT("bad/#/x", 0, on_msg, NULL, count_drop, 0)};
    expect("subscribe_many with one bad filter", mqttc_subscribe_many(c, two, 2, &t), MQTTC_ERR_INVALID_FILTER);
    two[1].filter = "fine/too";
    two[0].struct_size = 0;
    expect("subscribe_many struct_size 0", mqttc_subscribe_many(c, two, 2, &t), MQTTC_ERR_STRUCT_SIZE);
    two[0].struct_size = sizeof two[0] + 8;
    expect("subscribe_many struct_size too large", mqttc_subscribe_many(c, two, 2, &t), MQTTC_ERR_STRUCT_SIZE);
    two[0].struct_size = sizeof two[0] - 8;
    expect("subscribe_many struct_size too small", mqttc_subscribe_v5(c, two, 2, NULL, &t), MQTTC_ERR_STRUCT_SIZE);
    two[0].struct_size = sizeof two[0];
    two[1].struct_size = sizeof two[1] - 8;
    expect("subscribe_many struct_size differs", mqttc_subscribe_many(c, two, 2, &t), MQTTC_ERR_INVALID_ARGUMENT);
    huge_lengths_and_counts(c);
    if (drops != 0) {
        printf("FAIL: drop_userdata ran %d time(s) for live or failed registrations\n", drops);
        failures++;
    }
    expect("unsubscribe NULL filter", mqttc_unsubscribe(c, NULL, &t), MQTTC_ERR_NULL);
    expect("unsubscribe bad filter", mqttc_unsubscribe(c, "#/x", &t), MQTTC_ERR_INVALID_FILTER);
    expect("unsubscribe_many NULL", mqttc_unsubscribe_many(c, NULL, 2, &t), MQTTC_ERR_NULL);

    /* Token queries. */
    size_t n = 0;
    expect("token_codes NULL count", mqttc_token_codes(c, t, NULL, 0, NULL), MQTTC_ERR_NULL);
    expect("token_codes NULL codes with capacity", mqttc_token_codes(c, t, NULL, 4, &n), MQTTC_ERR_NULL);
    expect("message_copy NULL", mqttc_message_copy(NULL, NULL), MQTTC_ERR_NULL);
    mqttc_message_free(NULL);

    /* Names for every status, including unknown ones. */
    if (strcmp(mqttc_status_str(12345), "unknown status") != 0 || strcmp(mqttc_status_str(MQTTC_OK), "success") != 0) {
        printf("mqttc_status_str FAIL\n");
        failures++;
    }
    /* Reason names for kinds that are no packet kind, and codes no packet carries. */
    if (strcmp(mqttc_reason_str(0, -1), "unknown reason code") != 0 ||
        strcmp(mqttc_reason_str(0xff, MQTTC_PACKET_DISCONNECT), "unknown reason code") != 0 ||
        strcmp(mqttc_reason_str(0x87, 0x7fffffff), "unknown reason code") != 0) {
        printf("mqttc_reason_str FAIL\n");
        failures++;
    }

    expect("disconnect", mqttc_disconnect(c, &t), MQTTC_OK);
    expect("disconnect wait", mqttc_token_wait(c, t, 10000), MQTTC_OK);
    expect("publish after disconnect", mqttc_publish(c, "t", "x", 1, 0, false, &t), MQTTC_ERR_NOT_CONNECTED);
    expect("disconnect after disconnect", mqttc_disconnect(c, &t), MQTTC_ERR_NOT_CONNECTED);
    mqttc_client_free(c);
    printf("%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
