// Deterministic random data for tests.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace cria::test {

// n normally distributed values (mean 0, standard deviation `scale`).
inline std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

}  // namespace cria::test
