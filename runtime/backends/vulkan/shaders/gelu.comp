// x = 0.5 x (1 + erf(x / sqrt 2)) in place (ref_gelu, the exact form). GLSL
// has no erf: erf_approx is Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7),
// with erf(x) = 1 exactly past |x| > 4 where the residual is < 1e-8.
#version 450
layout(local_size_x = 256) in;
layout(std430, binding = 0) buffer X { float x[]; };
layout(push_constant) uniform P { uint n; } p;

float erf_approx(float v) {
  const float a = abs(v);
  const float t = 1.0 / (1.0 + 0.3275911 * a);
  const float poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  const float r = a > 4.0 ? 1.0 : 1.0 - poly * exp(-a * a);
  return v < 0.0 ? -r : r;
}

void main() {
  const uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 256u;
  if (i >= p.n) return;
  const float v = x[i];
  x[i] = 0.5 * v * (1.0 + erf_approx(v * 0.70710678118654752));
}
