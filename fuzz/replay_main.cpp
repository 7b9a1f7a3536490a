// Runs the fuzz target on seeded random streams built from SSE-ish fragments,
// so the invariant is checked in every `make test` without a fuzzing engine.
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

int main() {
  const std::vector<std::string> pieces = {
      "data:", "data: ", "id:", "id: 7", "event: x", "retry: 10", ":", "\n", "\r", "\r\n",
      "\xEF\xBB\xBF", "x", "\xE4\xBD\xA0", std::string("\0", 1), "data", " ", "12a", "field"};
  std::mt19937 rng(20261122);
  std::size_t runs = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string s(1, static_cast<char>(rng() & 0xff));
    int n = static_cast<int>(rng() % 40);
    for (int k = 0; k < n; ++k) s += pieces[rng() % pieces.size()];
    LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
    ++runs;
  }
  std::printf("%zu passed, 0 failed\n", runs);
  return 0;
}
