// A small random-weight model written to disk, for engine tests that must
// not depend on generated checkpoints.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <random>
#include <string>
#include <vector>

#include "formats/model_writer.h"
#include "formats/tensors.h"
#include "runtime/model/model.h"
#include "runtime/tokenizer/tokenizer.h"

namespace cria::test {

inline ModelMeta tiny_engine_meta(Arch arch) {
  ModelMeta m;
  ModelConfig& c = m.config;
  c.arch = arch;
  c.vocab_size = 272;
  c.hidden_size = 64;
  c.intermediate_size = 128;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = arch == Arch::kLlama ? 2 : 1;
  c.head_dim = 16;
  c.max_position_embeddings = 256;
  c.rope_theta = 10000;
  if (arch == Arch::kFalcon) {
    c.norm = NormKind::kLayerNorm;
    c.mlp = MlpKind::kGelu;
    c.block = BlockKind::kParallelOneNorm;
    c.tie_word_embeddings = true;
  }
  TokenizerData& t = m.tokenizer;
  for (int b = 0; b < 256; ++b) t.vocab.push_back(std::string(1, (char)b));
  const char* specials[] = {"<s>", "</s>"};
  for (int i = 0; i < 2; ++i) {
    t.vocab.push_back(specials[i]);
    t.added_tokens.push_back({(uint32_t)(256 + i), specials[i], true, false, false, false, false});
  }
  t.pre_tokenizer.push_back({PreTokKind::kByteLevel, true, false, false});
  t.bos_id = 256;
  t.add_bos = true;
  t.eos_ids = {257};
  return m;
}

// Writes a model of `meta` with deterministic weights (scale 0.3 so
// attention and logits are not flat) and returns its path ("" on failure).
inline std::string write_model_with_meta(const std::string& name, const ModelMeta& meta, QType linear) {
  std::string dir = std::string(CRIA_BINARY_DIR) + "/testtmp";
  ::mkdir(dir.c_str(), 0755);
  std::string path = dir + "/" + name + "-" + std::to_string(::getpid()) + ".cria";
  std::vector<TensorPlan> plan;
  for (const TensorSpec& s : tensor_specs(meta.config)) {
    const bool small = s.role == TensorRole::kNorm || s.role == TensorRole::kBias;
    const QType t = small ? QType::kF32 : linear;
    plan.push_back({s.name, t, s.shape, t == QType::kQ4 || t == QType::kQ8 ? 32u : 0u});
  }
  auto w = ModelWriter::create(path, meta, plan);
  if (!w.ok()) return {};
  std::mt19937 rng(42);
  std::normal_distribution<float> nd(0.0f, 0.3f);
  for (const TensorPlan& p : plan) {
    const uint64_t rows = p.shape.size() == 2 ? p.shape[0] : 1, cols = p.shape.back();
    std::vector<float> x(rows * cols);
    const bool norm = p.name.find("norm") != std::string::npos && p.name.find(".weight") != std::string::npos;
    for (float& v : x) v = norm ? 1.0f + 0.1f * nd(rng) : nd(rng);
    QLayout l;
    if (!qlayout(p.dtype, rows, cols, p.group, &l)) return {};
    std::vector<uint8_t> bytes(l.total);
    quantize_rows(p.dtype, x.data(), rows, l, qplanes_at(bytes.data(), l, 0), QuantOptions());
    if (!(*w)->write(bytes.data(), bytes.size()).ok() || !(*w)->end_tensor().ok()) return {};
  }
  if (!(*w)->finish().ok()) return {};
  return path;
}

inline std::string write_tiny_model(const std::string& name, Arch arch, QType linear) {
  return write_model_with_meta(name, tiny_engine_meta(arch), linear);
}

}  // namespace cria::test
