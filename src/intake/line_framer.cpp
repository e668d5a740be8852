#include <avr_webhookd/intake/line_framer.hpp>

namespace avr_webhookd {

LineFramer::LineFramer(std::size_t max_line) : max_line_(max_line) {}

std::optional<LineFramer::Frame> LineFramer::complete(std::string_view line) {
    ++line_number_;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) return std::nullopt;
    if (line.size() > max_line_) return Frame{FrameKind::too_long, line_number_, {}};
    return Frame{FrameKind::line, line_number_, line};
}

std::optional<LineFramer::Frame> LineFramer::next(std::string_view& data) {
    while (!data.empty()) {
        const auto newline = data.find('\n');
        const std::string_view piece = data.substr(0, newline);
        const std::size_t consumed = newline == std::string_view::npos ? data.size() : newline + 1;
        if (discarding_) {
            data.remove_prefix(consumed);
            if (newline != std::string_view::npos) discarding_ = false;
            continue;
        }
        if (partial_.size() + piece.size() > max_line_ + 1) {
            // Over the limit even if a '\r' ends it: report now, skip the rest of the line.
            partial_.clear();
            partial_.shrink_to_fit();
            data.remove_prefix(consumed);
            discarding_ = newline == std::string_view::npos;
            ++line_number_;
            return Frame{FrameKind::too_long, line_number_, {}};
        }
        if (newline == std::string_view::npos) {
            partial_.append(piece);
            data.remove_prefix(consumed);
            return std::nullopt;
        }
        data.remove_prefix(consumed);
        std::optional<Frame> frame;
        if (partial_.empty()) {
            frame = complete(piece);  // the common case: a whole line inside one read, no copy
        } else {
            line_.swap(partial_);
            line_.append(piece);
            partial_.clear();
            frame = complete(line_);
        }
        if (frame) return frame;
    }
    return std::nullopt;
}

std::optional<LineFramer::Frame> LineFramer::finish() {
    discarding_ = false;
    if (partial_.empty()) return std::nullopt;
    line_.swap(partial_);
    partial_.clear();
    return complete(line_);
}

}  // namespace avr_webhookd
