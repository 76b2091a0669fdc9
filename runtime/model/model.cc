#include "runtime/model/model.h"

#include <cmath>
#include <cstring>

#include "formats/rope.h"
#include "formats/tensors.h"
#include "quant/fp16.h"

namespace cria {

std::vector<float> rope_inv_freq(const ModelConfig& c) {
  std::vector<float> f(c.head_dim / 2);
  for (uint32_t i = 0; i < f.size(); ++i) {
    f[i] = rope_base_inv_freq<float>(c, i);
    if (c.rope_scaling.kind == RopeScalingKind::kLlama3) f[i] = llama3_scaled_inv_freq(f[i], c.rope_scaling);
  }
  return f;
}

std::vector<float> alibi_slopes(uint32_t n) {
  // transformers build_alibi_tensor (Falcon, BLOOM).
  const uint32_t closest = 1u << (uint32_t)std::floor(std::log2((double)n));
  const double base = std::pow(2.0, -std::pow(2.0, -(std::log2((double)closest) - 3)));
  std::vector<float> s;
  for (uint32_t p = 1; p <= closest; ++p) s.push_back((float)std::pow(base, (double)p));
  if (closest != n) {
    const double extra = std::pow(2.0, -std::pow(2.0, -(std::log2(2.0 * closest) - 3)));
    const uint32_t remaining = std::min(closest, n - closest);
    for (uint32_t p = 1; p < 1 + 2 * remaining; p += 2) s.push_back((float)std::pow(extra, (double)p));
  }
  return s;
}

Result<std::unique_ptr<Model>> Model::load(const std::string& path) {
  std::unique_ptr<ModelFile> f;
  CRIA_ASSIGN_OR_RETURN(f, ModelFile::open(path));
  return create(std::move(f));
}

Result<std::unique_ptr<Model>> Model::create(std::unique_ptr<ModelFile> file) {
  std::unique_ptr<Model> m(new Model());
  m->file_ = std::move(file);
  const ModelFile& f = *m->file_;
  const ModelConfig& c = f.config();
  Weights& w = m->w_;
  w.layers.resize(c.num_layers);
  Status st;
  auto matrix = [&](const TensorRef& t) {
    kernels::Matrix mx;
    mx.type = t.dtype;
    mx.l = t.layout;
    mx.data = t.data;
    return mx;
  };
  // The file was validated against the same visitor, so every name exists
  // with its shape; here each one is given its place.
  for_each_tensor(c, [&](const TensorSpec& s) {
    const TensorRef* t = f.find(s.name);
    if (!t) {
      st = Error(Code::kInternal, f.path() + ": tensor " + s.name + " vanished");
      return;
    }
    const float* fp = reinterpret_cast<const float*>(t->data);
    // A norm's or linear layer's bias is an f32 vector; a linear weight is
    // a matrix in any storage type.
    auto vec = [&](const float** weight, const float** bias) { *(s.bias ? bias : weight) = fp; };
    auto lin = [&](kernels::Matrix* weight, const float** bias) {
      if (s.bias) *bias = fp;
      else *weight = matrix(*t);
    };
    LayerWeights* L = s.layer >= 0 ? &w.layers[s.layer] : nullptr;
    switch (s.kind) {
      case TensorKind::kTokEmbd: w.tok_embd = matrix(*t); return;
      case TensorKind::kOutput: w.output = matrix(*t); return;
      case TensorKind::kOutputNorm: return vec(&w.out_norm_w, &w.out_norm_b);
      case TensorKind::kAttnNorm: return vec(&L->attn_norm_w, &L->attn_norm_b);
      case TensorKind::kFfnNorm: return vec(&L->ffn_norm_w, &L->ffn_norm_b);
      case TensorKind::kAttnQkv: return lin(&L->qkv, &L->qkv_b);
      case TensorKind::kAttnOut: return lin(&L->attn_out, &L->attn_out_b);
      // ffn_in: gate and up rows (SwiGLU) or up alone (GELU).
      case TensorKind::kFfnGateUp:
      case TensorKind::kFfnUp: return lin(&L->ffn_in, &L->ffn_in_b);
      case TensorKind::kFfnDown: return lin(&L->ffn_down, &L->ffn_down_b);
    }
    st = Error(Code::kInternal, f.path() + ": no place for tensor " + s.name);
  });
  CRIA_RETURN_IF_ERROR(st);
  if (c.tie_word_embeddings) w.output = w.tok_embd;
  if (c.position == PositionKind::kRope) m->inv_freq_ = rope_inv_freq(c);
  else {
    m->alibi_ = alibi_slopes(c.num_heads);
    for (float& a : m->alibi_) a = bf16_to_f32(f32_to_bf16(a));
  }
  return m;
}

int64_t Model::max_matmul_cols() const {
  const ModelConfig& c = config();
  return std::max<int64_t>({(int64_t)c.hidden_size, (int64_t)c.q_dim(), (int64_t)c.intermediate_size});
}

}  // namespace cria
