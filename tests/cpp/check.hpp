// Shared by the C++ test programs (tests/cpp_programs.rs builds and runs them against mosquitto):
// failure reporting that exits non-zero, the "ok <step>" lines the Rust tests count, polling, and
// a probe that counts the live copies of a callable. Usable with and without exceptions.
#ifndef MQTTC_TEST_CHECK_HPP
#define MQTTC_TEST_CHECK_HPP

#include <mqttclient.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <utility>

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        std::printf("FAIL %s:%d: ", __FILE__, __LINE__);                                           \
        std::printf(__VA_ARGS__);                                                                  \
        std::printf(" (last error: %s)\n", mqttc_last_error());                                    \
        std::fflush(stdout);                                                                       \
        std::exit(1);                                                                              \
    } while (0)

#define EXPECT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond))                                                                               \
            FAIL("%s", #cond);                                                                     \
    } while (0)

namespace test {

using namespace std::chrono_literals;

/// Reports a step as passed: tests/cpp_programs.rs counts these lines.
inline void step(const char *name) {
    std::printf("ok %s\n", name);
    std::fflush(stdout);
}

/// Polls `done()` for up to 10 s; once true, it is not called again (it may take something).
template <class F> bool eventually(F &&done) {
    for (int i = 0; i < 1000; ++i) {
        if (done())
            return true;
        std::this_thread::sleep_for(10ms);
    }
    return false;
}

/// The port argument `i` of a test program.
inline std::uint16_t port_arg(int argc, char **argv, int i) {
    if (argc <= i)
        FAIL("usage: %s <broker port> ...", argv[0]);
    return static_cast<std::uint16_t>(std::atoi(argv[i]));
}

/// Counts its live instances in `*live` (moved-from ones do not count): captured by a callable,
/// it tells whether the library still holds that callable. Move-only, so a callable capturing it
/// is move-only too.
class Probe {
public:
    explicit Probe(std::atomic<int> &live) noexcept : live_(&live) { ++live; }
    Probe(Probe &&o) noexcept : live_(std::exchange(o.live_, nullptr)) {}
    Probe &operator=(Probe &&) = delete;
    ~Probe() {
        if (live_)
            --*live_;
    }
    bool alive() const noexcept { return live_ != nullptr; }

private:
    std::atomic<int> *live_;
};

} // namespace test

#endif
