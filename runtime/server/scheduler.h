// The server's engine thread: a bounded queue of jobs in front of a Batcher's
// slots. HTTP threads submit jobs and read their output; only the engine
// thread touches the Batcher. A job that arrives joins the batch at the next
// step; one that ends (or is cancelled by its client, or passes its
// deadline) leaves it and frees its slot for the queue's head.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/engine/batcher.h"

namespace cria::server {

using Clock = std::chrono::steady_clock;

// Wakes whoever reads one HTTP request's jobs (several for OpenAI's n > 1).
struct Channel {
  std::mutex mu;
  std::condition_variable cv;
};

struct Job {
  SlotRequest req;
  Clock::time_point deadline = Clock::time_point::max();
  std::shared_ptr<Channel> ch = std::make_shared<Channel>();
  std::atomic<bool> cancel{false};
  // Written by the engine thread under ch->mu.
  std::vector<std::string> pieces;  // non-empty text pieces, in order
  int64_t tokens = 0;               // generated so far
  bool started = false, done = false;
  StopReason reason = StopReason::kNone;
  std::string error;                // set when the engine refused the job
  int64_t prompt_tokens = 0, reused_tokens = 0;
  Clock::time_point created = Clock::now(), first_token{}, finished{};
};

struct Metrics {
  int64_t slots = 0, busy = 0, queued = 0;
  int64_t jobs = 0, rejected = 0, prompt_tokens = 0, generated_tokens = 0, steps = 0;
  double tokens_per_second = 0;  // generated, over the last few seconds
};

class Scheduler {
 public:
  Scheduler(std::unique_ptr<Batcher> batcher, size_t max_queue);
  ~Scheduler();

  // Queues a job; false when the queue is full (answer 429).
  bool submit(const std::shared_ptr<Job>& job);
  // Ends every job (queued and running) as cancelled and stops the thread.
  void shutdown();
  Metrics metrics() const;
  int64_t n_ctx() const { return n_ctx_; }
  int64_t slots() const { return n_slots_; }

 private:
  void loop();
  void admit();  // moves queued jobs into free slots (engine thread, mu_ held)
  void publish(const SlotEvent& ev);

  std::unique_ptr<Batcher> b_;
  const size_t max_queue_;
  const int64_t n_ctx_, n_slots_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::vector<std::shared_ptr<Job>> running_;  // by slot
  bool stopping_ = false;
  // Metrics (mu_).
  int64_t jobs_ = 0, rejected_ = 0, prompt_tokens_ = 0, generated_tokens_ = 0, steps_ = 0;
  std::deque<std::pair<Clock::time_point, int64_t>> recent_;  // (step end, tokens) for tokens/s
  std::thread thread_;
};

}  // namespace cria::server
