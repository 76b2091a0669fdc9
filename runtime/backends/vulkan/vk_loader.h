// The Vulkan entry points cria calls, loaded at run time from the loader
// library (libvulkan.so.1) rather than linked: a cria binary built with the
// backend still starts, and runs on the CPU, where no Vulkan loader is
// installed; asking for the backend there is an error value, not a crash.
#pragma once

#define VK_NO_PROTOTYPES
#include <vulkan/vulkan.h>

namespace cria::vk {

// X(name): every function below is loaded through vkGetInstanceProcAddr.
#define CRIA_VK_INSTANCE_FNS(X)                 \
  X(vkDestroyInstance)                          \
  X(vkEnumeratePhysicalDevices)                 \
  X(vkGetPhysicalDeviceProperties)              \
  X(vkGetPhysicalDeviceProperties2)             \
  X(vkGetPhysicalDeviceFeatures2)               \
  X(vkGetPhysicalDeviceMemoryProperties)        \
  X(vkGetPhysicalDeviceQueueFamilyProperties)   \
  X(vkEnumerateDeviceExtensionProperties)       \
  X(vkCreateDevice)                             \
  X(vkDestroyDevice)                            \
  X(vkGetDeviceQueue)                           \
  X(vkCreateBuffer)                             \
  X(vkDestroyBuffer)                            \
  X(vkGetBufferMemoryRequirements)              \
  X(vkAllocateMemory)                           \
  X(vkFreeMemory)                               \
  X(vkBindBufferMemory)                         \
  X(vkMapMemory)                                \
  X(vkUnmapMemory)                              \
  X(vkCreateShaderModule)                       \
  X(vkDestroyShaderModule)                      \
  X(vkCreateDescriptorSetLayout)                \
  X(vkDestroyDescriptorSetLayout)               \
  X(vkCreatePipelineLayout)                     \
  X(vkDestroyPipelineLayout)                    \
  X(vkCreateComputePipelines)                   \
  X(vkDestroyPipeline)                          \
  X(vkCreateDescriptorPool)                     \
  X(vkDestroyDescriptorPool)                    \
  X(vkResetDescriptorPool)                      \
  X(vkAllocateDescriptorSets)                   \
  X(vkUpdateDescriptorSets)                     \
  X(vkCreateCommandPool)                        \
  X(vkDestroyCommandPool)                       \
  X(vkAllocateCommandBuffers)                   \
  X(vkResetCommandBuffer)                       \
  X(vkBeginCommandBuffer)                       \
  X(vkEndCommandBuffer)                         \
  X(vkCmdBindPipeline)                          \
  X(vkCmdBindDescriptorSets)                    \
  X(vkCmdPushConstants)                         \
  X(vkCmdDispatch)                              \
  X(vkCmdPipelineBarrier)                       \
  X(vkCmdCopyBuffer)                            \
  X(vkCreateFence)                              \
  X(vkDestroyFence)                             \
  X(vkResetFences)                              \
  X(vkWaitForFences)                            \
  X(vkQueueSubmit)                              \
  X(vkDeviceWaitIdle)

struct Fns {
  PFN_vkGetInstanceProcAddr vkGetInstanceProcAddr = nullptr;
  PFN_vkCreateInstance vkCreateInstance = nullptr;
  PFN_vkEnumerateInstanceVersion vkEnumerateInstanceVersion = nullptr;
  // The version the instance was created for (at most 1.3): a device's
  // core features are usable up to min(this, its own apiVersion).
  uint32_t instance_api = 0;
#define CRIA_VK_DECL(name) PFN_##name name = nullptr;
  CRIA_VK_INSTANCE_FNS(CRIA_VK_DECL)
#undef CRIA_VK_DECL
};

}  // namespace cria::vk
