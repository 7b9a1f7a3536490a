#include "llm/openai/openai_chunks.hpp"

#include <spdlog/spdlog.h>

#include <boost/json/parse.hpp>

#include "core/log_text.hpp"

namespace sluice::llm {

namespace json = boost::json;
using boost::system::error_code;
using outbound::excerpt;
using outbound::upstream_failure;

void set_upstream_error(chat_outcome& out, error_code ec, upstream_failure f, std::string detail,
                        unsigned http_status) {
  out.ec = ec;
  out.error_message = outbound::client_text("the model server", f, http_status);
  spdlog::warn("openai: {} ({})", core::log_escape(detail), outbound::code_of(f));
  out.error_detail = std::move(detail);
}

std::string error_value_message(const json::value& error) {
  if (const auto* s = error.if_string()) return std::string(*s);
  if (const auto* o = error.if_object()) {
    if (const auto* m = o->if_contains("message"); m && m->is_string())
      return std::string(m->get_string());
  }
  return {};
}

namespace {

std::int64_t int_field(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (!v) return 0;
  error_code ec;
  auto n = v->to_number<std::int64_t>(ec);
  return ec ? 0 : n;
}

}  // namespace

void chunk_listener::on_event(const core::sse_event& event) {
  if (done_ || failed_) return;
  if (event.data == "[DONE]") {
    done_ = true;
    return;
  }
  error_code ec;
  json::value v = json::parse(event.data, ec);
  if (ec || !v.is_object()) {
    fail(openai_errc::malformed_chunk,
         "malformed chunk from upstream: data is not a JSON object: " + excerpt(event.data));
    return;
  }
  const json::object& chunk = v.get_object();
  if (const auto* e = chunk.if_contains("error")) {
    std::string m = error_value_message(*e);
    fail(openai_errc::upstream_error,
         "upstream reported an error mid-stream: " + (m.empty() ? excerpt(event.data) : m));
    return;
  }
  const auto* choices = chunk.if_contains("choices");
  if (!choices || !choices->is_array()) {
    fail(openai_errc::malformed_chunk,
         "malformed chunk from upstream: no \"choices\" array: " + excerpt(event.data));
    return;
  }
  if (const auto* u = chunk.if_contains("usage"); u && u->is_object()) {
    out_.usage.prompt_tokens = int_field(u->get_object(), "prompt_tokens");
    out_.usage.completion_tokens = int_field(u->get_object(), "completion_tokens");
  }
  // The usage chunk has an empty choices array; only one choice is asked for.
  if (choices->get_array().empty()) return;
  const auto* choice = choices->get_array()[0].if_object();
  if (!choice) {
    fail(openai_errc::malformed_chunk,
         "malformed chunk from upstream: choices[0] is not an object: " + excerpt(event.data));
    return;
  }
  if (const auto* fr = choice->if_contains("finish_reason"); fr && fr->is_string())
    out_.finish_reason = std::string(fr->get_string());
  const auto* delta = choice->if_contains("delta");
  if (!delta || !delta->is_object()) return;
  // The first delta carries only the role; content may be absent or null.
  const auto* content = delta->get_object().if_contains("content");
  if (!content || !content->is_string() || content->get_string().empty()) return;
  std::string_view text = content->get_string();
  out_.text.append(text);
  if (on_delta_) on_delta_(text);
}

void chunk_listener::fail(openai_errc e, std::string message) {
  failed_ = true;
  set_upstream_error(out_, e,
                     e == openai_errc::upstream_error ? upstream_failure::reported_error
                                                      : upstream_failure::malformed,
                     std::move(message));
}

}  // namespace sluice::llm
