// The one transformer loop that runs every supported architecture. The
// config picks the pieces: RMSNorm or LayerNorm, RoPE or ALiBi, SwiGLU or
// GELU, sequential or parallel residual wiring, biases. Semantics follow
// Hugging Face modeling_llama.py and modeling_falcon.py.
//
// State that belongs to a sequence (the KV cache) and per-call buffers
// (ForwardScratch) are owned by the caller and allocated once, so a forward
// call allocates nothing.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/kernels/ops.h"
#include "runtime/model/model.h"

namespace cria {

// Zeroed memory reserved at its full size but committed page by page as it
// is first written (an anonymous mapping): a cache of 131072 positions
// costs the memory of the rows it has filled, not of its capacity.
class LazyBytes {
 public:
  LazyBytes() = default;
  ~LazyBytes() { reset(); }
  LazyBytes(LazyBytes&& o) noexcept { *this = std::move(o); }
  LazyBytes& operator=(LazyBytes&& o) noexcept;
  LazyBytes(const LazyBytes&) = delete;
  LazyBytes& operator=(const LazyBytes&) = delete;

  // False when the address space cannot be reserved.
  bool reserve(size_t bytes);
  void reset();
  uint8_t* data() const { return p_; }
  size_t size() const { return n_; }

 private:
  uint8_t* p_ = nullptr;
  size_t n_ = 0;
};

// Keys and values of every layer for n_seq sequences of up to n_ctx
// positions, f16, laid out [layer][seq][kv_head][pos][head_dim] so one
// query's attention streams each KV head's rows contiguously.
// f16 by default; q8 / q4 to hold longer contexts (kv_rows.h); f32 on
// request (reference tests isolate the model's math from the cache's
// rounding with it). Committed as it fills (LazyBytes).
// A cache may hold only layers [first_layer, first_layer + n_layers): a
// rank of a layer pipeline (runtime/dist) keeps only its own layers' rows.
// Layer arguments are always the model's layer numbers.
struct KvCache {
  int64_t n_layers = 0, n_seq = 0, n_ctx = 0, n_kv = 0, head_dim = 0;
  int64_t first_layer = 0;
  kernels::KvType type = kernels::KvType::kF16;
  LazyBytes k, v;

  // Layers [layer_begin, layer_end); layer_end -1: the model's last.
  // Errors: the size overflows or cannot be reserved; a quantized type on a
  // head_dim that is not a multiple of 32.
  Status init(const ModelConfig& c, int64_t n_seq, int64_t n_ctx, kernels::KvType type = kernels::KvType::kF16,
              int64_t layer_begin = 0, int64_t layer_end = -1);
  size_t row_bytes() const { return kernels::kv_row_bytes(type, head_dim); }
  size_t head_bytes() const { return (size_t)n_ctx * row_bytes(); }  // between KV heads
  uint8_t* k_at(int64_t layer, int64_t seq) const {
    return k.data() + (size_t)(((layer - first_layer) * n_seq + seq) * n_kv) * head_bytes();
  }
  uint8_t* v_at(int64_t layer, int64_t seq) const {
    return v.data() + (size_t)(((layer - first_layer) * n_seq + seq) * n_kv) * head_bytes();
  }
  // Row of one position of one KV head. (The cache's bytes are mutable
  // through a const KvCache, as through a const span.)
  uint8_t* k_row(int64_t layer, int64_t seq, int64_t g, int64_t pos) const {
    return k_at(layer, seq) + (size_t)g * head_bytes() + (size_t)pos * row_bytes();
  }
  uint8_t* v_row(int64_t layer, int64_t seq, int64_t g, int64_t pos) const {
    return v_at(layer, seq) + (size_t)g * head_bytes() + (size_t)pos * row_bytes();
  }
  // Rows [0, n_pos) of sequence `from` into sequence `to`, every layer.
  void copy_rows(int64_t from, int64_t to, int64_t n_pos);
  size_t bytes() const { return k.size() + v.size(); }
};

// One token of a batch: which sequence it belongs to (its KV cache slot),
// its position there, and whether its logits are wanted. Attention of a
// token sees only its own sequence's positions [0, pos]: a block-diagonal
// causal mask, never materialised.
struct BatchEntry {
  int32_t token = 0;
  int32_t pos = 0;
  int32_t seq = 0;
  bool logits = false;
};

struct ForwardScratch {
  int64_t max_tokens = 0;
  std::vector<float> x, h, h2, qkv, attn, o, ff, act, cs, sn, sel;
  std::vector<kernels::AttnQuery> queries;
  kernels::MatmulScratch mm;
  kernels::AttnScratch att;

  void init(const Model& m, int64_t max_tokens, int threads);
};

// Completes the partial sums of a tensor-parallel shard (shard.h) across
// the processes that hold the other shards: on return every process holds
// the same sum, in place. runtime/dist implements it over MPI.
class TensorReduce {
 public:
  virtual ~TensorReduce() = default;
  virtual Status sum(float* x, int64_t count) = 0;
};

// A part of the layer stack, for a pipeline across processes
// (runtime/dist): layers [begin, end) only. A range that starts past layer
// 0 takes the hidden state `hidden_in` (n x hidden_size) instead of the
// token embedding; one that ends before the last layer writes the hidden
// state after layer end - 1 to `hidden_out` (n x hidden_size) instead of
// the final norm and logits. The default is the whole model.
// With `reduce` (a model sharded by tensors), the output of attention's
// and the MLP's row-parallel projections is summed across processes before
// it joins the residual: twice a layer for a sequential block, once (the
// two branches together) for Falcon's parallel blocks. `no_head` stops
// after the last layer (a worker rank that holds no output head).
struct LayerSpan {
  int64_t begin = 0, end = -1;  // end -1: num_layers
  const float* hidden_in = nullptr;
  float* hidden_out = nullptr;
  TensorReduce* reduce = nullptr;
  bool no_head = false;
};

// Runs n <= scratch.max_tokens batch entries through the model, writing
// their keys and values into the cache, and the logits of the entries that
// asked for them (in batch order) to `logits` (rows of vocab_size). Linear
// layers run on the backends the model placed them on; an error is a
// backend's (a device lost, say), or a span the model or cache does not hold.
Status forward(const Model& m, const kernels::KernelTable& k, kernels::ThreadPool& pool, KvCache& cache,
               ForwardScratch& s, const BatchEntry* batch, int64_t n, float* logits, const LayerSpan& span = {});

}  // namespace cria
