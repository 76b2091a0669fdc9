#include "formats/gguf.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "formats/safetensors.h"  // pread_exact
#include "quant/fp16.h"

namespace cria {

namespace {

enum GgufType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32v = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};

// Bounds-checked little-endian reader. `short_buffer` is set when the data
// ran out before the file did (the caller retries with more of the file).
struct Cursor {
  const uint8_t* p;
  uint64_t size, pos = 0, file_size;
  bool short_buffer = false;

  bool take(void* out, uint64_t n) {
    if (n > size - pos) {
      if (size < file_size) short_buffer = true;
      return false;
    }
    std::memcpy(out, p + pos, n);
    pos += n;
    return true;
  }
  template <typename T>
  bool get(T* v) { return take(v, sizeof(T)); }
  bool str(std::string* s) {
    uint64_t n;
    if (!get(&n)) return false;
    if (n > file_size) return false;
    if (n > size - pos) {
      if (size < file_size) short_buffer = true;
      return false;
    }
    s->assign(reinterpret_cast<const char*>(p + pos), n);
    pos += n;
    return true;
  }
};

bool read_value(Cursor& c, uint32_t type, GgufValue* v, int depth) {
  switch (type) {
    case kU8: { uint8_t x; if (!c.get(&x)) return false; v->kind = GgufValue::kUInt; v->u = x; return true; }
    case kI8: { int8_t x; if (!c.get(&x)) return false; v->kind = GgufValue::kInt; v->i = x; return true; }
    case kU16: { uint16_t x; if (!c.get(&x)) return false; v->kind = GgufValue::kUInt; v->u = x; return true; }
    case kI16: { int16_t x; if (!c.get(&x)) return false; v->kind = GgufValue::kInt; v->i = x; return true; }
    case kU32: { uint32_t x; if (!c.get(&x)) return false; v->kind = GgufValue::kUInt; v->u = x; return true; }
    case kI32: { int32_t x; if (!c.get(&x)) return false; v->kind = GgufValue::kInt; v->i = x; return true; }
    case kU64: { uint64_t x; if (!c.get(&x)) return false; v->kind = GgufValue::kUInt; v->u = x; return true; }
    case kI64: { int64_t x; if (!c.get(&x)) return false; v->kind = GgufValue::kInt; v->i = x; return true; }
    case kF32v: { float x; if (!c.get(&x)) return false; v->kind = GgufValue::kFloat; v->f = x; return true; }
    case kF64: { double x; if (!c.get(&x)) return false; v->kind = GgufValue::kFloat; v->f = x; return true; }
    case kBool: { uint8_t x; if (!c.get(&x) || x > 1) return false; v->kind = GgufValue::kBool; v->b = x; return true; }
    case kString: v->kind = GgufValue::kString; return c.str(&v->s);
    case kArray: {
      if (depth > 2) return false;
      uint32_t et;
      uint64_t n;
      if (!c.get(&et) || !c.get(&n)) return false;
      if (n > c.file_size) return false;  // every element takes at least one byte
      v->kind = GgufValue::kArray;
      v->arr.clear();
      v->arr.reserve(std::min<uint64_t>(n, 1 << 20));
      for (uint64_t i = 0; i < n; ++i) {
        GgufValue e;
        if (!read_value(c, et, &e, depth + 1)) return false;
        v->arr.push_back(std::move(e));
      }
      return true;
    }
  }
  return false;
}

}  // namespace

const char* ggml_type_name(uint32_t t) {
  static const char* kNames[] = {"F32", "F16", "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0", "Q5_1",
                                 "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K",
                                 "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S",
                                 "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M", "BF16"};
  return t < sizeof(kNames) / sizeof(kNames[0]) ? kNames[t] : "unknown";
}

bool GgufValue::as_u64(uint64_t* out) const {
  if (kind == kUInt) { *out = u; return true; }
  if (kind == kInt && i >= 0) { *out = (uint64_t)i; return true; }
  return false;
}

bool GgufValue::as_f64(double* out) const {
  if (kind == kFloat) { *out = f; return true; }
  if (kind == kUInt) { *out = (double)u; return true; }
  if (kind == kInt) { *out = (double)i; return true; }
  return false;
}

bool GgufFile::row_bytes(uint32_t type, uint64_t cols, uint64_t* out) {
  switch ((GgmlType)type) {
    case GgmlType::kF32: *out = cols * 4; return true;
    case GgmlType::kF16:
    case GgmlType::kBF16: *out = cols * 2; return true;
    case GgmlType::kQ8_0: if (cols % 32) return false; *out = cols / 32 * 34; return true;
    case GgmlType::kQ4_0: if (cols % 32) return false; *out = cols / 32 * 18; return true;
  }
  return false;
}

Status parse_gguf_header(const uint8_t* data, uint64_t size, uint64_t file_size, const std::string& name,
                         std::map<std::string, GgufValue>* meta, std::vector<GgufTensor>* tensors) {
  Cursor c{data, size, 0, file_size};
  auto bad = [&](const std::string& m) {
    if (c.short_buffer) return Error(Code::kOutOfRange, name + ": header larger than the buffer");
    return Error(Code::kCorrupt, name + ": " + m);
  };
  char magic[4];
  if (!c.take(magic, 4) || std::memcmp(magic, "GGUF", 4) != 0) return bad("not a GGUF file (bad magic)");
  uint32_t version;
  uint64_t n_tensors, n_kv;
  if (!c.get(&version)) return bad("truncated header");
  if (version != 2 && version != 3)
    return Error(Code::kUnsupported, name + ": GGUF version " + std::to_string(version) + " is not supported (2, 3)");
  if (!c.get(&n_tensors) || !c.get(&n_kv)) return bad("truncated header");
  if (n_tensors > file_size / 8 || n_kv > file_size / 8) return bad("implausible tensor or key count");
  meta->clear();
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key;
    uint32_t type;
    GgufValue v;
    if (!c.str(&key) || !c.get(&type)) return bad("truncated metadata");
    if (!read_value(c, type, &v, 0)) return bad("bad metadata value for key " + key);
    (*meta)[key] = std::move(v);
  }
  uint64_t alignment = 32;
  if (auto it = meta->find("general.alignment"); it != meta->end()) {
    if (!it->second.as_u64(&alignment) || alignment == 0 || alignment > 65536 || (alignment & (alignment - 1)))
      return bad("bad general.alignment");
  }
  tensors->clear();
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensor t;
    uint32_t nd;
    if (!c.str(&t.name) || !c.get(&nd)) return bad("truncated tensor info");
    if (nd == 0 || nd > 4) return bad("tensor " + t.name + ": " + std::to_string(nd) + " dimensions");
    std::vector<uint64_t> ne(nd);
    for (uint32_t d = 0; d < nd; ++d) {
      if (!c.get(&ne[d])) return bad("truncated tensor info");
      if (ne[d] == 0 || ne[d] > (1ull << 32)) return bad("tensor " + t.name + ": bad dimension");
    }
    if (!c.get(&t.type) || !c.get(&t.offset)) return bad("truncated tensor info");
    // Collapse to [rows, cols] with cols = ne[0].
    uint64_t rows = 1;
    for (uint32_t d = 1; d < nd; ++d) rows *= ne[d];
    if (nd == 1) t.shape = {ne[0]};
    else t.shape = {rows, ne[0]};
    if (nd > 2) {
      // Keep the real outer dims for error messages; rows() handles the rest.
      t.shape = {rows, ne[0]};
    }
    uint64_t rb;
    if (!GgufFile::row_bytes(t.type, t.cols(), &rb)) {
      t.size = 0;  // unsupported type: reported when the converter needs it
    } else {
      if (rows > file_size / std::max<uint64_t>(rb, 1)) return bad("tensor " + t.name + " larger than the file");
      t.size = rows * rb;
    }
    tensors->push_back(std::move(t));
  }
  const uint64_t data_start = (c.pos + alignment - 1) / alignment * alignment;
  for (GgufTensor& t : *tensors) {
    if (t.offset % alignment) return bad("tensor " + t.name + ": misaligned data offset");
    if (t.offset > file_size || data_start > file_size - t.offset) return bad("tensor " + t.name + ": data outside the file");
    t.offset += data_start;
    if (t.size > file_size - t.offset) return bad("tensor " + t.name + ": data runs past the end of the file");
  }
  return Status::Ok();
}

GgufFile::~GgufFile() {
  if (fd_ >= 0) ::close(fd_);
}

Result<std::unique_ptr<GgufFile>> GgufFile::open(const std::string& path) {
  std::unique_ptr<GgufFile> g(new GgufFile());
  g->path_ = path;
  g->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (g->fd_ < 0) return Error(errno == ENOENT ? Code::kNotFound : Code::kIo, path + ": " + std::strerror(errno));
  struct stat st;
  if (fstat(g->fd_, &st) != 0) return Error(Code::kIo, path + ": " + std::strerror(errno));
  const uint64_t fsize = (uint64_t)st.st_size;
  uint64_t want = std::min<uint64_t>(fsize, 16ull << 20);
  std::vector<uint8_t> buf;
  for (;;) {
    buf.resize(want);
    CRIA_RETURN_IF_ERROR(pread_exact(g->fd_, buf.data(), want, 0, path));
    Status s = parse_gguf_header(buf.data(), want, fsize, path, &g->meta_, &g->tensors_);
    if (s.ok()) break;
    if (s.code() != Code::kOutOfRange || want == fsize) return s;
    want = std::min<uint64_t>(fsize, want * 4);
  }
  for (size_t i = 0; i < g->tensors_.size(); ++i) {
    if (!g->index_.emplace(g->tensors_[i].name, i).second)
      return Error(Code::kCorrupt, path + ": tensor " + g->tensors_[i].name + " appears twice");
  }
  return g;
}

const GgufValue* GgufFile::get(const std::string& key) const {
  auto it = meta_.find(key);
  return it == meta_.end() ? nullptr : &it->second;
}

const GgufTensor* GgufFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

void GgufFile::prefetch(const GgufTensor& t, uint64_t row, uint64_t n) const {
  uint64_t rb;
  if (!row_bytes(t.type, t.cols(), &rb)) return;
  ::posix_fadvise(fd_, (off_t)(t.offset + row * rb), (off_t)(n * rb), POSIX_FADV_WILLNEED);
}

Status GgufFile::read_row_raw(const GgufTensor& t, uint64_t row, std::vector<uint8_t>* out) const {
  uint64_t rb;
  if (!row_bytes(t.type, t.cols(), &rb))
    return Error(Code::kUnsupported, path_ + ": tensor " + t.name + " has type " + ggml_type_name(t.type) +
                                         "; supported: F32, F16, BF16, Q8_0, Q4_0");
  if (row >= t.rows()) return Error(Code::kInternal, path_ + ": row out of range in " + t.name);
  out->resize(rb);
  return pread_exact(fd_, out->data(), rb, t.offset + row * rb, path_);
}

Status GgufFile::read_row_f32(const GgufTensor& t, uint64_t row, float* out) const {
  CRIA_RETURN_IF_ERROR(read_row_raw(t, row, &scratch_));
  const uint8_t* p = scratch_.data();
  const uint64_t n = t.cols();
  switch ((GgmlType)t.type) {
    case GgmlType::kF32: std::memcpy(out, p, n * 4); break;
    case GgmlType::kF16:
      for (uint64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = fp16_to_f32(h);
      }
      break;
    case GgmlType::kBF16:
      for (uint64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = bf16_to_f32(h);
      }
      break;
    case GgmlType::kQ8_0:
      for (uint64_t b = 0; b < n / 32; ++b) {
        const uint8_t* blk = p + b * 34;
        uint16_t d;
        std::memcpy(&d, blk, 2);
        const float df = fp16_to_f32(d);
        for (int j = 0; j < 32; ++j) out[b * 32 + j] = (float)(int8_t)blk[2 + j] * df;
      }
      break;
    case GgmlType::kQ4_0:
      for (uint64_t b = 0; b < n / 32; ++b) {
        const uint8_t* blk = p + b * 18;
        uint16_t d;
        std::memcpy(&d, blk, 2);
        const float df = fp16_to_f32(d);
        for (int j = 0; j < 16; ++j) {
          out[b * 32 + j] = (float)((blk[2 + j] & 15) - 8) * df;
          out[b * 32 + j + 16] = (float)((blk[2 + j] >> 4) - 8) * df;
        }
      }
      break;
  }
  return Status::Ok();
}

}  // namespace cria
