#include <avr_webhookd/tools/send_command.hpp>

#include <avr_webhookd/config/command_line.hpp>
#include <avr_webhookd/config/config.hpp>
#include <avr_webhookd/ops/logger.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <boost/program_options/options_description.hpp>
#include <boost/program_options/parsers.hpp>
#include <boost/program_options/positional_options.hpp>
#include <boost/program_options/variables_map.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <ostream>

namespace avr_webhookd {

namespace po = boost::program_options;

namespace {

constexpr std::string_view stdin_name = "stdin";
constexpr std::size_t chunk_size = 64 * 1024;
constexpr std::size_t max_reply_line = 1024 * 1024;  // a longer "reply" is not from the daemon

std::string errno_text() { return std::strerror(errno); }

}  // namespace

void SendReport::begin_input(std::string name) { inputs_.push_back(Input{std::move(name), newlines_ + 1}); }

void SendReport::end_line() {
    const auto content = line_bytes_ - (line_ends_with_cr_ ? 1 : 0);  // the daemon strips one '\r'
    if (content > 0) ++event_lines_;
    line_bytes_ = 0;
    line_ends_with_cr_ = false;
}

void SendReport::add(std::string_view bytes) {
    for (const char byte : bytes) {
        if (byte == '\n') {
            end_line();
            ++newlines_;
            continue;
        }
        ++line_bytes_;
        line_ends_with_cr_ = byte == '\r';
    }
}

void SendReport::finish() {
    if (line_bytes_ > 0) end_line();
}

std::string SendReport::where(std::uint64_t stream_line) const {
    const auto after = std::upper_bound(inputs_.begin(), inputs_.end(), stream_line,
                                        [](std::uint64_t line, const Input& input) { return line < input.first_line; });
    if (after == inputs_.begin()) return "line " + std::to_string(stream_line);
    const Input& input = *(after - 1);
    const auto line = "line " + std::to_string(stream_line - input.first_line + 1);
    return inputs_.size() == 1 && input.name == stdin_name ? line : input.name + " " + line;
}

std::string SendReport::reply(std::string_view text) {
    if (text.ends_with('\r')) text.remove_suffix(1);
    boost::system::error_code ec;
    const auto parsed = boost::json::parse(text, ec);
    const auto* object = ec ? nullptr : parsed.if_object();
    const auto* ok = object ? object->if_contains("ok") : nullptr;
    if (!ok || !ok->is_bool()) return "daemon: " + Logger::sanitize(text, 1000);

    std::string message;
    if (const auto* error = object->if_contains("error"); error && error->is_string())
        message = Logger::sanitize(std::string_view{error->get_string()}, 1000);
    const auto* line = object->if_contains("line");
    const auto number = line && line->is_uint64() ? std::optional{line->get_uint64()}
                        : line && line->is_int64() && line->get_int64() > 0
                            ? std::optional{static_cast<std::uint64_t>(line->get_int64())}
                            : std::nullopt;
    if (!ok->get_bool()) {
        if (!number) {
            refusal_ = message.empty() ? std::string{"no reason given"} : message;
            return "daemon refused the connection: " + *refusal_;
        }
        ++rejected_;
        return where(*number) + ": rejected: " + (message.empty() ? std::string{"no reason given"} : message);
    }
    ++accepted_;
    std::string result = number ? where(*number) + ": accepted" : std::string{"accepted"};
    if (const auto* id = object->if_contains("id"); id && id->is_string())
        result += " (id " + Logger::sanitize(std::string_view{id->get_string()}, 200) + ")";
    return result;
}

namespace {

struct InputFile {
    std::string name;
    int fd;
};

class FdCloser {
public:
    explicit FdCloser(std::vector<InputFile>& inputs) : inputs_(inputs) {}
    ~FdCloser() {
        for (const auto& input : inputs_)
            if (input.fd != STDIN_FILENO) ::close(input.fd);
    }
    FdCloser(const FdCloser&) = delete;
    FdCloser& operator=(const FdCloser&) = delete;

private:
    std::vector<InputFile>& inputs_;
};

class SocketCloser {
public:
    explicit SocketCloser(int fd) : fd_(fd) {}
    ~SocketCloser() { ::close(fd_); }
    SocketCloser(const SocketCloser&) = delete;
    SocketCloser& operator=(const SocketCloser&) = delete;

private:
    int fd_;
};

// Returns the connected socket, or -1 with errno set.
int connect_unix(const std::string& path) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (path.size() >= sizeof address.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    std::memcpy(address.sun_path, path.data(), path.size());
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
        const int saved = errno;
        ::close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

// "-" is stdin. False after printing why a file cannot be read.
bool open_inputs(const std::vector<std::string>& names, std::vector<InputFile>& inputs, std::ostream& err) {
    for (const auto& name : names) {
        if (name == "-") {
            inputs.push_back({std::string{stdin_name}, STDIN_FILENO});
            continue;
        }
        const int fd = ::open(name.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            err << "send: cannot read " << name << ": " << errno_text() << "\n";
            return false;
        }
        inputs.push_back({name, fd});
    }
    return true;
}

void print_usage(std::ostream& out, const po::options_description& options) {
    out << "usage: avr-webhookd send [--socket PATH] [--config FILE] [FILE...]\n"
           "Sends NDJSON events (the files, or stdin) to the daemon and prints its replies.\n"
           "Exits 0 when every line was accepted, 1 when some were rejected, 2 when sending failed.\n"
        << options;
}

// Moves input to the socket and replies to `out`, both at once, until the daemon closes.
class Transfer {
public:
    Transfer(int socket, std::vector<InputFile>& inputs, SendReport& report, std::ostream& out, std::ostream& err)
        : socket_(socket), inputs_(inputs), report_(report), out_(out), err_(err) {}

    // exit_code::ok when everything was sent and the daemon closed; trouble after a failure (already printed).
    int run() {
        start_next_input();
        while (!socket_closed_) {
            std::array<pollfd, 2> fds{};
            fds[0] = {socket_, static_cast<short>(POLLIN | (pending() ? POLLOUT : 0)), 0};
            nfds_t count = 1;
            const bool want_input = current_ < inputs_.size() && !pending();
            if (want_input) fds[count++] = {inputs_[current_].fd, POLLIN, 0};
            if (::poll(fds.data(), count, -1) < 0) {
                if (errno == EINTR) continue;
                err_ << "send: poll failed: " << errno_text() << "\n";
                return exit_code::trouble;
            }
            if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) receive();
            if (!socket_closed_ && (fds[0].revents & POLLOUT)) transmit();
            if (want_input && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) && !read_input())
                return exit_code::trouble;
            if (current_ == inputs_.size() && !pending() && !write_shut_) {
                ::shutdown(socket_, SHUT_WR);  // the daemon's cue to finish and close
                write_shut_ = true;
            }
        }
        if (!reply_buffer_.empty()) print_reply(reply_buffer_);
        if ((abandoned_ || !write_shut_) && !report_.refusal()) {
            err_ << "send: the daemon closed the connection before all input was sent"
                 << (write_error_.empty() ? std::string{} : " (" + write_error_ + ")") << "\n";
            return exit_code::trouble;
        }
        return exit_code::ok;
    }

private:
    bool pending() const { return sent_ < outgoing_.size(); }

    void start_next_input() {
        if (current_ < inputs_.size()) report_.begin_input(inputs_[current_].name);
    }

    bool read_input() {
        std::string chunk(chunk_size, '\0');
        const auto got = ::read(inputs_[current_].fd, chunk.data(), chunk.size());
        if (got < 0) {
            if (errno == EINTR || errno == EAGAIN) return true;
            err_ << "send: cannot read " << inputs_[current_].name << ": " << errno_text() << "\n";
            return false;
        }
        outgoing_.clear();
        sent_ = 0;
        if (got == 0) {
            if (report_.needs_newline()) outgoing_ = "\n";  // so its last line never joins the next input's first
            report_.add(outgoing_);
            ++current_;
            start_next_input();
            if (current_ == inputs_.size()) report_.finish();
            return true;
        }
        chunk.resize(static_cast<std::size_t>(got));
        report_.add(chunk);
        outgoing_ = std::move(chunk);
        return true;
    }

    void transmit() {
        const auto written =
            ::send(socket_, outgoing_.data() + sent_, outgoing_.size() - sent_, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (written >= 0) {
            sent_ += static_cast<std::size_t>(written);
            return;
        }
        if (errno == EINTR || errno == EAGAIN) return;
        // The daemon is gone or refused us; keep reading what it said before closing.
        write_error_ = errno_text();
        abandoned_ = true;
        current_ = inputs_.size();
        outgoing_.clear();
        sent_ = 0;
        ::shutdown(socket_, SHUT_WR);
        write_shut_ = true;
    }

    void receive() {
        char buffer[chunk_size];
        const auto got = ::recv(socket_, buffer, sizeof buffer, MSG_DONTWAIT);
        if (got < 0 && (errno == EINTR || errno == EAGAIN)) return;
        if (got <= 0) {
            socket_closed_ = true;
            if (got < 0 && write_error_.empty()) write_error_ = errno_text();
            return;
        }
        reply_buffer_.append(buffer, static_cast<std::size_t>(got));
        std::size_t start = 0;
        for (auto newline = reply_buffer_.find('\n'); newline != std::string::npos;
             newline = reply_buffer_.find('\n', start)) {
            print_reply(std::string_view{reply_buffer_}.substr(start, newline - start));
            start = newline + 1;
        }
        reply_buffer_.erase(0, start);
        if (reply_buffer_.size() > max_reply_line) {
            print_reply(reply_buffer_);
            reply_buffer_.clear();
        }
    }

    void print_reply(std::string_view line) {
        if (line.empty()) return;
        out_ << report_.reply(line) << "\n";
    }

    int socket_;
    std::vector<InputFile>& inputs_;
    SendReport& report_;
    std::ostream& out_;
    std::ostream& err_;
    std::size_t current_ = 0;  // index of the input being read
    std::string outgoing_;     // bytes read and not yet fully sent
    std::size_t sent_ = 0;
    std::string reply_buffer_;
    std::string write_error_;
    bool write_shut_ = false;
    bool abandoned_ = false;  // writing failed: the rest of the input was not sent
    bool socket_closed_ = false;
};

}  // namespace

int run_send_command(CommandArguments args, const Environment& env, std::ostream& out, std::ostream& err) {
    po::options_description options("options");
    options.add_options()("socket", po::value<std::string>()->value_name("PATH"),
                          "the daemon's socket (default: the `socket` setting)")(
        "config", po::value<std::string>()->value_name("FILE"), "config file to read `socket` from")("help,h",
                                                                                                     "show this help");
    po::options_description all;
    all.add(options).add_options()("file", po::value<std::vector<std::string>>());
    po::positional_options_description positional;
    positional.add("file", -1);
    po::variables_map vm;
    try {
        const std::vector<std::string> arguments(args.begin(), args.end());
        po::store(po::command_line_parser(arguments).options(all).positional(positional).run(), vm);
    } catch (const po::error& error) {
        err << "send: " << error.what() << "\n";
        print_usage(err, options);
        return exit_code::trouble;
    }
    if (vm.count("help")) {
        print_usage(out, options);
        return exit_code::ok;
    }

    std::string socket_path;
    try {
        // --socket, else WEBHOOK_SOCKET, else the config file, else the built-in default.
        socket_path = find_setting_text(config_sources(vm, env), "socket").value_or(Config{}.socket);
    } catch (const ConfigError& error) {
        err << "send: " << error.what() << "\n";
        return exit_code::trouble;
    }

    std::vector<InputFile> inputs;
    FdCloser close_inputs(inputs);
    const auto names = vm.count("file") ? vm["file"].as<std::vector<std::string>>() : std::vector<std::string>{"-"};
    if (!open_inputs(names, inputs, err)) return exit_code::trouble;

    const int socket = connect_unix(socket_path);
    if (socket < 0) {
        err << "send: cannot connect to " << socket_path << ": " << errno_text() << "\n";
        return exit_code::trouble;
    }
    SocketCloser close_socket(socket);

    SendReport report;
    if (const int failed = Transfer(socket, inputs, report, out, err).run(); failed != 0) return failed;
    out.flush();
    if (report.refusal()) {
        err << "send: the daemon did not take the events: " << *report.refusal() << "\n";
        return exit_code::trouble;
    }
    if (report.rejected() > 0) {
        err << report.rejected() << " of " << report.event_lines() << " lines rejected\n";
        return exit_code::failure;
    }
    return exit_code::ok;
}

}  // namespace avr_webhookd
