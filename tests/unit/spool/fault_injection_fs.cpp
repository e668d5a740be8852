#include "fault_injection_fs.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace avr_webhookd::spool::test {
namespace {

constexpr std::size_t sector = 512;

std::error_code error(int value) { return {value, std::system_category()}; }

}  // namespace

FaultInjectionFileSystem::FaultInjectionFileSystem(std::uint64_t seed) : random_(seed) {
    root_ = std::make_shared<Inode>();
    root_->directory = true;
}

void FaultInjectionFileSystem::set_faults(Faults faults) {
    std::lock_guard lock(mutex_);
    faults_ = faults;
}

void FaultInjectionFileSystem::crash_after(std::uint64_t count) {
    std::lock_guard lock(mutex_);
    crash_at_ = operations_ + std::max<std::uint64_t>(count, 1);
}

void FaultInjectionFileSystem::crash_now() {
    std::lock_guard lock(mutex_);
    if (crashed_) return;
    take_image();
    crashed_ = true;
}

bool FaultInjectionFileSystem::crashed() const {
    std::lock_guard lock(mutex_);
    return crashed_;
}

void FaultInjectionFileSystem::reboot() {
    std::lock_guard lock(mutex_);
    if (!crashed_) take_image();
    root_ = std::exchange(image_, nullptr);
    descriptors_.clear();
    locks_.clear();
    crash_at_.reset();
    crashed_ = false;
}

std::uint64_t FaultInjectionFileSystem::operations() const {
    std::lock_guard lock(mutex_);
    return operations_;
}

std::optional<std::string> FaultInjectionFileSystem::contents(const std::filesystem::path& file) const {
    std::lock_guard lock(mutex_);
    const auto inode = resolve(file);
    if (!inode || inode->directory) return std::nullopt;
    return inode->data;
}

std::error_code FaultInjectionFileSystem::begin_mutation() {
    if (crashed_) return error(EIO);
    ++operations_;
    if (crash_at_ && operations_ >= *crash_at_) {
        take_image();
        crashed_ = true;
        return error(EIO);
    }
    return {};
}

bool FaultInjectionFileSystem::inject(int per_mille) {
    if (per_mille <= 0 || static_cast<int>(random_() % 1000) >= per_mille) return false;
    ++stats_.failed_operations;
    return true;
}

FaultInjectionFileSystem::InodePtr FaultInjectionFileSystem::resolve(const std::filesystem::path& path) const {
    if (!path.is_absolute()) return nullptr;
    InodePtr at = root_;
    for (const auto& part : path.relative_path()) {
        if (part.empty() || part == ".") continue;
        if (!at->directory) return nullptr;
        const auto found = at->entries.find(part.native());
        if (found == at->entries.end()) return nullptr;
        at = found->second;
    }
    return at;
}

std::error_code FaultInjectionFileSystem::parent_of(const std::filesystem::path& path, InodePtr& dir,
                                                    std::string& name) const {
    auto normal = path.lexically_normal();
    if (!normal.has_filename()) normal = normal.parent_path();
    name = normal.filename().native();
    dir = resolve(normal.parent_path());
    if (!dir || name.empty()) return error(ENOENT);
    if (!dir->directory) return error(ENOTDIR);
    return {};
}

FaultInjectionFileSystem::OpenFile* FaultInjectionFileSystem::file_of(int fd) {
    const auto found = descriptors_.find(fd);
    return found == descriptors_.end() ? nullptr : &found->second;
}

int FaultInjectionFileSystem::add_descriptor(InodePtr inode, bool writable) {
    const int fd = next_fd_++;
    descriptors_[fd] = OpenFile{std::move(inode), writable};
    return fd;
}

void FaultInjectionFileSystem::record(Inode& dir, DirectoryOp op) { dir.pending.push_back(std::move(op)); }

void FaultInjectionFileSystem::write_bytes(Inode& file, std::string_view bytes, std::uint64_t offset) {
    const auto end = static_cast<std::size_t>(offset) + bytes.size();
    if (file.data.size() < end) resize(file, end);
    std::copy(bytes.begin(), bytes.end(), file.data.begin() + static_cast<std::ptrdiff_t>(offset));
    std::copy(bytes.begin(), bytes.end(), file.writeback.begin() + static_cast<std::ptrdiff_t>(offset));
}

void FaultInjectionFileSystem::resize(Inode& file, std::uint64_t size) {
    file.data.resize(static_cast<std::size_t>(size), '\0');
    file.writeback.resize(static_cast<std::size_t>(size), '\0');
}

std::error_code FaultInjectionFileSystem::open(const std::filesystem::path& file, Mode mode, FileHandle& out) {
    std::lock_guard lock(mutex_);
    if (crashed_) return error(EIO);
    InodePtr dir;
    std::string name;
    if (auto ec = parent_of(file, dir, name)) return ec;
    const auto found = dir->entries.find(name);
    InodePtr inode = found == dir->entries.end() ? nullptr : found->second;
    if (inode && inode->directory) return error(EISDIR);
    const bool creating = mode == Mode::create_new || mode == Mode::replace || mode == Mode::open_or_create;
    if (mode == Mode::create_new && inode) return error(EEXIST);
    if (!inode && !creating) return error(ENOENT);
    if (!inode) {
        if (auto ec = begin_mutation()) return ec;
        if (inject(faults_.create)) return error(ENOSPC);
        inode = std::make_shared<Inode>();
        dir->entries[name] = inode;
        record(*dir, DirectoryOp{{}, name, inode});
    } else if (mode == Mode::replace) {
        if (auto ec = begin_mutation()) return ec;
        resize(*inode, 0);
    }
    out = FileHandle(*this, add_descriptor(inode, mode != Mode::read));
    return {};
}

std::error_code FaultInjectionFileSystem::open_directory(const std::filesystem::path& dir, FileHandle& out) {
    std::lock_guard lock(mutex_);
    if (crashed_) return error(EIO);
    auto inode = resolve(dir.lexically_normal());
    if (!inode) return error(ENOENT);
    if (!inode->directory) return error(ENOTDIR);
    out = FileHandle(*this, add_descriptor(std::move(inode), false));
    return {};
}

std::error_code FaultInjectionFileSystem::make_directory(const std::filesystem::path& dir, mode_t) {
    std::lock_guard lock(mutex_);
    if (crashed_) return error(EIO);
    InodePtr parent;
    std::string name;
    if (auto ec = parent_of(dir, parent, name)) return ec;
    if (parent->entries.contains(name)) return error(EEXIST);
    if (auto ec = begin_mutation()) return ec;
    if (inject(faults_.create)) return error(ENOSPC);
    auto inode = std::make_shared<Inode>();
    inode->directory = true;
    parent->entries[name] = inode;
    record(*parent, DirectoryOp{{}, name, inode});
    return {};
}

void FaultInjectionFileSystem::close(int fd) noexcept {
    std::lock_guard lock(mutex_);
    const auto found = descriptors_.find(fd);
    if (found == descriptors_.end()) return;
    const auto held = locks_.find(found->second.inode.get());
    if (held != locks_.end() && held->second == fd) locks_.erase(held);
    descriptors_.erase(found);
}

std::error_code FaultInjectionFileSystem::owner(int fd, Owner& out) {
    std::lock_guard lock(mutex_);
    const auto* file = file_of(fd);
    if (crashed_ || !file) return error(crashed_ ? EIO : EBADF);
    out = Owner{::geteuid(), static_cast<mode_t>(file->inode->directory ? (S_IFDIR | 0700) : (S_IFREG | 0600))};
    return {};
}

std::error_code FaultInjectionFileSystem::lock(int fd) {
    std::lock_guard lock(mutex_);
    const auto* file = file_of(fd);
    if (crashed_ || !file) return error(crashed_ ? EIO : EBADF);
    const auto [held, inserted] = locks_.try_emplace(file->inode.get(), fd);
    if (!inserted && held->second != fd) return error(EWOULDBLOCK);
    return {};
}

std::error_code FaultInjectionFileSystem::write_at(int fd, std::string_view bytes, std::uint64_t offset) {
    std::lock_guard lock(mutex_);
    auto* file = file_of(fd);
    if (crashed_ || !file) return error(crashed_ ? EIO : EBADF);
    if (!file->writable || file->inode->directory) return error(EBADF);
    if (auto ec = begin_mutation()) return ec;
    if (inject(faults_.write)) {  // a short write, then the disk is full
        write_bytes(*file->inode,
                    bytes.substr(0, static_cast<std::size_t>(random_() % std::max<std::size_t>(bytes.size(), 1))),
                    offset);
        return error(ENOSPC);
    }
    write_bytes(*file->inode, bytes, offset);
    return {};
}

std::error_code FaultInjectionFileSystem::read_at(int fd, char* into, std::size_t size, std::uint64_t offset,
                                                  std::size_t& got) {
    std::lock_guard lock(mutex_);
    got = 0;
    const auto* file = file_of(fd);
    if (crashed_ || !file) return error(crashed_ ? EIO : EBADF);
    if (file->inode->directory) return error(EISDIR);
    const std::string& data = file->inode->data;
    if (offset >= data.size()) return {};
    got = std::min(size, data.size() - static_cast<std::size_t>(offset));
    std::copy_n(data.begin() + static_cast<std::ptrdiff_t>(offset), got, into);
    return {};
}

std::error_code FaultInjectionFileSystem::file_size(int fd, std::uint64_t& size) {
    std::lock_guard lock(mutex_);
    const auto* file = file_of(fd);
    if (crashed_ || !file) return error(crashed_ ? EIO : EBADF);
    size = file->inode->data.size();
    return {};
}

std::error_code FaultInjectionFileSystem::truncate(int fd, std::uint64_t size) {
    std::lock_guard lock(mutex_);
    auto* file = file_of(fd);
    if (crashed_ || !file) return error(crashed_ ? EIO : EBADF);
    if (!file->writable || file->inode->directory) return error(EBADF);
    if (auto ec = begin_mutation()) return ec;
    if (inject(faults_.truncate)) return error(EIO);
    resize(*file->inode, size);
    return {};
}

std::error_code FaultInjectionFileSystem::sync_data(int fd) {
    std::lock_guard lock(mutex_);
    return sync_inode(fd, false);
}

std::error_code FaultInjectionFileSystem::sync(int fd) {
    std::lock_guard lock(mutex_);
    return sync_inode(fd, true);
}

// fdatasync (a file) or fsync (a file or a folder), with the mutex held.
std::error_code FaultInjectionFileSystem::sync_inode(int fd, bool folder_allowed) {
    auto* file = file_of(fd);
    if (crashed_ || !file) return error(crashed_ ? EIO : EBADF);
    Inode& inode = *file->inode;
    if (inode.directory && !folder_allowed) return error(EINVAL);
    if (auto ec = begin_mutation()) return ec;
    if (inode.directory) {
        if (inject(faults_.sync_directory)) return error(EIO);
        inode.durable_entries = inode.entries;
        inode.pending.clear();
        return {};
    }
    if (inject(faults_.sync_data)) {
        // The pages it could not write are gone from the writeback: a later sync succeeds
        // without them. Reads still see them (they stay in the cache), as on Linux.
        for (std::size_t i = 0; i < inode.writeback.size(); ++i)
            inode.writeback[i] = i < inode.durable.size() ? inode.durable[i] : '\0';
        return error(EIO);
    }
    inode.durable = inode.writeback;
    return {};
}

std::error_code FaultInjectionFileSystem::rename(const std::filesystem::path& from, const std::filesystem::path& to) {
    std::lock_guard lock(mutex_);
    if (crashed_) return error(EIO);
    InodePtr from_dir, to_dir;
    std::string from_name, to_name;
    if (auto ec = parent_of(from, from_dir, from_name)) return ec;
    if (auto ec = parent_of(to, to_dir, to_name)) return ec;
    if (from_dir != to_dir) return error(EXDEV);  // the spool renames within its folder only
    const auto found = from_dir->entries.find(from_name);
    if (found == from_dir->entries.end()) return error(ENOENT);
    if (auto ec = begin_mutation()) return ec;
    if (inject(faults_.rename)) return error(EIO);
    InodePtr inode = found->second;
    from_dir->entries.erase(found);
    from_dir->entries[to_name] = inode;
    record(*from_dir, DirectoryOp{from_name, to_name, std::move(inode)});
    return {};
}

std::error_code FaultInjectionFileSystem::remove(const std::filesystem::path& file) {
    std::lock_guard lock(mutex_);
    if (crashed_) return error(EIO);
    InodePtr dir;
    std::string name;
    if (auto ec = parent_of(file, dir, name)) return ec;
    const auto found = dir->entries.find(name);
    if (found == dir->entries.end()) return error(ENOENT);
    if (found->second->directory) return error(EISDIR);
    if (auto ec = begin_mutation()) return ec;
    if (inject(faults_.remove)) return error(EIO);
    InodePtr inode = found->second;
    dir->entries.erase(found);
    record(*dir, DirectoryOp{name, {}, std::move(inode)});
    return {};
}

std::error_code FaultInjectionFileSystem::list(const std::filesystem::path& dir, std::vector<std::string>& names) {
    std::lock_guard lock(mutex_);
    names.clear();
    if (crashed_) return error(EIO);
    const auto inode = resolve(dir.lexically_normal());
    if (!inode) return error(ENOENT);
    if (!inode->directory) return error(ENOTDIR);
    for (const auto& [name, entry] : inode->entries) names.push_back(name);
    return {};
}

void FaultInjectionFileSystem::take_image() {
    ++stats_.crashes;
    std::map<const Inode*, InodePtr> done;
    image_ = image_of(root_, done);
}

// The inode as the disk holds it after the power loss (an inode reached twice, through a rename
// that half survived, stays one inode).
FaultInjectionFileSystem::InodePtr FaultInjectionFileSystem::image_of(const InodePtr& inode,
                                                                      std::map<const Inode*, InodePtr>& done) {
    if (const auto found = done.find(inode.get()); found != done.end()) return found->second;
    auto image = std::make_shared<Inode>();
    done[inode.get()] = image;
    image->directory = inode->directory;
    if (!inode->directory) {
        image->durable = surviving_bytes(*inode);
        image->data = image->writeback = image->durable;
        return image;
    }
    for (auto& [name, entry] : surviving_entries(*inode)) image->entries[name] = image_of(entry, done);
    image->durable_entries = image->entries;
    return image;
}

// The unsynced bytes dropped whole, torn at a random byte, with random sectors zeroed, or kept.
std::string FaultInjectionFileSystem::surviving_bytes(const Inode& file) {
    const std::string& durable = file.durable;
    const std::string& written = file.writeback;
    if (written == durable) return durable;
    if (written.size() > durable.size() && written.starts_with(durable)) {
        switch (random_() % 4) {
        case 0:
            ++stats_.files_dropped;
            return durable;
        case 1:
            ++stats_.files_torn;
            return written.substr(0, durable.size() + random_() % (written.size() - durable.size() + 1));
        case 2: {
            ++stats_.files_zeroed;
            std::string bytes = written;
            for (std::size_t at = durable.size() / sector * sector; at < bytes.size(); at += sector) {
                if (random_() % 2 != 0) continue;
                const std::size_t from = std::max(at, durable.size());
                std::fill(bytes.begin() + static_cast<std::ptrdiff_t>(from),
                          bytes.begin() + static_cast<std::ptrdiff_t>(std::min(at + sector, bytes.size())), '\0');
            }
            return bytes;
        }
        default:
            ++stats_.files_kept;
            return written;
        }
    }
    // Cut or rewritten since the last sync: either size, each sector old or new.
    ++stats_.files_torn;
    const std::size_t size = random_() % 2 == 0 ? durable.size() : written.size();
    std::string bytes(size, '\0');
    for (std::size_t at = 0; at < size; at += sector) {
        const std::string& from = random_() % 2 == 0 ? durable : written;
        for (std::size_t i = at; i < std::min(at + sector, size); ++i) bytes[i] = i < from.size() ? from[i] : '\0';
    }
    return bytes;
}

// The folder's unsynced creates, renames and unlinks: none, all, a prefix, or any subset.
std::map<std::string, FaultInjectionFileSystem::InodePtr> FaultInjectionFileSystem::surviving_entries(
    const Inode& dir) {
    auto entries = dir.durable_entries;
    if (dir.pending.empty()) return entries;
    const std::size_t count = dir.pending.size();
    std::vector<bool> applied(count, false);
    switch (random_() % 4) {
    case 0:
        ++stats_.folders_dropped;
        break;
    case 1: {
        ++stats_.folders_prefix;
        const std::size_t prefix = random_() % (count + 1);
        std::fill(applied.begin(), applied.begin() + static_cast<std::ptrdiff_t>(prefix), true);
        break;
    }
    case 2:
        ++stats_.folders_subset;
        for (std::size_t i = 0; i < count; ++i) applied[i] = random_() % 2 == 0;
        break;
    default:
        ++stats_.folders_kept;
        std::fill(applied.begin(), applied.end(), true);
        break;
    }
    for (std::size_t i = 0; i < count; ++i) {
        if (!applied[i]) continue;
        const DirectoryOp& op = dir.pending[i];
        if (!op.from.empty()) {
            const auto found = entries.find(op.from);
            if (found != entries.end() && found->second == op.inode) entries.erase(found);
        }
        if (!op.to.empty()) entries[op.to] = op.inode;
    }
    return entries;
}

}  // namespace avr_webhookd::spool::test
