#include "redis/redis_stream_store.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <random>

#include "core/coalescer.hpp"
#include "core/event_id.hpp"
#include "core/stream_id.hpp"

namespace sluice::redis {

namespace net = boost::asio;
using boost::system::error_code;
template <class T>
using result = boost::system::result<T>;

namespace {

// KEYS: meta, events. ARGV: 1 expected epoch ('' any), 2 maxlen (0: none),
// 3 final state ('' stays open), 4 finished ttl ms, 5 idle ttl ms,
// 6 batch id ('' none), 7 wake channel, [8 writer options], then type, data
// pairs. The options argument is there when the count of arguments is even
// (older callers, e.g. the benchmark's command line, send none):
// "<expected first seq or ''>|<writer>[|d]", writer 'x' an external publisher
// (refused while a run's producer writes the stream), 'p' the producer; with
// '|d' the events are type, data, message id, field quadruples (a batch with
// a text delta; '' message id: not a delta) and a delta's entry also gets
// the fields m and f.
constexpr std::string_view publish_lua = R"lua(
local m = redis.call('HMGET', KEYS[1], 'state', 'epoch', 'last_seq', 'batch', 'batch_first', 'batch_last', 'producer')
if not m[1] then return redis.error_reply('SLUICE_NOT_FOUND') end
if ARGV[1] ~= '' and m[2] ~= ARGV[1] then return redis.error_reply('SLUICE_EPOCH') end
if ARGV[6] ~= '' and m[4] == ARGV[6] then
  return {tonumber(m[5]), tonumber(m[6]), 1}
end
if m[1] ~= 'open' then return redis.error_reply('SLUICE_ENDED ' .. m[1]) end
local base = 8
local expect_first = ''
local writer = ''
local stride = 2
if #ARGV % 2 == 0 then
  base = 9
  local bar = string.find(ARGV[8], '|', 1, true)
  if bar then
    expect_first = string.sub(ARGV[8], 1, bar - 1)
    writer = string.sub(ARGV[8], bar + 1)
    local bar2 = string.find(writer, '|', 1, true)
    if bar2 then
      if string.sub(writer, bar2 + 1) == 'd' then stride = 4 end
      writer = string.sub(writer, 1, bar2 - 1)
    end
  end
end
if (#ARGV - base + 1) % stride ~= 0 then return redis.error_reply('SLUICE_ARGS') end
local new_epoch = ''
if string.sub(writer, 1, 2) == 'l:' then
  new_epoch = string.sub(writer, 3)
  writer = 'l'
end
if writer == 'x' and m[7] == '1' then return redis.error_reply('SLUICE_PRODUCER') end
local n = (#ARGV - base + 1) / stride
local last = tonumber(m[3])
local first = last + 1
if expect_first ~= '' and tonumber(expect_first) ~= first then
  return redis.error_reply('SLUICE_SEQ ' .. m[3])
end
local maxlen = tonumber(ARGV[2])
for i = 0, n - 1 do
  last = last + 1
  local id = string.format('%d-0', last)
  local at = base + stride * i
  if stride == 4 and ARGV[at + 2] ~= '' then
    if maxlen > 0 then
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], id, 't', ARGV[at], 'd', ARGV[at + 1], 'm', ARGV[at + 2], 'f', ARGV[at + 3])
    else
      redis.call('XADD', KEYS[2], id, 't', ARGV[at], 'd', ARGV[at + 1], 'm', ARGV[at + 2], 'f', ARGV[at + 3])
    end
  elseif maxlen > 0 then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], id, 't', ARGV[at], 'd', ARGV[at + 1])
  else
    redis.call('XADD', KEYS[2], id, 't', ARGV[at], 'd', ARGV[at + 1])
  end
end
local last_s = string.format('%d', last)
redis.call('HSET', KEYS[1], 'last_seq', last_s, 'batch', ARGV[6],
           'batch_first', string.format('%d', first), 'batch_last', last_s)
if new_epoch ~= '' then
  -- A lost producer's end: its node may have shown readers events it never
  -- wrote here, so a new epoch begins at this batch's first event.
  redis.call('HSET', KEYS[1], 'previous_epoch', m[2], 'epoch', new_epoch,
             'epoch_boundary', string.format('%d', first))
end
local ttl
if ARGV[3] ~= '' then
  local t = redis.call('TIME')
  redis.call('HSET', KEYS[1], 'state', ARGV[3],
             'finished_at', string.format('%d', t[1] * 1000 + math.floor(t[2] / 1000)))
  ttl = tonumber(ARGV[4])
else
  ttl = tonumber(ARGV[5])
end
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
redis.call('PUBLISH', ARGV[7], last_s)
return {first, last, 0}
)lua";

// KEYS: meta, events. ARGV: 1 epoch, 2 owner, 3 idle ttl ms, 4 '1': a run's
// producer writes it (external publishes are refused).
constexpr std::string_view create_lua = R"lua(
local m = redis.call('HMGET', KEYS[1], 'state', 'epoch', 'owner', 'last_seq')
if m[1] then return {0, m[1], m[2], m[3] or '', m[4]} end
redis.call('DEL', KEYS[2])
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], 'state', 'open', 'epoch', ARGV[1], 'owner', ARGV[2], 'last_seq', '0',
           'created_at', string.format('%d', t[1] * 1000 + math.floor(t[2] / 1000)))
if ARGV[4] == '1' then redis.call('HSET', KEYS[1], 'producer', '1') end
local ttl = tonumber(ARGV[3])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return {1, 'open', ARGV[1], ARGV[2], '0'}
)lua";

// KEYS: meta, events. ARGV: 1 after (decimal), 2 expected epoch ('' any), 3 count.
constexpr std::string_view read_lua = R"lua(
local m = redis.call('HMGET', KEYS[1], 'state', 'epoch', 'owner', 'last_seq', 'created_at', 'finished_at', 'node', 'producer', 'previous_epoch', 'epoch_boundary')
if not m[1] then return redis.error_reply('SLUICE_NOT_FOUND') end
if ARGV[2] ~= '' and m[2] ~= ARGV[2] then return redis.error_reply('SLUICE_EPOCH') end
local entries = {}
if tonumber(ARGV[1]) < tonumber(m[4]) and tonumber(ARGV[3]) > 0 then
  local start = '-'
  if ARGV[1] ~= '0' then start = '(' .. ARGV[1] .. '-0' end
  entries = redis.call('XRANGE', KEYS[2], start, '+', 'COUNT', ARGV[3])
end
local window = {}
if tonumber(ARGV[3]) == 0 then
  local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
  local first_id = ''
  if first[1] then first_id = first[1][1] end
  window = {redis.call('XLEN', KEYS[2]), first_id}
end
return {{m[1], m[2], m[3] or '', m[4], m[5] or '', m[6] or '', m[7] or '', m[8] or '', m[9] or '', m[10] or ''}, entries, window}
)lua";

// KEYS: run. ARGV: 1 stream, 2 owner, 3 ttl ms.
constexpr std::string_view register_lua = R"lua(
local m = redis.call('HMGET', KEYS[1], 'stream', 'owner')
if m[1] then return {0, m[1], m[2] or ''} end
redis.call('HSET', KEYS[1], 'stream', ARGV[1], 'owner', ARGV[2])
local ttl = tonumber(ARGV[3])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return {1, ARGV[1], ARGV[2]}
)lua";

// KEYS: leases. ARGV: 1 stream, 2 lease ms, 3 'acquire' or 'renew'.
// Expiry on Redis's clock; a renewal of a claimed (removed) lease fails.
constexpr std::string_view lease_lua = R"lua(
if ARGV[3] == 'renew' and not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
local t = redis.call('TIME')
local expiry = t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], string.format('%d', expiry), ARGV[1])
return 1
)lua";

// KEYS: leases. ARGV: 1 limit. Removes and returns expired leases: each goes
// to exactly one caller.
constexpr std::string_view claim_lua = R"lua(
local t = redis.call('TIME')
local now = string.format('%d', t[1] * 1000 + math.floor(t[2] / 1000))
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, id in ipairs(ids) do redis.call('ZREM', KEYS[1], id) end
return ids
)lua";

// KEYS: meta. ARGV: 1 reason, 2 channel prefix, 3 stream id.
constexpr std::string_view cancel_lua = R"lua(
local m = redis.call('HMGET', KEYS[1], 'state', 'node')
if not m[1] then return redis.error_reply('SLUICE_NOT_FOUND') end
local node = m[2] or ''
if m[1] ~= 'open' then return {m[1], node, 0} end
redis.call('HSET', KEYS[1], 'cancel', ARGV[1])
local n = 0
if node ~= '' then n = redis.call('PUBLISH', ARGV[2] .. node, ARGV[3]) end
return {'open', node, n}
)lua";

enum script_id { s_publish, s_create, s_read, s_register, s_lease, s_claim, s_cancel, s_count };

std::string sha1_hex(std::string_view s) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned len = 0;
  EVP_Digest(s.data(), s.size(), md.data(), &len, EVP_sha1(), nullptr);
  std::string hex;
  static constexpr char digits[] = "0123456789abcdef";
  for (unsigned i = 0; i < len; ++i) {
    hex += digits[md[i] >> 4];
    hex += digits[md[i] & 15];
  }
  return hex;
}

struct script {
  std::string_view source;
  std::string sha;
};

const std::array<script, s_count>& scripts() {
  static const std::array<script, s_count> table = [] {
    std::array<script, s_count> t;
    const std::array<std::string_view, s_count> src = {
        publish_lua, create_lua, read_lua, register_lua, lease_lua, claim_lua, cancel_lua};
    for (std::size_t i = 0; i < s_count; ++i) t[i] = {src[i], sha1_hex(src[i])};
    return t;
  }();
  return table;
}

bool valid_name(std::string_view s) {
  return core::is_valid_stream_id(s);
}

bool valid_epoch_or_empty(std::string_view e) { return e.empty() || core::is_valid_epoch(e); }

// A script's error reply to a typed error.
error_code script_error(const resp_value& v) {
  if (v.str.find("SLUICE_NOT_FOUND") != std::string::npos) return redis_errc::stream_not_found;
  if (v.str.find("SLUICE_EPOCH") != std::string::npos) return redis_errc::history_truncated;
  if (v.str.find("SLUICE_ENDED") != std::string::npos) return redis_errc::stream_ended;
  if (v.str.find("SLUICE_PRODUCER") != std::string::npos) return redis_errc::has_producer;
  if (v.str.find("SLUICE_SEQ") != std::string::npos) return redis_errc::sequence_conflict;
  if (v.str.find("SLUICE_ARGS") != std::string::npos) return redis_errc::invalid_argument;
  return redis_errc::server_error;
}

// A non-negative decimal (as Redis and our scripts write them), range-checked.
template <class T>
bool parse_number(std::string_view s, T& out) {
  if (s.empty()) return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

bool as_u64(const resp_value& v, std::uint64_t& out) {
  if (v.is_integer()) {
    if (v.integer < 0) return false;
    out = static_cast<std::uint64_t>(v.integer);
    return true;
  }
  return v.is_string() && parse_number(v.str, out);
}

bool as_i64_or_empty(const resp_value& v, std::int64_t& out) {
  if (v.is_nil() || (v.is_string() && v.str.empty())) {
    out = 0;
    return true;
  }
  return v.is_string() && parse_number(v.str, out);
}

const std::string& str_or_empty(const resp_value& v) {
  static const std::string empty;
  return v.is_string() ? v.str : empty;
}

// Entry id "<seq>-0".
bool parse_entry_id(std::string_view id, std::uint64_t& seq) {
  const auto dash = id.find('-');
  if (dash == std::string_view::npos || id.substr(dash) != "-0") return false;
  return parse_number(id.substr(0, dash), seq);
}

result<published> parse_published(const resp_value& v) {
  if (v.is_error()) return script_error(v);
  published p;
  if (!v.is_array() || v.elements.size() != 3 || !as_u64(v.elements[0], p.first_seq) ||
      !as_u64(v.elements[1], p.last_seq) || !v.elements[2].is_integer())
    return error_code(redis_errc::unexpected_reply);
  p.duplicate = v.elements[2].integer == 1;
  return p;
}

}  // namespace

std::string new_epoch() {
  std::random_device rd;
  const std::uint64_t v = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

redis_stream_store::redis_stream_store(redis_client& client, store_options options)
    : client_(client), opts_(std::move(options)) {}

std::string redis_stream_store::publish_script_sha() {
  return scripts()[s_publish].sha;
}
std::string_view redis_stream_store::publish_script_source() {
  return publish_lua;
}

std::string redis_stream_store::meta_key(std::string_view id) {
  return "{s:" + std::string(id) + "}:meta";
}
std::string redis_stream_store::events_key(std::string_view id) {
  return "{s:" + std::string(id) + "}:events";
}
std::string redis_stream_store::wake_channel(std::string_view id) {
  return "{s:" + std::string(id) + "}:wake";
}
std::string redis_stream_store::run_key(std::string_view request_id) {
  return "{r:" + std::string(request_id) + "}:run";
}
std::string redis_stream_store::cancel_channel(std::string_view node_id) {
  return "sluice:cancel:" + std::string(node_id);
}

net::awaitable<result<std::vector<resp_value>>> redis_stream_store::run_scripts(
    std::vector<call> calls) {
  const auto& table = scripts();
  std::string wire;
  // After each (re)connection the scripts are loaded ahead of the first calls,
  // in the same write: a restarted Redis has an empty script cache, and
  // NOSCRIPT in the middle of a pipeline could reorder its batches.
  const auto conn_no = client_.connections();
  const bool load = conn_no != scripts_loaded_on_;
  std::size_t prefix = 0;
  if (load) {
    for (const auto& s : table) {
      resp_reader::append_command(wire, {"SCRIPT", "LOAD", s.source});
      ++prefix;
    }
  }
  for (const auto& c : calls) {
    std::vector<std::string> args;
    args.reserve(3 + c.keys_and_args.size());
    args.emplace_back("EVALSHA");
    args.push_back(table[static_cast<std::size_t>(c.script)].sha);
    args.push_back(std::to_string(c.num_keys));
    args.insert(args.end(), c.keys_and_args.begin(), c.keys_and_args.end());
    resp_reader::append_command(wire, args);
  }
  auto replies = co_await client_.pipeline_encoded(std::move(wire), prefix + calls.size());
  if (!replies) co_return replies.error();
  if (load) {
    for (std::size_t i = 0; i < prefix; ++i)
      if ((*replies)[i].is_error()) co_return error_code(redis_errc::server_error);
    scripts_loaded_on_ = conn_no;
    replies->erase(replies->begin(), replies->begin() + static_cast<std::ptrdiff_t>(prefix));
  }
  // The script cache was flushed behind our back: EVAL (which caches) those.
  std::vector<std::size_t> missing;
  for (std::size_t i = 0; i < replies->size(); ++i)
    if ((*replies)[i].is_error() && (*replies)[i].str.rfind("NOSCRIPT", 0) == 0)
      missing.push_back(i);
  if (!missing.empty()) {
    std::vector<command_args> retry;
    for (const auto i : missing) {
      const auto& c = calls[i];
      command_args args{"EVAL", std::string(table[static_cast<std::size_t>(c.script)].source),
                        std::to_string(c.num_keys)};
      args.insert(args.end(), c.keys_and_args.begin(), c.keys_and_args.end());
      retry.push_back(std::move(args));
    }
    auto again = co_await client_.pipeline(std::move(retry));
    if (!again) co_return again.error();
    for (std::size_t k = 0; k < missing.size(); ++k)
      (*replies)[missing[k]] = std::move((*again)[k]);
  }
  co_return std::move(*replies);
}

net::awaitable<result<resp_value>> redis_stream_store::run_script(call c) {
  std::vector<call> calls;
  calls.push_back(std::move(c));
  auto r = co_await run_scripts(std::move(calls));
  if (!r) co_return r.error();
  co_return std::move(r->front());
}

net::awaitable<result<created_stream>> redis_stream_store::create_stream(std::string id,
                                                                         std::string owner,
                                                                         bool producer) {
  if (!valid_name(id) || owner.size() > 1024) co_return error_code(redis_errc::invalid_argument);
  call c_{s_create,
          {meta_key(id), events_key(id), producer ? std::string() : new_epoch(), owner,
           std::to_string(opts_.idle_ttl.count()), producer ? "1" : ""},
          2};
  auto r = co_await run_script(std::move(c_));
  if (!r) co_return r.error();
  const auto& v = *r;
  if (v.is_error()) co_return script_error(v);
  created_stream c;
  if (!v.is_array() || v.elements.size() != 5 || !v.elements[0].is_integer() ||
      !as_u64(v.elements[4], c.last_seq))
    co_return error_code(redis_errc::unexpected_reply);
  c.created = v.elements[0].integer == 1;
  c.state = str_or_empty(v.elements[1]);
  c.epoch = str_or_empty(v.elements[2]);
  c.owner = str_or_empty(v.elements[3]);
  // An epoch goes into every event id on the wire: nothing but its own format.
  if (!valid_epoch_or_empty(c.epoch)) co_return error_code(redis_errc::unexpected_reply);
  co_return c;
}

error_code redis_stream_store::check_batch(const publish_batch& b) const {
  if (!valid_name(b.stream_id) || b.events.empty() || b.events.size() > opts_.max_batch_events ||
      b.batch_id.size() > 128 || b.epoch.size() > 64)
    return redis_errc::invalid_argument;
  if (!b.final_state.empty() && b.final_state != "finished" && b.final_state != "cancelled")
    return redis_errc::invalid_argument;
  for (const auto& e : b.events) {
    if (!core::is_valid_event_name(e.type) || e.data.size() > opts_.max_event_bytes)
      return redis_errc::invalid_argument;
    if (e.delta && !core::is_valid_delta_key(e.delta->message_id, e.delta->field, e.data.size()))
      return redis_errc::invalid_argument;
  }
  return {};
}

redis_stream_store::call redis_stream_store::publish_call(publish_batch& b) const {
  call c{s_publish, {}, 2};
  auto& a = c.keys_and_args;
  a.reserve(10 + 2 * b.events.size());
  a.push_back(meta_key(b.stream_id));
  a.push_back(events_key(b.stream_id));
  a.push_back(std::move(b.epoch));
  a.push_back(std::to_string(opts_.max_events));
  a.push_back(std::move(b.final_state));
  a.push_back(std::to_string(opts_.finished_ttl.count()));
  a.push_back(std::to_string(opts_.idle_ttl.count()));
  a.push_back(std::move(b.batch_id));
  a.push_back(wake_channel(b.stream_id));
  // Only a batch holding a delta sends quadruples (plain batches cost
  // nothing more, and keep the benchmark's command line valid).
  const bool deltas =
      std::any_of(b.events.begin(), b.events.end(), [](const auto& e) { return e.delta; });
  if (b.expected_first_seq != 0 || b.writer != publish_writer::any || deltas)
    a.push_back((b.expected_first_seq != 0 ? std::to_string(b.expected_first_seq) : "") +
                (b.writer == publish_writer::external   ? "|x"
                 : b.writer == publish_writer::producer ? "|p"
                 : b.writer == publish_writer::lost     ? "|l:" + b.new_epoch
                                                        : "|") +
                (deltas ? "|d" : ""));
  for (auto& e : b.events) {
    a.push_back(std::move(e.type));
    a.push_back(std::move(e.data));
    if (!deltas) continue;
    a.push_back(e.delta ? std::move(e.delta->message_id) : std::string());
    a.push_back(e.delta ? std::move(e.delta->field) : std::string());
  }
  return c;
}

net::awaitable<result<published>> redis_stream_store::publish(publish_batch batch) {
  if (auto ec = check_batch(batch)) co_return ec;
  call c_ = publish_call(batch);
  auto r = co_await run_script(std::move(c_));
  if (!r) co_return r.error();
  co_return parse_published(*r);
}

net::awaitable<result<std::vector<result<published>>>> redis_stream_store::publish_many(
    std::vector<publish_batch> batches) {
  std::vector<result<published>> out(batches.size(), error_code(redis_errc::invalid_argument));
  std::vector<call> calls;
  std::vector<std::size_t> index;
  for (std::size_t i = 0; i < batches.size(); ++i) {
    if (auto ec = check_batch(batches[i])) {
      out[i] = ec;
      continue;
    }
    calls.push_back(publish_call(batches[i]));
    index.push_back(i);
  }
  if (calls.empty()) co_return out;
  auto r = co_await run_scripts(std::move(calls));
  if (!r) co_return r.error();
  for (std::size_t k = 0; k < index.size(); ++k) out[index[k]] = parse_published((*r)[k]);
  co_return out;
}

net::awaitable<result<read_result>> redis_stream_store::read_after(std::string id,
                                                                   std::uint64_t after,
                                                                   std::string expected_epoch,
                                                                   std::size_t max_events,
                                                                   bool from_retained) {
  if (!valid_name(id) || expected_epoch.size() > 64)
    co_return error_code(redis_errc::invalid_argument);
  max_events = std::min(max_events, opts_.max_read_events);
  call c_{s_read,
          {meta_key(id), events_key(id), std::to_string(after), std::move(expected_epoch),
           std::to_string(max_events)},
          2};
  auto r = co_await run_script(std::move(c_));
  if (!r) co_return r.error();
  const auto& v = *r;
  if (v.is_error()) co_return script_error(v);
  if (!v.is_array() || v.elements.size() != 3 || !v.elements[0].is_array() ||
      v.elements[0].elements.size() != 10 || !v.elements[1].is_array() || !v.elements[2].is_array())
    co_return error_code(redis_errc::unexpected_reply);
  const auto& m = v.elements[0].elements;
  read_result out;
  out.meta.state = str_or_empty(m[0]);
  out.meta.epoch = str_or_empty(m[1]);
  out.meta.owner = str_or_empty(m[2]);
  out.meta.node = str_or_empty(m[6]);
  out.meta.producer = str_or_empty(m[7]) == "1";
  out.meta.previous_epoch = str_or_empty(m[8]);
  if (!str_or_empty(m[9]).empty() && !parse_number(m[9].str, out.meta.epoch_boundary))
    co_return error_code(redis_errc::unexpected_reply);
  // What Redis holds is checked like client input before it reaches a reader:
  // an epoch is written into event ids, a type into the SSE event line.
  if (!valid_epoch_or_empty(out.meta.epoch) || !valid_epoch_or_empty(out.meta.previous_epoch))
    co_return error_code(redis_errc::unexpected_reply);
  if (!as_u64(m[3], out.meta.last_seq) || !as_i64_or_empty(m[4], out.meta.created_at_ms) ||
      !as_i64_or_empty(m[5], out.meta.finished_at_ms))
    co_return error_code(redis_errc::unexpected_reply);
  // With max_events 0 (status): what Redis retains, {XLEN, first entry id}.
  if (const auto& w = v.elements[2].elements; !w.empty()) {
    if (w.size() != 2 || !w[0].is_integer() || w[0].integer < 0 || !w[1].is_string())
      co_return error_code(redis_errc::unexpected_reply);
    out.meta.retained_events = static_cast<std::uint64_t>(w[0].integer);
    if (!w[1].str.empty() &&
        (!parse_entry_id(w[1].str, out.meta.first_seq) || out.meta.first_seq > out.meta.last_seq))
      co_return error_code(redis_errc::unexpected_reply);
  }
  // A cursor beyond the last sequence comes from another history.
  if (after > out.meta.last_seq) co_return error_code(redis_errc::history_truncated);
  const auto& entries = v.elements[1].elements;
  out.events.reserve(entries.size());
  std::uint64_t expect = after + 1;
  for (const auto& e : entries) {
    if (!e.is_array() || e.elements.size() != 2 || !e.elements[0].is_string() ||
        !e.elements[1].is_array() || e.elements[1].elements.size() % 2 != 0)
      co_return error_code(redis_errc::unexpected_reply);
    stored_event ev;
    if (!parse_entry_id(e.elements[0].str, ev.seq) || ev.seq > out.meta.last_seq)
      co_return error_code(redis_errc::unexpected_reply);
    // Sequences are contiguous: a first entry past after+1 means the events
    // in between were trimmed (retention).
    if (ev.seq != expect && from_retained && expect == after + 1 && ev.seq > expect)
      expect = ev.seq;  // the retained window starts later: read from there
    if (ev.seq != expect)
      co_return error_code(ev.seq > expect && expect == after + 1
                               ? redis_errc::resume_window_exceeded
                               : redis_errc::unexpected_reply);
    const auto& f = e.elements[1].elements;
    const std::string *message_id = nullptr, *field = nullptr;
    for (std::size_t i = 0; i + 1 < f.size(); i += 2) {
      if (!f[i].is_string() || !f[i + 1].is_string()) continue;
      if (f[i].str == "t")
        ev.type = f[i + 1].str;
      else if (f[i].str == "d")
        ev.data = f[i + 1].str;
      else if (f[i].str == "m")
        message_id = &f[i + 1].str;
      else if (f[i].str == "f")
        field = &f[i + 1].str;
    }
    if (message_id && field) ev.delta = delta_key{*message_id, *field};
    // A type that could not have been published (CR/LF would inject SSE
    // fields), or data above the event limit: the reply is refused whole.
    if (!core::is_valid_event_name(ev.type) || ev.data.size() > opts_.max_event_bytes)
      co_return error_code(redis_errc::unexpected_reply);
    out.events.push_back(std::move(ev));
    ++expect;
  }
  if (after < out.meta.last_seq && out.events.empty() && max_events > 0)
    co_return error_code(redis_errc::resume_window_exceeded);
  out.final_included =
      !out.meta.open() && !out.events.empty() && out.events.back().seq == out.meta.last_seq;
  co_return out;
}

net::awaitable<result<stream_meta>> redis_stream_store::status(std::string id) {
  auto r = co_await read_after(std::move(id), 0, {}, 0);
  if (!r) co_return r.error();
  co_return std::move(r->meta);
}

net::awaitable<result<run_record>> redis_stream_store::register_run(std::string request_id,
                                                                    std::string stream_id,
                                                                    std::string owner) {
  if (!valid_name(request_id) || !valid_name(stream_id) || owner.size() > 1024)
    co_return error_code(redis_errc::invalid_argument);
  call c_{s_register,
          {run_key(request_id), stream_id, owner, std::to_string(opts_.run_record_ttl.count())},
          1};
  auto r = co_await run_script(std::move(c_));
  if (!r) co_return r.error();
  const auto& v = *r;
  if (v.is_error()) co_return script_error(v);
  if (!v.is_array() || v.elements.size() != 3 || !v.elements[0].is_integer())
    co_return error_code(redis_errc::unexpected_reply);
  co_return run_record{v.elements[0].integer == 1, str_or_empty(v.elements[1]),
                       str_or_empty(v.elements[2])};
}

net::awaitable<result<std::optional<run_record>>> redis_stream_store::find_run(
    std::string request_id) {
  if (!valid_name(request_id)) co_return error_code(redis_errc::invalid_argument);
  auto r = co_await client_.command(make_args("HMGET", run_key(request_id), "stream", "owner"));
  if (!r) co_return r.error();
  if (r->is_error()) co_return error_code(redis_errc::server_error);
  if (!r->is_array() || r->elements.size() != 2) co_return error_code(redis_errc::unexpected_reply);
  if (r->elements[0].is_nil()) co_return std::optional<run_record>();
  co_return std::optional<run_record>(
      run_record{false, str_or_empty(r->elements[0]), str_or_empty(r->elements[1])});
}

net::awaitable<result<void>> redis_stream_store::acquire_lease(std::string stream_id) {
  if (!valid_name(stream_id)) co_return error_code(redis_errc::invalid_argument);
  // The node name first (so a cancel finds it), then the lease.
  auto node =
      co_await client_.command(make_args("HSET", meta_key(stream_id), "node", opts_.node_id));
  if (!node) co_return node.error();
  if (node->is_error()) co_return error_code(redis_errc::server_error);
  call c_{s_lease,
          {std::string(leases_key), stream_id, std::to_string(opts_.run_lease.count()), "acquire"},
          1};
  auto r = co_await run_script(std::move(c_));
  if (!r) co_return r.error();
  if (r->is_error()) co_return error_code(redis_errc::server_error);
  co_return result<void>();
}

net::awaitable<result<lease_state>> redis_stream_store::renew_lease(std::string stream_id) {
  if (!valid_name(stream_id)) co_return error_code(redis_errc::invalid_argument);
  call c_{s_lease,
          {std::string(leases_key), stream_id, std::to_string(opts_.run_lease.count()), "renew"},
          1};
  auto r = co_await run_script(std::move(c_));
  if (!r) co_return r.error();
  if (r->is_error()) co_return error_code(redis_errc::server_error);
  if (!r->is_integer()) co_return error_code(redis_errc::unexpected_reply);
  lease_state s;
  s.held = r->integer == 1;
  auto c = co_await client_.command(make_args("HGET", meta_key(stream_id), "cancel"));
  if (!c) co_return c.error();
  s.cancel_reason = str_or_empty(*c);
  co_return s;
}

net::awaitable<result<void>> redis_stream_store::release_lease(std::string stream_id) {
  if (!valid_name(stream_id)) co_return error_code(redis_errc::invalid_argument);
  auto r = co_await client_.command(make_args("ZREM", std::string(leases_key), stream_id));
  if (!r) co_return r.error();
  if (r->is_error()) co_return error_code(redis_errc::server_error);
  co_return result<void>();
}

net::awaitable<result<std::vector<std::string>>> redis_stream_store::claim_expired_leases(
    std::size_t limit) {
  limit = std::clamp<std::size_t>(limit, 1, 10'000);
  call c_{s_claim, {std::string(leases_key), std::to_string(limit)}, 1};
  auto r = co_await run_script(std::move(c_));
  if (!r) co_return r.error();
  if (r->is_error()) co_return error_code(redis_errc::server_error);
  if (!r->is_array()) co_return error_code(redis_errc::unexpected_reply);
  std::vector<std::string> ids;
  for (auto& e : r->elements)
    if (e.is_string() && valid_name(e.str)) ids.push_back(std::move(e.str));
  co_return ids;
}

net::awaitable<result<published>> redis_stream_store::end_lost_run(std::string stream_id) {
  publish_batch b;
  b.stream_id = std::move(stream_id);
  b.events.push_back(
      {"error",
       R"({"code":"producer_lost","message":"the node running this stream's producer stopped renewing its lease"})"});
  b.final_state = "finished";
  b.writer = publish_writer::lost;
  b.new_epoch = new_epoch();
  co_return co_await publish(std::move(b));
}

net::awaitable<result<cancel_outcome>> redis_stream_store::request_cancel(std::string stream_id,
                                                                          std::string reason) {
  if (!valid_name(stream_id) || reason.empty() || reason.size() > 256)
    co_return error_code(redis_errc::invalid_argument);
  call c_{s_cancel, {meta_key(stream_id), reason, cancel_channel(""), stream_id}, 1};
  auto r = co_await run_script(std::move(c_));
  if (!r) co_return r.error();
  const auto& v = *r;
  if (v.is_error()) co_return script_error(v);
  if (!v.is_array() || v.elements.size() != 3 || !v.elements[2].is_integer())
    co_return error_code(redis_errc::unexpected_reply);
  co_return cancel_outcome{str_or_empty(v.elements[0]), str_or_empty(v.elements[1]),
                           v.elements[2].integer};
}

net::awaitable<result<void>> redis_stream_store::mark_read(std::vector<std::string> stream_ids,
                                                           std::chrono::milliseconds ttl) {
  if (stream_ids.empty()) co_return result<void>();
  std::vector<command_args> cmds;
  cmds.reserve(stream_ids.size());
  for (const auto& id : stream_ids) {
    if (!valid_name(id)) co_return error_code(redis_errc::invalid_argument);
    cmds.push_back(make_args("SET", readers_key(id), opts_.node_id, "PX",
                             std::to_string(std::max<long long>(1, ttl.count()))));
  }
  auto r = co_await client_.pipeline(std::move(cmds));
  if (!r) co_return r.error();
  co_return result<void>();
}

net::awaitable<result<std::vector<bool>>> redis_stream_store::read_elsewhere(
    std::vector<std::string> stream_ids) {
  std::vector<bool> out;
  if (stream_ids.empty()) co_return out;
  std::vector<command_args> cmds;
  cmds.reserve(stream_ids.size());
  for (const auto& id : stream_ids) {
    if (!valid_name(id)) co_return error_code(redis_errc::invalid_argument);
    cmds.push_back(make_args("EXISTS", readers_key(id)));
  }
  auto r = co_await client_.pipeline(std::move(cmds));
  if (!r) co_return r.error();
  for (const auto& v : *r) out.push_back(v.is_integer() && v.integer > 0);
  co_return out;
}

net::awaitable<result<std::string>> redis_stream_store::cancel_reason(std::string stream_id) {
  if (!valid_name(stream_id)) co_return error_code(redis_errc::invalid_argument);
  auto c = co_await client_.command(make_args("HGET", meta_key(stream_id), "cancel"));
  if (!c) co_return c.error();
  co_return str_or_empty(*c);
}

std::string redis_stream_store::readers_key(std::string_view id) {
  return "{s:" + std::string(id) + "}:read";
}

}  // namespace sluice::redis
