// A model split by layers through the public C API, driven as the browser's
// workers drive it (web/src/chain.js), but with both "instances" in one
// process: the first loads its layers' byte ranges and generates; its
// pipeline host runs the second's cria_stage_forward directly. The text
// must equal the whole model's, bit for bit (same kernels, same order).
#include <doctest/doctest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "cria/cria.h"

namespace {

const std::string kData = std::string(CRIA_BINARY_DIR) + "/testdata/ref/";

std::vector<uint8_t> read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

// The later instance, reached through the host.
struct Later {
  cria_model* model = nullptr;
  cria_stage* stage = nullptr;
  std::string error;
  int forwards = 0;
};

const char* fail(Later* l) {
  l->error = cria_last_error();
  return l->error.c_str();
}

const char* on_open(void* u, int32_t, int32_t n_seq, int32_t n_ctx, const char* kv, int32_t max_tokens) {
  auto* l = static_cast<Later*>(u);
  return cria_stage_create(l->model, 1, n_seq, n_ctx, kv, max_tokens, &l->stage) == CRIA_OK ? nullptr : fail(l);
}
const char* on_forward(void* u, int32_t, const cria_batch_entry* batch, int32_t n, const float* hidden, int32_t,
                       float* logits, int32_t, int32_t) {
  auto* l = static_cast<Later*>(u);
  ++l->forwards;
  return cria_stage_forward(l->stage, batch, n, hidden, logits) == CRIA_OK ? nullptr : fail(l);
}
const char* on_copy(void* u, int32_t, int32_t src, int32_t dst, int32_t n_pos) {
  auto* l = static_cast<Later*>(u);
  return cria_stage_copy_rows(l->stage, src, dst, n_pos) == CRIA_OK ? nullptr : fail(l);
}
void on_close(void* u, int32_t) {
  auto* l = static_cast<Later*>(u);
  cria_stage_free(l->stage);
  l->stage = nullptr;
}

int collect(void* user, int32_t, const char* text, size_t len, int32_t) {
  static_cast<std::string*>(user)->append(text, len);
  return 0;
}

std::string greedy(cria_model* m, const char* prompt) {
  cria_session* s = nullptr;
  REQUIRE_MESSAGE(cria_session_create(m, nullptr, &s) == CRIA_OK, cria_last_error());
  cria_generate_params p;
  cria_generate_params_init(m, &p);
  p.prompt = prompt;
  p.max_new_tokens = 24;
  p.do_sample = 0;
  std::string text;
  const cria_status st = cria_generate(s, &p, collect, &text, nullptr);
  cria_session_free(s);
  REQUIRE_MESSAGE(st == CRIA_OK, cria_last_error());
  return text;
}

}  // namespace

TEST_CASE("C API: two instances of a split model give the whole model's greedy text") {
  for (const char* name : {"ref-llama31-scaled", "ref-falcon-7b"}) {
    CAPTURE(name);
    const std::string path = kData + name + "/q8.cria";
    const std::vector<uint8_t> file = read_all(path);
    REQUIRE(file.size() > 64);
    uint64_t header_size = 0;
    std::memcpy(&header_size, file.data() + 16, 8);
    const uint64_t head = 64 + header_size;

    cria_split_stage stages[2];
    cria_byte_range ranges[16];
    size_t n_ranges = 0;
    REQUIRE_MESSAGE(cria_file_split(file.data(), head, file.size(), name, 2, stages, ranges, 16, &n_ranges) == CRIA_OK,
                    cria_last_error());
    REQUIRE(n_ranges <= 16);
    CHECK(stages[0].layer_begin == 0);
    CHECK(stages[0].layer_end == stages[1].layer_begin);
    // Each instance gets copies of its own ranges only, fewer bytes than the file.
    std::vector<std::vector<uint8_t>> copies[2];
    std::vector<const void*> data[2];
    for (int i = 0; i < 2; ++i) {
      CHECK(stages[i].bytes < file.size());
      for (uint32_t r = 0; r < stages[i].n_ranges; ++r) {
        const cria_byte_range& b = ranges[stages[i].first_range + r];
        copies[i].emplace_back(file.begin() + (long)b.offset, file.begin() + (long)(b.offset + b.size));
      }
      for (const auto& c : copies[i]) data[i].push_back(c.data());
    }

    Later later;
    REQUIRE_MESSAGE(cria_model_load_ranges(file.data(), head, file.size(), ranges + stages[1].first_range, data[1].data(),
                                           stages[1].n_ranges, stages[1].layer_begin, stages[1].layer_end, name,
                                           &later.model) == CRIA_OK,
                    cria_last_error());
    const cria_pipeline_host host{&later, on_open, on_forward, on_copy, on_close};
    cria_set_pipeline_host(&host);
    cria_model* first = nullptr;
    const cria_status st = cria_model_load_ranges(file.data(), head, file.size(), ranges + stages[0].first_range,
                                                  data[0].data(), stages[0].n_ranges, 0, stages[0].layer_end, name,
                                                  &first);
    REQUIRE_MESSAGE(st == CRIA_OK, cria_last_error());
    const std::string split = greedy(first, "Once upon a time");
    cria_model_free(first);
    cria_set_pipeline_host(nullptr);
    CHECK(later.forwards > 1);  // prefill and decode went through the second instance
    CHECK(later.stage == nullptr);

    cria_model* whole = nullptr;
    REQUIRE(cria_model_load(path.c_str(), nullptr, &whole) == CRIA_OK);
    const std::string want = greedy(whole, "Once upon a time");
    cria_model_free(whole);
    CHECK(want.size() > 10);
    CHECK(split == want);

    // The later instance without one of its ranges is refused, naming a tensor.
    cria_model* missing = nullptr;
    REQUIRE(stages[1].n_ranges >= 1);
    const cria_status bad = cria_model_load_ranges(file.data(), head, file.size(), ranges + stages[1].first_range,
                                                   data[1].data(), stages[1].n_ranges - 1, stages[1].layer_begin,
                                                   stages[1].layer_end, name, &missing);
    CHECK(bad != CRIA_OK);
    CHECK(std::string(cria_last_error()).find("is not among the byte ranges in memory") != std::string::npos);
    cria_model_free(later.model);
  }
}
