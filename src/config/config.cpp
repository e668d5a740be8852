#include <avr_webhookd/config/config.hpp>

#include <filesystem>

namespace avr_webhookd {

std::string_view to_string(Origin origin) {
    switch (origin) {
    case Origin::built_in:
        return "built-in";
    case Origin::config_file:
        return "config file";
    case Origin::environment:
        return "environment";
    case Origin::command_line:
        return "command line";
    }
    return "unknown";
}

std::string_view to_string(AckMode mode) { return mode == AckMode::all ? "all" : "errors"; }

std::string_view to_string(SpoolSync mode) { return mode == SpoolSync::interval ? "interval" : "always"; }

std::string default_dead_letter(std::string_view socket) {
    return (std::filesystem::path(socket).parent_path() / "dead-letter.ndjson").string();
}

// systemd's StateDirectory= sets STATE_DIRECTORY (several folders are separated by colons; the
// first is ours). Without it the XDG base directory rules give each user a folder of their own.
std::string default_spool_dir(const Environment& environment, bool running_as_root) {
    const auto variable = [&](const char* name) -> std::string {
        const auto found = environment.find(name);
        return found == environment.end() ? std::string{} : found->second;
    };
    if (auto state = variable("STATE_DIRECTORY"); !state.empty() && state.front() == '/')
        return state.substr(0, state.find(':'));
    if (running_as_root) return "/var/lib/avr-webhookd";
    if (auto xdg = variable("XDG_STATE_HOME"); !xdg.empty() && xdg.front() == '/')
        return (std::filesystem::path(xdg) / "avr-webhookd").string();
    if (auto home = variable("HOME"); !home.empty() && home.front() == '/')
        return (std::filesystem::path(home) / ".local/state/avr-webhookd").string();
    return "/var/lib/avr-webhookd";
}

std::string_view to_string(QueueFullPolicy policy) { return policy == QueueFullPolicy::reject ? "reject" : "block"; }

}  // namespace avr_webhookd
