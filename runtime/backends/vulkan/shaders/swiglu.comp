// out = silu(gate) * up = gate / (1 + exp(-gate)) * up (ref_swiglu), with
// gate and up at offsets (a SwiGLU projection's output holds both).
#version 450
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer G { float g[]; };
layout(std430, binding = 1) readonly buffer U { float u[]; };
layout(std430, binding = 2) writeonly buffer O { float o[]; };
layout(push_constant) uniform P { uint n, g_off, u_off; } p;

void main() {
  const uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 256u;
  if (i >= p.n) return;
  const float v = g[p.g_off + i];
  o[i] = v / (1.0 + exp(-v)) * u[p.u_off + i];
}
