#include "tests/fuzz/seeds.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <vector>

#include "formats/model_meta.h"
#include "formats/model_writer.h"
#include "formats/tensors.h"

namespace cria::fuzz {

namespace {

void put(const std::string& dir, const std::string& name, const std::string& bytes) {
  std::ofstream f(dir + "/" + name, std::ios::binary);
  f.write(bytes.data(), (std::streamsize)bytes.size());
}

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

ModelMeta tiny(Arch arch) {
  ModelMeta m;
  ModelConfig& c = m.config;
  c.arch = arch;
  c.vocab_size = 260;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_layers = 1;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.head_dim = 16;
  c.max_position_embeddings = 64;
  if (arch == Arch::kFalcon) {
    c.norm = NormKind::kLayerNorm;
    c.mlp = MlpKind::kGelu;
    c.block = BlockKind::kParallelOneNorm;
    c.position = PositionKind::kAlibi;
    c.qkv_bias = c.attn_out_bias = c.mlp_bias = true;
    c.tie_word_embeddings = true;
  }
  for (int b = 0; b < 256; ++b) m.tokenizer.vocab.push_back(std::string(1, (char)b));
  m.tokenizer.vocab.push_back("ab");
  m.tokenizer.vocab.push_back("<s>");
  m.tokenizer.merges.push_back({'a', 'b'});
  m.tokenizer.added_tokens.push_back({257, "<s>", true, false, false, false, false});
  m.tokenizer.pre_tokenizer.push_back({PreTokKind::kByteLevel, true, false, false});
  m.tokenizer.bos_id = 257;
  m.tokenizer.eos_ids = {257};
  return m;
}

std::string cria_seed(const std::string& dir, Arch arch, QType linear) {
  ModelMeta meta = tiny(arch);
  std::vector<TensorPlan> plan;
  for (const TensorSpec& s : tensor_specs(meta.config)) {
    bool small = s.role == TensorRole::kNorm || s.role == TensorRole::kBias;
    QType t = small ? QType::kF32 : linear;
    plan.push_back({s.name, t, s.shape, t == QType::kQ4 || t == QType::kQ8 ? 32u : 0u});
  }
  const std::string path = dir + "/.seed.cria";
  auto w = ModelWriter::create(path, meta, plan);
  if (!w.ok()) return {};
  for (size_t i = 0; i < plan.size(); ++i) {
    std::vector<uint8_t> b((*w)->tensor_size(i), 0x11);
    if (!(*w)->write(b.data(), b.size()).ok() || !(*w)->end_tensor().ok()) return {};
  }
  if (!(*w)->finish().ok()) return {};
  std::string bytes = read_all(path);
  std::remove(path.c_str());
  return bytes;
}

std::string safetensors_seed(const std::string& header, size_t data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header + std::string(data, '\x01');
}

void gguf_str(std::string& o, const std::string& s) {
  uint64_t n = s.size();
  o.append(reinterpret_cast<const char*>(&n), 8);
  o += s;
}
template <typename T>
void gguf_pod(std::string& o, T v) {
  o.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

std::string gguf_seed() {
  std::string o = "GGUF";
  gguf_pod<uint32_t>(o, 3);
  gguf_pod<uint64_t>(o, 2);  // tensors
  gguf_pod<uint64_t>(o, 3);  // kv
  gguf_str(o, "general.architecture");
  gguf_pod<uint32_t>(o, 8);
  gguf_str(o, "llama");
  gguf_str(o, "llama.block_count");
  gguf_pod<uint32_t>(o, 4);
  gguf_pod<uint32_t>(o, 1);
  gguf_str(o, "tokenizer.ggml.tokens");
  gguf_pod<uint32_t>(o, 9);
  gguf_pod<uint32_t>(o, 8);
  gguf_pod<uint64_t>(o, 2);
  gguf_str(o, "a");
  gguf_str(o, "b");
  gguf_str(o, "token_embd.weight");
  gguf_pod<uint32_t>(o, 2);
  gguf_pod<uint64_t>(o, 32);
  gguf_pod<uint64_t>(o, 2);
  gguf_pod<uint32_t>(o, 2);  // Q4_0
  gguf_pod<uint64_t>(o, 0);
  gguf_str(o, "output_norm.weight");
  gguf_pod<uint32_t>(o, 1);
  gguf_pod<uint64_t>(o, 32);
  gguf_pod<uint32_t>(o, 0);  // F32
  gguf_pod<uint64_t>(o, 64);
  while (o.size() % 32) o.push_back('\0');
  o.append(64 + 128, '\x02');
  return o;
}

}  // namespace

void write_seeds(const std::string& kind) {
  const char* dir = std::getenv("CRIA_FUZZ_SEED_DIR");
  if (!dir) return;
  if (kind == "cria") {
    put(dir, "llama_q4.cria", cria_seed(dir, Arch::kLlama, QType::kQ4));
    put(dir, "falcon_q8.cria", cria_seed(dir, Arch::kFalcon, QType::kQ8));
    put(dir, "llama_f16.cria", cria_seed(dir, Arch::kLlama, QType::kF16));
  } else if (kind == "safetensors") {
    put(dir, "two.st", safetensors_seed(R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
                                        R"("b":{"dtype":"BF16","shape":[4],"data_offsets":[16,24]},"__metadata__":{"x":"y"}})",
                                        24));
    put(dir, "empty.st", safetensors_seed("{}", 0));
  } else if (kind == "gguf") {
    put(dir, "tiny.gguf", gguf_seed());
  }
}

}  // namespace cria::fuzz
