#pragma once
// Shared by the spool unit tests: writing events through a real writer in a temp folder.

#include <avr_webhookd/spool/recovery.hpp>
#include <avr_webhookd/spool/spool_writer.hpp>

#include <support/process.hpp>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

namespace avr_webhookd::spool::test {

inline std::string call_uuid(int call) {
    char text[64];
    std::snprintf(text, sizeof text, "00000000-0000-4000-8000-%012d", call);
    return text;
}

inline std::string body_for(int call, std::uint64_t sequence) {
    return R"({"uuid":")" + call_uuid(call) + R"(","type":"transcription","payload":{"n":)" + std::to_string(sequence) + "}}";
}

// The fields of one test event; the strings live here so that NewEvent can view them.
struct TestEvent {
    std::string id, call, type = "transcription", body;
    std::uint64_t sequence = 0;
    NewEvent view() const {
        return NewEvent{id, call, type, body, sequence, 1'780'000'000'000 + static_cast<std::int64_t>(sequence)};
    }
};

inline TestEvent make_event(int call, std::uint64_t sequence) {
    return TestEvent{"event-" + std::to_string(call) + "-" + std::to_string(sequence), call_uuid(call), "transcription",
                     body_for(call, sequence), sequence};
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

}  // namespace avr_webhookd::spool::test
