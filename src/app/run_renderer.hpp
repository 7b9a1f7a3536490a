// Renders an agent run's messages (AgentResponse JSON) in a terminal, as they
// stream: a live status line, the plan with step progress, tool results, the
// answer as it arrives, and the sources at the end. With `json` it prints the
// raw events instead, one per line.
//
// Thread-safety: none; feed it from one thread.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::app {

class run_renderer {
 public:
  run_renderer(std::FILE* out, bool json, bool tty);

  // One SSE event of the run: its id, type and data.
  void on_event(std::string_view id, std::string_view type, std::string_view data);
  // A connection state change or an error outside the run's messages.
  void on_note(std::string_view text);
  // True once the run's final message was seen.
  bool finished() const { return finished_; }
  // 0 after a result, 1 after an error, 130 after cancellation.
  int exit_code() const { return exit_code_; }

 private:
  void status_line(const std::string& text);
  void end_status_line();

  std::FILE* out_;
  bool json_;
  bool tty_;
  bool status_shown_ = false;
  bool answer_started_ = false;
  bool finished_ = false;
  int exit_code_ = 0;
  std::vector<std::string> plan_status_;
};

}  // namespace sluice::app
