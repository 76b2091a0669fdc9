#include "runtime/kernels/kv_rows.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace cria::kernels {

namespace {

constexpr int64_t kBlock = 32;

// Symmetric: codes in [-qmax, qmax], scale amax / qmax (q8: 127, q4: 7).
template <int kQmax>
void quantize_block(const float* x, int8_t* codes, float* scale) {
  float amax = 0;
  for (int64_t i = 0; i < kBlock; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float d = amax / kQmax, id = d > 0 ? 1.0f / d : 0.0f;
  for (int64_t i = 0; i < kBlock; ++i) codes[i] = (int8_t)std::lrintf(std::clamp(x[i] * id, -(float)kQmax, (float)kQmax));
  *scale = d;
}

}  // namespace

const char* kv_type_name(KvType t) {
  switch (t) {
    case KvType::kF16: return "f16";
    case KvType::kF32: return "f32";
    case KvType::kQ8: return "q8";
    case KvType::kQ4: return "q4";
  }
  return "?";
}

bool parse_kv_type(std::string_view s, KvType* t) {
  for (KvType c : {KvType::kF16, KvType::kF32, KvType::kQ8, KvType::kQ4})
    if (s == kv_type_name(c)) {
      *t = c;
      return true;
    }
  return false;
}

size_t kv_row_bytes(KvType t, int64_t d) {
  switch (t) {
    case KvType::kF16: return (size_t)d * 2;
    case KvType::kF32: return (size_t)d * 4;
    case KvType::kQ8: return (size_t)d + (size_t)(d / kBlock) * 4;
    case KvType::kQ4: return (size_t)d / 2 + (size_t)(d / kBlock) * 4;
  }
  return 0;
}

void kv_store_row(const KernelTable& k, KvType t, const float* x, int64_t d, uint8_t* row) {
  if (t == KvType::kF32) {
    std::memcpy(row, x, (size_t)d * 4);
    return;
  }
  if (t == KvType::kF16) {
    k.f32_to_f16(x, reinterpret_cast<uint16_t*>(row), d);
    return;
  }
  const int64_t nb = d / kBlock;
  uint8_t* codes = row;
  uint8_t* scales = row + (t == KvType::kQ8 ? d : d / 2);
  for (int64_t b = 0; b < nb; ++b) {
    int8_t c[kBlock];
    float s;
    if (t == KvType::kQ8) {
      quantize_block<127>(x + b * kBlock, c, &s);
      std::memcpy(codes + b * kBlock, c, kBlock);
    } else {
      quantize_block<7>(x + b * kBlock, c, &s);
      // Two codes a byte, offset by 8: value i of the block in the low
      // nibble of byte i/2 when i is even, the high nibble when odd.
      for (int64_t i = 0; i < kBlock; i += 2)
        codes[b * kBlock / 2 + i / 2] = (uint8_t)((c[i] + 8) | ((c[i + 1] + 8) << 4));
    }
    std::memcpy(scales + b * 4, &s, 4);
  }
}

void kv_load_rows(const KernelTable& k, KvType t, const uint8_t* rows, int64_t n, int64_t d, float* out) {
  const size_t rb = kv_row_bytes(t, d);
  const int64_t nb = d / kBlock;
  for (int64_t r = 0; r < n; ++r) {
    const uint8_t* row = rows + (size_t)r * rb;
    if (t == KvType::kQ8)
      k.dequant_q8_blocks(reinterpret_cast<const int8_t*>(row), row + d, nb, out + r * d);
    else
      k.dequant_q4_blocks(row, row + d / 2, nb, out + r * d);
  }
}

}  // namespace cria::kernels
