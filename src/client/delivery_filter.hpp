// What of a resumable stream reaches the application: every event once, in
// order, by sequence number (the SSE id).
//
//   - An event with an id N or N-EPOCH (see core/event_id.hpp) has the
//     sequence number N; the whole id is what the client sends back
//     (last_id()). It It is dropped when
//     N <= the highest sequence delivered so far (a replayed duplicate).
//   - A merged delta event (data {"coalesced":[a,b],...}, id b) counts as
//     delivering a..b.
//   - An event without an id (server notices and errors), or with an id that
//     is not a number, is delivered as it is.
//   - `event: error` with {"code":"resume_window_exceeded",...} is not an
//     ordinary event: the client must stop and tell the application, because
//     the events it lacks are gone (never silence).
//
// A merged event that overlaps what was delivered (a <= highest < b) cannot be
// split, so it is delivered whole; a conforming server never sends one (it
// resumes strictly after Last-Event-ID).
//
// Pure logic (Boost.JSON only). Thread-safety: none; one per client.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::client {

struct delivery {
  enum class action { deliver, drop_duplicate, resume_window_exceeded };
  action what = action::deliver;
  std::uint64_t first_seq = 0;  // both 0 for an event without a sequence number
  std::uint64_t last_seq = 0;
  // resume_window_exceeded only:
  std::uint64_t first_available = 0;
  std::string message;
};

// The sequence number of an id: decimal digits only, no sign, fits in 64
// bits, optionally followed by -EPOCH ([0-9a-z]{1,16}).
std::optional<std::uint64_t> parse_sequence(std::string_view id);

class delivery_filter {
 public:
  // `highest_delivered`: the sequence the application already has (the
  // Last-Event-ID it resumes from), 0 for none.
  explicit delivery_filter(std::uint64_t highest_delivered = 0)
      : highest_(highest_delivered) {}

  // `has_id`: the event carried its own id field (in SSE an event without one
  // inherits the previous id, so the id alone does not tell).
  delivery classify(std::string_view id, bool has_id, std::string_view type,
                    std::string_view data);

  std::uint64_t highest_delivered() const { return highest_; }
  // The whole id (N or N-EPOCH) of the highest event delivered, or the one
  // given by set_last_id: what a resume sends. Empty when none.
  const std::string& last_id() const { return last_id_; }
  void set_last_id(std::string id) { last_id_ = std::move(id); }
  std::uint64_t duplicates_dropped() const { return duplicates_; }

 private:
  std::uint64_t highest_;
  std::uint64_t duplicates_ = 0;
  std::string last_id_;
};

}  // namespace sluice::client
