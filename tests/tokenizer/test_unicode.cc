#include <doctest/doctest.h>

#include <ios>
#include <string>

#include "runtime/tokenizer/unicode.h"

using namespace cria::tok;

TEST_CASE("unicode: the two-level table equals the range list for every code point") {
  size_t bad = 0;
  for (uint32_t cp = 0; cp < 0x110000; ++cp) {
    if (char_class(cp) != char_class_by_ranges(cp) && bad++ == 0) FAIL_CHECK("U+" << std::hex << cp);
  }
  CHECK(bad == 0);
  CHECK(char_class(0x110000) == 0);
  CHECK(char_class(kInvalidChar) == 0);
  CHECK(std::string(kUnicodeVersion) == "15.0.0");
}

TEST_CASE("unicode: classes of typical characters") {
  CHECK(char_class('a') == kLetter);
  CHECK(char_class('Z') == kLetter);
  CHECK(char_class('7') == kNumber);
  CHECK(char_class(' ') == kSpace);
  CHECK(char_class('\t') == kSpace);
  CHECK(char_class('\n') == kSpace);
  CHECK(char_class(0x0B) == kSpace);     // vertical tab
  CHECK(char_class(0x85) == kSpace);     // NEL: White_Space (JavaScript's \s lacks it)
  CHECK(char_class(0xA0) == kSpace);     // no-break space
  CHECK(char_class(0x3000) == kSpace);   // ideographic space
  CHECK(char_class(0xFEFF) == 0);        // BOM: not White_Space (JavaScript's \s has it)
  CHECK(char_class(0x200B) == 0);        // zero width space is not White_Space
  CHECK(char_class(0x1C) == 0);          // Python's isspace() says yes; \s says no
  CHECK(char_class('$') == kPunct);      // ASCII punctuation includes symbols (Sc)
  CHECK(char_class('+') == kPunct);
  CHECK(char_class('`') == kPunct);
  CHECK(char_class(0xBF) == kPunct);     // inverted question mark (Po)
  CHECK(char_class(0x2014) == kPunct);   // em dash (Pd)
  CHECK(char_class(0x20AC) == 0);        // euro sign: Sc, not ASCII
  CHECK(char_class(0xB2) == kNumber);    // superscript two (No)
  CHECK(char_class(0x2167) == kNumber);  // roman numeral eight (Nl)
  CHECK(char_class(0x0663) == kNumber);  // arabic-indic three (Nd)
  CHECK(char_class(0x4E2D) == kLetter);  // CJK
  CHECK(char_class(0x20000) == kLetter); // CJK extension B
  CHECK(char_class(0x0301) == 0);        // combining acute: Mn
  CHECK(char_class(0x1F600) == 0);       // emoji: So
  CHECK(char_class(0x017F) == kLetter);  // long s
}

TEST_CASE("unicode: strict UTF-8 decoding, one byte per invalid character") {
  auto dec = [](const std::string& s, uint32_t* cp) {
    const auto* p = reinterpret_cast<const uint8_t*>(s.data());
    return decode_utf8(p, p + s.size(), cp);
  };
  uint32_t cp;
  CHECK(dec("a", &cp) == 1);
  CHECK(cp == 'a');
  CHECK(dec("\xC3\xA9", &cp) == 2);
  CHECK(cp == 0xE9);
  CHECK(dec("\xE4\xB8\xAD", &cp) == 3);
  CHECK(cp == 0x4E2D);
  CHECK(dec("\xF0\x9F\x98\x80", &cp) == 4);
  CHECK(cp == 0x1F600);
  for (const char* bad : {"\xFF", "\xC0\x80", "\xC1\xBF", "\xE0\x80\x80", "\xED\xA0\x80", "\xF4\x90\x80\x80",
                          "\xF5\x80\x80\x80", "\x80", "\xC3", "\xE4\xB8", "\xF0\x9F\x98", "\xC3\x28"}) {
    CHECK(dec(bad, &cp) == 1);
    CHECK(cp == kInvalidChar);
  }
}

TEST_CASE("unicode: GPT-2 byte alphabet") {
  CHECK(byte_to_unicode('A') == 'A');
  CHECK(byte_to_unicode(' ') == 0x120);  // the familiar 'Ġ'
  CHECK(byte_to_unicode('\n') == 0x10A); // 'Ċ'
  CHECK(byte_to_unicode(0xAD) == 0x143);
  for (int b = 0; b < 256; ++b) CHECK(unicode_to_byte(byte_to_unicode(static_cast<uint8_t>(b))) == b);
  CHECK(unicode_to_byte(0x144) == -1);
  CHECK(unicode_to_byte(' ') == -1);
  // What pre-tokenizer steps after ByteLevel see.
  CHECK(mapped_byte_class(' ') == kLetter);
  CHECK(mapped_byte_class('5') == kNumber);
  CHECK(mapped_byte_class(0xB2) == kNumber);
  CHECK(mapped_byte_class(0xBC) == kNumber);
  CHECK(mapped_byte_class(0xBF) == kPunct);
  CHECK(mapped_byte_class(0xC3) == kLetter);
}
