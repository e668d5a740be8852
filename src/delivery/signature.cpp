#include "avr_webhookd/delivery/signature.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <array>
#include <charconv>
#include <initializer_list>
#include <memory>
#include <stdexcept>

namespace avr_webhookd {

namespace {

constexpr std::string_view standard_secret_prefix = "whsec_";
constexpr std::size_t sha256_size = 32;
using Digest = std::array<unsigned char, sha256_size>;

struct MacFree {
    void operator()(EVP_MAC* mac) const { EVP_MAC_free(mac); }
    void operator()(EVP_MAC_CTX* ctx) const { EVP_MAC_CTX_free(ctx); }
};

// Fetching an algorithm is costly in OpenSSL 3; it is done once and the result never changes.
EVP_MAC* hmac_algorithm() {
    static const std::unique_ptr<EVP_MAC, MacFree> mac{EVP_MAC_fetch(nullptr, "HMAC", nullptr)};
    if (!mac) throw std::runtime_error("OpenSSL: HMAC is not available");
    return mac.get();
}

// HMAC-SHA256 of the concatenation of `parts`, without building the concatenation.
Digest hmac_sha256(std::string_view key, std::initializer_list<std::string_view> parts) {
    std::unique_ptr<EVP_MAC_CTX, MacFree> ctx{EVP_MAC_CTX_new(hmac_algorithm())};
    if (!ctx) throw std::runtime_error("OpenSSL: EVP_MAC_CTX_new failed");
    char digest_name[] = "SHA256";
    const OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
        OSSL_PARAM_construct_end(),
    };
    // A null key pointer would mean "keep the previous key"; an empty key is a valid HMAC key.
    static const unsigned char no_key_bytes = 0;
    const auto* key_bytes = key.empty() ? &no_key_bytes : reinterpret_cast<const unsigned char*>(key.data());
    if (EVP_MAC_init(ctx.get(), key_bytes, key.size(), params) != 1)
        throw std::runtime_error("OpenSSL: EVP_MAC_init failed");
    for (std::string_view part : parts) {
        if (!part.empty() &&
            EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(part.data()), part.size()) != 1)
            throw std::runtime_error("OpenSSL: EVP_MAC_update failed");
    }
    Digest digest{};
    std::size_t length = 0;
    if (EVP_MAC_final(ctx.get(), digest.data(), &length, digest.size()) != 1 || length != digest.size())
        throw std::runtime_error("OpenSSL: EVP_MAC_final failed");
    return digest;
}

std::string_view as_chars(const Digest& digest) {
    return {reinterpret_cast<const char*>(digest.data()), digest.size()};
}

std::array<char, 2 * sha256_size> lower_hex(const Digest& digest) {
    static constexpr char hex_digits[] = "0123456789abcdef";
    std::array<char, 2 * sha256_size> out{};
    for (std::size_t i = 0; i < digest.size(); ++i) {
        out[2 * i] = hex_digits[digest[i] >> 4];
        out[2 * i + 1] = hex_digits[digest[i] & 0x0f];
    }
    return out;
}

bool equal_constant_time(std::string_view a, std::string_view b) {
    // The length is not secret (a hex or base64 digest has a fixed one); the contents are.
    return a.size() == b.size() && (a.empty() || CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0);
}

// Splits on runs of spaces, skipping empty pieces.
std::vector<std::string_view> split_on_spaces(std::string_view text) {
    std::vector<std::string_view> pieces;
    std::size_t position = 0;
    while (position < text.size()) {
        const std::size_t start = text.find_first_not_of(' ', position);
        if (start == std::string_view::npos) break;
        std::size_t end = text.find(' ', start);
        if (end == std::string_view::npos) end = text.size();
        pieces.push_back(text.substr(start, end - start));
        position = end;
    }
    return pieces;
}

// The signing key of one standard-mode secret: base64 after `whsec_`, else the raw bytes.
std::optional<std::string> standard_key(std::string_view secret) {
    if (secret.starts_with(standard_secret_prefix)) {
        auto key = base64_decode(secret.substr(standard_secret_prefix.size()));
        if (!key || key->empty()) return std::nullopt;
        return key;
    }
    return std::string(secret);
}

std::string standard_signature(std::string_view key, std::string_view event_id, std::string_view timestamp,
                               std::string_view body) {
    const Digest digest = hmac_sha256(key, {event_id, ".", timestamp, ".", body});
    return "v1," + base64_encode(as_chars(digest));
}

Verification failure(std::string reason) { return {false, std::move(reason)}; }

}  // namespace

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
    const auto hex = lower_hex(hmac_sha256(key, {data}));
    return std::string(hex.data(), hex.size());
}

std::string base64_encode(std::string_view bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    const int length =
        EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                        reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(length));
    return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
    const auto sextet = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        if (c == '+') return 62;
        if (c == '/') return 63;
        return -1;
    };
    std::string_view digits = text;
    std::size_t padding = 0;
    while (padding < 2 && digits.ends_with('=')) {
        digits.remove_suffix(1);
        ++padding;
    }
    if (padding > 0 && text.size() % 4 != 0) return std::nullopt;
    if (digits.size() % 4 == 1) return std::nullopt;

    std::string out;
    out.reserve(digits.size() * 3 / 4);
    std::uint32_t accumulator = 0;
    int bits = 0;
    for (char c : digits) {
        const int value = sextet(c);
        if (value < 0) return std::nullopt;
        accumulator = (accumulator << 6) | static_cast<std::uint32_t>(value);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((accumulator >> bits) & 0xff));
        }
    }
    return out;
}

Signer::Signer(SignatureMode mode, std::string secret) : mode_(mode), secret_(std::move(secret)) {
    if (auto error = validate(mode_, secret_)) throw std::invalid_argument(*error);
    if (mode_ == SignatureMode::standard) {
        for (std::string_view piece : split_on_spaces(secret_)) standard_keys_.push_back(*standard_key(piece));
    }
}

std::optional<std::string> Signer::validate(SignatureMode mode, std::string_view secret) {
    if (secret.empty()) return std::nullopt;
    switch (mode) {
    case SignatureMode::plain:
        // The secret travels as a header value: it must not be able to end the header line,
        // and receivers trim surrounding blanks before comparing.
        for (char c : secret) {
            const auto byte = static_cast<unsigned char>(c);
            if (byte < 0x20 || byte >= 0x7f)
                return "the secret must be printable ASCII for signature mode plain "
                       "(it is sent as a header value)";
        }
        if (secret.front() == ' ' || secret.back() == ' ')
            return "the secret must not start or end with a space for signature mode plain";
        return std::nullopt;
    case SignatureMode::hmac_sha256:
        return std::nullopt;
    case SignatureMode::standard: {
        const auto pieces = split_on_spaces(secret);
        if (pieces.empty()) return "the secret is only spaces";
        for (std::string_view piece : pieces) {
            if (!standard_key(piece))
                return "the secret '" + std::string(piece.substr(0, standard_secret_prefix.size())) +
                       "...' has the whsec_ prefix but is not valid non-empty base64 after it";
        }
        return std::nullopt;
    }
    }
    return "unknown signature mode";
}

void Signer::headers(std::string_view event_id, std::string_view body, std::int64_t unix_seconds,
                     HeaderList& out) const {
    if (secret_.empty()) return;
    switch (mode_) {
    case SignatureMode::plain:
        out.add(secret_header, secret_);
        return;
    case SignatureMode::hmac_sha256: {
        const auto hex = lower_hex(hmac_sha256(secret_, {body}));
        out.add(secret_header, std::string_view(hex.data(), hex.size()));
        return;
    }
    case SignatureMode::standard: {
        char digits[24];  // a signed 64-bit number has at most 20 characters
        const auto end = std::to_chars(digits, digits + sizeof digits, unix_seconds).ptr;
        const std::string_view timestamp(digits, static_cast<std::size_t>(end - digits));
        std::string signatures;
        for (const std::string& key : standard_keys_) {
            if (!signatures.empty()) signatures.push_back(' ');
            signatures += standard_signature(key, event_id, timestamp, body);
        }
        out.add(standard_id_header, event_id);
        out.add(standard_timestamp_header, timestamp);
        out.add(standard_signature_header, signatures);
        return;
    }
    }
}

Verification verify(SignatureMode mode, std::string_view secret, const HeaderLookup& header, std::string_view body,
                    std::int64_t now_unix_seconds, std::chrono::seconds tolerance) {
    if (secret.empty()) return {true, {}};
    switch (mode) {
    case SignatureMode::plain:
    case SignatureMode::hmac_sha256: {
        const auto presented = header(secret_header);
        if (!presented) return failure("missing " + std::string(secret_header) + " header");
        const std::string expected = mode == SignatureMode::plain ? std::string(secret) : hmac_sha256_hex(secret, body);
        if (!equal_constant_time(*presented, expected))
            return failure(std::string(secret_header) + (mode == SignatureMode::plain
                                                             ? " does not match the secret"
                                                             : " does not match the HMAC-SHA256 of the body"));
        return {true, {}};
    }
    case SignatureMode::standard: {
        const auto id = header(standard_id_header);
        const auto timestamp_text = header(standard_timestamp_header);
        const auto signatures = header(standard_signature_header);
        if (!id || !timestamp_text || !signatures)
            return failure("missing webhook-id, webhook-timestamp or webhook-signature header");
        std::int64_t timestamp = 0;
        const auto* end = timestamp_text->data() + timestamp_text->size();
        const auto [stop, error] = std::from_chars(timestamp_text->data(), end, timestamp);
        if (error != std::errc{} || stop != end) return failure("webhook-timestamp is not an integer");
        // Any 64-bit value may arrive: the difference is checked, never allowed to overflow.
        std::int64_t skew = 0;
        if (__builtin_sub_overflow(now_unix_seconds, timestamp, &skew))
            return failure("webhook-timestamp is " + std::to_string(timestamp) + ", far beyond the tolerance");
        if (skew > tolerance.count() || skew < -tolerance.count())
            return failure("webhook-timestamp is " + std::to_string(skew) + " s away from now, beyond the tolerance");
        bool matched = false;
        for (std::string_view piece : split_on_spaces(secret)) {
            const auto key = standard_key(piece);
            if (!key) return failure("the configured secret is not valid");
            const std::string expected = standard_signature(*key, *id, *timestamp_text, body);
            for (std::string_view presented : split_on_spaces(*signatures))
                matched |= equal_constant_time(presented, expected);
        }
        if (!matched) return failure("no webhook-signature entry matches");
        return {true, {}};
    }
    }
    return failure("unknown signature mode");
}

}  // namespace avr_webhookd
