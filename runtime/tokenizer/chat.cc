#include "runtime/tokenizer/chat.h"

#include "runtime/tokenizer/unicode.h"

namespace cria {
namespace {

// Python's str.isspace(): White_Space plus the separators U+001C..U+001F.
bool py_space(uint32_t cp) { return (cp >= 0x1C && cp <= 0x1F) || (tok::char_class(cp) & tok::kSpace); }

std::string trim(const std::string& s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const size_t n = s.size();
  size_t b = 0;
  while (b < n) {
    uint32_t cp;
    const int len = tok::decode_utf8(p + b, p + n, &cp);
    if (!py_space(cp)) break;
    b += len;
  }
  // Last non-space character: scan forward, remembering where it ends.
  size_t e = b;
  for (size_t i = b; i < n;) {
    uint32_t cp;
    const int len = tok::decode_utf8(p + i, p + n, &cp);
    i += len;
    if (!py_space(cp)) e = i;
  }
  return s.substr(b, e - b);
}

Status check_roles(const std::vector<ChatMessage>& m, bool add_generation_prompt) {
  if (m.empty()) return Error(Code::kInvalidArgument, "chat: no messages");
  size_t i = 0;
  if (m[0].role == "system") ++i;
  if (i == m.size()) return Error(Code::kInvalidArgument, "chat: a system message alone is not a conversation");
  for (size_t k = i; k < m.size(); ++k) {
    const char* want = ((k - i) % 2 == 0) ? "user" : "assistant";
    if (m[k].role != want) {
      if (m[k].role == "system") {
        return Error(Code::kInvalidArgument,
                     "chat: message " + std::to_string(k) + ": a system message may only come first");
      }
      return Error(Code::kInvalidArgument, "chat: message " + std::to_string(k) + " has role '" + m[k].role +
                                               "', expected '" + want + "' (user and assistant must alternate, starting with user)");
    }
  }
  if (add_generation_prompt && m.back().role != "user") {
    return Error(Code::kInvalidArgument, "chat: the last message must be from the user to prompt the assistant");
  }
  return Status::Ok();
}

std::string render_llama3(const std::vector<ChatMessage>& m, bool add_generation_prompt, const std::string& bos) {
  std::string s = bos;
  for (const ChatMessage& msg : m) {
    s += "<|start_header_id|>";
    s += msg.role;
    s += "<|end_header_id|>\n\n";
    s += trim(msg.content);
    s += "<|eot_id|>";
  }
  if (add_generation_prompt) s += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return s;
}

std::string render_falcon(const std::vector<ChatMessage>& m, bool add_generation_prompt) {
  std::string s;
  for (size_t k = 0; k < m.size(); ++k) {
    if (k) s += '\n';
    if (m[k].role == "system") {
      s += "System: ";
    } else if (m[k].role == "user") {
      s += "User: ";
    } else {
      s += "Falcon: ";
    }
    s += trim(m[k].content);
  }
  if (add_generation_prompt) s += "\nFalcon:";
  return s;
}

}  // namespace

Result<std::string> render_chat(ChatKind kind, const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                                const std::string& bos_text) {
  switch (kind) {
    case ChatKind::kLlama3:
      CRIA_RETURN_IF_ERROR(check_roles(messages, add_generation_prompt));
      return render_llama3(messages, add_generation_prompt, bos_text);
    case ChatKind::kFalcon:
      CRIA_RETURN_IF_ERROR(check_roles(messages, add_generation_prompt));
      return render_falcon(messages, add_generation_prompt);
    case ChatKind::kNone:
      return Error(Code::kUnsupported, "chat: this model has no chat template (plain completion only)");
  }
  return Error(Code::kInvalidArgument, "chat: unknown chat kind " + std::to_string(static_cast<int>(kind)));
}

std::vector<std::string> chat_stop_strings(ChatKind kind) {
  if (kind == ChatKind::kFalcon) return {"\nUser:"};
  return {};
}

}  // namespace cria
