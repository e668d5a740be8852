#pragma once

// TLS pieces of the HTTP client: the verification callback and the names of verification errors.

#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/verify_context.hpp>

#include <openssl/ssl.h>

#include <string>
#include <string_view>

namespace avr_webhookd::detail {

// Node-style code for an OpenSSL verification result: CERT_HAS_EXPIRED, ERR_TLS_CERT_ALTNAME_INVALID ...
std::string_view tls_code(long verify_result);

bool is_ip_literal(const std::string& host);

// Asio's host_name_verification, plus an error code OpenSSL can report when the name is wrong.
struct VerifyHostName {
    boost::asio::ssl::host_name_verification check;
    bool ip_literal;
    bool operator()(bool preverified, boost::asio::ssl::verify_context& context) const;
};

// Who the server must be, set on a client stream before its handshake: SNI (not for an IP
// literal, which TLS does not allow there) and, when `verify`, the check of the certificate's
// names against `host`. False when SNI cannot be set.
template <class SslStream>
bool set_server_identity(SslStream& stream, const std::string& host, bool verify) {
    const bool ip_literal = is_ip_literal(host);
    if (!ip_literal && !SSL_set_tlsext_host_name(stream.native_handle(), host.c_str())) return false;
    if (verify) stream.set_verify_callback(VerifyHostName{boost::asio::ssl::host_name_verification(host), ip_literal});
    return true;
}

}  // namespace avr_webhookd::detail
