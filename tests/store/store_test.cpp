// The durable log without sockets: the record format, and restarts of a real
// store on real files in a temp folder (torn tails, corruption, retention).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <tuple>
#include <vector>

#include "core/coalescer.hpp"
#include "core/stream_registry.hpp"
#include "store/durable_log.hpp"
#include "store/record_format.hpp"

namespace fs = std::filesystem;
using namespace sluice;
using core::stream_state;

namespace {

struct temp_dir {
  fs::path path;
  temp_dir() {
    char tmpl[] = "/tmp/sluice-store-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

struct null_waiter : core::stream_waiter {
  void on_stream_ready() noexcept override {}
};

// Every retained event's bytes, as a reader that does not coalesce gets them
// (at most `max_bytes` a read).
std::string read_all(const std::shared_ptr<core::stream_log>& log, std::uint64_t from = 1,
                     std::size_t max_bytes = 1 << 20) {
  null_waiter w;
  core::subscription sub(log, from, w, false);
  core::read_batch b;
  std::string out;
  for (;;) {
    auto st = sub.read(b, max_bytes);
    if (st != core::read_status::data) break;
    for (auto& s : b.spans) out.append(s.data, s.size);
  }
  return out;
}

// A registry with a store in `dir`, as `sluice serve --data-dir` wires them.
struct node {
  core::stream_registry registry;
  std::shared_ptr<store::durable_log> store;
  store::recovery_stats recovered;
  node(const fs::path& dir, core::registry_config rc = {}, store::durable_config dc = {})
      : registry(rc) {
    dc.dir = dir;
    // The writer writes only when flushed (unless a test sets a delay):
    // its immediate first round (recovery's work) is flushed out here, and
    // later rounds wait out an hour. Which records a round holds, and so
    // which segment file each lands in, is then the test's doing, never the
    // timer's or the moment the writer thread starts (a late first round
    // once took two streams' meta records alone, filling a small test
    // segment, and the records after them went to the next file).
    if (dc.write_delay.count() == 0) dc.write_delay = std::chrono::hours(1);
    store = std::make_shared<store::durable_log>(dc);
    recovered = store->recover(registry);
    store->flush();
  }
  ~node() { store->flush(); }
};

// The node-wide log's segment files, oldest first.
std::vector<fs::path> segments(const fs::path& dir) {
  std::vector<fs::path> out;
  for (auto& e : fs::directory_iterator(dir / "log")) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

std::uintmax_t log_bytes(const fs::path& dir) {
  std::uintmax_t total = 0;
  for (auto& p : segments(dir)) total += fs::file_size(p);
  return total;
}

// The ids of the meta records in every segment file (one per stream per file).
std::vector<std::string> meta_ids(const fs::path& dir) {
  std::vector<std::string> ids;
  for (auto& p : segments(dir)) {
    std::ifstream f(p, std::ios::binary);
    const std::string bytes{std::istreambuf_iterator<char>(f), {}};
    std::size_t pos = 0;
    store::parsed_record r;
    while (store::next_record(bytes, pos, r) == store::parse_status::ok)
      if (auto m = store::decode_meta(r)) ids.push_back(m->id);
  }
  return ids;
}

// The event records of a segment file, in order: (first sequence, count).
std::vector<std::pair<std::uint64_t, std::uint32_t>> event_records(const fs::path& file) {
  std::ifstream f(file, std::ios::binary);
  const std::string bytes{std::istreambuf_iterator<char>(f), {}};
  std::size_t pos = 0;
  store::parsed_record r;
  std::vector<std::pair<std::uint64_t, std::uint32_t>> records;
  while (store::next_record(bytes, pos, r) == store::parse_status::ok) {
    store::record_events ev;
    if (ev.open(r)) records.emplace_back(ev.first_seq(), ev.count());
  }
  return records;
}

std::string event_text(std::uint64_t seq, const std::string& data) {
  return "id: " + std::to_string(seq) + "\ndata: " + data + "\n\n";
}

}  // namespace

TEST(RecordFormat, MetaKeepsEpochsAndRefusesMalformedOnes) {
  core::stream_meta m{"abc", "alice", 42, 5, 6, false, "n3w", "0ld", 17};
  std::string buf;
  store::append_meta_record(buf, m);
  std::size_t pos = 0;
  store::parsed_record r;
  ASSERT_EQ(store::next_record(buf, pos, r), store::parse_status::ok);
  auto got = store::decode_meta(r);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->epoch, "n3w");
  EXPECT_EQ(got->previous_epoch, "0ld");
  EXPECT_EQ(got->epoch_boundary, 17u);
  // A stream without an epoch writes no epoch members (the same bytes as before).
  buf.clear();
  store::append_meta_record(buf, core::stream_meta{"abc", "alice", 42, 5, 6, false});
  EXPECT_EQ(buf.find("epoch"), std::string::npos);
  for (
      const char* bad :
      {R"({"id":"a","owner":"","created_us":1,"unread_grace_us":0,"finished_ttl_us":0,"local_producer":false,"epoch":"UP","previous_epoch":"","epoch_boundary":1})",
       R"({"id":"a","owner":"","created_us":1,"unread_grace_us":0,"finished_ttl_us":0,"local_producer":false,"epoch":"a","previous_epoch":"","epoch_boundary":-1})",
       R"({"id":"a","owner":"","created_us":1,"unread_grace_us":0,"finished_ttl_us":0,"local_producer":false,"epoch":"a"})"}) {
    store::parsed_record fake{store::record_type::meta, 0, bad};
    EXPECT_FALSE(store::decode_meta(fake)) << bad;
  }
}

TEST(RecordFormat, EventAndMetaRoundTrip) {
  std::string buf;
  store::event_index ix{7, 1234567, 3, 12, 9, 14, stream_state::finished, 77};
  store::append_event_record(buf, ix, "id: 7\ndata: {\"text\":\"hello\"}\n\n");
  EXPECT_EQ(buf.size(), store::event_record_size(ix, 30));
  core::stream_meta m{"abc", "alice", 42, 5, 6, true, "e2", "e1", 9};
  store::append_meta_record(buf, m, 77);
  store::append_erased_record(buf, "abc");
  std::size_t pos = 0;
  store::parsed_record r;
  ASSERT_EQ(store::next_record(buf, pos, r), store::parse_status::ok);
  store::event_index got;
  std::string_view sse;
  ASSERT_TRUE(store::decode_event(r, got, sse));
  EXPECT_EQ(got.seq, 7u);
  EXPECT_EQ(got.publish_us, 1234567);
  EXPECT_EQ(got.delta_key, 3u);
  EXPECT_EQ(got.json_offset, 12u);
  EXPECT_EQ(got.text_begin, 9u);
  EXPECT_EQ(got.text_end, 14u);
  EXPECT_EQ(got.end_state, stream_state::finished);
  EXPECT_EQ(got.stream, 77u);
  EXPECT_EQ(sse, "id: 7\ndata: {\"text\":\"hello\"}\n\n");
  ASSERT_EQ(store::next_record(buf, pos, r), store::parse_status::ok);
  std::uint32_t key = 0;
  auto meta = store::decode_meta(r, &key);
  ASSERT_TRUE(meta);
  EXPECT_EQ(key, 77u);
  EXPECT_EQ(meta->epoch, "e2");
  EXPECT_EQ(meta->previous_epoch, "e1");
  EXPECT_EQ(meta->epoch_boundary, 9u);
  EXPECT_EQ(meta->id, "abc");
  EXPECT_EQ(meta->owner, "alice");
  EXPECT_EQ(meta->created_us, 42);
  EXPECT_EQ(meta->unread_grace_us, 5);
  EXPECT_EQ(meta->finished_ttl_us, 6);
  EXPECT_TRUE(meta->local_producer);
  ASSERT_EQ(store::next_record(buf, pos, r), store::parse_status::ok);
  std::string_view id;
  ASSERT_TRUE(store::decode_erased(r, id));
  EXPECT_EQ(id, "abc");
  EXPECT_FALSE(store::decode_meta(r));
  EXPECT_EQ(store::next_record(buf, pos, r), store::parse_status::end);
}

TEST(RecordFormat, ChecksumIsCrc32cOnEveryPath) {
  EXPECT_EQ(store::record_checksum("123456789"), 0xE3069283u);  // the CRC-32C check value
  EXPECT_EQ(store::record_checksum_portable("123456789"), 0xE3069283u);
  std::string bytes;
  for (int i = 0; i < 1000; ++i) {
    bytes.push_back(static_cast<char>((i * 131 + 7) & 0xff));
    ASSERT_EQ(store::record_checksum(bytes), store::record_checksum_portable(bytes)) << i;
  }
}

TEST(RecordFormat, EveryTruncationIsTornAndEveryFlippedByteIsCaught) {
  std::string one;
  store::append_event_record(one, {1, 5, 0, 0, 0, 0, stream_state::open}, "id: 1\ndata: {}\n\n");
  std::string two = one;
  store::append_event_record(two, {2, 6, 0, 0, 0, 0, stream_state::open}, "id: 2\ndata: {}\n\n");
  for (std::size_t cut = one.size() + 1; cut < two.size(); ++cut) {
    std::string_view v(two.data(), cut);
    std::size_t pos = 0;
    store::parsed_record r;
    ASSERT_EQ(store::next_record(v, pos, r), store::parse_status::ok);
    EXPECT_EQ(pos, one.size());
    EXPECT_EQ(store::next_record(v, pos, r), store::parse_status::torn) << cut;
    EXPECT_EQ(pos, one.size());
  }
  for (std::size_t i = 0; i < one.size(); ++i) {
    for (int bit : {0, 3, 7}) {
      std::string bad = two;
      bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
      std::size_t pos = 0;
      store::parsed_record r;
      const auto st = store::next_record(bad, pos, r);
      // A flipped length bit may also make the record look longer (torn);
      // either way the first record is never accepted.
      EXPECT_NE(st, store::parse_status::ok) << "byte " << i << " bit " << bit;
      EXPECT_EQ(pos, 0u);
    }
  }
}

TEST(RecordFormat, MalformedPayloadsAreRejected) {
  store::parsed_record r{store::record_type::event, 1, "short"};
  store::event_index ix;
  std::string_view sse;
  EXPECT_FALSE(store::decode_event(r, ix, sse));
  r = {store::record_type::meta, 0, "{\"id\":1}"};
  EXPECT_FALSE(store::decode_meta(r));
  r = {store::record_type::meta, 0, std::string_view("\0\0\0\0{\"id\":1}", 12)};
  EXPECT_FALSE(store::decode_meta(r));
  r = {store::record_type::meta, 0, std::string_view("\0\0\0\0not json", 12)};
  EXPECT_FALSE(store::decode_meta(r));
  r = {store::record_type::meta, 0, "abc"};  // shorter than its stream key
  EXPECT_FALSE(store::decode_meta(r));
  r = {store::record_type::erased, 0, ""};
  std::string_view id;
  EXPECT_FALSE(store::decode_erased(r, id));
  // A delta whose text range lies outside the event's bytes.
  std::string buf;
  store::append_event_record(buf, {1, 1, 1, 100, 0, 5, stream_state::open}, "id: 1\ndata: {}\n\n");
  std::size_t pos = 0;
  ASSERT_EQ(store::next_record(buf, pos, r), store::parse_status::ok);
  EXPECT_FALSE(store::decode_event(r, ix, sse));
}

TEST(RecordFormat, EventsRecordSplitsIntoItsEventsExactly) {
  const std::string e1 = "id: 4\ndata: {\"a\":1}\n\n";
  const std::string e2 = "id: 5\nevent: result\ndata: multi\ndata: \ndata: line\n\n";
  const std::string e3 = "id: 6\ndata: {}\n\n";
  std::string buf;
  store::append_events_record(buf, {4, 99, 3, stream_state::finished, 12}, e1 + e2 + e3);
  EXPECT_EQ(buf.size(), store::events_record_overhead + e1.size() + e2.size() + e3.size());
  std::size_t pos = 0;
  store::parsed_record r;
  ASSERT_EQ(store::next_record(buf, pos, r), store::parse_status::ok);
  EXPECT_EQ(r.type, store::record_type::events);
  store::record_events ev;
  ASSERT_TRUE(ev.open(r));
  EXPECT_EQ(ev.first_seq(), 4u);
  EXPECT_EQ(ev.last_seq(), 6u);
  EXPECT_EQ(ev.count(), 3u);
  EXPECT_EQ(ev.stream(), 12u);
  EXPECT_EQ(ev.end_state(), stream_state::finished);
  EXPECT_EQ(ev.sse_bytes(), e1.size() + e2.size() + e3.size());
  store::event_index ix;
  std::string_view sse;
  std::vector<std::tuple<std::uint64_t, std::string, stream_state, std::int64_t>> got;
  while (ev.next(ix, sse)) {
    EXPECT_EQ(ix.delta_key, 0u);
    EXPECT_EQ(ix.stream, 12u);
    got.emplace_back(ix.seq, std::string(sse), ix.end_state, ix.publish_us);
  }
  const std::vector<std::tuple<std::uint64_t, std::string, stream_state, std::int64_t>> want{
      {4, e1, stream_state::open, 99},
      {5, e2, stream_state::open, 99},
      {6, e3, stream_state::finished, 99}};
  EXPECT_EQ(got, want);
  // A single event record reads through the same interface.
  buf.clear();
  store::append_event_record(buf, {8, 5, 0, 0, 0, 0, stream_state::open, 3}, e3);
  pos = 0;
  ASSERT_EQ(store::next_record(buf, pos, r), store::parse_status::ok);
  ASSERT_TRUE(ev.open(r));
  ASSERT_TRUE(ev.next(ix, sse));
  EXPECT_EQ(ix.seq, 8u);
  EXPECT_EQ(sse, e3);
  EXPECT_FALSE(ev.next(ix, sse));
}

// An events record whose bytes are not exactly its count of events is
// corrupt (recovery truncates there; a history read stops): never split
// into different events than were written.
TEST(RecordFormat, EventsRecordThatIsNotExactlyItsEventsIsCorrupt) {
  const std::string two = "id: 1\ndata: {}\n\nid: 2\ndata: {}\n\n";
  auto decodes = [](const store::events_index& ix, std::string_view sse, std::uint8_t flip = 0) {
    std::string buf;
    store::append_events_record(buf, ix, sse);
    std::size_t pos = 0;
    store::parsed_record r;
    if (store::next_record(buf, pos, r) != store::parse_status::ok) return false;
    r.flags = static_cast<std::uint8_t>(r.flags ^ flip);
    store::events_index got;
    std::string_view s;
    store::record_events ev;
    const bool a = store::decode_events(r, got, s);
    EXPECT_EQ(a, ev.open(r));
    return a;
  };
  EXPECT_TRUE(decodes({1, 5, 2, stream_state::open, 1}, two));
  EXPECT_FALSE(decodes({1, 5, 1, stream_state::open, 1}, two));  // more events than its count
  EXPECT_FALSE(decodes({1, 5, 3, stream_state::open, 1}, two));  // fewer
  EXPECT_FALSE(decodes({1, 5, 0, stream_state::open, 1}, two));
  EXPECT_FALSE(decodes({0, 5, 2, stream_state::open, 1}, two));                  // sequence 0
  EXPECT_FALSE(decodes({~std::uint64_t{0}, 5, 2, stream_state::open, 1}, two));  // wraps
  EXPECT_FALSE(decodes({1, 5, 2, stream_state::open, 1}, two + "id: 3"));        // no end
  EXPECT_FALSE(decodes({1, 5, 2, stream_state::open, 1}, "id: 1\n\n\nid: 2\n\n"));
  EXPECT_FALSE(decodes({1, 5, 2, stream_state::open, 1}, two, 1));  // a delta flag
  EXPECT_FALSE(decodes({1, 5, 2, stream_state::open, 1}, two, 6));  // end state 3
  EXPECT_FALSE(decodes({1, 5, 2, stream_state::open, 1}, two, 8));  // unknown flag
  store::parsed_record r{store::record_type::events, 0, std::string_view("\0\0\0\0", 4)};
  store::events_index ix;
  std::string_view sse;
  EXPECT_FALSE(store::decode_events(r, ix, sse));
}

// splits_into_events counts 16 bytes at a time: against a plain split, on
// every short mix of '\n' and other bytes, at every alignment.
TEST(RecordFormat, EventSplitAgreesWithAPlainSplitEverywhere) {
  auto plain = [](std::string_view s) -> long {  // events, or -1 when not events
    if (s.find("\n\n\n") != std::string_view::npos || s.size() < 2 ||
        s.substr(s.size() - 2) != "\n\n")
      return -1;
    long n = 0;
    for (std::size_t at = 0; (at = s.find("\n\n", at)) != std::string_view::npos; at += 2) ++n;
    return n;
  };
  std::uint64_t x = 12345;
  for (int round = 0; round < 20000; ++round) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    const std::size_t len = (x >> 33) % 70;
    std::string s;
    for (std::size_t i = 0; i < len; ++i) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      s.push_back((x >> 40) % 5 < 2 ? '\n' : 'a');
    }
    if (round % 2 == 0 && plain(s) < 0) s += "\n\n";  // half of them end at a blank line
    const long want = plain(s);
    for (long c = std::max(0L, want - 1); c <= want + 1; ++c)
      ASSERT_EQ(store::splits_into_events(s, static_cast<std::uint32_t>(c)), c == want && want > 0)
          << "count " << c << " of '" << s << "'";
  }
}

TEST(DurableLog, RestartRestoresIdsSequencesStateOwnerAndBytes) {
  temp_dir d;
  std::string finished_bytes, open_bytes, cancelled_bytes;
  std::int64_t created = 0;
  {
    node n(d.path);
    auto a = *n.registry.create("run.a", "alice");
    a->publish("message", "{\"text\":\"one\"}");
    auto delta = core::make_delta_event("delta", "m1", "text", boost::json::object{{"text", "he"}});
    a->publish(*delta);
    auto delta2 =
        core::make_delta_event("delta", "m1", "text", boost::json::object{{"text", "llo"}});
    a->publish(*delta2);
    a->publish("result", "{\"answer\":\"multi\nline\"}", true);
    finished_bytes = read_all(a);
    created = a->status().created_us;
    auto b = *n.registry.get_or_create("ext", "bob");
    b->publish("message", "{\"n\":1}");
    b->publish("message", "{\"n\":2}");
    open_bytes = read_all(b);
    auto c = *n.registry.create("c");
    c->publish("message", "{}");
    c->cancel("stop");
    cancelled_bytes = read_all(c);
  }
  node n(d.path);
  EXPECT_EQ(n.recovered.streams, 3u);
  EXPECT_EQ(n.recovered.torn_tails, 0u);
  auto a = n.registry.find("run.a");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->owner(), "alice");
  auto st = a->status();
  EXPECT_EQ(st.state, stream_state::finished);
  EXPECT_EQ(st.first_sequence, 1u);
  EXPECT_EQ(st.last_sequence, 4u);
  EXPECT_EQ(st.created_us, created);
  EXPECT_NE(st.finished_us, 0);
  EXPECT_EQ(read_all(a), finished_bytes);
  auto b = n.registry.find("ext");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->owner(), "bob");
  EXPECT_EQ(b->state(), stream_state::open);
  EXPECT_EQ(read_all(b), open_bytes);
  // The external producer continues at the next sequence.
  EXPECT_EQ(b->publish("message", "{\"n\":3}").first_sequence, 3u);
  auto c = n.registry.find("c");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->state(), stream_state::cancelled);
  EXPECT_EQ(read_all(c), cancelled_bytes);
  EXPECT_EQ(n.registry.owned_by("alice"), 1u);
}

TEST(DurableLog, DeltasStillCoalesceAfterARestart) {
  temp_dir d;
  {
    node n(d.path);
    auto a = *n.registry.create("d");
    for (const char* t : {"a", "b", "c"})
      a->publish(*core::make_delta_event("delta", "m", "text", boost::json::object{{"text", t}}));
  }
  node n(d.path);
  auto a = n.registry.find("d");
  null_waiter w;
  core::subscription sub(a, 1, w, true);
  core::read_batch b;
  ASSERT_EQ(sub.read(b, 1 << 20), core::read_status::data);
  std::string out;
  for (auto& s : b.spans) out.append(s.data, s.size);
  EXPECT_EQ(out, "id: 3\nevent: delta\ndata: {\"coalesced\":[1,3],\"text\":\"abc\"}\n\n");
}

TEST(DurableLog, LocalProducerStreamsEndInterruptedExternalOnesStayOpen) {
  temp_dir d;
  {
    node n(d.path);
    auto run = *n.registry.create("run");
    run->set_local_producer();
    run->publish("message", "{\"step\":1}");
    auto quiet = *n.registry.create("run.quiet");  // a run that had not published yet
    quiet->set_local_producer();
    auto ext = *n.registry.create("ext");
    ext->publish("message", "{}");
  }
  {
    node n(d.path);
    EXPECT_EQ(n.recovered.interrupted, 2u);
    auto run = n.registry.find("run");
    ASSERT_TRUE(run);
    EXPECT_EQ(run->state(), stream_state::finished);
    const std::string all = read_all(run);
    EXPECT_NE(all.find("id: 2\nevent: error\ndata: {\"code\":\"interrupted\""), std::string::npos)
        << all;
    auto quiet = n.registry.find("run.quiet");
    ASSERT_TRUE(quiet);
    EXPECT_EQ(quiet->status().last_sequence, 1u);
    EXPECT_EQ(quiet->state(), stream_state::finished);
    EXPECT_EQ(n.registry.find("ext")->state(), stream_state::open);
  }
  // The interrupted event is itself durable: a second restart changes nothing.
  node n(d.path);
  EXPECT_EQ(n.recovered.interrupted, 0u);
  EXPECT_EQ(n.registry.find("run")->status().last_sequence, 2u);
}

TEST(DurableLog, TornTailIsTruncatedAndSequencesContinue) {
  temp_dir d;
  std::string before;
  {
    node n(d.path);
    auto s = *n.registry.create("t");
    for (int i = 1; i <= 5; ++i) s->publish("message", "{\"i\":" + std::to_string(i) + "}");
    before = read_all(s);
  }
  // A crash mid-write: half of a sixth record.
  std::string rec;
  store::append_event_record(rec, {6, 1, 0, 0, 0, 0, stream_state::open}, "id: 6\ndata: {}\n\n");
  const auto seg = segments(d.path).back();
  const auto size = fs::file_size(seg);
  {
    std::ofstream f(seg, std::ios::binary | std::ios::app);
    f.write(rec.data(), static_cast<std::streamsize>(rec.size() / 2));
  }
  {
    node n(d.path);
    EXPECT_EQ(n.recovered.torn_tails, 1u);
    EXPECT_EQ(fs::file_size(seg), size);
    auto s = n.registry.find("t");
    EXPECT_EQ(read_all(s), before);
    EXPECT_EQ(s->publish("message", "{\"i\":6}").first_sequence, 6u);
  }
  node n(d.path);
  EXPECT_EQ(n.recovered.torn_tails, 0u);
  EXPECT_EQ(n.registry.find("t")->status().last_sequence, 6u);
}

// A corrupt record in an older segment file: that file is read up to it,
// and a stream that lost a stretch there continues after it (its history
// starts after the gap; never a gap inside it, never a corrupt event).
TEST(DurableLog, CorruptionInAnOlderSegmentStartsTheHistoryAfterTheGap) {
  temp_dir d;
  store::durable_config dc;
  dc.segment_bytes = 256;  // several segments
  std::string prefix;
  {
    node n(d.path, {}, dc);
    auto s = *n.registry.create("m");
    for (int i = 1; i <= 40; ++i) {
      s->publish("message", "{\"i\":" + std::to_string(i) + "}");
      if (i % 4 == 0) n.store->flush();  // rounds: files roll between them
    }
  }
  auto segs = segments(d.path);
  ASSERT_GE(segs.size(), 3u);
  // Flip a byte in the middle of the second segment's payload.
  std::string bytes;
  {
    std::ifstream f(segs[1], std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(f), {});
  }
  const std::size_t at = bytes.size() / 2;
  bytes[at] = static_cast<char>(bytes[at] ^ 0x20);
  {
    std::ofstream f(segs[1], std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  const std::size_t files = segs.size();
  node n(d.path, {}, dc);
  EXPECT_EQ(n.recovered.torn_tails, 1u);
  EXPECT_EQ(n.recovered.gaps, 1u);
  auto s = n.registry.find("m");
  ASSERT_TRUE(s);
  const auto st = s->status();
  EXPECT_GT(st.first_sequence, 1u);
  EXPECT_EQ(st.last_sequence, 40u);
  // No gap, no corrupt event: exactly events first..40, as published.
  std::string expect;
  for (std::uint64_t i = st.first_sequence; i <= 40; ++i)
    expect += event_text(i, "{\"i\":" + std::to_string(i) + "}");
  EXPECT_EQ(read_all(s, st.first_sequence), expect);
  // The later files are kept; the files before the gap are no longer needed
  // (nothing of the stream before its new horizon is served) and go.
  n.store->flush();
  for (std::size_t i = 2; i < files; ++i) EXPECT_TRUE(fs::exists(segs[i])) << i;
  EXPECT_FALSE(fs::exists(segs[0]));
  EXPECT_FALSE(fs::exists(segs[1]));
  EXPECT_EQ(s->publish("message", "{}").first_sequence, 41u);
}

TEST(DurableLog, FinishedTtlKeepsCountingAcrossARestart) {
  temp_dir d;
  {
    node n(d.path);
    auto s = *n.registry.create("short");
    s->keep_finished_for(1);  // 1 µs: expired by the time we restart
    s->publish("message", "{}", true);
    auto l = *n.registry.create("long");
    l->publish("message", "{}", true);
  }
  {
    node n(d.path);
    EXPECT_EQ(n.recovered.expired, 1u);
    EXPECT_FALSE(n.registry.find("short"));
    EXPECT_TRUE(n.registry.find("long"));
  }
  // Recovery wrote its erased record: it is dead, not expired again.
  node n(d.path);
  EXPECT_EQ(n.recovered.expired, 0u);
  EXPECT_EQ(n.recovered.streams, 1u);
  EXPECT_FALSE(n.registry.find("short"));
}

TEST(DurableLog, RegistryDropDeletesItsRecords) {
  temp_dir d;
  store::durable_config dc;
  dc.segment_bytes = 1;  // every stream's records in a file of their own
  {
    node n(d.path, {}, dc);
    auto keep = *n.registry.create("keep");
    keep->publish("message", "{}");
    auto s = *n.registry.create("gone");
    s->keep_finished_for(1);
    s->publish("message", "{}", true);
    n.store->flush();
    {
      const auto ids = meta_ids(d.path);
      EXPECT_EQ(std::count(ids.begin(), ids.end(), "gone"), 1);
    }
    s.reset();
    EXPECT_EQ(n.registry.sweep(core::realtime_us() + 10), 1u);
    n.store->flush();
    // Its segment file is deleted (an erased record in the active one remains).
    const auto ids = meta_ids(d.path);
    EXPECT_EQ(std::count(ids.begin(), ids.end(), "gone"), 0);
    EXPECT_EQ(std::count(ids.begin(), ids.end(), "keep"), 1);
    EXPECT_EQ(n.store->stats().disk_bytes, log_bytes(d.path));
  }
  node n(d.path, {}, dc);
  EXPECT_FALSE(n.registry.find("gone"));
  EXPECT_EQ(n.registry.find("keep")->status().last_sequence, 1u);
}

TEST(DurableLog, RetentionDeletesWholeSegmentsYetKeepsWhatMemoryKeeps) {
  temp_dir d;
  core::registry_config rc;
  rc.retention.max_events = 10;
  store::durable_config dc;
  dc.segment_bytes = 200;
  dc.disk_retention = {5, 1u << 20};  // less than memory's: memory's wins
  {
    node n(d.path, rc, dc);
    auto s = *n.registry.create("r");
    for (int i = 1; i <= 100; ++i) {
      s->publish("message", "{\"i\":" + std::to_string(i) + "}");
      n.store->flush();
    }
  }
  // Far fewer than 100 events' worth of segments are left (each file holds
  // the stream's meta record and an event or two)...
  EXPECT_LT(segments(d.path).size(), 20u);
  EXPECT_LT(log_bytes(d.path), 5000u);
  // ...and the restart has the same window memory had: events 91..100 in
  // memory, and what the files still hold before them readable from disk.
  node n(d.path, rc, dc);
  auto st = n.registry.find("r")->status();
  EXPECT_EQ(st.retained_events, 10u);
  EXPECT_EQ(st.last_sequence, 100u);
  EXPECT_LE(st.first_sequence, 91u);
  EXPECT_GT(st.first_sequence, 70u);
}

// The oldest segment files go first while a stream goes on publishing: it
// loses its oldest history (first_available moves up) and continues; a
// finished stream whose records were in them disappears from disk.
TEST(DurableLog, DiskBudgetDeletesTheOldestSegmentsWhileAStreamContinues) {
  temp_dir d;
  core::registry_config rc;
  rc.retention.max_events = 20;
  store::durable_config dc;
  dc.segment_bytes = 400;
  dc.disk_budget_bytes = 3000;
  std::string expected;
  {
    node n(d.path, rc, dc);
    auto old = *n.registry.create("old");
    old->publish("message", "{}", true);
    n.store->flush();
    auto s = *n.registry.create("big");
    for (int i = 1; i <= 200; ++i) {
      const std::string data = "{\"i\":" + std::to_string(i) + "}";
      s->publish("message", data);
      expected += event_text(i, data);
      if (i % 10 == 0) n.store->flush();
    }
    n.store->flush();
    EXPECT_LE(n.store->stats().disk_bytes, 3000u);
    EXPECT_EQ(log_bytes(d.path), n.store->stats().disk_bytes);
    EXPECT_FALSE(fs::exists(d.path / "log" / "00000000000000000001.seg"));
    // Its history starts later now, exactly, up to the live end.
    const std::uint64_t first = s->journal()->first_stored_seq();
    EXPECT_GT(first, 1u);
    EXPECT_LE(first, 181u);
    EXPECT_EQ(read_all(s, first),
              expected.substr(expected.find("id: " + std::to_string(first) + "\n")));
    EXPECT_TRUE(n.registry.find("old"));  // memory still serves it
  }
  node n(d.path, rc, dc);
  EXPECT_FALSE(n.registry.find("old"));
  auto s = n.registry.find("big");
  ASSERT_TRUE(s);
  const auto st = s->status();
  EXPECT_GT(st.first_sequence, 1u);
  EXPECT_EQ(st.last_sequence, 200u);
  EXPECT_EQ(read_all(s, st.first_sequence),
            expected.substr(expected.find("id: " + std::to_string(st.first_sequence) + "\n")));
  EXPECT_EQ(s->publish("message", "{}").first_sequence, 201u);
}

TEST(DurableLog, DiskBudgetDropsFinishedStreamsOldestFirst) {
  temp_dir d;
  store::durable_config dc;
  dc.disk_budget_bytes = 2000;
  dc.segment_bytes = 256;
  {
    node n(d.path, {}, dc);
    for (int i = 0; i < 30; ++i) {
      auto s = *n.registry.create("f" + std::to_string(100 + i));
      s->publish("message", "{\"pad\":\"" + std::string(100, 'x') + "\"}", true);
      n.store->flush();
    }
    EXPECT_LE(n.store->stats().disk_bytes, 2000u);
    EXPECT_TRUE(n.registry.find("f100"));  // memory still serves it
  }
  node n(d.path, {}, dc);
  EXPECT_FALSE(n.registry.find("f100"));  // the oldest finished: dropped from disk
  EXPECT_TRUE(n.registry.find("f129"));   // the newest stays
}

TEST(DurableLog, FsyncAlwaysCompletesTicketsOnlyOnceOnDisk) {
  temp_dir d;
  store::durable_config dc;
  dc.fsync = store::fsync_mode::always;
  node n(d.path, {}, dc);
  ASSERT_TRUE(n.store->acks_wait_for_disk());
  auto s = *n.registry.create("a");
  std::mutex m;
  std::condition_variable cv;
  int done = 0, ok = 0;
  for (int i = 1; i <= 50; ++i) {
    auto out = s->publish("message", "{\"i\":" + std::to_string(i) + "}");
    n.store->when_durable(*s, out.last_sequence, [&](bool good) {
      std::lock_guard l(m);
      ++done;
      ok += good ? 1 : 0;
      cv.notify_all();
    });
  }
  std::unique_lock l(m);
  ASSERT_TRUE(cv.wait_for(l, std::chrono::seconds(10), [&] { return done == 50; }));
  EXPECT_EQ(ok, 50);
  // Every one of them is in the file now (read by a fresh parser).
  std::size_t events = 0;
  for (const auto& rec : event_records(segments(d.path).back())) events += rec.second;
  EXPECT_EQ(events, 50u);
  EXPECT_GT(n.store->stats().syncs, 0u);
}

TEST(DurableLog, SecondProcessOnTheSameFolderIsRefused) {
  temp_dir d;
  store::durable_config dc;
  dc.dir = d.path;
  auto a = std::make_shared<store::durable_log>(dc);
  EXPECT_THROW(store::durable_log b(dc), std::runtime_error);
}

TEST(DurableLog, ConcurrentPublishersAllComeBack) {
  temp_dir d;
  store::durable_config dc;
  dc.fsync = store::fsync_mode::always;
  dc.segment_bytes = 4096;
  constexpr int threads = 4, per_thread = 500;
  {
    node n(d.path, {}, dc);
    std::vector<std::thread> ts;
    std::atomic<int> acked{0};
    for (int t = 0; t < threads; ++t)
      ts.emplace_back([&, t] {
        auto s = *n.registry.get_or_create("c" + std::to_string(t % 2));
        for (int i = 0; i < per_thread; ++i) {
          auto out = s->publish("message", "{\"t\":" + std::to_string(t) + "}");
          std::mutex m;
          std::condition_variable cv;
          bool done = false;
          n.store->when_durable(*s, out.last_sequence, [&](bool ok) {
            std::lock_guard l(m);
            done = true;
            if (ok) acked.fetch_add(1);
            cv.notify_all();
          });
          std::unique_lock l(m);
          cv.wait(l, [&] { return done; });
        }
      });
    for (auto& t : ts) t.join();
    EXPECT_EQ(acked.load(), threads * per_thread);
  }
  node n(d.path, {}, dc);
  EXPECT_EQ(n.registry.find("c0")->status().last_sequence, 2u * per_thread);
  EXPECT_EQ(n.registry.find("c1")->status().last_sequence, 2u * per_thread);
}

// History behind memory's window comes from the files, from the writer's
// unwritten batch, and from memory, with no gap between them: here the writer
// has not run yet (a 60 s interval), then has written part of the stream.
TEST(DurableLog, HistoryReadsUnwrittenAndWrittenEventsBehindMemoryExactly) {
  temp_dir d;
  core::registry_config rc;
  rc.retention.max_events = 10;
  store::durable_config dc;
  dc.segment_bytes = 1024;
  node n(d.path, rc, dc);
  auto s = *n.registry.create("u");
  std::string expected;
  auto publish = [&](int from, int to) {
    for (int i = from; i <= to; ++i) {
      const std::string data = "{\"i\":" + std::to_string(i) + "}";
      s->publish("message", data);
      expected += "id: " + std::to_string(i) + "\ndata: " + data + "\n\n";
    }
  };
  publish(1, 100);
  EXPECT_EQ(s->status().retained_events, 10u);
  EXPECT_EQ(s->status().first_sequence, 1u);
  EXPECT_EQ(read_all(s, 1), expected);  // nothing written yet: from the journal
  EXPECT_EQ(n.store->stats().records_written, 0u);
  n.store->flush();
  publish(101, 200);
  EXPECT_EQ(read_all(s, 1), expected);  // files, then unwritten, then memory
  const std::size_t at_50 = expected.find("id: 50\n");
  EXPECT_EQ(read_all(s, 50), expected.substr(at_50));
  n.store->flush();
  EXPECT_GT(segments(d.path).size(), 1u);  // (each round's events are one record)
  EXPECT_EQ(read_all(s, 1), expected);
}

// A publish of many events is one events record (a few bytes of index for
// all of them); its events are read back one by one, exactly, from the
// journal before they are written, from the files behind memory (also a few
// bytes a read, so reads stop and resume inside a record), and after a
// restart.
TEST(DurableLog, APublishOfManyEventsIsOneRecordReadBackEventByEvent) {
  temp_dir d;
  core::registry_config rc;
  rc.retention.max_events = 10;
  const store::durable_config dc;
  std::string expected;
  {
    node n(d.path, rc, dc);
    auto s = *n.registry.create("many");
    auto publish = [&](int from, int to, bool final) {
      std::vector<std::string> data;
      std::vector<core::publish_item> items;
      for (int i = from; i <= to; ++i)
        data.push_back(i % 7 == 0 ? "line " + std::to_string(i) + "\nand more"
                                  : "{\"i\":" + std::to_string(i) + "}");
      for (int i = from; i <= to; ++i) {
        const auto& v = data[static_cast<std::size_t>(i - from)];
        items.push_back({i % 7 == 0 ? "note" : "message", v, final && i == to});
        expected += "id: " + std::to_string(i) + "\n" + (i % 7 == 0 ? "event: note\n" : "") +
                    (i % 7 == 0 ? "data: line " + std::to_string(i) + "\ndata: and more\n"
                                : "data: " + v + "\n") +
                    "\n";
      }
      EXPECT_EQ(s->publish_all(items).first_sequence, static_cast<std::uint64_t>(from));
    };
    publish(1, 60, false);
    EXPECT_EQ(n.store->stats().records_written, 0u);
    EXPECT_EQ(read_all(s, 1), expected);  // from the journal, split into its events
    EXPECT_EQ(read_all(s, 23), expected.substr(expected.find("id: 23\n")));
    n.store->flush();
    publish(61, 70, true);
    n.store->flush();
    // Two events records (the second ends the stream) and one meta record.
    const auto st = n.store->stats();
    EXPECT_EQ(st.events_written, 70u);
    EXPECT_EQ(st.records_written, 3u);
    EXPECT_EQ(event_records(segments(d.path).back()),
              (std::vector<std::pair<std::uint64_t, std::uint32_t>>{{1, 60}, {61, 10}}));
    EXPECT_EQ(s->status().retained_events, 10u);  // memory keeps 10
    EXPECT_EQ(read_all(s, 1), expected);          // from the files
    EXPECT_EQ(read_all(s, 1, 100), expected);     // a few events a read
    EXPECT_EQ(read_all(s, 37, 100), expected.substr(expected.find("id: 37\n")));
  }
  node n(d.path, rc, dc);
  auto s = n.registry.find("many");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->status().state, stream_state::finished);
  EXPECT_EQ(s->status().last_sequence, 70u);
  EXPECT_EQ(read_all(s, 1), expected);
  EXPECT_EQ(read_all(s, 2, 100), expected.substr(expected.find("id: 2\n")));
}

// Events a stream publishes one at a time between two writer rounds (a paced
// run's tokens) are one events record too, read back exactly; the final
// event, published at a later time, is a record of its own (its publish time
// is the stream's finish time).
TEST(DurableLog, EventsPublishedOneByOneWithinARoundAreOneRecord) {
  temp_dir d;
  core::registry_config rc;
  rc.retention.max_events = 5;
  const store::durable_config dc;
  std::string expected;
  {
    node n(d.path, rc, dc);
    auto s = *n.registry.create("paced");
    auto publish = [&](int i, bool final) {
      const std::string data = "{\"i\":" + std::to_string(i) + "}";
      ASSERT_EQ(s->publish("message", data, final).first_sequence, static_cast<std::uint64_t>(i));
      expected += event_text(static_cast<std::uint64_t>(i), data);
    };
    for (int i = 1; i <= 20; ++i) publish(i, false);
    n.store->flush();
    for (int i = 21; i <= 30; ++i) publish(i, false);
    // The clock moves past the last publish (a final event published in the
    // same microsecond would join the record).
    const std::int64_t t = core::realtime_us();
    while (core::realtime_us() == t) {
    }
    publish(31, true);
    EXPECT_EQ(read_all(s, 1), expected);  // files, then the journal, then memory
    n.store->flush();
    const auto st = n.store->stats();
    EXPECT_EQ(st.events_written, 31u);
    EXPECT_EQ(st.records_written, 4u);  // meta, 1-20, 21-30, 31
    EXPECT_EQ(event_records(segments(d.path).back()),
              (std::vector<std::pair<std::uint64_t, std::uint32_t>>{{1, 20}, {21, 10}, {31, 1}}));
    EXPECT_EQ(read_all(s, 1), expected);
    EXPECT_EQ(read_all(s, 7, 100), expected.substr(expected.find("id: 7\n")));
  }
  node n(d.path, rc, dc);
  auto s = n.registry.find("paced");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->status().state, stream_state::finished);
  EXPECT_EQ(s->status().last_sequence, 31u);
  EXPECT_EQ(read_all(s, 1), expected);
}

// Pages of a segment file resident in the page cache.
std::size_t resident_pages(const fs::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ~std::size_t{0};
  const auto size = static_cast<std::size_t>(fs::file_size(file));
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) return ~std::size_t{0};
  const long page = ::sysconf(_SC_PAGESIZE);
  std::vector<unsigned char> v((size + static_cast<std::size_t>(page) - 1) /
                               static_cast<std::size_t>(page));
  std::size_t n = ~std::size_t{0};
  if (::mincore(p, size, v.data()) == 0)
    n = static_cast<std::size_t>(
        std::count_if(v.begin(), v.end(), [](unsigned char c) { return (c & 1) != 0; }));
  ::munmap(p, size);
  return n;
}

// Memory keeps each stream's newest events: what the writer has synced
// leaves the page cache (but the partial last page of the active file), so
// an event is not held twice, and readers behind memory read it back from
// the file exactly.
TEST(DurableLog, WhatIsSyncedLeavesThePageCacheAndIsStillReadExactly) {
  temp_dir d;
  struct statfs fs_info {};
  ASSERT_EQ(::statfs(d.path.c_str(), &fs_info), 0);
  if (fs_info.f_type == TMPFS_MAGIC) GTEST_SKIP() << "tmpfs keeps every page in memory";
  core::registry_config rc;
  rc.retention.max_events = 10;
  store::durable_config dc;
  dc.segment_bytes = 64u << 10;
  node n(d.path, rc, dc);
  auto s = *n.registry.create("cold");
  std::string expected;
  for (int i = 1; i <= 600; ++i) {
    const std::string data = "{\"i\":" + std::to_string(i) + ",\"pad\":\"" +
                             std::string(200, static_cast<char>('a' + i % 26)) + "\"}";
    s->publish("message", data);
    expected += event_text(static_cast<std::uint64_t>(i), data);
    if (i % 100 == 0) n.store->flush();
  }
  n.store->flush();
  const auto files = segments(d.path);
  ASSERT_GT(files.size(), 1u);
  for (std::size_t i = 0; i < files.size(); ++i)
    EXPECT_LE(resident_pages(files[i]), i + 1 == files.size() ? 1u : 0u) << files[i];
  EXPECT_EQ(read_all(s, 1), expected);
  EXPECT_EQ(read_all(s, 333, 1000), expected.substr(expected.find("id: 333\n")));
}

// One stream across many segment files, the oldest deleted by retention:
// every file it writes to starts with its meta record, so its owner,
// creation time and epoch survive the deletion of the file it began in.
TEST(DurableLog, StreamSpanningSegmentsKeepsItsMetaWhenTheOldestGo) {
  temp_dir d;
  core::registry_config rc;
  rc.retention.max_events = 10;
  store::durable_config dc;
  dc.segment_bytes = 600;
  dc.disk_retention = {30, 1u << 20};
  std::string expected;
  std::int64_t created = 0;
  {
    node n(d.path, rc, dc);
    auto s = *n.registry.create("long", "alice");
    ASSERT_TRUE(s->set_epoch("e7"));
    created = s->status().created_us;
    for (int i = 1; i <= 200; ++i) {
      const std::string data = "{\"i\":" + std::to_string(i) + "}";
      s->publish("message", data);
      expected += "id: " + std::to_string(i) + "-e7\ndata: " + data + "\n\n";
      if (i % 5 == 0) n.store->flush();
    }
  }
  const auto segs = segments(d.path);
  ASSERT_GE(segs.size(), 3u);
  EXPECT_FALSE(fs::exists(d.path / "log" / "00000000000000000001.seg"));
  EXPECT_LT(segs.size(), 12u);  // about 30 events' worth of files are kept
  // Every file left names the stream.
  EXPECT_EQ(meta_ids(d.path).size(), segs.size());
  node n(d.path, rc, dc);
  auto s = n.registry.find("long");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->owner(), "alice");
  EXPECT_EQ(s->epoch(), "e7");
  const auto st = s->status();
  EXPECT_EQ(st.created_us, created);
  EXPECT_EQ(st.last_sequence, 200u);
  EXPECT_GT(st.first_sequence, 150u);
  EXPECT_LE(st.first_sequence, 171u);
  EXPECT_EQ(read_all(s, st.first_sequence),
            expected.substr(expected.find("id: " + std::to_string(st.first_sequence) + "-")));
  EXPECT_EQ(s->publish("message", "{}").first_sequence, 201u);
}

// Many streams interleaved in the same segment files, with deltas, finished,
// cancelled and open ones, and a memory window of 5 events: every stream
// reads back exactly (from disk before the restart, and after it), and each
// writer round is one write(2) whatever the number of streams.
TEST(DurableLog, ManyStreamsInterleavedInOneSegmentRoundTripExactly) {
  temp_dir d;
  core::registry_config rc;
  rc.retention.max_events = 5;
  store::durable_config dc;
  dc.segment_bytes = 16u << 10;
  constexpr int streams = 60, events = 40;
  std::vector<std::string> expected(streams);
  {
    node n(d.path, rc, dc);
    std::vector<std::shared_ptr<core::stream_log>> logs;
    for (int k = 0; k < streams; ++k) logs.push_back(*n.registry.create("i" + std::to_string(k)));
    n.store->flush();
    const auto before = n.store->stats();
    for (int i = 1; i <= events; ++i) {
      for (int k = 0; k < streams; ++k) {
        const std::string data =
            "{\"k\":" + std::to_string(k) + ",\"i\":" + std::to_string(i) + "}";
        const bool last = i == events && k % 3 == 0;
        logs[k]->publish("message", data, last);
        expected[k] += event_text(i, data);
      }
      if (i == 1) {
        n.store->flush();
        const auto after = n.store->stats();
        EXPECT_EQ(after.writes - before.writes, 1u);  // 60 streams, one write(2)
        EXPECT_LE(after.syncs - before.syncs, 2u);    // one fdatasync (+ the folder once)
      }
      if (i % 7 == 0) n.store->flush();
    }
    for (int k = 1; k < streams; k += 3) logs[k]->cancel("stop");
    n.store->flush();
    for (int k = 0; k < streams; ++k) {
      // Events 1..35 come from disk (history), the rest from memory.
      const std::string got = read_all(logs[k]);
      EXPECT_EQ(got.substr(0, expected[k].size()), expected[k]) << k;
      expected[k] = got;  // and the cancelled streams' final event
      EXPECT_EQ(logs[k]->status().retained_events, 5u) << k;
    }
    EXPECT_GT(segments(d.path).size(), 3u);
  }
  node n(d.path, rc, dc);
  EXPECT_EQ(n.recovered.streams, static_cast<std::size_t>(streams));
  EXPECT_EQ(n.recovered.gaps, 0u);
  for (int k = 0; k < streams; ++k) {
    auto s = n.registry.find("i" + std::to_string(k));
    ASSERT_TRUE(s) << k;
    EXPECT_EQ(read_all(s), expected[k]) << k;
    const auto st = s->state();
    EXPECT_EQ(st, k % 3 == 0   ? stream_state::finished
                  : k % 3 == 1 ? stream_state::cancelled
                               : stream_state::open)
        << k;
  }
}

// An erased stream must not come back from an older segment file that
// another stream still pins, and a stream created again with the same id
// starts afresh: the erased record stays while older files hold its records.
TEST(DurableLog, ErasedStreamStaysErasedWhileAnOlderFileIsPinnedAndItsIdCanBeReused) {
  temp_dir d;
  store::durable_config dc;
  dc.segment_bytes = 300;
  {
    node n(d.path, {}, dc);
    auto idle = *n.registry.create("idle");
    auto fin = *n.registry.create("fin");
    idle->publish("message", "{\"idle\":1}");  // stays open: pins the first file
    fin->publish("message", "{\"old\":1}");
    n.store->flush();
    for (int i = 2; i <= 20; ++i) {
      fin->publish("message", "{\"old\":" + std::to_string(i) + "}", i == 20);
      if (i % 3 == 0) n.store->flush();
    }
    fin->keep_finished_for(1);
    n.store->flush();
    fin.reset();
    EXPECT_EQ(n.registry.sweep(core::realtime_us() + 10), 1u);
    n.store->flush();
    EXPECT_TRUE(fs::exists(d.path / "log" / "00000000000000000001.seg"));
    EXPECT_FALSE(fs::exists(d.path / "log" / "00000000000000000002.seg"));  // fin's alone
    // The same id again: a new stream.
    auto again = *n.registry.create("fin", "bob");
    again->publish("message", "{\"new\":1}");
    again->publish("message", "{\"new\":2}");
  }
  for (int restart = 0; restart < 2; ++restart) {
    node n(d.path, {}, dc);
    EXPECT_EQ(n.recovered.streams, 2u);
    auto fin = n.registry.find("fin");
    ASSERT_TRUE(fin);
    EXPECT_EQ(fin->owner(), "bob");
    EXPECT_EQ(fin->state(), stream_state::open);
    EXPECT_EQ(read_all(fin), event_text(1, "{\"new\":1}") + event_text(2, "{\"new\":2}"));
    EXPECT_EQ(read_all(n.registry.find("idle")), event_text(1, "{\"idle\":1}"));
  }
}

// More segment files than the read fds kept open (256): a replay across all
// of them is exact, and the process holds at most that many more fds.
TEST(DurableLog, HistoryAcrossMoreSegmentFilesThanCachedFdsIsExact) {
  temp_dir d;
  core::registry_config rc;
  rc.retention.max_events = 5;
  store::durable_config dc;
  dc.segment_bytes = 1;  // a file per round's records
  auto count_fds = [] {
    std::size_t n = 0;
    for ([[maybe_unused]] auto& e : fs::directory_iterator("/proc/self/fd")) ++n;
    return n;
  };
  node n(d.path, rc, dc);
  auto s = *n.registry.create("many");
  std::string expected;
  for (int i = 1; i <= 400; ++i) {
    const std::string data = "{\"i\":" + std::to_string(i) + "}";
    s->publish("message", data);
    expected += event_text(i, data);
    n.store->flush();  // (a round's events are one record, in a file of their own)
  }
  EXPECT_GT(segments(d.path).size(), 300u);
  const std::size_t before = count_fds();
  EXPECT_EQ(read_all(s, 1), expected);
  EXPECT_EQ(read_all(s, 1), expected);
  EXPECT_LE(count_fds(), before + 256);
}
