#include <avr_webhookd/dead_letter/replay_record.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace avr_webhookd {

namespace {

constexpr std::string_view header =
    "# avr-webhookd dead-letters replay: events sent again (destination, id, failure time); "
    "delete this file to make them replayable\n";

std::runtime_error failure(std::string_view what, const std::string& path) {
    return std::runtime_error(std::string(what) + " " + path + ": " + std::strerror(errno));
}

// A key is three tab-separated fields; anything else (a torn line, the header) is not one.
bool is_key(std::string_view line) {
    const auto first = line.find('\t');
    return first != std::string_view::npos && line.find('\t', first + 1) != std::string_view::npos &&
           line.find('\t', line.find('\t', first + 1) + 1) == std::string_view::npos;
}

bool write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        const auto written = ::write(fd, data.data(), data.size());
        if (written < 0 && errno == EINTR) continue;
        if (written <= 0) return false;
        data.remove_prefix(static_cast<std::size_t>(written));
    }
    return true;
}

void sync_folder(const std::string& file) {
    const auto folder = std::filesystem::path(file).parent_path();
    const int fd = ::open(folder.empty() ? "." : folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    ::fsync(fd);
    ::close(fd);
}

}  // namespace

ReplayRecord::ReplayRecord(const std::string& dead_letter_path, Mode mode)
    : path_(dead_letter_path + ".replayed"), mode_(mode) {
    if (mode_ == Mode::locked) {
        const auto lock_path = path_ + ".lock";
        lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
        if (lock_fd_ < 0) throw failure("cannot create", lock_path);
        if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
            const bool busy = errno == EWOULDBLOCK;
            ::close(lock_fd_);
            lock_fd_ = -1;
            if (busy)
                throw std::runtime_error("another dead-letters replay of this file is running (" + lock_path + ")");
            throw failure("cannot lock", lock_path);
        }
    }
    std::error_code ignored;
    std::ifstream in(path_, std::ios::binary);
    if (!in.is_open() && std::filesystem::exists(path_, ignored)) throw failure("cannot read", path_);
    for (std::string line; std::getline(in, line);)
        if (is_key(line)) keys_.insert(line);
}

ReplayRecord::~ReplayRecord() {
    if (append_fd_ >= 0) ::close(append_fd_);
    if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the lock
}

void ReplayRecord::mark_present(const std::string& key) {
    if (keys_.contains(key)) kept_.insert(key);
}

void ReplayRecord::open_for_append() {
    if (append_fd_ >= 0) return;
    if (mode_ != Mode::locked) throw std::logic_error("ReplayRecord: written without the lock");
    append_fd_ = ::open(path_.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
    if (append_fd_ < 0) throw failure("cannot write", path_);
    const auto size = ::lseek(append_fd_, 0, SEEK_END);
    char last = '\n';
    if (size > 0 && ::pread(append_fd_, &last, 1, size - 1) != 1) throw failure("cannot read", path_);
    // A torn last line from an interrupted run is closed first, so the next key stays whole.
    const std::string_view start = size == 0 ? header : last != '\n' ? "\n" : "";
    if (!write_all(append_fd_, start)) throw failure("cannot write", path_);
}

void ReplayRecord::add(const std::vector<std::string>& keys) {
    if (keys.empty()) return;
    open_for_append();
    std::string text;
    for (const auto& key : keys) text.append(key).push_back('\n');
    if (!write_all(append_fd_, text) || ::fdatasync(append_fd_) != 0) throw failure("cannot write", path_);
    for (const auto& key : keys) {
        keys_.insert(key);
        kept_.insert(key);
    }
}

void ReplayRecord::compact() {
    if (mode_ != Mode::locked) throw std::logic_error("ReplayRecord: compacted without the lock");
    const auto temporary = path_ + ".tmp";
    // The folder may be writable by the daemon's user while an operator runs this as root: never
    // follow a link planted at these names (a stale temporary is removed, then created anew).
    ::unlink(temporary.c_str());
    const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0640);
    if (fd < 0) throw failure("cannot write", temporary);
    std::string text(header);
    for (const auto& key : kept_) text.append(key).push_back('\n');
    const bool written = write_all(fd, text) && ::fsync(fd) == 0;
    ::close(fd);
    if (!written || ::rename(temporary.c_str(), path_.c_str()) != 0) {
        const auto error = failure("cannot write", temporary);
        ::unlink(temporary.c_str());
        throw error;
    }
    sync_folder(path_);
    if (append_fd_ >= 0) ::close(append_fd_);  // it points at the file replaced
    append_fd_ = -1;
    keys_ = kept_;
}

}  // namespace avr_webhookd
