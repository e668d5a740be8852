#include "latency.hpp"

#include "bench_support.hpp"
#include "loopback_server.hpp"
#include "support/daemon_fixture.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace avr_webhookd::bench {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::as_tuple;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::string_view marker = "sent_ns=";

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

// Keep-alive HTTP/1.1 server on its own thread: 200 with an empty body; for every request, the
// time from the send time in its body ("sent_ns=<steady clock ns>") to the moment it was read.
class ArrivalReceiver : public LoopbackServer {
public:
    ArrivalReceiver() { start(); }
    ~ArrivalReceiver() override { stop(); }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port()) + "/"; }
    std::vector<double> latencies_ms() const {
        std::lock_guard lock(mutex_);
        return latencies_ms_;
    }
    std::size_t count() const {
        std::lock_guard lock(mutex_);
        return latencies_ms_.size();
    }

private:
    awaitable<void> serve(tcp::socket socket) override {
        beast::flat_buffer buffer;
        http::response<http::empty_body> response{http::status::ok, 11};
        response.keep_alive(true);
        response.prepare_payload();
        for (;;) {
            http::request_parser<http::string_body> parser;
            auto [read_error, read] = co_await http::async_read(socket, buffer, parser, as_tuple(use_awaitable));
            if (read_error) co_return;
            record(parser.get().body(), now_ns());
            auto [write_error, written] = co_await http::async_write(socket, response, as_tuple(use_awaitable));
            if (write_error) co_return;
        }
    }

    void record(const std::string& body, std::int64_t arrived_ns) {
        const auto at = body.find(marker);
        if (at == std::string::npos) return;
        const auto sent_ns = std::stoll(body.substr(at + marker.size(), 20));
        std::lock_guard lock(mutex_);
        latencies_ms_.push_back(static_cast<double>(arrived_ns - sent_ns) / 1e6);
    }

    mutable std::mutex mutex_;
    std::vector<double> latencies_ms_;
};

// Writes `warm_up` unstamped events, then `total` at `rate` per second, each stamped just before
// its write.
void produce(int fd, const LatencySpec& spec, std::size_t warm_up, std::size_t total) {
    const auto started = Clock::now();
    const auto interval = std::chrono::nanoseconds(1'000'000'000 / spec.rate);
    for (std::size_t i = 0; i < warm_up + total; ++i) {
        std::this_thread::sleep_until(started + interval * static_cast<long>(i));
        const auto text = i < warm_up ? std::string("warm-up") : std::string(marker) + std::to_string(now_ns());
        const std::string line = event_body(static_cast<unsigned>(i % spec.calls) + 1, i, text) + "\n";
        if (::send(fd, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size()))
            throw std::runtime_error("latency: a write to the daemon's socket failed or was short");
    }
}

}  // namespace

LatencyFigures run_latency(const LatencySpec& spec) {
    ArrivalReceiver receiver;
    test::TempDirectory dir("relay-bench-latency");
    DaemonSpec daemon_spec;
    daemon_spec.binary = spec.daemon_binary;
    daemon_spec.url = receiver.url();
    daemon_spec.concurrency = spec.concurrency;
    daemon_spec.spool = spec.spool;
    test::Process daemon = start_daemon(daemon_spec, dir);
    const std::size_t total = static_cast<std::size_t>(spec.rate) * spec.seconds;
    const int fd = connect_unix(dir / "in.sock");
    if (fd < 0) throw std::runtime_error("latency: cannot connect to the daemon's socket");
    const double cpu_before = cpu_seconds(daemon.pid());
    const std::size_t warm_up = spec.rate / 2;  // the first half second opens the connections
    produce(fd, spec, warm_up, total);
    const bool all = poll_until([&] { return receiver.count() >= total; }, 60s, 1ms);
    const double cpu = cpu_seconds(daemon.pid()) - cpu_before;
    ::close(fd);
    stop_daemon(daemon);
    if (!all) throw std::runtime_error("latency: only " + std::to_string(receiver.count()) + " events arrived");
    auto latencies = receiver.latencies_ms();
    std::sort(latencies.begin(), latencies.end());
    LatencyFigures figures;
    figures.events = latencies.size();
    figures.p50_ms = quantile(latencies, 0.5);
    figures.p99_ms = quantile(latencies, 0.99);
    figures.p999_ms = quantile(latencies, 0.999);
    figures.max_ms = latencies.back();
    figures.cpu_us = cpu * 1e6 / static_cast<double>(warm_up + total);
    return figures;
}

}  // namespace avr_webhookd::bench
