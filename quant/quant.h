// Weight quantization schemes: layout, reference pack/unpack and scale search.
//
// Quantization is always along the last (input, K) dimension of a row-major
// [rows, cols] matrix, in groups of `group` columns. Values:
//   Q8:  x = (u - 128) * d,  u in [1, 255] (uint8), d fp16 per group of 32
//   Q4:  x = (u - 8) * d,    u in [0, 15] (4 bits), d fp16 per group of 32 or 128
//   Q4M: x = u * d + m,      u in [0, 15], d and m fp16 per group
//   I8C: x = q * s[row],     q int8, s f32 per row (XNNPACK qc8-style)
// Q4 and Q8 at group 32 dequantize exactly like GGML's Q4_0 and Q8_0 (Q8_0's
// int8 q is stored as u = q + 128), Q4M like Q4_1, so GGUF imports are exact.
//
// Layout of the quantized types (Q8, Q4, Q4M): rows are taken 16 at a time
// ("tiles", the last tile padded with zero rows), so that one 64-byte load
// feeds 16 rows x 4 bytes to an int8 dot-product instruction (x86 VNNI
// vpdpbusd, ARM sdot, WASM dot) with the activations broadcast:
//   quant plane: for each tile, for each 32-column block b, the chunks
//     Q4: 4 chunks c of 64 bytes; byte [4r + i] holds, for tile row r,
//         column 32b + 8c + i in its low nibble and 32b + 8c + 4 + i in its
//         high nibble.
//     Q8: 8 chunks c of 64 bytes; byte [4r + i] is column 32b + 4c + i.
//   scale plane: for each tile, for each group, 16 fp16 scales (one per row);
//   min plane (Q4M): the same arrangement.
// Each plane starts 64-byte aligned; float types are plain row-major.
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

constexpr uint32_t kTileRows = 16;
constexpr uint32_t kBlock = 32;

const char* qtype_name(QType t);
bool qtype_from_name(const std::string& name, QType* out);
// Q8, Q4, Q4M: the 16-row tiled layout.
bool qtype_is_tiled(QType t);
// Group sizes a quantized type accepts (Q4/Q4M: 32 or 128; Q8: 32; others 0).
bool qtype_group_ok(QType t, uint32_t group);

constexpr size_t kPlaneAlign = 64;
inline uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

struct QLayout {
  uint64_t rows = 0, cols = 0;
  uint32_t group = 0;
  uint64_t tiles = 0;            // tiled types: ceil(rows / 16)
  uint64_t blocks = 0;           // tiled types: cols / 32
  uint64_t groups = 0;           // tiled types: cols / group
  uint64_t tile_q_bytes = 0;     // quant bytes of one tile
  uint64_t tile_s_bytes = 0;     // scale (and min) bytes of one tile
  uint64_t row_bytes = 0;        // float types and I8C: bytes per row
  uint64_t q_offset = 0, q_bytes = 0;  // quant plane (or the whole float tensor)
  uint64_t s_offset = 0, s_bytes = 0;  // scale plane
  uint64_t m_offset = 0, m_bytes = 0;  // min plane (Q4M only)
  uint64_t total = 0;
};

// Returns false when cols is not a multiple of the group (or of 32).
bool qlayout(QType t, uint64_t rows, uint64_t cols, uint32_t group, QLayout* out);

// Pointers into the planes for a chunk starting at `row` (tiled types: a
// multiple of 16).
struct QPlanes {
  uint8_t* q = nullptr;
  uint8_t* s = nullptr;
  uint8_t* m = nullptr;
};
struct QPlanesConst {
  const uint8_t* q = nullptr;
  const uint8_t* s = nullptr;
  const uint8_t* m = nullptr;
  QPlanesConst() = default;
  QPlanesConst(const uint8_t* q_, const uint8_t* s_, const uint8_t* m_) : q(q_), s(s_), m(m_) {}
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

// Quantizes `rows` rows of `src` (row-major, l.cols wide) into the planes at
// `dst`, which point at the chunk's first row. Tiled types: a chunk that ends
// inside a tile is padded with zero rows. Float types convert.
void quantize_rows(QType t, const float* src, uint64_t rows, const QLayout& l, QPlanes dst,
                   const QuantOptions& opt);

// The scale search runs on vectors of 4, 8 or 16 floats (level 0, 1, 2);
// x86-64 GCC builds take the widest the CPU has, other builds 4. Every
// width writes the same bytes; tests lower the limit to prove it. Returns
// the previous limit.
int set_quant_vector_limit(int level);

// Reference dequantization of `rows` rows starting at the planes `src`.
void dequantize_rows(QType t, QPlanesConst src, uint64_t rows, const QLayout& l, float* dst);

// Reference dequantization of one row `row` of a whole tensor.
void dequantize_row(QType t, const uint8_t* tensor, const QLayout& l, uint64_t row, float* dst);

// One group of one row in quantized form, the currency between the tiled
// layout and other formats (GGUF blocks): `u` holds group-many codes.
struct QGroup {
  uint8_t u[128];
  uint16_t d = 0, m = 0;
};
void pack_group(QType t, const QLayout& l, uint64_t row, uint64_t group_index, const QGroup& g,
                QPlanes chunk, uint64_t chunk_row0);
void unpack_group(QType t, const QLayout& l, uint64_t row, uint64_t group_index, const uint8_t* tensor,
                  QGroup* g);

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

// Bits per weight of type t (planes included, tile padding excluded).
double qtype_bits_per_weight(QType t, uint32_t group);

}  // namespace cria
