#include "runtime/sampling/sampler.h"

#include <algorithm>
#include <cmath>

namespace cria {

namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

void Rng::reseed(uint64_t seed) {
  uint64_t x = seed;
  for (uint64_t& v : s_) v = splitmix64(x);
}

uint64_t Rng::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Rng::uniform() { return (double)(next() >> 11) * 0x1.0p-53; }

void Sampler::init(int32_t vocab, const SamplingParams& p, uint64_t stream) {
  p_ = p;
  vocab_ = vocab;
  rng_.reseed(p.seed * 0x9e3779b97f4a7c15ull + stream);
  idx_.resize(vocab);
  prob_.resize(vocab);
  seen_.assign(vocab, 0);
}

int32_t Sampler::sample(float* logits, const int32_t* history, int64_t n_history) {
  // transformers RepetitionPenaltyLogitsProcessor: each distinct id seen
  // once: negative logits are multiplied by the penalty, positive divided.
  if (p_.repetition_penalty != 1.0f && n_history > 0) {
    for (int64_t i = 0; i < n_history; ++i) {
      const int32_t id = history[i];
      if (id < 0 || id >= vocab_ || seen_[id]) continue;
      seen_[id] = 1;
      logits[id] = logits[id] < 0 ? logits[id] * p_.repetition_penalty : logits[id] / p_.repetition_penalty;
    }
    for (int64_t i = 0; i < n_history; ++i)
      if (history[i] >= 0 && history[i] < vocab_) seen_[history[i]] = 0;
  }
  if (p_.greedy || p_.temperature <= 0) {
    return (int32_t)(std::max_element(logits, logits + vocab_) - logits);
  }
  const float inv_t = 1.0f / p_.temperature;
  float mx = -INFINITY;
  for (int32_t i = 0; i < vocab_; ++i) mx = std::max(mx, logits[i]);
  // Candidates: tokens within e^-30 of the best after temperature (the rest
  // carry < 1e-13 of the mass each), then top-k, sorted by logit.
  int32_t n = 0;
  const float floor = mx - 30.0f * p_.temperature;
  for (int32_t i = 0; i < vocab_; ++i)
    if (logits[i] >= floor) idx_[n++] = i;
  auto by_logit = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  if (p_.top_k > 0 && p_.top_k < n) {
    std::nth_element(idx_.begin(), idx_.begin() + p_.top_k, idx_.begin() + n, by_logit);
    n = p_.top_k;
  }
  std::sort(idx_.begin(), idx_.begin() + n, by_logit);
  double sum = 0;
  for (int32_t j = 0; j < n; ++j) {
    prob_[j] = std::exp((logits[idx_[j]] - mx) * inv_t);
    sum += prob_[j];
  }
  // transformers TopPLogitsWarper: keep the smallest prefix whose mass
  // reaches top_p (at least one token).
  if (p_.top_p < 1.0f) {
    double cum = 0;
    int32_t keep = n;
    for (int32_t j = 0; j < n; ++j) {
      cum += prob_[j] / sum;
      if (cum >= p_.top_p) {
        keep = j + 1;
        break;
      }
    }
    n = keep;
  }
  // MinPLogitsWarper: drop tokens below min_p times the top probability.
  if (p_.min_p > 0.0f) {
    const float thresh = p_.min_p * prob_[0];
    int32_t keep = 1;
    while (keep < n && prob_[keep] >= thresh) ++keep;
    n = keep;
  }
  double total = 0;
  for (int32_t j = 0; j < n; ++j) total += prob_[j];
  double r = rng_.uniform() * total;
  for (int32_t j = 0; j < n; ++j) {
    r -= prob_[j];
    if (r < 0) return idx_[j];
  }
  return idx_[n - 1];
}

}  // namespace cria
