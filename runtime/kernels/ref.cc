// The scalar reference kernels: the definition of every op, written for
// clarity and accumulated in double precision. Int8 weight types (Q8, Q4,
// Q4M) multiply the dequantized weights with the activations as quantized by
// quantize_acts, on every backend: that is the computation, and the fast
// kernels differ from this table only by float summation order.
#include <cmath>
#include <cstring>
#include <vector>

#include "quant/fp16.h"
#include "runtime/kernels/kernels.h"
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

void ref_matmul_tiled(const Matrix& w, const QActs& a, int64_t n, int64_t tile0, int64_t tile1, float* y,
                      int64_t ldy) {
  const int64_t cols = (int64_t)w.cols();
  std::vector<float> row(cols), x(cols);
  for (int64_t r = tile0 * kTileRows; r < tile1 * (int64_t)kTileRows && r < (int64_t)w.rows(); ++r) {
    dequantize_row(w.type, w.data, w.l, (uint64_t)r, row.data());
    for (int64_t t = 0; t < n; ++t) {
      double acc = 0;
      for (int64_t k = 0; k < cols; ++k) acc += (double)row[k] * (double)a.q[t * a.cols + k] * a.d[t * (a.cols / 32) + k / 32];
      y[t * ldy + r] = (float)acc;
    }
  }
}

void ref_matmul_float(const Matrix& w, const float* x, int64_t n, int64_t ldx, int64_t row0, int64_t row1, float* y,
                      int64_t ldy) {
  const int64_t cols = (int64_t)w.cols();
  std::vector<float> row(cols);
  for (int64_t r = row0; r < row1; ++r) {
    dequantize_row(w.type, w.data, w.l, (uint64_t)r, row.data());
    for (int64_t t = 0; t < n; ++t) {
      double acc = 0;
      for (int64_t k = 0; k < cols; ++k) acc += (double)row[k] * (double)x[t * ldx + k];
      y[t * ldy + r] = (float)acc;
    }
  }
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

void ref_softmax(float* x, int64_t n) {
  float mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) mx = std::fmax(mx, x[i]);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = (float)(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
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
    k.rmsnorm = ref_rmsnorm;
    k.layernorm = ref_layernorm;
    k.softmax = ref_softmax;
    k.swiglu = ref_swiglu;
    k.gelu = ref_gelu;
    k.add = ref_add;
    k.rope = ref_rope;
    k.f32_to_f16 = ref_f32_to_f16;
    return k;
  }();
  return t;
}

}  // namespace cria::kernels
