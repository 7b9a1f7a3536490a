// Post-processing of ranked search results: fusing the lists of several
// sub-queries and removing duplicates.
//
// Near-duplicate measure: each text becomes the set of its 2-shingles over
// unfiltered tokens (words and CJK bigrams, see text.hpp analyze() with stop
// words kept and no stemming). Two texts are near-duplicates when the
// Jaccard similarity of those sets is >= jaccard_threshold, or when the 64-bit
// SimHash fingerprints of the sets differ in <= max_hamming bits. SimHash
// alone is cheap but noisy on passage-length texts; the exact Jaccard catches
// the lightly edited copies SimHash misses. Result lists are short (tens of
// hits), so the pairwise check is fine.
//
// Pure and thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "search/search_index.hpp"

namespace sluice::search {

std::vector<std::uint64_t> shingle_hashes(std::string_view text);  // sorted, unique
std::uint64_t simhash64(const std::vector<std::uint64_t>& shingles);
int hamming_distance(std::uint64_t a, std::uint64_t b);
double jaccard(const std::vector<std::uint64_t>& a, const std::vector<std::uint64_t>& b);

struct dedup_options {
  double jaccard_threshold = 0.6;
  int max_hamming = 3;
};

// Keeps hits in order, dropping any hit whose source id was already kept or
// whose text is a near-duplicate of a kept hit: with the list ranked best
// first, the better-ranked copy always survives.
std::vector<search_hit> dedup_hits(std::vector<search_hit> ranked,
                                   const dedup_options& options = {});

// Reciprocal rank fusion: score(hit) = sum over lists of 1 / (k + rank), rank
// 1-based. Hits are identified by source id; the fused score replaces
// search_hit::score. Result sorted best first, ties by first appearance.
std::vector<search_hit> fuse_ranked_lists(const std::vector<std::vector<search_hit>>& lists,
                                          double k = 60.0);

}  // namespace sluice::search
