// reconnect_backoff: the delay sequence, with the random source injected
// (always the lowest, always the highest, or recorded), never the clock.
#include "client/reconnect_backoff.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace sluice::client {
namespace {

using ms = std::chrono::milliseconds;

std::int64_t lowest(std::int64_t lo, std::int64_t) {
  return lo;
}
std::int64_t highest(std::int64_t, std::int64_t hi) {
  return hi;
}

std::vector<std::int64_t> sequence(reconnect_backoff& b, unsigned n) {
  std::vector<std::int64_t> out;
  for (unsigned k = 0; k < n; ++k) out.push_back(b.delay(k).count());
  return out;
}

TEST(ReconnectBackoff, ServerRetryIsTheFloorOfTheFirstDelay) {
  reconnect_backoff low(ms(1000), ms(30'000), lowest);
  low.set_base_from_server(ms(150));
  EXPECT_EQ(low.delay(0), ms(150));
  reconnect_backoff high(ms(1000), ms(30'000), highest);
  high.set_base_from_server(ms(150));
  EXPECT_EQ(high.delay(0), ms(300));
}

TEST(ReconnectBackoff, WindowsDoubleFromTheServerRetryUpToTheCap) {
  std::vector<std::pair<std::int64_t, std::int64_t>> windows;
  reconnect_backoff b(ms(1000), ms(30'000), [&](std::int64_t lo, std::int64_t hi) {
    windows.emplace_back(lo, hi);
    return lo;
  });
  b.set_base_from_server(ms(150));
  for (unsigned k = 0; k < 12; ++k) b.delay(k);
  const std::vector<std::pair<std::int64_t, std::int64_t>> want{
      {150, 300},     {300, 600},     {600, 1200},    {1200, 2400},
      {2400, 4800},   {4800, 9600},   {9600, 19200},  {15000, 30000},
      {15000, 30000}, {15000, 30000}, {15000, 30000}, {15000, 30000}};
  EXPECT_EQ(windows, want);
}

TEST(ReconnectBackoff, ConfiguredBaseWhenTheServerSaysNothing) {
  reconnect_backoff low(ms(1000), ms(30'000), lowest);
  EXPECT_EQ(sequence(low, 7),
            (std::vector<std::int64_t>{1000, 2000, 4000, 8000, 15000, 15000, 15000}));
  reconnect_backoff high(ms(1000), ms(30'000), highest);
  EXPECT_EQ(sequence(high, 7),
            (std::vector<std::int64_t>{2000, 4000, 8000, 16000, 30000, 30000, 30000}));
}

TEST(ReconnectBackoff, NeverBelowTheBaseWhateverTheRandomSourceSays) {
  // A broken random source (out of range) is clamped into the window.
  reconnect_backoff b(ms(500), ms(10'000), [](std::int64_t, std::int64_t) { return -5; });
  b.set_base_from_server(ms(150));
  EXPECT_EQ(sequence(b, 4), (std::vector<std::int64_t>{150, 300, 600, 1200}));
  reconnect_backoff c(ms(500), ms(10'000), [](std::int64_t, std::int64_t) { return 1'000'000; });
  EXPECT_EQ(sequence(c, 6), (std::vector<std::int64_t>{1000, 2000, 4000, 8000, 10000, 10000}));
}

TEST(ReconnectBackoff, SeededSourceStaysInsideTheWindows) {
  reconnect_backoff b(ms(1000), ms(30'000), std::uint64_t{42});
  b.set_base_from_server(ms(150));
  for (unsigned k = 0; k < 40; ++k) {
    const std::int64_t ceiling =
        std::min<std::int64_t>(30'000, std::int64_t{150} << std::min(k + 1, 20u));
    const std::int64_t d = b.delay(k).count();
    EXPECT_GE(d, std::max<std::int64_t>(150, ceiling / 2)) << "attempt " << k;
    EXPECT_LE(d, ceiling) << "attempt " << k;
  }
}

TEST(ReconnectBackoff, ServerRetryAboveTheCapIsTheCap) {
  reconnect_backoff b(ms(1000), ms(30'000), lowest);
  b.set_base_from_server(ms(3'600'000));
  EXPECT_EQ(sequence(b, 3), (std::vector<std::int64_t>{30000, 30000, 30000}));
}

TEST(ReconnectBackoff, ServerRetryZeroReconnectsAtOnce) {
  reconnect_backoff b(ms(1000), ms(30'000), highest);
  b.set_base_from_server(ms(0));
  EXPECT_EQ(sequence(b, 3), (std::vector<std::int64_t>{0, 0, 0}));
}

TEST(ReconnectBackoff, ZeroBaseDisablesWaitingAndIgnoresTheServer) {
  reconnect_backoff b(ms(0), ms(30'000), highest);
  b.set_base_from_server(ms(150));
  EXPECT_EQ(sequence(b, 3), (std::vector<std::int64_t>{0, 0, 0}));
}

TEST(ReconnectBackoff, HugeAttemptNumbersDoNotOverflow) {
  reconnect_backoff b(ms(1), ms(30'000), highest);
  EXPECT_EQ(b.delay(1'000'000), ms(30'000));
  EXPECT_EQ(b.delay(~0u), ms(30'000));
}

}  // namespace
}  // namespace sluice::client
