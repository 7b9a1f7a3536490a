// Two `sluice serve --redis` nodes behind nginx, started by the recipe
// itself (scripts/two-nodes.sh) as a child process of the test: the test
// exercises the same script a user runs. The script runs in a process group
// of its own, reads its standard input from a pipe this object holds (the
// script stops everything when the pipe closes: a test that dies takes the
// cluster with it), and writes a state file (ports, pids) once every part
// answers; start() waits for that file with a bounded deadline.
//
// Thread-safety: construct, start(), stop() and the kill helpers from one
// thread; the accessors are const.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace sluice::test {

struct two_node_options {
  std::string redis_url;                // empty: the script starts its own Redis
  std::vector<std::string> serve_args;  // for both nodes
  std::vector<std::string> a_args, b_args;
  std::chrono::seconds ready_deadline{90};
};

class two_node_cluster {
 public:
  explicit two_node_cluster(two_node_options options);
  ~two_node_cluster();  // stop()
  two_node_cluster(const two_node_cluster&) = delete;
  two_node_cluster& operator=(const two_node_cluster&) = delete;

  // Runs the script and waits until it reports ready; throws
  // std::runtime_error with the script's output otherwise.
  void start();
  // SIGTERM to the script (it stops nginx, the nodes and its Redis), waits
  // (bounded), then SIGKILL to whatever is left of its process group.
  void stop();

  std::uint16_t port_a() const { return port("A_PORT"); }
  std::uint16_t port_b() const { return port("B_PORT"); }
  std::uint16_t port_lb() const { return port("LB_PORT"); }
  pid_t pid_a() const { return pid("A_PID"); }
  pid_t pid_b() const { return pid("B_PID"); }
  std::string redis_url() const { return value("REDIS_URL"); }
  std::string value(const std::string& key) const;
  // A directory for the test's own files (indexes), removed at the end.
  const std::string& work_dir() const { return work_; }
  // The script's output so far (its log), for failure messages.
  std::string output() const;

  // SIGKILL a node (no shutdown: its leases are left to expire).
  void kill_node_a();
  // SIGTERM to node A: a graceful shutdown.
  void stop_node_a();

 private:
  std::uint16_t port(const std::string& key) const;
  pid_t pid(const std::string& key) const;

  two_node_options options_;
  std::string work_;
  std::string state_file_;
  std::string log_file_;
  std::map<std::string, std::string> state_;
  pid_t script_pid_ = -1;
  int stdin_fd_ = -1;  // write end of the script's standard input
};

// The repository's root and the Release `sluice` binary.
std::string source_dir();
std::string sluice_binary();  // SLUICE_TEST_SLUICE_BINARY overrides it

}  // namespace sluice::test
