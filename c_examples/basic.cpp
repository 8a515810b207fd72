// The seed example (MQTTClient.jl's basic example) with the C++ API of mqttclient.hpp: connect,
// publish a retained "Hello World!", subscribe to it with a lambda, wait until it arrives,
// unsubscribe, disconnect. Failures throw mqttc::error. Usage: basic_cpp [host] [port]
#include <mqttclient.hpp>

#include <cstdio>
#include <cstdlib>
#include <future>

int main(int argc, char **argv) try {
    using namespace std::chrono_literals;
    const auto done = [](const mqttc::Token &t) { // the blocking form of MQTTClient.jl's calls
        if (!t.wait(10s))
            throw std::runtime_error("no answer from the broker within 10 s");
    };
    mqttc::Client client(argc > 1 ? argv[1] : "localhost", std::uint16_t(argc > 2 ? std::atoi(argv[2]) : 1883));
    done(client.connect());
    done(client.publish("jlExample", "Hello World!", 0, /*retain=*/true));
    std::promise<void> arrived;
    // The message is borrowed: its views are valid only while the callback runs.
    done(client.subscribe("jlExample", 1, [&](const mqttc::Message &m) {
        std::printf("Received message topic: [%.*s] payload: [%.*s]\n", int(m.topic().size()), m.topic().data(),
                    int(m.payload().size()), m.payload_str().data());
        arrived.set_value();
    }));
    if (arrived.get_future().wait_for(10s) != std::future_status::ready)
        throw std::runtime_error("the retained message did not arrive within 10 s");
    done(client.unsubscribe("jlExample"));
    done(client.disconnect()); // good form; the destructor then frees the client
    return 0;
} catch (const std::exception &e) {
    std::fprintf(stderr, "basic_cpp: %s\n", e.what());
    return 1;
}
