#include <avr_webhookd/spool/crc32c.hpp>
#include <avr_webhookd/spool/record.hpp>

#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

using namespace avr_webhookd::spool;

namespace {

EventFields sample_event(std::uint64_t id, std::string_view call = "550e8400-e29b-41d4-a716-446655440000") {
    EventFields event;
    event.record_id = id;
    event.sequence = id * 3;
    event.accepted_ms = 1'780'000'000'000 + static_cast<std::int64_t>(id);
    event.event_id = "0b7e6a5c-1d2e-4f00-9a8b-7c6d5e4f3a2b";
    event.call = call;
    event.type = "transcription";
    event.body = R"({"uuid":"550e8400-e29b-41d4-a716-446655440000","type":"transcription","payload":{"text":"héllo"}})";
    return event;
}

struct Scanned {
    std::vector<std::size_t> offsets;
    std::vector<std::pair<std::size_t, std::size_t>> corrupt;
    ScanResult result;
};

Scanned scan(std::string_view bytes) {
    Scanned out;
    out.result = scan_records(
        bytes, [&](std::size_t offset, const Decoded&) { out.offsets.push_back(offset); },
        [&](std::size_t offset, std::size_t length) { out.corrupt.emplace_back(offset, length); });
    return out;
}

}  // namespace

TEST_CASE("crc32c matches the RFC 3720 test vectors on both paths", "[spool]") {
    const std::string zeros(32, '\0');
    const std::string ones(32, '\xFF');
    std::string ascending, descending;
    for (int i = 0; i < 32; ++i) {
        ascending.push_back(static_cast<char>(i));
        descending.push_back(static_cast<char>(31 - i));
    }
    for (auto* function : {&crc32c, &crc32c_portable}) {
        CHECK(function("123456789", 0) == 0xE3069283u);
        CHECK(function("", 0) == 0u);
        CHECK(function(zeros, 0) == 0x8A9136AAu);
        CHECK(function(ones, 0) == 0x62A8AB43u);
        CHECK(function(ascending, 0) == 0x46DD794Eu);
        CHECK(function(descending, 0) == 0x113FDB5Cu);
    }
}

TEST_CASE("crc32c chains and agrees with the portable path at every length and alignment", "[spool]") {
    std::mt19937 random(7);
    std::string data(300, '\0');
    for (auto& c : data) c = static_cast<char>(random());
    for (std::size_t start = 0; start < 9; ++start)
        for (std::size_t length = 0; start + length <= data.size(); length += 7) {
            const std::string_view part = std::string_view(data).substr(start, length);
            REQUIRE(crc32c(part) == crc32c_portable(part));
            const std::size_t cut = length / 3;
            REQUIRE(crc32c(part.substr(cut), crc32c(part.substr(0, cut))) == crc32c(part));
        }
}

TEST_CASE("an event record round-trips every field", "[spool]") {
    const EventFields event = sample_event(42);
    std::string bytes;
    REQUIRE(encode_event(bytes, event));
    CHECK(bytes.size() == encoded_event_size(event));
    CHECK(bytes.substr(0, 4) == kRecordMagic);
    bytes += "trailing bytes belong to the next record";
    const Decoded decoded = decode_record(bytes);
    REQUIRE(decoded.status == DecodeStatus::ok);
    CHECK(decoded.size == encoded_event_size(event));
    REQUIRE(decoded.type == RecordType::event);
    CHECK(decoded.event.record_id == 42);
    CHECK(decoded.event.sequence == 126);
    CHECK(decoded.event.accepted_ms == event.accepted_ms);
    CHECK(decoded.event.event_id == event.event_id);
    CHECK(decoded.event.call == event.call);
    CHECK(decoded.event.type == event.type);
    CHECK(decoded.event.body == event.body);
}

TEST_CASE("an event for a named destination is record type 3 and round-trips its destination", "[spool]") {
    EventFields event = sample_event(7);
    CHECK(decode_record([&] {
              std::string plain;
              encode_event(plain, event);
              return plain;
          }())
              .event.destination.empty());  // the default destination's records stay type 1
    event.destination = "crm";
    std::string bytes;
    REQUIRE(encode_event(bytes, event));
    CHECK(bytes.size() == encoded_event_size(event));
    CHECK(static_cast<unsigned char>(bytes[12]) == 3);
    const Decoded decoded = decode_record(bytes);
    REQUIRE(decoded.status == DecodeStatus::ok);
    REQUIRE(decoded.type == RecordType::event);
    CHECK(decoded.event.destination == "crm");
    CHECK(decoded.event.body == event.body);
    // A type 3 record whose destination is empty is malformed.
    std::string type1;
    event.destination = {};
    REQUIRE(encode_event(type1, event));
    type1[12] = 3;
    CHECK(decode_record(type1).status == DecodeStatus::corrupt);
}

TEST_CASE("a done record round-trips, and empty strings and negative times survive", "[spool]") {
    std::string bytes;
    encode_done(bytes, 0xFFFF'FFFF'FFFF'FFF0ull);
    CHECK(bytes.size() == kEncodedDoneSize);
    Decoded decoded = decode_record(bytes);
    REQUIRE(decoded.status == DecodeStatus::ok);
    CHECK(decoded.type == RecordType::done);
    CHECK(decoded.done_id == 0xFFFF'FFFF'FFFF'FFF0ull);

    EventFields empty;
    empty.record_id = 1;
    empty.accepted_ms = -5;
    bytes.clear();
    REQUIRE(encode_event(bytes, empty));
    decoded = decode_record(bytes);
    REQUIRE(decoded.status == DecodeStatus::ok);
    CHECK(decoded.event.accepted_ms == -5);
    CHECK(decoded.event.body.empty());
}

TEST_CASE("a record cut anywhere is incomplete, never ok", "[spool]") {
    std::string bytes;
    REQUIRE(encode_event(bytes, sample_event(1)));
    for (std::size_t length = 0; length < bytes.size(); ++length) {
        const Decoded decoded = decode_record(std::string_view(bytes).substr(0, length));
        INFO("length " << length);
        REQUIRE(decoded.status == DecodeStatus::incomplete);
    }
}

TEST_CASE("any single flipped bit makes a record corrupt or incomplete", "[spool]") {
    std::string bytes;
    REQUIRE(encode_event(bytes, sample_event(9)));
    for (std::size_t at = 0; at < bytes.size(); ++at)
        for (int bit = 0; bit < 8; ++bit) {
            std::string damaged = bytes;
            damaged[at] = static_cast<char>(damaged[at] ^ (1 << bit));
            INFO("byte " << at << " bit " << bit);
            REQUIRE(decode_record(damaged).status != DecodeStatus::ok);
        }
}

TEST_CASE("lengths beyond the limit or inconsistent with the payload are corrupt", "[spool]") {
    std::string bytes;
    encode_done(bytes, 5);
    std::string huge = bytes;
    huge[11] = '\x7F';  // payload length > kMaxRecordPayload
    CHECK(decode_record(huge).status == DecodeStatus::corrupt);

    EventFields too_big;
    const std::string body(kMaxRecordPayload, 'x');
    too_big.body = body;
    std::string out;
    CHECK_FALSE(encode_event(out, too_big));
    CHECK(out.empty());
}

TEST_CASE("scan finds every record, skips damage in the middle and reports the torn tail", "[spool]") {
    std::string segment;
    std::vector<std::size_t> starts;
    for (std::uint64_t id = 1; id <= 5; ++id) {
        starts.push_back(segment.size());
        REQUIRE(encode_event(segment, sample_event(id)));
        starts.push_back(segment.size());
        encode_done(segment, id);
    }
    SECTION("intact") {
        const Scanned scanned = scan(segment);
        CHECK(scanned.offsets == starts);
        CHECK(scanned.corrupt.empty());
        CHECK_FALSE(scanned.result.torn_tail);
        CHECK(scanned.result.valid_end == segment.size());
    }
    SECTION("garbage between two records is one skipped range") {
        std::string damaged = segment.substr(0, starts[4]) + "garbage\xFFSP" + segment.substr(starts[4]);
        const Scanned scanned = scan(damaged);
        CHECK(scanned.offsets.size() == starts.size());
        REQUIRE(scanned.corrupt.size() == 1);
        CHECK(scanned.corrupt[0] == std::pair<std::size_t, std::size_t>{starts[4], 10});
    }
    SECTION("a damaged length in the middle does not swallow the records after it") {
        std::string damaged = segment;
        damaged[starts[2] + 10] = '\x10';  // claims a megabyte: past the end of the segment
        const Scanned scanned = scan(damaged);
        CHECK(scanned.offsets.size() == starts.size() - 1);
        REQUIRE(scanned.corrupt.size() == 1);
        CHECK(scanned.corrupt[0].first == starts[2]);
        CHECK_FALSE(scanned.result.torn_tail);
    }
    SECTION("a half-written last record is the torn tail") {
        const std::string torn = segment + segment.substr(starts[0], 20);
        const Scanned scanned = scan(torn);
        CHECK(scanned.offsets == starts);
        CHECK(scanned.result.torn_tail);
        CHECK(scanned.result.valid_end == segment.size());
    }
    SECTION("zeros (a preallocated or lost page) are a torn tail too") {
        const Scanned scanned = scan(segment + std::string(4096, '\0'));
        CHECK(scanned.offsets == starts);
        CHECK(scanned.result.torn_tail);
    }
}
