// mqttclient.hpp's ownership and callback rules against a real broker: moves and move-assignment
// of a Client, each subscription callable destroyed exactly once (unsubscribe, replacement,
// client destruction), a Client destroyed inside its own message, connection and completion
// callbacks, exceptions thrown by callbacks caught and reported, tokens (wait, ready, status,
// codes, on_complete before and after completion, failures as mqttc::error), and messages and
// properties copied out of a callback.
// Usage: client <broker port> <a port nothing listens on>
#include "check.hpp"

#include <condition_variable>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

using namespace test;

static std::uint16_t port, closed_port;

static mqttc::Client connected(const mqttc::Options &options = mqttc::Options()) {
    mqttc::Client c("127.0.0.1", port, options);
    EXPECT(c.connect().wait(10s));
    return c;
}

static void moves_and_destruction() {
    std::atomic<int> live_a{0}, live_c{0}, live_r{0}, live_last{0}, got{0};
    mqttc::ClientRef ref;
    mqttc::Token old_token;
    {
        mqttc::Client a = connected();
        EXPECT(a.subscribe("own/a", 1, [p = Probe(live_a), &got](const mqttc::Message &) { ++got; }).wait(10s));
        EXPECT(live_a == 1);

        mqttc::Client b(std::move(a));
        EXPECT(!a && b);
        std::error_code ec;
        a.publish("own/a", "x", 0, false, mqttc::PropertiesView(), ec);
        EXPECT(ec == MQTTC_ERR_NULL);
        EXPECT(b.publish("own/a", "1", 1).wait(10s));
        EXPECT(eventually([&] { return got == 1; }));

        mqttc::Client c = connected();
        EXPECT(c.subscribe("own/c", 1, [p = Probe(live_c)](const mqttc::Message &) {}).wait(10s));
        c = std::move(b); // frees c's own client, and with it the callable it held
        EXPECT(live_c == 0 && live_a == 1 && !b);
        EXPECT(c.publish("own/a", "2", 1).wait(10s));
        EXPECT(eventually([&] { return got == 2; }));

        // A new subscribe to the same filter replaces the callable: the old one is destroyed.
        EXPECT(c.subscribe("own/a", 1, [p = Probe(live_r), &got](const mqttc::Message &) { got += 10; }).wait(10s));
        EXPECT(eventually([&] { return live_a == 0; }) && live_r == 1);
        EXPECT(c.publish("own/a", "3", 1).wait(10s));
        EXPECT(eventually([&] { return got == 12; }));
        EXPECT(c.unsubscribe("own/a").wait(10s));
        EXPECT(eventually([&] { return live_r == 0; }));

        EXPECT(c.subscribe("own/last", 1, [p = Probe(live_last)](const mqttc::Message &) {}).wait(10s));
        ref = c.ref();
        old_token = c.publish("own/none", "", 1);
        EXPECT(old_token.wait(10s));
    }
    // The destructor freed the client: its last callable is gone, and what still refers to the
    // client is refused cleanly.
    EXPECT(live_last == 0);
    std::error_code ec;
    ref.publish("own/a", "late", 0, false, mqttc::PropertiesView(), ec);
    EXPECT(ec == MQTTC_ERR_INVALID_HANDLE);
    EXPECT(old_token.status() == MQTTC_ERR_INVALID_HANDLE);
    EXPECT(mqttc::Token().status() == MQTTC_ERR_NULL);
    step("moves, move-assignment and destruction release every callable exactly once");
}

/// Waits until a callback sets *flag (under `lock`).
static bool await_flag(std::mutex &lock, std::condition_variable &cv, const bool &flag) {
    std::unique_lock<std::mutex> g(lock);
    return cv.wait_for(g, 10s, [&] { return flag; });
}

static void destroyed_inside_its_callbacks() {
    std::mutex lock;
    std::condition_variable cv;

    // From a message callback, which then still uses its message and its captures.
    {
        std::atomic<int> live{0};
        bool done = false;
        std::string seen;
        auto holder = std::make_unique<mqttc::Client>(connected());
        mqttc::ClientRef ref = holder->ref();
        EXPECT(ref.subscribe("self/free", 1, [&, p = Probe(live)](const mqttc::Message &m) {
                      holder.reset();
                      std::lock_guard<std::mutex> g(lock);
                      seen = std::string(m.topic()) + " " + std::string(m.payload_str()) + (p.alive() ? " alive" : "");
                      done = true;
                      cv.notify_all();
                  }).wait(10s));
        ref.publish("self/free", "bye", 1); // its acknowledgement may come after the free: not waited for
        EXPECT(await_flag(lock, cv, done));
        EXPECT(seen == "self/free bye alive" && !holder);
        EXPECT(eventually([&] { return live == 0; }));
        std::error_code ec;
        ref.publish("self/free", "late", 0, false, mqttc::PropertiesView(), ec);
        EXPECT(ec == MQTTC_ERR_INVALID_HANDLE);
    }
    // From the connection callback.
    {
        bool done = false;
        auto holder = std::make_unique<mqttc::Client>("127.0.0.1", port);
        mqttc::ClientRef ref = holder->ref();
        holder->on_connection([&](const mqttc::ConnectionEvent &e) {
            if (e.change != MQTTC_CONNECTION_UP)
                return;
            holder.reset();
            std::lock_guard<std::mutex> g(lock);
            done = true;
            cv.notify_all();
        });
        ref.connect();
        EXPECT(await_flag(lock, cv, done) && !holder);
    }
    // From a completion callback, on the callback thread: the publish waits for the connect.
    {
        bool done = false;
        std::thread::id where;
        auto holder = std::make_unique<mqttc::Client>("127.0.0.1", port, mqttc::Options().queue_before_connect(true));
        mqttc::ClientRef ref = holder->ref();
        mqttc::Token t = ref.publish("self/token", "x", 1);
        EXPECT(!t.ready());
        t.on_complete([&](mqttc_status) {
            holder.reset();
            std::lock_guard<std::mutex> g(lock);
            where = std::this_thread::get_id();
            done = true;
            cv.notify_all();
        });
        ref.connect();
        EXPECT(await_flag(lock, cv, done) && !holder && where != std::this_thread::get_id());
    }
    step("a client destroyed inside its own message, connection and completion callbacks");
}

/// The exception a client kept, rethrown and described.
static std::string taken(mqttc::Client &c) {
    std::exception_ptr e = c.take_callback_error();
    if (!e)
        return "none";
    try {
        std::rethrow_exception(e);
    } catch (const std::exception &x) {
        return x.what();
    } catch (int v) {
        return "int " + std::to_string(v);
    } catch (...) {
        return "something else";
    }
}

static void callbacks_that_throw() {
    mqttc::Client c = connected();
    std::atomic<int> calls{0};
    EXPECT(taken(c) == "none");
    EXPECT(c.subscribe("throw/#", 1, [&](const mqttc::Message &m) {
                ++calls;
                if (m.payload_str() == "int")
                    throw 42;
                throw std::runtime_error("boom " + std::string(m.payload_str()));
            }).wait(10s));

    EXPECT(c.publish("throw/1", "1", 1).wait(10s));
    EXPECT(eventually([&] { return calls == 1; }));
    EXPECT(eventually([&] { return taken(c) == "boom 1"; }));
    // While one is kept, the next ones go to stderr (checked by the Rust test). Callbacks run one
    // at a time in arrival order, so once "sync" has arrived the third one has been reported.
    std::atomic<int> synced{0};
    EXPECT(c.subscribe("sync", 1, [&](const mqttc::Message &) { ++synced; }).wait(10s));
    EXPECT(c.publish("throw/2", "2", 1).wait(10s) && c.publish("throw/3", "3", 1).wait(10s));
    EXPECT(c.publish("sync", "", 1).wait(10s));
    EXPECT(eventually([&] { return synced == 1; }) && calls == 3);
    EXPECT(taken(c) == "boom 2" && taken(c) == "none");
    EXPECT(c.publish("throw/int", "int", 1).wait(10s));
    EXPECT(eventually([&] { return calls == 4; }));
    EXPECT(eventually([&] { return taken(c) == "int 42"; }));

    // A completion callback: on the callback thread, or here if the token is already complete.
    mqttc::Token t = c.publish("other", "x", 1);
    t.on_complete([](mqttc_status) { throw std::logic_error("token boom"); });
    EXPECT(eventually([&] { return taken(c) == "token boom"; }));
    // The connection callback (set before the connect, so that it sees the one UP).
    mqttc::Client d("127.0.0.1", port);
    d.on_connection([](const mqttc::ConnectionEvent &e) {
        if (e.change == MQTTC_CONNECTION_UP)
            throw std::runtime_error("connection boom");
    });
    EXPECT(d.connect().wait(10s));
    EXPECT(eventually([&] { return taken(d) == "connection boom"; }));
    d.on_connection(nullptr);
    EXPECT(d.reconnect().wait(10s) && taken(d) == "none");

    // The client carries on.
    std::atomic<int> fine{0};
    EXPECT(c.subscribe("fine", 1, [&](const mqttc::Message &) { ++fine; }).wait(10s));
    EXPECT(c.publish("fine", "", 1).wait(10s));
    EXPECT(eventually([&] { return fine == 1; }));

    // One nobody takes is reported when the client is destroyed (stderr).
    EXPECT(c.publish("throw/last", "last", 1).wait(10s));
    EXPECT(eventually([&] { return calls == 5; }));
    c.reset();
    step("a throwing callback ends alone; the first exception is kept, the others reported");
}

static void tokens() {
    mqttc::Client c("127.0.0.1", port, mqttc::Options().queue_before_connect(true));
    // Queued before the connect: pending until then.
    mqttc::Token t = c.publish("tok/a", "x", 1);
    EXPECT(t.id() != 0 && !t.ready() && t.status() == MQTTC_PENDING);
    EXPECT(!t.wait(50ms)); // still pending: false, not an error
    std::mutex lock;
    std::vector<std::pair<mqttc_status, std::thread::id>> calls;
    const auto record = [&](mqttc_status s) {
        std::lock_guard<std::mutex> g(lock);
        calls.emplace_back(s, std::this_thread::get_id());
    };
    t.on_complete(record);
    EXPECT(calls.empty());

    mqttc::Token connect = c.connect();
    EXPECT(connect.wait(10s) && connect.codes() == std::vector<std::uint8_t>{0}); // no session present
    EXPECT(t.wait(10s) && t.ready() && t.status() == MQTTC_OK);
    EXPECT(eventually([&] {
        std::lock_guard<std::mutex> g(lock);
        return calls.size() == 1;
    }));
    EXPECT(calls[0].first == MQTTC_OK && calls[0].second != std::this_thread::get_id());
    // Already complete: called at once, on this thread.
    t.on_complete(record);
    EXPECT(calls.size() == 2 && calls[1].first == MQTTC_OK && calls[1].second == std::this_thread::get_id());

    mqttc::Token sub = c.subscribe("tok/#", 1, [](const mqttc::Message &) {});
    EXPECT(sub.wait(10s) && sub.codes() == std::vector<std::uint8_t>{1} && sub.client().get() == c.get());

    // A refusal at the call throws at once; a failure later fails the token (and its wait).
    try {
        c.subscribe("tok/#/bad", 1, [](const mqttc::Message &) {});
        FAIL("an invalid filter was accepted");
    } catch (const mqttc::error &e) {
        EXPECT(e.status() == MQTTC_ERR_INVALID_FILTER && e.code() == MQTTC_ERR_INVALID_FILTER);
        EXPECT(std::string(e.what()).find(e.detail()) != std::string::npos && *e.detail());
    }
    mqttc::Client nobody("127.0.0.1", closed_port);
    mqttc::Token refused = nobody.connect();
    refused.on_complete(record);
    try {
        refused.wait(10s);
        FAIL("a connect to a closed port succeeded");
    } catch (const mqttc::error &e) {
        EXPECT(e.status() == MQTTC_ERR_IO && std::string(e.detail()).find("refused") != std::string::npos);
    }
    EXPECT(eventually([&] {
        std::lock_guard<std::mutex> g(lock);
        return calls.size() == 3 && calls[2].first == MQTTC_ERR_IO;
    }));

    // Waiting inside a callback is refused, not a deadlock.
    std::atomic<int> in_callback{1};
    EXPECT(c.subscribe("tok/wait", 1, [&, r = c.ref()](const mqttc::Message &) {
                std::error_code ec;
                r.publish("tok/x", "", 1).wait(1s, ec);
                in_callback = ec.value();
            }).wait(10s));
    EXPECT(c.publish("tok/wait", "", 1).wait(10s));
    EXPECT(eventually([&] { return in_callback == MQTTC_ERR_IN_CALLBACK; }));
    step("tokens: wait, ready, status, codes, on_complete before and after completion, failures");
}

static void views_copied_out_of_a_callback() {
    mqttc::Client c = connected(mqttc::Options().mqtt5());
    std::mutex lock;
    std::vector<mqttc::OwnedMessage> kept;
    mqttc::Properties kept_properties;
    EXPECT(c.subscribe("view/#", 2, [&](const mqttc::Message &m) {
                std::lock_guard<std::mutex> g(lock);
                kept.push_back(m.copy());
                kept_properties = m.properties().copy();
            }).wait(10s));
    const std::string payload("bin\0ary", 7);
    const std::vector<std::uint8_t> correlation = {1, 2, 0, 3};
    mqttc::Properties props;
    props.set_string(MQTTC_PROP_CONTENT_TYPE, "application/x-test")
        .set_binary(MQTTC_PROP_CORRELATION_DATA, correlation)
        .add_user("k", "v1")
        .add_user("k", "v2")
        .set_int(MQTTC_PROP_MESSAGE_EXPIRY_INTERVAL, 60);
    EXPECT(c.publish("view/one", payload, 2, false, props).wait(10s));
    EXPECT(eventually([&] {
        std::lock_guard<std::mutex> g(lock);
        return kept.size() == 1;
    }));

    mqttc::OwnedMessage m = std::move(kept[0]);
    EXPECT(m && !kept[0]);
    EXPECT(m.topic() == "view/one" && m.payload_str() == payload && m.payload().size() == 7 && m.payload()[3] == 0);
    EXPECT(m.qos() == 2 && !m.retain() && !m.dup() && m.packet_id() != 0);
    for (mqttc::PropertiesView p : {m.properties(), mqttc::PropertiesView(kept_properties)}) {
        EXPECT(p.get_string(MQTTC_PROP_CONTENT_TYPE) == std::optional<std::string_view>("application/x-test"));
        auto data = p.get_binary(MQTTC_PROP_CORRELATION_DATA);
        EXPECT(data && std::vector<std::uint8_t>(data->begin(), data->end()) == correlation);
        EXPECT(p.get_user("k") == std::optional<std::string_view>("v1"));
        EXPECT(p.get_int(MQTTC_PROP_MESSAGE_EXPIRY_INTERVAL).value_or(0) > 0);
        EXPECT(!p.get_string(MQTTC_PROP_RESPONSE_TOPIC) && !p.at(p.size()));
        std::string users;
        for (mqttc::Property q : p)
            if (q.id == MQTTC_PROP_USER_PROPERTY)
                users += std::string(q.name) + "=" + std::string(q.string) + ";";
        EXPECT(users == "k=v1;k=v2;");
    }
    const mqttc::Message view = m; // a view of the owned copy
    EXPECT(view.topic() == "view/one" && view.get() == m.get());
    mqttc::OwnedMessage moved;
    moved = std::move(m);
    EXPECT(moved && !m && moved.topic() == "view/one");

    // Owned lists: moved, changed, checked; a null view copies to an empty list.
    mqttc::Properties other = std::move(kept_properties);
    const std::size_t n = other.size();
    EXPECT(!kept_properties.get() && n >= 5); // and the subscription identifier
    other.remove(MQTTC_PROP_USER_PROPERTY);
    EXPECT(!other.get_user("k") && other.size() == n - 2);
    try {
        other.set_int(MQTTC_PROP_PAYLOAD_FORMAT_INDICATOR, 2);
        FAIL("a payload format indicator of 2 was accepted");
    } catch (const mqttc::error &e) {
        EXPECT(e.status() == MQTTC_ERR_INVALID_ARGUMENT);
    }
    EXPECT(mqttc::PropertiesView().copy().empty() && mqttc::Properties().empty());
    step("messages and properties copied out of a callback outlive it");
}

int main(int argc, char **argv) {
    port = port_arg(argc, argv, 1);
    closed_port = port_arg(argc, argv, 2);
    moves_and_destruction();
    destroyed_inside_its_callbacks();
    callbacks_that_throw();
    tokens();
    views_copied_out_of_a_callback();
    std::printf("client: ok\n");
    return 0;
}
