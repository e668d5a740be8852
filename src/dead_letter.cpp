#include <avr_webhookd/dead_letter.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace avr_webhookd {

DeadLetterWriter::DeadLetterWriter(std::string path) : path_(std::move(path)) {
    if (path_.empty()) return;
    const std::filesystem::path file(path_);
    std::error_code ignored;
    if (file.has_parent_path()) std::filesystem::create_directories(file.parent_path(), ignored);
    fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd_ < 0)
        throw std::runtime_error("cannot open dead_letter file " + path_ + ": " + std::strerror(errno) +
                                 " (set dead_letter to a writable path, or to empty to turn it off)");
}

DeadLetterWriter::~DeadLetterWriter() {
    if (fd_ >= 0) ::close(fd_);
}

std::string DeadLetterWriter::append(std::string_view line) { return append_all({std::string(line)}); }

std::string DeadLetterWriter::append_all(const std::vector<std::string>& lines) {
    if (fd_ < 0) return "no dead-letter file is configured";
    std::string record;
    std::size_t size = 0;
    for (const auto& line : lines) size += line.size() + 1;
    record.reserve(size);
    for (const auto& line : lines) record.append(line).push_back('\n');
    std::string_view rest = record;
    while (!rest.empty()) {
        const auto written = ::write(fd_, rest.data(), rest.size());
        if (written < 0) {
            if (errno == EINTR) continue;
            return std::string("cannot write dead_letter file ") + path_ + ": " + std::strerror(errno);
        }
        rest.remove_prefix(static_cast<std::size_t>(written));
    }
    if (::fdatasync(fd_) != 0) return std::string("cannot sync dead_letter file ") + path_ + ": " + std::strerror(errno);
    return {};
}

}  // namespace avr_webhookd
