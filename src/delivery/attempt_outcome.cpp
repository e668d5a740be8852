#include <avr_webhookd/delivery/attempt_outcome.hpp>

namespace avr_webhookd {

std::string_view to_string(FailureKind kind) {
    switch (kind) {
    case FailureKind::none:
        return "none";
    case FailureKind::connect_refused:
        return "connect_refused";
    case FailureKind::connect_failed:
        return "connect_failed";
    case FailureKind::dns:
        return "dns";
    case FailureKind::timeout:
        return "timeout";
    case FailureKind::reset:
        return "reset";
    case FailureKind::tls:
        return "tls";
    case FailureKind::protocol:
        return "protocol";
    case FailureKind::http_status:
        return "http_status";
    case FailureKind::no_responders:
        return "no_responders";
    case FailureKind::jetstream:
        return "jetstream";
    case FailureKind::auth:
        return "auth";
    }
    return "unknown";
}

}  // namespace avr_webhookd
