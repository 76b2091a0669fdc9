// The SPIR-V of shaders/*.comp, compiled by glslc at build time and embedded
// (see CMakeLists.txt), looked up by the shader's file name without .comp.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cria::vk {

struct ShaderCode {
  const char* name;
  const uint32_t* words;
  size_t bytes;
};

// nullptr when no shader has that name.
const ShaderCode* find_shader(const char* name);

}  // namespace cria::vk
