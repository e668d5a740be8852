#include <avr_webhookd/common/text_table.hpp>

#include <algorithm>

namespace avr_webhookd {

std::size_t display_width(std::string_view text) {
    return static_cast<std::size_t>(
        std::count_if(text.begin(), text.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

TextTable::TextTable(std::vector<std::string> headings, std::vector<Align> align)
    : headings_(std::move(headings)), align_(std::move(align)) {
    align_.resize(headings_.size(), Align::left);
}

void TextTable::add(std::vector<Cell> row) {
    row.resize(headings_.size());
    rows_.push_back(std::move(row));
}

std::string TextTable::render(bool color, std::string_view indent) const {
    std::vector<std::size_t> widths(headings_.size());
    for (std::size_t column = 0; column < headings_.size(); ++column) {
        widths[column] = display_width(headings_[column]);
        for (const auto& row : rows_) widths[column] = std::max(widths[column], display_width(row[column].text));
    }
    std::string out;
    const auto line = [&](const std::vector<Cell>& cells) {
        std::string text(indent);
        for (std::size_t column = 0; column < cells.size(); ++column) {
            const auto& cell = cells[column];
            const std::string padding(widths[column] - display_width(cell.text), ' ');
            if (column > 0) text.append("  ");
            if (align_[column] == Align::right) text.append(padding);
            const bool styled = color && !cell.style.empty();
            if (styled) text.append("\x1b[").append(cell.style).append("m");
            text.append(cell.text);
            if (styled) text.append("\x1b[0m");
            if (align_[column] == Align::left) text.append(padding);
        }
        text.erase(text.find_last_not_of(' ') + 1);
        out.append(text).push_back('\n');
    };
    line(std::vector<Cell>(headings_.begin(), headings_.end()));
    for (const auto& row : rows_) line(row);
    return out;
}

}  // namespace avr_webhookd
