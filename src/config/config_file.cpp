#include <avr_webhookd/config/config_file.hpp>

#include "setting_table.hpp"
#include "suggestion.hpp"
#include "value.hpp"

#include <avr_webhookd/common/text.hpp>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <utility>

namespace avr_webhookd {

namespace {

using config_detail::find_setting;
using config_detail::quoted_text;
using config_detail::suggestion;

[[noreturn]] void file_error(std::string_view key, const std::string& path, std::size_t line, std::string_view what) {
    throw ConfigError(std::string{key},
                      "config file " + path + " line " + std::to_string(line) + ": " + std::string{what});
}

// An unquoted value up to a '#' that follows a space or tab. The value lies inside `line` after
// the '=', so the byte before any of its characters is in `line` too (a value may start with '#':
// `key = # note` is an empty value).
std::string_view without_comment(std::string_view value, std::string_view line) {
    const auto start = static_cast<std::size_t>(value.data() - line.data());
    const auto before = [&](std::size_t index) { return line[start + index - 1]; };
    for (std::size_t hash = value.find('#'); hash != std::string_view::npos; hash = value.find('#', hash + 1)) {
        if (before(hash) == ' ' || before(hash) == '\t') {
            return trim(value.substr(0, hash));
        }
    }
    return value;
}

// `[destination NAME]`: the keys after it, up to the next section, are that destination's.
std::string parse_section(std::string_view line, const std::string& path, std::size_t number) {
    const auto inside = trim(line.substr(1, line.size() - 2));
    const auto space = inside.find_first_of(" \t");
    const auto kind = inside.substr(0, space);
    const auto name = space == std::string_view::npos ? std::string_view{} : trim(inside.substr(space));
    if (kind != "destination" || !line.ends_with(']')) {
        file_error("", path, number,
                   "unknown section " + quoted_text(line) + ": the only section is [destination NAME]");
    }
    if (name == default_destination_name) {
        file_error(
            "", path, number,
            "[destination default] is the top-level url, secret ... settings: set them before the first section");
    }
    if (!valid_destination_name(name)) {
        file_error("", path, number,
                   "destination name " + quoted_text(name) +
                       ": expected 1 to 32 lower-case letters and digits, starting with a letter");
    }
    return "destination_" + std::string{name} + "_";
}

// `key = value` with optional matching quotes around the value; in a [destination NAME] section
// (`prefix` "destination_NAME_") the key must be a per-receiver setting.
ConfigFileEntry parse_line(std::string_view line, const std::string& path, std::size_t number,
                           const std::string& prefix) {
    const auto equals = line.find('=');
    const auto bare_key = trim(line.substr(0, equals));
    if (equals == std::string_view::npos || bare_key.empty()) {
        file_error("", path, number, "expected key = value");
    }
    if (!prefix.empty() && !is_receiver_setting(bare_key)) {
        file_error(bare_key, path, number,
                   quoted_text(bare_key) + " is not a per-destination setting (" +
                       (find_setting(bare_key) ? "global settings go before the first [destination] section"
                                               : "unknown setting" + suggestion(bare_key)) +
                       ")");
    }
    const std::string key = prefix + std::string{bare_key};
    if (prefix.empty() && !find_setting(key) && !split_destination_key(key)) {
        file_error(key, path, number, "unknown setting " + quoted_text(key) + suggestion(key));
    }
    auto value = trim(line.substr(equals + 1));
    if (value.starts_with('"') || value.starts_with('\'')) {
        const auto close = value.find(value[0], 1);
        if (close == std::string_view::npos) {
            file_error(key, path, number, "the value of " + std::string{key} + " has no closing quote");
        }
        const auto after = trim(value.substr(close + 1));
        if (!after.empty() && !after.starts_with('#')) {
            file_error(key, path, number, "unexpected text after the quoted value of " + std::string{key});
        }
        value = value.substr(1, close - 1);
    } else {
        value = without_comment(value, line);
    }
    return {key, std::string{value}, number};
}

}  // namespace

std::vector<ConfigFileEntry> parse_config_file(std::string_view contents, const std::string& path) {
    std::vector<ConfigFileEntry> entries;
    std::map<std::string, std::size_t, std::less<>> first_line;
    std::size_t number = 0;
    std::string section;  // "destination_NAME_" inside a [destination NAME] section
    std::size_t section_line = 0, section_keys = 0;
    // A section with no key would configure nothing, silently: an error, as a missing url is.
    const auto close_section = [&] {
        if (!section.empty() && section_keys == 0)
            file_error("", path, section_line, "this [destination] section sets nothing; it needs at least url");
    };
    for (std::size_t start = 0; start < contents.size();) {
        auto end = contents.find('\n', start);
        if (end == std::string_view::npos) end = contents.size();
        std::string_view text = contents.substr(start, end - start);
        start = end + 1;
        ++number;
        if (number == 1 && text.starts_with("\xEF\xBB\xBF")) {
            text.remove_prefix(3);
        }
        if (text.ends_with('\r')) {
            text.remove_suffix(1);
        }
        if (trim(text).empty() || trim(text).starts_with('#')) {
            continue;
        }
        if (trim(text).starts_with('[')) {
            close_section();
            section = parse_section(trim(text), path, number);
            section_line = number;
            section_keys = 0;
            continue;
        }
        ++section_keys;
        auto entry = parse_line(text, path, number, section);
        if (const auto [it, inserted] = first_line.emplace(entry.key, number); !inserted) {
            file_error(entry.key, path, number, entry.key + " is already set on line " + std::to_string(it->second));
        }
        entries.push_back(std::move(entry));
    }
    close_section();
    return entries;
}

std::vector<ConfigFileEntry> read_config_file(const std::string& path) {
    std::error_code error;
    if (std::filesystem::is_directory(path, error)) {
        throw ConfigError("config", "cannot read config file " + path + ": it is a directory");
    }
    std::ifstream file(path, std::ios::binary);
    if (!file) {
        throw ConfigError("config", "cannot read config file " + path + ": " + std::strerror(errno));
    }
    const std::string contents{std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
    if (file.bad()) {
        throw ConfigError("config", "cannot read config file " + path + ": " + std::strerror(errno));
    }
    return parse_config_file(contents, path);
}

}  // namespace avr_webhookd
