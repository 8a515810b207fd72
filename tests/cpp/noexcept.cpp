// mqttclient.hpp built without exceptions (-fno-exceptions): only the noexcept overloads exist,
// and they report through std::error_code, with the library's text in mqttc::last_error().
// Against a real broker.
// Usage: noexcept <broker port>
#include "check.hpp"

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

static_assert(!MQTTC_CPP_EXCEPTIONS, "this program is built with -fno-exceptions");

using namespace test;

#define OK(ec)                                                                                     \
    do {                                                                                           \
        if (ec)                                                                                    \
            FAIL("%s", (ec).message().c_str());                                                    \
    } while (0)

int main(int argc, char **argv) {
    const std::uint16_t port = port_arg(argc, argv, 1);
    std::error_code ec;
    mqttc::Client c = mqttc::Client::create("127.0.0.1", port, mqttc::Options().mqtt5(), ec);
    OK(ec);
    std::atomic<int> ups{0}, logged{0};
    c.on_connection(
        [&](const mqttc::ConnectionEvent &e) {
            if (e.change == MQTTC_CONNECTION_UP)
                ++ups;
        },
        ec);
    OK(ec);
    c.on_log(MQTTC_LOG_INFO, [&](int, std::string_view) { ++logged; }, ec);
    OK(ec);
    static_assert(noexcept(c.connect(ec)) && noexcept(c.publish("t", "p", 0, false, mqttc::PropertiesView(), ec)),
                  "the error_code overloads are noexcept");
    mqttc::Token connect = c.connect(ec);
    OK(ec);
    EXPECT(connect.wait(10s, ec));
    OK(ec);
    EXPECT(!connect.properties(ec).empty()); // the CONNACK's
    OK(ec);

    std::mutex lock;
    std::vector<mqttc::OwnedMessage> got;
    mqttc::Token sub = c.subscribe("nx/#", 1,
                                   [&](const mqttc::Message &m) {
                                       std::error_code copy_ec;
                                       mqttc::OwnedMessage copy = m.copy(copy_ec);
                                       std::lock_guard<std::mutex> g(lock);
                                       if (!copy_ec)
                                           got.push_back(std::move(copy));
                                   },
                                   0, mqttc::PropertiesView(), ec);
    OK(ec);
    EXPECT(sub.wait(10s, ec) && sub.codes(ec) == std::vector<std::uint8_t>{1});
    OK(ec);
    mqttc::Properties props;
    props.set_string(MQTTC_PROP_CONTENT_TYPE, "text/plain", ec).add_user("k", "v", ec);
    OK(ec);
    EXPECT(c.publish("nx/a", "hello", 1, false, props, ec).wait(10s, ec));
    OK(ec);
    EXPECT(eventually([&] {
        std::lock_guard<std::mutex> g(lock);
        return got.size() == 1;
    }));
    EXPECT(got[0].payload_str() == "hello" && got[0].properties().get_user("k") == std::optional<std::string_view>("v"));
    mqttc::Properties kept = got[0].properties().copy(ec);
    OK(ec);
    EXPECT(kept.get_string(MQTTC_PROP_CONTENT_TYPE) == std::optional<std::string_view>("text/plain"));
    step("connect, subscribe, publish and copies through the error_code overloads");

    // Failures set the code, leave the text in last_error(), and return an empty result.
    mqttc::Token bad = c.publish("nx/+", "x", 0, false, mqttc::PropertiesView(), ec);
    EXPECT(ec == MQTTC_ERR_INVALID_TOPIC && bad.id() == 0 && !mqttc::last_error().empty());
    c.subscribe("nx/#/bad", 0, [](const mqttc::Message &) {}, 0, mqttc::PropertiesView(), ec);
    EXPECT(ec == MQTTC_ERR_INVALID_FILTER);
    props.set_int(MQTTC_PROP_PAYLOAD_FORMAT_INDICATOR, 2, ec);
    EXPECT(ec == MQTTC_ERR_INVALID_ARGUMENT);
    mqttc::Client failed =
        mqttc::Client::create("127.0.0.1", port, mqttc::Options().tls().tls_ca_file("/nonexistent/ca.pem"), ec);
    EXPECT(ec == MQTTC_ERR_TLS && !failed);
    mqttc::Client nowhere = mqttc::Client::with_unix_socket("/nonexistent/mqtt.sock", mqttc::Options(), ec);
    OK(ec);
    EXPECT(!nowhere.connect(ec).wait(10s, ec) && ec == MQTTC_ERR_IO);
    // A wait that times out is not a failure.
    mqttc::Client queued = mqttc::Client::create("127.0.0.1", port, mqttc::Options().queue_before_connect(true), ec);
    OK(ec);
    EXPECT(!queued.publish("nx/q", "x", 1, false, mqttc::PropertiesView(), ec).wait(20ms, ec));
    OK(ec);
    EXPECT(!mqttc::topic_matches("a/#/b", "a", ec) && ec == MQTTC_ERR_INVALID_FILTER);
    EXPECT(mqttc::topic_matches("a/#", "a/b", ec));
    OK(ec);
    step("failures set the error_code; a timed-out wait does not");

    // The rest of the noexcept surface: handlers, a Loop, event mode, unsubscribe, disconnect.
    EXPECT(c.reconnect(ec).wait(10s, ec) && eventually([&] { return ups == 2; }));
    OK(ec);
    EXPECT(eventually([&] { return logged > 0; }));
    mqttc::Loop loop = mqttc::Loop::create(ec);
    OK(ec);
    loop.run(0ms, ec);
    OK(ec);
    EXPECT(loop.fd(ec) >= 0 && loop.timeout_ms(ec) == -1);
    OK(ec);
    // Login and will changes, and the auth handler event mode refuses.
    c.set_credentials("nobody", "pw", ec);
    OK(ec);
    c.set_will("nx/will", "gone", 1, false, mqttc::PropertiesView(), ec);
    OK(ec);
    c.set_will("nx/+", "gone", 1, false, mqttc::PropertiesView(), ec);
    EXPECT(ec == MQTTC_ERR_INVALID_TOPIC);
    c.clear_will(ec);
    OK(ec);
    mqttc::Client events = mqttc::Client::create("127.0.0.1", port, mqttc::Options().event_mode(true), ec);
    OK(ec);
    EXPECT(events.event_fd(ec) >= 0 && !events.next_event(ec) && events.pending_events(ec) == 0);
    OK(ec);
    EXPECT(c.next_event(ec) == std::nullopt && ec == MQTTC_ERR_EVENT_MODE_OFF);
    events.on_auth([](const mqttc::AuthChallenge &, mqttc::AuthReply &) { return false; }, ec);
    EXPECT(ec == MQTTC_ERR_NOT_SUPPORTED); // an MQTT 3.1.1 client
    // MQTT 5, but connected without an Authentication Method.
    EXPECT(!c.reauthenticate(mqttc::bytes_view(), ec).id() && ec == MQTTC_ERR_INVALID_ARGUMENT);
    EXPECT(c.unsubscribe("nx/#", mqttc::PropertiesView(), ec).wait(10s, ec));
    OK(ec);
    EXPECT(c.disconnect(ec).wait(10s, ec));
    OK(ec);
    step("handlers, a Loop, login and will changes, event mode, unsubscribe and disconnect");

    // A Store fails without exceptions through fail(code), which the publish's error names.
    struct Refusing final : mqttc::Store {
        void put(std::string_view, mqttc::bytes_view) override { fail(-5); }
        std::optional<std::vector<std::uint8_t>> get(std::string_view) override { return std::nullopt; }
        void remove(std::string_view) override {}
        std::vector<std::string> list() override { return {}; }
        void clear() override {}
    };
    mqttc::Client stored = mqttc::Client::create(
        "127.0.0.1", port, mqttc::Options().store(std::make_shared<Refusing>()).queue_before_connect(true), ec);
    OK(ec);
    EXPECT(!stored.publish("nx/s", "x", 1, false, mqttc::PropertiesView(), ec).id() && ec == MQTTC_ERR_STORE);
    EXPECT(mqttc::last_error().find("returned -5") != std::string::npos);
    step("a Store that calls fail() fails the publish with MQTTC_ERR_STORE");
    std::printf("noexcept: ok\n");
    return 0;
}
