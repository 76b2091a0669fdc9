// GGUF files as llama.cpp writes them, architectures llama and falcon.
#include <cmath>
#include <unordered_map>

#include "formats/bytelevel.h"
#include "formats/convert_sources.h"
#include "formats/gguf.h"
#include "formats/rope.h"
#include "formats/tokenizer_json.h"

namespace cria {

namespace {

// llama.cpp's Llama 3.1 rope_freqs: per frequency, the factor its inverse
// frequency is divided by (formats/rope.h, in double).
std::vector<double> llama3_rope_factors(const ModelConfig& c, const RopeScaling& r) {
  std::vector<double> out;
  for (uint32_t i = 0; i < c.head_dim / 2; ++i) {
    const double freq = rope_base_inv_freq<double>(c, i);
    out.push_back(freq / llama3_scaled_inv_freq(freq, r));
  }
  return out;
}

class GgufSource : public Source {
 public:
  static Result<std::unique_ptr<Source>> open(const std::string& path) {
    std::unique_ptr<GgufSource> s(new GgufSource(path));
    CRIA_ASSIGN_OR_RETURN(s->g_, GgufFile::open(path));
    CRIA_RETURN_IF_ERROR(s->read_config());
    CRIA_RETURN_IF_ERROR(s->read_tokenizer());
    return std::unique_ptr<Source>(std::move(s));
  }

  const std::string& name() const override { return path_; }
  bool is_gguf() const override { return true; }
  const ModelMeta& meta() const override { return meta_; }

  Status assemble(const TensorSpec& spec, Assembly* out) override {
    *out = Assembly();
    out->cols = spec.shape.size() == 2 ? spec.shape[1] : 1;
    CRIA_RETURN_IF_ERROR(map_spec(spec, out));
    // Native type and whether the blocks can be copied bit for bit.
    uint32_t type = g_->find(out->pieces[0].src)->type;
    bool same = true;
    for (const Piece& p : out->pieces) same = same && g_->find(p.src)->type == type;
    switch ((GgmlType)type) {
      case GgmlType::kF16: out->native = QType::kF16; break;
      case GgmlType::kBF16: out->native = QType::kBF16; break;
      case GgmlType::kQ8_0: out->native = QType::kQ8; break;
      case GgmlType::kQ4_0: out->native = QType::kQ4; break;
      default: out->native = QType::kF32; break;
    }
    if (same && spec.shape.size() == 2 && (type == (uint32_t)GgmlType::kQ8_0 || type == (uint32_t)GgmlType::kQ4_0)) {
      out->exact = true;
      out->exact_type = out->native;
    }
    return Status::Ok();
  }

  Status read_rows(const std::string& t, uint64_t row, uint64_t n, float* out) override {
    const GgufTensor* gt = g_->find(t);
    if (gt->shape.size() == 1) {
      std::vector<float> all(gt->cols());
      CRIA_RETURN_IF_ERROR(g_->read_row_f32(*gt, 0, all.data()));
      std::copy(all.begin() + row, all.begin() + row + n, out);
      return Status::Ok();
    }
    for (uint64_t i = 0; i < n; ++i) CRIA_RETURN_IF_ERROR(g_->read_row_f32(*gt, row + i, out + i * gt->cols()));
    return Status::Ok();
  }

  void prefetch(const Assembly& a) const override {
    for (const Piece& p : a.pieces) {
      const GgufTensor* gt = g_->find(p.src);
      if (gt) g_->prefetch(*gt, gt->shape.size() == 1 ? 0 : p.row, gt->shape.size() == 1 ? 1 : p.count);
    }
  }

  Status read_row_raw(const std::string& t, uint64_t row, std::vector<uint8_t>* out) override {
    return g_->read_row_raw(*g_->find(t), row, out);
  }

  Status check_unused() const override {
    for (const GgufTensor& t : g_->tensors()) {
      if (checker_.used().count(t.name) || t.name == "rope_freqs.weight") continue;
      if (t.name == "output.weight" && meta_.config.tie_word_embeddings) continue;
      return Error(Code::kCorrupt, path_ + ": tensor " + t.name + " is not used by the model its metadata describes");
    }
    return Status::Ok();
  }

 private:
  explicit GgufSource(std::string path) : path_(std::move(path)), checker_(path_) {}

  Status need(const std::string& src, const std::vector<uint64_t>& shape) {
    const GgufTensor* t = g_->find(src);
    CRIA_RETURN_IF_ERROR(checker_.need(src, t ? &t->shape : nullptr, shape));
    uint64_t rb;
    if (!GgufFile::row_bytes(t->type, t->cols(), &rb))
      return Error(Code::kUnsupported, path_ + ": tensor " + src + " has type " + ggml_type_name(t->type) +
                                           "; supported: F32, F16, BF16, Q8_0, Q4_0");
    return Status::Ok();
  }

  // llama.cpp's names for each canonical kind (docs/ARCHITECTURE.md, "GGUF
  // tensor names"; tests/reference/gguf_llamacpp_names.py checks them
  // against a transcription of gguf-py's table).
  Status map_spec(const TensorSpec& spec, Assembly* out) {
    const ModelConfig& c = meta_.config;
    const std::string kind = spec.part();
    const std::string p = "blk." + std::to_string(spec.layer) + ".";
    const uint64_t h = c.hidden_size;
    Mapper mp(out, spec.bias, [this](const std::string& s, const std::vector<uint64_t>& sh) { return need(s, sh); });
    auto whole = [&](const std::string& src) { return mp.whole(src, spec.shape); };
    auto lin = [&](const std::string& src_base, uint64_t o, uint64_t in) { return mp.lin(src_base, o, in); };
    // llama.cpp permutes Llama's Q and K rows so RoPE pairs sit side by side
    // (row h*D + 2i + half); cria keeps Hugging Face's halves (h*D + half*D/2 + i).
    auto unpermuted = [&](const std::string& src_base, uint32_t heads) -> Status {
      const uint64_t d = c.head_dim, o = (uint64_t)heads * d;
      const std::string src = src_base + "." + kind;
      std::vector<uint64_t> shape = {o};
      if (!spec.bias) shape.push_back(h);
      CRIA_RETURN_IF_ERROR(need(src, shape));
      for (uint64_t hd = 0; hd < heads; ++hd)
        for (uint64_t half = 0; half < 2; ++half)
          for (uint64_t i = 0; i < d / 2; ++i) out->pieces.push_back({src, hd * d + 2 * i + half, 1});
      return Status::Ok();
    };
    const bool llama = c.arch == Arch::kLlama;
    // llama.cpp's tensor_mapping (gguf-py) stores Falcon-40B's two norms as
    // attn_norm <- ln_mlp and attn_norm_2 <- ln_attn, and its falcon graph
    // feeds attention from attn_norm_2 and the MLP from attn_norm. One-norm
    // layouts (7B, 11B) keep input_layernorm in attn_norm.
    const bool two = c.block == BlockKind::kParallelTwoNorms;
    switch (spec.kind) {
      case TensorKind::kTokEmbd: return whole("token_embd.weight");
      case TensorKind::kOutputNorm: return whole("output_norm." + kind);
      case TensorKind::kOutput: return whole("output.weight");
      case TensorKind::kAttnOut: return lin(p + "attn_output", h, c.q_dim());
      case TensorKind::kFfnDown: return lin(p + "ffn_down", h, c.intermediate_size);
      case TensorKind::kAttnNorm: return whole(p + (!llama && two ? "attn_norm_2." : "attn_norm.") + kind);
      case TensorKind::kFfnNorm: return whole(p + (llama ? "ffn_norm.weight" : "attn_norm." + kind));
      case TensorKind::kAttnQkv:
        if (!llama) return lin(p + "attn_qkv", c.qkv_dim(), h);  // already [Q; K; V]
        CRIA_RETURN_IF_ERROR(unpermuted(p + "attn_q", c.num_heads));
        CRIA_RETURN_IF_ERROR(unpermuted(p + "attn_k", c.num_kv_heads));
        return lin(p + "attn_v", c.kv_dim(), h);
      case TensorKind::kFfnGateUp:
        if (!llama) break;
        CRIA_RETURN_IF_ERROR(lin(p + "ffn_gate", c.intermediate_size, h));
        return lin(p + "ffn_up", c.intermediate_size, h);
      case TensorKind::kFfnUp:
        if (llama) break;
        return lin(p + "ffn_up", c.intermediate_size, h);
    }
    return Error(Code::kInternal, path_ + ": no mapping for " + spec.name);
  }

  Status u32(const std::string& key, uint32_t* out, bool required, uint32_t def = 0) {
    const GgufValue* v = g_->get(key);
    uint64_t x;
    if (!v) {
      if (required) return Error(Code::kCorrupt, path_ + ": missing metadata key " + key);
      *out = def;
      return Status::Ok();
    }
    if (!v->as_u64(&x) || x > UINT32_MAX) return Error(Code::kCorrupt, path_ + ": metadata " + key + " must be an integer");
    *out = (uint32_t)x;
    return Status::Ok();
  }

  Status f32(const std::string& key, float* out, bool required, float def) {
    const GgufValue* v = g_->get(key);
    double x;
    if (!v) {
      if (required) return Error(Code::kCorrupt, path_ + ": missing metadata key " + key);
      *out = def;
      return Status::Ok();
    }
    if (!v->as_f64(&x)) return Error(Code::kCorrupt, path_ + ": metadata " + key + " must be a number");
    *out = (float)x;
    return Status::Ok();
  }

  Status read_config() {
    const GgufValue* a = g_->get("general.architecture");
    if (!a || a->kind != GgufValue::kString) return Error(Code::kCorrupt, path_ + ": missing general.architecture");
    const std::string arch = a->s;
    ModelConfig& c = meta_.config;
    if (arch == "llama") {
      c.arch = Arch::kLlama;
      c.hf_architecture = "LlamaForCausalLM";
      c.norm = NormKind::kRMSNorm;
      c.mlp = MlpKind::kSwiGLU;
      c.block = BlockKind::kSequential;
      CRIA_RETURN_IF_ERROR(f32("llama.attention.layer_norm_rms_epsilon", &c.norm_eps, true, 0));
    } else if (arch == "falcon") {
      c.arch = Arch::kFalcon;
      c.hf_architecture = "FalconForCausalLM";
      c.norm = NormKind::kLayerNorm;
      c.mlp = MlpKind::kGelu;
      c.block = g_->find("blk.0.attn_norm_2.weight") ? BlockKind::kParallelTwoNorms : BlockKind::kParallelOneNorm;
      CRIA_RETURN_IF_ERROR(f32("falcon.attention.layer_norm_epsilon", &c.norm_eps, true, 0));
    } else {
      return Error(Code::kUnsupported, path_ + ": GGUF architecture '" + arch + "' is not supported (llama, falcon)");
    }
    c.position = PositionKind::kRope;
    CRIA_RETURN_IF_ERROR(u32(arch + ".embedding_length", &c.hidden_size, true));
    CRIA_RETURN_IF_ERROR(u32(arch + ".block_count", &c.num_layers, true));
    CRIA_RETURN_IF_ERROR(u32(arch + ".feed_forward_length", &c.intermediate_size, true));
    CRIA_RETURN_IF_ERROR(u32(arch + ".attention.head_count", &c.num_heads, true));
    CRIA_RETURN_IF_ERROR(u32(arch + ".attention.head_count_kv", &c.num_kv_heads, false, c.num_heads));
    CRIA_RETURN_IF_ERROR(u32(arch + ".context_length", &c.max_position_embeddings, true));
    CRIA_RETURN_IF_ERROR(f32(arch + ".rope.freq_base", &c.rope_theta, false, 10000.0f));
    if (c.num_heads == 0) return Error(Code::kCorrupt, path_ + ": attention.head_count is 0");
    CRIA_RETURN_IF_ERROR(u32(arch + ".attention.key_length", &c.head_dim, false, c.hidden_size / c.num_heads));
    const GgufTensor* emb = g_->find("token_embd.weight");
    if (!emb) return Error(Code::kCorrupt, path_ + ": missing tensor token_embd.weight");
    CRIA_RETURN_IF_ERROR(u32(arch + ".vocab_size", &c.vocab_size, false, (uint32_t)emb->rows()));
    c.tie_word_embeddings = g_->find("output.weight") == nullptr;
    c.qkv_bias = arch == "llama" ? g_->find("blk.0.attn_q.bias") != nullptr : g_->find("blk.0.attn_qkv.bias") != nullptr;
    c.attn_out_bias = g_->find("blk.0.attn_output.bias") != nullptr;
    c.mlp_bias = g_->find("blk.0.ffn_down.bias") != nullptr;
    if (const GgufTensor* rf = g_->find("rope_freqs.weight")) CRIA_RETURN_IF_ERROR(read_rope_freqs(*rf));
    return validate_config(c).with_prefix(path_);
  }

  // Recovers Llama 3.1 rope_scaling from llama.cpp's rope_freqs tensor: the
  // factor is its maximum; the published models use low/high frequency
  // factors 1 and 4 and 8192 original positions. The result must reproduce
  // every stored factor, or the file is rejected.
  Status read_rope_freqs(const GgufTensor& t) {
    ModelConfig& c = meta_.config;
    if (t.shape.size() != 1 || t.cols() != c.head_dim / 2)
      return Error(Code::kCorrupt, path_ + ": rope_freqs.weight must have head_dim/2 elements");
    std::vector<float> f(t.cols());
    CRIA_RETURN_IF_ERROR(g_->read_row_f32(t, 0, f.data()));
    RopeScaling r;
    r.kind = RopeScalingKind::kLlama3;
    r.factor = *std::max_element(f.begin(), f.end());
    r.low_freq_factor = 1.0f;
    r.high_freq_factor = 4.0f;
    auto matches = [&](const RopeScaling& cand) {
      std::vector<double> want = llama3_rope_factors(c, cand);
      for (size_t i = 0; i < f.size(); ++i)
        if (std::fabs(want[i] - f[i]) > 1e-4 * std::max(1.0, want[i])) return false;
      return true;
    };
    // Candidates for the original context: the published 8192, and the one
    // implied by the first smoothly scaled frequency (formats/rope.h).
    std::vector<uint32_t> origs = {8192u, c.max_position_embeddings};
    const double pi = 3.14159265358979323846;
    for (size_t i = 0; i < f.size(); ++i) {
      if (f[i] <= 1.0f + 1e-6f || f[i] >= r.factor - 1e-6f) continue;
      const double wl = 2 * pi / rope_base_inv_freq<double>(c, i);
      origs.push_back((uint32_t)std::lround(llama3_original_context<double>(wl, f[i], r)));
      break;
    }
    for (uint32_t orig : origs) {
      r.original_max_position_embeddings = orig;
      if (orig && matches(r)) {
        c.rope_scaling = r;
        return Status::Ok();
      }
    }
    return Error(Code::kUnsupported, path_ + ": rope_freqs.weight does not match Llama 3.1 rope scaling");
  }

  Status read_tokenizer() {
    TokenizerData& t = meta_.tokenizer;
    const GgufValue* model = g_->get("tokenizer.ggml.model");
    if (!model || model->kind != GgufValue::kString)
      return Error(Code::kCorrupt, path_ + ": missing tokenizer.ggml.model");
    if (model->s != "gpt2")
      return Error(Code::kUnsupported, path_ + ": tokenizer model '" + model->s + "' is not supported (gpt2 byte-level BPE)");
    const GgufValue* tokens = g_->get("tokenizer.ggml.tokens");
    const GgufValue* types = g_->get("tokenizer.ggml.token_type");
    const GgufValue* merges = g_->get("tokenizer.ggml.merges");
    if (!tokens || tokens->kind != GgufValue::kArray) return Error(Code::kCorrupt, path_ + ": missing tokenizer.ggml.tokens");
    std::unordered_map<std::string, uint32_t> ids;
    t.vocab.resize(tokens->arr.size());
    for (size_t i = 0; i < tokens->arr.size(); ++i) {
      const GgufValue& v = tokens->arr[i];
      if (v.kind != GgufValue::kString) return Error(Code::kCorrupt, path_ + ": token " + std::to_string(i) + " is not a string");
      ids.emplace(v.s, (uint32_t)i);
      uint64_t type = 1;
      if (types && i < types->arr.size()) types->arr[i].as_u64(&type);
      // Control (3) and user-defined (4) tokens are written as text and are
      // matched before BPE, like tokenizer.json's added tokens.
      if (type == 3 || type == 4) {
        t.vocab[i] = v.s;
        t.added_tokens.push_back({(uint32_t)i, v.s, type == 3, false, false, false, type == 4});
      } else if (!bytelevel_decode(v.s, &t.vocab[i])) {
        return Error(Code::kCorrupt, path_ + ": token " + std::to_string(i) + " is not in the byte-level alphabet");
      }
    }
    if (merges && merges->kind == GgufValue::kArray) {
      t.merges.reserve(merges->arr.size());
      for (const GgufValue& m : merges->arr) {
        const size_t sp = m.s.find(' ');
        auto a = sp == std::string::npos ? ids.end() : ids.find(m.s.substr(0, sp));
        auto b = sp == std::string::npos ? ids.end() : ids.find(m.s.substr(sp + 1));
        if (a == ids.end() || b == ids.end()) return Error(Code::kCorrupt, path_ + ": bad merge '" + m.s + "'");
        t.merges.emplace_back(a->second, b->second);
      }
    }
    std::string pre = "default";
    if (const GgufValue* p = g_->get("tokenizer.ggml.pre"); p && p->kind == GgufValue::kString) pre = p->s;
    if (pre == "llama-bpe" || pre == "llama3") {
      t.pre_tokenizer = {{PreTokKind::kSplitLlama3, false, false, false}, {PreTokKind::kByteLevel, false, false, false}};
      t.ignore_merges = true;
    } else if (pre == "falcon") {
      t.pre_tokenizer = {{PreTokKind::kPunctuation, false, false, false},
                         {PreTokKind::kByteLevel, true, false, false},
                         {PreTokKind::kDigits, false, false, false},
                         {PreTokKind::kSplitDigits3, false, false, false}};
    } else if (pre == "gpt-2" || pre == "default") {
      t.pre_tokenizer = {{PreTokKind::kByteLevel, true, false, false}};
    } else {
      return Error(Code::kUnsupported, path_ + ": pre-tokenizer '" + pre + "' is not supported (llama-bpe, falcon, gpt-2)");
    }
    t.pre_tokenizer_json = "gguf tokenizer.ggml.pre=" + pre;
    uint32_t id;
    if (g_->get("tokenizer.ggml.bos_token_id")) {
      CRIA_RETURN_IF_ERROR(u32("tokenizer.ggml.bos_token_id", &id, true));
      t.bos_id = (int32_t)id;
    }
    if (g_->get("tokenizer.ggml.eos_token_id")) {
      CRIA_RETURN_IF_ERROR(u32("tokenizer.ggml.eos_token_id", &id, true));
      t.eos_ids.push_back(id);
    }
    if (g_->get("tokenizer.ggml.eot_token_id")) {
      CRIA_RETURN_IF_ERROR(u32("tokenizer.ggml.eot_token_id", &id, true));
      if (std::find(t.eos_ids.begin(), t.eos_ids.end(), id) == t.eos_ids.end()) t.eos_ids.push_back(id);
    }
    if (g_->get("tokenizer.ggml.padding_token_id")) {
      CRIA_RETURN_IF_ERROR(u32("tokenizer.ggml.padding_token_id", &id, true));
      t.pad_id = (int32_t)id;
    }
    t.add_bos = meta_.config.arch == Arch::kLlama;
    if (const GgufValue* ab = g_->get("tokenizer.ggml.add_bos_token"); ab && ab->kind == GgufValue::kBool) t.add_bos = ab->b;
    for (uint32_t e : t.eos_ids)
      if (e >= t.vocab.size()) return Error(Code::kCorrupt, path_ + ": eos token id out of range");
    if (t.bos_id >= (int32_t)t.vocab.size()) return Error(Code::kCorrupt, path_ + ": bos token id out of range");
    if (const GgufValue* ct = g_->get("tokenizer.chat_template"); ct && ct->kind == GgufValue::kString) {
      meta_.chat.jinja = ct->s;
      meta_.chat.kind = detect_chat_kind(ct->s);
    }
    meta_.generation.eos_ids = t.eos_ids;
    return Status::Ok();
  }

  std::string path_;
  ShapeChecker checker_;
  ModelMeta meta_;
  std::unique_ptr<GgufFile> g_;
};

}  // namespace

Result<std::unique_ptr<Source>> open_gguf_source(const std::string& path) { return GgufSource::open(path); }

}  // namespace cria
