// The step-wise Batcher behind `cria serve`: requests that join and leave
// between steps decode exactly as they do alone through Session::generate.
#include <doctest/doctest.h>

#include <algorithm>

#include "runtime/engine/batcher.h"
#include "runtime/engine/session.h"
#include "tests/engine/tiny_model.h"

using namespace cria;

namespace {

struct Loaded {
  std::shared_ptr<const Model> model;
  std::shared_ptr<const Tokenizer> tok;
};

Loaded load() {
  std::string path = test::write_tiny_model("batcher", Arch::kLlama, QType::kQ4);
  auto m = Model::load(path);
  REQUIRE_MESSAGE(m.ok(), m.status().message());
  auto tok = Tokenizer::create((*m)->file().meta().tokenizer);
  REQUIRE(tok.ok());
  ::unlink(path.c_str());
  return {std::shared_ptr<const Model>(std::move(m).value()), std::shared_ptr<const Tokenizer>(std::move(tok).value())};
}

SessionOptions options(int64_t n_seq) {
  SessionOptions o;
  o.n_ctx = 128;
  o.n_seq = n_seq;
  o.threads = 2;
  o.batch = 16;  // smaller than the prompts: prefill spans several steps
  return o;
}

std::vector<int32_t> prompt_of(int n, int start) {
  std::vector<int32_t> p;
  for (int i = 0; i < n; ++i) p.push_back(32 + (start + i * 7) % 90);
  return p;
}

std::vector<int32_t> solo(const Loaded& l, const std::vector<int32_t>& prompt, int64_t max_new) {
  auto s = Session::create(l.model, l.tok, options(1));
  REQUIRE(s.ok());
  GenerateRequest r;
  r.prompt = prompt;
  r.max_new_tokens = max_new;
  r.sampling.greedy = true;
  std::vector<SequenceResult> out;
  REQUIRE((*s)->generate(r, nullptr, &out, nullptr).ok());
  return out[0].tokens;
}

SlotRequest greedy(const std::vector<int32_t>& prompt, int64_t max_new) {
  SlotRequest r;
  r.prompt = prompt;
  r.max_new_tokens = max_new;
  r.sampling.greedy = true;
  return r;
}

// Steps until every slot is idle, collecting each slot's tokens.
void drain(Batcher& b, std::vector<std::vector<int32_t>>* toks, std::vector<SlotEvent>* last) {
  for (int guard = 0; b.active() > 0 && guard < 1000; ++guard) {
    std::vector<SlotEvent> ev;
    REQUIRE(b.step(&ev).ok());
    for (const SlotEvent& e : ev) {
      if (e.token >= 0 && !(e.done && e.reason == StopReason::kEos)) (*toks)[e.slot].push_back(e.token);
      if (e.done) (*last)[e.slot] = e;
    }
  }
}

}  // namespace

TEST_CASE("batcher: requests joining at different steps decode as they do alone") {
  Loaded l = load();
  const std::vector<std::vector<int32_t>> prompts = {prompt_of(23, 1), prompt_of(40, 5), prompt_of(9, 11)};
  auto b = Batcher::create(l.model, l.tok, options(3));
  REQUIRE(b.ok());
  std::vector<std::vector<int32_t>> toks(3);
  std::vector<SlotEvent> last(3);
  REQUIRE((*b)->start(0, greedy(prompts[0], 20)).ok());
  for (int step = 0; step < 12; ++step) {
    if (step == 3) REQUIRE((*b)->start(1, greedy(prompts[1], 15)).ok());
    if (step == 7) REQUIRE((*b)->start(2, greedy(prompts[2], 25)).ok());
    std::vector<SlotEvent> ev;
    REQUIRE((*b)->step(&ev).ok());
    for (const SlotEvent& e : ev)
      if (e.token >= 0) toks[e.slot].push_back(e.token);
  }
  drain(**b, &toks, &last);
  CHECK(toks[0] == solo(l, prompts[0], 20));
  CHECK(toks[1] == solo(l, prompts[1], 15));
  CHECK(toks[2] == solo(l, prompts[2], 25));
  CHECK(last[1].reason == StopReason::kMaxTokens);
  CHECK(last[1].generated_tokens == 15);
}

TEST_CASE("batcher: stop frees the slot; a continued conversation reuses its prefix") {
  Loaded l = load();
  auto b = Batcher::create(l.model, l.tok, options(2));
  REQUIRE(b.ok());
  std::vector<std::vector<int32_t>> toks(2);
  std::vector<SlotEvent> last(2);
  REQUIRE((*b)->start(0, greedy(prompt_of(30, 2), 50)).ok());
  REQUIRE((*b)->start(1, greedy(prompt_of(12, 4), 10)).ok());
  for (int i = 0; i < 5; ++i) {
    std::vector<SlotEvent> ev;
    REQUIRE((*b)->step(&ev).ok());
  }
  (*b)->stop(0);
  drain(**b, &toks, &last);
  CHECK(last[0].reason == StopReason::kCancelled);
  CHECK((*b)->idle(0));
  // Slot 1 finished; its next turn (prompt + answer + more) reuses the cache.
  std::vector<int32_t> turn2 = prompt_of(12, 4);
  const std::vector<int32_t> answer = solo(l, turn2, 10);
  turn2.insert(turn2.end(), answer.begin(), answer.end());
  for (int32_t t : prompt_of(5, 9)) turn2.push_back(t);
  CHECK((*b)->reusable(1, turn2) == 12 + 10 - 1);
  CHECK((*b)->reusable(0, turn2) == 0);
  toks.assign(2, {});
  REQUIRE((*b)->start(1, greedy(turn2, 8)).ok());
  drain(**b, &toks, &last);
  CHECK(last[1].reused_tokens == 12 + 10 - 1);
  CHECK(toks[1] == solo(l, turn2, 8));
}

TEST_CASE("batcher: logit_bias, min_new_tokens and penalties shape the choice") {
  Loaded l = load();
  auto b = Batcher::create(l.model, l.tok, options(1));
  REQUIRE(b.ok());
  std::vector<std::vector<int32_t>> toks(1);
  std::vector<SlotEvent> last(1);
  // A large bias makes token 65 the greedy choice every time ...
  SlotRequest r = greedy(prompt_of(10, 3), 6);
  r.logit_bias = {{65, 100.0f}};
  REQUIRE((*b)->start(0, r).ok());
  drain(**b, &toks, &last);
  CHECK(toks[0] == std::vector<int32_t>(6, 65));
  // ... unless a frequency penalty outweighs it after a few repeats.
  toks.assign(1, {});
  r.frequency_penalty = 40.0f;
  REQUIRE((*b)->start(0, r).ok());
  drain(**b, &toks, &last);
  CHECK(toks[0][0] == 65);
  CHECK(std::count(toks[0].begin(), toks[0].end(), 65) < 6);
  // The end id, forced by a bias, waits for min_new_tokens.
  toks.assign(1, {});
  SlotRequest e = greedy(prompt_of(10, 3), 20);
  e.stop_ids = {257};
  e.logit_bias = {{257, 100.0f}};
  e.min_new_tokens = 4;
  REQUIRE((*b)->start(0, e).ok());
  drain(**b, &toks, &last);
  CHECK(toks[0].size() == 4);
  CHECK(last[0].reason == StopReason::kEos);
  // Bad input is refused before it reaches a step.
  CHECK(!(*b)->start(0, greedy(prompt_of(128, 1), 4)).ok());
  SlotRequest bad = greedy(prompt_of(4, 1), 4);
  bad.logit_bias = {{100000, 1.0f}};
  CHECK(!(*b)->start(0, bad).ok());
}
