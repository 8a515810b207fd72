// Credentials and the will changed on a live client (ClientRef::set_credentials, set_will,
// clear_will), and the broker's reason codes (Token::reason, mqttc::error::reason, reason_str),
// against a mosquitto with a password file (alice, bob) and an ACL that lets each user talk only
// on users/<its name>/# and will/#, so that a message there comes back only when the broker knows
// the client by that name.
// Usage: login <port>
#include "check.hpp"

#include <cstring>
#include <mutex>
#include <string>
#include <vector>

using namespace test;

static std::uint16_t port;

/// Messages received by a subscription, kept.
class Received {
public:
    auto handler() {
        return [this](const mqttc::Message &m) {
            std::lock_guard<std::mutex> g(lock_);
            got_.push_back(m.copy());
        };
    }
    std::size_t count() {
        std::lock_guard<std::mutex> g(lock_);
        return got_.size();
    }
    /// Waits for the n-th message (from 1): its payload.
    std::string payload(std::size_t n) {
        EXPECT(eventually([&] { return count() >= n; }));
        std::lock_guard<std::mutex> g(lock_);
        return std::string(got_[n - 1].payload_str());
    }
    std::optional<std::string_view> content_type(std::size_t n) {
        std::lock_guard<std::mutex> g(lock_);
        return got_[n - 1].properties().get_string(MQTTC_PROP_CONTENT_TYPE);
    }

private:
    std::mutex lock_;
    std::vector<mqttc::OwnedMessage> got_;
};

static mqttc::Options login(const char *id, const char *user, const char *password) {
    mqttc::Options o;
    o.mqtt5().client_id(id).credentials(user, std::string(password)).auto_reconnect(false);
    return o;
}

/// The broker knows `c` as `user`: what it publishes on users/<user>/echo comes back to it.
static void is_known_as(const mqttc::Client &c, const std::string &user) {
    std::string topic = "users/" + user + "/echo";
    Received echo;
    EXPECT(c.subscribe(topic, 1, echo.handler()).wait(10s));
    EXPECT(c.publish(topic, "hello " + user, 1).wait(10s));
    if (echo.payload(1) != "hello " + user)
        FAIL("%s did not come back", topic.c_str());
    EXPECT(c.unsubscribe(topic).wait(10s));
}

static void credentials() {
    mqttc::Client c("127.0.0.1", port, login("login-client", "alice", "pw-a"));
    EXPECT(c.connect().wait(10s));
    is_known_as(c, "alice");

    c.set_credentials("bob", std::string("pw-b"));
    EXPECT(c.reconnect().wait(10s));
    is_known_as(c, "bob");
    step("given bob's credentials, the reconnect is bob");

    // A wrong password: the reconnect that sends it is refused, with MQTT 5's reason code.
    c.set_credentials("bob", std::string("wrong"));
    mqttc::Token t = c.reconnect();
    try {
        t.wait(10s);
        FAIL("a wrong password was taken");
    } catch (const mqttc::error &e) {
        EXPECT(e.reason() && e.reason()->kind == MQTTC_PACKET_CONNACK);
        EXPECT(e.reason()->name() == mqttc::reason_str(e.reason()->code, MQTTC_PACKET_CONNACK));
        EXPECT(e.reason()->code == 0x86 || e.reason()->code == 0x87);
        EXPECT(std::strstr(e.what(), std::string(e.reason()->name()).c_str()));
        std::printf("  refused: %s\n", e.what());
    }
    EXPECT(t.reason() && (t.reason()->code == 0x86 || t.reason()->code == 0x87));
    // No password at all for a user that has one: refused as well.
    c.set_credentials("bob");
    std::error_code ec;
    EXPECT(!c.reconnect().wait(10s, ec) && ec);
    c.set_credentials("bob", std::string("pw-b"));
    EXPECT(c.reconnect().wait(10s));
    is_known_as(c, "bob");
    step("a wrong or missing password is refused with the CONNACK's reason; the right one gets in");

    // The ACL refuses bob a topic of alice's: PUBACK (QoS 1) or PUBREC (QoS 2) 0x87.
    for (int qos : {1, 2}) {
        t = c.publish("users/alice/x", "x", qos);
        EXPECT(!t.wait(10s, ec) && ec == MQTTC_ERR_PUBLISH_REFUSED);
        auto r = t.reason();
        EXPECT(r && r->code == 0x87 && r->name() == "Not authorized");
        EXPECT(r->kind == (qos == 1 ? MQTTC_PACKET_PUBACK : MQTTC_PACKET_PUBREC));
        try {
            t.wait(1s);
            FAIL("a refused publish waited without error");
        } catch (const mqttc::error &e) {
            EXPECT(e.status() == MQTTC_ERR_PUBLISH_REFUSED && e.reason() && e.reason()->code == 0x87);
        }
    }
    t = c.publish("users/bob/x", "x", 1);
    EXPECT(t.wait(10s) && !t.reason());
    step("a publish the ACL refuses names PUBACK or PUBREC 0x87");

    // Arguments the library refuses: the error_code and the exception.
    c.set_will("will/+", "x", 0, false, mqttc::PropertiesView(), ec);
    EXPECT(ec == MQTTC_ERR_INVALID_TOPIC);
    try {
        c.set_will("will/w", "x", 3);
        FAIL("QoS 3 was taken");
    } catch (const mqttc::error &e) {
        EXPECT(e.status() == MQTTC_ERR_INVALID_QOS && !e.reason());
    }
    EXPECT(c.disconnect().wait(10s));
}

static void wills() {
    Received w_wills, x_wills, sync;
    mqttc::Client observer("127.0.0.1", port, login("login-observer", "alice", "pw-a"));
    EXPECT(observer.connect().wait(10s));
    EXPECT(observer.subscribe("will/w", 1, w_wills.handler()).wait(10s));
    EXPECT(observer.subscribe("will/x", 1, x_wills.handler()).wait(10s));
    EXPECT(observer.subscribe("will/sync", 1, sync.handler()).wait(10s));

    mqttc::Client w("127.0.0.1", port, login("login-w", "alice", "pw-a").will("will/w", "from the options", 1));
    EXPECT(w.connect().wait(10s));
    w.set_will("will/w", "set later", 1, false,
               mqttc::Properties().set_string(MQTTC_PROP_CONTENT_TYPE, "text/plain"));
    // The connection the reconnect drops dies with the will it was made with.
    EXPECT(w.reconnect().wait(10s));
    EXPECT(w_wills.payload(1) == "from the options");

    mqttc::Client x("127.0.0.1", port, login("login-x", "alice", "pw-a").will("will/x", "x from the options", 1));
    EXPECT(x.connect().wait(10s));
    x.clear_will();
    EXPECT(x.reconnect().wait(10s));
    EXPECT(x_wills.payload(1) == "x from the options");

    // Both die without a DISCONNECT: w's will is the one set later, x has none.
    x.reset();
    w.reset();
    EXPECT(w_wills.payload(2) == "set later");
    EXPECT(w_wills.content_type(2) == "text/plain");
    // A round trip after both, and a while more: a will of x's would have come by now.
    EXPECT(observer.publish("will/sync", "s", 1).wait(10s));
    EXPECT(sync.payload(1) == "s");
    std::this_thread::sleep_for(300ms);
    EXPECT(x_wills.count() == 1);
    step("a will set later is published, a cleared one is not");
}

static void reason_names() {
    EXPECT(mqttc::reason_str(0x00, MQTTC_PACKET_DISCONNECT) == "Normal disconnection");
    EXPECT(mqttc::reason_str(0x00, MQTTC_PACKET_SUBACK) == "Granted QoS 0");
    EXPECT(mqttc::reason_str(0x87, MQTTC_PACKET_PUBACK) == "Not authorized");
    EXPECT(mqttc::reason_str(0x8C, MQTTC_PACKET_PUBACK) == "unknown reason code");
    EXPECT(mqttc::reason_str(0x05, MQTTC_PACKET_CONNACK_V311) != "unknown reason code");
    EXPECT(mqttc::reason_str(0x05, static_cast<mqttc_packet_kind>(99)) == "unknown reason code");
    EXPECT((mqttc::Reason{0x80, MQTTC_PACKET_SUBACK_V311}.name() == mqttc::reason_str(0x80, MQTTC_PACKET_SUBACK_V311)));
    mqttc::error plain(MQTTC_ERR_TIMEOUT, "slow");
    EXPECT(!plain.reason() && std::string(plain.detail()) == "slow");
    step("reason_str names codes per packet kind; an error without a reason has none");
}

int main(int argc, char **argv) {
    port = port_arg(argc, argv, 1);
    reason_names();
    credentials();
    wills();
    std::printf("login: ok\n");
    return 0;
}
