#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace avr_webhookd {

// Columns of text, each padded to its widest cell, for the tools' terminal output (status,
// dead-letters list). Widths count UTF-8 characters, not bytes.
class TextTable {
public:
    enum class Align { left, right };
    struct Cell {
        Cell(std::string text_ = {}, std::string_view style_ = {}) : text(std::move(text_)), style(style_) {}
        Cell(const char* text_) : text(text_) {}
        std::string text;
        std::string_view style;  // an SGR code ("32" green, "1;31" bold red), used with color only
    };

    explicit TextTable(std::vector<std::string> headings, std::vector<Align> align = {});
    void add(std::vector<Cell> row);  // missing cells are empty, extra ones dropped
    bool empty() const { return rows_.empty(); }

    // The heading line and the rows, each line ending in '\n' and starting with `indent`; styled
    // cells get their SGR code with `color`. Trailing spaces are trimmed.
    std::string render(bool color = false, std::string_view indent = "") const;

private:
    std::vector<std::string> headings_;
    std::vector<Align> align_;
    std::vector<std::vector<Cell>> rows_;
};

// Characters in UTF-8 text (bytes that do not continue a sequence).
std::size_t display_width(std::string_view text);

}  // namespace avr_webhookd
