// Where each op of a model runs, decided once at load. Every linear layer is
// placed on a backend (runtime/backends/backend.h) from what each backend
// supports and a measured preference (`auto`), or on the backend the user
// named; the backend prepares it there. The ops without weights run on
// `cpu`. The table is what `cria inspect --placement` and `cria run -v`
// print.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "formats/model_file.h"
#include "runtime/backends/backend.h"
#include "runtime/model/weight_copy.h"

namespace cria {

struct Weights;

// The linear layers of a block, in forward order.
enum class LinearRole : uint8_t { kQkv, kAttnOut, kFfnIn, kFfnDown };
constexpr int kLinearRoles = 4;

struct PlacedLinear {
  backends::Linear l;
  backends::Backend* backend = nullptr;
  int handle = 0;
};

class Placement {
 public:
  // `choice`: auto | cpu | xnnpack | vulkan. Under `auto` a backend that
  // cannot start leaves its ops to cpu and says why in notes(); a backend
  // named explicitly that cannot start is an error. `k` is the kernel table
  // the model's sessions will run (the preference depends on it).
  // `gpu_layers` >= 0 (with a device backend: vulkan) keeps only the first
  // gpu_layers blocks there, and the rest (and the output head, unless
  // every block is on the device) on cpu: a board with less device memory
  // than the model. -1: every layer.
  // Only blocks [layer_begin, layer_end) (-1: to the last) are prepared,
  // and the output head only when the range reaches the last block: the
  // rest have no backend (a rank of a layer pipeline never runs them);
  // `head` false leaves the output head unplaced too.
  static Result<Placement> place(const ModelFile& f, const Weights& w, const std::string& choice,
                                 const kernels::KernelTable& k, int64_t gpu_layers = -1, int64_t layer_begin = 0,
                                 int64_t layer_end = -1, bool head = true);

  const PlacedLinear& linear(int64_t layer, LinearRole r) const {
    return linears_[(size_t)(layer * kLinearRoles + (int)r)];
  }
  const PlacedLinear& output() const { return linears_.back(); }

  // The backend every linear layer (and the head) is placed on, when it can
  // run whole decode steps (Backend::runs_layer_stack), else nullptr.
  const backends::Backend* layer_stack_backend() const;

  // The weights read in place from host memory: the linear layers placed
  // on a backend that does not copy them (each tensor once).
  std::vector<WeightSpan> host_weights() const;
  // Points those linear layers at their copies in `c`.
  void move_host_weights(const WeightCopy& c);
  // The table's `weights` row: where the host reads them from.
  void set_weights_row(std::string row) { weights_row_ = std::move(row); }
  const std::string& choice() const { return choice_; }
  // One line per op kind: the backend(s) and what they hold.
  std::string describe() const;
  // Why an `auto` choice did not use a backend (printed once by the CLI).
  const std::vector<std::string>& notes() const { return notes_; }

 private:
  std::string choice_;
  std::string isa_;
  int64_t gpu_layers_ = -1;
  std::vector<std::unique_ptr<backends::Backend>> backends_;
  std::vector<PlacedLinear> linears_;  // layer-major, then the output head
  uint64_t released_ = 0;              // mapped bytes released after copies
  std::string weights_row_;
  std::vector<std::string> notes_;
};

// What `auto` prefers for linear layers of weight type `t` when the
// sessions run kernel table `isa`: a backend name, from the measurements in
// docs/PERFORMANCE.md ("Backends").
const char* auto_linear_backend(QType t, kernels::Isa isa);

}  // namespace cria
