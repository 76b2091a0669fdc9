#include "runtime/kernels/ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "quant/fp16.h"

namespace cria::kernels {

void MatmulScratch::reserve(int64_t tokens, int64_t max_cols) {
  q.resize((size_t)(tokens * max_cols));
  d.resize((size_t)(tokens * max_cols / 32 + 1));
  s.resize((size_t)(tokens * max_cols / 32 + 1));
}

void matmul(const KernelTable& k, ThreadPool& pool, const Matrix& w, const float* x, int64_t n, int64_t ldx,
            float* y, int64_t ldy, const float* bias, MatmulScratch& scratch) {
  const int64_t cols = (int64_t)w.cols(), rows = (int64_t)w.rows();
  const int threads = (double)rows * (double)cols * (double)n < kParallelMacs ? 1 : pool.threads();
  if (qtype_is_tiled(w.type)) {
    // Activations quantized once, shared by every row.
    const int64_t nb = cols / 32;
    int8_t* q = scratch.q.data();
    float* d = scratch.d.data();
    float* s = scratch.s.data();
    if (ldx == cols || n == 1) {
      auto quant = [&](size_t t) { k.quantize_acts(x + (int64_t)t * ldx, 1, cols, q + t * cols, d + t * nb, s + t * nb); };
      if (n >= 8 && threads > 1) pool.parallel_for((size_t)n, quant);
      else for (int64_t t = 0; t < n; ++t) quant((size_t)t);
    } else {
      for (int64_t t = 0; t < n; ++t) k.quantize_acts(x + t * ldx, 1, cols, q + t * cols, d + t * nb, s + t * nb);
    }
    const QActs acts{q, d, s, cols};
    const int64_t tiles = (int64_t)w.l.tiles;
    auto fn = w.type == QType::kQ4 ? k.matmul_q4 : w.type == QType::kQ8 ? k.matmul_q8 : k.matmul_q4m;
    if (threads == 1) {
      fn(w, acts, n, 0, tiles, y, ldy);
    } else {
      // A few tasks per thread balance cores of uneven speed without making
      // tasks so small that scheduling shows.
      // An even count of tiles per task: the x86 prefill kernels run tiles
      // in pairs (each activation load feeds both), and an odd task leaves
      // one tile to run alone.
      int64_t per = std::max<int64_t>(1, tiles / (threads * 4));
      if (per > 1) per += per & 1;
      const int64_t tasks = (tiles + per - 1) / per;
      pool.parallel_for((size_t)tasks, [&](size_t i) {
        const int64_t t0 = (int64_t)i * per, t1 = std::min(tiles, t0 + per);
        fn(w, acts, n, t0, t1, y, ldy);
      });
    }
  } else if (threads == 1) {
    k.matmul_float(w, x, n, ldx, 0, rows, y, ldy);
  } else {
    const int64_t per = std::max<int64_t>(16, rows / (threads * 4));
    const int64_t tasks = (rows + per - 1) / per;
    pool.parallel_for((size_t)tasks, [&](size_t i) {
      const int64_t r0 = (int64_t)i * per, r1 = std::min(rows, r0 + per);
      k.matmul_float(w, x, n, ldx, r0, r1, y, ldy);
    });
  }
  if (bias) {
    for (int64_t t = 0; t < n; ++t) k.add(y + t * ldy, bias, rows);
  }
}

void AttnScratch::reserve(int threads, int64_t max_heads, int64_t head_dim) {
  // A task's rows: its query heads (at most max_heads) for each query of its
  // tile, at most kAttnTileRows when tiles hold more than one query.
  const int64_t rows = std::max(max_heads, kAttnTileRows);
  // Per slot: scores (rows x chunk), partial output, accumulators and packed
  // queries (rows x head_dim each), running max and sum (rows each), and a
  // chunk of K and of V rows decoded from a quantized cache (chunk x head_dim
  // each).
  per_slot_ = rows * (kAttnChunk + 3 * head_dim + 2) + 2 * kAttnChunk * head_dim;
  slots_ = std::max(1, threads);
  buf_.assign((size_t)(per_slot_ * slots_), 0.0f);
  // Split KV blocks: attention() makes fewer than 2 x kAttnTasksPerThread x
  // threads block tasks (see there), each leaving rows x (head_dim + 2).
  per_partial_ = rows * (head_dim + 2);
  partials_.assign((size_t)(2 * kAttnTasksPerThread * slots_ * per_partial_), 0.0f);
  const int words = (slots_ + 63) / 64;
  used_ = std::make_unique<std::atomic<uint64_t>[]>((size_t)words);
  for (int w = 0; w < words; ++w) {
    // Bits past the last slot are permanently taken.
    const int in_word = std::min(64, slots_ - 64 * w);
    used_[w].store(in_word == 64 ? 0 : ~uint64_t(0) << in_word);
  }
}

float* AttnScratch::acquire(int* slot) {
  const int words = (slots_ + 63) / 64;
  for (;;) {  // a slot frees as soon as a running task ends
    for (int w = 0; w < words; ++w) {
      uint64_t cur = used_[w].load(std::memory_order_relaxed);
      while (cur != ~uint64_t(0)) {
        const int bit = __builtin_ctzll(~cur);
        if (used_[w].compare_exchange_weak(cur, cur | (uint64_t(1) << bit), std::memory_order_acquire)) {
          *slot = 64 * w + bit;
          return buf_.data() + (int64_t)*slot * per_slot_;
        }
      }
    }
  }
}

void AttnScratch::release(int slot) {
  used_[slot / 64].fetch_and(~(uint64_t(1) << (slot % 64)), std::memory_order_release);
}

namespace {

// Online softmax of heads [h0, h0 + nh) of queries [0, nt) (one sequence's:
// they share k and v) over cache rows [j0, j1) of KV head g (j1 at most the
// longest query's n_pos), each query stopping at its own n_pos. The rows are query-major (row t * nh + h), so
// every K and V row loaded serves all nt x nh of them. Leaves the
// unnormalized output in acc (rows x d) and each row's running max and sum
// in mx and sum (-inf and 0 for a row that saw no position).
void attend_rows(const KernelTable& k, const AttnShape& sh, const AttnQuery* qs, int64_t nt, int64_t g, int64_t h0,
                 int64_t nh, int64_t j0, int64_t j1, float* slot_buf, int64_t per_slot, float* acc, float* mx,
                 float* sum) {
  const int64_t d = sh.head_dim, rows = nt * nh;
  float* scores = slot_buf;                      // rows x chunk
  float* part_out = scores + rows * kAttnChunk;  // rows x d
  float* qpack = part_out + rows * d;            // rows x d
  float* kdec = slot_buf + per_slot - 2 * kAttnChunk * d;  // chunk x d each
  float* vdec = kdec + kAttnChunk * d;
  std::fill(acc, acc + rows * d, 0.0f);
  std::fill(mx, mx + rows, -INFINITY);
  std::fill(sum, sum + rows, 0.0f);
  const KvType kt = sh.kv_type;
  const size_t rb = kv_row_bytes(kt, d);
  const uint8_t* kh = static_cast<const uint8_t*>(qs[0].k) + (size_t)(g * sh.kv_head_rows) * rb;
  const uint8_t* vh = static_cast<const uint8_t*>(qs[0].v) + (size_t)(g * sh.kv_head_rows) * rb;
  const float* q = qs[0].q + h0 * d;
  if (nt > 1) {
    for (int64_t t = 0; t < nt; ++t) std::memcpy(qpack + t * nh * d, qs[t].q + h0 * d, (size_t)(nh * d) * sizeof(float));
    q = qpack;
  }
  for (int64_t c0 = j0; c0 < j1; c0 += kAttnChunk) {
    const int64_t m = std::min(kAttnChunk, j1 - c0);
    if (kt == KvType::kF32) {
      k.attn_scores_f32(q, rows, reinterpret_cast<const float*>(kh) + c0 * d, d, m, d, sh.scale, scores);
    } else if (kt == KvType::kF16) {
      k.attn_scores_f16(q, rows, reinterpret_cast<const uint16_t*>(kh) + c0 * d, d, m, d, sh.scale, scores);
    } else {  // quantized rows: decode the chunk (it stays in cache), then as f32
      kv_load_rows(k, kt, kh + (size_t)c0 * rb, m, d, kdec);
      k.attn_scores_f32(q, rows, kdec, d, m, d, sh.scale, scores);
    }
    for (int64_t row = 0; row < rows; ++row) {
      float* s = scores + row * m;
      // Positions this row's query may not see weigh exactly 0, so a tile's
      // rows get the values each query alone would.
      const int64_t seen = std::clamp<int64_t>(qs[row / nh].n_pos - c0, 0, m);
      if (sh.alibi) {
        const float slope = sh.alibi[h0 + row % nh];
        for (int64_t j = 0; j < seen; ++j)
          s[j] += sh.scale * bf16_to_f32(f32_to_bf16(slope * bf16_to_f32(f32_to_bf16((float)(c0 + j)))));
      }
      const float cmax = k.row_max(s, seen, mx[row]);
      std::fill(s + seen, s + m, 0.0f);
      if (seen == 0) continue;
      const float corr = std::exp(mx[row] - cmax);  // exp(-inf) = 0 on the row's first chunk
      const float psum = k.exp_sum(s, seen, cmax);
      sum[row] = sum[row] * corr + psum;
      mx[row] = cmax;
      for (int64_t i = 0; i < d; ++i) acc[row * d + i] *= corr;
    }
    if (kt == KvType::kF32) {
      k.attn_values_f32(scores, rows, reinterpret_cast<const float*>(vh) + c0 * d, d, m, d, part_out);
    } else if (kt == KvType::kF16) {
      k.attn_values_f16(scores, rows, reinterpret_cast<const uint16_t*>(vh) + c0 * d, d, m, d, part_out);
    } else {
      kv_load_rows(k, kt, vh + (size_t)c0 * rb, m, d, vdec);
      k.attn_values_f32(scores, rows, vdec, d, m, d, part_out);
    }
    k.add(acc, part_out, rows * d);
  }
}

// Queries [i0, i1) split into runs that share one sequence's cache.
template <typename F>
void for_each_run(const AttnQuery* queries, int64_t i0, int64_t i1, F&& f) {
  while (i0 < i1) {
    int64_t e = i0 + 1;
    while (e < i1 && queries[e].k == queries[i0].k && queries[e].v == queries[i0].v) ++e;
    f(i0, e);
    i0 = e;
  }
}

}  // namespace

AttnPlan plan_attention(int threads, const AttnShape& sh, const AttnQuery* queries, int64_t n_queries) {
  AttnPlan p;
  const int64_t r = sh.n_heads / sh.n_kv_heads;
  const int64_t want = (int64_t)threads * kAttnTasksPerThread;
  // A prompt's queries read the same cache rows: tiles of them (as many as
  // the average run of one sequence's queries, up to kAttnTileRows rows of
  // query heads) load each K and V row once for the whole tile.
  int64_t runs = 0;
  for_each_run(queries, 0, n_queries, [&](int64_t, int64_t) { ++runs; });
  p.tile = std::max<int64_t>(1, std::min(n_queries / std::max<int64_t>(1, runs), kAttnTileRows / r));
  const int64_t tiles = (n_queries + p.tile - 1) / p.tile;
  // Split each KV head's query group so there are enough tasks for the pool
  // (multi-query models have a single KV head).
  p.parts = std::min(r, std::max<int64_t>(1, want / std::max<int64_t>(1, tiles * sh.n_kv_heads)));
  const int64_t groups = tiles * sh.n_kv_heads * p.parts;
  double macs = 0;
  int64_t longest = 0;
  for (int64_t i = 0; i < n_queries; ++i) {
    macs += 2.0 * (double)queries[i].n_pos * (double)(sh.n_heads * sh.head_dim);
    longest = std::max(longest, queries[i].n_pos);
  }
  p.threaded = macs >= kParallelMacs && threads > 1;
  // Still short of tasks (decode at a long context on more cores than KV
  // heads): split each query's cache rows into blocks of at least
  // kAttnMinBlock rows, attended separately and merged after. groups < want
  // here, so blocks x groups < want + groups < 2 x want: what reserve() sized.
  if (p.threaded && groups < want)
    p.blocks = std::max<int64_t>(1, std::min((want + groups - 1) / groups, longest / kAttnMinBlock));
  return p;
}

void attention(const KernelTable& k, ThreadPool& pool, const AttnShape& sh, const AttnQuery* queries,
               int64_t n_queries, AttnScratch& scratch) {
  const int64_t r = sh.n_heads / sh.n_kv_heads, d = sh.head_dim;
  const AttnPlan plan = plan_attention(pool.threads(), sh, queries, n_queries);
  const int64_t parts = plan.parts, blocks = plan.blocks, tile = plan.tile;
  const int64_t per = (r + parts - 1) / parts;
  const int64_t tiles = (n_queries + tile - 1) / tile;
  const int64_t groups = tiles * sh.n_kv_heads * parts;
  const int64_t tasks = groups * blocks;
  // A group: one tile's queries [*i0, *i1), heads [*h0, *h0 + nh) of KV head *g.
  auto heads_of = [&](int64_t group, int64_t* g, int64_t* h0, int64_t* i0, int64_t* i1) {
    const int64_t part = group % parts;
    *g = (group / parts) % sh.n_kv_heads;
    *i0 = group / parts / sh.n_kv_heads * tile;
    *i1 = std::min(n_queries, *i0 + tile);
    *h0 = *g * r + part * per;
    return std::min(*g * r + r, *h0 + per) - *h0;
  };
  auto block_rows = [&](int64_t n_pos, int64_t b, int64_t* j0, int64_t* j1) {
    const int64_t rows = (n_pos + blocks - 1) / blocks;
    const int64_t step = (rows + kAttnChunk - 1) / kAttnChunk * kAttnChunk;  // whole chunks per block
    *j0 = std::min(n_pos, b * step);
    *j1 = std::min(n_pos, *j0 + step);
  };
  auto longest = [&](int64_t i0, int64_t i1) {
    int64_t n = 0;
    for (int64_t i = i0; i < i1; ++i) n = std::max(n, queries[i].n_pos);
    return n;
  };
  const int64_t stride = scratch.per_partial();
  auto body = [&](size_t task) {
    int64_t g, h0, i0, i1;
    const int64_t group = (int64_t)task / blocks, b = (int64_t)task % blocks;
    const int64_t nh = heads_of(group, &g, &h0, &i0, &i1);
    if (nh <= 0) return;
    int slot;
    float* buf = scratch.acquire(&slot);
    // Partial results of a split block stay for the merge, one row after
    // another across the tile's runs.
    float* part = scratch.partials() + (int64_t)task * stride;
    const int64_t tile_rows = (i1 - i0) * nh;
    for_each_run(queries, i0, i1, [&](int64_t a, int64_t e) {
      const int64_t rows = (e - a) * nh;
      int64_t j0 = 0, j1 = longest(a, e);
      if (blocks > 1) {
        block_rows(j1, b, &j0, &j1);
        const int64_t off = (a - i0) * nh;
        attend_rows(k, sh, queries + a, e - a, g, h0, nh, j0, j1, buf, scratch.per_slot(), part + off * d,
                    part + tile_rows * d + off, part + tile_rows * (d + 1) + off);
        return;
      }
      float* acc = buf + rows * (kAttnChunk + 2 * d);
      float* mx = acc + rows * d;
      float* sum = mx + rows;
      attend_rows(k, sh, queries + a, e - a, g, h0, nh, j0, j1, buf, scratch.per_slot(), acc, mx, sum);
      for (int64_t row = 0; row < rows; ++row) {
        const float inv = sum[row] > 0 ? 1.0f / sum[row] : 0.0f;
        float* out = queries[a + row / nh].out + (h0 + row % nh) * d;
        for (int64_t i = 0; i < d; ++i) out[i] = acc[row * d + i] * inv;
      }
    });
    scratch.release(slot);
  };
  if (!plan.threaded) {
    for (int64_t i = 0; i < tasks; ++i) body((size_t)i);
  } else {
    pool.parallel_for((size_t)tasks, body);
  }
  if (blocks == 1) return;
  // Merge the blocks of each group: rescale every row's sums to its largest
  // max (an empty block has max -inf and weight 0).
  for (int64_t group = 0; group < groups; ++group) {
    int64_t g, h0, i0, i1;
    const int64_t nh = heads_of(group, &g, &h0, &i0, &i1);
    if (nh <= 0) continue;
    const int64_t rows = (i1 - i0) * nh;
    const float* first = scratch.partials() + group * blocks * stride;
    for (int64_t row = 0; row < rows; ++row) {
      float* o = queries[i0 + row / nh].out + (h0 + row % nh) * d;
      float gmax = -INFINITY;
      for (int64_t b = 0; b < blocks; ++b) gmax = std::max(gmax, first[b * stride + rows * d + row]);
      float total = 0;
      std::fill(o, o + d, 0.0f);
      for (int64_t b = 0; b < blocks; ++b) {
        const float* part = first + b * stride;
        const float m = part[rows * d + row];
        if (m == -INFINITY) continue;
        const float w = std::exp(m - gmax);
        total += part[rows * (d + 1) + row] * w;
        for (int64_t i = 0; i < d; ++i) o[i] += part[row * d + i] * w;
      }
      const float inv = total > 0 ? 1.0f / total : 0.0f;
      for (int64_t i = 0; i < d; ++i) o[i] *= inv;
    }
  }
}

}  // namespace cria::kernels
