// Character classes the pre-tokenizers need (\p{L}, \p{N}, \s, punctuation)
// and UTF-8 decoding that never fails: a byte that does not start a valid
// UTF-8 sequence is a character of its own with no class (not a letter, not
// a number, not a space), so invalid input is still tokenized byte by byte.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cria::tok {

enum CharClass : uint8_t {
  kLetter = 1,  // \p{L}
  kNumber = 2,  // \p{N} (also Rust char::is_numeric)
  kSpace = 4,   // White_Space (\s of Oniguruma and Rust regex)
  kPunct = 8,   // general category P* or ASCII punctuation
};

struct ClassRange {
  uint32_t lo, hi;  // inclusive
  uint8_t cls;
};

// Generated tables (runtime/tokenizer/unicode_tables.inc).
extern const char kUnicodeVersion[];
extern const ClassRange kClassRanges[];
extern const size_t kClassRangeCount;
extern const uint8_t kClassStage1[4352];
extern const uint8_t kClassStage2[];

inline constexpr uint32_t kInvalidChar = 0xFFFFFFFFu;

// Class bits of a code point; 0 for kInvalidChar and anything past U+10FFFF.
inline uint8_t char_class(uint32_t cp) {
  if (cp >= 0x110000) return 0;
  return kClassStage2[static_cast<size_t>(kClassStage1[cp >> 8]) * 256 + (cp & 255)];
}

// The same answer by binary search over kClassRanges (the tests' reference).
uint8_t char_class_by_ranges(uint32_t cp);

// Decodes one character at p (p < end). Returns its length in bytes (1..4)
// and sets *cp; an invalid or truncated sequence yields length 1 and
// kInvalidChar. Strict UTF-8: no overlongs, no surrogates, nothing past U+10FFFF.
inline int decode_utf8(const uint8_t* p, const uint8_t* end, uint32_t* cp) {
  const uint8_t b0 = p[0];
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  const ptrdiff_t avail = end - p;
  auto cont = [](uint8_t b) { return (b & 0xC0) == 0x80; };
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    if (avail >= 2 && cont(p[1])) {
      *cp = (uint32_t{b0} & 0x1F) << 6 | (p[1] & 0x3F);
      return 2;
    }
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    if (avail >= 3 && cont(p[1]) && cont(p[2])) {
      const uint32_t c = (uint32_t{b0} & 0x0F) << 12 | uint32_t{p[1] & 0x3Fu} << 6 | (p[2] & 0x3F);
      if (c >= 0x800 && (c < 0xD800 || c > 0xDFFF)) {
        *cp = c;
        return 3;
      }
    }
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    if (avail >= 4 && cont(p[1]) && cont(p[2]) && cont(p[3])) {
      const uint32_t c = (uint32_t{b0} & 0x07) << 18 | uint32_t{p[1] & 0x3Fu} << 12 |
                         uint32_t{p[2] & 0x3Fu} << 6 | (p[3] & 0x3F);
      if (c >= 0x10000 && c <= 0x10FFFF) {
        *cp = c;
        return 4;
      }
    }
  }
  *cp = kInvalidChar;
  return 1;
}

// GPT-2's byte-level alphabet: the code point byte b is shown as in
// tokenizer.json (printable Latin-1 bytes map to themselves, the rest to
// U+0100 + n in byte order).
uint32_t byte_to_unicode(uint8_t b);
// Inverse of byte_to_unicode; -1 for a code point outside the alphabet.
int unicode_to_byte(uint32_t cp);

// Class bits of the alphabet character byte b is mapped to. Pre-tokenizer
// steps that run after ByteLevel see these characters, not the original text
// (e.g. Falcon's Digits step sees byte 0xB2 as U+00B2 SUPERSCRIPT TWO, a number).
uint8_t mapped_byte_class(uint8_t b);
// The 256 values of mapped_byte_class as one table (for hot loops).
const uint8_t* mapped_byte_classes();

}  // namespace cria::tok
