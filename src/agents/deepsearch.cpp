#include "agents/deepsearch.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/system/errc.hpp>

#include "llm/answer_deltas.hpp"
#include "llm/builtin_answerer.hpp"
#include "search/query_decomposer.hpp"

namespace sluice::agents {

namespace net = boost::asio;
namespace json = boost::json;

net::awaitable<bool> cancelled() {
  auto state = co_await net::this_coro::cancellation_state;
  co_return state.cancelled() != net::cancellation_type::none;
}

json::array docs_to_json(const std::vector<search::search_hit>& docs) {
  json::array a;
  for (std::size_t i = 0; i < docs.size(); ++i) {
    const auto& d = docs[i];
    json::object o;
    o["index"] = i + 1;
    o["title"] = d.title;
    o["sourceId"] = d.source_id;
    o["path"] = d.path;
    o["heading"] = d.heading;
    o["content"] = d.text;
    a.push_back(std::move(o));
  }
  return a;
}

net::awaitable<bool> stream_text_as_deltas(const agent_env& env, std::string_view text,
                                           const std::function<void(std::string_view)>& on_delta) {
  llm::answer_delta_stream deltas{std::string(text)};
  net::steady_timer pause(co_await net::this_coro::executor);
  while (auto d = deltas.next()) {
    if (co_await cancelled()) co_return false;
    on_delta(*d);
    if (env.builtin_delta_pause.count() > 0) {
      pause.expires_after(env.builtin_delta_pause);
      auto [ec] = co_await pause.async_wait(net::as_tuple(net::use_awaitable));
      if (ec) co_return false;
    }
  }
  co_return true;
}

namespace {

std::string numbered_sources(const std::vector<search::search_hit>& docs) {
  std::string s;
  for (std::size_t i = 0; i < docs.size(); ++i) {
    s += "[" + std::to_string(i + 1) + "] " + docs[i].title;
    if (!docs[i].heading.empty()) s += " — " + docs[i].heading;
    s += "\n" + docs[i].text + "\n\n";
  }
  return s;
}

// Parses a JSON array of strings out of a model's reply (tolerating prose
// around it). Empty when there is none.
std::vector<std::string> parse_string_array(std::string_view reply) {
  auto open = reply.find('[');
  auto close = reply.rfind(']');
  std::vector<std::string> out;
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) return out;
  boost::system::error_code ec;
  auto v = json::parse(reply.substr(open, close - open + 1), ec);
  if (ec || !v.is_array()) return out;
  for (const auto& e : v.as_array())
    if (e.is_string() && !e.as_string().empty()) out.emplace_back(e.as_string());
  return out;
}

// A proposed search query longer than this is dropped.
constexpr std::size_t max_sub_query_bytes = 512;

net::awaitable<std::vector<std::string>> model_decompose(
    const agent_env& env, const std::string& query, const std::vector<search::search_hit>* docs) {
  llm::chat_request req;
  std::string ask =
      "Break the user's question into at most " + std::to_string(env.max_sub_queries - 1) +
      " short web-search queries that together answer it. Reply with a JSON array of strings "
      "only.\nQuestion: " +
      query;
  if (docs != nullptr)
    ask = "These documents were found for the question:\n" + numbered_sources(*docs) +
          "If they fully answer the question, reply with []. Otherwise reply with a JSON array "
          "of at most " +
          std::to_string(env.max_sub_queries - 1) +
          " new search queries for what is missing.\nQuestion: " + query;
  req.messages = {{"system", "You plan searches. You reply with JSON only."}, {"user", ask}};
  auto out = co_await env.model->stream_chat(req, [](std::string_view) {});
  if (out.ec) co_return std::vector<std::string>{};
  // The model's proposal is untrusted: the first decomposition and every
  // follow-up get the same cap (max_sub_queries - 1 queries of bounded size).
  auto queries = parse_string_array(out.text);
  std::erase_if(queries, [](const std::string& q) { return q.size() > max_sub_query_bytes; });
  if (queries.size() + 1 > env.max_sub_queries)
    queries.resize(env.max_sub_queries > 0 ? env.max_sub_queries - 1 : 0);
  co_return queries;
}

}  // namespace

net::awaitable<llm::chat_outcome> model_answer(const agent_env& env, const std::string& query,
                                               const std::vector<search::search_hit>& docs,
                                               std::function<void(std::string_view)> on_delta) {
  llm::chat_request req;
  req.messages = {
      {"system",
       "Answer the question using only the numbered sources. Cite sources as [n] right after "
       "the sentence they support. Be concise."},
      {"user", "Sources:\n" + numbered_sources(docs) + "Question: " + query}};
  co_return co_await env.model->stream_chat(req, std::move(on_delta));
}

net::awaitable<deepsearch_outcome> run_deepsearch(const agent_env& env, std::string query,
                                                  int max_loop, deepsearch_listener& listener) {
  deepsearch_outcome out;
  auto aborted = [&out] {
    out.ec = net::error::operation_aborted;
    return out;
  };
  const bool cjk = query.find_first_of("\xe4\xe5\xe6\xe7\xe8\xe9") != std::string::npos;
  listener.on_status("query_decomposition", cjk ? "正在分解查询..." : "Decomposing the query...");
  search::decompose_options dopts;
  dopts.max_queries = env.max_sub_queries;
  if (env.model != nullptr) {
    out.sub_queries = {query};
    for (auto& q : co_await model_decompose(env, query, nullptr))
      if (out.sub_queries.size() < env.max_sub_queries) out.sub_queries.push_back(std::move(q));
  } else {
    out.sub_queries = search::decompose_query(query, dopts);
  }
  if (co_await cancelled()) co_return aborted();

  std::vector<std::string> pending = out.sub_queries;
  for (int loop = 0; loop < std::max(1, max_loop); ++loop) {
    listener.on_status("searching", (cjk ? "正在搜索 " : "Searching ") +
                                        std::to_string(pending.size()) +
                                        (cjk ? " 个子查询..." : " sub-queries..."));
    auto found = co_await env.search->search_many(pending, env.per_query_hits, env.max_docs);
    if (co_await cancelled()) co_return aborted();
    if (!found) {
      out.ec = found.error();
      out.error_message = "search failed: " + found.error().message();
      co_return out;
    }
    // Merge with earlier loops: earlier documents keep their citation numbers.
    for (auto& hit : *found) {
      bool seen = false;
      for (const auto& d : out.docs) seen = seen || d.source_id == hit.source_id;
      if (!seen && out.docs.size() < env.max_docs * 2) out.docs.push_back(std::move(hit));
    }
    listener.on_search(out.sub_queries, out.docs);
    if (env.model == nullptr || loop + 1 >= max_loop) break;
    pending = co_await model_decompose(env, query, &out.docs);
    if (co_await cancelled()) co_return aborted();
    if (pending.empty()) break;  // the model judged the documents sufficient
    for (const auto& q : pending) out.sub_queries.push_back(q);
  }

  listener.on_status("generating", cjk ? "正在生成答案..." : "Generating the answer...");
  if (env.model == nullptr) {
    std::vector<llm::source_document> sources;
    for (const auto& d : out.docs)
      sources.push_back(
          {d.heading.empty() || d.heading == d.title ? d.title : d.title + " — " + d.heading,
           d.source_id, d.text});
    auto answer = llm::answer_extractively(query, out.sub_queries, sources);
    bool done = co_await stream_text_as_deltas(
        env, answer.text, [&](std::string_view d) { listener.on_answer_delta(d); });
    if (!done) co_return aborted();
    out.answer = answer.text;
    co_return out;
  }
  auto reply = co_await model_answer(env, query, out.docs,
                                     [&](std::string_view d) { listener.on_answer_delta(d); });
  if (reply.ec == net::error::operation_aborted || co_await cancelled()) co_return aborted();
  if (reply.ec) {
    out.ec = reply.ec;
    out.error_message = "the model failed: " + reply.error_message;
    co_return out;
  }
  out.answer = std::move(reply.text);
  co_return out;
}

}  // namespace sluice::agents
