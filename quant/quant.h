// Weight quantization schemes: layout, reference pack/unpack and scale search.
//
// Quantization is always along the last (input, K) dimension of a row-major
// [rows, cols] matrix, in groups of `group` columns. A quantized tensor is
// stored as planes (see QLayout): every row's quants, then every row's scales,
// then (Q4M) every row's mins; each plane starts 64-byte aligned.
//
// Q4 and Q8 at group 32 dequantize exactly like GGML's Q4_0 and Q8_0:
//   Q8: x = q * d,        q in [-127, 127] (int8), d fp16
//   Q4: x = (q - 8) * d,  q in [0, 15] (4 bits), d fp16
//   Q4M: x = q * d + m,   q in [0, 15], d and m fp16 (GGML Q4_1 at g32)
//   I8C: x = q * s[row],  q int8, s f32 (XNNPACK qc8-style per channel)
// Within every 32-element block of a Q4 row, byte j holds element j in its low
// nibble and element j + 16 in its high nibble (GGML's order), so a GGUF Q4_0
// block's 16 quant bytes are copied unchanged.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace cria {

// Values match cria.fbs `DType`.
enum class QType : uint8_t {
  kF32 = 0,
  kF16 = 1,
  kBF16 = 2,
  kQ8 = 3,
  kQ4 = 4,
  kQ4M = 5,
  kI8C = 6,
};
constexpr int kNumQTypes = 7;

const char* qtype_name(QType t);
bool qtype_from_name(const std::string& name, QType* out);
bool qtype_is_quantized(QType t);
// Group sizes a quantized type accepts (Q4/Q4M: 32 or 128; Q8: 32; I8C: 0).
bool qtype_group_ok(QType t, uint32_t group);

constexpr size_t kPlaneAlign = 64;
inline uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

struct QLayout {
  uint64_t row_q_bytes = 0;   // quant bytes per row (or element bytes for float types)
  uint64_t groups_per_row = 0;
  uint64_t s_row_bytes = 0;   // scale bytes per row (and min bytes per row, Q4M)
  uint64_t q_offset = 0, q_bytes = 0;  // quant plane (or the whole float tensor)
  uint64_t s_offset = 0, s_bytes = 0;  // scale plane (fp16, or f32 for I8C)
  uint64_t m_offset = 0, m_bytes = 0;  // min plane (fp16, Q4M only)
  uint64_t total = 0;
};

// Returns false when cols is not a multiple of the group (or of 32 for Q4).
bool qlayout(QType t, uint64_t rows, uint64_t cols, uint32_t group, QLayout* out);

// Pointers to the first row of a chunk of rows in each plane.
struct QPlanes {
  uint8_t* q = nullptr;
  void* s = nullptr;
  void* m = nullptr;
};
struct QPlanesConst {
  const uint8_t* q = nullptr;
  const void* s = nullptr;
  const void* m = nullptr;
  QPlanesConst() = default;
  QPlanesConst(const uint8_t* q_, const void* s_, const void* m_) : q(q_), s(s_), m(m_) {}
  QPlanesConst(const QPlanes& p) : q(p.q), s(p.s), m(p.m) {}  // NOLINT: implicit by design
};
QPlanesConst qplanes_at(const uint8_t* tensor, const QLayout& l, uint64_t row);
QPlanes qplanes_at(uint8_t* tensor, const QLayout& l, uint64_t row);

struct QuantOptions {
  // Search the scale (and min) of each group to minimise the weighted squared
  // error instead of taking max-abs round-to-nearest.
  bool search = true;
  // Optional per-column importance weights (cols entries), e.g. mean squared
  // activations from calibration text. nullptr means uniform.
  const float* importance = nullptr;
};

// Quantizes `rows` rows of `src` (row-major, `cols` wide) into the planes at
// `dst` (which point at the chunk's first row). Float types convert.
void quantize_rows(QType t, const float* src, uint64_t rows, uint64_t cols, uint32_t group,
                   QPlanes dst, const QuantOptions& opt);

// Reference dequantization of `rows` rows starting at the planes `src`.
void dequantize_rows(QType t, QPlanesConst src, uint64_t rows, uint64_t cols, uint32_t group,
                     float* dst);

// Distortion of a reconstruction against the original data.
struct QuantError {
  double rms = 0;           // sqrt(mean (x - y)^2)
  double max_abs = 0;       // max |x - y|
  double data_rms = 0;      // sqrt(mean x^2)
  double data_max_abs = 0;  // max |x|
  double rel_rms() const { return data_rms > 0 ? rms / data_rms : 0; }
  double rel_max() const { return data_max_abs > 0 ? max_abs / data_max_abs : 0; }
};
QuantError quant_error(const float* x, const float* y, uint64_t n);

// Bits per weight of a [rows, cols] tensor in type t (planes included).
double qtype_bits_per_weight(QType t, uint32_t group);

}  // namespace cria
