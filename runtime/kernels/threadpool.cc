#include "runtime/kernels/threadpool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#if defined(CRIA_HAVE_PTHREADPOOL)
#include <pthreadpool.h>
#endif

namespace cria::kernels {

bool ShareGovernor::spread(int64_t now_ns) {
  if (now_ns < solo_until_) return false;
  if (window_start_ < 0) window_start_ = now_ns;
  return true;
}

int64_t ShareGovernor::solo_estimate(const RunShare* parts, int n_parts, size_t items) {
  double best = -1;
  for (int i = 0; i < n_parts; ++i) {
    const RunShare& p = parts[i];
    if (p.items == 0 || p.items * 4 < items) continue;
    const double t = (double)(p.last_ns - p.first_ns) * (double)items / (double)p.items;
    if (best < 0 || t < best) best = t;
  }
  return (int64_t)best;
}

void ShareGovernor::record(int64_t start_ns, int64_t wall_ns, int64_t solo_ns) {
  if (window_start_ < 0) window_start_ = start_ns;
  if (solo_ns >= 0) {
    wall_sum_ += (double)wall_ns;
    solo_sum_ += (double)solo_ns;
  }
  ++runs_;
  const int64_t end = start_ns + wall_ns;
  if (runs_ < kWindowRuns || end - window_start_ < kWindowNs) return;
  if (wall_sum_ > 0 && solo_sum_ < wall_sum_) {
    solo_until_ = end + backoff_;
    backoff_ = std::min(kMaxBackoffNs, backoff_ * 2);
  } else {
    backoff_ = kMinBackoffNs;
  }
  window_start_ = -1;
  wall_sum_ = solo_sum_ = 0;
  runs_ = 0;
}

namespace {

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// One spread run: each thread that takes part claims a RunShare on its
// first item (tl_run_id and tl_share remember which, for this run) and times its
// items there. Only the owning thread writes a share; the caller reads them
// after the run, which the pool's completion orders after every write.
struct Timed {
  void (*fn)(void*, size_t);
  void* ctx;
  uint64_t id;
  RunShare* shares;
  int n_shares;
  std::atomic<int> claimed{0};
};
std::atomic<uint64_t> g_run_ids{0};
thread_local uint64_t tl_run_id = 0;
thread_local RunShare* tl_share = nullptr;

void timed_item(void* c, size_t i) {
  Timed* r = static_cast<Timed*>(c);
  if (tl_run_id != r->id) {
    const int slot = r->claimed.fetch_add(1, std::memory_order_relaxed);
    tl_share = slot < r->n_shares ? &r->shares[slot] : nullptr;
    tl_run_id = r->id;
    if (tl_share) *tl_share = RunShare{0, now_ns(), 0};
  }
  r->fn(r->ctx, i);
  if (RunShare* s = tl_share) {
    ++s->items;
    s->last_ns = now_ns();
  }
}

bool adaptive_from_env(bool adaptive) {
  const char* v = std::getenv("CRIA_ADAPTIVE_THREADS");
  return adaptive && !(v && v[0] == '0' && v[1] == 0);
}

}  // namespace

// A small pool for builds without pthreadpool (WASM): workers wait on a
// generation counter, spin for a while after each job, then sleep on a
// condition variable. Items are claimed with an atomic counter.
struct ThreadPool::Portable {
  explicit Portable(int n) {
    for (int i = 1; i < n; ++i) workers.emplace_back([this] { loop(); });
  }
  ~Portable() {
    {
      std::lock_guard<std::mutex> lk(mu);
      stop = true;
      generation.fetch_add(1);
    }
    cv.notify_all();
    for (auto& t : workers) t.join();
  }

  void run(size_t n, void (*f)(void*, size_t), void* c) {
    fn = f;
    ctx = c;
    total = n;
    next.store(0, std::memory_order_relaxed);
    active.store((int)workers.size(), std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lk(mu);
      generation.fetch_add(1, std::memory_order_release);
    }
    cv.notify_all();
    work();
    while (active.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  }

  void work() {
    for (;;) {
      size_t i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= total) break;
      fn(ctx, i);
    }
  }

  void loop() {
    uint64_t seen = 0;
    for (;;) {
      // Spin a little before sleeping: decode steps come back to back.
      bool got = false;
      for (int spin = 0; spin < 20000 && !got; ++spin) got = generation.load(std::memory_order_acquire) != seen;
      if (!got) {
        std::unique_lock<std::mutex> lk(mu);
        cv.wait(lk, [&] { return generation.load() != seen; });
      }
      seen = generation.load(std::memory_order_acquire);
      {
        std::lock_guard<std::mutex> lk(mu);
        if (stop) return;
      }
      work();
      active.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  std::vector<std::thread> workers;
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<uint64_t> generation{0};
  bool stop = false;
  void (*fn)(void*, size_t) = nullptr;
  void* ctx = nullptr;
  size_t total = 0;
  std::atomic<size_t> next{0};
  std::atomic<int> active{0};
};

ThreadPool::ThreadPool(int threads, bool adaptive)
    : threads_(std::max(1, threads)), adaptive_(adaptive_from_env(adaptive)) {
  if (threads_ == 1) return;
  shares_ = std::make_unique<RunShare[]>((size_t)threads_);
#if defined(CRIA_HAVE_PTHREADPOOL)
  pool_ = pthreadpool_create((size_t)threads_);
  if (pool_) return;
#endif
  portable_ = std::make_unique<Portable>(threads_);
}

ThreadPool::~ThreadPool() {
#if defined(CRIA_HAVE_PTHREADPOOL)
  if (pool_) pthreadpool_destroy(pool_);
#endif
}

void ThreadPool::run(size_t n, void (*fn)(void*, size_t), void* ctx) {
  ++runs_;
  if (!adaptive_) {
    spread_run(n, fn, ctx);
    return;
  }
  const int64_t start = now_ns();
  if (!governor_.spread(start)) {
    ++solo_runs_;
    for (size_t i = 0; i < n; ++i) fn(ctx, i);
    return;
  }
  Timed r{fn, ctx, g_run_ids.fetch_add(1, std::memory_order_relaxed) + 1, shares_.get(), threads_};
  spread_run(n, timed_item, &r);
  const int64_t end = now_ns();
  const int parts = std::min(r.claimed.load(std::memory_order_relaxed), threads_);
  governor_.record(start, end - start, ShareGovernor::solo_estimate(shares_.get(), parts, n));
}

void ThreadPool::spread_run(size_t n, void (*fn)(void*, size_t), void* ctx) {
#if defined(CRIA_HAVE_PTHREADPOOL)
  if (pool_) {
    pthreadpool_parallelize_1d(pool_, fn, ctx, n, 0);
    return;
  }
#endif
  portable_->run(n, fn, ctx);
}

}  // namespace cria::kernels
