// Pieces shared by the compute shaders. Every buffer is bound as 32-bit
// words (f32 values, or packed f16/bf16/int8 read with bit operations), so
// the shaders need no 8/16-bit storage feature and run on any Vulkan 1.1
// device.

// Half i of a uint array holding packed f16 values.
float half_at(uint w, uint i) {
  const vec2 h = unpackHalf2x16(w);
  return (i & 1u) == 0u ? h.x : h.y;
}

float bf16_to_f32(uint h) { return uintBitsToFloat(h << 16); }

// f32 -> bf16 bits, round to nearest even (quant/fp16.h f32_to_bf16).
uint f32_to_bf16(float f) {
  uint x = floatBitsToUint(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (x >> 16) | 0x40u;
  x += 0x7fffu + ((x >> 16) & 1u);
  return x >> 16;
}

// f32 -> f16 bits, round to nearest even, exactly as quant/fp16.h
// f32_to_fp16 (GLSL's packHalf2x16 leaves the rounding to the driver).
uint f32_to_f16(float f) {
  const uint x = floatBitsToUint(f);
  const uint sign = (x >> 16) & 0x8000u;
  const uint ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) return sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0u);
  if (ax >= 0x477ff000u) return sign | 0x7c00u;
  if (ax < 0x38800000u) {
    // Subnormal half: the 24-bit shift, rounded to nearest even in integers.
    const uint e = ax >> 23;
    if (e < 102u) return sign;  // below half the smallest subnormal
    const uint m = (ax & 0x7fffffu) | 0x800000u;
    const uint shift = 126u - e;  // value = m * 2^(e-150); half units of 2^-24
    const uint q = m >> shift;
    const uint rem = m & ((1u << shift) - 1u);
    const uint halfway = 1u << (shift - 1u);
    const uint r = q + ((rem > halfway || (rem == halfway && (q & 1u) == 1u)) ? 1u : 0u);
    return sign | r;
  }
  const uint mant_odd = (ax >> 13) & 1u;
  const uint r = ax + 0xc8000fffu + mant_odd;
  return sign | ((r >> 13) & 0xffffu);
}

// The byte `i` (0..3) of a word.
uint byte_at(uint w, uint i) { return (w >> (8u * i)) & 0xffu; }
