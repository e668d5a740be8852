#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace avr_webhookd {

// YYYY-MM-DDTHH:MM:SS.mmmZ in UTC, as JavaScript's Date.prototype.toISOString prints it.
std::string format_utc_millis(std::chrono::system_clock::time_point time);
void append_utc_millis(std::string& out, std::chrono::system_clock::time_point time);

// An ISO 8601 / RFC 3339 date-time with a zone: YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|+HHMM),
// with calendar-valid fields (leap years, second 60 allowed for leap seconds).
bool is_iso8601_datetime(std::string_view text);
// The same text as a point in time (the zone applied; a leap second 60 counts as the next second's
// start); nullopt when is_iso8601_datetime() would say false.
std::optional<std::chrono::system_clock::time_point> parse_iso8601_datetime(std::string_view text);

}  // namespace avr_webhookd
