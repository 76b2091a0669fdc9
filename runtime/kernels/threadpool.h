// One pool of threads shared by every kernel of a model (and by XNNPACK on
// native builds, through pthreadpool). The calling thread takes part in each
// parallel_for, so a one-thread pool runs the work inline with no handoff.
// Workers spin briefly after a task and then sleep (pthreadpool's policy;
// the portable pool copies it), so a decode step pays no wake-up latency
// while an idle process burns no CPU.
//
// When another process takes a core, a worker on that core is descheduled
// in the middle of its share and every parallel run waits for it: two
// threads then decode slower than one. The pool notices this from its own
// timings (ShareGovernor) and runs the work on the calling thread alone for
// a while, trying the other threads again now and then. The split of the
// work does not change, so neither do the results.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>

struct pthreadpool;

namespace cria::kernels {

// One thread's part of a spread run: how many items it ran, when its first
// began and its last ended.
struct RunShare {
  size_t items = 0;
  int64_t first_ns = 0, last_ns = 0;
};

// Decides whether parallel runs still pay, from timings the pool takes.
// Pure bookkeeping (times come from the caller), so it is tested on made-up
// timings.
//
// While spreading, each run adds its wall time and an estimate of what one
// thread alone would have taken: the items at the rate of the quickest
// thread that ran a fair share of them (solo_estimate). A thread
// descheduled mid-item looks slow and is passed over, whichever thread it
// is. (Beside the others a thread is also slowed by their memory traffic,
// so the estimate errs towards spreading.) After a window of runs, if the
// estimates sum below the wall times, the others cost more in waiting than
// they gave, and runs go solo for a back-off period; the back-off doubles
// each time a window confirms it, up to a bound, and resets when spreading
// wins again.
class ShareGovernor {
 public:
  static constexpr int64_t kWindowNs = 20'000'000;      // at least this long,
  static constexpr int kWindowRuns = 32;                // and this many runs
  static constexpr int64_t kMinBackoffNs = 100'000'000;
  static constexpr int64_t kMaxBackoffNs = 1'600'000'000;

  // One thread alone on a run of `items` items, from the threads' parts;
  // -1 when no thread ran a quarter of them (no rate to trust).
  static int64_t solo_estimate(const RunShare* parts, int n_parts, size_t items);

  // Whether the run starting at now_ns should use the other threads.
  bool spread(int64_t now_ns);
  // A spread run that started at start_ns and took wall_ns; solo_ns from
  // solo_estimate (-1: counts towards the window, not the sums).
  void record(int64_t start_ns, int64_t wall_ns, int64_t solo_ns);

  int64_t solo_until_ns() const { return solo_until_; }

 private:
  int64_t window_start_ = -1, solo_until_ = -1, backoff_ = kMinBackoffNs;
  double wall_sum_ = 0, solo_sum_ = 0;
  int runs_ = 0;
};

class ThreadPool {
 public:
  // adaptive = false keeps every run spread over all threads (so does the
  // environment variable CRIA_ADAPTIVE_THREADS=0).
  explicit ThreadPool(int threads, bool adaptive = true);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return threads_; }

  // Calls f(i) for every i in [0, n), spread over the pool; returns when all
  // are done. No allocation.
  template <typename F>
  void parallel_for(size_t n, F&& f) {
    if (n == 0) return;
    if (threads_ == 1 || n == 1) {
      for (size_t i = 0; i < n; ++i) f(i);
      return;
    }
    using Fn = std::remove_reference_t<F>;
    run(n, [](void* ctx, size_t i) { (*static_cast<Fn*>(ctx))(i); }, const_cast<void*>(static_cast<const void*>(&f)));
  }

  // The underlying pthreadpool (nullptr in the portable build), for XNNPACK.
  // XNNPACK's runs go to it directly and are always spread.
  pthreadpool* native() const { return pool_; }

  // Parallel runs so far, and how many of them ran on the calling thread
  // alone because the governor saw the other threads held up.
  uint64_t runs() const { return runs_; }
  uint64_t solo_runs() const { return solo_runs_; }

 private:
  void run(size_t n, void (*fn)(void*, size_t), void* ctx);
  void spread_run(size_t n, void (*fn)(void*, size_t), void* ctx);

  int threads_;
  bool adaptive_;
  ShareGovernor governor_;
  std::unique_ptr<RunShare[]> shares_;  // one per thread, reused by every run
  uint64_t runs_ = 0, solo_runs_ = 0;
  pthreadpool* pool_ = nullptr;
  struct Portable;
  std::unique_ptr<Portable> portable_;
};

}  // namespace cria::kernels
