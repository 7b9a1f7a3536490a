#include "redis_server_process.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

extern char** environ;

namespace sluice::redis::testing {

namespace fs = std::filesystem;
using clock = std::chrono::steady_clock;

namespace {

unsigned short pick_free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("bind() failed");
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

// One PING over a blocking socket with short timeouts: true on +PONG.
bool ping(unsigned short port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  timeval tv{0, 200'000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  bool ok = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const char cmd[] = "PING\r\n";
    if (::send(fd, cmd, sizeof cmd - 1, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof cmd - 1)) {
      char buf[16] = {};
      const auto n = ::recv(fd, buf, sizeof buf - 1, 0);
      ok = n >= 5 && std::strncmp(buf, "+PONG", 5) == 0;
    }
  }
  ::close(fd);
  return ok;
}

}  // namespace

bool redis_server_available() {
  return ::access("/usr/bin/redis-server", X_OK) == 0;
}

redis_server_process::redis_server_process(redis_server_options options)
    : options_(std::move(options)) {
  std::string tmpl = (fs::temp_directory_path() / "sluice-redis-XXXXXX").string();
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = buf.data();
}

redis_server_process::~redis_server_process() {
  kill();
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

std::string redis_server_process::log_tail() const {
  std::ifstream in(dir_ + "/redis.log");
  std::stringstream ss;
  ss << in.rdbuf();
  auto s = ss.str();
  return s.size() > 2000 ? s.substr(s.size() - 2000) : s;
}

bool redis_server_process::launch_and_wait(clock::time_point deadline) {
  const std::string port = std::to_string(port_);
  std::vector<std::string> args = {"/usr/bin/redis-server",
                                   "--port",
                                   port,
                                   "--bind",
                                   "127.0.0.1",
                                   "--dir",
                                   dir_,
                                   "--logfile",
                                   dir_ + "/redis.log",
                                   "--save",
                                   "",
                                   "--daemonize",
                                   "no",
                                   "--appendonly",
                                   options_.appendonly ? "yes" : "no",
                                   "--appendfsync",
                                   "always"};
  if (!options_.tls_cert_file.empty()) {
    for (const auto& a :
         {std::string("--tls-port"), std::to_string(tls_port_), std::string("--tls-cert-file"),
          options_.tls_cert_file, std::string("--tls-key-file"), options_.tls_key_file,
          std::string("--tls-auth-clients"), std::string("no")})
      args.push_back(a);
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  if (::posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0)
    throw std::runtime_error("cannot spawn redis-server");
  pid_ = pid;
  // Ready when it answers PING; failed when it exits (e.g. the port was
  // taken between our bind and its own).
  while (clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    if (ping(port_)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // poll interval, not a sync
  }
  kill();
  throw std::runtime_error("redis-server did not answer PING in time; log:\n" + log_tail());
}

void redis_server_process::start() {
  if (pid_ > 0) return;
  const auto deadline = clock::now() + std::chrono::seconds(20);
  if (port_ != 0) {
    if (!launch_and_wait(deadline))
      throw std::runtime_error("redis-server could not restart on port " + std::to_string(port_) +
                               "; log:\n" + log_tail());
    return;
  }
  for (int attempt = 0; attempt < 10; ++attempt) {
    port_ = pick_free_port();
    if (!options_.tls_cert_file.empty()) {
      do tls_port_ = pick_free_port();
      while (tls_port_ == port_);
    }
    if (launch_and_wait(deadline)) return;
  }
  throw std::runtime_error("redis-server failed to start; log:\n" + log_tail());
}

void redis_server_process::kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::kill(pid_, SIGCONT);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

void redis_server_process::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

void redis_server_process::freeze() {
  if (pid_ > 0) ::kill(pid_, SIGSTOP);
}

void redis_server_process::thaw() {
  if (pid_ > 0) ::kill(pid_, SIGCONT);
}

void redis_server_process::wipe_data() {
  std::error_code ec;
  fs::remove_all(dir_ + "/appendonlydir", ec);
  fs::remove(dir_ + "/dump.rdb", ec);
}

std::string redis_server_process::cli(const std::string& args) const {
  const std::string cmd = "redis-cli -p " + std::to_string(port_) + " " + args + " 2>&1";
  std::string out;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    std::array<char, 4096> buf{};
    std::size_t n = 0;
    while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
    ::pclose(p);
  }
  return out;
}

}  // namespace sluice::redis::testing
