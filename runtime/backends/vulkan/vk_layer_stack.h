// Layers [l0, l1) of a cria::Model on a Vulkan device, one token at a time
// (decode): the weights uploaded once, an f16 KV cache in device memory,
// and each token's whole layer range recorded as one command batch — one
// submission and one host sync per token. With l1 = num_layers it also
// runs the final norm and the output head and reads back the logits.
//
// A session decoding one sequence of a model placed wholly on the `vulkan`
// backend owns one (make_decoder below): the weights are the backend's,
// borrowed; the KV cache and activations are the session's. Prefill runs
// batched through the seam and its cache rows are copied to the device.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "runtime/backends/vulkan/vk_backend.h"
#include "runtime/backends/vulkan/vk_ops.h"
#include "runtime/model/device_decoder.h"
#include "runtime/model/model.h"
#include "runtime/model/transformer.h"

namespace cria::vk {

class LayerStack {
 public:
  struct Options {
    int64_t l0 = 0, l1 = -1;  // l1 < 0: every layer
    int64_t n_ctx = 0;        // cache positions; 0: the model's max_position_embeddings
    uint64_t split_limit = 0; // per-buffer limit for weights (0: the device's)
    // Borrow the linear layers this backend prepared (the model placed them
    // there, on this same context) instead of uploading a second copy.
    const VulkanBackend* borrow = nullptr;
  };
  static Result<std::unique_ptr<LayerStack>> create(Context& ctx, const Model& m, const Options& o);

  // One decode step at position `pos` (< n_ctx; positions fed in order).
  // Input: `token`'s embedding when l0 == 0, else `hidden_in` (hidden_size
  // floats). Outputs, each optional: the hidden state after layer l1 - 1,
  // and the logits (vocab_size floats) when the stack ends at the last layer.
  Status decode(int32_t token, const float* hidden_in, int64_t pos, float* hidden_out, float* logits);

  // Copies KV rows [from, to) of host cache sequence `seq` (f16) to the
  // device cache of the stack's layers, or back.
  Status load_kv(const KvCache& host, int64_t seq, int64_t from, int64_t to);
  Status store_kv(KvCache& host, int64_t seq, int64_t from, int64_t to);

  bool has_head() const { return head_; }
  uint64_t weight_bytes() const { return weight_bytes_; }

 private:
  struct Layer {
    Buffer attn_norm_w, attn_norm_b, ffn_norm_w, ffn_norm_b;
    const DeviceMatrix *qkv = nullptr, *attn_out = nullptr, *ffn_in = nullptr, *ffn_down = nullptr;
    Buffer qkv_b, attn_out_b, ffn_in_b, ffn_down_b;
    Buffer k, v;  // f16 cache [kv head][n_ctx][head_dim]
  };
  LayerStack(Context& ctx, const Model& m) : ctx_(ctx), m_(m) {}
  Status init(const Options& o);
  Result<Buffer> f32_buffer(const float* data, uint64_t n, const char* what);
  Result<const DeviceMatrix*> matrix(const PlacedLinear& p, const char* what);
  Status check_kv(const KvCache& host, int64_t seq, int64_t from, int64_t to) const;
  Status norm(const Buffer& x, const Buffer& w, const Buffer& b, Buffer& y);
  Status linear(const DeviceMatrix* w, const Buffer& bias, const Buffer& x, Buffer& y);
  Status mlp(const Layer& L, const Buffer& in, Buffer& out);
  Status record_layer(int64_t l, int64_t pos);

  Context& ctx_;
  const Model& m_;
  int64_t l0_ = 0, l1_ = 0, n_ctx_ = 0;
  uint64_t split_limit_ = 0, weight_bytes_ = 0;
  bool head_ = false;
  std::vector<Layer> layers_;
  Buffer out_norm_w_, out_norm_b_;
  const DeviceMatrix* output_ = nullptr;
  const VulkanBackend* borrow_ = nullptr;
  std::deque<DeviceMatrix> owned_;  // uploaded here when not borrowed
  // Activations (device), host-visible input/output, scratch.
  Buffer x_, h_, h2_, qkv_, attn_, o_, ff_, act_, logits_, scores_, slopes_, none_;
  Buffer in_host_, cs_host_, out_host_, logits_host_;
  ActScratch acts_;
};

// The decoder a Session uses when every linear layer of `m` (and its head)
// is placed on the `vulkan` backend: a LayerStack over all layers with an
// n_ctx-position cache. nullptr (not an error) when the model is placed
// otherwise or CRIA_VK_STACK=0 asks for the per-layer path.
Result<std::unique_ptr<DeviceDecoder>> make_decoder(const Model& m, int64_t n_ctx);

}  // namespace cria::vk
