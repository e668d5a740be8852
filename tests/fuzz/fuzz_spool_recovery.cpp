// Arbitrary bytes as spool segments: recovery must never crash or loop, must cut only a tail,
// and everything it recovers must be a genuine record (valid checksum) that the writer taking
// over the spool can read back.
//
// Input layout: byte 0 bit 0 splits the rest into two segments at the position given by bytes
// 1..2 (so done records in one segment can refer to events in the other); the rest is the data.
#include <avr_webhookd/spool/crc32c.hpp>
#include <avr_webhookd/spool/record.hpp>
#include <avr_webhookd/spool/recovery.hpp>
#include <avr_webhookd/spool/spool_writer.hpp>

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

using namespace avr_webhookd::spool;

namespace {

void check(bool condition) {
    if (!condition) std::abort();
}

// On tmpfs when there is one: every input syncs and cuts files, which a real disk makes slow.
std::filesystem::path make_temp_dir() {
    std::error_code ec;
    const std::filesystem::path base =
        std::filesystem::is_directory("/dev/shm", ec) ? "/dev/shm" : std::filesystem::temp_directory_path();
    std::string pattern = (base / "fuzz-spool-XXXXXX").native();
    check(::mkdtemp(pattern.data()) != nullptr);
    return pattern;
}

void write_segment(const std::filesystem::path& dir, std::uint64_t number, std::string_view bytes) {
    std::ofstream out(dir / segment_file_name(number), std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void check_recovery(const std::filesystem::path& dir, const Recovery& recovery) {
    std::error_code ec;
    for (const auto& segment : recovery.segments)
        check(std::filesystem::file_size(dir / segment_file_name(segment.number)) == segment.bytes);
    for (const auto& event : recovery.events) {
        const std::string bytes = read_whole_file(dir / segment_file_name(event.locator.segment), ec);
        check(!ec && event.locator.offset + event.locator.length <= bytes.size());
        const std::string_view record = std::string_view(bytes).substr(event.locator.offset, event.locator.length);
        check(record.substr(0, 4) == kRecordMagic);
        const std::uint32_t stored = static_cast<std::uint32_t>(static_cast<unsigned char>(record[4])) |
                                     static_cast<std::uint32_t>(static_cast<unsigned char>(record[5])) << 8 |
                                     static_cast<std::uint32_t>(static_cast<unsigned char>(record[6])) << 16 |
                                     static_cast<std::uint32_t>(static_cast<unsigned char>(record[7])) << 24;
        check(crc32c(record.substr(8)) == stored);
        const Decoded decoded = decode_record(record);
        check(decoded.status == DecodeStatus::ok && decoded.type == RecordType::event);
        check(decoded.event.record_id == event.record_id);
        check(!event.canonical_call || avr_webhookd::uuid_bytes(decoded.event.call) == event.call);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 3) return 0;
    const bool two_segments = (data[0] & 1) != 0;
    std::string_view rest(reinterpret_cast<const char*>(data) + 3, size - 3);
    const std::size_t split = two_segments ? std::min<std::size_t>(rest.size(), data[1] | data[2] << 8) : rest.size();

    const auto dir = make_temp_dir();
    write_segment(dir, 1, rest.substr(0, split));
    if (two_segments) write_segment(dir, 2, rest.substr(split));
    {
        const Recovery read_only = scan_spool(dir, RepairMode::read_only);
        auto directory = SpoolDirectory::open(dir);
        const Recovery recovery = recover(directory);
        check(recovery.events.size() == read_only.events.size());
        check_recovery(dir, recovery);
        check(recover(directory).stats.torn_tails.empty());  // a cut tail stays cut

        SpoolWriter writer(std::move(directory), recovery, SpoolOptions{});
        check(writer.live_events() == recovery.events.size());
        std::string body;
        for (const auto& event : recovery.events) {
            check(!writer.read_body(event.locator, body));
            writer.append_done(event.record_id);
        }
        check(writer.live_events() == 0);
        check(!writer.sync());
        check(!writer.collect());
    }
    std::filesystem::remove_all(dir);
    return 0;
}
