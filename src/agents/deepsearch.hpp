// The deep-search tool: query decomposition -> parallel search with dedup ->
// answer generation, reporting each stage to a listener as it happens.
//
// With no model (builtin): rule-based decomposition (search/query_decomposer)
// and extractive answering (llm/builtin_answerer). With a chat_provider:
// the model decomposes, judges after each loop whether the documents answer
// the question (max_loop > 1) and writes the answer with [n] citations.
//
// Cancellation: honours the awaiting coroutine's cancellation; listeners see
// nothing after it.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/json/array.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "agents/search_service.hpp"
#include "llm/chat_provider.hpp"

namespace sluice::agents {

// What agents and tools need from the world; they never see sockets.
struct agent_env {
  search_service* search = nullptr;
  llm::chat_provider* model = nullptr;  // nullptr: the offline builtin method
  // Pause between the builtin answerer's deltas, so offline answers stream
  // like a model's; 0 emits them back to back (tests).
  std::chrono::milliseconds builtin_delta_pause{20};
  std::size_t per_query_hits = 5;
  std::size_t max_docs = 8;
  std::size_t max_sub_queries = 5;
};

class deepsearch_listener {
 public:
  virtual ~deepsearch_listener() = default;
  // status: "query_decomposition", "searching", "generating"
  virtual void on_status(std::string_view status, std::string_view message) = 0;
  virtual void on_search(const std::vector<std::string>& sub_queries,
                         const std::vector<search::search_hit>& docs) = 0;
  virtual void on_answer_delta(std::string_view text) = 0;
};

struct deepsearch_outcome {
  boost::system::error_code ec;  // operation_aborted when cancelled
  std::string error_message;
  std::string answer;
  std::vector<std::string> sub_queries;
  std::vector<search::search_hit> docs;  // [n] in the answer cites docs[n-1]
};

boost::asio::awaitable<deepsearch_outcome> run_deepsearch(const agent_env& env, std::string query,
                                                          int max_loop,
                                                          deepsearch_listener& listener);

// Streams `text` (already complete) as small deltas with the builtin pause.
// Returns false when cancelled midway.
boost::asio::awaitable<bool> stream_text_as_deltas(
    const agent_env& env, std::string_view text,
    const std::function<void(std::string_view)>& on_delta);

// Asks the model to answer `query` from the numbered `docs`, citing them as
// [n], streaming its text to `on_delta`.
boost::asio::awaitable<llm::chat_outcome> model_answer(
    const agent_env& env, const std::string& query, const std::vector<search::search_hit>& docs,
    std::function<void(std::string_view)> on_delta);

// Documents as the seed's clients show them: [{index, title, sourceId, path, heading, content}].
boost::json::array docs_to_json(const std::vector<search::search_hit>& docs);

// True when the awaiting coroutine has been cancelled.
boost::asio::awaitable<bool> cancelled();

}  // namespace sluice::agents
