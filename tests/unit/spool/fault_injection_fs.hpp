#pragma once
// A file system for the spool's tests that models the page cache, after RocksDB's
// FaultInjectionTestFS: it keeps, per file, what is durable and what was written since, and per
// folder, which entries are durable and which creates, renames and unlinks happened since its last
// fsync. A simulated power loss drops what was not made durable: a file's unsynced bytes whole,
// torn at a random byte, or with random 512-byte sectors zeroed; a folder's unsynced operations
// all, none, a random prefix of them, or a random subset (POSIX promises no order). Then the
// durable state is all that is left, and the spool starts again from it.
//
// It also injects the failures of a sick disk on demand: a short write then ENOSPC, an fdatasync
// that fails with EIO and loses the pages it could not write ("fsyncgate": a later sync of the
// file succeeds without them), a folder fsync, create, truncate, rename or unlink that fails.
//
// Everything is in memory and deterministic for a seed. Paths are absolute ("/spool").

#include <avr_webhookd/spool/file_system.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace avr_webhookd::spool::test {

class FaultInjectionFileSystem final : public FileSystem {
public:
    // Chances, in 1/1000, that an operation of each kind fails (0: never).
    struct Faults {
        int write = 0;           // part of the bytes written, then ENOSPC
        int sync_data = 0;       // EIO, the unsynced pages lost
        int sync_directory = 0;  // EIO, the folder's operations stay unsynced
        int create = 0;          // ENOSPC
        int truncate = 0;        // EIO
        int rename = 0;          // EIO
        int remove = 0;          // EIO
    };
    // What a power loss keeps of the unsynced data, counted over all crashes (for the test's report).
    struct CrashStats {
        std::uint64_t crashes = 0;
        std::uint64_t files_dropped = 0, files_torn = 0, files_zeroed = 0, files_kept = 0;
        std::uint64_t folders_dropped = 0, folders_prefix = 0, folders_subset = 0, folders_kept = 0;
        std::uint64_t failed_operations = 0;
    };

    explicit FaultInjectionFileSystem(std::uint64_t seed);

    void set_faults(Faults faults);
    // The power goes when the `count`-th mutating operation from now starts (it and all later
    // ones fail with EIO until reboot()). Mutating: create, mkdir, write, truncate, sync, rename,
    // unlink.
    void crash_after(std::uint64_t count);
    void crash_now();
    bool crashed() const;
    // Power back: the durable state is all there is; descriptors of before are dead.
    void reboot();
    std::uint64_t operations() const;  // mutating ones so far
    const CrashStats& stats() const { return stats_; }

    // For checks: the whole content of a file as reads see it, or nullopt.
    std::optional<std::string> contents(const std::filesystem::path& file) const;

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

private:
    struct Inode;
    using InodePtr = std::shared_ptr<Inode>;
    struct DirectoryOp {
        std::string from;  // removed (rename: the old name); empty for a create
        std::string to;    // added (rename: the new name); empty for an unlink
        InodePtr inode;
    };
    struct Inode {
        bool directory = false;
        std::string data;                         // what reads see (the page cache)
        std::string writeback;                    // what a sync would store: data, less the pages a failed sync lost
        std::string durable;                      // on the disk
        std::map<std::string, InodePtr> entries;  // a folder's, as seen now
        std::map<std::string, InodePtr> durable_entries;  // as a power loss would leave them
        std::vector<DirectoryOp> pending;                 // since the folder's last fsync, in order
    };
    struct OpenFile {
        InodePtr inode;
        bool writable = false;
    };

    std::error_code begin_mutation();  // counts; the crash point; EIO after a crash
    bool inject(int per_mille);
    InodePtr resolve(const std::filesystem::path& path) const;
    // The folder holding `path` and the last component, or an error.
    std::error_code parent_of(const std::filesystem::path& path, InodePtr& dir, std::string& name) const;
    OpenFile* file_of(int fd);
    int add_descriptor(InodePtr inode, bool writable);
    void record(Inode& dir, DirectoryOp op);
    void write_bytes(Inode& file, std::string_view bytes, std::uint64_t offset);
    void resize(Inode& file, std::uint64_t size);
    std::error_code sync_inode(int fd, bool folder_allowed);
    // The power loss: the image of what survives, built from the durable state.
    void take_image();
    InodePtr image_of(const InodePtr& inode, std::map<const Inode*, InodePtr>& done);
    std::string surviving_bytes(const Inode& file);
    std::map<std::string, InodePtr> surviving_entries(const Inode& dir);

    mutable std::mutex mutex_;
    std::mt19937_64 random_;
    Faults faults_;
    CrashStats stats_;
    InodePtr root_;
    InodePtr image_;  // after a crash, the root that reboot() installs
    std::map<int, OpenFile> descriptors_;
    std::map<const Inode*, int> locks_;  // folder -> the descriptor holding its flock
    int next_fd_ = 1000;                 // never reused, so that a handle of before a crash is dead
    std::uint64_t operations_ = 0;
    std::optional<std::uint64_t> crash_at_;
    bool crashed_ = false;
};

}  // namespace avr_webhookd::spool::test
