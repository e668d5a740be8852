#include <avr_webhookd/spool/block_reader.hpp>

#include "disk_thread.hpp"

#include <avr_webhookd/spool/spool_error.hpp>

#include <algorithm>

namespace avr_webhookd::spool {
namespace {

constexpr std::size_t remembered_failures = 8;

}  // namespace

BlockReader::BlockReader(boost::asio::io_context& io, const SpoolWriter& writer)
    : writer_(writer), thread_(std::make_unique<DiskThread>(io)) {}

BlockReader::~BlockReader() = default;

bool BlockReader::stop(std::chrono::steady_clock::duration budget) {
    stopped_ = true;
    reading_.clear();
    return thread_->finish(budget);
}

BlockReader::Status BlockReader::read(const Locator& at, Waiter& waiter, StoredEvent& event, std::string& body,
                                      std::error_code& error) {
    SpoolWriter::Source source;
    if ((error = writer_.locate(at, source))) return Status::failed;
    if (!source.file) {  // not written yet: in memory
        error = SpoolWriter::decode_event(source.pending, at, event, body);
        return error ? Status::failed : Status::ready;
    }
    const Locator& place = source.place;
    const auto decode = [&](const Range& range, std::string_view bytes) {
        error = SpoolWriter::decode_event(bytes.substr(place.offset - range.offset, place.length), place, event, body);
        event.locator = at;  // as the caller knows it
        return error ? Status::failed : Status::ready;
    };
    for (auto block = blocks_.rbegin(); block != blocks_.rend(); ++block)
        if (block->range.contains(place)) return decode(block->range, block->bytes);
    // A failed read fails the record it was started for; the others in its range are read again.
    for (const auto& failure : failed_)
        if (failure.range.segment == place.segment && failure.range.offset == place.offset) {
            error = failure.error;
            return Status::failed;
        }
    for (auto& reading : reading_)
        if (reading.range.contains(place)) {
            if (std::find(reading.waiters.begin(), reading.waiters.end(), &waiter) == reading.waiters.end())
                reading.waiters.push_back(&waiter);
            return Status::reading;
        }
    if (stopped_) {
        error = std::make_error_code(std::errc::operation_canceled);
        return Status::failed;
    }
    start(place, source, waiter);
    return Status::reading;
}

// The record and what follows it in its segment, up to block_bytes, read on the thread.
void BlockReader::start(const Locator& place, const SpoolWriter::Source& source, Waiter& waiter) {
    const std::uint64_t end = std::max<std::uint64_t>(std::min<std::uint64_t>(place.offset + block_bytes, source.end),
                                                      place.offset + place.length);
    const Range range{place.segment, place.offset, end - place.offset};
    reading_.push_back(Reading{range, {&waiter}});
    ++reads_;
    thread_->submit([range, file = source.file, &files = writer_.files(), alive = std::weak_ptr<char>(alive_),
                     this]() -> DiskThread::LoopPart {
        std::string bytes(range.length, '\0');
        std::size_t got = 0;
        std::error_code error = files.read_at(file->get(), bytes.data(), bytes.size(), range.offset, got);
        if (!error && got < bytes.size()) error = make_error_code(SpoolErrc::unknown_record);
        return [this, alive, range, bytes = std::move(bytes), error]() mutable {
            if (alive.lock()) finished(range, std::move(bytes), error);
        };
    });
}

void BlockReader::finished(const Range& range, std::string bytes, std::error_code error) {
    const auto found = std::find_if(reading_.begin(), reading_.end(), [&](const Reading& reading) {
        return reading.range.segment == range.segment && reading.range.offset == range.offset;
    });
    if (found == reading_.end()) return;
    const std::vector<Waiter*> waiters = std::move(found->waiters);
    reading_.erase(found);
    if (error) {
        failed_.push_back(Failed{range, error});
        if (failed_.size() > remembered_failures) failed_.pop_front();
    } else {
        blocks_.push_back(Block{range, std::move(bytes)});
        if (blocks_.size() > cached_blocks) blocks_.pop_front();
    }
    for (Waiter* waiter : waiters) waiter->records_read();
}

void BlockReader::forget(const Waiter& waiter) {
    for (auto& reading : reading_) std::erase(reading.waiters, &waiter);
}

}  // namespace avr_webhookd::spool
