// cria run -m FILE -p PROMPT [options]: streams a completion to stdout;
// load time, prefill and decode speed to stderr.
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "runtime/cli/args.h"
#include "runtime/cli/commands.h"
#include "runtime/cli/common.h"
#include "runtime/cli/term.h"

namespace cria::cli {

namespace {

cria_session* g_session = nullptr;
void on_sigint(int) {
  if (g_session) cria_session_cancel(g_session);
}

struct RunOutput {
  int32_t n_seq = 1;
  std::vector<std::string> texts;
};

int on_piece(void* user, int32_t seq, const char* text, size_t len, int32_t) {
  auto* o = static_cast<RunOutput*>(user);
  if (o->n_seq == 1) {
    std::fwrite(text, 1, len, stdout);
    std::fflush(stdout);
  } else {
    o->texts[seq].append(text, len);
  }
  return 0;
}

const char* stop_text(cria_stop_reason r) {
  switch (r) {
    case CRIA_STOP_EOS: return "end of sequence";
    case CRIA_STOP_MAX_TOKENS: return "max new tokens reached";
    case CRIA_STOP_STRING: return "stop string";
    case CRIA_STOP_CONTEXT_FULL: return "context full";
    case CRIA_STOP_CANCELLED: return "cancelled";
    case CRIA_STOP_CALLBACK: return "stopped";
    default: return "done";
  }
}

}  // namespace

int cmd_run(int argc, char** argv) {
  std::string model_path, prompt, prompt_file, prompts_file, system;
  int64_t max_new = 256, max_length = 0, top_k = -1, seed = 0, threads = 0, ctx = 0, nret = 1;
  double temperature = -1, top_p = -1, min_p = -1, repeat = -1;
  bool greedy = false, do_sample = false, chat = false, print_prompt = false, truncate = false, quiet = false;
  std::vector<std::string> eos_ids, stops;
  ModelFlags mf;
  std::string kv;
  bool verbose = false;
  Args a("run", "-m FILE -p PROMPT [options]");
  a.str("--model", &model_path, "FILE", "model file (.cria)");
  a.alias("-m", "--model");
  a.str("--prompt", &prompt, "TEXT", "prompt text");
  a.alias("-p", "--prompt");
  a.str("--file", &prompt_file, "FILE", "read the prompt from a file");
  a.str("--prompts-file", &prompts_file, "FILE", "a batch: one prompt per line, decoded together");
  a.i64("--max-new-tokens", &max_new, "N", "tokens to generate at most (default 256; -1: until EOS or context full)");
  a.alias("-n", "--max-new-tokens");
  a.i64("--max-length", &max_length, "N", "prompt + new tokens at most (transformers' max_length)");
  a.f64("--temperature", &temperature, "T", "sampling temperature (implies sampling)");
  a.i64("--top-k", &top_k, "K", "sample from the K most likely tokens (implies sampling)");
  a.f64("--top-p", &top_p, "P", "nucleus sampling mass (implies sampling)");
  a.f64("--min-p", &min_p, "P", "drop tokens below P x the top probability (implies sampling)");
  a.f64("--repeat-penalty", &repeat, "R", "repetition penalty (transformers semantics)");
  a.i64("--seed", &seed, "S", "random seed (same seed, same output)");
  a.flag("--greedy", &greedy, "always take the most likely token");
  a.flag("--do-sample", &do_sample, "sample (with the model's default settings unless given)");
  a.flag("--chat", &chat, "wrap the prompt in the model's chat template");
  a.str("--system", &system, "TEXT", "system message (with --chat)");
  add_model_flags(a, &mf);
  a.str("--kv", &kv, "TYPE", kKvHelp);
  a.i64("--threads", &threads, "N", "threads (default: all cores)");
  a.alias("-t", "--threads");
  a.i64("--ctx", &ctx, "N", "context length (default: the model's, at most 4096)");
  a.i64("--num-return-sequences", &nret, "N", "continuations of the prompt, decoded together");
  a.list("--eos-id", &eos_ids, "ID", "end-of-sequence token id (repeatable; replaces the model's)");
  a.list("--stop", &stops, "TEXT", "stop string (repeatable)");
  a.flag("--print-prompt", &print_prompt, "print the exact prompt text and exit");
  a.flag("--truncate", &truncate, "drop the oldest prompt tokens that do not fit the context");
  a.flag("--quiet", &quiet, "no statistics on stderr");
  a.flag("--verbose", &verbose, "print where each op runs (the placement) on stderr before generating");
  a.alias("-v", "--verbose");
  if (!a.parse(argc, argv)) return usage_error(a.error(), a.usage());
  if (a.help_requested()) {
    std::fputs(a.usage().c_str(), stdout);
    return 0;
  }
  if (model_path.empty()) return usage_error("missing -m FILE", a.usage());
  if (!prompt_file.empty() && !read_file(prompt_file, &prompt)) return 1;
  std::vector<std::string> batch;
  if (!prompts_file.empty()) {
    std::string text;
    if (!read_file(prompts_file, &text)) return 1;
    size_t start = 0;
    while (start < text.size()) {
      size_t nl = text.find('\n', start);
      if (nl == std::string::npos) nl = text.size();
      if (nl > start) batch.push_back(text.substr(start, nl - start));
      start = nl + 1;
    }
    if (batch.empty()) return fail(prompts_file + ": no prompts (one per line)");
    if (batch.size() > 64) return fail(prompts_file + ": at most 64 prompts per batch");
    if (nret != 1) return usage_error("--num-return-sequences and --prompts-file do not go together", a.usage());
  } else if (prompt.empty() && !a.given("--prompt") && prompt_file.empty()) {
    return usage_error("missing -p PROMPT", a.usage());
  }
  std::string err;
  if (a.given("--threads") && !check_threads(threads, &err)) return usage_error(err, a.usage());
  if (max_new == 0 || max_new < -1) return usage_error("--max-new-tokens must be at least 1 (or -1)", a.usage());
  if (nret < 1 || nret > 64) return usage_error("--num-return-sequences must be 1..64", a.usage());
  if (ctx < 0) return usage_error("--ctx must be positive", a.usage());
  if (!system.empty() && !chat) return usage_error("--system needs --chat", a.usage());

  double load_s = 0;
  if (std::string e; !set_vk_device(mf.device, &e)) return usage_error(e, a.usage());
  ModelPtr model_owner = load_model(model_path, mf, &load_s);
  if (!model_owner) return 1;
  cria_model* model = model_owner.get();
  if (verbose) std::fprintf(stderr, "cria: placement: %s", placement_text(model).c_str());
  cria_generate_params p;
  cria_generate_params_init(model, &p);
  p.prompt = prompt.c_str();
  std::vector<const char*> batch_ptrs;
  for (const std::string& b : batch) batch_ptrs.push_back(b.c_str());
  p.prompts = batch_ptrs.empty() ? nullptr : batch_ptrs.data();
  p.n_prompts = batch_ptrs.size();
  const int64_t n_out = batch.empty() ? nret : (int64_t)batch.size();
  p.use_chat_template = chat;
  p.system = system.empty() ? nullptr : system.c_str();
  p.truncate = truncate;
  p.max_new_tokens = (int32_t)max_new;
  p.max_length = (int32_t)max_length;
  p.num_return_sequences = (int32_t)nret;
  const bool sampling_given = temperature >= 0 || top_k >= 0 || top_p >= 0 || min_p >= 0;
  if (do_sample || sampling_given) p.do_sample = 1;
  if (greedy) p.do_sample = 0;
  if (temperature >= 0) p.temperature = (float)temperature;
  if (top_k >= 0) p.top_k = (int32_t)top_k;
  if (top_p >= 0) p.top_p = (float)top_p;
  if (min_p >= 0) p.min_p = (float)min_p;
  if (repeat >= 0) p.repetition_penalty = (float)repeat;
  p.seed = (uint64_t)seed;
  std::vector<int32_t> eos;
  for (const std::string& e : eos_ids) {
    char* end = nullptr;
    long v = std::strtol(e.c_str(), &end, 10);
    if (e.empty() || *end || v < 0) {
      return usage_error("--eos-id expects a token id, got '" + e + "'", a.usage());
    }
    eos.push_back((int32_t)v);
  }
  p.eos_ids = eos.empty() ? nullptr : eos.data();
  p.n_eos_ids = eos.size();
  std::vector<const char*> stop_ptrs;
  for (const std::string& s : stops) stop_ptrs.push_back(s.c_str());
  p.stop_strings = stop_ptrs.data();
  p.n_stop_strings = stop_ptrs.size();

  if (print_prompt) {
    size_t len = 0;
    if (cria_render_prompt(model, &p, nullptr, 0, &len) != CRIA_OK) {
      return api_fail();
    }
    std::string text(len, '\0');
    cria_render_prompt(model, &p, text.data(), text.size(), &len);
    std::fwrite(text.data(), 1, text.size(), stdout);
    return 0;
  }

  SessionPtr session_owner = open_session(model, ctx, threads, n_out, 0, kv);
  if (!session_owner) return 1;
  cria_session* session = session_owner.get();
  RunOutput out;
  out.n_seq = (int32_t)n_out;
  out.texts.resize(n_out);
  g_session = session;
  std::signal(SIGINT, on_sigint);
  cria_generate_result r{};
  cria_status st = cria_generate(session, &p, on_piece, &out, &r);
  std::signal(SIGINT, SIG_DFL);
  g_session = nullptr;
  int rc = 0;
  if (st != CRIA_OK) {
    rc = api_fail();
  } else {
    if (n_out == 1) {
      std::fputs("\n", stdout);
      std::fflush(stdout);
    } else {
      for (int64_t i = 0; i < n_out; ++i) std::printf("--- sequence %lld ---\n%s\n", (long long)i + 1, out.texts[i].c_str());
      std::fflush(stdout);
    }
    if (!quiet) {
      std::fprintf(stderr,
                   "cria: load %.2f s | prompt %d tokens in %.2f s (%.1f tok/s) | generated %d tokens in %.2f s "
                   "(%.1f tok/s) | first token after %.2f s | %s\n",
                   load_s, r.prompt_tokens, r.prefill_seconds,
                   r.prefill_seconds > 0 ? r.prompt_tokens / r.prefill_seconds : 0.0, r.generated_tokens,
                   r.decode_seconds, r.decode_seconds > 0 ? r.generated_tokens / r.decode_seconds : 0.0,
                   r.time_to_first_token, stop_text(r.stop_reason));
    }
    if (r.stop_reason == CRIA_STOP_CONTEXT_FULL)
      std::fprintf(stderr, "cria: stopped because the context (%d tokens) is full; use --ctx to allow more\n",
                   cria_session_n_ctx(session));
  }
  return rc;
}

}  // namespace cria::cli
