// Reader of Hugging Face safetensors checkpoints: one file or a sharded set
// described by model.safetensors.index.json. Only the headers are parsed up
// front; tensor rows are read on demand with pread, so converting a model
// never holds more than a chunk of it in memory.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "formats/status.h"

namespace cria {

enum class StDType : uint8_t { kF32, kF16, kBF16, kOther };

struct StTensor {
  std::string name;
  StDType dtype = StDType::kF32;
  std::string dtype_name;       // as written in the header
  std::vector<uint64_t> shape;
  uint64_t begin = 0, end = 0;  // absolute offsets in the file
  size_t file = 0;              // index into SafetensorsSet::files()
};

// Parses one file's header. `header` is the JSON text (without the 8-byte
// length), `data_size` the number of bytes after the header. Offsets in the
// result are relative to the data start. Exposed for the fuzzer.
Status parse_safetensors_header(const char* header, size_t header_len, uint64_t data_size,
                                const std::string& file_name, std::vector<StTensor>* out);

class SafetensorsSet {
 public:
  ~SafetensorsSet();
  SafetensorsSet(const SafetensorsSet&) = delete;
  SafetensorsSet& operator=(const SafetensorsSet&) = delete;

  // `dir` holding model.safetensors or model.safetensors.index.json.
  static Result<std::unique_ptr<SafetensorsSet>> open_dir(const std::string& dir);
  static Result<std::unique_ptr<SafetensorsSet>> open_file(const std::string& path);

  const StTensor* find(const std::string& name) const;
  const std::vector<StTensor>& tensors() const { return tensors_; }
  const std::vector<std::string>& files() const { return paths_; }
  uint64_t total_bytes() const;

  // Hints the kernel to read elements [first, first + count) ahead.
  void prefetch(const StTensor& t, uint64_t first, uint64_t count) const;
  // Reads `count` consecutive elements starting at element `first` as f32.
  Status read_f32(const StTensor& t, uint64_t first, uint64_t count, float* out) const;

 private:
  SafetensorsSet() = default;
  Status add_file(const std::string& path);

  std::vector<std::string> paths_;
  std::vector<int> fds_;
  std::vector<StTensor> tensors_;
  std::map<std::string, size_t> index_;
  mutable std::vector<uint8_t> scratch_;
};

// pread that loops until done; errors name `path`.
Status pread_exact(int fd, void* buf, uint64_t n, uint64_t offset, const std::string& path);

}  // namespace cria
