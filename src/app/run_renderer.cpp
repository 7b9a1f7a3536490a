#include "app/run_renderer.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace sluice::app {

namespace json = boost::json;

namespace {
std::string str(const json::object& o, const char* key) {
  const json::value* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}
}  // namespace

run_renderer::run_renderer(std::FILE* out, bool json, bool tty) : out_(out), json_(json), tty_(tty) {}

void run_renderer::status_line(const std::string& text) {
  if (tty_) {
    std::fprintf(out_, "\r\x1b[2K\x1b[2m%s\x1b[0m", text.c_str());
    status_shown_ = true;
  } else {
    std::fprintf(out_, "%s\n", text.c_str());
  }
  std::fflush(out_);
}

void run_renderer::end_status_line() {
  if (tty_ && status_shown_) std::fprintf(out_, "\r\x1b[2K");
  status_shown_ = false;
}

void run_renderer::on_note(std::string_view text) {
  if (json_) return;
  end_status_line();
  std::fprintf(stderr, "[%.*s]\n", static_cast<int>(text.size()), text.data());
}

void run_renderer::on_event(std::string_view id, std::string_view type, std::string_view data) {
  boost::system::error_code ec;
  json::value v = json::parse(data, ec);
  if (json_) {
    json::object line;
    line["id"] = id;
    line["event"] = type;
    line["data"] = ec ? json::value(json::string(data)) : v;
    std::fprintf(out_, "%s\n", json::serialize(line).c_str());
    std::fflush(out_);
  }
  if (type == "cancelled") {
    finished_ = true;
    exit_code_ = 130;
    if (!json_) {
      end_status_line();
      std::fprintf(out_, "\n[run cancelled]\n");
    }
    return;
  }
  if (ec || !v.is_object()) return;
  const json::object& o = v.as_object();
  const std::string mt = str(o, "messageType");
  const bool is_final = o.contains("isFinal") && o.at("isFinal").is_bool() && o.at("isFinal").as_bool();
  if (is_final) {
    finished_ = true;
    exit_code_ = mt == "error" ? 1 : 0;
  }
  if (json_) return;

  if (mt == "status") {
    status_line("… " + str(o, "message"));
  } else if (mt == "plan" && o.contains("plan")) {
    const auto& p = o.at("plan").as_object();
    const auto& steps = p.at("steps").as_array();
    const auto& st = p.at("stepStatus").as_array();
    if (plan_status_.empty()) {
      end_status_line();
      std::fprintf(out_, "Plan: %s\n", str(p, "title").c_str());
      for (std::size_t i = 0; i < steps.size(); ++i)
        std::fprintf(out_, "  %zu. %s\n", i + 1, std::string(steps[i].as_string()).c_str());
      plan_status_.assign(steps.size(), "not_started");
    }
    for (std::size_t i = 0; i < st.size() && i < plan_status_.size(); ++i) {
      std::string now(st[i].as_string());
      if (now == plan_status_[i]) continue;
      plan_status_[i] = now;
      if (now == "in_progress")
        status_line("▶ step " + std::to_string(i + 1) + ": " + std::string(steps[i].as_string()));
      else if (now == "completed") {
        end_status_line();
        if (answer_started_) std::fputc('\n', out_);
        std::fprintf(out_, "  ✓ step %zu done\n", i + 1);
      }
    }
  } else if (mt == "tool_result" && o.contains("toolResult")) {
    const auto& tr = o.at("toolResult").as_object();
    std::size_t docs = 0;
    if (auto* sr = o.if_contains("searchResult"))
      if (auto* d = sr->as_object().if_contains("docs")) docs = d->as_array().size();
    status_line("  " + str(tr, "toolName") + ": " + std::to_string(docs) + " sources");
  } else if (mt == "tool_thought") {
    end_status_line();
    std::fprintf(out_, "  thought: %s\n", str(o, "toolThought").c_str());
  } else if (mt == "agent_stream") {
    if (!answer_started_) {
      end_status_line();
      std::fprintf(out_, "\nAnswer:\n");
      answer_started_ = true;
    }
    std::fputs(str(o, "result").c_str(), out_);
    std::fflush(out_);
  } else if (mt == "result") {
    end_status_line();
    if (!answer_started_) std::fprintf(out_, "\nAnswer:\n%s", str(o, "result").c_str());
    std::fprintf(out_, "\n");
    if (auto* rm = o.if_contains("resultMap"); rm && rm->is_object())
      if (auto* docs = rm->as_object().if_contains("docs"); docs && docs->is_array() && !docs->as_array().empty()) {
        std::fprintf(out_, "\nSources:\n");
        for (const auto& d : docs->as_array()) {
          const auto& doc = d.as_object();
          std::fprintf(out_, "  [%lld] %s — %s (%s)\n",
                       static_cast<long long>(doc.at("index").to_number<std::int64_t>()),
                       str(doc, "title").c_str(), str(doc, "heading").c_str(), str(doc, "path").c_str());
        }
      }
  } else if (mt == "error") {
    end_status_line();
    std::fprintf(out_, "\nerror: %s\n", str(o, "message").c_str());
  }
  std::fflush(out_);
}

}  // namespace sluice::app
