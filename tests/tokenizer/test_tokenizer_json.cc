#include "tok_test_util.h"

#include <filesystem>
#include <unistd.h>

using namespace cria;
using namespace tok_test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// A scratch directory holding one tokenizer.json (+ config) per call.
struct Scratch {
  fs::path dir = fs::temp_directory_path() / ("cria_tok_json_" + std::to_string(getpid()));
  Scratch() { fs::create_directories(dir); }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(dir / name, std::ios::binary) << text;
  }
  Status read(TokenizerData* d, ChatTemplateData* c) const { return read_hf_tokenizer(dir.string(), d, c); }
};

json gpt2_json() { return json::parse(read_text(here() + "/data/gpt2_mini/tokenizer.json")); }

// Reads tokenizer.json `j` (and `cfg` if not null); returns the status.
Status try_read(const json& j, const json& cfg = nullptr, TokenizerData* out = nullptr,
                ChatTemplateData* chat_out = nullptr) {
  Scratch s;
  s.write("tokenizer.json", j.dump());
  if (!cfg.is_null()) s.write("tokenizer_config.json", cfg.dump());
  TokenizerData d;
  ChatTemplateData c;
  Status st = s.read(&d, &c);
  if (out) *out = d;
  if (chat_out) *chat_out = c;
  return st;
}

bool has(const Status& s, const char* part) {
  if (s.message().find(part) == std::string::npos) {
    MESSAGE("message: " << s.message());
    return false;
  }
  return true;
}

}  // namespace

TEST_CASE("tokenizer.json: the real Llama 3 files") {
  const Loaded* l = llama3();
  if (!l) return;
  const TokenizerData& d = l->data;
  CHECK(d.vocab.size() == 128256);
  CHECK(d.merges.size() == 280147);
  CHECK(d.ignore_merges);
  REQUIRE(d.pre_tokenizer.size() == 2);
  CHECK(d.pre_tokenizer[0].kind == PreTokKind::kSplitLlama3);
  CHECK(d.pre_tokenizer[1].kind == PreTokKind::kByteLevel);
  CHECK(!d.pre_tokenizer[1].use_regex);
  CHECK(!d.pre_tokenizer[1].add_prefix_space);
  CHECK(d.added_tokens.size() == 256);
  CHECK(d.added_tokens[0].special);
  CHECK(!d.added_tokens[0].normalized);
  CHECK(d.vocab[128000] == "<|begin_of_text|>");
  CHECK(d.vocab[220] == " ");
  CHECK(d.vocab[198] == "\n");
  // BOS: this tokenizer.json has a ByteLevel post-processor and the config no
  // add_bos_token; cria adds <|begin_of_text|> as Meta and llama.cpp do.
  CHECK(d.add_bos);
  CHECK(d.bos_id == 128000);
  CHECK(d.eos_ids == std::vector<uint32_t>{128001, 128009});
  CHECK(d.pad_id == -1);
  CHECK(d.pre_tokenizer_json.find("Split") != std::string::npos);
  CHECK(l->chat.kind == ChatKind::kLlama3);
  CHECK(l->chat.jinja.find("<|start_header_id|>") != std::string::npos);
}

TEST_CASE("tokenizer.json: the Falcon and GPT-2 miniatures") {
  const TokenizerData& f = mini("falcon_mini")->data;
  REQUIRE(f.pre_tokenizer.size() == 4);
  CHECK(f.pre_tokenizer[0].kind == PreTokKind::kPunctuation);
  CHECK(f.pre_tokenizer[1].kind == PreTokKind::kByteLevel);
  CHECK(f.pre_tokenizer[1].use_regex);
  CHECK(f.pre_tokenizer[2].kind == PreTokKind::kDigits);
  CHECK(!f.pre_tokenizer[2].individual_digits);
  CHECK(f.pre_tokenizer[3].kind == PreTokKind::kSplitDigits3);
  CHECK(f.added_tokens.size() == 12);
  CHECK(f.vocab[0] == ">>TITLE<<");
  CHECK(f.vocab[11] == "<|endoftext|>");
  CHECK(!f.add_bos);
  CHECK(f.bos_id == -1);
  CHECK(f.eos_ids == std::vector<uint32_t>{11});
  CHECK(!f.ignore_merges);
  CHECK(mini("falcon_mini")->chat.kind == ChatKind::kFalcon);

  const TokenizerData& g = mini("gpt2_mini")->data;
  REQUIRE(g.pre_tokenizer.size() == 1);
  CHECK(g.pre_tokenizer[0].use_regex);
  CHECK(!g.add_bos);  // ByteLevel post-processor: no BOS, as GPT-2
  const int32_t eot = mini("gpt2_mini")->tok->find_token("<|endoftext|>");
  CHECK(g.bos_id == eot);
  CHECK(g.eos_ids == std::vector<uint32_t>{static_cast<uint32_t>(eot)});
  CHECK(mini("gpt2_mini")->chat.kind == ChatKind::kNone);
  CHECK(g.vocab[mini("gpt2_mini")->tok->find_token("hello world")] == "hello world");
}

TEST_CASE("tokenizer.json: merges as strings and as pairs give the same tokenizer") {
  json pairs = gpt2_json();
  json strings = pairs;
  for (auto& m : strings["model"]["merges"]) m = m[0].get<std::string>() + " " + m[1].get<std::string>();
  TokenizerData a, b;
  REQUIRE(try_read(pairs, nullptr, &a).ok());
  REQUIRE(try_read(strings, nullptr, &b).ok());
  CHECK(a.merges == b.merges);
  CHECK(a.vocab == b.vocab);
}

TEST_CASE("tokenizer.json: BOS from TemplateProcessing and tokenizer_config.json") {
  json j = gpt2_json();
  const int eot = j["added_tokens"][0]["id"].get<int>();
  j["post_processor"] = json::parse(R"({"type": "Sequence", "processors": [
      {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
      {"type": "TemplateProcessing",
       "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
       "pair": [], "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [)" +
                                    std::to_string(eot) + R"(], "tokens": ["<|endoftext|>"]}}}]})");
  TokenizerData d;
  REQUIRE(try_read(j, nullptr, &d).ok());
  CHECK(d.add_bos);
  CHECK(d.bos_id == eot);
  // An explicit add_bos_token wins.
  REQUIRE(try_read(j, json{{"add_bos_token", false}, {"bos_token", "<|endoftext|>"}}, &d).ok());
  CHECK(!d.add_bos);
  // bos_token given as an AddedToken object.
  REQUIRE(try_read(gpt2_json(),
                   json{{"add_bos_token", true}, {"bos_token", {{"__type", "AddedToken"}, {"content", "<mask>"}}}},
                   &d)
              .ok());
  CHECK(d.add_bos);
  CHECK(d.bos_id == eot + 1);
  // A template that appends a token after the text is not supported.
  j["post_processor"]["processors"][1]["single"].push_back({{"SpecialToken", {{"id", "<|endoftext|>"}}}});
  CHECK(has(try_read(j), "after the text"));
}

TEST_CASE("tokenizer.json: chat_template as a list of named templates, or in chat_template.jinja") {
  const std::string llama_tpl = "{{ '<|start_header_id|>' }}{{ '<|end_header_id|>' }}{{ '<|eot_id|>' }}";
  ChatTemplateData c;
  const json cfg = {{"chat_template", json::array({json{{"name", "tool_use"}, {"template", "x"}},
                                                   json{{"name", "default"}, {"template", llama_tpl}}})}};
  REQUIRE(try_read(gpt2_json(), cfg, nullptr, &c).ok());
  CHECK(c.jinja == llama_tpl);
  CHECK(c.kind == ChatKind::kLlama3);
  Scratch s;
  s.write("tokenizer.json", gpt2_json().dump());
  s.write("chat_template.jinja", "User: {{ x }}\nFalcon:");
  TokenizerData d;
  REQUIRE(s.read(&d, &c).ok());
  CHECK(c.kind == ChatKind::kFalcon);
}

TEST_CASE("tokenizer.json: unsupported or broken files are one-line errors naming the file") {
  json j;
  j = gpt2_json();
  j["normalizer"] = {{"type", "NFC"}};
  Status st = try_read(j);
  CHECK(st.code() == Code::kUnsupported);
  CHECK(has(st, "tokenizer.json: normalizer 'NFC' is not supported"));
  CHECK(st.message().find('\n') == std::string::npos);

  j = gpt2_json();
  j["pre_tokenizer"] = {{"type", "Whitespace"}};
  CHECK(has(try_read(j), "pre-tokenizer type 'Whitespace' is not supported"));

  j = gpt2_json();
  j["pre_tokenizer"] = json::parse(R"({"type": "Sequence", "pretokenizers": [
      {"type": "Split", "pattern": {"Regex": "\\w+"}, "behavior": "Isolated", "invert": false},
      {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]})");
  CHECK(has(try_read(j), "Split pattern"));

  j = gpt2_json();
  j["pre_tokenizer"] = {{"type", "Punctuation"}, {"behavior", "Isolated"}};
  CHECK(has(try_read(j), "Punctuation with behavior 'Isolated'"));

  j = gpt2_json();
  j["pre_tokenizer"] = {{"type", "Digits"}, {"individual_digits", true}};
  CHECK(has(try_read(j), "no ByteLevel step"));

  j = gpt2_json();
  j["model"]["type"] = "WordPiece";
  CHECK(has(try_read(j), "model type 'WordPiece' is not supported"));

  j = gpt2_json();
  j["model"]["byte_fallback"] = true;
  CHECK(has(try_read(j), "byte_fallback"));

  j = gpt2_json();
  j["model"]["merges"][3] = json::array({"\xC4\xA0zzz", "q"});
  CHECK(has(try_read(j), "model.merges[3]: '\xC4\xA0zzz' is not in the vocabulary"));

  j = gpt2_json();
  j["model"]["merges"][3] = "abc";
  CHECK(has(try_read(j), "model.merges[3] 'abc' is not two tokens"));

  j = gpt2_json();
  j["decoder"] = {{"type", "WordPiece"}};
  CHECK(has(try_read(j), "decoder type 'WordPiece'"));

  j = gpt2_json();
  j["model"]["vocab"]["dup"] = 5;
  CHECK(has(try_read(j), "id 5 is used by two tokens"));

  CHECK(has(try_read(gpt2_json(), json{{"add_bos_token", true}}), "there is no bos_token"));
  CHECK(has(try_read(gpt2_json(), json{{"eos_token", "<nope>"}}), "tokenizer_config.json: eos_token '<nope>'"));

  Scratch s;
  s.write("tokenizer.json", "{ not json");
  TokenizerData d;
  ChatTemplateData c;
  st = s.read(&d, &c);
  CHECK(st.code() == Code::kCorrupt);
  CHECK(has(st, "tokenizer.json: not valid JSON"));
  st = read_hf_tokenizer("/nonexistent/dir", &d, &c);
  CHECK(st.code() == Code::kNotFound);
  CHECK(has(st, "/nonexistent/dir/tokenizer.json: cannot open"));
}
