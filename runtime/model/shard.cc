#include "runtime/model/shard.h"

#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "formats/tensors.h"
#include "runtime/model/model.h"

namespace cria {

namespace {

using Range = std::pair<uint64_t, uint64_t>;  // [begin, end)

std::string num(uint64_t v) { return std::to_string(v); }

// Rank `index`'s first KV head and how many it holds.
std::pair<uint64_t, uint64_t> kv_heads_of(const ModelConfig& c, int index, int count) {
  const uint64_t nkv = c.num_kv_heads;
  if (nkv % (uint64_t)count == 0) return {index * nkv / count, nkv / count};
  return {(uint64_t)index * nkv / (uint64_t)count, 1};  // count a multiple of nkv: replicated
}

uint8_t* alloc(ShardBytes* owned, uint64_t bytes) {
  const uint64_t size = align_up(std::max<uint64_t>(bytes, 1), kPlaneAlign);
  void* p = std::aligned_alloc(kPlaneAlign, size);
  if (!p) return nullptr;
  std::memset(p, 0, size);  // tile padding rows stay zero
  owned->blocks.emplace_back(static_cast<uint8_t*>(p), std::free);
  owned->bytes += size;
  return static_cast<uint8_t*>(p);
}

}  // namespace

Result<kernels::Matrix> slice_rows(const kernels::Matrix& src, const std::vector<Range>& ranges, ShardBytes* owned) {
  uint64_t rows = 0;
  for (const Range& r : ranges) rows += r.second - r.first;
  kernels::Matrix m;
  m.type = src.type;
  if (!qlayout(src.type, rows, src.l.cols, src.l.group, &m.l))
    return Error(Code::kInternal, "shard: no layout for a row slice");
  uint8_t* dst = alloc(owned, m.l.total);
  if (!dst) return Error(Code::kOutOfMemory, "shard: out of memory for a weight slice");
  m.data = dst;
  const QLayout& s = src.l;
  uint64_t out = 0;
  if (s.tiles) {
    bool whole_tiles = true;
    for (const Range& r : ranges) whole_tiles &= r.first % kTileRows == 0 && r.second % kTileRows == 0;
    if (whole_tiles) {
      // Whole tiles: a contiguous run of each plane.
      for (const Range& r : ranges) {
        const uint64_t t0 = r.first / kTileRows, nt = (r.second - r.first) / kTileRows, o = out / kTileRows;
        std::memcpy(dst + m.l.q_offset + o * m.l.tile_q_bytes, src.data + s.q_offset + t0 * s.tile_q_bytes,
                    nt * s.tile_q_bytes);
        std::memcpy(dst + m.l.s_offset + o * m.l.tile_s_bytes, src.data + s.s_offset + t0 * s.tile_s_bytes,
                    nt * s.tile_s_bytes);
        if (s.m_bytes)
          std::memcpy(dst + m.l.m_offset + o * m.l.tile_s_bytes, src.data + s.m_offset + t0 * s.tile_s_bytes,
                      nt * s.tile_s_bytes);
        out += r.second - r.first;
      }
    } else {
      // Rows that start inside a tile move group by group, bits unchanged.
      const QPlanes chunk = qplanes_at(dst, m.l, 0);
      QGroup g;
      for (const Range& r : ranges)
        for (uint64_t row = r.first; row < r.second; ++row, ++out)
          for (uint64_t gi = 0; gi < s.groups; ++gi) {
            unpack_group(src.type, s, row, gi, src.data, &g);
            pack_group(m.type, m.l, out, gi, g, chunk, 0);
          }
    }
    return m;
  }
  // Row-major types (float, I8C): rows, and I8C's per-row scales.
  for (const Range& r : ranges) {
    const uint64_t n = r.second - r.first;
    std::memcpy(dst + m.l.q_offset + out * s.row_bytes, src.data + s.q_offset + r.first * s.row_bytes,
                n * s.row_bytes);
    if (s.s_bytes) std::memcpy(dst + m.l.s_offset + out * 4, src.data + s.s_offset + r.first * 4, n * 4);
    out += n;
  }
  return m;
}

Result<kernels::Matrix> slice_cols(const kernels::Matrix& src, uint64_t c0, uint64_t c1, ShardBytes* owned) {
  kernels::Matrix m;
  m.type = src.type;
  const QLayout& s = src.l;
  if (!qlayout(src.type, s.rows, c1 - c0, s.group, &m.l) || (s.group && c0 % s.group))
    return Error(Code::kInternal, "shard: no layout for a column slice");
  uint8_t* dst = alloc(owned, m.l.total);
  if (!dst) return Error(Code::kOutOfMemory, "shard: out of memory for a weight slice");
  m.data = dst;
  if (s.tiles) {
    // In a tile, each 32-column block's chunks are contiguous, and so are
    // each group's 16 scales (and mins).
    const uint64_t block_bytes = s.tile_q_bytes / s.blocks, b0 = c0 / kBlock, g0 = c0 / s.group;
    for (uint64_t t = 0; t < s.tiles; ++t) {
      std::memcpy(dst + m.l.q_offset + t * m.l.tile_q_bytes,
                  src.data + s.q_offset + t * s.tile_q_bytes + b0 * block_bytes, m.l.tile_q_bytes);
      std::memcpy(dst + m.l.s_offset + t * m.l.tile_s_bytes,
                  src.data + s.s_offset + t * s.tile_s_bytes + g0 * kTileRows * 2, m.l.tile_s_bytes);
      if (s.m_bytes)
        std::memcpy(dst + m.l.m_offset + t * m.l.tile_s_bytes,
                    src.data + s.m_offset + t * s.tile_s_bytes + g0 * kTileRows * 2, m.l.tile_s_bytes);
    }
    return m;
  }
  const uint64_t elem = s.row_bytes / s.cols;
  for (uint64_t r = 0; r < s.rows; ++r)
    std::memcpy(dst + m.l.q_offset + r * m.l.row_bytes, src.data + s.q_offset + r * s.row_bytes + c0 * elem,
                m.l.row_bytes);
  if (s.s_bytes) std::memcpy(dst + m.l.s_offset, src.data + s.s_offset, s.s_bytes);  // I8C: per-row scales
  return m;
}

namespace {

const float* gather_bias(const float* b, const std::vector<Range>& ranges, ShardBytes* owned) {
  if (!b) return nullptr;
  uint64_t n = 0;
  for (const Range& r : ranges) n += r.second - r.first;
  auto* dst = reinterpret_cast<float*>(alloc(owned, n * sizeof(float)));
  if (!dst) return nullptr;
  uint64_t out = 0;
  for (const Range& r : ranges) {
    std::memcpy(dst + out, b + r.first, (r.second - r.first) * sizeof(float));
    out += r.second - r.first;
  }
  return dst;
}

}  // namespace

Status check_tensor_split(const ModelFile& f, int count) {
  const ModelConfig& c = f.config();
  const uint64_t n = (uint64_t)count, nh = c.num_heads, nkv = c.num_kv_heads;
  if (count < 1) return Error(Code::kInvalidArgument, "--split tensors needs at least one rank");
  if (nh % n != 0 || (nkv % n != 0 && n % nkv != 0))
    return Error(Code::kInvalidArgument,
                 f.path() + ": --split tensors: heads " + num(nh) + " / KV heads " + num(nkv) +
                     " do not divide across " + num(n) +
                     " ranks (the heads must split evenly, and the KV heads too, or each rank holds one KV head "
                     "when the ranks are a multiple of them): use --split layers or another -np");
  if (c.intermediate_size % n != 0)
    return Error(Code::kInvalidArgument, f.path() + ": --split tensors: the MLP width " + num(c.intermediate_size) +
                                             " does not divide across " + num(n) + " ranks: use --split layers");
  // attn_out and ffn_down are cut between columns: the cut must fall on a
  // quantization group of the type that holds them.
  for (uint32_t l = 0; l < c.num_layers; ++l)
    for (auto [kind, width] : {std::pair{TensorKind::kAttnOut, (uint64_t)c.q_dim() / n},
                               std::pair{TensorKind::kFfnDown, (uint64_t)c.intermediate_size / n}}) {
      const std::string name = tensor_name(kind, (int)l, false);
      const TensorRef* t = f.find(name);
      if (!t) return Error(Code::kInternal, f.path() + ": tensor " + name + " vanished");
      const uint64_t group = t->layout.group;
      if (group && width % group != 0)
        return Error(Code::kInvalidArgument, f.path() + ": --split tensors: " + name + " would be cut every " +
                                                 num(width) + " columns, not on its " + qtype_name(t->dtype) +
                                                 " groups of " + num(group) + " across " + num(n) +
                                                 " ranks: use --split layers, another -np, or convert with --group 32");
    }
  return Status::Ok();
}

ModelConfig shard_config(const ModelConfig& c, int count) {
  ModelConfig s = c;
  s.num_heads = c.num_heads / (uint32_t)count;
  s.num_kv_heads = (uint32_t)kv_heads_of(c, 0, count).second;
  s.intermediate_size = c.intermediate_size / (uint32_t)count;
  return s;
}

Status shard_weights(const ModelFile& f, int index, int count, Weights* w, ShardBytes* owned, int64_t* head_begin) {
  CRIA_RETURN_IF_ERROR(check_tensor_split(f, count));
  const ModelConfig& c = f.config();
  const uint64_t d = c.head_dim, qd = c.q_dim(), kvd = c.kv_dim(), ffn = c.intermediate_size;
  const uint64_t hq = c.num_heads / count, q0 = index * hq * d;
  const auto [kv0, nkv] = kv_heads_of(c, index, count);
  // attn_qkv rows: this rank's query heads, then its keys, then its values.
  const std::vector<Range> qkv = {{q0, q0 + hq * d},
                                  {qd + kv0 * d, qd + (kv0 + nkv) * d},
                                  {qd + kvd + kv0 * d, qd + kvd + (kv0 + nkv) * d}};
  const uint64_t f0 = index * ffn / count, f1 = (index + 1) * ffn / count;
  std::vector<Range> ffn_in = {{f0, f1}};
  if (c.mlp == MlpKind::kSwiGLU) ffn_in.push_back({ffn + f0, ffn + f1});  // gate rows, then up rows
  for (uint32_t l = 0; l < c.num_layers; ++l) {
    LayerWeights& L = w->layers[l];
    const LayerWeights src = L;
    CRIA_ASSIGN_OR_RETURN(L.qkv, slice_rows(src.qkv, qkv, owned));
    CRIA_ASSIGN_OR_RETURN(L.attn_out, slice_cols(src.attn_out, q0, q0 + hq * d, owned));
    CRIA_ASSIGN_OR_RETURN(L.ffn_in, slice_rows(src.ffn_in, ffn_in, owned));
    CRIA_ASSIGN_OR_RETURN(L.ffn_down, slice_cols(src.ffn_down, f0, f1, owned));
    L.qkv_b = gather_bias(src.qkv_b, qkv, owned);
    L.ffn_in_b = gather_bias(src.ffn_in_b, ffn_in, owned);
    if ((src.qkv_b && !L.qkv_b) || (src.ffn_in_b && !L.ffn_in_b))
      return Error(Code::kOutOfMemory, "shard: out of memory for a bias slice");
    // Partial sums: the bias once, on rank 0.
    if (index != 0) L.attn_out_b = L.ffn_down_b = nullptr;
    // Only this rank's slices were read; its copies replace them.
    for (const kernels::Matrix* m : {&src.qkv, &src.attn_out, &src.ffn_in, &src.ffn_down})
      f.release_pages(m->data, m->l.total);
  }
  *head_begin = (int64_t)(index * hq);
  return Status::Ok();
}

}  // namespace cria
