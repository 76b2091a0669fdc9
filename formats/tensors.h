// The one place that names a model's tensors. The converter, the file
// validator and the runtime's weight binding all walk this list, so a tensor
// is named and shaped here and nowhere else.
//
// Canonical layout (shared by Llama and Falcon; the converter maps each
// source checkpoint's names and fused layouts onto it):
//   tok_embd.weight                [vocab, hidden]
//   blk.N.attn_norm.weight/.bias   [hidden]          (.bias for LayerNorm)
//   blk.N.attn_qkv.weight/.bias    [q_dim + 2 kv_dim, hidden]  rows: all Q heads,
//                                   then all K heads, then all V heads
//   blk.N.attn_out.weight/.bias    [hidden, q_dim]
//   blk.N.ffn_norm.weight/.bias    [hidden]          (Sequential, ParallelTwoNorms)
//   SwiGLU: blk.N.ffn_gate_up.weight [2 ffn, hidden] rows: gate, then up
//   GELU:   blk.N.ffn_up.weight/.bias [ffn, hidden]
//   blk.N.ffn_down.weight/.bias    [hidden, ffn]
//   output_norm.weight/.bias       [hidden]
//   output.weight                  [vocab, hidden]   (absent when tied)
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "formats/config.h"

namespace cria {

enum class TensorRole : uint8_t {
  kEmbedding,  // token embedding table (rows gathered, may serve as the head)
  kHead,       // output projection
  kLinear,     // a matmul weight inside a block
  kNorm,       // norm weight or bias (kept in f32)
  kBias,       // linear bias (kept in f32)
};

struct TensorSpec {
  std::string name;
  std::vector<uint64_t> shape;
  TensorRole role;
  int layer;  // -1 outside the blocks
};

// Calls f for every tensor the configuration requires, in file order.
void for_each_tensor(const ModelConfig& c, const std::function<void(const TensorSpec&)>& f);

// Convenience: the list itself.
std::vector<TensorSpec> tensor_specs(const ModelConfig& c);

std::string layer_tensor_name(int layer, const char* suffix);

// What a canonical name says: "blk.3.attn_qkv.bias" -> base "attn_qkv", bias.
struct SpecName {
  std::string base;
  bool bias = false;
  std::string kind() const { return bias ? "bias" : "weight"; }
};
SpecName parse_spec_name(const TensorSpec& spec);

}  // namespace cria
