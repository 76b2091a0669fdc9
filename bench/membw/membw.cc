// Memory read bandwidth probe: T threads each stream their slice of a 1 GiB
// buffer (far larger than any cache) and sum it; the best of R repetitions
// is reported in GB/s. Decode speed is bounded by this figure divided by the
// bytes of weights read per token.
//   membw [--threads T] [--mib N] [--reps R] [--json]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace {

// Sums 64-byte lines; the loads are what is measured.
__attribute__((noinline)) uint64_t read_slice(const uint64_t* p, size_t n) {
  uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
  for (size_t i = 0; i + 8 <= n; i += 8) {
    a0 += p[i];
    a1 += p[i + 1];
    a2 += p[i + 2];
    a3 += p[i + 3];
    a4 += p[i + 4];
    a5 += p[i + 5];
    a6 += p[i + 6];
    a7 += p[i + 7];
  }
  return a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 1, reps = 5;
  size_t mib = 1024;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (a == "--mib" && i + 1 < argc) mib = (size_t)std::atol(argv[++i]);
    else if (a == "--reps" && i + 1 < argc) reps = std::atoi(argv[++i]);
    else if (a == "--json") json = true;
    else {
      std::fprintf(stderr, "usage: membw [--threads T] [--mib N] [--reps R] [--json]\n");
      return 2;
    }
  }
  if (threads < 1 || mib < 64 || reps < 1) {
    std::fprintf(stderr, "membw: bad arguments\n");
    return 2;
  }
  const size_t words = mib * 1024 * 1024 / 8;
  std::vector<uint64_t> buf(words);
  for (size_t i = 0; i < words; ++i) buf[i] = i;
  double best = 0;
  volatile uint64_t sink = 0;
  for (int r = 0; r < reps; ++r) {
    std::vector<std::thread> pool;
    std::vector<uint64_t> sums(threads);
    const auto t0 = std::chrono::steady_clock::now();
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        const size_t a = words * t / threads, b = words * (t + 1) / threads;
        sums[t] = read_slice(buf.data() + a, b - a);
      });
    }
    for (auto& th : pool) th.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (uint64_t v : sums) sink = sink + v;
    best = std::max(best, (double)words * 8 / s / 1e9);
  }
  if (json) std::printf("{\"threads\": %d, \"read_gb_s\": %.2f}\n", threads, best);
  else std::printf("read bandwidth, %d thread(s): %.2f GB/s\n", threads, best);
  return 0;
}
