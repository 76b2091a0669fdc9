// The decode loop allocates nothing: a counting operator new sees no heap
// allocation between the 4th text callback and the end of a 64-token
// generation (warm-up: the text buffers reach their working size).
#include <doctest/doctest.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"  // new is malloc, delete is free: they match
#endif

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>

#include "runtime/engine/session.h"
#include "tests/engine/tiny_model.h"

namespace {
std::atomic<long> g_allocs{0};
}

void* operator new(size_t n) {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
// Every replaceable form, so each allocation is counted and every pointer
// is freed by the allocator that made it (ASan checks the pairing).
void* operator new[](size_t n) { return operator new(n); }
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n ? n : 1);
}
void* operator new[](size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void* operator new(size_t n, std::align_val_t a) {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  const size_t al = std::max<size_t>((size_t)a, sizeof(void*));
  if (void* p = std::aligned_alloc(al, (n + al - 1) / al * al)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n, std::align_val_t a) { return operator new(n, a); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { std::free(p); }

using namespace cria;

TEST_CASE("no heap allocation per generated token") {
  for (Arch arch : {Arch::kLlama, Arch::kFalcon}) {
    for (int threads : {1, 2}) {
      std::string path = test::write_tiny_model("noalloc", arch, QType::kQ4);
      auto m = Model::load(path);
      REQUIRE(m.ok());
      auto tok = Tokenizer::create((*m)->file().meta().tokenizer);
      REQUIRE(tok.ok());
      SessionOptions o;
      o.n_ctx = 128;
      o.n_seq = 2;
      o.threads = threads;
      auto s = Session::create(std::shared_ptr<const Model>(std::move(m).value()),
                               std::shared_ptr<const Tokenizer>(std::move(tok).value()), o);
      REQUIRE(s.ok());
      GenerateRequest r;
      for (int i = 0; i < 10; ++i) r.prompt.push_back(40 + i);
      r.max_new_tokens = 64;
      r.num_return_sequences = 2;
      r.sampling.temperature = 0.8f;
      r.sampling.top_k = 40;
      r.sampling.top_p = 0.9f;
      r.sampling.repetition_penalty = 1.1f;
      r.stop_strings = {"never appears \x01"};
      long warm = -1, last = -1;
      int n = 0;
      std::vector<SequenceResult> out;
      REQUIRE((*s)->generate(r, [&](int64_t, std::string_view, int32_t) {
        ++n;
        if (n == 4) warm = g_allocs.load();
        last = g_allocs.load();
        return true;
      }, &out, nullptr).ok());
      ::unlink(path.c_str());
      CAPTURE(threads);
      REQUIRE(n >= 40);  // text came out for most of the 2 x 64 tokens
      REQUIRE(out[0].tokens.size() == 64);
      CHECK(last - warm == 0);
    }
  }
}
