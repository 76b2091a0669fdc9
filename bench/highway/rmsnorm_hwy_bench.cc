// RMSNorm written once with Google Highway (dynamic dispatch) against each
// of cria's kernel tables: the measurement behind keeping Highway out of the
// runtime for now (docs/PERFORMANCE.md, "Highway"). `rmsnorm_hwy_bench`
// runs Highway's best target; `rmsnorm_hwy_bench avx2` disables AVX-512.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "bench/highway/rmsnorm_hwy_bench.cc"
#include <hwy/foreach_target.h>
#include <hwy/highway.h>
#include <cmath>

HWY_BEFORE_NAMESPACE();
namespace cria_hwy {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
void RmsNorm(const float* x, const float* w, float eps, int64_t n, float* y) {
  const hn::ScalableTag<float> d;
  const int64_t L = (int64_t)hn::Lanes(d);
  auto s0 = hn::Zero(d), s1 = hn::Zero(d);
  int64_t i = 0;
  for (; i + 2 * L <= n; i += 2 * L) {
    const auto a = hn::LoadU(d, x + i), b = hn::LoadU(d, x + i + L);
    s0 = hn::MulAdd(a, a, s0);
    s1 = hn::MulAdd(b, b, s1);
  }
  float ss = hn::GetLane(hn::SumOfLanes(d, hn::Add(s0, s1)));
  for (; i < n; ++i) ss += x[i] * x[i];
  const float inv = 1.0f / std::sqrt(ss / (float)n + eps);
  const auto vi = hn::Set(d, inv);
  i = 0;
  for (; i + L <= n; i += L) hn::StoreU(hn::Mul(hn::LoadU(d, w + i), hn::Mul(hn::LoadU(d, x + i), vi)), d, y + i);
  for (; i < n; ++i) y[i] = w[i] * (x[i] * inv);
}
}  // namespace HWY_NAMESPACE
}  // namespace cria_hwy
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <chrono>
#include <cstdio>
#include <vector>
#include "runtime/kernels/kernels.h"
namespace cria_hwy {
HWY_EXPORT(RmsNorm);
}
int main(int argc, char**) {
  if (argc > 1) hwy::DisableTargets(HWY_AVX3 | HWY_AVX3_DL);
  using namespace cria::kernels;
  for (int64_t n : {2048, 4096, 8192}) {
    std::vector<float> x(n), w(n), y(n);
    for (int64_t i = 0; i < n; ++i) { x[i] = std::sin(i * 0.37f); w[i] = 1 + 0.01f * (i % 7); }
    auto time = [&](auto fn) {
      double best = 1e9;
      for (int r = 0; r < 15; ++r) {
        auto t0 = std::chrono::steady_clock::now();
        for (int k = 0; k < 2000; ++k) fn();
        best = std::min(best, std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() / 2000);
      }
      return best;
    };
    std::printf("n=%ld", (long)n);
    for (const KernelTable* t : available_tables()) std::printf("  %s %.0f ns", isa_name(t->isa), time([&] { t->rmsnorm(x.data(), w.data(), 1e-5f, n, y.data()); }));
    std::printf("  highway(%s) %.0f ns\n", argc > 1 ? "AVX2" : "best", time([&] { HWY_DYNAMIC_DISPATCH(cria_hwy::RmsNorm)(x.data(), w.data(), 1e-5f, n, y.data()); }));
  }
}
#endif
