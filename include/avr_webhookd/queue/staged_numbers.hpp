#pragma once

#include <avr_webhookd/queue/call_queues.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace avr_webhookd {

// The last sequence number given to each call among the events staged in an open batch (sans-io):
// the batch's next event of a call is numbered after it, before any of them is queued. A small
// open-addressing table: lookups cost a hash and a compare or two whatever the batch holds, it
// allocates only when a batch outgrows every earlier one, and clear() touches only what was used.
class StagedNumbers {
public:
    // The call's last staged number, or nullopt when none of its events is staged.
    std::optional<std::uint64_t> last(const CallKey& key) const {
        if (slots_.empty()) return std::nullopt;
        for (std::size_t i = home(key);; i = (i + 1) & mask()) {
            const Slot& slot = slots_[i];
            if (!slot.used) return std::nullopt;
            if (slot.key == key) return slot.sequence;
        }
    }
    void set(const CallKey& key, std::uint64_t sequence) {
        if (2 * (used_.size() + 1) > slots_.size()) grow();
        for (std::size_t i = home(key);; i = (i + 1) & mask()) {
            Slot& slot = slots_[i];
            if (!slot.used) {
                slot = Slot{key, sequence, true};
                used_.push_back(i);
                return;
            }
            if (slot.key == key) {
                slot.sequence = sequence;
                return;
            }
        }
    }
    void clear() {
        for (const auto i : used_) slots_[i].used = false;
        used_.clear();
    }
    std::size_t size() const { return used_.size(); }

private:
    struct Slot {
        CallKey key{};
        std::uint64_t sequence = 0;
        bool used = false;
    };
    std::size_t mask() const { return slots_.size() - 1; }
    std::size_t home(const CallKey& key) const { return CallQueues::CallKeyHash{}(key)&mask(); }
    void grow() {
        std::vector<Slot> old;
        old.swap(slots_);
        slots_.assign(old.empty() ? 64 : 2 * old.size(), Slot{});
        used_.clear();
        for (const auto& slot : old)
            if (slot.used) set(slot.key, slot.sequence);
    }

    std::vector<Slot> slots_;        // a power of two in size, at most half used
    std::vector<std::size_t> used_;  // the slots in use, for clear()
};

}  // namespace avr_webhookd
