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

// The four fp16 values at p as floats.
inline float32x4_t load_f16x4(const uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }

// The vector operations qkernel_common.h's templates call, on 4 floats.
struct V4 {
  using F = float32x4_t;
  static constexpr int kLanes = 4;
  static F splat(float x) { return vdupq_n_f32(x); }
  static F zero() { return vdupq_n_f32(0.0f); }
  static F load(const float* p) { return vld1q_f32(p); }
  static void store(float* p, F v) { vst1q_f32(p, v); }
  static F add(F a, F b) { return vaddq_f32(a, b); }
  static F sub(F a, F b) { return vsubq_f32(a, b); }
  static F mul(F a, F b) { return vmulq_f32(a, b); }
  static F div(F a, F b) { return vdivq_f32(a, b); }
  static F neg(F a) { return vnegq_f32(a); }
  static F abs(F a) { return vabsq_f32(a); }
  static F min(F a, F b) { return vminq_f32(a, b); }
  static F max(F a, F b) { return vmaxq_f32(a, b); }
  static F fma(F a, F b, F c) { return vfmaq_f32(c, a, b); }
  static F fnma(F a, F b, F c) { return vfmsq_f32(c, a, b); }
  static F round(F a) { return vrndnq_f32(a); }
  // 2^n from the exponent bits.
  static F ldexp(F p, F n) {
    const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
    return vmulq_f32(p, vreinterpretq_f32_s32(e));
  }
  static F zero_below(F res, F x, F lo) { return vbslq_f32(vcltq_f32(x, lo), vdupq_n_f32(0.0f), res); }
  static F copysign(F mag, F sign) {
    const uint32x4_t s = vandq_u32(vreinterpretq_u32_f32(sign), vdupq_n_u32(0x80000000u));
    return vreinterpretq_f32_u32(vorrq_u32(vreinterpretq_u32_f32(mag), s));
  }
};

}  // namespace
}  // namespace cria::kernels::arm
