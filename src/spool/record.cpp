#include <avr_webhookd/spool/record.hpp>

#include <avr_webhookd/spool/crc32c.hpp>

#include <span>

namespace avr_webhookd::spool {
namespace {

constexpr std::size_t kEventFixedSize = 8 + 8 + 8 + 4 * 4;

void put_le(std::string& out, std::uint64_t value, int bytes) {
    for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

std::uint64_t get_le(std::string_view bytes, std::size_t at, int size) {
    std::uint64_t value = 0;
    for (int i = 0; i < size; ++i)
        value |= std::uint64_t{static_cast<unsigned char>(bytes[at + static_cast<std::size_t>(i)])} << (8 * i);
    return value;
}

// Writes the header for a payload about to be appended at out[start + kRecordHeaderSize ..].
void begin_record(std::string& out, RecordType type, std::size_t payload_size) {
    out.append(kRecordMagic);
    put_le(out, 0, 4);  // CRC, filled in by end_record
    put_le(out, payload_size, 4);
    out.push_back(static_cast<char>(type));
}

void end_record(std::string& out, std::size_t start) {
    const std::string_view covered = std::string_view(out).substr(start + 8);
    const std::uint32_t crc = crc32c(covered);
    for (int i = 0; i < 4; ++i)
        out[start + 4 + static_cast<std::size_t>(i)] = static_cast<char>((crc >> (8 * i)) & 0xFF);
}

bool decode_event(std::string_view payload, EventFields& event, bool with_destination) {
    if (payload.size() < kEventFixedSize) return false;
    event.record_id = get_le(payload, 0, 8);
    event.sequence = get_le(payload, 8, 8);
    event.accepted_ms = static_cast<std::int64_t>(get_le(payload, 16, 8));
    std::size_t at = 24;
    std::string_view* fields[] = {&event.event_id, &event.call, &event.type, &event.body, &event.destination};
    for (auto* field : std::span(fields, with_destination ? 5 : 4)) {
        if (payload.size() - at < 4) return false;
        const auto length = static_cast<std::size_t>(get_le(payload, at, 4));
        at += 4;
        if (payload.size() - at < length) return false;
        *field = payload.substr(at, length);
        at += length;
    }
    return at == payload.size() && (!with_destination || !event.destination.empty());
}

}  // namespace

std::size_t encoded_event_size(const EventFields& event) {
    return kRecordHeaderSize + kEventFixedSize + event.event_id.size() + event.call.size() + event.type.size() +
           event.body.size() + (event.destination.empty() ? 0 : 4 + event.destination.size());
}

bool encode_event(std::string& out, const EventFields& event) {
    const std::size_t payload = encoded_event_size(event) - kRecordHeaderSize;
    if (payload > kMaxRecordPayload) return false;
    const std::size_t start = out.size();
    out.reserve(start + kRecordHeaderSize + payload);
    const bool named = !event.destination.empty();
    begin_record(out, named ? RecordType::destination_event : RecordType::event, payload);
    put_le(out, event.record_id, 8);
    put_le(out, event.sequence, 8);
    put_le(out, static_cast<std::uint64_t>(event.accepted_ms), 8);
    const auto put_string = [&out](std::string_view field) {
        put_le(out, field.size(), 4);
        out.append(field);
    };
    for (std::string_view field : {event.event_id, event.call, event.type, event.body}) put_string(field);
    if (named) put_string(event.destination);
    end_record(out, start);
    return true;
}

void encode_done(std::string& out, std::uint64_t record_id) {
    const std::size_t start = out.size();
    begin_record(out, RecordType::done, 8);
    put_le(out, record_id, 8);
    end_record(out, start);
}

Decoded decode_record(std::string_view bytes) {
    Decoded out;
    const std::size_t magic_bytes = std::min(bytes.size(), kRecordMagic.size());
    if (bytes.substr(0, magic_bytes) != kRecordMagic.substr(0, magic_bytes)) return out;  // corrupt
    if (bytes.size() < kRecordHeaderSize) {
        out.status = DecodeStatus::incomplete;
        return out;
    }
    const auto payload_size = static_cast<std::size_t>(get_le(bytes, 8, 4));
    if (payload_size > kMaxRecordPayload) return out;
    if (bytes.size() - kRecordHeaderSize < payload_size) {
        out.status = DecodeStatus::incomplete;
        return out;
    }
    const std::size_t size = kRecordHeaderSize + payload_size;
    if (crc32c(bytes.substr(8, size - 8)) != static_cast<std::uint32_t>(get_le(bytes, 4, 4))) return out;
    const std::string_view payload = bytes.substr(kRecordHeaderSize, payload_size);
    const auto type = static_cast<unsigned char>(bytes[12]);
    if (type == static_cast<unsigned char>(RecordType::event) ||
        type == static_cast<unsigned char>(RecordType::destination_event)) {
        if (!decode_event(payload, out.event, type == static_cast<unsigned char>(RecordType::destination_event)))
            return out;
        out.type = RecordType::event;
    } else if (type == static_cast<unsigned char>(RecordType::done) && payload.size() == 8) {
        out.type = RecordType::done;
        out.done_id = get_le(payload, 0, 8);
    } else {
        return out;
    }
    out.status = DecodeStatus::ok;
    out.size = size;
    return out;
}

ScanResult scan_records(std::string_view segment, const OnRecord& on_record, const OnCorrupt& on_corrupt) {
    ScanResult result;
    std::size_t pos = 0;
    while (pos < segment.size()) {
        Decoded record = decode_record(segment.substr(pos));
        if (record.status == DecodeStatus::ok) {
            on_record(pos, record);
            pos += record.size;
            result.valid_end = pos;
            continue;
        }
        // Damaged or incomplete: the next magic that starts a valid record ends the damage.
        std::size_t next = pos + 1;
        for (;;) {
            next = segment.find(kRecordMagic, next);
            if (next == std::string_view::npos) break;
            record = decode_record(segment.substr(next));
            if (record.status == DecodeStatus::ok) break;
            ++next;
        }
        if (next == std::string_view::npos) {
            result.torn_tail = true;
            return result;
        }
        on_corrupt(pos, next - pos);
        pos = next;
    }
    return result;
}

}  // namespace avr_webhookd::spool
