// Copyright © 2026 mlx-lowbit contributors.
//
// Clustering of v-bit sign patterns (v <= 16) into 2^c centroids under
// Hamming distance. Works on the histogram of the 2^v possible patterns, so
// the cost does not grow with the size of the weight.
#pragma once

#include <cstdint>
#include <vector>

namespace mlx_lowbit {

struct PatternClustering {
  std::vector<uint32_t> centroids; // 2^c patterns: the codebook
  std::vector<uint32_t> nearest;   // for each of the 2^v patterns, its centroid's index
};

// hist[p] = how often pattern p occurs. Deterministic for a given seed on
// every platform (own RNG, fixed tie-breaking: lower index wins).
PatternClustering cluster_patterns(
    const std::vector<uint64_t>& hist,
    int vector_size,
    int index_bits,
    uint64_t seed,
    int max_iters);

} // namespace mlx_lowbit
