#pragma once

#include <string>
#include <utility>
#include <vector>

namespace avr_webhookd {

// Extra request headers, name and value, in the order they are sent.
using HeaderList = std::vector<std::pair<std::string, std::string>>;

}  // namespace avr_webhookd
