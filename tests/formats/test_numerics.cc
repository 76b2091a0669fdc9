// The tensor-kind table (formats/tensors.h) and the model numerics kept in
// one place (formats/alibi.h, formats/rope.h).
#include <doctest/doctest.h>

#include <cmath>
#include <set>
#include <string>

#include "formats/alibi.h"
#include "formats/rope.h"
#include "formats/tensors.h"
#include "quant/fp16.h"
#include "tests/formats/test_util.h"

using namespace cria;

TEST_CASE("every tensor's name is built from its kind, and names are unique") {
  CHECK(tensor_name(TensorKind::kAttnQkv, 3, true) == "blk.3.attn_qkv.bias");
  CHECK(tensor_name(TensorKind::kTokEmbd, -1, false) == "tok_embd.weight");
  CHECK(tensor_name(TensorKind::kFfnGateUp, 0, false) == "blk.0.ffn_gate_up.weight");
  std::set<std::string> kind_names;
  for (int k = 0; k < kNumTensorKinds; ++k) kind_names.insert(tensor_kind_name((TensorKind)k));
  CHECK(kind_names.size() == (size_t)kNumTensorKinds);
  for (Arch arch : {Arch::kLlama, Arch::kFalcon}) {
    const ModelConfig c = test::tiny_meta(arch).config;
    std::set<std::string> names;
    std::set<int> kinds;
    for (const TensorSpec& s : tensor_specs(c)) {
      CHECK(s.name == tensor_name(s.kind, tensor_kind_in_block(s.kind) ? s.layer : -1, s.bias));
      CHECK((s.layer >= 0) == tensor_kind_in_block(s.kind));
      names.insert(s.name);
      kinds.insert((int)s.kind);
    }
    CHECK(names.size() == tensor_specs(c).size());
    // Llama (SwiGLU, untied): all but ffn_up; Falcon (GELU, tied): all but
    // ffn_gate_up and output.
    CHECK(kinds.size() == (arch == Arch::kLlama ? 9u : 8u));
  }
}

TEST_CASE("ALiBi slopes: the closed form, the non-power-of-two interleave and bf16 rounding") {
  // 8 heads: 2^-1 .. 2^-8, exact in f32 and bf16.
  const std::vector<float> s8 = alibi_slopes(8);
  REQUIRE(s8.size() == 8);
  for (int i = 0; i < 8; ++i) CHECK(s8[i] == std::ldexp(1.0f, -(i + 1)));
  CHECK(alibi_slopes_bf16(8) == s8);
  // 12 heads: the 8 above, then 2^(-0.5 p) for odd p of the 16-head sequence.
  const std::vector<float> s12 = alibi_slopes(12), b12 = alibi_slopes_bf16(12);
  REQUIRE(s12.size() == 12);
  REQUIRE(b12.size() == 12);
  for (int i = 0; i < 8; ++i) CHECK(s12[i] == s8[i]);
  for (int j = 0; j < 4; ++j) {
    const float want = (float)std::pow(2.0, -0.5 * (2 * j + 1));
    CHECK(s12[8 + j] == want);
    CHECK(b12[8 + j] == bf16_to_f32(f32_to_bf16(want)));
  }
  // 2^-0.5 has more than bf16's 8 significant bits: the rounding is visible.
  CHECK(b12[8] != s12[8]);
}

TEST_CASE("Llama 3.1 RoPE scaling: the importer's inverse recovers the original context") {
  ModelConfig c = test::tiny_meta().config;
  c.head_dim = 128;
  RopeScaling r;
  r.kind = RopeScalingKind::kLlama3;
  r.factor = 8.0f;
  r.low_freq_factor = 1.0f;
  r.high_freq_factor = 4.0f;
  r.original_max_position_embeddings = 8192;
  const double pi = 3.14159265358979323846;
  int mixed = 0;
  for (uint32_t i = 0; i < c.head_dim / 2; ++i) {
    const double f = rope_base_inv_freq<double>(c, i);
    const double divisor = f / llama3_scaled_inv_freq(f, r);
    if (divisor <= 1.0 + 1e-9 || divisor >= r.factor - 1e-9) continue;  // outside the smooth band
    ++mixed;
    CHECK(llama3_original_context<double>(2 * pi / f, divisor, r) == doctest::Approx(8192.0).epsilon(1e-9));
  }
  CHECK(mixed > 0);  // theta 500000, head_dim 128 has frequencies in the band
}
