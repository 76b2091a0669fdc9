// y = w * (x / sqrt(mean(x^2) + eps)) over one row of n (ref.cc ref_rmsnorm).
#version 450
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Wt { float w[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
layout(push_constant) uniform P { uint n; float eps; } p;
shared float part[256];

void main() {
  const uint tid = gl_LocalInvocationID.x;
  float ss = 0.0;
  for (uint i = tid; i < p.n; i += 256u) ss += x[i] * x[i];
  part[tid] = ss;
  barrier();
  for (uint s = 128u; s > 0u; s >>= 1) {
    if (tid < s) part[tid] += part[tid + s];
    barrier();
  }
  const float inv = 1.0 / sqrt(part[0] / float(p.n) + p.eps);
  for (uint i = tid; i < p.n; i += 256u) y[i] = w[i] * (x[i] * inv);
}
