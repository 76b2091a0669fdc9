// Which bytes of a .cria file a stage of a model split by layers needs: the
// browser splits a model too large for one wasm32 memory across several
// WebAssembly instances, each holding a contiguous range of layers and
// fetching only the byte ranges of its own tensors. The runtime side of
// such a stage is the layer range of ModelOptions (runtime/model/model.h),
// the same seam the MPI layer pipeline (runtime/dist) uses.
#pragma once

#include <cstdint>
#include <vector>

#include "formats/model_file.h"
#include "formats/tensors.h"

namespace cria {

struct ByteRange {
  uint64_t offset = 0, size = 0;  // absolute file offsets
};

struct LayerStage {
  int64_t layer_begin = 0, layer_end = 0;  // [begin, end)
  uint64_t bytes = 0;                      // the sum of its ranges
  std::vector<ByteRange> ranges;           // in file order, disjoint
};

// Whether a stage running blocks [begin, end) of num_layers reads tensor s:
// its blocks' tensors; the token embedding on the first stage; the final
// norm and the output head on the last (the embedding there too when the
// head is tied to it).
bool stage_reads(const ModelConfig& c, const TensorSpec& s, int64_t begin, int64_t end);

// The byte ranges of the tensors stage [begin, end) reads, neighbours
// merged across alignment padding. The preamble and header, which every
// stage needs, are not among them: they are [0, 64 + header_size).
std::vector<ByteRange> stage_ranges(const ModelFile& f, int64_t begin, int64_t end);

// Splits the layers into n contiguous, non-empty stages so that the
// largest stage holds as few bytes as possible (embedding and head
// counted where they sit). Errors: n outside [1, num_layers].
Result<std::vector<LayerStage>> plan_layer_stages(const ModelFile& f, int n);

}  // namespace cria
