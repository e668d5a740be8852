#pragma once

// One relay run: the real daemon relays events written at once to its socket to the nginx sink;
// and the backlog: its memory with events queued behind a receiver that is down.

#include "bench_support.hpp"
#include "nats_sink.hpp"
#include "nginx_sink.hpp"
#include "syscall_count.hpp"

#include <cstddef>
#include <optional>
#include <string>

namespace avr_webhookd::bench {

struct RelaySpec {
    DaemonSpec daemon;  // url, spool mode and ca_file chosen by the caller
    std::size_t events = 100000;
    unsigned calls = 100;
    unsigned destinations = 1;   // the url, and destinations - 1 more to the same sink (fan-out)
    std::string attach;          // a profiler command run for the load phase ("{pid}" = the daemon), or ""
    bool count_syscalls = true;  // the daemon's system calls over the load phase (perf stat), where perf can
};

struct RelayFigures {
    double seconds = 0;                     // from the first write to the socket until nginx counted every event
    double cpu_us = 0;                      // daemon user + system CPU per event (all its deliveries)
    double rss_before_mib = 0;              // VmRSS once started, before the load
    double hwm_mib = 0;                     // VmHWM after the load
    std::optional<SyscallCounts> syscalls;  // per event, by name ("total": all), over the load phase
    double rate(std::size_t events) const { return static_cast<double>(events) / seconds; }
};

// Throws when the daemon fails or nginx counts more or fewer requests than events were written.
RelayFigures run_relay(NginxSink& sink, const RelaySpec& spec);
// The same to a JetStream stream (spec.daemon.url: the sink's nats:// url): events/s until the
// stream has stored them all, the daemon's CPU per event.
RelayFigures run_relay(NatsSink& sink, const RelaySpec& spec);

// Prints the daemon's RSS before and after `count` events of ~170 bytes over 1000 calls were
// queued with the receiver down (connection refused, retries an hour apart), spool_sync = interval.
void run_backlog(const std::string& daemon_binary, std::size_t count);

}  // namespace avr_webhookd::bench
