// Tests for delta events (make_delta_event) and the lossless coalescing of
// runs of deltas done by subscription::read. Everything read is decoded with
// the WHATWG parser and Boost.JSON, as a client would, and compared with what
// was published.
#include "core/coalescer.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <boost/system/errc.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "core/sse_parser.hpp"
#include "core/stream_log.hpp"
#include "support/core_decode.hpp"

namespace {

using namespace std::string_literals;
using namespace sluice::core;
using namespace sluice::test;
namespace json = boost::json;

delta_event delta(std::string_view type, std::string_view message_id, std::string_view text,
                  std::int64_t n = 0) {
  json::object o;
  o["text"] = text;
  o["message_id"] = message_id;
  o["n"] = n;
  auto d = make_delta_event(type, message_id, "text", o);
  EXPECT_TRUE(d.has_value());
  return *d;
}

publish_item delta_item(const delta_event& d) {
  return {d.type, d.json, false, &d};
}

// One decoded SSE event, interpreted.
struct seen_event {
  std::string type;
  std::uint64_t id = 0;
  std::uint64_t first = 0;  // the sequences it covers: [first, id]
  bool coalesced = false;
  json::value data;
};

std::vector<seen_event> interpret(std::string_view bytes) {
  std::vector<seen_event> out;
  for (const decoded_event& e : decode(bytes)) {
    seen_event s;
    s.type = e.type;
    s.id = std::stoull(e.id);
    s.first = s.id;
    boost::system::error_code ec;
    s.data = json::parse(e.data, ec);
    EXPECT_FALSE(ec) << e.data;
    if (s.data.is_object()) {
      if (const json::value* c = s.data.as_object().if_contains("coalesced")) {
        s.coalesced = true;
        const json::array& a = c->as_array();
        EXPECT_EQ(a.size(), 2u);
        s.first = a.at(0).to_number<std::uint64_t>();
        EXPECT_EQ(a.at(1).to_number<std::uint64_t>(), s.id) << e.data;
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::string text_of(const seen_event& e) {
  return std::string(e.data.at("text").as_string());
}

// Reads everything available, in batches of about `max_bytes`.
std::vector<seen_event> read_all(subscription& sub, std::size_t max_bytes) {
  read_batch b;
  std::string bytes;
  while (sub.read(b, max_bytes) == read_status::data) bytes += bytes_of(b);
  return interpret(bytes);
}

TEST(MakeDeltaEvent, FieldFirstCompactAndCoalescedDropped) {
  json::object o;
  o["role"] = "assistant";
  o["coalesced"] = json::array{1, 2};
  o["text"] = "say \"hi\"\n\\";
  o["n"] = 7;
  auto d = make_delta_event("token.delta", "msg-1", "text", o);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->type, "token.delta");
  EXPECT_EQ(d->message_id, "msg-1");
  EXPECT_EQ(d->field, "text");
  EXPECT_EQ(d->json, R"({"text":"say \"hi\"\n\\","role":"assistant","n":7})");
  EXPECT_EQ(d->json.substr(d->text_begin, d->text_end - d->text_begin), R"(say \"hi\"\n\\)");
  EXPECT_EQ(d->json.find('\n'), std::string::npos);
  // The JSON is equivalent to the input without "coalesced".
  json::object expected = o;
  expected.erase("coalesced");
  EXPECT_EQ(json::parse(d->json), json::value(expected));
}

TEST(MakeDeltaEvent, EmptyTextAndOtherFieldNames) {
  json::object o;
  o["content"] = "";
  auto d = make_delta_event("message", "m", "content", o);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->json, R"({"content":""})");
  EXPECT_EQ(d->text_begin, d->text_end);
  EXPECT_EQ(d->text_begin, 12u);
}

TEST(MakeDeltaEvent, MissingOrNonStringFieldIsRejected) {
  const auto invalid = boost::system::errc::make_error_code(boost::system::errc::invalid_argument);
  json::object o;
  o["other"] = "x";
  auto missing = make_delta_event("d", "m", "text", o);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error(), invalid);
  for (json::value v : {json::value(1), json::value(nullptr), json::value(true),
                        json::value(json::array{"a"}), json::value(json::object{{"a", "b"}})}) {
    json::object bad;
    bad["text"] = v;
    auto r = make_delta_event("d", "m", "text", bad);
    ASSERT_FALSE(r.has_value()) << json::serialize(v);
    EXPECT_EQ(r.error(), invalid);
  }
}

TEST(MakeDeltaEvent, ReservedFieldNameIsRejected) {
  // "coalesced" is the member a merged event adds; a delta field of that name
  // would give merged events two "coalesced" members.
  json::object o;
  o["coalesced"] = "text";
  auto r = make_delta_event("d", "m", "coalesced", o);
  EXPECT_FALSE(r.has_value());
}

TEST(Coalescing, RunOfOneMessageBecomesOneEvent) {
  auto log = std::make_shared<stream_log>("s", retention_limits{});
  log->publish(delta("token.delta", "m1", "Hel", 1));
  log->publish(delta("token.delta", "m1", "lo, ", 2));
  log->publish(delta("token.delta", "m1", "world", 3));
  counting_waiter w;
  subscription sub(log, 1, w);
  read_batch b;
  ASSERT_EQ(sub.read(b, 1 << 20), read_status::data);
  EXPECT_EQ(b.first_seq, 1u);
  EXPECT_EQ(b.last_seq, 3u);
  EXPECT_EQ(b.sse_events, 1u);
  EXPECT_EQ(b.coalesced_events, 1u);
  const std::string bytes = bytes_of(b);
  EXPECT_EQ(bytes,
            "id: 3\nevent: token.delta\n"
            R"(data: {"coalesced":[1,3],"text":"Hello, world","message_id":"m1","n":3})"
            "\n\n");
  EXPECT_EQ(b.bytes, bytes.size());
  EXPECT_EQ(sub.next_seq(), 4u);
  EXPECT_EQ(sub.read(b, 1 << 20), read_status::waiting);
}

TEST(Coalescing, AMergedEventKeepsItsLastEventsEpochAndRunsStopAtTheBoundary) {
  auto log = std::make_shared<stream_log>("s", retention_limits{});
  ASSERT_TRUE(log->set_epoch("e1"));
  log->publish(delta("token.delta", "m1", "a", 1));
  log->publish(delta("token.delta", "m1", "b", 2));
  ASSERT_TRUE(log->begin_epoch("e2"));
  log->publish(delta("token.delta", "m1", "c", 3));
  log->publish(delta("token.delta", "m1", "d", 4));
  counting_waiter w;
  subscription sub(log, 1, w);
  read_batch b;
  ASSERT_EQ(sub.read(b, 1 << 20), read_status::data);
  EXPECT_EQ(b.sse_events, 2u);
  EXPECT_EQ(b.coalesced_events, 2u);
  EXPECT_EQ(bytes_of(b),
            "id: 2-e1\nevent: token.delta\n"
            R"(data: {"coalesced":[1,2],"text":"ab","message_id":"m1","n":2})"
            "\n\n"
            "id: 4-e2\nevent: token.delta\n"
            R"(data: {"coalesced":[3,4],"text":"cd","message_id":"m1","n":4})"
            "\n\n");
  // Uncoalesced, each keeps its own id.
  subscription one(log, 3, w, false);
  ASSERT_EQ(one.read(b, 1 << 20), read_status::data);
  EXPECT_EQ(bytes_of(b),
            "id: 3-e2\nevent: token.delta\n"
            R"(data: {"text":"c","message_id":"m1","n":3})"
            "\n\n"
            "id: 4-e2\nevent: token.delta\n"
            R"(data: {"text":"d","message_id":"m1","n":4})"
            "\n\n");
}

TEST(Coalescing, DefaultTypeDeltasHaveNoEventLine) {
  auto log = std::make_shared<stream_log>("s", retention_limits{});
  log->publish(delta("message", "m1", "a"));
  log->publish(delta("message", "m1", "b"));
  counting_waiter w;
  subscription sub(log, 1, w);
  read_batch b;
  ASSERT_EQ(sub.read(b, 1 << 20), read_status::data);
  EXPECT_EQ(bytes_of(b),
            "id: 2\n"
            R"(data: {"coalesced":[1,2],"text":"ab","message_id":"m1","n":0})"
            "\n\n");
}

TEST(Coalescing, TextWithEscapesIsByteIdentical) {
  const std::vector<std::string> fragments = {"He said \"",
                                              "hi\"",
                                              " \\ back\\slash\\",
                                              "\n",
                                              "line\r\nbreaks\r",
                                              "\t tab \x01\x1f",
                                              "\xe4\xb8\xad\xe6\x96\x87",
                                              "\xe5\xad\x97",
                                              "\xf0\x9f\x98\x80",
                                              "\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd",
                                              "</script>",
                                              "\xe2\x80\xa8 ls",
                                              "",
                                              "\"}\n\nid: 9\n\n",
                                              "end"};
  std::string all;
  for (const auto& f : fragments) all += f;
  for (const std::string& type : {"token.delta"s, "message"s}) {
    SCOPED_TRACE(type);
    auto log = std::make_shared<stream_log>("s", retention_limits{});
    for (std::size_t i = 0; i < fragments.size(); ++i)
      log->publish(delta(type, "m", fragments[i], static_cast<std::int64_t>(i)));
    counting_waiter w;
    subscription sub(log, 1, w);
    std::vector<seen_event> seen = read_all(sub, 1 << 20);
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_TRUE(seen[0].coalesced);
    EXPECT_EQ(seen[0].type, type);
    EXPECT_EQ(seen[0].first, 1u);
    EXPECT_EQ(seen[0].id, fragments.size());
    EXPECT_EQ(text_of(seen[0]), all);
    EXPECT_EQ(seen[0].data.at("n").as_int64(), static_cast<std::int64_t>(fragments.size() - 1));
    EXPECT_EQ(seen[0].data.at("message_id").as_string(), "m");
  }
}

TEST(Coalescing, RunsBreakOnMessageTypeFieldAndOtherEvents) {
  auto log = std::make_shared<stream_log>("s", retention_limits{});
  log->publish(delta("d", "m1", "a"));   // 1
  log->publish(delta("d", "m1", "b"));   // 2
  log->publish(delta("d", "m2", "c"));   // 3
  log->publish(delta("d", "m2", "d"));   // 4
  log->publish(delta("r", "m2", "e"));   // 5: another type
  log->publish(delta("r", "m2", "f"));   // 6
  log->publish("status", R"({"s":1})");  // 7: not a delta
  log->publish(delta("r", "m2", "g"));   // 8: alone between non-deltas
  log->publish("status", R"({"s":2})");  // 9
  json::object o;
  o["content"] = "h";
  o["text"] = "x";
  log->publish(*make_delta_event("r", "m2", "content", o));  // 10: another field
  log->publish(delta("r", "m2", "i"));                       // 11
  log->publish(delta("r", "m2", "j"));                       // 12
  log->publish(delta("d", "m1", "k"));                       // 13: back to m1 (not adjacent)

  counting_waiter w;
  subscription sub(log, 1, w);
  std::vector<seen_event> seen = read_all(sub, 1 << 20);
  struct expect {
    std::string type;
    std::uint64_t first, id;
    bool coalesced;
  };
  const std::vector<expect> want = {
      {"d", 1, 2, true},       {"d", 3, 4, true},   {"r", 5, 6, true},
      {"status", 7, 7, false}, {"r", 8, 8, false},  {"status", 9, 9, false},
      {"r", 10, 10, false},    {"r", 11, 12, true}, {"d", 13, 13, false}};
  ASSERT_EQ(seen.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(seen[i].type, want[i].type);
    EXPECT_EQ(seen[i].first, want[i].first);
    EXPECT_EQ(seen[i].id, want[i].id);
    EXPECT_EQ(seen[i].coalesced, want[i].coalesced);
  }
  EXPECT_EQ(text_of(seen[0]), "ab");
  EXPECT_EQ(text_of(seen[1]), "cd");
  EXPECT_EQ(text_of(seen[2]), "ef");
  EXPECT_EQ(text_of(seen[4]), "g");
  EXPECT_EQ(seen[6].data.at("content").as_string(), "h");
  EXPECT_EQ(text_of(seen[7]), "ij");
  EXPECT_EQ(text_of(seen[8]), "k");
  // An uncoalesced delta is exactly the published JSON.
  EXPECT_EQ(json::serialize(seen[4].data), delta("r", "m2", "g").json);
}

TEST(Coalescing, OneEventBehindIsNeverCoalesced) {
  auto log = std::make_shared<stream_log>("s", retention_limits{});
  counting_waiter w;
  subscription sub(log, 1, w);
  read_batch b;
  for (int i = 1; i <= 5; ++i) {
    const delta_event d = delta("d", "m", std::to_string(i));
    log->publish(d);
    ASSERT_EQ(sub.read(b, 1 << 20), read_status::data);
    EXPECT_EQ(b.coalesced_events, 0u);
    EXPECT_EQ(b.sse_events, 1u);
    EXPECT_EQ(bytes_of(b), cat("id: ", std::to_string(i), "\nevent: d\ndata: ", d.json, "\n\n"));
  }
  // Starting at the last event of a run: one behind, nothing to merge.
  subscription late(log, 5, w);
  std::vector<seen_event> seen = read_all(late, 1 << 20);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_FALSE(seen[0].coalesced);
  EXPECT_EQ(seen[0].id, 5u);
}

TEST(Coalescing, DisabledPerSubscription) {
  auto log = std::make_shared<stream_log>("s", retention_limits{});
  for (int i = 1; i <= 4; ++i) log->publish(delta("d", "m", std::to_string(i)));
  counting_waiter w;
  subscription sub(log, 1, w, /*coalesce=*/false);
  read_batch b;
  ASSERT_EQ(sub.read(b, 1 << 20), read_status::data);
  EXPECT_EQ(b.coalesced_events, 0u);
  EXPECT_EQ(b.sse_events, 4u);
  std::vector<seen_event> seen = interpret(bytes_of(b));
  ASSERT_EQ(seen.size(), 4u);
  for (std::uint64_t i = 0; i < 4; ++i) {
    EXPECT_FALSE(seen[i].coalesced);
    EXPECT_EQ(seen[i].id, i + 1);
    EXPECT_EQ(text_of(seen[i]), std::to_string(i + 1));
  }
}

TEST(Coalescing, FinalDeltaInARunEndsTheBatch) {
  auto log = std::make_shared<stream_log>("s", retention_limits{});
  log->publish(delta("d", "m", "a"));
  log->publish(delta("d", "m", "b"));
  log->publish(delta("d", "m", "c"), /*final=*/true);
  EXPECT_EQ(log->state(), stream_state::finished);
  counting_waiter w;
  subscription sub(log, 1, w);
  read_batch b;
  ASSERT_EQ(sub.read(b, 1 << 20), read_status::data);
  EXPECT_TRUE(b.final);
  EXPECT_EQ(b.last_seq, 3u);
  std::vector<seen_event> seen = interpret(bytes_of(b));
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(text_of(seen[0]), "abc");
  EXPECT_EQ(sub.read(b, 1 << 20), read_status::ended);
}

TEST(Coalescing, DeltasInPublishAll) {
  auto log = std::make_shared<stream_log>("s", retention_limits{});
  const delta_event a = delta("d", "m", "x\"y"), c = delta("d", "m", "z");
  const std::vector<publish_item> items = {delta_item(a), delta_item(c)};
  publish_outcome o = log->publish_all(items);
  EXPECT_EQ(o.first_sequence, 1u);
  EXPECT_EQ(o.last_sequence, 2u);
  counting_waiter w;
  subscription sub(log, 1, w);
  std::vector<seen_event> seen = read_all(sub, 1 << 20);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].type, "d");
  EXPECT_EQ(text_of(seen[0]), "x\"yz");
}

TEST(Coalescing, RunsSpanSegments) {
  // Deltas big enough that a run crosses several log segments.
  auto log = std::make_shared<stream_log>("s", retention_limits{});
  std::string all;
  for (int i = 0; i < 60; ++i) {
    std::string frag(1500 + i * 37, static_cast<char>('a' + i % 26));
    frag += "\xe4\xb8\xad\"\\\n";
    all += frag;
    log->publish(delta("d", "m", frag, i));
  }
  counting_waiter w;
  subscription sub(log, 1, w);
  std::vector<seen_event> seen = read_all(sub, std::size_t{16} << 20);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].first, 1u);
  EXPECT_EQ(seen[0].id, 60u);
  EXPECT_EQ(text_of(seen[0]), all);
}

// Splits `text` (UTF-8) at code point boundaries into fragments of random size.
std::vector<std::string> random_fragments(const std::vector<std::string>& code_points,
                                          std::mt19937& rng) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < code_points.size()) {
    std::size_t n = rng() % 10 == 0 ? 0 : 1 + rng() % 12;  // sometimes an empty fragment
    std::string f;
    for (std::size_t k = 0; k < n && i < code_points.size(); ++k, ++i) f += code_points[i];
    out.push_back(std::move(f));
  }
  return out;
}

TEST(Coalescing, RandomisedPublishAndReadInterleaving) {
  const std::vector<std::string> alphabet = {"a",
                                             "b",
                                             "z",
                                             " ",
                                             "\"",
                                             "\\",
                                             "\n",
                                             "\r",
                                             "\t",
                                             "\x01",
                                             "/",
                                             "<",
                                             "'",
                                             "\xc3\xa9",
                                             "\xe4\xb8\xad",
                                             "\xe6\x96\x87",
                                             "\xf0\x9f\x98\x80",
                                             "\xe2\x80\xa8",
                                             "{",
                                             "}",
                                             ":",
                                             "0"};
  std::size_t coalesced_seen = 0;  // over all seeds
  for (std::uint32_t seed = 1; seed <= 20; ++seed) {
    SCOPED_TRACE(seed);
    std::mt19937 rng(seed);
    auto log = std::make_shared<stream_log>("s", retention_limits{});

    // Messages and their fragments.
    const int messages = 1 + static_cast<int>(rng() % 5);
    std::vector<std::vector<std::string>> frags(messages);
    std::vector<std::string> expected_text(messages);
    for (int m = 0; m < messages; ++m) {
      std::vector<std::string> cps(rng() % 400);
      for (auto& cp : cps) cp = alphabet[rng() % alphabet.size()];
      for (const auto& cp : cps) expected_text[m] += cp;
      frags[m] = random_fragments(cps, rng);
    }

    // Subscribers: coalescing from the start, non-coalescing, and a late one
    // (created once a third of the events are published).
    struct reader {
      std::unique_ptr<subscription> sub;
      counting_waiter waiter;
      std::string bytes;
      bool coalesce;
    };
    std::vector<std::unique_ptr<reader>> readers;
    auto add_reader = [&](bool coalesce) {
      auto r = std::make_unique<reader>();
      r->coalesce = coalesce;
      r->sub = std::make_unique<subscription>(log, 1, r->waiter, coalesce);
      readers.push_back(std::move(r));
    };
    add_reader(true);
    add_reader(true);
    add_reader(false);

    std::vector<std::size_t> next_frag(messages, 0);
    std::size_t remaining = 0;
    for (const auto& f : frags) remaining += f.size();
    const std::size_t total_deltas = remaining;
    std::uint64_t published = 0;
    std::size_t statuses = 0;
    auto read_some = [&](reader& r) {
      read_batch b;
      const std::size_t max_bytes = 1 + rng() % (rng() % 2 ? 64 : 2048);
      if (r.sub->read(b, max_bytes) == read_status::data) r.bytes += bytes_of(b);
    };
    int current = 0;
    while (remaining > 0) {
      // Mostly continue the current message (long runs); sometimes switch or
      // publish a non-delta status event.
      const std::uint32_t dice = rng() % 100;
      if (dice < 8) {
        log->publish("status", cat("{\"n\":", std::to_string(statuses++), "}"));
        ++published;
      } else {
        if (dice < 25 || next_frag[current] == frags[current].size())
          current = static_cast<int>(rng() % messages);
        if (next_frag[current] == frags[current].size()) continue;
        const std::string id = cat("msg-", std::to_string(current));
        const std::string type = current % 2 ? "token.delta" : "message";
        const std::string& f = frags[current][next_frag[current]++];
        --remaining;
        if (rng() % 5 == 0 && remaining > 0) {
          // An atomic pair: this fragment and, if any, the message's next one.
          const delta_event d1 = delta(type, id, f);
          if (next_frag[current] < frags[current].size()) {
            const delta_event d2 = delta(type, id, frags[current][next_frag[current]++]);
            --remaining;
            const publish_item items[] = {delta_item(d1), delta_item(d2)};
            published += 2;
            EXPECT_EQ(log->publish_all(items).last_sequence, published);
          } else {
            EXPECT_EQ(log->publish(d1).last_sequence, ++published);
          }
        } else {
          EXPECT_EQ(log->publish(delta(type, id, f)).last_sequence, ++published);
        }
      }
      if (readers.size() == 3 && published * 3 >= total_deltas) add_reader(true);
      for (auto& r : readers)
        if (rng() % 4 == 0) read_some(*r);
    }
    log->publish("done", "{}", true);
    ++published;
    if (readers.size() == 3) add_reader(true);
    for (auto& r : readers) {
      read_batch b;
      read_status st;
      while ((st = r->sub->read(b, 1 + rng() % 4096)) == read_status::data) r->bytes += bytes_of(b);
      EXPECT_EQ(st, read_status::ended);
    }

    for (std::size_t ri = 0; ri < readers.size(); ++ri) {
      SCOPED_TRACE(ri);
      const reader& r = *readers[ri];
      std::vector<seen_event> seen = interpret(r.bytes);
      std::uint64_t covered = 0;  // every sequence exactly once, in order
      std::vector<std::string> text(messages);
      for (const seen_event& e : seen) {
        ASSERT_EQ(e.first, covered + 1);
        ASSERT_GE(e.id, e.first);
        covered = e.id;
        if (!r.coalesce) {
          EXPECT_FALSE(e.coalesced);
        }
        if (e.coalesced) {
          ++coalesced_seen;
          EXPECT_GT(e.id, e.first);
        }
        if (e.type == "status" || e.type == "done") {
          EXPECT_EQ(e.id, e.first);
          continue;
        }
        const std::string mid(e.data.at("message_id").as_string());
        const int m = std::stoi(mid.substr(4));
        EXPECT_EQ(e.type, m % 2 ? "token.delta" : "message");
        text[m] += text_of(e);
      }
      EXPECT_EQ(covered, published);
      for (int m = 0; m < messages; ++m) EXPECT_EQ(text[m], expected_text[m]) << m;
    }
  }
  EXPECT_GT(coalesced_seen, 20u);  // the workload did exercise coalescing
}

// One long message read at random points with random budgets.
TEST(Coalescing, RandomisedReadsOfOneMessage) {
  std::mt19937 rng(7);
  auto log = std::make_shared<stream_log>("s", retention_limits{});
  counting_waiter w;
  subscription sub(log, 1, w);
  std::string expected;
  std::string bytes;
  std::size_t coalesced = 0;
  for (int i = 0; i < 500; ++i) {
    std::string f(rng() % 20, static_cast<char>('a' + rng() % 26));
    expected += f;
    log->publish(delta("d", "m", f));
    if (rng() % 7 == 0) {
      read_batch b;
      ASSERT_EQ(sub.read(b, 1 + rng() % 512), read_status::data);
      coalesced += b.coalesced_events;
      bytes += bytes_of(b);
    }
  }
  read_batch b;
  while (sub.read(b, 1 + rng() % 512) == read_status::data) {
    coalesced += b.coalesced_events;
    bytes += bytes_of(b);
  }
  EXPECT_GT(coalesced, 10u);
  std::string got;
  std::uint64_t covered = 0;
  for (const seen_event& e : interpret(bytes)) {
    ASSERT_EQ(e.first, covered + 1);
    covered = e.id;
    got += text_of(e);
  }
  EXPECT_EQ(covered, 500u);
  EXPECT_EQ(got, expected);
}

}  // namespace

// ---- deltas read back from a store (Redis keeps only key and data) --------

namespace {

TEST(DeltaFromStored, RebuildsExactlyWhatMakeDeltaEventMade) {
  json::object o;
  o["text"] = "say \"hi\"\n\\ \xc3\xa9 \x01";
  o["role"] = "assistant";
  o["n"] = 7;
  auto made = make_delta_event("token.delta", "msg-1", "text", o);
  ASSERT_TRUE(made.has_value());
  auto back = delta_from_stored("token.delta", "msg-1", "text", made->json);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->type, made->type);
  EXPECT_EQ(back->message_id, made->message_id);
  EXPECT_EQ(back->field, made->field);
  EXPECT_EQ(back->json, made->json);
  EXPECT_EQ(back->text_begin, made->text_begin);
  EXPECT_EQ(back->text_end, made->text_end);
  // Other field names (escaped ones too) and an empty text.
  json::object p;
  p["a\"b"] = "";
  auto made2 = make_delta_event("message", "m", "a\"b", p);
  ASSERT_TRUE(made2.has_value());
  auto back2 = delta_from_stored("message", "m", "a\"b", made2->json);
  ASSERT_TRUE(back2.has_value());
  EXPECT_EQ(back2->json, R"({"a\"b":""})");
  EXPECT_EQ(back2->text_begin, back2->text_end);
}

TEST(DeltaFromStored, RefusesAnythingElse) {
  const std::string good = R"({"text":"ab","n":1})";
  ASSERT_TRUE(delta_from_stored("message", "m", "text", good).has_value());
  // Bad keys.
  EXPECT_FALSE(delta_from_stored("message", "", "text", good));
  EXPECT_FALSE(delta_from_stored("message", "m m", "text", good));
  EXPECT_FALSE(delta_from_stored("message", std::string(129, 'm'), "text", good));
  EXPECT_FALSE(delta_from_stored("bad type", "m", "text", good));
  EXPECT_FALSE(delta_from_stored("message", "m", "coalesced", R"({"coalesced":"ab"})"));
  EXPECT_FALSE(delta_from_stored("message", "m", "other", good));
  EXPECT_FALSE(delta_from_stored("message", "m", "n", good));  // not first, not a string
  // Not the layout: whitespace, another order, escapes not as serialised,
  // duplicate or "coalesced" members, truncated or broken JSON, not an object.
  for (const char* bad : {
           R"({ "text":"ab","n":1})",
           R"({"text": "ab","n":1})",
           R"({"text":"ab", "n":1})",
           R"({"n":1,"text":"ab"})",
           R"({"text":"\u0061b","n":1})",
           R"({"text":"a\/b","n":1})",
           R"({"text":"ab","text":"cd"})",
           R"({"text":"ab","coalesced":[1,2]})",
           R"({"text":"ab")",
           R"({"text":"ab)",
           R"({"text":"a\)",
           R"({"text":"a\u00)",
           R"({"text":"a\q","n":1})",
           "{\"text\":\"a\nb\"}",
           R"({"text":"ab"]})",
           R"({"text":"ab",})",
           R"({"text":"ab"} )",
           R"(["text","ab"])",
           R"({"text":1})",
           R"({"text")",
           "{\"text\":\"\xff\"}",
           "",
           "{",
       })
    EXPECT_FALSE(delta_from_stored("message", "m", "text", bad)) << bad;
}

// Every prefix of a good delta is refused (no read past the end).
TEST(DeltaFromStored, EveryTruncationIsRefused) {
  json::object o;
  o["text"] = "x\"\\\u00e9\n";
  o["more"] = json::array{1, "two", nullptr};
  auto d = make_delta_event("message", "m", "text", o);
  ASSERT_TRUE(d.has_value());
  for (std::size_t n = 0; n < d->json.size(); ++n)
    EXPECT_FALSE(delta_from_stored("message", "m", "text", std::string(d->json.substr(0, n)))) << n;
  EXPECT_TRUE(delta_from_stored("message", "m", "text", d->json));
}

}  // namespace
