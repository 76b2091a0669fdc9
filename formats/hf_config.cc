#include "formats/hf_config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <sys/stat.h>

namespace cria {

using json = nlohmann::json;

namespace {

// Typed lookups with aliases: the first key present wins. A key present with
// the wrong type is an error, never a silent default.
class Keys {
 public:
  Keys(const json& j, const std::string& name) : j_(j), name_(name) {}

  const json* find(std::initializer_list<const char*> keys) const {
    for (const char* k : keys) {
      auto it = j_.find(k);
      if (it != j_.end() && !it->is_null()) return &*it;
    }
    return nullptr;
  }

  Status u32(std::initializer_list<const char*> keys, uint32_t* out, bool required,
             uint32_t def = 0) const {
    const json* v = find(keys);
    if (!v) {
      if (required) return missing(keys);
      *out = def;
      return Status::Ok();
    }
    if (!v->is_number_integer() || v->get<int64_t>() < 0 || v->get<int64_t>() > UINT32_MAX)
      return Error(Code::kCorrupt, name_ + ": " + *keys.begin() + " must be a non-negative integer");
    *out = (uint32_t)v->get<int64_t>();
    return Status::Ok();
  }

  Status f32(std::initializer_list<const char*> keys, float* out, bool required, float def = 0) const {
    const json* v = find(keys);
    if (!v) {
      if (required) return missing(keys);
      *out = def;
      return Status::Ok();
    }
    if (!v->is_number()) return Error(Code::kCorrupt, name_ + ": " + *keys.begin() + " must be a number");
    *out = v->get<float>();
    return Status::Ok();
  }

  Status boolean(std::initializer_list<const char*> keys, bool* out, bool def) const {
    const json* v = find(keys);
    if (!v) {
      *out = def;
      return Status::Ok();
    }
    if (!v->is_boolean()) return Error(Code::kCorrupt, name_ + ": " + *keys.begin() + " must be true or false");
    *out = v->get<bool>();
    return Status::Ok();
  }

  std::string str(std::initializer_list<const char*> keys) const {
    const json* v = find(keys);
    return v && v->is_string() ? v->get<std::string>() : std::string();
  }

  Status missing(std::initializer_list<const char*> keys) const {
    std::string k = *keys.begin();
    return Error(Code::kCorrupt, name_ + ": missing key " + k);
  }

 private:
  const json& j_;
  const std::string& name_;
};

Status parse_llama(const Keys& k, const json& j, const std::string& name, ModelConfig* c) {
  c->arch = Arch::kLlama;
  c->norm = NormKind::kRMSNorm;
  c->block = BlockKind::kSequential;
  c->position = PositionKind::kRope;
  c->mlp = MlpKind::kSwiGLU;
  CRIA_RETURN_IF_ERROR(k.u32({"vocab_size"}, &c->vocab_size, true));
  CRIA_RETURN_IF_ERROR(k.u32({"hidden_size"}, &c->hidden_size, true));
  CRIA_RETURN_IF_ERROR(k.u32({"intermediate_size"}, &c->intermediate_size, true));
  CRIA_RETURN_IF_ERROR(k.u32({"num_hidden_layers"}, &c->num_layers, true));
  CRIA_RETURN_IF_ERROR(k.u32({"num_attention_heads"}, &c->num_heads, true));
  CRIA_RETURN_IF_ERROR(k.u32({"num_key_value_heads"}, &c->num_kv_heads, false, c->num_heads));
  if (c->num_heads == 0) return Error(Code::kCorrupt, name + ": num_attention_heads is 0");
  CRIA_RETURN_IF_ERROR(k.u32({"head_dim"}, &c->head_dim, false, c->hidden_size / c->num_heads));
  CRIA_RETURN_IF_ERROR(k.u32({"max_position_embeddings"}, &c->max_position_embeddings, false, 2048));
  CRIA_RETURN_IF_ERROR(k.f32({"rms_norm_eps"}, &c->norm_eps, false, 1e-6f));
  CRIA_RETURN_IF_ERROR(k.f32({"rope_theta"}, &c->rope_theta, false, 10000.0f));
  CRIA_RETURN_IF_ERROR(k.boolean({"attention_bias"}, &c->qkv_bias, false));
  c->attn_out_bias = c->qkv_bias;
  CRIA_RETURN_IF_ERROR(k.boolean({"mlp_bias"}, &c->mlp_bias, false));
  CRIA_RETURN_IF_ERROR(k.boolean({"tie_word_embeddings"}, &c->tie_word_embeddings, false));
  const std::string act = k.str({"hidden_act"});
  if (!act.empty() && act != "silu")
    return Error(Code::kUnsupported, name + ": hidden_act " + act + " is not supported (Llama uses silu)");
  if (const json* rs = k.find({"rope_scaling"})) {
    if (!rs->is_object()) return Error(Code::kCorrupt, name + ": rope_scaling must be an object");
    Keys r(*rs, name);
    std::string type = r.str({"rope_type", "type"});
    if (type == "default") {
      // No scaling.
    } else if (type == "llama3") {
      RopeScaling& s = c->rope_scaling;
      s.kind = RopeScalingKind::kLlama3;
      CRIA_RETURN_IF_ERROR(r.f32({"factor"}, &s.factor, true));
      CRIA_RETURN_IF_ERROR(r.f32({"low_freq_factor"}, &s.low_freq_factor, true));
      CRIA_RETURN_IF_ERROR(r.f32({"high_freq_factor"}, &s.high_freq_factor, true));
      CRIA_RETURN_IF_ERROR(r.u32({"original_max_position_embeddings"}, &s.original_max_position_embeddings, true));
    } else {
      return Error(Code::kUnsupported, name + ": rope_scaling type '" + type +
                                           "' is not supported (supported: llama3)");
    }
  }
  (void)j;
  return Status::Ok();
}

// FalconForCausalLM and the legacy RWForCausalLM ("RefinedWeb",
// "RefinedWebModel") configs, following transformers' FalconConfig defaults.
Status parse_falcon(const Keys& k, const std::string& model_type, const std::string& name,
                    ModelConfig* c) {
  c->arch = Arch::kFalcon;
  c->norm = NormKind::kLayerNorm;
  c->mlp = MlpKind::kGelu;
  CRIA_RETURN_IF_ERROR(k.u32({"vocab_size"}, &c->vocab_size, false, 65024));
  CRIA_RETURN_IF_ERROR(k.u32({"hidden_size", "n_embed"}, &c->hidden_size, false, 4544));
  CRIA_RETURN_IF_ERROR(k.u32({"num_hidden_layers", "n_layer"}, &c->num_layers, false, 32));
  CRIA_RETURN_IF_ERROR(k.u32({"num_attention_heads", "n_head"}, &c->num_heads, false, 71));
  if (c->num_heads == 0) return Error(Code::kCorrupt, name + ": num_attention_heads is 0");
  c->head_dim = c->hidden_size / c->num_heads;
  if (c->head_dim * c->num_heads != c->hidden_size)
    return Error(Code::kCorrupt, name + ": hidden_size is not a multiple of num_attention_heads");
  CRIA_RETURN_IF_ERROR(k.f32({"layer_norm_epsilon"}, &c->norm_eps, false, 1e-5f));
  // The legacy 40B config ("RefinedWeb", with n_head_kv) is the new decoder
  // architecture.
  bool new_decoder = false, multi_query = true, parallel = true, alibi = false, bias = false;
  const bool legacy_new = model_type == "RefinedWeb" || k.find({"n_head_kv"}) != nullptr;
  CRIA_RETURN_IF_ERROR(k.boolean({"new_decoder_architecture"}, &new_decoder, legacy_new));
  CRIA_RETURN_IF_ERROR(k.boolean({"multi_query"}, &multi_query, true));
  CRIA_RETURN_IF_ERROR(k.boolean({"parallel_attn"}, &parallel, true));
  CRIA_RETURN_IF_ERROR(k.boolean({"alibi"}, &alibi, false));
  CRIA_RETURN_IF_ERROR(k.boolean({"bias"}, &bias, false));
  uint32_t kv = 0;
  CRIA_RETURN_IF_ERROR(k.u32({"num_kv_heads", "n_head_kv"}, &kv, false, c->num_heads));
  // transformers FalconAttention: num_kv_heads applies to the new decoder
  // only; multi-query means one KV head, classic multi-head one per head
  // (its fused QKV interleaves [q, k, v] per head).
  c->num_kv_heads = new_decoder ? kv : multi_query ? 1 : c->num_heads;
  uint32_t num_ln = new_decoder ? 2 : 1;
  CRIA_RETURN_IF_ERROR(k.u32({"num_ln_in_parallel_attn"}, &num_ln, false, num_ln));
  if (new_decoder) {
    if (num_ln != 1 && num_ln != 2)
      return Error(Code::kCorrupt, name + ": num_ln_in_parallel_attn must be 1 or 2");
    c->block = num_ln == 2 ? BlockKind::kParallelTwoNorms : BlockKind::kParallelOneNorm;
  } else {
    c->block = parallel ? BlockKind::kParallelOneNorm : BlockKind::kSequential;
  }
  bool post_ln_residual = false;
  CRIA_RETURN_IF_ERROR(k.boolean({"apply_residual_connection_post_layernorm"}, &post_ln_residual, false));
  if (post_ln_residual)
    return Error(Code::kUnsupported, name + ": apply_residual_connection_post_layernorm=true is not supported");
  c->position = alibi ? PositionKind::kAlibi : PositionKind::kRope;
  CRIA_RETURN_IF_ERROR(k.f32({"rope_theta"}, &c->rope_theta, false, 10000.0f));
  if (k.find({"rope_scaling"}))
    return Error(Code::kUnsupported, name + ": rope_scaling is not supported for Falcon");
  c->qkv_bias = c->attn_out_bias = c->mlp_bias = bias;
  CRIA_RETURN_IF_ERROR(k.u32({"ffn_hidden_size"}, &c->intermediate_size, false, 4 * c->hidden_size));
  CRIA_RETURN_IF_ERROR(k.u32({"max_position_embeddings"}, &c->max_position_embeddings, false, 2048));
  CRIA_RETURN_IF_ERROR(k.boolean({"tie_word_embeddings"}, &c->tie_word_embeddings, true));
  const std::string act = k.str({"activation"});
  if (!act.empty() && act != "gelu")
    return Error(Code::kUnsupported, name + ": activation " + act + " is not supported (Falcon uses gelu)");
  return Status::Ok();
}

}  // namespace

Status read_text_file(const std::string& path, std::string* out) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return Error(Code::kNotFound, path + ": no such file");
  if (!S_ISREG(st.st_mode)) return Error(Code::kInvalidArgument, path + ": not a regular file");
  std::ifstream f(path, std::ios::binary);
  if (!f) return Error(Code::kIo, path + ": cannot open");
  std::ostringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  return Status::Ok();
}

Status parse_hf_config(const std::string& text, const std::string& name, ModelConfig* out) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Error(Code::kCorrupt, name + ": not valid JSON");
  Keys k(j, name);
  std::string arch;
  if (auto it = j.find("architectures"); it != j.end() && it->is_array() && !it->empty() &&
                                         (*it)[0].is_string())
    arch = (*it)[0].get<std::string>();
  const std::string model_type = k.str({"model_type"});
  ModelConfig c;
  if (arch == "LlamaForCausalLM" || (arch.empty() && model_type == "llama")) {
    CRIA_RETURN_IF_ERROR(parse_llama(k, j, name, &c));
    c.hf_architecture = "LlamaForCausalLM";
  } else if (arch == "FalconForCausalLM" || arch == "RWForCausalLM" ||
             (arch.empty() && (model_type == "falcon" || model_type == "RefinedWeb" ||
                               model_type == "RefinedWebModel"))) {
    CRIA_RETURN_IF_ERROR(parse_falcon(k, model_type, name, &c));
    c.hf_architecture = arch.empty() ? "FalconForCausalLM" : arch;
  } else {
    std::string what = !arch.empty() ? "architecture " + arch : !model_type.empty() ? "model_type " + model_type : "no architecture";
    return Error(Code::kUnsupported, name + ": unsupported model (" + what +
                                         "); supported: LlamaForCausalLM, FalconForCausalLM, RWForCausalLM");
  }
  CRIA_RETURN_IF_ERROR(validate_config(c).with_prefix(name));
  *out = c;
  return Status::Ok();
}

Status parse_generation_config(const std::string& text, const std::string& name, GenerationDefaults* out) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Error(Code::kCorrupt, name + ": not valid JSON");
  Keys k(j, name);
  GenerationDefaults g;
  CRIA_RETURN_IF_ERROR(k.boolean({"do_sample"}, &g.do_sample, false));
  CRIA_RETURN_IF_ERROR(k.f32({"temperature"}, &g.temperature, false, 1.0f));
  CRIA_RETURN_IF_ERROR(k.f32({"top_p"}, &g.top_p, false, 1.0f));
  CRIA_RETURN_IF_ERROR(k.f32({"min_p"}, &g.min_p, false, 0.0f));
  CRIA_RETURN_IF_ERROR(k.f32({"repetition_penalty"}, &g.repetition_penalty, false, 1.0f));
  uint32_t u = 0;
  CRIA_RETURN_IF_ERROR(k.u32({"top_k"}, &u, false, 0));
  g.top_k = (int32_t)u;
  CRIA_RETURN_IF_ERROR(k.u32({"max_new_tokens"}, &u, false, 0));
  g.max_new_tokens = (int32_t)u;
  CRIA_RETURN_IF_ERROR(k.u32({"max_length"}, &u, false, 0));
  g.max_length = (int32_t)u;
  if (const json* e = k.find({"eos_token_id"})) {
    if (e->is_number_integer()) {
      g.eos_ids.push_back((uint32_t)e->get<int64_t>());
    } else if (e->is_array()) {
      for (const json& x : *e) {
        if (!x.is_number_integer() || x.get<int64_t>() < 0)
          return Error(Code::kCorrupt, name + ": eos_token_id must hold integers");
        g.eos_ids.push_back((uint32_t)x.get<int64_t>());
      }
    } else {
      return Error(Code::kCorrupt, name + ": eos_token_id must be an integer or a list");
    }
  }
  *out = g;
  return Status::Ok();
}

Status read_hf_config(const std::string& dir, ModelConfig* cfg, GenerationDefaults* gen) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return Error(Code::kNotFound, dir + ": no such file or directory");
  if (!S_ISDIR(st.st_mode)) return Error(Code::kInvalidArgument, dir + ": not a directory");
  std::string text;
  CRIA_RETURN_IF_ERROR(read_text_file(dir + "/config.json", &text));
  CRIA_RETURN_IF_ERROR(parse_hf_config(text, dir + "/config.json", cfg));
  const std::string gpath = dir + "/generation_config.json";
  if (::stat(gpath.c_str(), &st) == 0) {
    CRIA_RETURN_IF_ERROR(read_text_file(gpath, &text));
    CRIA_RETURN_IF_ERROR(parse_generation_config(text, gpath, gen));
  }
  return Status::Ok();
}

}  // namespace cria
