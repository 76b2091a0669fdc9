#include "tok_test_util.h"

#include "runtime/tokenizer/unicode.h"

using namespace cria;
using namespace tok_test;

namespace {

const char* kFFFD = "\xEF\xBF\xBD";

// A byte-level tokenizer with one token per byte (the GPT-2 miniature).
const Tokenizer& bytes_tok() { return *mini("gpt2_mini")->tok; }

int32_t byte_id(uint8_t b) {
  const char c = static_cast<char>(b);
  const int32_t id = bytes_tok().find_token(std::string_view(&c, 1));
  REQUIRE(id >= 0);
  return id;
}

// Pushes the bytes one token each; returns what came out, pieces joined by '|'.
std::string stream_bytes(const std::string& bytes) {
  StreamDecoder d(bytes_tok());
  std::string out;
  for (char c : bytes) {
    const std::string_view piece = d.push(byte_id(static_cast<uint8_t>(c)));
    if (!piece.empty()) out += std::string(piece) + "|";
  }
  const std::string_view rest = d.flush();
  if (!rest.empty()) out += std::string(rest) + "|";
  return out;
}

bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    const int n = tok::decode_utf8(p + i, p + s.size(), &cp);
    if (cp == tok::kInvalidChar) return false;
    i += n;
  }
  return true;
}

}  // namespace

TEST_CASE("stream decoder: characters split across tokens come out whole") {
  CHECK(stream_bytes("ab") == "a|b|");
  CHECK(stream_bytes("\xC3\xA9") == "\xC3\xA9|");                       // é
  CHECK(stream_bytes("\xE4\xB8\xAD!") == "\xE4\xB8\xAD|!|");            // 中!
  CHECK(stream_bytes("\xF0\x9F\x98\x80") == "\xF0\x9F\x98\x80|");       // 😀
  // 👍🏽: two code points, each complete on its own.
  CHECK(stream_bytes("\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD") == "\xF0\x9F\x91\x8D|\xF0\x9F\x8F\xBD|");
}

TEST_CASE("stream decoder: invalid sequences become U+FFFD as soon as they cannot complete") {
  const std::string r = kFFFD;
  CHECK(stream_bytes("\xFF") == r + "|");
  CHECK(stream_bytes("\xC3" "a") == r + "a|");                  // lead byte, then ASCII
  CHECK(stream_bytes("\xF0\x9F\x98x") == r + "x|");             // one U+FFFD per maximal subpart
  CHECK(stream_bytes("\xE0\x80") == r + r + "|");               // overlong: E0 needs A0..BF
  CHECK(stream_bytes("\xED\xA0\x80") == r + r + "|" + r + "|");    // surrogate: three subparts
  CHECK(stream_bytes("\x80\xBF") == r + "|" + r + "|");         // stray continuation bytes
  CHECK(stream_bytes("\xE2\x82") == r + "|");                   // truncated at the end: flush
  CHECK(stream_bytes("\xC3\xC3\xA9") == r + "|\xC3\xA9|");
}

TEST_CASE("stream decoder: pending bytes, flush, reset, skip_special") {
  StreamDecoder d(bytes_tok());
  CHECK(d.push(byte_id(0xE4)).empty());
  CHECK(d.pending() == 1);
  CHECK(d.push(byte_id(0xB8)).empty());
  CHECK(d.pending() == 2);
  CHECK(d.push(byte_id(0xAD)) == "\xE4\xB8\xAD");
  CHECK(d.pending() == 0);
  CHECK(d.flush().empty());
  CHECK(d.push(byte_id(0xE4)).empty());
  d.reset();
  CHECK(d.pending() == 0);
  CHECK(d.push(byte_id('a')) == "a");
  const int32_t eot = bytes_tok().find_token("<|endoftext|>");
  CHECK(d.push(eot) == "<|endoftext|>");
  StreamDecoder quiet(bytes_tok(), /*skip_special=*/true);
  CHECK(quiet.push(eot).empty());
  CHECK(quiet.push(byte_id('a')) == "a");
}

TEST_CASE("stream decoder: whole corpus through real vocabularies, never half a character") {
  std::vector<const Loaded*> toks = {mini("falcon_mini"), mini("gpt2_mini")};
  if (const Loaded* l = llama3()) toks.push_back(l);
  const std::vector<std::string> lines = corpus();
  for (const Loaded* l : toks) {
    size_t bad = 0;
    StreamDecoder d(*l->tok);
    for (const std::string& line : lines) {
      std::string out;
      for (int32_t id : encode(*l->tok, line)) {
        const std::string_view piece = d.push(id);
        if (!valid_utf8(piece)) ++bad;
        out += piece;
      }
      out += d.flush();
      if (out != line && bad++ == 0) FAIL_CHECK(nlohmann::json(line).dump());
    }
    CHECK(bad == 0);
  }
}

TEST_CASE("stream decoder: invalid input text decodes with replacement characters") {
  const Tokenizer& t = llama3() ? *llama3()->tok : bytes_tok();
  const std::string text = "\xFF ok \xC3";
  StreamDecoder d(t);
  std::string out;
  for (int32_t id : encode(t, text)) out += d.push(id);
  out += d.flush();
  CHECK(out == std::string(kFFFD) + " ok " + kFFFD);
}
