// Byte-level BPE over raw bytes: the vocabulary index, the merge table and
// the merge loop (lowest rank first, leftmost on ties, as tokenizers' Word::merge_all).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "formats/status.h"

namespace cria::tok {

// Every token's bytes, concatenated; token i is bytes[offsets[i], offsets[i+1]).
struct Vocab {
  std::string bytes;
  std::vector<uint32_t> offsets{0};

  int32_t size() const { return static_cast<int32_t>(offsets.size() - 1); }
  std::string_view token(int32_t id) const {
    return std::string_view(bytes.data() + offsets[id], offsets[id + 1] - offsets[id]);
  }
};

// Open-addressing hash from token bytes to id.
class VocabIndex {
 public:
  // Indexes the ids in `order`; the first id with given bytes wins.
  void build(const Vocab* vocab, const std::vector<int32_t>& order);
  int32_t find(std::string_view s) const;

 private:
  const Vocab* vocab_ = nullptr;
  std::vector<int32_t> slots_;  // -1 = empty
  uint64_t mask_ = 0;
};

// (left id, right id) -> (rank, merged id).
class MergeTable {
 public:
  struct Entry {
    uint64_t key;
    uint32_t rank;
    int32_t merged;
  };
  void reserve(size_t n);
  // Later duplicates replace earlier ones (tokenizers collects into a HashMap).
  void insert(int32_t left, int32_t right, uint32_t rank, int32_t merged);
  const Entry* find(int32_t left, int32_t right) const {
    const uint64_t key = make_key(left, right);
    for (uint64_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
      const Entry& e = slots_[i];
      if (e.key == key) return &e;
      if (e.key == kEmpty) return nullptr;
    }
  }
  size_t size() const { return count_; }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static uint64_t make_key(int32_t l, int32_t r) {
    return uint64_t{static_cast<uint32_t>(l)} << 32 | static_cast<uint32_t>(r);
  }
  static uint64_t hash(uint64_t k) { return (k * 0x9E3779B97F4A7C15ull) >> 17; }
  void grow();

  std::vector<Entry> slots_;
  uint64_t mask_ = 0;
  size_t count_ = 0;
};

// Scratch space for Bpe::encode; reuse it across calls.
struct BpeWork {
  std::vector<int32_t> syms;
  std::vector<uint32_t> ranks;
  std::vector<int32_t> merged;
  struct Node {
    int32_t id, prev, next;
  };
  std::vector<Node> nodes;
  struct Cand {
    uint32_t rank, pos;
    int32_t merged;
  };
  std::vector<Cand> heap;
};

class Bpe {
 public:
  // Pieces up to this many symbols use the array merge loop, longer ones the
  // heap (the array loop is quadratic but faster on short words).
  static constexpr size_t kSmallPiece = 48;

  // `vocab` must outlive the Bpe. `bpe_order`: ids eligible as BPE results
  // and direct matches, in priority order.
  Status init(const Vocab* vocab, const std::vector<int32_t>& bpe_order,
              const std::vector<std::pair<uint32_t, uint32_t>>& merges, bool ignore_merges);

  // Appends the ids of one pre-token. Bytes with no single-byte token are
  // dropped, as tokenizers does for a BPE without unk_token.
  void encode(std::string_view piece, BpeWork* w, std::vector<int32_t>* out) const;

  // Test hook: force the merge loop (0 = array, 1 = heap).
  void encode_with(int loop, std::string_view piece, BpeWork* w, std::vector<int32_t>* out) const;

  int32_t find(std::string_view bytes) const { return index_.find(bytes); }
  size_t merge_count() const { return merges_.size(); }

 private:
  void merge_small(BpeWork* w) const;
  void merge_heap(BpeWork* w) const;
  bool init_syms(std::string_view piece, BpeWork* w) const;

  const Vocab* vocab_ = nullptr;
  VocabIndex index_;
  MergeTable merges_;
  int32_t byte_id_[256];
  bool ignore_merges_ = false;
};

}  // namespace cria::tok
