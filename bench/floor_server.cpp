// sluice_floor: the floor the benchmark compares Sluice against.
//
// A minimal single-threaded epoll server with no framework and no
// guarantees beyond the wire format: it serves the same endpoints and bytes
// as `sluice serve --enable-bench` for the benchmark workloads, and does as
// little as a hand-written server can:
//
//   POST /v1/bench/tokens {"tokens":T,"bytes":B,"rate":R}
//        SSE, chunked, T events "id: n\ndata: {"seq":n,"ts":µs,"t":"..."}\n\n".
//        rate > 0: one write() per event, paced by one timer heap for the
//        whole server (epoll_wait's timeout). rate 0: events are generated
//        into the connection's buffer, up to 64 KiB per write, until the
//        socket would block.
//   GET  /v1/streams/<id>/events   subscribe (SSE head, then events)
//   POST /v1/streams/<id>/events   publish one JSON body to every subscriber
//        of <id>: the event is framed once, then one write() per subscriber.
//   GET  /healthz                  200
//
// No retention, no resumption, no heartbeats, no backpressure policy (a slow
// reader's buffer grows): it is a floor for cost, not a server to deploy.
//
//   sluice_floor --port P [--host 127.0.0.1]
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace {

std::int64_t realtime_us() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
}

std::int64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

constexpr std::string_view sse_head =
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
    "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n";

enum class kind { request, tokens, subscriber };

struct conn {
  int fd = -1;
  std::uint32_t generation = 0;
  kind k = kind::request;
  std::string in;   // request bytes until the request is complete
  std::string out;  // bytes the socket did not take yet
  bool want_out = false;
  // tokens
  std::uint64_t tokens = 0, next = 1;
  std::string text;
  double rate = 0;
  std::int64_t started_ns = 0;
  // subscriber
  std::string channel;
};

struct timer_entry {
  std::int64_t due_ns;
  int fd;
  std::uint32_t generation;
  bool operator>(const timer_entry& o) const { return due_ns > o.due_ns; }
};

class floor_server {
 public:
  explicit floor_server(int listen_fd) : lfd_(listen_fd) {
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    add(lfd_, EPOLLIN);
  }

  void run() {
    std::vector<epoll_event> evs(1024);
    for (;;) {
      int timeout = -1;
      if (!timers_.empty()) {
        const std::int64_t wait = timers_.top().due_ns - monotonic_ns();
        timeout = wait <= 0 ? 0 : static_cast<int>((wait + 999'999) / 1'000'000);
      }
      const int n = epoll_wait(ep_, evs.data(), static_cast<int>(evs.size()), timeout);
      if (n < 0 && errno != EINTR) {
        std::perror("epoll_wait");
        return;
      }
      for (int i = 0; i < n; ++i) {
        const int fd = evs[i].data.fd;
        if (fd == lfd_) {
          accept_all();
          continue;
        }
        if (fd >= static_cast<int>(conns_.size()) || conns_[fd].fd < 0) continue;
        if (evs[i].events & (EPOLLHUP | EPOLLERR)) {
          drop(conns_[fd]);
          continue;
        }
        if (evs[i].events & EPOLLOUT) on_writable(conns_[fd]);
        if (conns_[fd].fd >= 0 && (evs[i].events & EPOLLIN)) on_readable(conns_[fd]);
      }
      fire_timers();
    }
  }

 private:
  void add(int fd, std::uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
  }
  void modify(conn& c, bool want_out) {
    if (c.want_out == want_out) return;
    c.want_out = want_out;
    epoll_event ev{};
    ev.events = EPOLLIN | (want_out ? EPOLLOUT : 0u);
    ev.data.fd = c.fd;
    epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
  }

  void accept_all() {
    for (;;) {
      const int fd = accept4(lfd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      const int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      if (fd >= static_cast<int>(conns_.size())) conns_.resize(static_cast<std::size_t>(fd) + 1024);
      conn& c = conns_[fd];
      const std::uint32_t gen = c.generation + 1;
      c = conn{};
      c.fd = fd;
      c.generation = gen;
      add(fd, EPOLLIN);
    }
  }

  void drop(conn& c) {
    if (c.k == kind::subscriber) {
      auto it = channels_.find(c.channel);
      if (it != channels_.end()) std::erase(it->second, c.fd);
    }
    close(c.fd);  // also leaves the epoll set; a pending timer sees the new generation
    c.fd = -1;
    c.in.clear();
    c.out.clear();
  }

  // Writes `data` (after anything already queued). False when the connection dropped.
  bool send(conn& c, std::string_view data) {
    if (!c.out.empty()) {
      c.out.append(data);
      return true;
    }
    const ssize_t w = ::send(c.fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (w < 0 && errno != EAGAIN) {
      drop(c);
      return false;
    }
    const std::size_t done = w < 0 ? 0 : static_cast<std::size_t>(w);
    if (done < data.size()) {
      c.out.append(data.substr(done));
      modify(c, true);
    }
    return true;
  }

  void on_writable(conn& c) {
    while (!c.out.empty()) {
      const ssize_t w = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EAGAIN) return;
        drop(c);
        return;
      }
      c.out.erase(0, static_cast<std::size_t>(w));
    }
    modify(c, false);
    if (c.k == kind::tokens && c.rate <= 0) pump_unpaced(c);
  }

  void on_readable(conn& c) {
    char buf[16384];
    const ssize_t n = ::read(c.fd, buf, sizeof buf);
    if (n == 0 || (n < 0 && errno != EAGAIN)) {
      drop(c);
      return;
    }
    if (n < 0 || c.k != kind::request) return;  // bytes mid-stream are ignored
    c.in.append(buf, static_cast<std::size_t>(n));
    for (;;) {
      const std::size_t end = c.in.find("\r\n\r\n");
      if (end == std::string::npos) {
        if (c.in.size() > 65536) drop(c);
        return;
      }
      std::string_view head(c.in.data(), end);
      std::size_t length = 0;
      for (std::string_view name : {"Content-Length:", "content-length:"}) {
        if (auto p = head.find(name); p != std::string_view::npos) {
          std::size_t q = p + name.size();
          while (q < head.size() && head[q] == ' ') ++q;
          std::from_chars(head.data() + q, head.data() + head.size(), length);
        }
      }
      if (c.in.size() < end + 4 + length) return;
      const std::string request = c.in.substr(0, end + 4 + length);
      c.in.erase(0, end + 4 + length);
      handle(c, std::string_view(request).substr(0, end),
             std::string_view(request).substr(end + 4));
      if (c.fd < 0 || c.k != kind::request) return;
    }
  }

  static double number_after(std::string_view body, std::string_view key, double dflt) {
    const auto p = body.find(key);
    if (p == std::string_view::npos) return dflt;
    std::size_t q = p + key.size();
    while (q < body.size() && (body[q] == ' ' || body[q] == ':')) ++q;
    return std::strtod(std::string(body.substr(q, 32)).c_str(), nullptr);
  }

  void reply(conn& c, std::string_view status, std::string_view body) {
    std::string r = "HTTP/1.1 ";
    r += status;
    r += "\r\nContent-Type: application/json\r\nContent-Length: ";
    r += std::to_string(body.size());
    r += "\r\n\r\n";
    r += body;
    send(c, r);
  }

  void handle(conn& c, std::string_view head, std::string_view body) {
    const std::size_t sp1 = head.find(' ');
    const std::size_t sp2 = head.find(' ', sp1 + 1);
    if (sp1 == std::string_view::npos || sp2 == std::string_view::npos) return drop(c);
    const std::string_view method = head.substr(0, sp1);
    const std::string_view target = head.substr(sp1 + 1, sp2 - sp1 - 1);
    constexpr std::string_view streams = "/v1/streams/";
    if (target == "/healthz") return reply(c, "200 OK", "{\"ok\":true}");
    if (method == "POST" && target == "/v1/bench/tokens") {
      c.k = kind::tokens;
      c.tokens = static_cast<std::uint64_t>(number_after(body, "\"tokens\"", 100));
      c.rate = number_after(body, "\"rate\"", 0);
      const auto bytes = static_cast<std::size_t>(number_after(body, "\"bytes\"", 8));
      for (std::size_t i = 0; i < bytes; ++i) c.text.push_back(static_cast<char>('a' + i % 26));
      c.started_ns = monotonic_ns();
      if (!send(c, sse_head)) return;
      if (c.rate > 0) {
        emit_one(c);
      } else {
        pump_unpaced(c);
      }
      return;
    }
    if (target.starts_with(streams) && target.ends_with("/events")) {
      std::string channel(target.substr(streams.size(), target.size() - streams.size() - 7));
      if (method == "GET") {
        c.k = kind::subscriber;
        c.channel = channel;
        channels_[channel].push_back(c.fd);
        send(c, sse_head);
        return;
      }
      if (method == "POST") {
        const std::uint64_t seq = ++published_[channel];
        std::string ev = "id: " + std::to_string(seq) + "\ndata: ";
        ev += body;
        ev += "\n\n";
        char size[24];
        const int n = std::snprintf(size, sizeof size, "%zx\r\n", ev.size());
        ev.insert(0, size, static_cast<std::size_t>(n));
        ev += "\r\n";
        if (auto it = channels_.find(channel); it != channels_.end()) {
          const std::vector<int> fds = it->second;  // send() may drop one
          for (int fd : fds) send(conns_[fd], ev);
        }
        reply(c, "200 OK", "{\"sequence\":" + std::to_string(seq) + "}");
        return;
      }
    }
    reply(c, "404 Not Found",
          "{\"error\":{\"code\":\"not_found\",\"message\":\"no such endpoint\"}}");
  }

  // Appends event `n` of `c` as one chunk to `out`.
  static void append_event(conn& c, std::uint64_t n, std::int64_t ts, std::string& out) {
    char body[256];
    char* p = body;
    auto put = [&p](std::string_view s) {
      std::memcpy(p, s.data(), s.size());
      p += s.size();
    };
    put("id: ");
    p = std::to_chars(p, p + 24, n).ptr;
    put("\ndata: {\"seq\":");
    p = std::to_chars(p, p + 24, n).ptr;
    put(",\"ts\":");
    p = std::to_chars(p, p + 24, ts).ptr;
    put(",\"t\":\"");
    const std::size_t used = static_cast<std::size_t>(p - body);
    char size[24];
    const std::size_t ev_size = used + c.text.size() + 4;
    const int sn = std::snprintf(size, sizeof size, "%zx\r\n", ev_size);
    out.append(size, static_cast<std::size_t>(sn));
    out.append(body, used);
    out += c.text;
    out += "\"}\n\n\r\n";
  }

  void emit_one(conn& c) {
    std::string ev;
    append_event(c, c.next, realtime_us(), ev);
    const bool last = c.next == c.tokens;
    if (last) ev += "0\r\n\r\n";
    if (!send(c, ev)) return;
    ++c.next;
    if (last) return;
    const auto due = c.started_ns + static_cast<std::int64_t>((c.next - 1) * 1e9 / c.rate);
    timers_.push({due, c.fd, c.generation});
  }

  void fire_timers() {
    const std::int64_t now = monotonic_ns();
    while (!timers_.empty() && timers_.top().due_ns <= now) {
      const timer_entry t = timers_.top();
      timers_.pop();
      conn& c = conns_[t.fd];
      if (c.fd < 0 || c.generation != t.generation) continue;
      emit_one(c);
    }
  }

  void pump_unpaced(conn& c) {
    std::string batch;
    while (c.fd >= 0 && c.out.empty() && c.next <= c.tokens) {
      batch.clear();
      const std::int64_t ts = realtime_us();
      while (batch.size() < 65536 && c.next <= c.tokens) append_event(c, c.next++, ts, batch);
      if (c.next > c.tokens) batch += "0\r\n\r\n";
      if (!send(c, batch)) return;
    }
  }

  int lfd_;
  int ep_;
  std::vector<conn> conns_;
  std::priority_queue<timer_entry, std::vector<timer_entry>, std::greater<>> timers_;
  std::unordered_map<std::string, std::vector<int>> channels_;
  std::unordered_map<std::string, std::uint64_t> published_;
};

}  // namespace

int main(int argc, char** argv) {
  int port = 8080;
  std::string host = "127.0.0.1";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view a = argv[i];
    if (a == "--port")
      port = std::atoi(argv[i + 1]);
    else if (a == "--host")
      host = argv[i + 1];
  }
  ::signal(SIGPIPE, SIG_IGN);
  const int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  inet_pton(AF_INET, host.c_str(), &addr.sin_addr);
  if (bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 || listen(lfd, 4096) < 0) {
    std::perror("sluice_floor: bind/listen");
    return 1;
  }
  floor_server(lfd).run();
  return 0;
}
