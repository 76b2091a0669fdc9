#include "runtime/tokenizer/bpe.h"

#include <algorithm>
#include <limits>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace cria::tok {
namespace {

constexpr uint32_t kNoRank = std::numeric_limits<uint32_t>::max();

uint64_t pow2_at_least(uint64_t n) {
  uint64_t p = 16;
  while (p < n) p <<= 1;
  return p;
}

}  // namespace

void VocabIndex::build(const Vocab* vocab, const std::vector<int32_t>& order) {
  vocab_ = vocab;
  const uint64_t cap = pow2_at_least(order.size() * 2 + 1);
  slots_.assign(cap, -1);
  mask_ = cap - 1;
  for (int32_t id : order) {
    const std::string_view t = vocab->token(id);
    if (t.empty()) continue;
    for (uint64_t i = XXH3_64bits(t.data(), t.size()) & mask_;; i = (i + 1) & mask_) {
      if (slots_[i] < 0) {
        slots_[i] = id;
        break;
      }
      if (vocab->token(slots_[i]) == t) break;  // first one wins
    }
  }
}

int32_t VocabIndex::find(std::string_view s) const {
  if (slots_.empty() || s.empty()) return -1;
  for (uint64_t i = XXH3_64bits(s.data(), s.size()) & mask_;; i = (i + 1) & mask_) {
    const int32_t id = slots_[i];
    if (id < 0) return -1;
    if (vocab_->token(id) == s) return id;
  }
}

void MergeTable::reserve(size_t n) {
  const uint64_t cap = pow2_at_least(n * 2 + 1);
  slots_.assign(cap, Entry{kEmpty, 0, 0});
  mask_ = cap - 1;
  count_ = 0;
}

void MergeTable::grow() {
  std::vector<Entry> old = std::move(slots_);
  reserve(old.size());  // doubles: capacity >= 2 * old size
  for (const Entry& e : old) {
    if (e.key != kEmpty) insert(static_cast<int32_t>(e.key >> 32), static_cast<int32_t>(e.key), e.rank, e.merged);
  }
}

void MergeTable::insert(int32_t left, int32_t right, uint32_t rank, int32_t merged) {
  if ((count_ + 1) * 2 > slots_.size()) grow();
  const uint64_t key = make_key(left, right);
  for (uint64_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
    Entry& e = slots_[i];
    if (e.key == kEmpty) {
      e = Entry{key, rank, merged};
      ++count_;
      return;
    }
    if (e.key == key) {
      e.rank = rank;
      e.merged = merged;
      return;
    }
  }
}

Status Bpe::init(const Vocab* vocab, const std::vector<int32_t>& bpe_order,
                 const std::vector<std::pair<uint32_t, uint32_t>>& merges, bool ignore_merges) {
  vocab_ = vocab;
  ignore_merges_ = ignore_merges;
  index_.build(vocab, bpe_order);
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    byte_id_[b] = index_.find(std::string_view(&c, 1));
  }
  merges_.reserve(merges.size());
  std::string joined;
  const auto n = static_cast<uint32_t>(vocab->size());
  for (size_t r = 0; r < merges.size(); ++r) {
    const auto [a, b] = merges[r];
    if (a >= n || b >= n) {
      return Error(Code::kInvalidArgument, "merge " + std::to_string(r) + " (" + std::to_string(a) + ", " +
                                               std::to_string(b) + ") names an id outside the vocabulary of " +
                                               std::to_string(n));
    }
    joined.assign(vocab->token(static_cast<int32_t>(a)));
    joined.append(vocab->token(static_cast<int32_t>(b)));
    const int32_t m = index_.find(joined);
    if (m < 0) {
      return Error(Code::kInvalidArgument, "merge " + std::to_string(r) + " (" + std::to_string(a) + ", " +
                                               std::to_string(b) + "): the merged token is not in the vocabulary");
    }
    merges_.insert(static_cast<int32_t>(a), static_cast<int32_t>(b), static_cast<uint32_t>(r), m);
  }
  return Status::Ok();
}

bool Bpe::init_syms(std::string_view piece, BpeWork* w) const {
  w->syms.clear();
  for (unsigned char c : piece) {
    const int32_t id = byte_id_[c];
    if (id >= 0) w->syms.push_back(id);
  }
  return w->syms.size() > 1;
}

// Merges the lowest-ranked adjacent pair until none is left; ties go to the
// leftmost pair. ranks[k] / merged[k] describe the pair (syms[k], syms[k+1]).
void Bpe::merge_small(BpeWork* w) const {
  std::vector<int32_t>& s = w->syms;
  std::vector<uint32_t>& ranks = w->ranks;
  std::vector<int32_t>& merged = w->merged;
  size_t n = s.size();
  ranks.resize(n);
  merged.resize(n);
  auto look = [&](size_t k) {
    const MergeTable::Entry* e = merges_.find(s[k], s[k + 1]);
    ranks[k] = e ? e->rank : kNoRank;
    merged[k] = e ? e->merged : -1;
  };
  for (size_t k = 0; k + 1 < n; ++k) look(k);
  while (n > 1) {
    uint32_t best = kNoRank;
    size_t bk = 0;
    for (size_t k = 0; k + 1 < n; ++k) {
      if (ranks[k] < best) {
        best = ranks[k];
        bk = k;
      }
    }
    if (best == kNoRank) break;
    s[bk] = merged[bk];
    // Remove symbol bk+1 and the pair that started at it.
    std::copy(s.begin() + bk + 2, s.begin() + n, s.begin() + bk + 1);
    std::copy(ranks.begin() + bk + 2, ranks.begin() + n, ranks.begin() + bk + 1);
    std::copy(merged.begin() + bk + 2, merged.begin() + n, merged.begin() + bk + 1);
    --n;
    if (bk + 1 < n) look(bk);
    if (bk > 0) look(bk - 1);
  }
  s.resize(n);
}

// The same merges with a linked list and a heap of candidate pairs, for long
// pieces. A candidate is stale once either symbol changed: it is recognised
// by looking the pair up again (the merged id differs) and skipped.
void Bpe::merge_heap(BpeWork* w) const {
  std::vector<int32_t>& s = w->syms;
  const auto n = static_cast<int32_t>(s.size());
  std::vector<BpeWork::Node>& nodes = w->nodes;
  std::vector<BpeWork::Cand>& heap = w->heap;
  nodes.resize(n);
  heap.clear();
  auto later = [](const BpeWork::Cand& a, const BpeWork::Cand& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  };
  auto push = [&](int32_t pos) {
    const int32_t nx = nodes[pos].next;
    const MergeTable::Entry* e = merges_.find(nodes[pos].id, nodes[nx].id);
    if (!e) return;
    heap.push_back({e->rank, static_cast<uint32_t>(pos), e->merged});
    std::push_heap(heap.begin(), heap.end(), later);
  };
  for (int32_t i = 0; i < n; ++i) nodes[i] = {s[i], i - 1, i + 1 < n ? i + 1 : -1};
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    const BpeWork::Cand c = heap.back();
    heap.pop_back();
    BpeWork::Node& left = nodes[c.pos];
    if (left.id < 0 || left.next < 0) continue;
    const MergeTable::Entry* e = merges_.find(left.id, nodes[left.next].id);
    if (!e || e->merged != c.merged) continue;
    BpeWork::Node& right = nodes[left.next];
    left.id = c.merged;
    right.id = -1;
    left.next = right.next;
    if (left.next >= 0) nodes[left.next].prev = static_cast<int32_t>(c.pos);
    if (left.prev >= 0) push(left.prev);
    if (left.next >= 0) push(static_cast<int32_t>(c.pos));
  }
  s.clear();
  for (int32_t i = 0; i >= 0; i = nodes[i].next) s.push_back(nodes[i].id);
}

void Bpe::encode_with(int loop, std::string_view piece, BpeWork* w, std::vector<int32_t>* out) const {
  if (init_syms(piece, w)) {
    if (loop == 0) {
      merge_small(w);
    } else {
      merge_heap(w);
    }
  }
  out->insert(out->end(), w->syms.begin(), w->syms.end());
}

void Bpe::encode(std::string_view piece, BpeWork* w, std::vector<int32_t>* out) const {
  if (piece.size() == 1) {
    const int32_t id = byte_id_[static_cast<unsigned char>(piece[0])];
    if (id >= 0) out->push_back(id);
    return;
  }
  if (ignore_merges_) {
    const int32_t id = index_.find(piece);
    if (id >= 0) {
      out->push_back(id);
      return;
    }
  }
  encode_with(piece.size() <= kSmallPiece ? 0 : 1, piece, w, out);
}

}  // namespace cria::tok
