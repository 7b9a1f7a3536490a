#include "support/test_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace sluice::test {

namespace {
std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
}  // namespace

bool response_head::chunked() const {
  return lower(header("transfer-encoding")).find("chunked") != std::string::npos;
}

std::string response_head::header(const std::string& name) const {
  auto it = headers.find(lower(name));
  return it == headers.end() ? std::string() : it->second;
}

http_connection::http_connection(std::uint16_t port, int rcvbuf, int timeout_ms) {
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd_ < 0) throw std::runtime_error("socket failed");
  if (rcvbuf > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    throw std::runtime_error(std::string("connect failed: ") + std::strerror(errno));
}

http_connection::~http_connection() { close(); }

void http_connection::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void http_connection::send(const std::string& raw) {
  std::size_t off = 0;
  while (off < raw.size()) {
    ssize_t n = ::send(fd_, raw.data() + off, raw.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(std::string("send failed: ") + std::strerror(errno));
    }
    off += static_cast<std::size_t>(n);
  }
}

void http_connection::send_request(const std::string& method, const std::string& target,
                                   const std::string& body,
                                   const std::vector<std::pair<std::string, std::string>>& headers) {
  std::string r = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  bool has_type = false;
  for (const auto& [k, v] : headers) {
    r += k + ": " + v + "\r\n";
    if (lower(k) == "content-type") has_type = true;
  }
  if (method == "POST" || !body.empty()) {
    if (!has_type) r += "Content-Type: application/json\r\n";
    r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  r += "\r\n" + body;
  send(r);
}

bool http_connection::fill() {
  if (pos_ > 0 && pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  }
  char tmp[65536];
  for (;;) {
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n > 0) {
      buf_.append(tmp, static_cast<std::size_t>(n));
      return true;
    }
    if (n == 0) {
      eof_ = true;
      return false;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) throw timeout_error("read timed out");
    eof_ = true;  // reset
    return false;
  }
}

std::string http_connection::take_line() {
  for (;;) {
    auto nl = buf_.find("\r\n", pos_);
    if (nl != std::string::npos) {
      std::string line = buf_.substr(pos_, nl - pos_);
      pos_ = nl + 2;
      return line;
    }
    if (!fill()) throw std::runtime_error("connection closed inside a line");
  }
}

response_head http_connection::read_head() {
  response_head h;
  std::string status_line = take_line();
  if (status_line.size() < 12) throw std::runtime_error("bad status line: " + status_line);
  h.status = std::stoi(status_line.substr(9, 3));
  for (;;) {
    std::string line = take_line();
    if (line.empty()) break;
    auto colon = line.find(':');
    std::string value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    h.headers[lower(line.substr(0, colon))] = value;
  }
  chunked_ = h.chunked();
  body_ended_ = false;
  remaining_ = -1;
  if (!chunked_) {
    auto cl = h.header("content-length");
    if (!cl.empty()) remaining_ = std::stoll(cl);
    if (h.status == 204 || h.status == 304 || remaining_ == 0) body_ended_ = true;
  }
  return h;
}

bool http_connection::read_body_some(std::string& out) {
  if (body_ended_) return false;
  if (chunked_) {
    std::string size_line = take_line();
    std::size_t size = std::stoul(size_line, nullptr, 16);
    if (size == 0) {
      take_line();  // the blank line after the last chunk
      body_ended_ = true;
      return false;
    }
    while (buf_.size() - pos_ < size + 2)
      if (!fill()) throw std::runtime_error("connection closed inside a chunk");
    out.append(buf_, pos_, size);
    pos_ += size + 2;
    return true;
  }
  if (pos_ == buf_.size() && !fill()) {
    body_ended_ = true;
    return false;
  }
  std::size_t n = buf_.size() - pos_;
  if (remaining_ >= 0) n = std::min<std::size_t>(n, static_cast<std::size_t>(remaining_));
  out.append(buf_, pos_, n);
  pos_ += n;
  if (remaining_ >= 0) {
    remaining_ -= static_cast<std::int64_t>(n);
    if (remaining_ == 0) body_ended_ = true;
  }
  return true;
}

std::string http_connection::read_body_to_end() {
  std::string out;
  while (read_body_some(out)) {
  }
  return out;
}

bool http_connection::wait_closed() {
  try {
    while (fill()) pos_ = buf_.size();
    return true;
  } catch (const timeout_error&) {
    return false;
  }
}

http_response request(std::uint16_t port, const std::string& method, const std::string& target,
                      const std::string& body,
                      const std::vector<std::pair<std::string, std::string>>& headers) {
  http_connection c(port);
  c.send_request(method, target, body, headers);
  http_response r;
  r.head = c.read_head();
  r.body = c.read_body_to_end();
  return r;
}

sse_reader::sse_reader(http_connection& conn, bool gzip) : conn_(conn), parser_(*this), gzip_(gzip) {
  head_ = conn_.read_head();
  if (gzip_) inflateInit2(&z_, 16 + 15);
}

sse_reader::~sse_reader() {
  if (gzip_) inflateEnd(&z_);
}

void sse_reader::on_event(const core::sse_event& e) {
  events.push_back({std::string(e.last_event_id), std::string(e.type), std::string(e.data)});
}

bool sse_reader::read_some() {
  std::string piece;
  if (!conn_.read_body_some(piece)) return false;
  body_bytes += piece.size();
  if (!gzip_) {
    parser_.feed(piece);
    return true;
  }
  z_.next_in = reinterpret_cast<Bytef*>(piece.data());
  z_.avail_in = static_cast<uInt>(piece.size());
  char out[65536];
  do {
    z_.next_out = reinterpret_cast<Bytef*>(out);
    z_.avail_out = sizeof out;
    int rc = inflate(&z_, Z_SYNC_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
      throw std::runtime_error("inflate failed");
    parser_.feed(std::string_view(out, sizeof out - z_.avail_out));
  } while (z_.avail_in > 0 || z_.avail_out == 0);
  return true;
}

bool sse_reader::read_until(const std::function<bool()>& done) {
  while (!done())
    if (!read_some()) break;
  return done();
}

bool sse_reader::read_to_end() {
  while (read_some()) {
  }
  return conn_.body_ended();
}

}  // namespace sluice::test
