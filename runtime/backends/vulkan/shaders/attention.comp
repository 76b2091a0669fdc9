// Attention of one query token over an f16 KV cache (ops.cc attention()):
// query head h reads KV head h / (n_heads / n_kv_heads) (GQA; MQA with one
// KV head); cache layout [kv head][position][d], head_stride halves apart.
//   s_j = scale * q.k_j  (+ scale * bf16(slope_h * bf16(j)) with ALiBi)
//   out = sum_j softmax(s)_j v_j
// One workgroup per query head; scores go through `scores` (n_heads x
// max_pos floats), so the context length is not bounded by shared memory.
#version 450
#include "common.glsl"
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer Q { float q[]; };
layout(std430, binding = 1) readonly buffer K { uint kc[]; };
layout(std430, binding = 2) readonly buffer V { uint vc[]; };
layout(std430, binding = 3) writeonly buffer O { float o[]; };
layout(std430, binding = 4) buffer S { float scores[]; };
layout(std430, binding = 5) readonly buffer A { float slopes[]; };
layout(push_constant) uniform P {
  uint n_heads, n_kv_heads, d, n_pos, head_stride, max_pos, alibi, q_off;
  float scale;
} p;
shared float red[64];

float reduce_max(float v) {
  const uint tid = gl_LocalInvocationID.x;
  red[tid] = v;
  barrier();
  for (uint s = 32u; s > 0u; s >>= 1) {
    if (tid < s) red[tid] = max(red[tid], red[tid + s]);
    barrier();
  }
  const float r = red[0];
  barrier();
  return r;
}

float reduce_sum(float v) {
  const uint tid = gl_LocalInvocationID.x;
  red[tid] = v;
  barrier();
  for (uint s = 32u; s > 0u; s >>= 1) {
    if (tid < s) red[tid] += red[tid + s];
    barrier();
  }
  const float r = red[0];
  barrier();
  return r;
}

void main() {
  const uint h = gl_WorkGroupID.x;
  const uint tid = gl_LocalInvocationID.x;
  const uint g = h / (p.n_heads / p.n_kv_heads);
  const uint qo = p.q_off + h * p.d;
  const uint kvo = g * p.head_stride;
  const uint so = h * p.max_pos;
  float mx = -1.0 / 0.0;
  for (uint j = tid; j < p.n_pos; j += 64u) {
    const uint base = kvo + j * p.d;
    float acc = 0.0;
    for (uint i = 0u; i < p.d; ++i) {
      const uint e = base + i;
      acc += q[qo + i] * half_at(kc[e >> 1], e);
    }
    precise float s = acc * p.scale;
    if (p.alibi != 0u) {
      const float pos = bf16_to_f32(f32_to_bf16(float(j)));
      precise float bias = p.scale * bf16_to_f32(f32_to_bf16(slopes[h] * pos));
      s = s + bias;
    }
    scores[so + j] = s;
    mx = max(mx, s);
  }
  mx = reduce_max(mx);
  float sum = 0.0;
  for (uint j = tid; j < p.n_pos; j += 64u) {
    const float e = exp(scores[so + j] - mx);
    scores[so + j] = e;
    sum += e;
  }
  sum = reduce_sum(sum);
  memoryBarrierBuffer();
  barrier();
  const float inv = sum > 0.0 ? 1.0 / sum : 0.0;
  for (uint i = tid; i < p.d; i += 64u) {
    float acc = 0.0;
    for (uint j = 0u; j < p.n_pos; ++j) {
      const uint e = kvo + j * p.d + i;
      acc += scores[so + j] * half_at(vc[e >> 1], e);
    }
    o[h * p.d + i] = acc * inv;
  }
}
