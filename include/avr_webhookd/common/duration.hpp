#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace avr_webhookd {

// What parse_duration accepts, for error messages.
inline constexpr std::string_view duration_syntax = "a duration such as 3000, 500ms, 3s or 2m";

// A non-negative whole number with an optional unit: none or "ms" = milliseconds, "s", "m", "h".
// nullopt for empty text, signs, fractions, spaces, unknown units and values that overflow.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

// The largest unit that represents the duration exactly: 3000ms -> "3s", 1500ms -> "1500ms".
std::string format_duration(std::chrono::milliseconds duration);

}  // namespace avr_webhookd
