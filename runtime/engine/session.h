// A session: the per-user state on top of a shared, immutable Model — the KV
// cache for n_seq sequences, the forward scratch, logits, samplers and the
// streaming decoders — all allocated when the session is created, so the
// generate loop allocates nothing per token.
//
// generate() prefills a prompt as batches (GEMM), then decodes one token per
// step (GEMV) for every live sequence at once; a one-sequence session of a
// model placed wholly on a GPU decodes through its DeviceDecoder instead. num_return_sequences copies
// the prompt's cache rows into the extra sequences instead of recomputing
// them; all continuations then decode together in one batch, each seeing
// only its own cache rows.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "formats/status.h"
#include "runtime/kernels/ops.h"
#include "runtime/model/device_decoder.h"
#include "runtime/model/model.h"
#include "runtime/engine/pipeline.h"
#include "runtime/model/transformer.h"
#include "runtime/sampling/sampler.h"
#include "runtime/tokenizer/tokenizer.h"

namespace cria {

struct SessionOptions {
  int64_t n_ctx = 0;      // 0: the model's max_position_embeddings, capped at 4096
  int64_t n_seq = 1;      // sequences decoded together (num_return_sequences)
  int threads = 0;        // 0: the machine's cores
  int64_t batch = 256;    // prefill tokens per forward call
  // How the KV cache stores keys and values: f16 (default), q8 / q4 (int8 /
  // int4 in blocks of 32 with a scale each: about half / a third of f16's
  // memory, for long contexts), f32 (reference tests).
  kernels::KvType kv = kernels::KvType::kF16;
  // Layers split across processes (engine/pipeline.h), not owned; null:
  // every layer runs here.
  LayerPipeline* pipeline = nullptr;
};

// Values are stable (logged, and mapped one by one to cria_stop_reason).
// SessionOptions checked against a model, with defaults filled in (shared by
// Session and Batcher): thread count, context length, kernel table.
struct ResolvedOptions {
  int threads = 1;
  int64_t n_ctx = 0;
  const kernels::KernelTable* kernels = nullptr;
};
Result<ResolvedOptions> resolve_options(const ModelConfig& c, const SessionOptions& opt);

// The KV cache is committed as it fills, so a huge context costs nothing
// until used; but one that could never fit beside the model in this
// machine's memory is refused up front, naming the context that would.
Status check_kv_fits(const Model& m, int64_t n_seq, int64_t n_ctx, kernels::KvType kv);

enum class StopReason : int {
  kNone = 0,
  kEos = 1,
  kMaxTokens = 2,
  kStopString = 3,
  kContextFull = 4,
  kCancelled = 5,
  kCallback = 6,
};
const char* stop_reason_name(StopReason r);

struct GenerateRequest {
  std::vector<int32_t> prompt;          // already tokenized (template applied)
  // Or several prompts decoded together, one continuation each (sequence i
  // continues prompts[i]); `prompt` is then unused.
  std::vector<std::vector<int32_t>> prompts;
  SamplingParams sampling;
  int64_t max_new_tokens = 256;         // <= 0: until the context is full
  int64_t num_return_sequences = 1;
  std::vector<int32_t> stop_ids;        // end-of-sequence ids (callers list all of them)
  std::vector<std::string> stop_strings;
};

struct SequenceResult {
  std::vector<int32_t> tokens;  // generated ids (stop token excluded)
  std::string text;             // streamed text (stop string excluded)
  StopReason reason = StopReason::kNone;
};

struct GenerateStats {
  int64_t prompt_tokens = 0, generated_tokens = 0;
  int64_t reused_tokens = 0;  // prompt tokens whose cache rows came from the previous call
  double prefill_s = 0, decode_s = 0, first_token_s = 0;
};

// Called with each piece of text as it becomes final. Return false to stop
// that sequence.
using TokenCallback = std::function<bool(int64_t seq, std::string_view text, int32_t token)>;

class Session {
 public:
  static Result<std::unique_ptr<Session>> create(std::shared_ptr<const Model> model,
                                                 std::shared_ptr<const Tokenizer> tokenizer,
                                                 const SessionOptions& opt);

  // Generates from the prompt. Each call is independent in its result; when
  // a single prompt begins with the tokens the previous call left in
  // sequence 0's cache (a chat's next turn), those rows are reused instead
  // of recomputed. Errors: prompt longer than the context, bad ids, ...
  Status generate(const GenerateRequest& req, const TokenCallback& cb, std::vector<SequenceResult>* out,
                  GenerateStats* stats);

  // Log-probabilities of tokens[i + 1] given tokens[0..i], for i in
  // [first, n - 1), written to logprobs[i - first]. One sequence, n <= n_ctx.
  Status score(const int32_t* tokens, int64_t n, int64_t first, double* logprobs);

  // Thread-safe: makes a running generate() return with kCancelled.
  void cancel() { cancel_.store(true); }

  int64_t n_ctx() const { return cache_.n_ctx; }
  int64_t n_seq() const { return cache_.n_seq; }
  int threads() const { return pool_->threads(); }
  const kernels::ThreadPool& pool() const { return *pool_; }
  const kernels::KernelTable& kernels() const { return *k_; }
  size_t kv_bytes() const { return cache_.bytes(); }
  // How decode steps run: "host loop" (the layers' ops on their placed
  // backends) or the device decoder's name (a model wholly on a GPU, one
  // sequence, f16 cache: the whole layer stack per submission).
  const char* decode_path() const { return dev_ ? dev_->name() : "host loop"; }

 private:
  Session() = default;
  // Runs the prompts (prompt i in sequence i) in shared batches; leaves each
  // prompt's last logits in logits_ row i.
  Status prefill(const std::vector<const std::vector<int32_t>*>& prompts, int64_t reuse);
  // forward() over the whole model: here, or through the pipeline.
  Status run_forward(const BatchEntry* batch, int64_t n, float* logits);

  std::shared_ptr<const Model> model_;
  std::shared_ptr<const Tokenizer> tok_;
  const kernels::KernelTable* k_ = nullptr;
  std::unique_ptr<kernels::ThreadPool> pool_;
  KvCache cache_;
  ForwardScratch scratch_;
  std::vector<float> logits_;  // n_seq x vocab (or batch x vocab for score)
  std::vector<BatchEntry> batch_;
  std::vector<Sampler> samplers_;
  std::vector<std::vector<int32_t>> history_;
  std::vector<int64_t> pos_;  // next position of each sequence
  std::vector<int32_t> cached_;  // the tokens sequence 0's cache holds, in order
  std::atomic<bool> cancel_{false};
  int64_t batch_cap_ = 0;
  std::unique_ptr<PipelineSession> pipe_;
  std::unique_ptr<DeviceDecoder> dev_;
  int64_t dev_rows_ = 0;  // sequence 0's cache rows the device holds, [0, dev_rows_)
};

}  // namespace cria
