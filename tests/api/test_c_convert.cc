// cria_convert and cria_model_eos_ids from a user's side: the entry points
// the Python binding uses instead of the CLI.
#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "cria/cria.h"

namespace {
namespace fs = std::filesystem;
const std::string kSrc = std::string(CRIA_SOURCE_DIR) + "/examples/models/llama-mini";
const fs::path kDir = fs::path(CRIA_BINARY_DIR) / "testdata" / "api_convert";

struct Seen {
  int calls = 0, stop_at = -1;
  uint64_t last_done = 0, total = 0;
  bool monotonic = true, last_tensor_done = false;
};

int on_progress(void* user, const cria_convert_progress* p) {
  auto* s = static_cast<Seen*>(user);
  if (p->bytes_done < s->last_done) s->monotonic = false;
  s->last_done = p->bytes_done;
  s->total = p->bytes_total;
  s->last_tensor_done = p->tensor_done != 0;
  return ++s->calls == s->stop_at;
}
}  // namespace

TEST_CASE("cria_convert: converts with progress, stops when asked, leaves nothing behind") {
  fs::create_directories(kDir);
  const std::string out = (kDir / "llama-mini.cria").string();
  fs::remove(out);
  cria_convert_options opt;
  cria_convert_options_init(&opt);
  opt.quant = "q4";
  Seen seen;
  REQUIRE_MESSAGE(cria_convert(kSrc.c_str(), out.c_str(), &opt, on_progress, &seen) == CRIA_OK, cria_last_error());
  CHECK(seen.calls > 10);
  CHECK(seen.monotonic);
  CHECK(seen.last_done == seen.total);
  CHECK(seen.last_tensor_done);

  cria_model* m = nullptr;
  REQUIRE(cria_model_load(out.c_str(), nullptr, &m) == CRIA_OK);
  size_t n = 0;
  REQUIRE(cria_model_eos_ids(m, nullptr, 0, &n) == CRIA_OK);
  CHECK(n == 2);  // llama-mini: <|end_of_text|> (the tokenizer's EOS) and <|eot_id|> (generation_config)
  int32_t ids[2] = {-1, -1};
  REQUIRE(cria_model_eos_ids(m, ids, 2, &n) == CRIA_OK);
  int32_t eot[1];
  size_t n_eot = 0;
  REQUIRE(cria_tokenize(m, "<|eot_id|>", 10, 0, 1, eot, 1, &n_eot) == CRIA_OK);
  CHECK(n_eot == 1);
  CHECK(ids[1] == eot[0]);
  cria_model_free(m);

  // Stopped by its callback: CANCELLED, the old file untouched, no temporary left.
  const auto size_before = fs::file_size(out);
  Seen stop;
  stop.stop_at = 3;
  CHECK(cria_convert(kSrc.c_str(), out.c_str(), &opt, on_progress, &stop) == CRIA_ERR_CANCELLED);
  CHECK(stop.calls == 3);
  CHECK(fs::file_size(out) == size_before);
  int files = 0;
  for (const auto& e : fs::directory_iterator(kDir)) files += e.is_regular_file();
  CHECK(files == 1);
}

TEST_CASE("cria_convert: bad arguments are errors with a message") {
  cria_convert_options opt;
  cria_convert_options_init(&opt);
  const std::string out = (kDir / "never.cria").string();
  CHECK(cria_convert(nullptr, out.c_str(), &opt, nullptr, nullptr) == CRIA_ERR_INVALID_ARGUMENT);
  opt.group = 64;
  CHECK(cria_convert(kSrc.c_str(), out.c_str(), &opt, nullptr, nullptr) == CRIA_ERR_INVALID_ARGUMENT);
  CHECK(std::string(cria_last_error()).find("group") != std::string::npos);
  cria_convert_options_init(&opt);
  opt.quant = "q3";
  CHECK(cria_convert(kSrc.c_str(), out.c_str(), &opt, nullptr, nullptr) != CRIA_OK);
  CHECK(std::string(cria_last_error()).find("q3") != std::string::npos);
  CHECK(cria_convert("/nonexistent-dir", out.c_str(), nullptr, nullptr, nullptr) != CRIA_OK);
  CHECK(std::string(cria_last_error()).find("/nonexistent-dir") != std::string::npos);
  CHECK_FALSE(fs::exists(out));
}
