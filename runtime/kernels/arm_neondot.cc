// NEON dotprod kernels (ARMv8.2 SDOT: Cortex-A55/A76 and later, Raspberry Pi
// 5, Jetson Orin). Only the int8-weight matmuls differ from the plain NEON
// table: each 16-byte load of a 16-row tile is 4 rows x 4 columns, and
// `sdot` by lane multiplies it with 4 activation bytes picked from a
// register, giving 4 rows' partial sums per instruction with no horizontal
// reduction, the ARM counterpart of the AVX-512 table's vpdpbusd.
#include <algorithm>

#include "runtime/kernels/arm_simd.h"
#include "runtime/kernels/kernels.h"
#include "runtime/kernels/qkernel_common.h"

namespace cria::kernels {

const KernelTable& neon_table();

namespace {

using arm::load_f16x4;
using arm::V4;

// Tokens per register block: 4 (16 float accumulators) spills with GCC 12.
constexpr int kTokBlock = 2;

// acc[t] += w[g] . activation bytes 4g..4g+3 of a[t], for the 4 column
// groups g of one 16-column half of a block.
template <int NT>
inline void dot4(int32x4_t acc[NT], const int8x16_t w[4], const int8x16_t a[NT]) {
  for (int t = 0; t < NT; ++t) {
    acc[t] = vdotq_laneq_s32(acc[t], w[0], a[t], 0);
    acc[t] = vdotq_laneq_s32(acc[t], w[1], a[t], 1);
    acc[t] = vdotq_laneq_s32(acc[t], w[2], a[t], 2);
    acc[t] = vdotq_laneq_s32(acc[t], w[3], a[t], 3);
  }
}

// Integer dot products of quarter j (rows 4j..4j+3) of one 32-column block
// with the activations of NT tokens (a0: columns 0..15, a1: 16..31); out[t]
// lane i is row 4j+i. Q8 bytes are u = q + 128, flipped to q with one XOR;
// Q4/Q4M nibbles stay unsigned (the caller corrects for Q4's zero point).
template <QType T, int NT>
inline void quarter_dot(const uint8_t* qb, int j, const int8x16_t a0[NT], const int8x16_t a1[NT], int32x4_t out[NT]) {
  for (int t = 0; t < NT; ++t) out[t] = vdupq_n_s32(0);
  int8x16_t w[4];
  if constexpr (T == QType::kQ8) {
    // Chunk c holds columns 4c..4c+3.
    const uint8x16_t flip = vdupq_n_u8(0x80);
    for (int h = 0; h < 2; ++h) {
      for (int c = 0; c < 4; ++c) w[c] = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(qb + (4 * h + c) * 64 + 16 * j), flip));
      dot4<NT>(out, w, h ? a1 : a0);
    }
  } else {
    // Chunk c: low nibbles columns 8c..8c+3, high nibbles 8c+4..8c+7.
    const uint8x16_t m4 = vdupq_n_u8(0x0f);
    for (int h = 0; h < 2; ++h) {
      for (int c = 0; c < 2; ++c) {
        const uint8x16_t v = vld1q_u8(qb + (2 * h + c) * 64 + 16 * j);
        w[2 * c] = vreinterpretq_s8_u8(vandq_u8(v, m4));
        w[2 * c + 1] = vreinterpretq_s8_u8(vshrq_n_u8(v, 4));
      }
      dot4<NT>(out, w, h ? a1 : a0);
    }
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
    int8x16_t a0[NT], a1[NT];
    qk::ActBlock ab[NT];
    for (int t = 0; t < NT; ++t) {
      ab[t] = rows[t].block(b);
      a0[t] = vld1q_s8(ab[t].q);
      a1[t] = vld1q_s8(ab[t].q + 16);
    }
    const uint8_t* qb = tl.block(b);
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      int32x4_t dot[NT];
      quarter_dot<T, NT>(qb, j, a0, a1, dot);
      const float32x4_t dw = load_f16x4(tl.scales(b) + 4 * j);
      const float32x4_t mw = T == QType::kQ4M ? load_f16x4(tl.mins(b) + 4 * j) : dw;
      for (int t = 0; t < NT; ++t)
        acc[t][j] = qk::fold<T, T == QType::kQ8, V4>(acc[t][j], dw, mw, vcvtq_f32_s32(dot[t]), ab[t].d, ab[t].s);
    }
  }
  for (int t = 0; t < NT; ++t) qk::store_tile<V4>(y + (t0 + t) * ldy + tl.row0, tl.valid, acc[t]);
}

template <QType T>
void matmul_tiled_neondot(const Matrix& w, const QActs& a, int64_t n, int64_t tile0, int64_t tile1, float* y,
                          int64_t ldy) {
  qk::for_tiles_and_tokens<kTokBlock>(n, tile0, tile1, [&](auto nt, int64_t tile, int64_t t0) {
    tile_tokens<T, decltype(nt)::value>(qk::tile_at<T>(w, tile), a, t0, y, ldy);
  });
}

}  // namespace

const KernelTable& neondot_table() {
  static const KernelTable t = [] {
    KernelTable k = neon_table();
    k.isa = Isa::kNeonDot;
    k.matmul_q4 = matmul_tiled_neondot<QType::kQ4>;
    k.matmul_q8 = matmul_tiled_neondot<QType::kQ8>;
    k.matmul_q4m = matmul_tiled_neondot<QType::kQ4M>;
    return k;
  }();
  return t;
}

}  // namespace cria::kernels
