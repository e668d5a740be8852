#pragma once
// Internal to src/config/: the parsers and validators the settings table uses, one per kind of
// value, and the formatters that show a value back the way it reads in a config file.

#include "value.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace avr_webhookd::config_detail {

std::int64_t integer_in(const Value& value, std::int64_t min, std::int64_t max, std::string_view note = {});
std::chrono::milliseconds duration_in(const Value& value, std::chrono::milliseconds min, std::chrono::milliseconds max);
bool boolean(const Value& value);  // true/false, yes/no, on/off, 1/0 in any case

// One of `choices`, by its to_string() name.
template <typename Enum>
Enum choice(const Value& value, std::initializer_list<Enum> choices) {
    std::string allowed = "one of ";
    for (const auto candidate : choices) {
        if (value.text() == to_string(candidate)) {
            return candidate;
        }
        allowed += std::string{to_string(candidate)} + (candidate == *(choices.end() - 1) ? "" : ", ");
    }
    value.reject(allowed);
}

// Event types, comma-separated, no repeats; `empty_means` completes the error message ("all types").
std::vector<std::string> type_list(const Value& value, std::string_view empty_means);
std::vector<std::uint32_t> id_list(const Value& value);  // uids or gids, comma-separated
std::string url_setting(const Value& value);             // the daemon's own URL parsers decide
std::string subject_setting(const Value& value);         // delivery/nats_subject.hpp decides
std::string nats_user_setting(const Value& value);
// An absolute path of at most `max_size` bytes, not ending in '/'; `or_else` continues the
// "expected ..." text with the other forms the setting accepts.
std::string absolute_path(const Value& value, std::size_t max_size, std::string_view or_else = {});
std::string socket_path_setting(const Value& value);  // absolute, fits sockaddr_un
std::string admin_setting(const Value& value);        // ops/admin_address.hpp decides; "" = off
std::string http_listen_setting(const Value& value);  // common/host_port.hpp decides; "" = off
std::string agent_id_setting(const Value& value);
std::string existing_file(const Value& value);  // "" = none
unsigned socket_mode_setting(const Value& value);

std::string octal(unsigned mode);  // 0660 -> "0660"
// A string value for describe(): bare when that reads back unchanged, quoted otherwise.
std::string shown_text(std::string_view text);

}  // namespace avr_webhookd::config_detail
