#include "suggestion.hpp"
#include "setting_table.hpp"

#include <avr_webhookd/common/text.hpp>

#include <algorithm>
#include <vector>

namespace avr_webhookd::config_detail {

namespace {

// The setting whose key is nearest to an unknown one, if any is near enough to be a typo.
const Setting* closest_setting(std::string_view unknown_key) {
    const Setting* best = nullptr;
    std::size_t best_distance = 3;
    const auto key = ascii_lower(unknown_key);
    for (const auto& setting : setting_table()) {
        if (const auto distance = edit_distance(key, setting.info.key); distance < best_distance) {
            best = &setting;
            best_distance = distance;
        }
    }
    return best;
}

}  // namespace

std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) {
        row[j] = j;
    }
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const auto above = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diagonal = above;
        }
    }
    return row[b.size()];
}

std::string suggestion(std::string_view unknown_key, std::string (*name)(std::string_view)) {
    const auto* best = closest_setting(unknown_key);
    if (!best) {
        return {};
    }
    return " (did you mean " + (name ? name(best->info.key) : std::string{best->info.key}) + "?)";
}

}  // namespace avr_webhookd::config_detail
