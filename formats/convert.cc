#include "formats/convert.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <cmath>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "formats/convert_sources.h"
#include "formats/model_writer.h"
#include "formats/tensors.h"
#include "quant/fp16.h"
#include "quant/quant.h"

namespace cria {

const char* const kConverterVersion = "cria-convert " CRIA_VERSION;

namespace {

constexpr uint64_t kChunkBytes = 32ull << 20;  // f32 rows gathered per step

struct Recipe {
  std::string name;
  uint32_t group = 32;
};

// Storage type for a tensor of `role` under the recipe. `native` is the
// type the source holds it in (used by "keep").
void choose_type(const Recipe& r, TensorRole role, QType native, QType* type, uint32_t* group) {
  *group = 0;
  if (role == TensorRole::kNorm || role == TensorRole::kBias) {
    *type = QType::kF32;
    return;
  }
  if (r.name == "f32") *type = QType::kF32;
  else if (r.name == "f16") *type = QType::kF16;
  else if (r.name == "q8") *type = QType::kQ8;
  else if (r.name == "q4") *type = role == TensorRole::kLinear ? QType::kQ4 : QType::kQ8;
  else *type = native;  // keep
  if (*type == QType::kQ8) *group = 32;
  if (*type == QType::kQ4) *group = r.name == "q4" ? r.group : 32;
}

std::string describe_recipe(const Recipe& r) {
  if (r.name == "q4")
    return "q4 g" + std::to_string(r.group) + " (linear int4, embedding and head int8 g32, norms f32)";
  if (r.name == "q8") return "q8 g32 (all matrices int8, norms f32)";
  if (r.name == "keep") return "keep (source types, norms f32)";
  return r.name + " (norms f32)";
}

// Gathers rows [r0, r0 + n) of an assembled tensor as f32.
Status gather_rows(Source& src, const Assembly& a, uint64_t r0, uint64_t n, float* out) {
  uint64_t base = 0;
  for (const Piece& p : a.pieces) {
    const uint64_t lo = std::max(r0, base), hi = std::min(r0 + n, base + p.count);
    if (lo < hi) {
      CRIA_RETURN_IF_ERROR(src.read_rows(p.src, p.row + (lo - base), hi - lo, out + (lo - r0) * a.cols));
    }
    base += p.count;
    if (base >= r0 + n) break;
  }
  return Status::Ok();
}

// Chunk byte counts and plane pointers for rows [r0, r0 + n) of a tensor
// whose scale/min planes are held whole in memory.
uint64_t chunk_q_bytes(const QLayout& l, uint64_t n) {
  return l.tiles ? (n + kTileRows - 1) / kTileRows * l.tile_q_bytes : n * l.row_bytes;
}

QPlanes chunk_planes(const QLayout& l, uint64_t r0, uint8_t* qchunk, std::vector<uint8_t>& splane,
                     std::vector<uint8_t>& mplane) {
  QPlanes p;
  p.q = qchunk;
  const uint64_t soff = l.tiles ? (r0 / kTileRows) * l.tile_s_bytes : r0 * 4;
  if (!splane.empty()) p.s = splane.data() + soff;
  if (!mplane.empty()) p.m = mplane.data() + soff;
  return p;
}

// Quantizes a chunk on `threads` threads, which take runs of tiles from a
// shared counter (a tile's bytes interleave 16 rows, so a tile belongs to
// one thread; small runs keep threads busy while the reader takes a core).
void quantize_parallel(QType t, const float* x, uint64_t rows, const QLayout& l, QPlanes dst,
                       const QuantOptions& qo, int threads) {
  const uint64_t unit = l.tiles ? kTileRows : 1;
  const uint64_t units = (rows + unit - 1) / unit;
  const uint64_t per_grab = l.tiles ? 4 : 64;
  std::atomic<uint64_t> next{0};
  auto work = [&] {
    for (;;) {
      const uint64_t u0 = next.fetch_add(per_grab);
      if (u0 >= units) return;
      const uint64_t u1 = std::min(units, u0 + per_grab);
      const uint64_t a = u0 * unit, b = std::min(rows, u1 * unit);
      QPlanes p = dst;
      p.q += l.tiles ? u0 * l.tile_q_bytes : a * l.row_bytes;
      const uint64_t soff = l.tiles ? u0 * l.tile_s_bytes : a * 4;
      if (p.s) p.s += soff;
      if (p.m) p.m += soff;
      quantize_rows(t, x + a * l.cols, b - a, l, p, qo);
    }
  };
  const int nt = (int)std::min<uint64_t>(std::max(1, threads), (units + per_grab - 1) / per_grab);
  std::vector<std::thread> pool;
  for (int i = 1; i < nt; ++i) pool.emplace_back(work);
  work();
  for (auto& th : pool) th.join();
}

// One GGUF Q4_0 / Q8_0 block as a cria group (exactly the same values).
void ggml_block_to_group(bool q4, const uint8_t* blk, QGroup* g) {
  std::memcpy(&g->d, blk, 2);
  g->m = 0;
  if (q4) {
    for (int j = 0; j < 16; ++j) {
      g->u[j] = blk[2 + j] & 15;
      g->u[j + 16] = blk[2 + j] >> 4;
    }
  } else {
    for (int j = 0; j < 32; ++j) g->u[j] = (uint8_t)((int)(int8_t)blk[2 + j] + 128);
  }
}

class Converter {
 public:
  Converter(Source& src, ModelWriter& w, const ConvertOptions& opt) : src_(src), w_(w), opt_(opt) {}

  Status write_tensor(const TensorSpec& spec, const Assembly& a, QType type, uint32_t group) {
    const bool is2d = spec.shape.size() == 2;
    const uint64_t rows = is2d ? spec.shape[0] : 1, cols = is2d ? spec.shape[1] : spec.shape[0];
    QLayout l;
    if (!qlayout(type, rows, cols, group, &l))
      return Error(Code::kUnsupported, src_.name() + ": tensor " + spec.name + " with " + std::to_string(cols) +
                                           " columns cannot be stored as " + qtype_name(type));
    if (!is2d) {
      std::vector<float> v(cols);
      CRIA_RETURN_IF_ERROR(gather_rows(src_, a, 0, cols, v.data()));
      for (float x : v)
        if (!std::isfinite(x)) return Error(Code::kCorrupt, src_.name() + ": tensor " + spec.name + " holds inf or nan");
      CRIA_RETURN_IF_ERROR(w_.write(v.data(), v.size() * 4));
      report(spec.name, l.total, true);
      return w_.end_tensor();
    }
    const bool exact = a.exact && type == a.exact_type;
    std::vector<uint8_t> splane(l.s_bytes), mplane(l.m_bytes), raw;
    // Chunks are whole tiles of rows, about kChunkBytes of f32 each. While
    // one chunk is quantized and written, another thread reads the next.
    uint64_t chunk = std::max<uint64_t>(1, std::min<uint64_t>(rows, kChunkBytes / 4 / cols));
    if (l.tiles) chunk = align_up(chunk, kTileRows);
    std::vector<float> buf[2];
    if (!exact) {
      buf[0].resize(chunk * cols);
      if (chunk < rows) buf[1].resize(chunk * cols);
    }
    std::vector<uint8_t> qbuf(chunk_q_bytes(l, chunk));
    auto read_chunk = [&](uint64_t r0, float* out) -> Status {
      const uint64_t n = std::min(chunk, rows - r0);
      CRIA_RETURN_IF_ERROR(gather_rows(src_, a, r0, n, out));
      for (uint64_t i = 0; i < n * cols; ++i) {
        if (!std::isfinite(out[i]))
          return Error(Code::kCorrupt, src_.name() + ": tensor " + spec.name + " holds inf or nan at row " +
                                           std::to_string(r0 + i / cols));
      }
      return Status::Ok();
    };
    std::future<Status> next;  // after buf: waited for before buf goes
    if (!exact) next = std::async(std::launch::async, read_chunk, 0, buf[0].data());
    QuantOptions qo;
    qo.search = opt_.search;
    for (uint64_t r0 = 0, ci = 0; r0 < rows; r0 += chunk, ++ci) {
      if (opt_.cancel && opt_.cancel->load()) return Error(Code::kCancelled, "conversion cancelled");
      const uint64_t n = std::min(chunk, rows - r0);
      QPlanes dst = chunk_planes(l, r0, qbuf.data(), splane, mplane);
      if (exact) {
        CRIA_RETURN_IF_ERROR(copy_exact_rows(a, l, r0, n, dst, &raw));
      } else {
        CRIA_RETURN_IF_ERROR(next.get());
        if (r0 + chunk < rows) next = std::async(std::launch::async, read_chunk, r0 + chunk, buf[(ci + 1) % 2].data());
        quantize_parallel(type, buf[ci % 2].data(), n, l, dst, qo, opt_.threads);
      }
      const uint64_t qb = chunk_q_bytes(l, n);
      CRIA_RETURN_IF_ERROR(w_.write(qbuf.data(), qb));
      report(spec.name, qb, false);
    }
    return finish_planes(spec, l, splane, mplane);
  }

  // GGUF Q4_0 / Q8_0 rows repacked into cria's tiles bit for bit.
  Status copy_exact_rows(const Assembly& a, const QLayout& l, uint64_t r0, uint64_t n, QPlanes dst,
                         std::vector<uint8_t>* raw) {
    const bool q4 = a.exact_type == QType::kQ4;
    const uint64_t bsz = q4 ? 18 : 34;
    const uint64_t tiles = (n + kTileRows - 1) / kTileRows;
    std::memset(dst.q, 0, tiles * l.tile_q_bytes);
    std::memset(dst.s, 0, tiles * l.tile_s_bytes);
    QGroup g;
    uint64_t base = 0;
    for (const Piece& p : a.pieces) {
      const uint64_t lo = std::max(r0, base), hi = std::min(r0 + n, base + p.count);
      for (uint64_t r = lo; r < hi; ++r) {
        CRIA_RETURN_IF_ERROR(src_.read_row_raw(p.src, p.row + (r - base), raw));
        for (uint64_t b = 0; b < l.blocks; ++b) {
          ggml_block_to_group(q4, raw->data() + b * bsz, &g);
          pack_group(a.exact_type, l, r, b, g, dst, r0);
        }
      }
      base += p.count;
    }
    return Status::Ok();
  }

  Status finish_planes(const TensorSpec& spec, const QLayout& l, const std::vector<uint8_t>& s,
                       const std::vector<uint8_t>& m) {
    if (l.s_bytes) {
      CRIA_RETURN_IF_ERROR(w_.write_zeros(l.s_offset - l.q_bytes));
      CRIA_RETURN_IF_ERROR(w_.write(s.data(), s.size()));
    }
    if (l.m_bytes) {
      CRIA_RETURN_IF_ERROR(w_.write_zeros(l.m_offset - (l.s_offset + l.s_bytes)));
      CRIA_RETURN_IF_ERROR(w_.write(m.data(), m.size()));
    }
    report(spec.name, l.total - l.q_bytes, true);
    return w_.end_tensor();
  }

  void report(const std::string& name, uint64_t bytes, bool tensor_done) {
    done_ += bytes;
    if (!opt_.progress) return;
    ConvertProgress p;
    p.tensor = name;
    p.index = index_;
    p.count = count_;
    p.bytes_done = done_;
    p.bytes_total = total_;
    p.tensor_done = tensor_done;
    opt_.progress(p);
  }

  Source& src_;
  ModelWriter& w_;
  const ConvertOptions& opt_;
  uint64_t done_ = 0, total_ = 0;
  size_t index_ = 0, count_ = 0;
};

}  // namespace

Status convert_model(const std::string& src_path, const std::string& out, const ConvertOptions& opt) {
  struct stat st;
  if (::stat(src_path.c_str(), &st) != 0) return Error(Code::kNotFound, src_path + ": no such file or directory");
  std::unique_ptr<Source> src;
  if (S_ISDIR(st.st_mode)) {
    CRIA_ASSIGN_OR_RETURN(src, open_hf_source(src_path));
  } else {
    CRIA_ASSIGN_OR_RETURN(src, open_gguf_source(src_path));
  }
  Recipe recipe;
  recipe.name = opt.recipe.empty() ? (src->is_gguf() ? "keep" : "q4") : opt.recipe;
  recipe.group = opt.group;
  if (recipe.name != "f32" && recipe.name != "f16" && recipe.name != "q8" && recipe.name != "q4" &&
      recipe.name != "keep")
    return Error(Code::kInvalidArgument, "unknown quantization '" + recipe.name + "' (f32, f16, q8, q4, keep)");
  if (recipe.name == "q4" && recipe.group != 32 && recipe.group != 128)
    return Error(Code::kInvalidArgument, "q4 group size must be 32 or 128, not " + std::to_string(recipe.group));

  ModelMeta meta = src->meta();
  if (!opt.chat_template.empty()) {
    if (opt.chat_template == "llama3") meta.chat.kind = ChatKind::kLlama3;
    else if (opt.chat_template == "falcon") meta.chat.kind = ChatKind::kFalcon;
    else if (opt.chat_template == "none") meta.chat.kind = ChatKind::kNone;
    else
      return Error(Code::kInvalidArgument, "unknown chat template '" + opt.chat_template + "' (llama3, falcon, none)");
  }
  meta.provenance.source = src_path;
  meta.provenance.source_format = src->is_gguf() ? "gguf" : "hf-safetensors";
  meta.provenance.converter_version = kConverterVersion;
  meta.provenance.quant_recipe = describe_recipe(recipe);
  CRIA_RETURN_IF_ERROR(validate_config(meta.config).with_prefix(src_path));
  if (meta.tokenizer.vocab.size() > meta.config.vocab_size)
    return Error(Code::kCorrupt, src_path + ": tokenizer has " + std::to_string(meta.tokenizer.vocab.size()) +
                                     " tokens but the model's vocab_size is " + std::to_string(meta.config.vocab_size));

  // Plan every tensor (and check every source tensor) before writing a byte.
  std::vector<TensorSpec> specs = tensor_specs(meta.config);
  std::vector<Assembly> asm_(specs.size());
  std::vector<TensorPlan> plan;
  for (size_t i = 0; i < specs.size(); ++i) {
    CRIA_RETURN_IF_ERROR(src->assemble(specs[i], &asm_[i]));
    TensorPlan p;
    p.name = specs[i].name;
    p.shape = specs[i].shape;
    choose_type(recipe, specs[i].role, asm_[i].native, &p.dtype, &p.group);
    // Shapes that don't divide into groups fall back to a float type.
    QLayout l;
    const uint64_t rows = p.shape.size() == 2 ? p.shape[0] : 1;
    if (!qlayout(p.dtype, rows, p.shape.back(), p.group, &l)) {
      p.dtype = QType::kF16;
      p.group = 0;
    }
    plan.push_back(p);
  }
  CRIA_RETURN_IF_ERROR(src->check_unused());

  std::unique_ptr<ModelWriter> w;
  CRIA_ASSIGN_OR_RETURN(w, ModelWriter::create(out, meta, plan));
  Converter c(*src, *w, opt);
  c.count_ = specs.size();
  for (size_t i = 0; i < specs.size(); ++i) c.total_ += w->tensor_size(i);
  for (size_t i = 0; i < specs.size(); ++i) {
    c.index_ = i;
    // The next tensor's bytes are requested while this one is quantized.
    std::thread ahead;
    if (i + 1 < specs.size()) ahead = std::thread([&src, &a = asm_[i + 1]] { src->prefetch(a); });
    Status st = c.write_tensor(specs[i], asm_[i], plan[i].dtype, plan[i].group);
    if (ahead.joinable()) ahead.join();
    CRIA_RETURN_IF_ERROR(st);
  }
  return w->finish();
}

}  // namespace cria
