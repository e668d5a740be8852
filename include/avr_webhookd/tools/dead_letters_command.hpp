#pragma once

#include <avr_webhookd/common/command.hpp>
#include <avr_webhookd/dead_letter/dead_letter_reader.hpp>

#include <map>
#include <string>

namespace avr_webhookd {

// What `dead-letters list` counts before it lists the lines.
struct DeadLetterSummary {
    std::uint64_t events = 0;    // well-formed lines the filter takes
    std::uint64_t replayed = 0;  // of those, recorded as sent again
    std::map<std::string, std::uint64_t> by_destination, by_reason, by_type;
    std::string oldest, newest;  // failure.time of the first and last one taken

    void add(const DeadLetterEntry& entry, bool replayed);
};

// `avr-webhookd dead-letters list|replay [--file FILE] [--config FILE] [--destination D]
// [--call UUID] [--type T] [--since TIME] [--reason R] ...`; `args` are the arguments after
// "dead-letters". The file: --file, else the `dead_letter` setting (WEBHOOK_DEAD_LETTER or the
// config file), else dead-letter.ndjson beside the socket, as the daemon resolves it.
//
// list prints a summary (events by destination, reason and type, how many were replayed) and a
// line per event; --summary only the summary. replay sends the chosen events to the running
// daemon's socket (--socket, else the `socket` setting), each to its own destination with its
// original id, skipping those recorded as replayed unless --again; --dry-run only says what it
// would send. Both read the lines complete when they start, while the daemon keeps appending, and
// report malformed lines and skip them.
//
// Returns exit_code::ok; failure when a line was malformed or an event was not taken by the
// daemon (or for a usage error); trouble when the file, the record or the daemon cannot be used.
int run_dead_letters_command(CommandArguments args, const Environment& env, std::ostream& out, std::ostream& err);

}  // namespace avr_webhookd
