#pragma once

#include <map>
#include <string>

namespace avr_webhookd {

// The process environment as the program reads it: taken once in main and handed down, so no
// code below main calls getenv for a setting.
using Environment = std::map<std::string, std::string>;  // variable -> value

// NAME=VALUE entries split at the first '='; entries without one are skipped.
Environment environment_from(char** envp);

}  // namespace avr_webhookd
