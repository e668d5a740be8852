#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace avr_webhookd {

// NATS NKeys (Ed25519 identities): libnats signs the server's nonce with a user seed file, but
// must also be given the user's public key, which it cannot derive itself. These derive it, so a
// destination needs only nkey_seed_file.
//
// A user seed is "SU" + base32 (RFC 4648, no padding) of two prefix bytes, the 32-byte Ed25519
// seed and a CRC-16/XMODEM (little-endian); the public key is "U..." from the prefix byte, the
// 32-byte public key and its CRC. nullopt with a one-line reason when `seed` is no valid user seed
// (the reason never quotes the seed).
std::optional<std::string> nkey_user_public_key(std::string_view seed, std::string* error = nullptr);

// The same from a seed file's contents: the first line whose first non-blank characters are "SU",
// as libnats reads the file.
std::optional<std::string> nkey_user_public_key_from_file_text(std::string_view text, std::string* error = nullptr);

}  // namespace avr_webhookd
