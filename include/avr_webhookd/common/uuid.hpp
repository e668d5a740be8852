#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>

namespace avr_webhookd {

// 8-4-4-4-12 hexadecimal digits, either case (uuidgen prints lower case).
bool is_canonical_uuid(std::string_view text);

// A uuid as its 16 bytes (a call's key in the queues and in the spool's recovery).
using UuidBytes = std::array<std::uint8_t, 16>;
// The bytes of a canonical uuid, or nullopt for anything else.
std::optional<UuidBytes> uuid_bytes(std::string_view text);
// The canonical lower-case 8-4-4-4-12 text.
std::string uuid_text(const UuidBytes& bytes);

// Random (version 4) UUIDs for events whose producer gave no id.
class UuidGenerator {
public:
    UuidGenerator();  // seeded from std::random_device
    explicit UuidGenerator(std::uint64_t seed);
    std::string next();

private:
    std::mt19937_64 engine_;
};

}  // namespace avr_webhookd
