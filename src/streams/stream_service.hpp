// The stream operations, once, for every transport: publish, subscribe (open
// a cursor), status, cancel, share links, and starting (or attaching to) a
// producer run. HTTP (transport/routes) and WebSocket (transport/ws_dispatch)
// only translate their input into these calls and render the result or the
// typed error; storage (today core::stream_registry in memory) sits below.
//
// Every op takes the caller (`who`: the verified token's principal, or
// principal::anyone with --auth none; null when no token was presented) and
// typed inputs, and returns a value or an op_error. Access checks (see
// docs/security.md) and the stream and memory budgets are decided here and
// nowhere else.
//
// No sockets, no HTTP, no WebSocket framing: unit-tested without a server
// (tests/streams). Producers are not known either: app/ plugs its agent runs
// in through run_launcher.
//
// Thread-safety: after construction and set_run_launcher(), every op may be
// called from any thread concurrently (the registry and the logs are
// thread-safe; the service's own state is immutable).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/json/fwd.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "auth/jwt.hpp"
#include "auth/principal.hpp"
#include "core/stream_log.hpp"
#include "core/stream_registry.hpp"

namespace sluice::streams {

// Why an op was refused. `code` is the protocol's error code (the same on
// HTTP and WebSocket), `http_status` what HTTP answers, and `retry_after_s`
// (0: none) the Retry-After of a budget's refusal.
struct op_error {
  std::string code;
  unsigned http_status = 400;
  std::string message;
  int retry_after_s = 0;
  // history_truncated: the first sequence the stream still has (a client
  // restarts from scratch; HTTP and WebSocket errors carry it).
  std::optional<std::uint64_t> first_available = std::nullopt;
};

// A value or an op_error.
template <class T>
class op_result {
 public:
  op_result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
  op_result(op_error error) : v_(std::in_place_index<1>, std::move(error)) {}
  explicit operator bool() const { return v_.index() == 0; }
  T& operator*() { return std::get<0>(v_); }
  const T& operator*() const { return std::get<0>(v_); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  const op_error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, op_error> v_;
};

// The refusals every layer shares.
op_error forbidden(std::string message);
op_error stream_not_found();  // 404: also what a stream the caller may not see looks like
// A stream registry budget's refusal (too_many_streams: 503,
// too_many_streams_for_subject: 429, memory_budget_exceeded: 503, with
// Retry-After 5; already_exists: 409 stream_exists).
op_error registry_refusal(const boost::system::error_code& ec);

// Parses a Last-Event-ID value: `digits` (at most 18: fits in 63 bits) or
// `digits-epoch` (see core/event_id.hpp); nullopt for anything else.
using core::event_id;
using core::parse_event_id;

// What an HTTP server counts at /metrics; the transport implements it.
class op_counters {
 public:
  virtual void published(std::size_t events) noexcept = 0;
  virtual void resumed() noexcept = 0;

 protected:
  ~op_counters() = default;
};

struct service_config {
  // The --auth jwt verifier (null with --auth none). With one, share links
  // are minted tokens; without, anyone may link and the link needs none.
  std::shared_ptr<const auth::verifier> verifier;
  std::int64_t link_ttl_s = 86'400;
  bool coalesce = true;  // the server's --coalesce: readers may opt out, not in
};

// ---- publish -------------------------------------------------------------

struct publish_input {
  std::string_view type = core::default_event_type;  // the event name
  // The data: one JSON value, or (ndjson) one per line, published all or
  // nothing as consecutive events.
  std::string_view body;
  bool ndjson = false;
  bool final = false;  // the (last) event ends the stream
  // A text delta of message `delta_of`: its `delta_field` string member is
  // what coalescing concatenates.
  std::optional<std::string_view> delta_of;
  std::string_view delta_field = "text";
};

// Set on a publish's result when acknowledgements wait for the disk
// (--fsync always, see core/stream_store.hpp): call it with a completion that
// receives true once the events are durable, false when they could not be
// written (answer 503 store_unavailable). It may complete on any thread.
using durable_wait = std::function<void(std::function<void(bool)>)>;

struct publish_result {
  std::uint64_t first_sequence = 0;
  std::uint64_t last_sequence = 0;
  durable_wait wait_durable;  // empty: the acknowledgement can go at once
};

// ---- subscribe -----------------------------------------------------------

struct subscribe_input {
  // The client's Last-Event-ID, unparsed (as received); none: from the first
  // retained event.
  std::optional<std::string_view> last_event_id;
  bool coalesce = true;  // false: the reader opted out of coalescing
};

// Where a reader's cursor starts. `complete`: the client already has the
// final event (HTTP 204, WebSocket "end"); `stream` is then still set.
struct cursor_start {
  std::shared_ptr<core::stream_log> stream;
  std::uint64_t next_sequence = 1;
  bool coalesce = true;
  bool complete = false;
  // Set when a new reader (no Last-Event-ID) starts after the stream's start,
  // which is no longer retained: the first sequence it will get.
  std::optional<std::uint64_t> history_truncated_at;
};

// ---- status, cancel, share links -------------------------------------------

struct stream_info {
  std::string id;
  core::stream_status status;
};

struct cancel_result {
  std::uint64_t sequence = 0;  // the stream's last sequence (its final event)
};

struct share_link {
  std::string stream;
  std::string path;                  // "/v1/streams/{id}/events"
  std::optional<std::string> token;  // none with --auth none
  std::int64_t expires_at = 0;       // unix seconds (with a token)
};

// ---- runs ------------------------------------------------------------------

// What a started run answers: its stream, and whether it was created now
// (false: attached to the run already holding that request id).
struct run_started {
  std::shared_ptr<core::stream_log> stream;
  bool created = false;
  bool wants_stream = true;  // false: the caller asked only for the final event
};

// A run request accepted by a launcher's plan(): the run's id (its stream id:
// a client attaches to a run by sending the same request id again) and how
// to start it.
struct run_plan {
  std::string request_id;
  bool wants_stream = true;
  // Starts the run (or finds the one holding request_id) on `executor`,
  // charged to and owned by `owner`. Errors are typed (budgets: use
  // registry_refusal for the registry's).
  std::function<op_result<run_started>(const boost::asio::any_io_executor& executor,
                                       std::string_view owner)>
      launch;
};

// What app/ plugs in to make runs (agents) startable by every transport.
// Thread-safety: plan() from any thread; launch() on the thread whose
// executor it is given.
class run_launcher {
 public:
  // Validates `request` (the endpoint's JSON body; `endpoint` names which
  // API it came from, e.g. "agent" or "deepsearch_tool"). No effect.
  virtual op_result<run_plan> plan(std::string_view endpoint,
                                   const boost::json::value& request) const = 0;
  virtual ~run_launcher() = default;
};

struct run_input {
  std::string_view endpoint = "agent";
  const boost::json::value* request = nullptr;  // required
  // The caller resumes (sent a Last-Event-ID): a run that does not exist is
  // then 404 instead of a new run.
  bool resuming = false;
  boost::asio::any_io_executor executor;  // where a new producer runs
};

// ---- a shared store below (many nodes) ---------------------------------------

template <class T>
using op_callback = std::function<void(op_result<T>)>;

// One event of a publish, owned (it outlives the request while the store
// answers).
struct owned_event {
  std::string type;
  std::string data;
  // A text delta (?delta=): its message id and field (`data` is then its
  // compact JSON, core::make_delta_event's); empty delta_of: not a delta.
  std::string delta_of = {};
  std::string delta_field = {};
};

// What the service needs from a store that keeps streams beyond this process
// (cluster/cluster_node: Redis behind many nodes). Validation and access
// decisions stay in the service: the backend says who owns a stream and asks
// `check` (on any thread) before it acts; `check` returns the refusal, if
// any. Completions may run on any thread, exactly once.
class stream_backend {
 public:
  using access_check = std::function<std::optional<op_error>(const std::string& owner)>;
  virtual ~stream_backend() = default;

  // Appends `events` to stream `id` (created, owned by `owner`, when absent),
  // all or nothing; the last one ends it when `final`.
  virtual void publish(std::string id, std::string owner, std::vector<owned_event> events,
                       bool final, op_callback<publish_result> done) = 0;
  // A local log holding stream `id` (a mirror, or the local producer's own
  // log), caught up at least to the store's head and to `after`. A stream
  // that does not exist: with `create_pending`, a local mirror that waits
  // for its first event; else stream_not_found.
  virtual void open(std::string id, std::optional<std::uint64_t> after, bool create_pending,
                    access_check check, op_callback<std::shared_ptr<core::stream_log>> done) = 0;
  virtual void status(std::string id, access_check check, op_callback<stream_info> done) = 0;
  virtual void cancel(std::string id, std::string reason, access_check check,
                      op_callback<cancel_result> done) = 0;
  // Starts a run (or attaches to the one holding request_id, on any node).
  // `launch` starts the producer here (called on the executor it was given);
  // `check` decides an attach; `resuming`: a run that does not exist is 404.
  virtual void start_run(std::string request_id, std::string owner, bool resuming,
                         access_check check, std::function<op_result<run_started>()> launch,
                         boost::asio::any_io_executor launch_on, op_callback<run_started> done) = 0;
};

class stream_service {
 public:
  // Throws std::runtime_error when link_ttl_s is not 1..31622400.
  stream_service(core::stream_registry& registry, service_config config,
                 op_counters* counters = nullptr);

  // Runs: set before serving. Null: start answers 503 start_unavailable.
  void set_run_launcher(std::shared_ptr<const run_launcher> launcher) {
    launcher_ = std::move(launcher);
  }
  bool runs_available() const { return launcher_ != nullptr; }

  // The caller may act at all: a token that expired after it was verified
  // (a WebSocket keeps its upgrade's) is refused with 401.
  std::optional<op_error> check_expiry(const auth::principal* who) const;
  // check_expiry, then a token must have been presented (401).
  std::optional<op_error> check_caller(const auth::principal* who) const;
  // check_caller, then the token must carry sluice.run (403): for anything
  // that makes the server work (runs, benchmarks).
  std::optional<op_error> check_run(const auth::principal* who) const;

  // Publishes to stream `id` (created, owned by the caller, when absent).
  // Needs sluice.publish covering id. All or nothing: every value is
  // validated before anything is appended.
  op_result<publish_result> publish(const auth::principal* who, std::string_view id,
                                    const publish_input& in);

  // Opens a reader of stream `id`. Needs a subscribe pattern covering id or
  // ownership; otherwise, and for a resume of a stream that does not exist,
  // 404 or 409 as documented.
  //
  // The resume rule (epochs, see core/event_id.hpp): a Last-Event-ID in the
  // stream's current epoch resumes after it (409 unknown_last_event_id past
  // the last event); one in the previous epoch (no epoch, when the previous
  // was none) resumes when its sequence is before the boundary; `0` (the
  // client has nothing) is always accepted. Anything else (another or an
  // unknown epoch, the previous epoch at or past the boundary, an epoch for
  // a stream without one) is 409 history_truncated with first_available:
  // the events after that id may differ from what the client saw. A stream that does not exist yet
  // is created pending (it expires unpublished), charged to the caller's budget, owned by nobody.
  op_result<cursor_start> subscribe(const auth::principal* who, std::string_view id,
                                    const subscribe_input& in);
  // Where a reader of `stream` starts (the caller's access already decided:
  // a run it started or attached to). Honours Last-Event-ID.
  op_result<cursor_start> open_cursor(std::shared_ptr<core::stream_log> stream,
                                      const subscribe_input& in);

  // Needs a subscribe pattern or ownership (else 404).
  op_result<stream_info> status(const auth::principal* who, std::string_view id) const;
  // Ends an open stream with a final `error` event {"code":"cancelled"}.
  // Needs sluice.publish covering id or ownership (else 404); `reason`:
  // UTF-8 text of at most 256 bytes.
  op_result<cancel_result> cancel(const auth::principal* who, std::string_view id,
                                  std::optional<std::string_view> reason);
  // A read-only link to stream `id`. Owner only with --auth jwt (else 404).
  op_result<share_link> create_share_link(const auth::principal* who, std::string_view id) const;

  // Starts a run, or attaches to the run with the request's id. Needs
  // sluice.run; attaching needs ownership or a subscribe pattern (else 404,
  // as for a resume of a run that does not exist). The caller then opens a
  // cursor with open_cursor(result.stream, ...).
  op_result<run_started> start_run(const auth::principal* who, const run_input& in);

  core::stream_registry& registry() { return registry_; }
  const auth::verifier* verifier() const { return config_.verifier.get(); }

  // --- The same ops, asynchronous: what transports call. Without a backend
  // they complete inline (on the calling thread) exactly as the synchronous
  // ops; with one (set before serving) they complete on any thread once the
  // shared store answered. `who` is kept alive until then.
  void set_backend(std::shared_ptr<stream_backend> backend) { backend_ = std::move(backend); }
  stream_backend* backend() const { return backend_.get(); }
  void publish_async(std::shared_ptr<const auth::principal> who, std::string_view id,
                     const publish_input& in, op_callback<publish_result> done);
  void subscribe_async(std::shared_ptr<const auth::principal> who, std::string_view id,
                       const subscribe_input& in, op_callback<cursor_start> done);
  void status_async(std::shared_ptr<const auth::principal> who, std::string_view id,
                    op_callback<stream_info> done);
  void cancel_async(std::shared_ptr<const auth::principal> who, std::string_view id,
                    std::optional<std::string_view> reason, op_callback<cancel_result> done);
  void start_run_async(std::shared_ptr<const auth::principal> who, const run_input& in,
                       op_callback<run_started> done);

 private:
  bool may_read(const auth::principal& who, std::string_view id,
                const std::shared_ptr<core::stream_log>& existing) const;
  // A publish's checks and its events, as a backend stores them (a delta as
  // its compact JSON).
  std::optional<op_error> prepare_publish(const auth::principal* who, std::string_view id,
                                          const publish_input& in,
                                          std::vector<owned_event>& events) const;

  core::stream_registry& registry_;
  const service_config config_;
  op_counters* const counters_;
  std::shared_ptr<const run_launcher> launcher_;
  std::shared_ptr<stream_backend> backend_;
};

// Runs an asynchronous op: returns its result when it completed inline,
// else nullopt, and `later` gets the result (on the completing thread).
template <class T>
std::optional<op_result<T>> complete_inline_or_later(
    const std::function<void(op_callback<T>)>& start, op_callback<T> later) {
  struct state {
    std::mutex m;
    std::optional<op_result<T>> result;
    bool returned = false;
    op_callback<T> later;
  };
  auto st = std::make_shared<state>();
  st->later = std::move(later);
  start([st](op_result<T> r) {
    std::unique_lock lock(st->m);
    if (!st->returned) {
      st->result.emplace(std::move(r));
      return;
    }
    lock.unlock();
    st->later(std::move(r));
  });
  std::lock_guard lock(st->m);
  st->returned = true;
  if (st->result) return std::move(st->result);
  return std::nullopt;
}

}  // namespace sluice::streams
