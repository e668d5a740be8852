#include <avr_webhookd/common/unix_socket.hpp>

#include <avr_webhookd/ops/logger.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace avr_webhookd {

namespace asio = boost::asio;
using stream_protocol = asio::local::stream_protocol;

unsigned long long bind_unix_listener(stream_protocol::acceptor& acceptor, const std::string& path, unsigned mode,
                                      std::string_view what, std::string_view setting, Logger& logger) {
    namespace fs = std::filesystem;
    const std::string name(what);
    std::error_code fs_error;
    if (const auto parent = fs::path(path).parent_path(); !parent.empty()) fs::create_directories(parent, fs_error);
    if (fs_error)
        throw std::runtime_error("cannot create the directory of the " + name + " " + path + ": " + fs_error.message());

    struct stat status {};
    if (::lstat(path.c_str(), &status) == 0) {
        if (!S_ISSOCK(status.st_mode))
            throw std::runtime_error(name + " path " + path +
                                     " exists and is not a socket; remove it or set another `" + std::string(setting) +
                                     "`");
        stream_protocol::socket probe(acceptor.get_executor());
        boost::system::error_code ec;
        probe.connect(stream_protocol::endpoint(path), ec);
        if (!ec)
            throw std::runtime_error("another process (another avr-webhookd?) is already listening on the " + name +
                                     " " + path);
        if (ec != asio::error::connection_refused)
            throw std::runtime_error("cannot check the existing " + name + " " + path + ": " + ec.message());
        ::unlink(path.c_str());
        logger.warn("replaced stale " + name + " file " + path + " (no process was listening on it)");
    }

    acceptor.open(stream_protocol());
    const mode_t previous_umask = ::umask(0177);
    boost::system::error_code ec;
    acceptor.bind(stream_protocol::endpoint(path), ec);
    ::umask(previous_umask);
    if (ec) throw std::runtime_error("cannot bind the " + name + " " + path + ": " + ec.message());
    unsigned long long inode = 0;
    if (::stat(path.c_str(), &status) == 0) inode = status.st_ino;
    if (::chmod(path.c_str(), static_cast<mode_t>(mode)) != 0)
        throw std::runtime_error("cannot set the mode of the " + name + " " + path + ": " + std::strerror(errno));
    acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) throw std::runtime_error("cannot listen on the " + name + " " + path + ": " + ec.message());
    return inode;
}

void remove_own_socket_file(const std::string& path, unsigned long long inode) {
    struct stat status {};
    if (::stat(path.c_str(), &status) == 0 && status.st_ino == inode) ::unlink(path.c_str());
}

}  // namespace avr_webhookd
