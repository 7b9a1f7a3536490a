// dispatch_ws_op and the frame codec without a socket: the exact control
// messages each op answers, over a real op layer and registry.
#include "transport/ws_dispatch.hpp"

#include <gtest/gtest.h>

#include <boost/json/value.hpp>

#include "core/sse_encoder.hpp"
#include "transport/ws_frame_codec.hpp"
#include "transport/ws_ops.hpp"

namespace {

using namespace sluice;

struct recording_set final : transport::ws_stream_set {
  std::vector<std::string> sent;
  std::vector<std::pair<std::string, streams::cursor_start>> streams;
  bool has_stream(std::string_view id) const override {
    for (const auto& s : streams)
      if (s.first == id) return true;
    return false;
  }
  std::size_t active_streams() const override { return streams.size(); }
  void add_stream(const std::string& id, streams::cursor_start c) override {
    streams.emplace_back(id, std::move(c));
  }
  bool remove_stream(std::string_view id) override {
    return std::erase_if(streams, [&](const auto& s) { return s.first == id; }) > 0;
  }
  void send_control(std::string message) override { sent.push_back(std::move(message)); }
  // (One node: every op completes inline, so nothing comes later.)
  std::function<void(continuation)> later() override {
    return [this](continuation f) { f(*this); };
  }
  void send_control_when(streams::durable_wait wait, std::string message, std::string) override {
    wait([this, message = std::move(message)](bool ok) mutable {
      if (ok) sent.push_back(std::move(message));
    });
  }
};

class WsDispatch : public ::testing::Test {
 protected:
  WsDispatch() : registry_(config()), service_(registry_, {}) {}
  static core::registry_config config() {
    core::registry_config rc;
    rc.retention.max_events = 2;
    return rc;
  }
  // Parses `text` and dispatches it; returns what was sent.
  std::vector<std::string> run(std::string_view text) {
    auto parsed = transport::parse_ws_op(text);
    EXPECT_TRUE(std::holds_alternative<transport::ws_op>(parsed)) << text;
    set_.sent.clear();
    const transport::ws_op_context ctx{service_, who_, {}, 2};
    transport::dispatch_ws_op(std::get<transport::ws_op>(parsed), ctx, set_);
    return set_.sent;
  }
  using v = std::vector<std::string>;

  core::stream_registry registry_;
  streams::stream_service service_;
  std::shared_ptr<const auth::principal> who_ = auth::principal::anyone("127.0.0.1");
  recording_set set_;
};

TEST_F(WsDispatch, PublishCancelAndTheirAcks) {
  EXPECT_EQ(run(R"({"op":"ping"})"), v{R"({"op":"pong"})"});
  EXPECT_EQ(run(R"({"op":"publish","stream":"s","data":{"n":1}})"),
            v{R"({"op":"published","stream":"s","sequence":1})"});
  EXPECT_EQ(
      run(R"({"op":"publish","stream":"s","event":"bad name","data":1})"),
      v{R"({"op":"error","code":"invalid_event_name","message":"event must match [A-Za-z0-9._:-]{1,128}","stream":"s"})"});
  EXPECT_EQ(
      run(R"({"op":"publish","stream":"s","delta":"m","data":{"x":1}})"),
      v{R"({"op":"error","code":"invalid_delta","message":"a delta's data must have a string member \"text\"","stream":"s"})"});
  EXPECT_EQ(run(R"({"op":"cancel","stream":"s","reason":"done"})"),
            v{R"({"op":"cancelled","stream":"s","sequence":2})"});
  EXPECT_EQ(
      run(R"({"op":"cancel","stream":"s"})"),
      v{R"({"op":"error","code":"stream_ended","message":"the stream has already ended","stream":"s"})"});
  EXPECT_EQ(
      run(R"({"op":"publish","stream":"s","data":1})"),
      v{R"({"op":"error","code":"stream_ended","message":"the stream has ended; publishing is refused","stream":"s"})"});
  EXPECT_EQ(
      run(R"({"op":"cancel","stream":"none"})"),
      v{R"({"op":"error","code":"stream_not_found","message":"no such stream","stream":"none"})"});
}

TEST_F(WsDispatch, SubscribeUnsubscribeAndTheirLimits) {
  for (int i = 0; i < 3; ++i) run(R"({"op":"publish","stream":"a","data":{}})");
  // The start (1) is no longer retained: a notice, then the cursor at 2.
  EXPECT_EQ(run(R"({"op":"subscribe","stream":"a"})"),
            v{R"({"op":"notice","code":"history_truncated","stream":"a","first_available":2})"});
  ASSERT_EQ(set_.streams.size(), 1u);
  EXPECT_EQ(set_.streams[0].second.next_sequence, 2u);
  EXPECT_EQ(
      run(R"({"op":"subscribe","stream":"a"})"),
      v{R"({"op":"error","code":"already_subscribed","message":"this socket is already subscribed to the stream","stream":"a"})"});
  EXPECT_EQ(run(R"({"op":"subscribe","stream":"b","lastEventId":0,"coalesce":false})"), v{});
  EXPECT_FALSE(set_.streams[1].second.coalesce);
  EXPECT_EQ(
      run(R"({"op":"subscribe","stream":"c"})"),
      v{R"({"op":"error","code":"too_many_subscriptions","message":"at most 2 streams per socket","stream":"c"})"});
  EXPECT_EQ(run(R"({"op":"unsubscribe","stream":"a"})"),
            v{R"({"op":"unsubscribed","stream":"a"})"});
  EXPECT_EQ(
      run(R"({"op":"unsubscribe","stream":"a"})"),
      v{R"({"op":"error","code":"not_subscribed","message":"this socket is not subscribed to the stream","stream":"a"})"});
  // Resuming after the final event: "end" at once, no subscription.
  run(R"({"op":"publish","stream":"f","data":{},"final":true})");
  EXPECT_EQ(run(R"({"op":"subscribe","stream":"f","lastEventId":"1"})"),
            v{R"({"op":"end","stream":"f"})"});
  EXPECT_EQ(
      run(R"({"op":"subscribe","stream":"f","lastEventId":"7"})"),
      v{R"({"op":"error","code":"unknown_last_event_id","message":"Last-Event-ID 7 is past the stream's last event 1","stream":"f"})"});
  EXPECT_EQ(set_.streams.size(), 1u);
}

TEST_F(WsDispatch, ResumesAcrossEpochsAndRefusesALostHistory) {
  for (int i = 0; i < 2; ++i) run(R"({"op":"publish","stream":"e","data":{}})");
  ASSERT_TRUE(registry_.find("e")->begin_epoch("k1"));
  run(R"({"op":"publish","stream":"e","data":{}})");
  EXPECT_EQ(run(R"({"op":"subscribe","stream":"e","lastEventId":"3-k1"})"), v{});
  EXPECT_EQ(set_.streams.back().second.next_sequence, 4u);
  run(R"({"op":"unsubscribe","stream":"e"})");
  EXPECT_EQ(run(R"({"op":"subscribe","stream":"e","lastEventId":2})"), v{});
  EXPECT_EQ(set_.streams.back().second.next_sequence, 3u);
  run(R"({"op":"unsubscribe","stream":"e"})");
  EXPECT_EQ(
      run(R"({"op":"subscribe","stream":"e","lastEventId":3})"),
      v{R"({"op":"error","code":"history_truncated","message":"the stream's history after Last-Event-ID 3 was lost (the stream is in another epoch): start again from first_available without Last-Event-ID","stream":"e","first_available":2})"});
  // (The fixture retains 2 events: 2 is the first available.)
  auto bad = transport::parse_ws_op(R"({"op":"subscribe","stream":"e","lastEventId":"3-K1"})");
  ASSERT_TRUE(std::holds_alternative<transport::ws_op_error>(bad));
  EXPECT_EQ(std::get<transport::ws_op_error>(bad).code, "invalid_last_event_id");
  EXPECT_EQ(std::get<transport::ws_op_error>(bad).message,
            R"(lastEventId must be a sequence number (N, "N" or "N-EPOCH"))");
  EXPECT_TRUE(set_.streams.empty());
}

TEST_F(WsDispatch, StartWithoutALauncherIsUnavailable) {
  EXPECT_EQ(
      run(R"({"op":"start","request":{"query":"q"}})"),
      v{R"({"op":"error","code":"start_unavailable","message":"this server has no producer behind \"start\""})"});
}

TEST(WsFrameCodec, DecodesTheEncodersFramingAndBuildsFrames) {
  const std::string bytes = core::encode_sse_event(7, "delta", R"({"text":"a"})") +
                            core::encode_sse_event(8, "message", "{\"a\":\n1}");
  std::vector<transport::event_view> events;
  ASSERT_TRUE(transport::decode_sse_events(bytes, events));
  ASSERT_EQ(events.size(), 2u);
  std::string head;
  transport::event_frame_head("s", events[0], head);
  EXPECT_EQ(head + std::string(events[0].data) + std::string(transport::event_frame_tail),
            R"({"stream":"s","id":7,"event":"delta","data":{"text":"a"}})");
  ASSERT_TRUE(events[1].multi_line);
  std::string joined;
  transport::join_data_lines(events[1].data, joined);
  EXPECT_EQ(joined, "{\"a\":\n1}");
  // An id with an epoch: "epoch" after the numeric id.
  events.clear();
  ASSERT_TRUE(transport::decode_sse_events("id: 9-k1\nevent: t\ndata: 1\n\n", events));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].id, 9u);
  EXPECT_EQ(events[0].epoch, "k1");
  transport::event_frame_head("s", events[0], head);
  EXPECT_EQ(head + std::string(events[0].data) + std::string(transport::event_frame_tail),
            R"({"stream":"s","id":9,"epoch":"k1","event":"t","data":1})");
  for (const char* bad : {"id: 9-\ndata: 1\n\n", "id: 9-K\ndata: 1\n\n", "id: 9x\ndata: 1\n\n"})
    EXPECT_FALSE(transport::decode_sse_events(bad, events)) << bad;
  EXPECT_FALSE(transport::decode_sse_events("data: x\n\n", events));
  EXPECT_EQ(
      transport::window_exceeded_message("s", 5),
      R"({"op":"error","code":"resume_window_exceeded","message":"events before 5 are no longer retained","stream":"s","first_available":5})");
}

}  // namespace
