#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace avr_webhookd {

// Offset of the first byte that is not part of well-formed UTF-8 (RFC 3629: no overlongs,
// no surrogates, nothing above U+10FFFF), or nullopt when the text is valid.
std::optional<std::size_t> find_invalid_utf8(std::string_view text);

}  // namespace avr_webhookd
