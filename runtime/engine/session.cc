#include "runtime/engine/session.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <thread>

#include "runtime/engine/text_stream.h"

namespace cria {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

constexpr int64_t kScoreBatch = 64;

}  // namespace

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::kNone: return "none";
    case StopReason::kEos: return "eos";
    case StopReason::kMaxTokens: return "max_tokens";
    case StopReason::kStopString: return "stop_string";
    case StopReason::kContextFull: return "context_full";
    case StopReason::kCancelled: return "cancelled";
    case StopReason::kCallback: return "callback";
  }
  return "?";
}

Result<ResolvedOptions> resolve_options(const ModelConfig& c, const SessionOptions& opt) {
  if (opt.threads < 0) return Error(Code::kInvalidArgument, "threads must be positive (or 0 for all cores)");
  if (opt.n_ctx < 0) return Error(Code::kInvalidArgument, "context length must be positive");
  if (opt.n_seq < 1 || opt.n_seq > 64) return Error(Code::kInvalidArgument, "sequences (slots) must be 1..64");
  if (opt.batch < 1) return Error(Code::kInvalidArgument, "batch must be positive");
  ResolvedOptions r;
  r.threads = opt.threads ? opt.threads : (int)std::max(1u, std::thread::hardware_concurrency());
  r.n_ctx = opt.n_ctx ? opt.n_ctx : std::min<int64_t>(c.max_position_embeddings, 4096);
  if (r.n_ctx > (int64_t)c.max_position_embeddings)
    return Error(Code::kInvalidArgument, "context length " + std::to_string(r.n_ctx) + " exceeds the model's " +
                                             std::to_string(c.max_position_embeddings));
  std::string isa_err;
  r.kernels = kernels::requested_table(&isa_err);
  if (!r.kernels) return Error(Code::kInvalidArgument, isa_err);
  return r;
}

Status check_kv_fits(const Model& m, int64_t n_seq, int64_t n_ctx, kernels::KvType kv) {
#ifdef __EMSCRIPTEN__
  (void)m, (void)n_seq, (void)n_ctx, (void)kv;
  return Status::Ok();
#else
  const ModelConfig& c = m.config();
  // A rank of a layer pipeline (runtime/dist) holds its layers' share of
  // the cache and, roughly, of the file.
  const double layers = (double)(m.layer_end() - m.layer_begin());
  const double per_pos = 2.0 * layers * (double)n_seq * (double)c.num_kv_heads *
                         (double)kernels::kv_row_bytes(kv, c.head_dim);
  const double phys = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
  const double model = (double)m.file().file_size() * layers / (double)c.num_layers;
  if (phys <= 0 || model + per_pos * (double)n_ctx <= phys) return Status::Ok();
  const double gib = 1024.0 * 1024 * 1024;
  const int64_t fit = phys > model ? (int64_t)((phys - model) / per_pos) / 1024 * 1024 : 0;
  char msg[320];
  std::snprintf(msg, sizeof msg,
                "a context of %lld positions needs a %.1f GiB KV cache (%s), which with the model's %.1f GiB "
                "exceeds this machine's %.1f GiB of memory; ",
                (long long)n_ctx, per_pos * (double)n_ctx / gib, kernels::kv_type_name(kv), model / gib, phys / gib);
  std::string hint = fit > 0 ? "use --ctx " + std::to_string(fit) + " or less" : std::string("the model alone does not fit");
  if (fit > 0 && kv != kernels::KvType::kQ4) hint += ", or a smaller cache type (--kv q8 or q4)";
  return Error(Code::kOutOfMemory, std::string(msg) + hint);
#endif
}

Result<std::unique_ptr<Session>> Session::create(std::shared_ptr<const Model> model,
                                                 std::shared_ptr<const Tokenizer> tokenizer,
                                                 const SessionOptions& opt) {
  const ModelConfig& c = model->config();
  CRIA_ASSIGN_OR_RETURN(const ResolvedOptions r, resolve_options(c, opt));
  std::unique_ptr<Session> s(new Session());
  s->model_ = std::move(model);
  s->tok_ = std::move(tokenizer);
  const int64_t n_ctx = r.n_ctx;
  s->k_ = r.kernels;
  s->pool_ = std::make_unique<kernels::ThreadPool>(r.threads);
  const Model& m = *s->model_;
  CRIA_RETURN_IF_ERROR(check_kv_fits(m, opt.n_seq, n_ctx, opt.kv));
  CRIA_RETURN_IF_ERROR(s->cache_.init(c, opt.n_seq, n_ctx, opt.kv, m.layer_begin(), m.layer_end()));
  s->batch_cap_ = std::max<int64_t>(std::min<int64_t>(opt.batch, n_ctx), opt.n_seq);
  if (opt.pipeline) {
    CRIA_ASSIGN_OR_RETURN(s->pipe_, opt.pipeline->open_session(c, opt.n_seq, n_ctx, opt.kv, s->batch_cap_));
  } else if (m.layer_begin() != 0 || m.layer_end() != (int64_t)c.num_layers) {
    return Error(Code::kInvalidArgument, "this model holds only some of its layers: a session needs the pipeline");
  }
  s->scratch_.init(*s->model_, s->batch_cap_, r.threads);
  s->logits_.assign((size_t)(std::max<int64_t>(2 * opt.n_seq, std::min(kScoreBatch, s->batch_cap_)) * c.vocab_size), 0.0f);
  s->batch_.resize(s->batch_cap_);
  s->samplers_.resize(opt.n_seq);
  s->history_.resize(opt.n_seq);
  s->pos_.assign(opt.n_seq, 0);
  for (auto& h : s->history_) h.reserve(n_ctx);
  // One sequence of a model wholly on a GPU: decode runs the whole layer
  // stack on the device. (The device cache is f16, so another host cache
  // type keeps the host loop; so does a model split across MPI ranks.)
  if (opt.n_seq == 1 && opt.kv == kernels::KvType::kF16 && !s->pipe_) {
    auto d = make_device_decoder(*s->model_, n_ctx);
    if (!d.ok())
      return d.status().with_prefix("the KV cache of " + std::to_string(n_ctx) +
                                    " positions does not fit the device (a smaller --ctx, or --gpu-layers N)");
    s->dev_ = std::move(d).value();
  }
  return s;
}

Status Session::run_forward(const BatchEntry* batch, int64_t n, float* logits) {
  if (pipe_) return pipe_->forward({model_.get(), k_, pool_.get(), &cache_, &scratch_}, batch, n, logits);
  return forward(*model_, *k_, *pool_, cache_, scratch_, batch, n, logits);
}

Status Session::prefill(const std::vector<const std::vector<int32_t>*>& prompts, int64_t reuse) {
  // All prompts go through the same batches, each token tagged with its
  // sequence: attention keeps them apart. The last token of each prompt
  // asks for logits, which land in that sequence's logits row. The first
  // `reuse` tokens of prompt 0 are already in the cache.
  int64_t total = -reuse;
  for (const auto* p : prompts) total += (int64_t)p->size();
  std::vector<int64_t> next(prompts.size(), 0);
  next[0] = reuse;
  size_t cur = 0;
  for (int64_t done = 0; done < total;) {
    if (cancel_.load()) return Error(Code::kCancelled, "cancelled");
    int64_t m = 0;
    std::vector<int64_t> owners;  // sequence of each logits row of this batch
    while (m < batch_cap_ && done + m < total) {
      while (next[cur] >= (int64_t)prompts[cur]->size()) cur = (cur + 1) % prompts.size();
      const auto& p = *prompts[cur];
      const bool last = next[cur] == (int64_t)p.size() - 1;
      batch_[m++] = {p[next[cur]], (int32_t)next[cur], (int32_t)cur, last};
      if (last) owners.push_back((int64_t)cur);
      ++next[cur];
      // Interleave sequences only when several prompts share the batch.
      if (prompts.size() > 1) cur = (cur + 1) % prompts.size();
    }
    const int64_t vocab = model_->config().vocab_size;
    float* rows = logits_.data() + (int64_t)prompts.size() * vocab;
    CRIA_RETURN_IF_ERROR(run_forward(batch_.data(), m, rows));
    for (size_t r = 0; r < owners.size(); ++r)
      std::memcpy(logits_.data() + owners[r] * vocab, rows + r * vocab, vocab * sizeof(float));
    done += m;
  }
  return Status::Ok();
}

Status Session::generate(const GenerateRequest& req, const TokenCallback& cb, std::vector<SequenceResult>* out,
                         GenerateStats* stats) {
  const ModelConfig& c = model_->config();
  const int64_t vocab = c.vocab_size;
  cancel_.store(false);
  // Either several prompts (one continuation each) or one prompt with
  // num_return_sequences continuations.
  std::vector<const std::vector<int32_t>*> prompts;
  if (!req.prompts.empty()) {
    if (req.num_return_sequences != 1)
      return Error(Code::kInvalidArgument, "num_return_sequences applies to a single prompt");
    for (const auto& p : req.prompts) prompts.push_back(&p);
  } else {
    prompts.push_back(&req.prompt);
  }
  const int64_t nseq = req.prompts.empty() ? req.num_return_sequences : (int64_t)req.prompts.size();
  if (nseq < 1 || nseq > cache_.n_seq)
    return Error(Code::kInvalidArgument, "this session decodes 1.." + std::to_string(cache_.n_seq) +
                                             " sequences at once (asked for " + std::to_string(nseq) + ")");
  int64_t n_prompt = 0;
  for (const auto* p : prompts) {
    if (p->empty()) return Error(Code::kInvalidArgument, "empty prompt");
    if ((int64_t)p->size() >= cache_.n_ctx)
      return Error(Code::kOutOfRange, "prompt of " + std::to_string(p->size()) + " tokens does not fit the context of " +
                                          std::to_string(cache_.n_ctx) + " (it needs room for at least one new token)");
    for (int32_t t : *p)
      if (t < 0 || t >= vocab) return Error(Code::kInvalidArgument, "token id " + std::to_string(t) + " out of range");
    n_prompt += (int64_t)p->size();
  }

  GenerateStats st;
  st.prompt_tokens = n_prompt;
  const auto t0 = Clock::now();
  // A single prompt that starts with what sequence 0's cache already holds
  // (the next turn of a chat) only runs its new tokens; the last prompt
  // token always runs, for its logits.
  int64_t reuse = 0;
  if (prompts.size() == 1) {
    const std::vector<int32_t>& p = *prompts[0];
    while (reuse < (int64_t)cached_.size() && reuse + 1 < (int64_t)p.size() && cached_[reuse] == p[reuse]) ++reuse;
  }
  st.reused_tokens = reuse;
  cached_.clear();
  CRIA_RETURN_IF_ERROR(prefill(prompts, reuse));
  cached_.assign(prompts[0]->begin(), prompts[0]->end());
  // The device decoder continues from the prompt's rows: hand it those it
  // lacks (prefill rewrote everything from `reuse` on).
  const int64_t n_prefilled = (int64_t)prompts[0]->size();
  if (dev_) {
    dev_rows_ = std::min(dev_rows_, reuse);
    CRIA_RETURN_IF_ERROR(dev_->load_kv(cache_, dev_rows_, n_prefilled));
    dev_rows_ = n_prefilled;
  }
  // Extra continuations of a single prompt start from copies of its cache
  // rows instead of recomputing them.
  for (int64_t s = (int64_t)prompts.size(); s < nseq; ++s) {
    if (pipe_) CRIA_RETURN_IF_ERROR(pipe_->copy_rows({model_.get(), k_, pool_.get(), &cache_, &scratch_}, 0, s, n_prefilled));
    else cache_.copy_rows(0, s, n_prefilled);
    std::memcpy(logits_.data() + s * vocab, logits_.data(), vocab * sizeof(float));
  }
  st.prefill_s = seconds_since(t0);

  out->assign(nseq, SequenceResult());
  std::vector<TextStream> streams;
  streams.reserve(nseq);
  const int64_t max_new = req.max_new_tokens > 0 ? req.max_new_tokens : cache_.n_ctx;
  for (int64_t s = 0; s < nseq; ++s) {
    const std::vector<int32_t>& p = *prompts[std::min<int64_t>(s, (int64_t)prompts.size() - 1)];
    samplers_[s].init((int32_t)vocab, req.sampling, (uint64_t)s);
    history_[s].assign(p.begin(), p.end());
    pos_[s] = (int64_t)p.size();
    streams.emplace_back(*tok_, req.stop_strings);
    (*out)[s].tokens.reserve(std::min<int64_t>(max_new, cache_.n_ctx));
    (*out)[s].text.reserve(4096);
  }
  std::vector<int64_t> live(nseq);
  for (int64_t s = 0; s < nseq; ++s) live[s] = s;
  const auto t1 = Clock::now();
  bool first = true;
  auto finish = [&](int64_t s, StopReason r) {
    SequenceResult& res = (*out)[s];
    res.reason = r;
    std::string_view tail = streams[s].flush();
    if (!tail.empty()) {
      res.text.append(tail);
      if (cb) cb(s, tail, -1);
    }
  };
  while (!live.empty()) {
    // Sample the next token of each live sequence from its logits row.
    int64_t nb = 0;
    for (size_t i = 0; i < live.size();) {
      const int64_t s = live[i];
      SequenceResult& res = (*out)[s];
      StopReason stop = StopReason::kNone;
      const int32_t tok =
          samplers_[s].sample(logits_.data() + s * vocab, history_[s].data(), (int64_t)history_[s].size());
      if (first) st.first_token_s = seconds_since(t0);
      if (std::find(req.stop_ids.begin(), req.stop_ids.end(), tok) != req.stop_ids.end()) {
        stop = StopReason::kEos;
      } else {
        res.tokens.push_back(tok);
        history_[s].push_back(tok);
        ++st.generated_tokens;
        std::string_view piece = streams[s].push(tok);
        if (!piece.empty()) {
          res.text.append(piece);
          if (cb && !cb(s, piece, tok)) stop = StopReason::kCallback;
        }
        if (stop == StopReason::kNone && streams[s].stopped()) stop = StopReason::kStopString;
        if (stop == StopReason::kNone && (int64_t)res.tokens.size() >= max_new) stop = StopReason::kMaxTokens;
        if (stop == StopReason::kNone && pos_[s] >= cache_.n_ctx) stop = StopReason::kContextFull;
        if (stop == StopReason::kNone && cancel_.load()) stop = StopReason::kCancelled;
      }
      if (stop != StopReason::kNone) {
        finish(s, stop);
        live.erase(live.begin() + (int64_t)i);
        continue;
      }
      batch_[nb++] = {tok, (int32_t)pos_[s], (int32_t)s, true};
      ++pos_[s];
      ++i;
    }
    first = false;
    if (nb == 0) break;
    if (dev_) {  // one sequence: nb == 1
      CRIA_RETURN_IF_ERROR(dev_->decode(batch_[0].token, batch_[0].pos, logits_.data() + vocab * nseq));
      dev_rows_ = batch_[0].pos + 1;
    } else {
      CRIA_RETURN_IF_ERROR(run_forward(batch_.data(), nb, logits_.data() + vocab * nseq));
    }
    // Logits come back in batch order; move each row to its sequence's slot.
    for (int64_t j = 0; j < nb; ++j)
      std::memcpy(logits_.data() + batch_[j].seq * vocab, logits_.data() + (nseq + j) * vocab, vocab * sizeof(float));
  }
  // Rows decoded on the device back to the host cache, which a next turn's
  // prefill extends.
  if (dev_) CRIA_RETURN_IF_ERROR(dev_->store_kv(cache_, n_prefilled, dev_rows_));
  st.decode_s = seconds_since(t1);
  // Sequence 0's cache now holds its prompt and every generated token but
  // the last (sampled, never fed).
  const std::vector<int32_t>& g0 = (*out)[0].tokens;
  if (!g0.empty()) cached_.insert(cached_.end(), g0.begin(), g0.end() - 1);
  if (stats) *stats = st;
  return Status::Ok();
}

Status Session::score(const int32_t* tokens, int64_t n, int64_t first, double* logprobs) {
  const int64_t vocab = model_->config().vocab_size;
  if (n > cache_.n_ctx) return Error(Code::kOutOfRange, "text of " + std::to_string(n) + " tokens exceeds the context");
  if (first < 0 || first >= n) return Error(Code::kInvalidArgument, "nothing to score");
  for (int64_t i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= vocab) return Error(Code::kInvalidArgument, "token id out of range");
  const int64_t step = std::min(kScoreBatch, batch_cap_);
  cached_.clear();
  dev_rows_ = 0;
  for (int64_t i0 = 0; i0 < n - 1; i0 += step) {
    if (cancel_.load()) return Error(Code::kCancelled, "cancelled");
    const int64_t m = std::min(step, n - 1 - i0);
    for (int64_t j = 0; j < m; ++j) batch_[j] = {tokens[i0 + j], (int32_t)(i0 + j), 0, i0 + j >= first};
    CRIA_RETURN_IF_ERROR(run_forward(batch_.data(), m, logits_.data()));
    int64_t row = 0;
    for (int64_t j = 0; j < m; ++j) {
      if (i0 + j < first) continue;
      const float* l = logits_.data() + (row++) * vocab;
      float mx = *std::max_element(l, l + vocab);
      double sum = 0;
      for (int64_t v = 0; v < vocab; ++v) sum += std::exp((double)l[v] - mx);
      logprobs[i0 + j - first] = (double)l[tokens[i0 + j + 1]] - mx - std::log(sum);
    }
  }
  return Status::Ok();
}

}  // namespace cria
