// MQTT 5 enhanced authentication through mqttclient.hpp (ClientRef::on_auth, reauthenticate,
// AuthChallenge, AuthReply), and the broker's reason codes in Token::reason() and mqttc::error,
// against the scripted broker of tests/common/auth.rs, which plays the broker's side of each
// step below in the same order (as for tests/c/auth.c).
// The handler answers each challenge with "re:" and the challenge's data, ends the exchange when
// the data is "fail-me", and throws when it is "throw-me" (which the broker never sends: a handler
// that throws is shown to end the exchange by the last step, where it is told to).
// Usage: auth <port of the scripted broker>
#include "check.hpp"

#include <cstring>
#include <stdexcept>
#include <string>

using namespace test;

static const char *const METHOD = "SCRAM-TEST";

namespace {
std::atomic<int> calls{0}, connecting_calls{0}, wrong_challenges{0}, synced{0}, losts{0};
std::atomic<mqttc_status> lost_reason{MQTTC_OK};
std::atomic<bool> throw_on_fail{false};

bool on_auth(const mqttc::AuthChallenge &ch, mqttc::AuthReply &reply) {
    ++calls;
    if (ch.connecting)
        ++connecting_calls;
    // The data is the one in the AUTH's properties too.
    auto in_properties = ch.properties.get_binary(MQTTC_PROP_AUTHENTICATION_DATA);
    if (ch.method != METHOD || !in_properties || in_properties->as_string() != ch.data.as_string())
        ++wrong_challenges;
    if (ch.data.as_string() == "fail-me") {
        if (throw_on_fail)
            throw std::runtime_error("the handler refuses fail-me");
        return false;
    }
    reply.data("re:" + std::string(ch.data.as_string()));
    return true;
}

mqttc::Client make_client(std::uint16_t port) {
    mqttc::Properties props;
    props.set_string(MQTTC_PROP_AUTHENTICATION_METHOD, METHOD)
        .set_binary(MQTTC_PROP_AUTHENTICATION_DATA, "client-first");
    mqttc::Options o;
    o.mqtt5().client_id("auth-test").keep_alive(0s).auto_reconnect(false).connect_properties(std::move(props));
    mqttc::Client c("127.0.0.1", port, o);
    c.on_auth(on_auth);
    c.on_connection([](const mqttc::ConnectionEvent &e) {
        if (e.change == MQTTC_CONNECTION_LOST) {
            lost_reason = e.reason;
            ++losts;
        }
    });
    return c;
}

/// The Authentication Data of the acknowledgement that completed `t`.
std::string final_data(const mqttc::Token &t) {
    auto data = t.properties().get_binary(MQTTC_PROP_AUTHENTICATION_DATA);
    return data ? std::string(data->as_string()) : "(none)";
}

/// A connect that must fail: the mqttc::error that Token::wait throws.
mqttc::error refused(std::uint16_t port, mqttc_status want) {
    mqttc::Client c = make_client(port);
    mqttc::Token t = c.connect();
    try {
        t.wait(10s);
    } catch (const mqttc::error &e) {
        if (e.status() != want)
            FAIL("connect -> %s, want %s", e.what(), mqttc_status_str(want));
        return e;
    }
    FAIL("the connect did not fail");
}
} // namespace

int main(int argc, char **argv) {
    std::uint16_t port = port_arg(argc, argv, 1);

    // A connect in three steps: two challenges answered, then the CONNACK with the last word.
    mqttc::Client c = make_client(port);
    mqttc::Token t = c.connect();
    EXPECT(t.wait(10s));
    EXPECT(calls == 2 && connecting_calls == 2 && wrong_challenges == 0);
    EXPECT(final_data(t) == "welcome");
    EXPECT(!t.reason());
    step("connect after two challenges");

    // The broker re-authenticates the live connection; a message behind its success says it ended.
    EXPECT(c.subscribe("sync/#", 0, [](const mqttc::Message &) { ++synced; }).wait(10s));
    EXPECT(eventually([] { return synced == 1; }));
    EXPECT(calls == 3 && connecting_calls == 2 && wrong_challenges == 0);
    step("re-authentication the broker started");

    // The client re-authenticates: AUTH 0x19 with new data, a challenge, the broker's success.
    t = c.reauthenticate("token-2");
    EXPECT(t.wait(10s));
    EXPECT(calls == 4 && wrong_challenges == 0);
    EXPECT(final_data(t) == "renewed");
    step("re-authentication the client started");

    // An AUTH naming another method: a protocol error that ends the connection.
    EXPECT(eventually([] { return losts == 1; }));
    EXPECT(lost_reason == MQTTC_ERR_PROTOCOL);
    std::error_code ec;
    EXPECT(!c.reauthenticate("x", ec).id() && ec == MQTTC_ERR_NOT_CONNECTED);
    c.reset();
    step("AUTH with another method is a protocol error");

    // The broker refuses, after a challenge with 0x87, at once with 0x8C: the error carries the
    // CONNACK's reason code and its name.
    mqttc::error not_authorized = refused(port, MQTTC_ERR_REFUSED_NOT_AUTHORIZED);
    mqttc::error bad_method = refused(port, MQTTC_ERR_REFUSED);
    auto r = bad_method.reason();
    EXPECT(r && r->code == 0x8C && r->kind == MQTTC_PACKET_CONNACK);
    EXPECT(r->name() == "Bad authentication method");
    EXPECT(std::strstr(bad_method.what(), "Bad authentication method"));
    EXPECT(not_authorized.reason() && not_authorized.reason()->name() == "Not authorized");
    step("refusals 0x87 and 0x8c, named in the error");

    // The handler ends the exchange by throwing: the exception is kept, the connect fails.
    throw_on_fail = true;
    {
        mqttc::Client f = make_client(port);
        t = f.connect();
        EXPECT(!t.wait(10s, ec) && ec == MQTTC_ERR_AUTH_FAILED);
        EXPECT(!t.reason());
        std::exception_ptr thrown = f.take_callback_error();
        EXPECT(thrown);
        try {
            std::rethrow_exception(thrown);
        } catch (const std::runtime_error &e) {
            EXPECT(std::string(e.what()) == "the handler refuses fail-me");
        }
    }
    EXPECT(wrong_challenges == 0);
    step("a handler that throws ends the exchange");

    std::printf("auth: ok\n");
    return 0;
}
