// Appends one position to an f16 KV cache: for each of `heads` KV heads,
// the d values at src[src_off + h * d ..] are rounded to f16 (round to
// nearest even, as the CPU's f32_to_fp16) and written at
// cache[h * head_stride + pos * d ..] (in halves). d is even, so each
// thread writes one whole 32-bit word and no two threads share one.
#version 450
#include "common.glsl"
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer S { float src[]; };
layout(std430, binding = 1) buffer C { uint cache[]; };
layout(push_constant) uniform P { uint heads, d, head_stride, pos, src_off; } p;

void main() {
  const uint id = gl_GlobalInvocationID.x;
  const uint half_d = p.d / 2u;
  if (id >= p.heads * half_d) return;
  const uint h = id / half_d, j = id % half_d;
  const uint s = p.src_off + h * p.d + 2u * j;
  const uint dst = h * p.head_stride + p.pos * p.d + 2u * j;
  cache[dst >> 1] = f32_to_f16(src[s]) | (f32_to_f16(src[s + 1u]) << 16);
}
