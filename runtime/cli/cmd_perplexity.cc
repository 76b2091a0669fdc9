// cria perplexity -m FILE --file F [--ctx N] [--llama-cpp-compat]
//
// Default protocol: the file is tokenized once (special-token text
// recognised, BOS prepended once if the model adds one), cut into
// consecutive chunks of N tokens (a final chunk of 2+ tokens is kept), and
// every next-token prediction inside each chunk is scored.
//
// --llama-cpp-compat reproduces llama.cpp's llama-perplexity: special-token
// text is plain text; only whole chunks count; where the model adds BOS the
// first token of every chunk is overwritten by BOS; the predictions at
// positions N/2 .. N-2 of each chunk are scored.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "runtime/cli/args.h"
#include "runtime/cli/commands.h"
#include "runtime/cli/common.h"
#include "runtime/cli/term.h"

namespace cria::cli {

int cmd_perplexity(int argc, char** argv) {
  std::string model_path, file;
  int64_t ctx = 512, threads = 0;
  bool compat = false;
  ModelFlags mf;
  std::string kv;
  Args a("perplexity", "-m FILE --file F [--ctx N] [--llama-cpp-compat]");
  a.str("--model", &model_path, "FILE", "model file (.cria)");
  a.alias("-m", "--model");
  a.str("--file", &file, "FILE", "text to score");
  a.alias("-f", "--file");
  a.i64("--ctx", &ctx, "N", "tokens per chunk (default 512)");
  a.alias("-c", "--ctx");
  a.flag("--llama-cpp-compat", &compat, "llama.cpp's llama-perplexity protocol");
  add_model_flags(a, &mf);
  a.str("--kv", &kv, "TYPE", kKvHelp);
  a.i64("--threads", &threads, "N", "threads (default: all cores)");
  a.alias("-t", "--threads");
  if (!a.parse(argc, argv)) return usage_error(a.error(), a.usage());
  if (a.help_requested()) {
    std::fputs(a.usage().c_str(), stdout);
    return 0;
  }
  if (model_path.empty() || file.empty()) return usage_error("need -m FILE and --file F", a.usage());
  std::string err;
  if (a.given("--threads") && !check_threads(threads, &err)) return usage_error(err, a.usage());
  if (ctx < 4) return usage_error("--ctx must be at least 4", a.usage());
  std::string text;
  if (!read_file(file, &text)) return 1;
  if (std::string e; !set_vk_device(mf.device, &e)) return usage_error(e, a.usage());
  ModelPtr m_owner = load_model(model_path, mf);
  if (!m_owner) return 1;
  cria_model* m = m_owner.get();
  cria_model_info info;
  cria_model_get_info(m, &info);
  if (ctx > info.context_length) {
    return fail("--ctx " + std::to_string(ctx) + " exceeds the model's context of " + std::to_string(info.context_length));
  }
  size_t n = 0;
  std::vector<int32_t> ids(text.size() + 8);
  if (cria_tokenize(m, text.data(), text.size(), info.add_bos, compat ? 0 : 1, ids.data(), ids.size(), &n) != CRIA_OK) {
    return api_fail(file.c_str());
  }
  ids.resize(n);
  SessionPtr s_owner = open_session(m, ctx, threads, 1, 0, kv);
  if (!s_owner) return 1;
  cria_session* s = s_owner.get();
  double nll = 0;
  int64_t count = 0, chunk_no = 0;
  std::vector<double> lp(ctx);
  int rc = 0;
  Progress bar("perplexity");
  const int64_t total = (int64_t)ids.size();
  for (int64_t start = 0; start < total; start += ctx) {
    int64_t len = std::min<int64_t>(ctx, total - start);
    int64_t first = 0;
    std::vector<int32_t> chunk(ids.begin() + start, ids.begin() + start + len);
    if (compat) {
      if (len < ctx) break;  // llama.cpp drops the remainder
      if (info.add_bos) chunk[0] = info.bos_id;
      first = ctx / 2;
    } else if (len < 2) {
      break;
    }
    if (cria_score(s, chunk.data(), chunk.size(), (size_t)first, lp.data()) != CRIA_OK) {
      rc = api_fail();
      break;
    }
    for (int64_t i = 0; i < len - 1 - first; ++i) nll -= lp[i];
    count += len - 1 - first;
    ++chunk_no;
    bar.update((uint64_t)(start + len), (uint64_t)total, "ppl " + std::to_string(std::exp(nll / (double)count)));
    bar.line("[" + std::to_string(chunk_no) + "] " + std::to_string(std::exp(nll / (double)count)));
  }
  if (rc == 0) {
    bar.finish("");
    if (count == 0) {
      rc = fail(file + ": too short to score (" + std::to_string(total) + " tokens, chunks of " + std::to_string(ctx) + ")");
    } else {
      std::printf("chunks: %lld, tokens scored: %lld\n", (long long)chunk_no, (long long)count);
      std::printf("perplexity: %.6f\n", std::exp(nll / (double)count));
    }
  }
  return rc;
}

}  // namespace cria::cli
