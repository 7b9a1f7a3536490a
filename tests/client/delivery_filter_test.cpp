// Pure logic of the SSE client: delivery filter, backoff, gzip decoding.
#include <gtest/gtest.h>

#include <zlib.h>

#include "client/delivery_filter.hpp"
#include "client/gzip_inflater.hpp"
#include "client/reconnect_backoff.hpp"

namespace sluice::client {
namespace {

using action = delivery::action;
using std::chrono::milliseconds;

TEST(ClientDeliveryFilter, DropsDuplicatesBySequence) {
  delivery_filter f;
  EXPECT_EQ(f.classify("1", true, "message", "{}").what, action::deliver);
  EXPECT_EQ(f.classify("2", true, "message", "{}").what, action::deliver);
  EXPECT_EQ(f.classify("2", true, "message", "{}").what, action::drop_duplicate);
  EXPECT_EQ(f.classify("1", true, "message", "{}").what, action::drop_duplicate);
  auto d = f.classify("3", true, "message", "{}");
  EXPECT_EQ(d.what, action::deliver);
  EXPECT_EQ(d.first_seq, 3u);
  EXPECT_EQ(d.last_seq, 3u);
  EXPECT_EQ(f.highest_delivered(), 3u);
  EXPECT_EQ(f.duplicates_dropped(), 2u);
}

TEST(ClientDeliveryFilter, CoalescedEventCoversItsRange) {
  delivery_filter f(4);
  auto d = f.classify("9", true, "delta", R"({"coalesced":[5,9],"t":"abcde"})");
  EXPECT_EQ(d.what, action::deliver);
  EXPECT_EQ(d.first_seq, 5u);
  EXPECT_EQ(d.last_seq, 9u);
  EXPECT_EQ(f.classify("7", true, "delta", R"({"t":"c"})").what, action::drop_duplicate);
  EXPECT_EQ(f.classify("9", true, "delta", R"({"coalesced":[5,9],"t":"abcde"})").what,
            action::drop_duplicate);
  // A "coalesced" member that does not end at the id is not a merge.
  auto odd = f.classify("12", true, "delta", R"({"coalesced":[5,11],"t":"x"})");
  EXPECT_EQ(odd.first_seq, 12u);
}

TEST(ClientDeliveryFilter, EventsWithoutIdPassAsTheyAre) {
  delivery_filter f(10);
  auto d = f.classify("10", false, "notice", R"({"code":"history_truncated"})");
  EXPECT_EQ(d.what, action::deliver);
  EXPECT_EQ(d.first_seq, 0u);
  EXPECT_EQ(d.last_seq, 0u);
  auto named = f.classify("abc", true, "message", "x");  // not a sequence number
  EXPECT_EQ(named.what, action::deliver);
  EXPECT_EQ(named.last_seq, 0u);
  EXPECT_EQ(f.highest_delivered(), 10u);
}

TEST(ClientDeliveryFilter, ResumeWindowExceededIsAnError) {
  delivery_filter f(3);
  auto d = f.classify(
      "3", false, "error",
      R"({"code":"resume_window_exceeded","message":"events before 41 are gone","first_available":41})");
  EXPECT_EQ(d.what, action::resume_window_exceeded);
  EXPECT_EQ(d.first_available, 41u);
  EXPECT_EQ(d.message, "events before 41 are gone");
  // Another error event is an ordinary event.
  EXPECT_EQ(f.classify("3", false, "error", R"({"code":"other"})").what, action::deliver);
}

TEST(ClientDeliveryFilter, ParseSequence) {
  EXPECT_EQ(parse_sequence("0"), 0u);
  EXPECT_EQ(parse_sequence("18446744073709551615"), 18446744073709551615ull);
  EXPECT_FALSE(parse_sequence("18446744073709551616"));
  EXPECT_FALSE(parse_sequence(""));
  EXPECT_FALSE(parse_sequence("-1"));
  EXPECT_FALSE(parse_sequence("1 "));
  // With an epoch: the sequence orders, the whole id is sent back.
  EXPECT_EQ(parse_sequence("12-ab9"), 12u);
  for (const char* bad : {"12-", "-ab", "12-AB", "12-a-b", "12-0123456789abcdefg"})
    EXPECT_FALSE(parse_sequence(bad)) << bad;
}

TEST(ClientDeliveryFilter, IdsWithEpochsOrderBySequenceAndKeepTheWholeId) {
  delivery_filter f(3);
  f.set_last_id("3");
  EXPECT_EQ(f.last_id(), "3");
  EXPECT_EQ(f.classify("3-e1", true, "message", "{}").what, action::drop_duplicate);
  EXPECT_EQ(f.classify("4-e1", true, "message", "{}").what, action::deliver);
  EXPECT_EQ(f.last_id(), "4-e1");
  EXPECT_EQ(f.classify("4-e2", true, "message", "{}").what, action::drop_duplicate);
  const delivery d = f.classify("6-e1", true, "m", R"({"coalesced":[5,6],"text":"x"})");
  EXPECT_EQ(d.what, action::deliver);
  EXPECT_EQ(d.first_seq, 5u);
  EXPECT_EQ(f.highest_delivered(), 6u);
  EXPECT_EQ(f.last_id(), "6-e1");
}

// More on the delay sequence, with an injected random source, in
// reconnect_backoff_test.cpp.
TEST(ClientBackoff, JitterAboveTheFloorWithinExponentialWindowAndCap) {
  reconnect_backoff b(milliseconds(100), milliseconds(1000), 7);
  for (unsigned attempt = 0; attempt < 12; ++attempt) {
    const auto ceiling = std::min<std::int64_t>(1000, 100LL << std::min(attempt + 1, 20u));
    for (int i = 0; i < 50; ++i) {
      auto d = b.delay(attempt);
      EXPECT_GE(d.count(), std::max<std::int64_t>(100, ceiling / 2));
      EXPECT_LE(d.count(), ceiling);
    }
  }
  // The same seed gives the same delays.
  reconnect_backoff x(milliseconds(100), milliseconds(30'000), 99), y(milliseconds(100), milliseconds(30'000), 99);
  for (unsigned a = 0; a < 20; ++a) EXPECT_EQ(x.delay(a), y.delay(a));
}

TEST(ClientBackoff, ServerRetryReplacesBaseUnlessBaseIsZero) {
  reconnect_backoff b(milliseconds(1000), milliseconds(30'000), 1);
  b.set_base_from_server(milliseconds(10));
  EXPECT_EQ(b.base(), milliseconds(10));
  for (int i = 0; i < 50; ++i) {
    EXPECT_GE(b.delay(0).count(), 10);
    EXPECT_LE(b.delay(0).count(), 20);
  }
  reconnect_backoff zero(milliseconds(0), milliseconds(30'000), 1);
  zero.set_base_from_server(milliseconds(1000));
  for (unsigned a = 0; a < 20; ++a) EXPECT_EQ(zero.delay(a), milliseconds(0));
}

std::string gzip(const std::string& in) {
  z_stream z{};
  EXPECT_EQ(deflateInit2(&z, 6, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(compressBound(in.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

TEST(ClientGzip, DecodesAnySplitAndConcatenatedMembers) {
  std::string plain;
  for (int i = 0; i < 2000; ++i) plain += "id: " + std::to_string(i) + "\ndata: {\"x\":1}\n\n";
  const std::string two = gzip(plain) + gzip("tail");
  for (std::size_t step : {1u, 7u, 1000u, 100000u}) {
    gzip_inflater inf;
    std::string out;
    for (std::size_t i = 0; i < two.size(); i += step)
      ASSERT_TRUE(inf.inflate(std::string_view(two).substr(i, step), out));
    EXPECT_EQ(out, plain + "tail") << "step " << step;
  }
  gzip_inflater bad;
  std::string out;
  EXPECT_FALSE(bad.inflate("not gzip at all", out));
}

}  // namespace
}  // namespace sluice::client
