// Starts agent runs as producers of stream logs, and ends them:
// - a run is a stream whose id is its requestId; starting a run whose id
//   exists attaches to it instead (idempotent: clients that retry the POST
//   resume, never re-run);
// - cancelling the stream (POST /v1/streams/{id}/cancel, or nobody reading
//   it for the detach grace) cancels the agent's coroutine, which closes any
//   model connection at once;
// - whatever happens (return, exception, cancellation) the run ends with
//   exactly one final message.
//
// Budgets: at most max_runs runs at once in total and max_runs_per_subject
// per subject (who started it: the token's sub, or the client address); a
// start past either fails with run_error::too_many_runs /
// too_many_runs_for_subject and creates nothing. Attaching to a running run
// (same requestId) is not a new run.
//
// Thread-safety: start() may be called from any thread; each run lives on the
// executor it was started on.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/system/result.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "agents/agents.hpp"
#include "core/stream_registry.hpp"

namespace sluice::agents {

enum class run_endpoint { agent, deepsearch_tool };

struct run_limits {
  std::size_t max_runs = 64;             // runs at once in total (0: no limit)
  std::size_t max_runs_per_subject = 8;  // runs at once per subject (0: no limit)
};

enum class run_error { too_many_runs = 1, too_many_runs_for_subject };
const boost::system::error_category& run_category();
inline boost::system::error_code make_error_code(run_error e) {
  return {static_cast<int>(e), run_category()};
}

struct started_run {
  std::shared_ptr<core::stream_log> log;
  bool created = false;  // false: attached to an existing run
};

class run_service {
 public:
  // `detach_grace`: cancel a run nobody has read for this long (0: never).
  run_service(core::stream_registry& registry, agent_env env,
              std::chrono::milliseconds detach_grace, run_limits limits = {});

  // `subject` owns the run's stream and is charged for it (see run_limits).
  // Errors: a core::registry_error (stream budgets) or a run_error.
  boost::system::result<started_run> start(agent_request request, run_endpoint endpoint,
                                           const boost::asio::any_io_executor& ex,
                                           std::string_view subject = {});

  // Runs in progress, in total and for one subject.
  std::size_t running() const;
  std::size_t running_for(std::string_view subject) const;

  const agent_env& env() const { return env_; }
  core::stream_registry& registry() const { return registry_; }
  // A fresh id for requests that bring none: "run-" and 32 hex digits
  // (128 bits from RAND_bytes).
  static std::string new_request_id();

 private:
  // Counts of runs in progress; shared with each run's completion handler.
  struct run_counts {
    mutable std::mutex mutex;
    std::size_t total = 0;                                    // guarded by mutex
    std::unordered_map<std::string, std::size_t> by_subject;  // guarded by mutex
    bool reserve(std::string_view subject, const run_limits& limits, boost::system::error_code& ec);
    void release(const std::string& subject);
  };

  core::stream_registry& registry_;
  agent_env env_;
  std::chrono::milliseconds detach_grace_;
  run_limits limits_;
  std::shared_ptr<run_counts> counts_ = std::make_shared<run_counts>();
};

}  // namespace sluice::agents

template <>
struct boost::system::is_error_code_enum<sluice::agents::run_error> : std::true_type {};
