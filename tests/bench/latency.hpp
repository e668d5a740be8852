#pragma once

// The added latency at a steady rate: events written one at a time to the daemon's socket, each
// carrying its send time, and timed on arrival at an in-process receiver.

#include <cstddef>
#include <string>

namespace avr_webhookd::bench {

struct LatencySpec {
    std::string daemon_binary;
    unsigned rate = 1000;  // events per second
    unsigned seconds = 5;
    unsigned calls = 100;
    unsigned concurrency = 64;
    std::string spool = "always";  // as DaemonSpec::spool: the default configuration, or "none", "interval"
};

struct LatencyFigures {
    std::size_t events = 0;
    double p50_ms = 0, p99_ms = 0, p999_ms = 0, max_ms = 0;
    double cpu_us = 0;  // daemon CPU per event at that rate
};

LatencyFigures run_latency(const LatencySpec& spec);

}  // namespace avr_webhookd::bench
