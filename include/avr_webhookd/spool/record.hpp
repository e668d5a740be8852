#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace avr_webhookd::spool {

// The on-disk record format of the spool (sans-io: bytes in, bytes out).
//
//   offset  size  field
//        0     4  magic FF 53 50 4C ("\xFFSPL"; 0xFF never occurs in UTF-8, so not in a body)
//        4     4  CRC-32C of bytes 8 .. end (length, type and payload), little-endian
//        8     4  payload length, little-endian (at most kMaxRecordPayload)
//       12     1  record type: 1 event, 2 done, 3 event for a named destination
//       13     n  payload
//
// event payload: record id u64, sequence u64, accepted-at ms since the epoch i64, then four
// strings, each a u32 length and its bytes: event id, call uuid, type, body (the exact POST body).
// event for a named destination: the event payload followed by a fifth string, the destination's
// name (the default destination's events are type 1, as before destinations existed).
// done payload: record id u64 of an event that was delivered or durably dead-lettered.
// All integers are little-endian. A record is self-delimiting and self-checking, so a reader can
// cut a torn tail and resynchronise after a damaged record on the next magic with a valid CRC.
inline constexpr std::size_t kRecordHeaderSize = 13;
inline constexpr std::size_t kMaxRecordPayload = 64u << 20;
inline constexpr std::string_view kRecordMagic{"\xFFSPL", 4};

enum class RecordType : std::uint8_t { event = 1, done = 2, destination_event = 3 };

// An event record's fields; the strings view the encoded bytes (or the caller's data).
struct EventFields {
    std::uint64_t record_id = 0;
    std::uint64_t sequence = 0;
    std::int64_t accepted_ms = 0;
    std::string_view event_id;
    std::string_view call;
    std::string_view type;
    std::string_view body;
    std::string_view destination;  // "" = the default destination
};

std::size_t encoded_event_size(const EventFields& event);
inline constexpr std::size_t kEncodedDoneSize = kRecordHeaderSize + 8;

// Append one record to `out`. encode_event returns false (and appends nothing) when the payload
// would exceed kMaxRecordPayload.
bool encode_event(std::string& out, const EventFields& event);
void encode_done(std::string& out, std::uint64_t record_id);

enum class DecodeStatus {
    ok,          // a whole, valid record
    incomplete,  // too few bytes for the record the header announces (a torn tail, or read more)
    corrupt,     // wrong magic, impossible length, checksum mismatch or malformed payload
};

struct Decoded {
    DecodeStatus status = DecodeStatus::corrupt;
    std::size_t size = 0;                 // bytes of the whole record when ok
    RecordType type = RecordType::event;  // event for both event record types (see event.destination)
    EventFields event;                    // when type == event (views into the decoded bytes)
    std::uint64_t done_id = 0;            // when type == done
};

// Decodes the record at the start of `bytes` (more bytes may follow).
Decoded decode_record(std::string_view bytes);

// Walks a whole segment's bytes. Every valid record goes to on_record(offset, decoded). Damage
// followed by a valid record goes to on_corrupt(offset, length) and is skipped; damage or an
// incomplete record with no valid record after it is the torn tail, returned as its offset.
// Never loops forever: every step advances at least one byte; every byte is a resynchronisation
// candidate at most once.
struct ScanResult {
    std::size_t valid_end = 0;  // end of the last valid record (== tail offset)
    bool torn_tail = false;     // bytes after valid_end are not a valid record
};
using OnRecord = std::function<void(std::size_t offset, const Decoded& record)>;
using OnCorrupt = std::function<void(std::size_t offset, std::size_t length)>;
ScanResult scan_records(std::string_view segment, const OnRecord& on_record, const OnCorrupt& on_corrupt);

}  // namespace avr_webhookd::spool
