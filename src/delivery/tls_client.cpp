#include <avr_webhookd/delivery/tls_client.hpp>
#include <avr_webhookd/delivery/http_client.hpp>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/context.hpp>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <fstream>
#include <iterator>
#include <stdexcept>

namespace avr_webhookd {

namespace ssl = boost::asio::ssl;

namespace detail {

std::string_view tls_code(long verify_result) {
    switch (verify_result) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
        return "CERT_HAS_EXPIRED";
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return "CERT_NOT_YET_VALID";
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
        return "DEPTH_ZERO_SELF_SIGNED_CERT";
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        return "SELF_SIGNED_CERT_IN_CHAIN";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
        return "UNABLE_TO_GET_ISSUER_CERT_LOCALLY";
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        return "UNABLE_TO_VERIFY_LEAF_SIGNATURE";
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        return "ERR_TLS_CERT_ALTNAME_INVALID";
    case X509_V_ERR_CERT_REVOKED:
        return "CERT_REVOKED";
    default:
        return "ERR_TLS_HANDSHAKE";
    }
}

bool is_ip_literal(const std::string& host) {
    boost::system::error_code ec;
    boost::asio::ip::make_address(host, ec);
    return !ec;
}

bool VerifyHostName::operator()(bool preverified, ssl::verify_context& context) const {
    if (check(preverified, context)) return true;
    if (preverified)
        X509_STORE_CTX_set_error(context.native_handle(),
                                 ip_literal ? X509_V_ERR_IP_ADDRESS_MISMATCH : X509_V_ERR_HOSTNAME_MISMATCH);
    return false;
}

}  // namespace detail

std::shared_ptr<ssl::context> make_tls_client_context(bool verify, const std::string& ca_file) {
    auto context = std::make_shared<ssl::context>(ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_2_VERSION);
    context->set_options(ssl::context::default_workarounds | ssl::context::no_compression);
    context->set_verify_mode(verify ? ssl::verify_peer : ssl::verify_none);
    context->set_default_verify_paths();
    if (!ca_file.empty()) {
        boost::system::error_code ec;
        context->load_verify_file(ca_file, ec);
        if (ec) throw std::runtime_error("cannot load ca_file " + ca_file + ": " + ec.message());
    }
    return context;
}

std::string ca_file_fingerprint(const std::string& ca_file) {
    if (ca_file.empty()) return {};
    std::ifstream file(ca_file, std::ios::binary);
    if (!file) return {};
    const std::string contents{std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    if (!EVP_Digest(contents.data(), contents.size(), digest, &size, EVP_sha256(), nullptr)) return {};
    return std::string(reinterpret_cast<const char*>(digest), size);
}

}  // namespace avr_webhookd
