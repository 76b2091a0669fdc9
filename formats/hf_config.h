// Reader of Hugging Face config.json (LlamaForCausalLM, FalconForCausalLM and
// the legacy RWForCausalLM key variants) and generation_config.json.
#pragma once

#include <string>

#include "formats/config.h"
#include "formats/model_meta.h"
#include "formats/status.h"

namespace cria {

// Parses config.json text; `name` is used in error messages.
Status parse_hf_config(const std::string& text, const std::string& name, ModelConfig* out);

// Parses generation_config.json text.
Status parse_generation_config(const std::string& text, const std::string& name,
                               GenerationDefaults* out);

// Reads `dir`/config.json and, when present, `dir`/generation_config.json.
Status read_hf_config(const std::string& dir, ModelConfig* cfg, GenerationDefaults* gen);

// Reads a whole small file into a string; errors name the path.
Status read_text_file(const std::string& path, std::string* out);

}  // namespace cria
