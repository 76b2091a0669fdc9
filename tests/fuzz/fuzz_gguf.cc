// The GGUF header parser on arbitrary bytes.
#include <cstdint>
#include <map>
#include <vector>

#include "formats/gguf.h"
#include "tests/fuzz/seeds.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  cria::fuzz::write_seeds("gguf");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::map<std::string, cria::GgufValue> meta;
  std::vector<cria::GgufTensor> tensors;
  (void)cria::parse_gguf_header(data, size, size, "fuzz.gguf", &meta, &tensors);
  return 0;
}
