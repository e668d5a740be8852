#include "build_paths.hpp"

namespace avr_webhookd::test {

const char* built_daemon_binary() { return AVR_WEBHOOKD_BUILT_BINARY; }
const char* project_source_dir() { return AVR_WEBHOOKD_PROJECT_SOURCE_DIR; }

}  // namespace avr_webhookd::test
