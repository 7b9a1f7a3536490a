#include "agents/run_service.hpp"

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

run_service::run_service(core::stream_registry& registry, agent_env env,
                         std::chrono::milliseconds detach_grace)
    : registry_(registry), env_(env), detach_grace_(detach_grace) {}

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

boost::system::result<started_run> run_service::start(agent_request request,
                                                      run_endpoint endpoint,
                                                      const net::any_io_executor& ex) {
  auto created = registry_.create(request.request_id, request.owner);
  if (!created) {
    if (created.error() != core::make_error_code(core::registry_error::already_exists))
      return created.error();
    if (auto existing = registry_.find(request.request_id)) return started_run{existing, false};
    return created.error();
  }
  auto log = *created;
  if (detach_grace_.count() > 0)
    log->cancel_when_unread(std::chrono::duration_cast<std::chrono::microseconds>(detach_grace_).count());

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
          signal->slot(), [out, log, signal, cancel_id](std::exception_ptr e) {
            log->remove_cancel_handler(cancel_id);
            if (out->ended()) return;  // result, error or cancelled: already final
            std::string message = "the agent ended without a result";
            if (e) {
              try {
                std::rethrow_exception(e);
              } catch (const std::exception& ex) {
                message = std::string("the agent failed: ") + ex.what();
              } catch (...) {
                message = "the agent failed";
              }
              spdlog::error("run {}: {}", out->request_id(), message);
            }
            boost::json::object f;
            f["error"] = message;
            f["message"] = message;
            out->send("error", "error", std::move(f), true);
          }));
  return started_run{log, true};
}

}  // namespace sluice::agents
