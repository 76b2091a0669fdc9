#include "runtime/backends/vulkan/vk_context.h"

#include <dlfcn.h>
#include <link.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>

#include "runtime/backends/vulkan/shaders.h"

namespace cria::vk {

namespace {

const char* result_name(VkResult r) {
  switch (r) {
    case VK_ERROR_OUT_OF_HOST_MEMORY: return "out of host memory";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "out of device memory";
    case VK_ERROR_INITIALIZATION_FAILED: return "initialization failed";
    case VK_ERROR_DEVICE_LOST: return "device lost";
    case VK_ERROR_INCOMPATIBLE_DRIVER: return "no compatible Vulkan driver";
    case VK_ERROR_EXTENSION_NOT_PRESENT: return "extension not present";
    case VK_ERROR_FEATURE_NOT_PRESENT: return "feature not present";
    case VK_ERROR_TOO_MANY_OBJECTS: return "too many objects";
    case VK_ERROR_OUT_OF_POOL_MEMORY: return "descriptor pool exhausted";
    case VK_TIMEOUT: return "timeout";
    default: return "error";
  }
}

std::string vk_err(const char* what, VkResult r) {
  return std::string("vulkan: ") + what + ": " + result_name(r) + " (VkResult " + std::to_string((int)r) + ")";
}

// The paths of the shared objects mapped in this process.
std::set<std::string> loaded_objects() {
  std::set<std::string> names;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* out) {
        if (info->dlpi_name && info->dlpi_name[0]) static_cast<std::set<std::string>*>(out)->insert(info->dlpi_name);
        return 0;
      },
      &names);
  return names;
}

// Keeps every library that appeared since `before` (the drivers and layers
// the loader opened for an instance, and what they pulled in) loaded until
// the process exits. The loader unloads its drivers when the instance is
// destroyed, and a driver unloaded keeps nothing of what its globals held:
// lavapipe's CPU-topology table (128 bytes per load on AMD Zen) is lost at
// each unload, which LeakSanitizer reports with no module left to name, and
// each new instance pays the driver's load and start-up again (LLVM for
// lavapipe). Pinned, a process that opens and closes contexts loads each
// driver once.
void pin_new_objects(const std::set<std::string>& before) {
  for (const std::string& name : loaded_objects())
    if (!before.count(name)) dlopen(name.c_str(), RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

// The loader library and the instance: shared by list_devices() and
// Context::init().
Status open_instance(void** lib, Fns* fn, VkInstance* instance) {
  void* h = dlopen("libvulkan.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!h) h = dlopen("libvulkan.so", RTLD_NOW | RTLD_LOCAL);
  if (!h)
    return Error(Code::kUnsupported,
                 "vulkan: no Vulkan loader (libvulkan.so.1 not found); install libvulkan1 and a driver "
                 "(e.g. mesa-vulkan-drivers)");
  *lib = h;
  fn->vkGetInstanceProcAddr = reinterpret_cast<PFN_vkGetInstanceProcAddr>(dlsym(h, "vkGetInstanceProcAddr"));
  if (!fn->vkGetInstanceProcAddr) return Error(Code::kUnsupported, "vulkan: the loader has no vkGetInstanceProcAddr");
  fn->vkCreateInstance =
      reinterpret_cast<PFN_vkCreateInstance>(fn->vkGetInstanceProcAddr(VK_NULL_HANDLE, "vkCreateInstance"));
  fn->vkEnumerateInstanceVersion = reinterpret_cast<PFN_vkEnumerateInstanceVersion>(
      fn->vkGetInstanceProcAddr(VK_NULL_HANDLE, "vkEnumerateInstanceVersion"));
  uint32_t version = VK_API_VERSION_1_0;
  if (fn->vkEnumerateInstanceVersion) fn->vkEnumerateInstanceVersion(&version);
  if (!fn->vkCreateInstance || version < VK_API_VERSION_1_1)
    return Error(Code::kUnsupported, "vulkan: the loader offers Vulkan 1.0 only; cria needs 1.1");
  VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
  app.pApplicationName = "cria";
  app.pEngineName = "cria";
  fn->instance_api = std::min<uint32_t>(version, VK_API_VERSION_1_3);
  app.apiVersion = fn->instance_api;
  VkInstanceCreateInfo ci{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
  ci.pApplicationInfo = &app;
  const std::set<std::string> before = loaded_objects();
  VkResult r = fn->vkCreateInstance(&ci, nullptr, instance);
  pin_new_objects(before);
  // The loader answers "incompatible driver" when it found no driver at all.
  if (r == VK_ERROR_INCOMPATIBLE_DRIVER)
    return Error(Code::kNotFound, "vulkan: no Vulkan device (the loader found no driver; for a CPU device "
                                  "install mesa-vulkan-drivers)");
  if (r != VK_SUCCESS) return Error(Code::kUnsupported, vk_err("cannot create an instance", r));
#define CRIA_VK_LOAD(name) \
  fn->name = reinterpret_cast<PFN_##name>(fn->vkGetInstanceProcAddr(*instance, #name));
  CRIA_VK_INSTANCE_FNS(CRIA_VK_LOAD)
#undef CRIA_VK_LOAD
#define CRIA_VK_CHECK(name) \
  if (!fn->name) return Error(Code::kUnsupported, "vulkan: the loader lacks " #name);
  CRIA_VK_INSTANCE_FNS(CRIA_VK_CHECK)
#undef CRIA_VK_CHECK
  return Status::Ok();
}

void close_instance(void* lib, const Fns& fn, VkInstance instance) {
  if (instance && fn.vkDestroyInstance) fn.vkDestroyInstance(instance, nullptr);
  if (lib) dlclose(lib);
}

Result<std::vector<VkPhysicalDevice>> physical_devices(const Fns& fn, VkInstance instance) {
  uint32_t n = 0;
  VkResult r = fn.vkEnumeratePhysicalDevices(instance, &n, nullptr);
  if (r != VK_SUCCESS) return Error(Code::kUnsupported, vk_err("cannot enumerate devices", r));
  if (n == 0)
    return Error(Code::kNotFound, "vulkan: no Vulkan device (the loader found no driver; for a CPU device "
                                  "install mesa-vulkan-drivers)");
  std::vector<VkPhysicalDevice> devs(n);
  r = fn.vkEnumeratePhysicalDevices(instance, &n, devs.data());
  if (r != VK_SUCCESS && r != VK_INCOMPLETE) return Error(Code::kUnsupported, vk_err("cannot enumerate devices", r));
  devs.resize(n);
  return devs;
}

bool has_ext(const std::vector<VkExtensionProperties>& exts, const char* name) {
  for (const auto& e : exts)
    if (!std::strcmp(e.extensionName, name)) return true;
  return false;
}

// The optional features cria enables when present, chained for
// vkGetPhysicalDeviceFeatures2 and then for vkCreateDevice.
struct FeatureChain {
  VkPhysicalDeviceFeatures2 f2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
  VkPhysicalDevice16BitStorageFeatures s16{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES};
  VkPhysicalDevice8BitStorageFeatures s8{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_8BIT_STORAGE_FEATURES};
  VkPhysicalDeviceShaderFloat16Int8Features f16i8{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES};
  VkPhysicalDeviceShaderIntegerDotProductFeatures dot{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES};
  std::vector<const char*> exts;

  // Builds the chain from what the device's version and extensions allow.
  void build(uint32_t api, const std::vector<VkExtensionProperties>& avail) {
    void** next = &f2.pNext;
    auto link = [&](auto* s) {
      *next = s;
      next = &s->pNext;
    };
    link(&s16);  // core in 1.1
    const bool v12 = api >= VK_API_VERSION_1_2, v13 = api >= VK_API_VERSION_1_3;
    if (v12 || has_ext(avail, VK_KHR_8BIT_STORAGE_EXTENSION_NAME)) {
      link(&s8);
      if (!v12) exts.push_back(VK_KHR_8BIT_STORAGE_EXTENSION_NAME);
    }
    if (v12 || has_ext(avail, VK_KHR_SHADER_FLOAT16_INT8_EXTENSION_NAME)) {
      link(&f16i8);
      if (!v12) exts.push_back(VK_KHR_SHADER_FLOAT16_INT8_EXTENSION_NAME);
    }
    if (v13 || has_ext(avail, VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME)) {
      link(&dot);
      if (!v13) exts.push_back(VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME);
    }
  }
};

void describe(const Fns& fn, VkPhysicalDevice pd, uint32_t index, DeviceInfo* info, FeatureChain* chain) {
  VkPhysicalDeviceProperties props;
  fn.vkGetPhysicalDeviceProperties(pd, &props);
  uint32_t n = 0;
  fn.vkEnumerateDeviceExtensionProperties(pd, nullptr, &n, nullptr);
  std::vector<VkExtensionProperties> exts(n);
  fn.vkEnumerateDeviceExtensionProperties(pd, nullptr, &n, exts.data());
  exts.resize(n);
  chain->build(std::min(props.apiVersion, fn.instance_api), exts);
  fn.vkGetPhysicalDeviceFeatures2(pd, &chain->f2);

  VkPhysicalDeviceProperties2 p2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
  VkPhysicalDeviceSubgroupProperties sub{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
  VkPhysicalDeviceShaderIntegerDotProductProperties dotp{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_PROPERTIES};
  p2.pNext = &sub;
  bool dot_chained = false;
  for (void* p = chain->f2.pNext; p; p = static_cast<VkBaseOutStructure*>(p)->pNext)
    if (p == &chain->dot) dot_chained = true;
  if (dot_chained) sub.pNext = &dotp;
  fn.vkGetPhysicalDeviceProperties2(pd, &p2);

  info->index = index;
  info->name = props.deviceName;
  switch (props.deviceType) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: info->type = "discrete"; break;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: info->type = "integrated"; break;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: info->type = "virtual"; break;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: info->type = "cpu"; break;
    default: info->type = "other"; break;
  }
  info->api_version = props.apiVersion;
  info->subgroup_size = sub.subgroupSize;
  info->max_storage_buffer_range = props.limits.maxStorageBufferRange;
  info->max_workgroup_count_x = props.limits.maxComputeWorkGroupCount[0];
  info->int8_dot = dot_chained && chain->dot.shaderIntegerDotProduct;
  info->int8_dot_accelerated = info->int8_dot && dotp.integerDotProduct4x8BitPackedSignedAccelerated;
  info->float16 = chain->f16i8.shaderFloat16;
  info->int8 = chain->f16i8.shaderInt8;
  info->storage16 = chain->s16.storageBuffer16BitAccess;
  info->storage8 = chain->s8.storageBuffer8BitAccess;
  VkPhysicalDeviceMemoryProperties mem;
  fn.vkGetPhysicalDeviceMemoryProperties(pd, &mem);
  for (uint32_t h = 0; h < mem.memoryHeapCount; ++h)
    if (mem.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT)
      info->device_local_bytes = std::max<uint64_t>(info->device_local_bytes, mem.memoryHeaps[h].size);
  const VkMemoryPropertyFlags both = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT | VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT;
  for (uint32_t t = 0; t < mem.memoryTypeCount; ++t)
    if ((mem.memoryTypes[t].propertyFlags & both) == both) info->unified_memory = true;
}

}  // namespace

Result<std::vector<DeviceInfo>> list_devices() {
  void* lib = nullptr;
  Fns fn;
  VkInstance instance = VK_NULL_HANDLE;
  Status st = open_instance(&lib, &fn, &instance);
  std::vector<DeviceInfo> out;
  if (st.ok()) {
    auto devs = physical_devices(fn, instance);
    if (!devs.ok()) {
      st = devs.status();
    } else {
      for (uint32_t i = 0; i < devs->size(); ++i) {
        DeviceInfo info;
        FeatureChain chain;
        describe(fn, (*devs)[i], i, &info, &chain);
        out.push_back(std::move(info));
      }
    }
  }
  close_instance(lib, fn, instance);
  if (!st.ok()) return st;
  return out;
}

Result<std::unique_ptr<Context>> Context::create(int index) {
  if (index < 0) {
    index = 0;
    if (const char* e = std::getenv("CRIA_VK_DEVICE"); e && *e) {
      char* end = nullptr;
      const long v = std::strtol(e, &end, 10);
      if (*end || v < 0 || v > 1000)
        return Error(Code::kInvalidArgument, std::string("vulkan: CRIA_VK_DEVICE='") + e + "' is not a device index");
      index = (int)v;
    }
  }
  std::unique_ptr<Context> ctx(new Context());
  if (const char* e = std::getenv("CRIA_VK_MEMORY_LIMIT"); e && *e) {
    char* end = nullptr;
    const double v = std::strtod(e, &end);
    const std::string unit = end;
    const double mul = unit == "" ? 1 : unit == "K" ? 1024.0 : unit == "M" ? 1048576.0 : unit == "G" ? 1073741824.0 : -1;
    if (!(v > 0) || mul < 0)
      return Error(Code::kInvalidArgument, std::string("vulkan: CRIA_VK_MEMORY_LIMIT='") + e +
                                               "' is not a size (bytes, or a number with K, M or G)");
    ctx->budget_ = (uint64_t)(v * mul);
  }
  if (const char* e = std::getenv("CRIA_VK_TEST_LOSE_DEVICE"); e && *e) ctx->lose_after_ = std::atoll(e);
  CRIA_RETURN_IF_ERROR(ctx->init(index));
  return ctx;
}

Status Context::init(int index) {
  CRIA_RETURN_IF_ERROR(open_instance(&lib_, &fn_, &instance_));
  CRIA_ASSIGN_OR_RETURN(std::vector<VkPhysicalDevice> devs, physical_devices(fn_, instance_));
  if ((size_t)index >= devs.size())
    return Error(Code::kInvalidArgument, "vulkan: device " + std::to_string(index) + " does not exist (" +
                                             std::to_string(devs.size()) + " device(s); see `cria devices`)");
  phys_ = devs[(size_t)index];
  FeatureChain chain;
  describe(fn_, phys_, (uint32_t)index, &info_, &chain);
  fn_.vkGetPhysicalDeviceMemoryProperties(phys_, &mem_props_);

  uint32_t nq = 0;
  fn_.vkGetPhysicalDeviceQueueFamilyProperties(phys_, &nq, nullptr);
  std::vector<VkQueueFamilyProperties> qf(nq);
  fn_.vkGetPhysicalDeviceQueueFamilyProperties(phys_, &nq, qf.data());
  bool found = false;
  // A compute-only family first (an async compute queue on desktop GPUs),
  // else any family with compute.
  for (int pass = 0; pass < 2 && !found; ++pass)
    for (uint32_t i = 0; i < nq && !found; ++i) {
      const bool compute = qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT;
      const bool graphics = qf[i].queueFlags & VK_QUEUE_GRAPHICS_BIT;
      if (compute && (pass == 1 || !graphics)) {
        queue_family_ = i;
        found = true;
      }
    }
  if (!found) return Error(Code::kUnsupported, "vulkan: " + info_.name + " has no compute queue");

  const float prio = 1.0f;
  VkDeviceQueueCreateInfo qci{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
  qci.queueFamilyIndex = queue_family_;
  qci.queueCount = 1;
  qci.pQueuePriorities = &prio;
  // Enable exactly what the device reported (the chain holds its answers),
  // minus the optional graphics-only features of the core set.
  VkPhysicalDeviceFeatures core{};
  core.shaderInt16 = chain.f2.features.shaderInt16;
  core.shaderInt64 = chain.f2.features.shaderInt64;
  chain.f2.features = core;
  VkDeviceCreateInfo dci{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
  dci.pNext = &chain.f2;
  dci.queueCreateInfoCount = 1;
  dci.pQueueCreateInfos = &qci;
  dci.enabledExtensionCount = (uint32_t)chain.exts.size();
  dci.ppEnabledExtensionNames = chain.exts.data();
  CRIA_RETURN_IF_ERROR(check(fn_.vkCreateDevice(phys_, &dci, nullptr, &device_), "cannot create the device"));
  fn_.vkGetDeviceQueue(device_, queue_family_, 0, &queue_);

  VkCommandPoolCreateInfo pci{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
  pci.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
  pci.queueFamilyIndex = queue_family_;
  CRIA_RETURN_IF_ERROR(check(fn_.vkCreateCommandPool(device_, &pci, nullptr, &cmd_pool_), "command pool"));
  VkCommandBufferAllocateInfo cai{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
  cai.commandPool = cmd_pool_;
  cai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  cai.commandBufferCount = 1;
  CRIA_RETURN_IF_ERROR(check(fn_.vkAllocateCommandBuffers(device_, &cai, &cmd_), "command buffer"));
  VkFenceCreateInfo fci{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
  CRIA_RETURN_IF_ERROR(check(fn_.vkCreateFence(device_, &fci, nullptr, &fence_), "fence"));

  // Enough descriptor sets for one token of a deep model (~15 dispatches a
  // layer); the pool is reset at every begin().
  constexpr uint32_t kSets = 4096, kPerSet = 8;
  VkDescriptorPoolSize ps{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, kSets * kPerSet};
  VkDescriptorPoolCreateInfo dpi{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
  dpi.maxSets = kSets;
  dpi.poolSizeCount = 1;
  dpi.pPoolSizes = &ps;
  CRIA_RETURN_IF_ERROR(check(fn_.vkCreateDescriptorPool(device_, &dpi, nullptr, &desc_pool_), "descriptor pool"));
  desc_sets_left_ = kSets;
  return Status::Ok();
}

Context::~Context() {
  if (device_) {
    fn_.vkDeviceWaitIdle(device_);
    for (auto& c : pipelines_) {
      fn_.vkDestroyPipeline(device_, c.p.pipeline, nullptr);
      fn_.vkDestroyPipelineLayout(device_, c.p.layout, nullptr);
      fn_.vkDestroyDescriptorSetLayout(device_, c.p.set_layout, nullptr);
    }
    if (desc_pool_) fn_.vkDestroyDescriptorPool(device_, desc_pool_, nullptr);
    if (fence_) fn_.vkDestroyFence(device_, fence_, nullptr);
    if (cmd_pool_) fn_.vkDestroyCommandPool(device_, cmd_pool_, nullptr);
    fn_.vkDestroyDevice(device_, nullptr);
  }
  close_instance(lib_, fn_, instance_);
}

Status Context::check(VkResult r, const char* what) {
  if (r == VK_SUCCESS) return Status::Ok();
  if (r == VK_ERROR_DEVICE_LOST) lost_ = true;
  const Code code = r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY ? Code::kOutOfMemory
                                                                                           : Code::kInternal;
  return Error(code, vk_err(what, r));
}

void Context::groups_2d(uint64_t n, uint32_t* gx, uint32_t* gy) const {
  const uint64_t maxx = std::max<uint32_t>(1, std::min<uint32_t>(info_.max_workgroup_count_x, 65535));
  if (n <= maxx) {
    *gx = (uint32_t)std::max<uint64_t>(n, 1);
    *gy = 1;
  } else {
    *gx = (uint32_t)maxx;
    *gy = (uint32_t)((n + maxx - 1) / maxx);
  }
}

Result<const Pipeline*> Context::pipeline(const char* shader, uint32_t bindings, uint32_t push_bytes) {
  for (const auto& c : pipelines_)
    if (c.name == shader) return &c.p;
  const ShaderCode* code = find_shader(shader);
  if (!code) return Error(Code::kInternal, std::string("vulkan: no embedded shader '") + shader + "'");
  Pipeline p;
  p.bindings = bindings;
  p.push_bytes = push_bytes;
  std::vector<VkDescriptorSetLayoutBinding> b(bindings);
  for (uint32_t i = 0; i < bindings; ++i)
    b[i] = {i, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1, VK_SHADER_STAGE_COMPUTE_BIT, nullptr};
  VkDescriptorSetLayoutCreateInfo dli{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
  dli.bindingCount = bindings;
  dli.pBindings = b.data();
  CRIA_RETURN_IF_ERROR(check(fn_.vkCreateDescriptorSetLayout(device_, &dli, nullptr, &p.set_layout), shader));
  VkPushConstantRange pr{VK_SHADER_STAGE_COMPUTE_BIT, 0, push_bytes};
  VkPipelineLayoutCreateInfo pli{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
  pli.setLayoutCount = 1;
  pli.pSetLayouts = &p.set_layout;
  pli.pushConstantRangeCount = push_bytes ? 1 : 0;
  pli.pPushConstantRanges = &pr;
  Status st = check(fn_.vkCreatePipelineLayout(device_, &pli, nullptr, &p.layout), shader);
  VkShaderModule mod = VK_NULL_HANDLE;
  if (st.ok()) {
    VkShaderModuleCreateInfo smi{VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
    smi.codeSize = code->bytes;
    smi.pCode = code->words;
    st = check(fn_.vkCreateShaderModule(device_, &smi, nullptr, &mod), shader);
  }
  if (st.ok()) {
    VkComputePipelineCreateInfo cpi{VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
    cpi.stage = {VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO};
    cpi.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
    cpi.stage.module = mod;
    cpi.stage.pName = "main";
    cpi.layout = p.layout;
    st = check(fn_.vkCreateComputePipelines(device_, VK_NULL_HANDLE, 1, &cpi, nullptr, &p.pipeline), shader);
    fn_.vkDestroyShaderModule(device_, mod, nullptr);
  }
  if (!st.ok()) {
    if (p.layout) fn_.vkDestroyPipelineLayout(device_, p.layout, nullptr);
    fn_.vkDestroyDescriptorSetLayout(device_, p.set_layout, nullptr);
    return st;
  }
  pipelines_.push_back({shader, p});
  return &pipelines_.back().p;
}

Status Context::begin() {
  if (lost_) return Error(Code::kInternal, "vulkan: the device was lost; no further work can run on it");
  if (recording_) return Error(Code::kInternal, "vulkan: begin() while already recording");
  CRIA_RETURN_IF_ERROR(check(fn_.vkResetDescriptorPool(device_, desc_pool_, 0), "reset descriptor pool"));
  desc_sets_left_ = 4096;
  CRIA_RETURN_IF_ERROR(check(fn_.vkResetCommandBuffer(cmd_, 0), "reset command buffer"));
  VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  CRIA_RETURN_IF_ERROR(check(fn_.vkBeginCommandBuffer(cmd_, &bi), "begin command buffer"));
  recording_ = true;
  return Status::Ok();
}

namespace {
void full_barrier(const Fns& fn, VkCommandBuffer cmd) {
  VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
  mb.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                     VK_ACCESS_TRANSFER_WRITE_BIT | VK_ACCESS_HOST_READ_BIT;
  const VkPipelineStageFlags stages = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
  fn.vkCmdPipelineBarrier(cmd, stages, stages | VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, nullptr, 0, nullptr);
}
}  // namespace

Status Context::dispatch(const Pipeline& p, const std::vector<const Buffer*>& buffers, const void* push,
                         uint32_t gx, uint32_t gy, uint32_t gz) {
  if (!recording_) return Error(Code::kInternal, "vulkan: dispatch() outside begin()/submit()");
  if (buffers.size() != p.bindings) return Error(Code::kInternal, "vulkan: dispatch: wrong number of buffers");
  if (desc_sets_left_ == 0)
    return Error(Code::kOutOfRange, "vulkan: more than 4096 dispatches in one submission");
  --desc_sets_left_;
  VkDescriptorSetAllocateInfo ai{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
  ai.descriptorPool = desc_pool_;
  ai.descriptorSetCount = 1;
  ai.pSetLayouts = &p.set_layout;
  VkDescriptorSet set;
  CRIA_RETURN_IF_ERROR(check(fn_.vkAllocateDescriptorSets(device_, &ai, &set), "descriptor set"));
  VkDescriptorBufferInfo bi[8];
  VkWriteDescriptorSet w[8];
  for (uint32_t i = 0; i < p.bindings && i < 8; ++i) {
    if (!buffers[i] || !buffers[i]->valid()) return Error(Code::kInternal, "vulkan: dispatch: empty buffer");
    bi[i] = {buffers[i]->handle(), 0, VK_WHOLE_SIZE};
    w[i] = {VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
    w[i].dstSet = set;
    w[i].dstBinding = i;
    w[i].descriptorCount = 1;
    w[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    w[i].pBufferInfo = &bi[i];
  }
  fn_.vkUpdateDescriptorSets(device_, std::min<uint32_t>(p.bindings, 8), w, 0, nullptr);
  fn_.vkCmdBindPipeline(cmd_, VK_PIPELINE_BIND_POINT_COMPUTE, p.pipeline);
  fn_.vkCmdBindDescriptorSets(cmd_, VK_PIPELINE_BIND_POINT_COMPUTE, p.layout, 0, 1, &set, 0, nullptr);
  if (p.push_bytes) fn_.vkCmdPushConstants(cmd_, p.layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, p.push_bytes, push);
  fn_.vkCmdDispatch(cmd_, gx, gy, gz);
  full_barrier(fn_, cmd_);
  return Status::Ok();
}

Status Context::copy(const Buffer& src, uint64_t src_off, Buffer& dst, uint64_t dst_off, uint64_t bytes) {
  if (!recording_) return Error(Code::kInternal, "vulkan: copy() outside begin()/submit()");
  if (src_off + bytes > src.size() || dst_off + bytes > dst.size())
    return Error(Code::kOutOfRange, "vulkan: copy past the end of a buffer");
  VkBufferCopy c{src_off, dst_off, bytes};
  fn_.vkCmdCopyBuffer(cmd_, src.handle(), dst.handle(), 1, &c);
  full_barrier(fn_, cmd_);
  return Status::Ok();
}

Status Context::submit() {
  if (!recording_) return Error(Code::kInternal, "vulkan: submit() without begin()");
  recording_ = false;
  CRIA_RETURN_IF_ERROR(check(fn_.vkEndCommandBuffer(cmd_), "end command buffer"));
  VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
  si.commandBufferCount = 1;
  si.pCommandBuffers = &cmd_;
  CRIA_RETURN_IF_ERROR(check(fn_.vkResetFences(device_, 1, &fence_), "reset fence"));
  if (lose_after_ >= 0 && lose_after_-- == 0) return check(VK_ERROR_DEVICE_LOST, "submit");
  CRIA_RETURN_IF_ERROR(check(fn_.vkQueueSubmit(queue_, 1, &si, fence_), "submit"));
  // No timeout: a hung device shows as VK_ERROR_DEVICE_LOST from the driver.
  return check(fn_.vkWaitForFences(device_, 1, &fence_, VK_TRUE, UINT64_MAX), "wait for the device");
}

}  // namespace cria::vk
