#include "tok_test_util.h"

#include "runtime/tokenizer/chat.h"

using namespace cria;
using namespace tok_test;

namespace {

std::string render(ChatKind k, const std::vector<ChatMessage>& m, bool gen = true) {
  auto r = render_chat(k, m, gen, "<|begin_of_text|>");
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  return r.value();
}

std::string render_error(ChatKind k, const std::vector<ChatMessage>& m, bool gen = true) {
  auto r = render_chat(k, m, gen, "<|begin_of_text|>");
  return r.ok() ? std::string("(ok)") : r.status().message();
}

}  // namespace

TEST_CASE("chat: Llama 3 instruct format") {
  CHECK(render(ChatKind::kLlama3, {{"system", "You are helpful."}, {"user", " Hi! \n"}}) ==
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n");
  CHECK(render(ChatKind::kLlama3, {{"user", "a"}, {"assistant", "b"}}, false) ==
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\na<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nb<|eot_id|>");
  auto no_bos = render_chat(ChatKind::kLlama3, {{"user", "a"}}, true, "");
  REQUIRE(no_bos.ok());
  CHECK(no_bos.value().rfind("<|start_header_id|>user", 0) == 0);
  // Content is trimmed as Python's str.strip() does (U+0085 and U+001C..U+001F too).
  CHECK(render(ChatKind::kLlama3, {{"user", "\x1c\xC2\x85 x \xE3\x80\x80"}}).find("\n\nx<|eot_id|>") !=
        std::string::npos);
  CHECK(render(ChatKind::kLlama3, {{"user", "\xEF\xBB\xBFx"}}).find("\n\n\xEF\xBB\xBFx<|eot_id|>") !=
        std::string::npos);
}

TEST_CASE("chat: Falcon instruct format and stop strings") {
  CHECK(render(ChatKind::kFalcon, {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello."}, {"user", "Bye"}}) ==
        "System: Be brief.\nUser: Hi\nFalcon: Hello.\nUser: Bye\nFalcon:");
  CHECK(render(ChatKind::kFalcon, {{"user", "Hi"}}, false) == "User: Hi");
  CHECK(chat_stop_strings(ChatKind::kFalcon) == std::vector<std::string>{"\nUser:"});
  CHECK(chat_stop_strings(ChatKind::kLlama3).empty());
  CHECK(chat_stop_strings(ChatKind::kNone).empty());
}

TEST_CASE("chat: conversations that do not fit the format are errors") {
  for (ChatKind k : {ChatKind::kLlama3, ChatKind::kFalcon}) {
    CHECK(render_error(k, {}).find("no messages") != std::string::npos);
    CHECK(render_error(k, {{"system", "s"}}).find("alone") != std::string::npos);
    CHECK(render_error(k, {{"assistant", "a"}}).find("expected 'user'") != std::string::npos);
    CHECK(render_error(k, {{"user", "a"}, {"user", "b"}}).find("expected 'assistant'") != std::string::npos);
    CHECK(render_error(k, {{"user", "a"}, {"system", "s"}}).find("only come first") != std::string::npos);
    CHECK(render_error(k, {{"user", "a"}, {"assistant", "b"}}).find("last message") != std::string::npos);
    CHECK(render_error(k, {{"user", "a"}, {"assistant", "b"}}, false) == "(ok)");
    CHECK(render_error(k, {{"tool", "a"}}).find("role 'tool'") != std::string::npos);
  }
  auto none = render_chat(ChatKind::kNone, {{"user", "a"}}, true, "");
  CHECK(none.status().code() == Code::kUnsupported);
}

TEST_CASE("chat: the official Jinja templates, rendered by @huggingface/jinja") {
  const nlohmann::json ref = reference("chat.json");
  if (ref.is_null()) return;
  CHECK(detect_chat_kind(ref["llama3_template"].get<std::string>()) == ChatKind::kLlama3);
  CHECK(detect_chat_kind(ref["falcon_template"].get<std::string>()) == ChatKind::kFalcon);
  size_t n = 0;
  for (const auto& c : ref["cases"]) {
    std::vector<ChatMessage> m;
    for (const auto& x : c["messages"]) m.push_back({x["role"].get<std::string>(), x["content"].get<std::string>()});
    const bool gen = c["add_generation_prompt"].get<bool>();
    CHECK(render(ChatKind::kLlama3, m, gen) == c["llama3"].get<std::string>());
    CHECK(render(ChatKind::kFalcon, m, gen) == c["falcon"].get<std::string>());
    ++n;
  }
  CHECK(n >= 10);
}

TEST_CASE("chat: template detection and encoding a rendered prompt") {
  CHECK(detect_chat_kind("") == ChatKind::kNone);
  CHECK(detect_chat_kind("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}") ==
        ChatKind::kNone);
  CHECK(detect_chat_kind("{{ 'User: ' + m }}{{ 'Falcon:' }}") == ChatKind::kFalcon);
  const Loaded* l = llama3();
  if (!l) return;
  CHECK(l->chat.kind == ChatKind::kLlama3);
  const std::string bos(l->tok->token_bytes(l->tok->bos_id()));
  auto text = render_chat(l->chat.kind, {{"user", "Hi"}}, true, bos);
  REQUIRE(text.ok());
  // The rendered text carries the BOS: encode without add_bos, with special tokens.
  const std::vector<int32_t> ids = encode(*l->tok, text.value(), true);
  CHECK(ids == std::vector<int32_t>{128000, 128006, 882, 128007, 271, 13347, 128009, 128006, 78191, 128007, 271});
}
