// How the I/O errors of an attempt's phases (resolve, connect, TLS handshake, POST) become the
// AttemptOutcome the retry policy and the failure log use.

#include <avr_webhookd/delivery/http_client.hpp>
#include <avr_webhookd/delivery/tls_client.hpp>

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>

#include <openssl/x509.h>

namespace avr_webhookd {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;

AttemptOutcome outcome_from_error(const boost::system::error_code& ec, std::string_view phase, std::string_view peer,
                                  std::chrono::milliseconds timeout) {
    AttemptOutcome outcome;
    const std::string where = std::string(phase) + " " + std::string(peer);
    if (ec == beast::error::timeout || ec == asio::error::timed_out || ec == asio::error::operation_aborted) {
        outcome.kind = FailureKind::timeout;
        outcome.code = "ETIMEDOUT";
        outcome.message = "timeout of " + std::to_string(timeout.count()) + "ms exceeded (" + std::string(phase) + ")";
    } else if (ec == asio::error::connection_refused) {
        outcome.kind = FailureKind::connect_refused;
        outcome.code = "ECONNREFUSED";
        outcome.message = "connect ECONNREFUSED " + std::string(peer);
    } else if (ec == asio::error::host_not_found || ec == asio::error::host_not_found_try_again ||
               ec == asio::error::no_data) {
        outcome.kind = FailureKind::dns;
        outcome.code = ec == asio::error::host_not_found_try_again ? "EAI_AGAIN" : "ENOTFOUND";
        outcome.message = "getaddrinfo " + outcome.code + " " + std::string(peer);
    } else if (ec == asio::error::eof || ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
               ec == ssl::error::stream_truncated || ec == http::error::end_of_stream) {
        outcome.kind = FailureKind::reset;
        outcome.code = "ECONNRESET";
        outcome.message =
            ec == asio::error::eof || ec == ssl::error::stream_truncated || ec == http::error::end_of_stream
                ? "socket hang up: the server closed the connection without a response (" + where + ")"
                : where + " ECONNRESET";
    } else if (ec == asio::error::network_unreachable || ec == asio::error::host_unreachable) {
        outcome.kind = FailureKind::connect_failed;
        outcome.code = ec == asio::error::network_unreachable ? "ENETUNREACH" : "EHOSTUNREACH";
        outcome.message = "connect " + outcome.code + " " + std::string(peer);
    } else if (ec.category() == make_error_code(http::error::end_of_stream).category()) {
        outcome.kind = FailureKind::protocol;
        outcome.code = "EPROTO";
        outcome.message = "invalid HTTP response from " + std::string(peer) + ": " + ec.message();
    } else if (ec.category() == asio::error::get_ssl_category() || ec.category() == ssl::error::get_stream_category()) {
        outcome.kind = FailureKind::tls;
        outcome.code = "ERR_TLS_HANDSHAKE";
        outcome.message = "TLS error with " + std::string(peer) + ": " + ec.message();
    } else {
        outcome.kind = FailureKind::connect_failed;
        outcome.code = "E" + std::to_string(ec.value());
        outcome.message = where + " failed: " + ec.message();
    }
    return outcome;
}

AttemptOutcome outcome_from_handshake(const boost::system::error_code& ec, long verify_result, std::string_view peer,
                                      std::chrono::milliseconds timeout) {
    if (ec == beast::error::timeout || verify_result == X509_V_OK)
        return outcome_from_error(ec, "TLS handshake with", peer, timeout);
    AttemptOutcome outcome;
    outcome.kind = FailureKind::tls;
    outcome.code = detail::tls_code(verify_result);
    outcome.message =
        "TLS certificate of " + std::string(peer) + " rejected: " + X509_verify_cert_error_string(verify_result);
    return outcome;
}

}  // namespace avr_webhookd
