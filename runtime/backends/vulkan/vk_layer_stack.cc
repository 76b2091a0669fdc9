#include "runtime/backends/vulkan/vk_layer_stack.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <string>

namespace cria::vk {

Result<std::unique_ptr<LayerStack>> LayerStack::create(Context& ctx, const Model& m, const Options& o) {
  std::unique_ptr<LayerStack> s(new LayerStack(ctx, m));
  CRIA_RETURN_IF_ERROR(s->init(o));
  return s;
}

Result<Buffer> LayerStack::f32_buffer(const float* data, uint64_t n, const char* what) {
  CRIA_ASSIGN_OR_RETURN(Buffer b, ctx_.create_buffer(n * 4, Buffer::Kind::kDevice, what));
  if (data) CRIA_RETURN_IF_ERROR(ctx_.upload(b, 0, data, n * 4));
  weight_bytes_ += n * 4;
  return b;
}

Result<const DeviceMatrix*> LayerStack::matrix(const PlacedLinear& p, const char* what) {
  if (borrow_ && p.backend == borrow_) return &borrow_->matrix(p.handle);
  const kernels::Matrix& w = p.l.w;
  weight_bytes_ += w.l.total;
  CRIA_ASSIGN_OR_RETURN(DeviceMatrix d, upload_matrix(ctx_, w.type, w.l, w.data, split_limit_, what));
  owned_.push_back(std::move(d));
  return &owned_.back();
}

Status LayerStack::init(const Options& o) {
  const ModelConfig& c = m_.config();
  const Weights& w = m_.weights();
  const Placement& pl = m_.placement();
  l0_ = o.l0;
  l1_ = o.l1 < 0 ? (int64_t)c.num_layers : o.l1;
  n_ctx_ = o.n_ctx > 0 ? o.n_ctx : (int64_t)c.max_position_embeddings;
  split_limit_ = o.split_limit;
  borrow_ = o.borrow;
  if (borrow_ && &borrow_->context() != &ctx_)
    return Error(Code::kInvalidArgument, "vulkan: borrowed weights live on another context");
  if (l0_ < 0 || l0_ >= l1_ || l1_ > (int64_t)c.num_layers)
    return Error(Code::kInvalidArgument, "vulkan: layer range [" + std::to_string(l0_) + ", " + std::to_string(l1_) +
                                             ") is not inside the model's " + std::to_string(c.num_layers) + " layers");
  if (c.head_dim % 2 != 0) return Error(Code::kUnsupported, "vulkan: odd head_dim");
  head_ = l1_ == (int64_t)c.num_layers;
  const uint64_t hs = c.hidden_size, ffn = c.intermediate_size, d = c.head_dim;
  const uint64_t ff_width = c.mlp == MlpKind::kSwiGLU ? 2 * ffn : ffn;
  const bool ln = c.norm == NormKind::kLayerNorm;

  for (int64_t l = l0_; l < l1_; ++l) {
    const LayerWeights& L = w.layers[(size_t)l];
    const std::string p = "blk." + std::to_string(l) + ".";
    Layer D;
    CRIA_ASSIGN_OR_RETURN(D.attn_norm_w, f32_buffer(L.attn_norm_w, hs, "attn_norm"));
    if (ln) {
      CRIA_ASSIGN_OR_RETURN(D.attn_norm_b, f32_buffer(L.attn_norm_b, hs, "attn_norm bias"));
    }
    if (L.ffn_norm_w) {
      CRIA_ASSIGN_OR_RETURN(D.ffn_norm_w, f32_buffer(L.ffn_norm_w, hs, "ffn_norm"));
    }
    if (L.ffn_norm_w && ln) {
      CRIA_ASSIGN_OR_RETURN(D.ffn_norm_b, f32_buffer(L.ffn_norm_b, hs, "ffn_norm bias"));
    }
    CRIA_ASSIGN_OR_RETURN(D.qkv, matrix(pl.linear(l, LinearRole::kQkv), (p + "attn_qkv").c_str()));
    CRIA_ASSIGN_OR_RETURN(D.attn_out, matrix(pl.linear(l, LinearRole::kAttnOut), (p + "attn_output").c_str()));
    CRIA_ASSIGN_OR_RETURN(D.ffn_in, matrix(pl.linear(l, LinearRole::kFfnIn), (p + "ffn_in").c_str()));
    CRIA_ASSIGN_OR_RETURN(D.ffn_down, matrix(pl.linear(l, LinearRole::kFfnDown), (p + "ffn_down").c_str()));
    if (L.qkv_b) {
      CRIA_ASSIGN_OR_RETURN(D.qkv_b, f32_buffer(L.qkv_b, c.qkv_dim(), "qkv bias"));
    }
    if (L.attn_out_b) {
      CRIA_ASSIGN_OR_RETURN(D.attn_out_b, f32_buffer(L.attn_out_b, hs, "attn_output bias"));
    }
    if (L.ffn_in_b) {
      CRIA_ASSIGN_OR_RETURN(D.ffn_in_b, f32_buffer(L.ffn_in_b, ff_width, "ffn_in bias"));
    }
    if (L.ffn_down_b) {
      CRIA_ASSIGN_OR_RETURN(D.ffn_down_b, f32_buffer(L.ffn_down_b, hs, "ffn_down bias"));
    }
    const uint64_t cache_bytes = (uint64_t)c.num_kv_heads * (uint64_t)n_ctx_ * d * 2;
    CRIA_ASSIGN_OR_RETURN(D.k, ctx_.create_buffer(cache_bytes, Buffer::Kind::kDevice, (p + "K cache").c_str()));
    CRIA_ASSIGN_OR_RETURN(D.v, ctx_.create_buffer(cache_bytes, Buffer::Kind::kDevice, (p + "V cache").c_str()));
    layers_.push_back(std::move(D));
  }
  if (head_) {
    CRIA_ASSIGN_OR_RETURN(out_norm_w_, f32_buffer(w.out_norm_w, hs, "output_norm"));
    if (ln) {
      CRIA_ASSIGN_OR_RETURN(out_norm_b_, f32_buffer(w.out_norm_b, hs, "output_norm bias"));
    }
    CRIA_ASSIGN_OR_RETURN(output_, matrix(pl.output(), "output"));
    CRIA_ASSIGN_OR_RETURN(logits_, ctx_.create_buffer(c.vocab_size * 4ull, Buffer::Kind::kDevice, "logits"));
    CRIA_ASSIGN_OR_RETURN(logits_host_, ctx_.create_buffer(c.vocab_size * 4ull, Buffer::Kind::kHost, "logits"));
  }
  auto dev = [&](Buffer& b, uint64_t n, const char* what) -> Status {
    CRIA_ASSIGN_OR_RETURN(b, ctx_.create_buffer(n * 4, Buffer::Kind::kDevice, what));
    return Status::Ok();
  };
  CRIA_RETURN_IF_ERROR(dev(x_, hs, "hidden"));
  CRIA_RETURN_IF_ERROR(dev(h_, hs, "normed"));
  CRIA_RETURN_IF_ERROR(dev(h2_, hs, "normed 2"));
  CRIA_RETURN_IF_ERROR(dev(qkv_, c.qkv_dim(), "qkv"));
  CRIA_RETURN_IF_ERROR(dev(attn_, c.q_dim(), "attention out"));
  CRIA_RETURN_IF_ERROR(dev(o_, hs, "projection"));
  CRIA_RETURN_IF_ERROR(dev(ff_, ff_width, "mlp"));
  CRIA_RETURN_IF_ERROR(dev(act_, ffn, "mlp act"));
  CRIA_RETURN_IF_ERROR(dev(scores_, (uint64_t)c.num_heads * (uint64_t)n_ctx_, "attention scores"));
  CRIA_RETURN_IF_ERROR(dev(none_, 1, "unused binding"));
  if (c.position == PositionKind::kAlibi) {
    CRIA_ASSIGN_OR_RETURN(slopes_, f32_buffer(m_.alibi().data(), c.num_heads, "alibi slopes"));
  }
  // Host-visible: written or read by the CPU around each submission.
  CRIA_ASSIGN_OR_RETURN(in_host_, ctx_.create_buffer(hs * 4, Buffer::Kind::kHost, "input"));
  CRIA_ASSIGN_OR_RETURN(out_host_, ctx_.create_buffer(hs * 4, Buffer::Kind::kHost, "output"));
  CRIA_ASSIGN_OR_RETURN(cs_host_, ctx_.create_buffer(d * 4, Buffer::Kind::kHost, "rope cos/sin"));
  CRIA_ASSIGN_OR_RETURN(acts_, make_act_scratch(ctx_, (uint64_t)m_.max_matmul_cols()));
  return Status::Ok();
}

Status LayerStack::norm(const Buffer& x, const Buffer& w, const Buffer& b, Buffer& y) {
  const ModelConfig& c = m_.config();
  if (c.norm == NormKind::kRMSNorm) return rmsnorm(ctx_, x, w, c.norm_eps, c.hidden_size, y);
  return layernorm(ctx_, x, w, b, c.norm_eps, c.hidden_size, y);
}

Status LayerStack::linear(const DeviceMatrix* w, const Buffer& bias, const Buffer& x, Buffer& y) {
  CRIA_RETURN_IF_ERROR(matvec(ctx_, *w, x, 0, y, 0, acts_));
  if (bias.valid()) CRIA_RETURN_IF_ERROR(add(ctx_, y, bias, w->l.rows));
  return Status::Ok();
}

Status LayerStack::mlp(const Layer& L, const Buffer& in, Buffer& out) {
  const ModelConfig& c = m_.config();
  const uint64_t ffn = c.intermediate_size;
  CRIA_RETURN_IF_ERROR(linear(L.ffn_in, L.ffn_in_b, in, ff_));
  if (c.mlp == MlpKind::kSwiGLU) {
    CRIA_RETURN_IF_ERROR(swiglu(ctx_, ff_, 0, ff_, ffn, ffn, act_));
    return linear(L.ffn_down, L.ffn_down_b, act_, out);
  }
  CRIA_RETURN_IF_ERROR(gelu(ctx_, ff_, ffn));
  return linear(L.ffn_down, L.ffn_down_b, ff_, out);
}

// The same wiring as runtime/model/transformer.cc forward(), for one token.
Status LayerStack::record_layer(int64_t l, int64_t pos) {
  const ModelConfig& c = m_.config();
  const Layer& L = layers_[(size_t)(l - l0_)];
  const uint64_t hs = c.hidden_size, d = c.head_dim, qd = c.q_dim(), kvd = c.kv_dim();
  const Buffer& anb = L.attn_norm_b.valid() ? L.attn_norm_b : none_;
  const Buffer& fnb = L.ffn_norm_b.valid() ? L.ffn_norm_b : none_;
  CRIA_RETURN_IF_ERROR(norm(x_, L.attn_norm_w, anb, h_));
  CRIA_RETURN_IF_ERROR(linear(L.qkv, L.qkv_b, h_, qkv_));
  if (c.position == PositionKind::kRope) {
    CRIA_RETURN_IF_ERROR(rope(ctx_, qkv_, 0, c.num_heads, d, cs_host_));
    CRIA_RETURN_IF_ERROR(rope(ctx_, qkv_, qd, c.num_kv_heads, d, cs_host_));
  }
  const KvShape kv{c.num_kv_heads, d, (uint64_t)n_ctx_ * d};
  Buffer& k = const_cast<Buffer&>(L.k);
  Buffer& v = const_cast<Buffer&>(L.v);
  CRIA_RETURN_IF_ERROR(kv_append(ctx_, qkv_, qd, kv, (uint64_t)pos, k));
  CRIA_RETURN_IF_ERROR(kv_append(ctx_, qkv_, qd + kvd, kv, (uint64_t)pos, v));
  AttnParams a;
  a.n_heads = c.num_heads;
  a.kv = kv;
  a.n_pos = (uint64_t)pos + 1;
  a.max_pos = (uint64_t)n_ctx_;
  a.scale = 1.0f / std::sqrt((float)d);
  a.alibi = c.position == PositionKind::kAlibi;
  CRIA_RETURN_IF_ERROR(attention(ctx_, a, qkv_, k, v, attn_, scores_, a.alibi ? slopes_ : none_));
  CRIA_RETURN_IF_ERROR(linear(L.attn_out, L.attn_out_b, attn_, o_));
  switch (c.block) {
    case BlockKind::kSequential:
      CRIA_RETURN_IF_ERROR(add(ctx_, x_, o_, hs));
      CRIA_RETURN_IF_ERROR(norm(x_, L.ffn_norm_w, fnb, h2_));
      CRIA_RETURN_IF_ERROR(mlp(L, h2_, o_));
      return add(ctx_, x_, o_, hs);
    case BlockKind::kParallelOneNorm:
      CRIA_RETURN_IF_ERROR(mlp(L, h_, h2_));
      CRIA_RETURN_IF_ERROR(add(ctx_, h2_, o_, hs));
      return add(ctx_, x_, h2_, hs);
    case BlockKind::kParallelTwoNorms:
      CRIA_RETURN_IF_ERROR(norm(x_, L.ffn_norm_w, fnb, h2_));
      CRIA_RETURN_IF_ERROR(mlp(L, h2_, h_));
      CRIA_RETURN_IF_ERROR(add(ctx_, h_, o_, hs));
      return add(ctx_, x_, h_, hs);
  }
  return Error(Code::kInternal, "vulkan: unknown block kind");
}

Status LayerStack::decode(int32_t token, const float* hidden_in, int64_t pos, float* hidden_out, float* logits) {
  const ModelConfig& c = m_.config();
  const Weights& w = m_.weights();
  const uint64_t hs = c.hidden_size, half = c.head_dim / 2;
  if (pos < 0 || pos >= n_ctx_)
    return Error(Code::kOutOfRange, "vulkan: position " + std::to_string(pos) + " outside the cache of " +
                                        std::to_string(n_ctx_));
  float* in = static_cast<float*>(in_host_.mapped());
  if (l0_ == 0) {
    if (token < 0 || (uint32_t)token >= c.vocab_size)
      return Error(Code::kInvalidArgument, "vulkan: token " + std::to_string(token) + " outside the vocabulary");
    dequantize_row(w.tok_embd.type, w.tok_embd.data, w.tok_embd.l, (uint64_t)token, in);
  } else {
    if (!hidden_in) return Error(Code::kInvalidArgument, "vulkan: a stack from layer > 0 needs the hidden state");
    std::memcpy(in, hidden_in, hs * 4);
  }
  if (c.position == PositionKind::kRope) {
    // As transformers: the angle pos * inv_freq rounded to f32, then cos/sin.
    float* cs = static_cast<float*>(cs_host_.mapped());
    const std::vector<float>& f = m_.inv_freq();
    for (uint64_t i = 0; i < half; ++i) {
      const float a = (float)pos * f[i];
      cs[i] = std::cos(a);
      cs[half + i] = std::sin(a);
    }
  }
  CRIA_RETURN_IF_ERROR(ctx_.begin());
  Status st = ctx_.copy(in_host_, 0, x_, 0, hs * 4);
  for (int64_t l = l0_; st.ok() && l < l1_; ++l) st = record_layer(l, pos);
  if (st.ok() && hidden_out) st = ctx_.copy(x_, 0, out_host_, 0, hs * 4);
  if (st.ok() && head_ && logits) {
    st = norm(x_, out_norm_w_, out_norm_b_.valid() ? out_norm_b_ : none_, h_);
    if (st.ok()) st = matvec(ctx_, *output_, h_, 0, logits_, 0, acts_);
    if (st.ok()) st = ctx_.copy(logits_, 0, logits_host_, 0, c.vocab_size * 4ull);
  }
  // Submit even after a recording error, so the context leaves recording.
  Status sub = ctx_.submit();
  CRIA_RETURN_IF_ERROR(st);
  CRIA_RETURN_IF_ERROR(sub);
  if (hidden_out) std::memcpy(hidden_out, out_host_.mapped(), hs * 4);
  if (head_ && logits) std::memcpy(logits, logits_host_.mapped(), c.vocab_size * 4ull);
  return Status::Ok();
}

Status LayerStack::check_kv(const KvCache& host, int64_t seq, int64_t from, int64_t to) const {
  const ModelConfig& c = m_.config();
  if (host.type != kernels::KvType::kF16)
    return Error(Code::kUnsupported, std::string("vulkan: the device cache is f16; the host cache is ") +
                                         kernels::kv_type_name(host.type));
  if (host.n_kv != (int64_t)c.num_kv_heads || host.head_dim != (int64_t)c.head_dim || host.first_layer > l0_ ||
      host.first_layer + host.n_layers < l1_)
    return Error(Code::kInvalidArgument, "vulkan: the host cache is not this model's");
  if (seq < 0 || seq >= host.n_seq || from < 0 || from > to || to > std::min(host.n_ctx, n_ctx_))
    return Error(Code::kOutOfRange, "vulkan: cache rows [" + std::to_string(from) + ", " + std::to_string(to) +
                                        ") outside the cache");
  return Status::Ok();
}

// One copy per layer, K or V and KV head: the rows of one head are
// contiguous on both sides ([head][pos][head_dim] f16).
Status LayerStack::load_kv(const KvCache& host, int64_t seq, int64_t from, int64_t to) {
  CRIA_RETURN_IF_ERROR(check_kv(host, seq, from, to));
  const uint64_t d = m_.config().head_dim, bytes = (uint64_t)(to - from) * d * 2;
  if (bytes == 0) return Status::Ok();
  for (int64_t l = l0_; l < l1_; ++l)
    for (int64_t g = 0; g < host.n_kv; ++g) {
      Layer& L = layers_[(size_t)(l - l0_)];
      const uint64_t off = ((uint64_t)g * (uint64_t)n_ctx_ + (uint64_t)from) * d * 2;
      CRIA_RETURN_IF_ERROR(ctx_.upload(L.k, off, host.k_row(l, seq, g, from), bytes));
      CRIA_RETURN_IF_ERROR(ctx_.upload(L.v, off, host.v_row(l, seq, g, from), bytes));
    }
  return Status::Ok();
}

Status LayerStack::store_kv(KvCache& host, int64_t seq, int64_t from, int64_t to) {
  CRIA_RETURN_IF_ERROR(check_kv(host, seq, from, to));
  const uint64_t d = m_.config().head_dim, bytes = (uint64_t)(to - from) * d * 2;
  if (bytes == 0) return Status::Ok();
  for (int64_t l = l0_; l < l1_; ++l)
    for (int64_t g = 0; g < host.n_kv; ++g) {
      const Layer& L = layers_[(size_t)(l - l0_)];
      const uint64_t off = ((uint64_t)g * (uint64_t)n_ctx_ + (uint64_t)from) * d * 2;
      CRIA_RETURN_IF_ERROR(ctx_.download(L.k, off, host.k_row(l, seq, g, from), bytes));
      CRIA_RETURN_IF_ERROR(ctx_.download(L.v, off, host.v_row(l, seq, g, from), bytes));
    }
  return Status::Ok();
}

namespace {

// A Session's decoder: the stack over every layer, its calls serialized
// with the backend's per-layer calls (one command buffer per device).
class StackDecoder final : public DeviceDecoder {
 public:
  StackDecoder(const VulkanBackend& b, std::unique_ptr<LayerStack> s) : b_(b), s_(std::move(s)) {}
  ~StackDecoder() override {
    std::lock_guard<std::mutex> lock(b_.mutex());
    s_.reset();
  }
  const char* name() const override { return "vulkan layer stack (one submission per token)"; }
  Status decode(int32_t token, int64_t pos, float* logits) override {
    std::lock_guard<std::mutex> lock(b_.mutex());
    return s_->decode(token, nullptr, pos, nullptr, logits);
  }
  Status load_kv(const KvCache& host, int64_t from, int64_t to) override {
    std::lock_guard<std::mutex> lock(b_.mutex());
    return s_->load_kv(host, 0, from, to);
  }
  Status store_kv(KvCache& host, int64_t from, int64_t to) override {
    std::lock_guard<std::mutex> lock(b_.mutex());
    return s_->store_kv(host, 0, from, to);
  }

 private:
  const VulkanBackend& b_;
  std::unique_ptr<LayerStack> s_;
};

}  // namespace

Result<std::unique_ptr<DeviceDecoder>> make_decoder(const Model& m, int64_t n_ctx) {
  const backends::Backend* b = m.placement().layer_stack_backend();
  if (!b || std::strcmp(b->name(), "vulkan") != 0) return std::unique_ptr<DeviceDecoder>();
  const auto* vb = static_cast<const VulkanBackend*>(b);
  LayerStack::Options o;
  o.n_ctx = n_ctx;
  o.borrow = vb;
  std::unique_ptr<LayerStack> s;
  {
    std::lock_guard<std::mutex> lock(vb->mutex());
    auto r = LayerStack::create(vb->context(), m, o);
    if (!r.ok()) return r.status().with_prefix("vulkan layer stack");
    s = std::move(r).value();
  }
  return std::unique_ptr<DeviceDecoder>(new StackDecoder(*vb, std::move(s)));
}

}  // namespace cria::vk
