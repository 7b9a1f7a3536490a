// sluice_loadgen: load generator for Sluice's SSE endpoints.
//
// One thread, non-blocking sockets, level-triggered epoll. It must never be the
// bottleneck of the measurement, so the data path is: one read() into a shared
// buffer, incremental de-chunking in place, the project's sse_parser, and a
// cheap scan of each event's data for "ts"/"seq"/"coalesced" (no JSON parse).
// Latencies go into a log-linear histogram, never a per-sample vector. The
// loadgen reports its own CPU time so a reader can check it was not saturated.
//
// Modes:
//   tokens  N connections each POST /v1/bench/tokens and read T events.
//   idle    N connections each GET /v1/streams/<prefix><k>/events, wait until
//           every one has its response headers, sample the server's RSS, hold.
//   fanout  N connections GET one stream (--sub-path); once every one has its
//           response headers, one publisher connection POSTs E events of
//           {"seq":n,"ts":µs,"t":"..."} to --pub-path at R events/s (one request
//           in flight, keep-alive); every subscriber must receive all E in
//           order (by the data's "seq"; the SSE id is the server's business).
//
// Run `sluice_loadgen --help` for options. Exit status: 0 clean run, 1 errors
// were counted, 2 the global timeout fired, 64 bad usage.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cinttypes>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/sse_parser.hpp"

namespace {

// ---------------------------------------------------------------- clocks

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

double cpu_seconds_self() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto sec = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + tv.tv_usec / 1e6; };
  return sec(ru.ru_utime) + sec(ru.ru_stime);
}

// ---------------------------------------------------------------- histogram

// Log-linear histogram of non-negative integers (microseconds here): exact below
// 64, then 32 sub-buckets per power of two, so a reported percentile is within
// ~3% of the true value. Fixed size (15 KiB), O(1) record.
class log_linear_histogram {
 public:
  void record(std::uint64_t value, std::uint64_t times = 1) {
    counts_[index_of(value)] += times;
    total_ += times;
    max_ = std::max(max_, value);
    min_ = std::min(min_, value);
  }

  std::uint64_t count() const { return total_; }
  std::uint64_t max() const { return total_ ? max_ : 0; }
  std::uint64_t min() const { return total_ ? min_ : 0; }

  // The smallest bucket upper bound at or below which `pct` percent of the
  // samples lie, clamped to the exact maximum.
  std::uint64_t percentile(double pct) const {
    if (total_ == 0) return 0;
    auto rank = static_cast<std::uint64_t>(std::ceil(pct / 100.0 * static_cast<double>(total_)));
    rank = std::clamp<std::uint64_t>(rank, 1, total_);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::min(upper_of(i), max_);
    }
    return max_;
  }

 private:
  static constexpr int kSubBits = 5;
  static constexpr std::size_t kSub = std::size_t{1} << kSubBits;
  static constexpr std::size_t kLinear = 2 * kSub;

  static std::size_t index_of(std::uint64_t v) {
    if (v < kLinear) return static_cast<std::size_t>(v);
    const int e = 63 - __builtin_clzll(v);
    return kLinear + static_cast<std::size_t>(e - (kSubBits + 1)) * kSub +
           static_cast<std::size_t>((v >> (e - kSubBits)) & (kSub - 1));
  }
  static std::uint64_t upper_of(std::size_t i) {
    if (i < kLinear) return i;
    const std::size_t j = i - kLinear;
    const int e = static_cast<int>(j / kSub) + kSubBits + 1;
    const std::uint64_t width = std::uint64_t{1} << (e - kSubBits);
    const std::uint64_t low = (std::uint64_t{1} << e) + (j % kSub) * width;
    return low + width - 1;
  }

  std::array<std::uint64_t, kLinear + (64 - kSubBits - 1) * kSub> counts_{};
  std::uint64_t total_ = 0;
  std::uint64_t max_ = 0;
  std::uint64_t min_ = UINT64_MAX;
};

// Exact percentile of a small sample set (one value per connection).
double exact_percentile(std::vector<double>& v, double pct) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto rank = static_cast<std::size_t>(std::ceil(pct / 100.0 * static_cast<double>(v.size())));
  rank = std::clamp<std::size_t>(rank, 1, v.size());
  return v[rank - 1];
}

// ---------------------------------------------------------------- options

enum class run_mode { tokens, idle, fanout };

struct options {
  run_mode mode = run_mode::tokens;
  std::string host = "127.0.0.1";
  int port = 8080;
  int connections = 1000;
  int max_inflight = 200;
  long tokens = 2000;
  long bytes = 8;
  long rate = 0;
  std::string prefix = "idle-";
  long server_pid = 0;
  long baseline_rss_kb = -1;
  double hold_seconds = 2;
  double timeout_seconds = 120;
  bool json = false;
  std::string sub_path = "/v1/streams/fanout/events";
  std::string pub_path;  // empty: sub_path
  int pub_port = 0;      // 0: port (fanout: publish to another node than the subscribers')
  int second_port = 0;   // fanout: odd subscribers read this port instead (0: none)
  double settle_seconds = 0.2;
  std::string percentiles_file;  // tokens/fanout: latency percentile table for charts
  std::string auth_header;       // "Authorization: Bearer ...\r\n" or empty (--token)
};

void print_usage(std::FILE* out) {
  std::fprintf(out,
               "usage: sluice_loadgen tokens|idle|fanout [options]\n"
               "  --host H              server address (default 127.0.0.1)\n"
               "  --port P              server port (default 8080)\n"
               "  --connections N       concurrent connections (default 1000)\n"
               "  --max-inflight K      connections between connect() and response headers\n"
               "                        at once, so the accept backlog never overflows (200)\n"
               "  --timeout-seconds S   give up after S seconds, report, exit 2 (default 120)\n"
               "  --json                one JSON object line on stdout (table goes to stderr)\n"
               "  --percentiles-file F  write the latency percentiles (tokens, fanout) to F\n"
               "  --token T             send `Authorization: Bearer T` on every request\n"
               "                        (for `sluice serve --auth jwt`; default: no token)\n"
               "  --token-file F        the same, the token read from file F (keeps it out of ps)\n"
               " tokens mode (POST /v1/bench/tokens):\n"
               "  --tokens T            events per stream (default 2000)\n"
               "  --bytes B             payload bytes per event (default 8)\n"
               "  --rate R              events/s per stream, 0 = as fast as possible (default 0)\n"
               " idle mode (GET /v1/streams/<prefix><k>/events):\n"
               "  --prefix P            stream id prefix (default idle-)\n"
               "  --server-pid PID      sample VmRSS of PID before and after connecting\n"
               "  --baseline-rss-kb K   use K as the 'before' RSS instead of sampling it\n"
               "  --hold-seconds S      hold the connections open this long (default 2)\n"
               " fanout mode (--connections subscribers, --tokens events, --bytes, --rate):\n"
               "  --sub-path P          subscribers GET P (default /v1/streams/fanout/events)\n"
               "  --pub-path P          the publisher POSTs each event to P (default: sub-path)\n"
               "  --pub-port P          the publisher connects to port P of --host (default:\n"
               "                        --port; e.g. node A while subscribers read node B)\n"
               "  --settle-seconds S    wait after the last subscriber's head (default 0.2)\n"
               "  --second-port P       odd-numbered subscribers read port P instead of --port,\n"
               "                        and latency is also reported per half (_a: --port,\n"
               "                        _b: P): two nodes compared on the same events\n");
}

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "sluice_loadgen: %s\n", msg.c_str());
  print_usage(stderr);
  std::exit(64);
}

long parse_long(std::string_view name, std::string_view text, long lo, long hi) {
  long v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || p != text.data() + text.size() || v < lo || v > hi) {
    usage_error("bad value for --" + std::string(name) + ": '" + std::string(text) + "'");
  }
  return v;
}

double parse_double(std::string_view name, std::string_view text) {
  char* end = nullptr;
  std::string s(text);
  double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || *end != '\0' || !(v >= 0) || v > 1e7) {
    usage_error("bad value for --" + std::string(name) + ": '" + s + "'");
  }
  return v;
}

options parse_options(int argc, char** argv) {
  options o;
  if (argc < 2) usage_error("missing mode");
  std::string_view mode = argv[1];
  if (mode == "--help" || mode == "-h") {
    print_usage(stdout);
    std::exit(0);
  }
  if (mode == "tokens") {
    o.mode = run_mode::tokens;
  } else if (mode == "idle") {
    o.mode = run_mode::idle;
  } else if (mode == "fanout") {
    o.mode = run_mode::fanout;
  } else {
    usage_error("unknown mode '" + std::string(mode) + "'");
  }
  for (int i = 2; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      print_usage(stdout);
      std::exit(0);
    }
    if (arg.substr(0, 2) != "--") usage_error("unexpected argument '" + std::string(arg) + "'");
    arg.remove_prefix(2);
    std::string_view name = arg;
    std::optional<std::string_view> value;
    if (auto eq = arg.find('='); eq != std::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    }
    if (name == "json") {
      o.json = true;
      continue;
    }
    if (!value) {
      if (i + 1 >= argc) usage_error("--" + std::string(name) + " needs a value");
      value = argv[++i];
    }
    const std::string_view v = *value;
    if (name == "host")
      o.host = std::string(v);
    else if (name == "port")
      o.port = static_cast<int>(parse_long(name, v, 1, 65535));
    else if (name == "connections")
      o.connections = static_cast<int>(parse_long(name, v, 1, 1'000'000));
    else if (name == "max-inflight")
      o.max_inflight = static_cast<int>(parse_long(name, v, 1, 1'000'000));
    else if (name == "tokens")
      o.tokens = parse_long(name, v, 1, 1'000'000'000);
    else if (name == "bytes")
      o.bytes = parse_long(name, v, 0, 16 * 1024 * 1024);
    else if (name == "rate")
      o.rate = parse_long(name, v, 0, 1'000'000'000);
    else if (name == "prefix")
      o.prefix = std::string(v);
    else if (name == "server-pid")
      o.server_pid = parse_long(name, v, 1, 1L << 31);
    else if (name == "baseline-rss-kb")
      o.baseline_rss_kb = parse_long(name, v, 0, 1L << 40);
    else if (name == "hold-seconds")
      o.hold_seconds = parse_double(name, v);
    else if (name == "timeout-seconds")
      o.timeout_seconds = parse_double(name, v);
    else if (name == "sub-path")
      o.sub_path = std::string(v);
    else if (name == "pub-path")
      o.pub_path = std::string(v);
    else if (name == "pub-port")
      o.pub_port = static_cast<int>(parse_long(name, v, 1, 65535));
    else if (name == "second-port")
      o.second_port = static_cast<int>(parse_long(name, v, 1, 65535));
    else if (name == "percentiles-file")
      o.percentiles_file = std::string(v);
    else if (name == "settle-seconds")
      o.settle_seconds = parse_double(name, v);
    else if (name == "token" || name == "token-file") {
      std::string token(v);
      if (name == "token-file") {
        std::ifstream in{std::string(v)};
        if (!in) usage_error("cannot read --token-file '" + std::string(v) + "'");
        std::getline(in, token);
      }
      while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
      if (token.empty() || token.find_first_of("\r\n") != std::string::npos)
        usage_error("--" + std::string(name) + ": the token is empty or has a line break");
      o.auth_header = "Authorization: Bearer " + token + "\r\n";
    } else
      usage_error("unknown option --" + std::string(name));
  }
  return o;
}

// VmRSS of `pid` in KiB, or -1 when it cannot be read.
long read_vmrss_kb(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

// ---------------------------------------------------------------- run state

struct error_counts {
  std::uint64_t connect = 0;          // socket()/connect() failed
  std::uint64_t status = 0;           // response was not 200 text/event-stream
  std::uint64_t reset = 0;            // ECONNRESET or another read error
  std::uint64_t premature_close = 0;  // EOF before the terminating chunk / during hold
  std::uint64_t error_events = 0;     // `event: error`
  std::uint64_t short_streams = 0;    // terminator before T events
  std::uint64_t sequence = 0;         // id gap, duplicate, out of range, or seq != id
  std::uint64_t framing = 0;          // bad HTTP head or chunked encoding
  std::uint64_t unfinished = 0;       // still open when the timeout fired

  std::uint64_t total() const {
    return connect + status + reset + premature_close + error_events + short_streams + sequence +
           framing + unfinished;
  }
};

struct run_stats {
  log_linear_histogram latency_us;
  log_linear_histogram latency_us_half[2];  // --second-port: subscribers of --port, of it
  std::vector<double> ttfe_ms;     // per connection: connect start -> first token event
  std::vector<double> headers_ms;  // per connection: connect start -> response headers
  std::vector<double> stream_s;    // per complete stream: first event -> last event
  error_counts errors;
  std::uint64_t events = 0;              // token events, coalesced ones counted per event
  std::uint64_t coalesced_messages = 0;  // SSE messages that stood for several events
  std::uint64_t coalesced_events = 0;    // events delivered inside those messages
  std::uint64_t other_events = 0;        // events without "seq" (not token events)
  std::uint64_t heartbeats = 0;          // comment lines
  std::uint64_t retry_fields = 0;
  std::uint64_t wire_bytes = 0;            // every byte read, headers and chunk framing included
  std::uint64_t negative_latency = 0;      // ts in the future (clamped to 0)
  std::uint64_t missing_ts = 0;            // token events without a parsable "ts"
  std::uint64_t complete_subscribers = 0;  // fanout: received all E events
  std::int64_t first_byte_ns = 0;
  std::int64_t last_event_ns = 0;
  // Set once per read() so all events in one buffer share a clock reading.
  std::int64_t now_realtime_us = 0;
  std::int64_t now_monotonic_ns = 0;
};

// Parses the decimal digits at p (after optional spaces); advances p.
std::optional<std::uint64_t> parse_uint_at(const char*& p, const char* end) {
  while (p != end && *p == ' ') ++p;
  const char* const start = p;
  std::uint64_t v = 0;
  while (p != end && static_cast<unsigned>(*p - '0') < 10 && p - start < 19) {
    v = v * 10 + static_cast<unsigned>(*p - '0');
    ++p;
  }
  if (p == start) return std::nullopt;
  return v;
}

bool match_at(const char* p, const char* end, std::string_view word) {
  return static_cast<std::size_t>(end - p) >= word.size() &&
         std::memcmp(p, word.data(), word.size()) == 0;
}

// The fields of a token event's data the loadgen needs, found by one pass that
// jumps from quote to quote (no JSON parse; payload bytes are skipped by memchr).
struct token_fields {
  std::optional<std::uint64_t> seq;
  std::optional<std::uint64_t> ts;
  std::optional<std::uint64_t> first;  // "coalesced":[first,last]
  std::optional<std::uint64_t> last;
  bool coalesced = false;
};

token_fields scan_token_fields(std::string_view data) {
  token_fields f;
  const char* p = data.data();
  const char* const end = p + data.size();
  while (p != end) {
    const void* q = std::memchr(p, '"', static_cast<std::size_t>(end - p));
    if (!q) break;
    p = static_cast<const char*>(q) + 1;
    if (!f.seq && match_at(p, end, "seq\":")) {
      p += 5;
      f.seq = parse_uint_at(p, end);
    } else if (!f.ts && match_at(p, end, "ts\":")) {
      p += 4;
      f.ts = parse_uint_at(p, end);
    } else if (!f.coalesced && match_at(p, end, "coalesced\":[")) {
      p += 12;
      f.coalesced = true;
      f.first = parse_uint_at(p, end);
      while (p != end && *p == ' ') ++p;
      if (p != end && *p == ',') {
        ++p;
        f.last = parse_uint_at(p, end);
      }
    }
  }
  return f;
}

// ---------------------------------------------------------------- connection

enum class phase { connecting, writing, reading_head, streaming, done, failed };

// One client connection. Owned by the run's vector; epoll refers to it by index.
class connection final : public sluice::core::sse_listener {
 public:
  connection(run_stats& stats, const options& opts) : stats_(stats), opts_(opts) {}

  std::uint32_t index = 0;  // position in the run's vector; the epoll cookie
  int half = 0;             // --second-port: 1 when this subscriber reads that port
  int fd = -1;
  phase state = phase::connecting;
  std::int64_t start_ns = 0;
  std::string request;
  std::size_t written = 0;
  std::uint64_t events = 0;  // token events counted on this connection
  std::uint64_t last_id = 0;
  bool first_event_seen = false;
  std::int64_t first_event_ns = 0;

  // Consumes bytes read from the socket. Returns false when the connection is
  // finished (successfully or not) and should be closed.
  bool on_bytes(const char* p, std::size_t n);

  // Body fully received (tokens mode: terminator seen).
  bool complete() const { return complete_; }

  void on_event(const sluice::core::sse_event& ev) override;
  void on_retry(std::uint64_t) override { ++stats_.retry_fields; }
  void on_comment(std::string_view) override { ++stats_.heartbeats; }

 private:
  enum class body_framing { chunked, length, until_close };
  enum class chunk_state {
    size,
    extension,
    size_lf,
    data,
    data_cr,
    data_lf,
    trailer_start,
    trailer_line,
    final_lf
  };

  bool parse_head(std::size_t head_end);
  bool feed_body(const char* p, std::size_t n);
  bool feed_chunked(const char* p, std::size_t n);

  run_stats& stats_;
  const options& opts_;
  std::string head_;  // response head bytes until CRLFCRLF, then released
  body_framing framing_ = body_framing::chunked;
  chunk_state chunk_ = chunk_state::size;
  std::uint64_t chunk_left_ = 0;
  std::uint64_t length_left_ = 0;
  int size_digits_ = 0;
  bool complete_ = false;
  sluice::core::sse_parser parser_{*this};
};

bool connection::on_bytes(const char* p, std::size_t n) {
  if (state == phase::reading_head) {
    // The head is small; buffer it until the blank line, then hand the rest
    // of this read to the body decoder.
    const std::size_t old = head_.size();
    head_.append(p, n);
    const std::size_t search_from = old >= 3 ? old - 3 : 0;
    const std::size_t end = head_.find("\r\n\r\n", search_from);
    if (end == std::string::npos) {
      if (head_.size() > 64 * 1024) {
        ++stats_.errors.framing;
        state = phase::failed;
        return false;
      }
      return true;
    }
    const std::size_t body_start = end + 4;
    if (!parse_head(end)) {
      state = phase::failed;
      return false;
    }
    state = phase::streaming;
    stats_.headers_ms.push_back(static_cast<double>(stats_.now_monotonic_ns - start_ns) / 1e6);
    const std::size_t consumed_from_read = body_start - old;
    head_.clear();
    head_.shrink_to_fit();
    if (consumed_from_read >= n) return true;
    p += consumed_from_read;
    n -= consumed_from_read;
  }
  if (state != phase::streaming) return false;
  if (!feed_body(p, n)) return false;
  return !complete_;
}

bool connection::parse_head(std::size_t head_end) {
  std::string_view head(head_.data(), head_end);
  // Status line: HTTP/1.x 200 ...
  const std::size_t line_end = head.find("\r\n");
  std::string_view status_line = head.substr(0, line_end);
  const bool ok_status = status_line.size() >= 12 && status_line.substr(0, 7) == "HTTP/1." &&
                         status_line.substr(8, 4) == " 200" &&
                         (status_line.size() == 12 || status_line[12] == ' ');
  if (!ok_status) {
    ++stats_.errors.status;
    if (!opts_.json) {
      // Show the first few distinct failures; enough to diagnose, not a flood.
      static int shown = 0;
      if (shown++ < 3) {
        std::fprintf(stderr, "non-200 response: %.*s\n", static_cast<int>(status_line.size()),
                     status_line.data());
      }
    }
    return false;
  }
  bool chunked = false;
  bool event_stream = false;
  std::optional<std::uint64_t> content_length;
  std::size_t pos = line_end == std::string_view::npos ? head.size() : line_end + 2;
  while (pos < head.size()) {
    std::size_t eol = head.find("\r\n", pos);
    if (eol == std::string_view::npos) eol = head.size();
    std::string_view line = head.substr(pos, eol - pos);
    pos = eol + 2;
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string name(line.substr(0, colon));
    std::string value(line.substr(colon + 1));
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (auto& c : value) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (name == "transfer-encoding" && value.find("chunked") != std::string::npos) chunked = true;
    if (name == "content-type" && value.find("text/event-stream") != std::string::npos) {
      event_stream = true;
    }
    if (name == "content-length") {
      const auto digits = value.find_first_not_of(' ');
      std::uint64_t v = 0;
      if (digits != std::string::npos &&
          std::from_chars(value.data() + digits, value.data() + value.size(), v).ec ==
              std::errc{}) {
        content_length = v;
      }
    }
  }
  if (!event_stream) {
    ++stats_.errors.status;
    return false;
  }
  if (chunked) {
    framing_ = body_framing::chunked;
  } else if (content_length) {
    framing_ = body_framing::length;
    length_left_ = *content_length;
  } else {
    framing_ = body_framing::until_close;
  }
  return true;
}

bool connection::feed_body(const char* p, std::size_t n) {
  switch (framing_) {
    case body_framing::chunked:
      return feed_chunked(p, n);
    case body_framing::length: {
      const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(n, length_left_));
      parser_.feed({p, take});
      length_left_ -= take;
      if (length_left_ == 0) complete_ = true;
      return true;
    }
    case body_framing::until_close:
      parser_.feed({p, n});
      return true;
  }
  return false;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Incremental chunked-transfer decoder: chunk payloads go straight from the
// read buffer to the parser; only the state machine position is kept.
bool connection::feed_chunked(const char* p, std::size_t n) {
  const char* const end = p + n;
  auto bad = [this] {
    ++stats_.errors.framing;
    state = phase::failed;
    return false;
  };
  while (p != end) {
    switch (chunk_) {
      case chunk_state::size: {
        const int d = hex_value(*p);
        if (d >= 0) {
          if (++size_digits_ > 15) return bad();
          chunk_left_ = chunk_left_ * 16 + static_cast<std::uint64_t>(d);
        } else if (*p == '\r' && size_digits_ > 0) {
          chunk_ = chunk_state::size_lf;
        } else if ((*p == ';' || *p == ' ' || *p == '\t') && size_digits_ > 0) {
          chunk_ = chunk_state::extension;
        } else {
          return bad();
        }
        ++p;
        break;
      }
      case chunk_state::extension:
        if (*p == '\r') chunk_ = chunk_state::size_lf;
        ++p;
        break;
      case chunk_state::size_lf:
        if (*p != '\n') return bad();
        ++p;
        chunk_ = chunk_left_ == 0 ? chunk_state::trailer_start : chunk_state::data;
        break;
      case chunk_state::data: {
        const auto avail = static_cast<std::uint64_t>(end - p);
        const auto take = static_cast<std::size_t>(std::min(avail, chunk_left_));
        parser_.feed({p, take});
        p += take;
        chunk_left_ -= take;
        if (chunk_left_ == 0) chunk_ = chunk_state::data_cr;
        break;
      }
      case chunk_state::data_cr:
        if (*p != '\r') return bad();
        ++p;
        chunk_ = chunk_state::data_lf;
        break;
      case chunk_state::data_lf:
        if (*p != '\n') return bad();
        ++p;
        chunk_ = chunk_state::size;
        size_digits_ = 0;
        break;
      case chunk_state::trailer_start:
        chunk_ = *p == '\r' ? chunk_state::final_lf : chunk_state::trailer_line;
        ++p;
        break;
      case chunk_state::trailer_line:
        if (*p == '\n') chunk_ = chunk_state::trailer_start;
        ++p;
        break;
      case chunk_state::final_lf:
        if (*p != '\n') return bad();
        complete_ = true;  // anything after the terminator is ignored; we close
        return true;
    }
  }
  return true;
}

void connection::on_event(const sluice::core::sse_event& ev) {
  if (ev.type == "error") {
    ++stats_.errors.error_events;
    return;
  }
  const token_fields f = scan_token_fields(ev.data);
  if (!f.seq) {
    ++stats_.other_events;
    return;
  }
  std::uint64_t id = *f.seq;
  if (opts_.mode != run_mode::fanout) {
    const char* idp = ev.last_event_id.data();
    const char* const id_end = idp + ev.last_event_id.size();
    const auto parsed_id = parse_uint_at(idp, id_end);
    if (!parsed_id || idp != id_end) {
      ++stats_.errors.sequence;
      return;
    }
    id = *parsed_id;
  }
  // A coalesced message stands for events [first, last] and carries id = last.
  std::uint64_t first = id;
  std::uint64_t count = 1;
  if (f.coalesced) {
    if (!f.first || !f.last || *f.last != id || *f.first > *f.last) {
      ++stats_.errors.sequence;
    } else {
      first = *f.first;
      count = *f.last - *f.first + 1;
      ++stats_.coalesced_messages;
      stats_.coalesced_events += count;
    }
  } else if (*f.seq != id) {
    ++stats_.errors.sequence;
  }
  if (first != last_id + 1 || id > static_cast<std::uint64_t>(opts_.tokens)) {
    ++stats_.errors.sequence;  // gap, duplicate or reordering; resynchronise on this id
  }
  last_id = std::max(last_id, id);
  events += count;
  stats_.events += count;
  stats_.last_event_ns = stats_.now_monotonic_ns;

  if (f.ts) {
    const std::int64_t lat = stats_.now_realtime_us - static_cast<std::int64_t>(*f.ts);
    if (lat < 0) ++stats_.negative_latency;
    // A coalesced message is weighted by the events it replaces, with its own ts.
    stats_.latency_us.record(lat < 0 ? 0 : static_cast<std::uint64_t>(lat), count);
    if (opts_.second_port > 0)
      stats_.latency_us_half[half].record(lat < 0 ? 0 : static_cast<std::uint64_t>(lat), count);
  } else {
    ++stats_.missing_ts;
  }
  if (!first_event_seen) {
    first_event_seen = true;
    first_event_ns = stats_.now_monotonic_ns;
    stats_.ttfe_ms.push_back(static_cast<double>(stats_.now_monotonic_ns - start_ns) / 1e6);
  }
  if (last_id == static_cast<std::uint64_t>(opts_.tokens)) {
    stats_.stream_s.push_back(static_cast<double>(stats_.now_monotonic_ns - first_event_ns) / 1e9);
    if (opts_.mode == run_mode::fanout) ++stats_.complete_subscribers;
  }
}

// ---------------------------------------------------------------- driver

void raise_nofile_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

sockaddr_storage resolve(const options& o, int port_number, socklen_t& len) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(port_number);
  if (int rc = getaddrinfo(o.host.c_str(), port.c_str(), &hints, &res); rc != 0 || !res) {
    std::fprintf(stderr, "sluice_loadgen: cannot resolve %s: %s\n", o.host.c_str(),
                 gai_strerror(rc));
    std::exit(64);
  }
  sockaddr_storage ss{};
  std::memcpy(&ss, res->ai_addr, res->ai_addrlen);
  len = res->ai_addrlen;
  freeaddrinfo(res);
  return ss;
}

class load_run {
 public:
  explicit load_run(const options& o) : opts_(o) {
    addr_ = resolve(o, o.port, addr_len_);
    pub_addr_ = resolve(o, o.pub_port > 0 ? o.pub_port : o.port, pub_addr_len_);
    if (o.second_port > 0) second_addr_ = resolve(o, o.second_port, second_addr_len_);
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) {
      std::perror("epoll_create1");
      std::exit(1);
    }
    conns_.reserve(static_cast<std::size_t>(o.connections));
    stats_.ttfe_ms.reserve(static_cast<std::size_t>(o.connections));
    stats_.headers_ms.reserve(static_cast<std::size_t>(o.connections));
  }
  ~load_run() { close(epoll_fd_); }

  int run();

 private:
  std::string build_request(int k) const;
  void start_connections();
  void start_one(int k);
  void handle(std::uint32_t index, std::uint32_t events);
  void on_writable(connection& c);
  void on_readable(connection& c);
  void finish(connection& c, bool ok);
  void report(double wall_s, double cpu_s, bool timed_out);
  // fanout: the publisher connection.
  static constexpr std::uint32_t publisher_cookie = UINT32_MAX;
  void start_publisher();
  void maybe_publish(std::int64_t now);
  void publish_one(std::int64_t now);
  static constexpr std::size_t max_publish_inflight = 32;
  void on_publisher_readable();
  std::int64_t publish_due_ns(std::uint64_t n) const {
    return opts_.rate > 0
               ? pub_start_ns_ + static_cast<std::int64_t>(static_cast<double>(n - 1) * 1e9 /
                                                           static_cast<double>(opts_.rate))
               : pub_start_ns_;
  }

  const options& opts_;
  sockaddr_storage addr_{};
  socklen_t addr_len_ = 0;
  sockaddr_storage pub_addr_{};  // the publisher's server (--pub-port)
  socklen_t pub_addr_len_ = 0;
  sockaddr_storage second_addr_{};  // --second-port
  socklen_t second_addr_len_ = 0;
  int epoll_fd_ = -1;
  std::vector<std::unique_ptr<connection>> conns_;
  run_stats stats_;
  int next_to_start_ = 0;
  int inflight_ = 0;  // started, response head not yet received
  int open_ = 0;      // sockets currently open
  int finished_ = 0;  // done or failed
  int headers_ok_ = 0;
  long rss_before_kb_ = -1;
  long rss_after_kb_ = -1;
  long rss_after_hold_kb_ = -1;
  std::int64_t hold_until_ns_ = 0;
  std::uint64_t closed_during_hold_ = 0;
  std::array<char, 256 * 1024> buf_{};
  int pub_fd_ = -1;
  std::string pub_in_;
  std::string pub_text_;
  std::deque<std::int64_t> pub_sent_;  // send times of requests awaiting a reply
  std::uint64_t pub_acked_ = 0;
  std::uint64_t pub_next_ = 1;
  std::int64_t publish_at_ns_ = 0;  // when the publisher starts (0: not yet decided)
  std::int64_t pub_start_ns_ = 0;
  std::int64_t pub_last_send_ns_ = 0;
  std::int64_t publish_done_ns_ = 0;
  std::uint64_t pub_late_ = 0;    // events sent more than 1 ms after their due time
  std::uint64_t pub_errors_ = 0;  // non-2xx replies or a broken publisher connection
  log_linear_histogram pub_rtt_us_;
};

void load_run::start_publisher() {
  pub_fd_ = socket(pub_addr_.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (pub_fd_ < 0 ||
      connect(pub_fd_, reinterpret_cast<const sockaddr*>(&pub_addr_), pub_addr_len_) < 0) {
    std::perror("publisher connect");
    ++pub_errors_;
    publish_done_ns_ = monotonic_ns();
    return;
  }
  const int one = 1;
  setsockopt(pub_fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fcntl(pub_fd_, F_SETFL, fcntl(pub_fd_, F_GETFL) | O_NONBLOCK);
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP;
  ev.data.u32 = publisher_cookie;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, pub_fd_, &ev);
  for (long i = 0; i < opts_.bytes; ++i) pub_text_.push_back(static_cast<char>('a' + i % 26));
  pub_start_ns_ = monotonic_ns();
}

// Sends every event that is due, keeping at most max_publish_inflight
// requests unanswered (HTTP/1.1 pipelining): the publisher's rate then does
// not hang on one scheduling round trip of a shared machine per event.
void load_run::maybe_publish(std::int64_t now) {
  while (pub_fd_ >= 0 && publish_done_ns_ == 0 && pub_sent_.size() < max_publish_inflight &&
         pub_next_ <= static_cast<std::uint64_t>(opts_.tokens) && now >= publish_due_ns(pub_next_))
    publish_one(now);
}

void load_run::publish_one(std::int64_t now) {
  const std::int64_t due = publish_due_ns(pub_next_);
  if (now - due > 1'000'000) ++pub_late_;
  const std::string body = "{\"seq\":" + std::to_string(pub_next_) +
                           ",\"ts\":" + std::to_string(realtime_us()) + ",\"t\":\"" + pub_text_ +
                           "\"}";
  const std::string path = opts_.pub_path.empty() ? opts_.sub_path : opts_.pub_path;
  const std::string req =
      "POST " + path + " HTTP/1.1\r\nHost: " + opts_.host + "\r\n" + opts_.auth_header +
      "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\n\r\n" + body;
  const ssize_t w = send(pub_fd_, req.data(), req.size(), MSG_NOSIGNAL);
  if (w != static_cast<ssize_t>(req.size())) {
    ++pub_errors_;
    publish_done_ns_ = now;
    return;
  }
  pub_sent_.push_back(now);
  pub_last_send_ns_ = now;
  ++pub_next_;
}

void load_run::on_publisher_readable() {
  const ssize_t n = read(pub_fd_, buf_.data(), buf_.size());
  if (n <= 0) {
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    ++pub_errors_;
    close(pub_fd_);
    pub_fd_ = -1;
    publish_done_ns_ = monotonic_ns();
    return;
  }
  pub_in_.append(buf_.data(), static_cast<std::size_t>(n));
  for (;;) {
    const std::size_t end = pub_in_.find("\r\n\r\n");
    if (end == std::string::npos) return;
    std::size_t length = 0;
    std::string head = pub_in_.substr(0, end);
    for (auto& ch : head) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (auto p = head.find("content-length:"); p != std::string::npos) {
      std::size_t q = p + 15;
      while (q < head.size() && head[q] == ' ') ++q;
      std::from_chars(head.data() + q, head.data() + head.size(), length);
    }
    if (pub_in_.size() < end + 4 + length) return;
    if (head.size() < 12 || head[9] != '2') {
      ++pub_errors_;
      if (!opts_.json) std::fprintf(stderr, "publish: %s\n", head.substr(0, 40).c_str());
    }
    pub_in_.erase(0, end + 4 + length);
    const std::int64_t now = monotonic_ns();
    if (!pub_sent_.empty()) {
      pub_rtt_us_.record(static_cast<std::uint64_t>((now - pub_sent_.front()) / 1000));
      pub_sent_.pop_front();
    }
    if (++pub_acked_ >= static_cast<std::uint64_t>(opts_.tokens)) {
      publish_done_ns_ = now;
      return;
    }
    maybe_publish(now);
  }
}

std::string load_run::build_request(int k) const {
  std::string host = opts_.host + ":" + std::to_string(opts_.port);
  if (opts_.mode == run_mode::tokens) {
    const std::string body = "{\"tokens\":" + std::to_string(opts_.tokens) +
                             ",\"bytes\":" + std::to_string(opts_.bytes) +
                             ",\"rate\":" + std::to_string(opts_.rate) + "}";
    return "POST /v1/bench/tokens HTTP/1.1\r\nHost: " + host + "\r\n" + opts_.auth_header +
           "Content-Type: application/json\r\nAccept: text/event-stream\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body;
  }
  if (opts_.mode == run_mode::fanout) {
    return "GET " + opts_.sub_path + " HTTP/1.1\r\nHost: " + host + "\r\n" + opts_.auth_header +
           "Accept: text/event-stream\r\n\r\n";
  }
  return "GET /v1/streams/" + opts_.prefix + std::to_string(k) +
         "/events HTTP/1.1\r\nHost: " + host + "\r\n" + opts_.auth_header +
         "Accept: text/event-stream\r\n\r\n";
}

void load_run::start_connections() {
  while (inflight_ < opts_.max_inflight && next_to_start_ < opts_.connections) {
    start_one(next_to_start_++);
  }
}

void load_run::start_one(int k) {
  auto c = std::make_unique<connection>(stats_, opts_);
  c->start_ns = monotonic_ns();
  const auto index = static_cast<std::uint32_t>(conns_.size());
  c->index = index;
  connection& conn = *c;
  conns_.push_back(std::move(c));
  conn.fd = socket(addr_.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (conn.fd < 0) {
    if (!opts_.json) std::fprintf(stderr, "socket: %s\n", std::strerror(errno));
    ++stats_.errors.connect;
    conn.state = phase::failed;
    ++finished_;
    return;
  }
  ++open_;
  const int one = 1;
  setsockopt(conn.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  conn.request = build_request(k);
  conn.half = opts_.mode == run_mode::fanout && opts_.second_port > 0 && k % 2 == 1 ? 1 : 0;
  const sockaddr_storage& to = conn.half == 1 ? second_addr_ : addr_;
  const socklen_t to_len = conn.half == 1 ? second_addr_len_ : addr_len_;
  if (connect(conn.fd, reinterpret_cast<const sockaddr*>(&to), to_len) < 0 &&
      errno != EINPROGRESS) {
    ++stats_.errors.connect;
    finish(conn, false);
    return;
  }
  ++inflight_;
  epoll_event ev{};
  ev.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP;
  ev.data.u32 = index;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, conn.fd, &ev) < 0) {
    std::perror("epoll_ctl");
    --inflight_;
    ++stats_.errors.connect;
    finish(conn, false);
  }
}

void load_run::finish(connection& c, bool ok) {
  if (c.state == phase::connecting || c.state == phase::writing || c.state == phase::reading_head) {
    --inflight_;
  }
  if (c.fd >= 0) {
    close(c.fd);  // also removes it from the epoll set
    c.fd = -1;
    --open_;
  }
  c.state = ok ? phase::done : phase::failed;
  ++finished_;
}

void load_run::on_writable(connection& c) {
  if (c.state == phase::connecting) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      if (!opts_.json) {
        static int shown = 0;
        if (shown++ < 3) std::fprintf(stderr, "connect: %s\n", std::strerror(err));
      }
      ++stats_.errors.connect;
      finish(c, false);
      return;
    }
    c.state = phase::writing;
  }
  if (c.state != phase::writing) return;
  while (c.written < c.request.size()) {
    const ssize_t w =
        send(c.fd, c.request.data() + c.written, c.request.size() - c.written, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;  // EPOLLOUT stays armed
      ++stats_.errors.reset;
      finish(c, false);
      return;
    }
    c.written += static_cast<std::size_t>(w);
  }
  c.request.clear();
  c.request.shrink_to_fit();
  c.state = phase::reading_head;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP;
  ev.data.u32 = c.index;
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
}

void load_run::on_readable(connection& c) {
  const ssize_t n = read(c.fd, buf_.data(), buf_.size());
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
    if (hold_until_ns_ != 0) ++closed_during_hold_;
    ++stats_.errors.reset;
    finish(c, false);
    return;
  }
  if (n == 0) {
    // EOF: fine only when the body was delimited by the close itself.
    if (hold_until_ns_ != 0) ++closed_during_hold_;
    ++stats_.errors.premature_close;
    finish(c, false);
    return;
  }
  stats_.now_realtime_us = realtime_us();
  stats_.now_monotonic_ns = monotonic_ns();
  if (stats_.first_byte_ns == 0) stats_.first_byte_ns = stats_.now_monotonic_ns;
  stats_.wire_bytes += static_cast<std::uint64_t>(n);
  const bool had_head = c.state == phase::streaming;
  const bool keep = c.on_bytes(buf_.data(), static_cast<std::size_t>(n));
  if (!had_head && c.state == phase::streaming) {
    --inflight_;
    ++headers_ok_;
  }
  if (keep) return;
  if (c.state == phase::failed) {
    finish(c, false);
    return;
  }
  // Body complete (tokens mode): check the count, then close it ourselves.
  bool ok = true;
  if (opts_.mode == run_mode::tokens && c.events != static_cast<std::uint64_t>(opts_.tokens)) {
    ++stats_.errors.short_streams;
    ok = false;
  }
  finish(c, ok);
}

void load_run::handle(std::uint32_t index, std::uint32_t events) {
  if (index == publisher_cookie) {
    if (pub_fd_ >= 0) on_publisher_readable();
    return;
  }
  connection& c = *conns_[index];
  if (c.fd < 0) return;
  if (events & EPOLLOUT) on_writable(c);
  if (c.fd < 0) return;
  if (events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) {
    if (c.state == phase::connecting || c.state == phase::writing) {
      if (events & (EPOLLERR | EPOLLHUP)) {
        ++stats_.errors.connect;
        finish(c, false);
      }
      return;
    }
    on_readable(c);
  }
}

int load_run::run() {
  const std::int64_t t0 = monotonic_ns();
  const double cpu0 = cpu_seconds_self();
  const auto deadline = t0 + static_cast<std::int64_t>(opts_.timeout_seconds * 1e9);
  if (opts_.mode == run_mode::idle && opts_.server_pid > 0) {
    rss_before_kb_ =
        opts_.baseline_rss_kb >= 0 ? opts_.baseline_rss_kb : read_vmrss_kb(opts_.server_pid);
  }
  std::vector<epoll_event> evs(1024);
  bool timed_out = false;
  for (;;) {
    start_connections();
    const std::int64_t now = monotonic_ns();
    if (opts_.mode == run_mode::tokens) {
      if (finished_ == opts_.connections) break;
    } else if (opts_.mode == run_mode::fanout) {
      if (publish_at_ns_ == 0 && next_to_start_ == opts_.connections && inflight_ == 0) {
        publish_at_ns_ = now + static_cast<std::int64_t>(opts_.settle_seconds * 1e9);
      }
      if (publish_at_ns_ != 0 && now >= publish_at_ns_ && pub_fd_ < 0 && publish_done_ns_ == 0) {
        start_publisher();
      }
      maybe_publish(now);
      if (stats_.complete_subscribers == static_cast<std::uint64_t>(opts_.connections) &&
          publish_done_ns_ != 0)
        break;
      // Deliveries still missing 5 s after the last publish count as errors.
      if (publish_done_ns_ != 0 && now - publish_done_ns_ > 5'000'000'000) break;
      if (open_ == 0 && finished_ == opts_.connections) break;
    } else {
      if (hold_until_ns_ == 0 && next_to_start_ == opts_.connections && inflight_ == 0) {
        // Every connection has its response head (or failed): the server has
        // them all registered. Sample RSS now, then hold.
        if (opts_.server_pid > 0) rss_after_kb_ = read_vmrss_kb(opts_.server_pid);
        hold_until_ns_ = now + static_cast<std::int64_t>(opts_.hold_seconds * 1e9);
      }
      if (hold_until_ns_ != 0 && (now >= hold_until_ns_ || open_ == 0)) {
        if (opts_.server_pid > 0) rss_after_hold_kb_ = read_vmrss_kb(opts_.server_pid);
        break;
      }
    }
    if (now >= deadline) {
      timed_out = true;
      break;
    }
    std::int64_t wake = deadline;
    if (hold_until_ns_ != 0) wake = std::min(wake, hold_until_ns_);
    if (publish_at_ns_ != 0 && pub_fd_ < 0 && publish_done_ns_ == 0)
      wake = std::min(wake, publish_at_ns_);
    const bool pub_may_send = pub_fd_ >= 0 && publish_done_ns_ == 0 &&
                              pub_sent_.size() < max_publish_inflight &&
                              pub_next_ <= static_cast<std::uint64_t>(opts_.tokens);
    if (pub_may_send) wake = std::min(wake, publish_due_ns(pub_next_));
    int timeout_ms;
    if (pub_may_send) {
      // Publishing at up to thousands a second needs sub-millisecond waits:
      // spin on a zero timeout when the next event is due within 1 ms.
      timeout_ms = static_cast<int>(std::clamp<std::int64_t>((wake - now) / 1'000'000, 0, 1000));
    } else {
      timeout_ms =
          static_cast<int>(std::clamp<std::int64_t>((wake - now) / 1'000'000 + 1, 0, 1000));
    }
    const int n = epoll_wait(epoll_fd_, evs.data(), static_cast<int>(evs.size()), timeout_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::perror("epoll_wait");
      break;
    }
    for (int i = 0; i < n; ++i) handle(evs[i].data.u32, evs[i].events);
  }
  // Close whatever is still open. In idle mode that is the expected end of the
  // hold; otherwise (timeout) those connections count as unfinished.
  for (auto& c : conns_) {
    if (c->fd < 0) continue;
    bool ok = opts_.mode == run_mode::idle && !timed_out && c->state == phase::streaming;
    if (opts_.mode == run_mode::fanout) {
      ok = c->last_id == static_cast<std::uint64_t>(opts_.tokens);
      if (!ok) ++stats_.errors.short_streams;
    } else if (!ok) {
      ++stats_.errors.unfinished;
    }
    finish(*c, ok);
  }
  const double wall_s = static_cast<double>(monotonic_ns() - t0) / 1e9;
  const double cpu_s = cpu_seconds_self() - cpu0;
  report(wall_s, cpu_s, timed_out);
  if (timed_out) return 2;
  return stats_.errors.total() == 0 && pub_errors_ == 0 ? 0 : 1;
}

// ---------------------------------------------------------------- report

struct json_writer {
  std::string out = "{";
  void key(std::string_view k) {
    if (out.size() > 1) out += ',';
    out += '"';
    out += k;
    out += "\":";
  }
  void str(std::string_view k, std::string_view v) {
    key(k);
    out += '"';
    out += v;
    out += '"';
  }
  void num(std::string_view k, double v) {
    key(k);
    char b[64];
    if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15) {
      std::snprintf(b, sizeof b, "%.0f", v);
    } else if (std::isfinite(v)) {
      std::snprintf(b, sizeof b, "%.6g", v);
    } else {
      std::snprintf(b, sizeof b, "null");
    }
    out += b;
  }
  void boolean(std::string_view k, bool v) {
    key(k);
    out += v ? "true" : "false";
  }
};

void load_run::report(double wall_s, double cpu_s, bool timed_out) {
  const bool tokens = opts_.mode != run_mode::idle;  // tokens or fanout
  const bool fanout = opts_.mode == run_mode::fanout;
  const char* mode_name = fanout ? "fanout" : tokens ? "tokens" : "idle";
  const double stream_p50 = exact_percentile(stats_.stream_s, 50);
  const double stream_p99 = exact_percentile(stats_.stream_s, 99);
  const double stream_max = stats_.stream_s.empty() ? 0 : stats_.stream_s.back();
  const double stream_min = stats_.stream_s.empty() ? 0 : stats_.stream_s.front();
  const double pub_window_s = pub_last_send_ns_ > pub_start_ns_
                                  ? static_cast<double>(pub_last_send_ns_ - pub_start_ns_) / 1e9
                                  : 0;
  const double pub_rate =
      pub_window_s > 0 && pub_next_ > 2 ? static_cast<double>(pub_next_ - 2) / pub_window_s : 0;
  const double window_s =
      stats_.last_event_ns > stats_.first_byte_ns
          ? static_cast<double>(stats_.last_event_ns - stats_.first_byte_ns) / 1e9
          : 0.0;
  const double events_per_s = window_s > 0 ? static_cast<double>(stats_.events) / window_s : 0;
  const double bytes_per_s = window_s > 0 ? static_cast<double>(stats_.wire_bytes) / window_s : 0;
  const double cpu_pct = wall_s > 0 ? 100.0 * cpu_s / wall_s : 0;
  const double cpu_per_million =
      stats_.events ? cpu_s / static_cast<double>(stats_.events) * 1e6 : 0;
  const auto& h = stats_.latency_us;
  const double ttfe_p50 = exact_percentile(stats_.ttfe_ms, 50);
  const double ttfe_p99 = exact_percentile(stats_.ttfe_ms, 99);
  const double ttfe_max = stats_.ttfe_ms.empty() ? 0 : stats_.ttfe_ms.back();
  const double head_p50 = exact_percentile(stats_.headers_ms, 50);
  const double head_p99 = exact_percentile(stats_.headers_ms, 99);
  const double head_max = stats_.headers_ms.empty() ? 0 : stats_.headers_ms.back();
  const std::uint64_t expected = tokens ? static_cast<std::uint64_t>(opts_.connections) *
                                              static_cast<std::uint64_t>(opts_.tokens)
                                        : 0;
  double rss_per_conn = -1;
  if (rss_before_kb_ >= 0 && rss_after_kb_ >= 0 && headers_ok_ > 0) {
    rss_per_conn = static_cast<double>(rss_after_kb_ - rss_before_kb_) * 1024.0 / headers_ok_;
  }
  const auto& e = stats_.errors;

  // Human table: stdout normally, stderr when stdout carries the JSON line.
  std::FILE* t = opts_.json ? stderr : stdout;
  std::fprintf(t, "sluice_loadgen %s  %s:%d  connections=%d", mode_name, opts_.host.c_str(),
               opts_.port, opts_.connections);
  if (tokens) {
    std::fprintf(t, " tokens=%ld bytes=%ld rate=%ld", opts_.tokens, opts_.bytes, opts_.rate);
  }
  std::fprintf(t, "\n");
  auto row = [t](const char* name, const char* fmt, auto... args) {
    std::fprintf(t, "  %-28s ", name);
    std::fprintf(t, fmt, args...);
    std::fprintf(t, "\n");
  };
  row("connections with 200 head", "%d / %d", headers_ok_, opts_.connections);
  row("time to headers p50/p99/max", "%.2f / %.2f / %.2f ms", head_p50, head_p99, head_max);
  if (tokens) {
    row("events", "%" PRIu64 " / %" PRIu64 " expected", stats_.events, expected);
    row("  via coalesced messages", "%" PRIu64 " in %" PRIu64 " messages", stats_.coalesced_events,
        stats_.coalesced_messages);
    row("interval first byte..last ev", "%.3f s", window_s);
    row("events/s", "%.0f", events_per_s);
    row("wire bytes, bytes/s", "%" PRIu64 ", %.1f MB/s", stats_.wire_bytes, bytes_per_s / 1e6);
    row("latency p50/p90/p99 (us)", "%" PRIu64 " / %" PRIu64 " / %" PRIu64, h.percentile(50),
        h.percentile(90), h.percentile(99));
    row("latency p99.9/max (us)", "%" PRIu64 " / %" PRIu64, h.percentile(99.9), h.max());
    row("TTFE p50/p99/max (ms)", "%.2f / %.2f / %.2f", ttfe_p50, ttfe_p99, ttfe_max);
    row("stream length min/p50/max", "%.3f / %.3f / %.3f s", stream_min, stream_p50, stream_max);
    if (fanout) {
      row("publisher rate achieved", "%.1f events/s (offered %ld)", pub_rate, opts_.rate);
      row("publisher late >1ms/errors", "%" PRIu64 " / %" PRIu64, pub_late_, pub_errors_);
      row("publish round trip p50/p99", "%" PRIu64 " / %" PRIu64 " us", pub_rtt_us_.percentile(50),
          pub_rtt_us_.percentile(99));
      row("subscribers complete", "%" PRIu64 " / %d", stats_.complete_subscribers,
          opts_.connections);
    }
  } else {
    if (opts_.server_pid > 0) {
      row("server VmRSS before/after", "%ld / %ld kB (after hold: %ld kB)", rss_before_kb_,
          rss_after_kb_, rss_after_hold_kb_);
      row("server RSS per connection", "%.0f bytes", rss_per_conn);
    }
    row("held for", "%.1f s", opts_.hold_seconds);
    row("closed by server in hold", "%" PRIu64, closed_during_hold_);
  }
  row("heartbeats (comments)", "%" PRIu64, stats_.heartbeats);
  row("errors", "%" PRIu64, e.total());
  row("  connect/status/reset", "%" PRIu64 " / %" PRIu64 " / %" PRIu64, e.connect, e.status,
      e.reset);
  row("  closed early/short/seq", "%" PRIu64 " / %" PRIu64 " / %" PRIu64, e.premature_close,
      e.short_streams, e.sequence);
  row("  error events/framing/unfin", "%" PRIu64 " / %" PRIu64 " / %" PRIu64, e.error_events,
      e.framing, e.unfinished);
  row("wall time", "%.3f s%s", wall_s, timed_out ? "  (TIMED OUT)" : "");
  row("loadgen CPU (user+sys)", "%.3f s = %.1f%% of wall", cpu_s, cpu_pct);
  if (tokens) row("loadgen CPU per 1M events", "%.3f s", cpu_per_million);
  if (tokens) {
    std::fprintf(t,
                 "SUMMARY %s conns=%d events=%" PRIu64 "/%" PRIu64 " events/s=%.0f p50=%" PRIu64
                 "us p99=%" PRIu64 "us ttfe_p50=%.1fms errors=%" PRIu64 " loadgen_cpu=%.1f%%%s\n",
                 mode_name, opts_.connections, stats_.events, expected, events_per_s,
                 h.percentile(50), h.percentile(99), ttfe_p50, e.total(), cpu_pct,
                 timed_out ? " TIMEOUT" : "");
  } else {
    std::fprintf(t,
                 "SUMMARY idle conns=%d/%d rss_per_conn=%.0fB heartbeats=%" PRIu64
                 " errors=%" PRIu64 " loadgen_cpu=%.1f%%%s\n",
                 headers_ok_, opts_.connections, rss_per_conn, stats_.heartbeats, e.total(),
                 cpu_pct, timed_out ? " TIMEOUT" : "");
  }
  std::fflush(t);

  if (tokens && !opts_.percentiles_file.empty()) {
    if (std::FILE* f = std::fopen(opts_.percentiles_file.c_str(), "w")) {
      std::fprintf(f, "# percentile latency_us\n");
      for (double pct : {1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 95.0, 99.0,
                         99.5, 99.9, 99.99, 100.0})
        std::fprintf(f, "%g %" PRIu64 "\n", pct, h.percentile(pct));
      std::fclose(f);
    }
  }
  if (!opts_.json) return;
  // Flat keys so shell scripts can pick a field with grep or jq.
  json_writer j;
  j.str("mode", mode_name);
  j.num("connections", opts_.connections);
  j.num("connections_with_headers", headers_ok_);
  j.num("headers_ms_p50", head_p50);
  j.num("headers_ms_p99", head_p99);
  if (tokens) {
    j.num("tokens", static_cast<double>(opts_.tokens));
    j.num("bytes", static_cast<double>(opts_.bytes));
    j.num("rate", static_cast<double>(opts_.rate));
    j.num("events", static_cast<double>(stats_.events));
    j.num("expected_events", static_cast<double>(expected));
    j.num("coalesced_events", static_cast<double>(stats_.coalesced_events));
    j.num("coalesced_messages", static_cast<double>(stats_.coalesced_messages));
    j.num("other_events", static_cast<double>(stats_.other_events));
    j.num("interval_s", window_s);
    j.num("events_per_s", std::round(events_per_s));
    j.num("wire_bytes", static_cast<double>(stats_.wire_bytes));
    j.num("wire_bytes_per_s", std::round(bytes_per_s));
    j.num("latency_us_p50", static_cast<double>(h.percentile(50)));
    j.num("latency_us_p90", static_cast<double>(h.percentile(90)));
    j.num("latency_us_p99", static_cast<double>(h.percentile(99)));
    j.num("latency_us_p999", static_cast<double>(h.percentile(99.9)));
    j.num("latency_us_max", static_cast<double>(h.max()));
    j.num("latency_samples", static_cast<double>(h.count()));
    if (opts_.second_port > 0) {
      for (int half = 0; half < 2; ++half) {
        const auto& hh = stats_.latency_us_half[half];
        const std::string sfx = half == 0 ? "_a" : "_b";
        j.num("latency_us_p50" + sfx, static_cast<double>(hh.percentile(50)));
        j.num("latency_us_p99" + sfx, static_cast<double>(hh.percentile(99)));
        j.num("latency_samples" + sfx, static_cast<double>(hh.count()));
      }
    }
    j.num("negative_latency", static_cast<double>(stats_.negative_latency));
    j.num("missing_ts", static_cast<double>(stats_.missing_ts));
    j.num("ttfe_ms_p50", ttfe_p50);
    j.num("ttfe_ms_p99", ttfe_p99);
    j.num("ttfe_ms_max", ttfe_max);
    j.num("stream_s_min", stream_min);
    j.num("stream_s_p50", stream_p50);
    j.num("stream_s_p99", stream_p99);
    j.num("stream_s_max", stream_max);
    j.num("streams_complete", static_cast<double>(stats_.stream_s.size()));
    if (fanout) {
      j.num("publish_rate", std::round(pub_rate * 10) / 10);
      j.num("publish_late", static_cast<double>(pub_late_));
      j.num("publish_errors", static_cast<double>(pub_errors_));
      j.num("publish_rtt_us_p50", static_cast<double>(pub_rtt_us_.percentile(50)));
      j.num("publish_rtt_us_p99", static_cast<double>(pub_rtt_us_.percentile(99)));
      j.num("subscribers_complete", static_cast<double>(stats_.complete_subscribers));
    }
  } else {
    j.str("prefix", opts_.prefix);
    j.num("server_pid", static_cast<double>(opts_.server_pid));
    j.num("rss_before_kb", static_cast<double>(rss_before_kb_));
    j.num("rss_after_kb", static_cast<double>(rss_after_kb_));
    j.num("rss_after_hold_kb", static_cast<double>(rss_after_hold_kb_));
    j.num("rss_per_conn_bytes", std::round(rss_per_conn));
    j.num("hold_s", opts_.hold_seconds);
    j.num("closed_during_hold", static_cast<double>(closed_during_hold_));
  }
  j.num("heartbeats", static_cast<double>(stats_.heartbeats));
  j.num("retry_fields", static_cast<double>(stats_.retry_fields));
  j.num("errors", static_cast<double>(e.total()));
  j.num("errors_connect", static_cast<double>(e.connect));
  j.num("errors_status", static_cast<double>(e.status));
  j.num("errors_reset", static_cast<double>(e.reset));
  j.num("errors_premature_close", static_cast<double>(e.premature_close));
  j.num("errors_error_events", static_cast<double>(e.error_events));
  j.num("errors_short_streams", static_cast<double>(e.short_streams));
  j.num("errors_sequence", static_cast<double>(e.sequence));
  j.num("errors_framing", static_cast<double>(e.framing));
  j.num("errors_unfinished", static_cast<double>(e.unfinished));
  j.num("wall_s", wall_s);
  j.num("loadgen_cpu_s", cpu_s);
  j.num("loadgen_cpu_pct", cpu_pct);
  if (tokens) j.num("loadgen_cpu_s_per_million_events", cpu_per_million);
  j.boolean("timed_out", timed_out);
  j.out += '}';
  std::printf("%s\n", j.out.c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const options opts = parse_options(argc, argv);
  std::signal(SIGPIPE, SIG_IGN);
  raise_nofile_limit();
  load_run run(opts);
  return run.run();
}
