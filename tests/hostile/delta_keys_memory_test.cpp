// The per-stream delta-key state is O(1) whatever message ids clients send:
// after the retention window is full, publishing 100k deltas with distinct
// ids grows no live heap memory. Counted with a replaced global operator
// new/delete (this binary only), so no timing and no process-wide RSS.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "core/coalescer.hpp"
#include "core/stream_log.hpp"

namespace {
std::atomic<long long> live_bytes{0};
}

void* operator new(std::size_t n) {
  void* p = std::malloc(n + 16);
  if (p == nullptr) throw std::bad_alloc();
  *static_cast<std::size_t*>(p) = n;
  live_bytes.fetch_add(static_cast<long long>(n), std::memory_order_relaxed);
  return static_cast<char*>(p) + 16;
}
void operator delete(void* p) noexcept {
  if (p == nullptr) return;
  char* base = static_cast<char*>(p) - 16;
  live_bytes.fetch_sub(static_cast<long long>(*reinterpret_cast<std::size_t*>(base)),
                       std::memory_order_relaxed);
  std::free(base);
}
void operator delete(void* p, std::size_t) noexcept {
  operator delete(p);
}

namespace sluice {
namespace {

void publish_deltas(core::stream_log& log, int from, int to) {
  for (int i = from; i < to; ++i) {
    boost::json::object o;
    o["text"] = "x";
    // A long id (no small-string optimisation): each distinct one costs heap.
    auto d = core::make_delta_event("agent_stream", "message-id-that-is-long-" + std::to_string(i),
                                    "text", o);
    ASSERT_TRUE(d);
    log.publish(*d);
  }
}

TEST(DeltaKeys, DistinctMessageIdsDoNotGrowMemory) {
  core::retention_limits lim;
  lim.max_events = 1000;
  lim.max_bytes = 1u << 20;
  core::stream_log log("s", lim);
  publish_deltas(log, 0, 10'000);  // the window is full; buffers at their size
  const long long before = live_bytes.load();
  publish_deltas(log, 10'000, 110'000);
  const long long grown = live_bytes.load() - before;
  // The old key list grew ~100 bytes per id (10 MB here).
  EXPECT_LT(grown, 256 * 1024) << "live heap grew by " << grown << " bytes";
  EXPECT_EQ(log.status().last_sequence, 110'000u);
}

}  // namespace
}  // namespace sluice
