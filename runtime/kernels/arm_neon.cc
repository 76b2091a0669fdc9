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
#include "runtime/kernels/qkernel_common.h"

namespace cria::kernels {

namespace {

using arm::load_f16x4;
using arm::load_i32;
using arm::V4;

// quantize_acts' ISA part: 32 values in eight registers.
struct Acts4 {
  struct Block {
    float32x4_t v[8];
  };
  static Block load(const float* x) {
    Block b;
    for (int i = 0; i < 8; ++i) b.v[i] = vld1q_f32(x + 4 * i);
    return b;
  }
  static float amax(const Block& b) {
    // maxnm ignores NaN like std::fmax in the reference.
    float32x4_t m = vabsq_f32(b.v[0]);
    for (int i = 1; i < 8; ++i) m = vmaxnmq_f32(m, vabsq_f32(b.v[i]));
    return std::fmax(0.0f, vmaxnmvq_f32(m));
  }
  static int round_store(const Block& b, float id, int8_t* q) {
    // fcvtns rounds to nearest even, as lrintf does in the default mode.
    int32x4_t sum = vdupq_n_s32(0);
    int16x8_t h[4];
    for (int i = 0; i < 4; ++i) {
      const int32x4_t lo = vcvtnq_s32_f32(vmulq_n_f32(b.v[2 * i], id));
      const int32x4_t hi = vcvtnq_s32_f32(vmulq_n_f32(b.v[2 * i + 1], id));
      sum = vaddq_s32(sum, vaddq_s32(lo, hi));
      h[i] = vcombine_s16(vqmovn_s32(lo), vqmovn_s32(hi));
    }
    vst1q_s8(q, vcombine_s8(vqmovn_s16(h[0]), vqmovn_s16(h[1])));
    vst1q_s8(q + 16, vcombine_s8(vqmovn_s16(h[2]), vqmovn_s16(h[3])));
    return vaddvq_s32(sum);
  }
};

void quantize_acts_neon(const float* x, int64_t n, int64_t cols, int8_t* q, float* d, float* s) {
  qk::quantize_acts<Acts4>(x, n, cols, q, d, s);
}

// ---- int8-weight matmuls ----------------------------------------------------

constexpr int kTokBlock = 2;  // tokens per register block

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

// One tile (16 rows) against NT tokens starting at t0, all blocks; Q8 is
// centred by quarter_dot, Q4's zero point and Q4M's min are qk::fold's.
template <QType T, int NT>
void tile_tokens(const qk::Tile& tl, const QActs& a, int64_t t0, float* y, int64_t ldy) {
  float32x4_t acc[NT][4];
  qk::ActRow rows[NT];
  for (int t = 0; t < NT; ++t) {
    for (int j = 0; j < 4; ++j) acc[t][j] = vdupq_n_f32(0.0f);
    rows[t] = qk::act_row(a, t0 + t);
  }
  for (int64_t b = 0; b < tl.blocks; ++b) {
    qk::ActBlock ab[NT];
    const int8_t* aq[NT];
    for (int t = 0; t < NT; ++t) {
      ab[t] = rows[t].block(b);
      aq[t] = ab[t].q;
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      int32x4_t dot[NT];
      quarter_dot<T, NT>(tl.block(b), j, aq, dot);
      const float32x4_t dw = load_f16x4(tl.scales(b) + 4 * j);
      const float32x4_t mw = T == QType::kQ4M ? load_f16x4(tl.mins(b) + 4 * j) : dw;
      for (int t = 0; t < NT; ++t)
        acc[t][j] = qk::fold<T, T == QType::kQ8, V4>(acc[t][j], dw, mw, vcvtq_f32_s32(dot[t]), ab[t].d, ab[t].s);
    }
  }
  for (int t = 0; t < NT; ++t) qk::store_tile<V4>(y + (t0 + t) * ldy + tl.row0, tl.valid, acc[t]);
}

template <QType T>
void matmul_tiled_neon(const Matrix& w, const QActs& a, int64_t n, int64_t tile0, int64_t tile1, float* y,
                       int64_t ldy) {
  qk::for_tiles_and_tokens<kTokBlock>(n, tile0, tile1, [&](auto nt, int64_t tile, int64_t t0) {
    tile_tokens<T, decltype(nt)::value>(qk::tile_at<T>(w, tile), a, t0, y, ldy);
  });
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
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(out + i, qk::silu_mul<V4>(vld1q_f32(gate + i), vld1q_f32(up + i)));
  for (; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void gelu_neon(float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(x + i, qk::gelu<V4>(vld1q_f32(x + i)));
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
    k.row_max = qk::row_max<V4>;
    k.exp_sum = qk::exp_sum<V4>;
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
