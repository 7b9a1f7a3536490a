// One SSE response: a cursor into a stream log written to one socket.
//
// - At most one write in flight; each write is everything from the cursor to
//   the head (up to write_batch_bytes) as one gathered, chunk-encoded write
//   straight from the log's shared segments. The write is first tried at once
//   on the non-blocking socket; only what the socket does not take goes to an
//   asynchronous write (so a paced event costs one writev and no handler).
// - A wake-up from a publish on this worker's own thread joins the worker's
//   ready list (one post drains it); from another thread it is one post.
// - A wait for readability stays pending so a disconnect is seen at once.
// - No timer per connection: the worker's sweep calls sweep() for heartbeats,
//   write stalls and the maximum stream duration.
// - An idle subscriber holds no read batch and no buffer list: both are the
//   worker's, taken for a write (see worker::take_batch).
//
// Thread-safety: everything runs on the owning worker's thread, except
// on_stream_ready(), which any thread may call (it only posts).
#pragma once

#include <boost/asio/buffer.hpp>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/stream_log.hpp"
#include "transport/gzip_stream.hpp"
#include "transport/http_types.hpp"
#include "transport/worker.hpp"

namespace sluice::transport {

class sse_subscriber final : public std::enable_shared_from_this<sse_subscriber>,
                             public core::stream_waiter,
                             public auto_unlink_hook,
                             public ready_hook {
 public:
  struct options {
    bool gzip = false;
    bool keep_alive = true;
  };

  sse_subscriber(worker& w, tcp_socket socket, connection_token token, stream_reply reply,
                 options opts);
  ~sse_subscriber();

  void start();
  void on_stream_ready() noexcept override;
  // Pumps every subscriber on `w`'s ready list (on w's thread).
  static void drain_ready(worker& w);
  // The after-publish hook of a worker thread (core/after_publish.hpp):
  // drains its ready list now if anything is in it. `ctx` is the worker.
  static void flush_ready(void* ctx) noexcept;
  void sweep(std::int64_t now_us);
  // Server shutdown: flush one batch, end the response, close.
  void begin_shutdown();

 private:
  static void post_drain(worker& w);
  static void drain_pass(worker& w, ready_list& pass);
  enum class ending { none, normal, close_after };

  void pump();
  // Starts one write; true when the socket took all of it at once (the caller
  // then runs finish_write), false when an asynchronous write is in flight or
  // the connection closed.
  bool write_body(std::span<const core::read_span> spans, bool terminate);
  // After a write: bookkeeping; true when the subscriber should pump again.
  bool finish_write(boost::system::error_code ec);
  void release_batch();
  void watch_peer();
  void after_terminator();
  void hand_back();
  void close();

  worker& worker_;
  tcp_socket socket_;
  connection_token token_;
  core::subscription sub_;
  // The batch of the write in flight (from the worker's spares; null while
  // nothing read is being written, e.g. while idle).
  std::unique_ptr<core::read_batch> batch_;
  std::string head_;     // HTTP head + first chunk, sent with the first write
  std::string scratch_;  // gzip output or a one-off event
  std::unique_ptr<gzip_stream> gzip_;
  char chunk_header_[20];
  std::int64_t opened_us_;
  std::int64_t last_write_us_;
  std::int64_t write_started_us_ = 0;
  std::size_t discarded_bytes_ = 0;
  bool gzip_wanted_;
  bool keep_alive_;
  bool writing_ = false;
  bool closed_ = false;
  bool terminator_sent_ = false;  // the response's last chunk is written or in flight
  bool stop_requested_ = false;   // shutdown or max duration: end then close
  bool peer_watch_pending_ = false;
  bool handing_back_ = false;
  bool batch_counts_ = false;  // the write in flight carries batch_ (for metrics)
};

}  // namespace sluice::transport
