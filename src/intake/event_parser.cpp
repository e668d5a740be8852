#include <avr_webhookd/intake/event_parser.hpp>

#include <avr_webhookd/common/text.hpp>
#include <avr_webhookd/common/js_json.hpp>
#include <avr_webhookd/common/timestamp.hpp>
#include <avr_webhookd/common/utf8.hpp>
#include <avr_webhookd/config/config.hpp>

#include <boost/json.hpp>

#include <array>

namespace avr_webhookd {
namespace {

constexpr std::array<std::string_view, 7> known_types = {"call_initiated", "call_started", "call_ended", "interruption",
                                                         "transcription",  "dtmf_digit",   "error"};

constexpr std::size_t max_id_length = 128;
constexpr std::size_t max_quoted_value = 64;  // how much of a bad value an error message repeats

std::string_view as_view(const boost::json::string& text) { return {text.data(), text.size()}; }

// A short, printable rendering of a bad value for error messages.
std::string quoted(std::string_view text) {
    std::string out;
    const bool cut = text.size() > max_quoted_value;
    append_js_string(out, cut ? text.substr(0, max_quoted_value) : text);
    if (cut) out.append("...");
    return out;
}

std::string_view kind_name(const boost::json::value& value) {
    switch (value.kind()) {
    case boost::json::kind::null:
        return "null";
    case boost::json::kind::bool_:
        return "a boolean";
    case boost::json::kind::int64:
    case boost::json::kind::uint64:
    case boost::json::kind::double_:
        return "a number";
    case boost::json::kind::string:
        return "a string";
    case boost::json::kind::array:
        return "an array";
    case boost::json::kind::object:
        return "an object";
    }
    return "a value";
}

RejectReason missing(std::string_view field) {
    return {"missing_field", "missing required field \"" + std::string(field) + "\""};
}

RejectReason wrong_kind(std::string_view field, std::string_view expected, const boost::json::value& got) {
    return {"invalid_field", "field \"" + std::string(field) + "\" must be " + std::string(expected) + ", got " +
                                 std::string(kind_name(got))};
}

const boost::json::string* find_string(const boost::json::object& object, std::string_view key) {
    const auto* value = object.if_contains(key);
    return value ? value->if_string() : nullptr;
}

bool is_dtmf_digit(std::string_view digit) {
    if (digit.size() != 1) return false;
    const char c = digit[0];
    return (c >= '0' && c <= '9') || c == '*' || c == '#' || (c >= 'A' && c <= 'D');
}

// Checks the payload fields AVR's receivers rely on for the types that carry data.
std::optional<RejectReason> check_payload(std::string_view type, const boost::json::object& payload) {
    auto require_string = [&](std::string_view key) -> std::optional<RejectReason> {
        const std::string field = "payload." + std::string(key);
        const auto* value = payload.if_contains(key);
        if (!value) return missing(field);
        if (!value->is_string()) return wrong_kind(field, "a string", *value);
        return std::nullopt;
    };
    if (type == "transcription") {
        if (auto error = require_string("role")) return error;
        return require_string("text");
    }
    if (type == "dtmf_digit") {
        if (auto error = require_string("digit")) return error;
        const auto digit = as_view(*find_string(payload, "digit"));
        if (!is_dtmf_digit(digit))
            return RejectReason{"invalid_field",
                                "field \"payload.digit\" must be one of 0-9, *, #, A-D, got " + quoted(digit)};
        return std::nullopt;
    }
    if (type == "error") return require_string("message");
    return std::nullopt;
}

bool is_valid_event_id(std::string_view id) {
    if (id.empty() || id.size() > max_id_length) return false;
    for (char c : id)
        if (c < 0x21 || c > 0x7E) return false;
    return true;
}

}  // namespace

bool is_known_event_type(std::string_view type) {
    for (auto known : known_types)
        if (type == known) return true;
    return false;
}

bool is_valid_type_name(std::string_view type) {
    if (type.empty() || type.size() > 64 || type[0] < 'a' || type[0] > 'z') return false;
    for (char c : type)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
    return true;
}

EventParser::EventParser(EventParserOptions options, boost::json::storage_ptr upstream)
    : options_(options), upstream_(std::move(upstream)) {}

std::variant<Event, RejectReason> EventParser::parse(std::string_view line,
                                                     std::chrono::system_clock::time_point received_at,
                                                     UuidGenerator& ids) {
    if (const auto bad_byte = find_invalid_utf8(line))
        return RejectReason{"invalid_utf8", "invalid UTF-8 at byte " + std::to_string(*bad_byte + 1)};

    // A fresh resource per line, not release(): Boost 1.81's monotonic_resource keeps doubling
    // its next block size across release(), so on a long-lived connection each large line asked
    // for twice the memory of the last until std::bad_alloc (issue 7, item 1). Rebuilt, its
    // blocks grow from 4 KiB within the line only: at most about twice what the line needs.
    parser_.reset();  // drops the parser's reference to the previous line's resource
    resource_.emplace(initial_buffer_, sizeof initial_buffer_, upstream_);
    parser_.reset(boost::json::storage_ptr(&*resource_));
    boost::json::error_code ec;
    const std::size_t consumed = parser_.write(line.data(), line.size(), ec);
    if (ec)
        return RejectReason{"invalid_json",
                            "invalid JSON at byte " + std::to_string(consumed + 1) + ": " + ec.message()};
    const boost::json::value root = parser_.release();

    const auto* object = root.if_object();
    if (!object)
        return RejectReason{"not_an_object", "an event must be a JSON object, got " + std::string(kind_name(root))};

    for (const auto& member : *object) {
        const std::string_view key(member.key().data(), member.key().size());
        if (key != "uuid" && key != "type" && key != "timestamp" && key != "payload" && key != "id" &&
            key != "failure" && key != "destination")
            return RejectReason{"unknown_key", "unknown key " + quoted(key) +
                                                   " (allowed: uuid, type, timestamp, payload, id, destination)"};
    }

    const auto* uuid_value = object->if_contains("uuid");
    if (!uuid_value) return missing("uuid");
    if (!uuid_value->is_string()) return wrong_kind("uuid", "a string", *uuid_value);
    const auto uuid = as_view(uuid_value->get_string());
    if (!is_canonical_uuid(uuid))
        return RejectReason{"invalid_field",
                            "field \"uuid\" must be a canonical UUID (8-4-4-4-12 hex digits), got " + quoted(uuid)};

    const auto* type_value = object->if_contains("type");
    if (!type_value) return missing("type");
    if (!type_value->is_string()) return wrong_kind("type", "a string", *type_value);
    const auto type = as_view(type_value->get_string());
    if (!is_known_event_type(type)) {
        if (!options_.allow_unknown_types)
            return RejectReason{"unknown_type", "field \"type\" has unknown event type " + quoted(type) +
                                                    " (known: call_initiated, call_started, call_ended, interruption, "
                                                    "transcription, dtmf_digit, error; see allow_unknown_types)"};
        if (!is_valid_type_name(type))
            return RejectReason{"invalid_field",
                                "field \"type\" must match ^[a-z][a-z0-9_]{0,63}$, got " + quoted(type)};
    }

    static const boost::json::object empty_payload;
    const boost::json::object* payload = &empty_payload;
    if (const auto* payload_value = object->if_contains("payload")) {
        payload = payload_value->if_object();
        if (!payload) return wrong_kind("payload", "an object", *payload_value);
    }
    if (auto error = check_payload(type, *payload)) return std::move(*error);

    Event event;
    if (const auto* timestamp_value = object->if_contains("timestamp")) {
        if (!timestamp_value->is_string()) return wrong_kind("timestamp", "a string", *timestamp_value);
        const auto timestamp = as_view(timestamp_value->get_string());
        if (!is_iso8601_datetime(timestamp))
            return RejectReason{"invalid_field",
                                "field \"timestamp\" must be an ISO 8601 date-time with a zone "
                                "(e.g. 2024-01-01T12:00:00.000Z), got " +
                                    quoted(timestamp)};
        event.timestamp.assign(timestamp);
    } else {
        event.timestamp = format_utc_millis(received_at);
    }

    if (const auto* id_value = object->if_contains("id")) {
        if (!id_value->is_string()) return wrong_kind("id", "a string", *id_value);
        const auto id = as_view(id_value->get_string());
        if (!is_valid_event_id(id))
            return RejectReason{
                "invalid_field",
                "field \"id\" must be 1-128 printable ASCII characters without spaces, got " + quoted(id)};
        event.id.assign(id);
    } else {
        event.id = ids.next();
    }

    if (const auto* destination = object->if_contains("destination")) {
        if (!destination->is_string()) return wrong_kind("destination", "a string", *destination);
        const auto name = as_view(destination->get_string());
        if (name != default_destination_name && !valid_destination_name(name))
            return RejectReason{"invalid_field",
                                "field \"destination\" must be \"default\" or a destination name "
                                "(lower-case letters and digits), got " +
                                    quoted(name)};
        event.destination.assign(name);
    }

    event.replayed = object->contains("failure");
    // The queue key is lower case, so one call written in both cases stays one ordered call;
    // the body keeps the uuid as the producer wrote it.
    event.uuid = ascii_lower(uuid);
    event.type.assign(type);
    event.body.reserve(line.size() + 96);
    event.body.append("{\"uuid\":");
    append_js_string(event.body, uuid);
    event.body.append(",\"type\":");
    append_js_string(event.body, type);
    event.body.append(",\"timestamp\":");
    append_js_string(event.body, event.timestamp);
    event.body.append(",\"payload\":");
    append_js_json(event.body, *payload);
    event.body.push_back('}');
    event.accepted_wall = received_at;
    event.accepted_at = std::chrono::steady_clock::now();
    return event;
}

}  // namespace avr_webhookd
