// The Sluice stream model in Redis (see docs/scaling.md for the full picture):
//
//   {s:ID}:events  a Redis Stream, one entry per event, entry id "<seq>-0",
//                  fields t (event type) and d (data), and for a text
//                  delta m (its message id) and f (its field); trimmed with
//                  MAXLEN ~ max_events; expires with the meta hash
//   {s:ID}:meta    hash: state (open|finished|cancelled), epoch, owner,
//                  last_seq, created_at, finished_at (ms), node (the lease
//                  holder running the producer), cancel (a requested cancel's
//                  reason), batch/batch_first/batch_last (idempotent retry)
//   {s:ID}:wake    Pub/Sub channel: the last sequence, published by the
//                  publish script itself, for nodes that have readers
//   {r:REQ}:run    hash: stream, owner (the run registry, for attach)
//   sluice:leases  sorted set: stream id -> lease expiry (Redis server time, ms)
//   sluice:cancel:NODE  Pub/Sub channel: stream ids to cancel on NODE
//
// The braces are Redis Cluster hash tags: a stream's keys share one slot, so
// its scripts stay single-slot. Sequence assignment, the "already ended"
// check and the append are one Lua script (EVALSHA, EVAL on NOSCRIPT), so two
// nodes publishing into one stream never fork it. Time (leases, finished_at)
// is Redis's clock (TIME inside the scripts), never a node's.
//
// Thread-safety: as redis_client (one executor).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/system/result.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "redis/redis_client.hpp"

namespace sluice::redis {

struct store_options {
  std::string node_id;  // this node: lease holder name, cancel channel ([A-Za-z0-9._:-]{1,128})
  std::size_t max_events = 100'000;  // retention per stream (MAXLEN ~; 0: unbounded)
  std::chrono::milliseconds finished_ttl{std::chrono::minutes(10)};  // after the final event
  std::chrono::milliseconds idle_ttl{std::chrono::hours(24)};        // open, since the last publish
  std::chrono::milliseconds run_lease{std::chrono::seconds(15)};
  std::chrono::milliseconds run_record_ttl{std::chrono::hours(24)};
  std::size_t max_batch_events = 4096;     // events per publish batch
  std::size_t max_event_bytes = 1u << 20;  // data of one event
  std::size_t max_read_events = 10'000;    // per read_after
};

struct stream_meta {
  std::string state;  // open, finished, cancelled
  std::string epoch;
  std::string owner;
  std::uint64_t last_seq = 0;
  std::int64_t created_at_ms = 0;
  std::int64_t finished_at_ms = 0;  // 0 while open
  std::string node;                 // lease holder, empty if none
  bool producer = false;            // a run's producer writes it (create_stream producer)
  // Set once a lost producer's end began a new epoch: the epoch before and
  // the first sequence of the current one.
  std::string previous_epoch;
  std::uint64_t epoch_boundary = 0;
  // Filled by status() only: the events Redis retains (XLEN) and the first
  // one's sequence (0 when none).
  std::uint64_t retained_events = 0;
  std::uint64_t first_seq = 0;
  bool open() const { return state == "open"; }
};

struct created_stream {
  bool created = false;  // false: it existed (the fields are its own)
  std::string epoch;
  std::string state;
  std::string owner;
  std::uint64_t last_seq = 0;
};

// A delta's key (see core::delta_event): what Redis keeps besides type and
// data so that readers on every node coalesce a message's deltas.
struct delta_key {
  std::string message_id;  // an event name ([A-Za-z0-9._:-]{1,128})
  std::string field;       // not "coalesced"
};

struct stream_event {
  std::string type;
  std::string data;
  std::optional<delta_key> delta = {};  // a text delta (stored as fields m and f)
};

// Who writes a batch: an external publisher is refused (has_producer) in a
// stream a run's producer writes (created with producer = true); `any`
// (the default) is not checked.
// `lost`: end_lost_run's final event, which starts `new_epoch` (the meta
// keeps previous_epoch and epoch_boundary, the sequence it starts at).
enum class publish_writer { any, external, producer, lost };

struct publish_batch {
  std::string stream_id;
  std::string epoch;                 // expected epoch; empty: any (history_truncated if it differs)
  std::vector<stream_event> events;  // 1..max_batch_events, appended all or none
  std::string final_state;  // "" (stays open), "finished" or "cancelled": the last event ends it
  // Optional idempotency key: publishing a batch with the same id as the
  // stream's previous batch returns that batch's sequences (duplicate = true)
  // instead of appending again (a retry after an unknown outcome).
  std::string batch_id;
  // Non-zero: the batch must start at this sequence (else sequence_conflict:
  // a producer's write-behind never forks or skips).
  std::uint64_t expected_first_seq = 0;
  publish_writer writer = publish_writer::any;
  std::string new_epoch;  // with writer lost
};

struct published {
  std::uint64_t first_seq = 0;
  std::uint64_t last_seq = 0;
  bool duplicate = false;
};

struct stored_event {
  std::uint64_t seq = 0;
  std::string type;
  std::string data;
  // The entry's m and f fields (both present and strings): untrusted, as
  // everything read; core::delta_from_stored decides whether it is a delta.
  std::optional<delta_key> delta;
};

struct read_result {
  stream_meta meta;
  std::vector<stored_event> events;  // consecutive, starting at after + 1
  // The final event is included (the stream ended and events reaches it).
  bool final_included = false;
};

struct run_record {
  bool created = false;
  std::string stream_id;
  std::string owner;
};

struct lease_state {
  bool held = false;          // false: expired and claimed by another node (lease_lost)
  std::string cancel_reason;  // non-empty: a cancel was requested
};

struct cancel_outcome {
  std::string state;        // the stream's state before the request
  std::string node;         // the producer's node (lease holder), empty if none
  long long delivered = 0;  // subscribers of the node's channel that got it
};

class redis_stream_store {
 public:
  redis_stream_store(redis_client& client, store_options options);

  static std::string meta_key(std::string_view stream_id);
  static std::string events_key(std::string_view stream_id);
  static std::string wake_channel(std::string_view stream_id);
  static std::string run_key(std::string_view request_id);
  static std::string cancel_channel(std::string_view node_id);
  static std::string readers_key(std::string_view stream_id);
  static constexpr std::string_view leases_key = "sluice:leases";

  const store_options& options() const { return opts_; }
  // The publish script's SHA1 (for EVALSHA from other tools, e.g.
  // redis-benchmark in docs/scaling.md) and its source.
  static std::string publish_script_sha();
  static std::string_view publish_script_source();

  // Creates an open stream with a new random epoch, or returns the existing
  // one's fields (created = false). A new stream starts with no history
  // (a left-over events key is deleted).
  // `producer`: a run's producer writes the stream (external publishes are
  // refused with has_producer); such a stream starts without an epoch (its
  // producer's node encoded ids before Redis answered), until a lost
  // producer's end begins one.
  boost::asio::awaitable<boost::system::result<created_stream>> create_stream(
      std::string stream_id, std::string owner, bool producer = false);

  // Appends one batch atomically; errors: stream_not_found, stream_ended,
  // history_truncated (epoch), invalid_argument, store_unavailable.
  boost::asio::awaitable<boost::system::result<published>> publish(publish_batch batch);
  // Many batches (any streams) in one write and one round trip; one outcome
  // per batch, in order. Batches of one stream are applied in order.
  boost::asio::awaitable<boost::system::result<std::vector<boost::system::result<published>>>>
  publish_many(std::vector<publish_batch> batches);

  // Up to max_events events after `after` (0: from the start), with the
  // stream's meta, read atomically. Errors: stream_not_found,
  // history_truncated (the epoch differs from a non-empty expected_epoch, or
  // `after` is beyond the stream's last sequence), resume_window_exceeded
  // (events after `after` were trimmed; with `from_retained`, a trimmed
  // start is no error: the events start at the first retained one).
  boost::asio::awaitable<boost::system::result<read_result>> read_after(std::string stream_id,
                                                                        std::uint64_t after,
                                                                        std::string expected_epoch,
                                                                        std::size_t max_events,
                                                                        bool from_retained = false);
  boost::asio::awaitable<boost::system::result<stream_meta>> status(std::string stream_id);

  // Run registry: binds request_id to a stream once; a second registration
  // returns the first binding (created = false).
  boost::asio::awaitable<boost::system::result<run_record>> register_run(std::string request_id,
                                                                         std::string stream_id,
                                                                         std::string owner);
  boost::asio::awaitable<boost::system::result<std::optional<run_record>>> find_run(
      std::string request_id);

  // Leases: this node runs the producer of stream_id. Renew before run_lease
  // passes; a lease that expires is claimed by exactly one node's
  // claim_expired_leases, which should then end_lost_run.
  boost::asio::awaitable<boost::system::result<void>> acquire_lease(std::string stream_id);
  boost::asio::awaitable<boost::system::result<lease_state>> renew_lease(std::string stream_id);
  boost::asio::awaitable<boost::system::result<void>> release_lease(std::string stream_id);
  boost::asio::awaitable<boost::system::result<std::vector<std::string>>> claim_expired_leases(
      std::size_t limit);
  // Ends an open stream with a final `error` event {"code":"producer_lost"}.
  // stream_ended when it had ended anyway.
  // The final event starts a new epoch (previous_epoch, epoch_boundary =
  // its sequence): a reader holding an id of an event the dead node showed
  // but never wrote here gets history_truncated instead of a silent gap.
  boost::asio::awaitable<boost::system::result<published>> end_lost_run(std::string stream_id);

  // Records a cancel request on the stream and tells the producer's node on
  // its cancel channel (the producer then publishes its final event).
  boost::asio::awaitable<boost::system::result<cancel_outcome>> request_cancel(
      std::string stream_id, std::string reason);
  // The reason of a requested cancel ("" when none).
  boost::asio::awaitable<boost::system::result<std::string>> cancel_reason(std::string stream_id);

  // Reader presence across nodes: a node with readers of these streams
  // marks them read for `ttl` ({s:ID}:read); read_elsewhere tells, per
  // stream, whether some node did (so a run nobody reads anywhere is
  // cancelled, one read on another node is not).
  boost::asio::awaitable<boost::system::result<void>> mark_read(std::vector<std::string> stream_ids,
                                                                std::chrono::milliseconds ttl);
  boost::asio::awaitable<boost::system::result<std::vector<bool>>> read_elsewhere(
      std::vector<std::string> stream_ids);

 private:
  struct call {
    int script;  // index into the script table
    std::vector<std::string> keys_and_args;
    int num_keys;
  };
  boost::asio::awaitable<boost::system::result<std::vector<resp_value>>> run_scripts(
      std::vector<call> calls);
  boost::asio::awaitable<boost::system::result<resp_value>> run_script(call c);
  boost::system::error_code check_batch(const publish_batch& b) const;
  call publish_call(publish_batch& b) const;

  redis_client& client_;
  store_options opts_;
  std::uint64_t scripts_loaded_on_ = 0;  // client connection number that loaded them
};

// A new random epoch: 16 hex digits.
std::string new_epoch();

}  // namespace sluice::redis
