#include "formats/model_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "formats/meta_io.h"
#include "formats/model_file.h"

namespace cria {

struct ModelWriter::Impl {
  ModelMeta meta;
  std::vector<TensorEntry> entries;  // plan order
  XXH3_state_t hash;
  std::vector<uint8_t> buf;  // pending bytes at buf_offset
  uint64_t buf_offset = 0;
  uint64_t header_size = 0;
};

namespace {

Status pwrite_all(int fd, const void* data, uint64_t n, uint64_t offset, const std::string& path) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    ssize_t w = ::pwrite(fd, p, std::min<uint64_t>(n, 1ull << 30), (off_t)offset);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Error(Code::kIo, path + ": write failed: " + std::strerror(errno));
    }
    p += w;
    n -= (uint64_t)w;
    offset += (uint64_t)w;
  }
  return Status::Ok();
}

constexpr uint64_t kBufSize = 8ull << 20;

}  // namespace

ModelWriter::~ModelWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!finished_ && !tmp_path_.empty()) ::unlink(tmp_path_.c_str());
}

Result<std::unique_ptr<ModelWriter>> ModelWriter::create(const std::string& path, const ModelMeta& meta,
                                                         std::vector<TensorPlan> plan) {
  std::unique_ptr<ModelWriter> w(new ModelWriter());
  w->impl_ = std::make_unique<Impl>();
  Impl& im = *w->impl_;
  im.meta = meta;
  w->path_ = path;

  // Lay out the data segment in plan order.
  std::set<std::string> names;
  uint64_t off = 0;
  for (TensorPlan& t : plan) {
    if (!names.insert(t.name).second) return Error(Code::kInternal, path + ": tensor " + t.name + " planned twice");
    QLayout l;
    uint64_t rows = t.shape.size() == 2 ? t.shape[0] : 1;
    if (t.shape.empty() || !qlayout(t.dtype, rows, t.shape.back(), t.group, &l))
      return Error(Code::kInvalidArgument, path + ": tensor " + t.name + " cannot be stored as " +
                                               qtype_name(t.dtype));
    TensorEntry e;
    e.name = t.name;
    e.dtype = t.dtype;
    e.shape = t.shape;
    e.group = t.group;
    e.offset = off;
    e.size = l.total;
    im.entries.push_back(e);
    off = align_up(off + l.total, kTensorAlign);
  }
  const uint64_t data_size = im.entries.empty() ? 0 : im.entries.back().offset + im.entries.back().size;

  flatbuffers::FlatBufferBuilder fbb(1 << 20);
  build_model_fb(fbb, im.meta, im.entries);
  im.header_size = fbb.GetSize();
  w->data_offset_ = align_up(kPreambleSize + im.header_size, kDataAlign);
  w->file_size_ = w->data_offset_ + data_size;

  w->tmp_path_ = path + ".tmp-XXXXXX";
  std::vector<char> tmpl(w->tmp_path_.begin(), w->tmp_path_.end());
  tmpl.push_back('\0');
  w->fd_ = ::mkstemp(tmpl.data());
  if (w->fd_ < 0) {
    std::string why = std::strerror(errno);
    w->tmp_path_.clear();
    return Error(Code::kIo, path + ": cannot create output: " + why);
  }
  w->tmp_path_ = tmpl.data();
  ::fchmod(w->fd_, 0644);
  if (::ftruncate(w->fd_, (off_t)w->file_size_) != 0)
    return Error(Code::kIo, path + ": cannot size output to " + std::to_string(w->file_size_) +
                                " bytes: " + std::strerror(errno));
  XXH3_64bits_reset(&im.hash);
  im.buf.reserve(kBufSize);
  im.buf_offset = w->data_offset_;
  return w;
}

uint64_t ModelWriter::tensor_size(size_t i) const { return impl_->entries.at(i).size; }

Status ModelWriter::flush() {
  Impl& im = *impl_;
  if (im.buf.empty()) return Status::Ok();
  CRIA_RETURN_IF_ERROR(pwrite_all(fd_, im.buf.data(), im.buf.size(), im.buf_offset, tmp_path_));
  im.buf_offset += im.buf.size();
  im.buf.clear();
  return Status::Ok();
}

Status ModelWriter::write(const void* data, uint64_t n) {
  Impl& im = *impl_;
  if (cur_ >= im.entries.size()) return Error(Code::kInternal, path_ + ": write past the last tensor");
  const TensorEntry& e = im.entries[cur_];
  if (written_in_tensor_ + n > e.size)
    return Error(Code::kInternal, path_ + ": tensor " + e.name + " receives more than its " +
                                      std::to_string(e.size) + " bytes");
  XXH3_64bits_update(&im.hash, data, n);
  written_in_tensor_ += n;
  if (n >= kBufSize) {
    CRIA_RETURN_IF_ERROR(flush());
    CRIA_RETURN_IF_ERROR(pwrite_all(fd_, data, n, im.buf_offset, tmp_path_));
    im.buf_offset += n;
    return Status::Ok();
  }
  if (im.buf.size() + n > kBufSize) CRIA_RETURN_IF_ERROR(flush());
  const uint8_t* p = static_cast<const uint8_t*>(data);
  im.buf.insert(im.buf.end(), p, p + n);
  return Status::Ok();
}

Status ModelWriter::write_zeros(uint64_t n) {
  Impl& im = *impl_;
  if (cur_ >= im.entries.size()) return Error(Code::kInternal, path_ + ": write past the last tensor");
  const TensorEntry& e = im.entries[cur_];
  if (written_in_tensor_ + n > e.size)
    return Error(Code::kInternal, path_ + ": tensor " + e.name + " receives more than its size");
  // The file was sized with ftruncate, so unwritten ranges already read as
  // zeros: hash the zeros and skip over them.
  CRIA_RETURN_IF_ERROR(flush());
  static const std::vector<uint8_t> zeros(1 << 20, 0);
  for (uint64_t left = n; left > 0;) {
    uint64_t k = std::min<uint64_t>(left, zeros.size());
    XXH3_64bits_update(&im.hash, zeros.data(), k);
    left -= k;
  }
  written_in_tensor_ += n;
  im.buf_offset += n;
  return Status::Ok();
}

Status ModelWriter::end_tensor() {
  Impl& im = *impl_;
  if (cur_ >= im.entries.size()) return Error(Code::kInternal, path_ + ": no tensor to end");
  TensorEntry& e = im.entries[cur_];
  if (written_in_tensor_ != e.size)
    return Error(Code::kInternal, path_ + ": tensor " + e.name + " got " +
                                      std::to_string(written_in_tensor_) + " of its " +
                                      std::to_string(e.size) + " bytes");
  e.checksum = XXH3_64bits_digest(&im.hash);
  XXH3_64bits_reset(&im.hash);
  written_in_tensor_ = 0;
  ++cur_;
  // Skip the alignment padding (already zero in the sized file).
  if (cur_ < im.entries.size()) {
    CRIA_RETURN_IF_ERROR(flush());
    im.buf_offset = data_offset_ + im.entries[cur_].offset;
  }
  return Status::Ok();
}

Status ModelWriter::write_header() {
  Impl& im = *impl_;
  flatbuffers::FlatBufferBuilder fbb(1 << 20);
  build_model_fb(fbb, im.meta, im.entries);
  if (fbb.GetSize() != im.header_size)
    return Error(Code::kInternal, path_ + ": header size changed between plan and finish");
  Preamble p{};
  std::memcpy(p.magic, "CRIA", 4);
  p.major = kFormatMajor;
  p.minor = kFormatMinor;
  p.header_offset = kPreambleSize;
  p.header_size = im.header_size;
  p.data_offset = data_offset_;
  p.data_size = file_size_ - data_offset_;
  p.file_size = file_size_;
  p.header_checksum = checksum_bytes(fbb.GetBufferPointer(), fbb.GetSize());
  CRIA_RETURN_IF_ERROR(pwrite_all(fd_, &p, sizeof(p), 0, tmp_path_));
  return pwrite_all(fd_, fbb.GetBufferPointer(), fbb.GetSize(), kPreambleSize, tmp_path_);
}

Status ModelWriter::finish() {
  Impl& im = *impl_;
  if (written_in_tensor_ != 0 || cur_ != im.entries.size())
    return Error(Code::kInternal, path_ + ": finish() before every tensor was written (" +
                                      std::to_string(cur_) + " of " + std::to_string(im.entries.size()) + ")");
  CRIA_RETURN_IF_ERROR(flush());
  CRIA_RETURN_IF_ERROR(write_header());
  if (::fsync(fd_) != 0) return Error(Code::kIo, path_ + ": fsync failed: " + std::strerror(errno));
  ::close(fd_);
  fd_ = -1;
  if (::rename(tmp_path_.c_str(), path_.c_str()) != 0)
    return Error(Code::kIo, path_ + ": rename failed: " + std::strerror(errno));
  finished_ = true;
  return Status::Ok();
}

}  // namespace cria
