// A device that runs a model's whole layer stack for one sequence's decode
// steps, one submission per token, with its own copy of that sequence's KV
// cache. The host cache stays the reference: prefill (batched, through the
// seam) writes it, load_kv() hands its rows to the device before decoding,
// store_kv() brings the rows decoded on the device back (a chat's next turn
// reuses them on the host).
#pragma once

#include <cstdint>
#include <memory>

#include "formats/status.h"

namespace cria {

struct KvCache;
class Model;

class DeviceDecoder {
 public:
  virtual ~DeviceDecoder() = default;
  // What runs it, for `cria run -v` (e.g. "vulkan layer stack").
  virtual const char* name() const = 0;
  // The logits (vocab_size floats) of `token` at `pos`; the device cache
  // must hold rows [0, pos).
  virtual Status decode(int32_t token, int64_t pos, float* logits) = 0;
  // Rows [from, to) of host cache sequence 0 to the device, and back.
  virtual Status load_kv(const KvCache& host, int64_t from, int64_t to) = 0;
  virtual Status store_kv(KvCache& host, int64_t from, int64_t to) = 0;
};

// The decoder for a model placed wholly on a device backend that has one
// (vulkan), else nullptr. Errors: the device cannot hold the cache.
Result<std::unique_ptr<DeviceDecoder>> make_device_decoder(const Model& m, int64_t n_ctx);

}  // namespace cria
