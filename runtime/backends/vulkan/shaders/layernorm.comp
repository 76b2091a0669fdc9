// y = (x - mean) / sqrt(var + eps) * w + b over one row of n (ref_layernorm);
// two passes (mean, then centred squares) as the reference does.
#version 450
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Wt { float w[]; };
layout(std430, binding = 2) readonly buffer B { float bias[]; };
layout(std430, binding = 3) writeonly buffer Y { float y[]; };
layout(push_constant) uniform P { uint n; float eps; } p;
shared float part[256];

float block_sum(float v) {
  const uint tid = gl_LocalInvocationID.x;
  part[tid] = v;
  barrier();
  for (uint s = 128u; s > 0u; s >>= 1) {
    if (tid < s) part[tid] += part[tid + s];
    barrier();
  }
  const float r = part[0];
  barrier();  // part is reused by the next call
  return r;
}

void main() {
  const uint tid = gl_LocalInvocationID.x;
  float s = 0.0;
  for (uint i = tid; i < p.n; i += 256u) s += x[i];
  const float mean = block_sum(s) / float(p.n);
  float v = 0.0;
  for (uint i = tid; i < p.n; i += 256u) v += (x[i] - mean) * (x[i] - mean);
  const float var = block_sum(v) / float(p.n);
  const float inv = 1.0 / sqrt(var + p.eps);
  for (uint i = tid; i < p.n; i += 256u) y[i] = (x[i] - mean) * inv * w[i] + bias[i];
}
