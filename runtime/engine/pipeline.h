// The seam between a session and a model split across processes. A session
// runs its forward calls through a LayerPipeline when one is installed for
// the process: runtime/dist installs one on rank 0 of an MPI job, which runs
// this process's layers and mirrors each call to the ranks holding the rest.
// Without one (every single-process run) the session calls forward()
// directly and nothing here costs anything.
#pragma once

#include <cstdint>
#include <memory>

#include "formats/model_file.h"
#include "formats/status.h"
#include "runtime/kernels/ops.h"
#include "runtime/model/model.h"
#include "runtime/model/transformer.h"

namespace cria {

// What a session lends its pipeline on each call: its model, kernels, pool,
// cache (this process's layers only) and scratch.
struct LocalStage {
  const Model* model = nullptr;
  const kernels::KernelTable* k = nullptr;
  kernels::ThreadPool* pool = nullptr;
  KvCache* cache = nullptr;
  ForwardScratch* scratch = nullptr;
};

// One session's share of the pipeline: the other ranks hold a cache of the
// same shape for their layers (or their heads' share of every layer)
// until this object is destroyed.
class PipelineSession {
 public:
  virtual ~PipelineSession() = default;
  // forward() over the whole model: this process's layers (or shard)
  // locally, the rest on the other ranks; logits as forward() returns them.
  virtual Status forward(const LocalStage& st, const BatchEntry* batch, int64_t n, float* logits) = 0;
  // KvCache::copy_rows on every rank.
  virtual Status copy_rows(const LocalStage& st, int64_t src, int64_t dst, int64_t n_pos) = 0;
};

class LayerPipeline {
 public:
  virtual ~LayerPipeline() = default;
  // Called once the model file is open, before its layers are placed:
  // checks that every rank holds the same file and build, fixes the split,
  // and sets this process's share in *opt: its layers [layer_begin,
  // layer_end) for a layer split, its shard (shard_index, shard_count) of
  // every layer for a tensor split.
  virtual Status attach(const ModelFile& f, ModelOptions* opt) = 0;
  // A session's cache of n_seq x n_ctx positions of type kv and batches
  // of up to max_tokens entries, on every rank.
  virtual Result<std::unique_ptr<PipelineSession>> open_session(const ModelConfig& c, int64_t n_seq, int64_t n_ctx,
                                                                 kernels::KvType kv, int64_t max_tokens) = 0;
};

// The process's pipeline (not owned), or null: set once at start-up.
LayerPipeline* process_pipeline();
void set_process_pipeline(LayerPipeline* p);

}  // namespace cria
