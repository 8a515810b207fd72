// MQTT 5 request/response with the C++ API: a responder answers each request on the request's
// Response Topic with its Correlation Data (ClientRef::respond); a requester sends three
// requests, each with its own correlation data, and matches every response to its request.
// Usage: request_response [host] [port]
#include <mqttclient.hpp>

#include <cctype>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>

int main(int argc, char **argv) try {
    using namespace std::chrono_literals;
    const char *host = argc > 1 ? argv[1] : "localhost";
    const auto port = std::uint16_t(argc > 2 ? std::atoi(argv[2]) : 1883);
    const auto done = [](const mqttc::Token &t) {
        if (!t.wait(10s))
            throw std::runtime_error("no answer from the broker within 10 s");
    };
    const auto options = mqttc::Options().mqtt5();

    // The responder: upper-cases the request. It captures a ClientRef, not the Client itself.
    mqttc::Client responder(host, port, options);
    done(responder.connect());
    done(responder.subscribe("service/upper", 1, [r = responder.ref()](const mqttc::Message &request) {
        std::string answer(request.payload_str());
        for (char &c : answer)
            c = char(std::toupper(static_cast<unsigned char>(c)));
        r.respond(request, answer, 1); // to its response topic, with its correlation data
    }));

    // The requester: responses arrive on its own topic; the correlation data says to which request.
    mqttc::Client requester(host, port, options);
    done(requester.connect());
    std::mutex lock;
    std::condition_variable changed;
    std::map<std::string, std::string> responses; // correlation data -> payload
    done(requester.subscribe("client/responses", 1, [&](const mqttc::Message &response) {
        auto correlation = response.properties().get_binary(MQTTC_PROP_CORRELATION_DATA);
        std::lock_guard<std::mutex> g(lock);
        responses[std::string(correlation ? correlation->as_string() : "")] = std::string(response.payload_str());
        changed.notify_all();
    }));
    const std::map<std::string, std::string> requests = {{"req-1", "hello"}, {"req-2", "mqtt"}, {"req-3", "five"}};
    for (const auto &[correlation, text] : requests) {
        mqttc::Properties props;
        props.set_string(MQTTC_PROP_RESPONSE_TOPIC, "client/responses")
            .set_binary(MQTTC_PROP_CORRELATION_DATA, correlation);
        done(requester.publish("service/upper", text, 1, false, props));
    }
    std::unique_lock<std::mutex> g(lock);
    if (!changed.wait_for(g, 10s, [&] { return responses.size() == requests.size(); }))
        throw std::runtime_error("not every response arrived within 10 s");
    for (const auto &[correlation, text] : requests)
        std::printf("%s: %s -> %s\n", correlation.c_str(), text.c_str(), responses[correlation].c_str());
    g.unlock();
    done(requester.disconnect());
    done(responder.disconnect());
    return 0;
} catch (const std::exception &e) {
    std::fprintf(stderr, "request_response: %s\n", e.what());
    return 1;
}
