// Helpers shared by the ARM64 kernel translation units (arm_neon.cc: ARMv8.0
// NEON; arm_neondot.cc: ARMv8.2 dotprod). Everything here has internal
// linkage: the two files are compiled with different -march flags, and an
// inline function with external linkage would be merged by the linker into one
// copy, possibly the one built for the newer ISA.
#pragma once

#include <arm_neon.h>

#include <cstdint>
#include <cstring>

namespace cria::kernels::arm {
namespace {

inline int32_t load_i32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// The 16 fp16 values of one tile (per-row scales or mins) as 4 x 4 floats.
inline void load_f16x16(const uint16_t* p, float32x4_t out[4]) {
  const uint16x8_t a = vld1q_u16(p), b = vld1q_u16(p + 8);
  out[0] = vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(a)));
  out[1] = vcvt_high_f32_f16(vreinterpretq_f16_u16(a));
  out[2] = vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(b)));
  out[3] = vcvt_high_f32_f16(vreinterpretq_f16_u16(b));
}

// The four fp16 values at p as floats.
inline float32x4_t load_f16x4(const uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }

// Stores the 16 outputs of a tile, only the first `valid` rows (the last
// tile of a matrix may be partly padding, which is never written).
inline void store_tile(float* y, int valid, const float32x4_t acc[4]) {
  if (valid == 16) {
    for (int q = 0; q < 4; ++q) vst1q_f32(y + 4 * q, acc[q]);
    return;
  }
  float tmp[16];
  for (int q = 0; q < 4; ++q) vst1q_f32(tmp + 4 * q, acc[q]);
  std::memcpy(y, tmp, (size_t)valid * sizeof(float));
}

}  // namespace
}  // namespace cria::kernels::arm
