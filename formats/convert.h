// The offline converter: a Hugging Face checkpoint directory or a GGUF file
// in, a .cria file out, quantized on the way. Tensors stream through in row
// chunks, so peak memory is bounded by the largest tensor's scale plane plus
// a chunk buffer, never the model.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "formats/status.h"

namespace cria {

struct ConvertProgress {
  std::string tensor;  // canonical name of the tensor being written
  size_t index = 0, count = 0;
  uint64_t bytes_done = 0, bytes_total = 0;  // of the output data segment
  bool tensor_done = false;
};

struct ConvertOptions {
  // f32 | f16 | q8 | q4 | keep (GGUF: keep each tensor's type; HF: as stored).
  // Empty means the default: q4 for HF checkpoints, keep for GGUF.
  std::string recipe;
  uint32_t group = 32;  // q4 group size: 32 or 128
  int threads = 2;
  bool search = true;   // scale search (false: max-abs round-to-nearest)
  // Chat format override: "" keeps what the source's template implies;
  // "llama3", "falcon" or "none" sets it (Falcon instruct checkpoints ship
  // no template).
  std::string chat_template;
  std::function<void(const ConvertProgress&)> progress;
  // Checked between chunks; set it (e.g. from a SIGINT handler) to stop.
  const std::atomic<bool>* cancel = nullptr;
};

extern const char* const kConverterVersion;

// Converts `src` (HF dir or .gguf) to `out`. On failure nothing is left at
// `out` (an existing file there is only replaced on success).
Status convert_model(const std::string& src, const std::string& out, const ConvertOptions& opt);

}  // namespace cria
