// SpoolWriter moving on to a new segment with what it must still write: after a failed sync, the
// records it did not confirm (see the class comment in spool_writer.hpp); on rotate_soon(), the
// done records waiting.

#include <avr_webhookd/spool/spool_writer.hpp>

#include <avr_webhookd/spool/record.hpp>

#include <algorithm>

namespace avr_webhookd::spool {

// Starts a new segment and makes it the home of everything not known to be durable, oldest first:
// the batches whose sync failed, then what was pending for the old segment (records an earlier
// failure already wanted written again, then the caller's new ones). Only the first two are kept
// if a flush fails.
std::error_code SpoolWriter::continue_in_new_segment() {
    const Segment& old = *active_;
    const std::uint64_t old_number = old.number;
    const std::uint64_t old_end = old.bytes;
    if (auto ec = start_segment(old_number + 1)) return ec;

    std::string bytes;
    std::uint64_t from = rewrite_bytes_ > 0 ? rewrite_from_ : 0;
    for (const auto& batch : ledger_.take_failed()) {
        from = from == 0 ? batch.covers_from : std::min(from, batch.covers_from);
        carry_over(batch.bytes, batch.segment, batch.offset, bytes);
    }
    const std::string_view pending(pending_);
    carry_over(pending.substr(0, rewrite_bytes_), old_number, old_end, bytes);
    const std::size_t kept = bytes.size();
    carry_over(pending.substr(rewrite_bytes_), old_number, old_end + rewrite_bytes_, bytes);
    pending_ = std::move(bytes);
    rewrite_bytes_ = kept;
    rewrite_from_ = from;
    return {};
}

// Appends the records of `bytes` (which were meant for `offset` in `segment`) to `out`, bound for
// the end of the active segment: live events move there; done records stay (they may be needed
// against another copy of their event); events already done are written again too, without their
// bookkeeping, because the failed copy may have been their number's only record on disk (the
// numbering checkpoint is written only at the next collect).
void SpoolWriter::carry_over(std::string_view bytes, std::uint64_t segment, std::uint64_t offset, std::string& out) {
    std::size_t at = 0;
    while (at < bytes.size()) {
        const Decoded record = decode_record(bytes.substr(at));
        if (record.status != DecodeStatus::ok) break;  // cannot happen: our own encoding
        const std::string_view whole = bytes.substr(at, record.size);
        if (record.type == RecordType::done) {
            active_->carried.push_back(record.done_id);
        } else if (move_to_active(record.event.record_id)) {
            const auto length = static_cast<std::uint32_t>(record.size);
            relocate(Locator{segment, offset + at, length},
                     Locator{active_->number, active_->bytes + out.size(), length});
        } else {
            widen_range(*active_, record.event.record_id);  // done records about it get carried
        }
        out.append(whole);
        at += record.size;
    }
}

void SpoolWriter::widen_range(Segment& segment, std::uint64_t record_id) {
    if (segment.first_id == 0 || record_id < segment.first_id) segment.first_id = record_id;
    segment.last_id = std::max(segment.last_id, record_id);
}

// The event's bookkeeping moves to the active segment (it stays live). False when it is done or
// unknown.
bool SpoolWriter::move_to_active(std::uint64_t record_id) {
    const auto [owner, index] = owner_of(record_id);
    if (owner == nullptr || owner->done[index]) return false;
    if (owner == active_) return true;
    owner->done[index] = true;
    --owner->live;
    Segment& active = *active_;
    const auto at = std::lower_bound(active.ids.begin(), active.ids.end(), record_id);
    active.done.insert(active.done.begin() + (at - active.ids.begin()), false);
    active.ids.insert(at, record_id);
    ++active.live;
    widen_range(active, record_id);
    return true;
}

void SpoolWriter::relocate(const Locator& from, const Locator& to) {
    Place origin{from.segment, from.offset};
    if (const auto earlier = relocated_from_.find(origin); earlier != relocated_from_.end()) {
        origin = earlier->second;  // moved before: the caller still holds the first place
        relocated_from_.erase(earlier);
    }
    relocated_[origin] = to;
    relocated_from_[Place{to.segment, to.offset}] = origin;
}

// The events relocated into `segment` from `offset` on are gone (the segment was deleted once
// they were done, or they were dropped by a failed flush before they got there).
void SpoolWriter::forget_relocations_into(std::uint64_t segment, std::uint64_t offset) {
    if (relocated_from_.empty()) return;
    const auto first = relocated_from_.lower_bound(Place{segment, offset});
    auto last = first;
    for (; last != relocated_from_.end() && last->first.first == segment; ++last) relocated_.erase(last->second);
    relocated_from_.erase(first, last);
}

Locator SpoolWriter::current_location(const Locator& at) const {
    const auto moved = relocated_.find(Place{at.segment, at.offset});
    return moved == relocated_.end() ? at : moved->second;
}

}  // namespace avr_webhookd::spool
