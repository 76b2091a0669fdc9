// Any bytes given to the .cria reader must give a model or an error, never a
// crash or an out-of-bounds read (ASan checks). Valid files are also
// checksummed and their metadata decoded.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "formats/model_file.h"
#include "tests/fuzz/seeds.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  cria::fuzz::write_seeds("cria");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> bytes(data, data + size);
  auto f = cria::ModelFile::from_bytes(std::move(bytes), "fuzz.cria");
  if (!f.ok()) return 0;
  (void)(*f)->verify_checksums();
  cria::ModelMeta m = (*f)->meta();
  (void)m;
  return 0;
}
