#pragma once

#include <avr_webhookd/config/config.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace avr_webhookd {

// The `subject` setting of a NATS destination: the subject each event is published to, a template
// with the placeholders {type}, {uuid} (the call) and {destination} (its name). Parsed once (at
// check-config, start and reload); rendering is a few appends, no parsing per event.
//
// Valid: at most 255 bytes; printable ASCII without spaces, '*', '>' (wildcards cannot be published
// to) and braces outside the placeholders; '.'-separated tokens none of which is empty once
// rendered (no leading, trailing or doubled '.'). The placeholders' values are safe tokens: event
// types are [a-z][a-z0-9_]*, uuids canonical, destination names [a-z][a-z0-9]*.
class SubjectTemplate {
public:
    // nullopt on an invalid template, with a one-line reason in `error` (e.g. "unknown placeholder
    // {call} (allowed: {type}, {uuid}, {destination})").
    static std::optional<SubjectTemplate> parse(std::string_view text, std::string* error = nullptr);

    std::string render(std::string_view type, std::string_view uuid, std::string_view destination) const;
    const std::string& text() const { return text_; }

private:
    enum class Part { literal, type, uuid, destination };
    struct Piece {
        Part part;
        std::string literal;
    };
    std::string text_;
    std::vector<Piece> pieces_;
};

}  // namespace avr_webhookd
