// Every Vulkan shader against the scalar KernelTable (the CPU's definition
// of each op) on random data and edge sizes: rows that do not fill a
// workgroup or a 16-row tile, cols from one block to 4096, outputs
// pre-filled with NaN. Tolerances are derived next to each check from the
// f32 arithmetic the shader does (the reference accumulates in double).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "quant/fp16.h"
#include "runtime/kernels/kernels.h"
#include "tests/vulkan/vk_test_util.h"

using namespace cria;
using namespace vktest;

namespace {

const kernels::KernelTable& ref() { return kernels::scalar_table(); }

struct HostMatrix {
  QType type;
  QLayout l;
  std::vector<uint8_t> bytes;
  std::vector<float> dense;  // dequantized, row-major
};

HostMatrix make_matrix(QType t, uint64_t rows, uint64_t cols, uint32_t group, uint32_t seed) {
  HostMatrix m;
  m.type = t;
  REQUIRE(qlayout(t, rows, cols, group, &m.l));
  m.bytes.assign(m.l.total, 0);
  std::vector<float> x = randn(rows * cols, seed);
  QuantOptions opt;
  opt.search = false;  // the layout is what is under test, not the scale search
  quantize_rows(t, x.data(), rows, m.l, qplanes_at(m.bytes.data(), m.l, 0), opt);
  m.dense.resize(rows * cols);
  for (uint64_t r = 0; r < rows; ++r) dequantize_row(t, m.bytes.data(), m.l, r, m.dense.data() + r * cols);
  return m;
}

// The CPU's y = W x, and the activations it multiplied (dequantized codes
// for the int8 weight types, x itself for float types).
void cpu_matvec(const HostMatrix& m, const std::vector<float>& x, std::vector<float>* y, std::vector<float>* acts) {
  const int64_t rows = (int64_t)m.l.rows, cols = (int64_t)m.l.cols;
  kernels::Matrix w{m.type, m.l, m.bytes.data()};
  y->assign((size_t)rows, NAN);
  if (qtype_is_tiled(m.type)) {
    std::vector<int8_t> q((size_t)cols);
    std::vector<float> d((size_t)cols / 32), s((size_t)cols / 32);
    ref().quantize_acts(x.data(), 1, cols, q.data(), d.data(), s.data());
    const kernels::QActs a{q.data(), d.data(), s.data(), cols};
    auto fn = m.type == QType::kQ4 ? ref().matmul_q4 : m.type == QType::kQ8 ? ref().matmul_q8 : ref().matmul_q4m;
    fn(w, a, 1, 0, (int64_t)m.l.tiles, y->data(), rows);
    acts->resize((size_t)cols);
    for (int64_t k = 0; k < cols; ++k) (*acts)[(size_t)k] = (float)q[(size_t)k] * d[(size_t)k / 32];
  } else {
    ref().matmul_float(w, x.data(), 1, cols, 0, rows, y->data(), rows);
    *acts = x;
  }
}

// n == 1: vk::matvec; n > 1: vk::matmul over n different token rows, whose
// y rows are spaced rows + 2 apart (the gaps, like the 3 values before and
// after, are NaN guards that must stay untouched).
void check_matvec(Context& c, QType t, uint64_t rows, uint64_t cols, uint32_t group, uint64_t split_limit = 0,
                  uint64_t n = 1) {
  const std::string type_name = qtype_name(t);
  CAPTURE(type_name);
  CAPTURE(rows);
  CAPTURE(cols);
  CAPTURE(group);
  CAPTURE(split_limit);
  CAPTURE(n);
  const HostMatrix m = make_matrix(t, rows, cols, group, (uint32_t)(rows * 7919 + cols + group));
  const std::vector<float> x = randn(n * cols, (uint32_t)(cols + 3 + n));
  std::vector<std::vector<float>> want(n), acts(n);
  for (uint64_t j = 0; j < n; ++j)
    cpu_matvec(m, std::vector<float>(x.begin() + (int64_t)(j * cols), x.begin() + (int64_t)((j + 1) * cols)), &want[j],
               &acts[j]);

  auto dm = vk::upload_matrix(c, t, m.l, m.bytes.data(), split_limit);
  REQUIRE_MESSAGE(dm.ok(), dm.status().message());
  if (split_limit) CHECK(dm->parts.size() > 1);
  auto scratch = vk::make_act_scratch(c, cols);
  REQUIRE(scratch.ok());
  Buffer xb = upload(c, x);
  const uint64_t stride = n == 1 ? rows : rows + 2, total = 3 + (n - 1) * stride + rows + 3;
  Buffer yb = nan_buffer(c, total);
  if (n == 1) {
    run_batch(c, [&] { return vk::matvec(c, *dm, xb, 0, yb, 3, *scratch); });
  } else {
    // Refused before anything is recorded: more tokens than the shader
    // holds, overlapping y rows, x shorter than n rows.
    CHECK(!vk::matmul(c, *dm, xb, 0, vk::kMatmulBatch + 1, yb, 3, stride, *scratch).ok());
    CHECK(!vk::matmul(c, *dm, xb, 0, n, yb, 3, rows - 1, *scratch).ok());
    CHECK(!vk::matmul(c, *dm, xb, cols, n, yb, 3, stride, *scratch).ok());
    run_batch(c, [&] { return vk::matmul(c, *dm, xb, 0, n, yb, 3, stride, *scratch); });
  }
  const std::vector<float> got = download(c, yb, total);
  std::vector<bool> written(total, false);
  for (uint64_t j = 0; j < n; ++j)
    for (uint64_t r = 0; r < rows; ++r) written[3 + j * stride + r] = true;
  for (uint64_t i = 0; i < total; ++i)
    if (!written[i]) CHECK_MESSAGE(std::isnan(got[i]), "guard " << i << " was written");

  // Bound: the shader sums each thread's share in f32 (cols/64 terms for
  // float types; for int8 types cols/2048 block terms, each an exact integer
  // dot times two scales: 3 roundings), then a 6-level tree over 64 threads.
  // Recursive f32 summation of L terms errs by at most L u sum|terms|; plus
  // the reference's own rounding to f32 (u |y|).
  const bool tiled = qtype_is_tiled(t);
  const double L = (tiled ? (double)cols / 2048.0 + 3 : (double)cols / 64.0 + 1) + 6 + 2;
  int bad = 0;
  for (uint64_t j = 0; j < n; ++j)
    for (uint64_t r = 0; r < rows; ++r) {
      double mag = 0;
      for (uint64_t k = 0; k < cols; ++k) mag += std::fabs((double)m.dense[r * cols + k] * acts[j][k]);
      const double tol = L * kU * mag + kU * std::fabs(want[j][r]) + 1e-30;
      const double v = got[3 + j * stride + r];
      const double err = std::fabs(v - want[j][r]);
      if (!(err <= tol) && bad++ < 5)
        CHECK_MESSAGE(err <= tol, "token " << j << " row " << r << ": " << v << " vs " << want[j][r]);
    }
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("vulkan quantize_acts matches the CPU's codes and scales exactly") {
  Context* c = ctx();
  if (!c) return;
  for (uint64_t cols : {32u, 96u, 4096u}) {
    CAPTURE(cols);
    std::vector<float> x = randn(cols + 5, (uint32_t)cols, 3.0f);
    // Edge values inside one block: an all-zero block, exact ties of the
    // rounding (x * 127 / amax = k + 0.5), a single huge value.
    for (int i = 0; i < 32; ++i) x[5 + (size_t)i] = 0.0f;
    if (cols >= 64) {
      x[5 + 32] = 127.0f;
      for (int i = 1; i < 32; ++i) x[5 + 32 + (size_t)i] = (float)(i % 7) - 2.5f;
    }
    std::vector<int8_t> q(cols);
    std::vector<float> d(cols / 32), s(cols / 32);
    ref().quantize_acts(x.data() + 5, 1, (int64_t)cols, q.data(), d.data(), s.data());
    auto scratch = vk::make_act_scratch(*c, cols);
    REQUIRE(scratch.ok());
    Buffer xb = upload(*c, x);
    REQUIRE(c->upload(scratch->q, 0, std::vector<float>(cols, NAN).data(), cols * 4).ok());
    run_batch(*c, [&] { return vk::quantize_acts(*c, xb, 5, cols, *scratch); });
    const std::vector<float> gq = download(*c, scratch->q, cols), gd = download(*c, scratch->d, cols / 32);
    // Exact: the shader computes the IEEE quotient (an integer long
    // division) and rounds half to even like lrintf; a one-code difference
    // would change the matvec.
    int bad = 0;
    for (uint64_t k = 0; k < cols; ++k)
      if (gq[k] != (float)q[k] && bad++ < 3)
        MESSAGE("code " << k << ": " << gq[k] << " vs " << (int)q[k] << " x " << x[5 + k] << " d " << d[k / 32]);
    for (uint64_t b = 0; b < cols / 32; ++b)
      if (gd[b] != d[b] && bad++ < 6) {
        float am = 0;
        for (int i = 0; i < 32; ++i) am = std::fmax(am, std::fabs(x[5 + b * 32 + (size_t)i]));
        char buf[160];
        std::snprintf(buf, sizeof buf, "scale %d: %a vs %a amax %a", (int)b, gd[b], d[b], am);
        MESSAGE(buf);
      }
    CHECK(bad == 0);
  }
}

TEST_CASE("vulkan matvec: every weight type and layout against the scalar table") {
  Context* c = ctx();
  if (!c) return;
  struct T {
    QType t;
    uint32_t group;
  };
  const T types[] = {{QType::kF32, 0},  {QType::kF16, 0},  {QType::kBF16, 0},  {QType::kQ8, 32},
                     {QType::kQ4, 32},  {QType::kQ4, 128}, {QType::kQ4M, 32},  {QType::kQ4M, 128}};
  for (const T& ty : types) {
    for (uint64_t rows : {1u, 15u, 17u, 70u}) check_matvec(*c, ty.t, rows, 256, ty.group);
    // Batches: every token count up to the shader's 8, and a wide row.
    for (uint64_t n : {2u, 3u, 5u, 8u}) check_matvec(*c, ty.t, 17, 256, ty.group, 0, n);
    check_matvec(*c, ty.t, 33, 4096, ty.group, 0, 8);
    check_matvec(*c, ty.t, 33, 4096, ty.group);
    if (ty.group != 128) check_matvec(*c, ty.t, 5, 32, ty.group);
    if (ty.group == 0) check_matvec(*c, ty.t, 3, 37, 0);  // float types: any width
  }
}

TEST_CASE("vulkan matvec: a tensor split across buffers gives the same rows") {
  Context* c = ctx();
  if (!c) return;
  // A split limit far below the tensor forces several parts (a tensor
  // larger than maxStorageBufferRange takes the same path with the device's
  // limit): q4 parts hold whole 16-row tiles, f16 parts any rows.
  check_matvec(*c, QType::kQ4, 100, 512, 32, 3 * (16 * 256 + 16 * 2 * 16) + 200);
  check_matvec(*c, QType::kQ4M, 50, 256, 128, 2 * (8 * 256 + 2 * 2 * 2 * 16) + 200);
  check_matvec(*c, QType::kQ8, 40, 64, 32, (2 * 512 + 2 * 2 * 16) + 200);
  check_matvec(*c, QType::kF16, 41, 96, 0, 7 * 96 * 2 + 128);
  check_matvec(*c, QType::kQ4, 100, 512, 32, 3 * (16 * 256 + 16 * 2 * 16) + 200, 6);
  check_matvec(*c, QType::kF16, 41, 96, 0, 7 * 96 * 2 + 128, 4);
}

TEST_CASE("vulkan rmsnorm and layernorm") {
  Context* c = ctx();
  if (!c) return;
  for (uint64_t n : {1u, 7u, 256u, 257u, 4096u, 5000u}) {
    CAPTURE(n);
    const std::vector<float> x = randn(n, (uint32_t)n, 2.0f), w = randn(n, (uint32_t)n + 1),
                             b = randn(n, (uint32_t)n + 2);
    const float eps = 1e-5f;
    std::vector<float> want(n), want_ln(n);
    ref().rmsnorm(x.data(), w.data(), eps, (int64_t)n, want.data());
    ref().layernorm(x.data(), w.data(), b.data(), eps, (int64_t)n, want_ln.data());
    Buffer xb = upload(*c, x), wb = upload(*c, w), bb = upload(*c, b);
    Buffer yb = nan_buffer(*c, n), lb = nan_buffer(*c, n);
    run_batch(*c, [&] {
      CRIA_RETURN_IF_ERROR(vk::rmsnorm(*c, xb, wb, eps, n, yb));
      return vk::layernorm(*c, xb, wb, bb, eps, n, lb);
    });
    const std::vector<float> got = download(*c, yb, n), got_ln = download(*c, lb, n);
    // Sums: each of 256 threads adds n/256 terms, then 8 tree levels:
    // relative error L u. The mean-square's error halves through the square
    // root; sqrt, the division (2.5 ulp allowed by Vulkan) and the products
    // add about 8 u more.
    const double L = (double)n / 256.0 + 9;
    double mean = 0, meanabs = 0, var = 0;
    for (float v : x) mean += v, meanabs += std::fabs(v);
    mean /= (double)n;
    meanabs /= (double)n;
    for (float v : x) var += (v - mean) * (v - mean);
    var /= (double)n;
    const double inv = 1.0 / std::sqrt(var + eps);
    int bad = 0;
    for (uint64_t i = 0; i < n; ++i) {
      const double tol = (L / 2 + 8) * kU * std::fabs(want[i]) + 1e-30;
      bad += !(std::fabs((double)got[i] - want[i]) <= tol);
      // LayerNorm: the mean's error (L u mean|x|) shifts every centred value;
      // the variance's error is relative, as in RMSNorm; plus rounding of b.
      const double c_i = std::fabs(x[i] - mean);
      const double tol_ln = (c_i * (L / 2 + 8) * kU + 2 * L * kU * meanabs) * inv * std::fabs(w[i]) +
                            2 * kU * (std::fabs(want_ln[i]) + std::fabs(b[i])) + 1e-30;
      bad += !(std::fabs((double)got_ln[i] - want_ln[i]) <= tol_ln);
    }
    CHECK(bad == 0);
  }
}

TEST_CASE("vulkan rope: bit-identical to the CPU (no fused multiply-add)") {
  Context* c = ctx();
  if (!c) return;
  for (uint64_t d : {2u, 64u, 128u}) {
    const uint64_t heads = 5, off = 3;
    CAPTURE(d);
    std::vector<float> x = randn(heads * d + off, (uint32_t)d);
    std::vector<float> cs(d);
    for (uint64_t i = 0; i < d / 2; ++i) {
      const float a = 37.0f * std::pow(10000.0f, -2.0f * (float)i / (float)d);
      cs[i] = std::cos(a);
      cs[d / 2 + i] = std::sin(a);
    }
    std::vector<float> want = x;
    ref().rope(want.data() + off, (int64_t)heads, (int64_t)d, cs.data(), cs.data() + d / 2);
    Buffer xb = upload(*c, x), cb = upload(*c, cs);
    run_batch(*c, [&] { return vk::rope(*c, xb, off, heads, d, cb); });
    const std::vector<float> got = download(*c, xb, x.size());
    CHECK(std::memcmp(got.data(), want.data(), x.size() * 4) == 0);
  }
}

TEST_CASE("vulkan swiglu, gelu, add") {
  Context* c = ctx();
  if (!c) return;
  for (uint64_t n : {1u, 255u, 257u, 70000u}) {
    CAPTURE(n);
    const std::vector<float> g = randn(n, (uint32_t)n, 4.0f), u = randn(n, (uint32_t)n + 9);
    // SwiGLU reads gate and up from one buffer [gate | up], as the model's
    // fused projection leaves them.
    std::vector<float> gu = g;
    gu.insert(gu.end(), u.begin(), u.end());
    std::vector<float> want_sw(n), want_ge = g, want_add = u;
    ref().swiglu(g.data(), u.data(), (int64_t)n, want_sw.data());
    ref().gelu(want_ge.data(), (int64_t)n);
    ref().add(want_add.data(), g.data(), (int64_t)n);
    Buffer gb = upload(*c, g), gub = upload(*c, gu), ob = nan_buffer(*c, n), eb = upload(*c, g), ab = upload(*c, u);
    run_batch(*c, [&] {
      CRIA_RETURN_IF_ERROR(vk::swiglu(*c, gub, 0, gub, n, n, ob));
      CRIA_RETURN_IF_ERROR(vk::gelu(*c, eb, n));
      return vk::add(*c, ab, gb, n);
    });
    const std::vector<float> sw = download(*c, ob, n), ge = download(*c, eb, n), ad = download(*c, ab, n);
    int bad = 0;
    for (uint64_t i = 0; i < n; ++i) {
      // exp may err by 3 + 2|x| ulp (Vulkan's bound), the division by 2.5
      // ulp, the sum and product by 1 each; the reference by as much again.
      const double tol_sw = 2 * (3 + 2 * std::fabs(g[i]) + 5) * kU * std::fabs(want_sw[i]) + 1e-37;
      bad += !(std::fabs((double)sw[i] - want_sw[i]) <= tol_sw);
      // erf: Abramowitz-Stegun 7.1.26 errs by <= 1.5e-7 absolute, its f32
      // evaluation by ~16 u more; it is scaled by 0.5 |x|; std::erf is exact
      // to an ulp.
      const double tol_ge = 0.5 * std::fabs(g[i]) * (1.5e-7 + 16 * kU) + 4 * kU * std::fabs(want_ge[i]) + 1e-37;
      bad += !(std::fabs((double)ge[i] - want_ge[i]) <= tol_ge);
      bad += ad[i] != want_add[i];  // one correctly rounded addition on both sides
    }
    CHECK(bad == 0);
  }
}

TEST_CASE("vulkan matvec: an f16 tensor over the device's maxStorageBufferRange") {
  Context* c = ctx();
  if (!c) return;
  const uint64_t limit = c->info().max_storage_buffer_range;
  if (limit > (256ull << 20)) {
    MESSAGE("skipped: maxStorageBufferRange is " << limit << " bytes; the split path is covered above");
    return;
  }
  // Just over the limit with the device's own limit (lavapipe: 128 MiB, the
  // size of an 8B model's f16 output head is ~1 GiB): at least two parts.
  const uint64_t cols = 1024, rows = limit / (cols * 2) + 100;
  QLayout l;
  REQUIRE(qlayout(QType::kF16, rows, cols, 0, &l));
  std::vector<uint8_t> bytes(l.total);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<uint16_t> row(cols);
  for (uint64_t r = 0; r < rows; ++r) {
    for (auto& h : row) h = f32_to_fp16(u(rng));
    std::memcpy(bytes.data() + r * cols * 2, row.data(), cols * 2);
  }
  const std::vector<float> x = randn(cols, 9);
  std::vector<float> want(rows);
  const kernels::Matrix w{QType::kF16, l, bytes.data()};
  ref().matmul_float(w, x.data(), 1, (int64_t)cols, 0, (int64_t)rows, want.data(), (int64_t)rows);

  auto dm = vk::upload_matrix(*c, QType::kF16, l, bytes.data());
  REQUIRE_MESSAGE(dm.ok(), dm.status().message());
  CHECK(dm->parts.size() == 2);
  auto scratch = vk::make_act_scratch(*c, cols);
  REQUIRE(scratch.ok());
  Buffer xb = upload(*c, x), yb = nan_buffer(*c, rows);
  run_batch(*c, [&] { return vk::matvec(*c, *dm, xb, 0, yb, 0, *scratch); });
  const std::vector<float> got = download(*c, yb, rows);
  // As check_matvec: (cols/64 + 9) u sum|w x| + u |y|.
  const double L = (double)cols / 64.0 + 9;
  int bad = 0;
  for (uint64_t r = 0; r < rows; ++r) {
    double mag = 0;
    for (uint64_t k = 0; k < cols; ++k) {
      uint16_t h;
      std::memcpy(&h, bytes.data() + (r * cols + k) * 2, 2);
      mag += std::fabs((double)fp16_to_f32(h) * x[k]);
    }
    bad += !(std::fabs((double)got[r] - want[r]) <= L * kU * mag + kU * std::fabs(want[r]) + 1e-30);
  }
  CHECK(bad == 0);
}
