// Shared by the whole-model tests (tests/model, tests/arm64): golden fixtures
// from tests/reference (PyTorch logits of the Hugging Face modeling code) and
// a Runner that feeds prompts through the transformer loop on a chosen
// kernel table.
#pragma once

#include <dirent.h>

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

namespace cria::test {

inline const std::string& fixture_dir() {
  static const std::string d = std::string(CRIA_SOURCE_DIR) + "/tests/reference/fixtures/";
  return d;
}

struct Fixture {
  std::string name;
  std::vector<int32_t> prompt, greedy;
  std::vector<float> logits;  // [positions, vocab]
  int64_t vocab = 0;
  double max_abs = 0;
};

inline std::vector<std::string> fixture_names(const char* prefix) {
  std::vector<std::string> out;
  DIR* d = opendir(fixture_dir().c_str());
  REQUIRE(d);
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n.rfind(prefix, 0) == 0 && n.size() > 5 && n.substr(n.size() - 5) == ".json") out.push_back(n.substr(0, n.size() - 5));
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

inline Fixture load_fixture(const std::string& name) {
  Fixture f;
  f.name = name;
  std::ifstream js(fixture_dir() + name + ".json");
  REQUIRE(js.good());
  const nlohmann::json j = nlohmann::json::parse(js);
  f.prompt = j["prompt_ids"].get<std::vector<int32_t>>();
  f.greedy = j["greedy_ids"].get<std::vector<int32_t>>();
  f.vocab = j["logits_shape"][1].get<int64_t>();
  f.max_abs = j["max_abs_logit"].get<double>();
  std::ifstream lf(fixture_dir() + j["logits_file"].get<std::string>(), std::ios::binary);
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

  // `backend` places the linear layers (the cpu kernels are the table's).
  Runner(const std::string& path, const kernels::KernelTable& table, int threads, int64_t batch, kernels::KvType kv,
         const std::string& backend = "cpu")
      : k(&table) {
    ModelOptions opt;
    opt.backend = backend;
    auto m = Model::load(path, opt);
    REQUIRE_MESSAGE(m.ok(), m.status().message());
    model = std::move(m).value();
    pool = std::make_unique<kernels::ThreadPool>(threads);
    REQUIRE(cache.init(model->config(), 1, 128, kv).ok());
    scratch.init(*model, batch, threads);
  }

  // Logits at every prompt position, the prompt fed in chunks of `chunk`
  // tokens (1: the decode path, one token per forward call).
  std::vector<float> prompt_logits(const std::vector<int32_t>& ids, int64_t chunk) {
    const int64_t v = model->config().vocab_size, n = (int64_t)ids.size();
    std::vector<float> out((size_t)(n * v), NAN);
    std::vector<BatchEntry> b;
    for (int64_t i0 = 0; i0 < n; i0 += chunk) {
      b.clear();
      for (int64_t i = i0; i < std::min(n, i0 + chunk); ++i) b.push_back({ids[i], (int32_t)i, 0, true});
      REQUIRE(forward(*model, *k, *pool, cache, scratch, b.data(), (int64_t)b.size(), out.data() + i0 * v).ok());
    }
    return out;
  }

  // The prompt's logits (one batch) into `all` if given, then a greedy
  // continuation, one token per forward call.
  // margins (if given) receives, per step, the top-1 minus top-2 logit.
  std::vector<int32_t> greedy(const std::vector<int32_t>& ids, int steps, std::vector<float>* all = nullptr,
                              std::vector<float>* margins = nullptr) {
    const int64_t v = model->config().vocab_size;
    std::vector<float> prompt = prompt_logits(ids, (int64_t)ids.size());
    std::vector<float> row(prompt.end() - v, prompt.end());
    if (all) *all = std::move(prompt);
    std::vector<int32_t> out;
    for (int s = 0; s < steps; ++s) {
      const int32_t best = (int32_t)(std::max_element(row.begin(), row.end()) - row.begin());
      out.push_back(best);
      if (margins) {
        float second = -INFINITY;
        for (size_t i = 0; i < row.size(); ++i)
          if ((int32_t)i != best) second = std::max(second, row[i]);
        margins->push_back(row[best] - second);
      }
      BatchEntry e{best, (int32_t)(ids.size() + s), 0, true};
      REQUIRE(forward(*model, *k, *pool, cache, scratch, &e, 1, row.data()).ok());
    }
    return out;
  }
};

// How many leading tokens two sequences share.
inline int agreeing_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  int n = 0;
  while (n < (int)a.size() && n < (int)b.size() && a[n] == b[n]) ++n;
  return n;
}

// Perplexity of the prompt under its own logits (row i predicts token i + 1).
inline double prompt_perplexity(const std::vector<float>& logits, const std::vector<int32_t>& prompt, int64_t vocab) {
  double nll = 0;
  for (size_t i = 0; i + 1 < prompt.size(); ++i) {
    const float* l = logits.data() + i * vocab;
    const double mx = *std::max_element(l, l + vocab);
    double sum = 0;
    for (int64_t v = 0; v < vocab; ++v) sum += std::exp((double)l[v] - mx);
    nll -= (double)l[prompt[i + 1]] - mx - std::log(sum);
  }
  return std::exp(nll / (double)(prompt.size() - 1));
}

inline double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, (double)std::fabs(a[i] - b[i]));
  return worst;
}

inline double cosine(const float* a, const float* b, int64_t n) {
  double ab = 0, aa = 0, bb = 0;
  for (int64_t i = 0; i < n; ++i) {
    ab += (double)a[i] * b[i];
    aa += (double)a[i] * a[i];
    bb += (double)b[i] * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

inline double min_cosine(const std::vector<float>& a, const std::vector<float>& b, int64_t vocab) {
  double worst = 1;
  for (size_t t = 0; t * vocab < a.size(); ++t) worst = std::min(worst, cosine(a.data() + t * vocab, b.data() + t * vocab, vocab));
  return worst;
}

inline std::vector<const kernels::KernelTable*> simd_tables() {
  std::vector<const kernels::KernelTable*> out;
  for (const kernels::KernelTable* t : kernels::available_tables())
    if (t->isa != kernels::Isa::kScalar) out.push_back(t);
  return out;
}

}  // namespace cria::test
