// Exactly once into a replicated stream, end to end: a 3-node JetStream cluster with a stream of 3
// replicas loses a node (the stream's leader) while 20,000 events over 200 calls flow, and gets
// it back; and the daemon itself is SIGKILLed mid-stream and restarted. Afterwards the stream
// holds every acknowledged event exactly once, in each call's order.

#include "support/daemon_fixture.hpp"
#include "support/nats_server.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <map>
#include <set>
#include <thread>

using namespace avr_webhookd;
using namespace avr_webhookd::test;

namespace {

// Smaller under the sanitizers, whose daemon is several times slower.
#if defined(__SANITIZE_ADDRESS__)
constexpr unsigned cluster_calls = 40;
#else
constexpr unsigned cluster_calls = 200;
#endif
constexpr unsigned cluster_per_call = 100;

std::string id_of(unsigned call, unsigned index) { return "e" + std::to_string(call) + "-" + std::to_string(index); }

// `calls` calls of `per_call` transcriptions each, interleaved.
std::string interleaved_events(unsigned calls, unsigned per_call) {
    std::string input;
    for (unsigned index = 0; index < per_call; ++index)
        for (unsigned call = 0; call < calls; ++call)
            input += event_line(call_uuid(call), "transcription", "t", id_of(call, index)) + "\n";
    return input;
}

boost::json::object replicated_stream(int replicas) {
    return boost::json::object{{"subjects", boost::json::array{"avr.events.>"}},
                               {"storage", "file"},
                               {"num_replicas", replicas},
                               {"duplicate_window", 120'000'000'000LL}};  // 2 minutes, in nanoseconds
}

std::uint64_t stored_count(JetStreamClient& client) {
    return client.stream_state("AVR").at("messages").to_number<std::uint64_t>();
}

// Every event exactly once and each call's events in order of their sequence in the stream.
void check_exactly_once_in_order(const std::vector<StoredMessage>& messages, unsigned calls, unsigned per_call) {
    std::set<std::string> ids;
    std::map<std::string, std::vector<std::string>> by_call;
    for (const auto& message : messages) {
        const auto& id = message.headers.at("Nats-Msg-Id");
        CHECK(ids.insert(id).second);  // never stored twice
        const auto body = boost::json::parse(message.data).as_object();
        by_call[std::string(body.at("uuid").as_string())].push_back(id);
    }
    CHECK(messages.size() == std::size_t{calls} * per_call);
    REQUIRE(by_call.size() == calls);
    for (unsigned call = 0; call < calls; ++call) {
        std::vector<std::string> expected;
        for (unsigned index = 0; index < per_call; ++index) expected.push_back(id_of(call, index));
        const auto& got = by_call.at(call_uuid(call));
        CHECK(got == expected);
    }
}

// Ends the producer's exchange (by killing the daemon) if the test stops before it is done.
struct ProducerGuard {
    std::thread& producer;
    DaemonProcess& daemon;
    ~ProducerGuard() {
        if (!producer.joinable()) return;
        daemon.process().kill();
        producer.join();
    }
};

// The node that leads the stream now ("n2"), from STREAM.INFO.
std::string stream_leader(JetStreamClient& client) {
    const auto info = client.api("$JS.API.STREAM.INFO.AVR", "");
    if (!info.is_object() || !info.as_object().contains("cluster")) return {};
    const auto* leader = info.at("cluster").as_object().if_contains("leader");
    return leader && leader->is_string() ? std::string(leader->as_string()) : std::string();
}

}  // namespace

TEST_CASE("nats cluster: a node killed and restarted mid-stream loses nothing and stores nothing twice",
          "[integration][nats][cluster]") {
    TempDir dir;
    NatsCluster cluster(dir);
    JetStreamClient client(cluster.urls());
    client.create_stream("AVR", replicated_stream(3));
    // Retries outlast a leader election (~6 s) with room to spare: nothing is dead-lettered.
    DaemonProcess daemon(dir, {"--url", cluster.urls(), "--retry", "-1", "--retry-base", "100ms", "--retry-max-delay",
                               "1s", "--timeout", "2s", "--max-age", "10m", "--concurrency", "128"});
    REQUIRE(daemon.wait_ready());

    const auto total = std::uint64_t{cluster_calls} * cluster_per_call;
    std::vector<std::string> replies;
    std::thread producer(
        [&] { replies = exchange(daemon.socket(), interleaved_events(cluster_calls, cluster_per_call), 300s); });
    const ProducerGuard guard{producer, daemon};
    const auto tail = [&] {
        const auto log = daemon.log();
        return log.substr(log.size() > 4000 ? log.size() - 4000 : 0);
    };

    // A tenth in, the stream's leader dies; it comes back a little later with its store.
    REQUIRE(wait_until([&] { return stored_count(client) >= total / 10; }, 120s, 5ms));
    const auto leader = stream_leader(client);
    std::size_t victim = 0;
    for (std::size_t i = 0; i < cluster.size(); ++i)
        if (cluster.node(i).name() == leader) victim = i;
    const auto killed_at = stored_count(client);
    cluster.node(victim).kill();
    INFO("killed node " << cluster.node(victim).name() << " (stream leader " << leader << ") with " << killed_at
                        << " events stored");
    CHECK(killed_at < total / 2);  // mid-stream: most events are still to come
    // The stream's state is read from the new leader once there is one; then the old one returns.
    const auto progress = std::min(total, killed_at + total / 10);
    const bool resumed = wait_until([&] { return stored_count(client) >= progress; }, 60s, 50ms);
    INFO("now " << stored_count(client) << " stored; the daemon's log ends:\n" << tail());
    REQUIRE(resumed);
    cluster.node(victim).start();

    producer.join();
    CHECK(replies.empty());  // every line acknowledged (ack = errors: no reply is a success)
    REQUIRE(wait_until([&] { return stored_count(client) >= total; }, 180s, 50ms));
    check_exactly_once_in_order(client.messages("AVR", 120s), cluster_calls, cluster_per_call);
    CHECK(read_lines(daemon.dead_letter()).empty());
    CHECK_THAT(daemon.log(), Catch::Contains("retrying in"));  // the failover was felt, and retried
    REQUIRE(daemon.stop());
}

TEST_CASE("nats: the daemon SIGKILLed mid-stream and restarted: nothing lost, nothing stored twice",
          "[integration][nats][crash]") {
    TempDir dir;
    NatsServer server(dir);
    server.start();
    JetStreamClient client(server.url());
    client.create_stream("AVR", replicated_stream(1));
    constexpr unsigned calls = 20, per_call = 100;
    const auto input = interleaved_events(calls, per_call);
    const std::vector<std::string> arguments{"--url", server.url(),   "--ack", "all",         "--retry",
                                             "-1",    "--retry-base", "50ms",  "--spool-dir", (dir / "spool").string()};
    // Each {"ok":true,...,"id":...} is a promise: that event is in the spool.
    std::set<std::string> acknowledged;
    std::size_t lines_acknowledged = 0;
    {
        DaemonProcess daemon(dir, arguments);
        REQUIRE(daemon.wait_ready());
        std::vector<std::string> replies;
        std::thread producer([&] { replies = exchange(daemon.socket(), input, 60s); });
        const ProducerGuard guard{producer, daemon};
        REQUIRE(wait_until([&] { return stored_count(client) >= calls * per_call / 3; }, 60s, 2ms));
        daemon.process().kill();  // publishes in flight, PubAcks unread, spool records not yet marked done
        producer.join();
        for (const auto& reply : replies) {
            const auto object = boost::json::parse(reply).as_object();
            REQUIRE(object.at("ok").as_bool());
            acknowledged.insert(std::string(object.at("id").as_string()));
        }
        lines_acknowledged = replies.size();
    }
    const auto before_restart = stored_count(client);
    INFO("stored before the kill: " << before_restart << ", acknowledged: " << acknowledged.size());
    CHECK(before_restart < std::uint64_t{calls} * per_call);  // the kill was mid-stream

    DaemonProcess daemon(dir, arguments, {}, "restarted");
    REQUIRE(daemon.wait_ready());
    INFO(daemon.log());
    // Every acknowledged event reaches the stream, from the spool, without the producer's help.
    REQUIRE(wait_until(
        [&] {
            std::size_t found = 0;
            for (const auto& message : client.messages("AVR"))
                found += acknowledged.contains(message.headers.at("Nats-Msg-Id"));
            return found == acknowledged.size();
        },
        60s, 200ms));
    INFO("stored after the restart: " << stored_count(client));
    // The producer sends again what was not acknowledged (its connection broke): the same ids.
    std::string rest;
    std::size_t line = 0;
    for (std::size_t begin = 0; begin < input.size(); ++line) {
        const auto end = input.find('\n', begin) + 1;
        if (line >= lines_acknowledged) rest += input.substr(begin, end - begin);
        begin = end;
    }
    for (const auto& reply : exchange(daemon.socket(), rest, 60s)) CHECK_THAT(reply, Catch::StartsWith("{\"ok\":true"));
    REQUIRE(wait_until([&] { return stored_count(client) >= std::uint64_t{calls} * per_call; }, 60s, 50ms));
    check_exactly_once_in_order(client.messages("AVR"), calls, per_call);
    CHECK(read_lines(daemon.dead_letter()).empty());
    REQUIRE(daemon.stop());
}
