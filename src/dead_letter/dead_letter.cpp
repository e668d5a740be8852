#include <avr_webhookd/dead_letter/dead_letter.hpp>

#include <boost/asio/post.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace avr_webhookd {

namespace {

std::string errno_text(std::string_view what, const std::string& path) {
    return std::string(what) + " dead_letter file " + path + ": " + std::strerror(errno);
}

// Writes all of `data`; false (errno set) on an error or a write that makes no progress.
bool write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        const auto written = ::write(fd, data.data(), data.size());
        if (written < 0 && errno == EINTR) continue;
        if (written <= 0) {
            if (written == 0) errno = ENOSPC;
            return false;
        }
        data.remove_prefix(static_cast<std::size_t>(written));
    }
    return true;
}

}  // namespace

DeadLetterFile::DeadLetterFile(std::string path) : path_(std::move(path)) {
    if (path_.empty()) return;
    const std::filesystem::path file(path_);
    std::error_code ignored;
    if (file.has_parent_path()) std::filesystem::create_directories(file.parent_path(), ignored);
    fd_ = ::open(path_.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd_ < 0)
        throw std::runtime_error("cannot open dead_letter file " + path_ + ": " + std::strerror(errno) +
                                 " (set dead_letter to a writable path, or to empty to turn it off)");
    // A torn last line (the previous run died mid-write) is closed, so the next line stays whole.
    struct stat status {};
    char last = '\n';
    if (::fstat(fd_, &status) == 0 && status.st_size > 0 && ::pread(fd_, &last, 1, status.st_size - 1) == 1 &&
        last != '\n' && !write_all(fd_, "\n")) {
        const std::string error = errno_text("cannot repair the last line of", path_);
        ::close(fd_);
        fd_ = -1;
        throw std::runtime_error(error);
    }
}

DeadLetterFile::~DeadLetterFile() {
    if (fd_ >= 0) ::close(fd_);
}

DeadLetterFile::BatchResult DeadLetterFile::append(const std::vector<std::string>& lines, std::uint64_t max_bytes) {
    BatchResult result;
    if (fd_ < 0) {
        result.error = "no dead-letter file is configured";
        return result;
    }
    struct stat status {};
    if (::fstat(fd_, &status) != 0) {  // the size is read each time: an operator may have emptied the file
        result.error = errno_text("cannot stat", path_);
        return result;
    }
    const auto size_before = static_cast<std::uint64_t>(status.st_size);
    std::string record;
    for (const auto& line : lines) {
        if (max_bytes > 0 && size_before + record.size() + line.size() + 1 > max_bytes) break;
        record.append(line).push_back('\n');
        ++result.written;
    }
    result.overflowed = lines.size() - result.written;
    if (record.empty()) return result;
    const bool ok = write_all(fd_, record);
    if (!ok || ::fdatasync(fd_) != 0) {
        result.error = errno_text(ok ? "cannot sync" : "cannot write", path_);
        // Cut back what went in, so no torn or unsynced line is left that the log reports as lost.
        while (::ftruncate(fd_, static_cast<off_t>(size_before)) != 0 && errno == EINTR) {}
        result.written = 0;
    }
    return result;
}

struct DeadLetterWriter::Shared {
    struct Item {
        std::string line;
        Completion done;
    };

    Shared(boost::asio::any_io_executor executor_, std::string path, std::uint64_t max_bytes_)
        : executor(std::move(executor_)), file(std::move(path)), max_bytes(max_bytes_) {}

    boost::asio::any_io_executor executor;
    DeadLetterFile file;
    std::atomic<std::uint64_t> max_bytes;
    std::atomic<bool> full{false};
    std::size_t pending = 0;  // event-loop thread only

    std::mutex mutex;                 // guards what follows
    std::condition_variable wake;     // work for the thread, or stop
    std::condition_variable settled;  // the thread has nothing left in hand
    std::vector<Item> todo;
    std::size_t todo_bytes = 0;
    std::vector<std::pair<Completion, Outcome>> done;
    bool busy = false;
    bool stop = false;
};

DeadLetterWriter::DeadLetterWriter(boost::asio::any_io_executor executor, std::string path, std::uint64_t max_bytes)
    : shared_(std::make_shared<Shared>(std::move(executor), std::move(path), max_bytes)) {
    if (shared_->file.enabled()) std::thread(run, shared_).detach();  // finish() waits for it, bounded
}

DeadLetterWriter::~DeadLetterWriter() { finish(std::chrono::seconds(30)); }

bool DeadLetterWriter::enabled() const { return shared_->file.enabled(); }
const std::string& DeadLetterWriter::path() const { return shared_->file.path(); }
void DeadLetterWriter::set_max_bytes(std::uint64_t max_bytes) { shared_->max_bytes = max_bytes; }
std::uint64_t DeadLetterWriter::max_bytes() const { return shared_->max_bytes; }
bool DeadLetterWriter::full() const { return shared_->full; }
std::size_t DeadLetterWriter::pending() const { return shared_->pending; }

void DeadLetterWriter::append(std::string line, Completion done) {
    std::string refusal;
    if (finished_ || !enabled()) refusal = finished_ ? "the dead-letter writer has stopped" : "no dead-letter file";
    {
        std::lock_guard lock(shared_->mutex);
        if (refusal.empty() && shared_->todo_bytes + line.size() > max_backlog_bytes)
            refusal = "the dead-letter file is not keeping up (" + std::to_string(max_backlog_bytes >> 20) +
                      " MiB waiting to be written)";
        if (refusal.empty()) {
            shared_->todo_bytes += line.size();
            shared_->todo.push_back(Shared::Item{std::move(line), std::move(done)});
            shared_->wake.notify_one();
            ++shared_->pending;
            return;
        }
    }
    done(Outcome{Result::failed, refusal, std::move(line)});
}

void DeadLetterWriter::run(const std::shared_ptr<Shared>& shared) {
    std::unique_lock lock(shared->mutex);
    for (;;) {
        shared->wake.wait(lock, [&] { return shared->stop || !shared->todo.empty(); });
        if (shared->todo.empty()) break;  // stopping, and nothing left
        std::vector<Shared::Item> batch;
        batch.swap(shared->todo);
        shared->todo_bytes = 0;
        shared->busy = true;
        lock.unlock();

        std::vector<std::string> lines;
        lines.reserve(batch.size());
        for (auto& item : batch) lines.push_back(std::move(item.line));
        const auto result = shared->file.append(lines, shared->max_bytes);
        shared->full = result.overflowed > 0;

        lock.lock();
        const bool post = shared->done.empty();
        for (std::size_t i = 0; i < batch.size(); ++i) {
            Outcome outcome{Result::written, {}, {}};
            if (!result.error.empty()) outcome = Outcome{Result::failed, result.error, std::move(lines[i])};
            else if (i >= result.written) outcome = Outcome{Result::overflow, {}, std::move(lines[i])};
            shared->done.emplace_back(std::move(batch[i].done), std::move(outcome));
        }
        shared->busy = false;
        shared->settled.notify_all();
        // After finish() began, the loop may be gone: finish() runs the completions itself.
        if (post && !shared->stop)
            boost::asio::post(shared->executor, [weak = std::weak_ptr<Shared>(shared)] {
                if (auto alive = weak.lock()) run_completions(*alive);
            });
    }
    shared->busy = false;
    shared->settled.notify_all();
}

void DeadLetterWriter::run_completions(Shared& shared) {
    std::vector<std::pair<Completion, Outcome>> done;
    {
        std::lock_guard lock(shared.mutex);
        done.swap(shared.done);
    }
    for (auto& [completion, outcome] : done) {
        --shared.pending;
        completion(outcome);
    }
}

void DeadLetterWriter::finish(std::chrono::milliseconds budget) {
    if (finished_) return;
    finished_ = true;
    std::vector<Shared::Item> untaken;
    {
        std::unique_lock lock(shared_->mutex);
        shared_->stop = true;
        shared_->wake.notify_all();
        shared_->settled.wait_for(lock, budget, [&] { return shared_->todo.empty() && !shared_->busy; });
        untaken.swap(shared_->todo);  // the thread did not get to these in time (a hung disk)
    }
    run_completions(*shared_);
    for (auto& item : untaken) {
        --shared_->pending;
        item.done(Outcome{Result::failed, "the dead-letter file did not take the line within the shutdown budget",
                          std::move(item.line)});
    }
}

}  // namespace avr_webhookd
