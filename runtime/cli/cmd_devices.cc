// cria devices: the compute devices this machine offers. Today:
// what Vulkan sees (the GPU backend's candidates, chosen by index with
// CRIA_VK_DEVICE); a build without the Vulkan backend says so.
#include <cstdio>
#include <string>

#include "runtime/cli/args.h"
#include "runtime/cli/commands.h"
#include "runtime/cli/term.h"

#ifdef CRIA_HAVE_VULKAN
#include "runtime/backends/vulkan/vk_context.h"
#endif

namespace cria::cli {

int cmd_devices(int argc, char** argv) {
  Args a("devices", "");
  if (!a.parse(argc, argv)) return usage_error(a.error(), a.usage());
  if (a.help_requested()) {
    std::fputs(a.usage().c_str(), stdout);
    return 0;
  }
#ifdef CRIA_HAVE_VULKAN
  auto devs = vk::list_devices();
  if (!devs.ok()) {
    std::fprintf(stderr, "cria: %s\n", devs.status().message().c_str());
    return 1;
  }
  std::printf("%-3s %-40s %-10s %10s %8s %8s %12s\n", "#", "name (Vulkan)", "type", "memory", "subgroup", "int8dot",
              "max buffer");
  bool any_slow_dot = false;
  for (const vk::DeviceInfo& d : *devs) {
    char mem[32], range[32];
    std::snprintf(mem, sizeof mem, "%.1f GiB", (double)d.device_local_bytes / (1024.0 * 1024 * 1024));
    std::snprintf(range, sizeof range, "%.0f MiB", (double)d.max_storage_buffer_range / (1024.0 * 1024));
    const char* dot = !d.int8_dot ? "no" : d.int8_dot_accelerated ? "yes" : "yes*";
    any_slow_dot |= d.int8_dot && !d.int8_dot_accelerated;
    std::printf("%-3u %-40s %-10s %10s %8u %8s %12s\n", d.index, d.name.c_str(), d.type.c_str(), mem,
                d.subgroup_size, dot, range);
  }
  if (any_slow_dot) std::printf("* int8 dot product supported, but not reported as faster than plain arithmetic\n");
  return 0;
#else
  std::fprintf(stderr, "cria: this build has no Vulkan backend (configure with libvulkan-dev and glslc installed)\n");
  return 1;
#endif
}

}  // namespace cria::cli
