#include "runtime/engine/batcher.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <thread>

namespace cria {

Result<std::unique_ptr<Batcher>> Batcher::create(std::shared_ptr<const Model> model,
                                                 std::shared_ptr<const Tokenizer> tokenizer,
                                                 const SessionOptions& opt) {
  const ModelConfig& c = model->config();
  if (!opt.pipeline && (model->layer_begin() != 0 || model->layer_end() != (int64_t)c.num_layers))
    return Error(Code::kInvalidArgument, "this model holds only some of its layers: a batcher needs the pipeline");
  CRIA_ASSIGN_OR_RETURN(const ResolvedOptions r, resolve_options(c, opt));
  const int64_t n_ctx = r.n_ctx;
  const int threads = r.threads;
  std::unique_ptr<Batcher> b(new Batcher());
  b->model_ = std::move(model);
  b->tok_ = std::move(tokenizer);
  b->k_ = r.kernels;
  b->pool_ = std::make_unique<kernels::ThreadPool>(threads);
  CRIA_RETURN_IF_ERROR(check_kv_fits(*b->model_, opt.n_seq, n_ctx, opt.kv));
  const Model& m = *b->model_;
  CRIA_RETURN_IF_ERROR(b->cache_.init(c, opt.n_seq, n_ctx, opt.kv, m.layer_begin(), m.layer_end()));
  // Room for every slot's decode token plus a prefill chunk.
  b->batch_cap_ = std::max<int64_t>(opt.batch, opt.n_seq);
  // Across MPI ranks (runtime/dist) every step's batch goes down the
  // pipeline: the other ranks hold the same slots for their layers.
  if (opt.pipeline) {
    CRIA_ASSIGN_OR_RETURN(b->pipe_, opt.pipeline->open_session(c, opt.n_seq, n_ctx, opt.kv, b->batch_cap_));
  }
  b->scratch_.init(*b->model_, b->batch_cap_, threads);
  // Logits rows: one per slot, then at most one per slot from a pass (a
  // decode token or a prompt's last token, never both).
  b->logits_.assign((size_t)(2 * opt.n_seq * c.vocab_size), 0.0f);
  b->batch_.resize(b->batch_cap_);
  b->slots_.resize(opt.n_seq);
  for (Slot& s : b->slots_) s.cached.reserve(n_ctx);
  return b;
}

int64_t Batcher::active() const {
  int64_t n = 0;
  for (const Slot& s : slots_) n += s.state != State::kIdle;
  return n;
}

int64_t Batcher::reusable(int64_t slot, const std::vector<int32_t>& prompt) const {
  const std::vector<int32_t>& c = slots_[slot].cached;
  int64_t n = 0;
  // The last prompt token always runs: its logits start the answer.
  while (n < (int64_t)c.size() && n + 1 < (int64_t)prompt.size() && c[n] == prompt[n]) ++n;
  return n;
}

Status Batcher::start(int64_t slot, SlotRequest req) {
  if (slot < 0 || slot >= slots() || !idle(slot)) return Error(Code::kInvalidArgument, "slot is not free");
  const int64_t vocab = model_->config().vocab_size;
  if (req.prompt.empty()) return Error(Code::kInvalidArgument, "empty prompt");
  if ((int64_t)req.prompt.size() >= cache_.n_ctx)
    return Error(Code::kOutOfRange, "the prompt has " + std::to_string(req.prompt.size()) +
                                        " tokens but the context holds " + std::to_string(cache_.n_ctx));
  for (int32_t t : req.prompt)
    if (t < 0 || t >= vocab) return Error(Code::kInvalidArgument, "token id " + std::to_string(t) + " out of range");
  for (const auto& [id, bias] : req.logit_bias)
    if (id < 0 || id >= vocab) return Error(Code::kInvalidArgument, "logit_bias token " + std::to_string(id) + " out of range");
  Slot& s = slots_[slot];
  s.reused = reusable(slot, req.prompt);
  s.fed = s.reused;
  s.cached.resize(s.reused);
  s.generated = 0;
  s.stop = false;
  s.history.assign(req.prompt.begin(), req.prompt.end());
  s.seen.clear();
  if (req.presence_penalty != 0 || req.frequency_penalty != 0) s.counts.assign(vocab, 0);
  else s.counts.clear();
  s.sampler.init((int32_t)vocab, req.sampling);
  s.text.emplace(*tok_, req.stop_strings);
  s.req = std::move(req);
  s.state = State::kPrefill;
  return Status::Ok();
}

void Batcher::stop(int64_t slot) {
  if (slot >= 0 && slot < slots() && !idle(slot)) slots_[slot].stop = true;
}

void Batcher::finish(int64_t s, StopReason r, SlotEvent* ev) {
  Slot& sl = slots_[s];
  ev->done = true;
  ev->reason = r;
  if (r != StopReason::kCancelled) ev->text.append(sl.text->flush());
  ev->prompt_tokens = (int64_t)sl.req.prompt.size();
  ev->reused_tokens = sl.reused;
  ev->generated_tokens = sl.generated;
  sl.state = State::kIdle;
}

bool Batcher::advance(int64_t s, SlotEvent* ev) {
  Slot& sl = slots_[s];
  const SlotRequest& r = sl.req;
  const int64_t vocab = model_->config().vocab_size;
  float* row = logits_.data() + s * vocab;
  for (const auto& [id, bias] : r.logit_bias) row[id] += bias;
  for (int32_t t : sl.seen)
    row[t] -= (float)sl.counts[t] * r.frequency_penalty + r.presence_penalty;
  if (sl.generated < r.min_new_tokens)
    for (int32_t id : r.stop_ids)
      if (id >= 0 && id < vocab) row[id] = -std::numeric_limits<float>::infinity();
  const int32_t tok = sl.sampler.sample(row, sl.history.data(), (int64_t)sl.history.size());
  ev->token = tok;
  if (std::find(r.stop_ids.begin(), r.stop_ids.end(), tok) != r.stop_ids.end()) {
    finish(s, StopReason::kEos, ev);
    return false;
  }
  sl.history.push_back(tok);
  if (!sl.counts.empty() && sl.counts[tok]++ == 0) sl.seen.push_back(tok);
  ++sl.generated;
  ev->text.append(sl.text->push(tok));
  const int64_t max_new = r.max_new_tokens > 0 ? r.max_new_tokens : cache_.n_ctx;
  StopReason stop = StopReason::kNone;
  if (sl.text->stopped()) stop = StopReason::kStopString;
  else if (sl.generated >= max_new) stop = StopReason::kMaxTokens;
  else if ((int64_t)sl.cached.size() >= cache_.n_ctx) stop = StopReason::kContextFull;
  if (stop != StopReason::kNone) {
    finish(s, stop, ev);
    return false;
  }
  return true;
}

Status Batcher::step(std::vector<SlotEvent>* events) {
  const int64_t vocab = model_->config().vocab_size;
  const int64_t n = slots();
  int64_t nb = 0;
  std::vector<int64_t> owners;  // slot of each logits row of this pass, in batch order
  // Decoding slots: sample from the logits the last pass left, feed the token.
  for (int64_t s = 0; s < n; ++s) {
    Slot& sl = slots_[s];
    if (sl.state == State::kIdle) continue;
    if (sl.stop) {
      SlotEvent ev;
      ev.slot = s;
      finish(s, StopReason::kCancelled, &ev);
      events->push_back(std::move(ev));
      continue;
    }
    if (sl.state != State::kDecode) continue;
    SlotEvent ev;
    ev.slot = s;
    if (advance(s, &ev)) {
      batch_[nb++] = {ev.token, (int32_t)sl.cached.size(), (int32_t)s, true};
      sl.cached.push_back(ev.token);
      owners.push_back(s);
    }
    events->push_back(std::move(ev));
  }
  // Prefilling slots fill the rest of the batch, starting from a rotating
  // slot so that one long prompt cannot starve the others.
  for (int64_t i = 0; i < n && nb < batch_cap_; ++i) {
    const int64_t s = (next_prefill_ + i) % n;
    Slot& sl = slots_[s];
    if (sl.state != State::kPrefill) continue;
    const std::vector<int32_t>& p = sl.req.prompt;
    while (nb < batch_cap_ && sl.fed < (int64_t)p.size()) {
      const bool last = sl.fed + 1 == (int64_t)p.size();
      batch_[nb++] = {p[sl.fed], (int32_t)sl.fed, (int32_t)s, last};
      sl.cached.push_back(p[sl.fed]);
      ++sl.fed;
      if (last) {
        owners.push_back(s);
        sl.state = State::kDecode;
      }
    }
  }
  next_prefill_ = (next_prefill_ + 1) % n;
  if (nb == 0) return Status::Ok();
  float* rows = logits_.data() + n * vocab;
  if (pipe_)
    CRIA_RETURN_IF_ERROR(pipe_->forward({model_.get(), k_, pool_.get(), &cache_, &scratch_}, batch_.data(), nb, rows));
  else
    CRIA_RETURN_IF_ERROR(forward(*model_, *k_, *pool_, cache_, scratch_, batch_.data(), nb, rows));
  for (size_t j = 0; j < owners.size(); ++j)
    std::memcpy(logits_.data() + owners[j] * vocab, rows + j * vocab, vocab * sizeof(float));
  return Status::Ok();
}

}  // namespace cria
