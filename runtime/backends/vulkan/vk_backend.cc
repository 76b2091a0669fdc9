#include "runtime/backends/vulkan/vk_backend.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace cria::vk {

VulkanBackend::~VulkanBackend() {
  // Buffers release through the context: drop them first.
  mats_.clear();
  x_ = Buffer();
  y_ = Buffer();
  acts_ = ActScratch();
}

// CRIA_VK_STACK=0 keeps decode on the per-layer path (to compare the two).
bool VulkanBackend::runs_layer_stack() const {
  const char* env = std::getenv("CRIA_VK_STACK");
  return !(env && std::strcmp(env, "0") == 0);
}

Result<int> VulkanBackend::prepare_linear(const backends::Linear& l) {
  CRIA_ASSIGN_OR_RETURN(DeviceMatrix m, upload_matrix(*ctx_, l.w.type, l.w.l, l.w.data, 0, l.name.c_str()));
  held_ += l.w.l.total;
  max_cols_ = std::max<uint64_t>(max_cols_, l.w.cols());
  mats_.push_back(std::move(m));
  return (int)mats_.size() - 1;
}

Status VulkanBackend::run_linear(int handle, const backends::Linear& l, const float* x, int64_t n, float* y,
                                 const backends::ExecContext&) {
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
  // Up to kMatmulBatch tokens per dispatch: each weight read once for them.
  for (int64_t t = 0; t < n; t += (int64_t)kMatmulBatch) {
    const uint64_t m = std::min<uint64_t>(kMatmulBatch, (uint64_t)(n - t));
    CRIA_RETURN_IF_ERROR(
        matmul(*ctx_, mats_[(size_t)handle], x_, (uint64_t)t * cols, m, y_, (uint64_t)t * rows, rows, acts_));
  }
  CRIA_RETURN_IF_ERROR(ctx_->submit().with_prefix(l.name));
  CRIA_RETURN_IF_ERROR(ctx_->download(y_, 0, y, (uint64_t)n * rows * sizeof(float)));
  if (l.bias)
    for (int64_t t = 0; t < n; ++t)
      for (uint64_t r = 0; r < rows; ++r) y[t * rows + r] += l.bias[r];
  return Status::Ok();
}

Status VulkanBackend::ensure(Buffer& b, uint64_t bytes, const char* what) {
  if (b.valid() && b.size() >= bytes) return Status::Ok();
  b = Buffer();
  CRIA_ASSIGN_OR_RETURN(b, ctx_->create_buffer(bytes, Buffer::Kind::kHost, what));
  return Status::Ok();
}

Result<std::unique_ptr<backends::Backend>> make_vulkan_backend() {
  CRIA_ASSIGN_OR_RETURN(std::unique_ptr<Context> ctx, Context::create(-1));
  return std::unique_ptr<backends::Backend>(new VulkanBackend(std::move(ctx)));
}

}  // namespace cria::vk
