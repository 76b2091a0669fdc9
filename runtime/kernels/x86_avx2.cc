// AVX2 + FMA + F16C kernels for x86-64 CPUs without AVX-512 VNNI. A 16-row
// tile's 64-byte chunk is two 256-bit halves (rows 0-7 and 8-15); int8 dot
// products use vpmaddubsw (u8 x s8 -> s16 pairs) and vpmaddwd. Int4 codes
// (<= 15) are fed as the unsigned operand directly; int8 weights go through
// the sign trick (|w| x sign(a, w)) so no 16-bit sum can saturate.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "runtime/kernels/kernels.h"
#include "runtime/kernels/qkernel_common.h"
#include "runtime/kernels/ref_ops.h"
#include "runtime/kernels/x86_simd.h"

namespace cria::kernels {

namespace {

using x86::hsum256;
using x86::load_i32;
using x86::V256;

// quantize_acts' ISA part: 32 values in four registers.
struct Acts256 {
  struct Block {
    __m256 v[4];
  };
  static Block load(const float* x) {
    Block b;
    for (int i = 0; i < 4; ++i) b.v[i] = _mm256_loadu_ps(x + 8 * i);
    return b;
  }
  static float amax(const Block& b) {
    __m256 m = _mm256_setzero_ps();
    for (int i = 0; i < 4; ++i) m = _mm256_max_ps(m, V256::abs(b.v[i]));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
    return _mm_cvtss_f32(m4);
  }
  static int round_store(const Block& b, float id, int8_t* q) {
    const __m256 vid = _mm256_set1_ps(id);
    __m256i iv[4], sum = _mm256_setzero_si256();
    for (int i = 0; i < 4; ++i) {
      iv[i] = _mm256_cvtps_epi32(_mm256_mul_ps(b.v[i], vid));
      sum = _mm256_add_epi32(sum, iv[i]);
    }
    // Pack 32 int32 to int8 in order (packs interleave 128-bit lanes).
    const __m256i p01 = _mm256_packs_epi32(iv[0], iv[1]), p23 = _mm256_packs_epi32(iv[2], iv[3]);
    __m256i p = _mm256_packs_epi16(p01, p23);
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), p);
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
    return _mm_cvtsi128_si32(s4);
  }
};

void quantize_acts_avx2(const float* x, int64_t n, int64_t cols, int8_t* q, float* d, float* s) {
  qk::quantize_acts<Acts256>(x, n, cols, q, d, s);
}

constexpr int kTokBlock = 4;

// Signed int8 dot of 32 bytes with an 8-lane int32 result: lane r sums
// w[4r..4r+3] * a[...] where `a` is the broadcast activation group.
inline __m256i dot_s8(__m256i w_signed, __m256i a) {
  const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w_signed, w_signed), _mm256_sign_epi8(a, w_signed));
  return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

// One tile (two halves of 8 rows) against NT tokens starting at t0. Q8
// codes are flipped to signed (centred) here; Q4 and Q4M nibbles stay
// unsigned and qk::fold corrects for Q4's zero point.
template <QType T, int NT>
void tile_tokens(const qk::Tile& tl, const QActs& a, int64_t t0, float* y, int64_t ldy) {
  const __m256i m4 = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1), flip = _mm256_set1_epi8((char)0x80);
  __m256 acc[NT][2];
  qk::ActRow rows[NT];
  for (int j = 0; j < NT; ++j) {
    acc[j][0] = acc[j][1] = _mm256_setzero_ps();
    rows[j] = qk::act_row(a, t0 + j);
  }
  for (int64_t b = 0; b < tl.blocks; ++b) {
    __m256 dw[2], mw[2];
    for (int h = 0; h < 2; ++h) {
      dw[h] = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(tl.scales(b) + 8 * h)));
      mw[h] = T == QType::kQ4M ? _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(tl.mins(b) + 8 * h)))
                               : _mm256_setzero_ps();
    }
    const uint8_t* qb = tl.block(b);
    if (NT == 1) x86::prefetch_ahead(qb, tl.block_bytes);
    // w[i][h]: the bytes that pair with activation group i (bytes
    // 4i..4i+3 of the block), for rows 8h..8h+7.
    __m256i wv[8][2];
    for (int h = 0; h < 2; ++h) {
      if (T == QType::kQ8) {
        for (int c = 0; c < 8; ++c)
          wv[c][h] = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(qb + c * 64 + 32 * h)), flip);
      } else {
        for (int c = 0; c < 4; ++c) {
          const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qb + c * 64 + 32 * h));
          wv[2 * c][h] = _mm256_and_si256(v, m4);
          wv[2 * c + 1][h] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
        }
      }
    }
    for (int j = 0; j < NT; ++j) {
      const qk::ActBlock ab = rows[j].block(b);
      for (int h = 0; h < 2; ++h) {
        __m256i dot;
        if (T == QType::kQ8) {
          dot = _mm256_setzero_si256();
          for (int i = 0; i < 8; ++i) dot = _mm256_add_epi32(dot, dot_s8(wv[i][h], _mm256_set1_epi32(load_i32(ab.q + 4 * i))));
        } else {
          // Nibbles x int8 stay within int16 for 4 pairs: 4 x 2 x 15 x 128 < 32768.
          __m256i p0 = _mm256_setzero_si256(), p1 = _mm256_setzero_si256();
          for (int i = 0; i < 4; ++i) {
            p0 = _mm256_add_epi16(p0, _mm256_maddubs_epi16(wv[i][h], _mm256_set1_epi32(load_i32(ab.q + 4 * i))));
            p1 = _mm256_add_epi16(p1, _mm256_maddubs_epi16(wv[i + 4][h], _mm256_set1_epi32(load_i32(ab.q + 16 + 4 * i))));
          }
          dot = _mm256_add_epi32(_mm256_madd_epi16(p0, ones), _mm256_madd_epi16(p1, ones));
        }
        acc[j][h] = qk::fold<T, T == QType::kQ8, V256>(acc[j][h], dw[h], mw[h], _mm256_cvtepi32_ps(dot), ab.d, ab.s);
      }
    }
  }
  for (int j = 0; j < NT; ++j) qk::store_tile<V256>(y + (t0 + j) * ldy + tl.row0, tl.valid, acc[j]);
}

template <QType T>
void matmul_tiled_avx2(const Matrix& w, const QActs& a, int64_t n, int64_t tile0, int64_t tile1, float* y,
                       int64_t ldy) {
  qk::for_tiles_and_tokens<kTokBlock>(n, tile0, tile1, [&](auto nt, int64_t tile, int64_t t0) {
    tile_tokens<T, decltype(nt)::value>(qk::tile_at<T>(w, tile), a, t0, y, ldy);
  });
}

// 8 weights of a float-typed row as f32, or fewer (zero-filled) at the end.
inline __m256 load_w8(QType t, const uint8_t* row, int64_t k, int64_t left) {
  alignas(32) float tmp[8];
  if (left >= 8) {
    switch (t) {
      case QType::kF16: return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + k * 2)));
      case QType::kBF16:
        return _mm256_castsi256_ps(
            _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + k * 2))), 16));
      case QType::kI8C: {
        int64_t v;
        std::memcpy(&v, row + k, 8);
        return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_cvtsi64_si128(v)));
      }
      default: return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + k);
    }
  }
  for (int i = 0; i < 8; ++i) {
    if (i >= left) {
      tmp[i] = 0;
      continue;
    }
    switch (t) {
      case QType::kF16: {
        uint16_t h;
        std::memcpy(&h, row + (k + i) * 2, 2);
        tmp[i] = _cvtsh_ss(h);
        break;
      }
      case QType::kBF16: {
        uint16_t h;
        std::memcpy(&h, row + (k + i) * 2, 2);
        uint32_t u = (uint32_t)h << 16;
        std::memcpy(&tmp[i], &u, 4);
        break;
      }
      case QType::kI8C: tmp[i] = (float)(int8_t)row[k + i]; break;
      default: std::memcpy(&tmp[i], row + (k + i) * 4, 4); break;
    }
  }
  return _mm256_load_ps(tmp);
}

inline __m256 load_x8(const float* x, int64_t left) {
  if (left >= 8) return _mm256_loadu_ps(x);
  alignas(32) float tmp[8] = {};
  std::memcpy(tmp, x, (size_t)left * 4);
  return _mm256_load_ps(tmp);
}

void matmul_float_avx2(const Matrix& w, const float* x, int64_t n, int64_t ldx, int64_t row0, int64_t row1, float* y,
                       int64_t ldy) {
  const int64_t cols = (int64_t)w.cols();
  for (int64_t r = row0; r < row1; ++r) {
    const uint8_t* row = w.data + w.l.q_offset + r * w.l.row_bytes;
    float scale = 1.0f;
    if (w.type == QType::kI8C) std::memcpy(&scale, w.data + w.l.s_offset + r * 4, 4);
    for (int64_t t0 = 0; t0 < n; t0 += kTokBlock) {
      const int nt = (int)std::min<int64_t>(kTokBlock, n - t0);
      __m256 acc[kTokBlock];
      for (int j = 0; j < kTokBlock; ++j) acc[j] = _mm256_setzero_ps();
      for (int64_t k = 0; k < cols; k += 8) {
        const __m256 wv = load_w8(w.type, row, k, cols - k);
        for (int j = 0; j < nt; ++j) acc[j] = _mm256_fmadd_ps(wv, load_x8(x + (t0 + j) * ldx + k, cols - k), acc[j]);
      }
      for (int j = 0; j < nt; ++j) y[(t0 + j) * ldy + r] = hsum256(acc[j]) * scale;
    }
  }
}

inline __m256 load_h8(const uint16_t* p, int64_t left) {
  if (left >= 8) return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  alignas(16) uint16_t tmp[8] = {};
  std::memcpy(tmp, p, (size_t)left * 2);
  return _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(tmp)));
}

// Eight int8 codes (the low half of `codes`) times the scale.
inline __m256 scaled8(__m128i codes, __m256 s) {
  return _mm256_mul_ps(s, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(codes)));
}

inline __m256 block_scale(const uint8_t* scales, int64_t b) {
  float s;
  std::memcpy(&s, scales + b * 4, 4);
  return _mm256_set1_ps(s);
}

// Sixteen int8 codes times the scale, to out[0..16).
inline void store_scaled16(__m128i codes, __m256 s, float* out) {
  _mm256_storeu_ps(out, scaled8(codes, s));
  _mm256_storeu_ps(out + 8, scaled8(_mm_srli_si128(codes, 8), s));
}

void dequant_q8_blocks_avx2(const int8_t* codes, const uint8_t* scales, int64_t nb, float* out) {
  for (int64_t b = 0; b < nb; ++b) {
    const __m256 s = block_scale(scales, b);
    const int8_t* c = codes + b * 32;
    store_scaled16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c)), s, out + b * 32);
    store_scaled16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c + 16)), s, out + b * 32 + 16);
  }
}

void dequant_q4_blocks_avx2(const uint8_t* codes, const uint8_t* scales, int64_t nb, float* out) {
  const __m128i low4 = _mm_set1_epi8(15), eight = _mm_set1_epi8(8);
  for (int64_t b = 0; b < nb; ++b) {
    const __m256 s = block_scale(scales, b);
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + b * 16));
    const __m128i lo = _mm_and_si128(x, low4), hi = _mm_and_si128(_mm_srli_epi16(x, 4), low4);
    // Interleaved back into value order: low nibble of byte i is value 2i.
    store_scaled16(_mm_sub_epi8(_mm_unpacklo_epi8(lo, hi), eight), s, out + b * 32);
    store_scaled16(_mm_sub_epi8(_mm_unpackhi_epi8(lo, hi), eight), s, out + b * 32 + 16);
  }
}

// Eight cache values (f16 or f32 rows) as f32; `left` < 8 reads only those.
inline __m256 load_kv8(const uint16_t* p, int64_t left) { return load_h8(p, left); }
inline __m256 load_kv8(const float* p, int64_t left) { return load_x8(p, left); }

// In-register transpose of an 8 x 8 block: r[x] holds row x on entry and
// column x on return (32-bit pairs, then 64-bit pairs, then 128-bit halves).
inline void transpose8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int k = 0; k < 4; ++k) {
    t[2 * k] = _mm256_unpacklo_ps(r[2 * k], r[2 * k + 1]);
    t[2 * k + 1] = _mm256_unpackhi_ps(r[2 * k], r[2 * k + 1]);
  }
  // u[4h + m], half L: column 4L + m of rows 4h .. 4h + 3.
  for (int h = 0; h < 2; ++h) {
    u[4 * h] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * h + 1] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int m = 0; m < 4; ++m) {
    r[m] = _mm256_permute2f128_ps(u[m], u[4 + m], 0x20);
    r[4 + m] = _mm256_permute2f128_ps(u[m], u[4 + m], 0x31);
  }
}

constexpr int64_t kScoreCols = 16;          // cache rows per scores tile: two registers
constexpr int64_t kMaxTransposedDim = 256;  // head_dim the tile's stack buffer holds
// Fewer query rows than this (decode: Llama's 4 heads per KV head) do not
// pay for the transpose: one dot product per score reads the cache rows as
// they stream in (cria bench -d 4096 decode: 35 tok/s against 22-31).
constexpr int64_t kGemmRows = 8;

// Scores of R query rows against kScoreCols cache rows held transposed
// (kt[i * kScoreCols + j] = K[j][i]), as in the AVX-512 table.
template <int R>
void scores_tile(const float* q, int64_t d, const float* kt, float scale, float* s, int64_t ld, int64_t cols) {
  __m256 a0[R], a1[R];
  for (int r = 0; r < R; ++r) a0[r] = a1[r] = _mm256_setzero_ps();
  for (int64_t i = 0; i < d; ++i) {
    const __m256 k0 = _mm256_load_ps(kt + i * kScoreCols), k1 = _mm256_load_ps(kt + i * kScoreCols + 8);
    for (int r = 0; r < R; ++r) {
      const __m256 qb = _mm256_broadcast_ss(q + r * d + i);
      a0[r] = _mm256_fmadd_ps(qb, k0, a0[r]);
      a1[r] = _mm256_fmadd_ps(qb, k1, a1[r]);
    }
  }
  const __m256 sc = _mm256_set1_ps(scale);
  for (int r = 0; r < R; ++r) {
    alignas(32) float tmp[kScoreCols];
    _mm256_store_ps(tmp, _mm256_mul_ps(a0[r], sc));
    _mm256_store_ps(tmp + 8, _mm256_mul_ps(a1[r], sc));
    std::memcpy(s + r * ld, tmp, (size_t)cols * sizeof(float));
  }
}

using ScoresTileFn = void (*)(const float*, int64_t, const float*, float, float*, int64_t, int64_t);
constexpr ScoresTileFn kScoresTiles[7] = {nullptr,        scores_tile<1>, scores_tile<2>, scores_tile<3>,
                                          scores_tile<4>, scores_tile<5>, scores_tile<6>};

// A GEMM of the r query rows by kScoreCols cache rows at a time, each block
// of the cache converted and transposed once (8 x 8 in registers) for every
// query row; see the AVX-512 table.
template <typename KV>
void attn_scores_avx2(const float* q, int64_t r, const KV* k, int64_t kstride, int64_t n_pos, int64_t d, float scale,
                      float* scores) {
  if (d > kMaxTransposedDim || r < kGemmRows) {
    for (int64_t j = 0; j < n_pos; ++j) {
      for (int64_t h = 0; h < r; ++h) {
        __m256 acc = _mm256_setzero_ps();
        for (int64_t i = 0; i < d; i += 8) acc = _mm256_fmadd_ps(load_x8(q + h * d + i, d - i), load_kv8(k + j * kstride + i, d - i), acc);
        scores[h * n_pos + j] = hsum256(acc) * scale;
      }
    }
    return;
  }
  alignas(32) float kt[kMaxTransposedDim * kScoreCols];
  for (int64_t j0 = 0; j0 < n_pos; j0 += kScoreCols) {
    const int64_t cols = std::min(kScoreCols, n_pos - j0);
    for (int64_t half = 0; half < kScoreCols; half += 8) {
      for (int64_t i0 = 0; i0 < d; i0 += 8) {
        __m256 blk[8];
        for (int64_t x = 0; x < 8; ++x)
          blk[x] = half + x < cols ? load_kv8(k + (j0 + half + x) * kstride + i0, d - i0) : _mm256_setzero_ps();
        transpose8(blk);
        for (int64_t x = 0; x < 8 && i0 + x < d; ++x) _mm256_store_ps(kt + (i0 + x) * kScoreCols + half, blk[x]);
      }
    }
    int64_t h = 0;
    for (; h + 6 <= r; h += 6) scores_tile<6>(q + h * d, d, kt, scale, scores + h * n_pos + j0, n_pos, cols);
    if (h < r) kScoresTiles[r - h](q + h * d, d, kt, scale, scores + h * n_pos + j0, n_pos, cols);
  }
}

// Values of R probability rows over every position, up to 32 output values
// each: a cache row's four registers are loaded once for all R rows.
template <int R, typename KV>
void values_tile(const float* p, int64_t n_pos, const KV* v, int64_t vstride, int64_t d, int64_t w, float* out) {
  __m256 acc[R][4];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < 4; ++c) acc[r][c] = _mm256_setzero_ps();
  for (int64_t j = 0; j < n_pos; ++j) {
    __m256 vk[4];
    for (int c = 0; c < 4; ++c) vk[c] = c * 8 < w ? load_kv8(v + j * vstride + c * 8, w - c * 8) : _mm256_setzero_ps();
    for (int r = 0; r < R; ++r) {
      const __m256 pj = _mm256_set1_ps(p[r * n_pos + j]);
      for (int c = 0; c < 4; ++c) acc[r][c] = _mm256_fmadd_ps(pj, vk[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < 4 && c * 8 < w; ++c) {
      alignas(32) float tmp[8];
      _mm256_store_ps(tmp, acc[r][c]);
      std::memcpy(out + r * d + c * 8, tmp, (size_t)std::min<int64_t>(8, w - c * 8) * 4);
    }
}

template <typename KV>
void attn_values_avx2(const float* p, int64_t r, const KV* v, int64_t vstride, int64_t n_pos, int64_t d, float* out) {
  for (int64_t i = 0; i < d; i += 32) {
    const int64_t w = std::min<int64_t>(32, d - i);
    int64_t h = 0;
    for (; h + 2 <= r; h += 2) values_tile<2>(p + h * n_pos, n_pos, v + i, vstride, d, w, out + h * d + i);
    for (; h < r; ++h) values_tile<1>(p + h * n_pos, n_pos, v + i, vstride, d, w, out + h * d + i);
  }
}

void swiglu_avx2(const float* gate, const float* up, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, qk::silu_mul<V256>(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
  ref_swiglu(gate + i, up + i, n - i, out + i);
}

void add_avx2(float* y, const float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(x + i)));
  for (; i < n; ++i) y[i] += x[i];
}

void f32_to_f16_avx2(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; ++i) y[i] = _cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT);
}

}  // namespace

const KernelTable& avx2_table() {
  static const KernelTable t = [] {
    KernelTable k = scalar_table();
    k.isa = Isa::kAvx2;
    k.quantize_acts = quantize_acts_avx2;
    k.matmul_q4 = matmul_tiled_avx2<QType::kQ4>;
    k.matmul_q8 = matmul_tiled_avx2<QType::kQ8>;
    k.matmul_q4m = matmul_tiled_avx2<QType::kQ4M>;
    k.matmul_float = matmul_float_avx2;
    k.attn_scores_f16 = attn_scores_avx2<uint16_t>;
    k.attn_values_f16 = attn_values_avx2<uint16_t>;
    k.attn_scores_f32 = attn_scores_avx2<float>;
    k.attn_values_f32 = attn_values_avx2<float>;
    k.row_max = qk::row_max<V256>;
    k.exp_sum = qk::exp_sum<V256>;
    k.swiglu = swiglu_avx2;
    k.add = add_avx2;
    k.f32_to_f16 = f32_to_f16_avx2;
    k.dequant_q8_blocks = dequant_q8_blocks_avx2;
    k.dequant_q4_blocks = dequant_q4_blocks_avx2;
    return k;
  }();
  return t;
}

}  // namespace cria::kernels
