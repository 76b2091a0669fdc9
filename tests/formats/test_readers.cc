// Readers of other people's formats: Hugging Face config.json variants
// (Llama 3 / 3.1 / 3.2; FalconForCausalLM and the legacy RWForCausalLM keys),
// generation_config.json, the safetensors header parser and GGUF headers.
#include <doctest/doctest.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "formats/gguf.h"
#include "formats/hf_config.h"
#include "formats/safetensors.h"

using namespace cria;

namespace {

ModelConfig parse_ok(const std::string& json) {
  ModelConfig c;
  Status s = parse_hf_config(json, "config.json", &c);
  REQUIRE_MESSAGE(s.ok(), s.message());
  return c;
}

std::string parse_err(const std::string& json) {
  ModelConfig c;
  Status s = parse_hf_config(json, "config.json", &c);
  REQUIRE_FALSE(s.ok());
  return s.message();
}

}  // namespace

TEST_CASE("Llama 3 config variants") {
  const std::string base = R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 128256, "hidden_size": 4096,
    "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
    "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "max_position_embeddings": 8192)";
  ModelConfig c = parse_ok(base + "}");
  CHECK(c.arch == Arch::kLlama);
  CHECK(c.head_dim == 128);
  CHECK(c.num_kv_heads == 8);
  CHECK(c.block == BlockKind::kSequential);
  CHECK_FALSE(c.tie_word_embeddings);
  CHECK(c.rope_scaling.kind == RopeScalingKind::kNone);
  // 3.1: llama3 rope scaling.
  c = parse_ok(base + R"(, "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
    "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}})");
  CHECK(c.rope_scaling.kind == RopeScalingKind::kLlama3);
  CHECK(c.rope_scaling.factor == 8.0f);
  CHECK(c.rope_scaling.original_max_position_embeddings == 8192);
  // 3.2: tied embeddings and an explicit head_dim.
  c = parse_ok(base + R"(, "tie_word_embeddings": true, "head_dim": 64})");
  CHECK(c.tie_word_embeddings);
  CHECK(c.head_dim == 64);
  CHECK(parse_err(base + R"(, "rope_scaling": {"type": "yarn", "factor": 4.0}})").find("not supported") != std::string::npos);
  CHECK(parse_err(base + R"(, "hidden_act": "gelu"})").find("hidden_act") != std::string::npos);
  CHECK(parse_err(R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 10})").find("missing key") != std::string::npos);
  CHECK(parse_err(base + R"(, "num_key_value_heads": 7})").find("num_kv_heads") != std::string::npos);
  CHECK(parse_err(base + R"(, "num_hidden_layers": "32"})").find("num_hidden_layers") != std::string::npos);
  CHECK(parse_err(R"({"architectures": ["MistralForCausalLM"]})").find("unsupported model") != std::string::npos);
  CHECK(parse_err("{not json").find("not valid JSON") != std::string::npos);
}

TEST_CASE("Falcon config variants map onto block kinds and KV heads") {
  struct Case {
    const char* json;
    BlockKind block;
    uint32_t kv;
    PositionKind pos;
    bool bias;
  };
  const Case cases[] = {
      // Falcon-7B: multi-query, parallel attention with one norm.
      {R"({"architectures": ["FalconForCausalLM"], "hidden_size": 4544, "num_attention_heads": 71, "num_hidden_layers": 32,
           "multi_query": true, "parallel_attn": true, "new_decoder_architecture": false, "bias": false, "alibi": false})",
       BlockKind::kParallelOneNorm, 1, PositionKind::kRope, false},
      // Falcon-40B: the new decoder with two norms and 8 KV heads.
      {R"({"architectures": ["FalconForCausalLM"], "hidden_size": 8192, "num_attention_heads": 128, "num_kv_heads": 8,
           "num_hidden_layers": 60, "new_decoder_architecture": true})",
       BlockKind::kParallelTwoNorms, 8, PositionKind::kRope, false},
      // Falcon2-11B: the new decoder with one norm.
      {R"({"architectures": ["FalconForCausalLM"], "hidden_size": 4096, "num_attention_heads": 32, "num_kv_heads": 8,
           "num_hidden_layers": 60, "new_decoder_architecture": true, "num_ln_in_parallel_attn": 1,
           "rope_theta": 500042, "ffn_hidden_size": 16384})",
       BlockKind::kParallelOneNorm, 8, PositionKind::kRope, false},
      // falcon-rw-1b, legacy keys: ALiBi, biases, sequential, classic MHA.
      {R"({"architectures": ["RWForCausalLM"], "model_type": "RefinedWebModel", "n_embed": 2048, "n_head": 32,
           "n_layer": 24, "alibi": true, "bias": true, "parallel_attn": false, "multi_query": false, "vocab_size": 50304})",
       BlockKind::kSequential, 32, PositionKind::kAlibi, true},
      // The legacy 40B "RefinedWeb" config: n_head_kv means the new decoder.
      {R"({"architectures": ["RWForCausalLM"], "model_type": "RefinedWeb", "n_embed": 8192, "n_head": 128,
           "n_head_kv": 8, "n_layer": 60})",
       BlockKind::kParallelTwoNorms, 8, PositionKind::kRope, false},
  };
  for (const Case& k : cases) {
    CAPTURE(std::string(k.json));
    ModelConfig c = parse_ok(k.json);
    CHECK(c.arch == Arch::kFalcon);
    CHECK(c.block == k.block);
    CHECK(c.num_kv_heads == k.kv);
    CHECK(c.position == k.pos);
    CHECK(c.qkv_bias == k.bias);
    CHECK(c.mlp_bias == k.bias);
    CHECK(c.norm == NormKind::kLayerNorm);
    CHECK(c.mlp == MlpKind::kGelu);
    CHECK(c.tie_word_embeddings);  // Falcon's default
  }
  ModelConfig c = parse_ok(cases[2].json);
  CHECK(c.rope_theta == 500042.0f);
  CHECK(c.intermediate_size == 16384);
  CHECK(parse_ok(cases[0].json).intermediate_size == 4 * 4544);
  CHECK(parse_err(R"({"architectures": ["FalconForCausalLM"], "apply_residual_connection_post_layernorm": true})")
            .find("not supported") != std::string::npos);
}

TEST_CASE("generation_config.json") {
  GenerationDefaults g;
  REQUIRE(parse_generation_config(R"({"do_sample": true, "temperature": 0.6, "top_p": 0.9, "eos_token_id": [128001, 128009]})",
                                  "generation_config.json", &g)
              .ok());
  CHECK(g.do_sample);
  CHECK(g.temperature == doctest::Approx(0.6));
  CHECK(g.eos_ids == std::vector<uint32_t>{128001, 128009});
  REQUIRE(parse_generation_config(R"({"eos_token_id": 11})", "g.json", &g).ok());
  CHECK(g.eos_ids == std::vector<uint32_t>{11});
  CHECK_FALSE(parse_generation_config(R"({"eos_token_id": "x"})", "g.json", &g).ok());
}

TEST_CASE("safetensors header parser") {
  std::vector<StTensor> ts;
  auto parse = [&](const std::string& h, uint64_t data) { return parse_safetensors_header(h.data(), h.size(), data, "f.safetensors", &ts); };
  REQUIRE(parse(R"({"a": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 12]}, "__metadata__": {"format": "pt"}})", 12).ok());
  REQUIRE(ts.size() == 1);
  CHECK(ts[0].dtype == StDType::kBF16);
  CHECK(ts[0].shape == std::vector<uint64_t>{2, 3});
  CHECK(parse(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 12]}})", 16).message().find("bytes for shape") != std::string::npos);
  CHECK(parse(R"({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4).message().find("bad shape") != std::string::npos);
  CHECK(parse(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}})", 16).message().find("bad data_offsets") != std::string::npos);
  CHECK(parse(R"([1, 2])", 0).message().find("not a JSON object") != std::string::npos);
  CHECK(parse(R"({"a": 5})", 0).message().find("not an object") != std::string::npos);
}

TEST_CASE("GGUF header parser") {
  std::map<std::string, GgufValue> meta;
  std::vector<GgufTensor> ts;
  std::string b = "GGUF";
  auto u32 = [&](uint32_t v) { b.append(reinterpret_cast<const char*>(&v), 4); };
  auto u64 = [&](uint64_t v) { b.append(reinterpret_cast<const char*>(&v), 8); };
  auto str = [&](const std::string& s) {
    u64(s.size());
    b += s;
  };
  u32(3);
  u64(1);  // tensors
  u64(2);  // key-values
  str("general.architecture");
  u32(8);
  str("llama");
  str("llama.block_count");
  u32(4);
  u32(2);
  str("t");
  u32(2);
  u64(64);
  u64(3);
  u32(8);  // Q8_0
  u64(0);
  while (b.size() % 32) b.push_back('\0');
  b.append(3 * 2 * 34, '\x01');
  Status s = parse_gguf_header(reinterpret_cast<const uint8_t*>(b.data()), b.size(), b.size(), "m.gguf", &meta, &ts);
  REQUIRE_MESSAGE(s.ok(), s.message());
  CHECK(meta.at("general.architecture").s == "llama");
  REQUIRE(ts.size() == 1);
  CHECK(ts[0].shape == std::vector<uint64_t>{3, 64});
  CHECK(ts[0].size == 3 * 2 * 34);
  // Truncated data and a bad magic are errors naming the file.
  s = parse_gguf_header(reinterpret_cast<const uint8_t*>(b.data()), b.size() - 10, b.size() - 10, "m.gguf", &meta, &ts);
  CHECK(s.message().find("m.gguf") == 0);
  b[0] = 'X';
  s = parse_gguf_header(reinterpret_cast<const uint8_t*>(b.data()), b.size(), b.size(), "m.gguf", &meta, &ts);
  CHECK(s.message().find("not a GGUF file") != std::string::npos);
}
