// The slices of a tensor-parallel shard (runtime/model/shard.h): every
// storage type's row and column slices hold exactly the original's values
// (same bits, no requantization), and the split checks name the numbers.
#include <doctest/doctest.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "quant/quant.h"
#include "runtime/model/shard.h"
#include "tests/random.h"

namespace cria {
namespace {

struct Quantized {
  std::vector<uint8_t> bytes;
  kernels::Matrix m;
};

Quantized make(QType t, uint64_t rows, uint64_t cols, uint32_t group) {
  Quantized q;
  REQUIRE(qlayout(t, rows, cols, group, &q.m.l));
  q.m.type = t;
  q.bytes.assign(q.m.l.total + kPlaneAlign, 0);
  uint8_t* p = q.bytes.data();
  p += (kPlaneAlign - (uintptr_t)p % kPlaneAlign) % kPlaneAlign;
  const std::vector<float> x = test::randn(rows * cols, 7);
  quantize_rows(t, x.data(), rows, q.m.l, qplanes_at(p, q.m.l, 0), QuantOptions{});
  q.m.data = p;
  return q;
}

std::vector<float> row(const kernels::Matrix& m, uint64_t r) {
  std::vector<float> v(m.l.cols);
  dequantize_row(m.type, m.data, m.l, r, v.data());
  return v;
}

TEST_CASE("row and column slices keep every value of every storage type") {
  struct Case {
    QType t;
    uint32_t group;
  };
  for (Case c : {Case{QType::kF32, 0}, Case{QType::kF16, 0}, Case{QType::kBF16, 0}, Case{QType::kQ8, 32},
                 Case{QType::kQ4, 32}, Case{QType::kQ4, 128}, Case{QType::kQ4M, 32}, Case{QType::kI8C, 0}}) {
    CAPTURE(qtype_name(c.t));
    CAPTURE(c.group);
    const uint64_t rows = 72, cols = 512;
    Quantized q = make(c.t, rows, cols, c.group);
    ShardBytes owned;
    // Whole tiles (the fast path of the tiled types) and rows inside tiles.
    for (const std::vector<std::pair<uint64_t, uint64_t>>& ranges :
         {std::vector<std::pair<uint64_t, uint64_t>>{{16, 32}, {48, 64}},
          std::vector<std::pair<uint64_t, uint64_t>>{{5, 9}, {40, 72}, {0, 3}}}) {
      auto s = slice_rows(q.m, ranges, &owned);
      REQUIRE(s.ok());
      uint64_t out = 0;
      for (auto [b, e] : ranges)
        for (uint64_t r = b; r < e; ++r, ++out) CHECK(row(*s, out) == row(q.m, r));
      CHECK(s->l.rows == out);
    }
    for (auto [c0, c1] : {std::pair<uint64_t, uint64_t>{0, 256}, {256, 512}, {128, 384}}) {
      auto s = slice_cols(q.m, c0, c1, &owned);
      REQUIRE(s.ok());
      CHECK(s->l.cols == c1 - c0);
      for (uint64_t r = 0; r < rows; ++r) {
        const std::vector<float> whole = row(q.m, r);
        CHECK(row(*s, r) == std::vector<float>(whole.begin() + (long)c0, whole.begin() + (long)c1));
      }
    }
    CHECK(owned.bytes > 0);
  }
}

}  // namespace
}  // namespace cria
