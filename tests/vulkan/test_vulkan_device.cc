// The Vulkan device layer (listing, device choice, errors as values,
// buffers) and the KV-cache ops: f16 append and one-token attention
// against the CPU's attention() on the scalar table.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "quant/fp16.h"
#include "runtime/kernels/kernels.h"
#include "runtime/kernels/ops.h"
#include "tests/vulkan/vk_test_util.h"

using namespace cria;
using namespace vktest;

TEST_CASE("vulkan device listing and choice") {
  Context* c = ctx();
  if (!c) return;
  auto devs = vk::list_devices();
  REQUIRE(devs.ok());
  REQUIRE(!devs->empty());
  const vk::DeviceInfo& d = c->info();
  MESSAGE("device " << d.index << ": " << d.name << " (" << d.type << "), subgroup " << d.subgroup_size
                    << ", maxStorageBufferRange " << d.max_storage_buffer_range << ", int8 dot "
                    << std::string(d.int8_dot ? "yes" : "no"));
  CHECK(d.name == (*devs)[d.index].name);
  CHECK(d.max_storage_buffer_range > 0);
  CHECK(d.subgroup_size > 0);

  // An index past the list is an error naming the count, not a crash.
  auto bad = Context::create((int)devs->size());
  REQUIRE(!bad.ok());
  CHECK(bad.status().code() == Code::kInvalidArgument);
  CHECK(bad.status().message().find("does not exist") != std::string::npos);
}

TEST_CASE("vulkan buffers: limits and out-of-range calls are errors") {
  Context* c = ctx();
  if (!c) return;
  // Larger than one binding may be: refused before any allocation.
  auto big = c->create_buffer(c->info().max_storage_buffer_range + 4, Buffer::Kind::kDevice, "blk.0.big");
  REQUIRE(!big.ok());
  CHECK(big.status().message().find("blk.0.big") != std::string::npos);
  CHECK(big.status().message().find("maxStorageBufferRange") != std::string::npos);

  Buffer small = nan_buffer(*c, 16);
  std::vector<float> host(32, 1.0f);
  CHECK(!c->upload(small, 0, host.data(), 32 * 4).ok());
  CHECK(!c->download(small, 8, host.data(), 16 * 4).ok());
  // An op whose ranges exceed its buffers is refused at record time.
  REQUIRE(c->begin().ok());
  CHECK(!vk::add(*c, small, small, 17).ok());
  CHECK(vk::add(*c, small, small, 16).ok());
  REQUIRE(c->submit().ok());
  // Upload then read back through a round trip, incl. a device-side copy.
  std::vector<float> v = randn(1000, 5);
  Buffer a = upload(*c, v), b = nan_buffer(*c, 1000);
  run_batch(*c, [&] { return c->copy(a, 0, b, 0, 4000); });
  CHECK(download(*c, b, 1000) == v);
}

TEST_CASE("vulkan kv_append: f32 -> f16 bit-identical to the CPU") {
  Context* c = ctx();
  if (!c) return;
  const vk::KvShape kv{3, 64, 10 * 64};  // 3 KV heads, d 64, room for 10 positions
  std::vector<float> src = randn(3 * 64 + 2, 11, 100.0f);
  // Specials: infinities, NaN, signed zero, overflow to inf, subnormal halves
  // and their rounding ties, the largest half.
  const float specials[] = {INFINITY, -INFINITY, NAN, -0.0f, 70000.0f, 65504.0f, 65520.0f, 5.96e-8f, 2.98e-8f,
                            8.9e-8f,  1e-10f,    -3e-6f, 6.1e-5f, 1.0f + 1.0f / 2048};
  for (size_t i = 0; i < std::size(specials); ++i) src[2 + i] = specials[i];
  // Exact ties between two halves at several exponents.
  for (int i = 0; i < 16; ++i) src[40 + (size_t)i] = std::ldexp(1.0f + (2 * i + 1) / 2048.0f, i - 14);
  std::vector<uint16_t> cache(3 * 10 * 64, 0xAAAA);
  Buffer sb = upload(*c, src), cb = upload(*c, cache.data(), cache.size() * 2);
  run_batch(*c, [&] { return vk::kv_append(*c, sb, 2, kv, 7, cb); });
  std::vector<uint16_t> got(cache.size());
  REQUIRE(c->download(cb, 0, got.data(), got.size() * 2).ok());
  std::vector<uint16_t> want = cache;
  for (int h = 0; h < 3; ++h)
    kernels::scalar_table().f32_to_f16(src.data() + 2 + h * 64, want.data() + h * 640 + 7 * 64, 64);
  CHECK(got == want);  // other positions untouched (0xAAAA)
  REQUIRE(c->begin().ok());
  CHECK(!vk::kv_append(*c, sb, 2, kv, 10, cb).ok());  // position past the cache
  REQUIRE(c->submit().ok());
}

namespace {

void check_attention(Context& c, int64_t n_heads, int64_t n_kv, int64_t d, int64_t n_pos, bool alibi) {
  CAPTURE(n_heads);
  CAPTURE(n_kv);
  CAPTURE(d);
  CAPTURE(n_pos);
  CAPTURE(alibi);
  const int64_t max_pos = n_pos + 5, stride = max_pos * d;
  const std::vector<float> q = randn((size_t)(n_heads * d), (uint32_t)(n_pos + d), 1.0f);
  std::vector<uint16_t> k((size_t)(n_kv * stride)), v((size_t)(n_kv * stride));
  const std::vector<float> kf = randn(k.size(), 77, 1.0f), vf = randn(v.size(), 78, 1.0f);
  for (size_t i = 0; i < k.size(); ++i) k[i] = f32_to_fp16(kf[i]), v[i] = f32_to_fp16(vf[i]);
  std::vector<float> slopes((size_t)n_heads);
  for (int64_t h = 0; h < n_heads; ++h)
    slopes[(size_t)h] = bf16_to_f32(f32_to_bf16(std::pow(2.0f, -8.0f * (float)(h + 1) / (float)n_heads)));
  const float scale = 1.0f / std::sqrt((float)d);

  std::vector<float> want((size_t)(n_heads * d), NAN);
  kernels::ThreadPool pool(1);
  kernels::AttnScratch scratch;
  scratch.reserve(1, n_heads, d);
  const kernels::AttnShape sh{n_heads, n_kv, d, max_pos, scale, alibi ? slopes.data() : nullptr, kernels::KvType::kF16};
  const kernels::AttnQuery aq{q.data(), want.data(), k.data(), v.data(), n_pos};
  kernels::attention(kernels::scalar_table(), pool, sh, &aq, 1, scratch);

  Buffer qb = upload(c, q), kb = upload(c, k.data(), k.size() * 2), vb = upload(c, v.data(), v.size() * 2);
  Buffer ob = nan_buffer(c, (size_t)(n_heads * d)), sc = nan_buffer(c, (size_t)(n_heads * max_pos));
  Buffer slb = upload(c, slopes);
  vk::AttnParams a;
  a.n_heads = (uint64_t)n_heads;
  a.kv = {(uint64_t)n_kv, (uint64_t)d, (uint64_t)stride};
  a.n_pos = (uint64_t)n_pos;
  a.max_pos = (uint64_t)max_pos;
  a.scale = scale;
  a.alibi = alibi;
  run_batch(c, [&] { return vk::attention(c, a, qb, kb, vb, ob, sc, slb); });
  const std::vector<float> got = download(c, ob, (size_t)(n_heads * d));

  // Bound. A score is a d-term f32 dot (error <= d u sum|q k|, times the
  // scale; ALiBi's bias is computed identically). A score error e moves each
  // probability by a relative 2e at most; exp adds (3 + 2|s - max|) u, the
  // softmax sum n_pos u, the division 2.5 u. The output, a sum over
  // positions of p v, moves by the probability errors times |v| plus its own
  // n_pos-term summation error; the CPU's online softmax over chunks of 64
  // rounds about as much again.
  int bad = 0;
  const int64_t r = n_heads / n_kv;
  for (int64_t h = 0; h < n_heads; ++h) {
    const int64_t g = h / r;
    double emax = 0, spread = 0, vmax = 0;
    std::vector<double> s((size_t)n_pos);
    for (int64_t j = 0; j < n_pos; ++j) {
      double dot = 0, mag = 0;
      for (int64_t i = 0; i < d; ++i) {
        const double kv_ = fp16_to_f32(k[(size_t)(g * stride + j * d + i)]);
        dot += q[(size_t)(h * d + i)] * kv_;
        mag += std::fabs(q[(size_t)(h * d + i)] * kv_);
      }
      s[(size_t)j] = dot * scale + (alibi ? scale * slopes[(size_t)h] * j : 0);
      emax = std::max(emax, ((double)d + 2) * kU * mag * scale);
      for (int64_t i = 0; i < d; ++i)
        vmax = std::max(vmax, (double)std::fabs(fp16_to_f32(v[(size_t)(g * stride + j * d + i)])));
    }
    const double smax = *std::max_element(s.begin(), s.end());
    for (double x : s) spread = std::max(spread, smax - x);
    const double prel = 4 * emax + (3 + 2 * spread) * kU + (double)n_pos * kU + 4 * kU;
    const double tol = 2 * (prel * vmax + (double)n_pos * kU * vmax) + 1e-30;
    for (int64_t i = 0; i < d; ++i) {
      const double err = std::fabs((double)got[(size_t)(h * d + i)] - want[(size_t)(h * d + i)]);
      if (!(err <= tol) && bad++ < 3) CHECK_MESSAGE(err <= tol, "head " << h << " dim " << i);
    }
  }
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("vulkan attention over an f16 KV cache: MHA, GQA, MQA, ALiBi") {
  Context* c = ctx();
  if (!c) return;
  check_attention(*c, 4, 4, 64, 1, false);     // MHA, the first token
  check_attention(*c, 8, 2, 64, 130, false);   // GQA, past two 64-row chunks
  check_attention(*c, 6, 1, 128, 65, false);   // MQA (Falcon-7B's shape of sharing)
  check_attention(*c, 8, 8, 32, 200, true);    // ALiBi (falcon-rw-1b)
  check_attention(*c, 4, 1, 16, 1000, true);   // ALiBi + MQA, a long context
}
