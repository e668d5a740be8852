#pragma once

#include <avr_webhookd/common/event.hpp>
#include <avr_webhookd/common/uuid.hpp>

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parser.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace avr_webhookd {

// Why a line was rejected. `reason` is a stable label for metrics, `message` names the field.
struct RejectReason {
    std::string_view reason;  // invalid_json, invalid_utf8, line_too_long, not_an_object,
                              // missing_field, invalid_field, unknown_key, unknown_type
    std::string message;
};

// The event types AVR emits (see the field notes); others need allow_unknown_types.
bool is_known_event_type(std::string_view type);
// ^[a-z][a-z0-9_]{0,63}$
bool is_valid_type_name(std::string_view type);

struct EventParserOptions {
    bool allow_unknown_types = false;
};

// Validates one intake line and turns it into an Event whose body is ready to POST (sans-io).
// One parser per producer connection. Its JSON memory lives for one line only: a line costs a
// small multiple of its length, whatever came before it (see parse()).
class EventParser {
public:
    // `upstream` supplies the JSON tree's memory beyond a 4 KiB inline buffer (tests count it).
    explicit EventParser(EventParserOptions options, boost::json::storage_ptr upstream = {});
    void set_options(EventParserOptions options) { options_ = options; }

    std::variant<Event, RejectReason> parse(std::string_view line, std::chrono::system_clock::time_point received_at,
                                            UuidGenerator& ids);

private:
    EventParserOptions options_;
    boost::json::storage_ptr upstream_;
    unsigned char initial_buffer_[4096];
    std::optional<boost::json::monotonic_resource> resource_;  // rebuilt for every line
    boost::json::parser parser_;
};

}  // namespace avr_webhookd
