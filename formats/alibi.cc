#include "formats/alibi.h"

#include <algorithm>
#include <cmath>

#include "quant/fp16.h"

namespace cria {

std::vector<float> alibi_slopes(uint32_t n) {
  // transformers build_alibi_tensor, in double as torch evaluates the
  // powers, rounded to f32 once.
  const uint32_t closest = 1u << (uint32_t)std::floor(std::log2((double)n));
  const double base = std::pow(2.0, -std::pow(2.0, -(std::log2((double)closest) - 3)));
  std::vector<float> s;
  for (uint32_t p = 1; p <= closest; ++p) s.push_back((float)std::pow(base, (double)p));
  if (closest != n) {
    const double extra = std::pow(2.0, -std::pow(2.0, -(std::log2(2.0 * closest) - 3)));
    const uint32_t remaining = std::min(closest, n - closest);
    for (uint32_t p = 1; p < 1 + 2 * remaining; p += 2) s.push_back((float)std::pow(extra, (double)p));
  }
  return s;
}

std::vector<float> alibi_slopes_bf16(uint32_t n) {
  std::vector<float> s = alibi_slopes(n);
  for (float& a : s) a = bf16_to_f32(f32_to_bf16(a));
  return s;
}

}  // namespace cria
