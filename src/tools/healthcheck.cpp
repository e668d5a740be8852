#include <avr_webhookd/tools/healthcheck.hpp>

#include <avr_webhookd/common/duration.hpp>
#include <avr_webhookd/config/command_line.hpp>
#include <avr_webhookd/config/config.hpp>
#include <avr_webhookd/common/text.hpp>
#include <avr_webhookd/ops/logger.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/program_options/options_description.hpp>
#include <boost/program_options/parsers.hpp>
#include <boost/program_options/variables_map.hpp>

#include <ostream>
#include <optional>

namespace avr_webhookd {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace po = boost::program_options;
using asio::as_tuple;
using asio::awaitable;
using asio::use_awaitable;
using tcp = asio::ip::tcp;
using stream_protocol = asio::local::stream_protocol;

namespace {

constexpr std::size_t max_admin_body = 16 * 1024 * 1024;

struct Query {
    http::verb method;
    std::string target;
    std::string host;  // for the Host header
    asio::steady_timer::time_point deadline;
    std::chrono::milliseconds timeout;
};

std::string failure(const beast::error_code& ec, const Query& query) {
    if (ec == beast::error::timeout) return "timed out after " + format_duration(query.timeout);
    return ec.message();
}

template <class Protocol>
awaitable<void> exchange(beast::basic_stream<Protocol>& stream, const Query& query, AdminReply& reply) {
    http::request<http::empty_body> request{query.method, query.target, 11};
    request.set(http::field::host, query.host);
    request.set(http::field::user_agent, "avr-webhookd healthcheck");
    request.keep_alive(false);
    auto [write_error, written] = co_await http::async_write(stream, request, as_tuple(use_awaitable));
    if (write_error) {
        reply.error = "sending the request failed: " + failure(write_error, query);
        co_return;
    }
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(max_admin_body);
    parser.skip(query.method == http::verb::head);
    auto [read_error, read] = co_await http::async_read(stream, buffer, parser, as_tuple(use_awaitable));
    if (read_error) {
        reply.error = "reading the response failed: " + failure(read_error, query);
        co_return;
    }
    const auto& response = parser.get();
    reply.reached = true;
    reply.status = response.result_int();
    reply.content_type = std::string{response[http::field::content_type]};
    reply.allow = std::string{response[http::field::allow]};
    reply.body = response.body();
}

awaitable<void> run_query(AdminAddress address, Query query, AdminReply& reply) {
    const auto executor = co_await asio::this_coro::executor;
    if (address.is_unix()) {
        beast::basic_stream<stream_protocol> stream(executor);
        stream.expires_at(query.deadline);
        auto [ec] =
            co_await stream.async_connect(stream_protocol::endpoint(address.unix_path), as_tuple(use_awaitable));
        if (ec) {
            reply.error = failure(ec, query);
            co_return;
        }
        co_await exchange(stream, query, reply);
        co_return;
    }
    tcp::resolver resolver(executor);
    auto [resolve_error, endpoints] =
        co_await resolver.async_resolve(address.host, address.port, as_tuple(use_awaitable));
    if (resolve_error) {
        reply.error = "cannot resolve " + address.host + ": " + resolve_error.message();
        co_return;
    }
    beast::tcp_stream stream(executor);
    stream.expires_at(query.deadline);
    auto [ec, endpoint] = co_await stream.async_connect(endpoints, as_tuple(use_awaitable));
    if (ec) {
        reply.error = failure(ec, query);
        co_return;
    }
    co_await exchange(stream, query, reply);
}

void print_usage(std::ostream& out, const po::options_description& options) {
    out << "usage: avr-webhookd healthcheck [--admin ADDR] [--config FILE] [--timeout 2s]\n"
           "Asks the admin endpoint's /healthz; exits 0 when healthy, else 1.\n"
        << options;
}

}  // namespace

AdminReply query_admin(const AdminAddress& address, http::verb method, std::string_view target,
                       std::chrono::milliseconds timeout) {
    AdminReply reply;
    asio::io_context io;
    const auto deadline = asio::steady_timer::clock_type::now() + timeout;
    const auto host = address.is_unix() ? std::string{"localhost"} : to_string(address);
    asio::co_spawn(io, run_query(address, Query{method, std::string{target}, host, deadline, timeout}, reply),
                   asio::detached);
    // The stream's deadline covers connect, write and read; this also bounds name resolution.
    io.run_until(deadline + std::chrono::milliseconds(100));
    if (!reply.reached && reply.error.empty()) reply.error = "timed out after " + format_duration(timeout);
    return reply;
}

void add_admin_query_options(po::options_description& options) {
    options.add_options()("admin", po::value<std::string>()->value_name("ADDR"),
                          "admin address (default: the `admin` setting)")(
        "config", po::value<std::string>()->value_name("FILE"), "config file to read `admin` from")(
        "timeout", po::value<std::string>()->value_name("DURATION")->default_value("2s"),
        "give up a request after this long");
}

std::optional<AdminAddress> admin_address_setting(const boost::program_options::variables_map& vm,
                                                  const Environment& env, std::string_view command, std::ostream& err) {
    std::string admin;
    try {
        // --admin, else WEBHOOK_ADMIN, else the config file; validated like the daemon does.
        admin = find_setting_text(config_sources(vm, env), "admin").value_or("");
    } catch (const ConfigError& error) {
        err << command << ": " << error.what() << "\n";
        return std::nullopt;
    }
    if (admin.empty()) {
        err << "admin endpoint is off (set admin)\n";
        return std::nullopt;
    }
    std::string address_error;
    auto address = parse_admin_address(admin, &address_error);
    if (!address) err << command << ": invalid admin address \"" << admin << "\": " << address_error << "\n";
    return address;
}

int run_healthcheck_command(CommandArguments args, const Environment& env, std::ostream& out, std::ostream& err) {
    po::options_description options("options");
    add_admin_query_options(options);
    options.add_options()("help,h", "show this help");
    po::variables_map vm;
    try {
        po::store(po::command_line_parser(std::vector<std::string>(args.begin(), args.end())).options(options).run(),
                  vm);
    } catch (const po::error& error) {
        err << "healthcheck: " << error.what() << "\n";
        print_usage(err, options);
        return exit_code::failure;
    }
    if (vm.count("help")) {
        print_usage(out, options);
        return exit_code::ok;
    }

    const auto timeout = parse_duration(vm["timeout"].as<std::string>());
    if (!timeout || timeout->count() == 0) {
        err << "healthcheck: invalid --timeout: expected " << duration_syntax << ", more than zero\n";
        return exit_code::failure;
    }

    const auto address = admin_address_setting(vm, env, "healthcheck", err);
    if (!address) return exit_code::failure;

    const AdminReply reply = query_admin(*address, http::verb::get, "/healthz", *timeout);
    if (!reply.reached) {
        err << "cannot reach the admin endpoint at " << to_string(*address) << ": " << reply.error << "\n";
        return exit_code::failure;
    }
    if (reply.status == 200) {
        out << "healthy\n";
        return exit_code::ok;
    }
    const auto reason = Logger::sanitize(without_trailing_newlines(reply.body), 500);
    out << "unhealthy: " << (reply.status == 503 ? std::string{} : "HTTP " + std::to_string(reply.status) + " ")
        << (reason.empty() ? "no reason given" : reason) << "\n";
    return exit_code::failure;
}

}  // namespace avr_webhookd
