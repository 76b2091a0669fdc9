// Rotary-embedding numerics in one place: the plain inverse frequencies and
// Llama 3.1's scaling of them. The runtime evaluates them in float, as
// transformers does (so the angles match the reference bit for bit); the
// GGUF importer evaluates the same formula in double to recognise the
// divisors llama.cpp stores as rope_freqs.weight, and inverts it
// (llama3_original_context) to find the original context those imply.
#pragma once

#include <cmath>
#include <cstdint>

#include "formats/config.h"

namespace cria {

// transformers: inv_freq[i] = 1 / base ** (2i / head_dim).
template <typename T>
T rope_base_inv_freq(const ModelConfig& c, uint32_t i) {
  const T e = (T)(2 * i) / (T)c.head_dim;
  return (T)1 / std::pow((T)c.rope_theta, e);
}

// transformers _compute_llama3_parameters, for one inverse frequency:
// unchanged above the high-frequency wavelength, divided by `factor` below
// the low one, and a smooth mix in between.
template <typename T>
T llama3_scaled_inv_freq(T inv_freq, const RopeScaling& r) {
  const T old_ctx = (T)r.original_max_position_embeddings;
  const T low_wl = old_ctx / (T)r.low_freq_factor;
  const T high_wl = old_ctx / (T)r.high_freq_factor;
  const T pi = (T)3.14159265358979323846;
  const T wl = 2 * pi / inv_freq;
  if (wl < high_wl) return inv_freq;
  if (wl > low_wl) return inv_freq / (T)r.factor;
  const T smooth = (old_ctx / wl - (T)r.low_freq_factor) / ((T)r.high_freq_factor - (T)r.low_freq_factor);
  return (1 - smooth) * inv_freq / (T)r.factor + smooth * inv_freq;
}

// The inverse of the smooth mix above: a frequency of wavelength `wl` inside
// the mixed band whose inverse frequency was divided by `divisor` implies
// this original context. From 1/divisor = (1 - s) / factor + s and
// s = (old_ctx / wl - low) / (high - low).
template <typename T>
T llama3_original_context(T wl, T divisor, const RopeScaling& r) {
  const T inv_factor = 1 / (T)r.factor;
  const T smooth = (1 / divisor - inv_factor) / (1 - inv_factor);
  return wl * (smooth * ((T)r.high_freq_factor - (T)r.low_freq_factor) + (T)r.low_freq_factor);
}

}  // namespace cria
