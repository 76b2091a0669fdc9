// Every op of every backend this build has and this machine can start,
// against the scalar reference, in the manner of llama.cpp's
// test-backend-ops: each weight type the backend takes, shapes from one row
// through ones that cross the threading threshold, with and without bias,
// outputs pre-filled with NaN, tolerances derived next to each check. Then
// placement (which backend gets which op) and whole tiny models, cpu against
// each other backend.
//
// The ops without weights (norms, RoPE, attention, activations, adds) run on
// `cpu` only today; tests/kernels/test_kernels.cc checks them on every
// kernel table.
#include <doctest/doctest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "quant/fp16.h"
#include "runtime/backends/backend.h"
#include "runtime/model/model.h"
#include "runtime/model/transformer.h"
#include "tests/engine/tiny_model.h"
#include "tests/random.h"

using namespace cria;
using namespace cria::backends;

namespace {

using test::randn;

struct WeightCase {
  QType type;
  uint32_t group;
};
const WeightCase kWeights[] = {{QType::kF32, 0}, {QType::kF16, 0}, {QType::kBF16, 0}, {QType::kI8C, 0},
                               {QType::kQ8, 32}, {QType::kQ4, 32}, {QType::kQ4, 128}, {QType::kQ4M, 32},
                               {QType::kQ4M, 128}};

struct TestLinear {
  std::vector<uint8_t> storage;
  std::vector<float> dense, bias;  // dequantized weights, row-major
  Linear l;
};

TestLinear make_linear(const WeightCase& wc, int64_t rows, int64_t cols, bool bias, uint32_t seed) {
  TestLinear t;
  REQUIRE(qlayout(wc.type, (uint64_t)rows, (uint64_t)cols, wc.group, &t.l.w.l));
  t.storage.assign(t.l.w.l.total, 0);
  std::vector<float> x = randn((size_t)(rows * cols), seed);
  quantize_rows(wc.type, x.data(), (uint64_t)rows, t.l.w.l, qplanes_at(t.storage.data(), t.l.w.l, 0), QuantOptions());
  t.l.w.type = wc.type;
  t.l.w.data = t.storage.data();
  t.dense.resize((size_t)(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    dequantize_row(wc.type, t.storage.data(), t.l.w.l, (uint64_t)r, t.dense.data() + r * cols);
  if (bias) t.bias = randn((size_t)rows, seed + 1);
  t.l.bias = bias ? t.bias.data() : nullptr;
  t.l.name = std::string(qtype_name(wc.type)) + " " + std::to_string(rows) + "x" + std::to_string(cols);
  return t;
}

// Whether a backend this build has may be missing on this machine: only a
// device backend without a device, and only where CRIA_VK_REQUIRE=1 (set
// by scripts/test where lavapipe is installed) does not demand one.
// XNNPACK runs on every x86-64 and ARM64 CPU.
bool may_be_absent(const std::string& name) {
  const char* req = std::getenv("CRIA_VK_REQUIRE");
  return name == "vulkan" && !(req && std::string(req) == "1");
}

// The backends this build has that start on this machine.
std::vector<std::string> started_backend_names() {
  std::vector<std::string> v;
  for (const std::string& name : built_backends()) {
    auto b = create_backend(name);
    if (!b.ok() && may_be_absent(name)) {
      MESSAGE("skipping backend " << name << ": " << b.status().message());
      continue;
    }
    REQUIRE_MESSAGE(b.ok(), b.status().message());
    v.push_back(name);
  }
  return v;
}

std::vector<std::unique_ptr<Backend>> started_backends() {
  std::vector<std::unique_ptr<Backend>> v;
  for (const std::string& name : started_backend_names()) v.push_back(std::move(create_backend(name)).value());
  return v;
}

bool is_tiled(QType t) { return t == QType::kQ4 || t == QType::kQ8 || t == QType::kQ4M; }

}  // namespace

TEST_CASE("linear: every backend and weight type against the scalar reference") {
  kernels::ThreadPool pool(2);
  const kernels::KernelTable& ref = kernels::scalar_table();
  struct Shape {
    int64_t rows, cols, n;
  };
  // The last shape passes kernels::kParallelMacs, so the threaded paths run
  // (on the best table only: the others' threading is the same code, and
  // this test also runs under emulation).
  const Shape shapes[] = {{1, 32, 1},  {16, 64, 1},  {17, 128, 3},  {100, 256, 9},
                          {33, 1024, 2}, {300, 96, 33}, {640, 2048, 2}};
  const Shape& big = shapes[sizeof shapes / sizeof shapes[0] - 1];
  int checked_xnnpack = 0;
  for (auto& backend : started_backends()) {
    // cpu runs with the session's kernel table: every table this CPU has.
    std::vector<const kernels::KernelTable*> tables = {&kernels::best_table()};
    if (std::string(backend->name()) == "cpu") tables = kernels::available_tables();
    for (const WeightCase& wc : kWeights) {
      if (!backend->supports_linear(wc.type)) continue;
      for (const kernels::KernelTable* table : tables) {
        for (const Shape& sh : shapes) {
          if (sh.cols % std::max<uint32_t>(wc.group, 32)) continue;
          if (&sh == &big && table != &kernels::best_table()) continue;
          for (bool bias : {false, true}) {
            TestLinear t = make_linear(wc, sh.rows, sh.cols, bias, (uint32_t)(sh.rows * 31 + sh.cols));
            auto h = backend->prepare_linear(t.l);
            REQUIRE_MESSAGE(h.ok(), h.status().message());
            const std::vector<float> x = randn((size_t)(sh.n * sh.cols), 7, 1.5f);
            std::vector<float> y((size_t)(sh.n * sh.rows), NAN);
            kernels::MatmulScratch mm;
            mm.reserve(sh.n, sh.cols);
            const ExecContext ctx{table, &pool, &mm};
            const Status st = backend->run_linear(*h, t.l, x.data(), sh.n, y.data(), ctx);
            REQUIRE_MESSAGE(st.ok(), st.message());
            // The reference: tiled int8 types quantize the activations to
            // int8 blocks (their defined semantics), computed by the scalar
            // table; float types are the exact product in double.
            std::vector<int8_t> q((size_t)(sh.n * sh.cols));
            std::vector<float> d((size_t)(sh.n * sh.cols / 32 + 1)), s(d.size());
            if (is_tiled(wc.type)) ref.quantize_acts(x.data(), sh.n, sh.cols, q.data(), d.data(), s.data());
            const std::string backend_name = backend->name(), isa = kernels::isa_name(table->isa);
            CAPTURE(backend_name);
            CAPTURE(isa);
            CAPTURE(t.l.name);
            CAPTURE(sh.n);
            CAPTURE(bias);
            for (int64_t tk = 0; tk < sh.n; ++tk)
              for (int64_t r = 0; r < sh.rows; ++r) {
                double want = t.l.bias ? t.bias[r] : 0.0, mag = 0;
                for (int64_t k = 0; k < sh.cols; ++k) {
                  const double a = is_tiled(wc.type) ? (double)q[tk * sh.cols + k] * d[tk * (sh.cols / 32) + k / 32]
                                                     : (double)x[tk * sh.cols + k];
                  want += (double)t.dense[r * sh.cols + k] * a;
                  mag += std::fabs((double)t.dense[r * sh.cols + k] * a);
                }
                const double got = y[tk * sh.rows + r];
                // Tolerances:
                //  - f32 arithmetic (cpu on every type: the int8 block dot
                //    products are exact, the f32 sums of K terms or K/32
                //    block terms err by at most K x FLT_EPSILON x sum|w a|);
                //  - xnnpack f16: the activations are rounded to f16 (2^-11
                //    of each term) and the sums run in f16: natively with
                //    ARMv8.2 FP16 arithmetic, and on x86 XNNPACK rounds its
                //    f32 accumulator to f16 after every step to match (a
                //    first bound of f32 accumulation failed here: 0.30 >
                //    0.27 at K = 256), so K x 2^-11 x sum|w a|; the output
                //    is rounded to f16 (2^-11 x |y|). The bias is added in
                //    f32 after.
                double tol = (double)(sh.cols + 2) * FLT_EPSILON * mag;
                if (backend_name == "xnnpack" && wc.type == QType::kF16)
                  tol = (double)(sh.cols + 3) * std::ldexp(1.0, -11) * mag + std::ldexp(1.0, -11) * std::fabs(want);
                REQUIRE(std::isfinite(got));
                REQUIRE(std::fabs(got - want) <= tol + 1e-30);
              }
            if (backend_name == "xnnpack") ++checked_xnnpack;
          }
        }
      }
    }
  }
#ifdef CRIA_HAVE_XNNPACK
  // f32 on every CPU, f16 where XNNPACK has the operator (x86 with F16C,
  // ARMv8.2 FP16): at least the f32 shapes ran.
  CHECK(checked_xnnpack >= 2 * (int)(sizeof shapes / sizeof shapes[0]));
  static_assert(640.0 * 2048 * 2 >= kernels::kParallelMacs, "the big shape must take the threaded path");
#else
  CHECK(checked_xnnpack == 0);
#endif
}

TEST_CASE("placement: named, auto, fallback to cpu, and errors") {
  struct Case {
    QType type;
    const char* name;
  };
  for (const Case& c : {Case{QType::kF32, "f32"}, Case{QType::kF16, "f16"}, Case{QType::kQ4, "q4"}}) {
    const std::string path = test::write_tiny_model(std::string("placement-") + c.name, Arch::kLlama, c.type);
    REQUIRE(!path.empty());
    for (const std::string& b : started_backend_names()) {
      ModelOptions opt;
      opt.backend = b;
      auto m = Model::load(path, opt);
      REQUIRE_MESSAGE(m.ok(), m.status().message());
      const Placement& p = (*m)->placement();
      auto want = create_backend(b);
      REQUIRE(want.ok());
      // A backend that cannot take a weight type leaves it to cpu.
      const std::string expect = (*want)->supports_linear(c.type) ? b : "cpu";
      const std::string cn = c.name;
      CAPTURE(b);
      CAPTURE(cn);
      for (int64_t l = 0; l < 2; ++l)
        for (int r = 0; r < kLinearRoles; ++r) CHECK(std::string(p.linear(l, (LinearRole)r).backend->name()) == expect);
      CHECK(std::string(p.output().backend->name()) == expect);
      CHECK(p.describe().find("linear      " + expect) != std::string::npos);
    }
    auto a = Model::load(path);  // auto
    REQUIRE(a.ok());
    const std::string want = auto_linear_backend(c.type, kernels::best_table().isa);
    CHECK(std::string((*a)->placement().linear(0, LinearRole::kQkv).backend->name()) == want);
    std::vector<std::string> bad_names = {"bogus"};
#ifndef CRIA_HAVE_VULKAN
    bad_names.push_back("vulkan");
#endif
    for (const std::string& bad : bad_names) {
      ModelOptions opt;
      opt.backend = bad;
      auto m = Model::load(path, opt);
      REQUIRE(!m.ok());
      const std::string msg = m.status().message();
      CAPTURE(msg);
      CHECK(m.status().message().find(bad) != std::string::npos);
      CHECK(m.status().message().find("this build has: auto, cpu") != std::string::npos);
    }
    ::unlink(path.c_str());
  }
}

TEST_CASE("whole tiny models: every backend gives cpu's logits and greedy tokens") {
  // Logits after 2 layers: the per-matmul bounds above compound through the
  // residual stream. Bars relative to the largest logit: 1e-4 for f32
  // weights (f32 sums either way; measured 3e-6 to 1e-5); 5e-2 for
  // xnnpack's f16 path, whose sums run in f16: one matmul of K = 128..256
  // errs by about sqrt(K) x 2^-11 ~ 0.8% typically, and ~10 matmuls in
  // sequence add in quadrature to ~2.5% (measured 0.4% and 1.5%).
  for (Arch arch : {Arch::kLlama, Arch::kFalcon}) {
    for (QType type : {QType::kF32, QType::kF16}) {
      const std::string path = test::write_tiny_model("whole", arch, type);
      REQUIRE(!path.empty());
      auto run = [&](const std::string& backend, std::vector<int32_t>* greedy) {
        ModelOptions opt;
        opt.backend = backend;
        auto m = Model::load(path, opt);
        REQUIRE_MESSAGE(m.ok(), m.status().message());
        const int64_t v = (*m)->config().vocab_size;
        kernels::ThreadPool pool(2);
        KvCache cache;
        REQUIRE(cache.init((*m)->config(), 1, 64).ok());
        ForwardScratch s;
        s.init(**m, 16, 2);
        std::vector<BatchEntry> b;
        for (int i = 0; i < 12; ++i) b.push_back({(int32_t)(40 + 17 * i % 200), i, 0, true});
        std::vector<float> logits(b.size() * (size_t)v, NAN);
        REQUIRE(forward(**m, kernels::best_table(), pool, cache, s, b.data(), (int64_t)b.size(), logits.data()).ok());
        std::vector<float> row(logits.end() - v, logits.end());
        for (int step = 0; step < 16; ++step) {
          const int32_t t = (int32_t)(std::max_element(row.begin(), row.end()) - row.begin());
          greedy->push_back(t);
          BatchEntry e{t, 12 + step, 0, true};
          REQUIRE(forward(**m, kernels::best_table(), pool, cache, s, &e, 1, row.data()).ok());
        }
        return logits;
      };
      std::vector<int32_t> g_cpu;
      const std::vector<float> l_cpu = run("cpu", &g_cpu);
      double max_abs = 0;
      for (float x : l_cpu) max_abs = std::max(max_abs, (double)std::fabs(x));
      for (const std::string& b : started_backend_names()) {
        if (b == "cpu") continue;
        std::vector<int32_t> g;
        const std::vector<float> l = run(b, &g);
        double worst = 0;
        for (size_t i = 0; i < l.size(); ++i) worst = std::max(worst, (double)std::fabs(l[i] - l_cpu[i]));
        const bool f16_path = b == "xnnpack" && type == QType::kF16;
        const std::string an = arch_name(arch), tn = qtype_name(type);
        CAPTURE(b);
        CAPTURE(an);
        CAPTURE(tn);
        MESSAGE(b << " " << an << " " << tn << ": max |dlogit| vs cpu = " << worst
                  << " (max |logit| " << max_abs << ")");
        CHECK(worst <= (f16_path ? 5e-2 : 1e-4) * max_abs);
        CHECK(g == g_cpu);
      }
      ::unlink(path.c_str());
    }
  }
}

TEST_CASE("gpu layers: the first N blocks on the device, the rest on cpu, same greedy tokens") {
  const std::vector<std::string> names = started_backend_names();
  const std::string path = test::write_tiny_model("gpu-layers", Arch::kLlama, QType::kQ8);
  REQUIRE(!path.empty());
  // Only a device backend takes gpu layers.
  for (const std::string& b : {std::string("cpu"), std::string("auto")}) {
    ModelOptions opt;
    opt.backend = b;
    opt.gpu_layers = 1;
    auto m = Model::load(path, opt);
    REQUIRE(!m.ok());
    CHECK(m.status().message().find("use them with backend vulkan") != std::string::npos);
  }
  if (std::find(names.begin(), names.end(), "vulkan") == names.end()) {
    MESSAGE("no vulkan backend here: placement by gpu layers not exercised");
    ::unlink(path.c_str());
    return;
  }
  auto greedy = [&](const ModelOptions& opt) {
    auto m = Model::load(path, opt);
    REQUIRE_MESSAGE(m.ok(), m.status().message());
    kernels::ThreadPool pool(1);
    KvCache cache;
    REQUIRE(cache.init((*m)->config(), 1, 64).ok());
    ForwardScratch s;
    s.init(**m, 16, 1);
    const int64_t v = (*m)->config().vocab_size;
    std::vector<float> row((size_t)v);
    std::vector<int32_t> out;
    int32_t t = 60;
    for (int i = 0; i < 16; ++i) {
      BatchEntry e{t, i, 0, true};
      REQUIRE(forward(**m, kernels::best_table(), pool, cache, s, &e, 1, row.data()).ok());
      t = (int32_t)(std::max_element(row.begin(), row.end()) - row.begin());
      out.push_back(t);
    }
    return out;
  };
  ModelOptions cpu;
  cpu.backend = "cpu";
  const std::vector<int32_t> want = greedy(cpu);
  for (int64_t n : {0, 1, 2, 7}) {
    ModelOptions opt;
    opt.backend = "vulkan";
    opt.gpu_layers = n;
    auto m = Model::load(path, opt);
    REQUIRE(m.ok());
    const Placement& p = (*m)->placement();
    CAPTURE(n);
    for (int64_t l = 0; l < 2; ++l)
      for (int r = 0; r < kLinearRoles; ++r)
        CHECK(std::string(p.linear(l, (LinearRole)r).backend->name()) == (l < n ? "vulkan" : "cpu"));
    // The head joins the device only when every block is there.
    CHECK(std::string(p.output().backend->name()) == (n >= 2 ? "vulkan" : "cpu"));
    CHECK(greedy(opt) == want);
  }
  ModelOptions bad;
  bad.backend = "vulkan";
  bad.gpu_layers = -2;
  CHECK(!Model::load(path, bad).ok());
  ::unlink(path.c_str());
}
