// Copyright © 2026 mlx-lowbit contributors.

#include "mlx_lowbit/codebook_cluster.h"

#include <algorithm>
#include <bit>
#include <numeric>

namespace mlx_lowbit {

namespace {

// splitmix64: a fixed generator, since <random>'s distributions differ
// between standard libraries and the codebook must not.
struct Rng {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() {
    return double(next() >> 11) * 0x1.0p-53;
  }
};

// Nearest centroid of every pattern of the v-cube by a multi-source
// breadth-first search: O(2^v * v) whatever the number of centroids. Among
// equally near centroids the lowest index wins.
std::vector<uint32_t> nearest_centroids(const std::vector<uint32_t>& centroids, int v) {
  const uint32_t size = 1u << v;
  constexpr uint32_t kNone = ~0u;
  std::vector<uint32_t> label(size, kNone);
  std::vector<uint32_t> frontier, next;
  for (uint32_t i = 0; i < centroids.size(); ++i) {
    if (label[centroids[i]] == kNone) {
      label[centroids[i]] = i;
      frontier.push_back(centroids[i]);
    }
  }
  std::vector<uint8_t> in_next(size, 0);
  while (!frontier.empty()) {
    next.clear();
    for (uint32_t p : frontier) {
      for (int b = 0; b < v; ++b) {
        uint32_t q = p ^ (1u << b);
        if (label[q] == kNone || (in_next[q] && label[p] < label[q])) {
          if (label[q] == kNone) {
            in_next[q] = 1;
            next.push_back(q);
          }
          label[q] = label[p];
        }
      }
    }
    for (uint32_t q : next) {
      in_next[q] = 0;
    }
    frontier.swap(next);
  }
  return label;
}

// k-means++ seeding on the weighted histogram.
std::vector<uint32_t> seed_centroids(
    const std::vector<uint32_t>& present, const std::vector<uint64_t>& hist, size_t k, Rng& rng) {
  std::vector<uint32_t> centroids;
  std::vector<double> d2(present.size(), 0.0);
  auto pick = [&](const std::vector<double>& weight) {
    double total = std::accumulate(weight.begin(), weight.end(), 0.0);
    double target = rng.uniform() * total;
    for (size_t i = 0; i < weight.size(); ++i) {
      target -= weight[i];
      if (target < 0.0 && weight[i] > 0.0) {
        return i;
      }
    }
    // Rounding left target >= 0: take the last candidate with weight.
    for (size_t i = weight.size(); i-- > 0;) {
      if (weight[i] > 0.0) {
        return i;
      }
    }
    return size_t(0);
  };
  std::vector<double> weight(present.size());
  for (size_t i = 0; i < present.size(); ++i) {
    weight[i] = double(hist[present[i]]);
  }
  uint32_t first = present[pick(weight)];
  centroids.push_back(first);
  for (size_t i = 0; i < present.size(); ++i) {
    int d = std::popcount(present[i] ^ first);
    d2[i] = double(d) * d;
  }
  while (centroids.size() < k) {
    for (size_t i = 0; i < present.size(); ++i) {
      weight[i] = double(hist[present[i]]) * d2[i];
    }
    uint32_t c = present[pick(weight)];
    centroids.push_back(c);
    for (size_t i = 0; i < present.size(); ++i) {
      int d = std::popcount(present[i] ^ c);
      d2[i] = std::min(d2[i], double(d) * d);
    }
  }
  return centroids;
}

} // namespace

PatternClustering cluster_patterns(
    const std::vector<uint64_t>& hist, int v, int c, uint64_t seed, int max_iters) {
  const uint32_t size = 1u << v;
  const size_t k = size_t(1) << c;
  PatternClustering out;
  std::vector<uint32_t> present;
  for (uint32_t p = 0; p < size; ++p) {
    if (hist[p]) {
      present.push_back(p);
    }
  }
  if (present.size() <= k) {
    // Every pattern that occurs gets its own entry: the codebook is exact.
    // The remaining entries hold unused patterns so that none repeats.
    out.centroids = present;
    for (uint32_t p = 0; out.centroids.size() < k; ++p) {
      if (!hist[p]) {
        out.centroids.push_back(p);
      }
    }
    out.nearest = nearest_centroids(out.centroids, v);
    return out;
  }
  Rng rng{seed};
  out.centroids = seed_centroids(present, hist, k, rng);
  out.nearest = nearest_centroids(out.centroids, v);
  std::vector<uint64_t> ones(k * v), members(k);
  for (int iter = 0; iter < max_iters; ++iter) {
    // Majority vote per bit, weighted by how often each pattern occurs.
    std::fill(ones.begin(), ones.end(), 0);
    std::fill(members.begin(), members.end(), 0);
    for (uint32_t p : present) {
      uint32_t j = out.nearest[p];
      members[j] += hist[p];
      for (int b = 0; b < v; ++b) {
        ones[size_t(j) * v + b] += ((p >> b) & 1u) * hist[p];
      }
    }
    std::vector<uint32_t> updated = out.centroids;
    for (size_t j = 0; j < k; ++j) {
      if (members[j] == 0) {
        continue; // refilled below
      }
      uint32_t pattern = 0;
      for (int b = 0; b < v; ++b) {
        uint64_t one = ones[j * v + b], zero = members[j] - one;
        bool bit = one == zero ? (out.centroids[j] >> b) & 1u : one > zero;
        pattern |= uint32_t(bit) << b;
      }
      updated[j] = pattern;
    }
    // An empty cluster takes the pattern that costs the most where it is.
    std::vector<uint8_t> taken(size, 0);
    for (uint32_t p : updated) {
      taken[p] = 1;
    }
    for (size_t j = 0; j < k; ++j) {
      if (members[j] != 0) {
        continue;
      }
      uint64_t worst = 0;
      uint32_t choice = updated[j];
      for (uint32_t p : present) {
        uint64_t cost = hist[p] * uint64_t(std::popcount(p ^ updated[out.nearest[p]]));
        if (cost > worst && !taken[p]) {
          worst = cost;
          choice = p;
        }
      }
      updated[j] = choice;
      taken[choice] = 1;
    }
    std::vector<uint32_t> nearest = nearest_centroids(updated, v);
    bool stable = updated == out.centroids;
    out.centroids = std::move(updated);
    out.nearest = std::move(nearest);
    if (stable) {
      break;
    }
  }
  return out;
}

} // namespace mlx_lowbit
