#include "tok_test_util.h"

#include <random>

using namespace cria;
using namespace tok_test;

namespace {

// 256 byte tokens, a few merges, and added tokens with every flag.
TokenizerData tiny() {
  TokenizerData d;
  for (int b = 0; b < 256; ++b) d.vocab.emplace_back(1, static_cast<char>(b));
  auto add = [&](const std::string& s) {
    d.vocab.push_back(s);
    return static_cast<uint32_t>(d.vocab.size() - 1);
  };
  const uint32_t ab = add("ab"), abc = add("abc"), sa = add(" a"), sab = add(" ab"), aa = add("aa");
  d.merges = {{'a', 'b'}, {ab, 'c'}, {' ', 'a'}, {sa, 'b'}, {'a', 'a'}};
  (void)abc;
  (void)sab;
  (void)aa;
  PreTokStep bl;
  bl.kind = PreTokKind::kByteLevel;
  bl.use_regex = true;
  d.pre_tokenizer = {bl};
  auto added = [&](const std::string& s, bool special, bool lstrip, bool rstrip, bool single_word) {
    AddedToken t;
    t.id = add(s);
    t.content = s;
    t.special = special;
    t.lstrip = lstrip;
    t.rstrip = rstrip;
    t.single_word = single_word;
    t.normalized = !special;
    d.added_tokens.push_back(t);
    return t.id;
  };
  d.bos_id = static_cast<int32_t>(added("<s>", true, false, false, false));
  d.eos_ids = {added("</s>", true, false, false, false)};
  added("<mask>", false, true, false, false);
  added("[R]", true, false, true, false);
  added("<w>", false, false, false, true);
  added("<s>x", true, false, false, false);  // longest match wins over <s>
  d.add_bos = true;
  return d;
}

std::unique_ptr<Tokenizer> make(const TokenizerData& d) {
  auto t = Tokenizer::create(d);
  REQUIRE_MESSAGE(t.ok(), t.status().message());
  return std::move(t).value();
}

std::string create_error(const TokenizerData& d) {
  auto t = Tokenizer::create(d);
  return t.ok() ? std::string("(ok)") : t.status().message();
}

bool has(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("tokenizer: bad TokenizerData gives clear errors") {
  TokenizerData d = tiny();
  CHECK(create_error(d) == "(ok)");
  {
    TokenizerData e;
    CHECK(has(create_error(e), "empty vocabulary"));
  }
  {
    TokenizerData e = d;
    e.merges.push_back({7, 100000});
    CHECK(has(create_error(e), "outside the vocabulary"));
  }
  {
    TokenizerData e = d;
    e.merges.push_back({'x', 'y'});
    CHECK(has(create_error(e), "not in the vocabulary"));
  }
  {
    TokenizerData e = d;
    e.added_tokens[0].id = 5000;
    CHECK(has(create_error(e), "outside the vocabulary"));
  }
  {
    TokenizerData e = d;
    e.added_tokens[0].content = "<other>";
    CHECK(has(create_error(e), "differs from the vocabulary"));
  }
  {
    TokenizerData e = d;
    e.bos_id = 99999;
    CHECK(has(create_error(e), "bos_id"));
  }
  {
    TokenizerData e = d;
    e.bos_id = -1;
    CHECK(has(create_error(e), "no bos_id"));
  }
  {
    TokenizerData e = d;
    e.eos_ids.push_back(123456);
    CHECK(has(create_error(e), "eos id 123456"));
  }
  {
    TokenizerData e = d;
    e.pre_tokenizer.clear();
    CHECK(has(create_error(e), "no ByteLevel"));
  }
  auto t = Tokenizer::create(TokenizerData());
  CHECK(t.status().code() == Code::kInvalidArgument);
  CHECK(t.status().message().rfind("tokenizer: ", 0) == 0);
}

TEST_CASE("tokenizer: BPE merges, empty text, BOS") {
  auto t = make(tiny());
  CHECK(encode(*t, "") == std::vector<int32_t>{});
  CHECK(encode(*t, "abc") == std::vector<int32_t>{257});
  CHECK(encode(*t, "ab ab") == std::vector<int32_t>{256, ' ', 256});  // (a, b) outranks (' ', a)
  CHECK(encode(*t, "x a") == std::vector<int32_t>{'x', 258});
  CHECK(encode(*t, "aaa") == std::vector<int32_t>{260, 'a'});  // leftmost pair first on equal rank
  CHECK(encode(*t, "xy") == std::vector<int32_t>{'x', 'y'});
  std::vector<int32_t> ids;
  REQUIRE(t->encode("", /*add_bos=*/true, true, &ids).ok());
  CHECK(ids == std::vector<int32_t>{t->bos_id()});
  REQUIRE(t->encode("abc", true, true, &ids).ok());
  CHECK(ids == std::vector<int32_t>{t->bos_id(), 257});
  CHECK(t->add_bos());
  TokenizerData nb = tiny();
  nb.bos_id = -1;
  nb.add_bos = false;
  auto t2 = make(nb);
  CHECK(t2->encode("abc", true, true, &ids).code() == Code::kInvalidArgument);
}

TEST_CASE("tokenizer: added tokens, parse_special, lstrip / rstrip / single_word") {
  auto t = make(tiny());
  const int32_t s = t->find_token("<s>"), eos = t->find_token("</s>"), mask = t->find_token("<mask>"),
                r = t->find_token("[R]"), w = t->find_token("<w>"), sx = t->find_token("<s>x");
  REQUIRE(s >= 0);
  CHECK(t->is_special(s));
  CHECK(!t->is_special(mask));
  CHECK(!t->is_special('a'));
  CHECK(t->is_eos(eos));
  CHECK(!t->is_eos(s));
  CHECK(encode(*t, "ab<s>ab") == std::vector<int32_t>{256, s, 256});
  CHECK(encode(*t, "<s>x") == std::vector<int32_t>{sx});
  CHECK(encode(*t, "<s><s>") == std::vector<int32_t>{s, s});
  // parse_special=false: special text is plain text; non-special added tokens stay.
  CHECK(encode(*t, "<s>", false) == std::vector<int32_t>{'<', 's', '>'});
  CHECK(encode(*t, "<mask>", false) == std::vector<int32_t>{mask});
  // lstrip takes the whitespace on its left, rstrip on its right.
  CHECK(encode(*t, "ab  <mask>ab") == std::vector<int32_t>{256, mask, 256});
  CHECK(encode(*t, "ab[R]  \t ab") == std::vector<int32_t>{256, r, 256});
  CHECK(encode(*t, "ab [R] ab") == std::vector<int32_t>{256, ' ', r, 256});
  // single_word: only where no word character touches it.
  CHECK(encode(*t, "x <w> y") == std::vector<int32_t>{'x', ' ', w, ' ', 'y'});
  CHECK(encode(*t, "x<w>") == std::vector<int32_t>{'x', '<', 'w', '>'});
  CHECK(encode(*t, "<w>_") == std::vector<int32_t>{'<', 'w', '>', '_'});
  CHECK(encode(*t, "<w>") == std::vector<int32_t>{w});
  // decode: raw content; skip_special drops special tokens only.
  const std::vector<int32_t> ids = {s, 256, mask, eos};
  CHECK(t->decode(ids) == "<s>ab<mask></s>");
  CHECK(t->decode(ids, /*skip_special=*/true) == "ab<mask>");
  CHECK(t->decode(std::vector<int32_t>{-1, 999999, 'a'}) == "a");
  CHECK(t->token_bytes(-5).empty());
  CHECK(t->token_bytes(256) == "ab");
  CHECK(t->find_token("ab") == 256);
  CHECK(t->find_token("zzz") == -1);
}

TEST_CASE("tokenizer: invalid UTF-8 is tokenized byte-level, never crashes, round-trips") {
  auto t = make(tiny());
  const std::string bad[] = {"\xFF", "\xC3", "a\xE2\x82", "\xF0\x9F\x98", "\xED\xA0\x80", "\xC0\xAF<s>\xFE",
                             std::string("nul\0byte", 8), "\x80\x80\x80 ab \xBF"};
  for (const std::string& s : bad) {
    const std::vector<int32_t> ids = encode(*t, s, false);
    CHECK(t->decode(ids) == s);
  }
  if (const Loaded* l = llama3()) {
    std::mt19937 rng(7);
    for (int k = 0; k < 300; ++k) {
      std::string s(rng() % 40, '\0');
      for (char& c : s) c = static_cast<char>(rng() % 256);
      const std::vector<int32_t> ids = encode(*l->tok, s, false);
      CHECK(l->tok->decode(ids) == s);
    }
    CHECK(encode(*l->tok, "\xFF") == std::vector<int32_t>{l->tok->find_token("\xFF")});
  }
}

TEST_CASE("tokenizer: the array and heap merge loops agree") {
  for (const Loaded* l : {mini("gpt2_mini"), mini("falcon_mini"), llama3()}) {
    if (!l) continue;
    tok::Vocab v;
    for (const std::string& s : l->data.vocab) {
      v.bytes += s;
      v.offsets.push_back(static_cast<uint32_t>(v.bytes.size()));
    }
    std::vector<int32_t> order(l->data.vocab.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int32_t>(i);
    tok::Bpe bpe;
    REQUIRE(bpe.init(&v, order, l->data.merges, false).ok());
    tok::BpeWork w;
    std::mt19937 rng(11);
    const std::string alphabet = "aeiou tnsrhld cmfpgwybvk.,'\n0123456789\xC3\xA9\xE4\xB8\xAD";
    for (int k = 0; k < 500; ++k) {
      std::string s(1 + rng() % 120, ' ');
      for (char& c : s) c = alphabet[rng() % alphabet.size()];
      std::vector<int32_t> a, b;
      bpe.encode_with(0, s, &w, &a);
      bpe.encode_with(1, s, &w, &b);
      REQUIRE_MESSAGE(a == b, nlohmann::json(s).dump());
      CHECK(l->tok->decode(a) == s);
    }
  }
}

TEST_CASE("tokenizer: Llama 3 basics") {
  const Loaded* l = llama3();
  if (!l) return;
  const Tokenizer& t = *l->tok;
  CHECK(t.vocab_size() == 128256);
  CHECK(t.bos_id() == 128000);
  CHECK(t.add_bos());
  CHECK(t.eos_ids() == std::vector<int32_t>{128001, 128009});
  CHECK(encode(t, "Hello world!") == std::vector<int32_t>{9906, 1917, 0});
  std::vector<int32_t> ids;
  REQUIRE(t.encode("Hello world!", t.add_bos(), true, &ids).ok());
  CHECK(ids == std::vector<int32_t>{128000, 9906, 1917, 0});
  CHECK(encode(t, "<|eot_id|>") == std::vector<int32_t>{128009});
  CHECK(encode(t, "<|eot_id|>", false).size() > 1);
  CHECK(t.is_special(128009));
  CHECK(t.token_bytes(128006) == "<|start_header_id|>");
  CHECK(t.find_token("<|eot_id|>") == 128009);
  CHECK(t.find_token(" the") == 279);
  // Multi-line text (lines of the corpus never contain newlines).
  const std::string text = "def f(x):\n    return x\n\n\nprint(f(1))\r\n";
  CHECK(t.decode(encode(t, text)) == text);
  CHECK(encode(t, "a\n\nb") == std::vector<int32_t>{64, 271, 65});
}
