// A TCP proxy for resumption tests: listens on 127.0.0.1 (port 0), forwards
// bytes to an upstream server unchanged, and cuts each connection after a
// random number of bytes, drawn from a seeded std::mt19937_64 in accept order
// (the same seed gives the same cut points). Protocol-neutral: HTTP/SSE and
// WebSocket tests use it alike.
//
// Bounded: at most max_connections at once (later ones are closed at once),
// 16 KiB of buffer per direction, at most max_cuts cuts; all I/O on one
// thread of its own.
//
// Each connection also keeps the first capture_bytes of each direction, so a
// test can assert what a client sent (e.g. its Last-Event-ID) or received.
//
// Thread-safety: construct, start() and stop() from one thread; the other
// members are thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

namespace sluice::test {

struct chaos_proxy_options {
  std::string upstream_host = "127.0.0.1";
  std::uint16_t upstream_port = 0;
  std::uint64_t seed = 1;
  // A connection is cut once this many bytes (uniform in [min, max]) have
  // been forwarded in the counted direction(s).
  std::size_t min_cut_bytes = 1;
  std::size_t max_cut_bytes = 16 * 1024;
  enum class direction { downstream, upstream, both };  // downstream: server -> client
  direction counted = direction::downstream;
  // Share of cuts made with a TCP reset (SO_LINGER 0) instead of a FIN.
  double reset_ratio = 0.5;
  std::size_t max_cuts = std::numeric_limits<std::size_t>::max();
  std::size_t max_connections = 64;
  std::size_t capture_bytes = 4096;
};

struct proxied_connection {
  std::string from_client;  // first capture_bytes sent by the client
  std::string from_server;  // first capture_bytes sent by the server
  std::size_t cut_after = 0;  // the drawn budget (0: not cut)
  bool was_cut = false;
};

class chaos_proxy {
 public:
  explicit chaos_proxy(chaos_proxy_options options);
  ~chaos_proxy();  // stop()
  chaos_proxy(const chaos_proxy&) = delete;
  chaos_proxy& operator=(const chaos_proxy&) = delete;

  // Binds 127.0.0.1:0 and starts forwarding. Throws std::system_error.
  void start();
  std::uint16_t port() const;
  // Closes every connection and joins the thread. Idempotent.
  void stop();

  // Off: connections forward everything (existing ones too, from their next
  // read); budgets are still drawn so the cut sequence stays reproducible.
  void set_cutting(bool on);

  std::size_t cuts() const;         // connections cut so far
  std::size_t connections() const;  // connections accepted and connected upstream
  std::vector<proxied_connection> connections_seen() const;  // in accept order

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace sluice::test
