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
// Thread-safety: start() may be called from any thread; each run lives on the
// executor it was started on.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/system/result.hpp>

#include "agents/agents.hpp"
#include "core/stream_registry.hpp"

namespace sluice::agents {

enum class run_endpoint { agent, deepsearch_tool };

struct started_run {
  std::shared_ptr<core::stream_log> log;
  bool created = false;  // false: attached to an existing run
};

class run_service {
 public:
  // `detach_grace`: cancel a run nobody has read for this long (0: never).
  run_service(core::stream_registry& registry, agent_env env,
              std::chrono::milliseconds detach_grace);

  boost::system::result<started_run> start(agent_request request, run_endpoint endpoint,
                                           const boost::asio::any_io_executor& ex);

  const agent_env& env() const { return env_; }
  // A fresh id for requests that bring none: "run-" and 32 hex digits
  // (128 bits from RAND_bytes).
  static std::string new_request_id();

 private:
  core::stream_registry& registry_;
  agent_env env_;
  std::chrono::milliseconds detach_grace_;
};

}  // namespace sluice::agents
