#include <avr_webhookd/tools/spool_status.hpp>

#include <avr_webhookd/common/timestamp.hpp>
#include <avr_webhookd/config/command_line.hpp>
#include <avr_webhookd/config/config.hpp>
#include <avr_webhookd/spool/recovery.hpp>

#include <boost/program_options.hpp>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <ostream>
#include <vector>

namespace avr_webhookd {

namespace po = boost::program_options;

namespace {

void print_status(std::ostream& out, const std::filesystem::path& dir, const spool::SpoolStatus& status) {
    out << "spool:          " << dir.string() << "\n"
        << "events waiting: " << status.events_waiting << "\n"
        << "calls:          " << status.calls << "\n";
    if (status.oldest_accepted_ms) {
        const auto accepted =
            std::chrono::system_clock::time_point(std::chrono::milliseconds(*status.oldest_accepted_ms));
        const auto age = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now() - accepted);
        out << "oldest:         accepted " << format_utc_millis(accepted) << " (" << age.count() << "s ago)\n";
    }
    out << "segments:       " << status.segments << " (" << status.bytes << " bytes)\n";
    if (status.corrupt_records > 0 || status.torn_tails > 0)
        out << "damaged:        " << status.corrupt_records << " damaged ranges, " << status.torn_tails
            << " torn tails (the daemon skips or cuts them at its next start)\n";
}

}  // namespace

int run_spool_status_command(CommandArguments args, const Environment& env, std::ostream& out, std::ostream& err) {
    po::options_description options("options");
    options.add_options()("spool-dir", po::value<std::string>()->value_name("DIR"),
                          "spool folder (default: the `spool_dir` setting)")(
        "config", po::value<std::string>()->value_name("FILE"), "config file to read `spool_dir` from")(
        "help,h", "show this help");
    po::variables_map vm;
    try {
        const std::vector<std::string> arguments(args.begin(), args.end());
        po::store(po::command_line_parser(arguments).options(options).run(), vm);
    } catch (const po::error& error) {
        err << "spool-status: " << error.what() << "\nUsage: avr-webhookd spool-status [options]\n" << options;
        return exit_code::failure;
    }
    if (vm.count("help")) {
        out << "Usage: avr-webhookd spool-status [options]\n" << options;
        return exit_code::ok;
    }
    std::string dir;
    try {
        // --spool-dir, else WEBHOOK_SPOOL_DIR, else the config file, else where the daemon would look.
        dir =
            find_setting_text(config_sources(vm, env), "spool_dir").value_or(default_spool_dir(env, ::geteuid() == 0));
    } catch (const ConfigError& error) {
        err << "spool-status: " << error.what() << "\n";
        return exit_code::failure;
    }
    if (dir.empty()) {
        err << "spool-status: the spool is off (spool_dir is empty)\n";
        return exit_code::failure;
    }
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) {
        err << "spool-status: " << dir << " is not a folder" << (ec ? ": " + ec.message() : std::string{}) << "\n";
        return exit_code::failure;
    }
    const auto status = spool::spool_status(dir);
    print_status(out, dir, status);
    for (const auto& error : status.errors) err << "spool-status: cannot read " << error << "\n";
    if (!status.errors.empty()) {
        err << "spool-status: the counts above are incomplete\n";
        return exit_code::failure;
    }
    return exit_code::ok;
}

}  // namespace avr_webhookd
