// Whole models on the ARM64 kernel tables, sized for an emulated run (the
// full golden suite in tests/model takes minutes natively, hours under qemu).
// Two golden fixtures cover both families: ref-llama31-scaled (GQA, RoPE with
// Llama 3.1 scaling, SwiGLU, RMSNorm) and ref-falcon-7b (multi-query, parallel
// attention, GELU, LayerNorm). On every SIMD table the (emulated) CPU offers:
//   f32 weights, f32 KV cache: the golden suite's bar against PyTorch (max
//     |logit - ref| <= 1e-3 x max |ref logit|) and the same greedy tokens.
//   q8 and q4 weights, f16 KV cache, the first kQuantPositions prompt
//     positions in one batch (prefill) and token by token (decode), against
//     the scalar table on the same file. The tables compute the same integer
//     dot products, but a last-bit difference upstream can flip the rounding
//     of an int8 activation, and these fixtures' sharp attention amplifies
//     that, so the f32 bar does not apply (x86's AVX2/AVX-512 tables differ
//     from scalar by as much as NEON does: 0.005-0.05). Each flip is one
//     activation step, a small part of the quantization error, which adds up
//     every weight's and activation's rounding: bar = 0.5 x the scalar
//     table's own max |logit - PyTorch f32 logit| (measured: NEON <= 0.06,
//     x86 AVX-512 up to 0.33). A wrong row, nibble or scale gives errors the
//     size of the quantization error or the logits themselves.
// One thread: emulated threads add time, not coverage (test_engine covers
// the pool). The models come from prepare_models.py (a ctest fixture), made
// by the cria binary under test.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "tests/model/golden.h"

using namespace cria;
using namespace cria::test;

namespace {

const std::string kModels = CRIA_ARM_MODELS;
const char* const kNames[] = {"ref-llama31-scaled", "ref-falcon-7b"};
constexpr size_t kQuantPositions = 24;

}  // namespace

TEST_CASE("kernel tables on this CPU") {
  std::string names;
  for (const kernels::KernelTable* t : kernels::available_tables())
    names += std::string(kernels::isa_name(t->isa)) + " ";
  MESSAGE("kernel tables: " << names);
  CHECK(!simd_tables().empty());
}

TEST_CASE("f32 weights: logits and greedy tokens match the PyTorch reference") {
  for (const char* name : kNames) {
    const Fixture fx = load_fixture(name);
    for (const kernels::KernelTable* t : simd_tables()) {
      const std::string model = name, isa = kernels::isa_name(t->isa);
      CAPTURE(model);
      CAPTURE(isa);
      Runner r(kModels + "/" + name + "/f32.cria", *t, 1, 64, kernels::KvType::kF32);
      REQUIRE(r.model->config().vocab_size == fx.vocab);
      std::vector<float> logits;
      const std::vector<int32_t> tokens = r.greedy(fx.prompt, (int)fx.greedy.size(), &logits);
      const double worst = max_diff(logits, fx.logits);
      MESSAGE(model << " [" << isa << "] f32: max |dlogit| = " << worst << " (bar " << 1e-3 * fx.max_abs << ")");
      CHECK(worst <= 1e-3 * fx.max_abs);
      CHECK(tokens == fx.greedy);
    }
  }
}

TEST_CASE("q8 and q4 weights: the SIMD tables agree with the scalar table") {
  for (const char* name : kNames) {
    const Fixture fx = load_fixture(name);
    const std::vector<int32_t> prompt(fx.prompt.begin(), fx.prompt.begin() + kQuantPositions);
    const std::vector<float> golden(fx.logits.begin(), fx.logits.begin() + (int64_t)kQuantPositions * fx.vocab);
    for (const char* q : {"q8", "q4"}) {
      const std::string path = kModels + "/" + name + "/" + q + ".cria", model = name, quant = q;
      Runner ref(path, kernels::scalar_table(), 1, 64, kernels::KvType::kF16);
      const std::vector<float> want = ref.prompt_logits(prompt, (int64_t)prompt.size());
      const double qerr = max_diff(want, golden);
      for (const kernels::KernelTable* t : simd_tables()) {
        const std::string isa = kernels::isa_name(t->isa);
        CAPTURE(model);
        CAPTURE(quant);
        CAPTURE(isa);
        Runner r(path, *t, 1, 64, kernels::KvType::kF16);
        const double batch = max_diff(r.prompt_logits(prompt, (int64_t)prompt.size()), want);
        Runner r1(path, *t, 1, 64, kernels::KvType::kF16);
        const double steps = max_diff(r1.prompt_logits(prompt, 1), want);
        MESSAGE(model << " " << quant << " [" << isa << "] vs scalar: max |dlogit| = " << batch << " (one batch), "
                      << steps << " (token by token); scalar vs PyTorch f32: " << qerr << "; bar " << 0.5 * qerr);
        CHECK(batch <= 0.5 * qerr);
        CHECK(steps <= 0.5 * qerr);
      }
    }
  }
}

TEST_CASE("xnnpack on ARM64: f32 matches PyTorch and cpu; f16 runs XNNPACK's native FP16 path where the CPU has it") {
  // f32: the same bars as the cpu tables (XNNPACK sums in f32). f16: where
  // the CPU has ARMv8.2 FP16 arithmetic (qemu's `max`), XNNPACK's f16
  // operator sums in f16 (K x 2^-11 per dot product, tests/backends), so
  // greedy tokens on these sharp fixtures are reported, not required; the
  // bars are the prompt's perplexity within 1% of cpu's on the same file and
  // max |logit - PyTorch f32| <= 5% of max |logit| (measured on x86, where
  // XNNPACK rounds to f16 the same way: 0.2% and 0.4-1%). A wrong layout or
  // scale moves logits by their own size. Without FP16 arithmetic
  // (Cortex-A53) XNNPACK has no f16 operator and the layers stay on cpu.
  auto xnn = backends::create_backend("xnnpack");
  REQUIRE_MESSAGE(xnn.ok(), xnn.status().message());
  const bool native_f16 = (*xnn)->supports_linear(QType::kF16);
  const std::string has_f16 = native_f16 ? "yes" : "no";
  MESSAGE("xnnpack f16 operator on this CPU: " << has_f16);
  const kernels::KernelTable& table = kernels::best_table();
  for (const char* name : kNames) {
    const Fixture fx = load_fixture(name);
    const std::string model = name;
    CAPTURE(model);
    {
      Runner r(kModels + "/" + name + "/f32.cria", table, 1, 64, kernels::KvType::kF32, "xnnpack");
      CHECK(std::string(r.model->placement().linear(0, LinearRole::kQkv).backend->name()) == "xnnpack");
      std::vector<float> logits;
      const std::vector<int32_t> tokens = r.greedy(fx.prompt, (int)fx.greedy.size(), &logits);
      const double worst = max_diff(logits, fx.logits);
      MESSAGE(model << " f32 [xnnpack]: max |dlogit| = " << worst << " (bar " << 1e-3 * fx.max_abs << ")");
      CHECK(worst <= 1e-3 * fx.max_abs);
      CHECK(tokens == fx.greedy);
    }
    const std::string f16 = kModels + "/" + name + "/f16.cria";
    Runner cpu(f16, table, 1, 64, kernels::KvType::kF32, "cpu");
    Runner r(f16, table, 1, 64, kernels::KvType::kF32, "xnnpack");
    const std::string placed = r.model->placement().linear(0, LinearRole::kQkv).backend->name();
    CHECK(placed == (native_f16 ? "xnnpack" : "cpu"));
    const std::vector<float> lc = cpu.prompt_logits(fx.prompt, 64), lx = r.prompt_logits(fx.prompt, 64);
    const double ppl_cpu = prompt_perplexity(lc, fx.prompt, fx.vocab), ppl = prompt_perplexity(lx, fx.prompt, fx.vocab);
    const double worst = max_diff(lx, fx.logits);
    const int agree = agreeing_prefix(r.greedy(fx.prompt, (int)fx.greedy.size()), cpu.greedy(fx.prompt, (int)fx.greedy.size()));
    MESSAGE(model << " f16 [" << placed << "]: max |dlogit| vs PyTorch = " << worst << " (" << worst / fx.max_abs
                  << " x max|logit|), perplexity " << ppl << " vs cpu " << ppl_cpu << ", greedy agrees for " << agree
                  << "/" << fx.greedy.size());
    CHECK(std::fabs(ppl - ppl_cpu) <= 0.01 * ppl_cpu);
    CHECK(worst <= 0.05 * fx.max_abs);
  }
}
