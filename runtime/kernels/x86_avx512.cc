// AVX-512 (F, BW, VL, VNNI) kernels. The int8-weight matmuls read one 16-row
// tile at a time: each 64-byte load is 16 rows x 4 columns, fed to vpdpbusd
// with 4 activation bytes broadcast; one 16-lane accumulator per token holds
// the tile's 16 outputs, so no horizontal reduction is needed.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "runtime/kernels/kernels.h"
#include "runtime/kernels/qkernel_common.h"
#include "runtime/kernels/ref_ops.h"
#include "runtime/kernels/x86_simd.h"

namespace cria::kernels {

namespace {

using x86::load_i32;
using x86::V512;

// quantize_acts' ISA part: 32 values in two registers.
struct Acts512 {
  struct Block {
    __m512 a0, a1;
  };
  static Block load(const float* x) { return {_mm512_loadu_ps(x), _mm512_loadu_ps(x + 16)}; }
  static float amax(const Block& v) {
    return _mm512_reduce_max_ps(_mm512_max_ps(V512::abs(v.a0), V512::abs(v.a1)));
  }
  static int round_store(const Block& v, float id, int8_t* q) {
    const __m512 vid = _mm512_set1_ps(id);
    const __m512i i0 = _mm512_cvtps_epi32(_mm512_mul_ps(v.a0, vid));
    const __m512i i1 = _mm512_cvtps_epi32(_mm512_mul_ps(v.a1, vid));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q), _mm512_cvtsepi32_epi8(i0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16), _mm512_cvtsepi32_epi8(i1));
    return _mm512_reduce_add_epi32(_mm512_add_epi32(i0, i1));
  }
};

void quantize_acts_avx512(const float* x, int64_t n, int64_t cols, int8_t* q, float* d, float* s) {
  qk::quantize_acts<Acts512>(x, n, cols, q, d, s);
}

// Tokens per register block.
constexpr int kTokBlock = 4;

// The weight vectors of one block of a tile: w[i] holds each row's codes
// for columns 4i..4i+3, the ones that pair with activation bytes
// 4i..4i+3. (Q8 chunk c holds columns 4c..4c+3; Q4's low and high nibbles
// of chunk c hold columns 8c..8c+3 and 8c+4..8c+7.)
template <QType T>
inline void weight_vectors(const uint8_t* qb, __m512i w[8]) {
  if (T == QType::kQ8) {
    for (int c = 0; c < 8; ++c) w[c] = _mm512_loadu_si512(qb + c * 64);
  } else {
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    for (int c = 0; c < 4; ++c) {
      const __m512i v = _mm512_loadu_si512(qb + c * 64);
      w[2 * c] = _mm512_and_si512(v, m4);
      w[2 * c + 1] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
    }
  }
}

// The int8 dot products of one 32-column block of a tile with NT tokens'
// activations, folded into float accumulators by qk::fold (vpdpbusd takes
// the codes unsigned: Q8's zero point is corrected there, not here).
// Loop order keeps the vpdpbusd chains independent: the i loop is outer,
// tokens inner, with two partial sums per token (even/odd groups), so no
// chain is longer than four dependent instructions.
template <QType T, int NT>
inline void block_dot(const uint8_t* qb, __m512 dw, __m512 mw, const qk::ActBlock* ab, __m512* acc) {
  __m512i w[8];
  weight_vectors<T>(qb, w);
  __m512i d0[NT], d1[NT];
  for (int j = 0; j < NT; ++j) d0[j] = d1[j] = _mm512_setzero_si512();
  for (int i = 0; i < 8; i += 2) {
    for (int j = 0; j < NT; ++j) {
      d0[j] = _mm512_dpbusd_epi32(d0[j], w[i], _mm512_set1_epi32(load_i32(ab[j].q + 4 * i)));
      d1[j] = _mm512_dpbusd_epi32(d1[j], w[i + 1], _mm512_set1_epi32(load_i32(ab[j].q + 4 * i + 4)));
    }
  }
  for (int j = 0; j < NT; ++j)
    acc[j] = qk::fold<T, false, V512>(acc[j], dw, mw, _mm512_cvtepi32_ps(_mm512_add_epi32(d0[j], d1[j])), ab[j].d,
                                      ab[j].s);
}

// One tile against NT tokens starting at t0.
template <QType T, int NT>
inline void tile_tokens(const qk::Tile& tl, const QActs& a, int64_t t0, float* y, int64_t ldy) {
  __m512 acc[NT];
  qk::ActRow rows[NT];
  for (int j = 0; j < NT; ++j) {
    acc[j] = _mm512_setzero_ps();
    rows[j] = qk::act_row(a, t0 + j);
  }
  for (int64_t b = 0; b < tl.blocks; b += tl.blocks_per_group) {
    // One group: its scales (and mins) serve each of its blocks.
    const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(tl.scales(b))));
    const __m512 mw = T == QType::kQ4M ? _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(tl.mins(b))))
                                       : _mm512_setzero_ps();
    for (int64_t e = b; e < b + tl.blocks_per_group; ++e) {
      qk::ActBlock ab[NT];
      for (int j = 0; j < NT; ++j) ab[j] = rows[j].block(e);
      if (NT == 1) x86::prefetch_ahead(tl.block(e), tl.block_bytes);
      block_dot<T, NT>(tl.block(e), dw, mw, ab, acc);
    }
  }
  for (int j = 0; j < NT; ++j) qk::store_tile<V512>(y + (t0 + j) * ldy + tl.row0, tl.valid, &acc[j]);
}

// Two tiles (32 rows) against NT tokens: each activation broadcast feeds
// two vpdpbusd, one per tile, so a block issues 10 loads per 16 vpdpbusd
// where one tile issues 9 per 8. The loads, not the multiply-adds, bound
// the one-tile loop on a core that completes two 512-bit loads a cycle.
// Bit for bit the same sums as tile_tokens: integer dot products are
// exact, and each tile's fold is unchanged.
template <QType T, int NT>
inline void tile_pair_tokens(const qk::Tile& ta, const qk::Tile& tb, const QActs& a, int64_t t0, float* y,
                             int64_t ldy) {
  __m512 acc_a[NT], acc_b[NT];
  qk::ActRow rows[NT];
  for (int j = 0; j < NT; ++j) {
    acc_a[j] = acc_b[j] = _mm512_setzero_ps();
    rows[j] = qk::act_row(a, t0 + j);
  }
  const auto load16 = [](const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  };
  for (int64_t b = 0; b < ta.blocks; b += ta.blocks_per_group) {
    const __m512 dwa = load16(ta.scales(b)), dwb = load16(tb.scales(b));
    const __m512 mwa = T == QType::kQ4M ? load16(ta.mins(b)) : _mm512_setzero_ps();
    const __m512 mwb = T == QType::kQ4M ? load16(tb.mins(b)) : _mm512_setzero_ps();
    for (int64_t e = b; e < b + ta.blocks_per_group; ++e) {
      const uint8_t* qa = ta.block(e);
      const uint8_t* qb = tb.block(e);
      const int8_t* aq[NT];
      for (int j = 0; j < NT; ++j) aq[j] = rows[j].q + e * 32;
      __m512i da[NT], db[NT];
      for (int j = 0; j < NT; ++j) da[j] = db[j] = _mm512_setzero_si512();
      __m512i wa[8], wb[8];
      weight_vectors<T>(qa, wa);
      weight_vectors<T>(qb, wb);
      for (int i = 0; i < 8; ++i) {
        for (int j = 0; j < NT; ++j) {
          const __m512i x = _mm512_set1_epi32(load_i32(aq[j] + 4 * i));
          da[j] = _mm512_dpbusd_epi32(da[j], wa[i], x);
          db[j] = _mm512_dpbusd_epi32(db[j], wb[i], x);
        }
      }
      for (int j = 0; j < NT; ++j) {
        const qk::ActBlock ab = rows[j].block(e);
        acc_a[j] = qk::fold<T, false, V512>(acc_a[j], dwa, mwa, _mm512_cvtepi32_ps(da[j]), ab.d, ab.s);
        acc_b[j] = qk::fold<T, false, V512>(acc_b[j], dwb, mwb, _mm512_cvtepi32_ps(db[j]), ab.d, ab.s);
      }
    }
  }
  for (int j = 0; j < NT; ++j) {
    qk::store_tile<V512>(y + (t0 + j) * ldy + ta.row0, ta.valid, &acc_a[j]);
    qk::store_tile<V512>(y + (t0 + j) * ldy + tb.row0, tb.valid, &acc_b[j]);
  }
}

template <QType T>
void matmul_tiled_avx512(const Matrix& w, const QActs& a, int64_t n, int64_t tile0, int64_t tile1, float* y,
                         int64_t ldy) {
  if (n < kTokBlock) {
    qk::for_tiles_and_tokens<kTokBlock>(n, tile0, tile1, [&](auto nt, int64_t tile, int64_t t0) {
      tile_tokens<T, decltype(nt)::value>(qk::tile_at<T>(w, tile), a, t0, y, ldy);
    });
    return;
  }
  qk::for_tiles_and_tokens<kTokBlock, true>(n, tile0, tile1, [&](auto nt, int64_t tile, int64_t t0, auto pair) {
    constexpr int NT = decltype(nt)::value;
    const qk::Tile ta = qk::tile_at<T>(w, tile);
    if constexpr (decltype(pair)::value) tile_pair_tokens<T, NT>(ta, qk::tile_at<T>(w, tile + 1), a, t0, y, ldy);
    else tile_tokens<T, NT>(ta, a, t0, y, ldy);
  });
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

inline __mmask16 tail_mask(int64_t left) {
  return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
}

// Sixteen cache values (f16 or f32 rows) as f32, masked.
inline __m512 load_kv16(__mmask16 m, const uint16_t* p) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }
inline __m512 load_kv16(__mmask16 m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }

// In-register transpose of a 16 x 16 block of floats: r[x] holds row x on
// entry and column x on return. Three rounds of interleaving: 32-bit pairs
// within each 128-bit lane, then 64-bit pairs, then whole lanes.
inline void transpose16(__m512 r[16]) {
  __m512 a[16], b[16];
  for (int k = 0; k < 8; ++k) {
    a[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
    a[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
  }
  // b[4k + m], lane L: column 4L + m of rows 4k .. 4k + 3.
  for (int k = 0; k < 4; ++k) {
    const __m512d a0 = _mm512_castps_pd(a[4 * k]), a1 = _mm512_castps_pd(a[4 * k + 1]);
    const __m512d a2 = _mm512_castps_pd(a[4 * k + 2]), a3 = _mm512_castps_pd(a[4 * k + 3]);
    b[4 * k] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
    b[4 * k + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
    b[4 * k + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
    b[4 * k + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
  }
  for (int m = 0; m < 4; ++m) {
    const __m512 c0 = _mm512_shuffle_f32x4(b[m], b[4 + m], 0x44), c1 = _mm512_shuffle_f32x4(b[m], b[4 + m], 0xEE);
    const __m512 c2 = _mm512_shuffle_f32x4(b[8 + m], b[12 + m], 0x44);
    const __m512 c3 = _mm512_shuffle_f32x4(b[8 + m], b[12 + m], 0xEE);
    r[m] = _mm512_shuffle_f32x4(c0, c2, 0x88);
    r[4 + m] = _mm512_shuffle_f32x4(c0, c2, 0xDD);
    r[8 + m] = _mm512_shuffle_f32x4(c1, c3, 0x88);
    r[12 + m] = _mm512_shuffle_f32x4(c1, c3, 0xDD);
  }
}

constexpr int64_t kScoreCols = 32;         // cache rows per scores tile: two registers
constexpr int64_t kMaxTransposedDim = 256;  // head_dim the tile's stack buffer holds
// Fewer query rows than this (decode: Llama's 4 heads per KV head) do not
// pay for the transpose: one dot product per score reads the cache rows as
// they stream in (cria bench -d 4096 decode: 35 tok/s against 22-31).
constexpr int64_t kGemmRows = 8;

// Scores of R query rows against kScoreCols cache rows held transposed
// (kt[i * kScoreCols + j] = K[j][i]): 2R accumulators, each step one
// broadcast query value and two loads shared by every row.
template <int R>
void scores_tile(const float* q, int64_t d, const float* kt, float scale, float* s, int64_t ld, __mmask16 m0,
                 __mmask16 m1) {
  __m512 a0[R], a1[R];
  for (int r = 0; r < R; ++r) a0[r] = a1[r] = _mm512_setzero_ps();
  for (int64_t i = 0; i < d; ++i) {
    const __m512 k0 = _mm512_load_ps(kt + i * kScoreCols), k1 = _mm512_load_ps(kt + i * kScoreCols + 16);
    for (int r = 0; r < R; ++r) {
      const __m512 qb = _mm512_set1_ps(q[r * d + i]);
      a0[r] = _mm512_fmadd_ps(qb, k0, a0[r]);
      a1[r] = _mm512_fmadd_ps(qb, k1, a1[r]);
    }
  }
  const __m512 sc = _mm512_set1_ps(scale);
  for (int r = 0; r < R; ++r) {
    _mm512_mask_storeu_ps(s + r * ld, m0, _mm512_mul_ps(a0[r], sc));
    _mm512_mask_storeu_ps(s + r * ld + 16, m1, _mm512_mul_ps(a1[r], sc));
  }
}

using ScoresTileFn = void (*)(const float*, int64_t, const float*, float, float*, int64_t, __mmask16, __mmask16);
constexpr ScoresTileFn kScoresTiles[9] = {nullptr,           scores_tile<1>, scores_tile<2>,
                                          scores_tile<3>,    scores_tile<4>, scores_tile<5>,
                                          scores_tile<6>,    scores_tile<7>, scores_tile<8>};

// A GEMM of the r query rows by kScoreCols cache rows at a time: each block
// of the cache is converted and transposed once (16 x 16 in registers) and
// serves every query row, so the cost per score is a share of one FMA per
// dimension, not a horizontal sum per score.
template <typename KV>
void attn_scores_avx512(const float* q, int64_t r, const KV* k, int64_t kstride, int64_t n_pos, int64_t d,
                        float scale, float* scores) {
  if (d > kMaxTransposedDim || r < kGemmRows) {
    for (int64_t j = 0; j < n_pos; ++j) {
      const KV* kj = k + j * kstride;
      for (int64_t h = 0; h < r; ++h) {
        __m512 acc = _mm512_setzero_ps();
        for (int64_t i = 0; i < d; i += 16) {
          const __mmask16 m = tail_mask(d - i);
          acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + h * d + i), load_kv16(m, kj + i), acc);
        }
        scores[h * n_pos + j] = hsum(acc) * scale;
      }
    }
    return;
  }
  alignas(64) float kt[kMaxTransposedDim * kScoreCols];
  for (int64_t j0 = 0; j0 < n_pos; j0 += kScoreCols) {
    const int64_t cols = std::min(kScoreCols, n_pos - j0);
    for (int64_t half = 0; half < kScoreCols; half += 16) {
      for (int64_t i0 = 0; i0 < d; i0 += 16) {
        const __mmask16 m = tail_mask(d - i0);
        __m512 blk[16];
        for (int64_t x = 0; x < 16; ++x)
          blk[x] = half + x < cols ? load_kv16(m, k + (j0 + half + x) * kstride + i0) : _mm512_setzero_ps();
        transpose16(blk);
        for (int64_t x = 0; x < 16 && i0 + x < d; ++x) _mm512_store_ps(kt + (i0 + x) * kScoreCols + half, blk[x]);
      }
    }
    const __mmask16 m0 = tail_mask(cols), m1 = cols > 16 ? tail_mask(cols - 16) : (__mmask16)0;
    int64_t h = 0;
    for (; h + 8 <= r; h += 8) scores_tile<8>(q + h * d, d, kt, scale, scores + h * n_pos + j0, n_pos, m0, m1);
    if (h < r) kScoresTiles[r - h](q + h * d, d, kt, scale, scores + h * n_pos + j0, n_pos, m0, m1);
  }
}

// Values of R probability rows over every position: the four registers of
// one cache row's 64 values are loaded once for all R rows.
template <int R, typename KV>
void values_tile(const float* p, int64_t n_pos, const KV* v, int64_t vstride, int64_t d, const __mmask16 m[4],
                 float* out) {
  __m512 acc[R][4];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < 4; ++c) acc[r][c] = _mm512_setzero_ps();
  for (int64_t j = 0; j < n_pos; ++j) {
    const KV* vj = v + j * vstride;
    __m512 vk[4];
    for (int c = 0; c < 4; ++c) vk[c] = m[c] ? load_kv16(m[c], vj + c * 16) : _mm512_setzero_ps();
    for (int r = 0; r < R; ++r) {
      const __m512 pj = _mm512_set1_ps(p[r * n_pos + j]);
      for (int c = 0; c < 4; ++c) acc[r][c] = _mm512_fmadd_ps(pj, vk[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < 4; ++c)
      if (m[c]) _mm512_mask_storeu_ps(out + r * d + c * 16, m[c], acc[r][c]);
}

template <typename KV>
void attn_values_avx512(const float* p, int64_t r, const KV* v, int64_t vstride, int64_t n_pos, int64_t d,
                        float* out) {
  for (int64_t i = 0; i < d; i += 64) {
    // Up to 64 output values of every row, four registers each.
    __mmask16 m[4];
    for (int c = 0; c < 4; ++c) {
      const int64_t left = std::min<int64_t>(64, d - i) - c * 16;
      m[c] = left > 0 ? tail_mask(left) : (__mmask16)0;
    }
    int64_t h = 0;
    for (; h + 4 <= r; h += 4) values_tile<4>(p + h * n_pos, n_pos, v + i, vstride, d, m, out + h * d + i);
    for (; h < r; ++h) values_tile<1>(p + h * n_pos, n_pos, v + i, vstride, d, m, out + h * d + i);
  }
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
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(out + i, m,
                          qk::silu_mul<V512>(_mm512_maskz_loadu_ps(m, gate + i), _mm512_maskz_loadu_ps(m, up + i)));
  }
}

void gelu_avx512(float* x, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(x + i, m, qk::gelu<V512>(_mm512_maskz_loadu_ps(m, x + i)));
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

inline __m512 block_scale(const uint8_t* scales, int64_t b) {
  float s;
  std::memcpy(&s, scales + b * 4, 4);
  return _mm512_set1_ps(s);
}

// Sixteen int8 codes times the scale.
inline __m512 scaled16(__m128i codes, __m512 s) {
  return _mm512_mul_ps(s, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(codes)));
}

void dequant_q8_blocks_avx512(const int8_t* codes, const uint8_t* scales, int64_t nb, float* out) {
  for (int64_t b = 0; b < nb; ++b) {
    const __m512 s = block_scale(scales, b);
    const int8_t* c = codes + b * 32;
    _mm512_storeu_ps(out + b * 32, scaled16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c)), s));
    _mm512_storeu_ps(out + b * 32 + 16, scaled16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c + 16)), s));
  }
}

void dequant_q4_blocks_avx512(const uint8_t* codes, const uint8_t* scales, int64_t nb, float* out) {
  const __m128i low4 = _mm_set1_epi8(15), eight = _mm_set1_epi8(8);
  for (int64_t b = 0; b < nb; ++b) {
    const __m512 s = block_scale(scales, b);
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + b * 16));
    const __m128i lo = _mm_and_si128(x, low4), hi = _mm_and_si128(_mm_srli_epi16(x, 4), low4);
    // Interleaved back into value order: low nibble of byte i is value 2i.
    _mm512_storeu_ps(out + b * 32, scaled16(_mm_sub_epi8(_mm_unpacklo_epi8(lo, hi), eight), s));
    _mm512_storeu_ps(out + b * 32 + 16, scaled16(_mm_sub_epi8(_mm_unpackhi_epi8(lo, hi), eight), s));
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
    k.attn_scores_f16 = attn_scores_avx512<uint16_t>;
    k.attn_values_f16 = attn_values_avx512<uint16_t>;
    k.attn_scores_f32 = attn_scores_avx512<float>;
    k.attn_values_f32 = attn_values_avx512<float>;
    k.rmsnorm = rmsnorm_avx512;
    k.layernorm = layernorm_avx512;
    k.row_max = qk::row_max<V512>;
    k.exp_sum = qk::exp_sum<V512>;
    k.swiglu = swiglu_avx512;
    k.gelu = gelu_avx512;
    k.add = add_avx512;
    k.rope = rope_avx512;
    k.f32_to_f16 = f32_to_f16_avx512;
    k.dequant_q8_blocks = dequant_q8_blocks_avx512;
    k.dequant_q4_blocks = dequant_q4_blocks_avx512;
    return k;
  }();
  return t;
}

}  // namespace cria::kernels
