#pragma once

#include <boost/json/fwd.hpp>

#include <string>
#include <string_view>

namespace avr_webhookd {

// Serializes JSON exactly as JavaScript's JSON.stringify prints the value JSON.parse would make
// of it: compact, keys in insertion order, numbers in JavaScript's shortest form (1 not 1.0,
// 1e+21 not 1E21), only the escapes JSON.stringify uses. Receivers that HMAC
// JSON.stringify(req.body) then see the very bytes that were signed.
void append_js_json(std::string& out, const boost::json::value& value);
void append_js_json(std::string& out, const boost::json::object& object);
void append_js_string(std::string& out, std::string_view text);
void append_js_number(std::string& out, double number);

}  // namespace avr_webhookd
