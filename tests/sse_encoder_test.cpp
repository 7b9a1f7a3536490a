// Tests for the SSE framing functions. Every encoded stream is decoded with the
// project's WHATWG parser, so a test checks what a conforming client sees, not
// only the bytes we meant to write.
#include "core/sse_encoder.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/sse_parser.hpp"
#include "support/core_decode.hpp"

namespace {

using namespace std::string_literals;
using sluice::core::decimal_digits;
using sluice::core::encode_sse_comment;
using sluice::core::encode_sse_event;
using sluice::core::encode_sse_retry;
using sluice::core::sse_event;
using sluice::core::sse_listener;
using sluice::core::sse_parser;
using sluice::test::decode_all;
using sluice::test::decoded_event;
using sluice::test::normalise;
using sluice::test::transcript;

TEST(SseEncoder, IdAndDefaultTypeIsOmitted) {
  const std::string bytes = encode_sse_event(7, "message", "hello");
  EXPECT_EQ(bytes, "id: 7\ndata: hello\n\n");
  const transcript t = decode_all(bytes);
  ASSERT_EQ(t.events.size(), 1u);
  EXPECT_EQ(t.events[0], (decoded_event{"message", "hello", "7"}));
}

TEST(SseEncoder, OtherTypeGetsEventLine) {
  const std::string bytes = encode_sse_event(42, "token.delta", R"({"t":"x"})");
  EXPECT_EQ(bytes, "id: 42\nevent: token.delta\ndata: {\"t\":\"x\"}\n\n");
  const transcript t = decode_all(bytes);
  ASSERT_EQ(t.events.size(), 1u);
  EXPECT_EQ(t.events[0], (decoded_event{"token.delta", R"({"t":"x"})", "42"}));
}

TEST(SseEncoder, IdZeroMeansNoIdLine) {
  const std::string bytes = encode_sse_event(0, "message", "x");
  EXPECT_EQ(bytes, "data: x\n\n");
  const transcript t = decode_all(bytes);
  ASSERT_EQ(t.events.size(), 1u);
  EXPECT_EQ(t.events[0], (decoded_event{"message", "x", ""}));
}

TEST(SseEncoder, LargeIds) {
  for (std::uint64_t id : std::vector<std::uint64_t>{1, 9, 10, 99, 100, 123456789, UINT64_MAX}) {
    const transcript t = decode_all(encode_sse_event(id, "message", "d"));
    ASSERT_EQ(t.events.size(), 1u) << id;
    EXPECT_EQ(t.events[0].id, std::to_string(id));
  }
}

TEST(SseEncoder, MultiLineDataRoundTripsWithLineEndsNormalised) {
  const std::vector<std::string> cases = {
      "",
      "a",
      "a\nb",
      "a\rb",
      "a\r\nb",
      "a\n\rb",  // LF then CR: two breaks, an empty line between
      "a\r\n\nb\rc\n\r\nd",
      "\nleading",
      "\r\nleading crlf",
      "\rleading cr",
      "trailing\n",
      "trailing cr\r",
      "trailing crlf\r\n",
      "\n",
      "\r",
      "\r\n",
      "\n\n\n",
      "\r\r\n\n\r",
      "data: fake\nid: 5",
      "  spaces  \n\ttab",
      "\xe4\xb8\xad\xe6\x96\x87\n\xf0\x9f\x98\x80",
  };
  for (const std::string& data : cases) {
    SCOPED_TRACE(testing::PrintToString(data));
    const std::string bytes = encode_sse_event(3, "message", data);
    const transcript t = decode_all(bytes);
    ASSERT_EQ(t.events.size(), 1u);
    EXPECT_EQ(t.events[0], (decoded_event{"message", normalise(data), "3"}));
    // Also through a non-default type.
    const transcript t2 = decode_all(encode_sse_event(4, "delta", data));
    ASSERT_EQ(t2.events.size(), 1u);
    EXPECT_EQ(t2.events[0], (decoded_event{"delta", normalise(data), "4"}));
  }
}

TEST(SseEncoder, ExactFramingOfLineBreaks) {
  EXPECT_EQ(encode_sse_event(1, "message", "a\r\nb\rc\nd"),
            "id: 1\ndata: a\ndata: b\ndata: c\ndata: d\n\n");
  EXPECT_EQ(encode_sse_event(1, "message", ""), "id: 1\ndata: \n\n");
  EXPECT_EQ(encode_sse_event(1, "message", "\n"), "id: 1\ndata: \ndata: \n\n");
  EXPECT_EQ(encode_sse_event(1, "message", "x\r"), "id: 1\ndata: x\ndata: \n\n");
}

TEST(SseEncoder, DataCannotInjectFieldsOrEvents) {
  const std::vector<std::string> attacks = {
      "\n\nid: 999\nevent: evil\ndata: x",
      "\r\rid: 999\revent: evil\rdata: x",
      "\r\n\r\nid: 999\r\nevent: evil\r\ndata: x",
      "ok\n\nretry: 1\n\n:comment\n\nid: 999\n\n",
      "\n\n",
      "\n\nevent: evil\n\n\n",
  };
  for (const std::string& data : attacks) {
    SCOPED_TRACE(testing::PrintToString(data));
    const std::string bytes = encode_sse_event(12, "agent.output", data);
    const transcript t = decode_all(bytes);
    ASSERT_EQ(t.events.size(), 1u);
    EXPECT_EQ(t.events[0], (decoded_event{"agent.output", normalise(data), "12"}));
    EXPECT_TRUE(t.retries.empty());
    EXPECT_TRUE(t.comments.empty());
  }
  // Followed by an ordinary event, the client's state is not disturbed.
  const transcript t = decode_all(encode_sse_event(12, "message", "\n\nid: 999\nevent: evil\ndata: x") +
                              encode_sse_event(13, "message", "next"));
  ASSERT_EQ(t.events.size(), 2u);
  EXPECT_EQ(t.events[0], (decoded_event{"message", "\n\nid: 999\nevent: evil\ndata: x", "12"}));
  EXPECT_EQ(t.events[1], (decoded_event{"message", "next", "13"}));
}

TEST(SseEncoder, CommentIsOneCommentEvenWithLineBreaks) {
  EXPECT_EQ(encode_sse_comment("ping"), ":ping\n\n");
  for (const std::string& text :
       {"ping"s, "a\nb"s, "a\rb"s, "a\r\nb"s, "\n\nid: 9\ndata: x\n\n"s, ""s, "\r\n"s}) {
    SCOPED_TRACE(testing::PrintToString(text));
    const std::string bytes = encode_sse_comment(text);
    const transcript t = decode_all(bytes);
    EXPECT_TRUE(t.events.empty());
    EXPECT_TRUE(t.retries.empty());
    ASSERT_EQ(t.comments.size(), 1u);
    EXPECT_EQ(t.comments[0].size(), text.size());
    EXPECT_EQ(t.comments[0].find_first_of("\r\n"), std::string::npos);
  }
  // A comment between events changes nothing about them.
  const transcript t =
      decode_all(encode_sse_event(1, "message", "a") + encode_sse_comment("hb\nid: 7") +
             encode_sse_event(2, "message", "b"));
  ASSERT_EQ(t.events.size(), 2u);
  EXPECT_EQ(t.events[1], (decoded_event{"message", "b", "2"}));
  ASSERT_EQ(t.comments.size(), 1u);
}

TEST(SseEncoder, Retry) {
  EXPECT_EQ(encode_sse_retry(3000), "retry: 3000\n\n");
  for (std::uint64_t ms : std::vector<std::uint64_t>{0, 1, 3000, 86400000}) {
    const transcript t = decode_all(encode_sse_retry(ms));
    EXPECT_TRUE(t.events.empty());
    ASSERT_EQ(t.retries.size(), 1u);
    EXPECT_EQ(t.retries[0], ms);
  }
}

TEST(SseEncoder, DecimalDigits) {
  EXPECT_EQ(decimal_digits(0), 1);
  EXPECT_EQ(decimal_digits(9), 1);
  EXPECT_EQ(decimal_digits(10), 2);
  EXPECT_EQ(decimal_digits(99), 2);
  EXPECT_EQ(decimal_digits(100), 3);
  EXPECT_EQ(decimal_digits(UINT64_MAX), 20);
  for (std::uint64_t n = 1, d = 1; d <= 19; n *= 10, ++d) {
    EXPECT_EQ(decimal_digits(n), static_cast<int>(d));
    EXPECT_EQ(decimal_digits(n * 10 - 1), static_cast<int>(d));
  }
}

}  // namespace
