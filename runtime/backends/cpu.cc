// The `cpu` backend: cria's own kernels (the KernelTable of the session's
// ISA) reading the weights straight from the mapped file. It takes every op
// and every weight type, prepares nothing and holds nothing, so a model on
// `cpu` costs no memory beyond the mapping.
#include "runtime/backends/cpu.h"

namespace cria::backends {

namespace {

class CpuBackend final : public Backend {
 public:
  const char* name() const override { return "cpu"; }
  bool supports_linear(QType) const override { return true; }
  Result<int> prepare_linear(const Linear&) override { return 0; }
  bool copies_weights() const override { return false; }
  Status run_linear(int, const Linear& l, const float* x, int64_t n, float* y, const ExecContext& ctx) override {
    const int64_t cols = (int64_t)l.w.cols(), rows = (int64_t)l.w.rows();
    kernels::matmul(*ctx.k, *ctx.pool, l.w, x, n, cols, y, rows, l.bias, *ctx.mm);
    return Status::Ok();
  }
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace cria::backends
