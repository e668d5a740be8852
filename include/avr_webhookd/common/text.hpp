#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace avr_webhookd {

// ASCII text helpers, the one home for them: none depends on the C locale.

char ascii_lower(char c);
std::string ascii_lower(std::string_view text);  // A-Z -> a-z, every other byte unchanged
std::string ascii_upper(std::string_view text);  // a-z -> A-Z, every other byte unchanged
bool starts_with_ignoring_case(std::string_view text, std::string_view prefix);  // ASCII letters only

bool is_printable_ascii(char c);  // 0x20..0x7e

// Without leading and trailing spaces and tabs.
std::string_view trim(std::string_view text);

// Collapses each run of spaces and control characters (CR, LF, tab, other C0, DEL) into one
// space and trims the ends: text from a peer or a user that must stay on one line (a log line,
// a failure block, systemd's STATUS=).
std::string single_line(std::string_view text);

// Without the line endings (LF and CR) at its end: a reply body printed on one line.
std::string_view without_trailing_newlines(std::string_view text);

// The items joined by `separator`: join({"a", "b"}, ",") == "a,b".
std::string join(const std::vector<std::string>& items, std::string_view separator);

}  // namespace avr_webhookd
