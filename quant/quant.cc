#include "quant/quant.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#include "quant/fp16.h"

namespace cria {

namespace {

// The converter spends its time in the scale search (code_sums below). It is
// written with GCC/Clang vector types of V = 4, 8 or 16 floats; x86-64 GCC
// builds pick the widest the CPU has at run time (AVX-512, AVX2, else SSE2).
// Every width gives the same bits.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__EMSCRIPTEN__)
#define CRIA_QUANT_X86_DISPATCH 1
#endif

inline float round_fp16(float x) { return fp16_to_f32(f32_to_fp16(x)); }

// Round to nearest even for |x| < 2^22 without a library call, so the
// search loops below vectorize.
inline float rnd(float x) { return (x + 12582912.0f) - 12582912.0f; }

// Rounds as lrintf does in the default mode; callers clamp first.
inline int nearest_int(float x) { return (int)rnd(x); }

// Weighted squared error of quantizing x with scale d (and offset m), codes
// clamped to [qmin, qmax], with x_i ~ d * (q_i + zero) + m.
struct Fit {
  float d = 0, m = 0, err = INFINITY;
};

// Weighted sums of a code assignment; the squared error of any scale d (and
// offset m) for those codes follows from them without another pass:
//   err(d, m) = Sxx - 2 d Sxq - 2 m Sx + d^2 Sqq + 2 d m Sq + m^2 Sw.
// Re-rounding each x to the nearest code for the chosen (d, m), as the
// packer does, can only lower that error, so comparing candidates by it is
// sound.
struct Sums {
  float sw = 0, sx = 0, sxx = 0, sq = 0, sqq = 0, sxq = 0;
  float err(float d, float m) const {
    return sxx - 2 * d * sxq - 2 * m * sx + d * d * sqq + 2 * d * m * sq + m * m * sw;
  }
};

// The candidate-independent sums of a group.
inline Sums base_sums(const float* x, const float* w, int n) {
  Sums s;
  for (int i = 0; i < n; ++i) {
    const float wi = w ? w[i] : 1.0f;
    s.sw += wi;
    s.sx += wi * x[i];
    s.sxx += wi * x[i] * x[i];
  }
  return s;
}

// Sums of several code assignments at once: lane j of m0[g] and is[g] gives
// the codes round((x - m0) * is) clamped to [qmin, qmax]. V is a float or a
// vector of 4, 8 or 16 floats, no wider than the target's registers (GCC
// splits wider vectors lane by lane); G vectors run side by side. The
// accumulators stay in registers and lanes are never added together: each
// candidate sums in element order, so every machine writes the same file.
template <typename V, int G>
inline __attribute__((always_inline)) void code_sums(const float* x, const float* w, int n, const V* m0, const V* is,
                                                     float qmin, float qmax, V* sq, V* sqq, V* sxq) {
  const V lo = V{} + qmin, hi = V{} + qmax, big = V{} + 12582912.0f;
  V a[G] = {}, b[G] = {}, c[G] = {};
  for (int i = 0; i < n; ++i) {
    const float xi = x[i], wi = w ? w[i] : 1.0f, wxi = wi * xi;
    for (int g = 0; g < G; ++g) {
      V q = ((xi - m0[g]) * is[g] + big) - big;  // rnd(), lane-wise
      q = q < lo ? lo : q;
      q = q > hi ? hi : q;
      const V wq = wi * q;
      a[g] += wq;
      b[g] += wq * q;
      c[g] += wxi * q;
    }
  }
  for (int g = 0; g < G; ++g) {
    sq[g] = a[g];
    sqq[g] = b[g];
    sxq[g] = c[g];
  }
}

typedef float Lanes4 __attribute__((vector_size(16)));

// Candidates per search, the round-to-nearest start in lane 0 (a multiple
// of the widest vector; unused lanes repeat lane 0).
constexpr int kCandidates = 16;

// The search's candidates as vectors of V.
template <typename V>
struct CandidateSet {
  static constexpr int kL = (int)(sizeof(V) / sizeof(float)), kG = kCandidates / kL;
  float off[kCandidates] = {}, is[kCandidates] = {};
  void set(int k, float o, float i) {
    off[k] = o;
    is[k] = i;
  }
  // Fills s[k].sq, .sqq, .sxq for every candidate.
  inline __attribute__((always_inline)) void sums(const float* x, const float* w, int n, float qmin, float qmax,
                                                  Sums* s) const {
    V voff[kG], vis[kG], sq[kG], sqq[kG], sxq[kG];
    std::memcpy(voff, off, sizeof(off));
    std::memcpy(vis, is, sizeof(is));
    code_sums<V, kG>(x, w, n, voff, vis, qmin, qmax, sq, sqq, sxq);
    for (int k = 0; k < kCandidates; ++k) {
      s[k].sq = sq[k / kL][k % kL];
      s[k].sqq = sqq[k / kL][k % kL];
      s[k].sxq = sxq[k / kL][k % kL];
    }
  }
};

// One candidate: the round-to-nearest start.
inline void single_sums(const float* x, const float* w, int n, float m0, float is, float qmin, float qmax, Sums* s) {
  code_sums<float, 1>(x, w, n, &m0, &is, qmin, qmax, &s->sq, &s->sqq, &s->sxq);
}

// Symmetric: x ~ d * q, q in [qmin, qmax]. Starts from round-to-nearest with
// the signed extreme mapped onto `qextreme`; the search tries 12 more
// inverse scales around it, refits d by least squares for each code
// assignment, rounds d to fp16, and keeps the lowest error.
template <typename V>
inline __attribute__((always_inline)) Fit fit_symmetric_t(const float* x, const float* w, int n, int qmin, int qmax,
                                                       float qextreme, bool search) {
  float amax = 0, vmax = 0;
  for (int i = 0; i < n; ++i) {
    const float a = std::fabs(x[i]);
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
  const float lo = (float)qmin, hi = (float)qmax;
  const float d0 = round_fp16(vmax / qextreme);
  const Sums base = base_sums(x, w, n);
  Sums s[kCandidates];
  for (Sums& e : s) e = base;
  const float is0 = d0 != 0 ? 1.0f / d0 : 0.0f;
  if (!search) {
    single_sums(x, w, n, 0.0f, is0, lo, hi, &s[0]);
    return {d0, 0.0f, s[0].err(d0, 0.0f)};
  }
  CandidateSet<V> c;
  int k = 0;
  c.set(k++, 0.0f, is0);
  for (int step = -6; step <= 6; ++step)
    if (step != 0) c.set(k++, 0.0f, (qextreme + 0.1f * (float)step) / vmax);
  for (; k < kCandidates; ++k) c.set(k, 0.0f, is0);
  c.sums(x, w, n, lo, hi, s);
  best = {d0, 0.0f, s[0].err(d0, 0.0f)};
  for (k = 1; k <= 12; ++k) {
    if (s[k].sqq <= 0) continue;
    const float d = round_fp16(s[k].sxq / s[k].sqq);
    const float err = s[k].err(d, 0.0f);
    if (err < best.err) best = {d, 0.0f, err};
  }
  return best;
}

// Asymmetric: x ~ d * q + m, q in [0, 15].
template <typename V>
inline __attribute__((always_inline)) Fit fit_asymmetric_t(const float* x, const float* w, int n, bool search) {
  float mn = x[0], mx = x[0];
  for (int i = 1; i < n; ++i) {
    mn = std::min(mn, x[i]);
    mx = std::max(mx, x[i]);
  }
  const float d0 = round_fp16((mx - mn) / 15.0f);
  const float m0 = round_fp16(mn);
  const Sums base = base_sums(x, w, n);
  Sums s[kCandidates];
  for (Sums& e : s) e = base;
  const float is0 = d0 != 0 ? 1.0f / d0 : 0.0f;
  if (!search || mx == mn) {
    single_sums(x, w, n, m0, is0, 0.0f, 15.0f, &s[0]);
    return {d0, m0, s[0].err(d0, m0)};
  }
  CandidateSet<V> c;
  int k = 0;
  c.set(k++, m0, is0);
  for (int step = -4; step <= 4; ++step) c.set(k++, mn, (15.0f + 0.25f * (float)step) / (mx - mn));
  for (; k < kCandidates; ++k) c.set(k, m0, is0);
  c.sums(x, w, n, 0.0f, 15.0f, s);
  Fit best = {d0, m0, s[0].err(d0, m0)};
  for (k = 1; k <= 9; ++k) {
    // Least squares for (d, m) given the codes.
    const float det = s[k].sw * s[k].sqq - s[k].sq * s[k].sq;
    if (det <= 0) continue;
    float d = (s[k].sw * s[k].sxq - s[k].sq * s[k].sx) / det;
    float m = (s[k].sqq * s[k].sx - s[k].sq * s[k].sxq) / det;
    if (d <= 0) continue;
    d = round_fp16(d);
    m = round_fp16(m);
    const float err = s[k].err(d, m);
    if (err < best.err) best = {d, m, err};
  }
  return best;
}

// The scale search of one group: symmetric codes in [qmin, qmax] with the
// signed extreme on `qextreme`, or asymmetric (Q4M) codes in [0, 15].
struct FitKind {
  int qmin, qmax;
  float qextreme;
  bool asym;
};
constexpr FitKind kFitQ8{-127, 127, 127.0f, false}, kFitQ4{-8, 7, -8.0f, false}, kFitQ4M{0, 15, 0.0f, true};

template <typename V>
inline __attribute__((always_inline)) Fit fit_t(const float* x, const float* w, int n, const FitKind& k, bool search) {
  return k.asym ? fit_asymmetric_t<V>(x, w, n, search) : fit_symmetric_t<V>(x, w, n, k.qmin, k.qmax, k.qextreme, search);
}

std::atomic<int> g_vector_limit{2};

#if CRIA_QUANT_X86_DISPATCH
typedef float Lanes8 __attribute__((vector_size(32)));
typedef float Lanes16 __attribute__((vector_size(64)));
__attribute__((target("avx512f,avx512vl"))) Fit fit_avx512(const float* x, const float* w, int n, const FitKind& k,
                                                            bool search) {
  return fit_t<Lanes16>(x, w, n, k, search);
}
__attribute__((target("avx2"))) Fit fit_avx2(const float* x, const float* w, int n, const FitKind& k, bool search) {
  return fit_t<Lanes8>(x, w, n, k, search);
}

// 2: AVX-512, 1: AVX2, 0: SSE2.
int x86_level() {
  static const int cpu = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") ? 2
                         : __builtin_cpu_supports("avx2")                                         ? 1
                                                                                                  : 0;
  return std::min(cpu, g_vector_limit.load(std::memory_order_relaxed));
}
#endif

Fit fit(const float* x, const float* w, int n, const FitKind& k, bool search) {
#if CRIA_QUANT_X86_DISPATCH
  switch (x86_level()) {
    case 2:
      return fit_avx512(x, w, n, k, search);
    case 1:
      return fit_avx2(x, w, n, k, search);
  }
#endif
  return fit_t<Lanes4>(x, w, n, k, search);
}

// Byte offset of column k of tile row r within a tile, and the nibble shift
// (Q4). See the layout in quant.h.
inline uint64_t q4_offset(uint64_t r, uint64_t k) {
  const uint64_t e = k & 31;
  return (k >> 5) * 256 + (e >> 3) * 64 + r * 4 + (e & 3);
}
inline int q4_shift(uint64_t k) { return (k & 4) ? 4 : 0; }
inline uint64_t q8_offset(uint64_t r, uint64_t k) {
  const uint64_t e = k & 31;
  return (k >> 5) * 512 + (e >> 2) * 64 + r * 4 + (e & 3);
}

// Codes and scales of one group, from the fits above.
void quantize_group(QType t, const float* x, const float* w, uint32_t n, bool search, QGroup* g) {
  if (t == QType::kQ8) {
    Fit f = fit(x, w, (int)n, kFitQ8, search);
    g->d = f32_to_fp16(std::fabs(f.d));
    const float d = fp16_to_f32(g->d);
    const float id = d != 0 ? 1.0f / d : 0.0f;
    for (uint32_t j = 0; j < n; ++j) g->u[j] = (uint8_t)(nearest_int(std::clamp(x[j] * id, -127.0f, 127.0f)) + 128);
    return;
  }
  const bool asym = t == QType::kQ4M;
  Fit f = fit(x, w, (int)n, asym ? kFitQ4M : kFitQ4, search);
  g->d = f32_to_fp16(f.d);
  g->m = asym ? f32_to_fp16(f.m) : 0;
  const float d = fp16_to_f32(g->d);
  const float m = asym ? fp16_to_f32(g->m) : 0.0f;
  const float id = d != 0 ? 1.0f / d : 0.0f;
  for (uint32_t j = 0; j < n; ++j) {
    g->u[j] = asym ? (uint8_t)nearest_int(std::clamp((x[j] - m) * id, 0.0f, 15.0f))
                   : (uint8_t)(nearest_int(std::clamp(x[j] * id, -8.0f, 7.0f)) + 8);
  }
}

float group_value(QType t, const QGroup& g, uint32_t j) {
  const float d = fp16_to_f32(g.d);
  if (t == QType::kQ8) return (float)((int)g.u[j] - 128) * d;
  if (t == QType::kQ4M) return (float)g.u[j] * d + fp16_to_f32(g.m);
  return (float)((int)g.u[j] - 8) * d;
}

// Dequantizes row rr of the tile whose planes start at q, s, m.
void read_tile_row(QType t, const QLayout& l, const uint8_t* q, const uint8_t* s, const uint8_t* m, uint64_t rr,
                   float* dst) {
  QGroup g;
  for (uint64_t gi = 0; gi < l.groups; ++gi) {
    const uint64_t k0 = gi * l.group;
    for (uint32_t j = 0; j < l.group; ++j)
      g.u[j] = t == QType::kQ8 ? q[q8_offset(rr, k0 + j)] : (q[q4_offset(rr, k0 + j)] >> q4_shift(k0 + j)) & 15;
    std::memcpy(&g.d, s + (gi * kTileRows + rr) * 2, 2);
    if (m) std::memcpy(&g.m, m + (gi * kTileRows + rr) * 2, 2);
    for (uint32_t j = 0; j < l.group; ++j) dst[k0 + j] = group_value(t, g, j);
  }
}

void quantize_i8c_row(const float* x, uint64_t cols, int8_t* q, float* s) {
  float amax = 0;
  for (uint64_t i = 0; i < cols; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float d = amax / 127.0f;
  const float id = d != 0 ? 1.0f / d : 0.0f;
  *s = d;
  for (uint64_t i = 0; i < cols; ++i) q[i] = (int8_t)nearest_int(std::clamp(x[i] * id, -127.0f, 127.0f));
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

bool qtype_is_tiled(QType t) { return t == QType::kQ8 || t == QType::kQ4 || t == QType::kQ4M; }

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
  l.rows = rows;
  l.cols = cols;
  l.group = group;
  if (!qtype_group_ok(t, group)) return false;
  switch (t) {
    case QType::kF32:
    case QType::kF16:
    case QType::kBF16:
      l.row_bytes = cols * (t == QType::kF32 ? 4 : 2);
      l.q_bytes = rows * l.row_bytes;
      l.total = l.q_bytes;
      break;
    case QType::kQ8:
    case QType::kQ4:
    case QType::kQ4M:
      if (cols == 0 || cols % group != 0) return false;
      l.tiles = (rows + kTileRows - 1) / kTileRows;
      l.blocks = cols / kBlock;
      l.groups = cols / group;
      l.tile_q_bytes = l.blocks * (t == QType::kQ8 ? 512 : 256);
      l.tile_s_bytes = l.groups * kTileRows * 2;
      l.q_bytes = l.tiles * l.tile_q_bytes;
      l.s_offset = align_up(l.q_bytes, kPlaneAlign);
      l.s_bytes = l.tiles * l.tile_s_bytes;
      l.total = l.s_offset + l.s_bytes;
      if (t == QType::kQ4M) {
        l.m_offset = align_up(l.total, kPlaneAlign);
        l.m_bytes = l.s_bytes;
        l.total = l.m_offset + l.m_bytes;
      }
      break;
    case QType::kI8C:
      l.row_bytes = cols;
      l.q_bytes = rows * cols;
      l.s_offset = align_up(l.q_bytes, kPlaneAlign);
      l.s_bytes = rows * 4;
      l.total = l.s_offset + l.s_bytes;
      break;
  }
  *out = l;
  return true;
}

QPlanesConst qplanes_at(const uint8_t* tensor, const QLayout& l, uint64_t row) {
  QPlanesConst p;
  if (l.tiles) {
    const uint64_t tile = row / kTileRows;
    p.q = tensor + l.q_offset + tile * l.tile_q_bytes;
    p.s = tensor + l.s_offset + tile * l.tile_s_bytes;
    if (l.m_bytes) p.m = tensor + l.m_offset + tile * l.tile_s_bytes;
  } else {
    p.q = tensor + l.q_offset + row * l.row_bytes;
    if (l.s_bytes) p.s = tensor + l.s_offset + row * 4;
  }
  return p;
}

QPlanes qplanes_at(uint8_t* tensor, const QLayout& l, uint64_t row) {
  QPlanesConst c = qplanes_at(static_cast<const uint8_t*>(tensor), l, row);
  return {const_cast<uint8_t*>(c.q), const_cast<uint8_t*>(c.s), const_cast<uint8_t*>(c.m)};
}

void pack_group(QType t, const QLayout& l, uint64_t row, uint64_t gi, const QGroup& g, QPlanes chunk,
                uint64_t chunk_row0) {
  const uint64_t rel = row - chunk_row0;  // chunk_row0 is tile-aligned
  uint8_t* q = chunk.q + (rel / kTileRows) * l.tile_q_bytes;
  const uint64_t r = rel % kTileRows;
  const uint64_t k0 = gi * l.group;
  // Groups are whole 32-column blocks (k0 % 32 == 0): each block's codes
  // land as 4-byte runs, one per 64-byte chunk (see q4_offset, q8_offset).
  for (uint32_t b = 0; b < l.group; b += 32) {
    const uint8_t* u = g.u + b;
    if (t == QType::kQ8) {
      uint8_t* dst = q + q8_offset(r, k0 + b);
      for (int c = 0; c < 8; ++c) std::memcpy(dst + c * 64, u + c * 4, 4);
    } else {
      uint8_t* dst = q + q4_offset(r, k0 + b);
      for (int c = 0; c < 4; ++c)
        for (int i = 0; i < 4; ++i) dst[c * 64 + i] = (uint8_t)((u[8 * c + i] & 15) | (u[8 * c + 4 + i] & 15) << 4);
    }
  }
  const uint64_t so = (rel / kTileRows) * l.tile_s_bytes + (gi * kTileRows + r) * 2;
  std::memcpy(chunk.s + so, &g.d, 2);
  if (t == QType::kQ4M) std::memcpy(chunk.m + so, &g.m, 2);
}

void unpack_group(QType t, const QLayout& l, uint64_t row, uint64_t gi, const uint8_t* tensor, QGroup* g) {
  QPlanesConst p = qplanes_at(tensor, l, row);
  const uint64_t r = row % kTileRows;
  const uint64_t k0 = gi * l.group;
  for (uint32_t j = 0; j < l.group; ++j) {
    g->u[j] = t == QType::kQ8 ? p.q[q8_offset(r, k0 + j)] : (p.q[q4_offset(r, k0 + j)] >> q4_shift(k0 + j)) & 15;
  }
  const uint64_t so = (gi * kTileRows + r) * 2;
  std::memcpy(&g->d, p.s + so, 2);
  g->m = 0;
  if (t == QType::kQ4M) std::memcpy(&g->m, p.m + so, 2);
}

int set_quant_vector_limit(int level) { return g_vector_limit.exchange(level); }

void quantize_rows(QType t, const float* src, uint64_t rows, const QLayout& l, QPlanes dst,
                   const QuantOptions& opt) {
  const uint64_t cols = l.cols;
  if (qtype_is_tiled(t)) {
    // Zero the chunk's tiles first: padding rows must decode to 0.
    const uint64_t tiles = (rows + kTileRows - 1) / kTileRows;
    std::memset(dst.q, 0, tiles * l.tile_q_bytes);
    std::memset(dst.s, 0, tiles * l.tile_s_bytes);
    if (dst.m) std::memset(dst.m, 0, tiles * l.tile_s_bytes);
    QGroup g;
    for (uint64_t r = 0; r < rows; ++r) {
      for (uint64_t gi = 0; gi < l.groups; ++gi) {
        const float* w = opt.importance ? opt.importance + gi * l.group : nullptr;
        quantize_group(t, src + r * cols + gi * l.group, w, l.group, opt.search, &g);
        pack_group(t, l, r, gi, g, dst, 0);
      }
    }
    return;
  }
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
      case QType::kI8C: {
        float s;
        quantize_i8c_row(x, cols, reinterpret_cast<int8_t*>(dst.q) + r * cols, &s);
        std::memcpy(dst.s + r * 4, &s, 4);
        break;
      }
      default:
        break;
    }
  }
}

void dequantize_rows(QType t, QPlanesConst src, uint64_t rows, const QLayout& l, float* dst) {
  const uint64_t cols = l.cols;
  if (qtype_is_tiled(t)) {
    for (uint64_t r = 0; r < rows; ++r) {
      const uint64_t tile = r / kTileRows;
      read_tile_row(t, l, src.q + tile * l.tile_q_bytes, src.s + tile * l.tile_s_bytes,
                    src.m ? src.m + tile * l.tile_s_bytes : nullptr, r % kTileRows, dst + r * cols);
    }
    return;
  }
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
      case QType::kI8C: {
        const int8_t* q = reinterpret_cast<const int8_t*>(src.q) + r * cols;
        float s;
        std::memcpy(&s, src.s + r * 4, 4);
        for (uint64_t i = 0; i < cols; ++i) y[i] = (float)q[i] * s;
        break;
      }
      default:
        break;
    }
  }
}

void dequantize_row(QType t, const uint8_t* tensor, const QLayout& l, uint64_t row, float* dst) {
  if (qtype_is_tiled(t)) {
    QPlanesConst p = qplanes_at(tensor, l, row);
    read_tile_row(t, l, p.q, p.s, p.m, row % kTileRows, dst);
    return;
  }
  dequantize_rows(t, qplanes_at(tensor, l, row), 1, l, dst);
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
    case QType::kQ8: return 8 + 16.0 / group;  // the zero point is implicit
    case QType::kQ4: return 4 + 16.0 / group;
    case QType::kQ4M: return 4 + 32.0 / group;
    case QType::kI8C: return 8;
  }
  return 0;
}

}  // namespace cria
