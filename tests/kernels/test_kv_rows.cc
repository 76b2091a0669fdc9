// KV cache row formats (runtime/kernels/kv_rows.h) and attention over them.
//   - Quantized rows: each value comes back within half a quantization step
//     of its block (amax / 127 / 2 for q8, amax / 7 / 2 for q4), zeros stay
//     zero, and the row sizes are what the memory estimates assume.
//   - Attention over a q8 / q4 cache equals, bit for bit, attention over an
//     f32 cache holding the decoded values: the quantized path only decodes
//     (so strides, offsets and chunking are what is tested), whatever the
//     ISA.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "quant/fp16.h"
#include "runtime/kernels/ops.h"
#include "tests/random.h"

using namespace cria;
using namespace cria::kernels;

TEST_CASE("kv rows: sizes, names, and quantized round trips within half a step") {
  CHECK(kv_row_bytes(KvType::kF16, 128) == 256);
  CHECK(kv_row_bytes(KvType::kQ8, 128) == 144);
  CHECK(kv_row_bytes(KvType::kQ4, 128) == 80);
  KvType t;
  CHECK(parse_kv_type("q4", &t));
  CHECK(t == KvType::kQ4);
  CHECK(!parse_kv_type("q5", &t));
  const int64_t d = 96;
  for (KvType kt : {KvType::kQ8, KvType::kQ4}) {
    CAPTURE(kv_type_name(kt));
    std::vector<float> x = test::randn(d, 3, 2.0f);
    for (int i = 32; i < 64; ++i) x[i] = 0.0f;  // an all-zero block
    std::vector<uint8_t> row(kv_row_bytes(kt, d));
    kv_store_row(best_table(), kt, x.data(), d, row.data());
    std::vector<float> y(d, NAN);
    kv_load_rows(best_table(), kt, row.data(), 1, d, y.data());
    const float qmax = kt == KvType::kQ8 ? 127.0f : 7.0f;
    for (int64_t b = 0; b < d / 32; ++b) {
      float amax = 0;
      for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[b * 32 + i]));
      for (int i = 0; i < 32; ++i) {
        const float err = std::fabs(y[b * 32 + i] - x[b * 32 + i]);
        // Half a step, plus the f32 rounding of scale * code.
        CHECK(err <= amax / qmax * 0.5f * (1 + 1e-5f) + 1e-7f);
      }
    }
    for (int i = 32; i < 64; ++i) CHECK(y[i] == 0.0f);
  }
}

TEST_CASE("attention over q8 and q4 caches equals attention over the decoded values") {
  const int64_t n_heads = 8, n_kv = 2, d = 64, max_pos = 150, n_pos = 137;  // 3 chunks, the last partial
  const std::vector<float> q = test::randn(n_heads * d, 5, 1.0f);
  const std::vector<float> kv_src = test::randn(2 * n_kv * max_pos * d, 6, 1.0f);
  ThreadPool pool(2);
  for (KvType kt : {KvType::kQ8, KvType::kQ4}) {
    CAPTURE(kv_type_name(kt));
    const size_t rb = kv_row_bytes(kt, d);
    std::vector<uint8_t> kq(n_kv * max_pos * rb), vq(n_kv * max_pos * rb);
    std::vector<float> kf(n_kv * max_pos * d), vf(n_kv * max_pos * d);
    for (int64_t r = 0; r < n_kv * max_pos; ++r) {
      kv_store_row(best_table(), kt, kv_src.data() + r * d, d, kq.data() + r * rb);
      kv_store_row(best_table(), kt, kv_src.data() + (n_kv * max_pos + r) * d, d, vq.data() + r * rb);
    }
    kv_load_rows(best_table(), kt, kq.data(), n_kv * max_pos, d, kf.data());
    kv_load_rows(best_table(), kt, vq.data(), n_kv * max_pos, d, vf.data());
    for (const KernelTable* table : available_tables()) {
      CAPTURE(isa_name(table->isa));
      AttnScratch scratch;
      scratch.reserve(2, n_heads / n_kv, d);
      std::vector<float> want(n_heads * d, NAN), got(n_heads * d, NAN);
      AttnShape sh{n_heads, n_kv, d, max_pos, 0.125f, nullptr, KvType::kF32};
      AttnQuery a{q.data(), want.data(), kf.data(), vf.data(), n_pos};
      attention(*table, pool, sh, &a, 1, scratch);
      sh.kv_type = kt;
      AttnQuery b{q.data(), got.data(), kq.data(), vq.data(), n_pos};
      attention(*table, pool, sh, &b, 1, scratch);
      int same = 0;
      for (int64_t i = 0; i < n_heads * d; ++i) same += std::memcmp(&want[i], &got[i], 4) == 0 && !std::isnan(got[i]);
      CHECK(same == n_heads * d);
    }
  }
}

// Softmax attention of one head in double precision: the reference the
// split and unsplit paths are held to.
static void attend_ref(const float* q, const float* k, const float* v, int64_t n_pos, int64_t d, double scale,
                       double slope, float* out) {
  std::vector<double> s(n_pos);
  double mx = -INFINITY;
  for (int64_t j = 0; j < n_pos; ++j) {
    double dot = 0;
    for (int64_t i = 0; i < d; ++i) dot += (double)q[i] * k[j * d + i];
    // ALiBi's bias as transformers' build_alibi_tensor rounds it: bf16(slope * bf16(j)).
    const double bias = bf16_to_f32(f32_to_bf16((float)slope * bf16_to_f32(f32_to_bf16((float)j))));
    s[j] = scale * (dot + bias);
    mx = std::max(mx, s[j]);
  }
  double total = 0;
  for (double& x : s) total += x = std::exp(x - mx);
  for (int64_t i = 0; i < d; ++i) {
    double o = 0;
    for (int64_t j = 0; j < n_pos; ++j) o += s[j] * v[j * d + i];
    out[i] = (float)(o / total);
  }
}

TEST_CASE("attention split across KV blocks (decode on more threads than KV heads) matches the softmax") {
  // One KV head, two query heads: with 8 threads the planner has 2 (query,
  // head) tasks and wants 16, so it splits each query's rows into blocks.
  // Lengths cover a block ending past the rows (an empty last block), a
  // short query beside a long one in the same batch, and ALiBi's positions.
  const int64_t n_heads = 2, n_kv = 1, d = 128, max_pos = 2200;  // 1M multiply-adds: enough to thread
  const std::vector<float> k = test::randn(max_pos * d, 11, 1.0f), v = test::randn(max_pos * d, 12, 1.0f);
  const std::vector<float> q = test::randn(2 * n_heads * d, 13, 0.5f);
  const float slopes[2] = {0.5f, 0.25f};
  ThreadPool pool8(8), pool1(1);
  for (bool alibi : {false, true}) {
    CAPTURE(alibi);
    AttnShape sh{n_heads, n_kv, d, max_pos, 0.125f, alibi ? slopes : nullptr, KvType::kF32};
    std::vector<float> split(2 * n_heads * d, NAN), whole(2 * n_heads * d, NAN);
    AttnQuery qs[2] = {{q.data(), split.data(), k.data(), v.data(), 2100}, {q.data() + n_heads * d, split.data() + n_heads * d, k.data(), v.data(), 300}};
    const AttnPlan plan = plan_attention(8, sh, qs, 2);
    // Both queries read the same cache: one tile of 2 x 1 head x 2 parts =
    // 2 tasks, 16 wanted, so 8 blocks (2100 / 256 allows 8); the short query
    // sees nothing in most of them.
    CHECK(plan.tile == 2);
    CHECK(plan.blocks == 8);
    CHECK(plan_attention(1, sh, qs, 2).blocks == 1);
    const AttnPlan one = plan_attention(8, sh, qs, 1);
    CHECK(one.blocks == 8);  // 2 tasks: 8 blocks of 320 rows for 2100, the last empty
    for (int64_t nq : {int64_t(1), int64_t(2)}) {
      CAPTURE(nq);
      AttnScratch s8, s1;
      s8.reserve(8, n_heads / n_kv, d);
      s1.reserve(1, n_heads / n_kv, d);
      std::fill(split.begin(), split.end(), NAN);
      attention(best_table(), pool8, sh, qs, nq, s8);
      AttnQuery ws[2] = {qs[0], qs[1]};
      ws[0].out = whole.data();
      ws[1].out = whole.data() + n_heads * d;
      attention(best_table(), pool1, sh, ws, nq, s1);
      for (int64_t i = 0; i < nq; ++i) {
        for (int64_t h = 0; h < n_heads; ++h) {
          std::vector<float> want(d);
          attend_ref(qs[i].q + h * d, k.data(), v.data(), qs[i].n_pos, d, 0.125, alibi ? slopes[h] : 0.0,
                     want.data());
          for (int64_t x = 0; x < d; ++x) {
            const float got = split[(i * n_heads + h) * d + x], ref = whole[(i * n_heads + h) * d + x];
            CHECK(std::fabs(got - ref) <= 1e-5f + 1e-4f * std::fabs(ref));
            CHECK(std::fabs(got - want[x]) <= 1e-4f);
          }
        }
      }
    }
  }
}

TEST_CASE("a prompt's queries attend in tiles: each gets the attention it gets alone") {
  // Two sequences in one batch, as a prefill chunk and a short prompt beside
  // it: 40 queries of sequence A at positions 100..139 and 3 of B at 0..2.
  // Tiles of A's queries read each cache row once for all of them; each
  // query must still stop at its own position (a tile runs to its longest).
  const int64_t n_heads = 8, n_kv = 2, d = 64, max_pos = 160;
  const std::vector<float> q = test::randn(43 * n_heads * d, 21, 0.7f);
  const std::vector<float> src = test::randn(4 * n_kv * max_pos * d, 22, 1.0f);
  const float slopes[8] = {0.5f, 0.25f, 0.125f, 0.0625f, 0.03125f, 0.015625f, 0.0078125f, 0.00390625f};
  ThreadPool pool1(1), pool2(2);
  for (KvType kt : {KvType::kF32, KvType::kF16, KvType::kQ8}) {
    const size_t rb = kv_row_bytes(kt, d);
    // Caches of A and B, and the f32 values they hold (for the reference).
    std::vector<uint8_t> rows[4];
    std::vector<float> vals[4];
    for (int c = 0; c < 4; ++c) {
      rows[c].resize(n_kv * max_pos * rb);
      vals[c].resize(n_kv * max_pos * d);
      for (int64_t r = 0; r < n_kv * max_pos; ++r) {
        const float* x = src.data() + (c * n_kv * max_pos + r) * d;
        if (kt == KvType::kF32) std::memcpy(rows[c].data() + r * rb, x, rb);
        else kv_store_row(best_table(), kt, x, d, rows[c].data() + r * rb);
      }
      if (kt == KvType::kF32) std::memcpy(vals[c].data(), rows[c].data(), vals[c].size() * 4);
      else if (kt == KvType::kF16) {
        const uint16_t* h = reinterpret_cast<const uint16_t*>(rows[c].data());
        for (size_t i = 0; i < vals[c].size(); ++i) vals[c][i] = fp16_to_f32(h[i]);
      } else {
        kv_load_rows(best_table(), kt, rows[c].data(), n_kv * max_pos, d, vals[c].data());
      }
    }
    for (bool alibi : {false, true}) {
      CAPTURE(kv_type_name(kt));
      CAPTURE(alibi);
      const AttnShape sh{n_heads, n_kv, d, max_pos, 0.125f, alibi ? slopes : nullptr, kt};
      std::vector<float> tiled(43 * n_heads * d, NAN), alone(43 * n_heads * d, NAN);
      std::vector<AttnQuery> qs(43);
      for (int64_t t = 0; t < 43; ++t) {
        const bool a = t < 40;
        qs[t] = {q.data() + t * n_heads * d, tiled.data() + t * n_heads * d, rows[a ? 0 : 2].data(),
                 rows[a ? 1 : 3].data(), a ? 101 + t : t - 39};
      }
      const AttnPlan plan = plan_attention(2, sh, qs.data(), 43);
      CHECK(plan.tile == 16);  // 43 queries in 2 runs; 64 rows / 4 heads per KV head
      CHECK(plan.blocks == 1);
      for (ThreadPool* pool : {&pool1, &pool2}) {
        AttnScratch scratch;
        scratch.reserve(pool->threads(), n_heads / n_kv, d);
        std::fill(tiled.begin(), tiled.end(), NAN);
        attention(best_table(), *pool, sh, qs.data(), 43, scratch);
        for (int64_t t = 0; t < 43; ++t) {
          AttnQuery one = qs[t];
          one.out = alone.data() + t * n_heads * d;
          CHECK(plan_attention(1, sh, &one, 1).tile == 1);
          attention(best_table(), pool1, sh, &one, 1, scratch);
        }
        int close = 0, ref_close = 0;
        for (int64_t t = 0; t < 43; ++t) {
          const bool a = t < 40;
          for (int64_t h = 0; h < n_heads; ++h) {
            const int64_t g = h / (n_heads / n_kv);
            std::vector<float> want(d);
            attend_ref(qs[t].q + h * d, vals[a ? 0 : 2].data() + g * max_pos * d,
                       vals[a ? 1 : 3].data() + g * max_pos * d, qs[t].n_pos, d, 0.125, alibi ? slopes[h] : 0.0,
                       want.data());
            for (int64_t x = 0; x < d; ++x) {
              const float got = tiled[(t * n_heads + h) * d + x], ref = alone[(t * n_heads + h) * d + x];
              close += std::fabs(got - ref) <= 1e-6f + 1e-5f * std::fabs(ref);
              ref_close += std::fabs(got - want[x]) <= 1e-4f;
            }
          }
        }
        CHECK(close == 43 * n_heads * d);
        CHECK(ref_close == 43 * n_heads * d);
      }
    }
  }
}
