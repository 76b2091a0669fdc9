#pragma once

#include <memory>

#include "runtime/backends/backend.h"

namespace cria::vk {

// The `vulkan` Backend: linear layers on a Vulkan device (CRIA_VK_DEVICE
// picks it). Fails when there is no loader or no device.
Result<std::unique_ptr<backends::Backend>> make_vulkan_backend();

}  // namespace cria::vk
