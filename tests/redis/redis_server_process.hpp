// A real redis-server for a test, started by the test itself: on a free port
// of 127.0.0.1 (redis cannot take port 0: a port is found by binding, and
// another is tried if redis fails to bind it), in its own temporary directory,
// without RDB snapshots, with or without AOF. Ready once it answers PING
// (bounded deadline, no fixed sleeps). Killed and its directory removed at
// the end.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>

namespace sluice::redis::testing {

struct redis_server_options {
  bool appendonly = false;  // AOF with appendfsync always
  // When both are set, TLS is served on tls_port() too (no client
  // certificates asked); the plain port stays for the readiness PING.
  std::string tls_cert_file;
  std::string tls_key_file;
};

class redis_server_process {
 public:
  explicit redis_server_process(redis_server_options options = {});
  ~redis_server_process();
  redis_server_process(const redis_server_process&) = delete;
  redis_server_process& operator=(const redis_server_process&) = delete;

  // Starts (on a new free port the first time; on the same port and
  // directory after kill()/stop()); throws std::runtime_error with redis's
  // log when it cannot be made ready.
  void start();
  // SIGKILL (nothing flushed that was not already written) and reap.
  void kill();
  // SIGTERM and reap (a clean shutdown).
  void stop();
  // SIGSTOP / SIGCONT: a Redis that hangs (connections stay open, nothing
  // is answered).
  void freeze();
  void thaw();
  // Removes the directory's data files (a Redis that comes back empty).
  void wipe_data();

  bool running() const { return pid_ > 0; }
  unsigned short port() const { return port_; }
  unsigned short tls_port() const { return tls_port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
  const std::string& dir() const { return dir_; }
  // A command through redis-cli (for setup/inspection); its output.
  std::string cli(const std::string& args) const;

 private:
  bool launch_and_wait(std::chrono::steady_clock::time_point deadline);
  std::string log_tail() const;

  redis_server_options options_;
  std::string dir_;
  unsigned short port_ = 0;
  unsigned short tls_port_ = 0;
  pid_t pid_ = -1;
};

// True when `redis-server` can be run (tests skip otherwise, saying so).
bool redis_server_available();

}  // namespace sluice::redis::testing
