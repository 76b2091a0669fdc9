// One pool of threads shared by every kernel of a model (and by XNNPACK on
// native builds, through pthreadpool). The calling thread takes part in each
// parallel_for, so a one-thread pool runs the work inline with no handoff.
// Workers spin briefly after a task and then sleep (pthreadpool's policy;
// the portable pool copies it), so a decode step pays no wake-up latency
// while an idle process burns no CPU.
#pragma once

#include <cstddef>
#include <memory>
#include <type_traits>

struct pthreadpool;

namespace cria::kernels {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
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
  pthreadpool* native() const { return pool_; }

 private:
  void run(size_t n, void (*fn)(void*, size_t), void* ctx);

  int threads_;
  pthreadpool* pool_ = nullptr;
  struct Portable;
  std::unique_ptr<Portable> portable_;
};

}  // namespace cria::kernels
