#include "runtime/server/scheduler.h"

#include <cstdio>

namespace cria::server {

namespace {
constexpr auto kRateWindow = std::chrono::seconds(5);
}

Scheduler::Scheduler(std::unique_ptr<Batcher> batcher, size_t max_queue)
    : b_(std::move(batcher)), max_queue_(max_queue), n_ctx_(b_->n_ctx()), n_slots_(b_->slots()) {
  running_.resize(n_slots_);
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() { shutdown(); }

bool Scheduler::submit(const std::shared_ptr<Job>& job) {
  std::lock_guard<std::mutex> l(mu_);
  if (stopping_) return false;
  int64_t busy = 0;
  for (const auto& r : running_) busy += r != nullptr;
  // Free slots take jobs at once; beyond them the queue holds max_queue_.
  if (queue_.size() >= max_queue_ + (size_t)(n_slots_ - busy)) {
    ++rejected_;
    return false;
  }
  queue_.push_back(job);
  ++jobs_;
  cv_.notify_all();
  return true;
}

void Scheduler::shutdown() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

Metrics Scheduler::metrics() const {
  std::lock_guard<std::mutex> l(mu_);
  Metrics m;
  m.slots = n_slots_;
  for (const auto& r : running_) m.busy += r != nullptr;
  m.queued = (int64_t)queue_.size();
  m.jobs = jobs_;
  m.rejected = rejected_;
  m.prompt_tokens = prompt_tokens_;
  m.generated_tokens = generated_tokens_;
  m.steps = steps_;
  const auto now = Clock::now();
  int64_t n = 0;
  for (const auto& [t, k] : recent_)
    if (now - t <= kRateWindow) n += k;
  m.tokens_per_second = (double)n / std::chrono::duration<double>(kRateWindow).count();
  return m;
}

void Scheduler::admit() {
  while (!queue_.empty()) {
    std::shared_ptr<Job> job = queue_.front();
    if (job->cancel.load()) {
      queue_.pop_front();
      std::lock_guard<std::mutex> l(job->ch->mu);
      job->done = true;
      job->reason = StopReason::kCancelled;
      job->finished = Clock::now();
      job->ch->cv.notify_all();
      continue;
    }
    // The free slot whose cache shares the longest prefix with the prompt
    // (a conversation's earlier turns), else any free slot.
    int64_t best = -1, best_reuse = -1;
    for (int64_t s = 0; s < n_slots_; ++s) {
      if (running_[s] || !b_->idle(s)) continue;
      const int64_t r = b_->reusable(s, job->req.prompt);
      if (r > best_reuse) best = s, best_reuse = r;
    }
    if (best < 0) return;
    queue_.pop_front();
    Status st = b_->start(best, job->req);
    std::lock_guard<std::mutex> l(job->ch->mu);
    if (!st.ok()) {
      job->error = st.message();
      job->done = true;
      job->finished = Clock::now();
    } else {
      job->started = true;
      running_[best] = job;
    }
    job->ch->cv.notify_all();
  }
}

void Scheduler::publish(const SlotEvent& ev) {
  std::shared_ptr<Job> job = running_[ev.slot];
  if (!job) return;
  {
    std::lock_guard<std::mutex> l(job->ch->mu);
    if (ev.token >= 0 && !(ev.done && ev.reason == StopReason::kEos)) ++job->tokens;
    if (job->tokens == 1 && job->first_token == Clock::time_point{}) job->first_token = Clock::now();
    if (!ev.text.empty()) job->pieces.push_back(ev.text);
    if (ev.done) {
      job->done = true;
      job->reason = ev.reason;
      job->prompt_tokens = ev.prompt_tokens;
      job->reused_tokens = ev.reused_tokens;
      job->finished = Clock::now();
    }
    job->ch->cv.notify_all();
  }
  if (ev.done) {
    prompt_tokens_ += ev.prompt_tokens - ev.reused_tokens;
    running_[ev.slot] = nullptr;
  }
}

void Scheduler::loop() {
  std::vector<SlotEvent> events;
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    cv_.wait(l, [&] { return stopping_ || !queue_.empty() || b_->active() > 0; });
    if (stopping_) break;
    admit();
    const auto now = Clock::now();
    for (int64_t s = 0; s < n_slots_; ++s)
      if (running_[s] && (running_[s]->cancel.load() || now >= running_[s]->deadline)) b_->stop(s);
    if (b_->active() == 0) continue;
    l.unlock();
    events.clear();
    Status st = b_->step(&events);
    l.lock();
    if (!st.ok()) {
      // Not expected (the batcher validated every request); fail the running
      // jobs rather than retry the same step forever.
      std::fprintf(stderr, "cria serve: step failed: %s\n", st.message().c_str());
      for (int64_t s = 0; s < n_slots_; ++s)
        if (auto job = running_[s]) {
          b_->stop(s);
          std::lock_guard<std::mutex> jl(job->ch->mu);
          job->error = st.message();
          job->done = true;
          job->ch->cv.notify_all();
          running_[s] = nullptr;
        }
    }
    int64_t n = 0;
    for (const SlotEvent& ev : events) {
      if (ev.token >= 0 && !(ev.done && ev.reason == StopReason::kEos)) ++n;
      publish(ev);
    }
    generated_tokens_ += n;
    ++steps_;
    recent_.emplace_back(Clock::now(), n);
    while (!recent_.empty() && Clock::now() - recent_.front().first > kRateWindow) recent_.pop_front();
  }
  // Shutdown: every open stream ends (as cancelled) so its client hears it.
  auto end = [](const std::shared_ptr<Job>& job) {
    std::lock_guard<std::mutex> jl(job->ch->mu);
    job->done = true;
    job->reason = StopReason::kCancelled;
    job->error = "the server is shutting down";
    job->finished = Clock::now();
    job->ch->cv.notify_all();
  };
  for (auto& job : queue_) end(job);
  queue_.clear();
  for (auto& job : running_)
    if (job) end(job), job = nullptr;
}

}  // namespace cria::server
