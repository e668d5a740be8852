#include <avr_webhookd/delivery/header_list.hpp>

#include <charconv>
#include <stdexcept>

namespace avr_webhookd {

HeaderList::HeaderList(std::initializer_list<value_type> headers) {
    for (const auto& [name, value] : headers) add(name, value);
}

void HeaderList::add(std::string_view name, std::string_view value) {
    constexpr std::string_view separator = ": ", end_of_line = "\r\n";
    entries_.push_back({static_cast<std::uint32_t>(text_.size()), static_cast<std::uint32_t>(name.size()),
                        static_cast<std::uint32_t>(value.size())});
    text_.insert(text_.end(), name.begin(), name.end());
    text_.insert(text_.end(), separator.begin(), separator.end());
    text_.insert(text_.end(), value.begin(), value.end());
    text_.insert(text_.end(), end_of_line.begin(), end_of_line.end());
}

void HeaderList::add(std::string_view name, std::uint64_t value) {
    char digits[20];  // 2^64 - 1 has 20
    const auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
    add(name, std::string_view(digits, static_cast<std::size_t>(end - digits)));
}

HeaderList::value_type HeaderList::operator[](std::size_t index) const {
    const Entry& entry = entries_[index];
    const char* line = text_.data() + entry.at;
    return {{line, entry.name_size}, {line + entry.name_size + 2, entry.value_size}};
}

HeaderList::value_type HeaderList::at(std::size_t index) const {
    if (index >= entries_.size()) throw std::out_of_range("HeaderList::at");
    return (*this)[index];
}

}  // namespace avr_webhookd
