// cria's ids against the JavaScript reference tokenizers (js_reference.mjs)
// and its regex splits against Python's `regex` engine (py_pretok_reference.py),
// line by line over the corpus and the multi-line cases.
#include "tok_test_util.h"

#include "runtime/tokenizer/pretokenize.h"

using namespace tok_test;

namespace {

std::vector<int32_t> as_ids(const nlohmann::json& a) {
  std::vector<int32_t> v;
  for (const auto& x : a) v.push_back(x.get<int32_t>());
  return v;
}

// Compares every case; reports the first mismatch with both id lists.
void compare_ids(const char* name, const cria::Tokenizer& tok, const nlohmann::json& ref) {
  const auto& cases = ref["cases"];
  size_t bad = 0, bad_ns = 0, first = SIZE_MAX;
  std::string report;
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string text = cases[i]["text"].get<std::string>();
    const std::vector<int32_t> want = as_ids(cases[i]["ids"]);
    const std::vector<int32_t> got = encode(tok, text, /*parse_special=*/true);
    const std::vector<int32_t> want_ns = as_ids(cases[i]["ids_no_special"]);
    const std::vector<int32_t> got_ns = encode(tok, text, /*parse_special=*/false);
    if (got != want) ++bad;
    if (got_ns != want_ns) ++bad_ns;
    if ((got != want || got_ns != want_ns) && first == SIZE_MAX) {
      first = i;
      const bool special = got == want;
      report = std::string(name) + " case " + std::to_string(i + 1) + (special ? " (parse_special=false)" : "") +
               ": " + nlohmann::json(text).dump() + "\n  expected " + ids_str(special ? want_ns : want) +
               "\n  cria     " + ids_str(special ? got_ns : got);
    }
  }
  MESSAGE(std::string(name) << ": " << cases.size() << " cases, " << (cases.size() - bad) << " match with special tokens, "
               << (cases.size() - bad_ns) << " match without");
  if (first != SIZE_MAX) FAIL_CHECK(report);
  CHECK(bad == 0);
  CHECK(bad_ns == 0);
}

}  // namespace

TEST_CASE("reference ids: Llama 3 (real tokenizer.json) vs @lenml/tokenizers + llama3-tokenizer-js") {
  const Loaded* l = llama3();
  if (!l) return;
  const nlohmann::json ref = reference("llama3.json");
  if (ref.is_null()) return;
  // The reference saw the same inputs as this binary reads.
  const std::vector<std::string> lines = corpus();
  REQUIRE(ref["cases"].size() >= lines.size());
  for (size_t i = 0; i < lines.size(); ++i) REQUIRE(ref["cases"][i]["text"].get<std::string>() == lines[i]);
  CHECK(lines.size() >= 2000);
  compare_ids("llama3", *l->tok, ref);
}

TEST_CASE("reference ids: Falcon-structured miniature vs @lenml/tokenizers") {
  const nlohmann::json ref = reference("falcon_mini.json");
  if (ref.is_null()) return;
  compare_ids("falcon_mini", *mini("falcon_mini")->tok, ref);
}

TEST_CASE("reference ids: GPT-2-structured miniature vs @lenml/tokenizers") {
  const nlohmann::json ref = reference("gpt2_mini.json");
  if (ref.is_null()) return;
  compare_ids("gpt2_mini", *mini("gpt2_mini")->tok, ref);
}

TEST_CASE("reference splits: Llama 3 and GPT-2 regexes vs Python regex") {
  const nlohmann::json ref = reference("pretok.json");
  if (ref.is_null()) return;
  size_t bad = 0;
  for (const char* which : {"llama3", "gpt2"}) {
    for (const auto& c : ref["cases"]) {
      const std::string text = c["text"].get<std::string>();
      cria::tok::Pieces pieces;
      if (which[0] == 'l') {
        cria::tok::split_llama3(text, &pieces);
      } else {
        cria::tok::split_gpt2(text, &pieces);
      }
      std::vector<std::string> got(pieces.begin(), pieces.end());
      const auto want = c[which].get<std::vector<std::string>>();
      if (got != want && bad++ == 0) {
        FAIL_CHECK(which << " split of " << nlohmann::json(text).dump() << "\n  expected "
                         << nlohmann::json(want).dump() << "\n  cria     " << nlohmann::json(got).dump());
      }
    }
  }
  MESSAGE("pretok: " << ref["cases"].size() << " cases x 2 regexes, " << bad << " mismatches");
  CHECK(bad == 0);
}

TEST_CASE("decode(encode(x)) == x for every corpus line and multi-line case") {
  std::vector<std::string> inputs = corpus();
  const nlohmann::json multi = nlohmann::json::parse(read_text(here() + "/multiline.json"));
  for (const auto& m : multi) inputs.push_back(m.get<std::string>());
  std::vector<const Loaded*> toks = {mini("falcon_mini"), mini("gpt2_mini")};
  if (const Loaded* l = llama3()) toks.push_back(l);
  for (const Loaded* l : toks) {
    size_t bad = 0;
    for (const std::string& s : inputs) {
      for (bool special : {true, false}) {
        const std::vector<int32_t> ids = encode(*l->tok, s, special);
        const std::string back = l->tok->decode(ids);
        // Added tokens with lstrip/rstrip swallow the whitespace beside them.
        const bool strips = s.find("<mask>") != std::string::npos || s.find("[SEP]") != std::string::npos;
        if (back != s && !strips && bad++ == 0) FAIL_CHECK("round trip of " << nlohmann::json(s).dump());
      }
    }
    CHECK(bad == 0);
  }
}
