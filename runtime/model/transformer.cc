#include "runtime/model/transformer.h"

#ifndef __EMSCRIPTEN__
#include <sys/mman.h>
#endif

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace cria {

LazyBytes& LazyBytes::operator=(LazyBytes&& o) noexcept {
  if (this != &o) {
    reset();
    p_ = o.p_;
    n_ = o.n_;
    o.p_ = nullptr;
    o.n_ = 0;
  }
  return *this;
}

bool LazyBytes::reserve(size_t bytes) {
  reset();
  if (bytes == 0) return true;
#ifdef __EMSCRIPTEN__
  // WebAssembly memory only grows; calloc's pages are as good as it gets.
  p_ = static_cast<uint8_t*>(std::calloc(bytes, 1));
  if (!p_) return false;
#else
  void* m = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) return false;
  p_ = static_cast<uint8_t*>(m);
#endif
  n_ = bytes;
  return true;
}

void LazyBytes::reset() {
  if (!p_) return;
#ifdef __EMSCRIPTEN__
  std::free(p_);
#else
  ::munmap(p_, n_);
#endif
  p_ = nullptr;
  n_ = 0;
}

Status KvCache::init(const ModelConfig& c, int64_t seqs, int64_t ctx, kernels::KvType t, int64_t layer_begin,
                     int64_t layer_end) {
  type = t;
  first_layer = layer_begin;
  n_layers = (layer_end < 0 ? (int64_t)c.num_layers : layer_end) - layer_begin;
  n_seq = seqs;
  n_ctx = ctx;
  n_kv = c.num_kv_heads;
  head_dim = c.head_dim;
  if (kernels::kv_quantized(t) && head_dim % 32 != 0)
    return Error(Code::kInvalidArgument, std::string("a ") + kernels::kv_type_name(t) +
                                             " KV cache needs head_dim to be a multiple of 32 (this model's is " +
                                             std::to_string(head_dim) + ")");
  const double want = (double)n_layers * (double)n_seq * (double)n_kv * (double)n_ctx * (double)row_bytes();
  const size_t n = (size_t)(n_layers * n_seq * n_kv) * head_bytes();
  char gib[32];
  std::snprintf(gib, sizeof gib, "%.1f GiB", 2 * want / (1024.0 * 1024 * 1024));
  if (want > (double)(SIZE_MAX / 4) || !k.reserve(n) || !v.reserve(n)) {
    k.reset();
    return Error(Code::kOutOfMemory, "cannot reserve a KV cache of " + std::string(gib) + " (" + std::to_string(ctx) +
                                         " positions x " + std::to_string(seqs) + " sequences)");
  }
  return Status::Ok();
}

void KvCache::copy_rows(int64_t from, int64_t to, int64_t n_pos) {
  const size_t len = (size_t)n_pos * row_bytes();
  for (int64_t l = first_layer; l < first_layer + n_layers; ++l)
    for (int64_t g = 0; g < n_kv; ++g) {
      std::memcpy(k_row(l, to, g, 0), k_row(l, from, g, 0), len);
      std::memcpy(v_row(l, to, g, 0), v_row(l, from, g, 0), len);
    }
}

void ForwardScratch::init(const Model& m, int64_t tokens, int threads) {
  const ModelConfig& c = m.config();
  max_tokens = tokens;
  const int64_t hsz = c.hidden_size, ffn = c.intermediate_size;
  const int64_t ff_width = c.mlp == MlpKind::kSwiGLU ? 2 * ffn : ffn;
  x.assign(tokens * hsz, 0);
  h.assign(tokens * hsz, 0);
  h2.assign(tokens * hsz, 0);
  qkv.assign(tokens * c.qkv_dim(), 0);
  attn.assign(tokens * c.q_dim(), 0);
  o.assign(tokens * hsz, 0);
  ff.assign(tokens * ff_width, 0);
  act.assign(tokens * ffn, 0);
  cs.assign(tokens * (c.head_dim / 2), 0);
  sn.assign(tokens * (c.head_dim / 2), 0);
  sel.assign(tokens * hsz, 0);
  queries.resize(tokens);
  mm.reserve(tokens, m.max_matmul_cols());
  // Attention tasks take at most one KV group's query heads.
  att.reserve(threads, c.num_heads / c.num_kv_heads, c.head_dim);
}

namespace {

void norm(const kernels::KernelTable& k, const ModelConfig& c, const float* x, const float* w, const float* b,
          int64_t n, float* y) {
  const int64_t hs = c.hidden_size;
  for (int64_t t = 0; t < n; ++t) {
    if (c.norm == NormKind::kRMSNorm) k.rmsnorm(x + t * hs, w, c.norm_eps, hs, y + t * hs);
    else k.layernorm(x + t * hs, w, b, c.norm_eps, hs, y + t * hs);
  }
}

// A linear layer on the backend it was placed on at load.
Status linear(const PlacedLinear& p, const backends::ExecContext& ctx, const float* x, int64_t n, float* y) {
  return p.backend->run_linear(p.handle, p.l, x, n, y, ctx);
}

// MLP of n normalised rows `in` into `out` (n x hidden).
Status mlp(const Model& m, const backends::ExecContext& ctx, int64_t l, ForwardScratch& s, const float* in, int64_t n,
           float* out) {
  const ModelConfig& c = m.config();
  const kernels::KernelTable& k = *ctx.k;
  const Placement& p = m.placement();
  const int64_t ffn = c.intermediate_size;
  CRIA_RETURN_IF_ERROR(linear(p.linear(l, LinearRole::kFfnIn), ctx, in, n, s.ff.data()));
  float* act = s.ff.data();
  if (c.mlp == MlpKind::kSwiGLU) {
    for (int64_t t = 0; t < n; ++t)
      k.swiglu(s.ff.data() + t * 2 * ffn, s.ff.data() + t * 2 * ffn + ffn, ffn, s.act.data() + t * ffn);
    act = s.act.data();
  } else {
    k.gelu(s.ff.data(), n * ffn);
  }
  return linear(p.linear(l, LinearRole::kFfnDown), ctx, act, n, out);
}

}  // namespace

Status forward(const Model& m, const kernels::KernelTable& k, kernels::ThreadPool& pool, KvCache& cache,
               ForwardScratch& s, const BatchEntry* batch, int64_t n, float* logits, const LayerSpan& span) {
  const ModelConfig& c = m.config();
  const int64_t l0 = span.begin, l1 = span.end < 0 ? (int64_t)c.num_layers : span.end;
  if (l0 < m.layer_begin() || l1 > m.layer_end() || l0 > l1 || l0 < cache.first_layer ||
      l1 > cache.first_layer + cache.n_layers)
    return Error(Code::kInternal, "forward: layers [" + std::to_string(l0) + ", " + std::to_string(l1) +
                                      ") are not all loaded here");
  if ((l0 > 0 && !span.hidden_in) || (l1 < (int64_t)c.num_layers && !span.hidden_out))
    return Error(Code::kInternal, "forward: a partial layer span needs its hidden state buffers");
  const Placement& p = m.placement();
  const backends::ExecContext ctx{&k, &pool, &s.mm};
  const Weights& w = m.weights();
  const int64_t hs = c.hidden_size, d = c.head_dim, half = d / 2;
  const int64_t qd = c.q_dim(), kvd = c.kv_dim(), qkvd = c.qkv_dim();
  float* x = s.x.data();

  if (l0 == 0) {
    for (int64_t t = 0; t < n; ++t)
      dequantize_row(w.tok_embd.type, w.tok_embd.data, w.tok_embd.l, (uint64_t)batch[t].token, x + t * hs);
  } else {
    std::memcpy(x, span.hidden_in, (size_t)(n * hs) * sizeof(float));
  }

  // Rotary angles of each token's position, shared by all layers. Like
  // transformers, the angle is pos * inv_freq rounded to f32 first.
  if (c.position == PositionKind::kRope) {
    const std::vector<float>& f = m.inv_freq();
    for (int64_t t = 0; t < n; ++t)
      for (int64_t i = 0; i < half; ++i) {
        const float a = (float)batch[t].pos * f[i];
        s.cs[t * half + i] = std::cos(a);
        s.sn[t * half + i] = std::sin(a);
      }
  }
  kernels::AttnShape shape;
  shape.n_heads = c.num_heads;
  shape.n_kv_heads = c.num_kv_heads;
  shape.head_dim = d;
  shape.kv_head_rows = cache.n_ctx;
  shape.scale = 1.0f / std::sqrt((float)d);
  shape.alibi = c.position == PositionKind::kAlibi ? m.alibi().data() : nullptr;
  shape.kv_type = cache.type;

  for (int64_t l = l0; l < l1; ++l) {
    const LayerWeights& L = w.layers[l];
    norm(k, c, x, L.attn_norm_w, L.attn_norm_b, n, s.h.data());
    CRIA_RETURN_IF_ERROR(linear(p.linear(l, LinearRole::kQkv), ctx, s.h.data(), n, s.qkv.data()));
    for (int64_t t = 0; t < n; ++t) {
      float* q = s.qkv.data() + t * qkvd;
      float* kk = q + qd;
      float* vv = kk + kvd;
      if (c.position == PositionKind::kRope) {
        k.rope(q, c.num_heads, d, s.cs.data() + t * half, s.sn.data() + t * half);
        k.rope(kk, c.num_kv_heads, d, s.cs.data() + t * half, s.sn.data() + t * half);
      }
      for (int64_t g = 0; g < (int64_t)c.num_kv_heads; ++g) {
        kernels::kv_store_row(k, cache.type, kk + g * d, d, cache.k_row(l, batch[t].seq, g, batch[t].pos));
        kernels::kv_store_row(k, cache.type, vv + g * d, d, cache.v_row(l, batch[t].seq, g, batch[t].pos));
      }
    }
    for (int64_t t = 0; t < n; ++t) {
      kernels::AttnQuery& aq = s.queries[t];
      aq.q = s.qkv.data() + t * qkvd;
      aq.out = s.attn.data() + t * qd;
      aq.k = cache.k_at(l, batch[t].seq);
      aq.v = cache.v_at(l, batch[t].seq);
      aq.n_pos = batch[t].pos + 1;
    }
    kernels::attention(k, pool, shape, s.queries.data(), n, s.att);
    CRIA_RETURN_IF_ERROR(linear(p.linear(l, LinearRole::kAttnOut), ctx, s.attn.data(), n, s.o.data()));

    switch (c.block) {
      case BlockKind::kSequential:
        if (span.reduce) CRIA_RETURN_IF_ERROR(span.reduce->sum(s.o.data(), n * hs));
        k.add(x, s.o.data(), n * hs);
        norm(k, c, x, L.ffn_norm_w, L.ffn_norm_b, n, s.h2.data());
        CRIA_RETURN_IF_ERROR(mlp(m, ctx, l, s, s.h2.data(), n, s.o.data()));
        if (span.reduce) CRIA_RETURN_IF_ERROR(span.reduce->sum(s.o.data(), n * hs));
        k.add(x, s.o.data(), n * hs);
        break;
      case BlockKind::kParallelOneNorm:
        CRIA_RETURN_IF_ERROR(mlp(m, ctx, l, s, s.h.data(), n, s.h2.data()));
        k.add(s.h2.data(), s.o.data(), n * hs);  // mlp + attention, then the residual
        if (span.reduce) CRIA_RETURN_IF_ERROR(span.reduce->sum(s.h2.data(), n * hs));
        k.add(x, s.h2.data(), n * hs);
        break;
      case BlockKind::kParallelTwoNorms:
        norm(k, c, x, L.ffn_norm_w, L.ffn_norm_b, n, s.h2.data());
        CRIA_RETURN_IF_ERROR(mlp(m, ctx, l, s, s.h2.data(), n, s.h.data()));
        k.add(s.h.data(), s.o.data(), n * hs);
        if (span.reduce) CRIA_RETURN_IF_ERROR(span.reduce->sum(s.h.data(), n * hs));
        k.add(x, s.h.data(), n * hs);
        break;
    }
  }

  if (l1 < (int64_t)c.num_layers) {
    std::memcpy(span.hidden_out, x, (size_t)(n * hs) * sizeof(float));
    return Status::Ok();
  }
  if (span.no_head) return Status::Ok();
  // Final norm and head, only for the rows that want logits.
  int64_t nl = 0;
  for (int64_t t = 0; t < n; ++t)
    if (batch[t].logits) std::memcpy(s.sel.data() + (nl++) * hs, x + t * hs, hs * sizeof(float));
  if (nl == 0) return Status::Ok();
  if (!logits) return Error(Code::kInternal, "forward: logits wanted but no buffer for them");
  norm(k, c, s.sel.data(), w.out_norm_w, w.out_norm_b, nl, s.h.data());
  return linear(p.output(), ctx, s.h.data(), nl, logits);
}

}  // namespace cria
