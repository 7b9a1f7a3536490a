// Cuts a finished answer into small text deltas for streaming, the way a model
// provider would send tokens, so transports treat the builtin answerer like
// any other producer.
//
// Contract: the deltas are non-empty, contiguous, in order, and concatenate
// byte-exactly to the input; none splits a UTF-8 sequence. Shapes:
//  * a citation marker "[12]" is its own delta;
//  * a run of CJK characters is cut every `cjk_chars_per_delta` characters;
//    CJK punctuation and whitespace stay with the characters before them;
//  * other text is cut after each word and its trailing whitespace, words
//    longer than max_word_chars code points (URLs) in pieces of that size.
// Leading whitespace goes with the first delta.
//
// Pure and thread-safe. answer_delta_stream is a cursor over its own copy of
// the text: not thread-safe, one consumer.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::llm {

struct delta_options {
  std::size_t cjk_chars_per_delta = 2;
  std::size_t max_word_chars = 24;
};

std::vector<std::string_view> split_into_deltas(std::string_view text,
                                                const delta_options& options = {});

class answer_delta_stream {
 public:
  explicit answer_delta_stream(std::string text, const delta_options& options = {});
  answer_delta_stream(const answer_delta_stream&) = delete;
  answer_delta_stream& operator=(const answer_delta_stream&) = delete;

  // The next delta, or nullopt once the whole text was returned. The view is
  // valid as long as the stream object.
  std::optional<std::string_view> next();
  bool done() const { return next_ == deltas_.size(); }
  const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::vector<std::string_view> deltas_;  // views into text_
  std::size_t next_ = 0;
};

}  // namespace sluice::llm
