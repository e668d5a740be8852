#include <avr_webhookd/dead_letter/dead_letter_reader.hpp>

#include <avr_webhookd/common/duration.hpp>
#include <avr_webhookd/common/text.hpp>
#include <avr_webhookd/common/timestamp.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace avr_webhookd {

namespace json = boost::json;

namespace {

// Longer lines than this are reported as malformed instead of held in memory: the daemon writes
// at most twice max_line (16 MiB at most) plus the failure object.
constexpr std::size_t max_line_bytes = 64u << 20;
constexpr std::size_t chunk_bytes = 64u << 10;

const json::string* string_member(const json::object& object, std::string_view key) {
    const auto* value = object.if_contains(key);
    return value ? value->if_string() : nullptr;
}

std::string text_of(const json::string* value) { return value ? std::string(*value) : std::string(); }

bool contains_ignoring_case(std::string_view text, std::string_view part) {
    return ascii_lower(text).find(ascii_lower(part)) != std::string::npos;
}

template <typename Value, typename Match>
bool any_or_empty(const std::vector<Value>& values, Match match) {
    return values.empty() || std::any_of(values.begin(), values.end(), match);
}

}  // namespace

std::string DeadLetterEntry::key() const { return destination + "\t" + id + "\t" + time; }

std::variant<DeadLetterEntry, std::string> parse_dead_letter_line(std::string_view text, std::uint64_t line) {
    boost::system::error_code ec;
    const auto value = json::parse(text, ec);
    if (ec) return "not JSON (" + ec.message() + ")";
    const auto* object = value.if_object();
    if (!object) return std::string("not a JSON object");
    const auto* failure_value = object->if_contains("failure");
    const auto* failure = failure_value ? failure_value->if_object() : nullptr;
    if (!failure) return std::string("no \"failure\" object: not a dead letter");
    const auto* id = string_member(*object, "id");
    const auto* call = string_member(*object, "uuid");
    const auto* type = string_member(*object, "type");
    const auto* reason = string_member(*failure, "reason");
    const auto* time = string_member(*failure, "time");
    if (!id || !call || !type) return std::string("\"id\", \"uuid\" or \"type\" is missing or not a string");
    if (!reason || !time) return std::string("failure.reason or failure.time is missing or not a string");
    const auto given_up_at = parse_iso8601_datetime(*time);
    if (!given_up_at) return std::string("failure.time is not an ISO 8601 date-time");

    DeadLetterEntry entry;
    entry.line = line;
    entry.text.assign(text);
    entry.id = text_of(id);
    entry.destination = text_of(string_member(*object, "destination"));
    entry.call = text_of(call);
    entry.type = text_of(type);
    entry.reason = text_of(reason);
    entry.code = text_of(string_member(*failure, "code"));
    entry.message = text_of(string_member(*failure, "message"));
    entry.time = text_of(time);
    entry.given_up_at = *given_up_at;
    if (const auto* attempts = failure->if_contains("attempts"); attempts && attempts->is_int64())
        entry.attempts = static_cast<int>(std::clamp<std::int64_t>(attempts->get_int64(), 0, 1 << 30));
    return entry;
}

bool DeadLetterFilter::matches(const DeadLetterEntry& entry) const {
    const auto destination = entry.destination.empty() ? std::string_view("default") : entry.destination;
    return any_or_empty(destinations, [&](const std::string& name) { return name == destination; }) &&
           any_or_empty(calls, [&](const std::string& call) { return ascii_lower(call) == ascii_lower(entry.call); }) &&
           any_or_empty(types, [&](const std::string& type) { return type == entry.type; }) &&
           any_or_empty(reasons,
                        [&](const std::string& reason) {
                            return contains_ignoring_case(entry.reason, reason) ||
                                   contains_ignoring_case(entry.code, reason);
                        }) &&
           (!since || entry.given_up_at >= *since);
}

std::optional<std::chrono::system_clock::time_point> parse_since(std::string_view text,
                                                                 std::chrono::system_clock::time_point now) {
    if (auto time = parse_iso8601_datetime(text)) return time;
    if (text.size() == 10) {  // a date: midnight UTC
        std::string midnight(text);
        midnight.append("T00:00:00Z");  // not operator+: GCC 12's -Warray-bounds false positive (bug 105329)
        if (auto time = parse_iso8601_datetime(midnight)) return time;
    }
    if (auto ago = parse_duration(text); ago && !text.empty() && (text.back() < '0' || text.back() > '9'))
        return now - *ago;  // with a unit only: a bare number is more likely a mistyped date
    return std::nullopt;
}

namespace {

// Splits the bytes read into lines for `each`, numbering them; holds the line being read.
class LineSplitter {
public:
    LineSplitter(DeadLetterScan& scan, const std::function<void(DeadLetterEntry&&)>& each) : scan_(scan), each_(each) {}

    void feed(std::string_view bytes) {
        while (!bytes.empty()) {
            const auto newline = bytes.find('\n');
            const auto part = bytes.substr(0, newline);
            if (!too_long_) {
                pending_.append(part);
                too_long_ = pending_.size() > max_line_bytes;
                if (too_long_) pending_.clear();
            }
            if (newline == std::string_view::npos) {
                line_bytes_ += part.size();
                return;
            }
            end_line(part.size() + 1);
            bytes.remove_prefix(newline + 1);
        }
    }

    // True when bytes of an unfinished line were left.
    bool unfinished() const { return line_bytes_ > 0; }

private:
    void end_line(std::size_t last_part) {
        ++scan_.lines;
        scan_.bytes += line_bytes_ + last_part;
        line_bytes_ = 0;
        if (too_long_) {
            scan_.malformed.emplace_back(scan_.lines, "longer than " + std::to_string(max_line_bytes >> 20) + " MiB");
        } else if (!trim(pending_).empty()) {
            auto parsed = parse_dead_letter_line(pending_, scan_.lines);
            if (auto* entry = std::get_if<DeadLetterEntry>(&parsed)) each_(std::move(*entry));
            else scan_.malformed.emplace_back(scan_.lines, std::get<std::string>(parsed));
        }
        pending_.clear();
        too_long_ = false;
    }

    DeadLetterScan& scan_;
    const std::function<void(DeadLetterEntry&&)>& each_;
    std::string pending_;
    std::uint64_t line_bytes_ = 0;
    bool too_long_ = false;
};

}  // namespace

DeadLetterScan read_dead_letters(const std::string& path, const std::function<void(DeadLetterEntry&&)>& each) {
    DeadLetterScan scan;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return scan;
        throw std::runtime_error("cannot read the dead-letter file " + path + ": " + std::strerror(errno));
    }
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    struct stat status {};
    if (::fstat(fd, &status) != 0)
        throw std::runtime_error("cannot read the dead-letter file " + path + ": " + std::strerror(errno));
    // What the daemon appends while this runs is left for the next run.
    auto left = static_cast<std::uint64_t>(status.st_size);
    LineSplitter splitter(scan, each);
    std::string chunk(chunk_bytes, '\0');
    while (left > 0) {
        const auto got =
            ::read(fd, chunk.data(), static_cast<std::size_t>(std::min<std::uint64_t>(left, chunk.size())));
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) throw std::runtime_error("cannot read the dead-letter file " + path + ": " + std::strerror(errno));
        if (got == 0) break;  // cut short meanwhile (an operator emptied it)
        left -= static_cast<std::uint64_t>(got);
        splitter.feed(std::string_view(chunk.data(), static_cast<std::size_t>(got)));
    }
    scan.incomplete_tail = splitter.unfinished();
    return scan;
}

}  // namespace avr_webhookd
