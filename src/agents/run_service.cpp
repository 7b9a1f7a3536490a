#include "agents/run_service.hpp"

#include <spdlog/spdlog.h>
#include "core/log_text.hpp"

#include <atomic>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>
#include <stdexcept>

namespace sluice::agents {

namespace net = boost::asio;

namespace {
class run_category_impl : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "sluice.runs"; }
  std::string message(int ev) const override {
    switch (static_cast<run_error>(ev)) {
      case run_error::too_many_runs:
        return "the limit of agent runs at once is reached";
      case run_error::too_many_runs_for_subject:
        return "the limit of agent runs at once for this subject is reached";
    }
    return "unknown run error";
  }
};
}  // namespace

const boost::system::error_category& run_category() {
  static const run_category_impl instance;
  return instance;
}

bool run_service::run_counts::reserve(std::string_view subject, const run_limits& limits,
                                      boost::system::error_code& ec) {
  std::lock_guard lock(mutex);
  if (limits.max_runs != 0 && total >= limits.max_runs) {
    ec = make_error_code(run_error::too_many_runs);
    return false;
  }
  auto it = by_subject.find(std::string(subject));
  const std::size_t mine = it == by_subject.end() ? 0 : it->second;
  if (limits.max_runs_per_subject != 0 && mine >= limits.max_runs_per_subject) {
    ec = make_error_code(run_error::too_many_runs_for_subject);
    return false;
  }
  ++total;
  ++by_subject[std::string(subject)];
  return true;
}

void run_service::run_counts::release(const std::string& subject) {
  std::lock_guard lock(mutex);
  --total;
  if (auto it = by_subject.find(subject); it != by_subject.end() && --it->second == 0)
    by_subject.erase(it);
}

run_service::run_service(core::stream_registry& registry, agent_env env,
                         std::chrono::milliseconds detach_grace, run_limits limits)
    : registry_(registry), env_(env), detach_grace_(detach_grace), limits_(limits) {}

std::size_t run_service::running() const {
  std::lock_guard lock(counts_->mutex);
  return counts_->total;
}

std::size_t run_service::running_for(std::string_view subject) const {
  std::lock_guard lock(counts_->mutex);
  auto it = counts_->by_subject.find(std::string(subject));
  return it == counts_->by_subject.end() ? 0 : it->second;
}

std::string run_service::new_request_id() {
  // 128 bits from OpenSSL's CSPRNG: a run id is unguessable (ownership, not
  // secrecy, guards runs with --auth jwt; with --auth none it is all there is).
  unsigned char raw[16];
  if (RAND_bytes(raw, sizeof raw) != 1) throw std::runtime_error("RAND_bytes failed");
  static constexpr char digits[] = "0123456789abcdef";
  std::string id = "run-";
  for (unsigned char c : raw) {
    id += digits[c >> 4];
    id += digits[c & 15];
  }
  return id;
}

boost::system::result<started_run> run_service::start(agent_request request, run_endpoint endpoint,
                                                      const net::any_io_executor& ex,
                                                      std::string_view subject) {
  // A retried start attaches to its run: no budget is charged for that.
  if (auto existing = registry_.find(request.request_id)) return started_run{existing, false};
  boost::system::error_code budget_ec;
  if (!counts_->reserve(subject, limits_, budget_ec)) return budget_ec;
  // Released when the run's coroutine has ended, whatever the outcome.
  struct run_slot {
    std::shared_ptr<run_counts> counts;
    std::string subject;
    run_slot(std::shared_ptr<run_counts> c, std::string s)
        : counts(std::move(c)), subject(std::move(s)) {}
    run_slot(run_slot&&) = default;
    ~run_slot() {
      if (counts) counts->release(subject);
    }
  };
  auto slot = std::make_shared<run_slot>(counts_, std::string(subject));
  auto created = registry_.create(request.request_id, request.owner);
  if (!created) {
    if (created.error() != core::make_error_code(core::registry_error::already_exists))
      return created.error();
    if (auto existing = registry_.find(request.request_id)) return started_run{existing, false};
    return created.error();
  }
  auto log = *created;
  log->set_local_producer();  // a restart ends the run "interrupted" (docs/durability.md)
  if (detach_grace_.count() > 0)
    log->cancel_when_unread(
        std::chrono::duration_cast<std::chrono::microseconds>(detach_grace_).count());

  const bool tool = endpoint == run_endpoint::deepsearch_tool;
  auto out = std::make_shared<stream_printer>(log, request.request_id, tool ? "data" : "message",
                                              tool ? "error" : "message");
  // Stream cancellation -> the coroutine's cancellation slot, on its executor.
  auto signal = std::make_shared<net::cancellation_signal>();
  const std::uint64_t cancel_id = log->on_cancel([ex, signal] {
    net::post(ex, [signal] { signal->emit(net::cancellation_type::terminal); });
  });
  agent_env env = env_;
  net::co_spawn(
      ex,
      [env, request = std::move(request), out, tool]() -> net::awaitable<void> {
        if (tool)
          co_await run_deepsearch_tool(env, request, *out);
        else
          co_await run_agent(env, request, *out);
      },
      net::bind_cancellation_slot(
          signal->slot(), [out, log, signal, cancel_id, slot](std::exception_ptr e) {
            log->remove_cancel_handler(cancel_id);
            if (out->ended()) return;  // result, error or cancelled: already final
            std::string message = "the agent ended without a result";
            if (e) {
              // The exception's text is for the operator's log, never the
              // client: it may name hosts, files or internals.
              message = "the agent failed on the server (internal_error)";
              try {
                std::rethrow_exception(e);
              } catch (const std::exception& ex) {
                spdlog::error("run {}: the agent threw: {}", out->request_id(),
                              core::log_escape(ex.what()));
              } catch (...) {
                spdlog::error("run {}: the agent threw a non-exception", out->request_id());
              }
            }
            boost::json::object f;
            f["error"] = message;
            f["message"] = message;
            out->send("error", "error", std::move(f), true);
          }));
  return started_run{log, true};
}

}  // namespace sluice::agents
