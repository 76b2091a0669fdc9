// Reader of GGUF (v2, v3) files as written by llama.cpp: metadata, tensor
// infos, and rows of F32/F16/BF16/Q8_0/Q4_0 tensors. The converter maps the
// llama and falcon architectures onto cria's ModelConfig and tensor names
// (see convert.cc).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "formats/status.h"

namespace cria {

// ggml tensor types cria can import, with their GGML ids.
enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ8_0 = 8,
  kBF16 = 30,
};
const char* ggml_type_name(uint32_t t);

struct GgufValue {
  enum Kind { kInt, kUInt, kFloat, kBool, kString, kArray } kind = kInt;
  int64_t i = 0;
  uint64_t u = 0;
  double f = 0;
  bool b = false;
  std::string s;
  std::vector<GgufValue> arr;

  bool as_u64(uint64_t* out) const;
  bool as_f64(double* out) const;
};

struct GgufTensor {
  std::string name;
  uint32_t type = 0;
  std::vector<uint64_t> shape;  // outermost first (GGUF stores innermost first)
  uint64_t offset = 0;          // absolute in the file
  uint64_t size = 0;

  uint64_t rows() const { return shape.size() >= 2 ? shape[0] : 1; }
  uint64_t cols() const { return shape.empty() ? 0 : shape.back(); }
};

// Parses a GGUF header from memory (`data` holds at least the whole header).
// Exposed for tests and fuzzing; open() uses it.
Status parse_gguf_header(const uint8_t* data, uint64_t size, uint64_t file_size,
                         const std::string& name, std::map<std::string, GgufValue>* meta,
                         std::vector<GgufTensor>* tensors);

class GgufFile {
 public:
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  static Result<std::unique_ptr<GgufFile>> open(const std::string& path);

  const std::string& path() const { return path_; }
  const std::map<std::string, GgufValue>& meta() const { return meta_; }
  const GgufValue* get(const std::string& key) const;
  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* find(const std::string& name) const;

  // Row r of a 2-D tensor (or the whole 1-D tensor) dequantized to f32.
  Status read_row_f32(const GgufTensor& t, uint64_t row, float* out) const;
  // Raw bytes of row r (for exact copies of Q4_0/Q8_0 blocks).
  Status read_row_raw(const GgufTensor& t, uint64_t row, std::vector<uint8_t>* out) const;
  static bool row_bytes(uint32_t type, uint64_t cols, uint64_t* out);
  // Hints the kernel to read rows [row, row + n) ahead.
  void prefetch(const GgufTensor& t, uint64_t row, uint64_t n) const;

 private:
  GgufFile() = default;
  std::string path_;
  int fd_ = -1;
  std::map<std::string, GgufValue> meta_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t> index_;
  mutable std::vector<uint8_t> scratch_;
};

}  // namespace cria
