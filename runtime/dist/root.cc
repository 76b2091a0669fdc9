#include "runtime/dist/root.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "runtime/model/shard.h"

namespace cria::dist {

namespace {

// A worker's kError reply as a Status naming the rank; b = 1 when its
// failure was an exchange with another rank (the chain is then broken).
Status worker_error(const Message& m) {
  const std::string text(reinterpret_cast<const char*>(m.payload()), m.payload_size());
  return Error(m.header().b ? Code::kIo : Code::kInternal, rank_name((int)m.header().a) + ": " + text);
}

class RootSession : public PipelineSession {
 public:
  RootSession(RootPipeline* p, int32_t sid, int64_t vocab) : p_(p), sid_(sid), vocab_(vocab) {}
  ~RootSession() override {
    if (p_->broken()) return;
    Header h;
    h.op = Op::kClose;
    h.sid = sid_;
    begin_message(&buf_, h, 0);
    (void)p_->send_next(buf_);
  }

  Status forward(const LocalStage& st, const BatchEntry* batch, int64_t n, float* logits) override {
    if (p_->tensors()) return forward_tensors(st, batch, n, logits);
    // Micro-batches: this rank runs its layers on each part and sends it on
    // at once, so the next rank computes part i while this one computes
    // part i + 1. A part continues its sequences where the one before left
    // off; every rank applies the parts in order, so each token still sees
    // the cache rows of the tokens before it. Only for batches large enough
    // to be compute-bound: a decode step of a few tokens reads all of a
    // rank's weights per part, so splitting it would cost, not save.
    const int64_t min_part = p_->options().micro_batch;
    const int64_t parts = min_part > 0 ? std::max<int64_t>(1, std::min<int64_t>(2 * p_->size(), n / min_part)) : 1;
    int64_t want = 0;
    for (int64_t t = 0; t < n; ++t) want += batch[t].logits ? 1 : 0;
    for (int64_t i = 0; i < parts; ++i) {
      const int64_t t0 = n * i / parts, t1 = n * (i + 1) / parts;
      CRIA_RETURN_IF_ERROR(send_part(st, batch + t0, t1 - t0));
    }
    p_->count_parts(parts);
    if (want == 0 && p_->may_defer()) {
      p_->defer(parts);
      return Status::Ok();
    }
    CRIA_RETURN_IF_ERROR(p_->drain());
    // The parts' logits rows, in order.
    for (int64_t i = 0; i < parts; ++i) {
      const int64_t t0 = n * i / parts, t1 = n * (i + 1) / parts;
      int64_t rows = 0;
      for (int64_t t = t0; t < t1; ++t) rows += batch[t].logits ? 1 : 0;
      Message m;
      CRIA_RETURN_IF_ERROR(p_->recv_reply(&m));
      const Header& r = m.header();
      if (r.op != Op::kReply || r.sid != sid_ || r.n != rows ||
          m.payload_size() != (size_t)(rows * vocab_) * sizeof(float))
        return Error(Code::kInternal, "pipeline: " + rank_name(m.from) + " answered out of turn");
      if (rows) std::memcpy(logits, m.payload(), m.payload_size());
      logits += rows * vocab_;
    }
    return Status::Ok();
  }

  // This rank's layers on n entries, then their hidden states to rank 1.
  Status send_part(const LocalStage& st, const BatchEntry* batch, int64_t n) {
    const int64_t hs = st.model->config().hidden_size;
    Header h;
    h.op = Op::kForward;
    h.sid = sid_;
    h.n = n;
    uint8_t* p = begin_message(&buf_, h, (size_t)n * (sizeof(BatchEntry) + hs * sizeof(float)));
    std::memcpy(p, batch, (size_t)n * sizeof(BatchEntry));
    LayerSpan span;
    span.end = p_->local_end();
    span.hidden_out = reinterpret_cast<float*>(p + n * sizeof(BatchEntry));
    CRIA_RETURN_IF_ERROR(cria::forward(*st.model, *st.k, *st.pool, *st.cache, *st.scratch, batch, n, nullptr, span));
    return p_->send_next(buf_);
  }

  // Every rank runs every layer on its shard of the weights: the batch goes
  // down the chain first, then each rank's partial sums meet in the
  // exchanges of forward() (RankOrderSum). Only rank 0 holds the output
  // head, so no logits cross the network and nothing is sent back.
  Status forward_tensors(const LocalStage& st, const BatchEntry* batch, int64_t n, float* logits) {
    Header h;
    h.op = Op::kForward;
    h.sid = sid_;
    h.n = n;
    std::memcpy(begin_message(&buf_, h, (size_t)n * sizeof(BatchEntry)), batch, (size_t)n * sizeof(BatchEntry));
    CRIA_RETURN_IF_ERROR(p_->send_next(buf_));
    LayerSpan span;
    span.reduce = p_->sum();
    return p_->check(cria::forward(*st.model, *st.k, *st.pool, *st.cache, *st.scratch, batch, n, logits, span));
  }

  Status copy_rows(const LocalStage& st, int64_t src, int64_t dst, int64_t n_pos) override {
    st.cache->copy_rows(src, dst, n_pos);
    Header h;
    h.op = Op::kCopy;
    h.sid = sid_;
    h.a = src;
    h.b = dst;
    h.c = n_pos;
    begin_message(&buf_, h, 0);
    return p_->send_next(buf_);
  }

 private:
  RootPipeline* p_;
  int32_t sid_;
  int64_t vocab_;
  std::vector<uint8_t> buf_;  // reused: a decode step allocates nothing once warm
};

}  // namespace

Status RootPipeline::check(Status st) {
  // A failed exchange leaves the chain in an unknown state: stop using it.
  if (!st.ok() && st.code() == Code::kIo) broken_ = true;
  return st;
}

Status RootPipeline::send_next(const std::vector<uint8_t>& buf) {
  if (broken_) return Error(Code::kIo, "the MPI job lost a rank earlier");
  return check(send_message(buf, 1, kTagChain, opt_.timeout_s));
}

Status RootPipeline::recv_reply(Message* m) {
  if (broken_) return Error(Code::kIo, "the MPI job lost a rank earlier");
  CRIA_RETURN_IF_ERROR(check(recv_message(MPI_ANY_SOURCE, kTagReply, opt_.timeout_s, m)));
  if (m->header().op == Op::kError) return check(worker_error(*m));
  return Status::Ok();
}

Status RootPipeline::drain() {
  while (pending_ > 0) {
    --pending_;
    Message m;
    CRIA_RETURN_IF_ERROR(recv_reply(&m));
    if (m.header().op != Op::kReply || m.header().n != 0)
      return Error(Code::kInternal, "pipeline: " + rank_name(m.from) + " answered out of turn");
  }
  return Status::Ok();
}

Status RootPipeline::attach(const ModelFile& f, ModelOptions* opt) {
  if (attached_) return Error(Code::kUnsupported, "an MPI job runs one model; this one is already loaded");
  const int64_t n_layers = f.config().num_layers;
  if (tensors()) {
    // Refused here, before any rank loads anything.
    if (!opt_.layer_split.empty())
      return Error(Code::kInvalidArgument, "--layer-split applies to --split layers; --split tensors runs every "
                                           "layer on every rank");
    CRIA_RETURN_IF_ERROR(check_tensor_split(f, size_));
    ranges_.assign((size_t)size_, {0, n_layers});
  } else if (!opt_.layer_split.empty() || opt_.mem_available.size() != (size_t)size_) {
    CRIA_ASSIGN_OR_RETURN(ranges_, layer_ranges(n_layers, size_, opt_.layer_split));
  } else {
    const TensorRef* head = f.find("output.weight");
    if (!head) head = f.find("tok_embd.weight");  // tied
    CRIA_ASSIGN_OR_RETURN(ranges_, layer_ranges_by_memory(n_layers, head ? (int64_t)head->size : 0,
                                                          opt_.mem_available));
    CRIA_ASSIGN_OR_RETURN(auto even, layer_ranges(n_layers, size_, {}));
    if (ranges_ != even) {  // boards of different sizes: say how they were shared
      std::string line = "cria: layers by each rank's free memory:";
      for (int i = 0; i < size_; ++i) {
        char part[96];
        std::snprintf(part, sizeof part, "%s rank %d %.1f GiB -> %lld", i ? "," : "", i,
                      (double)opt_.mem_available[(size_t)i] / (1ull << 30),
                      (long long)(ranges_[(size_t)i].second - ranges_[(size_t)i].first));
        line += part;
      }
      std::fprintf(stderr, "%s (--layer-split to choose)\n", line.c_str());
    }
  }
  attached_ = true;
  Header h;
  h.op = Op::kHello;
  h.n = size_;
  h.a = (int64_t)file_identity(f);
  h.b = n_layers;
  h.c = (int64_t)(opt_.timeout_s * 1000);
  h.d = tensors() ? 1 : 0;
  std::vector<uint8_t> buf;
  auto* r = reinterpret_cast<int64_t*>(begin_message(&buf, h, (size_t)size_ * 2 * sizeof(int64_t)));
  for (int i = 0; i < size_; ++i) {
    r[2 * i] = ranges_[i].first;
    r[2 * i + 1] = ranges_[i].second;
  }
  CRIA_RETURN_IF_ERROR(send_next(buf));
  // Every worker answers once it has checked the file and placed its
  // layers; placing (packing weights for a backend) may take much longer
  // than one exchange, hence the longer bound.
  Status first_error;
  for (int i = 1; i < size_; ++i) {
    Message m;
    Status st = check(recv_message(MPI_ANY_SOURCE, kTagReply, opt_.timeout_s * 10, &m));
    if (!st.ok()) return st;
    if (m.header().op == Op::kError && first_error.ok()) first_error = check(worker_error(m));
  }
  CRIA_RETURN_IF_ERROR(first_error);
  opt->layer_begin = ranges_[0].first;
  opt->layer_end = ranges_[0].second;
  if (tensors()) {
    opt->shard_index = 0;
    opt->shard_count = size_;
  }
  return Status::Ok();
}

Result<std::unique_ptr<PipelineSession>> RootPipeline::open_session(const ModelConfig& c, int64_t n_seq,
                                                                     int64_t n_ctx, kernels::KvType kv,
                                                                     int64_t max_tokens) {
  if (!attached_) return Error(Code::kInternal, "pipeline: a session before the model");
  Header h;
  h.op = Op::kOpen;
  h.sid = next_sid_++;
  h.a = n_seq;
  h.b = n_ctx;
  h.c = (int64_t)kv;
  h.d = max_tokens;
  std::vector<uint8_t> buf;
  begin_message(&buf, h, 0);
  CRIA_RETURN_IF_ERROR(send_next(buf));
  return std::unique_ptr<PipelineSession>(new RootSession(this, h.sid, c.vocab_size));
}

int RootPipeline::finish(int rc) {
  if (broken_) {
    std::fprintf(stderr, "cria: ending every rank of the MPI job\n");
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, rc ? rc : 1);
  }
  // A deferred reply that reports an error no longer matters on the way out;
  // an exchange that fails here does (broken_).
  Status drained = drain();
  if (broken_) {
    std::fprintf(stderr, "cria: %s; ending every rank of the MPI job\n", drained.message().c_str());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  if (const char* v = std::getenv("CRIA_MPI_STATS"); v && *v == '1' && !tensors())
    std::fprintf(stderr, "cria: pipeline: %lld forward calls sent down the chain as %lld micro-batches\n",
                 (long long)calls_, (long long)parts_);
  Header h;
  h.op = Op::kShutdown;
  std::vector<uint8_t> buf;
  begin_message(&buf, h, 0);
  if (!send_next(buf).ok()) {
    std::fprintf(stderr, "cria: rank 1 did not take the shutdown; ending every rank of the MPI job\n");
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  return rc;
}

}  // namespace cria::dist
