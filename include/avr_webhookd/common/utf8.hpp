#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace avr_webhookd {

// Offset of the first byte that is not part of well-formed UTF-8 (RFC 3629: no overlongs,
// no surrogates, nothing above U+10FFFF), or nullopt when the text is valid.
std::optional<std::size_t> find_invalid_utf8(std::string_view text);

// The text with each byte that is not part of well-formed UTF-8 replaced by U+FFFD, so that it
// can go into JSON (or a terminal) whatever a peer sent.
std::string repaired_utf8(std::string_view text);

}  // namespace avr_webhookd
