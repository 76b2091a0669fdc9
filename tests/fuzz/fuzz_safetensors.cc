// The safetensors header parser on arbitrary bytes: first 8 bytes are the
// declared data size, the rest the JSON header.
#include <cstdint>
#include <cstring>
#include <vector>

#include "formats/safetensors.h"
#include "tests/fuzz/seeds.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  cria::fuzz::write_seeds("safetensors");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 8) return 0;
  uint64_t data_size;
  std::memcpy(&data_size, data, 8);
  std::vector<cria::StTensor> ts;
  (void)cria::parse_safetensors_header(reinterpret_cast<const char*>(data + 8), size - 8, data_size, "fuzz.safetensors",
                                       &ts);
  return 0;
}
