// Helpers shared by the formats tests: a small valid ModelMeta and files
// written byte by byte.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "formats/model_meta.h"
#include "formats/tensors.h"

namespace cria::test {

inline std::string temp_dir() {
  static std::string dir = [] {
    std::string base = std::string(CRIA_BINARY_DIR) + "/testtmp";
    ::mkdir(base.c_str(), 0755);
    std::string d = base + "/formats-" + std::to_string(::getpid());
    ::mkdir(d.c_str(), 0755);
    return d;
  }();
  return dir;
}

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), (std::streamsize)bytes.size());
}

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

inline bool file_exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

inline ModelMeta tiny_meta(Arch arch = Arch::kLlama) {
  ModelMeta m;
  ModelConfig& c = m.config;
  c.arch = arch;
  c.hf_architecture = arch == Arch::kLlama ? "LlamaForCausalLM" : "FalconForCausalLM";
  c.vocab_size = 300;
  c.hidden_size = 64;
  c.intermediate_size = 128;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  c.max_position_embeddings = 128;
  c.rope_theta = 500000.0f;
  if (arch == Arch::kFalcon) {
    c.norm = NormKind::kLayerNorm;
    c.mlp = MlpKind::kGelu;
    c.block = BlockKind::kParallelTwoNorms;
    c.qkv_bias = c.attn_out_bias = c.mlp_bias = true;
    c.tie_word_embeddings = true;
  }
  TokenizerData& t = m.tokenizer;
  for (int b = 0; b < 256; ++b) t.vocab.push_back(std::string(1, (char)b));
  t.vocab.push_back("ab");
  t.vocab.push_back("<|bos|>");
  t.merges.push_back({'a', 'b'});
  t.added_tokens.push_back({257, "<|bos|>", true, false, false, false, false});
  t.pre_tokenizer.push_back({PreTokKind::kSplitLlama3, false, false, false});
  t.pre_tokenizer.push_back({PreTokKind::kByteLevel, false, false, false});
  t.bos_id = 257;
  t.add_bos = true;
  t.eos_ids = {257};
  m.chat.kind = ChatKind::kLlama3;
  m.chat.jinja = "{{ messages }}";
  m.generation.temperature = 0.6f;
  m.generation.top_p = 0.9f;
  m.generation.eos_ids = {257};
  m.provenance = {"test", "none", "test", "f32"};
  return m;
}

inline std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0, 1);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

}  // namespace cria::test
