#include "runtime/tokenizer/unicode.h"

#include <array>

namespace cria::tok {

#include "runtime/tokenizer/unicode_tables.inc"

const size_t kClassRangeCount = sizeof(kClassRanges) / sizeof(kClassRanges[0]);

uint8_t char_class_by_ranges(uint32_t cp) {
  size_t lo = 0, hi = kClassRangeCount;
  while (lo < hi) {
    const size_t mid = (lo + hi) / 2;
    if (kClassRanges[mid].hi < cp) {
      lo = mid + 1;
    } else if (kClassRanges[mid].lo > cp) {
      hi = mid;
    } else {
      return kClassRanges[mid].cls;
    }
  }
  return 0;
}

namespace {

struct ByteAlphabet {
  std::array<uint32_t, 256> to_unicode{};
  std::array<int16_t, 324> to_byte{};  // the alphabet lies below U+0144
  std::array<uint8_t, 256> mapped_class{};

  ByteAlphabet() {
    to_byte.fill(-1);
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      to_unicode[b] = printable ? static_cast<uint32_t>(b) : next++;
      to_byte[to_unicode[b]] = static_cast<int16_t>(b);
      mapped_class[b] = char_class(to_unicode[b]);
    }
  }
};

const ByteAlphabet& alphabet() {
  static const ByteAlphabet a;
  return a;
}

}  // namespace

uint32_t byte_to_unicode(uint8_t b) { return alphabet().to_unicode[b]; }

int unicode_to_byte(uint32_t cp) { return cp < 324 ? alphabet().to_byte[cp] : -1; }

uint8_t mapped_byte_class(uint8_t b) { return alphabet().mapped_class[b]; }

const uint8_t* mapped_byte_classes() { return alphabet().mapped_class.data(); }

}  // namespace cria::tok
