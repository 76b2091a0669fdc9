// Buffers, memory types and host <-> device copies.
#include <algorithm>
#include <cstring>

#include "runtime/backends/vulkan/vk_context.h"

namespace cria::vk {

namespace {

std::string mib(uint64_t bytes) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f MiB", (double)bytes / (1024.0 * 1024.0));
  return buf;
}

}  // namespace

Buffer& Buffer::operator=(Buffer&& o) noexcept {
  if (this != &o) {
    reset();
    ctx_ = o.ctx_;
    buf_ = o.buf_;
    mem_ = o.mem_;
    size_ = o.size_;
    map_ = o.map_;
    counted_ = o.counted_;
    o.counted_ = false;
    o.ctx_ = nullptr;
    o.buf_ = VK_NULL_HANDLE;
    o.mem_ = VK_NULL_HANDLE;
    o.size_ = 0;
    o.map_ = nullptr;
  }
  return *this;
}

void Buffer::reset() {
  if (ctx_) {
    const Fns& fn = ctx_->fn();
    if (map_) fn.vkUnmapMemory(ctx_->device(), mem_);
    if (buf_) fn.vkDestroyBuffer(ctx_->device(), buf_, nullptr);
    if (mem_) fn.vkFreeMemory(ctx_->device(), mem_, nullptr);
    if (counted_) ctx_->held_ -= size_;
  }
  counted_ = false;
  ctx_ = nullptr;
  buf_ = VK_NULL_HANDLE;
  mem_ = VK_NULL_HANDLE;
  size_ = 0;
  map_ = nullptr;
}

Result<uint32_t> Context::memory_type(uint32_t bits, VkMemoryPropertyFlags want, VkMemoryPropertyFlags avoid) const {
  for (uint32_t t = 0; t < mem_props_.memoryTypeCount; ++t) {
    const VkMemoryPropertyFlags f = mem_props_.memoryTypes[t].propertyFlags;
    if ((bits & (1u << t)) && (f & want) == want && !(f & avoid)) return t;
  }
  return Error(Code::kUnsupported, "vulkan: no memory type with the wanted properties");
}

Result<Buffer> Context::create_buffer(uint64_t bytes, Buffer::Kind kind, const char* what) {
  if (lost_) return Error(Code::kInternal, "vulkan: the device was lost; no further work can run on it");
  // Vulkan forbids empty buffers (a 0-element tensor still binds), and the
  // shaders read whole 32-bit words: an f16 tensor of odd length ends mid-word.
  bytes = std::max<uint64_t>(4, (bytes + 3) / 4 * 4);
  if (bytes > info_.max_storage_buffer_range)
    return Error(Code::kOutOfRange, std::string("vulkan: ") + what + " of " + mib(bytes) +
                                        " exceeds the device's maxStorageBufferRange (" +
                                        mib(info_.max_storage_buffer_range) + "); split it");
  if (kind == Buffer::Kind::kDevice && budget_ && held_ + bytes > budget_)
    return Error(Code::kOutOfMemory, std::string("vulkan: out of device memory allocating ") + mib(bytes) + " for " +
                                         what + ": CRIA_VK_MEMORY_LIMIT allows " + mib(budget_) + " and " +
                                         mib(held_) + " is in use");
  Buffer b;
  b.ctx_ = this;
  b.size_ = bytes;
  VkBufferCreateInfo ci{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  ci.size = bytes;
  ci.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
  ci.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
  CRIA_RETURN_IF_ERROR(check(fn_.vkCreateBuffer(device_, &ci, nullptr, &b.buf_), what));
  VkMemoryRequirements req;
  fn_.vkGetBufferMemoryRequirements(device_, b.buf_, &req);

  const VkMemoryPropertyFlags dev = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
  const VkMemoryPropertyFlags host = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
  // Preference order. Device buffers on unified memory (integrated GPUs:
  // Jetson, Pi; lavapipe): device-local and mappable, so the weights are
  // held once. On a discrete GPU the device-local + host-visible heap is
  // the small PCIe BAR window, so plain device-local memory comes first.
  // Host buffers (staging, read-back): mappable, cached if possible. An
  // allocation that fails for lack of memory tries the next choice.
  const bool unified = info_.type == "integrated" || info_.type == "cpu";
  std::vector<VkMemoryPropertyFlags> prefs;
  if (kind == Buffer::Kind::kDevice && unified) prefs = {dev | host, dev};
  else if (kind == Buffer::Kind::kDevice) prefs = {dev, dev | host};
  else prefs = {host | VK_MEMORY_PROPERTY_HOST_CACHED_BIT, host};
  VkResult r = VK_ERROR_OUT_OF_DEVICE_MEMORY;
  uint32_t type = 0;
  bool any_type = false;
  for (VkMemoryPropertyFlags want : prefs) {
    Result<uint32_t> t = memory_type(req.memoryTypeBits, want, 0);
    if (!t.ok()) continue;
    any_type = true;
    VkMemoryAllocateInfo ai{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
    ai.allocationSize = req.size;
    ai.memoryTypeIndex = *t;
    r = fn_.vkAllocateMemory(device_, &ai, nullptr, &b.mem_);
    type = *t;
    if (r != VK_ERROR_OUT_OF_DEVICE_MEMORY && r != VK_ERROR_OUT_OF_HOST_MEMORY) break;
  }
  if (!any_type) return Error(Code::kUnsupported, std::string("vulkan: no suitable memory type for ") + what);
  if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY)
    return Error(Code::kOutOfMemory, std::string("vulkan: out of device memory allocating ") + mib(bytes) + " for " +
                                         what + " on " + info_.name + " (" + mib(info_.device_local_bytes) +
                                         " device-local)");
  CRIA_RETURN_IF_ERROR(check(r, what));
  CRIA_RETURN_IF_ERROR(check(fn_.vkBindBufferMemory(device_, b.buf_, b.mem_, 0), what));
  if (mem_props_.memoryTypes[type].propertyFlags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT)
    CRIA_RETURN_IF_ERROR(check(fn_.vkMapMemory(device_, b.mem_, 0, VK_WHOLE_SIZE, 0, &b.map_), what));
  if (kind == Buffer::Kind::kDevice) {
    b.counted_ = true;
    held_ += bytes;
  }
  return b;
}

Status Context::upload(Buffer& b, uint64_t offset, const void* src, uint64_t bytes) {
  if (offset + bytes > b.size()) return Error(Code::kOutOfRange, "vulkan: upload past the end of a buffer");
  if (bytes == 0) return Status::Ok();
  if (b.mapped()) {
    std::memcpy(static_cast<uint8_t*>(b.mapped()) + offset, src, bytes);
    return Status::Ok();
  }
  // Staging in chunks so a large tensor never needs a second full copy.
  constexpr uint64_t kChunk = 16 << 20;
  CRIA_ASSIGN_OR_RETURN(Buffer staging, create_buffer(std::min(bytes, kChunk), Buffer::Kind::kHost, "staging"));
  for (uint64_t done = 0; done < bytes;) {
    const uint64_t n = std::min(kChunk, bytes - done);
    std::memcpy(staging.mapped(), static_cast<const uint8_t*>(src) + done, n);
    CRIA_RETURN_IF_ERROR(begin());
    CRIA_RETURN_IF_ERROR(copy(staging, 0, b, offset + done, n));
    CRIA_RETURN_IF_ERROR(submit());
    done += n;
  }
  return Status::Ok();
}

Status Context::download(const Buffer& b, uint64_t offset, void* dst, uint64_t bytes) {
  if (offset + bytes > b.size()) return Error(Code::kOutOfRange, "vulkan: download past the end of a buffer");
  if (bytes == 0) return Status::Ok();
  if (b.mapped()) {
    std::memcpy(dst, static_cast<const uint8_t*>(b.mapped()) + offset, bytes);
    return Status::Ok();
  }
  CRIA_ASSIGN_OR_RETURN(Buffer staging, create_buffer(bytes, Buffer::Kind::kHost, "read-back"));
  CRIA_RETURN_IF_ERROR(begin());
  CRIA_RETURN_IF_ERROR(copy(b, offset, staging, 0, bytes));
  CRIA_RETURN_IF_ERROR(submit());
  std::memcpy(dst, staging.mapped(), bytes);
  return Status::Ok();
}

}  // namespace cria::vk
