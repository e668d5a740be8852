// relay_bench: the daemon's relay rate against the field's standard load generator (wrk) on the
// same nginx receiver, its CPU, system calls and memory per event, its added latency at a steady
// rate, and its memory with a backlog. The default configuration (crash-safe spool, spool_sync =
// always) comes first: it is what users run. Not a test: it prints figures and fails only when events are lost or
// duplicated, or a tool fails. See tests/bench/README.md.

#include "bench_support.hpp"
#include "latency.hpp"
#include "nginx_sink.hpp"
#include "relay_run.hpp"
#include "support/daemon_fixture.hpp"
#include "support/test_pki.hpp"
#include "wrk_ceiling.hpp"

#include <charconv>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace avr_webhookd::bench;

struct Settings {
    std::size_t events = 100000;  // written at once per relay run (one-call runs: a fifth)
    unsigned rounds = 3;
    unsigned seconds = 3;  // each wrk run
    unsigned concurrency = 64;
    unsigned latency_seconds = 5;
    unsigned latency_rate = 1000;
    std::size_t backlog = 200000;
    std::string daemon = avr_webhookd::test::daemon_binary();
    std::string only;    // comma-separated scenario names, or all
    std::string attach;  // profiler command for relay runs ("{pid}": the daemon's)
    bool count_syscalls = true;
};

// A ceiling (wrk) or a relay run; a relay's ratio is to the named ceiling of the same round.
struct Scenario {
    std::string name;
    std::string ceiling;  // empty: this is a ceiling
    bool https = false;
    unsigned calls = 0;            // relay: calls; ceiling: wrk connections
    std::string spool = "always";  // the default; "none" is memory only (--spool-dir "")
    unsigned destinations = 1;     // fan-out: events/s is then each destination's rate
    bool nats = false;             // to the local JetStream stream instead of nginx
};

// A relay without a suffix runs the default configuration; -memory and -interval name the others.
const std::vector<Scenario> scenarios = {
    {"wrk-http", "", false, 64},
    {"http-100", "wrk-http", false, 100},
    {"http-100-memory", "wrk-http", false, 100, "none"},
    {"http-100-interval", "wrk-http", false, 100, "interval"},
    {"http-1000", "wrk-http", false, 1000},
    {"wrk-http-c1", "", false, 1},
    {"http-1call", "wrk-http-c1", false, 1},
    {"wrk-https", "", true, 64},
    {"https-100", "wrk-https", true, 100},
    {"https-100-memory", "wrk-https", true, 100, "none"},
    // Fan-out to 2 and 4 destinations (same sink): each destination's events/s against http-100's.
    {"http-100-2dest", "http-100", false, 100, "always", 2},
    {"http-100-4dest", "http-100", false, 100, "always", 4},
    // NATS JetStream destination (a single-node stream on loopback) beside the HTTP relays.
    {"nats-100", "http-100", false, 100, "always", 1, true},
    {"nats-100-memory", "http-100-memory", false, 100, "none", 1, true},
    {"nats-1call", "http-1call", false, 1, "always", 1, true},
};

struct Sample {
    std::optional<double> rate, ratio, cpu_us, rss_before_mib, hwm_mib, syscalls;  // rate: always set
    SyscallCounts syscalls_by_name;                                                // per event
};
using Field = std::optional<double> Sample::*;

using Samples = std::map<std::string, std::vector<Sample>>;

bool selected(const Settings& settings, const std::string& name) {
    if (settings.only.empty()) return true;
    const std::string list = "," + settings.only + ",";
    return list.find("," + name + ",") != std::string::npos;
}

std::size_t events_of(const Settings& settings, const Scenario& scenario) {
    return scenario.calls == 1 ? std::max<std::size_t>(1, settings.events / 5) : settings.events;
}

Sample run_scenario(const Settings& settings, const Scenario& scenario, NginxSink& sink,
                    std::unique_ptr<NatsSink>& nats, const std::string& ca_file) {
    if (scenario.nats && !nats) nats = std::make_unique<NatsSink>();
    const std::string url = scenario.nats ? nats->url() : scenario.https ? sink.https_url() : sink.http_url();
    Sample sample;
    if (scenario.ceiling.empty()) {
        sample.rate = wrk_rate({url, scenario.calls, settings.seconds, event_body(1, 1)});
        return sample;
    }
    RelaySpec spec;
    spec.daemon = {settings.daemon, url, settings.concurrency, scenario.spool, scenario.https ? ca_file : "", {}};
    spec.events = events_of(settings, scenario);
    spec.calls = scenario.calls;
    spec.destinations = scenario.destinations;
    spec.attach = settings.attach;
    spec.count_syscalls = settings.count_syscalls;
    const auto figures = scenario.nats ? run_relay(*nats, spec) : run_relay(sink, spec);
    sample.rate = figures.rate(spec.events);
    sample.cpu_us = figures.cpu_us;
    sample.rss_before_mib = figures.rss_before_mib;
    sample.hwm_mib = figures.hwm_mib;
    if (figures.syscalls) {
        sample.syscalls = figures.syscalls->at("total");
        sample.syscalls_by_name = *figures.syscalls;
    }
    return sample;
}

// Rounds that alternate ceilings and relay runs, so that the machine's drift hits both.
Samples run_rounds(const Settings& settings) {
    const avr_webhookd::test::TestPki pki;
    NginxSink sink(pki.valid().cert, pki.valid().key);
    std::unique_ptr<NatsSink> nats;  // started for the first NATS scenario
    Samples samples;
    for (unsigned round = 1; round <= settings.rounds; ++round) {
        std::map<std::string, double> ceilings;
        for (const auto& scenario : scenarios) {
            if (!selected(settings, scenario.name)) continue;
            auto sample = run_scenario(settings, scenario, sink, nats, pki.ca_file().string());
            if (ceilings.contains(scenario.ceiling)) sample.ratio = *sample.rate / ceilings[scenario.ceiling];
            ceilings[scenario.name] = *sample.rate;  // a relay run may be the reference of a later one
            std::fprintf(stderr, "round %u  %-18s %8.0f /s", round, scenario.name.c_str(), *sample.rate);
            if (sample.ratio) std::fprintf(stderr, "  %.2f of %s", *sample.ratio, scenario.ceiling.c_str());
            if (sample.cpu_us) std::fprintf(stderr, "  %.1f us/ev", *sample.cpu_us);
            if (sample.syscalls) std::fprintf(stderr, "  %.2f syscalls/ev", *sample.syscalls);
            std::fprintf(stderr, "\n");
            samples[scenario.name].push_back(sample);
        }
    }
    return samples;
}

// The median over the rounds of one figure of a scenario; nullopt when it did not run.
std::optional<double> median_of(const Samples& samples, const std::string& scenario, Field field) {
    const auto found = samples.find(scenario);
    if (found == samples.end()) return std::nullopt;
    std::vector<double> values;
    for (const auto& run : found->second)
        if (const auto& value = run.*field) values.push_back(*value);
    return median(values);
}

std::string cell(std::optional<double> value, const char* format) {
    if (!value) return "-";
    char text[32];
    std::snprintf(text, sizeof text, format, *value);
    return text;
}

void print_table(const Settings& settings, const Samples& samples) {
    std::printf("\nrelay_bench: %zu events per relay run (one call: %zu), %u round(s), medians; wrk %u s\n\n",
                settings.events, std::max<std::size_t>(1, settings.events / 5), settings.rounds, settings.seconds);
    std::printf("%-18s %-10s %8s %13s %6s %9s %6s %8s %7s\n", "scenario", "vs", "median/s", "min-max/s", "ratio",
                "CPU us/ev", "sys/ev", "RSS0 MiB", "HWM MiB");
    for (const auto& scenario : scenarios) {
        const auto found = samples.find(scenario.name);
        if (found == samples.end()) continue;
        double low = *found->second.front().rate, high = low;
        for (const auto& run : found->second) low = std::min(low, *run.rate), high = std::max(high, *run.rate);
        const std::string range =
            std::to_string(static_cast<long>(low)) + "-" + std::to_string(static_cast<long>(high));
        const auto& name = scenario.name;
        std::printf("%-18s %-10s %8s %13s %6s %9s %6s %8s %7s\n", name.c_str(),
                    scenario.ceiling.empty() ? "(ceiling)" : scenario.ceiling.c_str(),
                    cell(median_of(samples, name, &Sample::rate), "%.0f").c_str(), range.c_str(),
                    cell(median_of(samples, name, &Sample::ratio), "%.2f").c_str(),
                    cell(median_of(samples, name, &Sample::cpu_us), "%.1f").c_str(),
                    cell(median_of(samples, name, &Sample::syscalls), "%.2f").c_str(),
                    cell(median_of(samples, name, &Sample::rss_before_mib), "%.1f").c_str(),
                    cell(median_of(samples, name, &Sample::hwm_mib), "%.1f").c_str());
    }
    std::printf(
        "\nA relay without a suffix runs the default configuration (spool on, spool_sync = always); -memory\n"
        "runs without the spool, -interval with spool_sync = interval. ratio: the relay's rate over the\n"
        "ceiling's of the same round (median of the rounds). CPU us/ev: the daemon's user + system CPU per\n"
        "event. sys/ev: its system calls per event (perf stat). RSS0: its resident memory before the load;\n"
        "HWM: its peak.\n");
}

// The median over the rounds of each system call's count per event, for each relay scenario:
// the calls that make at least 0.01 per event somewhere, most frequent first.
void print_syscalls(const Samples& samples) {
    std::map<std::string, double> weight;  // a call's largest median over the scenarios
    std::map<std::string, std::map<std::string, double>> medians;
    for (const auto& scenario : scenarios) {
        const auto found = samples.find(scenario.name);
        if (found == samples.end() || scenario.ceiling.empty()) continue;
        std::map<std::string, std::vector<double>> values;
        for (const auto& run : found->second)
            for (const auto& [name, count] : run.syscalls_by_name) values[name].push_back(count);
        for (auto& [name, counts] : values) {
            const double value = *median(counts);
            medians[scenario.name][name] = value;
            if (name != "total") weight[name] = std::max(weight[name], value);
        }
    }
    if (medians.empty()) return;
    std::vector<std::string> columns;
    for (const auto& [name, value] : weight)
        if (value >= 0.01) columns.push_back(name);
    std::sort(columns.begin(), columns.end(), [&](const auto& a, const auto& b) { return weight[a] > weight[b]; });
    std::printf(
        "\nsystem calls per event (perf stat on the syscall tracepoints, medians; other: the rest):\n\n%-18s %6s",
        "scenario", "total");
    for (const auto& name : columns)
        std::printf(" %*s", static_cast<int>(std::max<std::size_t>(6, name.size())), name.c_str());
    std::printf(" %6s\n", "other");
    for (const auto& scenario : scenarios) {
        const auto found = medians.find(scenario.name);
        if (found == medians.end()) continue;
        auto& counts = found->second;
        double named = 0;
        std::printf("%-18s %6.2f", scenario.name.c_str(), counts["total"]);
        for (const auto& name : columns) {
            named += counts[name];
            std::printf(" %*.2f", static_cast<int>(std::max<std::size_t>(6, name.size())), counts[name]);
        }
        std::printf(" %6.2f\n", std::max(0.0, counts["total"] - named));
    }
}

// The added latency at the steady rate, for the default configuration ("latency") and memory
// only ("latency-memory"); the default's figures, if it ran.
std::optional<LatencyFigures> run_latency_scenarios(const Settings& settings) {
    if (settings.latency_seconds == 0) return std::nullopt;
    std::optional<LatencyFigures> default_figures;
    for (const std::string spool : {"always", "none"}) {
        const bool memory = spool == "none";
        if (!selected(settings, memory ? "latency-memory" : "latency")) continue;
        const auto figures = run_latency(
            {settings.daemon, settings.latency_rate, settings.latency_seconds, 100, settings.concurrency, spool});
        std::printf(
            "\nlatency, %s, at %u events/s for %u s (100 calls, HTTP, in-process receiver), socket write to "
            "arrival:\n  %zu events: p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.3f ms; daemon CPU %.1f us/event\n",
            memory ? "memory only" : "default (spool_sync = always)", settings.latency_rate, settings.latency_seconds,
            figures.events, figures.p50_ms, figures.p99_ms, figures.p999_ms, figures.max_ms, figures.cpu_us);
        if (!memory) default_figures = figures;
    }
    return default_figures;
}

// Issue 21's goals against this run's medians.
void print_goals(const Samples& samples, const std::optional<LatencyFigures>& latency) {
    std::printf("\nissue 21's goals, this run's medians:\n");
    auto check = [](const std::string& goal, std::optional<double> value, double limit, bool at_least) {
        if (!value) return;
        const bool met = at_least ? *value >= limit : *value <= limit;
        std::printf("  %-50s %8.2f  %s\n", goal.c_str(), *value, met ? "met" : "NOT met");
    };
    check("http-100 (default) >= 0.75 of wrk-http", median_of(samples, "http-100", &Sample::ratio), 0.75, true);
    check("http-100-memory >= 0.90 of wrk-http", median_of(samples, "http-100-memory", &Sample::ratio), 0.90, true);
    check("https-100 (default) >= 0.75 of wrk-https", median_of(samples, "https-100", &Sample::ratio), 0.75, true);
    check("http-100 (default) CPU us per event <= 15", median_of(samples, "http-100", &Sample::cpu_us), 15, false);
    check("http-100-memory CPU us per event <= 12", median_of(samples, "http-100-memory", &Sample::cpu_us), 12, false);
    check("http-100 (default) system calls per event <= 2.2", median_of(samples, "http-100", &Sample::syscalls), 2.2,
          false);
    if (latency) check("latency p99 ms < 2 at 1,000 events/s (default)", latency->p99_ms, 2, false);
}

std::size_t number_argument(const std::string& name, const char* text) {
    std::size_t value = 0;
    const std::string_view view(text);
    const auto [end, error] = std::from_chars(view.data(), view.data() + view.size(), value);
    if (error != std::errc() || end != view.data() + view.size())
        throw std::invalid_argument(name + " needs a number, got \"" + std::string(view) + "\"");
    return value;
}

Settings parse_arguments(int argc, char** argv) {
    Settings s;
    for (int i = 1; i < argc; ++i) {
        const std::string name = argv[i];
        if (i + 1 >= argc)
            throw std::invalid_argument(
                "usage: relay_bench [--events N] [--rounds R] [--seconds S] [--concurrency C] [--latency-seconds L] "
                "[--latency-rate E] [--backlog B] [--only a,b] [--attach 'perf record -g -p {pid}'] [--daemon PATH] "
                "[--syscalls 0|1]");
        const char* value = argv[++i];
        auto number = [&] { return static_cast<unsigned>(number_argument(name, value)); };
        if (name == "--events") s.events = number_argument(name, value);
        else if (name == "--rounds") s.rounds = number();
        else if (name == "--seconds") s.seconds = number();
        else if (name == "--concurrency") s.concurrency = number();
        else if (name == "--latency-seconds") s.latency_seconds = number();
        else if (name == "--latency-rate") s.latency_rate = number();
        else if (name == "--backlog") s.backlog = number_argument(name, value);
        else if (name == "--only") s.only = value;
        else if (name == "--attach") s.attach = value;
        else if (name == "--daemon") s.daemon = value;
        else if (name == "--syscalls") s.count_syscalls = number() != 0;
        else throw std::invalid_argument("unknown option " + name);
    }
    if (s.events == 0 || s.rounds == 0 || s.seconds == 0 || s.concurrency == 0 || s.latency_rate == 0)
        throw std::invalid_argument("--events, --rounds, --seconds, --concurrency and --latency-rate must be positive");
    return s;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const Settings settings = parse_arguments(argc, argv);
        const auto samples = run_rounds(settings);
        print_table(settings, samples);
        print_syscalls(samples);
        const auto latency = run_latency_scenarios(settings);
        if (selected(settings, "backlog")) run_backlog(settings.daemon, settings.backlog);
        print_goals(samples, latency);
        return 0;
    } catch (const std::exception& error) {
        std::cerr << "relay_bench: " << error.what() << "\n";
        return 1;
    }
}
