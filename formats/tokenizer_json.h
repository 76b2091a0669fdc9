// Reader of Hugging Face tokenizer.json + tokenizer_config.json.
#pragma once

#include <string>

#include "formats/model_meta.h"
#include "formats/status.h"

namespace cria {

// Reads `dir`/tokenizer.json and, when present, `dir`/tokenizer_config.json:
// vocab, merges, added/special tokens, pre-tokenizer, BOS/EOS and the chat
// template. Errors name the file and the problem.
Status read_hf_tokenizer(const std::string& dir, TokenizerData* tok, ChatTemplateData* chat);

// Recognises a chat template's format from its Jinja text (Llama 3 instruct,
// Falcon instruct); kNone otherwise.
ChatKind detect_chat_kind(const std::string& jinja);

}  // namespace cria
