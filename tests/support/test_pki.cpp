#include "support/test_pki.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace avr_webhookd::test {

namespace {

struct OpenSslFree {
    void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
    void operator()(X509* cert) const { X509_free(cert); }
    void operator()(X509_EXTENSION* extension) const { X509_EXTENSION_free(extension); }
    void operator()(BIO* bio) const { BIO_free(bio); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, OpenSslFree>;
using CertPtr = std::unique_ptr<X509, OpenSslFree>;

constexpr long one_hour = 3600;
constexpr long one_day = 24 * one_hour;
constexpr const char* local_names = "IP:127.0.0.1,IP:::1,DNS:localhost";

void check(bool ok, const char* what) {
    if (!ok) throw std::runtime_error(std::string("test PKI: ") + what + " failed");
}

KeyPtr make_key() {
    KeyPtr key{EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")};
    check(key != nullptr, "EC key generation");
    return key;
}

struct CertificateRequest {
    std::string common_name;
    long valid_from = -one_hour;  // seconds from now
    long valid_until = 30 * one_day;
    // Extensions in OpenSSL's configuration syntax; the key identifiers are always added.
    std::vector<std::pair<int, std::string>> extensions;
};

void add_extension(X509* cert, X509V3_CTX& context, int nid, const std::string& value) {
    std::unique_ptr<X509_EXTENSION, OpenSslFree> extension{X509V3_EXT_nconf_nid(nullptr, &context, nid, value.c_str())};
    check(extension != nullptr, "building a certificate extension");
    check(X509_add_ext(cert, extension.get(), -1) == 1, "X509_add_ext");
}

// Issues a certificate for `key`; self-signed when `issuer` is null.
CertPtr issue(const CertificateRequest& request, long serial, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key) {
    CertPtr cert{X509_new()};
    check(cert != nullptr, "X509_new");
    check(X509_set_version(cert.get(), X509_VERSION_3) == 1, "X509_set_version");
    check(ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial) == 1, "setting the serial");
    check(X509_gmtime_adj(X509_getm_notBefore(cert.get()), request.valid_from) != nullptr, "notBefore");
    check(X509_gmtime_adj(X509_getm_notAfter(cert.get()), request.valid_until) != nullptr, "notAfter");
    check(X509_set_pubkey(cert.get(), key) == 1, "X509_set_pubkey");
    X509_NAME* subject = X509_get_subject_name(cert.get());
    check(X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_ASC,
                                     reinterpret_cast<const unsigned char*>("avr-webhookd tests"), -1, -1, 0) == 1,
          "subject O");
    check(
        X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>(request.common_name.c_str()), -1, -1, 0) == 1,
        "subject CN");
    X509* signer = issuer ? issuer : cert.get();
    check(X509_set_issuer_name(cert.get(), X509_get_subject_name(signer)) == 1, "X509_set_issuer_name");

    X509V3_CTX context;
    X509V3_set_ctx_nodb(&context);
    X509V3_set_ctx(&context, signer, cert.get(), nullptr, nullptr, 0);
    // The subject key id comes first: a self-signed certificate's authority key id refers to it.
    add_extension(cert.get(), context, NID_subject_key_identifier, "hash");
    add_extension(cert.get(), context, NID_authority_key_identifier, "keyid:always");
    for (const auto& [nid, value] : request.extensions) add_extension(cert.get(), context, nid, value);

    check(X509_sign(cert.get(), issuer ? issuer_key : key, EVP_sha256()) > 0, "X509_sign");
    return cert;
}

std::unique_ptr<BIO, OpenSslFree> open_for_writing(const std::filesystem::path& path) {
    std::unique_ptr<BIO, OpenSslFree> bio{BIO_new_file(path.c_str(), "w")};
    check(bio != nullptr, ("opening " + path.string()).c_str());
    return bio;
}

void write_certificate(const std::filesystem::path& path, X509* cert) {
    auto bio = open_for_writing(path);
    check(PEM_write_bio_X509(bio.get(), cert) == 1, "PEM_write_bio_X509");
}

void write_key(const std::filesystem::path& path, EVP_PKEY* key) {
    auto bio = open_for_writing(path);
    check(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) == 1,
          "PEM_write_bio_PrivateKey");
}

CertificateFiles write_pair(const std::filesystem::path& directory, const std::string& name, X509* cert,
                            EVP_PKEY* key) {
    CertificateFiles files{directory / (name + ".pem"), directory / (name + "-key.pem")};
    write_certificate(files.cert, cert);
    write_key(files.key, key);
    return files;
}

std::filesystem::path make_temporary_directory() {
    std::string pattern = (std::filesystem::temp_directory_path() / "avr-webhookd-pki-XXXXXX").string();
    if (!mkdtemp(pattern.data())) throw std::system_error(errno, std::generic_category(), "mkdtemp");
    return pattern;
}

std::vector<std::pair<int, std::string>> server_extensions(const std::string& names) {
    return {{NID_basic_constraints, "critical,CA:FALSE"},
            {NID_key_usage, "critical,digitalSignature"},
            {NID_ext_key_usage, "serverAuth"},
            {NID_subject_alt_name, names}};
}

}  // namespace

TestPki::TestPki() : directory_(make_temporary_directory()) {
    try {
        long serial = 1;
        const KeyPtr ca_key = make_key();
        const CertPtr ca =
            issue({"avr-webhookd test CA",
                   -one_hour,
                   30 * one_day,
                   {{NID_basic_constraints, "critical,CA:TRUE"}, {NID_key_usage, "critical,keyCertSign,cRLSign"}}},
                  serial++, ca_key.get(), nullptr, nullptr);
        ca_file_ = directory_ / "ca.pem";
        write_certificate(ca_file_, ca.get());

        const auto issue_server = [&](const std::string& file_name, CertificateRequest request) {
            const KeyPtr key = make_key();
            const CertPtr cert = issue(request, serial++, key.get(), ca.get(), ca_key.get());
            return write_pair(directory_, file_name, cert.get(), key.get());
        };
        valid_ = issue_server("server", {"localhost", -one_hour, 30 * one_day, server_extensions(local_names)});
        expired_ = issue_server("expired", {"localhost", -30 * one_day, -one_day, server_extensions(local_names)});
        wrong_host_ = issue_server("wrong-host",
                                   {"wrong.example", -one_hour, 30 * one_day, server_extensions("DNS:wrong.example")});
        client_ = issue_server("client", {"avr-webhookd test client",
                                          -one_hour,
                                          30 * one_day,
                                          {{NID_basic_constraints, "critical,CA:FALSE"},
                                           {NID_key_usage, "critical,digitalSignature"},
                                           {NID_ext_key_usage, "clientAuth"}}});

        // Like `openssl req -x509`: a self-signed certificate is its own CA.
        const KeyPtr self_key = make_key();
        const CertPtr self = issue({"localhost",
                                    -one_hour,
                                    30 * one_day,
                                    {{NID_basic_constraints, "critical,CA:TRUE"}, {NID_subject_alt_name, local_names}}},
                                   serial++, self_key.get(), nullptr, nullptr);
        self_signed_ = write_pair(directory_, "self-signed", self.get(), self_key.get());
    } catch (...) {
        std::error_code ignored;
        std::filesystem::remove_all(directory_, ignored);
        throw;
    }
}

TestPki::~TestPki() {
    std::error_code ignored;
    std::filesystem::remove_all(directory_, ignored);
}

const TestPki& TestPki::shared() {
    static const TestPki pki;
    return pki;
}

}  // namespace avr_webhookd::test
