// NEON kernels for every ARMv8.0 CPU (Cortex-A53/A72: Raspberry Pi 3 and 4).
// The int8-weight matmuls have no dot-product instruction here: each 16-byte
// load of a tile is 4 rows x 4 columns; widening multiplies (smull/smlal)
// against 4 activation bytes replicated across the register accumulate
// products in int16 lanes, which pairwise adds (sadalp/addp) fold into one
// int32 per row. The dotprod table (arm_neondot.cc) starts from this one and
// replaces only the int8 matmuls.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "quant/fp16.h"
#include "runtime/kernels/arm_simd.h"
#include "runtime/kernels/kernels.h"

namespace cria::kernels {

namespace {

using arm::load_f16x16;
using arm::load_f16x4;
using arm::load_i32;
using arm::store_tile;

void quantize_acts_neon(const float* x, int64_t n, int64_t cols, int8_t* q, float* d, float* s) {
  const int64_t nb = cols / 32;
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t b = 0; b < nb; ++b) {
      const float* xb = x + t * cols + b * 32;
      float32x4_t v[8];
      for (int i = 0; i < 8; ++i) v[i] = vld1q_f32(xb + 4 * i);
      // maxnm ignores NaN like std::fmax in the reference.
      float32x4_t m = vabsq_f32(v[0]);
      for (int i = 1; i < 8; ++i) m = vmaxnmq_f32(m, vabsq_f32(v[i]));
      const float amax = std::fmax(0.0f, vmaxnmvq_f32(m));
      const float db = amax / 127.0f;
      const float id = db != 0 ? 1.0f / db : 0.0f;
      // fcvtns rounds to nearest even, as lrintf does in the default mode.
      int32x4_t sum = vdupq_n_s32(0);
      int16x8_t h[4];
      for (int i = 0; i < 4; ++i) {
        const int32x4_t lo = vcvtnq_s32_f32(vmulq_n_f32(v[2 * i], id));
        const int32x4_t hi = vcvtnq_s32_f32(vmulq_n_f32(v[2 * i + 1], id));
        sum = vaddq_s32(sum, vaddq_s32(lo, hi));
        h[i] = vcombine_s16(vqmovn_s32(lo), vqmovn_s32(hi));
      }
      int8_t* qb = q + t * cols + b * 32;
      vst1q_s8(qb, vcombine_s8(vqmovn_s16(h[0]), vqmovn_s16(h[1])));
      vst1q_s8(qb + 16, vcombine_s8(vqmovn_s16(h[2]), vqmovn_s16(h[3])));
      d[t * nb + b] = db;
      s[t * nb + b] = db * (float)vaddvq_s32(sum);
    }
  }
}

// ---- int8-weight matmuls ----------------------------------------------------

constexpr int kTokBlock = 2;       // tokens per register block
constexpr int64_t kTokChunk = 64;  // tokens whose activations stay cached while the tiles stream past

inline int8x16_t splat4(const int8_t* p) { return vreinterpretq_s8_s32(vdupq_n_s32(load_i32(p))); }

// Integer dot products of quarter j (rows 4j..4j+3) of one 32-column block of
// a tile with the block's activations ab[t] of NT tokens: out[t] lane i is
// row 4j+i. Q8 bytes are u = q + 128, flipped to q with one XOR. Q4/Q4M
// nibbles stay unsigned (0..15); the caller corrects for Q4's zero point.
// Int16 lanes are safe: Q8 sums 2 products of at most 128 x 127, Q4 8
// products of at most 15 x 127.
template <QType T, int NT>
inline void quarter_dot(const uint8_t* qb, int j, const int8_t* const ab[NT], int32x4_t out[NT]) {
  if constexpr (T == QType::kQ8) {
    const uint8x16_t flip = vdupq_n_u8(0x80);
    int32x4_t lo32[NT], hi32[NT];
    for (int t = 0; t < NT; ++t) lo32[t] = hi32[t] = vdupq_n_s32(0);
    for (int c = 0; c < 8; c += 2) {
      const int8x16_t w0 = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(qb + c * 64 + 16 * j), flip));
      const int8x16_t w1 = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(qb + (c + 1) * 64 + 16 * j), flip));
      for (int t = 0; t < NT; ++t) {
        const int8x16_t a0 = splat4(ab[t] + 4 * c), a1 = splat4(ab[t] + 4 * c + 4);
        int16x8_t lo = vmull_s8(vget_low_s8(w0), vget_low_s8(a0));
        lo = vmlal_s8(lo, vget_low_s8(w1), vget_low_s8(a1));
        int16x8_t hi = vmull_high_s8(w0, a0);
        hi = vmlal_high_s8(hi, w1, a1);
        lo32[t] = vpadalq_s16(lo32[t], lo);
        hi32[t] = vpadalq_s16(hi32[t], hi);
      }
    }
    // lo32: [r0, r0, r1, r1] partial sums, hi32: [r2, r2, r3, r3].
    for (int t = 0; t < NT; ++t) out[t] = vpaddq_s32(lo32[t], hi32[t]);
  } else {
    const uint8x16_t m4 = vdupq_n_u8(0x0f);
    int16x8_t lo[NT], hi[NT];
    for (int t = 0; t < NT; ++t) lo[t] = hi[t] = vdupq_n_s16(0);
    for (int c = 0; c < 4; ++c) {
      // Low nibbles: columns 8c..8c+3; high nibbles: 8c+4..8c+7.
      const uint8x16_t v = vld1q_u8(qb + c * 64 + 16 * j);
      const int8x16_t wl = vreinterpretq_s8_u8(vandq_u8(v, m4));
      const int8x16_t wh = vreinterpretq_s8_u8(vshrq_n_u8(v, 4));
      for (int t = 0; t < NT; ++t) {
        const int8x16_t al = splat4(ab[t] + 8 * c), ah = splat4(ab[t] + 8 * c + 4);
        lo[t] = vmlal_s8(lo[t], vget_low_s8(wl), vget_low_s8(al));
        hi[t] = vmlal_high_s8(hi[t], wl, al);
        lo[t] = vmlal_s8(lo[t], vget_low_s8(wh), vget_low_s8(ah));
        hi[t] = vmlal_high_s8(hi[t], wh, ah);
      }
    }
    for (int t = 0; t < NT; ++t) out[t] = vpaddq_s32(vpaddlq_s16(lo[t]), vpaddlq_s16(hi[t]));
  }
}

// One tile (16 rows) against NT tokens starting at t0, all blocks.
//   Q8:  acc += d_w * (d_a * dot)
//   Q4:  acc += d_w * (d_a * dot - 8 * s_a)
//   Q4M: acc += d_w * d_a * dot + m_w * s_a
template <QType T, int NT>
void tile_tokens(const Matrix& w, const QActs& a, int64_t tile, int64_t t0, float* y, int64_t ldy) {
  const QLayout& l = w.l;
  const int64_t nb = (int64_t)l.blocks, bpg = (int64_t)l.group / 32;
  const int64_t block_bytes = T == QType::kQ8 ? 512 : 256;
  const uint8_t* qt = w.data + l.q_offset + tile * l.tile_q_bytes;
  const uint16_t* st = reinterpret_cast<const uint16_t*>(w.data + l.s_offset + tile * l.tile_s_bytes);
  const uint16_t* mt =
      T == QType::kQ4M ? reinterpret_cast<const uint16_t*>(w.data + l.m_offset + tile * l.tile_s_bytes) : nullptr;
  float32x4_t acc[NT][4];
  for (int t = 0; t < NT; ++t)
    for (int j = 0; j < 4; ++j) acc[t][j] = vdupq_n_f32(0.0f);
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t g = b / bpg;
    const int8_t* ab[NT];
    float da[NT], sa[NT];
    for (int t = 0; t < NT; ++t) {
      ab[t] = a.q + (t0 + t) * a.cols + b * 32;
      da[t] = a.d[(t0 + t) * nb + b];
      sa[t] = a.s[(t0 + t) * nb + b];
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      int32x4_t dot[NT];
      quarter_dot<T, NT>(qt + b * block_bytes, j, ab, dot);
      const float32x4_t dw = load_f16x4(st + g * 16 + 4 * j);
      for (int t = 0; t < NT; ++t) {
        const float32x4_t fd = vcvtq_f32_s32(dot[t]);
        if constexpr (T == QType::kQ8) {
          acc[t][j] = vfmaq_f32(acc[t][j], dw, vmulq_n_f32(fd, da[t]));
        } else if constexpr (T == QType::kQ4) {
          acc[t][j] = vfmaq_f32(acc[t][j], dw, vfmaq_n_f32(vdupq_n_f32(-8.0f * sa[t]), fd, da[t]));
        } else {
          const float32x4_t mw = load_f16x4(mt + g * 16 + 4 * j);
          acc[t][j] = vfmaq_n_f32(vfmaq_f32(acc[t][j], dw, vmulq_n_f32(fd, da[t])), mw, sa[t]);
        }
      }
    }
  }
  const int valid = (int)std::min<int64_t>(kTileRows, (int64_t)l.rows - tile * kTileRows);
  for (int t = 0; t < NT; ++t) store_tile(y + (t0 + t) * ldy + tile * kTileRows, valid, acc[t]);
}

template <QType T>
void matmul_tiled_neon(const Matrix& w, const QActs& a, int64_t n, int64_t tile0, int64_t tile1, float* y,
                       int64_t ldy) {
  for (int64_t tc = 0; tc < n; tc += kTokChunk) {
    const int64_t tce = std::min(n, tc + kTokChunk);
    for (int64_t tile = tile0; tile < tile1; ++tile) {
      int64_t t0 = tc;
      for (; t0 + kTokBlock <= tce; t0 += kTokBlock) tile_tokens<T, kTokBlock>(w, a, tile, t0, y, ldy);
      for (; t0 < tce; ++t0) tile_tokens<T, 1>(w, a, tile, t0, y, ldy);
    }
  }
}

// ---- float-weight matmuls ---------------------------------------------------

// 8 weights of a row from column k as two float vectors.
template <QType T>
inline void load_w8(const uint8_t* row, int64_t k, float32x4_t& w0, float32x4_t& w1) {
  if constexpr (T == QType::kF32) {
    w0 = vld1q_f32(reinterpret_cast<const float*>(row) + k);
    w1 = vld1q_f32(reinterpret_cast<const float*>(row) + k + 4);
  } else if constexpr (T == QType::kF16) {
    const uint16x8_t h = vld1q_u16(reinterpret_cast<const uint16_t*>(row) + k);
    w0 = vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(h)));
    w1 = vcvt_high_f32_f16(vreinterpretq_f16_u16(h));
  } else if constexpr (T == QType::kBF16) {
    const uint16x8_t h = vld1q_u16(reinterpret_cast<const uint16_t*>(row) + k);
    w0 = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16));
    w1 = vreinterpretq_f32_u32(vshll_high_n_u16(h, 16));
  } else {  // I8C
    const int16x8_t s = vmovl_s8(vld1_s8(reinterpret_cast<const int8_t*>(row) + k));
    w0 = vcvtq_f32_s32(vmovl_s16(vget_low_s16(s)));
    w1 = vcvtq_f32_s32(vmovl_high_s16(s));
  }
}

template <QType T>
inline float load_w1(const uint8_t* row, int64_t k) {
  uint16_t h;
  float f;
  if constexpr (T == QType::kF32) {
    std::memcpy(&f, row + k * 4, 4);
    return f;
  } else if constexpr (T == QType::kF16) {
    std::memcpy(&h, row + k * 2, 2);
    return fp16_to_f32(h);
  } else if constexpr (T == QType::kBF16) {
    std::memcpy(&h, row + k * 2, 2);
    return bf16_to_f32(h);
  } else {
    return (float)(int8_t)row[k];
  }
}

// Row r against NT tokens: two accumulators per token (two FMA chains).
template <QType T, int NT>
inline void float_row(const uint8_t* row, int64_t cols, const float* x, int64_t ldx, float scale, float* y,
                      int64_t ldy) {
  float32x4_t acc[NT][2];
  for (int j = 0; j < NT; ++j) acc[j][0] = acc[j][1] = vdupq_n_f32(0.0f);
  int64_t k = 0;
  for (; k + 8 <= cols; k += 8) {
    float32x4_t w0, w1;
    load_w8<T>(row, k, w0, w1);
    for (int j = 0; j < NT; ++j) {
      acc[j][0] = vfmaq_f32(acc[j][0], w0, vld1q_f32(x + j * ldx + k));
      acc[j][1] = vfmaq_f32(acc[j][1], w1, vld1q_f32(x + j * ldx + k + 4));
    }
  }
  for (int j = 0; j < NT; ++j) {
    float sum = vaddvq_f32(vaddq_f32(acc[j][0], acc[j][1]));
    for (int64_t kk = k; kk < cols; ++kk) sum += load_w1<T>(row, kk) * x[j * ldx + kk];
    y[j * ldy] = sum * scale;
  }
}

template <QType T>
void matmul_float_t(const Matrix& w, const float* x, int64_t n, int64_t ldx, int64_t row0, int64_t row1, float* y,
                    int64_t ldy) {
  const int64_t cols = (int64_t)w.cols();
  for (int64_t r = row0; r < row1; ++r) {
    const uint8_t* row = w.data + w.l.q_offset + r * w.l.row_bytes;
    float scale = 1.0f;
    if constexpr (T == QType::kI8C) std::memcpy(&scale, w.data + w.l.s_offset + r * 4, 4);
    int64_t t = 0;
    for (; t + 4 <= n; t += 4) float_row<T, 4>(row, cols, x + t * ldx, ldx, scale, y + t * ldy + r, ldy);
    switch (n - t) {
      case 3: float_row<T, 3>(row, cols, x + t * ldx, ldx, scale, y + t * ldy + r, ldy); break;
      case 2: float_row<T, 2>(row, cols, x + t * ldx, ldx, scale, y + t * ldy + r, ldy); break;
      case 1: float_row<T, 1>(row, cols, x + t * ldx, ldx, scale, y + t * ldy + r, ldy); break;
      default: break;
    }
  }
}

void matmul_float_neon(const Matrix& w, const float* x, int64_t n, int64_t ldx, int64_t row0, int64_t row1, float* y,
                       int64_t ldy) {
  switch (w.type) {
    case QType::kF16: return matmul_float_t<QType::kF16>(w, x, n, ldx, row0, row1, y, ldy);
    case QType::kBF16: return matmul_float_t<QType::kBF16>(w, x, n, ldx, row0, row1, y, ldy);
    case QType::kI8C: return matmul_float_t<QType::kI8C>(w, x, n, ldx, row0, row1, y, ldy);
    default: return matmul_float_t<QType::kF32>(w, x, n, ldx, row0, row1, y, ldy);
  }
}

// ---- attention ----------------------------------------------------------------

inline float kv1(uint16_t h) { return fp16_to_f32(h); }
inline float kv1(float f) { return f; }
inline float32x4_t kv4(const uint16_t* p) { return load_f16x4(p); }
inline float32x4_t kv4(const float* p) { return vld1q_f32(p); }

// Scores of NH heads against one cache row: the row is converted once per
// 8 values and shared by the heads.
template <int NH, typename KV>
inline void scores_heads(const float* q, const KV* kj, int64_t d, float scale, float* out, int64_t n_pos) {
  float32x4_t acc[NH][2];
  for (int h = 0; h < NH; ++h) acc[h][0] = acc[h][1] = vdupq_n_f32(0.0f);
  int64_t i = 0;
  for (; i + 8 <= d; i += 8) {
    const float32x4_t k0 = kv4(kj + i), k1 = kv4(kj + i + 4);
    for (int h = 0; h < NH; ++h) {
      acc[h][0] = vfmaq_f32(acc[h][0], vld1q_f32(q + h * d + i), k0);
      acc[h][1] = vfmaq_f32(acc[h][1], vld1q_f32(q + h * d + i + 4), k1);
    }
  }
  for (int h = 0; h < NH; ++h) {
    float sum = vaddvq_f32(vaddq_f32(acc[h][0], acc[h][1]));
    for (int64_t ii = i; ii < d; ++ii) sum += q[h * d + ii] * kv1(kj[ii]);
    out[h * n_pos] = sum * scale;
  }
}

template <typename KV>
void attn_scores_neon(const float* q, int64_t r, const KV* k, int64_t kstride, int64_t n_pos, int64_t d, float scale,
                      float* scores) {
  for (int64_t j = 0; j < n_pos; ++j) {
    const KV* kj = k + j * kstride;
    int64_t h = 0;
    for (; h + 4 <= r; h += 4) scores_heads<4>(q + h * d, kj, d, scale, scores + h * n_pos + j, n_pos);
    switch (r - h) {
      case 3: scores_heads<3>(q + h * d, kj, d, scale, scores + h * n_pos + j, n_pos); break;
      case 2: scores_heads<2>(q + h * d, kj, d, scale, scores + h * n_pos + j, n_pos); break;
      case 1: scores_heads<1>(q + h * d, kj, d, scale, scores + h * n_pos + j, n_pos); break;
      default: break;
    }
  }
}

// out[h][i..i+4W) for NH heads, over every position: each cache row's
// values are converted once and shared by the heads.
template <int NH, int W, typename KV>
inline void values_heads(const float* p, int64_t n_pos, const KV* v, int64_t vstride, int64_t d, float* out) {
  float32x4_t acc[NH][W];
  for (int h = 0; h < NH; ++h)
    for (int c = 0; c < W; ++c) acc[h][c] = vdupq_n_f32(0.0f);
  for (int64_t j = 0; j < n_pos; ++j) {
    float32x4_t vv[W];
    for (int c = 0; c < W; ++c) vv[c] = kv4(v + j * vstride + 4 * c);
    for (int h = 0; h < NH; ++h) {
      const float pj = p[h * n_pos + j];
      for (int c = 0; c < W; ++c) acc[h][c] = vfmaq_n_f32(acc[h][c], vv[c], pj);
    }
  }
  for (int h = 0; h < NH; ++h)
    for (int c = 0; c < W; ++c) vst1q_f32(out + h * d + 4 * c, acc[h][c]);
}

template <int NH, typename KV>
inline void values_group(const float* p, int64_t n_pos, const KV* v, int64_t vstride, int64_t d, float* out) {
  int64_t i = 0;
  for (; i + 16 <= d; i += 16) values_heads<NH, 4>(p, n_pos, v + i, vstride, d, out + i);
  for (; i + 4 <= d; i += 4) values_heads<NH, 1>(p, n_pos, v + i, vstride, d, out + i);
  for (; i < d; ++i)
    for (int h = 0; h < NH; ++h) {
      float sum = 0;
      for (int64_t j = 0; j < n_pos; ++j) sum += p[h * n_pos + j] * kv1(v[j * vstride + i]);
      out[h * d + i] = sum;
    }
}

template <typename KV>
void attn_values_neon(const float* p, int64_t r, const KV* v, int64_t vstride, int64_t n_pos, int64_t d, float* out) {
  int64_t h = 0;
  for (; h + 4 <= r; h += 4) values_group<4>(p + h * n_pos, n_pos, v, vstride, d, out + h * d);
  switch (r - h) {
    case 3: values_group<3>(p + h * n_pos, n_pos, v, vstride, d, out + h * d); break;
    case 2: values_group<2>(p + h * n_pos, n_pos, v, vstride, d, out + h * d); break;
    case 1: values_group<1>(p + h * n_pos, n_pos, v, vstride, d, out + h * d); break;
    default: break;
  }
}

// ---- row ops --------------------------------------------------------------------

// exp(x): range reduction by ln 2 (split in two for precision) and a degree-6
// polynomial on [-ln2/2, ln2/2], as the x86 tables do; about 2 ulp, and 0
// below the clamp (exp(-inf) = 0).
inline float32x4_t exp4(float32x4_t x) {
  const float32x4_t lo = vdupq_n_f32(-87.3365447504f);
  const float32x4_t xc = vmaxq_f32(vminq_f32(x, vdupq_n_f32(88.3762626647949f)), lo);
  const float32x4_t n = vrndnq_f32(vmulq_n_f32(xc, 1.44269504088896341f));
  float32x4_t r = vfmsq_f32(xc, n, vdupq_n_f32(0.693359375f));
  r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
  float32x4_t p = vdupq_n_f32(1.9875691500e-4f);
  p = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), p, r);
  p = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), p, r);
  p = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), p, r);
  p = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), p, r);
  p = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0f)), p, vmulq_f32(r, r));
  // 2^n from the exponent bits (n is in [-126, 127] after the clamp).
  const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
  const float32x4_t res = vmulq_f32(p, vreinterpretq_f32_s32(e));
  return vbslq_f32(vcltq_f32(x, lo), vdupq_n_f32(0.0f), res);
}

void rmsnorm_neon(const float* x, const float* w, float eps, int64_t n, float* y) {
  // Four accumulators (16 lanes) keep each lane's sum as short as AVX-512's.
  float32x4_t ss[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int c = 0; c < 4; ++c) {
      const float32x4_t v = vld1q_f32(x + i + 4 * c);
      ss[c] = vfmaq_f32(ss[c], v, v);
    }
  float sum = vaddvq_f32(vaddq_f32(vaddq_f32(ss[0], ss[1]), vaddq_f32(ss[2], ss[3])));
  for (; i < n; ++i) sum += x[i] * x[i];
  const float inv = 1.0f / std::sqrt(sum / (float)n + eps);
  i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vmulq_f32(vld1q_f32(w + i), vmulq_n_f32(vld1q_f32(x + i), inv)));
  for (; i < n; ++i) y[i] = w[i] * (x[i] * inv);
}

void layernorm_neon(const float* x, const float* w, const float* b, float eps, int64_t n, float* y) {
  float32x4_t s[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int c = 0; c < 4; ++c) s[c] = vaddq_f32(s[c], vld1q_f32(x + i + 4 * c));
  float sum = vaddvq_f32(vaddq_f32(vaddq_f32(s[0], s[1]), vaddq_f32(s[2], s[3])));
  for (; i < n; ++i) sum += x[i];
  const float mean = sum / (float)n;
  const float32x4_t vm = vdupq_n_f32(mean);
  for (int c = 0; c < 4; ++c) s[c] = vdupq_n_f32(0);
  i = 0;
  for (; i + 16 <= n; i += 16)
    for (int c = 0; c < 4; ++c) {
      const float32x4_t v = vsubq_f32(vld1q_f32(x + i + 4 * c), vm);
      s[c] = vfmaq_f32(s[c], v, v);
    }
  float var = vaddvq_f32(vaddq_f32(vaddq_f32(s[0], s[1]), vaddq_f32(s[2], s[3])));
  for (; i < n; ++i) var += (x[i] - mean) * (x[i] - mean);
  const float inv = 1.0f / std::sqrt(var / (float)n + eps);
  i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t c = vmulq_n_f32(vsubq_f32(vld1q_f32(x + i), vm), inv);
    vst1q_f32(y + i, vfmaq_f32(vld1q_f32(b + i), c, vld1q_f32(w + i)));
  }
  for (; i < n; ++i) y[i] = (x[i] - mean) * inv * w[i] + b[i];
}

void swiglu_neon(const float* gate, const float* up, int64_t n, float* out) {
  const float32x4_t one = vdupq_n_f32(1.0f);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t g = vld1q_f32(gate + i);
    const float32x4_t silu = vdivq_f32(g, vaddq_f32(one, exp4(vnegq_f32(g))));
    vst1q_f32(out + i, vmulq_f32(silu, vld1q_f32(up + i)));
  }
  for (; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

// GELU with erf from Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7).
void gelu_neon(float* x, int64_t n) {
  const float32x4_t one = vdupq_n_f32(1.0f);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t v = vld1q_f32(x + i);
    const float32x4_t z = vmulq_n_f32(v, 0.70710678118654752f);
    const float32x4_t az = vabsq_f32(z);
    const float32x4_t t = vdivq_f32(one, vfmaq_n_f32(one, az, 0.3275911f));
    float32x4_t poly = vdupq_n_f32(1.061405429f);
    poly = vfmaq_f32(vdupq_n_f32(-1.453152027f), poly, t);
    poly = vfmaq_f32(vdupq_n_f32(1.421413741f), poly, t);
    poly = vfmaq_f32(vdupq_n_f32(-0.284496736f), poly, t);
    poly = vfmaq_f32(vdupq_n_f32(0.254829592f), poly, t);
    poly = vmulq_f32(poly, t);
    const float32x4_t e = exp4(vnegq_f32(vmulq_f32(az, az)));
    const float32x4_t erf_abs = vfmsq_f32(one, poly, e);
    // erf is odd: copy the sign of z.
    const uint32x4_t sign = vandq_u32(vreinterpretq_u32_f32(z), vdupq_n_u32(0x80000000u));
    const float32x4_t erf = vreinterpretq_f32_u32(vorrq_u32(vreinterpretq_u32_f32(erf_abs), sign));
    vst1q_f32(x + i, vmulq_f32(vmulq_n_f32(v, 0.5f), vaddq_f32(one, erf)));
  }
  for (; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678118654752f));
}

void add_neon(float* y, const float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vaddq_f32(vld1q_f32(y + i), vld1q_f32(x + i)));
  for (; i < n; ++i) y[i] += x[i];
}

void rope_neon(float* x, int64_t heads, int64_t d, const float* cos, const float* sin) {
  const int64_t half = d / 2;
  for (int64_t h = 0; h < heads; ++h) {
    float* v = x + h * d;
    int64_t i = 0;
    for (; i + 4 <= half; i += 4) {
      const float32x4_t a = vld1q_f32(v + i), b = vld1q_f32(v + half + i);
      const float32x4_t c = vld1q_f32(cos + i), s = vld1q_f32(sin + i);
      vst1q_f32(v + i, vfmsq_f32(vmulq_f32(a, c), b, s));
      vst1q_f32(v + half + i, vfmaq_f32(vmulq_f32(b, c), a, s));
    }
    for (; i < half; ++i) {
      const float a = v[i], b = v[i + half];
      v[i] = a * cos[i] - b * sin[i];
      v[i + half] = b * cos[i] + a * sin[i];
    }
  }
}

// fcvtn rounds to nearest even like the reference for every finite value
// (NaN payloads may differ).
void f32_to_f16_neon(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1_u16(y + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(x + i))));
  for (; i < n; ++i) y[i] = f32_to_fp16(x[i]);
}

}  // namespace

const KernelTable& neon_table() {
  static const KernelTable t = [] {
    KernelTable k = scalar_table();
    k.isa = Isa::kNeon;
    k.quantize_acts = quantize_acts_neon;
    k.matmul_q4 = matmul_tiled_neon<QType::kQ4>;
    k.matmul_q8 = matmul_tiled_neon<QType::kQ8>;
    k.matmul_q4m = matmul_tiled_neon<QType::kQ4M>;
    k.matmul_float = matmul_float_neon;
    k.attn_scores_f16 = attn_scores_neon<uint16_t>;
    k.attn_values_f16 = attn_values_neon<uint16_t>;
    k.attn_scores_f32 = attn_scores_neon<float>;
    k.attn_values_f32 = attn_values_neon<float>;
    k.rmsnorm = rmsnorm_neon;
    k.layernorm = layernorm_neon;
    k.swiglu = swiglu_neon;
    k.gelu = gelu_neon;
    k.add = add_neon;
    k.rope = rope_neon;
    k.f32_to_f16 = f32_to_f16_neon;
    return k;
  }();
  return t;
}

}  // namespace cria::kernels
