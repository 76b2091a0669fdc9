// y[y_off + t * y_stride + r] = W[r] . x_t for n <= 8 tokens x_t (a batch:
// prefill, several sequences; n = 1 is decode), for the 16-row tiled int8
// weight types (quant/quant.h): type 3 = Q8, 4 = Q4, 5 = Q4M, with the x_t
// as quantize_acts left them (codes as f32, one scale per block of 32; row
// t at t * cols). One workgroup per row; its 64 threads take the row's
// 32-column blocks in turn, decode each block's weights once and apply them
// to every token (the weights are read once per batch of 8, not per token).
#version 450
#include "common.glsl"
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer W { uint w[]; };
layout(std430, binding = 1) readonly buffer XQ { float xq[]; };
layout(std430, binding = 2) readonly buffer XD { float xd[]; };
layout(std430, binding = 3) buffer Y { float y[]; };
layout(push_constant) uniform P {
  uint rows, cols, group, type;
  uint tile_q_words;  // quant words of one tile
  uint s_word, m_word;  // scale / min plane offsets, in 32-bit words
  uint y_off;
  uint n, y_stride;   // tokens, and the distance between their y rows
} p;
const uint MAXT = 8u;
shared float part[MAXT * 64u];

float scale_at(uint plane_word, uint tile, uint g, uint r) {
  // tile's scales: groups x 16 fp16, row r of group g
  const uint h = (tile * (p.cols / p.group) + g) * 16u + r;
  return half_at(w[plane_word + (h >> 1)], h);
}

void main() {
  const uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
  if (row >= p.rows) return;
  const uint tid = gl_LocalInvocationID.x;
  const uint tile = row >> 4, r = row & 15u;
  const uint blocks = p.cols >> 5;
  float acc[MAXT];
  for (uint t = 0u; t < MAXT; ++t) acc[t] = 0.0;
  float wv[32];  // the block's weight codes, column order
  for (uint b = tid; b < blocks; b += 64u) {
    const uint g = (b * 32u) / p.group;
    const float dw = scale_at(p.s_word, tile, g, r);
    const float mw = p.type == 5u ? scale_at(p.m_word, tile, g, r) : 0.0;
    if (p.type == 3u) {
      // 8 chunks of 64 bytes; this row's 4 bytes of chunk c are columns 4c..4c+3
      const uint base = tile * p.tile_q_words + b * 128u + r;
      for (uint c = 0u; c < 8u; ++c) {
        const uint word = w[base + c * 16u];
        for (uint i = 0u; i < 4u; ++i) wv[4u * c + i] = float(byte_at(word, i)) - 128.0;
      }
    } else {
      // 4 chunks; byte i of chunk c: column 8c+i (low nibble), 8c+4+i (high)
      const uint base = tile * p.tile_q_words + b * 64u + r;
      const float off = p.type == 4u ? 8.0 : 0.0;
      for (uint c = 0u; c < 4u; ++c) {
        const uint word = w[base + c * 16u];
        for (uint i = 0u; i < 4u; ++i) {
          const uint by = byte_at(word, i);
          wv[8u * c + i] = float(by & 15u) - off;
          wv[8u * c + 4u + i] = float(by >> 4) - off;
        }
      }
    }
    // Integer codes: each block's dot product (and code sum) is exact in
    // f32, so the order inside a block does not matter.
    for (uint t = 0u; t < p.n; ++t) {
      const uint k0 = t * p.cols + b * 32u;
      float dot = 0.0, qsum = 0.0;
      for (uint i = 0u; i < 32u; ++i) {
        dot += wv[i] * xq[k0 + i];
        qsum += xq[k0 + i];
      }
      const float da = xd[t * blocks + b];
      acc[t] += dw * da * dot;
      if (p.type == 5u) acc[t] += mw * da * qsum;
    }
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
