// Replays a fuzz target's committed seed corpus without a fuzzing engine, so
// every compiler (and every `make test`, under the sanitizers too) runs the
// target: each file whole, each of its prefixes at a few cut points, and a
// fixed set of byte mutations of it (deterministic: a seeded generator).
// Usage: NAME_replay [CORPUS_DIR] (default: the target's committed corpus,
// fuzz/corpus/NAME, compiled in as SLUICE_FUZZ_CORPUS so the sanitizer runs
// need no argument).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

void run(const std::string& s) {
  // A copy of exactly `size` bytes, so ASan sees reads past the end.
  std::vector<std::uint8_t> buf(s.begin(), s.end());
  LLVMFuzzerTestOneInput(buf.data(), buf.size());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 2) {
    std::fprintf(stderr, "usage: %s [CORPUS_DIR]\n", argv[0]);
    return 2;
  }
  const char* dir = argc == 2 ? argv[1] : SLUICE_FUZZ_CORPUS;
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.is_regular_file()) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    std::fprintf(stderr, "no seed files in %s\n", dir);
    return 1;
  }
  std::mt19937 rng(20261202);
  std::size_t runs = 0;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    const std::string seed((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    run(seed);
    ++runs;
    for (std::size_t cut : {seed.size() / 4, seed.size() / 2, seed.size() * 3 / 4, seed.size() - 1})
      if (cut < seed.size()) {
        run(seed.substr(0, cut));
        ++runs;
      }
    for (int m = 0; m < 200 && !seed.empty(); ++m) {
      std::string s = seed;
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int k = 0; k < edits; ++k) {
        const std::size_t at = rng() % (s.size() + 1);
        switch (rng() % 4) {
          case 0:  // flip a byte
            if (at < s.size()) s[at] = static_cast<char>(rng() & 0xff);
            break;
          case 1:  // insert an interesting byte
            s.insert(at, 1, "\0\n\r\"{}[]:,\\\x7f\xff 9"[rng() % 16]);
            break;
          case 2:  // delete a run
            if (at < s.size()) s.erase(at, 1 + rng() % 8);
            break;
          default:  // duplicate a run
            if (at < s.size()) s.insert(at, s.substr(at, 1 + rng() % 16));
            break;
        }
      }
      run(s);
      ++runs;
    }
  }
  std::printf("%zu inputs from %zu seeds, 0 failed\n", runs, files.size());
  return 0;
}
