// How a KV cache stores one row (one position of one KV head, head_dim
// values): f16 (the default), f32 (reference tests), or int8 / int4 codes in
// blocks of 32 with one f32 scale per block, the scales after the codes in
// the same row. Blocks of 32 as llama.cpp's q8_0 / q4_0 cache types, but not
// their exact values: the scale is f32 (theirs f16: 9 / 5 bits a value here
// against their 8.5 / 4.5), q8 codes are round(x * 127 / amax) as q8_0's,
// and q4 codes are symmetric in [-7, 7] (q4_0 uses [-8, 7] with a signed
// scale). A q8 row of 128 values is 144 bytes against f16's 256; q4, 80.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "runtime/kernels/kernels.h"

namespace cria::kernels {

enum class KvType : uint8_t { kF16, kF32, kQ8, kQ4 };

const char* kv_type_name(KvType t);
// "f16" | "f32" | "q8" | "q4"; false for anything else.
bool parse_kv_type(std::string_view s, KvType* t);
constexpr bool kv_quantized(KvType t) { return t == KvType::kQ8 || t == KvType::kQ4; }

// Bytes of one row of d values (d a multiple of 32 for the quantized types).
size_t kv_row_bytes(KvType t, int64_t d);
// Writes x[0..d) as one row.
void kv_store_row(const KernelTable& k, KvType t, const float* x, int64_t d, uint8_t* row);
// n consecutive quantized rows (row stride kv_row_bytes) -> n x d floats,
// with the table's dequant_q8_blocks / dequant_q4_blocks.
void kv_load_rows(const KernelTable& k, KvType t, const uint8_t* rows, int64_t n, int64_t d, float* out);

}  // namespace cria::kernels
