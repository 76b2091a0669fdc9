// Sessions, batching, sampling and text streaming.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <cstdio>
#include <unistd.h>

#include "runtime/engine/session.h"
#include "runtime/engine/text_stream.h"
#include "runtime/sampling/sampler.h"
#include "tests/engine/tiny_model.h"

using namespace cria;

namespace {

struct Loaded {
  std::shared_ptr<const Model> model;
  std::shared_ptr<const Tokenizer> tok;
};

Loaded load(Arch arch, QType t) {
  std::string path = test::write_tiny_model(arch == Arch::kLlama ? "llama" : "falcon", arch, t);
  REQUIRE(!path.empty());
  auto m = Model::load(path);
  REQUIRE_MESSAGE(m.ok(), m.status().message());
  ModelMeta meta = (*m)->file().meta();
  auto tok = Tokenizer::create(meta.tokenizer);
  REQUIRE(tok.ok());
  ::unlink(path.c_str());  // the mapping stays valid
  return {std::shared_ptr<const Model>(std::move(m).value()), std::shared_ptr<const Tokenizer>(std::move(tok).value())};
}

std::unique_ptr<Session> session(const Loaded& l, int64_t n_ctx = 128, int64_t n_seq = 1, int threads = 2) {
  SessionOptions o;
  o.n_ctx = n_ctx;
  o.n_seq = n_seq;
  o.threads = threads;
  o.batch = 16;
  auto s = Session::create(l.model, l.tok, o);
  REQUIRE_MESSAGE(s.ok(), s.status().message());
  return std::move(s).value();
}

GenerateRequest request(std::vector<int32_t> prompt, int64_t max_new) {
  GenerateRequest r;
  r.prompt = std::move(prompt);
  r.max_new_tokens = max_new;
  r.sampling.greedy = true;
  return r;
}

std::vector<int32_t> prompt_of(int n, int start) {
  std::vector<int32_t> p;
  for (int i = 0; i < n; ++i) p.push_back(32 + (start + i * 7) % 90);
  return p;
}

}  // namespace

TEST_CASE("two sequences in one batch see only their own positions") {
  for (Arch arch : {Arch::kLlama, Arch::kFalcon}) {
    Loaded l = load(arch, QType::kQ8);
    const int64_t v = l.model->config().vocab_size;
    kernels::ThreadPool pool(2);
    const auto& k = kernels::best_table();
    std::vector<int32_t> a = prompt_of(9, 0), b = prompt_of(13, 5);
    auto run = [&](const std::vector<BatchEntry>& batch, int64_t seqs) {
      KvCache cache;
      REQUIRE(cache.init(l.model->config(), seqs, 64).ok());
      ForwardScratch s;
      s.init(*l.model, 32, 2);
      std::vector<float> logits(batch.size() * v);
      REQUIRE(forward(*l.model, k, pool, cache, s, batch.data(), (int64_t)batch.size(), logits.data()).ok());
      return logits;
    };
    std::vector<BatchEntry> mixed, only_a, only_b;
    for (size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
      if (i < a.size()) mixed.push_back({a[i], (int32_t)i, 0, true});
      if (i < b.size()) mixed.push_back({b[i], (int32_t)i, 1, true});
    }
    for (size_t i = 0; i < a.size(); ++i) only_a.push_back({a[i], (int32_t)i, 0, true});
    for (size_t i = 0; i < b.size(); ++i) only_b.push_back({b[i], (int32_t)i, 0, true});
    std::vector<float> lm = run(mixed, 2), la = run(only_a, 1), lb = run(only_b, 1);
    size_t ia = 0, ib = 0;
    double worst = 0;
    for (size_t r = 0; r < mixed.size(); ++r) {
      const float* want = mixed[r].seq == 0 ? &la[(ia++) * v] : &lb[(ib++) * v];
      for (int64_t j = 0; j < v; ++j) worst = std::max(worst, (double)std::fabs(lm[r * v + j] - want[j]));
    }
    CHECK(worst < 1e-4);
  }
}

TEST_CASE("greedy generation is deterministic and num_return_sequences repeats it") {
  Loaded l = load(Arch::kLlama, QType::kQ4);
  auto s = session(l, 128, 3);
  std::vector<SequenceResult> one, three;
  GenerateStats st;
  REQUIRE(s->generate(request(prompt_of(12, 3), 20), nullptr, &one, &st).ok());
  REQUIRE(one.size() == 1);
  CHECK(one[0].tokens.size() == 20);
  CHECK(one[0].reason == StopReason::kMaxTokens);
  CHECK(st.prompt_tokens == 12);
  GenerateRequest r = request(prompt_of(12, 3), 20);
  r.num_return_sequences = 3;
  REQUIRE(s->generate(r, nullptr, &three, &st).ok());
  REQUIRE(three.size() == 3);
  for (const SequenceResult& x : three) CHECK(x.tokens == one[0].tokens);
}

TEST_CASE("any thread count: more pool threads than one 32- or 64-bit mask holds") {
  // The attention scratch used to hand out slots from one 32-bit mask, so
  // sessions were capped at 32 threads; 70 threads take two words.
  kernels::AttnScratch sc;
  sc.reserve(70, 4, 64);
  REQUIRE(sc.slots() == 70);
  std::vector<int> got;
  std::vector<float*> bufs;
  for (int i = 0; i < 70; ++i) {
    int slot = -1;
    bufs.push_back(sc.acquire(&slot));
    got.push_back(slot);
  }
  std::sort(got.begin(), got.end());
  for (int i = 0; i < 70; ++i) CHECK(got[i] == i);
  sc.release(37);
  int slot = -1;
  CHECK(sc.acquire(&slot) == bufs[37]);  // slot 37 again: the other 69 are still held
  CHECK(slot == 37);
  // A whole session on 40 threads (2 cores: oversubscribed, but correct).
  Loaded l = load(Arch::kLlama, QType::kQ4);
  auto s2 = session(l, 128, 1, 2);
  auto s40 = session(l, 128, 1, 40);
  CHECK(s40->threads() == 40);
  std::vector<SequenceResult> a, b;
  GenerateStats st;
  REQUIRE(s2->generate(request(prompt_of(12, 3), 12), nullptr, &a, &st).ok());
  REQUIRE(s40->generate(request(prompt_of(12, 3), 12), nullptr, &b, &st).ok());
  CHECK(a[0].tokens == b[0].tokens);
}

TEST_CASE("a follow-up prompt reuses the cached prefix and gives the same tokens") {
  Loaded l = load(Arch::kLlama, QType::kQ8);
  auto warm = session(l, 128, 1);
  std::vector<SequenceResult> out, fresh;
  GenerateStats st;
  std::vector<int32_t> turn1 = prompt_of(20, 1);
  REQUIRE(warm->generate(request(turn1, 10), nullptr, &out, &st).ok());
  CHECK(st.reused_tokens == 0);
  // The next turn: the first prompt, the answer, then new text.
  std::vector<int32_t> turn2 = turn1;
  turn2.insert(turn2.end(), out[0].tokens.begin(), out[0].tokens.end());
  for (int32_t t : prompt_of(7, 9)) turn2.push_back(t);
  REQUIRE(warm->generate(request(turn2, 12), nullptr, &out, &st).ok());
  CHECK(st.reused_tokens == 20 + 10 - 1);  // every token fed last time
  auto cold = session(l, 128, 1);
  REQUIRE(cold->generate(request(turn2, 12), nullptr, &fresh, &st).ok());
  CHECK(st.reused_tokens == 0);
  CHECK(out[0].tokens == fresh[0].tokens);
  // The same prompt again reuses all but its last token.
  REQUIRE(cold->generate(request(turn2, 12), nullptr, &fresh, &st).ok());
  CHECK(st.reused_tokens == (int64_t)turn2.size() - 1);
  CHECK(out[0].tokens == fresh[0].tokens);
}

TEST_CASE("a batch of different prompts decodes like separate runs") {
  Loaded l = load(Arch::kFalcon, QType::kQ4);
  auto s = session(l, 128, 3);
  std::vector<std::vector<int32_t>> prompts = {prompt_of(5, 1), prompt_of(17, 2), prompt_of(9, 3)};
  GenerateRequest r = request({}, 12);
  r.prompts = prompts;
  std::vector<SequenceResult> batch, single;
  REQUIRE(s->generate(r, nullptr, &batch, nullptr).ok());
  REQUIRE(batch.size() == 3);
  for (size_t i = 0; i < prompts.size(); ++i) {
    REQUIRE(s->generate(request(prompts[i], 12), nullptr, &single, nullptr).ok());
    CHECK(batch[i].tokens == single[0].tokens);
  }
  r.num_return_sequences = 2;
  CHECK_FALSE(s->generate(r, nullptr, &batch, nullptr).ok());
}

TEST_CASE("sampling: same seed same tokens, top_k 1 is greedy") {
  Loaded l = load(Arch::kFalcon, QType::kQ8);
  auto s = session(l, 128, 2);
  auto gen = [&](SamplingParams sp, int64_t n_ret = 1) {
    GenerateRequest r = request(prompt_of(8, 1), 24);
    r.sampling = sp;
    r.num_return_sequences = n_ret;
    std::vector<SequenceResult> out;
    REQUIRE(s->generate(r, nullptr, &out, nullptr).ok());
    return out;
  };
  SamplingParams sp;
  sp.temperature = 1.5f;
  sp.seed = 11;
  auto a = gen(sp), b = gen(sp);
  CHECK(a[0].tokens == b[0].tokens);
  sp.seed = 12;
  CHECK(gen(sp)[0].tokens != a[0].tokens);
  // Two continuations of one request draw from different streams.
  auto two = gen(sp, 2);
  CHECK(two[0].tokens != two[1].tokens);
  SamplingParams greedy;
  greedy.greedy = true;
  SamplingParams k1;
  k1.top_k = 1;
  k1.temperature = 2.0f;
  CHECK(gen(k1)[0].tokens == gen(greedy)[0].tokens);
}

TEST_CASE("stop conditions: eos ids, context full, cancel, callback") {
  Loaded l = load(Arch::kLlama, QType::kQ8);
  auto s = session(l, 32, 1);
  std::vector<SequenceResult> out;
  // Context: a 10-token prompt leaves 22 positions; the token sampled from
  // the last position is emitted too.
  GenerateRequest r = request(prompt_of(10, 2), -1);
  REQUIRE(s->generate(r, nullptr, &out, nullptr).ok());
  CHECK(out[0].reason == StopReason::kContextFull);
  CHECK(out[0].tokens.size() == 32 - 10 + 1);
  // EOS: make the first greedy token an end-of-sequence id.
  const int32_t first = out[0].tokens[0];
  r = request(prompt_of(10, 2), 10);
  r.stop_ids = {first};
  REQUIRE(s->generate(r, nullptr, &out, nullptr).ok());
  CHECK(out[0].reason == StopReason::kEos);
  CHECK(out[0].tokens.empty());
  // Cancel from the callback.
  Session* sp = s.get();
  int calls = 0;
  r = request(prompt_of(10, 2), 20);
  REQUIRE(s->generate(r, [&](int64_t, std::string_view, int32_t) {
    if (++calls == 3) sp->cancel();
    return true;
  }, &out, nullptr).ok());
  CHECK(out[0].reason == StopReason::kCancelled);
  // The callback itself can stop a sequence.
  REQUIRE(s->generate(r, [&](int64_t, std::string_view, int32_t) { return false; }, &out, nullptr).ok());
  CHECK(out[0].reason == StopReason::kCallback);
  // Errors.
  CHECK_FALSE(s->generate(request(prompt_of(40, 0), 4), nullptr, &out, nullptr).ok());
  CHECK_FALSE(s->generate(request({}, 4), nullptr, &out, nullptr).ok());
  CHECK_FALSE(s->generate(request({5000}, 4), nullptr, &out, nullptr).ok());
}

TEST_CASE("score matches the forward pass's log-softmax") {
  Loaded l = load(Arch::kLlama, QType::kF16);
  auto s = session(l, 64, 1, 1);
  std::vector<int32_t> ids = prompt_of(20, 4);
  std::vector<double> lp(19 - 5);
  REQUIRE(s->score(ids.data(), 20, 5, lp.data()).ok());
  // Reference: one forward over the whole text with logits everywhere.
  const int64_t v = l.model->config().vocab_size;
  kernels::ThreadPool pool(1);
  KvCache cache;
  REQUIRE(cache.init(l.model->config(), 1, 64).ok());
  ForwardScratch sc;
  sc.init(*l.model, 32, 1);
  std::vector<BatchEntry> b;
  for (int i = 0; i < 20; ++i) b.push_back({ids[i], i, 0, true});
  std::vector<float> logits(20 * v);
  REQUIRE(forward(*l.model, kernels::best_table(), pool, cache, sc, b.data(), 20, logits.data()).ok());
  for (int i = 5; i < 19; ++i) {
    const float* row = &logits[i * v];
    double mx = *std::max_element(row, row + v), sum = 0;
    for (int64_t j = 0; j < v; ++j) sum += std::exp(row[j] - mx);
    CHECK(lp[i - 5] == doctest::Approx(row[ids[i + 1]] - mx - std::log(sum)).epsilon(1e-5));
  }
}

TEST_CASE("sampler: penalty, top-p, min-p, temperature") {
  const int32_t V = 6;
  Sampler s;
  SamplingParams p;
  p.greedy = true;
  p.repetition_penalty = 2.0f;
  s.init(V, p);
  // transformers: positive logits divided, negative multiplied, once per id.
  float l1[V] = {1.0f, 3.0f, 2.5f, -1.0f, 0.0f, 0.5f};
  const int32_t hist[] = {1, 1, 3};
  CHECK(s.sample(l1, hist, 3) == 2);
  CHECK(l1[1] == 1.5f);
  CHECK(l1[3] == -2.0f);
  // top_p: probabilities 0.5, 0.3, 0.2 after softmax of log-probs; p=0.6
  // keeps the first two only.
  SamplingParams q;
  q.top_p = 0.6f;
  q.seed = 3;
  s.init(3, q);
  std::map<int32_t, int> seen;
  for (int i = 0; i < 2000; ++i) {
    float l[3] = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
    seen[s.sample(l, nullptr, 0)]++;
  }
  CHECK(seen.count(2) == 0);
  CHECK(seen[0] > seen[1]);
  // min_p 0.5: only tokens with at least half the top probability.
  SamplingParams m;
  m.min_p = 0.5f;
  s.init(3, m);
  seen.clear();
  for (int i = 0; i < 2000; ++i) {
    float l[3] = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
    seen[s.sample(l, nullptr, 0)]++;
  }
  CHECK(seen.count(2) == 0);
  CHECK(seen[1] > 0);
  // Frequencies follow the distribution (temperature 1): p0 = 0.5.
  SamplingParams t;
  t.seed = 9;
  s.init(3, t);
  int zero = 0;
  for (int i = 0; i < 20000; ++i) {
    float l[3] = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
    zero += s.sample(l, nullptr, 0) == 0;
  }
  CHECK(std::fabs(zero / 20000.0 - 0.5) < 0.02);  // 5 sigma of a binomial(20000, 0.5)
}

TEST_CASE("text stream: stop strings are never shown, UTF-8 never split") {
  Loaded l = load(Arch::kLlama, QType::kQ8);
  const Tokenizer& tok = *l.tok;
  std::vector<std::string> stops = {"\nUser:", "STOP"};
  TextStream ts(tok, stops);
  std::string shown;
  auto feed = [&](const std::string& bytes) {
    for (unsigned char c : bytes) shown += ts.push(c);  // byte tokens: id == byte
  };
  feed("Hello\nUs");
  CHECK(shown == "Hello");  // "\nUs" could start "\nUser:"
  feed("e");
  CHECK(shown == "Hello");
  feed("d it");
  CHECK(shown == "Hello\nUsed it");
  feed(" ok STO");
  CHECK(shown == "Hello\nUsed it ok ");
  feed("P and more");
  CHECK(ts.stopped());
  CHECK(shown == "Hello\nUsed it ok ");
  // UTF-8: the euro sign arrives byte by byte.
  TextStream t2(tok, {});
  std::string out;
  out += t2.push(0xE2);
  out += t2.push(0x82);
  CHECK(out.empty());
  out += t2.push(0xAC);
  CHECK(out == "\xE2\x82\xAC");
  out += t2.push(0xE2);
  out += t2.flush();
  CHECK(out == "\xE2\x82\xAC\xEF\xBF\xBD");  // a dangling lead byte becomes U+FFFD at the end
}

namespace {
// Resident memory of this process (statm's second field, in pages).
double resident_mib() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  REQUIRE(f);
  long size = 0, resident = 0;
  REQUIRE(std::fscanf(f, "%ld %ld", &size, &resident) == 2);
  std::fclose(f);
  return (double)resident * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
}
}  // namespace

TEST_CASE("the KV cache is committed as it fills, and one that cannot fit is refused up front") {
  Loaded l = load(Arch::kLlama, QType::kQ8);
  ModelConfig c = l.model->config();
  // 2 layers x 2 KV heads x 16 x 2 bytes x (K, V) = 256 bytes a position:
  // 2^21 positions reserve 512 MiB.
  const int64_t n_ctx = int64_t(1) << 21;
  const double before = resident_mib();
  KvCache cache;
  REQUIRE(cache.init(c, 1, n_ctx).ok());
  CHECK(cache.bytes() == (size_t)512 << 20);
  // Fill 100 positions of every layer and head through the forward pass.
  kernels::ThreadPool pool(1);
  ForwardScratch s;
  s.init(*l.model, 100, 1);
  std::vector<BatchEntry> b;
  for (int i = 0; i < 100; ++i) b.push_back({32 + i, i, 0, i == 99});
  std::vector<float> logits(c.vocab_size);
  REQUIRE(forward(*l.model, kernels::best_table(), pool, cache, s, b.data(), 100, logits.data()).ok());
  // Each (layer, K/V, head) region's first 100 rows span one or two pages:
  // 8 regions, well under a MiB, against 512 MiB for an eagerly zeroed cache.
  const double grew = resident_mib() - before;
  MESSAGE("512 MiB KV cache, 100 positions filled: resident grew by " << grew << " MiB");
  CHECK(grew < 16);

  // A context that could never fit beside the model: refused with the
  // context that would.
  const double phys = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
  const int64_t huge = (int64_t)(2 * phys / 256);
  Status st = check_kv_fits(*l.model, 1, huge, kernels::KvType::kF16);
  REQUIRE(!st.ok());
  CHECK(st.code() == Code::kOutOfMemory);
  CHECK(st.message().find("use --ctx ") != std::string::npos);
  CHECK(check_kv_fits(*l.model, 1, n_ctx, kernels::KvType::kF16).ok());
}

TEST_CASE("weights: copy moves every weight the CPU streams out of the mapping, map reads it in place, same tokens") {
  for (Arch arch : {Arch::kLlama, Arch::kFalcon}) {  // the Falcon ties its head to the embedding
    CAPTURE((int)arch);
    std::string path = test::write_tiny_model("weights", arch, arch == Arch::kLlama ? QType::kQ4 : QType::kQ8);
    REQUIRE(!path.empty());
    std::vector<std::vector<int32_t>> tokens;
    for (WeightMemory how : {WeightMemory::kMap, WeightMemory::kCopy}) {
      ModelOptions mo;
      mo.weights = how;
      auto m = Model::load(path, mo);
      REQUIRE_MESSAGE(m.ok(), m.status().message());
      std::set<const uint8_t*> in_file;
      for (const TensorRef& t : (*m)->file().tensors()) in_file.insert(t.data);
      const Weights& w = (*m)->weights();
      std::vector<const uint8_t*> streamed = {w.output.data};
      for (const LayerWeights& L : w.layers)
        for (const kernels::Matrix* mx : {&L.qkv, &L.attn_out, &L.ffn_in, &L.ffn_down}) streamed.push_back(mx->data);
      for (int64_t i = 0; i < (int64_t)w.layers.size(); ++i)
        for (int r = 0; r < kLinearRoles; ++r) streamed.push_back((*m)->placement().linear(i, (LinearRole)r).l.w.data);
      streamed.push_back((*m)->placement().output().l.w.data);
      for (const uint8_t* p : streamed) CHECK(in_file.count(p) == (how == WeightMemory::kMap ? 1u : 0u));
      // Tied: the head is the embedding, one copy serving both.
      if (arch == Arch::kFalcon) CHECK(w.tok_embd.data == w.output.data);
      const std::string table = (*m)->placement().describe();
      CHECK(table.find(how == WeightMemory::kMap ? "weights     read in place" : "weights     copied into memory") !=
            std::string::npos);
      auto tok = Tokenizer::create((*m)->file().meta().tokenizer);
      REQUIRE(tok.ok());
      Loaded l{std::shared_ptr<const Model>(std::move(m).value()), std::shared_ptr<const Tokenizer>(std::move(tok).value())};
      auto s = session(l);
      std::vector<SequenceResult> out;
      REQUIRE(s->generate(request(prompt_of(10, 5), 16), nullptr, &out, nullptr).ok());
      tokens.push_back(out[0].tokens);
    }
    CHECK(tokens[0] == tokens[1]);
    // A rank of a layer pipeline copies only its own blocks' weights.
    ModelOptions mo;
    mo.weights = WeightMemory::kCopy;
    mo.layer_begin = 1;
    auto m = Model::load(path, mo);
    REQUIRE(m.ok());
    const ModelFile& file = (*m)->file();
    CHECK((*m)->weights().layers[0].qkv.data == file.find("blk.0.attn_qkv.weight")->data);
    CHECK((*m)->weights().layers[1].qkv.data != file.find("blk.1.attn_qkv.weight")->data);
    ::unlink(path.c_str());
  }
  // Bytes the process owns cannot be copied from a file; bad names are refused.
  std::string path = test::write_tiny_model("weights-mem", Arch::kLlama, QType::kQ4);
  std::FILE* f = std::fopen(path.c_str(), "rb");
  REQUIRE(f);
  std::vector<uint8_t> bytes(1 << 20);
  bytes.resize(std::fread(bytes.data(), 1, bytes.size(), f));
  std::fclose(f);
  ::unlink(path.c_str());
  auto mf = ModelFile::from_bytes(bytes, "mem.cria");
  REQUIRE(mf.ok());
  ModelOptions mo;
  mo.weights = WeightMemory::kCopy;
  auto m = Model::create(std::move(mf).value(), mo);
  REQUIRE(!m.ok());
  CHECK(m.status().message().find("--weights copy needs a model opened from a file") != std::string::npos);
  auto bad = parse_weight_memory("huge");
  REQUIRE(!bad.ok());
  CHECK(bad.status().message() == "weights: unknown choice 'huge' (auto, map or copy)");
}
