// The header used from C++17: compiles warning-free, its version macros are constant expressions,
// and the library's handles fit RAII. Prints "consumer_cxx ok: mqttclient <version>" and exits 0.
#include <mqttclient.h>

#include <cstdio>
#include <memory>
#include <string>

static_assert(MQTTC_VERSION_NUMBER == MQTTC_VERSION_MAJOR * 10000 + MQTTC_VERSION_MINOR * 100 + MQTTC_VERSION_PATCH,
              "MQTTC_VERSION_NUMBER encodes MAJOR.MINOR.PATCH");

namespace {
struct client_deleter {
    void operator()(mqttc_client *c) const noexcept { mqttc_client_free(c); }
};
using client_ptr = std::unique_ptr<mqttc_client, client_deleter>;
} // namespace

int main() {
    const std::string version = mqttc_version();
    if (version != MQTTC_VERSION_STRING || mqttc_version_number() != MQTTC_VERSION_NUMBER) {
        std::fprintf(stderr, "header is version %s, library is %s\n", MQTTC_VERSION_STRING, version.c_str());
        return 1;
    }
    mqttc_options opts;
    mqttc_options_init(&opts);
    opts.keep_alive = 30;
    mqttc_client *raw = nullptr;
    if (mqttc_client_new("localhost", 1883, &opts, &raw) != MQTTC_OK) {
        std::fprintf(stderr, "mqttc_client_new: %s\n", mqttc_last_error());
        return 1;
    }
    client_ptr client(raw);
    std::printf("consumer_cxx ok: mqttclient %s\n", version.c_str());
    return 0;
}
