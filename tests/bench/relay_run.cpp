#include "relay_run.hpp"

#include "support/daemon_fixture.hpp"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <stdexcept>
#include <thread>

namespace avr_webhookd::bench {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

// Counts with nginx's stub_status or the stream's state; the same timing either way.
template <typename Sink>
RelayFigures relay_to(Sink& sink, const RelaySpec& spec) {
    const std::string input = event_lines(spec.events, spec.calls);
    test::TempDirectory dir("relay-bench");
    DaemonSpec daemon_spec = spec.daemon;
    for (unsigned d = 2; d <= spec.destinations; ++d) {  // every destination gets every event
        daemon_spec.extra.push_back("--destination-d" + std::to_string(d) + "-url=" + spec.daemon.url);
        daemon_spec.extra.push_back("--destination-d" + std::to_string(d) +
                                    "-concurrency=" + std::to_string(spec.daemon.concurrency));
        if (!spec.daemon.ca_file.empty())
            daemon_spec.extra.push_back("--destination-d" + std::to_string(d) + "-ca-file=" + spec.daemon.ca_file);
    }
    const std::size_t requests = spec.events * spec.destinations;
    test::Process daemon = start_daemon(daemon_spec, dir);
    RelayFigures figures;
    figures.rss_before_mib = status_mib(daemon.pid(), "VmRSS");
    {
        Attached profiler(spec.attach, daemon.pid(), dir.path());
        std::optional<SyscallCounter> syscalls;
        if (spec.count_syscalls) syscalls.emplace(daemon.pid(), dir.path());
        sink.mark();
        const double cpu_before = cpu_seconds(daemon.pid());
        const auto started = Clock::now();
        test::exchange(dir / "in.sock", input, 300s);  // returns once the daemon has read it all
        if (!sink.wait_for(requests, 300s))
            throw std::runtime_error("relay: only " + std::to_string(sink.received()) + " of " +
                                     std::to_string(requests) + " events arrived\n" + daemon.output_for_diagnosis());
        figures.seconds = std::chrono::duration<double>(Clock::now() - started).count();
        figures.cpu_us = (cpu_seconds(daemon.pid()) - cpu_before) * 1e6 / static_cast<double>(spec.events);
        figures.hwm_mib = status_mib(daemon.pid(), "VmHWM");
        if (syscalls) figures.syscalls = syscalls->finish();
        if (figures.syscalls)
            for (auto& [name, count] : *figures.syscalls) count /= static_cast<double>(spec.events);
    }
    stop_daemon(daemon);
    if (const auto received = sink.received(); received != requests)
        throw std::runtime_error("relay: the receiver counted " + std::to_string(received) + " for " +
                                 std::to_string(requests) + " expected");
    return figures;
}

}  // namespace

RelayFigures run_relay(NginxSink& sink, const RelaySpec& spec) { return relay_to(sink, spec); }

RelayFigures run_relay(NatsSink& sink, const RelaySpec& spec) { return relay_to(sink, spec); }

void run_backlog(const std::string& daemon_binary, std::size_t count) {
    if (count == 0) return;
    const std::string input = event_lines(count, 1000);
    test::TempDirectory dir("relay-bench-backlog");
    DaemonSpec spec;
    spec.binary = daemon_binary;
    spec.url = "http://127.0.0.1:1/down";
    spec.spool = "interval";
    spec.extra = {"--retry",           "-1",         "--retry-base", "1h",       "--retry-max-delay", "1h",
                  "--max-age",         "24h",        "--max-queue",  "10000000", "--max-queue-bytes", "68719476736",
                  "--spool-max-bytes", "68719476736"};
    test::Process daemon = start_daemon(spec, dir);
    const auto before = status_mib(daemon.pid(), "VmRSS");
    const auto started = Clock::now();
    test::exchange(dir / "in.sock", input, 600s);
    const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
    const auto after = status_mib(daemon.pid(), "VmRSS");
    std::printf(
        "\nbacklog: %zu events of ~170 bytes queued in %.1f s with the receiver down (spool_sync = interval):\n"
        "  RSS %.1f MiB before, %.1f MiB after: %.0f bytes per queued event; at that rate 1,000,000 take %.0f MiB\n",
        count, seconds, before, after, (after - before) * 1048576.0 / static_cast<double>(count),
        (after - before) * 1e6 / static_cast<double>(count) + before);
    // A stop leaves them in the spool; the next start reads it back before it accepts anything.
    stop_daemon(daemon);
    const auto restarted = Clock::now();
    test::Process again = start_daemon(spec, dir, 600s);
    const double restart_seconds = std::chrono::duration<double>(Clock::now() - restarted).count();
    std::printf("  restart with them waiting: accepting again after %.1f s; peak RSS (VmHWM) %.1f MiB, RSS %.1f MiB\n",
                restart_seconds, status_mib(again.pid(), "VmHWM"), status_mib(again.pid(), "VmRSS"));
    again.send_signal(SIGKILL);
    again.wait(10s);
}

}  // namespace avr_webhookd::bench
