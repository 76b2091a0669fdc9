// Scalar row ops, shared by the SIMD tables for ops that are not worth
// vectorising (they run once per token on a few thousand values).
#pragma once

#include <cstdint>

namespace cria::kernels {

void ref_rmsnorm(const float* x, const float* w, float eps, int64_t n, float* y);
void ref_layernorm(const float* x, const float* w, const float* b, float eps, int64_t n, float* y);
void ref_swiglu(const float* gate, const float* up, int64_t n, float* out);
void ref_gelu(float* x, int64_t n);
void ref_add(float* y, const float* x, int64_t n);
void ref_rope(float* x, int64_t heads, int64_t d, const float* cos, const float* sin);

}  // namespace cria::kernels
