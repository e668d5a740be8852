#pragma once

#include <random>
#include <string>
#include <string_view>

namespace avr_webhookd {

// 8-4-4-4-12 hexadecimal digits, either case (uuidgen prints lower case).
bool is_canonical_uuid(std::string_view text);

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
