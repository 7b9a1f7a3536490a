// kill -9 during heavy publishing (with fsync interval also a torn tail): a real `sluice serve
// --data-dir` child, SIGKILLed at a random moment (after a random number of acknowledged
// publishes), restarted on the same folder many times. After each restart a
// real SSE read of every stream must be exactly what was published, in
// order, with no gap and no corrupt event; with --fsync always it must hold
// every acknowledged event; publishing continues at the next sequence.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>

#include "core/event_id.hpp"
#include "support/test_client.hpp"

namespace fs = std::filesystem;
using namespace sluice::test;

namespace {

struct temp_dir {
  fs::path path;
  temp_dir() {
    char tmpl[] = "/tmp/sluice-crash-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// A `sluice serve` child; its output is drained by a thread (the port is
// read from the "listening" line).
class server_process {
 public:
  server_process(const fs::path& data, const fs::path& work, const std::string& fsync) {
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(fds[1], 1);
      ::dup2(fds[1], 2);
      ::close(fds[0]);
      ::close(fds[1]);
      const std::string index = (work / "index.db").string();
      const std::string corpus = (work / "corpus").string();
      ::execl(SLUICE_BINARY, SLUICE_BINARY, "serve", "--host", "127.0.0.1", "--port", "0",
              "--threads", "2", "--data-dir", data.c_str(), "--fsync", fsync.c_str(), "--index",
              index.c_str(), "--corpus", corpus.c_str(), "--web-root", "/nonexistent",
              "--max-connections-per-ip", "0", "--max-streams-per-subject", "0",
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(fds[1]);
    fd_ = fds[0];
    drain_ = std::thread([this] {
      char buf[4096];
      std::string line;
      for (;;) {
        const ssize_t n = ::read(fd_, buf, sizeof buf);
        if (n <= 0) break;
        std::lock_guard l(m_);
        output_.append(buf, static_cast<std::size_t>(n));
        const auto at = output_.find("listening on http://127.0.0.1:");
        if (port_ == 0 && at != std::string::npos) {
          const auto start = at + std::string_view("listening on http://127.0.0.1:").size();
          const auto end = output_.find_first_not_of("0123456789", start);
          if (end != std::string::npos) {
            port_ = static_cast<std::uint16_t>(std::stoi(output_.substr(start, end - start)));
            cv_.notify_all();
          }
        }
      }
      std::lock_guard l(m_);
      closed_ = true;
      cv_.notify_all();
    });
    std::unique_lock l(m_);
    if (!cv_.wait_for(l, std::chrono::seconds(30), [&] { return port_ != 0 || closed_; }) ||
        port_ == 0)
      throw std::runtime_error("the server did not start: " + output_);
  }
  ~server_process() {
    kill(SIGKILL);
    drain_.join();
    ::close(fd_);
  }
  void kill(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  std::uint16_t port() const { return port_; }
  std::string output() {
    std::lock_guard l(m_);
    return output_;
  }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  std::thread drain_;
  std::mutex m_;
  std::condition_variable cv_;
  std::string output_;
  std::uint16_t port_ = 0;
  bool closed_ = false;
};

std::uint64_t json_number(const std::string& body, const std::string& key) {
  const auto at = body.find("\"" + key + "\":");
  if (at == std::string::npos) return 0;
  return std::strtoull(body.c_str() + at + key.size() + 3, nullptr, 10);
}

// What one stream has seen: every payload sent, in order, and how many of
// them were acknowledged.
struct stream_truth {
  std::string id;
  std::vector<std::string> sent;
  std::size_t acked = 0;
  // The ids (N or N-EPOCH) of the events the last verify read: what a
  // client saw.
  std::vector<std::string> ids;
};

std::string epoch_of(const std::string& id) {
  auto e = sluice::core::parse_event_id(id);
  return e ? e->epoch : "?";
}

// Reads the whole stream over SSE and checks it against `t`; then trims
// `t.sent` to what the server holds (unacknowledged events may or may not
// have made it).
void verify(std::uint16_t port, stream_truth& t, bool every_ack_durable) {
  auto st = request(port, "GET", "/v1/streams/" + t.id);
  // Nothing of it reached the disk (possible unless every ack is durable).
  if ((t.sent.empty() || !every_ack_durable) && st.status() == 404) {
    t.sent.clear();
    t.acked = 0;
    t.ids.clear();
    return;
  }
  ASSERT_EQ(st.status(), 200) << st.body;
  const std::uint64_t last = json_number(st.body, "last_sequence");
  if (every_ack_durable) {
    ASSERT_GE(last, t.acked) << t.id;
  }
  ASSERT_LE(last, t.sent.size()) << t.id;
  EXPECT_EQ(json_number(st.body, "first_sequence"), last == 0 ? 0u : 1u);
  if (last > 0) {
    http_connection c(port);
    c.send_request("GET", "/v1/streams/" + t.id + "/events?coalesce=false");
    sse_reader r(c);
    r.read_until([&] { return r.events.size() >= last; });
    ASSERT_EQ(r.events.size(), last) << t.id;
    // Every restart here follows a kill: the stream began a new epoch at
    // each one. Events already read keep their ids; the ones the last run
    // added share one epoch, new to the stream (the first run's have none).
    const std::size_t before = std::min<std::size_t>(t.ids.size(), last);
    for (std::size_t i = 0; i < r.events.size(); ++i) {
      auto id = sluice::core::parse_event_id(r.events[i].id);
      ASSERT_TRUE(id) << r.events[i].id;
      ASSERT_EQ(id->seq, i + 1) << t.id;
      if (i < before) {
        ASSERT_EQ(r.events[i].id, t.ids[i]) << t.id;
      }
      if (i > before) {
        ASSERT_EQ(id->epoch, epoch_of(r.events[before].id)) << t.id;
      }
      ASSERT_EQ(r.events[i].type, "message") << t.id;
      ASSERT_EQ(r.events[i].data, t.sent[i]) << t.id << " event " << i + 1;
    }
    if (last > before && before > 0) {
      ASSERT_NE(epoch_of(r.events[before].id), epoch_of(r.events[before - 1].id)) << t.id;
    }
    t.ids.clear();
    for (const auto& e : r.events) t.ids.push_back(e.id);
    if (last > before) {
      // A client that saw the next event of that run (lost or not: readers
      // see events before they are synced) is refused in protocol...
      const std::string past =
          std::to_string(last + 1) +
          (epoch_of(t.ids.back()).empty() ? std::string() : "-" + epoch_of(t.ids.back()));
      auto refused =
          request(port, "GET", "/v1/streams/" + t.id + "/events", "", {{"Last-Event-ID", past}});
      ASSERT_EQ(refused.status(), 409) << refused.body;
      ASSERT_EQ(refused.body,
                R"({"error":{"code":"history_truncated","message":"the stream's history after )"
                R"(Last-Event-ID )" +
                    past +
                    R"( was lost (the stream is in another epoch): start again from )"
                    R"(first_available without Last-Event-ID","first_available":1}})");
      // ...and one before the boundary resumes exactly after its id (one of
      // the previous epoch: older epochs are not remembered).
      if (last >= 2 && last - 2 >= before) {
        http_connection rc(port);
        rc.send_request("GET", "/v1/streams/" + t.id + "/events?coalesce=false", "",
                        {{"Last-Event-ID", t.ids[last - 2]}});
        sse_reader rr(rc);
        rr.read_until([&] { return !rr.events.empty(); });
        ASSERT_EQ(rr.events.size(), 1u) << t.id;
        ASSERT_EQ(rr.events[0].id, t.ids[last - 1]) << t.id;
        ASSERT_EQ(rr.events[0].data, t.sent[last - 1]) << t.id;
      }
    }
  }
  t.sent.resize(last);
  t.acked = last;
  t.ids.resize(last);
}

// Publishes into `t` until the connection fails; batches of 1..4 events
// (NDJSON for more than one). Every acknowledged sequence is checked.
void publish_until_killed(std::uint16_t port, stream_truth& t, std::atomic<std::size_t>& acks,
                          unsigned seed) {
  std::mt19937 rng(seed);
  try {
    http_connection c(port);
    for (;;) {
      const int n = 1 + static_cast<int>(rng() % 4);
      std::string body;
      const std::size_t first = t.sent.size() + 1;
      for (int i = 0; i < n; ++i) {
        std::string p = "{\"stream\":\"" + t.id + "\",\"n\":" + std::to_string(t.sent.size() + 1) +
                        ",\"pad\":\"" + std::string(rng() % 200, 'x') + "\"}";
        body += p + "\n";
        t.sent.push_back(std::move(p));
      }
      c.send_request("POST", "/v1/streams/" + t.id + "/events", body,
                     {{"Content-Type", n == 1 ? "application/json" : "application/x-ndjson"}});
      const auto head = c.read_head();
      const std::string reply = c.read_body_to_end();
      if (head.status != 200) {
        ADD_FAILURE() << "publish answered " << head.status << ": " << reply;
        return;
      }
      const auto seq_at = reply.find_first_of("0123456789");
      ASSERT_NE(seq_at, std::string::npos);
      EXPECT_EQ(std::strtoull(reply.c_str() + seq_at, nullptr, 10), first) << reply;
      t.acked = t.sent.size();
      acks.fetch_add(static_cast<std::size_t>(n));
    }
  } catch (const std::exception&) {
    // The server was killed.
  }
}

void crash_loop(const std::string& fsync, bool every_ack_durable, int iterations) {
  temp_dir work;
  fs::create_directories(work.path / "corpus");
  const fs::path data = work.path / "data";
  std::vector<stream_truth> streams(3);
  for (std::size_t i = 0; i < streams.size(); ++i) streams[i].id = "crash-" + std::to_string(i);
  std::mt19937 rng(12345);
  int torn_restarts = 0;
  for (int it = 0; it < iterations; ++it) {
    server_process server(data, work.path, fsync);
    if (server.output().find(" 0 torn tails truncated") == std::string::npos) ++torn_restarts;
    for (auto& t : streams) {
      verify(server.port(), t, every_ack_durable);
      if (::testing::Test::HasFatalFailure()) {
        ADD_FAILURE() << "iteration " << it << " server output:\n" << server.output();
        return;
      }
    }
    std::atomic<std::size_t> acks{0};
    std::vector<std::thread> publishers;
    for (std::size_t i = 0; i < streams.size(); ++i)
      publishers.emplace_back(publish_until_killed, server.port(), std::ref(streams[i]),
                              std::ref(acks), static_cast<unsigned>(rng()));
    // A random moment: after a random number of acknowledged events (no
    // sleeping). Without waiting for the disk publishing is fast: a wider
    // range spreads the kill over several of the writer's rounds.
    const std::size_t target = every_ack_durable ? 20 + rng() % 580 : 200 + rng() % 20'000;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (acks.load() < target && std::chrono::steady_clock::now() < deadline)
      std::this_thread::yield();
    server.kill(SIGKILL);
    for (auto& p : publishers) p.join();
    ASSERT_GE(acks.load(), target) << "publishing stalled";
    if (!every_ack_durable) {
      // A write that a power loss tore (kill -9 alone cannot: each round is
      // one write(2)): cut 1..80 bytes off the node-wide log's newest
      // segment file (the streams' records are interleaved in it).
      const auto dir = data / "log";
      std::vector<fs::path> segs;
      std::error_code ec;  // nothing written yet is fine too
      for (auto& e : fs::directory_iterator(dir, ec)) segs.push_back(e.path());
      if (segs.empty()) continue;
      std::sort(segs.begin(), segs.end());
      const auto size = fs::file_size(segs.back());
      fs::resize_file(segs.back(), size - std::min<std::uintmax_t>(size, 1 + rng() % 80));
    }
  }
  // The last crash too is recovered.
  server_process server(data, work.path, fsync);
  for (auto& t : streams) verify(server.port(), t, every_ack_durable);
  std::size_t total = 0;
  for (auto& t : streams) total += t.sent.size();
  std::printf("fsync %s: %d kills, %zu events kept in all, %d restarts truncated a torn tail\n",
              fsync.c_str(), iterations, total, torn_restarts);
  // And every stream goes on at its next sequence.
  for (auto& t : streams) {
    auto r = request(server.port(), "POST", "/v1/streams/" + t.id + "/events", "{\"after\":1}",
                     {{"Content-Type", "application/json"}});
    ASSERT_EQ(r.status(), 200) << r.body;
    EXPECT_EQ(json_number(r.body, "sequence"), t.sent.size() + 1) << r.body;
  }
  // A clean stop (SIGTERM) changes no epoch: after the restart the streams
  // go on in the epoch they were in.
  server.kill(SIGTERM);
  server_process again(data, work.path, fsync);
  EXPECT_NE(again.output().find(" 3 streams restored"), std::string::npos) << again.output();
  EXPECT_EQ(again.output().find("began a new epoch"), std::string::npos) << again.output();
  for (auto& t : streams) {
    auto r = request(again.port(), "POST", "/v1/streams/" + t.id + "/events", "{\"after\":2}",
                     {{"Content-Type", "application/json"}});
    ASSERT_EQ(r.status(), 200) << r.body;
    const std::uint64_t n = t.sent.size() + 2;
    http_connection c(again.port());
    c.send_request("GET", "/v1/streams/" + t.id + "/events?coalesce=false", "",
                   {{"Last-Event-ID", std::to_string(n - 2) == t.ids.back() || t.ids.empty()
                                          ? std::to_string(n - 2)
                                          : std::to_string(n - 2) + "-" + epoch_of(t.ids.back())}});
    sse_reader rr(c);
    rr.read_until([&] { return rr.events.size() >= 2; });
    ASSERT_EQ(rr.events.size(), 2u) << t.id;
    EXPECT_EQ(rr.events[0].data, "{\"after\":1}");
    EXPECT_EQ(rr.events[1].data, "{\"after\":2}");
    EXPECT_EQ(epoch_of(rr.events[0].id), epoch_of(rr.events[1].id)) << t.id;
    EXPECT_FALSE(epoch_of(rr.events[1].id).empty()) << t.id;  // begun at the last kill
  }
}

int iterations() {
  if (const char* e = std::getenv("SLUICE_CRASH_ITERATIONS")) return std::max(1, std::atoi(e));
  return 12;
}

}  // namespace

TEST(DurableCrash, FsyncAlwaysKeepsEveryAcknowledgedEventThroughKill9) {
  crash_loop("always", true, iterations());
}

TEST(DurableCrash, FsyncIntervalServesAnExactPrefixThroughKill9) {
  crash_loop("interval", false, iterations());
}

// With `never` nothing is synced, but kill -9 leaves the page cache to the
// kernel: every event written is there, and a cut tail is truncated exactly.
TEST(DurableCrash, FsyncNeverServesAnExactPrefixThroughKill9) {
  crash_loop("never", false, iterations());
}
