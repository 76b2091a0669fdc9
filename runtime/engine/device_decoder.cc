// make_device_decoder(): the one place that knows which device backends
// can run a whole layer stack (model/device_decoder.h).
#include "runtime/model/device_decoder.h"

#ifdef CRIA_HAVE_VULKAN
#include "runtime/backends/vulkan/vk_layer_stack.h"
#endif

namespace cria {

Result<std::unique_ptr<DeviceDecoder>> make_device_decoder([[maybe_unused]] const Model& m,
                                                           [[maybe_unused]] int64_t n_ctx) {
#ifdef CRIA_HAVE_VULKAN
  return vk::make_decoder(m, n_ctx);
#else
  return std::unique_ptr<DeviceDecoder>();
#endif
}

}  // namespace cria
