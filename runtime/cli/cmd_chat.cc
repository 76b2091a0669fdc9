// cria chat -m FILE [--system S]: an interactive conversation in the
// model's chat template. Ctrl-C stops the current answer; Ctrl-D exits.
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "runtime/cli/args.h"
#include "runtime/cli/commands.h"
#include "runtime/cli/common.h"
#include "runtime/cli/term.h"

namespace cria::cli {

namespace {

cria_session* g_chat_session = nullptr;
void on_chat_sigint(int) {
  if (g_chat_session) cria_session_cancel(g_chat_session);
}

int print_piece(void* user, int32_t, const char* text, size_t len, int32_t) {
  static_cast<std::string*>(user)->append(text, len);
  std::fwrite(text, 1, len, stdout);
  std::fflush(stdout);
  return 0;
}

}  // namespace

int cmd_chat(int argc, char** argv) {
  std::string model_path, system;
  int64_t threads = 0, ctx = 0, max_new = 512, seed = 0;
  double temperature = -1;
  bool greedy = false;
  ModelFlags mf;
  std::string kv;
  Args a("chat", "-m FILE [--system S]");
  a.str("--model", &model_path, "FILE", "model file (.cria)");
  a.alias("-m", "--model");
  a.str("--system", &system, "TEXT", "system message");
  add_model_flags(a, &mf);
  a.str("--kv", &kv, "TYPE", kKvHelp);
  a.i64("--threads", &threads, "N", "threads (default: all cores)");
  a.alias("-t", "--threads");
  a.i64("--ctx", &ctx, "N", "context length (default: the model's, at most 4096)");
  a.i64("--max-new-tokens", &max_new, "N", "longest answer in tokens (default 512)");
  a.f64("--temperature", &temperature, "T", "sampling temperature");
  a.i64("--seed", &seed, "S", "random seed");
  a.flag("--greedy", &greedy, "always take the most likely token");
  if (!a.parse(argc, argv)) return usage_error(a.error(), a.usage());
  if (a.help_requested()) {
    std::fputs(a.usage().c_str(), stdout);
    return 0;
  }
  if (model_path.empty()) return usage_error("missing -m FILE", a.usage());
  std::string err;
  if (a.given("--threads") && !check_threads(threads, &err)) return usage_error(err, a.usage());
  if (max_new < 1) return usage_error("--max-new-tokens must be at least 1", a.usage());
  if (std::string e; !set_vk_device(mf.device, &e)) return usage_error(e, a.usage());
  ModelPtr m_owner = load_model(model_path, mf);
  if (!m_owner) return 1;
  cria_model* m = m_owner.get();
  cria_model_info info;
  cria_model_get_info(m, &info);
  if (std::string(info.chat_template) == "none") {
    return fail(model_path + ": this model has no chat template (a base model); use cria run with a plain prompt");
  }
  SessionPtr s_owner = open_session(m, ctx, threads, 1, 0, kv);
  if (!s_owner) return 1;
  cria_session* s = s_owner.get();
  const bool tty = isatty(STDIN_FILENO);
  if (tty) std::fprintf(stderr, "cria chat: %s (%s). Ctrl-C stops an answer, Ctrl-D exits.\n", model_path.c_str(), info.chat_template);
  std::vector<std::string> roles, contents;
  if (!system.empty()) {
    roles.push_back("system");
    contents.push_back(system);
  }
  g_chat_session = s;
  std::signal(SIGINT, on_chat_sigint);
  std::string line;
  int rc = 0;
  uint64_t turn = 0;
  for (;;) {
    if (tty) std::fputs("> ", stdout);
    std::fflush(stdout);
    if (!std::getline(std::cin, line)) break;
    if (line.empty()) continue;
    roles.push_back("user");
    contents.push_back(line);
    cria_generate_params p;
    cria_generate_params_init(m, &p);
    p.max_new_tokens = (int32_t)max_new;
    if (greedy) p.do_sample = 0;
    if (temperature >= 0) {
      p.do_sample = 1;
      p.temperature = (float)temperature;
    }
    p.seed = (uint64_t)seed + turn++;
    std::string answer;
    cria_status st;
    cria_generate_result r{};
    for (;;) {
      std::vector<cria_message> msgs;
      for (size_t i = 0; i < roles.size(); ++i) msgs.push_back({roles[i].c_str(), contents[i].c_str()});
      p.messages = msgs.data();
      p.n_messages = msgs.size();
      answer.clear();
      st = cria_generate(s, &p, print_piece, &answer, &r);
      // A conversation that outgrew the context loses its oldest exchange.
      const size_t first_turn = system.empty() ? 0 : 1;
      if (st == CRIA_ERR_OUT_OF_RANGE && roles.size() > first_turn + 1) {
        roles.erase(roles.begin() + first_turn, roles.begin() + first_turn + 2);
        contents.erase(contents.begin() + first_turn, contents.begin() + first_turn + 2);
        std::fprintf(stderr, "(dropped the oldest exchange to fit the context)\n");
        continue;
      }
      break;
    }
    if (st != CRIA_OK) {
      rc = api_fail();
      roles.pop_back();
      contents.pop_back();
      continue;
    }
    std::fputs("\n", stdout);
    if (r.stop_reason == CRIA_STOP_CANCELLED) std::fprintf(stderr, "(stopped)\n");
    roles.push_back("assistant");
    contents.push_back(answer);
  }
  std::signal(SIGINT, SIG_DFL);
  g_chat_session = nullptr;
  return rc;
}

}  // namespace cria::cli
