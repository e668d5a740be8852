#include <avr_webhookd/tools/dead_letters_command.hpp>

#include <avr_webhookd/common/duration.hpp>
#include <avr_webhookd/common/text_table.hpp>
#include <avr_webhookd/config/command_line.hpp>
#include <avr_webhookd/config/config.hpp>
#include <avr_webhookd/dead_letter/replay_record.hpp>
#include <avr_webhookd/ops/logger.hpp>
#include <avr_webhookd/tools/replay_client.hpp>

#include <boost/program_options.hpp>

#include <ostream>
#include <utility>

namespace avr_webhookd {

namespace po = boost::program_options;

namespace {

constexpr std::size_t batch_lines = 1000;
constexpr std::size_t batch_bytes = 8u << 20;

struct Options {
    std::string action;  // list or replay
    std::string file;
    std::string socket;
    DeadLetterFilter filter;
    bool summary_only = false;
    bool again = false;
    bool dry_run = false;
    std::chrono::milliseconds idle_timeout{60000};
};

po::options_description option_descriptions() {
    po::options_description options("options");
    options.add_options()("dead-letter", po::value<std::string>()->value_name("FILE"),
                          "the dead-letter file (default: the `dead_letter` setting)")(
        "config", po::value<std::string>()->value_name("FILE"), "config file to read settings from")(
        "destination", po::value<std::vector<std::string>>()->value_name("NAME"), "only events for this destination")(
        "call", po::value<std::vector<std::string>>()->value_name("UUID"), "only events of this call")(
        "type", po::value<std::vector<std::string>>()->value_name("TYPE"), "only events of this type")(
        "since", po::value<std::string>()->value_name("TIME"),
        "only events given up since TIME: 2026-01-02T03:04:05Z, 2026-01-02, or ago: 30m, 2h")(
        "reason", po::value<std::vector<std::string>>()->value_name("TEXT"),
        "only events whose failure reason or code contains TEXT (queue_full, 503, ECONNREFUSED ...)")(
        "summary", "list: only the summary")("socket", po::value<std::string>()->value_name("PATH"),
                                             "replay: the daemon's socket (default: the `socket` setting)")(
        "again", "replay: also events already replayed")("dry-run", "replay: only show what would be sent")(
        "idle-timeout", po::value<std::string>()->value_name("DURATION")->default_value("60s"),
        "replay: give up when the daemon answers nothing for this long")("help,h", "show this help");
    return options;
}

void print_usage(std::ostream& out, const po::options_description& options) {
    out << "usage: avr-webhookd dead-letters list [options]\n"
           "       avr-webhookd dead-letters replay [options]\n"
           "Lists the dead-letter file, or sends the chosen events again through the running daemon (each to\n"
           "its own destination, with its original id), recording what was sent so that a second replay\n"
           "skips it unless --again. Filters of different kinds must all match; a filter given twice\n"
           "matches either value.\n"
        << options;
}

std::vector<std::string> values(const po::variables_map& vm, const char* name) {
    return vm.count(name) ? vm[name].as<std::vector<std::string>>() : std::vector<std::string>{};
}

// Fills `options` from the command line; the exit code when there is nothing more to do.
std::optional<int> parse(CommandArguments args, const Environment& env, std::ostream& out, std::ostream& err,
                         Options& options) {
    const auto descriptions = option_descriptions();
    po::variables_map vm;
    try {
        std::vector<std::string> arguments(args.begin(), args.end());
        if (!arguments.empty() && !arguments.front().starts_with("-")) {
            options.action = arguments.front();
            arguments.erase(arguments.begin());
        }
        po::store(po::command_line_parser(arguments).options(descriptions).run(), vm);
    } catch (const po::error& error) {
        err << "dead-letters: " << error.what() << "\n";
        print_usage(err, descriptions);
        return exit_code::failure;
    }
    if (vm.count("help")) {
        print_usage(out, descriptions);
        return exit_code::ok;
    }
    if (options.action != "list" && options.action != "replay") {
        err << "dead-letters: say list or replay\n";
        print_usage(err, descriptions);
        return exit_code::failure;
    }
    options.filter.destinations = values(vm, "destination");
    options.filter.calls = values(vm, "call");
    options.filter.types = values(vm, "type");
    options.filter.reasons = values(vm, "reason");
    if (vm.count("since")) {
        options.filter.since = parse_since(vm["since"].as<std::string>(), std::chrono::system_clock::now());
        if (!options.filter.since) {
            err << "dead-letters: invalid --since: expected a date-time (2026-01-02T03:04:05Z), a date (2026-01-02) "
                   "or a duration before now (30m, 2h)\n";
            return exit_code::failure;
        }
    }
    const auto idle = parse_duration(vm["idle-timeout"].as<std::string>());
    if (!idle || idle->count() == 0) {
        err << "dead-letters: invalid --idle-timeout: expected " << duration_syntax << ", more than zero\n";
        return exit_code::failure;
    }
    options.idle_timeout = *idle;
    options.summary_only = vm.count("summary") > 0;
    options.again = vm.count("again") > 0;
    options.dry_run = vm.count("dry-run") > 0;
    try {
        // Each as the daemon resolves it: --flag, else WEBHOOK_*, else the config file, else the default.
        const auto sources = config_sources(vm, env);
        options.socket = find_setting_text(sources, "socket").value_or(Config{}.socket);
        options.file = find_setting_text(sources, "dead_letter").value_or(default_dead_letter(options.socket));
    } catch (const ConfigError& error) {
        err << "dead-letters: " << error.what() << "\n";
        return exit_code::trouble;
    }
    if (options.file.empty()) {
        err << "dead-letters: the dead-letter file is off (dead_letter is empty)\n";
        return exit_code::trouble;
    }
    return std::nullopt;
}

std::string counts_text(const std::map<std::string, std::uint64_t>& counts) {
    std::string text;
    for (const auto& [name, count] : counts) text += (text.empty() ? "" : ", ") + name + " " + std::to_string(count);
    return text.empty() ? "-" : text;
}

void print_malformed(const DeadLetterScan& scan, const std::string& file, std::ostream& err) {
    for (const auto& [line, why] : scan.malformed)
        err << file << " line " << line << ": skipped, not a dead-letter line: " << why << "\n";
    if (scan.incomplete_tail) err << file << ": its last line is still being written; it was left for the next run\n";
}

int list(const Options& options, std::ostream& out, std::ostream& err) {
    const ReplayRecord record(options.file, ReplayRecord::Mode::read_only);
    DeadLetterSummary summary;
    TextTable table({"LINE", "GIVEN UP", "DESTINATION", "TYPE", "CALL", "ID", "REASON", "CODE", "REPLAYED"},
                    {TextTable::Align::right});
    const auto scan = read_dead_letters(options.file, [&](DeadLetterEntry&& entry) {
        if (!options.filter.matches(entry)) return;
        const bool replayed = record.contains(entry.key());
        summary.add(entry, replayed);
        if (options.summary_only) return;
        table.add({std::to_string(entry.line), entry.time, entry.destination.empty() ? "-" : entry.destination,
                   Logger::sanitize(entry.type, 64), Logger::sanitize(entry.call, 64), Logger::sanitize(entry.id, 128),
                   Logger::sanitize(entry.reason, 60), Logger::sanitize(entry.code, 40), replayed ? "yes" : "no"});
    });
    out << "dead-letter file: " << options.file << "\n"
        << "events:           " << summary.events << " (" << summary.replayed << " replayed already)\n";
    if (summary.events > 0)
        out << "given up:         " << summary.oldest << " .. " << summary.newest << "\n"
            << "by destination:   " << Logger::sanitize(counts_text(summary.by_destination), 1000) << "\n"
            << "by reason:        " << Logger::sanitize(counts_text(summary.by_reason), 1000) << "\n"
            << "by type:          " << Logger::sanitize(counts_text(summary.by_type), 1000) << "\n";
    if (!scan.malformed.empty()) out << "malformed lines:  " << scan.malformed.size() << " (skipped)\n";
    if (!options.summary_only && !table.empty()) out << "\n" << table.render();
    print_malformed(scan, options.file, err);
    return scan.malformed.empty() ? exit_code::ok : exit_code::failure;
}

// Sends what the filter takes in batches, one connection each, and records each acknowledged
// event at once; keeps scanning after a failure so that the record is compacted all the same.
class Replayer {
public:
    Replayer(const Options& options, std::ostream& out, std::ostream& err)
        : options_(options),
          out_(out),
          err_(err),
          record_(options.file, options.dry_run ? ReplayRecord::Mode::read_only : ReplayRecord::Mode::locked) {}

    int run() {
        const auto scan = read_dead_letters(options_.file, [this](DeadLetterEntry&& entry) { take(std::move(entry)); });
        flush();
        if (!options_.dry_run) record_.compact();
        print_malformed(scan, options_.file, err_);
        report(scan);
        if (failed_) return exit_code::trouble;
        return rejected_ + unanswered_ + not_sent_ + scan.malformed.size() > 0 ? exit_code::failure : exit_code::ok;
    }

private:
    void take(DeadLetterEntry&& entry) {
        record_.mark_present(entry.key());
        if (!options_.filter.matches(entry)) return;
        ++selected_;
        if (!options_.again && record_.contains(entry.key())) {
            ++skipped_;
            return;
        }
        if (failed_) {
            ++not_sent_;
            return;
        }
        batch_size_ += entry.text.size();
        batch_.push_back(std::move(entry));
        if (batch_.size() >= batch_lines || batch_size_ >= batch_bytes) flush();
    }

    void flush() {
        if (batch_.empty()) return;
        std::vector<std::string> lines;
        for (auto& entry : batch_) lines.push_back(std::exchange(entry.text, {}));
        const auto exchange =
            options_.dry_run ? ReplayExchange{} : replay_lines(options_.socket, lines, options_.idle_timeout);
        std::vector<std::string> keys;
        for (std::size_t i = 0; i < batch_.size(); ++i) {
            const auto& entry = batch_[i];
            const auto where = options_.file + " line " + std::to_string(entry.line) + " (event " +
                               Logger::sanitize(entry.id, 128) + ")";
            const auto& reply = options_.dry_run ? ReplayReply{} : exchange.replies[i];
            if (options_.dry_run) {
                out_ << where << ": would be sent to "
                     << (entry.destination.empty() ? "its destinations" : entry.destination) << "\n";
                ++sent_;
            } else if (reply.result == ReplayReply::Result::accepted) {
                keys.push_back(entry.key());
                ++sent_;
                ++by_destination_[entry.destination.empty() ? "(every destination)" : entry.destination];
            } else if (reply.result == ReplayReply::Result::rejected) {
                err_ << where << ": the daemon did not take it: " << reply.error << "\n";
                ++rejected_;
            } else {
                ++unanswered_;
            }
        }
        record_.add(keys);
        if (!exchange.failure.empty()) {
            err_ << "dead-letters: " << exchange.failure << "\n";
            failed_ = true;
        }
        batch_.clear();
        batch_size_ = 0;
    }

    void report(const DeadLetterScan& scan) {
        if (selected_ == 0) out_ << "no dead letter in " << options_.file << " matches\n";
        if (options_.dry_run) out_ << sent_ << " events would be sent again\n";
        else if (sent_ > 0)
            out_ << "replayed " << sent_ << " events with their original ids: " << counts_text(by_destination_)
                 << " (recorded in " << record_.path() << ")\n";
        if (skipped_ > 0) out_ << skipped_ << " already replayed, skipped (--again sends them again)\n";
        if (rejected_ > 0) out_ << rejected_ << " not taken by the daemon (see above)\n";
        if (unanswered_ + not_sent_ > 0)
            out_ << unanswered_ + not_sent_ << " not sent or not confirmed; run the replay again for them\n";
        if (!scan.malformed.empty()) out_ << scan.malformed.size() << " malformed lines skipped (see above)\n";
    }

    const Options& options_;
    std::ostream& out_;
    std::ostream& err_;
    ReplayRecord record_;
    std::vector<DeadLetterEntry> batch_;
    std::size_t batch_size_ = 0;
    std::map<std::string, std::uint64_t> by_destination_;
    std::uint64_t selected_ = 0, skipped_ = 0, sent_ = 0, rejected_ = 0, unanswered_ = 0, not_sent_ = 0;
    bool failed_ = false;
};

}  // namespace

void DeadLetterSummary::add(const DeadLetterEntry& entry, bool was_replayed) {
    ++events;
    if (was_replayed) ++replayed;
    ++by_destination[entry.destination.empty() ? "(none)" : entry.destination];
    ++by_reason[entry.reason];
    ++by_type[entry.type];
    if (oldest.empty() || entry.time < oldest) oldest = entry.time;
    if (newest.empty() || entry.time > newest) newest = entry.time;
}

int run_dead_letters_command(CommandArguments args, const Environment& env, std::ostream& out, std::ostream& err) {
    Options options;
    if (const auto done = parse(args, env, out, err, options)) return *done;
    try {
        return options.action == "list" ? list(options, out, err) : Replayer(options, out, err).run();
    } catch (const std::runtime_error& error) {
        err << "dead-letters: " << error.what() << "\n";
        return exit_code::trouble;
    }
}

}  // namespace avr_webhookd
