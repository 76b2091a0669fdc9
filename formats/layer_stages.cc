#include "formats/layer_stages.h"

#include <algorithm>
#include <limits>

namespace cria {

bool stage_reads(const ModelConfig& c, const TensorSpec& s, int64_t begin, int64_t end) {
  if (s.layer >= 0) return s.layer >= begin && s.layer < end;
  const bool last = end == (int64_t)c.num_layers;
  switch (s.kind) {
    case TensorKind::kTokEmbd: return begin == 0 || (last && c.tie_word_embeddings);
    case TensorKind::kOutputNorm:
    case TensorKind::kOutput: return last;
    default: return false;
  }
}

std::vector<ByteRange> stage_ranges(const ModelFile& f, int64_t begin, int64_t end) {
  const ModelConfig& c = f.config();
  const uint64_t base = f.preamble().data_offset;
  std::vector<ByteRange> r;
  for_each_tensor(c, [&](const TensorSpec& s) {
    if (!stage_reads(c, s, begin, end)) return;
    const TensorRef* t = f.find(s.name);  // validated: present
    r.push_back({base + t->offset, t->size});
  });
  std::sort(r.begin(), r.end(), [](const ByteRange& a, const ByteRange& b) { return a.offset < b.offset; });
  // Tensors start 64-byte aligned: a gap under 64 bytes is padding, never a
  // tensor, so a merged range never cuts one.
  std::vector<ByteRange> out;
  for (const ByteRange& b : r) {
    if (!out.empty() && b.offset - (out.back().offset + out.back().size) < kTensorAlign)
      out.back().size = b.offset + b.size - out.back().offset;
    else
      out.push_back(b);
  }
  return out;
}

Result<std::vector<LayerStage>> plan_layer_stages(const ModelFile& f, int n) {
  const ModelConfig& c = f.config();
  const int64_t L = c.num_layers;
  if (n < 1 || n > L)
    return Error(Code::kInvalidArgument, f.path() + ": " + std::to_string(n) + " instances for " +
                                             std::to_string(L) + " layers (each instance holds one layer at least)");
  // Bytes of each block, of the embedding and of the head.
  std::vector<uint64_t> layer(L, 0);
  uint64_t embd = 0, head = 0;
  for_each_tensor(c, [&](const TensorSpec& s) {
    const uint64_t size = f.find(s.name)->size;
    if (s.layer >= 0) layer[s.layer] += size;
    else if (s.kind == TensorKind::kTokEmbd) embd = size;
    else head += size;
  });
  std::vector<uint64_t> prefix(L + 1, 0);
  for (int64_t i = 0; i < L; ++i) prefix[i + 1] = prefix[i] + layer[i];
  auto cost = [&](int64_t b, int64_t e) {
    uint64_t x = prefix[e] - prefix[b];
    if (b == 0) x += embd;
    if (e == L) x += head + (c.tie_word_embeddings && b != 0 ? embd : 0);
    return x;
  };
  // best[k][e]: the least largest stage over splits of blocks [0, e) into k
  // stages; cut[k][e] the start of the last one. n and L are small (<= 100).
  const uint64_t inf = std::numeric_limits<uint64_t>::max();
  std::vector<std::vector<uint64_t>> best(n + 1, std::vector<uint64_t>(L + 1, inf));
  std::vector<std::vector<int64_t>> cut(n + 1, std::vector<int64_t>(L + 1, 0));
  best[0][0] = 0;
  for (int k = 1; k <= n; ++k)
    for (int64_t e = k; e <= L; ++e)
      for (int64_t b = k - 1; b < e; ++b) {
        if (best[k - 1][b] == inf) continue;
        const uint64_t v = std::max(best[k - 1][b], cost(b, e));
        if (v < best[k][e]) {
          best[k][e] = v;
          cut[k][e] = b;
        }
      }
  std::vector<LayerStage> stages(n);
  int64_t e = L;
  for (int k = n; k >= 1; --k) {
    LayerStage& s = stages[k - 1];
    s.layer_begin = cut[k][e];
    s.layer_end = e;
    s.ranges = stage_ranges(f, s.layer_begin, s.layer_end);
    for (const ByteRange& r : s.ranges) s.bytes += r.size;
    e = s.layer_begin;
  }
  return stages;
}

}  // namespace cria
