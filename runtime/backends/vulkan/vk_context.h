// The Vulkan device layer: one device, one compute queue, buffers, compute
// pipelines from the embedded SPIR-V, and a command batch that records many
// dispatches and submits them once (one fence wait per batch, so a decode
// step can be one submission and one host sync).
//
// Every failure is a Status: no loader, no device, a device index out of
// range, out of device memory (naming the size), a lost device. A context
// whose device was lost refuses further work with the same error.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "formats/status.h"
#include "runtime/backends/vulkan/vk_loader.h"

namespace cria::vk {

// What `cria devices` prints, and what the engine reads to plan memory.
struct DeviceInfo {
  uint32_t index = 0;
  std::string name;
  std::string type;  // "discrete", "integrated", "virtual", "cpu", "other"
  uint32_t api_version = 0;
  uint64_t device_local_bytes = 0;   // largest device-local heap
  uint32_t subgroup_size = 0;
  bool int8_dot = false;             // VK_KHR_shader_integer_dot_product (int8 packed, any speed)
  bool int8_dot_accelerated = false; // ... reported as faster than the emulation
  bool float16 = false, int8 = false, storage16 = false, storage8 = false;
  bool unified_memory = false;       // a heap that is both device-local and host-visible
  uint64_t max_storage_buffer_range = 0;
  uint32_t max_workgroup_count_x = 0;
};

// Lists every physical device the loader reports. Errors: no loader, the
// instance cannot be created, no device.
Result<std::vector<DeviceInfo>> list_devices();

class Context;

// A storage buffer and its memory (it must not outlive its Context).
// Buffers made with kDevice are device-local; on unified memory (Jetson,
// Pi, integrated GPUs, lavapipe) they are also host-visible and mapped, so
// uploads are a memcpy and the weights are held once.
class Buffer {
 public:
  enum class Kind { kDevice, kHost };
  Buffer() = default;
  Buffer(Buffer&& o) noexcept { *this = std::move(o); }
  Buffer& operator=(Buffer&& o) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { reset(); }

  VkBuffer handle() const { return buf_; }
  uint64_t size() const { return size_; }
  void* mapped() const { return map_; }  // nullptr unless host-visible
  bool valid() const { return buf_ != VK_NULL_HANDLE; }
  void reset();

 private:
  friend class Context;
  Context* ctx_ = nullptr;
  VkBuffer buf_ = VK_NULL_HANDLE;
  VkDeviceMemory mem_ = VK_NULL_HANDLE;
  uint64_t size_ = 0;
  void* map_ = nullptr;
  bool counted_ = false;  // a kDevice buffer, counted against the context's budget
};

// A compute pipeline: `bindings` storage buffers (set 0, bindings 0..n-1)
// and `push_bytes` of push constants.
struct Pipeline {
  VkPipeline pipeline = VK_NULL_HANDLE;
  VkPipelineLayout layout = VK_NULL_HANDLE;
  VkDescriptorSetLayout set_layout = VK_NULL_HANDLE;
  uint32_t bindings = 0;
  uint32_t push_bytes = 0;
};

class Context {
 public:
  // Device `index`; a negative index takes CRIA_VK_DEVICE from the
  // environment, or device 0.
  static Result<std::unique_ptr<Context>> create(int index = -1);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  const DeviceInfo& info() const { return info_; }
  const Fns& fn() const { return fn_; }
  VkDevice device() const { return device_; }

  Result<Buffer> create_buffer(uint64_t bytes, Buffer::Kind kind, const char* what = "buffer");
  // Host -> device and back, through a staging buffer unless `b` is mapped.
  Status upload(Buffer& b, uint64_t offset, const void* src, uint64_t bytes);
  Status download(const Buffer& b, uint64_t offset, void* dst, uint64_t bytes);

  // The pipeline of an embedded shader, built once and cached.
  Result<const Pipeline*> pipeline(const char* shader, uint32_t bindings, uint32_t push_bytes);

  // Recording: begin(), any number of dispatch()/copy(), then submit(),
  // which waits for the device. Each dispatch waits for the previous
  // one's writes (a full compute barrier): correct first.
  Status begin();
  Status dispatch(const Pipeline& p, const std::vector<const Buffer*>& buffers, const void* push, uint32_t gx,
                  uint32_t gy = 1, uint32_t gz = 1);
  Status copy(const Buffer& src, uint64_t src_off, Buffer& dst, uint64_t dst_off, uint64_t bytes);
  Status submit();
  bool recording() const { return recording_; }

  // Set once a submit reports VK_ERROR_DEVICE_LOST: every later call fails.
  bool lost() const { return lost_; }

  // Splits a workgroup count larger than the device's x limit into x * y.
  void groups_2d(uint64_t n, uint32_t* gx, uint32_t* gy) const;

 private:
  friend class Buffer;
  Context() = default;
  Status init(int index);
  Status check(VkResult r, const char* what);
  Result<uint32_t> memory_type(uint32_t bits, VkMemoryPropertyFlags want, VkMemoryPropertyFlags avoid) const;

  void* lib_ = nullptr;
  Fns fn_;
  VkInstance instance_ = VK_NULL_HANDLE;
  VkPhysicalDevice phys_ = VK_NULL_HANDLE;
  VkDevice device_ = VK_NULL_HANDLE;
  VkQueue queue_ = VK_NULL_HANDLE;
  uint32_t queue_family_ = 0;
  VkCommandPool cmd_pool_ = VK_NULL_HANDLE;
  VkCommandBuffer cmd_ = VK_NULL_HANDLE;
  VkFence fence_ = VK_NULL_HANDLE;
  VkDescriptorPool desc_pool_ = VK_NULL_HANDLE;
  uint32_t desc_sets_left_ = 0;
  VkPhysicalDeviceMemoryProperties mem_props_{};
  DeviceInfo info_;
  bool recording_ = false;
  bool lost_ = false;
  // Device memory cria may hold in kDevice buffers (CRIA_VK_MEMORY_LIMIT,
  // bytes or with a K/M/G suffix: to share a GPU or a unified-memory board;
  // 0 = no limit beyond the device's own), and what it holds now.
  uint64_t budget_ = 0, held_ = 0;
  // Fault injection for tests (CRIA_VK_TEST_LOSE_DEVICE=N): the submit after
  // N successful ones reports VK_ERROR_DEVICE_LOST, as a driver does after
  // a GPU hang or reset; the error paths above it are what is tested.
  int64_t lose_after_ = -1;
  struct Cached {
    std::string name;
    Pipeline p;
  };
  std::vector<Cached> pipelines_;
};

}  // namespace cria::vk
