// Reading a .cria file: map it (or take bytes already in memory, as the WASM
// build does), check the preamble, verify the FlatBuffer, validate the config,
// the tokenizer and every tensor against the layout the config implies.
// Nothing in a file that passes open() can make the runtime read out of
// bounds. Checksums are verified on request (verify_checksums).
//
// Byte layout (all little endian):
//   [0, 64)                 Preamble
//   [64, 64 + header_size)  FlatBuffer, root table cria.fb.Model, identifier "CRIA"
//   [data_offset, +data_size) data segment; data_offset is 4096-aligned and
//                           every tensor starts 64-byte aligned inside it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "formats/config.h"
#include "formats/model_meta.h"
#include "formats/status.h"
#include "quant/quant.h"

namespace cria {

namespace fb {
struct Model;
struct Tensor;
}  // namespace fb

constexpr uint16_t kFormatMajor = 1;
constexpr uint16_t kFormatMinor = 0;
constexpr uint64_t kDataAlign = 4096;
constexpr uint64_t kTensorAlign = 64;
constexpr uint64_t kPreambleSize = 64;

struct Preamble {
  char magic[4];  // "CRIA"
  uint16_t major;
  uint16_t minor;
  uint64_t header_offset;  // always 64
  uint64_t header_size;
  uint64_t data_offset;
  uint64_t data_size;
  uint64_t file_size;
  uint64_t header_checksum;  // XXH3-64 of the FlatBuffer bytes
  uint64_t reserved;
};
static_assert(sizeof(Preamble) == kPreambleSize, "preamble is 64 bytes");

// A tensor as the runtime sees it: validated, pointing into the mapping.
struct TensorRef {
  std::string_view name;
  QType dtype = QType::kF32;
  std::vector<uint64_t> shape;
  uint32_t group = 0;
  uint64_t offset = 0;  // in the data segment
  uint64_t size = 0;
  uint64_t checksum = 0;
  const uint8_t* data = nullptr;
  QLayout layout;

  uint64_t rows() const { return shape.size() == 2 ? shape[0] : 1; }
  uint64_t cols() const { return shape.empty() ? 0 : shape.back(); }
  uint64_t numel() const {
    uint64_t n = 1;
    for (uint64_t d : shape) n *= d;
    return n;
  }
};

class ModelFile {
 public:
  ~ModelFile();
  ModelFile(const ModelFile&) = delete;
  ModelFile& operator=(const ModelFile&) = delete;

  // Maps the file read-only. Errors name the path.
  static Result<std::unique_ptr<ModelFile>> open(const std::string& path);
  // Takes ownership of bytes already in memory (the WASM build, tests).
  static Result<std::unique_ptr<ModelFile>> from_bytes(std::vector<uint8_t> bytes,
                                                       const std::string& name);
  // Borrows memory the caller keeps alive for the ModelFile's lifetime.
  static Result<std::unique_ptr<ModelFile>> from_memory(const uint8_t* data, size_t size,
                                                        const std::string& name);
  // Some of a file's bytes, borrowed: [offset, offset + size) of the file
  // lies at `data`.
  struct Extent {
    uint64_t offset = 0, size = 0;
    const uint8_t* data = nullptr;
  };
  // A file of `file_size` bytes of which only the preamble and header (the
  // first `head_size` bytes, at `head`) and the extents are in memory: one
  // stage of a model split by layers across WebAssembly instances, each
  // holding its own layers' bytes. Validated as open() validates; a tensor
  // inside an extent points into it, any other tensor has no data (null).
  static Result<std::unique_ptr<ModelFile>> from_extents(const uint8_t* head, uint64_t head_size,
                                                         uint64_t file_size, std::vector<Extent> extents,
                                                         const std::string& name);
  // Whether only some tensors' bytes are present (from_extents).
  bool partial() const { return partial_; }

  const std::string& path() const { return path_; }
  const Preamble& preamble() const { return preamble_; }
  const fb::Model* fb() const { return model_; }
  const ModelConfig& config() const { return config_; }
  uint64_t file_size() const { return size_; }

  // Tensors in data order.
  const std::vector<TensorRef>& tensors() const { return tensors_; }
  // nullptr when absent.
  const TensorRef* find(std::string_view name) const;

  // Owned copies of the header sections (tokenizer, chat template, ...).
  ModelMeta meta() const;

  // Recomputes every tensor's checksum. `progress(done_bytes, total_bytes)`
  // may be empty. Returns kCorrupt naming the first bad tensor.
  Status verify_checksums(const std::function<void(uint64_t, uint64_t)>& progress = {}) const;

  // Drops the whole pages inside [data, data + size) of a mapped file from
  // this process's memory (madvise MADV_DONTNEED): for tensors a backend has
  // copied into its own memory. Touching them again reads them back in from
  // the page cache, so this is safe, only slower. Returns the bytes
  // released (0 when the file is not mapped: memory the process owns or
  // borrows is never discarded).
  uint64_t release_pages(const uint8_t* data, uint64_t size) const;

  // Whether the bytes are a mapping of a file (open()), which read_mapped
  // can read again.
  bool mapped() const { return mapping_ != nullptr; }
  // Whether [data, data + size) lies in the mapping.
  bool maps(const uint8_t* data, uint64_t size) const {
    return mapping_ && data >= base_ && size <= size_ && data + size <= base_ + size_;
  }
  // Reads [data, data + size) of a mapped file into `dst` with pread,
  // without touching the mapping (no page table entries are built for it).
  Status read_mapped(const uint8_t* data, uint64_t size, void* dst) const;

 private:
  ModelFile() = default;
  Status init();

  std::string path_;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  void* mapping_ = nullptr;  // munmap on destruction when set (not in WASM builds)
  [[maybe_unused]] int fd_ = -1;  // the mapped file, open while mapped (not in WASM builds)
  std::vector<uint8_t> owned_;
  bool partial_ = false;
  std::vector<Extent> extents_;  // from_extents
  Preamble preamble_{};
  const fb::Model* model_ = nullptr;
  ModelConfig config_;
  std::vector<TensorRef> tensors_;
  std::vector<uint32_t> by_name_;  // indices into tensors_, sorted by name
};

// Shared by the reader and the writer.
uint64_t checksum_bytes(const void* data, size_t size);

// Checks the preamble of a file of `size` bytes (the declared size, for a
// file still arriving) and the header it describes, which must be present:
// version, sizes, header checksum, FlatBuffers verification. Fills *p.
// Tensors are not looked at.
Result<const fb::Model*> verify_header(const uint8_t* base, uint64_t size, Preamble* p);

}  // namespace cria
