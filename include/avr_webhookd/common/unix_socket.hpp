#pragma once

#include <boost/asio/local/stream_protocol.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace avr_webhookd {

class Logger;

// Longest path that fits sockaddr_un::sun_path (108 bytes) with its terminating NUL.
inline constexpr std::size_t max_socket_path = 107;

// Binds and listens on a Unix stream socket file, as both the event socket and the admin socket
// do: the parent directory is created if missing; a stale socket file (nobody listening, as a
// crash leaves it) is replaced with a warning; a live one or a file that is not a socket is an
// error; the socket is bound under umask 0177 (never briefly more open than `mode`), then given
// `mode`. `what` names it in messages ("socket", "admin socket"), `setting` is the setting a user
// changes to move it. Throws std::runtime_error. Returns the socket file's inode.
unsigned long long bind_unix_listener(boost::asio::local::stream_protocol::acceptor& acceptor, const std::string& path,
                                      unsigned mode, std::string_view what, std::string_view setting, Logger& logger);

// Removes the socket file at `path` if it is still ours (same inode): a newer instance may have
// replaced it since.
void remove_own_socket_file(const std::string& path, unsigned long long inode);

}  // namespace avr_webhookd
