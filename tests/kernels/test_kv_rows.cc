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
    kv_load_rows(kt, row.data(), 1, d, y.data());
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
    kv_load_rows(kt, kq.data(), n_kv * max_pos, d, kf.data());
    kv_load_rows(kt, vq.data(), n_kv * max_pos, d, vf.data());
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
