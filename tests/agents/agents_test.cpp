// Agents and the deep-search tool, end to end through the real server:
// event grammar of every agent type, citations, dedup, idempotent attach,
// cancellation (all the way up to the model connection), errors.
#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <regex>

#include "agents/run_service.hpp"
#include "app/agent_routes.hpp"
#include "fake_openai_server.hpp"
#include "llm/openai/openai_provider.hpp"
#include "search/corpus_indexer.hpp"
#include "support/test_client.hpp"
#include "test_corpus.hpp"
#include "transport/http_server.hpp"

namespace sluice {
namespace {

namespace json = boost::json;
namespace net = boost::asio;
using test::http_connection;
using test::request;
using test::sse_reader;

// A model that throws, to check that an exception in an agent ends the run.
class throwing_model : public llm::chat_provider {
 public:
  std::string_view name() const override { return "throwing"; }
  net::awaitable<llm::chat_outcome> stream_chat(const llm::chat_request&,
                                                std::function<void(std::string_view)>) override {
    throw std::runtime_error("boom in the model");
    co_return llm::chat_outcome{};
  }
};

// A model that answers from a script, one reply per call, streamed in
// word-sized deltas; records the prompts it was given.
class scripted_model : public llm::chat_provider {
 public:
  explicit scripted_model(std::vector<std::string> replies) : replies_(std::move(replies)) {}
  std::string_view name() const override { return "scripted"; }
  net::awaitable<llm::chat_outcome> stream_chat(const llm::chat_request& req,
                                                std::function<void(std::string_view)> on_delta) override {
    llm::chat_outcome out;
    prompts.push_back(req.messages.back().content);
    out.text = calls_ < replies_.size() ? replies_[calls_] : "no more replies";
    ++calls_;
    for (std::size_t i = 0; i < out.text.size(); i += 4) on_delta(std::string_view(out.text).substr(i, 4));
    out.finish_reason = "stop";
    co_return out;
  }
  std::vector<std::string> prompts;

 private:
  std::vector<std::string> replies_;
  std::size_t calls_ = 0;
};

class AgentsTest : public ::testing::Test {
 protected:
  void start(llm::chat_provider* model = nullptr, std::chrono::milliseconds grace = std::chrono::milliseconds(0)) {
    index_ = corpus_.index_path();
    ASSERT_TRUE(search::build_index(corpus_.corpus_dir(), index_));
    search_ = std::make_unique<agents::search_service>(index_, 2);
    agents::agent_env env;
    env.search = search_.get();
    env.model = model;
    env.builtin_delta_pause = std::chrono::milliseconds(0);
    transport::server_config c;
    c.port = 0;
    c.threads = 2;
    server_ = std::make_unique<transport::http_server>(c);
    runs_ = std::make_unique<agents::run_service>(server_->registry(), env, grace);
    app::add_agent_routes(*server_, *runs_);
    server_->start();
  }
  void TearDown() override {
    if (server_) server_->shutdown();
  }
  std::uint16_t port() const { return server_->port(); }

  // POSTs and reads the SSE response to its end; returns the events' data as JSON.
  struct run_result {
    std::vector<test::recorded_event> events;
    std::vector<json::object> data;
  };
  run_result run(const std::string& path, const std::string& body,
                 const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    http_connection c(port());
    c.send_request("POST", path, body, headers);
    sse_reader r(c);
    EXPECT_EQ(r.head().status, 200);
    EXPECT_TRUE(r.read_to_end());
    run_result out;
    out.events = r.events;
    for (const auto& e : r.events) out.data.push_back(json::parse(e.data).as_object());
    return out;
  }

  // The grammar every run obeys: contiguous ids (a coalesced event covers
  // [first,last]), data.sequence == id, exactly one final event and it is
  // last, deltas of the answer concatenate to the final result.
  static std::string check_grammar(const run_result& r, const std::string& delta_type,
                                   const std::string& delta_field) {
    std::uint64_t expect = 1;
    int finals = 0;
    std::string deltas;
    for (std::size_t i = 0; i < r.events.size(); ++i) {
      const auto& d = r.data[i];
      std::uint64_t first = expect, last = std::stoull(r.events[i].id);
      if (auto* c = d.if_contains("coalesced")) first = c->as_array()[0].to_number<std::uint64_t>();
      EXPECT_EQ(first, expect) << "event " << i;
      EXPECT_EQ(d.at("sequence").to_number<std::uint64_t>(), last) << "event " << i;
      expect = last + 1;
      if (d.at("isFinal").as_bool()) {
        ++finals;
        EXPECT_EQ(i, r.events.size() - 1) << "the final event is the last";
      }
      if (d.at("messageType").as_string() == delta_type && !d.at("isFinal").as_bool() &&
          d.contains(delta_field))
        deltas += d.at(delta_field).as_string();
    }
    EXPECT_EQ(finals, 1);
    return deltas;
  }

  // The first sequence the message at `i` stands for (a coalesced one carries
  // [first, last] and id = last).
  static std::uint64_t covered_from(const run_result& r, std::size_t i) {
    if (auto* c = r.data[i].if_contains("coalesced"))
      return c->as_array()[0].to_number<std::uint64_t>();
    return std::stoull(r.events[i].id);
  }

  // A run's messages from index `from` on, each stretch of answer deltas
  // joined into one entry: what every reader of the run sees alike, however
  // its deltas were coalesced.
  static std::vector<std::string> transcript(const run_result& r, std::size_t from) {
    std::vector<std::string> out;
    bool in_deltas = false;
    for (std::size_t i = from; i < r.events.size(); ++i) {
      const auto& d = r.data[i];
      const bool delta = d.at("messageType").as_string() == "agent_stream" &&
                         !d.at("isFinal").as_bool() && d.contains("result");
      if (!delta) {
        out.push_back(r.events[i].type + " " + r.events[i].data);
        in_deltas = false;
        continue;
      }
      if (!in_deltas) out.emplace_back("deltas ");
      out.back() += d.at("result").as_string();
      in_deltas = true;
    }
    return out;
  }

  testing::temp_corpus corpus_;
  std::filesystem::path index_;
  // Destroyed in reverse: runs, then the search pool (its threads post to the
  // server's io_contexts), then the server.
  std::unique_ptr<transport::http_server> server_;
  std::unique_ptr<agents::search_service> search_;
  std::unique_ptr<agents::run_service> runs_;
};

// Every [n] in `answer` refers to a document, and the sentence before it is
// taken from that document (the builtin answerer is extractive).
void expect_citations_point_at_sources(const std::string& answer, const json::array& docs) {
  std::regex marker(R"(\[(\d+)\])");
  int count = 0;
  for (auto it = std::sregex_iterator(answer.begin(), answer.end(), marker); it != std::sregex_iterator(); ++it) {
    std::size_t n = std::stoul((*it)[1]);
    ASSERT_GE(n, 1u);
    ASSERT_LE(n, docs.size()) << answer;
    ++count;
  }
  EXPECT_GT(count, 0) << "the answer cites its sources: " << answer;
}

TEST_F(AgentsTest, DeepSearchToolStreamsStagesDedupsAndCites) {
  start();
  auto r = run("/v1/tool/deepsearch",
               R"({"query":"How does the browser resume Server-Sent Events and how does bm25 rank FTS5 matches?","request_id":"ds-1"})");
  ASSERT_FALSE(r.events.empty());
  for (std::size_t i = 0; i + 1 < r.events.size(); ++i) EXPECT_EQ(r.events[i].type, "data");
  std::vector<std::string> statuses;
  for (const auto& d : r.data)
    if (d.at("messageType").as_string() == "status") statuses.emplace_back(d.at("status").as_string());
  EXPECT_EQ(statuses, (std::vector<std::string>{"query_decomposition", "searching", "generating"}));
  const std::string deltas = check_grammar(r, "search", "answer");
  const auto& fin = r.data.back();
  EXPECT_EQ(fin.at("requestId").as_string(), "ds-1");
  EXPECT_TRUE(fin.at("isFinal").as_bool());
  const std::string answer(fin.at("answer").as_string());
  EXPECT_EQ(deltas, answer) << "the streamed deltas are the final answer";
  const auto& sr = fin.at("searchResult").as_object();
  const auto& queries = sr.at("query").as_array();
  ASSERT_GE(queries.size(), 3u) << "original + the two questions";
  const auto& docs = sr.at("docs").as_array();
  // Dedup: the mirrored copy of the FTS5 document never appears beside the original.
  int fts_copies = 0;
  for (const auto& d : docs) {
    std::string path(d.at("path").as_string());
    if (path.find("sqlite-fts") != std::string::npos && d.at("heading").as_string() == "Tokenizers")
      ++fts_copies;
  }
  EXPECT_LE(fts_copies, 1);
  std::set<std::string> ids;
  for (const auto& d : docs) EXPECT_TRUE(ids.insert(std::string(d.at("sourceId").as_string())).second);
  expect_citations_point_at_sources(answer, docs);
  EXPECT_NE(answer.find("Last-Event-ID"), std::string::npos) << answer;
}

TEST_F(AgentsTest, ChineseQueryFindsChineseSources) {
  start();
  auto r = run("/v1/tool/deepsearch", R"({"query":"什么是向量数据库？"})");
  const auto& fin = r.data.back();
  const auto& docs = fin.at("searchResult").at("docs").as_array();
  ASSERT_FALSE(docs.empty());
  EXPECT_EQ(docs[0].at("path").as_string(), "zh/vector-db.md");
  expect_citations_point_at_sources(std::string(fin.at("answer").as_string()), docs);
}

TEST_F(AgentsTest, PlanSolveGrammarPlanAndCitedAnswer) {
  start();
  auto r = run("/AutoAgent",
               R"({"query":"How does SQLite FTS5 rank matches and what are Redis consumer groups?","agentType":"plan_solve","requestId":"ps-1"})");
  for (const auto& e : r.events) EXPECT_EQ(e.type, "message") << "no event: field, like the seed";
  const std::string deltas = check_grammar(r, "agent_stream", "result");
  const auto& fin = r.data.back();
  EXPECT_EQ(fin.at("messageType").as_string(), "result");
  EXPECT_EQ(fin.at("result").as_string(), deltas);
  EXPECT_EQ(fin.at("resultMap").at("agentType").as_string(), "plan_solve");
  // The last plan message shows every step completed.
  json::object last_plan;
  std::set<std::string> types;
  for (const auto& d : r.data) {
    types.insert(std::string(d.at("messageType").as_string()));
    if (d.at("messageType").as_string() == "plan") last_plan = d.at("plan").as_object();
  }
  for (const char* t : {"status", "plan", "plan_thought", "task", "tool_result", "agent_stream", "result"})
    EXPECT_TRUE(types.count(t)) << t;
  ASSERT_GE(last_plan.at("steps").as_array().size(), 3u);
  for (const auto& s : last_plan.at("stepStatus").as_array()) EXPECT_EQ(s.as_string(), "completed");
  expect_citations_point_at_sources(deltas, fin.at("resultMap").at("docs").as_array());
}

TEST_F(AgentsTest, DeepsearchAgentAndNumericAgentTypes) {
  start();
  auto r = run("/v1/agent/runs", R"({"query":"What is a Redis stream?","agentType":"deepsearch"})");
  const std::string deltas = check_grammar(r, "agent_stream", "result");
  EXPECT_EQ(r.data.back().at("result").as_string(), deltas);
  auto r3 = run("/AutoAgent", R"({"query":"What is a Redis stream?","agentType":3})");
  EXPECT_EQ(r3.data.back().at("resultMap").at("agentType").as_string(), "plan_solve");
}

TEST_F(AgentsTest, NotStreamingAnswersWithTheFinalMessage) {
  start();
  auto r = request(port(), "POST", "/AutoAgent",
                   R"({"query":"What is a Redis stream?","agentType":"deepsearch","isStream":false})");
  ASSERT_EQ(r.status(), 200);
  auto v = json::parse(r.body).as_object();
  EXPECT_EQ(v.at("messageType").as_string(), "result");
  EXPECT_TRUE(v.at("isFinal").as_bool());
  auto t = request(port(), "POST", "/v1/tool/deepsearch", R"({"query":"What is a Redis stream?","stream":false})");
  ASSERT_EQ(t.status(), 200);
  EXPECT_FALSE(json::parse(t.body).at("answer").as_string().empty());
}

TEST_F(AgentsTest, RetriedPostAttachesAndResumesInsteadOfRerunning) {
  start();
  const std::string body = R"({"query":"What is a Redis stream?","agentType":"deepsearch","requestId":"same-1"})";
  auto first = run("/AutoAgent", body);
  ASSERT_GE(first.events.size(), 4u);
  // The client retries with the id of the third event it dispatched.
  auto second = run("/AutoAgent", body, {{"Last-Event-ID", first.events[2].id}});
  // Resumed right after event 3, to the same last event, with the same
  // transcript (the answer's deltas may be coalesced differently: a reader
  // gets them coalesced when they were published faster than it was written to).
  ASSERT_FALSE(second.events.empty());
  EXPECT_EQ(covered_from(second, 0), std::stoull(first.events[2].id) + 1);
  EXPECT_EQ(second.events.back().id, first.events.back().id);
  EXPECT_EQ(transcript(second, 0), transcript(first, 3));
  // Still one run: the stream's last sequence is the first run's last id.
  auto st = json::parse(request(port(), "GET", "/v1/streams/same-1").body);
  EXPECT_EQ(std::to_string(st.at("last_sequence").as_int64()), first.events.back().id);
  // A retry that already has the final event is told to stop.
  http_connection c(port());
  c.send_request("POST", "/AutoAgent", body, {{"Last-Event-ID", first.events.back().id}});
  EXPECT_EQ(c.read_head().status, 204);
}

TEST_F(AgentsTest, BadRequestsAreRejectedClearly) {
  start();
  struct bad_case { std::string body, code; };
  for (const auto& c : std::vector<bad_case>{
           {"{oops", "malformed_json"},
           {"[]", "invalid_request"},
           {R"({"agentType":"plan_solve"})", "invalid_request"},
           {R"({"query":""})", "invalid_request"},
           {R"({"query":")" + std::string(33 * 1024, 'q') + R"("})", "query_too_long"},
           {R"({"query":"x","requestId":"bad id\n"})", "invalid_request_id"},
           {R"({"query":"x","agentType":"wizard"})", "invalid_agent_type"},
           {R"({"query":"x","agentType":"react"})", "agent_needs_model"},
           {R"({"query":"x","isStream":"yes"})", "invalid_request"},
       }) {
    auto r = request(port(), "POST", "/AutoAgent", c.body);
    EXPECT_EQ(r.status(), 400) << c.body.substr(0, 60);
    EXPECT_EQ(json::parse(r.body).at("error").at("code").as_string(), c.code) << c.body.substr(0, 60);
  }
  EXPECT_EQ(server_->registry().size(), 0u) << "no bad request created a run";
}

TEST_F(AgentsTest, AnExceptionInAnAgentEndsTheRunWithError) {
  throwing_model model;
  start(&model);
  auto r = run("/AutoAgent", R"({"query":"anything","agentType":"plan_solve","requestId":"boom-1"})");
  check_grammar(r, "agent_stream", "result");
  const auto& fin = r.data.back();
  EXPECT_EQ(fin.at("messageType").as_string(), "error");
  // The exception's text goes to the log, not to the client.
  EXPECT_EQ(fin.at("message").as_string(), "the agent failed on the server (internal_error)");
  EXPECT_EQ(json::parse(request(port(), "GET", "/v1/streams/boom-1").body).at("state").as_string(),
            "finished");
}

TEST_F(AgentsTest, ReactThinksSearchesObservesAndAnswers) {
  scripted_model model({
      R"({"thought":"I should look up how browsers reconnect","action":"search","input":"Last-Event-ID reconnect"})",
      R"(Sure: {"thought":"The observations answer it","action":"answer"})",
      "The browser resends Last-Event-ID [1].",
  });
  start(&model);
  auto r = run("/AutoAgent", R"({"query":"How do browsers resume SSE?","agentType":"react","requestId":"react-1"})");
  const std::string deltas = check_grammar(r, "agent_stream", "result");
  std::vector<std::string> types;
  for (const auto& d : r.data) types.emplace_back(d.at("messageType").as_string());
  EXPECT_EQ(types.front(), "tool_thought");
  ASSERT_GE(types.size(), 5u);
  EXPECT_EQ(types[1], "tool_result");
  EXPECT_EQ(types[2], "tool_thought");
  EXPECT_EQ(types.back(), "result");
  EXPECT_EQ(r.data[0].at("toolThought").as_string(), "I should look up how browsers reconnect");
  const auto& tr = r.data[1].at("toolResult").as_object();
  EXPECT_EQ(tr.at("toolName").as_string(), "search");
  EXPECT_EQ(tr.at("toolParam").at("query").as_string(), "Last-Event-ID reconnect");
  EXPECT_NE(std::string(tr.at("toolResult").as_string()).find("Last-Event-ID"), std::string::npos)
      << "the observation is the search results";
  EXPECT_EQ(deltas, "The browser resends Last-Event-ID [1].");
  EXPECT_EQ(r.data.back().at("result").as_string(), deltas);
  // The second turn saw the first turn's observation; the answer saw the sources.
  ASSERT_EQ(model.prompts.size(), 3u);
  EXPECT_NE(model.prompts[1].find("Searched: Last-Event-ID reconnect"), std::string::npos);
  EXPECT_NE(model.prompts[2].find("Sources:"), std::string::npos);
}

TEST_F(AgentsTest, DeepSearchWithAModelLoopsUntilTheDocumentsSuffice) {
  scripted_model model({
      R"(["Redis consumer groups"])",      // decomposition
      R"(["SQLite bm25 ranking"])",        // after loop 1: not enough, search this too
      "Consumer groups share a stream [1]; bm25 ranks matches [2].",  // the answer
  });
  start(&model);
  auto r = run("/v1/tool/deepsearch",
               R"({"query":"Compare Redis consumer groups with SQLite ranking","max_loop":2})");
  std::vector<std::string> statuses;
  for (const auto& d : r.data)
    if (d.at("messageType").as_string() == "status") statuses.emplace_back(d.at("status").as_string());
  EXPECT_EQ(statuses, (std::vector<std::string>{"query_decomposition", "searching", "searching", "generating"}));
  const auto& fin = r.data.back();
  EXPECT_EQ(fin.at("answer").as_string(), "Consumer groups share a stream [1]; bm25 ranks matches [2].");
  std::vector<std::string> queries;
  for (const auto& q : fin.at("searchResult").at("query").as_array()) queries.emplace_back(q.as_string());
  EXPECT_EQ(queries, (std::vector<std::string>{"Compare Redis consumer groups with SQLite ranking",
                                               "Redis consumer groups", "SQLite bm25 ranking"}));
  ASSERT_EQ(model.prompts.size(), 3u);
  EXPECT_NE(model.prompts[1].find("These documents were found"), std::string::npos)
      << "the model judged the first loop's documents";
  std::set<std::string> paths;
  for (const auto& d : fin.at("searchResult").at("docs").as_array()) paths.insert(std::string(d.at("path").as_string()));
  EXPECT_TRUE(paths.count("en/redis-streams.md"));
  EXPECT_TRUE(paths.count("en/sqlite-fts.md"));
}

// ---- With the openai provider against the OpenAI-compatible fake server ----

class OpenAiAgentsTest : public AgentsTest {
 protected:
  void start_with_fake(std::chrono::milliseconds grace = std::chrono::milliseconds(0)) {
    llm::openai_config c;
    c.base_url = fake_.base_url();
    c.model = "test-model";
    c.read_timeout = std::chrono::seconds(30);
    provider_ = std::make_unique<llm::openai_provider>(c);
    start(provider_.get(), grace);
  }
  test::fake_openai_server fake_;
  std::unique_ptr<llm::openai_provider> provider_;
};

TEST_F(OpenAiAgentsTest, PlanSolveStreamsTheModelsAnswer) {
  start_with_fake();
  auto r = run("/AutoAgent", R"({"query":"How does Sluice resume a stream?","agentType":"plan_solve"})");
  const std::string deltas = check_grammar(r, "agent_stream", "result");
  std::string expected;
  for (const auto& p : test::fake_openai_server::content_pieces()) expected += p;
  EXPECT_EQ(deltas, expected);
  EXPECT_EQ(r.data.back().at("result").as_string(), expected);
  auto reqs = fake_.requests();
  ASSERT_GE(reqs.size(), 2u) << "planning and the answer at least";
  EXPECT_EQ(reqs.back().body.at("model").as_string(), "test-model");
  EXPECT_TRUE(reqs.back().body.at("stream").as_bool());
}

TEST_F(OpenAiAgentsTest, CancellingARunClosesTheModelConnection) {
  start_with_fake();
  // Decomposition answers normally; the answer stalls after its first delta.
  fake_.script({test::fake_behaviour::normal, test::fake_behaviour::stall});
  http_connection c(port());
  c.send_request("POST", "/AutoAgent", R"({"query":"q","agentType":"deepsearch","requestId":"cx-1"})");
  sse_reader r(c);
  ASSERT_TRUE(r.read_until([&] {
    return !r.events.empty() && r.events.back().data.find("agent_stream") != std::string::npos;
  }));
  const std::size_t closes_before = 1;  // the decomposition call's connection
  ASSERT_EQ(request(port(), "POST", "/v1/streams/cx-1/cancel").status(), 200);
  ASSERT_TRUE(r.read_to_end());
  EXPECT_EQ(r.events.back().type, "cancelled");
  EXPECT_TRUE(fake_.wait_for_client_closes(closes_before + 1, std::chrono::seconds(10)))
      << "the upstream connection was closed when the run was cancelled";
}

TEST_F(OpenAiAgentsTest, ARunNobodyReadsIsCancelledUpToTheModel) {
  start_with_fake(std::chrono::milliseconds(1));
  fake_.script({test::fake_behaviour::normal, test::fake_behaviour::stall});
  agents::agent_request req;
  req.request_id = "unread-1";
  req.query = "q";
  req.kind = agents::agent_kind::deepsearch;
  net::io_context ioc;
  auto started = runs_->start(req, agents::run_endpoint::agent, ioc.get_executor());
  ASSERT_TRUE(started);
  auto log = started->log;
  // Run the agent until the model has been asked for the answer (stalled).
  while (fake_.requests().size() < 2)
    ASSERT_GT(ioc.run_one(), 0u) << "the run stopped before asking the model for its answer";
  // Nobody ever subscribed: the sweep cancels it ("no reader").
  server_->registry().sweep(core::realtime_us() + 1'000'000);
  EXPECT_EQ(log->state(), core::stream_state::cancelled);
  while (!ioc.stopped() && ioc.run_one() > 0) {
  }
  EXPECT_TRUE(fake_.wait_for_client_closes(2, std::chrono::seconds(10)));
  EXPECT_TRUE(log->status().last_sequence > 0);
}

}  // namespace
}  // namespace sluice
