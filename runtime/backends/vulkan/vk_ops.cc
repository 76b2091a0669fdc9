#include "runtime/backends/vulkan/vk_ops.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace cria::vk {

namespace {

// The shaders index with 32-bit words: every size must fit.
bool fits32(uint64_t v) { return v <= 0xffffffffull; }

Status need(bool ok, const char* op, const char* what) {
  if (ok) return Status::Ok();
  return Error(Code::kInvalidArgument, std::string("vulkan ") + op + ": " + what);
}

// Whether a buffer holds `elems` 4-byte elements.
bool holds(const Buffer& b, uint64_t elems) { return b.valid() && elems * 4 <= b.size(); }

Status run(Context& ctx, const char* shader, const std::vector<const Buffer*>& bufs, const void* push,
           uint32_t push_bytes, uint64_t groups) {
  CRIA_ASSIGN_OR_RETURN(const Pipeline* p, ctx.pipeline(shader, (uint32_t)bufs.size(), push_bytes));
  uint32_t gx, gy;
  ctx.groups_2d(groups, &gx, &gy);
  return ctx.dispatch(*p, bufs, push, gx, gy);
}

uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

}  // namespace

bool matvec_supports(QType t) {
  switch (t) {
    case QType::kF32:
    case QType::kF16:
    case QType::kBF16:
    case QType::kQ8:
    case QType::kQ4:
    case QType::kQ4M: return true;
    default: return false;
  }
}

Result<DeviceMatrix> upload_matrix(Context& ctx, QType type, const QLayout& l, const uint8_t* data,
                                   uint64_t split_limit, const char* name) {
  if (!matvec_supports(type))
    return Error(Code::kUnsupported, std::string("vulkan: ") + name + ": weight type " + qtype_name(type) +
                                         " has no Vulkan matvec");
  if (split_limit == 0) split_limit = ctx.info().max_storage_buffer_range;
  DeviceMatrix m;
  m.type = type;
  m.l = l;
  const bool tiled = qtype_is_tiled(type);
  // Rows per part: whole tiles for tiled types; the largest count whose
  // layout fits the limit.
  const uint64_t unit = tiled ? kTileRows : 1;
  const uint64_t unit_bytes = tiled ? l.tile_q_bytes + l.tile_s_bytes * (type == QType::kQ4M ? 2 : 1) : l.row_bytes;
  // Plane alignment padding costs at most 2 x 64 bytes per part.
  const uint64_t usable = split_limit > 2 * kPlaneAlign ? split_limit - 2 * kPlaneAlign : 0;
  const uint64_t units_per_part = unit_bytes ? usable / unit_bytes : 0;
  if (units_per_part == 0 && l.rows > 0)
    return Error(Code::kOutOfRange, std::string("vulkan: ") + name + ": one row block does not fit in a buffer of " +
                                        std::to_string(split_limit) + " bytes");
  const uint64_t rows_per_part = std::max<uint64_t>(unit, units_per_part * unit);
  for (uint64_t row0 = 0; row0 < l.rows || (l.rows == 0 && m.parts.empty()); row0 += rows_per_part) {
    const uint64_t rows = std::min(rows_per_part, l.rows - row0);
    DeviceMatrix::Part part;
    part.row0 = row0;
    if (!qlayout(type, rows, l.cols, l.group, &part.l))
      return Error(Code::kInvalidArgument, std::string("vulkan: ") + name + ": invalid layout");
    CRIA_ASSIGN_OR_RETURN(part.buf, ctx.create_buffer(part.l.total, Buffer::Kind::kDevice, name));
    if (tiled) {
      // The part's tiles are contiguous in every plane of the whole tensor:
      // one upload per plane, straight into mapped memory on unified-memory
      // devices (no host copy of the part).
      const uint64_t t0 = row0 / kTileRows;
      CRIA_RETURN_IF_ERROR(ctx.upload(part.buf, 0, data + t0 * l.tile_q_bytes, part.l.q_bytes));
      CRIA_RETURN_IF_ERROR(
          ctx.upload(part.buf, part.l.s_offset, data + l.s_offset + t0 * l.tile_s_bytes, part.l.s_bytes));
      if (type == QType::kQ4M)
        CRIA_RETURN_IF_ERROR(
            ctx.upload(part.buf, part.l.m_offset, data + l.m_offset + t0 * l.tile_s_bytes, part.l.m_bytes));
    } else {
      CRIA_RETURN_IF_ERROR(ctx.upload(part.buf, 0, data + row0 * l.row_bytes, part.l.total));
    }
    m.parts.push_back(std::move(part));
    if (l.rows == 0) break;
  }
  return m;
}

Result<ActScratch> make_act_scratch(Context& ctx, uint64_t max_cols) {
  ActScratch s;
  s.max_cols = max_cols;
  const uint64_t n = max_cols * kMatmulBatch;
  CRIA_ASSIGN_OR_RETURN(s.q, ctx.create_buffer(n * 4, Buffer::Kind::kDevice, "activation codes"));
  CRIA_ASSIGN_OR_RETURN(s.d, ctx.create_buffer(ceil_div(n, 32) * 4, Buffer::Kind::kDevice, "activation scales"));
  return s;
}

Status quantize_acts(Context& ctx, const Buffer& x, uint64_t x_off, uint64_t cols, ActScratch& s) {
  CRIA_RETURN_IF_ERROR(need(cols % 32 == 0, "quantize_acts", "cols must be a multiple of 32"));
  CRIA_RETURN_IF_ERROR(need(cols <= s.max_cols * kMatmulBatch, "quantize_acts", "cols exceed the scratch"));
  CRIA_RETURN_IF_ERROR(need(holds(x, x_off + cols) && fits32(x_off + cols), "quantize_acts", "x too small"));
  const uint32_t push[2] = {(uint32_t)cols, (uint32_t)x_off};
  return run(ctx, "quantize_acts", {&x, &s.q, &s.d}, push, sizeof push, cols / 32);
}

Status matvec(Context& ctx, const DeviceMatrix& w, const Buffer& x, uint64_t x_off, Buffer& y, uint64_t y_off,
              ActScratch& s) {
  return matmul(ctx, w, x, x_off, 1, y, y_off, w.l.rows, s);
}

Status matmul(Context& ctx, const DeviceMatrix& w, const Buffer& x, uint64_t x_off, uint64_t n, Buffer& y,
              uint64_t y_off, uint64_t y_stride, ActScratch& s) {
  const uint64_t rows = w.l.rows, cols = w.l.cols;
  CRIA_RETURN_IF_ERROR(need(n >= 1 && n <= kMatmulBatch, "matmul", "1 to 8 tokens per call"));
  CRIA_RETURN_IF_ERROR(need(n == 1 || y_stride >= rows, "matmul", "y rows overlap"));
  const uint64_t y_end = y_off + (n - 1) * y_stride + rows;
  CRIA_RETURN_IF_ERROR(need(holds(y, y_end) && fits32(y_end), "matmul", "y too small"));
  CRIA_RETURN_IF_ERROR(need(holds(x, x_off + n * cols) && fits32(x_off + n * cols), "matmul", "x too small"));
  if (qtype_is_tiled(w.type)) {
    // Rows are contiguous and cols is a multiple of 32: n rows quantize as
    // one long row, block by block.
    CRIA_RETURN_IF_ERROR(quantize_acts(ctx, x, x_off, n * cols, s));
    for (const auto& part : w.parts) {
      const QLayout& l = part.l;
      const uint32_t push[10] = {(uint32_t)l.rows,           (uint32_t)cols,
                                 l.group,                    (uint32_t)w.type,
                                 (uint32_t)(l.tile_q_bytes / 4), (uint32_t)(l.s_offset / 4),
                                 (uint32_t)(l.m_offset / 4), (uint32_t)(y_off + part.row0),
                                 (uint32_t)n,                (uint32_t)y_stride};
      CRIA_RETURN_IF_ERROR(run(ctx, "matvec_tiled", {&part.buf, &s.q, &s.d, &y}, push, sizeof push, l.rows));
    }
    return Status::Ok();
  }
  CRIA_RETURN_IF_ERROR(need(w.type == QType::kF32 || w.type == QType::kF16 || w.type == QType::kBF16, "matmul",
                            "unsupported weight type"));
  for (const auto& part : w.parts) {
    const uint32_t push[7] = {(uint32_t)part.l.rows, (uint32_t)cols,       (uint32_t)w.type,   (uint32_t)x_off,
                              (uint32_t)(y_off + part.row0), (uint32_t)n, (uint32_t)y_stride};
    CRIA_RETURN_IF_ERROR(run(ctx, "matvec_float", {&part.buf, &x, &y}, push, sizeof push, part.l.rows));
  }
  return Status::Ok();
}

namespace {
struct NormPush {
  uint32_t n;
  float eps;
};
}  // namespace

Status rmsnorm(Context& ctx, const Buffer& x, const Buffer& w, float eps, uint64_t n, Buffer& y) {
  CRIA_RETURN_IF_ERROR(need(holds(x, n) && holds(w, n) && holds(y, n) && fits32(n), "rmsnorm", "buffer too small"));
  const NormPush push{(uint32_t)n, eps};
  return run(ctx, "rmsnorm", {&x, &w, &y}, &push, sizeof push, 1);
}

Status layernorm(Context& ctx, const Buffer& x, const Buffer& w, const Buffer& b, float eps, uint64_t n, Buffer& y) {
  CRIA_RETURN_IF_ERROR(
      need(holds(x, n) && holds(w, n) && holds(b, n) && holds(y, n) && fits32(n), "layernorm", "buffer too small"));
  const NormPush push{(uint32_t)n, eps};
  return run(ctx, "layernorm", {&x, &w, &b, &y}, &push, sizeof push, 1);
}

Status rope(Context& ctx, Buffer& x, uint64_t x_off, uint64_t heads, uint64_t d, const Buffer& cs) {
  CRIA_RETURN_IF_ERROR(need(d % 2 == 0, "rope", "head dim must be even"));
  CRIA_RETURN_IF_ERROR(need(holds(x, x_off + heads * d) && fits32(x_off + heads * d), "rope", "x too small"));
  CRIA_RETURN_IF_ERROR(need(holds(cs, d), "rope", "cos/sin buffer too small"));
  const uint32_t push[3] = {(uint32_t)heads, (uint32_t)d, (uint32_t)x_off};
  CRIA_ASSIGN_OR_RETURN(const Pipeline* p, ctx.pipeline("rope", 2, sizeof push));
  return ctx.dispatch(*p, {&x, &cs}, push, (uint32_t)std::max<uint64_t>(1, ceil_div(heads * d / 2, 64)));
}

Status swiglu(Context& ctx, const Buffer& gate, uint64_t g_off, const Buffer& up, uint64_t u_off, uint64_t n,
              Buffer& out) {
  CRIA_RETURN_IF_ERROR(need(holds(gate, g_off + n) && holds(up, u_off + n) && holds(out, n) &&
                                fits32(g_off + n) && fits32(u_off + n),
                            "swiglu", "buffer too small"));
  const uint32_t push[3] = {(uint32_t)n, (uint32_t)g_off, (uint32_t)u_off};
  return run(ctx, "swiglu", {&gate, &up, &out}, push, sizeof push, ceil_div(n, 256));
}

Status gelu(Context& ctx, Buffer& x, uint64_t n) {
  CRIA_RETURN_IF_ERROR(need(holds(x, n) && fits32(n), "gelu", "buffer too small"));
  const uint32_t push = (uint32_t)n;
  return run(ctx, "gelu", {&x}, &push, sizeof push, ceil_div(n, 256));
}

Status add(Context& ctx, Buffer& y, const Buffer& x, uint64_t n) {
  CRIA_RETURN_IF_ERROR(need(holds(y, n) && holds(x, n) && fits32(n), "add", "buffer too small"));
  const uint32_t push = (uint32_t)n;
  return run(ctx, "add", {&y, &x}, &push, sizeof push, ceil_div(n, 256));
}

namespace {
// Halves in a cache holding n_kv_heads heads of max_pos rows.
bool cache_holds(const Buffer& cache, const KvShape& kv, uint64_t rows) {
  if (kv.n_kv_heads == 0) return false;
  const uint64_t halves = (kv.n_kv_heads - 1) * kv.head_stride + rows * kv.d;
  return cache.valid() && halves * 2 <= cache.size() && fits32(halves);
}
}  // namespace

Status kv_append(Context& ctx, const Buffer& src, uint64_t src_off, const KvShape& kv, uint64_t pos, Buffer& cache) {
  CRIA_RETURN_IF_ERROR(need(kv.d % 2 == 0 && kv.d > 0, "kv_append", "head dim must be even"));
  CRIA_RETURN_IF_ERROR(need(kv.head_stride % 2 == 0, "kv_append", "head stride must be even"));
  CRIA_RETURN_IF_ERROR(need(holds(src, src_off + kv.n_kv_heads * kv.d), "kv_append", "source too small"));
  CRIA_RETURN_IF_ERROR(need(cache_holds(cache, kv, pos + 1) && (pos + 1) * kv.d <= kv.head_stride, "kv_append",
                            "position outside the cache"));
  const uint32_t push[5] = {(uint32_t)kv.n_kv_heads, (uint32_t)kv.d, (uint32_t)kv.head_stride, (uint32_t)pos,
                            (uint32_t)src_off};
  CRIA_ASSIGN_OR_RETURN(const Pipeline* p, ctx.pipeline("kv_append", 2, sizeof push));
  return ctx.dispatch(*p, {&src, &cache}, push, (uint32_t)ceil_div(kv.n_kv_heads * kv.d / 2, 64));
}

Status attention(Context& ctx, const AttnParams& a, const Buffer& q, const Buffer& k, const Buffer& v, Buffer& out,
                 Buffer& scores, const Buffer& slopes) {
  const KvShape& kv = a.kv;
  CRIA_RETURN_IF_ERROR(need(kv.n_kv_heads > 0 && a.n_heads % kv.n_kv_heads == 0, "attention",
                            "n_heads must be a multiple of n_kv_heads"));
  CRIA_RETURN_IF_ERROR(need(a.n_heads <= 65535, "attention", "too many heads"));
  CRIA_RETURN_IF_ERROR(need(a.n_pos > 0 && a.n_pos <= a.max_pos && a.n_pos * kv.d <= kv.head_stride, "attention",
                            "n_pos outside the cache"));
  CRIA_RETURN_IF_ERROR(need(holds(q, a.q_off + a.n_heads * kv.d), "attention", "q too small"));
  CRIA_RETURN_IF_ERROR(
      need(cache_holds(k, kv, a.n_pos) && cache_holds(v, kv, a.n_pos), "attention", "cache too small"));
  CRIA_RETURN_IF_ERROR(need(holds(out, a.n_heads * kv.d), "attention", "out too small"));
  CRIA_RETURN_IF_ERROR(need(holds(scores, a.n_heads * a.max_pos) && fits32(a.n_heads * a.max_pos), "attention",
                            "scores too small"));
  CRIA_RETURN_IF_ERROR(need(!a.alibi || holds(slopes, a.n_heads), "attention", "ALiBi slopes too small"));
  struct {
    uint32_t n_heads, n_kv_heads, d, n_pos, head_stride, max_pos, alibi, q_off;
    float scale;
  } push{(uint32_t)a.n_heads, (uint32_t)kv.n_kv_heads, (uint32_t)kv.d, (uint32_t)a.n_pos, (uint32_t)kv.head_stride,
         (uint32_t)a.max_pos, a.alibi ? 1u : 0u, (uint32_t)a.q_off, a.scale};
  CRIA_ASSIGN_OR_RETURN(const Pipeline* p, ctx.pipeline("attention", 6, sizeof push));
  return ctx.dispatch(*p, {&q, &k, &v, &out, &scores, &slopes}, &push, (uint32_t)a.n_heads);
}

}  // namespace cria::vk
