// Matrix-multiply throughput of each backend on the shapes that dominate a
// Llama 3 8B layer, for decode (1 token) and prefill (128 / 512 tokens):
// cria's kernels (best table for this CPU) per weight type, and XNNPACK's
// fully-connected operators where it has one (f32; f16 when the CPU has
// the kernels). The table decides which op runs on which backend
// (docs/PERFORMANCE.md).
//   matmul_bench [--threads T] [--rows R] [--cols K] [--reps N]
#include <xnnpack.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "quant/fp16.h"
#include "runtime/kernels/ops.h"

using namespace cria;
using Clock = std::chrono::steady_clock;

namespace {

double seconds(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Weights {
  std::vector<uint8_t> bytes;
  kernels::Matrix m;
};

Weights make(QType t, int64_t rows, int64_t cols, const std::vector<float>& x) {
  Weights w;
  qlayout(t, rows, cols, t == QType::kQ4 || t == QType::kQ8 ? 32 : 0, &w.m.l);
  w.bytes.resize(w.m.l.total + 64);
  uint8_t* base = w.bytes.data() + (64 - reinterpret_cast<uintptr_t>(w.bytes.data()) % 64) % 64;
  QuantOptions o;
  o.search = false;
  quantize_rows(t, x.data(), rows, w.m.l, qplanes_at(base, w.m.l, 0), o);
  w.m.type = t;
  w.m.data = base;
  return w;
}

// The int8 multiply-add peak of one core for the instruction the table's
// int8 matmuls are built on, from a loop of independent chains (no loads):
// AVX-512 VNNI vpdpbusd (64 u8 x s8 products into 16 int32 per zmm) or
// AVX2 vpmaddubsw + vpaddw (32 products into 16 int16 pairs per ymm, the
// AVX2 table's inner step). Multiply-adds per second, or 0 where the table
// has no such loop here.
#if defined(__x86_64__)
// The loops are written in assembly: from intrinsics GCC 12 copies every
// accumulator once per step (the instructions overwrite their first
// operand), which halves the figure.
double vnni_macs(int64_t iters) {
  const double steps = (double)iters;
  const auto t0 = Clock::now();
  asm volatile(
      "vpxord %%zmm0, %%zmm0, %%zmm0\n\t"
      "vpternlogd $0xff, %%zmm1, %%zmm1, %%zmm1\n\t"
      "vpxord %%zmm4, %%zmm4, %%zmm4\n\t"
      "vpxord %%zmm5, %%zmm5, %%zmm5\n\t"
      "vpxord %%zmm6, %%zmm6, %%zmm6\n\t"
      "vpxord %%zmm7, %%zmm7, %%zmm7\n\t"
      "vpxord %%zmm8, %%zmm8, %%zmm8\n\t"
      "vpxord %%zmm9, %%zmm9, %%zmm9\n\t"
      "vpxord %%zmm10, %%zmm10, %%zmm10\n\t"
      "vpxord %%zmm11, %%zmm11, %%zmm11\n\t"
      "vpxord %%zmm12, %%zmm12, %%zmm12\n\t"
      "vpxord %%zmm13, %%zmm13, %%zmm13\n\t"
      "vpxord %%zmm14, %%zmm14, %%zmm14\n\t"
      "vpxord %%zmm15, %%zmm15, %%zmm15\n\t"
      "1:\n\t"
      "vpdpbusd %%zmm1, %%zmm0, %%zmm4\n\t"
      "vpdpbusd %%zmm1, %%zmm0, %%zmm5\n\t"
      "vpdpbusd %%zmm1, %%zmm0, %%zmm6\n\t"
      "vpdpbusd %%zmm1, %%zmm0, %%zmm7\n\t"
      "vpdpbusd %%zmm1, %%zmm0, %%zmm8\n\t"
      "vpdpbusd %%zmm1, %%zmm0, %%zmm9\n\t"
      "vpdpbusd %%zmm1, %%zmm0, %%zmm10\n\t"
      "vpdpbusd %%zmm1, %%zmm0, %%zmm11\n\t"
      "vpdpbusd %%zmm1, %%zmm0, %%zmm12\n\t"
      "vpdpbusd %%zmm1, %%zmm0, %%zmm13\n\t"
      "vpdpbusd %%zmm1, %%zmm0, %%zmm14\n\t"
      "vpdpbusd %%zmm1, %%zmm0, %%zmm15\n\t"
      "dec %0\n\t"
      "jnz 1b\n\t"
      "vzeroupper\n\t"
      : "+r"(iters)
      :
      : "xmm0", "xmm1", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14",
        "xmm15", "cc");
  return 12.0 * 64.0 * steps / seconds(t0);
}

double avx2_macs(int64_t iters) {
  const double steps = (double)iters;
  const auto t0 = Clock::now();
  asm volatile(
      "vpxor %%ymm0, %%ymm0, %%ymm0\n\t"
      "vpcmpeqb %%ymm1, %%ymm1, %%ymm1\n\t"
      "vpxor %%ymm4, %%ymm4, %%ymm4\n\t"
      "vpxor %%ymm5, %%ymm5, %%ymm5\n\t"
      "vpxor %%ymm6, %%ymm6, %%ymm6\n\t"
      "vpxor %%ymm7, %%ymm7, %%ymm7\n\t"
      "vpxor %%ymm8, %%ymm8, %%ymm8\n\t"
      "vpxor %%ymm9, %%ymm9, %%ymm9\n\t"
      "1:\n\t"
      "vpmaddubsw %%ymm1, %%ymm0, %%ymm2\n\t"
      "vpaddw %%ymm2, %%ymm4, %%ymm4\n\t"
      "vpmaddubsw %%ymm1, %%ymm0, %%ymm3\n\t"
      "vpaddw %%ymm3, %%ymm5, %%ymm5\n\t"
      "vpmaddubsw %%ymm1, %%ymm0, %%ymm10\n\t"
      "vpaddw %%ymm10, %%ymm6, %%ymm6\n\t"
      "vpmaddubsw %%ymm1, %%ymm0, %%ymm11\n\t"
      "vpaddw %%ymm11, %%ymm7, %%ymm7\n\t"
      "vpmaddubsw %%ymm1, %%ymm0, %%ymm12\n\t"
      "vpaddw %%ymm12, %%ymm8, %%ymm8\n\t"
      "vpmaddubsw %%ymm1, %%ymm0, %%ymm13\n\t"
      "vpaddw %%ymm13, %%ymm9, %%ymm9\n\t"
      "dec %0\n\t"
      "jnz 1b\n\t"
      "vzeroupper\n\t"
      : "+r"(iters)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12",
        "xmm13", "cc");
  return 6.0 * 32.0 * steps / seconds(t0);
}
#endif

double int8_peak(kernels::Isa isa, int threads) {
  double (*loop)(int64_t) = nullptr;
#if defined(__x86_64__)
  if (isa == kernels::Isa::kAvx512) loop = vnni_macs;
  if (isa == kernels::Isa::kAvx2) loop = avx2_macs;
#else
  (void)isa;  // no peak loop written for this architecture
#endif
  if (!loop) return 0;
  // Every thread runs the loop at once; the best of 3 runs of ~0.2 s.
  double best = 0;
  for (int r = 0; r < 3; ++r) {
    std::vector<double> each((size_t)threads);
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) ts.emplace_back([&, t] { each[(size_t)t] = loop(20000000); });
    for (auto& th : ts) th.join();
    double total = 0;
    for (double v : each) total += v;
    best = std::max(best, total);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 1, reps = 3;
  int64_t rows = 4096, cols = 4096;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--threads") threads = std::atoi(argv[i + 1]);
    else if (a == "--rows") rows = std::atol(argv[i + 1]);
    else if (a == "--cols") cols = std::atol(argv[i + 1]);
    else if (a == "--reps") reps = std::atoi(argv[i + 1]);
  }
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0, 1);
  std::vector<float> wf((size_t)(rows * cols));
  for (float& v : wf) v = nd(rng) * 0.02f;
  const int64_t max_n = 512;
  std::vector<float> x((size_t)(max_n * cols)), y((size_t)(max_n * rows));
  for (float& v : x) v = nd(rng);
  kernels::ThreadPool pool(threads);
  kernels::MatmulScratch scratch;
  scratch.reserve(max_n, cols);
  std::string isa_err;
  const kernels::KernelTable* kp = kernels::requested_table(&isa_err);
  if (!kp) {
    std::fprintf(stderr, "matmul_bench: %s\n", isa_err.c_str());
    return 1;
  }
  const kernels::KernelTable& k = *kp;
  const double peak = int8_peak(k.isa, threads);
  if (peak > 0)
    std::printf("int8 multiply-add peak of the %s table's instruction on %d thread(s): %.1f GMAC/s "
                "(independent chains, no loads)\n\n",
                kernels::isa_name(k.isa), threads, peak / 1e9);
  std::printf("| backend | weights | tokens | threads | ms | GFLOP/s | weight GB/s | %% of int8 peak |\n"
              "|---|---|---|---|---|---|---|---|\n");
  auto report = [&](const char* backend, const char* type, int64_t n, double s, double wbytes, bool int8 = false) {
    const double macs = (double)rows * (double)cols * (double)n / s;
    char pct[32] = "";
    if (int8 && peak > 0) std::snprintf(pct, sizeof pct, "%.0f%%", 100.0 * macs / peak);
    std::printf("| %s | %s | %lld | %d | %.2f | %.1f | %.1f | %s |\n", backend, type, (long long)n, threads, s * 1e3,
                2.0 * macs / 1e9, wbytes / s / 1e9, pct);
  };
  for (QType t : {QType::kQ4, QType::kQ8, QType::kF16, QType::kF32}) {
    Weights w = make(t, rows, cols, wf);
    for (int64_t n : {1, 128, 512}) {
      kernels::matmul(k, pool, w.m, x.data(), n, cols, y.data(), rows, nullptr, scratch);  // warm up
      double best = 1e9;
      for (int r = 0; r < (n == 1 ? reps * 10 : reps); ++r) {
        auto t0 = Clock::now();
        kernels::matmul(k, pool, w.m, x.data(), n, cols, y.data(), rows, nullptr, scratch);
        best = std::min(best, seconds(t0));
      }
      std::string b = std::string("cria ") + kernels::isa_name(k.isa);
      report(b.c_str(), qtype_name(t), n, best, (double)w.m.l.total, t == QType::kQ4 || t == QType::kQ8);
    }
  }
  if (xnn_initialize(nullptr) != xnn_status_success) {
    std::printf("XNNPACK: initialization failed\n");
    return 0;
  }
  // f32 fully connected: XNNPACK packs the weights into its own buffer.
  xnn_operator_t op = nullptr;
  if (xnn_create_fully_connected_nc_f32(cols, rows, cols, rows, wf.data(), nullptr, -INFINITY, INFINITY, 0, &op) ==
      xnn_status_success) {
    for (int64_t n : {1, 128, 512}) {
      xnn_setup_fully_connected_nc_f32(op, n, x.data(), y.data(), pool.native());
      xnn_run_operator(op, pool.native());
      double best = 1e9;
      for (int r = 0; r < (n == 1 ? reps * 10 : reps); ++r) {
        auto t0 = Clock::now();
        xnn_run_operator(op, pool.native());
        best = std::min(best, seconds(t0));
      }
      report("XNNPACK", "f32", n, best, 4.0 * rows * cols);
    }
    xnn_delete_operator(op);
  }
  std::vector<uint16_t> wh(wf.size()), xh(x.size()), yh(y.size());
  for (size_t i = 0; i < wf.size(); ++i) wh[i] = f32_to_fp16(wf[i]);
  for (size_t i = 0; i < x.size(); ++i) xh[i] = f32_to_fp16(x[i]);
  const xnn_status s16 =
      xnn_create_fully_connected_nc_f16(cols, rows, cols, rows, wh.data(), nullptr, -INFINITY, INFINITY, 0, &op);
  if (s16 == xnn_status_success) {
    for (int64_t n : {1, 128, 512}) {
      xnn_setup_fully_connected_nc_f16(op, n, xh.data(), yh.data(), pool.native());
      xnn_run_operator(op, pool.native());
      double best = 1e9;
      for (int r = 0; r < (n == 1 ? reps * 10 : reps); ++r) {
        auto t0 = Clock::now();
        xnn_run_operator(op, pool.native());
        best = std::min(best, seconds(t0));
      }
      report("XNNPACK", "f16 (f16 activations)", n, best, 2.0 * rows * cols);
    }
    xnn_delete_operator(op);
  } else {
    std::printf("| XNNPACK | f16 | - | %d | not available on this CPU (status %d) | | |\n", threads, (int)s16);
  }
  return 0;
}
