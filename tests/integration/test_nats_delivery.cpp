// NATS JetStream destinations against a real nats-server -js on loopback: what lands in the stream
// (subjects, exact bodies, headers, order per call), de-duplication of a replayed id, a server
// that is down and comes back, one that stays down past the retry budget, no stream, a full
// stream, and authentication (token, user and password, NKey).

#include "support/daemon_fixture.hpp"
#include "support/nats_server.hpp"
#include "support/test_pki.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <sstream>

using namespace avr_webhookd;
using namespace avr_webhookd::test;

namespace {

boost::json::object stream_config(std::vector<std::string> subjects = {"avr.events.>"}) {
    boost::json::array list;
    for (auto& subject : subjects) list.emplace_back(subject);
    return boost::json::object{{"subjects", list}, {"storage", "file"}, {"num_replicas", 1}};
}

std::uint64_t stored_count(JetStreamClient& client, const std::string& stream = "AVR") {
    return client.stream_state(stream).at("messages").to_number<std::uint64_t>();
}

bool wait_for_stored(JetStreamClient& client, std::uint64_t count, std::chrono::milliseconds timeout = 20s) {
    return wait_until([&] { return stored_count(client) >= count; }, timeout, 20ms);
}

std::string failure_code(const boost::json::object& line) { return failure_field(line, "code"); }

std::string write_file(const TempDir& dir, std::string_view name, std::string_view text) {
    const auto path = dir / name;
    std::ofstream(path) << text;
    std::filesystem::permissions(path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    return path.string();
}

// Quick retries, so that tests wait for conditions, not for backoff.
std::vector<std::string> quick_retries(std::string retry = "-1") {
    return {"--retry", std::move(retry), "--retry-base", "20ms", "--retry-max-delay", "200ms", "--timeout", "1s"};
}

std::vector<std::string> flags(std::vector<std::string> first, const std::vector<std::string>& more) {
    first.insert(first.end(), more.begin(), more.end());
    return first;
}

}  // namespace

TEST_CASE("nats: every type lands in the stream with the webhook's exact body and headers", "[integration][nats]") {
    TempDir dir;
    NatsServer server(dir);
    server.start();
    JetStreamClient client(server.url());
    client.create_stream("AVR", stream_config());
    ReceiverThread webhook;  // a second destination: the body a webhook gets, byte for byte
    DaemonProcess daemon(dir, {"--url", server.url(), "--agent-id", "host-7", "--destination-web-url", webhook.url()});
    REQUIRE(daemon.wait_ready());

    const auto call = call_uuid(1);
    const std::vector<std::string> types{"call_initiated", "call_started", "transcription", "interruption",
                                         "dtmf_digit",     "error",        "call_ended"};
    std::string input;
    for (std::size_t i = 0; i < types.size(); ++i) {
        std::string payload = types[i] == "transcription" ? R"({"role":"user","text":"hello"})"
                              : types[i] == "dtmf_digit"  ? R"({"digit":"5"})"
                              : types[i] == "error"       ? R"({"message":"asr failed"})"
                                                          : "{}";
        input += R"({"id":"t)" + std::to_string(i) + R"(","uuid":")" + call + R"(","type":")" + types[i] +
                 R"(","timestamp":"2026-01-02T03:04:05.000Z","payload":)" + payload + "}\n";
    }
    // call_initiated is a respond type: its producer is answered with the stream's PubAck.
    const auto replies = exchange(daemon.socket(), input, 20s);
    REQUIRE(replies.size() == 1);
    const auto answer = boost::json::parse(replies[0]).as_object();
    CHECK(answer.at("id").as_string() == "t0");
    CHECK(answer.at("status").as_int64() == 200);
    CHECK(answer.at("response").at("stream").as_string() == "AVR");
    REQUIRE(wait_for_stored(client, types.size()));
    REQUIRE(webhook.wait_for_requests(types.size()));

    const auto stored = client.messages("AVR");
    const auto posted = webhook.requests();
    REQUIRE(stored.size() == types.size());
    for (std::size_t i = 0; i < types.size(); ++i) {
        INFO("event " << i);
        const auto& message = stored[i];
        CHECK(message.subject == "avr.events." + types[i]);
        CHECK(message.data == posted[i].body);
        CHECK(message.headers.at("Nats-Msg-Id") == "t" + std::to_string(i));
        CHECK(message.headers.at("X-AVR-WEBHOOK-ID") == "t" + std::to_string(i));
        CHECK(message.headers.at("X-AVR-WEBHOOK-SEQUENCE") == std::to_string(i + 1));
        CHECK(message.headers.at("X-AVR-WEBHOOK-ATTEMPT") == "1");
        CHECK(message.headers.at("X-AVR-AGENT-ID") == "host-7");
        CHECK_FALSE(message.headers.contains("X-AVR-WEBHOOK-SECRET"));
    }
    CHECK_THAT(daemon.log(), Catch::Contains("nats: destination default connected to nats://127.0.0.1:"));
    REQUIRE(daemon.stop());
}

TEST_CASE("nats: order per call across interleaved calls, and a replayed id stored once", "[integration][nats]") {
    TempDir dir;
    NatsServer server(dir);
    server.start();
    JetStreamClient client(server.url());
    client.create_stream("AVR", stream_config({"avr.>"}));
    DaemonProcess daemon(dir, {"--url", server.url(), "--subject", "avr.{destination}.{type}.{uuid}"});
    REQUIRE(daemon.wait_ready());

    constexpr unsigned calls = 20, per_call = 25;
    std::string input;
    for (unsigned index = 0; index < per_call; ++index)
        for (unsigned call = 0; call < calls; ++call)
            input += event_line(call_uuid(call), "transcription", "t",
                                "c" + std::to_string(call) + "-" + std::to_string(index)) +
                     "\n";
    CHECK(exchange(daemon.socket(), input, 30s).empty());
    REQUIRE(wait_for_stored(client, calls * per_call));

    std::map<std::string, std::vector<std::string>> by_call;
    for (const auto& message : client.messages("AVR")) {
        const auto body = boost::json::parse(message.data).as_object();
        const std::string uuid(body.at("uuid").as_string());
        CHECK(message.subject == "avr.default.transcription." + uuid);
        by_call[uuid].push_back(message.headers.at("Nats-Msg-Id"));
    }
    REQUIRE(by_call.size() == calls);
    for (unsigned call = 0; call < calls; ++call) {
        std::vector<std::string> expected;
        for (unsigned index = 0; index < per_call; ++index)
            expected.push_back("c" + std::to_string(call) + "-" + std::to_string(index));
        CHECK(by_call.at(call_uuid(call)) == expected);
    }

    // The same id again (a producer's replay, a dead letter sent back): published again, stored once.
    const auto call = call_uuid(0);
    CHECK(exchange(daemon.socket(), event_line(call, "transcription", "again", "c0-3") + "\n" +
                                        event_line(call, "call_ended", {}, "c0-end") + "\n")
              .empty());
    REQUIRE(wait_for_stored(client, calls * per_call + 1));
    const auto messages = client.messages("AVR");
    CHECK(messages.size() == calls * per_call + 1);
    CHECK(messages.back().headers.at("Nats-Msg-Id") == "c0-end");
    REQUIRE(daemon.stop());
}

TEST_CASE("nats: a server that is down, then up: retried, then delivered in order", "[integration][nats][retry]") {
    TempDir dir;
    NatsServer server(dir);  // its port is chosen, nothing listens on it yet
    DaemonProcess daemon(dir, flags({"--url", server.url()}, quick_retries()));
    REQUIRE(daemon.wait_ready());
    const auto call = call_uuid(3);
    std::string input;
    for (int i = 1; i <= 5; ++i) input += event_line(call, "transcription", "t", "d" + std::to_string(i)) + "\n";
    CHECK(exchange(daemon.socket(), input).empty());
    REQUIRE(daemon.process().wait_for_output("NATS_NOT_CONNECTED", 10s));
    CHECK_THAT(daemon.log(), Catch::Contains("cannot connect to " + server.url() + " yet"));

    server.start();
    JetStreamClient client(server.url());
    // The server is up before its stream: no responders meanwhile, retried too.
    REQUIRE(daemon.process().wait_for_output("NATS_NO_RESPONDERS", 10s));
    client.create_stream("AVR", stream_config());
    REQUIRE(wait_for_stored(client, 5));
    std::vector<std::string> ids;
    for (const auto& message : client.messages("AVR")) ids.push_back(message.headers.at("Nats-Msg-Id"));
    CHECK(ids == std::vector<std::string>{"d1", "d2", "d3", "d4", "d5"});
    CHECK(read_lines(daemon.dead_letter()).empty());
    REQUIRE(daemon.stop());
}

TEST_CASE("nats: down past the retry budget, events are dead-lettered naming the url and the NATS error",
          "[integration][nats][retry]") {
    TempDir dir;
    const auto url = "nats://user:pa55word@127.0.0.1:" + std::to_string(free_tcp_port());
    DaemonProcess daemon(dir, {"--url", url, "--retry", "2", "--retry-base", "10ms", "--timeout", "300ms"});
    REQUIRE(daemon.wait_ready());
    CHECK(exchange(daemon.socket(), event_line(call_uuid(4), "call_started", {}, "gone-1") + "\n").empty());
    REQUIRE(wait_for_dead_letters(daemon, 1));
    const auto lines = dead_letters(daemon);
    CHECK(failure_code(lines[0]) == "NATS_NOT_CONNECTED");
    CHECK(lines[0].at("failure").at("attempts").as_int64() == 3);
    const auto log = daemon.log();
    CHECK_THAT(log, Catch::Contains("Code: NATS_NOT_CONNECTED\nURL: nats://<redacted>@127.0.0.1:"));
    CHECK_THAT(log, Catch::Contains("Method: PUBLISH"));
    CHECK(log.find("pa55word") == std::string::npos);
    REQUIRE(daemon.stop());
}

TEST_CASE("nats: no stream for the subject and a full stream are failures, never silent",
          "[integration][nats][retry]") {
    TempDir dir;
    NatsServer server(dir);
    server.start();
    JetStreamClient client(server.url());
    auto config = stream_config({"avr.events.call_started"});
    config["max_msgs"] = 1;
    config["discard"] = "new";
    client.create_stream("SMALL", config);
    DaemonProcess daemon(dir, flags({"--url", server.url()}, quick_retries("1")));
    REQUIRE(daemon.wait_ready());
    const auto call = call_uuid(5);
    CHECK(exchange(daemon.socket(), event_line(call, "call_started", {}, "s1") + "\n" +
                                        event_line(call, "call_started", {}, "s2") + "\n" +
                                        event_line(call, "call_ended", {}, "s3") + "\n")
              .empty());
    REQUIRE(wait_for_dead_letters(daemon, 2));
    const auto lines = dead_letters(daemon);
    CHECK(std::string(lines[0].at("id").as_string()) == "s2");
    CHECK(failure_code(lines[0]) == "NATS_JS_10077");  // the stream is full (discard new)
    CHECK(lines[0].at("failure").at("status").as_int64() == 503);
    CHECK_THAT(std::string(lines[0].at("failure").at("message").as_string()),
               Catch::Contains("maximum messages exceeded"));
    CHECK(std::string(lines[1].at("id").as_string()) == "s3");
    CHECK(failure_code(lines[1]) == "NATS_NO_RESPONDERS");  // no stream takes avr.events.call_ended
    CHECK(stored_count(client, "SMALL") == 1);
    REQUIRE(daemon.stop());
}

// A server that demands `authorization`, with the stream AVR made by a client that logs in with
// `client_credentials`@.
struct AuthServer {
    AuthServer(const TempDir& dir, const std::string& authorization, const std::string& client_credentials)
        : server(dir, NatsServer::Options{"n1", 0, 0, {}, "authorization { " + authorization + " }"}) {
        server.start();
        client = std::make_unique<JetStreamClient>("nats://" + client_credentials +
                                                   "@127.0.0.1:" + std::to_string(server.port()));
        client->create_stream("AVR", stream_config());
    }
    NatsServer server;
    std::unique_ptr<JetStreamClient> client;
};

// One event through a daemon with `flags`, stored in the stream.
void check_stores(const TempDir& dir, AuthServer& nats, const std::vector<std::string>& settings,
                  const std::string& id) {
    DaemonProcess daemon(dir, flags({"--url", nats.server.url()}, settings), {}, id);
    REQUIRE(daemon.wait_ready());
    const auto before = stored_count(*nats.client);
    CHECK(exchange(daemon.socket(), event_line(call_uuid(6), "call_started", {}, id) + "\n").empty());
    REQUIRE(wait_for_stored(*nats.client, before + 1));
    REQUIRE(daemon.stop());
}

TEST_CASE("nats: token, user and password, and NKey authentication", "[integration][nats][auth]") {
    TempDir dir;
    SECTION("token_file, and a wrong token is a permanent failure") {
        AuthServer nats(dir, "token: \"t0ken-for-avr\"", "t0ken-for-avr");
        check_stores(dir, nats, {"--token-file", write_file(dir, "token", "t0ken-for-avr\n")}, "a1");

        DaemonProcess bad(dir, {"--url", nats.server.url(), "--token-file", write_file(dir, "wrong", "not-it")}, {},
                          "bad");
        REQUIRE(bad.wait_ready());
        CHECK(exchange(bad.socket(), event_line(call_uuid(6), "call_ended", {}, "a2") + "\n").empty());
        REQUIRE(wait_for_dead_letters(bad, 1));
        CHECK(failure_code(dead_letters(bad)[0]) == "NATS_AUTHORIZATION_VIOLATION");
        CHECK(failure_field(dead_letters(bad)[0], "attempts") == "1");
        CHECK_THAT(failure_field(dead_letters(bad)[0], "message"), Catch::Contains("Authorization Violation"));
        CHECK(bad.log().find("not-it") == std::string::npos);
        REQUIRE(bad.stop());
    }
    SECTION("user and password_file") {
        AuthServer nats(dir, "user: avr, password: \"s3cret-pass\"", "avr:s3cret-pass");
        check_stores(dir, nats, {"--user", "avr", "--password-file", write_file(dir, "pw", "s3cret-pass")}, "u1");
    }
    SECTION("nkey_seed_file: the public key derived from the seed is the one the server knows") {
        // A seed and its public key from nats-server's own tests; the test's client is another user.
        AuthServer nats(dir,
                        "users = [ { nkey: UCNGL4W5QX66CFX6A6DCBVDH5VOHMI7B2UZZU7TXAUQQSI2JPHULCKBR },"
                        " { user: admin, password: admin } ]",
                        "admin:admin");
        const auto seed = write_file(dir, "user.nk", "SUAPM67TC4RHQLKBX55NIQXSMATZDOZK6FNEOSS36CAYA7F7TY66LP4BOM\n");
        check_stores(dir, nats, {"--nkey-seed-file", seed}, "k1");
    }
}

TEST_CASE("nats: credentials that may not subscribe to the reply inbox fail with the server's words, not timeouts",
          "[integration][nats][auth]") {
    TempDir dir;
    AuthServer nats(dir,
                    "users = [ { user: avr, password: pw, permissions: { publish: \"avr.events.>\","
                    " subscribe: \"other.>\" } }, { user: admin, password: admin } ]",
                    "admin:admin");
    DaemonProcess daemon(
        dir,
        flags({"--url", nats.server.url(), "--user", "avr", "--password-file", write_file(dir, "pw", "pw")},
              quick_retries("3")),
        {}, "inbox");
    REQUIRE(daemon.wait_ready());
    CHECK(exchange(daemon.socket(), event_line(call_uuid(7), "call_started", {}, "p1") + "\n").empty());
    REQUIRE(wait_for_dead_letters(daemon, 1));
    const auto line = dead_letters(daemon)[0];
    CHECK(failure_code(line) == "NATS_PERMISSIONS_VIOLATION");
    CHECK(failure_field(line, "attempts") == "1");
    CHECK_THAT(failure_field(line, "message"), Catch::Contains("Permissions Violation for Subscription to"));
    const auto log = daemon.log();
    const std::string refusal = "no PubAck can come back: allow these credentials";  // the link's log line
    const auto first = log.find(refusal);
    CHECK(first != std::string::npos);
    CHECK(log.find(refusal, first + 1) == std::string::npos);  // logged once, not at each new connection
    REQUIRE(daemon.stop());
}

TEST_CASE("nats: a reload from nats:// to http:// closes the NATS connection", "[integration][nats][reload]") {
    TempDir dir;
    NatsServer server(dir, NatsServer::Options{"n1", 0, 0, {}, "debug: true"});  // logs each client's close
    server.start();
    const auto config = dir / "avr-webhookd.conf";
    write_config(config, "url = " + server.url() + "\n");
    auto daemon = DaemonProcess::with_config_file(dir, config, {});
    REQUIRE(daemon.wait_ready());
    REQUIRE(wait_until([&] { return daemon.log().find("nats: destination default connected") != std::string::npos; },
                       20s, 20ms));
    write_config(config, "url = http://127.0.0.1:" + std::to_string(free_tcp_port()) + "/hook\n");
    REQUIRE(reload(daemon, "reload: configuration applied"));
    // The retired transport's link closes its connection (before, it kept it and reconnected forever).
    CHECK(wait_until(
        [&] {
            std::istringstream log(server.log());
            for (std::string line; std::getline(log, line);)
                if (line.find("avr-webhookd default") != std::string::npos &&
                    line.find("Client connection closed") != std::string::npos)
                    return true;
            return false;
        },
        20s, 50ms));
    REQUIRE(daemon.stop());
}

TEST_CASE("nats: tls:// with ca_file and a client certificate, a certificate for another host is refused",
          "[integration][nats][tls]") {
    TempDir dir;
    const auto& pki = TestPki::shared();
    const auto tls_block = [&](const CertificateFiles& server) {
        return "tls { cert_file: \"" + server.cert.string() + "\", key_file: \"" + server.key.string() +
               "\", ca_file: \"" + pki.ca_file().string() + "\", verify: true }";
    };
    NatsServer::Options options;
    options.extra_config = tls_block(pki.valid());  // and it asks for the client's certificate
    NatsServer server(dir, options);
    server.start();
    const auto url = "tls://localhost:" + std::to_string(server.port());
    JetStreamClient client(url, 20s, {pki.ca_file().string(), pki.client().cert.string(), pki.client().key.string()});
    client.create_stream("AVR", stream_config());
    DaemonProcess daemon(dir, {"--url", url, "--ca-file", pki.ca_file().string(), "--cert-file",
                               pki.client().cert.string(), "--key-file", pki.client().key.string()});
    REQUIRE(daemon.wait_ready());
    CHECK(exchange(daemon.socket(), event_line(call_uuid(9), "call_started", {}, "tls-1") + "\n").empty());
    REQUIRE(wait_for_stored(client, 1));
    REQUIRE(daemon.stop());

    NatsServer::Options other;
    other.name = "wrong";
    other.extra_config = tls_block(pki.wrong_host());
    NatsServer impostor(dir, other);
    impostor.start();
    DaemonProcess refused(
        dir,
        {"--url", "tls://localhost:" + std::to_string(impostor.port()), "--ca-file", pki.ca_file().string(),
         "--cert-file", pki.client().cert.string(), "--key-file", pki.client().key.string(), "--timeout", "1s"},
        {}, "refused");
    REQUIRE(refused.wait_ready());
    CHECK(exchange(refused.socket(), event_line(call_uuid(9), "call_ended", {}, "tls-2") + "\n").empty());
    REQUIRE(wait_for_dead_letters(refused, 1));
    CHECK(failure_code(dead_letters(refused)[0]) == "NATS_NOT_CONNECTED");
    REQUIRE(refused.stop());
}

TEST_CASE("nats: bad settings exit 78 with one clear line", "[integration][nats][config]") {
    TempDir dir;
    const auto check = [&](std::vector<std::string> arguments, std::string_view expected) {
        arguments.insert(arguments.begin(), {daemon_binary(), "--config", "", "--socket", (dir / "x.sock").string()});
        const auto result = run_command(arguments, dir.path(), 20s);
        INFO(result.err);
        CHECK(result.status.code == 78);
        CHECK_THAT(result.err, Catch::Contains(std::string(expected)));
        CHECK(occurrences(result.err, "\n") == 1);
    };
    check({"--url", "nats://127.0.0.1:4222", "--subject", "avr.{call}"},
          "invalid setting subject (--subject) = \"avr.{call}\": expected a NATS subject such as avr.events.{type}: "
          "unknown placeholder {call} (allowed: {type}, {uuid}, {destination})");
    check({"--url", "nats://127.0.0.1:4222", "--creds-file", "/nonexistent/avr.creds"},
          "invalid setting creds_file (--creds-file) = \"/nonexistent/avr.creds\": expected the path of an existing "
          "file");
    check({"--url", "nats://127.0.0.1:4222", "--secret", "s"}, "a NATS destination takes no secret");
    check({"--url", "https://example.com/x", "--subject", "a.b"}, "this setting is for NATS destinations");
    check({"--url", "nats://u:p@127.0.0.1:4222", "--token-file", write_file(dir, "t", "x")},
          "more than one way to authenticate to NATS");
}
