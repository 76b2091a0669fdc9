// Threaded composite ops built from a KernelTable: matrix multiply with
// activation quantization and bias, and attention over a KV cache with an
// online softmax. Still model-agnostic: the caller says which cache rows each
// query may see (that is how causal and block-diagonal masks are expressed).
#pragma once

#include <atomic>
#include <memory>
#include <cstdint>
#include <vector>

#include "runtime/kernels/kernels.h"
#include "runtime/kernels/kv_rows.h"
#include "runtime/kernels/threadpool.h"

namespace cria::kernels {

// Scratch owned by a session, sized once for the largest batch and width.
struct MatmulScratch {
  std::vector<int8_t> q;
  std::vector<float> d, s;
  void reserve(int64_t tokens, int64_t max_cols);
};

// Below this many multiply-adds a matmul runs on the calling thread: handing
// work to the pool costs microseconds, which small models (the miniatures'
// layers are 256 wide) never win back.
constexpr double kParallelMacs = 1 << 20;

// y[t * ldy + r] = sum_k W[r, k] x[t * ldx + k] (+ bias[r]) for t < n.
void matmul(const KernelTable& k, ThreadPool& pool, const Matrix& w, const float* x, int64_t n, int64_t ldx,
            float* y, int64_t ldy, const float* bias, MatmulScratch& scratch);

// Per-thread scratch for attention: one slot per pool thread, claimed by
// tasks through a bit mask of as many 64-bit words as the thread count needs
// (at most `threads` tasks run at once, so a free slot always exists).
class AttnScratch {
 public:
  void reserve(int threads, int64_t max_heads_per_task, int64_t head_dim);
  float* acquire(int* slot);
  void release(int slot);
  int slots() const { return slots_; }
  int64_t per_slot() const { return per_slot_; }
  // Partial results of split KV blocks (attention()): per_partial() floats each.
  float* partials() { return partials_.data(); }
  int64_t per_partial() const { return per_partial_; }

 private:
  std::vector<float> buf_, partials_;
  int64_t per_slot_ = 0, per_partial_ = 0;
  int slots_ = 0;
  std::unique_ptr<std::atomic<uint64_t>[]> used_;
};

constexpr int64_t kAttnChunk = 64;  // cache rows scored per online-softmax step
// attention() aims at this many tasks per pool thread: when a batch's
// (query, KV head) pairs are fewer, it splits head groups, then each
// query's cache rows into blocks of at least kAttnMinBlock rows (decode at
// a long context on more cores than KV heads), merged after.
constexpr int64_t kAttnTasksPerThread = 2;
constexpr int64_t kAttnMinBlock = 256;
// Query-head rows a task takes at most when a tile holds several queries of
// one sequence (a prompt's tokens, which read the same cache rows).
constexpr int64_t kAttnTileRows = 64;

// One query token's view of its sequence's cache.
struct AttnQuery {
  const float* q;  // n_heads * head_dim
  float* out;      // n_heads * head_dim
  const void* k;   // kv head 0, position 0 of this sequence (rows of AttnShape::kv_type)
  const void* v;
  int64_t n_pos;   // cache rows this query may see: [0, n_pos)
};

struct AttnShape {
  int64_t n_heads, n_kv_heads, head_dim;
  int64_t kv_head_rows;    // cache rows between kv heads (the cache's positions)
  float scale;             // usually 1 / sqrt(head_dim)
  // ALiBi: per head slope rounded to bf16, or nullptr. The bias added to the
  // raw score of key position j is bf16(slope * bf16(j)), as transformers'
  // build_alibi_tensor computes it, then scaled with the score.
  const float* alibi;
  KvType kv_type;          // how a row is stored (kv_rows.h)
};

// How attention() cuts its work for `threads` threads: the queries into
// tiles of `tile` (consecutive queries; those of one sequence share each K
// and V row loaded), each KV head's query group into `parts`, each query's
// cache rows into `blocks`.
struct AttnPlan {
  int64_t tile = 1, parts = 1, blocks = 1;
  bool threaded = false;  // false: too little work to hand to the pool
};
AttnPlan plan_attention(int threads, const AttnShape& shape, const AttnQuery* queries, int64_t n_queries);

void attention(const KernelTable& k, ThreadPool& pool, const AttnShape& shape, const AttnQuery* queries,
               int64_t n_queries, AttnScratch& scratch);

}  // namespace cria::kernels
