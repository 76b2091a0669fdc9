// WebAssembly SIMD128 kernels (the browser build). SIMD128 has no int8 dot
// product, so the int8-weight matmuls multiply in 16 bits with
// i32x4.dot_i16x8_s (x64 pmaddwd, ARM smull+addp): 8 products and a pairwise
// add per instruction.
//
// The 16-row tile layout feeds it without any shuffling of weights. One
// 16-byte load of a 64-byte chunk is 4 rows x 4 bytes; read as eight u16
// lanes, lanes 2m and 2m+1 hold row m's bytes (0,1) and (2,3). Masking and
// shifting those lanes gives i16 vectors whose lane pairs are one row's
// weights at two columns, so one dot_i16x8 with the matching activation pair
// broadcast yields four complete row sums:
//   Q8, chunk c (columns 4c..4c+3):  x & 0xff -> columns (4c, 4c+2)
//                                    x >> 8   -> columns (4c+1, 4c+3)
//   Q4, chunk c: low nibbles are columns 8c..8c+3, high nibbles 8c+4..8c+7:
//     x & 0xf -> (8c, 8c+2)   (x >> 8) & 0xf -> (8c+1, 8c+3)
//     (x >> 4) & 0xf -> (8c+4, 8c+6)   x >> 12 -> (8c+5, 8c+7)
// The activations are prepared once per call as those i16 pairs
// ("pairs[2g], pairs[2g+1]" for each group g of 4 columns), so the inner
// loop broadcasts them with one v128.load32_splat.
//
// fp16 (weight scales, the KV cache) has no conversion instruction in
// SIMD128: it is rebuilt from bits (exact for normal and subnormal values).
#include <wasm_simd128.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "quant/fp16.h"
#include "runtime/kernels/kernels.h"
#include "runtime/kernels/qkernel_common.h"
#include "runtime/kernels/ref_ops.h"

namespace cria::kernels {

namespace {

// ---- helpers ------------------------------------------------------------

inline float hsum(v128_t v) {
  v = wasm_f32x4_add(v, wasm_i32x4_shuffle(v, v, 2, 3, 0, 1));
  v = wasm_f32x4_add(v, wasm_i32x4_shuffle(v, v, 1, 0, 3, 2));
  return wasm_f32x4_extract_lane(v, 0);
}

inline float hmax(v128_t v) {
  v = wasm_f32x4_max(v, wasm_i32x4_shuffle(v, v, 2, 3, 0, 1));
  v = wasm_f32x4_max(v, wasm_i32x4_shuffle(v, v, 1, 0, 3, 2));
  return wasm_f32x4_extract_lane(v, 0);
}

inline int32_t hsum_i32(v128_t v) {
  v = wasm_i32x4_add(v, wasm_i32x4_shuffle(v, v, 2, 3, 0, 1));
  v = wasm_i32x4_add(v, wasm_i32x4_shuffle(v, v, 1, 0, 3, 2));
  return wasm_i32x4_extract_lane(v, 0);
}

// Four fp16 values to f32, from bits: sign-extended to 32 bits and shifted
// so exponent and mantissa land in place (the sign bit too, with three
// copies of it above the exponent to clear), then rescaled by 2^112: exact
// for normal and subnormal values, which is all a weight scale or a KV-cache
// entry of a sound model holds (no inf/nan). Two constants only: V8
// rebuilds a v128 constant at every use inside a loop.
inline v128_t half4_to_f32(v128_t h_sext) {
  const v128_t bits = wasm_v128_and(wasm_i32x4_shl(h_sext, 13), wasm_i32x4_splat((int32_t)0x8fffffff));
  return wasm_f32x4_mul(bits, wasm_f32x4_splat(0x1p112f));
}

inline v128_t load_half4(const uint16_t* p) { return half4_to_f32(wasm_i32x4_load16x4(p)); }

// The vector operations qkernel_common.h's templates call, on 4 floats.
// SIMD128 has no fused multiply-add: fma and fnma round twice.
struct V4 {
  using F = v128_t;
  static constexpr int kLanes = 4;
  static F splat(float x) { return wasm_f32x4_splat(x); }
  static F zero() { return wasm_f32x4_splat(0.0f); }
  static F load(const float* p) { return wasm_v128_load(p); }
  static void store(float* p, F v) { wasm_v128_store(p, v); }
  static F add(F a, F b) { return wasm_f32x4_add(a, b); }
  static F sub(F a, F b) { return wasm_f32x4_sub(a, b); }
  static F mul(F a, F b) { return wasm_f32x4_mul(a, b); }
  static F div(F a, F b) { return wasm_f32x4_div(a, b); }
  static F neg(F a) { return wasm_f32x4_neg(a); }
  static F abs(F a) { return wasm_f32x4_abs(a); }
  static F min(F a, F b) { return wasm_f32x4_pmin(a, b); }
  static F max(F a, F b) { return wasm_f32x4_pmax(a, b); }
  static F fma(F a, F b, F c) { return wasm_f32x4_add(wasm_f32x4_mul(a, b), c); }
  static F fnma(F a, F b, F c) { return wasm_f32x4_sub(c, wasm_f32x4_mul(a, b)); }
  static F round(F a) { return wasm_f32x4_nearest(a); }
  // 2^n from the exponent bits.
  static F ldexp(F p, F n) {
    return wasm_f32x4_mul(p, wasm_i32x4_shl(wasm_i32x4_add(wasm_i32x4_trunc_sat_f32x4(n), wasm_i32x4_splat(127)), 23));
  }
  static F zero_below(F res, F x, F lo) { return wasm_v128_andnot(res, wasm_f32x4_lt(x, lo)); }
  static F copysign(F mag, F sign) {
    return wasm_v128_or(mag, wasm_v128_and(sign, wasm_i32x4_splat((int32_t)0x80000000u)));
  }
};

// ---- activations ----------------------------------------------------------

// quantize_acts' ISA part: 32 values in eight registers.
struct Acts4 {
  struct Block {
    v128_t v[8];
  };
  static Block load(const float* x) {
    Block b;
    for (int i = 0; i < 8; ++i) b.v[i] = wasm_v128_load(x + 4 * i);
    return b;
  }
  static float amax(const Block& b) {
    v128_t m = wasm_f32x4_splat(0.0f);
    for (int i = 0; i < 8; ++i) m = wasm_f32x4_max(m, wasm_f32x4_abs(b.v[i]));
    return hmax(m);
  }
  static int round_store(const Block& b, float id, int8_t* q) {
    const v128_t vid = wasm_f32x4_splat(id);
    v128_t iv[8];
    v128_t sum = wasm_i32x4_splat(0);
    for (int i = 0; i < 8; ++i) {
      // nearest rounds half to even, as lrintf does in the reference.
      iv[i] = wasm_i32x4_trunc_sat_f32x4(wasm_f32x4_nearest(wasm_f32x4_mul(b.v[i], vid)));
      sum = wasm_i32x4_add(sum, iv[i]);
    }
    const v128_t h0 = wasm_i16x8_narrow_i32x4(iv[0], iv[1]), h1 = wasm_i16x8_narrow_i32x4(iv[2], iv[3]);
    const v128_t h2 = wasm_i16x8_narrow_i32x4(iv[4], iv[5]), h3 = wasm_i16x8_narrow_i32x4(iv[6], iv[7]);
    wasm_v128_store(q, wasm_i8x16_narrow_i16x8(h0, h1));
    wasm_v128_store(q + 16, wasm_i8x16_narrow_i16x8(h2, h3));
    return hsum_i32(sum);
  }
};

void quantize_acts_wasm(const float* x, int64_t n, int64_t cols, int8_t* q, float* d, float* s) {
  qk::quantize_acts<Acts4>(x, n, cols, q, d, s);
}

// Activations of a chunk of tokens as i16 pairs (see the top of the file),
// kept per thread: up to kChunkTok tokens, fewer for very long rows.
constexpr int64_t kMaxCols = 32768;
constexpr int64_t kPairBytes = 512 * 1024;
constexpr int kChunkTok = 16;
alignas(16) thread_local int16_t t_pairs[kPairBytes / 2];

inline int64_t chunk_tokens(int64_t cols) {
  return std::max<int64_t>(1, std::min<int64_t>(kChunkTok, kPairBytes / (cols * 2)));
}

// Writes the pair layout of token rows [t0, t0 + nt): for each group of 4
// columns, (a0, a2, a1, a3) as i16; token j at t_pairs + j * cols.
void prepare_pairs(const QActs& a, int64_t t0, int64_t nt) {
  for (int64_t j = 0; j < nt; ++j) {
    const int8_t* src = a.q + (t0 + j) * a.cols;
    int16_t* dst = t_pairs + j * a.cols;
    for (int64_t k = 0; k < a.cols; k += 16) {
      const v128_t v = wasm_v128_load(src + k);
      const v128_t sh = wasm_i8x16_shuffle(v, v, 0, 2, 1, 3, 4, 6, 5, 7, 8, 10, 9, 11, 12, 14, 13, 15);
      wasm_v128_store(dst + k, wasm_i16x8_extend_low_i8x16(sh));
      wasm_v128_store(dst + k + 8, wasm_i16x8_extend_high_i8x16(sh));
    }
  }
}

inline v128_t pair(const int16_t* p, int64_t idx) { return wasm_v128_load32_splat(p + 2 * idx); }

// One 32-column block of a tile, unpacked to i16 once for every token of the
// chunk: u[k][q] pairs with activation pair k (16 pairs per block), rows
// 4q..4q+3.
template <QType T>
inline void unpack_block(const uint8_t* qb, v128_t u[16][4]) {
  if (T == QType::kQ8) {
    for (int c = 0; c < 8; ++c)
      for (int q = 0; q < 4; ++q) {
        const v128_t x = wasm_v128_load(qb + c * 64 + q * 16);
        u[2 * c][q] = wasm_u16x8_shr(wasm_i16x8_shl(x, 8), 8);
        u[2 * c + 1][q] = wasm_u16x8_shr(x, 8);
      }
  } else {
    for (int c = 0; c < 4; ++c)
      for (int q = 0; q < 4; ++q) {
        const v128_t x = wasm_v128_load(qb + c * 64 + q * 16);
        u[4 * c][q] = wasm_u16x8_shr(wasm_i16x8_shl(x, 12), 12);
        u[4 * c + 1][q] = wasm_u16x8_shr(wasm_i16x8_shl(x, 4), 12);
        u[4 * c + 2][q] = wasm_u16x8_shr(wasm_i16x8_shl(x, 8), 12);
        u[4 * c + 3][q] = wasm_u16x8_shr(x, 12);
      }
  }
}

// NT (1 or 2) tokens x 16 rows of one block: 4 x NT dot accumulators, each
// activation pair broadcast once for all 16 rows, folded by qk::fold into
// acc (per token, 16 floats). The codes are unsigned here (Q8 too).
template <QType T, int NT>
inline void block_tokens(const v128_t u[16][4], const int16_t* p0, int64_t cols, const v128_t* dw, const v128_t* mw,
                         const qk::ActBlock* ab, float* acc) {
  v128_t dot[NT][4];
  for (int j = 0; j < NT; ++j)
    for (int q = 0; q < 4; ++q) dot[j][q] = wasm_i32x4_splat(0);
  for (int k = 0; k < 16; ++k) {
    for (int j = 0; j < NT; ++j) {
      const v128_t s = pair(p0 + j * cols, k);
      for (int q = 0; q < 4; ++q) dot[j][q] = wasm_i32x4_add(dot[j][q], wasm_i32x4_dot_i16x8(u[k][q], s));
    }
  }
  for (int j = 0; j < NT; ++j) {
    float* out = acc + j * 16;
    for (int q = 0; q < 4; ++q)
      wasm_v128_store(out + 4 * q, qk::fold<T, false, V4>(wasm_v128_load(out + 4 * q), dw[q], mw[q],
                                                          wasm_f32x4_convert_i32x4(dot[j][q]), ab[j].d, ab[j].s));
  }
}

// Several tokens (prefill): for each tile and block, the weights are unpacked
// once and serve every token of the chunk, two at a time.
template <QType T>
void tile_tokens(const qk::Tile& tl, const QActs& a, int64_t t0, int64_t nt, float* acc) {
  std::fill(acc, acc + nt * 16, 0.0f);
  v128_t u[16][4];
  v128_t dw[4], mw[4];
  for (int64_t b = 0; b < tl.blocks; ++b) {
    unpack_block<T>(tl.block(b), u);
    for (int q = 0; q < 4; ++q) {
      dw[q] = load_half4(tl.scales(b) + 4 * q);
      mw[q] = T == QType::kQ4M ? load_half4(tl.mins(b) + 4 * q) : dw[q];
    }
    int64_t j = 0;
    for (; j + 2 <= nt; j += 2) {
      const qk::ActBlock ab[2] = {qk::act_row(a, t0 + j).block(b), qk::act_row(a, t0 + j + 1).block(b)};
      block_tokens<T, 2>(u, t_pairs + j * a.cols + b * 32, a.cols, dw, mw, ab, acc + j * 16);
    }
    if (j < nt) {
      const qk::ActBlock ab = qk::act_row(a, t0 + j).block(b);
      block_tokens<T, 1>(u, t_pairs + j * a.cols + b * 32, a.cols, dw, mw, &ab, acc + j * 16);
    }
  }
}

// One token (decode): all four quads of a tile at once, so each activation
// pair is broadcast once for 16 rows and the block's scales are splatted
// once, not per quad.
template <QType T>
void tile_one_token(const qk::Tile& tl, const QActs& a, int64_t t0, v128_t* acc) {
  const int16_t* pairs = t_pairs;
  const qk::ActRow row = qk::act_row(a, t0);
  for (int q = 0; q < 4; ++q) acc[q] = wasm_f32x4_splat(0.0f);
  for (int64_t b = 0; b < tl.blocks; ++b) {
    const uint8_t* qb = tl.block(b);
    const int16_t* p = pairs + b * 32;
    v128_t dot[4];
    for (int q = 0; q < 4; ++q) dot[q] = wasm_i32x4_splat(0);
    if (T == QType::kQ8) {
      for (int c = 0; c < 8; ++c) {
        const v128_t pe = pair(p, 2 * c), po = pair(p, 2 * c + 1);
        for (int q = 0; q < 4; ++q) {
          const v128_t x = wasm_v128_load(qb + c * 64 + q * 16);
          dot[q] = wasm_i32x4_add(dot[q], wasm_i32x4_add(wasm_i32x4_dot_i16x8(wasm_u16x8_shr(wasm_i16x8_shl(x, 8), 8), pe),
                                                         wasm_i32x4_dot_i16x8(wasm_u16x8_shr(x, 8), po)));
        }
      }
    } else {
      for (int c = 0; c < 4; ++c) {
        const v128_t p0 = pair(p, 4 * c), p1 = pair(p, 4 * c + 1), p2 = pair(p, 4 * c + 2), p3 = pair(p, 4 * c + 3);
        for (int q = 0; q < 4; ++q) {
          const v128_t x = wasm_v128_load(qb + c * 64 + q * 16);
          const v128_t s01 = wasm_i32x4_add(wasm_i32x4_dot_i16x8(wasm_u16x8_shr(wasm_i16x8_shl(x, 12), 12), p0),
                                            wasm_i32x4_dot_i16x8(wasm_u16x8_shr(wasm_i16x8_shl(x, 4), 12), p1));
          const v128_t s23 = wasm_i32x4_add(wasm_i32x4_dot_i16x8(wasm_u16x8_shr(wasm_i16x8_shl(x, 8), 12), p2),
                                            wasm_i32x4_dot_i16x8(wasm_u16x8_shr(x, 12), p3));
          dot[q] = wasm_i32x4_add(dot[q], wasm_i32x4_add(s01, s23));
        }
      }
    }
    const qk::ActBlock ab = row.block(b);
    for (int q = 0; q < 4; ++q) {
      const v128_t dw = load_half4(tl.scales(b) + 4 * q);
      const v128_t mw = T == QType::kQ4M ? load_half4(tl.mins(b) + 4 * q) : dw;
      acc[q] = qk::fold<T, false, V4>(acc[q], dw, mw, wasm_f32x4_convert_i32x4(dot[q]), ab.d, ab.s);
    }
  }
}

// Tiles per cache block: their weights stay in L2 while every token chunk
// of the call streams past.
constexpr int64_t kTileChunk = 8;

template <QType T>
void matmul_tiled_wasm(const Matrix& w, const QActs& a, int64_t n, int64_t tile0, int64_t tile1, float* y,
                       int64_t ldy) {
  if (a.cols > kMaxCols) {
    scalar_table().matmul_q4(w, a, n, tile0, tile1, y, ldy);  // no wasm32-sized model has such rows
    return;
  }
  const int64_t chunk = chunk_tokens(a.cols);
  alignas(16) float acc[kChunkTok * 16];
  for (int64_t tc = tile0; tc < tile1; tc += kTileChunk) {
    const int64_t tce = std::min(tile1, tc + kTileChunk);
    for (int64_t t0 = 0; t0 < n; t0 += chunk) {
      const int64_t nt = std::min(chunk, n - t0);
      prepare_pairs(a, t0, nt);
      for (int64_t tile = tc; tile < tce; ++tile) {
        const qk::Tile tl = qk::tile_at<T>(w, tile);
        if (nt == 1) {
          v128_t r[4];
          tile_one_token<T>(tl, a, t0, r);
          qk::store_tile<V4>(y + t0 * ldy + tl.row0, tl.valid, r);
          continue;
        }
        tile_tokens<T>(tl, a, t0, nt, acc);
        for (int64_t j = 0; j < nt; ++j) qk::store_rows(y + (t0 + j) * ldy + tl.row0, acc + j * 16, tl.valid);
      }
    }
  }
}

// ---- float weights --------------------------------------------------------

// Four weights of a row from column k as f32.
inline v128_t load_w4(QType t, const uint8_t* row, int64_t k) {
  switch (t) {
    case QType::kF16: return load_half4(reinterpret_cast<const uint16_t*>(row) + k);
    case QType::kBF16: return wasm_i32x4_shl(wasm_u32x4_load16x4(row + k * 2), 16);
    case QType::kI8C: {
      int32_t v;
      std::memcpy(&v, row + k, 4);
      return wasm_f32x4_convert_i32x4(wasm_i32x4_extend_low_i16x8(wasm_i16x8_extend_low_i8x16(wasm_i32x4_splat(v))));
    }
    default: return wasm_v128_load(row + k * 4);
  }
}

inline float w_scalar(QType t, const uint8_t* row, int64_t k) {
  switch (t) {
    case QType::kF16: { uint16_t h; std::memcpy(&h, row + k * 2, 2); return fp16_to_f32(h); }
    case QType::kBF16: { uint16_t h; std::memcpy(&h, row + k * 2, 2); return bf16_to_f32(h); }
    case QType::kI8C: return (float)(int8_t)row[k];
    default: { float f; std::memcpy(&f, row + k * 4, 4); return f; }
  }
}

void matmul_float_wasm(const Matrix& w, const float* x, int64_t n, int64_t ldx, int64_t row0, int64_t row1, float* y,
                       int64_t ldy) {
  const int64_t cols = (int64_t)w.cols(), c4 = cols & ~int64_t(3);
  const uint8_t* base = w.data + w.l.q_offset;
  for (int64_t r = row0; r < row1; ++r) {
    const uint8_t* row = base + r * w.l.row_bytes;
    float scale = 1.0f;
    if (w.type == QType::kI8C) std::memcpy(&scale, w.data + w.l.s_offset + r * 4, 4);
    constexpr int kTok = 4;
    for (int64_t t0 = 0; t0 < n; t0 += kTok) {
      const int nt = (int)std::min<int64_t>(kTok, n - t0);
      v128_t acc[kTok];
      for (int j = 0; j < kTok; ++j) acc[j] = wasm_f32x4_splat(0.0f);
      for (int64_t k = 0; k < c4; k += 4) {
        const v128_t wv = load_w4(w.type, row, k);
        for (int j = 0; j < nt; ++j)
          acc[j] = wasm_f32x4_add(acc[j], wasm_f32x4_mul(wv, wasm_v128_load(x + (t0 + j) * ldx + k)));
      }
      for (int j = 0; j < nt; ++j) {
        float s = hsum(acc[j]);
        for (int64_t k = c4; k < cols; ++k) s += w_scalar(w.type, row, k) * x[(t0 + j) * ldx + k];
        y[(t0 + j) * ldy + r] = s * scale;
      }
    }
  }
}

// ---- attention ------------------------------------------------------------

// Positions converted from f16 per step: the K or V rows are turned into
// f32 once and then serve every query head of the group.
constexpr int64_t kPosChunk = 32;
constexpr int64_t kMaxHeadDim = 256;

inline void half_row_to_f32(const uint16_t* h, int64_t d, float* out) {
  int64_t i = 0;
  for (; i + 4 <= d; i += 4) wasm_v128_store(out + i, load_half4(h + i));
  for (; i < d; ++i) out[i] = fp16_to_f32(h[i]);
}

inline float dot_f32(const float* a, const float* b, int64_t d) {
  v128_t acc = wasm_f32x4_splat(0.0f);
  int64_t i = 0;
  for (; i + 4 <= d; i += 4) acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_v128_load(a + i), wasm_v128_load(b + i)));
  float s = hsum(acc);
  for (; i < d; ++i) s += a[i] * b[i];
  return s;
}

// out[i] += p * v[i]
inline void axpy(float p, const float* v, int64_t d, float* out) {
  const v128_t vp = wasm_f32x4_splat(p);
  int64_t i = 0;
  for (; i + 4 <= d; i += 4)
    wasm_v128_store(out + i, wasm_f32x4_add(wasm_v128_load(out + i), wasm_f32x4_mul(vp, wasm_v128_load(v + i))));
  for (; i < d; ++i) out[i] += p * v[i];
}

void attn_scores_f16_wasm(const float* q, int64_t r, const uint16_t* k, int64_t kstride, int64_t n_pos, int64_t d,
                          float scale, float* scores) {
  if (d > kMaxHeadDim) return scalar_table().attn_scores_f16(q, r, k, kstride, n_pos, d, scale, scores);
  alignas(16) float kf[kPosChunk * kMaxHeadDim];
  for (int64_t j0 = 0; j0 < n_pos; j0 += kPosChunk) {
    const int64_t m = std::min(kPosChunk, n_pos - j0);
    for (int64_t j = 0; j < m; ++j) half_row_to_f32(k + (j0 + j) * kstride, d, kf + j * d);
    for (int64_t h = 0; h < r; ++h)
      for (int64_t j = 0; j < m; ++j) scores[h * n_pos + j0 + j] = dot_f32(q + h * d, kf + j * d, d) * scale;
  }
}

void attn_values_f16_wasm(const float* p, int64_t r, const uint16_t* v, int64_t vstride, int64_t n_pos, int64_t d,
                          float* out) {
  if (d > kMaxHeadDim) return scalar_table().attn_values_f16(p, r, v, vstride, n_pos, d, out);
  alignas(16) float vf[kPosChunk * kMaxHeadDim];
  for (int64_t h = 0; h < r; ++h) std::fill(out + h * d, out + h * d + d, 0.0f);
  for (int64_t j0 = 0; j0 < n_pos; j0 += kPosChunk) {
    const int64_t m = std::min(kPosChunk, n_pos - j0);
    for (int64_t j = 0; j < m; ++j) half_row_to_f32(v + (j0 + j) * vstride, d, vf + j * d);
    for (int64_t h = 0; h < r; ++h)
      for (int64_t j = 0; j < m; ++j) axpy(p[h * n_pos + j0 + j], vf + j * d, d, out + h * d);
  }
}

void attn_scores_f32_wasm(const float* q, int64_t r, const float* k, int64_t kstride, int64_t n_pos, int64_t d,
                          float scale, float* scores) {
  for (int64_t h = 0; h < r; ++h)
    for (int64_t j = 0; j < n_pos; ++j) scores[h * n_pos + j] = dot_f32(q + h * d, k + j * kstride, d) * scale;
}

void attn_values_f32_wasm(const float* p, int64_t r, const float* v, int64_t vstride, int64_t n_pos, int64_t d,
                          float* out) {
  for (int64_t h = 0; h < r; ++h) {
    std::fill(out + h * d, out + h * d + d, 0.0f);
    for (int64_t j = 0; j < n_pos; ++j) axpy(p[h * n_pos + j], v + j * vstride, d, out + h * d);
  }
}

// ---- row ops --------------------------------------------------------------

void rmsnorm_wasm(const float* x, const float* w, float eps, int64_t n, float* y) {
  v128_t ss = wasm_f32x4_splat(0.0f);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const v128_t v = wasm_v128_load(x + i);
    ss = wasm_f32x4_add(ss, wasm_f32x4_mul(v, v));
  }
  float sum = hsum(ss);
  for (; i < n; ++i) sum += x[i] * x[i];
  const float inv = 1.0f / std::sqrt(sum / (float)n + eps);
  const v128_t vi = wasm_f32x4_splat(inv);
  for (i = 0; i + 4 <= n; i += 4)
    wasm_v128_store(y + i, wasm_f32x4_mul(wasm_v128_load(w + i), wasm_f32x4_mul(wasm_v128_load(x + i), vi)));
  for (; i < n; ++i) y[i] = w[i] * (x[i] * inv);
}

void swiglu_wasm(const float* gate, const float* up, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) wasm_v128_store(out + i, qk::silu_mul<V4>(wasm_v128_load(gate + i), wasm_v128_load(up + i)));
  for (; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void add_wasm(float* y, const float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) wasm_v128_store(y + i, wasm_f32x4_add(wasm_v128_load(y + i), wasm_v128_load(x + i)));
  for (; i < n; ++i) y[i] += x[i];
}

void rope_wasm(float* x, int64_t heads, int64_t d, const float* cos, const float* sin) {
  const int64_t half = d / 2;
  for (int64_t h = 0; h < heads; ++h) {
    float* v = x + h * d;
    int64_t i = 0;
    for (; i + 4 <= half; i += 4) {
      const v128_t a = wasm_v128_load(v + i), b = wasm_v128_load(v + half + i);
      const v128_t c = wasm_v128_load(cos + i), s = wasm_v128_load(sin + i);
      wasm_v128_store(v + i, wasm_f32x4_sub(wasm_f32x4_mul(a, c), wasm_f32x4_mul(b, s)));
      wasm_v128_store(v + half + i, wasm_f32x4_add(wasm_f32x4_mul(b, c), wasm_f32x4_mul(a, s)));
    }
    for (; i < half; ++i) {
      const float a = v[i], b = v[i + half];
      v[i] = a * cos[i] - b * sin[i];
      v[i + half] = b * cos[i] + a * sin[i];
    }
  }
}

}  // namespace

const KernelTable& wasm_table() {
  static const KernelTable t = [] {
    KernelTable k = scalar_table();
    k.isa = Isa::kWasmSimd;
    k.quantize_acts = quantize_acts_wasm;
    k.matmul_q4 = matmul_tiled_wasm<QType::kQ4>;
    k.matmul_q8 = matmul_tiled_wasm<QType::kQ8>;
    k.matmul_q4m = matmul_tiled_wasm<QType::kQ4M>;
    k.matmul_float = matmul_float_wasm;
    k.attn_scores_f16 = attn_scores_f16_wasm;
    k.attn_values_f16 = attn_values_f16_wasm;
    k.attn_scores_f32 = attn_scores_f32_wasm;
    k.attn_values_f32 = attn_values_f32_wasm;
    k.rmsnorm = rmsnorm_wasm;
    k.row_max = qk::row_max<V4>;
    k.exp_sum = qk::exp_sum<V4>;
    k.swiglu = swiglu_wasm;
    k.add = add_wasm;
    k.rope = rope_wasm;
    // layernorm and gelu (Falcon) and f32_to_f16 (exact rounding, a few
    // values per token) stay on the reference.
    return k;
  }();
  return t;
}

}  // namespace cria::kernels
