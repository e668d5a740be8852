#pragma once

#include <avr_webhookd/common/command.hpp>
#include <avr_webhookd/ops/admin_address.hpp>

#include <boost/beast/http/verb.hpp>
#include <boost/program_options/options_description.hpp>
#include <boost/program_options/variables_map.hpp>

#include <chrono>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>

namespace avr_webhookd {

// What one request to the admin endpoint came to.
struct AdminReply {
    bool reached = false;  // a whole response was read; otherwise see `error`
    std::string error;     // "Connection refused", "timed out after 2s", ...
    unsigned status = 0;
    std::string content_type;
    std::string allow;
    std::string body;  // empty for HEAD
};

// One HTTP/1.1 request (Connection: close) to the admin endpoint, all of it within `timeout`.
AdminReply query_admin(const AdminAddress& address, boost::beast::http::verb method, std::string_view target,
                       std::chrono::milliseconds timeout);

// --admin ADDR, --config FILE and --timeout DURATION (2s): the options of the tools that ask the
// admin endpoint (healthcheck, status).
void add_admin_query_options(boost::program_options::options_description& options);

// The admin endpoint's address for a tool: --admin in `vm`, else WEBHOOK_ADMIN, else the config
// file (--config, WEBHOOK_CONFIG or the default file). nullopt after saying why on `err` (admin
// off, invalid, unreadable config file), each message starting with `command`.
std::optional<AdminAddress> admin_address_setting(const boost::program_options::variables_map& vm,
                                                  const Environment& env, std::string_view command, std::ostream& err);

// `avr-webhookd healthcheck [--admin ADDR] [--config FILE] [--timeout 2s]`; `args` are the
// arguments after "healthcheck". Without --admin, the `admin` setting comes from WEBHOOK_ADMIN,
// else from the config file (--config, WEBHOOK_CONFIG or the default file), and nothing else of
// the configuration is needed. Sends GET /healthz and prints one line: "healthy", "unhealthy:
// <reason>" (to `out`) or why the endpoint could not be asked (to `err`). Returns exit_code::ok
// for a 200, else exit_code::failure (also for usage errors and when admin is off), as container
// health checks expect.
int run_healthcheck_command(CommandArguments args, const Environment& env, std::ostream& out, std::ostream& err);

}  // namespace avr_webhookd
