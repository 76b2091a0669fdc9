#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "runtime/tokenizer/pretokenize.h"

using namespace cria;
using namespace cria::tok;
using V = std::vector<std::string>;

namespace {

V llama3(const std::string& s) {
  Pieces p;
  split_llama3(s, &p);
  return V(p.begin(), p.end());
}

V gpt2(const std::string& s) {
  Pieces p;
  split_gpt2(s, &p);
  return V(p.begin(), p.end());
}

PreTokStep step(PreTokKind k, bool use_regex = false, bool prefix = false, bool individual = false) {
  PreTokStep s;
  s.kind = k;
  s.use_regex = use_regex;
  s.add_prefix_space = prefix;
  s.individual_digits = individual;
  return s;
}

std::vector<PreTokStep> falcon_steps() {
  return {step(PreTokKind::kPunctuation), step(PreTokKind::kByteLevel, true), step(PreTokKind::kDigits),
          step(PreTokKind::kSplitDigits3)};
}

}  // namespace

TEST_CASE("pretokenize: Llama 3 regex") {
  CHECK(llama3("Hello world") == V{"Hello", " world"});
  CHECK(llama3("") == V{});
  CHECK(llama3("I'm here") == V{"I", "'m", " here"});
  CHECK(llama3("DON'T I'LL WE'RE") == V{"DON", "'T", " I", "'LL", " WE", "'RE"});  // (?i:...)
  CHECK(llama3("'sup") == V{"'s", "up"});
  CHECK(llama3("'x") == V{"'x"});
  CHECK(llama3("IT'\xC5\xBFTATE") == V{"IT", "'\xC5\xBF", "TATE"});  // U+017F folds to s
  CHECK(llama3("1234567") == V{"123", "456", "7"});
  CHECK(llama3("abc123def") == V{"abc", "123", "def"});
  CHECK(llama3("$5") == V{"$", "5"});
  CHECK(llama3("hello!!! world") == V{"hello", "!!!", " world"});
  CHECK(llama3("a !!\n\nb") == V{"a", " !!\n\n", "b"});
  CHECK(llama3("a   b") == V{"a", "  ", " b"});
  CHECK(llama3("a\t\tb") == V{"a", "\t", "\tb"});
  CHECK(llama3("a 123") == V{"a", " ", "123"});
  CHECK(llama3("a  ") == V{"a", "  "});
  CHECK(llama3("x  \n  y") == V{"x", "  \n", " ", " y"});
  CHECK(llama3("a\n\n\nb") == V{"a", "\n\n\n", "b"});
  CHECK(llama3("a\r\n\r\nb") == V{"a", "\r\n\r\n", "b"});
  CHECK(llama3("a \n b") == V{"a", " \n", " b"});
  CHECK(llama3("\n") == V{"\n"});
  CHECK(llama3(".\nx") == V{".\n", "x"});
  CHECK(llama3("a\xC2\x85\xC2\x85" "b") == V{"a", "\xC2\x85", "\xC2\x85" "b"});  // NEL is \s
  CHECK(llama3(" \xEF\xBB\xBFx") == V{" \xEF\xBB\xBF", "x"});  // BOM is not \s
  CHECK(llama3("e\xCC\x81x") == V{"e", "\xCC\x81x"});  // a combining mark is not a letter
  CHECK(llama3("\xE4\xBD\xA0\xE5\xA5\xBD") == V{"\xE4\xBD\xA0\xE5\xA5\xBD"});
  // Invalid bytes: characters that are not letters, numbers or spaces.
  CHECK(llama3("a\xFF" "b") == V{"a", "\xFF" "b"});
  CHECK(llama3("\xFF\xFE") == V{"\xFF\xFE"});
  CHECK(llama3(" \xC3") == V{" \xC3"});
  CHECK(llama3("\xE4\xBD" "a") == V{"\xE4\xBD", "a"});  // no letter right after either byte
}

TEST_CASE("pretokenize: GPT-2 regex") {
  CHECK(gpt2("Hello  world") == V{"Hello", " ", " world"});
  CHECK(gpt2("don't") == V{"don", "'t"});
  CHECK(gpt2("DON'T") == V{"DON", "'", "T"});  // case-sensitive contractions
  CHECK(gpt2("1234567 x") == V{"1234567", " x"});
  CHECK(gpt2(" 12") == V{" 12"});
  CHECK(gpt2("a!!? b") == V{"a", "!!?", " b"});
  CHECK(gpt2("a\n\nb") == V{"a", "\n", "\n", "b"});  // \s+(?!\S) then \s+
  CHECK(gpt2("a \n") == V{"a", " \n"});
  CHECK(gpt2("   ") == V{"   "});
}

TEST_CASE("pretokenize: Punctuation, Digits and the groups of three") {
  Pieces p;
  split_punctuation("Hey friend!     How are you?!?", false, &p);
  CHECK(V(p.begin(), p.end()) == V{"Hey friend", "!", "     How are you", "?!?"});
  p.clear();
  split_digits("Hey 123 friend!", false, false, &p);
  CHECK(V(p.begin(), p.end()) == V{"Hey ", "123", " friend!"});
  p.clear();
  split_digits("a123", false, true, &p);
  CHECK(V(p.begin(), p.end()) == V{"a", "1", "2", "3"});
  p.clear();
  split_digits3("12345678x1234", &p);
  CHECK(V(p.begin(), p.end()) == V{"123", "456", "78x", "123", "4"});
}

TEST_CASE("pretokenize: Falcon's sequence, each step splitting the previous pieces") {
  CHECK(PreTokenizer::validate(falcon_steps()).ok());
  PreTokenizer pt(falcon_steps());
  CHECK(pt.split_to_strings("Hello, world 12345!") == V{"Hello", ",", " world", " ", "123", "45", "!"});
  // After ByteLevel, Digits sees alphabet characters: byte 0xBC of 'ü' is
  // U+00BC VULGAR FRACTION ONE QUARTER, a number.
  CHECK(pt.split_to_strings("M\xC3\xBCller") == V{"M\xC3", "\xBC", "ller"});
  CHECK(pt.split_to_strings("x\xC2\xB2") == V{"x", "\xC2", "\xB2"});
  CHECK(pt.split_to_strings("don't") == V{"don", "'", "t"});  // Punctuation first
  CHECK(pt.split_to_strings("") == V{});
}

TEST_CASE("pretokenize: ByteLevel add_prefix_space adds one space per piece") {
  PreTokenizer pt({step(PreTokKind::kPunctuation), step(PreTokKind::kByteLevel, true, true)});
  CHECK(pt.split_to_strings("hi,there") == V{" hi", " ,", " there"});
  CHECK(pt.split_to_strings(" hi") == V{" hi"});
}

TEST_CASE("pretokenize: validation") {
  CHECK(PreTokenizer::validate({step(PreTokKind::kSplitLlama3), step(PreTokKind::kByteLevel)}).ok());
  CHECK(!PreTokenizer::validate({}).ok());
  CHECK(!PreTokenizer::validate({step(PreTokKind::kSplitLlama3)}).ok());
  CHECK(!PreTokenizer::validate({step(PreTokKind::kByteLevel), step(PreTokKind::kByteLevel)}).ok());
  const Status s = PreTokenizer::validate({step(PreTokKind::kByteLevel), step(PreTokKind::kSplitLlama3)});
  CHECK(s.code() == Code::kUnsupported);
  CHECK(s.message().find("before ByteLevel") != std::string::npos);
  CHECK(!PreTokenizer::validate({step(static_cast<PreTokKind>(99)), step(PreTokKind::kByteLevel)}).ok());
}
