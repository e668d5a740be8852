#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace avr_webhookd::spool {

class FileSystem;

// An owned file descriptor of a FileSystem (closed through it on destruction; without one, a
// descriptor of the system's).
class FileHandle {
public:
    FileHandle() = default;
    explicit FileHandle(int fd) : fd_(fd) {}
    FileHandle(FileSystem& files, int fd) : fd_(fd), files_(&files) {}
    ~FileHandle() { reset(); }
    FileHandle(FileHandle&& other) noexcept
        : fd_(std::exchange(other.fd_, -1)), files_(std::exchange(other.files_, nullptr)) {}
    FileHandle& operator=(FileHandle&& other) noexcept;
    FileHandle(const FileHandle&) = delete;
    FileHandle& operator=(const FileHandle&) = delete;

    int get() const { return fd_; }
    explicit operator bool() const { return fd_ >= 0; }
    void reset() noexcept;

private:
    int fd_ = -1;
    FileSystem* files_ = nullptr;
};

// Every file operation of the spool goes through this seam: the system calls in production
// (system_file_system(): one virtual call per write, sync, read or rename, never one per record),
// and in the tests a model of the page cache that keeps what was not made durable and loses it
// on a simulated power loss (tests/unit/spool/fault_injection_fs.hpp). Errors are the call's
// errno as std::system_category codes. Implementations must allow calls from several threads
// (the sync and read-back threads run beside the event loop).
class FileSystem {
public:
    enum class Mode {
        read,            // O_RDONLY
        write,           // O_WRONLY, an existing file
        create_new,      // O_RDWR | O_CREAT | O_EXCL, mode 0600
        replace,         // O_WRONLY | O_CREAT | O_TRUNC, mode 0600
        open_or_create,  // O_RDWR | O_CREAT, mode 0600
    };
    struct Owner {
        uid_t uid = 0;
        mode_t mode = 0;
    };

    virtual ~FileSystem() = default;

    virtual std::error_code open(const std::filesystem::path& file, Mode mode, FileHandle& out) = 0;
    virtual std::error_code open_directory(const std::filesystem::path& dir, FileHandle& out) = 0;
    // mkdir(dir, mode); std::errc::file_exists when there is one.
    virtual std::error_code make_directory(const std::filesystem::path& dir, mode_t mode) = 0;
    virtual void close(int fd) noexcept = 0;
    // Who owns the file and its permission bits (fstat).
    virtual std::error_code owner(int fd, Owner& out) = 0;
    // flock(LOCK_EX | LOCK_NB): std::errc::resource_unavailable_try_again when another holds it.
    virtual std::error_code lock(int fd) = 0;

    // Every byte of `bytes` at `offset` (pwrite, again after a short write).
    virtual std::error_code write_at(int fd, std::string_view bytes, std::uint64_t offset) = 0;
    // Up to `size` bytes at `offset` into `into`; `got` < size only at the end of the file.
    virtual std::error_code read_at(int fd, char* into, std::size_t size, std::uint64_t offset, std::size_t& got) = 0;
    virtual std::error_code file_size(int fd, std::uint64_t& size) = 0;
    virtual std::error_code truncate(int fd, std::uint64_t size) = 0;
    virtual std::error_code sync_data(int fd) = 0;  // fdatasync: a file's data and size
    virtual std::error_code sync(int fd) = 0;       // fsync: a folder's entries

    virtual std::error_code rename(const std::filesystem::path& from, const std::filesystem::path& to) = 0;
    virtual std::error_code remove(const std::filesystem::path& file) = 0;  // unlink
    // The names in `dir` (no "." or ".."); std::errc::no_such_file_or_directory when it is missing.
    virtual std::error_code list(const std::filesystem::path& dir, std::vector<std::string>& names) = 0;
};

// The real system calls (not final: a test may make one of them misbehave).
class SystemFileSystem : public FileSystem {
public:
    std::error_code open(const std::filesystem::path& file, Mode mode, FileHandle& out) override;
    std::error_code open_directory(const std::filesystem::path& dir, FileHandle& out) override;
    std::error_code make_directory(const std::filesystem::path& dir, mode_t mode) override;
    void close(int fd) noexcept override;
    std::error_code owner(int fd, Owner& out) override;
    std::error_code lock(int fd) override;
    std::error_code write_at(int fd, std::string_view bytes, std::uint64_t offset) override;
    std::error_code read_at(int fd, char* into, std::size_t size, std::uint64_t offset, std::size_t& got) override;
    std::error_code file_size(int fd, std::uint64_t& size) override;
    std::error_code truncate(int fd, std::uint64_t size) override;
    std::error_code sync_data(int fd) override;
    std::error_code sync(int fd) override;
    std::error_code rename(const std::filesystem::path& from, const std::filesystem::path& to) override;
    std::error_code remove(const std::filesystem::path& file) override;
    std::error_code list(const std::filesystem::path& dir, std::vector<std::string>& names) override;
};

FileSystem& system_file_system();

// Reads a whole file; ENOENT and others come back in `ec`.
std::string read_whole_file(FileSystem& files, const std::filesystem::path& file, std::error_code& ec);
inline std::string read_whole_file(const std::filesystem::path& file, std::error_code& ec) {
    return read_whole_file(system_file_system(), file, ec);
}

// Writes `text` to `file` so that a power loss leaves either the old file or the new one whole:
// a temporary file beside it, fdatasync, rename over it, fsync of the folder. The temporary file
// is removed when a step fails.
std::error_code replace_file_durably(FileSystem& files, const std::filesystem::path& file, std::string_view text);

// Creates `dir` (mode 0700) and any missing parents (0777 less the umask), each made durable by
// an fsync of the folder that holds it, so that a power loss cannot take a spool folder away with
// the records in it. `created`: whether `dir` itself was created (false: it was there already).
std::error_code create_directories_durably(FileSystem& files, const std::filesystem::path& dir, bool& created);

}  // namespace avr_webhookd::spool
