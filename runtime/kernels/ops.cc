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
      const int64_t per = std::max<int64_t>(1, tiles / (threads * 4));
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
  // Per slot: scores (heads x chunk), partial output and accumulators
  // (heads x head_dim each), running max and sum (heads each), and a chunk
  // of K and of V rows decoded from a quantized cache (chunk x head_dim each).
  per_slot_ = max_heads * (kAttnChunk + 2 * head_dim + 2) + 2 * kAttnChunk * head_dim;
  slots_ = std::max(1, threads);
  buf_.assign((size_t)(per_slot_ * slots_), 0.0f);
  // Split KV blocks: attention() makes fewer than 2 x kAttnTasksPerThread x
  // threads block tasks (see there), each leaving heads x (head_dim + 2).
  per_partial_ = max_heads * (head_dim + 2);
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

// Online softmax of heads [h0, h0 + nh) of one query over cache rows
// [j0, j1) of KV head g: leaves the unnormalized output in acc (nh x d) and
// each head's running max and sum in mx and sum.
void attend_rows(const KernelTable& k, const AttnShape& sh, const AttnQuery& aq, int64_t g, int64_t h0, int64_t nh,
                 int64_t j0, int64_t j1, float* slot_buf, int64_t per_slot, float* acc, float* mx, float* sum) {
  const int64_t d = sh.head_dim;
  float* scores = slot_buf;                   // nh x chunk
  float* part_out = scores + nh * kAttnChunk;  // nh x d
  float* kdec = slot_buf + per_slot - 2 * kAttnChunk * d;  // chunk x d each
  float* vdec = kdec + kAttnChunk * d;
  std::fill(acc, acc + nh * d, 0.0f);
  std::fill(mx, mx + nh, -INFINITY);
  std::fill(sum, sum + nh, 0.0f);
  const KvType kt = sh.kv_type;
  const size_t rb = kv_row_bytes(kt, d);
  const uint8_t* kh = static_cast<const uint8_t*>(aq.k) + (size_t)(g * sh.kv_head_rows) * rb;
  const uint8_t* vh = static_cast<const uint8_t*>(aq.v) + (size_t)(g * sh.kv_head_rows) * rb;
  const float* q = aq.q + h0 * d;
  for (int64_t c0 = j0; c0 < j1; c0 += kAttnChunk) {
    const int64_t m = std::min(kAttnChunk, j1 - c0);
    if (kt == KvType::kF32) {
      k.attn_scores_f32(q, nh, reinterpret_cast<const float*>(kh) + c0 * d, d, m, d, sh.scale, scores);
    } else if (kt == KvType::kF16) {
      k.attn_scores_f16(q, nh, reinterpret_cast<const uint16_t*>(kh) + c0 * d, d, m, d, sh.scale, scores);
    } else {  // quantized rows: decode the chunk (it stays in cache), then as f32
      kv_load_rows(k, kt, kh + (size_t)c0 * rb, m, d, kdec);
      k.attn_scores_f32(q, nh, kdec, d, m, d, sh.scale, scores);
    }
    for (int64_t h = 0; h < nh; ++h) {
      float* s = scores + h * m;
      if (sh.alibi) {
        const float slope = sh.alibi[h0 + h];
        for (int64_t j = 0; j < m; ++j)
          s[j] += sh.scale * bf16_to_f32(f32_to_bf16(slope * bf16_to_f32(f32_to_bf16((float)(c0 + j)))));
      }
      float cmax = mx[h];
      for (int64_t j = 0; j < m; ++j) cmax = std::max(cmax, s[j]);
      const float corr = std::exp(mx[h] - cmax);  // exp(-inf) = 0 on the first chunk
      float psum = 0;
      for (int64_t j = 0; j < m; ++j) {
        s[j] = std::exp(s[j] - cmax);
        psum += s[j];
      }
      sum[h] = sum[h] * corr + psum;
      mx[h] = cmax;
      for (int64_t i = 0; i < d; ++i) acc[h * d + i] *= corr;
    }
    if (kt == KvType::kF32) {
      k.attn_values_f32(scores, nh, reinterpret_cast<const float*>(vh) + c0 * d, d, m, d, part_out);
    } else if (kt == KvType::kF16) {
      k.attn_values_f16(scores, nh, reinterpret_cast<const uint16_t*>(vh) + c0 * d, d, m, d, part_out);
    } else {
      kv_load_rows(k, kt, vh + (size_t)c0 * rb, m, d, vdec);
      k.attn_values_f32(scores, nh, vdec, d, m, d, part_out);
    }
    k.add(acc, part_out, nh * d);
  }
}

}  // namespace

AttnPlan plan_attention(int threads, const AttnShape& sh, const AttnQuery* queries, int64_t n_queries) {
  AttnPlan p;
  const int64_t r = sh.n_heads / sh.n_kv_heads;
  const int64_t want = (int64_t)threads * kAttnTasksPerThread;
  // Split each KV head's query group so there are enough tasks for the pool
  // (multi-query models have a single KV head).
  p.parts = std::min(r, std::max<int64_t>(1, want / std::max<int64_t>(1, n_queries * sh.n_kv_heads)));
  const int64_t groups = n_queries * sh.n_kv_heads * p.parts;
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
  const int64_t parts = plan.parts, blocks = plan.blocks;
  const int64_t per = (r + parts - 1) / parts;
  const int64_t groups = n_queries * sh.n_kv_heads * parts;
  const bool threaded = plan.threaded;
  const int64_t tasks = groups * blocks;
  auto heads_of = [&](int64_t group, int64_t* g, int64_t* h0, const AttnQuery** aq) {
    const int64_t part = group % parts;
    *g = (group / parts) % sh.n_kv_heads;
    *aq = &queries[group / parts / sh.n_kv_heads];
    *h0 = *g * r + part * per;
    return std::min(*g * r + r, *h0 + per) - *h0;
  };
  auto block_rows = [&](int64_t n_pos, int64_t b, int64_t* j0, int64_t* j1) {
    const int64_t rows = (n_pos + blocks - 1) / blocks;
    const int64_t step = (rows + kAttnChunk - 1) / kAttnChunk * kAttnChunk;  // whole chunks per block
    *j0 = std::min(n_pos, b * step);
    *j1 = std::min(n_pos, *j0 + step);
  };
  const int64_t stride = scratch.per_partial();
  auto body = [&](size_t task) {
    int64_t g, h0;
    const AttnQuery* aq;
    const int64_t group = (int64_t)task / blocks, b = (int64_t)task % blocks;
    const int64_t nh = heads_of(group, &g, &h0, &aq);
    if (nh <= 0) return;
    int64_t j0 = 0, j1 = aq->n_pos;
    if (blocks > 1) block_rows(aq->n_pos, b, &j0, &j1);
    int slot;
    float* buf = scratch.acquire(&slot);
    if (blocks > 1) {
      // acc, max and sum of this block, kept for the merge.
      float* part = scratch.partials() + (int64_t)task * stride;
      attend_rows(k, sh, *aq, g, h0, nh, j0, j1, buf, scratch.per_slot(), part, part + nh * d, part + nh * d + nh);
    } else {
      float* acc = buf + nh * (kAttnChunk + d);
      float* mx = acc + nh * d;
      float* sum = mx + nh;
      attend_rows(k, sh, *aq, g, h0, nh, j0, j1, buf, scratch.per_slot(), acc, mx, sum);
      float* out = aq->out + h0 * d;
      for (int64_t h = 0; h < nh; ++h) {
        const float inv = sum[h] > 0 ? 1.0f / sum[h] : 0.0f;
        for (int64_t i = 0; i < d; ++i) out[h * d + i] = acc[h * d + i] * inv;
      }
    }
    scratch.release(slot);
  };
  if (!threaded) {
    for (int64_t i = 0; i < tasks; ++i) body((size_t)i);
  } else {
    pool.parallel_for((size_t)tasks, body);
  }
  if (blocks == 1) return;
  // Merge the blocks of each group: rescale every block's sums to the
  // largest max (an empty block has max -inf and weight 0).
  for (int64_t group = 0; group < groups; ++group) {
    int64_t g, h0;
    const AttnQuery* aq;
    const int64_t nh = heads_of(group, &g, &h0, &aq);
    if (nh <= 0) continue;
    const float* first = scratch.partials() + group * blocks * stride;
    float* out = aq->out + h0 * d;
    for (int64_t h = 0; h < nh; ++h) {
      float gmax = -INFINITY;
      for (int64_t b = 0; b < blocks; ++b) gmax = std::max(gmax, first[b * stride + nh * d + h]);
      float total = 0;
      float* o = out + h * d;
      std::fill(o, o + d, 0.0f);
      for (int64_t b = 0; b < blocks; ++b) {
        const float* part = first + b * stride;
        const float m = part[nh * d + h];
        if (m == -INFINITY) continue;
        const float w = std::exp(m - gmax);
        total += part[nh * d + nh + h] * w;
        for (int64_t i = 0; i < d; ++i) o[i] += part[h * d + i] * w;
      }
      const float inv = total > 0 ? 1.0f / total : 0.0f;
      for (int64_t i = 0; i < d; ++i) o[i] *= inv;
    }
  }
}

}  // namespace cria::kernels
