#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace avr_webhookd {

// Splits a byte stream into newline-delimited lines with bounded memory (sans-io).
//
// Lines are numbered from 1 by physical position, blank ones included, so a reply's line
// number is the producer's. A trailing '\r' is stripped (CRLF input), blank lines are skipped.
// A line whose content exceeds max_line bytes is reported once, as soon as the limit is
// passed, and the rest of it is skipped up to the next newline: at most max_line + 1 bytes are
// ever buffered. A line that ends at end of stream without a newline still counts (finish()).
class LineFramer {
public:
    enum class FrameKind { line, too_long };
    struct Frame {
        FrameKind kind;
        std::uint64_t number;
        std::string_view text;  // the line without its terminator; empty for too_long
    };

    explicit LineFramer(std::size_t max_line);

    // Consumes `data` up to and including the next complete line and returns its frame, or
    // returns nullopt once `data` is used up (a partial line is kept for the next call). The
    // frame's text stays valid until the next call on this framer or on the bytes of `data`.
    std::optional<Frame> next(std::string_view& data);

    // End of stream: the unterminated last line, if any.
    std::optional<Frame> finish();

    // Convenience: every frame of `data`, then (with finish()) of the end of stream.
    template <class OnFrame>
    void feed(std::string_view data, OnFrame&& on_frame) {
        while (auto frame = next(data)) on_frame(*frame);
    }
    template <class OnFrame>
    void finish(OnFrame&& on_frame) {
        if (auto frame = finish()) on_frame(*frame);
    }

    std::size_t max_line() const { return max_line_; }
    std::size_t buffered() const { return partial_.size(); }
    std::uint64_t lines_seen() const { return line_number_; }

private:
    std::optional<Frame> complete(std::string_view line);

    std::size_t max_line_;
    std::string partial_;      // start of a line that continues in the next chunk
    std::string line_;         // a completed line assembled from several chunks
    bool discarding_ = false;  // inside an over-long line, skipping to its newline
    std::uint64_t line_number_ = 0;
};

}  // namespace avr_webhookd
