// streams::stream_service without a server: every op, every typed error
// (code, HTTP status, Retry-After), and the access matrix.
#include "streams/stream_service.hpp"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <chrono>

#include "auth/jwt.hpp"

namespace {

using namespace sluice;
namespace json = boost::json;

struct counting final : streams::op_counters {
  std::size_t published_events = 0, resumes = 0;
  void published(std::size_t n) noexcept override { published_events += n; }
  void resumed() noexcept override { ++resumes; }
};

std::shared_ptr<const auth::principal> who(std::string subject, std::vector<std::string> publish,
                                           std::vector<std::string> subscribe, bool run = false) {
  auto p = std::make_shared<auth::principal>();
  p->subject = std::move(subject);
  p->publish = std::move(publish);
  p->subscribe = std::move(subscribe);
  p->run = run;
  p->expires_at = std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count() +
                  3600;
  return p;
}

template <class T>
std::string code_of(const streams::op_result<T>& r) {
  return r ? "ok" : r.error().code;
}

class StreamService : public ::testing::Test {
 protected:
  explicit StreamService(core::registry_config rc = {}, streams::service_config sc = {})
      : registry_(rc), service_(registry_, std::move(sc), &counters_) {}

  streams::op_result<streams::publish_result> publish(const auth::principal* p, std::string_view id,
                                                      std::string_view body, bool final = false) {
    streams::publish_input in;
    in.body = body;
    in.final = final;
    return service_.publish(p, id, in);
  }

  core::stream_registry registry_;
  counting counters_;
  streams::stream_service service_;
  std::shared_ptr<const auth::principal> anyone_ = auth::principal::anyone("127.0.0.1");
};

TEST_F(StreamService, PublishAssignsSequencesAndCreatesTheStreamOwnedByTheCaller) {
  auto r = publish(anyone_.get(), "s", R"( {"n":1} )");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->first_sequence, 1u);
  EXPECT_EQ(r->last_sequence, 1u);
  r = publish(anyone_.get(), "s", R"({"n":2})", true);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->first_sequence, 2u);
  auto log = registry_.find("s");
  ASSERT_TRUE(log);
  EXPECT_EQ(log->owner(), "127.0.0.1");
  EXPECT_EQ(log->status().state, core::stream_state::finished);
  EXPECT_EQ(counters_.published_events, 2u);

  r = publish(anyone_.get(), "s", "{}");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "stream_ended");
  EXPECT_EQ(r.error().http_status, 409u);
  EXPECT_EQ(r.error().retry_after_s, 0);
}

TEST_F(StreamService, NdjsonPublishesAllOrNothing) {
  streams::publish_input in;
  in.ndjson = true;
  in.body = "{\"a\":1}\n\n  {\"a\":2}\r\n{\"a\":3}";
  auto r = service_.publish(anyone_.get(), "b", in);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->first_sequence, 1u);
  EXPECT_EQ(r->last_sequence, 3u);

  in.body = "{\"a\":4}\n{\"a\":";
  r = service_.publish(anyone_.get(), "b", in);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "malformed_json");
  EXPECT_EQ(r.error().http_status, 400u);
  EXPECT_NE(r.error().message.find("(line 2)"), std::string::npos) << r.error().message;
  EXPECT_EQ(registry_.find("b")->status().last_sequence, 3u);  // nothing of the batch

  in.body = "\n \n";
  r = service_.publish(anyone_.get(), "b", in);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "no JSON value in the body");
  EXPECT_EQ(counters_.published_events, 3u);
}

TEST_F(StreamService, PublishValidatesBeforeTouchingTheStream) {
  EXPECT_EQ(code_of(publish(anyone_.get(), "s", "{")), "malformed_json");
  EXPECT_EQ(code_of(publish(anyone_.get(), "bad id", "{}")), "invalid_stream_id");
  streams::publish_input in;
  in.body = "{}";
  in.type = "no spaces";
  EXPECT_EQ(code_of(service_.publish(anyone_.get(), "s", in)), "invalid_event_name");
  in.type = "delta";
  in.delta_of = "m 1";
  EXPECT_EQ(code_of(service_.publish(anyone_.get(), "s", in)), "invalid_delta");
  in.delta_of = "m1";
  in.body = "[1]";
  EXPECT_EQ(code_of(service_.publish(anyone_.get(), "s", in)), "invalid_delta");
  in.body = R"({"content":"x"})";
  auto r = service_.publish(anyone_.get(), "s", in);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "a delta's data must have a string member \"text\"");
  in.delta_field = "content";
  EXPECT_TRUE(service_.publish(anyone_.get(), "s", in));
  // Only the valid delta created the stream.
  EXPECT_EQ(registry_.find("s")->status().last_sequence, 1u);
}

TEST_F(StreamService, CallerChecksComeFirst) {
  auto r = publish(nullptr, "s", "{}");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "unauthorized");
  EXPECT_EQ(r.error().http_status, 401u);
  auto expired = std::make_shared<auth::principal>(*anyone_);
  expired->expires_at = 1000;  // 1970
  r = publish(expired.get(), "s", "{}");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "the token has expired");
  EXPECT_FALSE(registry_.find("s"));
  EXPECT_EQ(code_of(service_.subscribe(nullptr, "s", {})), "unauthorized");
  EXPECT_EQ(code_of(service_.status(nullptr, "s")), "unauthorized");
  EXPECT_EQ(code_of(service_.cancel(nullptr, "s", std::nullopt)), "unauthorized");
  EXPECT_EQ(code_of(service_.create_share_link(nullptr, "s")), "unauthorized");
  json::value req = json::parse("{}");
  streams::run_input in;
  in.request = &req;
  EXPECT_EQ(code_of(service_.start_run(nullptr, in)), "unauthorized");
  EXPECT_FALSE(registry_.find("s"));
}

TEST_F(StreamService, SubscribeStartsAtTheFirstRetainedEventOrAfterLastEventId) {
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(publish(anyone_.get(), "s", "{}", i == 2));
  auto c = service_.subscribe(anyone_.get(), "s", {});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->next_sequence, 1u);
  EXPECT_FALSE(c->complete);
  EXPECT_FALSE(c->history_truncated_at);
  EXPECT_TRUE(c->coalesce);
  EXPECT_EQ(counters_.resumes, 0u);

  c = service_.subscribe(anyone_.get(), "s", {.last_event_id = "2", .coalesce = false});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->next_sequence, 3u);
  EXPECT_FALSE(c->coalesce);
  EXPECT_EQ(counters_.resumes, 1u);
  // The client has the final event: nothing to read (HTTP 204, WebSocket "end").
  c = service_.subscribe(anyone_.get(), "s", {.last_event_id = "3"});
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->complete);

  c = service_.subscribe(anyone_.get(), "s", {.last_event_id = "4"});
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, "unknown_last_event_id");
  EXPECT_EQ(c.error().http_status, 409u);
  EXPECT_EQ(c.error().message, "Last-Event-ID 4 is past the stream's last event 3");
  c = service_.subscribe(anyone_.get(), "s", {.last_event_id = "-1"});
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, "invalid_last_event_id");
  EXPECT_EQ(c.error().http_status, 400u);
}

TEST_F(StreamService, SubscribingToANewIdCreatesAPendingStreamOwnedByNobody) {
  // A resume of a stream that does not exist creates nothing.
  auto c = service_.subscribe(anyone_.get(), "later", {.last_event_id = "5"});
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, "unknown_last_event_id");
  EXPECT_EQ(c.error().message, "the stream has no event 5");
  EXPECT_EQ(code_of(service_.subscribe(anyone_.get(), "later", {.last_event_id = "x"})),
            "invalid_last_event_id");
  EXPECT_FALSE(registry_.find("later"));

  c = service_.subscribe(anyone_.get(), "later", {.last_event_id = "0"});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->next_sequence, 1u);
  auto log = registry_.find("later");
  ASSERT_TRUE(log);
  EXPECT_EQ(log->owner(), core::reader_owner("127.0.0.1"));
  EXPECT_FALSE(anyone_->owns(log->owner()));
  EXPECT_EQ(registry_.owned_by("127.0.0.1"), 1u);  // charged to the reader
}

class StreamServiceRetention : public StreamService {
 protected:
  static core::registry_config small() {
    core::registry_config rc;
    rc.retention.max_events = 2;
    return rc;
  }
  StreamServiceRetention() : StreamService(small()) {}
};

TEST_F(StreamServiceRetention, ANewReaderIsToldTheStartIsGone) {
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(publish(anyone_.get(), "s", "{}"));
  auto c = service_.subscribe(anyone_.get(), "s", {});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->next_sequence, 4u);
  ASSERT_TRUE(c->history_truncated_at);
  EXPECT_EQ(*c->history_truncated_at, 4u);
  // A resume is not told (its reader learns of a gap when it reads).
  c = service_.subscribe(anyone_.get(), "s", {.last_event_id = "1"});
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->history_truncated_at);
}

class StreamServiceNoCoalescing : public StreamService {
 protected:
  static streams::service_config no_coalesce() {
    streams::service_config sc;
    sc.coalesce = false;
    return sc;
  }
  StreamServiceNoCoalescing() : StreamService({}, no_coalesce()) {}
};

TEST_F(StreamServiceNoCoalescing, ReadersCannotOptIn) {
  ASSERT_TRUE(publish(anyone_.get(), "s", "{}"));
  auto c =
      service_.subscribe(anyone_.get(), "s", {.last_event_id = std::nullopt, .coalesce = true});
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->coalesce);
}

class StreamServiceBudgets : public StreamService {
 protected:
  static core::registry_config tight() {
    core::registry_config rc;
    rc.max_streams = 3;
    rc.max_streams_per_owner = 2;
    rc.memory_budget_bytes = 100;
    return rc;
  }
  StreamServiceBudgets() : StreamService(tight()) {}
};

TEST_F(StreamServiceBudgets, EveryBudgetAnswersWithItsCodeStatusAndRetryAfter) {
  auto a = who("a", {"*"}, {"*"});
  auto b = who("b", {"*"}, {"*"});
  ASSERT_TRUE(publish(a.get(), "a1", "{}"));
  ASSERT_TRUE(publish(a.get(), "a2", "{}"));
  auto r = publish(a.get(), "a3", "{}");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "too_many_streams_for_subject");
  EXPECT_EQ(r.error().http_status, 429u);
  EXPECT_EQ(r.error().retry_after_s, 5);
  // A reader's pending stream counts against the reader's budget too.
  auto c = service_.subscribe(a.get(), "a4", {});
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, "too_many_streams_for_subject");

  ASSERT_TRUE(publish(b.get(), "b1", "{}"));
  r = publish(b.get(), "b2", "{}");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "too_many_streams");
  EXPECT_EQ(r.error().http_status, 503u);
  EXPECT_EQ(r.error().retry_after_s, 5);

  // Past the memory budget (an open stream is never evicted).
  ASSERT_TRUE(publish(b.get(), "b1", "{\"pad\":\"" + std::string(200, 'x') + "\"}"));
  r = publish(b.get(), "b1", "{}");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "memory_budget_exceeded");
  EXPECT_EQ(r.error().http_status, 503u);
  EXPECT_EQ(r.error().retry_after_s, 5);

  auto e = streams::registry_refusal(core::make_error_code(core::registry_error::already_exists));
  EXPECT_EQ(e.code, "stream_exists");
  EXPECT_EQ(e.http_status, 409u);
  EXPECT_EQ(e.retry_after_s, 0);
}

TEST_F(StreamService, StatusAndCancel) {
  ASSERT_TRUE(publish(anyone_.get(), "s", "{}"));
  auto st = service_.status(anyone_.get(), "s");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->id, "s");
  EXPECT_EQ(st->status.last_sequence, 1u);
  EXPECT_EQ(st->status.state, core::stream_state::open);
  EXPECT_EQ(code_of(service_.status(anyone_.get(), "none")), "stream_not_found");

  EXPECT_EQ(code_of(service_.cancel(anyone_.get(), "s", std::string_view("\x01"))),
            "invalid_reason");
  EXPECT_EQ(code_of(service_.cancel(anyone_.get(), "s", std::string(257, 'r'))), "invalid_reason");
  auto c = service_.cancel(anyone_.get(), "s", std::nullopt);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->sequence, 2u);  // the final error event
  EXPECT_EQ(registry_.find("s")->status().state, core::stream_state::cancelled);
  auto again = service_.cancel(anyone_.get(), "s", std::nullopt);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, "stream_ended");
  EXPECT_EQ(again.error().http_status, 409u);
  EXPECT_EQ(code_of(service_.cancel(anyone_.get(), "none", std::nullopt)), "stream_not_found");
}

TEST_F(StreamService, ShareLinksWithoutAccessControlNeedNoToken) {
  ASSERT_TRUE(publish(anyone_.get(), "s", "{}"));
  auto l = service_.create_share_link(anyone_.get(), "s");
  ASSERT_TRUE(l);
  EXPECT_EQ(l->path, "/v1/streams/s/events");
  EXPECT_FALSE(l->token);
  EXPECT_EQ(code_of(service_.create_share_link(anyone_.get(), "none")), "stream_not_found");
}

// The access matrix (docs/security.md) at the op layer, with --auth jwt: who
// may publish, read, cancel and link stream team1-a, owned by "owner".
class StreamServiceAccess : public StreamService {
 protected:
  static streams::service_config jwt() {
    streams::service_config sc;
    sc.verifier = auth::verifier::from_secret(std::string(32, 'k'));
    sc.link_ttl_s = 600;
    return sc;
  }
  StreamServiceAccess() : StreamService({}, jwt()) {}
};

TEST_F(StreamServiceAccess, Matrix) {
  auto owner = who("owner", {"team1-a"}, {});
  struct row {
    const char* name;
    std::shared_ptr<const auth::principal> p;
    std::vector<std::string> expected;  // publish, subscribe, status, cancel, link
  };
  auto link = std::make_shared<auth::principal>(*who("owner", {}, {"team1-a"}));
  link->link = true;  // a share-link token: reads its stream, owns nothing
  std::vector<row> rows = {
      {"publisher of team1-*",
       who("p", {"team1-*"}, {}),
       {"ok", "stream_not_found", "stream_not_found", "ok", "stream_not_found"}},
      {"reader of team1-*",
       who("r", {}, {"team1-*"}),
       {"forbidden", "ok", "ok", "stream_not_found", "stream_not_found"}},
      {"another team",
       who("x", {"team2-*"}, {"team2-*"}),
       {"forbidden", "stream_not_found", "stream_not_found", "stream_not_found",
        "stream_not_found"}},
      {"share link", link, {"forbidden", "ok", "ok", "stream_not_found", "stream_not_found"}},
  };
  for (const auto& r : rows) {
    // A fresh stream owned by "owner", with one event.
    SCOPED_TRACE(r.name);
    const std::string id = "team1-a";
    core::stream_registry fresh({});
    streams::stream_service s(fresh, jwt());
    streams::publish_input in;
    in.body = "{}";
    ASSERT_TRUE(s.publish(owner.get(), id, in));
    struct {
      std::string publish, subscribe, status, cancel, link;
    } o;
    o.status = code_of(s.status(r.p.get(), id));
    o.subscribe = code_of(s.subscribe(r.p.get(), id, {.last_event_id = "1"}));
    o.link = code_of(s.create_share_link(r.p.get(), id));
    o.publish = code_of(s.publish(r.p.get(), id, in));
    o.cancel = code_of(s.cancel(r.p.get(), id, std::nullopt));
    EXPECT_EQ((std::vector<std::string>{o.publish, o.subscribe, o.status, o.cancel, o.link}),
              r.expected);
  }
}

TEST_F(StreamServiceAccess, TheOwnerMayReadCancelAndLinkWithoutPatterns) {
  auto creator = who("owner", {"team1-a"}, {});
  ASSERT_TRUE(publish(creator.get(), "team1-a", "{}"));
  // The same subject without any pattern (e.g. a later token of the owner).
  auto owner = who("owner", {}, {});
  EXPECT_TRUE(service_.status(owner.get(), "team1-a"));
  EXPECT_TRUE(service_.subscribe(owner.get(), "team1-a", {}));
  EXPECT_EQ(code_of(publish(owner.get(), "team1-a", "{}")), "forbidden");
  auto l = service_.create_share_link(owner.get(), "team1-a");
  ASSERT_TRUE(l);
  ASSERT_TRUE(l->token);
  EXPECT_GT(l->expires_at, 0);
  // The link token reads exactly this stream, and owns nothing.
  const auto now = l->expires_at - 600;
  auto out = service_.verifier()->verify(*l->token, now);
  ASSERT_TRUE(out.who) << out.error;
  EXPECT_TRUE(out.who->may_subscribe("team1-a"));
  EXPECT_FALSE(out.who->may_subscribe("team1-b"));
  EXPECT_TRUE(service_.subscribe(out.who.get(), "team1-a", {}));
  EXPECT_EQ(code_of(service_.create_share_link(out.who.get(), "team1-a")), "stream_not_found");
  EXPECT_TRUE(service_.cancel(owner.get(), "team1-a", std::string_view("done")));

  // A stream created by a reader is nobody's: the reader may not cancel it.
  auto reader = who("r", {}, {"team1-*"});
  ASSERT_TRUE(service_.subscribe(reader.get(), "team1-new", {}));
  EXPECT_EQ(code_of(service_.cancel(reader.get(), "team1-new", std::nullopt)), "stream_not_found");
  EXPECT_EQ(code_of(service_.create_share_link(reader.get(), "team1-new")), "stream_not_found");
}

// A launcher like app/'s agents: request {"id":ID,"stream":B}; each launch
// creates (or finds) the stream ID.
class fake_launcher final : public streams::run_launcher {
 public:
  explicit fake_launcher(core::stream_registry& r) : registry_(r) {}
  mutable int launches = 0;
  mutable std::string last_owner, last_endpoint;
  streams::op_error refuse_with{"", 0, "", 0};

  streams::op_result<streams::run_plan> plan(std::string_view endpoint,
                                             const json::value& req) const override {
    last_endpoint = endpoint;
    const auto* id = req.is_object() ? req.as_object().if_contains("id") : nullptr;
    if (id == nullptr || !id->is_string())
      return streams::op_error{"invalid_request", 400, "needs an id", 0};
    streams::run_plan p;
    p.request_id = id->as_string();
    if (const auto* s = req.as_object().if_contains("stream"); s && s->is_bool())
      p.wants_stream = s->as_bool();
    p.launch = [this, id = p.request_id](
                   const boost::asio::any_io_executor&,
                   std::string_view owner) -> streams::op_result<streams::run_started> {
      ++launches;
      last_owner = owner;
      if (!refuse_with.code.empty()) return refuse_with;
      if (auto existing = registry_.find(id)) return streams::run_started{existing, false};
      auto l = registry_.create(id, owner);
      if (!l) return streams::registry_refusal(l.error());
      return streams::run_started{*l, true};
    };
    return p;
  }

 private:
  core::stream_registry& registry_;
};

TEST_F(StreamServiceAccess, RunsStartAttachAndRefuse) {
  json::value req = json::parse(R"({"id":"team1-run","stream":false})");
  streams::run_input in;
  in.endpoint = "deepsearch_tool";
  in.request = &req;
  auto starter = who("owner", {}, {}, /*run=*/true);

  auto r = service_.start_run(starter.get(), in);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "start_unavailable");
  EXPECT_EQ(r.error().http_status, 503u);

  auto launcher = std::make_shared<fake_launcher>(registry_);
  service_.set_run_launcher(launcher);
  EXPECT_EQ(code_of(service_.start_run(who("owner", {"*"}, {"*"}).get(), in)), "forbidden");
  EXPECT_EQ(launcher->launches, 0);

  // Resuming a run that does not exist: 404, nothing started.
  in.resuming = true;
  EXPECT_EQ(code_of(service_.start_run(starter.get(), in)), "stream_not_found");
  EXPECT_EQ(launcher->launches, 0);
  in.resuming = false;

  r = service_.start_run(starter.get(), in);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->created);
  EXPECT_FALSE(r->wants_stream);
  EXPECT_EQ(r->stream->id(), "team1-run");
  EXPECT_EQ(launcher->last_owner, "owner");
  EXPECT_EQ(launcher->last_endpoint, "deepsearch_tool");

  // The same request id attaches: the owner, or a reader whose pattern covers it.
  in.resuming = true;
  r = service_.start_run(starter.get(), in);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->created);
  r = service_.start_run(who("r", {}, {"team1-*"}, true).get(), in);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->created);
  // Anyone else cannot tell it exists, and starts nothing.
  const int before = launcher->launches;
  EXPECT_EQ(code_of(service_.start_run(who("x", {"*"}, {"team2-*"}, true).get(), in)),
            "stream_not_found");
  EXPECT_EQ(launcher->launches, before);

  // The cursor of the run honours Last-Event-ID.
  ASSERT_EQ(r->stream->publish("message", "{}").status, core::publish_status::ok);
  auto c = service_.open_cursor(r->stream, {.last_event_id = "1"});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->next_sequence, 2u);

  json::value bad = json::parse("[]");
  in.request = &bad;
  EXPECT_EQ(code_of(service_.start_run(starter.get(), in)), "invalid_request");
  json::value other = json::parse(R"({"id":"team1-other"})");
  in.request = &other;
  in.resuming = false;
  launcher->refuse_with = {"too_many_runs", 503, "the limit", 1};
  r = service_.start_run(starter.get(), in);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "too_many_runs");
  EXPECT_EQ(r.error().retry_after_s, 1);
}

TEST(StreamServiceConfig, LinkTtlIsChecked) {
  core::stream_registry registry({});
  streams::service_config sc;
  sc.link_ttl_s = 0;
  EXPECT_THROW(streams::stream_service(registry, sc), std::runtime_error);
  EXPECT_EQ(streams::parse_event_id("0123"), (streams::event_id{123, ""}));
  EXPECT_FALSE(streams::parse_event_id("1234567890123456789"));  // past 18 digits
  EXPECT_FALSE(streams::parse_event_id(""));
  EXPECT_FALSE(streams::parse_event_id("+1"));
}

TEST(StreamServiceEventIds, BothFormsAndNothingElse) {
  using streams::event_id;
  using streams::parse_event_id;
  EXPECT_EQ(parse_event_id("7"), (event_id{7, ""}));
  EXPECT_EQ(parse_event_id("999999999999999999"), (event_id{999999999999999999u, ""}));
  EXPECT_EQ(parse_event_id("7-a"), (event_id{7, "a"}));
  EXPECT_EQ(parse_event_id("12-0123456789abcdef"), (event_id{12, "0123456789abcdef"}));
  EXPECT_EQ(parse_event_id("0-zz9"), (event_id{0, "zz9"}));
  for (const char* bad :
       {"-", "7-", "-a", "7-A", "7-a-b", "7--a", "7-0123456789abcdefg", "7 -a", "7-a ", " 7",
        "7-\xc3\xa9", "1234567890123456789-a", "x-a", "7_a", "7-a\n"})
    EXPECT_FALSE(parse_event_id(bad)) << bad;
  EXPECT_EQ(core::format_event_id(7, ""), "7");
  EXPECT_EQ(core::format_event_id(7, "e1"), "7-e1");
  const std::string r = core::random_epoch();
  EXPECT_EQ(r.size(), 16u);
  EXPECT_TRUE(core::is_valid_epoch(r));
  EXPECT_NE(r, core::random_epoch());
}

// The resume rule across epochs (docs/resuming-streams.md, Epochs).
TEST_F(StreamService, ResumeAcrossEpochs) {
  // Events 1..3 without an epoch, then epoch "e1" from 4 (the boundary).
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(publish(anyone_.get(), "s", "{}"));
  auto log = registry_.find("s");
  ASSERT_TRUE(log);
  EXPECT_FALSE(log->set_epoch("e0"));  // events exist: too late
  EXPECT_EQ(log->epoch(), "");
  EXPECT_FALSE(log->begin_epoch("E1"));  // not [0-9a-z]
  EXPECT_FALSE(log->begin_epoch(""));
  ASSERT_TRUE(log->begin_epoch("e1"));
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(publish(anyone_.get(), "s", "{}"));
  EXPECT_EQ(log->epoch(), "e1");
  const core::epoch_info ep = log->epochs();
  EXPECT_EQ(ep.current, "e1");
  EXPECT_EQ(ep.previous, "");
  EXPECT_EQ(ep.boundary, 4u);

  auto resume = [&](std::string_view id) {
    return service_.subscribe(anyone_.get(), "s", {.last_event_id = id});
  };
  // The current epoch: as without epochs.
  auto c = resume("4-e1");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->next_sequence, 5u);
  c = resume("5-e1");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->next_sequence, 6u);
  EXPECT_FALSE(c->complete);
  c = resume("6-e1");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, "unknown_last_event_id");
  EXPECT_EQ(c.error().message, "Last-Event-ID 6-e1 is past the stream's last event 5");
  // The previous epoch (none): before the boundary resumes exactly.
  for (std::uint64_t last : {1u, 3u}) {
    c = resume(std::to_string(last));
    ASSERT_TRUE(c);
    EXPECT_EQ(c->next_sequence, last + 1);
  }
  c = resume("0");  // the client has nothing: always fine
  ASSERT_TRUE(c);
  EXPECT_EQ(c->next_sequence, 1u);
  // At or past the boundary in the previous epoch, another epoch, an
  // unknown epoch: the client's history is not the stream's.
  for (const char* id : {"4", "5", "9", "2-e0", "3-x", "0-e0"}) {
    c = resume(id);
    ASSERT_FALSE(c) << id;
    EXPECT_EQ(c.error().code, "history_truncated") << id;
    EXPECT_EQ(c.error().http_status, 409u);
    ASSERT_TRUE(c.error().first_available) << id;
    EXPECT_EQ(*c.error().first_available, 1u);
  }
  EXPECT_EQ(resume("4").error().message,
            "the stream's history after Last-Event-ID 4 was lost (the stream is in another "
            "epoch): start again from first_available without Last-Event-ID");
  EXPECT_EQ(code_of(resume("4-E1")), "invalid_last_event_id");

  // A second epoch forgets the first: one level is kept.
  ASSERT_TRUE(log->begin_epoch("e2"));
  ASSERT_TRUE(publish(anyone_.get(), "s", "{}", true));
  c = resume("5-e1");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->next_sequence, 6u);
  c = resume("6-e2");
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->complete);  // the final event
  EXPECT_EQ(code_of(resume("6-e1")), "history_truncated");
  EXPECT_EQ(code_of(resume("3")), "history_truncated");
  EXPECT_EQ(code_of(resume("2-e1")), "ok");  // never issued, but before the boundary
}

TEST_F(StreamService, AnEpochForAStreamWithoutOneIsTruncated) {
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(publish(anyone_.get(), "s", "{}"));
  auto c = service_.subscribe(anyone_.get(), "s", {.last_event_id = "1-e1"});
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, "history_truncated");
  EXPECT_EQ(*c.error().first_available, 1u);
  // A stream that does not exist: as for any resume of one.
  c = service_.subscribe(anyone_.get(), "gone", {.last_event_id = "3-e1"});
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, "unknown_last_event_id");
  EXPECT_EQ(code_of(service_.subscribe(anyone_.get(), "gone", {.last_event_id = "0-e1"})),
            "unknown_last_event_id");
  EXPECT_FALSE(registry_.find("gone"));
}

TEST_F(StreamService, AStreamCreatedInAnEpoch) {
  auto log = registry_.get_or_create("s", "127.0.0.1");
  ASSERT_TRUE(log);
  EXPECT_FALSE((*log)->set_epoch("bad-epoch"));
  ASSERT_TRUE((*log)->set_epoch("q7"));
  ASSERT_TRUE(publish(anyone_.get(), "s", "{}"));
  EXPECT_EQ((*log)->epochs().boundary, 0u);
  EXPECT_EQ(service_.subscribe(anyone_.get(), "s", {.last_event_id = "1-q7"})->next_sequence, 2u);
  EXPECT_EQ(service_.subscribe(anyone_.get(), "s", {.last_event_id = "0"})->next_sequence, 1u);
  EXPECT_EQ(code_of(service_.subscribe(anyone_.get(), "s", {.last_event_id = "1"})),
            "history_truncated");
}

// A reader behind the retained window learns first_available = the first
// retained event.
TEST_F(StreamServiceRetention, HistoryTruncatedTellsTheFirstRetainedEvent) {
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(publish(anyone_.get(), "s", "{}"));
  ASSERT_TRUE(registry_.find("s")->begin_epoch("n"));
  auto c = service_.subscribe(anyone_.get(), "s", {.last_event_id = "9"});
  ASSERT_FALSE(c);
  EXPECT_EQ(*c.error().first_available, 4u);
}

}  // namespace
