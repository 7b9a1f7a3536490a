// Does the stream core scale with threads? (issue 10's `--threads N` goal, as
// far as a 2-core machine can show it.)
//
// Each of T threads owns its streams, as a server worker owns its
// connections: it publishes 16 events at a time to each of its streams and
// reads them back through one subscription per stream (the read a
// subscriber's write would do, minus the socket). Retention is small, so the
// log's memory churns through segment_memory (its one mutex is shared by all
// threads) as it would on a long-running server. Nothing is shared between
// threads but what the core itself shares. Threads are pinned to cores
// 0..T-1. Prints events/s for T = 1..max and the ratio to T = 1.
//
// The control: the same work in T separate processes (fork, one thread each,
// pinned alike), which share nothing at all. If T threads reach what T
// processes reach, the core's sharing costs nothing measurable, and any
// shortfall from T x is the machine's (vCPUs, caches, memory bandwidth).
//
//   sluice_core_scaling [--threads-max N] [--streams S] [--events E] [--repeats R]
#include <pthread.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/stream_log.hpp"

namespace {

using namespace sluice::core;

struct noop_waiter final : stream_waiter {
  void on_stream_ready() noexcept override {}
};

std::uint64_t worker(int cpu, int streams, int events) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  (void)pthread_setaffinity_np(pthread_self(), sizeof set, &set);
  noop_waiter waiter;
  std::vector<std::shared_ptr<stream_log>> logs;
  std::vector<std::unique_ptr<subscription>> subs;
  for (int i = 0; i < streams; ++i) {
    logs.push_back(std::make_shared<stream_log>("s" + std::to_string(cpu) + "-" + std::to_string(i),
                                                retention_limits{1024, 256 * 1024}));
    subs.push_back(std::make_unique<subscription>(logs.back(), 1, waiter));
  }
  std::string buffer;
  std::vector<publish_item> items(16);
  read_batch batch;
  std::uint64_t bytes = 0;
  for (int n = 0; n < events; n += 16) {
    buffer.clear();
    std::vector<std::size_t> offsets;
    for (int k = 0; k < 16; ++k) {
      offsets.push_back(buffer.size());
      buffer += "{\"seq\":" + std::to_string(n + k) + ",\"t\":\"tokentok\"}";
    }
    offsets.push_back(buffer.size());
    for (int k = 0; k < 16; ++k)
      items[static_cast<std::size_t>(k)].data = std::string_view(buffer).substr(
          offsets[static_cast<std::size_t>(k)],
          offsets[static_cast<std::size_t>(k) + 1] - offsets[static_cast<std::size_t>(k)]);
    for (int i = 0; i < streams; ++i) {
      logs[static_cast<std::size_t>(i)]->publish_all(items);
      while (subs[static_cast<std::size_t>(i)]->read(batch, 64 * 1024) == read_status::data)
        bytes += batch.bytes;
    }
  }
  subs.clear();
  return bytes;
}

}  // namespace

int main(int argc, char** argv) {
  int threads_max = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int streams = 200, events = 20000, repeats = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const int v = std::atoi(argv[i + 1]);
    if (v <= 0) {
      std::fprintf(stderr, "bad value for %s\n", a.c_str());
      return 64;
    }
    if (a == "--threads-max")
      threads_max = v;
    else if (a == "--streams")
      streams = v;
    else if (a == "--events")
      events = v;
    else if (a == "--repeats")
      repeats = v;
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 64;
    }
  }
  const int cpus = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  double base = 0;
  for (int t = 1; t <= threads_max; ++t) {
    double best = 0;
    for (int r = 0; r < repeats; ++r) {
      const auto start = std::chrono::steady_clock::now();
      std::vector<std::thread> ts;
      for (int k = 0; k < t; ++k) ts.emplace_back([=] { worker(k % cpus, streams, events); });
      for (auto& th : ts) th.join();
      const double s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      best = std::max(best, static_cast<double>(t) * streams * events / s);
    }
    if (t == 1) base = best;
    std::printf(
        "SCALING threads=%d streams_per_thread=%d events_per_stream=%d events_per_s=%.0f "
        "x_one_thread=%.2f\n",
        t, streams, events, best, best / base);
    if (t == 1) continue;
    // Control: t processes.
    double best_processes = 0;
    for (int r = 0; r < repeats; ++r) {
      std::fflush(stdout);
      const auto start = std::chrono::steady_clock::now();
      std::vector<pid_t> kids;
      for (int k = 0; k < t; ++k) {
        const pid_t pid = fork();
        if (pid == 0) {
          worker(k % cpus, streams, events);
          _exit(0);
        }
        if (pid > 0) kids.push_back(pid);
      }
      for (pid_t pid : kids) waitpid(pid, nullptr, 0);
      const double s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      best_processes = std::max(best_processes, static_cast<double>(t) * streams * events / s);
    }
    std::printf(
        "SCALING processes=%d (control) events_per_s=%.0f x_one_thread=%.2f "
        "threads_vs_processes=%.2f\n",
        t, best_processes, best_processes / base, best / best_processes);
  }
  return 0;
}
