// The drivers the Vulkan loader opens for an instance stay loaded after the
// instance is destroyed (vk_context.cc, pin_new_objects): a process that
// lists devices or opens contexts again and again loads each driver once,
// and nothing a driver's globals hold is lost to an unload. Its own binary,
// so that no Vulkan instance exists before the first check.
#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <string>

#include "runtime/backends/vulkan/vk_context.h"

namespace {

// The shared objects mapped in this process, from /proc/self/maps (not the
// dynamic loader's list that the code under test walks).
std::set<std::string> mapped_objects() {
  std::set<std::string> names;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    const size_t slash = line.find('/');
    if (slash == std::string::npos) continue;
    const std::string path = line.substr(slash);
    if (path.find(".so") != std::string::npos) names.insert(path);
  }
  return names;
}

bool is_loader(const std::string& path) { return path.find("libvulkan.so") != std::string::npos; }

std::set<std::string> without_loader(std::set<std::string> names) {
  for (auto it = names.begin(); it != names.end();) it = is_loader(*it) ? names.erase(it) : std::next(it);
  return names;
}

}  // namespace

TEST_CASE("vulkan: the drivers an instance loaded stay loaded once it is destroyed") {
  const std::set<std::string> before = mapped_objects();
  auto c = cria::vk::Context::create();
  if (!c.ok()) {
    const char* req = std::getenv("CRIA_VK_REQUIRE");
    if (req && *req == '1') FAIL("CRIA_VK_REQUIRE=1 but no Vulkan device: " << c.status().message());
    MESSAGE("skipped: no Vulkan device: " << c.status().message());
    return;
  }
  const std::set<std::string> during = without_loader(mapped_objects());
  c->reset();  // destroys the device and the instance, closes the loader
  const std::set<std::string> after = without_loader(mapped_objects());
  int opened = 0;
  for (const std::string& name : during) {
    if (before.count(name)) continue;
    ++opened;
    CHECK_MESSAGE(after.count(name), name << " was unloaded with the instance");
  }
  MESSAGE(opened << " libraries opened for the instance");
  CHECK(opened > 0);

  // A second context and a device listing map nothing new and unmap nothing.
  REQUIRE(cria::vk::Context::create().ok());
  REQUIRE(cria::vk::list_devices().ok());
  CHECK(without_loader(mapped_objects()) == after);
}
