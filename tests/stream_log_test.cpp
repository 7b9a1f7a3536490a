// Tests for stream_log and subscription: sequencing, ending, cancellation,
// retention, reads (decoded with the WHATWG parser, so the tests check what a
// client would see), wake-ups, drain flow control and concurrent publishing.
#include "core/stream_log.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/after_publish.hpp"
#include "core/sse_encoder.hpp"
#include "core/sse_parser.hpp"
#include "core/stream_registry.hpp"
#include "support/core_decode.hpp"

namespace {

using namespace std::string_literals;
using namespace sluice::core;
using namespace sluice::test;

std::shared_ptr<stream_log> make_log(retention_limits limits = {}) {
  return std::make_shared<stream_log>("test-stream", limits);
}

// Reads until the subscription would wait or has ended; returns all bytes and
// checks that batches are contiguous and self-consistent.
struct drained {
  std::string bytes;
  read_status last = read_status::waiting;
  std::size_t batches = 0;
  bool saw_final = false;
};
drained read_until_idle(subscription& sub, std::size_t max_bytes) {
  drained d;
  read_batch b;
  for (;;) {
    const std::uint64_t before = sub.next_seq();
    read_status st = sub.read(b, max_bytes);
    if (st != read_status::data) {
      d.last = st;
      return d;
    }
    EXPECT_EQ(b.first_seq, before);
    EXPECT_GE(b.last_seq, b.first_seq);
    EXPECT_EQ(sub.next_seq(), b.last_seq + 1);
    const std::string s = bytes_of(b);
    EXPECT_EQ(s.size(), b.bytes);
    EXPECT_EQ(decode(s).size(), b.sse_events);
    d.saw_final = d.saw_final || b.final;
    d.bytes += s;
    ++d.batches;
  }
}

TEST(StreamLog, SequencesAreConsecutiveFromOne) {
  auto log = make_log();
  for (std::uint64_t i = 1; i <= 20; ++i) {
    publish_outcome o = log->publish("message", cat("e", std::to_string(i)));
    EXPECT_EQ(o.status, publish_status::ok);
    EXPECT_EQ(o.first_sequence, i);
    EXPECT_EQ(o.last_sequence, i);
  }
  stream_status st = log->status();
  EXPECT_EQ(st.first_sequence, 1u);
  EXPECT_EQ(st.last_sequence, 20u);
  EXPECT_EQ(st.retained_events, 20u);
}

TEST(StreamLog, ReadBytesAreTheEncodedEvents) {
  auto log = make_log();
  const std::vector<std::pair<std::string, std::string>> published = {
      {"message", "hello"},
      {"token.delta", R"({"text":"a\nb"})"},
      {"tool:call", "line1\nline2\r\nline3\rline4"},
      {"message", ""},
      {"message", "\n\nid: 999\nevent: evil\ndata: x"},
      {"status", "trailing\n"},
  };
  std::string expected_bytes;
  std::vector<decoded_event> expected;
  std::uint64_t seq = 0;
  for (const auto& [type, data] : published) {
    ++seq;
    log->publish(type, data);
    expected_bytes += encode_sse_event(seq, type, data);
    expected.push_back({type, normalise(data), std::to_string(seq)});
  }
  counting_waiter w;
  subscription sub(log, 1, w);
  read_batch b;
  ASSERT_EQ(sub.read(b, 1 << 20), read_status::data);
  EXPECT_EQ(bytes_of(b), expected_bytes);
  EXPECT_EQ(decode(bytes_of(b)), expected);
  EXPECT_EQ(b.first_seq, 1u);
  EXPECT_EQ(b.last_seq, 6u);
  EXPECT_EQ(b.sse_events, 6u);
  EXPECT_EQ(b.coalesced_events, 0u);
  EXPECT_FALSE(b.final);
  // All small events live in one segment: one span, one pin, no copies.
  EXPECT_EQ(b.spans.size(), 1u);
  EXPECT_EQ(b.pins.size(), 1u);
  EXPECT_TRUE(b.owned.empty());
  EXPECT_EQ(log->status().retained_bytes, expected_bytes.size());
}

TEST(StreamLog, EventsCarryTheEpochTheyWereWrittenIn) {
  auto log = make_log();
  EXPECT_EQ(log->epoch(), "");
  log->publish("message", "a");
  EXPECT_FALSE(log->set_epoch("late"));  // only before the first event
  ASSERT_TRUE(log->begin_epoch("e1"));
  log->publish("tool", "b");
  log->publish("message", "c\nd");
  ASSERT_TRUE(log->begin_epoch("0123456789abcdef"));
  EXPECT_TRUE(log->begin_epoch("0123456789abcdef"));  // the same: nothing changes
  log->publish("message", "e", true);
  const std::string expected =
      "id: 1\ndata: a\n\n"
      "id: 2-e1\nevent: tool\ndata: b\n\n"
      "id: 3-e1\ndata: c\ndata: d\n\n"
      "id: 4-0123456789abcdef\ndata: e\n\n";
  counting_waiter w;
  subscription sub(log, 1, w);
  read_batch b;
  ASSERT_EQ(sub.read(b, 1 << 20), read_status::data);
  EXPECT_EQ(bytes_of(b), expected);
  EXPECT_EQ(decode(bytes_of(b)),
            (std::vector<decoded_event>{{"message", "a", "1"},
                                        {"tool", "b", "2-e1"},
                                        {"message", "c\nd", "3-e1"},
                                        {"message", "e", "4-0123456789abcdef"}}));
  EXPECT_EQ(log->status().retained_bytes, expected.size());
  const stream_status st = log->status();
  EXPECT_EQ(st.epochs.current, "0123456789abcdef");
  EXPECT_EQ(st.epochs.previous, "e1");
  EXPECT_EQ(st.epochs.boundary, 4u);
  // An epoch without events is replaced, not remembered.
  {
    auto l2 = make_log();
    l2->publish("message", "x");
    ASSERT_TRUE(l2->begin_epoch("p"));
    ASSERT_TRUE(l2->begin_epoch("q"));
    EXPECT_EQ(l2->epochs().current, "q");
    EXPECT_EQ(l2->epochs().previous, "");
    EXPECT_EQ(l2->epochs().boundary, 2u);
  }
  const stream_meta m = log->meta();
  EXPECT_EQ(m.epoch, "0123456789abcdef");
  EXPECT_EQ(m.previous_epoch, "e1");
  EXPECT_EQ(m.epoch_boundary, 4u);
  // A stream restored from that meta keeps its epochs.
  stream_log back(m, retention_limits{});
  EXPECT_EQ(back.epochs().current, "0123456789abcdef");
  EXPECT_EQ(back.epochs().previous, "e1");
  EXPECT_EQ(back.epochs().boundary, 4u);
  // Invalid epochs change nothing.
  for (const char* bad : {"", "A", "a-b", "0123456789abcdefg", "a b"}) {
    EXPECT_FALSE(log->begin_epoch(bad)) << bad;
    EXPECT_FALSE(make_log()->set_epoch(bad)) << bad;
  }
  EXPECT_EQ(log->epoch(), "0123456789abcdef");
}

TEST(StreamLog, ANewStreamInAnEpoch) {
  auto log = make_log();
  ASSERT_TRUE(log->set_epoch("x"));
  ASSERT_TRUE(log->set_epoch("y"));  // still before the first event
  log->publish("message", "1");
  EXPECT_EQ(log->epochs().boundary, 0u);
  EXPECT_EQ(log->epochs().previous, "");
  counting_waiter w;
  subscription sub(log, 1, w);
  read_batch b;
  ASSERT_EQ(sub.read(b, 1 << 20), read_status::data);
  EXPECT_EQ(bytes_of(b), "id: 1-y\ndata: 1\n\n");
  // A stream without an epoch pays no epoch state.
  EXPECT_EQ(make_log()->meta().epoch_boundary, 0u);
}

TEST(StreamLog, PublishAllAppendsConsecutively) {
  auto log = make_log();
  log->publish("message", "first");
  const std::vector<publish_item> items = {
      {"a", "1", false, nullptr}, {"b", "2", false, nullptr}, {"message", "3", false, nullptr}};
  publish_outcome o = log->publish_all(items);
  EXPECT_EQ(o.status, publish_status::ok);
  EXPECT_EQ(o.first_sequence, 2u);
  EXPECT_EQ(o.last_sequence, 4u);

  counting_waiter w;
  subscription sub(log, 1, w);
  drained d = read_until_idle(sub, 1 << 20);
  EXPECT_EQ(
      decode(d.bytes),
      (std::vector<decoded_event>{
          {"message", "first", "1"}, {"a", "1", "2"}, {"b", "2", "3"}, {"message", "3", "4"}}));
}

TEST(StreamLog, PublishAllWithFinalItemEndsTheStream) {
  auto log = make_log();
  const std::vector<publish_item> items = {{"a", "1", false, nullptr},
                                           {"done", "2", true, nullptr}};
  publish_outcome o = log->publish_all(items);
  EXPECT_EQ(o.status, publish_status::ok);
  EXPECT_EQ(o.first_sequence, 1u);
  EXPECT_EQ(o.last_sequence, 2u);
  EXPECT_EQ(log->state(), stream_state::finished);

  // Nothing of a later batch is appended.
  publish_outcome late = log->publish_all(items);
  EXPECT_EQ(late.status, publish_status::stream_ended);
  EXPECT_EQ(late.first_sequence, 0u);
  EXPECT_EQ(late.last_sequence, 0u);
  EXPECT_EQ(log->status().last_sequence, 2u);
}

TEST(StreamLog, PublishAllStopsAtTheFinalItem) {
  // Documented by the outcome: items after a final one are not appended, and
  // last_sequence says where the stream ended.
  auto log = make_log();
  const std::vector<publish_item> items = {
      {"a", "1", false, nullptr}, {"done", "2", true, nullptr}, {"a", "3", false, nullptr}};
  publish_outcome o = log->publish_all(items);
  EXPECT_EQ(o.first_sequence, 1u);
  EXPECT_EQ(o.last_sequence, 2u);
  EXPECT_EQ(log->status().last_sequence, 2u);
  EXPECT_EQ(log->state(), stream_state::finished);
}

TEST(StreamLog, PublishAllOfNothingIsHarmless) {
  auto log = make_log();
  counting_waiter w;
  subscription sub(log, 1, w);
  read_batch b;
  ASSERT_EQ(sub.read(b, 1024), read_status::waiting);
  publish_outcome o = log->publish_all({});
  EXPECT_EQ(o.status, publish_status::ok);
  EXPECT_EQ(o.first_sequence, 0u);
  EXPECT_EQ(o.last_sequence, 0u);
  stream_status st = log->status();
  EXPECT_EQ(st.last_sequence, 0u);
  EXPECT_EQ(st.first_sequence, 0u);
  EXPECT_EQ(st.retained_events, 0u);
  EXPECT_EQ(sub.read(b, 1024), read_status::waiting);
  // The log still works afterwards.
  EXPECT_EQ(log->publish("message", "x").first_sequence, 1u);
  EXPECT_EQ(log->publish_all({}).status, publish_status::ok);
  ASSERT_EQ(sub.read(b, 1024), read_status::data);
  EXPECT_EQ(decode(bytes_of(b)), (std::vector<decoded_event>{{"message", "x", "1"}}));
}

TEST(StreamLog, FinalEndsTheStream) {
  auto log = make_log();
  counting_waiter w;
  subscription sub(log, 1, w);
  log->publish("message", "a");
  publish_outcome fin = log->publish("done", "{}", true);
  EXPECT_EQ(fin.status, publish_status::ok);
  EXPECT_EQ(fin.last_sequence, 2u);
  EXPECT_EQ(log->state(), stream_state::finished);

  publish_outcome late = log->publish("message", "late");
  EXPECT_EQ(late.status, publish_status::stream_ended);
  EXPECT_EQ(late.first_sequence, 0u);
  EXPECT_EQ(log->publish("message", "late", true).status, publish_status::stream_ended);
  EXPECT_FALSE(log->cancel("too late"));
  EXPECT_EQ(log->state(), stream_state::finished);
  EXPECT_EQ(log->status().last_sequence, 2u);

  read_batch b;
  ASSERT_EQ(sub.read(b, 1 << 20), read_status::data);
  EXPECT_TRUE(b.final);
  EXPECT_EQ(decode(bytes_of(b)),
            (std::vector<decoded_event>{{"message", "a", "1"}, {"done", "{}", "2"}}));
  EXPECT_EQ(sub.read(b, 1 << 20), read_status::ended);
  EXPECT_EQ(sub.read(b, 1 << 20), read_status::ended);
  EXPECT_EQ(w.calls.load(), 0);  // never armed: there was always data or an end
}

TEST(StreamLog, CancelWritesOneCancelledEventAndRunsHandlersOnce) {
  auto log = make_log();
  log->publish("message", "a");
  int handler_a = 0, handler_b = 0, removed = 0;
  log->on_cancel([&] { ++handler_a; });
  const std::uint64_t id_removed = log->on_cancel([&] { ++removed; });
  log->on_cancel([&] { ++handler_b; });
  log->remove_cancel_handler(id_removed);

  EXPECT_TRUE(log->cancel("user pressed stop"));
  EXPECT_EQ(log->state(), stream_state::cancelled);
  EXPECT_EQ(handler_a, 1);
  EXPECT_EQ(handler_b, 1);
  EXPECT_EQ(removed, 0);

  EXPECT_FALSE(log->cancel("again"));
  EXPECT_EQ(handler_a, 1);
  EXPECT_EQ(handler_b, 1);
  EXPECT_EQ(log->publish("message", "late").status, publish_status::stream_ended);

  int late = 0;
  EXPECT_EQ(log->on_cancel([&] { ++late; }), 0u);
  EXPECT_EQ(late, 1);  // ran at once

  counting_waiter w;
  subscription sub(log, 1, w);
  drained d = read_until_idle(sub, 1 << 20);
  EXPECT_EQ(d.last, read_status::ended);
  EXPECT_TRUE(d.saw_final);
  EXPECT_EQ(decode(d.bytes),
            (std::vector<decoded_event>{{"message", "a", "1"},
                                        {"cancelled", R"({"reason":"user pressed stop"})", "2"}}));
  stream_status st = log->status();
  EXPECT_EQ(st.last_sequence, 2u);
  EXPECT_NE(st.finished_us, 0);
}

TEST(StreamLog, CancelReasonIsEscapedToValidJson) {
  std::string reason = "say \"hi\" \\ back\nslash\r\ttab";
  for (int c = 0; c < 0x20; ++c) reason.push_back(static_cast<char>(c));
  reason += "\x7f end \xe4\xb8\xad\xf0\x9f\x98\x80 \"}\n\ndata: evil";
  auto log = make_log();
  ASSERT_TRUE(log->cancel(reason));
  counting_waiter w;
  subscription sub(log, 1, w);
  drained d = read_until_idle(sub, 1 << 20);
  std::vector<decoded_event> events = decode(d.bytes);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, "cancelled");
  EXPECT_EQ(events[0].id, "1");
  EXPECT_EQ(events[0].data.find_first_of("\r\n"), std::string::npos);
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(events[0].data, ec);
  ASSERT_FALSE(ec) << events[0].data;
  ASSERT_TRUE(v.is_object());
  EXPECT_EQ(v.as_object().size(), 1u);
  ASSERT_TRUE(v.as_object().contains("reason"));
  EXPECT_EQ(std::string(v.at("reason").as_string()), reason);
}

TEST(StreamLog, CancelOnEmptyStreamAndHandlerNotRunOnFinish) {
  auto log = make_log();
  int calls = 0;
  log->on_cancel([&] { ++calls; });
  log->publish("done", "{}", true);
  EXPECT_FALSE(log->cancel("x"));
  EXPECT_EQ(calls, 0);  // finishing is not cancelling
}

TEST(StreamLog, RetentionByEvents) {
  auto log = make_log({.max_events = 3, .max_bytes = 1 << 20});
  std::vector<std::string> encoded;
  for (std::uint64_t i = 1; i <= 10; ++i) {
    log->publish("message", cat("event ", std::to_string(i)));
    encoded.push_back(encode_sse_event(i, "message", cat("event ", std::to_string(i))));
    stream_status st = log->status();
    EXPECT_EQ(st.last_sequence, i);
    EXPECT_EQ(st.first_sequence, i <= 3 ? 1u : i - 2);
    EXPECT_EQ(st.retained_events, std::min<std::uint64_t>(i, 3));
  }
  stream_status st = log->status();
  EXPECT_EQ(st.retained_bytes, encoded[7].size() + encoded[8].size() + encoded[9].size());

  counting_waiter w;
  subscription sub(log, 8, w);
  drained d = read_until_idle(sub, 1 << 20);
  EXPECT_EQ(d.bytes, encoded[7] + encoded[8] + encoded[9]);
}

TEST(StreamLog, RetentionByBytesKeepsTheNewestEvent) {
  const std::string small(50, 's');
  const std::size_t event_size = encode_sse_event(10, "message", small).size();  // 2-digit ids
  auto log = make_log({.max_events = 1000, .max_bytes = 3 * event_size});
  for (int i = 1; i <= 20; ++i) log->publish("message", small);
  stream_status st = log->status();
  EXPECT_EQ(st.last_sequence, 20u);
  EXPECT_EQ(st.first_sequence, 18u);
  EXPECT_EQ(st.retained_events, 3u);
  EXPECT_EQ(st.retained_bytes, 3 * event_size);
  EXPECT_LE(st.retained_bytes, 3 * event_size);

  // One event bigger than the whole budget is still kept (alone).
  const std::string big(10 * event_size, 'B');
  log->publish("message", big);
  st = log->status();
  EXPECT_EQ(st.first_sequence, 21u);
  EXPECT_EQ(st.last_sequence, 21u);
  EXPECT_EQ(st.retained_events, 1u);
  EXPECT_EQ(st.retained_bytes, encode_sse_event(21, "message", big).size());

  // And a finished stream can be replayed from its last event.
  log->publish("done", "{}", true);
  counting_waiter w;
  subscription sub(log, 22, w);
  drained d = read_until_idle(sub, 1 << 20);
  EXPECT_EQ(d.last, read_status::ended);
  EXPECT_EQ(decode(d.bytes), (std::vector<decoded_event>{{"done", "{}", "22"}}));
}

TEST(StreamLog, SubscriptionBehindTheWindowIsTold) {
  auto log = make_log({.max_events = 4, .max_bytes = 1 << 20});
  counting_waiter w;
  subscription behind(log, 1, w);
  for (int i = 1; i <= 10; ++i) log->publish("message", std::to_string(i));
  read_batch b;
  EXPECT_EQ(behind.read(b, 1 << 20), read_status::window_exceeded);
  EXPECT_EQ(behind.first_available(), 7u);
  EXPECT_EQ(behind.next_seq(), 1u);  // the cursor does not move by itself
  EXPECT_TRUE(b.spans.empty());
  EXPECT_EQ(b.bytes, 0u);
  // Still exceeded on a later read, with the window moved on.
  log->publish("message", "11");
  EXPECT_EQ(behind.read(b, 1 << 20), read_status::window_exceeded);
  EXPECT_EQ(behind.first_available(), 8u);

  // Resuming at the first available sequence works.
  subscription resumed(log, behind.first_available(), w);
  drained d = read_until_idle(resumed, 1 << 20);
  EXPECT_EQ(decode(d.bytes), (std::vector<decoded_event>{{"message", "8", "8"},
                                                         {"message", "9", "9"},
                                                         {"message", "10", "10"},
                                                         {"message", "11", "11"}}));
  EXPECT_EQ(w.calls.load(), 0);
}

TEST(StreamLog, ReadFromEveryPosition) {
  auto log = make_log();
  std::vector<decoded_event> all;
  for (std::uint64_t i = 1; i <= 12; ++i) {
    const std::string type = i % 3 == 0 ? "tool" : "message";
    const std::string data = cat("d", std::to_string(i), i % 4 == 0 ? "\nsecond line" : "");
    log->publish(type, data);
    all.push_back({type, data, std::to_string(i)});
  }
  log->publish("done", "end", true);
  all.push_back({"done", "end", "13"});
  for (std::uint64_t from = 1; from <= 14; ++from) {
    SCOPED_TRACE(from);
    counting_waiter w;
    subscription sub(log, from, w);
    drained d = read_until_idle(sub, 1 << 20);
    EXPECT_EQ(d.last, read_status::ended);
    EXPECT_EQ(decode(d.bytes), std::vector<decoded_event>(all.begin() + (from - 1), all.end()));
    EXPECT_EQ(sub.next_seq(), 14u);
  }
}

TEST(StreamLog, WaitingArmsTheWaiterExactlyOnce) {
  auto log = make_log();
  counting_waiter w, other;
  subscription sub(log, 1, w);
  subscription idle(log, 1, other);  // never reads, so never armed
  read_batch b;
  EXPECT_EQ(sub.read(b, 1024), read_status::waiting);
  EXPECT_EQ(sub.read(b, 1024), read_status::waiting);  // re-reading does not double-arm
  EXPECT_EQ(w.calls.load(), 0);

  log->publish("message", "1");
  EXPECT_EQ(w.calls.load(), 1);
  log->publish("message", "2");
  EXPECT_EQ(w.calls.load(), 1);  // one-shot: not re-armed until the next waiting read

  ASSERT_EQ(sub.read(b, 1024), read_status::data);
  EXPECT_EQ(b.first_seq, 1u);
  EXPECT_EQ(b.last_seq, 2u);
  log->publish("message", "3");
  EXPECT_EQ(w.calls.load(), 1);  // not waiting: reading gave data
  ASSERT_EQ(sub.read(b, 1024), read_status::data);
  EXPECT_EQ(sub.read(b, 1024), read_status::waiting);

  log->publish_all(std::vector<publish_item>{{"message", "4", false, nullptr},
                                             {"message", "5", false, nullptr}});
  EXPECT_EQ(w.calls.load(), 2);  // one wake-up per atomic publish
  ASSERT_EQ(sub.read(b, 1024), read_status::data);
  EXPECT_EQ(sub.read(b, 1024), read_status::waiting);

  EXPECT_TRUE(log->cancel("stop"));
  EXPECT_EQ(w.calls.load(), 3);  // cancel notifies
  ASSERT_EQ(sub.read(b, 1024), read_status::data);
  EXPECT_TRUE(b.final);
  EXPECT_EQ(decode(bytes_of(b)),
            (std::vector<decoded_event>{{"cancelled", R"({"reason":"stop"})", "6"}}));
  EXPECT_EQ(sub.read(b, 1024), read_status::ended);
  EXPECT_EQ(w.calls.load(), 3);
  EXPECT_EQ(other.calls.load(), 0);
}

TEST(StreamLog, FinalPublishNotifiesWaiters) {
  auto log = make_log();
  counting_waiter w;
  subscription sub(log, 1, w);
  read_batch b;
  EXPECT_EQ(sub.read(b, 1024), read_status::waiting);
  log->publish("done", "bye", true);
  EXPECT_EQ(w.calls.load(), 1);
  ASSERT_EQ(sub.read(b, 1024), read_status::data);
  EXPECT_TRUE(b.final);
  EXPECT_EQ(sub.read(b, 1024), read_status::ended);
}

TEST(StreamLog, DetachedSubscriptionIsNotNotified) {
  auto log = make_log();
  counting_waiter w, gone;
  subscription sub(log, 1, w);
  read_batch b;
  {
    subscription tmp(log, 1, gone);
    EXPECT_EQ(tmp.read(b, 1024), read_status::waiting);
    EXPECT_EQ(log->status().subscribers, 2u);
  }
  EXPECT_EQ(log->status().subscribers, 1u);
  EXPECT_EQ(sub.read(b, 1024), read_status::waiting);
  log->publish("message", "x");
  EXPECT_EQ(gone.calls.load(), 0);
  EXPECT_EQ(w.calls.load(), 1);
}

TEST(StreamLog, SmallReadsSplitBatchesWithoutLosingOrRepeating) {
  auto log = make_log();
  std::vector<decoded_event> all;
  std::mt19937 rng(1234);
  for (std::uint64_t i = 1; i <= 200; ++i) {
    const std::string data(rng() % 300, static_cast<char>('a' + i % 26));
    log->publish("message", data);
    all.push_back({"message", data, std::to_string(i)});
  }
  for (std::size_t max_bytes : {std::size_t{1}, std::size_t{10}, std::size_t{100}, std::size_t{333},
                                std::size_t{4096}, std::size_t{1} << 20}) {
    SCOPED_TRACE(max_bytes);
    counting_waiter w;
    subscription sub(log, 1, w);
    read_batch b;
    std::string bytes;
    std::uint64_t expect_next = 1;
    std::size_t batches = 0;
    while (sub.read(b, max_bytes) == read_status::data) {
      ASSERT_EQ(b.first_seq, expect_next);
      // A batch goes over max_bytes only by its last event.
      if (b.sse_events > 1) {
        const std::string s = bytes_of(b);
        const std::size_t last_size =
            encode_sse_event(b.last_seq, "message", all[b.last_seq - 1].data).size();
        EXPECT_LT(s.size() - last_size, max_bytes);
      }
      bytes += bytes_of(b);
      expect_next = b.last_seq + 1;
      ++batches;
    }
    EXPECT_EQ(decode(bytes), all);
    if (max_bytes == 1) {
      EXPECT_EQ(batches, 200u);
    }
    if (max_bytes == (std::size_t{1} << 20)) {
      EXPECT_EQ(batches, 1u);
    }
  }
}

TEST(StreamLog, EventsAcrossSegmentBoundaries) {
  auto log = make_log();
  std::vector<decoded_event> all;
  std::mt19937 rng(99);
  std::uint64_t seq = 0;
  auto publish = [&](std::string type, std::string data) {
    ++seq;
    log->publish(type, data);
    all.push_back({type, normalise(data), std::to_string(seq)});
  };
  // Events of ~3 KiB fill the 4, 8, 16, 32 and 64 KiB segments unevenly.
  for (int i = 0; i < 80; ++i) {
    std::string data(2000 + rng() % 2000, static_cast<char>('A' + i % 26));
    data[rng() % data.size()] = '\n';
    publish(i % 2 ? "message" : "chunk", data);
  }
  // One event larger than the largest segment, and small ones around it.
  std::string huge(200 * 1024, 'h');
  for (std::size_t i = 0; i < huge.size(); i += 997) huge[i] = static_cast<char>('a' + i % 26);
  huge[1000] = '\r';
  huge[5000] = '\r';
  huge[5001] = '\n';
  publish("message", "before");
  publish("big", huge);
  publish("message", "after");
  std::string huge2(70 * 1024, 'g');
  publish("big", huge2);
  publish("big", huge2);
  publish("done", "end");

  counting_waiter w;
  {
    subscription sub(log, 1, w);
    read_batch b;
    ASSERT_EQ(sub.read(b, std::size_t{64} << 20), read_status::data);
    EXPECT_EQ(b.last_seq, seq);
    EXPECT_GT(b.pins.size(), 4u);  // several segments
    EXPECT_EQ(decode(bytes_of(b)), all);
  }
  // Reading in small steps gives the same.
  for (std::size_t max_bytes : {std::size_t{1}, std::size_t{5000}, std::size_t{70000}}) {
    subscription sub(log, 1, w);
    drained d = read_until_idle(sub, max_bytes);
    EXPECT_EQ(decode(d.bytes), all) << max_bytes;
  }
  // From the middle, starting at the huge event.
  subscription sub(log, 82, w);
  drained d = read_until_idle(sub, 1);
  EXPECT_EQ(decode(d.bytes), std::vector<decoded_event>(all.begin() + 81, all.end()));
  EXPECT_EQ(d.batches, all.size() - 81);
}

TEST(StreamLog, HeldBatchStaysValidAfterTrimming) {
  auto log = make_log({.max_events = 5, .max_bytes = 1 << 20});
  std::vector<decoded_event> first;
  for (std::uint64_t i = 1; i <= 5; ++i) {
    const std::string data(1500, static_cast<char>('a' + i));
    log->publish("message", data);
    first.push_back({"message", data, std::to_string(i)});
  }
  counting_waiter w;
  subscription sub(log, 1, w);
  read_batch held;
  ASSERT_EQ(sub.read(held, 1 << 20), read_status::data);
  // Push everything the batch points into out of the window (and its segments
  // out of the log).
  for (int i = 0; i < 200; ++i) log->publish("message", std::string(3000, 'z'));
  EXPECT_EQ(log->status().first_sequence, 201u);
  EXPECT_EQ(decode(bytes_of(held)), first);
}

TEST(StreamLog, WaitForDrainTrueWithoutSubscribers) {
  auto log = make_log();
  for (int i = 0; i < 10; ++i) log->publish("message", "x");
  int calls = 0;
  EXPECT_TRUE(log->wait_for_drain(0, [&] { ++calls; }));
  log->publish("message", "y");
  EXPECT_EQ(calls, 0);  // not stored when it returned true
}

TEST(StreamLog, WaitForDrainFiresOnceWhenTheSubscriberCatchesUp) {
  auto log = make_log();
  counting_waiter w;
  subscription sub(log, 1, w);
  for (int i = 1; i <= 6; ++i) log->publish("message", std::to_string(i));
  int calls = 0;
  EXPECT_TRUE(log->wait_for_drain(6, [&] { ++calls; }));   // lag 6 <= 6
  EXPECT_FALSE(log->wait_for_drain(2, [&] { ++calls; }));  // lag 6 > 2
  read_batch b;
  ASSERT_EQ(sub.read(b, 1), read_status::data);  // lag 5
  ASSERT_EQ(sub.read(b, 1), read_status::data);  // lag 4
  ASSERT_EQ(sub.read(b, 1), read_status::data);  // lag 3
  EXPECT_EQ(calls, 0);
  ASSERT_EQ(sub.read(b, 1), read_status::data);  // lag 2
  EXPECT_EQ(calls, 1);
  ASSERT_EQ(sub.read(b, 1), read_status::data);
  for (int i = 0; i < 5; ++i) log->publish("message", "more");
  ASSERT_EQ(sub.read(b, 1 << 20), read_status::data);
  EXPECT_EQ(calls, 1);  // one-shot
  EXPECT_TRUE(log->wait_for_drain(0, [&] { ++calls; }));
}

TEST(StreamLog, WaitForDrainWatchesTheSlowestSubscriber) {
  auto log = make_log();
  counting_waiter w;
  subscription fast(log, 1, w);
  subscription slow(log, 1, w);
  for (int i = 1; i <= 4; ++i) log->publish("message", std::to_string(i));
  int calls = 0;
  EXPECT_FALSE(log->wait_for_drain(1, [&] { ++calls; }));
  read_batch b;
  ASSERT_EQ(fast.read(b, 1 << 20), read_status::data);
  EXPECT_EQ(calls, 0);
  ASSERT_EQ(slow.read(b, 1 << 20), read_status::data);
  EXPECT_EQ(calls, 1);
}

TEST(StreamLog, WaitForDrainFiresWhenTheLaggingSubscriberLeaves) {
  auto log = make_log();
  counting_waiter w;
  auto sub = std::make_unique<subscription>(log, 1, w);
  for (int i = 1; i <= 4; ++i) log->publish("message", std::to_string(i));
  int calls = 0;
  EXPECT_FALSE(log->wait_for_drain(0, [&] { ++calls; }));
  sub.reset();
  EXPECT_EQ(calls, 1);
}

TEST(StreamLog, WaitForDrainFiresWhenTheStreamEnds) {
  for (bool by_cancel : {false, true}) {
    SCOPED_TRACE(by_cancel);
    auto log = make_log();
    counting_waiter w;
    subscription sub(log, 1, w);
    for (int i = 1; i <= 4; ++i) log->publish("message", std::to_string(i));
    int calls = 0;
    EXPECT_FALSE(log->wait_for_drain(0, [&] { ++calls; }));
    if (by_cancel)
      log->cancel("x");
    else
      log->publish("done", "{}", true);
    EXPECT_EQ(calls, 1);
    EXPECT_TRUE(log->wait_for_drain(0, [&] { ++calls; }));
    EXPECT_EQ(calls, 1);
  }
}

TEST(StreamLog, WaitForDrainReplacesThePreviousCallback) {
  auto log = make_log();
  counting_waiter w;
  subscription sub(log, 1, w);
  for (int i = 1; i <= 4; ++i) log->publish("message", std::to_string(i));
  int first = 0, second = 0;
  EXPECT_FALSE(log->wait_for_drain(0, [&] { ++first; }));
  EXPECT_FALSE(log->wait_for_drain(0, [&] { ++second; }));
  read_batch b;
  ASSERT_EQ(sub.read(b, 1 << 20), read_status::data);
  EXPECT_EQ(first, 0);
  EXPECT_EQ(second, 1);
}

TEST(StreamLog, StatusFields) {
  auto log = make_log({.max_events = 3, .max_bytes = 1 << 20});
  EXPECT_EQ(log->id(), "test-stream");
  stream_status st = log->status();
  EXPECT_EQ(st.state, stream_state::open);
  EXPECT_EQ(st.first_sequence, 0u);
  EXPECT_EQ(st.last_sequence, 0u);
  EXPECT_EQ(st.retained_events, 0u);
  EXPECT_EQ(st.retained_bytes, 0u);
  EXPECT_EQ(st.subscribers, 0u);
  EXPECT_GT(st.created_us, 0);
  EXPECT_EQ(st.finished_us, 0);
  EXPECT_NE(st.last_activity_us, 0);

  counting_waiter w;
  auto a = std::make_unique<subscription>(log, 1, w);
  subscription b(log, 1, w);
  EXPECT_EQ(log->status().subscribers, 2u);
  std::size_t bytes = 0;
  for (std::uint64_t i = 1; i <= 5; ++i) {
    log->publish("message", "x");
    if (i >= 3) bytes += encode_sse_event(i, "message", "x").size();
  }
  st = log->status();
  EXPECT_EQ(st.state, stream_state::open);
  EXPECT_EQ(st.first_sequence, 3u);
  EXPECT_EQ(st.last_sequence, 5u);
  EXPECT_EQ(st.retained_events, 3u);
  EXPECT_EQ(st.retained_bytes, bytes);
  EXPECT_EQ(st.finished_us, 0);
  a.reset();
  EXPECT_EQ(log->status().subscribers, 1u);

  log->publish("done", "{}", true);
  st = log->status();
  EXPECT_EQ(st.state, stream_state::finished);
  EXPECT_EQ(to_string(st.state), "finished");
  EXPECT_EQ(st.last_sequence, 6u);
  EXPECT_EQ(st.first_sequence, 4u);
  EXPECT_NE(st.finished_us, 0);
  EXPECT_EQ(to_string(stream_state::open), "open");
  EXPECT_EQ(to_string(stream_state::cancelled), "cancelled");
}

// Publisher threads, some with single publishes and some with atomic batches
// of three, race against a reader thread woken only through its waiter.
TEST(StreamLog, ConcurrentPublishersOneReader) {
  constexpr int publishers = 4;
  constexpr int per_thread = 3000;  // events per publisher
  auto log = make_log();

  struct cv_waiter final : stream_waiter {
    std::mutex m;
    std::condition_variable cv;
    bool ready = false;
    void on_stream_ready() noexcept override {
      std::lock_guard lock(m);
      ready = true;
      cv.notify_one();
    }
  } waiter;

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  std::vector<decoded_event> seen;
  bool timed_out = false;
  std::size_t batches = 0;
  std::thread reader([&] {
    subscription sub(log, 1, waiter);
    read_batch b;
    std::string bytes;
    for (;;) {
      {
        std::lock_guard lock(waiter.m);
        waiter.ready = false;
      }
      read_status st = sub.read(b, 2048);
      if (st == read_status::data) {
        bytes += bytes_of(b);
        ++batches;
        continue;
      }
      if (st == read_status::ended) break;
      ASSERT_EQ(st, read_status::waiting);
      std::unique_lock lock(waiter.m);
      if (!waiter.cv.wait_until(lock, deadline, [&] { return waiter.ready; })) {
        timed_out = true;
        break;
      }
    }
    seen = decode(bytes);
  });

  std::vector<std::thread> threads;
  for (int t = 0; t < publishers; ++t) {
    threads.emplace_back([&, t] {
      const std::string type = cat("p", std::to_string(t));
      for (int i = 0; i < per_thread;) {
        if (t % 2 == 0) {
          log->publish(type, std::to_string(i));
          ++i;
        } else {
          const std::string d0 = std::to_string(i), d1 = std::to_string(i + 1),
                            d2 = std::to_string(i + 2);
          const publish_item items[] = {
              {type, d0, false, nullptr}, {type, d1, false, nullptr}, {type, d2, false, nullptr}};
          publish_outcome o = log->publish_all(items);
          EXPECT_EQ(o.last_sequence, o.first_sequence + 2);
          i += 3;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  log->publish("done", "{}", true);
  reader.join();

  ASSERT_FALSE(timed_out);
  const std::size_t total = publishers * per_thread + 1;
  ASSERT_EQ(seen.size(), total);
  std::vector<int> next_per_thread(publishers, 0);
  for (std::size_t i = 0; i < total; ++i) {
    ASSERT_EQ(seen[i].id, std::to_string(i + 1));  // every sequence once, in order
    if (i + 1 == total) {
      EXPECT_EQ(seen[i].type, "done");
      break;
    }
    const int t = seen[i].type[1] - '0';
    ASSERT_EQ(seen[i].data, std::to_string(next_per_thread[t]));  // each producer's order kept
    if (t % 2 == 1 && next_per_thread[t] % 3 == 0) {
      // An atomic batch of three is contiguous.
      ASSERT_LT(i + 2, total);
      EXPECT_EQ(seen[i + 1].type, seen[i].type);
      EXPECT_EQ(seen[i + 2].type, seen[i].type);
    }
    ++next_per_thread[t];
  }
  for (int t = 0; t < publishers; ++t) EXPECT_EQ(next_per_thread[t], per_thread);
  EXPECT_GT(batches, 1u);
}

}  // namespace

// ---------------------------------------------------------------------------
// stream_registry: lifetimes of streams by id. Time is passed explicitly to
// sweep(), relative to the times the streams themselves report.

namespace {

using sluice::core::registry_config;
using sluice::core::registry_error;
using sluice::core::stream_registry;

registry_config small_registry() {
  registry_config c;
  c.max_streams = 3;
  c.retention = {.max_events = 2, .max_bytes = 1 << 20};
  c.finished_ttl_us = 1'000'000;
  c.idle_open_limit_us = 5'000'000;
  return c;
}

TEST(StreamRegistry, GetOrCreateCreateFind) {
  stream_registry reg(small_registry());
  EXPECT_EQ(reg.size(), 0u);
  EXPECT_EQ(reg.find("a"), nullptr);
  auto a = reg.get_or_create("a");
  ASSERT_TRUE(a.has_value());
  ASSERT_NE(*a, nullptr);
  EXPECT_EQ((*a)->id(), "a");
  EXPECT_EQ((*a)->state(), stream_state::open);
  auto again = reg.get_or_create("a");
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(*again, *a);
  EXPECT_EQ(reg.find("a"), *a);
  EXPECT_EQ(reg.size(), 1u);

  auto dup = reg.create("a");
  ASSERT_FALSE(dup.has_value());
  EXPECT_EQ(dup.error(), make_error_code(registry_error::already_exists));
  auto b = reg.create("b");
  ASSERT_TRUE(b.has_value());
  EXPECT_NE(*b, *a);
  EXPECT_EQ(reg.find("b"), *b);
  EXPECT_EQ(reg.size(), 2u);

  // The registry's retention limits reach the logs.
  for (int i = 0; i < 5; ++i) (*a)->publish("message", "x");
  EXPECT_EQ((*a)->status().retained_events, 2u);
}

TEST(StreamRegistry, MaxStreams) {
  stream_registry reg(small_registry());
  ASSERT_TRUE(reg.create("s1").has_value());
  ASSERT_TRUE(reg.get_or_create("s2").has_value());
  auto s3 = reg.create("s3");
  ASSERT_TRUE(s3.has_value());
  auto four = reg.create("s4");
  ASSERT_FALSE(four.has_value());
  EXPECT_EQ(four.error(), make_error_code(registry_error::too_many_streams));
  EXPECT_EQ(four.error().message(), "too many streams");
  auto four_b = reg.get_or_create("s4");
  ASSERT_FALSE(four_b.has_value());
  EXPECT_EQ(four_b.error(), make_error_code(registry_error::too_many_streams));
  EXPECT_EQ(reg.find("s4"), nullptr);
  EXPECT_EQ(reg.size(), 3u);
  // Existing streams are still found at the limit.
  EXPECT_TRUE(reg.get_or_create("s1").has_value());
  EXPECT_EQ(reg.create("s1").error(), make_error_code(registry_error::already_exists));

  // Freeing one makes room again.
  (*s3)->publish("done", "{}", true);
  EXPECT_EQ(reg.sweep((*s3)->status().finished_us + reg.config().finished_ttl_us), 1u);
  EXPECT_EQ(reg.size(), 2u);
  EXPECT_TRUE(reg.create("s4").has_value());
  EXPECT_EQ(reg.size(), 3u);
}

TEST(StreamRegistry, SweepFreesFinishedStreamsPastTheTtlWithoutSubscribers) {
  registry_config cfg = small_registry();
  cfg.idle_open_limit_us = 1'000'000'000'000;  // keep "open" out of the idle rule here
  stream_registry reg(cfg);
  const std::int64_t ttl = reg.config().finished_ttl_us;
  auto fin = *reg.create("fin");
  auto watched = *reg.create("watched");
  auto open = *reg.create("open");
  fin->publish("done", "{}", true);
  watched->cancel("stop");
  counting_waiter w;
  auto sub = std::make_unique<subscription>(watched, 1, w);
  const std::int64_t fin_at = fin->status().finished_us;
  const std::int64_t watched_at = watched->status().finished_us;
  ASSERT_NE(fin_at, 0);
  ASSERT_NE(watched_at, 0);

  EXPECT_EQ(reg.sweep(fin_at + ttl - 1), 0u);
  EXPECT_NE(reg.find("fin"), nullptr);
  EXPECT_EQ(reg.sweep(fin_at + ttl), 1u);
  EXPECT_EQ(reg.find("fin"), nullptr);
  EXPECT_EQ(reg.size(), 2u);
  // The freed log itself stays usable by whoever holds it.
  EXPECT_EQ(fin->status().last_sequence, 1u);

  // A cancelled stream with a subscriber stays, however late it is.
  EXPECT_EQ(reg.sweep(watched_at + 100 * ttl), 0u);
  EXPECT_NE(reg.find("watched"), nullptr);
  sub.reset();
  EXPECT_EQ(reg.sweep(watched_at + 100 * ttl), 1u);
  EXPECT_EQ(reg.find("watched"), nullptr);

  // The open stream was never touched by these sweeps (its idle limit is
  // checked against its own activity time).
  EXPECT_EQ(open->state(), stream_state::open);
  EXPECT_EQ(reg.find("open"), open);
  EXPECT_EQ(reg.size(), 1u);
}

TEST(StreamRegistry, PerStreamTtlAndUnreadGrace) {
  registry_config cfg = small_registry();
  cfg.idle_open_limit_us = 1'000'000'000'000;
  stream_registry reg(cfg);
  auto shortlived = *reg.create("short");
  shortlived->keep_finished_for(5);
  shortlived->publish("done", "{}", true);
  const std::int64_t at = shortlived->status().finished_us;
  EXPECT_EQ(reg.sweep(at + 4), 0u);
  EXPECT_EQ(reg.sweep(at + 5), 1u) << "its own TTL, not the registry's";

  // A run nobody reads is cancelled after its grace; one that is read is not.
  auto unread = *reg.create("unread");
  auto read = *reg.create("read");
  unread->cancel_when_unread(100);
  read->cancel_when_unread(100);
  counting_waiter w;
  subscription reader(read, 1, w);
  const std::int64_t since = unread->status().unread_since_us;
  ASSERT_GT(since, 0);
  reg.sweep(since + 99);
  EXPECT_EQ(unread->state(), stream_state::open);
  reg.sweep(since + 100'000);
  EXPECT_EQ(unread->state(), stream_state::cancelled);
  EXPECT_EQ(read->state(), stream_state::open);
  EXPECT_EQ(read->status().unread_since_us, 0) << "a subscriber is reading";
}

TEST(StreamRegistry, SweepCancelsIdleOpenStreamsWithoutSubscribers) {
  stream_registry reg(small_registry());
  const std::int64_t idle = reg.config().idle_open_limit_us;
  auto quiet = *reg.create("quiet");
  auto watched = *reg.create("watched");
  quiet->publish("message", "hello");
  int cancelled_handlers = 0;
  quiet->on_cancel([&] { ++cancelled_handlers; });
  counting_waiter w;
  subscription sub(watched, 1, w);
  const std::int64_t quiet_at = quiet->status().last_activity_us;
  const std::int64_t watched_at = watched->status().last_activity_us;

  EXPECT_EQ(reg.sweep(quiet_at + idle - 1), 0u);
  EXPECT_EQ(quiet->state(), stream_state::open);
  EXPECT_EQ(reg.sweep(std::max(quiet_at, watched_at) + idle), 0u);  // cancels, frees nothing yet
  EXPECT_EQ(quiet->state(), stream_state::cancelled);
  EXPECT_EQ(cancelled_handlers, 1);
  EXPECT_EQ(watched->state(), stream_state::open);  // it has a subscriber
  EXPECT_NE(reg.find("quiet"), nullptr);

  // Its last event is the `cancelled` one.
  counting_waiter w2;
  subscription reader(quiet, 1, w2);
  drained d = read_until_idle(reader, 1 << 20);
  EXPECT_EQ(d.last, read_status::ended);
  EXPECT_EQ(decode(d.bytes),
            (std::vector<decoded_event>{{"message", "hello", "1"},
                                        {"cancelled", R"({"reason":"idle"})", "2"}}));

  registry_counts c = reg.counts();
  EXPECT_EQ(c.open, 1u);
  EXPECT_EQ(c.cancelled, 1u);
  EXPECT_EQ(c.finished, 0u);
}

TEST(StreamRegistry, CancelledIdleStreamAgesOutLikeAFinishedOne) {
  stream_registry reg(small_registry());
  auto quiet = *reg.create("quiet");
  const std::int64_t at = quiet->status().last_activity_us;
  reg.sweep(at + reg.config().idle_open_limit_us);
  ASSERT_EQ(quiet->state(), stream_state::cancelled);
  const std::int64_t ended = quiet->status().finished_us;
  EXPECT_EQ(reg.sweep(ended + reg.config().finished_ttl_us - 1), 0u);
  EXPECT_EQ(reg.sweep(ended + reg.config().finished_ttl_us), 1u);
  EXPECT_EQ(reg.find("quiet"), nullptr);
  EXPECT_EQ(reg.size(), 0u);
}

TEST(StreamRegistry, Counts) {
  registry_config cfg = small_registry();
  cfg.max_streams = 100;
  stream_registry reg(cfg);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(reg.create(cat("open-", std::to_string(i))).has_value());
  for (int i = 0; i < 3; ++i)
    (*reg.create(cat("fin-", std::to_string(i))))->publish("d", "{}", true);
  for (int i = 0; i < 2; ++i) (*reg.create(cat("can-", std::to_string(i))))->cancel("x");
  registry_counts c = reg.counts();
  EXPECT_EQ(c.open, 5u);
  EXPECT_EQ(c.finished, 3u);
  EXPECT_EQ(c.cancelled, 2u);
  EXPECT_EQ(reg.size(), 10u);
}

}  // namespace

// The after-publish hook (core/after_publish.hpp): per thread, called once per
// call, never re-entered from inside itself, gone once cleared.
TEST(AfterPublish, RunsThisThreadsHookOnceAndNeverRecursively) {
  struct counts {
    int calls = 0;
    int nested_returned = 0;
  } c;
  auto hook = [](void* ctx) noexcept {
    auto& k = *static_cast<counts*>(ctx);
    ++k.calls;
    sluice::core::after_publish();  // a publish from inside the hook: no recursion
    ++k.nested_returned;
  };
  sluice::core::after_publish();  // no hook set: nothing happens
  sluice::core::set_after_publish_hook(hook, &c);
  sluice::core::after_publish();
  EXPECT_EQ(c.calls, 1);
  EXPECT_EQ(c.nested_returned, 1);
  // Another thread has no hook.
  std::thread([] { sluice::core::after_publish(); }).join();
  EXPECT_EQ(c.calls, 1);
  sluice::core::after_publish();
  EXPECT_EQ(c.calls, 2);
  sluice::core::set_after_publish_hook(nullptr, nullptr);
  sluice::core::after_publish();
  EXPECT_EQ(c.calls, 2);
}
