#pragma once
// Shared by the spool unit tests: writing events through a real writer in a temp folder.

#include <avr_webhookd/spool/recovery.hpp>
#include <avr_webhookd/spool/spool_writer.hpp>

#include <support/process.hpp>

#include <catch2/catch.hpp>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>

namespace avr_webhookd::spool::test {

inline std::string call_uuid(int call) {
    char text[64];
    std::snprintf(text, sizeof text, "00000000-0000-4000-8000-%012d", call);
    return text;
}

inline std::string body_for(int call, std::uint64_t sequence) {
    return R"({"uuid":")" + call_uuid(call) + R"(","type":"transcription","payload":{"n":)" + std::to_string(sequence) +
           "}}";
}

// The fields of one test event; the strings live here so that NewEvent can view them.
struct TestEvent {
    std::string id, call, type = "transcription", body;
    std::uint64_t sequence = 0;
    NewEvent view() const {
        return NewEvent{id, call, type, body, sequence, 1'780'000'000'000 + static_cast<std::int64_t>(sequence), {}};
    }
};

inline TestEvent make_event(int call, std::uint64_t sequence) {
    return TestEvent{"event-" + std::to_string(call) + "-" + std::to_string(sequence), call_uuid(call), "transcription",
                     body_for(call, sequence), sequence};
}

// Appends one test event, which must succeed.
inline Appended append(SpoolWriter& writer, int call, std::uint64_t sequence) {
    Appended appended;
    const auto ec = writer.append_event(make_event(call, sequence).view(), appended);
    INFO(ec.message());
    REQUIRE_FALSE(ec);
    return appended;
}

inline std::unique_ptr<SpoolWriter> open_writer(const std::filesystem::path& dir, SpoolOptions options = {},
                                                Recovery* recovered = nullptr) {
    auto directory = SpoolDirectory::open(dir);
    Recovery recovery = recover(directory);
    auto writer = std::make_unique<SpoolWriter>(std::move(directory), recovery, options);
    if (recovered != nullptr) *recovered = std::move(recovery);
    return writer;
}

inline void write_file(const std::filesystem::path& file, std::string_view bytes) {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline std::uintmax_t size_on_disk(const std::filesystem::path& file) { return std::filesystem::file_size(file); }

// Runs `body` in a forked child, so that a file size limit and SIGXFSZ stay there, and returns
// its exit status: what body returned (0 for success), 99 when it threw, -1 when it crashed.
inline int exit_status_in_child(const std::function<int()>& body) {
    const pid_t child = ::fork();
    if (child < 0) return -1;
    if (child == 0) {
        int status = 99;
        try {
            std::signal(SIGXFSZ, SIG_IGN);
            status = body();
        } catch (...) {}
        std::_Exit(status);
    }
    int status = 0;
    if (::waitpid(child, &status, 0) != child || !WIFEXITED(status)) return -1;
    return WEXITSTATUS(status);
}

// RLIMIT_FSIZE makes write(2) past `bytes` fail with EFBIG, as a full disk fails with ENOSPC
// (after a partial write). Returns the limit before, to put back when "space is back".
inline rlimit limit_file_size(rlim_t bytes) {
    rlimit before{};
    ::getrlimit(RLIMIT_FSIZE, &before);
    rlimit small = before;
    small.rlim_cur = bytes;
    ::setrlimit(RLIMIT_FSIZE, &small);
    return before;
}

}  // namespace avr_webhookd::spool::test
