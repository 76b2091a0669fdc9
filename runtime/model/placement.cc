#include "runtime/model/placement.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "formats/tensors.h"
#include "runtime/model/model.h"

namespace cria {

const char* auto_linear_backend(QType t, kernels::Isa isa) {
#ifdef CRIA_HAVE_XNNPACK
  // bench/matmul (docs/PERFORMANCE.md, "Backends"): on an AVX-512 CPU
  // XNNPACK's f32 operator beats cria's f32 kernel at one token and matches
  // it on prefill; cria's f16 kernel (f32 activations) runs at twice
  // XNNPACK's f16 operator. Other ISAs are unmeasured, so they stay on cpu.
  if (t == QType::kF32 && isa == kernels::Isa::kAvx512) return "xnnpack";
#else
  (void)t;
  (void)isa;
#endif
  return "cpu";
}

namespace {

std::string mib(uint64_t b) {
  char s[32];
  std::snprintf(s, sizeof s, "%.1f MiB", (double)b / (1 << 20));
  return s;
}

std::vector<PlacedLinear> bind_linears(const ModelConfig& c, const Weights& w) {
  std::vector<PlacedLinear> v;
  v.reserve((size_t)c.num_layers * kLinearRoles + 1);
  auto add = [&](const kernels::Matrix& m, const float* b, std::string name) {
    PlacedLinear p;
    p.l.w = m;
    p.l.bias = b;
    p.l.name = std::move(name);
    v.push_back(std::move(p));
  };
  const TensorKind ffn_in = c.mlp == MlpKind::kSwiGLU ? TensorKind::kFfnGateUp : TensorKind::kFfnUp;
  for (uint32_t l = 0; l < c.num_layers; ++l) {
    const LayerWeights& L = w.layers[l];
    const int li = (int)l;
    add(L.qkv, L.qkv_b, tensor_name(TensorKind::kAttnQkv, li, false));
    add(L.attn_out, L.attn_out_b, tensor_name(TensorKind::kAttnOut, li, false));
    add(L.ffn_in, L.ffn_in_b, tensor_name(ffn_in, li, false));
    add(L.ffn_down, L.ffn_down_b, tensor_name(TensorKind::kFfnDown, li, false));
  }
  add(w.output, nullptr,
      c.tie_word_embeddings ? tensor_name(TensorKind::kTokEmbd, -1, false) + " (tied output)"
                            : tensor_name(TensorKind::kOutput, -1, false));
  return v;
}

}  // namespace

Result<Placement> Placement::place(const ModelFile& f, const Weights& w, const std::string& choice,
                                   const kernels::KernelTable& k, int64_t gpu_layers, int64_t layer_begin,
                                   int64_t layer_end, bool head) {
  if (gpu_layers < -1) return Error(Code::kInvalidArgument, "gpu layers must be 0 or more (or -1 for all)");
  if (gpu_layers >= 0 && choice != "vulkan")
    return Error(Code::kInvalidArgument, "gpu layers apply to a device backend: use them with backend vulkan");
  const int64_t n_layers = f.config().num_layers;
  const int64_t on_device = gpu_layers < 0 ? n_layers : std::min(gpu_layers, n_layers);
  Placement p;
  p.choice_ = choice;
  p.gpu_layers_ = gpu_layers < 0 ? -1 : on_device;
  p.isa_ = kernels::isa_name(k.isa);
  p.linears_ = bind_linears(f.config(), w);
  CRIA_ASSIGN_OR_RETURN(std::unique_ptr<backends::Backend> cpu, backends::create_backend("cpu"));
  p.backends_.push_back(std::move(cpu));
  backends::Backend* fallback = p.backends_[0].get();

  // The backends each linear layer may go to, by name.
  std::map<std::string, backends::Backend*> by_name = {{"cpu", fallback}};
  if (choice == "auto") {
    for (const std::string& name : backends::built_backends()) {
      if (name == "cpu") continue;
      bool wanted = false;
      for (const PlacedLinear& pl : p.linears_) wanted |= name == auto_linear_backend(pl.l.w.type, k.isa);
      if (!wanted) continue;
      auto b = backends::create_backend(name);
      if (!b.ok()) {
        p.notes_.push_back("backend auto: " + name + " unavailable, its ops run on cpu (" + b.status().message() + ")");
        continue;
      }
      by_name[name] = b->get();
      p.backends_.push_back(std::move(b).value());
    }
  } else if (choice != "cpu") {
    CRIA_ASSIGN_OR_RETURN(std::unique_ptr<backends::Backend> b, backends::create_backend(choice));
    by_name[choice] = b.get();
    p.backends_.push_back(std::move(b));
  }

  const uint8_t* embd = w.tok_embd.data;
  for (size_t i = 0; i < p.linears_.size(); ++i) {
    PlacedLinear& pl = p.linears_[i];
    // Block i / kLinearRoles; the output head counts as past the last block.
    const int64_t layer = (int64_t)i / kLinearRoles;
    const int64_t end = layer_end < 0 ? n_layers : layer_end;
    if (layer < layer_begin || (layer < n_layers && layer >= end) || (layer == n_layers && (end < n_layers || !head)))
      continue;
    const bool device_layer = layer < on_device || (layer == n_layers && on_device == n_layers);
    const char* want = choice == "auto" ? auto_linear_backend(pl.l.w.type, k.isa) : device_layer ? choice.c_str() : "cpu";
    auto it = by_name.find(want);
    backends::Backend* b = it != by_name.end() && it->second->supports_linear(pl.l.w.type) ? it->second : fallback;
    Result<int> h = b->prepare_linear(pl.l);
    if (!h.ok() && h.status().code() == Code::kOutOfMemory && !b->device().empty()) {
      // What fits is the blocks before this one (less room for the cache).
      const int64_t fit = std::min(layer, n_layers - 1);
      return Error(Code::kOutOfMemory, h.status().message() + "; the model does not fit the device: " +
                                           (fit > 0 ? "try --gpu-layers " + std::to_string(fit) +
                                                          " or fewer (the rest run on the CPU)"
                                                    : std::string("run it on the CPU (--backend cpu)")));
    }
    CRIA_RETURN_IF_ERROR(h.status());
    pl.handle = *h;
    pl.backend = b;
    // The tied embedding is still read row by row for the input.
    if (b->copies_weights() && pl.l.w.data != embd) p.released_ += f.release_pages(pl.l.w.data, pl.l.w.l.total);
  }
  return p;
}

std::vector<WeightSpan> Placement::host_weights() const {
  std::vector<WeightSpan> spans;
  for (const PlacedLinear& pl : linears_) {
    if (!pl.backend || pl.backend->copies_weights()) continue;
    // A tied head is the embedding: one tensor.
    const bool seen = std::any_of(spans.begin(), spans.end(), [&](const WeightSpan& w) { return w.data == pl.l.w.data; });
    if (!seen) spans.push_back({pl.l.w.data, pl.l.w.l.total});
  }
  return spans;
}

void Placement::move_host_weights(const WeightCopy& c) {
  for (PlacedLinear& pl : linears_)
    if (pl.backend && !pl.backend->copies_weights()) pl.l.w.data = c.find(pl.l.w.data);
}

const backends::Backend* Placement::layer_stack_backend() const {
  const backends::Backend* b = linears_.empty() ? nullptr : linears_.back().backend;
  if (!b || !b->runs_layer_stack()) return nullptr;
  for (const PlacedLinear& pl : linears_)
    if (pl.backend != b) return nullptr;
  return b;
}

std::string Placement::describe() const {
  std::string s = "backend " + choice_ + ", cpu kernels " + isa_;
  if (gpu_layers_ >= 0) s += ", first " + std::to_string(gpu_layers_) + " layers on the device";
  s += "\n";
  // Linear layers: count and weight type per backend.
  std::map<std::string, std::map<std::string, int>> lin;
  for (const PlacedLinear& pl : linears_)
    if (pl.backend) ++lin[pl.backend->name()][qtype_name(pl.l.w.type)];
  std::string lines;
  for (const auto& [name, types] : lin) {
    std::string t;
    for (const auto& [ty, n] : types) t += (t.empty() ? "" : ", ") + std::to_string(n) + " " + ty;
    lines += (lines.empty() ? "" : "; ") + name + " (" + t + ")";
  }
  for (const auto& b : backends_) {
    if (!b->copies_weights() || !b->bytes_held()) continue;
    lines += "; " + std::string(b->name()) + " holds " + mib(b->bytes_held()) + " of packed weights";
    if (released_) lines += ", " + mib(released_) + " of mapped file pages released";
  }
  for (const auto& b : backends_)
    if (!b->device().empty()) lines += "; " + std::string(b->name()) + " runs on " + b->device();
  for (int i = 0; i < backends::kOpKinds; ++i) {
    const auto op = (backends::OpKind)i;
    char row[32];
    std::snprintf(row, sizeof row, "  %-11s ", backends::op_kind_name(op));
    s += row;
    s += op == backends::OpKind::kLinear ? lines : "cpu";
    s += "\n";
  }
  if (!weights_row_.empty()) s += "  weights     " + weights_row_ + "\n";
  if (const backends::Backend* b = layer_stack_backend())
    s += "  decode      " + std::string(b->name()) +
         ": every op of a one-sequence decode step, one submission per token (with an f16 KV cache;"
         " the rows above are prefill and batches)\n";
  return s;
}

}  // namespace cria
