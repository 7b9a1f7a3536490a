// Fuzz target for the durable log's record parsing (store/record_format):
// what recovery and history reads decode from segment files, which a
// damaged disk or a bad copy can fill with anything. The checksum guards
// each record, so besides whole files (byte 0 = 0: next_record on the rest)
// the target also hands payloads to the decoders directly, past the
// checksum (byte 0 = 1: an event record, 2: an events record, 3: a meta
// record; byte 1 = the flags). Whatever an events record yields must be
// exactly its bytes, split into `count` events each ending at its first
// blank line, in sequence, and must survive being written again.
#include <cstdlib>
#include <string>

#include "fuzz_input.hpp"
#include "store/record_format.hpp"

namespace {

using namespace sluice::store;

void check_events(const parsed_record& r) {
  record_events ev;
  if (!ev.open(r)) return;
  if (ev.count() == 0 || ev.last_seq() < ev.first_seq()) std::abort();
  std::string all;
  event_index ix;
  std::string_view sse;
  std::uint64_t n = 0;
  while (ev.next(ix, sse)) {
    if (ix.seq != ev.first_seq() + n) std::abort();
    if (r.type == record_type::events) {
      // Each event ends at its first blank line; only the last ends the stream.
      if (sse.size() < 2 || sse.substr(sse.size() - 2) != "\n\n" ||
          sse.find("\n\n") != sse.size() - 2)
        std::abort();
      if (ix.seq != ev.last_seq() && ix.end_state != sluice::core::stream_state::open) std::abort();
    }
    all.append(sse);
    ++n;
  }
  if (n != ev.count() || all.size() != ev.sse_bytes()) std::abort();
  if (r.type != record_type::events) return;
  // Written again, it reads back the same.
  events_index idx;
  std::string_view bytes;
  if (!decode_events(r, idx, bytes) || bytes != all) std::abort();
  std::string buf;
  append_events_record(buf, idx, bytes);
  std::size_t pos = 0;
  parsed_record again;
  events_index idx2;
  std::string_view bytes2;
  if (next_record(buf, pos, again) != parse_status::ok || pos != buf.size() ||
      !decode_events(again, idx2, bytes2) || bytes2 != bytes || idx2.first_seq != idx.first_seq ||
      idx2.count != idx.count || idx2.publish_us != idx.publish_us ||
      idx2.end_state != idx.end_state || idx2.stream != idx.stream)
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in = sluice::fuzz::as_view(data, size);
  if (in.size() < 2) return 0;
  const auto mode = static_cast<unsigned char>(in[0]);
  const auto flags = static_cast<std::uint8_t>(in[1]);
  const std::string_view rest = in.substr(2);
  switch (mode % 4) {
    case 0: {  // a segment file
      std::size_t pos = 0;
      parsed_record r;
      parse_status st;
      while ((st = next_record(in.substr(1), pos, r)) == parse_status::ok) {
        if (pos > in.size() - 1) std::abort();
        check_events(r);
        (void)decode_meta(r);
        std::string_view id;
        (void)decode_erased(r, id);
      }
      break;
    }
    case 1:
      check_events({record_type::event, flags, rest});
      break;
    case 2:
      check_events({record_type::events, flags, rest});
      break;
    default: {
      std::uint32_t key = 0;
      (void)decode_meta({record_type::meta, flags, rest}, &key);
      break;
    }
  }
  return 0;
}
