// NEON i8mm kernels (ARMv8.6 SMMLA, optional from ARMv8.2: Cortex-A510/
// A710/X2 and later, Neoverse V1/N2, Apple M2). SMMLA multiplies a 2 x 8 int8
// matrix by an 8 x 2 one into a 2 x 2 int32 block: 32 multiply-adds per
// instruction where SDOT by lane does 16. A pair of weight rows meets a
// pair of tokens, so it pays in prefill; decode (one token) would waste half
// of every instruction and keeps the dotprod table's kernel.
//
// Operands from the tile layout (quant/quant.h): quarter j of a 64-byte
// chunk is rows 4j..4j+3 x 4 bytes. For 8 columns of rows (4j, 4j+1) the A
// operand is zip1 of two 32-bit-lane vectors (Q8: chunks 2g and 2g + 1,
// columns 8g..8g+7; Q4: the low and high nibbles of chunk g, which are
// those same columns), zip2 gives rows (4j+2, 4j+3). The B operand is two
// tokens' 8 activation bytes side by side. The 2 x 2 results of the two row
// pairs unzip into one 4-row vector per token, which the shared fold turns
// into floats exactly as the other tables do.
#include <algorithm>

#include "runtime/kernels/arm_simd.h"
#include "runtime/kernels/kernels.h"
#include "runtime/kernels/qkernel_common.h"

namespace cria::kernels {

const KernelTable& neondot_table();

namespace {

using arm::load_f16x4;
using arm::V4;

// Tokens per register block: two pairs (16 float accumulators, 8 B operands).
constexpr int kTokBlock = 4;

// The A operands of 8 columns (group g of a 32-column block) for rows
// (4j, 4j+1) in *w01 and (4j+2, 4j+3) in *w23.
template <QType T>
inline void row_pairs(const uint8_t* qb, int j, int g, int8x16_t* w01, int8x16_t* w23) {
  uint32x4_t lo, hi;
  if constexpr (T == QType::kQ8) {
    // Codes are u = q + 128: one XOR makes them signed.
    const uint8x16_t flip = vdupq_n_u8(0x80);
    lo = vreinterpretq_u32_u8(veorq_u8(vld1q_u8(qb + (2 * g) * 64 + 16 * j), flip));
    hi = vreinterpretq_u32_u8(veorq_u8(vld1q_u8(qb + (2 * g + 1) * 64 + 16 * j), flip));
  } else {
    // Nibbles stay unsigned (0..15 is a valid int8); qk::fold corrects Q4's
    // zero point and adds Q4M's min.
    const uint8x16_t v = vld1q_u8(qb + g * 64 + 16 * j);
    lo = vreinterpretq_u32_u8(vandq_u8(v, vdupq_n_u8(0x0f)));
    hi = vreinterpretq_u32_u8(vshrq_n_u8(v, 4));
  }
  *w01 = vreinterpretq_s8_u32(vzip1q_u32(lo, hi));
  *w23 = vreinterpretq_s8_u32(vzip2q_u32(lo, hi));
}

// One tile (16 rows) against NT tokens starting at t0 (NT = 4, or 1 for the
// few tokens left over in a chunk: that token is paired with itself).
template <QType T, int NT>
void tile_tokens(const qk::Tile& tl, const QActs& a, int64_t t0, float* y, int64_t ldy) {
  constexpr int NP = (NT + 1) / 2;
  float32x4_t acc[NT][4];
  qk::ActRow rows[2 * NP];
  for (int t = 0; t < NT; ++t)
    for (int j = 0; j < 4; ++j) acc[t][j] = vdupq_n_f32(0.0f);
  for (int t = 0; t < 2 * NP; ++t) rows[t] = qk::act_row(a, t0 + std::min(t, NT - 1));
  for (int64_t b = 0; b < tl.blocks; ++b) {
    qk::ActBlock ab[2 * NP];
    int8x16_t bm[NP][4];  // pair p, columns 8g..8g+7: token 2p's bytes, then token 2p + 1's
    for (int p = 0; p < NP; ++p) {
      ab[2 * p] = rows[2 * p].block(b);
      ab[2 * p + 1] = rows[2 * p + 1].block(b);
      for (int h = 0; h < 2; ++h) {
        const int64x2_t x = vreinterpretq_s64_s8(vld1q_s8(ab[2 * p].q + 16 * h));
        const int64x2_t z = vreinterpretq_s64_s8(vld1q_s8(ab[2 * p + 1].q + 16 * h));
        bm[p][2 * h] = vreinterpretq_s8_s64(vzip1q_s64(x, z));
        bm[p][2 * h + 1] = vreinterpretq_s8_s64(vzip2q_s64(x, z));
      }
    }
    const uint8_t* qb = tl.block(b);
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      int32x4_t r01[NP], r23[NP];
      for (int p = 0; p < NP; ++p) r01[p] = r23[p] = vdupq_n_s32(0);
      for (int g = 0; g < 4; ++g) {
        int8x16_t w01, w23;
        row_pairs<T>(qb, j, g, &w01, &w23);
        for (int p = 0; p < NP; ++p) {
          r01[p] = vmmlaq_s32(r01[p], w01, bm[p][g]);
          r23[p] = vmmlaq_s32(r23[p], w23, bm[p][g]);
        }
      }
      const float32x4_t dw = load_f16x4(tl.scales(b) + 4 * j);
      const float32x4_t mw = T == QType::kQ4M ? load_f16x4(tl.mins(b) + 4 * j) : dw;
      for (int p = 0; p < NP; ++p) {
        // r01 = [row 4j . t0, row 4j . t1, row 4j+1 . t0, row 4j+1 . t1]; likewise r23.
        const int32x4_t d0 = vuzp1q_s32(r01[p], r23[p]), d1 = vuzp2q_s32(r01[p], r23[p]);
        acc[2 * p][j] = qk::fold<T, T == QType::kQ8, V4>(acc[2 * p][j], dw, mw, vcvtq_f32_s32(d0), ab[2 * p].d,
                                                         ab[2 * p].s);
        if (2 * p + 1 < NT)
          acc[2 * p + 1][j] = qk::fold<T, T == QType::kQ8, V4>(acc[2 * p + 1][j], dw, mw, vcvtq_f32_s32(d1),
                                                               ab[2 * p + 1].d, ab[2 * p + 1].s);
      }
    }
  }
  for (int t = 0; t < NT; ++t) qk::store_tile<V4>(y + (t0 + t) * ldy + tl.row0, tl.valid, acc[t]);
}

template <QType T>
void matmul_tiled_i8mm(const Matrix& w, const QActs& a, int64_t n, int64_t tile0, int64_t tile1, float* y,
                       int64_t ldy) {
  if (n == 1) {  // decode: SDOT by lane uses every lane of every instruction
    const KernelTable& dot = neondot_table();
    (T == QType::kQ4 ? dot.matmul_q4 : T == QType::kQ8 ? dot.matmul_q8 : dot.matmul_q4m)(w, a, n, tile0, tile1, y,
                                                                                          ldy);
    return;
  }
  qk::for_tiles_and_tokens<kTokBlock>(n, tile0, tile1, [&](auto nt, int64_t tile, int64_t t0) {
    tile_tokens<T, decltype(nt)::value>(qk::tile_at<T>(w, tile), a, t0, y, ldy);
  });
}

}  // namespace

const KernelTable& i8mm_table() {
  static const KernelTable t = [] {
    KernelTable k = neondot_table();
    k.isa = Isa::kNeonI8mm;
    k.matmul_q4 = matmul_tiled_i8mm<QType::kQ4>;
    k.matmul_q8 = matmul_tiled_i8mm<QType::kQ8>;
    k.matmul_q4m = matmul_tiled_i8mm<QType::kQ4M>;
    return k;
  }();
  return t;
}

}  // namespace cria::kernels
