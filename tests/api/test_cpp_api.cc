// The public C and C++ API from a user's side: only cria.h / cria.hpp.
#include <doctest/doctest.h>

#include <string>
#include <thread>
#include <vector>

#include "cria/cria.hpp"

namespace {
const std::string kModel = std::string(CRIA_BINARY_DIR) + "/testdata/ref/ref-llama31-scaled/q8.cria";
}

TEST_CASE("C++ wrapper: load, tokenize, stream, errors") {
  auto bad = cria::cpp::Model::load("/nonexistent.cria");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().find("/nonexistent.cria") != std::string::npos);
  CHECK(bad.status() == CRIA_ERR_NOT_FOUND);

  auto model = cria::cpp::Model::load(kModel);
  REQUIRE_MESSAGE(model, model.error());
  CHECK(std::string(model->info().architecture) == "llama");
  CHECK(model->info().head_dim == 64);  // tests/reference/fixtures: ref-llama31-scaled has head_dim 64
  auto ids = model->tokenize("hello world");
  REQUIRE(ids);
  CHECK(model->detokenize(*ids) == "hello world");

  cria::cpp::Session session(*model);
  REQUIRE(session);
  cria::cpp::GenerateOptions opt;
  opt.max_new_tokens = 12;
  std::string text;
  int pieces = 0;
  auto r = session.generate("Once upon a time", opt, [&](std::string_view p) {
    text += p;
    return ++pieces < 5;  // stop after five pieces
  });
  REQUIRE_MESSAGE(r, r.error());
  CHECK(r->stop_reason == CRIA_STOP_CALLBACK);
  CHECK(pieces == 5);
  opt.max_new_tokens = 0;
  auto e = session.generate("x", opt, nullptr);
  CHECK_FALSE(e);
  CHECK(e.status() == CRIA_ERR_INVALID_ARGUMENT);
}

TEST_CASE("one model, several sessions on several threads") {
  auto model = cria::cpp::Model::load(kModel);
  REQUIRE(model);
  std::vector<std::string> out(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      cria_session_options so;
      cria_session_options_init(&so);
      so.threads = 1;
      cria::cpp::Session s(*model, &so);
      cria::cpp::GenerateOptions opt;
      opt.max_new_tokens = 16;
      auto r = s.generate("The same prompt", opt, [&](std::string_view p) {
        out[i] += p;
        return true;
      });
      if (!r) out[i] = "error: " + r.error();
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 1; i < 4; ++i) CHECK(out[i] == out[0]);  // greedy: the same text on every thread
  CHECK(out[0].rfind("error", 0) != 0);
}

TEST_CASE("C ABI: status and stop-reason values are mapped, not cast") {
  // Every status the library can return has its own name; a value outside
  // the enum (a caller's bug, or a newer library) is named, not UB.
  const cria_status all[] = {CRIA_OK, CRIA_ERR_INVALID_ARGUMENT, CRIA_ERR_NOT_FOUND, CRIA_ERR_IO,
                             CRIA_ERR_CORRUPT, CRIA_ERR_UNSUPPORTED, CRIA_ERR_OUT_OF_RANGE, CRIA_ERR_CANCELLED,
                             CRIA_ERR_OUT_OF_MEMORY, CRIA_ERR_INTERNAL};
  std::vector<std::string> names;
  for (cria_status s : all) {
    names.emplace_back(cria_status_name(s));
    CHECK(names.back() != "unknown status");
  }
  for (size_t i = 0; i < names.size(); ++i)
    for (size_t j = i + 1; j < names.size(); ++j) CHECK(names[i] != names[j]);
  CHECK(std::string(cria_status_name((cria_status)42)) == "unknown status");
  CHECK(std::string(cria_status_name((cria_status)-1)) == "unknown status");

  // Stop reasons of real generations arrive as the C values.
  auto model = cria::cpp::Model::load(kModel);
  REQUIRE(model);
  cria::cpp::Session session(*model);
  cria::cpp::GenerateOptions opt;
  opt.max_new_tokens = 3;
  auto r = session.generate("Once upon a time", opt, nullptr);
  REQUIRE_MESSAGE(r, r.error());
  CHECK(r->stop_reason == CRIA_STOP_MAX_TOKENS);
  CHECK((int)CRIA_STOP_MAX_TOKENS == 2);
}

TEST_CASE("C API: cria_model_params.backend and cria_model_placement") {
  // A name the build lacks fails with the list of what it has.
  cria_model_params p;
  cria_model_params_init(&p);
  CHECK(std::string(p.backend) == "auto");
  p.backend = "tpu";
  cria_model* m = nullptr;
  CHECK(cria_model_load(kModel.c_str(), &p, &m) == CRIA_ERR_INVALID_ARGUMENT);
  CHECK(m == nullptr);
  CHECK(std::string(cria_last_error()).find("unknown backend 'tpu'; this build has: auto, cpu") != std::string::npos);
  // The q8 file under an explicit cpu: every linear layer on cpu, and the
  // buffer protocol (size query, then a NUL-terminated copy).
  auto model = cria::cpp::Model::load(kModel, "cpu");
  REQUIRE_MESSAGE(model, model.error());
  const std::string text = model->placement();
  CHECK(text.find("backend cpu") == 0);
  CHECK(text.find("linear      cpu (") != std::string::npos);
  char small[8];
  size_t n = 0;
  CHECK(cria_model_placement(model->get(), small, sizeof small, &n) == CRIA_OK);
  CHECK(n == text.size());
  CHECK(std::string(small) == text.substr(0, 7));
}

TEST_CASE("C API: cria_session_pool_runs counts the pool's parallel runs") {
  auto model = cria::cpp::Model::load(kModel);
  REQUIRE_MESSAGE(model, model.error());
  cria::cpp::GenerateOptions opt;
  opt.max_new_tokens = 4;
  for (int threads : {1, 2}) {
    CAPTURE(threads);
    cria_session_options so;
    cria_session_options_init(&so);
    so.threads = threads;
    cria::cpp::Session session(*model, &so);
    REQUIRE_MESSAGE(session, session.error());
    uint64_t runs = 7, solo = 7;
    cria_session_pool_runs(session.get(), &runs, &solo);
    CHECK(runs == 0);
    CHECK(solo == 0);
    REQUIRE(session.generate("Once upon a time", opt, nullptr));
    cria_session_pool_runs(session.get(), &runs, nullptr);
    cria_session_pool_runs(session.get(), nullptr, &solo);
    // One thread runs every op inline: no parallel runs. Two split the ops
    // wide enough to split (this small model has few). The governor judges
    // only after a window of at least 32 spread runs, so some runs always
    // spread and solo stays below runs (a swapped pair would not);
    // test_threadpool forces solo runs.
    if (threads == 1) {
      CHECK(runs == 0);
      CHECK(solo == 0);
    } else {
      CHECK(runs > 0);
      CHECK(solo < runs);
    }
  }
  uint64_t runs = 7;
  cria_session_pool_runs(nullptr, &runs, nullptr);
  CHECK(runs == 0);
}
