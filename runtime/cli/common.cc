#include "runtime/cli/common.h"

#include <cstdlib>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "runtime/cli/args.h"

namespace cria::cli {

int api_fail(const char* what) {
  if (what) std::fprintf(stderr, "cria: %s: %s\n", what, cria_last_error());
  else std::fprintf(stderr, "cria: %s\n", cria_last_error());
  return 1;
}

const char* const kKvHelp =
    "KV cache type: f16 (default), q8 or q4 (int8 / int4 in blocks of 32: about half / a third of the memory, for "
    "long contexts)";
const char* const kDeviceHelp = "with --backend vulkan: the device to use (an index from `cria devices`; default 0)";

bool set_vk_device(const std::string& device, std::string* err) {
  if (device.empty()) return true;
  if (device.size() > 4 || device.find_first_not_of("0123456789") != std::string::npos) {
    *err = "--device expects a device index from `cria devices`, got '" + device + "'";
    return false;
  }
  ::setenv("CRIA_VK_DEVICE", device.c_str(), 1);
  return true;
}

const char* const kBackendHelp =
    "where linear layers run: auto (default: the fastest measured for each weight type), cpu, xnnpack, vulkan";

const char* const kGpuLayersHelp =
    "with --backend vulkan: run only the first N layers on the device, the rest on the CPU (default: all)";

void add_model_flags(Args& a, ModelFlags* f) {
  a.str("--backend", &f->backend, "NAME", kBackendHelp);
  a.i64("--gpu-layers", &f->gpu_layers, "N", kGpuLayersHelp);
  a.str("--device", &f->device, "N", kDeviceHelp);
  a.str("--weights", &f->weights, "HOW",
        "where the CPU reads weights from: auto (default: copy where the system gives 2 MiB pages and it fits), "
        "copy (into memory, 2 MiB pages: fastest decode), map (in place from the file: least memory)");
}

ModelPtr load_model(const std::string& path, const ModelFlags& f, double* seconds) {
  const auto t0 = std::chrono::steady_clock::now();
  cria_model_params params;
  cria_model_params_init(&params);
  params.backend = f.backend.c_str();
  params.weights = f.weights.c_str();
  // Negative values but -1 reach the library, which names the mistake.
  params.gpu_layers = (int32_t)std::max<int64_t>(-2, std::min<int64_t>(f.gpu_layers, 1 << 20));
  cria_model* m = nullptr;
  if (cria_model_load(path.c_str(), &params, &m) != CRIA_OK) {
    api_fail();
    return nullptr;
  }
  if (seconds) *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return ModelPtr(m);
}

std::string placement_text(const cria_model* m) {
  size_t n = 0;
  cria_model_placement(m, nullptr, 0, &n);
  std::string s(n + 1, '\0');
  cria_model_placement(m, s.data(), s.size(), &n);
  s.resize(n);
  return s;
}

SessionPtr open_session(cria_model* m, int64_t ctx, int64_t threads, int64_t n_seq, int64_t batch,
                        const std::string& kv) {
  cria_session_options so;
  cria_session_options_init(&so);
  so.kv_type = kv.c_str();
  so.n_ctx = (int32_t)ctx;
  so.threads = (int32_t)threads;
  so.n_seq = (int32_t)n_seq;
  if (batch) so.batch = (int32_t)batch;
  cria_session* s = nullptr;
  if (cria_session_create(m, &so, &s) != CRIA_OK) {
    api_fail();
    return nullptr;
  }
  return SessionPtr(s);
}

bool read_file(const std::string& path, std::string* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    std::fprintf(stderr, "cria: %s: cannot open\n", path.c_str());
    return false;
  }
  std::ostringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  return true;
}

long long peak_rss_bytes() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (long long)ru.ru_maxrss * 1024;
}

bool check_threads(long long threads, std::string* err) {
  if (threads < 1 || threads > 256) {
    *err = "--threads must be between 1 and 256";
    return false;
  }
  return true;
}

}  // namespace cria::cli
