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

void attention(const KernelTable& k, ThreadPool& pool, const AttnShape& sh, const AttnQuery* queries,
               int64_t n_queries, AttnScratch& scratch) {
  const int64_t r = sh.n_heads / sh.n_kv_heads, d = sh.head_dim;
  // Split each KV head's query group so there are enough tasks for the pool
  // (multi-query models have a single KV head).
  const int64_t want = std::max<int64_t>(1, (int64_t)pool.threads() * 2 / std::max<int64_t>(1, n_queries * sh.n_kv_heads));
  const int64_t parts = std::min(r, want);
  const int64_t per = (r + parts - 1) / parts;
  const int64_t tasks = n_queries * sh.n_kv_heads * parts;
  double macs = 0;
  for (int64_t i = 0; i < n_queries; ++i) macs += 2.0 * (double)queries[i].n_pos * (double)(sh.n_heads * d);
  auto body = [&](size_t task) {
    const int64_t part = (int64_t)task % parts;
    const int64_t g = ((int64_t)task / parts) % sh.n_kv_heads;
    const AttnQuery& aq = queries[(int64_t)task / parts / sh.n_kv_heads];
    const int64_t h0 = g * r + part * per, h1 = std::min(g * r + r, h0 + per), nh = h1 - h0;
    if (nh <= 0) return;
    int slot;
    float* buf = scratch.acquire(&slot);
    float* scores = buf;                      // nh x chunk
    float* part_out = scores + nh * kAttnChunk;  // nh x d
    float* acc = part_out + nh * d;           // nh x d
    float* mx = acc + nh * d;                 // nh
    float* sum = mx + nh;                     // nh
    float* kdec = buf + scratch.per_slot() - 2 * kAttnChunk * d;  // chunk x d each
    float* vdec = kdec + kAttnChunk * d;
    std::fill(acc, acc + nh * d, 0.0f);
    std::fill(mx, mx + nh, -INFINITY);
    std::fill(sum, sum + nh, 0.0f);
    const KvType kt = sh.kv_type;
    const size_t rb = kv_row_bytes(kt, d);
    const uint8_t* kh = static_cast<const uint8_t*>(aq.k) + (size_t)(g * sh.kv_head_rows) * rb;
    const uint8_t* vh = static_cast<const uint8_t*>(aq.v) + (size_t)(g * sh.kv_head_rows) * rb;
    const float* q = aq.q + h0 * d;
    for (int64_t j0 = 0; j0 < aq.n_pos; j0 += kAttnChunk) {
      const int64_t m = std::min(kAttnChunk, aq.n_pos - j0);
      if (kt == KvType::kF32) {
        k.attn_scores_f32(q, nh, reinterpret_cast<const float*>(kh) + j0 * d, d, m, d, sh.scale, scores);
      } else if (kt == KvType::kF16) {
        k.attn_scores_f16(q, nh, reinterpret_cast<const uint16_t*>(kh) + j0 * d, d, m, d, sh.scale, scores);
      } else {  // quantized rows: decode the chunk (it stays in cache), then as f32
        kv_load_rows(kt, kh + (size_t)j0 * rb, m, d, kdec);
        k.attn_scores_f32(q, nh, kdec, d, m, d, sh.scale, scores);
      }
      for (int64_t h = 0; h < nh; ++h) {
        float* s = scores + h * m;
        if (sh.alibi) {
          const float slope = sh.alibi[h0 + h];
          for (int64_t j = 0; j < m; ++j)
            s[j] += sh.scale * bf16_to_f32(f32_to_bf16(slope * bf16_to_f32(f32_to_bf16((float)(j0 + j)))));
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
        k.attn_values_f32(scores, nh, reinterpret_cast<const float*>(vh) + j0 * d, d, m, d, part_out);
      } else if (kt == KvType::kF16) {
        k.attn_values_f16(scores, nh, reinterpret_cast<const uint16_t*>(vh) + j0 * d, d, m, d, part_out);
      } else {
        kv_load_rows(kt, vh + (size_t)j0 * rb, m, d, vdec);
        k.attn_values_f32(scores, nh, vdec, d, m, d, part_out);
      }
      k.add(acc, part_out, nh * d);
    }
    float* out = aq.out + h0 * d;
    for (int64_t h = 0; h < nh; ++h) {
      const float inv = sum[h] > 0 ? 1.0f / sum[h] : 0.0f;
      for (int64_t i = 0; i < d; ++i) out[h * d + i] = acc[h * d + i] * inv;
    }
    scratch.release(slot);
  };
  if (macs < kParallelMacs) {
    for (int64_t i = 0; i < tasks; ++i) body((size_t)i);
  } else {
    pool.parallel_for((size_t)tasks, body);
  }
}

}  // namespace cria::kernels
