#include <avr_webhookd/spool/crc32c.hpp>

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace avr_webhookd::spool {
namespace {

constexpr std::uint32_t kPolynomial = 0x82F63B78;  // Castagnoli, reflected

using Tables = std::array<std::array<std::uint32_t, 256>, 8>;

constexpr Tables make_tables() {
    Tables tables{};
    for (std::uint32_t byte = 0; byte < 256; ++byte) {
        std::uint32_t crc = byte;
        for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1) ? kPolynomial : 0);
        tables[0][byte] = crc;
    }
    for (std::size_t slice = 1; slice < 8; ++slice)
        for (std::size_t byte = 0; byte < 256; ++byte) {
            const std::uint32_t previous = tables[slice - 1][byte];
            tables[slice][byte] = (previous >> 8) ^ tables[0][previous & 0xFF];
        }
    return tables;
}

constexpr Tables kTables = make_tables();

std::uint32_t load_le32(const unsigned char* p) {
    return std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8 | std::uint32_t{p[2]} << 16 | std::uint32_t{p[3]} << 24;
}

// Works on the inverted register; the callers invert on the way in and out.
std::uint32_t portable_raw(const unsigned char* p, std::size_t size, std::uint32_t crc) {
    while (size >= 8) {
        const std::uint32_t low = load_le32(p) ^ crc;
        const std::uint32_t high = load_le32(p + 4);
        crc = kTables[7][low & 0xFF] ^ kTables[6][(low >> 8) & 0xFF] ^ kTables[5][(low >> 16) & 0xFF] ^
              kTables[4][low >> 24] ^ kTables[3][high & 0xFF] ^ kTables[2][(high >> 8) & 0xFF] ^
              kTables[1][(high >> 16) & 0xFF] ^ kTables[0][high >> 24];
        p += 8;
        size -= 8;
    }
    while (size-- > 0) crc = (crc >> 8) ^ kTables[0][(crc ^ *p++) & 0xFF];
    return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) std::uint32_t hardware_raw(const unsigned char* p, std::size_t size,
                                                             std::uint32_t crc) {
    std::uint64_t wide = crc;
    while (size >= 8) {
        std::uint64_t word;
        std::memcpy(&word, p, 8);  // x86 is little-endian, as the checksum expects
        wide = _mm_crc32_u64(wide, word);
        p += 8;
        size -= 8;
    }
    crc = static_cast<std::uint32_t>(wide);
    while (size-- > 0) crc = _mm_crc32_u8(crc, *p++);
    return crc;
}

bool has_sse42() {
    static const bool supported = [] {
        __builtin_cpu_init();  // may run before the runtime's own constructor did
        return __builtin_cpu_supports("sse4.2") != 0;
    }();
    return supported;
}
#endif

}  // namespace

std::uint32_t crc32c_portable(std::string_view data, std::uint32_t crc) {
    return ~portable_raw(reinterpret_cast<const unsigned char*>(data.data()), data.size(), ~crc);
}

std::uint32_t crc32c(std::string_view data, std::uint32_t crc) {
#if defined(__x86_64__)
    if (has_sse42()) return ~hardware_raw(reinterpret_cast<const unsigned char*>(data.data()), data.size(), ~crc);
#endif
    return crc32c_portable(data, crc);
}

}  // namespace avr_webhookd::spool
