#include <avr_webhookd/delivery/nkey.hpp>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

namespace avr_webhookd {

namespace {

constexpr std::uint8_t prefix_seed = 18 << 3;  // 'S'
constexpr std::uint8_t prefix_user = 20 << 3;  // 'U'
constexpr std::size_t key_size = 32;
constexpr std::string_view base32_alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

std::optional<std::string> fail(std::string* error, std::string reason) {
    if (error) *error = std::move(reason);
    return std::nullopt;
}

std::uint16_t crc16_xmodem(const std::uint8_t* data, std::size_t size) {
    std::uint16_t crc = 0;
    for (std::size_t i = 0; i < size; ++i) {
        crc = static_cast<std::uint16_t>(crc ^ (data[i] << 8));
        for (int bit = 0; bit < 8; ++bit)
            crc = static_cast<std::uint16_t>(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
}

// Wiped on destruction: it holds the private seed.
struct SecretBytes {
    std::vector<std::uint8_t> bytes;
    ~SecretBytes() { OPENSSL_cleanse(bytes.data(), bytes.size()); }
};

bool base32_decode(std::string_view text, SecretBytes& out) {
    std::uint32_t buffer = 0;
    int bits = 0;
    for (char c : text) {
        const auto value = base32_alphabet.find(c);
        if (value == std::string_view::npos) return false;
        buffer = (buffer << 5) | static_cast<std::uint32_t>(value);
        bits += 5;
        if (bits >= 8) {
            bits -= 8;
            out.bytes.push_back(static_cast<std::uint8_t>(buffer >> bits));
        }
    }
    return true;
}

std::string base32_encode(const std::vector<std::uint8_t>& bytes) {
    std::string out;
    std::uint32_t buffer = 0;
    int bits = 0;
    for (auto byte : bytes) {
        buffer = (buffer << 8) | byte;
        bits += 8;
        while (bits >= 5) {
            bits -= 5;
            out.push_back(base32_alphabet[(buffer >> bits) & 31]);
        }
    }
    if (bits > 0) out.push_back(base32_alphabet[(buffer << (5 - bits)) & 31]);
    return out;
}

std::optional<std::array<std::uint8_t, key_size>> ed25519_public_key(const std::uint8_t* seed) {
    const std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
        EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed, key_size), &EVP_PKEY_free);
    std::array<std::uint8_t, key_size> public_key{};
    std::size_t size = public_key.size();
    if (!key || EVP_PKEY_get_raw_public_key(key.get(), public_key.data(), &size) != 1 || size != key_size)
        return std::nullopt;
    return public_key;
}

}  // namespace

std::optional<std::string> nkey_user_public_key(std::string_view seed, std::string* error) {
    SecretBytes raw;
    if (!seed.starts_with("SU") || !base32_decode(seed, raw) || raw.bytes.size() != 2 + key_size + 2)
        return fail(error, "not an NKey user seed (a line of 58 characters starting with SU)");
    const auto crc = static_cast<std::uint16_t>(raw.bytes[34] | (raw.bytes[35] << 8));
    if (crc16_xmodem(raw.bytes.data(), 34) != crc) return fail(error, "the NKey seed's checksum is wrong");
    const std::uint8_t kind = raw.bytes[0] & 248;
    const auto prefix = static_cast<std::uint8_t>(((raw.bytes[0] & 7) << 5) | ((raw.bytes[1] & 248) >> 3));
    if (kind != prefix_seed || prefix != prefix_user) return fail(error, "the NKey seed is not a user seed (SU...)");
    const auto public_key = ed25519_public_key(raw.bytes.data() + 2);
    if (!public_key) return fail(error, "OpenSSL could not derive the NKey's Ed25519 public key");
    std::vector<std::uint8_t> encoded{prefix_user};
    encoded.insert(encoded.end(), public_key->begin(), public_key->end());
    const auto public_crc = crc16_xmodem(encoded.data(), encoded.size());
    encoded.push_back(static_cast<std::uint8_t>(public_crc & 0xff));
    encoded.push_back(static_cast<std::uint8_t>(public_crc >> 8));
    return base32_encode(encoded);
}

std::optional<std::string> nkey_user_public_key_from_file_text(std::string_view text, std::string* error) {
    while (!text.empty()) {
        const auto end = text.find('\n');
        auto line = text.substr(0, end);
        line.remove_prefix(std::min(line.find_first_not_of(" \t"), line.size()));
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
            line.remove_suffix(1);
        if (line.starts_with("SU")) return nkey_user_public_key(line, error);
        if (end == std::string_view::npos) break;
        text.remove_prefix(end + 1);
    }
    return fail(error, "no NKey user seed in it (a line starting with SU)");
}

}  // namespace avr_webhookd
