#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace avr_webhookd {

// One `key = value` line of a config file.
struct ConfigFileEntry {
    std::string key;
    std::string value;  // quotes and a trailing comment removed
    std::size_t line;   // from 1
};

// The config file grammar (sans-io): one `key = value` per line; blank lines and lines starting
// with '#' are skipped; a value may be wrapped in matching "double" or 'single' quotes; in an
// unquoted value a '#' after a space or tab starts a comment; a UTF-8 BOM at the start and a CR
// before each LF are ignored. Throws ConfigError naming `path` and the line for a line that is
// not `key = value`, an unknown key (with a "did you mean"), a missing closing quote, text after
// a closing quote, or a key set twice. Never echoes a value: it may be the secret.
std::vector<ConfigFileEntry> parse_config_file(std::string_view contents, const std::string& path);

// Reads the file and parses it; throws ConfigError when it cannot be read.
std::vector<ConfigFileEntry> read_config_file(const std::string& path);

}  // namespace avr_webhookd
