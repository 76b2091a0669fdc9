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

#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/kernels/kernels.h"
#include "runtime/kernels/threadpool.h"
#include "runtime/model/model.h"
#include "runtime/model/transformer.h"

using namespace cria;

namespace {

const std::string kFixtures = std::string(CRIA_SOURCE_DIR) + "/tests/reference/fixtures/";
const std::string kModels = CRIA_ARM_MODELS;
const char* const kNames[] = {"ref-llama31-scaled", "ref-falcon-7b"};
constexpr size_t kQuantPositions = 24;

struct Fixture {
  std::vector<int32_t> prompt, greedy;
  std::vector<float> logits;  // [positions, vocab]
  int64_t vocab = 0;
  double max_abs = 0;
};

Fixture load_fixture(const std::string& name) {
  Fixture f;
  std::ifstream js(kFixtures + name + ".json");
  REQUIRE(js.good());
  const nlohmann::json j = nlohmann::json::parse(js);
  f.prompt = j["prompt_ids"].get<std::vector<int32_t>>();
  f.greedy = j["greedy_ids"].get<std::vector<int32_t>>();
  f.vocab = j["logits_shape"][1].get<int64_t>();
  f.max_abs = j["max_abs_logit"].get<double>();
  std::ifstream lf(kFixtures + j["logits_file"].get<std::string>(), std::ios::binary);
  f.logits.resize((size_t)(j["logits_shape"][0].get<int64_t>() * f.vocab));
  lf.read(reinterpret_cast<char*>(f.logits.data()), (std::streamsize)(f.logits.size() * 4));
  REQUIRE(lf.good());
  return f;
}

struct Runner {
  std::unique_ptr<Model> model;
  std::unique_ptr<kernels::ThreadPool> pool;
  KvCache cache;
  ForwardScratch scratch;
  const kernels::KernelTable* k;

  Runner(const std::string& path, const kernels::KernelTable& table, bool kv_f32) : k(&table) {
    auto m = Model::load(path);
    REQUIRE_MESSAGE(m.ok(), m.status().message());
    model = std::move(m).value();
    pool = std::make_unique<kernels::ThreadPool>(1);
    cache.init(model->config(), 1, 128, kv_f32);
    scratch.init(*model, 64, 1);
  }

  // Logits at every prompt position, the prompt in one batch.
  std::vector<float> prompt_logits(const std::vector<int32_t>& ids) {
    const int64_t v = model->config().vocab_size, n = (int64_t)ids.size();
    std::vector<float> out((size_t)(n * v), NAN);
    std::vector<BatchEntry> b;
    for (int64_t i = 0; i < n; ++i) b.push_back({ids[i], (int32_t)i, 0, true});
    forward(*model, *k, *pool, cache, scratch, b.data(), n, out.data());
    return out;
  }

  // Logits at every prompt position, one token per forward call (the decode path).
  std::vector<float> stepwise_logits(const std::vector<int32_t>& ids) {
    const int64_t v = model->config().vocab_size, n = (int64_t)ids.size();
    std::vector<float> out((size_t)(n * v), NAN);
    for (int64_t i = 0; i < n; ++i) {
      BatchEntry e{ids[i], (int32_t)i, 0, true};
      forward(*model, *k, *pool, cache, scratch, &e, 1, out.data() + i * v);
    }
    return out;
  }

  // The prompt's logits (one batch) into `all`, then a greedy continuation,
  // one token per forward call.
  std::vector<int32_t> greedy(const std::vector<int32_t>& ids, int steps, std::vector<float>* all) {
    const int64_t v = model->config().vocab_size;
    *all = prompt_logits(ids);
    std::vector<float> row(all->end() - v, all->end());
    std::vector<int32_t> out;
    for (int s = 0; s < steps; ++s) {
      const int32_t best = (int32_t)(std::max_element(row.begin(), row.end()) - row.begin());
      out.push_back(best);
      BatchEntry e{best, (int32_t)(ids.size() + s), 0, true};
      forward(*model, *k, *pool, cache, scratch, &e, 1, row.data());
    }
    return out;
  }
};

double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, (double)std::fabs(a[i] - b[i]));
  return worst;
}

std::vector<const kernels::KernelTable*> simd_tables() {
  std::vector<const kernels::KernelTable*> out;
  for (const kernels::KernelTable* t : kernels::available_tables())
    if (t->isa != kernels::Isa::kScalar) out.push_back(t);
  return out;
}

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
      Runner r(kModels + "/" + name + "/f32.cria", *t, /*kv_f32=*/true);
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
      Runner ref(path, kernels::scalar_table(), false);
      const std::vector<float> want = ref.prompt_logits(prompt);
      const double qerr = max_diff(want, golden);
      for (const kernels::KernelTable* t : simd_tables()) {
        const std::string isa = kernels::isa_name(t->isa);
        CAPTURE(model);
        CAPTURE(quant);
        CAPTURE(isa);
        Runner r(path, *t, false);
        const double batch = max_diff(r.prompt_logits(prompt), want);
        Runner r1(path, *t, false);
        const double steps = max_diff(r1.stepwise_logits(prompt), want);
        MESSAGE(model << " " << quant << " [" << isa << "] vs scalar: max |dlogit| = " << batch << " (one batch), "
                      << steps << " (token by token); scalar vs PyTorch f32: " << qerr << "; bar " << 0.5 * qerr);
        CHECK(batch <= 0.5 * qerr);
        CHECK(steps <= 0.5 * qerr);
      }
    }
  }
}
