// Converter inputs. A Source knows how its checkpoint names and lays out each
// canonical tensor (formats/tensors.h): an Assembly lists the row ranges of
// source tensors whose concatenation is the canonical tensor. Falcon's fused
// query_key_value is split into [all Q heads; all K heads; all V heads] this
// way; GGUF's permuted Llama Q/K rows are put back into Hugging Face order.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "formats/model_meta.h"
#include "formats/status.h"
#include "formats/tensors.h"
#include "quant/quant.h"

namespace cria {

struct Piece {
  std::string src;   // source tensor name
  uint64_t row = 0;  // first source row (1-D tensors: first element)
  uint64_t count = 0;
};

struct Assembly {
  std::vector<Piece> pieces;
  uint64_t cols = 1;              // 1 for 1-D tensors
  QType native = QType::kF32;     // the source's storage type (for "keep")
  bool exact = false;             // every piece is GGUF Q4_0 / Q8_0 ...
  QType exact_type = QType::kF32; // ... copyable bit for bit as this type
};

class Source {
 public:
  virtual ~Source() = default;
  virtual const std::string& name() const = 0;
  virtual bool is_gguf() const = 0;
  // Config, tokenizer, chat template and generation defaults.
  virtual const ModelMeta& meta() const = 0;
  // Maps a canonical tensor onto source rows, checking the source shapes.
  virtual Status assemble(const TensorSpec& spec, Assembly* out) = 0;
  // Rows of a source tensor as f32 (1-D: elements).
  virtual Status read_rows(const std::string& t, uint64_t row, uint64_t n, float* out) = 0;
  // Asks the OS to start reading the bytes behind `a` (a hint: the converter
  // calls it from another thread for the next tensor, so disk reads overlap
  // quantization).
  virtual void prefetch(const Assembly& a) const = 0;
  // Raw GGUF blocks of one row (exact copies).
  virtual Status read_row_raw(const std::string& t, uint64_t row, std::vector<uint8_t>* out);
  // Source tensors nothing was assembled from (other than known leftovers)
  // mean the config and the checkpoint disagree.
  virtual Status check_unused() const = 0;
};

Result<std::unique_ptr<Source>> open_hf_source(const std::string& dir);
Result<std::unique_ptr<Source>> open_gguf_source(const std::string& path);

// Shared by both sources: checks a source tensor's shape, records it as used.
class ShapeChecker {
 public:
  explicit ShapeChecker(std::string source_name) : name_(std::move(source_name)) {}
  // `have` is the source tensor's shape or nullptr when missing.
  Status need(const std::string& tensor, const std::vector<uint64_t>* have,
              const std::vector<uint64_t>& want);
  const std::set<std::string>& used() const { return used_; }

 private:
  std::string name_;
  std::set<std::string> used_;
};

std::string shape_str(const std::vector<uint64_t>& s);

// Assembles a canonical tensor from whole source tensors, each checked by
// `need` (shape, dtype) before its rows are listed.
class Mapper {
 public:
  using Need = std::function<Status(const std::string&, const std::vector<uint64_t>&)>;
  Mapper(Assembly* out, bool bias, Need need) : out_(out), bias_(bias), need_(std::move(need)) {}
  Status whole(const std::string& src, const std::vector<uint64_t>& shape);
  // A linear layer's weight [out, in] (or its bias [out]): SRC_BASE.weight / .bias.
  Status lin(const std::string& src_base, uint64_t out, uint64_t in);

 private:
  Assembly* out_;
  bool bias_;
  Need need_;
};

// Row order of fused QKV weights grouped per KV head, as Falcon stores them:
// for each KV group g, r = heads / kv_heads query heads, then its key head,
// then its value head. Returns the canonical [Q; K; V] row pieces.
std::vector<Piece> grouped_qkv_pieces(const std::string& src, uint32_t heads, uint32_t kv_heads,
                                      uint32_t head_dim);

}  // namespace cria
