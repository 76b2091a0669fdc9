#include "runtime/backends/backend.h"

#include "runtime/backends/cpu.h"
#ifdef CRIA_HAVE_XNNPACK
#include "runtime/backends/xnnpack.h"
#endif
#ifdef CRIA_HAVE_VULKAN
#include "runtime/backends/vulkan/vk_backend.h"
#endif

namespace cria::backends {

const char* op_kind_name(OpKind k) {
  switch (k) {
    case OpKind::kEmbedding: return "embedding";
    case OpKind::kLinear: return "linear";
    case OpKind::kNorm: return "norm";
    case OpKind::kPosition: return "position";
    case OpKind::kAttention: return "attention";
    case OpKind::kActivation: return "activation";
    case OpKind::kAdd: return "add";
  }
  return "?";
}

std::vector<std::string> built_backends() {
  std::vector<std::string> b = {"cpu"};
#ifdef CRIA_HAVE_XNNPACK
  b.push_back("xnnpack");
#endif
#ifdef CRIA_HAVE_VULKAN
  b.push_back("vulkan");
#endif
  return b;
}

namespace {

std::string list(const std::vector<std::string>& v) {
  std::string s;
  for (const std::string& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

}  // namespace

Result<std::unique_ptr<Backend>> create_backend(const std::string& name) {
  if (name == "cpu") return make_cpu_backend();
#ifdef CRIA_HAVE_XNNPACK
  if (name == "xnnpack") return make_xnnpack_backend();
#endif
#ifdef CRIA_HAVE_VULKAN
  if (name == "vulkan") return vk::make_vulkan_backend();
#endif
  const std::string have = "this build has: auto, " + list(built_backends());
  if (name == "xnnpack")
    return Error(Code::kUnsupported, "backend xnnpack is not in this build (built without XNNPACK); " + have);
  if (name == "vulkan")
    return Error(Code::kUnsupported,
                 "backend vulkan is not in this build (built without libvulkan-dev and glslc); " + have);
  return Error(Code::kInvalidArgument, "unknown backend '" + name + "'; " + have);
}

}  // namespace cria::backends
