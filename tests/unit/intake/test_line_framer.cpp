#include <avr_webhookd/intake/line_framer.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using avr_webhookd::LineFramer;

namespace {

struct Collected {
    std::vector<std::string> lines;
    std::vector<std::uint64_t> numbers;
    std::vector<std::uint64_t> too_long;
};

Collected frame_chunks(std::size_t max_line, const std::vector<std::string>& chunks, bool finish = true) {
    LineFramer framer(max_line);
    Collected out;
    auto sink = [&](const LineFramer::Frame& frame) {
        if (frame.kind == LineFramer::FrameKind::too_long) {
            out.too_long.push_back(frame.number);
        } else {
            out.lines.emplace_back(frame.text);
            out.numbers.push_back(frame.number);
        }
    };
    for (const auto& chunk : chunks) framer.feed(chunk, sink);
    if (finish) framer.finish(sink);
    return out;
}

// Feeds `text` split at every possible position and checks the result never depends on it.
Collected frame_every_split(std::size_t max_line, const std::string& text) {
    const auto whole = frame_chunks(max_line, {text});
    for (std::size_t cut = 1; cut < text.size(); ++cut) {
        const auto split = frame_chunks(max_line, {text.substr(0, cut), text.substr(cut)});
        REQUIRE(split.lines == whole.lines);
        REQUIRE(split.numbers == whole.numbers);
        REQUIRE(split.too_long == whole.too_long);
    }
    return whole;
}

}  // namespace

TEST_CASE("line framer splits lines and numbers them physically", "[framer]") {
    const auto out = frame_every_split(100, "a\nbb\n\nccc\n");
    CHECK(out.lines == std::vector<std::string>{"a", "bb", "ccc"});
    CHECK(out.numbers == std::vector<std::uint64_t>{1, 2, 4});
    CHECK(out.too_long.empty());
}

TEST_CASE("line framer strips CR and skips blank CRLF lines", "[framer]") {
    const auto out = frame_every_split(100, "one\r\n\r\ntwo\r\n");
    CHECK(out.lines == std::vector<std::string>{"one", "two"});
    CHECK(out.numbers == std::vector<std::uint64_t>{1, 3});
}

TEST_CASE("line framer emits an unterminated last line at finish only", "[framer]") {
    CHECK(frame_chunks(100, {"first\nlast"}, false).lines == std::vector<std::string>{"first"});
    const auto out = frame_every_split(100, "first\nlast");
    CHECK(out.lines == std::vector<std::string>{"first", "last"});
    CHECK(out.numbers == std::vector<std::uint64_t>{1, 2});
}

TEST_CASE("line framer accepts a line of exactly max_line bytes", "[framer][limits]") {
    const std::string exact(8, 'x');
    auto out = frame_every_split(8, exact + "\n" + exact + "\r\n" + exact);
    CHECK(out.lines == std::vector<std::string>{exact, exact, exact});
    CHECK(out.too_long.empty());
}

TEST_CASE("line framer rejects max_line + 1 bytes and resynchronises", "[framer][limits]") {
    const std::string over(9, 'y');
    const auto out = frame_every_split(8, "ok\n" + over + "\n" + over + "\r\nafter\n" + over);
    CHECK(out.lines == std::vector<std::string>{"ok", "after"});
    CHECK(out.numbers == std::vector<std::uint64_t>{1, 4});
    CHECK(out.too_long == std::vector<std::uint64_t>{2, 3, 5});
}

TEST_CASE("line framer keeps memory bounded on an endless line", "[framer][limits]") {
    LineFramer framer(1024);
    std::vector<std::uint64_t> too_long;
    std::size_t lines = 0;
    auto sink = [&](const LineFramer::Frame& frame) {
        if (frame.kind == LineFramer::FrameKind::too_long) too_long.push_back(frame.number);
        else ++lines;
    };
    const std::string chunk(4096, 'z');
    for (int i = 0; i < 1000; ++i) {
        framer.feed(chunk, sink);
        REQUIRE(framer.buffered() <= 1025);
    }
    framer.feed("\n{\"next\":1}\n", sink);
    CHECK(too_long == std::vector<std::uint64_t>{1});
    CHECK(lines == 1);
    CHECK(framer.lines_seen() == 2);
}
