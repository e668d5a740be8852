#include <avr_webhookd/intake/reply_backlog.hpp>

#include <algorithm>
#include <stdexcept>

namespace avr_webhookd {

ReplyBacklog::Added ReplyBacklog::add(std::string_view reply, Kind kind, std::uint64_t ticket, std::uint64_t durable) {
    if (failed_ || (kind == Kind::best_effort && best_effort_bytes() + reply.size() > limit_)) {
        ++dropped_;
        return Added::dropped;
    }
    const bool promised = kind == Kind::promised;
    if (ticket > durable || !held_.empty()) {
        held_.push_back(Held{ticket, reply.size(), kind});
        held_text_.append(reply);
        held_bytes_ += reply.size();
        if (promised) promised_held_ += reply.size();
        return Added::held;
    }
    ready_.append(reply);
    if (promised) promised_ready_ += reply.size();
    return Added::ready;
}

ReplyBacklog::Added ReplyBacklog::answer(std::string_view reply, std::uint64_t ticket, std::uint64_t durable) {
    if (answers_expected_ > 0) --answers_expected_;
    return add(reply, Kind::promised, ticket, durable);
}

bool ReplyBacklog::release(std::uint64_t durable) {
    bool released = false;
    while (!held_.empty() && held_.front().ticket <= durable) {
        const Held front = held_.front();
        held_.pop_front();
        ready_.append(held_text_, held_begin_, front.size);
        held_begin_ += front.size;
        held_bytes_ -= front.size;
        if (front.kind == Kind::promised) {
            promised_held_ -= front.size;
            promised_ready_ += front.size;
        }
        released = true;
    }
    if (held_.empty()) {
        held_text_.clear();
        held_begin_ = 0;
    } else if (held_begin_ > held_text_.size() / 2) {  // amortised: each byte moves at most once more
        held_text_.erase(0, held_begin_);
        held_begin_ = 0;
    }
    return released;
}

void ReplyBacklog::take(std::string& out) {
    if (in_write_ != 0) throw std::logic_error("reply backlog: take() while a write is under way");
    out.clear();
    out.swap(ready_);
    in_write_ = out.size();
    promised_in_write_ = promised_ready_;
    promised_ready_ = 0;
}

void ReplyBacklog::written() {
    in_write_ = 0;
    promised_in_write_ = 0;
}

void ReplyBacklog::fail() {
    failed_ = true;
    dropped_ += held_.size() + static_cast<std::uint64_t>(std::count(ready_.begin(), ready_.end(), '\n'));
    held_.clear();
    held_text_ = std::string();
    held_begin_ = held_bytes_ = 0;
    ready_ = std::string();
    in_write_ = 0;
    promised_held_ = promised_ready_ = promised_in_write_ = 0;
}

ReplyBacklog::Gate ReplyBacklog::gate() const {
    if (failed_ || promised() < limit_) return Gate::read;
    const std::size_t written_out = promised_ready_ + promised_in_write_;
    return written_out >= promised_held_ + answers_expected_ * answer_reservation ? Gate::wait_for_reader
                                                                                  : Gate::wait_for_release;
}

}  // namespace avr_webhookd
