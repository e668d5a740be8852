// A whole producer byte stream through the line framer and the event parser, as one intake
// connection sees it: many lines per input, split into reads at input-chosen points, so that the
// state carried from line to line (framer buffers, the parser's reused memory) is exercised.
//
// Input layout: byte 0 picks max_line (256 .. 256 + 255*64), byte 1 the read size (1..256),
// byte 2 allow_unknown_types; the rest is the stream.
#include <avr_webhookd/event_parser.hpp>
#include <avr_webhookd/line_framer.hpp>

#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <variant>

using namespace avr_webhookd;

namespace {

void check(bool condition) {
    if (!condition) std::abort();
}

void handle(EventParser& parser, UuidGenerator& ids, const LineFramer& framer, const LineFramer::Frame& frame) {
    if (frame.kind == LineFramer::FrameKind::too_long) return;
    check(frame.text.size() <= framer.max_line());
    auto result = parser.parse(frame.text, std::chrono::system_clock::time_point{}, ids);
    if (const auto* event = std::get_if<Event>(&result)) {
        check(!event->uuid.empty() && !event->type.empty() && !event->id.empty());
        check(!event->body.empty() && event->body.front() == '{' && event->body.back() == '}');
    } else {
        check(!std::get<RejectReason>(result).message.empty());
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 3) return 0;
    const std::size_t max_line = 256 + std::size_t{data[0]} * 64;
    const std::size_t read_size = 1 + std::size_t{data[1]};
    EventParser parser(EventParserOptions{(data[2] & 1) != 0});
    UuidGenerator ids(42);
    LineFramer framer(max_line);
    std::string_view stream(reinterpret_cast<const char*>(data) + 3, size - 3);
    while (!stream.empty()) {
        const auto take = std::min(read_size, stream.size());
        std::string_view chunk = stream.substr(0, take);
        stream.remove_prefix(take);
        while (auto frame = framer.next(chunk)) handle(parser, ids, framer, *frame);
        check(framer.buffered() <= max_line + 1);
    }
    if (auto frame = framer.finish()) handle(parser, ids, framer, *frame);
    return 0;
}
