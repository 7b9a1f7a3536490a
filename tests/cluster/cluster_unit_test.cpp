// The cluster node's pure parts: turning a local producer's SSE bytes back
// into (type, data) for Redis, exactly as the log encoded them.
#include <gtest/gtest.h>

#include "cluster/cluster_node.hpp"
#include "core/sse_encoder.hpp"

using sluice::cluster::decode_sse_event;

TEST(ClusterDecode, RoundTripsWhatTheEncoderWrites) {
  for (const auto& [type, data] :
       std::vector<std::pair<std::string, std::string>>{{"message", R"({"n":1})"},
                                                        {"answer", R"({"text":"a b"})"},
                                                        {"error", "{\"a\":1,\n\"b\":2}"},
                                                        {"message", ""}}) {
    const auto sse = sluice::core::encode_sse_event(42, type, data);
    std::string t, d;
    ASSERT_TRUE(decode_sse_event(sse, t, d)) << sse;
    EXPECT_EQ(t, type);
    EXPECT_EQ(d, data);
  }
}

TEST(ClusterDecode, RefusesWhatIsNotOneEvent) {
  std::string t, d;
  EXPECT_FALSE(decode_sse_event("id: 1\ndata: x\n", t, d));              // no blank line
  EXPECT_FALSE(decode_sse_event("id: 1\ndata: x\n\nid: 2\n", t, d));     // more than one
  EXPECT_FALSE(decode_sse_event("id: 1\nretry: 5\ndata: x\n\n", t, d));  // another field
  EXPECT_FALSE(decode_sse_event("", t, d));
}

TEST(ClusterNodeId, IsAValidName) {
  const auto id = sluice::cluster::default_node_id(8080);
  EXPECT_NE(id.find(":8080:"), std::string::npos) << id;
  for (char c : id)
    EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_' ||
                c == ':')
        << id;
}
