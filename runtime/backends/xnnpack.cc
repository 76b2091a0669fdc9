// The `xnnpack` backend: XNNPACK's fully-connected operators for linear
// layers of f32 and f16 weights (Debian's Feb 2022 XNNPACK has no int4 or
// dynamic-int8 operator, so quantized files stay on `cpu`).
//
// Each linear layer becomes one operator, created once at load: creation
// packs the weights (and the f32 bias) into XNNPACK's own layout, after which
// the mapped file pages are not read again (the model releases them).
// Operators are stateful between setup and run, so runs are serialized by a
// mutex: sessions sharing a model take turns on its linear layers (each run
// already uses every thread of the caller's pool).
//
// f16 weights take f16 activations and give f16 outputs: the backend
// converts x to f16 and the result back to f32, then adds the bias in f32
// (as the cpu path does).
#include "runtime/backends/xnnpack.h"

#include <xnnpack.h>

#include <cmath>
#include <mutex>

#include "quant/fp16.h"

namespace cria::backends {

namespace {

const char* xnn_status_name(xnn_status s) {
  switch (s) {
    case xnn_status_success: return "success";
    case xnn_status_uninitialized: return "uninitialized";
    case xnn_status_invalid_parameter: return "invalid parameter";
    case xnn_status_invalid_state: return "invalid state";
    case xnn_status_unsupported_parameter: return "unsupported parameter";
    case xnn_status_unsupported_hardware: return "unsupported hardware";
    case xnn_status_out_of_memory: return "out of memory";
  }
  return "unknown status";
}

class XnnpackBackend final : public Backend {
 public:
  ~XnnpackBackend() override {
    for (xnn_operator_t op : ops_) xnn_delete_operator(op);
  }

  static Result<std::unique_ptr<Backend>> create() {
    const xnn_status s = xnn_initialize(nullptr);
    if (s != xnn_status_success)
      return Error(Code::kUnsupported, std::string("xnnpack: cannot start on this CPU (") + xnn_status_name(s) + ")");
    std::unique_ptr<XnnpackBackend> b(new XnnpackBackend());
    // The f16 operator needs FP16 arithmetic (ARMv8.2) or F16C on x86; ask
    // XNNPACK with a 1 x 1 operator rather than re-deriving its rules.
    const uint16_t one = f32_to_fp16(1.0f);
    xnn_operator_t probe = nullptr;
    b->f16_ = xnn_create_fully_connected_nc_f16(1, 1, 1, 1, &one, nullptr, -INFINITY, INFINITY, 0, &probe) ==
              xnn_status_success;
    if (probe) xnn_delete_operator(probe);
    return std::unique_ptr<Backend>(std::move(b));
  }

  const char* name() const override { return "xnnpack"; }
  bool supports_linear(QType t) const override { return t == QType::kF32 || (t == QType::kF16 && f16_); }
  bool copies_weights() const override { return true; }
  uint64_t bytes_held() const override { return held_; }

  Result<int> prepare_linear(const Linear& l) override {
    const size_t rows = l.w.rows(), cols = l.w.cols();
    xnn_operator_t op = nullptr;
    xnn_status s;
    if (l.w.type == QType::kF32) {
      s = xnn_create_fully_connected_nc_f32(cols, rows, cols, rows, reinterpret_cast<const float*>(l.w.data), l.bias,
                                            -INFINITY, INFINITY, 0, &op);
      held_ += (rows * cols + rows) * sizeof(float);
    } else if (l.w.type == QType::kF16 && f16_) {
      s = xnn_create_fully_connected_nc_f16(cols, rows, cols, rows, l.w.data, nullptr, -INFINITY, INFINITY, 0, &op);
      held_ += (rows * cols + rows) * sizeof(uint16_t);
      max_f16_cols_ = std::max(max_f16_cols_, cols);
      max_f16_rows_ = std::max(max_f16_rows_, rows);
    } else {
      return Error(Code::kInvalidArgument, std::string("xnnpack: no operator for ") + qtype_name(l.w.type) +
                                               " weights (" + l.name + ")");
    }
    if (s != xnn_status_success)
      return Error(s == xnn_status_out_of_memory ? Code::kOutOfMemory : Code::kInternal,
                   "xnnpack: cannot pack " + l.name + " (" + std::to_string(rows) + " x " + std::to_string(cols) +
                       "): " + xnn_status_name(s));
    ops_.push_back(op);
    return (int)ops_.size() - 1;
  }

  Status run_linear(int handle, const Linear& l, const float* x, int64_t n, float* y,
                    const ExecContext& ctx) override {
    const int64_t rows = (int64_t)l.w.rows(), cols = (int64_t)l.w.cols();
    xnn_operator_t op = ops_[(size_t)handle];
    // Small products run on the calling thread, as kernels::matmul does:
    // waking the pool costs more than they take.
    const bool small = (double)rows * (double)cols * (double)n < kernels::kParallelMacs;
    pthreadpool_t pool = small ? nullptr : ctx.pool->native();
    std::lock_guard<std::mutex> lock(mu_);
    xnn_status s;
    if (l.w.type == QType::kF32) {
      s = xnn_setup_fully_connected_nc_f32(op, (size_t)n, x, y, pool);
      if (s == xnn_status_success) s = xnn_run_operator(op, pool);
    } else {
      // Grown on the first call of each batch size; a decode step reuses it.
      if (xh_.size() < (size_t)(n * cols)) xh_.resize((size_t)(n * (int64_t)max_f16_cols_));
      if (yh_.size() < (size_t)(n * rows)) yh_.resize((size_t)(n * (int64_t)max_f16_rows_));
      ctx.k->f32_to_f16(x, xh_.data(), n * cols);
      s = xnn_setup_fully_connected_nc_f16(op, (size_t)n, xh_.data(), yh_.data(), pool);
      if (s == xnn_status_success) s = xnn_run_operator(op, pool);
      if (s == xnn_status_success)
        for (int64_t t = 0; t < n; ++t)
          for (int64_t r = 0; r < rows; ++r)
            y[t * rows + r] = fp16_to_f32(yh_[t * rows + r]) + (l.bias ? l.bias[r] : 0.0f);
    }
    if (s != xnn_status_success) return Error(Code::kInternal, "xnnpack: " + l.name + ": " + xnn_status_name(s));
    return Status::Ok();
  }

 private:
  XnnpackBackend() = default;
  bool f16_ = false;
  std::vector<xnn_operator_t> ops_;
  uint64_t held_ = 0;
  size_t max_f16_cols_ = 0, max_f16_rows_ = 0;
  std::mutex mu_;
  std::vector<uint16_t> xh_, yh_;  // f16 activations and outputs
};

}  // namespace

Result<std::unique_ptr<Backend>> make_xnnpack_backend() { return XnnpackBackend::create(); }

}  // namespace cria::backends
