#include "runtime/model/model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <thread>

#include "formats/alibi.h"
#include "formats/layer_stages.h"
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
  m->cfg_ = c;
  m->layer_begin_ = opt.layer_begin;
  m->layer_end_ = opt.layer_end < 0 ? (int64_t)c.num_layers : opt.layer_end;
  if (m->layer_begin_ < 0 || m->layer_begin_ > m->layer_end_ || m->layer_end_ > (int64_t)c.num_layers)
    return Error(Code::kInvalidArgument, f.path() + ": layers [" + std::to_string(opt.layer_begin) + ", " +
                                             std::to_string(m->layer_end_) + ") are not a range of its " +
                                             std::to_string(c.num_layers) + " layers");
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
  // A file of which only some byte ranges are in memory (a browser stage)
  // must hold every tensor its layers read.
  if (f.partial())
    for_each_tensor(c, [&](const TensorSpec& s) {
      if (st.ok() && stage_reads(c, s, m->layer_begin_, m->layer_end_) && !f.find(s.name)->data)
        st = Error(Code::kInvalidArgument, f.path() + ": tensor " + s.name + " of layers [" +
                                               std::to_string(m->layer_begin_) + ", " + std::to_string(m->layer_end_) +
                                               ") is not among the byte ranges in memory");
    });
  CRIA_RETURN_IF_ERROR(st);
  if (c.tie_word_embeddings) w.output = w.tok_embd;
  if (c.position == PositionKind::kRope) m->inv_freq_ = rope_inv_freq(c);
  else m->alibi_ = alibi_slopes_bf16(c.num_heads);
  if (opt.shard_count > 1) {
    if (opt.layer_begin != 0 || m->layer_end_ != (int64_t)c.num_layers)
      return Error(Code::kInvalidArgument, f.path() + ": a tensor shard holds every layer");
    int64_t head0 = 0;
    Status sh = shard_weights(f, opt.shard_index, opt.shard_count, &w, &m->shard_bytes_, &head0);
    if (!sh.ok()) return sh;
    m->cfg_ = shard_config(c, opt.shard_count);
    m->shard_count_ = opt.shard_count;
    if (!m->alibi_.empty())  // this shard's heads' slopes
      m->alibi_ = std::vector<float>(m->alibi_.begin() + head0, m->alibi_.begin() + head0 + m->cfg_.num_heads);
  }
  // Placement follows the kernel table sessions will pick (CRIA_ISA); a bad
  // CRIA_ISA is reported when a session starts.
  const kernels::KernelTable* k = kernels::requested_table(nullptr);
  auto placed = Placement::place(f, w, opt.backend, k ? *k : kernels::best_table(), opt.gpu_layers, m->layer_begin_,
                                 m->layer_end_, opt.head);
  if (!placed.ok()) return placed.status().with_prefix(f.path());
  m->placement_ = std::move(placed).value();
  CRIA_RETURN_IF_ERROR(m->copy_weights(opt.weights));
  return m;
}

Status Model::copy_weights(WeightMemory choice) {
  if (choice == WeightMemory::kCopy && !file_->mapped())
    return Error(Code::kInvalidArgument, file_->path() + ": --weights copy needs a model opened from a file");
  std::vector<WeightSpan> spans = placement_.host_weights();
  // A tensor-parallel shard's slices are already private copies (shard.h).
  std::erase_if(spans, [&](const WeightSpan& s) { return !file_->maps(s.data, s.size); });
  uint64_t bytes = 0;
  for (const WeightSpan& s : spans) bytes += s.size;
  if (!bytes) return Status::Ok();
  std::string why = "--weights map";
  if (choice == WeightMemory::kAuto) choice = auto_weight_memory(*file_, bytes, &why);
  if (choice == WeightMemory::kMap) {
    placement_.set_weights_row("read in place from the mapped file, 4 KiB pages (" + why + ")");
    return Status::Ok();
  }
  const int threads = (int)std::clamp(std::thread::hardware_concurrency(), 1u, 4u);
  CRIA_ASSIGN_OR_RETURN(copy_, WeightCopy::make(*file_, std::move(spans), threads));
  placement_.move_host_weights(*copy_);
  auto move = [&](kernels::Matrix& mx) { mx.data = copy_->find(mx.data); };
  move(w_.tok_embd);
  move(w_.output);
  for (LayerWeights& L : w_.layers) {
    move(L.qkv);
    move(L.attn_out);
    move(L.ffn_in);
    move(L.ffn_down);
  }
  char row[160];
  std::snprintf(row, sizeof row, "copied into memory: %.0f MiB, %.0f MiB of it in 2 MiB pages (--weights map reads the file in place)",
                (double)copy_->bytes() / (1 << 20), (double)copy_->huge_bytes() / (1 << 20));
  placement_.set_weights_row(row);
  return Status::Ok();
}

int64_t Model::max_matmul_cols() const {
  const ModelConfig& c = config();
  return std::max<int64_t>({(int64_t)c.hidden_size, (int64_t)c.q_dim(), (int64_t)c.intermediate_size});
}

}  // namespace cria
