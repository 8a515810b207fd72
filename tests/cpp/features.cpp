// Every feature of mqttclient.hpp not covered by client.cpp, each against a real broker where it
// acts on one: the Options builder (will, credentials, sessions, offline queue, outgoing budget,
// token history, reconnect, raw fields), MQTT 5 (subscription options and properties, connect and
// will properties, a disconnect reason code, respond, the CONNACK's properties), a Loop, event
// mode, the log callback and inline callbacks, server lists and Unix sockets, topic checks and
// error codes, and TLS (a CA file, a client certificate, the server name, ALPN, insecure mode).
// Usage: features <broker port> <a port nothing listens on> <TLS broker port> <CA file>
//                 <client certificate> <client key> <another CA file>
#include "check.hpp"

#include <pthread.h>

#include <array>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

using namespace test;

static std::uint16_t port, closed_port;

/// Messages received on a filter, by a client of their own.
class Inbox {
public:
    explicit Inbox(const char *filter, const mqttc::Options &options = mqttc::Options())
        : client_("127.0.0.1", port, options) {
        EXPECT(client_.connect().wait(10s));
        EXPECT(client_.subscribe(filter, 1, [this](const mqttc::Message &m) {
                       std::lock_guard<std::mutex> g(lock_);
                       got_.push_back(m.copy());
                   }).wait(10s));
    }
    /// Waits for the n-th message (from 1) and returns its topic and payload, "topic payload".
    std::string nth(std::size_t n) {
        EXPECT(eventually([&] { return count() >= n; }));
        std::lock_guard<std::mutex> g(lock_);
        return std::string(got_[n - 1].topic()) + " " + std::string(got_[n - 1].payload_str());
    }
    std::size_t count() {
        std::lock_guard<std::mutex> g(lock_);
        return got_.size();
    }
    mqttc::PropertiesView properties(std::size_t n) {
        std::lock_guard<std::mutex> g(lock_);
        return got_[n - 1].properties();
    }
    mqttc::Client &client() { return client_; }

private:
    std::mutex lock_;
    std::vector<mqttc::OwnedMessage> got_;
    mqttc::Client client_; // last: destroyed first, so no callback runs into a destroyed vector
};

static void options() {
    // A will, published when the client goes without DISCONNECT.
    Inbox wills("will/#");
    mqttc::Options o;
    o.client_id("cpp-will")
        .credentials("user", std::string("se\0cret", 7))
        .keep_alive(5s)
        .clean_session(true)
        .will("will/w", "gone", 1, false)
        .connect_timeout(5s)
        .ping_timeout(2s)
        .disconnect_timeout(2s)
        .max_inflight(5)
        .max_packet_size(1 << 20)
        .callback_queue(64)
        .ack_after_callback(true)
        .auto_reconnect(true, 100ms, 500ms);
    {
        mqttc::Client w("127.0.0.1", port, o);
        std::atomic<int> ups{0};
        w.on_connection([&](const mqttc::ConnectionEvent &e) {
            if (e.change == MQTTC_CONNECTION_UP && !e.server.empty() && e.reason == MQTTC_OK)
                ++ups;
        });
        EXPECT(w.connect().wait(10s));
        EXPECT(eventually([&] { return ups == 1; }));
        // reconnect(): a new connection at once, reported as UP.
        EXPECT(w.reconnect().wait(10s));
        EXPECT(eventually([&] { return ups == 2; }));
        EXPECT(w.state() == MQTTC_STATE_CONNECTED);
    }
    EXPECT(wills.nth(1) == "will/w gone");

    // A session the broker keeps, found again by the client id.
    const auto session = mqttc::Options().client_id("cpp-session").clean_session(false);
    for (int present : {0, 1}) {
        mqttc::Client s("127.0.0.1", port, session);
        mqttc::Token t = s.connect();
        EXPECT(t.wait(10s) && t.codes() == std::vector<std::uint8_t>{std::uint8_t(present)});
        EXPECT(s.disconnect().wait(10s));
    }

    // The offline queue, before the first connect.
    mqttc::Client drop("127.0.0.1", port,
                       mqttc::Options().queue_before_connect(true).offline_queue(1, 1024, MQTTC_OVERFLOW_DROP_OLDEST));
    mqttc::Token first = drop.publish("q/a", "1", 1), second = drop.publish("q/a", "2", 1);
    EXPECT(eventually([&] { return first.status() == MQTTC_ERR_DROPPED; }) && !second.ready());
    EXPECT(drop.connect().wait(10s) && second.wait(10s));
    mqttc::Client reject("127.0.0.1", port, mqttc::Options().queue_before_connect(true).offline_queue(1, 1024));
    first = reject.publish("q/a", "1", 1);
    second = reject.publish("q/a", "2", 1);
    EXPECT(eventually([&] { return second.status() == MQTTC_ERR_QUEUE_FULL; }) && !first.ready());
    mqttc::Options none;
    none.queue_before_connect(true).raw().offline_max_messages = 0; // a field through raw()
    mqttc::Client off("127.0.0.1", port, none);
    EXPECT(eventually([&] { return off.publish("q/a", "1", 1).status() == MQTTC_ERR_QUEUE_FULL; }));

    // The outgoing budget refuses the call itself.
    mqttc::Client budget("127.0.0.1", port, mqttc::Options().queue_before_connect(true).outgoing_budget(1, 1 << 20));
    budget.publish("q/a", "1", 1);
    try {
        budget.publish("q/a", "2", 1);
        FAIL("a publish over the outgoing budget was accepted");
    } catch (const mqttc::error &e) {
        EXPECT(e.status() == MQTTC_ERR_QUEUE_FULL);
    }

    // Token history: older results are forgotten.
    mqttc::Client history("127.0.0.1", port, mqttc::Options().token_history(2));
    EXPECT(history.connect().wait(10s));
    mqttc::Token oldest = history.publish("q/h", "1", 1);
    EXPECT(oldest.wait(10s) && history.publish("q/h", "2", 1).wait(10s) && history.publish("q/h", "3", 1).wait(10s));
    EXPECT(oldest.status() == MQTTC_ERR_TOKEN_EXPIRED);
    step("options: will, credentials, sessions, reconnect, offline queue, budget, token history");
}

static void mqtt5() {
    const auto v5 = mqttc::Options().mqtt5();
    // An assigned client id comes back in the CONNACK's properties.
    mqttc::Properties connect_props;
    connect_props.set_int(MQTTC_PROP_RECEIVE_MAXIMUM, 10).add_user("app", "cpp");
    mqttc::Client c("127.0.0.1", port,
                    mqttc::Options(v5).client_id("").session_expiry(60s).topic_alias_maximum(4).connect_properties(
                        std::move(connect_props)));
    mqttc::Token connect = c.connect();
    EXPECT(connect.wait(10s));
    auto assigned = connect.properties().get_string(MQTTC_PROP_ASSIGNED_CLIENT_IDENTIFIER);
    EXPECT(assigned && !assigned->empty());

    // No Local: the client's own publish does not come back; another client's does.
    std::atomic<int> got{0};
    std::string last;
    std::mutex lock;
    mqttc::Properties sub_props;
    sub_props.add_user("why", "test");
    EXPECT(c.subscribe("m5/nl", 1,
                       [&](const mqttc::Message &m) {
                           std::lock_guard<std::mutex> g(lock);
                           last = std::string(m.payload_str());
                           ++got;
                       },
                       MQTTC_SUB_NO_LOCAL, sub_props)
               .wait(10s));
    Inbox other("m5/other/#", v5);
    EXPECT(c.publish("m5/nl", "own", 1).wait(10s));
    EXPECT(other.client().publish("m5/nl", "theirs", 1).wait(10s));
    EXPECT(eventually([&] { return got == 1; }) && last == "theirs");
    EXPECT(c.unsubscribe("m5/nl", sub_props).wait(10s));

    // respond() needs a response topic: refused for a message without one.
    std::atomic<int> respond_status{1};
    EXPECT(c.subscribe("m5/req", 1, [&, r = c.ref()](const mqttc::Message &m) {
                std::error_code ec;
                r.respond(m, "answer", 1, mqttc::PropertiesView(), ec);
                respond_status = ec.value();
            }).wait(10s));
    EXPECT(c.publish("m5/req", "no response topic", 1).wait(10s));
    EXPECT(eventually([&] { return respond_status == MQTTC_ERR_NOT_FOUND; }));

    // Disconnect with reason 0x04: the broker publishes the will, with its properties.
    mqttc::Properties will_props;
    will_props.set_string(MQTTC_PROP_CONTENT_TYPE, "text/plain");
    mqttc::Client w("127.0.0.1", port, mqttc::Options(v5).will("m5/other/will", "bye", 1, false, std::move(will_props)));
    EXPECT(w.connect().wait(10s));
    mqttc::Properties reason;
    reason.set_string(MQTTC_PROP_REASON_STRING, "leaving with the will");
    EXPECT(w.disconnect(0x04, reason).wait(10s));
    EXPECT(other.nth(1) == "m5/other/will bye");
    EXPECT(other.properties(1).get_string(MQTTC_PROP_CONTENT_TYPE) == std::optional<std::string_view>("text/plain"));

    // MQTT 5 options on a 3.1.1 client are refused.
    mqttc::Client v311("127.0.0.1", port);
    std::error_code ec;
    v311.subscribe("m5/x", 0, [](const mqttc::Message &) {}, MQTTC_SUB_NO_LOCAL, mqttc::PropertiesView(), ec);
    EXPECT(ec == MQTTC_ERR_NOT_SUPPORTED);
    step("MQTT 5: connect, will and subscribe properties, No Local, respond, disconnect reason");
}

static void run_loop() {
    mqttc::Loop loop;
    mqttc::Client c("127.0.0.1", port, mqttc::Options().run_loop(loop));
    EXPECT(c.connect().wait(10s)); // runs the loop meanwhile
    std::atomic<int> got{0}, run_inside{1};
    std::thread::id where;
    EXPECT(c.subscribe("loop/a", 1, [&](const mqttc::Message &) {
                where = std::this_thread::get_id();
                std::error_code ec;
                loop.run(0ms, ec);
                run_inside = ec.value();
                ++got;
            }).wait(10s));
    EXPECT(c.publish("loop/a", "x", 1).wait(10s));
    for (int i = 0; i < 100 && got == 0; ++i)
        loop.run(100ms);
    EXPECT(got == 1 && where == std::this_thread::get_id() && run_inside == MQTTC_ERR_IN_CALLBACK);
    mqttc::Loop moved = std::move(loop);
    std::error_code ec;
    mqttc::Loop made = mqttc::Loop::create(ec);
    EXPECT(moved && !loop && made && !ec);
    step("a Loop runs its client's callbacks on the application's thread");
}

static void event_mode() {
    mqttc::Client c("127.0.0.1", port, mqttc::Options().event_mode(true));
    EXPECT(c.event_fd() >= 0);
    mqttc::Token connect = c.connect(), sub = c.subscribe_events("ev/#", 1, 7);
    EXPECT(connect.wait(10s) && sub.wait(10s));
    EXPECT(c.publish("ev/a", "hello", 1).wait(10s));
    bool up = false, connected = false, message = false;
    std::optional<mqttc::Event> kept;
    EXPECT(eventually([&] {
        while (auto e = c.next_event()) {
            if (e->kind() == MQTTC_EVENT_CONNECTION)
                up = up || e->connection().change == MQTTC_CONNECTION_UP;
            else if (e->kind() == MQTTC_EVENT_COMPLETE && e->token() == connect.id())
                connected = e->status() == MQTTC_OK && e->codes().size() == 1 && e->detail().empty();
            else if (e->kind() == MQTTC_EVENT_MESSAGE) {
                message = e->message().topic() == "ev/a" && e->message().payload_str() == "hello" &&
                          e->subscription_count() == 1 && e->subscription_tag(0) == 7 && e->properties().empty();
                kept = std::move(e);
            }
        }
        return up && connected && message;
    }));
    EXPECT(c.pending_events() == 0);
    c.reset();
    EXPECT(kept->message().payload_str() == "hello"); // an event outlives its client
    step("event mode: descriptor, CONNECTION, COMPLETE and MESSAGE events with their tag");
}

static std::string thread_name() {
    char name[32] = "";
    pthread_getname_np(pthread_self(), name, sizeof name);
    return name;
}

static void log_and_inline_callbacks() {
    mqttc::Client c("127.0.0.1", port, mqttc::Options().inline_callbacks(true));
    std::mutex lock;
    std::vector<std::string> lines;
    c.on_log(MQTTC_LOG_DEBUG, [&](int level, std::string_view line) {
        std::lock_guard<std::mutex> g(lock);
        lines.push_back(std::to_string(level) + " " + std::string(line));
    });
    EXPECT(c.connect().wait(10s));
    const auto logged = [&] {
        std::lock_guard<std::mutex> g(lock);
        return lines.size();
    };
    EXPECT(eventually([&] { return logged() > 0; }));
    std::string where;
    std::atomic<int> got{0};
    EXPECT(c.subscribe("inline/a", 1, [&](const mqttc::Message &) {
                where = thread_name();
                ++got;
            }).wait(10s));
    EXPECT(c.publish("inline/a", "x", 1).wait(10s));
    EXPECT(eventually([&] { return got == 1; }) && where.rfind("mqttc-net", 0) == 0);
    // Removed: once a later callback has run (callbacks run one at a time), nothing more is logged.
    c.on_log(MQTTC_LOG_OFF, nullptr);
    EXPECT(c.publish("inline/a", "y", 1).wait(10s) && eventually([&] { return got == 2; }));
    const std::size_t before = logged();
    EXPECT(c.reconnect().wait(10s) && c.disconnect().wait(10s) && logged() == before);
    step("log callback set and removed; inline callbacks run on the network thread");
}

static void servers() {
    const std::string closed = "mqtt://127.0.0.1:" + std::to_string(closed_port);
    const std::string open = "127.0.0.1:" + std::to_string(port);
    mqttc::Client c = mqttc::Client::with_uris({closed, open}, mqttc::Options().rotate_servers(true));
    std::string server;
    std::mutex lock;
    c.on_connection([&](const mqttc::ConnectionEvent &e) {
        std::lock_guard<std::mutex> g(lock);
        server = std::string(e.server);
    });
    EXPECT(c.connect().wait(10s));
    EXPECT(eventually([&] {
        std::lock_guard<std::mutex> g(lock);
        return server == "mqtt://" + open; // the server it reached, as a URI
    }));
    mqttc::Client u = mqttc::Client::with_unix_socket("/nonexistent/mqtt.sock");
    try {
        u.connect().wait(10s);
        FAIL("a connect to a missing Unix socket succeeded");
    } catch (const mqttc::error &e) {
        EXPECT(e.status() == MQTTC_ERR_IO);
    }
    step("a list of servers is tried in order; Unix sockets");
}

static void topics_errors_and_views() {
    EXPECT(mqttc::topic_matches("a/+/c", "a/b/c") && !mqttc::topic_matches("a/#", "b"));
    try {
        mqttc::topic_matches("a/#/b", "a");
        FAIL("an invalid filter matched");
    } catch (const mqttc::error &e) {
        EXPECT(e.status() == MQTTC_ERR_INVALID_FILTER);
    }
    EXPECT(mqttc::check_topic("a/+") == MQTTC_ERR_INVALID_TOPIC && !mqttc::check_topic(std::string("a/b")));
    EXPECT(mqttc::check_filter("a/#/x") == MQTTC_ERR_INVALID_FILTER && !mqttc::check_filter("a/#"));
    EXPECT(mqttc::version() == MQTTC_VERSION_STRING);

    std::error_code ec = MQTTC_ERR_TIMEOUT;
    EXPECT(ec.category() == mqttc::category() && std::string(ec.category().name()) == "mqttclient");
    EXPECT(ec.message() == mqttc_status_str(MQTTC_ERR_TIMEOUT) && ec != MQTTC_ERR_IO);
    try {
        throw mqttc::error(MQTTC_ERR_IO, "the detail");
    } catch (const std::runtime_error &e) { // mqttc::error is one
        const auto &m = dynamic_cast<const mqttc::error &>(e);
        EXPECT(m.status() == MQTTC_ERR_IO && std::string(m.detail()) == "the detail");
        EXPECT(std::string(e.what()).find("the detail") != std::string::npos);
    }

    const std::vector<std::uint8_t> bytes = {1, 2, 3};
    const std::array<char, 2> chars = {'h', 'i'};
    const mqttc::bytes_view views[] = {bytes, chars, std::string_view("abc"), "abcd", mqttc::bytes_view("ab", 2),
                                       mqttc::bytes_view()};
    std::string sizes;
    for (const mqttc::bytes_view &v : views)
        sizes += std::to_string(v.size());
    EXPECT(sizes == "32342" "0" && views[1].as_string() == "hi" && views[0][2] == 3 && views[5].empty());
    step("topic matching and checks, error codes and mqttc::error, byte views");
}

static void tls(int argc, char **argv) {
    const std::uint16_t tls_port = port_arg(argc, argv, 3);
    const std::string ca = argv[4], cert = argv[5], key = argv[6], other_ca = argv[7];
    const auto base = mqttc::Options().tls().tls_server_name("localhost").tls_alpn("mqtt");
    const auto connects = [&](const mqttc::Options &o) {
        mqttc::Client c("127.0.0.1", tls_port, o);
        std::error_code ec;
        c.connect().wait(10s, ec);
        return ec;
    };
    EXPECT(!connects(mqttc::Options(base).tls_ca_file(ca).tls_client_cert(cert, key)));
    EXPECT(connects(mqttc::Options(base).tls_ca_file(ca))); // the broker requires a certificate
    EXPECT(connects(mqttc::Options(base).tls_ca_file(other_ca).tls_client_cert(cert, key)) == MQTTC_ERR_TLS);
    EXPECT(!connects(mqttc::Options(base).tls_ca_file(other_ca).tls_insecure(true).tls_client_cert(cert, key)));
    const std::string ca_dir = ca.substr(0, ca.rfind('/'));
    EXPECT(!connects(mqttc::Options(base).tls_ca_path(ca_dir).tls_version("tlsv1.3").tls_client_cert(cert, key)));
    EXPECT(connects(mqttc::Options(base).tls_ca_file(ca).tls_version("tlsv1.2").tls_ciphers("ECDHE-RSA-AES128-GCM-SHA256")
                        .tls_client_cert(cert, key)) == MQTTC_ERR_TLS); // an ECDSA certificate: no RSA suite fits
    try {
        mqttc::Client bad("127.0.0.1", tls_port, mqttc::Options(base).tls_ca_file(ca).proxy("http://proxy"));
        FAIL("an HTTP proxy was accepted");
    } catch (const mqttc::error &e) {
        EXPECT(e.status() == MQTTC_ERR_INVALID_ARGUMENT && std::string(e.detail()).find("socks5h://") != std::string::npos);
    }
    try {
        mqttc::Client bad("127.0.0.1", tls_port, mqttc::Options(base).tls_ca_file("/nonexistent/ca.pem"));
        FAIL("a missing CA file was accepted");
    } catch (const mqttc::error &e) {
        EXPECT(e.status() == MQTTC_ERR_TLS && std::string(e.detail()).find("/nonexistent/ca.pem") != std::string::npos);
    }
    step("TLS: CA file and directory, client certificate, server name, ALPN, versions, cipher suites, "
         "insecure mode, a bad CA file, a bad proxy");
}

int main(int argc, char **argv) {
    if (argc != 8)
        FAIL("usage: %s <port> <closed port> <TLS port> <CA> <client cert> <client key> <other CA>", argv[0]);
    port = port_arg(argc, argv, 1);
    closed_port = port_arg(argc, argv, 2);
    options();
    mqtt5();
    run_loop();
    event_mode();
    log_and_inline_callbacks();
    servers();
    topics_errors_and_views();
    tls(argc, argv);
    std::printf("features: ok\n");
    return 0;
}
