// cria convert SRC -o OUT.cria [--quant f32|f16|q8|q4|keep] [--group 32|128]
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>

#include "formats/convert.h"
#include "runtime/cli/args.h"
#include "runtime/cli/commands.h"
#include "runtime/cli/term.h"

namespace cria::cli {

namespace {
std::atomic<bool> g_cancel{false};
void on_signal(int) { g_cancel.store(true); }
}  // namespace

int cmd_convert(int argc, char** argv) {
  std::string src, out, quant, chat;
  int64_t group = 32, threads = 2;
  bool no_search = false;
  Args a("convert", "SRC -o OUT.cria [options]\n  SRC is a Hugging Face checkpoint directory or a .gguf file.");
  a.positional("SRC", &src, true);
  a.str("--output", &out, "OUT", "output .cria file (required)");
  a.alias("-o", "--output");
  a.str("--quant", &quant, "TYPE", "f32 | f16 | q8 | q4 | keep (default: q4 for HF, keep for GGUF)");
  a.i64("--group", &group, "N", "q4 group size along K: 32 or 128 (default 32)");
  a.i64("--threads", &threads, "N", "quantization threads (default 2)");
  a.flag("--no-search", &no_search, "round-to-nearest scales instead of the error-minimising search");
  a.str("--chat-template", &chat, "KIND", "llama3 | falcon | none: the chat format (default: from the source)");
  if (!a.parse(argc, argv)) return usage_error(a.error(), a.usage());
  if (a.help_requested()) {
    std::fputs(a.usage().c_str(), stdout);
    return 0;
  }
  if (out.empty()) return usage_error("missing -o OUT.cria", a.usage());
  if (threads < 1 || threads > 256) return usage_error("--threads must be between 1 and 256", a.usage());
  if (group != 32 && group != 128) return usage_error("--group must be 32 or 128", a.usage());

  ConvertOptions opt;
  opt.recipe = quant;
  opt.group = (uint32_t)group;
  opt.threads = (int)threads;
  opt.search = !no_search;
  opt.chat_template = chat;
  opt.cancel = &g_cancel;
  Progress bar("convert");
  // Off a terminal (logs, CI) a plain line at every tenth of the bytes.
  int next_tenth = 1;
  opt.progress = [&](const ConvertProgress& p) {
    bar.update(p.bytes_done, p.bytes_total, p.tensor);
    if (p.tensor_done && p.bytes_total && p.bytes_done * 10 >= (uint64_t)next_tenth * p.bytes_total) {
      while (p.bytes_done * 10 >= (uint64_t)next_tenth * p.bytes_total) ++next_tenth;
      char buf[256];
      std::snprintf(buf, sizeof(buf), "%3d%% [%zu/%zu tensors] %s", (int)(100 * p.bytes_done / p.bytes_total),
                    p.index + 1, p.count, p.tensor.c_str());
      bar.line(buf);
    }
  };
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  const auto t0 = std::chrono::steady_clock::now();
  Status s = convert_model(src, out, opt);
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  if (!s.ok()) {
    bar.finish("");
    return fail(s.message());
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  char buf[512];
  std::snprintf(buf, sizeof(buf), "wrote %s in %.1f s", out.c_str(), secs);
  bar.finish(buf);
  return 0;
}

}  // namespace cria::cli
