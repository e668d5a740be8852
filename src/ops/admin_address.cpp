#include <avr_webhookd/ops/admin_address.hpp>

#include <avr_webhookd/common/host_port.hpp>
#include <avr_webhookd/common/unix_socket.hpp>

namespace avr_webhookd {
namespace {

std::optional<AdminAddress> fail(std::string* error, std::string message) {
    if (error) *error = std::move(message);
    return std::nullopt;
}

}  // namespace

std::optional<AdminAddress> parse_admin_address(std::string_view text, std::string* error) {
    AdminAddress address;
    if (text.starts_with('/')) {
        if (text.size() > max_socket_path || text.ends_with('/') || text.find('\0') != std::string_view::npos)
            return fail(error, "invalid admin socket path: at most " + std::to_string(max_socket_path) +
                                   " bytes, not ending in /");
        address.unix_path = text;
        return address;
    }
    HostPortError problem;
    const auto parsed = parse_host_port(text, PortRule::required_or_zero, &problem);
    if (!parsed)
        return fail(error,
                    "expected HOST:PORT such as 127.0.0.1:9464 or [::1]:9464, or an absolute Unix socket "
                    "path (" +
                        problem.message + ")");
    address.host = parsed->host;
    address.port = std::to_string(*parsed->port);
    return address;
}

std::string to_string(const AdminAddress& address) {
    if (address.is_unix()) return address.unix_path;
    const bool bracketed = address.host.find(':') != std::string::npos;
    return (bracketed ? "[" + address.host + "]" : address.host) + ":" + address.port;
}

}  // namespace avr_webhookd
