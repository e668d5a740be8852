#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace avr_webhookd::spool {

// An owned file descriptor (closed on destruction).
class FileHandle {
public:
    FileHandle() = default;
    explicit FileHandle(int fd) : fd_(fd) {}
    ~FileHandle();
    FileHandle(FileHandle&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    FileHandle& operator=(FileHandle&& other) noexcept;
    FileHandle(const FileHandle&) = delete;
    FileHandle& operator=(const FileHandle&) = delete;

    int get() const { return fd_; }
    explicit operator bool() const { return fd_ >= 0; }

private:
    int fd_ = -1;
};

// Segment files are named segment-<16 lower-case hex digits>.log, numbered from 1 upwards.
std::string segment_file_name(std::uint64_t number);
std::optional<std::uint64_t> parse_segment_file_name(std::string_view name);
// Every segment in `dir`, in ascending order (other files are ignored; a missing folder is empty).
std::vector<std::uint64_t> list_segments(const std::filesystem::path& dir, std::error_code& ec);

// Reads a whole file; ENOENT and others come back in `ec`.
std::string read_whole_file(const std::filesystem::path& file, std::error_code& ec);

// The spool folder, held exclusively: creates it (mode 0700) when missing and takes an flock on
// <dir>/lock for as long as this object lives, so that a second daemon on the same spool is
// refused. Throws SpoolOpenError with one clear line (the daemon exits 73).
class SpoolDirectory {
public:
    static SpoolDirectory open(const std::filesystem::path& dir);

    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path segment_path(std::uint64_t number) const { return path_ / segment_file_name(number); }
    // fsync of the folder itself, so that a new segment's name survives a power loss.
    std::error_code sync() const;
    int fd() const { return dir_fd_.get(); }

private:
    SpoolDirectory(std::filesystem::path path, FileHandle dir_fd, FileHandle lock_fd);

    std::filesystem::path path_;
    FileHandle dir_fd_;
    FileHandle lock_fd_;
};

}  // namespace avr_webhookd::spool
