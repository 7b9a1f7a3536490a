// Tests for sluice::core::sse_parser against the WHATWG "interpreting an event
// stream" rules. Every stream is parsed whole, byte by byte, split in two at
// every position and in random-size chunks; all ways must give the same
// transcript, which is then compared with the exact expected one.
#include "core/sse_parser.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <new>
#include <ostream>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "client/sse_fixtures.hpp"

// Counts heap allocations so a test can check that the steady state of the
// parser allocates nothing. Replacing the global operator new is allowed by
// the standard and affects only this test binary.
namespace {
std::atomic<std::size_t> g_allocations{0};
}  // namespace

// noinline keeps GCC from pairing an inlined free() with operator new and
// reporting -Wmismatched-new-delete.
[[gnu::noinline]] void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}

namespace {

using namespace std::string_literals;
using sluice::core::sse_event;
using sluice::core::sse_listener;
using sluice::core::sse_parser;

std::string ev(std::string_view type, std::string_view data, std::string_view id) {
  return "event type=" + std::string(type) + " data=" + std::string(data) +
         " id=" + std::string(id);
}
std::string retry(std::uint64_t ms) {
  return "retry " + std::to_string(ms);
}
std::string comment(std::string_view text) {
  return "comment " + std::string(text);
}

class recording_listener : public sse_listener {
 public:
  void on_event(const sse_event& event) override {
    transcript.push_back(ev(event.type, event.data, event.last_event_id));
  }
  void on_retry(std::uint64_t ms) override { transcript.push_back(retry(ms)); }
  void on_comment(std::string_view text) override { transcript.push_back(comment(text)); }

  std::vector<std::string> transcript;
};

struct parse_result {
  std::vector<std::string> transcript;
  std::string last_event_id;

  bool operator==(const parse_result&) const = default;
};

std::ostream& operator<<(std::ostream& os, const parse_result& r) {
  os << "{transcript=[";
  for (const auto& line : r.transcript) os << ::testing::PrintToString(line) << ", ";
  return os << "], last_event_id=" << ::testing::PrintToString(r.last_event_id) << "}";
}

// Feeds `stream` in chunks whose sizes come from `next_size` (0 is allowed and
// feeds an empty view).
template <class NextSize>
parse_result parse_chunked(std::string_view stream, NextSize next_size) {
  recording_listener listener;
  sse_parser parser(listener);
  std::size_t pos = 0;
  while (pos < stream.size()) {
    const std::size_t n = std::min<std::size_t>(next_size(), stream.size() - pos);
    parser.feed(stream.substr(pos, n));
    pos += n;
  }
  return {listener.transcript, parser.last_event_id()};
}

// Parses `stream` every way and expects identical results; returns the result.
parse_result parse_every_way(std::string_view stream) {
  recording_listener listener;
  sse_parser parser(listener);
  parser.feed(stream);
  const parse_result whole{listener.transcript, parser.last_event_id()};

  {
    SCOPED_TRACE("byte by byte");
    EXPECT_EQ(parse_chunked(stream, [] { return 1; }), whole);
  }
  for (std::size_t split = 0; split <= stream.size(); ++split) {
    SCOPED_TRACE("split in two at " + std::to_string(split));
    bool first = true;
    EXPECT_EQ(parse_chunked(stream,
                            [&] {
                              const std::size_t n = first ? split : stream.size();
                              first = false;
                              return n;
                            }),
              whole);
  }
  for (std::uint32_t seed = 1; seed <= 8; ++seed) {
    SCOPED_TRACE("random chunks, seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    std::uniform_int_distribution<std::size_t> size(0, 9);
    EXPECT_EQ(parse_chunked(stream, [&] { return size(rng); }), whole);
  }
  return whole;
}

using transcript = std::vector<std::string>;

// ---------------------------------------------------------------------------
// Line ends

TEST(SseParserLineEnds, MixedLfCrCrlf) {
  const std::string stream =
      "data:lf\n"
      "data:cr\r"
      "data:crlf\r\n"
      "\r\n"          // blank line: dispatch
      "data:b\r\r"    // CR CR: line, then blank line
      "data:c\n\r"    // LF CR: line, then blank line
      "data:d\r\r\n"  // CR, then CRLF blank line
      "data:e\r\n\n"  // CRLF, then LF blank line
      "data:f\n\n\n"  // an extra blank line dispatches nothing
      "\r\r\n\n";
  const parse_result r = parse_every_way(stream);
  EXPECT_EQ(r.transcript, (transcript{ev("message", "lf\ncr\ncrlf", ""), ev("message", "b", ""),
                                      ev("message", "c", ""), ev("message", "d", ""),
                                      ev("message", "e", ""), ev("message", "f", "")}));
}

TEST(SseParserLineEnds, CrAtEndOfFeedThenLfIsOneLineEnd) {
  recording_listener listener;
  sse_parser parser(listener);
  parser.feed("data:x\r");
  parser.feed("\n");  // completes the CRLF: must not count as a blank line
  EXPECT_TRUE(listener.transcript.empty());
  parser.feed("data:y\r");
  parser.feed("\n\r");  // LF completes the CRLF, the CR is the blank line
  EXPECT_EQ(listener.transcript, (transcript{ev("message", "x\ny", "")}));
  parser.feed("\n");  // completes that CRLF blank line: still one dispatch
  parser.feed("data:z\r");
  parser.feed("");  // an empty feed does not forget the pending CR
  parser.feed("\n");
  EXPECT_EQ(listener.transcript, (transcript{ev("message", "x\ny", "")}));
  parser.feed("\r");  // a second CR after a CR is a blank line
  EXPECT_EQ(listener.transcript, (transcript{ev("message", "x\ny", ""), ev("message", "z", "")}));
}

TEST(SseParserLineEnds, CrLfSplitInEveryWay) {
  const parse_result r = parse_every_way("data:1\r\ndata:2\r\n\r\ndata:3\r\n\r\n");
  EXPECT_EQ(r.transcript, (transcript{ev("message", "1\n2", ""), ev("message", "3", "")}));
}

// ---------------------------------------------------------------------------
// Byte order mark

TEST(SseParserBom, LeadingBomStripped) {
  const parse_result r = parse_every_way(
      "\xEF\xBB\xBF"
      "data:a\n\n");
  EXPECT_EQ(r.transcript, (transcript{ev("message", "a", "")}));

  // After the BOM, a comment is still recognised by its first byte.
  const parse_result c = parse_every_way(
      "\xEF\xBB\xBF"
      ":hi\n");
  EXPECT_EQ(c.transcript, (transcript{comment("hi")}));
}

TEST(SseParserBom, LeadingBomSplitAcrossFeeds) {
  recording_listener listener;
  sse_parser parser(listener);
  parser.feed("\xEF");
  parser.feed("");
  parser.feed("\xBB");
  parser.feed(
      "\xBF"
      "da");
  parser.feed("ta:a\n\n");
  EXPECT_EQ(listener.transcript, (transcript{ev("message", "a", "")}));
}

TEST(SseParserBom, SecondBomKeptAsData) {
  // Two BOMs at the start: the second is part of the first line, whose field
  // name becomes "\xEF\xBB\xBF" "data", an unknown field.
  const parse_result two = parse_every_way(
      "\xEF\xBB\xBF\xEF\xBB\xBF"
      "data:x\n\ndata:y\n\n");
  EXPECT_EQ(two.transcript, (transcript{ev("message", "y", "")}));

  // A BOM anywhere but the very start is data, even at the start of a line.
  const parse_result later = parse_every_way(
      "data:\xEF\xBB\xBFz\n\n"
      "\xEF\xBB\xBF"
      "data:ignored\n\n");
  EXPECT_EQ(later.transcript, (transcript{ev("message", "\xEF\xBB\xBFz", "")}));

  // Nor is a BOM stripped after a leading blank line.
  const parse_result after_blank = parse_every_way(
      "\n\xEF\xBB\xBF"
      "data:ignored\n\n");
  EXPECT_TRUE(after_blank.transcript.empty());
}

TEST(SseParserBom, PartialBomPrefixIsKept) {
  // EF BB not followed by BF is not a BOM: the held-back bytes start the first
  // line, so its field name is "\xEF\xBB" "data" and it is ignored.
  const parse_result two_bytes = parse_every_way(
      "\xEF\xBB"
      "data:x\n\ndata:y\n\n");
  EXPECT_EQ(two_bytes.transcript, (transcript{ev("message", "y", "")}));
  const parse_result one_byte = parse_every_way(
      "\xEF"
      "data:x\n\ndata:y\n\n");
  EXPECT_EQ(one_byte.transcript, (transcript{ev("message", "y", "")}));
  // The held-back bytes go into the data when they are part of a value.
  const parse_result in_line = parse_every_way("\xEF\xBB\n\ndata:\xEF\xBB\n\n");
  EXPECT_EQ(in_line.transcript, (transcript{ev("message", "\xEF\xBB", "")}));
}

// ---------------------------------------------------------------------------
// Comments and fields

TEST(SseParserComments, ReportedWithoutColonAndDoNotDispatch) {
  const parse_result r = parse_every_way(
      ":hello\n"
      ": spaced\r\n"
      ":\r"
      "::a:b\n"
      "data:a\n"
      ":inside a block\n"
      "data:b\n"
      "\n");
  EXPECT_EQ(r.transcript,
            (transcript{comment("hello"), comment(" spaced"), comment(""), comment(":a:b"),
                        comment("inside a block"), ev("message", "a\nb", "")}));
}

TEST(SseParserFields, NameWithoutColonHasEmptyValue) {
  const parse_result r = parse_every_way(
      "data\n\n"                        // data buffer "\n": dispatched with empty data
      "data\ndata\n\n"                  // two empty data lines: "\n"
      "event:x\nevent\ndata:1\n\n"      // empty event type: "message"
      "id:7\ndata:2\n\nid\ndata:3\n\n"  // bare id resets the id
      "retry\n"                         // empty retry: ignored
      "unknown\n\n");
  EXPECT_EQ(r.transcript,
            (transcript{ev("message", "", ""), ev("message", "\n", ""), ev("message", "1", ""),
                        ev("message", "2", "7"), ev("message", "3", "")}));
}

TEST(SseParserFields, OnlyOneLeadingSpaceStripped) {
  const parse_result r = parse_every_way(
      "data:  x\n\n"
      "data: y \n\n"
      "data:\tz\n\n"
      "data: \n\n"
      "data:a:b\n\n"
      "data: :c\n\n"
      "event:  e\nid:  i\ndata:1\n\n");
  EXPECT_EQ(r.transcript,
            (transcript{ev("message", " x", ""), ev("message", "y ", ""), ev("message", "\tz", ""),
                        ev("message", "", ""), ev("message", "a:b", ""), ev("message", ":c", ""),
                        ev(" e", "1", " i")}));
  EXPECT_EQ(r.last_event_id, " i");
}

TEST(SseParserFields, NamesAreExactAndCaseSensitive) {
  const parse_result r = parse_every_way(
      "Data:x\n\n"
      "data :x\n\n"
      " data:x\n\n"
      "dat:x\n\n"
      "datas:x\n\n"
      "ID:5\nEvent:t\nRetry:5\ndata:ok\n\n");
  EXPECT_EQ(r.transcript, (transcript{ev("message", "ok", "")}));
}

TEST(SseParserData, MultiLineJoinedWithLfAndOneTrailingLfRemoved) {
  const parse_result r = parse_every_way(
      "data:a\ndata:\ndata:b\n\n"
      "data:c\ndata:\n\n"
      "data:\n\n"
      "data:nul\0inside\n\n"s);
  EXPECT_EQ(r.transcript, (transcript{ev("message", "a\n\nb", ""), ev("message", "c\n", ""),
                                      ev("message", "", ""), ev("message", "nul\0inside"s, "")}));
}

// ---------------------------------------------------------------------------
// Dispatch, event type and id

TEST(SseParserDispatch, BlockWithoutDataNotDispatchedButIdCommitted) {
  const std::string head =
      "id:1\ndata:a\n\n"
      "id:2\nevent:ignored\n:note\n\n";
  const parse_result r = parse_every_way(head);
  EXPECT_EQ(r.transcript, (transcript{ev("message", "a", "1"), comment("note")}));
  EXPECT_EQ(r.last_event_id, "2");

  const parse_result more = parse_every_way(head + "data:b\n\n");
  EXPECT_EQ(more.transcript,
            (transcript{ev("message", "a", "1"), comment("note"), ev("message", "b", "2")}));
}

TEST(SseParserDispatch, EventTypeResetAfterEveryBlock) {
  const parse_result r = parse_every_way(
      "event:update\ndata:1\n\n"
      "data:2\n\n"
      "event:lost\n\n"  // no data: not dispatched, type still reset
      "data:3\n\n"
      "event:a\nevent:b\ndata:4\n\n");
  EXPECT_EQ(r.transcript, (transcript{ev("update", "1", ""), ev("message", "2", ""),
                                      ev("message", "3", ""), ev("b", "4", "")}));
}

TEST(SseParserDispatch, IdBufferPersistsAcrossEvents) {
  const parse_result r = parse_every_way(
      "id:1\ndata:a\n\n"
      "data:b\n\n"
      "data:c\nid:9\n\n");  // an id after the data still belongs to this block
  EXPECT_EQ(r.transcript, (transcript{ev("message", "a", "1"), ev("message", "b", "1"),
                                      ev("message", "c", "9")}));
  EXPECT_EQ(r.last_event_id, "9");
}

TEST(SseParserId, ValueWithNulIgnored) {
  const parse_result r = parse_every_way(
      "id:1\ndata:a\n\n"
      "id:2\0x\ndata:b\n\n"
      "id:\0\n\n"s);
  EXPECT_EQ(r.transcript, (transcript{ev("message", "a", "1"), ev("message", "b", "1")}));
  EXPECT_EQ(r.last_event_id, "1");
}

TEST(SseParserId, EmptyIdResets) {
  const parse_result r = parse_every_way(
      "id:1\ndata:a\n\n"
      "id:\ndata:b\n\n"
      "id:3\n\n"
      "id\ndata:c\n\n"
      "id:4\n\n"
      "id: \ndata:d\n\n");
  EXPECT_EQ(r.transcript, (transcript{ev("message", "a", "1"), ev("message", "b", ""),
                                      ev("message", "c", ""), ev("message", "d", "")}));
  EXPECT_EQ(r.last_event_id, "");

  const parse_result committed = parse_every_way("id:1\n\nid:\n\n");
  EXPECT_EQ(committed.last_event_id, "");
}

// ---------------------------------------------------------------------------
// Retry

TEST(SseParserRetry, OnlyAsciiDigits) {
  const parse_result r = parse_every_way(
      "retry:1000\n"
      "retry: 250\n"
      "retry:007\n"
      "retry:0\n"
      "retry: 12a\n"
      "retry:\n"
      "retry: \n"
      "retry\n"
      "retry:-5\n"
      "retry:+5\n"
      "retry:1.5\n"
      "retry:  5\n"
      "retry:5 \n"
      "retry:1e3\n"
      "retry:\xEF\xBC\x95\n"  // FULLWIDTH DIGIT FIVE is not an ASCII digit
      "\n");                  // retry alone dispatches nothing
  EXPECT_EQ(r.transcript, (transcript{retry(1000), retry(250), retry(7), retry(0)}));
}

TEST(SseParserRetry, HugeValueSaturates) {
  constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
  const parse_result r = parse_every_way(
      "retry:18446744073709551614\n"
      "retry:18446744073709551615\n"
      "retry:18446744073709551616\n"
      "retry:99999999999999999999999999\n");
  EXPECT_EQ(r.transcript, (transcript{retry(kMax - 1), retry(kMax), retry(kMax), retry(kMax)}));
}

// ---------------------------------------------------------------------------
// End of input, UTF-8, last event id, reset

TEST(SseParserEndOfInput, UnterminatedBlockNotDispatched) {
  for (const std::string tail :
       {"data:b", "data:b\n", "data:b\r", "data:b\r\n", "id:2\ndata:b\n"}) {
    SCOPED_TRACE(tail);
    const parse_result r = parse_every_way("id:1\ndata:a\n\n" + tail);
    EXPECT_EQ(r.transcript, (transcript{ev("message", "a", "1")}));
    EXPECT_EQ(r.last_event_id, "1");
  }
}

TEST(SseParserUtf8, ChineseTextSplitAtEveryByte) {
  // parse_every_way splits the stream in two at every byte, so every
  // multi-byte sequence is cut at each of its inner positions.
  const parse_result r = parse_every_way(
      "event:问候\n"
      "id:编号一\n"
      "data:你好，世界\n"
      "data:第二行\r\n"
      "\r\n"
      ":心跳\n");
  EXPECT_EQ(r.transcript,
            (transcript{ev("问候", "你好，世界\n第二行", "编号一"), comment("心跳")}));
  EXPECT_EQ(r.last_event_id, "编号一");
}

TEST(SseParserLastEventId, StreamCutMidEventKeepsPreviousId) {
  const std::string stream = "id:1\ndata:a\n\nid:2\ndata:b\n";
  const parse_result r = parse_every_way(stream);
  EXPECT_EQ(r.transcript, (transcript{ev("message", "a", "1")}));
  EXPECT_EQ(r.last_event_id, "1");

  recording_listener listener;
  sse_parser parser(listener);
  parser.feed(stream);
  EXPECT_EQ(parser.last_event_id(), "1");
  parser.feed("\n");
  EXPECT_EQ(parser.last_event_id(), "2");
  EXPECT_EQ(listener.transcript, (transcript{ev("message", "a", "1"), ev("message", "b", "2")}));
}

TEST(SseParserResetPartial, DropsPartialBlockAndUncommittedId) {
  recording_listener listener;
  sse_parser parser(listener);
  parser.feed("id:1\ndata:a\n\nid:2\nevent:t\ndata:b\ndata:part");
  parser.reset_partial();
  EXPECT_EQ(parser.last_event_id(), "1");
  // A new connection: the partial line, data, type and id:2 are gone.
  parser.feed("ial\ndata:c\n\n");
  EXPECT_EQ(listener.transcript, (transcript{ev("message", "a", "1"), ev("message", "c", "1")}));
  EXPECT_EQ(parser.last_event_id(), "1");
}

TEST(SseParserResetPartial, NewStreamMayStartWithBom) {
  recording_listener listener;
  sse_parser parser(listener);
  parser.feed(
      "\xEF\xBB\xBF"
      "data:a\n\n");
  parser.reset_partial();
  parser.feed("\xEF\xBB");
  parser.feed(
      "\xBF"
      "data:b\n\n");
  EXPECT_EQ(listener.transcript, (transcript{ev("message", "a", ""), ev("message", "b", "")}));
}

// ---------------------------------------------------------------------------
// Differential test against a deliberately naive whole-stream implementation
// of the standard, on random streams built from the format's own tokens.

parse_result reference_parse(std::string_view s) {
  constexpr std::string_view kBom = "\xEF\xBB\xBF";
  if (s.substr(0, 3) == kBom) s.remove_prefix(3);
  std::vector<std::string> lines;
  std::string current;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r' || s[i] == '\n') {
      if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
      lines.push_back(current);
      current.clear();
    } else {
      current += s[i];
    }
  }  // `current` is an unterminated line: discarded.

  parse_result r;
  std::string data, type, id_buffer;
  for (const std::string& line : lines) {
    if (line.empty()) {
      r.last_event_id = id_buffer;
      if (!data.empty()) {
        data.pop_back();
        r.transcript.push_back(ev(type.empty() ? "message" : type, data, r.last_event_id));
      }
      data.clear();
      type.clear();
      continue;
    }
    if (line[0] == ':') {
      r.transcript.push_back(comment(line.substr(1)));
      continue;
    }
    const std::size_t colon = line.find(':');
    const std::string field = line.substr(0, colon);
    std::string value = colon == std::string::npos ? "" : line.substr(colon + 1);
    if (!value.empty() && value[0] == ' ') value.erase(0, 1);
    if (field == "data") {
      data += value + "\n";
    } else if (field == "event") {
      type = value;
    } else if (field == "id") {
      if (value.find('\0') == std::string::npos) id_buffer = value;
    } else if (field == "retry") {
      if (!value.empty() &&
          std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        std::uint64_t ms = std::numeric_limits<std::uint64_t>::max();
        try {
          ms = std::stoull(value);
        } catch (const std::out_of_range&) {
        }
        r.transcript.push_back(retry(ms));
      }
    }
  }
  return r;
}

TEST(SseParserDifferential, RandomTokenStreamsMatchReference) {
  const std::vector<std::string> tokens = {
      "data", "event", "id",           "retry", "x",     "42",   ":",       ":",
      " ",    " ",     "\r",           "\n",    "\n",    "\r\n", "\0"s,     "\xEF",
      "\xBB", "\xBF",  "\xEF\xBB\xBF", "é",     "data:", "\n\n", "\r\n\r\n"};
  for (std::uint32_t seed = 1; seed <= 200; ++seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<std::size_t> pick(0, tokens.size() - 1);
    std::uniform_int_distribution<int> length(0, 60);
    std::string stream;
    for (int n = length(rng); n > 0; --n) stream += tokens[pick(rng)];
    SCOPED_TRACE(::testing::PrintToString(stream));
    EXPECT_EQ(parse_every_way(stream), reference_parse(stream));
  }
}

// ---------------------------------------------------------------------------
// Steady state allocates nothing (the load generator parses ~1.5M events/s).

class counting_listener : public sse_listener {
 public:
  void on_event(const sse_event& event) override {
    bytes += event.data.size();
    ++events;
  }
  std::size_t events = 0;
  std::size_t bytes = 0;
};

TEST(SseParserAllocation, SteadyStateAllocatesNothing) {
  std::string chunk;
  for (int i = 0; i < 100; ++i) {
    chunk += "id:" + std::to_string(100000 + i) +
             "\nevent:token\ndata:{\"delta\":\"some generated text here\"}\ndata:more\n\n";
  }
  counting_listener listener;
  sse_parser parser(listener);
  // Warm-up grows line_, data_, type_ and the id strings to their final sizes,
  // including lines that span feeds.
  parser.feed(chunk);
  for (std::size_t i = 0; i < chunk.size(); i += 7)
    parser.feed(std::string_view(chunk).substr(i, 7));

  const std::size_t before = g_allocations.load();
  parser.feed(chunk);
  for (std::size_t i = 0; i < chunk.size(); i += 7)
    parser.feed(std::string_view(chunk).substr(i, 7));
  const std::size_t after = g_allocations.load();

  EXPECT_EQ(after - before, 0u);
  EXPECT_EQ(listener.events, 400u);
}

}  // namespace

namespace {

struct has_id_recorder : sse_listener {
  std::vector<std::pair<std::string, bool>> seen;  // (last event id, has_id)
  void on_event(const sse_event& e) override { seen.emplace_back(std::string(e.last_event_id), e.has_id); }
};

TEST(SseParserHasId, TellsWhetherTheEventsOwnBlockCarriedAnId) {
  // An id-only block sets the id but dispatches nothing; the next event
  // without an id line reports the inherited id with has_id false; an id
  // with NUL is ignored (has_id false); an empty id is an id.
  const std::string stream =
      "id: 1\ndata: a\n\n"
      "data: b\n\n"
      "id: 2\n\n"
      "data: c\n\n"
      "id: x\0y\ndata: d\n\n"s
      "id\ndata: e\n\n";
  for (std::size_t split = 0; split <= stream.size(); ++split) {
    has_id_recorder r;
    sse_parser p(r);
    p.feed(std::string_view(stream).substr(0, split));
    p.feed(std::string_view(stream).substr(split));
    const std::vector<std::pair<std::string, bool>> want{
        {"1", true}, {"1", false}, {"2", false}, {"2", false}, {"", true}};
    EXPECT_EQ(r.seen, want) << "split at " << split;
  }
}

// ---------------------------------------------------------------------------
// The shared byte-exact fixtures (tests/client/sse_fixtures.hpp), in every
// chunking: whole, byte by byte, fixed pieces, and split in two at every
// position (fixtures shorter than 4 KiB).

struct fixture_recorder : sse_listener {
  std::vector<sluice::test::fixture_event> events;
  std::vector<std::uint64_t> retries;
  void on_event(const sse_event& e) override {
    events.push_back({std::string(e.type), std::string(e.data), std::string(e.last_event_id),
                      e.has_id ? std::optional<std::string>(std::string(e.last_event_id))
                               : std::nullopt});
  }
  void on_retry(std::uint64_t ms) override { retries.push_back(ms); }
};

void expect_fixture(const sluice::test::sse_fixture& f, const std::vector<std::string>& pieces) {
  fixture_recorder r;
  sse_parser p(r);
  for (const auto& piece : pieces) p.feed(piece);
  ASSERT_EQ(r.events.size(), f.events.size());
  for (std::size_t i = 0; i < f.events.size(); ++i) {
    SCOPED_TRACE("event " + std::to_string(i));
    EXPECT_EQ(r.events[i].type, f.events[i].type);
    EXPECT_EQ(r.events[i].data, f.events[i].data);
    EXPECT_EQ(r.events[i].last_event_id, f.events[i].last_event_id);
    EXPECT_EQ(r.events[i].own_id, f.events[i].own_id);
  }
  EXPECT_EQ(r.retries, f.retries);
  EXPECT_EQ(p.last_event_id(), f.final_last_event_id);
}

TEST(SseParserFixtures, EveryFixtureInEveryChunking) {
  for (const auto& f : sluice::test::sse_fixtures()) {
    SCOPED_TRACE("fixture " + f.name);
    for (std::size_t piece : {0, 1, 2, 3, 7, 64, 4096}) {
      SCOPED_TRACE("pieces of " + std::to_string(piece));
      expect_fixture(f, sluice::test::chunked(f.bytes, piece));
    }
    if (f.bytes.size() < 4096) {
      for (std::size_t split = 0; split <= f.bytes.size(); ++split) {
        SCOPED_TRACE("split at " + std::to_string(split));
        expect_fixture(f, {f.bytes.substr(0, split), f.bytes.substr(split)});
      }
    }
  }
}

}  // namespace
