// AVX-512 (F, BW, VL, VNNI) kernels. The int8-weight matmuls read one 16-row
// tile at a time: each 64-byte load is 16 rows x 4 columns, fed to vpdpbusd
// with 4 activation bytes broadcast; one 16-lane accumulator per token holds
// the tile's 16 outputs, so no horizontal reduction is needed.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "runtime/kernels/kernels.h"
#include "runtime/kernels/ref_ops.h"
#include "runtime/kernels/x86_simd.h"

namespace cria::kernels {

namespace {

using x86::exp512;
using x86::load_i32;

void quantize_acts_avx512(const float* x, int64_t n, int64_t cols, int8_t* q, float* d, float* s) {
  const int64_t nb = cols / 32;
  const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t b = 0; b < nb; ++b) {
      const float* xb = x + t * cols + b * 32;
      const __m512 a0 = _mm512_loadu_ps(xb), a1 = _mm512_loadu_ps(xb + 16);
      const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_and_ps(a0, absmask), _mm512_and_ps(a1, absmask)));
      const float db = amax / 127.0f;
      const float id = db != 0 ? 1.0f / db : 0.0f;
      const __m512 vid = _mm512_set1_ps(id);
      const __m512i i0 = _mm512_cvtps_epi32(_mm512_mul_ps(a0, vid));
      const __m512i i1 = _mm512_cvtps_epi32(_mm512_mul_ps(a1, vid));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + t * cols + b * 32), _mm512_cvtsepi32_epi8(i0));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + t * cols + b * 32 + 16), _mm512_cvtsepi32_epi8(i1));
      const int sum = _mm512_reduce_add_epi32(_mm512_add_epi32(i0, i1));
      d[t * nb + b] = db;
      s[t * nb + b] = db * (float)sum;
    }
  }
}

// Tokens per register block, and per cache block (their activations stay in
// L1/L2 while every tile of the range streams past).
constexpr int kTokBlock = 4;
constexpr int64_t kTokChunk = 64;

// The int8 dot products of one 32-column block of a tile with the tokens'
// activations, folded into float accumulators:
//   Q4, Q8: acc += d_w * (d_a * dot - zp * s_a)    (zp = 8 or 128)
//   Q4M:    acc += d_w * d_a * dot + m_w * s_a
// Loop order keeps the vpdpbusd chains independent: the i loop is outer,
// tokens inner, with two partial sums per token (even/odd groups), so no
// chain is longer than four dependent instructions.
template <QType T, int NT>
inline void block_dot(const uint8_t* qb, __m512 dw, __m512 mw, const int8_t* const* aq, const float* da,
                      const float* sa, __m512* acc) {
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  __m512i w[8];
  if (T == QType::kQ8) {
    for (int c = 0; c < 8; ++c) w[c] = _mm512_loadu_si512(qb + c * 64);
  } else {
    for (int c = 0; c < 4; ++c) {
      const __m512i v = _mm512_loadu_si512(qb + c * 64);
      w[2 * c] = _mm512_and_si512(v, m4);
      w[2 * c + 1] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
    }
  }
  // Q8 chunk c holds columns 4c..4c+3; Q4 low/high nibbles of chunk c hold
  // columns 8c..8c+3 and 8c+4..8c+7: in both cases w[i] pairs with
  // activation bytes 4i..4i+3.
  __m512i d0[NT], d1[NT];
  for (int j = 0; j < NT; ++j) d0[j] = d1[j] = _mm512_setzero_si512();
  for (int i = 0; i < 8; i += 2) {
    for (int j = 0; j < NT; ++j) {
      d0[j] = _mm512_dpbusd_epi32(d0[j], w[i], _mm512_set1_epi32(load_i32(aq[j] + 4 * i)));
      d1[j] = _mm512_dpbusd_epi32(d1[j], w[i + 1], _mm512_set1_epi32(load_i32(aq[j] + 4 * i + 4)));
    }
  }
  for (int j = 0; j < NT; ++j) {
    const __m512 fd = _mm512_cvtepi32_ps(_mm512_add_epi32(d0[j], d1[j]));
    if (T == QType::kQ4M) {
      acc[j] = _mm512_fmadd_ps(mw, _mm512_set1_ps(sa[j]), _mm512_fmadd_ps(dw, _mm512_mul_ps(fd, _mm512_set1_ps(da[j])), acc[j]));
    } else {
      const float zp = T == QType::kQ8 ? 128.0f : 8.0f;
      acc[j] = _mm512_fmadd_ps(dw, _mm512_fmsub_ps(fd, _mm512_set1_ps(da[j]), _mm512_set1_ps(zp * sa[j])), acc[j]);
    }
  }
}

// One tile against NT tokens starting at t0.
template <QType T, int NT>
inline void tile_tokens(const QLayout& l, const uint8_t* qt, const uint16_t* st, const uint16_t* mt, const QActs& a,
                        int64_t t0, float* y, int64_t ldy, int64_t row0, __mmask16 mask) {
  const int64_t nb = (int64_t)l.blocks, bpg = (int64_t)l.group / 32;
  const int64_t block_bytes = T == QType::kQ8 ? 512 : 256;
  __m512 acc[NT];
  const int8_t* aq[NT];
  for (int j = 0; j < NT; ++j) {
    acc[j] = _mm512_setzero_ps();
    aq[j] = a.q + (t0 + j) * a.cols;
  }
  const float* da0 = a.d + t0 * nb;
  const float* sa0 = a.s + t0 * nb;
  int64_t b = 0;
  for (int64_t g = 0; g < (int64_t)l.groups; ++g) {
    const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(st + g * 16)));
    const __m512 mw = T == QType::kQ4M ? _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(mt + g * 16)))
                                       : _mm512_setzero_ps();
    for (int64_t e = 0; e < bpg; ++e, ++b) {
      float da[NT], sa[NT];
      const int8_t* ab[NT];
      for (int j = 0; j < NT; ++j) {
        da[j] = da0[j * nb + b];
        sa[j] = sa0[j * nb + b];
        ab[j] = aq[j] + b * 32;
      }
      block_dot<T, NT>(qt + b * block_bytes, dw, mw, ab, da, sa, acc);
    }
  }
  for (int j = 0; j < NT; ++j) _mm512_mask_storeu_ps(y + (t0 + j) * ldy + row0, mask, acc[j]);
}

template <QType T>
void matmul_tiled_avx512(const Matrix& w, const QActs& a, int64_t n, int64_t tile0, int64_t tile1, float* y,
                         int64_t ldy) {
  const QLayout& l = w.l;
  for (int64_t tc = 0; tc < n; tc += kTokChunk) {
    const int64_t tce = std::min(n, tc + kTokChunk);
    for (int64_t tile = tile0; tile < tile1; ++tile) {
      const uint8_t* qt = w.data + l.q_offset + tile * l.tile_q_bytes;
      const uint16_t* st = reinterpret_cast<const uint16_t*>(w.data + l.s_offset + tile * l.tile_s_bytes);
      const uint16_t* mt =
          T == QType::kQ4M ? reinterpret_cast<const uint16_t*>(w.data + l.m_offset + tile * l.tile_s_bytes) : nullptr;
      const int64_t row0 = tile * kTileRows;
      const int valid = (int)std::min<int64_t>(kTileRows, (int64_t)l.rows - row0);
      const __mmask16 mask = (__mmask16)((1u << valid) - 1);
      int64_t t0 = tc;
      for (; t0 + kTokBlock <= tce; t0 += kTokBlock) tile_tokens<T, kTokBlock>(l, qt, st, mt, a, t0, y, ldy, row0, mask);
      for (; t0 < tce; ++t0) tile_tokens<T, 1>(l, qt, st, mt, a, t0, y, ldy, row0, mask);
    }
  }
}

inline float hsum(__m512 v) { return _mm512_reduce_add_ps(v); }

// 16 weights of row `row` from column k as f32 (masked tail).
inline __m512 load_w16(QType t, const uint8_t* row, int64_t k, __mmask16 m) {
  switch (t) {
    case QType::kF16:
      return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, row + k * 2));
    case QType::kBF16:
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, row + k * 2)), 16));
    case QType::kI8C:
      return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, row + k)));
    default:
      return _mm512_maskz_loadu_ps(m, row + k * 4);
  }
}

// Float weights: register tiles of 4 rows x 4 tokens (16 accumulators), so
// each 16-wide weight load and activation load feeds four FMAs; decode
// (one token) streams 4 rows at a time.
template <int NR, int NT>
inline void float_tile(QType t, const uint8_t* base, int64_t row_bytes, int64_t cols, const float* x, int64_t ldx,
                       int64_t r0, int64_t t0, const float* scales, float* y, int64_t ldy) {
  __m512 acc[NR][NT];
  for (int i = 0; i < NR; ++i)
    for (int j = 0; j < NT; ++j) acc[i][j] = _mm512_setzero_ps();
  for (int64_t k = 0; k < cols; k += 16) {
    const __mmask16 m = cols - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (cols - k)) - 1);
    __m512 xv[NT];
    for (int j = 0; j < NT; ++j) xv[j] = _mm512_maskz_loadu_ps(m, x + (t0 + j) * ldx + k);
    for (int i = 0; i < NR; ++i) {
      const __m512 wv = load_w16(t, base + (r0 + i) * row_bytes, k, m);
      for (int j = 0; j < NT; ++j) acc[i][j] = _mm512_fmadd_ps(wv, xv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < NR; ++i)
    for (int j = 0; j < NT; ++j) y[(t0 + j) * ldy + r0 + i] = hsum(acc[i][j]) * scales[i];
}

void matmul_float_avx512(const Matrix& w, const float* x, int64_t n, int64_t ldx, int64_t row0, int64_t row1, float* y,
                         int64_t ldy) {
  const int64_t cols = (int64_t)w.cols();
  const uint8_t* base = w.data + w.l.q_offset;
  const int64_t rb = (int64_t)w.l.row_bytes;
  auto scales_at = [&](int64_t r, float* sc, int nr) {
    for (int i = 0; i < nr; ++i) {
      sc[i] = 1.0f;
      if (w.type == QType::kI8C) std::memcpy(&sc[i], w.data + w.l.s_offset + (r + i) * 4, 4);
    }
  };
  int64_t r = row0;
  float sc[4];
  for (; r + 4 <= row1; r += 4) {
    scales_at(r, sc, 4);
    int64_t t = 0;
    for (; t + 4 <= n; t += 4) float_tile<4, 4>(w.type, base, rb, cols, x, ldx, r, t, sc, y, ldy);
    for (; t < n; ++t) float_tile<4, 1>(w.type, base, rb, cols, x, ldx, r, t, sc, y, ldy);
  }
  for (; r < row1; ++r) {
    scales_at(r, sc, 1);
    int64_t t = 0;
    for (; t + 4 <= n; t += 4) float_tile<1, 4>(w.type, base, rb, cols, x, ldx, r, t, sc, y, ldy);
    for (; t < n; ++t) float_tile<1, 1>(w.type, base, rb, cols, x, ldx, r, t, sc, y, ldy);
  }
}

void attn_scores_f16_avx512(const float* q, int64_t r, const uint16_t* k, int64_t kstride, int64_t n_pos, int64_t d,
                            float scale, float* scores) {
  for (int64_t j = 0; j < n_pos; ++j) {
    const uint16_t* kj = k + j * kstride;
    for (int64_t h = 0; h < r; ++h) {
      __m512 acc = _mm512_setzero_ps();
      for (int64_t i = 0; i < d; i += 16) {
        const __mmask16 m = d - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (d - i)) - 1);
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + h * d + i), _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, kj + i)), acc);
      }
      scores[h * n_pos + j] = hsum(acc) * scale;
    }
  }
}

void attn_values_f16_avx512(const float* p, int64_t r, const uint16_t* v, int64_t vstride, int64_t n_pos, int64_t d,
                            float* out) {
  for (int64_t h = 0; h < r; ++h) {
    for (int64_t i = 0; i < d; i += 64) {
      // Up to 64 output values in four registers, over every position.
      const int64_t w = std::min<int64_t>(64, d - i);
      __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
      __mmask16 m[4];
      for (int c = 0; c < 4; ++c) {
        const int64_t left = w - c * 16;
        m[c] = left >= 16 ? (__mmask16)0xffff : left > 0 ? (__mmask16)((1u << left) - 1) : (__mmask16)0;
      }
      for (int64_t j = 0; j < n_pos; ++j) {
        const __m512 pj = _mm512_set1_ps(p[h * n_pos + j]);
        const uint16_t* vj = v + j * vstride + i;
        for (int c = 0; c < 4; ++c)
          if (m[c]) acc[c] = _mm512_fmadd_ps(pj, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m[c], vj + c * 16)), acc[c]);
      }
      for (int c = 0; c < 4; ++c)
        if (m[c]) _mm512_mask_storeu_ps(out + h * d + i + c * 16, m[c], acc[c]);
    }
  }
}

inline __mmask16 tail_mask(int64_t left) {
  return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
}

void rmsnorm_avx512(const float* x, const float* w, float eps, int64_t n, float* y) {
  __m512 ss = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __m512 v = _mm512_maskz_loadu_ps(tail_mask(n - i), x + i);
    ss = _mm512_fmadd_ps(v, v, ss);
  }
  const float inv = 1.0f / std::sqrt(hsum(ss) / (float)n + eps);
  const __m512 vi = _mm512_set1_ps(inv);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, w + i), _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vi)));
  }
}

void layernorm_avx512(const float* x, const float* w, const float* b, float eps, int64_t n, float* y) {
  __m512 s = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(tail_mask(n - i), x + i));
  const float mean = hsum(s) / (float)n;
  const __m512 vm = _mm512_set1_ps(mean);
  __m512 v2 = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 c = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, x + i), vm);
    v2 = _mm512_fmadd_ps(c, c, v2);
  }
  const __m512 inv = _mm512_set1_ps(1.0f / std::sqrt(hsum(v2) / (float)n + eps));
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 c = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vm), inv);
    _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(c, _mm512_maskz_loadu_ps(m, w + i), _mm512_maskz_loadu_ps(m, b + i)));
  }
}

void swiglu_avx512(const float* gate, const float* up, int64_t n, float* out) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
    const __m512 silu = _mm512_div_ps(g, _mm512_add_ps(one, exp512(_mm512_sub_ps(_mm512_setzero_ps(), g))));
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(silu, _mm512_maskz_loadu_ps(m, up + i)));
  }
}

// GELU with erf from Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7).
void gelu_avx512(float* x, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f), half = _mm512_set1_ps(0.5f);
  const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    const __m512 z = _mm512_mul_ps(v, _mm512_set1_ps(0.70710678118654752f));
    const __m512 az = _mm512_and_ps(z, absmask);
    const __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(_mm512_set1_ps(0.3275911f), az, one));
    __m512 poly = _mm512_set1_ps(1.061405429f);
    poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(-1.453152027f));
    poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(1.421413741f));
    poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(-0.284496736f));
    poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(0.254829592f));
    poly = _mm512_mul_ps(poly, t);
    const __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(az, az)));
    __m512 erf_abs = _mm512_fnmadd_ps(poly, e, one);
    // erf is odd: copy the sign of z.
    const __m512 erf = _mm512_or_ps(erf_abs, _mm512_andnot_ps(absmask, z));
    _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_mul_ps(half, v), _mm512_add_ps(one, erf)));
  }
}

void add_avx512(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + i), _mm512_maskz_loadu_ps(m, x + i)));
  }
}

void rope_avx512(float* x, int64_t heads, int64_t d, const float* cos, const float* sin) {
  const int64_t half = d / 2;
  for (int64_t h = 0; h < heads; ++h) {
    float* v = x + h * d;
    for (int64_t i = 0; i < half; i += 16) {
      const __mmask16 m = tail_mask(half - i);
      const __m512 a = _mm512_maskz_loadu_ps(m, v + i), b = _mm512_maskz_loadu_ps(m, v + half + i);
      const __m512 c = _mm512_maskz_loadu_ps(m, cos + i), s = _mm512_maskz_loadu_ps(m, sin + i);
      _mm512_mask_storeu_ps(v + i, m, _mm512_fmsub_ps(a, c, _mm512_mul_ps(b, s)));
      _mm512_mask_storeu_ps(v + half + i, m, _mm512_fmadd_ps(b, c, _mm512_mul_ps(a, s)));
    }
  }
}

void f32_to_f16_avx512(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    _mm256_mask_storeu_epi16(y + i, m, _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, x + i), _MM_FROUND_TO_NEAREST_INT));
  }
}

}  // namespace

const KernelTable& avx512_table() {
  static const KernelTable t = [] {
    KernelTable k = scalar_table();
    k.isa = Isa::kAvx512;
    k.quantize_acts = quantize_acts_avx512;
    k.matmul_q4 = matmul_tiled_avx512<QType::kQ4>;
    k.matmul_q8 = matmul_tiled_avx512<QType::kQ8>;
    k.matmul_q4m = matmul_tiled_avx512<QType::kQ4M>;
    k.matmul_float = matmul_float_avx512;
    k.attn_scores_f16 = attn_scores_f16_avx512;
    k.attn_values_f16 = attn_values_f16_avx512;
    k.rmsnorm = rmsnorm_avx512;
    k.layernorm = layernorm_avx512;
    k.swiglu = swiglu_avx512;
    k.gelu = gelu_avx512;
    k.add = add_avx512;
    k.rope = rope_avx512;
    k.f32_to_f16 = f32_to_f16_avx512;
    return k;
  }();
  return t;
}

}  // namespace cria::kernels
