#include <avr_webhookd/common/environment.hpp>

#include <string_view>

namespace avr_webhookd {

Environment environment_from(char** envp) {
    Environment environment;
    for (; envp && *envp; ++envp) {
        const std::string_view entry = *envp;
        const auto equals = entry.find('=');
        if (equals != std::string_view::npos) environment.emplace(entry.substr(0, equals), entry.substr(equals + 1));
    }
    return environment;
}

}  // namespace avr_webhookd
