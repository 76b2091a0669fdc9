#include "runtime/model/weight_copy.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <thread>

#if !defined(__EMSCRIPTEN__)
#include <sys/mman.h>
#include <sys/statfs.h>
#endif

namespace cria {

namespace {

#if !defined(__EMSCRIPTEN__) && defined(__linux__)
// The bracketed word of /sys/kernel/mm/transparent_hugepage/enabled
// ("always", "madvise", "never"), "" where there is no such file.
std::string thp_mode() {
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  if (!std::getline(in, line)) return "";
  const size_t a = line.find('['), b = line.find(']');
  return a == std::string::npos || b == std::string::npos || b < a ? "" : line.substr(a + 1, b - a - 1);
}

#endif

#if !defined(__EMSCRIPTEN__)
constexpr uint64_t kHugePage = 2ull << 20;
constexpr uint64_t kPiece = 32ull << 20;  // one read

std::string gib(uint64_t b) {
  char s[32];
  std::snprintf(s, sizeof s, "%.1f GiB", (double)b / (1ull << 30));
  return s;
}
#endif

}  // namespace

uint64_t mem_available() {
#if !defined(__EMSCRIPTEN__) && defined(__linux__)
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t kib = 0;
  std::string unit;
  while (in >> key >> kib >> unit)
    if (key == "MemAvailable:") return kib << 10;
#endif
  return 0;
}

Result<WeightMemory> parse_weight_memory(std::string_view s) {
  if (s.empty() || s == "auto") return WeightMemory::kAuto;
  if (s == "map") return WeightMemory::kMap;
  if (s == "copy") return WeightMemory::kCopy;
  return Error(Code::kInvalidArgument, "weights: unknown choice '" + std::string(s) + "' (auto, map or copy)");
}

WeightMemory auto_weight_memory(const ModelFile& f, uint64_t bytes, std::string* why) {
#if defined(__EMSCRIPTEN__) || !defined(__linux__)
  (void)f;
  (void)bytes;
  *why = "this platform gives no huge pages to ask for";
  return WeightMemory::kMap;
#else
  if (!f.mapped()) {
    *why = "the model is already in memory the process owns";
    return WeightMemory::kMap;
  }
  const std::string thp = thp_mode();
  if (thp.empty() || thp == "never") {
    *why = "transparent huge pages are off (/sys/kernel/mm/transparent_hugepage/enabled)";
    return WeightMemory::kMap;
  }
  struct statfs fs;
  if (statfs(f.path().c_str(), &fs) == 0 && fs.f_type == 0x01021994 /* TMPFS_MAGIC */) {
    *why = "the file is on tmpfs, already in memory (mount it huge=always for 2 MiB pages)";
    return WeightMemory::kMap;
  }
  // Page cache counts as available (the kernel reclaims it for the copy);
  // keep a margin for the KV cache and the rest of the system.
  const uint64_t avail = mem_available();
  const uint64_t margin = 512ull << 20;
  if (avail && bytes + margin > avail) {
    *why = "a copy of " + gib(bytes) + " would not leave " + gib(margin) + " of the " + gib(avail) + " available";
    return WeightMemory::kMap;
  }
  why->clear();
  return WeightMemory::kCopy;
#endif
}

WeightCopy::~WeightCopy() {
#if !defined(__EMSCRIPTEN__)
  if (base_) munmap(base_, reserved_);
#endif
}

Result<std::unique_ptr<WeightCopy>> WeightCopy::make(const ModelFile& f, std::vector<WeightSpan> spans, int threads) {
#if defined(__EMSCRIPTEN__)
  // The browser's model is already module memory (never a mapped file).
  (void)spans;
  (void)threads;
  return Error(Code::kUnsupported, f.path() + ": the browser build reads weights in place");
#else
  std::sort(spans.begin(), spans.end(), [](const WeightSpan& a, const WeightSpan& b) { return a.data < b.data; });
  std::unique_ptr<WeightCopy> c(new WeightCopy());
  std::vector<uint64_t> at(spans.size());
  for (size_t i = 0; i < spans.size(); ++i) {
    at[i] = c->used_;
    c->used_ = align_up(c->used_ + spans[i].size, kTensorAlign);
  }
  if (!c->used_) return c;
  c->reserved_ = align_up(c->used_, kHugePage);
  // Over-allocate by one huge page and trim, so the region starts on a
  // 2 MiB boundary (a huge page must be aligned to its size).
  void* raw = mmap(nullptr, c->reserved_ + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED)
    return Error(Code::kOutOfMemory, f.path() + ": no memory for a copy of " + gib(c->used_) +
                                         " of weights (" + std::strerror(errno) + "); try --weights map");
  uint8_t* r = static_cast<uint8_t*>(raw);
  uint8_t* base = reinterpret_cast<uint8_t*>(align_up((uint64_t)(uintptr_t)r, kHugePage));
  if (base > r) munmap(r, (size_t)(base - r));
  if (base + c->reserved_ < r + c->reserved_ + kHugePage)
    munmap(base + c->reserved_, (size_t)(r + c->reserved_ + kHugePage - (base + c->reserved_)));
  c->base_ = base;
#if defined(MADV_HUGEPAGE)
  (void)madvise(base, c->reserved_, MADV_HUGEPAGE);  // advice: the copy works without
#endif
  // Pieces of at most kPiece bytes, read by `threads` threads in turn.
  struct Piece {
    const uint8_t* src;
    uint64_t size, dst;
  };
  std::vector<Piece> pieces;
  for (size_t i = 0; i < spans.size(); ++i)
    for (uint64_t o = 0; o < spans[i].size; o += kPiece)
      pieces.push_back({spans[i].data + o, std::min(kPiece, spans[i].size - o), at[i] + o});
  std::atomic<size_t> next{0};
  std::mutex mu;
  Status first = Status::Ok();
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < pieces.size();) {
      Status s = f.read_mapped(pieces[i].src, pieces[i].size, c->base_ + pieces[i].dst);
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first.ok()) first = s;
        next = pieces.size();
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < std::max(1, threads); ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  CRIA_RETURN_IF_ERROR(first);
  for (size_t i = 0; i < spans.size(); ++i) c->moved_.push_back({spans[i].data, c->base_ + at[i]});
  return c;
#endif
}

const uint8_t* WeightCopy::find(const uint8_t* p) const {
  auto it = std::lower_bound(moved_.begin(), moved_.end(), p,
                             [](const std::pair<const uint8_t*, const uint8_t*>& m, const uint8_t* q) { return m.first < q; });
  return it != moved_.end() && it->first == p ? it->second : p;
}

uint64_t WeightCopy::huge_bytes() const {
  if (!base_) return 0;
  std::ifstream in("/proc/self/smaps");
  char head[32];
  std::snprintf(head, sizeof head, "%llx-", (unsigned long long)(uintptr_t)base_);
  std::string line;
  bool ours = false;
  uint64_t kib = 0;
  while (std::getline(in, line)) {
    // A mapping's first line starts with its address range ("7f..-7f.. ").
    const bool header = !line.empty() && line.find(':') > line.find(' ');
    if (header) ours = line.rfind(head, 0) == 0;
    else if (ours && line.rfind("AnonHugePages:", 0) == 0) kib += std::strtoull(line.c_str() + 14, nullptr, 10);
  }
  // The region's tail past the last tensor is never touched.
  return std::min(kib << 10, used_);
}

}  // namespace cria
