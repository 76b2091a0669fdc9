// Turning a row of logits into the next token, the way transformers'
// generate() does: repetition penalty, then (unless greedy) temperature,
// top-k, top-p and min-p, then a draw from the remaining distribution.
// Buffers are sized once for the vocabulary; sample() allocates nothing.
#pragma once

#include <cstdint>
#include <vector>

namespace cria {

struct SamplingParams {
  bool greedy = false;             // argmax after the repetition penalty
  float temperature = 1.0f;        // <= 0 means greedy
  int32_t top_k = 0;               // 0: off
  float top_p = 1.0f;              // 1: off
  float min_p = 0.0f;              // 0: off
  float repetition_penalty = 1.0f; // 1: off (HF semantics, over prompt and output)
  uint64_t seed = 0;
};

// A seeded generator with the same output on every platform
// (splitmix64-seeded xoshiro256**).
class Rng {
 public:
  explicit Rng(uint64_t seed = 0) { reseed(seed); }
  void reseed(uint64_t seed);
  uint64_t next();
  double uniform();  // [0, 1), 53 random bits

 private:
  uint64_t s_[4];
};

class Sampler {
 public:
  Sampler() = default;
  void init(int32_t vocab, const SamplingParams& p, uint64_t stream = 0);

  // Chooses a token from `logits` (modified in place). `history` holds the
  // ids the repetition penalty applies to (prompt and output so far).
  int32_t sample(float* logits, const int32_t* history, int64_t n_history);

  const SamplingParams& params() const { return p_; }

 private:
  SamplingParams p_;
  int32_t vocab_ = 0;
  Rng rng_;
  std::vector<int32_t> idx_;
  std::vector<float> prob_;
  std::vector<uint8_t> seen_;
};

}  // namespace cria
