#include "runtime/dist/comm.h"

#include <chrono>
#include <cstdint>
#include <cstring>
#include <thread>

namespace cria::dist {

namespace {

using Clock = std::chrono::steady_clock;

// Polls `done()` until it is true or the deadline passes. For the first
// 20 ms it only yields the core between polls: a large message crosses in
// many fragments, each needing both ranks to poll MPI's progress engine, and
// sleeping between polls made each 513 KB logits row cost tens of ms (1B q4
// decode on 2 ranks, this machine: 6-12 tok/s sleeping, 10-18 yielding).
// Longer waits are a neighbour computing: the rank then sleeps, growing to
// 1 ms, so it does not take a core from the neighbour's kernels
// (oversubscribed runs, boards with few cores), and to 10 ms once a worker
// has been idle for a second (a chat waiting for its user). A send never
// sleeps: once the receiver takes it, each fragment waits for the sender.
template <class F>
Status poll(double timeout_s, const char* what, int peer, bool never_sleep, F done) {
  const auto t0 = Clock::now();
  int sleep_us = 0;
  for (;;) {
    int flag = 0;
    const int rc = done(&flag);
    if (rc != MPI_SUCCESS)
      return Error(Code::kIo, std::string(what) + " " + rank_name(peer) + " failed: " + mpi_error_text(rc));
    if (flag) return Status::Ok();
    if (timeout_s >= 0 && std::chrono::duration<double>(Clock::now() - t0).count() > timeout_s) {
      char s[64];
      std::snprintf(s, sizeof s, "%g", timeout_s);
      return Error(Code::kIo, std::string(what) + " " + rank_name(peer) + " timed out after " + s + " s: " +
                                  (peer == MPI_ANY_SOURCE ? "a rank" : "that rank") +
                                  " died, hangs, or lost its link (if one forward pass is really that slow, "
                                  "raise the bound with --dist-timeout or CRIA_MPI_TIMEOUT)");
    }
    const double waited = std::chrono::duration<double>(Clock::now() - t0).count();
    if (never_sleep || waited < 0.02) {
      std::this_thread::yield();
    } else {
      const bool idle = timeout_s < 0 && waited > 1.0;
      sleep_us = sleep_us ? std::min(sleep_us * 2, idle ? 10000 : 1000) : 10;
      std::this_thread::sleep_for(std::chrono::microseconds(sleep_us));
    }
  }
}

}  // namespace

Status RankOrderSum::sum(float* x, int64_t count) {
  if (count > (int64_t)INT32_MAX) return Error(Code::kInternal, "a tensor-split sum of more than 2^31 values");
  all_.resize((size_t)(count * size_));
  MPI_Request req;
  int rc = MPI_Iallgather(x, (int)count, MPI_FLOAT, all_.data(), (int)count, MPI_FLOAT, MPI_COMM_WORLD, &req);
  if (rc != MPI_SUCCESS) return Error(Code::kIo, "exchanging partial sums failed: " + mpi_error_text(rc));
  // A collective cannot be cancelled: on failure the job is ended (rank 0)
  // or waits for that (a worker), so the request is left as it is.
  CRIA_RETURN_IF_ERROR(poll(timeout_s_, "waiting for", MPI_ANY_SOURCE, false,
                            [&](int* flag) { return MPI_Test(&req, flag, MPI_STATUS_IGNORE); }));
  // ((rank 0 + rank 1) + rank 2) + ... for every element, on every rank.
  std::memcpy(x, all_.data(), (size_t)count * sizeof(float));
  for (int r = 1; r < size_; ++r) {
    const float* a = all_.data() + (size_t)r * (size_t)count;
    for (int64_t i = 0; i < count; ++i) x[i] += a[i];
  }
  return Status::Ok();
}

Status gather_all(int64_t v, int size, double timeout_s, std::vector<int64_t>* all) {
  all->assign((size_t)size, 0);
  MPI_Request req;
  int rc = MPI_Iallgather(&v, 1, MPI_INT64_T, all->data(), 1, MPI_INT64_T, MPI_COMM_WORLD, &req);
  if (rc != MPI_SUCCESS) return Error(Code::kIo, "the ranks' first exchange failed: " + mpi_error_text(rc));
  return poll(timeout_s, "waiting for", MPI_ANY_SOURCE, false,
              [&](int* flag) { return MPI_Test(&req, flag, MPI_STATUS_IGNORE); });
}

std::string mpi_error_text(int code) {
  char s[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, s, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(s, (size_t)len);
}

std::string rank_name(int rank) {
  if (rank == MPI_ANY_SOURCE) return "the other ranks";
  return "rank " + std::to_string(rank);
}

uint8_t* begin_message(std::vector<uint8_t>* buf, const Header& h, size_t payload) {
  buf->resize(sizeof(Header) + payload);
  std::memcpy(buf->data(), &h, sizeof h);
  return buf->data() + sizeof(Header);
}

Status send_message(const std::vector<uint8_t>& buf, int to, int tag, double timeout_s) {
  MPI_Request req;
  int rc = MPI_Isend(buf.data(), (int)buf.size(), MPI_BYTE, to, tag, MPI_COMM_WORLD, &req);
  if (rc != MPI_SUCCESS) return Error(Code::kIo, "sending to " + rank_name(to) + " failed: " + mpi_error_text(rc));
  Status st = poll(timeout_s, "sending to", to, true, [&](int* flag) { return MPI_Test(&req, flag, MPI_STATUS_IGNORE); });
  if (!st.ok()) {
    MPI_Cancel(&req);
    MPI_Request_free(&req);
  }
  return st;
}

SendQueue::~SendQueue() {
  // Only on the way out; a send still pending then is abandoned.
  for (auto& o : outs_) {
    if (o->req == MPI_REQUEST_NULL) continue;
    MPI_Cancel(&o->req);
    MPI_Request_free(&o->req);
  }
}

std::vector<uint8_t>* SendQueue::next() {
  for (auto& o : outs_) {
    int done = 1;
    if (o->req != MPI_REQUEST_NULL && MPI_Test(&o->req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) done = 0;
    if (done && o->req == MPI_REQUEST_NULL) {
      cur_ = o.get();
      return &o->buf;
    }
  }
  outs_.push_back(std::make_unique<Out>());
  cur_ = outs_.back().get();
  return &cur_->buf;
}

Status SendQueue::start(int to, int tag) {
  Out* o = cur_;
  cur_ = nullptr;
  if (!o) return Error(Code::kInternal, "SendQueue::start without next()");
  o->to = to;
  const int rc = MPI_Isend(o->buf.data(), (int)o->buf.size(), MPI_BYTE, to, tag, MPI_COMM_WORLD, &o->req);
  if (rc != MPI_SUCCESS) {
    o->req = MPI_REQUEST_NULL;
    return Error(Code::kIo, "sending to " + rank_name(to) + " failed: " + mpi_error_text(rc));
  }
  return Status::Ok();
}

Status SendQueue::flush(double timeout_s) {
  for (auto& o : outs_) {
    if (o->req == MPI_REQUEST_NULL) continue;
    CRIA_RETURN_IF_ERROR(poll(timeout_s, "sending to", o->to, true,
                              [&](int* flag) { return MPI_Test(&o->req, flag, MPI_STATUS_IGNORE); }));
  }
  return Status::Ok();
}

Status recv_message(int from, int tag, double timeout_s, Message* m) {
  MPI_Status status;
  CRIA_RETURN_IF_ERROR(poll(timeout_s, "waiting for", from, false,
                            [&](int* flag) { return MPI_Iprobe(from, tag, MPI_COMM_WORLD, flag, &status); }));
  int count = 0;
  MPI_Get_count(&status, MPI_BYTE, &count);
  if (count < (int)sizeof(Header))
    return Error(Code::kIo, "a message from " + rank_name(status.MPI_SOURCE) + " is too short");
  m->bytes.resize((size_t)count);
  m->from = status.MPI_SOURCE;
  const int rc = MPI_Recv(m->bytes.data(), count, MPI_BYTE, status.MPI_SOURCE, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  if (rc != MPI_SUCCESS)
    return Error(Code::kIo, "receiving from " + rank_name(status.MPI_SOURCE) + " failed: " + mpi_error_text(rc));
  return Status::Ok();
}

}  // namespace cria::dist
