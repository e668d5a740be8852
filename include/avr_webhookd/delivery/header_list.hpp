#pragma once

#include <boost/container/small_vector.hpp>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <string_view>
#include <utility>

namespace avr_webhookd {

// Extra request headers, name and value, in the order they are sent. They are kept as they go on
// the wire, "Name: value\r\n" one after the other (wire()), so that the HTTP client copies them
// into the request head at once; the few short headers of a delivery attempt fit inside the object,
// so building them costs no heap allocation per event. Names and values are copied in: a list never
// refers to text that a reload may free while its attempt runs. Values must be header-safe (no CR,
// LF): callers pass validated text or text they made.
class HeaderList {
public:
    using value_type = std::pair<std::string_view, std::string_view>;  // name, value

    HeaderList() = default;
    HeaderList(std::initializer_list<value_type> headers);

    void add(std::string_view name, std::string_view value);
    void add(std::string_view name, std::uint64_t value);  // in decimal

    std::size_t size() const { return entries_.size(); }
    bool empty() const { return entries_.empty(); }
    value_type operator[](std::size_t index) const;
    value_type at(std::size_t index) const;  // throws std::out_of_range
    std::string_view wire() const { return {text_.data(), text_.size()}; }

    class const_iterator {
    public:
        using iterator_category = std::forward_iterator_tag;
        using value_type = HeaderList::value_type;
        using difference_type = std::ptrdiff_t;
        using pointer = void;
        using reference = value_type;

        const_iterator() = default;
        value_type operator*() const { return (*list_)[index_]; }
        const_iterator& operator++() {
            ++index_;
            return *this;
        }
        const_iterator operator++(int) {
            auto before = *this;
            ++index_;
            return before;
        }
        bool operator==(const const_iterator&) const = default;

    private:
        friend class HeaderList;
        const_iterator(const HeaderList* list, std::size_t index) : list_(list), index_(index) {}
        const HeaderList* list_ = nullptr;
        std::size_t index_ = 0;
    };
    const_iterator begin() const { return {this, 0}; }
    const_iterator end() const { return {this, size()}; }

private:
    struct Entry {
        std::uint32_t at = 0;  // where the line starts in text_: name, ": ", value, "\r\n"
        std::uint32_t name_size = 0;
        std::uint32_t value_size = 0;
    };
    // Room inside the object for what an attempt sends: id, sequence, attempt, agent id and the
    // signature headers of standard mode with one key take about 300 bytes.
    boost::container::small_vector<char, 384> text_;
    boost::container::small_vector<Entry, 8> entries_;
};

}  // namespace avr_webhookd
