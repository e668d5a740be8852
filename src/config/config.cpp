#include <avr_webhookd/config/config.hpp>

namespace avr_webhookd {

std::string_view to_string(Origin origin) {
    switch (origin) {
        case Origin::built_in: return "built-in";
        case Origin::config_file: return "config file";
        case Origin::environment: return "environment";
        case Origin::command_line: return "command line";
    }
    return "unknown";
}

std::string_view to_string(AckMode mode) {
    return mode == AckMode::all ? "all" : "errors";
}

std::string_view to_string(QueueFullPolicy policy) {
    return policy == QueueFullPolicy::reject ? "reject" : "block";
}

}  // namespace avr_webhookd
