// The Vulkan LayerStack (a model's layers on the device, one submission per
// token) against the CPU forward pass (runtime/model/transformer.cc on the
// scalar table) on tiny random-weight models covering every block piece:
// Llama (RMSNorm, RoPE, GQA, SwiGLU, sequential), Falcon (LayerNorm, MQA,
// GELU, parallel one-norm, tied head), and a Falcon-style variant with
// ALiBi, biases and two norms; f32, f16, q8 and q4 weights.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "formats/model_writer.h"
#include "formats/tensors.h"
#include "runtime/backends/vulkan/vk_layer_stack.h"
#include "runtime/model/transformer.h"
#include "tests/engine/tiny_model.h"
#include "tests/vulkan/vk_test_util.h"

using namespace cria;
using namespace vktest;

namespace {

// tiny_model.h's writer, for a config the test adjusts first.
std::string write_model(const std::string& name, const ModelMeta& meta, QType linear) {
  const std::string path = test::write_model_with_meta("vk-" + name, meta, linear);
  REQUIRE(!path.empty());
  return path;
}

struct Case {
  const char* name;
  ModelMeta meta;
  QType linear;
  // Largest |GPU - CPU| logit difference allowed, relative to the largest
  // |logit| (see the check for the reasoning).
  double rel_tol;
};

std::vector<Case> cases() {
  std::vector<Case> v;
  v.push_back({"llama-f32", test::tiny_engine_meta(Arch::kLlama), QType::kF32, 1e-5});
  v.push_back({"llama-q8", test::tiny_engine_meta(Arch::kLlama), QType::kQ8, 1e-3});
  v.push_back({"llama-q4", test::tiny_engine_meta(Arch::kLlama), QType::kQ4, 1e-3});
  v.push_back({"falcon-f16", test::tiny_engine_meta(Arch::kFalcon), QType::kF16, 1e-5});
  ModelMeta alibi = test::tiny_engine_meta(Arch::kFalcon);
  alibi.config.position = PositionKind::kAlibi;
  alibi.config.block = BlockKind::kParallelTwoNorms;
  alibi.config.num_kv_heads = 2;
  alibi.config.qkv_bias = alibi.config.attn_out_bias = alibi.config.mlp_bias = true;
  v.push_back({"falcon-alibi-bias-2norm-f32", alibi, QType::kF32, 1e-5});
  return v;
}

}  // namespace

TEST_CASE("vulkan LayerStack: logits and greedy tokens match the CPU forward") {
  Context* c = ctx();
  if (!c) return;
  for (const Case& k : cases()) {
    CAPTURE(std::string(k.name));
    const std::string path = write_model(k.name, k.meta, k.linear);
    // The oracle is the CPU backend on the scalar table (not auto, which
    // may place linear layers on XNNPACK).
    ModelOptions mo;
    mo.backend = "cpu";
    auto model = Model::load(path, mo);
    ::unlink(path.c_str());
    REQUIRE_MESSAGE(model.ok(), model.status().message());
    const Model& m = **model;
    const ModelConfig& cfg = m.config();
    const int64_t vocab = cfg.vocab_size, n_ctx = 32;

    kernels::ThreadPool pool(1);
    KvCache cache;
    REQUIRE(cache.init(cfg, 1, n_ctx).ok());
    ForwardScratch scratch;
    scratch.init(m, 1, 1);
    vk::LayerStack::Options o;
    o.n_ctx = n_ctx;
    auto stack = vk::LayerStack::create(*c, m, o);
    REQUIRE_MESSAGE(stack.ok(), stack.status().message());

    // Greedy decoding on both sides, each feeding back its own choice; the
    // logits are compared at every step while the tokens agree.
    std::vector<float> want(vocab), got(vocab, NAN);
    int32_t tok_cpu = 1, tok_gpu = 1;
    std::vector<int32_t> toks_cpu, toks_gpu;
    double worst = 0;
    for (int pos = 0; pos < 12; ++pos) {
      BatchEntry e{tok_cpu, pos, 0, true};
      REQUIRE(forward(m, kernels::scalar_table(), pool, cache, scratch, &e, 1, want.data()).ok());
      std::fill(got.begin(), got.end(), NAN);
      Status st = (*stack)->decode(tok_gpu, nullptr, pos, nullptr, got.data());
      REQUIRE_MESSAGE(st.ok(), st.message());
      double scale = 0, diff = 0;
      for (int64_t i = 0; i < vocab; ++i) {
        scale = std::max(scale, (double)std::fabs(want[i]));
        diff = std::max(diff, std::fabs((double)got[i] - want[i]));  // NaN fails below
        REQUIRE(!std::isnan(got[i]));
      }
      worst = std::max(worst, diff / scale);
      tok_cpu = (int32_t)(std::max_element(want.begin(), want.end()) - want.begin());
      tok_gpu = (int32_t)(std::max_element(got.begin(), got.end()) - got.begin());
      toks_cpu.push_back(tok_cpu);
      toks_gpu.push_back(tok_gpu);
      if (tok_cpu != tok_gpu) break;
    }
    std::string seq;
    for (int32_t t : toks_gpu) seq += " " + std::to_string(t);
    MESSAGE(std::string(k.name) << ": largest logit difference " << worst << " of the logit range; tokens" << seq);
    // Float weights: every op differs from the CPU only by f32 summation
    // order (bounded per op at ~(cols/64 + 10) u in test_vulkan_ops, under
    // 1e-6 relative at these widths); through 2 layers and the head this
    // stays under 1e-5 of the logit range (measured: < 1e-6). Int8
    // weights: the activations are quantized to int8 on both sides, and an
    // input that differs by ~1e-6 flips a code sitting at a rounding
    // midpoint, moving one of a dot product's 64-128 terms by 1/127 of its
    // block's largest value: ~1e-4 of the range per flip, 1e-3 allowed.
    CHECK(worst <= k.rel_tol);
    CHECK(toks_gpu == toks_cpu);
  }
}

TEST_CASE("vulkan LayerStack: a split layer range hands the hidden state on exactly") {
  Context* c = ctx();
  if (!c) return;
  const std::string path = write_model("split", test::tiny_engine_meta(Arch::kLlama), QType::kQ4);
  auto model = Model::load(path);
  ::unlink(path.c_str());
  REQUIRE(model.ok());
  const Model& m = **model;
  const int64_t vocab = m.config().vocab_size, hs = m.config().hidden_size;
  vk::LayerStack::Options full, first, second;
  full.n_ctx = first.n_ctx = second.n_ctx = 16;
  first.l1 = 1;
  second.l0 = 1;
  // The weights of the second half split across small buffers too.
  second.split_limit = 4096 + 200;
  auto a = vk::LayerStack::create(*c, m, full), b = vk::LayerStack::create(*c, m, first),
       d = vk::LayerStack::create(*c, m, second);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(d.ok());
  CHECK(!(*b)->has_head());
  std::vector<float> la(vocab, NAN), ld(vocab, NAN), h(hs, NAN);
  for (int pos = 0; pos < 5; ++pos) {
    const int32_t tok = 3 + 17 * pos;
    REQUIRE((*a)->decode(tok, nullptr, pos, nullptr, la.data()).ok());
    REQUIRE((*b)->decode(tok, nullptr, pos, h.data(), nullptr).ok());
    REQUIRE((*d)->decode(0, h.data(), pos, nullptr, ld.data()).ok());
    // Same shaders in the same order on the same inputs: bit-identical.
    CHECK(la == ld);
  }
  // Bad calls are errors.
  CHECK(!(*a)->decode(-1, nullptr, 5, nullptr, la.data()).ok());
  CHECK(!(*a)->decode(1, nullptr, 16, nullptr, la.data()).ok());
  CHECK(!(*d)->decode(1, nullptr, 5, nullptr, ld.data()).ok());
  vk::LayerStack::Options bad;
  bad.l0 = 2;
  CHECK(!vk::LayerStack::create(*c, m, bad).ok());
}
