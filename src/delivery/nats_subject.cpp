#include <avr_webhookd/delivery/nats_subject.hpp>

#include <avr_webhookd/common/text.hpp>

#include <algorithm>
#include <array>

namespace avr_webhookd {

namespace {

constexpr std::size_t max_subject_template = 255;

std::optional<SubjectTemplate> fail(std::string* error, std::string reason) {
    if (error) *error = std::move(reason);
    return std::nullopt;
}

bool allowed_literal(char c) {
    return is_printable_ascii(c) && c != ' ' && c != '*' && c != '>' && c != '{' && c != '}';
}

// Every '.'-separated token of the rendered subject is non-empty.
bool tokens_not_empty(std::string_view subject) {
    if (subject.empty() || subject.front() == '.' || subject.back() == '.') return false;
    return subject.find("..") == std::string_view::npos;
}

}  // namespace

std::optional<SubjectTemplate> SubjectTemplate::parse(std::string_view text, std::string* error) {
    static constexpr std::array<std::pair<std::string_view, Part>, 3> placeholders{
        {{"{type}", Part::type}, {"{uuid}", Part::uuid}, {"{destination}", Part::destination}}};
    if (text.empty()) return fail(error, "a subject is required (default " + std::string(default_nats_subject) + ")");
    if (text.size() > max_subject_template)
        return fail(error, "a subject of at most " + std::to_string(max_subject_template) + " bytes");
    SubjectTemplate result;
    result.text_ = std::string(text);
    std::string_view rest = text;
    while (!rest.empty()) {
        if (rest.front() == '{') {
            const auto close = rest.find('}');
            const auto name = rest.substr(0, close == std::string_view::npos ? rest.size() : close + 1);
            const auto found = std::find_if(placeholders.begin(), placeholders.end(),
                                            [&](const auto& placeholder) { return placeholder.first == name; });
            if (close == std::string_view::npos || found == placeholders.end())
                return fail(error, "unknown placeholder " + single_line(name.substr(0, 40)) +
                                       " (allowed: {type}, {uuid}, {destination})");
            result.pieces_.push_back({found->second, {}});
            rest.remove_prefix(name.size());
            continue;
        }
        const auto end = std::min(rest.find('{'), rest.size());
        const auto literal = rest.substr(0, end);
        if (const auto bad = std::find_if_not(literal.begin(), literal.end(), allowed_literal); bad != literal.end())
            return fail(error, *bad == '}' ? std::string("a '}' without its '{'")
                                           : "no spaces, wildcards ('*', '>') or control characters (offset " +
                                                 std::to_string(static_cast<std::size_t>(bad - text.begin())) + ")");
        result.pieces_.push_back({Part::literal, std::string(literal)});
        rest.remove_prefix(end);
    }
    if (!tokens_not_empty(result.render("call_started", "00000000-0000-0000-0000-000000000000", "default")))
        return fail(error, "'.'-separated tokens, none of them empty (no leading, trailing or doubled '.')");
    return result;
}

std::string SubjectTemplate::render(std::string_view type, std::string_view uuid, std::string_view destination) const {
    std::string subject;
    subject.reserve(text_.size() + uuid.size() + type.size());
    for (const auto& piece : pieces_) {
        switch (piece.part) {
        case Part::literal:
            subject += piece.literal;
            break;
        case Part::type:
            subject += type;
            break;
        case Part::uuid:
            subject += uuid;
            break;
        case Part::destination:
            subject += destination;
            break;
        }
    }
    return subject;
}

}  // namespace avr_webhookd
