// Several destinations (fan-out) with the real daemon and three in-process receivers: every
// destination gets every event it wants in per-call order, one that is down costs the others
// nothing, types filter per destination, dead letters name their destination and go back only
// there, reload adds and removes destinations, and the spool keeps each destination's backlog.

#include "support/daemon_fixture.hpp"
#include "support/prometheus_text.hpp"

#include <avr_webhookd/tools/healthcheck.hpp>

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <map>

using namespace avr_webhookd;
using namespace avr_webhookd::test;

namespace {

// "127.0.0.1:PORT" of a receiver, to start a healthy one in its place.
std::string address_of(ReceiverThread& receiver) { return "127.0.0.1:" + std::to_string(receiver.receiver().port()); }

// Per call uuid: the event ids a receiver answered with 2xx, in arrival order.
std::map<std::string, std::vector<std::string>> delivered_ids(const std::vector<ReceivedRequest>& requests) {
    std::map<std::string, std::vector<std::string>> by_call;
    for (const auto& request : requests) {
        if (request.status_sent < 200 || request.status_sent > 299) continue;
        const auto body = boost::json::parse(request.body).as_object();
        by_call[std::string(body.at("uuid").as_string())].push_back(header(request, "x-avr-webhook-id"));
    }
    return by_call;
}

std::vector<std::string> sequences(const std::vector<ReceivedRequest>& requests) {
    std::vector<std::string> numbers;
    for (const auto& request : requests) numbers.push_back(header(request, "x-avr-webhook-sequence"));
    return numbers;
}

std::string id_for(unsigned call, unsigned index) { return "e" + std::to_string(call) + "-" + std::to_string(index); }

// `calls` calls of `per_call` transcriptions each, interleaved, with ids e<call>-<index>.
std::string interleaved_events(unsigned calls, unsigned per_call) {
    std::string input;
    for (unsigned index = 1; index <= per_call; ++index)
        for (unsigned call = 0; call < calls; ++call)
            input += event_line(call_uuid(call), "transcription", "t", id_for(call, index)) + "\n";
    return input;
}

void check_complete_and_ordered(const std::vector<ReceivedRequest>& requests, unsigned calls, unsigned per_call) {
    const auto by_call = delivered_ids(requests);
    REQUIRE(by_call.size() == calls);
    for (unsigned call = 0; call < calls; ++call) {
        std::vector<std::string> expected;
        for (unsigned index = 1; index <= per_call; ++index) expected.push_back(id_for(call, index));
        CHECK(by_call.at(call_uuid(call)) == expected);
    }
}

// spool-status's "events waiting" figure.
std::string events_waiting(const TempDir& dir, const std::filesystem::path& spool) {
    const auto result = run_command({daemon_binary(), "spool-status", "--spool-dir", spool.string()}, dir.path(), 20s);
    const std::string label = "events waiting: ";
    const auto at = result.out.find(label);
    if (at == std::string::npos) return {};
    return result.out.substr(at + label.size(), result.out.find('\n', at) - at - label.size());
}

double percentile(std::vector<double> values, double fraction) {
    std::sort(values.begin(), values.end());
    return values.at(static_cast<std::size_t>(fraction * static_cast<double>(values.size() - 1)));
}

}  // namespace

TEST_CASE("destinations: three receivers each get every event, in order per call", "[integration][destinations]") {
    TempDir dir;
    ReceiverThread a, b, c;
    DaemonProcess daemon(dir, {"--url", a.url(), "--destination-b-url", b.url()},
                         {"WEBHOOK_DESTINATION_C_URL=" + c.url()});
    REQUIRE(daemon.wait_ready());
    CHECK(exchange(daemon.socket(), interleaved_events(10, 20)).empty());
    for (auto* receiver : {&a, &b, &c}) {
        REQUIRE(receiver->wait_for_requests(200));
        check_complete_and_ordered(receiver->requests(), 10, 20);
    }
    CHECK_THAT(daemon.log(), Catch::Contains("and to destination b (") && Catch::Contains("and to destination c ("));
    REQUIRE(daemon.stop());
}

TEST_CASE("destinations: one answering 503 builds its own backlog while the others stay current",
          "[integration][destinations]") {
    TempDir dir;
    ReceiverThread a, c;
    auto b = std::make_unique<ReceiverThread>(always_failing());
    const auto b_address = address_of(*b);
    DaemonProcess daemon(dir, {"--url", a.url(), "--destination-c-url", c.url(), "--destination-b-url", b->url(),
                               "--destination-b-retry", "-1", "--destination-b-retry-base", "10ms",
                               "--destination-b-retry-max-delay", "50ms"});
    REQUIRE(daemon.wait_ready());

    // One event at a time over 10 calls; the time from the write to its arrival at a and at c.
    constexpr unsigned events = 100;
    std::vector<double> latency_ms;
    for (unsigned index = 0; index < events; ++index) {
        const auto line = event_line(call_uuid(index % 10), "transcription", "t", id_for(index % 10, index / 10 + 1));
        const auto written = std::chrono::steady_clock::now();
        REQUIRE(exchange(daemon.socket(), line + "\n").empty());
        REQUIRE(a.wait_for_requests(index + 1));
        REQUIRE(c.wait_for_requests(index + 1));
        for (auto* receiver : {&a, &c}) {
            const auto arrived = receiver->requests().at(index).at;
            latency_ms.push_back(std::chrono::duration<double, std::milli>(arrived - written).count());
        }
    }
    // b was being retried all along: its heads came back every 10-50 ms, each answered 503.
    CHECK(b->requests().size() >= 20);
    CHECK(delivered_ids(b->requests()).empty());
    // Loopback delivery takes about a millisecond; the bounds leave room for a loaded machine but
    // not for waiting behind b's retries (they come every 10-50 ms for 10 calls).
    INFO("median " << percentile(latency_ms, 0.5) << " ms, p99 " << percentile(latency_ms, 0.99) << " ms");
    CHECK(percentile(latency_ms, 0.5) < 20);
    CHECK(percentile(latency_ms, 0.99) < 250);
    check_complete_and_ordered(a.requests(), 10, 10);
    check_complete_and_ordered(c.requests(), 10, 10);

    // b comes back: its backlog arrives, each call in order, nothing lost or doubled.
    b.reset();
    ReceiverThread healthy_b({}, b_address);
    REQUIRE(healthy_b.wait_for_requests(events));
    check_complete_and_ordered(healthy_b.requests(), 10, 10);
    REQUIRE(daemon.stop());
}

TEST_CASE("destinations: types filter per destination, and each numbers its own events",
          "[integration][destinations]") {
    TempDir dir;
    ReceiverThread a, crm;
    DaemonProcess daemon(dir, {"--url", a.url(), "--destination-crm-url", crm.url(), "--destination-crm-types",
                               "call_started,call_ended"});
    REQUIRE(daemon.wait_ready());
    const auto call = call_uuid(7);
    std::string input = event_line(call, "call_started", {}, "s") + "\n";
    for (int i = 0; i < 3; ++i) input += event_line(call, "transcription", "t", "t" + std::to_string(i)) + "\n";
    input += event_line(call, "call_ended", {}, "x") + "\n";
    CHECK(exchange(daemon.socket(), input).empty());
    REQUIRE(a.wait_for_requests(5));
    REQUIRE(crm.wait_for_requests(2));
    CHECK(delivered_ids(crm.requests()).at(call) == std::vector<std::string>{"s", "x"});
    CHECK(sequences(crm.requests()) == std::vector<std::string>{"1", "2"});
    CHECK(sequences(a.requests()) == std::vector<std::string>{"1", "2", "3", "4", "5"});
    REQUIRE(daemon.stop());
}

TEST_CASE("destinations: dead letters name their destination and a replay reaches only it",
          "[integration][destinations]") {
    TempDir dir;
    ReceiverThread a;
    auto b = std::make_unique<ReceiverThread>(always_failing());
    const auto b_address = address_of(*b);
    const auto admin = dir.path() / "admin.sock";
    DaemonProcess daemon(dir, {"--url", a.url(), "--destination-b-url", b->url(), "--destination-b-retry", "0",
                               "--admin", admin.string()});
    REQUIRE(daemon.wait_ready());
    const auto call = call_uuid(1);
    std::string input;
    for (int i = 1; i <= 3; ++i) input += event_line(call, "transcription", "t", "d" + std::to_string(i)) + "\n";
    CHECK(exchange(daemon.socket(), input).empty());
    REQUIRE(a.wait_for_requests(3));
    REQUIRE(wait_until([&] { return read_lines(daemon.dead_letter()).size() == 3; }, 10s));
    const auto lines = read_lines(daemon.dead_letter());
    for (std::size_t i = 0; i < lines.size(); ++i) {
        const auto line = boost::json::parse(lines[i]).as_object();
        CHECK(line.at("destination") == "b");
        CHECK(line.at("id").as_string() == ("d" + std::to_string(i + 1)).c_str());
    }
    // Health names the destination that failed; metrics count per destination.
    const auto health = admin_get(admin.string(), "/healthz");
    CHECK(health.status == 503);
    CHECK_THAT(health.body, Catch::StartsWith("destination b: the last event was given up"));
    std::map<std::string, MetricFamily> metrics;
    const auto counter = [&](const std::string& name, const std::string& destination) {
        return find_value(metrics.at("avr_webhookd_" + name), {{"destination", destination}}).value_or(-1);
    };
    REQUIRE(wait_until(
        [&] {  // a dead letter counts once its line is synced, which the loop learns just after the file has it
            metrics = parse_exposition(admin_get(admin.string(), "/metrics").body);
            // and a delivery counts once the daemon has read the 2xx, just after the receiver sent it
            return counter("events_dead_lettered_total", "b") == 3 && counter("events_delivered_total", "default") == 3;
        },
        10s));
    CHECK(counter("events_delivered_total", "default") == 3);
    CHECK(counter("events_delivered_total", "b") == 0);
    CHECK(counter("events_dead_lettered_total", "b") == 3);
    CHECK(counter("events_dead_lettered_total", "default") == 0);
    CHECK_THAT(daemon.log(), Catch::Contains("delivery: destination b gave up transcription event d1"));

    b.reset();
    ReceiverThread healthy_b({}, b_address);
    std::string replay;
    for (const auto& line : lines) replay += line + "\n";
    CHECK(exchange(daemon.socket(), replay).size() == 3);  // an "ok" per dead-letter line, whatever `ack` is
    REQUIRE(healthy_b.wait_for_requests(3));
    CHECK(delivered_ids(healthy_b.requests()).at(call) == std::vector<std::string>{"d1", "d2", "d3"});
    // A marker of the same call reaches a next: had the replay gone to a too, it would be ahead.
    CHECK(exchange(daemon.socket(), event_line(call, "transcription", "t", "marker") + "\n").empty());
    REQUIRE(a.wait_for_requests(4));
    CHECK(delivered_ids(a.requests()).at(call) == std::vector<std::string>{"d1", "d2", "d3", "marker"});
    // A line for a destination that does not exist is refused, not dropped.
    const auto refused = exchange(daemon.socket(), R"({"uuid":")" + call +
                                                       R"(","type":"call_ended","destination":"nosuch"})"
                                                       "\n");
    REQUIRE(refused.size() == 1);
    CHECK_THAT(refused[0], Catch::Contains("no destination named \\\"nosuch\\\"") && Catch::Contains("\"ok\":false"));
    REQUIRE(daemon.stop());
}

TEST_CASE("destinations: reload adds one and removes one, whose events are dead-lettered",
          "[integration][destinations]") {
    TempDir dir;
    ReceiverThread a, b;
    ReceiverThread down(always_failing());
    const auto config = dir.path() / "avr-webhookd.conf";
    const std::string base = "url = " + a.url() + "\n";
    write_config(config, base);
    const auto admin = dir.path() / "admin.sock";
    auto daemon = DaemonProcess::with_config_file(dir, config, {"--admin", admin.string()});
    REQUIRE(daemon.wait_ready());
    const auto call = call_uuid(3);
    auto send = [&](const std::string& id) {
        CHECK(exchange(daemon.socket(), event_line(call, "transcription", "t", id) + "\n").empty());
    };
    send("r1");
    REQUIRE(a.wait_for_requests(1));

    write_config(config, base + "[destination b]\nurl = " + b.url() + "\n[destination c]\nurl = " + down.url() +
                             "\nretry = -1\nretry_base = 10ms\nretry_max_delay = 50ms\n");
    REQUIRE(reload(daemon, "reload: configuration applied", 1));
    CHECK_THAT(daemon.log(), Catch::Contains("reload: destination b added"));
    send("r2");
    REQUIRE(a.wait_for_requests(2));
    REQUIRE(b.wait_for_requests(1));
    CHECK(delivered_ids(b.requests()).at(call) == std::vector<std::string>{"r2"});  // only what came after
    REQUIRE(down.wait_for_requests(2));                                             // c is failing and retrying r2

    write_config(config, base + "[destination b]\nurl = " + b.url() + "\n");
    REQUIRE(reload(daemon, "reload: configuration applied", 2));
    REQUIRE(wait_until([&] { return read_lines(daemon.dead_letter()).size() == 1; }, 10s));
    const auto line = boost::json::parse(read_lines(daemon.dead_letter()).at(0)).as_object();
    CHECK(line.at("destination") == "c");
    CHECK(line.at("id") == "r2");
    CHECK(line.at("failure").at("reason") == "destination_removed");
    send("r3");
    REQUIRE(b.wait_for_requests(2));
    // The removed destination's gauges go to zero rather than freezing at what it held.
    REQUIRE(wait_until(
        [&] {
            const auto metrics = parse_exposition(admin_get(admin.string(), "/metrics").body);
            return find_value(metrics.at("avr_webhookd_events_queued"), {{"destination", "c"}}) == 0.0 &&
                   find_value(metrics.at("avr_webhookd_queued_bytes"), {{"destination", "c"}}) == 0.0;
        },
        10s));

    // A reload whose new settings cannot all start is refused whole: nothing of it applies.
    ReceiverThread elsewhere;
    const auto not_pem = dir.path() / "not-a-ca.pem";
    std::ofstream(not_pem) << "this is not a PEM bundle\n";
    // (The default destination is reconfigured before b, whose new ca_file cannot be loaded.)
    write_config(config, "url = " + elsewhere.url() + "\n[destination b]\nurl = https://127.0.0.1:1/x\nca_file = " +
                             not_pem.string() + "\n[destination d]\nurl = " + b.url() + "\n");
    REQUIRE(reload(daemon, "reload refused", 1));
    send("r4");
    REQUIRE(a.wait_for_requests(4));
    REQUIRE(b.wait_for_requests(3));
    CHECK(elsewhere.requests().empty());
    CHECK(delivered_ids(b.requests()).at(call) == std::vector<std::string>{"r2", "r3", "r4"});  // b unchanged, no d
    CHECK_THAT(daemon.log(), !Catch::Contains("destination d added"));
    REQUIRE(daemon.stop());
}

TEST_CASE("destinations: each destination's backlog survives SIGKILL in the spool", "[integration][destinations]") {
    TempDir dir;
    ReceiverThread a;
    auto b = std::make_unique<ReceiverThread>(always_failing());
    const auto b_address = address_of(*b);
    const auto b_url = b->url();
    const std::vector<std::string> flags{"--url",
                                         a.url(),
                                         "--destination-b-url",
                                         b_url,
                                         "--destination-b-retry",
                                         "-1",
                                         "--destination-b-retry-base",
                                         "10ms",
                                         "--destination-b-retry-max-delay",
                                         "50ms"};
    const auto call = call_uuid(5);
    std::string input;
    for (int i = 1; i <= 3; ++i) input += event_line(call, "transcription", "t", "k" + std::to_string(i)) + "\n";
    {
        DaemonProcess daemon(dir, flags);
        REQUIRE(daemon.wait_ready());
        CHECK(exchange(daemon.socket(), input).empty());
        REQUIRE(a.wait_for_requests(3));
        REQUIRE(b->wait_for_requests(3));  // attempted and failing
        // a's copies are done in the spool (its done records written); b's three are waiting.
        REQUIRE(wait_until([&] { return events_waiting(dir, daemon.spool()) == "3"; }, 10s));
        daemon.process().kill();
    }
    b.reset();
    ReceiverThread healthy_b({}, b_address);
    DaemonProcess daemon(dir, flags);
    REQUIRE(daemon.wait_ready());
    REQUIRE(healthy_b.wait_for_requests(3));
    CHECK(delivered_ids(healthy_b.requests()).at(call) == std::vector<std::string>{"k1", "k2", "k3"});
    CHECK(sequences(healthy_b.requests()) == std::vector<std::string>{"1", "2", "3"});
    // a had delivered its copies before the kill: they are not sent again.
    CHECK(exchange(daemon.socket(), event_line(call, "transcription", "t", "after") + "\n").empty());
    REQUIRE(a.wait_for_requests(4));
    CHECK(delivered_ids(a.requests()).at(call) == std::vector<std::string>{"k1", "k2", "k3", "after"});
    CHECK(header(a.requests().back(), "x-avr-webhook-sequence") == "4");
    REQUIRE(daemon.stop());
}

TEST_CASE("destinations: a spooled backlog of a destination no longer configured is dead-lettered at start",
          "[integration][destinations]") {
    TempDir dir;
    ReceiverThread a;
    ReceiverThread down(always_failing());
    const auto call = call_uuid(6);
    {
        DaemonProcess daemon(dir,
                             {"--url", a.url(), "--destination-gone-url", down.url(), "--destination-gone-retry", "-1",
                              "--destination-gone-retry-base", "1h", "--destination-gone-retry-max-delay", "1h"});
        REQUIRE(daemon.wait_ready());
        CHECK(exchange(daemon.socket(), event_line(call, "transcription", "t", "orphan") + "\n").empty());
        REQUIRE(a.wait_for_requests(1));
        REQUIRE(down.wait_for_requests(1));
        REQUIRE(wait_until([&] { return events_waiting(dir, daemon.spool()) == "1"; }, 10s));  // a's copy is done
        daemon.process().kill();
    }
    DaemonProcess daemon(dir, {"--url", a.url()});
    REQUIRE(daemon.wait_ready());
    REQUIRE(wait_until([&] { return read_lines(daemon.dead_letter()).size() == 1; }, 10s));
    const auto line = boost::json::parse(read_lines(daemon.dead_letter()).at(0)).as_object();
    CHECK(line.at("destination") == "gone");
    CHECK(line.at("id") == "orphan");
    CHECK(line.at("failure").at("reason") == "destination_removed");
    CHECK(a.requests().size() == 1);
    REQUIRE(daemon.stop());
}

TEST_CASE("destinations: the routing answer comes from respond_destination", "[integration][destinations]") {
    TempDir dir;
    ReceiverThread a;
    ReceiverOptions answering;
    answering.sts_url = "ws://sts.example/stream";
    ReceiverThread router(answering);
    DaemonProcess daemon(
        dir, {"--url", a.url(), "--destination-router-url", router.url(), "--respond-destination", "router"});
    REQUIRE(daemon.wait_ready());
    const auto call = call_uuid(9);
    const auto replies = exchange(daemon.socket(), event_line(call, "call_initiated", {}, "ci") + "\n");
    REQUIRE(replies.size() == 1);
    CHECK_THAT(replies[0], Catch::Contains("ws://sts.example/stream?uuid=" + call));
    REQUIRE(a.wait_for_requests(1));  // the default destination got it as a notification
    CHECK(header(a.requests().at(0), "x-avr-webhook-id") == "ci");
    REQUIRE(daemon.stop());
}
