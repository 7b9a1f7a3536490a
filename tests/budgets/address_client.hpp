// A blocking HTTP/1.1 client whose connections come from a chosen loopback
// address (127.0.0.2, ...: all of 127/8 is loopback on Linux), so that a test
// can be two clients, a hostile one and an innocent one, as the per-address
// budgets see them. Every read has a bounded deadline (SO_RCVTIMEO).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>

namespace sluice::test {

struct simple_response {
  int status = 0;                              // 0: the connection ended without a response
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;                            // Content-Length bodies only
};

class address_connection {
 public:
  address_connection(std::uint16_t port, const char* source, int timeout_ms = 10'000) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) throw std::runtime_error("socket failed");
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in from{};
    from.sin_family = AF_INET;
    ::inet_pton(AF_INET, source, &from.sin_addr);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0)
      throw std::runtime_error(std::string("bind to ") + source + " failed");
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    ::inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0)
      throw std::runtime_error("connect failed");
  }
  ~address_connection() { close(); }
  address_connection(const address_connection&) = delete;
  address_connection& operator=(const address_connection&) = delete;

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  void send(const std::string& method, const std::string& target, const std::string& body = "",
            const std::string& extra_headers = "") {
    std::string raw = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra_headers;
    if (!body.empty() || method == "POST")
      raw += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
             "\r\n";
    raw += "\r\n" + body;
    std::size_t off = 0;
    while (off < raw.size()) {
      ssize_t n = ::send(fd_, raw.data() + off, raw.size() - off, MSG_NOSIGNAL);
      if (n <= 0) throw std::runtime_error("send failed");
      off += static_cast<std::size_t>(n);
    }
  }

  // Reads a response head and, when it has a Content-Length, its body (an
  // SSE response's body is left unread).
  simple_response read_response() {
    simple_response r;
    std::size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos)
      if (!fill()) return r;
    std::string head = buf_.substr(0, end);
    buf_.erase(0, end + 4);
    auto line_end = head.find("\r\n");
    std::string status_line = head.substr(0, line_end);
    if (status_line.size() >= 12) r.status = std::stoi(status_line.substr(9, 3));
    std::size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
    while (pos < head.size()) {
      auto e = head.find("\r\n", pos);
      if (e == std::string::npos) e = head.size();
      std::string l = head.substr(pos, e - pos);
      auto colon = l.find(':');
      if (colon != std::string::npos) {
        std::string name = l.substr(0, colon);
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        std::string value = l.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.erase(0, 1);
        r.headers[name] = value;
      }
      pos = e + 2;
    }
    if (auto it = r.headers.find("content-length"); it != r.headers.end()) {
      const std::size_t len = std::stoul(it->second);
      while (buf_.size() < len)
        if (!fill()) break;
      r.body = buf_.substr(0, len);
      buf_.erase(0, std::min(len, buf_.size()));
    }
    return r;
  }

  simple_response request(const std::string& method, const std::string& target,
                          const std::string& body = "") {
    send(method, target, body);
    return read_response();
  }

 private:
  bool fill() {
    char tmp[4096];
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<std::size_t>(n));
    return true;
  }
  int fd_ = -1;
  std::string buf_;
};

}  // namespace sluice::test
