// y[y_off + r] = W[r] . x[x_off ..] for row-major float weights: type 0 = f32,
// 1 = f16, 2 = bf16 (quant/quant.h QType). One workgroup per row.
#version 450
#include "common.glsl"
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer W { uint w[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) buffer Y { float y[]; };
layout(push_constant) uniform P { uint rows, cols, type, x_off, y_off; } p;
shared float part[64];

void main() {
  const uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
  if (row >= p.rows) return;
  const uint tid = gl_LocalInvocationID.x;
  float acc = 0.0;
  if (p.type == 0u) {
    const uint base = row * p.cols;
    for (uint k = tid; k < p.cols; k += 64u) acc += uintBitsToFloat(w[base + k]) * x[p.x_off + k];
  } else {
    const uint base = row * p.cols;  // in halves
    for (uint k = tid; k < p.cols; k += 64u) {
      const uint h = base + k;
      const uint word = w[h >> 1];
      const float v = p.type == 1u ? half_at(word, h) : bf16_to_f32((h & 1u) == 0u ? (word & 0xffffu) : (word >> 16));
      acc += v * x[p.x_off + k];
    }
  }
  part[tid] = acc;
  barrier();
  for (uint s = 32u; s > 0u; s >>= 1) {
    if (tid < s) part[tid] += part[tid + s];
    barrier();
  }
  if (tid == 0u) y[p.y_off + row] = part[0];
}
