#include "runtime/dist/worker.h"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "runtime/dist/comm.h"
#include "runtime/model/model.h"
#include "runtime/model/transformer.h"

namespace cria::dist {

namespace {

struct SessionState {
  KvCache cache;
  ForwardScratch scratch;
};

class Worker {
 public:
  Worker(const Options& o, int rank, int size) : opt_(o), rank_(rank), size_(size), sum_(size, o.timeout_s) {
    parse_fault();
  }

  int run() {
    for (;;) {
      Message m;
      Status st = recv_message(rank_ - 1, kTagChain, -1, &m);
      if (!st.ok()) {
        std::fprintf(stderr, "cria: rank %d: %s\n", rank_, st.message().c_str());
        return 1;
      }
      const Header h = m.header();
      if (h.op == Op::kShutdown) {
        (void)pass_on(m);  // a rank that is gone is ended by rank 0 or mpirun
        (void)replies_.flush(opt_.timeout_s);  // rank 0 took them all before the shutdown
        return 0;
      }
      st = handle(m);
      if (!st.ok()) report(st);
    }
  }

 private:
  bool last() const { return rank_ == size_ - 1; }

  Status pass_on(const Message& m) {
    if (last()) return Status::Ok();
    return send_message(m.bytes, rank_ + 1, kTagChain, opt_.timeout_s);
  }

  // Tells rank 0 what went wrong here; rank 0 fails the call that waits.
  void report(const Status& st) {
    Header h;
    h.op = Op::kError;
    h.a = rank_;
    h.b = st.code() == Code::kIo ? 1 : 0;
    const std::string text = st.message();
    std::vector<uint8_t> buf;
    std::memcpy(begin_message(&buf, h, text.size()), text.data(), text.size());
    (void)send_message(buf, 0, kTagReply, opt_.timeout_s);
  }

  Status handle(const Message& m) {
    const Header& h = m.header();
    switch (h.op) {
      case Op::kHello: {
        Status st = hello(m);
        if (st.ok()) {
          Header r;
          r.op = Op::kReply;
          std::vector<uint8_t> buf;
          begin_message(&buf, r, 0);
          CRIA_RETURN_IF_ERROR(send_message(buf, 0, kTagReply, opt_.timeout_s));
        } else {
          report(st);
        }
        return pass_on(m);
      }
      case Op::kOpen: {
        CRIA_RETURN_IF_ERROR(pass_on(m));
        if (!model_) return Error(Code::kInternal, "a session before the model");
        auto s = std::make_unique<SessionState>();
        CRIA_RETURN_IF_ERROR(
            s->cache.init(model_->config(), h.a, h.b, (kernels::KvType)h.c, model_->layer_begin(), model_->layer_end()));
        s->scratch.init(*model_, h.d, pool_->threads());
        sessions_[h.sid] = std::move(s);
        return Status::Ok();
      }
      case Op::kClose:
        sessions_.erase(h.sid);
        return pass_on(m);
      case Op::kCopy: {
        CRIA_RETURN_IF_ERROR(pass_on(m));
        auto it = sessions_.find(h.sid);
        if (it == sessions_.end()) return Error(Code::kInternal, "no session " + std::to_string(h.sid));
        it->second->cache.copy_rows(h.a, h.b, h.c);
        return Status::Ok();
      }
      case Op::kForward: return forward(m);
      default: return Error(Code::kInternal, "unknown message " + std::to_string((int)h.op));
    }
  }

  Status hello(const Message& m) {
    const Header& h = m.header();
    if (h.n != size_ || m.payload_size() != (size_t)size_ * 2 * sizeof(int64_t))
      return Error(Code::kInternal, "rank 0 sent a hello for another job size");
    if (opt_.model_path.empty()) return Error(Code::kInvalidArgument, "no model file on this rank's command line");
    CRIA_ASSIGN_OR_RETURN(std::unique_ptr<ModelFile> f, ModelFile::open(opt_.model_path));
    const uint64_t mine = file_identity(*f);
    if (mine != (uint64_t)h.a || (int64_t)f->config().num_layers != h.b) {
      char s[200];
      std::snprintf(s, sizeof s, " differs from rank 0's (header hash %016llx here, %016llx there)",
                    (unsigned long long)mine, (unsigned long long)h.a);
      return Error(Code::kInvalidArgument, opt_.model_path + s +
                                               ": every rank must run the same .cria file with the same cria version");
    }
    const auto* r = reinterpret_cast<const int64_t*>(m.payload());
    ModelOptions mo;
    mo.backend = opt_.backend;
    CRIA_ASSIGN_OR_RETURN(mo.weights, parse_weight_memory(opt_.weights));
    mo.layer_begin = r[2 * rank_];
    mo.layer_end = r[2 * rank_ + 1];
    tensors_ = h.d == 1;
    if (tensors_) {
      // This rank's shard of every layer; rank 0 alone holds the head.
      mo.shard_index = rank_;
      mo.shard_count = size_;
      mo.head = false;
    }
    CRIA_ASSIGN_OR_RETURN(model_, Model::create(std::move(f), mo));
    std::string err;
    k_ = kernels::requested_table(&err);
    if (!k_) return Error(Code::kInvalidArgument, err);
    const int threads = opt_.threads > 0 ? (int)opt_.threads : (int)std::max(1u, std::thread::hardware_concurrency());
    pool_ = std::make_unique<kernels::ThreadPool>(threads);
    return Status::Ok();
  }

  Status forward(const Message& m) {
    const Header& h = m.header();
    auto it = sessions_.find(h.sid);
    if (it == sessions_.end()) return Error(Code::kInternal, "no session " + std::to_string(h.sid));
    SessionState& s = *it->second;
    const int64_t n = h.n, hs = model_->config().hidden_size, vocab = model_->config().vocab_size;
    const auto* batch = reinterpret_cast<const BatchEntry*>(m.payload());
    if (tensors_) {
      if (n < 1 || n > s.scratch.max_tokens || m.payload_size() != (size_t)n * sizeof(BatchEntry))
        return Error(Code::kInternal, "a forward message of the wrong size");
      // The next rank starts as soon as it can: the ranks meet in forward's sums.
      CRIA_RETURN_IF_ERROR(pass_on(m));
      maybe_fail();
      LayerSpan span;
      span.reduce = &sum_;
      span.no_head = true;
      return cria::forward(*model_, *k_, *pool_, s.cache, s.scratch, batch, n, nullptr, span);
    }
    if (n < 1 || n > s.scratch.max_tokens ||
        m.payload_size() != (size_t)n * (sizeof(BatchEntry) + hs * sizeof(float)))
      return Error(Code::kInternal, "a forward message of the wrong size");
    LayerSpan span;
    span.begin = model_->layer_begin();
    span.end = model_->layer_end();
    span.hidden_in = reinterpret_cast<const float*>(m.payload() + n * sizeof(BatchEntry));
    maybe_fail();
    if (!last()) {
      // The next rank gets the same header and entries, and this rank's output.
      uint8_t* p = begin_message(&out_, h, m.payload_size());
      std::memcpy(p, batch, (size_t)n * sizeof(BatchEntry));
      span.hidden_out = reinterpret_cast<float*>(p + n * sizeof(BatchEntry));
      CRIA_RETURN_IF_ERROR(cria::forward(*model_, *k_, *pool_, s.cache, s.scratch, batch, n, nullptr, span));
      return send_message(out_, rank_ + 1, kTagChain, opt_.timeout_s);
    }
    int64_t rows = 0;
    for (int64_t t = 0; t < n; ++t) rows += batch[t].logits ? 1 : 0;
    Header r;
    r.op = Op::kReply;
    r.sid = h.sid;
    r.n = rows;
    // Sent without waiting (SendQueue): rank 0 takes it after sending the
    // rest of its micro-batches.
    auto* logits = reinterpret_cast<float*>(begin_message(replies_.next(), r, (size_t)(rows * vocab) * sizeof(float)));
    CRIA_RETURN_IF_ERROR(cria::forward(*model_, *k_, *pool_, s.cache, s.scratch, batch, n, logits, span));
    return replies_.start(0, kTagReply);
  }

  // Test hook (tests/mpi): CRIA_DIST_TEST_FAULT=kill:K or stop:K makes rank
  // 1 die (SIGKILL) or freeze (SIGSTOP, as a hung board or a cut cable
  // looks to the others) on its K-th forward message.
  void parse_fault() {
    const char* f = std::getenv("CRIA_DIST_TEST_FAULT");
    if (!f || rank_ != 1) return;
    const std::string s = f;
    const size_t colon = s.find(':');
    if (colon == std::string::npos) return;
    fault_signal_ = s.substr(0, colon) == "kill" ? SIGKILL : s.substr(0, colon) == "stop" ? SIGSTOP : 0;
    fault_after_ = std::atoi(s.c_str() + colon + 1);
  }
  void maybe_fail() {
    if (fault_signal_ && ++forwards_ >= fault_after_) std::raise(fault_signal_);
  }

  Options opt_;
  int rank_, size_;
  bool tensors_ = false;  // --split tensors: a shard of every layer
  RankOrderSum sum_;
  std::unique_ptr<Model> model_;
  const kernels::KernelTable* k_ = nullptr;
  std::unique_ptr<kernels::ThreadPool> pool_;
  std::map<int32_t, std::unique_ptr<SessionState>> sessions_;
  std::vector<uint8_t> out_;
  SendQueue replies_;  // the last rank's replies to rank 0
  int fault_signal_ = 0, fault_after_ = 0, forwards_ = 0;
};

}  // namespace

int run_worker(const Options& opt, int rank, int size) { return Worker(opt, rank, size).run(); }

}  // namespace cria::dist
