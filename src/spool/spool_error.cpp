#include <avr_webhookd/spool/spool_error.hpp>

namespace avr_webhookd::spool {
namespace {

class Category final : public std::error_category {
public:
    const char* name() const noexcept override { return "spool"; }
    std::string message(int value) const override {
        switch (static_cast<SpoolErrc>(value)) {
        case SpoolErrc::spool_full:
            return "the spool is full (spool_max_bytes)";
        case SpoolErrc::record_too_large:
            return "the event is too large for a spool record";
        case SpoolErrc::corrupt_record:
            return "the spool record is corrupt (checksum mismatch)";
        case SpoolErrc::unknown_record:
            return "no such spool record";
        }
        return "unknown spool error";
    }
};

}  // namespace

const std::error_category& spool_category() {
    static const Category category;
    return category;
}

std::error_code make_error_code(SpoolErrc e) { return {static_cast<int>(e), spool_category()}; }

}  // namespace avr_webhookd::spool
