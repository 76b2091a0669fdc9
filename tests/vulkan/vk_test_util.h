// Shared pieces of the Vulkan tests: the one context, buffers from host
// vectors (outputs pre-filled with NaN), read-back.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "runtime/backends/vulkan/vk_context.h"
#include "tests/random.h"
#include "runtime/backends/vulkan/vk_ops.h"

namespace vktest {

using cria::vk::Buffer;
using cria::vk::Context;

// The device under test (CRIA_VK_DEVICE chooses), created once. nullptr
// (with the reason printed) only when this machine has no Vulkan loader or
// device; CRIA_VK_REQUIRE=1 makes that a failure instead of a skip. A device
// that exists but cannot be opened is always a failure.
inline Context* ctx() {
  static std::string why;
  static bool absent = false;
  static std::unique_ptr<Context> c = [] {
    auto r = Context::create();
    if (!r.ok()) {
      why = r.status().message();
      absent = !cria::vk::list_devices().ok();
      return std::unique_ptr<Context>();
    }
    return std::move(r).value();
  }();
  if (!c && !absent) FAIL("a Vulkan device exists but could not be opened: " << why);
  if (!c) {
    const char* req = std::getenv("CRIA_VK_REQUIRE");
    if (req && *req == '1') FAIL("CRIA_VK_REQUIRE=1 but no Vulkan device: " << why);
    MESSAGE("skipped: no Vulkan device: " << why);
  }
  return c.get();
}

using cria::test::randn;

inline Buffer upload(Context& c, const void* data, size_t bytes) {
  auto b = c.create_buffer(bytes, Buffer::Kind::kDevice, "test");
  REQUIRE_MESSAGE(b.ok(), b.status().message());
  REQUIRE(c.upload(*b, 0, data, bytes).ok());
  return std::move(b).value();
}
inline Buffer upload(Context& c, const std::vector<float>& v) { return upload(c, v.data(), v.size() * 4); }

// A device buffer of n floats, all NaN, so an element no shader wrote fails.
inline Buffer nan_buffer(Context& c, size_t n) {
  return upload(c, std::vector<float>(n, std::numeric_limits<float>::quiet_NaN()));
}

inline std::vector<float> download(Context& c, const Buffer& b, size_t n) {
  std::vector<float> v(n);
  REQUIRE(c.download(b, 0, v.data(), n * 4).ok());
  return v;
}

// Runs `record` as one batch and checks every step succeeded.
template <typename F>
void run_batch(Context& c, F record) {
  REQUIRE(c.begin().ok());
  cria::Status st = record();
  REQUIRE_MESSAGE(st.ok(), st.message());
  cria::Status sub = c.submit();
  REQUIRE_MESSAGE(sub.ok(), sub.message());
}

constexpr double kU = 1.0 / (1 << 24);  // f32 unit roundoff, 2^-24

}  // namespace vktest
