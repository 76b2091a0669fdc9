#include "formats/model_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#if !defined(__EMSCRIPTEN__)
#include <sys/mman.h>
#endif

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include "formats/checksum_stream.h"
#include "formats/meta_io.h"
#include "formats/tensors.h"

namespace cria {

uint64_t checksum_bytes(const void* data, size_t size) { return XXH3_64bits(data, size); }

ModelFile::~ModelFile() {
#if !defined(__EMSCRIPTEN__)
  if (mapping_) munmap(mapping_, size_);
  if (fd_ >= 0) ::close(fd_);
#endif
}

Result<std::unique_ptr<ModelFile>> ModelFile::open(const std::string& path) {
  std::unique_ptr<ModelFile> f(new ModelFile());
  f->path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error(errno == ENOENT ? Code::kNotFound : Code::kIo, path + ": " + std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return Error(Code::kIo, path + ": " + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Error(Code::kInvalidArgument, path + ": not a regular file");
  }
  f->size_ = (uint64_t)st.st_size;
  if (f->size_ < kPreambleSize) {
    ::close(fd);
    return Error(Code::kCorrupt, path + ": not a cria model file (only " + std::to_string(f->size_) +
                                     " bytes)");
  }
#if defined(__EMSCRIPTEN__)
  f->owned_.resize(f->size_);
  uint64_t done = 0;
  while (done < f->size_) {
    ssize_t n = ::pread(fd, f->owned_.data() + done, f->size_ - done, (off_t)done);
    if (n <= 0) {
      ::close(fd);
      return Error(Code::kIo, path + ": read failed");
    }
    done += (uint64_t)n;
  }
  f->base_ = f->owned_.data();
  ::close(fd);
#else
  void* p = mmap(nullptr, f->size_, PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    int e = errno;
    ::close(fd);
    return Error(Code::kIo, path + ": mmap failed: " + std::strerror(e));
  }
  f->mapping_ = p;
  f->base_ = static_cast<const uint8_t*>(p);
  f->fd_ = fd;  // kept for read_mapped (a copy of the weights)
#endif
  CRIA_RETURN_IF_ERROR(f->init().with_prefix(path));
  return f;
}

Result<std::unique_ptr<ModelFile>> ModelFile::from_bytes(std::vector<uint8_t> bytes,
                                                         const std::string& name) {
  std::unique_ptr<ModelFile> f(new ModelFile());
  f->path_ = name;
  f->owned_ = std::move(bytes);
  f->base_ = f->owned_.data();
  f->size_ = f->owned_.size();
  CRIA_RETURN_IF_ERROR(f->init().with_prefix(name));
  return f;
}

Result<std::unique_ptr<ModelFile>> ModelFile::from_memory(const uint8_t* data, size_t size,
                                                          const std::string& name) {
  std::unique_ptr<ModelFile> f(new ModelFile());
  f->path_ = name;
  f->base_ = data;
  f->size_ = size;
  CRIA_RETURN_IF_ERROR(f->init().with_prefix(name));
  return f;
}

Result<std::unique_ptr<ModelFile>> ModelFile::from_extents(const uint8_t* head, uint64_t head_size,
                                                           uint64_t file_size, std::vector<Extent> extents,
                                                           const std::string& name) {
  // verify_header reads the preamble and header only: make sure they are here.
  if (head_size < kPreambleSize) return Error(Code::kCorrupt, name + ": not a cria model file (too short)");
  Preamble p;
  std::memcpy(&p, head, sizeof p);
  if (p.header_offset != kPreambleSize || p.header_size > head_size - kPreambleSize)
    return Error(Code::kInvalidArgument, name + ": the header's " + std::to_string(p.header_size) +
                                             " bytes are not all among the " + std::to_string(head_size) + " given");
  for (const Extent& e : extents)
    if (!e.data || e.offset > file_size || e.size > file_size - e.offset)
      return Error(Code::kInvalidArgument, name + ": a byte range lies outside the file");
  std::unique_ptr<ModelFile> f(new ModelFile());
  f->path_ = name;
  f->base_ = head;
  f->size_ = file_size;
  f->partial_ = true;
  f->extents_ = std::move(extents);
  CRIA_RETURN_IF_ERROR(f->init().with_prefix(name));
  return f;
}

Result<const fb::Model*> verify_header(const uint8_t* base, uint64_t size, Preamble* out) {
  auto corrupt = [](const std::string& m) { return Error(Code::kCorrupt, m); };
  if (size < kPreambleSize) return corrupt("not a cria model file (too short)");
  Preamble p;
  std::memcpy(&p, base, sizeof(p));
  if (std::memcmp(p.magic, "CRIA", 4) != 0) return corrupt("not a cria model file (bad magic)");
  if (p.major > kFormatMajor) {
    return Error(Code::kUnsupported,
                 "file format version " + std::to_string(p.major) + "." + std::to_string(p.minor) +
                     " is newer than this reader supports (" + std::to_string(kFormatMajor) +
                     ".x); update cria");
  }
  if (p.major == 0) return corrupt("bad format version 0");
  if (p.file_size != size) {
    if (size < p.file_size)
      return corrupt("truncated: header says " + std::to_string(p.file_size) + " bytes, file has " +
                     std::to_string(size));
    return corrupt("file is " + std::to_string(size) + " bytes but its header says " +
                   std::to_string(p.file_size));
  }
  if (p.header_offset != kPreambleSize || p.header_size == 0 ||
      p.header_size > size - kPreambleSize || p.header_size > (1ull << 31))
    return corrupt("header size out of range");
  if (p.data_offset % kDataAlign != 0 || p.data_offset < kPreambleSize + p.header_size ||
      p.data_offset > size || p.data_size > size - p.data_offset)
    return corrupt("data segment out of range");
  const uint8_t* hdr = base + p.header_offset;
  if (checksum_bytes(hdr, p.header_size) != p.header_checksum) return corrupt("header checksum mismatch");
  flatbuffers::Verifier::Options vopt;
  vopt.max_tables = 1u << 24;
  vopt.max_depth = 16;
  flatbuffers::Verifier verifier(hdr, p.header_size, vopt);
  if (!fb::VerifyModelBuffer(verifier)) return corrupt("header failed FlatBuffers verification");
  const fb::Model* model = fb::GetModel(hdr);
  // The header repeats the version; a disagreement with the preamble means a
  // damaged or hand-edited file, and a newer major is refused either way.
  if (model->format_major() > kFormatMajor)
    return Error(Code::kUnsupported, "header format version " + std::to_string(model->format_major()) + "." +
                                         std::to_string(model->format_minor()) +
                                         " is newer than this reader supports (" + std::to_string(kFormatMajor) +
                                         ".x); update cria");
  if (model->format_major() != p.major || model->format_minor() != p.minor)
    return corrupt("header format version " + std::to_string(model->format_major()) + "." +
                   std::to_string(model->format_minor()) + " disagrees with the preamble's " +
                   std::to_string(p.major) + "." + std::to_string(p.minor));
  *out = p;
  return model;
}

Status ModelFile::init() {
  auto corrupt = [](const std::string& m) { return Error(Code::kCorrupt, m); };
  auto header = verify_header(base_, size_, &preamble_);
  if (!header.ok()) return header.status();
  model_ = *header;
  const Preamble& p = preamble_;
  if (!model_->config()) return corrupt("header has no config");
  config_ = config_from_fb(*model_->config());
  CRIA_RETURN_IF_ERROR(validate_config(config_));
  if (!model_->tokenizer()) return corrupt("header has no tokenizer");
  CRIA_RETURN_IF_ERROR(validate_tokenizer_fb(*model_->tokenizer(), config_.vocab_size));
  if (model_->chat_template() && (int)model_->chat_template()->kind() > (int)fb::ChatKind::MAX)
    return corrupt("unknown chat template kind");

  // Tensors: known dtype, exact size for the layout, aligned, inside the data
  // segment, not overlapping.
  const auto* ts = model_->tensors();
  if (!ts) return corrupt("header has no tensor table");
  tensors_.clear();
  tensors_.reserve(ts->size());
  for (const fb::Tensor* t : *ts) {
    TensorRef r;
    if (!t->name() || t->name()->size() == 0) return corrupt("tensor without a name");
    r.name = std::string_view(t->name()->c_str(), t->name()->size());
    const std::string name(r.name);
    if ((int)t->dtype() >= kNumQTypes) return corrupt("tensor " + name + ": unknown dtype " + std::to_string((int)t->dtype()));
    r.dtype = (QType)t->dtype();
    if (!t->shape() || t->shape()->size() == 0 || t->shape()->size() > 2)
      return corrupt("tensor " + name + ": shape must have 1 or 2 dimensions");
    for (uint64_t d : *t->shape()) {
      if (d == 0 || d > (1ull << 32)) return corrupt("tensor " + name + ": bad dimension");
      r.shape.push_back(d);
    }
    r.group = t->group_size();
    r.offset = t->offset();
    r.size = t->size();
    r.checksum = t->checksum();
    if (!qlayout(r.dtype, r.rows(), r.cols(), r.group, &r.layout))
      return corrupt("tensor " + name + ": " + qtype_name(r.dtype) + " with group " +
                     std::to_string(r.group) + " does not fit shape");
    if (r.layout.total != r.size)
      return corrupt("tensor " + name + ": size " + std::to_string(r.size) + " does not match its " +
                     "shape and dtype (" + std::to_string(r.layout.total) + ")");
    if (r.offset % kTensorAlign != 0) return corrupt("tensor " + name + ": offset not 64-byte aligned");
    if (r.offset > p.data_size || r.size > p.data_size - r.offset)
      return corrupt("tensor " + name + ": data lies outside the file");
    if (!partial_) {
      r.data = base_ + p.data_offset + r.offset;
    } else {
      const uint64_t begin = p.data_offset + r.offset;
      for (const Extent& e : extents_)
        if (begin >= e.offset && begin + r.size <= e.offset + e.size) r.data = e.data + (begin - e.offset);
    }
    tensors_.push_back(std::move(r));
  }
  by_name_.resize(tensors_.size());
  for (uint32_t i = 0; i < by_name_.size(); ++i) by_name_[i] = i;
  std::sort(by_name_.begin(), by_name_.end(),
            [&](uint32_t a, uint32_t b) { return tensors_[a].name < tensors_[b].name; });
  for (size_t i = 1; i < by_name_.size(); ++i)
    if (tensors_[by_name_[i]].name == tensors_[by_name_[i - 1]].name)
      return corrupt("tensor " + std::string(tensors_[by_name_[i]].name) + " appears twice");
  std::sort(tensors_.begin(), tensors_.end(),
            [](const TensorRef& a, const TensorRef& b) { return a.offset < b.offset; });
  for (uint32_t i = 0; i < tensors_.size(); ++i) {
    if (i > 0 && tensors_[i].offset < tensors_[i - 1].offset + tensors_[i - 1].size)
      return corrupt("tensors " + std::string(tensors_[i - 1].name) + " and " +
                     std::string(tensors_[i].name) + " overlap");
  }
  for (uint32_t i = 0; i < by_name_.size(); ++i) by_name_[i] = i;
  std::sort(by_name_.begin(), by_name_.end(),
            [&](uint32_t a, uint32_t b) { return tensors_[a].name < tensors_[b].name; });

  // Every tensor the config implies, with its shape; nothing else.
  size_t expected = 0;
  Status st;
  for_each_tensor(config_, [&](const TensorSpec& s) {
    if (!st.ok()) return;
    ++expected;
    const TensorRef* r = find(s.name);
    if (!r) {
      st = corrupt("missing tensor " + s.name);
      return;
    }
    if (r->shape != s.shape) {
      auto fmt = [](const std::vector<uint64_t>& v) {
        std::string o = "[";
        for (size_t i = 0; i < v.size(); ++i) o += (i ? ", " : "") + std::to_string(v[i]);
        return o + "]";
      };
      st = corrupt("tensor " + s.name + " has shape " + fmt(r->shape) + " but the config implies " +
                   fmt(s.shape));
      return;
    }
    // Norms and biases are read as f32 by every backend.
    if ((s.role == TensorRole::kNorm || s.role == TensorRole::kBias) && r->dtype != QType::kF32)
      st = corrupt("tensor " + s.name + " must be f32, is " + qtype_name(r->dtype));
  });
  CRIA_RETURN_IF_ERROR(st);
  if (expected != tensors_.size()) {
    for (const TensorRef& r : tensors_) {
      bool known = false;
      for_each_tensor(config_, [&](const TensorSpec& s) { known = known || s.name == r.name; });
      if (!known) return corrupt("unexpected tensor " + std::string(r.name));
    }
  }
  return Status::Ok();
}

const TensorRef* ModelFile::find(std::string_view name) const {
  auto it = std::lower_bound(by_name_.begin(), by_name_.end(), name,
                             [&](uint32_t i, std::string_view n) { return tensors_[i].name < n; });
  if (it == by_name_.end() || tensors_[*it].name != name) return nullptr;
  return &tensors_[*it];
}

ModelMeta ModelFile::meta() const { return meta_from_fb(*model_); }

uint64_t ModelFile::release_pages(const uint8_t* data, uint64_t size) const {
#if defined(__EMSCRIPTEN__)
  (void)data;
  (void)size;
  return 0;
#else
  if (!mapping_ || data < base_ || data + size > base_ + size_) return 0;
  const uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
  const uint64_t begin = ((uint64_t)(uintptr_t)data + page - 1) / page * page;
  const uint64_t end = ((uint64_t)(uintptr_t)data + size) / page * page;
  if (end <= begin) return 0;
  if (madvise(reinterpret_cast<void*>((uintptr_t)begin), end - begin, MADV_DONTNEED) != 0) return 0;
  return end - begin;
#endif
}

Status ModelFile::read_mapped(const uint8_t* data, uint64_t size, void* dst) const {
#if defined(__EMSCRIPTEN__)
  (void)data;
  (void)size;
  (void)dst;
  return Error(Code::kUnsupported, path_ + ": not a mapped file");
#else
  if (fd_ < 0 || !maps(data, size))
    return Error(Code::kInvalidArgument, path_ + ": read_mapped outside the mapped file");
  const uint64_t offset = (uint64_t)(data - base_);
  for (uint64_t done = 0; done < size;) {
    const ssize_t n = ::pread(fd_, static_cast<uint8_t*>(dst) + done, size - done, (off_t)(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Error(Code::kIo, path_ + ": read failed: " + (n < 0 ? std::strerror(errno) : "file shrank"));
    done += (uint64_t)n;
  }
  return Status::Ok();
#endif
}

Status ModelFile::verify_checksums(const std::function<void(uint64_t, uint64_t)>& progress) const {
  // A partial file's ranges were checked as they arrived (ChecksumStream).
  if (partial_) return Error(Code::kUnsupported, path_ + ": only some of its bytes are in memory");
  std::vector<ChecksumStream::Entry> entries;
  for (const TensorRef& t : tensors_) {
    const uint64_t begin = preamble_.data_offset + t.offset;
    entries.push_back({std::string(t.name), begin, begin + t.size, t.checksum});
  }
  ChecksumStream stream(std::move(entries), path_);
  // Hash in slices so progress can be reported on multi-GB files.
  const uint64_t slice = 64ull << 20;
  for (uint64_t have = 0; have < size_;) {
    have = std::min(size_, have + slice);
    CRIA_RETURN_IF_ERROR(stream.advance(base_, have));
    if (progress) progress(stream.hashed(), stream.total());
  }
  return stream.finish();
}

}  // namespace cria
