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
#include <vector>

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
  std::printf("| backend | weights | tokens | threads | ms | GFLOP/s | weight GB/s |\n|---|---|---|---|---|---|---|\n");
  auto report = [&](const char* backend, const char* type, int64_t n, double s, double wbytes) {
    std::printf("| %s | %s | %lld | %d | %.2f | %.1f | %.1f |\n", backend, type, (long long)n, threads, s * 1e3,
                2.0 * rows * cols * n / s / 1e9, wbytes / s / 1e9);
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
      report(b.c_str(), qtype_name(t), n, best, (double)w.m.l.total);
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
