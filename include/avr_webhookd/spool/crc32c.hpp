#pragma once

#include <cstdint>
#include <string_view>

namespace avr_webhookd::spool {

// CRC-32C (Castagnoli, the iSCSI/ext4 checksum, RFC 3720): crc32c("123456789") == 0xE3069283.
// `crc` is the result of a previous call, so crc32c(b, crc32c(a)) == crc32c(a + b). Uses the
// SSE4.2 instruction when the CPU has it, else a table-driven (slicing-by-8) fallback.
std::uint32_t crc32c(std::string_view data, std::uint32_t crc = 0);

// The portable fallback alone, so that tests can compare both paths.
std::uint32_t crc32c_portable(std::string_view data, std::uint32_t crc = 0);

}  // namespace avr_webhookd::spool
