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

// What a tensor is, whatever its source calls it: the canonical kinds. The
// converter's source mappings (convert_hf.cc, convert_gguf.cc) and the
// runtime's weight binding are switches over this enum, so the compiler
// lists every place a new kind must be handled.
enum class TensorKind : uint8_t {
  kTokEmbd,     // tok_embd                        [vocab, hidden]
  kAttnNorm,    // blk.N.attn_norm                 [hidden]
  kAttnQkv,     // blk.N.attn_qkv                  [q_dim + 2 kv_dim, hidden]
  kAttnOut,     // blk.N.attn_out                  [hidden, q_dim]
  kFfnNorm,     // blk.N.ffn_norm                  [hidden]
  kFfnGateUp,   // blk.N.ffn_gate_up (SwiGLU)      [2 ffn, hidden]: gate rows, then up rows
  kFfnUp,       // blk.N.ffn_up (GELU)             [ffn, hidden]
  kFfnDown,     // blk.N.ffn_down                  [hidden, ffn]
  kOutputNorm,  // output_norm                     [hidden]
  kOutput,      // output                          [vocab, hidden]
};
constexpr int kNumTensorKinds = 10;

// The canonical base name of a kind ("attn_qkv"); the file name adds the
// block ("blk.3.") and the part (".weight", ".bias").
const char* tensor_kind_name(TensorKind k);
// Whether the kind lives in every block (blk.N.) or once per model.
bool tensor_kind_in_block(TensorKind k);

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
  TensorKind kind;
  bool bias;  // the ".bias" of the kind, else its ".weight"
  const char* part() const { return bias ? "bias" : "weight"; }
};

// Calls f for every tensor the configuration requires, in file order.
void for_each_tensor(const ModelConfig& c, const std::function<void(const TensorSpec&)>& f);

// Convenience: the list itself.
std::vector<TensorSpec> tensor_specs(const ModelConfig& c);

// The canonical file name: tensor_name(kAttnQkv, 3, true) = "blk.3.attn_qkv.bias".
std::string tensor_name(TensorKind k, int layer, bool bias);

}  // namespace cria
