#pragma once

#include <stdexcept>
#include <string>
#include <system_error>

namespace avr_webhookd::spool {

// Errors of the spool itself; failures of the file system come as std::system_category codes
// (ENOSPC, EIO, EFBIG, ...), unchanged, so that callers can tell "disk full" from "spool full".
enum class SpoolErrc {
    spool_full = 1,    // the event would take the spool past max_bytes; nothing was written
    record_too_large,  // a single record over kMaxRecordPayload; nothing was written
    corrupt_record,    // read_body found a record whose checksum no longer matches
    unknown_record,    // read_body was given a locator the writer does not know
};

const std::error_category& spool_category();
std::error_code make_error_code(SpoolErrc e);

// A spool directory that cannot be created, opened or locked: the daemon stops (exit 73).
class SpoolOpenError : public std::runtime_error {
public:
    enum class Kind { cannot_create, locked };
    SpoolOpenError(Kind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
    Kind kind() const { return kind_; }

private:
    Kind kind_;
};

}  // namespace avr_webhookd::spool

template <>
struct std::is_error_code_enum<avr_webhookd::spool::SpoolErrc> : std::true_type {};
