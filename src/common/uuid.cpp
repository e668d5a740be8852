#include <avr_webhookd/common/uuid.hpp>

namespace avr_webhookd {

bool is_canonical_uuid(std::string_view text) {
    if (text.size() != 36) return false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return true;
}

namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return c - 'A' + 10;  // is_canonical_uuid admitted only hex digits
}

}  // namespace

std::optional<UuidBytes> uuid_bytes(std::string_view text) {
    if (!is_canonical_uuid(text)) return std::nullopt;
    UuidBytes bytes{};
    std::size_t byte = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '-') continue;
        const int high = hex_value(text[i]);
        const int low = hex_value(text[++i]);
        bytes[byte++] = static_cast<std::uint8_t>(high << 4 | low);
    }
    return bytes;
}

std::string uuid_text(const UuidBytes& bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string text;
    text.reserve(36);
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) text.push_back('-');
        text.push_back(digits[bytes[i] >> 4]);
        text.push_back(digits[bytes[i] & 0xF]);
    }
    return text;
}

UuidGenerator::UuidGenerator() {
    std::random_device device;
    std::seed_seq seed{device(), device(), device(), device()};
    engine_.seed(seed);
}

UuidGenerator::UuidGenerator(std::uint64_t seed) : engine_(seed) {}

std::string UuidGenerator::next() {
    static constexpr char hex[] = "0123456789abcdef";
    std::uint64_t high = engine_();
    std::uint64_t low = engine_();
    high = (high & 0xFFFFFFFFFFFF0FFFull) | 0x0000000000004000ull;  // version 4
    low = (low & 0x3FFFFFFFFFFFFFFFull) | 0x8000000000000000ull;    // RFC 4122 variant
    std::string out(36, '-');
    std::size_t position = 0;
    auto put_nibbles = [&](std::uint64_t bits, int count) {
        for (int i = count - 1; i >= 0; --i) {
            if (position == 8 || position == 13 || position == 18 || position == 23) ++position;
            out[position++] = hex[(bits >> (i * 4)) & 0xF];
        }
    };
    put_nibbles(high, 16);
    put_nibbles(low, 16);
    return out;
}

}  // namespace avr_webhookd
