#include <avr_webhookd/tools/status_command.hpp>

#include <avr_webhookd/common/duration.hpp>
#include <avr_webhookd/common/text.hpp>
#include <avr_webhookd/ops/logger.hpp>
#include <avr_webhookd/tools/healthcheck.hpp>

#include <boost/json/parse.hpp>
#include <boost/program_options/options_description.hpp>
#include <boost/program_options/parsers.hpp>
#include <boost/program_options/variables_map.hpp>

#include <unistd.h>

#include <csignal>
#include <ctime>
#include <ostream>
#include <sstream>
#include <variant>

namespace avr_webhookd {

namespace po = boost::program_options;
namespace http = boost::beast::http;

namespace {

volatile std::sig_atomic_t interrupted = 0;

extern "C" void on_interrupt(int) { interrupted = 1; }

// Home, clear to the end of the screen: the view is redrawn in place.
constexpr std::string_view redraw = "\x1b[H\x1b[2J";

struct StatusOptions {
    AdminAddress address;
    bool json = false;
    bool watch = false;
    std::chrono::milliseconds interval{2000};
    std::chrono::milliseconds timeout{2000};
};

void print_usage(std::ostream& out, const po::options_description& options) {
    out << "usage: avr-webhookd status [--admin ADDR] [--config FILE] [--json] [--watch [--interval 2s]]\n"
           "Shows the daemon's state from the admin endpoint's /status: intakes, spool, and per destination\n"
           "its state, rates, queue, latency, dead letters and newest failure.\n"
        << options;
}

std::optional<std::chrono::milliseconds> positive_duration(const po::variables_map& vm, const char* name,
                                                           std::ostream& err) {
    const auto value = parse_duration(vm[name].as<std::string>());
    if (value && value->count() > 0) return value;
    err << "status: invalid --" << name << ": expected " << duration_syntax << ", more than zero\n";
    return std::nullopt;
}

std::variant<StatusOptions, int> parse(CommandArguments args, const Environment& env, std::ostream& out,
                                       std::ostream& err) {
    po::options_description options("options");
    add_admin_query_options(options);
    options.add_options()("json", "print the /status document itself")("watch,w",
                                                                       "redraw every interval until interrupted")(
        "interval", po::value<std::string>()->value_name("DURATION")->default_value("2s"), "--watch: how often")(
        "help,h", "show this help");
    po::variables_map vm;
    try {
        po::store(po::command_line_parser(std::vector<std::string>(args.begin(), args.end())).options(options).run(),
                  vm);
    } catch (const po::error& error) {
        err << "status: " << error.what() << "\n";
        print_usage(err, options);
        return exit_code::failure;
    }
    if (vm.count("help")) {
        print_usage(out, options);
        return exit_code::ok;
    }
    StatusOptions parsed;
    const auto interval = positive_duration(vm, "interval", err);
    const auto timeout = positive_duration(vm, "timeout", err);
    auto address = admin_address_setting(vm, env, "status", err);
    if (!interval || !timeout || !address) return exit_code::failure;
    parsed.address = std::move(*address);
    parsed.json = vm.count("json") > 0;
    parsed.watch = vm.count("watch") > 0;
    parsed.interval = *interval;
    parsed.timeout = *timeout;
    return parsed;
}

// One view: the text, or why there is none. True when /status answered.
bool show(const StatusOptions& options, std::ostream& out, std::ostream& problems, bool color) {
    const auto reply = query_admin(options.address, http::verb::get, "/status", options.timeout);
    if (!reply.reached) {
        problems << "cannot reach the admin endpoint at " << to_string(options.address) << ": " << reply.error << "\n";
        return false;
    }
    if (reply.status != 200) {
        problems << "the admin endpoint answered HTTP " << reply.status << " to /status"
                 << (reply.status == 404 ? " (a daemon older than the status page?)" : "") << "\n";
        return false;
    }
    if (options.json) {
        out << without_trailing_newlines(reply.body) << "\n";
        return true;
    }
    boost::system::error_code ec;
    const auto document = boost::json::parse(reply.body, ec);
    if (ec) {
        problems << "the admin endpoint's /status is not JSON: " << ec.message() << "\n";
        return false;
    }
    out << render_status_text(document, color);
    return true;
}

void sleep_for(std::chrono::milliseconds duration) {
    timespec left{static_cast<std::time_t>(duration.count() / 1000),
                  static_cast<long>(duration.count() % 1000) * 1000000};
    ::nanosleep(&left, nullptr);  // a signal ends it early
}

int watch(const StatusOptions& options, std::ostream& out, const Environment& env) {
    struct sigaction action {};
    action.sa_handler = on_interrupt;
    ::sigaction(SIGINT, &action, nullptr);
    ::sigaction(SIGTERM, &action, nullptr);
    const bool color = ::isatty(STDOUT_FILENO) == 1 && !env.contains("NO_COLOR");
    while (!interrupted) {
        std::ostringstream view;  // drawn at once, so the screen never shows half a view
        show(options, view, view, color);
        out << redraw << view.str() << "\n(every " << format_duration(options.interval) << "; Ctrl-C to quit)"
            << std::flush;
        sleep_for(options.interval);
    }
    out << "\n";
    return exit_code::ok;
}

}  // namespace

int run_status_command(CommandArguments args, const Environment& env, std::ostream& out, std::ostream& err) {
    auto parsed = parse(args, env, out, err);
    if (const int* done = std::get_if<int>(&parsed)) return *done;
    const auto& options = std::get<StatusOptions>(parsed);
    if (options.watch) return watch(options, out, env);
    const bool color = ::isatty(STDOUT_FILENO) == 1 && !env.contains("NO_COLOR");
    return show(options, out, err, color) ? exit_code::ok : exit_code::failure;
}

}  // namespace avr_webhookd
