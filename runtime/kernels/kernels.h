// The kernel interface. Kernels know nothing of models: they see matrices,
// activation rows and KV-cache rows. A KernelTable holds one implementation of
// every op; tables exist per instruction set (scalar reference, AVX2,
// AVX-512 VNNI, NEON, NEON dotprod, WASM SIMD128) and one is picked at start-up
// from the CPU's features. The scalar table is the oracle the others are
// tested against.
//
// Naming follows what a kernel is: matmul_<weight type>, with the activation
// handling implied (int8 weight types take activations quantized to int8 in
// blocks of 32 by quantize_acts; float types take f32 activations).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "quant/quant.h"

namespace cria::kernels {

enum class Isa : uint8_t { kScalar, kAvx2, kAvx512, kNeon, kNeonDot, kNeonI8mm, kWasmSimd };
const char* isa_name(Isa isa);

// A weight matrix [rows, cols] in any storage type.
struct Matrix {
  QType type = QType::kF32;
  QLayout l;
  const uint8_t* data = nullptr;  // start of the tensor (all planes)

  uint64_t rows() const { return l.rows; }
  uint64_t cols() const { return l.cols; }
};

// Activations quantized to int8 in blocks of 32, per token:
//   q[t * cols + k]: int8 values, in column order
//   d[t * blocks + b]: f32 scale of block b (x ~ q * d)
//   s[t * blocks + b]: d * sum of the block's q, for the weights' zero point
struct QActs {
  const int8_t* q = nullptr;
  const float* d = nullptr;
  const float* s = nullptr;
  int64_t cols = 0;
};

struct KernelTable {
  Isa isa = Isa::kScalar;

  // Quantizes n rows of `cols` (a multiple of 32) f32 values.
  void (*quantize_acts)(const float* x, int64_t n, int64_t cols, int8_t* q, float* d, float* s);

  // Int8 weight types: y[t * ldy + r] for tokens t < n, rows of tiles
  // [tile0, tile1) (rows past the matrix's end are not written).
  void (*matmul_q8)(const Matrix& w, const QActs& a, int64_t n, int64_t tile0, int64_t tile1, float* y,
                    int64_t ldy);
  void (*matmul_q4)(const Matrix& w, const QActs& a, int64_t n, int64_t tile0, int64_t tile1, float* y,
                    int64_t ldy);
  void (*matmul_q4m)(const Matrix& w, const QActs& a, int64_t n, int64_t tile0, int64_t tile1, float* y,
                     int64_t ldy);
  // Float weight types (f32, f16, bf16) and I8C: rows [row0, row1).
  void (*matmul_float)(const Matrix& w, const float* x, int64_t n, int64_t ldx, int64_t row0, int64_t row1,
                       float* y, int64_t ldy);

  // Attention of r query heads sharing one KV head, over n_pos cache rows:
  //   scores[h * n_pos + j] = scale * dot(q[h * d ..], k[j * kstride ..])
  //   out[h * d + i] = sum_j p[h * n_pos + j] * v[j * vstride + i]
  // K/V rows are f16 (or f32 for the *_f32 variants).
  void (*attn_scores_f16)(const float* q, int64_t r, const uint16_t* k, int64_t kstride, int64_t n_pos,
                          int64_t d, float scale, float* scores);
  void (*attn_values_f16)(const float* p, int64_t r, const uint16_t* v, int64_t vstride, int64_t n_pos,
                          int64_t d, float* out);
  void (*attn_scores_f32)(const float* q, int64_t r, const float* k, int64_t kstride, int64_t n_pos, int64_t d,
                          float scale, float* scores);
  void (*attn_values_f32)(const float* p, int64_t r, const float* v, int64_t vstride, int64_t n_pos, int64_t d,
                          float* out);

  // The online softmax's passes over a row of scores: max(init, x[0..n)),
  // and x[i] = exp(x[i] - sub) in place, returning the new values' sum.
  float (*row_max)(const float* x, int64_t n, float init);
  float (*exp_sum)(float* x, int64_t n, float sub);

  // Row ops on n values.
  void (*rmsnorm)(const float* x, const float* w, float eps, int64_t n, float* y);
  void (*layernorm)(const float* x, const float* w, const float* b, float eps, int64_t n, float* y);
  // out = silu(gate) * up
  void (*swiglu)(const float* gate, const float* up, int64_t n, float* out);
  // x = gelu(x), exact (erf) form
  void (*gelu)(float* x, int64_t n);
  // y += x
  void (*add)(float* y, const float* x, int64_t n);
  // Rotary embedding, halves layout (HF rotate_half): for each of `heads`
  // vectors of d values, (x_i, x_{i+d/2}) is rotated by angle i.
  void (*rope)(float* x, int64_t heads, int64_t d, const float* cos, const float* sin);
  void (*f32_to_f16)(const float* x, uint16_t* y, int64_t n);

  // Quantized KV-cache blocks (kv_rows.h) to f32, nb blocks of 32 values,
  // block b scaled by the f32 at scales + 4 * b (read unaligned):
  //   q8: out[32b + i] = scale_b * codes[32b + i]
  //   q4: byte 16b + i holds value 2i in its low nibble and 2i + 1 in its
  //       high one, each offset by 8: out = scale_b * (nibble - 8)
  void (*dequant_q8_blocks)(const int8_t* codes, const uint8_t* scales, int64_t nb, float* out);
  void (*dequant_q4_blocks)(const uint8_t* codes, const uint8_t* scales, int64_t nb, float* out);
};

// Tables compiled into this binary that the running CPU supports, best last.
std::vector<const KernelTable*> available_tables();
// The best available table.
const KernelTable& best_table();
// The table the CRIA_ISA environment variable names (scalar|avx2|
// avx512vnni|neon|neon-dotprod|neon-i8mm|wasm-simd128), or the best one when it is
// unset. A name this build or CPU lacks gives nullptr and, in *err, a
// message listing the valid names.
const KernelTable* requested_table(std::string* err);
const KernelTable& scalar_table();
const KernelTable* table_for(Isa isa);  // nullptr when not compiled in or unsupported

}  // namespace cria::kernels
