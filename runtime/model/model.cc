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

Result<std::unique_ptr<Model>> Model::load(const std::string& path, const ModelOptions& opt) {
  std::unique_ptr<ModelFile> f;
  CRIA_ASSIGN_OR_RETURN(f, ModelFile::open(path));
  return create(std::move(f), opt);
}

Result<std::unique_ptr<Model>> Model::create(std::unique_ptr<ModelFile> file, const ModelOptions& opt) {
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
    const SpecName sn = parse_spec_name(s);
    const std::string& base = sn.base;
    const bool bias = sn.bias;
    if (s.layer < 0) {
      if (base == "tok_embd") w.tok_embd = matrix(*t);
      else if (base == "output") w.output = matrix(*t);
      else if (base == "output_norm") (bias ? w.out_norm_b : w.out_norm_w) = fp;
      return;
    }
    LayerWeights& L = w.layers[s.layer];
    if (base == "attn_norm") (bias ? L.attn_norm_b : L.attn_norm_w) = fp;
    else if (base == "ffn_norm") (bias ? L.ffn_norm_b : L.ffn_norm_w) = fp;
    else if (base == "attn_qkv") bias ? void(L.qkv_b = fp) : void(L.qkv = matrix(*t));
    else if (base == "attn_out") bias ? void(L.attn_out_b = fp) : void(L.attn_out = matrix(*t));
    else if (base == "ffn_gate_up" || base == "ffn_up") bias ? void(L.ffn_in_b = fp) : void(L.ffn_in = matrix(*t));
    else if (base == "ffn_down") bias ? void(L.ffn_down_b = fp) : void(L.ffn_down = matrix(*t));
    else st = Error(Code::kInternal, f.path() + ": no place for tensor " + s.name);
  });
  CRIA_RETURN_IF_ERROR(st);
  if (c.tie_word_embeddings) w.output = w.tok_embd;
  if (c.position == PositionKind::kRope) m->inv_freq_ = rope_inv_freq(c);
  else {
    m->alibi_ = alibi_slopes(c.num_heads);
    for (float& a : m->alibi_) a = bf16_to_f32(f32_to_bf16(a));
  }
  // Placement follows the kernel table sessions will pick (CRIA_ISA); a bad
  // CRIA_ISA is reported when a session starts.
  const kernels::KernelTable* k = kernels::requested_table(nullptr);
  auto placed = Placement::place(f, w, opt.backend, k ? *k : kernels::best_table(), opt.gpu_layers);
  if (!placed.ok()) return placed.status().with_prefix(f.path());
  m->placement_ = std::move(placed).value();
  return m;
}

int64_t Model::max_matmul_cols() const {
  const ModelConfig& c = config();
  return std::max<int64_t>({(int64_t)c.hidden_size, (int64_t)c.q_dim(), (int64_t)c.intermediate_size});
}

}  // namespace cria
