// A whole producer byte stream through the line framer and the event parser, as one intake
// connection sees it: many lines per input, split into reads at input-chosen points, so that the
// state carried from line to line (framer buffers, the parser's reused memory) is exercised.
//
// The parser's JSON memory is counted: it must stay within a fixed multiple of max_line however
// many lines came before (issue 7, item 1: it used to double with every large line).
//
// Input layout: byte 0 picks max_line (256 .. 256 + 255*64), byte 1 the read size (1..256),
// byte 2 allow_unknown_types; the rest is the stream.
#include <avr_webhookd/intake/event_parser.hpp>
#include <avr_webhookd/intake/line_framer.hpp>

#include <boost/json/memory_resource.hpp>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <new>
#include <string_view>
#include <variant>

using namespace avr_webhookd;

namespace {

void check(bool condition) {
    if (!condition) std::abort();
}

// Counts what the parser holds beyond its inline buffer, by pointer (Boost's monotonic_resource
// frees a block with another size than it asked for).
class CountingResource final : public boost::json::memory_resource {
public:
    std::size_t peak = 0;

private:
    void* do_allocate(std::size_t size, std::size_t align) override {
        void* p = ::operator new(size, std::align_val_t(align));
        sizes_[p] = size;
        outstanding_ += size;
        if (outstanding_ > peak) peak = outstanding_;
        return p;
    }
    void do_deallocate(void* p, std::size_t, std::size_t align) override {
        outstanding_ -= sizes_[p];
        sizes_.erase(p);
        ::operator delete(p, std::align_val_t(align));
    }
    bool do_is_equal(const boost::json::memory_resource& other) const noexcept override { return this == &other; }

    std::map<void*, std::size_t> sizes_;
    std::size_t outstanding_ = 0;
};

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
    CountingResource counting;
    EventParser parser(EventParserOptions{(data[2] & 1) != 0}, boost::json::storage_ptr(&counting));
    UuidGenerator ids(42);
    LineFramer framer(max_line);
    std::string_view stream(reinterpret_cast<const char*>(data) + 3, size - 3);
    while (!stream.empty()) {
        const auto take = std::min(read_size, stream.size());
        std::string_view chunk = stream.substr(0, take);
        stream.remove_prefix(take);
        while (auto frame = framer.next(chunk)) handle(parser, ids, framer, *frame);
        check(framer.buffered() <= max_line + 1);
        // A JSON value takes 16 bytes for as little as 2 bytes of input ("0,"), and blocks double.
        check(counting.peak <= 32 * max_line + 64 * 1024);
    }
    if (auto frame = framer.finish()) handle(parser, ids, framer, *frame);
    return 0;
}
