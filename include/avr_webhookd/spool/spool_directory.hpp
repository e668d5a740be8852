#pragma once

#include <avr_webhookd/spool/file_system.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace avr_webhookd::spool {

// Segment files are named segment-<16 lower-case hex digits>.log, numbered from 1 upwards.
std::string segment_file_name(std::uint64_t number);
std::optional<std::uint64_t> parse_segment_file_name(std::string_view name);
// Every segment in `dir`, in ascending order (other files are ignored; a missing folder is empty).
std::vector<std::uint64_t> list_segments(FileSystem& files, const std::filesystem::path& dir, std::error_code& ec);
inline std::vector<std::uint64_t> list_segments(const std::filesystem::path& dir, std::error_code& ec) {
    return list_segments(system_file_system(), dir, ec);
}

// The spool folder, held exclusively: creates it (mode 0700, and its parent synced so that the new
// folder survives a power loss) when missing and takes an flock on the folder for as long as this
// object lives, so that a second daemon on the same spool is refused. Throws SpoolOpenError with
// one clear line (the daemon exits 73). Every file operation on the spool goes through files().
class SpoolDirectory {
public:
    static SpoolDirectory open(const std::filesystem::path& dir) { return open(system_file_system(), dir); }
    static SpoolDirectory open(FileSystem& files, const std::filesystem::path& dir);

    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path segment_path(std::uint64_t number) const { return path_ / segment_file_name(number); }
    // fsync of the folder itself, so that a new segment's name survives a power loss.
    std::error_code sync() const;
    int fd() const { return dir_fd_.get(); }
    FileSystem& files() const { return *files_; }

private:
    SpoolDirectory(FileSystem& files, std::filesystem::path path, FileHandle dir_fd, FileHandle lock_fd);

    FileSystem* files_;
    std::filesystem::path path_;
    FileHandle dir_fd_;
    FileHandle lock_fd_;
};

}  // namespace avr_webhookd::spool
