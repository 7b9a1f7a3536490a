// RESP (Redis protocol, version 2) values and a bounded reader over hiredis's
// parser (`redisReader`, hiredis 0.14). hiredis parses; this wrapper builds
// our own value tree and enforces limits: every bulk length, array length and
// the bytes buffered for one reply are checked against `resp_limits` before
// anything is allocated for them, so a hostile or broken peer gets a
// protocol error, never a huge allocation. No Asio.
//
// Thread-safety: a resp_reader is used by one thread at a time.
#pragma once

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct redisReader;

namespace sluice::redis {

struct resp_value {
  enum class kind : std::uint8_t { nil, string, status, error, integer, array };
  kind type = kind::nil;
  std::string str;                   // string, status, error
  long long integer = 0;             // integer
  std::vector<resp_value> elements;  // array

  bool is_nil() const { return type == kind::nil; }
  bool is_error() const { return type == kind::error; }
  bool is_string() const { return type == kind::string || type == kind::status; }
  bool is_integer() const { return type == kind::integer; }
  bool is_array() const { return type == kind::array; }
};

struct resp_limits {
  std::size_t max_bulk_bytes = 64u << 20;       // one bulk string
  std::size_t max_array_elements = 1u << 20;    // one array
  std::size_t max_reply_values = 4u << 20;      // all values of one reply
  std::size_t max_buffered_bytes = 128u << 20;  // bytes fed and not yet a reply
};

class resp_reader {
 public:
  explicit resp_reader(resp_limits limits = {});
  ~resp_reader();
  resp_reader(const resp_reader&) = delete;
  resp_reader& operator=(const resp_reader&) = delete;

  // Appends bytes from the wire. Fails with reply_too_large when more than
  // max_buffered_bytes wait without forming a reply.
  boost::system::error_code feed(std::string_view bytes);
  // The next complete reply, nullopt when more bytes are needed, or
  // protocol_error / reply_too_large (then the reader is unusable: the
  // connection must be closed).
  boost::system::result<std::optional<resp_value>> next();

  // The exact wire form of a command (an array of bulk strings).
  static void append_command(std::string& out, const std::vector<std::string>& args);
  static void append_command(std::string& out, std::initializer_list<std::string_view> args);

  // Bookkeeping used by the hiredis callbacks; not for callers.
  struct state;

 private:
  ::redisReader* reader_;
  std::unique_ptr<state> state_;
};

}  // namespace sluice::redis
