// Seed inputs for the fuzzers, written by each target itself when
// CRIA_FUZZ_SEED_DIR is set (tests/fuzz/run_fuzzer does), so no binary seed
// files live in the repository.
#pragma once

#include <string>

namespace cria::fuzz {

// Calls write(name, bytes) for each seed of the given kind:
// "cria", "safetensors" or "gguf".
void write_seeds(const std::string& kind);

}  // namespace cria::fuzz
