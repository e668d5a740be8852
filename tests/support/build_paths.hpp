#pragma once

// Where the build put the daemon and where the sources are. Only build_paths.cpp is compiled with
// these paths, so that every other test file compiles the same in any clone or worktree (a shared
// ccache hits for them in CI's fresh clone).
namespace avr_webhookd::test {

const char* built_daemon_binary();  // the avr-webhookd this build made
const char* project_source_dir();   // the repository's root

}  // namespace avr_webhookd::test

#define AVR_WEBHOOKD_BINARY (::avr_webhookd::test::built_daemon_binary())
#define AVR_WEBHOOKD_SOURCE_DIR (::avr_webhookd::test::project_source_dir())
