// y[y_off + t * y_stride + r] = W[r] . x[x_off + t * cols ..] for n <= 8
// tokens, row-major float weights: type 0 = f32, 1 = f16, 2 = bf16
// (quant/quant.h QType). One workgroup per row; each weight is read once per
// batch and applied to every token.
#version 450
#include "common.glsl"
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer W { uint w[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) buffer Y { float y[]; };
layout(push_constant) uniform P { uint rows, cols, type, x_off, y_off, n, y_stride; } p;
const uint MAXT = 8u;
shared float part[MAXT * 64u];

void main() {
  const uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
  if (row >= p.rows) return;
  const uint tid = gl_LocalInvocationID.x;
  float acc[MAXT];
  for (uint t = 0u; t < MAXT; ++t) acc[t] = 0.0;
  const uint base = row * p.cols;  // in elements (f32 words or halves)
  for (uint k = tid; k < p.cols; k += 64u) {
    float v;
    if (p.type == 0u) {
      v = uintBitsToFloat(w[base + k]);
    } else {
      const uint h = base + k;
      const uint word = w[h >> 1];
      v = p.type == 1u ? half_at(word, h) : bf16_to_f32((h & 1u) == 0u ? (word & 0xffffu) : (word >> 16));
    }
    for (uint t = 0u; t < p.n; ++t) acc[t] += v * x[p.x_off + t * p.cols + k];
  }
  for (uint t = 0u; t < p.n; ++t) part[t * 64u + tid] = acc[t];
  barrier();
  for (uint s = 32u; s > 0u; s >>= 1) {
    if (tid < s)
      for (uint t = 0u; t < p.n; ++t) part[t * 64u + tid] += part[t * 64u + tid + s];
    barrier();
  }
  if (tid < p.n) y[p.y_off + tid * p.y_stride + row] = part[tid * 64u];
}
