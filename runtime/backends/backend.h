// The seam between the engine and what runs its ops. A Backend says which
// ops and weight types it takes, prepares the weights of the ops placed on it
// once at load (packing or uploading them into memory it owns), and runs
// them for a batch of tokens. The model places every op on a backend at load
// (runtime/model/placement.h); the transformer loop calls the backend an op
// was placed on and stays one loop for every architecture.
//
// In the manner of ExecuTorch's delegates (a backend claims nodes, prepares
// them once, owns what it allocated) and ggml's backends (each op of each
// backend tested against the CPU: tests/backends/test_backend_ops.cc).
//
// Today the ops that carry weights (linear layers) are placeable; the others
// (norms, RoPE, attention, activations, adds) run on `cpu`. A device backend
// (Vulkan) will take whole spans of layers through the same placement.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "formats/status.h"
#include "runtime/kernels/ops.h"

namespace cria::backends {

// The kinds of op a forward step is made of (what `inspect --placement`
// lists).
enum class OpKind : uint8_t { kEmbedding, kLinear, kNorm, kPosition, kAttention, kActivation, kAdd };
constexpr int kOpKinds = 7;
const char* op_kind_name(OpKind k);

// The calling session's host state, which every backend may use: its kernel
// table (the ISA it chose), its thread pool and its matmul scratch.
struct ExecContext {
  const kernels::KernelTable* k = nullptr;
  kernels::ThreadPool* pool = nullptr;
  kernels::MatmulScratch* mm = nullptr;
};

// A linear layer as the model binds it: y = W x (+ b).
struct Linear {
  kernels::Matrix w;            // in the mapped file
  const float* bias = nullptr;  // [rows] or null
  std::string name;             // the weight's canonical tensor name, for messages
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;

  // Whether this backend runs linear layers whose weights are of type `t`
  // on this machine.
  virtual bool supports_linear(QType t) const = 0;

  // Takes a linear layer, once at load: packs or uploads its weights into
  // memory this backend owns. Returns the handle run_linear is called with.
  virtual Result<int> prepare_linear(const Linear& l) = 0;

  // Whether prepare_linear made its own copy of the weights, so the mapped
  // source pages are no longer read (the model then releases them).
  virtual bool copies_weights() const = 0;
  // Whether a session can run a whole decode step here (every op, one
  // submission per token) when every linear layer of the model is placed
  // on this backend (runtime/model/device_decoder.h).
  virtual bool runs_layer_stack() const { return false; }
  // The device it runs on, for the placement table ("" for the host CPU):
  // "NAME (TYPE device)", TYPE as `cria devices` prints it.
  virtual std::string device() const { return ""; }

  // y[t * rows + r] = sum_k W[r, k] x[t * cols + k] (+ b[r]) for t < n.
  virtual Status run_linear(int handle, const Linear& l, const float* x, int64_t n, float* y,
                            const ExecContext& ctx) = 0;

  // Bytes of weights this backend holds for the model.
  virtual uint64_t bytes_held() const { return 0; }
};

// The backends this build has, in the order `auto` prefers them ("cpu"
// first; "xnnpack" where linked; "vulkan" where built).
std::vector<std::string> built_backends();

// Creates a backend by name. Unknown names, names this build lacks and
// backends that cannot start on this machine (no device, unsupported CPU)
// are errors saying which and why.
Result<std::unique_ptr<Backend>> create_backend(const std::string& name);

}  // namespace cria::backends
