#include "runtime/tokenizer/added_tokens.h"

#include <algorithm>

#include "runtime/tokenizer/unicode.h"

namespace cria::tok {
namespace {

// The character ending at s[end) (end > begin): its start and code point.
// A byte that is not the end of a valid character is a character of its own.
size_t char_before(const uint8_t* s, size_t begin, size_t end, uint32_t* cp) {
  for (size_t len = 1; len <= 4 && len <= end - begin; ++len) {
    const size_t at = end - len;
    if (len < 4 && (s[at] & 0xC0) == 0x80) continue;  // continuation byte: keep going back
    uint32_t c;
    if (decode_utf8(s + at, s + end, &c) == static_cast<int>(len)) {
      *cp = c;
      return at;
    }
    break;
  }
  *cp = kInvalidChar;
  return end - 1;
}

// Rust regex \w (used by single_word), approximated by letters, numbers and '_'.
bool is_word(uint32_t cp) { return cp == '_' || (char_class(cp) & (kLetter | kNumber)); }

}  // namespace

void AddedTokens::Trie::add(std::string_view s, int32_t entry) {
  if (nodes.empty()) nodes.emplace_back();
  int32_t at = 0;
  for (unsigned char c : s) {
    int32_t nx = -1;
    for (const auto& [b, to] : nodes[at].next) {
      if (b == c) nx = to;
    }
    if (nx < 0) {
      nx = static_cast<int32_t>(nodes.size());
      nodes[at].next.emplace_back(c, nx);
      nodes.emplace_back();
    }
    at = nx;
  }
  if (nodes[at].entry < 0) nodes[at].entry = entry;  // the first of duplicates wins
  first[static_cast<unsigned char>(s[0])] = true;
}

std::pair<int32_t, size_t> AddedTokens::Trie::longest(const uint8_t* s, size_t i, size_t n) const {
  std::pair<int32_t, size_t> best{-1, 0};
  int32_t at = 0;
  for (size_t j = i; j < n; ++j) {
    int32_t nx = -1;
    for (const auto& [b, to] : nodes[at].next) {
      if (b == s[j]) {
        nx = to;
        break;
      }
    }
    if (nx < 0) break;
    at = nx;
    if (nodes[at].entry >= 0) best = {nodes[at].entry, j + 1 - i};
  }
  return best;
}

void AddedTokens::init(std::vector<AddedEntry> entries) {
  entries_ = std::move(entries);
  raw_ = Trie();
  normalized_ = Trie();
  for (size_t k = 0; k < entries_.size(); ++k) {
    const AddedEntry& e = entries_[k];
    if (e.content.empty()) continue;
    (e.normalized ? normalized_ : raw_).add(e.content, static_cast<int32_t>(k));
  }
}

// tokenizers' AddedVocabulary::find_matches on the sentence text[seg).
void AddedTokens::pass(const Trie& trie, std::string_view text, Segment seg, bool parse_special,
                       std::vector<Segment>* out) const {
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  const size_t b = seg.begin, e = seg.end;
  size_t start_offset = b;
  size_t i = b;
  while (i < e) {
    if (!trie.first[s[i]]) {
      ++i;
      continue;
    }
    const auto [entry, len] = trie.longest(s, i, e);
    if (entry < 0) {
      ++i;
      continue;
    }
    size_t start = i, stop = i + len;
    i = stop;  // matches never overlap
    const AddedEntry& t = entries_[entry];
    if (t.special && !parse_special) continue;
    if (t.single_word) {
      uint32_t cp;
      const bool word_before = start > b && (char_before(s, b, start, &cp), is_word(cp));
      bool word_after = false;
      if (stop < e) {
        decode_utf8(s + stop, s + e, &cp);
        word_after = is_word(cp);
      }
      if (word_before || word_after) continue;
    }
    if (t.lstrip) {
      size_t ns = start;
      while (ns > b) {
        uint32_t cp;
        const size_t at = char_before(s, b, ns, &cp);
        if (!(char_class(cp) & kSpace)) break;
        ns = at;
      }
      start = std::max(ns, start_offset);  // whitespace a previous match took stays there
    }
    if (t.rstrip) {
      while (stop < e) {
        uint32_t cp;
        const int l = decode_utf8(s + stop, s + e, &cp);
        if (!(char_class(cp) & kSpace)) break;
        stop += l;
      }
      i = stop;
    }
    if (start_offset < start) out->push_back({-1, static_cast<uint32_t>(start_offset), static_cast<uint32_t>(start)});
    out->push_back({t.id, static_cast<uint32_t>(start), static_cast<uint32_t>(stop)});
    start_offset = stop;
  }
  if (start_offset < e) out->push_back({-1, static_cast<uint32_t>(start_offset), static_cast<uint32_t>(e)});
}

void AddedTokens::split(std::string_view text, bool parse_special, std::vector<Segment>* out) const {
  out->clear();
  const Segment whole{-1, 0, static_cast<uint32_t>(text.size())};
  if (raw_.empty()) {
    out->push_back(whole);
  } else {
    pass(raw_, text, whole, parse_special, out);
  }
  if (normalized_.empty()) return;
  std::vector<Segment> first;
  first.swap(*out);
  for (const Segment& seg : first) {
    if (seg.id >= 0) {
      out->push_back(seg);
    } else {
      pass(normalized_, text, seg, parse_special, out);
    }
  }
}

}  // namespace cria::tok
