// A node of a Sluice cluster: many `sluice serve --redis` processes behind a
// load balancer act as one (docs/scaling.md).
//
// Redis is the truth. This node keeps, in its core::stream_registry:
// - a *mirror* (a core::stream_log) of every stream it has readers for,
//   filled from Redis: primed with the retained events when the first local
//   reader comes, then woken by the stream's `{s:ID}:wake` Pub/Sub message
//   and topped up with read_after, so each event crosses the network once
//   per node and is SSE-encoded once; local readers are cursors over it.
//   A mirror nobody reads for mirror_linger is dropped.
// - the logs of its *local producers* (agent runs, benchmark producers),
//   written in memory as on one node; their journal (forward_journal)
//   forwards every event write-behind to Redis, in order, each batch
//   checked by the publish script to start at the stream's next sequence,
//   while the node holds and renews the run's lease.
//
// External publishes go to Redis first (the script assigns sequences; two
// nodes never fork a stream); a stream a run's producer writes refuses
// them (409 stream_has_producer). Cancels reach the producer's node on its
// `sluice:cancel:NODE` channel; leases of dead nodes are claimed by every
// node's background task and their runs ended with `producer_lost`.
//
// It is the stream op layer's backend (streams::stream_backend) and the
// registry's store (core::stream_store, for the journals).
//
// Threading: one thread of its own (an io_context) runs the Redis client,
// the Pub/Sub subscriber and every piece of cluster state; the backend ops
// and the journals post to it; completions run on it.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "core/stream_registry.hpp"
#include "core/stream_store.hpp"
#include "redis/redis_client.hpp"
#include "redis/redis_stream_store.hpp"
#include "streams/stream_service.hpp"

namespace sluice::cluster {

struct cluster_options {
  redis::redis_client_options redis;  // endpoint (--redis), timeouts
  redis::store_options store;         // node_id, retention, TTLs, run_lease
  // A mirror nobody on this node reads is dropped after this long.
  std::chrono::milliseconds mirror_linger{10'000};
  // How often this node marks the streams it has readers of as read
  // (presence, for "a run nobody reads is cancelled"); the mark lasts 3x.
  std::chrono::milliseconds presence_interval{1'000};
  // A local run's events waiting for Redis (write-behind) beyond this many
  // bytes end the run (cancelled, "store_unavailable").
  std::size_t max_pending_bytes = 16u << 20;
  // A reader waiting for a stream nothing was published to gets
  // stream_not_started after this long (--pending-stream-s).
  std::chrono::milliseconds pending_limit{60'000};
  // How long a cancel of another node's run waits for its final event.
  std::chrono::milliseconds cancel_wait{5'000};
};

// A node name: hostname, port and random digits, [A-Za-z0-9._:-].
std::string default_node_id(unsigned short port);

// Splits an SSE-encoded event (as stream_log writes it) into its type and
// data (data lines joined with '\n'). False when it is not one event.
bool decode_sse_event(std::string_view sse, std::string& type, std::string& data);

class cluster_node final : public streams::stream_backend,
                           public core::stream_store,
                           public std::enable_shared_from_this<cluster_node> {
 public:
  // Throws (configuration) when the Redis TLS context cannot be made.
  cluster_node(core::stream_registry& registry, cluster_options options);
  ~cluster_node() override;

  // Starts the thread and connects (in the background). Once.
  void start();
  // Graceful shutdown, after the server's workers stopped: ends every run
  // this node produces with a final error {"code":"interrupted"} and waits
  // up to `timeout` for the write-behind to put their events in Redis (so
  // readers on other nodes get the whole run at once, not producer_lost
  // after the lease). Call before stop().
  void drain(std::chrono::milliseconds timeout);
  // Stops the thread; later ops complete with store_unavailable.
  void stop();
  // Waits until the Redis connections are up (tests, start-up log).
  bool wait_connected(std::chrono::milliseconds timeout);

  const cluster_options& options() const;

  // streams::stream_backend
  void publish(std::string id, std::string owner, std::vector<streams::owned_event> events,
               bool final, streams::op_callback<streams::publish_result> done) override;
  void open(std::string id, std::optional<std::uint64_t> after, bool create_pending,
            access_check check,
            streams::op_callback<std::shared_ptr<core::stream_log>> done) override;
  void status(std::string id, access_check check,
              streams::op_callback<streams::stream_info> done) override;
  void cancel(std::string id, std::string reason, access_check check,
              streams::op_callback<streams::cancel_result> done) override;
  void start_run(std::string request_id, std::string owner, bool resuming, access_check check,
                 std::function<streams::op_result<streams::run_started>()> launch,
                 boost::asio::any_io_executor launch_on,
                 streams::op_callback<streams::run_started> done) override;

  // core::stream_store
  std::shared_ptr<core::stream_journal> open_journal(const core::stream_meta& meta) override;
  void erased(const core::stream_log& log) noexcept override;
  bool acks_wait_for_disk() const noexcept override { return false; }
  void when_durable(const core::stream_log&, std::uint64_t,
                    std::function<void(bool)> done) override {
    done(true);
  }

  class impl;

 private:
  // Destroyed after impl_ (coroutines on it may hold the impl).
  std::unique_ptr<boost::asio::io_context> ioc_;
  std::thread thread_;
  std::shared_ptr<impl> impl_;
};

}  // namespace sluice::cluster
