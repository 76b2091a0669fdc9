// Where the CPU kernels read the weights from (ModelOptions::weights).
//
// Decode streams every weight once per token, so the page size the weights
// are read through decides its speed: through the file mapping (4 KiB pages
// of the page cache) a multi-GB stream misses the TLB every 4 KiB and the
// hardware prefetchers stop at each page boundary; through 2 MiB pages it
// runs at the memory's bandwidth (docs/PERFORMANCE.md "Weights in memory").
// `copy` reads the tensors the CPU kernels stream into one anonymous region
// that asks for transparent huge pages (the file's pages stay in the page
// cache, which the kernel reclaims when it needs the memory, so the next
// start reads them from memory rather than disk); `map` reads them in place from the mapped file (the
// least memory: the pages are shared with other processes and the kernel
// may evict them). `auto` copies on Linux when transparent huge pages are
// not off and the copy fits the memory available, else maps.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "formats/model_file.h"
#include "formats/status.h"

namespace cria {

enum class WeightMemory : uint8_t { kAuto, kMap, kCopy };

// "auto" | "map" | "copy"; anything else is an error naming the choices.
Result<WeightMemory> parse_weight_memory(std::string_view s);

// One tensor's bytes in the mapped file.
struct WeightSpan {
  const uint8_t* data = nullptr;
  uint64_t size = 0;
};

class WeightCopy {
 public:
  ~WeightCopy();
  WeightCopy(const WeightCopy&) = delete;
  WeightCopy& operator=(const WeightCopy&) = delete;

  // Copies the spans (distinct tensors of f's mapping, in any order) into
  // one anonymous region aligned to 2 MiB with MADV_HUGEPAGE, each span
  // 64-byte aligned, reading with `threads` threads. Errors name the file.
  static Result<std::unique_ptr<WeightCopy>> make(const ModelFile& f, std::vector<WeightSpan> spans, int threads);

  // The copy of the span that starts at `p`; `p` itself when no span does.
  const uint8_t* find(const uint8_t* p) const;
  uint64_t bytes() const { return used_; }
  // Bytes of the region the kernel backs with huge pages now
  // (AnonHugePages of its mapping in /proc/self/smaps; 0 where unknown).
  uint64_t huge_bytes() const;

 private:
  WeightCopy() = default;
  uint8_t* base_ = nullptr;
  [[maybe_unused]] uint64_t reserved_ = 0;  // the mapping's size (not in WASM builds)
  uint64_t used_ = 0;
  std::vector<std::pair<const uint8_t*, const uint8_t*>> moved_;  // (source, copy), by source
};

// MemAvailable of /proc/meminfo in bytes; 0 where unknown (not Linux, WASM).
uint64_t mem_available();

// What `auto` decides for copying `bytes` of f's weights: kCopy or kMap,
// with the reason for kMap in *why ("" when copying).
WeightMemory auto_weight_memory(const ModelFile& f, uint64_t bytes, std::string* why);

}  // namespace cria
