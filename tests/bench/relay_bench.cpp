// relay_bench: how fast the daemon relays events compared with a plain HTTP load generator
// hitting the same receiver over loopback, and how much memory it needs while doing so.
//
//   relay_bench [--requests N] [--calls K] [--concurrency C] [--repeat R] [--backlog B] [--daemon PATH]
//
// Scenarios (each run R times; the table shows the median run):
//   baseline     C keep-alive connections POST back-to-back from this process
//   baseline-1   the same over one connection (one request in flight)
//   relay        N events over K calls written to the daemon's socket as fast as possible,
//                timed until the receiver has counted N requests
//   relay-1call  N/5 events of one call: strict order keeps one request in flight
//   spool-interv relay with the crash-safe spool, spool_sync = interval
//   spool-always relay with the crash-safe spool, spool_sync = always (the default)
// (relay and relay-1call run memory only, spool_dir = ""), then the backlog: RSS with B events
// queued behind a receiver that is down.
// Not a test: it prints figures and fails only when the daemon loses or duplicates events.

#include "support/daemon_fixture.hpp"
#include "support/daemon_fixture.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <csignal>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

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

struct Settings {
    std::size_t requests = 50000;
    unsigned calls = 1000;
    unsigned concurrency = 64;
    unsigned repeat = 3;
    std::string daemon = avr_webhookd::test::daemon_binary();
    std::size_t backlog = 200000;  // events queued with the receiver down, for the memory figure
};

// A transcription event of about 200 bytes, as AVR writes it.
std::string event_line(unsigned call, std::size_t number) {
    return "{\"uuid\":\"" + avr_webhookd::test::call_uuid(call) +
           "\",\"type\":\"transcription\",\"timestamp\":\"2024-05-01T12:00:00.000Z\",\"payload\":{\"role\":\"user\","
           "\"text\":\"I would like to change the delivery address of my order number " +
           std::to_string(100000 + number) + ", please.\"}}\n";
}

// Minimal keep-alive HTTP/1.1 server: 200 with an empty body for every request, counted.
class CountingReceiver {
public:
    CountingReceiver() : acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
        asio::co_spawn(io_, accept_loop(), asio::detached);
        thread_ = std::thread([this] { io_.run(); });
    }
    ~CountingReceiver() {
        io_.stop();
        thread_.join();
    }

    unsigned short port() const { return acceptor_.local_endpoint().port(); }
    std::size_t count() const { return count_.load(std::memory_order_relaxed); }
    void reset() { count_.store(0); }

    bool wait_for(std::size_t expected, std::chrono::milliseconds timeout) const {
        const auto deadline = Clock::now() + timeout;
        while (count() < expected) {
            if (Clock::now() > deadline) return false;
            std::this_thread::sleep_for(200us);
        }
        return true;
    }

private:
    awaitable<void> accept_loop() {
        for (;;) {
            auto [ec, socket] = co_await acceptor_.async_accept(as_tuple(use_awaitable));
            if (ec) co_return;
            socket.set_option(tcp::no_delay(true), ec);
            asio::co_spawn(io_, serve(std::move(socket)), asio::detached);
        }
    }

    awaitable<void> serve(tcp::socket socket) {
        beast::flat_buffer buffer;
        http::response<http::empty_body> response{http::status::ok, 11};
        response.keep_alive(true);
        response.prepare_payload();
        for (;;) {
            http::request_parser<http::string_body> parser;
            auto [read_error, read] = co_await http::async_read(socket, buffer, parser, as_tuple(use_awaitable));
            if (read_error) co_return;
            count_.fetch_add(1, std::memory_order_relaxed);
            auto [write_error, written] = co_await http::async_write(socket, response, as_tuple(use_awaitable));
            if (write_error) co_return;
        }
    }

    asio::io_context io_;
    tcp::acceptor acceptor_;
    std::atomic<std::size_t> count_{0};
    std::thread thread_;
};

struct Result {
    std::string scenario;
    std::size_t requests = 0;
    double seconds = 0;
    std::optional<double> p50_ms, p99_ms;
    std::optional<double> rss_before_mib, hwm_mib;
    std::optional<double> daemon_cpu_us;  // daemon CPU time (user + system) per event

    double rate() const { return static_cast<double>(requests) / seconds; }
};

// C connections on one thread, each POSTing back-to-back until `total` requests have been sent.
Result run_baseline(CountingReceiver& receiver, std::string scenario, std::size_t total, unsigned connections) {
    receiver.reset();
    asio::io_context io;
    const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), receiver.port());
    const std::string body = event_line(1, 1);
    std::size_t issued = 0;
    std::vector<double> latencies_ms;
    latencies_ms.reserve(total);

    auto client = [&]() -> awaitable<void> {
        tcp::socket socket(io);
        co_await socket.async_connect(endpoint, use_awaitable);
        socket.set_option(tcp::no_delay(true));
        http::request<http::string_body> request{http::verb::post, "/hook", 11};
        request.set(http::field::host, "127.0.0.1:" + std::to_string(receiver.port()));
        request.set(http::field::user_agent, "relay_bench");
        request.set(http::field::content_type, "application/json");
        request.set("X-AVR-WEBHOOK-ID", "0192b3c4-0000-7000-8000-000000000001");
        request.set("X-AVR-WEBHOOK-SEQUENCE", "1");
        request.set("X-AVR-WEBHOOK-ATTEMPT", "1");
        request.body() = body;
        request.prepare_payload();
        request.keep_alive(true);
        beast::flat_buffer buffer;
        while (issued < total) {
            ++issued;
            const auto sent_at = Clock::now();
            co_await http::async_write(socket, request, use_awaitable);
            http::response<http::string_body> response;
            co_await http::async_read(socket, buffer, response, use_awaitable);
            if (response.result() != http::status::ok) throw std::runtime_error("baseline: unexpected status");
            latencies_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - sent_at).count());
        }
    };

    const auto started = Clock::now();
    for (unsigned i = 0; i < connections; ++i)
        asio::co_spawn(io, client(), [](std::exception_ptr error) {
            if (error) std::rethrow_exception(error);
        });
    io.run();
    Result result;
    result.scenario = std::move(scenario);
    result.requests = total;
    result.seconds = std::chrono::duration<double>(Clock::now() - started).count();
    std::sort(latencies_ms.begin(), latencies_ms.end());
    result.p50_ms = latencies_ms[latencies_ms.size() / 2];
    result.p99_ms = latencies_ms[latencies_ms.size() * 99 / 100];
    if (receiver.count() != total)
        throw std::runtime_error("baseline: receiver counted a different number of requests");
    return result;
}

// "VmHWM" or "VmRSS" of a process, in MiB.
double status_mib(pid_t pid, std::string_view field) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line))
        if (line.starts_with(field) && line.size() > field.size() && line[field.size()] == ':')
            return std::stod(line.substr(field.size() + 1)) / 1024.0;  // the kernel reports kB
    throw std::runtime_error("no " + std::string(field) + " in /proc/" + std::to_string(pid) + "/status");
}

// User plus system CPU time a process has used so far, in seconds.
double cpu_seconds(pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    std::istringstream fields(text.substr(text.rfind(')') + 2));
    std::string field;
    double ticks = 0;
    for (int number = 3; number <= 15 && fields >> field; ++number)
        if (number >= 14) ticks += std::stod(field);
    return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// The crash-safe spool's flags: none (memory only), or a spool in `dir` with that sync mode.
std::vector<std::string> spool_flags(const std::string& mode, const std::filesystem::path& dir) {
    if (mode == "none") return {"--spool-dir", ""};
    return {"--spool-dir", (dir / "spool").string(), "--spool-sync", mode};
}

Result run_relay(CountingReceiver& receiver, const Settings& settings, std::string scenario, std::size_t total,
                 unsigned calls, const std::string& spool_mode) {
    using namespace avr_webhookd::test;
    std::string input;
    input.reserve(total * 220);
    for (std::size_t i = 0; i < total; ++i) input += event_line(static_cast<unsigned>(i % calls) + 1, i);

    TempDirectory dir("relay-bench");
    Process::Options options;
    options.arguments = {settings.daemon,
                         "--config",
                         "",
                         "--socket",
                         (dir / "in.sock").string(),
                         "--url",
                         "http://127.0.0.1:" + std::to_string(receiver.port()) + "/hook",
                         "--concurrency",
                         std::to_string(settings.concurrency),
                         "--log-level",
                         "warn"};
    const auto spool = spool_flags(spool_mode, dir.path());
    options.arguments.insert(options.arguments.end(), spool.begin(), spool.end());
    options.output_directory = dir.path();
    options.name = "daemon";
    Process daemon(std::move(options));
    if (!wait_until([&] { return !daemon.running() || can_connect(dir / "in.sock"); }, 10s) || !daemon.running())
        throw std::runtime_error("the daemon did not start: " + daemon.output_for_diagnosis());

    receiver.reset();
    Result result;
    result.scenario = std::move(scenario);
    result.requests = total;
    result.rss_before_mib = status_mib(daemon.pid(), "VmRSS");
    const double cpu_before = cpu_seconds(daemon.pid());
    const auto started = Clock::now();
    {
        exchange(dir / "in.sock", input, 120s);  // writes everything; returns once the daemon has read it all
        if (!receiver.wait_for(total, 120s))
            throw std::runtime_error("relay: only " + std::to_string(receiver.count()) + " of " +
                                     std::to_string(total) + " events arrived\n" + daemon.output_for_diagnosis());
        result.seconds = std::chrono::duration<double>(Clock::now() - started).count();
    }
    result.hwm_mib = status_mib(daemon.pid(), "VmHWM");
    result.daemon_cpu_us = (cpu_seconds(daemon.pid()) - cpu_before) * 1e6 / static_cast<double>(total);
    daemon.send_signal(SIGTERM);
    const auto status = daemon.wait(10s);
    if (!status || !status->success())
        throw std::runtime_error("relay: the daemon did not stop cleanly\n" + daemon.output_for_diagnosis());
    if (receiver.count() != total)
        throw std::runtime_error("relay: the receiver counted " + std::to_string(receiver.count()) + " requests for " +
                                 std::to_string(total) + " events");
    if (const auto log = daemon.stderr_text(); !log.empty()) std::cerr << "daemon log:\n" << log;
    return result;
}

// Memory while a backlog builds: `count` events of about 200 bytes over 1000 calls queued with
// the receiver down (connection refused, retries an hour apart), spool_sync = interval.
void run_backlog(const Settings& settings) {
    using namespace avr_webhookd::test;
    if (settings.backlog == 0) return;
    std::string input;
    input.reserve(settings.backlog * 220);
    for (std::size_t i = 0; i < settings.backlog; ++i) input += event_line(static_cast<unsigned>(i % 1000) + 1, i);
    TempDirectory dir("relay-bench-backlog");
    Process::Options options;
    options.arguments = {settings.daemon,
                         "--config",
                         "",
                         "--socket",
                         (dir / "in.sock").string(),
                         "--url",
                         "http://127.0.0.1:1/down",
                         "--retry",
                         "-1",
                         "--retry-base",
                         "1h",
                         "--retry-max-delay",
                         "1h",
                         "--max-age",
                         "24h",
                         "--max-queue",
                         "10000000",
                         "--max-queue-bytes",
                         "68719476736",
                         "--spool-max-bytes",
                         "68719476736",
                         "--log-level",
                         "error"};
    const auto spool = spool_flags("interval", dir.path());
    options.arguments.insert(options.arguments.end(), spool.begin(), spool.end());
    options.output_directory = dir.path();
    options.name = "daemon";
    Process daemon(std::move(options));
    if (!wait_until([&] { return !daemon.running() || can_connect(dir / "in.sock"); }, 10s) || !daemon.running())
        throw std::runtime_error("the daemon did not start: " + daemon.output_for_diagnosis());
    const auto before = status_mib(daemon.pid(), "VmRSS");
    const auto started = Clock::now();
    exchange(dir / "in.sock", input, 600s);
    const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
    const auto after = status_mib(daemon.pid(), "VmRSS");
    std::printf(
        "\nbacklog: %zu events of ~200 bytes queued in %.1f s with the receiver down (spool_sync = interval):\n"
        "  RSS %.1f MiB before, %.1f MiB after: %.0f bytes per queued event; at that rate 1,000,000 take %.0f MiB\n",
        settings.backlog, seconds, before, after, (after - before) * 1048576.0 / static_cast<double>(settings.backlog),
        (after - before) * 1e6 / static_cast<double>(settings.backlog) + before);
    daemon.send_signal(SIGKILL);
    daemon.wait(10s);
}

// The median run by rate (of an odd count; the faster middle one of an even count).
Result median(std::vector<Result> runs) {
    std::sort(runs.begin(), runs.end(), [](const Result& a, const Result& b) { return a.rate() < b.rate(); });
    return runs[runs.size() / 2];
}

std::string cell(std::optional<double> value, const char* format) {
    if (!value) return "-";
    char text[32];
    std::snprintf(text, sizeof text, format, *value);
    return text;
}

void print_table(const std::vector<Result>& results, const Settings& settings) {
    std::printf("\nrelay_bench: %zu requests, %u calls, concurrency %u, median of %u run(s)\n\n", settings.requests,
                settings.calls, settings.concurrency, settings.repeat);
    std::printf("%-12s %9s %8s %9s %8s %7s %7s %9s %9s %8s\n", "scenario", "requests", "seconds", "req/s", "vs base",
                "p50 ms", "p99 ms", "CPU us/ev", "RSS0 MiB", "HWM MiB");
    const double parallel_base = results[0].rate();
    const double serial_base = results[1].rate();
    for (const auto& r : results) {
        const bool serial = r.scenario.ends_with("-1") || r.scenario.ends_with("1call");
        std::printf("%-12s %9zu %8.2f %9.0f %7.0f%% %7s %7s %9s %9s %8s\n", r.scenario.c_str(), r.requests, r.seconds,
                    r.rate(), 100.0 * r.rate() / (serial ? serial_base : parallel_base), cell(r.p50_ms, "%.3f").c_str(),
                    cell(r.p99_ms, "%.3f").c_str(), cell(r.daemon_cpu_us, "%.1f").c_str(),
                    cell(r.rss_before_mib, "%.1f").c_str(), cell(r.hwm_mib, "%.1f").c_str());
    }
    std::printf(
        "\nvs base: relay against baseline, relay-1call against baseline-1 (both one request in flight).\n"
        "CPU us/ev: daemon CPU time (user + system) per event. RSS0: daemon resident memory before\n"
        "the load; HWM: its peak (VmHWM), reached while the events wait in its queue.\n");
}

std::size_t number_argument(const std::string& name, const char* text) {
    std::size_t value = 0;
    const std::string_view view(text);
    const auto [end, error] = std::from_chars(view.data(), view.data() + view.size(), value);
    if (error != std::errc() || end != view.data() + view.size() || value == 0)
        throw std::invalid_argument(name + " needs a positive number, got \"" + std::string(view) + "\"");
    return value;
}

Settings parse_arguments(int argc, char** argv) {
    Settings settings;
    for (int i = 1; i < argc; ++i) {
        const std::string name = argv[i];
        if (i + 1 >= argc)
            throw std::invalid_argument(
                "usage: relay_bench [--requests N] [--calls K] "
                "[--concurrency C] [--repeat R] [--backlog B] [--daemon PATH]");
        const char* value = argv[++i];
        if (name == "--requests") settings.requests = number_argument(name, value);
        else if (name == "--calls") settings.calls = static_cast<unsigned>(number_argument(name, value));
        else if (name == "--concurrency") settings.concurrency = static_cast<unsigned>(number_argument(name, value));
        else if (name == "--repeat") settings.repeat = static_cast<unsigned>(number_argument(name, value));
        else if (name == "--daemon") settings.daemon = value;
        else if (name == "--backlog") settings.backlog = number_argument(name, value);
        else throw std::invalid_argument("unknown option " + name);
    }
    return settings;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const Settings settings = parse_arguments(argc, argv);
        const std::size_t serial_requests = std::max<std::size_t>(1, settings.requests / 5);
        CountingReceiver receiver;

        auto repeated = [&](auto run) {
            std::vector<Result> runs;
            for (unsigned i = 0; i < settings.repeat; ++i) {
                runs.push_back(run());
                std::fprintf(stderr, "  %-12s %8.0f req/s\n", runs.back().scenario.c_str(), runs.back().rate());
            }
            return median(std::move(runs));
        };
        std::vector<Result> results;
        results.push_back(
            repeated([&] { return run_baseline(receiver, "baseline", settings.requests, settings.concurrency); }));
        results.push_back(repeated([&] { return run_baseline(receiver, "baseline-1", serial_requests, 1); }));
        results.push_back(repeated(
            [&] { return run_relay(receiver, settings, "relay", settings.requests, settings.calls, "none"); }));
        results.push_back(
            repeated([&] { return run_relay(receiver, settings, "relay-1call", serial_requests, 1, "none"); }));
        // The same relay with the crash-safe spool in both sync modes, side by side.
        results.push_back(repeated([&] {
            return run_relay(receiver, settings, "spool-interv", settings.requests, settings.calls, "interval");
        }));
        results.push_back(repeated([&] {
            return run_relay(receiver, settings, "spool-always", settings.requests, settings.calls, "always");
        }));
        print_table(results, settings);
        std::printf("spool: interval at %.0f%%, always at %.0f%% of the memory-only relay's rate\n",
                    100.0 * results[4].rate() / results[2].rate(), 100.0 * results[5].rate() / results[2].rate());
        run_backlog(settings);
        return 0;
    } catch (const std::exception& error) {
        std::cerr << "relay_bench: " << error.what() << "\n";
        return 1;
    }
}
