// The thread pool's share governor (runtime/kernels/threadpool.h).
//   - On made-up timings: the solo estimate takes the quickest thread that
//     ran a fair share; balanced runs keep the work spread; runs that took
//     longer than one thread alone would have switch the pool to solo for a
//     back-off that doubles while the hold-ups last, is capped, and resets
//     once spreading wins again; a window needs both its runs and its time.
//   - On a real pool: a worker whose every item sleeps (a thread on a core
//     another process has taken) sends runs solo, every item still runs
//     exactly once, and adaptive = false keeps every run spread.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "runtime/kernels/threadpool.h"

using cria::kernels::RunShare;
using cria::kernels::ShareGovernor;
using cria::kernels::ThreadPool;

namespace {

constexpr int64_t kMs = 1'000'000;

// Feeds one window of runs of wall_ns each that one thread alone would have
// done in solo_ns; returns the time after the window.
int64_t feed(ShareGovernor& g, int64_t t, int64_t wall_ns, int64_t solo_ns) {
  const int runs = std::max<int64_t>(ShareGovernor::kWindowRuns, ShareGovernor::kWindowNs / wall_ns + 1);
  for (int i = 0; i < runs; ++i) {
    REQUIRE(g.spread(t));
    g.record(t, wall_ns, solo_ns);
    t += wall_ns;
  }
  return t;
}

}  // namespace

TEST_CASE("share governor: the solo estimate is the quickest thread with a fair share") {
  // 8 items. Thread 0 ran 5 in 1.0 ms (8 would take 1.6 ms); thread 1 ran 3
  // in 0.3 ms then sat descheduled (its span says 0.8 ms for 8).
  RunShare parts[2] = {{5, 0, 1'000'000}, {3, 100'000, 400'000}};
  CHECK(ShareGovernor::solo_estimate(parts, 2, 8) == 800'000);
  // A thread with fewer than a quarter of the items gives no rate: one
  // quick item says little about the rest.
  RunShare lone[2] = {{7, 0, 2'100'000}, {1, 0, 10'000}};
  CHECK(ShareGovernor::solo_estimate(lone, 2, 8) == 2'400'000);
  RunShare none[2] = {{1, 0, 10'000}, {1, 0, 10'000}};
  CHECK(ShareGovernor::solo_estimate(none, 2, 16) == -1);
  CHECK(ShareGovernor::solo_estimate(none, 0, 16) == -1);
}

TEST_CASE("share governor: balanced runs stay spread") {
  ShareGovernor g;
  int64_t t = 0;
  // Two threads: a run alone would take twice as long, or a bit less.
  for (int w = 0; w < 10; ++w) t = feed(g, t, 1 * kMs, 2 * kMs);
  CHECK(g.spread(t));
  t = feed(g, t, 1 * kMs, 1'050'000);
  CHECK(g.spread(t));
}

TEST_CASE("share governor: held-up runs go solo, back off, probe and come back") {
  ShareGovernor g;
  int64_t t = 0;
  // One thread does 7 of 8 items in 0.3 ms and waits 0.7 ms for the
  // eighth: alone it would have taken 0.34 ms.
  t = feed(g, t, 1 * kMs, 340'000);
  CHECK(!g.spread(t));
  CHECK(g.solo_until_ns() == t + ShareGovernor::kMinBackoffNs);
  CHECK(!g.spread(t + ShareGovernor::kMinBackoffNs - 1));
  // Probes that find the same hold-ups double the back-off up to its cap.
  int64_t expect = ShareGovernor::kMinBackoffNs;
  for (int i = 0; i < 8; ++i) {
    t = g.solo_until_ns();
    t = feed(g, t, 1 * kMs, 340'000);
    expect = std::min(ShareGovernor::kMaxBackoffNs, expect * 2);
    CHECK(g.solo_until_ns() == t + expect);
  }
  CHECK(g.solo_until_ns() - t == ShareGovernor::kMaxBackoffNs);
  // A probe that finds the threads free again stays spread; the next
  // hold-up starts from the shortest back-off.
  t = feed(g, g.solo_until_ns(), 1 * kMs, 2 * kMs);
  CHECK(g.spread(t));
  t = feed(g, t, 1 * kMs, 340'000);
  CHECK(g.solo_until_ns() == t + ShareGovernor::kMinBackoffNs);
}

TEST_CASE("share governor: a window needs its runs and its time") {
  ShareGovernor g;
  int64_t t = 0;
  // 31 held-up runs of 1 ms: too few runs.
  for (int i = 0; i < ShareGovernor::kWindowRuns - 1; ++i, t += kMs) g.record(t, kMs, 100'000);
  CHECK(g.spread(t));
  // 100 held-up runs of 0.1 ms: enough runs, 10 ms is too short; the runs
  // after the 20th millisecond close it.
  ShareGovernor h;
  t = 0;
  for (int i = 0; i < 100; ++i, t += kMs / 10) h.record(t, kMs / 10, 10'000);
  CHECK(h.spread(t));
  for (int i = 0; i < 101; ++i, t += kMs / 10) h.record(t, kMs / 10, 10'000);
  CHECK(!h.spread(t));
  // Runs without an estimate count for the window, not for the sums.
  ShareGovernor z;
  t = feed(z, 0, 1 * kMs, -1);
  CHECK(z.spread(t));
}

TEST_CASE("thread pool: a held-up thread sends runs solo; every item runs once either way") {
  const auto caller = std::this_thread::get_id();
  // The thread whose every item sleeps: a worker, then the calling thread
  // itself (the one on the busy core may be either).
  for (bool slow_caller : {false, true}) {
    for (bool adaptive : {true, false}) {
      CAPTURE(slow_caller);
      CAPTURE(adaptive);
      ThreadPool pool(2, adaptive);
      std::vector<std::atomic<int>> hits(16);
      const auto t0 = std::chrono::steady_clock::now();
      int rounds = 0;
      // Long enough for a window and a back-off (0.15 s); on a machine busy
      // with other tests, up to 3 s for the first solo run.
      auto elapsed = [&] { return std::chrono::steady_clock::now() - t0; };
      while (elapsed() < std::chrono::milliseconds(150) || rounds < 2 * ShareGovernor::kWindowRuns ||
             (adaptive && pool.solo_runs() == 0 && elapsed() < std::chrono::seconds(3))) {
        pool.parallel_for(hits.size(), [&](size_t i) {
          if ((std::this_thread::get_id() == caller) == slow_caller) std::this_thread::sleep_for(std::chrono::milliseconds(1));
          hits[i].fetch_add(1);
        });
        ++rounds;
      }
      for (auto& h : hits) CHECK(h.load() == rounds);
      CHECK(pool.runs() == (uint64_t)rounds);
      if (adaptive) {
        CHECK(pool.solo_runs() > 0);
      } else {
        CHECK(pool.solo_runs() == 0);
      }
    }
  }
}
