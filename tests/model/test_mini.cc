// The trained miniatures (examples/models/), converted by `cria convert`,
// against the PyTorch reference's greedy tokens and held-out perplexity
// (tests/reference/fixtures/mini-*.json, tests/reference/gen_mini_fixtures.py).
//   f32 weights (f32 KV cache): the same 32 greedy tokens for every prompt
//     (the smallest top-1/top-2 margin, 0.006-0.012, is far above f32's
//     ~1e-5 error), and held-out perplexity within 0.1% of the reference's.
//   Quantized weights: greedy tokens must agree with the reference up to the
//     first step whose f32 margin is below twice the quantized model's
//     largest logit error on the prompt (measured in the same run): before
//     that step no error of that size can change the argmax, after it the
//     trajectories may part legitimately. The agreement and perplexity are
//     reported; the bars (q8 perplexity <= +0.5%, q4 g32 <= +5%)
//     are checked.
//   KV cache types (q8 weights): held-out perplexity with a q8 cache within
//     0.5% of the f16 cache's, q4 within 3%.
#include <doctest/doctest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "tests/model/golden.h"

using namespace cria;
using namespace cria::test;

namespace {

const std::string kData = std::string(CRIA_BINARY_DIR) + "/testdata/mini/";

struct MiniPrompt {
  std::vector<int32_t> ids, greedy;
};

struct MiniFixture {
  std::string model;
  std::vector<MiniPrompt> prompts;
  double ppl = 0;
  int64_t n_ctx = 0;
};

MiniFixture load_mini(const std::string& name) {
  std::ifstream js(fixture_dir() + name + ".json");
  REQUIRE(js.good());
  const nlohmann::json j = nlohmann::json::parse(js);
  MiniFixture f;
  f.model = j["model"].get<std::string>();
  for (const auto& p : j["prompts"])
    f.prompts.push_back({p["ids"].get<std::vector<int32_t>>(), p["greedy_ids"].get<std::vector<int32_t>>()});
  f.ppl = j["perplexity"]["ppl"].get<double>();
  f.n_ctx = j["perplexity"]["n_ctx"].get<int64_t>();
  return f;
}

int agree(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  int n = 0;
  while (n < (int)a.size() && n < (int)b.size() && a[n] == b[n]) ++n;
  return n;
}

// `cria perplexity` on the held-out text: its last line is "perplexity: X".
double cli_perplexity(const std::string& model_file, const std::string& text, int64_t ctx, const std::string& kv = "f16") {
  const std::string cmd = std::string(CRIA_CLI) + " perplexity -m " + model_file + " --file " + text + " --ctx " +
                          std::to_string(ctx) + " --kv " + kv + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p);
  char line[512];
  double ppl = -1;
  while (fgets(line, sizeof line, p)) std::sscanf(line, "perplexity: %lf", &ppl);
  REQUIRE(pclose(p) == 0);
  return ppl;
}

}  // namespace

TEST_CASE("miniatures: greedy tokens and held-out perplexity against PyTorch") {
  for (const char* fx_name : {"mini-llama", "mini-falcon"}) {
    const MiniFixture fx = load_mini(fx_name);
    const std::string dir = kData + fx.model + "/";
    struct Q {
      const char* file;
      int must_agree;  // leading greedy tokens that must match
    };
    // The f32 model's margins along the reference trajectory.
    std::vector<std::vector<float>> margins;
    std::vector<std::vector<float>> f32_logits;
    for (const MiniPrompt& p : fx.prompts) {
      Runner r(dir + "f32.cria", kernels::best_table(), 2, 64, kernels::KvType::kF32);
      std::vector<float> m, all;
      r.greedy(p.ids, (int)p.greedy.size(), &all, &m);
      margins.push_back(m);
      f32_logits.push_back(all);
    }
    for (const Q q : {Q{"f32", 32}, Q{"f16", 0}, Q{"q8", 0}, Q{"q4", 0}, Q{"q4g128", 0}}) {
      int total = 0, worst = 32, required_total = 0;
      for (size_t pi = 0; pi < fx.prompts.size(); ++pi) {
        const MiniPrompt& p = fx.prompts[pi];
        Runner r(dir + q.file + ".cria", kernels::best_table(), 2, 64, std::string(q.file) == "f32" ? kernels::KvType::kF32 : kernels::KvType::kF16);
        std::vector<float> all;
        const int a = agree(r.greedy(p.ids, (int)p.greedy.size(), &all), p.greedy);
        const double err = max_diff(all, f32_logits[pi]);
        int required = q.must_agree;
        if (!required) {
          while (required < (int)margins[pi].size() && margins[pi][required] > 2 * err) ++required;
        }
        total += a;
        required_total += required;
        worst = std::min(worst, a);
        CAPTURE(fx.model);
        CAPTURE(q.file);
        CAPTURE(err);
        CHECK(a >= required);
      }
      const double ppl = cli_perplexity(dir + q.file + ".cria", dir + "corpus/" + fx.model + "/heldout.txt", fx.n_ctx);
      MESSAGE(fx.model << " " << std::string(q.file) << ": greedy agreement " << total << "/"
                       << 32 * fx.prompts.size() << " tokens (worst prompt " << worst << "/32; required "
                       << required_total << "); held-out perplexity " << ppl << " (PyTorch f32 " << fx.ppl << ", "
                       << 100.0 * (ppl / fx.ppl - 1) << "%)");
      const std::string qn = q.file;
      if (qn == "f32") CHECK(std::fabs(ppl / fx.ppl - 1) <= 1e-3);
      if (qn == "q8") {
        CHECK(ppl / fx.ppl - 1 <= 0.005);
        // KV cache types on the same weights (issue #18's bars: q8 within
        // 0.5% of f16, q4 within 3%; measured +0.002% / -0.009% and
        // +0.5% / +0.9% on the Llama / Falcon miniatures).
        for (const char* kv : {"q8", "q4"}) {
          const double p_kv = cli_perplexity(dir + "q8.cria", dir + "corpus/" + fx.model + "/heldout.txt", fx.n_ctx, kv);
          MESSAGE(fx.model << " q8 weights, " << std::string(kv) << " KV cache: perplexity " << p_kv << " ("
                           << 100.0 * (p_kv / ppl - 1) << "% against the f16 cache)");
          CHECK(std::fabs(p_kv / ppl - 1) <= (std::string(kv) == "q8" ? 0.005 : 0.03));
          CHECK(p_kv != ppl);  // the option took effect (int8/int4 rows cannot round like f16's)
        }
      }
      if (qn == "q4") CHECK(ppl / fx.ppl - 1 <= 0.05);
    }
  }
}
