#include <avr_webhookd/spool/sync_ledger.hpp>

#include <algorithm>
#include <iterator>
#include <utility>

namespace avr_webhookd::spool {

void SyncLedger::flushed(Batch batch) {
    bytes_ += batch.bytes.size();
    unconfirmed_.push_back(std::move(batch));
}

void SyncLedger::synced(std::uint64_t first, std::uint64_t last) {
    for (auto& batch : unconfirmed_)
        if (first <= batch.generation && batch.generation <= last) batch.confirmed = true;
    while (!unconfirmed_.empty() && unconfirmed_.front().confirmed) {
        bytes_ -= unconfirmed_.front().bytes.size();
        unconfirmed_.pop_front();
    }
}

void SyncLedger::failed() {
    std::move(unconfirmed_.begin(), unconfirmed_.end(), std::back_inserter(failed_));
    unconfirmed_.clear();
}

std::vector<SyncLedger::Batch> SyncLedger::take_failed() {
    for (const auto& batch : failed_) bytes_ -= batch.bytes.size();
    return std::exchange(failed_, {});
}

std::vector<std::shared_ptr<FileHandle>> SyncLedger::unconfirmed_files() const {
    std::vector<std::shared_ptr<FileHandle>> files;
    for (const auto& batch : unconfirmed_)
        if (!batch.confirmed && batch.file && std::find(files.begin(), files.end(), batch.file) == files.end())
            files.push_back(batch.file);
    return files;
}

std::optional<std::uint64_t> SyncLedger::oldest_unconfirmed() const {
    std::optional<std::uint64_t> oldest;
    const auto note = [&](const Batch& batch) {
        if (!oldest || batch.covers_from < *oldest) oldest = batch.covers_from;
    };
    std::for_each(failed_.begin(), failed_.end(), note);
    for (const auto& batch : unconfirmed_)
        if (!batch.confirmed) note(batch);
    return oldest;
}

}  // namespace avr_webhookd::spool
