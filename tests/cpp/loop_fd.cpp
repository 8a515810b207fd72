// A Loop driven from the program's own poll() (Loop::fd, Loop::timeout_ms, then run(0ms)), as
// tests/c/loop_fd.c does through the C API: connecting, subscribing and a round trip; keep-alive
// pings on the loop's timer alone; a publish on another thread waking a poll that has no
// timeout; and no run that waits.
// Usage: loop_fd <broker port>
#include "check.hpp"

#include <poll.h>

#include <cerrno>
#include <cstring>
#include <string>

using namespace test;

namespace {
std::uint16_t port;

/// The application's loop: turns of poll() then run(0ms), and what they cost.
struct AppLoop {
    mqttc::Loop loop;
    long turns = 0;
    std::chrono::milliseconds longest_run{0};

    /// Waits on the descriptor for as long as the loop allows, at most `cap`, then runs what is
    /// ready. Returns whether the descriptor was readable.
    bool turn(std::chrono::milliseconds cap = 1s) {
        int timeout = loop.timeout_ms();
        EXPECT(timeout >= -1);
        if (timeout < 0 || timeout > cap.count())
            timeout = static_cast<int>(cap.count());
        pollfd p{loop.fd(), POLLIN, 0};
        int n = poll(&p, 1, timeout);
        if (n < 0)
            FAIL("poll: %s", std::strerror(errno));
        auto start = std::chrono::steady_clock::now();
        loop.run(0ms);
        longest_run = std::max(longest_run, std::chrono::duration_cast<std::chrono::milliseconds>(
                                                std::chrono::steady_clock::now() - start));
        ++turns;
        return n > 0;
    }
    /// Turns until `done()`, for 10 s at most.
    template <class F> void until(F &&done) {
        auto end = std::chrono::steady_clock::now() + 10s;
        while (!done()) {
            EXPECT(std::chrono::steady_clock::now() < end);
            turn();
        }
    }
};

/// A client on `a`'s loop, connected and subscribed to `filter` by turns of the loop alone.
mqttc::Client on_loop(AppLoop &a, const char *id, std::chrono::seconds keep_alive, const char *filter,
                      std::atomic<int> &received) {
    mqttc::Client c("127.0.0.1", port, mqttc::Options().client_id(id).keep_alive(keep_alive).run_loop(a.loop));
    mqttc::Token t = c.connect();
    a.until([&] { return t.ready(); });
    EXPECT(t.status() == MQTTC_OK);
    t = c.subscribe(filter, 1, [&received](const mqttc::Message &) { ++received; });
    a.until([&] { return t.ready(); });
    EXPECT(t.status() == MQTTC_OK);
    return c;
}
} // namespace

int main(int argc, char **argv) {
    port = port_arg(argc, argv, 1);
    AppLoop a;
    int fd = a.loop.fd();
    std::error_code ec;
    EXPECT(fd >= 0 && a.loop.fd(ec) == fd && !ec);
    EXPECT(a.loop.timeout_ms() == -1 && a.loop.timeout_ms(ec) == -1 && !ec);
    mqttc::Loop moved_from = std::move(a.loop);
    EXPECT(a.loop.fd(ec) == -1 && ec == MQTTC_ERR_NULL);
    a.loop = std::move(moved_from);

    std::atomic<int> received{0}, pings{0}, losts{0}; // before the client, whose handlers count them
    mqttc::Client c = on_loop(a, "cpp-loop-fd", 1s, "cpp/loopfd/x", received);
    for (int i = 0; i < 20; ++i)
        c.publish("cpp/loopfd/x", "one", 1);
    a.until([&] { return received == 20; });
    step("connect, subscribe and 20 round trips through poll()");

    // Nothing but the keep-alive for 3.5 s of a 1 s keep-alive: the loop's timer sends the pings.
    c.on_log(MQTTC_LOG_DEBUG, [&pings](int, std::string_view line) {
        if (line.find("sending PINGREQ") != std::string_view::npos)
            ++pings;
    });
    c.on_connection([&losts](const mqttc::ConnectionEvent &e) { losts += e.change == MQTTC_CONNECTION_LOST; });
    EXPECT(a.loop.timeout_ms() > 0);
    long turns = a.turns;
    auto end = std::chrono::steady_clock::now() + 3500ms;
    while (std::chrono::steady_clock::now() < end)
        a.turn(5s);
    EXPECT(pings >= 2 && losts == 0);
    EXPECT(a.turns - turns < 100); // the loop waits for its timer, it does not spin
    step("the keep-alive timer fires with the application's poll alone");

    // A loop without timers (keep-alive off) may wait without end; a publish on another thread
    // wakes its poll through the descriptor.
    AppLoop b;
    std::atomic<int> crossed{0};
    mqttc::Client quiet = on_loop(b, "cpp-loop-fd-quiet", 0s, "cpp/loopfd/cross", crossed);
    // Right after traffic a connection keeps one short timer, to let go of its read buffer once
    // it has been quiet for a moment; then it has none.
    b.until([&b] { return b.loop.timeout_ms() == -1; });
    std::thread publisher([r = quiet.ref()] {
        std::this_thread::sleep_for(200ms);
        r.publish("cpp/loopfd/cross", "from another thread", 1);
    });
    auto start = std::chrono::steady_clock::now();
    bool woken = b.turn(5s);
    b.until([&] { return crossed == 1; });
    publisher.join();
    EXPECT(woken && std::chrono::steady_clock::now() - start < 3s);
    step("a publish on another thread wakes a poll with no timeout");

    EXPECT(a.longest_run < 100ms && b.longest_run < 100ms);
    std::printf("loop_fd: ok\n");
    return 0;
}
