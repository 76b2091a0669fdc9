// cria inspect FILE [--verify] [--json] [--tensors]
#include <cstdio>
#include <nlohmann/json.hpp>

#include "formats/model_file.h"
#include "runtime/cli/args.h"
#include "runtime/cli/commands.h"
#include "runtime/cli/common.h"
#include "runtime/cli/term.h"

namespace cria::cli {

namespace {

std::string pretok_name(const PreTokStep& s) {
  switch (s.kind) {
    case PreTokKind::kSplitLlama3: return "split(llama3)";
    case PreTokKind::kByteLevel: return s.use_regex ? "bytelevel(gpt2 regex)" : "bytelevel";
    case PreTokKind::kPunctuation: return "punctuation";
    case PreTokKind::kDigits: return s.individual_digits ? "digits(individual)" : "digits";
    case PreTokKind::kSplitDigits3: return "split(digits by 3)";
  }
  return "?";
}

std::string shape_text(const std::vector<uint64_t>& s) {
  std::string o = "[";
  for (size_t i = 0; i < s.size(); ++i) o += (i ? ", " : "") + std::to_string(s[i]);
  return o + "]";
}

nlohmann::json to_json(const ModelFile& f, const ModelMeta& m) {
  using nlohmann::json;
  const ModelConfig& c = m.config;
  json j;
  j["file"] = f.path();
  j["file_size"] = f.file_size();
  j["format_version"] = std::to_string(f.preamble().major) + "." + std::to_string(f.preamble().minor);
  j["config"] = {{"arch", arch_name(c.arch)},
                 {"hf_architecture", c.hf_architecture},
                 {"vocab_size", c.vocab_size},
                 {"hidden_size", c.hidden_size},
                 {"intermediate_size", c.intermediate_size},
                 {"num_layers", c.num_layers},
                 {"num_heads", c.num_heads},
                 {"num_kv_heads", c.num_kv_heads},
                 {"head_dim", c.head_dim},
                 {"max_position_embeddings", c.max_position_embeddings},
                 {"norm", norm_name(c.norm)},
                 {"norm_eps", c.norm_eps},
                 {"block", block_name(c.block)},
                 {"position", position_name(c.position)},
                 {"rope_theta", c.rope_theta},
                 {"mlp", mlp_name(c.mlp)},
                 {"qkv_bias", c.qkv_bias},
                 {"attn_out_bias", c.attn_out_bias},
                 {"mlp_bias", c.mlp_bias},
                 {"tie_word_embeddings", c.tie_word_embeddings}};
  if (c.rope_scaling.kind == RopeScalingKind::kLlama3) {
    j["config"]["rope_scaling"] = {{"rope_type", "llama3"},
                                   {"factor", c.rope_scaling.factor},
                                   {"low_freq_factor", c.rope_scaling.low_freq_factor},
                                   {"high_freq_factor", c.rope_scaling.high_freq_factor},
                                   {"original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings}};
  }
  const TokenizerData& t = m.tokenizer;
  json pre = json::array();
  for (const PreTokStep& s : t.pre_tokenizer) pre.push_back(pretok_name(s));
  size_t special = 0;
  for (const AddedToken& a : t.added_tokens) special += a.special;
  j["tokenizer"] = {{"tokens", t.vocab.size()},    {"merges", t.merges.size()},
                    {"added_tokens", t.added_tokens.size()}, {"special_tokens", special},
                    {"pre_tokenizer", pre},        {"ignore_merges", t.ignore_merges},
                    {"add_bos", t.add_bos},        {"bos_id", t.bos_id},
                    {"eos_ids", t.eos_ids}};
  j["chat_template"] = chat_kind_name(m.chat.kind);
  const GenerationDefaults& g = m.generation;
  j["generation"] = {{"do_sample", g.do_sample}, {"temperature", g.temperature}, {"top_k", g.top_k},
                     {"top_p", g.top_p},         {"eos_ids", g.eos_ids}};
  j["provenance"] = {{"source", m.provenance.source},
                     {"source_format", m.provenance.source_format},
                     {"converter", m.provenance.converter_version},
                     {"quant_recipe", m.provenance.quant_recipe}};
  json ts = json::array();
  uint64_t bytes = 0, params = 0;
  for (const TensorRef& r : f.tensors()) {
    char sum[17];
    std::snprintf(sum, sizeof sum, "%016llx", (unsigned long long)r.checksum);
    ts.push_back({{"name", r.name}, {"dtype", qtype_name(r.dtype)}, {"shape", r.shape}, {"group", r.group},
                  {"offset", r.offset}, {"size", r.size}, {"xxh3", sum}});
    bytes += r.size;
    params += r.numel();
  }
  j["tensors"] = ts;
  j["tensor_bytes"] = bytes;
  j["parameters"] = params;
  j["bits_per_weight"] = params ? 8.0 * (double)bytes / (double)params : 0.0;
  return j;
}

}  // namespace

int cmd_inspect(int argc, char** argv) {
  std::string path;
  bool verify = false, as_json = false, tensors = false, placement = false;
  ModelFlags mf;
  Args a("inspect", "FILE [--verify] [--json] [--tensors] [--placement [--backend NAME]]");
  a.positional("FILE", &path, true);
  a.flag("--verify", &verify, "recompute every tensor checksum; exit 1 on a mismatch");
  a.flag("--json", &as_json, "print one JSON object");
  a.flag("--tensors", &tensors, "list every tensor (always included in --json)");
  a.flag("--placement", &placement, "load the model and print which backend runs each op kind");
  add_model_flags(a, &mf);
  if (!a.parse(argc, argv)) return usage_error(a.error(), a.usage());
  if (a.help_requested()) {
    std::fputs(a.usage().c_str(), stdout);
    return 0;
  }
  if ((a.given("--backend") || a.given("--gpu-layers") || a.given("--device") || a.given("--weights")) && !placement)
    return usage_error("--backend, --gpu-layers, --device and --weights go with --placement", a.usage());
  if (placement) {
    if (verify || as_json || tensors) return usage_error("--placement goes alone (with --backend)", a.usage());
    if (std::string e; !set_vk_device(mf.device, &e)) return usage_error(e, a.usage());
    ModelPtr m = load_model(path, mf);
    if (!m) return 1;
    std::printf("placement:      %s", placement_text(m.get()).c_str());
    return 0;
  }
  auto f = ModelFile::open(path);
  if (!f.ok()) return fail(f.status().message());
  const ModelFile& file = **f;
  if (verify) {
    Progress bar("verify");
    Status s = file.verify_checksums([&](uint64_t d, uint64_t t) { bar.update(d, t, ""); });
    bar.finish(s.ok() ? "checksums: ok (" + std::to_string(file.tensors().size()) + " tensors)" : "");
    if (!s.ok()) return fail(s.message());
  }
  const ModelMeta m = file.meta();
  nlohmann::json j = to_json(file, m);
  if (as_json) {
    if (verify) j["checksums"] = "ok";
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  const ModelConfig& c = m.config;
  std::printf("file:           %s (%s, format %s)\n", path.c_str(), human_bytes((double)file.file_size()).c_str(),
              j["format_version"].get<std::string>().c_str());
  std::printf("architecture:   %s (%s)\n", arch_name(c.arch), c.hf_architecture.c_str());
  std::printf("  vocab %u, hidden %u, layers %u, heads %u (kv %u, head_dim %u), ffn %u, context %u\n", c.vocab_size,
              c.hidden_size, c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim, c.intermediate_size,
              c.max_position_embeddings);
  std::printf("  %s eps %g, block %s, mlp %s, ", norm_name(c.norm), c.norm_eps, block_name(c.block), mlp_name(c.mlp));
  if (c.position == PositionKind::kRope) {
    std::printf("rope theta %g", c.rope_theta);
    if (c.rope_scaling.kind == RopeScalingKind::kLlama3)
      std::printf(" (llama3 scaling: factor %g, low %g, high %g, original context %u)", c.rope_scaling.factor,
                  c.rope_scaling.low_freq_factor, c.rope_scaling.high_freq_factor,
                  c.rope_scaling.original_max_position_embeddings);
  } else {
    std::printf("alibi");
  }
  std::printf("\n  biases: qkv %s, attn_out %s, mlp %s; tied embeddings: %s\n", c.qkv_bias ? "yes" : "no",
              c.attn_out_bias ? "yes" : "no", c.mlp_bias ? "yes" : "no", c.tie_word_embeddings ? "yes" : "no");
  const auto& tj = j["tokenizer"];
  std::string pre;
  for (const auto& s : tj["pre_tokenizer"]) pre += (pre.empty() ? "" : " + ") + s.get<std::string>();
  std::string eos;
  for (uint32_t e : m.tokenizer.eos_ids) eos += (eos.empty() ? "" : ", ") + std::to_string(e);
  std::printf("tokenizer:      byte-level BPE, %zu tokens, %zu merges, %zu added (%zu special)\n",
              m.tokenizer.vocab.size(), m.tokenizer.merges.size(), m.tokenizer.added_tokens.size(),
              tj["special_tokens"].get<size_t>());
  std::printf("  pre-tokenizer %s; bos %d%s; eos [%s]\n", pre.c_str(), m.tokenizer.bos_id,
              m.tokenizer.add_bos ? " (prepended)" : "", eos.c_str());
  std::printf("chat template:  %s\n", chat_kind_name(m.chat.kind));
  std::printf("provenance:     %s (%s), %s\n", m.provenance.source.c_str(), m.provenance.source_format.c_str(),
              m.provenance.converter_version.c_str());
  std::printf("quantization:   %s\n", m.provenance.quant_recipe.c_str());
  std::printf("tensors:        %zu, %s, %.3g parameters, %.2f bits/weight\n", file.tensors().size(),
              human_bytes((double)j["tensor_bytes"].get<uint64_t>()).c_str(),
              (double)j["parameters"].get<uint64_t>(), j["bits_per_weight"].get<double>());
  if (tensors) {
    for (const TensorRef& r : file.tensors()) {
      std::string dt = qtype_name(r.dtype);
      if (r.group) dt += " g" + std::to_string(r.group);
      std::printf("  %-32s %-8s %-16s %12s\n", std::string(r.name).c_str(), dt.c_str(), shape_text(r.shape).c_str(),
                  human_bytes((double)r.size).c_str());
    }
  }
  return 0;
}

}  // namespace cria::cli
