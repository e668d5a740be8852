#include "avr_webhookd/tools/receiver.hpp"
#include "avr_webhookd/delivery/signature.hpp"
#include "support/build_paths.hpp"
#include "support/process.hpp"
#include "support/test_pki.hpp"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <catch2/catch.hpp>

#include <openssl/x509_vfy.h>

#include <csignal>
#include <future>
#include <map>
#include <string>

using namespace avr_webhookd;
using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

namespace {

constexpr auto io_timeout = 10s;
const std::string call_uuid = "9d2e7c4a-1f3b-4c5d-8e6f-0a1b2c3d4e5f";

// A Receiver whose io_context runs on its own thread, as the delivery tests use it.
class RunningReceiver {
public:
    explicit RunningReceiver(ReceiverOptions options) : receiver_(io_, quiet(std::move(options))) {
        receiver_.start();
        runner_ = std::async(std::launch::async, [this] { io_.run(); });
    }
    ~RunningReceiver() {
        if (!stop_and_wait(5s)) io_.stop();
        runner_.wait();
    }
    RunningReceiver(const RunningReceiver&) = delete;
    RunningReceiver& operator=(const RunningReceiver&) = delete;

    // Stops the receiver; true when the io_context then ran out of work within `timeout`.
    bool stop_and_wait(std::chrono::milliseconds timeout) {
        receiver_.stop();
        return runner_.wait_for(timeout) == std::future_status::ready;
    }
    Receiver* operator->() { return &receiver_; }

private:
    static ReceiverOptions quiet(ReceiverOptions options) {
        options.quiet = true;
        return options;
    }
    asio::io_context io_;
    Receiver receiver_;
    std::future<void> runner_;
};

struct Reply {
    boost::system::error_code error;  // set when no complete response arrived
    int status = 0;
    std::string body;
    std::map<std::string, std::string> headers;  // as the server spelled the names
    bool keep_alive = false;
};

// A small HTTP/1.1 client over Stream (beast::tcp_stream or beast::ssl_stream<beast::tcp_stream>)
// on its own io_context; every operation is bounded by io_timeout.
template <class Stream>
class Client {
public:
    template <class... StreamArguments>
    explicit Client(unsigned short port, StreamArguments&... stream_arguments) : stream_(io_, stream_arguments...) {
        beast::get_lowest_layer(stream_).connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    }

    // TLS only: verifies the peer's certificate chain and that it names `host`.
    boost::system::error_code handshake(const std::string& host) {
        SSL_set_tlsext_host_name(stream_.native_handle(), host.c_str());
        stream_.set_verify_callback(ssl::host_name_verification(host));
        return run([&](auto done) { stream_.async_handshake(ssl::stream_base::client, done); });
    }
    long verify_result() { return SSL_get_verify_result(stream_.native_handle()); }

    Reply send(const http::request<http::string_body>& request) {
        Reply reply;
        reply.error = run([&](auto done) { http::async_write(stream_, request, done); });
        if (reply.error) return reply;
        http::response<http::string_body> response;
        reply.error = run([&](auto done) { http::async_read(stream_, buffer_, response, done); });
        if (reply.error) return reply;
        reply.status = static_cast<int>(response.result_int());
        reply.body = response.body();
        reply.keep_alive = response.keep_alive();
        for (const auto& field : response) reply.headers[std::string(field.name_string())] = field.value();
        return reply;
    }

    // The error a further read ends with: end_of_stream when the server closed the connection.
    boost::system::error_code read_until_closed() {
        http::response<http::string_body> response;
        return run([&](auto done) { http::async_read(stream_, buffer_, response, done); });
    }

private:
    template <class Start>
    boost::system::error_code run(Start start) {
        boost::system::error_code result;
        beast::get_lowest_layer(stream_).expires_after(io_timeout);
        start([&result](boost::system::error_code error, auto&&...) { result = error; });
        io_.restart();
        io_.run();
        return result;
    }

    asio::io_context io_;
    Stream stream_;
    beast::flat_buffer buffer_;
};

using PlainClient = Client<beast::tcp_stream>;
using TlsClient = Client<beast::ssl_stream<beast::tcp_stream>>;

std::string event_body(const std::string& type, const std::string& payload = "{}") {
    return R"({"uuid":")" + call_uuid + R"(","type":")" + type +
           R"(","timestamp":"2024-01-01T12:00:00.000Z","payload":)" + payload + "}";
}

http::request<http::string_body> webhook_request(std::string body, const HeaderList& headers = {},
                                                 http::verb method = http::verb::post) {
    http::request<http::string_body> request{method, "/events?source=test", 11};
    request.set(http::field::host, "127.0.0.1");
    request.set(http::field::content_type, "application/json");
    for (const auto& [name, value] : headers) request.set(name, value);
    request.body() = std::move(body);
    request.prepare_payload();
    return request;
}

template <class AnyClient>
Reply post_event(AnyClient& client, const std::string& type = "call_started") {
    return client.send(webhook_request(event_body(type)));
}

std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

ReceiverOptions on_any_port() {
    ReceiverOptions options;
    options.listen = "127.0.0.1:0";
    return options;
}

ssl::context client_tls_context(const std::filesystem::path& trusted) {
    ssl::context context(ssl::context::tls_client);
    if (!trusted.empty()) context.load_verify_file(trusted.string());
    context.set_verify_mode(ssl::verify_peer);
    return context;
}

ReceiverOptions serving(const test::CertificateFiles& files) {
    ReceiverOptions options = on_any_port();
    options.tls_cert = files.cert.string();
    options.tls_key = files.key.string();
    return options;
}

}  // namespace

TEST_CASE("receiver: answers 200 and records each request of a keep-alive connection", "[receiver]") {
    RunningReceiver receiver(on_any_port());
    CHECK(receiver->base_url() == "http://127.0.0.1:" + std::to_string(receiver->port()));
    PlainClient client(receiver->port());

    const std::string body = event_body("transcription", R"({"role":"user","text":"Hello"})");
    const Reply first = client.send(webhook_request(body, {{"X-AVR-WEBHOOK-ID", "event-1"}}));
    REQUIRE_FALSE(first.error);
    CHECK(first.status == 200);
    CHECK(first.body == "OK");
    CHECK(first.keep_alive);
    const Reply second = post_event(client, "call_ended");
    REQUIRE_FALSE(second.error);
    CHECK(second.status == 200);

    const auto requests = receiver->requests();
    REQUIRE(requests.size() == 2);
    CHECK(requests[0].method == "POST");
    CHECK(requests[0].target == "/events?source=test");
    CHECK(requests[0].body == body);
    CHECK(requests[0].headers.at("x-avr-webhook-id") == "event-1");
    CHECK(requests[0].headers.at("content-type") == "application/json");
    CHECK(requests[0].status_sent == 200);
    CHECK(requests[0].connection_index == 1);
    CHECK(requests[1].connection_index == 1);
    CHECK(requests[0].at <= requests[1].at);
    CHECK(receiver->connections_accepted() == 1);
}

TEST_CASE("receiver: fail_first answers fail_status with Retry-After, then 200", "[receiver]") {
    ReceiverOptions options = on_any_port();
    options.fail_first = 2;
    options.fail_status = 503;
    options.retry_after = "7";
    RunningReceiver receiver(options);
    PlainClient client(receiver->port());

    std::vector<int> statuses;
    for (int attempt = 0; attempt < 3; ++attempt) {
        const Reply reply = post_event(client);
        REQUIRE_FALSE(reply.error);
        statuses.push_back(reply.status);
        CHECK(reply.headers.count("Retry-After") == (reply.status == 503 ? 1u : 0u));
        if (reply.status == 503) CHECK(reply.headers.at("Retry-After") == "7");
    }
    CHECK(statuses == std::vector<int>{503, 503, 200});
    const auto requests = receiver->requests();
    REQUIRE(requests.size() == 3);
    CHECK(requests[1].status_sent == 503);
    CHECK(requests[2].status_sent == 200);
}

TEST_CASE("receiver: status_for_type always answers its status for that event type", "[receiver]") {
    ReceiverOptions options = on_any_port();
    options.status_for_type = {{"call_initiated", 500}, {"error", 400}};
    RunningReceiver receiver(options);
    PlainClient client(receiver->port());

    CHECK(post_event(client, "call_initiated").status == 500);
    CHECK(post_event(client).status == 200);
    CHECK(post_event(client, "call_initiated").status == 500);
    CHECK(client.send(webhook_request(event_body("error", R"({"message":"boom"})"))).status == 400);
}

TEST_CASE("receiver: drop_first closes the connection without an answer", "[receiver]") {
    ReceiverOptions options = on_any_port();
    options.drop_first = 1;
    RunningReceiver receiver(options);

    {
        PlainClient client(receiver->port());
        const Reply dropped = post_event(client);
        CHECK(dropped.error);
        CHECK(dropped.error != beast::error::timeout);
        CHECK(dropped.status == 0);
    }
    PlainClient client(receiver->port());
    const Reply answered = post_event(client);
    REQUIRE_FALSE(answered.error);
    CHECK(answered.status == 200);

    const auto requests = receiver->requests();
    REQUIRE(requests.size() == 2);
    CHECK(requests[0].status_sent == 0);
    CHECK(requests[0].connection_index == 1);
    CHECK(requests[1].connection_index == 2);
    CHECK(receiver->connections_accepted() == 2);
}

TEST_CASE("receiver: redirect_first answers 302 with a Location", "[receiver]") {
    ReceiverOptions options = on_any_port();
    options.redirect_first = 1;
    RunningReceiver receiver(options);
    PlainClient client(receiver->port());

    const Reply redirected = post_event(client);
    REQUIRE_FALSE(redirected.error);
    CHECK(redirected.status == 302);
    CHECK(redirected.headers.at("Location") == "/moved/events?source=test");
    CHECK(post_event(client).status == 200);
}

TEST_CASE("receiver: close_after_response answers Connection: close and closes", "[receiver]") {
    ReceiverOptions options = on_any_port();
    options.close_after_response = true;
    RunningReceiver receiver(options);
    PlainClient client(receiver->port());

    const Reply reply = post_event(client);
    REQUIRE_FALSE(reply.error);
    CHECK(reply.status == 200);
    CHECK_FALSE(reply.keep_alive);
    CHECK(client.read_until_closed() == http::error::end_of_stream);
}

TEST_CASE("receiver: delay holds each response back", "[receiver]") {
    ReceiverOptions options = on_any_port();
    options.delay = 300ms;
    RunningReceiver receiver(options);
    PlainClient client(receiver->port());

    const auto started = std::chrono::steady_clock::now();
    const Reply reply = post_event(client);
    REQUIRE_FALSE(reply.error);
    CHECK(reply.status == 200);
    CHECK(std::chrono::steady_clock::now() - started >= 300ms);
}

TEST_CASE("receiver: rejects other methods, non-JSON bodies and bodies over 1 MiB", "[receiver]") {
    RunningReceiver receiver(on_any_port());
    {
        PlainClient client(receiver->port());
        CHECK(client.send(webhook_request("", {}, http::verb::get)).status == 405);
        CHECK(client.send(webhook_request("not json")).status == 400);
        CHECK(client.send(webhook_request("[1,2]")).status == 400);
    }
    PlainClient client(receiver->port());
    // The receiver answers 413 and closes while the client may still be writing: depending on
    // timing the client reads the 413 or sees the connection reset. Never a 2xx.
    const Reply too_large = client.send(webhook_request(std::string(1024 * 1024 + 1, 'x')));
    if (!too_large.error) {
        CHECK(too_large.status == 413);
        CHECK(client.read_until_closed());
    }
    for (const auto& request : receiver->requests()) CHECK(request.status_sent != 200);
}

TEST_CASE("receiver: checks the secret in each signature mode", "[receiver]") {
    const auto mode = GENERATE(SignatureMode::plain, SignatureMode::hmac_sha256, SignatureMode::standard);
    const std::string secret = mode == SignatureMode::standard ? "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" : "s3cret";
    const std::string wrong_secret = mode == SignatureMode::standard ? "whsec_c2VjcmV0LWtleS13cm9uZw==" : "wrong";
    INFO(to_string(mode));
    ReceiverOptions options = on_any_port();
    options.secret = secret;
    options.signature = mode;
    RunningReceiver receiver(options);
    PlainClient client(receiver->port());

    const std::string body = event_body("call_started");
    const auto signed_by = [&](const std::string& key) {
        HeaderList headers;
        Signer(mode, key).headers("event-1", body, unix_now(), headers);
        return headers;
    };
    CHECK(client.send(webhook_request(body, signed_by(secret))).status == 200);
    const Reply wrong = client.send(webhook_request(body, signed_by(wrong_secret)));
    CHECK(wrong.status == 401);
    CHECK_THAT(wrong.body, Catch::Contains("authentication failed"));
    CHECK(client.send(webhook_request(body)).status == 401);
    if (mode != SignatureMode::plain) CHECK(client.send(webhook_request(body + " ", signed_by(secret))).status == 401);
    if (mode == SignatureMode::standard) {
        HeaderList stale;
        Signer(mode, secret).headers("event-1", body, unix_now() - 3600, stale);
        CHECK(client.send(webhook_request(body, stale)).status == 401);
    }
}

TEST_CASE("receiver: stop closes idle keep-alive connections so the io_context runs out of work", "[receiver]") {
    RunningReceiver receiver(on_any_port());
    PlainClient client(receiver->port());
    REQUIRE(post_event(client).status == 200);
    CHECK(receiver.stop_and_wait(5s));
}

TEST_CASE("receiver: refuses to start on a busy port or a malformed listen address", "[receiver]") {
    asio::io_context io;
    Receiver first(io, on_any_port());
    ReceiverOptions same_port = on_any_port();
    same_port.listen = "127.0.0.1:" + std::to_string(first.port());
    CHECK_THROWS(Receiver(io, same_port));
    ReceiverOptions malformed = on_any_port();
    malformed.listen = "127.0.0.1";
    CHECK_THROWS(Receiver(io, malformed));
    ReceiverOptions half_tls = on_any_port();
    half_tls.tls_cert = test::TestPki::shared().valid().cert.string();
    CHECK_THROWS(Receiver(io, half_tls));
}

TEST_CASE("receiver: serves HTTPS to a client that trusts the test CA and checks the host name", "[receiver][tls]") {
    const auto& pki = test::TestPki::shared();
    RunningReceiver receiver(serving(pki.valid()));
    CHECK(receiver->base_url().starts_with("https://127.0.0.1:"));
    ssl::context trust_ca = client_tls_context(pki.ca_file());

    const std::string host = GENERATE(as<std::string>{}, "localhost", "127.0.0.1");
    INFO(host);
    TlsClient client(receiver->port(), trust_ca);
    const auto handshake_error = client.handshake(host);
    REQUIRE_FALSE(handshake_error);
    const Reply reply = post_event(client);
    REQUIRE_FALSE(reply.error);
    CHECK(reply.status == 200);
    CHECK(receiver->requests().size() == 1);
}

TEST_CASE("receiver: a TLS client refuses untrusted, expired, wrong-host and self-signed certificates",
          "[receiver][tls]") {
    const auto& pki = test::TestPki::shared();
    struct Case {
        const char* name;
        const test::CertificateFiles& served;
        std::filesystem::path trusted;
        std::string host;
        bool accepted;
        long verify_result;
    };
    const Case cases[] = {
        {"CA not trusted", pki.valid(), {}, "localhost", false, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY},
        {"expired", pki.expired(), pki.ca_file(), "localhost", false, X509_V_ERR_CERT_HAS_EXPIRED},
        {"wrong host", pki.wrong_host(), pki.ca_file(), "localhost", false, -1},
        {"wrong host, its own name", pki.wrong_host(), pki.ca_file(), "wrong.example", true, X509_V_OK},
        {"self-signed", pki.self_signed(), pki.ca_file(), "localhost", false, X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT},
        {"self-signed, trusted itself", pki.self_signed(), pki.self_signed().cert, "127.0.0.1", true, X509_V_OK},
    };
    for (const Case& scenario : cases) {
        INFO(scenario.name);
        RunningReceiver receiver(serving(scenario.served));
        ssl::context context = client_tls_context(scenario.trusted);
        TlsClient client(receiver->port(), context);
        const auto error = client.handshake(scenario.host);
        CHECK(!error == scenario.accepted);
        if (!scenario.accepted) CHECK_THAT(error.message(), Catch::Contains("certificate verify failed"));
        if (scenario.verify_result != -1) CHECK(client.verify_result() == scenario.verify_result);
        if (scenario.accepted) CHECK(post_event(client).status == 200);
        else CHECK(receiver->requests().empty());
    }
}

TEST_CASE("receiver: keeps at most max_recorded requests and counts the ones it forgot", "[receiver][limits]") {
    ReceiverOptions options = on_any_port();
    options.max_recorded = 3;
    RunningReceiver receiver(options);
    PlainClient client(receiver->port());
    for (int i = 1; i <= 5; ++i) {
        const Reply reply =
            client.send(webhook_request(event_body("call_started"), {{"X-AVR-WEBHOOK-ID", std::to_string(i)}}));
        REQUIRE_FALSE(reply.error);
        CHECK(reply.status == 200);
    }
    const auto requests = receiver->requests();
    REQUIRE(requests.size() == 3);
    CHECK(requests[0].headers.at("x-avr-webhook-id") == "3");  // the newest are kept
    CHECK(requests[2].headers.at("x-avr-webhook-id") == "5");
    CHECK(receiver->requests_forgotten() == 2);
}

TEST_CASE("receiver: keeps at most max_recorded_bytes of requests", "[receiver][limits]") {
    ReceiverOptions options = on_any_port();
    options.max_recorded_bytes = 5000;
    RunningReceiver receiver(options);
    PlainClient client(receiver->port());
    const std::string text(2000, 'a');
    for (int i = 0; i < 10; ++i) {
        const Reply reply =
            client.send(webhook_request(event_body("transcription", R"({"role":"user","text":")" + text + R"("})")));
        REQUIRE_FALSE(reply.error);
        CHECK(reply.status == 200);
    }
    const auto requests = receiver->requests();
    // Each request costs its body (about 2.1 KB) plus bookkeeping: one or two fit in 5000 bytes,
    // never three, and the newest is always kept.
    CHECK(requests.size() >= 1);
    CHECK(requests.size() <= 2);
    std::size_t body_bytes = 0;
    for (const auto& request : requests) body_bytes += request.body.size();
    CHECK(body_bytes <= options.max_recorded_bytes);
    CHECK(requests.size() + receiver->requests_forgotten() == 10);
}

TEST_CASE("receive command: peer data is printed without control characters or invalid UTF-8", "[receiver]") {
    test::TempDirectory dir;
    test::Process receive({{AVR_WEBHOOKD_BINARY, "receive", "--listen", "127.0.0.1:0"},
                           test::minimal_environment(),
                           dir.path(),
                           "receive"});
    REQUIRE(receive.wait_for_output("listening on http://127.0.0.1:", 10s));
    REQUIRE(test::wait_until([&] { return receive.stdout_text().find('\n') != std::string::npos; }, 10s));
    const std::string first_line = receive.stdout_text().substr(0, receive.stdout_text().find('\n'));
    const auto port = static_cast<unsigned short>(std::stoi(first_line.substr(first_line.rfind(':') + 1)));

    PlainClient client(port);
    // JSON escapes decode to raw ESC, BEL and a newline; the target carries raw bytes too.
    const std::string text = R"(\u001b[2J\u001b]0;pwned\u0007forged\nline \u009b31m)";
    const Reply reply =
        client.send(webhook_request(event_body("transcription", R"({"role":"user","text":")" + text + R"("})")));
    REQUIRE_FALSE(reply.error);
    CHECK(reply.status == 200);
    auto bad = webhook_request("not json \x1b[31m");
    bad.target("/x\xff");
    CHECK(client.send(bad).status == 400);
    REQUIRE(receive.wait_for_output("Answered 400", 10s));
    receive.send_signal(SIGTERM);
    REQUIRE(receive.wait(10s).has_value());

    const std::string printed = receive.stdout_text();
    INFO(printed);
    CHECK_THAT(printed, Catch::Contains("Transcription [user]: ?[2J?]0;pwned?forged?line ?31m"));
    CHECK_THAT(printed, Catch::Contains("Answered 400 to POST /x\xEF\xBF\xBD: "));
    for (const char c : printed) CHECK((c == '\n' || static_cast<unsigned char>(c) >= 0x20));
    CHECK(printed.find('\x7f') == std::string::npos);
}
