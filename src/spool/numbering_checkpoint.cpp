#include <avr_webhookd/spool/numbering_checkpoint.hpp>

#include <algorithm>
#include <charconv>

namespace avr_webhookd::spool {
namespace {

constexpr std::string_view checkpoint_name = "sequences";
constexpr std::string_view checkpoint_header = "avr-webhookd sequences 1\n";

}  // namespace

void NumberingCheckpoint::merge(FileSystem& files, const std::filesystem::path& dir, Recovery& recovery) {
    std::error_code ec;
    const std::string text = read_whole_file(files, dir / checkpoint_name, ec);
    if (ec || !text.starts_with(checkpoint_header)) return;
    std::string_view rest = std::string_view(text).substr(checkpoint_header.size());
    while (!rest.empty()) {
        const auto end = rest.find('\n');
        if (end == std::string_view::npos) break;  // a torn last line is ignored
        const auto line = rest.substr(0, end);
        rest.remove_prefix(end + 1);
        const auto space = line.find(' ');
        std::uint64_t sequence = 0;
        if (space == std::string_view::npos ||
            std::from_chars(line.data() + space + 1, line.data() + line.size(), sequence).ec != std::errc{})
            continue;
        auto& last = recovery.last_sequence[std::string(line.substr(0, space))];
        last = std::max(last, sequence);
    }
}

std::error_code NumberingCheckpoint::write(FileSystem& files, const std::filesystem::path& dir,
                                           const Numbering& numbering) {
    std::string text(checkpoint_header);
    for (const auto& [key, last] : numbering) text.append(key).append(" ").append(std::to_string(last)).append("\n");
    return replace_file_durably(files, dir / checkpoint_name, text);
}

NumberingCheckpoint::Collected NumberingCheckpoint::collect(SpoolWriter& writer,
                                                            const std::function<Numbering()>& numbering) {
    Collected result;
    if (writer.active_segment() != checkpointed_segment_) {
        result.checkpoint = write(writer.files(), writer.path(), numbering ? numbering() : Numbering{});
        if (!result.checkpoint) checkpointed_segment_ = writer.active_segment();
    }
    result.collect = writer.collect();
    return result;
}

}  // namespace avr_webhookd::spool
