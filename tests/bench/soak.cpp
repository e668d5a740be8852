// soak: the daemon under steady load for a long time while its receiver misbehaves now and then.
//
//   soak [--minutes M] [--rate EVENTS_PER_S] [--calls K] [--daemon PATH]
//
// A producer writes transcription events (one in twenty a 5,000-character one, as long agent
// answers are) at a steady rate over K calls, on connections it closes and reopens every 2,000
// events, and reads every `ack = all` reply. The receiver answers 200, except for ten seconds of
// every minute, when it plays one fault in turn: 503 with Retry-After, closing connections
// without an answer, answering slower than the daemon's timeout, 429. Once a minute the program
// prints the daemon's RSS, open file descriptors, queue depth and counters.
//
// At the end the producer stops and the daemon drains. It fails (exit 1) when an acknowledged
// event was neither delivered nor dead-lettered, when the queue does not drain, or when RSS or
// open descriptors do not come back within a tolerance: RSS to what it was after the first minute
// (the warm baseline: allocator pools exist by then), descriptors to their idle count plus the
// keep-alive pool's bound (`concurrency`).
//
// Not a ctest test: `make soak` runs it (SOAK_MINUTES, default 10).

#include "bench_support.hpp"
#include "loopback_server.hpp"
#include "support/daemon_fixture.hpp"
#include "support/prometheus_text.hpp"

#include <avr_webhookd/ops/admin_server.hpp>
#include <avr_webhookd/tools/healthcheck.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace test = avr_webhookd::test;
using asio::as_tuple;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
using avr_webhookd::bench::connect_unix;

struct Settings {
    double minutes = 10;
    unsigned rate = 300;
    unsigned calls = 200;
    std::string daemon = test::daemon_binary();
};

enum class Fault { none, unavailable, drop, slow, throttled };

std::string_view to_string(Fault fault) {
    switch (fault) {
    case Fault::none:
        return "none";
    case Fault::unavailable:
        return "503";
    case Fault::drop:
        return "drop";
    case Fault::slow:
        return "slow";
    case Fault::throttled:
        return "429";
    }
    return "?";
}

// A keep-alive receiver whose behaviour the main thread switches; it remembers the distinct
// event ids it answered 200 to.
class FaultyReceiver : public avr_webhookd::bench::LoopbackServer {
public:
    FaultyReceiver() { start(); }
    ~FaultyReceiver() override { stop(); }
    void set_fault(Fault fault) { fault_.store(fault); }
    std::size_t delivered() const {
        std::lock_guard lock(mutex_);
        return delivered_.size();
    }
    std::unordered_set<std::string> delivered_ids() const {
        std::lock_guard lock(mutex_);
        return delivered_;
    }
    std::size_t duplicates() const { return duplicates_.load(); }

private:
    awaitable<void> serve(tcp::socket socket) override {
        beast::flat_buffer buffer;
        for (;;) {
            http::request_parser<http::string_body> parser;
            parser.body_limit(1 << 20);
            auto [read_error, read] = co_await http::async_read(socket, buffer, parser, as_tuple(use_awaitable));
            if (read_error) co_return;
            const Fault fault = fault_.load();
            if (fault == Fault::drop) co_return;
            if (fault == Fault::slow) {
                asio::steady_timer wait(io_, 1500ms);  // the daemon's timeout is 1 s
                co_await wait.async_wait(as_tuple(use_awaitable));
            }
            http::response<http::string_body> response{http::status::ok, 11};
            if (fault == Fault::unavailable || fault == Fault::throttled) {
                response.result(fault == Fault::unavailable ? http::status::service_unavailable
                                                            : http::status::too_many_requests);
                response.set(http::field::retry_after, "1");
            } else {
                const auto id = parser.get()["X-AVR-WEBHOOK-ID"];
                std::lock_guard lock(mutex_);
                if (!delivered_.emplace(id).second) ++duplicates_;
            }
            response.keep_alive(true);
            response.prepare_payload();
            auto [write_error, written] = co_await http::async_write(socket, response, as_tuple(use_awaitable));
            if (write_error) co_return;
        }
    }

    std::atomic<Fault> fault_{Fault::none};
    mutable std::mutex mutex_;
    std::unordered_set<std::string> delivered_;
    std::atomic<std::size_t> duplicates_{0};
};

// Writes events at a steady pace; every acknowledged id is remembered.
class Producer {
public:
    Producer(std::filesystem::path socket, const Settings& settings)
        : socket_(std::move(socket)), settings_(settings) {}

    void run(const std::atomic<bool>& stop) {
        const std::string long_text(5000, 'a');
        const auto period = std::chrono::duration<double>(1.0 / settings_.rate);
        auto next = Clock::now();
        while (!stop.load()) {
            const int fd = connect_unix(socket_);
            if (fd < 0) throw std::runtime_error("producer: cannot connect to the daemon");
            std::thread reader([this, fd] { read_replies(fd); });
            bool written = true;
            for (int i = 0; i < 2000 && written && !stop.load(); ++i) {
                const auto number = sent_.fetch_add(1);
                const std::string text = number % 20 == 0 ? long_text : "event " + std::to_string(number);
                const std::string line =
                    test::event_line(test::call_uuid(static_cast<unsigned>(number % settings_.calls)), "transcription",
                                     text, "soak-" + std::to_string(number)) +
                    "\n";
                written = write_all(fd, line);
                next += std::chrono::duration_cast<Clock::duration>(period);
                std::this_thread::sleep_until(next);
            }
            ::shutdown(fd, written ? SHUT_WR : SHUT_RDWR);
            reader.join();
            ::close(fd);
            if (!written) throw std::runtime_error("producer: write to the daemon failed (did it die?)");
        }
    }

    std::size_t sent() const { return sent_.load(); }
    std::size_t acknowledged() const {
        std::lock_guard lock(mutex_);
        return acknowledged_.size();
    }
    std::vector<std::string> acknowledged_ids() const {
        std::lock_guard lock(mutex_);
        return acknowledged_;
    }

private:
    static bool write_all(int fd, std::string_view data) {
        while (!data.empty()) {
            const auto written = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
            if (written <= 0) return false;
            data.remove_prefix(static_cast<std::size_t>(written));
        }
        return true;
    }

    void read_replies(int fd) {
        std::string pending;
        char buffer[65536];
        for (;;) {
            const auto got = ::read(fd, buffer, sizeof buffer);
            if (got <= 0) break;
            pending.append(buffer, static_cast<std::size_t>(got));
            std::size_t start = 0;
            for (auto end = pending.find('\n'); end != std::string::npos; end = pending.find('\n', start)) {
                record(std::string_view(pending).substr(start, end - start));
                start = end + 1;
            }
            pending.erase(0, start);
        }
    }

    void record(std::string_view line) {
        boost::system::error_code ec;
        const auto reply = boost::json::parse(line, ec);
        if (ec || !reply.is_object()) return;
        const auto& object = reply.as_object();
        if (const auto* ok = object.if_contains("ok"); ok && ok->is_bool() && ok->as_bool())
            if (const auto* id = object.if_contains("id"); id && id->is_string()) {
                std::lock_guard lock(mutex_);
                acknowledged_.emplace_back(id->as_string().c_str());
                return;
            }
        ++rejected_;
    }

    std::filesystem::path socket_;
    const Settings& settings_;
    std::atomic<std::size_t> sent_{0};
    std::atomic<std::size_t> rejected_{0};
    mutable std::mutex mutex_;
    std::vector<std::string> acknowledged_;
};

struct Sample {
    double rss_mib = 0;
    std::size_t fds = 0;
    double queued = 0, in_flight = 0, delivered = 0, dead_lettered = 0, failed_attempts = 0, connections = 0;
};

double rss_mib(pid_t pid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line))
        if (line.starts_with("VmRSS:")) return std::stod(line.substr(6)) / 1024.0;
    return 0;
}

std::size_t open_fds(pid_t pid) {
    std::size_t count = 0;
    for ([[maybe_unused]] const auto& entry :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd"))
        ++count;
    return count;
}

double metric(const std::map<std::string, test::MetricFamily>& families, const std::string& name) {
    const auto family = families.find(name);
    if (family == families.end()) return 0;
    double sum = 0;
    for (const auto& sample : family->second.samples) sum += sample.value;
    return sum;
}

Sample sample(pid_t pid, const avr_webhookd::AdminAddress& admin) {
    Sample result;
    result.rss_mib = rss_mib(pid);
    result.fds = open_fds(pid);
    const auto reply = avr_webhookd::query_admin(admin, http::verb::get, "/metrics", 5s);
    if (!reply.reached || reply.status != 200)
        throw std::runtime_error("soak: /metrics did not answer: " + reply.error);
    const auto families = test::parse_exposition(reply.body);
    result.queued = metric(families, "avr_webhookd_events_queued");
    result.in_flight = metric(families, "avr_webhookd_events_in_flight");
    result.delivered = metric(families, "avr_webhookd_events_delivered_total");
    result.dead_lettered = metric(families, "avr_webhookd_events_dead_lettered_total");
    result.failed_attempts = metric(families, "avr_webhookd_delivery_attempts_failed_total");
    result.connections = metric(families, "avr_webhookd_open_connections");
    return result;
}

void print_row(const std::string& when, std::string_view fault, std::size_t sent, std::size_t acked, const Sample& s) {
    std::printf("%-8s %-6s %9zu %9zu %10.0f %8.0f %9.0f %8.0f %9.1f %5zu\n", when.c_str(), std::string(fault).c_str(),
                sent, acked, s.delivered, s.dead_lettered, s.failed_attempts, s.queued + s.in_flight, s.rss_mib, s.fds);
    std::fflush(stdout);
}

Settings parse_arguments(int argc, char** argv) {
    Settings settings;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) throw std::runtime_error("missing value for " + std::string(arg));
            return argv[++i];
        };
        if (arg == "--minutes") settings.minutes = std::stod(value());
        else if (arg == "--rate") settings.rate = static_cast<unsigned>(std::stoul(value()));
        else if (arg == "--calls") settings.calls = static_cast<unsigned>(std::stoul(value()));
        else if (arg == "--daemon") settings.daemon = value();
        else throw std::runtime_error("usage: soak [--minutes M] [--rate N] [--calls K] [--daemon PATH]");
    }
    if (settings.rate == 0 || settings.calls == 0 || settings.minutes <= 0)
        throw std::runtime_error("soak: bad settings");
    return settings;
}

// Ten seconds of every minute, from second 35 on, a fault; they take turns minute by minute.
Fault fault_at(Clock::duration elapsed) {
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(elapsed).count();
    if (seconds % 60 < 35 || seconds % 60 >= 45) return Fault::none;
    constexpr Fault order[] = {Fault::unavailable, Fault::drop, Fault::slow, Fault::throttled};
    return order[(seconds / 60) % 4];
}

int run(const Settings& settings) {
    test::TempDirectory dir("avr-soak");
    FaultyReceiver receiver;
    const std::string admin_path = (dir / "admin.sock").string();
    // Receiver faults make some attempts time out after the receiver already counted the event:
    // those arrive twice (at-least-once), and the summary counts them as duplicates.
    test::DaemonProcess daemon(dir,
                               {"--url",
                                "http://127.0.0.1:" + std::to_string(receiver.port()) + "/hook",
                                "--ack",
                                "all",
                                "--timeout",
                                "1s",
                                "--retry",
                                "-1",
                                "--retry-base",
                                "200ms",
                                "--retry-max-delay",
                                "2s",
                                "--max-age",
                                "30m",
                                "--concurrency",
                                "64",
                                "--admin",
                                admin_path,
                                "--log-level",
                                "error"},
                               {}, "soak");
    if (!daemon.wait_ready(10s)) throw std::runtime_error("soak: the daemon did not start:\n" + daemon.log());
    const pid_t pid = daemon.process().pid();
    const auto admin = avr_webhookd::AdminAddress{admin_path, {}, {}};

    std::printf("soak: %.1f min at %u events/s over %u calls; faults 10 s a minute (503, drop, slow, 429)\n",
                settings.minutes, settings.rate, settings.calls);
    std::printf("%-8s %-6s %9s %9s %10s %8s %9s %8s %9s %5s\n", "time", "fault", "sent", "acked", "delivered", "dead",
                "failed", "queued", "RSS MiB", "fds");
    const Sample idle = sample(pid, admin);
    print_row("idle", "none", 0, 0, idle);

    Producer producer(daemon.socket(), settings);
    std::atomic<bool> stop_producing{false};
    std::exception_ptr producer_error;
    std::thread producing([&] {
        try {
            producer.run(stop_producing);
        } catch (...) {
            producer_error = std::current_exception();
        }
    });

    const auto started = Clock::now();
    const auto duration =
        std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(settings.minutes * 60));
    std::optional<Sample> warm;
    auto next_report = started + 60s;
    while (Clock::now() - started < duration && !producer_error) {
        receiver.set_fault(fault_at(Clock::now() - started));
        std::this_thread::sleep_for(250ms);
        if (Clock::now() >= next_report) {
            next_report += 60s;
            const auto now = sample(pid, admin);
            if (!warm) warm = now;
            const auto minute = std::chrono::duration_cast<std::chrono::minutes>(Clock::now() - started).count();
            print_row(std::to_string(minute) + " min", to_string(fault_at(Clock::now() - started)), producer.sent(),
                      producer.acknowledged(), now);
        }
    }
    receiver.set_fault(Fault::none);
    stop_producing = true;
    producing.join();
    if (producer_error) {
        try {
            std::rethrow_exception(producer_error);
        } catch (const std::exception& error) {
            std::printf("FAIL: %s\n%s\n", error.what(),
                        daemon.process().running() ? "" : ("the daemon died:\n" + daemon.log()).c_str());
            return 1;
        }
    }
    if (!warm) warm = sample(pid, admin);

    // Drain: everything acknowledged ends delivered or dead-lettered.
    const bool drained = test::wait_until(
        [&] {
            const auto now = sample(pid, admin);
            return now.queued + now.in_flight == 0;
        },
        180s, 500ms);
    std::this_thread::sleep_for(2s);  // idle keep-alive connections settle
    const Sample end = sample(pid, admin);
    print_row("drained", "none", producer.sent(), producer.acknowledged(), end);

    const auto delivered = receiver.delivered_ids();
    std::set<std::string> dead;
    for (const auto& line : test::read_lines(daemon.dead_letter())) {
        const auto value = boost::json::parse(line);
        dead.emplace(value.at("id").as_string().c_str());
    }
    std::size_t lost = 0;
    for (const auto& id : producer.acknowledged_ids())
        if (!delivered.contains(id) && !dead.contains(id)) ++lost;

    const double rss_limit = warm->rss_mib * 1.25 + 4;
    // Keep-alive connections to the receiver are pooled up to `concurrency` (64 here): after a
    // fault the backlog is delivered with many requests in flight and the pool may stay larger
    // than after the first minute. Beyond the pool's bound, a descriptor is a leak.
    constexpr std::size_t concurrency = 64;
    const std::size_t fd_limit = idle.fds + concurrency + 8;
    std::printf("\nacknowledged %zu, delivered %zu (duplicates %zu), dead-lettered %zu, lost %zu\n",
                producer.acknowledged(), delivered.size(), receiver.duplicates(), dead.size(), lost);
    std::printf(
        "RSS: idle %.1f MiB, warm %.1f MiB, end %.1f MiB (limit %.1f); fds: idle %zu, warm %zu, end %zu "
        "(limit %zu; %.0f of them keep-alive connections)\n",
        idle.rss_mib, warm->rss_mib, end.rss_mib, rss_limit, idle.fds, warm->fds, end.fds, fd_limit, end.connections);
    bool ok = true;
    if (!drained) ok = false, std::printf("FAIL: the queue did not drain within 180 s\n");
    if (lost > 0)
        ok = false, std::printf("FAIL: %zu acknowledged events were neither delivered nor dead-lettered\n", lost);
    if (end.rss_mib > rss_limit) ok = false, std::printf("FAIL: RSS did not come back to its warm baseline\n");
    if (end.fds > fd_limit) ok = false, std::printf("FAIL: open descriptors did not come back to their baseline\n");
    if (!daemon.process().running()) ok = false, std::printf("FAIL: the daemon died:\n%s\n", daemon.log().c_str());
    std::printf("%s\n", ok ? "soak: PASS" : "soak: FAIL");
    return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(parse_arguments(argc, argv));
    } catch (const std::exception& error) {
        std::fprintf(stderr, "%s\n", error.what());
        return 2;
    }
}
