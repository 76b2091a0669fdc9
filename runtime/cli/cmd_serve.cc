// cria serve -m FILE [options]: the model behind a local HTTP server that
// speaks OpenAI's and Replicate's APIs (runtime/server/).
#include <pthread.h>

#include <csignal>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "runtime/cli/args.h"
#include "runtime/cli/commands.h"
#include "runtime/cli/common.h"
#ifdef CRIA_HAVE_SERVER
#include "runtime/server/server.h"
#endif

namespace cria::cli {

#ifndef CRIA_HAVE_SERVER
int cmd_serve(int, char**) {
  std::fprintf(stderr, "cria serve: this build has no HTTP server (cpp-httplib was not found at build time)\n");
  return 1;
}
#else
int cmd_serve(int argc, char** argv) {
  server::ServeOptions o;
  int64_t port = 8080, body_kib = 1024;
  std::string host = o.host;
  Args a("serve", "-m FILE [--host 127.0.0.1] [--port 8080] [--parallel N] [--ctx N] [--alias NAME]... [--api-key KEY]");
  a.str("--model", &o.model_path, "FILE", "model file (.cria)");
  a.alias("-m", "--model");
  a.str("--host", &host, "ADDR", "address to listen on (default 127.0.0.1; others need --api-key)");
  a.i64("--port", &port, "N", "port (default 8080; 0 picks a free one and prints it)");
  a.i64("--parallel", &o.parallel, "N", "requests decoded together in one batch (default 4)");
  a.alias("-np", "--parallel");
  a.i64("--ctx", &o.ctx, "N", "context length of each slot (default: the model's, at most 4096)");
  a.alias("-c", "--ctx");
  a.i64("--threads", &o.threads, "N", "compute threads (default: all cores)");
  a.alias("-t", "--threads");
  ModelFlags mf;
  add_model_flags(a, &mf);
  a.str("--kv", &o.kv, "TYPE", kKvHelp);
  a.i64("--queue", &o.max_queue, "N", "requests that may wait for a slot; more get 429 (default 64)");
  a.f64("--timeout", &o.timeout_s, "SECONDS", "deadline of one request (default 600)");
  a.i64("--max-body-kib", &body_kib, "N", "largest request body in KiB (default 1024)");
  a.list("--alias", &o.aliases, "NAME", "model name to answer to, e.g. meta/meta-llama-3-8b-instruct (repeatable)");
  a.str("--api-key", &o.api_key, "KEY", "require 'Authorization: Bearer KEY' (needed off 127.0.0.1)");
  if (!a.parse(argc, argv)) {
    std::fprintf(stderr, "cria serve: %s\n%s", a.error().c_str(), a.usage().c_str());
    return 2;
  }
  if (a.help_requested()) {
    std::printf("%s", a.usage().c_str());
    return 0;
  }
  if (o.model_path.empty()) {
    std::fprintf(stderr, "cria serve: --model is required\n%s", a.usage().c_str());
    return 2;
  }
  std::string err;
  if (o.threads != 0 && !check_threads(o.threads, &err)) {
    std::fprintf(stderr, "cria serve: %s\n", err.c_str());
    return 2;
  }
  if (o.timeout_s <= 0 || body_kib < 1) {
    std::fprintf(stderr, "cria serve: --timeout and --max-body-kib must be positive\n");
    return 2;
  }
  if (o.ctx < 0) {
    std::fprintf(stderr, "cria serve: --ctx must be positive\n");
    return 2;
  }
  o.host = host;
  o.port = (int)port;
  o.body_limit = (size_t)body_kib * 1024;
  if (port < 0 || port > 65535) {
    std::fprintf(stderr, "cria serve: --port must be 0..65535\n");
    return 2;
  }
  // SIGINT/SIGTERM are taken by a thread of their own (not a handler), so
  // shutting down may lock and join; every other thread inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  if (std::string e; !set_vk_device(mf.device, &e)) {
    std::fprintf(stderr, "cria serve: %s\n", e.c_str());
    return 2;
  }
  o.backend = mf.backend;
  o.gpu_layers = mf.gpu_layers;
  o.weights = mf.weights;
  auto srv = server::Server::create(o);
  if (!srv.ok()) {
    std::fprintf(stderr, "cria serve: %s\n", srv.status().message().c_str());
    return 1;
  }
  server::Server& s = **srv;
  Status st = s.bind();
  if (!st.ok()) {
    std::fprintf(stderr, "cria serve: %s\n", st.message().c_str());
    return 1;
  }
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    if (sig == 0) return;
    std::fprintf(stderr, "cria serve: %s, shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    s.stop();
  });
  std::printf("cria serve: model %s as '%s', %lld slots x %lld tokens, listening on http://%s:%d\n",
              o.model_path.c_str(), s.model_name().c_str(), (long long)s.scheduler().slots(),
              (long long)s.scheduler().n_ctx(), o.host.c_str(), s.port());
  std::fflush(stdout);
  s.run();
  s.stop();
  // run() also returns when the listener fails; wake the waiter then.
  pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  return 0;
}
#endif

}  // namespace cria::cli
