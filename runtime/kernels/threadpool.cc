#include "runtime/kernels/threadpool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#if defined(CRIA_HAVE_PTHREADPOOL)
#include <pthreadpool.h>
#endif

namespace cria::kernels {

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

ThreadPool::ThreadPool(int threads) : threads_(std::max(1, threads)) {
  if (threads_ == 1) return;
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
#if defined(CRIA_HAVE_PTHREADPOOL)
  if (pool_) {
    pthreadpool_parallelize_1d(pool_, fn, ctx, n, 0);
    return;
  }
#endif
  portable_->run(n, fn, ctx);
}

}  // namespace cria::kernels
