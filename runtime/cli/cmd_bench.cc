// cria bench -m FILE [-p N] [-n N] [-d N] [-t THREADS] [-r REPS] [--json]
// Prefill of an N-token prompt and decode of N tokens, repeated; prints a
// table, or one JSON object. With --depth, both are measured after that many
// tokens already sit in the cache (what llama-bench's -d measures).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "runtime/cli/args.h"
#include "runtime/cli/commands.h"
#include "runtime/cli/common.h"
#include "runtime/cli/term.h"

namespace cria::cli {

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

}  // namespace

int cmd_bench(int argc, char** argv) {
  std::string model_path;
  int64_t n_prompt = 512, n_gen = 128, depth = 0, threads = 0, reps = 3;
  bool json = false;
  ModelFlags mf;
  std::string kv;
  Args a("bench", "-m FILE [-p N] [-n N] [-d N] [-t THREADS] [-r REPS] [--json]");
  a.str("--model", &model_path, "FILE", "model file (.cria)");
  a.alias("-m", "--model");
  a.i64("--prompt-tokens", &n_prompt, "N", "prompt length for the prefill measurement (default 512)");
  a.alias("-p", "--prompt-tokens");
  a.i64("--gen-tokens", &n_gen, "N", "tokens decoded (default 128)");
  a.alias("-n", "--gen-tokens");
  a.i64("--depth", &depth, "N", "tokens already in the cache before the prefill and decode measured (default 0)");
  a.alias("-d", "--depth");
  add_model_flags(a, &mf);
  a.str("--kv", &kv, "TYPE", kKvHelp);
  a.i64("--threads", &threads, "N", "threads (default: all cores)");
  a.alias("-t", "--threads");
  a.i64("--reps", &reps, "N", "repetitions (default 3); medians are reported");
  a.alias("-r", "--reps");
  a.flag("--json", &json, "print one JSON object");
  if (!a.parse(argc, argv)) return usage_error(a.error(), a.usage());
  if (a.help_requested()) {
    std::fputs(a.usage().c_str(), stdout);
    return 0;
  }
  if (model_path.empty()) return usage_error("missing -m FILE", a.usage());
  std::string err;
  if (a.given("--threads") && !check_threads(threads, &err)) return usage_error(err, a.usage());
  if (n_prompt < 1 || n_gen < 1 || reps < 1) return usage_error("-p, -n and -r must be positive", a.usage());
  if (depth < 0) return usage_error("-d must not be negative", a.usage());
  double load_s = 0;
  if (std::string e; !set_vk_device(mf.device, &e)) return usage_error(e, a.usage());
  ModelPtr m_owner = load_model(model_path, mf, &load_s);
  if (!m_owner) return 1;
  cria_model* m = m_owner.get();
  // Lavapipe (Mesa's Vulkan on the CPU) is how machines without a GPU test
  // the Vulkan backend: its numbers are CPU numbers.
  if (placement_text(m).find("(cpu device)") != std::string::npos)
    std::fprintf(stderr, "cria bench: note: the Vulkan device is a CPU implementation (lavapipe?): these are CPU "
                         "figures, not a GPU's\n");
  cria_model_info info;
  cria_model_get_info(m, &info);
  int64_t n_ctx = depth + n_prompt + n_gen + 1;
  if (depth == 0) n_ctx = std::min<int64_t>(n_ctx, info.context_length);
  if (n_ctx > info.context_length)
    return fail(model_path + ": -d + -p + -n need " + std::to_string(n_ctx) + " cache rows, past the model's context of " +
                std::to_string(info.context_length));
  SessionPtr s_owner = open_session(m, n_ctx, threads, 1, std::min<int64_t>(std::max(n_prompt, depth), 512), kv);
  if (!s_owner) return 1;
  cria_session* s = s_owner.get();
  // A pseudo-random prompt of ordinary (non-special) ids, different in every
  // repetition: a session reuses the cache rows of a prompt prefix it saw
  // in the previous call, which would flatter prefill.
  // With --depth the prompt is the context followed by the measured tokens.
  std::vector<int32_t> prompt(depth + n_prompt);
  auto fill_prompt = [&](int64_t rep) {
    uint64_t x = 12345 + 7919 * (uint64_t)rep;
    for (int32_t& t : prompt) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      t = (int32_t)((x >> 33) % (uint64_t)std::max(1, std::min(info.vocab_size, 32000) - 256)) + 256;
    }
  };
  const int32_t never = -1;  // decode all n tokens: no EOS
  std::vector<double> pp, tg, ttft, dp;
  // The pool's runs during the measured calls, and how many of them went
  // solo because another process held a core (the speed alone hides it).
  uint64_t pool_runs = 0, pool_solo = 0;
  int rc = 0;
  auto generate = [&](int64_t n_ids, int64_t max_new, cria_generate_result* res) {
    cria_generate_params p;
    cria_generate_params_init(nullptr, &p);
    p.prompt_ids = prompt.data();
    p.n_prompt_ids = (size_t)n_ids;
    p.max_new_tokens = (int32_t)max_new;
    p.eos_ids = &never;
    p.n_eos_ids = 1;
    *res = cria_generate_result{};
    return cria_generate(s, &p, nullptr, nullptr, res) == CRIA_OK;
  };
  for (int64_t r = 0; r < reps; ++r) {
    fill_prompt(r);
    cria_generate_result res{};
    if (depth > 0) {
      // Fill the cache with the context (one new token: its row is never
      // written), then the measured call reuses exactly those rows.
      if (!generate(depth, 1, &res)) {
        rc = api_fail();
        break;
      }
      dp.push_back(res.prefill_seconds > 0 ? (res.prompt_tokens - res.reused_prompt_tokens) / res.prefill_seconds : 0);
    }
    uint64_t runs0, solo0, runs1, solo1;
    cria_session_pool_runs(s, &runs0, &solo0);
    if (!generate(depth + n_prompt, n_gen, &res)) {
      rc = api_fail();
      break;
    }
    cria_session_pool_runs(s, &runs1, &solo1);
    pool_runs += runs1 - runs0;
    pool_solo += solo1 - solo0;
    // A session reuses the cache rows of a prefix it saw in the previous
    // call; only the context's may be reused, or prefill would be flattered.
    if (res.reused_prompt_tokens != depth) {
      rc = fail("internal: benchmark prompt reused " + std::to_string(res.reused_prompt_tokens) +
                " cached rows, expected " + std::to_string(depth));
      break;
    }
    pp.push_back(res.prefill_seconds > 0 ? (res.prompt_tokens - depth) / res.prefill_seconds : 0);
    // The first token comes out of the prefill; decode covers the rest.
    tg.push_back(res.decode_seconds > 0 ? (res.generated_tokens - 1) / res.decode_seconds : 0);
    ttft.push_back(res.time_to_first_token);
  }
  if (rc == 0) {
    // Where the weights were read from decides decode speed (--weights).
    const std::string table = placement_text(m), row = "  weights     ";
    const size_t at = table.find(row);
    const std::string weights =
        at == std::string::npos ? "" : table.substr(at + row.size(), table.find('\n', at) - at - row.size());
    const long long rss = peak_rss_bytes();
    const int32_t nth = cria_session_threads(s);
    if (json) {
      std::printf("{\"model\": \"%s\", \"backend\": \"%s\", \"threads\": %d, \"prompt_tokens\": %lld, \"gen_tokens\": %lld, \"reps\": %lld, "
                  "\"depth\": %lld, \"depth_prefill_tok_s\": %.3f, "
                  "\"prefill_tok_s\": %.3f, \"decode_tok_s\": %.3f, \"ttft_s\": %.4f, \"load_s\": %.4f, "
                  "\"peak_rss_bytes\": %lld, \"file_size\": %llu, \"bits_per_weight\": %.3f, \"weights\": \"%s\", "
                  "\"pool_runs\": %llu, \"pool_solo_runs\": %llu}\n",
                  model_path.c_str(), mf.backend.c_str(), nth, (long long)n_prompt, (long long)n_gen, (long long)reps, (long long)depth, median(dp), median(pp), median(tg),
                  median(ttft), load_s, rss, (unsigned long long)info.file_size, info.bits_per_weight, weights.c_str(),
                  (unsigned long long)pool_runs, (unsigned long long)pool_solo);
    } else {
      const std::string at = depth > 0 ? " @ d" + std::to_string(depth) : "";
      std::printf("| model | threads | prefill tok/s (pp%lld%s) | decode tok/s (tg%lld%s) | time to first token | load | peak RSS |\n",
                  (long long)n_prompt, at.c_str(), (long long)n_gen, at.c_str());
      std::printf("|---|---|---|---|---|---|---|\n");
      std::printf("| %s | %d | %.2f | %.2f | %.3f s | %.3f s | %s |\n", model_path.c_str(), nth, median(pp), median(tg),
                  median(ttft), load_s, human_bytes((double)rss).c_str());
      if (!weights.empty()) std::printf("weights: %s\n", weights.c_str());
      if (pool_solo > 0)
        std::printf("threads: %.0f%% of the %llu parallel runs went to one thread: another process held a core "
                    "(CRIA_ADAPTIVE_THREADS=0 keeps spreading)\n",
                    100.0 * (double)pool_solo / (double)pool_runs, (unsigned long long)pool_runs);
    }
  }
  return rc;
}

}  // namespace cria::cli
