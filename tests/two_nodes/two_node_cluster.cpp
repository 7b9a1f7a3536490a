#include "two_node_cluster.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace sluice::test {

namespace fs = std::filesystem;

std::string source_dir() {
  return SLUICE_SOURCE_DIR;
}
std::string sluice_binary() {
  // Another binary for the nodes (e.g. a build of another branch).
  if (const char* b = std::getenv("SLUICE_TEST_SLUICE_BINARY"); b && *b) return b;
  return SLUICE_BINARY;
}

namespace {

std::string join_words(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) {
    if (w.find_first_of(" \t\n") != std::string::npos)
      throw std::invalid_argument("serve argument with white space: " + w);
    if (!out.empty()) out += ' ';
    out += w;
  }
  return out;
}

// Polls `done` until it is true or `deadline` passes (a bounded wait on a
// condition, not a sleep as synchronisation).
template <class F>
bool poll_until(std::chrono::steady_clock::time_point deadline, F done) {
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

}  // namespace

two_node_cluster::two_node_cluster(two_node_options options) : options_(std::move(options)) {
  char tmpl[] = "/tmp/sluice-two-nodes-test-XXXXXX";
  if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
  work_ = tmpl;
  state_file_ = work_ + "/state";
  log_file_ = work_ + "/script.log";
}

two_node_cluster::~two_node_cluster() {
  stop();
  std::error_code ec;
  fs::remove_all(work_, ec);
}

void two_node_cluster::start() {
  std::vector<std::string> args = {"/bin/bash",
                                   source_dir() + "/scripts/two-nodes.sh",
                                   "--sluice",
                                   sluice_binary(),
                                   "--state-file",
                                   state_file_,
                                   "--dir",
                                   work_ + "/cluster",
                                   "--exit-on-stdin-eof"};
  if (!options_.redis_url.empty()) {
    args.push_back("--redis-url");
    args.push_back(options_.redis_url);
  }
  // Each node builds its own search index in the test's directory (the
  // default is one file next to the binary, shared with other tests).
  std::vector<std::string> a = options_.a_args, b = options_.b_args;
  a.insert(a.end(), {"--index", work_ + "/index-a.sqlite"});
  b.insert(b.end(), {"--index", work_ + "/index-b.sqlite"});
  args.insert(args.end(), {"--serve-args", join_words(options_.serve_args), "--a-args",
                           join_words(a), "--b-args", join_words(b)});

  int in[2];
  if (::pipe2(in, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  std::vector<char*> argv;
  for (auto& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::setpgid(0, 0);
    ::dup2(in[0], 0);
    const int log = ::open(log_file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (log >= 0) {
      ::dup2(log, 1);
      ::dup2(log, 2);
    }
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also in the parent: no race with the first kill
  ::close(in[0]);
  stdin_fd_ = in[1];
  script_pid_ = pid;

  const auto deadline = std::chrono::steady_clock::now() + options_.ready_deadline;
  bool exited = false;
  const bool ready = poll_until(deadline, [&] {
    int status = 0;
    if (::waitpid(script_pid_, &status, WNOHANG) == script_pid_) {
      exited = true;
      script_pid_ = -1;
      return true;
    }
    return fs::exists(state_file_);
  });
  if (!ready || exited) {
    const std::string out = output();
    stop();
    throw std::runtime_error(std::string("scripts/two-nodes.sh ") +
                             (exited ? "exited" : "was not ready in time") + "; its output:\n" +
                             out);
  }
  std::ifstream in_state(state_file_);
  std::string line;
  while (std::getline(in_state, line)) {
    const auto eq = line.find('=');
    if (eq != std::string::npos) state_[line.substr(0, eq)] = line.substr(eq + 1);
  }
}

void two_node_cluster::stop() {
  if (stdin_fd_ >= 0) {
    ::close(stdin_fd_);
    stdin_fd_ = -1;
  }
  if (script_pid_ <= 0) return;
  ::kill(script_pid_, SIGTERM);
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  const bool reaped =
      poll_until(deadline, [&] { return ::waitpid(script_pid_, &status, WNOHANG) == script_pid_; });
  // Whatever is left of the group (nothing, normally): the script's children.
  ::kill(-script_pid_, SIGKILL);
  if (!reaped) ::waitpid(script_pid_, &status, 0);
  script_pid_ = -1;
}

std::string two_node_cluster::value(const std::string& key) const {
  const auto it = state_.find(key);
  if (it == state_.end()) throw std::runtime_error("no " + key + " in the state file");
  return it->second;
}

std::uint16_t two_node_cluster::port(const std::string& key) const {
  const std::string v = value(key);
  unsigned p = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), p);
  if (ec != std::errc{} || p == 0 || p > 65535) throw std::runtime_error("bad " + key);
  return static_cast<std::uint16_t>(p);
}

pid_t two_node_cluster::pid(const std::string& key) const {
  const std::string v = value(key);
  long p = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), p);
  if (ec != std::errc{} || p <= 1) throw std::runtime_error("bad " + key);
  return static_cast<pid_t>(p);
}

std::string two_node_cluster::output() const {
  std::ifstream in(log_file_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void two_node_cluster::kill_node_a() {
  ::kill(pid_a(), SIGKILL);
}

void two_node_cluster::stop_node_a() {
  ::kill(pid_a(), SIGTERM);
}

}  // namespace sluice::test
