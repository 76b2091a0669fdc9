// Tensor parallelism: one rank's shard of every block (runtime/dist,
// `--split tensors`). With N ranks, rank r holds
//   - attention: query heads [r H/N, (r+1) H/N) and their KV heads: KV heads
//     [r K/N, (r+1) K/N) when N divides the K KV heads, else (N a multiple
//     of K, multi-query Falcon's K = 1 included) the one KV head its query
//     heads read, which N/K ranks then each compute (replicated);
//   - the rows of attn_qkv for those heads and the matching columns of
//     attn_out;
//   - MLP: rows [r F/N, (r+1) F/N) of the gate and of the up projection,
//     and the same columns of ffn_down.
// attn_out and ffn_down then give partial sums of the hidden state, which
// the ranks add up (transformer.h, LayerSpan::reduce); their biases are
// held by rank 0 only, so they are added once. Norms and the embedding are
// whole on every rank; the output head only where the caller places it.
//
// Each slice is copied, at load, into memory the model owns, in the
// file's own storage type and bits (no requantization): row slices of the
// 16-row tiled types are whole tiles when they start and end on a multiple
// of 16 rows, column slices whole 32-column blocks and scale groups. Only
// the slice's bytes of the mapped file are read, and those pages are
// released after the copy, so a rank holds 1/N of the block weights.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "formats/model_file.h"
#include "formats/status.h"
#include "runtime/kernels/kernels.h"

namespace cria {

struct Weights;

// Whether the file's blocks split across `count` ranks: heads, KV heads and
// the MLP width divide, and the column slices of attn_out and ffn_down fall
// on the quantization groups. The error is one line naming the numbers.
Status check_tensor_split(const ModelFile& f, int count);

// The config a shard computes with: heads, KV heads and MLP width of one
// rank (hidden size, head_dim, vocabulary unchanged).
ModelConfig shard_config(const ModelConfig& c, int count);

// Memory a shard's copied slices live in (64-byte aligned).
struct ShardBytes {
  std::vector<std::unique_ptr<uint8_t, void (*)(void*)>> blocks;
  uint64_t bytes = 0;
};

// The rows `ranges` ([begin, end) pairs, in that order) of a matrix, and
// its columns [c0, c1) (c0 and c1 on its quantization groups), as new
// matrices of the same type and bits in *owned. Exposed for tests.
Result<kernels::Matrix> slice_rows(const kernels::Matrix& src, const std::vector<std::pair<uint64_t, uint64_t>>& ranges,
                                   ShardBytes* owned);
Result<kernels::Matrix> slice_cols(const kernels::Matrix& src, uint64_t c0, uint64_t c1, ShardBytes* owned);

// Replaces every block's matrices and biases in *w by rank `index`'s slices
// (of `count`), copied into *owned; `head_begin` receives the rank's first
// query head (for ALiBi slopes). Checks check_tensor_split first.
Status shard_weights(const ModelFile& f, int index, int count, Weights* w, ShardBytes* owned, int64_t* head_begin);

}  // namespace cria
