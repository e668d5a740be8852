#include <avr_webhookd/spool/file_system.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace avr_webhookd::spool {
namespace {

std::error_code last_error() { return {errno, std::system_category()}; }

std::error_code result(int returned) { return returned == 0 ? std::error_code{} : last_error(); }

int open_flags(FileSystem::Mode mode) {
    switch (mode) {
    case FileSystem::Mode::read:
        return O_RDONLY;
    case FileSystem::Mode::write:
        return O_WRONLY;
    case FileSystem::Mode::create_new:
        return O_RDWR | O_CREAT | O_EXCL;
    case FileSystem::Mode::replace:
        return O_WRONLY | O_CREAT | O_TRUNC;
    case FileSystem::Mode::open_or_create:
        return O_RDWR | O_CREAT;
    }
    return O_RDONLY;
}

}  // namespace

void FileHandle::reset() noexcept {
    if (fd_ < 0) return;
    if (files_ != nullptr) files_->close(fd_);
    else ::close(fd_);
    fd_ = -1;
}

FileHandle& FileHandle::operator=(FileHandle&& other) noexcept {
    if (this != &other) {
        reset();
        fd_ = std::exchange(other.fd_, -1);
        files_ = std::exchange(other.files_, nullptr);
    }
    return *this;
}

std::error_code SystemFileSystem::open(const std::filesystem::path& file, Mode mode, FileHandle& out) {
    const int fd = ::open(file.c_str(), open_flags(mode) | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return last_error();
    out = FileHandle(*this, fd);
    return {};
}

std::error_code SystemFileSystem::open_directory(const std::filesystem::path& dir, FileHandle& out) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return last_error();
    out = FileHandle(*this, fd);
    return {};
}

std::error_code SystemFileSystem::make_directory(const std::filesystem::path& dir, mode_t mode) {
    return result(::mkdir(dir.c_str(), mode));
}

void SystemFileSystem::close(int fd) noexcept { ::close(fd); }

std::error_code SystemFileSystem::owner(int fd, Owner& out) {
    struct stat info {};
    if (::fstat(fd, &info) != 0) return last_error();
    out = Owner{info.st_uid, info.st_mode};
    return {};
}

std::error_code SystemFileSystem::lock(int fd) { return result(::flock(fd, LOCK_EX | LOCK_NB)); }

std::error_code SystemFileSystem::write_at(int fd, std::string_view bytes, std::uint64_t offset) {
    while (!bytes.empty()) {
        const auto written = ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
        if (written < 0) {
            if (errno == EINTR) continue;
            return last_error();
        }
        if (written == 0) return std::make_error_code(std::errc::no_space_on_device);
        bytes.remove_prefix(static_cast<std::size_t>(written));
        offset += static_cast<std::uint64_t>(written);
    }
    return {};
}

std::error_code SystemFileSystem::read_at(int fd, char* into, std::size_t size, std::uint64_t offset,
                                          std::size_t& got) {
    got = 0;
    while (got < size) {
        const auto n = ::pread(fd, into + got, size - got, static_cast<off_t>(offset + got));
        if (n < 0) {
            if (errno == EINTR) continue;
            return last_error();
        }
        if (n == 0) break;
        got += static_cast<std::size_t>(n);
    }
    return {};
}

std::error_code SystemFileSystem::file_size(int fd, std::uint64_t& size) {
    struct stat info {};
    if (::fstat(fd, &info) != 0) return last_error();
    size = static_cast<std::uint64_t>(info.st_size);
    return {};
}

std::error_code SystemFileSystem::truncate(int fd, std::uint64_t size) {
    return result(::ftruncate(fd, static_cast<off_t>(size)));
}

std::error_code SystemFileSystem::sync_data(int fd) { return result(::fdatasync(fd)); }

std::error_code SystemFileSystem::sync(int fd) { return result(::fsync(fd)); }

std::error_code SystemFileSystem::rename(const std::filesystem::path& from, const std::filesystem::path& to) {
    return result(::rename(from.c_str(), to.c_str()));
}

std::error_code SystemFileSystem::remove(const std::filesystem::path& file) { return result(::unlink(file.c_str())); }

std::error_code SystemFileSystem::list(const std::filesystem::path& dir, std::vector<std::string>& names) {
    names.clear();
    DIR* stream = ::opendir(dir.c_str());
    if (stream == nullptr) return last_error();
    errno = 0;
    while (const dirent* entry = ::readdir(stream)) {
        const std::string_view name = entry->d_name;
        if (name != "." && name != "..") names.emplace_back(name);
    }
    const int error = errno;
    ::closedir(stream);
    return error == 0 ? std::error_code{} : std::error_code{error, std::system_category()};
}

FileSystem& system_file_system() {
    // Never destroyed: a sync thread left behind by a hung disk may still use it at exit.
    static auto* files = new SystemFileSystem();
    return *files;
}

std::string read_whole_file(FileSystem& files, const std::filesystem::path& file, std::error_code& ec) {
    std::string bytes;
    FileHandle fd;
    if ((ec = files.open(file, FileSystem::Mode::read, fd))) return bytes;
    std::uint64_t size = 0;
    if (!files.file_size(fd.get(), size)) bytes.reserve(static_cast<std::size_t>(size));
    constexpr std::size_t chunk = 1 << 16;
    for (;;) {
        const std::size_t at = bytes.size();
        bytes.resize(at + chunk);
        std::size_t got = 0;
        ec = files.read_at(fd.get(), bytes.data() + at, chunk, at, got);
        bytes.resize(at + got);
        if (ec || got < chunk) break;
    }
    return bytes;
}

std::error_code replace_file_durably(FileSystem& files, const std::filesystem::path& file, std::string_view text) {
    const auto temporary = std::filesystem::path(file.native() + ".tmp");
    const auto write = [&]() -> std::error_code {
        FileHandle fd;
        if (auto ec = files.open(temporary, FileSystem::Mode::replace, fd)) return ec;
        if (auto ec = files.write_at(fd.get(), text, 0)) return ec;
        if (auto ec = files.sync_data(fd.get())) return ec;
        return files.rename(temporary, file);
    };
    if (auto ec = write()) {
        (void)files.remove(temporary);
        return ec;
    }
    FileHandle dir;
    if (auto ec = files.open_directory(file.parent_path(), dir)) return ec;
    return files.sync(dir.get());
}

namespace {

std::error_code make_durably(FileSystem& files, const std::filesystem::path& dir, mode_t mode, bool& created) {
    created = false;
    auto ec = files.make_directory(dir, mode);
    if (ec == std::errc::no_such_file_or_directory && dir.has_relative_path() && dir.has_parent_path()) {
        bool parent_created = false;
        if (auto parent = make_durably(files, dir.parent_path(), 0777, parent_created)) return parent;
        ec = files.make_directory(dir, mode);
    }
    if (ec == std::errc::file_exists) return {};
    if (ec) return ec;
    created = true;
    // The new folder's name is an entry of its parent: durable only once the parent is synced.
    FileHandle parent;
    if (auto open_error = files.open_directory(dir.has_parent_path() ? dir.parent_path() : ".", parent))
        return open_error;
    return files.sync(parent.get());
}

}  // namespace

std::error_code create_directories_durably(FileSystem& files, const std::filesystem::path& dir, bool& created) {
    auto normal = dir.lexically_normal();
    if (!normal.has_filename() && normal.has_parent_path()) normal = normal.parent_path();  // "a/b/"
    return make_durably(files, normal, 0700, created);
}

}  // namespace avr_webhookd::spool
