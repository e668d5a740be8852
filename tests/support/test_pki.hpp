#pragma once

#include <filesystem>

namespace avr_webhookd::test {

struct CertificateFiles {
    std::filesystem::path cert;  // PEM certificate
    std::filesystem::path key;   // PEM private key (EC P-256, unencrypted)
};

// A throw-away PKI written to a fresh temporary directory, made with OpenSSL's API at test time:
// a CA and server certificates for TLS tests. Server certificates carry SANs, not only a CN.
class TestPki {
public:
    TestPki();   // creates the directory and every file below (throws std::runtime_error)
    ~TestPki();  // removes the directory
    TestPki(const TestPki&) = delete;
    TestPki& operator=(const TestPki&) = delete;

    // One instance for the whole test run, made on first use.
    static const TestPki& shared();

    const std::filesystem::path& directory() const { return directory_; }
    const std::filesystem::path& ca_file() const { return ca_file_; }  // ca.pem, the CA to trust

    // Issued by the CA, SAN IP:127.0.0.1, IP:::1 and DNS:localhost, valid from an hour ago for 30 days.
    const CertificateFiles& valid() const { return valid_; }
    // Issued by the CA for the same names, but expired yesterday.
    const CertificateFiles& expired() const { return expired_; }
    // Issued by the CA, currently valid, SAN only DNS:wrong.example.
    const CertificateFiles& wrong_host() const { return wrong_host_; }
    // Self-signed for 127.0.0.1/localhost, not from the CA (trusting its own cert file works).
    const CertificateFiles& self_signed() const { return self_signed_; }
    // Issued by the CA for TLS clients (extended key usage clientAuth), for mutual TLS.
    const CertificateFiles& client() const { return client_; }

private:
    std::filesystem::path directory_;
    std::filesystem::path ca_file_;
    CertificateFiles valid_, expired_, wrong_host_, self_signed_, client_;
};

}  // namespace avr_webhookd::test
