#pragma once

// Real NATS JetStream servers for integration tests: `nats-server -js` (Debian's nats-server) on
// loopback ports picked here, each with its store in a temporary folder, alone or as a 3-node
// cluster with routes on loopback; and a small JetStream client (libnats) that creates and reads
// streams through the server's own API ($JS.API.STREAM.CREATE.<name>, INFO, MSG.GET).

#include "process.hpp"

#include <boost/json/value.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace avr_webhookd::test {

// A loopback TCP port nothing listens on right now.
std::uint16_t free_tcp_port();

// One nats-server. Fails the test (throws) when the binary is missing: `make deps` installs it.
class NatsServer {
public:
    struct Options {
        std::string name = "n1";
        std::uint16_t port = 0;          // 0: a free one
        std::uint16_t cluster_port = 0;  // with routes: this node's route port
        std::vector<std::uint16_t> routes;
        std::string extra_config;  // appended to the config file (authorization, tls ...)
    };

    NatsServer(const TempDirectory& dir, Options options);
    NatsServer(const TempDirectory& dir) : NatsServer(dir, Options{}) {}
    ~NatsServer();

    // nats://127.0.0.1:PORT
    std::string url() const;
    std::uint16_t port() const { return options_.port; }
    const std::string& name() const { return options_.name; }
    bool running() const { return process_ != nullptr && process_->running(); }

    // Starts it (again, on the same port and store) and waits until it accepts clients.
    void start(std::chrono::milliseconds timeout = std::chrono::seconds(20));
    void kill();  // SIGKILL: no goodbye to the cluster, the store as the crash left it
    void stop();  // SIGTERM, waited for
    std::string log() const;

private:
    std::filesystem::path directory_;
    Options options_;
    std::filesystem::path config_;
    std::unique_ptr<Process> process_;
    unsigned starts_ = 0;
};

// Three nodes, routes on loopback, one JetStream cluster ("avr").
class NatsCluster {
public:
    explicit NatsCluster(const TempDirectory& dir, std::size_t size = 3);
    NatsServer& node(std::size_t index) { return *nodes_.at(index); }
    std::size_t size() const { return nodes_.size(); }
    // Every node's URL, comma-separated: the destination's url.
    std::string urls() const;

private:
    std::vector<std::unique_ptr<NatsServer>> nodes_;
};

// A message as the stream stores it.
struct StoredMessage {
    std::uint64_t sequence = 0;
    std::string subject;
    std::string data;
    std::map<std::string, std::string> headers;  // first value of each
};

// A JetStream client for the test's own checks, through libnats.
class JetStreamClient {
public:
    struct Tls {
        std::string ca_file, cert_file, key_file;  // empty: none
    };
    // Connects to `servers` (comma-separated URLs), retrying until `timeout`.
    explicit JetStreamClient(const std::string& servers, std::chrono::milliseconds timeout = std::chrono::seconds(20),
                             const Tls& tls = {});
    ~JetStreamClient();
    JetStreamClient(const JetStreamClient&) = delete;
    JetStreamClient& operator=(const JetStreamClient&) = delete;

    // A request to the JetStream API and its JSON reply (null on no reply within `timeout`).
    boost::json::value api(const std::string& subject, const std::string& body,
                           std::chrono::milliseconds timeout = std::chrono::seconds(5));
    // $JS.API.STREAM.CREATE.<name> with `config` (the name is added), retried while the cluster has
    // no JetStream leader yet; throws with the server's error after `timeout`.
    void create_stream(const std::string& name, boost::json::object config,
                       std::chrono::milliseconds timeout = std::chrono::seconds(30));
    // $JS.API.STREAM.INFO.<name>'s "state" (messages, first_seq, last_seq ...), retried while the
    // stream has no leader.
    boost::json::object stream_state(const std::string& name,
                                     std::chrono::milliseconds timeout = std::chrono::seconds(30));
    // Every message from first_seq to last_seq (deleted ones skipped).
    std::vector<StoredMessage> messages(const std::string& name,
                                        std::chrono::milliseconds timeout = std::chrono::seconds(60));

private:
    struct Handles;
    std::unique_ptr<Handles> handles_;
};

}  // namespace avr_webhookd::test
