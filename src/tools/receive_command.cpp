#include <avr_webhookd/tools/receive_command.hpp>

#include <avr_webhookd/delivery/signature.hpp>
#include <avr_webhookd/tools/receiver.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/program_options.hpp>

#include <charconv>
#include <csignal>
#include <ostream>
#include <stdexcept>

namespace avr_webhookd {

namespace asio = boost::asio;
namespace po = boost::program_options;

namespace {

// The options as given, before they are checked and turned into ReceiverOptions.
struct GivenOptions {
    ReceiverOptions options;
    std::string signature_name = "plain";
    std::vector<std::string> status_for;
    long delay_ms = 0;
    std::string retry_after;
};

po::options_description describe_options(GivenOptions& given) {
    ReceiverOptions& options = given.options;
    po::options_description description("avr-webhookd receive: a local webhook receiver for testing deliveries");
    description.add_options()("help,h", "show this help")("listen",
                                                          po::value(&options.listen)->default_value(options.listen),
                                                          "HOST:PORT to listen on (port 0: any free port)")(
        "secret", po::value(&options.secret), "expected secret; requests failing the check get 401")(
        "signature", po::value(&given.signature_name)->default_value(given.signature_name),
        "how the secret is checked: plain, hmac-sha256 or standard")("tls-cert", po::value(&options.tls_cert),
                                                                     "serve HTTPS with this PEM certificate chain")(
        "tls-key", po::value(&options.tls_key), "PEM private key of --tls-cert")(
        "fail-first", po::value(&options.fail_first), "answer --fail-status to the first N requests")(
        "fail-status", po::value(&options.fail_status)->default_value(options.fail_status),
        "status used by --fail-first")("status-for", po::value(&given.status_for),
                                       "TYPE=STATUS: always answer STATUS for events of TYPE (repeatable)")(
        "delay-ms", po::value(&given.delay_ms), "wait this long before each response")(
        "drop-first", po::value(&options.drop_first), "close the connection without answering the first N requests")(
        "redirect-first", po::value(&options.redirect_first), "answer 302 to the first N requests")(
        "retry-after", po::value(&given.retry_after), "Retry-After header value on the failures chosen above")(
        "close", po::bool_switch(&options.close_after_response), "answer with Connection: close")(
        "sts-url", po::value(&options.sts_url),
        "answer call_initiated with {\"sts_url\":\"URL?uuid=<uuid>\"}, as AVR's sample receiver routes calls")(
        "quiet", po::bool_switch(&options.quiet), "don't print deliveries");
    return description;
}

// "TYPE=STATUS" of --status-for.
std::pair<std::string, int> parse_status_for(const std::string& text) {
    const std::size_t equals = text.find('=');
    int status = 0;
    const char* end = text.data() + text.size();
    if (equals == std::string::npos || equals == 0 || std::from_chars(text.data() + equals + 1, end, status).ptr != end)
        throw std::invalid_argument("--status-for expects TYPE=STATUS, got '" + text + "'");
    return {text.substr(0, equals), status};
}

void check_status(int status, std::string_view option) {
    if (status < 100 || status > 599)
        throw std::invalid_argument(std::string(option) + ": " + std::to_string(status) + " is not an HTTP status");
}

// Checks what was given and completes the options; throws std::invalid_argument.
ReceiverOptions checked_options(GivenOptions given) {
    ReceiverOptions options = std::move(given.options);
    const auto mode = parse_signature_mode(given.signature_name);
    if (!mode) throw std::invalid_argument("--signature must be plain, hmac-sha256 or standard");
    options.signature = *mode;
    if (auto error = Signer::validate(options.signature, options.secret)) throw std::invalid_argument(*error);
    check_status(options.fail_status, "--fail-status");
    for (const std::string& entry : given.status_for) {
        auto [type, status] = parse_status_for(entry);
        check_status(status, "--status-for");
        options.status_for_type[type] = status;
    }
    if (given.delay_ms < 0) throw std::invalid_argument("--delay-ms must not be negative");
    options.delay = std::chrono::milliseconds(given.delay_ms);
    if (!given.retry_after.empty()) options.retry_after = given.retry_after;
    options.max_recorded = 0;  // the command prints each request; nothing reads them back
    if (options.tls_cert.empty() != options.tls_key.empty())
        throw std::invalid_argument("--tls-cert and --tls-key go together");
    return options;
}

int serve(const ReceiverOptions& options, std::ostream& out) {
    asio::io_context io;
    Receiver receiver(io, options);
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&receiver](const boost::system::error_code& error, int) {
        if (!error) receiver.stop();
    });
    receiver.start();
    out << "listening on " << receiver.base_url() << std::endl;
    io.run();
    return exit_code::ok;
}

}  // namespace

int run_receive_command(CommandArguments args, const Environment&, std::ostream& out, std::ostream& err) {
    ReceiverOptions options;
    try {
        GivenOptions given;
        const auto description = describe_options(given);
        po::variables_map variables;
        po::store(
            po::command_line_parser(std::vector<std::string>(args.begin(), args.end())).options(description).run(),
            variables);
        po::notify(variables);
        if (variables.count("help")) {
            out << description << '\n';
            return exit_code::ok;
        }
        options = checked_options(std::move(given));
        options.out = &out;
    } catch (const std::exception& error) {
        err << "avr-webhookd receive: " << error.what() << '\n';
        return exit_code::trouble;
    }
    try {
        return serve(options, out);
    } catch (const std::exception& error) {
        err << "avr-webhookd receive: " << error.what() << '\n';
        return exit_code::failure;
    }
}

}  // namespace avr_webhookd
