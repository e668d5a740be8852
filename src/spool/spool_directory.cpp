#include <avr_webhookd/spool/spool_directory.hpp>

#include <avr_webhookd/spool/spool_error.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>

namespace avr_webhookd::spool {
namespace {

constexpr std::string_view kPrefix = "segment-";
constexpr std::string_view kSuffix = ".log";

std::string errno_text(int error) { return std::strerror(error); }

}  // namespace

FileHandle::~FileHandle() {
    if (fd_ >= 0) ::close(fd_);
}

FileHandle& FileHandle::operator=(FileHandle&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
}

std::string segment_file_name(std::uint64_t number) {
    char name[64];
    std::snprintf(name, sizeof name, "segment-%016llx.log", static_cast<unsigned long long>(number));
    return name;
}

std::optional<std::uint64_t> parse_segment_file_name(std::string_view name) {
    if (name.size() != kPrefix.size() + 16 + kSuffix.size() || !name.starts_with(kPrefix) || !name.ends_with(kSuffix))
        return std::nullopt;
    const std::string_view digits = name.substr(kPrefix.size(), 16);
    if (!std::all_of(digits.begin(), digits.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }))
        return std::nullopt;
    std::uint64_t number = 0;
    std::from_chars(digits.data(), digits.data() + digits.size(), number, 16);
    return number;
}

std::vector<std::uint64_t> list_segments(const std::filesystem::path& dir, std::error_code& ec) {
    std::vector<std::uint64_t> numbers;
    ec.clear();
    std::filesystem::directory_iterator it(dir, ec);
    if (ec) {
        if (ec == std::errc::no_such_file_or_directory) ec.clear();
        return numbers;
    }
    for (const auto& entry : it)
        if (auto number = parse_segment_file_name(entry.path().filename().native())) numbers.push_back(*number);
    std::sort(numbers.begin(), numbers.end());
    return numbers;
}

std::string read_whole_file(const std::filesystem::path& file, std::error_code& ec) {
    ec.clear();
    std::string bytes;
    FileHandle fd(::open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) {
        ec.assign(errno, std::system_category());
        return bytes;
    }
    struct stat info {};
    if (::fstat(fd.get(), &info) == 0 && info.st_size > 0) bytes.reserve(static_cast<std::size_t>(info.st_size));
    char buffer[1 << 16];
    for (;;) {
        const auto got = ::read(fd.get(), buffer, sizeof buffer);
        if (got == 0) break;
        if (got < 0) {
            if (errno == EINTR) continue;
            ec.assign(errno, std::system_category());
            break;
        }
        bytes.append(buffer, static_cast<std::size_t>(got));
    }
    return bytes;
}

namespace {

std::string mode_text(mode_t mode) {
    char text[8];
    std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
    return text;
}

}  // namespace

SpoolDirectory::SpoolDirectory(std::filesystem::path path, FileHandle dir_fd, FileHandle lock_fd)
    : path_(std::move(path)), dir_fd_(std::move(dir_fd)), lock_fd_(std::move(lock_fd)) {}

SpoolDirectory SpoolDirectory::open(const std::filesystem::path& dir) {
    using Kind = SpoolOpenError::Kind;
    if (dir.empty()) throw SpoolOpenError(Kind::cannot_create, "spool_dir is empty");
    std::error_code ec;
    if (dir.has_parent_path() && !std::filesystem::exists(dir.parent_path(), ec))
        std::filesystem::create_directories(dir.parent_path(), ec);
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
        throw SpoolOpenError(Kind::cannot_create, "cannot create spool_dir " + dir.native() + ": " + errno_text(errno));
    FileHandle dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir_fd)
        throw SpoolOpenError(Kind::cannot_create, "cannot open spool_dir " + dir.native() + ": " + errno_text(errno));
    // Whoever may write here may plant records that get delivered (and signed): only we may.
    struct stat info {};
    if (::fstat(dir_fd.get(), &info) != 0)
        throw SpoolOpenError(Kind::cannot_create, "cannot stat spool_dir " + dir.native() + ": " + errno_text(errno));
    if (info.st_uid != ::geteuid() || (info.st_mode & (S_IWGRP | S_IWOTH)) != 0)
        throw SpoolOpenError(Kind::cannot_create,
                             "spool_dir " + dir.native() + " must belong to the daemon's user (uid " +
                                 std::to_string(::geteuid()) + ") and be writable by it alone; it belongs to uid " +
                                 std::to_string(info.st_uid) + " with mode " + mode_text(info.st_mode) +
                                 " (chown it, or chmod go-w)");
    // The lock is on the folder itself, so that deleting a file cannot let a second daemon in.
    if (::flock(dir_fd.get(), LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            throw SpoolOpenError(Kind::locked, "spool_dir " + dir.native() + " is in use by another avr-webhookd");
        throw SpoolOpenError(Kind::cannot_create, "cannot lock spool_dir " + dir.native() + ": " + errno_text(errno));
    }
    const auto lock_path = dir / "lock";
    FileHandle lock_fd(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!lock_fd)
        throw SpoolOpenError(Kind::cannot_create, "cannot open " + lock_path.native() + ": " + errno_text(errno));
    // The lock file names its holder, for people; the flock is what counts.
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(lock_fd.get(), 0) == 0) (void)!::pwrite(lock_fd.get(), pid.data(), pid.size(), 0);
    return SpoolDirectory(dir, std::move(dir_fd), std::move(lock_fd));
}

std::error_code SpoolDirectory::sync() const {
    if (::fsync(dir_fd_.get()) != 0) return {errno, std::system_category()};
    return {};
}

}  // namespace avr_webhookd::spool
