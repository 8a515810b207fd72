// The C++ API (mqttclient.hpp) from outside the source tree: built with the
// mqttclient::mqttclient_cpp target (or pkg-config), it makes a client from an Options builder
// (no broker needed) and gets a refused call as an mqttc::error. Prints
// "consumer_hpp ok: mqttclient <version>" and exits 0.
#include <mqttclient.hpp>

#include <chrono>
#include <cstdio>
#include <string>

int main() {
    const std::string version(mqttc::version());
    if (version != MQTTC_VERSION_STRING) {
        std::fprintf(stderr, "header is version %s, library is %s\n", MQTTC_VERSION_STRING, version.c_str());
        return 1;
    }
    try {
        const auto options = mqttc::Options().client_id("consumer").keep_alive(std::chrono::seconds(30));
        mqttc::Client client("localhost", 1883, options);
        client.subscribe("a/#/b", 0, [](const mqttc::Message &) {});
        std::fprintf(stderr, "an invalid filter was accepted\n");
        return 1;
    } catch (const mqttc::error &e) {
        if (e.status() != MQTTC_ERR_INVALID_FILTER) {
            std::fprintf(stderr, "unexpected error: %s\n", e.what());
            return 1;
        }
    }
    std::printf("consumer_hpp ok: mqttclient %s\n", version.c_str());
    return 0;
}
