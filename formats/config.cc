#include <cmath>
#include <string>

#include "formats/config.h"
#include "formats/model_meta.h"
#include "formats/tensors.h"

namespace cria {

const char* code_name(Code code) {
  switch (code) {
    case Code::kOk: return "ok";
    case Code::kInvalidArgument: return "invalid argument";
    case Code::kNotFound: return "not found";
    case Code::kIo: return "i/o error";
    case Code::kCorrupt: return "corrupt";
    case Code::kUnsupported: return "unsupported";
    case Code::kOutOfRange: return "out of range";
    case Code::kCancelled: return "cancelled";
    case Code::kOutOfMemory: return "out of memory";
    case Code::kInternal: return "internal error";
  }
  return "unknown";
}

const char* arch_name(Arch a) {
  switch (a) {
    case Arch::kLlama: return "llama";
    case Arch::kFalcon: return "falcon";
  }
  return "?";
}
const char* chat_kind_name(ChatKind k) {
  switch (k) {
    case ChatKind::kNone: return "none";
    case ChatKind::kLlama3: return "llama3";
    case ChatKind::kFalcon: return "falcon";
  }
  return "?";
}

const char* norm_name(NormKind n) { return n == NormKind::kRMSNorm ? "rmsnorm" : "layernorm"; }
const char* position_name(PositionKind p) { return p == PositionKind::kRope ? "rope" : "alibi"; }
const char* mlp_name(MlpKind m) { return m == MlpKind::kSwiGLU ? "swiglu" : "gelu"; }
const char* block_name(BlockKind b) {
  switch (b) {
    case BlockKind::kSequential: return "sequential";
    case BlockKind::kParallelOneNorm: return "parallel (one norm)";
    case BlockKind::kParallelTwoNorms: return "parallel (two norms)";
  }
  return "?";
}

Status validate_config(const ModelConfig& c) {
  auto bad = [](const std::string& what) { return Error(Code::kCorrupt, "bad config: " + what); };
  if ((int)c.arch > 1) return bad("unknown architecture " + std::to_string((int)c.arch));
  if (c.vocab_size == 0) return bad("vocab_size is 0");
  if (c.hidden_size == 0) return bad("hidden_size is 0");
  if (c.intermediate_size == 0) return bad("intermediate_size is 0");
  if (c.num_layers == 0) return bad("num_layers is 0");
  if (c.num_heads == 0) return bad("num_heads is 0");
  if (c.num_kv_heads == 0) return bad("num_kv_heads is 0");
  if (c.num_heads % c.num_kv_heads != 0)
    return bad("num_heads " + std::to_string(c.num_heads) + " is not a multiple of num_kv_heads " +
               std::to_string(c.num_kv_heads));
  if (c.head_dim == 0 || c.head_dim % 2 != 0)
    return bad("head_dim " + std::to_string(c.head_dim) + " must be even and non-zero");
  if (c.max_position_embeddings == 0) return bad("max_position_embeddings is 0");
  // Guard the products the runtime allocates from.
  const uint64_t limit = 1ull << 20;
  if (c.vocab_size > 4 * limit || c.hidden_size > limit / 4 || c.intermediate_size > limit ||
      c.num_layers > 4096 || c.num_heads > 4096 || c.head_dim > 4096 ||
      c.max_position_embeddings > 16 * limit)
    return bad("a dimension is implausibly large");
  if ((int)c.norm > 1) return bad("unknown norm kind");
  if ((int)c.block > 2) return bad("unknown block kind");
  if ((int)c.position > 1) return bad("unknown position kind");
  if ((int)c.mlp > 1) return bad("unknown mlp kind");
  if ((int)c.rope_scaling.kind > 1) return bad("unknown rope scaling kind");
  if (!(c.norm_eps > 0) || !std::isfinite(c.norm_eps)) return bad("norm_eps must be positive");
  if (c.position == PositionKind::kRope && !(c.rope_theta > 0)) return bad("rope_theta must be positive");
  if (c.rope_scaling.kind == RopeScalingKind::kLlama3) {
    const RopeScaling& r = c.rope_scaling;
    if (!(r.factor > 0) || !(r.low_freq_factor > 0) || !(r.high_freq_factor > r.low_freq_factor) ||
        r.original_max_position_embeddings == 0)
      return bad("llama3 rope_scaling needs factor > 0, high_freq_factor > low_freq_factor > 0 and "
                 "original_max_position_embeddings > 0");
  }
  return Status::Ok();
}

namespace {

struct KindInfo {
  TensorKind kind;
  const char* name;
  bool in_block;
};
// Indexed by TensorKind; the static_assert below and the check in
// tensor_kind_name keep the two in step.
constexpr KindInfo kKinds[] = {
    {TensorKind::kTokEmbd, "tok_embd", false},      {TensorKind::kAttnNorm, "attn_norm", true},
    {TensorKind::kAttnQkv, "attn_qkv", true},       {TensorKind::kAttnOut, "attn_out", true},
    {TensorKind::kFfnNorm, "ffn_norm", true},       {TensorKind::kFfnGateUp, "ffn_gate_up", true},
    {TensorKind::kFfnUp, "ffn_up", true},           {TensorKind::kFfnDown, "ffn_down", true},
    {TensorKind::kOutputNorm, "output_norm", false}, {TensorKind::kOutput, "output", false},
};
static_assert(sizeof(kKinds) / sizeof(kKinds[0]) == kNumTensorKinds);
constexpr bool kinds_in_order() {
  for (int i = 0; i < kNumTensorKinds; ++i)
    if ((int)kKinds[i].kind != i) return false;
  return true;
}
static_assert(kinds_in_order(), "kKinds must list TensorKind in declaration order");

}  // namespace

const char* tensor_kind_name(TensorKind k) { return kKinds[(int)k].name; }
bool tensor_kind_in_block(TensorKind k) { return kKinds[(int)k].in_block; }

std::string tensor_name(TensorKind k, int layer, bool bias) {
  std::string n = tensor_kind_in_block(k) ? "blk." + std::to_string(layer) + "." : std::string();
  return n + tensor_kind_name(k) + (bias ? ".bias" : ".weight");
}

void for_each_tensor(const ModelConfig& c, const std::function<void(const TensorSpec&)>& f) {
  const uint64_t h = c.hidden_size, v = c.vocab_size, ffn = c.intermediate_size;
  const bool ln = c.norm == NormKind::kLayerNorm;
  auto spec = [&](TensorKind k, int layer, bool bias, std::vector<uint64_t> shape, TensorRole role) {
    f({tensor_name(k, layer, bias), std::move(shape), role, layer, k, bias});
  };
  auto norm = [&](int layer, TensorKind k) {
    spec(k, layer, false, {h}, TensorRole::kNorm);
    if (ln) spec(k, layer, true, {h}, TensorRole::kNorm);
  };
  auto linear = [&](int layer, TensorKind k, uint64_t out, uint64_t in, bool bias) {
    spec(k, layer, false, {out, in}, TensorRole::kLinear);
    if (bias) spec(k, layer, true, {out}, TensorRole::kBias);
  };
  spec(TensorKind::kTokEmbd, -1, false, {v, h}, TensorRole::kEmbedding);
  for (int i = 0; i < (int)c.num_layers; ++i) {
    norm(i, TensorKind::kAttnNorm);
    linear(i, TensorKind::kAttnQkv, c.qkv_dim(), h, c.qkv_bias);
    linear(i, TensorKind::kAttnOut, h, c.q_dim(), c.attn_out_bias);
    if (c.block != BlockKind::kParallelOneNorm) norm(i, TensorKind::kFfnNorm);
    if (c.mlp == MlpKind::kSwiGLU) {
      linear(i, TensorKind::kFfnGateUp, 2 * ffn, h, c.mlp_bias);
    } else {
      linear(i, TensorKind::kFfnUp, ffn, h, c.mlp_bias);
    }
    linear(i, TensorKind::kFfnDown, h, ffn, c.mlp_bias);
  }
  norm(-1, TensorKind::kOutputNorm);
  if (!c.tie_word_embeddings) spec(TensorKind::kOutput, -1, false, {v, h}, TensorRole::kHead);
}

std::vector<TensorSpec> tensor_specs(const ModelConfig& c) {
  std::vector<TensorSpec> out;
  for_each_tensor(c, [&](const TensorSpec& s) { out.push_back(s); });
  return out;
}

}  // namespace cria
