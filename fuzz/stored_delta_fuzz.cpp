// Fuzz target for core::delta_from_stored: a delta's key and data as read
// from Redis (untrusted). Input: message id, field, then the data (the rest),
// separated by '\n'. Whatever it accepts must be exactly the stored bytes
// with the text range inside them, and two copies appended to a log and read
// coalesced must give valid JSON whose field is the text twice (what a
// mirror's readers get).
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <cstdlib>
#include <memory>
#include <string>

#include "core/coalescer.hpp"
#include "core/stream_log.hpp"
#include "fuzz_input.hpp"

namespace {

struct no_waiter final : sluice::core::stream_waiter {
  void on_stream_ready() noexcept override {}
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  using namespace sluice::core;
  std::string_view in = sluice::fuzz::as_view(bytes, size);
  const std::string_view message_id = sluice::fuzz::take_line(in);
  const std::string_view field = sluice::fuzz::take_line(in);
  const std::string_view data = in;
  auto d = delta_from_stored("message", message_id, field, data);
  if (!d) return 0;
  if (d->json != data || d->message_id != message_id || d->field != field || d->text_begin == 0 ||
      d->text_begin > d->text_end || d->text_end >= data.size() || data[d->text_begin - 1] != '"' ||
      data[d->text_end] != '"')
    std::abort();
  auto log = std::make_shared<stream_log>("s", retention_limits{});
  log->publish(*d);
  log->publish(*d);
  no_waiter w;
  subscription sub(log, 1, w);
  read_batch b;
  if (sub.read(b, 1 << 20) != read_status::data || b.sse_events != 1 || b.spans.size() != 1)
    std::abort();
  // "id: 2\nevent: message\ndata: {...}\n\n"
  const std::string_view sse(b.spans[0].data, b.spans[0].size);
  const auto at = sse.find("data: ");
  if (at == std::string_view::npos || !sse.ends_with("\n\n")) std::abort();
  const std::string_view merged = sse.substr(at + 6, sse.size() - at - 8);
  boost::system::error_code ec;
  const boost::json::value v = boost::json::parse(merged, ec);
  if (ec || !v.is_object()) std::abort();
  const boost::json::value original = boost::json::parse(data, ec);
  if (ec) std::abort();
  const auto* text = v.as_object().if_contains(field);
  const auto& once = original.as_object().at(field).as_string();
  if (!text || !text->is_string() || text->as_string() != std::string(once) + std::string(once))
    std::abort();
  return 0;
}
