#include "runtime/tokenizer/pretokenize.h"

#include <cstdint>

#include "runtime/tokenizer/unicode.h"

namespace cria::tok {
namespace {

constexpr uint8_t kLNS = kLetter | kNumber | kSpace;

struct Char {
  uint32_t cp;
  uint32_t len;
  uint8_t cls;
};

// Reads the character at s[i] of raw (not byte-mapped) UTF-8 text.
inline Char read_raw(const uint8_t* s, size_t i, size_t n) {
  Char c;
  if (s[i] < 0x80) {
    c.cp = s[i];
    c.len = 1;
  } else {
    c.len = static_cast<uint32_t>(decode_utf8(s + i, s + n, &c.cp));
  }
  c.cls = char_class(c.cp);
  return c;
}

inline bool is_crlf(uint32_t cp) { return cp == '\r' || cp == '\n'; }

// End of the run of characters from i whose class intersects `want`
// (want_set) or avoids it (!want_set).
inline size_t run_end(const uint8_t* s, size_t i, size_t n, uint8_t mask, bool want_set) {
  while (i < n) {
    const Char c = read_raw(s, i, n);
    if (((c.cls & mask) != 0) != want_set) break;
    i += c.len;
  }
  return i;
}

inline uint8_t ascii_lower(uint8_t b) { return (b >= 'A' && b <= 'Z') ? b + 32 : b; }

// Length of a contraction suffix ('s 't 're 've 'm 'll 'd without the
// apostrophe) at s[i], or 0. Case-insensitive matching follows Unicode simple
// case folding as Oniguruma and Rust regex do: the only non-ASCII character
// folding to one of these letters is U+017F LATIN SMALL LETTER LONG S (to s).
inline size_t contraction(const uint8_t* s, size_t i, size_t n, bool fold) {
  if (i >= n) return 0;
  const uint8_t a = fold ? ascii_lower(s[i]) : s[i];
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 1;
  if (fold && s[i] == 0xC5 && i + 1 < n && s[i + 1] == 0xBF) return 2;  // U+017F
  if (i + 1 >= n) return 0;
  const uint8_t b = fold ? ascii_lower(s[i + 1]) : s[i + 1];
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 2;
  return 0;
}

// Whitespace alternatives shared by both regexes, at a whitespace char i:
//   \s*[\r\n]+ (Llama 3 only) | \s+(?!\S) | \s+
size_t match_space(const uint8_t* s, size_t i, size_t n, bool newline_alt) {
  size_t j = i, last_start = i, after_nl = 0;
  while (j < n) {
    const Char c = read_raw(s, j, n);
    if (!(c.cls & kSpace)) break;
    last_start = j;
    j += c.len;
    if (is_crlf(c.cp)) after_nl = j;
  }
  // \s*[\r\n]+: \s* backtracks from the end of the run to its last CR/LF.
  if (newline_alt && after_nl != 0) return after_nl;
  // \s+(?!\S): the whole run at the end of text; otherwise give back the
  // last whitespace character so the next piece can start with it.
  if (j == n) return j;
  if (last_start > i) return last_start;
  return j;  // \s+ (a single whitespace character before a non-space)
}

// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
size_t match_llama3(const uint8_t* s, size_t i, size_t n) {
  if (s[i] == '\'') {
    const size_t m = contraction(s, i + 1, n, /*fold=*/true);
    if (m) return i + 1 + m;
  }
  const Char c = read_raw(s, i, n);
  if (c.cls & kLetter) return run_end(s, i + c.len, n, kLetter, true);
  if (!(c.cls & kNumber) && !is_crlf(c.cp) && i + c.len < n) {
    const Char d = read_raw(s, i + c.len, n);
    if (d.cls & kLetter) return run_end(s, i + c.len + d.len, n, kLetter, true);
  }
  if (c.cls & kNumber) {
    size_t j = i + c.len;
    for (int k = 1; k < 3 && j < n; ++k) {
      const Char d = read_raw(s, j, n);
      if (!(d.cls & kNumber)) break;
      j += d.len;
    }
    return j;
  }
  size_t start = i;
  if (s[i] == ' ' && i + 1 < n && !(read_raw(s, i + 1, n).cls & kLNS)) start = i + 1;
  if (start > i || !(c.cls & kLNS)) {
    size_t j = run_end(s, start, n, kLNS, false);
    while (j < n && (s[j] == '\r' || s[j] == '\n')) ++j;
    return j;
  }
  return match_space(s, i, n, /*newline_alt=*/true);
}

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
size_t match_gpt2(const uint8_t* s, size_t i, size_t n) {
  if (s[i] == '\'') {
    const size_t m = contraction(s, i + 1, n, /*fold=*/false);
    if (m) return i + 1 + m;
  }
  size_t start = i;
  Char c = read_raw(s, i, n);
  if (c.cp == ' ' && i + 1 < n) {
    const Char d = read_raw(s, i + 1, n);
    if (!(d.cls & kSpace)) {
      start = i + 1;
      c = d;
    }
  }
  if (c.cls & kLetter) return run_end(s, start + c.len, n, kLetter, true);
  if (c.cls & kNumber) return run_end(s, start + c.len, n, kNumber, true);
  if (!(c.cls & kSpace)) return run_end(s, start + c.len, n, kLNS, false);
  return match_space(s, i, n, /*newline_alt=*/false);
}

template <size_t (*Match)(const uint8_t*, size_t, size_t), typename Emit>
void split_regex(std::string_view text, Emit&& emit) {
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const size_t j = Match(s, i, n);
    emit(text.substr(i, j - i));
    i = j;
  }
}

// Splits into maximal runs of characters that do / do not have `cls`; with
// `isolate`, every character with `cls` is a piece of its own.
template <typename Emit>
void split_class(std::string_view text, bool mapped, uint8_t cls, bool isolate, Emit&& emit) {
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  const uint8_t* mapped_cls = mapped ? mapped_byte_classes() : nullptr;
  size_t start = 0, i = 0;
  int prev = -1;  // class membership of the run being built
  while (i < n) {
    uint32_t len = 1;
    uint8_t c;
    if (mapped) {
      c = mapped_cls[s[i]];
    } else {
      const Char ch = read_raw(s, i, n);
      c = ch.cls;
      len = ch.len;
    }
    const int in = (c & cls) ? 1 : 0;
    if (i > start && (in != prev || (in && isolate))) {
      emit(text.substr(start, i - start));
      start = i;
    }
    prev = in;
    i += len;
  }
  if (n > start) emit(text.substr(start, n - start));
}

// Split("[0-9][0-9][0-9]", Isolated): leftmost non-overlapping matches.
template <typename Emit>
void split_digits3_impl(std::string_view text, Emit&& emit) {
  const size_t n = text.size();
  auto digit = [&](size_t k) { return text[k] >= '0' && text[k] <= '9'; };
  size_t start = 0, i = 0;
  while (i + 3 <= n) {
    if (digit(i) && digit(i + 1) && digit(i + 2)) {
      if (i > start) emit(text.substr(start, i - start));
      emit(text.substr(i, 3));
      i += 3;
      start = i;
    } else {
      ++i;
    }
  }
  if (n > start) emit(text.substr(start, n - start));
}

struct Collect {
  Pieces* out;
  void operator()(std::string_view p) const { out->push_back(p); }
};

}  // namespace

void split_llama3(std::string_view s, Pieces* out) { split_regex<match_llama3>(s, Collect{out}); }

void split_gpt2(std::string_view s, Pieces* out) { split_regex<match_gpt2>(s, Collect{out}); }

void split_punctuation(std::string_view s, bool mapped, Pieces* out) {
  split_class(s, mapped, kPunct, /*isolate=*/false, Collect{out});
}

void split_digits(std::string_view s, bool mapped, bool individual, Pieces* out) {
  split_class(s, mapped, kNumber, individual, Collect{out});
}

void split_digits3(std::string_view s, Pieces* out) { split_digits3_impl(s, Collect{out}); }

Status PreTokenizer::validate(const std::vector<PreTokStep>& steps) {
  int byte_level = 0;
  for (size_t k = 0; k < steps.size(); ++k) {
    const PreTokStep& st = steps[k];
    switch (st.kind) {
      case PreTokKind::kByteLevel:
        if (byte_level++) return Error(Code::kUnsupported, "pre-tokenizer has more than one ByteLevel step");
        break;
      case PreTokKind::kSplitLlama3:
        if (byte_level) {
          return Error(Code::kUnsupported, "pre-tokenizer step " + std::to_string(k) +
                                               ": the Llama 3 split must come before ByteLevel");
        }
        break;
      case PreTokKind::kPunctuation:
      case PreTokKind::kDigits:
      case PreTokKind::kSplitDigits3:
        break;
      default:
        return Error(Code::kUnsupported, "pre-tokenizer step " + std::to_string(k) + ": unknown kind " +
                                             std::to_string(static_cast<int>(st.kind)));
    }
  }
  if (!byte_level) {
    return Error(Code::kUnsupported, "pre-tokenizer has no ByteLevel step (only byte-level BPE is supported)");
  }
  return Status::Ok();
}

// Each step splits every piece of the previous one; pieces flow through the
// steps depth-first, so nothing is collected and memory stays flat however
// long the text is.
void PreTokenizer::run(size_t step, std::string_view piece, bool mapped, std::string* buf,
                       PieceSink sink) const {
  if (step == steps_.size()) {
    sink(piece);
    return;
  }
  auto next = [&](std::string_view p) { run(step + 1, p, mapped, buf, sink); };
  const PreTokStep& st = steps_[step];
  switch (st.kind) {
    case PreTokKind::kSplitLlama3:
      split_regex<match_llama3>(piece, next);
      break;
    case PreTokKind::kByteLevel: {
      // tokenizers prepends the space to every split it is given that does
      // not start with one. Only one ByteLevel step exists (validate()), so
      // the buffer is not reused until this piece is done.
      if (st.add_prefix_space && piece[0] != ' ') {
        buf->assign(1, ' ');
        buf->append(piece);
        piece = *buf;
      }
      auto next_mapped = [&](std::string_view p) { run(step + 1, p, /*mapped=*/true, buf, sink); };
      if (st.use_regex) {
        split_regex<match_gpt2>(piece, next_mapped);
      } else {
        next_mapped(piece);
      }
      break;
    }
    case PreTokKind::kPunctuation:
      split_class(piece, mapped, kPunct, /*isolate=*/false, next);
      break;
    case PreTokKind::kDigits:
      split_class(piece, mapped, kNumber, st.individual_digits, next);
      break;
    case PreTokKind::kSplitDigits3:
      split_digits3_impl(piece, next);
      break;
  }
}

void PreTokenizer::split(std::string_view text, std::string* buf, PieceSink sink) const {
  if (!text.empty()) run(0, text, /*mapped=*/false, buf, sink);
}

std::vector<std::string> PreTokenizer::split_to_strings(std::string_view text) const {
  std::vector<std::string> out;
  std::string buf;
  auto keep = [&](std::string_view p) { out.emplace_back(p); };
  split(text, &buf, PieceSink::of(keep));
  return out;
}

}  // namespace cria::tok
