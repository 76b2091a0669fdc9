#include "formats/checksum_stream.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>

#include "formats/model_file.h"
#include "formats/cria_generated.h"

namespace cria {

struct ChecksumStream::State {
  XXH3_state_t xxh;
};

ChecksumStream::ChecksumStream(std::vector<Entry> entries, std::string file)
    : entries_(std::move(entries)), file_(std::move(file)), state_(new State()) {
  std::sort(entries_.begin(), entries_.end(), [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
  for (const Entry& e : entries_) total_ += e.end - e.begin;
}

ChecksumStream::~ChecksumStream() = default;

Result<std::unique_ptr<ChecksumStream>> ChecksumStream::for_header(const uint8_t* base, uint64_t size,
                                                                   const std::string& file) {
  return for_range(base, size, file, 0, size);
}

Result<std::unique_ptr<ChecksumStream>> ChecksumStream::for_range(const uint8_t* base, uint64_t size,
                                                                  const std::string& file, uint64_t begin,
                                                                  uint64_t end) {
  if (begin > end || end > size)
    return Error(Code::kInvalidArgument, file + ": bytes [" + std::to_string(begin) + ", " + std::to_string(end) +
                                             ") are not a range of its " + std::to_string(size));
  Preamble p;
  auto header = verify_header(base, size, &p);
  if (!header.ok()) return header.status().with_prefix(file);
  const auto* ts = (*header)->tensors();
  if (!ts) return Error(Code::kCorrupt, file + ": header has no tensor table");
  std::vector<Entry> entries;
  for (const fb::Tensor* t : *ts) {
    const std::string name = t->name() ? t->name()->str() : "";
    if (t->offset() > p.data_size || t->size() > p.data_size - t->offset())
      return Error(Code::kCorrupt, file + ": tensor " + name + ": data lies outside the file");
    const uint64_t b = p.data_offset + t->offset(), e = b + t->size();
    if (e <= begin || b >= end) continue;  // outside the range (tensors are never empty)
    if (b < begin || e > end)
      return Error(Code::kInvalidArgument, file + ": bytes [" + std::to_string(begin) + ", " + std::to_string(end) +
                                               ") cut tensor " + name);
    entries.push_back({name, b - begin, e - begin, t->checksum()});
  }
  auto out = std::make_unique<ChecksumStream>(std::move(entries), file);
  for (size_t i = 1; i < out->entries_.size(); ++i)
    if (out->entries_[i].begin < out->entries_[i - 1].end)
      return Error(Code::kCorrupt, file + ": tensors " + out->entries_[i - 1].name + " and " +
                                       out->entries_[i].name + " overlap");
  return out;
}

Status ChecksumStream::advance(const uint8_t* base, uint64_t have) {
  if (!error_.ok()) return error_;
  while (next_ < entries_.size()) {
    const Entry& e = entries_[next_];
    if (!started_) {
      if (have <= e.begin && e.end > e.begin) return Status::Ok();  // its first byte has not arrived
      XXH3_64bits_reset(&state_->xxh);
      pos_ = e.begin;
      started_ = true;
    }
    const uint64_t upto = std::min(have, e.end);
    if (upto > pos_) {
      XXH3_64bits_update(&state_->xxh, base + pos_, upto - pos_);
      hashed_ += upto - pos_;
      pos_ = upto;
    }
    if (pos_ < e.end) return Status::Ok();
    started_ = false;
    if (XXH3_64bits_digest(&state_->xxh) != e.checksum) {
      error_ = Error(Code::kCorrupt, file_ + ": checksum mismatch in tensor " + e.name);
      return error_;
    }
    ++next_;
  }
  return Status::Ok();
}

Status ChecksumStream::finish() const {
  if (!error_.ok()) return error_;
  if (next_ < entries_.size())
    return Error(Code::kCorrupt, file_ + ": tensor " + entries_[next_].name + " is incomplete");
  return Status::Ok();
}

}  // namespace cria
