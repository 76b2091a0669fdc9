// Chat prompt formats: Llama 3 instruct and Falcon instruct, rendered in
// C++ (no Jinja interpreter), byte-identical to the official templates.
#pragma once

#include <string>
#include <vector>

#include "formats/model_meta.h"
#include "formats/status.h"

namespace cria {

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

// Renders a conversation as prompt text. Messages: an optional system
// message first, then user and assistant alternating, starting with user;
// with add_generation_prompt the last one must be user and the assistant's
// turn is opened at the end.
//
// kLlama3:  bos_text, then per message
//           "<|start_header_id|>" role "<|end_header_id|>\n\n" trim(content) "<|eot_id|>",
//           then "<|start_header_id|>assistant<|end_header_id|>\n\n".
// kFalcon:  "System: ..." / "User: ..." / "Falcon: ..." lines joined by "\n",
//           content trimmed, then "\nFalcon:" (bos_text is not used).
// The text contains special-token text: encode it with parse_special=true
// and add_bos=false (bos_text already carries the BOS for Llama 3).
// trim() removes what Python's str.strip() removes, as transformers' Jinja does.
Result<std::string> render_chat(ChatKind kind, const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                                const std::string& bos_text);

// Strings that end the assistant's turn in the rendered format, beyond the
// model's EOS tokens (Falcon: "\nUser:"; Llama 3 stops on <|eot_id|>, a token).
std::vector<std::string> chat_stop_strings(ChatKind kind);

}  // namespace cria
