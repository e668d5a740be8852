#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace avr_webhookd {

// Where the admin endpoint listens (setting `admin`): the server binds it, healthcheck asks it.
struct AdminAddress {
    std::string unix_path;  // set: a Unix stream socket at this absolute path; host and port unused
    std::string host;       // IPv4 or IPv6 literal (without brackets) or a name such as localhost
    std::string port;       // decimal 0..65535; 0 (tests only) picks a free port

    bool is_unix() const { return !unix_path.empty(); }
};

// "HOST:PORT", "[IPv6]:PORT" (common/host_port.hpp; port 0 written "0") or an absolute Unix socket
// path of at most max_socket_path bytes, not ending in '/'. This is the one validation of
// `admin`: the configuration, the server and healthcheck all call it. On failure returns nullopt
// and, when `error` is given, stores a one-line reason in it.
std::optional<AdminAddress> parse_admin_address(std::string_view text, std::string* error = nullptr);

// "127.0.0.1:9464", "[::1]:9464" or the socket path.
std::string to_string(const AdminAddress& address);

}  // namespace avr_webhookd
