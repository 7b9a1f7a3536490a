// sluice_ws_idle: server memory per idle WebSocket connection (GET /v1/ws).
//
// Starts `sluice serve` as a child process (one worker thread), opens N
// WebSocket connections to it, with or without offering permessage-deflate,
// and reports the server's RSS (VmRSS from /proc) before and after, per
// connection, in two states:
//   idle        handshake done, nothing sent;
//   subscribed  each connection subscribed to one stream and has received one
//               event (so a negotiated deflate context has been used).
// The client side is plain POSIX sockets (its memory is not the server's).
//
//   sluice_ws_idle --sluice build/sluice [--connections 2000] [--deflate on|off]
//                  [--port 18090] [-- extra sluice serve options]
//
// Raise `ulimit -n` above the connection count first.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

struct options {
  std::string sluice;
  int connections = 2000;
  bool deflate = false;
  int port = 18090;
  std::vector<std::string> serve_args;  // after --: passed to sluice serve
};

long rss_kib(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  return -1;
}

int connect_to(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

void send_all(int fd, const std::string& s) {
  std::size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) throw std::runtime_error(std::string("send: ") + std::strerror(errno));
    off += static_cast<std::size_t>(n);
  }
}

// Reads until `marker` has been seen; returns what was read.
std::string read_until(int fd, const std::string& marker) {
  std::string got;
  char buf[4096];
  while (got.find(marker) == std::string::npos) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) throw std::runtime_error("connection closed or timed out while reading");
    got.append(buf, static_cast<std::size_t>(n));
  }
  return got;
}

// Reads at least one byte (a frame has started to arrive).
void read_some(int fd) {
  char buf[4096];
  ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  if (n <= 0) throw std::runtime_error("no frame arrived");
}

std::string masked_text_frame(const std::string& payload) {
  std::string f;
  f.push_back(static_cast<char>(0x81));
  f.push_back(static_cast<char>(0x80 | payload.size()));  // < 126 bytes
  const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
  f.append(reinterpret_cast<const char*>(mask), 4);
  for (std::size_t i = 0; i < payload.size(); ++i)
    f.push_back(static_cast<char>(payload[i] ^ mask[i % 4]));
  return f;
}

void http_post(int port, const std::string& target, const std::string& body) {
  int fd = connect_to(port);
  if (fd < 0) throw std::runtime_error("cannot connect to publish");
  send_all(fd, "POST " + target +
                   " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                   "Connection: close\r\nContent-Length: " +
                   std::to_string(body.size()) + "\r\n\r\n" + body);
  read_until(fd, "\r\n\r\n");
  ::close(fd);
}

bool parse(int argc, char** argv, options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--sluice")
      o.sluice = next();
    else if (a == "--connections")
      o.connections = std::atoi(next().c_str());
    else if (a == "--deflate")
      o.deflate = next() == "on";
    else if (a == "--port")
      o.port = std::atoi(next().c_str());
    else if (a == "--") {
      while (++i < argc) o.serve_args.push_back(argv[i]);
    } else
      return false;
  }
  return !o.sluice.empty() && o.connections > 0;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  if (!parse(argc, argv, o)) {
    std::fprintf(stderr,
                 "usage: %s --sluice PATH [--connections N] [--deflate on|off] [--port P] [-- "
                 "serve options]\n",
                 argv[0]);
    return 2;
  }
  const std::string port = std::to_string(o.port);
  const std::string max_conn = std::to_string(o.connections + 100);
  pid_t server = ::fork();
  if (server == 0) {
    std::vector<const char*> args{o.sluice.c_str(),
                                  "serve",
                                  "--port",
                                  port.c_str(),
                                  "--threads",
                                  "1",
                                  "--max-connections",
                                  max_conn.c_str(),
                                  "--log-level",
                                  "warn",
                                  "--max-connections-per-ip",
                                  "0"};
    for (const auto& a : o.serve_args) args.push_back(a.c_str());
    args.push_back(nullptr);
    ::execv(o.sluice.c_str(), const_cast<char* const*>(args.data()));
    std::perror("exec sluice");
    std::_Exit(127);
  }
  int code = 0;
  try {
    // Wait (bounded) until the server accepts connections.
    int fd = -1;
    for (int attempt = 0; attempt < 200 && fd < 0; ++attempt) {
      fd = connect_to(o.port);
      if (fd < 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (fd < 0) throw std::runtime_error("the server did not start");
    ::close(fd);

    const std::string offer =
        o.deflate ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" : "";
    auto open_ws = [&] {
      int s = connect_to(o.port);
      if (s < 0) throw std::runtime_error(std::string("connect: ") + std::strerror(errno));
      send_all(s,
               "GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\n" +
                   offer + "\r\n");
      std::string head = read_until(s, "\r\n\r\n");
      if (head.rfind("HTTP/1.1 101", 0) != 0) throw std::runtime_error("no 101: " + head);
      if (o.deflate && head.find("permessage-deflate") == std::string::npos)
        throw std::runtime_error("deflate was not negotiated");
      return s;
    };
    // Warm up: one connection through every code path, then closed.
    {
      int s = open_ws();
      send_all(s, masked_text_frame(R"({"op":"subscribe","stream":"ws-idle-warm"})"));
      http_post(o.port, "/v1/streams/ws-idle-warm/events", R"({"warm":true})");
      read_some(s);
      ::close(s);
    }
    const long before = rss_kib(server);
    std::vector<int> fds;
    fds.reserve(static_cast<std::size_t>(o.connections));
    for (int i = 0; i < o.connections; ++i) fds.push_back(open_ws());
    const long idle = rss_kib(server);

    for (int s : fds) send_all(s, masked_text_frame(R"({"op":"subscribe","stream":"ws-idle"})"));
    http_post(o.port, "/v1/streams/ws-idle/events",
              R"({"text":"one event for every connection, to use the deflate contexts"})");
    for (int s : fds) read_some(s);
    const long subscribed = rss_kib(server);

    const double n = o.connections;
    std::printf("deflate %s, %d connections, server RSS before %ld KiB\n",
                o.deflate ? "on " : "off", o.connections, before);
    std::printf("  idle:       RSS %ld KiB, +%.2f KiB per connection\n", idle,
                static_cast<double>(idle - before) / n);
    std::printf("  subscribed: RSS %ld KiB, +%.2f KiB per connection\n", subscribed,
                static_cast<double>(subscribed - before) / n);
    for (int s : fds) ::close(s);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sluice_ws_idle: %s\n", e.what());
    code = 1;
  }
  ::kill(server, SIGTERM);
  int status = 0;
  ::waitpid(server, &status, 0);
  return code;
}
