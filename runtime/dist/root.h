// Rank 0's side of a model split across ranks, by layers or by tensors
// (see dist.h and comm.h).
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include "runtime/dist/comm.h"
#include "runtime/dist/options.h"
#include "runtime/engine/pipeline.h"

namespace cria::dist {

class RootPipeline : public LayerPipeline {
 public:
  RootPipeline(Options opt, int size) : opt_(std::move(opt)), size_(size), sum_(size, opt_.timeout_s) {}

  Status attach(const ModelFile& f, ModelOptions* opt) override;
  Result<std::unique_ptr<PipelineSession>> open_session(const ModelConfig& c, int64_t n_seq, int64_t n_ctx,
                                                         kernels::KvType kv, int64_t max_tokens) override;

  // Shuts the workers down (status rc), or aborts the job when the chain is
  // broken. Never returns when it aborts.
  int finish(int rc);

  // Used by sessions: a message to rank 1, and rank 0's wait for a reply.
  Status send_next(const std::vector<uint8_t>& buf);
  Status recv_reply(Message* m);
  // Forward calls that want no logits (prefill batches before the last) do
  // not wait for their (empty) reply: rank 0 runs its layers on the next
  // batch while the other ranks still work on this one. Deferring stops
  // once size - 1 or more replies (one per micro-batch) are outstanding;
  // drain() collects them in order before any call that needs an answer.
  bool may_defer() const { return pending_ < size_ - 1; }
  void defer(int parts) { pending_ += parts; }
  int size() const { return size_; }
  // Forward calls and the micro-batches they went down the chain as
  // (printed at the end of a run with CRIA_MPI_STATS=1).
  void count_parts(int64_t parts) {
    ++calls_;
    parts_ += parts;
  }
  int64_t calls() const { return calls_; }
  int64_t parts() const { return parts_; }
  Status drain();
  // An exchange failed: no further message is sent, finish() aborts.
  bool broken() const { return broken_; }
  // Marks the chain broken when st is a failed exchange; returns st.
  Status check(Status st);
  bool tensors() const { return opt_.split == "tensors"; }
  TensorReduce* sum() { return &sum_; }
  const Options& options() const { return opt_; }
  int64_t local_end() const { return ranges_.empty() ? 0 : ranges_[0].second; }

 private:
  Options opt_;
  int size_ = 1;
  bool attached_ = false, broken_ = false;
  int32_t next_sid_ = 1;
  int pending_ = 0;
  int64_t calls_ = 0, parts_ = 0;
  std::vector<std::pair<int64_t, int64_t>> ranges_;
  RankOrderSum sum_;
};

}  // namespace cria::dist
