// Added (special) tokens: found in the raw text before pre-tokenization,
// as tokenizers' AddedVocabulary does: leftmost-longest matches, first among
// the tokens with normalized=false, then among the normalized ones in the
// text left over; lstrip / rstrip absorb the whitespace beside a match;
// single_word rejects a match touching a word character.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cria::tok {

struct AddedEntry {
  int32_t id;
  std::string content;
  bool special, lstrip, rstrip, single_word, normalized;
};

// A piece of the input: an added token's id, or a text range to pre-tokenize.
struct Segment {
  int32_t id;  // -1 for text
  uint32_t begin, end;
};

class AddedTokens {
 public:
  void init(std::vector<AddedEntry> entries);
  bool empty() const { return entries_.empty(); }
  const std::vector<AddedEntry>& entries() const { return entries_; }

  // Splits text into segments (in order, covering text except whitespace
  // absorbed by lstrip/rstrip). With !parse_special, special tokens are not
  // matched and their text stays plain text.
  void split(std::string_view text, bool parse_special, std::vector<Segment>* out) const;

 private:
  struct Trie {
    struct Node {
      int32_t entry = -1;  // index into entries_ of the token ending here
      std::vector<std::pair<uint8_t, int32_t>> next;
    };
    std::vector<Node> nodes;
    bool first[256] = {};
    void add(std::string_view s, int32_t entry);
    // Longest token starting at s[i] (entry index and length), entry -1 if none.
    std::pair<int32_t, size_t> longest(const uint8_t* s, size_t i, size_t n) const;
    bool empty() const { return nodes.size() <= 1; }
  };

  void pass(const Trie& trie, std::string_view text, Segment seg, bool parse_special,
            std::vector<Segment>* out) const;

  std::vector<AddedEntry> entries_;
  Trie raw_, normalized_;
};

}  // namespace cria::tok
