#include "core/after_publish.hpp"

namespace sluice::core {
namespace {

// Constant-initialized: no thread_local wrapper call on the publish path.
struct hook_state {
  after_publish_fn fn = nullptr;
  void* ctx = nullptr;
  bool running = false;
};
thread_local hook_state t_hook;

}  // namespace

void set_after_publish_hook(after_publish_fn fn, void* ctx) noexcept {
  t_hook.fn = fn;
  t_hook.ctx = ctx;
}

void after_publish() noexcept {
  hook_state& h = t_hook;
  if (h.fn == nullptr || h.running) return;
  h.running = true;
  h.fn(h.ctx);
  h.running = false;
}

}  // namespace sluice::core
