// Hugging Face checkpoints: config.json + safetensors + tokenizer.json.
#include <sys/stat.h>

#include "formats/convert_sources.h"
#include "formats/hf_config.h"
#include "formats/safetensors.h"
#include "formats/tokenizer_json.h"

namespace cria {

Status Source::read_row_raw(const std::string& t, uint64_t, std::vector<uint8_t>*) {
  return Error(Code::kInternal, name() + ": no raw rows for " + t);
}

std::string shape_str(const std::vector<uint64_t>& s) {
  std::string o = "[";
  for (size_t i = 0; i < s.size(); ++i) o += (i ? ", " : "") + std::to_string(s[i]);
  return o + "]";
}

Status ShapeChecker::need(const std::string& tensor, const std::vector<uint64_t>* have,
                          const std::vector<uint64_t>& want) {
  if (!have) return Error(Code::kCorrupt, name_ + ": missing tensor " + tensor);
  if (*have != want)
    return Error(Code::kCorrupt, name_ + ": tensor " + tensor + " has shape " + shape_str(*have) +
                                     " but the config implies " + shape_str(want));
  used_.insert(tensor);
  return Status::Ok();
}

Status Mapper::whole(const std::string& src, const std::vector<uint64_t>& shape) {
  CRIA_RETURN_IF_ERROR(need_(src, shape));
  out_->pieces.push_back({src, 0, shape[0]});
  return Status::Ok();
}

Status Mapper::lin(const std::string& src_base, uint64_t o, uint64_t in) {
  if (bias_) return whole(src_base + ".bias", {o});
  return whole(src_base + ".weight", {o, in});
}

std::vector<Piece> grouped_qkv_pieces(const std::string& src, uint32_t heads, uint32_t kv_heads,
                                      uint32_t head_dim) {
  const uint32_t r = heads / kv_heads;
  std::vector<Piece> q, k, v;
  for (uint32_t g = 0; g < kv_heads; ++g) {
    const uint64_t base = (uint64_t)g * (r + 2) * head_dim;
    for (uint32_t j = 0; j < r; ++j) q.push_back({src, base + (uint64_t)j * head_dim, head_dim});
    k.push_back({src, base + (uint64_t)r * head_dim, head_dim});
    v.push_back({src, base + (uint64_t)(r + 1) * head_dim, head_dim});
  }
  q.insert(q.end(), k.begin(), k.end());
  q.insert(q.end(), v.begin(), v.end());
  // Merge adjacent pieces (classic multi-head has none, multi-query many).
  std::vector<Piece> out;
  for (const Piece& p : q) {
    if (!out.empty() && out.back().row + out.back().count == p.row) out.back().count += p.count;
    else out.push_back(p);
  }
  return out;
}

namespace {

class HfSource : public Source {
 public:
  static Result<std::unique_ptr<Source>> open(const std::string& dir) {
    std::unique_ptr<HfSource> s(new HfSource(dir));
    CRIA_RETURN_IF_ERROR(read_hf_config(dir, &s->meta_.config, &s->meta_.generation));
    CRIA_ASSIGN_OR_RETURN(s->st_, SafetensorsSet::open_dir(dir));
    CRIA_RETURN_IF_ERROR(read_hf_tokenizer(dir, &s->meta_.tokenizer, &s->meta_.chat));
    if (s->meta_.generation.eos_ids.empty()) s->meta_.generation.eos_ids = s->meta_.tokenizer.eos_ids;
    return std::unique_ptr<Source>(std::move(s));
  }

  const std::string& name() const override { return dir_; }
  bool is_gguf() const override { return false; }
  const ModelMeta& meta() const override { return meta_; }

  Status assemble(const TensorSpec& spec, Assembly* out) override {
    *out = Assembly();
    CRIA_RETURN_IF_ERROR(map_spec(spec, out));
    const StTensor* t = st_->find(out->pieces.at(0).src);
    out->native = t->dtype == StDType::kF16 ? QType::kF16 : t->dtype == StDType::kBF16 ? QType::kBF16 : QType::kF32;
    return Status::Ok();
  }

  // Hugging Face's names for each canonical kind (transformers' modeling_llama
  // and modeling_falcon).
  Status map_spec(const TensorSpec& spec, Assembly* out) {
    const ModelConfig& c = meta_.config;
    out->cols = spec.shape.size() == 2 ? spec.shape[1] : 1;
    const std::string kind = spec.part();
    const uint64_t h = c.hidden_size;
    Mapper mp(out, spec.bias, [this](const std::string& s, const std::vector<uint64_t>& sh) { return need(s, sh); });
    auto whole = [&](const std::string& src) { return mp.whole(src, spec.shape); };
    auto lin = [&](const std::string& src_base, uint64_t o, uint64_t in) { return mp.lin(src_base, o, in); };
    if (c.arch == Arch::kLlama) {
      const std::string p = "model.layers." + std::to_string(spec.layer) + ".";
      switch (spec.kind) {
        case TensorKind::kTokEmbd: return whole("model.embed_tokens.weight");
        case TensorKind::kOutputNorm: return whole("model.norm.weight");
        case TensorKind::kOutput: return whole("lm_head.weight");
        case TensorKind::kAttnNorm: return whole(p + "input_layernorm.weight");
        case TensorKind::kFfnNorm: return whole(p + "post_attention_layernorm.weight");
        case TensorKind::kAttnQkv:
          CRIA_RETURN_IF_ERROR(lin(p + "self_attn.q_proj", c.q_dim(), h));
          CRIA_RETURN_IF_ERROR(lin(p + "self_attn.k_proj", c.kv_dim(), h));
          return lin(p + "self_attn.v_proj", c.kv_dim(), h);
        case TensorKind::kAttnOut: return lin(p + "self_attn.o_proj", h, c.q_dim());
        case TensorKind::kFfnGateUp:
          CRIA_RETURN_IF_ERROR(lin(p + "mlp.gate_proj", c.intermediate_size, h));
          return lin(p + "mlp.up_proj", c.intermediate_size, h);
        case TensorKind::kFfnDown: return lin(p + "mlp.down_proj", h, c.intermediate_size);
        case TensorKind::kFfnUp: break;  // Llama's MLP is SwiGLU
      }
    } else {
      const std::string p = "transformer.h." + std::to_string(spec.layer) + ".";
      const bool two = c.block == BlockKind::kParallelTwoNorms;
      switch (spec.kind) {
        case TensorKind::kTokEmbd: return whole("transformer.word_embeddings.weight");
        case TensorKind::kOutputNorm: return whole("transformer.ln_f." + kind);
        case TensorKind::kOutput: return whole("lm_head.weight");
        case TensorKind::kAttnNorm: return whole(p + (two ? "ln_attn." : "input_layernorm.") + kind);
        case TensorKind::kFfnNorm: return whole(p + (two ? "ln_mlp." : "post_attention_layernorm.") + kind);
        case TensorKind::kAttnQkv: {
          const std::string src = p + "self_attention.query_key_value." + kind;
          std::vector<uint64_t> shape = {c.qkv_dim()};
          if (!spec.bias) shape.push_back(h);
          CRIA_RETURN_IF_ERROR(need(src, shape));
          out->pieces = grouped_qkv_pieces(src, c.num_heads, c.num_kv_heads, c.head_dim);
          return Status::Ok();
        }
        case TensorKind::kAttnOut: return lin(p + "self_attention.dense", h, c.q_dim());
        case TensorKind::kFfnUp: return lin(p + "mlp.dense_h_to_4h", c.intermediate_size, h);
        case TensorKind::kFfnDown: return lin(p + "mlp.dense_4h_to_h", h, c.intermediate_size);
        case TensorKind::kFfnGateUp: break;  // Falcon's MLP is GELU
      }
    }
    return Error(Code::kInternal, dir_ + ": no mapping for " + spec.name);
  }

  Status read_rows(const std::string& t, uint64_t row, uint64_t n, float* out) override {
    const StTensor* st = st_->find(t);
    if (!st) return Error(Code::kInternal, dir_ + ": tensor " + t + " vanished");
    const uint64_t cols = st->shape.size() >= 2 ? st->shape.back() : 1;
    return st_->read_f32(*st, row * cols, n * cols, out);
  }

  void prefetch(const Assembly& a) const override {
    for (const Piece& p : a.pieces) {
      const StTensor* st = st_->find(p.src);
      if (!st) continue;
      const uint64_t cols = st->shape.size() >= 2 ? st->shape.back() : 1;
      st_->prefetch(*st, p.row * cols, p.count * cols);
    }
  }

  Status check_unused() const override {
    for (const StTensor& t : st_->tensors()) {
      if (checker_.used().count(t.name)) continue;
      // Leftovers that carry nothing: rotary buffers, a tied head's copy.
      if (t.name.find("rotary_emb.inv_freq") != std::string::npos) continue;
      if (t.name == "lm_head.weight" && meta_.config.tie_word_embeddings) continue;
      return Error(Code::kCorrupt, dir_ + ": tensor " + t.name +
                                       " is not used by the model config.json describes (wrong config?)");
    }
    return Status::Ok();
  }

 private:
  explicit HfSource(std::string dir) : dir_(std::move(dir)), checker_(dir_) {}

  Status need(const std::string& src, const std::vector<uint64_t>& shape) {
    const StTensor* t = st_->find(src);
    CRIA_RETURN_IF_ERROR(checker_.need(src, t ? &t->shape : nullptr, shape));
    if (t->dtype == StDType::kOther)
      return Error(Code::kUnsupported, st_->files()[t->file] + ": tensor " + src + " has dtype " + t->dtype_name +
                                           "; supported: F32, F16, BF16");
    return Status::Ok();
  }

  std::string dir_;
  ShapeChecker checker_;
  ModelMeta meta_;
  std::unique_ptr<SafetensorsSet> st_;
};

}  // namespace

Result<std::unique_ptr<Source>> open_hf_source(const std::string& dir) { return HfSource::open(dir); }

}  // namespace cria
