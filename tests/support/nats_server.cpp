#include "nats_server.hpp"

#include <nats/nats.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <thread>

namespace avr_webhookd::test {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::uint16_t free_tcp_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error("socket() failed");
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof address;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) != 0) {
        ::close(fd);
        throw std::runtime_error("could not bind a loopback port");
    }
    ::close(fd);
    return ntohs(address.sin_port);
}

namespace {

bool accepts_tcp(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool connected = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    ::close(fd);
    return connected;
}

std::string route_url(std::uint16_t port) { return "nats-route://127.0.0.1:" + std::to_string(port); }

}  // namespace

NatsServer::NatsServer(const TempDirectory& dir, Options options)
    : directory_(dir / options.name), options_(std::move(options)), config_(directory_ / "nats.conf") {
    if (!program_available("nats-server"))
        throw std::runtime_error("nats-server is not installed (make deps installs Debian's nats-server)");
    if (options_.port == 0) options_.port = free_tcp_port();
    std::filesystem::create_directories(directory_ / "store");
    std::ofstream config(config_);
    config << "server_name: " << options_.name << "\n"
           << "listen: 127.0.0.1:" << options_.port << "\n"
           << "jetstream { store_dir: \"" << (directory_ / "store").string() << "\" }\n";
    if (options_.cluster_port != 0) {
        config << "cluster {\n  name: avr\n  listen: 127.0.0.1:" << options_.cluster_port << "\n  routes: [";
        for (std::size_t i = 0; i < options_.routes.size(); ++i)
            config << (i ? ", " : "") << route_url(options_.routes[i]);
        config << "]\n}\n";
    }
    config << options_.extra_config << "\n";
    if (!config) throw std::runtime_error("could not write " + config_.string());
}

NatsServer::~NatsServer() {
    if (process_) process_->kill();
}

std::string NatsServer::url() const { return "nats://127.0.0.1:" + std::to_string(options_.port); }

void NatsServer::start(std::chrono::milliseconds timeout) {
    if (running()) return;
    Process::Options options;
    options.arguments = {"nats-server", "-c", config_.string()};
    options.output_directory = directory_;
    options.name = "nats-server-" + std::to_string(++starts_);
    process_ = std::make_unique<Process>(std::move(options));
    if (!wait_until([&] { return !process_->running() || accepts_tcp(options_.port); }, timeout) ||
        !process_->running())
        throw std::runtime_error("nats-server " + options_.name + " did not start: " + log());
}

void NatsServer::kill() {
    if (process_) process_->kill();
}

void NatsServer::stop() {
    if (!process_ || !process_->running()) return;
    process_->send_signal(SIGTERM);
    if (!process_->wait(20s)) process_->kill();
}

std::string NatsServer::log() const { return process_ ? process_->output_for_diagnosis() : std::string(); }

NatsCluster::NatsCluster(const TempDirectory& dir, std::size_t size) {
    std::vector<std::uint16_t> route_ports;
    for (std::size_t i = 0; i < size; ++i) route_ports.push_back(free_tcp_port());
    for (std::size_t i = 0; i < size; ++i) {
        NatsServer::Options options;
        options.name = "n" + std::to_string(i + 1);
        options.cluster_port = route_ports[i];
        for (std::size_t j = 0; j < size; ++j)
            if (j != i) options.routes.push_back(route_ports[j]);
        nodes_.push_back(std::make_unique<NatsServer>(dir, std::move(options)));
    }
    for (auto& node : nodes_) node->start();
}

std::string NatsCluster::urls() const {
    std::string urls;
    for (const auto& node : nodes_) urls += (urls.empty() ? "" : ",") + node->url();
    return urls;
}

struct JetStreamClient::Handles {
    natsConnection* connection = nullptr;
    jsCtx* js = nullptr;
    ~Handles() {
        jsCtx_Destroy(js);
        natsConnection_Destroy(connection);
    }
};

JetStreamClient::JetStreamClient(const std::string& servers, std::chrono::milliseconds timeout, const Tls& tls)
    : handles_(std::make_unique<Handles>()) {
    natsOptions* options = nullptr;
    if (natsOptions_Create(&options) != NATS_OK) throw std::runtime_error("natsOptions_Create failed");
    std::vector<std::string> list;
    for (std::size_t begin = 0; begin <= servers.size();) {
        const auto comma = std::min(servers.find(',', begin), servers.size());
        list.push_back(servers.substr(begin, comma - begin));
        begin = comma + 1;
    }
    std::vector<const char*> pointers;
    for (const auto& server : list) pointers.push_back(server.c_str());
    natsOptions_SetServers(options, pointers.data(), static_cast<int>(pointers.size()));
    if (!tls.ca_file.empty()) natsOptions_LoadCATrustedCertificates(options, tls.ca_file.c_str());
    if (!tls.cert_file.empty()) natsOptions_LoadCertificatesChain(options, tls.cert_file.c_str(), tls.key_file.c_str());
    natsOptions_SetMaxReconnect(options, -1);
    natsOptions_SetReconnectWait(options, 100);
    natsOptions_SetTimeout(options, 1000);
    const auto deadline = Clock::now() + timeout;
    natsStatus status = NATS_ERR;
    while (Clock::now() < deadline) {
        status = natsConnection_Connect(&handles_->connection, options);
        if (status == NATS_OK) break;
        std::this_thread::sleep_for(100ms);
    }
    natsOptions_Destroy(options);
    if (status != NATS_OK) throw std::runtime_error("test client: cannot connect to " + servers);
    if (natsConnection_JetStream(&handles_->js, handles_->connection, nullptr) != NATS_OK)
        throw std::runtime_error("test client: no JetStream context");
}

JetStreamClient::~JetStreamClient() = default;

boost::json::value JetStreamClient::api(const std::string& subject, const std::string& body,
                                        std::chrono::milliseconds timeout) {
    natsMsg* reply = nullptr;
    if (natsConnection_RequestString(&reply, handles_->connection, subject.c_str(), body.c_str(), timeout.count()) !=
        NATS_OK)
        return nullptr;
    const std::string text(natsMsg_GetData(reply), static_cast<std::size_t>(natsMsg_GetDataLength(reply)));
    natsMsg_Destroy(reply);
    boost::system::error_code ec;
    auto value = boost::json::parse(text, ec);
    return ec ? boost::json::value(nullptr) : value;
}

void JetStreamClient::create_stream(const std::string& name, boost::json::object config,
                                    std::chrono::milliseconds timeout) {
    config["name"] = name;
    const auto body = boost::json::serialize(config);
    const auto deadline = Clock::now() + timeout;
    std::string last = "no reply";
    while (Clock::now() < deadline) {
        const auto reply = api("$JS.API.STREAM.CREATE." + name, body);
        if (reply.is_object() && !reply.as_object().contains("error")) return;
        if (reply.is_object()) last = boost::json::serialize(reply);
        std::this_thread::sleep_for(200ms);  // no meta leader yet: the cluster is still forming
    }
    throw std::runtime_error("cannot create stream " + name + ": " + last);
}

boost::json::object JetStreamClient::stream_state(const std::string& name, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    std::string last = "no reply";
    while (Clock::now() < deadline) {
        const auto reply = api("$JS.API.STREAM.INFO." + name, "");
        if (reply.is_object() && reply.as_object().contains("state")) return reply.at("state").as_object();
        if (reply.is_object()) last = boost::json::serialize(reply);
        std::this_thread::sleep_for(200ms);  // a stream between leaders
    }
    throw std::runtime_error("no state of stream " + name + ": " + last);
}

std::vector<StoredMessage> JetStreamClient::messages(const std::string& name, std::chrono::milliseconds timeout) {
    const auto state = stream_state(name, timeout);
    const auto first = state.at("first_seq").to_number<std::uint64_t>();
    const auto last = state.at("last_seq").to_number<std::uint64_t>();
    std::vector<StoredMessage> found;
    const auto deadline = Clock::now() + timeout;
    for (auto sequence = first; sequence <= last && last != 0;) {
        natsMsg* message = nullptr;
        jsErrCode code{};
        const auto status = js_GetMsg(&message, handles_->js, name.c_str(), sequence, nullptr, &code);
        if (status == NATS_OK) {
            StoredMessage stored;
            stored.sequence = sequence;
            stored.subject = natsMsg_GetSubject(message);
            stored.data.assign(natsMsg_GetData(message), static_cast<std::size_t>(natsMsg_GetDataLength(message)));
            const char** keys = nullptr;
            int count = 0;
            if (natsMsgHeader_Keys(message, &keys, &count) == NATS_OK) {
                for (int i = 0; i < count; ++i) {
                    const char* value = nullptr;
                    if (natsMsgHeader_Get(message, keys[i], &value) == NATS_OK) stored.headers[keys[i]] = value;
                }
                free(static_cast<void*>(keys));
            }
            natsMsg_Destroy(message);
            found.push_back(std::move(stored));
            ++sequence;
        } else if (code == JSNoMessageFoundErr) {
            ++sequence;  // deleted
        } else if (Clock::now() > deadline) {
            throw std::runtime_error("cannot read message " + std::to_string(sequence) + " of stream " + name);
        } else {
            std::this_thread::sleep_for(100ms);
        }
    }
    return found;
}

}  // namespace avr_webhookd::test
