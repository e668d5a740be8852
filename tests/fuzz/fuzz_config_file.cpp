// The config file grammar and every setting's validation: any bytes as a config file either load
// or end in one ConfigError, never another exception or a crash; a loaded configuration
// describes itself in one line per setting, plus a section per destination.
//
// Input: the file's bytes. The file lives in a memfd, so no disk is touched.
#include <avr_webhookd/config/config.hpp>
#include <avr_webhookd/config/describe.hpp>
#include <avr_webhookd/config/settings.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

using namespace avr_webhookd;

namespace {

void check(bool condition) {
    if (!condition) std::abort();
}

int config_fd() {
    static const int fd = [] {
        const int created = ::memfd_create("fuzz-config", 0);
        check(created >= 0);
        return created;
    }();
    return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    // secret_file names a file to read: a fuzzer could name /dev/stdin or a FIFO and wait forever.
    // Its value is only a path; the grammar around it is what is fuzzed here.
    if (text.find("secret_file") != std::string_view::npos) return 0;
    const int fd = config_fd();
    check(::ftruncate(fd, 0) == 0);
    check(::pwrite(fd, data, size, 0) == static_cast<ssize_t>(size));

    ConfigSources sources;
    sources.config_file = "/proc/self/fd/" + std::to_string(fd);
    sources.default_file = "/nonexistent/avr-webhookd-fuzz.conf";
    try {
        const LoadedConfig loaded = load_config(sources);
        const std::string described = describe(loaded);
        std::size_t lines = 0;
        for (const char c : described) lines += c == '\n';
        // Each destination adds its "[destination NAME]" line and one line per receiver setting.
        std::size_t receiver_settings = 0;
        for (const auto& setting : all_settings()) receiver_settings += is_receiver_setting(setting.key);
        check(lines == all_settings().size() + loaded.config.destinations.size() * (1 + receiver_settings));
        for (const auto& destination : loaded.config.destinations)
            check(valid_destination_name(destination.name) && !destination.url.empty());
        check(!loaded.config.url.empty());
    } catch (const ConfigError& error) {
        const std::string_view message = error.what();
        check(!message.empty() && message.find('\n') == std::string_view::npos);
    }
    return 0;
}
