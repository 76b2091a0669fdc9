#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "runtime/backends/backend.h"
#include "runtime/backends/vulkan/vk_ops.h"

namespace cria::vk {

// The `vulkan` Backend through the seam, one linear layer at a time: each
// layer's weights are uploaded once at load (split across buffers past the
// device's storage-buffer limit; on unified-memory devices one copy, in
// memory the host maps), and a call records one matrix-vector product per
// token (int8 weight types quantize the activations on the device exactly
// as the CPU does), submits, waits and reads y back. Bias is added on the
// host in f32, as the cpu backend does.
//
// This serves every batch the engine makes (prefill, several sequences) but
// syncs with the device once per layer. A session decoding one sequence of
// a model placed wholly here runs the whole layer stack in one submission
// per token instead (vk::LayerStack, borrowing these uploaded weights).
class VulkanBackend final : public backends::Backend {
 public:
  explicit VulkanBackend(std::unique_ptr<Context> ctx) : ctx_(std::move(ctx)) {}
  ~VulkanBackend() override;

  const char* name() const override { return "vulkan"; }
  bool supports_linear(QType t) const override { return matvec_supports(t); }
  bool copies_weights() const override { return true; }
  bool runs_layer_stack() const override;
  std::string device() const override { return ctx_->info().name + " (" + ctx_->info().type + " device)"; }
  uint64_t bytes_held() const override { return held_; }
  Result<int> prepare_linear(const backends::Linear& l) override;
  Status run_linear(int handle, const backends::Linear& l, const float* x, int64_t n, float* y,
                    const backends::ExecContext&) override;

  // For LayerStack: the device, a prepared layer's weights, and the lock
  // that serializes recording on the device's one command buffer.
  Context& context() const { return *ctx_; }
  const DeviceMatrix& matrix(int handle) const { return mats_[(size_t)handle]; }
  std::mutex& mutex() const { return mu_; }

 private:
  Status ensure(Buffer& b, uint64_t bytes, const char* what);

  std::unique_ptr<Context> ctx_;
  std::vector<DeviceMatrix> mats_;
  uint64_t held_ = 0, max_cols_ = 0;
  mutable std::mutex mu_;
  Buffer x_, y_;
  ActScratch acts_;
};

// Fails when there is no loader or no device (CRIA_VK_DEVICE picks one).
Result<std::unique_ptr<backends::Backend>> make_vulkan_backend();

}  // namespace cria::vk
