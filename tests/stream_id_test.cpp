// Tests for the validation of names that reach the wire (stream ids and SSE
// event types): [A-Za-z0-9._:-]{1,128}.
#include "core/stream_id.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace {

using namespace std::string_literals;
using sluice::core::is_valid_event_name;
using sluice::core::is_valid_stream_id;
using sluice::core::max_name_length;

struct validator {
  const char* name;
  bool (*fn)(std::string_view);
};

class NameValidation : public testing::TestWithParam<validator> {};

TEST_P(NameValidation, AcceptsTheAllowedCharset) {
  auto valid = GetParam().fn;
  EXPECT_TRUE(valid("a"));
  EXPECT_TRUE(valid("Z"));
  EXPECT_TRUE(valid("0"));
  EXPECT_TRUE(valid("."));
  EXPECT_TRUE(valid("-"));
  EXPECT_TRUE(valid("_"));
  EXPECT_TRUE(valid(":"));
  EXPECT_TRUE(valid("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-"));
  EXPECT_TRUE(valid("run-2024.05:agent_1"));
  EXPECT_TRUE(valid("message"));
  EXPECT_TRUE(valid("token.delta"));
}

TEST_P(NameValidation, EveryByteOutsideTheCharsetIsRejected) {
  auto valid = GetParam().fn;
  const std::string allowed = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-";
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    const bool expected = allowed.find(c) != std::string::npos;
    EXPECT_EQ(valid(std::string(1, c)), expected) << "byte " << b;
    // Also in the middle of an otherwise valid name.
    EXPECT_EQ(valid("ab"s + c + "cd"), expected) << "byte " << b;
  }
}

TEST_P(NameValidation, LengthLimit) {
  auto valid = GetParam().fn;
  EXPECT_EQ(max_name_length, 128u);
  EXPECT_FALSE(valid(""));
  EXPECT_TRUE(valid(std::string(1, 'x')));
  EXPECT_TRUE(valid(std::string(127, 'x')));
  EXPECT_TRUE(valid(std::string(128, 'x')));
  EXPECT_FALSE(valid(std::string(129, 'x')));
  EXPECT_FALSE(valid(std::string(4096, 'x')));
}

TEST_P(NameValidation, RejectsInjectionAndPathCharacters) {
  auto valid = GetParam().fn;
  EXPECT_FALSE(valid("a\rb"));
  EXPECT_FALSE(valid("a\nb"));
  EXPECT_FALSE(valid("a\r\nb"));
  EXPECT_FALSE(valid("evil\n\nid: 9"));
  EXPECT_FALSE(valid("a\0b"s));
  EXPECT_FALSE(valid("\0"s));
  EXPECT_FALSE(valid("abc\0"s));  // a NUL at the end is not a terminator here
  EXPECT_FALSE(valid("a b"));
  EXPECT_FALSE(valid(" "));
  EXPECT_FALSE(valid("a\tb"));
  EXPECT_FALSE(valid("a/b"));
  EXPECT_FALSE(valid("../etc"));
  EXPECT_FALSE(valid("a\\b"));
  EXPECT_FALSE(valid("a?b"));
  EXPECT_FALSE(valid("a%2Fb"));
  EXPECT_FALSE(valid("\xe4\xb8\xad"));      // U+4E2D
  EXPECT_FALSE(valid("caf\xc3\xa9"));       // é
  EXPECT_FALSE(valid("\xf0\x9f\x98\x80"));  // emoji
  EXPECT_FALSE(valid("\xff"));
  // A valid 128-byte name with one bad byte replaced is rejected wherever it is.
  for (std::size_t i = 0; i < 128; ++i) {
    std::string s(128, 'k');
    s[i] = '\n';
    EXPECT_FALSE(valid(s)) << i;
  }
}

INSTANTIATE_TEST_SUITE_P(StreamIdAndEventName, NameValidation,
                         testing::Values(validator{"stream_id", &is_valid_stream_id},
                                         validator{"event_name", &is_valid_event_name}),
                         [](const testing::TestParamInfo<validator>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
