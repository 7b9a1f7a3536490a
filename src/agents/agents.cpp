#include "agents/agents.hpp"

#include <boost/asio/this_coro.hpp>
#include <boost/json/parse.hpp>

#include "llm/builtin_answerer.hpp"
#include "search/query_decomposer.hpp"

namespace sluice::agents {

namespace net = boost::asio;
namespace json = boost::json;

std::optional<agent_kind> parse_agent_kind(std::string_view n) {
  if (n == "plan_solve" || n == "3") return agent_kind::plan_solve;
  if (n == "react" || n == "5") return agent_kind::react;
  if (n == "deepsearch") return agent_kind::deepsearch;
  return std::nullopt;
}

std::string_view to_string(agent_kind k) {
  switch (k) {
    case agent_kind::plan_solve:
      return "plan_solve";
    case agent_kind::react:
      return "react";
    case agent_kind::deepsearch:
      return "deepsearch";
  }
  return "unknown";
}

namespace {

json::array to_json_strings(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

json::object search_result(const std::vector<std::string>& queries,
                           const std::vector<search::search_hit>& docs) {
  json::object sr;
  sr["query"] = to_json_strings(queries);
  sr["docs"] = docs_to_json(docs);
  return sr;
}

void send_status(printer& out, std::string_view status, std::string_view message) {
  json::object f;
  f["status"] = status;
  f["message"] = message;
  out.send("status", "status", std::move(f), false);
}

void send_error(printer& out, std::string_view message) {
  json::object f;
  f["error"] = message;
  f["message"] = message;
  out.send("error", "error", std::move(f), true);
}

// Forwards the deep-search stages as messages: status, search, and the
// answer's deltas as `delta_type` messages with the text in `delta_field`
// (agents: agent_stream/result; the tool, like the seed: search/answer).
class stage_listener : public deepsearch_listener {
 public:
  stage_listener(printer& out, std::string_view delta_type, std::string_view delta_field)
      : out_(out), delta_type_(delta_type), delta_field_(delta_field) {}
  void on_status(std::string_view status, std::string_view message) override {
    send_status(out_, status, message);
  }
  void on_search(const std::vector<std::string>& q,
                 const std::vector<search::search_hit>& docs) override {
    json::object f;
    f["searchResult"] = search_result(q, docs);
    out_.send("search", "search", std::move(f), false);
  }
  void on_answer_delta(std::string_view text) override {
    out_.send_delta("answer", delta_type_, delta_field_, text);
  }

 private:
  printer& out_;
  std::string_view delta_type_, delta_field_;
};

// Sends the final `result` message.
void send_result(printer& out, agent_kind kind, const std::string& answer,
                 const std::vector<std::string>& sub_queries,
                 const std::vector<search::search_hit>& docs) {
  json::object rm;
  rm["answer"] = answer;
  rm["taskSummary"] = answer;
  rm["subQueries"] = to_json_strings(sub_queries);
  rm["docs"] = docs_to_json(docs);
  rm["agentType"] = to_string(kind);
  json::object f;
  f["result"] = answer;
  f["resultMap"] = std::move(rm);
  out.send("result", "result", std::move(f), true);
}

struct plan_state {
  std::string title;
  std::vector<std::string> steps;
  std::vector<std::string> status;
  void send(printer& out) const {
    json::object p;
    p["title"] = title;
    p["steps"] = to_json_strings(steps);
    p["stepStatus"] = to_json_strings(status);
    json::object f;
    f["plan"] = std::move(p);
    out.send("plan", "plan", std::move(f), false);
  }
};

net::awaitable<std::vector<std::string>> plan_steps(const agent_env& env, const std::string& query) {
  if (env.model != nullptr) {
    llm::chat_request req;
    req.messages = {{"system", "You plan research. You reply with JSON only."},
                    {"user", "Write a plan of at most 4 search steps to answer the question. Reply "
                             "with a JSON array of search queries.\nQuestion: " + query}};
    auto r = co_await env.model->stream_chat(req, [](std::string_view) {});
    if (!r.ec) {
      std::vector<std::string> steps;
      auto open = r.text.find('['), close = r.text.rfind(']');
      if (open != std::string::npos && close != std::string::npos && close > open) {
        boost::system::error_code ec;
        auto v = json::parse(std::string_view(r.text).substr(open, close - open + 1), ec);
        if (!ec && v.is_array())
          for (const auto& e : v.as_array())
            if (e.is_string() && steps.size() < 4) steps.emplace_back(e.as_string());
      }
      if (!steps.empty()) co_return steps;
    }
  }
  search::decompose_options o;
  o.max_queries = env.max_sub_queries;
  auto subs = search::decompose_query(query, o);
  // The first sub-query is the question itself; with parts, search the parts.
  if (subs.size() > 1) subs.erase(subs.begin());
  co_return subs;
}

net::awaitable<void> run_plan_solve(const agent_env& env, const agent_request& req, printer& out) {
  send_status(out, "planning", "Planning...");
  plan_state plan;
  plan.title = req.query;
  for (auto& s : co_await plan_steps(env, req.query)) plan.steps.push_back(std::move(s));
  const std::size_t search_steps = plan.steps.size();
  plan.steps.push_back("Summarize the answer");
  plan.status.assign(plan.steps.size(), "not_started");
  {
    json::object f;
    std::string thought = "I will search for: ";
    for (std::size_t i = 0; i < search_steps; ++i)
      thought += (i ? "; " : "") + plan.steps[i];
    thought += ". Then I will write the answer from the sources, citing them.";
    f["planThought"] = thought;
    out.send("plan_thought", "plan_thought", std::move(f), false);
  }
  plan.send(out);

  std::vector<std::string> all_queries;
  std::vector<search::search_hit> all_docs;
  class quiet_listener : public deepsearch_listener {
   public:
    void on_status(std::string_view, std::string_view) override {}
    void on_search(const std::vector<std::string>&, const std::vector<search::search_hit>&) override {}
    void on_answer_delta(std::string_view) override {}
  } quiet;
  agent_env tool_env = env;
  tool_env.builtin_delta_pause = std::chrono::milliseconds(0);  // a tool's answer is not streamed
  for (std::size_t i = 0; i < search_steps; ++i) {
    plan.status[i] = "in_progress";
    plan.send(out);
    json::object task;
    task["task"] = plan.steps[i];
    task["stepIndex"] = i;
    out.send("task-" + std::to_string(i + 1), "task", std::move(task), false);
    auto r = co_await run_deepsearch(tool_env, plan.steps[i], req.max_loop, quiet);
    if (r.ec == net::error::operation_aborted || out.ended()) co_return;
    if (r.ec) {
      send_error(out, r.error_message);
      co_return;
    }
    json::object tr;
    tr["toolName"] = "deepsearch";
    json::object param;
    param["query"] = plan.steps[i];
    tr["toolParam"] = std::move(param);
    tr["toolResult"] = r.answer;
    json::object f;
    f["toolResult"] = std::move(tr);
    f["searchResult"] = search_result(r.sub_queries, r.docs);
    out.send("tool-" + std::to_string(i + 1), "tool_result", std::move(f), false);
    for (auto& q : r.sub_queries) all_queries.push_back(std::move(q));
    for (auto& d : r.docs) {
      bool seen = false;
      for (const auto& x : all_docs) seen = seen || x.source_id == d.source_id;
      if (!seen && all_docs.size() < env.max_docs) all_docs.push_back(std::move(d));
    }
    plan.status[i] = "completed";
    plan.send(out);
  }

  plan.status[search_steps] = "in_progress";
  plan.send(out);
  std::string answer;
  if (env.model == nullptr) {
    std::vector<llm::source_document> sources;
    for (const auto& d : all_docs) sources.push_back({d.heading.empty() || d.heading == d.title ? d.title : d.title + " — " + d.heading, d.source_id, d.text});
    std::vector<std::string> subs = all_queries;
    subs.insert(subs.begin(), req.query);
    answer = llm::answer_extractively(req.query, subs, sources).text;
    if (!co_await stream_text_as_deltas(env, answer, [&](std::string_view d) {
          out.send_delta("answer", "agent_stream", "result", d);
        }))
      co_return;
  } else {
    auto r = co_await model_answer(env, req.query, all_docs, [&](std::string_view d) {
      out.send_delta("answer", "agent_stream", "result", d);
    });
    if (r.ec == net::error::operation_aborted || out.ended()) co_return;
    if (r.ec) {
      send_error(out, "the model failed: " + r.error_message);
      co_return;
    }
    answer = std::move(r.text);
  }
  plan.status[search_steps] = "completed";
  plan.send(out);
  send_result(out, agent_kind::plan_solve, answer, all_queries, all_docs);
}

net::awaitable<void> run_deepsearch_agent(const agent_env& env, const agent_request& req,
                                          printer& out) {
  stage_listener listener(out, "agent_stream", "result");
  auto r = co_await run_deepsearch(env, req.query, req.max_loop, listener);
  if (r.ec == net::error::operation_aborted || out.ended()) co_return;
  if (r.ec) {
    send_error(out, r.error_message);
    co_return;
  }
  send_result(out, agent_kind::deepsearch, r.answer, r.sub_queries, r.docs);
}

// ReAct: the model thinks, picks a tool (search) or answers; observations are
// search results. Needs a model.
net::awaitable<void> run_react(const agent_env& env, const agent_request& req, printer& out) {
  std::string scratch;
  std::vector<std::string> queries;
  std::vector<search::search_hit> docs;
  for (int step = 0; step < std::max(1, req.max_steps); ++step) {
    llm::chat_request creq;
    creq.messages = {
        {"system",
         "You answer questions by searching. Each turn reply with JSON only: "
         "{\"thought\":\"...\",\"action\":\"search\",\"input\":\"query\"} to search, or "
         "{\"thought\":\"...\",\"action\":\"answer\"} when the observations suffice."},
        {"user", "Question: " + req.query + "\n" + scratch}};
    auto r = co_await env.model->stream_chat(creq, [](std::string_view) {});
    if (r.ec == net::error::operation_aborted || out.ended()) co_return;
    if (r.ec) {
      send_error(out, "the model failed: " + r.error_message);
      co_return;
    }
    boost::system::error_code ec;
    auto open = r.text.find('{'), close = r.text.rfind('}');
    json::value v;
    if (open != std::string::npos && close != std::string::npos && close > open)
      v = json::parse(std::string_view(r.text).substr(open, close - open + 1), ec);
    std::string thought = v.is_object() && v.as_object().contains("thought") && v.at("thought").is_string()
                              ? std::string(v.at("thought").as_string())
                              : r.text;
    std::string action = v.is_object() && v.as_object().contains("action") && v.at("action").is_string()
                             ? std::string(v.at("action").as_string())
                             : "answer";
    json::object tf;
    tf["toolThought"] = thought;
    out.send("thought-" + std::to_string(step + 1), "tool_thought", std::move(tf), false);
    if (action != "search" || !v.as_object().contains("input") || !v.at("input").is_string()) break;
    std::string input(v.at("input").as_string());
    std::vector<std::string> one_query(1, input);  // (a braced list here trips GCC 12's coroutines)
    auto found = co_await env.search->search_many(one_query, env.per_query_hits, env.max_docs);
    if (out.ended() || co_await cancelled()) co_return;
    if (!found) {
      send_error(out, "search failed: " + found.error().message());
      co_return;
    }
    queries.push_back(input);
    std::string observation;
    for (auto& d : *found) {
      bool seen = false;
      for (const auto& x : docs) seen = seen || x.source_id == d.source_id;
      if (!seen && docs.size() < env.max_docs * 2) docs.push_back(d);
    }
    for (std::size_t i = 0; i < docs.size(); ++i)
      observation += "[" + std::to_string(i + 1) + "] " + docs[i].title + ": " + docs[i].text.substr(0, 400) + "\n";
    json::object tr;
    tr["toolName"] = "search";
    json::object param;
    param["query"] = input;
    tr["toolParam"] = std::move(param);
    tr["toolResult"] = observation;
    json::object f;
    f["toolResult"] = std::move(tr);
    out.send("tool-" + std::to_string(step + 1), "tool_result", std::move(f), false);
    scratch += "Thought: " + thought + "\nSearched: " + input + "\nObservations:\n" + observation;
  }
  auto r = co_await model_answer(env, req.query, docs, [&](std::string_view d) {
    out.send_delta("answer", "agent_stream", "result", d);
  });
  if (r.ec == net::error::operation_aborted || out.ended()) co_return;
  if (r.ec) {
    send_error(out, "the model failed: " + r.error_message);
    co_return;
  }
  send_result(out, agent_kind::react, r.text, queries, docs);
}

}  // namespace

net::awaitable<void> run_agent(const agent_env& env, agent_request request, printer& out) {
  switch (request.kind) {
    case agent_kind::plan_solve:
      co_await run_plan_solve(env, request, out);
      break;
    case agent_kind::deepsearch:
      co_await run_deepsearch_agent(env, request, out);
      break;
    case agent_kind::react:
      if (env.model == nullptr) {
        send_error(out, "the react agent needs a model: start sluice with --llm openai");
        break;
      }
      co_await run_react(env, request, out);
      break;
  }
}

net::awaitable<void> run_deepsearch_tool(const agent_env& env, agent_request request, printer& out) {
  stage_listener listener(out, "search", "answer");
  auto r = co_await run_deepsearch(env, request.query, request.max_loop, listener);
  if (r.ec == net::error::operation_aborted || out.ended()) co_return;
  if (r.ec) {
    send_error(out, r.error_message);
    co_return;
  }
  json::object f;
  f["query"] = request.query;
  f["answer"] = r.answer;
  f["searchResult"] = search_result(r.sub_queries, r.docs);
  out.send("search", "search", std::move(f), true);
}

}  // namespace sluice::agents
