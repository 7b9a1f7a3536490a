#include "search/result_dedup.hpp"

#include <algorithm>
#include <bit>
#include <unordered_map>
#include <unordered_set>

#include "search/text.hpp"

namespace sluice::search {
namespace {

// FNV-1a, then a 64-bit finalizer (splitmix64) so that SimHash bits are well mixed.
std::uint64_t hash_bytes(std::string_view bytes) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return h;
}

}  // namespace

std::vector<std::uint64_t> shingle_hashes(std::string_view text) {
  const std::vector<std::string> tokens = analyze(text, {.drop_stop_words = false, .stem = false});
  std::vector<std::uint64_t> hashes;
  if (tokens.size() == 1) hashes.push_back(hash_bytes(tokens.front()));
  for (std::size_t i = 0; i + 1 < tokens.size(); ++i) {
    hashes.push_back(hash_bytes(tokens[i] + '\x1f' + tokens[i + 1]));
  }
  std::sort(hashes.begin(), hashes.end());
  hashes.erase(std::unique(hashes.begin(), hashes.end()), hashes.end());
  return hashes;
}

std::uint64_t simhash64(const std::vector<std::uint64_t>& shingles) {
  int weights[64] = {};
  for (std::uint64_t h : shingles) {
    for (int bit = 0; bit < 64; ++bit) weights[bit] += ((h >> bit) & 1U) ? 1 : -1;
  }
  std::uint64_t fingerprint = 0;
  for (int bit = 0; bit < 64; ++bit) {
    if (weights[bit] > 0) fingerprint |= (std::uint64_t{1} << bit);
  }
  return fingerprint;
}

int hamming_distance(std::uint64_t a, std::uint64_t b) {
  return std::popcount(a ^ b);
}

double jaccard(const std::vector<std::uint64_t>& a, const std::vector<std::uint64_t>& b) {
  if (a.empty() && b.empty()) return 1.0;
  std::size_t common = 0;
  auto i = a.begin();
  auto j = b.begin();
  while (i != a.end() && j != b.end()) {
    if (*i < *j) {
      ++i;
    } else if (*j < *i) {
      ++j;
    } else {
      ++common, ++i, ++j;
    }
  }
  return static_cast<double>(common) / static_cast<double>(a.size() + b.size() - common);
}

std::vector<search_hit> dedup_hits(std::vector<search_hit> ranked, const dedup_options& options) {
  struct kept_fingerprint {
    std::vector<std::uint64_t> shingles;
    std::uint64_t simhash;
  };
  std::vector<search_hit> kept;
  std::vector<kept_fingerprint> fingerprints;
  std::unordered_set<std::string> seen_sources;
  for (search_hit& hit : ranked) {
    if (seen_sources.count(hit.source_id) > 0) continue;
    kept_fingerprint fp{shingle_hashes(hit.text), 0};
    fp.simhash = simhash64(fp.shingles);
    const bool near_duplicate =
        std::any_of(fingerprints.begin(), fingerprints.end(), [&](const kept_fingerprint& other) {
          // Empty texts have no shingles: their fingerprints say nothing.
          if (fp.shingles.empty() || other.shingles.empty()) return false;
          return hamming_distance(fp.simhash, other.simhash) <= options.max_hamming ||
                 jaccard(fp.shingles, other.shingles) >= options.jaccard_threshold;
        });
    if (near_duplicate) continue;
    seen_sources.insert(hit.source_id);
    fingerprints.push_back(std::move(fp));
    kept.push_back(std::move(hit));
  }
  return kept;
}

std::vector<search_hit> fuse_ranked_lists(const std::vector<std::vector<search_hit>>& lists,
                                          double k) {
  std::vector<search_hit> fused;
  std::unordered_map<std::string, std::size_t> index_of;
  for (const std::vector<search_hit>& list : lists) {
    std::unordered_set<std::string> seen_in_list;  // a list counts a source once
    for (std::size_t rank = 0; rank < list.size(); ++rank) {
      const search_hit& hit = list[rank];
      if (!seen_in_list.insert(hit.source_id).second) continue;
      const double contribution = 1.0 / (k + static_cast<double>(rank + 1));
      auto [it, inserted] = index_of.emplace(hit.source_id, fused.size());
      if (inserted) {
        fused.push_back(hit);
        fused.back().score = contribution;
      } else {
        fused[it->second].score += contribution;
      }
    }
  }
  std::stable_sort(fused.begin(), fused.end(),
                   [](const search_hit& a, const search_hit& b) { return a.score > b.score; });
  return fused;
}

}  // namespace sluice::search
