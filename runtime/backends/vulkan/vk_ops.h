// The compute ops of the Vulkan engine: each records one or two dispatches
// into the context's open batch (Context::begin() ... submit()). They are
// the GPU counterparts of the CPU KernelTable (runtime/kernels/kernels.h)
// and are tested against its scalar table (tests/vulkan/test_vulkan_ops.cc).
//
// Buffers hold f32 unless named otherwise; offsets and sizes are in
// elements. Every op checks its ranges against the buffers' sizes, so a
// bad call is an error, never an out-of-bounds access on the device.
#pragma once

#include <cstdint>
#include <vector>

#include "quant/quant.h"
#include "runtime/backends/vulkan/vk_context.h"

namespace cria::vk {

// A weight matrix on the device. A tensor larger than the split limit
// (the device's maxStorageBufferRange by default: lavapipe's is 128 MiB,
// an 8B output head is 0.5-2 GiB) is cut by rows into parts, each a valid
// tensor of its own layout (whole 16-row tiles for the tiled types); a
// matvec runs one dispatch per part, each writing its rows of y.
struct DeviceMatrix {
  QType type = QType::kF32;
  QLayout l;
  struct Part {
    Buffer buf;
    uint64_t row0 = 0;
    QLayout l;
  };
  std::vector<Part> parts;
};

// Types the matvec shaders take.
bool matvec_supports(QType t);

// Uploads `data` (the tensor's bytes in cria's layout). split_limit 0 means
// the device's maxStorageBufferRange; tests pass less to exercise splits.
Result<DeviceMatrix> upload_matrix(Context& ctx, QType type, const QLayout& l, const uint8_t* data,
                                   uint64_t split_limit = 0, const char* name = "weight");

// Scratch for the int8 weight types' activations (codes and block scales),
// sized for kMatmulBatch rows of up to `max_cols`.
struct ActScratch {
  Buffer q, d;
  uint64_t max_cols = 0;
};
Result<ActScratch> make_act_scratch(Context& ctx, uint64_t max_cols);

// Records the quantization of x[x_off .. x_off + cols) into s (as the CPU's
// quantize_acts: int8 codes in blocks of 32 with an f32 scale each).
Status quantize_acts(Context& ctx, const Buffer& x, uint64_t x_off, uint64_t cols, ActScratch& s);

// y[y_off + r] = W[r] . x[x_off ..] for every row r. Int8 weight types
// quantize x into `s` first (the CPU's computation); float types read x.
Status matvec(Context& ctx, const DeviceMatrix& w, const Buffer& x, uint64_t x_off, Buffer& y, uint64_t y_off,
              ActScratch& s);

// The same for n <= kMatmulBatch tokens in one dispatch per part: x holds
// their rows contiguously (x_off + t * cols), y row t starts at
// y_off + t * y_stride. Each weight is read once for all n.
constexpr uint64_t kMatmulBatch = 8;
Status matmul(Context& ctx, const DeviceMatrix& w, const Buffer& x, uint64_t x_off, uint64_t n, Buffer& y,
              uint64_t y_off, uint64_t y_stride, ActScratch& s);

Status rmsnorm(Context& ctx, const Buffer& x, const Buffer& w, float eps, uint64_t n, Buffer& y);
Status layernorm(Context& ctx, const Buffer& x, const Buffer& w, const Buffer& b, float eps, uint64_t n, Buffer& y);
// In place on heads x d values at x_off; cs = [cos(d/2), sin(d/2)].
Status rope(Context& ctx, Buffer& x, uint64_t x_off, uint64_t heads, uint64_t d, const Buffer& cs);
// out[i] = silu(gate[g_off + i]) * up[u_off + i]
Status swiglu(Context& ctx, const Buffer& gate, uint64_t g_off, const Buffer& up, uint64_t u_off, uint64_t n,
              Buffer& out);
Status gelu(Context& ctx, Buffer& x, uint64_t n);
Status add(Context& ctx, Buffer& y, const Buffer& x, uint64_t n);

// The f16 KV cache of one layer: [kv head][position][d] halves, head_stride
// halves between heads (>= max_pos * d).
struct KvShape {
  uint64_t n_kv_heads = 0, d = 0, head_stride = 0;
};
// Writes heads' d values at src[src_off ..] as f16 at position pos.
Status kv_append(Context& ctx, const Buffer& src, uint64_t src_off, const KvShape& kv, uint64_t pos, Buffer& cache);

struct AttnParams {
  uint64_t n_heads = 0;
  KvShape kv;
  uint64_t n_pos = 0;    // cache rows 0 .. n_pos-1 are attended
  uint64_t max_pos = 0;  // row stride of `scores` (>= n_pos)
  float scale = 0;
  bool alibi = false;    // slopes[n_heads] then bias the scores
  uint64_t q_off = 0;
};
// out[h * d + i] for each query head h; scores needs n_heads * max_pos.
// With alibi false, `slopes` may be any buffer (it is bound, not read).
Status attention(Context& ctx, const AttnParams& a, const Buffer& q, const Buffer& k, const Buffer& v, Buffer& out,
                 Buffer& scores, const Buffer& slopes);

}  // namespace cria::vk
