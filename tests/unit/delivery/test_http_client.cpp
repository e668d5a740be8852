// HttpClient against the in-process test receiver on loopback: the shared name lookup and the
// count of open connections, whatever phase an attempt ends in.

#include <avr_webhookd/common/url.hpp>
#include <avr_webhookd/delivery/connection_count.hpp>
#include <avr_webhookd/delivery/http_client.hpp>
#include <avr_webhookd/tools/receiver.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <vector>

using namespace avr_webhookd;
namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

ReceiverOptions quiet_receiver() {
    ReceiverOptions options;
    options.listen = "127.0.0.1:0";
    options.quiet = true;
    return options;
}

HttpClientOptions client_options(const std::string& url) {
    HttpClientOptions options;
    const auto parsed = parse_url(url);
    REQUIRE(parsed);
    options.url = *parsed;
    options.timeout = 20s;  // generous: on a loaded machine a short one would blur the counts
    return options;
}

// Attempts run on `io`; their outcomes are collected in order of completion.
struct Attempts {
    Attempts(asio::io_context& io, HttpClient& client) : io(io), client(client) {}

    asio::io_context& io;
    HttpClient& client;
    std::vector<AttemptOutcome> outcomes;
    const std::string body = "{}";  // post() holds references to both until its attempt ends
    const HeaderList headers;

    void start() {
        asio::co_spawn(io, client.post(body, headers), [this](std::exception_ptr error, AttemptOutcome outcome) {
            if (error) std::rethrow_exception(error);
            outcomes.push_back(std::move(outcome));
        });
    }
    // Runs the loop until `count` attempts have ended.
    void wait_for(std::size_t count) {
        const auto give_up = std::chrono::steady_clock::now() + 30s;
        while (outcomes.size() < count && std::chrono::steady_clock::now() < give_up) io.run_one_for(100ms);
        REQUIRE(outcomes.size() == count);
    }
    AttemptOutcome run_one() {
        start();
        wait_for(outcomes.size() + 1);
        return outcomes.back();
    }
};

bool delivered(const AttemptOutcome& outcome) { return outcome.kind == FailureKind::none && outcome.status / 100 == 2; }

// A loopback port nothing listens on (bound, then closed again).
unsigned short closed_port(asio::io_context& io) {
    asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
    return acceptor.local_endpoint().port();
}

}  // namespace

TEST_CASE("a connection count follows the lifetime of its owners", "[http_client]") {
    auto counter = std::make_shared<std::size_t>(0);
    {
        ConnectionCount first(counter);
        auto second = std::make_unique<ConnectionCount>(counter);
        CHECK(*counter == 2);
        second.reset();
        CHECK(*counter == 1);
    }
    CHECK(*counter == 0);
    std::weak_ptr<std::size_t> watched = counter;
    auto outliving = std::make_unique<ConnectionCount>(std::move(counter));  // its client is gone
    outliving.reset();
    CHECK(watched.expired());
}

// "localhost" comes from /etc/hosts: no DNS server is asked.
TEST_CASE("attempts that need the name at the same time share one lookup", "[http_client]") {
    asio::io_context io;
    Receiver receiver(io, quiet_receiver());
    receiver.start();
    Logger logger({LogLevel::error, LogFormat::text, false});
    HttpClient client(io.get_executor(),
                      client_options("http://localhost:" + std::to_string(receiver.port()) + "/hook"), logger);
    Attempts attempts{io, client};
    attempts.start();
    attempts.start();
    attempts.wait_for(2);
    for (const auto& outcome : attempts.outcomes) CHECK(delivered(outcome));
    CHECK(client.lookups_started() == 1);
    CHECK(client.connections_opened() == 2);

    CHECK(delivered(attempts.run_one()));  // over a kept connection: no lookup, no connect
    CHECK(client.lookups_started() == 1);
    CHECK(client.connections_opened() == 2);

    client.close_idle();
    CHECK(delivered(attempts.run_one()));  // a new connection to the address already known
    CHECK(client.lookups_started() == 1);
    CHECK(client.connections_opened() == 3);
    client.close_idle();
    receiver.stop();
    io.run_for(5s);
}

namespace {

// A DNS that answers only when the test lets it: every lookup waits on `answer`, then gives
// 127.0.0.1 and `port` (the resolver seam of HttpClient).
struct SlowDns {
    SlowDns(asio::io_context& io, unsigned short port_)
        : answer(io, asio::steady_timer::time_point::max()), port(port_) {}
    asio::steady_timer answer;
    unsigned short port;
    int lookups = 0;
    std::vector<std::string> hosts;

    HttpClient::Resolver resolver() {
        return [this](std::string host, std::string service) -> asio::awaitable<HttpClient::ResolveResult> {
            ++lookups;
            hosts.push_back(host);
            co_await answer.async_wait(asio::as_tuple(asio::use_awaitable));
            const asio::ip::tcp::endpoint address(asio::ip::make_address("127.0.0.1"), port);
            co_return HttpClient::ResolveResult{{},
                                                asio::ip::tcp::resolver::results_type::create(address, host, service)};
        };
    }
};

}  // namespace

TEST_CASE("attempts waiting on a slow name lookup share that one lookup", "[http_client]") {
    asio::io_context io;
    Receiver receiver(io, quiet_receiver());
    receiver.start();
    Logger logger({LogLevel::error, LogFormat::text, false});
    HttpClient client(io.get_executor(), client_options("http://slow-dns.test:8080/hook"), logger);
    SlowDns dns(io, receiver.port());
    client.set_resolver(dns.resolver());
    Attempts attempts{io, client};
    constexpr std::size_t waiting = 8;
    for (std::size_t i = 0; i < waiting; ++i) attempts.start();
    io.poll();  // every attempt runs until it waits for the name
    CHECK(attempts.outcomes.empty());
    CHECK(client.lookups_started() == 1);
    CHECK(dns.lookups == 1);
    dns.answer.cancel();  // the DNS answers: all of them go on with its addresses
    attempts.wait_for(waiting);
    for (const auto& outcome : attempts.outcomes) CHECK(delivered(outcome));
    CHECK(client.lookups_started() == 1);
    CHECK(dns.lookups == 1);
    CHECK(dns.hosts == std::vector<std::string>{"slow-dns.test"});
    client.close_idle();
    receiver.stop();
    io.run_for(5s);
}

TEST_CASE("attempts time out on a lookup that hangs, without starting more of them", "[http_client]") {
    asio::io_context io;
    Receiver receiver(io, quiet_receiver());
    receiver.start();
    Logger logger({LogLevel::error, LogFormat::text, false});
    auto options = client_options("http://hung-dns.test:8080/hook");
    options.timeout = 300ms;
    HttpClient client(io.get_executor(), options, logger);
    SlowDns dns(io, receiver.port());
    client.set_resolver(dns.resolver());
    Attempts attempts{io, client};
    attempts.start();
    attempts.start();
    attempts.wait_for(2);
    for (const auto& outcome : attempts.outcomes) {
        CHECK(outcome.kind == FailureKind::timeout);
        CHECK_THAT(outcome.message, Catch::Contains("(resolve)"));
    }
    const auto late = attempts.run_one();  // the lookup still runs: this one waits for it too
    CHECK(late.kind == FailureKind::timeout);
    CHECK(client.lookups_started() == 1);
    CHECK(dns.lookups == 1);
    dns.answer.cancel();  // the hung lookup ends before the loop does
    client.close_idle();
    receiver.stop();
    io.run_for(5s);
}

TEST_CASE("open connections are counted exactly in whatever phase an attempt ends", "[http_client]") {
    asio::io_context io;
    ReceiverOptions receiver_options = quiet_receiver();
    receiver_options.drop_first = 1;
    Receiver receiver(io, receiver_options);
    receiver.start();
    const std::string address = "127.0.0.1:" + std::to_string(receiver.port());
    Logger logger({LogLevel::error, LogFormat::text, false});
    HttpClient client(io.get_executor(), client_options("http://" + address + "/hook"), logger);
    Attempts attempts{io, client};

    const AttemptOutcome dropped = attempts.run_one();  // closed without an answer
    CHECK(dropped.kind == FailureKind::reset);
    CHECK(client.open_connections() == 0);
    CHECK(delivered(attempts.run_one()));
    CHECK(client.open_connections() == 1);  // kept for the next attempt
    client.close_idle();
    CHECK(client.open_connections() == 0);

    client.update(client_options("http://127.0.0.1:" + std::to_string(closed_port(io)) + "/hook"));
    const std::size_t opened = client.connections_opened();
    const AttemptOutcome refused = attempts.run_one();
    CHECK(refused.kind == FailureKind::connect_refused);
    CHECK(refused.code == "ECONNREFUSED");
    CHECK(client.connections_opened() == opened);
    CHECK(client.open_connections() == 0);

    // TLS to a plain HTTP server: connected, then the handshake fails.
    client.update(client_options("https://" + address + "/hook"));
    const AttemptOutcome handshake = attempts.run_one();
    CHECK((handshake.kind == FailureKind::tls || handshake.kind == FailureKind::reset));
    CHECK(client.connections_opened() == opened + 1);
    CHECK(client.open_connections() == 0);
    receiver.stop();
    io.run_for(5s);
}
