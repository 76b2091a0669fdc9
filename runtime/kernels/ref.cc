// The scalar reference kernels: the definition of every op, written for
// clarity and accumulated in double precision. Int8 weight types (Q8, Q4,
// Q4M) multiply the dequantized weights with the activations as quantized by
// quantize_acts, on every backend: that is the computation, and the fast
// kernels differ from this table only by float summation order.
#include <cmath>
#include <cstring>

#include "quant/fp16.h"
#include "runtime/kernels/kernels.h"
#include "runtime/kernels/qkernel_common.h"
#include "runtime/kernels/ref_ops.h"

namespace cria::kernels {

namespace {

void ref_quantize_acts(const float* x, int64_t n, int64_t cols, int8_t* q, float* d, float* s) {
  const int64_t nb = cols / 32;
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t b = 0; b < nb; ++b) {
      const float* xb = x + t * cols + b * 32;
      float amax = 0;
      for (int i = 0; i < 32; ++i) amax = std::fmax(amax, std::fabs(xb[i]));
      const float db = amax / 127.0f;
      const float id = db != 0 ? 1.0f / db : 0.0f;
      int sum = 0;
      for (int i = 0; i < 32; ++i) {
        int v = (int)std::lrintf(xb[i] * id);
        q[t * cols + b * 32 + i] = (int8_t)v;
        sum += v;
      }
      d[t * nb + b] = db;
      s[t * nb + b] = db * (float)sum;
    }
  }
}

// Decodes columns [k0, k0 + n) of row r (n <= 256, k0 a multiple of the
// group) into buf, without allocating.
void decode_cols(const Matrix& w, int64_t r, int64_t k0, int64_t n, float* buf) {
  if (qtype_is_tiled(w.type)) {
    QGroup g;
    const int64_t gs = w.l.group;
    for (int64_t k = k0; k < k0 + n; k += gs) {
      unpack_group(w.type, w.l, (uint64_t)r, (uint64_t)(k / gs), w.data, &g);
      const float d = fp16_to_f32(g.d), m = fp16_to_f32(g.m);
      for (int64_t j = 0; j < gs; ++j) buf[k - k0 + j] = qk::dequant(w.type, g.u[j], d, m);
    }
    return;
  }
  const uint8_t* row = w.data + w.l.q_offset + (uint64_t)r * w.l.row_bytes;
  for (int64_t j = 0; j < n; ++j) {
    const int64_t k = k0 + j;
    switch (w.type) {
      case QType::kF32: std::memcpy(&buf[j], row + k * 4, 4); break;
      case QType::kF16: { uint16_t h; std::memcpy(&h, row + k * 2, 2); buf[j] = fp16_to_f32(h); break; }
      case QType::kBF16: { uint16_t h; std::memcpy(&h, row + k * 2, 2); buf[j] = bf16_to_f32(h); break; }
      case QType::kI8C: {
        float sc;
        std::memcpy(&sc, w.data + w.l.s_offset + (uint64_t)r * 4, 4);
        buf[j] = (float)(int8_t)row[k] * sc;
        break;
      }
      default: break;
    }
  }
}

// y[t][r] = sum_k W[r][k] * x(t, k), in double, for rows [row0, row1);
// `act` yields activation k of token t.
template <typename Act>
void ref_matmul(const Matrix& w, int64_t n, int64_t row0, int64_t row1, float* y, int64_t ldy, Act act) {
  const int64_t cols = (int64_t)w.cols();
  const int64_t chunk = qtype_is_tiled(w.type) && w.l.group > 0 ? std::max<int64_t>(w.l.group, 128) : 128;
  float buf[256];
  double acc[32];
  for (int64_t t0 = 0; t0 < n; t0 += 32) {
    const int64_t nt = std::min<int64_t>(32, n - t0);
    for (int64_t r = row0; r < row1; ++r) {
      for (int64_t t = 0; t < nt; ++t) acc[t] = 0;
      for (int64_t k0 = 0; k0 < cols; k0 += chunk) {
        const int64_t m = std::min(chunk, cols - k0);
        decode_cols(w, r, k0, m, buf);
        for (int64_t t = 0; t < nt; ++t) {
          double a = 0;
          for (int64_t j = 0; j < m; ++j) a += (double)buf[j] * act(t0 + t, k0 + j);
          acc[t] += a;
        }
      }
      for (int64_t t = 0; t < nt; ++t) y[(t0 + t) * ldy + r] = (float)acc[t];
    }
  }
}

void ref_matmul_tiled(const Matrix& w, const QActs& a, int64_t n, int64_t tile0, int64_t tile1, float* y,
                      int64_t ldy) {
  const int64_t nb = a.cols / 32;
  const int64_t r1 = std::min<int64_t>(tile1 * kTileRows, (int64_t)w.rows());
  ref_matmul(w, n, tile0 * kTileRows, r1, y, ldy, [&](int64_t t, int64_t k) {
    return (double)a.q[t * a.cols + k] * a.d[t * nb + k / 32];
  });
}

void ref_matmul_float(const Matrix& w, const float* x, int64_t n, int64_t ldx, int64_t row0, int64_t row1, float* y,
                      int64_t ldy) {
  ref_matmul(w, n, row0, row1, y, ldy, [&](int64_t t, int64_t k) { return (double)x[t * ldx + k]; });
}

inline float kv_value(uint16_t h) { return fp16_to_f32(h); }
inline float kv_value(float f) { return f; }

template <typename T>
void ref_attn_scores(const float* q, int64_t r, const T* k, int64_t kstride, int64_t n_pos, int64_t d, float scale,
                     float* scores) {
  for (int64_t h = 0; h < r; ++h)
    for (int64_t j = 0; j < n_pos; ++j) {
      double acc = 0;
      for (int64_t i = 0; i < d; ++i) acc += (double)q[h * d + i] * kv_value(k[j * kstride + i]);
      scores[h * n_pos + j] = (float)acc * scale;
    }
}

template <typename T>
void ref_attn_values(const float* p, int64_t r, const T* v, int64_t vstride, int64_t n_pos, int64_t d, float* out) {
  for (int64_t h = 0; h < r; ++h)
    for (int64_t i = 0; i < d; ++i) {
      double acc = 0;
      for (int64_t j = 0; j < n_pos; ++j) acc += (double)p[h * n_pos + j] * kv_value(v[j * vstride + i]);
      out[h * d + i] = (float)acc;
    }
}

void ref_f32_to_f16(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = f32_to_fp16(x[i]);
}

void ref_dequant_q8_blocks(const int8_t* codes, const uint8_t* scales, int64_t nb, float* out) {
  for (int64_t b = 0; b < nb; ++b) {
    float s;
    std::memcpy(&s, scales + b * 4, 4);
    for (int64_t i = 0; i < 32; ++i) out[b * 32 + i] = s * (float)codes[b * 32 + i];
  }
}

void ref_dequant_q4_blocks(const uint8_t* codes, const uint8_t* scales, int64_t nb, float* out) {
  for (int64_t b = 0; b < nb; ++b) {
    float s;
    std::memcpy(&s, scales + b * 4, 4);
    for (int64_t i = 0; i < 16; ++i) {
      const uint8_t c = codes[b * 16 + i];
      out[b * 32 + 2 * i] = s * (float)((int)(c & 15) - 8);
      out[b * 32 + 2 * i + 1] = s * (float)((int)(c >> 4) - 8);
    }
  }
}

}  // namespace

void ref_rmsnorm(const float* x, const float* w, float eps, int64_t n, float* y) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += (double)x[i] * x[i];
  const float inv = 1.0f / std::sqrt((float)(ss / (double)n) + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = w[i] * (x[i] * inv);
}

void ref_layernorm(const float* x, const float* w, const float* b, float eps, int64_t n, float* y) {
  double mean = 0;
  for (int64_t i = 0; i < n; ++i) mean += x[i];
  mean /= (double)n;
  double var = 0;
  for (int64_t i = 0; i < n; ++i) var += ((double)x[i] - mean) * ((double)x[i] - mean);
  var /= (double)n;
  const float inv = 1.0f / std::sqrt((float)var + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = (float)((double)x[i] - mean) * inv * w[i] + b[i];
}

void ref_swiglu(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void ref_gelu(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678118654752f));
}

void ref_add(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void ref_rope(float* x, int64_t heads, int64_t d, const float* cos, const float* sin) {
  const int64_t half = d / 2;
  for (int64_t h = 0; h < heads; ++h) {
    float* v = x + h * d;
    for (int64_t i = 0; i < half; ++i) {
      const float a = v[i], b = v[i + half];
      v[i] = a * cos[i] - b * sin[i];
      v[i + half] = b * cos[i] + a * sin[i];
    }
  }
}

static float ref_row_max(const float* x, int64_t n, float init) {
  for (int64_t i = 0; i < n; ++i) init = std::max(init, x[i]);
  return init;
}

static float ref_exp_sum(float* x, int64_t n, float sub) {
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += x[i] = std::exp(x[i] - sub);
  return sum;
}

const KernelTable& scalar_table() {
  static const KernelTable t = [] {
    KernelTable k;
    k.isa = Isa::kScalar;
    k.quantize_acts = ref_quantize_acts;
    k.matmul_q8 = ref_matmul_tiled;
    k.matmul_q4 = ref_matmul_tiled;
    k.matmul_q4m = ref_matmul_tiled;
    k.matmul_float = ref_matmul_float;
    k.attn_scores_f16 = ref_attn_scores<uint16_t>;
    k.attn_values_f16 = ref_attn_values<uint16_t>;
    k.attn_scores_f32 = ref_attn_scores<float>;
    k.attn_values_f32 = ref_attn_values<float>;
    k.row_max = ref_row_max;
    k.exp_sum = ref_exp_sum;
    k.rmsnorm = ref_rmsnorm;
    k.layernorm = ref_layernorm;
    k.swiglu = ref_swiglu;
    k.gelu = ref_gelu;
    k.add = ref_add;
    k.rope = ref_rope;
    k.f32_to_f16 = ref_f32_to_f16;
    k.dequant_q8_blocks = ref_dequant_q8_blocks;
    k.dequant_q4_blocks = ref_dequant_q4_blocks;
    return k;
  }();
  return t;
}

}  // namespace cria::kernels
