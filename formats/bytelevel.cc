#include "formats/bytelevel.h"

#include <array>

namespace cria {

namespace {

// bytes_to_unicode(): printable Latin-1 bytes map to themselves, the other 68
// bytes to 256, 257, ... in byte order.
struct Tables {
  std::array<unsigned, 256> to_cp{};
  std::array<int, 324> from_cp{};
  Tables() {
    from_cp.fill(-1);
    unsigned next = 256;
    for (unsigned b = 0; b < 256; ++b) {
      bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      to_cp[b] = printable ? b : next++;
      from_cp[to_cp[b]] = (int)b;
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

unsigned bytelevel_char(unsigned char b) { return tables().to_cp[b]; }

bool bytelevel_decode(std::string_view s, std::string* out) {
  const Tables& t = tables();
  out->clear();
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = (unsigned char)s[i];
    unsigned cp;
    if (c < 0x80) {
      cp = c;
      i += 1;
    } else if ((c & 0xe0) == 0xc0 && i + 1 < s.size() && ((unsigned char)s[i + 1] & 0xc0) == 0x80) {
      cp = ((c & 0x1fu) << 6) | ((unsigned char)s[i + 1] & 0x3fu);
      i += 2;
    } else {
      return false;  // the alphabet only uses code points below 0x800
    }
    if (cp >= t.from_cp.size() || t.from_cp[cp] < 0) return false;
    out->push_back((char)t.from_cp[cp]);
  }
  return true;
}

}  // namespace cria
