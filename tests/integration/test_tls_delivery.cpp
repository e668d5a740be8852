// The real daemon delivering over HTTPS to an in-process receiver: trust through ca_file,
// refusal of untrusted, expired, wrong-host and self-signed certificates with their TLS codes,
// tls_verify = false, and keep-alive reuse and replacement over TLS and plain HTTP.
#include "../support/daemon_fixture.hpp"
#include "../support/test_pki.hpp"

#include <avr_webhookd/common/url.hpp>

#include <boost/json.hpp>
#include <catch2/catch.hpp>

using namespace avr_webhookd;
using namespace avr_webhookd::test;

namespace {

constexpr std::string_view call = "6ba7b810-9dad-41d1-80b4-00c04fd430c8";

ReceiverOptions serving(const CertificateFiles& files) {
    ReceiverOptions options;
    options.tls_cert = files.cert.string();
    options.tls_key = files.key.string();
    return options;
}

// The receiver's URL with `host` in place of the address it is bound to.
std::string url_for_host(ReceiverThread& receiver, std::string_view host, std::string_view path = "/webhooks/avr") {
    const std::string base = receiver.url("");
    const std::string scheme = base.substr(0, base.find("://") + 3);
    return scheme + std::string(host) + ":" + std::to_string(receiver.receiver().port()) + std::string(path);
}

// A generous attempt timeout: on a loaded machine a default 3 s attempt could time out and
// reconnect, which would blur what the keep-alive tests count.
std::vector<std::string> patient_flags(std::initializer_list<std::string> more) {
    std::vector<std::string> flags{"--timeout", "30s"};
    flags.insert(flags.end(), more);
    return flags;
}

struct Refusal {
    boost::json::object failure;  // the dead letter's "failure" object
    std::string log;
};

// Sends one call_started event to a daemon that is expected to refuse the receiver's certificate,
// waits until the event is dead-lettered and returns how it failed.
Refusal refused_delivery(const ReceiverThread& receiver, const std::string& url, std::vector<std::string> tls_flags) {
    TempDir dir;
    std::vector<std::string> arguments{"--url", url, "--retry", "0"};
    arguments.insert(arguments.end(), tls_flags.begin(), tls_flags.end());
    DaemonProcess daemon(dir, arguments);
    REQUIRE(daemon.wait_ready());
    CHECK(exchange(daemon.socket(), event_line(call, "call_started", {}, "tls-refused") + "\n").empty());
    REQUIRE(wait_until([&] { return read_lines(daemon.dead_letter()).size() == 1; }, 20s));
    const auto dead = boost::json::parse(read_lines(daemon.dead_letter()).at(0)).as_object();
    CHECK(dead.at("id").as_string() == "tls-refused");
    CHECK(receiver.requests().empty());  // no request ever crossed the refused handshake
    Refusal refusal{dead.at("failure").as_object(), daemon.log()};
    REQUIRE(daemon.stop());
    return refusal;
}

void check_refusal_block(const Refusal& refusal, const std::string& url, const std::string& code) {
    CHECK(refusal.failure.at("code").as_string() == code);
    CHECK_THAT(refusal.log,
               Catch::Contains("[WEBHOOK][CALL_STARTED] Retry failed\nWebhook Error:\nMessage: TLS certificate of "));
    CHECK_THAT(refusal.log,
               Catch::Contains("\nCode: " + code + "\nURL: " + redact_url(url) + "\nMethod: POST\nStatus: \n"));
    CHECK_THAT(refusal.log, !Catch::Contains("ECONNRESET"));
}

// Delivers `count` events of one call and checks that each arrived once, in order, at attempt 1.
void deliver_in_order(DaemonProcess& daemon, const ReceiverThread& receiver, unsigned count) {
    std::string input;
    for (unsigned i = 0; i < count; ++i) input += event_line(call, "transcription", std::to_string(i)) + "\n";
    CHECK(exchange(daemon.socket(), input, 30s).empty());
    REQUIRE(receiver.wait_for_requests(count, 60s));
    const auto requests = receiver.requests();
    REQUIRE(requests.size() == count);
    for (unsigned i = 0; i < count; ++i) {
        INFO("event " << i);
        CHECK(boost::json::parse(requests[i].body).at("payload").at("text").as_string() == std::to_string(i));
        CHECK(header(requests[i], "x-avr-webhook-attempt") == "1");
        CHECK(requests[i].status_sent == 200);
    }
}

}  // namespace

TEST_CASE("tls delivery: HTTPS to an IP address succeeds when ca_file trusts the test CA",
          "[integration][delivery][tls]") {
    const auto& pki = TestPki::shared();
    TempDir dir;
    ReceiverThread receiver(serving(pki.valid()));
    const std::string url = receiver.url("/hooks?tenant=1");
    REQUIRE_THAT(url, Catch::StartsWith("https://127.0.0.1:"));
    DaemonProcess daemon(dir, {"--url", url, "--ca-file", pki.ca_file().string(), "--secret", "s3cret"});
    REQUIRE(daemon.wait_ready());
    CHECK(exchange(daemon.socket(), event_line(call, "call_started", {}, "over-tls") + "\n").empty());
    REQUIRE(receiver.wait_for_requests(1, 20s));
    const auto request = receiver.requests().at(0);
    CHECK(request.target == "/hooks?tenant=1");
    CHECK(header(request, "x-avr-webhook-id") == "over-tls");
    CHECK(header(request, "x-avr-webhook-secret") == "s3cret");
    CHECK(request.status_sent == 200);
    REQUIRE(daemon.stop());
    CHECK(read_lines(daemon.dead_letter()).empty());
}

TEST_CASE("tls delivery: HTTPS to localhost is verified against the certificate's DNS name",
          "[integration][delivery][tls]") {
    const auto& pki = TestPki::shared();
    TempDir dir;
    ReceiverThread receiver(serving(pki.valid()));
    const std::string url = url_for_host(receiver, "localhost");
    DaemonProcess daemon(dir, {"--url", url, "--ca-file", pki.ca_file().string()});
    REQUIRE(daemon.wait_ready());
    CHECK(exchange(daemon.socket(), event_line(call, "call_started") + "\n").empty());
    REQUIRE(receiver.wait_for_requests(1, 20s));
    const auto request = receiver.requests().at(0);
    CHECK(header(request, "host") == "localhost:" + std::to_string(receiver.receiver().port()));
    CHECK(request.status_sent == 200);
    REQUIRE(daemon.stop());
    CHECK(read_lines(daemon.dead_letter()).empty());
}

TEST_CASE("tls delivery: without ca_file the test CA is untrusted and the event is dead-lettered",
          "[integration][delivery][tls]") {
    const auto& pki = TestPki::shared();
    ReceiverThread receiver(serving(pki.valid()));
    const std::string url = receiver.url();
    const Refusal refusal = refused_delivery(receiver, url, {});
    // The receiver sends only its leaf certificate, whose issuer is in no store the daemon reads.
    check_refusal_block(refusal, url, "UNABLE_TO_GET_ISSUER_CERT_LOCALLY");
    CHECK_THAT(std::string(refusal.failure.at("message").as_string()),
               Catch::Contains("unable to get local issuer certificate"));
    CHECK(refusal.failure.at("status").is_null());
    CHECK(refusal.failure.at("attempts").to_number<int>() == 1);
}

TEST_CASE("tls delivery: expired, wrong-host and foreign self-signed certificates are refused even with ca_file",
          "[integration][delivery][tls]") {
    const auto& pki = TestPki::shared();
    const std::vector<std::string> trust_ca{"--ca-file", pki.ca_file().string()};
    struct Case {
        const char* name;
        const CertificateFiles& served;
        std::string host;
        std::string code;
    };
    const Case cases[] = {
        {"expired", pki.expired(), "127.0.0.1", "CERT_HAS_EXPIRED"},
        {"wrong host, IP address", pki.wrong_host(), "127.0.0.1", "ERR_TLS_CERT_ALTNAME_INVALID"},
        {"wrong host, DNS name", pki.wrong_host(), "localhost", "ERR_TLS_CERT_ALTNAME_INVALID"},
        {"self-signed, not from the CA", pki.self_signed(), "127.0.0.1", "DEPTH_ZERO_SELF_SIGNED_CERT"},
    };
    for (const Case& scenario : cases) {
        INFO(scenario.name);
        ReceiverThread receiver(serving(scenario.served));
        const std::string url = url_for_host(receiver, scenario.host);
        check_refusal_block(refused_delivery(receiver, url, trust_ca), url, scenario.code);
    }
}

TEST_CASE("tls delivery: a self-signed certificate is refused untrusted and accepted as its own ca_file",
          "[integration][delivery][tls]") {
    const auto& pki = TestPki::shared();
    ReceiverThread receiver(serving(pki.self_signed()));
    SECTION("refused with the system store only") {
        const std::string url = receiver.url();
        check_refusal_block(refused_delivery(receiver, url, {}), url, "DEPTH_ZERO_SELF_SIGNED_CERT");
    }
    SECTION("accepted when its own certificate is the ca_file") {
        TempDir dir;
        DaemonProcess daemon(
            dir, {"--url", url_for_host(receiver, "localhost"), "--ca-file", pki.self_signed().cert.string()});
        REQUIRE(daemon.wait_ready());
        CHECK(exchange(daemon.socket(), event_line(call, "call_started") + "\n").empty());
        REQUIRE(receiver.wait_for_requests(1, 20s));
        CHECK(receiver.requests().at(0).status_sent == 200);
        REQUIRE(daemon.stop());
        CHECK(read_lines(daemon.dead_letter()).empty());
    }
}

TEST_CASE("tls delivery: tls_verify = false delivers to an untrusted receiver and warns at start",
          "[integration][delivery][tls]") {
    const auto& pki = TestPki::shared();
    TempDir dir;
    ReceiverThread receiver(serving(pki.self_signed()));
    DaemonProcess daemon(dir, {"--url", receiver.url(), "--tls-verify", "false"});
    REQUIRE(daemon.wait_ready());
    CHECK_THAT(daemon.log(), Catch::Contains("tls_verify = false") && Catch::Contains("NOT checked"));
    CHECK(exchange(daemon.socket(), event_line(call, "call_started") + "\n").empty());
    REQUIRE(receiver.wait_for_requests(1, 20s));
    CHECK(receiver.requests().at(0).status_sent == 200);
    REQUIRE(daemon.stop());
    CHECK(read_lines(daemon.dead_letter()).empty());
}

TEST_CASE("tls delivery: one call's events reuse one keep-alive connection over TLS and plain HTTP",
          "[integration][delivery][tls][keep-alive]") {
    const auto& pki = TestPki::shared();
    const bool tls = GENERATE(true, false);
    INFO((tls ? "https" : "http"));
    TempDir dir;
    ReceiverThread receiver(tls ? serving(pki.valid()) : ReceiverOptions{});
    DaemonProcess daemon(dir, patient_flags({"--url", receiver.url(), "--ca-file", pki.ca_file().string()}));
    REQUIRE(daemon.wait_ready());
    deliver_in_order(daemon, receiver, 200);
    CHECK(receiver.receiver().connections_accepted() == 1);
    REQUIRE(daemon.stop());
    CHECK(read_lines(daemon.dead_letter()).empty());
}

TEST_CASE("tls delivery: connections the receiver closes after each response are replaced without retries",
          "[integration][delivery][tls][keep-alive]") {
    const auto& pki = TestPki::shared();
    const bool tls = GENERATE(true, false);
    INFO((tls ? "https" : "http"));
    TempDir dir;
    ReceiverOptions options = tls ? serving(pki.valid()) : ReceiverOptions{};
    options.close_after_response = true;
    ReceiverThread receiver(options);
    DaemonProcess daemon(dir, patient_flags({"--url", receiver.url(), "--ca-file", pki.ca_file().string()}));
    REQUIRE(daemon.wait_ready());
    constexpr unsigned events = 60;
    deliver_in_order(daemon, receiver, events);
    CHECK(receiver.receiver().connections_accepted() == events);
    REQUIRE(daemon.stop());
    CHECK(read_lines(daemon.dead_letter()).empty());
    CHECK_THAT(daemon.log(), !Catch::Contains("retrying in"));
}

TEST_CASE("tls delivery: a pooled connection the receiver closed while idle is replaced within attempt 1",
          "[integration][delivery][tls][keep-alive]") {
    const auto& pki = TestPki::shared();
    const bool tls = GENERATE(true, false);
    INFO((tls ? "https" : "http"));
    const ReceiverOptions options = tls ? serving(pki.valid()) : ReceiverOptions{};
    TempDir dir;
    auto first = std::make_unique<ReceiverThread>(options);
    const unsigned short port = first->receiver().port();
    // One quick retry allowed, so that a daemon reusing the dead connection would show up as
    // attempt 2 and a logged retry rather than as a lost event.
    DaemonProcess daemon(dir, patient_flags({"--url", first->url(), "--ca-file", pki.ca_file().string(), "--log-level",
                                             "debug", "--retry", "1", "--retry-base", "20ms"}));
    REQUIRE(daemon.wait_ready());
    CHECK(exchange(daemon.socket(), event_line(call, "call_started", {}, "before-restart") + "\n").empty());
    REQUIRE(first->wait_for_requests(1, 20s));
    // The daemon keeps that connection for the next event. A receiver restart (or an idle
    // timeout) closes it on the receiver's side; a new receiver then serves the same port.
    first.reset();
    ReceiverThread second(options, "127.0.0.1:" + std::to_string(port));
    CHECK(exchange(daemon.socket(), event_line(call, "transcription", "after", "after-restart") + "\n").empty());
    REQUIRE(second.wait_for_requests(1, 20s));
    const auto request = second.requests().at(0);
    CHECK(header(request, "x-avr-webhook-id") == "after-restart");
    CHECK(header(request, "x-avr-webhook-attempt") == "1");
    CHECK(request.status_sent == 200);
    CHECK(second.receiver().connections_accepted() == 1);
    REQUIRE(daemon.stop());
    CHECK(read_lines(daemon.dead_letter()).empty());
    const auto log = daemon.log();
    CHECK_THAT(log, !Catch::Contains("retrying in") && !Catch::Contains("attempt 1 failed"));
    CHECK_THAT(log, Catch::Contains("keep-alive connection the server had closed") ||
                        Catch::Contains("reused connection was closed by the server"));
}

// Issue 18, point 5: a CA bundle replaced at the same path (certificate rotation) is read again
// by a reload, although ca_file itself did not change.
TEST_CASE("tls delivery: SIGHUP re-reads a CA bundle replaced at the same path",
          "[integration][delivery][tls][reload]") {
    const auto& pki = TestPki::shared();
    TempDir dir;
    const auto bundle = dir / "bundle.pem";
    std::filesystem::copy_file(pki.ca_file(), bundle);  // trusts receiver A (issued by the test CA)
    auto first = std::make_unique<ReceiverThread>(serving(pki.valid()));
    const std::string url = first->url();
    const auto listen = "127.0.0.1:" + std::to_string(first->receiver().port());
    const auto config = dir / "avr-webhookd.conf";
    write_config(config, "url = " + url + "\nca_file = " + bundle.string() + "\nretry = 0\ntimeout = 10s\n");
    auto daemon = DaemonProcess::with_config_file(dir, config, {});
    REQUIRE(daemon.wait_ready());
    CHECK(exchange(daemon.socket(), event_line(call, "call_started", {}, "to-a") + "\n").empty());
    REQUIRE(first->wait_for_requests(1, 20s));

    // Receiver B, self-signed, takes A's port; the bundle now trusts B only, at the same path.
    first.reset();
    ReceiverThread second(serving(pki.self_signed()), listen);
    const auto replacement = dir / "bundle.pem.new";
    std::filesystem::copy_file(pki.self_signed().cert, replacement);
    std::filesystem::rename(replacement, bundle);
    REQUIRE(reload(daemon, "reload: configuration applied"));

    CHECK(exchange(daemon.socket(), event_line(call, "call_ended", {}, "to-b") + "\n").empty());
    REQUIRE(second.wait_for_requests(1, 20s));
    CHECK(header(second.requests().at(0), "x-avr-webhook-id") == "to-b");
    CHECK(second.requests().at(0).status_sent == 200);
    REQUIRE(daemon.stop());
    CHECK(read_lines(daemon.dead_letter()).empty());  // verified against B at its first attempt
}
