// Rotary embedding in the halves layout (HF rotate_half), in place on
// `heads` vectors of d values at x_off: (v_i, v_{i+d/2}) rotated by angle i,
// with cs = [cos(0..d/2), sin(0..d/2)] computed by the host (formats/rope.h,
// so Llama 3.1 frequency scaling is the host's). `precise`: no fused
// multiply-add, so the result is bit-identical to the CPU's.
#version 450
layout(local_size_x = 64) in;
layout(std430, binding = 0) buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer CS { float cs[]; };
layout(push_constant) uniform P { uint heads, d, x_off; } p;

void main() {
  const uint half_d = p.d / 2u;
  const uint id = gl_GlobalInvocationID.x;
  if (id >= p.heads * half_d) return;
  const uint h = id / half_d, i = id % half_d;
  const uint o = p.x_off + h * p.d;
  const float a = x[o + i], b = x[o + i + half_d];
  const float c = cs[i], s = cs[half_d + i];
  precise float t0 = a * c, t1 = b * s, t2 = b * c, t3 = a * s;
  precise float r0 = t0 - t1, r1 = t2 + t3;
  x[o + i] = r0;
  x[o + i + half_d] = r1;
}
