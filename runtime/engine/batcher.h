// Continuous batching: a fixed set of slots (KV cache sequences) that
// requests enter and leave between steps, for a server. Each step() runs one
// forward pass holding one new token for every decoding slot plus as many
// prompt tokens of newly started slots as the batch has room for, so weights
// are read once per step for all of them and a new request never waits for
// the others to finish.
//
// A slot keeps the tokens its cache holds after a request ends; the next
// request started on it whose prompt begins with them (a conversation's next
// turn) only computes the new tokens.
//
// One thread drives a Batcher (start, stop, step); it is not thread-safe.
// Session::generate stays the simple path for one caller; this is the
// step-wise one.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "runtime/engine/session.h"
#include "runtime/engine/text_stream.h"

namespace cria {

struct SlotRequest {
  std::vector<int32_t> prompt;       // tokenized, template applied
  SamplingParams sampling;
  int64_t max_new_tokens = 256;      // <= 0: until the context is full
  int64_t min_new_tokens = 0;        // stop ids are masked until this many tokens
  std::vector<int32_t> stop_ids;
  std::vector<std::string> stop_strings;
  // OpenAI semantics, over the generated tokens: logit -= count * frequency
  // + (count > 0) * presence.
  float presence_penalty = 0, frequency_penalty = 0;
  std::vector<std::pair<int32_t, float>> logit_bias;
};

struct SlotEvent {
  int64_t slot = 0;
  std::string text;      // text that became final this step (may be empty)
  int32_t token = -1;    // the token sampled this step, -1 when none
  bool done = false;
  StopReason reason = StopReason::kNone;
  int64_t prompt_tokens = 0, reused_tokens = 0, generated_tokens = 0;
};

class Batcher {
 public:
  // opt.n_seq is the number of slots.
  static Result<std::unique_ptr<Batcher>> create(std::shared_ptr<const Model> model,
                                                 std::shared_ptr<const Tokenizer> tokenizer,
                                                 const SessionOptions& opt);

  int64_t slots() const { return (int64_t)slots_.size(); }
  int64_t n_ctx() const { return cache_.n_ctx; }
  bool idle(int64_t slot) const { return slots_[slot].state == State::kIdle; }
  int64_t active() const;
  // Prompt tokens that would be reused if `prompt` started on this slot.
  int64_t reusable(int64_t slot, const std::vector<int32_t>& prompt) const;

  // Starts a request on an idle slot; it joins the batch at the next step.
  Status start(int64_t slot, SlotRequest req);
  // Ends the slot's request at the next step (reason kCancelled).
  void stop(int64_t slot);
  // One forward pass; appends what each slot produced to *events. A slot
  // whose event has done=true is idle again.
  Status step(std::vector<SlotEvent>* events);

 private:
  enum class State { kIdle, kPrefill, kDecode };
  struct Slot {
    State state = State::kIdle;
    SlotRequest req;
    int64_t fed = 0;        // prompt tokens in the cache
    int64_t reused = 0;
    int64_t generated = 0;
    bool stop = false;
    std::vector<int32_t> cached;   // tokens the cache holds, in order
    std::vector<int32_t> history;  // prompt + output, for the repetition penalty
    std::vector<int32_t> counts;   // generated-token counts (only when penalised)
    std::vector<int32_t> seen;     // distinct generated tokens, where counts > 0
    std::optional<TextStream> text;
    Sampler sampler;
  };
  Batcher() = default;
  // Samples the slot's next token from its logits row; false when it ended.
  bool advance(int64_t s, SlotEvent* ev);
  void finish(int64_t s, StopReason r, SlotEvent* ev);

  std::shared_ptr<const Model> model_;
  std::shared_ptr<const Tokenizer> tok_;
  const kernels::KernelTable* k_ = nullptr;
  std::unique_ptr<kernels::ThreadPool> pool_;
  KvCache cache_;
  ForwardScratch scratch_;
  std::unique_ptr<PipelineSession> pipe_;  // across MPI ranks; null otherwise
  std::vector<float> logits_;  // one row per slot, then the forward pass's output rows
  std::vector<BatchEntry> batch_;
  std::vector<Slot> slots_;
  int64_t batch_cap_ = 0;
  int64_t next_prefill_ = 0;  // round-robin start among prefilling slots
};

}  // namespace cria
