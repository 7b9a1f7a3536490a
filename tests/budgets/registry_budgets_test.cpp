// The core's budgets with explicit times (no sockets): retained-memory
// accounting, eviction of finished streams oldest first before anything is
// refused, pending streams that expire unpublished, streams per owner.
#include <gtest/gtest.h>

#include <string>

#include "core/stream_registry.hpp"
#include "support/core_decode.hpp"

namespace {

using namespace sluice::core;
using namespace sluice::test;

constexpr std::int64_t second = 1'000'000;

// Distinct finish times for the eviction order: waits (on the clock, bounded
// by its resolution) until realtime_us() moves past `t`.
void pass_microsecond(std::int64_t t) {
  while (realtime_us() <= t) {
  }
}

std::string payload(std::size_t n) {
  return "\"" + std::string(n, 'x') + "\"";
}

std::shared_ptr<stream_log> make(stream_registry& r, const std::string& id,
                                 const std::string& owner = {}) {
  auto log = r.get_or_create(id, owner);
  EXPECT_TRUE(log) << id << ": " << log.error().message();
  return log ? *log : nullptr;
}

TEST(MemoryBudget, AccountsPublishTrimAndFreeingExactly) {
  registry_config c;
  c.retention.max_events = 3;
  stream_registry r(c);
  auto a = make(r, "a");
  a->publish("message", payload(100));
  a->publish("message", payload(200));
  EXPECT_EQ(r.memory_used(), static_cast<std::int64_t>(a->status().retained_bytes));
  for (int i = 0; i < 5; ++i) a->publish("message", payload(300));  // trimmed to 3 events
  EXPECT_EQ(a->status().retained_events, 3u);
  EXPECT_EQ(r.memory_used(), static_cast<std::int64_t>(a->status().retained_bytes));
  auto b = make(r, "b");
  b->publish("message", payload(50));
  b->cancel("test");
  EXPECT_EQ(r.memory_used(),
            static_cast<std::int64_t>(a->status().retained_bytes + b->status().retained_bytes));
  const auto a_bytes = static_cast<std::int64_t>(a->status().retained_bytes);
  // b ends, ages out and is freed: its bytes leave the account.
  b.reset();
  r.sweep(realtime_us() + c.finished_ttl_us + second);
  EXPECT_EQ(r.find("b"), nullptr);
  EXPECT_EQ(r.memory_used(), a_bytes);
}

TEST(MemoryBudget, EvictsFinishedStreamsOldestFirstBeforeRefusingOpenOnes) {
  registry_config c;
  c.memory_budget_bytes = 10'000;
  stream_registry r(c);
  // Three finished streams of ~4 KB each, finished in the order b, a, c.
  for (const char* id : {"b", "a", "c"}) {
    auto log = make(r, id);
    log->publish("message", payload(4000), /*final=*/true);
    pass_microsecond(log->status().finished_us);
  }
  EXPECT_GT(r.memory_used(), 10'000);
  // At the budget: the oldest finished (b) goes, enough to get under 90%.
  EXPECT_TRUE(r.memory_available(realtime_us()));
  EXPECT_EQ(r.find("b"), nullptr);
  EXPECT_NE(r.find("a"), nullptr);
  EXPECT_NE(r.find("c"), nullptr);

  // An open stream grows: a (now oldest finished) goes next, then c; an open
  // stream is never evicted.
  auto open = make(r, "open");
  open->publish("message", payload(4000));
  EXPECT_TRUE(r.memory_available(realtime_us()));
  EXPECT_EQ(r.find("a"), nullptr);
  EXPECT_NE(r.find("c"), nullptr);
  open->publish("message", payload(4000));
  EXPECT_TRUE(r.memory_available(realtime_us()));
  EXPECT_EQ(r.find("c"), nullptr);
  EXPECT_NE(r.find("open"), nullptr);

  // Only open streams left and still over: refused, in publish and creation.
  open->publish("message", payload(4000));
  const std::int64_t t0 = realtime_us();
  EXPECT_FALSE(r.memory_available(t0));
  auto refused = r.get_or_create("new");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), make_error_code(registry_error::memory_budget_exceeded));
  EXPECT_EQ(r.find("new"), nullptr);
  auto refused_pending = r.get_or_create_pending("new2");
  ASSERT_FALSE(refused_pending);
  EXPECT_EQ(refused_pending.error(), make_error_code(registry_error::memory_budget_exceeded));

  // Once the open stream finishes, a later check evicts it and admits again.
  open->publish("message", payload(10), true);
  open.reset();
  EXPECT_TRUE(r.memory_available(t0 + second));
  EXPECT_EQ(r.find("open"), nullptr);
  EXPECT_TRUE(r.get_or_create("new"));
}

TEST(MemoryBudget, AFinishedStreamSomeoneReadsIsNotEvicted) {
  registry_config c;
  c.memory_budget_bytes = 5'000;
  stream_registry r(c);
  auto read = make(r, "read");
  read->publish("message", payload(4000), true);
  counting_waiter w;
  subscription sub(read, 1, w);
  auto idle = make(r, "idle");
  pass_microsecond(read->status().finished_us);
  idle->publish("message", payload(4000), true);
  idle.reset();
  EXPECT_TRUE(r.memory_available(realtime_us()));
  EXPECT_NE(r.find("read"), nullptr);  // older, but being read
  EXPECT_EQ(r.find("idle"), nullptr);
}

TEST(PendingStream, ExpiresUnpublishedWithAFinalErrorEventAndIsFreed) {
  registry_config c;
  c.pending_limit_us = 60 * second;
  stream_registry r(c);
  auto log = r.get_or_create_pending("p", "10.0.0.1");
  ASSERT_TRUE(log);
  const std::int64_t created = (*log)->status().created_us;
  counting_waiter w;
  auto sub = std::make_unique<subscription>(*log, 1, w);
  read_batch b;
  EXPECT_EQ(sub->read(b, 1 << 20), read_status::waiting);

  r.sweep(created + 59 * second);  // not yet
  EXPECT_EQ((*log)->state(), stream_state::open);
  EXPECT_EQ(w.calls.load(), 0);

  r.sweep(created + 60 * second);
  EXPECT_EQ(w.calls.load(), 1);  // the subscriber is woken ...
  ASSERT_EQ(sub->read(b, 1 << 20), read_status::data);
  EXPECT_TRUE(b.final);
  // ... and reads exactly one final error event.
  EXPECT_EQ(
      decode(bytes_of(b)),
      (std::vector<decoded_event>{
          {"error",
           R"({"code":"stream_not_started","message":"nothing was published to this stream within 60 s"})",
           "1"}}));
  EXPECT_EQ(sub->read(b, 1 << 20), read_status::ended);
  EXPECT_EQ((*log)->state(), stream_state::cancelled);

  // While read it stays; once its subscriber has gone the next sweep frees it.
  r.sweep(created + 61 * second);
  EXPECT_NE(r.find("p"), nullptr);
  sub.reset();
  r.sweep(created + 62 * second);
  EXPECT_EQ(r.find("p"), nullptr);
  EXPECT_EQ(r.size(), 0u);
  EXPECT_EQ(r.owned_by("10.0.0.1"), 0u);
}

TEST(PendingStream, AFirstPublishMakesItAnOrdinaryOpenStream) {
  registry_config c;
  c.pending_limit_us = 60 * second;
  stream_registry r(c);
  auto log = r.get_or_create_pending("p");
  ASSERT_TRUE(log);
  const std::int64_t created = (*log)->status().created_us;
  (*log)->publish("message", "{\"n\":1}");
  r.sweep(created + 61 * second);
  EXPECT_EQ((*log)->state(), stream_state::open);
  EXPECT_EQ((*log)->status().last_sequence, 1u);
  // And a stream that was published to is never expired as pending later.
  EXPECT_FALSE((*log)->end_if_unpublished("error", "{}"));
}

TEST(PendingStream, CountsAgainstTheStreamBudgets) {
  registry_config c;
  c.max_streams = 3;
  c.max_streams_per_owner = 2;
  stream_registry r(c);
  EXPECT_TRUE(r.get_or_create_pending("p1", "eve"));
  EXPECT_TRUE(r.get_or_create_pending("p2", "eve"));
  auto third = r.get_or_create_pending("p3", "eve");
  ASSERT_FALSE(third);
  EXPECT_EQ(third.error(), make_error_code(registry_error::too_many_streams_for_owner));
  EXPECT_TRUE(r.get_or_create_pending("q1", "bob"));  // another subject is unaffected
  auto over = r.get_or_create("q2", "bob");
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error(), make_error_code(registry_error::too_many_streams));
}

TEST(StreamsPerOwner, ALimitPerOwnerThatFreesWithTheStreams) {
  registry_config c;
  c.max_streams_per_owner = 2;
  stream_registry r(c);
  auto a1 = make(r, "a1", "alice");
  make(r, "a2", "alice");
  EXPECT_EQ(r.owned_by("alice"), 2u);
  auto refused = r.create("a3", "alice");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), make_error_code(registry_error::too_many_streams_for_owner));
  // An existing stream is returned whoever asks: no budget is charged.
  EXPECT_TRUE(r.get_or_create("a1", "bob"));
  EXPECT_EQ(r.owned_by("bob"), 0u);
  EXPECT_TRUE(r.create("b1", "bob"));
  // Streams without an owner are not counted.
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(r.create("anon" + std::to_string(i)));
  // alice's stream ends and ages out: she may create again.
  a1->publish("message", "{}", true);
  const std::int64_t ended = a1->status().finished_us;
  a1.reset();
  r.sweep(ended + c.finished_ttl_us);
  EXPECT_EQ(r.owned_by("alice"), 1u);
  EXPECT_TRUE(r.create("a3", "alice"));
}

}  // namespace
