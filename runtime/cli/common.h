// Pieces shared by the commands that run a model through the public API.
#pragma once

#include <memory>
#include <string>

#include "cria/cria.h"

namespace cria::cli {

// Owning handles: a command holds its model and session in these, so every
// return path frees each exactly once (the session before the model).
struct ModelFree {
  void operator()(cria_model* m) const { cria_model_free(m); }
};
struct SessionFree {
  void operator()(cria_session* s) const { cria_session_free(s); }
};
using ModelPtr = std::unique_ptr<cria_model, ModelFree>;
using SessionPtr = std::unique_ptr<cria_session, SessionFree>;

class Args;

// Where a model runs, from the options every command that loads one takes:
// --backend, --gpu-layers, --device, --weights.
struct ModelFlags {
  std::string backend = "auto";  // auto | cpu | xnnpack | vulkan
  int64_t gpu_layers = -1;
  std::string device;            // a Vulkan device index, "" for the default
  std::string weights = "auto";  // auto | copy | map
};
void add_model_flags(Args& a, ModelFlags* f);

// Loads a model as `f` says (after set_vk_device(f.device)); on failure
// prints the error and returns null.
ModelPtr load_model(const std::string& path, const ModelFlags& f = {}, double* seconds = nullptr);
extern const char* const kKvHelp;

// --device N: the Vulkan device (CRIA_VK_DEVICE, which the backend reads when
// it starts). True for "" (not given); false, with the reason, for anything
// but a device index.
bool set_vk_device(const std::string& device, std::string* err);
// The placement table of a loaded model (cria_model_placement).
std::string placement_text(const cria_model* m);
// Creates a session on `m` (0 means the default for ctx, threads and batch);
// on failure prints the error and returns null. The model stays the
// caller's either way.
SessionPtr open_session(cria_model* m, int64_t ctx, int64_t threads, int64_t n_seq = 1, int64_t batch = 0,
                        const std::string& kv = "");
// Reads a whole file into `out`; false (and an error printed) on failure.
bool read_file(const std::string& path, std::string* out);
// "cria: <last error>" to stderr, status 1.
int api_fail(const char* what = nullptr);
// Peak resident set size of this process in bytes.
long long peak_rss_bytes();
// Validates a --threads value (0 means all cores when allowed).
bool check_threads(long long threads, std::string* err);

}  // namespace cria::cli
