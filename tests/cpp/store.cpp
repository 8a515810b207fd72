// Persistence through mqttclient.hpp, against a real broker: QoS 1 publishes a client could not
// deliver (its broker was down) stay in a directory store, or in a Store this program supplies (a
// std::map), and a new client with the same store delivers them, each once; a Store that throws
// fails the publish with MQTTC_ERR_STORE, and the program carries on.
// Usage: store <broker port> <a port nothing listens on> <an empty directory>
#include "check.hpp"

#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

using namespace test;

namespace {

constexpr int messages = 5;

/// The payloads `messages` publishes carry: "<tag> 0", "<tag> 1", ...
std::multiset<std::string> payloads(const std::string &tag) {
    std::multiset<std::string> all;
    for (int i = 0; i < messages; ++i)
        all.insert(tag + " " + std::to_string(i));
    return all;
}

/// A subscriber to `topic`, counting what it receives.
class Inbox {
public:
    Inbox(std::uint16_t port, const char *topic) : client_("127.0.0.1", port) {
        EXPECT(client_.connect().wait(10s));
        EXPECT(client_.subscribe(topic, 1, [this](const mqttc::Message &m) {
                          std::lock_guard<std::mutex> lock(mu_);
                          got_.emplace(m.payload_str());
                      }).wait(10s));
    }
    Inbox(Inbox &&) = delete; // the subscription holds `this`
    std::multiset<std::string> got() {
        std::lock_guard<std::mutex> lock(mu_);
        return got_;
    }
    /// Waits for `expected`; then, a little longer, for any message more (a duplicate).
    bool receives_exactly(const std::multiset<std::string> &expected) {
        if (!eventually([&] { return got().size() >= expected.size(); }))
            return false;
        std::this_thread::sleep_for(200ms);
        return got() == expected;
    }

private:
    std::mutex mu_;
    std::multiset<std::string> got_;
    mqttc::Client client_; // destroyed first: its subscription uses the above
};

/// A client whose broker is down: its connect fails, then it publishes `messages` QoS 1 messages
/// tagged `tag`, which wait in its offline queue and its store, and is destroyed with them.
void publish_while_the_broker_is_down(std::uint16_t dead_port, mqttc::Options options, const char *topic,
                                      const std::string &tag) {
    mqttc::Client c("127.0.0.1", dead_port, options.queue_before_connect(true));
    std::error_code ec;
    EXPECT(!c.connect().wait(10s, ec) && ec == MQTTC_ERR_IO);
    std::vector<mqttc::Token> tokens;
    for (const std::string &p : payloads(tag))
        tokens.push_back(c.publish(topic, p, 1));
    for (const mqttc::Token &t : tokens)
        EXPECT(t.status() == MQTTC_PENDING);
} // destroyed: the tokens are cancelled, which leaves their messages in the store

/// A new client with `options` connects to the broker: each message restored from the store is
/// reported once, with a token that completes. Returns the restored payloads.
std::multiset<std::string> restore(std::uint16_t port, const mqttc::Options &options) {
    std::mutex mu;
    std::multiset<std::string> restored;
    std::vector<mqttc::Token> tokens;
    std::atomic<bool> up{false};
    mqttc::Client c("127.0.0.1", port, options); // destroyed first: its callbacks use the above
    c.on_restored([&](mqttc::Token t, const mqttc::Message &m) {
        std::lock_guard<std::mutex> lock(mu);
        restored.emplace(m.payload_str());
        tokens.push_back(t);
    });
    // Restored messages are reported before the CONNECT goes out, on the thread that reports the
    // connection: once it is up, all were.
    c.on_connection([&](const mqttc::ConnectionEvent &e) { up = up || e.change == MQTTC_CONNECTION_UP; });
    EXPECT(c.connect().wait(10s) && eventually([&] { return up.load(); }));
    std::vector<mqttc::Token> waiting;
    {
        std::lock_guard<std::mutex> lock(mu);
        waiting = tokens;
    }
    EXPECT(waiting.size() == restored.size());
    for (const mqttc::Token &t : waiting)
        EXPECT(t.wait(10s));
    EXPECT(c.disconnect().wait(10s));
    return restored;
}

/// A Store in memory: a std::map, and counts of the calls the library made.
class MapStore : public mqttc::Store {
public:
    void put(std::string_view key, mqttc::bytes_view value) override {
        std::lock_guard<std::mutex> lock(mu_);
        table_[std::string(key)].assign(value.begin(), value.end());
        ++puts_;
    }
    std::optional<std::vector<std::uint8_t>> get(std::string_view key) override {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = table_.find(key);
        return it == table_.end() ? std::nullopt : std::optional(it->second);
    }
    void remove(std::string_view key) override {
        std::lock_guard<std::mutex> lock(mu_);
        if (auto it = table_.find(key); it != table_.end())
            table_.erase(it);
        ++removes_;
    }
    std::vector<std::string> list() override {
        std::lock_guard<std::mutex> lock(mu_);
        std::vector<std::string> keys;
        for (const auto &entry : table_)
            keys.push_back(entry.first);
        return keys;
    }
    void clear() override {
        std::lock_guard<std::mutex> lock(mu_);
        table_.clear();
        ++clears_;
    }
    void sync() override {
        std::lock_guard<std::mutex> lock(mu_);
        ++syncs_;
    }

    /// How many keys begin with `prefix` ("m." for messages).
    std::size_t count(std::string_view prefix) {
        std::lock_guard<std::mutex> lock(mu_);
        std::size_t n = 0;
        for (const auto &entry : table_)
            n += entry.first.compare(0, prefix.size(), prefix) == 0;
        return n;
    }
    int puts() {
        std::lock_guard<std::mutex> lock(mu_);
        return puts_;
    }
    int removes() {
        std::lock_guard<std::mutex> lock(mu_);
        return removes_;
    }
    int syncs() {
        std::lock_guard<std::mutex> lock(mu_);
        return syncs_;
    }
    int clears() {
        std::lock_guard<std::mutex> lock(mu_);
        return clears_;
    }

private:
    std::mutex mu_;
    std::map<std::string, std::vector<std::uint8_t>, std::less<>> table_;
    int puts_ = 0, removes_ = 0, syncs_ = 0, clears_ = 0;
};

/// A MapStore whose puts throw, or whose list does.
class ThrowingStore : public MapStore {
public:
    explicit ThrowingStore(bool on_list) : on_list_(on_list) {}
    void put(std::string_view key, mqttc::bytes_view) override {
        throw std::runtime_error("no room for " + std::string(key));
    }
    std::vector<std::string> list() override {
        if (on_list_)
            throw std::logic_error("unreadable table");
        return MapStore::list();
    }

private:
    bool on_list_;
};

/// The what() of an exception the Store kept.
std::string what(const std::exception_ptr &e) {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception &x) {
        return x.what();
    }
}

} // namespace

int main(int argc, char **argv) {
    const std::uint16_t port = port_arg(argc, argv, 1), dead = port_arg(argc, argv, 2);
    if (argc <= 3)
        FAIL("usage: %s <broker port> <dead port> <directory>", argv[0]);
    const std::string dir = argv[3];

    // (a) A directory store.
    const mqttc::Options in_dir = mqttc::Options()
                                      .client_id("cpp-store-dir")
                                      .clean_session(false)
                                      .store_dir(dir)
                                      .store_sync(MQTTC_STORE_SYNC_EVERY);
    Inbox dir_inbox(port, "cppstore/dir");
    publish_while_the_broker_is_down(dead, in_dir, "cppstore/dir", "dir");
    EXPECT(dir_inbox.got().empty());
    EXPECT(restore(port, in_dir) == payloads("dir"));
    EXPECT(dir_inbox.receives_exactly(payloads("dir")));
    step("a directory store: messages published while the broker was down reach it from the next client");
    EXPECT(restore(port, in_dir).empty());
    step("a directory store: acknowledged messages leave it");

    // (b) A Store of this program's.
    auto table = std::make_shared<MapStore>();
    const mqttc::Options in_table = mqttc::Options()
                                        .client_id("cpp-store-table")
                                        .clean_session(false)
                                        .store(table)
                                        .store_sync(MQTTC_STORE_SYNC_BATCH)
                                        .store_sync_batch(1, 10s); // a sync after each record
    Inbox table_inbox(port, "cppstore/table");
    publish_while_the_broker_is_down(dead, in_table, "cppstore/table", "table");
    EXPECT(table->count("m.") == messages && table->puts() >= messages && table->syncs() >= messages);
    EXPECT(table.use_count() == 2); // here and in_table: the library let go with its client
    {
        mqttc::Client first("127.0.0.1", port, in_table);
        std::error_code ec;
        mqttc::Client second = mqttc::Client::create("127.0.0.1", port, in_table, ec);
        EXPECT(ec == MQTTC_ERR_STORE && !second); // one client at a time
        mqttc::Options copy = in_table;           // a copy of the Options, the same Store
        second = mqttc::Client::create("127.0.0.1", port, copy.client_id("cpp-store-other"), ec);
        EXPECT(ec == MQTTC_ERR_STORE && !second);
    }
    step("a Store: its puts keep the messages; one client at a time uses it");
    EXPECT(restore(port, in_table) == payloads("table"));
    EXPECT(table_inbox.receives_exactly(payloads("table")));
    EXPECT(table->count("") == 0 && table->removes() >= messages);
    EXPECT(table.use_count() == 2);
    step("a Store: the next client restores and delivers the messages, which it then removes");
    mqttc::Options dropping = in_table;
    dropping.clean_session(true).store_drop_on_clean(true);
    publish_while_the_broker_is_down(dead, dropping, "cppstore/table", "dropped");
    EXPECT(table->count("m.") == messages && table->clears() == 0);
    EXPECT(restore(port, dropping).empty() && table->count("") == 0 && table->clears() == 1);
    EXPECT(table_inbox.got() == payloads("table"));
    step("a Store: a clean session with store_drop_on_clean clears what an earlier one stored");

    // (c) Stores that throw.
    auto full = std::make_shared<ThrowingStore>(false);
    mqttc::Client c("127.0.0.1", port, mqttc::Options().store(full));
    EXPECT(c.connect().wait(10s));
    try {
        c.publish("cppstore/full", "lost", 1);
        FAIL("a publish its store could not keep was accepted");
    } catch (const mqttc::error &e) {
        EXPECT(e.status() == MQTTC_ERR_STORE && std::string(e.detail()).find("put") != std::string::npos);
    }
    EXPECT(what(full->take_error()).rfind("no room for m.", 0) == 0 && !full->take_error());
    EXPECT(c.publish("cppstore/full", "not stored", 0).wait(10s)); // QoS 0 is never stored
    EXPECT(full->count("") == 0);
    step("a Store whose put throws: the publish fails with MQTTC_ERR_STORE, the exception is kept");

    auto unreadable = std::make_shared<ThrowingStore>(true);
    std::error_code ec;
    mqttc::Client refused = mqttc::Client::create("127.0.0.1", port, mqttc::Options().store(unreadable), ec);
    EXPECT(ec == MQTTC_ERR_STORE && !refused);
    EXPECT(what(unreadable->take_error()) == "unreadable table");
    EXPECT(c.disconnect().wait(10s));
    step("a Store whose list throws: the client is refused with MQTTC_ERR_STORE");
    std::printf("store: ok\n");
    return 0;
}
