// Every op of every kernel table this machine runs, against the scalar
// reference table, in the spirit of llama.cpp's test-backend-ops and
// XNNPACK's operator testers: sizes from 0/1 through twice the vector width
// plus odd and large ones, misaligned pointers, outputs pre-filled with NaN
// so an unwritten element fails, and tolerances derived from the arithmetic
// (stated next to each check).
#include <doctest/doctest.h>

#include <cfloat>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#if defined(__aarch64__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

#include "quant/fp16.h"
#include "tests/random.h"
#include "runtime/kernels/kernels.h"

using namespace cria;
using namespace cria::kernels;

namespace {

using test::randn;

// A weight matrix in `type`, placed `misalign` bytes past a 64-byte boundary.
struct TestMatrix {
  std::vector<uint8_t> storage;
  Matrix m;
  std::vector<float> dense;  // dequantized, row-major
};

TestMatrix make_matrix(QType t, int64_t rows, int64_t cols, uint32_t group, uint32_t seed, size_t misalign) {
  TestMatrix tm;
  REQUIRE(qlayout(t, (uint64_t)rows, (uint64_t)cols, group, &tm.m.l));
  tm.storage.assign(tm.m.l.total + 128, 0);
  uint8_t* base = tm.storage.data();
  base += (64 - reinterpret_cast<uintptr_t>(base) % 64) % 64 + misalign;
  std::vector<float> x = randn((size_t)(rows * cols), seed);
  quantize_rows(t, x.data(), (uint64_t)rows, tm.m.l, qplanes_at(base, tm.m.l, 0), QuantOptions());
  tm.m.type = t;
  tm.m.data = base;
  tm.dense.resize((size_t)(rows * cols));
  for (int64_t r = 0; r < rows; ++r) dequantize_row(t, base, tm.m.l, (uint64_t)r, tm.dense.data() + r * cols);
  return tm;
}

std::vector<const KernelTable*> fast_tables() {
  std::vector<const KernelTable*> out;
  for (const KernelTable* t : available_tables())
    if (t->isa != Isa::kScalar) out.push_back(t);
  return out;
}

}  // namespace

// The tables this CPU should get, worked out here from the compiler's own
// CPU probe (x86) or the kernel's HWCAP bits (ARM64; qemu-user answers for
// QEMU_CPU), independently of runtime/kernels/cpu_features.cc. Each table
// needs every feature its file is compiled for (runtime/kernels/CMakeLists.txt).
std::vector<std::string> expected_tables() {
  std::vector<std::string> want{"scalar"};
#if defined(__x86_64__)
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  if (avx2) want.push_back("avx2");
  if (avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vnni"))
    want.push_back("avx512vnni");
#elif defined(__aarch64__)
  want.push_back("neon");
  const unsigned long hw = getauxval(AT_HWCAP);
  const bool dot = (hw & HWCAP_ASIMDDP) && (hw & HWCAP_ASIMDHP) && (hw & HWCAP_FPHP);
  if (dot) want.push_back("neon-dotprod");
  if (dot && (getauxval(AT_HWCAP2) & HWCAP2_I8MM)) want.push_back("neon-i8mm");
#elif defined(__wasm_simd128__)
  want.push_back("wasm-simd128");
#endif
  return want;
}

TEST_CASE("every table this CPU supports is present, best last") {
  std::vector<std::string> got;
  for (const KernelTable* t : available_tables()) got.emplace_back(isa_name(t->isa));
  std::string names;
  for (const std::string& n : got) names += n + " ";
  MESSAGE("kernel tables: " << names << "(best: " << std::string(isa_name(best_table().isa)) << ")");
  CHECK(got == expected_tables());
  CHECK(&best_table() == available_tables().back());
}

TEST_CASE("quantize_acts matches the reference exactly") {
  const KernelTable& ref = scalar_table();
  for (const KernelTable* t : fast_tables()) {
    for (int64_t cols : {32, 64, 96, 512, 4096 + 32}) {
      for (int64_t n : {1, 3}) {
        std::vector<float> x = randn((size_t)(n * cols + 1), (uint32_t)cols, 3.0f);
        x[5] = 0.0f;
        // One all-zero block (scale 0: the kernels must not divide by it).
        const int64_t zb = cols / 64;  // block index within row 0
        std::fill(x.begin() + 1 + 32 * zb, x.begin() + 1 + 32 * (zb + 1), 0.0f);
        const float* xp = x.data() + 1;  // misaligned by 4 bytes
        std::vector<int8_t> q1(n * cols), q2(n * cols);
        std::vector<float> d1(n * cols / 32), d2(n * cols / 32, NAN), s1(d1.size()), s2(d1.size(), NAN);
        ref.quantize_acts(xp, n, cols, q1.data(), d1.data(), s1.data());
        t->quantize_acts(xp, n, cols, q2.data(), d2.data(), s2.data());
        CAPTURE(isa_name(t->isa));
        CAPTURE(cols);
        REQUIRE(d1[zb] == 0.0f);  // the zero block really is one
        for (int64_t i = 0; i < 32; ++i) CHECK(q2[32 * zb + i] == 0);
        CHECK(d2[zb] == 0.0f);
        CHECK(s2[zb] == 0.0f);
        CHECK(q1 == q2);
        CHECK(std::memcmp(d1.data(), d2.data(), d1.size() * 4) == 0);
        CHECK(std::memcmp(s1.data(), s2.data(), s1.size() * 4) == 0);
      }
    }
  }
}

TEST_CASE("int8-weight matmuls match the reference") {
  // Tolerance: each 32-column block's integer dot product is exact; the
  // fast kernels then add one f32 term per block (scale products rounded
  // to f32) where the reference adds in double. Each addition errs by at
  // most FLT_EPSILON/2 of the running sum, so the total error is bounded by
  // blocks x FLT_EPSILON x sum |w * a| (x 2 for the scale products).
  const KernelTable& ref = scalar_table();
  struct Shape {
    int64_t rows, cols, n;
  };
  const Shape shapes[] = {{16, 32, 1},  {1, 32, 1},   {15, 64, 2},   {17, 128, 3},  {33, 96, 5},
                          {48, 256, 8}, {64, 512, 9}, {31, 1024, 17}, {16, 4096, 1}, {80, 160, 33}};
  for (const KernelTable* t : fast_tables()) {
    for (QType qt : {QType::kQ4, QType::kQ8, QType::kQ4M}) {
      for (uint32_t group : {32u, 128u}) {
        if (!qtype_group_ok(qt, group)) continue;
        for (const Shape& sh : shapes) {
          if (sh.cols % group) continue;
          for (size_t mis : {0, 4}) {
            TestMatrix w = make_matrix(qt, sh.rows, sh.cols, group, (uint32_t)(sh.rows * 7 + sh.cols), mis);
            std::vector<float> x = randn((size_t)(sh.n * sh.cols), 99, 2.0f);
            std::vector<int8_t> q(sh.n * sh.cols);
            std::vector<float> d(sh.n * sh.cols / 32), s(d.size());
            ref.quantize_acts(x.data(), sh.n, sh.cols, q.data(), d.data(), s.data());
            QActs a{q.data(), d.data(), s.data(), sh.cols};
            const int64_t tiles = (int64_t)w.m.l.tiles, ldy = sh.rows + 3;
            // Every tile range split: [0, k) and [k, tiles).
            for (int64_t split : {int64_t(0), tiles / 2}) {
              std::vector<float> y1(sh.n * ldy, NAN), y2(sh.n * ldy, NAN);
              auto fn_ref = qt == QType::kQ4 ? ref.matmul_q4 : qt == QType::kQ8 ? ref.matmul_q8 : ref.matmul_q4m;
              auto fn = qt == QType::kQ4 ? t->matmul_q4 : qt == QType::kQ8 ? t->matmul_q8 : t->matmul_q4m;
              fn_ref(w.m, a, sh.n, 0, tiles, y1.data(), ldy);
              fn(w.m, a, sh.n, 0, split, y2.data(), ldy);
              fn(w.m, a, sh.n, split, tiles, y2.data(), ldy);
              CAPTURE(isa_name(t->isa));
              CAPTURE(qtype_name(qt));
              CAPTURE(group);
              CAPTURE(sh.rows);
              CAPTURE(sh.cols);
              CAPTURE(sh.n);
              CAPTURE(mis);
              for (int64_t tk = 0; tk < sh.n; ++tk) {
                for (int64_t r = 0; r < ldy; ++r) {
                  const float got = y2[tk * ldy + r], want = y1[tk * ldy + r];
                  if (r >= sh.rows) {
                    REQUIRE(std::isnan(got));  // padding rows of the last tile are not written
                    continue;
                  }
                  double mag = 0;
                  for (int64_t k = 0; k < sh.cols; ++k)
                    mag += std::fabs((double)w.dense[r * sh.cols + k] * q[tk * sh.cols + k] * d[tk * (sh.cols / 32) + k / 32]);
                  const double tol = 2.0 * (double)(sh.cols / 32 + 2) * FLT_EPSILON * mag + 1e-30;
                  REQUIRE(std::isfinite(got));
                  REQUIRE(std::fabs((double)got - want) <= tol);
                }
              }
            }
          }
        }
      }
    }
  }
}

TEST_CASE("float-weight matmuls match the reference") {
  // Tolerance: K products summed in f32: |error| <= K x FLT_EPSILON x sum |w x|.
  const KernelTable& ref = scalar_table();
  for (const KernelTable* t : fast_tables()) {
    // I8C (int8 with one f32 scale per row) goes through matmul_float too.
    for (QType qt : {QType::kF32, QType::kF16, QType::kBF16, QType::kI8C}) {
      for (int64_t rows : {1, 3, 16, 37}) {
        for (int64_t cols : {1, 7, 16, 33, 64, 130, 1024}) {
          for (int64_t n : {1, 2, 5, 12}) {
            TestMatrix w = make_matrix(qt, rows, cols, 0, (uint32_t)(rows + cols), 4);
            std::vector<float> x = randn((size_t)(n * (cols + 1) + 1), 5);
            const float* xp = x.data() + 1;
            const int64_t ldx = cols + 1, ldy = rows + 2;
            std::vector<float> y1(n * ldy, NAN), y2(n * ldy, NAN);
            ref.matmul_float(w.m, xp, n, ldx, 0, rows, y1.data(), ldy);
            t->matmul_float(w.m, xp, n, ldx, 0, rows / 2, y2.data(), ldy);
            t->matmul_float(w.m, xp, n, ldx, rows / 2, rows, y2.data(), ldy);
            CAPTURE(isa_name(t->isa));
            CAPTURE(qtype_name(qt));
            CAPTURE(rows);
            CAPTURE(cols);
            CAPTURE(n);
            for (int64_t tk = 0; tk < n; ++tk)
              for (int64_t r = 0; r < ldy; ++r) {
                if (r >= rows) {
                  REQUIRE(std::isnan(y2[tk * ldy + r]));
                  continue;
                }
                double mag = 0;
                for (int64_t k = 0; k < cols; ++k) mag += std::fabs((double)w.dense[r * cols + k] * xp[tk * ldx + k]);
                REQUIRE(std::fabs((double)y2[tk * ldy + r] - y1[tk * ldy + r]) <= (cols + 2) * FLT_EPSILON * mag + 1e-30);
              }
          }
        }
      }
    }
  }
}

TEST_CASE("attention kernels match the reference") {
  // Tolerance as for matmuls: d (scores) or n_pos (values) products in f32.
  const KernelTable& ref = scalar_table();
  for (const KernelTable* t : fast_tables()) {
    for (int64_t d : {64, 128, 80, 272}) {
      for (int64_t r : {1, 3, 8, 13, 64}) {
        for (int64_t n_pos : {1, 5, 16, 64, 67}) {
          std::vector<float> q = randn((size_t)(r * d + 1), 1);
          std::vector<float> kf = randn((size_t)(n_pos * d), 2), vf = randn((size_t)(n_pos * d), 3);
          std::vector<uint16_t> k(kf.size()), v(vf.size());
          for (size_t i = 0; i < kf.size(); ++i) {
            k[i] = f32_to_fp16(kf[i]);
            v[i] = f32_to_fp16(vf[i]);
          }
          std::vector<float> s1(r * n_pos, NAN), s2(r * n_pos, NAN);
          ref.attn_scores_f16(q.data() + 1, r, k.data(), d, n_pos, d, 0.125f, s1.data());
          t->attn_scores_f16(q.data() + 1, r, k.data(), d, n_pos, d, 0.125f, s2.data());
          CAPTURE(isa_name(t->isa));
          CAPTURE(d);
          CAPTURE(r);
          CAPTURE(n_pos);
          for (int64_t h = 0; h < r; ++h)
            for (int64_t j = 0; j < n_pos; ++j) {
              double mag = 0;
              for (int64_t i = 0; i < d; ++i) mag += std::fabs(q[1 + h * d + i] * fp16_to_f32(k[j * d + i]));
              REQUIRE(std::fabs(s1[h * n_pos + j] - s2[h * n_pos + j]) <= (d + 2) * FLT_EPSILON * mag * 0.125 + 1e-30);
            }
          std::vector<float> p = randn((size_t)(r * n_pos), 4);
          for (float& x : p) x = std::fabs(x);
          std::vector<float> o1(r * d, NAN), o2(r * d, NAN);
          ref.attn_values_f16(p.data(), r, v.data(), d, n_pos, d, o1.data());
          t->attn_values_f16(p.data(), r, v.data(), d, n_pos, d, o2.data());
          for (int64_t h = 0; h < r; ++h)
            for (int64_t i = 0; i < d; ++i) {
              double mag = 0;
              for (int64_t j = 0; j < n_pos; ++j) mag += std::fabs(p[h * n_pos + j] * fp16_to_f32(v[j * d + i]));
              REQUIRE(std::fabs(o1[h * d + i] - o2[h * d + i]) <= (n_pos + 2) * FLT_EPSILON * mag + 1e-30);
            }
          // The f32-cache variants (--kv f32 and the reference tests), same bounds.
          std::fill(s1.begin(), s1.end(), NAN);
          std::fill(s2.begin(), s2.end(), NAN);
          ref.attn_scores_f32(q.data() + 1, r, kf.data(), d, n_pos, d, 0.125f, s1.data());
          t->attn_scores_f32(q.data() + 1, r, kf.data(), d, n_pos, d, 0.125f, s2.data());
          for (int64_t h = 0; h < r; ++h)
            for (int64_t j = 0; j < n_pos; ++j) {
              double mag = 0;
              for (int64_t i = 0; i < d; ++i) mag += std::fabs(q[1 + h * d + i] * kf[j * d + i]);
              REQUIRE(std::isfinite(s2[h * n_pos + j]));
              REQUIRE(std::fabs(s1[h * n_pos + j] - s2[h * n_pos + j]) <= (d + 2) * FLT_EPSILON * mag * 0.125 + 1e-30);
            }
          std::fill(o1.begin(), o1.end(), NAN);
          std::fill(o2.begin(), o2.end(), NAN);
          ref.attn_values_f32(p.data(), r, vf.data(), d, n_pos, d, o1.data());
          t->attn_values_f32(p.data(), r, vf.data(), d, n_pos, d, o2.data());
          for (int64_t h = 0; h < r; ++h)
            for (int64_t i = 0; i < d; ++i) {
              double mag = 0;
              for (int64_t j = 0; j < n_pos; ++j) mag += std::fabs(p[h * n_pos + j] * vf[j * d + i]);
              REQUIRE(std::isfinite(o2[h * d + i]));
              REQUIRE(std::fabs(o1[h * d + i] - o2[h * d + i]) <= (n_pos + 2) * FLT_EPSILON * mag + 1e-30);
            }
        }
      }
    }
  }
}

TEST_CASE("KV-cache dequantization matches the reference exactly") {
  // Every code value, every nibble, a block scale of each sign and size;
  // the input starts one byte off alignment and the scales sit unaligned,
  // as nothing in a cache row promises more.
  const KernelTable& ref = scalar_table();
  std::mt19937 rng(7);
  for (const KernelTable* t : fast_tables()) {
    CAPTURE(t->isa);
    for (int64_t nb : {1, 3, 4}) {
      std::vector<uint8_t> codes(nb * 32 + 1), scales(nb * 4 + 1);
      for (size_t i = 0; i < codes.size(); ++i) codes[i] = (uint8_t)(i * 37 + 11 + rng());
      codes[1] = 0x80;  // -128 as q8, both nibbles extreme as q4
      codes[2] = 0x0f;
      codes[3] = 0xf0;
      const float block_scales[4] = {0.03125f, -1.5f, 3.0e-5f, 7.25f};
      for (int64_t b = 0; b < nb; ++b) std::memcpy(scales.data() + 1 + b * 4, &block_scales[b], 4);
      std::vector<float> a(nb * 32, NAN), b(nb * 32, NAN);
      ref.dequant_q8_blocks(reinterpret_cast<const int8_t*>(codes.data() + 1), scales.data() + 1, nb, a.data());
      t->dequant_q8_blocks(reinterpret_cast<const int8_t*>(codes.data() + 1), scales.data() + 1, nb, b.data());
      REQUIRE(std::memcmp(a.data(), b.data(), a.size() * 4) == 0);
      std::fill(a.begin(), a.end(), NAN);
      std::fill(b.begin(), b.end(), NAN);
      ref.dequant_q4_blocks(codes.data() + 1, scales.data() + 1, nb, a.data());
      t->dequant_q4_blocks(codes.data() + 1, scales.data() + 1, nb, b.data());
      REQUIRE(std::memcmp(a.data(), b.data(), a.size() * 4) == 0);
    }
  }
}

TEST_CASE("row ops match the reference") {
  const KernelTable& ref = scalar_table();
  for (const KernelTable* t : fast_tables()) {
    for (int64_t n : {1, 2, 15, 16, 17, 31, 32, 33, 64, 100, 4096, 4544}) {
      CAPTURE(isa_name(t->isa));
      CAPTURE(n);
      std::vector<float> x = randn((size_t)n + 1, (uint32_t)n, 2.0f), w = randn((size_t)n, 7), b = randn((size_t)n, 8);
      const float* xp = x.data() + 1;
      auto close = [&](const std::vector<float>& a, const std::vector<float>& c, double rel) {
        for (size_t i = 0; i < a.size(); ++i) {
          REQUIRE(std::isfinite(c[i]));
          REQUIRE(std::fabs(a[i] - c[i]) <= rel * (std::fabs(a[i]) + 1e-3));
        }
      };
      std::vector<float> y1(n, NAN), y2(n, NAN);
      // Norms: the sum of squares over n terms in f32, then one rsqrt and
      // a product per element: relative error ~ (n/16 + 4) x FLT_EPSILON.
      ref.rmsnorm(xp, w.data(), 1e-5f, n, y1.data());
      t->rmsnorm(xp, w.data(), 1e-5f, n, y2.data());
      close(y1, y2, (n / 16.0 + 8) * FLT_EPSILON);
      ref.layernorm(xp, w.data(), b.data(), 1e-5f, n, y1.data());
      t->layernorm(xp, w.data(), b.data(), 1e-5f, n, y2.data());
      // LayerNorm subtracts the mean: measure against the output's scale.
      for (int64_t i = 0; i < n; ++i) REQUIRE(std::fabs(y1[i] - y2[i]) <= (n / 16.0 + 8) * FLT_EPSILON * 8.0);
      // Elementwise exp-based ops: the vector exp is accurate to a few ulp.
      ref.swiglu(xp, w.data(), n, y1.data());
      t->swiglu(xp, w.data(), n, y2.data());
      close(y1, y2, 16 * FLT_EPSILON);
      std::vector<float> g1(xp, xp + n), g2(xp, xp + n);
      ref.gelu(g1.data(), n);
      t->gelu(g2.data(), n);
      for (int64_t i = 0; i < n; ++i) REQUIRE(std::fabs(g1[i] - g2[i]) <= 1e-6 * (std::fabs(g1[i]) + 1));
      std::vector<float> a1(w), a2(w);
      ref.add(a1.data(), xp, n);
      t->add(a2.data(), xp, n);
      CHECK(a1 == a2);
      // The online softmax's passes: the max is exact; each exp within a
      // few ulp, the sum within n additions' rounding. The input's max is
      // subtracted (as attention does), from a row where it need not be
      // the first value or the initial one.
      const float m1 = ref.row_max(xp, n, -INFINITY), m2 = t->row_max(xp, n, -INFINITY);
      CHECK(m1 == m2);
      CHECK(t->row_max(xp, n, 1e9f) == 1e9f);
      CHECK(t->row_max(xp, n - 1, xp[n - 1] - 1.0f) == ref.row_max(xp, n - 1, xp[n - 1] - 1.0f));
      std::vector<float> e1(xp, xp + n), e2(xp, xp + n);
      const float s1 = ref.exp_sum(e1.data(), n, m1), s2 = t->exp_sum(e2.data(), n, m1);
      close(e1, e2, 8 * FLT_EPSILON);
      double total = 0;
      for (float e : e1) total += e;
      REQUIRE(std::fabs(s1 - total) <= (n + 8) * FLT_EPSILON * total);
      REQUIRE(std::fabs(s2 - total) <= (n + 8) * FLT_EPSILON * total);
      std::vector<uint16_t> h1(n), h2(n);
      ref.f32_to_f16(xp, h1.data(), n);
      t->f32_to_f16(xp, h2.data(), n);
      CHECK(h1 == h2);  // round to nearest even on both
    }
    for (int64_t d : {64, 128}) {
      for (int64_t heads : {1, 3, 8}) {
        std::vector<float> x = randn((size_t)(heads * d), 3), c = randn((size_t)d / 2, 4), s = randn((size_t)d / 2, 5);
        std::vector<float> x1(x), x2(x);
        ref.rope(x1.data(), heads, d, c.data(), s.data());
        t->rope(x2.data(), heads, d, c.data(), s.data());
        for (size_t i = 0; i < x1.size(); ++i) REQUIRE(std::fabs(x1[i] - x2[i]) <= 4 * FLT_EPSILON * (std::fabs(x1[i]) + 1));
      }
    }
  }
}
