#include "redis/resp_reader.hpp"

#include <hiredis/read.h>

#include <new>

#include "redis/redis_error.hpp"

namespace sluice::redis {

struct resp_reader::state {
  resp_limits limits;
  std::size_t values = 0;   // of the reply being built
  bool over_limit = false;  // a callback refused a value for a limit
};

namespace {

using state = resp_reader::state;

// hiredis builds a reply bottom-up through these callbacks: a child is created
// after its parent array, at task->idx. The root is owned by hiredis until
// redisReaderGetReply hands it out (or freeObject drops it); children live in
// their parent's `elements`, pre-sized by createArray, so their addresses are
// stable. Returning nullptr makes hiredis fail the parse ("out of memory"),
// which next() reports as reply_too_large when a limit caused it.

resp_value* place(const redisReadTask* task, resp_value v) {
  auto* st = static_cast<state*>(task->privdata);
  if (++st->values > st->limits.max_reply_values) {
    st->over_limit = true;
    return nullptr;
  }
  if (task->parent != nullptr) {
    auto* parent = static_cast<resp_value*>(task->parent->obj);
    if (task->idx < 0 || static_cast<std::size_t>(task->idx) >= parent->elements.size())
      return nullptr;
    auto& slot = parent->elements[static_cast<std::size_t>(task->idx)];
    slot = std::move(v);
    return &slot;
  }
  return new (std::nothrow) resp_value(std::move(v));
}

void* create_string(const redisReadTask* task, char* str, size_t len) {
  auto* st = static_cast<state*>(task->privdata);
  if (len > st->limits.max_bulk_bytes) {
    st->over_limit = true;
    return nullptr;
  }
  resp_value v;
  switch (task->type) {
    case REDIS_REPLY_ERROR:
      v.type = resp_value::kind::error;
      break;
    case REDIS_REPLY_STATUS:
      v.type = resp_value::kind::status;
      break;
    default:
      v.type = resp_value::kind::string;
  }
  try {
    v.str.assign(str, len);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
  return place(task, std::move(v));
}

void* create_array(const redisReadTask* task, int elements) {
  auto* st = static_cast<state*>(task->privdata);
  if (elements < 0 || static_cast<std::size_t>(elements) > st->limits.max_array_elements) {
    st->over_limit = true;
    return nullptr;
  }
  resp_value v;
  v.type = resp_value::kind::array;
  try {
    v.elements.resize(static_cast<std::size_t>(elements));
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
  return place(task, std::move(v));
}

void* create_integer(const redisReadTask* task, long long value) {
  resp_value v;
  v.type = resp_value::kind::integer;
  v.integer = value;
  return place(task, std::move(v));
}

void* create_nil(const redisReadTask* task) {
  return place(task, resp_value{});
}

void free_object(void* obj) {
  delete static_cast<resp_value*>(obj);
}

redisReplyObjectFunctions functions = {create_string, create_array, create_integer, create_nil,
                                       free_object};

}  // namespace

resp_reader::resp_reader(resp_limits limits)
    : reader_(redisReaderCreateWithFunctions(&functions)), state_(std::make_unique<state>()) {
  if (reader_ == nullptr) throw std::bad_alloc();
  state_->limits = limits;
  reader_->privdata = state_.get();  // (the macro casts the pointer to int)
}

resp_reader::~resp_reader() {
  redisReaderFree(reader_);
}

boost::system::error_code resp_reader::feed(std::string_view bytes) {
  if (bytes.empty()) return {};
  if (reader_->len - reader_->pos + bytes.size() > state_->limits.max_buffered_bytes)
    return redis_errc::reply_too_large;
  if (redisReaderFeed(reader_, bytes.data(), bytes.size()) != REDIS_OK)
    return redis_errc::protocol_error;
  return {};
}

boost::system::result<std::optional<resp_value>> resp_reader::next() {
  void* reply = nullptr;
  if (redisReaderGetReply(reader_, &reply) != REDIS_OK) {
    return state_->over_limit ? redis_errc::reply_too_large : redis_errc::protocol_error;
  }
  if (reply == nullptr) return std::optional<resp_value>();
  state_->values = 0;
  std::unique_ptr<resp_value> owned(static_cast<resp_value*>(reply));
  return std::optional<resp_value>(std::move(*owned));
}

namespace {

void append_bulk(std::string& out, std::string_view a) {
  out += '$';
  out += std::to_string(a.size());
  out += "\r\n";
  out.append(a.data(), a.size());
  out += "\r\n";
}

}  // namespace

void resp_reader::append_command(std::string& out, const std::vector<std::string>& args) {
  out += '*';
  out += std::to_string(args.size());
  out += "\r\n";
  for (const auto& a : args) append_bulk(out, a);
}

void resp_reader::append_command(std::string& out, std::initializer_list<std::string_view> args) {
  out += '*';
  out += std::to_string(args.size());
  out += "\r\n";
  for (const auto a : args) append_bulk(out, a);
}

}  // namespace sluice::redis
