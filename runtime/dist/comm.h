// Messages between ranks over MPI, each bounded in time. Every exchange is
// nonblocking and polled against a deadline, so a rank that died, hangs or
// lost its link becomes an error on the waiting rank, never a hang; with
// MPI_ERRORS_RETURN a failed MPI call is an error value as well.
//
// The protocol is a chain: rank 0 sends each message to rank 1, every
// worker handles it and passes it on to the next rank, and replies (logits,
// errors, hello acknowledgements) go straight back to rank 0. MPI keeps the
// order of messages between two ranks, so ranks apply them in one order.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "formats/status.h"
#include "runtime/model/transformer.h"

namespace cria::dist {

enum class Op : int32_t {
  kHello = 1,     // a = file identity, b = n_layers, c = timeout (ms), d = 1: split by tensors;
                  // payload: int64 [begin, end) per rank
  kOpen = 2,      // sid; a = n_seq, b = n_ctx, c = KV cache type (kernels::KvType), d = max_tokens
  kClose = 3,     // sid
  kForward = 4,   // sid; n entries; payload: BatchEntry[n], then (layer split) n x hidden f32
  kCopy = 5,      // sid; a = src, b = dst, c = n_pos
  kShutdown = 6,  //
  kReply = 7,     // to rank 0: sid; n logits rows; payload: n x vocab f32
  kError = 8,     // to rank 0: a = rank, b = 1 if an exchange failed; payload: the message
};

struct Header {
  Op op = Op::kShutdown;
  int32_t sid = 0;
  int64_t n = 0;
  int64_t a = 0, b = 0, c = 0, d = 0;
};

constexpr int kTagChain = 1;  // rank r -> r + 1
constexpr int kTagReply = 2;  // any rank -> 0

// A message: a header and its payload in one buffer.
struct Message {
  std::vector<uint8_t> bytes;
  int from = -1;
  const Header& header() const { return *reinterpret_cast<const Header*>(bytes.data()); }
  const uint8_t* payload() const { return bytes.data() + sizeof(Header); }
  size_t payload_size() const { return bytes.size() - sizeof(Header); }
};

// Starts a message: the header, then room for `payload` bytes (returned).
uint8_t* begin_message(std::vector<uint8_t>* buf, const Header& h, size_t payload);

// Sends buf to rank `to`; an error when it is not taken within timeout_s.
Status send_message(const std::vector<uint8_t>& buf, int to, int tag, double timeout_s);
// Sends that need not finish before the sender goes on: the last rank's
// replies. Rank 0 may be sending its next micro-batch to rank 1 while the
// last rank answers the previous one; if that answer (a logits row is
// 0.5 MB, past MPI's eager limit) waited for rank 0 to take it, the two
// sends would wait for each other. Each buffer stays here until MPI is done
// with it; the queue grows to the number of replies in flight, then only
// reuses its buffers.
class SendQueue {
 public:
  ~SendQueue();
  // A buffer no send is using, for the next message.
  std::vector<uint8_t>* next();
  // Starts sending the buffer next() returned.
  Status start(int to, int tag);
  // Waits until every started send is taken (at most timeout_s each).
  Status flush(double timeout_s);

 private:
  struct Out {
    std::vector<uint8_t> buf;
    MPI_Request req = MPI_REQUEST_NULL;
    int to = 0;
  };
  std::vector<std::unique_ptr<Out>> outs_;
  Out* cur_ = nullptr;
};

// Receives the next message with `tag` from `from` (MPI_ANY_SOURCE allowed)
// into *m; timeout_s < 0 waits for ever (a worker between requests).
Status recv_message(int from, int tag, double timeout_s, Message* m);

// The sums of a tensor split (transformer.h): every rank contributes its
// partial sums, receives every other rank's (MPI_Iallgather, polled against
// the bound like every exchange) and adds them in rank order 0, 1, ...
// MPI_Allreduce would move less data for N > 2, but leaves the order of
// the additions to the implementation, which may differ between ranks: the
// ranks' hidden states, and so their KV caches, could then drift apart by
// rounding. Adding in one fixed order gives every rank the same bits, and
// the same bits on every run.
class RankOrderSum : public TensorReduce {
 public:
  RankOrderSum(int size, double timeout_s) : size_(size), timeout_s_(timeout_s) {}
  Status sum(float* x, int64_t count) override;

 private:
  int size_;
  double timeout_s_;
  std::vector<float> all_;  // size x count, reused
};

// Every rank's `v` in rank order (MPI_Iallgather, bounded like every exchange).
Status gather_all(int64_t v, int size, double timeout_s, std::vector<int64_t>* all);

// "rank R (host)" for messages.
std::string rank_name(int rank);
std::string mpi_error_text(int code);

}  // namespace cria::dist
