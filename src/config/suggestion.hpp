#pragma once
// Internal to src/config/: "did you mean" for a mistyped setting name.

#include <cstddef>
#include <string>
#include <string_view>

namespace avr_webhookd::config_detail {

// Levenshtein distance: insertions, deletions and substitutions of one byte each.
std::size_t edit_distance(std::string_view a, std::string_view b);

// " (did you mean timeout?)" when a setting's key is within two edits of `unknown_key` (in any
// case), written by `name` (the key itself, or e.g. environment_name); "" when none is.
std::string suggestion(std::string_view unknown_key, std::string (*name)(std::string_view) = nullptr);

}  // namespace avr_webhookd::config_detail
