// Writing a .cria file. The writer knows every tensor's name, type and shape
// up front (the plan), so it lays out the whole file before any data arrives:
// tensors are then streamed in plan order, hashed on the way, and the header
// is rewritten with the checksums at the end. Output goes to a temporary file
// beside the target, renamed into place only by finish(); a writer destroyed
// before finish() removes it, so a failed conversion leaves nothing behind.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "formats/model_meta.h"
#include "formats/status.h"
#include "quant/quant.h"

namespace cria {

struct TensorPlan {
  std::string name;
  QType dtype = QType::kF32;
  std::vector<uint64_t> shape;
  uint32_t group = 0;
};

class ModelWriter {
 public:
  ~ModelWriter();
  ModelWriter(const ModelWriter&) = delete;
  ModelWriter& operator=(const ModelWriter&) = delete;

  static Result<std::unique_ptr<ModelWriter>> create(const std::string& path, const ModelMeta& meta,
                                                     std::vector<TensorPlan> plan);

  // Bytes of the current tensor, in order.
  Status write(const void* data, uint64_t n);
  // Zero bytes of the current tensor, left as a hole in the file where the
  // filesystem allows (used for padding and by tests of >4 GiB files).
  Status write_zeros(uint64_t n);
  // Closes the current tensor; it must have received exactly its size.
  Status end_tensor();
  // After the last tensor: final header, fsync, rename into place.
  Status finish();

  size_t current_tensor() const { return cur_; }
  uint64_t tensor_size(size_t i) const;
  uint64_t file_size() const { return file_size_; }
  const std::string& path() const { return path_; }

 private:
  ModelWriter() = default;
  Status flush();
  Status write_header();

  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_, tmp_path_;
  int fd_ = -1;
  bool finished_ = false;
  size_t cur_ = 0;
  uint64_t written_in_tensor_ = 0;
  uint64_t data_offset_ = 0, file_size_ = 0;
};

}  // namespace cria
