// The .cria writer and reader: round trip, atomic output, >4 GiB offsets and
// the reader's defences against bad files.
#include <doctest/doctest.h>

#include <cstring>
#include <dirent.h>

#include <algorithm>
#include <map>
#include <random>

#include "formats/checksum_stream.h"
#include "formats/layer_stages.h"
#include "formats/model_file.h"
#include "formats/model_writer.h"
#include "quant/quant.h"
#include "tests/formats/test_util.h"

using namespace cria;
using namespace cria::test;

namespace {

// Writes a model whose tensors follow the config, in the given types
// (norms/biases f32), with deterministic random data. Returns the bytes of
// each tensor as written, by name.
std::map<std::string, std::vector<uint8_t>> write_model(const std::string& path, const ModelMeta& meta,
                                                        QType linear = QType::kQ4, uint32_t group = 32) {
  std::vector<TensorPlan> plan;
  for (const TensorSpec& s : tensor_specs(meta.config)) {
    TensorPlan p;
    p.name = s.name;
    p.shape = s.shape;
    bool small = s.role == TensorRole::kNorm || s.role == TensorRole::kBias;
    p.dtype = small ? QType::kF32 : s.role == TensorRole::kLinear ? linear : QType::kQ8;
    p.group = p.dtype == QType::kQ4 ? group : p.dtype == QType::kQ8 ? 32 : 0;
    plan.push_back(p);
  }
  auto w = ModelWriter::create(path, meta, plan);
  REQUIRE(w.ok());
  std::map<std::string, std::vector<uint8_t>> data;
  uint32_t seed = 1;
  for (const TensorPlan& p : plan) {
    const uint64_t rows = p.shape.size() == 2 ? p.shape[0] : 1, cols = p.shape.back();
    QLayout l;
    REQUIRE(qlayout(p.dtype, rows, cols, p.group, &l));
    std::vector<float> x = random_floats(rows * cols, seed++);
    std::vector<uint8_t> bytes(l.total, 0);
    quantize_rows(p.dtype, x.data(), rows, l, qplanes_at(bytes.data(), l, 0), QuantOptions());
    // Write in uneven pieces to exercise buffering.
    uint64_t off = 0, step = 1;
    while (off < bytes.size()) {
      uint64_t n = std::min<uint64_t>(step, bytes.size() - off);
      REQUIRE((*w)->write(bytes.data() + off, n).ok());
      off += n;
      step = step * 3 + 1;
    }
    REQUIRE((*w)->end_tensor().ok());
    data[p.name] = std::move(bytes);
  }
  Status s = (*w)->finish();
  REQUIRE(s.ok());
  return data;
}

std::string error_of(const std::string& path) {
  auto f = ModelFile::open(path);
  REQUIRE_FALSE(f.ok());
  return f.status().message();
}

void flip_byte(const std::string& path, uint64_t offset) {
  std::string b = read_file(path);
  REQUIRE(offset < b.size());
  b[offset] ^= 0x40;
  write_file(path, b);
}

bool dir_has_temp_files(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  bool found = false;
  while (dirent* e = readdir(d))
    if (std::strstr(e->d_name, ".tmp-")) found = true;
  closedir(d);
  return found;
}

}  // namespace

TEST_CASE("round trip: header, tokenizer and tensors") {
  const std::string path = temp_dir() + "/roundtrip.cria";
  for (Arch arch : {Arch::kLlama, Arch::kFalcon}) {
    ModelMeta meta = tiny_meta(arch);
    auto data = write_model(path, meta);
    auto f = ModelFile::open(path);
    REQUIRE_MESSAGE(f.ok(), f.status().message());
    const ModelFile& mf = **f;
    CHECK(mf.preamble().data_offset % 4096 == 0);
    CHECK(mf.config().hidden_size == 64);
    CHECK(mf.config().arch == arch);
    CHECK(mf.tensors().size() == tensor_specs(meta.config).size());
    for (const TensorRef& t : mf.tensors()) {
      CHECK(t.offset % 64 == 0);
      CHECK(reinterpret_cast<uintptr_t>(t.data) % 64 == 0);
      const auto& want = data.at(std::string(t.name));
      REQUIRE(t.size == want.size());
      CHECK(std::memcmp(t.data, want.data(), t.size) == 0);
    }
    CHECK(mf.verify_checksums().ok());
    ModelMeta back = mf.meta();
    CHECK(back.tokenizer.vocab == meta.tokenizer.vocab);
    CHECK(back.tokenizer.merges == meta.tokenizer.merges);
    CHECK(back.tokenizer.added_tokens.size() == 1);
    CHECK(back.tokenizer.added_tokens[0].content == "<|bos|>");
    CHECK(back.tokenizer.bos_id == 257);
    CHECK(back.tokenizer.add_bos);
    CHECK(back.tokenizer.pre_tokenizer.size() == 2);
    CHECK(back.chat.kind == ChatKind::kLlama3);
    CHECK(back.chat.jinja == meta.chat.jinja);
    CHECK(back.generation.temperature == 0.6f);
    CHECK(back.generation.eos_ids == std::vector<uint32_t>{257});
    CHECK(back.provenance.source == "test");
    CHECK(back.config.rope_theta == 500000.0f);
    CHECK(back.config.tie_word_embeddings == meta.config.tie_word_embeddings);
    CHECK(back.config.block == meta.config.block);
  }
  CHECK_FALSE(dir_has_temp_files(temp_dir()));
}

TEST_CASE("an unfinished writer leaves nothing behind") {
  const std::string path = temp_dir() + "/unfinished.cria";
  ::unlink(path.c_str());
  {
    ModelMeta meta = tiny_meta();
    std::vector<TensorPlan> plan;
    for (const TensorSpec& s : tensor_specs(meta.config)) plan.push_back({s.name, QType::kF32, s.shape, 0});
    auto w = ModelWriter::create(path, meta, plan);
    REQUIRE(w.ok());
    std::vector<uint8_t> z(100, 0);
    REQUIRE((*w)->write(z.data(), z.size()).ok());
    // Writing more than the tensor holds is refused.
    CHECK_FALSE((*w)->end_tensor().ok());
    CHECK_FALSE((*w)->finish().ok());
  }
  CHECK_FALSE(file_exists(path));
  CHECK_FALSE(dir_has_temp_files(temp_dir()));
}

TEST_CASE("offsets beyond 4 GiB are addressed correctly") {
  // A vocabulary of 2^20 rows x 1024 f32 columns makes the embedding exactly
  // 4 GiB, so every tensor after it lives past the 32-bit boundary. The
  // embedding is written as zeros, which the writer leaves as a hole.
  const std::string path = temp_dir() + "/big.cria";
  ModelMeta meta = tiny_meta();
  meta.config.vocab_size = 1u << 20;
  meta.config.hidden_size = 1024;
  meta.config.num_heads = 16;
  meta.config.num_kv_heads = 4;
  meta.config.head_dim = 64;
  meta.config.num_layers = 1;
  meta.config.tie_word_embeddings = true;
  std::vector<TensorPlan> plan;
  for (const TensorSpec& s : tensor_specs(meta.config))
    plan.push_back({s.name, s.role == TensorRole::kEmbedding ? QType::kF32 : QType::kF32, s.shape, 0});
  REQUIRE(plan[0].name == "tok_embd.weight");
  std::map<std::string, std::vector<uint8_t>> data;
  {
    auto w = ModelWriter::create(path, meta, plan);
    REQUIRE(w.ok());
    uint32_t seed = 9;
    for (const TensorPlan& p : plan) {
      uint64_t n = 1;
      for (uint64_t d : p.shape) n *= d;
      if (p.name == "tok_embd.weight") {
        CHECK(n * 4 == (4ull << 30));
        REQUIRE((*w)->write_zeros(n * 4).ok());
      } else {
        std::vector<float> x = random_floats(n, seed++);
        std::vector<uint8_t> b(n * 4);
        std::memcpy(b.data(), x.data(), b.size());
        REQUIRE((*w)->write(b.data(), b.size()).ok());
        data[p.name] = b;
      }
      REQUIRE((*w)->end_tensor().ok());
    }
    REQUIRE((*w)->finish().ok());
  }
  auto f = ModelFile::open(path);
  REQUIRE_MESSAGE(f.ok(), f.status().message());
  CHECK((*f)->file_size() > (4ull << 30));
  int beyond = 0;
  for (const TensorRef& t : (*f)->tensors()) {
    if (t.name == "tok_embd.weight") continue;
    CHECK(t.offset >= (4ull << 30));
    beyond++;
    const auto& want = data.at(std::string(t.name));
    CHECK(std::memcmp(t.data, want.data(), want.size()) == 0);
  }
  CHECK(beyond == (int)plan.size() - 1);
  // (No verify_checksums here: faulting in the 4 GiB hole costs ~10 s.)
  f = Status();
  ::unlink(path.c_str());
}

TEST_CASE("bad files are errors naming the file and the problem") {
  const std::string good = temp_dir() + "/good.cria";
  const std::string bad = temp_dir() + "/bad.cria";
  write_model(good, tiny_meta());
  const std::string bytes = read_file(good);
  auto f = ModelFile::open(good);
  REQUIRE(f.ok());
  const Preamble pre = (*f)->preamble();
  const TensorRef some = (*f)->tensors().back();
  const std::string some_name(some.name);  // the view dies with the mapping
  f = Status();

  SUBCASE("missing file") {
    auto r = ModelFile::open(temp_dir() + "/nope.cria");
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message().find("nope.cria") != std::string::npos);
  }
  SUBCASE("truncated") {
    for (uint64_t cut : {uint64_t(10), uint64_t(64), pre.data_offset - 1, (uint64_t)bytes.size() - 1}) {
      write_file(bad, bytes.substr(0, cut));
      std::string e = error_of(bad);
      CHECK(e.find(bad) == 0);
      CHECK((e.find("truncated") != std::string::npos || e.find("not a cria") != std::string::npos));
    }
  }
  SUBCASE("wrong magic") {
    std::string b = bytes;
    b[0] = 'X';
    write_file(bad, b);
    CHECK(error_of(bad).find("not a cria model file") != std::string::npos);
  }
  SUBCASE("wrong FlatBuffers identifier") {
    std::string b = bytes;
    std::memcpy(&b[64 + 4], "XXXX", 4);
    write_file(bad, b);
    // The header checksum catches it first; patch the checksum so the
    // verifier's identifier check is what fails.
    Preamble p;
    std::memcpy(&p, b.data(), 64);
    p.header_checksum = checksum_bytes(b.data() + 64, p.header_size);
    std::memcpy(&b[0], &p, 64);
    write_file(bad, b);
    CHECK(error_of(bad).find("FlatBuffers verification") != std::string::npos);
  }
  SUBCASE("newer major version") {
    std::string b = bytes;
    uint16_t major = kFormatMajor + 1;
    std::memcpy(&b[4], &major, 2);
    write_file(bad, b);
    std::string e = error_of(bad);
    CHECK(e.find("newer") != std::string::npos);
    CHECK(e.find("update cria") != std::string::npos);
  }
  SUBCASE("corrupted header") {
    flip_byte(good, 64 + pre.header_size / 2);
    write_file(bad, read_file(good));
    write_file(good, bytes);
    CHECK(error_of(bad).find("header checksum mismatch") != std::string::npos);
  }
  SUBCASE("one flipped byte in tensor data is caught by verify") {
    write_file(bad, bytes);
    flip_byte(bad, pre.data_offset + some.offset + some.size / 2);
    auto r = ModelFile::open(bad);
    REQUIRE(r.ok());
    Status s = (*r)->verify_checksums();
    REQUIRE_FALSE(s.ok());
    CHECK(s.code() == Code::kCorrupt);
    CHECK(s.message().find("checksum mismatch in tensor " + some_name) != std::string::npos);
  }
  SUBCASE("shape that disagrees with the config") {
    ModelMeta m = tiny_meta();
    write_model(bad, m);
    // Same tensors, but the config now claims a larger FFN.
    ModelMeta m2 = m;
    m2.config.intermediate_size = 256;
    std::vector<TensorPlan> plan;
    for (const TensorSpec& s : tensor_specs(m.config)) plan.push_back({s.name, QType::kF32, s.shape, 0});
    auto w = ModelWriter::create(bad, m2, plan);
    REQUIRE(w.ok());
    for (size_t i = 0; i < plan.size(); ++i) {
      REQUIRE((*w)->write_zeros((*w)->tensor_size(i)).ok());
      REQUIRE((*w)->end_tensor().ok());
    }
    REQUIRE((*w)->finish().ok());
    std::string e = error_of(bad);
    CHECK(e.find("has shape") != std::string::npos);
    CHECK(e.find("config implies") != std::string::npos);
  }
  SUBCASE("missing tensor") {
    ModelMeta m = tiny_meta();
    std::vector<TensorPlan> plan;
    for (const TensorSpec& s : tensor_specs(m.config))
      if (s.name != "blk.1.ffn_down.weight") plan.push_back({s.name, QType::kF32, s.shape, 0});
    auto w = ModelWriter::create(bad, m, plan);
    REQUIRE(w.ok());
    for (size_t i = 0; i < plan.size(); ++i) {
      REQUIRE((*w)->write_zeros((*w)->tensor_size(i)).ok());
      REQUIRE((*w)->end_tensor().ok());
    }
    REQUIRE((*w)->finish().ok());
    CHECK(error_of(bad).find("missing tensor blk.1.ffn_down.weight") != std::string::npos);
  }
  SUBCASE("config values out of range") {
    ModelMeta m = tiny_meta();
    m.config.num_kv_heads = 3;  // does not divide 4 heads
    std::vector<TensorPlan> plan;
    auto w = ModelWriter::create(bad, m, plan);
    REQUIRE(w.ok());
    REQUIRE((*w)->finish().ok());
    CHECK(error_of(bad).find("not a multiple of num_kv_heads") != std::string::npos);
  }
  SUBCASE("tokenizer ids out of range") {
    ModelMeta m = tiny_meta();
    m.tokenizer.merges.push_back({5, 999});
    write_model(bad, m);
    CHECK(error_of(bad).find("bad tokenizer") != std::string::npos);
  }
}

TEST_CASE("from_memory reads the same file") {
  const std::string path = temp_dir() + "/mem.cria";
  write_model(path, tiny_meta(), QType::kQ8);
  std::string b = read_file(path);
  std::vector<uint8_t> v(b.begin(), b.end());
  auto f = ModelFile::from_bytes(std::move(v), "mem.cria");
  REQUIRE(f.ok());
  CHECK((*f)->verify_checksums().ok());
  CHECK((*f)->find("output.weight") != nullptr);
  CHECK((*f)->find("nope") == nullptr);
}

TEST_CASE("checksums verified while the bytes stream in") {
  const std::string path = temp_dir() + "/stream.cria";
  write_model(path, tiny_meta(), QType::kQ8);
  const std::string b = read_file(path);
  const auto* bytes = reinterpret_cast<const uint8_t*>(b.data());
  Preamble pre;
  std::memcpy(&pre, bytes, 64);
  const uint64_t header_end = pre.header_offset + pre.header_size;
  // Tensor positions from the reader, to aim a corruption.
  auto f = ModelFile::open(path);
  REQUIRE(f.ok());
  std::vector<std::pair<std::string, uint64_t>> ends;  // name, absolute end, in data order
  for (const TensorRef& t : (*f)->tensors()) ends.push_back({std::string(t.name), pre.data_offset + t.offset + t.size});
  REQUIRE(ends.size() >= 3);

  std::mt19937 rng(7);
  for (int trial = 0; trial < 4; ++trial) {
    // A good file in random chunk sizes (1 byte .. 64 KiB).
    auto s = ChecksumStream::for_header(bytes, b.size(), "stream.cria");
    REQUIRE_MESSAGE(s.ok(), s.status().message());
    uint64_t have = header_end;
    while (have < b.size()) {
      have = std::min<uint64_t>(b.size(), have + 1 + rng() % 65536);
      REQUIRE((*s)->advance(bytes, have).ok());
    }
    CHECK((*s)->finish().ok());
    CHECK((*s)->hashed() == (*s)->total());
  }

  // One flipped byte in the middle tensor: refused as soon as that tensor's
  // last byte arrives, naming it, not at the end of the file.
  const auto& [name, end] = ends[ends.size() / 2];
  std::string bad = b;
  bad[end - 1] ^= 0x10;
  const auto* bad_bytes = reinterpret_cast<const uint8_t*>(bad.data());
  auto s = ChecksumStream::for_header(bad_bytes, bad.size(), "bad.cria");
  REQUIRE(s.ok());
  CHECK((*s)->advance(bad_bytes, end - 1).ok());
  Status st = (*s)->advance(bad_bytes, end);
  REQUIRE_FALSE(st.ok());
  CHECK(st.code() == Code::kCorrupt);
  CHECK(st.message() == "bad.cria: checksum mismatch in tensor " + name);
  CHECK_FALSE((*s)->finish().ok());

  // A stream that stops early is not complete.
  auto s2 = ChecksumStream::for_header(bytes, b.size(), "short.cria");
  REQUIRE(s2.ok());
  REQUIRE((*s2)->advance(bytes, b.size() - 1).ok());
  CHECK((*s2)->finish().message().find("is incomplete") != std::string::npos);

  // A damaged header is refused before any tensor.
  std::string hb = b;
  hb[64 + pre.header_size / 2] ^= 1;
  auto s3 = ChecksumStream::for_header(reinterpret_cast<const uint8_t*>(hb.data()), hb.size(), "h.cria");
  REQUIRE_FALSE(s3.ok());
  CHECK(s3.status().message() == "h.cria: header checksum mismatch");
}

// A stage of a model split by layers (formats/layer_stages.h): its byte
// ranges, the split, a file of which only those ranges are in memory, and
// the streaming check of one range.
TEST_CASE("layer stages: ranges, split, a partial file and its checksums") {
  for (const Arch arch : {Arch::kLlama, Arch::kFalcon}) {
    ModelMeta meta = tiny_meta(arch);
    meta.config.num_layers = 5;
    const std::string path = temp_dir() + "/stages-" + std::to_string((int)arch) + ".cria";
    write_model(path, meta, QType::kQ4);
    const std::string b = read_file(path);
    const auto* bytes = reinterpret_cast<const uint8_t*>(b.data());
    auto whole = ModelFile::open(path);
    REQUIRE(whole.ok());
    const ModelConfig& c = (*whole)->config();
    const uint64_t head = 64 + (*whole)->preamble().header_size, base = (*whole)->preamble().data_offset;
    auto header = ModelFile::from_extents(bytes, head, b.size(), {}, "h.cria");
    REQUIRE_MESSAGE(header.ok(), header.status().message());
    CHECK((*header)->find("tok_embd.weight")->data == nullptr);

    // The split against every possible cut (brute force): the largest stage
    // is as small as it can be, stages are contiguous and non-empty.
    auto bytes_of = [&](int64_t lb, int64_t le) {
      uint64_t n = 0;
      for (const ByteRange& r : stage_ranges(**whole, lb, le)) n += r.size;
      return n;
    };
    for (int n = 1; n <= 3; ++n) {
      auto plan = plan_layer_stages(**header, n);
      REQUIRE(plan.ok());
      REQUIRE(plan->size() == (size_t)n);
      uint64_t worst = 0;
      for (int i = 0; i < n; ++i) {
        const LayerStage& s = (*plan)[i];
        CHECK(s.layer_begin == (i ? (*plan)[i - 1].layer_end : 0));
        CHECK(s.layer_end > s.layer_begin);
        CHECK(s.bytes == bytes_of(s.layer_begin, s.layer_end));
        worst = std::max(worst, s.bytes);
      }
      CHECK((*plan)[n - 1].layer_end == (int64_t)c.num_layers);
      uint64_t best = UINT64_MAX;
      const int64_t L = c.num_layers;
      if (n == 1) best = bytes_of(0, L);
      if (n == 2)
        for (int64_t a = 1; a < L; ++a) best = std::min(best, std::max(bytes_of(0, a), bytes_of(a, L)));
      if (n == 3)
        for (int64_t a = 1; a < L; ++a)
          for (int64_t d = a + 1; d < L; ++d)
            best = std::min(best, std::max({bytes_of(0, a), bytes_of(a, d), bytes_of(d, L)}));
      CHECK(worst == best);
    }
    auto too_many = plan_layer_stages(**header, 6);
    REQUIRE_FALSE(too_many.ok());
    CHECK(too_many.status().message() == "h.cria: 6 instances for 5 layers (each instance holds one layer at least)");

    // The middle stage alone, from copies of its ranges: its tensors read
    // the file's bytes, the others have none; each range verifies on its
    // own, and a flipped byte is refused naming its tensor.
    const std::vector<ByteRange> ranges = stage_ranges(**whole, 2, 4);
    std::vector<std::vector<uint8_t>> copies;
    std::vector<ModelFile::Extent> ext;
    for (const ByteRange& r : ranges) {
      copies.emplace_back(bytes + r.offset, bytes + r.offset + r.size);
      ext.push_back({r.offset, r.size, copies.back().data()});
    }
    auto part = ModelFile::from_extents(bytes, head, b.size(), ext, "part.cria");
    REQUIRE_MESSAGE(part.ok(), part.status().message());
    CHECK((*part)->partial());
    for_each_tensor(c, [&](const TensorSpec& s) {
      const TensorRef* t = (*part)->find(s.name);
      if (stage_reads(c, s, 2, 4)) {
        REQUIRE(t->data != nullptr);
        CHECK(std::memcmp(t->data, bytes + base + t->offset, t->size) == 0);
      } else {
        CHECK(t->data == nullptr);
      }
    });
    // The tied embedding is the last stage's head.
    const auto last = stage_ranges(**whole, 4, 5);
    const uint64_t embd = base + (*whole)->find("tok_embd.weight")->offset;
    const bool has_embd = std::any_of(last.begin(), last.end(), [&](const ByteRange& r) {
      return embd >= r.offset && embd < r.offset + r.size;
    });
    CHECK(has_embd == c.tie_word_embeddings);
    for (size_t i = 0; i < ranges.size(); ++i) {
      auto s = ChecksumStream::for_range(bytes, b.size(), "part.cria", ranges[i].offset, ranges[i].offset + ranges[i].size);
      REQUIRE(s.ok());
      REQUIRE((*s)->advance(copies[i].data(), copies[i].size()).ok());
      CHECK((*s)->finish().ok());
      CHECK((*s)->total() > 0);
    }
    std::string first;  // the tensor at the range's first byte
    for (const TensorRef& t : (*whole)->tensors())
      if (base + t.offset == ranges[0].offset) first = std::string(t.name);
    REQUIRE(first.rfind("blk.2.", 0) == 0);
    copies[0][0] ^= 0x20;
    auto s = ChecksumStream::for_range(bytes, b.size(), "part.cria", ranges[0].offset, ranges[0].offset + ranges[0].size);
    REQUIRE(s.ok());
    const Status st = (*s)->advance(copies[0].data(), copies[0].size());
    REQUIRE_FALSE(st.ok());
    CHECK(st.message() == "part.cria: checksum mismatch in tensor " + first);
    // A range that cuts a tensor is refused.
    auto cut = ChecksumStream::for_range(bytes, b.size(), "part.cria", ranges[0].offset + 64, ranges[0].offset + ranges[0].size);
    REQUIRE_FALSE(cut.ok());
    CHECK(cut.status().message().find("cut tensor blk.2.") != std::string::npos);
    // A header that is not all there.
    CHECK_FALSE(ModelFile::from_extents(bytes, head - 1, b.size(), {}, "h.cria").ok());
  }
}
