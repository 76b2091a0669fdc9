// Everything in a .cria header except the tensor table, as plain C++ values.
// The converter fills a ModelMeta from its sources and the writer serializes
// it; the runtime reads the FlatBuffer directly (zero copy) or through
// read_meta() when it wants owned values (tokenizer construction, tools).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "formats/config.h"

namespace cria {

// Pre-tokenizer steps cria implements (values match cria.fbs PreTokKind).
enum class PreTokKind : uint8_t {
  kSplitLlama3 = 0,   // Split(Llama 3 regex, Isolated)
  kByteLevel = 1,     // ByteLevel; with use_regex the GPT-2 regex split first
  kPunctuation = 2,   // Punctuation(Contiguous)
  kDigits = 3,        // Digits(individual_digits)
  kSplitDigits3 = 4,  // Split("[0-9][0-9][0-9]", Isolated)
};

struct PreTokStep {
  PreTokKind kind = PreTokKind::kByteLevel;
  bool use_regex = false;
  bool add_prefix_space = false;
  bool individual_digits = false;
};

struct AddedToken {
  uint32_t id = 0;
  std::string content;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = false;
};

struct TokenizerData {
  // Raw bytes of each token, index = id (the byte-level alphabet undone;
  // added tokens hold their content as written).
  std::vector<std::string> vocab;
  std::vector<std::pair<uint32_t, uint32_t>> merges;  // rank order
  bool ignore_merges = false;
  std::vector<PreTokStep> pre_tokenizer;
  std::vector<AddedToken> added_tokens;
  bool add_bos = false;
  int32_t bos_id = -1;
  std::vector<uint32_t> eos_ids;
  int32_t pad_id = -1;
  std::string pre_tokenizer_json;
};

enum class ChatKind : uint8_t { kNone = 0, kLlama3 = 1, kFalcon = 2 };
const char* chat_kind_name(ChatKind k);

struct ChatTemplateData {
  ChatKind kind = ChatKind::kNone;
  std::string jinja;
};

struct GenerationDefaults {
  bool do_sample = false;
  float temperature = 1.0f;
  int32_t top_k = 0;
  float top_p = 1.0f;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
  int32_t max_new_tokens = 0;
  int32_t max_length = 0;
  std::vector<uint32_t> eos_ids;
};

struct Provenance {
  std::string source;
  std::string source_format;
  std::string converter_version;
  std::string quant_recipe;
};

struct ModelMeta {
  ModelConfig config;
  TokenizerData tokenizer;
  ChatTemplateData chat;
  GenerationDefaults generation;
  Provenance provenance;
};

}  // namespace cria
