// The parts of the int8-weight kernels that do not depend on the instruction
// set, written once and included by every ISA file (x86_avx2.cc,
// x86_avx512.cc, arm_neon.cc, arm_neondot.cc, wasm_simd.cc; ref.cc for the
// layout facts):
//   - the facts of each tiled weight type (bytes per block, zero point, min
//     plane) and where a tile's planes, scales and mins live (quant/quant.h);
//   - the loop over token chunks, tiles and token blocks;
//   - the algebra that folds an integer block dot product into the float
//     accumulators (zero point, weight and activation scales, Q4M's min);
//   - the epilogue that writes a tile's outputs (rows past the matrix's end
//     are never written);
//   - quantize_acts around the ISA's load/max/round/pack of 32 values;
//   - the exp polynomial and the SiLU and GELU built on it.
// An ISA file keeps its inner loop (the integer dot products of a block) and
// a small struct V of vector operations that the templates here call:
//   F, kLanes, splat, zero, load, store, add, sub, mul, div, neg, abs,
//   min, max, fma(a, b, c) = a * b + c, fnma(a, b, c) = c - a * b (fused
//   where the ISA has it), round (to nearest even), ldexp (p * 2^n for an
//   integral n in [-126, 127]), zero_below (0 where x < lo, else res),
//   copysign (the magnitude of the first, the sign of the second).
// The templates write each operation in the order the ISA files used to,
// so every table computes the same bits as before the move.
//
// Everything here has internal linkage: the ISA files are compiled with
// different flags, and an inline function with external linkage would be
// merged by the linker into one copy, possibly built for the newest ISA.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "runtime/kernels/kernels.h"

namespace cria::kernels::qk {
namespace {

// ---- layout facts ------------------------------------------------------------

// What a kernel needs to know of a tiled type (quant/quant.h describes the
// layout): the bytes of one 32-column block of a 16-row tile, the code that
// means zero (x = (u - zero_point) * d), and whether a min plane adds m.
struct TileType {
  int64_t block_bytes;
  float zero_point;
  bool has_min;
};
constexpr TileType tile_type(QType t) {
  switch (t) {
    case QType::kQ8: return {512, 128.0f, false};
    case QType::kQ4: return {256, 8.0f, false};
    case QType::kQ4M: return {256, 0.0f, true};
    default: return {0, 0.0f, false};
  }
}

// The value of code u with scale d and min m (the reference dequantization).
inline float dequant(QType t, int u, float d, float m) {
  const TileType tt = tile_type(t);
  return tt.has_min ? (float)u * d + m : (float)(u - (int)tt.zero_point) * d;
}

// One 16-row tile of a weight matrix: its quant bytes, its per-row fp16
// scales and mins for every group, and how many of its rows are real.
struct Tile {
  const uint8_t* q;
  const uint16_t* s;
  const uint16_t* m;  // Q4M only
  int64_t row0;
  int valid;           // rows [row0, row0 + valid) exist; the rest is padding
  int64_t blocks;      // 32-column blocks per row
  int64_t block_bytes;
  int64_t blocks_per_group;

  const uint8_t* block(int64_t b) const { return q + b * block_bytes; }
  // The 16 scales (mins) that apply to block b: one per row of the tile.
  const uint16_t* scales(int64_t b) const { return s + b / blocks_per_group * kTileRows; }
  const uint16_t* mins(int64_t b) const { return m + b / blocks_per_group * kTileRows; }
};

template <QType T>
inline Tile tile_at(const Matrix& w, int64_t tile) {
  const QLayout& l = w.l;
  Tile t;
  t.q = w.data + l.q_offset + tile * l.tile_q_bytes;
  t.s = reinterpret_cast<const uint16_t*>(w.data + l.s_offset + tile * l.tile_s_bytes);
  t.m = tile_type(T).has_min ? reinterpret_cast<const uint16_t*>(w.data + l.m_offset + tile * l.tile_s_bytes)
                             : nullptr;
  t.row0 = tile * kTileRows;
  t.valid = (int)std::min<int64_t>(kTileRows, (int64_t)l.rows - t.row0);
  t.blocks = (int64_t)l.blocks;
  t.block_bytes = tile_type(T).block_bytes;
  t.blocks_per_group = (int64_t)l.group / 32;
  return t;
}

// Block b of a token's quantized activations: 32 int8 values, their scale
// d and d * (sum of the values), which carries the weights' zero point.
struct ActBlock {
  const int8_t* q;
  float d, s;
};
// One token's quantized activations; taken once per token so that the block
// loop only adds offsets.
struct ActRow {
  const int8_t* q;
  const float* d;
  const float* s;
  ActBlock block(int64_t b) const { return {q + b * 32, d[b], s[b]}; }
};
inline ActRow act_row(const QActs& a, int64_t t) {
  const int64_t nb = a.cols / 32;
  return {a.q + t * a.cols, a.d + t * nb, a.s + t * nb};
}

// ---- the loop ----------------------------------------------------------------

// Tokens whose activations stay in L1/L2 while every tile of the range
// streams past.
constexpr int64_t kTokChunk = 64;

// Calls fn(std::integral_constant<int, NT>, tile, t0) for every tile of
// [tile0, tile1) and every block of NT tokens of [0, n): NT = kTokBlock,
// then single tokens for the rest of each chunk. With kPairs the tiles go
// two at a time: fn(nt, tile, t0, pair), where pair (std::true_type or
// std::false_type) says whether tile + 1 comes with it; an odd last tile
// goes alone.
template <int kTokBlock, bool kPairs = false, typename Fn>
inline void for_tiles_and_tokens(int64_t n, int64_t tile0, int64_t tile1, Fn&& fn) {
  for (int64_t tc = 0; tc < n; tc += kTokChunk) {
    const int64_t tce = std::min(n, tc + kTokChunk);
    for (int64_t tile = tile0; tile < tile1; tile += kPairs ? 2 : 1) {
      const auto tokens = [&](auto... pair) {
        int64_t t0 = tc;
        for (; t0 + kTokBlock <= tce; t0 += kTokBlock) fn(std::integral_constant<int, kTokBlock>{}, tile, t0, pair...);
        for (; t0 < tce; ++t0) fn(std::integral_constant<int, 1>{}, tile, t0, pair...);
      };
      if constexpr (kPairs) {
        if (tile + 1 < tile1) tokens(std::true_type{});
        else tokens(std::false_type{});
      } else {
        tokens();
      }
    }
  }
}

// ---- the algebra -------------------------------------------------------------

// Folds the integer dot product `dot` (as floats) of one block of codes with
// one token's activations into acc, for the rows whose weight scales are dw
// and mins mw:
//   Q4M:                   acc += d_w * (d_a * dot) + m_w * s_a
//   Q4, Q8 (codes as u):   acc += d_w * (d_a * dot - zp * s_a)
//   Q8 (codes as u - 128): acc += d_w * (d_a * dot)
// kCentered says the inner loop already took the zero point off the codes
// (Q8 with the sign flip); s_a = d_a * sum(a) makes zp * s_a the zero
// point's share of the product.
template <QType T, bool kCentered, typename V>
inline typename V::F fold(typename V::F acc, typename V::F dw, typename V::F mw, typename V::F dot, float da,
                          float sa) {
  constexpr TileType tt = tile_type(T);
  if constexpr (tt.has_min) {
    return V::fma(mw, V::splat(sa), V::fma(dw, V::mul(dot, V::splat(da)), acc));
  } else if constexpr (kCentered) {
    static_assert(T == QType::kQ8, "only Q8 codes are centred by the inner loops");
    return V::fma(dw, V::mul(dot, V::splat(da)), acc);
  } else {
    return V::fma(dw, V::fma(dot, V::splat(da), V::splat(-tt.zero_point * sa)), acc);
  }
}

// ---- the epilogue ------------------------------------------------------------

// Writes a tile's first `valid` outputs from `tmp` (16 floats).
inline void store_rows(float* y, const float* tmp, int valid) {
  std::memcpy(y, tmp, (size_t)valid * sizeof(float));
}

// Writes the 16 outputs of a tile for one token, held in 16 / V::kLanes
// vectors; rows past the matrix's end (valid < 16) are not written.
template <typename V>
inline void store_tile(float* y, int valid, const typename V::F* acc) {
  constexpr int kVecs = (int)kTileRows / V::kLanes;
  if (valid == (int)kTileRows) {
    for (int i = 0; i < kVecs; ++i) V::store(y + i * V::kLanes, acc[i]);
    return;
  }
  alignas(64) float tmp[kTileRows];
  for (int i = 0; i < kVecs; ++i) V::store(tmp + i * V::kLanes, acc[i]);
  store_rows(y, tmp, valid);
}

// ---- activations -------------------------------------------------------------

// quantize_acts: each block of 32 values x becomes q = round(x / d) with
// d = max|x| / 127 (0 for an all-zero block), and s = d * sum(q). Q is the
// ISA's part: Q::Block holds the 32 values in registers, Q::load fills it,
// Q::amax returns max|x| (NaN ignored, as std::fmax does), Q::round_store
// writes the 32 rounded (to nearest even) int8 values and returns their sum.
template <typename Q>
inline void quantize_acts(const float* x, int64_t n, int64_t cols, int8_t* q, float* d, float* s) {
  const int64_t nb = cols / 32;
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t b = 0; b < nb; ++b) {
      const typename Q::Block v = Q::load(x + t * cols + b * 32);
      const float db = Q::amax(v) / 127.0f;
      const float id = db != 0 ? 1.0f / db : 0.0f;
      const int sum = Q::round_store(v, id, q + t * cols + b * 32);
      d[t * nb + b] = db;
      s[t * nb + b] = db * (float)sum;
    }
  }
}

// ---- polynomials ---------------------------------------------------------------

// exp(x): range reduction by ln 2 (split in two for precision) and a
// degree-6 polynomial on [-ln2/2, ln2/2]; about 2 ulp, and 0 below the clamp
// (the true value underflows; exp(-inf) = 0).
template <typename V>
inline typename V::F exp(typename V::F x) {
  using F = typename V::F;
  const F lo = V::splat(-87.3365447504f);
  const F xc = V::max(V::min(x, V::splat(88.3762626647949f)), lo);
  const F n = V::round(V::mul(xc, V::splat(1.44269504088896341f)));
  F r = V::fnma(n, V::splat(0.693359375f), xc);
  r = V::fnma(n, V::splat(-2.12194440e-4f), r);
  F p = V::splat(1.9875691500e-4f);
  p = V::fma(p, r, V::splat(1.3981999507e-3f));
  p = V::fma(p, r, V::splat(8.3334519073e-3f));
  p = V::fma(p, r, V::splat(4.1665795894e-2f));
  p = V::fma(p, r, V::splat(1.6666665459e-1f));
  p = V::fma(p, r, V::splat(5.0000001201e-1f));
  p = V::fma(p, V::mul(r, r), V::add(r, V::splat(1.0f)));
  return V::zero_below(V::ldexp(p, n), x, lo);
}

// The online softmax's two row passes (KernelTable::row_max, exp_sum).
template <typename V>
inline float row_max(const float* x, int64_t n, float init) {
  typename V::F m = V::splat(init);
  int64_t i = 0;
  for (; i + V::kLanes <= n; i += V::kLanes) m = V::max(m, V::load(x + i));
  float lanes[V::kLanes];
  V::store(lanes, m);
  float r = init;
  for (float l : lanes) r = std::max(r, l);
  for (; i < n; ++i) r = std::max(r, x[i]);
  return r;
}

// x[i] = exp(x[i] - sub), the sum returned; the tail goes through the same
// polynomial, padded with -inf (whose exp is 0).
template <typename V>
inline float exp_sum(float* x, int64_t n, float sub) {
  using F = typename V::F;
  const F vs = V::splat(sub);
  F acc = V::zero();
  int64_t i = 0;
  for (; i + V::kLanes <= n; i += V::kLanes) {
    const F e = exp<V>(V::sub(V::load(x + i), vs));
    V::store(x + i, e);
    acc = V::add(acc, e);
  }
  if (i < n) {
    float tail[V::kLanes];
    for (int j = 0; j < V::kLanes; ++j) tail[j] = i + j < n ? x[i + j] : -INFINITY;
    const F e = exp<V>(V::sub(V::load(tail), vs));
    V::store(tail, e);
    for (int64_t j = 0; i + j < n; ++j) x[i + j] = tail[j];
    acc = V::add(acc, e);
  }
  float lanes[V::kLanes];
  V::store(lanes, acc);
  float r = 0;
  for (float l : lanes) r += l;
  return r;
}

// silu(g) * u, the SwiGLU gate.
template <typename V>
inline typename V::F silu_mul(typename V::F g, typename V::F u) {
  const typename V::F silu = V::div(g, V::add(V::splat(1.0f), exp<V>(V::neg(g))));
  return V::mul(silu, u);
}

// GELU, exact (erf) form, with erf from Abramowitz & Stegun 7.1.26
// (|error| < 1.5e-7).
template <typename V>
inline typename V::F gelu(typename V::F v) {
  using F = typename V::F;
  const F one = V::splat(1.0f);
  const F z = V::mul(v, V::splat(0.70710678118654752f));
  const F az = V::abs(z);
  const F t = V::div(one, V::fma(V::splat(0.3275911f), az, one));
  F poly = V::splat(1.061405429f);
  poly = V::fma(poly, t, V::splat(-1.453152027f));
  poly = V::fma(poly, t, V::splat(1.421413741f));
  poly = V::fma(poly, t, V::splat(-0.284496736f));
  poly = V::fma(poly, t, V::splat(0.254829592f));
  poly = V::mul(poly, t);
  const F e = exp<V>(V::neg(V::mul(az, az)));
  const F erf_abs = V::fnma(poly, e, one);
  // erf is odd.
  return V::mul(V::mul(V::splat(0.5f), v), V::add(one, V::copysign(erf_abs, z)));
}

}  // namespace
}  // namespace cria::kernels::qk
