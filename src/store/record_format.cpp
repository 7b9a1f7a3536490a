#include "store/record_format.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <cstring>
#include <limits>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "core/event_id.hpp"

namespace sluice::store {
namespace {

void put_u16(std::string& out, std::uint16_t v) {
  char b[2] = {static_cast<char>(v & 0xff), static_cast<char>(v >> 8)};
  out.append(b, 2);
}
void put_u32(std::string& out, std::uint32_t v) {
  char b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  out.append(b, 4);
}
void put_u64(std::string& out, std::uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  out.append(b, 8);
}
std::uint32_t get_u32(const char* p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}
std::uint64_t get_u64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

// CRC-32C (Castagnoli): the SSE4.2 crc32 instruction where the CPU has it
// (8 bytes per instruction, several GB/s), else a table (a byte at a time).
constexpr std::uint32_t crc32c_poly = 0x82F63B78u;

struct crc_table {
  std::uint32_t t[256];
  constexpr crc_table() : t{} {
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) != 0 ? (c >> 1) ^ crc32c_poly : c >> 1;
      t[i] = c;
    }
  }
};
constexpr crc_table table{};

std::uint32_t crc32c_table(const char* p, std::size_t n) {
  std::uint32_t c = ~0u;
  for (std::size_t i = 0; i < n; ++i)
    c = table.t[(c ^ static_cast<unsigned char>(p[i])) & 0xff] ^ (c >> 8);
  return ~c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) std::uint32_t crc32c_sse42(const char* p, std::size_t n) {
  std::uint64_t c = 0xffffffffu;
  for (; n >= 8; p += 8, n -= 8) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    c = __builtin_ia32_crc32di(c, v);
  }
  auto c32 = static_cast<std::uint32_t>(c);
  for (; n > 0; ++p, --n) c32 = __builtin_ia32_crc32qi(c32, static_cast<unsigned char>(*p));
  return ~c32;
}
#endif

std::uint32_t crc_of(const char* p, std::size_t n) {
#if defined(__x86_64__)
  static const bool hw = __builtin_cpu_supports("sse4.2");
  if (hw) return crc32c_sse42(p, n);
#endif
  return crc32c_table(p, n);
}

}  // namespace

std::uint32_t record_checksum(std::string_view bytes) {
  return crc_of(bytes.data(), bytes.size());
}
std::uint32_t record_checksum_portable(std::string_view bytes) {
  return crc32c_table(bytes.data(), bytes.size());
}

namespace {

// Reserves the header, returns its offset; finish_record fills it in.
std::size_t begin_record(std::string& out, record_type type, std::uint8_t flags) {
  const std::size_t at = out.size();
  put_u32(out, 0);  // crc
  put_u32(out, 0);  // length
  out.push_back(static_cast<char>(type));
  out.push_back(static_cast<char>(flags));
  put_u16(out, 0);
  return at;
}

void finish_record(std::string& out, std::size_t at) {
  const std::size_t len = out.size() - at - record_header_bytes;
  char* h = out.data() + at;
  for (int i = 0; i < 4; ++i) h[4 + i] = static_cast<char>((len >> (8 * i)) & 0xff);
  const std::uint32_t crc = crc_of(h + 4, out.size() - at - 4);
  for (int i = 0; i < 4; ++i) h[i] = static_cast<char>((crc >> (8 * i)) & 0xff);
}

}  // namespace

std::size_t event_record_size(const event_index& index, std::size_t sse_bytes) {
  return record_header_bytes + 20 + (index.delta_key != 0 ? 16 : 0) + sse_bytes;
}

void append_event_record(std::string& out, const event_index& index, std::string_view sse) {
  std::uint8_t flags = static_cast<std::uint8_t>(static_cast<unsigned>(index.end_state) << 1);
  if (index.delta_key != 0) flags |= 1;
  const std::size_t at = begin_record(out, record_type::event, flags);
  put_u32(out, index.stream);
  put_u64(out, index.seq);
  put_u64(out, static_cast<std::uint64_t>(index.publish_us));
  if (index.delta_key != 0) {
    put_u32(out, index.delta_key);
    put_u32(out, index.json_offset);
    put_u32(out, index.text_begin);
    put_u32(out, index.text_end);
  }
  out.append(sse);
  finish_record(out, at);
}

void append_events_record(std::string& out, const events_index& index, std::string_view sse) {
  const auto flags = static_cast<std::uint8_t>(static_cast<unsigned>(index.end_state) << 1);
  const std::size_t at = begin_record(out, record_type::events, flags);
  put_u32(out, index.stream);
  put_u64(out, index.first_seq);
  put_u64(out, static_cast<std::uint64_t>(index.publish_us));
  put_u32(out, index.count);
  out.append(sse);
  finish_record(out, at);
}

namespace {

// The length of the first event in `sse`, through its blank line (0: no
// blank line in it).
std::size_t sse_event_length(std::string_view sse) {
  const char* const b = sse.data();
  const std::size_t n = sse.size();
  for (std::size_t i = 0; i < n;) {
    const auto* p = static_cast<const char*>(std::memchr(b + i, '\n', n - i));
    if (p == nullptr) return 0;
    const auto k = static_cast<std::size_t>(p - b);
    if (k + 1 < n && b[k + 1] == '\n') return k + 2;
    i = k + 1;
  }
  return 0;
}

// Counts the blank lines ("\n\n") in `s`: 16 bytes at a time with SSE2.
// False when three '\n' follow each other (an event never starts with
// one), so the blank lines found never overlap.
bool count_blank_lines(std::string_view s, std::size_t& pairs) {
  pairs = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  std::uint32_t before = 0;  // bit 1: byte i-1 is '\n', bit 0: byte i-2 is
  std::uint32_t triples = 0;
#if defined(__SSE2__)
  const __m128i nl = _mm_set1_epi8('\n');
  for (; i + 16 <= n; i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
    // Bit k + 2 of m: byte i + k is '\n' (k = -2..15).
    const auto m =
        (static_cast<std::uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, nl))) << 2) | before;
    std::uint32_t two = m & (m << 1) & 0x3fffcu;  // this byte and the one before
    triples |= two & (m << 2);
    for (; two != 0; two &= two - 1) ++pairs;  // a block holds few (no popcnt in baseline x86-64)
    before = (m >> 16) & 3u;
  }
#endif
  for (; i < n; ++i) {
    const std::uint32_t m = (p[i] == '\n' ? 4u : 0u) | before;
    if ((m & 6u) == 6u) {
      ++pairs;
      triples |= m & 1u;
    }
    before = (m >> 1) & 3u;
  }
  return triples == 0;
}

}  // namespace

bool splits_into_events(std::string_view sse, std::uint32_t count) {
  std::size_t pairs = 0;
  return sse.size() >= 2 && sse.substr(sse.size() - 2) == "\n\n" && count_blank_lines(sse, pairs) &&
         pairs == count;
}

void append_meta_record(std::string& out, const core::stream_meta& meta, std::uint32_t stream) {
  boost::json::object o;
  o["id"] = meta.id;
  o["owner"] = meta.owner;
  o["created_us"] = meta.created_us;
  o["unread_grace_us"] = meta.unread_grace_us;
  o["finished_ttl_us"] = meta.finished_ttl_us;
  o["local_producer"] = meta.local_producer;
  // Only streams with an epoch carry these (older files have none).
  if (!meta.epoch.empty() || meta.epoch_boundary != 0) {
    o["epoch"] = meta.epoch;
    o["previous_epoch"] = meta.previous_epoch;
    o["epoch_boundary"] = meta.epoch_boundary;
  }
  const std::size_t at = begin_record(out, record_type::meta, 0);
  put_u32(out, stream);
  out.append(boost::json::serialize(o));
  finish_record(out, at);
}

void append_erased_record(std::string& out, std::string_view id) {
  const std::size_t at = begin_record(out, record_type::erased, 0);
  out.append(id);
  finish_record(out, at);
}

parse_status next_record(std::string_view bytes, std::size_t& pos, parsed_record& out) {
  if (pos >= bytes.size()) return parse_status::end;
  const std::size_t left = bytes.size() - pos;
  if (left < record_header_bytes) return parse_status::torn;
  const char* h = bytes.data() + pos;
  const std::uint32_t crc = get_u32(h);
  const std::uint32_t len = get_u32(h + 4);
  if (len > max_record_payload) return parse_status::corrupt;
  if (left - record_header_bytes < len) return parse_status::torn;
  if (crc_of(h + 4, record_header_bytes - 4 + len) != crc) return parse_status::corrupt;
  const auto type = static_cast<std::uint8_t>(h[8]);
  if (type != static_cast<std::uint8_t>(record_type::meta) &&
      type != static_cast<std::uint8_t>(record_type::event) &&
      type != static_cast<std::uint8_t>(record_type::erased) &&
      type != static_cast<std::uint8_t>(record_type::events))
    return parse_status::corrupt;
  out.type = static_cast<record_type>(type);
  out.flags = static_cast<std::uint8_t>(h[9]);
  out.payload = bytes.substr(pos + record_header_bytes, len);
  pos += record_header_bytes + len;
  return parse_status::ok;
}

bool decode_event(const parsed_record& r, event_index& index, std::string_view& sse) {
  if (r.type != record_type::event) return false;
  const bool delta = (r.flags & 1) != 0;
  const unsigned state = (r.flags >> 1) & 3;
  if (state > 2 || (r.flags & ~0x7u) != 0) return false;
  const std::size_t fixed = 20 + (delta ? 16 : 0);
  if (r.payload.size() <= fixed) return false;
  const char* p = r.payload.data();
  index.stream = get_u32(p);
  p += 4;
  index.seq = get_u64(p);
  index.publish_us = static_cast<std::int64_t>(get_u64(p + 8));
  index.delta_key = index.json_offset = index.text_begin = index.text_end = 0;
  if (delta) {
    index.delta_key = get_u32(p + 16);
    index.json_offset = get_u32(p + 20);
    index.text_begin = get_u32(p + 24);
    index.text_end = get_u32(p + 28);
  }
  index.end_state = static_cast<core::stream_state>(state);
  sse = r.payload.substr(fixed);
  if (index.seq == 0) return false;
  // A delta's text range must lie inside its JSON inside the event bytes
  // (the coalescer copies from there).
  if (delta &&
      (index.delta_key == 0 || index.json_offset >= sse.size() ||
       index.text_begin > index.text_end || index.text_end > sse.size() - index.json_offset))
    return false;
  return true;
}

bool decode_events(const parsed_record& r, events_index& index, std::string_view& sse) {
  if (r.type != record_type::events) return false;
  const unsigned state = (r.flags >> 1) & 3;
  if (state > 2 || (r.flags & ~0x6u) != 0) return false;
  constexpr std::size_t fixed = 24;
  if (r.payload.size() <= fixed) return false;
  const char* p = r.payload.data();
  index.stream = get_u32(p);
  index.first_seq = get_u64(p + 4);
  index.publish_us = static_cast<std::int64_t>(get_u64(p + 12));
  index.count = get_u32(p + 20);
  index.end_state = static_cast<core::stream_state>(state);
  sse = r.payload.substr(fixed);
  if (index.first_seq == 0 || index.count == 0 ||
      index.first_seq > std::numeric_limits<std::uint64_t>::max() - index.count)
    return false;
  return splits_into_events(sse, index.count);
}

bool sse_event_splitter::next(std::string_view& event) {
  if (left_ == 0) return false;
  const std::size_t n = --left_ == 0 ? rest_.size() : sse_event_length(rest_);
  event = rest_.substr(0, n);
  rest_.remove_prefix(event.size());
  return true;
}

bool record_events::open(const parsed_record& r) {
  std::string_view sse;
  if (r.type == record_type::event) {
    if (!decode_event(r, one_, sse)) return false;
    first_seq_ = one_.seq;
    count_ = 1;
  } else {
    events_index ix;
    if (!decode_events(r, ix, sse)) return false;  // checks that sse holds count events
    one_ = event_index{};
    one_.publish_us = ix.publish_us;
    one_.end_state = ix.end_state;
    one_.stream = ix.stream;
    first_seq_ = ix.first_seq;
    count_ = ix.count;
  }
  sse_bytes_ = sse.size();
  split_ = sse_event_splitter(sse, count_);
  return true;
}

bool record_events::next(event_index& index, std::string_view& sse) {
  if (!split_.next(sse)) return false;
  index = one_;
  index.seq = first_seq_ + (count_ - split_.left() - 1);
  if (split_.left() != 0) index.end_state = core::stream_state::open;
  return true;
}

std::optional<core::stream_meta> decode_meta(const parsed_record& r, std::uint32_t* stream) {
  if (r.type != record_type::meta || r.payload.size() < 4) return std::nullopt;
  if (stream != nullptr) *stream = get_u32(r.payload.data());
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(r.payload.substr(4), ec);
  if (ec || !v.is_object()) return std::nullopt;
  const auto& o = v.as_object();
  core::stream_meta m;
  auto str = [&](const char* k, std::string& dst) {
    const auto* x = o.if_contains(k);
    if (x == nullptr || !x->is_string()) return false;
    dst = x->as_string();
    return true;
  };
  auto num = [&](const char* k, std::int64_t& dst) {
    const auto* x = o.if_contains(k);
    if (x == nullptr || !x->is_int64()) return false;
    dst = x->as_int64();
    return true;
  };
  const auto* lp = o.if_contains("local_producer");
  if (!str("id", m.id) || !str("owner", m.owner) || !num("created_us", m.created_us) ||
      !num("unread_grace_us", m.unread_grace_us) || !num("finished_ttl_us", m.finished_ttl_us) ||
      lp == nullptr || !lp->is_bool())
    return std::nullopt;
  m.local_producer = lp->as_bool();
  // Epochs: optional; when present, well-formed or the record is corrupt.
  if (o.contains("epoch") || o.contains("previous_epoch") || o.contains("epoch_boundary")) {
    const auto* b = o.if_contains("epoch_boundary");
    if (!str("epoch", m.epoch) || !str("previous_epoch", m.previous_epoch) || b == nullptr ||
        !(b->is_uint64() || (b->is_int64() && b->as_int64() >= 0)) ||
        (!m.epoch.empty() && !core::is_valid_epoch(m.epoch)) ||
        (!m.previous_epoch.empty() && !core::is_valid_epoch(m.previous_epoch)))
      return std::nullopt;
    m.epoch_boundary = b->is_uint64() ? b->as_uint64() : static_cast<std::uint64_t>(b->as_int64());
  }
  return m;
}

bool decode_erased(const parsed_record& r, std::string_view& id) {
  if (r.type != record_type::erased || r.payload.empty()) return false;
  id = r.payload;
  return true;
}

}  // namespace sluice::store
