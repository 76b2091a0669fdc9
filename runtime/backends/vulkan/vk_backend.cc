// The `vulkan` backend through the seam, one linear layer at a time: each
// layer's weights are uploaded once at load (split across buffers past the
// device's storage-buffer limit; on unified-memory devices one copy, in
// memory the host maps), and a call records one matrix-vector product per
// token (int8 weight types quantize the activations on the device exactly
// as the CPU does), submits, waits and reads y back. Bias is added on the
// host in f32, as the cpu backend does.
//
// This is correct for every batch the engine makes (prefill, several
// sequences), but it syncs with the device once per layer; the whole layer
// stack in one submission per token (vk::LayerStack) is the fast path still
// to be driven by the engine.
#include "runtime/backends/vulkan/vk_backend.h"

#include <mutex>
#include <vector>

#include "runtime/backends/vulkan/vk_ops.h"

namespace cria::vk {

namespace {

class VulkanBackend final : public backends::Backend {
 public:
  explicit VulkanBackend(std::unique_ptr<Context> ctx) : ctx_(std::move(ctx)) {}
  ~VulkanBackend() override {
    // Buffers release through the context: drop them first.
    mats_.clear();
    x_ = Buffer();
    y_ = Buffer();
    acts_ = ActScratch();
  }

  const char* name() const override { return "vulkan"; }
  bool supports_linear(QType t) const override { return matvec_supports(t); }
  bool copies_weights() const override { return true; }
  uint64_t bytes_held() const override { return held_; }

  Result<int> prepare_linear(const backends::Linear& l) override {
    CRIA_ASSIGN_OR_RETURN(DeviceMatrix m, upload_matrix(*ctx_, l.w.type, l.w.l, l.w.data, 0, l.name.c_str()));
    held_ += l.w.l.total;
    max_cols_ = std::max<uint64_t>(max_cols_, l.w.cols());
    mats_.push_back(std::move(m));
    return (int)mats_.size() - 1;
  }

  Status run_linear(int handle, const backends::Linear& l, const float* x, int64_t n, float* y,
                    const backends::ExecContext&) override {
    const uint64_t rows = l.w.rows(), cols = l.w.cols();
    std::lock_guard<std::mutex> lock(mu_);
    // Host-visible activations, grown to the largest batch seen.
    CRIA_RETURN_IF_ERROR(ensure(x_, (uint64_t)n * max_cols_ * sizeof(float), "activations"));
    CRIA_RETURN_IF_ERROR(ensure(y_, (uint64_t)n * rows * sizeof(float), "outputs"));
    if (!acts_.q.valid() || acts_.max_cols < max_cols_) {
      acts_ = ActScratch();
      CRIA_ASSIGN_OR_RETURN(acts_, make_act_scratch(*ctx_, max_cols_));
    }
    CRIA_RETURN_IF_ERROR(ctx_->upload(x_, 0, x, (uint64_t)n * cols * sizeof(float)));
    CRIA_RETURN_IF_ERROR(ctx_->begin());
    for (int64_t t = 0; t < n; ++t)
      CRIA_RETURN_IF_ERROR(matvec(*ctx_, mats_[(size_t)handle], x_, (uint64_t)t * cols, y_, (uint64_t)t * rows, acts_));
    CRIA_RETURN_IF_ERROR(ctx_->submit().with_prefix(l.name));
    CRIA_RETURN_IF_ERROR(ctx_->download(y_, 0, y, (uint64_t)n * rows * sizeof(float)));
    if (l.bias)
      for (int64_t t = 0; t < n; ++t)
        for (uint64_t r = 0; r < rows; ++r) y[t * rows + r] += l.bias[r];
    return Status::Ok();
  }

 private:
  Status ensure(Buffer& b, uint64_t bytes, const char* what) {
    if (b.valid() && b.size() >= bytes) return Status::Ok();
    b = Buffer();
    CRIA_ASSIGN_OR_RETURN(b, ctx_->create_buffer(bytes, Buffer::Kind::kHost, what));
    return Status::Ok();
  }

  std::unique_ptr<Context> ctx_;
  std::vector<DeviceMatrix> mats_;
  uint64_t held_ = 0, max_cols_ = 0;
  std::mutex mu_;
  Buffer x_, y_;
  ActScratch acts_;
};

}  // namespace

Result<std::unique_ptr<backends::Backend>> make_vulkan_backend() {
  CRIA_ASSIGN_OR_RETURN(std::unique_ptr<Context> ctx, Context::create(-1));
  return std::unique_ptr<backends::Backend>(new VulkanBackend(std::move(ctx)));
}

}  // namespace cria::vk
