#pragma once

// TLS pieces of the HTTP client: the verification callback and the names of verification errors.

#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/verify_context.hpp>

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

}  // namespace avr_webhookd::detail
