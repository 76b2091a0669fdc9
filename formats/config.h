// ModelConfig: the architecture description every other module works from.
// It mirrors the `Config` table of cria.fbs; the converter fills it from a
// Hugging Face config.json or GGUF metadata, the runtime reads it from the
// model file. Llama 3 and Falcon are two settings of these fields.
#pragma once

#include <cstdint>
#include <string>

#include "formats/status.h"

namespace cria {

enum class Arch : uint8_t { kLlama = 0, kFalcon = 1 };
enum class NormKind : uint8_t { kRMSNorm = 0, kLayerNorm = 1 };
enum class PositionKind : uint8_t { kRope = 0, kAlibi = 1 };
enum class MlpKind : uint8_t { kSwiGLU = 0, kGelu = 1 };
enum class BlockKind : uint8_t { kSequential = 0, kParallelOneNorm = 1, kParallelTwoNorms = 2 };
enum class RopeScalingKind : uint8_t { kNone = 0, kLlama3 = 1 };

struct RopeScaling {
  RopeScalingKind kind = RopeScalingKind::kNone;
  float factor = 1.0f;
  float low_freq_factor = 1.0f;
  float high_freq_factor = 1.0f;
  uint32_t original_max_position_embeddings = 0;
};

struct ModelConfig {
  Arch arch = Arch::kLlama;
  std::string hf_architecture;
  uint32_t vocab_size = 0;
  uint32_t hidden_size = 0;
  uint32_t intermediate_size = 0;
  uint32_t num_layers = 0;
  uint32_t num_heads = 0;
  uint32_t num_kv_heads = 0;
  uint32_t head_dim = 0;
  uint32_t max_position_embeddings = 0;
  NormKind norm = NormKind::kRMSNorm;
  float norm_eps = 1e-5f;
  BlockKind block = BlockKind::kSequential;
  PositionKind position = PositionKind::kRope;
  float rope_theta = 10000.0f;
  RopeScaling rope_scaling;
  MlpKind mlp = MlpKind::kSwiGLU;
  bool qkv_bias = false;
  bool attn_out_bias = false;
  bool mlp_bias = false;
  bool tie_word_embeddings = false;

  uint32_t q_dim() const { return num_heads * head_dim; }
  uint32_t kv_dim() const { return num_kv_heads * head_dim; }
  uint32_t qkv_dim() const { return q_dim() + 2 * kv_dim(); }
};

const char* arch_name(Arch a);
const char* norm_name(NormKind n);
const char* position_name(PositionKind p);
const char* mlp_name(MlpKind m);
const char* block_name(BlockKind b);

// Checks the hyperparameters are usable (non-zero sizes, heads that divide,
// values in range). The message names the offending field.
Status validate_config(const ModelConfig& c);

}  // namespace cria
