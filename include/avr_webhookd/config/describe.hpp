#pragma once

#include <avr_webhookd/config/config.hpp>

#include <string>

namespace avr_webhookd {

// check-config's output: one "key = value  (origin)" line per setting, in table order; secrets
// as <redacted>, the url redacted past its host, strings quoted only when they would not read
// back bare from a config file.
std::string describe(const LoadedConfig& loaded);

}  // namespace avr_webhookd
