// Activations -> int8 blocks of 32, as the CPU's quantize_acts does, so the
// int8 weight types compute exactly what the CPU computes (up to summation
// order). q is written as f32 holding the integer: a block's dot product of
// codes (|sum| <= 32 * 255 * 127 < 2^24) is then exact in f32.
#version 450
#include "common.glsl"
layout(local_size_x = 32) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Q { float q[]; };
layout(std430, binding = 2) writeonly buffer D { float d[]; };
layout(push_constant) uniform P { uint cols; uint x_off; } p;
shared float amax[32];

// a / b correctly rounded (IEEE), for a >= 0 and b > 0 normal. Vulkan allows
// '/' 2.5 ulp and lavapipe is 1 ulp off now and then, while the CPU's scale
// is the IEEE quotient; a fused multiply-add to check a residual is not
// fused everywhere either. So: long division of the 24-bit mantissas in
// 32-bit integers (exact), 24 quotient bits + a guard bit + a sticky bit,
// rounded to nearest even. A result below the normal range (|a| < 1e-36
// here) falls back to '/'.
float div_rn(float a, float b) {
  if (a == 0.0) return 0.0;
  const uint ua = floatBitsToUint(a), ub = floatBitsToUint(b);
  int ea = int((ua >> 23) & 0xffu), eb = int((ub >> 23) & 0xffu);
  if (ea == 0 || eb == 0 || ea == 255 || eb == 255) return a / b;
  uint ma = (ua & 0x7fffffu) | 0x800000u;
  const uint mb = (ub & 0x7fffffu) | 0x800000u;
  int e = ea - eb + 127;
  if (ma < mb) {
    ma <<= 1;
    e -= 1;
  }
  uint quo = 0u, rem = ma;
  for (int i = 0; i < 25; ++i) {
    quo <<= 1;
    if (rem >= mb) {
      quo |= 1u;
      rem -= mb;
    }
    rem <<= 1;
  }
  uint mant = quo >> 1;
  if ((quo & 1u) == 1u && (rem != 0u || (mant & 1u) == 1u)) mant += 1u;
  if (mant == 0x1000000u) {
    mant >>= 1;
    e += 1;
  }
  if (e <= 0 || e >= 255) return a / b;
  return uintBitsToFloat((uint(e) << 23) | (mant & 0x7fffffu));
}

void main() {
  const uint b = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
  if (b * 32u >= p.cols) return;
  const uint i = gl_LocalInvocationID.x;
  const float v = x[p.x_off + b * 32u + i];
  amax[i] = abs(v);
  barrier();
  for (uint s = 16u; s > 0u; s >>= 1) {
    if (i < s) amax[i] = max(amax[i], amax[i + s]);
    barrier();
  }
  const float db = div_rn(amax[0], 127.0);
  const float id = db != 0.0 ? div_rn(1.0, db) : 0.0;
  precise float xs = v * id;
  q[b * 32u + i] = roundEven(xs);
  if (i == 0u) d[b] = db;
}
