// Run and LLM-spend budgets with the real server, run_service and search
// service (a corpus written by the test): concurrent runs per subject and in
// total, follow-up queries a model proposes, the search pool's queue.
#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <chrono>
#include <functional>
#include <thread>

#include "agents/run_service.hpp"
#include "app/agent_routes.hpp"
#include "budgets/address_client.hpp"
#include "search/corpus_indexer.hpp"
#include "support/test_client.hpp"
#include "test_corpus.hpp"
#include "transport/http_server.hpp"

namespace sluice {
namespace {

namespace json = boost::json;
namespace net = boost::asio;
using test::address_connection;
using test::http_connection;
using test::request;
using test::sse_reader;

bool eventually(const std::function<bool()>& cond,
                std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return cond();
}

std::string code_of(const std::string& body) {
  boost::system::error_code ec;
  auto v = json::parse(body, ec);
  if (ec || !v.is_object() || !v.as_object().contains("error")) return "";
  return std::string(v.at("error").at("code").as_string());
}

// A model that never answers: each call waits until its run is cancelled.
class stalling_model : public llm::chat_provider {
 public:
  std::string_view name() const override { return "stalling"; }
  net::awaitable<llm::chat_outcome> stream_chat(const llm::chat_request&,
                                                std::function<void(std::string_view)>) override {
    net::steady_timer t(co_await net::this_coro::executor, std::chrono::hours(24));
    co_await t.async_wait(net::as_tuple(net::use_awaitable));
    llm::chat_outcome out;
    out.ec = net::error::operation_aborted;
    co_return out;
  }
};

// Answers from a script, one reply per call; records the prompts.
class scripted_model : public llm::chat_provider {
 public:
  explicit scripted_model(std::vector<std::string> replies) : replies_(std::move(replies)) {}
  std::string_view name() const override { return "scripted"; }
  net::awaitable<llm::chat_outcome> stream_chat(
      const llm::chat_request& req, std::function<void(std::string_view)> on_delta) override {
    llm::chat_outcome out;
    prompts.push_back(req.messages.back().content);
    out.text = calls_ < replies_.size() ? replies_[calls_] : "no more replies";
    ++calls_;
    on_delta(out.text);
    out.finish_reason = "stop";
    co_return out;
  }
  std::vector<std::string> prompts;

 private:
  std::vector<std::string> replies_;
  std::size_t calls_ = 0;
};

class RunBudgetsTest : public ::testing::Test {
 protected:
  void start(llm::chat_provider* model, agents::run_limits limits, std::size_t search_queue = 256) {
    index_ = corpus_.index_path();
    ASSERT_TRUE(search::build_index(corpus_.corpus_dir(), index_));
    search_ = std::make_unique<agents::search_service>(index_, 2, nullptr, search_queue);
    agents::agent_env env;
    env.search = search_.get();
    env.model = model;
    env.builtin_delta_pause = std::chrono::milliseconds(0);
    transport::server_config c;
    c.port = 0;
    c.threads = 2;
    server_ = std::make_unique<transport::http_server>(c);
    runs_ = std::make_unique<agents::run_service>(server_->registry(), env,
                                                  std::chrono::milliseconds(0), limits);
    app::add_agent_routes(*server_, *runs_);
    server_->start();
  }
  void TearDown() override {
    if (server_) server_->shutdown();
  }
  std::uint16_t port() const { return server_->port(); }
  static std::string run_body(const std::string& id) {
    return R"({"query":"How does Sluice resume a stream?","agentType":"deepsearch","requestId":")" +
           id + "\"}";
  }

  testing::temp_corpus corpus_;
  std::filesystem::path index_;
  // Destroyed in reverse: runs, then the search pool (its threads post to the
  // server's io_contexts), then the server.
  std::unique_ptr<transport::http_server> server_;
  std::unique_ptr<agents::search_service> search_;
  std::unique_ptr<agents::run_service> runs_;
};

TEST_F(RunBudgetsTest, ConcurrentRunsPerSubjectAndInTotal) {
  stalling_model model;
  start(&model, {/*max_runs=*/3, /*max_runs_per_subject=*/2});
  // Two runs of 127.0.0.1, stalled at the model.
  std::vector<std::unique_ptr<http_connection>> conns;
  std::vector<std::unique_ptr<sse_reader>> readers;
  for (const char* id : {"mine-1", "mine-2"}) {
    conns.push_back(std::make_unique<http_connection>(port()));
    conns.back()->send_request("POST", "/v1/agent/runs", run_body(id),
                               {{"Content-Type", "application/json"}});
    readers.push_back(std::make_unique<sse_reader>(*conns.back()));
    ASSERT_EQ(readers.back()->head().status, 200);
  }
  // A third of the same subject: 429, and no stream is created.
  auto third = request(port(), "POST", "/v1/agent/runs", run_body("mine-3"),
                       {{"Content-Type", "application/json"}});
  EXPECT_EQ(third.status(), 429) << third.body;
  EXPECT_EQ(code_of(third.body), "too_many_runs_for_subject");
  EXPECT_EQ(third.head.header("retry-after"), "5");
  EXPECT_EQ(server_->registry().find("mine-3"), nullptr);
  // A retried start of a running run attaches: not a new run, not refused.
  {
    http_connection again(port());
    again.send_request("POST", "/v1/agent/runs", run_body("mine-1"),
                       {{"Content-Type", "application/json"}});
    sse_reader r(again);
    EXPECT_EQ(r.head().status, 200);
  }
  // Another subject may start one (3 in total) ...
  address_connection other(port(), "127.0.0.2");
  other.send("POST", "/v1/agent/runs", run_body("other-1"));
  EXPECT_EQ(other.read_response().status, 200);
  // ... and then the total is reached for everyone: 503.
  address_connection other2(port(), "127.0.0.2");
  auto total = other2.request("POST", "/v1/agent/runs", run_body("other-2"));
  EXPECT_EQ(total.status, 503) << total.body;
  EXPECT_EQ(code_of(total.body), "too_many_runs");
  EXPECT_EQ(total.headers["retry-after"], "1");
  EXPECT_EQ(runs_->running(), 3u);
  EXPECT_EQ(runs_->running_for("127.0.0.1"), 2u);
  // A run ends (cancelled): its slot frees and the subject may start again.
  ASSERT_EQ(request(port(), "POST", "/v1/streams/mine-1/cancel").status(), 200);
  ASSERT_TRUE(readers[0]->read_to_end());
  EXPECT_EQ(readers[0]->events.back().type, "cancelled");
  EXPECT_TRUE(eventually([&] { return runs_->running_for("127.0.0.1") == 1; }));
  http_connection next(port());
  next.send_request("POST", "/v1/agent/runs", run_body("mine-4"),
                    {{"Content-Type", "application/json"}});
  sse_reader next_reader(next);
  EXPECT_EQ(next_reader.head().status, 200);
  EXPECT_EQ(request(port(), "GET", "/healthz").status(), 200);
}

TEST_F(RunBudgetsTest, FollowUpQueriesAModelProposesAreCappedLikeTheFirst) {
  std::string many = "[";
  for (int i = 0; i < 50; ++i)
    many += (i ? ",\"" : "\"") + std::string("extra query ") + std::to_string(i) + "\"";
  many += "]";
  scripted_model model({many, many, "The answer [1]."});
  start(&model, {});
  http_connection c(port());
  c.send_request("POST", "/v1/tool/deepsearch", R"({"query":"Redis consumer groups","max_loop":2})",
                 {{"Content-Type", "application/json"}});
  sse_reader r(c);
  ASSERT_TRUE(r.read_to_end());
  auto fin = json::parse(r.events.back().data).as_object();
  const auto& queries = fin.at("searchResult").at("query").as_array();
  // The question, then at most max_sub_queries - 1 (4) per decomposition.
  EXPECT_EQ(queries.size(), 1u + 4u + 4u);
  EXPECT_EQ(queries[4].as_string(), "extra query 3");
  EXPECT_EQ(queries[5].as_string(), "extra query 0");
  EXPECT_EQ(queries[8].as_string(), "extra query 3");
}

TEST_F(RunBudgetsTest, AFullSearchQueueEndsARunWithSearchBusyInBand) {
  // One task at a time: the builtin decomposition's several sub-queries
  // cannot be queued together, so the run's search is refused at once.
  start(nullptr, {}, /*search_queue=*/1);
  http_connection c(port());
  c.send_request("POST", "/v1/tool/deepsearch", R"({"query":"Redis vs Kafka"})",
                 {{"Content-Type", "application/json"}});
  sse_reader r(c);
  ASSERT_TRUE(r.read_to_end());
  ASSERT_FALSE(r.events.empty());
  EXPECT_EQ(r.events.back().type, "error");
  EXPECT_NE(r.events.back().data.find("search_busy"), std::string::npos) << r.events.back().data;
  EXPECT_EQ(search_->queued(), 0u);
  EXPECT_EQ(request(port(), "GET", "/healthz").status(), 200);
}

}  // namespace
}  // namespace sluice
