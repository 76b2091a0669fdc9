// A loaded model: the mapped file, its config, and every weight bound by the
// tensor visitor of formats/tensors.h to the blocks of one transformer loop.
// Immutable after load and shared by all sessions and threads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "formats/model_file.h"
#include "formats/status.h"
#include "runtime/kernels/kernels.h"
#include "runtime/model/placement.h"
#include "runtime/model/shard.h"
#include "runtime/model/weight_copy.h"

namespace cria {

struct LayerWeights {
  const float* attn_norm_w = nullptr;
  const float* attn_norm_b = nullptr;  // LayerNorm only
  const float* ffn_norm_w = nullptr;   // absent for ParallelOneNorm
  const float* ffn_norm_b = nullptr;
  kernels::Matrix qkv, attn_out;
  // The MLP's input projection: for SwiGLU the gate rows then the up rows
  // (ffn_gate_up), for GELU the up projection (ffn_up).
  kernels::Matrix ffn_in;
  kernels::Matrix ffn_down;
  const float* qkv_b = nullptr;
  const float* attn_out_b = nullptr;
  const float* ffn_in_b = nullptr;
  const float* ffn_down_b = nullptr;
};

struct Weights {
  kernels::Matrix tok_embd;
  kernels::Matrix output;  // the embedding itself when tied
  const float* out_norm_w = nullptr;
  const float* out_norm_b = nullptr;
  std::vector<LayerWeights> layers;
};

struct ModelOptions {
  // Where linear layers run: auto | cpu | xnnpack | vulkan (placement.h).
  std::string backend = "auto";
  // With a device backend: only the first gpu_layers blocks run there (-1:
  // all), the rest on cpu.
  int64_t gpu_layers = -1;
  // Only blocks [layer_begin, layer_end) are placed and run here (-1: to
  // the last): a rank of a layer pipeline (runtime/dist). The other
  // blocks' weights stay bound but are never prepared or read, so their
  // pages of the mapped file are never touched. The token embedding is
  // read only where layer_begin is 0, the output head only where the
  // range ends at the last block.
  int64_t layer_begin = 0, layer_end = -1;
  // Where the CPU kernels read the weights from: a copy in 2 MiB pages or
  // the mapped file (weight_copy.h).
  WeightMemory weights = WeightMemory::kAuto;
  // Tensor parallelism (shard.h): this process holds shard `shard_index`
  // of `shard_count` of every block, and config() is that shard's (its
  // heads, KV heads and MLP width). 1: the whole model.
  int shard_index = 0, shard_count = 1;
  // Whether the output head is placed (a tensor-parallel worker rank never
  // runs it).
  bool head = true;
};

class Model {
 public:
  // Binds every tensor of an opened (validated) file and places its ops.
  static Result<std::unique_ptr<Model>> create(std::unique_ptr<ModelFile> file, const ModelOptions& opt = {});
  static Result<std::unique_ptr<Model>> load(const std::string& path, const ModelOptions& opt = {});

  const ModelFile& file() const { return *file_; }
  // The model's config; under tensor parallelism this shard's
  // (file().config() is then the whole model's).
  const ModelConfig& config() const { return cfg_; }
  const Weights& weights() const { return w_; }
  const Placement& placement() const { return placement_; }
  // The blocks this process runs (ModelOptions): [layer_begin, layer_end).
  int64_t layer_begin() const { return layer_begin_; }
  int64_t layer_end() const { return layer_end_; }
  // ModelOptions::shard_count (1: not split by tensors).
  int shard_count() const { return shard_count_; }

  // Rotary inverse frequencies (head_dim / 2), Llama 3.1 scaling applied.
  const std::vector<float>& inv_freq() const { return inv_freq_; }
  // ALiBi slope of each head rounded to bf16, as transformers'
  // build_alibi_tensor has it (empty for RoPE models).
  const std::vector<float>& alibi() const { return alibi_; }
  // Largest matmul input width (for activation scratch).
  int64_t max_matmul_cols() const;

 private:
  Model() = default;
  Status copy_weights(WeightMemory choice);

  std::unique_ptr<ModelFile> file_;
  std::unique_ptr<WeightCopy> copy_;  // the weights the CPU reads, when copied
  ModelConfig cfg_;
  Weights w_;
  ShardBytes shard_bytes_;  // this shard's weight slices (tensor parallelism)
  int shard_count_ = 1;
  Placement placement_;
  std::vector<float> inv_freq_, alibi_;
  int64_t layer_begin_ = 0, layer_end_ = 0;
};

// Exposed for tests: HF's rotary frequencies and ALiBi slopes.
std::vector<float> rope_inv_freq(const ModelConfig& c);
std::vector<float> alibi_slopes(uint32_t num_heads);

}  // namespace cria
