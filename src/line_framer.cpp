#include <avr_webhookd/line_framer.hpp>

namespace avr_webhookd {

LineFramer::LineFramer(std::size_t max_line) : max_line_(max_line) {}

}  // namespace avr_webhookd
