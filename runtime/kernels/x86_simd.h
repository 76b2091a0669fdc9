// Helpers shared by the x86 kernel translation units. Included only by
// files compiled with the matching -m flags. Internal linkage throughout, as
// in qkernel_common.h: the two x86 files are compiled for different ISAs.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace cria::kernels::x86 {
namespace {

inline int32_t load_i32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Decode reads each weight byte once, straight from memory, and the hardware
// prefetchers do not cross 4 KiB boundaries, so a one-token loop asks for
// the block kPrefetchBytes ahead itself (8B q4 decode at two threads: 7.7
// tok/s without, 9.1 with, medians of five; AVX2 6.9 and 8.7). Near the end
// of a matrix the address lies past it; a prefetch never faults.
constexpr int64_t kPrefetchBytes = 8192;
inline void prefetch_ahead(const uint8_t* block, int64_t bytes) {
  const char* p = reinterpret_cast<const char*>(block) + kPrefetchBytes;
  for (int64_t off = 0; off < bytes; off += 64) _mm_prefetch(p + off, _MM_HINT_T0);
}

#if defined(__AVX512F__)
// The vector operations qkernel_common.h's templates call, on 16 floats.
struct V512 {
  using F = __m512;
  static constexpr int kLanes = 16;
  static F splat(float x) { return _mm512_set1_ps(x); }
  static F zero() { return _mm512_setzero_ps(); }
  static F load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, F v) { _mm512_storeu_ps(p, v); }
  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F div(F a, F b) { return _mm512_div_ps(a, b); }
  static F neg(F a) { return _mm512_sub_ps(_mm512_setzero_ps(), a); }
  static F abs(F a) { return _mm512_and_ps(a, _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff))); }
  static F min(F a, F b) { return _mm512_min_ps(a, b); }
  static F max(F a, F b) { return _mm512_max_ps(a, b); }
  static F fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F fnma(F a, F b, F c) { return _mm512_fnmadd_ps(a, b, c); }
  static F round(F a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static F ldexp(F p, F n) { return _mm512_scalef_ps(p, n); }
  static F zero_below(F res, F x, F lo) {
    return _mm512_mask_mov_ps(res, _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ), _mm512_setzero_ps());
  }
  static F copysign(F mag, F sign) {
    const F absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    return _mm512_or_ps(mag, _mm512_andnot_ps(absmask, sign));
  }
};
#endif

#if defined(__AVX2__)
// The same operations on 8 floats.
struct V256 {
  using F = __m256;
  static constexpr int kLanes = 8;
  static F splat(float x) { return _mm256_set1_ps(x); }
  static F zero() { return _mm256_setzero_ps(); }
  static F load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, F v) { _mm256_storeu_ps(p, v); }
  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F div(F a, F b) { return _mm256_div_ps(a, b); }
  static F neg(F a) { return _mm256_sub_ps(_mm256_setzero_ps(), a); }
  static F abs(F a) { return _mm256_and_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff))); }
  static F min(F a, F b) { return _mm256_min_ps(a, b); }
  static F max(F a, F b) { return _mm256_max_ps(a, b); }
  static F fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F fnma(F a, F b, F c) { return _mm256_fnmadd_ps(a, b, c); }
  static F round(F a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // 2^n from the exponent bits.
  static F ldexp(F p, F n) {
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
  }
  static F zero_below(F res, F x, F lo) {
    return _mm256_blendv_ps(res, _mm256_setzero_ps(), _mm256_cmp_ps(x, lo, _CMP_LT_OQ));
  }
  static F copysign(F mag, F sign) {
    const F absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    return _mm256_or_ps(mag, _mm256_andnot_ps(absmask, sign));
  }
};

inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}
#endif

}  // namespace
}  // namespace cria::kernels::x86
