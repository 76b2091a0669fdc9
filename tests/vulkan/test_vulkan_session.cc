// Sessions of a model placed wholly on the `vulkan` backend: one-sequence
// decode runs the whole layer stack on the device (DeviceDecoder), prefill
// runs batched through the seam, and the KV rows cross between the host
// cache and the device cache at each hand-over. Checked against a `cpu`
// session on the same file (both with f16 caches): greedy tokens of a first
// turn, then of a chat's next turn that reuses the cached prefix (which
// needs the rows decoded on the device copied back to the host), and a cold
// session on the second turn's whole prompt.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "runtime/engine/session.h"
#include "tests/engine/tiny_model.h"
#include "tests/vulkan/vk_test_util.h"

using namespace cria;

namespace {

struct Case {
  const char* name;
  Arch arch;
  QType linear;
};

std::shared_ptr<const Model> load(const std::string& path, const char* backend) {
  ModelOptions mo;
  mo.backend = backend;
  auto m = Model::load(path, mo);
  REQUIRE_MESSAGE(m.ok(), m.status().message());
  return std::shared_ptr<const Model>(std::move(m).value());
}

std::unique_ptr<Session> session(const std::shared_ptr<const Model>& m, bool kv_f32 = false) {
  auto tok = Tokenizer::create(m->file().meta().tokenizer);
  REQUIRE(tok.ok());
  SessionOptions o;
  o.n_ctx = 128;
  o.threads = 1;
  o.batch = 16;
  o.kv = kv_f32 ? kernels::KvType::kF32 : kernels::KvType::kF16;
  auto s = Session::create(m, std::shared_ptr<const Tokenizer>(std::move(tok).value()), o);
  REQUIRE_MESSAGE(s.ok(), s.status().message());
  return std::move(s).value();
}

std::vector<int32_t> run(Session& s, const std::vector<int32_t>& prompt, int64_t n, int64_t* reused = nullptr) {
  GenerateRequest r;
  r.prompt = prompt;
  r.max_new_tokens = n;
  r.sampling.greedy = true;
  std::vector<SequenceResult> out;
  GenerateStats st;
  Status ok = s.generate(r, nullptr, &out, &st);
  REQUIRE_MESSAGE(ok.ok(), ok.message());
  if (reused) *reused = st.reused_tokens;
  REQUIRE(out[0].tokens.size() == (size_t)n);  // no eos in these runs: every step compared
  return out[0].tokens;
}

}  // namespace

TEST_CASE("vulkan sessions: the device decoder gives the cpu session's greedy tokens across chat turns") {
  if (!vktest::ctx()) return;
  const Case cases[] = {{"llama-f32", Arch::kLlama, QType::kF32},
                        {"llama-q4", Arch::kLlama, QType::kQ4},
                        {"falcon-q8", Arch::kFalcon, QType::kQ8},
                        {"falcon-f16", Arch::kFalcon, QType::kF16}};
  for (const Case& k : cases) {
    CAPTURE(std::string(k.name));
    const std::string path = test::write_tiny_model(std::string("vksess-") + k.name, k.arch, k.linear);
    REQUIRE(!path.empty());
    auto cpu_m = load(path, "cpu"), vk_m = load(path, "vulkan");
    ::unlink(path.c_str());
    auto cpu = session(cpu_m), gpu = session(vk_m);
    // The feature under test is in use (not the per-layer host loop).
    CHECK(std::string(gpu->decode_path()).find("vulkan") != std::string::npos);
    CHECK(std::string(cpu->decode_path()) == "host loop");

    std::vector<int32_t> turn1;
    for (int i = 0; i < 20; ++i) turn1.push_back(32 + (1 + i * 7) % 90);
    const std::vector<int32_t> a_cpu = run(*cpu, turn1, 10), a_gpu = run(*gpu, turn1, 10);
    CHECK(a_gpu == a_cpu);

    // The next turn extends the first prompt and its answer: the prefill
    // reuses 29 rows, 9 of which only the device computed.
    std::vector<int32_t> turn2 = turn1;
    turn2.insert(turn2.end(), a_cpu.begin(), a_cpu.end());
    for (int i = 0; i < 7; ++i) turn2.push_back(32 + (9 + i * 7) % 90);
    int64_t reused = 0;
    const std::vector<int32_t> b_cpu = run(*cpu, turn2, 12), b_gpu = run(*gpu, turn2, 12, &reused);
    CHECK(reused == 20 + 10 - 1);
    CHECK(b_gpu == b_cpu);
    auto cold = session(vk_m);
    CHECK(run(*cold, turn2, 12) == b_cpu);
  }
}

TEST_CASE("vulkan sessions: an f32 cache or CRIA_VK_STACK=0 keeps decode on the per-layer path") {
  if (!vktest::ctx()) return;
  const std::string path = test::write_tiny_model("vksess-path", Arch::kLlama, QType::kQ8);
  REQUIRE(!path.empty());
  auto m = load(path, "vulkan");
  CHECK(std::string(session(m, /*kv_f32=*/true)->decode_path()) == "host loop");
  CHECK(m->placement().describe().find("decode      vulkan") != std::string::npos);
  ::setenv("CRIA_VK_STACK", "0", 1);
  CHECK(std::string(session(m)->decode_path()) == "host loop");
  auto m2 = load(path, "vulkan");
  CHECK(m2->placement().describe().find("decode ") == std::string::npos);
  ::unsetenv("CRIA_VK_STACK");
  ::unlink(path.c_str());
  // With only some layers on the device there is no whole stack to run.
  ModelOptions mo;
  mo.backend = "vulkan";
  mo.gpu_layers = 1;
  const std::string p2 = test::write_tiny_model("vksess-partial", Arch::kLlama, QType::kQ8);
  auto part = Model::load(p2, mo);
  ::unlink(p2.c_str());
  REQUIRE(part.ok());
  CHECK(std::string(session(std::shared_ptr<const Model>(std::move(part).value()))->decode_path()) == "host loop");
}

TEST_CASE("vulkan: a model that does not fit the device's memory says what did not fit and what to do") {
  if (!vktest::ctx()) return;
  const std::string path = test::write_tiny_model("vksess-oom", Arch::kLlama, QType::kF32);
  REQUIRE(!path.empty());
  // The tiny model's linear layers take ~0.13 MiB per block in f32: a
  // 0.2 MiB budget holds the first block only.
  ::setenv("CRIA_VK_MEMORY_LIMIT", "0.2M", 1);
  ModelOptions mo;
  mo.backend = "vulkan";
  auto m = Model::load(path, mo);
  REQUIRE(!m.ok());
  CHECK(m.status().code() == Code::kOutOfMemory);
  const std::string msg = m.status().message();
  CHECK(msg.find("blk.1.") != std::string::npos);
  CHECK(msg.find("CRIA_VK_MEMORY_LIMIT") != std::string::npos);
  CHECK(msg.find("try --gpu-layers 1 or fewer") != std::string::npos);
  mo.gpu_layers = 1;  // what the message suggests loads
  auto part = Model::load(path, mo);
  CHECK_MESSAGE(part.ok(), part.status().message());
  ::setenv("CRIA_VK_MEMORY_LIMIT", "lots", 1);
  auto bad = Model::load(path, mo);
  REQUIRE(!bad.ok());
  CHECK(bad.status().message().find("CRIA_VK_MEMORY_LIMIT='lots' is not a size") != std::string::npos);
  ::unsetenv("CRIA_VK_MEMORY_LIMIT");
  ::unlink(path.c_str());
}

TEST_CASE("vulkan: a device lost mid-generation is an error from generate, never a crash") {
  if (!vktest::ctx()) return;
  const std::string path = test::write_tiny_model("vksess-lost", Arch::kFalcon, QType::kQ8);
  REQUIRE(!path.empty());
  // The device is "lost" at the k-th submission (fault injection in
  // vk::Context), for every k from the first prefill layer to past the end:
  // each run either finishes or returns the device-lost error, and once
  // lost, the session keeps refusing with an error.
  int lost_in_decode = 0, finished = 0;
  for (int k = 0; k <= 24; ++k) {
    CAPTURE(k);
    ::setenv("CRIA_VK_TEST_LOSE_DEVICE", std::to_string(k).c_str(), 1);
    auto m = load(path, "vulkan");
    ::unsetenv("CRIA_VK_TEST_LOSE_DEVICE");
    auto s = session(m);
    GenerateRequest r;
    for (int i = 0; i < 5; ++i) r.prompt.push_back(40 + i);
    r.max_new_tokens = 8;
    r.sampling.greedy = true;
    int64_t streamed = 0;
    std::vector<SequenceResult> out;
    Status st = s->generate(r, [&](int64_t, std::string_view, int32_t) { return ++streamed, true; }, &out, nullptr);
    if (st.ok()) {
      ++finished;
      continue;
    }
    CHECK(st.message().find("device lost") != std::string::npos);
    if (streamed > 0) ++lost_in_decode;
    Status again = s->generate(r, nullptr, &out, nullptr);
    CHECK(!again.ok());
    CHECK(again.message().find("lost") != std::string::npos);
  }
  CHECK(lost_in_decode > 0);  // the decoder's own submissions were hit
  CHECK(finished > 0);        // and k past the last submission changes nothing
  ::unlink(path.c_str());
}
