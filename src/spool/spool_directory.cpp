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

}  // namespace

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

std::vector<std::uint64_t> list_segments(FileSystem& files, const std::filesystem::path& dir, std::error_code& ec) {
    std::vector<std::uint64_t> numbers;
    std::vector<std::string> names;
    ec = files.list(dir, names);
    if (ec) {
        if (ec == std::errc::no_such_file_or_directory) ec.clear();
        return numbers;
    }
    for (const auto& name : names)
        if (auto number = parse_segment_file_name(name)) numbers.push_back(*number);
    std::sort(numbers.begin(), numbers.end());
    return numbers;
}

namespace {

std::string mode_text(mode_t mode) {
    char text[8];
    std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
    return text;
}

}  // namespace

SpoolDirectory::SpoolDirectory(FileSystem& files, std::filesystem::path path, FileHandle dir_fd, FileHandle lock_fd)
    : files_(&files), path_(std::move(path)), dir_fd_(std::move(dir_fd)), lock_fd_(std::move(lock_fd)) {}

SpoolDirectory SpoolDirectory::open(FileSystem& files, const std::filesystem::path& dir) {
    using Kind = SpoolOpenError::Kind;
    if (dir.empty()) throw SpoolOpenError(Kind::cannot_create, "spool_dir is empty");
    bool created = false;
    if (auto ec = create_directories_durably(files, dir, created))
        throw SpoolOpenError(Kind::cannot_create, "cannot create spool_dir " + dir.native() + ": " + ec.message());
    FileHandle dir_fd;
    if (auto ec = files.open_directory(dir, dir_fd))
        throw SpoolOpenError(Kind::cannot_create, "cannot open spool_dir " + dir.native() + ": " + ec.message());
    // Whoever may write here may plant records that get delivered (and signed): only we may.
    FileSystem::Owner owner;
    if (auto ec = files.owner(dir_fd.get(), owner))
        throw SpoolOpenError(Kind::cannot_create, "cannot stat spool_dir " + dir.native() + ": " + ec.message());
    if (owner.uid != ::geteuid() || (owner.mode & (S_IWGRP | S_IWOTH)) != 0)
        throw SpoolOpenError(Kind::cannot_create,
                             "spool_dir " + dir.native() + " must belong to the daemon's user (uid " +
                                 std::to_string(::geteuid()) + ") and be writable by it alone; it belongs to uid " +
                                 std::to_string(owner.uid) + " with mode " + mode_text(owner.mode) +
                                 " (chown it, or chmod go-w)");
    // The lock is on the folder itself, so that deleting a file cannot let a second daemon in.
    if (auto ec = files.lock(dir_fd.get())) {
        if (ec == std::errc::resource_unavailable_try_again)
            throw SpoolOpenError(Kind::locked, "spool_dir " + dir.native() + " is in use by another avr-webhookd");
        throw SpoolOpenError(Kind::cannot_create, "cannot lock spool_dir " + dir.native() + ": " + ec.message());
    }
    const auto lock_path = dir / "lock";
    FileHandle lock_fd;
    if (auto ec = files.open(lock_path, FileSystem::Mode::open_or_create, lock_fd))
        throw SpoolOpenError(Kind::cannot_create, "cannot open " + lock_path.native() + ": " + ec.message());
    // The lock file names its holder, for people; the flock is what counts.
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (!files.truncate(lock_fd.get(), 0)) (void)files.write_at(lock_fd.get(), pid, 0);
    return SpoolDirectory(files, dir, std::move(dir_fd), std::move(lock_fd));
}

std::error_code SpoolDirectory::sync() const { return files_->sync(dir_fd_.get()); }

}  // namespace avr_webhookd::spool
