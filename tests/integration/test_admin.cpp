// The admin endpoint in-process (fake status and metrics), and `healthcheck` against it.

#include <avr_webhookd/ops/admin_server.hpp>
#include <avr_webhookd/tools/healthcheck.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

using namespace avr_webhookd;
using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace fs = std::filesystem;
using tcp = asio::ip::tcp;

namespace {

class AdminTempDir {
public:
    AdminTempDir() {
        std::string pattern = (fs::temp_directory_path() / "avr-webhookd-admin-XXXXXX").string();
        if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
        path_ = pattern;
    }
    ~AdminTempDir() {
        std::error_code ignored;
        fs::remove_all(path_, ignored);
    }
    AdminTempDir(const AdminTempDir&) = delete;
    AdminTempDir& operator=(const AdminTempDir&) = delete;
    std::string operator/(std::string_view name) const { return (path_ / name).string(); }

private:
    fs::path path_;
};

// An AdminServer with fake status and metrics, run by its own io thread.
class RunningAdmin {
public:
    explicit RunningAdmin(std::string listen, AdminLimits limits = {})
        : logger_(Logger::Options{LogLevel::error}),
          server_(
              io_, std::move(listen),
              [this] {
                  std::lock_guard lock(mutex_);
                  return status_;
              },
              [] { return std::string{"# TYPE avr_webhookd_up gauge\navr_webhookd_up 1\n"}; }, logger_, limits) {
        server_.start();
        thread_ = std::thread([this] { io_.run(); });
    }
    ~RunningAdmin() {
        on_io([this] {
            server_.stop();
            work_.reset();
        });
        thread_.join();
    }
    RunningAdmin(const RunningAdmin&) = delete;
    RunningAdmin& operator=(const RunningAdmin&) = delete;

    void set_status(AdminStatus status) {
        std::lock_guard lock(mutex_);
        status_ = std::move(status);
    }
    std::string address() const { return server_.local_address(); }
    AdminAddress parsed_address() const { return parse_admin_address(address()).value(); }
    std::size_t connections() {
        std::promise<std::size_t> count;
        on_io([&] { count.set_value(server_.connection_count()); });
        return count.get_future().get();
    }
    AdminCounters counters() {
        std::promise<AdminCounters> counters;
        on_io([&] { counters.set_value(server_.counters()); });
        return counters.get_future().get();
    }
    void stop() {
        std::promise<void> done;
        on_io([&] {
            server_.stop();
            done.set_value();
        });
        done.get_future().get();
    }

private:
    template <class Work>
    void on_io(Work work) {
        asio::post(io_, std::move(work));
    }

    asio::io_context io_;
    asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
    Logger logger_;
    std::mutex mutex_;
    AdminStatus status_{true, std::nullopt};
    AdminServer server_;
    std::thread thread_;
};

AdminReply get(const RunningAdmin& admin, std::string_view target, http::verb method = http::verb::get) {
    return query_admin(admin.parsed_address(), method, target, 5s);
}

tcp::socket connect_tcp(asio::io_context& io, const RunningAdmin& admin) {
    const auto address = admin.parsed_address();
    tcp::socket socket(io);
    socket.connect(
        tcp::endpoint(asio::ip::make_address(address.host), static_cast<unsigned short>(std::stoi(address.port))));
    return socket;
}

// True when the peer closes the connection (EOF or reset) within `within`.
bool closed_by_peer(tcp::socket& socket, std::chrono::milliseconds within) {
    timeval timeout{static_cast<time_t>(within.count() / 1000), static_cast<suseconds_t>(within.count() % 1000 * 1000)};
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    char byte;
    const auto got = ::recv(socket.native_handle(), &byte, 1, 0);
    return got == 0 || (got < 0 && errno == ECONNRESET);
}

struct HealthcheckRun {
    int status;
    std::string out;
    std::string err;
};

HealthcheckRun healthcheck(const std::vector<std::string>& args, const Environment& env = {}) {
    std::ostringstream out, err;
    Environment environment = env;
    // Never read /etc/avr-webhookd/avr-webhookd.conf of the machine running the tests.
    environment.emplace("WEBHOOK_CONFIG", "");
    const int status = run_healthcheck_command(args, environment, out, err);
    return {status, out.str(), err.str()};
}

bool wait_until_true(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!condition()) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(10ms);
    }
    return true;
}

// A port that nothing listens on (bound once, then released).
std::string free_port() {
    asio::io_context io;
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    return std::to_string(acceptor.local_endpoint().port());
}

}  // namespace

TEST_CASE("admin server: every route over TCP with the real port", "[admin][integration]") {
    RunningAdmin admin("127.0.0.1:0");
    CHECK(admin.address().starts_with("127.0.0.1:"));
    CHECK(admin.address() != "127.0.0.1:0");

    auto reply = get(admin, "/healthz");
    REQUIRE(reply.reached);
    CHECK(reply.status == 200);
    CHECK(reply.body == "ok\n");

    reply = get(admin, "/readyz");
    CHECK(reply.status == 200);

    reply = get(admin, "/metrics");
    CHECK(reply.status == 200);
    CHECK(reply.content_type == "text/plain; version=0.0.4; charset=utf-8");
    CHECK(reply.body.find("avr_webhookd_up 1\n") != std::string::npos);

    reply = get(admin, "/nothing");
    CHECK(reply.status == 404);

    reply = get(admin, "/healthz", http::verb::post);
    CHECK(reply.status == 405);
    CHECK(reply.allow == "GET, HEAD");

    admin.set_status({true, "delivery stuck: 12 events failing for 10m"});
    reply = get(admin, "/healthz");
    CHECK(reply.status == 503);
    CHECK(reply.body == "delivery stuck: 12 events failing for 10m\n");
    CHECK(get(admin, "/readyz").status == 200);

    admin.set_status({false, std::nullopt});
    CHECK(get(admin, "/healthz").status == 503);
    CHECK(get(admin, "/readyz").status == 503);
}

TEST_CASE("admin server: HEAD sends the length without a body, keep-alive serves several requests",
          "[admin][integration]") {
    RunningAdmin admin("127.0.0.1:0");
    asio::io_context io;
    auto socket = connect_tcp(io, admin);
    beast::flat_buffer buffer;

    http::request<http::empty_body> head{http::verb::head, "/metrics", 11};
    head.set(http::field::host, "localhost");
    http::write(socket, head);
    http::response_parser<http::string_body> head_parser;
    head_parser.skip(true);
    http::read(socket, buffer, head_parser);
    CHECK(head_parser.get().result_int() == 200);
    CHECK(head_parser.get()[http::field::content_length] == std::to_string(get(admin, "/metrics").body.size()));
    CHECK(head_parser.get().body().empty());
    CHECK(head_parser.get().keep_alive());

    for (int i = 0; i < 3; ++i) {
        http::request<http::empty_body> request{http::verb::get, "/healthz", 11};
        request.set(http::field::host, "localhost");
        http::write(socket, request);
        http::response<http::string_body> response;
        http::read(socket, buffer, response);
        CHECK(response.result_int() == 200);
        CHECK(response.body() == "ok\n");
        CHECK(response.keep_alive());
    }

    http::request<http::empty_body> last{http::verb::get, "/readyz", 11};
    last.set(http::field::host, "localhost");
    last.keep_alive(false);
    http::write(socket, last);
    http::response<http::string_body> response;
    http::read(socket, buffer, response);
    CHECK(response.result_int() == 200);
    CHECK_FALSE(response.keep_alive());
    CHECK(closed_by_peer(socket, 5s));
}

TEST_CASE("admin server: oversized requests, idle connections and too many connections are closed",
          "[admin][integration]") {
    AdminLimits limits;
    limits.request_deadline = 300ms;
    limits.max_connections = 2;
    RunningAdmin admin("127.0.0.1:0", limits);
    asio::io_context io;

    SECTION("a request larger than the cap") {
        auto socket = connect_tcp(io, admin);
        const std::string huge =
            "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: " + std::string(64 * 1024, 'a') + "\r\n\r\n";
        boost::system::error_code ignored;
        asio::write(socket, asio::buffer(huge), ignored);
        beast::flat_buffer buffer;
        http::response<http::string_body> response;
        http::read(socket, buffer, response, ignored);
        CHECK(response.result_int() == 431);  // answered, then closed
        CHECK(closed_by_peer(socket, 5s));
        CHECK(admin.counters().requests_refused == 1);
    }
    SECTION("an idle connection after the read deadline") {
        auto socket = connect_tcp(io, admin);
        const auto start = std::chrono::steady_clock::now();
        CHECK(closed_by_peer(socket, 5s));
        CHECK(std::chrono::steady_clock::now() - start >= 250ms);
    }
    SECTION("a connection over max_connections evicts the oldest one waiting for a request") {
        auto first = connect_tcp(io, admin);
        auto second = connect_tcp(io, admin);
        const auto deadline = std::chrono::steady_clock::now() + 5s;
        while (admin.connections() < 2 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
        REQUIRE(admin.connections() == 2);
        auto third = connect_tcp(io, admin);
        CHECK(closed_by_peer(first, 200ms));  // closed at once for the newcomer, long before the deadline
        CHECK(admin.counters().connections_evicted == 1);
        const std::string request = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
        asio::write(third, asio::buffer(request));
        beast::flat_buffer buffer;
        http::response<http::string_body> response;
        http::read(third, buffer, response);
        CHECK(response.result_int() == 200);
        CHECK(get(admin, "/healthz").status == 200);  // evicts `second`, never the new one
        CHECK(admin.counters().connections_evicted == 2);
        CHECK(admin.counters().connections_refused == 0);
    }
}

TEST_CASE("admin server: Unix socket mode, stale sockets replaced, live ones and other files refused",
          "[admin][integration]") {
    AdminTempDir dir;
    const auto path = dir / "run/admin.sock";  // the folder is created

    {
        RunningAdmin admin(path);
        CHECK(admin.address() == path);
        CHECK(fs::is_socket(path));
        CHECK((fs::status(path).permissions() & fs::perms::others_all) == fs::perms::none);
        const auto reply = get(admin, "/healthz");
        REQUIRE(reply.reached);
        CHECK(reply.status == 200);
        CHECK(get(admin, "/metrics").body.find("avr_webhookd_up 1") != std::string::npos);

        asio::io_context io;
        Logger quiet(Logger::Options{LogLevel::error});
        AdminServer second(
            io, path, [] { return AdminStatus{}; }, [] { return std::string{}; }, quiet);
        CHECK_THROWS_WITH(second.start(), Catch::Contains("already listening") && Catch::Contains(path));
        admin.stop();
        CHECK_FALSE(fs::exists(path));
    }

    // A socket file left behind by a crash: nobody listens on it.
    {
        const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::strcpy(address.sun_path, path.c_str());
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
        ::close(fd);
        REQUIRE(fs::is_socket(path));
    }
    {
        RunningAdmin admin(path);
        CHECK(get(admin, "/readyz").status == 200);
    }
    CHECK_FALSE(fs::exists(path));

    std::ofstream(path) << "not a socket";
    asio::io_context io;
    Logger quiet(Logger::Options{LogLevel::error});
    AdminServer server(
        io, path, [] { return AdminStatus{}; }, [] { return std::string{}; }, quiet);
    CHECK_THROWS_WITH(server.start(), Catch::Contains("is not a socket"));
    CHECK(fs::is_regular_file(path));
}

TEST_CASE("admin server: start fails clearly on a bad or busy address", "[admin][integration]") {
    asio::io_context io;
    Logger quiet(Logger::Options{LogLevel::error});
    auto status = [] { return AdminStatus{}; };
    auto metrics = [] { return std::string{}; };

    AdminServer invalid(io, "not-an-address", status, metrics, quiet);
    CHECK_THROWS_WITH(invalid.start(), Catch::Contains("invalid admin address \"not-an-address\""));

    tcp::acceptor busy(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    const auto address = "127.0.0.1:" + std::to_string(busy.local_endpoint().port());
    AdminServer taken(io, address, status, metrics, quiet);
    CHECK_THROWS_WITH(taken.start(),
                      Catch::Contains("cannot listen on admin address " + address) && Catch::Contains("in use"));
}

TEST_CASE("healthcheck: 0 when healthy, 1 when unhealthy, unreachable or off", "[healthcheck][integration]") {
    RunningAdmin admin("127.0.0.1:0");

    auto run = healthcheck({"--admin", admin.address()});
    CHECK(run.status == 0);
    CHECK(run.out == "healthy\n");

    admin.set_status({true, "delivery stuck: receiver down"});
    run = healthcheck({"--admin=" + admin.address(), "--timeout", "3s"});
    CHECK(run.status == 1);
    CHECK(run.out == "unhealthy: delivery stuck: receiver down\n");

    admin.set_status({false, std::nullopt});
    run = healthcheck({}, {{"WEBHOOK_ADMIN", admin.address()}});
    CHECK(run.status == 1);
    CHECK(run.out == "unhealthy: not accepting events\n");

    const auto nowhere = "127.0.0.1:" + free_port();
    run = healthcheck({"--admin", nowhere});
    CHECK(run.status == 1);
    CHECK(run.err.find("cannot reach the admin endpoint at " + nowhere) != std::string::npos);
    CHECK(run.err.find("refused") != std::string::npos);

    run = healthcheck({});
    CHECK(run.status == 1);
    CHECK(run.err == "admin endpoint is off (set admin)\n");

    run = healthcheck({"--timeout", "soon", "--admin", admin.address()});
    CHECK(run.status == 1);
    CHECK(run.err.find("--timeout") != std::string::npos);

    run = healthcheck({"--admin", "127.0.0.1"});
    CHECK(run.status == 1);
    CHECK(run.err.find("invalid setting admin (--admin)") != std::string::npos);

    run = healthcheck({"--bogus"});
    CHECK(run.status == 1);
    CHECK(run.err.find("usage:") != std::string::npos);
}

TEST_CASE("healthcheck: admin from a config file without url, and over a Unix socket", "[healthcheck][integration]") {
    AdminTempDir dir;
    const auto socket_path = dir / "admin.sock";
    RunningAdmin admin(socket_path);
    const auto config = dir / "avr-webhookd.conf";
    std::ofstream(config) << "# no url here: healthcheck needs only admin\nadmin = " << socket_path << "\n";

    auto run = healthcheck({"--config", config});
    CHECK(run.status == 0);
    CHECK(run.out == "healthy\n");

    run = healthcheck({}, {{"WEBHOOK_CONFIG", config}});
    CHECK(run.status == 0);

    admin.stop();
    run = healthcheck({"--config", config});
    CHECK(run.status == 1);
    CHECK(run.err.find("cannot reach the admin endpoint at " + socket_path) != std::string::npos);
}

TEST_CASE("healthcheck: a server that never answers times out", "[healthcheck][integration]") {
    asio::io_context io;
    tcp::acceptor silent(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));  // listens, never accepts
    const auto address = "127.0.0.1:" + std::to_string(silent.local_endpoint().port());
    const auto start = std::chrono::steady_clock::now();
    const auto run = healthcheck({"--admin", address, "--timeout", "300ms"});
    const auto elapsed = std::chrono::steady_clock::now() - start;
    CHECK(run.status == 1);
    CHECK(run.err.find("timed out after 300ms") != std::string::npos);
    CHECK(elapsed < 3s);
}

TEST_CASE("admin server: more partial requests than max_connections cannot keep healthcheck out",
          "[admin][integration][limits]") {
    RunningAdmin admin("127.0.0.1:0");  // the daemon's limits: 16 connections, 5 s per request
    asio::io_context io;
    std::vector<tcp::socket> slow;
    for (std::size_t i = 0; i < AdminLimits{}.max_connections + 4; ++i) {
        slow.push_back(connect_tcp(io, admin));
        asio::write(slow.back(), asio::buffer(std::string_view("GET /healthz HTTP/1.1\r\nHost: x\r\n")));
    }
    REQUIRE(wait_until_true([&] { return admin.counters().connections_evicted >= 4; }, 5s));
    const auto start = std::chrono::steady_clock::now();
    const auto run = healthcheck({"--admin", admin.address(), "--timeout", "3s"});
    CHECK(run.status == 0);
    CHECK(run.out == "healthy\n");
    CHECK(std::chrono::steady_clock::now() - start < 3s);
    CHECK(admin.connections() <= AdminLimits{}.max_connections);
}

TEST_CASE("admin server: a request head that trickles in past the request deadline is closed",
          "[admin][integration][limits]") {
    AdminLimits limits;
    limits.request_deadline = 500ms;
    RunningAdmin admin("127.0.0.1:0", limits);
    asio::io_context io;
    auto socket = connect_tcp(io, admin);
    const std::string head = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + std::string(200, 'a');
    const auto start = std::chrono::steady_clock::now();
    bool closed = false;
    for (std::size_t i = 0; i < head.size() && !closed; ++i) {  // one byte per 50 ms, never finishing
        closed = ::send(socket.native_handle(), &head[i], 1, MSG_NOSIGNAL) < 0;
        if (!closed) std::this_thread::sleep_for(50ms);  // the pace of the attack, not a wait for a result
    }
    const auto elapsed = std::chrono::steady_clock::now() - start;
    CHECK(closed);
    CHECK(elapsed >= 450ms);
    CHECK(elapsed < 3s);
    CHECK(admin.counters().requests_timed_out == 1);
}

// Issue 18: the admin endpoint reads requests with the HTTP intake's reader and its bounds.
TEST_CASE(
    "admin server: endless chunk extensions and trailers, header fields by the thousand and smuggling are "
    "answered and closed",
    "[admin][integration][limits]") {
    RunningAdmin admin("127.0.0.1:0");
    asio::io_context io;
    std::string fields;
    for (int i = 0; i < 3900; ++i) fields += "a:\r\n";
    const std::string chunked = "GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    const std::string hidden = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    const std::vector<std::pair<std::string, unsigned>> attacks{
        {chunked + "5;ext=" + std::string(64 * 1024, 'a'), 413},
        {chunked + "5\r\nhello\r\n0\r\nX-T: " + std::string(64 * 1024, 'a'), 413},
        {"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields + "\r\n", 431},
        {"GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n" + hidden, 400},
        {"GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n" + hidden, 400},
        {"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
        {"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400},
        {"GET /healthz HTTP/1.1\r\n\r\n", 400},
    };
    for (const auto& [attack, status] : attacks) {
        INFO(attack.substr(0, 120));
        auto socket = connect_tcp(io, admin);
        boost::system::error_code ignored;
        asio::write(socket, asio::buffer(attack), ignored);
        beast::flat_buffer buffer;
        http::response<http::string_body> response;
        http::read(socket, buffer, response, ignored);
        CHECK(response.result_int() == status);
        CHECK_FALSE(response.keep_alive());
        socket.shutdown(tcp::socket::shutdown_send, ignored);  // the server's linger ends at once
        CHECK(closed_by_peer(socket, 5s));
    }
    CHECK(admin.counters().requests_refused == attacks.size());
    CHECK(get(admin, "/healthz").status == 200);  // and it still answers
}
