// The test suite's OpenAI-compatible fake server as a program, for trying
// `sluice serve --llm openai` / `sluice ask --llm openai` by hand:
//   build/tests/llm_openai/fake_openai_server
// prints its base URL and answers every chat completion with the canned
// streamed reply, until killed.
#include <csignal>
#include <cstdio>
#include <unistd.h>

#include "fake_openai_server.hpp"

int main() {
  sluice::test::fake_openai_server server;
  std::printf("%s\n", server.base_url().c_str());
  std::fflush(stdout);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  int sig = 0;
  sigwait(&set, &sig);
  return 0;
}
