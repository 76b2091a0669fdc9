// y[y_off + r] = W[r] . x for the 16-row tiled int8 weight types (quant/quant.h):
// type 3 = Q8, 4 = Q4, 5 = Q4M, with x as quantize_acts left it (codes q as
// f32, one scale per block of 32). One workgroup per row; its 64 threads
// take the row's 32-column blocks in turn.
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
} p;
shared float part[64];

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
  float acc = 0.0;
  for (uint b = tid; b < blocks; b += 64u) {
    const uint g = (b * 32u) / p.group;
    const float dw = scale_at(p.s_word, tile, g, r);
    const float da = xd[b];
    const uint k0 = b * 32u;
    float dot = 0.0, qsum = 0.0;
    if (p.type == 3u) {
      // 8 chunks of 64 bytes; this row's 4 bytes of chunk c are columns 4c..4c+3
      const uint base = tile * p.tile_q_words + b * 128u + r;
      for (uint c = 0u; c < 8u; ++c) {
        const uint word = w[base + c * 16u];
        for (uint i = 0u; i < 4u; ++i) dot += (float(byte_at(word, i)) - 128.0) * xq[k0 + 4u * c + i];
      }
      acc += dw * da * dot;
    } else {
      // 4 chunks; byte i of chunk c: column 8c+i (low nibble), 8c+4+i (high)
      const uint base = tile * p.tile_q_words + b * 64u + r;
      const float off = p.type == 4u ? 8.0 : 0.0;
      for (uint c = 0u; c < 4u; ++c) {
        const uint word = w[base + c * 16u];
        for (uint i = 0u; i < 4u; ++i) {
          const uint by = byte_at(word, i);
          const float a0 = xq[k0 + 8u * c + i], a1 = xq[k0 + 8u * c + 4u + i];
          dot += (float(by & 15u) - off) * a0 + (float(by >> 4) - off) * a1;
          qsum += a0 + a1;
        }
      }
      acc += dw * da * dot;
      if (p.type == 5u) acc += scale_at(p.m_word, tile, g, r) * da * qsum;
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
