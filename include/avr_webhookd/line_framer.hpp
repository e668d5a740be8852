#pragma once

#include <cstddef>
#include <cstdint>
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

    // Calls on_frame(const Frame&) for every complete line in `data`. Views passed to on_frame
    // are valid only during the call.
    template <class OnFrame>
    void feed(std::string_view data, OnFrame&& on_frame);

    // End of stream: emits the unterminated last line, if any.
    template <class OnFrame>
    void finish(OnFrame&& on_frame);

    std::size_t max_line() const { return max_line_; }
    std::size_t buffered() const { return partial_.size(); }
    std::uint64_t lines_seen() const { return line_number_; }

private:
    template <class OnFrame>
    void emit(std::string_view line, OnFrame& on_frame);

    std::size_t max_line_;
    std::string partial_;     // start of a line that continues in the next chunk
    bool discarding_ = false; // inside an over-long line, skipping to its newline
    std::uint64_t line_number_ = 0;
};

template <class OnFrame>
void LineFramer::emit(std::string_view line, OnFrame& on_frame) {
    ++line_number_;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) return;
    if (line.size() > max_line_) {
        on_frame(Frame{FrameKind::too_long, line_number_, {}});
        return;
    }
    on_frame(Frame{FrameKind::line, line_number_, line});
}

template <class OnFrame>
void LineFramer::feed(std::string_view data, OnFrame&& on_frame) {
    while (!data.empty()) {
        const auto newline = data.find('\n');
        const std::string_view piece = data.substr(0, newline);
        if (discarding_) {
            if (newline == std::string_view::npos) return;
            discarding_ = false;
        } else if (newline != std::string_view::npos && partial_.empty()) {
            emit(piece, on_frame);  // the common case: a whole line inside one read, no copy
        } else if (partial_.size() + piece.size() > max_line_ + 1) {
            // Over the limit even if a '\r' ends it: report now, skip the rest of the line.
            partial_.clear();
            partial_.shrink_to_fit();
            ++line_number_;
            on_frame(Frame{FrameKind::too_long, line_number_, {}});
            if (newline == std::string_view::npos) {
                discarding_ = true;
                return;
            }
        } else {
            partial_.append(piece);
            if (newline == std::string_view::npos) return;
            emit(partial_, on_frame);
            partial_.clear();
        }
        data.remove_prefix(newline + 1);
    }
}

template <class OnFrame>
void LineFramer::finish(OnFrame&& on_frame) {
    if (!discarding_ && !partial_.empty()) emit(partial_, on_frame);
    partial_.clear();
    discarding_ = false;
}

}  // namespace avr_webhookd
