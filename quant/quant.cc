#include "quant/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "quant/fp16.h"

namespace cria {

namespace {

constexpr int kBlock = 32;  // Q4 nibble block (GGML order inside)

inline float round_fp16(float x) { return fp16_to_f32(f32_to_fp16(x)); }

inline int nearest_int(float x) { return (int)std::lrintf(x); }

// Weighted squared error of quantizing x with scale d (and offset m), codes
// clamped to [qmin, qmax], with x_i ~ d * (q_i + zero) + m.
struct Fit {
  float d = 0, m = 0, err = INFINITY;
};

// Symmetric: x ~ d * q, q in [qmin, qmax]. Tries `ncand` inverse scales around
// the one that maps the signed extreme to `qextreme`, refits d by least squares
// for each code assignment, rounds d to fp16 and keeps the lowest error.
Fit fit_symmetric(const float* x, const float* w, int n, int qmin, int qmax, float qextreme,
                  bool search) {
  float amax = 0, vmax = 0;
  for (int i = 0; i < n; ++i) {
    float a = std::fabs(x[i]);
    if (a > amax) {
      amax = a;
      vmax = x[i];
    }
  }
  Fit best;
  if (amax == 0) {
    best.d = 0;
    best.err = 0;
    return best;
  }
  auto eval = [&](float d) {
    float err = 0;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    for (int i = 0; i < n; ++i) {
      int q = std::clamp(nearest_int(x[i] * id), qmin, qmax);
      float e = x[i] - d * (float)q;
      err += (w ? w[i] : 1.0f) * e * e;
    }
    return err;
  };
  // Plain round-to-nearest: the signed extreme maps onto qextreme.
  {
    float d = round_fp16(vmax / qextreme);
    best.d = d;
    best.err = eval(d);
  }
  if (!search) return best;
  for (int is = -6; is <= 6; ++is) {
    if (is == 0) continue;
    const float iscale = (qextreme + 0.1f * (float)is) / vmax;
    float sxq = 0, sqq = 0;
    for (int i = 0; i < n; ++i) {
      int q = std::clamp(nearest_int(x[i] * iscale), qmin, qmax);
      float wi = w ? w[i] : 1.0f;
      sxq += wi * x[i] * (float)q;
      sqq += wi * (float)q * (float)q;
    }
    if (sqq <= 0) continue;
    float d = round_fp16(sxq / sqq);
    float err = eval(d);
    if (err < best.err) {
      best.d = d;
      best.err = err;
    }
  }
  return best;
}

// Asymmetric: x ~ d * q + m, q in [0, 15].
Fit fit_asymmetric(const float* x, const float* w, int n, bool search) {
  float mn = x[0], mx = x[0];
  for (int i = 1; i < n; ++i) {
    mn = std::min(mn, x[i]);
    mx = std::max(mx, x[i]);
  }
  Fit best;
  auto eval = [&](float d, float m) {
    float err = 0;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    for (int i = 0; i < n; ++i) {
      int q = std::clamp(nearest_int((x[i] - m) * id), 0, 15);
      float e = x[i] - (d * (float)q + m);
      err += (w ? w[i] : 1.0f) * e * e;
    }
    return err;
  };
  {
    float d = round_fp16((mx - mn) / 15.0f);
    float m = round_fp16(mn);
    best = {d, m, eval(d, m)};
  }
  if (!search || mx == mn) return best;
  for (int is = -4; is <= 4; ++is) {
    const float iscale = (15.0f + 0.25f * (float)is) / (mx - mn);
    // Least squares for (d, m) given the codes.
    float sw = 0, sq = 0, sqq = 0, sx = 0, sxq = 0;
    for (int i = 0; i < n; ++i) {
      int q = std::clamp(nearest_int((x[i] - mn) * iscale), 0, 15);
      float wi = w ? w[i] : 1.0f;
      sw += wi;
      sq += wi * q;
      sqq += wi * q * q;
      sx += wi * x[i];
      sxq += wi * x[i] * q;
    }
    float det = sw * sqq - sq * sq;
    if (det <= 0) continue;
    float d = (sw * sxq - sq * sx) / det;
    float m = (sqq * sx - sq * sxq) / det;
    if (d <= 0) continue;
    d = round_fp16(d);
    m = round_fp16(m);
    float err = eval(d, m);
    if (err < best.err) best = {d, m, err};
  }
  return best;
}

void quantize_q4_row(const float* x, uint64_t cols, uint32_t group, uint8_t* q, uint16_t* s,
                     uint16_t* m, bool asym, const QuantOptions& opt) {
  const uint64_t ngroups = cols / group;
  for (uint64_t g = 0; g < ngroups; ++g) {
    const float* xg = x + g * group;
    const float* wg = opt.importance ? opt.importance + g * group : nullptr;
    Fit f = asym ? fit_asymmetric(xg, wg, (int)group, opt.search)
                 : fit_symmetric(xg, wg, (int)group, -8, 7, -8.0f, opt.search);
    s[g] = f32_to_fp16(f.d);
    if (asym) m[g] = f32_to_fp16(f.m);
    const float d = fp16_to_f32(s[g]);
    const float mm = asym ? fp16_to_f32(m[g]) : 0.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    for (uint32_t b = 0; b < group; b += kBlock) {
      uint8_t* qb = q + (g * group + b) / 2;
      for (int j = 0; j < kBlock / 2; ++j) {
        int lo, hi;
        if (asym) {
          lo = std::clamp(nearest_int((xg[b + j] - mm) * id), 0, 15);
          hi = std::clamp(nearest_int((xg[b + j + 16] - mm) * id), 0, 15);
        } else {
          lo = std::clamp(nearest_int(xg[b + j] * id), -8, 7) + 8;
          hi = std::clamp(nearest_int(xg[b + j + 16] * id), -8, 7) + 8;
        }
        qb[j] = (uint8_t)(lo | (hi << 4));
      }
    }
  }
}

void quantize_q8_row(const float* x, uint64_t cols, uint32_t group, int8_t* q, uint16_t* s,
                     const QuantOptions& opt) {
  const uint64_t ngroups = cols / group;
  for (uint64_t g = 0; g < ngroups; ++g) {
    const float* xg = x + g * group;
    const float* wg = opt.importance ? opt.importance + g * group : nullptr;
    Fit f = fit_symmetric(xg, wg, (int)group, -127, 127, 127.0f, opt.search);
    // For Q8 the extreme maps to +127 with the sign of the extreme.
    s[g] = f32_to_fp16(std::fabs(f.d));
    const float d = fp16_to_f32(s[g]);
    const float id = d != 0 ? 1.0f / d : 0.0f;
    for (uint32_t j = 0; j < group; ++j) {
      q[g * group + j] = (int8_t)std::clamp(nearest_int(xg[j] * id), -127, 127);
    }
  }
}

void quantize_i8c_row(const float* x, uint64_t cols, int8_t* q, float* s) {
  float amax = 0;
  for (uint64_t i = 0; i < cols; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float d = amax / 127.0f;
  const float id = d != 0 ? 1.0f / d : 0.0f;
  *s = d;
  for (uint64_t i = 0; i < cols; ++i) q[i] = (int8_t)std::clamp(nearest_int(x[i] * id), -127, 127);
}

}  // namespace

const char* qtype_name(QType t) {
  switch (t) {
    case QType::kF32: return "f32";
    case QType::kF16: return "f16";
    case QType::kBF16: return "bf16";
    case QType::kQ8: return "q8";
    case QType::kQ4: return "q4";
    case QType::kQ4M: return "q4m";
    case QType::kI8C: return "i8c";
  }
  return "?";
}

bool qtype_from_name(const std::string& name, QType* out) {
  for (int i = 0; i < kNumQTypes; ++i) {
    if (name == qtype_name((QType)i)) {
      *out = (QType)i;
      return true;
    }
  }
  return false;
}

bool qtype_is_quantized(QType t) {
  return t == QType::kQ8 || t == QType::kQ4 || t == QType::kQ4M || t == QType::kI8C;
}

bool qtype_group_ok(QType t, uint32_t group) {
  switch (t) {
    case QType::kQ8: return group == 32;
    case QType::kQ4:
    case QType::kQ4M: return group == 32 || group == 128;
    default: return group == 0;
  }
}

bool qlayout(QType t, uint64_t rows, uint64_t cols, uint32_t group, QLayout* out) {
  QLayout l;
  switch (t) {
    case QType::kF32:
    case QType::kF16:
    case QType::kBF16: {
      const uint64_t esz = t == QType::kF32 ? 4 : 2;
      l.row_q_bytes = cols * esz;
      l.q_bytes = rows * cols * esz;
      l.total = l.q_bytes;
      *out = l;
      return true;
    }
    case QType::kQ8:
    case QType::kQ4:
    case QType::kQ4M:
      if (!qtype_group_ok(t, group) || cols % group != 0) return false;
      l.groups_per_row = cols / group;
      l.row_q_bytes = t == QType::kQ8 ? cols : cols / 2;
      l.q_bytes = rows * l.row_q_bytes;
      l.s_row_bytes = l.groups_per_row * 2;
      l.s_offset = align_up(l.q_bytes, kPlaneAlign);
      l.s_bytes = rows * l.s_row_bytes;
      l.total = l.s_offset + l.s_bytes;
      if (t == QType::kQ4M) {
        l.m_offset = align_up(l.total, kPlaneAlign);
        l.m_bytes = l.s_bytes;
        l.total = l.m_offset + l.m_bytes;
      }
      *out = l;
      return true;
    case QType::kI8C:
      l.groups_per_row = 1;
      l.row_q_bytes = cols;
      l.s_row_bytes = 4;
      l.q_bytes = rows * cols;
      l.s_offset = align_up(l.q_bytes, kPlaneAlign);
      l.s_bytes = rows * 4;
      l.total = l.s_offset + l.s_bytes;
      *out = l;
      return true;
  }
  return false;
}

QPlanesConst qplanes_at(const uint8_t* tensor, const QLayout& l, uint64_t row) {
  QPlanesConst p(tensor + l.q_offset + row * l.row_q_bytes, nullptr, nullptr);
  if (l.s_bytes) p.s = tensor + l.s_offset + row * l.s_row_bytes;
  if (l.m_bytes) p.m = tensor + l.m_offset + row * l.s_row_bytes;
  return p;
}

QPlanes qplanes_at(uint8_t* tensor, const QLayout& l, uint64_t row) {
  QPlanesConst c = qplanes_at(static_cast<const uint8_t*>(tensor), l, row);
  return {const_cast<uint8_t*>(c.q), const_cast<void*>(c.s), const_cast<void*>(c.m)};
}

void quantize_rows(QType t, const float* src, uint64_t rows, uint64_t cols, uint32_t group,
                   QPlanes dst, const QuantOptions& opt) {
  for (uint64_t r = 0; r < rows; ++r) {
    const float* x = src + r * cols;
    switch (t) {
      case QType::kF32:
        std::memcpy(dst.q + r * cols * 4, x, cols * 4);
        break;
      case QType::kF16: {
        uint16_t* o = reinterpret_cast<uint16_t*>(dst.q) + r * cols;
        for (uint64_t i = 0; i < cols; ++i) o[i] = f32_to_fp16(x[i]);
        break;
      }
      case QType::kBF16: {
        uint16_t* o = reinterpret_cast<uint16_t*>(dst.q) + r * cols;
        for (uint64_t i = 0; i < cols; ++i) o[i] = f32_to_bf16(x[i]);
        break;
      }
      case QType::kQ8:
        quantize_q8_row(x, cols, group, reinterpret_cast<int8_t*>(dst.q) + r * cols,
                        static_cast<uint16_t*>(dst.s) + r * (cols / group), opt);
        break;
      case QType::kQ4:
      case QType::kQ4M:
        quantize_q4_row(x, cols, group, dst.q + r * (cols / 2),
                        static_cast<uint16_t*>(dst.s) + r * (cols / group),
                        t == QType::kQ4M ? static_cast<uint16_t*>(dst.m) + r * (cols / group) : nullptr,
                        t == QType::kQ4M, opt);
        break;
      case QType::kI8C:
        quantize_i8c_row(x, cols, reinterpret_cast<int8_t*>(dst.q) + r * cols,
                         static_cast<float*>(dst.s) + r);
        break;
    }
  }
}

void dequantize_rows(QType t, QPlanesConst src, uint64_t rows, uint64_t cols, uint32_t group,
                     float* dst) {
  for (uint64_t r = 0; r < rows; ++r) {
    float* y = dst + r * cols;
    switch (t) {
      case QType::kF32:
        std::memcpy(y, src.q + r * cols * 4, cols * 4);
        break;
      case QType::kF16: {
        const uint16_t* h = reinterpret_cast<const uint16_t*>(src.q) + r * cols;
        for (uint64_t i = 0; i < cols; ++i) y[i] = fp16_to_f32(h[i]);
        break;
      }
      case QType::kBF16: {
        const uint16_t* h = reinterpret_cast<const uint16_t*>(src.q) + r * cols;
        for (uint64_t i = 0; i < cols; ++i) y[i] = bf16_to_f32(h[i]);
        break;
      }
      case QType::kQ8: {
        const int8_t* q = reinterpret_cast<const int8_t*>(src.q) + r * cols;
        const uint16_t* s = static_cast<const uint16_t*>(src.s) + r * (cols / group);
        for (uint64_t i = 0; i < cols; ++i) y[i] = (float)q[i] * fp16_to_f32(s[i / group]);
        break;
      }
      case QType::kQ4:
      case QType::kQ4M: {
        const uint8_t* q = src.q + r * (cols / 2);
        const uint16_t* s = static_cast<const uint16_t*>(src.s) + r * (cols / group);
        const uint16_t* m =
            t == QType::kQ4M ? static_cast<const uint16_t*>(src.m) + r * (cols / group) : nullptr;
        for (uint64_t b = 0; b < cols; b += kBlock) {
          const uint8_t* qb = q + b / 2;
          const float d = fp16_to_f32(s[b / group]);
          const float mm = m ? fp16_to_f32(m[b / group]) : 0.0f;
          const int zero = m ? 0 : 8;
          for (int j = 0; j < kBlock / 2; ++j) {
            y[b + j] = (float)((qb[j] & 15) - zero) * d + mm;
            y[b + j + 16] = (float)((qb[j] >> 4) - zero) * d + mm;
          }
        }
        break;
      }
      case QType::kI8C: {
        const int8_t* q = reinterpret_cast<const int8_t*>(src.q) + r * cols;
        const float s = static_cast<const float*>(src.s)[r];
        for (uint64_t i = 0; i < cols; ++i) y[i] = (float)q[i] * s;
        break;
      }
    }
  }
}

QuantError quant_error(const float* x, const float* y, uint64_t n) {
  QuantError e;
  double se = 0, sx = 0;
  for (uint64_t i = 0; i < n; ++i) {
    double d = (double)x[i] - (double)y[i];
    se += d * d;
    sx += (double)x[i] * x[i];
    e.max_abs = std::max(e.max_abs, std::fabs(d));
    e.data_max_abs = std::max(e.data_max_abs, std::fabs((double)x[i]));
  }
  if (n) {
    e.rms = std::sqrt(se / (double)n);
    e.data_rms = std::sqrt(sx / (double)n);
  }
  return e;
}

double qtype_bits_per_weight(QType t, uint32_t group) {
  switch (t) {
    case QType::kF32: return 32;
    case QType::kF16:
    case QType::kBF16: return 16;
    case QType::kQ8: return 8 + 16.0 / group;
    case QType::kQ4: return 4 + 16.0 / group;
    case QType::kQ4M: return 4 + 32.0 / group;
    case QType::kI8C: return 8;
  }
  return 0;
}

}  // namespace cria
